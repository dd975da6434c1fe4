//! Emit: the MISP cluster and galaxy files, their versions, and writing them atomically.
//!
//! This stage owns the output format. A value is `value` (title), `description`, `uuid`, `meta` and
//! `related`; a field the rule lacks is left out (no placeholders, no empty strings or lists), and meta
//! holds only strings and lists of strings, as MISP stores them. Values are sorted by `value`, then uuid.
//! Files are formatted byte for byte as misp-galaxy formats its own ([`json::to_misp_json`]).
//!
//! **Versions.** MISP re-imports a cluster only when its `version` is greater than the stored one, and
//! stores it as a signed 32-bit integer. The caller passes a content clock (see [`crate::diff`]: it rises
//! with every commit that changes rule files and is always greater than MISP's date-style versions such
//! as 20240717). Each file's version is then, against the previous file in the output folder:
//!
//! - no previous file (or one that does not parse): the clock;
//! - same content: the greater of the previous version and the clock (same inputs: unchanged, and the
//!   file is not rewritten);
//! - new content: the greater of previous + 1 and the clock, so it always rises.
//!
//! Because the clock is a function of the built history, a build on top of the previous output and a
//! clean build of the same commit give the same versions.
//!
//! **Atomicity.** Both files are first written completely to temporary files in their own folders and
//! synced, then renamed over the old ones; an interrupted run leaves the previous galaxy intact (at worst
//! a stray temporary file, which the next run does not read).

pub mod json;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json, json};

use crate::config::GalaxyInfo;
use crate::error::{Error, Result};
use crate::merge::Value;
use crate::relate::Relation;

/// The largest version MISP can store.
pub const MAX_VERSION: i64 = i32::MAX as i64;

/// The cluster file path for a galaxy type under `out`.
pub fn cluster_path(out: &Path, kind: &str) -> PathBuf {
    out.join("clusters").join(format!("{kind}.json"))
}

/// The galaxy file path for a galaxy type under `out`.
pub fn galaxy_path(out: &Path, kind: &str) -> PathBuf {
    out.join("galaxies").join(format!("{kind}.json"))
}

/// One value as JSON.
pub fn value_json(v: &Value, related: &[Relation]) -> Json {
    let r = &v.rule;
    let mut meta = Map::new();
    let mut refs: Vec<&str> = Vec::new();
    for reference in r.references.iter().map(String::as_str).chain(v.link.as_deref()) {
        if !reference.is_empty() && !refs.contains(&reference) {
            refs.push(reference);
        }
    }
    let lists: [(&str, Vec<&str>); 3] = [
        ("refs", refs),
        ("tags", nonempty(&r.tags)),
        ("falsepositive", nonempty(&r.falsepositives)),
    ];
    for (key, list) in lists {
        if !list.is_empty() {
            meta.insert(key.into(), json!(list));
        }
    }
    let filename = v.path.rsplit('/').next().unwrap_or(&v.path);
    let texts = [
        ("creation_date", r.date.as_deref()),
        ("modified", r.modified.as_deref()),
        ("filename", Some(filename)),
        ("author", r.author.as_deref()),
        ("level", r.level.as_deref()),
        ("status", r.status.as_deref()),
        ("logsource.category", r.logsource.category.as_deref()),
        ("logsource.product", r.logsource.product.as_deref()),
        ("logsource.service", r.logsource.service.as_deref()),
    ];
    for (key, text) in texts {
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            meta.insert(key.into(), json!(t));
        }
    }
    let mut obj = Map::new();
    obj.insert("value".into(), json!(v.title));
    obj.insert("uuid".into(), json!(v.uuid.to_string()));
    if let Some(d) = r.description.as_deref().filter(|d| !d.is_empty()) {
        obj.insert("description".into(), json!(d));
    }
    obj.insert("meta".into(), Json::Object(meta));
    if !related.is_empty() {
        let rel: Vec<Json> = related
            .iter()
            .map(|x| {
                let mut o = Map::new();
                o.insert("dest-uuid".into(), json!(x.dest.to_string()));
                o.insert("type".into(), json!(x.kind));
                if !x.tags.is_empty() {
                    o.insert("tags".into(), json!(x.tags));
                }
                Json::Object(o)
            })
            .collect();
        obj.insert("related".into(), Json::Array(rel));
    }
    Json::Object(obj)
}

fn nonempty(list: &[String]) -> Vec<&str> {
    list.iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The cluster without its version, values sorted by `value` then uuid.
pub fn cluster_json(info: &GalaxyInfo, values: &[Value], related: &[Vec<Relation>]) -> Json {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        (values[a].title.as_str(), values[a].uuid).cmp(&(values[b].title.as_str(), values[b].uuid))
    });
    let vals: Vec<Json> = order
        .into_iter()
        .map(|i| value_json(&values[i], related.get(i).map_or(&[], Vec::as_slice)))
        .collect();
    json!({
        "authors": info.authors,
        "category": info.category,
        "description": info.cluster_description,
        "name": info.name,
        "source": info.source,
        "type": info.kind,
        "uuid": info.uuid.to_string(),
        "values": vals,
    })
}

/// The galaxy without its version.
pub fn galaxy_json(info: &GalaxyInfo) -> Json {
    json!({
        "description": info.description,
        "icon": info.icon,
        "name": info.name,
        "namespace": info.namespace,
        "type": info.kind,
        "uuid": info.uuid.to_string(),
    })
}

/// What writing the output did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub cluster: PathBuf,
    pub galaxy: PathBuf,
    /// The cluster's version.
    pub version: i64,
    /// Whether any file was rewritten.
    pub wrote: bool,
    /// Values new, changed and gone compared with the previous cluster file.
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

/// A file to write: its path, its content without version, and the previous file's parsed content.
struct Planned {
    path: PathBuf,
    bytes: String,
    version: i64,
    rewrite: bool,
}

/// Computes both files' versions against what is in `out` and writes whatever changed, atomically.
pub fn write(out: &Path, kind: &str, cluster: Json, galaxy: Json, base: i64) -> Result<Written> {
    let cluster_file = cluster_path(out, kind);
    let galaxy_file = galaxy_path(out, kind);
    let prev_cluster = read_previous(&cluster_file);
    let (added, changed, removed) = diff_values(prev_cluster.as_ref().map(|p| &p.1), &cluster);
    let c = plan(cluster_file.clone(), cluster, prev_cluster, base);
    let g = plan(galaxy_file.clone(), galaxy, read_previous(&galaxy_file), base);
    let wrote = c.rewrite || g.rewrite;
    let staged: Vec<_> = [&c, &g]
        .into_iter()
        .filter(|p| p.rewrite)
        .map(|p| stage(&p.path, &p.bytes).map(|t| (t, &p.path)))
        .collect::<Result<_>>()?;
    for (tmp, path) in staged {
        tmp.persist(path)
            .map_err(|e| Error::io(path.as_path(), e.error))?;
    }
    Ok(Written {
        cluster: cluster_file,
        galaxy: galaxy_file,
        version: c.version,
        wrote,
        added,
        changed,
        removed,
    })
}

/// A previous output file: its exact bytes and its content without `version` (and the version).
fn read_previous(path: &Path) -> Option<(String, Json, i64)> {
    let bytes = std::fs::read_to_string(path).ok()?;
    let mut json: Json = serde_json::from_str(&bytes).ok()?;
    let version = json.as_object_mut()?.remove("version")?.as_i64()?;
    Some((bytes, json, version))
}

fn plan(path: PathBuf, mut content: Json, prev: Option<(String, Json, i64)>, base: i64) -> Planned {
    let base = base.clamp(1, MAX_VERSION);
    let (version, old_bytes) = match prev {
        Some((bytes, old, v)) if old == content => (base.max(v), Some(bytes)),
        Some((_, _, v)) => (base.max(v + 1).min(MAX_VERSION), None),
        None => (base, None),
    };
    if let Some(obj) = content.as_object_mut() {
        obj.insert("version".into(), json!(version));
    }
    let bytes = json::to_misp_json(&content);
    let rewrite = old_bytes.as_deref() != Some(bytes.as_str());
    Planned {
        path,
        bytes,
        version,
        rewrite,
    }
}

/// Counts values added, changed and removed (by uuid) between the previous cluster and the new one.
fn diff_values(prev: Option<&Json>, new: &Json) -> (usize, usize, usize) {
    let by_uuid = |c: &Json| -> HashMap<String, Json> {
        c.get("values")
            .and_then(Json::as_array)
            .map(|vals| {
                vals.iter()
                    .filter_map(|v| Some((v.get("uuid")?.as_str()?.to_string(), v.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let new = by_uuid(new);
    let old = prev.map(by_uuid).unwrap_or_default();
    let added = new.keys().filter(|k| !old.contains_key(*k)).count();
    let removed = old.keys().filter(|k| !new.contains_key(*k)).count();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .count();
    (added, changed, removed)
}

/// Writes `bytes` to a synced temporary file in `path`'s folder, ready to be renamed over `path`.
fn stage(path: &Path, bytes: &str) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".sigma-galaxy-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(tmp.path(), e))?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(n: u64) -> Json {
        json!({"type": "t", "values": [{"uuid": "u", "value": n.to_string()}]})
    }

    #[test]
    fn first_write_takes_the_base_version() {
        let p = plan("x".into(), content(1), None, 1_700_000_000);
        assert_eq!(p.version, 1_700_000_000);
        assert!(p.rewrite);
    }

    #[test]
    fn same_content_and_clock_keep_version_and_bytes() {
        let first = plan("x".into(), content(1), None, 1_700_000_000);
        let prev = || Some((first.bytes.clone(), content(1), 1_700_000_000));
        let again = plan("x".into(), content(1), prev(), 1_700_000_000);
        assert_eq!(again.version, 1_700_000_000);
        assert!(!again.rewrite);
        // An older clock never lowers it; a newer one (rules changed, content did not) follows the clock.
        assert_eq!(plan("x".into(), content(1), prev(), 1_600_000_000).version, 1_700_000_000);
        let newer = plan("x".into(), content(1), prev(), 1_800_000_000);
        assert_eq!(newer.version, 1_800_000_000);
        assert!(newer.rewrite);
    }

    #[test]
    fn new_content_with_an_old_clock_goes_up_by_one() {
        let prev = Some((String::new(), content(1), 1_700_000_000));
        let p = plan("x".into(), content(2), prev, 1_600_000_000);
        assert_eq!(p.version, 1_700_000_001);
        let prev = Some((String::new(), content(1), 1_700_000_000));
        let p = plan("x".into(), content(2), prev, 1_800_000_000);
        assert_eq!(p.version, 1_800_000_000);
    }

    #[test]
    fn versions_fit_a_signed_32_bit_integer() {
        let p = plan("x".into(), content(1), None, i64::MAX);
        assert_eq!(p.version, MAX_VERSION);
    }

    #[test]
    fn value_counts_compare_by_uuid() {
        let old = json!({"values": [{"uuid": "a", "value": "A"}, {"uuid": "b", "value": "B"}]});
        let new = json!({"values": [{"uuid": "a", "value": "A2"}, {"uuid": "c", "value": "C"}]});
        assert_eq!(diff_values(Some(&old), &new), (1, 1, 1));
        assert_eq!(diff_values(None, &new), (2, 0, 0));
    }
}
