#!/usr/bin/env bash
# Ingest with stored values as plain JSON (schema 1) and as zstd-compressed JSON
# (schema 2), side by side: rounds alternate the two builds so the machine's noise
# falls on both (issue 16).
#   benchmarks/ingest-compress.sh BEFORE_DIR AFTER_DIR [ROUNDS]
# Each DIR holds release `kplan`, `kplan-server` and `kplan-bench`. Prints one line
# per run; the reports go to /tmp/ingest-compress-*.md.
set -euo pipefail
BEFORE="${1:?usage: benchmarks/ingest-compress.sh BEFORE_DIR AFTER_DIR [ROUNDS]}"; AFTER="${2:?usage}"
ROUNDS="${3:-3}"
cd "$(dirname "$0")/.."
run() { # name dir [env...]
  local name=$1 dir=$2; shift 2
  env "$@" KPLAN_BIN="$dir/kplan" KPLAN_SERVER_BIN="$dir/kplan-server" "$dir/kplan-bench" run --sizes S --repeats 1 \
    --no-external --no-scaling --no-example --ingest 16:3000,64:4000 --out "/tmp/ingest-compress-$name.md" >/dev/null 2>&1
  echo "$name: $(grep -A4 '| clients | snapshots' "/tmp/ingest-compress-$name.md" | grep '^| [0-9]' | tr '\n' ' ') $(grep '^Server peak RSS' "/tmp/ingest-compress-$name.md")"
}
for round in $(seq 1 "$ROUNDS"); do
  run "before-$round" "$BEFORE"
  run "after-$round" "$AFTER"
done
