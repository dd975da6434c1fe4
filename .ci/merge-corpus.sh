#!/usr/bin/env bash
# Many repositories into one galaxy, on real data: the corpus's last commit, a fork of it (retitled
# and new rules), and an in-house repository of id-less rules whose titles collide with SigmaHQ's,
# merged and judged by MISP's own validator (--known-clusters: every related link must resolve).
# Usage: merge-corpus.sh SIGMA_GALAXY_BINARY SHARED_DIR
set -euo pipefail
bin="$1"
shared="$(cd "$2" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git_() { git -c user.name=ci -c user.email=ci@example.invalid "$@"; }

"$shared/tools/import-history.sh" "$work/sigma.git" >/dev/null
git clone -q "$work/sigma.git" "$work/fork"
git -C "$work/fork" remote set-url origin https://github.com/acme/sigma-fork.git
mkdir -p "$work/inhouse"
git -C "$work/inhouse" init -q -b main
git -C "$work/inhouse" remote add origin https://gitlab.com/acme/detections.git
python3 - "$work/fork" "$work/inhouse" <<'PY'
import pathlib, re, sys, uuid
fork, inhouse = map(pathlib.Path, sys.argv[1:3])
rules = sorted((fork / "rules").rglob("*.yml"))
titles = []
for n, path in enumerate(rules[:40]):
    text = path.read_text()
    title = re.search(r"^title: (.*)$", text, re.M).group(1)
    titles.append(title)
    if n < 20:  # the fork retitles some rules, keeping their ids
        path.write_text(text.replace(f"title: {title}", f"title: {title} (acme tuned)", 1))
for n in range(30):  # and adds its own
    (fork / "rules" / "acme").mkdir(exist_ok=True)
    (fork / "rules" / "acme" / f"acme_{n}.yml").write_text(
        f"title: Acme Rule {n}\nid: {uuid.uuid5(uuid.NAMESPACE_URL, f'acme/{n}')}\nstatus: test\n"
        "logsource:\n    product: windows\n    category: process_creation\n"
        "detection:\n    selection:\n        Image|endswith: '\\\\acme.exe'\n    condition: selection\n"
        "level: high\ntags:\n    - attack.execution\n    - attack.t1059\n")
(inhouse / "rules").mkdir()
for n, title in enumerate(titles):  # id-less, titles colliding with SigmaHQ's (other case), odd ones
    odd = ['', ' "quoted"', ' \U0001F600'][n % 3]
    (inhouse / "rules" / f"local_{n}.yml").write_text(
        f"title: '{title.upper()}{odd}'\nstatus: experimental\nlogsource:\n    product: linux\n"
        "detection:\n    keywords:\n        - something\n    condition: keywords\nlevel: medium\n")
PY
git_ -C "$work/fork" add -A && git_ -C "$work/fork" commit -qm "acme: tuned and own rules"
git_ -C "$work/inhouse" add -A && git_ -C "$work/inhouse" commit -qm "in-house rules"
cat > "$work/sigma-galaxy.yml" <<YML
out: merged
attack_clusters: $shared/misp-galaxy/clusters
sources:
  - name: acme-fork
    location: fork
  - name: sigmahq
    location: sigma.git
  - name: in-house
    location: inhouse
YML
(cd "$work" && "$bin" build --config sigma-galaxy.yml --json > summary.json)
python3 - "$work/summary.json" "$work/merged/clusters/sigma-rules.json" <<'PY'
import collections, json, sys
summary, cluster = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
codes = collections.Counter(w["code"] for w in summary["warnings"])
sources = collections.Counter(v["meta"].get("source") for v in cluster["values"])
print(f"merged: {summary['values']} values, by source {dict(sources)}, findings {dict(codes)}")
assert sources["in-house"] == 40 and sources["acme-fork"] > 4000, sources
assert codes["overridden-rule-title"] == 20 and codes["overridden-rule"] > 4000, codes
assert all(v["meta"].get("source-url") for v in cluster["values"] if v["meta"]["source"] != "sigmahq")
PY
python3 "$shared/tools/validate_galaxy.py" "$work/merged/clusters/sigma-rules.json" \
  "$work/merged/galaxies/sigma-rules.json" --known-clusters "$shared/misp-galaxy/clusters"
"$bin" validate "$work/merged/clusters/sigma-rules.json" "$work/merged/galaxies/sigma-rules.json"
echo "merge corpus check passed"
