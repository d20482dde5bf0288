#!/usr/bin/env bash
# Does keeping watch over an approved plan delay report acknowledgements? (issue 16)
# The example estate (15 clusters) in two stores, one with its plan approved; 15
# clients re-report every cluster (150 reports each, each report marks the plan
# dirty in the watched store); rounds alternate the two so the machine's noise
# falls on both.   benchmarks/watch-ingest.sh BIN_DIR   (BIN_DIR: kplan, kplan-server)
set -euo pipefail
BIN="${1:?usage: benchmarks/watch-ingest.sh BIN_DIR}"
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
prep() { # dir approve
  "$BIN/kplan" --inventory "$1" import --estate examples/bank/estate.toml >/dev/null
  if [ "$2" = yes ]; then
    id=$("$BIN/kplan" --inventory "$1" propose --policy examples/bank/policy.toml -o json |
      python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
    "$BIN/kplan" --inventory "$1" plans approve "$id" >/dev/null
  fi
}
run() { # dir label generation-offset
  KPLAN_LOG_FORMAT=json "$BIN/kplan-server" --listen 127.0.0.1:17474 --metrics-listen 127.0.0.1:17475 --insecure-plaintext \
    --data-dir "$1" >"$WORK/log-$2" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q '"message":"listening"' "$WORK/log-$2" && break; sleep 0.1; done
  local result
  result=$(python3 benchmarks/watch-ingest-drive.py 127.0.0.1:17474 15 150 "$3")
  echo "$2: $result, re-checks $(curl -s 127.0.0.1:17475/metrics | awk '/^kplan_plan_rechecks_total/ {print $2}')"
  kill "$pid"; wait "$pid" || true
}
prep "$WORK/unwatched" no
prep "$WORK/watched" yes
for round in 1 2 3; do
  run "$WORK/unwatched" "unwatched-$round" $((round * 100000))
  run "$WORK/watched" "watched-$round" $((round * 100000))
done
