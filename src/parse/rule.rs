//! Rule fields: reads one (merged) Sigma document into a [`Rule`], checking the type of every field
//! it reads.
//!
//! It owns telling rules from other documents (a mapping with a non-empty `title` and a `detection`,
//! `correlation` or `filter` key) and the typing rules listed in the [parent module](super): text
//! fields trimmed and `None` when empty, lists of strings accepting one string, scalars that YAML
//! reads as numbers or booleans taken as written, and a list or mapping where text is expected an
//! error naming the field.

use std::collections::HashSet;

use super::yaml::{Map, Node};
use super::{Body, Details, LogSource, RelatedRule, Rule, RuleKind};
use crate::findings::Code;

/// A field of the wrong type: where it is (its key path) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// Key path of the offending field, e.g. `["logsource", "product"]`.
    pub path: Vec<&'static str>,
    pub code: Code,
    pub message: String,
}

type Result<T> = std::result::Result<T, FieldError>;

fn error(path: &[&'static str], message: String) -> FieldError {
    FieldError {
        path: path.to_vec(),
        code: Code::WrongType,
        message,
    }
}

/// Something read but adjusted: a value coerced to Sigma's type, or cut to the length limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldWarning {
    /// Key path of the field.
    pub path: Vec<&'static str>,
    pub code: Code,
    pub message: String,
}

/// The marker that ends a text cut to the length limit.
pub const CUT_MARKER: &str = " [… cut]";

/// Reads the fields of one document, collecting what it adjusts.
struct Reader<'m> {
    map: &'m Map,
    /// The longest text a field may hold, in bytes.
    max_text: usize,
    warnings: Vec<FieldWarning>,
}

/// Reads a document as a rule, with what was adjusted on the way. `Ok(None)`: not a Sigma rule at
/// all (neither a title nor a detection, correlation or filter; skipped silently). Only one of the
/// two is an error. Texts longer than `max_text` bytes (the title excepted: merge shortens it to
/// what a MISP tag holds) are cut at a character boundary and end with [`CUT_MARKER`].
pub(crate) fn read_rule(
    map: &Map,
    index: u32,
    line: u32,
    max_text: usize,
) -> Result<Option<(Rule, Vec<FieldWarning>)>> {
    let kind = if map.get("detection").is_some() {
        Some(RuleKind::Detection)
    } else if map.get("correlation").is_some() {
        Some(RuleKind::Correlation)
    } else if map.get("filter").is_some() {
        Some(RuleKind::Filter)
    } else {
        None
    };
    let mut r = Reader {
        map,
        max_text: usize::MAX,
        warnings: Vec::new(),
    };
    let title = r.text(&["title"])?;
    let missing = |code, message: &str| FieldError {
        path: Vec::new(),
        code,
        message: message.to_string(),
    };
    let (kind, title) = match (kind, title) {
        (Some(kind), Some(title)) => (kind, title),
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return Err(missing(
                Code::MissingDetection,
                "the document has a `title` but no `detection`, `correlation` or `filter`",
            ));
        }
        (Some(_), None) => {
            return Err(missing(
                Code::MissingTitle,
                "the rule has no `title` (or an empty one)",
            ));
        }
    };
    r.max_text = max_text;
    let rule = Rule {
        index,
        line,
        kind,
        id: r.text(&["id"])?,
        name: r.text(&["name"])?,
        title,
        tags: r.texts(&["tags"])?,
        level: r.text(&["level"])?,
        status: r.text(&["status"])?,
        logsource: r.logsource()?,
        related: r.related()?,
        correlates: match kind {
            RuleKind::Correlation => r.correlates()?,
            RuleKind::Detection | RuleKind::Filter => Vec::new(),
        },
        details: Body::new(Details {
            description: r.text(&["description"])?,
            references: dedup(r.texts(&["references"])?),
            date: r.text(&["date"])?,
            modified: r.text(&["modified"])?,
            author: r.text(&["author"])?,
            falsepositives: r.texts(&["falsepositives"])?,
        }),
    };
    Ok(Some((rule, r.warnings)))
}

/// The node at a key path, if every step is a mapping that has the key.
fn lookup<'m>(map: &'m Map, path: &[&str]) -> Option<&'m Node> {
    let (last, parents) = path.split_last()?;
    let mut map = map;
    for key in parents {
        match map.get(key)? {
            Node::Map(inner) => map = inner,
            _ => return None,
        }
    }
    map.get(last)
}

/// A scalar as trimmed text; `None` for null or empty.
fn scalar_text(node: &Node) -> Option<Option<String>> {
    match node {
        Node::Null => Some(None),
        Node::Str(s) | Node::Plain(s) => {
            let trimmed = s.trim();
            Some((!trimmed.is_empty()).then(|| trimmed.to_owned()))
        }
        Node::Seq(_) | Node::Map(_) => None,
    }
}

/// `text` cut to at most `max` bytes at a character boundary, ending with [`CUT_MARKER`]; `None`
/// when it fits.
pub(crate) fn cut(text: &str, max: usize) -> Option<String> {
    if text.len() <= max {
        return None;
    }
    let mut end = max.saturating_sub(CUT_MARKER.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}{CUT_MARKER}", text[..end].trim_end()))
}

impl Reader<'_> {
    fn warn(&mut self, path: &[&'static str], code: Code, message: String) {
        self.warnings.push(FieldWarning {
            path: path.to_vec(),
            code,
            message,
        });
    }

    /// Cuts a text to the length limit, with a warning.
    fn capped(&mut self, path: &[&'static str], text: String) -> String {
        match cut(&text, self.max_text) {
            Some(short) => {
                let message = format!(
                    "`{}` is {} bytes, more than the {} MISP stores; it is cut",
                    path.join("."),
                    text.len(),
                    self.max_text
                );
                self.warn(path, Code::FieldTooLong, message);
                short
            }
            None => text,
        }
    }

    /// A text field: `None` when absent, null or empty after trimming.
    fn text(&mut self, path: &[&'static str]) -> Result<Option<String>> {
        let Some(node) = lookup(self.map, path) else {
            return Ok(None);
        };
        let field = path.join(".");
        let text = scalar_text(node)
            .ok_or_else(|| error(path, format!("`{field}` must be text, not {}", node.kind())))?;
        if let (Node::Plain(written), Some(_)) = (node, &text) {
            let message = format!(
                "`{field}` is {} (`{}`), not text; it is used as written",
                node.kind(),
                written.trim()
            );
            self.warn(path, Code::CoercedType, message);
        }
        Ok(text.map(|text| self.capped(path, text)))
    }

    /// A list of texts, or one text as a one-element list; null and empty entries are dropped.
    fn texts(&mut self, path: &[&'static str]) -> Result<Vec<String>> {
        let Some(node) = lookup(self.map, path) else {
            return Ok(Vec::new());
        };
        let field = path.join(".");
        let items = match node {
            Node::Seq(items) => items.as_slice(),
            Node::Null => &[],
            single => {
                if matches!(scalar_text(single), Some(Some(_))) {
                    let message = format!(
                        "`{field}` is one text, not a list; it is used as a one-element list"
                    );
                    self.warn(path, Code::CoercedType, message);
                }
                std::slice::from_ref(single)
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let mut coerced = None;
        for (i, item) in items.iter().enumerate() {
            match scalar_text(item) {
                Some(text) => {
                    if let (Node::Seq(_), Node::Plain(written), Some(_)) = (node, item, &text) {
                        coerced.get_or_insert((i + 1, written.trim().to_owned()));
                    }
                    out.extend(text.map(|text| self.capped(path, text)));
                }
                None => {
                    let message = match node {
                        Node::Seq(_) => format!(
                            "`{field}` must be a list of texts, but item {} is {}",
                            i + 1,
                            item.kind()
                        ),
                        _ => format!(
                            "`{field}` must be a list of texts or one text, not {}",
                            item.kind()
                        ),
                    };
                    return Err(error(path, message));
                }
            }
        }
        if let Some((n, written)) = coerced {
            let message = format!(
                "`{field}` item {n} is a number or boolean (`{written}`), not text; it is used as written"
            );
            self.warn(path, Code::CoercedType, message);
        }
        Ok(out)
    }

    fn logsource(&mut self) -> Result<LogSource> {
        match self.map.get("logsource") {
            None | Some(Node::Null) | Some(Node::Map(_)) => Ok(LogSource {
                category: self.text(&["logsource", "category"])?,
                product: self.text(&["logsource", "product"])?,
                service: self.text(&["logsource", "service"])?,
            }),
            Some(other) => Err(error(
                &["logsource"],
                format!("`logsource` must be a mapping, not {}", other.kind()),
            )),
        }
    }

    fn related(&mut self) -> Result<Vec<RelatedRule>> {
        related(self.map)
    }

    fn correlates(&mut self) -> Result<Vec<String>> {
        match self.map.get("correlation") {
            None | Some(Node::Null) | Some(Node::Map(_)) => self.texts(&["correlation", "rules"]),
            Some(other) => Err(error(
                &["correlation"],
                format!("`correlation` must be a mapping, not {}", other.kind()),
            )),
        }
    }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

fn related(map: &Map) -> Result<Vec<RelatedRule>> {
    const PATH: &[&str] = &["related"];
    let items = match map.get("related") {
        None | Some(Node::Null) => return Ok(Vec::new()),
        Some(Node::Seq(items)) => items,
        Some(other) => {
            return Err(error(
                PATH,
                format!("`related` must be a list, not {}", other.kind()),
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        let Node::Map(entry) = item else {
            return Err(error(
                PATH,
                format!("`related` item {n} must be a mapping, not {}", item.kind()),
            ));
        };
        let field = |key: &str| match entry.get(key).map(|node| (node, scalar_text(node))) {
            Some((_, Some(Some(value)))) => Ok(value),
            Some((node, None)) => Err(error(
                PATH,
                format!(
                    "`related` item {n}: `{key}` must be text, not {}",
                    node.kind()
                ),
            )),
            None | Some((_, Some(None))) => {
                Err(error(PATH, format!("`related` item {n} has no `{key}`")))
            }
        };
        out.push(RelatedRule {
            id: field("id")?,
            kind: field("type")?,
        });
    }
    Ok(out)
}
