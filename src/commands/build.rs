//! `sigma-galaxy build`: run the pipeline, update the lockfile, print the summary.

use crate::cli::BuildArgs;
use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::{build, lockfile, report};

/// Runs `build`; returns the exit code.
pub fn run(args: &BuildArgs) -> Result<u8> {
    let mut config = Config::load(args)?;
    lockfile::pin_config(&mut config)?;
    let mut summary = build::build(&config)?;
    summary.dry_run = config.mode == Mode::DryRun;
    lockfile::update(&config, &summary)?;
    report::print(&summary, config.output).map_err(|e| Error::io("<stdout>", e))?;
    // `build --check`: the outputs are out of date when the build would write them.
    Ok(u8::from(config.mode == Mode::DryRun && summary.wrote))
}
