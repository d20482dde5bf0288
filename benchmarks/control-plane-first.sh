#!/usr/bin/env bash
# What the control-plane-first rule costs (planner change 932fb2b/a4ba7ae): the kplan of
# 0235548 (before) and of a build with the rule (after) plan the same generated estates,
# side by side; writes a table to stdout (benchmarks/control-plane-first.md). KPLAN_BENCH
# generates the estates: use one whose policy files the before build reads (its own).
#   benchmarks/control-plane-first.sh KPLAN_BEFORE KPLAN_AFTER KPLAN_BENCH
set -euo pipefail
BEFORE="${1:?usage: benchmarks/control-plane-first.sh KPLAN_BEFORE KPLAN_AFTER KPLAN_BENCH}"; AFTER="${2:?usage}"; BENCH="${3:?usage}"
cd "$(dirname "$0")/.."
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
echo "| estate | build | blocks | infeasible | nodes before | nodes after | flows | waves | propose s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
row() { # estate-name estate.toml policy.toml build binary
  local inv="$W/inv-$1-$4"
  "$5" --inventory "$inv" import --estate "$2" >/dev/null
  local start end
  start=$(date +%s.%N); "$5" --inventory "$inv" propose --policy "$3" -o json > "$W/plan.json"; end=$(date +%s.%N)
  python3 - "$W/plan.json" "$1" "$4" "$start" "$end" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {s['n_blocks']} | {s['n_blocks_infeasible']} | {s['nodes_before']} | {s['nodes_after']} | {s['firewall_flows']} | {s['waves']} | {float(sys.argv[5]) - float(sys.argv[4]):.1f} |")
PY
}
for size in S M L; do
  "$BENCH" generate --size "$size" --seed 1 --out "$W/estate-$size" >/dev/null
  # Only the control plane differs: the before build knows no add-on or storage-class
  # keys, and the after build detects no add-ons.
  python3 - "$W/estate-$size/policy.toml" <<'PY'
import re, sys
p = open(sys.argv[1]).read()
after = re.sub(r"(?m)^detect_addons = true$", "detect_addons = false", p)
before = re.sub(r"(?m)^(addon_namespaces|detect_addons) = .*$", "", p)
before = re.sub(r"(?ms)^\[storage_class_changes\]\n(?:[^\[].*?\n)*", "", before)
open(sys.argv[1].replace("policy.toml", "policy-after.toml"), "w").write(after)
open(sys.argv[1].replace("policy.toml", "policy-before.toml"), "w").write(before)
PY
  for build in before after; do
    bin=$BEFORE; [ "$build" = after ] && bin=$AFTER
    row "$size" "$W/estate-$size/estate.toml" "$W/estate-$size/policy-$build.toml" "$build" "$bin"
  done
done
