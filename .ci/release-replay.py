#!/usr/bin/env python3
"""Replays the last commits of a repository through incremental `--value-versions` builds and checks
`sigma-galaxy diff` and per-value versions against git.

Usage: release-replay.py SIGMA_GALAXY REPO WORK_DIR [--last K]

One state folder, one output folder; each of the last K first-parent commits of `main` is built in
order (a config pinning the source to that commit, with a web link template so that every value
names its file). For every pair of consecutive builds:
  - diff (JSON): the files of the values added, changed or renamed are exactly the rule files git's
    diff of the two commits adds, modifies or renames to, and the old files of the values removed or
    moved are exactly those it deletes or renames from (restricted to files that give values; links
    point at the commit that last changed a file, so any edit is a change; a file rewritten under a
    new name keeps its id, so git's add and delete are one changed value);
  - value versions: the values whose `version` rose are exactly those whose content (all but
    `version`) changed or that are new, and every other value kept its version.
Exit 1 on the first failure.
"""
import argparse
import json
import os
import subprocess
import sys

LINK = "https://example.invalid/sigma/blob/{commit}/{path}"
PREFIX = "https://example.invalid/sigma/blob/"


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def is_rule(path):
    return path.endswith(".yml") or path.endswith(".yaml")


def value_path(v):
    for ref in v.get("meta", {}).get("refs", []):
        if ref.startswith(PREFIX):
            return ref[len(PREFIX):].split("/", 1)[1]
    raise SystemExit(f"value {v['value']!r} has no rule link")


def content(v):
    return json.dumps({k: x for k, x in v.items() if k != "version"}, sort_keys=True)


def git_changes(repo, old, new):
    """Rule files added, deleted, modified (or renamed to), and renamed from."""
    added, deleted, modified, renamed_from = set(), set(), set(), set()
    out = git(repo, "diff", "--name-status", "-z", "-M", old, new).split("\0")
    i = 0
    while i < len(out) - 1:
        status = out[i]
        if status[0] in "RC":
            src, dst = out[i + 1], out[i + 2]
            i += 3
            if is_rule(dst):
                modified.add(dst)
            if status[0] == "R" and is_rule(src):
                renamed_from.add(src)
        else:
            path = out[i + 1]
            i += 2
            if not is_rule(path):
                continue
            {"A": added, "D": deleted}.get(status[0], modified).add(path)
    return added, deleted, modified, renamed_from


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("repo")
    ap.add_argument("work")
    ap.add_argument("--last", type=int, default=40)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    commits = git(a.repo, "rev-list", "--first-parent", "--reverse", "main").split()[-(a.last + 1):]
    cfg = os.path.join(a.work, "sigma-galaxy.yml")
    cluster = os.path.join(a.work, "out", "clusters", "sigma-rules.json")
    prev = None
    checked = {"added": 0, "removed": 0, "changed": 0, "files": 0, "rose": 0, "kept": 0}
    for n, commit in enumerate(commits):
        with open(cfg, "w") as f:
            f.write(f"out: out\nstate: state\nvalue_versions: true\nsources:\n  - name: sigmahq\n"
                    f"    location: {os.path.abspath(a.repo)}\n    ref: {commit}\n    web_url: '{LINK}'\n")
        subprocess.run([a.bin, "build", "--quiet", "--config", cfg], check=True)
        with open(cluster) as f:
            cur = json.load(f)
        if prev is not None:
            old_commit, old_path, old = prev
            saved = os.path.join(a.work, "previous.json")
            with open(saved, "w") as f:
                json.dump(old, f)
            d = json.loads(subprocess.run([a.bin, "diff", saved, cluster, "--format", "json"], check=True,
                                          capture_output=True, text=True).stdout)
            old_by = {v["uuid"]: v for v in old["values"]}
            new_by = {v["uuid"]: v for v in cur["values"]}
            old_files = {value_path(v) for v in old["values"]}
            new_files = {value_path(v) for v in cur["values"]}
            ga, gd, gm, gr = git_changes(a.repo, old_commit, commit)
            # New side: every added, modified or renamed-to file is the file of an added, changed or
            # renamed value, and no other. Old side: every deleted or renamed-from file is the old
            # file of a removed value or of a value that moved (a rule file rewritten under a new
            # name keeps its id: git sees an add and a delete, MISP the same value).
            kept = d["changed"] + d["renamed"]
            moved = {value_path(old_by[e["uuid"]]) for e in kept
                     if value_path(old_by[e["uuid"]]) != value_path(new_by[e["uuid"]])}
            expect_new = (ga | gm) & new_files
            got_new = {value_path(new_by[e["uuid"]]) for e in d["added"] + kept}
            expect_old = (gd | gr) & old_files
            got_old = {value_path(old_by[e["uuid"]]) for e in d["removed"]} | moved
            for side, expect, got in (("new", expect_new, got_new), ("old", expect_old, got_old)):
                if expect != got:
                    print(f"diff {old_commit[:10]}..{commit[:10]} ({side} side): git's changed files "
                          f"{sorted(expect - got)[:5]} are not in the diff, the diff's "
                          f"{sorted(got - expect)[:5]} are not in git's", file=sys.stderr)
                    return 1
            checked["added"] += len(d["added"])
            checked["removed"] += len(d["removed"])
            checked["changed"] += len({e["uuid"] for e in kept})
            checked["files"] += len(expect_new | expect_old)
            rose = {u for u, v in new_by.items() if u not in old_by or v["version"] > old_by[u]["version"]}
            changed = {u for u, v in new_by.items() if u not in old_by or content(v) != content(old_by[u])}
            if rose != changed:
                print(f"value versions at {commit[:10]}: {len(rose - changed)} rose without a change, "
                      f"{len(changed - rose)} changed without rising", file=sys.stderr)
                return 1
            for u, v in new_by.items():
                if u not in changed and v["version"] != old_by[u]["version"]:
                    print(f"value {v['value']!r} changed version without a change", file=sys.stderr)
                    return 1
            checked["rose"] += len(rose)
            checked["kept"] += len(new_by) - len(rose)
        prev = (commit, cluster, cur)
    print(f"{len(commits) - 1} commit pairs: diff agreed with git's {checked['files']} changed rule files "
          f"({checked['added']} values added, {checked['removed']} removed, {checked['changed']} changed or "
          f"renamed); value versions rose for "
          f"{checked['rose']} changed values and stayed for {checked['kept']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
