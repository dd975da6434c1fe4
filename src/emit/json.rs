//! MISP's JSON formatting: this module owns the exact bytes of every JSON file the tool writes, and
//! the formatting check of `validate`. misp-galaxy formats its files with Python's
//! `json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"` (its CI rewrites any file
//! that differs), so [`to_misp_json`] reproduces that output byte for byte: keys sorted by code
//! point, two-space indent, separators `,` and `: ` with no trailing blanks, raw UTF-8 (only `"`, `\` and
//! C0 controls escaped, the latter as `\n`-style short escapes or lower-case `\u00XX`), empty
//! containers as `[]`/`{}`, floats as Python's `repr`, and a final newline.
//!
//! The serializer is written out rather than delegated to serde_json's `PrettyFormatter` so that the
//! result does not depend on serde_json's feature flags (`preserve_order` would change key order,
//! `arbitrary_precision` number text) that any other crate in the build could switch on.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Formats `value` exactly as misp-galaxy formats its files (keys sorted, 2-space indent, UTF-8,
/// final newline): the output equals Python's
/// `json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"`.
pub fn to_misp_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out.push('\n');
    out
}

/// Writes one object straight to text, in misp-galaxy formatting, without building a JSON tree.
///
/// The caller gives the keys in sorted (code point) order; each entry is a string or a list of
/// strings, or a nested object or list of objects written with [`ObjectWriter::object`] and
/// [`ObjectWriter::objects`].
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    out: &'a mut String,
    depth: usize,
    empty: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Starts an object nested `depth` levels deep.
    pub fn new(out: &'a mut String, depth: usize) -> Self {
        out.push('{');
        ObjectWriter {
            out,
            depth,
            empty: true,
        }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        newline_indent(self.out, self.depth + 1);
        write_string(self.out, key);
        self.out.push_str(": ");
    }

    /// `"key": "value"`.
    pub fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        write_string(self.out, value);
    }

    /// `"key": ["a", "b"]`.
    pub fn strings<'s>(&mut self, key: &str, values: impl IntoIterator<Item = &'s str>) {
        self.key(key);
        let mut empty = true;
        for v in values {
            self.out.push_str(if empty { "[" } else { "," });
            empty = false;
            newline_indent(self.out, self.depth + 2);
            write_string(self.out, v);
        }
        if empty {
            self.out.push_str("[]");
        } else {
            newline_indent(self.out, self.depth + 1);
            self.out.push(']');
        }
    }

    /// `"key": {...}`, written by `fill`.
    pub fn object(&mut self, key: &str, fill: impl FnOnce(&mut ObjectWriter<'_>)) {
        self.key(key);
        let mut inner = ObjectWriter::new(self.out, self.depth + 1);
        fill(&mut inner);
        inner.finish();
    }

    /// `"key": [{...}, ...]`, one object per item, each written by `fill`.
    pub fn objects<T>(&mut self, key: &str, items: &[T], fill: impl Fn(&mut ObjectWriter<'_>, &T)) {
        self.key(key);
        if items.is_empty() {
            self.out.push_str("[]");
            return;
        }
        self.out.push('[');
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                self.out.push(',');
            }
            newline_indent(self.out, self.depth + 2);
            let mut inner = ObjectWriter::new(self.out, self.depth + 2);
            fill(&mut inner, item);
            inner.finish();
        }
        newline_indent(self.out, self.depth + 1);
        self.out.push(']');
    }

    /// Closes the object.
    pub fn finish(self) {
        if self.empty {
            self.out.push('}');
        } else {
            newline_indent(self.out, self.depth);
            self.out.push('}');
        }
    }
}

/// Formats `value` as it appears nested `depth` levels deep in a misp-galaxy file (no final newline),
/// so that parts of a file can be formatted separately, in parallel, and joined.
pub fn fragment(value: &Value, depth: usize) -> String {
    let mut out = String::new();
    write_value(&mut out, value, depth);
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => write_array(out, items, depth),
        Value::Object(map) => write_object(out, map, depth),
    }
}

fn write_array(out: &mut String, items: &[Value], depth: usize) {
    if items.is_empty() {
        out.push_str("[]");
        return;
    }
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline_indent(out, depth + 1);
        write_value(out, item, depth + 1);
    }
    newline_indent(out, depth);
    out.push(']');
}

fn write_object(out: &mut String, map: &Map<String, Value>, depth: usize) {
    if map.is_empty() {
        out.push_str("{}");
        return;
    }
    // Python's sort_keys compares str, i.e. by code point; UTF-8 byte order is the same order.
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline_indent(out, depth + 1);
        write_string(out, key);
        out.push_str(": ");
        write_value(out, item, depth + 1);
    }
    newline_indent(out, depth);
    out.push('}');
}

fn newline_indent(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// Python's `py_encode_basestring`: escapes `"`, `\\` and U+0000..U+001F, nothing else.
///
/// Scans bytes, not characters: every byte that needs escaping is ASCII, and no byte of a multi-byte
/// UTF-8 sequence is, so runs between escapes are copied whole.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            0x00..=0x1F => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        out.push_str(&s[plain_from..i]);
        if escape.is_empty() {
            // Infallible: writing to a String cannot fail.
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain_from = i + 1;
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else {
        // Integers beyond 64 bits only exist with serde_json's `arbitrary_precision`, whose Display
        // is the literal text; Python keeps such a literal an int and prints it as is.
        let text = n.to_string();
        let digits = text.strip_prefix('-').unwrap_or(&text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&text);
        } else {
            match n.as_f64() {
                Some(f) => write_py_float(out, f),
                None => out.push_str(&text),
            }
        }
    }
}

/// Python's `float.__repr__` (the shortest round-tripping digits, exponent form outside
/// 1e-4 <= |f| < 1e16, at least two exponent digits) and `json`'s names for non-finite values.
fn write_py_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // Rust's `{:e}` gives the same shortest round-tripping digits as Python's repr, e.g. "-1.25e-7".
    let sci = format!("{f:e}");
    let (sign, unsigned) = match sci.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", sci.as_str()),
    };
    let (mantissa, exp) = unsigned.split_once('e').unwrap_or((unsigned, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = usize::try_from(exp).unwrap_or(0) + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(v: &Value) -> String {
        to_misp_json(v)
    }

    #[test]
    fn object_writer_formats_as_the_tree_formatter() {
        let mut out = String::new();
        let mut w = ObjectWriter::new(&mut out, 2);
        w.string("a", "x\"y");
        w.strings("b", ["1", "2"]);
        w.strings("c", []);
        w.object("d", |o| {
            o.string("e", "f");
            o.object("g", |_| {});
        });
        w.objects("h", &["i", "j"], |o, v| {
            o.string("k", v);
            o.strings("l", [*v]);
        });
        w.objects("m", &[] as &[&str], |_, _| {});
        w.finish();
        let tree = json!({
            "a": "x\"y", "b": ["1", "2"], "c": [], "d": {"e": "f", "g": {}},
            "h": [{"k": "i", "l": ["i"]}, {"k": "j", "l": ["j"]}], "m": [],
        });
        assert_eq!(out, fragment(&tree, 2));
    }

    #[test]
    fn fragments_join_into_the_whole() {
        let item = json!({"b": [1, {"c": "d"}], "a": "x"});
        let whole = json!({"values": [item.clone(), item.clone()]});
        let frag = fragment(&item, 2);
        let joined = format!("{{\n  \"values\": [\n    {frag},\n    {frag}\n  ]\n}}\n");
        assert_eq!(joined, to_misp_json(&whole));
    }

    #[test]
    fn scalars_end_with_newline() {
        assert_eq!(fmt(&json!(null)), "null\n");
        assert_eq!(fmt(&json!(true)), "true\n");
        assert_eq!(fmt(&json!(false)), "false\n");
        assert_eq!(fmt(&json!(0)), "0\n");
        assert_eq!(fmt(&json!(-42)), "-42\n");
        assert_eq!(fmt(&json!(u64::MAX)), "18446744073709551615\n");
        assert_eq!(fmt(&json!(i64::MIN)), "-9223372036854775808\n");
        assert_eq!(fmt(&json!("")), "\"\"\n");
    }

    #[test]
    fn empty_containers_are_compact() {
        assert_eq!(fmt(&json!([])), "[]\n");
        assert_eq!(fmt(&json!({})), "{}\n");
        assert_eq!(
            fmt(&json!({"a": [], "b": {}, "c": [[]]})),
            "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    []\n  ]\n}\n"
        );
    }

    #[test]
    fn nested_indentation_matches_python() {
        let v = json!({
            "values": [
                {"meta": {"refs": ["x", "y"]}, "value": "v"},
                1,
                "s"
            ],
            "version": 3
        });
        let expected = r#"{
  "values": [
    {
      "meta": {
        "refs": [
          "x",
          "y"
        ]
      },
      "value": "v"
    },
    1,
    "s"
  ],
  "version": 3
}
"#;
        assert_eq!(fmt(&v), expected);
    }

    #[test]
    fn keys_sort_by_code_point() {
        // Python: sorted(["b", "B", "a", "_", "é", "z", "\u{e000}", "😀", "aa", "a-"])
        let v = json!({
            "b": 1, "B": 2, "a": 3, "_": 4, "é": 5, "z": 6, "\u{e000}": 7, "😀": 8, "aa": 9, "a-": 10
        });
        let expected = "{\n  \"B\": 2,\n  \"_\": 4,\n  \"a\": 3,\n  \"a-\": 10,\n  \"aa\": 9,\n  \
                        \"b\": 1,\n  \"z\": 6,\n  \"é\": 5,\n  \"\u{e000}\": 7,\n  \"😀\": 8\n}\n";
        assert_eq!(fmt(&v), expected);
    }

    #[test]
    fn string_escapes_match_python() {
        // Python: json.dumps("\x00\x01\x07\b\t\n\x0b\f\r\x1b\x1f \"\\/\x7f", ensure_ascii=False)
        let s = "\u{0}\u{1}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{1b}\u{1f} \"\\/\u{7f}";
        assert_eq!(
            fmt(&json!(s)),
            "\"\\u0000\\u0001\\u0007\\b\\t\\n\\u000b\\f\\r\\u001b\\u001f \\\"\\\\/\u{7f}\"\n"
        );
    }

    #[test]
    fn non_ascii_stays_raw() {
        let s = "é ü 中文 \u{2028}\u{2029} \u{85} \u{a0} \u{feff} 😀 \u{10ffff}";
        assert_eq!(fmt(&json!(s)), format!("\"{s}\"\n"));
        assert_eq!(fmt(&json!({"é": "x"})), "{\n  \"é\": \"x\"\n}\n");
    }

    #[test]
    fn escapes_in_keys() {
        assert_eq!(fmt(&json!({"a\"b\n": 1})), "{\n  \"a\\\"b\\n\": 1\n}\n");
    }

    #[test]
    fn floats_match_python_repr() {
        // Expected strings are Python's repr() of the same floats.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (9_999_999_999_999_998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
        ];
        for (f, expected) in cases {
            let v = Value::Number(Number::from_f64(*f).expect("finite"));
            assert_eq!(fmt(&v), format!("{expected}\n"), "for {f:e}");
        }
    }

    #[test]
    fn parsed_numbers_keep_python_kinds() {
        // Python: json.loads then dumps keeps ints as ints and floats as floats.
        let v: Value = serde_json::from_str("[1, -7, 1.0, 1e2, 2.50, 1E-7]").expect("parses");
        assert_eq!(
            fmt(&v),
            "[\n  1,\n  -7,\n  1.0,\n  100.0,\n  2.5,\n  1e-07\n]\n"
        );
    }

    #[test]
    fn round_trip_of_formatted_text_is_identity() {
        let text = "{\n  \"authors\": [\n    \"A\"\n  ],\n  \"values\": [\n    {\n      \
                    \"meta\": {},\n      \"value\": \"x\\ty\"\n    }\n  ],\n  \"version\": 1\n}\n";
        let v: Value = serde_json::from_str(text).expect("parses");
        assert_eq!(fmt(&v), text);
    }
}
