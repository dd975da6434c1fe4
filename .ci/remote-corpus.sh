#!/usr/bin/env bash
# CI only: remote sources against the real SigmaHQ history in ../shared. The corpus is served on loopback by
# git daemon (git://) and by git http-backend (smart HTTP), with the servers of tests/remote.rs; each is built
# at an older commit (the served branch), then again after the newer commits are pushed. The second build must
# parse exactly the rule files whose content is new, and both protocols must give the same galaxy.
# Usage: remote-corpus.sh SHARED_DIR [COMMITS_BACK]
set -euo pipefail
cd "$(dirname "$0")/.."
shared="$(cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$shared/tools/import-history.sh" "$work/corpus.git" >/dev/null
SIGMA_GALAXY_CORPUS_GIT="$work/corpus.git" SIGMA_GALAXY_CORPUS_BACK="${2:-40}" \
  cargo test --release --test test remote::corpus_over_git_daemon_and_smart_http -- --ignored --exact --nocapture
