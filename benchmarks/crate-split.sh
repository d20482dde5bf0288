#!/usr/bin/env bash
# Before ÷ after the crate split (issue 18): 3e1d6dd vs 6a022dd, side by side, same estates.
set -euo pipefail
BEFORE="${1:?usage: benchmarks/crate-split.sh KPLAN_BEFORE KPLAN_AFTER}"; AFTER="${2:?usage}"
B=${GENERATOR:-$HOME/.cache/kplan/target/release/kplan-bench}
W=$(mktemp -d); trap "rm -rf $W" EXIT; # rm -rf $W; mkdir -p $W
for e in m l xl; do
  E=$(echo $e | tr a-z A-Z)
  $B generate --size $E --seed 1 --out $W/estate-$e >/dev/null
  python3 - $W/estate-$e <<'PY'
import json,sys,glob,os
d=sys.argv[1]
for f in glob.glob(d+'/**/*.json', recursive=True):
    s=json.load(open(f))
    if not isinstance(s,dict) or 'nodes' not in s: continue
    for n in s.get('nodes',[]):
        n.pop('taints',None); n.pop('extended',None)
    for ns in s.get('namespaces',[]):
        ns.pop('pod_groups',None)
    json.dump(s,open(f,'w'))
p=open(d+'/policy.toml').read()
i=p.find('[solver]')
if i>=0:
    j=p.find('\n[',i+1); p=p[:i]+(p[j+1:] if j>=0 else '')
p='\n'.join(l for l in p.split('\n') if not l.startswith('local_volumes'))
open(d+'/policy-nosolver.toml','w').write(p)
PY
  for v in before split; do K=$BEFORE; [ $v = split ] && K=$AFTER; $K --inventory $W/inv-$v-$e import --estate $W/estate-$e/estate.toml >/dev/null; done
  for i in 1 2 3; do
    for v in before split; do
      K=$BEFORE; [ $v = split ] && K=$AFTER; s=$(date +%s.%N); $K --inventory $W/inv-$v-$e propose --policy $W/estate-$e/policy-nosolver.toml -o json > $W/p.json; t=$(date +%s.%N)
      python3 -c "
import json; p=json.load(open('$W/p.json')); s=p['summary']
print('$e $v run $i', '%.2f'%($t-$s), 'kept', s['nodes_after'], 'flows', s['firewall_flows'], 'waves', s['waves'])"
    done
  done
done
