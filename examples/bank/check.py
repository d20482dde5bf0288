#!/usr/bin/env python3
"""Validate the example bank estate and print a summary.

Reads estate.toml and every cluster file the way kplan should (the label contract of
DESIGN.md §3), independently of generate.py, and checks that the files are what the
README promises. Exits non-zero with one line per problem.

    python3 examples/bank/check.py
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLATFORM = {"default", "kube-system", "kube-public", "kube-node-lease"}
# platform add-ons (kplan's default addon_namespaces): installed once per target, never collide
ADDONS = {"ingress-nginx", "monitoring", "cert-manager"}
ZONES = {"fra-prod-a", "fra-prod-b", "fra-prod-c", "fra-dev-a", "fra-dev-b",
         "lon-prod-a", "lon-prod-b", "lon-prod-c", "lon-dev-a", "sin-prod-a"}
CNI_NAMES = ["calico-node", "cilium", "kube-flannel", "kube-ovn", "contiv"]
SUFFIX = {"": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}

problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)


def quantity(s: str) -> Decimal:
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", s)
    if not m or m.group(2) not in SUFFIX:
        raise ValueError(f"bad quantity {s!r}")
    return Decimal(m.group(1)) * SUFFIX[m.group(2)]


def label(obj: dict, *keys: str) -> str | None:
    labels = obj["metadata"].get("labels") or {}
    for k in keys:
        if k in labels:
            return labels[k]
    return None


def pod_request(pod: dict) -> tuple[Decimal, Decimal]:
    """Effective request: max(sum of app containers, each init container), cpu cores and bytes."""
    def req(c, r):
        v = ((c.get("resources") or {}).get("requests") or {}).get(r)
        return quantity(v) if v else Decimal(0)
    spec = pod["spec"]
    cpu = sum((req(c, "cpu") for c in spec["containers"]), Decimal(0))
    mem = sum((req(c, "memory") for c in spec["containers"]), Decimal(0))
    for c in spec.get("initContainers", []):
        cpu, mem = max(cpu, req(c, "cpu")), max(mem, req(c, "memory"))
    return cpu, mem


def check_cluster(entry: dict, rv_ranges: list, uids: set, node_names: set) -> dict:
    cid = entry["id"]
    files = entry["files"]
    items = []
    for f in files:
        path = HERE / f
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            problem(f"{cid}: {f}: {e}")
            return {}
        if doc.get("kind") != "List" or doc.get("apiVersion") != "v1" or doc.get("metadata") != {"resourceVersion": ""}:
            problem(f"{cid}: {f} is not a kubectl List")
        items += doc["items"]

    # the `<id>-access.json` export follows: RBAC and NetworkPolicies
    order = {"Node": 0, "Namespace": 1, "Pod": 2, "DaemonSet": 3, "ClusterRole": 4, "ClusterRoleBinding": 5,
             "RoleBinding": 6, "NetworkPolicy": 7}
    last_rv, last_kind = 0, 0
    first_rv = None
    for it in items:
        md = it["metadata"]
        if it.get("kind") not in order or "apiVersion" not in it:
            problem(f"{cid}: item without a known kind/apiVersion: {md.get('name')}")
            continue
        if order[it["kind"]] < last_kind:
            problem(f"{cid}: {it['kind']} {md['name']} out of kubectl's order")
        last_kind = order[it["kind"]]
        for k in ("uid", "resourceVersion", "creationTimestamp", "name"):
            if not md.get(k):
                problem(f"{cid}: {it['kind']} {md.get('name')} has no {k}")
        rv = md["resourceVersion"]
        if not rv.isdigit() or int(rv) <= last_rv:
            problem(f"{cid}: resourceVersion {rv} not numeric or not growing")
        last_rv = int(rv)
        first_rv = first_rv or last_rv
        if md["uid"] in uids:
            problem(f"{cid}: duplicate uid {md['uid']}")
        uids.add(md["uid"])
    rv_ranges.append((first_rv, last_rv, cid))

    nodes = {n["metadata"]["name"]: n for n in items if n["kind"] == "Node"}
    namespaces = {n["metadata"]["name"]: n for n in items if n["kind"] == "Namespace"}
    pods = [p for p in items if p["kind"] == "Pod"]
    daemonsets = [d for d in items if d["kind"] == "DaemonSet"]
    for it in items:
        ns = it["metadata"].get("namespace")
        if it["kind"] in ("RoleBinding", "NetworkPolicy") and ns not in namespaces:
            problem(f"{cid}: {it['kind']} {it['metadata']['name']} in unknown namespace {ns}")
    for name in nodes:
        if name in node_names:
            problem(f"{cid}: node name {name} also used by another cluster")
        node_names.add(name)
    if not PLATFORM <= set(namespaces):
        problem(f"{cid}: platform namespaces missing: {PLATFORM - set(namespaces)}")

    # nodes: the label contract
    alloc = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    zones, kubelets, runtimes, cps = set(), set(), set(), []
    node_zone, node_cp, node_tainted = {}, {}, {}
    for name, n in nodes.items():
        dc = label(n, "kplan.io/datacenter", "topology.kubernetes.io/region",
                   "failure-domain.beta.kubernetes.io/region") or entry["datacenter"]
        zone = label(n, "kplan.io/firewall-zone", "topology.kubernetes.io/zone",
                     "failure-domain.beta.kubernetes.io/zone") or entry["zone"]
        if dc != entry["datacenter"]:
            problem(f"{cid}: node {name} in datacenter {dc}, manifest says {entry['datacenter']}")
        if zone not in ZONES or not zone.startswith(f"{entry['datacenter']}-{entry['security_tier']}-"):
            problem(f"{cid}: node {name} in zone {zone}, not a {entry['datacenter']}/{entry['security_tier']} zone")
        zones.add(zone)
        node_zone[name] = zone
        labels = n["metadata"].get("labels", {})
        is_cp = "node-role.kubernetes.io/control-plane" in labels or "node-role.kubernetes.io/master" in labels
        node_cp[name] = is_cp
        node_tainted[name] = any(t["effect"] == "NoSchedule" for t in n["spec"].get("taints", []))
        if is_cp:
            cps.append(zone)
        st = n["status"]
        a = st["allocatable"]
        alloc[name] = [quantity(a["cpu"]), quantity(a["memory"]), int(a["pods"])]
        if quantity(a["cpu"]) > quantity(st["capacity"]["cpu"]) or quantity(a["memory"]) >= quantity(st["capacity"]["memory"]):
            problem(f"{cid}: node {name} allocatable above capacity")
        kubelets.add(st["nodeInfo"]["kubeletVersion"])
        runtimes.add(st["nodeInfo"]["containerRuntimeVersion"])

    # pods
    used = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    ns_demand = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    n_running = n_terminated = 0
    for p in pods:
        md, spec = p["metadata"], p["spec"]
        if md["namespace"] not in namespaces:
            problem(f"{cid}: pod {md['name']} in unknown namespace {md['namespace']}")
        if spec.get("nodeName") not in nodes:
            problem(f"{cid}: pod {md['namespace']}/{md['name']} on unknown node {spec.get('nodeName')}")
            continue
        phase = p["status"]["phase"]
        u = used[spec["nodeName"]]
        u[2] += 1
        if phase in ("Succeeded", "Failed"):
            n_terminated += 1
            continue
        n_running += 1
        cpu, mem = pod_request(p)
        u[0] += cpu
        u[1] += mem
        d = ns_demand[md["namespace"]]
        d[0] += cpu
        d[1] += mem
        d[2] += 1
        if node_tainted[spec["nodeName"]] and not any(t.get("operator") == "Exists" and "key" not in t
                                                      for t in spec.get("tolerations", [])):
            problem(f"{cid}: pod {md['namespace']}/{md['name']} on a tainted node without toleration")
    for name, (cpu, mem, n_pods) in used.items():
        a = alloc[name]
        if cpu > a[0] or mem > a[1] or n_pods > a[2]:
            problem(f"{cid}: node {name} overcommitted: {cpu} cpu, {mem / 2**30:.1f}Gi, {n_pods} pods")

    # daemonsets and the CNI
    ds_pods = defaultdict(int)
    for p in pods:
        for o in p["metadata"].get("ownerReferences", []):
            if o["kind"] == "DaemonSet":
                ds_pods[o["uid"]] += 1
    for d in daemonsets:
        if ds_pods[d["metadata"]["uid"]] != d["status"]["desiredNumberScheduled"]:
            problem(f"{cid}: daemonset {d['metadata']['name']} desires {d['status']['desiredNumberScheduled']} "
                    f"pods, has {ds_pods[d['metadata']['uid']]}")
    ds_names = [d["metadata"]["name"] for d in daemonsets if d["metadata"]["namespace"] == "kube-system"]
    cnis = sorted({c for c in CNI_NAMES for name in ds_names if name.startswith(c)})
    if len(cnis) != 1:
        problem(f"{cid}: CNI detection gives {cnis}")
    if "kube-proxy" not in ds_names:
        problem(f"{cid}: no kube-proxy daemonset")
    csi = [n for n in ds_names if n in ("vsphere-csi-node", "csi-rbdplugin", "trident-node-linux")]

    tot_cpu = sum(a[0] for a in alloc.values())
    tot_mem = sum(a[1] for a in alloc.values())
    wk_cpu = sum(alloc[n][0] for n in nodes if not node_tainted[n])
    wk_mem = sum(alloc[n][1] for n in nodes if not node_tainted[n])
    dem_cpu = sum(u[0] for u in used.values())
    dem_mem = sum(u[1] for u in used.values())
    u_cpu, u_mem = float(dem_cpu / tot_cpu), float(dem_mem / tot_mem)
    if not (0.25 <= u_cpu <= 0.55 and 0.25 <= u_mem <= 0.55):
        problem(f"{cid}: utilisation cpu {u_cpu:.0%} mem {u_mem:.0%} outside 25-55%")
    w_cpu, w_mem = float(dem_cpu / wk_cpu), float(dem_mem / wk_mem)
    if max(w_cpu, w_mem) > 0.8:
        problem(f"{cid}: workers {w_cpu:.0%}/{w_mem:.0%} used: no headroom (20%) left before any wave")

    ns_tiers = {}
    for name, n in namespaces.items():
        ns_tiers[name] = label(n, "kplan.io/security-tier") or entry["security_tier"]
    sla = {name: label(n, "kplan.io/sla-tier") or "bronze" for name, n in namespaces.items()}
    return {
        "id": cid, "dc": entry["datacenter"], "tier": entry["security_tier"], "nodes": len(nodes),
        "cp": cps, "zones": sorted(zones), "cni": ",".join(cnis), "csi": ",".join(csi) or "-",
        "kubelet": ",".join(sorted(kubelets)), "runtime": ",".join(sorted(runtimes)),
        "namespaces": len(namespaces), "pods": len(pods), "running": n_running, "terminated": n_terminated,
        "u_cpu": u_cpu, "u_mem": u_mem, "w_cpu": w_cpu, "w_mem": w_mem,
        "ns_tiers": ns_tiers, "sla": sla, "ns_demand": ns_demand,
        "alloc_cpu": float(tot_cpu), "alloc_mem": float(tot_mem),
        "worker_cpu": float(wk_cpu), "worker_mem": float(wk_mem),
        "zone_of": node_zone, "cp_of": node_cp,
    }


def main() -> int:
    manifest = tomllib.loads((HERE / "estate.toml").read_text(encoding="utf-8"))
    entries = manifest["clusters"]
    for e in entries:
        if set(e) != {"id", "datacenter", "security_tier", "zone", "files"}:
            problem(f"{e.get('id')}: manifest keys {sorted(e)}")
    rv_ranges, uids, node_names = [], set(), set()
    results = [r for r in (check_cluster(e, rv_ranges, uids, node_names) for e in entries) if r]
    rv_ranges.sort()
    for (a0, a1, a), (b0, b1, b) in zip(rv_ranges, rv_ranges[1:]):
        if b0 <= a1:
            problem(f"resourceVersion ranges of {a} and {b} overlap")

    # blocks: (dc, tier) -> namespaces, with the tier override
    block_ns = defaultdict(lambda: defaultdict(list))
    for r in results:
        for ns, tier in r["ns_tiers"].items():
            if ns not in PLATFORM | ADDONS:
                block_ns[(r["dc"], tier)][ns].append(r["id"])
    collisions = {(blk, ns): cl for blk, m in block_ns.items() for ns, cl in m.items() if len(cl) > 1}
    want = {(("fra", "prod"), "payments"), (("lon", "prod"), "reporting")}
    if set(collisions) != want:
        problem(f"collisions are {sorted(collisions)}, want {sorted(want)}")
    overrides = [(r["id"], ns, t) for r in results for ns, t in r["ns_tiers"].items() if t != r["tier"]]
    if overrides != [("fra-dev-analytics", "fraud-scoring", "prod")]:
        problem(f"tier overrides are {overrides}")
    if not any("docker://" in r["runtime"] and "v1.22" in r["kubelet"] for r in results):
        problem("no old docker cluster")
    if {r["cni"] for r in results} != {"calico-node", "cilium", "kube-flannel"}:
        problem("CNIs are not calico + cilium + flannel")
    for r in results:
        if not {"ingress-nginx", "monitoring"} - ({"monitoring"} if r["dc"] == "sin" else set()) <= set(r["ns_tiers"]):
            problem(f"{r['id']}: add-ons ingress-nginx and monitoring (but on the small site) missing")
    sin = [r for r in results if r["dc"] == "sin"]
    if [r["nodes"] for r in sin] != [5]:
        problem("sin is not one cluster of 5 nodes")

    # the table
    print(f"{'cluster':23} {'dc':3} {'tier':4} {'nodes':>5} {'cp zones':17} {'worker zones':32} {'cni':12} "
          f"{'kubelet':17} {'runtime':39} {'ns':>3} {'pods':>4} {'run':>4} {'cpu':>4} {'mem':>4} {'wcpu':>4} {'wmem':>4}")
    for r in results:
        cpz = ",".join(z.rsplit("-", 1)[1] for z in r["cp"])
        wz = ",".join(sorted({r["zone_of"][n] for n in r["zone_of"] if not r["cp_of"][n]}))
        print(f"{r['id']:23} {r['dc']:3} {r['tier']:4} {r['nodes']:5} {cpz:17} {wz:32} {r['cni']:12} "
              f"{r['kubelet']:17} {r['runtime']:39} {r['namespaces']:3} {r['pods']:4} {r['running']:4} "
              f"{r['u_cpu']:4.0%} {r['u_mem']:4.0%} {r['w_cpu']:4.0%} {r['w_mem']:4.0%}")
    n_nodes = sum(r["nodes"] for r in results)
    n_ns = sum(r["namespaces"] for r in results)
    n_pods = sum(r["pods"] for r in results)
    n_run = sum(r["running"] for r in results)
    size = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    print(f"\n{len(results)} clusters, {n_nodes} nodes, {n_ns} namespaces "
          f"({sum(1 for r in results for n in r['ns_tiers'] if n not in PLATFORM)} non-platform), "
          f"{n_pods} pods ({n_run} running), {size / 1e6:.1f} MB in {HERE.name}/")

    # blocks: what a planner sees (all nodes of the block; demand of the block's namespaces)
    print(f"\n{'block':9} {'clusters':>8} {'nodes':>5} {'cp':>3} {'zones':>5} {'cpu alloc':>9} {'cpu dem':>7} "
          f"{'mem alloc Gi':>12} {'mem dem Gi':>10}  namespaces by sla (gold/silver/bronze)")
    blocks = sorted({(r["dc"], r["tier"]) for r in results} | set(block_ns))
    for blk in blocks:
        rs = [r for r in results if (r["dc"], r["tier"]) == blk]
        cpu_a = sum(r["alloc_cpu"] for r in rs)
        mem_a = sum(r["alloc_mem"] for r in rs) / 2**30
        dem_cpu = dem_mem = 0.0
        slas = defaultdict(int)
        for r in results:
            for ns, t in r["ns_tiers"].items():
                if r["dc"] == blk[0] and t == blk[1]:
                    d = r["ns_demand"].get(ns, [0, 0, 0])
                    dem_cpu += float(d[0])
                    dem_mem += float(d[1]) / 2**30
                    if ns not in PLATFORM:
                        slas[r["sla"][ns]] += 1
        zones = {z for r in rs for z in r["zones"]}
        print(f"{blk[0] + '/' + blk[1]:9} {len(rs):8} {sum(r['nodes'] for r in rs):5} "
              f"{sum(len(r['cp']) for r in rs):3} {len(zones):5} {cpu_a:9.0f} {dem_cpu:7.1f} {mem_a:12.0f} "
              f"{dem_mem:10.1f}  {slas['gold']}/{slas['silver']}/{slas['bronze']}")
    print("\ncollisions (add-ons excluded): " + "; ".join(f"{ns} in {blk[0]}/{blk[1]} from {', '.join(cl)}"
                                      for (blk, ns), cl in sorted(collisions.items())))

    if problems:
        print("\nPROBLEMS:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("ok: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
