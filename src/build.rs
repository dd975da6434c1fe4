//! Build: runs the pipeline stages in order for the `build` command.
//!
//! `config → sources → parse → merge → relate → emit → report`: this module only wires the stages
//! together; each stage's rules live in its own module.

use rayon::prelude::*;

use crate::config::Config;
use crate::emit;
use crate::error::{Error, Result};
use crate::merge::{self, Candidate};
use crate::parse::{self, ParsedFile};
use crate::relate::{self, AttackIndex};
use crate::report::{SourceSummary, Summary, Warning};
use crate::sources::{self, Snapshot};

/// Builds the galaxy described by `config` and writes it (unless nothing changed).
pub fn build(config: &Config) -> Result<Summary> {
    let snapshots: Vec<Snapshot> = config
        .sources
        .iter()
        .map(sources::open)
        .collect::<Result<_>>()?;
    let attack = config
        .attack_clusters
        .as_deref()
        .map(AttackIndex::load)
        .transpose()?;

    let mut blobs = Vec::new();
    for (s, snap) in snapshots.iter().enumerate() {
        for f in &snap.files {
            blobs.push((s, f.path.as_str(), snap.read(f.blob)?));
        }
    }
    let parsed: Vec<ParsedFile> = blobs
        .par_iter()
        .map(|(_, _, bytes)| parse::parse_file(bytes))
        .collect();

    let names: Vec<String> = snapshots.iter().map(|s| s.name.clone()).collect();
    let mut warnings = Vec::new();
    let mut candidates = Vec::new();
    for ((s, path, _), file) in blobs.iter().zip(parsed) {
        let snap = &snapshots[*s];
        for p in file.problems {
            warnings.push(Warning::new(&snap.name, path, p.line, p.message));
        }
        let link = snap
            .web
            .as_ref()
            .map(|w| w.file_url(&snap.commit.to_string(), path));
        for rule in file.rules {
            candidates.push(Candidate {
                source: *s,
                path: path.to_string(),
                rule,
                link: link.clone(),
                remembered: None,
            });
        }
    }
    let parsed_count = blobs.len();
    drop(blobs);

    let values = merge::merge(
        candidates,
        &names,
        config.galaxy.uuid,
        &config.galaxy.kind,
        config.filters,
        &mut warnings,
    );
    let related = relate::relate(&values, attack.as_ref());
    warnings.sort();
    if config.strict && !warnings.is_empty() {
        for w in &warnings {
            eprintln!("error: {w}");
        }
        return Err(Error::Strict {
            count: warnings.len(),
        });
    }

    let clock = snapshots.iter().map(|s| s.commit_time).max().unwrap_or(1);
    let written = emit::write(
        &config.out,
        &config.galaxy.kind,
        emit::cluster_json(&config.galaxy, &values, &related),
        emit::galaxy_json(&config.galaxy),
        clock,
    )?;
    Ok(Summary {
        values: values.len(),
        parsed: parsed_count,
        reused: 0,
        added: written.added,
        changed: written.changed,
        removed: written.removed,
        version: written.version,
        wrote: written.wrote,
        cluster: written.cluster.display().to_string(),
        galaxy: written.galaxy.display().to_string(),
        sources: snapshots
            .iter()
            .map(|s| SourceSummary {
                name: s.name.clone(),
                location: s.location.clone(),
                commit: s.commit.to_string(),
                files: s.files.len(),
                links: s.web.is_some(),
            })
            .collect(),
        warnings,
        reasons: Vec::new(),
    })
}
