//! `sigma-galaxy coverage` on the last corpus commit (`../shared/corpus`, every folder, current ATT&CK),
//! timed side by side in one run with sigma-cli's `sigma analyze attack count` on the same rule files:
//!
//! - coverage of the built cluster (`coverage --cluster FILE --format navigator`);
//! - coverage of a configuration from nothing (`coverage --config FILE` on a fresh state: a clean
//!   build from git, then the same analysis);
//! - with `SIGMA_CLI=/path/to/sigma` (sigma-cli, e.g. `pip install sigma-cli`), `sigma analyze attack
//!   count` on a checkout of the same commit. pySigma downloads MITRE's ATT&CK bundle at run time; the
//!   bench gives it, offline, the same clusters' techniques and tactics instead (a STIX bundle primed
//!   into pySigma's cache under a temporary HOME), and does not time that.
//!
//! Run: `SIGMA_CLI=$(command -v sigma) cargo bench --bench coverage`. Needs `../shared` (or the folder
//! `SIGMA_GALAXY_SHARED` names); without it, says so and exits 0.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value as Json, json};

/// The same allocator as the binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use sigma_galaxy::cli::{Cli, Command as Sub};
use sigma_galaxy::config::Config;
use sigma_galaxy::coverage;

/// The corpus's rule folders (all of them are built, and given to sigma-cli).
const FOLDERS: [&str; 8] = [
    "rules",
    "rules-emerging-threats",
    "rules-threat-hunting",
    "rules-placeholder",
    "rules-dfir",
    "rules-compliance",
    "deprecated",
    "unsupported",
];

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:>9.1} ms", d.as_secs_f64() * 1000.0)
}

/// What `coverage --cluster CLUSTER --attack-clusters ATTACK --format navigator` does, in process.
fn coverage_of(cluster: &Path, attack: &Path) -> (usize, String) {
    let galaxy = coverage::read_cluster(cluster).expect("cluster");
    let attack = coverage::load_attack(attack).expect("ATT&CK clusters");
    let result = coverage::analyze(&galaxy, Some(&attack), None, &coverage::Options::default());
    (result.techniques.len(), coverage::navigator(&result, None))
}

/// A clean build of `source` into `out`/`state`, as `coverage --config` runs it.
fn build(source: &str, attack: &Path, out: &Path, state: &Path) -> PathBuf {
    let (attack, out_s, state) = (
        attack.to_str().unwrap(),
        out.to_str().unwrap(),
        state.to_str().unwrap(),
    );
    let argv = [
        "sigma-galaxy",
        "build",
        "--quiet",
        "--source",
        source,
        "--attack-clusters",
        attack,
        "--out",
        out_s,
        "--state",
        state,
    ];
    let Sub::Build(args) = Cli::parse_from(argv).command else {
        unreachable!("build args parse as build");
    };
    let config = Config::load(&args).expect("config");
    sigma_galaxy::build::build(&config).expect("build");
    out.join("clusters/sigma-rules.json")
}

/// A minimal STIX bundle of the clusters' current Enterprise techniques, as pySigma reads MITRE's.
fn stix_bundle(attack: &Path) -> Json {
    let text = std::fs::read(attack.join("mitre-attack-pattern.json")).unwrap();
    let cluster: Json = serde_json::from_slice(&text).unwrap();
    let mut objects = vec![json!({
        "type": "x-mitre-collection",
        "id": "x-mitre-collection--00000000-0000-0000-0000-000000000000",
        "x_mitre_version": cluster["version"].to_string(),
    })];
    for v in cluster["values"].as_array().unwrap() {
        let Some(id) = v["meta"]["external_id"].as_str() else {
            continue;
        };
        let mut phases: Vec<&str> = Vec::new();
        for chain in v["meta"]["kill_chain"].as_array().into_iter().flatten() {
            if let Some(phase) = chain.as_str().and_then(|c| c.strip_prefix("attack-")) {
                let phase = phase.split_once(':').map_or(phase, |(_, p)| p);
                if !phases.contains(&phase) {
                    phases.push(phase);
                }
            }
        }
        if v["revoked"] == json!(true) || phases.is_empty() {
            continue;
        }
        let name = v["value"].as_str().unwrap_or_default();
        objects.push(json!({
            "type": "attack-pattern",
            "id": format!("attack-pattern--{}", v["uuid"].as_str().unwrap_or_default()),
            "name": name.rsplit_once(" - ").map_or(name, |(n, _)| n),
            "external_references": [{"source_name": "mitre-attack", "external_id": id}],
            "kill_chain_phases": phases.iter().map(|p| json!({"kill_chain_name": "mitre-attack", "phase_name": p})).collect::<Vec<_>>(),
        }));
    }
    json!({"type": "bundle", "id": "bundle--00000000-0000-0000-0000-000000000000", "objects": objects})
}

/// Median of 3 timed runs of `sigma analyze attack count` on `tree`, pySigma primed offline.
fn sigma_cli(sigma: &Path, tree: &Path, attack: &Path, work: &Path) -> Duration {
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let bundle = work.join("attack-stix.json");
    std::fs::write(&bundle, stix_bundle(attack).to_string()).unwrap();
    // sigma-cli's own interpreter, from its script's #! line.
    let script = std::fs::read_to_string(sigma).unwrap_or_default();
    let python = script
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map_or("python3", str::trim)
        .to_string();
    let primed = Command::new(&python)
        .args([
            "-c",
            "import sys, sigma.data.mitre_attack as m; m.set_url(sys.argv[1]); m.mitre_attack_version",
        ])
        .arg(&bundle)
        .env("HOME", &home)
        .status()
        .expect("python of sigma-cli");
    assert!(primed.success(), "priming pySigma's ATT&CK cache failed");
    let layer = work.join("sigma-cli-layer.json");
    let times = (0..3)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(sigma)
                .args(["analyze", "attack", "count"])
                .arg(&layer)
                .args(FOLDERS)
                .current_dir(tree)
                .env("HOME", &home)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("sigma");
            assert!(status.success(), "sigma analyze attack count failed");
            started.elapsed()
        })
        .collect();
    median(times)
}

fn main() {
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
        .stdout(Stdio::null())
        .status()
        .expect("import-history.sh");
    assert!(status.success());
    let attack = shared.join("misp-galaxy/clusters");
    let source = format!("{}#main", repo.display());
    let dir = |name: &str| work.path().join(name);

    let cluster = build(&source, &attack, &dir("galaxy"), &dir("state"));
    let rules = coverage::read_cluster(&cluster).unwrap().rules.len();
    let mut techniques = 0;
    let from_cluster = median(
        (0..10)
            .map(|_| {
                let started = Instant::now();
                let (n, layer) = coverage_of(&cluster, &attack);
                std::hint::black_box(layer);
                techniques = n;
                started.elapsed()
            })
            .collect(),
    );
    let from_config = median(
        (0..3)
            .map(|i| {
                let started = Instant::now();
                let (out, state) = (dir(&format!("cfg{i}")), dir(&format!("cfg{i}-state")));
                let cluster = build(&source, &attack, &out, &state);
                std::hint::black_box(coverage_of(&cluster, &attack));
                started.elapsed()
            })
            .collect(),
    );
    let sigma = std::env::var_os("SIGMA_CLI").map(|sigma| {
        let tree = dir("tree");
        std::fs::create_dir_all(&tree).unwrap();
        let archive = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "git -C '{}' archive main | tar -x -C '{}'",
                repo.display(),
                tree.display()
            ))
            .status()
            .expect("git archive");
        assert!(archive.success());
        sigma_cli(Path::new(&sigma), &tree, &attack, work.path())
    });

    println!("last corpus commit: {rules} rules, {techniques} techniques covered, every folder");
    println!(
        "sigma-galaxy coverage --cluster (navigator, median of 10):   {}",
        ms(from_cluster)
    );
    println!(
        "sigma-galaxy coverage --config, fresh state (median of 3):   {}",
        ms(from_config)
    );
    match sigma {
        Some(t) => println!(
            "sigma analyze attack count, rule files (median of 3):       {}",
            ms(t)
        ),
        None => println!("(set SIGMA_CLI=/path/to/sigma to time sigma-cli beside it)"),
    }
}
