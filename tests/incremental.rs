//! Incremental builds (issue 3): an incremental build equals a clean `--full` build of the same commit,
//! id-less rules keep their uuids through edits, renames and moves, a damaged state or a run killed
//! mid-write never makes a later build wrong, and concurrent runs on one state folder are serialised.
//!
//! Every check compares the real binary's output files byte for byte with a clean build of the same
//! commit in separate folders, except after a rewritten history, where the UUID ledger keeps the uuids
//! already published by design (a clean build on a fresh state has only the new history): there the
//! values are compared with those uuids left out, and the uuids are checked on their own.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::harness::{Env, Repo, by_title, rule};

/// The default galaxy (and cluster) uuid.
const GALAXY: Uuid = Uuid::from_u128(0x9cf7cd2e_d5f1_48c4_9909_7896ba1c96b2);
const CLUSTER: &str = "clusters/sigma-rules.json";
const GALAXY_FILE: &str = "galaxies/sigma-rules.json";
const STATE_FILES: [&str; 5] = [
    "build.json",
    "sources.bin",
    "blobs.bin",
    "attack.bin",
    SHARD,
];

/// Stands for one shard of the parse cache (the first, in name order).
const SHARD: &str = "parsed/*";

/// Fails with every collected failure, one per line.
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The path of a state file in the `state` folder.
fn state_path(env: &Env, name: &str) -> PathBuf {
    let state = env.path("state");
    if name != SHARD {
        return state.join(name);
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(state.join("parsed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    shards.sort();
    shards.remove(0)
}

/// Whether a reported file is the state file `name`.
fn is_state_file(reported: &str, name: &str) -> bool {
    match name {
        SHARD => reported.contains("parsed/"),
        _ => reported.ends_with(name),
    }
}

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

/// A rule file whose lines are mostly its own, so that git never pairs two different rules as a rename
/// while a one-line edit keeps a renamed file recognisable. `rev` changes the output (description),
/// `hidden` only the detection, which is not part of the output.
fn rule_text(title: &str, id: Option<&str>, rev: u32, hidden: u32) -> String {
    format!("{}\n", doc_text(title, id, rev, hidden))
}

fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// One Sigma document (no trailing newline).
fn doc_text(title: &str, id: Option<&str>, rev: u32, hidden: u32) -> String {
    let s = slug(title);
    let id = id.map(|i| format!("id: {i}\n")).unwrap_or_default();
    let refs: String = (1..=6)
        .map(|k| format!("    - https://{s}.example/{s}/advisory-{k}-{s}\n"))
        .collect();
    let images: String = (1..=5)
        .map(|k| format!("            - '\\{s}-{k}-{s}.exe'\n"))
        .collect();
    format!(
        "title: {title}\n{id}status: test\ndescription: Detects {title} ({s}), revision {rev}.\n\
         references:\n{refs}author: Author of {title}\ndate: 2024-01-02\n\
         logsource:\n    category: process_creation\n    product: windows\n\
         detection:\n    selection:\n        Image|endswith:\n{images}        \
         CommandLine|contains: '{s} {hidden} {s}'\n    condition: selection\n\
         falsepositives:\n    - Administration of {title} ({s})\nlevel: high"
    )
}

/// A rule collection: a global document and two rule documents (document indexes 1 and 2).
fn collection_text(docs: &[(String, Option<String>, u32, u32)]) -> String {
    let mut out = String::from("action: global\ntags:\n    - attack.execution\n");
    for (title, id, rev, hidden) in docs {
        out.push_str("---\n");
        out.push_str(&doc_text(title, id.as_deref(), *rev, *hidden));
        out.push('\n');
    }
    out
}

/// A fixed, valid uuid numbered `n`.
fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// The uuid a rule without a usable id derives from its place (the core issue's rule).
fn derived(source: &str, path: &str, index: u32) -> String {
    sigma_galaxy::merge::derived_uuid(GALAXY, source, path, index).to_string()
}

/// `--source SOURCE --out OUT --state STATE EXTRA…`, which must succeed; its JSON summary.
/// Histories here may remove every rule file: empty sources are allowed.
fn build_into(env: &Env, source: &str, out: &str, state: &str, extra: &[&str]) -> Json {
    let mut args = vec![
        "--source",
        source,
        "--out",
        out,
        "--state",
        state,
        "--allow-empty",
    ];
    args.extend_from_slice(extra);
    env.build(&args)
}

/// The cluster and galaxy files of `out`, as bytes.
fn outputs(env: &Env, out: &str) -> [Vec<u8>; 2] {
    [CLUSTER, GALAXY_FILE].map(|f| std::fs::read(env.path(out).join(f)).unwrap())
}

fn remove_dir(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{}: {e}", path.display()),
        _ => {}
    }
}

/// A clean `--full` build of `source` in fresh `clean`/`clean-state` folders: its summary and files.
fn clean_build(env: &Env, source: &str, extra: &[&str]) -> (Json, [Vec<u8>; 2]) {
    remove_dir(&env.path("clean"));
    remove_dir(&env.path("clean-state"));
    let mut args = extra.to_vec();
    args.push("--full");
    let summary = build_into(env, source, "clean", "clean-state", &args);
    (summary, outputs(env, "clean"))
}

/// Where two texts first differ, with a few lines of context, for assertion messages.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let Some(i) = (0..la.len().max(lb.len())).find(|&i| la.get(i) != lb.get(i)) else {
        return "same lines (line endings differ)".into();
    };
    let from = i.saturating_sub(4);
    let show = |l: &[&str]| l[from.min(l.len())..(i + 3).min(l.len())].join("\n");
    format!(
        "first difference at line {}:\n--- incremental\n{}\n--- clean\n{}",
        i + 1,
        show(&la),
        show(&lb)
    )
}

/// Asserts that two output pairs are byte-identical, showing where they differ.
fn assert_same(got: &[Vec<u8>; 2], want: &[Vec<u8>; 2], context: &str) {
    for (i, name) in [CLUSTER, GALAXY_FILE].iter().enumerate() {
        assert!(
            got[i] == want[i],
            "{context}: {name} differs from a clean build\n{}",
            first_difference(&got[i], &want[i])
        );
    }
}

fn parse(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap()
}

/// Title → uuid of every value of a cluster.
fn uuids(cluster: &Json) -> BTreeMap<String, String> {
    cluster["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap().to_string(),
                v["uuid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The files of the summary's `distrusted` reasons.
fn distrusted(summary: &Json) -> Vec<String> {
    summary["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|r| r["reason"] == "distrusted")
                .map(|r| r["file"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Rule file path → blob id at HEAD (every *.yml and *.yaml file: the default selection).
fn rule_blobs(repo: &Repo) -> BTreeMap<String, String> {
    repo.git(&["ls-tree", "-r", "HEAD"])
        .lines()
        .filter_map(|line| {
            let (meta, path) = line.split_once('\t')?;
            let blob = meta.split(' ').nth(2)?;
            (path.ends_with(".yml") || path.ends_with(".yaml"))
                .then(|| (path.to_string(), blob.to_string()))
        })
        .collect()
}

/// Files of `now` whose content is in no file of `before`: what an incremental build has to parse.
fn new_contents(before: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> usize {
    let known: BTreeSet<&String> = before.values().collect();
    now.values().filter(|b| !known.contains(b)).count()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Files under `dir` (recursively) whose name ends with `suffix` or starts with `prefix`.
fn stray_files(dir: &Path, prefix: &str, suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(stray_files(&entry.path(), prefix, suffix));
        } else {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) || name.ends_with(suffix) {
                out.push(entry.path().display().to_string());
            }
        }
    }
    out
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"));
    cmd.env("NO_COLOR", "1").env_remove("RUST_LOG");
    cmd
}

/// A repository `big` with `n` rules in ten folders (some without ids) at commit A, and commit B where
/// every rule's description changed. Returns (A, B).
fn big_repo(env: &Env, n: u32) -> (Repo, String, String) {
    let mut repo = env.repo("big");
    let write = |repo: &Repo, rev: &str| {
        for i in 0..n {
            let id = (i % 7 != 0).then(|| id(i + 1));
            let extra = format!("modified: 2024-03-{:02}\n", i % 28 + 1);
            let text = rule(&format!("Big rule {i}"), id.as_deref(), &extra).replace(
                "description: Detects",
                &format!("description: {rev} detects"),
            );
            repo.write(&format!("rules/d{}/rule{i:05}.yml", i % 10), text);
        }
    };
    write(&repo, "First");
    let a = repo.commit("many rules");
    write(&repo, "Second");
    let b = repo.commit("every rule edited");
    (repo, a, b)
}

// ---------------------------------------------------------------------------------------------------
// 1. UUID stability
// ---------------------------------------------------------------------------------------------------

const DUP: &str = "5d0b1a2c-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
const ANCHOR: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";

fn pair_docs(rev1: u32, rev2: u32) -> String {
    collection_text(&[
        ("Pair One".into(), None, rev1, 0),
        ("Pair Two".into(), None, rev2, 0),
    ])
}

#[test]
fn idless_rules_keep_their_uuids_through_edits_renames_and_moves() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    // (title, path, document index) of every value without a usable id of its own, at the first commit.
    let first_places: [(&str, &str, u32); 8] = [
        ("Alpha", "windows/alpha.yml", 0),
        ("Beta", "windows/beta.yml", 0),
        ("Gamma", "windows/gamma.yml", 0),
        ("Delta", "windows/delta.yml", 0),
        ("Epsilon", "windows/epsilon.yml", 0),
        ("Pair One", "windows/pair.yml", 1),
        ("Pair Two", "windows/pair.yml", 2),
        ("Dup Second", "windows/dup-second.yml", 0),
    ];
    for (title, path, _) in &first_places[..5] {
        repo.write(path, rule_text(title, None, 0, 0));
    }
    repo.write("windows/pair.yml", pair_docs(0, 0));
    repo.write(
        "windows/dup-first.yml",
        rule_text("Dup First", Some(DUP), 0, 0),
    );
    repo.write(
        "windows/dup-second.yml",
        rule_text("Dup Second", Some(DUP), 0, 0),
    );
    repo.write(
        "windows/anchor.yml",
        rule_text("Anchor", Some(ANCHOR), 0, 0),
    );
    let c1 = repo.commit("first rules");

    let build = |label: &str| -> BTreeMap<String, String> {
        let s = build_into(&env, "rules", "out", "state", &[]);
        assert_eq!(s["values"], 10, "{label}: {s:#}");
        uuids(&env.json(&format!("out/{CLUSTER}")))
    };
    let first = build("first commit");
    let first_files = outputs(&env, "out");
    for (title, path, index) in &first_places {
        assert_eq!(
            first[*title],
            derived("rules", path, *index),
            "{title}: derived uuid"
        );
    }
    assert_eq!(first["Dup First"], DUP);
    assert_eq!(first["Anchor"], ANCHOR);
    let distinct: BTreeSet<&String> = first.values().collect();
    assert_eq!(distinct.len(), first.len(), "uuids are unique: {first:#?}");

    // Each step: what changes, and where each id-less value ends up (title, path, index).
    let check = |label: &str, now: &BTreeMap<String, String>| {
        assert_eq!(now.len(), first.len(), "{label}: {now:#?}");
        for (title, uuid) in &first {
            assert_eq!(
                now.get(title),
                Some(uuid),
                "{label}: {title} changed its uuid (first {uuid})"
            );
        }
    };

    // Edits in place: a rule, a collection's second document, the duplicate.
    repo.write("windows/alpha.yml", rule_text("Alpha", None, 1, 0));
    repo.write("windows/pair.yml", pair_docs(0, 1));
    repo.write(
        "windows/dup-second.yml",
        rule_text("Dup Second", Some(DUP), 1, 1),
    );
    repo.commit("edits in place");
    check("edits in place", &build("edits"));

    // Pure renames (git mv) in the same folder.
    repo.rename("windows/alpha.yml", "windows/alpha-renamed.yml");
    repo.rename("windows/pair.yml", "windows/pair-renamed.yml");
    repo.rename("windows/dup-second.yml", "windows/dup-second-renamed.yml");
    repo.commit("renames");
    check("pure renames", &build("renames"));

    // Renames with edits.
    repo.rename("windows/beta.yml", "windows/beta-v2.yml");
    repo.write("windows/beta-v2.yml", rule_text("Beta", None, 2, 0));
    repo.rename("windows/pair-renamed.yml", "windows/pair-v3.yml");
    repo.write("windows/pair-v3.yml", pair_docs(3, 1));
    repo.commit("renames with edits");
    check("renames with edits", &build("renames with edits"));

    // Moves to other folders, unchanged.
    repo.rename("windows/gamma.yml", "linux/gamma.yml");
    repo.rename("windows/dup-second-renamed.yml", "zlegacy/dup-second.yml");
    repo.commit("moves");
    check("moves", &build("moves"));

    // Moves with edits, one of them a second move of an already renamed rule.
    repo.rename("windows/delta.yml", "cloud/aws/delta.yml");
    repo.write("cloud/aws/delta.yml", rule_text("Delta", None, 4, 4));
    repo.rename("windows/alpha-renamed.yml", "linux/deep/alpha.yml");
    repo.write("linux/deep/alpha.yml", rule_text("Alpha", None, 5, 0));
    repo.write("README.md", "moved things around\n");
    repo.commit("moves with edits");
    check("moves with edits", &build("moves with edits"));

    // A rewritten history whose old tip is garbage-collected: no tree diff is possible, an unchanged
    // moved file is still recognised by its content.
    repo.write("windows/epsilon.yml", rule_text("Epsilon", None, 6, 0));
    repo.commit("to be rewritten");
    check("edit before a rewrite", &build("before rewrite"));
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    repo.write("windows/epsilon.yml", rule_text("Epsilon", None, 6, 0));
    repo.rename("windows/epsilon.yml", "linux/epsilon.yml");
    repo.commit("rewritten: epsilon moved too");
    repo.git(&["reflog", "expire", "--expire=now", "--all"]);
    repo.git(&["gc", "-q", "--prune=now"]);
    let s = build_into(&env, "rules", "out", "state", &[]);
    let last = uuids(&env.json(&format!("out/{CLUSTER}")));
    check("moved across a force-push", &last);
    assert!(
        s["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"] == "ledger-identity" && r["why"] == "rewritten"),
        "a rewritten history says the ledger decides: {s:#}"
    );

    // The test can fail: the places above really changed (a uuid derived from the current path is
    // another one), and a clean build on a fresh state gives the first uuids all the same, from where
    // each file first appeared on the history.
    let final_places: [(&str, &str, u32); 8] = [
        ("Alpha", "linux/deep/alpha.yml", 0),
        ("Beta", "windows/beta-v2.yml", 0),
        ("Gamma", "linux/gamma.yml", 0),
        ("Delta", "cloud/aws/delta.yml", 0),
        ("Epsilon", "linux/epsilon.yml", 0),
        ("Pair One", "windows/pair-v3.yml", 1),
        ("Pair Two", "windows/pair-v3.yml", 2),
        ("Dup Second", "zlegacy/dup-second.yml", 0),
    ];
    clean_build(&env, "rules", &[]);
    let clean = uuids(&env.json(&format!("clean/{CLUSTER}")));
    for (title, path, index) in &final_places {
        assert_ne!(
            derived("rules", path, *index),
            last[*title],
            "{title}: not the uuid of its current path"
        );
        assert_eq!(
            clean[*title], last[*title],
            "{title}: a clean build gives the uuid of where it first appeared"
        );
    }

    // `--full` with the same state keeps the ledger: identity is not cache.
    let full = build_into(&env, "rules", "out", "state", &["--full"]);
    assert_eq!(
        full["parsed"], 9,
        "--full parses every file again: {full:#}"
    );
    check(
        "--full with the same state",
        &uuids(&env.json(&format!("out/{CLUSTER}"))),
    );

    // A fresh state folder on the first commit gives exactly the derived uuids, byte for byte the same
    // output as the first build.
    let fresh = build_into(&env, &format!("rules#{c1}"), "fresh", "fresh-state", &[]);
    assert_eq!(fresh["parsed"], 9);
    assert_same(
        &outputs(&env, "fresh"),
        &first_files,
        "fresh state on the first commit",
    );
}

// ---------------------------------------------------------------------------------------------------
// 2. Incremental equals clean
// ---------------------------------------------------------------------------------------------------

/// A rule with its own id, numbered `n`.
fn id_rule(n: u32, rev: u32, hidden: u32) -> String {
    rule_text(&format!("Rule {n}"), Some(&id(n)), rev, hidden)
}

fn id_pair(n: u32, rev: u32) -> String {
    collection_text(&[
        (format!("Pair {n} one"), Some(id(n)), rev, 0),
        (format!("Pair {n} two"), Some(id(n + 1)), 0, rev),
    ])
}

/// What the last incremental build saw and wrote.
#[derive(Clone)]
struct Built {
    blobs: BTreeMap<String, String>,
    summary: Json,
    files: [Vec<u8>; 2],
}

/// Commits, builds `rules` incrementally (out, state) and cleanly, and checks that both are the same,
/// that only new content was parsed and that a rerun does nothing.
fn step_and_compare(env: &Env, repo: &mut Repo, built: &mut Option<Built>, label: &str) -> Json {
    repo.commit(label);
    let blobs = rule_blobs(repo);
    let s = build_into(env, "rules", "out", "state", &[]);
    let files = outputs(env, "out");
    let (clean, clean_files) = clean_build(env, "rules", &[]);
    assert_same(&files, &clean_files, label);
    for k in ["values", "version", "warnings"] {
        assert_eq!(s[k], clean[k], "{label}: {k}");
    }
    let expected = match built {
        Some(b) => new_contents(&b.blobs, &blobs),
        None => blobs.len(),
    };
    assert_eq!(s["parsed"], expected, "{label}: parsed {s:#}");
    assert_eq!(s["reused"], blobs.len() - expected, "{label}: reused");
    assert!(distrusted(&s).is_empty(), "{label}: {s:#}");
    // The same commit again: nothing to do.
    let again = build_into(env, "rules", "out", "state", &[]);
    assert_eq!(again["wrote"], false, "{label}: no-op rerun {again:#}");
    assert_eq!(again["parsed"], 0, "{label}: no-op rerun");
    assert_eq!(again["version"], s["version"], "{label}: no-op rerun");
    assert!(
        outputs(env, "out") == files,
        "{label}: no-op rerun changed the files"
    );
    *built = Some(Built {
        blobs,
        summary: s.clone(),
        files,
    });
    s
}

#[test]
fn incremental_builds_equal_clean_builds_and_parse_only_new_content() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/example/rules.git",
    ]);
    let mut built: Option<Built> = None;
    for n in 1..=6 {
        repo.write(&format!("windows/rule{n}.yml"), id_rule(n, 0, 0));
    }
    repo.write("windows/pair.yml", id_pair(100, 0));
    repo.write("README.md", "rules\n");
    let s = step_and_compare(&env, &mut repo, &mut built, "first");
    assert_eq!(s["values"], 8);
    assert!(
        env.read(&format!("out/{CLUSTER}"))
            .contains("https://github.com/example/rules/blob/"),
        "links are on, so last-change permalinks are compared too"
    );

    repo.write("windows/rule1.yml", id_rule(1, 1, 0));
    repo.write("windows/rule2.yml", id_rule(2, 0, 1));
    repo.write("linux/rule7.yml", id_rule(7, 0, 0));
    let s = step_and_compare(&env, &mut repo, &mut built, "edit, hidden edit, add");
    assert_eq!(s["parsed"], 3);

    repo.remove("windows/rule3.yml");
    let s = step_and_compare(&env, &mut repo, &mut built, "delete");
    assert_eq!(s["parsed"], 0);
    assert_eq!(s["removed"], 1);

    repo.rename("windows/rule4.yml", "windows/rule4-renamed.yml");
    let s = step_and_compare(&env, &mut repo, &mut built, "pure rename");
    assert_eq!(s["parsed"], 0, "a pure rename parses nothing");

    repo.rename("windows/rule5.yml", "linux/rule5.yml");
    repo.write("linux/rule5.yml", id_rule(5, 1, 0));
    let s = step_and_compare(&env, &mut repo, &mut built, "move with an edit");
    assert_eq!(s["parsed"], 1);

    // A commit that touches no rule: same version, same bytes, nothing written.
    let Built {
        summary: before,
        files: before_files,
        ..
    } = built.clone().unwrap();
    repo.write("README.md", "rules, documented\n");
    let s = step_and_compare(&env, &mut repo, &mut built, "README only");
    assert_eq!(s["wrote"], false, "README-only commit: {s:#}");
    assert_eq!(s["parsed"], 0);
    assert_eq!(s["version"], before["version"]);
    assert_eq!(
        outputs(&env, "out"),
        before_files,
        "README-only commit changed the files"
    );

    // Back to content seen long ago (not in the cache, which holds the last commit's files only), a
    // collection moved and edited, a .yaml file.
    repo.write("windows/rule1.yml", id_rule(1, 0, 0));
    repo.rename("windows/pair.yml", "cloud/aws/pair.yml");
    repo.write("cloud/aws/pair.yml", id_pair(100, 1));
    repo.write("cloud/rule8.yaml", id_rule(8, 0, 0));
    let s = step_and_compare(
        &env,
        &mut repo,
        &mut built,
        "revert, collection moved and edited, .yaml",
    );
    assert_eq!(s["parsed"], 3);

    // A copy (same content under a second path) parses nothing; a broken file warns in both builds.
    std::fs::copy(
        repo.path.join("cloud/rule8.yaml"),
        repo.path.join("windows/copy.yml"),
    )
    .unwrap();
    repo.write(
        "windows/broken.yml",
        "title: Broken\ndetection:\n  sel: [unclosed\n",
    );
    let s = step_and_compare(&env, &mut repo, &mut built, "copy and a broken file");
    assert_eq!(s["parsed"], 1);
    assert!(!s["warnings"].as_array().unwrap().is_empty());

    // Everything in one folder deleted, one rule edited.
    repo.remove("linux/rule5.yml").remove("linux/rule7.yml");
    repo.write("windows/rule6.yml", id_rule(6, 3, 0));
    let s = step_and_compare(&env, &mut repo, &mut built, "folder deleted");
    assert_eq!(s["removed"], 2);

    // A rule left as it is whose link's target changes id is formatted afresh, with the details its
    // record left in the parse cache's files (read back, not held in memory), as a clean build has them.
    repo.write(
        "windows/linked.yml",
        format!(
            "{}\nrelated:\n    - id: {}\n      type: derived\n",
            doc_text("Linked", Some(&id(50)), 0, 0),
            id(6)
        ),
    );
    step_and_compare(&env, &mut repo, &mut built, "a rule linked to another");
    let linked = |env: &Env| by_title(&env.json(&format!("out/{CLUSTER}")))["Linked"].clone();
    let before = linked(&env);
    assert_eq!(
        before["related"].as_array().map(Vec::len),
        Some(1),
        "{before:#}"
    );
    repo.write(
        "windows/rule6.yml",
        rule_text("Rule 6", Some(&id(60)), 0, 0),
    );
    let s = step_and_compare(&env, &mut repo, &mut built, "the link's target changes id");
    assert_eq!(s["parsed"], 1, "only the target is parsed");
    let after = linked(&env);
    assert!(after.get("related").is_none(), "{after:#}");
    assert!(
        after["description"]
            .as_str()
            .is_some_and(|d| d.contains("Linked"))
            && after["description"] == before["description"]
            && after["meta"]["refs"] == before["meta"]["refs"],
        "{after:#}"
    );
}

/// A history in which no commit ever had a rule file: the version of the (empty) cluster is the same
/// whether built incrementally or clean.
#[test]
fn a_history_without_rule_files_builds_incrementally_as_clean() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    repo.write("README.md", "one\n");
    repo.commit("docs");
    build_into(&env, "rules", "out", "state", &[]);
    repo.write("README.md", "two\n");
    repo.commit("more docs");
    let s = build_into(&env, "rules", "out", "state", &[]);
    let (clean, clean_files) = clean_build(&env, "rules", &[]);
    assert_eq!(
        s["version"], clean["version"],
        "incremental {s:#}\nclean {clean:#}"
    );
    assert_same(&outputs(&env, "out"), &clean_files, "no rule files ever");
}

// ---------------------------------------------------------------------------------------------------
// 3. Property test: random histories
// ---------------------------------------------------------------------------------------------------

const FOLDERS: [&str; 3] = ["rules/windows", "rules/linux", "rules/cloud/aws"];

#[derive(Debug, Clone)]
enum Op {
    Add {
        id: bool,
        folder: usize,
        collection: bool,
    },
    Edit {
        pick: usize,
        visible: bool,
    },
    Rename {
        pick: usize,
        edit: bool,
    },
    Move {
        pick: usize,
        folder: usize,
        edit: bool,
    },
    Delete {
        pick: usize,
    },
    Readme,
}

/// One commit: optionally first a force-push back to an earlier commit of the current line, then ops.
#[derive(Debug, Clone)]
struct Step {
    force_push: Option<usize>,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq)]
struct Doc {
    title: String,
    id: Option<String>,
    rev: u32,
    hidden: u32,
}

/// A rule file of the model: one document, or a collection of two (indexes 1 and 2).
#[derive(Debug, Clone, PartialEq)]
struct ModelFile {
    docs: Vec<Doc>,
    collection: bool,
}

impl ModelFile {
    fn text(&self) -> String {
        if self.collection {
            let docs: Vec<_> = self
                .docs
                .iter()
                .map(|d| (d.title.clone(), d.id.clone(), d.rev, d.hidden))
                .collect();
            collection_text(&docs)
        } else {
            let d = &self.docs[0];
            rule_text(&d.title, d.id.as_deref(), d.rev, d.hidden)
        }
    }

    /// (document index, doc) of each document.
    fn indexed(&self) -> impl Iterator<Item = (u32, &Doc)> {
        let base = u32::from(self.collection);
        (base..).zip(&self.docs)
    }
}

type Tree = BTreeMap<String, ModelFile>;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 0..FOLDERS.len(), prop::bool::weighted(0.25))
            .prop_map(|(id, folder, collection)| Op::Add { id, folder, collection }),
        2 => (0..64usize, any::<bool>()).prop_map(|(pick, visible)| Op::Edit { pick, visible }),
        3 => (0..64usize, any::<bool>()).prop_map(|(pick, edit)| Op::Rename { pick, edit }),
        3 => (0..64usize, 0..FOLDERS.len(), any::<bool>())
            .prop_map(|(pick, folder, edit)| Op::Move { pick, folder, edit }),
        1 => (0..64usize).prop_map(|pick| Op::Delete { pick }),
        1 => Just(Op::Readme),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::option::weighted(0.15, 0..16usize),
        prop::collection::vec(op(), 1..=3),
    )
        .prop_map(|(force_push, ops)| Step { force_push, ops })
}

/// A random history being replayed: the repository, the model of its tree and the commit line.
struct Replay {
    repo: Repo,
    ids_only: bool,
    tree: Tree,
    /// The current line of commits: (commit, tree at it).
    line: Vec<(String, Tree)>,
    next: u32,
}

impl Replay {
    fn pick(&self, pick: usize) -> Option<String> {
        (!self.tree.is_empty()).then(|| {
            self.tree
                .keys()
                .nth(pick % self.tree.len())
                .unwrap()
                .clone()
        })
    }

    fn write(&self, path: &str) {
        self.repo.write(path, self.tree[path].text());
    }

    fn bump(&mut self, path: &str, which: usize, visible: bool) {
        let file = self.tree.get_mut(path).unwrap();
        let n = file.docs.len();
        let doc = &mut file.docs[which % n];
        if visible {
            doc.rev += 1;
        } else {
            doc.hidden += 1;
        }
        self.write(path);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Add {
                id: with_id,
                folder,
                collection,
            } => {
                let n = self.next;
                self.next += 2;
                let with_id = with_id || self.ids_only;
                let ext = if n.is_multiple_of(3) { "yaml" } else { "yml" };
                let path = format!("{}/r{n}.{ext}", FOLDERS[folder]);
                let doc = |k: u32, title: String| Doc {
                    title,
                    id: with_id.then(|| id(n + k)),
                    rev: 0,
                    hidden: 0,
                };
                let docs = if collection {
                    vec![
                        doc(0, format!("Rule {n} one")),
                        doc(1, format!("Rule {n} two")),
                    ]
                } else {
                    vec![doc(0, format!("Rule {n}"))]
                };
                self.tree
                    .insert(path.clone(), ModelFile { docs, collection });
                self.write(&path);
            }
            Op::Edit { pick, visible } => {
                if let Some(path) = self.pick(pick) {
                    self.bump(&path, pick / 7, visible);
                }
            }
            Op::Rename { pick, edit } => {
                if let Some(path) = self.pick(pick) {
                    let (dir, _) = path.rsplit_once('/').unwrap();
                    let n = self.next;
                    self.next += 2;
                    let to = format!("{dir}/renamed{n}.yml");
                    self.rename(&path, &to, edit, pick);
                }
            }
            Op::Move { pick, folder, edit } => {
                if let Some(path) = self.pick(pick) {
                    let (dir, name) = path.rsplit_once('/').unwrap();
                    let mut folder = FOLDERS[folder];
                    if folder == dir {
                        let i = FOLDERS.iter().position(|f| *f == dir).unwrap();
                        folder = FOLDERS[(i + 1) % FOLDERS.len()];
                    }
                    self.rename(&path, &format!("{folder}/{name}"), edit, pick);
                }
            }
            Op::Delete { pick } => {
                if let Some(path) = self.pick(pick) {
                    // Added or edited in this same commit: stage first, then remove.
                    self.repo.git(&["add", "-A"]);
                    self.repo.git(&["rm", "-q", "-f", &path]);
                    self.tree.remove(&path);
                }
            }
            Op::Readme => {
                let n = self.next;
                self.next += 2;
                self.repo.write("README.md", format!("readme {n}\n"));
            }
        }
    }

    fn rename(&mut self, from: &str, to: &str, edit: bool, pick: usize) {
        // `git mv` wants a tracked file: it may have been added in this same commit.
        self.repo.git(&["add", "-A"]);
        self.repo.rename(from, to);
        let file = self.tree.remove(from).unwrap();
        self.tree.insert(to.to_string(), file);
        if edit {
            self.bump(to, pick / 5, true);
        }
    }

    /// Title → (path, index, own id) of every document.
    fn places(&self) -> BTreeMap<String, (String, u32, Option<String>)> {
        self.tree
            .iter()
            .flat_map(|(path, f)| {
                f.indexed()
                    .map(|(i, d)| (d.title.clone(), (path.clone(), i, d.id.clone())))
            })
            .collect()
    }
}

/// The cluster with the uuids of id-less values (by title, from `idless`) left out.
fn without_ledger_uuids(cluster: &[u8], idless: &BTreeSet<String>) -> Json {
    let mut json = parse(cluster);
    for v in json["values"].as_array_mut().unwrap() {
        if idless.contains(v["value"].as_str().unwrap()) {
            v.as_object_mut().unwrap().remove("uuid");
        }
    }
    json
}

fn replay_history(ids_only: bool, steps: &[Step]) {
    let env = Env::new();
    let mut repo = env.repo("repo");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/example/rules.git",
    ]);
    // The root holds one rule: a history that never had any rule file is a case of its own (see
    // `a_history_without_rule_files_builds_incrementally_as_clean`).
    let seed = ModelFile {
        docs: vec![Doc {
            title: "Seed".into(),
            id: Some(id(0)),
            rev: 0,
            hidden: 0,
        }],
        collection: false,
    };
    repo.write("README.md", "readme\n");
    repo.write("rules/seed.yml", seed.text());
    let root = repo.commit("root");
    let tree = Tree::from([("rules/seed.yml".to_string(), seed)]);
    let mut r = Replay {
        repo,
        ids_only,
        tree: tree.clone(),
        line: vec![(root, tree)],
        next: 1,
    };
    // What the previous build saw: blobs, title → uuid, and the tree model.
    let mut prev_blobs: Option<BTreeMap<String, String>> = None;
    let mut prev_uuids: BTreeMap<String, String> = BTreeMap::new();
    let mut rewritten = false;
    for (k, step) in steps.iter().enumerate() {
        let label = format!("step {k} of {steps:?}");
        let old_titles: BTreeSet<String> = r.places().into_keys().collect();
        let mut base = None;
        if let Some(back) = step.force_push
            && r.line.len() > 1
        {
            let target = r.line.len() - 2 - back % (r.line.len() - 1);
            let (commit, tree) = r.line[target].clone();
            r.repo.git(&["reset", "-q", "--hard", &commit]);
            r.line.truncate(target + 1);
            r.tree = tree.clone();
            base = Some(tree);
        }
        for op in &step.ops {
            r.apply(op);
        }
        // After a force-push the new commit must change rule files, or its clock could be older than
        // the version already published (which, by design, never goes back).
        if base.as_ref() == Some(&r.tree) {
            r.apply(&Op::Add {
                id: false,
                folder: 0,
                collection: false,
            });
        }
        let commit = r.repo.commit(&format!("step {k}"));
        r.line.push((commit, r.tree.clone()));

        let blobs = rule_blobs(&r.repo);
        let s = build_into(&env, "repo", "inc", "inc-state", &[]);
        let files = outputs(&env, "inc");
        let (clean, clean_files) = clean_build(&env, "repo", &[]);
        let places = r.places();
        let idless: BTreeSet<String> = places
            .iter()
            .filter(|(_, (_, _, id))| id.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        // Until a force-push, identities come from the history, which a clean build on a fresh state
        // walks the same: byte for byte the same output, id-less uuids included.
        rewritten |= base.is_some();
        if idless.is_empty() || !rewritten {
            assert_same(&files, &clean_files, &label);
        } else {
            assert_eq!(files[1], clean_files[1], "{label}: galaxy file");
            assert_eq!(
                without_ledger_uuids(&files[0], &idless),
                without_ledger_uuids(&clean_files[0], &idless),
                "{label}: cluster (id-less uuids left out)"
            );
        }
        assert_eq!(s["version"], clean["version"], "{label}");
        assert_eq!(s["warnings"], clean["warnings"], "{label}");
        let expected = prev_blobs
            .as_ref()
            .map_or(blobs.len(), |b| new_contents(b, &blobs));
        assert_eq!(s["parsed"], expected, "{label}: parsed {s:#}");
        assert!(distrusted(&s).is_empty(), "{label}: {s:#}");

        let now = uuids(&parse(&files[0]));
        assert_eq!(now.len(), places.len(), "{label}: one value per document");
        let distinct: BTreeSet<&String> = now.values().collect();
        assert_eq!(distinct.len(), now.len(), "{label}: unique uuids");
        for (title, (path, index, own)) in &places {
            let uuid = &now[title];
            match own {
                Some(own) => assert_eq!(uuid, own, "{label}: {title} has its own id"),
                None if base.is_none() && !old_titles.contains(title) => {
                    assert_eq!(
                        uuid,
                        &derived("rules", path, *index),
                        "{label}: new {title}"
                    );
                }
                // Within one line of history, an id-less rule keeps its uuid.
                None if base.is_none() => {
                    assert_eq!(
                        Some(uuid),
                        prev_uuids.get(title),
                        "{label}: {title} at {path}"
                    );
                }
                None => {}
            }
        }

        let again = build_into(&env, "repo", "inc", "inc-state", &[]);
        assert_eq!(again["wrote"], false, "{label}: no-op rerun");
        assert_eq!(again["parsed"], 0, "{label}: no-op rerun");
        prev_blobs = Some(blobs);
        prev_uuids = now;
    }
    // MISP refuses an empty cluster, so only a non-empty one can be validated.
    if !r.tree.is_empty() {
        let check = env.run(&[
            "validate",
            &format!("inc/{CLUSTER}"),
            &format!("inc/{GALAXY_FILE}"),
        ]);
        assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        max_shrink_iters: 24,
        ..ProptestConfig::default()
    })]

    /// Random histories (adds with and without ids, collections, edits, renames, moves, deletes,
    /// README-only changes, force-pushes): after every commit the incremental build equals a clean one.
    #[test]
    fn random_histories_build_incrementally_as_clean(
        ids_only in prop::bool::weighted(0.3),
        steps in prop::collection::vec(step(), 2..=8),
    ) {
        replay_history(ids_only, &steps);
    }
}

// ---------------------------------------------------------------------------------------------------
// 4. Robustness: a damaged state
// ---------------------------------------------------------------------------------------------------

/// Ways to damage a state file: (name, damage).
type Damage = (&'static str, fn(&Path));

fn damages() -> Vec<Damage> {
    fn truncate_half(p: &Path) {
        let b = std::fs::read(p).unwrap();
        std::fs::write(p, &b[..b.len() / 2]).unwrap();
    }
    fn truncate_after_header(p: &Path) {
        let b = std::fs::read(p).unwrap();
        let nl = b.iter().position(|&c| c == b'\n').unwrap();
        std::fs::write(p, &b[..=nl]).unwrap();
    }
    fn empty(p: &Path) {
        std::fs::write(p, b"").unwrap();
    }
    fn flip_middle(p: &Path) {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x04;
        std::fs::write(p, b).unwrap();
    }
    fn flip_last(p: &Path) {
        let mut b = std::fs::read(p).unwrap();
        let last = b.len() - 2;
        b[last] ^= 0x01;
        std::fs::write(p, b).unwrap();
    }
    fn split_header(p: &Path) -> (String, Vec<u8>) {
        let b = std::fs::read(p).unwrap();
        let nl = b.iter().position(|&c| c == b'\n').unwrap();
        (
            String::from_utf8(b[..nl].to_vec()).unwrap(),
            b[nl + 1..].to_vec(),
        )
    }
    fn other_format(p: &Path) {
        let (header, body) = split_header(p);
        let mut parts: Vec<String> = header.split(' ').map(str::to_string).collect();
        parts[1] = (parts[1].parse::<u32>().unwrap() + 1).to_string();
        let mut out = format!("{}\n", parts.join(" ")).into_bytes();
        out.extend_from_slice(&body);
        std::fs::write(p, out).unwrap();
    }
    fn foreign_body(p: &Path) {
        // A header that checks out, over a body of another shape.
        let (header, _) = split_header(p);
        let body = br#"{"something": ["else"]}"#;
        let parts: Vec<&str> = header.split(' ').collect();
        let sum = sigma_galaxy::state::checksum(body);
        let mut out = format!("{} {} {sum}\n", parts[0], parts[1]).into_bytes();
        out.extend_from_slice(body);
        std::fs::write(p, out).unwrap();
    }
    fn garbage(p: &Path) {
        let mut x: u32 = 0x9e37_79b9;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        std::fs::write(p, bytes).unwrap();
    }
    vec![
        ("truncated to half", truncate_half),
        ("truncated after the header", truncate_after_header),
        ("emptied", empty),
        ("a byte flipped in the middle", flip_middle),
        ("a byte flipped near the end", flip_last),
        ("another format number", other_format),
        ("a valid header over a foreign body", foreign_body),
        ("garbage", garbage),
    ]
}

/// A repository whose two commits differ by edits and an addition but no rename, with ATT&CK links, so
/// that every state file (attack.bin too) exists and a clean build gives the same bytes.
fn damage_fixture(env: &Env) -> (String, String) {
    let attack = serde_json::json!({"values": [
        {"uuid": "00000000-0000-4000-8000-0000000000a1", "value": "T", "meta": {"external_id": "T1059.001"}},
    ]});
    env.write("attack/mitre-attack-pattern.json", &attack.to_string());
    let mut repo = env.repo("rules");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/example/rules.git",
    ]);
    let tags = "tags:\n    - attack.t1059.001\n";
    for i in 0..6 {
        let own = (i % 2 == 0).then(|| id(i + 1));
        repo.write(
            &format!("r{i}.yml"),
            rule(&format!("R{i}"), own.as_deref(), tags),
        );
    }
    let c1 = repo.commit("one");
    repo.write(
        "r1.yml",
        rule(
            "R1",
            None,
            "tags:\n    - attack.t1059.001\nmodified: 2024-06-01\n",
        ),
    );
    repo.write("r2.yml", rule("R2 edited", Some(&id(3)), ""));
    repo.write("sub/r9.yml", rule("R9", None, tags));
    let c2 = repo.commit("two");
    (c1, c2)
}

/// For every state file and every kind of damage: the next build (of a newer commit, and of the same
/// commit) exits 0, reports the file as distrusted and writes exactly what a clean build writes.
#[test]
fn a_damaged_state_file_is_reported_and_the_build_stays_exact() {
    let env = Env::new();
    let (c1, c2) = damage_fixture(&env);
    let src = |c: &str| format!("rules#{c}");
    let attack: &[&str] = &["--attack-clusters", "attack"];
    let (_, clean2) = clean_build(&env, &src(&c2), attack);
    let source2 = src(&c2);
    let total2 = rule_blobs_at(&env, &c2);

    // Control: an undamaged state is used (and the test below could fail).
    remove_dir(&env.path("out"));
    remove_dir(&env.path("state"));
    build_into(&env, &src(&c1), "out", "state", attack);
    // The same file (inode) with the same bytes: an unchanged ATT&CK index is not written again.
    let attack_file = || {
        use std::os::unix::fs::MetadataExt as _;
        let path = state_path(&env, "attack.bin");
        let inode = std::fs::metadata(&path).expect("attack.bin").ino();
        (inode, std::fs::read(&path).expect("attack.bin"))
    };
    let before = attack_file();
    let s = build_into(&env, &src(&c2), "out", "state", attack);
    assert_eq!(attack_file(), before, "attack.bin is kept as it was");
    assert!(distrusted(&s).is_empty());
    assert!(s["parsed"].as_u64().unwrap() < total2 as u64, "{s:#}");
    for f in STATE_FILES {
        assert!(state_path(&env, f).is_file(), "{f} is written");
    }

    let mut failures = Vec::new();
    for file in STATE_FILES {
        for (what, damage) in damages() {
            let label = format!("{file} {what}");
            remove_dir(&env.path("out"));
            remove_dir(&env.path("state"));
            build_into(&env, &src(&c1), "out", "state", attack);
            damage(&state_path(&env, file));
            let mut args = vec!["build", "--json", "--source", &source2];
            args.extend(["--out", "out", "--state", "state"]);
            args.extend_from_slice(attack);
            let run = env.run(&args);
            if run.code != 0 {
                failures.push(format!("{label}: exit {}: {}", run.code, run.stderr.trim()));
                continue;
            }
            let s = run.json();
            let reported = distrusted(&s);
            if !reported.iter().any(|f| is_state_file(f, file)) || reported.len() != 1 {
                failures.push(format!("{label}: distrusted {reported:?}"));
            }
            if outputs(&env, "out") != clean2 {
                failures.push(format!("{label}: output differs from a clean build"));
            }
            if file == SHARD && s["parsed"] == 0 {
                failures.push(format!(
                    "{label}: the damaged shard's files were not parsed again"
                ));
            }
            // The state was rewritten whole: the next run trusts it and has nothing to do.
            let again = build_into(&env, &src(&c2), "out", "state", attack);
            if !distrusted(&again).is_empty() || again["wrote"] != false {
                failures.push(format!("{label}: rerun {again}"));
            }
        }
    }
    assert_no_failures(&failures);
}

/// The rule files at `commit` of the `rules` repository.
fn rule_blobs_at(env: &Env, commit: &str) -> usize {
    let out = Command::new("git")
        .args(["ls-tree", "-r", "--name-only", commit])
        .current_dir(env.path("rules"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(".yml") || l.ends_with(".yaml"))
        .count()
}

/// The same damage, but the next build is of the commit already built (a no-op if the state were
/// intact): the damaged file is still reported in the JSON summary, and the output is still exact.
#[test]
fn a_damaged_state_file_is_reported_even_when_the_commit_is_unchanged() {
    let env = Env::new();
    let (c1, _) = damage_fixture(&env);
    let source = format!("rules#{c1}");
    let attack: &[&str] = &["--attack-clusters", "attack"];
    let (_, clean1) = clean_build(&env, &source, attack);
    let mut failures = Vec::new();
    for file in STATE_FILES {
        for (what, damage) in damages() {
            let label = format!("{file} {what}");
            remove_dir(&env.path("out"));
            remove_dir(&env.path("state"));
            build_into(&env, &source, "out", "state", attack);
            damage(&state_path(&env, file));
            let mut args = vec!["build", "--json", "--source", &source];
            args.extend(["--out", "out", "--state", "state"]);
            args.extend_from_slice(attack);
            let run = env.run(&args);
            if run.code != 0 {
                failures.push(format!("{label}: exit {}: {}", run.code, run.stderr.trim()));
                continue;
            }
            if !distrusted(&run.json())
                .iter()
                .any(|f| is_state_file(f, file))
            {
                failures.push(format!("{label}: not in the summary's reasons"));
            }
            if outputs(&env, "out") != clean1 {
                failures.push(format!("{label}: output differs from a clean build"));
            }
            let again = env.run(&args);
            if !again.stderr.is_empty() && again.stderr.contains("was not used") {
                failures.push(format!(
                    "{label}: still distrusted on the next run (state not repaired)"
                ));
            }
        }
    }
    assert_no_failures(&failures);
}

/// Half of the state files deleted (every way of choosing two of the four): a missing file is simply
/// empty, and the next build is exact.
#[test]
fn deleting_state_files_falls_back_to_an_exact_build() {
    let env = Env::new();
    let (c1, c2) = damage_fixture(&env);
    let attack: &[&str] = &["--attack-clusters", "attack"];
    for c in [&c2, &c1] {
        let source = format!("rules#{c}");
        let (_, clean) = clean_build(&env, &source, attack);
        for i in 0..STATE_FILES.len() {
            for j in i + 1..STATE_FILES.len() {
                remove_dir(&env.path("out"));
                remove_dir(&env.path("state"));
                build_into(&env, &format!("rules#{c1}"), "out", "state", attack);
                std::fs::remove_file(state_path(&env, STATE_FILES[i])).unwrap();
                std::fs::remove_file(state_path(&env, STATE_FILES[j])).unwrap();
                let s = build_into(&env, &source, "out", "state", attack);
                let label = format!(
                    "{} and {} deleted, building {c}",
                    STATE_FILES[i], STATE_FILES[j]
                );
                assert!(distrusted(&s).is_empty(), "{label}: {s:#}");
                assert_same(&outputs(&env, "out"), &clean, &label);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// 5. A run killed mid-write
// ---------------------------------------------------------------------------------------------------

/// Checks that `out` holds, for each file, one of the complete versions in `allowed` (or nothing at all
/// when `may_be_missing`); returns which version each file is (index into `allowed`).
fn complete_output(
    env: &Env,
    out: &str,
    allowed: &[&[Vec<u8>; 2]],
    values: usize,
    label: &str,
) -> Vec<Option<usize>> {
    [CLUSTER, GALAXY_FILE]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let path = env.path(out).join(name);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => panic!("{label}: {name}: {e}"),
            };
            let json: Json = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{label}: {name} is not complete JSON ({e})"));
            assert!(
                json["version"].as_i64().is_some(),
                "{label}: {name} has a version"
            );
            if i == 0 {
                assert_eq!(
                    json["values"].as_array().map(Vec::len),
                    Some(values),
                    "{label}: all values"
                );
            }
            let which = allowed.iter().position(|a| a[i] == bytes);
            assert!(
                which.is_some(),
                "{label}: {name} is neither the old nor the new complete file"
            );
            which
        })
        .collect()
}

#[test]
fn a_build_killed_mid_run_leaves_complete_outputs_and_the_next_run_is_exact() {
    const RULES: u32 = 3000;
    let env = Env::new();
    let (_repo, a, b) = big_repo(&env, RULES);
    let (src_a, src_b) = (format!("big#{a}"), format!("big#{b}"));
    let (_, clean_b) = clean_build(&env, &src_b, &[]);

    // The state after building A, kept aside; restored before every killed run.
    build_into(&env, &src_a, "pristine", "pristine-state", &[]);
    let old = outputs(&env, "pristine");
    let restore = |with_old: bool| {
        remove_dir(&env.path("work"));
        remove_dir(&env.path("work-state"));
        if with_old {
            copy_dir(&env.path("pristine"), &env.path("work"));
            copy_dir(&env.path("pristine-state"), &env.path("work-state"));
        }
    };
    let spawn = || {
        bin()
            .args([
                "build",
                "--json",
                "--source",
                &src_b,
                "--out",
                "work",
                "--state",
                "work-state",
            ])
            .current_dir(env.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // When the build starts writing its output (a temporary file appears next to the cluster file, or
    // the file changes), so that kills land densely around it as well as earlier.
    // Timed twice, the second time warm (as the killed runs are): a cold first run is slower, and
    // kills planned from it would land after a warm build is done.
    let cluster = env.path("work").join(CLUSTER);
    let modified = || std::fs::metadata(&cluster).and_then(|m| m.modified()).ok();
    let time_a_build = || {
        restore(true);
        let before = modified();
        let start = Instant::now();
        let mut child = spawn();
        let mut writing = None;
        let took = loop {
            if writing.is_none()
                && (modified() != before
                    || !stray_files(&env.path("work/clusters"), ".sigma-galaxy-", ".tmp")
                        .is_empty())
            {
                writing = Some(start.elapsed());
            }
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success());
                break start.elapsed();
            }
            std::thread::sleep(Duration::from_micros(300));
        };
        (writing.unwrap_or(took), took)
    };
    time_a_build();
    // Each kill's delay comes from a build timed just before it, as a share of its run time or an
    // offset from when it started writing: tests run in parallel, and a plan fixed from one early
    // timing under load would let the kills land after faster builds have finished.
    enum At {
        Share(u32),
        Writing(i64),
    }
    let mut plan: Vec<(bool, At)> = [3, 25, 50, 75]
        .into_iter()
        .map(|p| (true, At::Share(p)))
        .chain((-2..=2).map(|k| (true, At::Writing(3 * k))))
        .collect();
    plan.push((false, At::Writing(0)));

    let mut seen = Vec::new();
    let mut killed = 0;
    for (with_old, at) in plan {
        let (writing, took) = time_a_build();
        let delay = match at {
            At::Share(p) => took * p / 100,
            At::Writing(ms) => {
                let d = Duration::from_millis(ms.unsigned_abs());
                if ms < 0 {
                    writing.saturating_sub(d)
                } else {
                    writing + d
                }
            }
        };
        let label = format!(
            "killed after {delay:?} (build takes {took:?}, writes from {writing:?}, previous output: {with_old})"
        );
        restore(with_old);
        let mut child = spawn();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        killed += usize::from(!status.success());
        let allowed: Vec<&[Vec<u8>; 2]> = if with_old {
            vec![&old, &clean_b]
        } else {
            vec![&clean_b]
        };
        let which = complete_output(&env, "work", &allowed, RULES as usize, &label);
        if with_old {
            assert!(
                which.iter().all(Option::is_some),
                "{label}: the old output is never removed"
            );
        }
        let debris = stray_files(&env.path("work"), ".sigma-galaxy-", ".tmp").len()
            + stray_files(&env.path("work-state"), ".state-", ".tmp").len();
        seen.push(format!(
            "{label}: exit {:?}, files {which:?}, {debris} temporary files",
            status.code()
        ));

        // The next normal run is exact, and leaves a state the run after trusts.
        let next = build_into(&env, &src_b, "work", "work-state", &[]);
        assert!(distrusted(&next).is_empty(), "{label}: {next:#}");
        assert_same(&outputs(&env, "work"), &clean_b, &label);
        let again = build_into(&env, &src_b, "work", "work-state", &[]);
        assert_eq!(again["wrote"], false, "{label}: rerun");
        assert_eq!(again["parsed"], 0, "{label}: rerun");
        for dir in ["work/clusters", "work/galaxies"] {
            let json: Vec<String> = std::fs::read_dir(env.path(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect();
            assert_eq!(json, ["sigma-rules.json"], "{label}: {dir}");
        }
    }
    eprintln!("{}", seen.join("\n"));
    assert!(
        killed >= 4,
        "the kills must land during the build:\n{}",
        seen.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------
// 6. Concurrency
// ---------------------------------------------------------------------------------------------------

#[test]
fn concurrent_builds_on_one_state_folder_are_serialised() {
    let env = Env::new();
    let (_repo, a, b) = big_repo(&env, 800);
    let (src_a, src_b) = (format!("big#{a}"), format!("big#{b}"));
    let (_, clean_b) = clean_build(&env, &src_b, &[]);
    build_into(&env, &src_a, "pristine", "pristine-state", &[]);

    let rounds: [&[&[&str]]; 3] = [&[&[], &[]], &[&["--full"], &[]], &[&[], &["--full"], &[]]];
    let mut waited = 0;
    for (round, extras) in rounds.iter().enumerate() {
        remove_dir(&env.path("work"));
        remove_dir(&env.path("work-state"));
        copy_dir(&env.path("pristine"), &env.path("work"));
        copy_dir(&env.path("pristine-state"), &env.path("work-state"));
        let children: Vec<_> = extras
            .iter()
            .map(|extra| {
                bin()
                    .args([
                        "build",
                        "--json",
                        "--source",
                        &src_b,
                        "--out",
                        "work",
                        "--state",
                        "work-state",
                    ])
                    .args(*extra)
                    .current_dir(env.dir.path())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "round {round}: {stderr}");
            let s: Json = serde_json::from_slice(&out.stdout).unwrap();
            assert!(distrusted(&s).is_empty(), "round {round}: {s:#}");
            waited += usize::from(stderr.contains("waiting"));
        }
        assert_same(&outputs(&env, "work"), &clean_b, &format!("round {round}"));
        let again = build_into(&env, &src_b, "work", "work-state", &[]);
        assert_eq!(again["wrote"], false, "round {round}: rerun");
        assert!(distrusted(&again).is_empty(), "round {round}: {again:#}");
    }
    eprintln!("{waited} of 7 concurrent runs waited for the lock");
}

#[test]
fn no_wait_fails_fast_on_a_held_lock_and_a_waiting_run_finishes_after_release() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    repo.write("a.yml", rule("A", None, ""));
    repo.commit("one");
    let (_, clean) = clean_build(&env, "rules", &[]);
    std::fs::create_dir_all(env.path("held-state")).unwrap();
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.path("held-state/lock"))
        .unwrap();
    lock.lock().unwrap();

    let fail = env.run(&[
        "build",
        "--json",
        "--source",
        "rules",
        "--out",
        "out",
        "--state",
        "held-state",
        "--no-wait",
    ]);
    assert_eq!(fail.code, 1, "{}", fail.stderr);
    assert!(
        fail.stderr.contains("held-state"),
        "names the state folder: {}",
        fail.stderr
    );
    assert!(fail.stdout.is_empty(), "{}", fail.stdout);
    assert!(!env.path("out").exists(), "nothing written");

    let mut child = bin()
        .args([
            "build",
            "--json",
            "--source",
            "rules",
            "--out",
            "out",
            "--state",
            "held-state",
        ])
        .current_dir(env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a message on stderr");
    assert!(line.contains("waiting"), "{line}");
    assert!(line.contains("held-state"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting while the lock is held"
    );
    assert!(!env.path("out").exists(), "nothing written while waiting");

    lock.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    assert!(out.status.success(), "{stderr}");
    let s: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["wrote"], true);
    assert_same(&outputs(&env, "out"), &clean, "after waiting");
}

// ---------------------------------------------------------------------------------------------------
// Options changed; cases that once were bugs
// ---------------------------------------------------------------------------------------------------

/// The cluster without its `version` (which, by design, rises on every content change in one output
/// folder and so differs from a clean build's after an option flips back and forth).
fn without_version(bytes: &[u8]) -> Json {
    let mut json = parse(bytes);
    json.as_object_mut().unwrap().remove("version");
    json
}

/// Options changed between runs: the parse results are reused (nothing is parsed), and the output is
/// what a clean build with the new options gives (but for the version, which only rises).
#[test]
fn changed_options_reuse_parse_results_and_equal_a_clean_build() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/example/rules.git",
    ]);
    for n in 1..=4 {
        repo.write(&format!("windows/rule{n}.yml"), id_rule(n, 0, 0));
    }
    repo.write(
        "filters/f.yml",
        "title: A filter\nid: 00000000-0000-4000-8000-0000000000ff\nlogsource:\n    product: windows\n\
         filter:\n    rules:\n        - 00000000-0000-4000-8000-000000000001\n    selection:\n\
         \x20       User: admin\n    condition: not selection\n",
    );
    repo.commit("rules and a filter");
    repo.write("windows/rule1.yml", id_rule(1, 1, 0));
    repo.commit("an edit, so that last-change and commit links differ");
    let first = build_into(&env, "rules", "out", "state", &[]);
    let mut version = first["version"].as_i64().unwrap();
    for (label, extra) in [
        ("--ref-style commit", &["--ref-style", "commit"][..]),
        ("--filters", &["--filters"][..]),
        (
            "--ref-style branch --filters",
            &["--ref-style", "branch", "--filters"][..],
        ),
        ("back to the defaults", &[][..]),
    ] {
        let s = build_into(&env, "rules", "out", "state", extra);
        assert_eq!(s["parsed"], 0, "{label}: {s:#}");
        assert_eq!(s["wrote"], true, "{label}");
        assert!(
            s["version"].as_i64().unwrap() > version,
            "{label}: the version rises"
        );
        version = s["version"].as_i64().unwrap();
        let (_, clean) = clean_build(&env, "rules", extra);
        let files = outputs(&env, "out");
        assert_eq!(files[1], clean[1], "{label}: galaxy file");
        assert_eq!(
            without_version(&files[0]),
            without_version(&clean[0]),
            "{label}: cluster"
        );
    }
}

/// A rule renamed onto a path whose rule was deleted in the same commit, and two rules swapping paths,
/// keep their own uuids, not the path's (git sees such a path as modified unless rewrites are broken up).
#[test]
fn a_rule_renamed_onto_a_freed_path_keeps_its_own_uuid() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    for t in ["Mover", "Leaver", "Left", "Right"] {
        repo.write(&format!("{}.yml", slug(t)), rule_text(t, None, 0, 0));
    }
    repo.commit("four rules");
    build_into(&env, "rules", "out", "state", &[]);
    let before = uuids(&env.json(&format!("out/{CLUSTER}")));

    repo.remove("leaver.yml");
    repo.rename("mover.yml", "leaver.yml");
    repo.rename("left.yml", "tmp.yml");
    repo.rename("right.yml", "left.yml");
    repo.rename("tmp.yml", "right.yml");
    repo.commit("mover takes leaver's place; left and right swap");
    build_into(&env, "rules", "out", "state", &[]);
    let after = uuids(&env.json(&format!("out/{CLUSTER}")));
    let mut wrong = Vec::new();
    for t in ["Mover", "Left", "Right"] {
        if after[t] != before[t] {
            let took = before
                .iter()
                .find(|(_, u)| **u == after[t])
                .map(|(k, _)| k.as_str());
            wrong.push(format!(
                "{t}: {} → {} (the uuid of {took:?})",
                before[t], after[t]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "uuids followed the path, not the rule:\n{}",
        wrong.join("\n")
    );
}

fn replace_by_folder(p: &Path) {
    std::fs::remove_file(p).unwrap();
    std::fs::create_dir_all(p.join("inside")).unwrap();
    std::fs::write(p.join("inside/file"), "x").unwrap();
}

/// `build.json` replaced by a folder is reported as distrusted, and the build still succeeds exactly.
#[test]
fn a_state_file_replaced_by_a_folder_does_not_stop_the_build() {
    let env = Env::new();
    let (c1, c2) = damage_fixture(&env);
    let attack: &[&str] = &["--attack-clusters", "attack"];
    let source = format!("rules#{c2}");
    let (_, clean) = clean_build(&env, &source, attack);
    let mut failures = Vec::new();
    for file in STATE_FILES {
        remove_dir(&env.path("out"));
        remove_dir(&env.path("state"));
        build_into(&env, &format!("rules#{c1}"), "out", "state", attack);
        replace_by_folder(&state_path(&env, file));
        let mut args = vec!["build", "--json", "--source", &source];
        args.extend(["--out", "out", "--state", "state"]);
        args.extend_from_slice(attack);
        let run = env.run(&args);
        if run.code != 0 {
            failures.push(format!(
                "{file} is a folder: exit {}: {}",
                run.code,
                run.stderr.trim()
            ));
            continue;
        }
        if !distrusted(&run.json())
            .iter()
            .any(|f| is_state_file(f, file))
        {
            failures.push(format!("{file} is a folder: not reported as distrusted"));
        }
        if outputs(&env, "out") != clean {
            failures.push(format!(
                "{file} is a folder: output differs from a clean build"
            ));
        }
    }
    assert_no_failures(&failures);
}

/// `--full` keeps the ledger and the last built commits: a rule renamed *and edited* since the last build
/// keeps its uuid under `--full` too.
#[test]
fn full_build_keeps_the_uuid_of_a_rule_renamed_and_edited_since_the_last_build() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    repo.write("windows/alpha.yml", rule_text("Alpha", None, 0, 0));
    repo.write("windows/beta.yml", rule_text("Beta", None, 0, 0));
    repo.commit("one");
    build_into(&env, "rules", "out", "state", &[]);
    let first = uuids(&env.json(&format!("out/{CLUSTER}")));
    repo.rename("windows/alpha.yml", "linux/alpha.yml");
    repo.write("linux/alpha.yml", rule_text("Alpha", None, 1, 0));
    repo.rename("windows/beta.yml", "linux/beta.yml");
    repo.commit("both moved, one edited");
    copy_dir(&env.path("state"), &env.path("state-copy"));
    build_into(&env, "rules", "out", "state", &[]);
    assert_eq!(
        uuids(&env.json(&format!("out/{CLUSTER}"))),
        first,
        "incremental"
    );
    build_into(&env, "rules", "out-full", "state-copy", &["--full"]);
    assert_eq!(
        uuids(&env.json(&format!("out-full/{CLUSTER}"))),
        first,
        "--full, same state"
    );
}

/// The `reason` tags of a summary's reasons.
fn reason_tags(summary: &Json) -> Vec<String> {
    summary["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect()
}

/// A correlation rule named `name` over the rules `targets` (ids or names).
fn correlation(title: &str, id: &str, name: Option<&str>, targets: &[&str]) -> String {
    let name = name.map(|n| format!("name: {n}\n")).unwrap_or_default();
    let rules: String = targets.iter().map(|t| format!("        - {t}\n")).collect();
    format!(
        "title: {title}\nid: {id}\n{name}status: test\ncorrelation:\n    type: event_count\n    rules:\n{rules}    group-by:\n        - User\n    timespan: 5m\n    condition:\n        gte: 10\nlevel: high\n"
    )
}

#[test]
fn a_change_is_spliced_only_when_it_shares_no_title_id_or_link_with_the_rest() {
    let env = Env::new();
    let mut repo = env.repo("repo");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/example/rules.git",
    ]);
    let related = |target: &str| format!("related:\n    - id: {target}\n      type: derived\n");
    repo.write("rules/a.yml", rule("Alpha", Some(&id(1)), ""));
    repo.write("rules/b.yml", rule("Beta", Some(&id(2)), &related(&id(1))));
    repo.write("rules/c.yml", rule("Gamma", None, ""));
    repo.write(
        "rules/d.yml",
        rule("Delta", Some(&id(4)), "name: delta_rule\n"),
    );
    let first = repo.commit("rules");
    let source = repo.path_str().to_string();
    build_into(&env, &format!("{source}#{first}"), "out", "state", &[]);
    // (what the commit does, the reason expected: "spliced" or the clash's kind)
    type Change<'a> = (&'a str, Box<dyn Fn(&Repo) + 'a>, &'a str);
    let steps: Vec<Change> = vec![
        (
            "edit an id-less rule",
            Box::new(move |r: &Repo| {
                r.write(
                    "rules/c.yml",
                    rule("Gamma", None, "tags:\n    - attack.t1059\n"),
                );
            }),
            "spliced",
        ),
        (
            "rename an id-less rule",
            Box::new(move |r: &Repo| {
                r.rename("rules/c.yml", "rules/c2.yml");
            }),
            "spliced",
        ),
        (
            "add a rule linking to a kept one by id",
            Box::new(move |r: &Repo| {
                r.write(
                    "rules/e.yml",
                    rule("Epsilon", Some(&id(5)), &related(&id(2))),
                );
            }),
            "spliced",
        ),
        (
            "add a correlation of a kept rule by name",
            Box::new(move |r: &Repo| {
                r.write(
                    "rules/f.yml",
                    correlation("Phi", &id(6), None, &["delta_rule"]),
                );
            }),
            "spliced",
        ),
        (
            "add a title a kept rule has, in other case",
            Box::new(move |r: &Repo| {
                r.write("rules/g.yml", rule("ALPHA", Some(&id(7)), ""));
            }),
            "a title (ignoring case)",
        ),
        (
            "take a kept rule's id",
            Box::new(move |r: &Repo| {
                r.write("rules/g.yml", rule("Omega", Some(&id(2)), ""));
            }),
            "a uuid or id",
        ),
        (
            "give the kept correlation's name to a changed rule",
            Box::new(move |r: &Repo| {
                r.write("rules/g.yml", rule("Omega", Some(&id(7)), ""));
                r.write("rules/d.yml", rule("Delta", Some(&id(4)), ""));
                r.write(
                    "rules/h.yml",
                    rule("Eta", Some(&id(8)), "name: delta_rule\n"),
                );
            }),
            "an id or name that a rule links to",
        ),
        (
            "delete a rule a kept one links to",
            Box::new(move |r: &Repo| {
                r.remove("rules/a.yml");
            }),
            "an id or name that a rule links to",
        ),
    ];
    for (what, change, expected) in steps {
        change(&repo);
        let commit = repo.commit(what);
        let at = format!("{source}#{commit}");
        let summary = build_into(&env, &at, "out", "state", &[]);
        let tags = reason_tags(&summary);
        if expected == "spliced" {
            assert!(tags.contains(&"spliced".to_string()), "{what}: {tags:?}");
            assert!(!tags.contains(&"clash".to_string()), "{what}: {tags:?}");
        } else {
            let clash = summary["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["reason"] == "clash")
                .unwrap_or_else(|| panic!("{what}: no clash in {tags:?}"));
            assert_eq!(clash["what"], expected, "{what}");
            assert!(!tags.contains(&"spliced".to_string()), "{what}: {tags:?}");
        }
        let (_, clean) = clean_build(&env, &at, &[]);
        assert_same(&outputs(&env, "out"), &clean, what);
    }
    // The links made against kept values while splicing are there.
    let cluster = parse(&outputs(&env, "out")[0]);
    let values = by_title(&cluster);
    let links = |title: &str| -> Vec<String> {
        values[title]["related"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|l| l["dest-uuid"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(links("Epsilon").contains(&id(2)), "{:?}", links("Epsilon"));
    assert!(links("Phi").contains(&id(8)), "{:?}", links("Phi"));
}
