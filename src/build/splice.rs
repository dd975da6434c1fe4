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
//!
//! Such a build also parses only what the change needs ([`parse_touched`]): the parse cache's shards
//! are decoded where the change adds or drops records, or holds a touched file's known content.

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

use std::path::Path;

use crate::error::Result;
use crate::hash::git_id;
use crate::report::{Stopwatch, Summary};
use crate::sorted::seek;
use crate::sources::SourceLinks;
use crate::state::{self, AttackCache, BlobInfo, Digest, ParseCache};

use super::{
    FileCandidates, Finish, Parsed, Walked, file_jobs, finish, job_keys, read_and_parse,
    record_values, refuse_strict, with_histories,
};

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
/// file `previous`, from `start`) and the new values (by title, then uuid), merged; `None` when the
/// offsets do not fit that file.
pub(super) fn places(
    splice: &Splice,
    start: usize,
    previous: emit::Previous<'_>,
) -> Option<Vec<Place>> {
    let rows = &splice.kept.table.rows;
    let mut at = start;
    // The kept rows, each with its place in the previous file.
    let mut old: Vec<(&table::Row, Place)> = Vec::with_capacity(rows.len());
    for (r, gone) in rows.iter().zip(&splice.kept.removed) {
        if !gone {
            let place = Place::Old {
                at,
                len: r.len,
                hash: r.hash,
                key: r.key,
                uuid: r.uuid,
            };
            old.push((r, place));
        }
        at += r.len + emit::separator_len();
    }
    // The offsets follow from the lengths (the table was written with the file, whose checksum it
    // names): checked all the same where the first and last texts start and end.
    let byte_at = |at: usize| -> Option<u8> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut file = previous.file;
        let mut b = [0u8; 1];
        file.seek(SeekFrom::Start(at as u64)).ok()?;
        file.read_exact(&mut b).ok()?;
        Some(b[0])
    };
    let end = at.saturating_sub(emit::separator_len());
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let last_at = end - last.len;
        let ends = [
            (start, b'{'),
            (start + first.len - 1, b'}'),
            (last_at, b'{'),
            (end - 1, b'}'),
        ];
        if ends.iter().any(|&(at, want)| byte_at(at) != Some(want)) {
            return None;
        }
    }
    let mut new: Vec<usize> = (0..splice.values.len()).collect();
    let vals = &splice.values;
    new.sort_by(|&a, &b| {
        (vals[a].title.as_str(), vals[a].uuid).cmp(&(vals[b].title.as_str(), vals[b].uuid))
    });
    let mut out = Vec::with_capacity(old.len() + new.len());
    let (mut k, mut n) = (0, 0);
    while k < old.len() || n < new.len() {
        let take_old = match (old.get(k), new.get(n)) {
            (Some((r, _)), Some(&i)) => {
                (r.title.as_str(), r.uuid) < (vals[i].title.as_str(), vals[i].uuid)
            }
            (Some(_), None) => true,
            _ => false,
        };
        if take_old {
            out.push(old[k].1);
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
    let mut marks: Vec<table::Mark> = old
        .marks
        .iter()
        .filter(|m| !splice.kept.is_removed(m.of))
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

/// What a spliced build (see [`splice`]) takes over from [`build`].
pub(super) struct Spliced<'a, 's> {
    pub(super) config: &'a Config,
    pub(super) clock: Stopwatch,
    pub(super) reasons: Vec<Reason>,
    pub(super) snapshots: &'s [Snapshot],
    pub(super) names: Vec<String>,
    pub(super) walked: Walked,
    pub(super) prev: &'a State,
    pub(super) parsed: Parsed<'s>,
    pub(super) parsed_sums: state::Checksums,
    pub(super) attack: Option<&'a AttackCache>,
    pub(super) splice: Splice<'a>,
    pub(super) places: Vec<emit::Place>,
    pub(super) previous: emit::Previous<'a>,
    pub(super) prior_galaxy: Option<&'a emit::Fingerprint>,
    pub(super) cluster_file: &'a Path,
    pub(super) key_hash: String,
    pub(super) inputs: serde_json::Value,
}

/// Finishes a build whose change is isolated: formats the changed files' values, copies the rest
/// from the previous cluster file, and saves the state as a full build would.
pub(super) fn spliced(b: Spliced) -> Result<Summary> {
    let Spliced {
        config,
        mut clock,
        reasons,
        snapshots,
        names,
        walked,
        prev,
        parsed,
        parsed_sums,
        attack,
        mut splice,
        places,
        previous,
        prior_galaxy,
        cluster_file,
        key_hash,
        inputs,
    } = b;
    let writes = config.mode.writes();
    let mut reasons = reasons;
    reasons.push(Reason::Spliced {
        files: splice.touched.len(),
        values: splice.values.len(),
    });
    // The last build's findings on the files kept, and the changed files' own.
    let mut warnings: Vec<Finding> = prev
        .build
        .iter()
        .flat_map(|r| &r.warnings)
        .filter(|w| {
            !splice
                .touched
                .contains(&table::file_key(&w.source, &w.path))
        })
        .cloned()
        .collect();
    warnings.append(&mut splice.warnings);
    warnings.sort();
    refuse_strict(config, &warnings)?;
    let links: Vec<Option<SourceLinks>> = snapshots.iter().map(SourceLinks::of).collect();
    let keys: Vec<emit::ValueKey> = splice
        .values
        .iter()
        .zip(&splice.related)
        .map(|(v, r)| emit::value_key(v, r, &links))
        .collect();
    clock.lap("merge");
    let mut stage = emit::Stage::new(cluster_file, !writes)?;
    let mut cluster = emit::splice_content(
        &config.galaxy,
        &places,
        &splice.values,
        &splice.related,
        &links,
        &keys,
        previous,
        &mut stage,
    )?;
    let placed = std::mem::take(&mut cluster.placed);
    let galaxy = emit::Content::of(&emit::galaxy_json(&config.galaxy));
    clock.lap("format");
    let content_clock = walked.histories.iter().map(|h| h.clock).max().unwrap_or(1);
    let written = emit::write(
        &config.out,
        &config.galaxy.kind,
        cluster,
        Some(stage),
        galaxy,
        content_clock,
        [Some(previous.fingerprint), prior_galaxy],
        !writes,
    )?;
    clock.lap("write");

    let value_count = placed.len();
    let mut new_sources = with_histories(walked.sources, &names, walked.histories);
    // The kept values' ledger entries stay; the changed files' are made anew.
    new_sources.ledger = prev.sources.ledger.clone();
    new_sources.ledger.rewritten.clear();
    for (name, touched) in names.iter().zip(&walked.touched) {
        new_sources
            .ledger
            .forget(name, touched.as_deref().unwrap_or_default());
    }
    record_values(
        &mut new_sources.ledger,
        &splice.values,
        &names,
        &parsed.jobs,
    );
    let values = std::mem::take(&mut splice.values);
    let checksum = written.fingerprints[0].checksum.clone();
    new_sources.table = new_table(splice, &places, &placed, checksum);
    let summary = finish(
        Finish {
            config,
            snapshots,
            key_hash,
            inputs,
            attack,
            parsed_sums,
            values: value_count,
            parsed: parsed.count,
            files: parsed.jobs.len(),
            warnings,
            reasons,
        },
        written,
        &mut new_sources,
        clock,
    )?;
    drop(parsed.jobs);
    crate::free::later((new_sources, parsed.cache, values));
    Ok(summary)
}

/// What parsing only the touched files gave a build that may splice ([`parse_touched`]).
pub(super) struct Touched<'s> {
    /// Every file's job (keys from the blob index), and in the cache the records of the shards
    /// decoded (`decoded`: those the change adds to or drops from, and those holding a touched
    /// file's known content) with the new ones. The cache's blob index is left empty: it is the
    /// previous one with `blobs` applied, put together when saved.
    pub(super) parsed: Parsed<'s>,
    /// Blob index changes: added (with what is known of it) or dropped.
    blobs: Vec<(state::BlobId, Option<BlobInfo>)>,
    decoded: state::Shards,
    /// The shard layout, the same before and after.
    digits: usize,
}

impl Touched<'_> {
    /// Saves the parse cache: the blob index (`index`, the previous one, updated) and the decoded
    /// shards that changed; the other shards stay as they are.
    pub(super) fn save(
        &mut self,
        dir: &Path,
        mut index: std::collections::BTreeMap<state::BlobId, BlobInfo>,
        prev: &State,
    ) -> Result<state::Checksums> {
        for (blob, info) in self.blobs.drain(..) {
            match info {
                Some(info) => index.insert(blob, info),
                None => index.remove(&blob),
            };
        }
        self.parsed.cache.blobs = index;
        // The shards not decoded keep the checksums the last build recorded for them.
        let mut sums = prev.checksums.clone();
        for (name, sum) in prev.build.iter().flat_map(|r| &r.state) {
            sums.entry(name.clone()).or_insert_with(|| sum.clone());
        }
        state::save_parsed_partly(
            dir,
            &mut self.parsed.cache,
            &self.parsed.dirty,
            &prev.shards,
            &sums,
            &self.decoded,
            self.digits,
        )
    }
}

/// Parses what the files touched since the last build need, for a build that may splice: every
/// file's parse key comes from the blob index, new contents are read and parsed, and only the
/// shards the change adds to or drops from, or that hold a touched file's known content, are
/// decoded. `None` when that cannot be done (a shard that does not load, a change of shard layout,
/// a shard the last build did not record): then every record is loaded and parsing is as usual.
pub(super) fn parse_touched<'s>(
    config: &Config,
    snapshots: &'s [Snapshot],
    prev: &mut State,
    walked: &Walked,
    reasons: &mut Vec<Reason>,
) -> Result<Option<Touched<'s>>> {
    let index = &prev.parsed.blobs;
    // Each job's key, and the blobs no job uses any more, in one walk of both in blob order.
    let (mut jobs, by_blob) = file_jobs(snapshots);
    let mut cursor = index.iter().peekable();
    for &(blob, i) in &by_blob {
        if let Some((_, b)) = seek(&mut cursor, &blob, |(b, _)| *b) {
            jobs[i].content = Some(b.content);
            jobs[i].key = Some(b.key);
        }
    }
    let mut used = by_blob.iter().map(|(b, _)| b).peekable();
    let mut blobs: Vec<(state::BlobId, Option<BlobInfo>)> = Vec::new();
    let mut dirty = std::collections::BTreeSet::new();
    // The parse keys of the contents no file has any more.
    let mut dropped: Vec<Digest> = Vec::new();
    for (blob, info) in index {
        if seek(&mut used, blob, |b| *b).is_none() {
            blobs.push((*blob, None));
            dirty.insert(info.key.bytes()[0]);
            dropped.push(info.key);
        }
    }
    let unknown: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].key.is_none()).collect();
    let read = read_and_parse(snapshots, &jobs, &unknown, &|_| false, &config.limits)?;
    let mut added = std::collections::BTreeMap::new();
    let mut count = 0;
    for (i, content, key, parsed) in read {
        count += 1;
        if config.output.verbose() {
            reasons.push(Reason::NewContent {
                file: format!("{}:{}", snapshots[jobs[i].source].name, jobs[i].path),
            });
        }
        if let Some(parsed) = parsed {
            added.entry(key).or_insert(parsed);
        }
        dirty.insert(key.bytes()[0]);
        let blob = git_id(jobs[i].blob);
        if !blobs.iter().any(|(b, _)| *b == blob) {
            blobs.push((blob, Some(BlobInfo { content, key })));
        }
        jobs[i].content = Some(content);
        jobs[i].key = Some(key);
    }
    let gone = blobs.iter().filter(|(_, i)| i.is_none()).count();
    let count_after = index.len() + blobs.len() - 2 * gone;
    // One layout on disk, the one this size keeps, every shard of it recorded by the last build.
    let digits = state::shard_digits(index.len());
    let recorded = prev.build.as_ref().map(|r| &r.state);
    if state::shard_digits(count_after) != digits
        || prev.shards.iter().any(|s| s.len() != digits)
        || prev
            .shards
            .iter()
            .any(|s| recorded.is_none_or(|r| !r.contains_key(&format!("parsed/{s}.bin"))))
    {
        return Ok(None);
    }
    // The shards to decode: those that change, and those holding a touched file's known content.
    let mut decoded: state::Shards = dirty.iter().map(|&b| state::shard_of(b, digits)).collect();
    let mut wanted = Vec::new();
    for (s, paths) in walked.touched.iter().enumerate() {
        for path in paths.iter().flatten() {
            if let Ok(at) = jobs.binary_search_by(|j| (j.source, j.path).cmp(&(s, path.as_str())))
                && let Some(key) = jobs[at].key
                && !added.contains_key(&key)
            {
                decoded.insert(state::shard_of(key.bytes()[0], digits));
                wanted.push(key);
            }
        }
    }
    decoded.retain(|s| prev.shards.contains(s));
    if !prev.load_records(&config.state, Some(&decoded)).is_empty() {
        return Ok(None);
    }
    let mut entries = std::mem::take(&mut prev.parsed.entries);
    if wanted.iter().any(|k| !entries.contains_key(k)) {
        return Ok(None);
    }
    for key in &dropped {
        entries.remove(key);
    }
    entries.extend(added);
    let keys = job_keys(&jobs);
    Ok(Some(Touched {
        parsed: Parsed {
            jobs,
            keys,
            cache: ParseCache {
                parser: prev.parsed.parser,
                blobs: std::collections::BTreeMap::new(),
                entries,
            },
            dirty,
            count,
        },
        blobs,
        decoded,
        digits,
    }))
}
