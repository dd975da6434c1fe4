//! Config: the one validated description of a run, built from the config file and the flags.
//!
//! [`Config::load`] is the only place that sees clap's structs and the YAML file's raw shape: it reads the
//! file (default `./sigma-galaxy.yml` when present), lets flags override it, resolves relative paths
//! (config-file paths against the file's folder, flag paths against the current folder), compiles globs and
//! checks every value. Everything after it works on [`Config`] and can assume it is valid.
//!
//! The file format, with every key optional:
//!
//! ```yaml
//! out: galaxy                 # output folder
//! state: .sigma-galaxy        # state folder (default: .sigma-galaxy next to `out`)
//! attack_clusters: /var/www/MISP/app/files/misp-galaxy/clusters
//! strict: false               # rule problems are errors
//! filters: false              # also emit Sigma filter rules
//! provenance: true            # meta.source / source-url on values (default: with two or more sources)
//! ref_style: last-change      # rule links: last-change, commit or branch
//! value_versions: false       # each value gets its own version (MISP re-imports only changed values)
//! include: ['rules/**']       # globs on repository paths, for every source without its own
//! exclude: ['deprecated/**']
//! sources:
//!   - name: sigmahq           # unique; default: the repository folder's name
//!     location: ../sigma      # path to a git repository (working tree or bare)
//!     ref: master             # branch, tag or commit; default HEAD
//!     include: ['rules/**']
//!     exclude: []
//!     web_url: 'https://git.corp/{repo}/blob/{commit}/{path}'
//!     host: gitlab            # web URL style for a self-hosted server
//!     allow_empty: false      # a source without rule files is an error unless this is true
//!     priority: 0             # higher wins ids shared with other sources (ties: listed first)
//!     status: [stable, test]  # only rules with these values (also level, product, category, service)
//!   - name: in-house          # a remote: https://, ssh://, git@host:org/repo.git, git://, file://
//!     location: https://gitlab.corp/sec/rules.git
//!     token_env: GITLAB_TOKEN # https: token (or user_env + password_env); else git's credential helpers
//!     ssh_key: ~/.ssh/rules   # ssh: key file (ssh_key_passphrase_env: VAR); else the agent, ~/.ssh/id_*
//!     ssh_known_hosts: known_hosts   # ssh: trust only these host keys (default ~/.ssh/known_hosts)
//!     insecure_skip_host_key_check: false
//!     depth: 1                # shallow fetches of that many commits (default: the ref's full history)
//! galaxy:                     # the galaxy's own fields; defaults are MISP's published galaxy
//!   type: sigma-rules
//!   name: Sigma-Rules
//!   uuid: 9cf7cd2e-d5f1-48c4-9909-7896ba1c96b2
//!   namespace: misp
//!   icon: link
//!   category: rules
//!   description: ...          # the galaxy's description
//!   cluster_description: ...  # the cluster's description
//!   authors: ['@Joseliyo_Jstnk']
//!   source: https://github.com/jstnk9/MISP/tree/main/misp-galaxy/sigma
//! ```

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use uuid::Uuid;

use crate::cli::{BuildArgs, CheckArgs, RefStyleArg};
use crate::error::{Error, Result};
use crate::parse::Limits;
use crate::weburl::{self, HostKind, Template};

/// The config file looked for in the current folder when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "sigma-galaxy.yml";

/// The lockfile's name, beside the config file.
pub const LOCKFILE_NAME: &str = "sigma-galaxy.lock";

/// A validated build configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Rule repositories, in the order given; their names are unique.
    pub sources: Vec<SourceConfig>,
    /// Output folder (holds `clusters/` and `galaxies/`).
    pub out: PathBuf,
    /// State folder.
    pub state: PathBuf,
    /// misp-galaxy `clusters/` folder for ATT&CK links.
    pub attack_clusters: Option<PathBuf>,
    /// The galaxy's own fields.
    pub galaxy: GalaxyInfo,
    /// Rule problems fail the run.
    pub strict: bool,
    /// Emit Sigma filter rules too.
    pub filters: bool,
    /// Each value's meta names the source it came from (`source`, `source-url`). Default: on for two
    /// or more sources.
    pub provenance: bool,
    /// How to talk to the user.
    pub output: Output,
    /// Remote sources are built from their mirrors as last fetched (`--offline`).
    pub offline: bool,
    /// Build exactly the lockfile's commits (`--locked`); the lockfile is then left as it is.
    pub locked: bool,
    /// The lockfile: `--lockfile`, else `sigma-galaxy.lock` next to the config file; `None` (none is
    /// written) without either.
    pub lockfile: Option<PathBuf>,
    /// What the run does with the sources.
    pub mode: Mode,
    /// Things worth knowing about the configuration (e.g. a source named after its folder), shown on
    /// stderr and in the JSON summary.
    pub notices: Vec<String>,
    /// Ignore the cache and history (`--full`).
    pub full: bool,
    /// Fail instead of waiting for the state lock.
    pub no_wait: bool,
    /// What rule links point at.
    pub ref_style: RefStyle,
    /// Every value gets its own `version` (see [`crate::emit`]).
    pub value_versions: bool,
    /// How much one rule file may hold (`limits:`).
    pub limits: Limits,
}

/// What a run does with what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Build and write the galaxy, the state and the lockfile.
    #[default]
    Build,
    /// `build --check`: build in memory and compare with the outputs; write nothing.
    DryRun,
    /// `check`: parse and merge to report findings; write nothing.
    Check,
}

impl Mode {
    /// Whether the run may write (galaxy, state, lockfile).
    pub fn writes(self) -> bool {
        self == Mode::Build
    }
}

/// What the link to a rule file points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefStyle {
    /// The commit that last changed the file on the first-parent history.
    #[default]
    LastChange,
    /// The built commit.
    Commit,
    /// The built branch's name.
    Branch,
}

impl RefStyle {
    /// The name used on the command line and in the config file.
    pub fn name(self) -> &'static str {
        match self {
            RefStyle::LastChange => "last-change",
            RefStyle::Commit => "commit",
            RefStyle::Branch => "branch",
        }
    }
}

/// Where the summary goes and how chatty stderr is. Chosen once, here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Human-readable lines on stderr.
    Human { verbose: bool, quiet: bool },
    /// One JSON summary object on stdout; errors still on stderr.
    Json { verbose: bool },
}

impl Output {
    /// Whether reasons and per-file details are shown.
    pub fn verbose(self) -> bool {
        match self {
            Output::Human { verbose, .. } | Output::Json { verbose } => verbose,
        }
    }
}

/// One rule repository.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name; part of derived uuids, so keep it stable.
    pub name: String,
    /// Where the repository is, as given.
    pub location: String,
    /// Branch, tag or commit to build; `None` is HEAD.
    pub reference: Option<String>,
    /// Which repository paths are rule files.
    pub filter: PathFilter,
    /// Explicit web link template (`{host}`, `{repo}`, `{commit}`, `{path}`).
    pub web_url: Option<Template>,
    /// Web URL style for a host that is not recognised by name.
    pub host: Option<HostKind>,
    /// How a remote location is fetched (credentials, host keys, depth); unused for a local path.
    pub remote: RemoteSettings,
    /// The commit `--locked` pins this source to.
    pub pinned: Option<git2::Oid>,
    /// The location as written in the config file or on the command line, redacted: what the lockfile
    /// records and compares.
    pub lock_location: String,
    /// A source without rule files is accepted (`allow_empty: true`) instead of failing the run.
    pub allow_empty: bool,
    /// When two sources have a rule with the same id, the one with the higher priority wins (ties: the
    /// one listed first). Default 0.
    pub priority: i32,
    /// Which of the source's rules become values.
    pub rules: RuleFilter,
}

/// Which rules of a source become values, by their fields: each list holds the values allowed (an
/// empty list allows everything). A rule without the field passes only an empty list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleFilter {
    pub status: Vec<String>,
    pub level: Vec<String>,
    pub product: Vec<String>,
    pub category: Vec<String>,
    pub service: Vec<String>,
}

/// How the host key of an ssh server is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Against the user's `~/.ssh/known_hosts`, as ssh does (libgit2's own check).
    #[default]
    UserKnownHosts,
    /// Only keys listed for the host in this OpenSSH `known_hosts` file (`ssh_known_hosts: FILE`).
    KnownHostsFile(PathBuf),
    /// Any key (`insecure_skip_host_key_check: true`): anyone able to intercept the connection can
    /// serve other rules. For throw-away test servers only.
    Insecure,
}

/// Where a source's credentials are: names of environment variables and paths, never a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// http(s): the variable holding a token, sent as the password.
    pub token_env: Option<String>,
    /// http(s): the variable holding the user name (default: the URL's, else `x-access-token`).
    pub user_env: Option<String>,
    /// http(s): the variable holding the password.
    pub password_env: Option<String>,
    /// ssh: a private key file.
    pub ssh_key: Option<PathBuf>,
    /// ssh: the variable holding the key file's passphrase.
    pub ssh_key_passphrase_env: Option<String>,
}

impl Credentials {
    /// Whether any http(s) credential is configured.
    pub(crate) fn has_http(&self) -> bool {
        self.token_env.is_some() || self.user_env.is_some() || self.password_env.is_some()
    }
}

/// How a remote source is reached and reported this run. Built by [`crate::config::Config::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteSettings {
    /// Where the credentials are.
    pub credentials: Credentials,
    /// How ssh host keys are checked.
    pub host_keys: HostKeyPolicy,
    /// Fetch only this many commits of history (shallow); `None`: the ref's whole history.
    pub depth: Option<u32>,
    /// Never touch the network: build what the mirror holds (`--offline`).
    pub offline: bool,
    /// Progress bars on stderr (a terminal, not `--quiet`, not CI).
    pub bars: bool,
    /// One line per fetch, and the offline notice, on stderr (not `--quiet`).
    pub notes: bool,
}

/// Which files of a repository are rule files: `*.yml`/`*.yaml` files under `prefix` that match an
/// include glob (every file when there is none) and no exclude glob.
#[derive(Debug, Clone)]
pub struct PathFilter {
    /// Only paths under this folder (`a/b/`, with trailing slash), for a source given as a sub-folder.
    pub prefix: Option<String>,
    /// The include globs as written (they are part of cache keys).
    pub include: Vec<String>,
    /// The exclude globs as written.
    pub exclude: Vec<String>,
    include_set: GlobSet,
    exclude_set: GlobSet,
}

impl PathFilter {
    /// Compiles the globs; `what` names where they come from, for the error message.
    pub fn new(prefix: Option<String>, include: Vec<String>, exclude: Vec<String>) -> Result<Self> {
        Ok(PathFilter {
            include_set: glob_set(&include)?,
            exclude_set: glob_set(&exclude)?,
            prefix,
            include,
            exclude,
        })
    }

    /// Whether the folder `dir` (ending in `/`) may hold rule files: false only when it is outside the
    /// sub-folder prefix.
    pub fn may_contain(&self, dir: &str) -> bool {
        self.prefix
            .as_deref()
            .is_none_or(|p| dir.starts_with(p) || p.starts_with(dir))
    }

    /// Whether the repository path `path` is a rule file to build.
    pub fn matches(&self, path: &str) -> bool {
        let yaml = path.ends_with(".yml") || path.ends_with(".yaml");
        yaml && self.prefix.as_deref().is_none_or(|p| path.starts_with(p))
            && (self.include.is_empty() || self.include_set.is_match(path))
            && !self.exclude_set.is_match(path)
    }
}

fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::config(format!("bad glob {p:?}: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| Error::config(format!("bad globs: {e}")))
}

/// The galaxy's and cluster's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalaxyInfo {
    /// `type`, also the file name (`clusters/<type>.json`).
    pub kind: String,
    pub name: String,
    pub uuid: Uuid,
    pub namespace: String,
    pub icon: String,
    pub category: String,
    /// The galaxy file's description.
    pub description: String,
    /// The cluster file's description.
    pub cluster_description: String,
    pub authors: Vec<String>,
    pub source: String,
}

impl Default for GalaxyInfo {
    /// MISP's published Sigma galaxy.
    fn default() -> Self {
        GalaxyInfo {
            kind: "sigma-rules".into(),
            name: "Sigma-Rules".into(),
            uuid: Uuid::from_u128(0x9cf7cd2e_d5f1_48c4_9909_7896ba1c96b2),
            namespace: "misp".into(),
            icon: "link".into(),
            category: "rules".into(),
            description: "Sigma Rules are used to detect suspicious behaviors related to threat actors, malware and tools".into(),
            cluster_description: "MISP galaxy cluster based on Sigma Rules.".into(),
            authors: vec!["@Joseliyo_Jstnk".into()],
            source: "https://github.com/jstnk9/MISP/tree/main/misp-galaxy/sigma".into(),
        }
    }
}

/// The config file's raw shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    sources: Vec<FileSource>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    attack_clusters: Option<PathBuf>,
    out: Option<PathBuf>,
    state: Option<PathBuf>,
    strict: Option<bool>,
    filters: Option<bool>,
    provenance: Option<bool>,
    ref_style: Option<String>,
    value_versions: Option<bool>,
    #[serde(default)]
    galaxy: FileGalaxy,
    #[serde(default)]
    limits: FileLimits,
}

/// `limits:`: every field optional, defaults from [`Limits::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    file_size: Option<usize>,
    nesting_depth: Option<usize>,
    yaml_nodes: Option<usize>,
    yaml_text: Option<usize>,
    field_length: Option<usize>,
}

/// The validated limits: each at least 1, the nesting depth at most what `yaml_serde` reads, the field
/// length room for the cut marker.
fn limits(file: FileLimits) -> Result<Limits> {
    let d = Limits::default();
    let limits = Limits {
        file_size: file.file_size.unwrap_or(d.file_size),
        nesting_depth: file.nesting_depth.unwrap_or(d.nesting_depth),
        yaml_nodes: file.yaml_nodes.unwrap_or(d.yaml_nodes),
        yaml_text: file.yaml_text.unwrap_or(d.yaml_text),
        field_length: file.field_length.unwrap_or(d.field_length),
    };
    let bad = |name: &str, why: String| Err(Error::config(format!("`limits.{name}` {why}")));
    if limits.nesting_depth == 0 || limits.nesting_depth > Limits::MAX_NESTING_DEPTH {
        return bad(
            "nesting_depth",
            format!("must be 1 to {}", Limits::MAX_NESTING_DEPTH),
        );
    }
    if limits.field_length < 64 {
        return bad("field_length", "must be at least 64 bytes".to_owned());
    }
    for (name, value) in [
        ("file_size", limits.file_size),
        ("yaml_nodes", limits.yaml_nodes),
        ("yaml_text", limits.yaml_text),
    ] {
        if value == 0 {
            return bad(name, "must be at least 1".to_owned());
        }
    }
    Ok(limits)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSource {
    name: Option<String>,
    location: String,
    #[serde(rename = "ref")]
    reference: Option<String>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    web_url: Option<String>,
    host: Option<String>,
    token_env: Option<String>,
    user_env: Option<String>,
    password_env: Option<String>,
    ssh_key: Option<PathBuf>,
    ssh_key_passphrase_env: Option<String>,
    ssh_known_hosts: Option<PathBuf>,
    insecure_skip_host_key_check: Option<bool>,
    depth: Option<u32>,
    allow_empty: Option<bool>,
    priority: Option<i32>,
    status: Option<Vec<String>>,
    level: Option<Vec<String>>,
    product: Option<Vec<String>>,
    category: Option<Vec<String>>,
    service: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGalaxy {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    uuid: Option<String>,
    namespace: Option<String>,
    icon: Option<String>,
    category: Option<String>,
    description: Option<String>,
    cluster_description: Option<String>,
    authors: Option<Vec<String>>,
    source: Option<String>,
}

impl Config {
    /// Builds the validated configuration from the flags and the config file they name (or the default
    /// `sigma-galaxy.yml` in the current folder, when it exists).
    pub fn load(args: &BuildArgs) -> Result<Config> {
        let mode = if args.check {
            Mode::DryRun
        } else {
            Mode::Build
        };
        Config::from_args(args, mode)
    }

    /// The configuration `check` runs with: the same sources, filters and cache as `build`, writing
    /// nothing.
    pub fn for_check(args: &CheckArgs) -> Result<Config> {
        let build = BuildArgs {
            config: args.config.clone(),
            sources: args.sources.clone(),
            include: args.include.clone(),
            exclude: args.exclude.clone(),
            attack_clusters: args.attack_clusters.clone(),
            state: args.state.clone(),
            offline: args.offline,
            quiet: args.quiet,
            ..BuildArgs::default()
        };
        Config::from_args(&build, Mode::Check)
    }

    fn from_args(args: &BuildArgs, mode: Mode) -> Result<Config> {
        let (file, base, config_file) = match &args.config {
            Some(path) => (read_file(path)?, dir_of(path), true),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => (
                read_file(Path::new(DEFAULT_CONFIG_FILE))?,
                PathBuf::new(),
                true,
            ),
            None => (FileConfig::default(), PathBuf::new(), false),
        };
        let mut notices = Vec::new();
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let include = pick(&args.include, file.include);
        let exclude = pick(&args.exclude, file.exclude);

        let mut sources = Vec::new();
        if args.sources.is_empty() {
            for s in file.sources {
                let written = weburl::redact(&s.location);
                let remote = remote_settings(&s, &written, &rel)?;
                let location = if is_remote(&s.location) {
                    s.location
                } else {
                    rel(PathBuf::from(&s.location))
                        .to_string_lossy()
                        .into_owned()
                };
                let web_url = s
                    .web_url
                    .map(|t| {
                        Template::parse(&t)
                            .map_err(|e| Error::config(format!("source {written}: web_url: {e}")))
                    })
                    .transpose()?;
                let host = s
                    .host
                    .map(|h| {
                        h.parse::<HostKind>()
                            .map_err(|e| Error::config(format!("source {written}: host: {e}")))
                    })
                    .transpose()?;
                let mut source = source_config(
                    s.name,
                    location,
                    s.reference,
                    s.include.unwrap_or_else(|| include.clone()),
                    s.exclude.unwrap_or_else(|| exclude.clone()),
                    web_url,
                    host,
                    &mut notices,
                )?;
                source.remote = remote;
                source.lock_location = written;
                source.allow_empty = args.allow_empty || s.allow_empty.unwrap_or(false);
                source.priority = s.priority.unwrap_or(0);
                source.rules = RuleFilter {
                    status: pick(&args.status, s.status),
                    level: pick(&args.level, s.level),
                    product: s.product.unwrap_or_default(),
                    category: s.category.unwrap_or_default(),
                    service: s.service.unwrap_or_default(),
                };
                sources.push(source);
            }
        } else {
            for spec in &args.sources {
                let (location, reference) = split_ref(spec);
                sources.push(
                    source_config(
                        None,
                        location.to_string(),
                        reference.map(str::to_string),
                        include.clone(),
                        exclude.clone(),
                        None,
                        None,
                        &mut notices,
                    )
                    .map(|s| SourceConfig {
                        allow_empty: args.allow_empty,
                        rules: RuleFilter {
                            status: args.status.clone(),
                            level: args.level.clone(),
                            ..RuleFilter::default()
                        },
                        ..s
                    })?,
                );
            }
        }
        if sources.is_empty() {
            return Err(Error::config(
                "no sources: give --source PATH[#REF] or list sources in the config file (sigma-galaxy init writes one)",
            ));
        }
        for s in &sources {
            check_vocabulary(
                &s.name,
                "status",
                &s.rules.status,
                &crate::parse::lint::STATUSES,
            )?;
            check_vocabulary(
                &s.name,
                "level",
                &s.rules.level,
                &crate::parse::lint::LEVELS,
            )?;
        }
        let mut names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(format!(
                "two sources are named {:?}: give each a unique `name` in the config file",
                w[0]
            )));
        }
        let lockfile = match (&args.lockfile, config_file) {
            (Some(path), _) => Some(path.clone()),
            (None, true) => Some(base.join(LOCKFILE_NAME)),
            (None, false) => None,
        };
        let bars = !args.quiet
            && std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("CI").is_none_or(|v| v.is_empty());
        for s in &mut sources {
            s.remote.offline = args.offline;
            s.remote.bars = bars;
            s.remote.notes = !args.quiet;
        }
        if args.locked && lockfile.is_none() {
            return Err(Error::config(
                "--locked needs a lockfile: give --lockfile FILE, or use a config file (its lockfile is sigma-galaxy.lock beside it)",
            ));
        }

        let out = args
            .out
            .clone()
            .or_else(|| file.out.map(&rel))
            .unwrap_or_else(|| PathBuf::from("galaxy"));
        let state = args
            .state
            .clone()
            .or_else(|| file.state.map(&rel))
            .unwrap_or_else(|| default_state(&out));
        let attack_clusters = args
            .attack_clusters
            .clone()
            .or_else(|| file.attack_clusters.map(&rel));
        if let Some(dir) = &attack_clusters
            && !dir.is_dir()
        {
            return Err(Error::config(format!(
                "--attack-clusters {}: not a folder (expected a misp-galaxy clusters/ folder)",
                dir.display()
            )));
        }
        let output = if args.json {
            Output::Json {
                verbose: args.verbose,
            }
        } else {
            Output::Human {
                verbose: args.verbose,
                quiet: args.quiet,
            }
        };
        let ref_style = match (args.ref_style, file.ref_style.as_deref()) {
            (Some(RefStyleArg::LastChange), _) | (None, None | Some("last-change")) => {
                RefStyle::LastChange
            }
            (Some(RefStyleArg::Commit), _) | (None, Some("commit")) => RefStyle::Commit,
            (Some(RefStyleArg::Branch), _) | (None, Some("branch")) => RefStyle::Branch,
            (None, Some(other)) => {
                return Err(Error::config(format!(
                    "ref_style {other:?}: use last-change, commit or branch"
                )));
            }
        };
        let several = sources.len() > 1;
        Ok(Config {
            offline: args.offline,
            locked: args.locked,
            lockfile,
            mode,
            notices,
            full: args.full,
            no_wait: args.no_wait,
            ref_style,
            sources,
            out,
            state,
            attack_clusters,
            galaxy: galaxy_info(file.galaxy)?,
            limits: limits(file.limits)?,
            strict: args.strict || file.strict.unwrap_or(false),
            filters: args.filters || file.filters.unwrap_or(false),
            provenance: file.provenance.unwrap_or(several),
            value_versions: args.value_versions || file.value_versions.unwrap_or(false),
            output,
        })
    }
}

/// Flags replace the file's list when given at all.
fn pick(flags: &[String], file: Option<Vec<String>>) -> Vec<String> {
    if flags.is_empty() {
        file.unwrap_or_default()
    } else {
        flags.to_vec()
    }
}

/// `.sigma-galaxy` beside the output folder.
fn default_state(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) => p.join(".sigma-galaxy"),
        None => PathBuf::from(".sigma-galaxy"),
    }
}

fn dir_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `LOCATION#REF` → (LOCATION, Some(REF)).
pub fn split_ref(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once('#') {
        Some((loc, r)) if !loc.is_empty() && !r.is_empty() => (loc, Some(r)),
        _ => (spec, None),
    }
}

/// Whether a location is a URL rather than a local path.
pub fn is_remote(location: &str) -> bool {
    weburl::parse_remote(location).is_some()
}

#[allow(clippy::too_many_arguments)]
fn source_config(
    name: Option<String>,
    location: String,
    reference: Option<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    web_url: Option<Template>,
    host: Option<HostKind>,
    notices: &mut Vec<String>,
) -> Result<SourceConfig> {
    let name = match name {
        Some(n) => n,
        None => match repository_name(&location) {
            Some(n) => n,
            None => {
                let n = default_name(&location);
                notices.push(format!(
                    "source {n}: named after its folder (it has no origin remote): the uuids derived for its \
                     rules without an id depend on that name; give it a `name` in the config file"
                ));
                n
            }
        },
    };
    if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
        let location = weburl::redact(&location);
        return Err(Error::config(format!(
            "source {location}: name {name:?} must be non-empty, without '/' or control characters"
        )));
    }
    Ok(SourceConfig {
        name,
        filter: PathFilter::new(None, include, exclude)?,
        lock_location: weburl::redact(&location),
        location,
        reference,
        web_url,
        host,
        remote: RemoteSettings::default(),
        pinned: None,
        allow_empty: false,
        priority: 0,
        rules: RuleFilter::default(),
    })
}

/// A source's `status` or `level` filter may only name values of Sigma's vocabulary.
fn check_vocabulary(source: &str, what: &str, given: &[String], known: &[&str]) -> Result<()> {
    match given.iter().find(|v| !known.contains(&v.as_str())) {
        Some(v) => Err(Error::config(format!(
            "source {source}: {what} {v:?} is not one of {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A source's stable default name: the last path segment of its URL, or of its repository's `origin`
/// remote, without `.git`; `None` for a local repository without an origin remote.
fn repository_name(location: &str) -> Option<String> {
    let url = if is_remote(location) {
        location.to_string()
    } else {
        let repo = git2::Repository::discover(location).ok()?;
        let remote = repo.find_remote("origin").ok()?;
        remote.url().ok()?.to_string()
    };
    let name = default_name(&url);
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

/// The last path component of a location, without `.git`: `../sigma` → `sigma`, `x/rules.git` → `rules`.
fn default_name(location: &str) -> String {
    let location = &weburl::redact(location);
    let trimmed = location.trim_end_matches(['/', '\\']);
    let last = if trimmed == "." || trimmed.is_empty() {
        std::env::current_dir()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "rules".into())
    } else {
        trimmed
            .rsplit(['/', '\\', ':'])
            .next()
            .unwrap_or(trimmed)
            .to_string()
    };
    last.strip_suffix(".git").unwrap_or(&last).to_string()
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        path: Some(path.to_path_buf()),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    yaml_serde::from_str(&text).map_err(|e| Error::Config {
        path: Some(path.to_path_buf()),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })
}

fn galaxy_info(g: FileGalaxy) -> Result<GalaxyInfo> {
    let d = GalaxyInfo::default();
    let kind = g.kind.unwrap_or(d.kind);
    if kind.is_empty()
        || !kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(Error::config(format!(
            "galaxy.type {kind:?}: use lower-case letters, digits, '-' and '_' (it is also the file name)"
        )));
    }
    let uuid = match g.uuid {
        Some(u) => {
            Uuid::try_parse(&u).map_err(|e| Error::config(format!("galaxy.uuid {u:?}: {e}")))?
        }
        None => d.uuid,
    };
    Ok(GalaxyInfo {
        kind,
        name: g.name.unwrap_or(d.name),
        uuid,
        namespace: g.namespace.unwrap_or(d.namespace),
        icon: g.icon.unwrap_or(d.icon),
        category: g.category.unwrap_or(d.category),
        description: g.description.unwrap_or(d.description),
        cluster_description: g.cluster_description.unwrap_or(d.cluster_description),
        authors: g.authors.unwrap_or(d.authors),
        source: g.source.unwrap_or(d.source),
    })
}

/// The commented starter configuration `sigma-galaxy init` writes.
pub const STARTER_CONFIG: &str = r#"# sigma-galaxy configuration. Every key is optional; command-line flags override this file.
# Relative paths are relative to this file's folder.

# Output folder: gets clusters/<type>.json and galaxies/<type>.json.
out: galaxy

# State folder (build cache and UUID ledger). Default: .sigma-galaxy next to `out`.
# state: .sigma-galaxy

# A misp-galaxy clusters/ folder, for links to ATT&CK techniques, groups and software.
# On a MISP server: /var/www/MISP/app/files/misp-galaxy/clusters
# attack_clusters: /var/www/MISP/app/files/misp-galaxy/clusters

# Rule problems (bad YAML, wrong field types) fail the build instead of being skipped with a warning.
strict: false

# Also turn Sigma filter rules into values.
filters: false

# What each rule's link points at: last-change (the commit that last changed the file: stable),
# commit (the built commit) or branch (the branch name: always the newest version).
ref_style: last-change

# Give each value its own `version`, raised only when that value changes, so that MISP's updateGalaxies
# re-imports only the changed values (with one cluster-wide version it re-imports all of them). MISP
# reads it; misp-galaxy's schema forbids it, so leave it off for a galaxy meant for that repository.
value_versions: false

# Globs on repository paths, for sources that set none of their own. Only *.yml/*.yaml files are read.
include:
  - 'rules*/**'
exclude:
  - 'deprecated/**'

sources:
  # A git repository: working tree or bare. Rules are read from the commit, not the working tree.
  - name: sigmahq                # unique; part of the uuids of rules without an id: keep it stable
    # (default: the last segment of the URL or origin remote, e.g. sigma)
    location: ../sigma
    # ref: master                # branch, tag or commit (default: HEAD)
    # include: ['rules/**']      # overrides the top-level include
    # web_url: 'https://git.corp/{repo}/blob/{commit}/{path}'   # link template for unknown hosts
    # host: gitlab               # or: github, bitbucket, gitea, forgejo, azure
    # status: [stable, test]     # only rules with these statuses (also: level, product, category, service)
    # priority: 0                # the higher wins an id two sources share (ties: the one listed first)
    # allow_empty: false         # a source without rule files fails the build unless this is true
  # A remote repository (https://, ssh://, git@host:org/repo.git, git://, file://), mirrored into the state
  # folder and fetched on each build (--offline: build what was fetched last). sigma-galaxy.lock, next to
  # this file, records the commit built; `build --locked` builds exactly that commit again.
  # - name: in-house
  #   location: https://gitlab.corp/sec/rules.git
  #   token_env: GITLAB_TOKEN    # https: token from this variable (or user_env + password_env)
  #   # ssh_key: ~/.ssh/rules    # ssh: key file (ssh_key_passphrase_env: VAR); default: agent, ~/.ssh/id_*
  #   # ssh_known_hosts: known_hosts   # ssh: trust only these host keys (default: ~/.ssh/known_hosts)
  #   # depth: 1                 # shallow fetches (default: full history of the ref)

# The galaxy's own fields. Defaults reproduce MISP's published Sigma galaxy.
# galaxy:
#   type: sigma-rules
#   name: Sigma-Rules
#   uuid: 9cf7cd2e-d5f1-48c4-9909-7896ba1c96b2
#   namespace: misp
#   icon: link
#   category: rules
#   description: Sigma Rules are used to detect suspicious behaviors related to threat actors, malware and tools
#   cluster_description: MISP galaxy cluster based on Sigma Rules.
#   authors: ['@Joseliyo_Jstnk']
#   source: https://github.com/jstnk9/MISP/tree/main/misp-galaxy/sigma
"#;

/// A config-file source's remote settings: credentials (names of variables and key files), host-key
/// policy and depth, checked; paths resolved against the config file's folder (`~/` against `$HOME`).
fn remote_settings(
    s: &FileSource,
    shown: &str,
    rel: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<RemoteSettings> {
    let bad = |message: String| Error::config(format!("source {shown}: {message}"));
    let path = |p: &PathBuf| match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => rel(p.clone()),
    };
    let settings = RemoteSettings {
        credentials: Credentials {
            token_env: s.token_env.clone(),
            user_env: s.user_env.clone(),
            password_env: s.password_env.clone(),
            ssh_key: s.ssh_key.as_ref().map(path),
            ssh_key_passphrase_env: s.ssh_key_passphrase_env.clone(),
        },
        host_keys: match (&s.ssh_known_hosts, s.insecure_skip_host_key_check) {
            (Some(_), Some(true)) => {
                return Err(bad(
                    "ssh_known_hosts and insecure_skip_host_key_check: true contradict each other"
                        .into(),
                ));
            }
            (Some(file), _) => HostKeyPolicy::KnownHostsFile(path(file)),
            (None, Some(true)) => HostKeyPolicy::Insecure,
            (None, _) => HostKeyPolicy::UserKnownHosts,
        },
        depth: match s.depth {
            Some(0) => {
                return Err(bad(
                    "depth must be at least 1 (leave it out for full history)".into(),
                ));
            }
            d => d,
        },
        ..RemoteSettings::default()
    };
    let c = &settings.credentials;
    if c.token_env.is_some() && c.password_env.is_some() {
        return Err(bad("give token_env or password_env, not both".into()));
    }
    if c.user_env.is_some() && c.token_env.is_none() && c.password_env.is_none() {
        return Err(bad("user_env needs password_env (or token_env)".into()));
    }
    let vars = [
        &c.token_env,
        &c.user_env,
        &c.password_env,
        &c.ssh_key_passphrase_env,
    ];
    if let Some(v) = vars
        .into_iter()
        .flatten()
        .find(|v| v.is_empty() || v.contains(['=', '\0']))
    {
        return Err(bad(format!("{v:?} is not an environment variable name")));
    }
    if c.ssh_key_passphrase_env.is_some() && c.ssh_key.is_none() {
        return Err(bad("ssh_key_passphrase_env needs ssh_key".into()));
    }
    if settings != RemoteSettings::default() && !is_remote(&s.location) {
        return Err(bad(
            "token_env, user_env, password_env, ssh_key, ssh_known_hosts, insecure_skip_host_key_check and \
             depth only apply to a remote location (https://, ssh://, git@host:path, git://, file://)"
                .into(),
        ));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ref_takes_the_last_hash() {
        assert_eq!(split_ref("../sigma#main"), ("../sigma", Some("main")));
        assert_eq!(split_ref("../sigma"), ("../sigma", None));
        assert_eq!(split_ref("a#b#c"), ("a#b", Some("c")));
        assert_eq!(split_ref("x#"), ("x#", None));
    }

    #[test]
    fn default_names_drop_dot_git_and_slashes() {
        assert_eq!(default_name("../sigma/"), "sigma");
        assert_eq!(default_name("/srv/rules.git"), "rules");
        assert_eq!(default_name("git@host:org/in-house.git"), "in-house");
    }

    #[test]
    fn filter_needs_yaml_and_honours_globs() {
        let f = PathFilter::new(None, vec!["rules/**".into()], vec!["rules/old/**".into()])
            .expect("globs compile");
        assert!(f.matches("rules/a/b.yml"));
        assert!(f.matches("rules/a/b.yaml"));
        assert!(!f.matches("rules/README.md"));
        assert!(!f.matches("rules/old/x.yml"));
        assert!(!f.matches("other/x.yml"));
        let all = PathFilter::new(Some("sub/".into()), vec![], vec![]).expect("empty globs");
        assert!(all.matches("sub/x.yml"));
        assert!(!all.matches("x.yml"));
    }

    #[test]
    fn starter_config_parses() {
        let f: FileConfig = yaml_serde::from_str(STARTER_CONFIG).expect("starter config parses");
        assert_eq!(f.sources.len(), 1);
        assert_eq!(f.sources[0].name.as_deref(), Some("sigmahq"));
    }

    #[test]
    fn remote_settings_are_checked() {
        let settings = |yaml: &str| {
            let s: FileSource = yaml_serde::from_str(yaml).expect("source parses");
            remote_settings(&s, "shown", &|p: PathBuf| Path::new("cfg").join(p))
        };
        let ok = settings(
            "location: git@host:o/r.git\nssh_key: k\nssh_key_passphrase_env: P\nssh_known_hosts: kh\ndepth: 1\n",
        )
        .expect("valid");
        assert_eq!(ok.credentials.ssh_key.as_deref(), Some(Path::new("cfg/k")));
        assert_eq!(ok.host_keys, HostKeyPolicy::KnownHostsFile("cfg/kh".into()));
        assert_eq!(ok.depth, Some(1));
        let insecure = settings("location: ssh://h/r\ninsecure_skip_host_key_check: true\n");
        assert_eq!(insecure.expect("valid").host_keys, HostKeyPolicy::Insecure);
        for bad in [
            "location: ../local\ntoken_env: T\n",
            "location: https://h/r\ntoken_env: T\npassword_env: P\n",
            "location: https://h/r\nuser_env: U\n",
            "location: https://h/r\ntoken_env: 'A=B'\n",
            "location: ssh://h/r\nssh_key_passphrase_env: P\n",
            "location: ssh://h/r\nssh_known_hosts: f\ninsecure_skip_host_key_check: true\n",
            "location: ssh://h/r\ndepth: 0\n",
        ] {
            let e = settings(bad).expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().starts_with("source shown: "), "{e}");
        }
    }

    #[test]
    fn remote_names_and_messages_never_show_credentials() {
        assert!(!default_name("https://user:tok@host").contains("tok"));
        assert_eq!(default_name("https://tok@h/org/rules.git"), "rules");
    }

    #[test]
    fn galaxy_type_must_be_a_file_name() {
        let g = FileGalaxy {
            kind: Some("../x".into()),
            ..FileGalaxy::default()
        };
        assert!(galaxy_info(g).is_err());
    }
}
