//! `sigma-galaxy check`, `build --check` and the CI guards: findings with stable codes in every format,
//! empty sources, stable source names, the lockfile's place, `--version`, completions and man pages.

use serde_json::{Value as Json, json};

use crate::harness::{Env, Repo, rule};

const ID: [&str; 4] = [
    "3b1f6a2e-7c41-4d8a-9f0e-2a5c6d7e8f90",
    "8d2e4c1a-5b3f-4e6d-a7c8-9b0a1c2d3e4f",
    "c0ffee00-1234-4abc-8def-0123456789ab",
    "0badf00d-0000-4000-8000-000000000001",
];

/// A rule with an id and everything Sigma asks for.
fn good(title: &str, id: &str, extra: &str) -> String {
    rule(title, Some(id), extra)
}

/// A repository holding one rule file for each kind of finding, and ATT&CK clusters knowing T1059.
fn fixture(env: &Env) -> Repo {
    env.write(
        "attack/mitre-attack-pattern.json",
        &json!({"values": [{"uuid": "00000000-0000-4000-8000-000000000001", "value": "T",
            "meta": {"external_id": "T1059"}}]})
        .to_string(),
    );
    let mut repo = env.repo("r");
    let id = |n: u32| format!("00000000-0000-4000-8000-{n:012}");
    repo.write("rules/good.yml", good("Good", ID[0], ""));
    repo.write("rules/bad-yaml.yml", "title: [unclosed\n");
    repo.write(
        "rules/dup-key.yml",
        good("Dup Key", &id(1), "title: Dup Key Again\n"),
    );
    repo.write(
        "rules/latin1.yml",
        b"title: caf\xe9\ndetection:\n  condition: x\n".as_slice(),
    );
    repo.write(
        "rules/wrong-type.yml",
        good("Wrong Type", &id(2), "tags:\n    nested: map\n"),
    );
    repo.write(
        "rules/no-title.yml",
        "id: 00000000-0000-4000-8000-000000000003\nlogsource:\n    product: windows\ndetection:\n    condition: x\n",
    );
    repo.write(
        "rules/no-detection.yml",
        "title: No Detection\nid: 00000000-0000-4000-8000-000000000004\nlogsource:\n    product: windows\n",
    );
    repo.write(
        "rules/no-logsource.yml",
        "title: No Logsource\nid: 00000000-0000-4000-8000-000000000005\nstatus: test\ndetection:\n    condition: x\nlevel: low\n",
    );
    repo.write("rules/no-id.yml", rule("No Id", None, ""));
    repo.write("rules/bad-id.yml", good("Bad Id", "not-a-uuid", ""));
    repo.write("rules/dup-id-a.yml", good("Dup Id A", ID[1], ""));
    repo.write("rules/dup-id-b.yml", good("Dup Id B", ID[1], ""));
    repo.write("rules/title-a.yml", good("Same Title", ID[2], ""));
    repo.write("rules/title-b.yml", good("same title", ID[3], ""));
    repo.write(
        "rules/bad-date.yml",
        good("Bad Date", &id(6), "").replace("date: 2024-01-02", "date: 2023-02-29"),
    );
    repo.write(
        "rules/modified-before.yml",
        good("Modified Before", &id(7), "modified: 2023-12-31\n"),
    );
    repo.write(
        "rules/bad-level.yml",
        good("Bad Level", &id(8), "").replace("level: high", "level: severe"),
    );
    repo.write(
        "rules/bad-status.yml",
        good("Bad Status", &id(9), "").replace("status: test", "status: production"),
    );
    repo.write(
        "rules/unknown-tag.yml",
        good(
            "Unknown Tag",
            &id(10),
            "tags:\n    - attack.execution\n    - attack.t1059\n    - attack.t9999\n",
        ),
    );
    repo.write("rules/long-title.yml", good(&"L".repeat(300), &id(11), ""));
    repo.write("rules/emoji.yml", good("Emoji 😀 Title", &id(12), ""));
    repo.write(
        "rules/quote.yml",
        good("Quoted", &id(13), "").replace("title: Quoted", "title: 'The \"Quoted\" One'"),
    );
    repo.write(
        "rules/custom-tag.yml",
        good("Custom Tag", &id(14), "")
            .replace("condition: selection", "condition: !custom selection"),
    );
    repo.write(
        "rules/bad-collection.yml",
        "action: bogus\ntitle: Bad Collection\n",
    );
    repo.commit("one rule of each kind");
    repo
}

fn check(env: &Env, extra: &[&str]) -> crate::harness::Run {
    let mut args = vec![
        "check",
        "--source",
        "r",
        "--attack-clusters",
        "attack",
        "--state",
        "st",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// The GitHub annotation of every finding kind, exactly.
const GITHUB: &str = r#"::error file=rules/bad-collection.yml,line=1,title=invalid-collection::unknown Sigma collection action `bogus` (r)
::error file=rules/bad-date.yml,line=6,title=invalid-date::`date` "2023-02-29" is not a real date written YYYY-MM-DD (r)
::error file=rules/bad-id.yml,line=1,title=invalid-id::id "not-a-uuid" is not a UUID; a derived uuid is used (r)
::error file=rules/bad-level.yml,line=14,title=invalid-level::`level` "severe" is not one of informational, low, medium, high, critical (r)
::error file=rules/bad-status.yml,line=3,title=invalid-status::`status` "production" is not one of stable, test, experimental, deprecated, unsupported (r)
::error file=rules/bad-yaml.yml,line=1,title=invalid-yaml::invalid YAML: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 8 (r)
::error file=rules/custom-tag.yml,line=13,title=unsafe-yaml-tag::unsafe YAML tag `!custom`: only plain YAML is read (r)
::error file=rules/dup-id-b.yml,line=1,title=duplicate-id::id 8d2e4c1a-5b3f-4e6d-a7c8-9b0a1c2d3e4f is already used by r:rules/dup-id-a.yml; a derived uuid is used (r)
::error file=rules/dup-key.yml,line=7,title=duplicate-key::duplicate key `title` at line 7 column 1 (r)
::warning file=rules/emoji.yml,line=1,title=title-4-byte-char::title has 4-byte UTF-8 characters, which MISP cannot store; replaced (r)
::error file=rules/latin1.yml,line=1,title=not-utf8::the file is not valid UTF-8 (r)
::warning file=rules/long-title.yml,line=1,title=title-too-long::title is too long for MISP's 255-character tag; shortened (r)
::warning file=rules/modified-before.yml,line=7,title=modified-before-date::`modified` 2023-12-31 is before `date` 2024-01-02 (r)
::error file=rules/no-detection.yml,line=1,title=missing-detection::the document has a `title` but no `detection`, `correlation` or `filter` (r)
::warning file=rules/no-id.yml,line=1,title=missing-id::the rule has no `id`; a uuid is derived from where its file first appeared (r)
::error file=rules/no-logsource.yml,line=1,title=missing-logsource::the detection rule has no `logsource` (category, product or service) (r)
::error file=rules/no-title.yml,line=1,title=missing-title::the rule has no `title` (or an empty one) (r)
::warning file=rules/quote.yml,line=1,title=title-quote::title contains '"', which breaks MISP tags; replaced with "'" (r)
::warning file=rules/title-b.yml,line=1,title=duplicate-title::title "same title" is already used by another rule (MISP ignores case); renamed to "same title (title-b.yml)" (r)
::warning file=rules/unknown-tag.yml,line=1,title=unknown-attack-tag::tag "attack.t9999" matches nothing in the ATT&CK clusters (r)
::error file=rules/wrong-type.yml,line=7,title=wrong-type::`tags` must be a list of texts or one text, not a mapping (r)
"#;

#[test]
fn check_reports_every_finding_kind_in_github_and_json_formats() {
    let env = Env::new();
    fixture(&env);
    let github = check(&env, &["--format", "github"]);
    assert_eq!(github.code, 1, "{}", github.stderr);
    assert_eq!(github.stdout, GITHUB);
    assert!(
        github
            .stderr
            .contains("14 error(s), 7 warning(s), 0 note(s) in 24 rule file(s)"),
        "{}",
        github.stderr
    );
    assert!(!env.path("st").exists(), "check writes no state");

    // JSON: the same findings, with source, path (relative to the repository root), line, code and
    // severity as separate fields.
    let json = check(&env, &["--format", "json"]);
    assert_eq!(json.code, 1, "{}", json.stderr);
    let report: Json = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        report["counts"],
        json!({"error": 14, "warning": 7, "note": 0})
    );
    assert_eq!(report["files"], 24);
    assert_eq!(report["failed"], true);
    let lines: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["source"], "r");
            let severity = match f["severity"].as_str().unwrap() {
                "note" => "notice",
                s => s,
            };
            format!(
                "::{severity} file={},line={},title={}::{} (r)",
                f["path"].as_str().unwrap(),
                f["line"],
                f["code"].as_str().unwrap(),
                f["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(lines.join("\n") + "\n", GITHUB);
    assert_eq!(
        report["findings"][0],
        json!({"source": "r", "path": "rules/bad-collection.yml", "line": 1,
            "code": "invalid-collection", "severity": "error",
            "message": "unknown Sigma collection action `bogus`"})
    );

    // build reports the same findings with the same codes.
    let built = env.build(&[
        "--source",
        "r",
        "--attack-clusters",
        "attack",
        "--out",
        "out",
    ]);
    assert_eq!(built["warnings"], report["findings"]);
}

#[test]
fn fail_on_and_the_other_formats() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("a.yml", rule("No Id", None, ""));
    repo.write("b.yml", good("Fine", ID[0], ""));
    repo.commit("a warning only");
    let default = env.run(&["check", "--source", "r"]);
    assert_eq!(default.code, 0, "{}", default.stderr);
    assert_eq!(
        default.stdout,
        "r:a.yml\n  1: warning[missing-id] the rule has no `id`; a uuid is derived from where its file first appeared\n"
    );
    let strict = env.run(&["check", "--source", "r", "--fail-on", "warning"]);
    assert_eq!(strict.code, 1, "{}", strict.stderr);

    let junit = env.run(&[
        "check",
        "--source",
        "r",
        "--format",
        "junit",
        "--fail-on",
        "warning",
    ]);
    assert_eq!(junit.code, 1);
    assert_eq!(
        junit.stdout.matches("<testcase ").count(),
        2,
        "{}",
        junit.stdout
    );
    assert_eq!(
        junit.stdout.matches("<failure").count(),
        1,
        "{}",
        junit.stdout
    );
    assert!(junit.stdout.contains(r#"name="a.yml""#), "{}", junit.stdout);

    // The step summary is appended to the file GitHub names.
    env.write("summary.md", "earlier step\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"))
        .args(["check", "--source", "r", "--format", "github"])
        .current_dir(env.dir.path())
        .env("GITHUB_STEP_SUMMARY", env.path("summary.md"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary = env.read("summary.md");
    assert!(
        summary.starts_with("earlier step\n## sigma-galaxy check\n"),
        "{summary}"
    );
    assert!(
        summary.contains("| `missing-id` | warning | 1 |"),
        "{summary}"
    );
    assert!(
        summary.contains("| `r:a.yml` | 1 | `missing-id` |"),
        "{summary}"
    );
}

#[test]
fn sources_without_rules_fail_and_leave_the_galaxy_alone() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("rules/a.yml", good("A", ID[0], ""));
    repo.commit("one rule");
    repo.git(&["branch", "empty-ref"]);
    env.build(&["--source", "r", "--out", "out"]);
    let galaxy = env.read("out/clusters/sigma-rules.json");

    // An include that matches nothing.
    let wrong_glob = env.run(&[
        "build",
        "--source",
        "r",
        "--out",
        "out",
        "--include",
        "rulez/**",
    ]);
    assert_eq!(wrong_glob.code, 1, "{}", wrong_glob.stderr);
    assert_eq!(
        wrong_glob.stderr.trim(),
        format!(
            "error: source r: no rule files at HEAD ({}), include rulez/**: check the ref and the globs, or set `allow_empty: true` on the source",
            &repo.git(&["rev-parse", "HEAD"])[..12]
        )
    );
    let checked = env.run(&["check", "--source", "r", "--include", "rulez/**"]);
    assert_eq!(checked.code, 1);
    assert!(
        checked.stderr.starts_with("error: source r: no rule files"),
        "{}",
        checked.stderr
    );

    // A ref with no rules.
    repo.git(&["checkout", "-q", "empty-ref"]);
    repo.remove("rules/a.yml");
    repo.commit("no rules left");
    repo.git(&["checkout", "-q", "main"]);
    let empty_ref = env.run(&["build", "--source", "r#empty-ref", "--out", "out"]);
    assert_eq!(empty_ref.code, 1, "{}", empty_ref.stderr);
    assert!(
        empty_ref
            .stderr
            .contains("source r: no rule files at empty-ref"),
        "{}",
        empty_ref.stderr
    );

    // An empty repository (a commit without files).
    let mut bare = env.repo("nothing");
    bare.commit("empty");
    let nothing = env.run(&["build", "--source", "nothing", "--out", "out"]);
    assert_eq!(nothing.code, 1, "{}", nothing.stderr);
    assert!(
        nothing.stderr.contains("source nothing: no rule files"),
        "{}",
        nothing.stderr
    );
    assert_eq!(
        env.read("out/clusters/sigma-rules.json"),
        galaxy,
        "untouched"
    );

    // A source whose files give no value (all broken) never replaces a galaxy that has values...
    let mut broken = env.repo("broken");
    broken.write("bad.yml", "title: [unclosed\n");
    broken.commit("broken");
    let emptied = env.run(&["build", "--source", "broken", "--out", "out"]);
    assert_eq!(emptied.code, 1, "{}", emptied.stderr);
    assert!(
        emptied
            .stderr
            .contains("the sources give 0 values but this galaxy has 1: not replacing it"),
        "{}",
        emptied.stderr
    );
    assert_eq!(
        env.read("out/clusters/sigma-rules.json"),
        galaxy,
        "untouched"
    );
    // ... unless every source says it may be empty.
    let allowed = env.run(&[
        "build",
        "--source",
        "nothing",
        "--source",
        "broken",
        "--out",
        "out",
        "--allow-empty",
    ]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    assert_eq!(
        env.json("out/clusters/sigma-rules.json")["values"],
        json!([])
    );
}

#[test]
fn one_repository_in_two_folders_gives_the_same_galaxy() {
    let env = Env::new();
    let mut origin = env.repo("upstream/detections");
    origin.write("rules/a.yml", rule("No Id", None, ""));
    origin.write("rules/b.yml", good("With Id", ID[0], ""));
    origin.commit("rules");
    for folder in ["checkout-one", "work/other-name"] {
        let status = std::process::Command::new("git")
            .args(["clone", "-q", "upstream/detections", folder])
            .current_dir(env.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let one = env.build(&["--source", "checkout-one", "--out", "one"]);
    let two = env.build(&["--source", "work/other-name", "--out", "two"]);
    assert_eq!(one["sources"][0]["name"], "detections");
    assert_eq!(two["sources"][0]["name"], "detections");
    assert!(one.get("notices").is_none(), "{one:#}");
    assert_eq!(
        env.read("one/clusters/sigma-rules.json"),
        env.read("two/clusters/sigma-rules.json")
    );
    // Without an origin remote the folder name serves, and the run says what that means.
    let local = env.build(&["--source", "upstream/detections", "--out", "three"]);
    assert_eq!(local["sources"][0]["name"], "detections");
    assert!(
        local["notices"][0]
            .as_str()
            .unwrap()
            .contains("named after its folder"),
        "{local:#}"
    );
}

#[test]
fn the_lockfile_goes_beside_the_config_file_or_where_asked() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("a.yml", good("A", ID[0], ""));
    repo.commit("a");
    env.build(&["--source", "r", "--out", "out"]);
    assert!(
        !env.path("sigma-galaxy.lock").exists(),
        "no config: no lockfile"
    );
    assert!(!env.path("r/sigma-galaxy.lock").exists());
    env.build(&["--source", "r", "--out", "out", "--lockfile", "pins.lock"]);
    assert!(
        env.read("pins.lock")
            .contains(&repo.git(&["rev-parse", "HEAD"]))
    );
    env.write(
        "cfg/sigma-galaxy.yml",
        "sources:\n  - name: r\n    location: ../r\n",
    );
    env.build(&["--config", "cfg/sigma-galaxy.yml"]);
    assert!(env.path("cfg/sigma-galaxy.lock").is_file());
    let locked = env.run(&["build", "--source", "r", "--locked"]);
    assert_eq!(locked.code, 2, "{}", locked.stderr);
    assert!(
        locked.stderr.contains("--locked needs a lockfile"),
        "{}",
        locked.stderr
    );
}

#[test]
fn build_check_says_whether_the_outputs_are_current_and_writes_nothing() {
    let env = Env::new();
    let mut repo = env.repo("r");
    repo.write("a.yml", good("A", ID[0], ""));
    repo.commit("a");
    let stale = env.run(&["build", "--source", "r", "--out", "out", "--check"]);
    assert_eq!(stale.code, 1, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("out of date: a build would rewrite"),
        "{}",
        stale.stderr
    );
    assert!(!env.path("out").exists() && !env.path(".sigma-galaxy").exists());
    env.build(&["--source", "r", "--out", "out"]);
    let state_before = std::fs::read_dir(env.path(".sigma-galaxy"))
        .unwrap()
        .count();
    let current = env.run(&["build", "--source", "r", "--out", "out", "--check"]);
    assert_eq!(current.code, 0, "{}", current.stderr);
    assert!(
        current.stderr.contains("up to date: "),
        "{}",
        current.stderr
    );

    repo.write("b.yml", good("B", ID[1], ""));
    repo.commit("b");
    let cluster = env.read("out/clusters/sigma-rules.json");
    let behind = env.run(&[
        "build", "--source", "r", "--out", "out", "--check", "--json",
    ]);
    assert_eq!(behind.code, 1, "{}", behind.stderr);
    let summary = behind.json();
    assert_eq!(
        (summary["added"].as_u64(), summary["wrote"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(
        env.read("out/clusters/sigma-rules.json"),
        cluster,
        "nothing written"
    );
    assert_eq!(
        std::fs::read_dir(env.path(".sigma-galaxy"))
            .unwrap()
            .count(),
        state_before
    );
    let after = env.build(&["--source", "r", "--out", "out"]);
    assert_eq!(
        after["parsed"], 1,
        "the dry run saved no cache entry: {after:#}"
    );
}

#[test]
fn version_completions_and_man_pages() {
    let env = Env::new();
    let version = env.run(&["--version"]);
    assert_eq!(version.code, 0);
    let text = version.stdout.trim();
    assert!(
        text.starts_with(&format!("sigma-galaxy {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.ends_with(')'), "{text}");

    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = env.run(&["completions", shell]);
        assert_eq!(script.code, 0, "{shell}: {}", script.stderr);
        for word in ["check", "fail-on", "attack-clusters"] {
            assert!(script.stdout.contains(word), "{shell} completes {word}");
        }
    }
    let man = env.run(&["man", "--out", "man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    let page = env.read("man/sigma-galaxy-check.1");
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq"),
        "roff: {}",
        &page[..40]
    );
    assert!(page.contains("fail\\-on"), "{page}");
    for name in [
        "sigma-galaxy.1",
        "sigma-galaxy-build.1",
        "sigma-galaxy-validate.1",
    ] {
        assert!(env.path("man").join(name).is_file(), "{name}");
    }
}
