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
//! - **Documents.** Each YAML document is loaded into a tree first (`yaml.rs`), then, for collections,
//!   merged (`collection.rs`), then read into a [`Rule`] (`rule.rs`). A document that cannot be loaded
//!   (malformed YAML, a duplicate mapping key, a non-standard tag `!foo`) or read (a field of the
//!   wrong type, a bad collection action) is one [`Problem`], at the line `yaml_serde` reports or, for
//!   a field, at the line of its key; that document is skipped and the others still count. After a
//!   YAML *syntax* error no later document of the file can be read (libyaml does not resume).
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
//! value. A list or mapping where text is expected is a type error. Text fields are trimmed and are
//! `None` when absent, null or empty. List fields (`references`, `tags`, `falsepositives`,
//! `correlation.rules`) take a list of texts or a single text, trimmed, dropping null and empty
//! entries; `references` is de-duplicated keeping the first occurrence. `related` must be a list of
//! mappings each with a non-empty `id` and `type`.

mod collection;
mod lines;
pub mod lint;
mod rule;
mod yaml;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::findings::Code;

use self::collection::Collection;
use self::lines::Layout;
use self::yaml::{Document, Node};

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
            description: None,
            references: Vec::new(),
            tags: Vec::new(),
            date: None,
            modified: None,
            author: None,
            level: None,
            status: None,
            falsepositives: Vec::new(),
            logsource: LogSource::default(),
            related: Vec::new(),
            correlates: Vec::new(),
        }
    }
}

/// Something wrong with a file or one of its documents. The document is skipped; the build goes on.
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

/// Parses the bytes of one rule file.
///
/// Never panics. Documents that are not Sigma rules (no `title`, or neither `detection` nor `correlation`
/// nor `filter`) are skipped silently. Filter rules are returned with [`RuleKind::Filter`]; the caller decides
/// whether to keep them.
pub fn parse_file(bytes: &[u8]) -> ParsedFile {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.strip_prefix('\u{feff}').unwrap_or(text),
        Err(e) => {
            let line = lines::line_of_byte(bytes, e.valid_up_to());
            let message = "the file is not valid UTF-8".to_owned();
            return ParsedFile {
                rules: Vec::new(),
                problems: vec![Problem {
                    line: Some(line),
                    code: Code::NotUtf8,
                    message,
                }],
            };
        }
    };
    let layout = Layout::new(text);
    let mut collection = Collection::default();
    let mut parsed = ParsedFile::default();
    for document in yaml::documents(text) {
        let index = document.index;
        match read_document(document, &layout, &mut collection) {
            Ok(Some(rule)) => {
                let findings = lint::lint(&rule, |key| layout.key_line(index, &[key]));
                parsed.problems.extend(findings);
                parsed.rules.push(rule);
            }
            Ok(None) => {}
            Err(problem) => parsed.problems.push(problem),
        }
    }
    parsed
}

/// Reads one YAML document of a file as a rule: `Ok(None)` when it is not one.
fn read_document(
    document: Document,
    layout: &Layout<'_>,
    collection: &mut Collection,
) -> Result<Option<Rule>, Problem> {
    let index = document.index;
    let start = layout.document_line(index);
    let problem = |line: Option<u32>, code: Code, message: String| Problem {
        line: Some(line.unwrap_or(start)),
        code,
        message,
    };
    let map = match document.node {
        Ok(Node::Map(map)) => map,
        Ok(_) => return Ok(None),
        Err(e) => {
            let rest_lost = e.fatal && layout.document_line(index + 1) > start;
            let note = if rest_lost {
                " (the rest of the file cannot be read)"
            } else {
                ""
            };
            return Err(problem(
                e.line.map(|line| layout.clamp(line)),
                e.code,
                format!("invalid YAML: {}{note}", e.message),
            ));
        }
    };
    let merged = collection.next(map).map_err(|message| {
        problem(
            layout.key_line(index, &["action"]),
            Code::InvalidCollection,
            message,
        )
    })?;
    let Some(merged) = merged else {
        return Ok(None);
    };
    let rule_index = u32::try_from(index).unwrap_or(u32::MAX);
    rule::read_rule(&merged, rule_index, start)
        .map_err(|e| problem(layout.key_line(index, &e.path), e.code, e.message))
}
