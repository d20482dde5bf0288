#!/usr/bin/env bash
# Does keeping watch over approved plans delay report acknowledgements? (issue 16)
# An estate in two stores with the same plans stored, approved only in the watched one;
# CLIENTS clients re-report its clusters (REPORTS each; every report marks the approved
# plans that touch its cluster dirty in the watched store); rounds alternate the two so
# the machine's noise falls on both.
#   benchmarks/watch-ingest.sh BIN_DIR [ESTATE_DIR [CLIENTS [REPORTS [BLOCKS]]]]
# BIN_DIR: kplan, kplan-server; ESTATE_DIR: estate.toml and policy.toml (default
# examples/bank; `kplan-bench generate --size XL --out DIR` for a large one).
# BLOCKS: comma-separated block filters, one plan each (default: one plan of every block);
# plans of disjoint blocks are all approved at once (`/prod,/dev`: two plans).
# Environment: ROUNDS (default 3); MEMORY_LIMIT_MIB runs the server in a cgroup (v1
# memory controller) with that limit, as a pod limit would, and prints its peak usage,
# how often it hit the limit and whether the OOM killer ran; LOG_DIR keeps the servers'
# logs there (each re-check's read, decode and validate seconds).
set -euo pipefail
BIN="${1:?usage: benchmarks/watch-ingest.sh BIN_DIR [ESTATE_DIR [CLIENTS [REPORTS [BLOCKS]]]]}"
cd "$(dirname "$0")/.."
ESTATE="${2:-examples/bank}"; CLIENTS="${3:-15}"; REPORTS="${4:-150}"; BLOCKS="${5:-}"
ROUNDS="${ROUNDS:-3}"
WORK=$(mktemp -d)
CGROUP=""
if [ -n "${MEMORY_LIMIT_MIB:-}" ]; then
  CGROUP=/sys/fs/cgroup/memory/kplan-watch-ingest-$$
  mkdir "$CGROUP"
  echo $((MEMORY_LIMIT_MIB << 20)) >"$CGROUP/memory.limit_in_bytes"
fi
cleanup() { rm -rf "$WORK"; if [ -n "$CGROUP" ]; then rmdir "$CGROUP" 2>/dev/null || true; fi; }
trap cleanup EXIT
prep() { # dir approve
  "$BIN/kplan" --inventory "$1" import --estate "$ESTATE/estate.toml" >/dev/null
  local filters=() ids=()
  if [ -n "$BLOCKS" ]; then IFS=, read -r -a filters <<<"$BLOCKS"; else filters=(""); fi
  for filter in "${filters[@]}"; do
    local args=(--policy "$ESTATE/policy.toml" -o json)
    if [ -n "$filter" ]; then args+=(--block "$filter"); fi
    ids+=("$("$BIN/kplan" --inventory "$1" propose "${args[@]}" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")")
  done
  if [ "$2" = yes ]; then
    for id in "${ids[@]}"; do "$BIN/kplan" --inventory "$1" plans approve "$id" >/dev/null; done
  fi
  echo "$(basename "$1"): ${#ids[@]} plan(s) stored$([ "$2" = yes ] && echo ", approved")"
}
run() { # dir label generation-offset
  if [ -n "$CGROUP" ]; then echo 0 >"$CGROUP/memory.max_usage_in_bytes"; fi
  : >"$WORK/log-$2"
  (
    if [ -n "$CGROUP" ]; then echo "$BASHPID" >"$CGROUP/cgroup.procs"; fi
    KPLAN_LOG_FORMAT=json exec "$BIN/kplan-server" --listen 127.0.0.1:17474 --metrics-listen 127.0.0.1:17475 \
      --insecure-plaintext --data-dir "$1"
  ) >"$WORK/log-$2" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do grep -q '"message":"listening"' "$WORK/log-$2" && break; sleep 0.1; done
  local result memory=""
  result=$(python3 benchmarks/watch-ingest-drive.py 127.0.0.1:17474 "$CLIENTS" "$REPORTS" "$3")
  local rechecks
  rechecks=$(curl -s 127.0.0.1:17475/metrics | awk '/^kplan_plan_rechecks_total/ {n += $2} END {print n + 0}')
  if [ -n "$CGROUP" ]; then
    memory=", cgroup peak $(($(cat "$CGROUP/memory.max_usage_in_bytes") >> 20)) MiB of ${MEMORY_LIMIT_MIB}, \
limit hit $(cat "$CGROUP/memory.failcnt") times, $(grep -E '^oom_kill ' "$CGROUP/memory.oom_control" || echo 'oom_kill ?')"
  fi
  echo "$2: $result, re-checks $rechecks, server VmHWM $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status") MiB$memory"
  kill "$pid"; wait "$pid" || true
  if [ -n "${LOG_DIR:-}" ]; then mkdir -p "$LOG_DIR"; cp "$WORK/log-$2" "$LOG_DIR/$2.log"; fi
}
prep "$WORK/unwatched" no
prep "$WORK/watched" yes
for round in $(seq "$ROUNDS"); do
  run "$WORK/unwatched" "unwatched-$round" $((round * 100000))
  run "$WORK/watched" "watched-$round" $((round * 100000))
done
