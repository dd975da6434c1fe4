//! `sigma-galaxy coverage`: the ATT&CK coverage of a galaxy, from its cluster file or from the galaxy a
//! configuration builds (the normal build pipeline), rendered by [`crate::coverage`].

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{BuildArgs, CoverageArgs, CoverageFormat};
use crate::config::{Config, DEFAULT_CONFIG_FILE};
use crate::coverage::{self, Options};
use crate::error::{Error, Result};
use crate::{atomic, build, emit};

/// Runs `coverage`; returns the exit code.
pub fn run(args: &CoverageArgs) -> Result<u8> {
    let (cluster, configured) = match (&args.cluster, &args.config) {
        (Some(cluster), _) => (cluster.clone(), None),
        (None, Some(file)) => built_cluster(file, args.quiet)?,
        (None, None) if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            built_cluster(Path::new(DEFAULT_CONFIG_FILE), args.quiet)?
        }
        (None, None) => {
            return Err(Error::config(
                "coverage needs a galaxy: give --cluster FILE (a built clusters/TYPE.json) or --config FILE",
            ));
        }
    };
    let galaxy = coverage::read_cluster(&cluster)?;
    let attack_dir = args
        .attack_clusters
        .clone()
        .or_else(|| configured.as_ref().and_then(|c| c.attack_clusters.clone()));
    let attack = attack_dir
        .as_deref()
        .map(coverage::load_attack)
        .transpose()?;
    let stats = args
        .misp_tag_stats
        .as_deref()
        .map(coverage::read_tag_stats)
        .transpose()?;
    let opts = Options {
        roll_up: args.roll_up,
        levels: args.level.iter().map(|l| l.to_lowercase()).collect(),
        sources: args.source.clone(),
        // One configured source writes no provenance: every value is its.
        default_source: configured
            .as_ref()
            .filter(|c| c.sources.len() == 1)
            .map(|c| c.sources[0].name.clone()),
    };
    coverage::check_filters(&galaxy, &opts)?;
    let result = coverage::analyze(&galaxy, attack.as_ref(), stats.as_ref(), &opts);
    let text = match args.format {
        CoverageFormat::Markdown => coverage::markdown(&result),
        CoverageFormat::Json => coverage::to_json(&result),
        CoverageFormat::Navigator => coverage::navigator(&result, args.attack_version.as_deref()),
    };
    match &args.out {
        Some(path) => atomic::write(path, text.as_bytes())?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("<stdout>", e))?,
    }
    if !args.quiet {
        eprintln!(
            "{} rules, {} techniques covered{}",
            result.rules,
            result.techniques.len(),
            result
                .attack
                .as_ref()
                .map(|a| format!(" ({} of {} in the ATT&CK clusters)", a.covered, a.catalogue))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

/// Builds the galaxy of configuration `file` exactly as `build --config FILE` would (incremental, same
/// state folder and outputs) and returns its cluster file and the configuration.
fn built_cluster(file: &Path, quiet: bool) -> Result<(PathBuf, Option<Config>)> {
    let build_args = BuildArgs {
        config: Some(file.to_path_buf()),
        quiet,
        ..BuildArgs::default()
    };
    let config = Config::load(&build_args)?;
    let summary = build::build(&config)?;
    if !quiet {
        eprintln!(
            "built {} ({} values, {} warnings{})",
            summary.cluster,
            summary.values,
            summary.warnings.len(),
            if summary.wrote { "" } else { ", unchanged" }
        );
    }
    let cluster = emit::cluster_path(&config.out, &config.galaxy.kind);
    Ok((cluster, Some(config)))
}
