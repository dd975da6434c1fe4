//! Coverage: how many rules of a built galaxy cover each ATT&CK technique, by tactic, level, log source
//! and source, optionally weighed by how often analysts tagged each rule in MISP.
//!
//! This module owns the analysis behind `sigma-galaxy coverage` and nothing else: it reads what the
//! pipeline emitted (a galaxy cluster file, never rule files), the misp-galaxy `mitre-attack-pattern`
//! cluster (the catalogue of techniques and their tactics) and MISP's tag statistics, and turns them
//! into one plain [`Coverage`] value, which it renders as JSON, Markdown or an ATT&CK Navigator layer.
//!
//! Counting rules (each a pure function of the inputs, so the output is deterministic):
//!
//! - A value covers technique `TNNNN[.NNN]` when its `meta.tags` hold `attack.tNNNN[.NNN]` (any case).
//!   A technique's count is the number of distinct values tagged with it; with `roll_up`, a
//!   sub-technique's tag counts for its parent instead (a rule tagged with both counts once).
//! - The catalogue is the Enterprise ATT&CK techniques of the cluster (values with an `attack-*`
//!   kill chain) that are neither revoked (`revoked: true`) nor deprecated (misp-galaxy keeps MITRE's
//!   deprecation only as the description's first sentence). Tactics are the kill chains' phase names;
//!   gaps are catalogue techniques no rule covers.
//! - A rule's weight is the number of events carrying its tag `misp-galaxy:TYPE="VALUE"`, compared
//!   ignoring case as MISP does. A technique's, level's or log source's weight is the sum of its rules'
//!   weights: tag occurrences, not distinct events (MISP's statistics do not say which events).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::error::{Error, Result};

/// The levels Sigma defines, in rising order.
pub const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

/// The ATT&CK Navigator layer format written, and the Navigator version it was specified with.
pub const LAYER_FORMAT: &str = "4.5";
/// The Navigator version written into layers (the 4.5 format needs at least 4.9.0).
pub const NAVIGATOR_VERSION: &str = "5.1.0";

/// One value of a galaxy cluster, as coverage sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `value`: the rule's title as MISP stores (and tags) it.
    pub title: String,
    /// `meta.level`.
    pub level: Option<String>,
    /// `meta.logsource.*`.
    pub logsource: LogSource,
    /// `meta.source`: the configured source's name (provenance).
    pub source: Option<String>,
    /// Technique ids of its `attack.tNNNN[.NNN]` tags, upper case, sorted, unique.
    pub techniques: Vec<String>,
}

/// A rule's log source; parts the rule leaves out are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LogSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl std::fmt::Display for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("product", &self.product),
            ("category", &self.category),
            ("service", &self.service),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}:{v}")))
        .collect();
        if parts.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// The rules of one galaxy cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Galaxy {
    /// The cluster's `type`: the `TYPE` of its MISP tags.
    pub kind: String,
    /// Its values, in file order.
    pub rules: Vec<Rule>,
}

/// A technique of the ATT&CK clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technique {
    /// `meta.external_id`, upper case.
    pub id: String,
    /// The value without its ` - TNNNN` suffix.
    pub name: String,
    /// Tactics (kill chain phase names), Enterprise ones when there are any, in cluster order.
    pub tactics: Vec<String>,
    /// Has an Enterprise (`attack-*`) kill chain.
    pub enterprise: bool,
    /// Revoked or deprecated.
    pub retired: bool,
}

/// The techniques of a misp-galaxy `mitre-attack-pattern` cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attack {
    /// By id.
    pub techniques: BTreeMap<String, Technique>,
    /// Enterprise tactics in kill chain order (from the galaxy file beside the clusters folder when
    /// there is one, else alphabetical).
    pub tactics: Vec<String>,
    /// The cluster's `version` (misp-galaxy's revision of it).
    pub cluster_version: Option<i64>,
}

/// Events per tag, from MISP's tag statistics; keys in lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagStats {
    /// Lower-cased tag name → events.
    pub events: HashMap<String, u64>,
    /// Tag name as first written → events, for reporting tags no rule matches.
    pub names: BTreeMap<String, u64>,
}

/// What to count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Count sub-techniques for their parent technique.
    pub roll_up: bool,
    /// Only rules of these levels (lower case); empty: every rule.
    pub levels: Vec<String>,
    /// Only rules of these sources; empty: every rule.
    pub sources: Vec<String>,
    /// The source of values without `meta.source` (a one-source configuration writes none).
    pub default_source: Option<String>,
}

/// The whole analysis: plain data, serialised as is by `--format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The cluster's type.
    pub galaxy: String,
    /// Rules in the cluster.
    pub rules_total: usize,
    /// Rules left after the level and source filters.
    pub rules: usize,
    /// Of those, rules tagged with at least one technique.
    pub rules_with_techniques: usize,
    /// Sub-techniques counted for their parents.
    pub roll_up: bool,
    /// The filters applied.
    pub filters: Filters,
    /// The ATT&CK clusters used, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<AttackInfo>,
    /// Every technique some rule covers, by id.
    pub techniques: Vec<TechniqueCoverage>,
    /// Per tactic, in kill chain order (empty without ATT&CK clusters).
    pub tactics: Vec<TacticCoverage>,
    /// Per level, highest first; rules without a level last.
    pub levels: Vec<GroupCoverage>,
    /// Per log source, most rules first.
    pub logsources: Vec<LogSourceCoverage>,
    /// Per source (values with `meta.source`), by name.
    pub sources: Vec<GroupCoverage>,
    /// Catalogue techniques no rule covers, by id.
    pub uncovered: Vec<TechniqueRef>,
    /// What MISP's tag statistics say, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<Detections>,
}

/// The filters applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    pub levels: Vec<String>,
    pub sources: Vec<String>,
}

/// The ATT&CK clusters used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttackInfo {
    /// misp-galaxy's `version` of the mitre-attack-pattern cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_version: Option<i64>,
    /// Techniques in the catalogue (current Enterprise techniques; parents only with roll-up).
    pub catalogue: usize,
    /// Of those, covered by at least one rule.
    pub covered: usize,
}

/// How one technique is covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TechniqueCoverage {
    pub id: String,
    /// From the ATT&CK clusters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub tactics: Vec<String>,
    /// `current`, `retired` (revoked or deprecated) or `unknown` (not in the clusters, or none given).
    pub attack: &'static str,
    /// Distinct rules tagged with it.
    pub rules: usize,
    /// Their titles, sorted.
    pub titles: Vec<String>,
    /// Sum of its rules' weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
}

/// How one tactic is covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TacticCoverage {
    pub tactic: String,
    /// Catalogue techniques of this tactic covered by some rule.
    pub covered: usize,
    /// Catalogue techniques of this tactic.
    pub techniques: usize,
    /// Distinct rules covering a catalogue technique of this tactic.
    pub rules: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
}

/// Rules and techniques of one level or source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCoverage {
    pub name: String,
    pub rules: usize,
    /// Distinct techniques its rules cover.
    pub techniques: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
}

/// Rules and techniques of one log source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSourceCoverage {
    pub logsource: LogSource,
    pub rules: usize,
    pub techniques: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
}

/// A technique named by id, name and tactics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TechniqueRef {
    pub id: String,
    pub name: String,
    pub tactics: Vec<String>,
}

/// The weighing by MISP's tag statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detections {
    /// Sum of all rules' weights.
    pub events: u64,
    /// Rules with a weight, heaviest first (then by title).
    pub rules: Vec<RuleWeight>,
    /// Covered techniques none of whose rules was ever tagged, by id.
    pub never_seen: Vec<String>,
    /// Tags `misp-galaxy:TYPE="..."` of this galaxy's type that match no rule (renamed or removed
    /// values, or rules filtered out), by name.
    pub unmatched: Vec<TagCount>,
}

/// One rule's weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleWeight {
    pub title: String,
    pub events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    pub logsource: LogSource,
    pub techniques: Vec<String>,
}

/// A tag and its event count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagCount {
    pub tag: String,
    pub events: u64,
}

fn input_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Input {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_json(path: &Path) -> Result<Json> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| input_error(path, format!("line {}: not JSON: {e}", e.line().max(1))))
}

/// The technique id of a Sigma tag `attack.tNNNN[.NNN]` (any case), upper case; `None` for others.
pub fn technique_of_tag(tag: &str) -> Option<String> {
    let rest = tag
        .get(..8)?
        .eq_ignore_ascii_case("attack.t")
        .then(|| &tag[8..])?;
    let (main, sub) = match rest.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (rest, None),
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    (digits(main, 4) && sub.is_none_or(|s| digits(s, 3))).then(|| format!("T{rest}"))
}

/// The parent of a sub-technique id (`T1059.001` → `T1059`); a technique is its own parent.
pub fn parent(id: &str) -> &str {
    id.split_once('.').map_or(id, |(p, _)| p)
}

/// Reads a galaxy cluster file (`clusters/TYPE.json`) as written by `build`.
pub fn read_cluster(path: &Path) -> Result<Galaxy> {
    let json = read_json(path)?;
    let kind = json
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| input_error(path, "not a galaxy cluster: no `type`"))?
        .to_string();
    let values = json
        .get("values")
        .and_then(Json::as_array)
        .ok_or_else(|| input_error(path, "not a galaxy cluster: no `values` list"))?;
    let mut rules = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let title = v
            .get("value")
            .and_then(Json::as_str)
            .ok_or_else(|| input_error(path, format!("values[{i}]: no `value` string")))?
            .to_string();
        let meta = v.get("meta");
        let text = |key: &str| {
            meta.and_then(|m| m.get(key))
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let mut techniques: Vec<String> = meta
            .and_then(|m| m.get("tags"))
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .filter_map(technique_of_tag)
            .collect();
        techniques.sort_unstable();
        techniques.dedup();
        rules.push(Rule {
            title,
            level: text("level").map(|l| l.to_lowercase()),
            logsource: LogSource {
                product: text("logsource.product"),
                category: text("logsource.category"),
                service: text("logsource.service"),
            },
            source: text("source"),
            techniques,
        });
    }
    Ok(Galaxy { kind, rules })
}

/// Whether a misp-galaxy technique description marks it deprecated (MITRE's flag is not carried
/// into the cluster; its text is).
fn deprecated(description: &str) -> bool {
    let d = description.trim_start().trim_start_matches('*');
    [
        "This technique has been deprecated",
        "This technique is deprecated",
        "This object is deprecated",
    ]
    .iter()
    .any(|p| d.starts_with(p))
}

/// Loads `DIR/mitre-attack-pattern.json` (a misp-galaxy clusters folder) and, for the tactics' order,
/// `DIR/../galaxies/mitre-attack-pattern.json` when it exists.
pub fn load_attack(dir: &Path) -> Result<Attack> {
    let path = dir.join("mitre-attack-pattern.json");
    if !path.is_file() {
        return Err(input_error(
            &path,
            "missing: --attack-clusters must hold mitre-attack-pattern.json",
        ));
    }
    let json = read_json(&path)?;
    let values = json
        .get("values")
        .and_then(Json::as_array)
        .ok_or_else(|| input_error(&path, "not a misp-galaxy cluster: no `values` list"))?;
    let mut techniques: BTreeMap<String, Technique> = BTreeMap::new();
    let mut seen_tactics: BTreeSet<String> = BTreeSet::new();
    for v in values {
        let meta = v.get("meta");
        let Some(id) = meta
            .and_then(|m| m.get("external_id"))
            .and_then(Json::as_str)
            .filter(|id| technique_of_tag(&format!("attack.{id}")).is_some())
        else {
            continue;
        };
        let id = id.to_ascii_uppercase();
        let value = v.get("value").and_then(Json::as_str).unwrap_or_default();
        let name = value
            .strip_suffix(&format!(" - {id}"))
            .unwrap_or(value)
            .to_string();
        let chains: Vec<&str> = meta
            .and_then(|m| m.get("kill_chain"))
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        let enterprise = chains.iter().any(|c| c.starts_with("attack-"));
        let mut tactics: Vec<String> = Vec::new();
        for chain in &chains {
            if enterprise && !chain.starts_with("attack-") {
                continue;
            }
            let phase = chain.rsplit(':').next().unwrap_or(chain).to_string();
            if !tactics.contains(&phase) {
                tactics.push(phase);
            }
        }
        let description = v.get("description").and_then(Json::as_str).unwrap_or("");
        let retired =
            v.get("revoked").and_then(Json::as_bool).unwrap_or(false) || deprecated(description);
        if enterprise && !retired {
            seen_tactics.extend(tactics.iter().cloned());
        }
        let technique = Technique {
            id: id.clone(),
            name,
            tactics,
            enterprise,
            retired,
        };
        // The same id twice (it does not happen in misp-galaxy today): a current entry wins.
        match techniques.get(&id) {
            Some(old) if !old.retired || technique.retired => {}
            _ => {
                techniques.insert(id, technique);
            }
        }
    }
    let order = dir
        .parent()
        .map(|p| p.join("galaxies/mitre-attack-pattern.json"))
        .filter(|p| p.is_file())
        .map(|p| read_json(&p).map(|j| kill_chain_order(&j)))
        .transpose()?
        .unwrap_or_default();
    let mut tactics: Vec<String> = order
        .into_iter()
        .filter(|t| seen_tactics.contains(t))
        .collect();
    for t in seen_tactics {
        if !tactics.contains(&t) {
            tactics.push(t);
        }
    }
    Ok(Attack {
        techniques,
        tactics,
        cluster_version: json.get("version").and_then(Json::as_i64),
    })
}

/// One order of the Enterprise tactics from a galaxy's `kill_chain_order` (one list per platform):
/// lists are merged so that each keeps its own order; a list sharing no tactic with those before
/// it (PRE's reconnaissance and resource development) goes first, as in ATT&CK's matrix.
fn kill_chain_order(galaxy: &Json) -> Vec<String> {
    let Some(lists) = galaxy.get("kill_chain_order").and_then(Json::as_object) else {
        return Vec::new();
    };
    let mut lists: Vec<Vec<&str>> = lists
        .iter()
        .filter(|(k, _)| k.starts_with("attack-"))
        .filter_map(|(_, v)| v.as_array())
        .map(|l| l.iter().filter_map(Json::as_str).collect())
        .collect();
    // Longest first, so that the widest list sets the frame.
    lists.sort_by_key(|l| std::cmp::Reverse(l.len()));
    let mut order: Vec<String> = Vec::new();
    for list in lists {
        if !list.iter().any(|t| order.iter().any(|o| o == t)) {
            let mut merged: Vec<String> = list.iter().map(|t| t.to_string()).collect();
            merged.append(&mut order);
            order = merged;
            continue;
        }
        for (i, t) in list.iter().enumerate() {
            if order.iter().any(|o| o == t) {
                continue;
            }
            // Before the next tactic of this list already placed, else after the previous one.
            let next = list[i + 1..]
                .iter()
                .find_map(|n| order.iter().position(|o| o == n));
            let at = next.unwrap_or_else(|| {
                list[..i]
                    .iter()
                    .rev()
                    .find_map(|p| order.iter().position(|o| o == p))
                    .map_or(order.len(), |p| p + 1)
            });
            order.insert(at, t.to_string());
        }
    }
    order
}

/// Reads MISP's tag statistics: `/users/statistics/tags.json` (`flatData`: namespace → tag →
/// `{name, size}`) or `/tags/tagStatistics` (`tags`: tag → count as a string). Percentages
/// (`/tags/tagStatistics/true`) are refused: they cannot weigh rules.
pub fn read_tag_stats(path: &Path) -> Result<TagStats> {
    let json = read_json(path)?;
    let mut stats = TagStats::default();
    let mut add = |name: &str, count: u64| {
        *stats.events.entry(name.to_lowercase()).or_default() += count;
        *stats.names.entry(name.to_string()).or_default() += count;
    };
    let count_of = |tag: &str, v: &Json| -> Result<u64> {
        let bad = || {
            input_error(
                path,
                format!("tag {tag:?}: count {v} is not a number of events"),
            )
        };
        match v {
            Json::Number(n) => n.as_u64().ok_or_else(bad),
            Json::String(s) if s.ends_with('%') => Err(input_error(
                path,
                format!(
                    "tag {tag:?}: count {s:?} is a percentage; fetch /tags/tagStatistics/false (event counts)"
                ),
            )),
            Json::String(s) => s.trim().parse().map_err(|_| bad()),
            _ => Err(bad()),
        }
    };
    if let Some(flat) = json.get("flatData").and_then(Json::as_object) {
        for (namespace, tags) in flat {
            let tags = tags.as_object().ok_or_else(|| {
                input_error(path, format!("flatData.{namespace}: not an object of tags"))
            })?;
            for (key, entry) in tags {
                let name = entry.get("name").and_then(Json::as_str).unwrap_or(key);
                let size = entry.get("size").unwrap_or(&Json::Null);
                add(name, count_of(name, size)?);
            }
        }
    } else if let Some(tags) = json.get("tags").and_then(Json::as_object) {
        for (name, count) in tags {
            add(name, count_of(name, count)?);
        }
    } else {
        return Err(input_error(
            path,
            "not MISP tag statistics: expected `flatData` (/users/statistics/tags.json) or `tags` (/tags/tagStatistics)",
        ));
    }
    Ok(stats)
}

/// The MISP tag of a value of cluster type `kind`.
pub fn misp_tag(kind: &str, title: &str) -> String {
    format!("misp-galaxy:{kind}=\"{title}\"")
}

/// Checks the filters against the galaxy: an unknown level, or a source no value comes from, is a
/// configuration error rather than an empty result.
pub fn check_filters(galaxy: &Galaxy, opts: &Options) -> Result<()> {
    for l in &opts.levels {
        if !LEVELS.contains(&l.as_str()) {
            return Err(Error::config(format!(
                "--level {l}: use one of {}",
                LEVELS.join(", ")
            )));
        }
    }
    if opts.sources.is_empty() {
        return Ok(());
    }
    let known: BTreeSet<&str> = galaxy
        .rules
        .iter()
        .filter_map(|r| r.source.as_deref().or(opts.default_source.as_deref()))
        .collect();
    if known.is_empty() {
        return Err(Error::config(
            "--source: the cluster's values carry no meta.source (sigma-galaxy writes it for galaxies of two or more sources, or when configured)",
        ));
    }
    for s in &opts.sources {
        if !known.contains(s.as_str()) {
            let list: Vec<&str> = known.into_iter().collect();
            return Err(Error::config(format!(
                "--source {s}: no value comes from it; sources: {}",
                list.join(", ")
            )));
        }
    }
    Ok(())
}

/// Counts what the rules of `galaxy` (after `opts`' filters) cover.
pub fn analyze(
    galaxy: &Galaxy,
    attack: Option<&Attack>,
    stats: Option<&TagStats>,
    opts: &Options,
) -> Coverage {
    let source_of = |r: &Rule| r.source.clone().or_else(|| opts.default_source.clone());
    let rules: Vec<&Rule> = galaxy
        .rules
        .iter()
        .filter(|r| {
            opts.levels.is_empty() || r.level.as_ref().is_some_and(|l| opts.levels.contains(l))
        })
        .filter(|r| {
            opts.sources.is_empty() || source_of(r).is_some_and(|s| opts.sources.contains(&s))
        })
        .collect();
    let weight = |r: &Rule| -> Option<u64> {
        stats.map(|s| {
            let tag = misp_tag(&galaxy.kind, &r.title).to_lowercase();
            s.events.get(&tag).copied().unwrap_or(0)
        })
    };
    let weights: Vec<Option<u64>> = rules.iter().map(|r| weight(r)).collect();
    let sum = |idx: &BTreeSet<usize>| -> Option<u64> {
        stats.map(|_| idx.iter().map(|&i| weights[i].unwrap_or(0)).sum())
    };
    // The techniques each rule covers, after roll-up.
    let covers: Vec<BTreeSet<String>> = rules
        .iter()
        .map(|r| {
            r.techniques
                .iter()
                .map(|t| {
                    if opts.roll_up {
                        parent(t).to_string()
                    } else {
                        t.clone()
                    }
                })
                .collect()
        })
        .collect();
    let mut by_technique: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for (i, ts) in covers.iter().enumerate() {
        for t in ts {
            by_technique.entry(t).or_default().insert(i);
        }
    }
    let lookup = |id: &str| attack.and_then(|a| a.techniques.get(id));
    let techniques: Vec<TechniqueCoverage> = by_technique
        .iter()
        .map(|(&id, idx)| {
            let known = lookup(id);
            let mut titles: Vec<String> = idx.iter().map(|&i| rules[i].title.clone()).collect();
            titles.sort();
            TechniqueCoverage {
                id: id.to_string(),
                name: known.map(|t| t.name.clone()),
                tactics: known.map(|t| t.tactics.clone()).unwrap_or_default(),
                attack: match known {
                    Some(t) if t.retired => "retired",
                    Some(_) => "current",
                    None => "unknown",
                },
                rules: idx.len(),
                titles,
                events: sum(idx),
            }
        })
        .collect();

    // The catalogue: current Enterprise techniques (parents only when rolling up).
    let catalogue: Vec<&Technique> = attack
        .map(|a| {
            a.techniques
                .values()
                .filter(|t| t.enterprise && !t.retired)
                .filter(|t| !opts.roll_up || !t.id.contains('.'))
                .collect()
        })
        .unwrap_or_default();
    let tactics = attack
        .map(|a| {
            a.tactics
                .iter()
                .map(|tactic| {
                    let of_tactic: Vec<&Technique> = catalogue
                        .iter()
                        .copied()
                        .filter(|t| t.tactics.contains(tactic))
                        .collect();
                    let mut idx = BTreeSet::new();
                    let mut covered = 0;
                    for t in &of_tactic {
                        if let Some(r) = by_technique.get(t.id.as_str()) {
                            covered += 1;
                            idx.extend(r.iter().copied());
                        }
                    }
                    TacticCoverage {
                        tactic: tactic.clone(),
                        covered,
                        techniques: of_tactic.len(),
                        rules: idx.len(),
                        events: sum(&idx),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let uncovered: Vec<TechniqueRef> = catalogue
        .iter()
        .filter(|t| !by_technique.contains_key(t.id.as_str()))
        .map(|t| TechniqueRef {
            id: t.id.clone(),
            name: t.name.clone(),
            tactics: t.tactics.clone(),
        })
        .collect();

    let group =
        |key: &dyn Fn(&Rule) -> Option<String>| -> BTreeMap<Option<String>, BTreeSet<usize>> {
            let mut m: BTreeMap<Option<String>, BTreeSet<usize>> = BTreeMap::new();
            for (i, r) in rules.iter().enumerate() {
                m.entry(key(r)).or_default().insert(i);
            }
            m
        };
    let distinct = |idx: &BTreeSet<usize>| -> usize {
        idx.iter()
            .flat_map(|&i| covers[i].iter())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let mut levels: Vec<GroupCoverage> = group(&|r| r.level.clone())
        .into_iter()
        .map(|(name, idx)| GroupCoverage {
            name: name.unwrap_or_else(|| "(none)".into()),
            rules: idx.len(),
            techniques: distinct(&idx),
            events: sum(&idx),
        })
        .collect();
    // critical first, then down to informational; levels Sigma does not define, then none, last.
    let rank = |name: &str| LEVELS.iter().position(|l| *l == name).map_or(0, |p| p + 1);
    levels.sort_by_key(|g| {
        let none = g.name == "(none)";
        (none, std::cmp::Reverse(rank(&g.name)), g.name.clone())
    });
    let sources: Vec<GroupCoverage> = group(&source_of)
        .into_iter()
        .filter_map(|(name, idx)| {
            Some(GroupCoverage {
                name: name?,
                rules: idx.len(),
                techniques: distinct(&idx),
                events: sum(&idx),
            })
        })
        .collect();
    let mut by_logsource: BTreeMap<&LogSource, BTreeSet<usize>> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        by_logsource.entry(&r.logsource).or_default().insert(i);
    }
    let mut logsources: Vec<LogSourceCoverage> = by_logsource
        .into_iter()
        .map(|(ls, idx)| LogSourceCoverage {
            logsource: ls.clone(),
            rules: idx.len(),
            techniques: distinct(&idx),
            events: sum(&idx),
        })
        .collect();
    // Heaviest first when weighed, else most rules first; the log source breaks ties (stable sort).
    logsources.sort_by_key(|l| std::cmp::Reverse((l.events.unwrap_or(0), l.rules)));

    let detections = stats.map(|s| {
        let mut weighed: Vec<RuleWeight> = rules
            .iter()
            .zip(&weights)
            .filter_map(|(r, w)| {
                let events = w.unwrap_or(0);
                (events > 0).then(|| RuleWeight {
                    title: r.title.clone(),
                    events,
                    level: r.level.clone(),
                    logsource: r.logsource.clone(),
                    techniques: r.techniques.clone(),
                })
            })
            .collect();
        weighed.sort_by(|a, b| b.events.cmp(&a.events).then(a.title.cmp(&b.title)));
        let matched: BTreeSet<String> = rules
            .iter()
            .map(|r| misp_tag(&galaxy.kind, &r.title).to_lowercase())
            .collect();
        let prefix = format!("misp-galaxy:{}=", galaxy.kind).to_lowercase();
        let unmatched = s
            .names
            .iter()
            .filter(|(name, _)| {
                let lower = name.to_lowercase();
                lower.starts_with(&prefix) && !matched.contains(&lower)
            })
            .map(|(name, &events)| TagCount {
                tag: name.clone(),
                events,
            })
            .collect();
        Detections {
            events: weights.iter().map(|w| w.unwrap_or(0)).sum(),
            rules: weighed,
            never_seen: techniques
                .iter()
                .filter(|t| t.events == Some(0))
                .map(|t| t.id.clone())
                .collect(),
            unmatched,
        }
    });

    Coverage {
        galaxy: galaxy.kind.clone(),
        rules_total: galaxy.rules.len(),
        rules: rules.len(),
        rules_with_techniques: covers.iter().filter(|c| !c.is_empty()).count(),
        roll_up: opts.roll_up,
        filters: Filters {
            levels: opts.levels.clone(),
            sources: opts.sources.clone(),
        },
        attack: attack.map(|a| AttackInfo {
            cluster_version: a.cluster_version,
            catalogue: catalogue.len(),
            covered: catalogue
                .iter()
                .filter(|t| by_technique.contains_key(t.id.as_str()))
                .count(),
        }),
        techniques,
        tactics,
        levels,
        logsources,
        sources,
        uncovered,
        detections,
    }
}

/// `--format json`: the analysis as is, pretty-printed, with a final newline.
pub fn to_json(c: &Coverage) -> String {
    let mut s = serde_json::to_string_pretty(c).unwrap_or_default();
    s.push('\n');
    s
}

/// `--format navigator`: an ATT&CK Navigator layer (format 4.5) of the Enterprise domain. Every
/// covered technique gets its rule count as score and the rule titles as comment (and, weighed, its
/// events as metadata); the gradient runs from white at 0 to red at the highest count.
/// `attack_version` is the ATT&CK release for `versions.attack` (misp-galaxy's clusters do not
/// record it); without it the Navigator assumes its current release.
pub fn navigator(c: &Coverage, attack_version: Option<&str>) -> String {
    let max = c
        .techniques
        .iter()
        .map(|t| t.rules)
        .max()
        .unwrap_or(0)
        .max(1);
    let techniques: Vec<Json> = c
        .techniques
        .iter()
        .map(|t| {
            let mut o = json!({
                "techniqueID": t.id,
                "score": t.rules,
                "comment": t.titles.join("\n"),
                "enabled": true,
            });
            if let Some(events) = t.events {
                o["metadata"] = json!([{"name": "events", "value": events.to_string()}]);
            }
            o
        })
        .collect();
    let mut versions = json!({"navigator": NAVIGATOR_VERSION, "layer": LAYER_FORMAT});
    if let Some(v) = attack_version {
        versions["attack"] = json!(v);
    }
    let mut metadata = vec![
        json!({"name": "galaxy", "value": c.galaxy}),
        json!({"name": "rules", "value": c.rules.to_string()}),
    ];
    if let Some(a) = &c.attack {
        let version = a
            .cluster_version
            .map_or_else(|| "?".to_string(), |v| v.to_string());
        metadata.push(json!({"name": "mitre-attack-pattern cluster version", "value": version}));
    }
    if !c.filters.levels.is_empty() {
        metadata.push(json!({"name": "levels", "value": c.filters.levels.join(", ")}));
    }
    if !c.filters.sources.is_empty() {
        metadata.push(json!({"name": "sources", "value": c.filters.sources.join(", ")}));
    }
    let layer = json!({
        "name": format!("{} coverage", c.galaxy),
        "versions": versions,
        "domain": "enterprise-attack",
        "description": format!(
            "Rules of the {} galaxy per ATT&CK technique{} (score: rule count), by sigma-galaxy",
            c.galaxy,
            if c.roll_up { ", sub-techniques rolled up" } else { "" }
        ),
        "sorting": 3,
        "layout": {
            "layout": "side",
            "showID": true,
            "showName": true,
            "showAggregateScores": c.roll_up,
            "aggregateFunction": "max",
            "expandedSubtechniques": if c.roll_up { "none" } else { "annotated" },
        },
        "hideDisabled": false,
        "techniques": techniques,
        "gradient": {"colors": ["#ffffff", "#ff6666"], "minValue": 0, "maxValue": max},
        "legendItems": [],
        "metadata": metadata,
        "showTacticRowBackground": false,
        "selectTechniquesAcrossTactics": true,
        "selectSubtechniquesWithParent": false,
        "selectVisibleTechniques": false,
    });
    let mut s = serde_json::to_string_pretty(&layer).unwrap_or_default();
    s.push('\n');
    s
}

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
}

fn events_cell(e: Option<u64>) -> String {
    e.map(|e| format!(" {e} |")).unwrap_or_default()
}

/// `--format markdown`: the tables a detection lead reads.
pub fn markdown(c: &Coverage) -> String {
    use std::fmt::Write;
    let weighed = c.detections.is_some();
    let ev_head = if weighed { " Events |" } else { "" };
    let ev_rule = if weighed { "---:|" } else { "" };
    let mut m = String::new();
    let _ = writeln!(m, "# ATT&CK coverage of the {} galaxy\n", cell(&c.galaxy));
    let mut filters = Vec::new();
    if !c.filters.levels.is_empty() {
        filters.push(format!("level {}", c.filters.levels.join(", ")));
    }
    if !c.filters.sources.is_empty() {
        filters.push(format!("source {}", c.filters.sources.join(", ")));
    }
    let _ = write!(m, "{} rules", c.rules);
    if c.rules != c.rules_total {
        let _ = write!(m, " of {} ({})", c.rules_total, filters.join("; "));
    }
    let _ = write!(
        m,
        "; {} tagged with ATT&CK techniques, covering {} techniques",
        c.rules_with_techniques,
        c.techniques.len()
    );
    if c.roll_up {
        m.push_str(" (sub-techniques rolled up)");
    }
    match &c.attack {
        Some(a) => {
            let _ = writeln!(
                m,
                ". {} of the {} current Enterprise techniques in the ATT&CK clusters are covered.",
                a.covered, a.catalogue
            );
        }
        None => m.push_str(
            ". No ATT&CK clusters given (--attack-clusters): no tactics, names or gaps.\n",
        ),
    }
    if let Some(d) = &c.detections {
        let _ = writeln!(
            m,
            "\nMISP tag statistics: {} rule tags on events; {} rules tagged at least once.",
            d.events,
            d.rules.len()
        );
    }

    if !c.tactics.is_empty() {
        let _ = writeln!(
            m,
            "\n## Techniques covered per tactic\n\n| Tactic | Covered | Techniques | Coverage | Rules |{ev_head}\n|---|---:|---:|---:|---:|{ev_rule}"
        );
        for t in &c.tactics {
            let pct = if t.techniques == 0 {
                0.0
            } else {
                100.0 * t.covered as f64 / t.techniques as f64
            };
            let _ = writeln!(
                m,
                "| {} | {} | {} | {pct:.0}% | {} |{}",
                cell(&t.tactic),
                t.covered,
                t.techniques,
                t.rules,
                events_cell(t.events)
            );
        }
    }

    let _ = writeln!(
        m,
        "\n## Rules per log source\n\n| Product | Category | Service | Rules | Techniques |{ev_head}\n|---|---|---|---:|---:|{ev_rule}"
    );
    for l in &c.logsources {
        let part = |p: &Option<String>| p.as_deref().map(cell).unwrap_or_default();
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} |{}",
            part(&l.logsource.product),
            part(&l.logsource.category),
            part(&l.logsource.service),
            l.rules,
            l.techniques,
            events_cell(l.events)
        );
    }

    let _ = writeln!(
        m,
        "\n## Rules per level\n\n| Level | Rules | Techniques |{ev_head}\n|---|---:|---:|{ev_rule}"
    );
    for g in &c.levels {
        let _ = writeln!(
            m,
            "| {} | {} | {} |{}",
            cell(&g.name),
            g.rules,
            g.techniques,
            events_cell(g.events)
        );
    }

    if !c.sources.is_empty() {
        let _ = writeln!(
            m,
            "\n## Rules per source\n\n| Source | Rules | Techniques |{ev_head}\n|---|---:|---:|{ev_rule}"
        );
        for g in &c.sources {
            let _ = writeln!(
                m,
                "| {} | {} | {} |{}",
                cell(&g.name),
                g.rules,
                g.techniques,
                events_cell(g.events)
            );
        }
    }

    if let Some(d) = &c.detections {
        let _ = writeln!(
            m,
            "\n## Rules that detect most\n\n| Rule | Events | Level | Log source | Techniques |\n|---|---:|---|---|---|"
        );
        for r in &d.rules {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} |",
                cell(&r.title),
                r.events,
                r.level.as_deref().map(cell).unwrap_or_default(),
                cell(&r.logsource.to_string()),
                r.techniques.join(", ")
            );
        }
        let _ = writeln!(
            m,
            "\n## Covered techniques never seen in events\n\n{} covered techniques: none of their rules' tags is on any event.\n\n| Technique | Name | Rules |\n|---|---|---:|",
            d.never_seen.len()
        );
        for t in c.techniques.iter().filter(|t| t.events == Some(0)) {
            let _ = writeln!(
                m,
                "| {} | {} | {} |",
                t.id,
                t.name.as_deref().map(cell).unwrap_or_default(),
                t.rules
            );
        }
        if !d.unmatched.is_empty() {
            let _ = writeln!(
                m,
                "\n## Tags of this galaxy that match no rule\n\nRenamed or removed rules keep their old tags on events (or the rules are filtered out).\n\n| Tag | Events |\n|---|---:|"
            );
            for t in &d.unmatched {
                let _ = writeln!(m, "| {} | {} |", cell(&t.tag), t.events);
            }
        }
    }

    let stale: Vec<&TechniqueCoverage> = c
        .techniques
        .iter()
        .filter(|t| c.attack.is_some() && t.attack != "current")
        .collect();
    if !stale.is_empty() {
        let _ = writeln!(
            m,
            "\n## Tags to update\n\nTechniques rules are tagged with that the ATT&CK clusters mark revoked or deprecated, or do not hold.\n\n| Technique | Name | ATT&CK | Rules |\n|---|---|---|---|"
        );
        for t in stale {
            let status = if t.attack == "retired" {
                "revoked or deprecated"
            } else {
                "not in the clusters"
            };
            let titles: Vec<String> = t.titles.iter().map(|x| cell(x)).collect();
            let _ = writeln!(
                m,
                "| {} | {} | {status} | {} |",
                t.id,
                t.name.as_deref().map(cell).unwrap_or_default(),
                titles.join("; ")
            );
        }
    }

    let _ = writeln!(
        m,
        "\n## Techniques covered\n\n| Technique | Name | Tactics | Rules |{ev_head}\n|---|---|---|---:|{ev_rule}"
    );
    for t in &c.techniques {
        let name = match (t.name.as_deref(), t.attack) {
            (Some(n), "retired") => format!("{} (revoked or deprecated)", cell(n)),
            (Some(n), _) => cell(n),
            (None, _) if c.attack.is_some() => "(not in the ATT&CK clusters)".into(),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            m,
            "| {} | {name} | {} | {} |{}",
            t.id,
            t.tactics.join(", "),
            t.rules,
            events_cell(t.events)
        );
    }

    if c.attack.is_some() {
        let _ = writeln!(
            m,
            "\n## Techniques covered by no rule\n\n{} current Enterprise techniques of the ATT&CK clusters.\n\n| Technique | Name | Tactics |\n|---|---|---|",
            c.uncovered.len()
        );
        for t in &c.uncovered {
            let _ = writeln!(
                m,
                "| {} | {} | {} |",
                t.id,
                cell(&t.name),
                t.tactics.join(", ")
            );
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn technique_tags_are_strict() {
        assert_eq!(technique_of_tag("attack.t1059"), Some("T1059".into()));
        assert_eq!(
            technique_of_tag("ATTACK.T1059.001"),
            Some("T1059.001".into())
        );
        for t in [
            "attack.execution",
            "attack.t105",
            "attack.t1059.01",
            "attack.t1059.0011",
            "attack.g0007",
            "attack.t1059x",
            "car.2016-04-005",
            "attack.",
        ] {
            assert_eq!(technique_of_tag(t), None, "{t}");
        }
    }

    #[test]
    fn kill_chain_lists_merge_in_their_own_order() {
        let g = json!({"kill_chain_order": {
            "attack-A": ["initial-access", "execution", "impact"],
            "attack-B": ["initial-access", "execution", "collection", "exfiltration", "impact"],
            "attack-PRE": ["reconnaissance", "resource-development"],
            "mobile-attack-X": ["network-effects"],
        }});
        assert_eq!(
            kill_chain_order(&g),
            [
                "reconnaissance",
                "resource-development",
                "initial-access",
                "execution",
                "collection",
                "exfiltration",
                "impact"
            ]
        );
    }

    #[test]
    fn deprecation_is_read_from_the_description() {
        assert!(deprecated(
            "**This technique has been deprecated. Please use X.**"
        ));
        assert!(deprecated(
            "This object is deprecated as its content has been merged."
        ));
        assert!(!deprecated("Adversaries may abuse deprecated protocols."));
    }
}
