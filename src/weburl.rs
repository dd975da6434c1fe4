//! Web URLs: from a git remote URL to a browsable link to one file at one commit.
//!
//! This module owns everything done with a source's location *as a string*: telling a remote URL from a
//! local path ([`parse_remote`]), keeping credentials out of anything shown or stored ([`redact`], and a
//! [`RemoteUrl`] that never holds a secret), recognising the forge that serves a remote ([`HostKind`],
//! [`detect_host_kind`]) and building the link to one rule file at one revision, in the forge's own URL
//! layout ([`web_base`], [`WebRepo`], [`file_url`]) or from a per-source [`Template`]. It does no I/O.
//!
//! # Percent-encoding
//!
//! Repository file paths and branch names are literal text; in a link each `/`-separated segment is
//! percent-encoded as UTF-8, leaving as is the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~` and
//! the sub-delimiters GitHub's own links leave readable: `! $ & ' ( ) * + , = : @`. Everything else
//! (space, `#`, `?`, `%`, `;`, `"`, `<`, `>`, `\`, `[`, `]`, `{`, `}`, `|`, `^`, `` ` ``, controls and
//! every non-ASCII byte) is encoded, so `rules/my rule (v2).yml` becomes `rules/my%20rule%20(v2).yml`
//! and `règle.yml` becomes `r%C3%A8gle.yml`. `;` is encoded because Java servlet containers read it as
//! a path parameter. In a query value (Azure DevOps' `path=` and `version=`) `/` stays but `& = + ; ?`
//! are encoded too. Repository paths taken from a remote URL are already URL text: each segment is
//! decoded once and re-encoded, so `My%20Project` stays `My%20Project` rather than `My%2520Project`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What replaces a secret.
const REDACTED: &str = "***";

/// Left as is in a path segment: unreserved characters plus `! $ & ' ( ) * + , = : @`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Left as is in a query value: unreserved characters plus `! $ ' ( ) * , : @ /`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b',')
    .remove(b':')
    .remove(b'@')
    .remove(b'/');

// ---------------------------------------------------------------------------------------------------
// Remote URLs
// ---------------------------------------------------------------------------------------------------

/// How a remote is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `https://`
    Https,
    /// `http://`
    Http,
    /// `ssh://`, also written `git+ssh://` or `ssh+git://`.
    Ssh,
    /// scp-like `[user@]host:path`.
    ScpLike,
    /// `git://`
    Git,
    /// `file://`
    File,
}

impl Scheme {
    /// The scheme of a `scheme://` URL, case-insensitively; `None` for schemes git remotes do not use.
    fn from_url_scheme(scheme: &str) -> Option<Scheme> {
        Some(match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            "ssh" | "git+ssh" | "ssh+git" => Scheme::Ssh,
            "git" => Scheme::Git,
            "file" => Scheme::File,
            _ => return None,
        })
    }

    /// The name written before `://`; `None` for scp-like remotes.
    pub fn url_name(self) -> Option<&'static str> {
        match self {
            Scheme::Https => Some("https"),
            Scheme::Http => Some("http"),
            Scheme::Ssh => Some("ssh"),
            Scheme::Git => Some("git"),
            Scheme::File => Some("file"),
            Scheme::ScpLike => None,
        }
    }
}

/// A parsed git remote, with no secret in it.
///
/// [`parse_remote`] drops a password or token found in the user info and only records that it did
/// ([`RemoteUrl::secret_removed`]), and keeps the query string already redacted, so neither `Display`
/// nor `Debug` nor any field can show a credential. The parsed value is only used to show the location and
/// to build web links; git itself is handed the configured location string, never this struct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteUrl {
    /// How the remote is reached.
    pub scheme: Scheme,
    /// The user name, when it is not a secret: an ssh/scp user (`git`), or the user of `user:password`.
    /// A lone user name on http(s) is a token and is dropped.
    pub user: Option<String>,
    /// A password or token was in the user info and was dropped; `Display` shows `***` in its place.
    pub secret_removed: bool,
    /// Host name, ASCII-lowercased; an IPv6 address without its brackets; empty for `file:///path`.
    pub host: String,
    /// Port, when written (never for scp-like remotes).
    pub port: Option<u16>,
    /// The path as written: starts with `/` for URL forms (or is empty), and is the text after the
    /// colon for scp-like remotes. Percent-escapes are kept as written.
    pub path: String,
    /// The query string as written but with secret parameters redacted (URL forms only).
    pub query: Option<String>,
}

impl RemoteUrl {
    /// The repository path: [`RemoteUrl::path`] without surrounding `/` and without a trailing `.git`,
    /// e.g. `org/rules` or `group/sub/project`.
    pub fn repo_path(&self) -> &str {
        let trimmed = self.path.trim_matches('/');
        trimmed
            .strip_suffix(".git")
            .unwrap_or(trimmed)
            .trim_end_matches('/')
    }

    /// The repository path's segments, each decoded once and percent-encoded again for a URL path.
    fn repo_segments(&self) -> Vec<String> {
        self.repo_path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(normalize_segment)
            .collect()
    }

    /// The host as written in a URL: IPv6 addresses in brackets.
    fn host_in_url(&self) -> Cow<'_, str> {
        if self.host.contains(':') {
            Cow::Owned(format!("[{}]", self.host))
        } else {
            Cow::Borrowed(&self.host)
        }
    }
}

impl fmt::Display for RemoteUrl {
    /// The location, with `***` where a secret was; the scheme is written in its canonical form
    /// (`git+ssh://` as `ssh://`) and a `#fragment` is not kept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.scheme.url_name() {
            write!(f, "{name}://")?;
        }
        // A hand-built value could carry `user:secret` in `user`: never show what follows a colon.
        let user = self
            .user
            .as_deref()
            .map(|u| u.split_once(':').map_or(u, |(name, _)| name))
            .filter(|u| !u.is_empty());
        let secret = self.secret_removed || self.user.as_deref().is_some_and(|u| u.contains(':'));
        match (user, secret) {
            (Some(user), true) => write!(f, "{user}:{REDACTED}@")?,
            (Some(user), false) => write!(f, "{user}@")?,
            (None, true) => write!(f, "{REDACTED}@")?,
            (None, false) => {}
        }
        f.write_str(&self.host_in_url())?;
        if self.scheme == Scheme::ScpLike {
            return write!(f, ":{}", self.path);
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(&self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{}", redact_query(query))?;
        }
        Ok(())
    }
}

/// The syntactic pieces of a location, each a slice of it.
#[derive(Debug, Clone, Copy)]
struct Pieces<'a> {
    /// `Some("https")` for `scheme://…`, `None` for scp-like.
    scheme: Option<&'a str>,
    /// Everything before the `@` that ends the user info.
    userinfo: Option<&'a str>,
    /// Everything after `scheme://` and `userinfo@`.
    tail: &'a str,
}

impl Pieces<'_> {
    /// Whether a user name alone (no `:password`) is a credential: it is on http(s) and any other scheme
    /// where tokens are passed as the user name, but not for ssh, where it is the account (`git`).
    fn bare_user_is_secret(&self) -> bool {
        self.scheme.is_some_and(|s| {
            !matches!(
                s.to_ascii_lowercase().as_str(),
                "ssh" | "git+ssh" | "ssh+git"
            )
        })
    }
}

/// Cuts a location into scheme, user info and the rest; `None` for something that is neither a
/// `scheme://` URL nor scp-like (a local path).
fn split(location: &str) -> Option<Pieces<'_>> {
    if let Some((scheme, rest)) = location.split_once("://")
        && is_scheme(scheme)
    {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (userinfo, tail) = match rest[..authority_end].rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        return Some(Pieces {
            scheme: Some(scheme),
            userinfo,
            tail,
        });
    }
    split_scp(location).map(|(userinfo, tail, _, _)| Pieces {
        scheme: None,
        userinfo,
        tail,
    })
}

/// Splits an scp-like `[user@]host:path` (git's rule: a colon before any slash) into user info, the
/// text after `user@`, host and path. A local path (a slash before the colon, no colon, a DOS drive
/// letter such as `C:\x`, a backslash in the host) gives `None`.
fn split_scp(location: &str) -> Option<(Option<&str>, &str, &str, &str)> {
    let head = &location[..location.find('/').unwrap_or(location.len())];
    let (userinfo, tail) = match head.rfind('@') {
        Some(at) => (Some(&location[..at]), &location[at + 1..]),
        None => (None, location),
    };
    let (host, path) = match tail.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':')?)
        }
        None => tail.split_once(':')?,
    };
    let is_drive_letter = host.len() == 1 && host.bytes().all(|b| b.is_ascii_alphabetic());
    if !valid_host(host) || is_drive_letter || path.is_empty() {
        return None;
    }
    Some((userinfo, tail, host, path))
}

/// RFC 3986 scheme syntax: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A non-empty host without whitespace, controls or URL delimiters.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && !host.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '/' | '\\' | '@' | '?' | '#' | '[' | ']')
        })
}

/// Parses a git remote location: `https://`, `http://`, `ssh://` (`git+ssh://`, `ssh+git://`),
/// `git://` and `file://` URLs, and scp-like `[user@]host:path`.
///
/// Returns `None` for a local path (`../sigma`, `/x/y`, `./a:b`, `C:\x`) and for URLs of other schemes
/// or with an invalid host or port. Passwords and tokens are dropped (see [`RemoteUrl`]).
pub fn parse_remote(location: &str) -> Option<RemoteUrl> {
    let pieces = split(location)?;
    let (user, secret_removed) = match pieces.userinfo {
        None | Some("") => (None, false),
        Some(info) => match info.split_once(':') {
            Some((user, _)) => ((!user.is_empty()).then(|| user.to_owned()), true),
            None if pieces.bare_user_is_secret() => (None, true),
            None => (Some(info.to_owned()), false),
        },
    };
    let Some(scheme) = pieces.scheme else {
        let (_, _, host, path) = split_scp(location)?;
        return Some(RemoteUrl {
            scheme: Scheme::ScpLike,
            user,
            secret_removed,
            host: host.to_ascii_lowercase(),
            port: None,
            path: path.to_owned(),
            query: None,
        });
    };
    let scheme = Scheme::from_url_scheme(scheme)?;
    let tail = pieces.tail;
    let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
    let (tail, query) = match tail.split_once('?') {
        Some((before, query)) => (before, Some(redact_query(query).into_owned())),
        None => (tail, None),
    };
    let path_start = tail.find('/').unwrap_or(tail.len());
    let (host, port) = split_host_port(&tail[..path_start])?;
    if !(valid_host(host) || scheme == Scheme::File && host.is_empty()) {
        return None;
    }
    Some(RemoteUrl {
        scheme,
        user,
        secret_removed,
        host: host.to_ascii_lowercase(),
        port,
        path: tail[path_start..].to_owned(),
        query,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` for a port that is not a number below 65536.
fn split_host_port(hostport: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match hostport.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        },
    };
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

// ---------------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------------

/// The location with every credential replaced by `***`, everything else left exactly as written.
///
/// - a password: `https://user:tok@host/x` → `https://user:***@host/x` (any scheme, scp-like too);
/// - a lone user name on http(s) and other non-ssh schemes, which is how tokens are passed:
///   `https://tok@host/x` → `https://***@host/x`;
/// - an ssh or scp-like user name is kept: `ssh://git@host/x`, `git@host:x` are unchanged;
/// - query parameters whose name ends in `token`, `password` or `secret` (`token=`, `access_token=`,
///   `private_token=`, `oauth_token=`, …) get the value `***`.
///
/// A local path is returned unchanged.
pub fn redact(location: &str) -> String {
    let Some(pieces) = split(location) else {
        return location.to_owned();
    };
    let mut out = String::with_capacity(location.len());
    if let Some(scheme) = pieces.scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(info) = pieces.userinfo {
        match info.split_once(':') {
            Some((user, _)) if !user.is_empty() => {
                out.push_str(user);
                out.push(':');
                out.push_str(REDACTED);
            }
            Some(_) => out.push_str(REDACTED),
            None if !info.is_empty() && pieces.bare_user_is_secret() => out.push_str(REDACTED),
            None => out.push_str(info),
        }
        out.push('@');
    }
    if pieces.scheme.is_none() {
        out.push_str(pieces.tail);
        return out;
    }
    let tail = pieces.tail;
    let fragment_start = tail.find('#').unwrap_or(tail.len());
    match tail[..fragment_start].split_once('?') {
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            out.push_str(&redact_query(query));
            out.push_str(&tail[fragment_start..]);
        }
        None => out.push_str(tail),
    }
    out
}

/// A query string with the values of secret parameters replaced by `***`.
fn redact_query(query: &str) -> Cow<'_, str> {
    let is_secret = |pair: &str| {
        pair.split_once('=')
            .is_some_and(|(key, _)| is_secret_key(key))
    };
    if !query.split('&').any(is_secret) {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_key(key) => Cow::Owned(format!("{key}={REDACTED}")),
            _ => Cow::Borrowed(pair),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

/// Whether a query parameter name names a credential.
fn is_secret_key(key: &str) -> bool {
    let key = percent_decode_str(key)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    ["token", "password", "secret"]
        .iter()
        .any(|s| key.ends_with(s))
}

// ---------------------------------------------------------------------------------------------------
// Host kinds
// ---------------------------------------------------------------------------------------------------

/// A forge's URL layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKind {
    /// GitHub and GitHub Enterprise.
    GitHub,
    /// GitLab, with nested groups.
    GitLab,
    /// Bitbucket Cloud.
    Bitbucket,
    /// Gitea, Forgejo and Codeberg.
    Gitea,
    /// Azure DevOps Services and Server.
    AzureDevOps,
}

impl HostKind {
    /// The config name: `github`, `gitlab`, `bitbucket`, `gitea` or `azure`.
    pub fn name(self) -> &'static str {
        match self {
            HostKind::GitHub => "github",
            HostKind::GitLab => "gitlab",
            HostKind::Bitbucket => "bitbucket",
            HostKind::Gitea => "gitea",
            HostKind::AzureDevOps => "azure",
        }
    }
}

impl fmt::Display for HostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A config `host:` value that names no [`HostKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown host kind {0:?}: expected github, gitlab, bitbucket, gitea, forgejo or azure")]
pub struct UnknownHostKind(pub String);

impl FromStr for HostKind {
    type Err = UnknownHostKind;

    /// `github`, `gitlab`, `bitbucket`, `gitea`, `forgejo` (= gitea) or `azure`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "github" => HostKind::GitHub,
            "gitlab" => HostKind::GitLab,
            "bitbucket" => HostKind::Bitbucket,
            "gitea" | "forgejo" => HostKind::Gitea,
            "azure" => HostKind::AzureDevOps,
            _ => return Err(UnknownHostKind(s.to_owned())),
        })
    }
}

/// The forge a host name is known to be: github.com, gitlab.com, bitbucket.org, codeberg.org,
/// dev.azure.com, ssh.dev.azure.com, `*.visualstudio.com`, GitHub/GitLab/Bitbucket's ssh-over-443 hosts,
/// and hosts named `github.*`, `gitlab.*`, `gitea.*` or `forgejo.*`. `None` for any other host, whose
/// kind the config can name.
pub fn detect_host_kind(host: &str) -> Option<HostKind> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    Some(match host.as_str() {
        "github.com" | "ssh.github.com" => HostKind::GitHub,
        "gitlab.com" | "altssh.gitlab.com" => HostKind::GitLab,
        "bitbucket.org" | "altssh.bitbucket.org" => HostKind::Bitbucket,
        "codeberg.org" => HostKind::Gitea,
        "dev.azure.com" | "ssh.dev.azure.com" => HostKind::AzureDevOps,
        h if h.ends_with(".visualstudio.com") => HostKind::AzureDevOps,
        h if h.starts_with("github.") => HostKind::GitHub,
        h if h.starts_with("gitlab.") => HostKind::GitLab,
        h if h.starts_with("gitea.") || h.starts_with("forgejo.") => HostKind::Gitea,
        _ => return None,
    })
}

/// The web host of an ssh-only host name (the forges' ssh-over-port-443 hosts).
fn web_host_of_ssh_host(host: &str) -> &str {
    match host {
        "ssh.github.com" => "github.com",
        "altssh.gitlab.com" => "gitlab.com",
        "altssh.bitbucket.org" => "bitbucket.org",
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------------
// Web links
// ---------------------------------------------------------------------------------------------------

/// The revision a link points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rev<'a> {
    /// A commit id.
    Commit(&'a str),
    /// A branch name.
    Branch(&'a str),
    /// A tag name.
    Tag(&'a str),
}

impl<'a> Rev<'a> {
    /// The commit id or ref name.
    pub fn as_str(self) -> &'a str {
        match self {
            Rev::Commit(s) | Rev::Branch(s) | Rev::Tag(s) => s,
        }
    }
}

impl<'a> From<&'a str> for Rev<'a> {
    /// A full object id (40 hex digits for SHA-1, 64 for SHA-256) is a commit; anything else a branch.
    fn from(rev: &'a str) -> Self {
        if matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            Rev::Commit(rev)
        } else {
            Rev::Branch(rev)
        }
    }
}

/// Why a remote has no web page of a given kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebUrlError {
    /// A `file://` remote.
    #[error("{remote} is a file:// remote: it has no web page")]
    NoWebUi {
        /// The remote, redacted.
        remote: String,
    },
    /// The remote's path does not have the shape the forge uses.
    #[error("{remote} is not a {kind} repository URL: its path should be {expected}")]
    BadRepoPath {
        /// The remote, redacted.
        remote: String,
        /// The kind asked for.
        kind: HostKind,
        /// The expected path shape.
        expected: &'static str,
    },
}

/// A repository's web home on a forge: where file links are built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebRepo {
    kind: HostKind,
    base: String,
}

impl WebRepo {
    /// The forge kind.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// The repository's web page, e.g. `https://github.com/org/rules`, no trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The link to `path` (a repository path, `/`-separated) at `rev`.
    ///
    /// | kind | link |
    /// |---|---|
    /// | GitHub | `{base}/blob/{rev}/{path}` |
    /// | GitLab | `{base}/-/blob/{rev}/{path}` |
    /// | Bitbucket | `{base}/src/{rev}/{path}` |
    /// | Gitea | `{base}/src/commit/{rev}/{path}` (`src/branch/`, `src/tag/`) |
    /// | Azure DevOps | `{base}?path=/{path}&version=GC{sha}` (`GB` branch, `GT` tag) |
    pub fn file_url<'r>(&self, rev: impl Into<Rev<'r>>, path: &str) -> String {
        let rev = rev.into();
        let path = path.trim_start_matches('/');
        let base = &self.base;
        let middle = match (self.kind, rev) {
            (HostKind::GitHub, _) => "blob",
            (HostKind::GitLab, _) => "-/blob",
            (HostKind::Bitbucket, _) => "src",
            (HostKind::Gitea, Rev::Commit(_)) => "src/commit",
            (HostKind::Gitea, Rev::Branch(_)) => "src/branch",
            (HostKind::Gitea, Rev::Tag(_)) => "src/tag",
            (HostKind::AzureDevOps, _) => {
                let version = match rev {
                    Rev::Commit(_) => "GC",
                    Rev::Branch(_) => "GB",
                    Rev::Tag(_) => "GT",
                };
                let path = utf8_percent_encode(path, QUERY_VALUE);
                let rev = utf8_percent_encode(rev.as_str(), QUERY_VALUE);
                return format!("{base}?path=/{path}&version={version}{rev}");
            }
        };
        format!(
            "{base}/{middle}/{}/{}",
            encode_path(rev.as_str()),
            encode_path(path)
        )
    }
}

impl fmt::Display for WebRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// `scheme://host[:port]` of a remote's web UI: https and http remotes keep their scheme and a
/// non-default port; ssh, scp-like and git:// remotes map to `https://host` (the ssh port is not the
/// web's); `None` for file://.
fn web_origin(remote: &RemoteUrl) -> Option<String> {
    let host = remote.host_in_url();
    match remote.scheme {
        Scheme::Https | Scheme::Http => {
            let scheme = if remote.scheme == Scheme::Https {
                "https"
            } else {
                "http"
            };
            let default_port = if remote.scheme == Scheme::Https {
                443
            } else {
                80
            };
            Some(match remote.port.filter(|&p| p != default_port) {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            })
        }
        Scheme::Ssh | Scheme::ScpLike | Scheme::Git => {
            Some(format!("https://{}", web_host_of_ssh_host(&host)))
        }
        Scheme::File => None,
    }
}

/// The web home of `remote` on a forge of `kind`, checking that the remote's path has the forge's shape:
///
/// - GitHub, Bitbucket: `{owner}/{repo}`;
/// - GitLab: `{group}[/{subgroup}…]/{project}`;
/// - Gitea/Forgejo: `[{prefix}/…]{owner}/{repo}` (a server under a sub-path keeps it);
/// - Azure DevOps: `https://dev.azure.com/{org}/[{project}/]_git/{repo}` (also with `{org}@`),
///   `https://{org}.visualstudio.com/[DefaultCollection/][{project}/]_git/{repo}`, ssh
///   `v3/{org}/{project}/{repo}` on ssh.dev.azure.com or vs-ssh.visualstudio.com, all giving
///   `https://dev.azure.com/{org}/{project}/_git/{repo}`; any other host is an Azure DevOps Server whose
///   path ends in `{project}/_git/{repo}` and is kept as is.
///
/// A trailing `.git` and `/` are dropped. Use this to check a source once; [`file_url`] never fails.
pub fn web_base(remote: &RemoteUrl, kind: HostKind) -> Result<WebRepo, WebUrlError> {
    let origin = web_origin(remote).ok_or_else(|| WebUrlError::NoWebUi {
        remote: remote.to_string(),
    })?;
    let segs = remote.repo_segments();
    let bad = |expected| WebUrlError::BadRepoPath {
        remote: remote.to_string(),
        kind,
        expected,
    };
    let joined = || format!("{origin}/{}", segs.join("/"));
    let base = match kind {
        HostKind::GitHub if segs.len() == 2 => joined(),
        HostKind::GitHub => return Err(bad("{owner}/{repo}")),
        HostKind::Bitbucket if segs.len() == 2 => joined(),
        HostKind::Bitbucket => return Err(bad("{workspace}/{repo}")),
        HostKind::GitLab if segs.len() >= 2 => joined(),
        HostKind::GitLab => return Err(bad("{group}[/{subgroup}...]/{project}")),
        HostKind::Gitea if segs.len() >= 2 => joined(),
        HostKind::Gitea => return Err(bad("{owner}/{repo}")),
        HostKind::AzureDevOps => azure_base(remote, &origin, &segs).ok_or_else(|| {
            bad("{org}/{project}/_git/{repo}, or v3/{org}/{project}/{repo} over ssh")
        })?,
    };
    Ok(WebRepo { kind, base })
}

/// The Azure DevOps web home; see [`web_base`].
fn azure_base(remote: &RemoteUrl, origin: &str, segs: &[String]) -> Option<String> {
    const CLOUD: &str = "https://dev.azure.com";
    let is_git = |s: &String| s.eq_ignore_ascii_case("_git");
    let host = remote.host.as_str();
    if host == "ssh.dev.azure.com" || host == "vs-ssh.visualstudio.com" {
        return match segs {
            [v3, org, project, repo] if v3 == "v3" => {
                Some(format!("{CLOUD}/{org}/{project}/_git/{repo}"))
            }
            _ => None,
        };
    }
    if host == "dev.azure.com" {
        return match segs {
            [_, _, git, _] | [_, git, _] if is_git(git) => {
                Some(format!("{CLOUD}/{}", segs.join("/")))
            }
            _ => None,
        };
    }
    if let Some(org) = host.strip_suffix(".visualstudio.com") {
        let rest = match segs.split_first() {
            Some((first, rest)) if first.eq_ignore_ascii_case("DefaultCollection") => rest,
            _ => segs,
        };
        return match rest {
            [_, git, _] | [git, _] if is_git(git) => {
                Some(format!("{CLOUD}/{org}/{}", rest.join("/")))
            }
            _ => None,
        };
    }
    match segs {
        [_, .., git, _] if is_git(git) => Some(format!("{origin}/{}", segs.join("/"))),
        _ => None,
    }
}

/// The link to `path` at `rev` (a full commit id, else taken as a branch name; or a [`Rev`]) in the
/// repository `remote`, for a forge of `kind`.
///
/// Never fails: when the remote does not have the shape [`web_base`] checks, the link is built from
/// `https://{host}/{repo path}` (or the http(s) origin) in the same layout, so check sources up front
/// with [`web_base`] to report such a misconfiguration.
pub fn file_url<'r>(
    remote: &RemoteUrl,
    kind: HostKind,
    rev: impl Into<Rev<'r>>,
    path: &str,
) -> String {
    let repo = web_base(remote, kind).unwrap_or_else(|_| {
        let origin =
            web_origin(remote).unwrap_or_else(|| format!("https://{}", remote.host_in_url()));
        WebRepo {
            kind,
            base: format!("{origin}/{}", remote.repo_segments().join("/")),
        }
    });
    repo.file_url(rev, path)
}

/// A literal path: each `/`-separated segment percent-encoded, the slashes kept.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.extend(utf8_percent_encode(segment, SEGMENT));
    }
    out
}

/// A path segment already in URL form: decoded once, then encoded.
fn normalize_segment(segment: &str) -> String {
    utf8_percent_encode(&percent_decode_str(segment).decode_utf8_lossy(), SEGMENT).to_string()
}

// ---------------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------------

/// A placeholder of a [`Template`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Host,
    Repo,
    Commit,
    Path,
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Literal(String),
    Field(Field),
}

/// Why a `web_url` template was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{name}` that is not a placeholder.
    #[error(
        "unknown placeholder {{{name}}}: known are {{host}}, {{repo}}, {{commit}} and {{path}}"
    )]
    UnknownPlaceholder {
        /// The name between the braces.
        name: String,
    },
    /// A `{` without its `}`.
    #[error("'{{' at byte {at} is not closed (write '{{{{' for a literal brace)")]
    Unclosed {
        /// Byte offset of the brace.
        at: usize,
    },
    /// A `}` without a `{`.
    #[error("'}}' at byte {at} has no opening '{{' (write '}}}}' for a literal brace)")]
    Unmatched {
        /// Byte offset of the brace.
        at: usize,
    },
    /// No `{path}`: every rule would get the same link.
    #[error("no {{path}} placeholder: every rule would link to the same page")]
    MissingPath,
    /// Not an http(s) URL.
    #[error("must start with https:// or http://")]
    NotHttp,
}

/// A per-source link template such as `https://git.corp/{repo}/blob/{commit}/{path}`, parsed (and so
/// checked) once, at config time.
///
/// Placeholders: `{host}` (the remote's host, no user or port), `{repo}` (the remote's repository path
/// without `.git`, e.g. `org/rules`, segments percent-encoded), `{commit}` (the revision, a commit id or
/// branch name, encoded as a path) and `{path}` (the file's repository path, encoded). `{{` and `}}`
/// are literal braces. A template must start with `http://` or `https://` and contain `{path}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses and checks a template.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let lower = source.get(..8).unwrap_or(source).to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(TemplateError::NotHttp);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(pos) = rest.find(['{', '}']) {
            let at = source.len() - rest.len() + pos;
            literal.push_str(&rest[..pos]);
            let from_brace = &rest[pos..];
            if from_brace.starts_with("{{") || from_brace.starts_with("}}") {
                literal.push_str(&from_brace[..1]);
                rest = &from_brace[2..];
                continue;
            }
            if from_brace.starts_with('}') {
                return Err(TemplateError::Unmatched { at });
            }
            let inner = &from_brace[1..];
            let end = inner.find('}').ok_or(TemplateError::Unclosed { at })?;
            let field = match &inner[..end] {
                "host" => Field::Host,
                "repo" => Field::Repo,
                "commit" => Field::Commit,
                "path" => Field::Path,
                name => {
                    return Err(TemplateError::UnknownPlaceholder {
                        name: name.to_owned(),
                    });
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Field(field));
            rest = &inner[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if !parts.contains(&Part::Field(Field::Path)) {
            return Err(TemplateError::MissingPath);
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The link to `path` at `rev`; `{host}` and `{repo}` come from `remote` and are empty without one.
    pub fn render(&self, remote: Option<&RemoteUrl>, rev: &str, path: &str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(Field::Host) => {
                    if let Some(remote) = remote {
                        out.push_str(&remote.host_in_url());
                    }
                }
                Part::Field(Field::Repo) => {
                    if let Some(remote) = remote {
                        out.push_str(&remote.repo_segments().join("/"));
                    }
                }
                Part::Field(Field::Commit) => out.push_str(&encode_path(rev)),
                Part::Field(Field::Path) => {
                    out.push_str(&encode_path(path.trim_start_matches('/')));
                }
            }
        }
        out
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn remote(location: &str) -> RemoteUrl {
        parse_remote(location).unwrap_or_else(|| panic!("{location} should parse"))
    }

    fn link(location: &str, rev: &str, path: &str) -> String {
        let r = remote(location);
        let kind = detect_host_kind(&r.host).unwrap_or_else(|| panic!("kind of {location}"));
        let repo = web_base(&r, kind).unwrap_or_else(|e| panic!("{location}: {e}"));
        let url = repo.file_url(rev, path);
        assert_eq!(url, file_url(&r, kind, rev, path), "file_url agrees");
        url
    }

    // --- parsing -------------------------------------------------------------------------------------

    #[test]
    fn parses_https() {
        let r = remote("https://github.com/SigmaHQ/sigma.git");
        assert_eq!(r.scheme, Scheme::Https);
        assert_eq!(r.user, None);
        assert!(!r.secret_removed);
        assert_eq!(r.host, "github.com");
        assert_eq!(r.port, None);
        assert_eq!(r.path, "/SigmaHQ/sigma.git");
        assert_eq!(r.repo_path(), "SigmaHQ/sigma");
        assert_eq!(r.to_string(), "https://github.com/SigmaHQ/sigma.git");
    }

    #[test]
    fn parses_http_with_port_and_uppercase() {
        let r = remote("HTTP://Git.Corp:8080/org/rules/");
        assert_eq!(r.scheme, Scheme::Http);
        assert_eq!(r.host, "git.corp");
        assert_eq!(r.port, Some(8080));
        assert_eq!(r.repo_path(), "org/rules");
    }

    #[test]
    fn parses_ssh_url_forms() {
        let r = remote("ssh://git@gitlab.corp:2222/group/sub/rules.git");
        assert_eq!(r.scheme, Scheme::Ssh);
        assert_eq!(r.user.as_deref(), Some("git"));
        assert_eq!(r.host, "gitlab.corp");
        assert_eq!(r.port, Some(2222));
        assert_eq!(r.repo_path(), "group/sub/rules");
        assert_eq!(
            r.to_string(),
            "ssh://git@gitlab.corp:2222/group/sub/rules.git"
        );
        assert_eq!(remote("git+ssh://host/x").scheme, Scheme::Ssh);
        assert_eq!(remote("ssh+git://host/x").scheme, Scheme::Ssh);
        assert_eq!(remote("ssh://host/x").user, None);
    }

    #[test]
    fn parses_scp_like() {
        let r = remote("git@github.com:SigmaHQ/sigma.git");
        assert_eq!(r.scheme, Scheme::ScpLike);
        assert_eq!(r.user.as_deref(), Some("git"));
        assert_eq!(r.host, "github.com");
        assert_eq!(r.port, None);
        assert_eq!(r.path, "SigmaHQ/sigma.git");
        assert_eq!(r.to_string(), "git@github.com:SigmaHQ/sigma.git");
        let r = remote("gitserver:rules.git");
        assert_eq!((r.user, r.host.as_str()), (None, "gitserver"));
        assert_eq!(remote("git@[::1]:org/repo").host, "::1");
        assert_eq!(
            remote("git@[::1]:org/repo").to_string(),
            "git@[::1]:org/repo"
        );
    }

    #[test]
    fn parses_git_and_file() {
        let r = remote("git://git.kernel.org:9418/pub/rules.git");
        assert_eq!((r.scheme, r.port), (Scheme::Git, Some(9418)));
        let r = remote("file:///srv/git/rules.git");
        assert_eq!(r.scheme, Scheme::File);
        assert_eq!(r.host, "");
        assert_eq!(r.path, "/srv/git/rules.git");
        assert_eq!(r.to_string(), "file:///srv/git/rules.git");
    }

    #[test]
    fn parses_ipv6_url() {
        let r = remote("https://[2001:db8::1]:8443/org/repo");
        assert_eq!((r.host.as_str(), r.port), ("2001:db8::1", Some(8443)));
        assert_eq!(r.to_string(), "https://[2001:db8::1]:8443/org/repo");
    }

    #[test]
    fn local_paths_are_not_remotes() {
        for local in [
            "../sigma",
            "sigma",
            "/x/y",
            "./a:b",
            "a/b:c",
            "C:\\rules",
            "C:/rules",
            "c:rules",
            ".\\a:b",
            "",
            "/srv/git@host:x",
            "host:",
            "with space:repo",
        ] {
            assert_eq!(parse_remote(local), None, "{local:?}");
            assert_eq!(redact(local), local, "{local:?}");
        }
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "https:///org/repo",
            "https://host:99999/x",
            "https://host:22a/x",
            "https://[::1/x",
            "ftp://host/x",
            "s3://bucket/x",
            "http://ho st/x",
        ] {
            assert_eq!(parse_remote(bad), None, "{bad:?}");
        }
        assert_eq!(remote("https://host:/x").port, None);
    }

    // --- redaction -----------------------------------------------------------------------------------

    #[test]
    fn redacts_password() {
        let loc = "https://user:s3cr3t@github.com/org/repo.git";
        assert_eq!(redact(loc), "https://user:***@github.com/org/repo.git");
        let r = remote(loc);
        assert_eq!(r.user.as_deref(), Some("user"));
        assert!(r.secret_removed);
        assert_eq!(r.to_string(), "https://user:***@github.com/org/repo.git");
        assert_never_shown(&r, "s3cr3t");
    }

    #[test]
    fn redacts_token_as_user_on_https() {
        let loc = "https://ghp_abcdef123456@github.com/org/repo.git";
        assert_eq!(redact(loc), "https://***@github.com/org/repo.git");
        let r = remote(loc);
        assert_eq!(r.user, None);
        assert!(r.secret_removed);
        assert_eq!(r.to_string(), "https://***@github.com/org/repo.git");
        assert_never_shown(&r, "ghp_abcdef123456");
        assert_eq!(redact("http://tok@host/x"), "http://***@host/x");
        assert_eq!(
            redact("https://oauth2:glpat-xyz@gitlab.com/g/p.git"),
            "https://oauth2:***@gitlab.com/g/p.git"
        );
    }

    #[test]
    fn keeps_ssh_user_names() {
        for loc in [
            "ssh://git@host/x",
            "git@github.com:org/repo.git",
            "ssh://git@host:2222/x",
        ] {
            assert_eq!(redact(loc), loc);
            assert_eq!(remote(loc).to_string(), loc);
        }
    }

    #[test]
    fn redacts_ssh_and_scp_passwords() {
        let loc = "ssh://git:hunter2@host/x";
        assert_eq!(redact(loc), "ssh://git:***@host/x");
        assert_never_shown(&remote(loc), "hunter2");
        let loc = "user:hunter2@host:org/repo.git";
        assert_eq!(redact(loc), "user:***@host:org/repo.git");
        let r = remote(loc);
        assert_eq!((r.host.as_str(), r.path.as_str()), ("host", "org/repo.git"));
        assert_never_shown(&r, "hunter2");
    }

    #[test]
    fn redacts_password_with_at_sign_and_empty_user() {
        let loc = "https://user:p@ss@host/x";
        assert_eq!(redact(loc), "https://user:***@host/x");
        let r = remote(loc);
        assert_eq!(r.host, "host");
        assert_never_shown(&r, "p@ss");
        assert_eq!(redact("https://:tok@host/x"), "https://***@host/x");
        assert_eq!(
            remote("https://:tok@host/x").to_string(),
            "https://***@host/x"
        );
    }

    #[test]
    fn redacts_query_tokens() {
        let loc = "https://gitlab.corp/g/p.git?private_token=abc123&ref=main#frag";
        assert_eq!(
            redact(loc),
            "https://gitlab.corp/g/p.git?private_token=***&ref=main#frag"
        );
        let r = remote(loc);
        assert_eq!(r.query.as_deref(), Some("private_token=***&ref=main"));
        assert_never_shown(&r, "abc123");
        assert_eq!(
            redact("https://h/x?token=a&access_token=b&Password=c&x=1"),
            "https://h/x?token=***&access_token=***&Password=***&x=1"
        );
        assert_eq!(
            redact("https://h/x?access%5Ftoken=b"),
            "https://h/x?access%5Ftoken=***"
        );
        assert_eq!(redact("https://h/x?ref=main"), "https://h/x?ref=main");
    }

    #[test]
    fn display_never_shows_a_hand_built_password() {
        let r = RemoteUrl {
            scheme: Scheme::Https,
            user: Some("user:leaked".into()),
            secret_removed: false,
            host: "h".into(),
            port: None,
            path: "/x".into(),
            query: Some("token=leaked".into()),
        };
        assert_eq!(r.to_string(), "https://user:***@h/x?token=***");
    }

    #[test]
    fn errors_never_show_secrets() {
        let r = remote("https://tok123@github.com/a/b/c");
        let err = web_base(&r, HostKind::GitHub).expect_err("three segments");
        assert!(!err.to_string().contains("tok123"), "{err}");
        assert!(!format!("{err:?}").contains("tok123"), "{err:?}");
    }

    fn assert_never_shown(r: &RemoteUrl, secret: &str) {
        assert!(!r.to_string().contains(secret), "Display: {r}");
        assert!(!format!("{r:?}").contains(secret), "Debug: {r:?}");
        assert!(!format!("{r:#?}").contains(secret), "Debug: {r:#?}");
    }

    // --- host kinds ----------------------------------------------------------------------------------

    #[test]
    fn detects_host_kinds() {
        for (host, kind) in [
            ("github.com", Some(HostKind::GitHub)),
            ("GitHub.com", Some(HostKind::GitHub)),
            ("ssh.github.com", Some(HostKind::GitHub)),
            ("github.corp.example", Some(HostKind::GitHub)),
            ("gitlab.com", Some(HostKind::GitLab)),
            ("gitlab.corp.example", Some(HostKind::GitLab)),
            ("bitbucket.org", Some(HostKind::Bitbucket)),
            ("codeberg.org", Some(HostKind::Gitea)),
            ("gitea.corp", Some(HostKind::Gitea)),
            ("forgejo.corp", Some(HostKind::Gitea)),
            ("dev.azure.com", Some(HostKind::AzureDevOps)),
            ("ssh.dev.azure.com", Some(HostKind::AzureDevOps)),
            ("contoso.visualstudio.com", Some(HostKind::AzureDevOps)),
            ("git.corp", None),
            ("mygithub.com", None),
            ("", None),
        ] {
            assert_eq!(detect_host_kind(host), kind, "{host}");
        }
    }

    #[test]
    fn host_kind_from_str() {
        for (name, kind) in [
            ("github", HostKind::GitHub),
            ("gitlab", HostKind::GitLab),
            ("bitbucket", HostKind::Bitbucket),
            ("gitea", HostKind::Gitea),
            ("forgejo", HostKind::Gitea),
            ("azure", HostKind::AzureDevOps),
            ("GitLab", HostKind::GitLab),
        ] {
            assert_eq!(name.parse::<HostKind>(), Ok(kind), "{name}");
        }
        let err = "sourcehut".parse::<HostKind>().expect_err("unknown");
        assert!(err.to_string().contains("sourcehut"));
        for kind in [
            HostKind::GitHub,
            HostKind::GitLab,
            HostKind::Bitbucket,
            HostKind::Gitea,
            HostKind::AzureDevOps,
        ] {
            assert_eq!(kind.to_string().parse::<HostKind>(), Ok(kind));
        }
    }

    // --- links ---------------------------------------------------------------------------------------

    #[test]
    fn github_links_from_every_form() {
        let want = format!("https://github.com/SigmaHQ/sigma/blob/{SHA}/rules/a.yml");
        for loc in [
            "https://github.com/SigmaHQ/sigma",
            "https://github.com/SigmaHQ/sigma.git",
            "https://github.com/SigmaHQ/sigma/",
            "https://github.com/SigmaHQ/sigma.git/",
            "https://tok@github.com/SigmaHQ/sigma.git",
            "ssh://git@github.com/SigmaHQ/sigma.git",
            "ssh://git@ssh.github.com:443/SigmaHQ/sigma.git",
            "git@github.com:SigmaHQ/sigma.git",
            "git://github.com/SigmaHQ/sigma.git",
        ] {
            assert_eq!(link(loc, SHA, "rules/a.yml"), want, "{loc}");
        }
        assert_eq!(
            link("https://github.com/o/r", "main", "/a.yml"),
            "https://github.com/o/r/blob/main/a.yml"
        );
    }

    #[test]
    fn gitlab_nested_groups() {
        let want = format!("https://gitlab.com/grp/sub/subsub/rules/-/blob/{SHA}/x/y.yml");
        for loc in [
            "https://gitlab.com/grp/sub/subsub/rules.git",
            "git@gitlab.com:grp/sub/subsub/rules.git",
            "ssh://git@gitlab.com/grp/sub/subsub/rules",
        ] {
            assert_eq!(link(loc, SHA, "x/y.yml"), want, "{loc}");
        }
    }

    #[test]
    fn ports_dropped_for_ssh_kept_for_https() {
        assert_eq!(
            link("ssh://git@gitlab.corp:2222/g/p.git", "main", "a.yml"),
            "https://gitlab.corp/g/p/-/blob/main/a.yml"
        );
        assert_eq!(
            link("https://gitlab.corp:8443/g/p.git", "main", "a.yml"),
            "https://gitlab.corp:8443/g/p/-/blob/main/a.yml"
        );
        assert_eq!(
            link("https://gitlab.corp:443/g/p.git", "main", "a.yml"),
            "https://gitlab.corp/g/p/-/blob/main/a.yml"
        );
        assert_eq!(
            link("http://gitea.lan:3000/o/r", SHA, "a.yml"),
            format!("http://gitea.lan:3000/o/r/src/commit/{SHA}/a.yml")
        );
    }

    #[test]
    fn bitbucket_links() {
        for loc in [
            "https://bitbucket.org/ws/rules.git",
            "https://user@bitbucket.org/ws/rules.git",
            "git@bitbucket.org:ws/rules.git",
        ] {
            assert_eq!(
                link(loc, SHA, "r/a.yml"),
                format!("https://bitbucket.org/ws/rules/src/{SHA}/r/a.yml"),
                "{loc}"
            );
        }
    }

    #[test]
    fn gitea_commit_branch_and_tag() {
        assert_eq!(
            link("https://codeberg.org/o/r.git", SHA, "a.yml"),
            format!("https://codeberg.org/o/r/src/commit/{SHA}/a.yml")
        );
        assert_eq!(
            link("git@codeberg.org:o/r.git", "main", "a.yml"),
            "https://codeberg.org/o/r/src/branch/main/a.yml"
        );
        let sha256 = "a".repeat(64);
        assert_eq!(
            link("https://gitea.corp/o/r", &sha256, "a.yml"),
            format!("https://gitea.corp/o/r/src/commit/{sha256}/a.yml")
        );
        let repo = web_base(&remote("https://gitea.corp/o/r"), HostKind::Gitea).expect("gitea");
        assert_eq!(
            repo.file_url(Rev::Tag("v1.0"), "a.yml"),
            "https://gitea.corp/o/r/src/tag/v1.0/a.yml"
        );
        assert_eq!(
            repo.file_url(Rev::Branch(SHA), "a.yml"),
            format!("https://gitea.corp/o/r/src/branch/{SHA}/a.yml")
        );
        // A server under a sub-path keeps it.
        let repo = web_base(&remote("https://corp/gitea/o/r.git"), HostKind::Gitea).expect("sub");
        assert_eq!(repo.base(), "https://corp/gitea/o/r");
    }

    #[test]
    fn azure_devops_all_forms() {
        let want =
            format!("https://dev.azure.com/org/proj/_git/rules?path=/rules/a.yml&version=GC{SHA}");
        for loc in [
            "https://dev.azure.com/org/proj/_git/rules",
            "https://org@dev.azure.com/org/proj/_git/rules",
            "https://dev.azure.com/org/proj/_git/rules/",
            "git@ssh.dev.azure.com:v3/org/proj/rules",
            "ssh://git@ssh.dev.azure.com/v3/org/proj/rules",
            "org@vs-ssh.visualstudio.com:v3/org/proj/rules",
            "https://org.visualstudio.com/proj/_git/rules",
            "https://org.visualstudio.com/DefaultCollection/proj/_git/rules",
        ] {
            assert_eq!(link(loc, SHA, "rules/a.yml"), want, "{loc}");
        }
        assert_eq!(
            link("https://dev.azure.com/org/proj/_git/rules", "main", "a.yml"),
            "https://dev.azure.com/org/proj/_git/rules?path=/a.yml&version=GBmain"
        );
        let repo = web_base(
            &remote("https://dev.azure.com/org/proj/_git/rules"),
            HostKind::AzureDevOps,
        )
        .expect("azure");
        assert_eq!(
            repo.file_url(Rev::Tag("v1"), "a.yml"),
            "https://dev.azure.com/org/proj/_git/rules?path=/a.yml&version=GTv1"
        );
    }

    #[test]
    fn azure_project_with_space_and_special_query_chars() {
        assert_eq!(
            link(
                "git@ssh.dev.azure.com:v3/org/My%20Project/rules",
                "feature/a&b",
                "rules/my rule+1.yml"
            ),
            "https://dev.azure.com/org/My%20Project/_git/rules\
             ?path=/rules/my%20rule%2B1.yml&version=GBfeature/a%26b"
        );
        assert_eq!(
            link(
                "https://dev.azure.com/org/My%20Project/_git/rules",
                SHA,
                "a.yml"
            ),
            format!(
                "https://dev.azure.com/org/My%20Project/_git/rules?path=/a.yml&version=GC{SHA}"
            )
        );
    }

    #[test]
    fn azure_project_named_like_repo_and_server() {
        assert_eq!(
            web_base(
                &remote("https://dev.azure.com/org/_git/rules"),
                HostKind::AzureDevOps
            )
            .expect("short form")
            .base(),
            "https://dev.azure.com/org/_git/rules"
        );
        assert_eq!(
            web_base(
                &remote("https://tfs.corp/tfs/DefaultCollection/Proj/_git/rules"),
                HostKind::AzureDevOps
            )
            .expect("server")
            .base(),
            "https://tfs.corp/tfs/DefaultCollection/Proj/_git/rules"
        );
        assert_eq!(
            web_base(
                &remote("ssh://tfs.corp:22/tfs/DefaultCollection/Proj/_git/rules"),
                HostKind::AzureDevOps
            )
            .expect("server over ssh")
            .base(),
            "https://tfs.corp/tfs/DefaultCollection/Proj/_git/rules"
        );
    }

    #[test]
    fn explicit_kind_for_self_hosted() {
        let r = remote("git@git.corp:team/sub/rules.git");
        assert_eq!(detect_host_kind(&r.host), None);
        assert_eq!(
            file_url(&r, HostKind::GitLab, "main", "a.yml"),
            "https://git.corp/team/sub/rules/-/blob/main/a.yml"
        );
        assert_eq!(
            file_url(&r, HostKind::Gitea, SHA, "a.yml"),
            format!("https://git.corp/team/sub/rules/src/commit/{SHA}/a.yml")
        );
    }

    #[test]
    fn percent_encodes_paths() {
        assert_eq!(
            link(
                "https://github.com/o/r",
                SHA,
                "rules/windows/my rule (v2).yml"
            ),
            format!("https://github.com/o/r/blob/{SHA}/rules/windows/my%20rule%20(v2).yml")
        );
        assert_eq!(
            link("https://github.com/o/r", SHA, "règle.yml"),
            format!("https://github.com/o/r/blob/{SHA}/r%C3%A8gle.yml")
        );
        assert_eq!(
            link(
                "https://github.com/o/r",
                SHA,
                "a#b?c%d;e/x-y_z.~!$&'*+,=:@.yml"
            ),
            format!("https://github.com/o/r/blob/{SHA}/a%23b%3Fc%25d%3Be/x-y_z.~!$&'*+,=:@.yml")
        );
        assert_eq!(
            link("https://github.com/o/r", "feature/my branch#1", "a.yml"),
            "https://github.com/o/r/blob/feature/my%20branch%231/a.yml"
        );
    }

    #[test]
    fn normalizes_repo_path_escapes() {
        assert_eq!(
            link("https://gitlab.com/g/my%20repo.git", "main", "a.yml"),
            "https://gitlab.com/g/my%20repo/-/blob/main/a.yml"
        );
        assert_eq!(
            link("git@gitlab.com:g/my repo.git", "main", "a.yml"),
            "https://gitlab.com/g/my%20repo/-/blob/main/a.yml"
        );
    }

    #[test]
    fn rev_classification() {
        assert_eq!(Rev::from(SHA), Rev::Commit(SHA));
        assert_eq!(
            Rev::from("ABCDEF0123456789ABCDEF0123456789ABCDEF01")
                .as_str()
                .len(),
            40
        );
        assert!(matches!(Rev::from("main"), Rev::Branch("main")));
        assert!(matches!(Rev::from("abc1234"), Rev::Branch(_)));
        assert!(matches!(Rev::from(&SHA[..39]), Rev::Branch(_)));
    }

    #[test]
    fn web_base_rejects_wrong_shapes() {
        for (loc, kind) in [
            ("https://github.com/o", HostKind::GitHub),
            ("https://github.com/o/r/tree/main", HostKind::GitHub),
            ("https://bitbucket.org/ws", HostKind::Bitbucket),
            ("https://gitlab.com/p.git", HostKind::GitLab),
            ("https://codeberg.org/", HostKind::Gitea),
            (
                "https://dev.azure.com/org/proj/rules",
                HostKind::AzureDevOps,
            ),
            (
                "git@ssh.dev.azure.com:v2/org/proj/rules",
                HostKind::AzureDevOps,
            ),
            (
                "https://org.visualstudio.com/proj/rules",
                HostKind::AzureDevOps,
            ),
            ("https://tfs.corp/_git/rules", HostKind::AzureDevOps),
        ] {
            assert!(
                matches!(
                    web_base(&remote(loc), kind),
                    Err(WebUrlError::BadRepoPath { .. })
                ),
                "{loc}"
            );
        }
        assert!(matches!(
            web_base(&remote("file:///srv/rules.git"), HostKind::GitHub),
            Err(WebUrlError::NoWebUi { .. })
        ));
    }

    #[test]
    fn file_url_is_best_effort_for_wrong_shapes() {
        assert_eq!(
            file_url(
                &remote("https://github.com/o/r/extra"),
                HostKind::GitHub,
                "main",
                "a.yml"
            ),
            "https://github.com/o/r/extra/blob/main/a.yml"
        );
    }

    // --- templates -----------------------------------------------------------------------------------

    #[test]
    fn template_fills_placeholders() {
        let t = Template::parse("https://git.corp/{repo}/blob/{commit}/{path}").expect("valid");
        let r = remote("ssh://git@git.corp:2222/org/rules.git");
        assert_eq!(
            t.render(Some(&r), SHA, "rules/my rule (v2).yml"),
            format!("https://git.corp/org/rules/blob/{SHA}/rules/my%20rule%20(v2).yml")
        );
        let t = Template::parse("https://{host}/browse/{repo}?at={commit}&f={path}").expect("ok");
        assert_eq!(
            t.render(Some(&r), "main", "règle.yml"),
            "https://git.corp/browse/org/rules?at=main&f=r%C3%A8gle.yml"
        );
        assert_eq!(
            t.render(None, "main", "a.yml"),
            "https:///browse/?at=main&f=a.yml"
        );
        assert_eq!(
            t.to_string(),
            "https://{host}/browse/{repo}?at={commit}&f={path}"
        );
        assert_eq!(t.as_str().parse::<Template>(), Ok(t));
    }

    #[test]
    fn template_literal_braces() {
        let t = Template::parse("https://h/{{x}}/{path}").expect("valid");
        assert_eq!(t.render(None, "m", "a.yml"), "https://h/{x}/a.yml");
    }

    #[test]
    fn bad_templates() {
        for (t, want) in [
            (
                "https://h/{repo}/{sha}/{path}",
                TemplateError::UnknownPlaceholder { name: "sha".into() },
            ),
            (
                "https://h/{}/{path}",
                TemplateError::UnknownPlaceholder {
                    name: String::new(),
                },
            ),
            (
                "https://h/{Path}",
                TemplateError::UnknownPlaceholder {
                    name: "Path".into(),
                },
            ),
            ("https://h/{path", TemplateError::Unclosed { at: 10 }),
            ("https://h/path}", TemplateError::Unmatched { at: 14 }),
            ("https://h/{repo}", TemplateError::MissingPath),
            ("https://h/{{path}}", TemplateError::MissingPath),
            ("git.corp/{path}", TemplateError::NotHttp),
            ("{host}/{path}", TemplateError::NotHttp),
        ] {
            assert_eq!(Template::parse(t), Err(want), "{t}");
        }
        let msg = Template::parse("https://h/{sha}/{path}")
            .expect_err("unknown")
            .to_string();
        assert!(msg.contains("{sha}") && msg.contains("{commit}"), "{msg}");
    }
}
