//! Block YAML: a loader for the plain block-style YAML that Sigma rules are written in, which gives
//! the same [`Document`]s as `yaml.rs` (libyaml through `yaml_serde`) in a fraction of its time, or
//! declines the file.
//!
//! It reads block mappings and sequences (indentless sequences under a key included), plain scalars
//! on one line, single- and double-quoted scalars on one line, literal and folded block scalars
//! (`|`, `|-`, `>`, `>-`), comments and `---` between documents. Anything else makes it decline the
//! whole file, which is then loaded by `yaml.rs` exactly as before, so every message, line and
//! limit comes from one place:
//!
//! - flow collections (`[`, `{`), anchors, aliases, tags, merge keys (`<<`), complex keys (`?`),
//!   directives, `...`, empty documents or a file without a mapping or list at its root;
//! - scalars over several lines (plain or quoted), block scalars with an indentation indicator,
//!   `+` chomping, leading blank lines or lines of only spaces longer than their indentation, and
//!   folded scalars with more-indented lines;
//! - tabs, carriage returns, the line breaks libyaml knows beyond `\n` (NEL, LS, PS), byte order
//!   marks and the characters libyaml refuses (control characters);
//! - a repeated key, a key longer than libyaml allows a simple key, a plain scalar that YAML reads
//!   as a number or boolean written otherwise than its canonical form (`0x1F`, `1.10`, `True`:
//!   `yaml.rs` reads those twice to keep the text as written), nesting past the limit, a file that
//!   comes near the node or text budget;
//! - anything that would be a YAML error.
//!
//! Plain scalars are typed with `yaml_serde`'s own rules (copied below: null, booleans, integers in
//! four bases, floats), so a scalar is a [`Node::Str`], [`Node::Plain`] or [`Node::Null`] exactly as
//! the visitor in `yaml.rs` would make it. The unit tests, the `parse_rule` fuzz target (through
//! [`super::check_block_loader`]) and CI over the corpus's rules check that whatever this loader
//! accepts, `yaml.rs` loads the same.

use super::yaml::{Budget, Document, Map, Node};

/// libyaml's longest simple key, in bytes.
const MAX_KEY: usize = 1024;

/// The documents of `text` (without its byte order mark), or `None` when the file is not the
/// block YAML this loader reads. Takes the nodes and text it loads from `budget`, as `yaml.rs` does;
/// declines, taking nothing, when the file might come near the budget.
pub(crate) fn documents(text: &str, budget: &Budget) -> Option<Vec<Document>> {
    if !plain_characters(text) {
        return None;
    }
    let lines = lines(text);
    let mut documents = Vec::new();
    let (mut nodes, mut chars) = (0usize, 0usize);
    for (index, range) in split(text, &lines)?.into_iter().enumerate() {
        let mut doc = Doc {
            text,
            lines: lines[range].to_vec(),
            pos: 0,
            nodes: 0,
            chars: 0,
            depth: 0,
            max_depth: budget.depth(),
        };
        let node = doc.block(-1, false)?;
        doc.skip();
        if doc.pos < doc.lines.len() || !matches!(node, Node::Map(_) | Node::Seq(_)) {
            return None;
        }
        nodes += doc.nodes;
        chars += doc.chars;
        documents.push(Document {
            index,
            node: Ok(node),
            duplicates: Vec::new(),
        });
    }
    // A collection copies its `global` document into each rule (see `Reader::document`): with
    // room for every node once per document and once more, neither loader can reach the budget.
    let room = nodes.checked_mul(documents.len() + 1)?;
    if !budget.fits(room, chars) || !budget.take_all(nodes, chars) {
        return None;
    }
    Some(documents)
}

/// Whether `text` holds only characters this loader reads: no tab, carriage return or other control
/// character, none of libyaml's other line breaks, no byte order mark, nothing libyaml refuses.
fn plain_characters(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.iter().any(|&b| (b < 0x20 && b != b'\n') || b == 0x7f) {
        return false;
    }
    text.is_ascii()
        || text.chars().all(|c| {
            let c = u32::from(c);
            c < 0x80
                || ((0xa0..=0xd7ff).contains(&c) && c != 0x2028 && c != 0x2029)
                || ((0xe000..=0xfffd).contains(&c) && c != 0xfeff)
                || c >= 0x10000
        })
}

/// One line of text: where it starts, where its content starts (after its indentation, or after a
/// list entry's `- ` once that is read), where it ends (before its `\n`).
#[derive(Clone, Copy, Debug)]
struct Line {
    start: usize,
    at: usize,
    end: usize,
}

fn lines(text: &str) -> Vec<Line> {
    let bytes = text.as_bytes();
    let mut lines = Vec::with_capacity(bytes.len() / 32 + 1);
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| start + i);
        let indent = bytes[start..end].iter().take_while(|&&b| b == b' ').count();
        lines.push(Line {
            start,
            at: start + indent,
            end,
        });
        start = end + 1;
    }
    lines
}

/// The line ranges of the documents, split at `---`; `None` for a marker with content after it,
/// `...`, a directive or an empty document.
fn split(text: &str, lines: &[Line]) -> Option<Vec<std::ops::Range<usize>>> {
    let mut documents = Vec::new();
    let (mut first, mut content, mut marker) = (0, false, false);
    for (i, line) in lines.iter().enumerate() {
        let s = &text[line.start..line.end];
        if s.starts_with("---") || s.starts_with("...") || s.starts_with('%') {
            let after = s.get(3..).unwrap_or_default();
            if !s.starts_with("---")
                || !(after.is_empty() || after.starts_with(' '))
                || !is_blank_or_comment(after.trim_start_matches(' '))
            {
                return None;
            }
            if content {
                documents.push(first..i);
            } else if marker {
                // An empty document between two markers.
                return None;
            }
            (first, content, marker) = (i + 1, false, true);
        } else if !is_comment_line(text, line) {
            content = true;
        }
    }
    if !content {
        return None;
    }
    documents.push(first..lines.len());
    Some(documents)
}

fn is_blank_or_comment(s: &str) -> bool {
    s.is_empty() || s.starts_with('#')
}

/// A blank line or one holding only a comment.
fn is_comment_line(text: &str, line: &Line) -> bool {
    is_blank_or_comment(&text[line.at..line.end])
}

/// One document being loaded.
struct Doc<'t> {
    text: &'t str,
    lines: Vec<Line>,
    /// The line being read.
    pos: usize,
    /// Nodes and scalar bytes loaded so far.
    nodes: usize,
    chars: usize,
    depth: usize,
    max_depth: usize,
}

impl<'t> Doc<'t> {
    /// Moves past blank and comment lines.
    fn skip(&mut self) {
        while self
            .lines
            .get(self.pos)
            .is_some_and(|l| is_comment_line(self.text, l))
        {
            self.pos += 1;
        }
    }

    /// The column where the current line's content starts.
    fn col(&self) -> Option<usize> {
        self.lines.get(self.pos).map(|l| l.at - l.start)
    }

    /// The current line's content.
    fn rest(&self) -> &'t str {
        let l = self.lines[self.pos];
        &self.text[l.at..l.end]
    }

    /// A node on the lines after the current one, more indented than `parent` (or, when
    /// `indentless`, a list at `parent`'s own column); null when there is none.
    fn block(&mut self, parent: isize, indentless: bool) -> Option<Node> {
        self.skip();
        let Some(col) = self.col() else {
            return self.scalar(Node::Null);
        };
        let rest = self.rest();
        let entry = is_entry(rest);
        let col = col as isize;
        if col > parent || (indentless && col == parent && entry) {
            if entry { self.seq(col) } else { self.map(col) }
        } else {
            self.scalar(Node::Null)
        }
    }

    /// Moves to the next content line of a collection whose entries are at column `col`: true when
    /// it is at that column, false when the collection has ended (no more lines, or one further
    /// left), `None` (decline) when it is further right.
    fn next_at(&mut self, col: isize) -> Option<bool> {
        self.skip();
        let Some(c) = self.col() else {
            return Some(false);
        };
        match (c as isize).cmp(&col) {
            std::cmp::Ordering::Less => Some(false),
            std::cmp::Ordering::Equal => Some(true),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// After a scalar in a collection at column `col`: the next content line must not be more
    /// indented, which would continue the scalar, or be an error.
    fn after_scalar(&mut self, col: isize) -> Option<()> {
        self.skip();
        self.col().is_none_or(|c| c as isize <= col).then_some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.nodes += 1;
        self.depth += 1;
        (self.depth <= self.max_depth).then_some(())
    }

    fn scalar(&mut self, node: Node) -> Option<Node> {
        self.nodes += 1;
        if let Node::Str(s) | Node::Plain(s) = &node {
            self.chars += s.len();
        }
        Some(node)
    }

    /// A mapping whose keys are at column `col`, from the current line.
    fn map(&mut self, col: isize) -> Option<Node> {
        self.enter()?;
        let mut map = Map::default();
        while self.next_at(col)? {
            let rest = self.rest();
            if is_entry(rest) {
                break;
            }
            let at = self.lines[self.pos].at;
            let (key, value_at) = key(rest)?;
            let key = self.scalar(key)?;
            if matches!(&key, Node::Str(k) if k == "<<") || map.iter().any(|(k, _)| *k == key) {
                return None;
            }
            let value = self.value(col, at + value_at, true)?;
            map.push(key, value);
        }
        self.depth -= 1;
        Some(Node::Map(map))
    }

    /// A list whose entries' `-` are at column `col`, from the current line.
    fn seq(&mut self, col: isize) -> Option<Node> {
        self.enter()?;
        let mut items = Vec::new();
        while self.next_at(col)? {
            let rest = self.rest();
            if !is_entry(rest) {
                break;
            }
            let after = 1 + rest[1..].bytes().take_while(|&b| b == b' ').count();
            let rest = &rest[after..];
            let line = &mut self.lines[self.pos];
            line.at += after;
            let (at, inner) = (line.at, (line.at - line.start) as isize);
            let item = if key(rest).is_some() && !is_entry(rest) {
                // `- key: value`: a mapping whose keys are at the column of this one.
                self.map(inner)?
            } else {
                self.value(col, at, false)?
            };
            items.push(item);
        }
        self.depth -= 1;
        Some(Node::Seq(items))
    }

    /// The value that starts at byte `at` of the current line, in a collection at column `col`: a
    /// scalar, or (when the line ends there) a node on the next lines. Moves past it.
    fn value(&mut self, col: isize, at: usize, in_map: bool) -> Option<Node> {
        let end = self.lines[self.pos].end;
        let rest = &self.text[at..end];
        if is_blank_or_comment(rest) {
            self.pos += 1;
            return self.block(col, in_map);
        }
        let node = match rest.as_bytes()[0] {
            b'|' | b'>' => return self.block_scalar(col, rest),
            b'\'' | b'"' => {
                let (text, used) = quoted(rest)?;
                if !is_blank_or_comment(trailing(&rest[used..])?) {
                    return None;
                }
                Node::Str(text)
            }
            _ => {
                let text = plain_value(rest)?;
                typed(text)?
            }
        };
        self.pos += 1;
        self.after_scalar(col)?;
        self.scalar(node)
    }

    /// A block scalar whose header `rest` is on the current line, in a collection at column `col`.
    fn block_scalar(&mut self, col: isize, rest: &str) -> Option<Node> {
        let folded = rest.starts_with('>');
        let header = &rest[1..];
        let (strip, header) = match header.as_bytes().first() {
            Some(b'-') => (true, &header[1..]),
            _ => (false, header),
        };
        if !header.is_empty() && !header.starts_with(' ') {
            return None;
        }
        if !is_blank_or_comment(header.trim_start_matches(' ')) {
            return None;
        }
        self.pos += 1;
        let first = self.lines.get(self.pos)?;
        let indent = first.at - first.start;
        if first.at == first.end || indent as isize <= col {
            // Leading blank lines, or an empty block scalar.
            return None;
        }
        // The content lines (`None` for an empty one), up to the first line less indented.
        let mut content: Vec<Option<&str>> = Vec::new();
        while let Some(l) = self.lines.get(self.pos) {
            let s = &self.text[l.start..l.end];
            if l.at == l.end {
                if s.len() > indent {
                    return None;
                }
                content.push(None);
            } else if l.at - l.start >= indent {
                content.push(Some(&s[indent..]));
            } else {
                break;
            }
            self.pos += 1;
        }
        while content.last() == Some(&None) {
            content.pop();
        }
        // The last line must end with a line break (clipping at the end of the file differs).
        let last = self.lines[self.pos - 1];
        if last.end == self.text.len() {
            return None;
        }
        let mut text = String::new();
        let mut blank = 0;
        for (i, line) in content.iter().enumerate() {
            match line {
                None => blank += 1,
                Some(line) => {
                    if i > 0 {
                        if folded {
                            if line.starts_with(' ') {
                                return None;
                            }
                            if blank == 0 {
                                text.push(' ');
                            }
                        } else {
                            text.push('\n');
                        }
                        text.extend(std::iter::repeat_n('\n', blank));
                    }
                    blank = 0;
                    text.push_str(line);
                }
            }
        }
        if folded
            && content
                .first()
                .is_some_and(|l| l.is_some_and(|l| l.starts_with(' ')))
        {
            return None;
        }
        if !strip {
            text.push('\n');
        }
        self.after_scalar(col)?;
        self.scalar(Node::Str(text))
    }
}

/// Whether a line's content is a list entry: `-` alone or followed by a space.
fn is_entry(rest: &str) -> bool {
    rest == "-" || rest.starts_with("- ")
}

/// The key at the start of `rest` and where its value starts (after `:` and spaces), or `None`
/// when `rest` does not start with a simple key this loader reads.
fn key(rest: &str) -> Option<(Node, usize)> {
    let bytes = rest.as_bytes();
    let (node, colon) = match bytes.first()? {
        b'\'' | b'"' => {
            let (text, used) = quoted(rest)?;
            (Node::Str(text), used)
        }
        _ => {
            let colon = find_colon(rest)?;
            let text = rest[..colon].trim_end_matches(' ');
            if !starts_plain(text) {
                return None;
            }
            (typed(text)?, colon)
        }
    };
    if colon > MAX_KEY || bytes.get(colon) != Some(&b':') {
        return None;
    }
    let after = colon + 1;
    match bytes.get(after) {
        None => Some((node, after)),
        Some(b' ') => {
            let spaces = bytes[after..].iter().take_while(|&&b| b == b' ').count();
            Some((node, after + spaces))
        }
        Some(_) => None,
    }
}

/// Where the `:` that ends a plain key is: the first one followed by a space or the end of the line,
/// unless a comment starts before it.
fn find_colon(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b':' if matches!(bytes.get(i + 1), None | Some(b' ')) => return Some(i),
            b'#' if i > 0 && bytes[i - 1] == b' ' => return None,
            _ => {}
        }
    }
    None
}

/// Whether a plain scalar may start with `text`'s first character (in block context).
fn starts_plain(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes.first() {
        None => false,
        Some(b'-') => !matches!(bytes.get(1), None | Some(b' ')),
        Some(c) => !b"?:,[]{}#&*!|>'\"%@`".contains(c),
    }
}

/// A plain scalar value that fills the rest of its line (up to a comment), trimmed; `None` when it
/// cannot start a plain scalar or holds `: ` (which YAML refuses there).
fn plain_value(rest: &str) -> Option<&str> {
    if !starts_plain(rest) {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b':' if matches!(bytes.get(i + 1), None | Some(b' ')) => return None,
            b'#' if bytes[i - 1] == b' ' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    Some(rest[..end].trim_end_matches(' '))
}

/// What follows a quoted scalar on its line, without its leading spaces; `None` when a comment
/// starts without a space before it.
fn trailing(after: &str) -> Option<&str> {
    let trimmed = after.trim_start_matches(' ');
    (!trimmed.starts_with('#') || trimmed.len() < after.len()).then_some(trimmed)
}

/// A quoted scalar at the start of `rest`, closed on the same line: its text and the bytes it took.
fn quoted(rest: &str) -> Option<(String, usize)> {
    let quote = rest.as_bytes()[0];
    let mut text = String::new();
    let mut chars = rest[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if quote == b'\'' => {
                if rest[1 + i + 1..].starts_with('\'') {
                    chars.next();
                    text.push('\'');
                } else {
                    return Some((text, 1 + i + 1));
                }
            }
            '"' if quote == b'"' => return Some((text, 1 + i + 1)),
            '\\' if quote == b'"' => {
                let (_, e) = chars.next()?;
                let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| {
                    let mut value = 0u32;
                    for _ in 0..n {
                        value = value * 16 + chars.next()?.1.to_digit(16)?;
                    }
                    char::from_u32(value)
                };
                text.push(match e {
                    '0' => '\0',
                    'a' => '\x07',
                    'b' => '\x08',
                    't' => '\t',
                    'n' => '\n',
                    'v' => '\x0b',
                    'f' => '\x0c',
                    'r' => '\r',
                    'e' => '\x1b',
                    ' ' => ' ',
                    '"' => '"',
                    '/' => '/',
                    '\\' => '\\',
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' => hex(&mut chars, 2)?,
                    'u' => hex(&mut chars, 4)?,
                    'U' => hex(&mut chars, 8)?,
                    _ => return None,
                });
            }
            c => text.push(c),
        }
    }
    None
}

/// A plain scalar as `yaml.rs` loads it: null, a string, or a number or boolean whose text is its
/// canonical form; `None` for a number or boolean written otherwise.
fn typed(text: &str) -> Option<Node> {
    match resolve(text) {
        Resolved::Null => Some(Node::Null),
        Resolved::Str => Some(Node::Str(text.to_owned())),
        Resolved::Canonical(canonical) => (canonical == text).then_some(Node::Plain(canonical)),
    }
}

enum Resolved {
    Null,
    Str,
    /// A boolean or number, in the form `yaml.rs`'s visitor writes it.
    Canonical(String),
}

/// Types a plain scalar as `yaml_serde` 0.10 does (`visit_untagged_scalar` in its `de.rs`): null,
/// booleans, integers (unsigned, negative, in bases 16, 8, 2 and 10, as u64, i64, u128, i128), then
/// finite floats; everything else is a string.
fn resolve(v: &str) -> Resolved {
    if v.is_empty() || matches!(v, "null" | "Null" | "NULL" | "~") {
        return Resolved::Null;
    }
    // Only these can start a boolean or a number YAML reads (Rust's float parser also takes `inf`
    // and `nan`, which `yaml_serde` refuses as not finite).
    if !matches!(
        v.as_bytes()[0],
        b'0'..=b'9' | b'+' | b'-' | b'.' | b't' | b'T' | b'f' | b'F'
    ) {
        return Resolved::Str;
    }
    match v {
        "true" | "True" | "TRUE" => return Resolved::Canonical("true".into()),
        "false" | "False" | "FALSE" => return Resolved::Canonical("false".into()),
        _ => {}
    }
    if let Some(int) = unsigned(v, u64::from_str_radix) {
        return Resolved::Canonical(int.to_string());
    }
    if let Some(int) = negative(v, i64::from_str_radix) {
        return Resolved::Canonical(int.to_string());
    }
    if let Some(int) = unsigned(v, u128::from_str_radix) {
        return Resolved::Canonical(int.to_string());
    }
    if let Some(int) = negative(v, i128::from_str_radix) {
        return Resolved::Canonical(int.to_string());
    }
    if !digits_but_not_number(v)
        && let Some(float) = float(v)
    {
        return Resolved::Canonical(float.to_string());
    }
    Resolved::Str
}

type Radix<T> = fn(&str, u32) -> Result<T, std::num::ParseIntError>;

fn unsigned<T>(scalar: &str, from_str_radix: Radix<T>) -> Option<T> {
    let unpositive = scalar.strip_prefix('+').unwrap_or(scalar);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unpositive.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Ok(int) = from_str_radix(rest, radix) {
                return Some(int);
            }
        }
    }
    if unpositive.starts_with(['+', '-']) || digits_but_not_number(scalar) {
        return None;
    }
    from_str_radix(unpositive, 10).ok()
}

fn negative<T>(scalar: &str, from_str_radix: Radix<T>) -> Option<T> {
    for (prefix, radix) in [("-0x", 16), ("-0o", 8), ("-0b", 2)] {
        if let Some(rest) = scalar.strip_prefix(prefix)
            && let Ok(int) = from_str_radix(&format!("-{rest}"), radix)
        {
            return Some(int);
        }
    }
    if digits_but_not_number(scalar) {
        return None;
    }
    from_str_radix(scalar, 10).ok()
}

fn float(scalar: &str) -> Option<f64> {
    let unpositive = match scalar.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => scalar,
    };
    if matches!(unpositive, ".inf" | ".Inf" | ".INF") {
        return Some(f64::INFINITY);
    }
    if matches!(scalar, "-.inf" | "-.Inf" | "-.INF") {
        return Some(f64::NEG_INFINITY);
    }
    if matches!(scalar, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    unpositive.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Leading zeros followed by digits: a string in YAML 1.2.
fn digits_but_not_number(scalar: &str) -> bool {
    let scalar = scalar.strip_prefix(['-', '+']).unwrap_or(scalar);
    scalar.len() > 1 && scalar.starts_with('0') && scalar[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::check_block_loader;

    /// Texts the block loader must accept, and load as `yaml_serde` does.
    const ACCEPTED: &[&str] = &[
        "title: t\nid: 1\n",
        "# a comment\n---\ntitle: t # trailing\ndetection:\n    sel:\n        A|contains:\n            - 'x y'\n            - \"a\\\\b\\\"c\\u00e9\\x41\"\n            - -enc\n    condition: sel\n",
        "a:\n- x\n- y\nb: 2024-01-01\nc: 2024/01/01\nd: 4688\ne: -1\nf: 1.5\ng: true\nh: ~\ni:\nj: null\nk: 'it''s'\nl: ''\n",
        "description: |\n    line one\n      more\n\n    line three\nnext: 1\n",
        "description: |-\n  a\n  b\n\n\nnext: x\n",
        "description: >\n  folded\n  text\n\n  para\nnext: x\n",
        "description: >-\n  folded\n  text\n# comment\n",
        "- a: 1\n  b:\n  - c\n  - d: e\n    f: g\n-\n  h: i\n",
        "a: http://x/y:z\nb: a#b\nc: x:y\n\"quoted key\": 1\n'q': 2\n~: null\n1: one\n",
        "title: a\n---\ntitle: b\n---\ntitle: c\n",
        "x: \u{e9}t\u{e9} \u{1f600}\n",
        "a:   spaced   value   \nb: 18446744073709551616\nc: 0\nd: 00\ne: -12\n",
        "a:\n  # comment more indented\n  b: 1\n# comment less indented\n  c: 2\n",
        "list:\n  -   spaced: 1\n      more: 2\n",
    ];

    /// Texts the block loader must decline (they are loaded by `yaml.rs`).
    const DECLINED: &[&str] = &[
        "",
        "# only a comment\n",
        "a: [1, 2]\n",
        "a: {b: 1}\n",
        "a: &x 1\nb: *x\n",
        "a: !foo bar\n",
        "a: 0x1F\n",
        "a: 1.10\n",
        "a: True\n",
        "a: +1\n",
        "a: 1\na: 2\n",
        "a:\n  <<: {b: 1}\n",
        "a: multi\n  line\n",
        "a: 'multi\n  line'\n",
        "a: |2\n  x\n",
        "a: |+\n  x\n\n",
        "a: |\n\n  x\n",
        "a: |\n  x",
        "a: >\n  x\n    more\n",
        "a:\tb\n",
        "a: b\r\n",
        "a: b\n---\n",
        "a: b\n---\n---\nc: d\n",
        "a: b\n...\n",
        "%YAML 1.2\n---\na: b\n",
        "--- a: b\n",
        "plain scalar\n",
        "a: b: c\n",
        "? a\n: b\n",
        "a: \"\\q\"\n",
        "a: x\u{85}y\n",
        "a: 1\n  b: 2\n",
        "- - nested\n",
        "a: -0\n",
    ];

    #[test]
    fn accepted_texts_load_as_yaml_serde_loads_them() {
        for text in ACCEPTED {
            assert!(check_block_loader(text.as_bytes()), "declined {text:?}");
        }
    }

    #[test]
    fn declined_texts_are_left_to_yaml_serde() {
        for text in DECLINED {
            assert!(!check_block_loader(text.as_bytes()), "accepted {text:?}");
        }
    }

    #[test]
    fn block_scalars_and_escapes_load_as_written() {
        let budget = super::Budget::new(usize::MAX, usize::MAX, 64);
        let docs = super::documents(
            "a: |\n  x\n\n  y\nb: >-\n  p\n  q\n\n  r\nc: \"\\t\\u00e9\"\n",
            &budget,
        )
        .unwrap();
        let Ok(super::Node::Map(map)) = &docs[0].node else {
            panic!("{docs:?}")
        };
        let text = |key| match map.get(key) {
            Some(super::Node::Str(s)) => s.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(text("a"), "x\n\ny\n");
        assert_eq!(text("b"), "p q\nr");
        assert_eq!(text("c"), "\t\u{e9}");
    }

    #[test]
    fn a_file_near_the_budget_is_declined_and_takes_nothing() {
        let text = "a:\n- 1\n- 2\n- 3\n";
        // Five nodes: the mapping, its key, the list and its three items make six.
        let budget = super::Budget::new(11, usize::MAX, 64);
        assert!(super::documents(text, &budget).is_none());
        assert!(budget.fits(11, 0));
        let budget = super::Budget::new(12, usize::MAX, 64);
        assert!(super::documents(text, &budget).is_some());
        assert!(budget.fits(6, 0) && !budget.fits(7, 0));
        let deep = super::Budget::new(usize::MAX, usize::MAX, 1);
        assert!(super::documents(text, &deep).is_none());
    }

    /// CI points `SIGMA_GALAXY_YAML_DIR` at the corpus's rules (every version of every file): the block
    /// loader must load each file it accepts as `yaml_serde` does, and accept most of them.
    #[test]
    #[ignore = "needs SIGMA_GALAXY_YAML_DIR, a folder of YAML files"]
    fn block_loader_agrees_with_yaml_serde_on_a_folder() {
        let dir = std::env::var_os("SIGMA_GALAXY_YAML_DIR").expect("SIGMA_GALAXY_YAML_DIR");
        let mut stack = vec![std::path::PathBuf::from(dir)];
        let (mut files, mut accepted) = (0usize, 0usize);
        let mut declined = Vec::new();
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            files += 1;
            if check_block_loader(&bytes) {
                accepted += 1;
            } else {
                declined.push(path);
            }
        }
        declined.sort();
        for path in declined.iter().take(20) {
            eprintln!("declined: {}", path.display());
        }
        eprintln!("block loader: {accepted} of {files} files accepted");
        assert!(files > 0);
        assert!(accepted * 10 >= files * 9, "{accepted} of {files} accepted");
    }
}
