#!/usr/bin/env bash
# Checks sigma-galaxy against real SigmaHQ history and MISP's own tools (../shared).
# Usage: corpus-checks.sh SIGMA_GALAXY_BINARY SHARED_DIR
set -euo pipefail
bin="$1"
shared="$(cd "$2" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$shared/tools/import-history.sh" "$work/corpus.git" >/dev/null
first=$(git -C "$work/corpus.git" rev-list --max-parents=0 main)

echo "-- parity with MISP's published galaxy (first corpus commit, rules/ only)"
mkdir -p "$work/attack-2024"
cp "$shared/misp-galaxy/reference/mitre-attack-pattern.2024-07-17.json" "$work/attack-2024/mitre-attack-pattern.json"
"$bin" build --quiet --source "$work/corpus.git#$first" --include 'rules/**' \
  --attack-clusters "$work/attack-2024" --out "$work/parity" --state "$work/parity-state"
python3 "$shared/tools/parity.py" "$work/parity/clusters/sigma-rules.json" \
  "$shared/misp-galaxy/reference/sigma-rules.cluster.2024-07-17.json"

echo "-- the block YAML loader against yaml_serde on every version of every corpus rule"
mkdir -p "$work/blobs"
git -C "$work/corpus.git" rev-list --objects --all | awk '$2 ~ /\.ya?ml$/ {print $1}' | sort -u |
  git -C "$work/corpus.git" cat-file --batch | python3 -c '
import sys
out, stream = sys.argv[1], sys.stdin.buffer
while header := stream.readline():
    oid, _, size = header.split()
    with open(f"{out}/{oid.decode()}.yml", "wb") as f:
        f.write(stream.read(int(size)))
    stream.read(1)
' "$work/blobs"
(cd "$(dirname "$0")/.." && SIGMA_GALAXY_YAML_DIR="$work/blobs" \
  cargo test --release --quiet --lib block_loader_agrees -- --ignored --nocapture)

echo "-- MISP's validator on the last corpus commit, every folder, current ATT&CK"
"$bin" build --quiet --source "$work/corpus.git#main" --attack-clusters "$shared/misp-galaxy/clusters" \
  --out "$work/last" --state "$work/last-state"
python3 "$shared/tools/validate_galaxy.py" "$work/last/clusters/sigma-rules.json" \
  "$work/last/galaxies/sigma-rules.json" --known-clusters "$shared/misp-galaxy/clusters"
"$bin" validate "$work/last/clusters/sigma-rules.json" "$work/last/galaxies/sigma-rules.json"

echo "-- the same commit twice: byte-identical"
"$bin" build --quiet --source "$work/corpus.git#main" --attack-clusters "$shared/misp-galaxy/clusters" \
  --out "$work/again" --state "$work/again-state"
cmp "$work/last/clusters/sigma-rules.json" "$work/again/clusters/sigma-rules.json"
cmp "$work/last/galaxies/sigma-rules.json" "$work/again/galaxies/sigma-rules.json"

echo "-- incremental replay of every corpus commit against clean builds on fresh states"
python3 "$(dirname "$0")/replay.py" "$bin" "$work/corpus.git" "$shared/misp-galaxy/clusters" "$work/replay" --every 10

echo "-- the same on a generated history of id-less corpus rules renamed, moved and moved with edits"
python3 "$(dirname "$0")/idless-history.py" "$work/corpus.git" "$work/idless" --commits 80
python3 "$(dirname "$0")/replay.py" "$bin" "$work/idless" "$shared/misp-galaxy/clusters" "$work/replay-idless" --every 10

echo "-- validate agrees with MISP's validator on broken pairs"
python3 "$(dirname "$0")/validate-agreement.py" "$bin" "$shared" "$work/last"
echo "corpus checks passed"
