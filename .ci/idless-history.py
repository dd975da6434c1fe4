#!/usr/bin/env python3
"""Generates a history of id-less corpus rules that are renamed, moved and moved with edits.

Usage: idless-history.py CORPUS_REPO DEST [--rules N] [--commits K] [--seed S]

Takes N rule files of the corpus's last commit (`main`), removes their `id:` lines (so their uuids are
derived), and writes them to a new repository DEST (branch `main`, working tree) as a first commit,
then K commits, each doing a few of: rename in place, move to another folder, move with an edit, edit in
place, a rule moved onto the path another rule leaves, two rules swapping paths, delete, add. Dates
are pinned, so the same arguments give the same history. Replay it with replay.py: a clean build on a
fresh state must give the incremental chain's uuids.
"""
import argparse
import os
import random
import re
import subprocess


def git(repo, *args, date=None):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="Rule Author", GIT_AUTHOR_EMAIL="author@example.invalid",
               GIT_COMMITTER_NAME="Rule Author", GIT_COMMITTER_EMAIL="author@example.invalid")
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{date} +0000"
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, env=env).stdout


FOLDERS = ["rules/windows/moved", "rules/linux", "rules/cloud/aws", "deprecated", "rules-threat-hunting/x"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("dest")
    ap.add_argument("--rules", type=int, default=300)
    ap.add_argument("--commits", type=int, default=60)
    ap.add_argument("--seed", type=int, default=10)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    names = [p for p in git(a.corpus, "ls-tree", "-r", "--name-only", "-z", "main").decode().split("\0")
             if p.startswith("rules/") and p.endswith(".yml")]
    picked = sorted(rnd.sample(names, min(a.rules, len(names))))
    git(".", "init", "-q", "-b", "main", a.dest)
    files = {}
    for p in picked:
        text = git(a.corpus, "show", f"main:{p}").decode("utf-8", "replace")
        files[p] = re.sub(r"(?m)^id: .*\n", "", text)
    spare = [p for p in names if p not in files]
    rnd.shuffle(spare)

    def write(path, text):
        full = os.path.join(a.dest, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)

    def edit(text):
        return re.sub(r"(?m)^description: (.*)$", lambda m: f"description: {m.group(1)} (edited)", text, count=1)

    for p, t in files.items():
        write(p, t)
    date = 1_750_000_000
    git(a.dest, "add", "-A")
    git(a.dest, "commit", "-q", "-m", "id-less corpus rules", date=date)
    n = 0
    for k in range(a.commits):
        for _ in range(rnd.randint(1, 4)):
            paths = sorted(files)
            pick = rnd.choice(paths)
            n += 1
            to = f"{rnd.choice(FOLDERS)}/{os.path.basename(pick)[:-4]}_{n}.yml"
            op = rnd.choice(["rename", "move", "move+edit", "move+edit", "edit", "onto", "swap", "delete", "add"])
            if op == "rename":
                to = f"{os.path.dirname(pick)}/renamed_{n}.yml"
            if op in ("rename", "move", "move+edit"):
                os.makedirs(os.path.dirname(os.path.join(a.dest, to)), exist_ok=True)
                git(a.dest, "mv", pick, to)
                files[to] = files.pop(pick)
                if op == "move+edit":
                    files[to] = edit(files[to])
                    write(to, files[to])
            elif op == "edit":
                files[pick] = edit(files[pick])
                write(pick, files[pick])
            elif op == "onto":
                other = rnd.choice(paths)
                if other != pick:
                    git(a.dest, "rm", "-q", other)
                    git(a.dest, "mv", pick, other)
                    files[other] = files.pop(pick)
            elif op == "swap":
                other = rnd.choice(paths)
                if other != pick:
                    files[pick], files[other] = files[other], files[pick]
                    write(pick, files[pick])
                    write(other, files[other])
            elif op == "delete" and len(files) > 10:
                git(a.dest, "rm", "-q", pick)
                del files[pick]
            elif op == "add" and spare:
                new = spare.pop()
                text = git(a.corpus, "show", f"main:{new}").decode("utf-8", "replace")
                files[new] = re.sub(r"(?m)^id: .*\n", "", text)
                write(new, files[new])
        date += 60
        git(a.dest, "add", "-A")
        git(a.dest, "commit", "-q", "--allow-empty", "-m", f"step {k}", date=date)
    print(f"{a.dest}: {a.commits + 1} commits, {len(files)} id-less rules at the end")


if __name__ == "__main__":
    main()
