//! Lines: finds the line numbers `yaml_serde` does not report, by a cheap scan of the file's text.
//!
//! It owns two look-ups: where each YAML document of a file starts (the line after its `---` marker; for a
//! document without one, line 1 or the line after the previous document's `...`) and on which line a
//! rule field's key is written, for messages about a field of the wrong type. The scan knows only as much YAML as that
//! needs: `---` and `...` markers at the start of a line, comments, indentation and `key:` lines.

/// A file's lines and where its documents start.
#[derive(Debug)]
pub(crate) struct Layout<'a> {
    lines: Vec<&'a str>,
    documents: Vec<Start>,
}

/// Where one document starts.
#[derive(Debug, Clone, Copy)]
struct Start {
    /// 0-based line of its first text (its `---` marker, if it has one).
    first: usize,
    /// 1-based line reported as its start: the line after a bare `---`, else its first line (1 for a
    /// document without `---` at the start of the file).
    line: u32,
}

impl<'a> Layout<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let mut documents = Vec::new();
        // At the start of the stream and after `...`, content without `---` starts a document, which
        // then starts right there (comments and blank lines before its content included).
        let mut bare_start = Some(0);
        for (i, line) in lines.iter().enumerate() {
            if let Some(rest) = marker(line, "---") {
                let own_line = rest.trim().is_empty() || rest.trim_start().starts_with('#');
                let line = if own_line { i + 2 } else { i + 1 };
                documents.push(Start {
                    first: i,
                    line: to_u32(line),
                });
                bare_start = None;
            } else if marker(line, "...").is_some() {
                bare_start = Some(i + 1);
            } else if let Some(first) =
                bare_start.filter(|_| is_content(line) && !line.starts_with('%'))
            {
                documents.push(Start {
                    first,
                    line: to_u32(first + 1),
                });
                bare_start = None;
            }
        }
        Layout { lines, documents }
    }

    /// `line` (1-based), or the last line if it is past it: libyaml reports an error at the end of
    /// the text on the line after its final line break.
    pub(crate) fn clamp(&self, line: u32) -> u32 {
        line.min(to_u32(self.lines.len().max(1)))
    }

    /// The 1-based line where document `index` starts (1 if the scan did not find it).
    pub(crate) fn document_line(&self, index: usize) -> u32 {
        self.documents
            .get(index)
            .or(self.documents.last())
            .map_or(1, |start| start.line)
    }

    /// The 1-based line of the key at `path` (`["logsource", "category"]`) in document `index`, else in
    /// the closest earlier document that has it (a collection's `global` or repeated document).
    /// For a nested key that cannot be found, the line of its closest found parent.
    pub(crate) fn key_line(&self, index: usize, path: &[&str]) -> Option<u32> {
        let index = index.min(self.documents.len().saturating_sub(1));
        (0..=index).rev().find_map(|i| {
            let first = self.documents.get(i).map_or(0, |start| start.first);
            let end = self
                .documents
                .get(i + 1)
                .map_or(self.lines.len(), |start| start.first);
            self.find_key(first, end, path)
        })
    }

    /// The 0-based index of the document that holds 1-based line `line`.
    pub(crate) fn document_of_line(&self, line: u32) -> usize {
        let line = usize::try_from(line).unwrap_or(usize::MAX);
        self.documents
            .partition_point(|start| start.first < line)
            .saturating_sub(1)
    }

    /// The 1-based lines where `key` is written in the mapping at `path` (keys from the root) of
    /// document `index`, in order; empty when the scan cannot tell (a flow mapping, say). Entries of
    /// lists (`- key:`) count as the mapping's own lines.
    pub(crate) fn key_lines(&self, index: usize, path: &[&str], key: &str) -> Vec<u32> {
        let Some(start) = self.documents.get(index) else {
            return Vec::new();
        };
        let end = self
            .documents
            .get(index + 1)
            .map_or(self.lines.len(), |next| next.first);
        let Some(lines) = self.lines.get(start.first..end) else {
            return Vec::new();
        };
        // The block to look in: the document, or the lines below the parent key.
        let (from, parent_indent) = if path.is_empty() {
            (0, None)
        } else {
            let Some(parent) = self.find_key(start.first, end, path) else {
                return Vec::new();
            };
            let at = to_usize(parent).saturating_sub(1 + start.first);
            let parent_indent = lines.get(at).map(|line| indent(line));
            (at + 1, parent_indent)
        };
        let mut found: Vec<(usize, u32)> = Vec::new();
        for (i, line) in lines.iter().enumerate().skip(from) {
            if !is_content(line) || marker(line, "---").is_some() {
                continue;
            }
            if parent_indent.is_some_and(|p| indent(line) <= p) {
                break;
            }
            let item = line.trim_start_matches([' ', '-']);
            if has_key(item, key) {
                let column = line.len() - item.len();
                found.push((column, to_u32(start.first + i + 1)));
            }
        }
        // The lines at the column of the first one: the same mapping.
        let column = found.first().map(|&(c, _)| c);
        found
            .into_iter()
            .filter(|&(c, _)| Some(c) == column)
            .map(|(_, line)| line)
            .collect()
    }

    /// Looks for `path` in lines `first..end` (one document).
    fn find_key(&self, first: usize, end: usize, path: &[&str]) -> Option<u32> {
        let lines = self.lines.get(first..end)?;
        let (top, nested) = path.split_first()?;
        let base = lines
            .iter()
            .find(|line| is_content(line) && marker(line, "---").is_none())
            .map(|line| indent(line))?;
        let mut found = lines
            .iter()
            .position(|line| indent(line) == base && has_key(line, top))?;
        let mut found_indent = base;
        for key in nested {
            let below = lines.iter().enumerate().skip(found + 1);
            let within =
                below.take_while(|(_, line)| !is_content(line) || indent(line) > found_indent);
            match within
                .filter(|(_, line)| is_content(line))
                .find(|(_, line)| has_key(line, key))
            {
                Some((i, line)) => {
                    found = i;
                    found_indent = indent(line);
                }
                None => break,
            }
        }
        Some(to_u32(first + found + 1))
    }
}

/// The 1-based line of byte `offset` of `bytes`.
pub(crate) fn line_of_byte(bytes: &[u8], offset: usize) -> u32 {
    let before = bytes.get(..offset).unwrap_or(bytes);
    to_u32(before.iter().filter(|&&b| b == b'\n').count() + 1)
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// If `line` is the document marker `mark` (`---` or `...`), what follows it.
fn marker<'l>(line: &'l str, mark: &str) -> Option<&'l str> {
    let rest = line.strip_prefix(mark)?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// Whether a line holds more than whitespace and a comment.
fn is_content(line: &str) -> bool {
    let trimmed = line.trim_start();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether a line starts (after its indentation) with `key:`, the key plain or quoted.
fn has_key(line: &str, key: &str) -> bool {
    let trimmed = line.trim_start_matches(' ');
    let rest = [("", ""), ("\"", "\""), ("'", "'")]
        .iter()
        .find_map(|(open, close)| {
            trimmed
                .strip_prefix(open)?
                .strip_prefix(key)?
                .strip_prefix(close)
        });
    rest.is_some_and(|rest| {
        let rest = rest.trim_start_matches([' ', '\t']);
        rest.strip_prefix(':')
            .is_some_and(|after| after.is_empty() || after.starts_with([' ', '\t']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_starts() {
        let layout =
            Layout::new("# c\ntitle: a\n---\n\ntitle: b\n--- # x\n ti: c\n...\n# d\nx: 1\n");
        let lines: Vec<u32> = (0..4).map(|i| layout.document_line(i)).collect();
        assert_eq!(lines, vec![1, 4, 7, 9]);
        assert_eq!(Layout::new("---\ntitle: a\n").document_line(0), 2);
        assert_eq!(Layout::new("").document_line(0), 1);
        assert_eq!(Layout::new("%YAML 1.1\n---\na: 1\n").document_line(0), 3);
        assert_eq!(Layout::new("a: 1\nb: 2\n").clamp(3), 2);
        assert_eq!(Layout::new("").clamp(3), 1);
    }

    #[test]
    fn key_lines() {
        let text = "title: a\ntags: x\nlogsource:\n    # c\n    product: p\n    category: c\n---\n logsource:\n     service: s\n";
        let layout = Layout::new(text);
        assert_eq!(layout.key_line(0, &["tags"]), Some(2));
        assert_eq!(layout.key_line(0, &["logsource", "category"]), Some(6));
        assert_eq!(layout.key_line(0, &["logsource", "nothing"]), Some(3));
        assert_eq!(layout.key_line(0, &["nothing"]), None);
        assert_eq!(layout.key_line(1, &["logsource", "service"]), Some(9));
        // Found in the earlier document when the later one does not have it.
        assert_eq!(layout.key_line(1, &["tags"]), Some(2));
        assert_eq!(
            Layout::new("'title' : x\n").key_line(0, &["title"]),
            Some(1)
        );
        assert_eq!(
            Layout::new("titles: x\ntitle:\n").key_line(0, &["title"]),
            Some(2)
        );
    }

    #[test]
    fn byte_lines() {
        assert_eq!(line_of_byte(b"a\nb\n\xff", 4), 3);
        assert_eq!(line_of_byte(b"\xff", 0), 1);
        assert_eq!(line_of_byte(b"a", 10), 1);
    }
}
