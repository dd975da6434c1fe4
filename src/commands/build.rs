//! `sigma-galaxy build`: run the pipeline, update the lockfile, print the summary.

use crate::cli::BuildArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::{build, lockfile, report};

/// Runs `build`; returns the exit code.
pub fn run(args: &BuildArgs) -> Result<u8> {
    let config = Config::load(args)?;
    let summary = build::build(&config)?;
    lockfile::update(&config, &summary)?;
    report::print(&summary, config.output).map_err(|e| Error::io("<stdout>", e))?;
    Ok(0)
}
