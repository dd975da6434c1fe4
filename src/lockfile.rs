//! Lockfile: `sigma-galaxy.lock`, the commit each source was last built from.
//!
//! This module owns the lockfile's format, where it lives and the two things done with it:
//!
//! - after every successful `build` (not `--locked`), [`update`] records each source's name, its
//!   location as written in the config or on the command line (always redacted: a lockfile is meant to
//!   be committed), its ref and the commit built. The file is rewritten, atomically, only when that
//!   changes.
//! - `build --locked` calls [`pin`] while the configuration is loaded: the lockfile must list exactly
//!   the configured sources, with the same locations and refs, and each source is then built at its
//!   pinned commit, whatever its ref points to now. Any disagreement is a configuration error (exit 2)
//!   that lists every difference.
//!
//! The lockfile sits next to the config file, or in the current folder when there is none:
//!
//! ```yaml
//! # sigma-galaxy.lock: ...
//! version: 1
//! sources:
//! - name: sigmahq
//!   location: https://github.com/SigmaHQ/sigma.git
//!   ref: master
//!   commit: 0123456789abcdef0123456789abcdef01234567
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{Config, SourceConfig};
use crate::error::{Error, Result};
use crate::report::Summary;

/// The format version written and understood.
const VERSION: u32 = 1;

const HEADER: &str = "# sigma-galaxy.lock: the commit each source was last built from, written by `sigma-galaxy build`.\n\
# `sigma-galaxy build --locked` builds exactly these commits. Commit this file with the config.\n";

/// The lockfile's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Format version, 1.
    pub version: u32,
    /// The sources, in the configured order.
    pub sources: Vec<LockedSource>,
}

/// One source pinned to a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedSource {
    /// The source's name.
    pub name: String,
    /// The location as written, redacted.
    pub location: String,
    /// The ref as configured; absent for HEAD.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The commit built (full id).
    pub commit: String,
}

/// The configured ref, with `HEAD` written out or not meaning the same.
fn normal_ref(reference: Option<&str>) -> Option<&str> {
    reference.filter(|r| *r != "HEAD")
}

/// Reads a lockfile; `Ok(None)` when there is none. A lockfile that cannot be read or parsed is a
/// configuration error.
pub fn read(path: &Path) -> Result<Option<Lockfile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Config {
                path: Some(path.to_path_buf()),
                line: None,
                message: format!("cannot read: {e}"),
            });
        }
    };
    let lock: Lockfile = yaml_serde::from_str(&text).map_err(|e| Error::Config {
        path: Some(path.to_path_buf()),
        line: e.location().map(|l| l.line()),
        message: format!("not a sigma-galaxy lockfile: {e}"),
    })?;
    if lock.version != VERSION {
        return Err(Error::Config {
            path: Some(path.to_path_buf()),
            line: None,
            message: format!(
                "lockfile version {} (this sigma-galaxy reads version {VERSION})",
                lock.version
            ),
        });
    }
    Ok(Some(lock))
}

/// `--locked`: checks that the lockfile at `path` pins exactly `sources` (same names, locations and
/// refs) and sets each source's [`SourceConfig::pinned`] commit.
pub fn pin(path: &Path, sources: &mut [SourceConfig]) -> Result<()> {
    let lock = read(path)?.ok_or_else(|| {
        Error::config(format!(
            "--locked: {} does not exist: run `sigma-galaxy build` once without --locked to write it",
            path.display()
        ))
    })?;
    let mut problems = Vec::new();
    for s in sources.iter() {
        match lock.sources.iter().find(|l| l.name == s.name) {
            None => problems.push(format!("source {} is configured but not locked", s.name)),
            Some(l) if l.location != s.lock_location => problems.push(format!(
                "source {}: the config says {}, the lockfile {}",
                s.name, s.lock_location, l.location
            )),
            Some(l) if normal_ref(l.reference.as_deref()) != normal_ref(s.reference.as_deref()) => {
                problems.push(format!(
                    "source {}: the config builds ref {}, the lockfile ref {}",
                    s.name,
                    normal_ref(s.reference.as_deref()).unwrap_or("HEAD"),
                    normal_ref(l.reference.as_deref()).unwrap_or("HEAD")
                ));
            }
            Some(_) => {}
        }
    }
    for l in &lock.sources {
        if !sources.iter().any(|s| s.name == l.name) {
            problems.push(format!("source {} is locked but not configured", l.name));
        }
    }
    if !problems.is_empty() {
        return Err(Error::config(format!(
            "--locked: {} does not match the configuration: {}; build without --locked to update it",
            path.display(),
            problems.join("; ")
        )));
    }
    for s in sources.iter_mut() {
        let Some(l) = lock.sources.iter().find(|l| l.name == s.name) else {
            continue;
        };
        let commit = git2::Oid::from_str(&l.commit)
            .ok()
            .filter(|_| matches!(l.commit.len(), 40 | 64))
            .ok_or_else(|| Error::Config {
                path: Some(path.to_path_buf()),
                line: None,
                message: format!(
                    "source {}: commit {:?} is not a full commit id",
                    l.name, l.commit
                ),
            })?;
        s.pinned = Some(commit);
    }
    Ok(())
}

/// The lockfile of a finished build: each configured source with the commit the summary says it built.
pub fn from_build(config: &Config, summary: &Summary) -> Lockfile {
    let sources = config
        .sources
        .iter()
        .filter_map(|s| {
            let built = summary.sources.iter().find(|b| b.name == s.name)?;
            Some(LockedSource {
                name: s.name.clone(),
                location: s.lock_location.clone(),
                reference: normal_ref(s.reference.as_deref()).map(str::to_string),
                commit: built.commit.clone(),
            })
        })
        .collect();
    Lockfile {
        version: VERSION,
        sources,
    }
}

/// After a successful build: writes the lockfile when what it would say changed (never under
/// `--locked`). Returns whether it was written.
pub fn update(config: &Config, summary: &Summary) -> Result<bool> {
    match &config.lockfile {
        Some(path) if !config.locked && config.mode.writes() => {
            write(path, &from_build(config, summary))
        }
        _ => Ok(false),
    }
}

/// `--locked`: pins every source of `config` to the commit its lockfile records (see [`pin`]).
pub fn pin_config(config: &mut Config) -> Result<()> {
    match (&config.lockfile, config.locked) {
        (Some(path), true) => pin(&path.clone(), &mut config.sources),
        _ => Ok(()),
    }
}

/// Writes `lock` to `path` atomically, unless the file already says exactly that.
pub fn write(path: &Path, lock: &Lockfile) -> Result<bool> {
    let body = yaml_serde::to_string(lock).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        message: format!("serialising the lockfile: {e}"),
    })?;
    let text = format!("{HEADER}{}\n", body.trim_end());
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    crate::atomic::write(path, text.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> Lockfile {
        Lockfile {
            version: 1,
            sources: vec![
                LockedSource {
                    name: "sigmahq".into(),
                    location: "https://x:***@github.com/SigmaHQ/sigma.git".into(),
                    reference: Some("master".into()),
                    commit: "0123456789abcdef0123456789abcdef01234567".into(),
                },
                LockedSource {
                    name: "local".into(),
                    location: "../rules".into(),
                    reference: None,
                    commit: "1111111111111111111111111111111111111111".into(),
                },
            ],
        }
    }

    #[test]
    fn round_trips_and_writes_only_on_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(crate::config::LOCKFILE_NAME);
        assert_eq!(read(&path).expect("absent is fine"), None);
        assert!(write(&path, &lock()).expect("write"));
        assert!(!write(&path, &lock()).expect("same content"));
        assert_eq!(read(&path).expect("read"), Some(lock()));
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(text.starts_with("# sigma-galaxy.lock"), "{text}");
        assert!(text.contains("  ref: master\n"), "{text}");
        assert!(!text.contains("ref: null"), "{text}");
    }

    #[test]
    fn numeric_looking_commits_stay_strings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(crate::config::LOCKFILE_NAME);
        let mut l = lock();
        l.sources[1].commit = "1234567890123456789012345678901234567890".into();
        write(&path, &l).expect("write");
        assert_eq!(read(&path).expect("read"), Some(l));
    }

    #[test]
    fn bad_lockfiles_are_configuration_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(crate::config::LOCKFILE_NAME);
        std::fs::write(&path, "version: 1\nsources: []\nextra: 1\n").expect("write");
        assert_eq!(read(&path).expect_err("unknown key").exit_code(), 2);
        std::fs::write(&path, "version: 9\nsources: []\n").expect("write");
        assert_eq!(read(&path).expect_err("version").exit_code(), 2);
    }
}
