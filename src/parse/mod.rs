//! Parse: turns the bytes of one rule file into Sigma rule records.
//!
//! This stage owns everything about reading Sigma YAML: UTF-8 decoding, YAML syntax, duplicate keys,
//! Sigma v1 rule collections (`action: global` / `reset` / `repeat`), telling detection, correlation and
//! filter rules apart, and mapping the loosely typed YAML onto [`Rule`]. It knows nothing about git,
//! paths, uuids or MISP: a file's bytes go in, records and problems (with line numbers) come out.
//! Parsing is pure and deterministic, so its results can be cached by content hash.
//!
//! # What goes in, what comes out
//!
//! - **Encoding.** The bytes must be UTF-8; a leading byte order mark is ignored. Otherwise the file
//!   yields one [`Problem`] at the line of the first bad byte, and no rules.
//! - **Limits.** A file larger than [`Limits::file_size`], or whose flow collections (`[`, `{`) nest
//!   deeper than [`Limits::nesting_depth`], is one [`Problem`] ([`Code::LimitExceeded`]) and no rules;
//!   a cheap scan (`scan.rs`) finds deep nesting before libyaml, whose cost grows with the square of
//!   it, sees the file. Block nesting past the limit, and documents that load more nodes or text than
//!   [`Limits::yaml_nodes`] / [`Limits::yaml_text`] (aliases expanded: alias bombs), are a problem for
//!   their document. Texts longer than [`Limits::field_length`] are cut ([`Code::FieldTooLong`]).
//! - **Loading.** Most rule files are plain block YAML, which `block.rs` loads itself, several times
//!   faster than libyaml; it declines anything else (flow collections, anchors, tags, multi-line
//!   plain scalars, anything that would be an error, …), and that file is loaded by `yaml.rs`
//!   through `yaml_serde`. Both give the same trees: that is checked on every version of every
//!   corpus rule in CI and by the `parse_rule` fuzz target ([`check_block_loader`]).
//! - **Documents.** Each YAML document is loaded into a tree first (`yaml.rs`), then, for collections,
//!   merged (`collection.rs`), then read into a [`Rule`] (`rule.rs`). A document that cannot be loaded
//!   (malformed YAML, a repeated metadata key, a YAML tag other than PyYAML `safe_load`'s such as
//!   `!!python/object` or `!foo`) or read (a field of the wrong type, a bad collection action) is one
//!   [`Problem`], at the line `yaml_serde` or the scan reports or, for a field, at the line of its key;
//!   that document is skipped and the others still count. After a YAML *syntax* error no later
//!   document of the file can be read (libyaml does not resume); nor after an unsafe tag, whose
//!   document is never handed to `yaml_serde` (an unknown tag on a node holding an unknown alias
//!   makes it panic).
//! - **Repeated keys.** In the metadata (`title`, `id`, `tags`, `logsource`, ...) a repeated key makes
//!   the rule ambiguous: [`Code::DuplicateKey`], skipped. Elsewhere (`detection`, custom fields) the
//!   last value wins, in the first key's place, as PyYAML and pySigma do, with a
//!   [`Code::DuplicateDetectionKey`] warning naming both lines.
//! - **Warnings.** A [`Problem`] whose code is a warning (a coerced type, a cut text, a repeated
//!   detection key) does not skip its rule.
//! - **Not rules.** Documents that are not mappings, have no (or an empty) `title`, or have none of
//!   `detection`, `correlation` and `filter` are skipped without a problem, as are the `global` and
//!   `reset` documents of collections. [`RuleKind`] is taken from the first of those three keys present.
//! - **Collections.** `action: global` / `reset` / `repeat` are resolved exactly as pySigma does; note
//!   that pySigma lets a `global` document's values win over the rule document's own (see
//!   `collection.rs`).
//! - **Numbering.** [`Rule::index`] is the 0-based index of the YAML document in the file (a collection's
//!   `global` document counts); [`Rule::line`] is the line after the document's `---`, or 1 for a
//!   first document without one (`lines.rs`).
//!
//! # Scalar typing
//!
//! `yaml_serde` reads YAML 1.2, where `2024-01-01` and `2022/08/28` are strings: dates come out as
//! written. PyYAML (YAML 1.1, used by MISP's own script) would turn the first into a date and, where
//! a text field holds `yes`, `1.10` or `0x1F`, into `True`, `1.1` and `31`. Here a plain scalar that
//! YAML reads as a number or boolean is taken **as written** wherever text is expected (`1.10`,
//! `0x1F`, `True`, `yes`), since MISP stores meta as strings and the author's text is the most useful
//! value, with a [`Code::CoercedType`] warning. A list or mapping where text is expected is a type
//! error ([`Code::WrongType`]; the rule is skipped). Text fields are trimmed and are
//! `None` when absent, null or empty. List fields (`references`, `tags`, `falsepositives`,
//! `correlation.rules`) take a list of texts or a single text (a [`Code::CoercedType`] warning),
//! trimmed, dropping null and empty
//! entries; `references` is de-duplicated keeping the first occurrence. `related` must be a list of
//! mappings each with a non-empty `id` and `type`.

mod block;
mod collection;
mod lines;
pub mod lint;
mod rule;
mod scan;
mod yaml;

#[cfg(test)]
mod tests;

use std::cell::Cell;

use serde::{Deserialize, Serialize};

use crate::findings::Code;

use self::collection::Collection;
use self::lines::Layout;
use self::yaml::{Budget, Document, Node};

pub use self::rule::CUT_MARKER;

/// What kind of Sigma document a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// A detection rule (has `detection`).
    Detection,
    /// A correlation rule (has `correlation`).
    Correlation,
    /// A filter rule (has `filter`; skipped unless asked for).
    Filter,
}

/// `logsource` of a rule; absent fields are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSource {
    pub category: Option<String>,
    pub product: Option<String>,
    pub service: Option<String>,
}

/// One entry of a rule's Sigma `related` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedRule {
    /// The related rule's id, as written (trimmed).
    pub id: String,
    /// `derived`, `obsolete`, `merged`, `renamed` or `similar` (lower case, as written).
    pub kind: String,
}

/// One Sigma rule, with every field MISP needs, already trimmed and type-checked.
///
/// Optional text fields are `None` when absent, null or empty after trimming; list fields are empty when
/// absent. No placeholders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// 0-based index of the YAML document in its file (a single-document file has index 0).
    pub index: u32,
    /// 1-based line where the document starts in the file.
    pub line: u32,
    pub kind: RuleKind,
    /// `id` as written (trimmed); validity as a UUID is judged later, by merge.
    pub id: Option<String>,
    /// `name` (correlation rules refer to rules by id or name).
    pub name: Option<String>,
    /// `title`, trimmed; never empty.
    pub title: String,
    pub tags: Vec<String>,
    pub level: Option<String>,
    pub status: Option<String>,
    pub logsource: LogSource,
    /// Sigma `related` entries.
    pub related: Vec<RelatedRule>,
    /// For correlation rules: `correlation.rules`, the ids or names of the rules it correlates.
    pub correlates: Vec<String>,
    /// What only the rule's value shows (description, references, dates, author, false positives).
    pub details: Body,
}

/// The fields of a rule that only its formatted value shows: nothing else in a build reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    pub description: Option<String>,
    /// `references`, de-duplicated in order.
    pub references: Vec<String>,
    /// `date` as written.
    pub date: Option<String>,
    /// `modified` as written.
    pub modified: Option<String>,
    pub author: Option<String>,
    /// `falsepositives`: a single string becomes a one-element list.
    pub falsepositives: Vec<String>,
}

/// A rule's [`Details`], kept encoded (one allocation) while the rule comes from the parse cache and
/// decoded only when its value is formatted afresh: a build that copies an unchanged value's text
/// never decodes them, and never frees their strings one by one. A freshly parsed rule holds them
/// decoded or encoded; either way it reads, compares and saves the same.
///
/// A rule loaded from a parse-cache shard by [`Body::left_in`] does not even copy them: its body only
/// says where its bytes are in that shard file, and [`Body::fill`] copies them from the file when
/// its value must be formatted afresh, or its shard rewritten (a 10-rule build at 100k rules copies a
/// few dozen, where it held 44 MB of them). Until then [`Body::get`] has nothing to give.
#[derive(Clone)]
pub struct Body(BodyRepr);

#[derive(Clone)]
enum BodyRepr {
    Decoded(Box<Details>),
    /// postcard encoding of the [`Details`], as saved in the parse cache.
    Encoded(Box<[u8]>),
    /// The encoding is the `len` bytes at `at` in the body of the shard file it was decoded from.
    InShard {
        at: u32,
        len: u32,
    },
}

thread_local! {
    /// While [`Body::left_in`] decodes a shard on this thread: where the shard's bytes are.
    static SHARD: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

impl Body {
    /// The details, encoded at once: a clean build at 100k rules holds every record from parse to
    /// format, and one buffer per rule takes a third of the room its strings took.
    pub fn new(details: Details) -> Body {
        match postcard::to_stdvec(&details) {
            Ok(bytes) => Body(BodyRepr::Encoded(bytes.into_boxed_slice())),
            Err(_) => Body(BodyRepr::Decoded(Box::new(details))),
        }
    }

    /// Runs `decode`, which decodes records from `shard` (a parse-cache shard file's body), so that
    /// the bodies it decodes are left in the shard: they note where their bytes are instead of
    /// copying them. Bodies decoded anywhere else are copied.
    pub fn left_in<R>(shard: &[u8], decode: impl FnOnce() -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                SHARD.with(|s| s.set(None));
            }
        }
        SHARD.with(|s| s.set(Some((shard.as_ptr() as usize, shard.len()))));
        let _reset = Reset;
        decode()
    }

    /// Whether the details are still only in a shard file (see [`Body::fill`]).
    pub fn in_shard(&self) -> bool {
        matches!(self.0, BodyRepr::InShard { .. })
    }

    /// Copies the details' bytes from `shard`, the body of the shard file this body was decoded from
    /// (as [`Body::left_in`] was given it). False when they are not within it; the body is then left
    /// as it was. A body that is not [`in_shard`](Body::in_shard) is left as it is.
    pub fn fill(&mut self, shard: &[u8]) -> bool {
        let BodyRepr::InShard { at, len } = self.0 else {
            return true;
        };
        let (at, len) = (at as usize, len as usize);
        match shard.get(at..at + len) {
            Some(bytes) => {
                self.0 = BodyRepr::Encoded(bytes.into());
                true
            }
            None => false,
        }
    }

    /// The details, decoded if need be. Only for bodies known not to be [`in_shard`](Body::in_shard)
    /// (freshly parsed rules): one still in its shard is a bug of the caller's, and panics.
    pub fn get(&self) -> std::borrow::Cow<'_, Details> {
        self.loaded()
            .expect("a rule's details were read before Body::fill copied them from the parse cache")
    }

    /// The details, decoded if need be; `None` while they are only in a shard file. (An encoding
    /// that does not decode, which the parse cache's checksums rule out, reads as no details.)
    pub fn loaded(&self) -> Option<std::borrow::Cow<'_, Details>> {
        match &self.0 {
            BodyRepr::Decoded(d) => Some(std::borrow::Cow::Borrowed(d)),
            BodyRepr::Encoded(bytes) => Some(std::borrow::Cow::Owned(
                postcard::from_bytes(bytes).unwrap_or_default(),
            )),
            BodyRepr::InShard { .. } => None,
        }
    }

    /// The details, to change them (decoded in place; a body still in its shard gets empty ones:
    /// only freshly parsed rules are changed).
    pub fn get_mut(&mut self) -> &mut Details {
        if !matches!(self.0, BodyRepr::Decoded(_)) {
            let details = self.loaded().map(|d| d.into_owned()).unwrap_or_default();
            self.0 = BodyRepr::Decoded(Box::new(details));
        }
        match &mut self.0 {
            BodyRepr::Decoded(d) => d,
            BodyRepr::Encoded(_) | BodyRepr::InShard { .. } => unreachable!("decoded just above"),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::new(Details::default())
    }
}

impl PartialEq for Body {
    /// Bodies still in their shards are equal when they are at the same place, and differ from any
    /// other.
    fn eq(&self, other: &Body) -> bool {
        match (&self.0, &other.0) {
            (BodyRepr::InShard { at: a, len: l }, BodyRepr::InShard { at: b, len: m }) => {
                (a, l) == (b, m)
            }
            _ => self.loaded() == other.loaded(),
        }
    }
}

impl Eq for Body {}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.0, self.loaded()) {
            (BodyRepr::InShard { at, len }, _) => write!(f, "InShard({at}, {len})"),
            (_, d) => d.fmt(f),
        }
    }
}

impl Serialize for Body {
    /// A body still in its shard cannot be saved: [`Body::fill`] it first.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            BodyRepr::Encoded(bytes) => serializer.serialize_bytes(bytes),
            BodyRepr::Decoded(d) => {
                let bytes = postcard::to_stdvec(d).map_err(serde::ser::Error::custom)?;
                serializer.serialize_bytes(&bytes)
            }
            BodyRepr::InShard { .. } => Err(serde::ser::Error::custom(
                "a rule's details were not read back from the parse cache before it was saved",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Body, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = BodyRepr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the encoded details of a rule")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<BodyRepr, E> {
                // Within the shard being decoded by `Body::left_in`: left there.
                let start = v.as_ptr() as usize;
                let place = SHARD.with(|s| s.get()).and_then(|(base, size)| {
                    let at = start.checked_sub(base)?;
                    (at + v.len() <= size).then_some(())?;
                    Some(BodyRepr::InShard {
                        at: u32::try_from(at).ok()?,
                        len: u32::try_from(v.len()).ok()?,
                    })
                });
                Ok(place.unwrap_or_else(|| BodyRepr::Encoded(v.into())))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<BodyRepr, E> {
                Ok(BodyRepr::Encoded(v.into()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<BodyRepr, E> {
                Ok(BodyRepr::Encoded(v.into_boxed_slice()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BodyRepr, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(BodyRepr::Encoded(out.into_boxed_slice()))
            }
        }
        // Not decoded here: that is the point. Its bytes are covered by the state file's checksum.
        Ok(Body(deserializer.deserialize_bytes(Bytes)?))
    }
}

impl Rule {
    /// A detection rule with only a title, at document 0, line 1: the start of hand-made records.
    pub fn titled(title: impl Into<String>) -> Rule {
        Rule {
            index: 0,
            line: 1,
            kind: RuleKind::Detection,
            id: None,
            name: None,
            title: title.into(),
            tags: Vec::new(),
            level: None,
            status: None,
            logsource: LogSource::default(),
            related: Vec::new(),
            correlates: Vec::new(),
            details: Body::default(),
        }
    }
}

/// Something wrong with a file or one of its documents. When its code is an error the document is
/// skipped; a warning's rule is kept. The build goes on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// 1-based line in the file, where known.
    pub line: Option<u32>,
    /// What kind of problem it is.
    pub code: Code,
    pub message: String,
}

/// Everything parsing one file produced: its rules (in document order) and its problems.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedFile {
    pub rules: Vec<Rule>,
    pub problems: Vec<Problem>,
}

/// How much one rule file may hold. Files past a limit are reported ([`Code::LimitExceeded`]) instead
/// of read, so that parsing costs time and memory in proportion to the file's size, whatever its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest file read, in bytes.
    pub file_size: usize,
    /// How deep lists and mappings may nest.
    pub nesting_depth: usize,
    /// How many YAML nodes a file may load, aliases expanded (each use of an alias counts its nodes
    /// again): the guard against alias bombs.
    pub yaml_nodes: usize,
    /// How many bytes of scalar text a file may load, aliases expanded.
    pub yaml_text: usize,
    /// The longest text field kept, in bytes; longer ones are cut ([`Code::FieldTooLong`]). MISP stores
    /// a value's description and meta in TEXT columns of 65,535 bytes.
    pub field_length: usize,
}

impl Limits {
    /// `yaml_serde` refuses to nest deeper than this whatever the limit says.
    pub const MAX_NESTING_DEPTH: usize = 128;
}

impl Default for Limits {
    /// Far above SigmaHQ's largest rule (see the README's table of limits).
    fn default() -> Self {
        Limits {
            file_size: 1 << 21,
            nesting_depth: 64,
            yaml_nodes: 200_000,
            yaml_text: 1 << 24,
            field_length: 65_535,
        }
    }
}

/// How many field and key line look-ups one file gets: each scans the document's lines, so a file of
/// many bad documents must not cost one scan per document.
const LINE_LOOKUPS: usize = 100;

/// How many repeated keys of one document are reported one by one; the rest are counted.
const MAX_DUPLICATES: usize = 10;

/// Parses the bytes of one rule file within `limits`.
///
/// Never panics. Documents that are not Sigma rules (no `title`, or neither `detection` nor `correlation`
/// nor `filter`) are skipped silently. Filter rules are returned with [`RuleKind::Filter`]; the caller decides
/// whether to keep them.
pub fn parse_file(bytes: &[u8], limits: &Limits) -> ParsedFile {
    let only = |line: u32, code: Code, message: String| ParsedFile {
        rules: Vec::new(),
        problems: vec![Problem {
            line: Some(line),
            code,
            message,
        }],
    };
    if bytes.len() > limits.file_size {
        let message = format!(
            "the file is {} bytes, more than the limit of {}",
            bytes.len(),
            limits.file_size
        );
        return only(1, Code::LimitExceeded, message);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.strip_prefix('\u{feff}').unwrap_or(text),
        Err(e) => {
            let line = lines::line_of_byte(bytes, e.valid_up_to());
            return only(
                line,
                Code::NotUtf8,
                "the file is not valid UTF-8".to_owned(),
            );
        }
    };
    let budget = yaml_budget(limits);
    let depth = budget.depth();
    if let Some(documents) = block::documents(text, &budget) {
        // Plain block YAML: no flow collections to measure, no tags (see `block.rs`).
        let layout = Layout::new(text);
        let mut reader = Reader::new(&layout, limits, &budget);
        for document in documents {
            reader.document(document);
        }
        return reader.finish();
    }
    let scanned = scan::scan(text, depth);
    if let Some(line) = scanned.too_deep {
        let message = format!("lists and mappings nest deeper than {depth} levels");
        return only(line, Code::LimitExceeded, message);
    }
    let layout = Layout::new(text);
    // The first unsafe tag ends the file: that document is reported, and neither it nor any later
    // one is handed to `yaml_serde` (see `Documents::stop_at`).
    let tagged = scanned
        .tags
        .into_iter()
        .next()
        .map(|(line, tag)| (layout.document_of_line(line), line, tag));
    let mut reader = Reader::new(&layout, limits, &budget);
    let stop = tagged.as_ref().map(|(index, _, _)| *index);
    for document in yaml::documents(text, &budget).stop_at(stop) {
        reader.document(document);
    }
    if let Some((index, line, tag)) = tagged {
        let start = layout.document_line(index);
        let rest = if layout.document_line(index + 1) > start {
            " (the rest of the file is not read)"
        } else {
            ""
        };
        let message = format!("unsafe YAML tag `{tag}`: only plain YAML is read{rest}");
        reader.parsed.problems.push(Problem {
            line: Some(line),
            code: Code::UnsafeYamlTag,
            message,
        });
    }
    reader.finish()
}

/// What one file may load, from `limits`: the node and text budget and the nesting depth (never
/// past [`Limits::MAX_NESTING_DEPTH`]), for either loader.
fn yaml_budget(limits: &Limits) -> Budget {
    let depth = limits.nesting_depth.min(Limits::MAX_NESTING_DEPTH);
    Budget::new(limits.yaml_nodes, limits.yaml_text, depth)
}

/// Checks the block loader (`block.rs`) against `yaml_serde` on one file: panics when the block
/// loader accepts the text but loads other documents than `yaml.rs` does. Returns whether it
/// accepted the text. For the `parse_rule` fuzz target and the corpus check; not for building.
#[doc(hidden)]
pub fn check_block_loader(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let limits = Limits::default();
    let Some(fast) = block::documents(text, &yaml_budget(&limits)) else {
        return false;
    };
    let slow_budget = yaml_budget(&limits);
    let slow: Vec<Document> = yaml::documents(text, &slow_budget).collect();
    let loaded = |docs: &[Document]| -> Vec<(usize, Result<Node, yaml::YamlError>, usize)> {
        docs.iter()
            .map(|d| (d.index, d.node.clone(), d.duplicates.len()))
            .collect()
    };
    assert_eq!(
        loaded(&fast),
        loaded(&slow),
        "block loader and yaml_serde differ on {text:?}"
    );
    true
}

impl<'a> Reader<'a> {
    fn new(layout: &'a Layout<'a>, limits: &Limits, budget: &'a Budget) -> Self {
        Reader {
            layout,
            collection: Collection::default(),
            lookups: Cell::new(LINE_LOOKUPS),
            field_length: limits.field_length,
            budget,
            parsed: ParsedFile::default(),
        }
    }

    fn finish(self) -> ParsedFile {
        // The record lives in the cache and the merge for the whole run: a `Vec` grown by `push`
        // keeps room for four rules (1.7 kB) where a file almost always has one.
        let mut parsed = self.parsed;
        parsed.rules.shrink_to_fit();
        parsed.problems.shrink_to_fit();
        parsed
    }
}

/// Reads the documents of one file.
struct Reader<'a> {
    layout: &'a Layout<'a>,
    collection: Collection,
    /// Line look-ups left (see [`LINE_LOOKUPS`]).
    lookups: Cell<usize>,
    field_length: usize,
    budget: &'a Budget,
    parsed: ParsedFile,
}

impl Reader<'_> {
    /// The line of the key at `path` in document `index`, while look-ups last.
    fn key_line(&self, index: usize, path: &[&str]) -> Option<u32> {
        self.lookups.set(self.lookups.get().checked_sub(1)?);
        self.layout.key_line(index, path)
    }

    fn problem(&mut self, line: Option<u32>, code: Code, message: String) {
        self.parsed.problems.push(Problem {
            line,
            code,
            message,
        });
    }

    /// Reads one document: a rule, nothing, or a problem.
    fn document(&mut self, document: Document) {
        let index = document.index;
        let start = self.layout.document_line(index);
        let map = match document.node {
            Ok(Node::Map(map)) => map,
            Ok(_) => return,
            Err(e) => {
                let rest_lost = e.fatal && self.layout.document_line(index + 1) > start;
                let note = if rest_lost {
                    " (the rest of the file cannot be read)"
                } else {
                    ""
                };
                let line = e.line.map_or(start, |line| self.layout.clamp(line));
                let message = match e.code {
                    Code::InvalidYaml => format!("invalid YAML: {}{note}", e.message),
                    _ => format!("{}{note}", e.message),
                };
                self.problem(Some(line), e.code, message);
                return;
            }
        };
        let repeated = document.duplicates.len();
        for dup in document.duplicates.iter().take(MAX_DUPLICATES) {
            self.duplicate(index, start, dup);
        }
        if repeated > MAX_DUPLICATES {
            let message = format!(
                "{} more duplicate keys: the last value of each is used",
                repeated - MAX_DUPLICATES
            );
            self.problem(Some(start), Code::DuplicateDetectionKey, message);
        }
        // A collection copies its global (or previous) document into each rule: that counts.
        if !self.budget.take_nodes(self.collection.copies(&map)) {
            let message = "the file loads more YAML nodes than the limits allow (collection documents merged)".to_owned();
            self.problem(Some(start), Code::LimitExceeded, message);
            return;
        }
        let merged = match self.collection.next(map) {
            Ok(Some(merged)) => merged,
            Ok(None) => return,
            Err(message) => {
                let line = self.key_line(index, &["action"]).unwrap_or(start);
                self.problem(Some(line), Code::InvalidCollection, message);
                return;
            }
        };
        let rule_index = u32::try_from(index).unwrap_or(u32::MAX);
        match rule::read_rule(&merged, rule_index, start, self.field_length) {
            Ok(Some((rule, warnings))) => {
                for w in warnings {
                    let line = self.key_line(index, &w.path).unwrap_or(start);
                    self.problem(Some(line), w.code, w.message);
                }
                let findings = lint::lint(&rule, |key| self.key_line(index, &[key]));
                self.parsed.problems.extend(findings);
                self.parsed.rules.push(rule);
            }
            Ok(None) => {}
            Err(e) => {
                let line = self.key_line(index, &e.path).unwrap_or(start);
                self.problem(Some(line), e.code, e.message);
            }
        }
    }

    /// Reports a key repeated outside the metadata, on the lines where it is written.
    fn duplicate(&mut self, index: usize, start: u32, dup: &yaml::Duplicate) {
        let field = dup
            .path
            .iter()
            .chain(std::iter::once(&dup.key))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(".");
        let lines = match self.lookups.get().checked_sub(1) {
            Some(left) => {
                self.lookups.set(left);
                let path: Vec<&str> = dup.path.iter().map(String::as_str).collect();
                self.layout.key_lines(index, &path, &dup.key)
            }
            None => Vec::new(),
        };
        let (line, message) = match lines.as_slice() {
            [first, .., last] => (
                *last,
                format!(
                    "duplicate key `{field}` (lines {first} and {last}): the last value is used"
                ),
            ),
            _ => (
                start,
                format!("duplicate key `{field}`: the last value is used"),
            ),
        };
        self.problem(Some(line), Code::DuplicateDetectionKey, message);
    }
}
