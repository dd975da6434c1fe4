//! Splice: a build that merges, relates and formats only the values of the rule files that changed,
//! and copies every other value's text from the previous cluster file.
//!
//! It applies when the last build left a value table for the cluster file that is there now
//! ([`crate::state::table`]), when only the sources' commits changed since (the same options, galaxy,
//! sources and ATT&CK clusters), when every source's history walk extended the previous one (so the
//! files it did not touch keep their blob, last change and origin) and no source's identities come
//! from the ledger. The changed files' rules are merged alone, with every lookup against the kept
//! values answered by the table; the result is used only when the change is isolated (no key shared
//! with a kept value, see the table's documentation), which makes it the cluster a full merge gives.
//! Otherwise the build merges every value, as without a table, and says why (`Reason::Clash`).

use foldhash::{HashSet, HashSetExt};

use crate::config::{Config, RefStyle};
use crate::emit::{self, Place};
use crate::findings::Finding;
use crate::merge::{self, Value};
use crate::relate::{self, AttackIndex, Outside, Relation};
use crate::sources::Snapshot;
use crate::state::reason::Reason;
use crate::state::table::{self, Kept, Key, Table};
use crate::state::{Sources, State};

use super::{FileCandidates, Parsed, Walked};

/// A change that can be spliced: the kept rows, and the changed files' values made alone.
#[derive(Debug)]
pub(super) struct Splice<'t> {
    pub kept: Kept<'t>,
    /// The changed files, by [`table::file_key`].
    pub touched: HashSet<Key>,
    /// The changed files' values, merged and related alone.
    pub values: Vec<Value>,
    pub related: Vec<Vec<Relation>>,
    /// Their table (spans filled in once they are formatted).
    pub table: Table,
    /// The findings of the changed files.
    pub warnings: Vec<Finding>,
}

/// What a build may do with the table.
#[derive(Debug)]
pub(super) enum Plan<'t> {
    Splice(Box<Splice<'t>>),
    /// The change is not isolated: every value is merged.
    Clash(Reason),
}

/// The build key's inputs without the sources' commits.
fn without_commits(inputs: &serde_json::Value) -> serde_json::Value {
    let mut v = inputs.clone();
    if let Some(sources) = v.get_mut("sources").and_then(|s| s.as_array_mut()) {
        for s in sources {
            if let Some(o) = s.as_object_mut() {
                o.remove("commit");
            }
        }
    }
    v
}

/// Whether the table of `prev` may be used for this build, as far as the state tells (the history
/// walks tell the rest, see [`walks_allow`]): `inputs` and `key` are the build key's inputs and hash.
/// When it may, the parse cache's records are decoded only where the change needs them.
pub(super) fn may_apply(
    config: &Config,
    prev: &State,
    inputs: &serde_json::Value,
    key: &str,
    damaged: bool,
) -> bool {
    let Some(rec) = &prev.build else {
        return false;
    };
    !config.full
        && !damaged
        && prev.parsed.parser == crate::state::key::parser_stamp(&config.limits)
        && !config.value_versions
        && config.ref_style != RefStyle::Commit
        && config.mode == crate::config::Mode::Build
        && rec.key != key
        && !prev.sources.table.cluster.is_empty()
        && prev.sources.table.rows.len() == rec.values
        && without_commits(&rec.inputs) == without_commits(inputs)
}

/// Whether the history walks allow using the table: each extended the previous walk, and no
/// source's identities come from the ledger.
pub(super) fn walks_allow(walked: &Walked) -> bool {
    walked.touched.iter().all(Option::is_some) && walked.ledger_identity.iter().all(Option::is_none)
}

/// Merges and relates the changed files' rules alone, and checks that the change is isolated.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan<'t>(
    config: &Config,
    names: &[String],
    snapshots: &[Snapshot],
    walked: &Walked,
    prev: &'t Sources,
    parsed: &Parsed,
    attack: Option<&AttackIndex>,
) -> Plan<'t> {
    let mut touched = HashSet::new();
    for (name, paths) in names.iter().zip(&walked.touched) {
        for path in paths.iter().flatten() {
            touched.insert(table::file_key(name, path));
        }
    }
    let kept = prev.table.keep(&touched);
    // The changed files' candidates, in source then path order, as the full merge takes them.
    let mut candidates = Vec::new();
    let mut warnings = Vec::new();
    for (s, snap) in snapshots.iter().enumerate() {
        let made = FileCandidates {
            config,
            name: &names[s],
            snap,
            history: &walked.histories[s],
            ledger: None,
        };
        for path in walked.touched[s].iter().flatten() {
            let Ok(at) = parsed
                .jobs
                .binary_search_by(|j| (j.source, j.path).cmp(&(s, path.as_str())))
            else {
                continue; // deleted, or not a rule file
            };
            let job = &parsed.jobs[at];
            let Some(key) = job.key else { continue };
            let Some(file) = parsed.cache.entries.get(&key) else {
                continue;
            };
            let last = walked.histories[s].last_change.get(job.path);
            made.push(job, key, last, file.clone(), &mut candidates, &mut warnings);
        }
    }
    let merged = merge::merge(
        candidates,
        names,
        &super::policies(config),
        config.galaxy.uuid,
        &config.galaxy.kind,
        config.filters,
        &mut warnings,
    );
    let mut values = merged.values;
    super::set_provenance(config, snapshots, &mut values);
    let outside = Outside {
        id: &|id| kept.outside_id(id),
        name: &|name| kept.outside_name(name),
    };
    let related = relate::relate_among(&values, attack, &outside);
    warnings.extend(super::unknown_attack_tags(
        &values,
        names,
        &related.unknown_tags,
    ));
    let placed: Vec<emit::Placed> = (0..values.len())
        .map(|i| (i, Default::default(), Default::default()))
        .collect();
    let table = table::table_of(&values, &placed, &merged.dropped, names, config.galaxy.uuid);
    if let Some(clash) = kept.clash(&table, &touched) {
        return Plan::Clash(Reason::Clash {
            what: clash.what().to_string(),
        });
    }
    Plan::Splice(Box::new(Splice {
        kept,
        touched,
        values,
        related: related.links,
        table,
        warnings,
    }))
}

/// The places of the spliced cluster, in file order: the kept rows (at their offsets in the previous
/// file, from `start`) and the new values (by title, then uuid), merged; `None` when the offsets do
/// not match the previous file's fingerprint.
pub(super) fn places(
    splice: &Splice,
    start: usize,
    fingerprint: &emit::Fingerprint,
) -> Option<Vec<Place>> {
    let rows = &splice.kept.table.rows;
    let mut at = start;
    let mut old = Vec::with_capacity(rows.len());
    for (r, gone) in rows.iter().zip(&splice.kept.removed) {
        if !gone {
            old.push(Place::Old {
                at,
                len: r.len,
                hash: r.hash,
                key: r.key,
                uuid: r.uuid,
            });
        }
        at += r.len + emit::separator_len();
    }
    // The offsets follow from the lengths: checked against the file's own record at both ends.
    let agrees = |r: &table::Row, at: usize| {
        fingerprint
            .spans
            .get(&r.key)
            .is_some_and(|s| s.at == at && s.len == r.len && s.hash == r.hash)
    };
    let last_at = at.saturating_sub(emit::separator_len() + rows.last().map_or(0, |r| r.len));
    if let (Some(first), Some(last)) = (rows.first(), rows.last())
        && !(agrees(first, start) && agrees(last, last_at))
    {
        return None;
    }
    let mut new: Vec<usize> = (0..splice.values.len()).collect();
    let vals = &splice.values;
    new.sort_by(|&a, &b| {
        (vals[a].title.as_str(), vals[a].uuid).cmp(&(vals[b].title.as_str(), vals[b].uuid))
    });
    let kept_rows: Vec<&table::Row> = rows
        .iter()
        .zip(&splice.kept.removed)
        .filter(|(_, g)| !**g)
        .map(|(r, _)| r)
        .collect();
    let mut out = Vec::with_capacity(old.len() + new.len());
    let (mut k, mut n) = (0, 0);
    while k < old.len() || n < new.len() {
        let take_old = match (kept_rows.get(k), new.get(n)) {
            (Some(r), Some(&i)) => {
                (r.title.as_str(), r.uuid) < (vals[i].title.as_str(), vals[i].uuid)
            }
            (Some(_), None) => true,
            _ => false,
        };
        if take_old {
            out.push(old[k]);
            k += 1;
        } else {
            out.push(Place::New(new[n]));
            n += 1;
        }
    }
    Some(out)
}

/// The table of the spliced cluster: the kept rows and the new ones, in the file order `placed`
/// gives (by place), with the kept marks and drops and the new ones.
pub(super) fn new_table(
    splice: Splice,
    places: &[Place],
    placed: &[emit::Placed],
    cluster_checksum: String,
) -> Table {
    let old = splice.kept.table;
    let mut kept_rows = old
        .rows
        .iter()
        .zip(&splice.kept.removed)
        .filter(|(_, g)| !**g)
        .map(|(r, _)| r);
    let mut new_rows: Vec<Option<table::Row>> = splice.table.rows.into_iter().map(Some).collect();
    let mut rows = Vec::with_capacity(placed.len());
    for &(n, key, span) in placed {
        let row = match places[n] {
            Place::Old { .. } => kept_rows.next().cloned(),
            Place::New(i) => new_rows[i].take().map(|r| table::Row {
                key,
                len: span.len,
                hash: span.hash,
                ..r
            }),
        };
        rows.extend(row);
    }
    let removed: HashSet<uuid::Uuid> = old
        .rows
        .iter()
        .zip(&splice.kept.removed)
        .filter(|(_, g)| **g)
        .map(|(r, _)| r.uuid)
        .collect();
    let mut marks: Vec<table::Mark> = old
        .marks
        .iter()
        .filter(|m| !removed.contains(&m.of))
        .copied()
        .chain(splice.table.marks)
        .collect();
    marks.sort_unstable();
    let mut dropped: Vec<(Key, Key)> = old
        .dropped
        .iter()
        .filter(|(f, _)| !splice.touched.contains(f))
        .copied()
        .chain(splice.table.dropped)
        .collect();
    dropped.sort_unstable();
    Table {
        cluster: cluster_checksum,
        rows,
        marks,
        dropped,
    }
}
