//! sigma-galaxy: build MISP galaxies from Sigma rule repositories.
//!
//! The pipeline is the architecture; each stage is one module and data flows one way:
//!
//! ```text
//! config → sources → diff → parse → state → merge → relate → emit → report
//! ```
//!
//! After the pipeline, for releases: [`compare`] (what changed between two clusters), [`manifest`]
//! (what a release is and how to make it again) and [`archive`] (a byte-reproducible `.tar.gz`).
//!
//! Each sub-command is one module of [`commands`]; [`run`] is the whole program behind `main`: it
//! dispatches the parsed command line to its command and maps the error to an exit code.

pub mod archive;
pub mod atomic;
pub mod build;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod config;
pub mod coverage;
pub mod diff;
pub mod dirs;
pub mod emit;
pub mod error;
pub mod findings;
pub mod free;
pub mod hash;
pub mod lockfile;
pub mod manifest;
pub mod merge;
pub mod parse;
pub mod relate;
pub mod report;
pub mod sorted;
pub mod sources;
pub mod state;
pub mod validate;
pub mod weburl;

use cli::{Cli, Command};
pub use error::{Error, Result};

/// Runs one command; returns the process exit code (0 done, 1 invalid input or rule errors under
/// `--strict`, 2 usage or configuration error). Errors are printed on stderr here, once.
pub fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Build(args) => commands::build::run(&args),
        Command::Check(args) => commands::check::run(&args),
        Command::Validate(args) => commands::validate::run(&args),
        Command::Init(args) => commands::init::run(&args),
        Command::Completions(args) => commands::completions::run(&args),
        Command::Man(args) => commands::man::run(&args),
        Command::Diff(args) => commands::diff::run(&args),
        Command::Release(args) => commands::release::run(&args),
        Command::Install(args) => commands::install::run(&args),
        Command::Coverage(args) => commands::coverage::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
