//! The `sigma-galaxy` binary: parse the command line, run, exit with the code the library chose.

use std::process::ExitCode;

use clap::Parser;

/// A build allocates and frees millions of small strings (parsed rules, JSON values); mimalloc
/// does that markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = sigma_galaxy::cli::Cli::parse();
    ExitCode::from(sigma_galaxy::run(cli))
}
