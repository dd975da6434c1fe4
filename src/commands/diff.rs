//! `sigma-galaxy diff`: compare two cluster files and print what changed.

use crate::cli::{DiffArgs, DiffFormat};
use crate::compare;
use crate::error::{Error, Result};
use std::io::Write;

/// Runs `diff`: the comparison on stdout; exit 0 whether or not anything changed.
pub fn run(args: &DiffArgs) -> Result<u8> {
    let old = compare::read(&args.old)?;
    let new = compare::read(&args.new)?;
    let c = compare::compare(&old, &new);
    let text = match args.format {
        DiffFormat::Human => compare::human(&c),
        DiffFormat::Markdown => compare::markdown(&c),
        DiffFormat::Json => {
            let mut t = serde_json::to_string_pretty(&c).unwrap_or_default();
            t.push('\n');
            t
        }
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("<stdout>", e))?;
    Ok(0)
}
