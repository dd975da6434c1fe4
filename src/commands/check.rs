//! `sigma-galaxy check`: the configured sources' rules, parsed and merged exactly as `build` does
//! (same parse, same cache, same finding codes), reported in the format CI asks for; writes no galaxy.

use std::io::Write;

use crate::cli::{CheckArgs, CheckFormat, FailOn};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::findings::Severity;
use crate::report::check::{self, CheckReport};
use crate::{build, lockfile};

/// Runs `check`: findings on stdout in `--format`, the verdict on stderr, the step summary appended
/// to `$GITHUB_STEP_SUMMARY` when it is set; exit 1 when a finding at or above `--fail-on` exists.
pub fn run(args: &CheckArgs) -> Result<u8> {
    let mut config = Config::for_check(args)?;
    lockfile::pin_config(&mut config)?;
    let summary = build::build(&config)?;
    let report = CheckReport {
        findings: &summary.warnings,
        files: &summary.files,
        rules: summary.values,
        fail_on: match args.fail_on {
            FailOn::Error => Severity::Error,
            FailOn::Warning => Severity::Warning,
        },
    };
    let text = match args.format {
        CheckFormat::Human => check::human(&report),
        CheckFormat::Json => check::json(&report),
        CheckFormat::Github => check::github(&report),
        CheckFormat::Junit => check::junit(&report),
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("<stdout>", e))?;
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(check::step_summary(&report).as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
    }
    if !args.quiet {
        for notice in &config.notices {
            eprintln!("note: {notice}");
        }
        eprintln!("{}", report.verdict());
    }
    Ok(u8::from(report.failed()))
}
