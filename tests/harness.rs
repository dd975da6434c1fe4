//! Test harness: a temporary folder, git repositories built commit by commit with pinned dates, and the
//! `sigma-galaxy` binary run inside the folder.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

/// The first commit's time; each commit is one minute later.
pub const EPOCH: i64 = 1_750_000_000;

/// A temporary folder in which the binary runs.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A new repository (working tree) at `rel`.
    pub fn repo(&self, rel: &str) -> Repo {
        let path = self.path(rel);
        std::fs::create_dir_all(&path).unwrap();
        let repo = Repo { path, commits: 0 };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// Runs `sigma-galaxy ARGS` in the folder.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_sigma-galaxy"))
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        Run::from(out)
    }

    /// Runs a build that must succeed and returns its JSON summary.
    pub fn build(&self, args: &[&str]) -> Json {
        let mut all = vec!["build", "--json"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        assert_eq!(run.code, 0, "build {args:?} failed:\n{}", run.stderr);
        run.json()
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn json(&self, rel: &str) -> Json {
        serde_json::from_str(&self.read(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A git repository with a working tree, committed to with pinned dates and identities.
pub struct Repo {
    pub path: PathBuf,
    pub commits: i64,
}

impl Repo {
    pub fn git(&self, args: &[&str]) -> String {
        let date = format!("@{} +0000", EPOCH + self.commits * 60);
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.path)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Rule Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.invalid")
            .env("GIT_COMMITTER_NAME", "Rule Author")
            .env("GIT_COMMITTER_EMAIL", "author@example.invalid")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Repo {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn remove(&self, rel: &str) -> &Repo {
        self.git(&["rm", "-q", rel]);
        self
    }

    pub fn rename(&self, from: &str, to: &str) -> &Repo {
        if let Some(parent) = Path::new(to).parent() {
            std::fs::create_dir_all(self.path.join(parent)).unwrap();
        }
        self.git(&["mv", from, to]);
        self
    }

    /// Commits everything; returns the new commit's id.
    pub fn commit(&mut self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.commits += 1;
        self.git(&["rev-parse", "HEAD"])
    }

    /// The committer time of the last commit.
    pub fn last_time(&self) -> i64 {
        EPOCH + (self.commits - 1) * 60
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

/// A small Sigma rule.
pub fn rule(title: &str, id: Option<&str>, extra: &str) -> String {
    let id = id.map(|i| format!("id: {i}\n")).unwrap_or_default();
    format!(
        "title: {title}\n{id}status: test\ndescription: Detects {title}.\nauthor: Tester\ndate: 2024-01-02\n\
         {extra}logsource:\n    category: process_creation\n    product: windows\n\
         detection:\n    selection:\n        Image|endswith: '\\x.exe'\n    condition: selection\nlevel: high\n"
    )
}

/// The values of a cluster, by title.
pub fn by_title(cluster: &Json) -> std::collections::BTreeMap<String, Json> {
    cluster["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["value"].as_str().unwrap().to_string(), v.clone()))
        .collect()
}

/// The `(source:path, code)` of a summary's warnings, leaving out the codes in `skip` (e.g. the
/// `missing-id` of fixtures written without ids).
pub fn findings(summary: &Json, skip: &[&str]) -> Vec<(String, String)> {
    summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| !skip.contains(&w["code"].as_str().unwrap()))
        .map(|w| {
            let file = format!(
                "{}:{}",
                w["source"].as_str().unwrap(),
                w["path"].as_str().unwrap()
            );
            (file, w["code"].as_str().unwrap().to_string())
        })
        .collect()
}
