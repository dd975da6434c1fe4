//! `sigma-galaxy build`: from commits of local repositories to a MISP cluster/galaxy pair.

use serde_json::json;

use serde_json::Value as Json;

use crate::harness::{Env, by_title, findings, rule};

const ID_A: &str = "3b1f6a2e-7c41-4d8a-9f0e-2a5c6d7e8f90";
const ID_B: &str = "8d2e4c1a-5b3f-4e6d-a7c8-9b0a1c2d3e4f";

#[test]
fn builds_a_misp_pair_from_the_commit() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    repo.write(
        "rules/a.yml",
        rule(
            "Rule A",
            Some(&ID_A.to_uppercase()),
            "references:\n    - https://x.example/1\n    - https://x.example/1\n    - https://x.example/2\n\
             tags:\n    - attack.t1105\nfalsepositives: Admins\nmodified: 2024/02/03\n",
        ),
    );
    repo.write(
        "rules/b.yml",
        rule("Rule B", Some(ID_B), "").replace(
            "description: Detects Rule B.",
            "description: '  padded  \n'",
        ),
    );
    repo.write("rules/readme.md", "not a rule");
    let commit = repo.commit("two rules");
    // The working tree is not what is built.
    repo.write("rules/c.yml", rule("Uncommitted", None, ""));

    let summary = env.build(&["--source", "rules", "--out", "out"]);
    assert_eq!(summary["values"], 2);
    assert_eq!(summary["parsed"], 2);
    assert_eq!(summary["wrote"], true);
    assert_eq!(summary["sources"][0]["commit"], commit);
    assert_eq!(summary["sources"][0]["name"], "rules");
    assert_eq!(summary["version"], repo.last_time());

    let cluster = env.json("out/clusters/sigma-rules.json");
    assert_eq!(cluster["uuid"], "9cf7cd2e-d5f1-48c4-9909-7896ba1c96b2");
    assert_eq!(cluster["type"], "sigma-rules");
    assert_eq!(cluster["name"], "Sigma-Rules");
    assert_eq!(cluster["category"], "rules");
    assert_eq!(cluster["version"], repo.last_time());
    let values = by_title(&cluster);
    let a = &values["Rule A"];
    assert_eq!(a["uuid"], ID_A);
    assert_eq!(a["description"], "Detects Rule A.");
    assert_eq!(
        a["meta"],
        json!({
            "author": "Tester",
            "creation_date": "2024-01-02",
            "modified": "2024/02/03",
            "falsepositive": ["Admins"],
            "filename": "a.yml",
            "level": "high",
            "status": "test",
            "logsource.category": "process_creation",
            "logsource.product": "windows",
            "refs": ["https://x.example/1", "https://x.example/2"],
            "tags": ["attack.t1105"],
        })
    );
    assert!(
        a.get("related").is_none(),
        "no ATT&CK links without --attack-clusters"
    );
    assert_eq!(values["Rule B"]["description"], "padded");

    let galaxy = env.json("out/galaxies/sigma-rules.json");
    assert_eq!(
        galaxy,
        json!({
            "description": "Sigma Rules are used to detect suspicious behaviors related to threat actors, malware and tools",
            "icon": "link",
            "name": "Sigma-Rules",
            "namespace": "misp",
            "type": "sigma-rules",
            "uuid": "9cf7cd2e-d5f1-48c4-9909-7896ba1c96b2",
            "version": repo.last_time(),
        })
    );
    let check = env.run(&[
        "validate",
        "out/clusters/sigma-rules.json",
        "out/galaxies/sigma-rules.json",
    ]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
}

#[test]
fn refs_sub_folders_bare_repositories_and_globs() {
    let env = Env::new();
    let mut repo = env.repo("work");
    repo.write("rules/a.yml", rule("A", Some(ID_A), ""));
    repo.write("other/b.yaml", rule("B", Some(ID_B), ""));
    repo.write("other/old/c.yml", rule("C", None, ""));
    let first = repo.commit("first");
    repo.git(&["tag", "v1"]);
    repo.write("rules/d.yml", rule("D", None, ""));
    repo.commit("second");

    let titles = |summary_args: &[&str]| {
        let out = env.path("o").to_str().unwrap().to_string();
        let mut args = summary_args.to_vec();
        args.extend(["--out", &out]);
        env.build(&args);
        let mut t: Vec<String> = by_title(&env.json("o/clusters/sigma-rules.json"))
            .into_keys()
            .collect();
        t.sort();
        std::fs::remove_dir_all(env.path("o")).unwrap();
        t
    };
    assert_eq!(titles(&["--source", "work"]), ["A", "B", "C", "D"]);
    assert_eq!(titles(&["--source", "work#v1"]), ["A", "B", "C"]);
    assert_eq!(
        titles(&["--source", &format!("work#{first}")]),
        ["A", "B", "C"]
    );
    assert_eq!(titles(&["--source", "work/rules"]), ["A", "D"]);
    assert_eq!(
        titles(&[
            "--source",
            "work",
            "--include",
            "other/**",
            "--exclude",
            "**/old/**"
        ]),
        ["B"]
    );
    repo.git(&["clone", "-q", "--bare", ".", "../bare.git"]);
    assert_eq!(titles(&["--source", "bare.git#main"]), ["A", "B", "C", "D"]);
}

#[test]
fn two_builds_of_one_commit_are_byte_identical_and_the_second_writes_nothing() {
    let env = Env::new();
    let mut repo = env.repo("r");
    for i in 0..20 {
        repo.write(
            &format!("r{i:02}.yml"),
            rule(&format!("Rule {i}"), None, ""),
        );
    }
    repo.commit("rules");
    env.build(&["--source", "r", "--out", "one"]);
    env.build(&["--source", "r", "--out", "two"]);
    for f in ["clusters/sigma-rules.json", "galaxies/sigma-rules.json"] {
        assert_eq!(env.read(&format!("one/{f}")), env.read(&format!("two/{f}")));
    }
    let before = std::fs::metadata(env.path("one/clusters/sigma-rules.json"))
        .unwrap()
        .modified()
        .unwrap();
    let again = env.build(&["--source", "r", "--out", "one"]);
    assert_eq!(again["wrote"], false);
    let after = std::fs::metadata(env.path("one/clusters/sigma-rules.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn bad_rules_are_reported_with_file_and_line_and_skipped() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("good.yml", rule("Good", None, ""));
    repo.write(
        "syntax.yml",
        "title: Broken\ndetection:\n  sel: [unclosed\n",
    );
    repo.write("dupkey.yml", rule("Dup", None, "title: Again\n"));
    repo.write(
        "latin1.yml",
        b"title: caf\xe9\ndetection:\n  condition: x\n".as_slice(),
    );
    repo.write("types.yml", rule("Typed", None, "tags:\n    nested: map\n"));
    repo.write("notsigma.yml", "just: some\nother: yaml\n");
    repo.commit("mixed");

    let summary = env.build(&["--source", "r", "--out", "out"]);
    assert_eq!(summary["values"], 1);
    let warnings: Vec<&Json> = summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] != "missing-id")
        .collect();
    let found = findings(&summary, &["missing-id"]);
    let expected = [
        ("r:dupkey.yml", "duplicate-key"),
        ("r:latin1.yml", "not-utf8"),
        ("r:syntax.yml", "invalid-yaml"),
        ("r:types.yml", "wrong-type"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect();
    assert_eq!(found, expected, "{warnings:#?}");
    assert!(
        warnings.iter().all(|w| w["line"].as_u64().is_some()),
        "{warnings:#?}"
    );
    assert_eq!(warnings[1]["line"], 1, "non-UTF-8 byte on line 1");

    // --strict: exit 1, nothing written, the previous galaxy intact.
    let before = env.read("out/clusters/sigma-rules.json");
    let strict = env.run(&["build", "--source", "r", "--out", "out", "--strict"]);
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    assert!(strict.stderr.contains("syntax.yml"), "{}", strict.stderr);
    assert_eq!(env.read("out/clusters/sigma-rules.json"), before);
    let fresh = env.run(&["build", "--source", "r", "--out", "fresh", "--strict"]);
    assert_eq!(fresh.code, 1);
    assert!(!env.path("fresh").exists());
}

#[test]
fn duplicate_ids_and_missing_ids_get_derived_uuids() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("a.yml", rule("First", Some(ID_A), ""));
    repo.write("b.yml", rule("Second", Some(ID_A), ""));
    repo.write("c.yml", rule("No Id", None, ""));
    repo.commit("ids");
    let summary = env.build(&["--source", "r", "--out", "out"]);
    let values = by_title(&env.json("out/clusters/sigma-rules.json"));
    assert_eq!(values["First"]["uuid"], ID_A);
    let second = values["Second"]["uuid"].as_str().unwrap();
    let no_id = values["No Id"]["uuid"].as_str().unwrap();
    for u in [second, no_id] {
        let u = uuid::Uuid::parse_str(u).unwrap();
        assert_eq!(u.get_version_num(), 5);
    }
    assert_ne!(second, no_id);
    assert_eq!(
        findings(&summary, &["missing-id"]),
        [("r:b.yml".to_string(), "duplicate-id".to_string())]
    );
    let warnings: Vec<&Json> = summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "duplicate-id")
        .collect();
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    // Derived uuids depend on source name, path and index only: the same rule elsewhere is the same.
    let mut other = env.repo("elsewhere/r");
    other.write("c.yml", rule("No Id", None, "modified: 2024-05-06\n"));
    other.commit("x");
    env.build(&["--source", "elsewhere/r", "--out", "out2"]);
    assert_eq!(
        by_title(&env.json("out2/clusters/sigma-rules.json"))["No Id"]["uuid"],
        no_id
    );
}

#[test]
fn titles_colliding_without_case_are_made_unique() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("a.yml", rule("Same Title", None, ""));
    repo.write("b.yml", rule("SAME title", None, ""));
    repo.write(
        "q.yml",
        "title: The \"Quoted\" One\ndetection:\n    condition: x\n",
    );
    repo.commit("c");
    let summary = env.build(&["--source", "r", "--out", "out"]);
    let values = by_title(&env.json("out/clusters/sigma-rules.json"));
    let titles: Vec<&String> = values.keys().collect();
    assert_eq!(
        titles,
        ["SAME title (b.yml)", "Same Title", "The 'Quoted' One"]
    );
    let codes: Vec<String> = findings(&summary, &["missing-id", "missing-logsource"])
        .into_iter()
        .map(|(_, code)| code)
        .collect();
    assert_eq!(codes, ["duplicate-title", "title-quote"]);
    let check = env.run(&[
        "validate",
        "out/clusters/sigma-rules.json",
        "out/galaxies/sigma-rules.json",
    ]);
    assert_eq!(check.code, 0, "{}", check.stdout);
}

#[test]
fn attack_tags_and_sigma_relations_become_related_links() {
    let env = Env::new();
    let clusters = json!({"values": [
        {"uuid": "00000000-0000-4000-8000-000000000001", "value": "T", "meta": {"external_id": "T1059.001"}},
    ]});
    let groups = json!({"values": [
        {"uuid": "00000000-0000-4000-8000-000000000002", "value": "G", "meta": {"external_id": "G0007"}},
    ]});
    let tools = json!({"values": [
        {"uuid": "00000000-0000-4000-8000-000000000003", "value": "S", "meta": {"external_id": "S0002"}},
    ]});
    env.write("attack/mitre-attack-pattern.json", &clusters.to_string());
    env.write("attack/mitre-tool.json", &tools.to_string());
    env.write("attack/mitre-intrusion-set.json", &groups.to_string());
    let mut repo = env.repo("r");
    repo.write(
        "a.yml",
        rule(
            "Tagged",
            Some(ID_A),
            "tags:\n    - attack.execution\n    - attack.t1059.001\n    - attack.g0007\n    - attack.s0002\n",
        ),
    );
    repo.write(
        "b.yml",
        rule(
            "Derived",
            Some(ID_B),
            &format!("related:\n    - id: {ID_A}\n      type: derived\n    - id: 11111111-2222-4333-8444-555555555555\n      type: similar\n"),
        ),
    );
    repo.commit("c");
    env.build(&[
        "--source",
        "r",
        "--out",
        "out",
        "--attack-clusters",
        "attack",
    ]);
    let values = by_title(&env.json("out/clusters/sigma-rules.json"));
    let tag = "estimative-language:likelihood-probability=\"almost-certain\"";
    assert_eq!(
        values["Tagged"]["related"],
        json!([
            {"dest-uuid": "00000000-0000-4000-8000-000000000001", "tags": [tag], "type": "related-to"},
            {"dest-uuid": "00000000-0000-4000-8000-000000000002", "tags": [tag], "type": "related-to"},
            {"dest-uuid": "00000000-0000-4000-8000-000000000003", "tags": [tag], "type": "related-to"},
        ])
    );
    assert_eq!(
        values["Derived"]["related"],
        json!([{"dest-uuid": ID_A, "type": "derived-from"}])
    );
}

#[test]
fn versions_rise_with_content_and_stay_without_changes() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("a.yml", rule("A", None, ""));
    repo.commit("one");
    let first = env.build(&["--source", "r", "--out", "out"]);
    assert_eq!(first["version"], repo.last_time());
    // A commit that changes no rule: same content, same version, nothing written.
    repo.write("README.md", "docs");
    repo.commit("docs");
    let same = env.build(&["--source", "r", "--out", "out"]);
    assert_eq!(same["version"], first["version"]);
    assert_eq!(same["wrote"], false);
    // Building an older commit whose content differs: previous + 1, never lower.
    repo.write("b.yml", rule("B", None, ""));
    repo.commit("two");
    let second = env.build(&["--source", "r", "--out", "out"]);
    assert_eq!(second["version"], repo.last_time());
    assert_eq!(second["added"], 1);
    let back = env.build(&["--source", "r#HEAD~2", "--out", "out"]);
    assert_eq!(back["version"], repo.last_time() + 1);
    assert_eq!(back["removed"], 1);
    let galaxy = env.json("out/galaxies/sigma-rules.json");
    assert_eq!(
        galaxy["version"], second["version"],
        "the galaxy follows the clock, never back"
    );
}

#[test]
fn config_file_init_and_flag_overrides() {
    let env = Env::new();
    let init = env.run(&["init"]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    assert!(env.read("sigma-galaxy.yml").contains("sources:"));
    assert_eq!(
        env.run(&["init"]).code,
        2,
        "init never overwrites without --force"
    );

    let mut repo = env.repo("r");
    repo.write("rules/a.yml", rule("A", None, ""));
    repo.write("extra/b.yml", rule("B", None, ""));
    repo.commit("c");
    env.write(
        "cfg/galaxy.yml",
        "out: ../built\ninclude: ['rules/**']\nsources:\n  - name: in-house\n    location: ../r\n\
         galaxy:\n  type: in-house-rules\n  name: In-house rules\n  uuid: 6a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d\n",
    );
    let s = env.build(&["--config", "cfg/galaxy.yml"]);
    assert_eq!(s["sources"][0]["name"], "in-house");
    let cluster = env.json("built/clusters/in-house-rules.json");
    assert_eq!(cluster["name"], "In-house rules");
    assert_eq!(cluster["values"].as_array().unwrap().len(), 1);
    env.json("built/galaxies/in-house-rules.json");
    // Flags override the file.
    env.build(&[
        "--config",
        "cfg/galaxy.yml",
        "--include",
        "**",
        "--out",
        "flag-out",
    ]);
    assert_eq!(
        env.json("flag-out/clusters/in-house-rules.json")["values"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn usage_and_input_errors_have_distinct_exit_codes() {
    let env = Env::new();
    let none = env.run(&["build"]);
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("no sources"), "{}", none.stderr);
    env.write("bad.yml", "sources:\n  - location: x\n    colour: red\n");
    let bad = env.run(&["build", "--config", "bad.yml"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("bad.yml:"), "{}", bad.stderr);
    let missing = env.run(&["build", "--source", "nowhere"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("nowhere"), "{}", missing.stderr);
    let mut repo = env.repo("r");
    repo.write("a.yml", rule("A", None, ""));
    repo.commit("c");
    let badref = env.run(&["build", "--source", "r#no-such-branch"]);
    assert_eq!(badref.code, 1);
    assert!(
        badref.stderr.contains("no-such-branch"),
        "{}",
        badref.stderr
    );
    assert_eq!(env.run(&["frobnicate"]).code, 2);
}

#[test]
fn several_sources_merge_into_one_galaxy() {
    let env = Env::new();
    let mut first = env.repo("public");
    first.write("a.yml", rule("Shared Id", Some(ID_A), ""));
    first.write("b.yml", rule("Same Title", None, ""));
    first.commit("public rules");
    let mut second = env.repo("private");
    second.write("x.yml", rule("Shared Id Copy", Some(ID_A), ""));
    second.write("y.yml", rule("same title", None, ""));
    second.write("z.yml", rule("Only Here", Some(ID_B), ""));
    second.commit("in-house rules");

    let s = env.build(&["--source", "public", "--source", "private", "--out", "out"]);
    let names: Vec<&str> = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["public", "private"]);
    assert_eq!(s["values"], 4);
    let values = by_title(&env.json("out/clusters/sigma-rules.json"));
    // The source listed first wins a shared id; the other rule is dropped, with a warning since the
    // titles differ.
    assert_eq!(values["Shared Id"]["uuid"], ID_A);
    assert!(!values.contains_key("Shared Id Copy"));
    assert_eq!(values["Only Here"]["uuid"], ID_B);
    // Titles stay unique across sources, ignoring case; the later source's value is renamed after it.
    assert!(values.contains_key("Same Title"));
    assert!(
        values.contains_key("same title (private)"),
        "{:?}",
        values.keys()
    );
    let found = findings(&s, &["missing-id"]);
    let expected = [
        ("private:x.yml", "overridden-rule-title"),
        ("private:y.yml", "duplicate-title"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect();
    assert_eq!(found, expected);
    // Two sources: each value names its source.
    assert_eq!(values["Only Here"]["meta"]["source"], "private");
    assert_eq!(values["Shared Id"]["meta"]["source"], "public");
    // Same sources, other order: the other source's rule wins the id.
    env.build(&[
        "--source", "private", "--source", "public", "--out", "swapped",
    ]);
    let swapped = by_title(&env.json("swapped/clusters/sigma-rules.json"));
    assert_eq!(swapped["Shared Id Copy"]["uuid"], ID_A);
    assert!(!swapped.contains_key("Shared Id"));
    // Two sources with one name are a configuration error.
    let clash = env.run(&["build", "--source", "public", "--source", "public/"]);
    assert_eq!(clash.code, 2, "{}", clash.stderr);
}

#[test]
fn rule_links_point_at_the_commit_that_last_changed_the_file() {
    let env = Env::new();
    let mut repo = env.repo("rules");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "git@github.com:example/rules.git",
    ]);
    repo.write("rules/a.yml", rule("A", Some(ID_A), ""));
    repo.write("rules/b.yml", rule("B", Some(ID_B), ""));
    let first = repo.commit("two rules");
    repo.write(
        "rules/b.yml",
        rule("B", Some(ID_B), "modified: 2024-03-04\n"),
    );
    let second = repo.commit("edit b");
    repo.write("README.md", "docs");
    let third = repo.commit("docs only");

    let link = |out: &str, title: &str| -> String {
        let values = by_title(&env.json(&format!("{out}/clusters/sigma-rules.json")));
        let refs = values[title]["meta"]["refs"].as_array().unwrap().clone();
        refs.last().unwrap().as_str().unwrap().to_string()
    };
    let url =
        |rev: &str, file: &str| format!("https://github.com/example/rules/blob/{rev}/rules/{file}");
    let s = env.build(&["--source", "rules", "--out", "last"]);
    assert_eq!(s["sources"][0]["links"], true);
    assert_eq!(link("last", "A"), url(&first, "a.yml"));
    assert_eq!(link("last", "B"), url(&second, "b.yml"));
    env.build(&[
        "--source",
        "rules",
        "--out",
        "commit",
        "--ref-style",
        "commit",
    ]);
    assert_eq!(link("commit", "A"), url(&third, "a.yml"));
    env.build(&[
        "--source",
        "rules",
        "--out",
        "branch",
        "--ref-style",
        "branch",
    ]);
    assert_eq!(link("branch", "A"), url("main", "a.yml"));
}
