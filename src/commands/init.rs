//! `sigma-galaxy init`: write a commented starter configuration.

use crate::cli::InitArgs;
use crate::config;
use crate::error::{Error, Result};

/// Runs `init`; refuses to overwrite an existing file without `--force`.
pub fn run(args: &InitArgs) -> Result<u8> {
    if args.path.exists() && !args.force {
        return Err(Error::config(format!(
            "{} exists; use --force to overwrite it",
            args.path.display()
        )));
    }
    std::fs::write(&args.path, config::STARTER_CONFIG).map_err(|e| Error::io(&args.path, e))?;
    eprintln!(
        "wrote {}: edit its sources, then run `sigma-galaxy build`",
        args.path.display()
    );
    Ok(0)
}
