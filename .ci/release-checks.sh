#!/usr/bin/env bash
# Release checks on the real SigmaHQ history (../shared): reproducible bundles and archives, uuids
# reproduced from a manifest, diff against git, value versions.
# Usage: release-checks.sh SIGMA_GALAXY_BINARY SHARED_DIR
set -euo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shared="$(cd "$2" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$shared/tools/import-history.sh" "$work/corpus.git" >/dev/null

# The rules: the corpus, plus two commits on top that give 20 rules no id (their uuids are then
# derived from source, path and index), then rename or move their files (half of them edited too).
git clone -q "$work/corpus.git" "$work/rules"
commit() {
  GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.invalid GIT_COMMITTER_NAME=ci \
  GIT_COMMITTER_EMAIL=ci@example.invalid GIT_AUTHOR_DATE="$1 +0000" GIT_COMMITTER_DATE="$1 +0000" \
    git -C "$work/rules" commit -q -a -m "$2"
}
mapfile -t idless < <(git -C "$work/rules" ls-files 'rules/windows/process_creation/*.yml' | head -20)
for f in "${idless[@]}"; do sed -i '/^id: /d' "$work/rules/$f"; done
commit "@1786000000" "drop the ids of 20 rules"
mkdir -p "$work/rules/rules/windows/moved"
for i in "${!idless[@]}"; do
  f="${idless[$i]}"
  if [ $((i % 2)) -eq 0 ]; then echo "# edited while moved" >> "$work/rules/$f"; fi
  git -C "$work/rules" mv "$f" "rules/windows/moved/renamed_$i.yml"
done
commit "@1786000060" "rename the id-less rules"
git -C "$work/rules" branch -q -f release HEAD~1

# The team's setup: a config (with rule links), its lockfile, a state that followed the history.
mkdir -p "$work/team"
cat > "$work/team/sigma-galaxy.yml" <<YML
attack_clusters: $shared/misp-galaxy/clusters
sources:
  - name: sigmahq
    location: ../rules
    ref: release
    web_url: 'https://github.com/SigmaHQ/sigma/blob/{commit}/{path}'
YML
# Built before the renames, then after them: the id-less rules keep their first uuids.
(cd "$work/team" && "$bin" build --quiet --config sigma-galaxy.yml)
git -C "$work/rules" branch -q -f release main
(cd "$work/team" && "$bin" build --quiet --config sigma-galaxy.yml)

release() { # CWD TZ LC_ALL UMASK ARGS...
  local cwd="$1" tz="$2" lc="$3" mask="$4"
  shift 4
  mkdir -p "$cwd"
  (cd "$cwd" && umask "$mask" && env -u SOURCE_DATE_EPOCH TZ="$tz" LC_ALL="$lc" "$bin" release --quiet "$@")
}

echo "-- release --archive twice: fresh states, other cwd, TZ, LC_ALL and umask"
release "$work/a/cwd" UTC C 022 --config "$work/team/sigma-galaxy.yml" --out "$work/a/sigma-release" \
  --state "$work/a/state" --archive
release "$work/b/x/y" Pacific/Kiritimati C.UTF-8 077 --config "$work/team/sigma-galaxy.yml" \
  --out "$work/b/sigma-release" --state "$work/b/state" --archive
cmp "$work/a/sigma-release/SHA256SUMS" "$work/b/sigma-release/SHA256SUMS"
cmp "$work/a/sigma-release.tar.gz" "$work/b/sigma-release.tar.gz"
(cd "$work/a/sigma-release" && sha256sum -c --quiet SHA256SUMS)
echo "identical: $(sha256sum "$work/a/sigma-release.tar.gz" | cut -c1-16)... ($(stat -c %s "$work/a/sigma-release.tar.gz") bytes)"

echo "-- a release from the state that followed the history, then from its manifest alone"
release "$work/team" UTC C 022 --config "$work/team/sigma-galaxy.yml" --out "$work/h/sigma-release" --archive
mkdir -p "$work/other/prev"
cp "$work/team/sigma-galaxy.yml" "$work/team/sigma-galaxy.lock" "$work/other/"
cp "$work/h/sigma-release/manifest.json" "$work/other/prev/"
release "$work/other/elsewhere" Asia/Kolkata C.UTF-8 027 --config "$work/other/sigma-galaxy.yml" \
  --out "$work/other/sigma-release" --state "$work/other/fresh-state" --previous "$work/other/prev" --archive
cmp "$work/h/sigma-release/SHA256SUMS" "$work/other/sigma-release/SHA256SUMS"
cmp "$work/h/sigma-release.tar.gz" "$work/other/sigma-release.tar.gz"
python3 - "$work/h/sigma-release/manifest.json" "$work/a/sigma-release/manifest.json" <<'PY'
import json, sys, uuid
m = json.load(open(sys.argv[1]))
fresh = {i["path"]: i["uuid"] for i in json.load(open(sys.argv[2]))["identities"]}
galaxy = uuid.UUID(m["galaxy"]["uuid"])
ids = m["identities"]
moved = [i for i in ids if str(uuid.uuid5(galaxy, f"{i['source']}\0{i['path']}\0{i['index']}")) != i["uuid"]]
if len(moved) < 20:
    sys.exit(f"only {len(moved)} uuids kept across renames (expected the 20 renamed id-less rules)")
same = sum(1 for i in moved if fresh.get(i["path"]) == i["uuid"])
print(f"identical, {len(ids)} derived uuids, {len(moved)} of them kept across renames "
      f"({same} of those a fresh release without the manifest also gives)")
PY

echo "-- CHANGELOG.md of a release is the markdown diff against the previous bundle"
git -C "$work/rules" branch -q -f release main~2
(cd "$work/team" && "$bin" build --quiet --config sigma-galaxy.yml)
release "$work/team" UTC C 022 --config "$work/team/sigma-galaxy.yml" --out "$work/notes/v1"
git -C "$work/rules" branch -q -f release main
(cd "$work/team" && "$bin" build --quiet --config sigma-galaxy.yml)
release "$work/team" UTC C 022 --config "$work/team/sigma-galaxy.yml" --out "$work/notes/v2" --previous "$work/notes/v1"
"$bin" diff "$work/notes/v1/clusters/sigma-rules.json" "$work/notes/v2/clusters/sigma-rules.json" \
  --format markdown | cmp - "$work/notes/v2/CHANGELOG.md"
sed -n '/^| change | values |/,/^$/p' "$work/notes/v2/CHANGELOG.md"

echo "-- diff and value versions over the last 40 corpus commits"
python3 "$here/release-replay.py" "$bin" "$work/corpus.git" "$work/replay" --last 40
echo "release checks passed"
