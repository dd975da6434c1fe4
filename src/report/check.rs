//! Check reports: the findings of `check` rendered for people and for CI systems.
//!
//! Each format is a pure function from the sorted findings (and the rule files checked) to text, so
//! the output is deterministic and testable byte for byte:
//!
//! - [`human`]: findings grouped by file, one line each;
//! - [`json`]: one object with every finding and the counts;
//! - [`github`]: GitHub Actions workflow commands (`::error file=...,line=...,title=...::message`)
//!   that annotate the pull request's files, escaped as GitHub requires;
//! - [`junit`]: a JUnit XML report with one testcase per rule file (quick-junit);
//! - [`step_summary`]: the markdown appended to `$GITHUB_STEP_SUMMARY`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::findings::{Code, Counts, Finding, Severity};

/// What `check` found, ready to render.
#[derive(Debug, Clone)]
pub struct CheckReport<'a> {
    /// Findings, sorted (source, path, line, code).
    pub findings: &'a [Finding],
    /// Every rule file checked, as (source, path), sorted.
    pub files: &'a [(String, String)],
    /// Rules that became values.
    pub rules: usize,
    /// The severity at which the check fails.
    pub fail_on: Severity,
}

impl CheckReport<'_> {
    pub fn counts(&self) -> Counts {
        Counts::of(self.findings)
    }

    /// Whether the check fails: a finding at or above `fail_on`.
    pub fn failed(&self) -> bool {
        self.counts().at_least(self.fail_on) > 0
    }

    /// The one-line verdict.
    pub fn verdict(&self) -> String {
        let c = self.counts();
        format!(
            "{} error(s), {} warning(s), {} note(s) in {} rule file(s), {} rule(s)",
            c.error,
            c.warning,
            c.note,
            self.files.len(),
            self.rules
        )
    }
}

/// Findings grouped by file: the file, then `  LINE: SEVERITY[CODE] MESSAGE` lines.
pub fn human(report: &CheckReport<'_>) -> String {
    let mut out = String::new();
    let mut current: Option<(&str, &str)> = None;
    for f in report.findings {
        if current != Some((&f.source, &f.path)) {
            if current.is_some() {
                out.push('\n');
            }
            let _ = writeln!(out, "{}:{}", f.source, f.path);
            current = Some((&f.source, &f.path));
        }
        let line = f.line.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "  {line}: {}[{}] {}", f.severity, f.code, f.message);
    }
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: &'a [Finding],
    counts: Counts,
    files: usize,
    rules: usize,
    failed: bool,
}

/// One JSON object: `findings` (code, severity, source, path, line, message), `counts`, `files`,
/// `rules`, `failed`.
pub fn json(report: &CheckReport<'_>) -> String {
    let body = JsonReport {
        findings: report.findings,
        counts: report.counts(),
        files: report.files.len(),
        rules: report.rules,
        failed: report.failed(),
    };
    let mut text = serde_json::to_string(&body).unwrap_or_default();
    text.push('\n');
    text
}

/// GitHub workflow commands, one per finding: `::error file=PATH,line=N,title=CODE::MESSAGE`
/// (`warning` and `notice` for the other severities).
pub fn github(report: &CheckReport<'_>) -> String {
    let mut out = String::new();
    for f in report.findings {
        let command = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let _ = write!(out, "::{command} file={}", escape_property(&f.path));
        if let Some(line) = f.line {
            let _ = write!(out, ",line={line}");
        }
        let _ = writeln!(
            out,
            ",title={}::{}",
            escape_property(f.code.name()),
            escape_data(&format!("{} ({})", f.message, f.source))
        );
    }
    out
}

/// Escapes a workflow command's message as GitHub's toolkit does.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value as GitHub's toolkit does.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A JUnit XML report: one testsuite per source, one testcase per rule file, failed when the file has
/// a finding at or above `fail_on` (every finding of the file is listed in the failure's text).
pub fn junit(report: &CheckReport<'_>) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

    let mut by_file: BTreeMap<(&str, &str), Vec<&Finding>> = BTreeMap::new();
    for f in report.findings {
        by_file.entry((&f.source, &f.path)).or_default().push(f);
    }
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for (source, path) in report.files {
        let found = by_file.remove(&(source.as_str(), path.as_str()));
        let found = found.unwrap_or_default();
        let failing = found.iter().any(|f| f.severity >= report.fail_on);
        let mut status = if failing {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let first = found.iter().find(|f| f.severity >= report.fail_on);
            if let Some(first) = first {
                s.set_message(format!("{}: {}", first.code, first.message));
                s.set_type(first.code.name());
            }
            s
        } else {
            TestCaseStatus::success()
        };
        let text: String = found
            .iter()
            .map(|f| {
                let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
                format!("{path}{line}: {}[{}] {}\n", f.severity, f.code, f.message)
            })
            .collect();
        if failing {
            status.set_description(text.clone());
        }
        let mut case = TestCase::new(path.as_str(), status);
        case.set_classname(source.as_str());
        if !failing && !text.is_empty() {
            case.set_system_out(text);
        }
        suites
            .entry(source)
            .or_insert_with(|| TestSuite::new(source.as_str()))
            .add_test_case(case);
    }
    let mut junit = Report::new("sigma-galaxy check");
    junit.add_test_suites(suites.into_values());
    junit.to_string().unwrap_or_default()
}

/// The markdown appended to `$GITHUB_STEP_SUMMARY`: the verdict, counts by code, the first findings.
pub fn step_summary(report: &CheckReport<'_>) -> String {
    const FIRST: usize = 20;
    let mut out = String::from("## sigma-galaxy check\n\n");
    let _ = writeln!(
        out,
        "{} {}\n",
        if report.failed() { "❌" } else { "✅" },
        report.verdict()
    );
    if report.findings.is_empty() {
        return out;
    }
    let mut by_code: BTreeMap<Code, usize> = BTreeMap::new();
    for f in report.findings {
        *by_code.entry(f.code).or_default() += 1;
    }
    out.push_str("| code | severity | count |\n|---|---|---:|\n");
    for (code, n) in &by_code {
        let _ = writeln!(out, "| `{code}` | {} | {n} |", code.severity());
    }
    let _ = writeln!(
        out,
        "\n<details><summary>First {} finding(s)</summary>\n\n| file | line | code | message |\n|---|---:|---|---|",
        report.findings.len().min(FIRST)
    );
    for f in report.findings.iter().take(FIRST) {
        let line = f.line.map(|l| l.to_string()).unwrap_or_default();
        let message = f.message.replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(
            out,
            "| `{}:{}` | {line} | `{}` | {message} |",
            f.source, f.path, f.code
        );
    }
    out.push_str("\n</details>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_commands_escape_what_github_requires() {
        let findings = [Finding::new(
            "s",
            "rules/a,b:c%.yml",
            Some(3),
            Code::InvalidDate,
            "100% bad\r\nsecond line: x, y",
        )];
        let files = [("s".to_string(), "rules/a,b:c%.yml".to_string())];
        let report = CheckReport {
            findings: &findings,
            files: &files,
            rules: 1,
            fail_on: Severity::Error,
        };
        assert_eq!(
            github(&report),
            "::error file=rules/a%2Cb%3Ac%25.yml,line=3,title=invalid-date::100%25 bad%0D%0Asecond line: x, y (s)\n"
        );
    }

    #[test]
    fn junit_has_one_case_per_file_and_fails_at_the_threshold() {
        let findings = [
            Finding::new("s", "a.yml", Some(1), Code::MissingId, "no id"),
            Finding::new("s", "b.yml", Some(2), Code::InvalidLevel, "bad level"),
        ];
        let files = [
            ("s".to_string(), "a.yml".to_string()),
            ("s".to_string(), "b.yml".to_string()),
            ("s".to_string(), "c.yml".to_string()),
        ];
        let report = CheckReport {
            findings: &findings,
            files: &files,
            rules: 3,
            fail_on: Severity::Error,
        };
        let xml = junit(&report);
        assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
        assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
        assert!(xml.contains("invalid-level: bad level"), "{xml}");
        let strict = CheckReport {
            fail_on: Severity::Warning,
            ..report
        };
        assert_eq!(junit(&strict).matches("<failure").count(), 2);
    }
}
