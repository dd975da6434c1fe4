#!/usr/bin/env python3
"""Replays a repository's first-parent history through incremental builds and checks them.

Usage: replay.py SIGMA_GALAXY REPO ATTACK_DIR WORK_DIR [--every N] [--limit K]

Builds every commit of `main` in order (oldest first) with one state folder and one output folder
(`build --source REPO#COMMIT`, every folder included, ATT&CK links on). Checks, at every commit:
  - `parsed` equals the number of rule files that the commit added, modified or renamed whose exact
    content was not already among the previous commit's rule files (content known under another path is
    never parsed again, so a pure rename or a copy parses nothing);
and at every N-th commit and the last one:
  - the output is byte-identical to a clean build of that commit on a FRESH state (a new state folder:
    no cache, no history walk, no UUID ledger) and output folder: uuids of id-less rules, renamed or
    not, come from the history alone.
Prints the mean incremental run time. Exit 1 on the first failure.
"""
import argparse
import filecmp
import json
import os
import subprocess
import sys
import time


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def is_rule(path):
    return path.endswith(".yml") or path.endswith(".yaml")


def rule_blobs(repo, commit):
    blobs = set()
    for line in git(repo, "ls-tree", "-r", "-z", commit).split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        if is_rule(path):
            blobs.add(meta.split()[2])
    return blobs


def expected_parsed(repo, prev, commit):
    if prev is None:
        return len([p for p in git(repo, "ls-tree", "-r", "--name-only", "-z", commit).split("\0") if p and is_rule(p)])
    known = rule_blobs(repo, prev)
    count = 0
    out = git(repo, "diff", "--raw", "-z", "-M", "--no-abbrev", prev, commit).split("\0")
    i = 0
    while i < len(out) - 1:
        meta = out[i].split()
        status = meta[4]
        if status[0] in "RC":
            path = out[i + 2]
            i += 3
        else:
            path = out[i + 1]
            i += 2
        if status[0] in "AMRCT" and is_rule(path) and meta[3] not in known:
            count += 1
    return count


def build(binary, *args):
    started = time.perf_counter()
    run = subprocess.run([binary, "build", "--json", "--quiet", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"build {args} failed ({run.returncode}):\n{run.stderr}")
    return json.loads(run.stdout), elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("repo")
    ap.add_argument("attack")
    ap.add_argument("work")
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    commits = git(a.repo, "rev-list", "--first-parent", "--reverse", "main").split()
    if a.limit:
        commits = commits[: a.limit]
    out, state = os.path.join(a.work, "inc"), os.path.join(a.work, "inc-state")
    prev = None
    times, checked = [], 0
    for n, commit in enumerate(commits):
        summary, elapsed = build(a.binary, "--source", f"{a.repo}#{commit}", "--attack-clusters", a.attack,
                                 "--out", out, "--state", state)
        if n > 0:
            times.append(elapsed)
        want = expected_parsed(a.repo, prev, commit)
        if summary["parsed"] != want:
            sys.exit(f"commit {n} {commit[:12]}: parsed {summary['parsed']}, expected {want}")
        if n % a.every == 0 or n == len(commits) - 1:
            clean, fresh_state = os.path.join(a.work, "clean"), os.path.join(a.work, "fresh-state")
            subprocess.run(["rm", "-rf", clean, fresh_state], check=True)
            build(a.binary, "--source", f"{a.repo}#{commit}", "--attack-clusters", a.attack,
                  "--out", clean, "--state", fresh_state)
            for f in ("clusters/sigma-rules.json", "galaxies/sigma-rules.json"):
                if not filecmp.cmp(os.path.join(out, f), os.path.join(clean, f), shallow=False):
                    sys.exit(f"commit {n} {commit[:12]}: {f} differs from a clean build on a fresh state")
            subprocess.run(["rm", "-rf", clean, fresh_state], check=True)
            checked += 1
        prev = commit
    mean = sum(times) / len(times) if times else 0.0
    print(f"replayed {len(commits)} commits; parsed counts exact at every commit; "
          f"byte-identical to a clean build on a fresh state at {checked} commits; mean incremental run {mean * 1000:.0f} ms")


if __name__ == "__main__":
    main()
