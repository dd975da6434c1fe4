//! Findings: every problem the tool reports about a rule file, with a stable code and a severity.
//!
//! This module owns the vocabulary that `check`, `build` and `release` share: one [`Code`] per kind of
//! problem, each with a fixed [`Severity`] and a one-sentence meaning, and the [`Finding`] record
//! (code, source, repository path, line, message) that every stage reports problems with. Codes are a
//! contract: CI checks match on them, so a code is never renamed, only added. The README's table of
//! codes is [`Code::ALL`] with [`Code::severity`] and [`Code::meaning`].
//!
//! A finding never stops a run by itself: the rule is skipped or adjusted, and the run goes on.
//! `check --fail-on` and `build --strict` decide from the severities whether the run fails.

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Note < Warning < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth knowing; nothing is wrong with the rule.
    Note,
    /// The rule is used, but something about it was adjusted or looks wrong.
    Warning,
    /// The rule (or file) is not valid Sigma, or cannot be used as written.
    Error,
}

impl Severity {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $severity:ident, $meaning:literal; )*) => {
        /// The kind of a finding. Each has a stable kebab-case name, a fixed severity and a meaning.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Code {
            $( $(#[$doc])* #[doc = $meaning] #[serde(rename = $name)] $variant, )*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable name (`duplicate-id`).
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The fixed severity of this code.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// One sentence: what the finding means and what happens to the rule.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    // The file as a whole.
    NotUtf8 = "not-utf8", Error,
        "The file is not valid UTF-8; it is skipped.";
    InvalidYaml = "invalid-yaml", Error,
        "The YAML cannot be read (syntax, unknown anchor); that document (after a syntax error, the rest of the file) is skipped.";
    DuplicateKey = "duplicate-key", Error,
        "A mapping key appears twice in a rule's metadata (title, id, tags, ...); the rule is ambiguous and skipped.";
    DuplicateDetectionKey = "duplicate-detection-key", Warning,
        "A mapping key appears twice outside the metadata (detection, custom fields); the rule is kept and the last one wins, as in PyYAML and pySigma.";
    UnsafeYamlTag = "unsafe-yaml-tag", Error,
        "A YAML tag other than the standard ones (e.g. !!python/object); the document is skipped.";
    LimitExceeded = "limit-exceeded", Error,
        "The file passes a configured limit (size, nesting depth, alias expansion); it is skipped.";
    InvalidCollection = "invalid-collection", Error,
        "A rule collection's `action` is not global, reset or repeat, or is misplaced; the document is skipped.";
    // Rule structure.
    WrongType = "wrong-type", Error,
        "A field has a type that cannot be used (a list or mapping where text is expected); the rule is skipped.";
    CoercedType = "coerced-type", Warning,
        "A field has another type than Sigma's (a number where text is expected, one text where a list is); it is used as written.";
    MissingTitle = "missing-title", Error,
        "A document with detection, correlation or filter has no title; it is skipped.";
    MissingDetection = "missing-detection", Error,
        "A document with a title has no detection, correlation or filter; it is skipped.";
    MissingLogsource = "missing-logsource", Error,
        "A detection rule has no logsource.";
    // Identity.
    MissingId = "missing-id", Warning,
        "The rule has no id; a stable uuid is derived from where the file first appeared.";
    InvalidId = "invalid-id", Error,
        "The rule's id is not a UUID; a stable uuid is derived instead.";
    DuplicateId = "duplicate-id", Error,
        "Another rule of the same source already has this id; this one gets a derived uuid.";
    OverriddenRule = "overridden-rule", Note,
        "A source listed earlier (or with higher priority) has a rule with this id and the same title; this one is dropped.";
    OverriddenRuleTitle = "overridden-rule-title", Warning,
        "A source listed earlier (or with higher priority) has a rule with this id but another title; this one is dropped.";
    DuplicateTitle = "duplicate-title", Warning,
        "Another rule has the same title ignoring case (MISP matches values that way); this one gets a suffix.";
    // Field values.
    InvalidDate = "invalid-date", Error,
        "`date` or `modified` is not a real YYYY-MM-DD (or YYYY/MM/DD) date.";
    ModifiedBeforeDate = "modified-before-date", Warning,
        "`modified` is earlier than `date`.";
    InvalidLevel = "invalid-level", Error,
        "`level` is not one of informational, low, medium, high, critical.";
    InvalidStatus = "invalid-status", Error,
        "`status` is not one of stable, test, experimental, deprecated, unsupported.";
    UnknownAttackTag = "unknown-attack-tag", Warning,
        "An attack.tNNNN, attack.gNNNN or attack.sNNNN tag matches nothing in the ATT&CK clusters given.";
    FieldTooLong = "field-too-long", Warning,
        "A text field is longer than MISP stores; it is cut at a character boundary with a marker.";
    // What MISP cannot store.
    TitleTooLong = "title-too-long", Warning,
        "The title makes a tag longer than MISP's 255 characters; it is shortened with an ellipsis.";
    TitleFourByteChar = "title-4-byte-char", Warning,
        "The title has 4-byte UTF-8 characters (emoji), which MISP cannot store; they are replaced with U+FFFD.";
    TitleQuote = "title-quote", Warning,
        "The title has a double quote, which breaks MISP's machine tags; it is replaced with a single quote.";
    TitleControlChar = "title-control-char", Warning,
        "The title has bidirectional, zero-width or other control characters (display spoofing); they are removed.";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem with one rule file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    /// The source's name.
    pub source: String,
    /// The file's path relative to the repository root (`/`-separated).
    pub path: String,
    /// 1-based line, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub code: Code,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    /// A finding on `path` of source `source`; the severity is the code's.
    pub fn new(
        source: &str,
        path: &str,
        line: Option<u32>,
        code: Code,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            source: source.to_string(),
            path: path.to_string(),
            line,
            code,
            severity: code.severity(),
            message: message.into(),
        }
    }

    /// `source:path`, as shown to people.
    pub fn file(&self) -> String {
        format!("{}:{}", self.source, self.path)
    }
}

impl std::fmt::Display for Finding {
    /// `source:path:line: message [code]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.path)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {} [{}]", self.message, self.code)
    }
}

/// Counts of findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub error: usize,
    pub warning: usize,
    pub note: usize,
}

impl Counts {
    /// Counts `findings` by severity.
    pub fn of(findings: &[Finding]) -> Counts {
        let mut c = Counts::default();
        for f in findings {
            match f.severity {
                Severity::Error => c.error += 1,
                Severity::Warning => c.warning += 1,
                Severity::Note => c.note += 1,
            }
        }
        c
    }

    /// Findings at or above `level`.
    pub fn at_least(self, level: Severity) -> usize {
        match level {
            Severity::Error => self.error,
            Severity::Warning => self.error + self.warning,
            Severity::Note => self.error + self.warning + self.note,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_serialise_as_themselves() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.name()).collect();
        for n in &names {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
        }
        for c in Code::ALL {
            assert_eq!(
                serde_json::to_string(c).unwrap_or_default(),
                format!("\"{}\"", c.name())
            );
            assert!(c.meaning().ends_with('.'), "{c}");
        }
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn the_readme_documents_every_code_as_it_is() {
        let readme = include_str!("../README.md");
        for c in Code::ALL {
            let row = format!(
                "| `{}` | {} | {} |",
                c.name(),
                c.severity(),
                c.meaning().replace('|', "\\|")
            );
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }

    #[test]
    fn counts_respect_the_threshold() {
        let f = |code| Finding::new("s", "p.yml", None, code, "m");
        let c = Counts::of(&[
            f(Code::DuplicateId),
            f(Code::MissingId),
            f(Code::OverriddenRule),
        ]);
        assert_eq!((c.error, c.warning, c.note), (1, 1, 1));
        assert_eq!(c.at_least(Severity::Error), 1);
        assert_eq!(c.at_least(Severity::Warning), 2);
        assert_eq!(c.at_least(Severity::Note), 3);
    }
}
