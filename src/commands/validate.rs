//! `sigma-galaxy validate`: check a cluster/galaxy pair as misp-galaxy's CI and MISP do.

use std::io::Write;

use crate::cli::ValidateArgs;
use crate::error::{Error, Result};
use crate::validate;

/// Runs `validate`: one line per problem on stdout; exit 1 if there is any.
pub fn run(args: &ValidateArgs) -> Result<u8> {
    let problems = validate::validate_pair_with(&args.cluster, &args.galaxy, args.value_versions)
        .map_err(|e| Error::io(&args.cluster, e))?;
    let mut out = std::io::stdout().lock();
    for p in &problems {
        writeln!(out, "{p}").map_err(|e| Error::io("<stdout>", e))?;
    }
    eprintln!("{} problem(s)", problems.len());
    Ok(u8::from(!problems.is_empty()))
}
