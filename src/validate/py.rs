//! Python semantics that the reference checker (`validate_galaxy.py`, PyMISPGalaxies, `jsonschema`)
//! applies to JSON values, re-stated in Rust so that `validate` reaches the same verdicts: how
//! `uuid.UUID(str)` parses, what is truthy, what `jsonschema` counts as an integer and as equal, and
//! how many characters Python's `len` counts.

use std::fmt::Write as _;

use serde_json::Value;

/// Python's `uuid.UUID(s)` for a string: strips every `urn:` and `uuid:`, braces at either end and
/// every `-`, then needs exactly 32 characters that `int(_, 16)` accepts (surrounding whitespace, a
/// `+`, a `0x` prefix and single `_` between digits included). `None` where Python raises
/// `ValueError`.
///
/// Known gap: Python's `int` also takes non-ASCII decimal digits (e.g. U+0663); this does not.
pub(crate) fn parse_uuid(s: &str) -> Option<u128> {
    let s = s.replace("urn:", "").replace("uuid:", "");
    let s = s.trim_matches(['{', '}']).replace('-', "");
    if s.chars().count() != 32 {
        return None;
    }
    int_base16(&s)
}

/// Python's `int(s, 16)` for values that fit 128 bits.
fn int_base16(s: &str) -> Option<u128> {
    let s = s.trim_matches(char::is_whitespace);
    let s = s.strip_prefix('+').unwrap_or(s);
    let (s, after_prefix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    // One `_` may follow the base prefix; otherwise underscores only sit between two digits.
    let s = if after_prefix {
        s.strip_prefix('_').unwrap_or(s)
    } else {
        s
    };
    if s.is_empty() || s.starts_with('_') || s.ends_with('_') || s.contains("__") {
        return None;
    }
    let mut value: u128 = 0;
    for ch in s.chars().filter(|&c| c != '_') {
        let digit = ch.to_digit(16)?;
        value = value.checked_mul(16)?.checked_add(u128::from(digit))?;
    }
    Some(value)
}

/// `str(uuid.UUID(...))`: the canonical lower-case 8-4-4-4-12 form.
pub(crate) fn canonical_uuid(u: u128) -> String {
    let hex = format!("{u:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Python's `bool(x)` for a JSON value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// JSON Schema draft 7 `integer` as `jsonschema` checks it: an int, or a float with no fraction
/// (`1.0` is an integer), never a boolean.
pub(crate) fn is_schema_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// A key such that two values get the same key exactly when `jsonschema`'s `equal` holds
/// (numbers compare by value so `1 == 1.0`, booleans never equal numbers, containers recurse).
pub(crate) fn equality_key(v: &Value) -> String {
    let mut out = String::new();
    push_equality_key(&mut out, v);
    out
}

fn push_equality_key(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push('N'),
        Value::Bool(b) => out.push(if *b { 'T' } else { 'F' }),
        Value::Number(n) => {
            out.push('#');
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else if let Some(f) = n.as_f64() {
                // An integral float equals the int of the same value; i128 holds every such f64 we
                // can meet below 2^127 exactly.
                if f.fract() == 0.0 && f.abs() < 1.7e38 {
                    let i = f as i128;
                    let _ = write!(out, "{i}");
                } else {
                    let _ = write!(out, "{f:e}");
                }
            }
        }
        Value::String(s) => {
            let _ = write!(out, "s{}:{s}", s.len());
        }
        Value::Array(items) => {
            let _ = write!(out, "[{}", items.len());
            for item in items {
                out.push(',');
                push_equality_key(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let _ = write!(out, "{{{}", entries.len());
            for (k, item) in entries {
                let _ = write!(out, ",{}:{k}=", k.len());
                push_equality_key(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `len(s)`: code points, not bytes.
pub(crate) fn py_len(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "0123456789abcdef0123456789abcdef";

    fn parsed(s: &str) -> Option<String> {
        parse_uuid(s).map(canonical_uuid)
    }

    #[test]
    fn uuid_parsing_matches_python_leniency() {
        // Expected results are Python 3.11's str(uuid.UUID(s)) (or ValueError).
        let canon = Some("01234567-89ab-cdef-0123-456789abcdef".to_string());
        assert_eq!(parsed("01234567-89ab-cdef-0123-456789abcdef"), canon);
        assert_eq!(parsed(BASE), canon);
        assert_eq!(parsed(&format!("{{{BASE}}}")), canon);
        assert_eq!(parsed(&format!("{{{{{BASE}}}}}}}")), canon);
        assert_eq!(parsed(&format!("urn:uuid:{BASE}")), canon);
        assert_eq!(parsed(&format!("uurn:uid:{BASE}")), canon);
        assert_eq!(parsed(&BASE.to_uppercase()), canon);
        assert_eq!(parsed(&format!("+{}", &BASE[1..])), canon);
        assert_eq!(parsed(&format!(" {}", &BASE[1..])), canon);
        assert_eq!(parsed(&format!("\u{a0}{}", &BASE[1..])), canon);
        assert_eq!(
            parsed(&format!("0x{}", &BASE[2..])),
            Some("00234567-89ab-cdef-0123-456789abcdef".to_string())
        );
        assert_eq!(
            parsed(&format!("0x_{}", &BASE[3..])),
            Some("00034567-89ab-cdef-0123-456789abcdef".to_string())
        );
        assert_eq!(
            parsed(&format!("0123_{}", &BASE[5..])),
            Some("00123567-89ab-cdef-0123-456789abcdef".to_string())
        );
        for bad in [
            "",
            "not-a-uuid",
            &BASE[1..],
            &format!("{BASE}0"),
            &format!("_{}", &BASE[1..]),
            &format!("{}_", &BASE[1..]),
            &format!("\u{1c}{}", &BASE[1..]),
            &format!("\u{200b}{}", &BASE[1..]),
            &format!("g{}", &BASE[1..]),
            "0x",
        ] {
            assert_eq!(parsed(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn truthiness_is_python_bool() {
        for v in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(&v), "{v}");
        }
        for v in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("x"),
            json!([0]),
            json!({"a": 0}),
        ] {
            assert!(truthy(&v), "{v}");
        }
    }

    #[test]
    fn schema_integers_include_integral_floats_not_bools() {
        assert!(is_schema_integer(&json!(3)));
        assert!(is_schema_integer(&json!(3.0)));
        assert!(!is_schema_integer(&json!(3.5)));
        assert!(!is_schema_integer(&json!(true)));
        assert!(!is_schema_integer(&json!("3")));
    }

    #[test]
    fn equality_key_follows_jsonschema_equal() {
        assert_eq!(equality_key(&json!(1)), equality_key(&json!(1.0)));
        assert_ne!(equality_key(&json!(1)), equality_key(&json!(true)));
        assert_ne!(equality_key(&json!("1")), equality_key(&json!(1)));
        assert_eq!(
            equality_key(&json!({"a": [1, "x"], "b": null})),
            equality_key(&json!({"b": null, "a": [1.0, "x"]}))
        );
        assert_ne!(
            equality_key(&json!(["a,b"])),
            equality_key(&json!(["a", "b"]))
        );
        assert_ne!(
            equality_key(&json!({"a": "b"})),
            equality_key(&json!({"a:": "b"}))
        );
    }

    #[test]
    fn py_len_counts_code_points() {
        assert_eq!(py_len("é😀"), 2);
    }
}
