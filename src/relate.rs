//! Relate: the `related` links of each value, to ATT&CK and between rules.
//!
//! This stage owns two kinds of links:
//!
//! - **ATT&CK**, from tags, against a misp-galaxy `clusters/` folder ([`AttackIndex`]), with type
//!   `related-to` and the tag `estimative-language:likelihood-probability="almost-certain"`, as MISP's own
//!   script makes them. `attack.tNNNN[.NNN]` links to every mitre-attack-pattern value whose
//!   `meta.external_id` is `TNNNN[.NNN]`; `attack.gNNNN` to mitre-intrusion-set; `attack.sNNNN` to
//!   mitre-malware and mitre-tool.
//! - **Rules**, from Sigma's own fields, to values of this cluster when the target is present. The
//!   relationship types chosen (the value is the subject, the target the object):
//!
//!   | Sigma `related.type` | MISP `type`     | meaning                                               |
//!   |----------------------|-----------------|-------------------------------------------------------|
//!   | `derived`            | `derived-from`  | this rule was derived from the target                 |
//!   | `obsolete`           | `obsoletes`     | this rule replaces the target, which is not used any more |
//!   | `merged`             | `merged-from`   | this rule is the target merged with others            |
//!   | `renamed`            | `renamed-from`  | this rule had the target's id before                  |
//!   | `similar`            | `similar`       | the rules detect similar behaviour                    |
//!   | correlation `rules`  | `correlates`    | this correlation rule correlates the target's events  |
//!
//!   Sigma names the target by `id`; a correlation rule may also name it by `name`. A target that is not
//!   in the cluster (or an unknown `related.type`) makes no link, and links are never duplicated.

use foldhash::{HashMap, HashMapExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::merge::{Value, parse_id};

/// The tag MISP's script puts on ATT&CK links.
pub const ATTACK_LINK_TAG: &str = "estimative-language:likelihood-probability=\"almost-certain\"";

/// One `related` entry of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    pub dest: Uuid,
    pub kind: RelationKind,
}

/// What a link says: its MISP relationship type and tags follow from it (see the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// To an ATT&CK value, from a tag.
    Attack,
    DerivedFrom,
    Obsoletes,
    MergedFrom,
    RenamedFrom,
    Similar,
    Correlates,
}

impl RelationKind {
    /// MISP relationship type.
    pub fn misp_type(self) -> &'static str {
        match self {
            RelationKind::Attack => "related-to",
            RelationKind::DerivedFrom => "derived-from",
            RelationKind::Obsoletes => "obsoletes",
            RelationKind::MergedFrom => "merged-from",
            RelationKind::RenamedFrom => "renamed-from",
            RelationKind::Similar => "similar",
            RelationKind::Correlates => "correlates",
        }
    }

    /// Tags on the relationship (the ATT&CK likelihood tag, or none).
    pub fn tags(self) -> &'static [&'static str] {
        match self {
            RelationKind::Attack => &[ATTACK_LINK_TAG],
            _ => &[],
        }
    }
}

/// The links of every value, and the tags that name ATT&CK ids the clusters do not have.
#[derive(Debug, Default)]
pub struct Related {
    /// The `related` list of every value, by position in the values.
    pub links: Vec<Vec<Relation>>,
    /// (value position, tag position) of each tag [`AttackIndex::links`] finds [`TagLinks::Unknown`], in order: found
    /// while the tags are looked up for links, not by looking them all up again.
    pub unknown_tags: Vec<(usize, usize)>,
}

/// What an [`AttackIndex`] says of one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagLinks<'a> {
    /// An ATT&CK id the clusters have: the uuids of its values.
    Known(&'a [Uuid]),
    /// An ATT&CK id (technique, group or software) the clusters read do not have.
    Unknown,
    /// Any other tag (a tactic, a CVE), or an id of a kind whose cluster file was not there.
    Other,
}

/// ATT&CK external ids (`T1059.001`, `G0007`, `S0002`) to the uuids of the values that carry them.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackIndex {
    #[serde(serialize_with = "crate::sorted::ordered")]
    techniques: HashMap<String, Vec<Uuid>>,
    #[serde(serialize_with = "crate::sorted::ordered")]
    groups: HashMap<String, Vec<Uuid>>,
    #[serde(serialize_with = "crate::sorted::ordered")]
    software: HashMap<String, Vec<Uuid>>,
}

#[derive(Deserialize)]
struct ClusterFile {
    values: Vec<ClusterValue>,
}

#[derive(Deserialize)]
struct ClusterValue {
    uuid: String,
    #[serde(default)]
    meta: Option<ClusterMeta>,
}

#[derive(Deserialize)]
struct ClusterMeta {
    external_id: Option<serde_json::Value>,
}

impl AttackIndex {
    /// Loads `mitre-attack-pattern.json` (required) and `mitre-intrusion-set.json`,
    /// `mitre-malware.json`, `mitre-tool.json` (each optional) from a misp-galaxy `clusters/` folder.
    pub fn load(dir: &Path) -> Result<AttackIndex> {
        let techniques = dir.join("mitre-attack-pattern.json");
        if !techniques.is_file() {
            return Err(Error::Input {
                path: techniques,
                message: "missing: --attack-clusters must hold mitre-attack-pattern.json".into(),
            });
        }
        let mut index = AttackIndex {
            techniques: load_cluster(&techniques)?,
            ..AttackIndex::default()
        };
        for name in [
            "mitre-intrusion-set.json",
            "mitre-malware.json",
            "mitre-tool.json",
        ] {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let map = if name == "mitre-intrusion-set.json" {
                &mut index.groups
            } else {
                &mut index.software
            };
            for (id, uuids) in load_cluster(&path)? {
                map.entry(id).or_default().extend(uuids);
            }
        }
        Ok(index)
    }

    /// What the index says of `tag`: looked up once, whether it links or is reported.
    pub fn links(&self, tag: &str) -> TagLinks<'_> {
        let Some(rest) = tag.strip_prefix("attack.") else {
            return TagLinks::Other;
        };
        let Some(map) = self.map_of(rest) else {
            return TagLinks::Other;
        };
        // Upper-cased on the stack: every tag of every rule is looked up. An id longer than the
        // buffer is none of ATT&CK's.
        let mut buf = [0u8; 32];
        let found = buf.get_mut(..rest.len()).and_then(|upper| {
            upper.copy_from_slice(rest.as_bytes());
            upper.make_ascii_uppercase();
            std::str::from_utf8(upper).ok().and_then(|key| map.get(key))
        });
        if let Some(uuids) = found {
            return TagLinks::Known(uuids);
        }
        // (The kind letter is ASCII: `map_of` knew it.)
        let (kind, id) = rest.split_at(1);
        let (main, sub) = id.split_once('.').unwrap_or((id, "000"));
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let looks_like_id = digits(main, 4)
            && (kind != "t" && kind != "T" || digits(sub, 3))
            && (kind == "t" || kind == "T" || !id.contains('.'));
        match looks_like_id && !map.is_empty() {
            true => TagLinks::Unknown,
            false => TagLinks::Other,
        }
    }

    /// The map for the kind letter an ATT&CK id starts with (`t1059`, `G0007`: either case).
    fn map_of(&self, id: &str) -> Option<&HashMap<String, Vec<Uuid>>> {
        match id.as_bytes().first()? {
            b't' | b'T' => Some(&self.techniques),
            b'g' | b'G' => Some(&self.groups),
            b's' | b'S' => Some(&self.software),
            _ => None,
        }
    }
}

fn load_cluster(path: &Path) -> Result<HashMap<String, Vec<Uuid>>> {
    let bad = |message: String| Error::Input {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file: ClusterFile = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("not a misp-galaxy cluster: {e}")))?;
    let mut map: HashMap<String, Vec<Uuid>> = HashMap::new();
    for v in file.values {
        let Some(serde_json::Value::String(id)) = v.meta.and_then(|m| m.external_id) else {
            continue;
        };
        let uuid = Uuid::try_parse(&v.uuid).map_err(|e| bad(format!("uuid {:?}: {e}", v.uuid)))?;
        map.entry(id.to_ascii_uppercase()).or_default().push(uuid);
    }
    Ok(map)
}

/// The misp-galaxy cluster files ATT&CK links come from, in the order they are checksummed.
const ATTACK_FILES: [&str; 4] = [
    "mitre-attack-pattern.json",
    "mitre-intrusion-set.json",
    "mitre-malware.json",
    "mitre-tool.json",
];

/// A checksum over the ATT&CK cluster files present in `dir` (names included): what an
/// [`AttackIndex`] read from `dir` depends on.
pub fn attack_checksum(dir: &Path) -> Result<String> {
    let mut all = Vec::new();
    for name in ATTACK_FILES {
        let path = dir.join(name);
        // Hashed as read, not read whole: the files are megabytes, and every run checksums them.
        match crate::hash::file_checksum(&path) {
            Ok(sum) => {
                all.extend_from_slice(name.as_bytes());
                all.push(0);
                all.extend_from_slice(sum.as_bytes());
                all.push(b'\n');
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(crate::hash::checksum(&all))
}

/// The link a Sigma `related.type` makes.
pub fn sigma_relation(kind: &str) -> Option<RelationKind> {
    Some(match kind.to_ascii_lowercase().as_str() {
        "derived" => RelationKind::DerivedFrom,
        "obsolete" => RelationKind::Obsoletes,
        "merged" => RelationKind::MergedFrom,
        "renamed" => RelationKind::RenamedFrom,
        "similar" => RelationKind::Similar,
        _ => return None,
    })
}

/// The `related` list of every value (by position in `values`), and the unknown ATT&CK tags.
pub fn relate(values: &[Value], attack: Option<&AttackIndex>) -> Related {
    relate_among(values, attack, &Outside::NONE)
}

/// The galaxy's values that are not passed to [`relate_among`], as targets: by rule id (what the
/// value with that id has as its uuid) and by correlation name. They must not share an id or a
/// name with the values passed, which are looked up first.
#[derive(Clone, Copy)]
pub struct Outside<'a> {
    pub id: &'a (dyn Fn(Uuid) -> Option<Uuid> + Sync),
    pub name: &'a (dyn Fn(&str) -> Option<Uuid> + Sync),
}

impl std::fmt::Debug for Outside<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outside")
    }
}

impl Outside<'static> {
    /// No other values.
    pub const NONE: Outside<'static> = Outside {
        id: &|_| None,
        name: &|_| None,
    };
}

/// [`relate`] for some of the galaxy's values, the others being `outside`.
pub fn relate_among(
    values: &[Value],
    attack: Option<&AttackIndex>,
    outside: &Outside<'_>,
) -> Related {
    // Targets by the rule's own id (even when a duplicate got a derived uuid, the id names the first)
    // and by correlation `name`.
    let mut by_id: HashMap<Uuid, Uuid> = HashMap::with_capacity(values.len());
    let mut by_name: HashMap<&str, Uuid> = HashMap::new();
    for v in values {
        // A value with its own id has it as its uuid: not parsed again.
        let id = match v.own_id {
            true => Some(v.uuid),
            false => v.rule.id.as_deref().and_then(parse_id),
        };
        if let Some(id) = id {
            by_id.entry(id).or_insert(v.uuid);
        }
        if let Some(name) = v.rule.name.as_deref() {
            by_name.entry(name).or_insert(v.uuid);
        }
    }
    let mut unknown_tags = Vec::new();
    let links = values
        .iter()
        .enumerate()
        .map(|(at, v)| {
            let mut out: Vec<Relation> = Vec::new();
            let mut push = |r: Relation| {
                if r.dest != v.uuid && !out.iter().any(|o| o.dest == r.dest && o.kind == r.kind) {
                    out.push(r);
                }
            };
            if let Some(index) = attack {
                for (n, tag) in v.rule.tags.iter().enumerate() {
                    match index.links(tag) {
                        TagLinks::Known(dests) => {
                            for &dest in dests {
                                push(Relation {
                                    dest,
                                    kind: RelationKind::Attack,
                                });
                            }
                        }
                        TagLinks::Unknown => unknown_tags.push((at, n)),
                        TagLinks::Other => {}
                    }
                }
            }
            for rel in &v.rule.related {
                let (Some(kind), Some(dest)) = (
                    sigma_relation(&rel.kind),
                    parse_id(&rel.id)
                        .and_then(|id| by_id.get(&id).copied().or_else(|| (outside.id)(id))),
                ) else {
                    continue;
                };
                push(Relation { dest, kind });
            }
            for target in &v.rule.correlates {
                let dest = parse_id(target)
                    .and_then(|id| by_id.get(&id).copied().or_else(|| (outside.id)(id)))
                    .or_else(|| {
                        by_name
                            .get(target.as_str())
                            .copied()
                            .or_else(|| (outside.name)(target))
                    });
                if let Some(dest) = dest {
                    push(Relation {
                        dest,
                        kind: RelationKind::Correlates,
                    });
                }
            }
            out
        })
        .collect();
    Related {
        links,
        unknown_tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{RelatedRule, Rule, RuleKind};

    fn value(uuid: u128, id: Option<&str>, name: Option<&str>) -> Value {
        Value {
            uuid: Uuid::from_u128(uuid),
            title: format!("t{uuid}"),
            source: 0,
            path: format!("{uuid}.yml"),
            link: None,
            // As merge gives it: the uuid is the rule's own id only when it is that id.
            own_id: id.and_then(parse_id) == Some(Uuid::from_u128(uuid)),
            record: crate::hash::Digest::of(b"k"),
            provenance: None,
            notes: Default::default(),
            rule: Box::new(Rule {
                id: id.map(str::to_string),
                name: name.map(str::to_string),
                ..Rule::titled(format!("t{uuid}"))
            }),
        }
    }

    /// What [`AttackIndex::links`] says, in the two forms the tests ask for.
    impl AttackIndex {
        /// Whether `tag` names an ATT&CK technique, group or software (`attack.t1059.001`, `attack.g0007`,
        /// `attack.s0002`) that the clusters read do not have. Kinds whose cluster file was not there are
        /// never unknown; tactics and other tags are not ids.
        fn is_unknown(&self, tag: &str) -> bool {
            self.links(tag) == TagLinks::Unknown
        }

        /// The uuids a Sigma tag links to (in cluster order); empty for other tags.
        fn lookup(&self, tag: &str) -> &[Uuid] {
            match self.links(tag) {
                TagLinks::Known(uuids) => uuids,
                TagLinks::Unknown | TagLinks::Other => &[],
            }
        }
    }

    fn index() -> AttackIndex {
        let mut i = AttackIndex::default();
        i.techniques
            .insert("T1059.001".into(), vec![Uuid::from_u128(100)]);
        i.techniques.insert(
            "T1003".into(),
            vec![Uuid::from_u128(101), Uuid::from_u128(102)],
        );
        i.groups.insert("G0007".into(), vec![Uuid::from_u128(200)]);
        i.software
            .insert("S0002".into(), vec![Uuid::from_u128(300)]);
        i
    }

    #[test]
    fn lookups_ignore_case_and_never_match_a_long_tag() {
        let i = index();
        assert_eq!(i.lookup("attack.t1059.001"), [Uuid::from_u128(100)]);
        assert_eq!(i.lookup("attack.T1059.001"), i.lookup("attack.t1059.001"));
        assert_eq!(i.lookup("attack.g0007"), [Uuid::from_u128(200)]);
        assert!(
            i.lookup(&format!("attack.t1059.001{}", "x".repeat(40)))
                .is_empty()
        );
        assert!(i.lookup("attack.t1059.00é").is_empty());
        // A tag that resolves is never reported as unknown, whatever its case.
        assert!(!i.is_unknown("attack.T1059.001") && i.is_unknown("attack.T1059.002"));
    }

    #[test]
    fn attack_tags_link_techniques_groups_and_software() {
        let mut v = value(1, None, None);
        v.rule.tags = [
            "attack.execution",
            "attack.t1059.001",
            "attack.t1003",
            "attack.g0007",
            "attack.s0002",
            "attack.t9999",
            "attack.t1059.001",
            "cve.2021-1234",
        ]
        .map(String::from)
        .to_vec();
        let related = relate(&[v], Some(&index()));
        let rel = &related.links;
        let dests: Vec<u128> = rel[0].iter().map(|r| r.dest.as_u128()).collect();
        assert_eq!(dests, vec![100, 101, 102, 200, 300]);
        assert!(rel[0].iter().all(|r| r.kind == RelationKind::Attack
            && r.kind.misp_type() == "related-to"
            && r.kind.tags() == [ATTACK_LINK_TAG]));
        // Found on the way: the technique the clusters lack (tactics and CVEs are not ids).
        assert_eq!(related.unknown_tags, vec![(0, 5)]);
        let none = relate(&[value(1, None, None)], None);
        assert!(none.links[0].is_empty() && none.unknown_tags.is_empty());
    }

    #[test]
    fn sigma_related_links_present_targets_only() {
        let target = "0e5fd4e1-7d61-4d4c-b1e1-4a8b5c8f2b7e";
        let mut v = value(1, None, None);
        v.rule.related = vec![
            RelatedRule {
                id: target.into(),
                kind: "derived".into(),
            },
            RelatedRule {
                id: "6f6e6c6b-0000-4000-8000-000000000000".into(),
                kind: "similar".into(),
            },
            RelatedRule {
                id: target.into(),
                kind: "bogus".into(),
            },
        ];
        let t = value(2, Some(target), None);
        let rel = relate(&[v, t], None).links;
        assert_eq!(
            rel[0],
            vec![Relation {
                dest: Uuid::from_u128(2),
                kind: RelationKind::DerivedFrom,
            }]
        );
        assert!(rel[1].is_empty());
    }

    #[test]
    fn a_value_with_its_own_id_is_found_by_it() {
        let target = Uuid::from_u128(0x0e5fd4e1_7d61_4d4c_b1e1_4a8b5c8f2b7e);
        let mut v = value(1, None, None);
        v.rule.related = vec![RelatedRule {
            id: target.to_string().to_uppercase(),
            kind: "similar".into(),
        }];
        let t = value(target.as_u128(), Some(&target.to_string()), None);
        assert!(t.own_id);
        let rel = relate(&[v, t], None).links;
        assert_eq!(rel[0].iter().map(|r| r.dest).collect::<Vec<_>>(), [target]);
    }

    #[test]
    fn correlations_link_by_id_or_name() {
        let id = "0e5fd4e1-7d61-4d4c-b1e1-4a8b5c8f2b7e";
        let mut c = value(1, None, None);
        c.rule.kind = RuleKind::Correlation;
        c.rule.correlates = vec![id.into(), "failed_logon".into(), "missing".into()];
        let by_id = value(2, Some(id), None);
        let by_name = value(3, None, Some("failed_logon"));
        let rel = relate(&[c, by_id, by_name], None).links;
        let dests: Vec<u128> = rel[0].iter().map(|r| r.dest.as_u128()).collect();
        assert_eq!(dests, vec![2, 3]);
        assert!(rel[0].iter().all(|r| r.kind == RelationKind::Correlates));
    }
}
