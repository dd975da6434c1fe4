#!/usr/bin/env bash
# `sigma-galaxy coverage` on the corpus's last commit: the Navigator layer loads with MITRE's
# mitreattack-python and its per-technique counts equal counts computed independently from the rules'
# tags (.ci/coverage-layer.py), and agree with sigma-cli's `sigma analyze attack count` on the same
# rules. (`SIGMA_CLI=$(command -v sigma) cargo bench --bench coverage` times the two side by side.)
# Usage: coverage-checks.sh SIGMA_GALAXY_BINARY SHARED_DIR   (needs mitreattack-python and sigma-cli)
set -euo pipefail
bin="$1"
shared="$(cd "$2" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
attack="$shared/misp-galaxy/clusters"

"$shared/tools/import-history.sh" "$work/corpus.git" >/dev/null
git clone -q "$work/corpus.git" "$work/rules"
folders=(rules rules-emerging-threats rules-threat-hunting rules-placeholder rules-dfir rules-compliance deprecated unsupported)

echo "-- build the last corpus commit, every folder, current ATT&CK"
"$bin" build --quiet --source "$work/corpus.git#main" --attack-clusters "$attack" \
  --out "$work/galaxy" --state "$work/state"
cluster="$work/galaxy/clusters/sigma-rules.json"

echo "-- the navigator layer loads with mitreattack-python; counts equal the rules' tags"
"$bin" coverage --quiet --cluster "$cluster" --attack-clusters "$attack" --format navigator --out "$work/layer.json"
python3 "$here/coverage-layer.py" "$work/layer.json" "$cluster"
"$bin" coverage --quiet --cluster "$cluster" --attack-clusters "$attack" --format navigator --roll-up \
  --out "$work/layer-rolled-up.json"
python3 "$here/coverage-layer.py" "$work/layer-rolled-up.json" "$cluster" --roll-up

echo "-- sigma analyze attack count on the same rules (ATT&CK data: the same clusters, offline)"
python3 "$here/attack-stix.py" "$attack" "$work/attack-stix.json"
export HOME="$work/home"   # pySigma's ATT&CK cache lives under ~/.cache: keep it in the work folder
mkdir -p "$HOME"
python3 -c "import sys, sigma.data.mitre_attack as m; m.set_url(sys.argv[1]); m.mitre_attack_version" \
  "$work/attack-stix.json"
(cd "$work/rules" && sigma analyze attack count "$work/sigma-cli-layer.json" "${folders[@]}") \
  >"$work/sigma-cli.log" 2>&1 || { cat "$work/sigma-cli.log"; exit 1; }
python3 - "$work/layer.json" "$work/sigma-cli-layer.json" <<'EOF'
import json, sys
ours = {t["techniqueID"]: t["score"] for t in json.load(open(sys.argv[1]))["techniques"]}
theirs = {t["techniqueID"]: t["score"] for t in json.load(open(sys.argv[2]))["techniques"]}
wrong = {k: (ours.get(k), v) for k, v in theirs.items() if ours.get(k) != v}
if wrong:
    sys.exit(f"sigma-cli disagrees on {len(wrong)} techniques (ours, sigma-cli): {sorted(wrong.items())[:20]}")
only = sorted(set(ours) - set(theirs))
print(f"sigma-cli agrees on all {len(theirs)} techniques it maps; only sigma-galaxy lists the "
      f"{len(only)} revoked or unknown to the clusters: {', '.join(only)}")
EOF

echo "coverage checks passed"
