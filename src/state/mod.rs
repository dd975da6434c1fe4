//! State: what one build leaves for the next, so that the next parses only what changed.
//!
//! This module owns the state folder (`--state`, default `.sigma-galaxy/` next to the output): its
//! layout, its integrity, its lock, and the rules for when an entry is stale. It is documented the way
//! cargo documents its fingerprints.
//!
//! # On-disk layout
//!
//! ```text
//! .sigma-galaxy/
//!   lock          advisory lock held for the whole run (a second run waits, or fails with --no-wait)
//!   build.json    the last successful build: its key (and the key's inputs, to tell what changed),
//!                 the checksums of the output and state files it wrote, its summary
//!   sources.bin   per source: commit built, rule files (path → blob), history walk (last changes,
//!                 content clock, origins of renamed files); the UUID ledger;
//!                 fingerprints of the files written (content and per-value hashes, and where each
//!                 value's text is, with its hash, by a key of everything it depends on, so unchanged
//!                 values are copied; hashes and uuids as bytes, not hex); the value table of the
//!                 cluster file (see [`table`]: what the merge chose and looked up per value, so an
//!                 isolated change merges only its own files' values)
//!   blobs.bin     blob id → content hash and parse key, all as bytes (so unchanged files are never read)
//!   parsed/x.bin  the parse cache, parse key → parsed records, in shards named by the key's first
//!                 hex digit (16 shards) up to 8,192 records, by its first two (`xx.bin`, 256) above:
//!                 a commit that changes a few files rewrites a few small shards (only those whose
//!                 keys were added or dropped), and a small cache is not spread over 256 files,
//!                 each read on every run and written anew by every clean build (see
//!                 `SMALL_CACHE`); what only a rule's value shows (`parse::Body`) is
//!                 not even copied when a shard is loaded: it is read back from the same file
//!                 (checksum checked again) for the values formatted afresh and for the shards
//!                 rewritten ([`fill_details`]), and nowhere else
//!   attack.bin    the ATT&CK index, with the checksum of the cluster files it was read from (its
//!                 maps in key order; kept as it is while those files do not change)
//!   mirrors/      bare mirrors of remote sources (see crate::sources)
//! ```
//!
//! Every file is one header line `sigma-galaxy-state <FORMAT> <checksum of the rest>` and a body:
//! JSON for the small build record (readable when debugging why something was rebuilt), postcard (a
//! compact binary serde format) for the megabytes of cache. Fixed-size ids and hashes (blob ids,
//! content hashes, parse keys, value keys, text hashes) are [`crate::hash::Bytes`]: one byte string
//! each, copied whole, where postcard takes an array a byte at a time. The checksum
//! ([`crate::hash::Checksum`], XXH3-128) detects accidents, not tampering, since a run checksums
//! hundreds of megabytes at 100k rules (state and outputs); rule contents and cache keys use
//! SHA-256. Maps are written in key order and the large ones are decoded in bulk
//! ([`crate::sorted`]), not one insert at a time. A file that is missing, truncated, bit-flipped, of
//! another format or not ours is reported and ignored: the run falls back to a clean build with the
//! same result. Files are written atomically (temporary file, rename), encoded straight into the
//! temporary file and checksummed on the way (the header goes last, over a placeholder of its
//! length), so that `sources.bin`, tens of megabytes at 100k rules, is never held encoded in memory.
//!
//! # What makes an entry stale
//!
//! | entry | key (a serialised struct, hashed whole with SHA-256) | stale when |
//! |---|---|---|
//! | parsed record | [`key::ParseKey`]: parser format, SHA-256 of the file's bytes | the bytes or the parser change |
//! | history walk | [`key::FilterKey`]: the source's path filter | the filter changes, or the old tip is not on the new first-parent history (then walked again from scratch) |
//! | whole build | [`key::BuildKey`]: tool version, galaxy fields, options, each source's name, location, commit, filter and link style, checksum of the ATT&CK clusters | any of those changes, or an output file no longer has the hash written |
//! | a value's table row (its uuid, title, text) | the same build key but for the sources' commits; its file untouched by the commits walked since | its file is touched, or a touched file's value shares a key with it ([`table`]: then every row is made again) |
//!
//! A fresh build key, intact outputs and a state folder holding exactly the files the last build
//! wrote (`build.json` lists their checksums; each is hashed in small pieces, none is decoded) mean
//! nothing is done: only `build.json` is loaded and no file is rewritten. Otherwise
//! `build.json` is deleted *before* any work and written again only after the outputs are in place,
//! so an interrupted run never looks fresh. Parse results are reused whenever their own key matches,
//! whatever else changed (another tool version that keeps the parser format keeps them).
//!
//! # Deliberately left out
//!
//! Modification times, and paths on this machine other than a source's location as written: keys are
//! built from content and from what the user configured, so parse results, history walks and the
//! ledger stay valid in a state folder moved to another machine, and a touched but unchanged file is
//! never rebuilt. (A source whose location string changes rebuilds its output once, reusing every
//! parse result.) The working tree is never looked at: rules come from commits.
//!
//! # Identity
//!
//! A rule's uuid is its `id` when that is a valid UUID no earlier rule has (see [`crate::merge`]). A rule
//! without one gets `UUIDv5(galaxy uuid, source name \0 origin path \0 document index)`, where the
//! *origin path* is the path its file had when it first appeared on the source's first-parent history.
//! The history walk ([`crate::diff::walk`]) computes origins commit by commit, oldest first, with the
//! same rules the ledger below applies between builds:
//!
//! | a commit … | the file's origin |
//! |---|---|
//! | gives it (new, or onto a path another file left) exactly the bytes of a rule file the same commit deleted (paired first, in path order, as git pairs exact renames first) | the origin of that file |
//! | renames it (git's rename detection with broken rewrites, over the commit's other rule file changes; edits allowed) | the origin of the path it was renamed from (this wins over the path it lands on) |
//! | edits it in place | unchanged |
//! | adds it otherwise | its own path |
//!
//! Rename detection reads blobs, so the walk runs it only where a rename is possible: a commit that
//! deletes a rule file, or where a file now has exactly another's former bytes (swapped paths). A
//! commit that only adds and edits is taken at its word, even where git would pair a file rewritten
//! beyond recognition with an edited copy of it.
//!
//! Origins are a pure function of the first-parent history, so a clean build on a fresh state folder
//! gives exactly the uuids an incremental chain of builds gave, whichever commits the chain built; a file
//! never renamed is its own origin, so its uuid is the path-derived one MISP's own script gives.
//! `sources.bin` keeps only the origins that differ from the path. Two files with one origin (a file
//! renamed and a new file at its old path) keep distinct uuids: the first in path order has the
//! origin's, the other the uuid derived from its current path.
//!
//! Two cases cannot be reproduced from history, and there the **UUID ledger** ([`ledger::Ledger`])
//! decides, and the summary says so (reason `ledger-identity`):
//!
//! - a **shallow** source (`depth`): its history stops before files first appeared;
//! - a **rewritten** history (the last built commit is no longer on the new first-parent history,
//!   e.g. a force-push): the new history may not give the uuids already published. From then on the
//!   ledger decides for that source, for the life of the state folder.
//!
//! The ledger records, for every id-less value, source, path, document index, uuid and content hash,
//! so that an edited (same path), renamed (git rename since the last built commit) or moved (same
//! content) rule keeps the uuid it had; a rule it does not know takes the uuid of its origin. It is
//! identity, not cache: `--full` discards the cache but keeps the ledger.

pub mod key;
pub mod ledger;
pub mod reason;
pub mod table;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::hash::{Digest, checksum, file_checksum, hex, sha256_hex};

use crate::diff::History;
use crate::error::{Error, Result};
use crate::parse::{Body, ParsedFile};
use ledger::Ledger;

/// Bumped whenever the layout or meaning of a state file changes; other formats are ignored.
pub const FORMAT: u32 = 14;

const MAGIC: &str = "sigma-galaxy-state";
const BUILD: &str = "build.json";
const SOURCES: &str = "sources.bin";
const BLOBS: &str = "blobs.bin";
const PARSED_DIR: &str = "parsed";
const ATTACK: &str = "attack.bin";

/// The record of the last successful build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Hex SHA-256 of the [`key::BuildKey`].
    pub key: String,
    /// The [`key::BuildKey`] itself, to tell what changed.
    pub inputs: serde_json::Value,
    /// Checksums ([`checksum`]) of the cluster and galaxy files written.
    pub cluster_checksum: String,
    pub galaxy_checksum: String,
    /// What the build reported, to report again when nothing changes.
    pub values: usize,
    /// Rule files per source name.
    #[serde(default)]
    pub files: BTreeMap<String, usize>,
    pub version: i64,
    pub warnings: Vec<crate::findings::Finding>,
    /// Checksum of every other state file this build left, by name (`parsed/x.bin` or `parsed/xx.bin`
    /// for shards): a run that finds nothing to do checks that the state is exactly what was written.
    #[serde(default)]
    pub state: Checksums,
}

/// State file name (relative to the state folder) → the checksum in its header.
pub type Checksums = BTreeMap<String, String>;

/// What is remembered of one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    /// The commit last built.
    pub commit: String,
    /// Hex hash of the [`key::FilterKey`] the files and history were computed with.
    pub filter: String,
    /// Rule file path → blob id, at `commit`.
    #[serde(deserialize_with = "crate::sorted::map")]
    pub files: BTreeMap<String, BlobId>,
    /// The history walk at `commit`.
    pub history: History,
}

/// Per-source state, the ledger and what was last written (`sources.bin`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sources {
    pub sources: BTreeMap<String, SourceState>,
    pub ledger: Ledger,
    /// Fingerprints of the cluster and galaxy files last written.
    pub outputs: [Option<crate::emit::Fingerprint>; 2],
    /// The cluster file's values, for building only the changed files' values next time.
    pub table: table::Table,
}

/// The parse cache (`blobs.bin` and the shards in `parsed/`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseCache {
    /// The parser format the `key`s of `blobs` were computed for.
    pub parser: u32,
    /// Blob id → its content hash and parse key (so unchanged files need not be read at all).
    pub blobs: BTreeMap<BlobId, BlobInfo>,
    /// Hash of a [`key::ParseKey`] → the parsed file.
    pub entries: BTreeMap<Digest, ParsedFile>,
}

/// The ATT&CK index read from a `--attack-clusters` folder (`attack.bin`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackCache {
    /// Checksum over the cluster files' checksums.
    pub hash: String,
    pub index: crate::relate::AttackIndex,
    /// The checksum of the `attack.bin` it was loaded from (none when built in this run): saving
    /// keeps that file as it is instead of writing the same bytes again.
    #[serde(skip)]
    pub stored: Option<String>,
}

/// A git blob id, as its bytes.
pub type BlobId = crate::hash::GitId;

/// What the cache knows of one blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// SHA-256 of its bytes.
    pub content: Digest,
    /// Hash of its [`key::ParseKey`].
    pub key: Digest,
}

/// `blobs.bin`: what [`ParseCache`] holds besides its entries.
#[derive(Debug, Default, Serialize, Deserialize)]
struct BlobIndex {
    parser: u32,
    #[serde(deserialize_with = "crate::sorted::map")]
    blobs: BTreeMap<BlobId, BlobInfo>,
}

/// Everything loaded from a state folder.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub build: Option<BuildRecord>,
    pub sources: Sources,
    pub parsed: ParseCache,
    pub attack: Option<AttackCache>,
    /// The parse cache shards on disk, so that saving rewrites only the shards whose keys changed
    /// (and removes the emptied ones).
    pub shards: Shards,
    /// The checksums of the state files that loaded intact (for the shards saving keeps).
    pub checksums: Checksums,
}

/// The names of the parse cache shards on disk (`0` … `f`, or `00` … `ff`).
pub type Shards = std::collections::BTreeSet<String>;

/// The largest parse cache kept in 16 shards (named by one hex digit); a larger one has 256 (two
/// digits). Every shard costs an open, a read and a checksum per incremental run (about 60 µs, as
/// measured on a 2-core VM), and a file created and renamed whenever it is written (about 0.4 ms: a
/// clean build of SigmaHQ's 4,000 rules spent 100 ms writing 256 shards, 10 ms writing 16). A
/// commit that changes a few files rewrites a few shards, each 1/16 or 1/256 of the cache: below
/// this size, rewriting bigger shards costs less than 240 more files. At 16,384 it did not: a
/// 10-rule change of 10,000 rules rewrote 10 of 16 shards, 46 ms against 13 ms with 256.
const SMALL_CACHE: usize = 8 * 1024;

/// How many hex digits of a key name its shard, in a parse cache of `entries` records.
pub fn shard_digits(entries: usize) -> usize {
    match entries <= SMALL_CACHE {
        true => 1,
        false => 2,
    }
}

/// The shard holding keys whose first byte is `first`: its first `digits` (1 or 2) hex digits.
pub fn shard_of(first: u8, digits: usize) -> String {
    match digits {
        1 => format!("{:x}", first >> 4),
        _ => format!("{first:02x}"),
    }
}

/// The first bytes of the keys the shard called `name` holds; `None` when `name` is not a shard's
/// (one or two lower-case hex digits).
fn shard_range(name: &str) -> Option<std::ops::RangeInclusive<u8>> {
    if !name.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let n = u8::from_str_radix(name, 16).ok()?;
    match name.len() {
        1 => Some(n << 4..=(n << 4 | 0xf)),
        2 => Some(n..=n),
        _ => None,
    }
}

/// The loaded shard file (`parsed/….bin`, as `loaded` names it) holding `key`.
fn loaded_shard(loaded: &Checksums, key: &Digest) -> String {
    let first = key.bytes()[0];
    let name = |digits| format!("{PARSED_DIR}/{}.bin", shard_of(first, digits));
    let two = name(2);
    match loaded.contains_key(&two) {
        true => two,
        false => name(1),
    }
}

/// Copies into `bodies` (each with the key of its parse record) their details, which [`State::load`]
/// left in the parse cache's shard files (see [`Body::fill`]). Each shard file is read once, and
/// must still be the one loaded: its checksum the one in `loaded`, as `State::load` returned it.
pub fn fill_details<'a>(
    dir: &Path,
    loaded: &Checksums,
    bodies: impl IntoIterator<Item = (&'a Digest, &'a mut Body)>,
) -> Result<()> {
    let mut by_shard: BTreeMap<String, Vec<&mut Body>> = BTreeMap::new();
    for (key, body) in bodies {
        if body.in_shard() {
            by_shard
                .entry(loaded_shard(loaded, key))
                .or_default()
                .push(body);
        }
    }
    for (name, bodies) in by_shard {
        let path = dir.join(&name);
        let changed = |problem: String| Error::Input {
            path: path.clone(),
            message: format!(
                "{problem}: the parse cache changed during the build (run it again, or with --full)"
            ),
        };
        let (bytes, sum) = read_checked(&path)
            .map_err(changed)?
            .ok_or_else(|| changed("gone".into()))?;
        if loaded.get(&name) != Some(&sum) {
            return Err(changed("not the file loaded".into()));
        }
        for body in bodies {
            if !body.fill(bytes.body()) {
                return Err(changed(
                    "a rule's details are not where it was loaded from".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Why a state file was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distrust {
    pub file: PathBuf,
    pub problem: String,
}

impl State {
    /// Loads what can be trusted from `dir`. Files that are missing are simply empty; files that are
    /// damaged, foreign or of another format are reported in the second result and treated as empty.
    pub fn load(dir: &Path) -> (State, Vec<Distrust>) {
        let mut problems = Vec::new();
        let mut checksums = Checksums::new();
        let state = Self::load_files(dir, &mut problems, &mut checksums, true);
        (state, problems)
    }

    /// [`State::load`], decoding the parse cache's records only with `records`.
    fn load_files(
        dir: &Path,
        problems: &mut Vec<Distrust>,
        checksums: &mut Checksums,
        records: bool,
    ) -> State {
        // Each file is decoded as soon as it is read, and its bytes let go before the next is read:
        // never two files' bytes (40 MB at 100k rules) held beside what they decode to.
        fn load<T: DeserializeOwned>(
            dir: &Path,
            name: &str,
            checksums: &mut Checksums,
            problems: &mut Vec<Distrust>,
        ) -> Option<T> {
            let path = dir.join(name);
            match read_checked(&path) {
                Ok(Some((body, sum))) => {
                    checksums.insert(name.to_string(), sum);
                    decode_body(dir, name, Some(body), problems)
                }
                Ok(None) => None,
                Err(problem) => {
                    problems.push(Distrust {
                        file: path,
                        problem,
                    });
                    None
                }
            }
        }
        let build = load(dir, BUILD, checksums, problems);
        let attack = load(dir, ATTACK, checksums, problems).map(|a| AttackCache {
            stored: checksums.get(ATTACK).cloned(),
            ..a
        });
        let sources = load(dir, SOURCES, checksums, problems).unwrap_or_default();
        let index: BlobIndex = load(dir, BLOBS, checksums, problems).unwrap_or_default();
        let none = Shards::new();
        let only = (!records).then_some(&none);
        let (entries, shards) = load_shards(&dir.join(PARSED_DIR), problems, checksums, only);
        let checksums = std::mem::take(checksums);
        State {
            attack,
            build,
            sources,
            parsed: ParseCache {
                parser: index.parser,
                blobs: index.blobs,
                entries,
            },
            shards,
            checksums,
        }
    }
}

impl State {
    /// [`State::load`] without decoding the parse cache's records: the shards on disk are listed,
    /// and [`State::load_records`] decodes those a build needs.
    pub fn load_lazy(dir: &Path) -> (State, Vec<Distrust>) {
        let mut problems = Vec::new();
        let mut checksums = Checksums::new();
        let state = Self::load_files(dir, &mut problems, &mut checksums, false);
        (state, problems)
    }

    /// Decodes the parse cache shards `only` names (all with `None`) into `parsed.entries`, with
    /// their checksums; what could not be trusted. Shards already decoded must not be named again.
    pub fn load_records(&mut self, dir: &Path, only: Option<&Shards>) -> Vec<Distrust> {
        let mut problems = Vec::new();
        let (entries, _) = load_shards(
            &dir.join(PARSED_DIR),
            &mut problems,
            &mut self.checksums,
            only,
        );
        if self.parsed.entries.is_empty() {
            self.parsed.entries = entries;
        } else {
            self.parsed.entries.extend(entries);
        }
        problems
    }
}

impl State {
    /// Loads only the build record (`build.json`): all a run needs to find that nothing changed.
    pub fn load_record(dir: &Path) -> Option<BuildRecord> {
        let (body, _) = read_checked(&dir.join(BUILD)).ok().flatten()?;
        serde_json::from_slice(body.body()).ok()
    }
}

/// Whether the state files are exactly those `written` lists (the last build's record): each there,
/// intact (header and checksum, read in small pieces, nothing decoded) and with the checksum the
/// build wrote, and no other parse cache shard. A run that finds nothing to do thus still notices
/// (and so repairs) a damaged or replaced state file, at the cost of hashing it, not of loading it.
pub fn verify(dir: &Path, written: &Checksums) -> bool {
    let shard_dir = dir.join(PARSED_DIR);
    let extra_shard = std::fs::read_dir(&shard_dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = format!("{PARSED_DIR}/{}", e.file_name().to_string_lossy());
            !written.contains_key(&name)
        })
    });
    !written.is_empty()
        && !extra_shard
        && written
            .par_iter()
            .all(|(name, sum)| verify_file(&dir.join(name)).is_ok_and(|s| s == *sum))
}

/// [`read_checked`]'s verdict on one file, reading it in pieces and keeping none of it: its
/// checksum when intact.
fn verify_file(path: &Path) -> std::result::Result<String, String> {
    use std::io::{BufRead, BufReader};
    let file = File::open(path).map_err(|e| format!("unreadable ({e})"))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut header = Vec::new();
    reader
        .read_until(b'\n', &mut header)
        .map_err(|e| format!("unreadable ({e})"))?;
    if header.pop() != Some(b'\n') {
        return Err("truncated or not a sigma-galaxy state file".into());
    }
    let want = check_header(&header)?;
    let sum = crate::hash::Checksum::new()
        .update_reader(reader)
        .map_err(|e| format!("unreadable ({e})"))?
        .hex();
    if sum != want {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    Ok(want)
}

/// The checksum a state file's header line (without its newline) announces, if the line is ours and
/// of this format.
fn check_header(header: &[u8]) -> std::result::Result<String, String> {
    let header = std::str::from_utf8(header).map_err(|_| "not a sigma-galaxy state file")?;
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err("not a sigma-galaxy state file".into());
    }
    let format = parts.next().and_then(|f| f.parse::<u32>().ok());
    if format != Some(FORMAT) {
        return Err(format!(
            "state format {} (this sigma-galaxy reads {FORMAT})",
            format.map_or_else(|| "?".into(), |f| f.to_string())
        ));
    }
    parts
        .next()
        .map(str::to_string)
        .ok_or_else(|| "truncated or not a sigma-galaxy state file".into())
}

/// One shard's parse records, in key order (a map on disk, decoded as its entries: the shards are
/// put together into one map, built in bulk).
#[derive(Deserialize)]
struct Shard(#[serde(deserialize_with = "crate::sorted::entries")] Vec<(Digest, ParsedFile)>);

/// Reads, checks and decodes the shards of the parse cache that `only` names (all with `None`), in
/// parallel; the others are listed in the shards returned but neither read nor checksummed.
fn load_shards(
    dir: &Path,
    problems: &mut Vec<Distrust>,
    checksums: &mut Checksums,
    only: Option<&Shards>,
) -> (BTreeMap<Digest, ParsedFile>, Shards) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".bin"))
                .collect()
        })
        .unwrap_or_default();
    // In name order, the shards' entries put together are in key order: the map is built in one pass.
    names.sort_unstable();
    // One layout is loaded: the one most shards have (both are there only after a build that
    // changed layout was interrupted; the others are then removed by the next save).
    let digits = |name: &str| {
        let stem = name.trim_end_matches(".bin");
        shard_range(stem).map(|_| stem.len())
    };
    let two = names.iter().filter(|n| digits(n) == Some(2)).count();
    let layout = match 2 * two >= names.len() {
        true => 2,
        false => 1,
    };
    /// A shard's name and its records with its checksum, or why it was not used.
    type Loaded = (String, std::result::Result<(Shard, String), String>);
    let wanted = |name: &String| only.is_none_or(|o| o.contains(name.trim_end_matches(".bin")));
    let mut shards = Shards::new();
    for name in names.iter().filter(|n| !wanted(n)) {
        shards.insert(name.trim_end_matches(".bin").to_string());
    }
    names.retain(wanted);
    let loaded: Vec<Loaded> = names
        .into_par_iter()
        .map(|name| {
            let body = match digits(&name) == Some(layout) {
                true => read_checked(&dir.join(&name)).and_then(|b| b.ok_or_else(|| "gone".into())),
                false => Err("not a shard of the parse cache's layout".into()),
            };
            // The rules' details are left in the file's bytes (see `Body::left_in`), which are
            // dropped here: `fill_details` reads them again for the few that are needed.
            let decoded = body.and_then(|(b, sum)| {
                Body::left_in(b.body(), || postcard::from_bytes(b.body()))
                    .map(|shard| (shard, sum))
                    .map_err(|e| format!("unexpected content ({e})"))
            });
            (name, decoded)
        })
        .collect();
    // Room for every record at once: grown shard by shard, 100k records would be copied 17 times.
    let count = loaded
        .iter()
        .filter_map(|(_, d)| d.as_ref().ok())
        .map(|(Shard(records), _)| records.len())
        .sum();
    let mut entries = Vec::with_capacity(count);
    for (name, decoded) in loaded {
        shards.insert(name.trim_end_matches(".bin").to_string());
        match decoded {
            Ok((Shard(records), sum)) => {
                checksums.insert(format!("{PARSED_DIR}/{name}"), sum);
                entries.extend(records);
            }
            Err(problem) => {
                // Known to the next save as on disk but not loaded, so it is rewritten (or removed).
                problems.push(Distrust {
                    file: dir.join(&name),
                    problem,
                });
            }
        }
    }
    (BTreeMap::from_iter(entries), shards)
}

fn decode_body<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
    body: Option<Checked>,
    problems: &mut Vec<Distrust>,
) -> Option<T> {
    let body = body?;
    let decoded = if is_json(name) {
        serde_json::from_slice(body.body()).map_err(|e| e.to_string())
    } else {
        postcard::from_bytes(body.body()).map_err(|e| e.to_string())
    };
    match decoded {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(Distrust {
                file: dir.join(name),
                problem: format!("unexpected content ({e})"),
            });
            None
        }
    }
}

/// The body of a state file and its checksum, `Ok(None)` when it does not exist, `Err` when it
/// cannot be trusted.
fn read_checked(path: &Path) -> std::result::Result<Option<(Checked, String)>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("unreadable ({e})")),
    };
    let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
        return Err("truncated or not a sigma-galaxy state file".into());
    };
    let sum = check_header(&bytes[..newline])?;
    if sum != checksum(&bytes[newline + 1..]) {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    Ok(Some((
        Checked {
            bytes,
            start: newline + 1,
        },
        sum,
    )))
}

/// An intact state file's bytes as read: the body is decoded where it lies, after the header (not
/// moved to the front first, which at 100k rules copied 100 MB per run).
#[derive(Debug, Default)]
struct Checked {
    bytes: Vec<u8>,
    start: usize,
}

impl Checked {
    fn body(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Whether a state file is JSON (else postcard), by its name.
fn is_json(name: &str) -> bool {
    name.ends_with(".json")
}

/// Writes one state file atomically, with its header; its checksum. The body is encoded straight
/// into the file and checksummed on the way (sources.bin is tens of megabytes at 100k rules, and is
/// never held encoded in memory); the header, whose length does not depend on the checksum, is
/// written last, over a placeholder.
fn save_file<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<String> {
    let path = dir.join(name);
    let tmp = tempfile::Builder::new()
        .prefix(".state-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let header = |sum: &str| format!("{MAGIC} {FORMAT} {sum}\n");
    let placeholder = header(&"0".repeat(checksum(b"").len()));
    let file = tmp.as_file();
    (&*file)
        .write_all(placeholder.as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    // Checksummed in the buffer's pieces, not in the encoder's bytes.
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, crate::hash::Summed::new(file));
    let encoded = if is_json(name) {
        serde_json::to_writer(&mut out, value).map_err(std::io::Error::other)
    } else {
        postcard::to_io(value, &mut out)
            .map(drop)
            .map_err(std::io::Error::other)
    };
    // No fsync: a state file cut short by a power loss fails its checksum and is rebuilt, so the
    // cost of syncing megabytes on every run buys nothing.
    let sum = encoded
        .and_then(|()| {
            out.into_inner()
                .map_err(std::io::IntoInnerError::into_error)
        })
        .and_then(|summed| {
            let (mut file, sum) = summed.finish();
            file.seek(std::io::SeekFrom::Start(0))?;
            file.write_all(header(&sum).as_bytes())?;
            Ok(sum)
        })
        .map_err(|e| Error::io(&path, e))?;
    if path.is_dir() {
        // Not ours to keep: a state file's place is taken by a folder.
        remove(&path)?;
    }
    tmp.persist(&path).map_err(|e| Error::io(path, e.error))?;
    Ok(sum)
}

/// Forgets the last build record, before any work starts: an interrupted run then never looks fresh.
pub fn invalidate(dir: &Path) -> Result<()> {
    remove(&dir.join(BUILD))
}

/// Removes a state file, or whatever took its place (a folder, say); a missing one is fine.
fn remove(path: &Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Saves the parse cache. Its entries are pure functions of file contents, valid whatever happens
/// next, so it is saved as soon as parsing is done (and its records can then move on, uncopied).
/// Only the shards holding keys whose first byte is in `dirty` (entries added or dropped this run)
/// are written, plus any that did not load or is not on disk (all of them when the cache's size
/// changes its layout, see [`SMALL_CACHE`]); shards on disk that hold nothing now are removed.
/// `on_disk` and `loaded` are what [`State::load`] found. Returns the checksums of the parse cache's
/// files, the kept shards' taken from `loaded`.
pub fn save_parsed(
    dir: &Path,
    parsed: &mut ParseCache,
    dirty: &std::collections::BTreeSet<u8>,
    on_disk: &Shards,
    loaded: &Checksums,
) -> Result<Checksums> {
    let digits = shard_digits(parsed.entries.len());
    save_shards(dir, parsed, dirty, on_disk, loaded, digits, None)
}

/// [`save_parsed`] for a cache whose `entries` hold only the records of the shards `decoded` names
/// (and the records added this run, which must belong to them), in a layout of `digits` hex digits:
/// every other shard on disk is kept as it is, with the checksum `loaded` has for it.
pub fn save_parsed_partly(
    dir: &Path,
    parsed: &mut ParseCache,
    dirty: &std::collections::BTreeSet<u8>,
    on_disk: &Shards,
    loaded: &Checksums,
    decoded: &Shards,
    digits: usize,
) -> Result<Checksums> {
    save_shards(dir, parsed, dirty, on_disk, loaded, digits, Some(decoded))
}

/// [`save_parsed`], in shards named by `digits` hex digits.
fn save_shards(
    dir: &Path,
    parsed: &mut ParseCache,
    dirty: &std::collections::BTreeSet<u8>,
    on_disk: &Shards,
    loaded: &Checksums,
    digits: usize,
    decoded: Option<&Shards>,
) -> Result<Checksums> {
    use std::collections::BTreeSet;
    let shard_dir = dir.join(PARSED_DIR);
    crate::dirs::create_private(&shard_dir).map_err(|e| Error::io(&shard_dir, e))?;
    let name = |shard: &str| format!("{PARSED_DIR}/{shard}.bin");
    // The shards that hold entries (the keys are in order, so their first bytes come in runs).
    // (Shards not decoded hold what they held.)
    let mut present: BTreeSet<String> = match decoded {
        Some(decoded) => on_disk.difference(decoded).cloned().collect(),
        None => BTreeSet::new(),
    };
    let mut last = None;
    for key in parsed.entries.keys() {
        if last != Some(key.bytes()[0]) {
            present.insert(shard_of(key.bytes()[0], digits));
            last = Some(key.bytes()[0]);
        }
    }
    // Shards to write: those that hold entries and changed, did not load, or are not on disk (their
    // file was removed behind our back, or the layout changed). Shards to remove: those on disk that
    // hold nothing now (emptied, or of the other layout).
    let write: BTreeSet<&str> = present
        .iter()
        .map(String::as_str)
        .filter(|s| {
            !on_disk.contains(*s)
                || !loaded.contains_key(&name(s))
                || shard_range(s).is_some_and(|r| dirty.range(r).next().is_some())
        })
        .collect();
    // The records of the shards about to be rewritten get their details back from the files first.
    let mut rewritten = [false; 256];
    for firsts in write.iter().filter_map(|s| shard_range(s)) {
        firsts.for_each(|first| rewritten[usize::from(first)] = true);
    }
    fill_details(
        dir,
        loaded,
        parsed
            .entries
            .iter_mut()
            .filter(|(key, _)| rewritten[usize::from(key.bytes()[0])])
            .flat_map(|(key, file)| file.rules.iter_mut().map(move |r| (key, &mut r.details))),
    )?;
    let parsed = &*parsed;
    let entries_of = |shard: &str| -> BTreeMap<&Digest, &ParsedFile> {
        let Some(firsts) = shard_range(shard) else {
            return BTreeMap::new();
        };
        let mut start = [0u8; 32];
        start[0] = *firsts.start();
        let start = Digest(crate::hash::Bytes(start));
        parsed
            .entries
            .range(start..)
            .take_while(|(k, _)| firsts.contains(&k.bytes()[0]))
            .collect()
    };
    let write: Vec<&str> = write.into_iter().collect();
    let written: Checksums = write
        .par_iter()
        .map(|shard| {
            let sum = save_file(&shard_dir, &format!("{shard}.bin"), &entries_of(shard))?;
            Ok((name(shard), sum))
        })
        .collect::<Result<_>>()?;
    for shard in on_disk.iter().filter(|s| !present.contains(*s)) {
        remove(&shard_dir.join(format!("{shard}.bin")))?;
    }
    let mut sums: Checksums = present
        .iter()
        .filter_map(|shard| {
            let name = name(shard);
            let sum = written.get(&name).or_else(|| loaded.get(&name))?;
            Some((name, sum.clone()))
        })
        .collect();
    /// [`BlobIndex`], borrowed: the same encoding.
    #[derive(Serialize)]
    struct BlobIndexRef<'a> {
        parser: u32,
        blobs: &'a BTreeMap<BlobId, BlobInfo>,
    }
    let index = BlobIndexRef {
        parser: parsed.parser,
        blobs: &parsed.blobs,
    };
    sums.insert(BLOBS.to_string(), save_file(dir, BLOBS, &index)?);
    Ok(sums)
}

/// Saves the state after a successful build: the ATT&CK cache (unless it is the file loaded) and
/// sources first, the build record last, with the checksums of every state file (`parsed`: those [`save_parsed`] returned).
pub fn save(
    dir: &Path,
    sources: &Sources,
    attack: Option<&AttackCache>,
    build: &mut BuildRecord,
    parsed: Checksums,
) -> Result<()> {
    crate::dirs::create_private(dir).map_err(|e| Error::io(dir, e))?;
    build.state = parsed;
    if let Some(attack) = attack {
        let sum = match &attack.stored {
            Some(sum) => sum.clone(),
            None => save_file(dir, ATTACK, attack)?,
        };
        build.state.insert(ATTACK.to_string(), sum);
    }
    build
        .state
        .insert(SOURCES.to_string(), save_file(dir, SOURCES, sources)?);
    save_file(dir, BUILD, build).map(drop)
}

/// Seeds the UUID ledger in `dir` with `seed`'s entries for every source whose ledger there is empty
/// (a fresh state, or a source new to it): the next build then gives those rules the recorded uuids.
/// A source the state already remembers keeps its own ledger, which followed its history. Returns
/// the number of entries added; when there are any, the build record is dropped so the next build
/// does the work.
pub fn seed_ledger(dir: &Path, seed: &Ledger, no_wait: bool, quiet: bool) -> Result<usize> {
    let _lock = lock(dir, no_wait, quiet)?;
    let mut problems = Vec::new();
    let body = read_checked(&dir.join(SOURCES))
        .unwrap_or_default()
        .map(|(body, _)| body);
    let mut sources: Sources = decode_body(dir, SOURCES, body, &mut problems).unwrap_or_default();
    let mut added = 0;
    for (name, entries) in &seed.sources {
        let known = sources.ledger.sources.entry(name.clone()).or_default();
        if known.is_empty() && !entries.is_empty() {
            added += entries.len();
            known.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    sources.ledger.sources.retain(|_, e| !e.is_empty());
    if added > 0 {
        invalidate(dir)?;
        save_file(dir, SOURCES, &sources)?;
    }
    Ok(added)
}

/// The run's hold on a state folder; released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the state folder's lock, creating the folder. When another run holds it: waits (saying so
/// on stderr unless `quiet`), or fails at once with `no_wait`.
pub fn lock(dir: &Path, no_wait: bool, quiet: bool) -> Result<Lock> {
    crate::dirs::create_private(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) if no_wait => {
            return Err(Error::Locked { path });
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            if !quiet {
                eprintln!(
                    "waiting for another sigma-galaxy run to finish with {}",
                    dir.display()
                );
            }
            file.lock().map_err(|e| Error::io(&path, e))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Sources, ParseCache, BuildRecord) {
        let mut sources = Sources::default();
        sources.sources.insert(
            "s".into(),
            SourceState {
                commit: "abc".into(),
                ..SourceState::default()
            },
        );
        let mut parsed = ParseCache::default();
        parsed.blobs.insert(
            crate::hash::Bytes([7; 20]),
            BlobInfo {
                content: Digest::of(b"h"),
                key: Digest::of(b"k"),
            },
        );
        parsed
            .entries
            .insert(Digest::of(b"k"), ParsedFile::default());
        let build = BuildRecord {
            key: "key".into(),
            values: 3,
            ..BuildRecord::default()
        };
        (sources, parsed, build)
    }

    /// A parse key in shard `first` (its first byte).
    fn key_in(first: u8) -> Digest {
        let mut key = *Digest::of(&[first]).bytes();
        key[0] = first;
        Digest(crate::hash::Bytes(key))
    }

    /// Saves `p` into a state folder that has no parse cache yet: every shard is written.
    fn save_fresh(dir: &Path, p: &ParseCache) -> Checksums {
        save_parsed(
            dir,
            &mut p.clone(),
            &Default::default(),
            &Shards::new(),
            &Checksums::new(),
        )
        .expect("save")
    }

    /// Saves the parse cache of a loaded `state` again, the `dirty` shards rewritten.
    fn resave(dir: &Path, state: &mut State, dirty: &std::collections::BTreeSet<u8>) -> Checksums {
        save_parsed(
            dir,
            &mut state.parsed,
            dirty,
            &state.shards,
            &state.checksums,
        )
        .expect("save")
    }

    #[cfg(unix)]
    #[test]
    fn saving_rewrites_only_dirty_shards_and_removes_emptied_ones() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = ParseCache::default();
        for first in [0xaa, 0xbb, 0xcc] {
            p.entries.insert(key_in(first), ParsedFile::default());
        }
        let sums = save_fresh(dir.path(), &p);
        let shard = |s: &str| dir.path().join(PARSED_DIR).join(format!("{s}.bin"));
        let inode = |s: &str| std::fs::metadata(shard(s)).expect("shard").ino();
        let (aa, cc) = (inode("a"), inode("c"));
        let s = Sources::default();
        save(dir.path(), &s, None, &mut BuildRecord::default(), sums).expect("save");
        let (mut state, problems) = State::load(dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        // bb1 goes, dd1 comes, and a damaged cc shard is rewritten though not dirty.
        state.parsed.entries.remove(&key_in(0xbb));
        state
            .parsed
            .entries
            .insert(key_in(0xdd), ParsedFile::default());
        state.checksums.remove(&format!("{PARSED_DIR}/c.bin"));
        let sums = resave(dir.path(), &mut state, &[0xbb, 0xdd].into());
        assert_eq!(inode("a"), aa, "an untouched shard is not rewritten");
        assert_ne!(inode("c"), cc, "a shard that did not load is");
        assert!(!shard("b").exists(), "an emptied shard is removed");
        assert!(shard("d").exists());
        let names: Vec<&str> = sums.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["blobs.bin", "parsed/a.bin", "parsed/c.bin", "parsed/d.bin"]
        );
        let mut b = BuildRecord::default();
        save(dir.path(), &s, None, &mut b, sums).expect("save");
        assert!(verify(dir.path(), &b.state));
        let (again, problems) = State::load(dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(again.parsed.entries, state.parsed.entries);
    }

    #[test]
    fn a_seeded_ledger_fills_only_sources_it_knows_nothing_of() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _, mut b) = sample();
        s.ledger
            .record("kept", "a.yml", 0, uuid::Uuid::from_u128(1), "h");
        save(dir.path(), &s, None, &mut b, Checksums::new()).expect("save");
        let mut seed = Ledger::default();
        seed.record("kept", "a.yml", 0, uuid::Uuid::from_u128(2), "h");
        seed.record("new", "b.yml", 0, uuid::Uuid::from_u128(3), "h");
        assert_eq!(seed_ledger(dir.path(), &seed, true, true).expect("seed"), 1);
        let (state, problems) = State::load(dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(state.build, None, "the next build does the work");
        let look =
            |name: &str, path: &str| state.sources.ledger.sources[name][&format!("{path}#0")].uuid;
        assert_eq!(look("kept", "a.yml"), uuid::Uuid::from_u128(1));
        assert_eq!(look("new", "b.yml"), uuid::Uuid::from_u128(3));
        assert_eq!(state.sources.sources, s.sources);
    }

    /// Every rule's details in `p`, with the keys of their records (for [`fill_details`]).
    fn bodies(p: &mut ParseCache) -> impl Iterator<Item = (&Digest, &mut Body)> {
        p.entries
            .iter_mut()
            .flat_map(|(key, file)| file.rules.iter_mut().map(move |r| (key, &mut r.details)))
    }

    /// A parse cache of one rule per key, the key's first byte and the rule's title given, each
    /// with a description (so its details are left in the shard on load).
    fn cache_of(rules: &[(u8, &str)]) -> ParseCache {
        let mut p = ParseCache::default();
        for &(first, text) in rules {
            let mut rule = crate::parse::Rule::titled(text);
            rule.details = Body::new(crate::parse::Details {
                description: Some(format!("about {text}")),
                ..Default::default()
            });
            let file = ParsedFile {
                rules: vec![rule],
                problems: Vec::new(),
            };
            p.entries.insert(key_in(first), file);
        }
        p
    }

    #[test]
    fn details_stay_in_the_shard_files_until_filled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = cache_of(&[(0xaa, "a"), (0xbb, "b")]);
        let sums = save_fresh(dir.path(), &p);
        save(
            dir.path(),
            &Sources::default(),
            None,
            &mut BuildRecord::default(),
            sums,
        )
        .expect("save");
        let (mut state, problems) = State::load(dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        let left = |p: &ParseCache| -> Vec<bool> {
            p.entries
                .values()
                .map(|f| f.rules[0].details.in_shard())
                .collect()
        };
        assert_eq!(left(&state.parsed), [true, true], "nothing copied on load");
        assert_eq!(
            state.parsed.entries[&key_in(0xaa)].rules[0]
                .details
                .loaded(),
            None
        );
        // A shard about to be rewritten gets its details back first; the other keeps them on disk.
        let sums = resave(dir.path(), &mut state, &[0xaa].into());
        assert_eq!(left(&state.parsed), [false, true]);
        let mut b = BuildRecord::default();
        save(dir.path(), &Sources::default(), None, &mut b, sums).expect("save");
        let (mut again, problems) = State::load(dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        fill_details(dir.path(), &again.checksums, bodies(&mut again.parsed)).expect("fill");
        assert_eq!(left(&again.parsed), [false, false]);
        assert_eq!(
            again.parsed, p,
            "the rewritten shard and the other read back whole"
        );
        // A shard file that is not the one loaded is not read from.
        let (mut stale, _) = State::load(dir.path());
        let bb = dir.path().join(PARSED_DIR).join("b.bin");
        let other = dir.path().join(PARSED_DIR).join("a.bin");
        std::fs::copy(&other, &bb).expect("replace");
        let err = fill_details(dir.path(), &stale.checksums, bodies(&mut stale.parsed))
            .expect_err("a replaced shard");
        assert!(err.to_string().contains("b.bin"), "{err}");
    }

    /// The names of the shard files in `dir`'s parse cache.
    fn shard_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(PARSED_DIR))
            .expect("parsed")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn shards_are_named_by_one_hex_digit_for_a_small_cache_and_two_for_a_large_one() {
        assert_eq!(shard_digits(SMALL_CACHE), 1);
        assert_eq!(shard_digits(SMALL_CACHE + 1), 2);
        assert_eq!(shard_of(0xab, 1), "a");
        assert_eq!(shard_of(0xab, 2), "ab");
        assert_eq!(shard_range("a"), Some(0xa0..=0xaf));
        assert_eq!(shard_range("ab"), Some(0xab..=0xab));
        for name in ["", "abc", "A", "+a", "g", "a.bin"] {
            assert_eq!(shard_range(name), None, "{name:?}");
        }
    }

    #[test]
    fn a_cache_that_changes_layout_is_rewritten_whole_and_the_old_shards_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = cache_of(&[(0xa1, "a"), (0xa2, "b"), (0xbb, "c")]);
        // As a cache of more than SMALL_CACHE records was saved: two digits.
        let (none, nothing) = (Shards::new(), Checksums::new());
        let sums = save_shards(
            dir.path(),
            &mut p.clone(),
            &[].into(),
            &none,
            &nothing,
            2,
            None,
        )
        .expect("save");
        let mut b = BuildRecord::default();
        save(dir.path(), &Sources::default(), None, &mut b, sums).expect("save");
        assert_eq!(shard_files(dir.path()), ["a1.bin", "a2.bin", "bb.bin"]);
        // Loaded and saved at its own size, with nothing dirty: one digit, every record kept whole.
        let (mut state, problems) = State::load(dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        let sums = resave(dir.path(), &mut state, &[].into());
        assert_eq!(shard_files(dir.path()), ["a.bin", "b.bin"]);
        let mut b = BuildRecord::default();
        save(dir.path(), &Sources::default(), None, &mut b, sums).expect("save");
        assert!(verify(dir.path(), &b.state), "{:?}", b.state);
        let (mut again, problems) = State::load(dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        fill_details(dir.path(), &again.checksums, bodies(&mut again.parsed)).expect("fill");
        assert_eq!(again.parsed, p);
        // Shards of both layouts (a build that changed layout was interrupted): the layout most
        // files have is loaded, the others are reported and go at the next save.
        let (mut both, _) = State::load(dir.path());
        let loaded = both.checksums.clone();
        save_shards(
            dir.path(),
            &mut both.parsed,
            &[].into(),
            &none,
            &loaded,
            2,
            None,
        )
        .expect("save");
        std::fs::remove_file(dir.path().join(PARSED_DIR).join("a1.bin")).expect("remove");
        assert_eq!(
            shard_files(dir.path()),
            ["a.bin", "a2.bin", "b.bin", "bb.bin"]
        );
        let (mut mixed, problems) = State::load(dir.path());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .all(|d| d.file.ends_with("a.bin") || d.file.ends_with("b.bin")),
            "{problems:?}"
        );
        assert_eq!(mixed.parsed.entries.len(), 2, "a2 and bb");
        save_parsed(
            dir.path(),
            &mut mixed.parsed,
            &[].into(),
            &mixed.shards,
            &mixed.checksums,
        )
        .expect("save");
        assert_eq!(shard_files(dir.path()), ["a.bin", "b.bin"]);
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, p, mut b) = sample();
        let sums = save_fresh(dir.path(), &p);
        save(dir.path(), &s, None, &mut b, sums).expect("save");
        let (state, problems) = State::load(dir.path());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(state.build, Some(b));
        assert_eq!(state.sources, s);
        assert_eq!(state.parsed, p);
    }

    #[test]
    fn verify_accepts_only_the_files_the_record_lists_as_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, p, mut b) = sample();
        let sums = save_fresh(dir.path(), &p);
        save(dir.path(), &s, None, &mut b, sums).expect("save");
        assert!(verify(dir.path(), &b.state), "as written: {:?}", b.state);
        assert!(b.state.contains_key(SOURCES) && b.state.contains_key(BLOBS));
        // An intact file that the build did not write (a valid header over another body).
        let other = postcard::to_stdvec(&Sources::default()).expect("encode");
        let forged = [
            format!("{MAGIC} {FORMAT} {}\n", checksum(&other)).into_bytes(),
            other,
        ]
        .concat();
        let original = std::fs::read(dir.path().join(SOURCES)).expect("read");
        std::fs::write(dir.path().join(SOURCES), &forged).expect("write");
        assert!(verify_file(&dir.path().join(SOURCES)).is_ok());
        assert!(!verify(dir.path(), &b.state), "another sources.bin");
        std::fs::write(dir.path().join(SOURCES), &original).expect("write");
        assert!(verify(dir.path(), &b.state));
        // A shard the build did not leave.
        let stray = dir.path().join(PARSED_DIR).join("zz.bin");
        std::fs::write(&stray, b"x").expect("write");
        assert!(!verify(dir.path(), &b.state), "a stray shard");
        std::fs::remove_file(&stray).expect("rm");
        // A missing file.
        std::fs::remove_file(dir.path().join(BLOBS)).expect("rm");
        assert!(!verify(dir.path(), &b.state), "blobs.bin missing");
    }

    #[test]
    fn missing_folder_is_empty_without_complaint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, problems) = State::load(&dir.path().join("nothing"));
        assert!(problems.is_empty());
        assert!(state.build.is_none());
    }

    #[test]
    fn damaged_files_are_distrusted_one_by_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, p, mut b) = sample();
        let sums = save_fresh(dir.path(), &p);
        save(dir.path(), &s, None, &mut b, sums).expect("save");
        // Truncate one, flip a byte in another, give the third another format.
        let path = |n: &str| dir.path().join(n);
        let bytes = std::fs::read(path(BLOBS)).expect("read");
        std::fs::write(path(BLOBS), &bytes[..bytes.len() / 2]).expect("write");
        let mut bytes = std::fs::read(path(SOURCES)).expect("read");
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        std::fs::write(path(SOURCES), &bytes).expect("write");
        let text = std::fs::read_to_string(path(BUILD)).expect("read");
        std::fs::write(
            path(BUILD),
            text.replacen(&format!(" {FORMAT} "), " 99 ", 1),
        )
        .expect("write");
        let (state, problems) = State::load(dir.path());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(state.build.is_none());
        assert_eq!(state.sources, Sources::default());
        assert!(state.parsed.blobs.is_empty());
        assert_eq!(
            state.parsed.entries.len(),
            1,
            "the shards stand on their own"
        );
        assert!(problems.iter().any(|p| p.problem.contains("format 99")));
        assert!(problems.iter().any(|p| p.problem.contains("checksum")));
    }

    #[test]
    fn foreign_files_are_distrusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(BUILD), "{\"key\": \"x\"}\n").expect("write");
        let (state, problems) = State::load(dir.path());
        assert!(state.build.is_none());
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn invalidate_removes_only_the_build_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, p, mut b) = sample();
        let sums = save_fresh(dir.path(), &p);
        save(dir.path(), &s, None, &mut b, sums).expect("save");
        invalidate(dir.path()).expect("invalidate");
        invalidate(dir.path()).expect("twice is fine");
        let (state, problems) = State::load(dir.path());
        assert!(problems.is_empty());
        assert!(state.build.is_none());
        assert_eq!(state.sources, s);
    }

    #[test]
    fn a_held_lock_fails_fast_with_no_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = lock(dir.path(), true, true).expect("first lock");
        assert!(matches!(
            lock(dir.path(), true, true),
            Err(Error::Locked { .. })
        ));
        drop(held);
        lock(dir.path(), true, true).expect("free again");
    }
}
