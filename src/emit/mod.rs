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
//! **Atomicity.** Both files are first written completely to temporary files in their own folders, then
//! renamed over the old ones; an interrupted or killed run leaves the previous galaxy intact (at worst a
//! stray temporary file, which the next run does not read). The cluster is written to its temporary
//! file batch by batch as it is formatted, so its text (145 MB at 100k rules) is never held whole
//! beside the records; a file whose bytes come out the same as the one there is not renamed over it.
//! Files are not fsynced, as git does not by default: the rename protects against interruption, and a
//! power cut mid-build is a job to rerun.

pub mod json;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::atomic::stage;
use crate::config::GalaxyInfo;
use crate::error::{Error, Result};
use crate::hash::checksum;
use crate::merge::Value;
use crate::relate::Relation;
use crate::sources::{LinkRev, SourceLinks};

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

/// A value's link revision and its source's links, when it has a web link.
fn link_of<'l>(v: &Value, links: &'l [Option<SourceLinks>]) -> Option<(LinkRev, &'l SourceLinks)> {
    v.link.zip(links.get(v.source)?.as_ref())
}

/// The file name a value shows of its rule file's path (and so all of the path its key hashes).
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Appends one value, formatted as it stands in a cluster's `values` list (misp-galaxy formatting,
/// nested two levels deep), written straight to text: keys below are in sorted order. False, and
/// nothing written, when the rule's details are still in the parse cache (see [`Body::fill`]).
///
/// [`Body::fill`]: crate::parse::Body::fill
fn write_value(
    out: &mut String,
    v: &Value,
    related: &[Relation],
    links: &[Option<SourceLinks>],
) -> bool {
    fn text(t: Option<&str>) -> Option<&str> {
        t.filter(|t| !t.is_empty())
    }
    let r = &v.rule;
    let Some(details) = r.details.loaded() else {
        return false;
    };
    let d = details.as_ref();
    let link = link_of(v, links).map(|(rev, l)| l.url(rev, &v.path));
    let mut refs: Vec<&str> = Vec::new();
    for reference in d
        .references
        .iter()
        .map(String::as_str)
        .chain(link.as_deref())
    {
        if !reference.is_empty() && !refs.contains(&reference) {
            refs.push(reference);
        }
    }
    let filename = file_name(&v.path);
    let mut w = json::ObjectWriter::new(out, 2);
    if let Some(t) = text(d.description.as_deref()) {
        w.string("description", t);
    }
    w.object("meta", |m| {
        if let Some(t) = text(d.author.as_deref()) {
            m.string("author", t);
        }
        if let Some(t) = text(d.date.as_deref()) {
            m.string("creation_date", t);
        }
        let falsepositives = nonempty(&d.falsepositives);
        if !falsepositives.is_empty() {
            m.strings("falsepositive", falsepositives);
        }
        if let Some(t) = text(Some(filename)) {
            m.string("filename", t);
        }
        let logsource = &r.logsource;
        for (key, value) in [
            ("level", r.level.as_deref()),
            ("logsource.category", logsource.category.as_deref()),
            ("logsource.product", logsource.product.as_deref()),
            ("logsource.service", logsource.service.as_deref()),
            ("modified", d.modified.as_deref()),
        ] {
            if let Some(t) = text(value) {
                m.string(key, t);
            }
        }
        if !refs.is_empty() {
            m.strings("refs", refs.iter().copied());
        }
        if let Some(p) = &v.provenance {
            m.string("source", &p.source);
            if let Some(url) = &p.url {
                m.string("source-url", url);
            }
        }
        if let Some(t) = text(r.status.as_deref()) {
            m.string("status", t);
        }
        let tags = nonempty(&r.tags);
        if !tags.is_empty() {
            m.strings("tags", tags);
        }
    });
    if !related.is_empty() {
        w.objects("related", related, |o, x| {
            o.string("dest-uuid", &x.dest.to_string());
            let tags = x.kind.tags();
            if !tags.is_empty() {
                o.strings("tags", tags.iter().copied());
            }
            o.string("type", x.kind.misp_type());
        });
    }
    w.string("uuid", &v.uuid.to_string());
    w.string("value", &v.title);
    w.finish();
    true
}

fn nonempty(list: &[String]) -> Vec<&str> {
    list.iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The order values are written in: by `value`, then uuid (unique in a galaxy).
///
/// Sorted as (first eight bytes of the title as a big-endian number, index) pairs, which compare in
/// the titles' own order as far as they differ; only titles with the same first eight bytes are
/// compared whole. 100k values sort without chasing 1.7M pairs of title pointers.
fn sorted(values: &[Value]) -> Vec<usize> {
    let mut order: Vec<(u64, usize)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (crate::hash::prefix(v.title.as_bytes()), i))
        .collect();
    order.sort_unstable_by(|&(pa, a), &(pb, b)| {
        pa.cmp(&pb).then_with(|| {
            (values[a].title.as_str(), values[a].uuid)
                .cmp(&(values[b].title.as_str(), values[b].uuid))
        })
    });
    order.into_iter().map(|(_, i)| i).collect()
}

fn cluster_head(info: &GalaxyInfo, values: Vec<Json>) -> Json {
    json!({
        "authors": info.authors,
        "category": info.category,
        "description": info.cluster_description,
        "name": info.name,
        "source": info.source,
        "type": info.kind,
        "uuid": info.uuid.to_string(),
        "values": values,
    })
}

/// An output file's content without `version`, formatted, with each value's hash (clusters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// misp-galaxy formatting of the content without `version`, in pieces to write one after the
    /// other (a cluster's values stay in the runs they were formatted in: never copied into one text).
    pub parts: Vec<String>,
    /// Value uuid → hash of the value's formatted text.
    pub values: BTreeMap<Uuid, TextHash>,
    /// The content's identity: BLAKE3 over the formatted head (the content with no values) and the
    /// values' hashes in file order, so that it costs no second pass over the text.
    pub hash: String,
    /// Value key → where the value's text is in the file (clusters formatted with value keys).
    pub spans: BTreeMap<ValueKey, Span>,
    /// The values formatted afresh or copied, in file order, with their keys and spans (clusters
    /// formatted with value keys).
    pub placed: Vec<Placed>,
}

/// A value's place in a cluster file: its index in the values formatted, its key and span.
pub type Placed = (usize, ValueKey, Span);

/// BLAKE3 of a value's formatted text (without its own `version`), kept as bytes: a build handles
/// one per value, and hex text would cost an allocation each.
pub type TextHash = crate::hash::Bytes<32>;

/// Where a value's text is in a cluster file, and its [`TextHash`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub at: usize,
    pub len: usize,
    pub hash: TextHash,
}

/// The [`TextHash`] of formatted text.
fn text_hash(text: &[u8]) -> TextHash {
    crate::hash::Bytes(*blake3::hash(text).as_bytes())
}

/// The content hash of a head text and the hashes of its values, in order.
fn content_hash<'a>(head: &str, values: impl Iterator<Item = &'a TextHash>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(head.as_bytes());
    for v in values {
        h.update(&v.0);
    }
    h.finalize().to_hex().to_string()
}

/// The hash of a parsed value's formatted text, without its own `version` (which follows from the
/// content, see [`with_value_versions`]).
fn value_hash(v: &Json) -> TextHash {
    match v.as_object() {
        Some(o) if o.contains_key("version") => {
            let mut o = o.clone();
            o.remove("version");
            text_hash(json::fragment(&Json::Object(o), 2).as_bytes())
        }
        _ => text_hash(json::fragment(v, 2).as_bytes()),
    }
}

/// A value's uuid as the JSON of a cluster has it, when it is one.
fn uuid_of(v: &Json) -> Option<Uuid> {
    v.get("uuid")?.as_str()?.parse().ok()
}

impl Content {
    /// The content of a parsed file (without `version`).
    pub fn of(json: &Json) -> Content {
        // (A value without a valid uuid counts in the content, not in the per-value hashes.)
        let ordered: Vec<(Option<Uuid>, TextHash)> = json
            .get("values")
            .and_then(Json::as_array)
            .map(|values| {
                values
                    .par_iter()
                    .map(|v| (uuid_of(v), value_hash(v)))
                    .collect()
            })
            .unwrap_or_default();
        let mut head = json.clone();
        if let Some(values) = head.get_mut("values") {
            *values = json!([]);
        }
        Content {
            parts: vec![json::to_misp_json(json)],
            hash: content_hash(&json::to_misp_json(&head), ordered.iter().map(|p| &p.1)),
            values: ordered
                .into_iter()
                .filter_map(|(uuid, hash)| Some((uuid?, hash)))
                .collect(),
            spans: BTreeMap::new(),
            placed: Vec::new(),
        }
    }
}

/// The key under which a value's formatted text is reused: a hash of everything `write_value`
/// reads. The rule record stands in by its identity, the parse key of its file's content
/// ([`Value::record`], which covers the parser format) and its document index; merge changes nothing
/// of a record but the uuid, title and provenance it gives, which are hashed here with the link, the
/// relations and the file's name (all a value shows of its path: the uuid stands for the rest). The
/// link is hashed as what it is made of ([`SourceLinks::key_into`]), so it is never made for a value
/// whose text is copied. The tool version is hashed too, since another version may format
/// differently. `links` are the sources' links, by source index.
pub fn value_key(v: &Value, related: &[Relation], links: &[Option<SourceLinks>]) -> ValueKey {
    // Gathered into one buffer and hashed in one call: a hasher fed a dozen small pieces costs
    // several times more.
    let mut buf = Vec::with_capacity(512);
    // Fixed-size fields as bytes, first: no text made for them.
    buf.extend_from_slice(&v.rule.index.to_le_bytes());
    buf.extend_from_slice(v.uuid.as_bytes());
    buf.extend_from_slice(v.record.bytes());
    let (source, url) = match &v.provenance {
        Some(p) => (p.source.as_str(), p.url.as_deref().unwrap_or("\u{1}")),
        None => ("\u{1}", "\u{1}"),
    };
    for part in [
        env!("CARGO_PKG_VERSION"),
        file_name(&v.path),
        &v.title,
        source,
        url,
    ] {
        buf.extend_from_slice(part.as_bytes());
        buf.push(0);
    }
    // Self-delimiting after its tag byte, as the relations after it are.
    match link_of(v, links) {
        Some((rev, l)) => {
            buf.push(b'l');
            l.key_into(rev, &v.path, &mut buf);
        }
        None => buf.push(b'n'),
    }
    // A relation is its target and its kind (which gives its type and tags in this version): 17
    // bytes, not the ~90 of its formatted type and tag.
    for r in related {
        buf.extend_from_slice(r.dest.as_bytes());
        buf.push(r.kind as u8);
    }
    crate::hash::Bytes(*blake3::hash(&buf).as_bytes())
}

/// See [`value_key`].
pub type ValueKey = crate::hash::Bytes<32>;

/// The previous cluster file, for reusing the text of values whose [`value_key`] is unchanged: the
/// open file (read a batch's spans at a time, never whole) and its fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    /// The file, exactly as `fingerprint` describes it.
    pub file: &'a std::fs::File,
    pub fingerprint: &'a Fingerprint,
}

/// An output file as the last build left it, checksummed once: its fingerprint (the state's record
/// when the file still has the recorded checksum, else computed from the parsed file) and, when the
/// record describes it and has value spans, the open file, for [`cluster_content`] to copy unchanged
/// values from. The file is read through the handle that was checksummed, so a file renamed over it
/// meanwhile (as every writer of ours does) is not mixed in.
#[derive(Debug)]
pub struct Prior<'a> {
    pub fingerprint: Cow<'a, Fingerprint>,
    pub file: Option<std::fs::File>,
}

impl Prior<'_> {
    /// The file and fingerprint [`cluster_content`] splices from, when it can.
    pub fn previous(&self) -> Option<Previous<'_>> {
        Some(Previous {
            file: self.file.as_ref()?,
            fingerprint: &self.fingerprint,
        })
    }
}

/// The fingerprint of a [`Prior`], when there is one.
pub fn fingerprint<'p>(prior: &'p Option<Prior<'_>>) -> Option<&'p Fingerprint> {
    prior.as_ref().map(|p| p.fingerprint.as_ref())
}

/// The output file at `path` as a [`Prior`] (`known`: the fingerprint the state recorded for it);
/// `None` when there is no usable file. A file the record describes is hashed in pieces, not held.
pub fn prior<'a>(path: &Path, known: Option<&'a Fingerprint>) -> Option<Prior<'a>> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path).ok()?;
    let sum = crate::hash::reader_checksum(&file).ok()?;
    if let Some(k) = known.filter(|k| k.checksum == sum) {
        return Some(Prior {
            fingerprint: Cow::Borrowed(k),
            file: Some(file),
        });
    }
    let mut bytes = Vec::new();
    file.rewind().ok()?;
    file.read_to_end(&mut bytes).ok()?;
    // Read again to parse it (a file not described is rare: the first build over another's galaxy);
    // the bytes must be the ones checksummed.
    if checksum(&bytes) != sum {
        return None;
    }
    let mut json: Json = serde_json::from_slice(&bytes).ok()?;
    let version = json.as_object_mut()?.remove("version")?.as_i64()?;
    Some(Prior {
        fingerprint: Cow::Owned(Fingerprint::of(&json, version, sum)),
        file: None,
    })
}

/// Where `previous` has the text of each value, by value index, from the values' [`value_key`]s
/// (empty without a previous file): looked up once, in parallel, for [`cluster_content`] and for
/// the build, which fills the details of the values that will be formatted afresh.
pub fn old_spans(previous: Option<Previous<'_>>, keys: &[ValueKey]) -> Vec<Option<Span>> {
    match previous {
        Some(p) => keys
            .par_iter()
            .map(|k| p.fingerprint.spans.get(k).copied())
            .collect(),
        None => Vec::new(),
    }
}

/// The previous file's texts for one batch of values: the spans the batch can reuse, read in a few
/// sequential pieces (spans closer than [`Reused::GAP`] are read together) into one buffer, which
/// the next batch reads into again: the 145 MB of a 100k-rule cluster go through one batch's worth
/// of memory, not 145 MB of fresh pages (each zeroed by the kernel before it is read into).
///
/// The pieces stay bytes: they are not checked as UTF-8 again (a sixth of a 10-rule build's
/// instructions at 100k rules). They are only read from a file whose checksum is the one this tool
/// recorded when it wrote that file (see [`prior`]), at the spans recorded with it, each the whole
/// text of one value.
#[derive(Debug, Default)]
struct Reused {
    buf: Vec<u8>,
    /// How many pieces `buf` was read in.
    pieces: usize,
    /// Value index → offset and length of its old text in `buf`, and the text's hash.
    texts: foldhash::HashMap<usize, (usize, usize, TextHash)>,
}

impl Reused {
    /// Bytes between two spans below which both are read in one piece.
    const GAP: usize = 64 * 1024;
    /// The old text one batch reads at most (about): the buffer stays this size, in cache, instead of
    /// growing to a batch of 8,192 values' texts (12 MB at 100k rules, the whole file of a small
    /// galaxy) in fresh pages.
    const CAP: usize = 1024 * 1024;

    /// Reads the texts `batch` can reuse, in place of the last batch's.
    fn read(&mut self, previous: Option<Previous<'_>>, batch: &[usize], old: &[Option<Span>]) {
        use std::io::{Read as _, Seek as _, SeekFrom};
        self.buf.clear();
        self.texts.clear();
        self.pieces = 0;
        let Some(p) = previous else {
            return;
        };
        let mut wanted: Vec<(usize, usize, usize, TextHash)> = batch
            .iter()
            .filter_map(|&i| {
                let span = old.get(i).copied().flatten()?;
                Some((span.at, span.len, i, span.hash))
            })
            .collect();
        wanted.sort_unstable_by_key(|w| (w.0, w.2));
        // The pieces: runs of wanted spans with gaps below GAP, as (start, end, wanted range).
        let mut pieces = Vec::new();
        let mut k = 0;
        while k < wanted.len() {
            let start = wanted[k].0;
            let mut end = start + wanted[k].1;
            let mut m = k + 1;
            while m < wanted.len() && wanted[m].0 <= end + Self::GAP {
                end = end.max(wanted[m].0 + wanted[m].1);
                m += 1;
            }
            pieces.push((start, end, k..m));
            k = m;
        }
        // Room for all of them at once: grown piece by piece, the buffer would be copied each time
        // it doubled.
        self.buf
            .reserve_exact(pieces.iter().map(|(start, end, _)| end - start).sum());
        let mut file = p.file;
        for (start, end, range) in pieces {
            // Read into spare capacity: no zeroing of bytes about to be overwritten.
            let base = self.buf.len();
            let read = file
                .seek(SeekFrom::Start(start as u64))
                .and_then(|_| {
                    (&mut file)
                        .take((end - start) as u64)
                        .read_to_end(&mut self.buf)
                })
                .and_then(|n| match n == end - start {
                    true => Ok(()),
                    false => Err(std::io::ErrorKind::UnexpectedEof.into()),
                });
            match read {
                Ok(()) => {
                    self.pieces += 1;
                    for &(at, len, i, hash) in &wanted[range] {
                        self.texts.insert(i, (base + at - start, len, hash));
                    }
                }
                // A piece that cannot be read is formatted afresh instead.
                Err(_) => self.buf.truncate(base),
            }
        }
    }

    /// Where value `i`'s old text is in `buf`, and its hash, when it is reused.
    fn get(&self, i: usize) -> Option<(std::ops::Range<usize>, TextHash)> {
        let &(at, len, hash) = self.texts.get(&i)?;
        Some((at..at + len, hash))
    }
}

/// `order` in batches of at most `count` values, each ending once the old texts its values reuse
/// (`old`, see [`old_spans`]) pass `bytes`: a build formatting afresh gets full batches to share
/// between threads, one copying old texts gets batches whose texts fit [`Reused::CAP`].
fn batches<'o>(
    order: &'o [usize],
    old: &[Option<Span>],
    count: usize,
    bytes: usize,
) -> impl Iterator<Item = &'o [usize]> {
    let mut rest = order;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut held = 0;
        let mut end = 0;
        while end < rest.len().min(count) && held < bytes {
            held += old.get(rest[end]).copied().flatten().map_or(0, |s| s.len);
            end += 1;
        }
        let (batch, after) = rest.split_at(end);
        rest = after;
        Some(batch)
    })
}

/// A cluster file written while it is formatted, so that its text is never held whole: a temporary
/// file beside the cluster, renamed over it by [`write()`] once complete (none for a dry run, which only
/// hashes), and the checksum of what was written so far.
#[derive(Debug)]
pub struct Stage {
    file: Option<tempfile::NamedTempFile>,
    hasher: crate::hash::Checksum,
}

impl Stage {
    /// A stage for the file at `path` (nothing is written with `dry_run`).
    pub fn new(path: &Path, dry_run: bool) -> Result<Stage> {
        let file = match dry_run {
            true => None,
            false => Some(crate::atomic::staging(path)?),
        };
        Ok(Stage {
            file,
            hasher: crate::hash::Checksum::new(),
        })
    }

    fn push(&mut self, text: &[u8]) -> Result<()> {
        use std::io::Write as _;
        self.hasher.update(text);
        match &mut self.file {
            Some(f) => f.write_all(text).map_err(|e| Error::io(f.path(), e)),
            None => Ok(()),
        }
    }
}

/// Where [`cluster_content`] puts the text: kept in memory, or written to a [`Stage`].
enum Sink<'a> {
    Parts(Vec<String>),
    Stage(&'a mut Stage),
}

impl Sink<'_> {
    fn push(&mut self, text: &[u8]) -> Result<()> {
        match self {
            // Kept as text only for value versions, which rewrite it whole.
            Sink::Parts(parts) => {
                parts.push(String::from_utf8_lossy(text).into_owned());
                Ok(())
            }
            Sink::Stage(stage) => stage.push(text),
        }
    }
}

/// One run of values for [`cluster_content`], as formatted: its text as pieces to write in order,
/// its length, per value its text hash and span in the run, and the first value it could not format.
struct Run {
    pieces: Vec<Piece>,
    /// The text formatted afresh (values and separators), which [`Piece::Fresh`] ranges are of.
    fresh: Vec<u8>,
    len: usize,
    hashes: Vec<(TextHash, (usize, usize))>,
    unloaded: Option<usize>,
}

/// A piece of a [`Run`]'s text: a range of its fresh text, or of the previous file's texts read for
/// its batch ([`Reused`]), so that reused values are written from where they were read, not copied
/// into the run first (values next to each other in the old file as well go out as one piece).
enum Piece {
    Fresh(std::ops::Range<usize>),
    Old(std::ops::Range<usize>),
}

impl Run {
    fn fresh(&mut self, text: &[u8]) {
        let start = self.fresh.len();
        self.fresh.extend_from_slice(text);
        self.len += text.len();
        match self.pieces.last_mut() {
            Some(Piece::Fresh(last)) if last.end == start => last.end = self.fresh.len(),
            _ => self.pieces.push(Piece::Fresh(start..self.fresh.len())),
        }
    }
}

/// The cluster without its version, formatted: values are formatted in parallel and spliced into the
/// formatted head, which gives the same text as formatting the whole cluster as one JSON tree.
/// `links` are the sources' web links, by source index (values link through them). `keys`
/// are the values' [`value_key`]s (by value index; empty: none, nothing reused or recorded); a value
/// whose key the `previous` file has (`old`, from [`old_spans`]) is copied from it, not formatted
/// again.
///
/// With a `stage`, the text goes to it batch by batch as it is formatted, up to (not including) the
/// cluster's closing `}` line, where [`write()`] appends `version`; the returned content's `parts` are
/// then empty. Without one, the text is returned in `parts`.
#[allow(clippy::too_many_arguments)]
pub fn cluster_content(
    info: &GalaxyInfo,
    values: &[Value],
    related: &[Vec<Relation>],
    links: &[Option<SourceLinks>],
    keys: &[ValueKey],
    previous: Option<Previous<'_>>,
    old: &[Option<Span>],
    stage: Option<&mut Stage>,
) -> Result<Content> {
    /// Values are written in runs of this many, one string per run, so that a few large buffers
    /// are allocated instead of one per value.
    const RUN: usize = 128;
    /// Runs formatted (in parallel) before they are written: the text held at once.
    const BATCH: usize = 64 * RUN;
    const SEPARATOR: &str = VALUE_SEPARATOR;
    let order = sorted(values);
    let streamed = stage.is_some();
    let mut sink = match stage {
        Some(stage) => Sink::Stage(stage),
        None => Sink::Parts(Vec::new()),
    };
    let head = json::to_misp_json(&cluster_head(info, Vec::new()));
    let format_run = |reused: &Reused, run: &[usize]| -> Run {
        let mut out = Run {
            pieces: Vec::new(),
            fresh: Vec::new(),
            len: 0,
            hashes: Vec::with_capacity(run.len()),
            unloaded: None,
        };
        let mut scratch = String::new();
        for (n, &i) in run.iter().enumerate() {
            match reused.get(i) {
                Some((range, hash)) => {
                    let len = range.len();
                    // Next to the previous value in the old file as well: the separator between them
                    // there is copied with the text.
                    let joined = match out.pieces.last_mut() {
                        Some(Piece::Old(last))
                            if n > 0
                                && reused.buf.get(last.end..range.start)
                                    == Some(SEPARATOR.as_bytes()) =>
                        {
                            last.end = range.end;
                            true
                        }
                        _ => false,
                    };
                    if !joined {
                        if n > 0 {
                            out.fresh(SEPARATOR.as_bytes());
                        }
                        out.pieces.push(Piece::Old(range));
                    } else {
                        out.len += SEPARATOR.len();
                    }
                    out.hashes.push((hash, (out.len, len)));
                    out.len += len;
                }
                None => {
                    if n > 0 {
                        out.fresh(SEPARATOR.as_bytes());
                    }
                    scratch.clear();
                    let related = related.get(i).map_or(&[][..], Vec::as_slice);
                    if !write_value(&mut scratch, &values[i], related, links) {
                        out.unloaded.get_or_insert(i);
                    }
                    out.hashes
                        .push((text_hash(scratch.as_bytes()), (out.len, scratch.len())));
                    out.fresh(scratch.as_bytes());
                }
            }
        }
        out
    };
    // Where each value's text lands in the file, by its key, for the next build to reuse; and each
    // value's uuid and text hash, in file order.
    let mut placed: Vec<Placed> = Vec::with_capacity(keys.len());
    let mut hashes: Vec<(Uuid, TextHash)> = Vec::with_capacity(values.len());
    match head.strip_suffix("[]\n}\n") {
        Some(start) if !values.is_empty() => {
            let opening = format!("{start}[\n    ");
            let mut at = opening.len();
            sink.push(opening.as_bytes())?;
            let mut n = 0;
            let mut reused = Reused::default();
            for batch in batches(&order, old, BATCH, Reused::CAP) {
                reused.read(previous, batch, old);
                let runs: Vec<Run> = batch
                    .par_chunks(RUN)
                    .map(|run| format_run(&reused, run))
                    .collect();
                for run in runs {
                    if let Some(i) = run.unloaded {
                        // The build fills the details of every value it does not expect to copy; one
                        // more means the previous file could not be read where it was expected.
                        return Err(Error::Input {
                            path: PathBuf::from(&values[i].path),
                            message:
                                "its details were not read back from the parse cache, and its \
                                      previous text could not be copied: run the build again, or \
                                      with --full"
                                    .into(),
                        });
                    }
                    if n > 0 {
                        sink.push(SEPARATOR.as_bytes())?;
                        at += SEPARATOR.len();
                    }
                    for (&(hash, (start, len)), &i) in run.hashes.iter().zip(&order[n..]) {
                        if !keys.is_empty() {
                            let at = at + start;
                            placed.push((i, keys[i], Span { at, len, hash }));
                        }
                        hashes.push((values[i].uuid, hash));
                        n += 1;
                    }
                    at += run.len;
                    for piece in &run.pieces {
                        sink.push(match piece {
                            Piece::Fresh(r) => &run.fresh[r.clone()],
                            Piece::Old(r) => &reused.buf[r.clone()],
                        })?;
                    }
                }
            }
            sink.push(match streamed {
                true => b"\n  ]",
                false => b"\n  ]\n}\n",
            })?;
        }
        _ if streamed => sink.push(cluster_body(&head).as_bytes())?,
        _ => sink.push(head.as_bytes())?,
    }
    let parts = match sink {
        Sink::Parts(parts) => parts,
        Sink::Stage(_) => Vec::new(),
    };
    Ok(finish_content(&head, parts, hashes, placed))
}

/// The [`Content`] of a cluster whose values have, in file order, these uuids and text hashes, and
/// these places.
fn finish_content(
    head: &str,
    parts: Vec<String>,
    mut hashes: Vec<(Uuid, TextHash)>,
    placed: Vec<Placed>,
) -> Content {
    let hash = content_hash(head, hashes.iter().map(|(_, h)| h));
    // Sorted first, cheaply (by numbers, stably), so that the maps are built in one pass over input
    // in order: sorting 100k spans of 88 bytes inside `collect` took a tenth of a 10-rule build.
    hashes.sort_by_key(|(uuid, _)| uuid.as_u128());
    let mut spans: Vec<(ValueKey, Span)> = placed.iter().map(|&(_, k, s)| (k, s)).collect();
    crate::hash::sort_by_id(&mut spans, |(key, _)| key);
    Content {
        parts,
        values: hashes.into_iter().collect(),
        hash,
        spans: spans.into_iter().collect(),
        placed,
    }
}

/// A value of a spliced cluster ([`splice_content`]), in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A value whose text is copied from the previous file: where it is there, its key and uuid.
    Old {
        at: usize,
        len: usize,
        hash: TextHash,
        key: ValueKey,
        uuid: Uuid,
    },
    /// Value `i` of the values given, formatted afresh.
    New(usize),
}

/// Between two values' texts in a cluster file.
const VALUE_SEPARATOR: &str = ",\n    ";

/// Where the first value's text starts in the cluster file of `info`; each next one starts after
/// the text before it and [`separator_len`] bytes.
pub fn values_start(info: &GalaxyInfo) -> usize {
    let head = json::to_misp_json(&cluster_head(info, Vec::new()));
    head.strip_suffix("[]\n}\n").map_or(0, |s| s.len()) + "[\n    ".len()
}

/// The length of the text between two values in a cluster file.
pub fn separator_len() -> usize {
    VALUE_SEPARATOR.len()
}

/// The cluster of `places` without its version, written to `stage` as [`cluster_content`] writes
/// it: values copied from `previous` (as sequential reads of the runs of them that stay together)
/// or formatted afresh from `values`, with `related`, `links` and `keys` by index in `values`. The
/// content's `placed` are by index in `places`.
#[allow(clippy::too_many_arguments)]
pub fn splice_content(
    info: &GalaxyInfo,
    places: &[Place],
    values: &[Value],
    related: &[Vec<Relation>],
    links: &[Option<SourceLinks>],
    keys: &[ValueKey],
    previous: Previous<'_>,
    stage: &mut Stage,
) -> Result<Content> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let head = json::to_misp_json(&cluster_head(info, Vec::new()));
    let Some(start) = head.strip_suffix("[]\n}\n").filter(|_| !places.is_empty()) else {
        stage.push(cluster_body(&head).as_bytes())?;
        return Ok(finish_content(&head, Vec::new(), Vec::new(), Vec::new()));
    };
    let mut file = previous.file;
    let mut buf = vec![0u8; 1 << 20];
    let unreadable = |e: std::io::Error| Error::Input {
        path: PathBuf::from(&values.first().map_or("", |v| v.path.as_str())),
        message: format!(
            "the previous cluster file could not be read back ({e}): run the build again, or with --full"
        ),
    };
    // Copies a range of the previous file to the stage.
    let mut copy = |stage: &mut Stage, range: std::ops::Range<usize>| -> Result<()> {
        file.seek(SeekFrom::Start(range.start as u64))
            .map_err(unreadable)?;
        let mut left = range.len();
        while left > 0 {
            let n = left.min(buf.len());
            file.read_exact(&mut buf[..n]).map_err(unreadable)?;
            stage.push(&buf[..n])?;
            left -= n;
        }
        Ok(())
    };
    let opening = format!("{start}[\n    ");
    stage.push(opening.as_bytes())?;
    let mut at = opening.len();
    let mut hashes = Vec::with_capacity(places.len());
    let mut placed = Vec::with_capacity(places.len());
    // The run of old texts not copied yet (a range of the previous file).
    let mut pending: Option<std::ops::Range<usize>> = None;
    let mut scratch = String::new();
    for (n, place) in places.iter().enumerate() {
        let sep = if n > 0 { VALUE_SEPARATOR.len() } else { 0 };
        match *place {
            Place::Old {
                at: old_at,
                len,
                hash,
                key,
                uuid,
            } => {
                match &mut pending {
                    // Next to the last one in the old file too: the separator there goes with it.
                    Some(run) if n > 0 && run.end + sep == old_at => run.end = old_at + len,
                    _ => {
                        if let Some(run) = pending.take() {
                            copy(stage, run)?;
                        }
                        if n > 0 {
                            stage.push(VALUE_SEPARATOR.as_bytes())?;
                        }
                        pending = Some(old_at..old_at + len);
                    }
                }
                at += sep;
                hashes.push((uuid, hash));
                placed.push((n, key, Span { at, len, hash }));
                at += len;
            }
            Place::New(i) => {
                if let Some(run) = pending.take() {
                    copy(stage, run)?;
                }
                if n > 0 {
                    stage.push(VALUE_SEPARATOR.as_bytes())?;
                }
                scratch.clear();
                let v = &values[i];
                let rel = related.get(i).map_or(&[][..], Vec::as_slice);
                if !write_value(&mut scratch, v, rel, links) {
                    return Err(Error::Input {
                        path: PathBuf::from(&v.path),
                        message: "its details were not read back from the parse cache: run the \
                                  build again, or with --full"
                            .into(),
                    });
                }
                let hash = text_hash(scratch.as_bytes());
                stage.push(scratch.as_bytes())?;
                at += sep;
                hashes.push((v.uuid, hash));
                placed.push((
                    n,
                    keys[i],
                    Span {
                        at,
                        len: scratch.len(),
                        hash,
                    },
                ));
                at += scratch.len();
            }
        }
    }
    if let Some(run) = pending.take() {
        copy(stage, run)?;
    }
    stage.push(b"\n  ]")?;
    Ok(finish_content(&head, Vec::new(), hashes, placed))
}

/// A formatted file's text without its closing `}` line (and the blanks before it): where
/// `version`, which sorts after every other key, is appended.
fn cluster_body(text: &str) -> &str {
    text.trim_end().strip_suffix('}').unwrap_or(text).trim_end()
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
    /// What the state should remember of the two files.
    pub fingerprints: [Fingerprint; 2],
}

/// What the state remembers of an output file it wrote, so that the next run need not parse it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// [`checksum`] of the file's bytes.
    pub checksum: String,
    /// [`Content::hash`] of its content without `version`.
    pub content: String,
    pub version: i64,
    /// Value uuid → hash of the value's text (cluster only), for the added/changed/removed counts.
    #[serde(deserialize_with = "crate::sorted::map")]
    pub values: BTreeMap<Uuid, TextHash>,
    /// Value key → where its text is in the file (cluster only), so that the next build copies the
    /// text of an unchanged value instead of formatting it again. Not saved with the fingerprint:
    /// the state's value table has them (see `state::table::Table::spans`).
    #[serde(skip)]
    pub spans: BTreeMap<ValueKey, Span>,
}

impl Fingerprint {
    /// The fingerprint of a parsed output file (content without `version`).
    fn of(content: &Json, version: i64, checksum: String) -> Fingerprint {
        let content = Content::of(content);
        Fingerprint {
            checksum,
            content: content.hash,
            version,
            values: content.values,
            spans: BTreeMap::new(),
        }
    }
}

/// A file to write: its path, its bytes, its version, whether it differs from what is there.
struct Planned {
    path: PathBuf,
    /// The content's text in pieces; the file is every piece but the last, the last one's first
    /// `body` bytes, then `tail` (which adds `version`). Empty when the text is staged.
    text: Vec<String>,
    body: usize,
    /// The staged text (every byte but `tail`), when the content was written while formatted.
    stage: Option<Stage>,
    tail: String,
    version: i64,
    rewrite: bool,
    fingerprint: Fingerprint,
}

/// Computes both files' versions against the files there now and writes whatever changed,
/// atomically; with `dry_run`, writes nothing and reports what it would do.
///
/// `prior` are the fingerprints of the cluster and galaxy files in `out` now ([`prior`]);
/// `cluster_stage` holds the cluster's text when [`cluster_content`] wrote it to one.
#[allow(clippy::too_many_arguments)]
pub fn write(
    out: &Path,
    kind: &str,
    cluster: Content,
    cluster_stage: Option<Stage>,
    galaxy: Content,
    base: i64,
    prior: [Option<&Fingerprint>; 2],
    dry_run: bool,
) -> Result<Written> {
    let cluster_file = cluster_path(out, kind);
    let galaxy_file = galaxy_path(out, kind);
    let [prior_cluster, prior_galaxy] = prior;
    let c = plan(
        cluster_file.clone(),
        cluster,
        cluster_stage,
        prior_cluster,
        base,
    );
    let g = plan(galaxy_file.clone(), galaxy, None, prior_galaxy, base);
    let (added, changed, removed) =
        count_changes(prior_cluster.map(|p| &p.values), &c.fingerprint.values);
    let wrote = c.rewrite || g.rewrite;
    let version = c.version;
    let mut staged = Vec::new();
    let mut fingerprints = Vec::with_capacity(2);
    for mut p in [c, g] {
        if p.rewrite && !dry_run {
            let tmp = match p.stage.take().and_then(|s| s.file) {
                Some(mut tmp) => {
                    use std::io::Write as _;
                    tmp.write_all(p.tail.as_bytes())
                        .map_err(|e| Error::io(tmp.path(), e))?;
                    tmp
                }
                None => stage(&p.path, &p.parts())?,
            };
            staged.push((tmp, p.path));
        }
        // A stage not needed (same bytes as the file there) is dropped, its temporary file with it.
        fingerprints.push(p.fingerprint);
    }
    for (tmp, path) in staged {
        tmp.persist(&path)
            .map_err(|e| Error::io(path.as_path(), e.error))?;
    }
    let [cluster_print, galaxy_print]: [Fingerprint; 2] = fingerprints
        .try_into()
        .unwrap_or_else(|_| unreachable!("two files planned"));
    Ok(Written {
        cluster: cluster_file,
        galaxy: galaxy_file,
        version,
        wrote,
        added,
        changed,
        removed,
        fingerprints: [cluster_print, galaxy_print],
    })
}

/// The number of values of the cluster file at `path`, when it is one.
pub fn count_values(path: &Path) -> Option<usize> {
    let json: Json = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json.get("values")?.as_array().map(Vec::len)
}

/// A file's version, from its previous fingerprint, its new content hash and the content clock.
fn next_version(prev: Option<&Fingerprint>, content_hash: &str, base: i64) -> i64 {
    let base = base.clamp(1, MAX_VERSION);
    match prev {
        Some(p) if p.content == content_hash => base.max(p.version),
        Some(p) => base.max(p.version + 1).min(MAX_VERSION),
        None => base,
    }
}

/// Value uuid → (content hash, version) of the values of the cluster file at `path`: a value's own
/// `version`, else the file's (what MISP stored for it). Empty when there is no usable file.
fn previous_value_versions(path: &Path) -> BTreeMap<Uuid, (TextHash, i64)> {
    let Some(json) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
    else {
        return BTreeMap::new();
    };
    let file_version = json.get("version").and_then(Json::as_i64).unwrap_or(0);
    json.get("values")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let uuid = uuid_of(v)?;
            let version = v
                .get("version")
                .and_then(Json::as_i64)
                .unwrap_or(file_version);
            Some((uuid, (value_hash(v), version)))
        })
        .collect()
}

/// The cluster with a `version` in each value (see `with_value_versions`), against the cluster file
/// in `out` now (`prior`: its fingerprint, [`prior`]) and the content clock `base`, as [`write()`] will
/// version the cluster itself.
pub fn value_versions(
    out: &Path,
    kind: &str,
    mut cluster: Content,
    base: i64,
    prior: Option<&Fingerprint>,
) -> Content {
    let cluster_file = cluster_path(out, kind);
    let version = next_version(prior, &cluster.hash, base);
    let old = previous_value_versions(&cluster_file);
    let new = &cluster.values;
    let text = cluster.parts.concat();
    // Versions move every value's text: none is where the spans say.
    cluster.spans.clear();
    cluster.parts = vec![with_value_versions(&text, |uuid| {
        let uuid = uuid.parse::<Uuid>().ok();
        match (
            uuid.and_then(|u| old.get(&u)),
            uuid.and_then(|u| new.get(&u)),
        ) {
            (Some((hash, v)), Some(h)) if hash == h => *v,
            _ => version,
        }
    })];
    cluster
}

/// **Value versions** (opt-in): MISP's importer compares each value's own `version`, when it has
/// one, with the stored one, and re-imports only the values whose version rose; with the cluster's
/// version alone it re-imports every value. A value keeps the version it had in the previous file
/// while its content (everything but `version`) is the same, and otherwise takes the new cluster
/// version, which comes from the same content clock and is greater than any previous one. A value
/// of a previous file without value versions counts as having that file's version, so turning the
/// option on re-imports nothing. Inserted as each value's last key (`version` sorts after `value`),
/// in misp-galaxy formatting: a value's object closes with a line of exactly four spaces and `}`.
fn with_value_versions(text: &str, version_of: impl Fn(&str) -> i64) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 64);
    let mut uuid: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("      \"uuid\": \"") {
            uuid = rest.split('"').next();
        }
        let closes_value = line
            .strip_prefix("    }")
            .is_some_and(|rest| rest == "\n" || rest == ",\n");
        if closes_value && let Some(u) = uuid.take() {
            if out.ends_with('\n') {
                out.pop();
            }
            out.push_str(",\n      \"version\": ");
            out.push_str(&version_of(u).to_string());
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

fn plan(
    path: PathBuf,
    content: Content,
    stage: Option<Stage>,
    prev: Option<&Fingerprint>,
    base: i64,
) -> Planned {
    // `version` sorts after every other key of a cluster or galaxy, so it is appended to the text of
    // the content without it.
    let text = content.parts;
    let content_hash = content.hash;
    let version = next_version(prev, &content_hash, base);
    let last = text.last().map_or("", String::as_str);
    let body = cluster_body(last).len();
    let tail = format!(",\n  \"version\": {version}\n}}\n");
    let mut hasher = match &stage {
        Some(stage) => stage.hasher.clone(),
        None => {
            let mut hasher = crate::hash::Checksum::new();
            for part in &text[..text.len().saturating_sub(1)] {
                hasher.update(part.as_bytes());
            }
            hasher.update(&last.as_bytes()[..body]);
            hasher
        }
    };
    let file_checksum = hasher.update(tail.as_bytes()).hex();
    let rewrite = prev.is_none_or(|p| p.checksum != file_checksum);
    Planned {
        path,
        fingerprint: Fingerprint {
            checksum: file_checksum,
            content: content_hash,
            version,
            values: content.values,
            spans: content.spans,
        },
        text,
        body,
        stage,
        tail,
        version,
        rewrite,
    }
}

impl Planned {
    /// The file's bytes, in parts.
    fn parts(&self) -> Vec<&str> {
        let (last, rest) = match self.text.split_last() {
            Some((last, rest)) => (last.as_str(), rest),
            None => ("", &[][..]),
        };
        rest.iter()
            .map(String::as_str)
            .chain([&last[..self.body], self.tail.as_str()])
            .collect()
    }
}

/// Counts values added, changed and removed (by uuid) between two sets of value hashes, walking both
/// in key order side by side.
fn count_changes<K: Ord, V: Eq>(
    prev: Option<&BTreeMap<K, V>>,
    new: &BTreeMap<K, V>,
) -> (usize, usize, usize) {
    let Some(old) = prev else {
        return (new.len(), 0, 0);
    };
    let (mut added, mut changed, mut removed) = (0, 0, 0);
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (Some((ok, ov)), Some((nk, nv))) => match ok.cmp(nk) {
                std::cmp::Ordering::Less => {
                    removed += 1;
                    o.next();
                }
                std::cmp::Ordering::Greater => {
                    added += 1;
                    n.next();
                }
                std::cmp::Ordering::Equal => {
                    changed += usize::from(ov != nv);
                    o.next();
                    n.next();
                }
            },
            (Some(_), None) => {
                removed += o.count();
                break;
            }
            (None, _) => {
                added += n.count();
                break;
            }
        }
    }
    (added, changed, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`cluster_content`] with the old spans looked up, for values without web links.
    fn spliced_content(
        info: &GalaxyInfo,
        values: &[Value],
        related: &[Vec<Relation>],
        keys: &[ValueKey],
        previous: Option<Previous<'_>>,
        stage: Option<&mut Stage>,
    ) -> Result<Content> {
        linked_content(info, values, related, &[], keys, previous, stage)
    }

    /// [`cluster_content`] with the old spans looked up.
    fn linked_content(
        info: &GalaxyInfo,
        values: &[Value],
        related: &[Vec<Relation>],
        links: &[Option<SourceLinks>],
        keys: &[ValueKey],
        previous: Option<Previous<'_>>,
        stage: Option<&mut Stage>,
    ) -> Result<Content> {
        let old = old_spans(previous, keys);
        cluster_content(info, values, related, links, keys, previous, &old, stage)
    }

    fn content(n: u64) -> Json {
        json!({"type": "t", "values": [{"uuid": "u", "value": n.to_string()}]})
    }

    fn planned(n: u64, prev: Option<&Fingerprint>, base: i64) -> Planned {
        plan("x".into(), Content::of(&content(n)), None, prev, base)
    }

    #[test]
    fn version_is_appended_in_misp_formatting() {
        let p = planned(1, None, 1_700_000_000);
        let mut full = content(1);
        full["version"] = json!(1_700_000_000);
        assert_eq!(p.parts().concat(), json::to_misp_json(&full));
        assert!(p.rewrite);
    }

    #[test]
    fn same_content_and_clock_keep_version_and_bytes() {
        let first = planned(1, None, 1_700_000_000).fingerprint;
        let again = planned(1, Some(&first), 1_700_000_000);
        assert_eq!(again.version, 1_700_000_000);
        assert!(!again.rewrite);
        // An older clock never lowers it; a newer one (rules changed, content did not) follows the clock.
        assert_eq!(
            planned(1, Some(&first), 1_600_000_000).version,
            1_700_000_000
        );
        let newer = planned(1, Some(&first), 1_800_000_000);
        assert_eq!(newer.version, 1_800_000_000);
        assert!(newer.rewrite);
    }

    #[test]
    fn new_content_with_an_old_clock_goes_up_by_one() {
        let first = planned(1, None, 1_700_000_000).fingerprint;
        assert_eq!(
            planned(2, Some(&first), 1_600_000_000).version,
            1_700_000_001
        );
        assert_eq!(
            planned(2, Some(&first), 1_800_000_000).version,
            1_800_000_000
        );
    }

    #[test]
    fn versions_fit_a_signed_32_bit_integer() {
        assert_eq!(planned(1, None, i64::MAX).version, MAX_VERSION);
    }

    #[test]
    fn a_parsed_file_and_a_recorded_fingerprint_agree() {
        let p = planned(1, None, 1_700_000_000);
        let mut parsed: Json = serde_json::from_str(&p.parts().concat()).expect("json");
        parsed.as_object_mut().expect("object").remove("version");
        assert_eq!(
            Fingerprint::of(&parsed, p.version, p.fingerprint.checksum.clone()),
            p.fingerprint
        );
    }

    #[test]
    fn spliced_and_parsed_contents_hash_alike() {
        let c = Content::of(&content(1));
        let reparsed: Json = serde_json::from_str(&c.parts.concat()).expect("json");
        assert_eq!(Content::of(&reparsed), c);
        assert_ne!(Content::of(&content(2)).hash, c.hash);
    }

    #[test]
    fn value_versions_follow_each_values_content() {
        let values = |b: &str| {
            json!({"type": "t", "values": [
                {"uuid": "00000000-0000-0000-0000-00000000000a", "value": "A", "meta": {"level": "high"}},
                {"uuid": "00000000-0000-0000-0000-00000000000b", "value": b},
            ]})
        };
        let dir = tempfile::tempdir().expect("tmp");
        let write_at = |b: &str, base: i64| {
            let prior_cluster = prior(&cluster_path(dir.path(), "t"), None);
            let prior_galaxy = prior(&galaxy_path(dir.path(), "t"), None);
            let c = value_versions(
                dir.path(),
                "t",
                Content::of(&values(b)),
                base,
                fingerprint(&prior_cluster),
            );
            let g = Content::of(&json!({"type": "t"}));
            let fingerprints = [fingerprint(&prior_cluster), fingerprint(&prior_galaxy)];
            write(dir.path(), "t", c, None, g, base, fingerprints, false).expect("write");
            let text = std::fs::read_to_string(cluster_path(dir.path(), "t")).expect("read");
            let parsed: Json = serde_json::from_str(&text).expect("json");
            assert_eq!(json::to_misp_json(&parsed), text, "misp formatting");
            let v = |i: usize| parsed["values"][i]["version"].as_i64().expect("version");
            (parsed["version"].as_i64().expect("version"), v(0), v(1))
        };
        assert_eq!(write_at("B", 100), (100, 100, 100));
        assert_eq!(write_at("B2", 200), (200, 100, 200), "only b changed");
        assert_eq!(write_at("B2", 300), (300, 100, 200), "nothing changed");
        // The content of a value does not include its version.
        let with = json!({"values": [{"uuid": "00000000-0000-0000-0000-00000000000a", "value": "A", "version": 3}]});
        let without =
            json!({"values": [{"uuid": "00000000-0000-0000-0000-00000000000a", "value": "A"}]});
        assert_eq!(Content::of(&with).hash, Content::of(&without).hash);
    }

    proptest::proptest! {
        #[test]
        fn values_sort_by_title_then_uuid(
            titles in proptest::collection::vec(("[ab\\x00]{0,10}", 0u128..4), 0..60)
        ) {
            // Short titles, NULs and long shared prefixes: where comparing eight bytes is not enough.
            let values: Vec<Value> = titles
                .iter()
                .enumerate()
                .map(|(i, (t, u))| Value {
                    uuid: uuid::Uuid::from_u128(u * 1000 + i as u128),
                    title: t.clone(),
                    source: 0,
                    path: String::new(),
                    rule: Box::new(crate::parse::Rule::titled(t)),
                    link: None,
                    own_id: true,
                    record: crate::hash::Digest::of(b"k"),
                    provenance: None,
                    notes: Default::default(),
                })
                .collect();
            let mut want: Vec<usize> = (0..values.len()).collect();
            want.sort_by(|&a, &b| {
                (values[a].title.as_str(), values[a].uuid)
                    .cmp(&(values[b].title.as_str(), values[b].uuid))
            });
            proptest::prop_assert_eq!(sorted(&values), want);
        }
    }

    #[test]
    fn value_keys_change_exactly_with_what_the_link_is_made_of() {
        let links = |template: &str, commit: &str| {
            let web = crate::sources::WebLink::Template {
                template: crate::weburl::Template::parse(template).expect("template"),
                remote: None,
            };
            [Some(SourceLinks::new(
                web,
                commit.into(),
                Some("main".into()),
            ))]
        };
        let value = |rev: LinkRev, path: &str| Value {
            uuid: uuid::Uuid::from_u128(1),
            title: "T".into(),
            source: 0,
            path: path.into(),
            rule: Box::new(crate::parse::Rule::titled("T")),
            link: Some(rev),
            own_id: true,
            record: crate::hash::Digest::of(b"k"),
            provenance: None,
            notes: Default::default(),
        };
        let key = |v: &Value, l: &[Option<SourceLinks>]| value_key(v, &[], l);
        let t = "https://a.invalid/{commit}/{path}";
        let (c1, c2) = (links(t, "c1"), links(t, "c2"));
        let change = |b: u8| LinkRev::Change(crate::hash::Bytes([b; 20]));
        // Linked to the commit that last changed the file, or to the branch: another build commit
        // makes the same link, so the same key.
        for rev in [change(1), LinkRev::Branch] {
            assert_eq!(
                key(&value(rev, "r/a.yml"), &c1),
                key(&value(rev, "r/a.yml"), &c2)
            );
        }
        // Linked to the build commit: another commit, another link.
        let at_commit = value(LinkRev::Commit, "r/a.yml");
        assert_ne!(key(&at_commit, &c1), key(&at_commit, &c2));
        // Another last change, another folder (the file name shown is the same), another template,
        // no links at all: each another key.
        let v = value(change(1), "r/a.yml");
        for other in [
            key(&value(change(2), "r/a.yml"), &c1),
            key(&value(change(1), "s/a.yml"), &c1),
            key(&v, &links("https://b.invalid/{commit}/{path}", "c1")),
            key(&v, &[]),
        ] {
            assert_ne!(key(&v, &c1), other);
        }
        // And the links the keys stand for are what they say.
        let [Some(l)] = &c1 else { unreachable!() };
        assert_eq!(
            l.url(change(1), "r/a.yml"),
            format!("https://a.invalid/{}/r/a.yml", "01".repeat(20))
        );
        assert_eq!(
            l.url(LinkRev::Branch, "r/a.yml"),
            "https://a.invalid/main/r/a.yml"
        );
        assert_eq!(
            l.url(LinkRev::Commit, "r/a.yml"),
            "https://a.invalid/c1/r/a.yml"
        );
    }

    #[test]
    fn reused_value_texts_give_the_formatted_file() {
        let info = GalaxyInfo::default();
        let value = |n: u128, title: &str| Value {
            uuid: uuid::Uuid::from_u128(n),
            title: title.to_string(),
            source: 0,
            path: format!("rules/{n}.yml"),
            rule: Box::new(crate::parse::Rule::titled(title)),
            // Every other value links to the commit that last changed it, the rest to the build's.
            link: Some(match n % 2 {
                0 => LinkRev::Change(crate::hash::Bytes([n as u8; 20])),
                _ => LinkRev::Commit,
            }),
            own_id: true,
            record: crate::hash::Digest::of(b"k"),
            provenance: None,
            notes: Default::default(),
        };
        let web = crate::sources::WebLink::Template {
            template: crate::weburl::Template::parse("https://example.invalid/{commit}/{path}")
                .expect("template"),
            remote: None,
        };
        let links = [Some(SourceLinks::new(web, "c0ffee".into(), None))];
        let first: Vec<Value> = (1..=300).map(|n| value(n, &format!("Rule {n}"))).collect();
        let keys = |values: &[Value]| -> Vec<ValueKey> {
            values.iter().map(|v| value_key(v, &[], &links)).collect()
        };
        let related = vec![Vec::new(); first.len()];
        let old = linked_content(&info, &first, &related, &links, &keys(&first), None, None)
            .expect("text");
        assert_eq!(old.spans.len(), first.len());
        let old_file = plan(PathBuf::from("c.json"), old, None, None, 1);
        let text = old_file.parts().concat();
        // One value changed, one gone, one new: the spliced text is the freshly formatted one.
        let mut next = first.clone();
        next[7].title = "Changed".into();
        next.remove(100);
        next.push(value(999, "New"));
        let related = vec![Vec::new(); next.len()];
        let dir = tempfile::tempdir().expect("tmp");
        let file_of = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            std::fs::File::open(&path).expect("open")
        };
        // `next` formatted with its unchanged values copied from `old`, a file described by
        // `old_file`'s fingerprint.
        let splice_from = |old: &std::fs::File| {
            let previous = Previous {
                file: old,
                fingerprint: &old_file.fingerprint,
            };
            linked_content(
                &info,
                &next,
                &related,
                &links,
                &keys(&next),
                Some(previous),
                None,
            )
            .expect("text")
        };
        let spliced = splice_from(&file_of("old.json", &text));
        let formatted =
            linked_content(&info, &next, &related, &links, &[], None, None).expect("text");
        assert_eq!(spliced.parts.concat(), formatted.parts.concat());
        // The links are in the text, each made from its value's revision.
        assert!(text.contains("https://example.invalid/c0ffee/rules/1.yml"));
        assert!(text.contains(&format!(
            "https://example.invalid/{}/rules/2.yml",
            "02".repeat(20)
        )));
        assert_eq!(spliced.values, formatted.values);
        assert_eq!(spliced.hash, formatted.hash);
        // And it was copied, not formatted: a mark in the old text of an unchanged value shows.
        let Span { at, len, .. } = old_file.fingerprint.spans[&value_key(&first[1], &[], &links)];
        let marked = format!(
            "{}{}{}",
            &text[..at],
            text[at..at + len].replace("Rule 2", "Rule X"),
            &text[at + len..]
        );
        let copied = splice_from(&file_of("marked.json", &marked));
        assert!(copied.parts.concat().contains("\"value\": \"Rule X\""));
        // The recorded spans are where the values are.
        let new_text = spliced.parts.concat();
        let Span { at, len, .. } = spliced.spans[&value_key(&next[7], &[], &links)];
        assert!(new_text[at..at + len].contains("\"value\": \"Changed\""));
    }

    #[test]
    fn batches_end_at_their_count_or_once_their_old_texts_pass_the_cap() {
        let span = |len| {
            Some(Span {
                at: 0,
                len,
                hash: crate::hash::Bytes([0; 32]),
            })
        };
        // Values 0..10 in reverse order; 2, 3 and 7 reuse 400 bytes each, the rest nothing.
        let order: Vec<usize> = (0..10).rev().collect();
        let mut old = vec![None; 10];
        for i in [2, 3, 7] {
            old[i] = span(400);
        }
        let sizes = |count, bytes| -> Vec<Vec<usize>> {
            batches(&order, &old, count, bytes)
                .map(<[usize]>::to_vec)
                .collect()
        };
        // Formatted afresh: batches of `count`.
        assert_eq!(
            sizes(4, usize::MAX),
            [vec![9, 8, 7, 6], vec![5, 4, 3, 2], vec![1, 0]]
        );
        // Copying: a batch ends with the value whose text reaches the cap.
        assert_eq!(sizes(100, 800), [vec![9, 8, 7, 6, 5, 4, 3], vec![2, 1, 0]]);
        assert_eq!(
            sizes(100, 1),
            [vec![9, 8, 7], vec![6, 5, 4, 3], vec![2], vec![1, 0]]
        );
        assert!(batches(&[], &old, 4, 1).next().is_none());
    }

    #[test]
    fn a_streamed_cluster_is_the_formatted_one() {
        let info = GalaxyInfo::default();
        let values: Vec<Value> = (1..=9000u128)
            .map(|n| Value {
                uuid: uuid::Uuid::from_u128(n),
                title: format!("Rule {n:05}"),
                source: 0,
                path: format!("rules/{n}.yml"),
                rule: Box::new(crate::parse::Rule::titled(format!("Rule {n:05}"))),
                link: None,
                own_id: true,
                record: crate::hash::Digest::of(b"k"),
                provenance: None,
                notes: Default::default(),
            })
            .collect();
        let related = vec![Vec::new(); values.len()];
        let galaxy = || Content::of(&galaxy_json(&info));
        let build = |values: &[Value], streamed: bool| {
            let dir = tempfile::tempdir().expect("tmp");
            let path = cluster_path(dir.path(), &info.kind);
            let mut stage = streamed.then(|| Stage::new(&path, false).expect("stage"));
            let c = spliced_content(
                &info,
                values,
                &related[..values.len()],
                &[],
                None,
                stage.as_mut(),
            )
            .expect("text");
            assert_eq!(c.parts.is_empty(), streamed);
            let w = write(
                dir.path(),
                &info.kind,
                c,
                stage,
                galaxy(),
                7,
                [None, None],
                false,
            )
            .expect("write");
            let text = std::fs::read_to_string(&path).expect("read");
            let files = std::fs::read_dir(path.parent().expect("dir"))
                .expect("ls")
                .count();
            (text, w.fingerprints[0].clone(), files)
        };
        // More values than one batch, and none.
        for n in [values.len(), 0] {
            let (streamed, print, files) = build(&values[..n], true);
            assert_eq!(
                (streamed.clone(), print.clone(), files),
                build(&values[..n], false)
            );
            assert_eq!(files, 1, "no temporary file is left");
            assert_eq!(checksum(streamed.as_bytes()), print.checksum);
            let parsed: Json = serde_json::from_str(&streamed).expect("json");
            assert_eq!(json::to_misp_json(&parsed), streamed);
        }
        // Reused across gaps: 6,000 values gone from between those kept (titles sort as numbers), so
        // the first batch's old texts are read in two pieces; one in each is marked in the old text,
        // and the marks show.
        let keys: Vec<ValueKey> = values.iter().map(|v| value_key(v, &[], &[])).collect();
        let old = spliced_content(&info, &values, &related, &keys, None, None).expect("text");
        let old = plan(PathBuf::from("c.json"), old, None, None, 1);
        let mut text = old.parts().concat();
        for v in [&values[0], &values[8999]] {
            let Span { at, len, .. } = old.fingerprint.spans[&value_key(v, &[], &[])];
            let marked = text[at..at + len].replace(&v.title, &v.title.replace("Rule", "Mark"));
            text.replace_range(at..at + len, &marked);
        }
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("old.json"), &text).expect("write");
        let file = std::fs::File::open(dir.path().join("old.json")).expect("open");
        let previous = Previous {
            file: &file,
            fingerprint: &old.fingerprint,
        };
        let next: Vec<Value> = values
            .iter()
            .enumerate()
            .filter(|(i, _)| !(1000..7000).contains(i))
            .map(|(_, v)| v.clone())
            .collect();
        let keys: Vec<ValueKey> = next.iter().map(|v| value_key(v, &[], &[])).collect();
        let spliced = spliced_content(
            &info,
            &next,
            &related[..next.len()],
            &keys,
            Some(previous),
            None,
        )
        .expect("text")
        .parts
        .concat();
        let formatted = spliced_content(&info, &next, &related[..next.len()], &[], None, None)
            .expect("text")
            .parts
            .concat();
        assert!(
            spliced.contains("\"value\": \"Mark 00001\"")
                && spliced.contains("\"value\": \"Mark 09000\"")
        );
        assert_eq!(spliced.replace("Mark ", "Rule "), formatted);
        // Every value was reused, from two pieces of the old file.
        let batch = sorted(&next);
        let mut reused = Reused::default();
        reused.read(Some(previous), &batch, &old_spans(Some(previous), &keys));
        assert_eq!((reused.texts.len(), reused.pieces), (next.len(), 2));
        // A dry run hashes the same bytes and writes nothing.
        let dir = tempfile::tempdir().expect("tmp");
        let path = cluster_path(dir.path(), &info.kind);
        let mut stage = Stage::new(&path, true).expect("stage");
        let c =
            spliced_content(&info, &values, &related, &[], None, Some(&mut stage)).expect("text");
        let w = write(
            dir.path(),
            &info.kind,
            c,
            Some(stage),
            galaxy(),
            7,
            [None, None],
            true,
        )
        .expect("dry run");
        assert_eq!(w.fingerprints[0], build(&values, true).1);
        assert!(!dir.path().join("clusters").exists());
    }

    #[test]
    fn value_counts_compare_by_uuid() {
        let old = Content::of(
            &json!({"values": [{"uuid": "00000000-0000-0000-0000-00000000000a", "value": "A"}, {"uuid": "00000000-0000-0000-0000-00000000000b", "value": "B"}]}),
        )
        .values;
        let new = Content::of(
            &json!({"values": [{"uuid": "00000000-0000-0000-0000-00000000000a", "value": "A2"}, {"uuid": "00000000-0000-0000-0000-00000000000c", "value": "C"}]}),
        )
        .values;
        assert_eq!(count_changes(Some(&old), &new), (1, 1, 1));
        assert_eq!(count_changes(None, &new), (2, 0, 0));
        // Against counting by look-ups, over maps that overlap in every way.
        let map = |keys: std::ops::Range<u32>, salt: u32| -> BTreeMap<String, String> {
            keys.map(|k| (format!("{k:03}"), ((k % 7 == 0) as u32 * salt).to_string()))
                .collect()
        };
        for (old, new) in [
            (map(0..50, 1), map(20..90, 2)),
            (map(20..90, 1), map(0..50, 2)),
            (map(0..10, 1), map(40..60, 1)),
            (map(0..0, 1), map(5..9, 1)),
            (map(0..30, 1), map(0..30, 2)),
        ] {
            let added = new.keys().filter(|k| !old.contains_key(*k)).count();
            let removed = old.keys().filter(|k| !new.contains_key(*k)).count();
            let changed = new
                .iter()
                .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
                .count();
            assert_eq!(count_changes(Some(&old), &new), (added, changed, removed));
        }
    }
}
