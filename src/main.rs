//! The `sigma-galaxy` binary: parse the command line, run, exit with the code the library chose.

use std::process::ExitCode;

use clap::Parser;

/// A build allocates and frees millions of small strings (parsed rules, JSON values); mimalloc
/// does that markedly faster than the system allocator. Built without transparent huge pages
/// (feature `no_thp`): with them, the kernel zeroes a 2 MB page on the first touch of any part of
/// it, which cost a 100k-rule build over a second of system time for memory it never used.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = sigma_galaxy::cli::Cli::parse();
    sigma_galaxy::free::process_exits();
    ExitCode::from(sigma_galaxy::run(cli))
}
