//! Why a build did work: one variant per cause, one sentence each, shown under `--verbose` and in the
//! JSON summary's `reasons`.

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
    /// A source's include/exclude globs, sub-folder or link style changed.
    SourceSettingsChanged { source: String },
    /// The output files are missing or differ from what the last build wrote.
    OutputsChanged,
    /// A rule file's content was not in the cache, so it was parsed.
    NewContent { file: String },
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
                    "source {source}: its globs, sub-folder or link style changed"
                )
            }
            Reason::OutputsChanged => {
                write!(f, "the output files differ from what the last build wrote")
            }
            Reason::NewContent { file } => write!(f, "{file}: content not in the cache, parsed"),
        }
    }
}
