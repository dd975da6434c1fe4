//! Remote sources: bare mirrors of remote repositories in the state folder, kept current by fetching.
//!
//! This module owns everything that talks to a git server. A source whose location is a URL
//! (`https://`, `http://`, `ssh://`, scp-like `git@host:org/repo.git`, `git://`, `file://`) is cloned
//! once into `<state>/mirrors/<name>.git` and fetched on later runs; [`sync`] returns the mirror and
//! the commit to build, and [`super::open`] reads rules from it like from any local repository.
//!
//! - **What is fetched**: only the ref the source builds (its branch, tag, full ref name, or the
//!   remote's default branch), full history by default, the last `depth` commits when the source sets
//!   `depth` (shallow). A commit id (the source's `ref`, or the commit `--locked` pins) that the mirror
//!   already holds is built without any network access; otherwise its ref is fetched, then the commit
//!   itself when the server allows it. `--offline` never touches the network and builds what the mirror
//!   holds, and says so.
//! - **Credentials** ([`crate::config::Credentials`]): for http(s), a token or a user name and password read from
//!   environment variables the config names, else git's credential helpers; for ssh, a key file (its
//!   passphrase from an environment variable), else the ssh agent, else `~/.ssh/id_ed25519`,
//!   `id_ecdsa`, `id_rsa`. Each is tried once.
//! - **Host keys** ([`HostKeyPolicy`]): ssh host keys are checked against `~/.ssh/known_hosts` by
//!   default, or against the source's own `ssh_known_hosts` file; `insecure_skip_host_key_check`
//!   accepts any key (and says so on every fetch).
//! - **Secrets never leave the process**: the location is only ever shown or stored redacted
//!   ([`weburl::redact`]); git is handed the location through an anonymous remote (nothing is written to
//!   the mirror's config), FETCH_HEAD and reflogs are off, and every message from libgit2 is scrubbed of
//!   the raw location and of every secret value before it is shown.
//! - **Progress**: bars for objects and bytes on a terminal ([`RemoteSettings::bars`]), one line per
//!   fetch otherwise ([`RemoteSettings::notes`]), nothing with `--quiet`.
//! - **Failures**: one line naming the source (redacted) and what to try. A clone is made in a
//!   temporary folder and moved into place only once it succeeded, so a failed first fetch leaves no
//!   mirror behind; a mirror is only a fetch cache and never changes the galaxy, the lockfile or the
//!   build state.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, ErrorClass, ErrorCode,
    FetchOptions, Oid, RemoteCallbacks, Repository,
};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use crate::config::{HostKeyPolicy, RemoteSettings, SourceConfig};
use crate::error::{Error, Result};
use crate::weburl::{self, RemoteUrl, Scheme};

/// The folder of the state folder that holds the mirrors.
pub const MIRRORS_DIR: &str = "mirrors";

/// The mirror's git config keys this module keeps (the redacted location, the last fetch's time).
const LOCATION_KEY: &str = "sigma-galaxy.location";
const FETCHED_KEY: &str = "sigma-galaxy.fetched";

/// What the credential callback answers once every credential was offered.
const NO_MORE_CREDENTIALS: &str = "no more credentials to try";

/// libgit2's depth that turns a shallow repository into a complete one.
const UNSHALLOW: i32 = i32::MAX;

/// A remote source brought up to date: the mirror to read and the commit to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The mirror's folder, `<state>/mirrors/<name>.git`.
    pub git_dir: PathBuf,
    /// The commit to build.
    pub commit: Oid,
    /// The branch built, when the source builds a branch (or the remote's default branch).
    pub branch: Option<String>,
    /// What the fetch transferred; `None` when the network was not used.
    pub fetched: Option<FetchStats>,
}

/// What one run's fetches of a source transferred.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Objects received from the server.
    pub objects: usize,
    /// Bytes received.
    pub bytes: usize,
    /// Wall time of the fetches.
    pub elapsed: Duration,
}

/// The mirror folder of source `name` under the state folder `state`.
pub fn mirror_path(state: &Path, name: &str) -> PathBuf {
    state.join(MIRRORS_DIR).join(format!("{name}.git"))
}

/// Brings the mirror of a remote source up to date (or, offline, reads it as it is) and resolves the
/// commit to build; `Ok(None)` for a local path, which is opened as it is.
pub fn sync(source: &SourceConfig, state: &Path) -> Result<Option<Synced>> {
    let Some(remote) = weburl::parse_remote(&source.location) else {
        return Ok(None);
    };
    let job = Job::new(source, state, remote);
    job.run().map(Some)
}

/// What to build, as the source asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// The remote's default branch (where its HEAD points).
    Default,
    /// A branch, tag or full ref name, resolved against the remote's refs.
    Named(String),
}

/// A remote ref to fetch into the mirror under the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WantedRef {
    /// Full ref name, e.g. `refs/heads/main`.
    name: String,
    /// The branch name when it is a branch.
    branch: Option<String>,
}

impl WantedRef {
    fn new(name: String) -> WantedRef {
        let branch = name.strip_prefix("refs/heads/").map(str::to_string);
        WantedRef { name, branch }
    }

    fn refspec(&self) -> String {
        format!("+{0}:{0}", self.name)
    }
}

/// One source's sync.
struct Job<'a> {
    source: &'a SourceConfig,
    settings: &'a RemoteSettings,
    remote: RemoteUrl,
    /// The location as shown and stored: redacted.
    shown: String,
    mirror: PathBuf,
    /// Secret strings to scrub from anything shown (URL password or token, values of secret variables).
    secrets: RefCell<Vec<String>>,
}

/// What the callbacks of one connection saw, for the error message.
#[derive(Debug, Default)]
struct Talk {
    /// Credential kinds offered to the server, in order.
    tried: RefCell<Vec<String>>,
    /// Every credential was tried and the server still asked.
    exhausted: RefCell<bool>,
    /// Why a host key was refused.
    host_key: RefCell<Option<String>>,
}

impl<'a> Job<'a> {
    fn new(source: &'a SourceConfig, state: &Path, remote: RemoteUrl) -> Job<'a> {
        let shown = weburl::redact(&source.location);
        let secrets = url_secrets(&source.location);
        Job {
            source,
            settings: &source.remote,
            remote,
            shown,
            mirror: mirror_path(state, &source.name),
            secrets: RefCell::new(secrets),
        }
    }

    fn run(&self) -> Result<Synced> {
        let target = match self.source.reference.as_deref() {
            None | Some("HEAD") => Target::Default,
            Some(r) => Target::Named(r.to_string()),
        };
        let commit_ref = self
            .source
            .pinned
            .or_else(|| self.source.reference.as_deref().and_then(full_commit_id));
        if self.settings.offline {
            return self.offline(&target, commit_ref);
        }
        let existing = self.mirror.exists();
        let staging = if existing {
            None
        } else {
            Some(self.staging_dir()?)
        };
        let git_dir = staging
            .as_ref()
            .map_or_else(|| self.mirror.clone(), |t| t.path().to_path_buf());
        let repo = if existing {
            self.open_mirror()?
        } else {
            self.init_mirror(&git_dir)?
        };
        if existing && let Some(other) = stored_location(&repo).filter(|l| *l != self.shown) {
            self.note(&format!(
                "source {}: location changed from {other} to {}: fetching into the same mirror",
                self.source.name, self.shown
            ));
        }

        let outcome = self.fetch_and_resolve(&repo, &target, commit_ref)?;
        if outcome.fetched.is_some() {
            self.remember(&repo)?;
        }
        drop(repo);
        if let Some(staging) = staging {
            let path = staging.keep();
            std::fs::rename(&path, &self.mirror).map_err(|e| {
                let _ = std::fs::remove_dir_all(&path);
                Error::io(&self.mirror, e)
            })?;
        }
        if let Some(stats) = outcome.fetched {
            self.note(&self.fetch_line(stats, outcome.branch.as_deref()));
        }
        Ok(Synced {
            git_dir: self.mirror.clone(),
            ..outcome
        })
    }

    /// `--offline`: the mirror as last fetched.
    fn offline(&self, target: &Target, commit_ref: Option<Oid>) -> Result<Synced> {
        if !self.mirror.exists() {
            return Err(self.error(format!(
                "--offline, but {} was never fetched (no mirror at {}): run once without --offline",
                self.shown,
                self.mirror.display()
            )));
        }
        let repo = self.open_mirror()?;
        if let Some(other) = stored_location(&repo).filter(|l| *l != self.shown) {
            return Err(self.error(format!(
                "--offline, but the mirror {} holds {other}, not {}: run once without --offline",
                self.mirror.display(),
                self.shown
            )));
        }
        let (commit, branch) = match commit_ref {
            Some(c) if has_commit(&repo, c) => (c, self.local_branch(&repo, target)),
            Some(c) => {
                return Err(self.error(format!(
                    "--offline, but commit {c} was never fetched from {}: run once without --offline",
                    self.shown
                )));
            }
            None => {
                let wanted = local_ref(&repo, target).ok_or_else(|| {
                    self.error(format!(
                        "--offline, but {} was never fetched from {}: run once without --offline",
                        describe(target),
                        self.shown
                    ))
                })?;
                let commit = self.peel(&repo, &wanted.name)?;
                (commit, wanted.branch)
            }
        };
        let when = repo
            .config()
            .and_then(|c| c.get_i64(FETCHED_KEY))
            .map_or_else(|_| "an earlier run".to_string(), utc_minute);
        self.note(&format!(
            "source {}: offline: building {} of {} as fetched on {when}",
            self.source.name,
            short(commit),
            self.shown
        ));
        Ok(Synced {
            git_dir: self.mirror.clone(),
            commit,
            branch,
            fetched: None,
        })
    }

    /// Connects, fetches what the source needs and returns the commit to build.
    fn fetch_and_resolve(
        &self,
        repo: &Repository,
        target: &Target,
        commit_ref: Option<Oid>,
    ) -> Result<Synced> {
        if let Some(c) = commit_ref
            && has_commit(repo, c)
        {
            // Commits never change: what the mirror holds is what the remote would send.
            return Ok(Synced {
                git_dir: self.mirror.clone(),
                commit: c,
                branch: self.local_branch(repo, target),
                fetched: None,
            });
        }
        self.check_credentials()?;
        let started = Instant::now();
        let mut remote = repo
            .remote_anonymous(&self.source.location)
            .map_err(|e| self.git_error("reading the location", &e, &Talk::default()))?;
        let talk = Talk::default();
        let mut stats = FetchStats::default();
        let mut conn = remote
            .connect_auth(Direction::Fetch, Some(self.callbacks(&talk, None)), None)
            .map_err(|e| self.git_error("connecting to", &e, &talk))?;
        let heads: Vec<String> = conn
            .list()
            .map_err(|e| self.git_error("listing the refs of", &e, &talk))?
            .iter()
            .map(|h| h.name().to_string())
            .collect();
        let default_branch = conn
            .default_branch()
            .ok()
            .and_then(|b| b.as_str().ok().map(str::to_string));

        // A full commit id as the ref: there is no ref to fetch, only the commit itself.
        let ref_is_commit = self
            .source
            .reference
            .as_deref()
            .and_then(full_commit_id)
            .is_some();
        let wanted = if ref_is_commit {
            None
        } else {
            Some(self.wanted_ref(target, &heads, default_branch.as_deref())?)
        };
        let shallow = self
            .settings
            .depth
            .map(|d| i32::try_from(d).unwrap_or(UNSHALLOW));

        let mut fetch = |refspecs: &[String], depth: Option<i32>| {
            let bar = self.bar();
            let mut opts = FetchOptions::new();
            opts.remote_callbacks(self.callbacks(&talk, Some(bar.clone())))
                .update_fetchhead(false)
                .download_tags(AutotagOption::None);
            if let Some(d) = depth {
                opts.depth(d);
            }
            let result =
                conn.remote()
                    .fetch(refspecs, Some(&mut opts), Some("sigma-galaxy: fetch"));
            bar.finish_and_clear();
            if result.is_ok() {
                let progress = conn.remote().stats();
                stats.objects += progress.received_objects();
                stats.bytes += progress.received_bytes();
            }
            result
        };
        let failed = |e: git2::Error| self.git_error("fetching", &e, &talk);

        let (commit, branch) = match (commit_ref, &wanted) {
            (None, Some(w)) => {
                fetch(&[w.refspec()], shallow).map_err(failed)?;
                (self.peel(repo, &w.name)?, w.branch.clone())
            }
            (Some(c), _) => {
                // A commit: the history of its ref (or of the default branch) usually holds it; else
                // the commit itself, when the server allows that; else every branch and tag.
                let deepen = repo.is_shallow().then_some(UNSHALLOW);
                let via = wanted.clone().or_else(|| {
                    default_branch
                        .clone()
                        .filter(|b| heads.contains(b))
                        .map(WantedRef::new)
                });
                if let Some(w) = &via {
                    fetch(&[w.refspec()], deepen).map_err(failed)?;
                }
                if !has_commit(repo, c) {
                    // A server that does not allow it refuses at once; that is not a failure yet.
                    let _ = fetch(&[c.to_string()], shallow);
                }
                if !has_commit(repo, c) {
                    let all = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
                        .map(String::from);
                    fetch(&all, deepen).map_err(failed)?;
                }
                if !has_commit(repo, c) {
                    let hint = if self.source.pinned.is_some() {
                        "was it force-pushed away? A build without --locked pins the current commit"
                    } else {
                        "check the commit id"
                    };
                    return Err(self.error(format!(
                        "commit {c} is on no branch or tag of {}: {hint}",
                        self.shown
                    )));
                }
                (c, wanted.and_then(|w| w.branch))
            }
            (None, None) => {
                return Err(self.error("nothing to fetch".into()));
            }
        };
        drop(conn);
        if let Some(name) = default_branch.filter(|_| *target == Target::Default) {
            // HEAD follows the remote's default branch, so --offline finds it.
            repo.set_head(&name)
                .map_err(|e| self.git_error("updating HEAD of the mirror of", &e, &talk))?;
        }
        stats.elapsed = started.elapsed();
        Ok(Synced {
            git_dir: self.mirror.clone(),
            commit,
            branch,
            fetched: Some(stats),
        })
    }

    /// The remote ref a target names: its default branch, or `r` as a full ref, tag or branch (git's
    /// order), with a helpful error listing what the remote has.
    fn wanted_ref(
        &self,
        target: &Target,
        heads: &[String],
        default_branch: Option<&str>,
    ) -> Result<WantedRef> {
        match target {
            Target::Default => default_branch
                .filter(|b| heads.iter().any(|h| h == b))
                .map(|b| WantedRef::new(b.to_string()))
                .ok_or_else(|| {
                    self.error(format!(
                        "{} has no default branch (an empty repository, or HEAD detached): set `ref`",
                        self.shown
                    ))
                }),
            Target::Named(r) => {
                let candidates = [
                    r.clone(),
                    format!("refs/tags/{r}"),
                    format!("refs/heads/{r}"),
                ];
                candidates
                    .into_iter()
                    .find(|c| c.starts_with("refs/") && heads.iter().any(|h| h == c))
                    .map(WantedRef::new)
                    .ok_or_else(|| {
                        let branches: Vec<&str> = heads
                            .iter()
                            .filter_map(|h| h.strip_prefix("refs/heads/"))
                            .take(8)
                            .collect();
                        let hint = if r.len() >= 4 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
                            "; give a commit as its full 40-character id".to_string()
                        } else if branches.is_empty() {
                            String::new()
                        } else {
                            format!("; its branches include {}", branches.join(", "))
                        };
                        self.error(format!(
                            "{} has no branch or tag {r:?}{hint}",
                            self.shown
                        ))
                    })
            }
        }
    }

    /// The callbacks of one connection: credentials, host keys, progress.
    fn callbacks<'t>(&'t self, talk: &'t Talk, bar: Option<ProgressBar>) -> RemoteCallbacks<'t> {
        let mut cbs = RemoteCallbacks::new();
        let mut attempts = Attempts::default();
        cbs.credentials(move |url, user_from_url, allowed| {
            self.credential(url, user_from_url, allowed, &mut attempts, talk)
        });
        cbs.certificate_check(move |cert, host| self.check_host(cert, host, talk));
        if let Some(bar) = bar {
            cbs.transfer_progress(move |p| {
                if p.received_objects() < p.total_objects() {
                    bar.set_length(p.total_objects() as u64);
                    bar.set_position(p.received_objects() as u64);
                    bar.set_message(format!(
                        "{} received",
                        HumanBytes(p.received_bytes() as u64)
                    ));
                } else if p.total_deltas() > 0 {
                    bar.set_length(p.total_deltas() as u64);
                    bar.set_position(p.indexed_deltas() as u64);
                    bar.set_message("resolving deltas");
                }
                true
            });
        }
        cbs
    }

    /// Answers one credential request of libgit2: each configured method once, then the defaults.
    fn credential(
        &self,
        url: &str,
        user_from_url: Option<&str>,
        allowed: CredentialType,
        attempts: &mut Attempts,
        talk: &Talk,
    ) -> std::result::Result<Cred, git2::Error> {
        let creds = &self.settings.credentials;
        let tried = |what: String| talk.tried.borrow_mut().push(what);
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(&ssh_user(user_from_url));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = ssh_user(user_from_url);
            if let Some(key) = &creds.ssh_key {
                if !attempts.key {
                    attempts.key = true;
                    tried(format!("key file {}", key.display()));
                    let passphrase = self.secret_var(creds.ssh_key_passphrase_env.as_deref());
                    return Cred::ssh_key(&user, None, key, passphrase.as_deref());
                }
            } else {
                if !attempts.agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
                    attempts.agent = true;
                    tried("the ssh agent".into());
                    return Cred::ssh_key_from_agent(&user);
                }
                while let Some(key) = attempts.next_default_key() {
                    if key.is_file() {
                        tried(format!("key file {}", key.display()));
                        return Cred::ssh_key(&user, None, &key, None);
                    }
                }
            }
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if creds.has_http() && !attempts.configured {
                attempts.configured = true;
                let (user, password, what) = self.http_credentials(user_from_url)?;
                tried(what);
                return Cred::userpass_plaintext(&user, &password);
            }
            if !creds.has_http() && !attempts.helper {
                attempts.helper = true;
                if let Ok(config) = git2::Config::open_default()
                    && let Ok(cred) = Cred::credential_helper(&config, url, user_from_url)
                {
                    tried("git's credential helper".into());
                    return Ok(cred);
                }
            }
        }
        *talk.exhausted.borrow_mut() = true;
        Err(git2::Error::from_str(NO_MORE_CREDENTIALS))
    }

    /// User name, password and a description of where they came from, for http(s).
    fn http_credentials(
        &self,
        user_from_url: Option<&str>,
    ) -> std::result::Result<(String, String, String), git2::Error> {
        let creds = &self.settings.credentials;
        let missing =
            |var: &str| git2::Error::from_str(&format!("environment variable {var} is not set"));
        let user = match creds.user_env.as_deref() {
            Some(var) => std::env::var(var).map_err(|_| missing(var))?,
            None => user_from_url
                .filter(|u| !u.is_empty())
                .unwrap_or("x-access-token")
                .to_string(),
        };
        let (var, what) = match (creds.token_env.as_deref(), creds.password_env.as_deref()) {
            (Some(var), _) => (var, format!("the token in ${var}")),
            (None, Some(var)) => (var, format!("the password in ${var}")),
            (None, None) => return Err(git2::Error::from_str("no password or token variable set")),
        };
        let password = self.secret_var(Some(var)).ok_or_else(|| missing(var))?;
        Ok((user, password, what))
    }

    /// The value of a secret environment variable, remembered so that it is scrubbed from messages.
    fn secret_var(&self, var: Option<&str>) -> Option<String> {
        let value = std::env::var(var?).ok().filter(|v| !v.is_empty())?;
        self.secrets.borrow_mut().push(value.clone());
        Some(value)
    }

    /// Checks, before connecting, that the variables the config names are set: a configuration error
    /// (exit 2) rather than a refused login.
    fn check_credentials(&self) -> Result<()> {
        let creds = &self.settings.credentials;
        let vars = [
            ("token_env", creds.token_env.as_deref()),
            ("user_env", creds.user_env.as_deref()),
            ("password_env", creds.password_env.as_deref()),
            (
                "ssh_key_passphrase_env",
                creds.ssh_key_passphrase_env.as_deref(),
            ),
        ];
        for (key, var) in vars {
            if let Some(var) = var
                && std::env::var(var).map_or(true, |v| v.is_empty())
            {
                return Err(Error::config(format!(
                    "source {}: {key}: environment variable {var} is not set (or empty)",
                    self.source.name
                )));
            }
        }
        if let Some(key) = &creds.ssh_key
            && !key.is_file()
        {
            return Err(Error::config(format!(
                "source {}: ssh_key {}: no such file",
                self.source.name,
                key.display()
            )));
        }
        Ok(())
    }

    /// The host-key (or TLS certificate) decision for a connection.
    fn check_host(
        &self,
        cert: &git2::cert::Cert<'_>,
        host: &str,
        talk: &Talk,
    ) -> std::result::Result<CertificateCheckStatus, git2::Error> {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS: OpenSSL's verdict against the system's certificate authorities.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        match &self.settings.host_keys {
            HostKeyPolicy::UserKnownHosts => Ok(CertificateCheckStatus::CertificatePassthrough),
            HostKeyPolicy::Insecure => {
                self.note(&format!(
                    "warning: source {}: accepting any ssh host key for {host} (insecure_skip_host_key_check)",
                    self.source.name
                ));
                Ok(CertificateCheckStatus::CertificateOk)
            }
            HostKeyPolicy::KnownHostsFile(file) => {
                let key = hostkey.hostkey().unwrap_or_default();
                let port = self.remote.port.filter(|&p| p != 22);
                match known_hosts_check(file, host, port, key) {
                    Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                    Err(why) => {
                        *talk.host_key.borrow_mut() = Some(why.clone());
                        Err(git2::Error::from_str(&why))
                    }
                }
            }
        }
    }

    /// The branch a commit target builds, from the mirror (for `--locked` on a branch source).
    fn local_branch(&self, repo: &Repository, target: &Target) -> Option<String> {
        local_ref(repo, target).and_then(|w| w.branch)
    }

    fn peel(&self, repo: &Repository, name: &str) -> Result<Oid> {
        repo.find_reference(name)
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id())
            .map_err(|e| {
                self.error(format!(
                    "{name} of {}: {}",
                    self.shown,
                    self.scrub(e.message())
                ))
            })
    }

    fn staging_dir(&self) -> Result<tempfile::TempDir> {
        let parent = self.mirror.parent().unwrap_or(Path::new("."));
        crate::dirs::create_private(parent).map_err(|e| Error::io(parent, e))?;
        tempfile::Builder::new()
            .prefix(&format!(".{}.git.", self.source.name))
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))
    }

    fn init_mirror(&self, dir: &Path) -> Result<Repository> {
        let repo = Repository::init_bare(dir).map_err(|e| {
            self.error(format!(
                "creating a mirror in {}: {}",
                dir.display(),
                e.message()
            ))
        })?;
        let mut config = repo
            .config()
            .map_err(|e| self.error(format!("the mirror's config: {}", e.message())))?;
        config
            .set_bool("core.logAllRefUpdates", false)
            .map_err(|e| self.error(format!("the mirror's config: {}", e.message())))?;
        Ok(repo)
    }

    fn open_mirror(&self) -> Result<Repository> {
        Repository::open_bare(&self.mirror).map_err(|e| {
            self.error(format!(
                "the mirror {} is not a git repository ({}): delete it to fetch again",
                self.mirror.display(),
                e.message()
            ))
        })
    }

    /// Records the redacted location and the time of this fetch in the mirror's config.
    fn remember(&self, repo: &Repository) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        repo.config()
            .and_then(|mut c| {
                c.set_str(LOCATION_KEY, &self.shown)?;
                c.set_i64(FETCHED_KEY, now)
            })
            .map_err(|e| self.error(format!("the mirror's config: {}", e.message())))
    }

    fn bar(&self) -> ProgressBar {
        if !self.settings.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} objects, {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("fetching {}", self.source.name));
        bar
    }

    fn fetch_line(&self, stats: FetchStats, branch: Option<&str>) -> String {
        let what = branch.map_or_else(String::new, |b| format!(" {b}"));
        if stats.objects == 0 {
            format!(
                "source {}: {}{what} is up to date ({} ms)",
                self.source.name,
                self.shown,
                stats.elapsed.as_millis()
            )
        } else {
            format!(
                "source {}: fetched {} objects ({}) of {}{what} in {} ms",
                self.source.name,
                stats.objects,
                HumanBytes(stats.bytes as u64),
                self.shown,
                stats.elapsed.as_millis()
            )
        }
    }

    fn note(&self, line: &str) {
        if self.settings.notes {
            eprintln!("{}", self.scrub(line));
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Source {
            source_name: self.source.name.clone(),
            message: self.scrub(&message),
        }
    }

    /// A libgit2 failure while `doing` something with the remote, with what to try.
    fn git_error(&self, doing: &str, e: &git2::Error, talk: &Talk) -> Error {
        if let Some(why) = talk.host_key.borrow().clone() {
            return self.error(format!("{doing} {}: {why}", self.shown));
        }
        let offered = !talk.tried.borrow().is_empty();
        if e.code() == ErrorCode::Auth
            || *talk.exhausted.borrow()
            || e.message().contains("401")
            || e.message().contains("authentication")
            // libssh2 refusing a key file (bad passphrase, unknown format) before the server sees it.
            || (e.class() == ErrorClass::Ssh && offered && e.message().contains("key"))
        {
            let detail = if e.message() == NO_MORE_CREDENTIALS {
                String::new()
            } else {
                format!("{}; ", e.message())
            };
            let hint = self.auth_hint(&talk.tried.borrow());
            return self.error(format!("{doing} {}: {detail}{hint}", self.shown));
        }
        let hint = if e.code() == ErrorCode::Certificate {
            self.certificate_hint()
        } else if matches!(
            e.class(),
            ErrorClass::Net | ErrorClass::Os | ErrorClass::Ssh | ErrorClass::Http
        ) {
            let offline = if self.mirror.exists() {
                ", or build what was fetched before with --offline"
            } else {
                ""
            };
            format!("check the location and the network{offline}")
        } else {
            "check the location".to_string()
        };
        self.error(format!("{doing} {}: {}; {hint}", self.shown, e.message()))
    }

    fn auth_hint(&self, tried: &[String]) -> String {
        let ssh = matches!(self.remote.scheme, Scheme::Ssh | Scheme::ScpLike);
        if tried.is_empty() {
            let what = if ssh {
                "set ssh_key (and ssh_key_passphrase_env) on this source, or add a key to ssh-agent"
            } else {
                "set token_env (or user_env and password_env) on this source to the name of an \
                 environment variable holding the credential, or configure a git credential helper"
            };
            return format!("authentication failed: no credentials were found; {what}");
        }
        let what = if ssh {
            "check the key file, its passphrase (ssh_key_passphrase_env) and that the server accepts \
             that key for this user"
        } else {
            "check the credential's value, its expiry and its scopes (read access to the repository)"
        };
        format!(
            "authentication failed with {}; {what}",
            tried.join(", then ")
        )
    }

    fn certificate_hint(&self) -> String {
        match self.remote.scheme {
            Scheme::Ssh | Scheme::ScpLike => {
                let host = match self.remote.port.filter(|&p| p != 22) {
                    Some(port) => format!("-p {port} {}", self.remote.host),
                    None => self.remote.host.clone(),
                };
                format!(
                    "the server's ssh host key is not known: add it to ~/.ssh/known_hosts or to a file named \
                     by ssh_known_hosts (ssh-keyscan {host}, after checking its fingerprint)"
                )
            }
            _ => {
                "the server's TLS certificate is not trusted: point SSL_CERT_FILE at its CA bundle"
                    .to_string()
            }
        }
    }

    /// `text` without the raw location or any secret value, on one line.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.source.location, &self.shown);
        for secret in self.secrets.borrow().iter().filter(|s| !s.is_empty()) {
            out = out.replace(secret.as_str(), "***");
        }
        out.replace(['\n', '\r'], " ").trim().to_string()
    }
}

/// Which credentials a connection already offered.
#[derive(Debug, Default)]
struct Attempts {
    key: bool,
    agent: bool,
    default_keys: usize,
    configured: bool,
    helper: bool,
}

impl Attempts {
    /// The next of `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa` not yet offered.
    fn next_default_key(&mut self) -> Option<PathBuf> {
        const KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];
        let home = std::env::var_os("HOME")?;
        let name = KEYS.get(self.default_keys)?;
        self.default_keys += 1;
        Some(Path::new(&home).join(".ssh").join(name))
    }
}

/// The ssh user: the URL's, else the local user, as ssh does.
fn ssh_user(user_from_url: Option<&str>) -> String {
    user_from_url
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "git".to_string())
}

/// The secrets written in a location: the password of `user:password@`, or a lone http(s) user name
/// (a token), as written and percent-decoded.
fn url_secrets(location: &str) -> Vec<String> {
    let Some((scheme, rest)) = location.split_once("://") else {
        // scp-like: `user:password@host:path` has a password only when the user info has a colon.
        return location
            .split_once('@')
            .and_then(|(info, _)| info.split_once(':'))
            .map(|(_, p)| with_decoded(p))
            .unwrap_or_default();
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some((info, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    match info.split_once(':') {
        Some((_, password)) => with_decoded(password),
        None if !scheme.to_ascii_lowercase().contains("ssh") => with_decoded(info),
        None => Vec::new(),
    }
}

fn with_decoded(secret: &str) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let decoded = percent_decode_str(secret).decode_utf8_lossy().into_owned();
    if decoded == secret {
        vec![secret.to_string()]
    } else {
        vec![secret.to_string(), decoded]
    }
}

/// A full 40-hex (SHA-1) or 64-hex (SHA-256) commit id.
fn full_commit_id(r: &str) -> Option<Oid> {
    (matches!(r.len(), 40 | 64) && r.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Oid::from_str(r).ok())
        .flatten()
}

fn has_commit(repo: &Repository, commit: Oid) -> bool {
    repo.find_commit(commit).is_ok()
}

/// The mirror's ref for a target, without the network: HEAD's branch, or `r` as a full ref, tag or
/// branch.
fn local_ref(repo: &Repository, target: &Target) -> Option<WantedRef> {
    match target {
        Target::Default => {
            let head = repo.find_reference("HEAD").ok()?;
            let name = head.symbolic_target().ok()??.to_string();
            repo.find_reference(&name).ok()?;
            Some(WantedRef::new(name))
        }
        Target::Named(r) => [
            r.clone(),
            format!("refs/tags/{r}"),
            format!("refs/heads/{r}"),
        ]
        .into_iter()
        .find(|c| c.starts_with("refs/") && repo.find_reference(c).is_ok())
        .map(WantedRef::new),
    }
}

fn describe(target: &Target) -> String {
    match target {
        Target::Default => "the default branch".to_string(),
        Target::Named(r) => format!("{r:?}"),
    }
}

fn stored_location(repo: &Repository) -> Option<String> {
    repo.config().ok()?.get_string(LOCATION_KEY).ok()
}

fn short(commit: Oid) -> String {
    let s = commit.to_string();
    s[..s.len().min(12)].to_string()
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time.
fn utc_minute(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

// ---------------------------------------------------------------------------------------------------
// known_hosts
// ---------------------------------------------------------------------------------------------------

/// Checks an ssh host key against an OpenSSH `known_hosts` file: accepted when a line for the host
/// (`host`, or `[host]:port` off port 22; patterns with `*`, `?` and `!` negation) lists exactly this
/// key and no `@revoked` line does. Hashed host names (`|1|…`) and `@cert-authority` lines are not
/// supported and never match. The error says what to add, with the key's SHA-256 fingerprint.
pub fn known_hosts_check(
    file: &Path,
    host: &str,
    port: Option<u16>,
    key: &[u8],
) -> std::result::Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("ssh_known_hosts {}: {e}", file.display()))?;
    let name = match port {
        Some(p) => format!("[{host}]:{p}"),
        None => host.to_string(),
    };
    let encoded = base64(key);
    let mut known = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (marker, hosts) = match fields.next() {
            Some(m) if m.starts_with('@') => (Some(m), fields.next()),
            other => (None, other),
        };
        let (Some(hosts), Some(_kind), Some(blob)) = (hosts, fields.next(), fields.next()) else {
            continue;
        };
        if blob != encoded || !host_matches(hosts, &name) {
            continue;
        }
        match marker {
            None => known = true,
            Some("@revoked") => {
                return Err(format!(
                    "the ssh host key of {name} is marked @revoked in {}",
                    file.display()
                ));
            }
            Some(_) => {}
        }
    }
    if known {
        return Ok(());
    }
    let fingerprint = base64(&Sha256::digest(key));
    let keyscan = match port {
        Some(p) => format!("ssh-keyscan -p {p} {host}"),
        None => format!("ssh-keyscan {host}"),
    };
    Err(format!(
        "the ssh host key of {name} (SHA256:{}) is not listed in {}: if that fingerprint is right, add the \
         line `{keyscan}` prints to that file",
        fingerprint.trim_end_matches('='),
        file.display()
    ))
}

/// Whether a comma-separated known_hosts pattern list matches `name`: some pattern matches and no
/// negated one does.
fn host_matches(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        match pattern.strip_prefix('!') {
            Some(negated) if wildcard(negated, name) => return false,
            Some(_) => {}
            None => matched |= wildcard(pattern, name),
        }
    }
    matched
}

/// `*` and `?` wildcard matching, ASCII case-insensitive (host names).
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Standard base64 with padding, as known_hosts writes keys.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
    }

    #[test]
    fn known_hosts_patterns() {
        assert!(host_matches("example.com,10.0.0.1", "example.com"));
        assert!(host_matches("*.example.com", "git.example.com"));
        assert!(!host_matches(
            "*.example.com,!git.example.com",
            "git.example.com"
        ));
        assert!(host_matches("[127.0.0.1]:2222", "[127.0.0.1]:2222"));
        assert!(!host_matches("127.0.0.1", "[127.0.0.1]:2222"));
        assert!(host_matches("git?.corp", "git1.corp"));
        assert!(!host_matches("git?.corp", "git12.corp"));
        assert!(host_matches("GIT.Example.com", "git.example.com"));
    }

    #[test]
    fn known_hosts_file_accepts_listed_keys_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("known_hosts");
        let key = b"\x00\x00\x00\x0bssh-ed25519 pretend key";
        let other = b"\x00\x00\x00\x0bssh-ed25519 another key";
        std::fs::write(
            &file,
            format!(
                "# comment\n\n|1|hashed|entry ssh-ed25519 {}\n[127.0.0.1]:2222,localhost ssh-ed25519 {} test\n",
                base64(other),
                base64(key)
            ),
        )
        .expect("write");
        assert_eq!(
            known_hosts_check(&file, "127.0.0.1", Some(2222), key),
            Ok(())
        );
        assert_eq!(known_hosts_check(&file, "localhost", None, key), Ok(()));
        let wrong =
            known_hosts_check(&file, "127.0.0.1", Some(2222), other).expect_err("other key");
        assert!(wrong.contains("[127.0.0.1]:2222 (SHA256:"), "{wrong}");
        assert!(wrong.contains("ssh-keyscan -p 2222 127.0.0.1"), "{wrong}");
        assert!(known_hosts_check(&file, "127.0.0.1", None, key).is_err());

        std::fs::write(
            &file,
            format!(
                "localhost ssh-ed25519 {0}\n@revoked localhost ssh-ed25519 {0}\n",
                base64(key)
            ),
        )
        .expect("write");
        let revoked = known_hosts_check(&file, "localhost", None, key).expect_err("revoked");
        assert!(revoked.contains("@revoked"), "{revoked}");
    }

    #[test]
    fn url_secrets_are_found_in_every_form() {
        assert_eq!(url_secrets("https://u:p%40ss@h/x"), ["p%40ss", "p@ss"]);
        assert_eq!(url_secrets("https://tok@h/x"), ["tok"]);
        assert!(url_secrets("ssh://git@h/x").is_empty());
        assert!(url_secrets("git@h:x").is_empty());
        assert_eq!(url_secrets("u:pw@h:x"), ["pw"]);
        assert!(url_secrets("https://h/x").is_empty());
        assert!(url_secrets("../local").is_empty());
    }

    #[test]
    fn commit_ids_and_dates() {
        assert!(full_commit_id("0123456789abcdef0123456789abcdef01234567").is_some());
        assert!(full_commit_id("0123456").is_none());
        assert!(full_commit_id("main").is_none());
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(1_750_000_000), "2025-06-15 15:06 UTC");
        assert_eq!(utc_minute(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn mirrors_live_under_the_state_folder() {
        assert_eq!(
            mirror_path(Path::new("st"), "sigmahq"),
            Path::new("st/mirrors/sigmahq.git")
        );
    }
}
