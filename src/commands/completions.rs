//! `sigma-galaxy completions SHELL`: a completion script for the shell, generated from the clap
//! definitions (clap_complete), on stdout.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Result;

/// Prints the completion script.
pub fn run(args: &CompletionsArgs) -> Result<u8> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    Ok(0)
}
