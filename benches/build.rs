//! Benchmarks on real SigmaHQ history (`../shared/corpus`), all in one run so the figures compare:
//!
//! - clean build of the last corpus commit, every folder, ATT&CK links (fresh state, history walk);
//! - no-op rebuild (same commit, same options);
//! - the mean one-commit incremental run over the replay of the whole history.
//!
//! Run: `cargo bench --bench build` (add `-- --quick` to replay only the last 100 commits).
//! Needs `../shared` (the corpus and ATT&CK clusters); without it, says so and exits 0.
//!
//! With `SIGMA_GALAXY_MISP_SCRIPT=/path/to/sigma-to-galaxy.py` (MISP's own generator, from
//! misp-galaxy's `tools/sigma/`; not shipped here), it also times that script and sigma-galaxy side by
//! side on the input MISP published from: `rules/` of the first corpus commit. (The script cannot
//! read the current corpus: PyYAML turns ISO dates into dates that `json.dump` rejects.)

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;

/// The same allocator as the binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use sigma_galaxy::cli::{Cli, Command as Sub};
use sigma_galaxy::config::Config;

/// One in-process build of `source` with ATT&CK links from `attack`, into `out` and `state`.
fn build(
    source: &str,
    attack: &str,
    out: &str,
    state: &str,
    extra: &[&str],
) -> (Duration, sigma_galaxy::report::Summary) {
    let mut all = vec!["sigma-galaxy", "build", "--quiet", "--source", source];
    all.extend(["--attack-clusters", attack, "--out", out, "--state", state]);
    all.extend_from_slice(extra);
    let Sub::Build(args) = Cli::parse_from(all).command else {
        unreachable!("build args parse as build");
    };
    let config = Config::load(&args).expect("config");
    let started = Instant::now();
    let summary = sigma_galaxy::build::build(&config).expect("build");
    (started.elapsed(), summary)
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `../shared` beside the checkout, or where SIGMA_GALAXY_SHARED says.
    let shared = std::env::var_os("SIGMA_GALAXY_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from,
    );
    if !shared.join("corpus").is_dir() {
        println!("../shared/corpus not found: nothing to benchmark");
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let repo = work.path().join("corpus.git");
    let status = Command::new(shared.join("tools/import-history.sh"))
        .arg(&repo)
        .status()
        .expect("import-history.sh");
    assert!(status.success());
    let attack = shared.join("misp-galaxy/clusters");
    let attack = attack.to_str().expect("utf-8 path");
    let source = format!("{}#main", repo.display());
    let dir = |name: &str| -> PathBuf { work.path().join(name) };
    let path = |p: &PathBuf| p.to_str().expect("utf-8 path").to_string();

    // Clean builds: fresh state and output every time.
    let mut clean = Vec::new();
    let mut values = 0;
    for i in 0..5 {
        let (out, state) = (
            path(&dir(&format!("clean{i}"))),
            path(&dir(&format!("clean{i}-state"))),
        );
        let (t, s) = build(&source, attack, &out, &state, &[]);
        values = s.values;
        clean.push(t);
    }
    let clean = median(clean);

    // No-op rebuilds on the first clean build's state.
    let (out, state) = (path(&dir("clean0")), path(&dir("clean0-state")));
    let noop: Vec<Duration> = (0..10)
        .map(|_| {
            let (t, s) = build(&source, attack, &out, &state, &[]);
            assert!(!s.wrote);
            t
        })
        .collect();
    let noop = median(noop);

    // Replay: one incremental build per commit, oldest first.
    let list = Command::new("git")
        .args([
            "-C",
            repo.to_str().expect("utf-8"),
            "rev-list",
            "--first-parent",
            "--reverse",
            "main",
        ])
        .output()
        .expect("git rev-list");
    let commits: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    let start = if quick {
        commits.len().saturating_sub(101)
    } else {
        0
    };
    let (out, state) = (path(&dir("replay")), path(&dir("replay-state")));
    let mut steps = Vec::new();
    for (n, c) in commits[start..].iter().enumerate() {
        let spec = format!("{}#{c}", repo.display());
        let (t, _) = build(&spec, attack, &out, &state, &[]);
        if n > 0 {
            steps.push(t);
        }
    }
    let mean = steps.iter().sum::<Duration>() / u32::try_from(steps.len().max(1)).unwrap_or(1);

    let misp = std::env::var_os("SIGMA_GALAXY_MISP_SCRIPT").map(|script| {
        let first = commits.first().expect("a first commit");
        let tree = work.path().join("first");
        std::fs::create_dir_all(&tree).expect("mkdir");
        let archive = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "git -C '{}' archive {first} | tar -x -C '{}'",
                repo.display(),
                tree.display()
            ))
            .status()
            .expect("git archive");
        assert!(archive.success());
        std::fs::write(
            tree.join("config.ini"),
            format!("[MISP]\ncluster_path = {attack}/\nmitre_attack_cluster = mitre-attack-pattern.json\n"),
        )
        .expect("config.ini");
        let started = Instant::now();
        let status = Command::new("python3")
            .arg(&script)
            .args(["-p", "rules/", "-r"])
            .current_dir(&tree)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("python3");
        assert!(status.success(), "MISP's script failed");
        let script_time = started.elapsed();
        let spec = format!("{}#{first}", repo.display());
        let (out, state) = (path(&dir("first-out")), path(&dir("first-state")));
        let (ours, _) = build(&spec, attack, &out, &state, &["--include", "rules/**"]);
        (script_time, ours)
    });

    let pct = |d: Duration| 100.0 * d.as_secs_f64() / clean.as_secs_f64();
    println!(
        "corpus: {} commits, last commit {values} values, every folder, ATT&CK links",
        commits.len()
    );
    println!("clean build (median of 5):          {}", ms(clean));
    println!(
        "no-op rebuild (median of 10):       {} ({:.1}% of clean)",
        ms(noop),
        pct(noop)
    );
    println!(
        "incremental run (mean of {}):      {} ({:.1}% of clean)",
        steps.len(),
        ms(mean),
        pct(mean)
    );
    if let Some((script, ours)) = misp {
        println!("rules/ of the first commit (2,924 rules), ATT&CK links:");
        println!("  MISP's sigma-to-galaxy.py:        {}", ms(script));
        println!("  sigma-galaxy clean build:         {}", ms(ours));
    }
}
