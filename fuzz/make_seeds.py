"""Writes the seed corpus of the snapshot_validation target (protobuf-encoded
ReportSnapshotRequest messages), from proto/kplan/v1 with grpcio-tools.

usage: python3 fuzz/make_seeds.py   (from anywhere; writes fuzz/seeds/snapshot_validation/)
"""
import pathlib
import sys
import tempfile

from grpc_tools import protoc

repo = pathlib.Path(__file__).resolve().parents[1]
out = repo / "fuzz/seeds/snapshot_validation"
out.mkdir(parents=True, exist_ok=True)
gen = pathlib.Path(tempfile.mkdtemp())
if protoc.main(["protoc", f"-I{repo / 'proto'}", f"--python_out={gen}", "kplan/v1/inventory.proto"]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, str(gen))
from kplan.v1 import inventory_pb2 as pb  # noqa: E402


def node(name, role=pb.NODE_ROLE_WORKER, **labels):
    n = pb.Node(name=name, datacenter="fra", zone="fra-a", role=role, kubelet_version="v1.29.0",
                container_runtime="containerd://1.7.2", architecture="amd64",
                allocatable=pb.Resources(cpu_millis=4000, memory_bytes=16 << 30, pods=110))
    n.labels.update({"kubernetes.io/hostname": name, **labels})
    return n


def namespace(name, tier=pb.SLA_TIER_GOLD):
    ns = pb.Namespace(name=name, security_tier="prod", sla_tier=tier,
                      requests=pb.Resources(cpu_millis=1500, memory_bytes=4 << 30, pods=12))
    ns.labels.update({"kplan.io/sla-tier": "gold", "team": "payments"})
    return ns


def snapshot(**kw):
    s = pb.ClusterSnapshot(cluster_id="fra-prod-payments", generation=7, collected_at_unix=1_700_000_000,
                           facts=pb.ClusterFacts(datacenter="fra", zone="fra-a", security_tier="prod",
                                                 kubernetes_version="v1.29.0", cni="calico",
                                                 csi_drivers=["ebs-csi-node"]))
    for key, value in kw.items():
        if key in ("nodes", "namespaces"):
            getattr(s, key).extend(value)
        else:
            setattr(s, key, value)
    return s


seeds = {
    "valid": snapshot(nodes=[node("node-1"), node("cp-1", pb.NODE_ROLE_CONTROL_PLANE)],
                      namespaces=[namespace("payments"), namespace("kube-system", pb.SLA_TIER_BRONZE)]),
    "empty-snapshot": pb.ClusterSnapshot(),
    "no-facts": pb.ClusterSnapshot(cluster_id="a", generation=1),
    "duplicates": snapshot(nodes=[node("n"), node("n")], namespaces=[namespace("x"), namespace("x")]),
    "bad-labels": snapshot(nodes=[node("n", **{"Bad Key": "v", "a/b/c": "-x", "p" * 254 + "/k": "v" * 64})]),
    "nul-and-control": snapshot(cluster_id="fra\0", nodes=[node("n\0"), node("m", **{"k": "a\nb"})]),
    "absurd": snapshot(nodes=[node("big")]),
    "unknown-enums": snapshot(nodes=[node("n", role=7)], namespaces=[namespace("x", tier=9)]),
    "generation-zero": snapshot(generation=0, collected_at_unix=-5),
}
seeds["absurd"].nodes[0].allocatable.cpu_millis = 2**64 - 1
for name, message in seeds.items():
    (out / name).write_bytes(pb.ReportSnapshotRequest(snapshot=message).SerializeToString())
print(f"{len(seeds)} seeds in {out}")
