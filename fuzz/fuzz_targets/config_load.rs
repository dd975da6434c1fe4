//! Config load: any bytes as `sigma-galaxy.yml`; loading gives a config or a typed error, never a
//! panic.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use sigma_galaxy::cli::{Cli, Command};
use sigma_galaxy::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("sigma-galaxy.yml");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(cli) = Cli::try_parse_from([
        "sigma-galaxy",
        "build",
        "--config",
        path.to_str().unwrap_or(""),
    ]) else {
        return;
    };
    if let Command::Build(args) = cli.command {
        let _ = Config::load(&args);
    }
});
