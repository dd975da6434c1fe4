//! sigma-galaxy: build MISP galaxies from Sigma rule repositories.
//!
//! The pipeline is the architecture; each stage is one module and data flows one way:
//!
//! ```text
//! config → sources → diff → parse → state → merge → relate → emit → report
//! ```
//!
//! [`run`] is the whole program behind `main`: it takes the parsed command line and returns an exit code.

pub mod build;
pub mod cli;
pub mod config;
pub mod diff;
pub mod emit;
pub mod error;
pub mod findings;
pub mod lockfile;
pub mod merge;
pub mod parse;
pub mod relate;
pub mod report;
pub mod sources;
pub mod state;
pub mod validate;

use std::io::Write;

use cli::{Cli, Command};
use config::Config;
pub use error::{Error, Result};

/// Runs one command; returns the process exit code (0 done, 1 invalid input or rule errors under
/// `--strict`, 2 usage or configuration error). Errors are printed on stderr here, once.
pub fn run(cli: Cli) -> u8 {
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn execute(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Build(args) => {
            let config = Config::load(&args)?;
            let summary = build::build(&config)?;
            lockfile::update(&config, &summary)?;
            report::print(&summary, config.output).map_err(|e| Error::io("<stdout>", e))?;
            Ok(0)
        }
        Command::Validate(args) => {
            let problems = validate::validate_pair(&args.cluster, &args.galaxy)
                .map_err(|e| Error::io(&args.cluster, e))?;
            let mut out = std::io::stdout().lock();
            for p in &problems {
                writeln!(out, "{p}").map_err(|e| Error::io("<stdout>", e))?;
            }
            eprintln!("{} problem(s)", problems.len());
            Ok(u8::from(!problems.is_empty()))
        }
        Command::Init(args) => {
            if args.path.exists() && !args.force {
                return Err(Error::config(format!(
                    "{} exists; use --force to overwrite it",
                    args.path.display()
                )));
            }
            std::fs::write(&args.path, config::STARTER_CONFIG)
                .map_err(|e| Error::io(&args.path, e))?;
            eprintln!(
                "wrote {}: edit its sources, then run `sigma-galaxy build`",
                args.path.display()
            );
            Ok(0)
        }
    }
}
