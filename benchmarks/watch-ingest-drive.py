"""Re-reports the stored clusters from N threads (thread t takes clusters t,
t+N, ... in turn; a new generation per report with a little demand drift);
prints the acknowledgement latency p50/p99 in ms. Stubs are generated into a
temporary directory from proto/.

usage: watch-ingest-drive.py HOST:PORT N_THREADS REPORTS_PER_THREAD GENERATION_OFFSET
"""
import pathlib, sys, tempfile, threading, time
from grpc_tools import protoc
repo = pathlib.Path(__file__).resolve().parents[1]
out = pathlib.Path(tempfile.mkdtemp(prefix="kplan-stubs-"))
protos = sorted(str(p.relative_to(repo / "proto")) for p in (repo / "proto/kplan/v1").glob("*.proto"))
assert protoc.main(["protoc", f"-I{repo / 'proto'}", f"--python_out={out}", f"--grpc_python_out={out}", *protos]) == 0
sys.path.insert(0, str(out))
import grpc
from kplan.v1 import query_pb2, query_pb2_grpc, inventory_pb2, inventory_pb2_grpc
addr, n_threads, per_thread, gen0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ch = grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", 64 << 20)])
q = query_pb2_grpc.QueryServiceStub(ch)
ids = [c.cluster_id for c in q.ListClusters(query_pb2.ListClustersRequest()).clusters]
snaps = [q.GetCluster(query_pb2.GetClusterRequest(cluster_id=i)).snapshot for i in ids]
lat = []; lock = threading.Lock()
def work(t):
    c = grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", 64 << 20)])
    inv = inventory_pb2_grpc.InventoryServiceStub(c)
    mine_snaps = snaps[t::n_threads] or [snaps[t % len(snaps)]]
    mine = []
    for k in range(per_thread):
        snap = mine_snaps[k % len(mine_snaps)]
        s = inventory_pb2.ClusterSnapshot(); s.CopyFrom(snap)
        s.generation = snap.generation + gen0 + k  # each cluster has one thread: generations grow
        s.collected_at_unix += k + 1
        if s.namespaces:
            s.namespaces[k % len(s.namespaces)].requests.cpu_millis += 10 * (k + 1)
        t0 = time.perf_counter()
        inv.ReportSnapshot(inventory_pb2.ReportSnapshotRequest(snapshot=s))
        mine.append((time.perf_counter() - t0) * 1000)
    with lock: lat.extend(mine)
threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
t0 = time.time(); [t.start() for t in threads]; [t.join() for t in threads]
lat.sort()
print(f"{len(lat)} reports in {time.time()-t0:.1f}s p50 {lat[len(lat)//2]:.1f} ms p99 {lat[int(len(lat)*0.99)-1]:.1f} ms")
