//! The command line as clap sees it: flags and sub-commands, their help texts, nothing else.
//!
//! These structs are turned into a validated [`crate::config::Config`] by [`crate::config::Config::load`];
//! no other module sees them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `--version`: the package version and the commit the binary was built from.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SIGMA_GALAXY_COMMIT"),
    ")"
);

/// Build MISP galaxies from Sigma rule repositories.
///
/// sigma-galaxy reads Sigma rules straight from git commits (never from a working tree), turns each rule
/// into a value of a MISP galaxy cluster with a link back to the rule file, links ATT&CK techniques,
/// groups and software, and writes `clusters/<type>.json` and `galaxies/<type>.json` exactly as
/// misp-galaxy formats them.
#[derive(Debug, Parser)]
#[command(name = "sigma-galaxy", version, long_version = LONG_VERSION, propagate_version = true)]
#[command(after_help = "Examples:
  sigma-galaxy init                                   write a commented sigma-galaxy.yml
  sigma-galaxy build --source . --out galaxy          build from HEAD of the repository here
  sigma-galaxy build --source ../sigma#r2024-07-17 --include 'rules/**' --json
  sigma-galaxy check --source . --include 'rules/**' --format github   annotate a pull request
  sigma-galaxy build --check                          exit 1 if the committed galaxy is out of date
  sigma-galaxy validate galaxy/clusters/sigma-rules.json galaxy/galaxies/sigma-rules.json
  sigma-galaxy diff old/clusters/sigma-rules.json galaxy/clusters/sigma-rules.json --format markdown
  sigma-galaxy release --out dist/sigma-galaxy-2.0 --previous dist/sigma-galaxy-1.0 --archive
  sigma-galaxy install --from dist/sigma-galaxy-2.0 --misp-dir /var/www/MISP/app/files/misp-galaxy")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build (or update) the galaxy from the configured sources.
    Build(BuildArgs),
    /// Check the configured sources' rules and report every finding with its code, file and line;
    /// writes no galaxy. Exit 1 when a finding at or above --fail-on exists.
    Check(CheckArgs),
    /// Check a cluster/galaxy pair the way misp-galaxy's CI and MISP do; exit 1 on any problem.
    Validate(ValidateArgs),
    /// Write a commented starter configuration file.
    Init(InitArgs),
    /// Print a shell completion script (e.g. `sigma-galaxy completions bash > /etc/bash_completion.d/sigma-galaxy`).
    Completions(CompletionsArgs),
    /// Write roff man pages for sigma-galaxy and each sub-command (view with `man -l sigma-galaxy.1`).
    Man(ManArgs),
    /// Compare two cluster files: values added, removed, renamed and changed, field by field.
    Diff(DiffArgs),
    /// Build the lockfile's commits into a reproducible, checksummed release bundle.
    Release(ReleaseArgs),
    /// Install a galaxy pair into a misp-galaxy folder (MISP's app/files/misp-galaxy), atomically.
    Install(InstallArgs),
    /// Count the rules covering each ATT&CK technique (by tactic, level, log source and source),
    /// optionally weighed by MISP's tag statistics; write a Navigator layer, Markdown or JSON.
    Coverage(CoverageArgs),
}

#[derive(Debug, Default, Args)]
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

    /// Build exactly the commits pinned in the lockfile (sigma-galaxy.lock next to the config file, or
    /// --lockfile); fail if the lockfile's sources differ from the configured ones.
    #[arg(long)]
    pub locked: bool,

    /// The lockfile to write after a build (and to read with --locked). Default: sigma-galaxy.lock next
    /// to the config file; without a config file, none is written unless this is given.
    #[arg(long, value_name = "FILE")]
    pub lockfile: Option<PathBuf>,

    /// Write nothing (no galaxy, no state, no lockfile); exit 1 and say what would change when the
    /// outputs in --out differ from what the sources give now, 0 when they are up to date.
    #[arg(long)]
    pub check: bool,

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

    /// Accept sources without any rule file (by default an error: a wrong --include or ref would
    /// otherwise publish an empty galaxy). In the config file: `allow_empty: true` per source.
    #[arg(long)]
    pub allow_empty: bool,

    /// Only rules with this `status` become values (repeatable, e.g. --status stable --status test);
    /// replaces every source's `status` list. Default: every status.
    #[arg(long, value_name = "STATUS")]
    pub status: Vec<String>,

    /// Only rules with this `level` become values (repeatable); replaces every source's `level` list.
    #[arg(long, value_name = "LEVEL")]
    pub level: Vec<String>,

    /// Also turn Sigma filter rules into values (skipped by default).
    #[arg(long)]
    pub filters: bool,

    /// Explain why work was done (which files were parsed, what changed) and time each stage.
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Print nothing but errors on stderr.
    #[arg(long, short = 'q', conflicts_with = "verbose")]
    pub quiet: bool,

    /// Give every value its own `version`, raised only when that value changes, so that MISP's
    /// `updateGalaxies` re-imports only the changed values instead of all of them (config:
    /// `value_versions: true`). misp-galaxy's schema does not allow it: keep it off for a galaxy
    /// meant for the misp-galaxy repository.
    #[arg(long)]
    pub value_versions: bool,
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
    /// Accept a `version` in each value (written by `build --value-versions`; MISP reads it,
    /// misp-galaxy's schema forbids it): it must then be a positive signed 32-bit integer no greater
    /// than the cluster's.
    #[arg(long)]
    pub value_versions: bool,
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

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration file (YAML). Default: ./sigma-galaxy.yml when it exists. Flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A rule repository, as for `build` (path or URL, optionally `#REF`). Repeatable; replaces the
    /// config's sources.
    #[arg(long = "source", short = 's', value_name = "LOCATION[#REF]")]
    pub sources: Vec<String>,

    /// Only rule files whose repository path matches this glob (repeatable).
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,

    /// Skip rule files whose repository path matches this glob (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// A misp-galaxy `clusters/` folder: ATT&CK tags that resolve to nothing there are reported.
    #[arg(long, value_name = "DIR")]
    pub attack_clusters: Option<PathBuf>,

    /// State folder whose parse cache is reused (read only). Default: as for `build`.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// How findings are printed on stdout: `human` (grouped by file), `json` (one object), `github`
    /// (workflow commands that annotate the pull request's files) or `junit` (one testcase per rule file).
    #[arg(long, value_enum, default_value_t = CheckFormat::Human, value_name = "FORMAT")]
    pub format: CheckFormat,

    /// The lowest severity that makes the check fail (exit 1).
    #[arg(long, value_enum, default_value_t = FailOn::Error, value_name = "SEVERITY")]
    pub fail_on: FailOn,

    /// Build remote sources from their mirrors as last fetched, without network access.
    #[arg(long)]
    pub offline: bool,

    /// Print nothing on stderr but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `check --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    Github,
    Junit,
}

/// `check --fail-on` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Folder to write the pages into (sigma-galaxy.1, sigma-galaxy-build.1, ...).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older cluster file (e.g. from the previous release).
    pub old: PathBuf,
    /// The newer cluster file.
    pub new: PathBuf,
    /// `human` (plain text), `json` (one object) or `markdown` (counts, then tables: ready for a
    /// release note or a pull-request comment).
    #[arg(long, value_enum, default_value = "human", value_name = "FORMAT")]
    pub format: DiffFormat,
}

/// `diff --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The bundle folder to write (replaced as a whole): clusters/, galaxies/, manifest.json,
    /// SHA256SUMS and, with --previous, CHANGELOG.md. With --archive also DIST.tar.gz beside it.
    #[arg(long, short = 'o', value_name = "DIST")]
    pub out: PathBuf,

    /// Configuration file (YAML). Default: ./sigma-galaxy.yml when it exists. The lockfile next to it
    /// says which commits are built.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The previous release bundle: its manifest's identity records seed the UUID ledger of a fresh
    /// state (so rules without an id keep their uuids), and its cluster is the base of the versions
    /// and of CHANGELOG.md. A folder with only a manifest.json is enough to reproduce uuids.
    #[arg(long, value_name = "DIR")]
    pub previous: Option<PathBuf>,

    /// Also write DIST.tar.gz, byte-reproducible: sorted entries, mtime SOURCE_DATE_EPOCH (else the
    /// newest source commit's time), owner 0:0 without names, fixed modes, no gzip name or time.
    #[arg(long)]
    pub archive: bool,

    /// State folder (build cache, UUID ledger). Default: the configuration's, as for `build`.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Give every value its own version (see `build --value-versions`).
    #[arg(long)]
    pub value_versions: bool,

    /// Print nothing but errors on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The misp-galaxy folder to install into (gets DIR/galaxies/TYPE.json and DIR/clusters/TYPE.json).
    /// On a MISP server: /var/www/MISP/app/files/misp-galaxy.
    #[arg(long, value_name = "DIR")]
    pub misp_dir: PathBuf,

    /// Where the pair to install is: a build's output folder or a release bundle.
    #[arg(long, value_name = "DIR", default_value = "galaxy")]
    pub from: PathBuf,

    /// Install even when the installed cluster has another uuid, or a version that is not lower
    /// (MISP would then ignore the update).
    #[arg(long)]
    pub force: bool,

    /// Then run MISP's update: `sudo -u www-data CAKE Admin updateGalaxies` (without sudo when
    /// already running as that user), and report its exit status.
    #[arg(long)]
    pub update_misp: bool,

    /// MISP's cake console.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/www/MISP/app/Console/cake"
    )]
    pub cake: PathBuf,

    /// The web server's user, which MISP's update runs as (apache or nginx on some systems).
    #[arg(long, value_name = "USER", default_value = "www-data")]
    pub web_user: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sigma-galaxy coverage --cluster galaxy/clusters/sigma-rules.json --attack-clusters misp-galaxy/clusters
  sigma-galaxy coverage --config sigma-galaxy.yml --format navigator --out layer.json
  sigma-galaxy coverage --cluster galaxy/clusters/sigma-rules.json --misp-tag-stats tags.json --level high,critical")]
pub struct CoverageArgs {
    /// Build the galaxy of this configuration first (as `build --config FILE` does, incrementally),
    /// then analyse its cluster. Default: ./sigma-galaxy.yml when neither this nor --cluster is given.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "cluster")]
    pub config: Option<PathBuf>,

    /// Analyse this galaxy cluster file (e.g. galaxy/clusters/sigma-rules.json) as it is.
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,

    /// Output: `markdown` (tables per tactic, log source and level, gaps), `navigator` (an ATT&CK
    /// Navigator layer, format 4.5: score = rule count, comment = rule titles) or `json` (all data).
    #[arg(long, short = 'f', value_enum, default_value = "markdown")]
    pub format: CoverageFormat,

    /// A misp-galaxy `clusters/` folder holding mitre-attack-pattern.json: technique names, tactics
    /// and the techniques no rule covers. Default with --config: the configuration's.
    #[arg(long, value_name = "DIR")]
    pub attack_clusters: Option<PathBuf>,

    /// MISP's tag statistics (the JSON of /users/statistics/tags.json or /tags/tagStatistics): weigh
    /// each rule by the number of events tagged misp-galaxy:TYPE="TITLE" (ignoring case).
    #[arg(long, value_name = "FILE")]
    pub misp_tag_stats: Option<PathBuf>,

    /// Only rules of these levels (informational, low, medium, high, critical; repeat or separate
    /// with commas).
    #[arg(long, value_name = "LEVEL", value_delimiter = ',')]
    pub level: Vec<String>,

    /// Only rules from these sources (their configured names, from each value's meta.source;
    /// repeat or separate with commas).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub source: Vec<String>,

    /// Count sub-techniques (T1059.001) for their parent technique (T1059).
    #[arg(long)]
    pub roll_up: bool,

    /// The ATT&CK release the clusters were generated from (e.g. 17), written as the layer's
    /// versions.attack: misp-galaxy's clusters do not record it. Without it the Navigator assumes its
    /// current release.
    #[arg(long, value_name = "VERSION")]
    pub attack_version: Option<String>,

    /// Write to this file (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Print nothing but errors on stderr (also quiets the build with --config).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `coverage --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoverageFormat {
    Markdown,
    Navigator,
    Json,
}
