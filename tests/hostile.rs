//! Hostile and odd input: one repository holding every case a third-party rule repository can throw at
//! the tool (bombs, deep nesting, binary, odd encodings, repeated keys, wrong types, unsafe tags,
//! spoofed titles, links), each asserted by its value or its finding and line; bare repositories
//! without a `config` file.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::harness::{Env, by_title, rule};

/// The findings of a build summary, by file: (line, code) in order.
fn findings(summary: &Json) -> BTreeMap<String, Vec<(u64, String)>> {
    let mut out: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for w in summary["warnings"].as_array().unwrap() {
        out.entry(w["path"].as_str().unwrap().to_string())
            .or_default()
            .push((
                w["line"].as_u64().unwrap_or(0),
                w["code"].as_str().unwrap().to_string(),
            ));
    }
    out
}

fn message<'a>(summary: &'a Json, path: &str, code: &str) -> &'a str {
    summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == path && w["code"] == code)
        .and_then(|w| w["message"].as_str())
        .unwrap_or_else(|| panic!("no {code} for {path}"))
}

#[test]
fn every_hostile_case_is_named_with_its_line_and_nothing_panics() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("good.yml", rule("Good", None, ""));
    // 1 MB of nested brackets: stopped by the scan at the first bracket past the limit.
    let deep = format!("title: Deep\ndetection:\n  x: {}\n", "[".repeat(1_000_000));
    repo.write("deep.yml", &deep);
    // 1 MB of nested block sequences on one line (`- - - …`).
    repo.write(
        "dashes.yml",
        format!(
            "title: Dashes\ndetection:\n  x:\n   {}x\n",
            "- ".repeat(500_000)
        ),
    );
    // A billion laughs.
    let mut bomb = String::from(
        "title: Bomb\ndetection:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
    }
    bomb.push_str("  condition: a9\n");
    repo.write("bomb.yml", &bomb);
    // Binary, non-UTF-8, BOM and CRLF, empty.
    let binary: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    repo.write("binary.yml", &binary);
    repo.write(
        "latin1.yml",
        b"title: Latin\ndescription: caf\xe9\ndetection: {}\n".as_slice(),
    );
    repo.write(
        "bom_crlf.yml",
        rule("BOM CRLF", None, "")
            .replace('\n', "\r\n")
            .replace("title", "\u{feff}title"),
    );
    repo.write("empty.yml", "");
    repo.write("blank.yml", "\n\n   \n");
    // 30 MB would pass the file size limit; 100 KB is enough to pass MISP's 65,535 bytes.
    repo.write(
        "long.yml",
        format!(
            "title: Long\ndescription: {}\ndetection: {{}}\n",
            "é".repeat(50_000)
        ),
    );
    // A right-to-left override and a zero-width space in the title.
    repo.write("rlo.yml", rule("Invoice \u{202E}gpj.exe", None, ""));
    // Repeated keys: in `detection` (kept, last wins), in the metadata (skipped).
    repo.write(
        "dup_detection.yml",
        "title: Dup Detection\ndetection:\n    sel:\n        a: 1\n    sel:\n        a: 2\n    condition: sel\n",
    );
    repo.write("dup_title.yml", "title: One\ndetection: {}\ntitle: Two\n");
    // Wrong types: coerced (used, warned) and dropped (skipped, error).
    repo.write("title_number.yml", "title: 5\ndetection: {}\n");
    repo.write(
        "tags_string.yml",
        "title: Tag String\ntags: attack.t1059\ndetection: {}\n",
    );
    repo.write(
        "tags_map.yml",
        "title: Tag Map\ntags:\n  a: b\ndetection: {}\n",
    );
    // Unsafe YAML tags, named as such.
    repo.write(
        "python.yml",
        "title: Python\ndetection:\n  x: !!python/object/apply:os.system ['echo pwned']\n",
    );
    repo.write("local_tag.yml", "title: Local\ndetection: !foo bar\n");
    // A symbolic link (to a rule, and out of the repository) and a gitlink.
    std::os::unix::fs::symlink("good.yml", repo.path.join("link.yml")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", repo.path.join("passwd.yml")).unwrap();
    let good_commit = repo.commit("cases");
    repo.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{good_commit},submodule.yml"),
    ]);
    repo.git(&["commit", "-q", "-m", "gitlink"]);
    repo.commits += 1;

    let run = env.run(&["build", "--json", "--source", "r", "--out", "out"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let summary = run.json();
    // Every file was parsed once; links were not read.
    assert_eq!(summary["parsed"], 18, "{summary:#}");

    let expected: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::from([
        ("deep.yml", vec![(3, "limit-exceeded")]),
        ("dashes.yml", vec![(4, "limit-exceeded")]),
        ("bomb.yml", vec![(1, "limit-exceeded")]),
        ("binary.yml", vec![(1, "not-utf8")]),
        ("latin1.yml", vec![(2, "not-utf8")]),
        ("long.yml", vec![(2, "field-too-long")]),
        ("rlo.yml", vec![(1, "title-control-char")]),
        ("dup_detection.yml", vec![(5, "duplicate-detection-key")]),
        ("dup_title.yml", vec![(3, "duplicate-key")]),
        ("title_number.yml", vec![(1, "coerced-type")]),
        ("tags_string.yml", vec![(2, "coerced-type")]),
        ("tags_map.yml", vec![(2, "wrong-type")]),
        ("python.yml", vec![(3, "unsafe-yaml-tag")]),
        ("local_tag.yml", vec![(2, "unsafe-yaml-tag")]),
    ]);
    let got = findings(&summary);
    let got: BTreeMap<&str, Vec<(u64, &str)>> = got
        .iter()
        .map(|(path, list)| {
            let list = list
                .iter()
                // The lints of `check` (tested in tests/check.rs) are not what this test is about.
                .filter(|(_, code)| !["missing-id", "missing-logsource"].contains(&code.as_str()))
                .map(|(line, code)| (*line, code.as_str()))
                .collect();
            (path.as_str(), list)
        })
        .filter(|(_, list): &(&str, Vec<_>)| !list.is_empty())
        .collect();
    assert_eq!(got, expected, "{:#}", summary["warnings"]);
    assert!(
        message(&summary, "dup_detection.yml", "duplicate-detection-key").contains("lines 3 and 5"),
        "{}",
        message(&summary, "dup_detection.yml", "duplicate-detection-key")
    );
    assert!(message(&summary, "python.yml", "unsafe-yaml-tag").contains("!!python/object/apply"));

    let cluster = env.json("out/clusters/sigma-rules.json");
    let values = by_title(&cluster);
    let titles: Vec<&str> = values.keys().map(String::as_str).collect();
    assert_eq!(
        titles,
        [
            "5",
            "BOM CRLF",
            "Dup Detection",
            "Good",
            "Invoice gpj.exe",
            "Long",
            "Tag String"
        ]
    );
    let long = values["Long"]["description"].as_str().unwrap();
    assert!(long.len() <= 65_535, "{}", long.len());
    assert!(long.ends_with("[… cut]"), "{}", &long[long.len() - 20..]);
    assert!(long.starts_with(&"é".repeat(1000)));
    // The link's target was not read as a rule of its own.
    assert!(
        !serde_json::to_string(&cluster)
            .unwrap()
            .contains("link.yml"),
        "a symbolic link was read"
    );
}

#[test]
fn limits_come_from_the_config_file() {
    let env = Env::new();
    let mut repo = env.repo("r");
    let long = format!("description: {}\n", "x".repeat(100));
    repo.write(
        "small.yml",
        rule("Small", None, "").replace("description: Detects Small.\n", &long),
    );
    repo.write(
        "nested.yml",
        "title: Nested\ndetection:\n  x: [[[[1]]]]\n  condition: x\n",
    );
    repo.commit("two");
    env.write(
        "sigma-galaxy.yml",
        "sources:\n  - location: r\nlimits:\n  nesting_depth: 4\n  field_length: 64\n",
    );
    let summary = env.build(&["--out", "out"]);
    let got = findings(&summary);
    assert_eq!(got["nested.yml"], vec![(3, "limit-exceeded".to_string())]);
    assert!(
        got["small.yml"].contains(&(3, "field-too-long".to_string())),
        "{got:?}"
    );
    // A bad limit is a config error naming it.
    env.write(
        "sigma-galaxy.yml",
        "sources:\n  - location: r\nlimits:\n  nesting_depth: 1000\n",
    );
    let run = env.run(&["build", "--out", "out"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("limits.nesting_depth"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bare_repository_without_config_is_read() {
    let env = Env::new();
    let mut work = env.repo("work");
    work.write("rules/a.yml", rule("A", None, ""));
    work.write("rules/b.yml", rule("B", None, ""));
    work.commit("two rules");
    let bare = env.path("mirror.git");
    let out = std::process::Command::new("git")
        .args([
            "clone",
            "-q",
            "--bare",
            work.path_str(),
            bare.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::remove_file(bare.join("config")).unwrap();
    let summary = env.build(&["--source", "mirror.git", "--out", "out"]);
    assert_eq!(summary["values"], 2, "{summary:#}");
}

// ---------------------------------------------------------------------------------------------------
// Faults: a fetch cut off, a full disk, SIGKILL. The previous galaxy, state and mirror stay usable
// and the next run is exact.
// ---------------------------------------------------------------------------------------------------

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::harness::Repo;
use crate::remote;

/// Rules with long descriptions that do not compress: a pack and a cluster of some size.
fn add_rules(repo: &Repo, from: usize, to: usize) {
    for i in from..to {
        let noise: String = (0..40)
            .map(|j| {
                format!(
                    "{:08x}",
                    (i * 7919 + j).wrapping_mul(2_654_435_761) % 4_294_967_291
                )
            })
            .collect();
        let extra = format!("references:\n    - https://example.invalid/{noise}\n");
        repo.write(
            &format!("rules/r{i}.yml"),
            rule(&format!("Rule {i}"), None, &extra),
        );
    }
}

/// The values of a cluster file, which a later run must reproduce exactly (the version may differ).
fn values(env: &Env, out: &str) -> Json {
    env.json(&format!("{out}/clusters/sigma-rules.json"))["values"].clone()
}

/// A TCP proxy on loopback in front of `upstream` that passes at most `limit` bytes of what the
/// server sends on each connection, then cuts the connection: a fetch cut off mid-transfer.
struct CutProxy {
    port: u16,
    limit: Arc<AtomicUsize>,
}

impl CutProxy {
    fn start(upstream: u16) -> CutProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let limit = Arc::new(AtomicUsize::new(usize::MAX));
        let shared = Arc::clone(&limit);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)) else {
                    return;
                };
                let limit = shared.load(Ordering::SeqCst);
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let (mut server, mut client) = (server, client);
                    let mut sent = 0usize;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = server.read(&mut buf) {
                        let n = n.min(limit - sent);
                        if n == 0 || client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                        if sent >= limit {
                            break;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                });
            }
        });
        CutProxy { port, limit }
    }

    fn cut_after(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::SeqCst);
    }
}

#[test]
fn a_fetch_cut_off_mid_transfer_leaves_the_mirror_usable_and_the_next_run_exact() {
    let env = Env::new();
    let mut work = remote::served_repo(&env, "org/rules.git", 10);
    let Some(daemon) = remote::git_daemon(&env.path("srv")) else {
        return;
    };
    let proxy = CutProxy::start(daemon.port);
    let url = format!("git://127.0.0.1:{}/org/rules.git", proxy.port);
    let args = ["build", "--json", "--source", &url, "--out", "out"];
    let first = remote::run(&env, &args, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = env.read("out/clusters/sigma-rules.json");
    // The state folder and the mirrors in it are private.
    use std::os::unix::fs::PermissionsExt;
    for dir in [".sigma-galaxy", ".sigma-galaxy/mirrors"] {
        let mode = std::fs::metadata(env.path(dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{dir}");
    }

    add_rules(&work, 10, 200);
    work.commit("many more");
    remote::push(&env, &work, "org/rules.git");
    for cut in [100, 2_000, 20_000, 60_000] {
        proxy.cut_after(cut);
        let run = remote::run(&env, &args, &[]);
        assert_ne!(run.code, 0, "cut after {cut} bytes: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert_eq!(
            env.read("out/clusters/sigma-rules.json"),
            before,
            "cut after {cut}"
        );
        // The mirror as last fetched still builds.
        let offline = remote::run(&env, &[&args[..], &["--offline"]].concat(), &[]);
        assert_eq!(offline.code, 0, "cut after {cut}: {}", offline.stderr);
        assert_eq!(env.read("out/clusters/sigma-rules.json"), before);
    }
    proxy.cut_after(usize::MAX);
    let run = remote::run(&env, &args, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let fresh = remote::run(
        &env,
        &[
            "build",
            "--json",
            "--source",
            &url,
            "--out",
            "fresh",
            "--state",
            "fresh-state",
        ],
        &[],
    );
    assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    assert_eq!(values(&env, "out"), values(&env, "fresh"));
    assert_eq!(values(&env, "out").as_array().unwrap().len(), 200);
}

/// Runs the binary in the test folder with a file size limit of `blocks` × 512 bytes; with `ignore`,
/// SIGXFSZ is ignored, so a write past the limit fails with EFBIG instead of killing the process.
fn run_with_file_limit(env: &Env, blocks: u32, ignore: bool, args: &[&str]) -> crate::harness::Run {
    let trap = if ignore { "trap '' XFSZ; " } else { "" };
    let script = format!("{trap}ulimit -f {blocks}; exec \"$0\" \"$@\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_sigma-galaxy"))
        .args(args)
        .current_dir(env.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    crate::harness::Run::from(out)
}

#[test]
fn a_full_disk_during_the_write_leaves_the_previous_galaxy_and_the_next_run_is_exact() {
    let env = Env::new();
    let mut repo = env.repo("r");
    add_rules(&repo, 0, 10);
    repo.commit("few");
    let args = ["build", "--json", "--source", "r", "--out", "out"];
    env.build(&args[2..]);
    let before = env.read("out/clusters/sigma-rules.json");
    add_rules(&repo, 10, 400);
    repo.commit("many");
    env.build(&["--source", "r", "--out", "fresh", "--state", "fresh-state"]);
    let expected = values(&env, "fresh");
    for ignore in [false, true] {
        // 64 KiB: less than the new cluster or the parse cache needs.
        let run = run_with_file_limit(&env, 128, ignore, &args);
        assert_ne!(run.code, 0, "ignore SIGXFSZ {ignore}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        if ignore {
            assert!(run.stderr.contains("error"), "{}", run.stderr);
        }
        assert_eq!(env.read("out/clusters/sigma-rules.json"), before);
    }
    env.build(&args[2..]);
    assert_eq!(values(&env, "out"), expected);
}

#[test]
fn sigkill_at_any_point_leaves_the_old_or_the_new_galaxy_and_the_next_run_is_exact() {
    let env = Env::new();
    let mut repo = env.repo("r");
    add_rules(&repo, 0, 10);
    repo.commit("few");
    let args = [
        "build", "--json", "--source", "r", "--out", "out", "--state", "st",
    ];
    env.build(&args[2..]);
    let old = values(&env, "out");
    copy_dir(&env.path("out"), &env.path("out.saved"));
    copy_dir(&env.path("st"), &env.path("st.saved"));
    add_rules(&repo, 10, 300);
    repo.commit("many");
    env.build(&["--source", "r", "--out", "fresh", "--state", "fresh-state"]);
    let new = values(&env, "fresh");
    let mut outcomes = [0usize; 2];
    for delay_ms in [0, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500] {
        for (saved, dir) in [("out.saved", "out"), ("st.saved", "st")] {
            let _ = std::fs::remove_dir_all(env.path(dir));
            copy_dir(&env.path(saved), &env.path(dir));
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"))
            .args(args)
            .current_dir(env.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let now = values(&env, "out");
        assert!(
            now == old || now == new,
            "killed after {delay_ms} ms: a half-written galaxy"
        );
        outcomes[usize::from(now == new)] += 1;
        env.build(&args[2..]);
        assert_eq!(
            values(&env, "out"),
            new,
            "the run after a kill at {delay_ms} ms"
        );
    }
    // Some kills landed before the write (whatever the machine's speed, the first one does).
    assert!(outcomes[0] > 0, "{outcomes:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn nothing_is_written_outside_out_state_and_the_lockfile() {
    let env = Env::new();
    let mut repo = env.repo("r");
    add_rules(&repo, 0, 20);
    repo.commit("rules");
    std::fs::create_dir_all(env.path("tmp")).unwrap();
    std::fs::create_dir_all(env.path("home")).unwrap();
    let listing = |env: &Env| -> Vec<String> {
        remote::files_under(env.dir.path())
            .into_iter()
            .map(|p| {
                p.strip_prefix(env.dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|p| !p.starts_with("r/"))
            .collect()
    };
    let before = listing(&env);
    let out = Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"))
        .args(["build", "--source", "r", "--out", "out", "--state", "st"])
        .current_dir(env.dir.path())
        .env("TMPDIR", env.path("tmp"))
        .env("HOME", env.path("home"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Vec<String> = listing(&env)
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter(|p| !p.starts_with("out/") && !p.starts_with("st/") && p != "sigma-galaxy.lock")
        .collect();
    assert_eq!(written, Vec::<String>::new());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.path("st"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}
