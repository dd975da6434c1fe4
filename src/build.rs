//! Build: runs the pipeline stages in order for the `build` command.
//!
//! `config → sources → diff → parse → state → merge → relate → emit → report`: this module wires the
//! stages together and decides, with [`crate::state`], how much work a run needs. It holds the state
//! folder's lock for the whole run, checks the build key before doing anything (a fresh key and intact
//! outputs: nothing to do), invalidates the build record before work, and saves the state only after
//! the outputs are in place.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use crate::config::{Config, RefStyle};
use crate::diff;
use crate::emit;
use crate::error::{Error, Result};
use crate::merge::{self, Candidate};
use crate::parse::{self, ParsedFile};
use crate::relate::{self, AttackIndex};
use crate::report::{SourceSummary, Stopwatch, Summary, Timing, Warning};
use crate::sources::{self, Snapshot};
use crate::state::key::{self, BuildKey, FilterKey, ParseKey};
use crate::state::reason::Reason;
use crate::state::{
    self, AttackCache, BlobInfo, BuildRecord, ParseCache, SourceState, Sources, State, checksum,
    sha256_hex,
};

/// The ATT&CK cluster files read, in the order they are hashed.
const ATTACK_FILES: [&str; 4] = [
    "mitre-attack-pattern.json",
    "mitre-intrusion-set.json",
    "mitre-malware.json",
    "mitre-tool.json",
];

/// A rule file of some source, and where its parse result comes from.
struct FileJob {
    source: usize,
    path: String,
    blob: git2::Oid,
    /// Hex SHA-256 of the bytes, once known.
    content: Option<String>,
    /// The parse key of its content, once its parse result is in the new cache.
    key: Option<String>,
}

/// Makes sure the new cache has the entry `key`, moving it from the old cache if need be; false when
/// neither has it.
fn take_entry(old: &mut ParseCache, new: &mut ParseCache, key: &str) -> bool {
    if new.entries.contains_key(key) {
        return true;
    }
    match old.entries.remove(key) {
        Some(parsed) => {
            new.entries.insert(key.to_string(), parsed);
            true
        }
        None => false,
    }
}

/// Builds the galaxy described by `config` and writes it (unless nothing changed).
pub fn build(config: &Config) -> Result<Summary> {
    let quiet = matches!(
        config.output,
        crate::config::Output::Human { quiet: true, .. }
    );
    let mut clock = Stopwatch::default();
    let _lock = state::lock(&config.state, config.no_wait, quiet)?;
    clock.lap("lock");
    let mut reasons = Vec::new();
    let (mut prev, distrusted) = State::load(&config.state);
    clock.lap("state load");
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
            ..State::default()
        };
        reasons.push(Reason::Full);
    }

    let mut snapshots: Vec<Snapshot> = config
        .sources
        .iter()
        .map(|s| sources::open(s, &config.state))
        .collect::<Result<_>>()?;
    clock.lap("sources");
    let attack_hash = config
        .attack_clusters
        .as_deref()
        .map(hash_attack)
        .transpose()?;
    let build_key = BuildKey::new(config, &snapshots, attack_hash.as_deref());
    let inputs = serde_json::to_value(&build_key).unwrap_or_default();
    let key_hash = key::hash(&build_key);

    let cluster_file = emit::cluster_path(&config.out, &config.galaxy.kind);
    let galaxy_file = emit::galaxy_path(&config.out, &config.galaxy.kind);
    let damaged = reasons
        .iter()
        .any(|r| matches!(r, Reason::Distrusted { .. }));
    match &prev.build {
        // A damaged state file is repaired even when nothing else changed.
        Some(rec) if rec.key == key_hash && !damaged => {
            if outputs_match(rec, &cluster_file, &galaxy_file) {
                clock.lap("fresh check");
                let mut summary = unchanged_summary(rec, &snapshots, &cluster_file, &galaxy_file);
                summary.timings = timings(config, clock);
                return Ok(summary);
            }
            reasons.push(Reason::OutputsChanged);
        }
        Some(rec) => reasons.extend(what_changed(&rec.inputs, &inputs)),
        None if !config.full && prev.sources.sources.is_empty() => reasons.push(Reason::NoState),
        None => {}
    }
    clock.lap("fresh check");
    state::invalidate(&config.state)?;
    // The rule files: the previous build's list plus the tree differences when there is one.
    for snap in &mut snapshots {
        let filter_key = key::hash(&FilterKey::new(&snap.filter));
        let updated = prev
            .sources
            .sources
            .get(&snap.name)
            .filter(|o| o.filter == filter_key)
            .and_then(|o| {
                diff::update_files(&snap.repo, &o.commit, &o.files, snap.commit, &snap.filter).ok()
            });
        match updated {
            Some(files) => snap.files = files,
            None => snap.list_files()?,
        }
    }
    clock.lap("list");
    let attack = match (config.attack_clusters.as_deref(), attack_hash) {
        (Some(dir), Some(hash)) => Some(match prev.attack.take() {
            Some(cached) if cached.hash == hash => cached,
            _ => AttackCache {
                hash,
                index: AttackIndex::load(dir)?,
            },
        }),
        _ => None,
    };

    clock.lap("attack index");
    // diff: history walks and renames, per source.
    let mut new_sources = Sources::default();
    let mut all_renames = Vec::new();
    let mut histories = Vec::new();
    for snap in &snapshots {
        let filter_key = key::hash(&FilterKey::new(&snap.filter));
        let old = prev
            .sources
            .sources
            .get(&snap.name)
            .filter(|o| o.filter == filter_key);
        let paths: Vec<String> = snap.files.iter().map(|f| f.path.clone()).collect();
        let source_err = |e: git2::Error| Error::Source {
            source_name: snap.name.clone(),
            message: format!("walking history: {}", e.message()),
        };
        let (history, _walk) = diff::walk(
            &snap.repo,
            snap.commit,
            &paths,
            &snap.filter,
            old.map(|o| &o.history),
        )
        .map_err(source_err)?;
        // Renames only matter to remembered uuids whose path is gone; finding them reads blobs, so
        // skip it when no such path exists.
        let ledger_path_gone = prev
            .sources
            .ledger
            .sources
            .get(&snap.name)
            .is_some_and(|e| {
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
            .and_then(|c| diff::renames(&snap.repo, c, snap.commit, &snap.filter).ok())
            .unwrap_or_default();
        all_renames.push(renames);
        histories.push(history);
        new_sources.sources.insert(
            snap.name.clone(),
            SourceState {
                commit: snap.commit.to_string(),
                filter: filter_key,
                files: snap
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.blob.to_string()))
                    .collect(),
                history: histories.last().cloned().unwrap_or_default(),
            },
        );
    }

    clock.lap("diff");
    // parse: reuse what the cache knows, parse the rest in parallel. Entries move from the old cache to
    // the new one, which holds exactly the current files' contents.
    let mut cache = ParseCache {
        parser: key::PARSER_FORMAT,
        ..ParseCache::default()
    };
    let keys_valid = prev.parsed.parser == key::PARSER_FORMAT;
    let mut jobs: Vec<FileJob> = Vec::new();
    for (s, snap) in snapshots.iter().enumerate() {
        for f in &snap.files {
            let known = prev.parsed.blobs.get(&f.blob.to_string());
            let content = known.map(|b| b.content.clone());
            let key = known
                .map(|b| match keys_valid {
                    true => b.key.clone(),
                    false => key::hash(&ParseKey::new(&b.content)),
                })
                .filter(|k| take_entry(&mut prev.parsed, &mut cache, k));
            jobs.push(FileJob {
                source: s,
                path: f.path.clone(),
                blob: f.blob,
                content,
                key,
            });
        }
    }
    let unknown: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].key.is_none()).collect();
    // Reading and hashing happen in parallel too, each worker with its own repository handles
    // (a git2 repository is not shared between threads).
    let git_dirs: Vec<&Path> = snapshots.iter().map(|s| s.git_dir.as_path()).collect();
    let source_names: Vec<&str> = snapshots.iter().map(|s| s.name.as_str()).collect();
    let open_all = || -> std::result::Result<Vec<git2::Repository>, String> {
        git_dirs
            .iter()
            .map(|d| git2::Repository::open(d).map_err(|e| e.message().to_string()))
            .collect()
    };
    let read: Vec<(usize, Vec<u8>, String)> = unknown
        .par_iter()
        .map_init(open_all, |repos, &i| {
            let job = &jobs[i];
            let failed = |message: String| Error::Source {
                source_name: source_names[job.source].to_string(),
                message: format!("reading {}: {message}", job.path),
            };
            let repo = &repos.as_ref().map_err(|m| failed(m.clone()))?[job.source];
            let bytes = repo
                .find_blob(job.blob)
                .map(|b| b.content().to_vec())
                .map_err(|e| failed(e.message().to_string()))?;
            let content = sha256_hex(&bytes);
            Ok((i, bytes, content))
        })
        .collect::<Result<_>>()?;
    let mut to_parse: Vec<(usize, Vec<u8>, String)> = Vec::new();
    for (i, bytes, content) in read {
        let key = key::hash(&ParseKey::new(&content));
        jobs[i].content = Some(content);
        if take_entry(&mut prev.parsed, &mut cache, &key) {
            jobs[i].key = Some(key);
        } else {
            to_parse.push((i, bytes, key));
        }
    }
    let parsed_now: Vec<(usize, String, ParsedFile)> = to_parse
        .into_par_iter()
        .map(|(i, bytes, key)| (i, key, parse::parse_file(&bytes)))
        .collect();
    let parsed_count = parsed_now.len();
    for (i, key, parsed) in parsed_now {
        if config.output.verbose() {
            reasons.push(Reason::NewContent {
                file: format!("{}:{}", snapshots[jobs[i].source].name, jobs[i].path),
            });
        }
        cache.entries.entry(key.clone()).or_insert(parsed);
        jobs[i].key = Some(key);
    }
    for job in &jobs {
        if let (Some(content), Some(key)) = (&job.content, &job.key) {
            let info = BlobInfo {
                content: content.clone(),
                key: key.clone(),
            };
            cache.blobs.insert(job.blob.to_string(), info);
        }
    }
    state::save_parsed(&config.state, &cache, &prev.shards)?;
    clock.lap("parse");

    // merge: candidates in source, path, index order, with links and remembered uuids.
    let names: Vec<String> = snapshots.iter().map(|s| s.name.clone()).collect();
    let mut warnings = Vec::new();
    let mut candidates = Vec::new();
    let lookups: Vec<_> = snapshots
        .iter()
        .zip(&all_renames)
        .map(|(snap, renames)| {
            let paths: HashSet<&str> = snap.files.iter().map(|f| f.path.as_str()).collect();
            prev.sources.ledger.lookup(&snap.name, &paths, renames)
        })
        .collect();
    // Parse records move into the candidates: copied only for the rare contents that several files
    // share.
    let mut users: HashMap<&str, usize> = HashMap::new();
    for key in jobs.iter().filter_map(|j| j.key.as_deref()) {
        *users.entry(key).or_default() += 1;
    }
    let mut entries = std::mem::take(&mut cache.entries);
    let mut contents: HashMap<(usize, &str), &str> = HashMap::new();
    for job in &jobs {
        let snap = &snapshots[job.source];
        let content = job.content.as_deref().unwrap_or_default();
        contents.insert((job.source, job.path.as_str()), content);
        let Some(key) = job.key.as_deref() else {
            continue;
        };
        let file = match users.get_mut(key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                entries.get(key).cloned()
            }
            _ => entries.remove(key),
        };
        let Some(file) = file else { continue };
        for p in file.problems {
            warnings.push(Warning::new(&snap.name, &job.path, p.line, p.message));
        }
        let link = snap.web.as_ref().map(|w| {
            let rev = match config.ref_style {
                RefStyle::LastChange => histories[job.source]
                    .last_change
                    .get(&job.path)
                    .cloned()
                    .unwrap_or_else(|| snap.commit.to_string()),
                RefStyle::Commit => snap.commit.to_string(),
                RefStyle::Branch => snap
                    .branch
                    .clone()
                    .unwrap_or_else(|| snap.commit.to_string()),
            };
            w.file_url(&rev, &job.path)
        });
        for rule in file.rules {
            candidates.push(Candidate {
                source: job.source,
                path: job.path.clone(),
                remembered: lookups[job.source].remembered(&job.path, rule.index, content),
                rule,
                link: link.clone(),
            });
        }
    }
    drop(lookups);
    clock.lap("candidates");
    let values = merge::merge(
        candidates,
        &names,
        config.galaxy.uuid,
        &config.galaxy.kind,
        config.filters,
        &mut warnings,
    );
    for v in values.iter().filter(|v| !v.own_id) {
        let content = contents
            .get(&(v.source, v.path.as_str()))
            .copied()
            .unwrap_or_default();
        new_sources
            .ledger
            .record(&names[v.source], &v.path, v.rule.index, v.uuid, content);
    }
    // Keep remembered uuids of sources not built this time (they may come back).
    for (name, entries) in &prev.sources.ledger.sources {
        if !names.contains(name) {
            new_sources
                .ledger
                .sources
                .insert(name.clone(), entries.clone());
        }
    }

    clock.lap("merge");
    // relate, then emit.
    let related = relate::relate(&values, attack.as_ref().map(|a| &a.index));
    warnings.sort();
    if config.strict && !warnings.is_empty() {
        for w in &warnings {
            eprintln!("error: {w}");
        }
        return Err(Error::Strict {
            count: warnings.len(),
        });
    }
    clock.lap("relate");
    let content_clock = histories.iter().map(|h| h.clock).max().unwrap_or(1);
    let cluster = emit::cluster_content(&config.galaxy, &values, &related);
    let galaxy = emit::Content::of(&emit::galaxy_json(&config.galaxy));
    clock.lap("format");
    let written = emit::write(
        &config.out,
        &config.galaxy.kind,
        cluster,
        galaxy,
        content_clock,
        [
            prev.sources.outputs[0].as_ref(),
            prev.sources.outputs[1].as_ref(),
        ],
    )?;
    clock.lap("write");

    let [cluster_print, galaxy_print] = written.fingerprints;
    let record = BuildRecord {
        key: key_hash,
        inputs,
        cluster_checksum: cluster_print.checksum.clone(),
        galaxy_checksum: galaxy_print.checksum.clone(),
        values: values.len(),
        files: snapshots
            .iter()
            .map(|s| (s.name.clone(), s.files.len()))
            .collect(),
        version: written.version,
        warnings: warnings.clone(),
    };
    new_sources.outputs = [Some(cluster_print), Some(galaxy_print)];
    state::save(&config.state, &new_sources, attack.as_ref(), &record)?;
    clock.lap("state save");

    Ok(Summary {
        values: values.len(),
        parsed: parsed_count,
        reused: jobs.len() - parsed_count,
        added: written.added,
        changed: written.changed,
        removed: written.removed,
        version: written.version,
        wrote: written.wrote,
        cluster: written.cluster.display().to_string(),
        galaxy: written.galaxy.display().to_string(),
        sources: source_summaries(&snapshots, None),
        warnings,
        reasons,
        timings: timings(config, clock),
    })
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
        parsed: 0,
        reused: rec.files.values().sum(),
        added: 0,
        changed: 0,
        removed: 0,
        version: rec.version,
        wrote: false,
        cluster: cluster.display().to_string(),
        galaxy: galaxy.display().to_string(),
        sources: source_summaries(snapshots, Some(&rec.files)),
        warnings: rec.warnings.clone(),
        reasons: Vec::new(),
        timings: Vec::new(),
    }
}

fn file_checksum(path: &Path) -> Result<String> {
    std::fs::read(path)
        .map(|b| checksum(&b))
        .map_err(|e| Error::io(path, e))
}

/// Whether both output files still have the hashes the last build wrote.
fn outputs_match(rec: &BuildRecord, cluster: &Path, galaxy: &Path) -> bool {
    file_checksum(cluster).is_ok_and(|h| h == rec.cluster_checksum)
        && file_checksum(galaxy).is_ok_and(|h| h == rec.galaxy_checksum)
}

/// Checksum over the ATT&CK cluster files present in `dir`, names included.
fn hash_attack(dir: &Path) -> Result<String> {
    let mut all = Vec::new();
    for name in ATTACK_FILES {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                all.extend_from_slice(name.as_bytes());
                all.push(0);
                all.extend_from_slice(checksum(&bytes).as_bytes());
                all.push(b'\n');
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(checksum(&all))
}

/// Compares two serialised build keys and names what differs.
fn what_changed(old: &serde_json::Value, new: &serde_json::Value) -> Vec<Reason> {
    let mut out = Vec::new();
    let field = |v: &serde_json::Value, k: &str| v.get(k).cloned().unwrap_or_default();
    if field(old, "tool") != field(new, "tool") {
        out.push(Reason::ToolChanged {
            from: field(old, "tool").as_str().unwrap_or("?").to_string(),
            to: field(new, "tool").as_str().unwrap_or("?").to_string(),
        });
    }
    for (k, what) in [
        ("galaxy", "the galaxy's own fields"),
        ("filters", "--filters"),
        ("strict", "--strict"),
        ("ref_style", "--ref-style"),
        ("format", "the state format"),
    ] {
        if field(old, k) != field(new, k) {
            out.push(Reason::OptionsChanged { what: what.into() });
        }
    }
    if field(old, "attack") != field(new, "attack") {
        out.push(Reason::AttackChanged);
    }
    let by_name = |v: &serde_json::Value| -> HashMap<String, serde_json::Value> {
        field(v, "sources")
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| Some((s.get("name")?.as_str()?.to_string(), s.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_s, new_s) = (by_name(old), by_name(new));
    let mut names: Vec<&String> = old_s.keys().chain(new_s.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let source = name.clone();
        match (old_s.get(name), new_s.get(name)) {
            (None, Some(_)) => out.push(Reason::SourceAdded { source }),
            (Some(_), None) => out.push(Reason::SourceRemoved { source }),
            (Some(o), Some(n)) => {
                let commit =
                    |v: &serde_json::Value| field(v, "commit").as_str().unwrap_or("").to_string();
                if commit(o) != commit(n) {
                    out.push(Reason::SourceMoved {
                        source: source.clone(),
                        from: commit(o),
                        to: commit(n),
                    });
                }
                let mut o = o.clone();
                let mut n = n.clone();
                for v in [&mut o, &mut n] {
                    if let Some(m) = v.as_object_mut() {
                        m.remove("commit");
                    }
                }
                if o != n {
                    out.push(Reason::SourceSettingsChanged { source });
                }
            }
            (None, None) => {}
        }
    }
    out
}
