#!/usr/bin/env python3
"""A quarterly capacity review from Python: a starting point for capacity teams.

Talks to kplan-server's CapacityService over gRPC with stubs generated from
kplan's proto files, and prints one row per datacenter, tier and resource.

    python3 -m pip install grpcio grpcio-tools
    python3 examples/capacity-review/review.py --server 127.0.0.1:7470 [--quarter 2026Q4] [--datacenter fra] [--tier prod]
"""
import argparse
import math
import pathlib
import sys
import tempfile

from grpc_tools import protoc

REPO = pathlib.Path(__file__).resolve().parents[2]


def generate_stubs(out_dir: pathlib.Path) -> None:
    """Generates the kplan.v1 Python modules into out_dir (stubs are not committed)."""
    proto_root = REPO / "proto"
    protos = sorted(str(p.relative_to(proto_root)) for p in (proto_root / "kplan/v1").glob("*.proto"))
    rc = protoc.main(["protoc", f"-I{proto_root}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos])
    if rc != 0:
        sys.exit(f"review.py: protoc failed with exit code {rc}")
    sys.path.insert(0, str(out_dir))


def amount(resource: str, value: float) -> str:
    if resource == "cpu_millis":
        return f"{value / 1000:.1f} cores"
    if resource == "memory_bytes":
        return f"{value / 2**30:.1f} GiB"
    return f"{value:.0f}"


def percent(x: float) -> str:
    return "-" if math.isnan(x) or math.isinf(x) else f"{x * 100:+.1f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="host:port of kplan-server")
    parser.add_argument("--quarter", default="", help="e.g. 2026Q4 (default: the current quarter)")
    parser.add_argument("--datacenter", default="")
    parser.add_argument("--tier", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as stubs:
        generate_stubs(pathlib.Path(stubs))
        import grpc
        from kplan.v1 import capacity_pb2, capacity_pb2_grpc

        with grpc.insecure_channel(args.server) as channel:
            stub = capacity_pb2_grpc.CapacityServiceStub(channel)
            try:
                review = stub.CapacityReview(
                    capacity_pb2.CapacityReviewRequest(
                        quarter=args.quarter, datacenter=args.datacenter, security_tier=args.tier
                    ),
                    timeout=30,
                )
            except grpc.RpcError as err:
                print(f"review.py: {err.code().name}: {err.details()}", file=sys.stderr)
                return 1

    print(f"capacity review {review.quarter} (compared with {review.previous_quarter})")
    header = ("block", "resource", "allocatable", "requested", "utilisation", "req QoQ", "runs out")
    rows = []
    for block in review.blocks:
        for usage in block.resources:
            rows.append((
                f"{block.datacenter}/{block.security_tier}",
                usage.resource,
                amount(usage.resource, usage.allocatable),
                amount(usage.resource, usage.requested),
                f"{usage.utilisation * 100:.1f}%",
                percent(usage.requested_change),
                usage.runs_out_in or "not within two years",
            ))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    for stale in review.stale_clusters:
        print(f"stale: {stale.cluster_id} ({stale.age_seconds / 86400:.1f} days since its last report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
