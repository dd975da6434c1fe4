//! Build: runs the pipeline stages in order for the `build` command.
//!
//! `config → sources → diff → parse → state → merge → relate → emit → report`: this module wires the
//! stages together and decides, with [`crate::state`], how much work a run needs. It holds the state
//! folder's lock for the whole run, checks the build key before doing anything (a fresh key and intact
//! outputs: nothing to do), invalidates the build record before work, and saves the state only after
//! the outputs are in place.

use foldhash::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use crate::config::{Config, Mode, RefStyle};
use crate::diff;
use crate::emit;
use crate::error::{Error, Result};
use crate::findings::{Code, Finding, Severity};
use crate::hash::{GitId, git_id};
use crate::merge::{self, Candidate};
use crate::parse::{self, Limits, ParsedFile};
use crate::relate::{self, AttackIndex};
use crate::report::{SourceSummary, Stopwatch, Summary, Timing};
use crate::sorted::seek;
use crate::sources::{self, LinkRev, Snapshot, SourceLinks};
use crate::state::key::{self, BuildKey, FilterKey};
use crate::state::reason::{LedgerWhy, Reason};
use crate::state::table::{self, Table};
use crate::state::{
    self, AttackCache, BlobInfo, BuildRecord, Digest, ParseCache, SourceState, Sources, State,
};

mod splice;

/// A rule file of some source, and where its parse result comes from.
struct FileJob<'s> {
    source: usize,
    /// Borrowed from the source's file list.
    path: &'s str,
    blob: git2::Oid,
    /// SHA-256 of the bytes, once known.
    content: Option<Digest>,
    /// The parse key of its content, once its parse result is in the new cache.
    key: Option<Digest>,
}

/// Builds the galaxy described by `config` and writes it (unless nothing changed).
pub fn build(config: &Config) -> Result<Summary> {
    let quiet = matches!(
        config.output,
        crate::config::Output::Human { quiet: true, .. }
    );
    let mut clock = Stopwatch::default();
    let writes = config.mode.writes();
    // A run that writes nothing reads the state without the lock: every state file is replaced by a
    // rename, so a concurrent build can only make it read an older, whole file.
    let _lock = if writes {
        Some(state::lock(&config.state, config.no_wait, quiet)?)
    } else {
        None
    };
    clock.lap("lock");
    // Sources are opened (and remote ones fetched) concurrently; the first failure in source order
    // is the one reported.
    let opened: Vec<Result<Snapshot>> = config
        .sources
        .par_iter()
        .map(|s| sources::open(s, &config.state))
        .collect();
    let mut snapshots: Vec<Snapshot> = opened.into_iter().collect::<Result<_>>()?;
    clock.lap("sources");
    let attack_hash = config
        .attack_clusters
        .as_deref()
        .map(relate::attack_checksum)
        .transpose()?;
    let build_key = BuildKey::new(config, &snapshots, attack_hash.as_deref());
    let inputs = serde_json::to_value(&build_key).unwrap_or_default();
    let key_hash = key::hash(&build_key);
    let cluster_file = emit::cluster_path(&config.out, &config.galaxy.kind);
    let galaxy_file = emit::galaxy_path(&config.out, &config.galaxy.kind);

    // Nothing to do: a fresh build key, intact outputs and an intact state. Only the build record
    // is loaded for this; the rest of the state is checksummed, not decoded. (`check` lists every
    // file, so always works.)
    if !config.full
        && config.mode != Mode::Check
        && let Some(rec) = State::load_record(&config.state)
        && rec.key == key_hash
        && outputs_match(&rec, &cluster_file, &galaxy_file)
        && state::verify(&config.state, &rec.state)
    {
        clock.lap("fresh check");
        let mut summary = unchanged_summary(&rec, &snapshots, &cluster_file, &galaxy_file);
        summary.timings = timings(config, clock);
        summary.notices = config.notices.clone();
        return Ok(summary);
    }

    let mut reasons = Vec::new();
    // The parse cache's records are decoded only when the change may be spliced (see `splice`),
    // and then only where it needs them.
    let (mut prev, mut distrusted) = State::load_lazy(&config.state);
    let lazy = splice::may_apply(config, &prev, &inputs, &key_hash, !distrusted.is_empty());
    if !lazy {
        distrusted.extend(prev.load_records(&config.state, None));
    }
    clock.lap("state load");
    report_distrusted(distrusted, quiet, &mut reasons);
    // The commits last built, per source: renames since then keep id-less uuids, even under --full.
    let last_built: HashMap<String, String> = prev
        .sources
        .sources
        .iter()
        .map(|(name, s)| (name.clone(), s.commit.clone()))
        .collect();
    if config.full {
        // Identity is not cache: keep the UUID ledger.
        // The shards on disk are a fact about the folder, not cache: saving needs them.
        prev = State {
            sources: Sources {
                ledger: std::mem::take(&mut prev.sources.ledger),
                ..Sources::default()
            },
            shards: std::mem::take(&mut prev.shards),
            checksums: std::mem::take(&mut prev.checksums),
            ..State::default()
        };
        reasons.push(Reason::Full);
    }

    let damaged = reasons
        .iter()
        .any(|r| matches!(r, Reason::Distrusted { .. }));
    match &prev.build {
        // Fresh, yet not the quick no-op above: the outputs or the state folder differ from what
        // the last build left (a damaged state file is repaired even when nothing else changed).
        Some(rec) if rec.key == key_hash && config.mode != Mode::Check => {
            if !outputs_match(rec, &cluster_file, &galaxy_file) {
                reasons.push(Reason::OutputsChanged);
            } else if !damaged {
                reasons.push(Reason::StateChanged);
            }
        }
        Some(rec) => reasons.extend(Reason::between(&rec.inputs, &inputs)),
        None if !config.full && prev.sources.sources.is_empty() => reasons.push(Reason::NoState),
        None => {}
    }
    clock.lap("fresh check");
    if writes {
        state::invalidate(&config.state)?;
    }
    list_rule_files(&mut snapshots, &mut prev.sources)?;
    refuse_empty_sources(config, &snapshots)?;
    clock.lap("list");
    let attack = attack_index(config, prev.attack.take(), attack_hash)?;
    clock.lap("attack index");
    let walked = walk_sources(&snapshots, &mut prev.sources, &last_built)?;
    for (snap, why) in snapshots.iter().zip(&walked.ledger_identity) {
        if let Some(why) = *why {
            let r = Reason::LedgerIdentity {
                source: snap.name.clone(),
                why,
            };
            if !quiet {
                eprintln!("note: {r}");
            }
            reasons.push(r);
        }
    }
    clock.lap("diff");
    // Nothing else is read from the repositories: parsing reads the blobs through its own handles,
    // and with these closed, the packs it maps are let go when it is done.
    for snap in &mut snapshots {
        snap.close();
    }
    let names: Vec<String> = snapshots.iter().map(|s| s.name.clone()).collect();
    let attack_index = attack.as_ref().map(|a| &a.index);

    // Only the changed files' values, when the change is isolated (see `splice`).
    let touched = match lazy && splice::walks_allow(&walked) {
        true => splice::parse_touched(config, &snapshots, &mut prev, &walked, &mut reasons)?,
        false => None,
    };
    if let Some(mut touched) = touched {
        clock.lap("parse");
        let plan = splice::plan(
            config,
            &names,
            &snapshots,
            &walked,
            &prev.sources,
            &touched.parsed,
            attack_index,
        );
        match plan {
            splice::Plan::Splice(mut s) => {
                // The details of the values to format, read back before their shards are
                // rewritten.
                state::fill_details(
                    &config.state,
                    &prev.checksums,
                    s.values
                        .iter_mut()
                        .filter(|v| v.rule.details.in_shard())
                        .map(|v| (&v.record, &mut v.rule.details)),
                )?;
                // The files there now, each checksummed once.
                let prior_cluster = emit::prior(&cluster_file, prev.sources.outputs[0].as_ref());
                let prior_galaxy = emit::prior(&galaxy_file, prev.sources.outputs[1].as_ref());
                let previous = prior_cluster
                    .as_ref()
                    .and_then(emit::Prior::previous)
                    .filter(|p| p.fingerprint.checksum == prev.sources.table.cluster);
                let places = previous
                    .and_then(|p| splice::places(&s, emit::values_start(&config.galaxy), p));
                if let (Some(previous), Some(places)) = (previous, places) {
                    clock.lap("candidates");
                    let parsed_sums = match writes {
                        true => {
                            let index = std::mem::take(&mut prev.parsed.blobs);
                            touched.save(&config.state, index, &prev)?
                        }
                        false => state::Checksums::new(),
                    };
                    clock.lap("save parse cache");
                    let summary = splice::spliced(splice::Spliced {
                        config,
                        clock,
                        reasons,
                        snapshots: &snapshots,
                        names,
                        walked,
                        prev: &prev,
                        parsed: touched.parsed,
                        parsed_sums,
                        attack: attack.as_ref(),
                        splice: *s,
                        places,
                        previous,
                        prior_galaxy: emit::fingerprint(&prior_galaxy),
                        cluster_file: &cluster_file,
                        key_hash,
                        inputs,
                    })?;
                    let files: Vec<_> = snapshots
                        .iter_mut()
                        .map(|s| std::mem::take(&mut s.files))
                        .collect();
                    crate::free::later((files, prev));
                    return Ok(summary);
                }
            }
            splice::Plan::Clash(r) => {
                if config.output.verbose() {
                    eprintln!("note: {r}");
                }
                reasons.push(r);
            }
        }
        // Every value is merged after all: every record is needed.
        touched.parsed.cache.entries.clear();
        prev.parsed.entries.clear();
    }
    if lazy {
        let problems = prev.load_records(&config.state, None);
        report_distrusted(problems, quiet, &mut reasons);
    }
    let mut parsed = parse_rules(config, &snapshots, &mut prev.parsed, &mut reasons)?;
    clock.lap("parse");
    let parsed_sums = if writes {
        state::save_parsed(
            &config.state,
            &mut parsed.cache,
            &parsed.dirty,
            &prev.shards,
            &prev.checksums,
        )?
    } else {
        state::Checksums::new()
    };
    clock.lap("save parse cache");

    // merge: candidates in source, path, index order, with links and remembered uuids.
    let (candidates, mut warnings) = candidates(
        config,
        &names,
        &snapshots,
        &walked,
        &prev.sources,
        &mut parsed,
    );
    clock.lap("candidates");
    let merge::Merged {
        mut values,
        dropped,
    } = merge::merge(
        candidates,
        &names,
        &policies(config),
        config.galaxy.uuid,
        &config.galaxy.kind,
        config.filters,
        &mut warnings,
    );
    set_provenance(config, &snapshots, &mut values);
    let content_clock = walked.histories.iter().map(|h| h.clock).max().unwrap_or(1);
    let mut new_sources = with_histories(walked.sources, &names, walked.histories);
    new_sources.ledger = remembered_uuids(&values, &names, &parsed.jobs, &prev.sources.ledger);
    for (name, why) in names.iter().zip(&walked.ledger_identity) {
        if *why == Some(LedgerWhy::Rewritten) {
            new_sources.ledger.rewritten.insert(name.clone());
        }
    }
    let (jobs, parsed_count) = (parsed.jobs, parsed.count);
    clock.lap("merge");
    // relate, then emit.
    let relate::Related {
        links: related,
        unknown_tags,
    } = relate::relate(&values, attack.as_ref().map(|a| &a.index));
    warnings.extend(unknown_attack_tags(&values, &names, &unknown_tags));
    warnings.sort();
    refuse_strict(config, &warnings)?;
    clock.lap("relate");
    if config.mode == Mode::Check {
        return Ok(Summary {
            values: values.len(),
            parsed: parsed_count,
            reused: jobs.len() - parsed_count,
            sources: source_summaries(&snapshots, None),
            files: jobs
                .iter()
                .map(|j| (names[j.source].clone(), j.path.to_string()))
                .collect(),
            warnings,
            reasons,
            timings: timings(config, clock),
            notices: config.notices.clone(),
            ..Summary::empty(&cluster_file, &galaxy_file)
        });
    }
    refuse_to_empty(
        config,
        &values,
        &cluster_file,
        prev.sources.outputs[0].as_ref(),
    )?;
    // Each source's web links, made only for the values formatted afresh.
    let links: Vec<Option<SourceLinks>> = snapshots.iter().map(SourceLinks::of).collect();
    // Unchanged values are copied from the previous cluster file, when it is the one last written.
    let value_keys: Vec<emit::ValueKey> = values
        .par_iter()
        .enumerate()
        .map(|(i, v)| {
            let related = related.get(i).map_or(&[][..], Vec::as_slice);
            emit::value_key(v, related, &links)
        })
        .collect();
    // The files there now, each checksummed once: unchanged values are copied from the cluster file
    // when it is the one last written.
    // Where the values last written are: the value table has it, for the file it was written with.
    if let Some(f) = &mut prev.sources.outputs[0]
        && f.checksum == prev.sources.table.cluster
    {
        f.spans = prev
            .sources
            .table
            .spans(emit::values_start(&config.galaxy), emit::separator_len());
    }
    let mut prior_cluster = emit::prior(&cluster_file, prev.sources.outputs[0].as_ref());
    let prior_galaxy = emit::prior(&galaxy_file, prev.sources.outputs[1].as_ref());
    let previous = prior_cluster.as_ref().and_then(emit::Prior::previous);
    // The values to be formatted afresh need their rules' details, which the records that came from
    // the parse cache left in its files (see `parse::Body::left_in`): read back now, a shard file
    // at a time. In a small change they are a few dozen of 100k.
    let old = emit::old_spans(previous, &value_keys);
    state::fill_details(
        &config.state,
        &prev.checksums,
        values
            .iter_mut()
            .enumerate()
            .filter(|(i, v)| v.rule.details.in_shard() && old.get(*i).is_none_or(Option::is_none))
            .map(|(_, v)| (&v.record, &mut v.rule.details)),
    )?;
    clock.lap("value keys");
    // The cluster goes to its temporary file as it is formatted, so its text is never held whole
    // beside the records (value versions rewrite the whole text, so they keep it in memory).
    let mut stage = match config.value_versions {
        true => None,
        false => Some(emit::Stage::new(&cluster_file, !writes)?),
    };
    let mut cluster = emit::cluster_content(
        &config.galaxy,
        &values,
        &related,
        &links,
        &value_keys,
        previous,
        &old,
        stage.as_mut(),
    )?;
    // What the next build needs to merge only what changes (none with value versions, whose texts
    // are rewritten after formatting).
    let placed = std::mem::take(&mut cluster.placed);
    let mut table = match config.value_versions || !writes {
        true => Table::default(),
        false => table::table_of(&values, &placed, &dropped, &names, config.galaxy.uuid),
    };
    if let Some(p) = &mut prior_cluster {
        p.file = None;
    }
    let galaxy = emit::Content::of(&emit::galaxy_json(&config.galaxy));
    clock.lap("format");
    // Formatted: the records are no longer needed, but they are not freed one allocation at a time
    // (a tenth of a 10-rule build at 100k rules): they go with the rest at the end (see crate::free).
    // Writing the state after them takes little more room, since state files are encoded straight
    // to disk.
    let value_count = values.len();
    let records = (values, related);
    let cluster = if config.value_versions {
        emit::value_versions(
            &config.out,
            &config.galaxy.kind,
            cluster,
            content_clock,
            emit::fingerprint(&prior_cluster),
        )
    } else {
        cluster
    };
    let written = emit::write(
        &config.out,
        &config.galaxy.kind,
        cluster,
        stage,
        galaxy,
        content_clock,
        [
            emit::fingerprint(&prior_cluster),
            emit::fingerprint(&prior_galaxy),
        ],
        !writes,
    )?;
    clock.lap("write");

    if !config.value_versions && writes {
        table.cluster = written.fingerprints[0].checksum.clone();
    }
    new_sources.table = table;
    let summary = finish(
        Finish {
            config,
            snapshots: &snapshots,
            key_hash,
            inputs,
            attack: attack.as_ref(),
            parsed_sums,
            values: value_count,
            parsed: parsed_count,
            files: jobs.len(),
            warnings,
            reasons,
        },
        written,
        &mut new_sources,
        clock,
    )?;
    // The records, the state and the file lists are not freed one by one on the way out (see
    // crate::free). The snapshots themselves are dropped here as usual: libgit2 must not be freeing
    // a repository while it shuts down at exit.
    drop(jobs);
    let cache = parsed.cache;
    let files: Vec<_> = snapshots
        .iter_mut()
        .map(|s| std::mem::take(&mut s.files))
        .collect();
    crate::free::later((prev, new_sources, cache, records, files));
    Ok(summary)
}

/// The new per-source state with each source's history walk moved in.
fn with_histories(
    mut sources: Sources,
    names: &[String],
    histories: Vec<diff::History>,
) -> Sources {
    for (name, history) in names.iter().zip(histories) {
        if let Some(s) = sources.sources.get_mut(name) {
            s.history = history;
        }
    }
    sources
}

/// What [`finish`] needs of a build besides its outputs and new state.
struct Finish<'a> {
    config: &'a Config,
    snapshots: &'a [Snapshot],
    key_hash: String,
    inputs: serde_json::Value,
    attack: Option<&'a AttackCache>,
    /// The parse cache's checksums, as saved.
    parsed_sums: state::Checksums,
    /// Values written; rule files parsed, and in all.
    values: usize,
    parsed: usize,
    files: usize,
    warnings: Vec<Finding>,
    reasons: Vec<Reason>,
}

/// Saves the state of a build that wrote `written` (when it writes), the build record last, and
/// gives its summary.
fn finish(
    f: Finish,
    written: emit::Written,
    new_sources: &mut Sources,
    mut clock: Stopwatch,
) -> Result<Summary> {
    let config = f.config;
    let [cluster_print, galaxy_print] = written.fingerprints;
    let value_count = f.values;
    let mut record = BuildRecord {
        key: f.key_hash,
        inputs: f.inputs,
        cluster_checksum: cluster_print.checksum.clone(),
        galaxy_checksum: galaxy_print.checksum.clone(),
        values: value_count,
        files: f
            .snapshots
            .iter()
            .map(|s| (s.name.clone(), s.files.len()))
            .collect(),
        version: written.version,
        warnings: f.warnings.clone(),
        state: state::Checksums::new(),
    };
    new_sources.outputs = [Some(cluster_print), Some(galaxy_print)];
    if config.mode.writes() {
        state::save(
            &config.state,
            new_sources,
            f.attack,
            &mut record,
            f.parsed_sums,
        )?;
    }
    clock.lap("state save");
    Ok(Summary {
        values: value_count,
        parsed: f.parsed,
        reused: f.files - f.parsed,
        added: written.added,
        changed: written.changed,
        removed: written.removed,
        version: written.version,
        wrote: written.wrote,
        dry_run: false,
        cluster: written.cluster.display().to_string(),
        galaxy: written.galaxy.display().to_string(),
        sources: source_summaries(f.snapshots, None),
        files: Vec::new(),
        notices: config.notices.clone(),
        warnings: f.warnings,
        reasons: f.reasons,
        timings: timings(config, clock),
    })
}

/// Fails a `--strict` run on error findings.
fn refuse_strict(config: &Config, warnings: &[Finding]) -> Result<()> {
    let errors: Vec<&Finding> = warnings
        .iter()
        .filter(|w| w.severity == Severity::Error)
        .collect();
    if config.strict && !errors.is_empty() {
        for w in &errors {
            eprintln!("error: {w}");
        }
        return Err(Error::Strict {
            count: errors.len(),
        });
    }
    Ok(())
}

/// Reports state files that could not be trusted, as reasons (and warnings unless quiet).
fn report_distrusted(distrusted: Vec<state::Distrust>, quiet: bool, reasons: &mut Vec<Reason>) {
    for d in distrusted {
        let r = Reason::Distrusted {
            file: d.file.display().to_string(),
            problem: d.problem,
        };
        if !quiet {
            eprintln!("warning: {r}");
        }
        reasons.push(r);
    }
}

/// How each source takes part in the merge.
fn policies(config: &Config) -> Vec<merge::SourcePolicy> {
    config
        .sources
        .iter()
        .map(|s| merge::SourcePolicy {
            priority: s.priority,
            rules: s.rules.clone(),
        })
        .collect()
}

/// Gives every value its source's provenance, when the galaxy shows it.
fn set_provenance(config: &Config, snapshots: &[Snapshot], values: &mut [merge::Value]) {
    if !config.provenance {
        return;
    }
    let origins: Vec<_> = snapshots
        .iter()
        .map(|s| {
            std::sync::Arc::new(merge::Provenance {
                source: s.name.clone(),
                url: s.web.as_ref().and_then(|w| w.repository_url()),
            })
        })
        .collect();
    for v in values {
        v.provenance = Some(origins[v.source].clone());
    }
}

/// Fails the run when a source has no rule file (wrong `--include`, wrong ref, an empty repository),
/// unless the source allows it: an empty galaxy is almost always a mistake.
fn refuse_empty_sources(config: &Config, snapshots: &[Snapshot]) -> Result<()> {
    for (snap, source) in snapshots.iter().zip(&config.sources) {
        if !snap.files.is_empty() || source.allow_empty {
            continue;
        }
        let globs = |what: &str, globs: &[String]| match globs {
            [] => String::new(),
            g => format!(", {what} {}", g.join(" ")),
        };
        let filter = &snap.filter;
        return Err(Error::Source {
            source_name: snap.name.clone(),
            message: format!(
                "no rule files at {} ({}){}{}{}: check the ref and the globs, or set `allow_empty: true` on the source",
                source.reference.as_deref().unwrap_or("HEAD"),
                &snap.commit.to_string()[..12],
                filter
                    .prefix
                    .as_deref()
                    .map(|p| format!(", under {p}"))
                    .unwrap_or_default(),
                globs("include", &filter.include),
                globs("exclude", &filter.exclude),
            ),
        });
    }
    Ok(())
}

/// Refuses to replace a galaxy that has values with one that has none, unless every source allows
/// being empty.
fn refuse_to_empty(
    config: &Config,
    values: &[merge::Value],
    cluster: &Path,
    known: Option<&emit::Fingerprint>,
) -> Result<()> {
    if !values.is_empty() || config.sources.iter().all(|s| s.allow_empty) {
        return Ok(());
    }
    let previous = known
        .filter(|k| state::file_checksum(cluster).is_ok_and(|c| c == k.checksum))
        .map(|k| k.values.len())
        .or_else(|| emit::count_values(cluster));
    match previous {
        Some(n) if n > 0 => Err(Error::Input {
            path: cluster.to_path_buf(),
            message: format!(
                "the sources give 0 values but this galaxy has {n}: not replacing it (set `allow_empty: true` on the sources to publish an empty galaxy)"
            ),
        }),
        _ => Ok(()),
    }
}

/// `unknown-attack-tag` findings: ATT&CK tags of the values that resolve to nothing in the clusters.
fn unknown_attack_tags(
    values: &[merge::Value],
    names: &[String],
    unknown: &[(usize, usize)],
) -> Vec<Finding> {
    unknown
        .iter()
        .map(|&(at, n)| {
            let v = &values[at];
            Finding::new(
                &names[v.source],
                &v.path,
                Some(v.rule.line),
                Code::UnknownAttackTag,
                format!(
                    "tag {:?} matches nothing in the ATT&CK clusters",
                    v.rule.tags[n]
                ),
            )
        })
        .collect()
}

/// What walking the sources' histories gave.
struct Walked {
    /// Per source (in order): the history walk.
    histories: Vec<diff::History>,
    /// Per source: renamed rule files, new path → old path (only when the ledger gives identities and
    /// a remembered uuid needs them).
    renames: Vec<HashMap<String, String>>,
    /// Per source: why its identities come from the ledger, when they do (else from its history).
    ledger_identity: Vec<Option<LedgerWhy>>,
    /// The new per-source state (the ledger and outputs are filled in later).
    sources: Sources,
    /// Per source: the rule paths changed since the last built commit (sorted), when the walk
    /// extended the previous one; `None` after a full or rewritten walk.
    touched: Vec<Option<Vec<String>>>,
}

/// What parsing (with the cache) gave.
struct Parsed<'s> {
    /// Every rule file of every source, in source then path order.
    jobs: Vec<FileJob<'s>>,
    /// The jobs' parse keys with their indexes, in key order ([`job_keys`]).
    keys: Vec<(Digest, usize)>,
    /// The new cache: exactly the current files' contents.
    cache: ParseCache,
    /// The first bytes of the parse keys added or dropped (what tells which shards changed).
    dirty: std::collections::BTreeSet<u8>,
    /// Files parsed this run.
    count: usize,
}

/// Lists each source's rule files: the previous build's list plus the tree differences when there is
/// one for the same filter, else the whole tree. The previous lists are taken, not copied.
fn list_rule_files(snapshots: &mut [Snapshot], prev: &mut Sources) -> Result<()> {
    for snap in snapshots {
        let filter_key = key::hash(&FilterKey::new(&snap.filter));
        let updated = prev
            .sources
            .get_mut(&snap.name)
            .filter(|o| o.filter == filter_key)
            .and_then(|o| {
                let (commit, files) = (&o.commit, &mut o.files);
                let repo = snap.repo().ok()?;
                diff::update_files(repo, commit, files, snap.commit, &snap.filter).ok()
            });
        match updated {
            Some(files) => snap.files = files,
            None => snap.list_files()?,
        }
    }
    Ok(())
}

/// The ATT&CK index: the cached one when the clusters are unchanged, else read anew.
fn attack_index(
    config: &Config,
    cached: Option<AttackCache>,
    hash: Option<String>,
) -> Result<Option<AttackCache>> {
    let (Some(dir), Some(hash)) = (config.attack_clusters.as_deref(), hash) else {
        return Ok(None);
    };
    Ok(Some(match cached {
        Some(cached) if cached.hash == hash => cached,
        _ => AttackCache {
            hash,
            index: AttackIndex::load(dir)?,
            stored: None,
        },
    }))
}

/// Walks each source's first-parent history (only the new commits when the previous walk is usable)
/// and finds renames since the last built commit when a remembered uuid's path is gone.
fn walk_sources(
    snapshots: &[Snapshot],
    prev: &mut Sources,
    last_built: &HashMap<String, String>,
) -> Result<Walked> {
    let mut walked = Walked {
        histories: Vec::new(),
        renames: Vec::new(),
        ledger_identity: Vec::new(),
        sources: Sources::default(),
        touched: Vec::new(),
    };
    for snap in snapshots {
        let filter_key = key::hash(&FilterKey::new(&snap.filter));
        // The previous walk is extended, not copied.
        let old = prev
            .sources
            .get_mut(&snap.name)
            .filter(|o| o.filter == filter_key)
            .map(|o| std::mem::take(&mut o.history));
        let source_err = |e: git2::Error| Error::Source {
            source_name: snap.name.clone(),
            message: format!("walking history: {}", e.message()),
        };
        let repo = snap.repo()?;
        let (history, how, touched) =
            diff::walk(repo, snap.commit, &snap.files, &snap.filter, old).map_err(source_err)?;
        walked.touched.push(
            matches!(how, diff::Walk::Unchanged | diff::Walk::Incremental { .. })
                .then_some(touched),
        );
        let ledger_why = if history.shallow {
            Some(LedgerWhy::Shallow)
        } else if matches!(how, diff::Walk::Rewritten { .. })
            || prev.ledger.rewritten.contains(&snap.name)
        {
            Some(LedgerWhy::Rewritten)
        } else {
            None
        };
        // Renames only matter to remembered uuids whose path is gone; finding them reads blobs, so
        // it is skipped when no such path exists (or the history gives identities).
        let ledger_path_gone = ledger_why.is_some()
            && prev.ledger.sources.get(&snap.name).is_some_and(|e| {
                e.keys().any(|slot| {
                    let path = slot.rsplit_once('#').map_or(slot.as_str(), |(p, _)| p);
                    snap.files
                        .binary_search_by(|f| f.path.as_str().cmp(path))
                        .is_err()
                })
            });
        let renames = last_built
            .get(&snap.name)
            .filter(|_| ledger_path_gone)
            .and_then(|c| git2::Oid::from_str(c).ok())
            .filter(|&c| c != snap.commit)
            .and_then(|c| diff::renames(repo, c, snap.commit, &snap.filter).ok())
            .unwrap_or_default();
        walked.sources.sources.insert(
            snap.name.clone(),
            SourceState {
                commit: snap.commit.to_string(),
                filter: filter_key,
                files: snap
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), git_id(f.blob)))
                    .collect(),
                // Moved in from `histories` once the build is done with them.
                history: diff::History::default(),
            },
        );
        walked.renames.push(renames);
        walked.ledger_identity.push(ledger_why);
        walked.histories.push(history);
    }
    Ok(walked)
}

/// Gives every rule file its parse record: from the cache when its content is known (unchanged files
/// are not even read), else read, hashed and parsed, in parallel. The old cache becomes the new one in
/// place: records still used stay where they are, new ones are added and the rest dropped, so that
/// the new cache holds exactly the current files' contents and a small change touches a few entries.
fn parse_rules<'s>(
    config: &Config,
    snapshots: &'s [Snapshot],
    old: &mut ParseCache,
    reasons: &mut Vec<Reason>,
) -> Result<Parsed<'s>> {
    let parser = key::parser_stamp(&config.limits);
    let keys_valid = old.parser == parser;
    let mut cache = ParseCache {
        parser,
        blobs: std::mem::take(&mut old.blobs),
        entries: std::mem::take(&mut old.entries),
    };
    // What the cache knows of each job's blob, then whether it has the record: found by walking the
    // jobs in blob (then key) order beside the blob index and the records, which are in that order,
    // not by a search from the root per file (100k of them, in 20- and 32-byte keys).
    let (mut jobs, by_blob) = file_jobs(snapshots);
    let mut index = cache.blobs.iter_mut().peekable();
    for &(blob, i) in &by_blob {
        if let Some((_, b)) = seek(&mut index, &blob, |(b, _)| *b) {
            if !keys_valid {
                // Another parser: the content is known, its key is computed anew.
                b.key = key::parse_key(&b.content, &config.limits);
            }
            jobs[i].content = Some(b.content);
            jobs[i].key = Some(b.key);
        }
    }
    drop(by_blob);
    let mut records = cache.entries.keys().peekable();
    for (key, i) in job_keys(&jobs) {
        if seek(&mut records, &key, |k| *k).is_none() {
            jobs[i].key = None;
        }
    }
    let unknown: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].key.is_none()).collect();
    // Read, hash and parse in one pass per file, so that no more than one file's bytes per thread
    // are ever held: content already known under another blob is not parsed again.
    let entries = &cache.entries;
    let known = |key: &Digest| entries.contains_key(key);
    let read = read_and_parse(snapshots, &jobs, &unknown, &known, &config.limits)?;
    let mut count = 0;
    let mut dirty = std::collections::BTreeSet::new();
    for (i, content, key, parsed) in read {
        if let Some(parsed) = parsed {
            count += 1;
            if config.output.verbose() {
                reasons.push(Reason::NewContent {
                    file: format!("{}:{}", snapshots[jobs[i].source].name, jobs[i].path),
                });
            }
            if let std::collections::btree_map::Entry::Vacant(e) = cache.entries.entry(key) {
                dirty.insert(key.bytes()[0]);
                e.insert(parsed);
            }
        }
        let info = BlobInfo { content, key };
        cache.blobs.insert(git_id(jobs[i].blob), info);
        jobs[i].content = Some(content);
        jobs[i].key = Some(key);
    }
    // What the current files no longer use goes: the keys and blobs in use, sorted, are walked beside
    // the maps as they are retained in order, not hashed into sets of 100k.
    let keys = job_keys(&jobs);
    let mut used = keys.iter().peekable();
    cache.entries.retain(|key, _| {
        let keep = seek(&mut used, key, |(k, _)| k).is_some();
        if !keep {
            dirty.insert(key.bytes()[0]);
        }
        keep
    });
    let mut blobs: Vec<state::BlobId> = jobs.iter().map(|j| git_id(j.blob)).collect();
    crate::hash::sort_by_id(&mut blobs, |blob| blob);
    let mut blobs = blobs.iter().peekable();
    cache
        .blobs
        .retain(|blob, _| seek(&mut blobs, blob, |b| *b).is_some());
    Ok(Parsed {
        jobs,
        keys,
        cache,
        dirty,
        count,
    })
}

/// A job per rule file of every source (source, then path order), and their blobs with job
/// indexes, in blob order.
fn file_jobs(snapshots: &[Snapshot]) -> (Vec<FileJob<'_>>, Vec<(state::BlobId, usize)>) {
    // Exactly one per file: grown by doubling, 100k jobs would touch twice their room.
    let mut jobs: Vec<FileJob> = Vec::with_capacity(snapshots.iter().map(|s| s.files.len()).sum());
    for (s, snap) in snapshots.iter().enumerate() {
        for f in &snap.files {
            jobs.push(FileJob {
                source: s,
                path: &f.path,
                blob: f.blob,
                content: None,
                key: None,
            });
        }
    }
    let mut by_blob: Vec<(state::BlobId, usize)> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (git_id(j.blob), i))
        .collect();
    crate::hash::sort_by_id(&mut by_blob, |(blob, _)| blob);
    (jobs, by_blob)
}

/// The jobs' parse keys with their job indexes, in key order (jobs without a key left out).
fn job_keys(jobs: &[FileJob]) -> Vec<(Digest, usize)> {
    let mut keys: Vec<(Digest, usize)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, j)| Some((j.key?, i)))
        .collect();
    crate::hash::sort_by_id(&mut keys, |(key, _)| &key.0);
    keys
}

/// A file [`read_and_parse`] read: job index, content hash, parse key, parse result (`None`: the
/// content was already known).
type ReadFile = (usize, Digest, Digest, Option<ParsedFile>);

/// Reads, hashes and (unless `known` has its parse key) parses the blobs of `which` jobs, in
/// parallel, each worker with its own repository handles (a git2 repository is not shared between
/// threads): job index, content hash, parse key and the parse result. The bytes are dropped as soon as
/// they are parsed.
fn read_and_parse(
    snapshots: &[Snapshot],
    jobs: &[FileJob],
    which: &[usize],
    known: &(dyn Fn(&Digest) -> bool + Sync),
    limits: &Limits,
) -> Result<Vec<ReadFile>> {
    let git_dirs: Vec<&Path> = snapshots.iter().map(|s| s.git_dir.as_path()).collect();
    let source_names: Vec<&str> = snapshots.iter().map(|s| s.name.as_str()).collect();
    let open_all = || -> std::result::Result<Vec<git2::Repository>, String> {
        git_dirs
            .iter()
            .map(|d| git2::Repository::open(d).map_err(|e| e.message().to_string()))
            .collect()
    };
    which
        .par_iter()
        .map_init(open_all, |repos, &i| {
            let job = &jobs[i];
            let failed = |message: String| Error::Source {
                source_name: source_names[job.source].to_string(),
                message: format!("reading {}: {message}", job.path),
            };
            let repo = &repos.as_ref().map_err(|m| failed(m.clone()))?[job.source];
            let blob = repo
                .find_blob(job.blob)
                .map_err(|e| failed(e.message().to_string()))?;
            let bytes = blob.content();
            let content = Digest::of(bytes);
            let key = key::parse_key(&content, limits);
            let parsed = (!known(&key)).then(|| parse::parse_file(bytes, limits));
            Ok((i, content, key, parsed))
        })
        .collect()
}

/// Turns parse records into merge candidates (source, path, index order) with their links and the
/// uuids their identity gives them (see "Identity" in [`crate::state`]); the files' problems become
/// warnings. Records move: copied only for the rare contents that several files share.
fn candidates(
    config: &Config,
    names: &[String],
    snapshots: &[Snapshot],
    walked: &Walked,
    prev: &Sources,
    parsed: &mut Parsed,
) -> (Vec<Candidate>, Vec<Finding>) {
    // Saved by now: the records move on into the merge.
    let records = std::mem::take(&mut parsed.cache.entries);
    let (jobs, keys) = (&parsed.jobs, &parsed.keys);
    // The ledger's answers, for the sources whose identities it gives.
    let lookups: Vec<_> = snapshots
        .iter()
        .zip(&walked.renames)
        .zip(&walked.ledger_identity)
        .map(|((snap, renames), why)| {
            why.is_some().then(|| {
                let paths: HashSet<&str> = snap.files.iter().map(|f| f.path.as_str()).collect();
                prev.ledger.lookup(&snap.name, &paths, renames)
            })
        })
        .collect();
    // Each job's record, found by walking the jobs in key order beside the records (which come in
    // key order): no map of 100k records is built, and keys are compared, not hashed. A record that
    // several files use (the same content under several paths) is cloned for all but its last.
    let mut slots: Vec<(Digest, Option<ParsedFile>)> =
        records.into_iter().map(|(k, f)| (k, Some(f))).collect();
    let mut slot_of: Vec<Option<usize>> = vec![None; jobs.len()];
    let mut users: Vec<u32> = vec![0; slots.len()];
    let mut cursor = slots.iter().map(|(k, _)| k).enumerate().peekable();
    for &(key, i) in keys {
        if let Some(&mut (at, _)) = seek(&mut cursor, &key, |(_, k)| *k) {
            slot_of[i] = Some(at);
            users[at] += 1;
        }
    }
    let mut warnings = Vec::new();
    // Exactly as many as there are rules: a candidate is large, and doubling a Vec of 100,000 of
    // them would hold twice the room through the merge.
    let count = slot_of
        .iter()
        .flatten()
        .filter_map(|&at| slots[at].1.as_ref())
        .map(|f| f.rules.len())
        .sum();
    let mut candidates = Vec::with_capacity(count);
    // The jobs of a source come in path order, as its last changes do: each is found by walking
    // both side by side, not by a search from the root (long paths with long common prefixes); a
    // job out of that order is looked up.
    let mut cursors: Vec<_> = walked
        .histories
        .iter()
        .map(|h| h.last_change.iter().peekable())
        .collect();
    fn last_change<'m>(
        cursor: &mut std::iter::Peekable<std::collections::btree_map::Iter<'m, String, GitId>>,
        path: &str,
    ) -> Option<&'m GitId> {
        seek(cursor, path, |(p, _)| p.as_str()).map(|(_, id)| *id)
    }
    for (job, slot) in jobs.iter().zip(slot_of) {
        let snap = &snapshots[job.source];
        let (Some(key), Some(at)) = (job.key, slot) else {
            continue;
        };
        users[at] -= 1;
        let file = match users[at] {
            0 => slots[at].1.take(),
            _ => slots[at].1.clone(),
        };
        let Some(file) = file else { continue };
        let last = last_change(&mut cursors[job.source], job.path)
            .or_else(|| walked.histories[job.source].last_change.get(job.path));
        let ledger = lookups[job.source].as_ref();
        let made = FileCandidates {
            config,
            name: &names[job.source],
            snap,
            history: &walked.histories[job.source],
            ledger,
        };
        made.push(job, key, last, file, &mut candidates, &mut warnings);
    }
    (candidates, warnings)
}

/// What turning one source's parse records into candidates needs (see [`candidates`]).
struct FileCandidates<'a> {
    config: &'a Config,
    name: &'a str,
    snap: &'a Snapshot,
    history: &'a diff::History,
    /// The ledger's answers, when it gives the source's identities.
    ledger: Option<&'a state::ledger::Lookup<'a>>,
}

impl FileCandidates<'_> {
    /// Pushes the candidates of `job`'s parse record `file` (parse key `key`, its path last changed
    /// by `last`), and its problems as warnings.
    fn push(
        &self,
        job: &FileJob,
        key: Digest,
        last: Option<&GitId>,
        file: ParsedFile,
        candidates: &mut Vec<Candidate>,
        warnings: &mut Vec<Finding>,
    ) {
        let (config, snap) = (self.config, self.snap);
        for p in file.problems {
            warnings.push(Finding::new(
                &snap.name, job.path, p.line, p.code, p.message,
            ));
        }
        // Only the revision: the link is made when the value is formatted (see `SourceLinks`).
        let link = snap.web.as_ref().map(|_| match config.ref_style {
            RefStyle::LastChange => last.map_or(LinkRev::Commit, |id| LinkRev::Change(*id)),
            RefStyle::Commit => LinkRev::Commit,
            RefStyle::Branch => LinkRev::Branch,
        });
        let mut hex = [0; 64];
        let content = job.content.unwrap_or_default();
        let content = content.hex_in(&mut hex);
        let origin = self.history.origin(job.path);
        for rule in file.rules {
            // A file renamed on the history keeps the uuid of the path it first had.
            let from_history = (origin != job.path)
                .then(|| merge::derived_uuid(config.galaxy.uuid, self.name, origin, rule.index));
            let remembered = match self.ledger {
                Some(lookup) => lookup
                    .remembered(job.path, rule.index, content)
                    .or(from_history),
                None => from_history,
            };
            candidates.push(Candidate {
                source: job.source,
                path: job.path.to_string(),
                remembered,
                rule: Box::new(rule),
                link,
                record: key,
            });
        }
    }
}

/// The new UUID ledger: every value without its own id, plus what the old ledger remembers of sources
/// not built this time (they may come back).
fn remembered_uuids(
    values: &[merge::Value],
    names: &[String],
    jobs: &[FileJob],
    old: &state::ledger::Ledger,
) -> state::ledger::Ledger {
    let mut ledger = state::ledger::Ledger::default();
    record_values(&mut ledger, values, names, jobs);
    for (name, entries) in &old.sources {
        if !names.contains(name) {
            ledger.sources.insert(name.clone(), entries.clone());
        }
    }
    ledger
}

/// Records in `ledger` the uuid of every value without its own id.
fn record_values(
    ledger: &mut state::ledger::Ledger,
    values: &[merge::Value],
    names: &[String],
    jobs: &[FileJob],
) {
    // Only the files of values without their own id (a few in most galaxies) are looked up, by a
    // binary search of the jobs (in source, then path order): nothing is done per file.
    let content_of = |source: usize, path: &str| {
        jobs.binary_search_by(|j| (j.source, j.path).cmp(&(source, path)))
            .ok()
            .and_then(|at| jobs[at].content)
            .unwrap_or_default()
    };
    for v in values.iter().filter(|v| !v.own_id) {
        let content = content_of(v.source, &v.path);
        ledger.record(
            &names[v.source],
            &v.path,
            v.rule.index,
            v.uuid,
            &content.hex(),
        );
    }
}

/// The stage timings, when asked for with --verbose.
fn timings(config: &Config, clock: Stopwatch) -> Vec<Timing> {
    if config.output.verbose() {
        clock.finish()
    } else {
        Vec::new()
    }
}

/// The sources as reported; `files` gives the rule file counts when they were not listed this run.
fn source_summaries(
    snapshots: &[Snapshot],
    files: Option<&std::collections::BTreeMap<String, usize>>,
) -> Vec<SourceSummary> {
    snapshots
        .iter()
        .map(|s| SourceSummary {
            name: s.name.clone(),
            location: s.location.clone(),
            commit: s.commit.to_string(),
            commit_time: s.commit_time,
            files: files
                .and_then(|f| f.get(&s.name).copied())
                .unwrap_or(s.files.len()),
            links: s.web.is_some(),
        })
        .collect()
}

/// The summary of a run that found nothing to do.
fn unchanged_summary(
    rec: &BuildRecord,
    snapshots: &[Snapshot],
    cluster: &Path,
    galaxy: &Path,
) -> Summary {
    Summary {
        values: rec.values,
        reused: rec.files.values().sum(),
        version: rec.version,
        sources: source_summaries(snapshots, Some(&rec.files)),
        warnings: rec.warnings.clone(),
        ..Summary::empty(cluster, galaxy)
    }
}

/// Whether both output files still have the hashes the last build wrote.
fn outputs_match(rec: &BuildRecord, cluster: &Path, galaxy: &Path) -> bool {
    state::file_checksum(cluster).is_ok_and(|h| h == rec.cluster_checksum)
        && state::file_checksum(galaxy).is_ok_and(|h| h == rec.galaxy_checksum)
}
