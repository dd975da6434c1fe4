#!/usr/bin/env python3
"""Checks a `sigma-galaxy coverage --format navigator` layer against the cluster it was made from.

Usage: coverage-layer.py LAYER CLUSTER [--roll-up]

The layer must load with MITRE's own library (mitreattack-python, `mitreattack.navlayers.Layer`) as a
layer of format 4.5, and its per-technique scores and comments must equal what is computed here,
independently of sigma-galaxy, from the cluster values' `meta.tags`: the number of distinct values
tagged `attack.tNNNN[.NNN]` (with --roll-up, a sub-technique counts for its parent) and their titles.
"""

import json
import re
import sys
from collections import defaultdict

from mitreattack.navlayers import Layer

TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)


def expected(cluster_path, roll_up):
    with open(cluster_path, encoding="utf-8") as f:
        cluster = json.load(f)
    titles = defaultdict(set)
    for value in cluster["values"]:
        for tag in value.get("meta", {}).get("tags", []):
            m = TECHNIQUE.match(tag)
            if not m:
                continue
            technique = m.group(1).upper()
            if roll_up:
                technique = technique.split(".")[0]
            titles[technique].add(value["value"])
    return titles


def main():
    args = sys.argv[1:]
    roll_up = "--roll-up" in args
    layer_path, cluster_path = [a for a in args if a != "--roll-up"]
    layer = Layer()
    layer.from_file(layer_path)
    data = layer.to_dict()
    problems = []
    if data["versions"]["layer"] != "4.5":
        problems.append(f"layer format {data['versions']['layer']}, expected 4.5")
    if data["domain"] != "enterprise-attack":
        problems.append(f"domain {data['domain']}")
    scores = {}
    comments = {}
    for t in data.get("techniques", []):
        tid = t["techniqueID"]
        if tid in scores:
            problems.append(f"{tid}: listed twice")
        scores[tid] = t.get("score")
        comments[tid] = t.get("comment", "")
    want = expected(cluster_path, roll_up)
    for tid in sorted(set(want) | set(scores)):
        n = len(want.get(tid, ()))
        if scores.get(tid) != n:
            problems.append(f"{tid}: layer score {scores.get(tid)}, rules tagged {n}")
        elif comments[tid].split("\n") != sorted(want[tid]):
            problems.append(f"{tid}: comment does not list exactly its {n} rule titles")
    gradient = data.get("gradient", {})
    top = max((len(v) for v in want.values()), default=1)
    if gradient.get("maxValue") != top or gradient.get("minValue") != 0:
        problems.append(f"gradient {gradient.get('minValue')}..{gradient.get('maxValue')}, expected 0..{top}")
    for p in problems[:50]:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {layer_path}")
        sys.exit(1)
    print(
        f"{layer_path}: loads with mitreattack-python; {len(scores)} techniques, "
        f"scores and comments equal the counts from the cluster's tags"
        + (" (sub-techniques rolled up)" if roll_up else "")
    )


if __name__ == "__main__":
    main()
