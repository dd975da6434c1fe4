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
                .filter(|(_, code)| code != "missing-id")
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
