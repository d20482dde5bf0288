#!/usr/bin/env bash
# Issue 13: plans the generated M, L and XL estates 3 times with an older kplan binary
# and this build, alternating, each with its own solver defaults (the [solver] section of
# the generated policy is left out), and prints seconds, nodes kept, flows, waves and the
# content digest per run.   Usage: scripts/bench-repeat.sh OLD_KPLAN_BINARY [NEW_KPLAN_BINARY]
# (NEW defaults to this checkout's release build).
set -euo pipefail
OLD="${1:?usage: scripts/bench-repeat.sh OLD_KPLAN_BINARY [NEW_KPLAN_BINARY]}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kplan/target}"
cd "$(dirname "$0")/.."
[ -n "${2:-}" ] && [ -n "${GENERATOR:-}" ] || cargo build --release --locked -p kplan-cli -p kplan-bench >&2
W="$(mktemp -d)"; trap 'rm -rf "$W"' EXIT
T="$CARGO_TARGET_DIR/release"
NEW="${2:-$T/kplan}"
# The estate generator: this build's, or GENERATOR=path/to/kplan-bench of the older
# release when the older kplan cannot read the newer estates (pods, volumes).
GEN="${GENERATOR:-$T/kplan-bench}"
for e in m l xl; do
  E=$(echo $e | tr a-z A-Z)
  [ -d $W/estate-$e ] || "$GEN" generate --size $E --seed 1 --out $W/estate-$e >/dev/null
  python3 - "$e" "$W" <<'PY'
import sys,re
e=sys.argv[1]; W=sys.argv[2]
s=open(f'{W}/estate-{e}/policy.toml').read()
i=s.find('[solver]')
if i>=0:
    j=s.find('\n[',i+1)
    s=s[:i]+(s[j+1:] if j>=0 else '')
open(f'{W}/estate-{e}/policy-nosolver.toml','w').write(s)
PY
  for v in before after; do rm -rf $W/ab-$v-$e; done
  "$OLD" --inventory $W/ab-before-$e import --estate $W/estate-$e/estate.toml >/dev/null
  "$NEW" --inventory $W/ab-after-$e import --estate $W/estate-$e/estate.toml >/dev/null
  for i in 1 2 3; do
    for v in before after; do
      K="$NEW"; [ $v = before ] && K="$OLD"
      s=$(date +%s.%N); $K --inventory $W/ab-$v-$e propose --policy $W/estate-$e/policy-nosolver.toml -o json > $W/ab-$v-$e.json; t=$(date +%s.%N)
      python3 -c "
import json; p=json.load(open('$W/ab-$v-$e.json')); s=p['summary']
print('$e $v', '%.2f'%($t-$s), s['nodes_after'], s['firewall_flows'], s['waves'], p.get('fingerprint',{}).get('content_digest','-')[:12])"
    done
  done
done
