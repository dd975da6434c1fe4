//! Lint: what is wrong with a rule that parsed, judged against Sigma's specification.
//!
//! A rule that reads is still checked for what Sigma requires of its fields: a `logsource` for
//! detection rules, an `id`, dates that are real dates written `YYYY-MM-DD` (or the older `YYYY/MM/DD`),
//! `modified` not before `date`, and `level` and `status` from Sigma's vocabularies. Each problem is a
//! [`Problem`] with its code, at the line of the field's key. The rule itself is kept either way: these
//! findings are for `check` (and `build --strict`) to judge.

use super::{Problem, Rule, RuleKind};
use crate::findings::Code;

/// The codes `lint` reports.
pub const CODES: [Code; 6] = [
    Code::MissingLogsource,
    Code::MissingId,
    Code::InvalidDate,
    Code::ModifiedBeforeDate,
    Code::InvalidLevel,
    Code::InvalidStatus,
];

/// Sigma's `level` values.
pub const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

/// Sigma's `status` values.
pub const STATUSES: [&str; 5] = [
    "stable",
    "test",
    "experimental",
    "deprecated",
    "unsupported",
];

/// The problems of `rule`; `line` gives the line of a top-level key, if it is written.
pub(crate) fn lint(rule: &Rule, line: impl Fn(&'static str) -> Option<u32>) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut push = |key: Option<&'static str>, code: Code, message: String| {
        out.push(Problem {
            line: Some(key.and_then(&line).unwrap_or(rule.line)),
            code,
            message,
        });
    };
    if rule.kind == RuleKind::Detection && rule.logsource == super::LogSource::default() {
        push(
            None,
            Code::MissingLogsource,
            "the detection rule has no `logsource` (category, product or service)".into(),
        );
    }
    if rule.id.is_none() {
        push(
            None,
            Code::MissingId,
            "the rule has no `id`; a uuid is derived from where its file first appeared".into(),
        );
    }
    let details = rule.details.get();
    let date = details.date.as_deref().map(|d| (d, parse_date(d)));
    let modified = details.modified.as_deref().map(|d| (d, parse_date(d)));
    for (key, value) in [("date", date), ("modified", modified)] {
        if let Some((text, None)) = value {
            push(
                Some(key),
                Code::InvalidDate,
                format!("`{key}` {text:?} is not a real date written YYYY-MM-DD"),
            );
        }
    }
    if let (Some((d, Some(dv))), Some((m, Some(mv)))) = (date, modified)
        && mv < dv
    {
        push(
            Some("modified"),
            Code::ModifiedBeforeDate,
            format!("`modified` {m} is before `date` {d}"),
        );
    }
    if let Some(level) = rule.level.as_deref()
        && !LEVELS.contains(&level)
    {
        push(
            Some("level"),
            Code::InvalidLevel,
            format!("`level` {level:?} is not one of {}", LEVELS.join(", ")),
        );
    }
    if let Some(status) = rule.status.as_deref()
        && !STATUSES.contains(&status)
    {
        push(
            Some("status"),
            Code::InvalidStatus,
            format!("`status` {status:?} is not one of {}", STATUSES.join(", ")),
        );
    }
    out
}

/// A date written `YYYY-MM-DD` or `YYYY/MM/DD` that exists in the Gregorian calendar, as
/// `(year, month, day)`.
pub fn parse_date(text: &str) -> Option<(u32, u32, u32)> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b[7] || !matches!(b[4], b'-' | b'/') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (y >= 1 && (1..=days).contains(&d)).then_some((y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_exist() {
        assert_eq!(parse_date("2024-02-29"), Some((2024, 2, 29)));
        assert_eq!(parse_date("2022/08/28"), Some((2022, 8, 28)));
        for bad in [
            "2023-02-29",
            "2100-02-29",
            "2024-13-01",
            "2024-04-31",
            "2024-00-10",
            "2024-1-10",
            "2024-01/10",
            "24-01-10xx",
            "2024-01-1a",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2000-02-29"), Some((2000, 2, 29)));
    }

    #[test]
    fn lints_name_the_field_line() {
        let mut rule = Rule::titled("T");
        rule.details.get_mut().date = Some("2024-05-01".into());
        rule.details.get_mut().modified = Some("2024-04-31".into());
        rule.level = Some("severe".into());
        rule.status = Some("stable".into());
        let lines = |key: &str| match key {
            "modified" => Some(7),
            "level" => Some(9),
            _ => None,
        };
        let found: Vec<(Code, Option<u32>)> = lint(&rule, lines)
            .iter()
            .map(|p| (p.code, p.line))
            .collect();
        assert_eq!(
            found,
            [
                (Code::MissingLogsource, Some(1)),
                (Code::MissingId, Some(1)),
                (Code::InvalidDate, Some(7)),
                (Code::InvalidLevel, Some(9)),
            ]
        );
        rule.details.get_mut().modified = Some("2024-04-30".into());
        let found: Vec<Code> = lint(&rule, |_| None).iter().map(|p| p.code).collect();
        assert!(found.contains(&Code::ModifiedBeforeDate), "{found:?}");
    }
}
