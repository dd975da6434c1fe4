//! `diff`, `release`, `install` and value versions, run as the real binary on repositories built here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::harness::{Env, Repo, Run, by_title, rule};

const ID_A: &str = "11111111-1111-4111-8111-111111111111";
const ID_B: &str = "22222222-2222-4222-8222-222222222222";
const ID_C: &str = "33333333-3333-4333-8333-333333333333";
const ID_D: &str = "44444444-4444-4444-8444-444444444444";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A repository with three rules with ids and one without.
fn three_rules(env: &Env) -> Repo {
    let mut repo = env.repo("repo");
    repo.write("rules/a.yml", rule("Rule A", Some(ID_A), ""))
        .write("rules/b.yml", rule("Rule B", Some(ID_B), ""))
        .write(
            "rules/c.yml",
            rule("Rule C", Some(ID_C), "tags:\n    - attack.execution\n"),
        )
        .write("rules/noid.yml", rule("No Id", None, ""));
    repo.commit("first");
    repo
}

/// Copies a built cluster aside.
fn keep(env: &Env, from: &str, to: &str) {
    let p = env.path(to);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::copy(env.path(from), p).unwrap();
}

#[test]
fn diff_tells_added_removed_renamed_and_changed_values_apart() {
    let env = Env::new();
    let mut repo = three_rules(&env);
    let cluster = "galaxy/clusters/sigma-rules.json";
    env.build(&["--source", "repo"]);
    keep(&env, cluster, "old.json");
    repo.write("rules/a.yml", rule("Rule A renamed", Some(ID_A), ""))
        .remove("rules/b.yml")
        .write(
            "rules/c.yml",
            rule("Rule C", Some(ID_C), "tags:\n    - attack.persistence\n"),
        )
        .write("rules/d.yml", rule("Rule D", Some(ID_D), ""));
    repo.commit("second");
    env.build(&["--source", "repo"]);

    let run = env.run(&["diff", "old.json", cluster, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let d = run.json();
    let names = |key: &str, field: &str| -> Vec<String> {
        d[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[field].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("added", "uuid"), [ID_D]);
    assert_eq!(names("removed", "uuid"), [ID_B]);
    assert_eq!(names("renamed", "uuid"), [ID_A]);
    assert_eq!(names("renamed", "old"), ["Rule A"]);
    assert_eq!(names("renamed", "new"), ["Rule A renamed"]);
    // A local source has no web links: only Rule C's own edit is a change.
    let changed: BTreeMap<String, Vec<String>> = d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let fields = c["fields"].as_array().unwrap().iter();
            let fields = fields.map(|f| f["field"].as_str().unwrap().to_string());
            (c["value"].as_str().unwrap().to_string(), fields.collect())
        })
        .collect();
    // A local source has no web links: only the edited fields changed (the harness's description
    // names the title).
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(changed["Rule C"], ["meta.tags"]);
    assert_eq!(changed["Rule A renamed"], ["description"]);
    let tags = d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"] == "Rule C")
        .unwrap()["fields"][0]
        .clone();
    assert_eq!(tags["added"], serde_json::json!(["attack.persistence"]));
    assert_eq!(tags["removed"], serde_json::json!(["attack.execution"]));

    let md = env.run(&["diff", "old.json", cluster, "--format", "markdown"]);
    assert_eq!(md.code, 0);
    for line in [
        "| added | 1 |",
        "| removed | 1 |",
        "| renamed | 1 |",
        "| change | values |",
        "events tagged with the old name keep the old tag",
        "MISP never deletes values that disappear",
        "| Rule C | `meta.tags` | +attack.persistence, -attack.execution |",
    ] {
        assert!(
            md.stdout.contains(line),
            "{line:?} missing from\n{}",
            md.stdout
        );
    }
    let human = env.run(&["diff", cluster, cluster]);
    assert_eq!(human.code, 0, "no change still exits 0");
    assert!(
        human
            .stdout
            .contains("0 added, 0 removed, 0 renamed, 0 changed"),
        "{}",
        human.stdout
    );
}

/// Runs the binary from `cwd` with the given TZ, locale and umask.
fn release_in(cwd: &Path, tz: &str, umask: &str, args: &[&str]) -> Run {
    std::fs::create_dir_all(cwd).unwrap();
    let bin = env!("CARGO_BIN_EXE_sigma-galaxy");
    let mut script = format!("umask {umask}; exec '{bin}' release");
    for a in args {
        script.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(cwd)
        .env("TZ", tz)
        .env("LC_ALL", if tz == "UTC" { "C" } else { "C.UTF-8" })
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "release {args:?}: {}", run.stderr);
    run
}

fn abs(env: &Env, rel: &str) -> String {
    env.path(rel).to_str().unwrap().to_string()
}

/// The config and lockfile for the repository at `repo`.
fn configured(env: &Env) {
    env.write(
        "sigma-galaxy.yml",
        "sources:\n  - name: rules\n    location: repo\nref_style: last-change\n",
    );
    env.build(&["--config", "sigma-galaxy.yml"]);
}

#[test]
fn releases_are_byte_identical_whatever_the_cwd_tz_locale_umask_and_state() {
    let env = Env::new();
    let repo = three_rules(&env);
    configured(&env);
    let config = abs(&env, "sigma-galaxy.yml");
    let (one, two) = (abs(&env, "one/rel"), abs(&env, "two/rel"));
    let (s1, s2) = (abs(&env, "s1"), abs(&env, "s2"));
    release_in(
        &env.path("cwd1"),
        "UTC",
        "022",
        &[
            "--config",
            &config,
            "--out",
            &one,
            "--state",
            &s1,
            "--archive",
        ],
    );
    release_in(
        &env.path("cwd2/deeper"),
        "Pacific/Kiritimati",
        "077",
        &[
            "--config",
            &config,
            "--out",
            &two,
            "--state",
            &s2,
            "--archive",
        ],
    );
    let a = std::fs::read(env.path("one/rel.tar.gz")).unwrap();
    let b = std::fs::read(env.path("two/rel.tar.gz")).unwrap();
    assert_eq!(sha256(&a), sha256(&b), "archives differ");
    assert_eq!(
        env.read("one/rel/SHA256SUMS"),
        env.read("two/rel/SHA256SUMS")
    );

    // SHA256SUMS lists every other file of the bundle, and they match.
    let sums = env.read("one/rel/SHA256SUMS");
    let listed: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    assert_eq!(
        listed,
        [
            "clusters/sigma-rules.json",
            "galaxies/sigma-rules.json",
            "manifest.json"
        ]
    );
    for line in sums.lines() {
        let (sum, path) = line.split_once("  ").unwrap();
        assert_eq!(
            sha256(&std::fs::read(env.path("one/rel").join(path)).unwrap()),
            sum
        );
    }
    // The manifest: sources as locked, galaxy, checksums, the derived uuid's identity record.
    let m = env.json("one/rel/manifest.json");
    assert_eq!(m["sources"][0]["name"], "rules");
    assert_eq!(m["sources"][0]["location"], "repo");
    assert_eq!(
        m["sources"][0]["commit"].as_str().unwrap(),
        repo.git(&["rev-parse", "HEAD"])
    );
    assert_eq!(m["galaxy"]["values"], 4);
    assert_eq!(m["tool"]["version"], env!("CARGO_PKG_VERSION"));
    let cluster = env.json("one/rel/clusters/sigma-rules.json");
    assert_eq!(m["galaxy"]["version"], cluster["version"]);
    assert_eq!(
        m["files"]["clusters/sigma-rules.json"].as_str().unwrap(),
        sha256(env.read("one/rel/clusters/sigma-rules.json").as_bytes())
    );
    let ids = m["identities"].as_array().unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0]["path"], "rules/noid.yml");
    assert_eq!(ids[0]["uuid"], by_title(&cluster)["No Id"]["uuid"]);

    // The archive holds the bundle under its folder name, with fixed owners, modes and times.
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(a.as_slice()));
    let mut entries = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(
            h.mtime().unwrap() as i64,
            repo.last_time(),
            "newest commit time"
        );
        assert!(h.username().unwrap().unwrap_or("").is_empty());
        entries.push((e.path().unwrap().display().to_string(), h.mode().unwrap()));
    }
    assert!(
        entries.contains(&("rel/manifest.json".into(), 0o644)),
        "{entries:?}"
    );
    assert!(
        entries.contains(&("rel/clusters/".into(), 0o755)),
        "{entries:?}"
    );

    // SOURCE_DATE_EPOCH sets the archive's times.
    let out = Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"))
        .args([
            "release",
            "--config",
            &config,
            "--out",
            &one,
            "--state",
            &s1,
            "--archive",
        ])
        .env("SOURCE_DATE_EPOCH", "1234567890")
        .output()
        .unwrap();
    assert!(out.status.success());
    let c = std::fs::read(env.path("one/rel.tar.gz")).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(c.as_slice()));
    let first = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(first.header().mtime().unwrap(), 1_234_567_890);
}

#[test]
fn a_manifest_alone_reproduces_the_uuids_of_renamed_rules_without_id() {
    let env = Env::new();
    let mut repo = three_rules(&env);
    configured(&env);
    // The state follows the history: the id-less rule is renamed and keeps its first uuid.
    let first = by_title(&env.json("galaxy/clusters/sigma-rules.json"))["No Id"]["uuid"].clone();
    repo.rename("rules/noid.yml", "rules/moved/renamed.yml");
    repo.commit("rename");
    env.build(&["--config", "sigma-galaxy.yml"]);
    let config = abs(&env, "sigma-galaxy.yml");
    let one = abs(&env, "one/rel");
    release_in(
        &env.path("."),
        "UTC",
        "022",
        &["--config", &config, "--out", &one],
    );
    let released = env.json("one/rel/clusters/sigma-rules.json");
    assert_eq!(by_title(&released)["No Id"]["uuid"], first);

    // Another machine: a copy of the config, the lockfile and the manifest only; a fresh state.
    let other = Env::new();
    let clone = other.path("repo");
    let status = Command::new("git")
        .args(["clone", "-q", repo.path_str(), clone.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(env.path("sigma-galaxy.yml"), other.path("sigma-galaxy.yml")).unwrap();
    std::fs::copy(
        env.path("sigma-galaxy.lock"),
        other.path("sigma-galaxy.lock"),
    )
    .unwrap();
    other.write("prev/manifest.json", &env.read("one/rel/manifest.json"));
    let run = release_in(
        &other.path("."),
        "Europe/Paris",
        "077",
        &[
            "--config",
            &abs(&other, "sigma-galaxy.yml"),
            "--out",
            &abs(&other, "two/rel"),
            "--previous",
            &abs(&other, "prev"),
        ],
    );
    assert!(
        run.stderr.contains("seeded the UUID ledger with 1"),
        "{}",
        run.stderr
    );
    assert_eq!(
        other.read("two/rel/SHA256SUMS"),
        env.read("one/rel/SHA256SUMS"),
        "same bundle, uuids included"
    );
    assert!(
        !other.path("two/rel/CHANGELOG.md").exists(),
        "no previous cluster"
    );
}

#[test]
fn a_releases_changelog_is_the_markdown_diff_against_the_previous_bundle() {
    let env = Env::new();
    let mut repo = three_rules(&env);
    configured(&env);
    env.run(&[
        "release",
        "--config",
        "sigma-galaxy.yml",
        "--out",
        "dist/v1",
    ]);
    repo.write("rules/a.yml", rule("Rule A v2", Some(ID_A), ""))
        .remove("rules/b.yml");
    repo.commit("second");
    env.build(&["--config", "sigma-galaxy.yml"]);
    let run = env.run(&[
        "release",
        "--config",
        "sigma-galaxy.yml",
        "--out",
        "dist/v2",
        "--previous",
        "dist/v1",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let diff = env.run(&[
        "diff",
        "dist/v1/clusters/sigma-rules.json",
        "dist/v2/clusters/sigma-rules.json",
        "--format",
        "markdown",
    ]);
    assert_eq!(env.read("dist/v2/CHANGELOG.md"), diff.stdout);
    assert!(diff.stdout.contains("| renamed | 1 |"), "{}", diff.stdout);
    let v1 = env.json("dist/v1/manifest.json")["galaxy"]["version"]
        .as_i64()
        .unwrap();
    let v2 = env.json("dist/v2/manifest.json")["galaxy"]["version"]
        .as_i64()
        .unwrap();
    assert!(v2 > v1, "{v2} > {v1}");
    assert!(
        env.read("dist/v2/SHA256SUMS").contains("  CHANGELOG.md\n"),
        "the change log is checksummed"
    );
    // Releasing again replaces the bundle as a whole; a folder that is not a bundle is never replaced.
    let again = env.run(&[
        "release",
        "--config",
        "sigma-galaxy.yml",
        "--out",
        "dist/v2",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!env.path("dist/v2/CHANGELOG.md").exists());
    env.write("notabundle/keep.txt", "mine");
    let refused = env.run(&[
        "release",
        "--config",
        "sigma-galaxy.yml",
        "--out",
        "notabundle",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(env.read("notabundle/keep.txt"), "mine");
}

#[test]
fn release_builds_the_locked_commits_not_the_branch() {
    let env = Env::new();
    let mut repo = three_rules(&env);
    configured(&env);
    let locked = repo.git(&["rev-parse", "HEAD"]);
    repo.write("rules/d.yml", rule("Rule D", Some(ID_D), ""));
    repo.commit("not locked");
    let run = env.run(&["release", "--config", "sigma-galaxy.yml", "--out", "rel"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let m = env.json("rel/manifest.json");
    assert_eq!(m["sources"][0]["commit"].as_str().unwrap(), locked);
    assert_eq!(m["galaxy"]["values"], 4);
}

/// A pair to install: a cluster and galaxy of `kind` with the given uuid and version; `pad` makes
/// the cluster large.
fn pair(env: &Env, dir: &str, uuid: &str, version: i64, pad: usize) {
    let values: Vec<Json> = (0..pad.max(1))
        .map(|i| {
            serde_json::json!({"uuid": format!("00000000-0000-4000-8000-{i:012}"),
                "value": format!("v{i}"), "description": "x".repeat(2000)})
        })
        .collect();
    let cluster = serde_json::json!({"type": "in-house", "uuid": uuid, "version": version,
        "values": values, "name": "In-house"});
    let galaxy = serde_json::json!({"type": "in-house", "uuid": uuid, "version": version,
        "name": "In-house"});
    env.write(
        &format!("{dir}/clusters/in-house.json"),
        &cluster.to_string(),
    );
    env.write(
        &format!("{dir}/galaxies/in-house.json"),
        &galaxy.to_string(),
    );
}

const OURS: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

#[test]
fn install_checks_what_is_there_and_writes_readable_files() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("misp")).unwrap();
    pair(&env, "v1", OURS, 10, 1);
    let first = env.run(&["install", "--from", "v1", "--misp-dir", "misp"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        env.read("misp/clusters/in-house.json"),
        env.read("v1/clusters/in-house.json")
    );
    assert!(
        first
            .stderr
            .contains("sudo -u www-data /var/www/MISP/app/Console/cake Admin updateGalaxies"),
        "{}",
        first.stderr
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["misp/clusters/in-house.json", "misp/galaxies/in-house.json"] {
            let mode = std::fs::metadata(env.path(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "{f}");
        }
    }
    pair(&env, "v2", OURS, 11, 1);
    let upgrade = env.run(&["install", "--from", "v2", "--misp-dir", "misp"]);
    assert_eq!(upgrade.code, 0, "{}", upgrade.stderr);
    assert_eq!(
        env.read("misp/clusters/in-house.json"),
        env.read("v2/clusters/in-house.json")
    );

    // Same version, older version, another uuid: refused, nothing written.
    pair(&env, "same", OURS, 11, 2);
    pair(&env, "older", OURS, 9, 1);
    pair(
        &env,
        "foreign",
        "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
        12,
        1,
    );
    for (from, says) in [
        ("same", "MISP would ignore the update"),
        ("older", "has version 11, not lower than this one's 9"),
        ("foreign", "is another cluster of the same type"),
    ] {
        let run = env.run(&["install", "--from", from, "--misp-dir", "misp"]);
        assert_eq!(run.code, 1, "{from}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{from}: {}", run.stderr);
        assert!(run.stderr.contains("--force"), "{}", run.stderr);
        assert_eq!(
            env.read("misp/clusters/in-house.json"),
            env.read("v2/clusters/in-house.json"),
            "{from}: the installed pair is kept"
        );
    }
    let forced = env.run(&[
        "install",
        "--from",
        "foreign",
        "--misp-dir",
        "misp",
        "--force",
    ]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(
        forced.stderr.contains("warning (--force)"),
        "{}",
        forced.stderr
    );
    assert_eq!(
        env.read("misp/clusters/in-house.json"),
        env.read("foreign/clusters/in-house.json")
    );
}

#[test]
fn install_says_when_it_replaces_misps_own_sigma_galaxy() {
    let env = Env::new();
    three_rules(&env);
    env.build(&["--source", "repo"]);
    std::fs::create_dir_all(env.path("misp")).unwrap();
    let run = env.run(&["install", "--misp-dir", "misp"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("replaces MISP's own published Sigma galaxy"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`type`, `uuid` and `name`"),
        "{}",
        run.stderr
    );
    assert!(env.path("misp/clusters/sigma-rules.json").is_file());
}

#[test]
fn install_from_a_bundle_checks_its_sha256sums() {
    let env = Env::new();
    three_rules(&env);
    configured(&env);
    let run = env.run(&["release", "--config", "sigma-galaxy.yml", "--out", "rel"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::fs::create_dir_all(env.path("misp")).unwrap();
    let cluster = env.read("rel/clusters/sigma-rules.json");
    env.write(
        "rel/clusters/sigma-rules.json",
        &cluster.replace("Rule A", "Rule X"),
    );
    let damaged = env.run(&["install", "--from", "rel", "--misp-dir", "misp"]);
    assert_eq!(damaged.code, 1, "{}", damaged.stderr);
    assert!(damaged.stderr.contains("SHA256SUMS"), "{}", damaged.stderr);
    assert!(!env.path("misp/clusters").exists(), "nothing installed");
    env.write("rel/clusters/sigma-rules.json", &cluster);
    let intact = env.run(&["install", "--from", "rel", "--misp-dir", "misp"]);
    assert_eq!(intact.code, 0, "{}", intact.stderr);
    assert_eq!(env.read("misp/clusters/sigma-rules.json"), cluster);
}

/// A stand-in script that appends its arguments to `log` and exits with `code`.
fn recorder(env: &Env, name: &str, log: &Path, code: i32) -> PathBuf {
    let path = env.path(&format!("bin/{name}"));
    env.write(
        &format!("bin/{name}"),
        &format!(
            "#!/bin/sh\necho \"$0 $*\" >> '{}'\nexit {code}\n",
            log.display()
        ),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn update_misp_runs_cake_as_the_web_user_and_reports_its_status() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("misp")).unwrap();
    let log = env.path("calls.log");
    let cake = recorder(&env, "cake", &log, 0);
    let cake_s = cake.to_str().unwrap();
    pair(&env, "v1", OURS, 10, 1);
    // Already the web user: cake directly.
    let me = whoami();
    let run = env.run(&[
        "install",
        "--from",
        "v1",
        "--misp-dir",
        "misp",
        "--update-misp",
        "--cake",
        cake_s,
        "--web-user",
        &me,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("{cake_s} Admin updateGalaxies\n")
    );
    assert!(run.stderr.contains("exit status 0"), "{}", run.stderr);

    // Another user: through sudo (a stand-in sudo on PATH records its arguments and fails).
    std::fs::remove_file(&log).unwrap();
    recorder(&env, "sudo", &log, 3);
    pair(&env, "v2", OURS, 11, 1);
    let path = format!(
        "{}:{}",
        env.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"))
        .args([
            "install",
            "--from",
            "v2",
            "--misp-dir",
            "misp",
            "--update-misp",
            "--cake",
            cake_s,
        ])
        .args(["--web-user", "not-me-www"])
        .current_dir(env.dir.path())
        .env("PATH", path)
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 1, "cake's failure is reported: {}", run.stderr);
    assert!(run.stderr.contains("exit status 3"), "{}", run.stderr);
    let sudo = env.path("bin/sudo");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "{} -u not-me-www {cake_s} Admin updateGalaxies\n",
            sudo.display()
        )
    );
}

#[cfg(unix)]
#[test]
fn a_killed_install_leaves_every_file_whole() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("misp")).unwrap();
    pair(&env, "old", OURS, 10, 1);
    assert_eq!(
        env.run(&["install", "--from", "old", "--misp-dir", "misp"])
            .code,
        0
    );
    // About 20 MB: the write takes long enough to be interrupted.
    pair(&env, "new", OURS, 11, 10_000);
    let files = ["clusters/in-house.json", "galaxies/in-house.json"];
    let read = |dir: &str, f: &str| std::fs::read(env.path(&format!("{dir}/{f}"))).unwrap();
    let (mut killed, mut landed) = (0, 0);
    for attempt in 0..24u64 {
        // Put the old pair back, then kill a new install after a growing delay.
        for f in files {
            std::fs::write(env.path(&format!("misp/{f}")), read("old", f)).unwrap();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"))
            .args(["install", "--from", "new", "--misp-dir", "misp"])
            .current_dir(env.dir.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(attempt * 4));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            landed += 1;
        } else {
            killed += 1;
        }
        for f in files {
            let now = read("misp", f);
            assert!(
                now == read("old", f) || now == read("new", f),
                "attempt {attempt}: {f} is neither the old nor the new file ({} bytes)",
                now.len()
            );
        }
    }
    assert!(killed > 0, "no install was interrupted ({landed} finished)");
}

#[test]
fn value_versions_rise_only_for_values_whose_content_changed() {
    let env = Env::new();
    let mut repo = three_rules(&env);
    let cluster = "galaxy/clusters/sigma-rules.json";
    let galaxy = "galaxy/galaxies/sigma-rules.json";
    env.build(&["--source", "repo"]);
    let plain = env.json(cluster);
    // Turning it on changes no value's content: every value keeps the version MISP stored.
    env.build(&["--source", "repo", "--value-versions"]);
    let first = env.json(cluster);
    for v in by_title(&first).values() {
        assert_eq!(v["version"], plain["version"], "{}", v["value"]);
    }
    repo.write(
        "rules/c.yml",
        rule("Rule C", Some(ID_C), "tags:\n    - attack.persistence\n"),
    );
    repo.commit("edit c");
    env.build(&["--source", "repo", "--value-versions"]);
    let second = env.json(cluster);
    assert!(second["version"].as_i64() > first["version"].as_i64());
    let (before, after) = (by_title(&first), by_title(&second));
    for (title, v) in &after {
        if title == "Rule C" {
            assert_eq!(
                v["version"], second["version"],
                "changed: the new cluster version"
            );
        } else {
            assert_eq!(
                v["version"], before[title]["version"],
                "{title} kept its version"
            );
        }
    }
    // misp-galaxy's schema forbids it; validate --value-versions accepts it.
    let strict = env.run(&["validate", cluster, galaxy]);
    assert_eq!(strict.code, 1);
    assert!(
        strict.stdout.contains("\"version\" is not allowed"),
        "{}",
        strict.stdout
    );
    let accepting = env.run(&["validate", "--value-versions", cluster, galaxy]);
    assert_eq!(accepting.code, 0, "{}", accepting.stdout);
    // Configured in the file, the same.
    env.write(
        "vv.yml",
        "value_versions: true\nout: vv\nsources:\n  - name: repo\n    location: repo\n",
    );
    env.build(&["--config", "vv.yml"]);
    assert!(env.json("vv/clusters/sigma-rules.json")["values"][0]["version"].is_i64());
}

#[test]
fn released_value_versions_continue_from_the_previous_bundle() {
    let env = Env::new();
    let mut repo = three_rules(&env);
    configured(&env);
    let release = |out: &str, previous: Option<&str>| {
        let mut args = vec![
            "release",
            "--config",
            "sigma-galaxy.yml",
            "--out",
            out,
            "--value-versions",
        ];
        if let Some(p) = previous {
            args.extend(["--previous", p]);
        }
        let run = env.run(&args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        by_title(&env.json(&format!("{out}/clusters/sigma-rules.json")))
    };
    let v1 = release("v1", None);
    repo.write(
        "rules/b.yml",
        rule("Rule B", Some(ID_B), "tags:\n    - attack.t1059\n"),
    );
    repo.commit("edit b");
    env.build(&["--config", "sigma-galaxy.yml"]);
    let v2 = release("v2", Some("v1"));
    for (title, v) in &v2 {
        let (old, new) = (v1[title]["version"].as_i64(), v["version"].as_i64());
        if title == "Rule B" {
            assert!(new > old, "{title}: {new:?} > {old:?}");
        } else {
            assert_eq!(new, old, "{title} keeps its version");
        }
    }
}
