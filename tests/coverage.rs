//! `sigma-galaxy coverage`: per-technique, per-tactic, per-level and per-log-source counts of a built
//! galaxy against fixture ATT&CK clusters, weights from fixture MISP tag statistics (both shapes),
//! the Navigator layer, the Markdown tables, filters and provenance, and the errors.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::harness::Env;

const ATTACK: &str = include_str!("fixtures/coverage/clusters/mitre-attack-pattern.json");
const ATTACK_GALAXY: &str = include_str!("fixtures/coverage/galaxies/mitre-attack-pattern.json");
const USERS_STATISTICS: &str = include_str!("fixtures/coverage/users-statistics-tags.json");
const TAG_STATISTICS: &str = include_str!("fixtures/coverage/tag-statistics.json");
const TAG_PERCENT: &str = include_str!("fixtures/coverage/tag-statistics-percent.json");

/// A rule with its own tags, level and log source (`product/category/service`, parts may be empty).
fn rule(title: &str, tags: &[&str], level: &str, logsource: &str) -> String {
    let mut ls = String::new();
    for (key, part) in ["product", "category", "service"]
        .into_iter()
        .zip(logsource.split('/'))
    {
        if !part.is_empty() {
            ls.push_str(&format!("    {key}: {part}\n"));
        }
    }
    let tags = if tags.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = tags.iter().map(|t| format!("    - {t}\n")).collect();
        format!("tags:\n{}", list.concat())
    };
    format!(
        "title: {title}\nstatus: test\ndescription: Detects {title}.\n{tags}logsource:\n{ls}\
         detection:\n    selection:\n        CommandLine|contains: 'x'\n    condition: selection\nlevel: {level}\n"
    )
}

/// The eight rules every test analyses.
const RULES: [(&str, &str, &[&str], &str, &str); 8] = [
    (
        "a.yml",
        "Encoded PowerShell",
        &["attack.execution", "attack.t1059.001"],
        "high",
        "windows/process_creation",
    ),
    (
        "b.yml",
        "Suspicious Script Host",
        &["attack.t1059", "attack.t1059.001"],
        "medium",
        "windows/process_creation",
    ),
    (
        "c.yml",
        "LSASS Access",
        &["attack.t1003.001"],
        "critical",
        "windows/process_access",
    ),
    (
        "d.yml",
        "Mimikatz Command Line",
        &["attack.t1003", "attack.T1003.001"],
        "high",
        "windows/process_creation",
    ),
    (
        "e.yml",
        "Run Key Persistence",
        &["attack.persistence", "attack.t1547"],
        "medium",
        "windows/registry_set",
    ),
    (
        "f.yml",
        "Old PowerShell Rule",
        &["attack.t1086", "attack.t1064"],
        "low",
        "windows/ps_script",
    ),
    (
        "g.yml",
        "Unknown Technique Rule",
        &["attack.t9999"],
        "informational",
        "linux/process_creation",
    ),
    ("h.yml", "No Tags", &[], "high", "windows/process_creation"),
];

/// A folder with the fixture ATT&CK clusters (and galaxy), tag statistics, and the eight rules built
/// into `galaxy/` from repository `rules`.
fn setup() -> Env {
    let env = Env::new();
    env.write("misp/clusters/mitre-attack-pattern.json", ATTACK);
    env.write("misp/galaxies/mitre-attack-pattern.json", ATTACK_GALAXY);
    env.write("users-statistics-tags.json", USERS_STATISTICS);
    env.write("tag-statistics.json", TAG_STATISTICS);
    env.write("tag-statistics-percent.json", TAG_PERCENT);
    let mut repo = env.repo("rules");
    for (file, title, tags, level, logsource) in RULES {
        repo.write(file, rule(title, tags, level, logsource));
    }
    repo.commit("rules");
    env.build(&[
        "--source",
        "rules",
        "--attack-clusters",
        "misp/clusters",
        "--out",
        "galaxy",
    ]);
    env
}

const CLUSTER: &str = "galaxy/clusters/sigma-rules.json";

/// Runs `coverage ARGS` on the built cluster with the fixture ATT&CK clusters; must succeed.
fn coverage(env: &Env, args: &[&str]) -> String {
    let mut all = vec![
        "coverage",
        "--cluster",
        CLUSTER,
        "--attack-clusters",
        "misp/clusters",
    ];
    all.extend_from_slice(args);
    let run = env.run(&all);
    assert_eq!(run.code, 0, "coverage {args:?} failed:\n{}", run.stderr);
    run.stdout
}

fn coverage_json(env: &Env, args: &[&str]) -> Json {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&coverage(env, &all)).unwrap()
}

/// `id → (rules, attack status, tactics, titles)` of a JSON result's techniques.
fn techniques(c: &Json) -> BTreeMap<String, (u64, String, Vec<String>, Vec<String>)> {
    let strings = |v: &Json| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    c["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                (
                    t["rules"].as_u64().unwrap(),
                    t["attack"].as_str().unwrap().to_string(),
                    strings(&t["tactics"]),
                    strings(&t["titles"]),
                ),
            )
        })
        .collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn counts_distinct_rules_per_technique_with_tactics_and_attack_status() {
    let env = setup();
    let c = coverage_json(&env, &[]);
    assert_eq!(c["galaxy"], "sigma-rules");
    assert_eq!(c["rules_total"], 8);
    assert_eq!(c["rules"], 8);
    assert_eq!(c["rules_with_techniques"], 7);
    assert_eq!(c["roll_up"], false);
    let exec = s(&["execution"]);
    let cred = s(&["credential-access"]);
    let want: BTreeMap<String, (u64, String, Vec<String>, Vec<String>)> = [
        (
            "T1003",
            1,
            "current",
            cred.clone(),
            s(&["Mimikatz Command Line"]),
        ),
        (
            "T1003.001",
            2,
            "current",
            cred.clone(),
            s(&["LSASS Access", "Mimikatz Command Line"]),
        ),
        (
            "T1059",
            1,
            "current",
            exec.clone(),
            s(&["Suspicious Script Host"]),
        ),
        (
            "T1059.001",
            2,
            "current",
            exec.clone(),
            s(&["Encoded PowerShell", "Suspicious Script Host"]),
        ),
        (
            "T1064",
            1,
            "retired",
            exec.clone(),
            s(&["Old PowerShell Rule"]),
        ),
        (
            "T1086",
            1,
            "retired",
            exec.clone(),
            s(&["Old PowerShell Rule"]),
        ),
        (
            "T1547",
            1,
            "current",
            s(&["persistence", "privilege-escalation"]),
            s(&["Run Key Persistence"]),
        ),
        (
            "T9999",
            1,
            "unknown",
            vec![],
            s(&["Unknown Technique Rule"]),
        ),
    ]
    .into_iter()
    .map(|(id, n, status, tactics, titles)| {
        (id.to_string(), (n, status.to_string(), tactics, titles))
    })
    .collect();
    assert_eq!(techniques(&c), want);
    let names: BTreeMap<&str, &str> = c["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t["id"].as_str()?, t["name"].as_str()?)))
        .collect();
    assert_eq!(names["T1059.001"], "PowerShell");
    assert_eq!(names["T1003"], "OS Credential Dumping");
    assert!(!names.contains_key("T9999"), "{names:?}");

    // The catalogue: current Enterprise techniques only (not T1064 deprecated, T1086 revoked, T1437
    // mobile); T1595 is the one no rule covers.
    assert_eq!(
        c["attack"],
        json!({"cluster_version": 36, "catalogue": 6, "covered": 5})
    );
    assert_eq!(
        c["uncovered"],
        json!([{"id": "T1595", "name": "Active Scanning", "tactics": ["reconnaissance"]}])
    );
    // Tactics in kill chain order (PRE first), each with its catalogue techniques and rules.
    assert_eq!(
        c["tactics"],
        json!([
            {"tactic": "reconnaissance", "covered": 0, "techniques": 1, "rules": 0},
            {"tactic": "execution", "covered": 2, "techniques": 2, "rules": 2},
            {"tactic": "persistence", "covered": 1, "techniques": 1, "rules": 1},
            {"tactic": "privilege-escalation", "covered": 1, "techniques": 1, "rules": 1},
            {"tactic": "credential-access", "covered": 2, "techniques": 2, "rules": 2},
        ])
    );
}

#[test]
fn groups_rules_by_level_and_log_source() {
    let env = setup();
    let c = coverage_json(&env, &[]);
    assert_eq!(
        c["levels"],
        json!([
            {"name": "critical", "rules": 1, "techniques": 1},
            {"name": "high", "rules": 3, "techniques": 3},
            {"name": "medium", "rules": 2, "techniques": 3},
            {"name": "low", "rules": 1, "techniques": 2},
            {"name": "informational", "rules": 1, "techniques": 1},
        ])
    );
    assert_eq!(
        c["logsources"],
        json!([
            {"logsource": {"product": "windows", "category": "process_creation"}, "rules": 4, "techniques": 4},
            {"logsource": {"product": "linux", "category": "process_creation"}, "rules": 1, "techniques": 1},
            {"logsource": {"product": "windows", "category": "process_access"}, "rules": 1, "techniques": 1},
            {"logsource": {"product": "windows", "category": "ps_script"}, "rules": 1, "techniques": 2},
            {"logsource": {"product": "windows", "category": "registry_set"}, "rules": 1, "techniques": 1},
        ])
    );
    // A single source without provenance: no per-source table.
    assert_eq!(c["sources"], json!([]));
}

#[test]
fn roll_up_counts_a_rule_once_for_the_parent_technique() {
    let env = setup();
    let c = coverage_json(&env, &["--roll-up"]);
    assert_eq!(c["roll_up"], true);
    let counts: BTreeMap<String, u64> = techniques(&c)
        .into_iter()
        .map(|(id, (n, ..))| (id, n))
        .collect();
    let want: BTreeMap<String, u64> = [
        ("T1003", 2),
        ("T1059", 2),
        ("T1064", 1),
        ("T1086", 1),
        ("T1547", 1),
        ("T9999", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts, want);
    // Parents only in the catalogue: T1059, T1003, T1547, T1595.
    assert_eq!(
        c["attack"],
        json!({"cluster_version": 36, "catalogue": 4, "covered": 3})
    );
    assert_eq!(
        c["tactics"][1],
        json!({"tactic": "execution", "covered": 1, "techniques": 1, "rules": 2})
    );
}

#[test]
fn level_filter_keeps_only_those_rules() {
    let env = setup();
    let c = coverage_json(&env, &["--level", "high,critical"]);
    assert_eq!(c["rules_total"], 8);
    assert_eq!(c["rules"], 4);
    assert_eq!(c["filters"]["levels"], json!(["high", "critical"]));
    let counts: BTreeMap<String, (u64, Vec<String>)> = techniques(&c)
        .into_iter()
        .map(|(id, (n, _, _, titles))| (id, (n, titles)))
        .collect();
    let want: BTreeMap<String, (u64, Vec<String>)> = [
        ("T1003", (1, s(&["Mimikatz Command Line"]))),
        (
            "T1003.001",
            (2, s(&["LSASS Access", "Mimikatz Command Line"])),
        ),
        ("T1059.001", (1, s(&["Encoded PowerShell"]))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts, want);

    let bad = env.run(&["coverage", "--cluster", CLUSTER, "--level", "severe"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--level severe"), "{}", bad.stderr);
}

/// The weights the fixture statistics give: Encoded PowerShell 5, LSASS Access 3 (tagged in other
/// case), Run Key Persistence 2; the mitre-attack-pattern and tlp tags are not rules'.
fn assert_fixture_weights(c: &Json) {
    let d = &c["detections"];
    assert_eq!(d["events"], 10);
    assert_eq!(
        d["rules"],
        json!([
            {"title": "Encoded PowerShell", "events": 5, "level": "high",
             "logsource": {"product": "windows", "category": "process_creation"}, "techniques": ["T1059.001"]},
            {"title": "LSASS Access", "events": 3, "level": "critical",
             "logsource": {"product": "windows", "category": "process_access"}, "techniques": ["T1003.001"]},
            {"title": "Run Key Persistence", "events": 2, "level": "medium",
             "logsource": {"product": "windows", "category": "registry_set"}, "techniques": ["T1547"]},
        ])
    );
    let events: BTreeMap<&str, u64> = c["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["events"].as_u64().unwrap()))
        .collect();
    let want: BTreeMap<&str, u64> = [
        ("T1003", 0),
        ("T1003.001", 3),
        ("T1059", 0),
        ("T1059.001", 5),
        ("T1064", 0),
        ("T1086", 0),
        ("T1547", 2),
        ("T9999", 0),
    ]
    .into_iter()
    .collect();
    assert_eq!(events, want);
    assert_eq!(
        d["never_seen"],
        json!(["T1003", "T1059", "T1064", "T1086", "T9999"])
    );
    assert_eq!(
        d["unmatched"],
        json!([{"tag": "misp-galaxy:sigma-rules=\"Renamed Long Ago\"", "events": 4}])
    );
    let by_logsource: Vec<(String, u64, u64)> = c["logsources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let ls = &l["logsource"];
            (
                format!(
                    "{}/{}",
                    ls["product"].as_str().unwrap(),
                    ls["category"].as_str().unwrap()
                ),
                l["events"].as_u64().unwrap(),
                l["rules"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_logsource,
        [
            ("windows/process_creation".to_string(), 5, 4),
            ("windows/process_access".to_string(), 3, 1),
            ("windows/registry_set".to_string(), 2, 1),
            ("linux/process_creation".to_string(), 0, 1),
            ("windows/ps_script".to_string(), 0, 1),
        ]
    );
    assert_eq!(
        c["levels"][0],
        json!({"name": "critical", "rules": 1, "techniques": 1, "events": 3})
    );
    assert_eq!(
        c["levels"][1],
        json!({"name": "high", "rules": 3, "techniques": 3, "events": 5})
    );
    assert_eq!(
        c["tactics"][4],
        json!({"tactic": "credential-access", "covered": 2, "techniques": 2, "rules": 2, "events": 3})
    );
}

#[test]
fn misp_tag_statistics_weigh_rules_in_both_shapes() {
    let env = setup();
    let users = coverage_json(&env, &["--misp-tag-stats", "users-statistics-tags.json"]);
    assert_fixture_weights(&users);
    let tags = coverage_json(&env, &["--misp-tag-stats", "tag-statistics.json"]);
    assert_fixture_weights(&tags);

    let pct = env.run(&[
        "coverage",
        "--cluster",
        CLUSTER,
        "--misp-tag-stats",
        "tag-statistics-percent.json",
    ]);
    assert_eq!(pct.code, 1, "{}", pct.stderr);
    assert!(
        pct.stderr.contains("tag-statistics-percent.json") && pct.stderr.contains("percentage"),
        "{}",
        pct.stderr
    );
    env.write("not-stats.json", "{\"events\": 3}");
    let other = env.run(&[
        "coverage",
        "--cluster",
        CLUSTER,
        "--misp-tag-stats",
        "not-stats.json",
    ]);
    assert_eq!(other.code, 1);
    assert!(
        other.stderr.contains("not MISP tag statistics"),
        "{}",
        other.stderr
    );
}

#[test]
fn navigator_layer_scores_rule_counts_with_titles_and_a_gradient() {
    let env = setup();
    let layer: Json = serde_json::from_str(&coverage(&env, &["--format", "navigator"])).unwrap();
    assert_eq!(layer["versions"]["layer"], "4.5");
    assert_eq!(layer["versions"]["navigator"], "5.1.0");
    assert!(layer["versions"].get("attack").is_none(), "{layer}");
    assert_eq!(layer["domain"], "enterprise-attack");
    assert_eq!(
        layer["gradient"],
        json!({"colors": ["#ffffff", "#ff6666"], "minValue": 0, "maxValue": 2})
    );
    let scores: BTreeMap<&str, (u64, &str)> = layer["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["techniqueID"].as_str().unwrap(),
                (t["score"].as_u64().unwrap(), t["comment"].as_str().unwrap()),
            )
        })
        .collect();
    let want: BTreeMap<&str, (u64, &str)> = [
        ("T1003", (1, "Mimikatz Command Line")),
        ("T1003.001", (2, "LSASS Access\nMimikatz Command Line")),
        ("T1059", (1, "Suspicious Script Host")),
        (
            "T1059.001",
            (2, "Encoded PowerShell\nSuspicious Script Host"),
        ),
        ("T1064", (1, "Old PowerShell Rule")),
        ("T1086", (1, "Old PowerShell Rule")),
        ("T1547", (1, "Run Key Persistence")),
        ("T9999", (1, "Unknown Technique Rule")),
    ]
    .into_iter()
    .collect();
    assert_eq!(scores, want);
    let meta: BTreeMap<&str, &str> = layer["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["value"].as_str().unwrap()))
        .collect();
    assert_eq!(meta["mitre-attack-pattern cluster version"], "36");
    assert_eq!(meta["rules"], "8");

    // --attack-version, weights as technique metadata, --out written atomically (no stray file).
    coverage(
        &env,
        &[
            "--format",
            "navigator",
            "--attack-version",
            "17",
            "--misp-tag-stats",
            "tag-statistics.json",
            "--roll-up",
            "--out",
            "layer.json",
        ],
    );
    let layer = env.json("layer.json");
    assert_eq!(layer["versions"]["attack"], "17");
    assert_eq!(layer["gradient"]["maxValue"], 2);
    let t1059 = layer["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["techniqueID"] == "T1059")
        .unwrap();
    assert_eq!(t1059["score"], 2);
    assert_eq!(t1059["metadata"], json!([{"name": "events", "value": "5"}]));
    let stray: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn markdown_tables_per_tactic_log_source_and_gaps() {
    let env = setup();
    let md = coverage(&env, &["--misp-tag-stats", "users-statistics-tags.json"]);
    for line in [
        "# ATT&CK coverage of the sigma-rules galaxy",
        "8 rules; 7 tagged with ATT&CK techniques, covering 8 techniques. 5 of the 6 current Enterprise techniques in the ATT&CK clusters are covered.",
        "| Tactic | Covered | Techniques | Coverage | Rules | Events |",
        "| reconnaissance | 0 | 1 | 0% | 0 | 0 |",
        "| execution | 2 | 2 | 100% | 2 | 5 |",
        "| windows | process_creation |  | 4 | 4 | 5 |",
        "| Encoded PowerShell | 5 | high | product:windows category:process_creation | T1059.001 |",
        "| T1003 | OS Credential Dumping | 1 |",
        "| misp-galaxy:sigma-rules=\"Renamed Long Ago\" | 4 |",
        "| T1086 | PowerShell (revoked or deprecated) | execution | 1 | 0 |",
        "| T9999 | (not in the ATT&CK clusters) |  | 1 | 0 |",
        "| T1595 | Active Scanning | reconnaissance |",
        "| T1064 | Scripting | revoked or deprecated | Old PowerShell Rule |",
        "| T9999 |  | not in the clusters | Unknown Technique Rule |",
    ] {
        assert!(
            md.lines().any(|l| l == line),
            "missing line {line:?} in:\n{md}"
        );
    }
    // Sections in reading order.
    let at = |h: &str| md.find(h).unwrap_or_else(|| panic!("no {h:?} in:\n{md}"));
    assert!(at("## Techniques covered per tactic") < at("## Rules per log source"));
    assert!(at("## Rules per log source") < at("## Rules that detect most"));
    assert!(at("## Covered techniques never seen") < at("## Tags to update"));
    assert!(at("## Tags to update") < at("## Techniques covered by no rule"));
}

#[test]
fn without_attack_clusters_techniques_are_counted_but_not_named() {
    let env = setup();
    let run = env.run(&["coverage", "--cluster", CLUSTER, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let c = run.json();
    assert!(c.get("attack").is_none(), "{c}");
    assert_eq!(c["tactics"], json!([]));
    assert_eq!(c["uncovered"], json!([]));
    let t = techniques(&c);
    assert_eq!(t.len(), 8);
    assert!(
        t.values()
            .all(|(_, status, tactics, _)| status == "unknown" && tactics.is_empty())
    );
    assert_eq!(t["T1059.001"].0, 2);
}

#[test]
fn source_filter_uses_provenance_and_config_names() {
    let env = setup();
    // Values carrying meta.source (as a multi-source build writes them).
    let mut cluster = env.json(CLUSTER);
    for v in cluster["values"].as_array_mut().unwrap() {
        let from = match v["value"].as_str().unwrap() {
            "Encoded PowerShell" | "LSASS Access" => "in-house",
            _ => "sigmahq",
        };
        v["meta"]["source"] = json!(from);
    }
    env.write("merged.json", &serde_json::to_string(&cluster).unwrap());
    let run = env.run(&[
        "coverage",
        "--cluster",
        "merged.json",
        "--format",
        "json",
        "--source",
        "in-house",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let c = run.json();
    assert_eq!(c["rules"], 2);
    let ids: Vec<String> = techniques(&c).into_keys().collect();
    assert_eq!(ids, s(&["T1003.001", "T1059.001"]));
    assert_eq!(
        c["sources"],
        json!([{"name": "in-house", "rules": 2, "techniques": 2}])
    );
    let all = env.run(&["coverage", "--cluster", "merged.json", "--format", "json"]);
    assert_eq!(
        all.json()["sources"],
        json!([
            {"name": "in-house", "rules": 2, "techniques": 2},
            {"name": "sigmahq", "rules": 6, "techniques": 8},
        ])
    );
    let typo = env.run(&[
        "coverage",
        "--cluster",
        "merged.json",
        "--source",
        "inhouse",
    ]);
    assert_eq!(typo.code, 2);
    assert!(
        typo.stderr.contains("--source inhouse") && typo.stderr.contains("in-house, sigmahq"),
        "{}",
        typo.stderr
    );
    // Without provenance, --source cannot be answered: an error, not an empty result.
    let none = env.run(&["coverage", "--cluster", CLUSTER, "--source", "sigmahq"]);
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("meta.source"), "{}", none.stderr);
}

#[test]
fn config_builds_the_galaxy_then_analyses_it() {
    let env = setup();
    env.write(
        "sigma-galaxy.yml",
        "out: built\nattack_clusters: misp/clusters\nsources:\n  - name: detections\n    location: rules\n",
    );
    let run = env.run(&[
        "coverage",
        "--config",
        "sigma-galaxy.yml",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The build ran: its cluster is in place, and is what was analysed.
    assert_eq!(
        env.json("built/clusters/sigma-rules.json")["values"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    let mut from_config = run.json();
    let from_cluster = coverage_json(&env, &[]);
    // The one configured source is every value's source (a one-source build writes no provenance).
    assert_eq!(
        from_config["sources"],
        json!([{"name": "detections", "rules": 8, "techniques": 8}])
    );
    from_config["sources"] = json!([]);
    assert_eq!(from_config, from_cluster);
    let only = env.run(&[
        "coverage",
        "--config",
        "sigma-galaxy.yml",
        "--format",
        "json",
        "--source",
        "detections",
    ]);
    assert_eq!(only.code, 0, "{}", only.stderr);
    assert_eq!(only.json()["rules"], 8);
    assert_eq!(
        only.json()["sources"],
        json!([{"name": "detections", "rules": 8, "techniques": 8}])
    );
    // Neither --cluster nor --config, and no ./sigma-galaxy.yml.
    std::fs::remove_file(env.path("sigma-galaxy.yml")).unwrap();
    let bare = env.run(&["coverage"]);
    assert_eq!(bare.code, 2);
    assert!(bare.stderr.contains("--cluster"), "{}", bare.stderr);
}

#[test]
fn unreadable_inputs_name_the_file() {
    let env = setup();
    let missing = env.run(&["coverage", "--cluster", "nope.json"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("nope.json"), "{}", missing.stderr);
    env.write(
        "broken.json",
        "{\n  \"type\": \"sigma-rules\",\n  \"values\": [\n}\n",
    );
    let broken = env.run(&["coverage", "--cluster", "broken.json"]);
    assert_eq!(broken.code, 1);
    assert!(
        broken.stderr.contains("broken.json: line 4"),
        "{}",
        broken.stderr
    );
    let no_attack = env.run(&[
        "coverage",
        "--cluster",
        CLUSTER,
        "--attack-clusters",
        "galaxy",
    ]);
    assert_eq!(no_attack.code, 1);
    assert!(
        no_attack.stderr.contains("mitre-attack-pattern.json"),
        "{}",
        no_attack.stderr
    );
}

#[test]
fn provenance_of_a_two_source_build_drives_the_source_filter() {
    let env = setup();
    let mut extra = env.repo("extra");
    extra.write(
        "x.yml",
        rule(
            "Extra LSASS Dump",
            &["attack.t1003.001"],
            "high",
            "windows/process_access",
        ),
    );
    extra.commit("extra rule");
    env.write(
        "two.yml",
        "out: merged\nattack_clusters: misp/clusters\nsources:\n  - name: main\n    location: rules\n  - name: extra\n    location: extra\n",
    );
    let all = env.run(&["coverage", "--config", "two.yml", "--format", "json"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    let all = all.json();
    assert_eq!(
        all["sources"],
        json!([
            {"name": "extra", "rules": 1, "techniques": 1},
            {"name": "main", "rules": 8, "techniques": 8},
        ])
    );
    assert_eq!(techniques(&all)["T1003.001"].0, 3);
    let only = env.run(&[
        "coverage", "--config", "two.yml", "--format", "json", "--source", "extra",
    ]);
    assert_eq!(only.code, 0, "{}", only.stderr);
    let only = only.json();
    assert_eq!(only["rules"], 1);
    let t = techniques(&only);
    assert_eq!(t.keys().collect::<Vec<_>>(), ["T1003.001"]);
    assert_eq!(t["T1003.001"].3, s(&["Extra LSASS Dump"]));
}
