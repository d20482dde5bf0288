#!/usr/bin/env python3
"""Generate the example bank estate for kplan.

Writes, next to this file:
  clusters/<cluster-id>.json   what `kubectl get nodes,namespaces,pods,daemonsets -A -o json`
                               prints for each source cluster
  clusters/<cluster-id>-access.json
                               what `kubectl get clusterroles,clusterrolebindings,rolebindings,
                               networkpolicies -A -o json` prints (issue 14: tenant isolation)
  estate.toml                  the import manifest (`kplan import --estate estate.toml`)
  README.md                    what the estate is, one row per cluster

Deterministic: every cluster draws from its own `random.Random` seeded with a fixed
string, so running it twice gives byte-identical files, and changing one cluster's
spec does not reshuffle the others.  Python 3.11+, standard library only.

    python3 examples/bank/generate.py        # regenerate everything
    python3 examples/bank/check.py           # validate and print the summary table
"""

from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = "kplan-bank-estate-v1"
# the moment the estate was exported (kubectl was run); all timestamps are before it
SNAPSHOT = datetime(2025, 5, 19, 7, 42, 0, tzinfo=timezone.utc)

GIB_KI = 1024 * 1024  # KiB per GiB
MAX_PODS = 110        # kubelet's default maxPods

# ---------------------------------------------------------------------------------
# The estate
# ---------------------------------------------------------------------------------

# node shapes: name -> (cpu cores, memory GiB)
SHAPES = {"s": (8, 32), "m": (16, 64), "l": (32, 128)}

# label styles for a node's datacenter and firewall zone
#   topology : topology.kubernetes.io/region + topology.kubernetes.io/zone
#   kplan    : kplan.io/datacenter + kplan.io/firewall-zone (topology zone holds the rack)
#   beta     : failure-domain.beta.kubernetes.io/region + .../zone only (old cluster)
#   none     : no region or zone label at all (on-prem; the manifest's defaults apply)

CNI = {
    "calico": ("calico-node", "docker.io/calico/node"),
    "cilium": ("cilium", "quay.io/cilium/cilium"),
    "flannel": ("kube-flannel-ds", "docker.io/rancher/mirrored-flannelcni-flannel"),
}
CSI = {
    "vsphere": ("vsphere-csi-node", "gcr.io/cloud-provider-vsphere/csi/release/driver:v3.1.2",
                "csi.vsphere.vmware.com"),
    "vsphere-old": ("vsphere-csi-node", "gcr.io/cloud-provider-vsphere/csi/release/driver:v2.4.1",
                    "csi.vsphere.vmware.com"),
    "ceph-rbd": ("csi-rbdplugin", "quay.io/cephcsi/cephcsi:v3.10.2", "rbd.csi.ceph.com"),
    "netapp": ("trident-node-linux", "docker.io/netapp/trident:24.02.0", "csi.trident.netapp.io"),
}


@dataclass
class Ns:
    name: str
    sla: str | None = None            # kplan.io/sla-tier (None: unlabelled -> bronze)
    security_tier: str | None = None  # kplan.io/security-tier (None: the cluster's tier)
    pods: int = 5                     # running pods (3..8)
    weight: float = 1.0               # share of the cluster's business demand
    jobs_succeeded: int = 0           # completed job pods (must not count)
    jobs_failed: int = 0              # failed job pods (must not count)
    evicted: int = 0                  # evicted pods, phase Failed (must not count)
    odd_quantities: bool = False      # requests written as "0.5" / "1G" / "1500M"
    team: str = ""


@dataclass
class Cluster:
    id: str
    dc: str
    tier: str
    default_zone: str
    cp: list[str]                      # zone letter per control-plane node
    workers: list[tuple[str, str, int]]  # (zone letter, shape, count)
    cni: str
    cni_version: str
    kubelet: str
    runtime: str
    os_image: str
    kernel: str
    labels: str                        # topology | kplan | beta | none
    cp_label: str = "control-plane"    # control-plane | master | both
    cp_tainted: bool = True
    cp_shape: str = "s"
    csi: str | None = None
    u_cpu: float = 0.40                # target utilisation, whole cluster
    u_mem: float = 0.40
    namespaces: list[Ns] = field(default_factory=list)
    node_prefix: str = ""              # node names: <prefix>-cp-1 / <prefix>-w-01
    cp_name: str = "cp-{n}"
    worker_name: str = "w-{n:02d}"
    created: datetime = datetime(2022, 3, 1, tzinfo=timezone.utc)
    old_workers: tuple[int, str] | None = None  # (count, kubelet) mid-upgrade workers
    reserved_cpu_m: int = 0            # kube-reserved cpu: allocatable like 15890m
    reserved_mem_ki: int = 0           # kube-reserved + system-reserved memory
    pod_cidr: str = "10.244.0.0/16"
    node_net: str = "10.0.0"           # first three octets of node InternalIPs
    note: str = ""
    # platform add-ons: namespace -> version (see ADDONS); every cluster runs ingress-nginx and (but the
    # small site) monitoring
    addons: dict = field(default_factory=lambda: {"ingress-nginx": "1.10.1", "monitoring": "58.2.2"})

    @property
    def n_nodes(self) -> int:
        return len(self.cp) + sum(c for _, _, c in self.workers)


def ns(name, sla=None, **kw) -> Ns:
    return Ns(name, sla, **kw)


CLUSTERS: list[Cluster] = [
    # ---------------------------------------------------------------- Frankfurt, prod
    Cluster(
        id="fra-prod-payments", dc="fra", tier="prod", default_zone="fra-prod-a",
        cp=["a", "b", "c"],
        workers=[("a", "m", 6), ("b", "m", 6), ("c", "m", 5)],
        cni="calico", cni_version="v3.26.4", kubelet="v1.28.9", runtime="containerd://1.7.13",
        os_image="Ubuntu 22.04.4 LTS", kernel="5.15.0-105-generic", labels="topology",
        csi="vsphere", u_cpu=0.42, u_mem=0.38, reserved_cpu_m=110, reserved_mem_ki=1048576,
        pod_cidr="10.44.0.0/16", node_net="10.16.10", created=datetime(2021, 9, 14, tzinfo=timezone.utc),
        addons={"ingress-nginx": "1.10.1", "monitoring": "58.2.2", "cert-manager": "v1.14.5"},
        namespaces=[
            ns("payments", "gold", security_tier="prod", pods=8, weight=1.6, team="payments"),
            ns("payments-gateway", "gold", pods=6, weight=1.2, team="payments"),
            ns("sepa-instant", "gold", pods=6, weight=1.0, team="payments"),
            ns("swift-connector", "gold", pods=4, weight=0.8, team="payments"),
            ns("cards", "gold", pods=7, weight=1.2, team="cards"),
            ns("fraud-detection", "silver", pods=6, weight=1.4, team="fraud"),
            ns("merchant-onboarding", "silver", pods=4, weight=0.4, team="acquiring"),
            ns("notifications", None, pods=3, weight=0.3, team="payments"),
        ],
        note="3 zones, largest prod cluster; `payments` collides with fra-prod-core",
    ),
    Cluster(
        id="fra-prod-core", dc="fra", tier="prod", default_zone="fra-prod-a",
        cp=["a"],
        workers=[("a", "m", 5), ("b", "m", 4)],
        cni="calico", cni_version="v3.20.6", kubelet="v1.22.17", runtime="docker://20.10.21",
        os_image="CentOS Linux 7 (Core)", kernel="3.10.0-1160.105.1.el7.x86_64", labels="beta",
        cp_label="master", csi="vsphere-old", u_cpu=0.48, u_mem=0.51,
        node_prefix="fraprdcore", cp_name="m{n:02d}", worker_name="n{n:02d}",
        pod_cidr="192.168.0.0/16", node_net="10.16.20", created=datetime(2019, 11, 4, tzinfo=timezone.utc),
        addons={"ingress-nginx": "1.1.3", "monitoring": "58.2.2"},
        namespaces=[
            ns("core-banking", "gold", security_tier="prod", pods=8, weight=2.0, team="core"),
            ns("ledger", "gold", pods=6, weight=1.5, team="core"),
            ns("payments", "gold", pods=5, weight=1.0, team="core"),
            ns("batch-settlement", "bronze", pods=4, weight=1.0, jobs_succeeded=3, jobs_failed=1, team="core"),
            ns("statements", None, pods=3, weight=0.4, evicted=1, team="core"),
        ],
        note="old: v1.22 + docker 20.10 (dockershim), beta zone labels only, `master` role label, 1 control plane",
    ),
    Cluster(
        id="fra-prod-trading", dc="fra", tier="prod", default_zone="fra-prod-a",
        cp=["a", "b", "c"],
        workers=[("a", "l", 4), ("b", "l", 4), ("c", "l", 3)],
        cni="cilium", cni_version="v1.14.9", kubelet="v1.29.4", runtime="containerd://1.7.15",
        os_image="Red Hat Enterprise Linux 9.3 (Plow)", kernel="5.14.0-362.24.1.el9_3.x86_64",
        labels="kplan", csi="netapp", u_cpu=0.34, u_mem=0.30, reserved_cpu_m=500, reserved_mem_ki=2097152,
        pod_cidr="10.46.0.0/16", node_net="10.16.30", created=datetime(2023, 2, 20, tzinfo=timezone.utc),
        addons={"ingress-nginx": "1.10.1", "monitoring": "58.2.2", "cert-manager": "v1.14.5"},
        namespaces=[
            ns("fx-trading", "gold", security_tier="prod", pods=8, weight=1.6, team="markets"),
            ns("risk-engine", "gold", pods=7, weight=1.8, team="risk"),
            ns("market-data", "silver", pods=6, weight=1.0, team="markets"),
            ns("pricing", "silver", pods=5, weight=0.8, team="markets"),
            ns("trade-surveillance", "silver", pods=4, weight=0.6, team="compliance"),
        ],
        note="zone in `kplan.io/firewall-zone` (topology zone holds the rack name), Cilium",
    ),
    Cluster(
        id="fra-prod-retail", dc="fra", tier="prod", default_zone="fra-prod-b",
        cp=["a", "b", "c"],
        workers=[("b", "m", 7), ("c", "m", 7)],
        cni="calico", cni_version="v3.25.2", kubelet="v1.27.13", runtime="containerd://1.6.31",
        os_image="Ubuntu 20.04.6 LTS", kernel="5.4.0-176-generic", labels="topology",
        csi="vsphere", u_cpu=0.30, u_mem=0.44, reserved_mem_ki=1048576,
        pod_cidr="10.47.0.0/16", node_net="10.16.40", created=datetime(2022, 6, 8, tzinfo=timezone.utc),
        namespaces=[
            ns("mobile-api", "silver", pods=8, weight=1.4, team="digital"),
            ns("web-portal", "silver", pods=6, weight=1.0, team="digital"),
            ns("kyc", "gold", pods=5, weight=0.9, team="onboarding"),
            ns("loans", "silver", pods=5, weight=0.8, team="lending"),
            ns("customer-profile", "gold", pods=5, weight=0.9, team="digital"),
            ns("push-notifications", None, pods=3, weight=0.3, team="digital"),
        ],
        note="workers in 2 of the 3 prod zones only",
    ),
    Cluster(
        id="fra-prod-mainframe-gw", dc="fra", tier="prod", default_zone="fra-prod-b",
        cp=["b"],
        workers=[("b", "m", 5)],
        cni="flannel", cni_version="v0.19.2", kubelet="v1.27.11", runtime="containerd://1.6.28",
        os_image="Red Hat Enterprise Linux 8.9 (Ootpa)", kernel="4.18.0-513.24.1.el8_9.x86_64",
        labels="none", u_cpu=0.28, u_mem=0.34,
        node_prefix="fra-mfgw", cp_name="bm-cp{n:02d}", worker_name="bm{n:02d}",
        pod_cidr="10.244.0.0/16", node_net="10.16.50", created=datetime(2022, 10, 17, tzinfo=timezone.utc),
        namespaces=[
            ns("mainframe-gateway", "gold", pods=6, weight=1.5, team="core"),
            ns("cics-bridge", "gold", pods=4, weight=1.0, team="core"),
            ns("mq-bridge", "silver", pods=4, weight=0.8, team="integration"),
            ns("regulatory-reporting", "bronze", pods=3, weight=0.6, jobs_succeeded=2, odd_quantities=True,
               team="finance"),
        ],
        note="bare metal: NO zone or region labels (manifest default fra-prod-b), Flannel",
    ),
    # ---------------------------------------------------------------- Frankfurt, dev
    Cluster(
        id="fra-dev-apps", dc="fra", tier="dev", default_zone="fra-dev-a",
        cp=["a"],
        workers=[("a", "m", 5), ("b", "m", 5)],
        cni="calico", cni_version="v3.27.2", kubelet="v1.29.2", runtime="containerd://1.7.13",
        os_image="Ubuntu 22.04.4 LTS", kernel="5.15.0-102-generic", labels="topology",
        csi="vsphere", u_cpu=0.45, u_mem=0.50,
        pod_cidr="10.60.0.0/16", node_net="10.17.10", created=datetime(2022, 1, 12, tzinfo=timezone.utc),
        namespaces=[
            ns("payments-dev", None, security_tier="dev", pods=6, weight=1.2, team="payments"),
            ns("cards-dev", "bronze", pods=5, weight=1.0, team="cards"),
            ns("mobile-api-dev", "bronze", pods=5, weight=0.8, team="digital"),
            ns("web-portal-dev", None, pods=4, weight=0.6, team="digital"),
            ns("kyc-test", "bronze", pods=4, weight=0.6, team="onboarding"),
            ns("sandbox-jmueller", None, pods=3, weight=0.3, team="payments"),
            ns("sandbox-akowalski", None, pods=3, weight=0.3, team="digital"),
        ],
    ),
    Cluster(
        id="fra-dev-ci", dc="fra", tier="dev", default_zone="fra-dev-a",
        cp=["a"],
        workers=[("a", "s", 4), ("b", "s", 4)],
        cni="calico", cni_version="v3.27.2", kubelet="v1.29.2", runtime="containerd://1.7.13",
        os_image="Ubuntu 22.04.4 LTS", kernel="5.15.0-102-generic", labels="topology",
        u_cpu=0.50, u_mem=0.40,
        pod_cidr="10.61.0.0/16", node_net="10.17.20", created=datetime(2023, 4, 3, tzinfo=timezone.utc),
        namespaces=[
            ns("ci-runners", "bronze", pods=8, weight=2.0, jobs_succeeded=3, jobs_failed=2, team="platform"),
            ns("sonarqube", "silver", pods=3, weight=0.8, team="platform"),
            ns("artifact-proxy", "silver", pods=3, weight=0.6, team="platform"),
            ns("sandbox-ci-experiments", None, pods=3, weight=0.3, team="platform"),
        ],
    ),
    Cluster(
        id="fra-dev-analytics", dc="fra", tier="dev", default_zone="fra-dev-b",
        cp=["b"],
        workers=[("b", "l", 6)],
        cni="cilium", cni_version="v1.15.4", kubelet="v1.28.7", runtime="containerd://1.7.11",
        os_image="Ubuntu 22.04.4 LTS", kernel="5.15.0-101-generic", labels="topology",
        u_cpu=0.38, u_mem=0.42,
        pod_cidr="10.62.0.0/16", node_net="10.17.30", created=datetime(2023, 8, 21, tzinfo=timezone.utc),
        namespaces=[
            ns("data-science-sandbox", None, pods=5, weight=1.0, team="analytics"),
            ns("model-training", "bronze", pods=6, weight=1.6, jobs_succeeded=2, team="analytics"),
            ns("feature-store-dev", "bronze", pods=4, weight=0.8, team="analytics"),
            ns("fraud-scoring", "gold", security_tier="prod", pods=5, weight=1.0, team="fraud"),
        ],
        note="hosts `fraud-scoring`, labelled security-tier prod: it belongs to the fra/prod block",
    ),
    # ---------------------------------------------------------------- London, prod
    Cluster(
        id="lon-prod-banking", dc="lon", tier="prod", default_zone="lon-prod-a",
        cp=["a", "b", "c"],
        workers=[("a", "m", 5), ("b", "m", 5), ("c", "m", 5)],
        cni="calico", cni_version="v3.26.4", kubelet="v1.28.8", runtime="containerd://1.7.13",
        os_image="Ubuntu 22.04.4 LTS", kernel="5.15.0-105-generic", labels="topology",
        csi="ceph-rbd", u_cpu=0.40, u_mem=0.44, reserved_cpu_m=110, reserved_mem_ki=1048576,
        pod_cidr="10.80.0.0/16", node_net="10.32.10", created=datetime(2021, 5, 25, tzinfo=timezone.utc),
        addons={"ingress-nginx": "1.10.1", "monitoring": "58.2.2", "cert-manager": "v1.14.5"},
        namespaces=[
            ns("ledger-uk", "gold", security_tier="prod", pods=7, weight=1.5, team="core"),
            ns("faster-payments", "gold", pods=7, weight=1.4, team="payments"),
            ns("cards-uk", "gold", pods=6, weight=1.0, team="cards"),
            ns("open-banking-api", "silver", pods=6, weight=0.9, team="digital"),
            ns("customer-portal", "silver", pods=5, weight=0.7, team="digital"),
            ns("reporting", "bronze", pods=4, weight=0.6, jobs_succeeded=2, team="finance"),
        ],
        note="`reporting` collides with lon-prod-batch",
    ),
    Cluster(
        id="lon-prod-markets", dc="lon", tier="prod", default_zone="lon-prod-a",
        cp=["a", "b", "c"],
        workers=[("a", "l", 4), ("b", "l", 3), ("c", "l", 3)],
        cni="cilium", cni_version="v1.14.9", kubelet="v1.29.3", runtime="containerd://1.7.13",
        os_image="Red Hat Enterprise Linux 9.3 (Plow)", kernel="5.14.0-362.24.1.el9_3.x86_64",
        labels="kplan", csi="netapp", u_cpu=0.33, u_mem=0.29, reserved_cpu_m=500, reserved_mem_ki=2097152,
        pod_cidr="10.81.0.0/16", node_net="10.32.20", created=datetime(2023, 1, 9, tzinfo=timezone.utc),
        namespaces=[
            ns("fx-trading", "gold", pods=8, weight=1.6, team="markets"),
            ns("risk-engine", "gold", pods=6, weight=1.6, team="risk"),
            ns("gilts-desk", "gold", pods=5, weight=0.8, team="markets"),
            ns("market-data", "silver", pods=5, weight=0.9, team="markets"),
        ],
        note="`kplan.io/*` node labels, Cilium; same namespace names as fra-prod-trading (other block: no collision)",
    ),
    Cluster(
        id="lon-prod-web", dc="lon", tier="prod", default_zone="lon-prod-a",
        cp=["a"],
        workers=[("a", "m", 4), ("b", "m", 4)],
        cni="calico", cni_version="v3.25.2", kubelet="v1.28.6", runtime="containerd://1.7.11",
        os_image="Ubuntu 22.04.3 LTS", kernel="5.15.0-91-generic", labels="topology",
        csi="ceph-rbd", u_cpu=0.36, u_mem=0.40, old_workers=(3, "v1.27.12"),
        pod_cidr="10.82.0.0/16", node_net="10.32.30", created=datetime(2022, 7, 4, tzinfo=timezone.utc),
        namespaces=[
            ns("web-portal", "silver", pods=6, weight=1.0, team="digital"),
            ns("mobile-api", "silver", pods=7, weight=1.3, team="digital"),
            ns("kyc", "gold", pods=4, weight=0.7, team="onboarding"),
            ns("loans", "silver", pods=4, weight=0.7, evicted=1, team="lending"),
        ],
        note="mid-upgrade: control plane v1.28, 3 workers still v1.27 (containerd 1.6)",
    ),
    Cluster(
        id="lon-prod-batch", dc="lon", tier="prod", default_zone="lon-prod-c",
        cp=["c"],
        workers=[("c", "l", 6)],
        cni="calico", cni_version="v3.26.4", kubelet="v1.28.8", runtime="containerd://1.7.13",
        os_image="Ubuntu 22.04.4 LTS", kernel="5.15.0-105-generic", labels="topology",
        u_cpu=0.50, u_mem=0.47,
        pod_cidr="10.83.0.0/16", node_net="10.32.40", created=datetime(2022, 11, 28, tzinfo=timezone.utc),
        namespaces=[
            ns("reporting", "bronze", pods=7, weight=1.2, jobs_succeeded=3, team="finance"),
            ns("batch-settlement", "bronze", pods=8, weight=1.5, jobs_succeeded=2, jobs_failed=1, team="core"),
            ns("data-warehouse-etl", None, pods=7, weight=1.3, team="finance"),
        ],
        note="one zone only (lon-prod-c); `reporting` collides with lon-prod-banking",
    ),
    # ---------------------------------------------------------------- London, dev
    Cluster(
        id="lon-dev-apps", dc="lon", tier="dev", default_zone="lon-dev-a",
        cp=["a"],
        workers=[("a", "s", 7)],
        cni="calico", cni_version="v3.27.2", kubelet="v1.29.1", runtime="containerd://1.7.11",
        os_image="Ubuntu 22.04.3 LTS", kernel="5.15.0-91-generic", labels="topology",
        u_cpu=0.40, u_mem=0.48,
        pod_cidr="10.90.0.0/16", node_net="10.33.10", created=datetime(2022, 9, 5, tzinfo=timezone.utc),
        namespaces=[
            ns("faster-payments-dev", "bronze", security_tier="dev", pods=7, weight=1.2, team="payments"),
            ns("open-banking-sandbox", "bronze", pods=6, weight=1.0, team="digital"),
            ns("web-portal-dev", None, pods=5, weight=0.7, team="digital"),
            ns("mortgage-calc-dev", None, pods=5, weight=0.7, team="lending"),
            ns("sandbox-tbrown", None, pods=3, weight=0.3, team="digital"),
        ],
    ),
    Cluster(
        id="lon-dev-ci", dc="lon", tier="dev", default_zone="lon-dev-a",
        cp=["a", "a", "a"],
        workers=[("a", "m", 5)],
        cni="calico", cni_version="v3.26.4", kubelet="v1.28.5", runtime="containerd://1.7.11",
        os_image="Ubuntu 22.04.3 LTS", kernel="5.15.0-91-generic", labels="topology",
        u_cpu=0.30, u_mem=0.30,
        pod_cidr="10.91.0.0/16", node_net="10.33.20", created=datetime(2023, 3, 13, tzinfo=timezone.utc),
        namespaces=[
            ns("ci-runners-lon", "bronze", pods=8, weight=2.0, jobs_succeeded=3, jobs_failed=1, team="platform"),
            ns("build-cache", "silver", pods=3, weight=0.6, team="platform"),
            ns("perf-test", None, pods=4, weight=1.0, team="platform"),
        ],
        note="3 control-plane nodes all in lon-dev-a: lon dev has one zone, no spread possible",
    ),
    # ---------------------------------------------------------------- Singapore, prod
    Cluster(
        id="sin-prod-core", dc="sin", tier="prod", default_zone="sin-prod-a",
        cp=["a"],
        workers=[("a", "m", 4)],
        cni="calico", cni_version="v3.26.4", kubelet="v1.28.8", runtime="containerd://1.7.13",
        os_image="Ubuntu 22.04.4 LTS", kernel="5.15.0-105-generic", labels="topology",
        cp_label="both", cp_tainted=False, cp_shape="m", u_cpu=0.40, u_mem=0.42,
        pod_cidr="10.100.0.0/16", node_net="10.48.10", created=datetime(2023, 6, 19, tzinfo=timezone.utc),
        addons={"ingress-nginx": "1.10.1"},  # its metrics go to a central Prometheus
        namespaces=[
            ns("payments-apac", "gold", pods=7, weight=1.3, team="payments"),
            ns("trade-finance", "gold", pods=6, weight=1.0, team="trade"),
            ns("kyc-apac", "silver", pods=5, weight=0.7, team="onboarding"),
            ns("mobile-api-apac", "silver", pods=5, weight=0.7, team="digital"),
        ],
        note="small site: exactly 5 nodes, untainted control plane runs workloads",
    ),
]

ZONES = {
    "fra": {"prod": "abc", "dev": "ab"},
    "lon": {"prod": "abc", "dev": "a"},
    "sin": {"prod": "a"},
}

# ---------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------

HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated names


def ts(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_str(m: int, odd: bool = False) -> str:
    if odd and m % 100 == 0 and m < 1000:
        return f"{m / 1000:g}"          # "0.5"
    if m % 1000 == 0:
        return str(m // 1000)
    return f"{m}m"


def mem_str(mi: int) -> str:
    if mi % 1024 == 0:
        return f"{mi // 1024}Gi"
    return f"{mi}Mi"




class Gen:
    """Per-cluster random source with Kubernetes-flavoured helpers."""

    def __init__(self, seed: str):
        self.rng = random.Random(seed)
        self.digests: dict[str, str] = {}

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def suffix(self, n: int) -> str:
        return "".join(self.rng.choice(HASH_ALPHABET) for _ in range(n))

    def digest(self, image: str) -> str:
        """The same image has the same digest everywhere in a cluster."""
        if image not in self.digests:
            self.digests[image] = self.hexid(64)
        return self.digests[image]

    def hexid(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def between(self, a: datetime, b: datetime) -> datetime:
        span = int((b - a).total_seconds())
        return a + timedelta(seconds=self.rng.randint(0, max(span, 0)))


# ---------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------

@dataclass
class NodeRec:
    name: str
    zone: str
    shape: str
    control_plane: bool
    alloc_cpu_m: int
    alloc_mem_ki: int
    ip: str
    pod_cidr: str
    kubelet: str
    runtime: str
    used_cpu_m: int = 0
    used_mem_ki: int = 0
    n_pods: int = 0
    schedulable: bool = True          # for ordinary (non-tolerating) pods


def node_name(c: Cluster, role: str, n: int) -> str:
    prefix = c.node_prefix or c.id
    pattern = c.cp_name if role == "cp" else c.worker_name
    return f"{prefix}-{pattern.format(n=n)}"


def build_nodes(c: Cluster, g: Gen) -> tuple[list[NodeRec], list[dict]]:
    recs: list[NodeRec] = []
    specs = [("cp", z, c.cp_shape) for z in c.cp]
    for z, shape, count in c.workers:
        specs += [("w", z, shape)] * count
    n_cp = n_w = 0
    cidr_a, cidr_b = c.pod_cidr.split(".")[:2]
    objs = []
    old_left = c.old_workers[0] if c.old_workers else 0
    kernel_reserved: dict[str, int] = {}
    for idx, (role, letter, shape) in enumerate(specs):
        if role == "cp":
            n_cp += 1
            name = node_name(c, "cp", n_cp)
        else:
            n_w += 1
            name = node_name(c, "w", n_w)
        cores, gib = SHAPES[shape]
        # machines of one shape in one cluster come from one template: identical capacity
        if shape not in kernel_reserved:
            kernel_reserved[shape] = g.rng.randint(95_000, 287_000) * 4
        cap_mem_ki = gib * GIB_KI - kernel_reserved[shape]
        alloc_mem_ki = cap_mem_ki - 102_400 - c.reserved_mem_ki
        alloc_cpu_m = cores * 1000 - c.reserved_cpu_m
        zone = f"{c.dc}-{c.tier}-{letter}"
        kubelet, runtime = c.kubelet, c.runtime
        if role == "w" and old_left > 0 and n_w > len(specs) - len(c.cp) - c.old_workers[0]:
            kubelet, runtime = c.old_workers[1], "containerd://1.6.26"
            old_left -= 1
        rec = NodeRec(name=name, zone=zone, shape=shape, control_plane=role == "cp",
                      alloc_cpu_m=alloc_cpu_m, alloc_mem_ki=alloc_mem_ki,
                      ip=f"{c.node_net}.{11 + idx}", pod_cidr=f"{cidr_a}.{cidr_b}.{idx}.0/24",
                      kubelet=kubelet, runtime=runtime,
                      schedulable=not (role == "cp" and c.cp_tainted))
        recs.append(rec)
        objs.append(node_object(c, g, rec, cores, cap_mem_ki, idx))
    return recs, objs


def kubelet_labels(name: str) -> dict:
    """The labels every kubelet puts on its own node."""
    return {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }


def node_resources(cores: int, alloc_cpu_m: int, cap_mem_ki: int, alloc_mem_ki: int, eph_cap_ki: int,
                   extended: dict[str, int] | None = None) -> tuple[dict, dict]:
    """A node's status.allocatable and status.capacity; extended resources (nvidia.com/gpu) are in both."""
    allocatable = {
        "cpu": cpu_str(alloc_cpu_m),
        "ephemeral-storage": str(int(eph_cap_ki * 1024 * 0.9)),  # real kubelets print this one in bytes
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{alloc_mem_ki}Ki",
        "pods": str(MAX_PODS),
    }
    capacity = {
        "cpu": str(cores),
        "ephemeral-storage": f"{eph_cap_ki}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{cap_mem_ki}Ki",
        "pods": str(MAX_PODS),
    }
    for res, n in (extended or {}).items():
        allocatable[res] = capacity[res] = str(n)
    return allocatable, capacity


NODE_CONDITIONS = [
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
]


def node_conditions(boot: datetime, heartbeat: datetime, calico: bool) -> list[dict]:
    """status.conditions of a healthy node booted at `boot` (Calico adds NetworkUnavailable=False)."""
    conditions = []
    if calico:
        conditions.append({"lastHeartbeatTime": ts(boot + timedelta(seconds=40)),
                           "lastTransitionTime": ts(boot + timedelta(seconds=40)),
                           "message": "Calico is running on this node", "reason": "CalicoIsUp",
                           "status": "False", "type": "NetworkUnavailable"})
    for typ, st, reason, msg in NODE_CONDITIONS:
        conditions.append({"lastHeartbeatTime": ts(heartbeat), "lastTransitionTime": ts(boot + timedelta(seconds=20)),
                           "message": msg, "reason": reason, "status": st, "type": typ})
    return conditions


def node_document(g: Gen, name: str, ip: str, uid: str, created: datetime, labels: dict, annotations: dict,
                  spec: dict, allocatable: dict, capacity: dict, conditions: list[dict], images: list[dict],
                  runtime: str, kubelet: str, kernel: str, os_image: str, upper_uuid: bool = False) -> dict:
    """A Node as kubectl prints it; draws its bootID, machineID and systemUUID from g, in that order."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": annotations,
            "creationTimestamp": ts(created),
            "labels": labels,
            "name": name,
            "resourceVersion": None,
            "uid": uid,
        },
        "spec": spec,
        "status": {
            "addresses": [{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "allocatable": allocatable,
            "capacity": capacity,
            "conditions": conditions,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": images,
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": g.uid(),
                "containerRuntimeVersion": runtime,
                "kernelVersion": kernel,
                "kubeProxyVersion": kubelet,
                "kubeletVersion": kubelet,
                "machineID": g.hexid(32),
                "operatingSystem": "linux",
                "osImage": os_image,
                "systemUUID": g.uid().upper() if upper_uuid else g.uid(),
            },
        },
    }


def node_object(c: Cluster, g: Gen, r: NodeRec, cores: int, cap_mem_ki: int, idx: int) -> dict:
    labels = kubelet_labels(r.name)
    if c.labels == "topology":
        labels["topology.kubernetes.io/region"] = c.dc
        labels["topology.kubernetes.io/zone"] = r.zone
    elif c.labels == "kplan":
        labels["kplan.io/datacenter"] = c.dc
        labels["kplan.io/firewall-zone"] = r.zone
        # the racks inside the firewall zone, used for pod spreading
        labels["topology.kubernetes.io/zone"] = f"{c.dc}-dc{1 + 'abc'.index(r.zone[-1])}-rack-{(idx % 6) + 3:02d}"
    elif c.labels == "beta":
        labels["failure-domain.beta.kubernetes.io/region"] = c.dc
        labels["failure-domain.beta.kubernetes.io/zone"] = r.zone
    if r.control_plane:
        if c.cp_label in ("control-plane", "both"):
            labels["node-role.kubernetes.io/control-plane"] = ""
        if c.cp_label in ("master", "both"):
            labels["node-role.kubernetes.io/master"] = ""
        if c.cp_tainted and c.cp_label != "master":
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    else:
        labels["node-role.kubernetes.io/worker"] = ""
        labels["bank.internal/node-pool"] = {"s": "small", "m": "standard", "l": "large"}[r.shape]
    if c.csi in ("vsphere", "vsphere-old") and not r.control_plane:
        labels["bank.internal/storage"] = "vsan"

    docker = r.runtime.startswith("docker")
    annotations = {
        "kubeadm.alpha.kubernetes.io/cri-socket":
            "/var/run/dockershim.sock" if docker else "unix:///var/run/containerd/containerd.sock",
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    if c.cni == "calico":
        annotations["projectcalico.org/IPv4Address"] = f"{r.ip}/24"
        annotations["projectcalico.org/IPv4IPIPTunnelAddr"] = f"{c.pod_cidr.split('.')[0]}.{c.pod_cidr.split('.')[1]}.{idx}.0"
    elif c.cni == "flannel":
        annotations["flannel.alpha.coreos.com/backend-data"] = json.dumps(
            {"VNI": 1, "VtepMAC": ":".join(g.hexid(2) for _ in range(6))}, separators=(",", ":"))
        annotations["flannel.alpha.coreos.com/backend-type"] = "vxlan"
        annotations["flannel.alpha.coreos.com/kube-subnet-manager"] = "true"
        annotations["flannel.alpha.coreos.com/public-ip"] = r.ip
    elif c.cni == "cilium":
        annotations["network.cilium.io/ipv4-cilium-host"] = f"{r.pod_cidr.rsplit('.', 1)[0]}.{g.rng.randint(2, 250)}"
        annotations["network.cilium.io/ipv4-health-ip"] = f"{r.pod_cidr.rsplit('.', 1)[0]}.{g.rng.randint(2, 250)}"
    if c.csi and not r.control_plane:
        annotations["csi.volume.kubernetes.io/nodeid"] = json.dumps({CSI[c.csi][2]: r.name}, separators=(",", ":"))

    created = g.between(c.created + timedelta(days=1), SNAPSHOT - timedelta(days=40))
    spec: dict = {"podCIDR": r.pod_cidr, "podCIDRs": [r.pod_cidr]}
    if c.csi in ("vsphere", "vsphere-old"):
        spec["providerID"] = f"vsphere://{g.uid()}"
    if r.control_plane and c.cp_tainted:
        key = "node-role.kubernetes.io/master" if c.cp_label == "master" else "node-role.kubernetes.io/control-plane"
        spec["taints"] = [{"effect": "NoSchedule", "key": key}]

    eph_cap_ki = g.rng.choice([102_687_672, 205_375_344, 51_290_592])
    boot = g.between(SNAPSHOT - timedelta(days=80), SNAPSHOT - timedelta(days=3))
    hb = SNAPSHOT - timedelta(seconds=g.rng.randint(5, 50))
    minor = r.kubelet.split(".")[1]
    reg = "k8s.gcr.io" if int(minor) < 25 else "registry.k8s.io"
    images = [
        {"names": [f"{CNI[c.cni][1]}@sha256:{g.digest(CNI[c.cni][1] + ':' + c.cni_version)}",
                   f"{CNI[c.cni][1]}:{c.cni_version}"],
         "sizeBytes": g.rng.randint(70_000_000, 260_000_000)},
        {"names": [f"{reg}/pause@sha256:{g.digest(reg + '/pause')}", f"{reg}/pause:{'3.5' if int(minor) < 25 else '3.9'}"],
         "sizeBytes": g.rng.randint(250_000, 320_000)},
    ]
    allocatable, capacity = node_resources(cores, r.alloc_cpu_m, cap_mem_ki, r.alloc_mem_ki, eph_cap_ki)
    return node_document(g, r.name, r.ip, uid=g.uid(), created=created, labels=labels, annotations=annotations,
                         spec=spec, allocatable=allocatable, capacity=capacity,
                         conditions=node_conditions(boot, hb, calico=c.cni == "calico"), images=images,
                         runtime=r.runtime, kubelet=r.kubelet, kernel=c.kernel, os_image=c.os_image,
                         upper_uuid=bool(c.csi and c.csi.startswith("vsphere")))


# ---------------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------------

@dataclass
class Container:
    name: str
    image: str
    cpu_m: int | None       # request; None = no resources at all
    mem_mi: int | None
    limit: str = "burst"    # limits: burst (cpu 2x, memory = request) | equal (= requests) | none
    ports: tuple = ()
    mem_q: str | None = None  # memory written as this quantity instead (decimal units)
    extended: tuple = ()    # (resource, count), e.g. nvidia.com/gpu: requested and limited alike


@dataclass
class PodSpec:
    namespace: str
    name: str
    owner_kind: str          # ReplicaSet | StatefulSet | DaemonSet | Job | Node | "" (a bare pod)
    owner_name: str
    owner_uid: str
    labels: dict
    containers: list[Container]
    init: list[Container] = field(default_factory=list)
    phase: str = "Running"   # Running | Succeeded | Failed
    failed_reason: str = ""  # Evicted | Error
    node: str | None = None
    tolerate_all: bool = False
    host_network: bool = False
    priority_class: str = ""
    service_account: str = "default"
    odd: bool = False
    created: datetime | None = None

    def effective(self) -> tuple[int, int]:
        """Kubernetes' effective request: max(sum of containers, each init container)."""
        cpu = sum(c.cpu_m or 0 for c in self.containers)
        mem = sum(c.mem_mi or 0 for c in self.containers)
        for ic in self.init:
            cpu = max(cpu, ic.cpu_m or 0)
            mem = max(mem, ic.mem_mi or 0)
        return cpu, mem


def resources(ct: Container, odd: bool = False) -> dict:
    if ct.cpu_m is None and ct.mem_mi is None:
        return {}
    req = {}
    if ct.cpu_m is not None:
        req["cpu"] = cpu_str(ct.cpu_m, odd)
    if ct.mem_mi is not None:
        req["memory"] = ct.mem_q or mem_str(ct.mem_mi)
    for res, n in ct.extended:
        req[res] = str(n)
    out = {"requests": req}
    if ct.limit != "none":
        lim = dict(req)
        if ct.limit == "burst" and ct.cpu_m is not None:
            lim["cpu"] = cpu_str(ct.cpu_m * 2, odd)
        out["limits"] = lim
    return out


def qos(p: PodSpec) -> str:
    allc = p.containers + p.init
    if all(c.cpu_m is None and c.mem_mi is None for c in allc):
        return "BestEffort"
    if all(c.limit == "equal" and c.cpu_m is not None and c.mem_mi is not None for c in allc):
        return "Guaranteed"
    return "Burstable"  # requests below limits (cpu limit = 2x) or no limits


DEFAULT_TOLERATIONS = [  # what the DefaultTolerationSeconds admission plugin adds to every pod
    {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
    {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
]


def container_object(ct: Container, odd: bool = False) -> dict:
    """A container of a pod spec or pod template."""
    o = {
        "image": ct.image,
        "imagePullPolicy": "IfNotPresent",
        "name": ct.name,
        "resources": resources(ct, odd),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if ct.ports:
        o["ports"] = [{"containerPort": port, "name": pname, "protocol": "TCP"} for pname, port in ct.ports]
    return o


def container_status(g: Gen, ct: Container, started: datetime, terminated: dict | None, ready: bool,
                     docker: bool = False) -> dict:
    """One entry of status.containerStatuses: running since `started`, or `terminated`."""
    image_ref = ct.image.split(":")[0]
    o = {
        "containerID": f"{'docker://' if docker else 'containerd://'}{g.hexid(64)}",
        "image": ct.image,
        "imageID": (f"docker-pullable://{image_ref}@sha256:{g.digest(ct.image)}" if docker
                    else f"{image_ref}@sha256:{g.digest(ct.image)}"),
        "lastState": {},
        "name": ct.name,
        "ready": ready,
        "restartCount": 0 if terminated else g.rng.choice([0, 0, 0, 0, 1, 2]),
    }
    if terminated is not None:
        o["started"] = False
        o["state"] = {"terminated": terminated}
    else:
        o["started"] = True
        o["state"] = {"running": {"startedAt": ts(started + timedelta(seconds=12))}}
    return o


def pod_spec(p: PodSpec, containers: list[dict], inits: list[dict], restart_policy: str, tolerations: list[dict],
             mount_token: bool = False) -> dict:
    """A pod's spec around its containers (and init containers) as `container_object` writes them."""
    spec = {
        "containers": containers,
        "dnsPolicy": "ClusterFirstWithHostNet" if p.host_network else "ClusterFirst",
        "enableServiceLinks": True,
        "nodeName": p.node,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}.get(p.priority_class, 0),
        "restartPolicy": restart_policy,
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
        "tolerations": tolerations,
    }
    if p.owner_kind != "Node":
        spec["serviceAccount"] = p.service_account
        spec["serviceAccountName"] = p.service_account
        if p.service_account == "default" and not mount_token:
            spec["automountServiceAccountToken"] = False
    if inits:
        spec["initContainers"] = inits
    if p.host_network:
        spec["hostNetwork"] = True
    if p.priority_class:
        spec["priorityClassName"] = p.priority_class
    return spec


def running_status(g: Gen, p: PodSpec, host_ip: str, pod_ip: str, created: datetime, started: datetime,
                   docker: bool = False) -> dict:
    """status of a running pod (its init containers, if any, completed)."""
    status = {
        "conditions": [
            {"lastProbeTime": None, "lastTransitionTime": ts(started + timedelta(seconds=10)), "status": "True", "type": t}
            for t in ("Initialized", "Ready", "ContainersReady")
        ] + [{"lastProbeTime": None, "lastTransitionTime": ts(created), "status": "True", "type": "PodScheduled"}],
        "containerStatuses": [container_status(g, ct, started, None, True, docker) for ct in p.containers],
        "hostIP": host_ip,
        "phase": "Running",
        "podIP": host_ip if p.host_network else pod_ip,
        "podIPs": [{"ip": host_ip if p.host_network else pod_ip}],
        "qosClass": qos(p),
        "startTime": ts(started),
    }
    if p.init:
        status["initContainerStatuses"] = []
        for ct in p.init:
            term = {"containerID": "", "exitCode": 0, "finishedAt": ts(started + timedelta(seconds=9)),
                    "reason": "Completed", "startedAt": ts(started + timedelta(seconds=1))}
            s = container_status(g, ct, started, term, True, docker)
            term["containerID"] = s["containerID"]
            status["initContainerStatuses"].append(s)
    return status


def finished_status(g: Gen, p: PodSpec, host_ip: str, pod_ip: str, created: datetime, started: datetime,
                    finished: datetime, docker: bool = False) -> dict:
    """status of a pod whose containers ran to the end: Succeeded, or Failed with an error."""
    ok = p.phase == "Succeeded"
    term = {"containerID": "", "exitCode": 0 if ok else 1, "finishedAt": ts(finished),
            "reason": "Completed" if ok else "Error", "startedAt": ts(started + timedelta(seconds=5))}
    statuses = []
    for ct in p.containers:
        t = dict(term)
        s = container_status(g, ct, started, t, False, docker)
        t["containerID"] = s["containerID"]
        statuses.append(s)
    return {
        "conditions": [
            {"lastProbeTime": None, "lastTransitionTime": ts(started), "reason": "PodCompleted", "status": "True", "type": "Initialized"},
            {"lastProbeTime": None, "lastTransitionTime": ts(finished), "reason": "PodCompleted" if ok else "PodFailed", "status": "False", "type": "Ready"},
            {"lastProbeTime": None, "lastTransitionTime": ts(finished), "reason": "PodCompleted" if ok else "PodFailed", "status": "False", "type": "ContainersReady"},
            {"lastProbeTime": None, "lastTransitionTime": ts(created), "status": "True", "type": "PodScheduled"},
        ],
        "containerStatuses": statuses,
        "hostIP": host_ip,
        "phase": p.phase,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "qosClass": qos(p),
        "startTime": ts(started),
    }


def pod_metadata(g: Gen, p: PodSpec, created: datetime, started: datetime) -> dict:
    """A pod's metadata: a static pod is mirrored from its node; a bare pod (no owner kind) has no owner."""
    meta = {
        "creationTimestamp": ts(created),
        "labels": p.labels,
        "name": p.name,
        "namespace": p.namespace,
        "resourceVersion": None,
        "uid": g.uid(),
    }
    if p.owner_kind == "Node":
        meta["annotations"] = {
            "kubernetes.io/config.hash": g.hexid(32),
            "kubernetes.io/config.mirror": g.hexid(32),
            "kubernetes.io/config.seen": ts(started).replace("Z", ".000000000Z"),
            "kubernetes.io/config.source": "file",
        }
        meta["ownerReferences"] = [{"apiVersion": "v1", "controller": True, "kind": "Node",
                                    "name": p.node, "uid": p.owner_uid}]
    elif p.owner_kind:
        meta["generateName"] = (p.name[: len(p.name) - 5] if p.owner_kind in ("ReplicaSet", "DaemonSet", "Job")
                                else p.owner_name + "-")
        meta["ownerReferences"] = [{"apiVersion": "batch/v1" if p.owner_kind == "Job" else "apps/v1",
                                    "blockOwnerDeletion": True, "controller": True, "kind": p.owner_kind,
                                    "name": p.owner_name, "uid": p.owner_uid}]
    return meta


def pod_object(c: Cluster, g: Gen, p: PodSpec, n: NodeRec, pod_ip: str) -> dict:
    docker = n.runtime.startswith("docker")
    created = p.created or g.between(SNAPSHOT - timedelta(days=60), SNAPSHOT - timedelta(hours=2))
    started = created + timedelta(seconds=g.rng.randint(1, 8))
    # the bank's own workloads opt out of the service-account token
    # (automountServiceAccountToken: false); static pods have no service account.
    # System pods would mount it, but volumes are trimmed from this example to keep it
    # small (kplan does not read them).
    mount_token = False
    sa_token = f"kube-api-access-{g.suffix(5)}" if mount_token else ""

    def container_obj(ct: Container) -> dict:
        o = container_object(ct, p.odd)
        if mount_token:
            o["volumeMounts"] = [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                                  "name": sa_token, "readOnly": True}]
        return o

    spec = pod_spec(p, [container_obj(ct) for ct in p.containers], [container_obj(ct) for ct in p.init],
                    "Never" if p.owner_kind == "Job" else "Always",
                    [{"operator": "Exists"}] if p.tolerate_all else DEFAULT_TOLERATIONS, mount_token)
    if mount_token:
        spec["volumes"] = [{"name": sa_token, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                        "path": "namespace"}]}},
        ]}}]

    finished = started + timedelta(minutes=g.rng.randint(2, 40))
    if p.phase == "Running":
        status = running_status(g, p, n.ip, pod_ip, created, started, docker)
    elif p.phase == "Succeeded" or p.failed_reason == "Error":
        status = finished_status(g, p, n.ip, pod_ip, created, started, finished, docker)
    else:  # Evicted
        status = {
            "message": ("The node was low on resource: memory. Threshold quantity: 100Mi, available: "
                        f"{g.rng.randint(60000, 99000)}Ki. Container {p.containers[0].name} was using "
                        f"{g.rng.randint(900000, 3000000)}Ki, request is {mem_str(p.containers[0].mem_mi or 0)}, "
                        "has larger consumption of memory. "),
            "phase": "Failed",
            "reason": "Evicted",
            "startTime": ts(started),
        }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_metadata(g, p, created, started), "spec": spec,
            "status": status}


# business workload templates: (suffix, kind, cpu weight, memory weight, init?, sidecar?)
WORKLOADS = [
    ("api", "Deployment", 1.0, 1.0, "migrate", "vault"),
    ("worker", "Deployment", 1.4, 1.1, None, "vault"),
    ("db", "StatefulSet", 1.5, 2.0, "wait", None),
    ("cache", "StatefulSet", 0.4, 1.5, None, None),
    ("frontend", "Deployment", 0.5, 0.4, None, None),
    ("consumer", "Deployment", 1.1, 1.0, "wait", "fluent-bit"),
]
REGISTRY = "registry.bank.internal"


def plan_workloads(g: Gen, n: Ns) -> list[tuple[str, str, float, float, str | None, str | None, int]]:
    """Split a namespace's pods into 1..3 workloads; returns (name, kind, cw, mw, init, sidecar, replicas)."""
    k = 1 if n.pods <= 3 else (2 if n.pods <= 5 else 3)
    templates = g.rng.sample(WORKLOADS, k)
    if n.evicted and all(t[1] != "Deployment" for t in templates):
        templates[0] = WORKLOADS[0]  # evicted pods come from a Deployment
    if n.name.startswith("ci-runners"):
        templates = [("runner", "Deployment", 1.0, 0.8, None, None), ("runner-manager", "Deployment", 0.2, 0.2, None, None)]
        k = 2
    # replicas: at least 1 each, the rest spread
    reps = [1] * k
    for _ in range(n.pods - k):
        reps[g.rng.randrange(k)] += 1
    out = []
    for (suffix, kind, cw, mw, init, side), r in zip(templates, reps):
        out.append((f"{n.name}-{suffix}", kind, cw * g.rng.uniform(0.8, 1.25), mw * g.rng.uniform(0.8, 1.25),
                    init, side, r))
    return out


def round_cpu(m: float) -> int:
    step = 10 if m < 200 else (50 if m < 2000 else 250)
    return max(10, int(round(m / step)) * step)


def round_mem(mi: float) -> int:
    step = 16 if mi < 256 else (64 if mi < 2048 else 256)
    return max(16, int(round(mi / step)) * step)


def business_pods(c: Cluster, g: Gen, target_cpu_m: float, target_mem_mi: float, max_cpu_m: int,
                  max_mem_mi: int) -> list[PodSpec]:
    """Business pods whose effective requests sum to about the targets."""
    total_w = sum(n.weight for n in c.namespaces)
    plans = {n.name: plan_workloads(g, n) for n in c.namespaces}
    # per-pod effective request of every workload: the namespace's share of the target,
    # split by the workload weights; a pod may not exceed max_*: the excess goes to the others
    keys, w_cpu, w_mem, reps_of = [], {}, {}, {}
    for n in c.namespaces:
        wl = plans[n.name]
        sum_cw = sum(w[2] * w[6] for w in wl)
        sum_mw = sum(w[3] * w[6] for w in wl)
        for name, kind, cw, mw, init, side, reps in wl:
            keys.append(name)
            w_cpu[name] = n.weight / total_w * cw / sum_cw
            w_mem[name] = n.weight / total_w * mw / sum_mw
            reps_of[name] = reps

    def spread(target: float, weight: dict[str, float], cap: float) -> dict[str, float]:
        size, free = {}, list(keys)
        left = target
        for _ in range(20):
            total = sum(weight[k] * reps_of[k] for k in free)
            over = [k for k in free if left * weight[k] / total > cap]
            if not over:
                break
            for k in over:
                size[k] = cap
                left -= cap * reps_of[k]
                free.remove(k)
        if not free:
            raise SystemExit(f"{c.id}: pods too big for the nodes; add replicas or nodes")
        total = sum(weight[k] * reps_of[k] for k in free)
        for k in free:
            size[k] = left * weight[k] / total
        if max(size.values()) > cap * 1.001:
            raise SystemExit(f"{c.id}: pods too big for the nodes; add replicas or nodes")
        return size

    size_cpu = spread(target_cpu_m, w_cpu, max_cpu_m)
    size_mem = spread(target_mem_mi, w_mem, max_mem_mi)
    pods: list[PodSpec] = []
    for n in c.namespaces:
        for name, kind, cw, mw, init, side, reps in plans[n.name]:
            cpu = size_cpu[name]   # per pod, effective
            mem = size_mem[name]
            side_ct = None
            if side == "vault":
                side_ct = Container("vault-agent", "hashicorp/vault:1.15.6", 50, 64)
            elif side == "fluent-bit":
                side_ct = Container("fluent-bit", "cr.fluentbit.io/fluent/fluent-bit:2.2.2", 20, 32)
            if init == "migrate":
                # a Flyway migration needs more than the app at start: the init container's
                # request is the pod's effective request, the app containers ask for less
                init_cpu, init_mem = round_cpu(cpu), round_mem(mem)
                cpu, mem = cpu / 1.6, mem / 1.3
            main_cpu = round_cpu(cpu - (side_ct.cpu_m if side_ct else 0))
            main_mem = round_mem(mem - (side_ct.mem_mi if side_ct else 0))
            mem_q = None
            if n.odd_quantities:
                # requests written the Helm way: "0.5" cpu, "1G" / "1500M" memory (decimal units)
                main_cpu = max(100, round(main_cpu / 100) * 100)
                mb = max(500, round(main_mem * 2**20 / 10**6 / 500) * 500)
                mem_q = f"{mb // 1000}G" if mb % 1000 == 0 else f"{mb}M"
                main_mem = math.ceil(mb * 10**6 / 2**20)
            version = f"{g.rng.randint(1, 7)}.{g.rng.randint(0, 30)}.{g.rng.randint(0, 12)}"
            app = name.split("-")[-1] if name.startswith(n.name) else name
            image = f"{REGISTRY}/{n.team or 'apps'}/{name}:{version}"
            main = Container(app if app not in ("db", "cache") else {"db": "postgres", "cache": "redis"}[app],
                             image, main_cpu, main_mem, mem_q=mem_q,
                             ports=(("http", 8080),) if kind == "Deployment" else (("tcp", 5432 if app == "db" else 6379),))
            if app == "db":
                main.image = f"{REGISTRY}/dba/postgres:15.{g.rng.randint(4, 7)}"
            if app == "cache":
                main.image = f"{REGISTRY}/dba/redis:7.2.{g.rng.randint(1, 4)}"
            containers = [main] + ([side_ct] if side_ct else [])
            inits = []
            if init == "migrate":
                # Flyway migration: needs more than the app at start; effective request = the init's
                inits.append(Container("db-migrate", f"{REGISTRY}/{n.team or 'apps'}/{name}-migrations:{version}",
                                       init_cpu, init_mem))
            elif init == "wait":
                inits.append(Container("wait-for-deps", f"{REGISTRY}/platform/busybox:1.36", 10, 16))
            labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": n.name,
                      "bank.internal/team": n.team or "apps"}
            if kind == "Deployment":
                rs_hash = g.suffix(10)
                rs_uid = g.uid()
                labels["pod-template-hash"] = rs_hash
                for _ in range(reps):
                    pods.append(PodSpec(n.name, f"{name}-{rs_hash}-{g.suffix(5)}", "ReplicaSet", f"{name}-{rs_hash}",
                                        rs_uid, dict(labels), containers, inits, odd=n.odd_quantities))
            else:
                ss_uid = g.uid()
                rev = f"{name}-{g.suffix(10)}"
                for i in range(reps):
                    lab = dict(labels, **{"controller-revision-hash": rev,
                                          "statefulset.kubernetes.io/pod-name": f"{name}-{i}"})
                    pods.append(PodSpec(n.name, f"{name}-{i}", "StatefulSet", name, ss_uid, lab, containers, inits,
                                        odd=n.odd_quantities))
        # terminated pods: they keep their node and requests but must not count
        job = f"{n.name}-nightly" if "settlement" not in n.name else "end-of-day-settlement"
        for k, (count, phase, reason) in enumerate([(n.jobs_succeeded, "Succeeded", ""),
                                                   (n.jobs_failed, "Failed", "Error")]):
            for i in range(count):
                day = SNAPSHOT - timedelta(days=count - i + k)
                job_name = f"{job}-{int(day.timestamp()) // 60}"
                cpu = round_cpu(target_cpu_m * n.weight / total_w / max(n.pods, 1) * 1.5)
                mem = round_mem(target_mem_mi * n.weight / total_w / max(n.pods, 1) * 1.5)
                cpu, mem = min(cpu, int(max_cpu_m) // 2), min(mem, int(max_mem_mi) // 2)
                pods.append(PodSpec(n.name, f"{job_name}-{g.suffix(5)}", "Job", job_name, g.uid(),
                                    {"batch.kubernetes.io/job-name": job_name, "job-name": job_name},
                                    [Container("job", f"{REGISTRY}/{n.team or 'apps'}/{job}:{g.rng.randint(1, 9)}.0.0",
                                               cpu, mem)],
                                    phase=phase, failed_reason=reason,
                                    created=day.replace(hour=1, minute=0, second=0)))
        for i in range(n.evicted):
            victim = next(p for p in pods if p.namespace == n.name and p.owner_kind == "ReplicaSet")
            pods.append(PodSpec(n.name, victim.name[:-5] + g.suffix(5), "ReplicaSet", victim.owner_name,
                                victim.owner_uid, dict(victim.labels), victim.containers, victim.init,
                                phase="Failed", failed_reason="Evicted", odd=victim.odd,
                                created=SNAPSHOT - timedelta(days=g.rng.randint(3, 20))))
    return pods


def system_pods(c: Cluster, g: Gen, nodes: list[NodeRec], node_uids: dict[str, str]) -> tuple[list[PodSpec], list[dict]]:
    """kube-system: static control-plane pods, DaemonSets (CNI, kube-proxy, CSI), coredns, CNI controllers."""
    pods: list[PodSpec] = []
    daemonsets: list[dict] = []
    minor = int(c.kubelet.split(".")[1])
    reg = "k8s.gcr.io" if minor < 25 else "registry.k8s.io"
    etcd_v = {22: "3.5.0-0", 27: "3.5.7-0", 28: "3.5.9-0", 29: "3.5.10-0"}[minor]
    cps = [n for n in nodes if n.control_plane]
    for n in cps:
        for comp, cpu, mem in [("etcd", 100, 100), ("kube-apiserver", 250, None),
                               ("kube-controller-manager", 200, None), ("kube-scheduler", 100, None)]:
            image = f"{reg}/etcd:{etcd_v}" if comp == "etcd" else f"{reg}/{comp}:{c.kubelet}"
            pods.append(PodSpec("kube-system", f"{comp}-{n.name}", "Node", n.name, node_uids[n.name], {"component": comp, "tier": "control-plane"},
                                [Container(comp, image, cpu, mem, limit="none")], node=n.name, tolerate_all=True,
                                host_network=True, priority_class="system-node-critical",
                                created=SNAPSHOT - timedelta(days=g.rng.randint(20, 200))))

    cni_ds, cni_image = CNI[c.cni]
    ds_list = []
    if c.cni == "calico":
        ds_list.append((cni_ds, f"{cni_image}:{c.cni_version}", [("calico-node", 250, None)],
                        [("install-cni", None, None)], True, {"k8s-app": "calico-node"}, "calico-node"))
    elif c.cni == "cilium":
        ds_list.append((cni_ds, f"{cni_image}:{c.cni_version}", [("cilium-agent", 100, 10)],
                        [("config", None, None), ("clean-cilium-state", 100, 100)],
                        True, {"k8s-app": "cilium"}, "cilium"))
    else:
        ds_list.append((cni_ds, f"{cni_image}:{c.cni_version}", [("kube-flannel", 100, 50)],
                        [("install-cni", None, None)], True,
                        {"app": "flannel", "tier": "node"}, "flannel"))
    ds_list.append(("kube-proxy", f"{reg}/kube-proxy:{c.kubelet}", [("kube-proxy", None, None)], [], True,
                    {"k8s-app": "kube-proxy"}, "kube-proxy"))
    if c.csi:
        csi_ds, csi_image, _ = CSI[c.csi]
        ds_list.append((csi_ds, csi_image, [("node-driver-registrar", 10, 20), ("csi-driver", 50, 128)],
                        [], False, {"app": csi_ds}, csi_ds.replace("-node", "") + "-node-sa"))
    for ds_name, image, cts, inits, tolerate_all, sel, sa in ds_list:
        ds_uid = g.uid()
        hash_ = str(g.rng.randint(10**8, 10**10))
        eligible = [n for n in nodes if tolerate_all or n.schedulable]
        containers = [Container(n_, image, cpu, mem, limit="none") for n_, cpu, mem in cts]
        init_cts = [Container(n_, image, cpu, mem, limit="none") for n_, cpu, mem in inits]
        for n in eligible:
            pods.append(PodSpec("kube-system", f"{ds_name}-{g.suffix(5)}", "DaemonSet", ds_name, ds_uid,
                                dict(sel, **{"controller-revision-hash": hash_, "pod-template-generation": "1"}),
                                containers, init_cts, node=n.name, tolerate_all=tolerate_all,
                                host_network=True,
                                priority_class="system-node-critical", service_account=sa))
        daemonsets.append(daemonset_object(g, ds_name, ds_uid, sel, containers, init_cts, tolerate_all, sa,
                                           len(eligible), c))

    # coredns and the CNI's controller: ordinary deployments in kube-system
    deps = [("coredns", f"{reg}/coredns/coredns:v1.{8 if minor < 25 else 10}.{4 if minor < 25 else 1}", 2,
             [("coredns", 100, 70)], {"k8s-app": "kube-dns"}, "coredns")]
    if c.cni == "calico":
        deps.append(("calico-kube-controllers", f"docker.io/calico/kube-controllers:{c.cni_version}", 1,
                     [("calico-kube-controllers", None, None)], {"k8s-app": "calico-kube-controllers"},
                     "calico-kube-controllers"))
    elif c.cni == "cilium":
        deps.append(("cilium-operator", f"quay.io/cilium/operator-generic:{c.cni_version}", 2,
                     [("cilium-operator", None, None)], {"io.cilium/app": "operator", "name": "cilium-operator"},
                     "cilium-operator"))
    for dep, image, reps, cts, sel, sa in deps:
        rs_hash = g.suffix(10)
        rs_uid = g.uid()
        for _ in range(reps):
            pods.append(PodSpec("kube-system", f"{dep}-{rs_hash}-{g.suffix(5)}", "ReplicaSet", f"{dep}-{rs_hash}", rs_uid,
                                dict(sel, **{"pod-template-hash": rs_hash}),
                                [Container(n_, image, cpu, mem, limit="burst" if mem is not None else "none") for n_, cpu, mem in cts],
                                priority_class="system-cluster-critical", service_account=sa))
    return pods, daemonsets


def daemonset_object(g: Gen, name, uid, sel, containers, inits, tolerate_all, sa, n_sched, c: Cluster, *,
                     node_selector: dict | None = None, tolerations: list | None = None,
                     host_network: bool = True) -> dict:
    """A DaemonSet on the Linux nodes, tolerating every taint or none; `node_selector` and
    `tolerations`, when given, replace those."""
    def ct(x: Container) -> dict:
        o = container_object(x)
        if x.name in ("calico-node", "cilium-agent", "kube-flannel", "kube-proxy", "csi-driver"):
            o["securityContext"] = {"privileged": True}
        return o

    if tolerations is None:
        tolerations = [{"operator": "Exists"}] if tolerate_all else []
    tmpl_spec = {
        "containers": [ct(x) for x in containers],
        "dnsPolicy": "ClusterFirst",
        "nodeSelector": {"kubernetes.io/os": "linux"} if node_selector is None else dict(node_selector),
        "priorityClassName": "system-node-critical",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": sa,
        "serviceAccountName": sa,
        "terminationGracePeriodSeconds": 30,
        "tolerations": tolerations,
    }
    if host_network:
        tmpl_spec["hostNetwork"] = True
    if inits:
        tmpl_spec["initContainers"] = [ct(x) for x in inits]
    created = g.between(c.created, c.created + timedelta(days=2))
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "annotations": {"deprecated.daemonset.template.generation": "1"},
            "creationTimestamp": ts(created),
            "generation": 1,
            "labels": dict(sel),
            "name": name,
            "namespace": "kube-system",
            "resourceVersion": None,
            "uid": uid,
        },
        "spec": {
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": dict(sel)},
            "template": {"metadata": {"creationTimestamp": None, "labels": dict(sel)}, "spec": tmpl_spec},
            "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}, "type": "RollingUpdate"},
        },
        "status": {
            "currentNumberScheduled": n_sched,
            "desiredNumberScheduled": n_sched,
            "numberAvailable": n_sched,
            "numberMisscheduled": 0,
            "numberReady": n_sched,
            "observedGeneration": 1,
            "updatedNumberScheduled": n_sched,
        },
    }


def schedule(c: Cluster, g: Gen, pods: list[PodSpec], nodes: list[NodeRec]) -> None:
    """Place pods that have no node yet, like a spreading scheduler: fits, then least loaded."""
    for p in pods:
        if p.node:
            n = next(x for x in nodes if x.name == p.node)
            if p.phase == "Running":
                cpu, mem = p.effective()
                n.used_cpu_m += cpu
                n.used_mem_ki += mem * 1024
            n.n_pods += 1
    todo = [p for p in pods if not p.node]
    todo.sort(key=lambda p: (-(p.phase == "Running"), -p.effective()[0], -p.effective()[1], p.name))
    for p in todo:
        cpu, mem = p.effective()
        mem_ki = mem * 1024
        candidates = [n for n in nodes if n.schedulable and n.n_pods < MAX_PODS
                      and n.used_cpu_m + cpu <= n.alloc_cpu_m and n.used_mem_ki + mem_ki <= n.alloc_mem_ki]
        if not candidates:
            raise SystemExit(f"{c.id}: no node fits pod {p.namespace}/{p.name} ({cpu}m, {mem}Mi)")
        def load(n: NodeRec) -> float:
            return max((n.used_cpu_m + cpu) / n.alloc_cpu_m, (n.used_mem_ki + mem_ki) / n.alloc_mem_ki)
        best = min(load(n) for n in candidates)
        near = [n for n in candidates if load(n) <= best + 0.03]
        n = g.rng.choice(near)
        p.node = n.name
        if p.phase == "Running":
            n.used_cpu_m += cpu
            n.used_mem_ki += mem_ki
        n.n_pods += 1


# ---------------------------------------------------------------------------------
# Platform add-ons
# ---------------------------------------------------------------------------------

# namespace -> its workloads as their upstream charts install them:
#   (name, kind, replicas, cpu m, memory Mi per pod or None: scaled with the cluster, image; {version}: the add-on's)
# The namespace carries app.kubernetes.io/version (what kplan reads as the add-on's version).
ADDONS = {
    "ingress-nginx": [
        ("ingress-nginx-controller", "Deployment", 2, 100, 90, "registry.k8s.io/ingress-nginx/controller:v{version}"),
    ],
    "monitoring": [
        ("prometheus-k8s", "StatefulSet", 2, 200, None, "quay.io/prometheus/prometheus:v2.51.2"),
        ("kube-state-metrics", "Deployment", 1, 50, 190, "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.12.0"),
        ("grafana", "Deployment", 1, 100, 128, "docker.io/grafana/grafana:10.4.1"),
    ],
    "cert-manager": [
        ("cert-manager", "Deployment", 1, 10, 32, "quay.io/jetstack/cert-manager-controller:{version}"),
        ("cert-manager-cainjector", "Deployment", 1, 10, 32, "quay.io/jetstack/cert-manager-cainjector:{version}"),
        ("cert-manager-webhook", "Deployment", 1, 10, 32, "quay.io/jetstack/cert-manager-webhook:{version}"),
    ],
}


def addon_pods(c: Cluster, g: Gen, n_nodes: int) -> list[PodSpec]:
    """The pods of the cluster's add-ons; Prometheus' memory grows with the cluster (256 Mi per node)."""
    pods: list[PodSpec] = []
    for namespace, version in sorted(c.addons.items()):
        for name, kind, reps, cpu, mem, image in ADDONS[namespace]:
            mem = mem if mem is not None else round_mem(512 + 256 * n_nodes)
            labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace,
                      "app.kubernetes.io/version": version}
            ct = Container("controller" if namespace == "ingress-nginx" else name, image.format(version=version), cpu, mem)
            if kind == "Deployment":
                rs_hash, rs_uid = g.suffix(10), g.uid()
                for _ in range(reps):
                    pods.append(PodSpec(namespace, f"{name}-{rs_hash}-{g.suffix(5)}", "ReplicaSet",
                                        f"{name}-{rs_hash}", rs_uid, dict(labels, **{"pod-template-hash": rs_hash}),
                                        [ct], priority_class="system-cluster-critical", service_account=name))
            else:
                ss_uid, rev = g.uid(), f"{name}-{g.suffix(10)}"
                for i in range(reps):
                    pods.append(PodSpec(namespace, f"{name}-{i}", "StatefulSet", name, ss_uid,
                                        dict(labels, **{"controller-revision-hash": rev,
                                                        "statefulset.kubernetes.io/pod-name": f"{name}-{i}"}),
                                        [ct], priority_class="system-cluster-critical", service_account=name))
    return pods


def addon_namespace_objects(c: Cluster, g: Gen) -> list[dict]:
    """The add-ons' namespaces: created with the cluster, labelled with the installed version."""
    objs = []
    for namespace, version in sorted(c.addons.items()):
        obj = namespace_object(c, g, namespace, None)
        obj["metadata"]["labels"].update({"app.kubernetes.io/managed-by": "Helm",
                                          "app.kubernetes.io/version": version})
        objs.append(obj)
    return objs


# ---------------------------------------------------------------------------------
# Namespaces
# ---------------------------------------------------------------------------------

def namespace_object(c: Cluster, g: Gen, name: str, n: Ns | None, org: str = "bank.internal",
                     snapshot: datetime = SNAPSHOT) -> dict:
    """A namespace: a platform one (n is None) or a team's, labelled `<org>/team` and `<org>/cost-center`."""
    labels = {"kubernetes.io/metadata.name": name}
    annotations = {}
    if n is not None:
        if n.sla:
            labels["kplan.io/sla-tier"] = n.sla
        if n.security_tier:
            labels["kplan.io/security-tier"] = n.security_tier
        labels[f"{org}/team"] = n.team or "apps"
        labels[f"{org}/cost-center"] = f"CC-{g.rng.randint(1000, 9999)}"
        if name == "fraud-scoring":
            annotations[f"{org}/exception"] = "RISK-2291: temporary hosting on dev cluster, prod data"
        created = g.between(c.created + timedelta(days=7), snapshot - timedelta(days=30))
    else:
        created = c.created + timedelta(minutes=g.rng.randint(0, 3))
    meta = {"creationTimestamp": ts(created), "labels": labels, "name": name, "resourceVersion": None,
            "uid": g.uid()}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


PLATFORM_NAMESPACES = ["default", "kube-node-lease", "kube-public", "kube-system"]


def namespace_objects(c: Cluster, g: Gen, org: str = "bank.internal", snapshot: datetime = SNAPSHOT) -> list[dict]:
    """The platform namespaces and the cluster's own, sorted by name."""
    objs = [namespace_object(c, g, name, None, org, snapshot) for name in PLATFORM_NAMESPACES]
    objs += [namespace_object(c, g, n.name, n, org, snapshot) for n in c.namespaces]
    objs.sort(key=lambda o: o["metadata"]["name"])
    return objs


def pod_objects(c: Cluster, g: Gen, pods: list, nodes: list, make=None) -> list[dict]:
    """The pods sorted by namespace and name, each with an IP in its node's /24 of the pod CIDR.
    `make(c, g, pod, node, pod_ip)` writes one pod (default: `pod_object`)."""
    make = make or pod_object
    by_name = {n.name: n for n in nodes}
    net_a, net_b = c.pod_cidr.split(".")[:2]
    node_idx = {n.name: i for i, n in enumerate(nodes)}
    host_counter: dict[str, int] = {}
    objs = []
    for p in sorted(pods, key=lambda p: (p.namespace, p.name)):
        k = host_counter.get(p.node, 2) + g.rng.randint(1, 3)
        host_counter[p.node] = k
        objs.append(make(c, g, p, by_name[p.node], f"{net_a}.{net_b}.{node_idx[p.node]}.{k}"))
    return objs


def kubectl_list(g: Gen, items: list[dict], first_rv: int) -> dict:
    """The `kind: List` kubectl prints; resourceVersions are numeric and grow through the file
    (callers keep the ranges of different clusters disjoint)."""
    rv = first_rv
    for it in items:
        rv += g.rng.randint(1, 1500)
        it["metadata"]["resourceVersion"] = str(rv)
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


# ---------------------------------------------------------------------------------
# RBAC, NetworkPolicies and Pod Security (issue 14: a merge keeps tenants isolated)
# ---------------------------------------------------------------------------------

RBAC_API = "rbac.authorization.k8s.io"
# clusters whose namespaces carry Pod Security labels (not fra-prod-payments, whose export the
# agent tests read, nor the fra/dev clusters tests/tests/isolation.rs gives its own RBAC)
POD_SECURITY_CLUSTERS = {"fra-prod-core", "fra-prod-trading", "fra-prod-retail", "lon-prod-banking",
                         "lon-prod-markets"}
# the one team group bound to cluster-admin (its platform team runs the cluster)
CLUSTER_ADMIN_TEAM = ("fra-prod-trading", "markets")
# the one namespace whose policy admits every namespace (its scrapers come from anywhere)
ADMIT_ALL_NAMESPACES = ("lon-prod-markets", "market-data")


def _subject(kind: str, name: str, namespace: str | None = None) -> dict:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"apiGroup": RBAC_API, "kind": kind, "name": name}


def _binding(kind: str, name: str, role: str, subjects: list, g: Gen, created: datetime,
             namespace: str | None = None) -> dict:
    meta = {"creationTimestamp": ts(created), "name": name, "resourceVersion": None, "uid": g.uid()}
    if namespace is not None:
        meta["namespace"] = namespace
    if name.startswith("system:") or name == "cluster-admin":
        meta["annotations"] = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
        meta["labels"] = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    return {"apiVersion": f"{RBAC_API}/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": RBAC_API, "kind": "ClusterRole", "name": role}, "subjects": subjects}


# the bootstrap ClusterRoleBindings every cluster has (left alone by the analysis)
SYSTEM_BINDINGS = [
    ("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
    ("system:basic-user", "system:basic-user", [("Group", "system:authenticated")]),
    ("system:discovery", "system:discovery", [("Group", "system:authenticated")]),
    ("system:public-info-viewer", "system:public-info-viewer",
     [("Group", "system:authenticated"), ("Group", "system:unauthenticated")]),
    ("system:kube-controller-manager", "system:kube-controller-manager", [("User", "system:kube-controller-manager")]),
    ("system:kube-scheduler", "system:kube-scheduler", [("User", "system:kube-scheduler")]),
    ("system:node-proxier", "system:node-proxier", [("User", "system:kube-proxy")]),
]


def access_objects(c: Cluster, g: Gen, snapshot: datetime = SNAPSHOT) -> list[dict]:
    """What `kubectl get clusterroles,clusterrolebindings,rolebindings,networkpolicies -A -o json`
    prints, trimmed to the bank's own objects and the bootstrap bindings: per team namespace a
    RoleBinding of its team's group to `edit` and of the support group to `view`; some teams'
    groups bound cluster-wide to `edit`; the cluster's CI service account bound cluster-wide to
    the custom `deployer` ClusterRole; NetworkPolicies (default deny plus same-namespace allow) in
    about half the team namespaces. Drawn from its own generator: the nodes, namespaces and pods
    do not change."""
    created = lambda: g.between(c.created + timedelta(days=7), snapshot - timedelta(days=30))
    objs = []
    deployer_meta = {"creationTimestamp": ts(created()), "labels": {"bank.internal/owner": "platform"},
                     "name": "deployer", "resourceVersion": None, "uid": g.uid()}
    objs.append({"apiVersion": f"{RBAC_API}/v1", "kind": "ClusterRole", "metadata": deployer_meta, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"],
         "verbs": ["get", "list", "watch", "create", "update", "patch"]},
        {"apiGroups": [""], "resources": ["services", "configmaps"],
         "verbs": ["get", "list", "watch", "create", "update", "patch"]},
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["get", "list", "create", "delete"]},
    ]})
    for name, role, subjects in SYSTEM_BINDINGS:
        objs.append(_binding("ClusterRoleBinding", name, role, [_subject(k, n) for k, n in subjects], g,
                             c.created + timedelta(minutes=1)))
    teams = sorted({n.team or "apps" for n in c.namespaces})
    # the CI service account lives in the cluster's first team namespace
    ci_ns = c.namespaces[0].name
    objs.append(_binding("ClusterRoleBinding", "ci-deployer", "deployer",
                         [_subject("ServiceAccount", "ci-deployer", ci_ns)], g, created()))
    for team in teams:
        if g.rng.random() < 0.4:
            objs.append(_binding("ClusterRoleBinding", f"team-{team}-edit", "edit",
                                 [_subject("Group", f"team-{team}")], g, created()))
    if c.id == CLUSTER_ADMIN_TEAM[0]:
        team = CLUSTER_ADMIN_TEAM[1]
        objs.append(_binding("ClusterRoleBinding", f"team-{team}-admin", "cluster-admin",
                             [_subject("Group", f"team-{team}")], g, created()))
    for n in c.namespaces:
        team = n.team or "apps"
        objs.append(_binding("RoleBinding", f"team-{team}-edit", "edit", [_subject("Group", f"team-{team}")], g,
                             created(), n.name))
        objs.append(_binding("RoleBinding", "support-view", "view", [_subject("Group", "it-support")], g,
                             created(), n.name))
    for n in c.namespaces:
        if (c.id, n.name) == ADMIT_ALL_NAMESPACES:
            objs.append(network_policy(g, created(), n.name, "allow-from-all-namespaces", [{"namespaceSelector": {}}]))
        elif g.rng.random() < 0.5:
            objs.append(network_policy(g, created(), n.name, "default-deny-ingress", None))
            objs.append(network_policy(g, created(), n.name, "allow-same-namespace", [{"podSelector": {}}]))
    kinds = ["ClusterRole", "ClusterRoleBinding", "RoleBinding", "NetworkPolicy"]
    objs.sort(key=lambda o: (kinds.index(o["kind"]), o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return objs


def network_policy(g: Gen, created: datetime, namespace: str, name: str, sources: list | None) -> dict:
    """An ingress policy over the namespace's pods: `sources` None denies everything."""
    spec = {"podSelector": {}, "policyTypes": ["Ingress"]}
    if sources is not None:
        spec["ingress"] = [{"from": sources}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"creationTimestamp": ts(created), "generation": 1, "name": name, "namespace": namespace,
                         "resourceVersion": None, "uid": g.uid()}, "spec": spec}


def pod_security_labels(c: Cluster, g: Gen, ns_objs: list[dict]) -> None:
    """Pod Security levels on some team namespaces of the clusters that adopted them."""
    if c.id not in POD_SECURITY_CLUSTERS:
        return
    team = {n.name for n in c.namespaces}
    for o in ns_objs:
        if o["metadata"]["name"] not in team:
            continue
        level = g.rng.choice(["restricted", "baseline", "baseline", None])
        if level is not None:
            o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = level
            o["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] = "latest"


# ---------------------------------------------------------------------------------
# A cluster
# ---------------------------------------------------------------------------------

def build_cluster(idx: int, c: Cluster) -> tuple[dict, dict]:
    g = Gen(f"{SEED}/{c.id}")
    nodes, node_objs = build_nodes(c, g)
    node_uids = {o["metadata"]["name"]: o["metadata"]["uid"] for o in node_objs}
    sys_pods, ds_objs = system_pods(c, g, nodes, node_uids)

    total_cpu = sum(n.alloc_cpu_m for n in nodes)
    total_mem_mi = sum(n.alloc_mem_ki for n in nodes) / 1024
    sys_running = [p for p in sys_pods if p.phase == "Running"]
    sys_cpu = sum(p.effective()[0] for p in sys_running)
    sys_mem = sum(p.effective()[1] for p in sys_running)
    workers = [n for n in nodes if n.schedulable]
    max_cpu = min(n.alloc_cpu_m for n in workers) * 0.45
    max_mem = min(n.alloc_mem_ki for n in workers) / 1024 * 0.45
    # the add-ons draw from their own generator (the business pods' random choices do not shift);
    # their demand comes out of the cluster's utilisation target like the system pods'
    addons = addon_pods(c, Gen(f"{SEED}/{c.id}/addons"), len(nodes))
    sys_cpu += sum(p.effective()[0] for p in addons)
    sys_mem += sum(p.effective()[1] for p in addons)
    biz = business_pods(c, g, c.u_cpu * total_cpu - sys_cpu, c.u_mem * total_mem_mi - sys_mem, max_cpu, max_mem)
    pods = sys_pods + addons + biz
    schedule(c, g, pods, nodes)

    pod_objs = pod_objects(c, g, pods, nodes)
    ns_objs = namespace_objects(c, g) + addon_namespace_objects(c, Gen(f"{SEED}/{c.id}/addons/namespaces"))
    ns_objs.sort(key=lambda o: o["metadata"]["name"])
    pod_security_labels(c, Gen(f"{SEED}/{c.id}/pod-security"), ns_objs)
    node_objs.sort(key=lambda o: o["metadata"]["name"])
    ds_objs.sort(key=lambda o: o["metadata"]["name"])

    items = node_objs + ns_objs + pod_objs + ds_objs
    doc = kubectl_list(g, items, 4_000_000 + idx * 9_000_000 + g.rng.randint(0, 500_000))

    running = [p for p in pods if p.phase == "Running"]
    summary = {
        "nodes": len(nodes), "cp": sum(n.control_plane for n in nodes),
        "namespaces": len(ns_objs), "pods": len(pods), "running": len(running),
        "u_cpu": sum(p.effective()[0] for p in running) / total_cpu,
        "u_mem": sum(p.effective()[1] for p in running) / total_mem_mi,
        "alloc_cpu_m": total_cpu, "alloc_mem_mi": total_mem_mi,
        "zones": {n.zone for n in nodes},
        # demand per security tier of the namespaces (a namespace may override its cluster's tier)
        "demand": {},
    }
    tier_of = {n.name: n.security_tier or c.tier for n in c.namespaces}
    for p in running:
        t = tier_of.get(p.namespace, c.tier)
        cpu, mem = summary["demand"].get(t, (0, 0))
        summary["demand"][t] = (cpu + p.effective()[0], mem + p.effective()[1])
    return doc, summary


# ---------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------

def dump(doc: dict) -> str:
    # kubectl prints Go's json.MarshalIndent of unstructured objects: 4 spaces, sorted keys
    return json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def clusters_dir(here: Path, clusters: list, access: bool = False) -> Path:
    """`clusters/` next to a generator, without the exports of clusters it no longer writes
    (`access`: each cluster also has its `<id>-access.json`)."""
    out_dir = here / "clusters"
    out_dir.mkdir(exist_ok=True)
    wanted = {f"{c.id}.json" for c in clusters} | ({f"{c.id}-access.json" for c in clusters} if access else set())
    for stale in out_dir.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    return out_dir


def estate_toml(clusters: list | None = None, title: str = "The example bank estate: one entry per source cluster.",
                path: str = "examples/bank/estate.toml", access: bool = False) -> str:
    """The import manifest; each cluster gives its id, dc, tier and default_zone."""
    out = [
        f"# {title}",
        f"# Generated by generate.py; read by `kplan import --estate {path}`.",
        "#   datacenter    : default datacenter for nodes without a datacenter/region label",
        "#   security_tier : the cluster's security tier (namespaces may override with kplan.io/security-tier)",
        "#   zone          : default firewall zone for nodes without a zone label",
        "#   files         : kubectl JSON exports, relative to this file",
        "",
    ]
    for c in clusters or CLUSTERS:
        out += [
            "[[clusters]]",
            f'id = "{c.id}"',
            f'datacenter = "{c.dc}"',
            f'security_tier = "{c.tier}"',
            f'zone = "{c.default_zone}"',
            f'files = ["clusters/{c.id}.json", "clusters/{c.id}-access.json"]' if access
            else f'files = ["clusters/{c.id}.json"]',
            "",
        ]
    return "\n".join(out)


def label_style(c: Cluster) -> str:
    return {"topology": "topology.kubernetes.io/zone", "kplan": "kplan.io/firewall-zone",
            "beta": "failure-domain.beta…/zone", "none": "none (manifest default)"}[c.labels]


def readme(summaries: dict[str, dict]) -> str:
    rows = []
    for c in CLUSTERS:
        s = summaries[c.id]
        zones = sorted({f"{c.dc}-{c.tier}-{z}" for z in c.cp} | {f"{c.dc}-{c.tier}-{z}" for z, _, _ in c.workers})
        version = c.kubelet + (f" (+{c.old_workers[0]} on {c.old_workers[1]})" if c.old_workers else "")
        rows.append(
            f"| `{c.id}` | {c.dc} | {c.tier} | {s['nodes']} ({s['cp']} cp) | {', '.join(zones)} | "
            f"{c.cni} {c.cni_version} | {version} | {c.runtime} | {c.csi or '–'} | {label_style(c)} | "
            f"{s['u_cpu']:.0%} / {s['u_mem']:.0%} | {c.note or '–'} |")
    n_nodes = sum(s["nodes"] for s in summaries.values())
    n_ns = sum(s["namespaces"] for s in summaries.values())
    n_pods = sum(s["pods"] for s in summaries.values())
    n_running = sum(s["running"] for s in summaries.values())
    blocks = []
    for dc, tiers in ZONES.items():
        for tier in tiers:
            cs = [c for c in CLUSTERS if (c.dc, c.tier) == (dc, tier)]
            ss = [summaries[c.id] for c in cs]
            zones = sorted(set().union(*(s["zones"] for s in ss)))
            d_cpu = sum(summaries[c.id]["demand"].get(tier, (0, 0))[0] for c in CLUSTERS if c.dc == dc)
            d_mem = sum(summaries[c.id]["demand"].get(tier, (0, 0))[1] for c in CLUSTERS if c.dc == dc)
            a_cpu = sum(s["alloc_cpu_m"] for s in ss)
            a_mem = sum(s["alloc_mem_mi"] for s in ss)
            blocks.append(
                f"| {dc}/{tier} | {len(cs)} | {sum(s['nodes'] for s in ss)} ({sum(s['cp'] for s in ss)} cp) | "
                f"{', '.join(zones)} | {a_cpu / 1000:.0f} / {a_mem / 1024:.0f} Gi | "
                f"{d_cpu / 1000:.1f} / {d_mem / 1024:.0f} Gi |")
    return README_TEMPLATE.format(
        n_clusters=len(CLUSTERS), n_nodes=n_nodes, n_ns=n_ns, n_pods=n_pods, n_running=n_running,
        table="\n".join(rows), blocks="\n".join(blocks))


README_TEMPLATE = """\
# Example estate: a bank

A fictional bank that adopted Kubernetes team by team and now runs {n_clusters} clusters in
three datacenters. It is kplan's worked example: every file here is what
`kubectl get nodes,namespaces,pods,daemonsets -A -o json` prints, one per cluster, and what
`kubectl get clusterroles,clusterrolebindings,rolebindings,networkpolicies -A -o json` prints
(the bank's own roles and bindings and the bootstrap `system:` bindings), plus the import
manifest and the policy.

```
kplan import --estate examples/bank/estate.toml     # reads clusters/*.json
kplan propose --policy examples/bank/policy.toml    # the staged plan
```

| file | what it is |
|---|---|
| `clusters/<id>.json` | a `kind: List` of Nodes, Namespaces, Pods and DaemonSets, exactly as kubectl prints it |
| `clusters/<id>-access.json` | a `kind: List` of the cluster's RBAC and NetworkPolicies: team groups bound to `edit` and `it-support` to `view` per namespace, some team groups and the CI service account (custom `deployer` role) bound cluster-wide, `team-markets` bound to `cluster-admin` in `fra-prod-trading`, default deny plus same-namespace allow in about half the team namespaces, one policy admitting all namespaces (`lon-prod-markets/market-data`); drawn from its own seed, so the nodes, namespaces and pods (and the plan) are unchanged |
| `estate.toml` | the import manifest: per cluster its datacenter, security tier, default zone and files |
| `policy.toml` | the consolidation policy (zones → tiers, open flows, headroom, budgets) |
| `generate.py` | writes `clusters/`, `estate.toml` and this README, deterministically (fixed seeds) |
| `check.py` | validates the files and prints the summary table |

Regenerate and check (Python 3.11, standard library only):

```
python3 examples/bank/generate.py && python3 examples/bank/check.py
```

## The estate

- **Datacenters**: `fra` (Frankfurt, 8 clusters), `lon` (London, 6), `sin` (Singapore, a small
  site: one prod cluster of 5 nodes).
- **Security tiers**: `prod` and `dev`; they must stay in separate clusters.
- **Firewall zones** `<dc>-<tier>-<letter>`: `fra-prod-a/b/c`, `fra-dev-a/b`, `lon-prod-a/b/c`,
  `lon-dev-a`, `sin-prod-a`. London dev has a single zone, so its target control plane cannot
  spread over three zones; Singapore is small enough for a single-server (K3s) control plane.
- **Size**: {n_nodes} nodes, {n_ns} namespaces, {n_pods} pods ({n_running} running; the others
  are Succeeded or Failed and must not count as demand).
- **Utilisation** (sum of running pods' effective requests ÷ allocatable, whole cluster)
  is 25–55 % of CPU and memory everywhere, so consolidation frees nodes and there is slack to
  drain. Control-plane nodes are tainted except in `sin-prod-core`.

| cluster | dc | tier | nodes | zones | CNI | kubelet | runtime | CSI | zone label | cpu / mem used | notable |
|---|---|---|---|---|---|---|---|---|---|---|---|
{table}

The blocks kplan plans, one target cluster each (demand is the running pods' effective
requests of the block's namespaces, including `fraud-scoring` in fra/prod, and kube-system):

| block | source clusters | nodes | zones | allocatable cpu / memory | demand cpu / memory |
|---|---|---|---|---|---|
{blocks}

## Cases the planner must handle

1. **Namespace collisions**: `payments` exists in `fra-prod-payments` and `fra-prod-core`
   (both fra/prod); `reporting` in `lon-prod-banking` and `lon-prod-batch` (both lon/prod).
   Names shared across blocks (`fx-trading`, `risk-engine`, `market-data` in fra and lon;
   `web-portal`, `mobile-api`, `kyc`, `loans` in fra-prod-retail and lon-prod-web;
   `batch-settlement` in fra and lon) are *not* collisions: they land in different targets.
   Platform namespaces (`default`, `kube-*`) exist everywhere and merge.
2. **Old runtime**: `fra-prod-core` runs kubelet v1.22 with `docker://20.10.21` (dockershim):
   it must move to containerd and be upgraded before its nodes join a v1.27+ target.
   `lon-prod-web` is mid-upgrade (v1.28 control plane, three v1.27 workers).
3. **Mixed CNIs**: Calico in most clusters, Cilium in `fra-prod-trading`, `fra-dev-analytics`,
   `lon-prod-markets`, Flannel in `fra-prod-mainframe-gw`. CSI drivers differ too
   (vSphere, Ceph RBD, NetApp Trident, none).
4. **Tier override**: `fra-dev-analytics` (dev) hosts `fraud-scoring`, labelled
   `kplan.io/security-tier: prod`: it moves to the fra/prod target, never to fra/dev.
5. **Small site**: `sin` has exactly five nodes in one zone.
6. **Label generations**: zones come from `topology.kubernetes.io/zone` in most clusters,
   `kplan.io/firewall-zone` (+ `kplan.io/datacenter`) in `fra-prod-trading` and
   `lon-prod-markets` (where `topology.kubernetes.io/zone` holds a *rack* name and must lose),
   the beta `failure-domain.beta.kubernetes.io/zone` only in `fra-prod-core`, and nothing at all
   in `fra-prod-mainframe-gw` (bare metal: the manifest's `zone = "fra-prod-b"` applies).
   Control-plane nodes carry `node-role.kubernetes.io/control-plane`, the old `…/master`
   (`fra-prod-core`), or both (`sin-prod-core`). Every node's datacenter label agrees with its
   manifest entry.
7. **Quantities**: CPU as `250m`, `2`, `15890m`, `15500m`; memory as `512Mi`, `4Gi`, node memory
   in `Ki`, ephemeral storage allocatable in plain bytes; `regulatory-reporting` writes requests
   the Helm way (`0.5`, `1G`, `1500M`). Some pods have init containers (`db-migrate`) that request
   more than the app containers: the effective request is the larger of the two. Some pods
   have no requests at all (`kube-proxy`, BestEffort).
8. **Terminated pods**: completed CronJob pods (`Succeeded`), failed jobs and evicted pods
   (`Failed`) keep their node and requests in the export but are not demand.

Pod requests are the only demand kplan sees; the figures above are what the planner should
reproduce from the files (`check.py` recomputes them from the JSON alone).

## What is trimmed

To keep the directory small (about 7.5 MB) the exports leave out what kplan never reads:
`managedFields` (kubectl hides them by default), pod volumes and volume mounts (the bank's
workloads set `automountServiceAccountToken: false`), most of each node's `images` list, and
Services, Deployments and everything else not asked for. Everything kplan reads is as a real
cluster reports it.
"""


def main() -> None:
    out_dir = clusters_dir(HERE, CLUSTERS, access=True)
    ids = [c.id for c in CLUSTERS]
    assert len(ids) == len(set(ids)), "duplicate cluster id"
    summaries = {}
    for idx, c in enumerate(CLUSTERS):
        assert c.dc in ZONES and c.tier in ZONES[c.dc], c.id
        letters = set(c.cp) | {z for z, _, _ in c.workers}
        assert letters <= set(ZONES[c.dc][c.tier]), f"{c.id}: zone outside its tier"
        doc, summary = build_cluster(idx, c)
        write_text(out_dir / f"{c.id}.json", dump(doc))
        ga = Gen(f"{SEED}/{c.id}/access")
        write_text(out_dir / f"{c.id}-access.json",
                   dump(kubectl_list(ga, access_objects(c, ga), 4_000_000 + idx * 9_000_000 + 8_000_000)))
        summaries[c.id] = summary
        print(f"{c.id:24} {summary['nodes']:3} nodes {summary['namespaces']:3} ns {summary['pods']:4} pods "
              f"cpu {summary['u_cpu']:.0%} mem {summary['u_mem']:.0%}")
    write_text(HERE / "estate.toml", estate_toml(access=True))
    write_text(HERE / "README.md", readme(summaries))


if __name__ == "__main__":
    main()
