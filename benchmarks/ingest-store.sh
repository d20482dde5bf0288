#!/usr/bin/env bash
# Ingest before/after group commit, and the store's page cache (issue 16), side by side:
# rounds alternate the two builds so the machine's noise falls on both.
#   benchmarks/ingest-store.sh BEFORE_DIR AFTER_DIR
# Each DIR holds release `kplan`, `kplan-server` and `kplan-bench` (BEFORE: this tree with
# store/src/sled_store.rs of dcce75a^, the store without group commit; AFTER: this tree).
# Prints one line per run; the reports go to /tmp/ingest-store-*.md.
set -euo pipefail
BEFORE="${1:?usage: benchmarks/ingest-store.sh BEFORE_DIR AFTER_DIR}"; AFTER="${2:?usage}"
cd "$(dirname "$0")/.."
run() { # name dir [env...]
  local name=$1 dir=$2; shift 2
  env "$@" KPLAN_BIN="$dir/kplan" KPLAN_SERVER_BIN="$dir/kplan-server" "$dir/kplan-bench" run --sizes S --repeats 1 \
    --no-external --no-scaling --no-example --ingest 16:3000,64:4000 --out "/tmp/ingest-store-$name.md" >/dev/null 2>&1
  echo "$name: $(grep -A4 '| clients | snapshots' "/tmp/ingest-store-$name.md" | grep '^| [0-9]' | tr '\n' ' ') $(grep '^Server peak RSS' "/tmp/ingest-store-$name.md")"
}
for round in 1 2; do
  run "before-$round" "$BEFORE"   # sled default cache: 1024 MiB
  run "after-$round" "$AFTER" KPLAN_SERVER_STORE_CACHE_MIB=1024
done
for round in 1 2; do
  for mib in 1024 128 32; do run "cache-$mib-$round" "$AFTER" KPLAN_SERVER_STORE_CACHE_MIB=$mib; done
done
