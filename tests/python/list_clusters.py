"""A gRPC client that is not ours: Python grpcio with stubs generated from proto/.

usage: list_clusters.py HOST:PORT OUT_DIR
Prints one line per cluster, then the health status and what reflection lists.
"""
import pathlib
import sys

from grpc_tools import protoc

repo = pathlib.Path(__file__).resolve().parents[2]
addr, out_dir = sys.argv[1], pathlib.Path(sys.argv[2])
out_dir.mkdir(parents=True, exist_ok=True)
protos = sorted(str(p.relative_to(repo / "proto")) for p in (repo / "proto/kplan/v1").glob("*.proto"))
rc = protoc.main(["protoc", f"-I{repo / 'proto'}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos])
if rc != 0:
    sys.exit(f"protoc failed with {rc}")
sys.path.insert(0, str(out_dir))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402
from kplan.v1 import query_pb2, query_pb2_grpc  # noqa: E402

with grpc.insecure_channel(addr) as channel:
    stub = query_pb2_grpc.QueryServiceStub(channel)
    reply = stub.ListClusters(query_pb2.ListClustersRequest(), timeout=10)
    for cluster in reply.clusters:
        print(f"{cluster.cluster_id} {cluster.n_nodes} nodes")
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    print("health", health_pb2.HealthCheckResponse.ServingStatus.Name(health.status))
    responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    services = [s.name for r in responses for s in r.list_services_response.service]
    if "kplan.v1.QueryService" in services:
        print("reflection lists kplan.v1.QueryService")
    else:
        print("reflection lists", services)
