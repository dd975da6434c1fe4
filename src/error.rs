//! Errors that stop a run, each with the exit code it maps to.
//!
//! A problem in one rule file is not an error: it is a [`crate::findings::Finding`] and the run goes on.
//! What lives here is what makes a run impossible: a bad configuration, a repository that cannot be
//! read, an output folder that cannot be written, or rule problems under `--strict`.

use std::path::PathBuf;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration (file or flags) is not usable. Exit 2.
    #[error("{}{message}", location(path.as_deref(), *line))]
    Config {
        path: Option<PathBuf>,
        line: Option<usize>,
        message: String,
    },

    /// A source cannot be opened or read. Exit 1.
    #[error("source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },

    /// An input file (ATT&CK cluster, previous output) cannot be read or is not what it should be. Exit 1.
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },

    /// Reading or writing a file failed. Exit 1.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another run holds the state folder's lock and `--no-wait` was given. Exit 1.
    #[error("{}: another sigma-galaxy run is using this state folder (drop --no-wait to wait for it)", path.display())]
    Locked { path: PathBuf },

    /// `--strict` and some rule files had problems; nothing was written. Exit 1.
    #[error("{count} rule error(s) with --strict: nothing written")]
    Strict { count: usize },
}

impl Error {
    /// The process exit code for this error: 2 for usage and configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } => 2,
            _ => 1,
        }
    }

    /// A configuration error with no file position.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            path: None,
            line: None,
            message: message.into(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

fn location(path: Option<&std::path::Path>, line: Option<usize>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!("{}:{l}: ", p.display()),
        (Some(p), None) => format!("{}: ", p.display()),
        _ => String::new(),
    }
}
