//! Remote sources against real servers on loopback, no mocks: `git daemon` (git://), smart HTTP
//! (`git http-backend` run as a CGI by a small HTTP/1.1 server in this file, with optional basic auth)
//! and `sshd` (its own config, host key and authorized keys in the test's folder, key-only auth).
//!
//! Each test starts its servers on free 127.0.0.1 ports and stops them when it ends. A test whose server
//! binary is missing is skipped with a message, except in CI (`CI` set), where that is a failure:
//! `.ci/run` installs them.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::harness::{Env, Repo, Run, by_title, rule};

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------------
// Running the binary with a controlled environment
// ---------------------------------------------------------------------------------------------------

/// Runs `sigma-galaxy ARGS` in the test folder with `HOME` in it (no credential helper, known_hosts or
/// default key of the machine's user gets in), no ssh agent, and the extra variables `vars`.
pub(crate) fn run(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let home = env.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"));
    cmd.args(args)
        .current_dir(env.dir.path())
        .env("HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUST_LOG");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// A build that must succeed; its JSON summary and stderr.
fn build(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> (Json, String) {
    let mut all = vec!["build", "--json"];
    all.extend_from_slice(args);
    let r = run(env, &all, vars);
    assert_eq!(r.code, 0, "build {args:?} failed:\n{}", r.stderr);
    (r.json(), r.stderr)
}

/// The object count of the "fetched N objects" line; 0 for "up to date".
fn fetched_objects(stderr: &str) -> usize {
    if let Some(rest) = stderr.split("fetched ").nth(1) {
        return rest.split_whitespace().next().unwrap().parse().unwrap();
    }
    assert!(
        stderr.contains("is up to date"),
        "no fetch line in:\n{stderr}"
    );
    0
}

/// Whether a server binary is there; `false` (after saying why) to skip, a panic in CI.
fn have(what: &str, path: &Path) -> bool {
    if path.is_file() {
        return true;
    }
    let message = format!("{what} ({}) is not installed", path.display());
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{message}: CI must install it (.ci/run)");
    }
    eprintln!(
        "SKIPPED: {message}; install it (apt-get install git openssh-server) to run this test"
    );
    false
}

fn git_exec_path() -> PathBuf {
    let out = Command::new("git").arg("--exec-path").output().unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on `port`, or the child exits.
fn wait_listening(port: u16, child: &mut Child) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A server process, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
}

impl Server {
    /// Starts `make(port)` on a free port, retrying if another process took the port meanwhile.
    fn start(what: &str, mut make: impl FnMut(u16) -> Command) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let mut child = make(port).stdin(Stdio::null()).spawn().unwrap();
            if wait_listening(port, &mut child) {
                return Server { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("{what} did not start");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------------
// git daemon
// ---------------------------------------------------------------------------------------------------

/// `git daemon` exporting every repository under `root`, or `None` (skip) without it.
pub(crate) fn git_daemon(root: &Path) -> Option<Server> {
    // The git-daemon binary itself: `git daemon` would run it as a child that outlives a kill.
    let binary = git_exec_path().join("git-daemon");
    if !have("git daemon", &binary) {
        return None;
    }
    let log = std::fs::File::create(root.with_extension("daemon.log")).unwrap();
    Some(Server::start("git daemon", |port| {
        let mut cmd = Command::new(&binary);
        cmd.arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--informative-errors")
            .arg(format!("--base-path={}", root.display()))
            .arg(root)
            .stdout(Stdio::null())
            .stderr(log.try_clone().unwrap());
        cmd
    }))
}

// ---------------------------------------------------------------------------------------------------
// Smart HTTP: git http-backend behind a small HTTP/1.1 server
// ---------------------------------------------------------------------------------------------------

/// An HTTP server on 127.0.0.1 that runs `git http-backend` for every request, with basic auth when a
/// password is set. Stopped (and its thread joined) when dropped.
struct HttpGit {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpGit {
    fn start(root: &Path, password: Option<&str>) -> Option<HttpGit> {
        let backend = git_exec_path().join("git-http-backend");
        if !have("git http-backend", &backend) {
            return None;
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let password = password.map(str::to_string);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, backend, password) = (root.clone(), backend.clone(), password.clone());
                workers.push(std::thread::spawn(move || {
                    let _ = serve(stream, &root, &backend, password.as_deref());
                }));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Some(HttpGit {
            port,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP/1.1 connection: requests in turn (keep-alive), each answered by `git http-backend`.
fn serve(
    stream: TcpStream,
    root: &Path,
    backend: &Path,
    password: Option<&str>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut parts = request.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
        }
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));

        let authorized = match password {
            None => true,
            Some(p) => header("authorization")
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(base64_decode)
                .and_then(|creds| {
                    String::from_utf8(creds)
                        .ok()
                        .and_then(|c| c.split_once(':').map(|(_, pw)| pw == p))
                })
                .unwrap_or(false),
        };
        if !authorized {
            out.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"rules\"\r\n\
                  Content-Type: text/plain\r\nContent-Length: 14\r\n\r\nauthenticate!\n",
            )?;
            if close {
                return Ok(());
            }
            continue;
        }

        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut cgi = Command::new(backend);
        cgi.env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("CONTENT_LENGTH", body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(t) = header("content-type") {
            cgi.env("CONTENT_TYPE", t);
        }
        if let Some(p) = header("git-protocol") {
            cgi.env("GIT_PROTOCOL", p);
        }
        if password.is_some() {
            cgi.env("REMOTE_USER", "tester");
        }
        let mut child = cgi.spawn()?;
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(&body));
        let output = child.wait_with_output()?;
        let _ = feeder.join();
        let raw = output.stdout;
        let split = find(&raw, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| find(&raw, b"\n\n").map(|i| (i, 2)))
            .unwrap_or((raw.len(), 0));
        let head = String::from_utf8_lossy(&raw[..split.0]).into_owned();
        let content = &raw[(split.0 + split.1).min(raw.len())..];
        let mut status = "200 OK".to_string();
        let mut response = Vec::new();
        for line in head.lines().filter(|l| !l.is_empty()) {
            match line.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
                _ => response.extend_from_slice(format!("{line}\r\n").as_bytes()),
            }
        }
        out.write_all(format!("HTTP/1.1 {status}\r\n").as_bytes())?;
        out.write_all(&response)?;
        out.write_all(format!("Content-Length: {}\r\n\r\n", content.len()).as_bytes())?;
        out.write_all(content)?;
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim().bytes().filter(|&c| c != b'=') {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------------
// sshd
// ---------------------------------------------------------------------------------------------------

/// `sshd` on a loopback port with its own host key, accepting only the public key `authorized`.
struct Sshd {
    server: Server,
    /// The `known_hosts` line of its host key.
    known_host: String,
}

fn sshd(env: &Env, authorized: &str) -> Option<Sshd> {
    let binary = Path::new("/usr/sbin/sshd");
    if !have("sshd", binary) || !have("ssh-keygen", Path::new("/usr/bin/ssh-keygen")) {
        return None;
    }
    let dir = env.path("sshd");
    std::fs::create_dir_all(&dir).unwrap();
    let host_key = dir.join("host_ed25519");
    keygen(&host_key, "");
    let authorized_keys = dir.join("authorized_keys");
    std::fs::write(&authorized_keys, authorized).unwrap();
    // Privilege separation needs this folder when sshd runs as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let server = Server::start("sshd", |port| {
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n\
                 LogLevel VERBOSE\n",
                host_key.display(),
                authorized_keys.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log.try_clone().unwrap());
        cmd
    });
    let public = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
    let mut fields = public.split_whitespace();
    let known_host = format!(
        "[127.0.0.1]:{} {} {}\n",
        server.port,
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    Some(Sshd { server, known_host })
}

/// An ed25519 key pair at `path` (and `path.pub`).
fn keygen(path: &Path, passphrase: &str) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "sigma-galaxy-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

// ---------------------------------------------------------------------------------------------------
// Repositories
// ---------------------------------------------------------------------------------------------------

/// A working repository `work` with `n` rules under `rules/`, and its bare copy at `srv/<repo>` that
/// the servers serve.
pub(crate) fn served_repo(env: &Env, repo: &str, n: usize) -> Repo {
    let mut work = env.repo("work");
    for i in 0..n {
        work.write(
            &format!("rules/r{i}.yml"),
            rule(&format!("Rule {i}"), None, ""),
        );
    }
    work.write("README.md", "rules");
    work.commit("first rules");
    let bare = env.path("srv").join(repo);
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    work.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
    work
}

/// Pushes `work`'s main to the served repository.
pub(crate) fn push(env: &Env, work: &Repo, repo: &str) {
    let bare = env.path("srv").join(repo);
    work.git(&["push", "-q", "--force", bare.to_str().unwrap(), "main:main"]);
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Asserts `secret` is in no file under `dir` (bytes, so packs and indexes count too).
fn assert_nowhere(secret: &str, dir: &Path) {
    for f in files_under(dir) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            find(&bytes, secret.as_bytes()).is_none(),
            "the secret is in {}",
            f.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

/// A first build clones the mirror; after new commits are pushed, the next build fetches only the new
/// objects into the same mirror and parses only the changed rules; then nothing is fetched at all.
fn mirrors_once_then_fetches_only_new_objects(url_of: impl Fn(&str) -> String, env: &Env) {
    let mut work = served_repo(env, "org/rules.git", 6);
    let url = url_of("org/rules.git");
    let args = ["--source", &url, "--out", "out", "--state", "st"];

    let (first, stderr) = build(env, &args, &[]);
    assert_eq!(first["values"], 6);
    assert_eq!(first["parsed"], 6);
    assert_eq!(first["sources"][0]["name"], "rules");
    assert_eq!(first["sources"][0]["location"], url.as_str());
    assert_eq!(
        first["sources"][0]["commit"],
        work.git(&["rev-parse", "HEAD"])
    );
    assert!(fetched_objects(&stderr) >= 6 + 4, "{stderr}");
    let mirror = env.path("st/mirrors/rules.git");
    let repo = git2::Repository::open_bare(&mirror).unwrap();
    assert!(repo.is_bare());
    assert!(!repo.is_shallow());
    assert_eq!(
        std::fs::read_to_string(mirror.join("config"))
            .unwrap()
            .matches("[remote")
            .count(),
        0,
        "the mirror stores no remote (and so no URL)"
    );
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&mirror).unwrap());

    // One rule changed, one added: a commit, two trees (root, rules/), two blobs.
    work.write("rules/r1.yml", rule("Rule 1 changed", None, ""));
    work.write("rules/new.yml", rule("New rule", None, ""));
    let head = work.commit("change one, add one");
    push(env, &work, "org/rules.git");
    let (second, stderr) = build(env, &args, &[]);
    assert_eq!(
        fetched_objects(&stderr),
        5,
        "only the new objects: {stderr}"
    );
    assert_eq!(second["sources"][0]["commit"], head);
    assert_eq!(second["values"], 7);
    assert_eq!(second["parsed"], 2, "only the changed rules are parsed");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&mirror).unwrap()),
        inode,
        "the same mirror is reused"
    );
    let titles: BTreeSet<String> = by_title(&env.json("out/clusters/sigma-rules.json"))
        .into_keys()
        .collect();
    assert!(
        titles.contains("Rule 1 changed") && titles.contains("New rule"),
        "{titles:?}"
    );

    let (third, stderr) = build(env, &args, &[]);
    assert_eq!(fetched_objects(&stderr), 0, "{stderr}");
    assert_eq!(third["parsed"], 0);
    assert_eq!(third["wrote"], false);
}

#[test]
fn git_daemon_source_is_mirrored_once_and_fetched_incrementally() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("srv")).unwrap();
    let Some(daemon) = git_daemon(&env.path("srv")) else {
        return;
    };
    let port = daemon.port;
    mirrors_once_then_fetches_only_new_objects(|r| format!("git://127.0.0.1:{port}/{r}"), &env);
}

#[test]
fn smart_http_source_is_mirrored_once_and_fetched_incrementally() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("srv")).unwrap();
    let Some(http) = HttpGit::start(&env.path("srv"), None) else {
        return;
    };
    let port = http.port;
    mirrors_once_then_fetches_only_new_objects(|r| format!("http://127.0.0.1:{port}/{r}"), &env);
}

#[test]
fn private_http_needs_the_token_and_never_shows_it() {
    const TOKEN: &str = "tok-3f9c1e7a-never-print-me";
    let env = Env::new();
    served_repo(&env, "private.git", 3);
    let Some(http) = HttpGit::start(&env.path("srv"), Some(TOKEN)) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/private.git", http.port);
    let config = |extra: &str| {
        format!(
            "out: out\nstate: st\nsources:\n  - name: private\n    location: {url}\n    host: gitlab\n{extra}"
        )
    };
    let mut outputs = Vec::new();

    // No credentials at all: exit 1, one line naming the source and what to set.
    env.write("sigma-galaxy.yml", &config(""));
    let none = run(&env, &["build"], &[]);
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(
        none.stderr.starts_with("error: source private: "),
        "{}",
        none.stderr
    );
    assert!(
        none.stderr.contains("authentication failed"),
        "{}",
        none.stderr
    );
    assert!(none.stderr.contains("token_env"), "{}", none.stderr);
    assert_eq!(none.stderr.trim().lines().count(), 1, "{}", none.stderr);
    assert!(!env.path("out").exists(), "nothing written");
    assert!(
        !env.path("st/mirrors/private.git").exists(),
        "no half-made mirror"
    );
    outputs.push(none);

    // token_env names a variable that is not set: a configuration error.
    env.write("sigma-galaxy.yml", &config("    token_env: RULES_TOKEN\n"));
    let unset = run(&env, &["build"], &[]);
    assert_eq!(unset.code, 2, "{}", unset.stderr);
    assert!(
        unset.stderr.contains("RULES_TOKEN is not set"),
        "{}",
        unset.stderr
    );

    // A wrong token is refused, and the message says which credential was tried.
    let wrong = run(&env, &["build"], &[("RULES_TOKEN", "not-the-token")]);
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("$RULES_TOKEN"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("not-the-token"), "{}", wrong.stderr);

    // The right token builds.
    let ok = run(&env, &["build", "--json"], &[("RULES_TOKEN", TOKEN)]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.json()["values"], 3);
    assert_eq!(ok.json()["sources"][0]["location"], url.as_str());
    outputs.push(ok);

    // The token in the URL itself works too, and is shown redacted.
    let with_token = format!(
        "http://x-access-token:{TOKEN}@127.0.0.1:{}/private.git",
        http.port
    );
    let in_url = run(
        &env,
        &[
            "build",
            "--json",
            "--verbose",
            "--source",
            &with_token,
            "--out",
            "out2",
            "--state",
            "st2",
        ],
        &[],
    );
    assert_eq!(in_url.code, 0, "{}", in_url.stderr);
    assert_eq!(
        in_url.json()["sources"][0]["location"],
        format!(
            "http://x-access-token:***@127.0.0.1:{}/private.git",
            http.port
        )
    );
    outputs.push(in_url);
    // The same URL with the server gone: the error is redacted too.
    drop(http);
    let down = run(
        &env,
        &[
            "build",
            "--source",
            &with_token,
            "--out",
            "out3",
            "--state",
            "st3",
        ],
        &[],
    );
    assert_eq!(down.code, 1, "{}", down.stderr);
    assert!(
        down.stderr.contains("x-access-token:***@"),
        "{}",
        down.stderr
    );
    outputs.push(down);

    for o in &outputs {
        assert!(
            !o.stdout.contains(TOKEN) && !o.stderr.contains(TOKEN),
            "{o:?}"
        );
    }
    assert_nowhere(TOKEN, env.dir.path());
    assert!(env.path("sigma-galaxy.lock").is_file());
    assert!(
        env.read("sigma-galaxy.lock")
            .contains("x-access-token:***@")
    );
}

#[test]
fn private_ssh_builds_with_a_key_file() {
    let env = Env::new();
    let key = env.path("keys/rules_key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    if !have("ssh-keygen", Path::new("/usr/bin/ssh-keygen")) {
        return;
    }
    keygen(&key, "correct horse");
    let other = env.path("keys/other_key");
    keygen(&other, "");
    let work = served_repo(&env, "private.git", 2);
    let authorized = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let Some(sshd) = sshd(&env, &authorized) else {
        return;
    };
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user_name(),
        sshd.server.port,
        env.path("srv/private.git").display()
    );
    env.write("known_hosts", &sshd.known_host);
    env.write("empty_known_hosts", "# nothing\n");
    let config = |key: &Path, hosts: &str| {
        format!(
            "out: out\nstate: st\nsources:\n  - name: private\n    location: {url}\n    ssh_key: {}\n\
             {hosts}",
            key.display()
        )
    };
    let vars = [("KEY_PASS", "correct horse")];
    let pass = "    ssh_key_passphrase_env: KEY_PASS\n";

    env.write(
        "sigma-galaxy.yml",
        &config(&key, &format!("{pass}    ssh_known_hosts: known_hosts\n")),
    );
    let ok = run(&env, &["build", "--json"], &vars);
    let log = std::fs::read_to_string(env.path("sshd/log")).unwrap_or_default();
    assert_eq!(ok.code, 0, "{}\nsshd log:\n{log}", ok.stderr);
    assert_eq!(ok.json()["values"], 2);
    assert_eq!(
        ok.json()["sources"][0]["commit"],
        work.git(&["rev-parse", "HEAD"])
    );

    // A wrong passphrase: the key file is named, the passphrase is not shown.
    let bad_pass = run(
        &env,
        &["build", "--out", "o2", "--state", "st2"],
        &[("KEY_PASS", "wrong horse")],
    );
    assert_eq!(bad_pass.code, 1, "{}", bad_pass.stderr);
    assert!(
        bad_pass.stderr.contains("authentication failed"),
        "{}",
        bad_pass.stderr
    );
    assert!(bad_pass.stderr.contains("rules_key"), "{}", bad_pass.stderr);
    assert!(!bad_pass.stderr.contains("horse"), "{}", bad_pass.stderr);

    // An unknown host key is refused, with its fingerprint and how to add it.
    std::fs::remove_dir_all(env.path("st")).unwrap();
    env.write(
        "sigma-galaxy.yml",
        &config(
            &key,
            &format!("{pass}    ssh_known_hosts: empty_known_hosts\n"),
        ),
    );
    let unknown = run(&env, &["build"], &vars);
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("source private"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stderr.contains("SHA256:"), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("ssh-keyscan -p"),
        "{}",
        unknown.stderr
    );

    // The default policy is ~/.ssh/known_hosts, where this server is not.
    env.write("sigma-galaxy.yml", &config(&key, pass));
    let default = run(&env, &["build"], &vars);
    assert_eq!(default.code, 1, "{}", default.stderr);
    assert!(default.stderr.contains("host key"), "{}", default.stderr);

    // A key the server does not know: an authentication error naming the key tried.
    env.write(
        "sigma-galaxy.yml",
        &config(&other, "    insecure_skip_host_key_check: true\n"),
    );
    let refused = run(&env, &["build"], &[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("authentication failed"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("other_key"), "{}", refused.stderr);
    assert!(!env.path("st/mirrors/private.git").exists());
    assert_nowhere("correct horse", env.dir.path().join("st").as_path());
}

#[test]
fn locked_builds_reproduce_a_build_byte_for_byte_after_the_remote_moved_on() {
    let env = Env::new();
    let mut work = served_repo(&env, "org/rules.git", 4);
    let Some(daemon) = git_daemon(&env.path("srv")) else {
        return;
    };
    let url = format!("git://127.0.0.1:{}/org/rules.git", daemon.port);
    env.write(
        "cfg/sigma-galaxy.yml",
        &format!(
            "sources:\n  - name: rules\n    location: {url}\n    ref: main\n  - name: local\n    location: ../work\n"
        ),
    );
    let cfg = ["--config", "cfg/sigma-galaxy.yml"];
    let locked_missing = run(&env, &["build", "--locked", cfg[0], cfg[1]], &[]);
    assert_eq!(locked_missing.code, 2, "{}", locked_missing.stderr);
    assert!(
        locked_missing
            .stderr
            .contains("sigma-galaxy.lock does not exist"),
        "{}",
        locked_missing.stderr
    );

    let first_commit = work.git(&["rev-parse", "HEAD"]);
    build(
        &env,
        &[cfg[0], cfg[1], "--out", "one", "--state", "st"],
        &[],
    );
    let lock = env.read("cfg/sigma-galaxy.lock");
    assert!(lock.contains(&first_commit), "{lock}");
    assert!(lock.contains(&format!("location: {url}")), "{lock}");
    assert!(lock.contains("ref: main"), "{lock}");

    // The remote moves on.
    work.write("rules/r0.yml", rule("Rule 0 reworded", None, ""));
    work.write("rules/extra.yml", rule("Extra", None, ""));
    work.commit("move on");
    push(&env, &work, "org/rules.git");

    let (locked, _) = build(
        &env,
        &[
            "--locked",
            cfg[0],
            cfg[1],
            "--out",
            "two",
            "--state",
            "fresh-state",
        ],
        &[],
    );
    assert_eq!(locked["sources"][0]["commit"], first_commit);
    assert_eq!(
        locked["sources"][1]["commit"], first_commit,
        "a local source is pinned too"
    );
    for f in ["clusters/sigma-rules.json", "galaxies/sigma-rules.json"] {
        assert_eq!(
            env.read(&format!("one/{f}")),
            env.read(&format!("two/{f}")),
            "{f}"
        );
    }
    assert_eq!(
        env.read("cfg/sigma-galaxy.lock"),
        lock,
        "--locked leaves the lockfile as it is"
    );
    // Offline, the pinned commit is in the mirror already.
    let (offline, stderr) = build(
        &env,
        &[
            "--locked",
            "--offline",
            cfg[0],
            cfg[1],
            "--out",
            "three",
            "--state",
            "fresh-state",
        ],
        &[],
    );
    assert_eq!(offline["sources"][0]["commit"], first_commit);
    assert!(stderr.contains("offline"), "{stderr}");

    // A plain build moves the lock to the new commit.
    let (moved, _) = build(
        &env,
        &[cfg[0], cfg[1], "--out", "one", "--state", "st"],
        &[],
    );
    let new_commit = work.git(&["rev-parse", "HEAD"]);
    assert_eq!(moved["sources"][0]["commit"], new_commit);
    assert!(env.read("cfg/sigma-galaxy.lock").contains(&new_commit));

    // Config and lock disagree: exit 2, every difference named.
    env.write(
        "cfg/sigma-galaxy.yml",
        &format!("sources:\n  - name: rules\n    location: {url}x\n    ref: main\n  - name: more\n    location: ../work\n"),
    );
    let disagree = run(
        &env,
        &["build", "--locked", cfg[0], cfg[1], "--out", "four"],
        &[],
    );
    assert_eq!(disagree.code, 2, "{}", disagree.stderr);
    assert!(
        disagree
            .stderr
            .contains("source more is configured but not locked"),
        "{}",
        disagree.stderr
    );
    assert!(
        disagree.stderr.contains(&format!("{url}x")),
        "{}",
        disagree.stderr
    );
    assert!(
        disagree
            .stderr
            .contains("source local is locked but not configured"),
        "{}",
        disagree.stderr
    );
    assert!(!env.path("four").exists());
}

#[test]
fn remote_values_link_to_the_file_in_the_remote() {
    let env = Env::new();
    let mut work = served_repo(&env, "sec/rules.git", 0);
    work.write("rules/my rule (v2).yml", rule("Spaced", None, ""));
    let commit = work.commit("a rule with spaces");
    push(&env, &work, "sec/rules.git");
    let Some(http) = HttpGit::start(&env.path("srv"), None) else {
        return;
    };
    let url = format!("http://127.0.0.1:{}/sec/rules.git", http.port);
    env.write(
        "sigma-galaxy.yml",
        &format!(
            "sources:\n  - name: gitlab-style\n    location: {url}\n    host: gitlab\n\
             \x20 - name: templated\n    location: {url}\n    include: ['nothing/**']\n    allow_empty: true\n"
        ),
    );
    let (summary, _) = build(&env, &["--out", "out", "--state", "st"], &[]);
    assert_eq!(summary["sources"][0]["links"], true);
    let values = by_title(&env.json("out/clusters/sigma-rules.json"));
    let refs = values["Spaced"]["meta"]["refs"].as_array().unwrap();
    assert_eq!(
        refs.last().unwrap(),
        &format!(
            "http://127.0.0.1:{}/sec/rules/-/blob/{commit}/rules/my%20rule%20(v2).yml",
            http.port
        )
    );
    // An unknown host without `host` or `web_url`: no link, and the summary says so.
    assert_eq!(summary["sources"][1]["links"], false);
}

#[test]
fn offline_builds_from_the_mirror_and_failures_change_nothing() {
    let env = Env::new();
    let mut work = served_repo(&env, "org/rules.git", 3);
    let mut local = env.repo("local");
    local.write("l.yml", rule("Local", None, ""));
    local.commit("local rule");
    let never = run(
        &env,
        &[
            "build",
            "--offline",
            "--source",
            "git://127.0.0.1:9/org/rules.git",
        ],
        &[],
    );
    assert_eq!(never.code, 1);
    assert!(
        never.stderr.contains("was never fetched"),
        "{}",
        never.stderr
    );

    let daemon = git_daemon(&env.path("srv"));
    let Some(daemon) = daemon else { return };
    let url = format!("git://127.0.0.1:{}/org/rules.git", daemon.port);
    let args = [
        "--source",
        &url,
        "--source",
        "local",
        "--out",
        "out",
        "--state",
        "st",
        "--lockfile",
        "sigma-galaxy.lock",
    ];
    let (first, _) = build(&env, &args, &[]);
    assert_eq!(first["values"], 4);
    let cluster = env.read("out/clusters/sigma-rules.json");
    let lock = env.read("sigma-galaxy.lock");

    // The server goes away and the repository moves on.
    drop(daemon);
    work.write("rules/r9.yml", rule("Nine", None, ""));
    work.commit("more");
    push(&env, &work, "org/rules.git");
    local.write("l2.yml", rule("Local two", None, ""));
    local.commit("another local rule");
    let state_before: Vec<(PathBuf, Vec<u8>)> = files_under(&env.path("st"))
        .into_iter()
        .filter(|p| !p.starts_with(env.path("st/mirrors")))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();

    let mut build_args = vec!["build"];
    build_args.extend_from_slice(&args);
    let failed = run(&env, &build_args, &[]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.starts_with("error: source rules: "),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("--offline"),
        "the hint names --offline: {}",
        failed.stderr
    );
    assert_eq!(
        env.read("out/clusters/sigma-rules.json"),
        cluster,
        "galaxy untouched"
    );
    assert_eq!(env.read("sigma-galaxy.lock"), lock, "lockfile untouched");
    for (p, bytes) in &state_before {
        assert_eq!(
            &std::fs::read(p).unwrap(),
            bytes,
            "{} untouched",
            p.display()
        );
    }

    let mut offline_args = vec!["--offline"];
    offline_args.extend_from_slice(&args);
    let (offline, stderr) = build(&env, &offline_args, &[]);
    assert!(
        stderr.contains("source rules: offline: building"),
        "{stderr}"
    );
    assert_eq!(
        offline["values"], 5,
        "the local source moved on, the remote is as fetched"
    );
}

/// CI only (`.ci/remote-corpus.sh`): the SigmaHQ corpus served over git:// and smart HTTP, built at an
/// older commit, then again after newer commits are pushed: the second build parses exactly the rule
/// files whose content is new. `SIGMA_GALAXY_CORPUS_GIT` is the imported corpus (a bare repository).
#[test]
#[ignore = "needs the corpus from ../shared: run by .ci/remote-corpus.sh"]
fn corpus_over_git_daemon_and_smart_http() {
    let corpus =
        PathBuf::from(std::env::var("SIGMA_GALAXY_CORPUS_GIT").expect("SIGMA_GALAXY_CORPUS_GIT"));
    let back: usize = std::env::var("SIGMA_GALAXY_CORPUS_BACK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let env = Env::new();
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let corpus_s = corpus.to_str().unwrap();
    let old = git(&["-C", corpus_s, "rev-parse", &format!("main~{back}")])
        .trim()
        .to_string();
    let new = git(&["-C", corpus_s, "rev-parse", "main"])
        .trim()
        .to_string();
    // Rule files of the new commit whose content the old commit does not have: what must be parsed.
    let blobs = |commit: &str| -> Vec<(String, String)> {
        git(&["-C", corpus_s, "ls-tree", "-r", commit])
            .lines()
            .filter_map(|l| {
                let (meta, path) = l.split_once('\t')?;
                let blob = meta.split_whitespace().nth(2)?;
                (path.ends_with(".yml") || path.ends_with(".yaml"))
                    .then(|| (path.to_string(), blob.to_string()))
            })
            .collect()
    };
    let old_blobs: BTreeSet<String> = blobs(&old).into_iter().map(|(_, b)| b).collect();
    let changed = blobs(&new)
        .iter()
        .filter(|(_, b)| !old_blobs.contains(b))
        .count();
    let srv = env.path("srv");
    std::fs::create_dir_all(&srv).unwrap();
    let served = srv.join("sigma.git");
    git(&[
        "init",
        "-q",
        "--bare",
        "-b",
        "main",
        served.to_str().unwrap(),
    ]);
    git(&[
        "-C",
        corpus_s,
        "push",
        "-q",
        served.to_str().unwrap(),
        &format!("{old}:refs/heads/main"),
    ]);

    let daemon = git_daemon(&srv).expect("git daemon");
    let http = HttpGit::start(&srv, None).expect("git http-backend");
    let urls = [
        format!("git://127.0.0.1:{}/sigma.git", daemon.port),
        format!("http://127.0.0.1:{}/sigma.git", http.port),
    ];
    let mut seconds = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        if i == 1 {
            // Back to the older commit for the second protocol.
            git(&[
                "-C",
                corpus_s,
                "push",
                "-q",
                "--force",
                served.to_str().unwrap(),
                &format!("{old}:refs/heads/main"),
            ]);
        }
        let state = format!("st{i}");
        let out = format!("out{i}");
        let args = ["--source", url.as_str(), "--out", &out, "--state", &state];
        let started = Instant::now();
        let (first, stderr1) = build(&env, &args, &[]);
        let clone_time = started.elapsed();
        assert_eq!(first["sources"][0]["commit"], old.as_str());
        git(&[
            "-C",
            corpus_s,
            "push",
            "-q",
            served.to_str().unwrap(),
            "main:refs/heads/main",
        ]);
        let started = Instant::now();
        let (second, stderr2) = build(&env, &args, &[]);
        let fetch_time = started.elapsed();
        assert_eq!(second["sources"][0]["commit"], new.as_str());
        assert_eq!(
            second["parsed"], changed,
            "{url}: parsed only the changed rule files"
        );
        eprintln!(
            "{url}: first build {clone_time:?} ({}), second build {fetch_time:?} ({}), parsed {} of {} files",
            stderr1
                .lines()
                .find(|l| l.contains("fetched"))
                .unwrap_or(""),
            stderr2
                .lines()
                .find(|l| l.contains("fetched"))
                .unwrap_or(""),
            second["parsed"],
            second["sources"][0]["files"]
        );
        seconds.push(env.read(&format!("{out}/clusters/sigma-rules.json")));
    }
    assert_eq!(
        seconds[0], seconds[1],
        "both protocols build the same galaxy"
    );
}
