#!/usr/bin/env bash
# Fuzz smoke: each target of fuzz/ (cargo-fuzz, libFuzzer, no sanitizer, so the stable toolchain does)
# runs FUZZ_SECONDS (default 20) from its seeds. A crash, a slow unit (-timeout) or an RSS past 2 GB fails
# the step and leaves the input in fuzz/artifacts/, to become a regression test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-20}
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
cargo fuzz build -s none -O
for target in parse_rule merge_files config_load state_load; do
  mkdir -p "corpus/$target"
  cp seeds/"$target"/* "corpus/$target/"
  cargo fuzz run -s none -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=200000 -print_final_stats=1 2>&1 |
    grep -E '^(Done|stat::(number_of_executed_units|peak_rss_mb|slowest_unit_time_sec))'
done
