//! The `sigma-galaxy` binary: parse the command line, run, exit with the code the library chose.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sigma_galaxy::cli::Cli::parse();
    ExitCode::from(sigma_galaxy::run(cli))
}
