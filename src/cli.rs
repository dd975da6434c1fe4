//! The command line as clap sees it: flags and sub-commands, their help texts, nothing else.
//!
//! These structs are turned into a validated [`crate::config::Config`] by [`crate::config::Config::load`];
//! no other module sees them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Build MISP galaxies from Sigma rule repositories.
///
/// sigma-galaxy reads Sigma rules straight from git commits (never from a working tree), turns each rule
/// into a value of a MISP galaxy cluster with a link back to the rule file, links ATT&CK techniques,
/// groups and software, and writes `clusters/<type>.json` and `galaxies/<type>.json` exactly as
/// misp-galaxy formats them.
#[derive(Debug, Parser)]
#[command(name = "sigma-galaxy", version, propagate_version = true)]
#[command(after_help = "Examples:
  sigma-galaxy init                                   write a commented sigma-galaxy.yml
  sigma-galaxy build --source . --out galaxy          build from HEAD of the repository here
  sigma-galaxy build --source ../sigma#r2024-07-17 --include 'rules/**' --json
  sigma-galaxy validate galaxy/clusters/sigma-rules.json galaxy/galaxies/sigma-rules.json")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build (or update) the galaxy from the configured sources.
    Build(BuildArgs),
    /// Check a cluster/galaxy pair the way misp-galaxy's CI and MISP do; exit 1 on any problem.
    Validate(ValidateArgs),
    /// Write a commented starter configuration file.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Configuration file (YAML). Default: ./sigma-galaxy.yml when it exists. Flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A rule repository: a path to a git repository (working tree or bare), or a URL (https://,
    /// ssh://, git@host:org/repo.git, git://, file://) mirrored into the state folder; optionally `#REF`
    /// (branch, tag or commit; default HEAD). A path inside a working tree selects that sub-folder.
    /// Repeat for several sources; replaces the config's sources.
    #[arg(long = "source", short = 's', value_name = "LOCATION[#REF]")]
    pub sources: Vec<String>,

    /// Only rule files whose repository path matches this glob (repeatable). Default: every *.yml and
    /// *.yaml file. Replaces the config's include list.
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,

    /// Skip rule files whose repository path matches this glob (repeatable). Replaces the config's list.
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// A misp-galaxy `clusters/` folder holding mitre-attack-pattern.json (and mitre-intrusion-set,
    /// mitre-malware, mitre-tool). On a MISP server: /var/www/MISP/app/files/misp-galaxy/clusters.
    /// Without it, no ATT&CK links are made.
    #[arg(long, value_name = "DIR")]
    pub attack_clusters: Option<PathBuf>,

    /// Output folder: writes DIR/clusters/TYPE.json and DIR/galaxies/TYPE.json (TYPE: the galaxy type,
    /// sigma-rules by default). Default: galaxy.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// State folder (build cache, UUID ledger). Default: .sigma-galaxy next to the output folder.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Build remote sources from what was fetched before (their mirrors in the state folder), without
    /// any network access.
    #[arg(long)]
    pub offline: bool,

    /// Build exactly the commits pinned in sigma-galaxy.lock (next to the config file, or in the
    /// current folder); fail if the lockfile's sources differ from the configured ones.
    #[arg(long)]
    pub locked: bool,

    /// Print one JSON summary object on stdout (human output goes to stderr either way).
    #[arg(long)]
    pub json: bool,

    /// Treat rule problems as errors: exit 1 and write nothing if any rule file has a problem.
    #[arg(long)]
    pub strict: bool,

    /// Ignore the state folder's cache and history and build from scratch (the UUID ledger is kept, so
    /// uuids stay stable); the state is refreshed afterwards.
    #[arg(long)]
    pub full: bool,

    /// Fail at once if another run holds the state folder, instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,

    /// What the link to each rule file points at: `last-change` (the commit that last changed the file
    /// on the built branch's first-parent history: unchanged rules keep unchanged links), `commit` (the
    /// built commit) or `branch` (the branch name, always the latest version).
    #[arg(long, value_enum, value_name = "STYLE")]
    pub ref_style: Option<RefStyleArg>,

    /// Also turn Sigma filter rules into values (skipped by default).
    #[arg(long)]
    pub filters: bool,

    /// Explain why work was done (which files were parsed, what changed) and time each stage.
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Print nothing but errors on stderr.
    #[arg(long, short = 'q', conflicts_with = "verbose")]
    pub quiet: bool,
}

/// `--ref-style` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RefStyleArg {
    LastChange,
    Commit,
    Branch,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The cluster file, e.g. galaxy/clusters/sigma-rules.json.
    pub cluster: PathBuf,
    /// The galaxy file, e.g. galaxy/galaxies/sigma-rules.json.
    pub galaxy: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the configuration.
    #[arg(default_value = "sigma-galaxy.yml")]
    pub path: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}
