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
use super::{LogSource, RelatedRule, Rule, RuleKind};
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

/// Reads a document as a rule. `Ok(None)`: not a Sigma rule at all (neither a title nor a detection,
/// correlation or filter; skipped silently). Only one of the two is an error.
pub(crate) fn read_rule(map: &Map, index: u32, line: u32) -> Result<Option<Rule>> {
    let kind = if map.get("detection").is_some() {
        Some(RuleKind::Detection)
    } else if map.get("correlation").is_some() {
        Some(RuleKind::Correlation)
    } else if map.get("filter").is_some() {
        Some(RuleKind::Filter)
    } else {
        None
    };
    let title = text(map, &["title"])?;
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
    Ok(Some(Rule {
        index,
        line,
        kind,
        id: text(map, &["id"])?,
        name: text(map, &["name"])?,
        title,
        description: text(map, &["description"])?,
        references: dedup(texts(map, &["references"])?),
        tags: texts(map, &["tags"])?,
        date: text(map, &["date"])?,
        modified: text(map, &["modified"])?,
        author: text(map, &["author"])?,
        level: text(map, &["level"])?,
        status: text(map, &["status"])?,
        falsepositives: texts(map, &["falsepositives"])?,
        logsource: logsource(map)?,
        related: related(map)?,
        correlates: match kind {
            RuleKind::Correlation => correlates(map)?,
            RuleKind::Detection | RuleKind::Filter => Vec::new(),
        },
    }))
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

/// A text field: `None` when absent, null or empty after trimming.
fn text(map: &Map, path: &[&'static str]) -> Result<Option<String>> {
    let Some(node) = lookup(map, path) else {
        return Ok(None);
    };
    scalar_text(node).ok_or_else(|| {
        error(
            path,
            format!("`{}` must be text, not {}", path.join("."), node.kind()),
        )
    })
}

/// A list of texts, or one text as a one-element list; null and empty entries are dropped.
fn texts(map: &Map, path: &[&'static str]) -> Result<Vec<String>> {
    let Some(node) = lookup(map, path) else {
        return Ok(Vec::new());
    };
    let items = match node {
        Node::Seq(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match scalar_text(item) {
            Some(text) => out.extend(text),
            None => {
                let field = path.join(".");
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
    Ok(out)
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

fn logsource(map: &Map) -> Result<LogSource> {
    match map.get("logsource") {
        None | Some(Node::Null) | Some(Node::Map(_)) => Ok(LogSource {
            category: text(map, &["logsource", "category"])?,
            product: text(map, &["logsource", "product"])?,
            service: text(map, &["logsource", "service"])?,
        }),
        Some(other) => Err(error(
            &["logsource"],
            format!("`logsource` must be a mapping, not {}", other.kind()),
        )),
    }
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

fn correlates(map: &Map) -> Result<Vec<String>> {
    match map.get("correlation") {
        None | Some(Node::Null) | Some(Node::Map(_)) => texts(map, &["correlation", "rules"]),
        Some(other) => Err(error(
            &["correlation"],
            format!("`correlation` must be a mapping, not {}", other.kind()),
        )),
    }
}
