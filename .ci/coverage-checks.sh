#!/usr/bin/env bash
# `sigma-galaxy coverage` on the corpus's last commit: the Navigator layer loads with MITRE's
# mitreattack-python and its per-technique counts equal counts computed independently from the rules'
# tags (.ci/coverage-layer.py), and agree with sigma-cli's `sigma analyze attack count` on the same
# rules; then both are timed side by side, in this one run.
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
(cd "$work/rules" && sigma analyze attack count "$work/sigma-cli-layer.json" "${folders[@]}" >/dev/null 2>&1)
python3 - "$work/layer.json" "$work/sigma-cli-layer.json" <<'EOF'
import json, sys
ours = {t["techniqueID"]: t["score"] for t in json.load(open(sys.argv[1]))["techniques"]}
theirs = {t["techniqueID"]: t["score"] for t in json.load(open(sys.argv[2]))["techniques"]}
wrong = {k: (ours.get(k), v) for k, v in theirs.items() if ours.get(k) != v}
if wrong:
    sys.exit(f"sigma-cli disagrees on {len(wrong)} techniques (ours, sigma-cli): {sorted(wrong.items())[:20]}")
only = sorted(set(ours) - set(theirs))
print(f"sigma-cli agrees on all {len(theirs)} techniques it maps; only sigma-galaxy lists "
      f"{len(only)} revoked, deprecated or unknown ones: {', '.join(only)}")
EOF

echo "-- timings, side by side (median of 3 runs each)"
time_of() {  # prints the median wall time of 3 runs of "$@", in ms
  local t=()
  for _ in 1 2 3; do
    local s e
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
    t+=($(( (e - s) / 1000000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 2p
}
cat > "$work/coverage.yml" <<EOF
out: $work/cfg-galaxy
state: $work/cfg-state
attack_clusters: $attack
sources:
  - name: sigmahq
    location: $work/corpus.git
    ref: main
EOF
fresh_config() { rm -rf "$work/cfg-galaxy" "$work/cfg-state"; "$bin" coverage --quiet --config "$work/coverage.yml" --format navigator; }
cov_cluster=$(time_of "$bin" coverage --quiet --cluster "$cluster" --attack-clusters "$attack" --format navigator)
cov_config=$(time_of fresh_config)
"$bin" coverage --quiet --config "$work/coverage.yml" >/dev/null   # leaves a built state for the next line
cov_noop=$(time_of "$bin" coverage --quiet --config "$work/coverage.yml" --format navigator)
sigma_cli=$(cd "$work/rules" && time_of sigma analyze attack count "$work/sigma-cli-timed.json" "${folders[@]}")
values=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['values']))" "$cluster")
echo "corpus last commit: $values rules"
printf '%-62s %8s ms\n' \
  "sigma-galaxy coverage --cluster (built galaxy)" "$cov_cluster" \
  "sigma-galaxy coverage --config (clean build from git + coverage)" "$cov_config" \
  "sigma-galaxy coverage --config (galaxy up to date)" "$cov_noop" \
  "sigma analyze attack count (sigma-cli, rule files)" "$sigma_cli"
echo "coverage checks passed"
