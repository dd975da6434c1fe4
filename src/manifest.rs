//! Manifest: `manifest.json`, what a release bundle is and how to make it again.
//!
//! This module owns the manifest's format. It names the tool (version and the commit it was built
//! from), each source (name, redacted location, ref, commit), the galaxy (type, uuid, name, version,
//! value count), the SHA-256 of every other file of the bundle, and the *identity records* of the
//! values whose uuid is not the rule's own id: source, path, document index, uuid and the SHA-256 of
//! the rule file's bytes. Those records are exactly a UUID ledger ([`crate::state::ledger::Ledger`]),
//! so a fresh state seeded with them gives the same uuids, even for rules renamed since they were
//! first seen, on a machine that never saw the history in between.
//!
//! Nothing in it depends on the machine, the time of the run or the paths of the bundle: two releases
//! of the same lockfile give the same manifest.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::state::ledger::Ledger;

/// The manifest's file name in a bundle.
pub const FILE_NAME: &str = "manifest.json";

/// The format version written and understood.
const FORMAT: u32 = 1;

/// The tool's git commit (`unknown` outside a git checkout), recorded by the build script.
pub const TOOL_COMMIT: &str = env!("SIGMA_GALAXY_COMMIT");

/// A release's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tool: Tool,
    pub galaxy: Galaxy,
    pub sources: Vec<Source>,
    /// Bundle path (`/`-separated) → hex SHA-256, for every file but the manifest and SHA256SUMS.
    pub files: BTreeMap<String, String>,
    /// Values whose uuid is derived or remembered, sorted by source, path and index.
    pub identities: Vec<Identity>,
}

/// The tool that made the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Tool {
    /// This tool.
    pub fn this() -> Tool {
        Tool {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            commit: Some(TOOL_COMMIT)
                .filter(|c| *c != "unknown")
                .map(str::to_string),
        }
    }
}

/// The galaxy released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Galaxy {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub uuid: Uuid,
    /// The cluster's version.
    pub version: i64,
    /// Values in the cluster.
    pub values: usize,
}

/// A source, as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    /// As written in the configuration, credentials redacted.
    pub location: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub commit: String,
}

/// How a value without its own id got its uuid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub source: String,
    pub path: String,
    /// The rule's document index in its file.
    pub index: u32,
    pub uuid: Uuid,
    /// Hex SHA-256 of the rule file's bytes.
    pub content: String,
}

/// The identity records of a ledger's `sources`, sorted.
pub fn identities(ledger: &Ledger, sources: &[String]) -> Vec<Identity> {
    let mut out: Vec<Identity> = ledger
        .sources
        .iter()
        .filter(|(name, _)| sources.contains(name))
        .flat_map(|(name, entries)| {
            entries.iter().filter_map(move |(slot, e)| {
                let (path, index) = slot.rsplit_once('#')?;
                Some(Identity {
                    source: name.clone(),
                    path: path.to_string(),
                    index: index.parse().ok()?,
                    uuid: e.uuid,
                    content: e.content.clone(),
                })
            })
        })
        .collect();
    out.sort();
    out
}

impl Manifest {
    /// A new manifest with this tool's name.
    pub fn new(
        galaxy: Galaxy,
        sources: Vec<Source>,
        files: BTreeMap<String, String>,
        identities: Vec<Identity>,
    ) -> Manifest {
        Manifest {
            format: FORMAT,
            tool: Tool::this(),
            galaxy,
            sources,
            files,
            identities,
        }
    }

    /// The identity records as a UUID ledger.
    pub fn ledger(&self) -> Ledger {
        let mut ledger = Ledger::default();
        for i in &self.identities {
            ledger.record(&i.source, &i.path, i.index, i.uuid, &i.content);
        }
        ledger
    }

    /// The manifest's text: pretty JSON, keys in a fixed order, a final newline.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads `DIR/manifest.json`; `Ok(None)` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Input {
            path: path.clone(),
            message: format!("not a sigma-galaxy manifest (line {}: {e})", e.line()),
        })?;
        if m.format != FORMAT {
            return Err(Error::Input {
                path,
                message: format!(
                    "manifest format {} (this sigma-galaxy reads {FORMAT})",
                    m.format
                ),
            });
        }
        Ok(Some(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_records_round_trip_through_a_ledger() {
        let mut ledger = Ledger::default();
        ledger.record("s", "rules/a.yml", 1, Uuid::from_u128(7), "h1");
        ledger.record("s", "rules/b#c.yml", 0, Uuid::from_u128(8), "h2");
        ledger.record("gone", "x.yml", 0, Uuid::from_u128(9), "h3");
        let ids = identities(&ledger, &["s".to_string()]);
        assert_eq!(ids.len(), 2, "only the released sources");
        assert_eq!(ids[1].path, "rules/b#c.yml");
        let m = Manifest::new(
            Galaxy {
                kind: "t".into(),
                name: "T".into(),
                uuid: Uuid::from_u128(1),
                version: 5,
                values: 2,
            },
            Vec::new(),
            BTreeMap::new(),
            ids,
        );
        let back: Manifest = serde_json::from_str(&m.to_text()).expect("json");
        assert_eq!(back, m);
        let mut expected = ledger.clone();
        expected.sources.remove("gone");
        assert_eq!(back.ledger(), expected);
    }
}
