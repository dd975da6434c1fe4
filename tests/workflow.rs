//! `examples/github-workflow.yml`, run as GitHub would run it: its `run:` steps in order, in a rules
//! repository, for a pull request, a push to main and a tag, with the GitHub variables they read set.
//! `uses:` steps (checkout, the action that installs the tool, cache, upload) are GitHub's own; the
//! tool is put on PATH as the install step does.

use std::path::Path;
use std::process::Command;

use serde_json::Value as Json;

use crate::harness::{Env, Repo, rule};

/// A step of the workflow: its name, condition and script.
struct Step {
    name: String,
    condition: Option<String>,
    run: Option<String>,
}

fn workflow_steps() -> Vec<Step> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/github-workflow.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let workflow: Json = yaml_serde::from_str(&text).unwrap();
    let jobs = workflow["jobs"].as_object().unwrap();
    assert_eq!(jobs.len(), 1, "one job");
    let job = jobs.values().next().unwrap();
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Step {
            name: s["name"]
                .as_str()
                .or(s["uses"].as_str())
                .unwrap()
                .to_string(),
            condition: s["if"].as_str().map(str::to_string),
            run: s["run"].as_str().map(str::to_string),
        })
        .collect()
}

/// Evaluates the few expressions the example uses; anything else fails the test, so the example
/// cannot grow a condition this test silently ignores.
fn holds(condition: &str, event: &str, git_ref: &str) -> bool {
    condition.split("&&").all(|part| {
        let part = part.trim();
        if let Some(rest) = part.strip_prefix("github.event_name == ") {
            rest.trim_matches('\'') == event
        } else if let Some(rest) = part.strip_prefix("github.event_name != ") {
            rest.trim_matches('\'') != event
        } else if let Some(rest) = part
            .strip_prefix("startsWith(github.ref, ")
            .and_then(|r| r.strip_suffix(')'))
        {
            git_ref.starts_with(rest.trim_matches('\''))
        } else {
            panic!("the test does not know the condition {part:?}")
        }
    })
}

/// What running the steps for one event did: (step name, exit code, stdout) of each step run.
fn run_steps(env: &Env, repo: &Repo, event: &str, git_ref: &str) -> Vec<(String, i32, String)> {
    let bin = Path::new(env!("CARGO_BIN_EXE_sigma-galaxy"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let summary = env.path(&format!("summary-{event}.md"));
    let mut done = Vec::new();
    for step in workflow_steps() {
        if step
            .condition
            .as_deref()
            .is_some_and(|c| !holds(c, event, git_ref))
        {
            continue;
        }
        let Some(script) = step.run else { continue };
        let out = Command::new("bash")
            .args(["-e", "-c", &script])
            .current_dir(&repo.path)
            .env("PATH", &path)
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event)
            .env("GITHUB_REF", git_ref)
            .env("GITHUB_WORKSPACE", &repo.path)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("RUNNER_TEMP", env.path("runner-temp"))
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        done.push((
            step.name,
            code,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        if code != 0 {
            break;
        }
    }
    done
}

#[test]
fn the_example_workflow_runs_on_a_rules_repository() {
    let env = Env::new();
    let mut repo = env.repo("detections");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/example/detections.git",
    ]);
    repo.write(
        "sigma-galaxy.yml",
        "sources:\n  - location: .\n    include: ['rules/**']\n",
    );
    repo.write(
        "rules/a.yml",
        rule("Good", Some("3b1f6a2e-7c41-4d8a-9f0e-2a5c6d7e8f90"), ""),
    );
    repo.write("rules/b.yml", rule("No Id", None, ""));
    repo.commit("rules");

    // A pull request: annotations, and a passing job when there are only warnings.
    let pr = run_steps(&env, &repo, "pull_request", "refs/pull/7/merge");
    let names: Vec<&str> = pr.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["Check the rules"]);
    assert_eq!(pr[0].1, 0);
    assert_eq!(
        pr[0].2,
        "::warning file=rules/b.yml,line=1,title=missing-id::the rule has no `id`; a uuid is derived from where its file first appeared (detections)\n"
    );
    assert!(
        env.read("summary-pull_request.md")
            .contains("## sigma-galaxy check")
    );

    // A pull request that breaks a rule fails the job with an error annotation.
    repo.write(
        "rules/c.yml",
        rule(
            "Bad Level",
            Some("8d2e4c1a-5b3f-4e6d-a7c8-9b0a1c2d3e4f"),
            "",
        )
        .replace("level: high", "level: urgent"),
    );
    repo.commit("a bad rule");
    let broken = run_steps(&env, &repo, "pull_request", "refs/pull/8/merge");
    assert_eq!(broken[0].1, 1);
    assert!(
        broken[0]
            .2
            .contains("::error file=rules/c.yml,line=14,title=invalid-level::"),
        "{}",
        broken[0].2
    );
    repo.remove("rules/c.yml");
    repo.commit("fixed");

    // A push to main builds the galaxy where the upload step takes it from.
    let push = run_steps(&env, &repo, "push", "refs/heads/main");
    let names: Vec<&str> = push.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["Build the galaxy"]);
    assert_eq!(push[0].1, 0);
    let cluster: Json = serde_json::from_str(
        &std::fs::read_to_string(repo.path.join("galaxy/clusters/sigma-rules.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cluster["values"].as_array().unwrap().len(), 2);
    assert!(
        repo.path.join(".sigma-galaxy").is_dir(),
        "state for the cache step"
    );
    assert!(repo.path.join("sigma-galaxy.lock").is_file());

    // A tag builds, then releases exactly the commit the build pinned.
    let tag = run_steps(&env, &repo, "push", "refs/tags/v1.0.0");
    let names: Vec<(&str, i32)> = tag.iter().map(|(n, c, _)| (n.as_str(), *c)).collect();
    assert_eq!(names, [("Build the galaxy", 0), ("Release", 0)]);
    let sums = std::fs::read_to_string(repo.path.join("dist/SHA256SUMS")).unwrap();
    assert!(sums.contains("clusters/sigma-rules.json"), "{sums}");
    assert!(repo.path.join("dist.tar.gz").is_file());
}
