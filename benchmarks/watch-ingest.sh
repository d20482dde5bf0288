#!/usr/bin/env bash
# Does keeping watch over an approved plan delay report acknowledgements? (issue 16)
# An estate in two stores, one with its plan approved; CLIENTS clients re-report
# its clusters (REPORTS each; every report marks the plan dirty in the watched
# store); rounds alternate the two so the machine's noise falls on both.
#   benchmarks/watch-ingest.sh BIN_DIR [ESTATE_DIR [CLIENTS [REPORTS]]]
# BIN_DIR: kplan, kplan-server; ESTATE_DIR: estate.toml and policy.toml (default
# examples/bank; `kplan-bench generate --size XL --out DIR` for a large one).
set -euo pipefail
BIN="${1:?usage: benchmarks/watch-ingest.sh BIN_DIR [ESTATE_DIR [CLIENTS [REPORTS]]]}"
cd "$(dirname "$0")/.."
ESTATE="${2:-examples/bank}"; CLIENTS="${3:-15}"; REPORTS="${4:-150}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
prep() { # dir approve
  "$BIN/kplan" --inventory "$1" import --estate "$ESTATE/estate.toml" >/dev/null
  if [ "$2" = yes ]; then
    id=$("$BIN/kplan" --inventory "$1" propose --policy "$ESTATE/policy.toml" -o json |
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
  result=$(python3 benchmarks/watch-ingest-drive.py 127.0.0.1:17474 "$CLIENTS" "$REPORTS" "$3")
  echo "$2: $result, re-checks $(curl -s 127.0.0.1:17475/metrics | awk '/^kplan_plan_rechecks_total/ {print $2}')"
  kill "$pid"; wait "$pid" || true
}
prep "$WORK/unwatched" no
prep "$WORK/watched" yes
for round in 1 2 3; do
  run "$WORK/unwatched" "unwatched-$round" $((round * 100000))
  run "$WORK/watched" "watched-$round" $((round * 100000))
done
