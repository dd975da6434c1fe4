#!/usr/bin/env bash
# `sigma-galaxy check` next to sigma-cli's `sigma check` on the same rules, in one run.
# Needs ../shared (the SigmaHQ history) and `pip install sigma-cli`. sigma-cli's ATT&CK and D3FEND tag
# validators download their data at run time, so they are disabled (this machine is offline).
#   bash benches/check-vs-sigma-cli.sh [FOLDER]     (default: rules)
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-rules}
shared=$(cd ../shared && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$shared/tools/import-history.sh" "$work/corpus" --worktree >/dev/null
cargo build --release --quiet
bin=$PWD/target/release/sigma-galaxy
command -v sigma >/dev/null || python3 -m pip install -q sigma-cli

now() { date +%s.%N; }
t0=$(now)
glob="$folder/**"; [ "$folder" = . ] && glob="**"
"$bin" check --source "$work/corpus" --include "$glob" --attack-clusters "$shared/misp-galaxy/clusters" \
  --state "$work/cold" --format json >"$work/check.json" 2>/dev/null || true
t1=$(now)
sigma check -x attacktag -x d3_fendtag "$work/corpus/$folder" >"$work/sigma.txt" 2>&1 || true
t2=$(now)
python3 - "$work/check.json" "$work/sigma.txt" "$t0" "$t1" "$t2" <<'PY'
import collections, json, sys
report = json.load(open(sys.argv[1]))
t0, t1, t2 = map(float, sys.argv[3:6])
print(f"sigma-galaxy check: {t1 - t0:.2f} s, {report['files']} files, counts {report['counts']}")
for code, n in sorted(collections.Counter(f["code"] for f in report["findings"]).items()):
    print(f"  {code}: {n}")
summary = [l for l in open(sys.argv[2]) if l.startswith("Found ")]
print(f"sigma check (sigma-cli): {t2 - t1:.2f} s, {summary[0].strip() if summary else 'no summary'}")
PY
