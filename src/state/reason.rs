//! Why a build did work: one variant per cause, one sentence each, shown under `--verbose` and in the
//! JSON summary's `reasons`.

use std::collections::HashMap;

use serde::Serialize;

/// Why (part of) a build was redone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Reason {
    /// There was no previous build in the state folder.
    NoState,
    /// `--full` was given.
    Full,
    /// A state file could not be trusted and was ignored.
    Distrusted { file: String, problem: String },
    /// Another version of sigma-galaxy made the last build.
    ToolChanged { from: String, to: String },
    /// A build option or the galaxy's own fields changed.
    OptionsChanged { what: String },
    /// The ATT&CK clusters changed.
    AttackChanged,
    /// A source is new since the last build.
    SourceAdded { source: String },
    /// A source of the last build is gone.
    SourceRemoved { source: String },
    /// A source now points at another commit.
    SourceMoved {
        source: String,
        from: String,
        to: String,
    },
    /// A source's branch, include/exclude globs, sub-folder or link style changed.
    SourceSettingsChanged { source: String },
    /// The output files are missing or differ from what the last build wrote.
    OutputsChanged,
    /// A state file is missing, or another than the last build wrote.
    StateChanged,
    /// A rule file's content was not in the cache, so it was parsed.
    NewContent { file: String },
    /// A source's id-less rules take the uuids the ledger remembers, not those their history gives.
    LedgerIdentity { source: String, why: LedgerWhy },
    /// A changed rule shares a key with an unchanged one, so every value was merged again, not
    /// only the changed files' (see [`crate::state::table`]).
    Clash { what: String },
    /// Only the values of the rule files changed since the last build were merged and formatted;
    /// every other value's text was copied from the previous cluster file.
    Spliced { files: usize, values: usize },
}

/// Why a source's identities come from the ledger (see "Identity" in [`crate::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerWhy {
    /// The source's history is shallow (`depth`): it does not reach back to where files first appeared.
    Shallow,
    /// The source's history was rewritten since the state's ledger began following it.
    Rewritten,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::NoState => write!(
                f,
                "no previous build in the state folder: building everything"
            ),
            Reason::Full => write!(f, "--full: the cache and history walk were ignored"),
            Reason::Distrusted { file, problem } => {
                write!(
                    f,
                    "state file {file} was not used ({problem}): building without it"
                )
            }
            Reason::ToolChanged { from, to } => {
                write!(f, "sigma-galaxy {from} made the last build, this is {to}")
            }
            Reason::OptionsChanged { what } => write!(f, "{what} changed since the last build"),
            Reason::AttackChanged => write!(f, "the ATT&CK clusters changed since the last build"),
            Reason::SourceAdded { source } => write!(f, "source {source} is new"),
            Reason::SourceRemoved { source } => write!(f, "source {source} was removed"),
            Reason::SourceMoved { source, from, to } => {
                let short = |c: &str| c.chars().take(12).collect::<String>();
                write!(
                    f,
                    "source {source} moved from {} to {}",
                    short(from),
                    short(to)
                )
            }
            Reason::SourceSettingsChanged { source } => {
                write!(
                    f,
                    "source {source}: its branch, globs, sub-folder or link style changed"
                )
            }
            Reason::OutputsChanged => {
                write!(f, "the output files differ from what the last build wrote")
            }
            Reason::StateChanged => write!(
                f,
                "a state file is missing or not the one the last build wrote: rebuilding it"
            ),
            Reason::NewContent { file } => write!(f, "{file}: content not in the cache, parsed"),
            Reason::Spliced { files, values } => write!(
                f,
                "{files} changed rule file(s) merged alone ({values} value(s)); every other value was copied"
            ),
            Reason::Clash { what } => write!(
                f,
                "a changed rule shares {what} with an unchanged one: every value was merged again"
            ),
            Reason::LedgerIdentity { source, why } => {
                let why = match why {
                    LedgerWhy::Shallow => "its history is shallow",
                    LedgerWhy::Rewritten => "its history was rewritten since this state began",
                };
                write!(
                    f,
                    "source {source}: {why}, so id-less rules keep the uuids the state's ledger \
                     remembers (a clean build on a fresh state may derive others)"
                )
            }
        }
    }
}

impl Reason {
    /// What differs between two serialised build keys ([`super::key::BuildKey`]), as reasons.
    pub fn between(old: &serde_json::Value, new: &serde_json::Value) -> Vec<Reason> {
        let mut out = Vec::new();
        let field = |v: &serde_json::Value, k: &str| v.get(k).cloned().unwrap_or_default();
        if field(old, "tool") != field(new, "tool") {
            out.push(Reason::ToolChanged {
                from: field(old, "tool").as_str().unwrap_or("?").to_string(),
                to: field(new, "tool").as_str().unwrap_or("?").to_string(),
            });
        }
        for (k, what) in [
            ("galaxy", "the galaxy's own fields"),
            ("filters", "--filters"),
            ("strict", "--strict"),
            ("ref_style", "--ref-style"),
            ("format", "the state format"),
        ] {
            if field(old, k) != field(new, k) {
                out.push(Reason::OptionsChanged { what: what.into() });
            }
        }
        if field(old, "attack") != field(new, "attack") {
            out.push(Reason::AttackChanged);
        }
        let by_name = |v: &serde_json::Value| -> HashMap<String, serde_json::Value> {
            field(v, "sources")
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| Some((s.get("name")?.as_str()?.to_string(), s.clone())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (old_s, new_s) = (by_name(old), by_name(new));
        let mut names: Vec<&String> = old_s.keys().chain(new_s.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let source = name.clone();
            match (old_s.get(name), new_s.get(name)) {
                (None, Some(_)) => out.push(Reason::SourceAdded { source }),
                (Some(_), None) => out.push(Reason::SourceRemoved { source }),
                (Some(o), Some(n)) => {
                    let commit = |v: &serde_json::Value| {
                        field(v, "commit").as_str().unwrap_or("").to_string()
                    };
                    if commit(o) != commit(n) {
                        out.push(Reason::SourceMoved {
                            source: source.clone(),
                            from: commit(o),
                            to: commit(n),
                        });
                    }
                    let mut o = o.clone();
                    let mut n = n.clone();
                    for v in [&mut o, &mut n] {
                        if let Some(m) = v.as_object_mut() {
                            m.remove("commit");
                        }
                    }
                    if o != n {
                        out.push(Reason::SourceSettingsChanged { source });
                    }
                }
                (None, None) => {}
            }
        }
        out
    }
}
