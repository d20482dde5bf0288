#!/usr/bin/env bash
# The benchmark command (issue 5): builds the release binaries, installs Python
# highspy if it is missing, runs every benchmark and writes BENCHMARKS.md.
#
#   scripts/bench.sh                        # all sizes, 3 repeats -> BENCHMARKS.md
#   scripts/bench.sh --sizes S,M --repeats 2 --out /tmp/bench.md
#
# Arguments are passed to `kplan-bench run` (see `kplan-bench run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kplan/target}"
cargo build --release --locked -p kplan-cli -p kplan-server -p kplan-bench
if ! python3 -c 'import highspy' 2>/dev/null; then
    python3 -m pip install --quiet highspy
fi
export KPLAN_BENCH_COMMAND="scripts/bench.sh${*:+ $*}"
exec "$CARGO_TARGET_DIR/release/kplan-bench" run "$@"
