#!/usr/bin/env python3
"""Generate the example "pools" estate for kplan: special node pools that pods depend on.

One datacenter (ams, Amsterdam), one security tier (prod), three firewall zones
(ams-prod-a/b/c), five source clusters. Four of them own a node pool that some pods
can only run on:

  ams-prod-ml     a GPU pool        (nvidia.com/gpu=4, tainted nvidia.com/gpu=present:NoSchedule)
  ams-prod-risk   a dedicated pool  (tainted dedicated=risk:NoSchedule, labelled dedicated=risk)
  ams-prod-data   a big-memory pool (64 cores / 512 GiB, labelled node.kubernetes.io/memory=high)
  ams-prod-quant  an AVX-512 pool   (48 cores / 192 GiB, Node Feature Discovery label), whose one
                  namespace is too big to move in one piece
  ams-prod-web    ordinary workers only

Writes, next to this file:
  clusters/<cluster-id>.json   what `kubectl get nodes,namespaces,pods,daemonsets,pvc,pv,storageclasses -A -o json`
                               prints for each source cluster
  estate.toml                  the import manifest (`kplan import --estate estate.toml`)
  policy.toml                  the consolidation policy (the bank's, with the ams zones)
  README.md                    what the estate is

Deterministic: every cluster draws from its own `random.Random` seeded with a fixed
string, the workloads are written out below (no random sizes), and the JSON is dumped
with sorted keys, so running it twice gives byte-identical files.
Python 3.11+, standard library only.

    python3 examples/pools/generate.py
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load_bank():
    """The bank example's generator (examples/bank/generate.py), imported as a module: its
    main() only runs as a script."""
    spec = importlib.util.spec_from_file_location("kplan_bank_generate", HERE.parent / "bank" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it is being executed
    spec.loader.exec_module(module)
    return module


# The Kubernetes-flavoured helpers (random source, quantities, Node / Pod / DaemonSet /
# Namespace objects, the kubectl List, the manifest) come from the bank generator; this
# file adds the node pools, the written-out workloads and a scheduler with filters.
bank = _load_bank()
Gen, cpu_str, mem_str, dump, write_text = bank.Gen, bank.cpu_str, bank.mem_str, bank.dump, bank.write_text
Ct = bank.Container  # requests (cpu millicores, memory MiB, extended); limits: burst | equal | none
SEED = "kplan-pools-estate-v1"
# the moment the estate was exported (kubectl was run); all timestamps are before it
SNAPSHOT = datetime(2025, 6, 2, 9, 15, 0, tzinfo=timezone.utc)
DC = "ams"
TIER = "prod"
ZONE_LETTERS = "abc"

GIB_KI = bank.GIB_KI
MAX_PODS = bank.MAX_PODS

# ---------------------------------------------------------------------------------
# Node shapes and pools
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    cores: int
    gib: int
    extended: tuple = ()          # (resource, count) in allocatable and capacity


SHAPES = {
    "cp": Shape(8, 32),
    "m": Shape(16, 64),
    "l": Shape(32, 128),
    "gpu": Shape(32, 256, (("nvidia.com/gpu", 4),)),
    "risk": Shape(32, 128),
    "bigmem": Shape(64, 512),
    "avx": Shape(48, 192),
}


@dataclass(frozen=True)
class Pool:
    """Workers of one kind: their shape, name pattern, extra labels and taints."""
    shape: str
    name: str                      # node name pattern after the cluster id, {n}
    labels: tuple = ()
    taints: tuple = ()             # (key, value, effect)
    node_pool: str = ""            # the operator's own pool label


POOLS = {
    "cp": Pool("cp", "cp-{n}"),
    "m": Pool("m", "w-{n:02d}", node_pool="standard"),
    "l": Pool("l", "w-{n:02d}", node_pool="large"),
    "gpu": Pool("gpu", "gpu-{n}", node_pool="gpu",
                labels=(("accelerator", "nvidia"),
                        ("nvidia.com/gpu.count", "4"),
                        ("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB"),
                        ("nvidia.com/gpu.present", "true")),
                taints=(("nvidia.com/gpu", "present", "NoSchedule"),)),
    "risk": Pool("risk", "risk-{n}", node_pool="risk",
                 labels=(("dedicated", "risk"),),
                 taints=(("dedicated", "risk", "NoSchedule"),)),
    "bigmem": Pool("bigmem", "mem-{n}", node_pool="highmem",
                   labels=(("node.kubernetes.io/memory", "high"),)),
    # Node Feature Discovery's label for the CPU flag the Monte Carlo engine is built for
    "avx": Pool("avx", "cpu-{n}", node_pool="compute",
                labels=(("feature.node.kubernetes.io/cpu-cpuid.AVX512F", "true"),)),
}

# ---------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------

REGISTRY = "registry.ams.example.internal"
AVX512 = {"feature.node.kubernetes.io/cpu-cpuid.AVX512F": "true"}
GPU_TOLERATION = {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
RISK_TOLERATION = {"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "risk"}


@dataclass
class Wl:
    """A workload of a namespace: Deployment, StatefulSet, Job, or a bare Pod."""
    name: str
    kind: str                      # Deployment | StatefulSet | Job | Pod
    replicas: int
    containers: list[Ct]
    init: list[Ct] = field(default_factory=list)
    node_selector: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=list)
    phase: str = "Running"         # Running | Succeeded (completed CronJob runs)
    note: str = ""
    started_ago: timedelta = timedelta(hours=3)   # Jobs: how long before the export it was created
    local_volume_gib: int = 0      # StatefulSets: each pod's claim on a local volume of its node (0: none)
    pdb: dict = field(default_factory=dict)  # a PodDisruptionBudget's spec rule ({"maxUnavailable": 1}), or none


@dataclass
class Ns:
    name: str
    sla: str                       # kplan.io/sla-tier
    team: str
    workloads: list[Wl]
    note: str = ""
    security_tier: str | None = None  # kplan.io/security-tier (None: the cluster's, prod)


@dataclass
class Cluster:
    id: str
    labels: str                    # topology | kplan (how nodes name their datacenter and zone)
    kubelet: str
    runtime: str
    cni_version: str
    nodes: list[tuple[str, str]]   # (pool, zone letter), in order
    namespaces: list[Ns]
    created: datetime
    pod_cidr: str
    node_net: str
    reserved_cpu_m: int
    reserved_mem_ki: int
    note: str = ""
    # the import manifest's entry (bank.estate_toml): every cluster is in ams/prod, default zone a
    dc = DC
    tier = TIER
    default_zone = f"{DC}-{TIER}-a"


def img(team: str, name: str, tag: str) -> str:
    return f"{REGISTRY}/{team}/{name}:{tag}"


def app(name: str, image: str, cpu_m: int, mem_mi: int, **kw) -> Ct:
    return Ct(name, image, cpu_m, mem_mi, **kw)


SIDECAR = Ct("metrics-exporter", f"{REGISTRY}/platform/metrics-exporter:0.9.3", 50, 64, limit="equal")
WAIT = Ct("wait-for-deps", f"{REGISTRY}/platform/busybox:1.36", 10, 16, limit="equal")

CLUSTERS: list[Cluster] = [
    Cluster(
        id="ams-prod-ml", labels="topology", kubelet="v1.29.4", runtime="containerd://1.7.13",
        cni_version="v3.27.2",
        nodes=[("cp", "a"), ("cp", "b"), ("cp", "c"),
               ("gpu", "a"), ("gpu", "b"), ("gpu", "c"),
               ("m", "a"), ("m", "b"), ("m", "c"), ("m", "a")],
        created=datetime(2023, 2, 6, tzinfo=timezone.utc), pod_cidr="10.60.0.0/16", node_net="10.20.1",
        reserved_cpu_m=100, reserved_mem_ki=1_572_864,
        note="GPU pool: 3 × A100 nodes (4 GPUs each), tainted",
        namespaces=[
            Ns("ml-training", "silver", "ml-platform", note="GPU pods: nodeSelector accelerator=nvidia, tolerate the GPU taint", workloads=[
                Wl("trainer", "Deployment", 2,
                   [app("trainer", img("ml", "fraud-model-trainer", "2.4.1"), 8000, 48 * 1024,
                        extended=(("nvidia.com/gpu", 2),), limit="equal", ports=(("metrics", 9090),)),
                    SIDECAR],
                   node_selector={"accelerator": "nvidia"}, tolerations=[GPU_TOLERATION],
                   note="2 replicas × 2 GPUs"),
            ]),
            Ns("ml-inference", "gold", "ml-platform", workloads=[
                Wl("inference-api", "Deployment", 4,
                   [app("server", img("ml", "inference-api", "1.18.0"), 3000, 6 * 1024, ports=(("http", 8080),))]),
                Wl("model-router", "Deployment", 2,
                   [app("router", img("ml", "model-router", "0.7.2"), 500, 1024, ports=(("http", 8080),))]),
            ]),
            Ns("feature-store", "silver", "data-science", workloads=[
                Wl("redis", "StatefulSet", 3,
                   [app("redis", img("dba", "redis", "7.2.4"), 1000, 8 * 1024, ports=(("redis", 6379),))]),
                Wl("feature-api", "Deployment", 3,
                   [app("api", img("ds", "feature-api", "3.2.0"), 1000, 2 * 1024, ports=(("http", 8080),))],
                   init=[WAIT]),
            ]),
            Ns("model-registry", "bronze", "ml-platform", workloads=[
                Wl("registry", "Deployment", 2,
                   [app("mlflow", img("ml", "mlflow", "2.12.1"), 500, 2 * 1024, ports=(("http", 5000),))]),
                Wl("postgres", "StatefulSet", 1,
                   [app("postgres", img("dba", "postgres", "15.6"), 2000, 8 * 1024, ports=(("pg", 5432),))]),
                Wl("artifact-gc", "Job", 1,
                   [app("gc", img("ml", "mlflow", "2.12.1"), 500, 1024, limit="none")],
                   phase="Succeeded", note="completed CronJob run", started_ago=timedelta(hours=9, minutes=15)),
            ]),
        ],
    ),
    Cluster(
        id="ams-prod-risk", labels="kplan", kubelet="v1.29.4", runtime="containerd://1.7.13",
        cni_version="v3.27.2",
        nodes=[("cp", "a"), ("cp", "b"), ("cp", "c"),
               ("risk", "a"), ("risk", "b"), ("risk", "c"),
               ("m", "a"), ("m", "b"), ("m", "c")],
        created=datetime(2022, 10, 17, tzinfo=timezone.utc), pod_cidr="10.61.0.0/16", node_net="10.20.2",
        reserved_cpu_m=110, reserved_mem_ki=1_048_576,
        note="dedicated pool: 3 workers tainted dedicated=risk; kplan.io/* zone labels",
        namespaces=[
            Ns("risk-engine", "gold", "market-risk", note="select dedicated=risk, tolerate its taint", workloads=[
                Wl("risk-calc", "Deployment", 3,
                   [app("calc", img("risk", "risk-calc", "5.3.2"), 4000, 12 * 1024, ports=(("grpc", 9000),))],
                   node_selector={"dedicated": "risk"}, tolerations=[RISK_TOLERATION]),
                Wl("risk-grid", "StatefulSet", 2,
                   [app("grid", img("risk", "hazelcast", "5.3.6"), 3000, 16 * 1024, ports=(("member", 5701),))],
                   node_selector={"dedicated": "risk"}, tolerations=[RISK_TOLERATION]),
            ]),
            Ns("pricing-api", "gold", "trading", workloads=[
                Wl("pricing", "Deployment", 4,
                   [app("api", img("trading", "pricing-api", "9.1.0"), 2000, 4 * 1024, ports=(("http", 8080),)),
                    SIDECAR]),
                Wl("quotes-cache", "Deployment", 2,
                   [app("memcached", img("dba", "memcached", "1.6.26"), 500, 4 * 1024, ports=(("mc", 11211),))]),
            ]),
            Ns("limits-service", "silver", "market-risk", workloads=[
                Wl("limits", "Deployment", 3,
                   [app("api", img("risk", "limits-service", "2.0.9"), 1000, 2 * 1024, ports=(("http", 8080),))],
                   init=[WAIT]),
                Wl("limits-db", "StatefulSet", 2,
                   [app("postgres", img("dba", "postgres", "15.6"), 1000, 8 * 1024, ports=(("pg", 5432),))]),
            ]),
            Ns("risk-reports", "bronze", "market-risk", workloads=[
                Wl("report-ui", "Deployment", 2,
                   [app("ui", img("risk", "report-ui", "1.4.0"), 500, 1024, ports=(("http", 8080),))]),
                Wl("eod-report", "Job", 1,
                   [app("report", img("risk", "eod-report", "3.0.1"), 4000, 16 * 1024, limit="none")],
                   note="running end-of-day Job", started_ago=timedelta(hours=2, minutes=15)),
                Wl("adhoc-backfill", "Pod", 1,
                   [app("backfill", img("risk", "eod-report", "3.0.1"), 1000, 2 * 1024, limit="none")],
                   note="a bare pod someone started by hand"),
            ]),
        ],
    ),
    Cluster(
        id="ams-prod-data", labels="topology", kubelet="v1.29.4", runtime="containerd://1.7.13",
        cni_version="v3.27.2",
        nodes=[("cp", "a"), ("cp", "b"), ("cp", "c"),
               ("bigmem", "a"), ("bigmem", "b"), ("bigmem", "c"),
               ("l", "a"), ("l", "b"), ("l", "c")],
        created=datetime(2023, 6, 12, tzinfo=timezone.utc), pod_cidr="10.62.0.0/16", node_net="10.20.3",
        reserved_cpu_m=200, reserved_mem_ki=2_097_152,
        note="big-memory pool: 3 × 64 cores / 512 GiB, labelled node.kubernetes.io/memory=high (no taint)",
        namespaces=[
            Ns("analytics-cache", "silver", "analytics",
               note="cache pods request 144 GiB each: only the big-memory nodes hold one", workloads=[
                Wl("cache", "StatefulSet", 2,
                   [app("cache", img("analytics", "duckcache", "0.10.3"), 8000, 144 * 1024, limit="equal",
                        ports=(("tcp", 7000),))],
                   node_selector={"node.kubernetes.io/memory": "high"}),
                Wl("cache-proxy", "Deployment", 2,
                   [app("envoy", img("platform", "envoy", "1.29.4"), 1000, 2 * 1024, ports=(("tcp", 7001),))]),
            ]),
            Ns("analytics-etl", "bronze", "analytics", workloads=[
                Wl("etl-worker", "Deployment", 4,
                   [app("worker", img("analytics", "etl-worker", "4.7.0"), 4000, 12 * 1024)]),
                Wl("nightly-compaction", "Job", 1,
                   [app("compact", img("analytics", "etl-worker", "4.7.0"), 4000, 16 * 1024, limit="none")],
                   note="running Job", started_ago=timedelta(hours=1, minutes=15)),
                Wl("hourly-export", "Job", 1,
                   [app("export", img("analytics", "etl-worker", "4.7.0"), 1000, 4 * 1024, limit="none")],
                   phase="Succeeded", note="completed CronJob run", started_ago=timedelta(minutes=15)),
            ]),
            Ns("search", "silver", "search", workloads=[
                Wl("opensearch", "StatefulSet", 3,
                   [app("opensearch", img("search", "opensearch", "2.13.0"), 4000, 16 * 1024,
                        ports=(("http", 9200), ("transport", 9300)))],
                   init=[Ct("sysctl", f"{REGISTRY}/platform/busybox:1.36", 10, 16, limit="equal")],
                   local_volume_gib=500, pdb={"minAvailable": 2},
                   note="data on local NVMe volumes of the workers it runs on; PodDisruptionBudget minAvailable 2"),
                Wl("search-api", "Deployment", 2,
                   [app("api", img("search", "search-api", "1.9.3"), 1000, 2 * 1024, ports=(("http", 8080),))]),
            ]),
        ],
    ),
    Cluster(
        id="ams-prod-web", labels="topology", kubelet="v1.29.2", runtime="containerd://1.7.13",
        cni_version="v3.27.2",
        nodes=[("cp", "a"), ("cp", "b"), ("cp", "c"),
               ("m", "a"), ("m", "b"), ("m", "c"),
               ("l", "a"), ("l", "b")],
        created=datetime(2021, 11, 3, tzinfo=timezone.utc), pod_cidr="10.63.0.0/16", node_net="10.20.4",
        reserved_cpu_m=100, reserved_mem_ki=1_048_576,
        note="ordinary workers only",
        namespaces=[
            Ns("web-shop", "gold", "ecommerce", workloads=[
                Wl("storefront", "Deployment", 8,
                   [app("web", img("shop", "storefront", "14.2.0"), 2000, 4 * 1024, ports=(("http", 8080),))],
                   pdb={"maxUnavailable": "50%"}, note="PodDisruptionBudget maxUnavailable 50%: moves 4 at a time"),
                Wl("image-resizer", "Deployment", 2,
                   [app("resizer", img("shop", "image-resizer", "2.1.4"), 1000, 2 * 1024, ports=(("http", 8080),))]),
            ]),
            Ns("checkout-api", "gold", "ecommerce", workloads=[
                Wl("checkout", "Deployment", 4,
                   [app("api", img("shop", "checkout", "6.0.3"), 2000, 6 * 1024, ports=(("http", 8080),)), SIDECAR],
                   init=[Ct("db-migrate", img("shop", "checkout", "6.0.3"), 2500, 1024, limit="equal")]),
                Wl("orders-db", "StatefulSet", 3,
                   [app("postgres", img("dba", "postgres", "15.6"), 4000, 16 * 1024, ports=(("pg", 5432),))],
                   pdb={"minAvailable": 2}, note="PodDisruptionBudget minAvailable 2: moves one pod at a time"),
            ]),
            Ns("notifications", "silver", "ecommerce", workloads=[
                Wl("mailer", "Deployment", 2,
                   [app("mailer", img("shop", "mailer", "1.3.0"), 500, 1024)]),
                Wl("newsletter", "Job", 1,
                   [app("send", img("shop", "mailer", "1.3.0"), 500, 1024, limit="none")],
                   phase="Succeeded", note="completed CronJob run", started_ago=timedelta(hours=3, minutes=15)),
            ]),
            Ns("content", "bronze", "marketing", workloads=[
                Wl("cms", "Deployment", 2,
                   [app("cms", img("marketing", "cms", "4.4.1"), 1000, 4 * 1024, ports=(("http", 8080),))]),
                Wl("debug-shell", "Pod", 1,
                   [app("shell", f"{REGISTRY}/platform/netshoot:0.12", 100, 128, limit="none")],
                   note="a bare pod left behind after debugging"),
            ]),
        ],
    ),
    Cluster(
        id="ams-prod-quant", labels="topology", kubelet="v1.29.4", runtime="containerd://1.7.13",
        cni_version="v3.27.2",
        nodes=[("cp", "a"), ("cp", "b"), ("cp", "c"),
               ("avx", "a"), ("avx", "b"), ("avx", "c"), ("avx", "a"),
               ("m", "b"), ("m", "c")],
        created=datetime(2024, 1, 22, tzinfo=timezone.utc), pod_cidr="10.64.0.0/16", node_net="10.20.5",
        reserved_cpu_m=100, reserved_mem_ki=1_048_576,
        note="compute pool: 4 × 48 cores / 192 GiB with AVX-512 (Node Feature Discovery label)",
        namespaces=[
            Ns("quant-sim", "silver", "quant-research",
               note="3 pods of 20 cpu / 140 GiB that only the AVX-512 nodes run, one per node: in one piece "
                    "the target needs three such nodes before they arrive and the source three until they leave",
               workloads=[
                Wl("monte-carlo", "Deployment", 3,
                   [app("engine", img("quant", "monte-carlo", "7.2.0"), 20000, 140 * 1024, limit="equal",
                        ports=(("grpc", 9000),))],
                   node_selector=AVX512, note="one pod per node: two do not fit one node with 20 % headroom"),
            ]),
            Ns("quant-ui", "bronze", "quant-research", workloads=[
                Wl("scenario-ui", "Deployment", 2,
                   [app("ui", img("quant", "scenario-ui", "1.3.5"), 500, 1024, ports=(("http", 8080),))]),
            ]),
        ],
    ),
]

# ---------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------

@dataclass
class NodeRec:
    name: str
    pool: str
    zone: str
    ip: str
    pod_cidr: str
    alloc_cpu_m: int
    alloc_mem_ki: int
    cap_mem_ki: int
    labels: dict = field(default_factory=dict)
    taints: list = field(default_factory=list)
    extended: dict = field(default_factory=dict)
    uid: str = ""
    used_cpu_m: int = 0
    used_mem_ki: int = 0
    used_ext: dict = field(default_factory=dict)
    n_pods: int = 0
    workloads: dict = field(default_factory=dict)   # workload key -> pods here

    @property
    def control_plane(self) -> bool:
        return self.pool == "cp"


def build_nodes(c: Cluster, g: Gen) -> list[NodeRec]:
    recs = []
    counters: dict[str, int] = {}
    kernel_reserved: dict[str, int] = {}
    a, b = c.pod_cidr.split(".")[:2]
    for idx, (pool_name, letter) in enumerate(c.nodes):
        pool = POOLS[pool_name]
        shape = SHAPES[pool.shape]
        # one name sequence for all ordinary workers (w-01, w-02, ...), one per special pool
        seq = "w" if pool.name.startswith("w-") else pool_name
        counters[seq] = counters.get(seq, 0) + 1
        name = f"{c.id}-{pool.name.format(n=counters[seq])}"
        # machines of one shape in one cluster come from one template: identical capacity
        if pool.shape not in kernel_reserved:
            kernel_reserved[pool.shape] = g.rng.randint(95_000, 287_000) * 4
        cap_mem_ki = shape.gib * GIB_KI - kernel_reserved[pool.shape]
        rec = NodeRec(
            name=name, pool=pool_name, zone=f"{DC}-{TIER}-{letter}",
            ip=f"{c.node_net}.{11 + idx}", pod_cidr=f"{a}.{b}.{idx}.0/24",
            alloc_cpu_m=shape.cores * 1000 - c.reserved_cpu_m,
            alloc_mem_ki=cap_mem_ki - 102_400 - c.reserved_mem_ki,
            cap_mem_ki=cap_mem_ki,
            labels=dict(pool.labels),
            taints=[{"effect": e, "key": k, **({"value": v} if v else {})} for k, v, e in pool.taints],
            extended=dict(shape.extended),
        )
        if pool_name == "cp":
            rec.taints = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
        recs.append(rec)
    return recs


def node_object(c: Cluster, g: Gen, r: NodeRec, idx: int) -> dict:
    shape = SHAPES[POOLS[r.pool].shape]
    labels = bank.kubelet_labels(r.name)
    if c.labels == "topology":
        labels["topology.kubernetes.io/region"] = DC
        labels["topology.kubernetes.io/zone"] = r.zone
    else:  # kplan: the firewall zone in kplan.io/*, the topology zone holds the rack
        labels["kplan.io/datacenter"] = DC
        labels["kplan.io/firewall-zone"] = r.zone
        labels["topology.kubernetes.io/region"] = DC
        labels["topology.kubernetes.io/zone"] = f"{DC}-dc{1 + ZONE_LETTERS.index(r.zone[-1])}-rack-{(idx % 5) + 2:02d}"
    if r.control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    else:
        labels["node-role.kubernetes.io/worker"] = ""
        labels["ams.example.internal/node-pool"] = POOLS[r.pool].node_pool
    labels.update(r.labels)

    annotations = {
        "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
        "node.alpha.kubernetes.io/ttl": "0",
        "projectcalico.org/IPv4Address": f"{r.ip}/24",
        "projectcalico.org/IPv4IPIPTunnelAddr": r.pod_cidr.rsplit(".", 1)[0] + ".0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    created = g.between(c.created + timedelta(days=1), SNAPSHOT - timedelta(days=40))
    spec: dict = {"podCIDR": r.pod_cidr, "podCIDRs": [r.pod_cidr]}
    if r.taints:
        spec["taints"] = r.taints

    eph_cap_ki = {"cp": 102_687_672, "m": 205_375_344, "l": 205_375_344, "gpu": 1_873_559_512,
                  "risk": 205_375_344, "bigmem": 936_779_756, "avx": 468_389_878}[r.pool]
    boot = g.between(SNAPSHOT - timedelta(days=70), SNAPSHOT - timedelta(days=3))
    hb = SNAPSHOT - timedelta(seconds=g.rng.randint(5, 50))
    images = [
        {"names": [f"docker.io/calico/node@sha256:{g.digest('calico/node')}",
                   f"docker.io/calico/node:{c.cni_version}"],
         "sizeBytes": g.rng.randint(240_000_000, 260_000_000)},
        {"names": [f"registry.k8s.io/pause@sha256:{g.digest('pause')}", "registry.k8s.io/pause:3.9"],
         "sizeBytes": g.rng.randint(250_000, 320_000)},
    ]
    if r.pool == "gpu":
        images.insert(0, {"names": [f"nvcr.io/nvidia/k8s-device-plugin@sha256:{g.digest('nvidia-dp')}",
                                    "nvcr.io/nvidia/k8s-device-plugin:v0.15.0"],
                          "sizeBytes": g.rng.randint(120_000_000, 140_000_000)})
    allocatable, capacity = bank.node_resources(shape.cores, r.alloc_cpu_m, r.cap_mem_ki, r.alloc_mem_ki, eph_cap_ki,
                                                r.extended)
    return bank.node_document(g, r.name, r.ip, uid=r.uid, created=created, labels=labels, annotations=annotations,
                              spec=spec, allocatable=allocatable, capacity=capacity,
                              conditions=bank.node_conditions(boot, hb, calico=True), images=images,
                              runtime=c.runtime, kubelet=c.kubelet, kernel="5.15.0-107-generic",
                              os_image="Ubuntu 22.04.4 LTS")


# ---------------------------------------------------------------------------------
# Pods
# ---------------------------------------------------------------------------------

@dataclass
class PodRec(bank.PodSpec):
    """The bank's pod record, plus what this estate's scheduler filters and spreads on."""
    node_selector: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=list)   # on top of the defaults
    workload: str = ""             # namespace/name, for spreading replicas
    local_volume_gib: int = 0      # a claim `data-<pod>` on a local volume of its node

    def extended_requests(self) -> dict[str, int]:
        """Extended resources (nvidia.com/gpu) the app containers request (init containers' are not counted)."""
        ext: dict[str, int] = {}
        for ct in self.containers:
            for res, n in ct.extended:
                ext[res] = ext.get(res, 0) + n
        return ext


def pod_object(c: Cluster, g: Gen, p: PodRec, node: NodeRec, pod_ip: str) -> dict:
    created = p.created or g.between(SNAPSHOT - timedelta(days=45), SNAPSHOT - timedelta(hours=3))
    started = created + timedelta(seconds=g.rng.randint(1, 8))
    restart = "OnFailure" if p.owner_kind == "Job" else ("Never" if p.owner_kind == "" else "Always")
    tolerations = [{"operator": "Exists"}] if p.tolerate_all else list(p.tolerations) + bank.DEFAULT_TOLERATIONS
    spec = bank.pod_spec(p, [bank.container_object(ct) for ct in p.containers],
                         [bank.container_object(ct) for ct in p.init], restart, tolerations)
    if p.node_selector:
        spec["nodeSelector"] = dict(p.node_selector)
    if p.owner_kind == "StatefulSet":
        spec["hostname"] = p.name
        spec["subdomain"] = p.owner_name
    if p.local_volume_gib:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": f"data-{p.name}"}}] + \
            spec.get("volumes", [])
        spec["containers"][0].setdefault("volumeMounts", []).insert(
            0, {"name": "data", "mountPath": f"/var/lib/{p.containers[0].name}/data"})

    if p.phase == "Running":
        status = bank.running_status(g, p, node.ip, pod_ip, created, started)
    else:  # Succeeded
        finished = min(started + timedelta(minutes=g.rng.randint(2, 40)), SNAPSHOT - timedelta(seconds=g.rng.randint(30, 90)))
        status = bank.finished_status(g, p, node.ip, pod_ip, created, started, finished)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": bank.pod_metadata(g, p, created, started), "spec": spec,
            "status": status}


def workload_pods(ns: Ns, g: Gen) -> list[PodRec]:
    pods = []
    for w in ns.workloads:
        base = {"app.kubernetes.io/name": w.name, "app.kubernetes.io/part-of": ns.name,
                "ams.example.internal/team": ns.team}
        key = f"{ns.name}/{w.name}"
        common = dict(init=w.init, node_selector=w.node_selector, tolerations=w.tolerations,
                      phase=w.phase, workload=key)
        if w.kind == "Deployment":
            h = g.suffix(10)
            rs_uid = g.uid()
            for _ in range(w.replicas):
                pods.append(PodRec(ns.name, f"{w.name}-{h}-{g.suffix(5)}", "ReplicaSet", f"{w.name}-{h}", rs_uid,
                                   dict(base, **{"pod-template-hash": h}), w.containers, **common))
        elif w.kind == "StatefulSet":
            rev = f"{w.name}-{g.suffix(10)}"
            ss_uid = g.uid()
            for i in range(w.replicas):
                pods.append(PodRec(ns.name, f"{w.name}-{i}", "StatefulSet", w.name, ss_uid,
                                   dict(base, **{"apps.kubernetes.io/pod-index": str(i),
                                                 "controller-revision-hash": rev,
                                                 "statefulset.kubernetes.io/pod-name": f"{w.name}-{i}"}),
                                   w.containers, local_volume_gib=w.local_volume_gib, **common))
        elif w.kind == "Job":
            # a CronJob's Job is named after its scheduled time in minutes since the epoch
            scheduled = SNAPSHOT - w.started_ago
            job = f"{w.name}-{int(scheduled.timestamp()) // 60}"
            job_uid = g.uid()
            for _ in range(w.replicas):
                labels = {"batch.kubernetes.io/controller-uid": job_uid, "batch.kubernetes.io/job-name": job,
                          "controller-uid": job_uid, "job-name": job, "app.kubernetes.io/name": w.name,
                          "ams.example.internal/team": ns.team}
                pods.append(PodRec(ns.name, f"{job}-{g.suffix(5)}", "Job", job, job_uid, labels,
                                   w.containers, created=scheduled + timedelta(seconds=g.rng.randint(0, 3)),
                                   **common))
        else:  # a bare pod
            pods.append(PodRec(ns.name, w.name, "", "", "", {"run": w.name}, w.containers, **common))
    return pods


SYSTEM_CP = [("etcd", 100, 100), ("kube-apiserver", 250, None), ("kube-controller-manager", 200, None),
             ("kube-scheduler", 100, None)]


def system_pods(c: Cluster, g: Gen, nodes: list[NodeRec]) -> tuple[list[PodRec], list[dict]]:
    """kube-system: static control-plane pods, DaemonSets, coredns, calico-kube-controllers."""
    pods: list[PodRec] = []
    daemonsets: list[dict] = []
    reg = "registry.k8s.io"
    for n in nodes:
        if not n.control_plane:
            continue
        for comp, cpu, mem in SYSTEM_CP:
            image = f"{reg}/etcd:3.5.12-0" if comp == "etcd" else f"{reg}/{comp}:{c.kubelet}"
            pods.append(PodRec("kube-system", f"{comp}-{n.name}", "Node", n.name, n.uid,
                               {"component": comp, "tier": "control-plane"},
                               [Ct(comp, image, cpu, mem, limit="none")], node=n.name, tolerate_all=True,
                               host_network=True, priority_class="system-node-critical",
                               created=SNAPSHOT - timedelta(days=g.rng.randint(20, 200))))
    ds_list = [
        ("calico-node", [Ct("calico-node", f"docker.io/calico/node:{c.cni_version}", 250, None, limit="none")],
         [Ct("install-cni", f"docker.io/calico/cni:{c.cni_version}", None, None, limit="none")],
         {"k8s-app": "calico-node"}, {"kubernetes.io/os": "linux"}, [{"operator": "Exists"}], "calico-node"),
        ("kube-proxy", [Ct("kube-proxy", f"{reg}/kube-proxy:{c.kubelet}", None, None, limit="none")], [],
         {"k8s-app": "kube-proxy"}, {"kubernetes.io/os": "linux"}, [{"operator": "Exists"}], "kube-proxy"),
    ]
    if any(n.pool == "gpu" for n in nodes):
        ds_list.append(("nvidia-device-plugin-daemonset",
                        [Ct("nvidia-device-plugin-ctr", "nvcr.io/nvidia/k8s-device-plugin:v0.15.0", 50, 64, limit="none")],
                        [], {"name": "nvidia-device-plugin-ds"}, {"accelerator": "nvidia"},
                        [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"},
                         {"key": "CriticalAddonsOnly", "operator": "Exists"}], "default"))
    for ds_name, cts, inits, sel, node_sel, tols, sa in ds_list:
        ds_uid = g.uid()
        rev = str(g.rng.randint(10**8, 10**10))
        eligible = [n for n in nodes if all(n_lbl_ok(n, k, v) for k, v in node_sel.items())]
        for n in eligible:
            p = PodRec("kube-system", f"{ds_name}-{g.suffix(5)}", "DaemonSet", ds_name, ds_uid,
                       dict(sel, **{"controller-revision-hash": rev, "pod-template-generation": "1"}),
                       cts, inits, node=n.name, priority_class="system-node-critical",
                       host_network=ds_name != "nvidia-device-plugin-daemonset", service_account=sa)
            if tols == [{"operator": "Exists"}]:
                p.tolerate_all = True
            else:
                p.tolerations = tols
            pods.append(p)
        daemonsets.append(bank.daemonset_object(g, ds_name, ds_uid, sel, cts, inits, tols == [{"operator": "Exists"}],
                                                sa, len(eligible), c, node_selector=node_sel, tolerations=tols,
                                                host_network=ds_name != "nvidia-device-plugin-daemonset"))

    deps = [("coredns", [Ct("coredns", f"{reg}/coredns/coredns:v1.11.1", 100, 70)], 2, {"k8s-app": "kube-dns"}, "coredns"),
            ("calico-kube-controllers", [Ct("calico-kube-controllers", f"docker.io/calico/kube-controllers:{c.cni_version}",
                                            None, None, limit="none")], 1,
             {"k8s-app": "calico-kube-controllers"}, "calico-kube-controllers")]
    for dep, cts, reps, sel, sa in deps:
        h = g.suffix(10)
        rs_uid = g.uid()
        for _ in range(reps):
            pods.append(PodRec("kube-system", f"{dep}-{h}-{g.suffix(5)}", "ReplicaSet", f"{dep}-{h}", rs_uid,
                               dict(sel, **{"pod-template-hash": h}), cts,
                               tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                               priority_class="system-cluster-critical", service_account=sa,
                               workload=f"kube-system/{dep}"))
    return pods, daemonsets


def n_lbl_ok(n: NodeRec, key: str, value: str) -> bool:
    if key == "kubernetes.io/os":
        return value == "linux"
    return n.labels.get(key) == value


# ---------------------------------------------------------------------------------
# Scheduling (what the cluster's scheduler did, with its filters)
# ---------------------------------------------------------------------------------

def tolerates(p: PodRec, taint: dict) -> bool:
    if p.tolerate_all:
        return True
    for t in p.tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def passes_filters(p: PodRec, n: NodeRec) -> bool:
    """The scheduler's filters: taints, nodeSelector, and one pod fitting on the node."""
    if any(t["effect"] in ("NoSchedule", "NoExecute") and not tolerates(p, t) for t in n.taints):
        return False
    if any(n.labels.get(k) != v for k, v in p.node_selector.items()):
        return False
    cpu, mem = p.effective()
    ext = p.extended_requests()
    if n.n_pods + 1 > MAX_PODS:
        return False
    if n.used_cpu_m + cpu > n.alloc_cpu_m or n.used_mem_ki + mem * 1024 > n.alloc_mem_ki:
        return False
    return all(n.used_ext.get(r, 0) + k <= n.extended.get(r, 0) for r, k in ext.items())


def place(p: PodRec, n: NodeRec) -> None:
    p.node = n.name
    n.n_pods += 1
    if p.phase == "Running":
        cpu, mem = p.effective()
        n.used_cpu_m += cpu
        n.used_mem_ki += mem * 1024
        for r, k in p.extended_requests().items():
            n.used_ext[r] = n.used_ext.get(r, 0) + k
    n.workloads[p.workload] = n.workloads.get(p.workload, 0) + 1


def schedule(c: Cluster, g: Gen, pods: list[PodRec], nodes: list[NodeRec]) -> None:
    """Place the pods that have no node yet: filters first, then spread replicas of a
    workload over nodes and zones, then the least loaded node. Pods that select nothing
    stay off the special pools (the big-memory nodes are not tainted, but the team keeps
    them for the caches: a preferred anti-affinity in their real manifests)."""
    for p in pods:
        if p.node:
            place(p, next(n for n in nodes if n.name == p.node))
    todo = [p for p in pods if not p.node]
    todo.sort(key=lambda p: (p.phase != "Running", -p.effective()[1], -p.effective()[0], p.namespace, p.name))
    for p in todo:
        cands = [n for n in nodes if passes_filters(p, n)]
        if not p.node_selector:
            cands = [n for n in cands if n.pool in ("m", "l")]
        if not cands:
            raise SystemExit(f"{c.id}: no node fits pod {p.namespace}/{p.name}")
        cpu, mem = p.effective()

        def score(n: NodeRec) -> tuple:
            load = max((n.used_cpu_m + cpu) / n.alloc_cpu_m, (n.used_mem_ki + mem * 1024) / n.alloc_mem_ki)
            same_zone = sum(k for m in nodes if m.zone == n.zone for w, k in m.workloads.items() if w == p.workload)
            return (n.workloads.get(p.workload, 0), same_zone, round(load, 2))

        best = min(score(n) for n in cands)
        n = g.rng.choice([n for n in cands if score(n) == best])
        place(p, n)


# ---------------------------------------------------------------------------------
# Namespaces and clusters
# ---------------------------------------------------------------------------------

LOCAL_CLASS = "local-nvme"


def storage_objects(g: Gen, pods: list[PodRec]) -> list[dict]:
    """Local volumes, as the local static provisioner makes them: a StorageClass without a
    provisioner (WaitForFirstConsumer), per pod with a local volume one PersistentVolume on the
    node the pod runs on (`spec.local`, node affinity on kubernetes.io/hostname) and its bound claim."""
    local = sorted((p for p in pods if p.local_volume_gib), key=lambda p: (p.namespace, p.name))
    if not local:
        return []
    created = SNAPSHOT - timedelta(days=200)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    objs = [{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": LOCAL_CLASS, "uid": g.uid(), "creationTimestamp": stamp},
             "provisioner": "kubernetes.io/no-provisioner", "reclaimPolicy": "Retain",
             "volumeBindingMode": "WaitForFirstConsumer"}]
    for p in local:
        claim, volume, size = f"data-{p.name}", f"local-pv-{g.suffix(8)}", f"{p.local_volume_gib}Gi"
        claim_uid = g.uid()
        objs.append({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume, "uid": g.uid(), "creationTimestamp": stamp,
                         "labels": {"storage.ams.example.internal/node": p.node},
                         "annotations": {"pv.kubernetes.io/provisioned-by": "local-volume-provisioner-" + p.node},
                         "finalizers": ["kubernetes.io/pv-protection"]},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": LOCAL_CLASS,
                     "volumeMode": "Filesystem", "local": {"path": "/mnt/nvme/vol1"},
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": claim,
                                  "namespace": p.namespace, "uid": claim_uid},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [p.node]}]}]}}},
            "status": {"phase": "Bound"}})
        objs.append({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": p.namespace, "uid": claim_uid, "creationTimestamp": stamp,
                         "labels": dict(p.labels),
                         "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                         "volume.kubernetes.io/selected-node": p.node},
                         "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                     "storageClassName": LOCAL_CLASS, "volumeMode": "Filesystem", "volumeName": volume},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}}})
    return objs


def pdb_objects(g: Gen, c: Cluster) -> list[dict]:
    """A policy/v1 PodDisruptionBudget per workload that has one, selecting its pods by the
    labels workload_pods gives them, with the status the disruption controller reports."""
    objs = []
    for ns in c.namespaces:
        for w in ns.workloads:
            if not w.pdb:
                continue
            expected = w.replicas

            def scaled(v) -> int:  # an IntOrString, percentages rounded up as the controller does
                return -(-int(v[:-1]) * expected // 100) if isinstance(v, str) else v
            if "maxUnavailable" in w.pdb:
                desired = expected - scaled(w.pdb["maxUnavailable"])
            else:
                desired = scaled(w.pdb["minAvailable"])
            objs.append({
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": w.name, "namespace": ns.name, "uid": g.uid(), "generation": 1,
                             "creationTimestamp": (SNAPSHOT - timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ")},
                "spec": dict(w.pdb, selector={"matchLabels": {"app.kubernetes.io/name": w.name,
                                                              "app.kubernetes.io/part-of": ns.name}}),
                "status": {"currentHealthy": expected, "desiredHealthy": desired,
                           "disruptionsAllowed": max(0, expected - desired), "expectedPods": expected,
                           "observedGeneration": 1}})
    return objs


def build_cluster(idx: int, c: Cluster) -> tuple[dict, dict]:
    g = Gen(f"{SEED}/{c.id}")
    nodes = build_nodes(c, g)
    for n in nodes:
        n.uid = g.uid()
    sys_pods, ds_objs = system_pods(c, g, nodes)
    biz: list[PodRec] = []
    for ns in c.namespaces:
        biz += workload_pods(ns, g)
    pods = sys_pods + biz
    schedule(c, g, pods, nodes)

    pod_objs = bank.pod_objects(c, g, pods, nodes, make=pod_object)
    node_objs = [node_object(c, g, n, i) for i, n in enumerate(nodes)]
    ns_objs = bank.namespace_objects(c, g, org="ams.example.internal", snapshot=SNAPSHOT)
    node_objs.sort(key=lambda o: o["metadata"]["name"])
    ds_objs.sort(key=lambda o: o["metadata"]["name"])

    items = node_objs + ns_objs + pod_objs + ds_objs + storage_objects(g, pods) + pdb_objects(g, c)
    # resourceVersion: numeric, growing within the file, ranges disjoint between clusters
    doc = bank.kubectl_list(g, items, 71_000_000 + idx * 5_000_000 + g.rng.randint(0, 400_000))

    running = [p for p in pods if p.phase == "Running"]
    workers = [n for n in nodes if not n.control_plane]
    ordinary = [n for n in nodes if n.pool in ("m", "l")]
    summary = {
        "nodes": len(nodes),
        "cp": sum(n.control_plane for n in nodes),
        "namespaces": len(ns_objs),
        "pods": len(pods),
        "running": len(running),
        "business_pods": len([p for p in biz if p.phase == "Running"]),
        "worker_cpu_m": sum(n.alloc_cpu_m for n in workers),
        "worker_mem_ki": sum(n.alloc_mem_ki for n in workers),
        "all_cpu_m": sum(n.alloc_cpu_m for n in nodes),
        "all_mem_ki": sum(n.alloc_mem_ki for n in nodes),
        "ord_cpu_m": sum(n.alloc_cpu_m for n in ordinary),
        "ord_mem_ki": sum(n.alloc_mem_ki for n in ordinary),
        "ord_used_cpu_m": sum(n.used_cpu_m for n in ordinary),
        "ord_used_mem_ki": sum(n.used_mem_ki for n in ordinary),
        "demand_cpu_m": sum(p.effective()[0] for p in running),
        "demand_mem_mi": sum(p.effective()[1] for p in running),
        "biz_cpu_m": sum(p.effective()[0] for p in biz if p.phase == "Running"),
        "biz_mem_mi": sum(p.effective()[1] for p in biz if p.phase == "Running"),
        "worker_used_cpu_m": sum(n.used_cpu_m for n in workers),
        "worker_used_mem_ki": sum(n.used_mem_ki for n in workers),
        "pools": {},
    }
    for n in nodes:
        if n.pool in ("gpu", "risk", "bigmem", "avx"):
            summary["pools"].setdefault(n.pool, []).append(n)
    return doc, summary


# ---------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------

def estate_toml() -> str:
    return bank.estate_toml(CLUSTERS, 'The example "pools" estate: one entry per source cluster, all in ams/prod.',
                            "examples/pools/estate.toml")


POLICY_TOML = """\
# kplan policy for the example pools estate (examples/pools): the bank's policy
# (examples/bank/policy.toml) with the Amsterdam zones.
#
#   kplan propose --policy examples/pools/policy.toml
#
# Every field is optional: the comment above each says what it does and its
# default. Layers: built-in defaults < this file < KPLAN_POLICY__* environment
# variables, `__` between levels (KPLAN_POLICY__HEADROOM__CPU=0.3,
# KPLAN_POLICY__SLA_ORDER=bronze,silver,gold). Zone names set through the
# environment are lowercased. The same policy can be written in YAML
# (policy.yaml or policy.yml) with the same field names.
#
# The estate: one datacenter, ams (Amsterdam), one security tier, prod; three
# firewall zones ams-prod-a, ams-prod-b and ams-prod-c.
#
# TOML puts plain fields before any [table]: the tables (zones, open flows,
# headroom, wave budget, solver) follow the plain fields.

# A zone not listed under [zones] may host only the tiers of the clusters whose
# nodes are in it today; true lets it host any tier.
# Default: false.
unlisted_zones_host_any_tier = false

# Capacity must hold every target's demand, with headroom, even after losing
# all nodes of its largest firewall zone (checked for every zone). Needs
# targets that span several zones; a single-zone block becomes infeasible.
# Default: false.
survive_zone_loss = false

# The order SLA tiers move in, least critical first: every bronze namespace of
# a block moves no later than any silver one, silver no later than gold.
# Must list bronze, silver and gold once each.
# Default: ["bronze", "silver", "gold"].
sla_order = ["bronze", "silver", "gold"]

# A block (datacenter, tier) with at most this many nodes is a small site: one
# lightweight single-binary control plane (K3s) whose server also runs
# workloads, instead of three dedicated control-plane nodes. 0 turns small
# sites off; at most 100 and less than max_nodes_per_cluster.
# Default: 6.
small_site_max_nodes = 6

# The Kubernetes version of the target clusters, "vX.Y" or "vX.Y.Z"; empty
# means the version most of the block's nodes run (ties: the newest). Nodes
# whose kubelet is too far behind (3 minor versions since 1.28, 2 before) or
# newer than this get an upgrade precondition.
# Default: "" (the block's majority).
target_kubernetes_version = ""

# The CNI of the target clusters: calico, cilium, flannel, kube-ovn or contiv;
# empty means the CNI most of the block's nodes run (ties: alphabetical). Source
# clusters on another CNI get a migration precondition. The CNI decides the
# overlay flows the firewalls must open.
# Default: "" (the block's majority).
target_cni = ""

# Most nodes in one target cluster (Kubernetes' tested limit is 5,000); a block
# that keeps more gets ceil(kept / max) targets: ams-prod, ams-prod-2, ...
# At least 1.
# Default: 5000.
max_nodes_per_cluster = 5000

# Also open the NodePort range (tcp) between every two zones of a target.
# Default: false.
nodeport_flows = false

# The NodePort range, "low-high", for the flows above.
# Default: "30000-32767".
nodeport_range = "30000-32767"

# Calico's overlay between zones: "ipip" (IP protocol 4, no ports) or "vxlan"
# (4789/udp). BGP (179/tcp) is needed either way.
# Default: "ipip".
calico_encapsulation = "ipip"

# Namespaces that exist in every cluster: they merge into the target's own,
# never move and never collide. A trailing * matches a prefix.
# Default: ["default", "kube-*"].
platform_namespaces = ["default", "kube-*"]

# Control-plane nodes of a target only run the control plane: their capacity
# does not count for workloads (a small site's K3s server always counts).
# Default: true.
dedicated_control_plane = true

# Pods whose PersistentVolumes keep their data on one node's disks (local and
# hostPath volumes). "keep-node": that node is kept in the pods' target and
# joins it in the same wave as their namespace moves (the pods go with their
# disks; they are down while the node changes cluster). "migrate-data": the
# node may be freed; a data-migration precondition names the claims, their
# size and nodes, before the namespace or those nodes move. Default: "keep-node".
local_volumes = "keep-node"

# Moves in parts: a namespace whose PodDisruptionBudgets forbid taking its
# pods down at once moves a few replicas per wave, within its budgets (at most
# max_parts parts; a budget that needs more, or allows none, is named in a
# disruption-budget precondition). Only when a block cannot be staged
# otherwise, namespaces larger than large_share of their source's workload
# capacity (cpu or memory) also move in parts of at most that share: as few
# as let the block be staged, the largest first.
# Defaults: enabled = true, large_share = 0.1, max_parts = 6.
[parts]
enabled = true
large_share = 0.1
max_parts = 6

# Which security tiers each firewall zone may host: a prod namespace never
# lands on a node in a zone that may not host prod. `tiers = []` hosts nothing
# (such a zone's nodes are freed).
# Default: no zones listed (every zone hosts what it hosts today).
[zones]
ams-prod-a = { tiers = ["prod"] }
ams-prod-b = { tiers = ["prod"] }
ams-prod-c = { tiers = ["prod"] }

# Flows the firewalls already open between zones; kplan does not ask for them
# again. `protocol`: tcp, udp, ipip, or empty for any; `ports`: a port
# ("6443"), a range ("2379-2380"), or empty for any; `bidirectional`: also the
# reverse direction (default false).
# Default: none.

# Within Amsterdam prod, zones a and b already talk API server and kubelet.
[[open_flows]]
from_zone = "ams-prod-a"
to_zone = "ams-prod-b"
protocol = "tcp"
ports = "6443"
bidirectional = true

[[open_flows]]
from_zone = "ams-prod-a"
to_zone = "ams-prod-b"
protocol = "tcp"
ports = "10250"
bidirectional = true

# Fraction of each resource kept free in every cluster, sources and targets, at
# every moment of every wave: requests <= (1 - headroom) * allocatable.
# Each at least 0 and less than 1.
# Default: 0.2 each.
[headroom]
cpu = 0.2
memory = 0.2
pods = 0.2

# The change budget of one wave: nodes drained and joined (or freed), and
# namespaces moved. Each at least 1.
# Default: nodes = 50, namespaces = 100.
[wave_budget]
nodes = 40
namespaces = 60

# The optimisation, per block (blocks are solved in parallel; how many at once
# never changes the plan). Deterministic work limits (branch-and-bound nodes)
# stop each solve, so the same inventory and policy give the same plan on any
# machine; the seconds are wall-clock safety nets only: a block a safety net
# stopped is marked `wall-clock-limit` and says which stage it was.
[solver]
# Safety net of the composition solve per block, seconds (more than 0).
# Default: 60.
time_limit_seconds = 60.0
# Relative MIP gap at which a solve stops: at least 0, less than 1.
# Default: 0.005.
mip_gap = 0.005
# HiGHS threads per block solve, at least 1.
# Default: 1.
threads = 1
# HiGHS random seed (fixed, so that runs repeat), 0 to 2147483647.
# Default: 0.
random_seed = 0
# Branch-and-bound nodes of the composition solve (which nodes each target
# keeps), at least 1. The best plan found by then is used, never worse than
# the greedy first-fit plan. Default: 5000.
composition_max_nodes = 5000
# Branch-and-bound nodes of each staging attempt with the waves model when the
# greedy staging gets stuck on the model's node choice; if that finds nothing,
# the plan keeps a few extra nodes instead. 0 skips it. Default: 50.
staging_max_nodes = 50
# Branch-and-bound nodes of the waves model shortening a valid schedule (fewest
# waves is the last criterion). 0 skips it. Default: 50.
waves_max_nodes = 50
# The largest staging and waves models tried, in variables: their root
# relaxation grows with their size and node limits do not bound it; a block
# with a larger waves model keeps its greedy schedule. Defaults: 2300 and 1500.
staging_max_variables = 2300
waves_max_variables = 1500
# Safety nets of one staging attempt and of the waves model, seconds (0 skips
# the stage). Defaults: 20 and 10.
staging_seconds = 20.0
waves_seconds = 10.0
"""


def readme(summaries: dict[str, dict]) -> str:
    rows = []
    for c in CLUSTERS:
        s = summaries[c.id]
        counts: dict[str, int] = {}
        for pool, _ in c.nodes:
            counts[pool] = counts.get(pool, 0) + 1
        shapes = ", ".join(f"{k} {pool_label(p)}" for p, k in counts.items())
        rows.append(
            f"| `{c.id}` | {s['nodes']} | {shapes} | {s['namespaces']} | {s['pods']} ({s['running']} running) | "
            f"{s['ord_used_cpu_m'] / s['ord_cpu_m']:.0%} / {s['ord_used_mem_ki'] / s['ord_mem_ki']:.0%} | "
            f"{s['worker_used_cpu_m'] / s['worker_cpu_m']:.0%} / {s['worker_used_mem_ki'] / s['worker_mem_ki']:.0%} | "
            f"{c.kubelet} | {'kplan.io/firewall-zone' if c.labels == 'kplan' else 'topology.kubernetes.io/zone'} |")
    ns_rows = []
    for c in CLUSTERS:
        for ns in c.namespaces:
            parts = []
            for w in ns.workloads:
                main = w.containers[0]
                ext = "".join(f" + {n} `{r}`" for r, n in main.extended)
                extra = [f"sidecar `{ct.name}` {cpu_str(ct.cpu_m)} / {mem_str(ct.mem_mi)}" for ct in w.containers[1:]]
                extra += [f"init `{ct.name}` {cpu_str(ct.cpu_m)} / {mem_str(ct.mem_mi)}" for ct in w.init]
                if w.node_selector:
                    extra.append("selects " + ", ".join(f"`{k}={v}`" for k, v in w.node_selector.items()))
                if w.tolerations:
                    extra.append("tolerates " + ", ".join(
                        f"`{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}`" for t in w.tolerations))
                if w.phase != "Running":
                    extra.append(w.phase)
                if w.note:
                    extra.append(w.note)
                parts.append(f"{w.kind} `{w.name}` {w.replicas} × {cpu_str(main.cpu_m)} cpu / {mem_str(main.mem_mi)}{ext}"
                             + (f" ({'; '.join(extra)})" if extra else ""))
            ns_rows.append(f"| `{c.id}` | `{ns.name}` | {ns.sla} | {'<br>'.join(parts)} |")
    tot = {k: sum(s[k] for s in summaries.values()) for k in
           ("nodes", "cp", "namespaces", "pods", "running", "ord_cpu_m", "ord_mem_ki", "demand_cpu_m", "demand_mem_mi",
            "biz_cpu_m", "biz_mem_mi")}
    return README_TEMPLATE.format(
        table="\n".join(rows), ns_table="\n".join(ns_rows),
        n_nodes=tot["nodes"], n_cp=tot["cp"], n_ns=tot["namespaces"], n_pods=tot["pods"], n_running=tot["running"],
        ord_cpu=tot["ord_cpu_m"] / 1000, ord_mem=tot["ord_mem_ki"] / GIB_KI,
        ord_cpu80=0.8 * tot["ord_cpu_m"] / 1000, ord_mem80=0.8 * tot["ord_mem_ki"] / GIB_KI,
        dem_cpu=tot["biz_cpu_m"] / 1000, dem_mem=tot["biz_mem_mi"] / 1024,
        sys_cpu=(tot["demand_cpu_m"] - tot["biz_cpu_m"]) / 1000, sys_mem=(tot["demand_mem_mi"] - tot["biz_mem_mi"]) / 1024)


def pool_label(pool: str) -> str:
    s = SHAPES[POOLS[pool].shape]
    name = {"cp": "control plane", "m": "standard", "l": "large", "gpu": "GPU", "risk": "dedicated=risk",
            "bigmem": "big-memory", "avx": "AVX-512 compute"}[pool]
    ext = "".join(f" {n}×GPU" for _, n in s.extended)
    return f"{name} ({s.cores}c/{s.gib}Gi{ext})"


README_TEMPLATE = """\
# Example estate: node pools that pods depend on

Five production clusters in one datacenter (`ams`, Amsterdam, firewall zones `ams-prod-a/b/c`)
that kplan merges into one target, `ams-prod`. Four of them own a **node pool** that some pods
can only run on; the sums of cpu and memory say those pools could be freed, the pods say they
cannot. It is the worked example for planning by placement class: GPU, tainted, selected and
big-pod nodes are kept where pods need them, and handed over in stages; and for moves in
parts: one namespace is too big to move in one piece and moves a pod at a time.

```
kplan --inventory /tmp/pools-inv import --estate examples/pools/estate.toml
kplan --inventory /tmp/pools-inv propose --policy examples/pools/policy.toml
kplan --inventory /tmp/pools-inv plans pods <plan-id>      # where each workload can run, wave by wave
```

| file | what it is |
|---|---|
| `clusters/<id>.json` | a `kind: List` of Nodes, Namespaces, Pods, DaemonSets and (in `ams-prod-data`) the local volumes of `opensearch` (StorageClass, PersistentVolumes, claims), as `kubectl get nodes,namespaces,pods,daemonsets,pvc,pv,storageclasses -A -o json` prints it |
| `estate.toml` | the import manifest: per cluster its datacenter, security tier, default zone and file |
| `policy.toml` | the bank's policy (`examples/bank/policy.toml`) with the zones `ams-prod-a/b/c` (prod) and flows between a and b |
| `generate.py` | writes all of the above and this README, deterministically (fixed seeds; Python 3.11, standard library only) |

```
python3 examples/pools/generate.py
```

## The clusters

{n_nodes} nodes ({n_cp} control plane, 3 per cluster, one in each zone, tainted
`node-role.kubernetes.io/control-plane:NoSchedule`), {n_ns} namespaces, {n_pods} pods ({n_running}
running; the others are completed Job pods and must not count). Calico v3.27.2 and containerd
1.7.13 everywhere. Utilisation is the running pods' requests ÷ allocatable.

| cluster | nodes | node kinds | namespaces | pods | ordinary workers cpu / mem used | all workers cpu / mem used | kubelet | zone label |
|---|---|---|---|---|---|---|---|---|
{table}

## The pools

- **GPU** (`ams-prod-ml-gpu-1..3`, one per zone): 32 cores, 256 GiB, `status.allocatable`
  `nvidia.com/gpu: "4"` (A100), labelled `accelerator=nvidia` (and the GPU feature discovery
  labels `nvidia.com/gpu.*`), tainted `nvidia.com/gpu=present:NoSchedule`. The NVIDIA device
  plugin DaemonSet runs only there. `ml-training/trainer` (2 replicas × 2 GPUs, 8 cpu, 48 GiB)
  selects `accelerator: nvidia` and tolerates the taint: it needs 4 GPUs, one node's worth; with
  one node kept by the source and one already in the target it can be handed over in one wave.
- **Dedicated** (`ams-prod-risk-risk-1..3`): 32 cores, 128 GiB, labelled `dedicated=risk`, tainted
  `dedicated=risk:NoSchedule`. `risk-engine` (Deployment `risk-calc` 3 × 4 cpu / 12 GiB and
  StatefulSet `risk-grid` 2 × 3 cpu / 16 GiB) selects `dedicated: risk` and tolerates the taint:
  18 cpu / 68 GiB, which one node holds within the 20 % headroom.
- **Big memory** (`ams-prod-data-mem-1..3`): 64 cores, 512 GiB, labelled
  `node.kubernetes.io/memory=high`, not tainted. `analytics-cache/cache` (StatefulSet, 2 × 8 cpu /
  144 GiB) selects it; 144 GiB is more than any ordinary node's allocatable (the large workers
  have 32 cores / 128 GiB), so even without its selector a cache pod would fit nowhere else.
- **AVX-512** (`ams-prod-quant-cpu-1..4`): 48 cores, 192 GiB, labelled
  `feature.node.kubernetes.io/cpu-cpuid.AVX512F=true` (as Node Feature Discovery labels them),
  not tainted. `quant-sim/monte-carlo` (Deployment, 3 × 20 cpu / 140 GiB) selects the label; two
  of its pods do not fit one node with the 20 % headroom, so each needs a node of its own.

Ordinary workers are 16 cores / 64 GiB (`standard`) and 32 cores / 128 GiB (`large`). In the
source clusters the ordinary pods run on the ordinary workers only.

## Why the sums are not enough

The block's workloads (every running pod outside `kube-*`) request {dem_cpu:.1f} cpu and
{dem_mem:.0f} GiB; kube-system adds {sys_cpu:.1f} cpu and {sys_mem:.0f} GiB (static control-plane
pods and DaemonSet pods, which come with their nodes). The ordinary workers alone allocate
{ord_cpu:.0f} cpu and {ord_mem:.0f} GiB, that is {ord_cpu80:.0f} cpu and {ord_mem80:.0f} GiB with the
policy's 20 % headroom: on sums alone a target made of ordinary workers holds everything, and
every GPU, dedicated and big-memory node could be freed. Pod by pod it cannot: the GPU pods need
`nvidia.com/gpu` and tolerate only their own taint, the risk pods select `dedicated=risk`, and no
ordinary node holds a 144 GiB cache pod. So the target keeps at least one node of each pool, and
while a pool's namespace moves the source still has one node of the pool and the target already
has another: each pool is sized one node above what it strictly needs (3 nodes where one holds the
pool's pods with headroom), so the hand-over can be staged.

## What kplan plans

With `policy.toml` (20 % headroom), `kplan propose` plans the block `ams/prod` (45 → 12 nodes at
the time of writing): the target `ams-prod` keeps one GPU node, one `dedicated=risk` node,
big-memory and AVX-512 nodes (untainted, so the ordinary workloads land there too), the three large
workers of `ams-prod-data` that hold OpenSearch's data, and three control-plane nodes in three
zones, taken from the sources' plain workers (never a GPU, dedicated or big-memory node while
plain ones will do). In the first wave the control plane and one node of each pool are drained
and join the target while the sources keep the others; the namespaces move in the next waves; `search` moves in the same wave as the three large workers (its pods go
with their disks: `local_volumes = "keep-node"`, the default); the sources' remaining nodes are
freed in the last wave. `kplan plans pods <plan-id>` shows, workload by
workload, how many nodes pass the scheduler's filters in each cluster before, during and after
every wave.

## The local volumes

`search/opensearch` (StatefulSet, 3 × 4 cpu / 16 GiB) keeps its data on local NVMe disks: each
pod mounts a claim `data-opensearch-N` (500 GiB, StorageClass `local-nvme`, no provisioner,
`WaitForFirstConsumer`) bound to a PersistentVolume with `spec.local` and a required node
affinity on `kubernetes.io/hostname`, as the local static provisioner makes them. The scheduler
only places such a pod on that node (its `VolumeBinding` filter), so kplan does too: by default
the node is kept and joins the target in the wave its namespace moves. With
`local_volumes = "migrate-data"` the nodes may be freed (45 → 10) and the plan lists a
`data-migration` precondition: the claims, 1500 GiB, the nodes that hold them, before the wave.

## A namespace too big to move in one piece

`quant-sim` asks for 60 cpu and 420 GiB, 48 % of its cluster's workload allocatable, on nodes
only its own cluster has. In one piece it cannot be staged: while it moves, the target would
need three AVX-512 nodes that the source no longer has, and the source would keep three it can
no longer spare. The greedy first plan says so, and before the block is called infeasible kplan
plans it again with its largest namespaces in parts (`[parts] large_share = 0.1`: at most 10 %
of the source's workload capacity per part, one pod at least), as few namespaces as help: here
`quant-sim` alone, in three parts of one pod, each in its own wave, an AVX-512 node joining the
target before each. The plan's explanation names the namespace and its share.

## The namespaces

| cluster | namespace | SLA | workloads (requests per pod) |
|---|---|---|---|
{ns_table}

Every cluster also has `default`, `kube-node-lease`, `kube-public` and `kube-system` (static
control-plane pods, `calico-node` and `kube-proxy` DaemonSets, `coredns`,
`calico-kube-controllers`).

## What is trimmed

As in the bank example, the exports leave out what kplan never reads: `managedFields`, pod volumes
other than the local-volume claims (the workloads set `automountServiceAccountToken: false`), most of each node's `images` list, and
every kind not asked for.
"""


def main() -> None:
    out_dir = bank.clusters_dir(HERE, CLUSTERS)
    summaries = {}
    for idx, c in enumerate(CLUSTERS):
        doc, s = build_cluster(idx, c)
        write_text(out_dir / f"{c.id}.json", dump(doc))
        summaries[c.id] = s
        print(f"{c.id:16} {s['nodes']:3} nodes {s['namespaces']:3} ns {s['pods']:4} pods ({s['running']} running)  "
              f"ordinary workers cpu {s['ord_used_cpu_m'] / s['ord_cpu_m']:.0%} mem {s['ord_used_mem_ki'] / s['ord_mem_ki']:.0%}  "
              f"all workers cpu {s['worker_used_cpu_m'] / s['worker_cpu_m']:.0%} mem {s['worker_used_mem_ki'] / s['worker_mem_ki']:.0%}")
        for pool, nodes in s["pools"].items():
            for n in nodes:
                print(f"    {n.name:24} {pool:7} cpu {n.used_cpu_m / n.alloc_cpu_m:4.0%} mem {n.used_mem_ki / n.alloc_mem_ki:4.0%} "
                      f"{n.used_ext or ''}")
    write_text(HERE / "estate.toml", estate_toml())
    write_text(HERE / "policy.toml", POLICY_TOML)
    write_text(HERE / "README.md", readme(summaries))


if __name__ == "__main__":
    main()
