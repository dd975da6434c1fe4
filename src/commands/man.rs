//! `sigma-galaxy man`: roff man pages generated from the clap definitions (clap_mangen), one for the
//! tool and one per sub-command (`sigma-galaxy-build.1`, ...), written atomically into a folder.

use std::path::Path;

use clap::CommandFactory;

use crate::atomic;
use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Result};

/// Writes the pages into `args.out`.
pub fn run(args: &ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let mut command = Cli::command();
    command.build();
    let mut written = vec![page(&args.out, "sigma-galaxy", command.clone())?];
    for sub in command.get_subcommands() {
        let name = format!("sigma-galaxy-{}", sub.get_name());
        written.push(page(&args.out, &name, sub.clone().name(name.clone()))?);
    }
    for file in written {
        eprintln!("wrote {file}");
    }
    Ok(0)
}

/// Renders one command's page to `DIR/NAME.1`.
fn page(dir: &Path, name: &str, command: clap::Command) -> Result<String> {
    let mut roff = Vec::new();
    let path = dir.join(format!("{name}.1"));
    clap_mangen::Man::new(command)
        .render(&mut roff)
        .map_err(|e| Error::io(&path, e))?;
    atomic::write(&path, &roff)?;
    Ok(path.display().to_string())
}
