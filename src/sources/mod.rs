//! Sources: where rules come from, pinned to one commit.
//!
//! This stage owns opening each configured repository with git2, resolving its ref to a commit, listing
//! the rule files of that commit's tree (path and blob id, filtered by [`crate::config::PathFilter`]) and
//! reading blob contents. Rules are always read from the commit's objects, never from a working tree, so
//! what is built is exactly a commit. It also works out how a rule file is linked on the web
//! ([`weburl`]). A location is a path to a working tree, a path inside one (that sub-folder only) or a
//! bare repository, or a URL: a remote source is fetched into a bare mirror under the state folder by
//! [`remote`] and read from there.

pub mod remote;

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::config::{PathFilter, SourceConfig};
use crate::error::{Error, Result};
use crate::weburl::{self, HostKind, Template};

/// One source, opened and pinned to a commit.
pub struct Snapshot {
    /// The source's unique name.
    pub name: String,
    /// The location as shown to users (credentials redacted).
    pub location: String,
    /// The repository's git folder.
    pub git_dir: PathBuf,
    /// The commit built.
    pub commit: Oid,
    /// The commit's committer time (Unix seconds).
    pub commit_time: i64,
    /// The branch built, when the ref is (or HEAD points to) a branch.
    pub branch: Option<String>,
    /// Which paths are rule files (the configured filter, narrowed to a sub-folder if one was given).
    pub filter: PathFilter,
    /// Rule files of the commit, sorted by path; empty until [`Snapshot::list_files`] (a build that
    /// finds nothing changed never needs them).
    pub files: Vec<RuleFile>,
    /// How to link a file on the web, when known.
    pub web: Option<WebLink>,
    /// The opened repository, until [`Snapshot::close`].
    repo: Option<Repository>,
}

/// A rule file in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFile {
    /// Path in the repository, `/`-separated.
    pub path: String,
    /// The file's blob id.
    pub blob: Oid,
}

/// How to build a web link to a file of a source.
#[derive(Debug, Clone)]
pub enum WebLink {
    /// A recognised forge, from the remote URL.
    Forge {
        remote: weburl::RemoteUrl,
        kind: HostKind,
    },
    /// The config's `web_url` template, with the remote it fills `{host}` and `{repo}` from (if any).
    Template {
        template: Template,
        remote: Option<weburl::RemoteUrl>,
    },
}

impl WebLink {
    /// A description of how links are made, for cache keys.
    pub fn describe(&self) -> String {
        match self {
            WebLink::Forge { remote, kind } => format!("{} {remote}", kind.name()),
            WebLink::Template { template, remote } => match remote {
                Some(r) => format!("{} {r}", template.as_str()),
                None => template.as_str().to_string(),
            },
        }
    }

    /// The repository's web page (`https://github.com/org/rules`), for a recognised forge.
    pub fn repository_url(&self) -> Option<String> {
        match self {
            WebLink::Forge { remote, kind } => weburl::web_base(remote, *kind)
                .ok()
                .map(|w| w.base().to_string()),
            WebLink::Template { .. } => None,
        }
    }

    /// The link to `path` at `rev` (a commit id or a branch name).
    pub fn file_url(&self, rev: &str, path: &str) -> String {
        match self {
            WebLink::Forge { remote, kind } => weburl::file_url(remote, *kind, rev, path),
            WebLink::Template { template, remote } => template.render(remote.as_ref(), rev, path),
        }
    }
}

/// Which revision a value's web link names. The link itself is made only when the value's text is
/// formatted ([`SourceLinks::url`]): a build that copies an unchanged value's text from the previous
/// cluster never makes it (at 100k rules, making every link was a tenth of a 10-rule build).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRev {
    /// A commit by id: the newest first-parent commit that changed the file.
    Change(crate::hash::GitId),
    /// The built commit.
    Commit,
    /// The built branch.
    Branch,
}

/// What one source's web links are made of in a build: how links are made, and the commit and
/// branch a [`LinkRev`] can name.
#[derive(Debug, Clone)]
pub struct SourceLinks {
    web: WebLink,
    commit: String,
    /// The branch built; links to it name the commit when there is none.
    branch: Option<String>,
    /// [`WebLink::describe`], which value keys hash in place of the links.
    describe: String,
}

impl SourceLinks {
    /// The links of `snap`'s files, when it has a web link.
    pub fn of(snap: &Snapshot) -> Option<SourceLinks> {
        let web = snap.web.clone()?;
        Some(SourceLinks::new(
            web,
            snap.commit.to_string(),
            snap.branch.clone(),
        ))
    }

    /// Links made by `web` at `commit` (and `branch`, when the built ref is one).
    pub fn new(web: WebLink, commit: String, branch: Option<String>) -> SourceLinks {
        SourceLinks {
            describe: web.describe(),
            web,
            commit,
            branch,
        }
    }

    /// The revision `rev` names, as a link writes it.
    fn rev(&self, rev: LinkRev) -> std::borrow::Cow<'_, str> {
        match rev {
            LinkRev::Change(id) => crate::hash::hex(&id.0).into(),
            LinkRev::Commit => self.commit.as_str().into(),
            LinkRev::Branch => self.branch.as_deref().unwrap_or(&self.commit).into(),
        }
    }

    /// The link to `path` at `rev`.
    pub fn url(&self, rev: LinkRev, path: &str) -> String {
        self.web.file_url(&self.rev(rev), path)
    }

    /// Appends to `buf` everything [`SourceLinks::url`] makes the link to `path` at `rev` from (how
    /// links are made, the revision, the path), each part after its length, for value keys: equal
    /// bytes make equal links. A commit id goes in as its 20 bytes, not as a text made for it.
    pub fn key_into(&self, rev: LinkRev, path: &str, buf: &mut Vec<u8>) {
        let mut part = |bytes: &[u8]| {
            buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            buf.extend_from_slice(bytes);
        };
        part(self.describe.as_bytes());
        match rev {
            LinkRev::Change(id) => {
                part(b"change");
                part(&id.0);
            }
            LinkRev::Commit | LinkRev::Branch => {
                part(b"ref");
                part(self.rev(rev).as_bytes());
            }
        }
        part(path.as_bytes());
    }
}

/// Process-wide libgit2 settings, applied once before the first repository is opened.
///
/// libgit2 re-hashes every object it reads to check it against its id (git itself does not); a build
/// reads every tree of the first-parent history, so this halves the time of a clean build. Objects come
/// from repositories the user chose (or mirrors fetched over authenticated transports, whose packs
/// libgit2 does verify on fetch), so the check buys little here.
fn tune_libgit2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| git2::opts::strict_hash_verification(false));
}

/// Opens a configured source and pins it to its ref. `state` is the state folder (remote sources are
/// mirrored under it).
pub fn open(source: &SourceConfig, state: &Path) -> Result<Snapshot> {
    let err = |message: String| Error::Source {
        source_name: source.name.clone(),
        message,
    };
    tune_libgit2();
    // A remote is fetched into its mirror first; the commit to build is then already known.
    let synced = remote::sync(source, state)?;
    let path = synced
        .as_ref()
        .map_or_else(|| Path::new(&source.location), |s| s.git_dir.as_path());
    // A git folder itself (a bare repository or a `.git`) is opened as bare: discovery would read one
    // without a `config` file (as some mirroring tools leave them) as the working tree of its parent.
    let opened = if is_git_dir(path) {
        Repository::open_bare(path)
    } else {
        Repository::discover(path)
    };
    let repo = opened.map_err(|e| {
        err(format!(
            "{}: not a git repository ({})",
            weburl::redact(&source.location),
            e.message()
        ))
    })?;
    let prefix = subfolder(&repo, path);
    let pinned = synced.as_ref().map(|s| s.commit).or(source.pinned);
    let pinned = pinned.map(|c| c.to_string());
    let spec = pinned
        .as_deref()
        .or(source.reference.as_deref())
        .unwrap_or("HEAD");
    let commit = repo
        .revparse_single(spec)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| err(format!("cannot resolve {spec:?}: {}", e.message())))?;
    let branch = match &synced {
        Some(s) => s.branch.clone(),
        None => branch_name(&repo, source.reference.as_deref()),
    };
    let mut filter = source.filter.clone();
    if prefix.is_some() {
        filter.prefix = prefix;
    }
    let web = web_link(&repo, source);
    let (commit_id, commit_time) = (commit.id(), commit.committer().when().seconds());
    drop(commit);
    Ok(Snapshot {
        name: source.name.clone(),
        location: weburl::redact(&source.location),
        git_dir: repo.path().to_path_buf(),
        commit: commit_id,
        commit_time,
        branch,
        filter,
        files: Vec::new(),
        web,
        repo: Some(repo),
    })
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("name", &self.name)
            .field("commit", &self.commit)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// The opened repository (an error once it is closed).
    pub fn repo(&self) -> Result<&Repository> {
        self.repo.as_ref().ok_or_else(|| Error::Source {
            source_name: self.name.clone(),
            message: "the repository was already closed".into(),
        })
    }

    /// Closes the repository, once a build has read from it everything but the rule files' blobs
    /// (which parsing reads through handles of its own). libgit2 keeps a pack file mapped while any
    /// handle to it is open, and what was read of it counts in the process's memory: at 100k rules,
    /// a 70 MB pack held through the merge and formatting, a sixth of the peak.
    pub fn close(&mut self) {
        self.repo = None;
    }

    /// Lists the rule files of the commit into [`Snapshot::files`].
    pub fn list_files(&mut self) -> Result<()> {
        let listed = self
            .repo()?
            .find_commit(self.commit)
            .and_then(|c| c.tree())
            .and_then(|tree| rule_files(&tree, &self.filter));
        self.files = listed.map_err(|e| Error::Source {
            source_name: self.name.clone(),
            message: format!("reading the tree of {}: {}", self.commit, e.message()),
        })?;
        Ok(())
    }
}

/// Whether `path` is a git folder: `HEAD`, `objects/` and `refs/` in it.
fn is_git_dir(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

/// The folder of the working tree that `path` points into, as a `a/b/` prefix; `None` for the top.
fn subfolder(repo: &Repository, path: &Path) -> Option<String> {
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let here = path.canonicalize().ok()?;
    let rel = here.strip_prefix(&workdir).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    (!parts.is_empty()).then(|| format!("{}/", parts.join("/")))
}

/// The branch a ref names, or HEAD's branch when no ref is given.
fn branch_name(repo: &Repository, reference: Option<&str>) -> Option<String> {
    match reference {
        Some(r) => repo
            .find_branch(r, git2::BranchType::Local)
            .ok()
            .and_then(|b| b.name().ok().flatten().map(str::to_string))
            .or_else(|| {
                let remote = repo.find_branch(r, git2::BranchType::Remote).ok()?;
                let name = remote.name().ok()??;
                Some(name.split_once('/').map_or(name, |(_, b)| b).to_string())
            }),
        None => {
            let head = repo.head().ok()?;
            if !head.is_branch() {
                return None;
            }
            head.shorthand().ok().map(str::to_string)
        }
    }
}

/// Every rule file of `tree` that `filter` accepts, sorted by path: blobs only, so symbolic links
/// and submodules (gitlinks) are never read.
pub fn rule_files(
    tree: &git2::Tree<'_>,
    filter: &PathFilter,
) -> std::result::Result<Vec<RuleFile>, git2::Error> {
    let mut files = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            return TreeWalkResult::Skip;
        };
        match entry.kind() {
            Some(ObjectType::Tree) if !filter.may_contain(&format!("{dir}{name}/")) => {
                TreeWalkResult::Skip
            }
            // A symbolic link's blob is its target's path, not a rule: not followed, not read.
            Some(ObjectType::Blob) if entry.filemode() == 0o120_000 => TreeWalkResult::Ok,
            Some(ObjectType::Blob) => {
                let path = format!("{dir}{name}");
                if filter.matches(&path) {
                    files.push(RuleFile {
                        path,
                        blob: entry.id(),
                    });
                }
                TreeWalkResult::Ok
            }
            _ => TreeWalkResult::Ok,
        }
    })?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The web link style of a source: its `web_url` template, else its `origin` remote on a known forge.
fn web_link(repo: &Repository, source: &SourceConfig) -> Option<WebLink> {
    let remote_url = if weburl::parse_remote(&source.location).is_some() {
        Some(source.location.clone())
    } else {
        repo.find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().map(str::to_string))
    };
    let remote = remote_url.as_deref().and_then(weburl::parse_remote);
    if let Some(template) = &source.web_url {
        return Some(WebLink::Template {
            template: template.clone(),
            remote,
        });
    }
    let remote = remote?;
    let kind = source
        .host
        .or_else(|| weburl::detect_host_kind(&remote.host))?;
    Some(WebLink::Forge { remote, kind })
}
