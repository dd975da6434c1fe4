//! Parse: turns the bytes of one rule file into Sigma rule records.
//!
//! This stage owns everything about reading Sigma YAML: UTF-8 decoding, YAML syntax, duplicate keys,
//! Sigma v1 rule collections (`action: global` / `reset` / `repeat`), telling detection, correlation and
//! filter rules apart, and mapping the loosely typed YAML onto [`Rule`]. It knows nothing about git,
//! paths, uuids or MISP: a file's bytes go in, records and problems (with line numbers) come out.
//! Parsing is pure and deterministic, so its results can be cached by content hash.

use serde::{Deserialize, Serialize};

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
    pub description: Option<String>,
    /// `references`, de-duplicated in order.
    pub references: Vec<String>,
    pub tags: Vec<String>,
    /// `date` as written.
    pub date: Option<String>,
    /// `modified` as written.
    pub modified: Option<String>,
    pub author: Option<String>,
    pub level: Option<String>,
    pub status: Option<String>,
    /// `falsepositives`: a single string becomes a one-element list.
    pub falsepositives: Vec<String>,
    pub logsource: LogSource,
    /// Sigma `related` entries.
    pub related: Vec<RelatedRule>,
    /// For correlation rules: `correlation.rules`, the ids or names of the rules it correlates.
    pub correlates: Vec<String>,
}

/// Something wrong with a file or one of its documents. The document is skipped; the build goes on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// 1-based line in the file, where known.
    pub line: Option<u32>,
    pub message: String,
}

/// Everything parsing one file produced: its rules (in document order) and its problems.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedFile {
    pub rules: Vec<Rule>,
    pub problems: Vec<Problem>,
}

/// Parses the bytes of one rule file.
///
/// Never panics. Documents that are not Sigma rules (no `title`, or neither `detection` nor `correlation`
/// nor `filter`) are skipped silently. Filter rules are returned with [`RuleKind::Filter`]; the caller decides
/// whether to keep them.
pub fn parse_file(bytes: &[u8]) -> ParsedFile {
    let _ = bytes;
    ParsedFile::default()
}
