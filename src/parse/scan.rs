//! Scan: one cheap linear pass over a file's text, before `yaml_serde` sees it, that measures flow
//! nesting and finds YAML tags.
//!
//! It owns the two things libyaml cannot be trusted with on hostile input:
//!
//! - **Flow nesting depth.** libyaml rescans its stack of possible simple keys for every token, one
//!   entry per open `[` or `{`, so a file of `n` nested brackets costs `n²` (100,000 of them took 29 s).
//!   The scan stops at the first bracket past the limit, so such a file costs what the limit allows.
//!   Block nesting (indentation) has no such cost; it is checked on the loaded tree.
//! - **YAML tags.** `yaml_serde` silently drops the `tag:yaml.org,2002:` tags it does not know
//!   (`!!python/object:os.system {…}` loads as a plain mapping), so tags are found here, by their
//!   text, and every tag but PyYAML `safe_load`'s own is reported.
//!
//! The scan knows as much YAML as that needs: quoted scalars (also over several lines), comments,
//! block scalars (`|`, `>`), plain scalars and their continuation lines, and flow collections. It
//! looks at indicators only where a YAML token can start, so `title: a [b]`, `'[['` or a `[` in a
//! block scalar are text, as they are to libyaml.

/// The tags PyYAML's `safe_load` constructs; any other tag is unsafe or unknown.
const SAFE_TAGS: &[&str] = &[
    "!!str",
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!map",
    "!!seq",
    "!!binary",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!merge",
    "!!value",
];

/// What the scan found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The 1-based line of the first bracket that nests flow collections deeper than the limit.
    pub too_deep: Option<u32>,
    /// Tags other than the safe ones, with their 1-based lines, in order.
    pub tags: Vec<(u32, String)>,
    /// How many bytes were looked at: the file's length, or less when it stopped early.
    pub bytes: usize,
}

/// What a line continues from the lines before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// Nothing: the line starts fresh.
    None,
    /// A quoted scalar (`"` or `'`) is open.
    Quote(u8),
    /// A block scalar whose parent is indented this much (`None`: at the document's root).
    Block(Option<usize>),
    /// A plain scalar in block context, on a line indented this much: more indented lines continue it.
    Plain(usize),
}

/// Scans `text`, stopping at the first flow collection nested deeper than `max_depth`.
pub(crate) fn scan(text: &str, max_depth: usize) -> Scan {
    let mut found = Scan::default();
    let mut depth = 0usize;
    let mut carry = Carry::None;
    // In flow context a plain scalar can go on over lines.
    let mut in_plain = false;
    let mut offset = 0usize;
    for (number, raw) in text.split('\n').enumerate() {
        let line_no = u32::try_from(number + 1).unwrap_or(u32::MAX);
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let bytes = line.as_bytes();
        let line_start = offset;
        offset += raw.len() + 1;
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let blank = is_blank(bytes);
        let mut i = 0usize;
        let mut token_start = true;
        match carry {
            Carry::Block(parent) => {
                let marker = is_marker(bytes);
                let inside = match parent {
                    Some(parent) => blank || indent > parent,
                    None => !marker,
                };
                if inside {
                    continue;
                }
                carry = Carry::None;
            }
            Carry::Plain(parent) => {
                if blank {
                    continue;
                }
                if indent > parent && bytes.get(indent) != Some(&b'#') {
                    // A continuation line: text up to a comment.
                    continue;
                }
                carry = Carry::None;
            }
            Carry::Quote(_) | Carry::None => {}
        }
        if carry == Carry::None && depth == 0 {
            in_plain = false;
            if bytes.first() == Some(&b'%') {
                continue;
            }
            if is_marker(bytes) {
                i = 3;
            } else {
                i = indent;
            }
        }
        // Whether the token being read is on a `---` line (a block scalar there is the root).
        let on_marker = is_marker(bytes) && depth == 0 && carry == Carry::None;
        while i < bytes.len() {
            let c = bytes[i];
            if let Carry::Quote(q) = carry {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    carry = Carry::None;
                    token_start = false;
                }
                i += 1;
                continue;
            }
            let after_space = i == 0 || matches!(bytes[i - 1], b' ' | b'\t');
            let next = bytes.get(i + 1).copied();
            let next_ends = next.is_none_or(|n| matches!(n, b' ' | b'\t'));
            match c {
                b' ' | b'\t' => {
                    if !in_plain {
                        token_start = true;
                    }
                }
                b'#' if after_space => break,
                b'[' | b'{' if depth > 0 || (token_start && !in_plain) => {
                    depth += 1;
                    if depth > max_depth {
                        found.too_deep = Some(line_no);
                        found.bytes = line_start + i + 1;
                        return found;
                    }
                    in_plain = false;
                    token_start = true;
                }
                b']' | b'}' if depth > 0 => {
                    depth -= 1;
                    in_plain = false;
                    token_start = false;
                }
                b',' if depth > 0 => {
                    in_plain = false;
                    token_start = true;
                }
                b':' if next_ends || (depth > 0 && next.is_some_and(is_flow_indicator)) => {
                    in_plain = false;
                    token_start = true;
                }
                // In flow context a quoted scalar may follow a JSON-like key's `:` without a space.
                b'"' | b'\'' if (token_start || depth > 0) && !in_plain => carry = Carry::Quote(c),
                b'!' if token_start && !in_plain => {
                    let end = token_end(bytes, i, depth > 0);
                    let tag = &line[i..end];
                    if !SAFE_TAGS.contains(&tag) {
                        found.tags.push((line_no, tag.to_owned()));
                    }
                    i = end;
                    token_start = false;
                    continue;
                }
                b'&' | b'*' if token_start && !in_plain => {
                    i = token_end(bytes, i, depth > 0);
                    token_start = false;
                    continue;
                }
                b'|' | b'>' if depth == 0 && token_start && !in_plain => {
                    carry = Carry::Block((!on_marker).then_some(indent));
                    break;
                }
                b'-' | b'?' if depth == 0 && token_start && !in_plain && next_ends => {
                    token_start = true;
                }
                _ => {
                    if token_start {
                        in_plain = true;
                        token_start = false;
                    }
                }
            }
            i += 1;
        }
        if depth == 0 && carry == Carry::None && in_plain {
            carry = Carry::Plain(indent);
        }
    }
    found.bytes = text.len();
    found
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b' ' | b'\t'))
}

/// Whether a line is a document marker, `---` or `...`, alone or followed by a space.
fn is_marker(bytes: &[u8]) -> bool {
    (bytes.starts_with(b"---") || bytes.starts_with(b"..."))
        && bytes.get(3).is_none_or(|b| matches!(b, b' ' | b'\t'))
}

fn is_flow_indicator(b: u8) -> bool {
    matches!(b, b',' | b'[' | b']' | b'{' | b'}')
}

/// The end of a tag, anchor or alias starting at `start`: the next space (or flow indicator).
fn token_end(bytes: &[u8], start: usize, in_flow: bool) -> usize {
    let verbatim = bytes.get(start + 1) == Some(&b'<');
    let mut end = start + 1;
    while let Some(&b) = bytes.get(end) {
        if verbatim && b == b'>' {
            return end + 1;
        }
        if !verbatim && (matches!(b, b' ' | b'\t') || (in_flow && is_flow_indicator(b))) {
            break;
        }
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, max: usize) -> bool {
        scan(text, max).too_deep.is_none()
    }

    #[test]
    fn flow_nesting_is_measured_and_stops_early() {
        assert!(depth_ok("a: [[1], {b: [2]}]\n", 3));
        assert!(!depth_ok("a: [[1], {b: [[2]]}]\n", 3));
        let deep = format!("title: x\ndetection: {}\n", "[".repeat(1_000_000));
        let found = scan(&deep, 64);
        assert_eq!(found.too_deep, Some(2));
        assert_eq!(found.bytes, "title: x\ndetection: ".len() + 65);
    }

    #[test]
    fn json_like_flow_mappings_cannot_hide_nesting() {
        // Each level opens a `[` for real; the `]` in the string must not close it.
        let level = "[{\"a\":\"]\"},";
        let text = format!("x: {}\n", level.repeat(100));
        assert_eq!(scan(&text, 64).too_deep, Some(1));
        assert!(depth_ok("x: {\"a\":\"[[[[\", 'b':'{{{{'}\n", 1));
    }

    #[test]
    fn brackets_in_text_do_not_count() {
        let text = "title: a [[[[b\ndescription: '[[[['\nq: \"[[[\\\"[[\"\nx: |\n  [[[[\n  [[[[\ny: >-\n  {{{{\nz: text\n  [[[[ continued\n# [[[[\nw: a #[[[[\nv: {a: '[[[[', b: \"{{{{\"}\nu: [a'b, c]\n";
        assert!(depth_ok(text, 1), "{:?}", scan(text, 1));
        // A multi-line quoted scalar.
        assert!(depth_ok("a: '[[\n  [[[['\nb: [x]\n", 1));
        // A root block scalar runs to the next document.
        assert!(depth_ok("--- |\n[[[[\n[[[[\n--- [x]\n", 1));
        assert!(!depth_ok("--- |\n[[[[\n--- [[x]]\n", 1));
    }

    #[test]
    fn tags_are_found_outside_text() {
        let text = "a: !!python/object:os.system {x: 1}\nb: [!!python/name:os.system '', !local x]\nc: '!!python/object'\nd: !!str 5\ne: !<tag:yaml.org,2002:python/object/apply> x\n# !!python/object\nf: |\n  !!python/object\n";
        let found = scan(text, 64);
        let tags: Vec<(u32, &str)> = found.tags.iter().map(|(l, t)| (*l, t.as_str())).collect();
        assert_eq!(
            tags,
            vec![
                (1, "!!python/object:os.system"),
                (2, "!!python/name:os.system"),
                (2, "!local"),
                (5, "!<tag:yaml.org,2002:python/object/apply>"),
            ]
        );
    }
}
