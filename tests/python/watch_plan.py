"""Follows a plan's status with WatchPlan, as a client with no kplan stubs:
the message types come from the server's reflection service at run time
(grpcio, grpcio-reflection and protobuf only).

usage: watch_plan.py HOST:PORT PLAN_ID UNTIL_HEALTH TIMEOUT_SECONDS
Prints one line per streamed status (JSON: health, waves done, findings) and
exits 0 once a status with health UNTIL_HEALTH (e.g. HEALTH_STATUS_DRIFTED)
arrives, 1 on timeout or a closed stream. "ready" is printed once the first
status arrived (the stream is open).
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

addr, plan_id, until, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
SERVICE = "kplan.v1.WatchService"

with grpc.insecure_channel(addr) as channel:
    # Every file the service needs, from reflection (its file, then each
    # dependency by name).
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    files = {}

    def fetch(request):
        for response in stub.ServerReflectionInfo(iter([request]), timeout=10):
            for raw in response.file_descriptor_response.file_descriptor_proto:
                proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files[proto.name] = proto

    fetch(reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE))
    while missing := {d for f in list(files.values()) for d in f.dependency if d not in files}:
        for name in sorted(missing):
            fetch(reflection_pb2.ServerReflectionRequest(file_by_filename=name))
            if name not in files:
                sys.exit(f"reflection does not know {name}")
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in files:
        add(name)
    request_type = message_factory.GetMessageClass(pool.FindMessageTypeByName("kplan.v1.WatchPlanRequest"))
    status_type = message_factory.GetMessageClass(pool.FindMessageTypeByName("kplan.v1.PlanStatus"))
    watch = channel.unary_stream(
        f"/{SERVICE}/WatchPlan",
        request_serializer=request_type.SerializeToString,
        response_deserializer=status_type.FromString,
    )
    health_names = pool.FindEnumTypeByName("kplan.v1.HealthStatus")
    try:
        for n, status in enumerate(watch(request_type(plan_id=plan_id), timeout=timeout)):
            health = health_names.values_by_number[status.health.status].name
            line = {
                "health": health,
                "waves_done": status.progress.waves_done,
                "waves_total": status.progress.waves_total,
                "findings": [json_format.MessageToDict(f) for f in status.health.findings],
            }
            print(json.dumps(line), flush=True)
            if n == 0:
                print("ready", flush=True)
            if health == until:
                sys.exit(0)
    except grpc.RpcError as err:
        print(f"stream ended: {err.code()} {err.details()}", flush=True)
    sys.exit(1)
