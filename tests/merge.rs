//! Many repositories into one galaxy: a fork that overrides and adds rules, its upstream, and an
//! in-house repository with id-less rules and colliding titles, merged with per-source filters,
//! priorities and provenance, checked value by value.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::harness::{Env, Repo, rule};

const GALAXY: Uuid = Uuid::from_u128(0x9cf7cd2e_d5f1_48c4_9909_7896ba1c96b2);
const ID1: &str = "11111111-1111-4111-8111-111111111111";
const ID2: &str = "22222222-2222-4222-8222-222222222222";
const ID3: &str = "33333333-3333-4333-8333-333333333333";
const ID4: &str = "44444444-4444-4444-8444-444444444444";

/// A rule with the given status, level and product.
fn sigma(title: &str, id: Option<&str>, status: &str, level: &str, product: &str) -> String {
    rule(title, id, "")
        .replace("status: test", &format!("status: {status}"))
        .replace("level: high", &format!("level: {level}"))
        .replace("product: windows", &format!("product: {product}"))
}

fn derived(source: &str, path: &str) -> String {
    Uuid::new_v5(&GALAXY, format!("{source}\0{path}\0{}", 0).as_bytes()).to_string()
}

/// The three repositories: upstream, its fork (a real clone, so it shares history), in-house.
fn repositories(env: &Env) -> (Repo, Repo, Repo) {
    let mut upstream = env.repo("sigma");
    upstream.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/SigmaHQ/sigma.git",
    ]);
    upstream.write(
        "rules/u1.yml",
        sigma("Upstream One", Some(ID1), "stable", "high", "windows"),
    );
    upstream.write(
        "rules/u2.yml",
        sigma("Upstream Two", Some(ID2), "test", "medium", "linux"),
    );
    upstream.write(
        "rules/u3.yml",
        sigma(
            "Experimental Rule",
            Some(ID3),
            "experimental",
            "low",
            "windows",
        ),
    );
    upstream.commit("upstream rules");

    let status = std::process::Command::new("git")
        .args(["clone", "-q", "sigma", "fork"])
        .current_dir(env.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut fork = Repo {
        path: env.path("fork"),
        commits: upstream.commits,
    };
    fork.git(&[
        "remote",
        "set-url",
        "origin",
        "https://github.com/acme/sigma-fork.git",
    ]);
    fork.write(
        "rules/u2.yml",
        sigma("Upstream Two (tuned)", Some(ID2), "test", "medium", "linux"),
    );
    fork.write(
        "rules/f1.yml",
        sigma("Fork Only", Some(ID4), "test", "high", "windows"),
    );
    fork.commit("tune u2, add f1");

    let mut inhouse = env.repo("detections");
    inhouse.git(&[
        "remote",
        "add",
        "origin",
        "https://gitlab.com/acme/detections.git",
    ]);
    inhouse.write(
        "rules/one.yml",
        sigma("upstream one", None, "test", "high", "windows"),
    );
    inhouse.write(
        "rules/low.yml",
        sigma("Local Low", None, "test", "low", "windows"),
    );
    inhouse.write(
        "rules/crit.yml",
        sigma("Local Critical", None, "stable", "critical", "windows"),
    );
    inhouse.commit("in-house rules");
    (upstream, fork, inhouse)
}

/// Each value by title: (uuid, meta.source, meta.source-url, the link to the file).
fn values(env: &Env, out: &str) -> BTreeMap<String, (String, Json, Json, String)> {
    let cluster = env.json(&format!("{out}/clusters/sigma-rules.json"));
    cluster["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let meta = &v["meta"];
            let link = meta["refs"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_str()
                .unwrap();
            (
                v["value"].as_str().unwrap().to_string(),
                (
                    v["uuid"].as_str().unwrap().to_string(),
                    meta["source"].clone(),
                    meta["source-url"].clone(),
                    link.to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn three_repositories_merge_with_overrides_filters_priorities_and_provenance() {
    let env = Env::new();
    let (upstream, fork, inhouse) = repositories(&env);
    let head = |r: &Repo| r.git(&["rev-parse", "HEAD"]);
    let (up, fk) = (head(&upstream), head(&fork));
    env.write(
        "sigma-galaxy.yml",
        "out: out\nsources:\n\
         \x20 - name: fork\n    location: fork\n\
         \x20 - name: upstream\n    location: sigma\n    status: [stable, test]\n\
         \x20 - name: in-house\n    location: detections\n    level: [high, critical]\n",
    );
    let s = env.build(&[]);
    let got = values(&env, "out");
    let fork_url = json!("https://github.com/acme/sigma-fork");
    let gitlab = json!("https://gitlab.com/acme/detections");
    let expected: BTreeMap<String, (String, Json, Json, String)> = [
        // The fork is listed first: its rules win their ids, changed or not.
        (
            "Upstream One",
            ID1.to_string(),
            "fork",
            &fork_url,
            format!("https://github.com/acme/sigma-fork/blob/{up}/rules/u1.yml"),
        ),
        (
            "Upstream Two (tuned)",
            ID2.to_string(),
            "fork",
            &fork_url,
            format!("https://github.com/acme/sigma-fork/blob/{fk}/rules/u2.yml"),
        ),
        (
            "Experimental Rule",
            ID3.to_string(),
            "fork",
            &fork_url,
            format!("https://github.com/acme/sigma-fork/blob/{up}/rules/u3.yml"),
        ),
        (
            "Fork Only",
            ID4.to_string(),
            "fork",
            &fork_url,
            format!("https://github.com/acme/sigma-fork/blob/{fk}/rules/f1.yml"),
        ),
        // In-house: the id-less rule whose title collides is renamed after its source; the low one
        // is filtered out by level.
        (
            "upstream one (in-house)",
            derived("in-house", "rules/one.yml"),
            "in-house",
            &gitlab,
            format!(
                "https://gitlab.com/acme/detections/-/blob/{}/rules/one.yml",
                head(&inhouse)
            ),
        ),
        (
            "Local Critical",
            derived("in-house", "rules/crit.yml"),
            "in-house",
            &gitlab,
            format!(
                "https://gitlab.com/acme/detections/-/blob/{}/rules/crit.yml",
                head(&inhouse)
            ),
        ),
    ]
    .into_iter()
    .map(|(t, u, s, url, link)| (t.to_string(), (u, json!(s), url.clone(), link)))
    .collect();
    assert_eq!(got, expected);
    assert_eq!(s["values"], 6);

    let findings: Vec<(String, String, String)> = s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] != "missing-id")
        .map(|w| {
            (
                format!(
                    "{}:{}",
                    w["source"].as_str().unwrap(),
                    w["path"].as_str().unwrap()
                ),
                w["code"].as_str().unwrap().to_string(),
                w["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("in-house:rules/one.yml", "duplicate-title", "warning"),
        ("upstream:rules/u1.yml", "overridden-rule", "note"),
        ("upstream:rules/u2.yml", "overridden-rule-title", "warning"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(findings, expected);

    // A priority reorders without reordering the list: upstream now wins the ids it has, and the
    // rules the fork changed are the ones dropped.
    env.write(
        "prio.yml",
        "out: prio\nsources:\n\
         \x20 - name: fork\n    location: fork\n\
         \x20 - name: upstream\n    location: sigma\n    priority: 10\n",
    );
    let p = env.build(&["--config", "prio.yml"]);
    let got = values(&env, "prio");
    let titles: Vec<(&str, &str)> = got
        .iter()
        .map(|(t, (_, source, _, _))| (t.as_str(), source.as_str().unwrap()))
        .collect();
    assert_eq!(
        titles,
        [
            ("Experimental Rule", "upstream"),
            ("Fork Only", "fork"),
            ("Upstream One", "upstream"),
            ("Upstream Two", "upstream"),
        ]
    );
    assert_eq!(got["Upstream Two"].0, ID2);
    let dropped: Vec<String> = p["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}:{}",
                w["path"].as_str().unwrap(),
                w["code"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        dropped,
        [
            "rules/u1.yml:overridden-rule",
            "rules/u2.yml:overridden-rule-title",
            "rules/u3.yml:overridden-rule"
        ]
    );

    // Flags filter every source; provenance can be turned off; one source has none by default.
    let flagged = env.build(&[
        "--config", "prio.yml", "--level", "high", "--status", "test",
    ]);
    assert_eq!(flagged["values"], 1, "{flagged:#}");
    env.write(
        "quiet.yml",
        "out: quiet\nprovenance: false\nsources:\n  - name: fork\n    location: fork\n  - name: upstream\n    location: sigma\n",
    );
    env.build(&["--config", "quiet.yml"]);
    assert!(values(&env, "quiet").values().all(|v| v.1.is_null()));
    env.build(&["--source", "fork", "--out", "single"]);
    assert!(values(&env, "single").values().all(|v| v.1.is_null()));
    let bad = env.run(&["build", "--config", "prio.yml", "--level", "severe"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("level \"severe\" is not one of"),
        "{}",
        bad.stderr
    );
}
