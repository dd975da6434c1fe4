//! Compare: what changed between two cluster files, value by value and field by field.
//!
//! This module owns the comparison behind `sigma-galaxy diff` and a release's `CHANGELOG.md`, and its
//! three renderings (human text, JSON, Markdown). Values are matched by `uuid`, as MISP's importer
//! matches them: a uuid only in the new cluster is *added*, only in the old one *removed*; the same
//! uuid with another `value` is *renamed* (MISP stores a value per name, so it makes a new one and
//! events keep the tag of the old name); the same uuid with any other field different is *changed*,
//! listed field by field (`description`, each `meta` key, `related` links, any other key). A value's
//! own `version` is not content (it follows from the content) and is not compared.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value as Json;

use crate::error::{Error, Result};

/// Lists longer than this are folded (`<details>`) in Markdown.
const FOLD: usize = 10;

/// The difference between two clusters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// The cluster's galaxy type (the new one's).
    #[serde(rename = "type")]
    pub kind: String,
    pub old_version: Option<i64>,
    pub new_version: Option<i64>,
    pub old_values: usize,
    pub new_values: usize,
    /// Sorted by value, then uuid.
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub renamed: Vec<Renamed>,
    pub changed: Vec<Changed>,
}

/// A value, by name and uuid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Entry {
    pub value: String,
    pub uuid: String,
}

/// A value whose name changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Renamed {
    pub old: String,
    pub new: String,
    pub uuid: String,
}

/// A value with other fields changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The new name.
    pub value: String,
    pub uuid: String,
    pub fields: Vec<FieldChange>,
}

/// One changed field: lists give the items added and removed, anything else old and new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// `description`, `meta.KEY`, `related`, or another value key.
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Json>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

impl Comparison {
    /// Whether the clusters hold the same values.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.renamed.is_empty()
            && self.changed.is_empty()
    }
}

/// Reads a cluster file as JSON.
pub fn read(path: &Path) -> Result<Json> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        message: format!("not a cluster file (line {}: {e})", e.line()),
    })
}

fn values_by_uuid(cluster: &Json) -> BTreeMap<String, &serde_json::Map<String, Json>> {
    cluster
        .get("values")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let obj = v.as_object()?;
            Some((obj.get("uuid")?.as_str()?.to_string(), obj))
        })
        .collect()
}

fn name_of(v: &serde_json::Map<String, Json>) -> String {
    v.get("value")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Compares two parsed cluster files.
pub fn compare(old: &Json, new: &Json) -> Comparison {
    let (before, after) = (values_by_uuid(old), values_by_uuid(new));
    let mut c = Comparison {
        kind: new
            .get("type")
            .or_else(|| old.get("type"))
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string(),
        old_version: old.get("version").and_then(Json::as_i64),
        new_version: new.get("version").and_then(Json::as_i64),
        old_values: before.len(),
        new_values: after.len(),
        ..Comparison::default()
    };
    for (uuid, v) in &after {
        let Some(o) = before.get(uuid) else {
            c.added.push(Entry {
                value: name_of(v),
                uuid: uuid.clone(),
            });
            continue;
        };
        let (old_name, new_name) = (name_of(o), name_of(v));
        if old_name != new_name {
            c.renamed.push(Renamed {
                old: old_name,
                new: new_name.clone(),
                uuid: uuid.clone(),
            });
        }
        let fields = field_changes(o, v);
        if !fields.is_empty() {
            c.changed.push(Changed {
                value: new_name,
                uuid: uuid.clone(),
                fields,
            });
        }
    }
    for (uuid, o) in &before {
        if !after.contains_key(uuid) {
            c.removed.push(Entry {
                value: name_of(o),
                uuid: uuid.clone(),
            });
        }
    }
    c.added.sort();
    c.removed.sort();
    c.renamed.sort();
    c.changed
        .sort_by(|a, b| (&a.value, &a.uuid).cmp(&(&b.value, &b.uuid)));
    c
}

/// The changed fields of one value, in a fixed order: description, meta keys (sorted), related, then
/// any other key (sorted).
fn field_changes(
    old: &serde_json::Map<String, Json>,
    new: &serde_json::Map<String, Json>,
) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let field = |name: &str, o: Option<&Json>, n: Option<&Json>, out: &mut Vec<FieldChange>| {
        if o != n {
            out.push(change(name, o, n));
        }
    };
    field(
        "description",
        old.get("description"),
        new.get("description"),
        &mut out,
    );
    let meta = |m: &serde_json::Map<String, Json>| m.get("meta").and_then(Json::as_object).cloned();
    let (old_meta, new_meta) = (
        meta(old).unwrap_or_else(|| empty.clone()),
        meta(new).unwrap_or_else(|| empty.clone()),
    );
    let keys: BTreeSet<&String> = old_meta.keys().chain(new_meta.keys()).collect();
    for key in keys {
        field(
            &format!("meta.{key}"),
            old_meta.get(key),
            new_meta.get(key),
            &mut out,
        );
    }
    let (old_rel, new_rel) = (related(old), related(new));
    if old_rel != new_rel {
        out.push(FieldChange {
            field: "related".into(),
            old: None,
            new: None,
            added: new_rel.difference(&old_rel).cloned().collect(),
            removed: old_rel.difference(&new_rel).cloned().collect(),
        });
    }
    let skip = ["description", "meta", "related", "uuid", "value", "version"];
    let others: BTreeSet<&String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| !skip.contains(&k.as_str()))
        .collect();
    for key in others {
        field(key, old.get(key), new.get(key), &mut out);
    }
    out
}

/// A value's `related` links as `type dest-uuid` strings (with tags, when there are any).
fn related(v: &serde_json::Map<String, Json>) -> BTreeSet<String> {
    v.get("related")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Json::as_str).unwrap_or_default();
            let tags: Vec<&str> = r
                .get("tags")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(Json::as_str)
                .collect();
            if tags.is_empty() {
                format!("{} {}", s("type"), s("dest-uuid"))
            } else {
                format!("{} {} [{}]", s("type"), s("dest-uuid"), tags.join(", "))
            }
        })
        .collect()
}

fn change(field: &str, old: Option<&Json>, new: Option<&Json>) -> FieldChange {
    fn items(v: Option<&Json>) -> Option<Vec<String>> {
        match v {
            None => Some(Vec::new()),
            Some(Json::Array(a)) => Some(a.iter().map(text).collect()),
            Some(_) => None,
        }
    }
    match (items(old), items(new)) {
        (Some(o), Some(n)) if old.is_some() || new.is_some() => {
            let (os, ns): (BTreeSet<&String>, BTreeSet<&String>) =
                (o.iter().collect(), n.iter().collect());
            let added: Vec<String> = n.iter().filter(|x| !os.contains(x)).cloned().collect();
            let removed: Vec<String> = o.iter().filter(|x| !ns.contains(x)).cloned().collect();
            if added.is_empty() && removed.is_empty() {
                // Same items, another order.
                return FieldChange {
                    field: field.into(),
                    old: old.cloned(),
                    new: new.cloned(),
                    added,
                    removed,
                };
            }
            FieldChange {
                field: field.into(),
                old: None,
                new: None,
                added,
                removed,
            }
        }
        _ => FieldChange {
            field: field.into(),
            old: old.cloned(),
            new: new.cloned(),
            added: Vec::new(),
            removed: Vec::new(),
        },
    }
}

/// A JSON value as text: strings bare, anything else as JSON.
fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn shown(v: Option<&Json>) -> String {
    v.map_or_else(|| "(none)".to_string(), |v| format!("{:?}", text(v)))
}

fn version(v: Option<i64>) -> String {
    v.map_or_else(|| "none".into(), |v| v.to_string())
}

/// What MISP does with a renamed value, said once wherever renames are listed.
const RENAME_NOTE: &str = "MISP stores values by name: it adds a value under the new name, and events \
     tagged with the old name keep the old tag";

/// What MISP does with a removed value.
const REMOVE_NOTE: &str = "MISP never deletes values that disappear from a cluster: they stay in MISP, \
     and events keep their tags";

impl FieldChange {
    /// One line: `+a, -b` for lists, `"old" → "new"` otherwise.
    fn summary(&self) -> String {
        if self.old.is_none() && self.new.is_none() {
            let mut parts: Vec<String> = self.added.iter().map(|a| format!("+{a}")).collect();
            parts.extend(self.removed.iter().map(|r| format!("-{r}")));
            parts.join(", ")
        } else {
            format!(
                "{} → {}",
                shown(self.old.as_ref()),
                shown(self.new.as_ref())
            )
        }
    }
}

/// Plain text, for a terminal.
pub fn human(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "cluster {}: version {} → {}, {} → {} values",
        c.kind,
        version(c.old_version),
        version(c.new_version),
        c.old_values,
        c.new_values
    );
    let _ = writeln!(
        s,
        "{} added, {} removed, {} renamed, {} changed",
        c.added.len(),
        c.removed.len(),
        c.renamed.len(),
        c.changed.len()
    );
    for e in &c.added {
        let _ = writeln!(s, "+ {} ({})", e.value, e.uuid);
    }
    for e in &c.removed {
        let _ = writeln!(s, "- {} ({})", e.value, e.uuid);
    }
    if !c.removed.is_empty() {
        let _ = writeln!(s, "  note: {REMOVE_NOTE}");
    }
    for r in &c.renamed {
        let _ = writeln!(s, "> {} → {} ({})", r.old, r.new, r.uuid);
    }
    if !c.renamed.is_empty() {
        let _ = writeln!(s, "  note: {RENAME_NOTE}");
    }
    for ch in &c.changed {
        let _ = writeln!(s, "~ {} ({})", ch.value, ch.uuid);
        for f in &ch.fields {
            let _ = writeln!(s, "    {}: {}", f.field, f.summary());
        }
    }
    s
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// A Markdown table, folded into `<details>` when it has more than [`FOLD`] rows.
fn table(out: &mut String, what: &str, head: &[&str], rows: &[Vec<String>]) {
    let fold = rows.len() > FOLD;
    if fold {
        let _ = writeln!(out, "<details>\n<summary>{} {what}</summary>\n", rows.len());
    }
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", head.iter().map(|_| "---|").collect::<String>());
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    if fold {
        let _ = writeln!(out, "\n</details>");
    }
    out.push('\n');
}

/// Markdown for a release note or a pull-request comment: counts first, then one table per kind of
/// change, long tables folded.
pub fn markdown(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Changes to `{}`\n", c.kind);
    let _ = writeln!(
        s,
        "Version {} → {}; {} → {} values.\n",
        version(c.old_version),
        version(c.new_version),
        c.old_values,
        c.new_values
    );
    let _ = writeln!(s, "| change | values |\n|---|---:|");
    for (what, n) in [
        ("added", c.added.len()),
        ("removed", c.removed.len()),
        ("renamed", c.renamed.len()),
        ("changed", c.changed.len()),
    ] {
        let _ = writeln!(s, "| {what} | {n} |");
    }
    s.push('\n');
    if c.is_empty() {
        s.push_str("No value changed.\n");
        return s;
    }
    let entries = |list: &[Entry]| -> Vec<Vec<String>> {
        list.iter()
            .map(|e| vec![e.value.clone(), format!("`{}`", e.uuid)])
            .collect()
    };
    if !c.added.is_empty() {
        let _ = writeln!(s, "### Added\n");
        table(
            &mut s,
            "added values",
            &["value", "uuid"],
            &entries(&c.added),
        );
    }
    if !c.removed.is_empty() {
        let _ = writeln!(s, "### Removed\n\n{REMOVE_NOTE}.\n");
        table(
            &mut s,
            "removed values",
            &["value", "uuid"],
            &entries(&c.removed),
        );
    }
    if !c.renamed.is_empty() {
        let _ = writeln!(s, "### Renamed\n\n{RENAME_NOTE}.\n");
        let rows: Vec<Vec<String>> = c
            .renamed
            .iter()
            .map(|r| vec![r.old.clone(), r.new.clone(), format!("`{}`", r.uuid)])
            .collect();
        table(
            &mut s,
            "renamed values",
            &["old value", "new value", "uuid"],
            &rows,
        );
    }
    if !c.changed.is_empty() {
        let _ = writeln!(s, "### Changed\n");
        let rows: Vec<Vec<String>> = c
            .changed
            .iter()
            .flat_map(|ch| {
                ch.fields
                    .iter()
                    .map(|f| vec![ch.value.clone(), format!("`{}`", f.field), f.summary()])
            })
            .collect();
        table(
            &mut s,
            &format!("field changes in {} values", c.changed.len()),
            &["value", "field", "change"],
            &rows,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(version: i64, values: Json) -> Json {
        json!({"type": "t", "version": version, "values": values})
    }

    #[test]
    fn sorts_values_into_added_removed_renamed_and_changed() {
        let old = cluster(
            1,
            json!([
                {"uuid": "a", "value": "A", "meta": {"tags": ["x", "y"], "level": "low"}},
                {"uuid": "b", "value": "B"},
                {"uuid": "c", "value": "C", "description": "d"},
                {"uuid": "e", "value": "E", "version": 1},
            ]),
        );
        let new = cluster(
            2,
            json!([
                {"uuid": "a", "value": "A", "meta": {"tags": ["y", "z"], "level": "high"},
                 "related": [{"dest-uuid": "q", "type": "similar"}]},
                {"uuid": "c", "value": "C2", "description": "d"},
                {"uuid": "d", "value": "D"},
                {"uuid": "e", "value": "E", "version": 2},
            ]),
        );
        let c = compare(&old, &new);
        assert_eq!(
            c.added,
            vec![Entry {
                value: "D".into(),
                uuid: "d".into()
            }]
        );
        assert_eq!(
            c.removed,
            vec![Entry {
                value: "B".into(),
                uuid: "b".into()
            }]
        );
        assert_eq!(
            c.renamed,
            vec![Renamed {
                old: "C".into(),
                new: "C2".into(),
                uuid: "c".into()
            }]
        );
        assert_eq!(c.changed.len(), 1, "a value's own version is not content");
        let fields: Vec<&str> = c.changed[0]
            .fields
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, ["meta.level", "meta.tags", "related"]);
        assert_eq!(c.changed[0].fields[1].summary(), "+z, -x");
        assert_eq!(c.changed[0].fields[0].summary(), "\"low\" → \"high\"");
        assert_eq!(c.changed[0].fields[2].added, ["similar q"]);
        assert_eq!((c.old_version, c.new_version), (Some(1), Some(2)));
    }

    #[test]
    fn markdown_puts_counts_first_and_folds_long_tables() {
        let values: Vec<Json> = (0..12)
            .map(|i| json!({"uuid": format!("u{i:02}"), "value": format!("V|{i}")}))
            .collect();
        let md = markdown(&compare(
            &cluster(1, json!([])),
            &cluster(2, Json::Array(values)),
        ));
        let counts = md.find("| added | 12 |").expect("counts");
        let table = md.find("| value | uuid |").expect("table");
        assert!(counts < table, "{md}");
        assert!(
            md.contains("<details>\n<summary>12 added values</summary>"),
            "{md}"
        );
        assert!(md.contains("| V\\|0 | `u00` |"), "cells are escaped: {md}");
    }

    #[test]
    fn identical_clusters_compare_empty() {
        let c = cluster(1, json!([{"uuid": "a", "value": "A"}]));
        let cmp = compare(&c, &c);
        assert!(cmp.is_empty());
        assert!(markdown(&cmp).contains("No value changed."));
    }
}
