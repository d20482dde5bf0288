//! Reliability of the real `kplan-server` binary (issue 6):
//!
//! - `malformed_snapshots_are_refused_by_name_and_nothing_is_stored`: more than
//!   500 malformed reports, generated field by field and limit by limit
//!   (oversized messages and a gzip bomb included), each refused with a status
//!   naming the problem; no panic, memory bounded, nothing stored.
//! - `acknowledged_reports_survive_sigkill`: clients report while the server is
//!   killed with SIGKILL at random moments (200 times; `KPLAN_CRASH_KILLS`
//!   changes it, `scripts/soak.sh` runs 1,000); after every restart every
//!   acknowledged generation is present and intact; the server always opens.
//! - `damaged_store_files_are_refused_at_start_and_a_backup_restores`: flipped
//!   bytes, truncated and missing files, an unknown schema and a checksum
//!   mismatch: the server refuses to start with a one-line reason (never a
//!   panic); a backup restored into a new directory serves every snapshot.
//!
//! (Over 900 lines on purpose: the malformed-report table alone is ~500 lines of
//! cases, and every test here shares the server-process helpers; each file under
//! `tests/tests/` is a test binary of its own, linked separately.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use kplan_model::ClusterSnapshot;
use kplan_proto::v1;
use kplan_proto::v1::inventory_service_client::InventoryServiceClient;
use kplan_proto::v1::query_service_client::QueryServiceClient;
use kplan_store::validation::{MAX_CPU_MILLIS, MAX_MEMORY_BYTES, MAX_PODS, MAX_UNIX_TIME, ValidationLimits};
use prost::Message;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

// ------------------------------------------------------------------ helpers

/// `--insecure-plaintext` when this server build has the flag (plaintext must be asked for).
fn plaintext_args() -> &'static [&'static str] {
    static HAS_FLAG: OnceLock<bool> = OnceLock::new();
    let has_flag = *HAS_FLAG.get_or_init(|| {
        let help = Command::new(common::bin("kplan-server")).arg("--help").output().expect("kplan-server --help");
        String::from_utf8_lossy(&help.stdout).contains("--insecure-plaintext")
    });
    if has_flag { &["--insecure-plaintext"] } else { &[] }
}

/// A `kplan-server` process with its stderr (JSON log lines, then any final line) collected.
struct ServerProcess {
    child: Child,
    addr: String,
    log: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl ServerProcess {
    fn spawn(data_dir: &Path, extra_args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        let mut command = Command::new(common::bin("kplan-server"));
        command
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir"])
            .arg(data_dir)
            .args(plaintext_args())
            .args(extra_args)
            .env("KPLAN_LOG_FORMAT", "json")
            .env("KPLAN_LOG", "info");
        common::spawn_logged(&mut command)
    }

    /// Starts the server and waits until it serves; `Err` holds its exit and log when it does not.
    fn start(data_dir: &Path, extra_args: &[&str]) -> Result<ServerProcess, String> {
        let (mut child, log) = Self::spawn(data_dir, extra_args);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        loop {
            match log.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                        && value["message"] == "listening"
                    {
                        let addr = value["addr"].as_str().expect("addr field").to_string();
                        lines.push(line);
                        return Ok(ServerProcess { child, addr, log, lines });
                    }
                    lines.push(line);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("waits");
                    return Err(format!("exited ({status}) before serving; log:\n{}", lines.join("\n")));
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("did not serve within 60 s; log:\n{}", lines.join("\n")));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&mut self) -> String {
        self.lines.extend(self.log.try_iter());
        self.lines.join("\n")
    }

    /// SIGKILL: nothing that was not flushed survives.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL kplan-server");
        self.child.wait().expect("waits");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the server on a store it must refuse: (exit code, every stderr line).
fn run_until_exit(data_dir: &Path) -> (Option<i32>, Vec<String>) {
    let (mut child, log) = ServerProcess::spawn(data_dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        match log.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let serving = line.contains("\"message\":\"listening\"");
                lines.push(line);
                if serving {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the server served a damaged store; log:\n{}", lines.join("\n"));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("the server neither served nor exited within 60 s; log:\n{}", lines.join("\n"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let status = child.wait().expect("waits");
    (status.code(), lines)
}

/// Peak resident memory of a process in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reads /proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

async fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
}

fn inventory(channel: &Channel) -> InventoryServiceClient<Channel> {
    InventoryServiceClient::new(channel.clone()).max_encoding_message_size(usize::MAX)
}

fn query(channel: &Channel) -> QueryServiceClient<Channel> {
    QueryServiceClient::new(channel.clone()).max_decoding_message_size(256 << 20)
}

async fn stored_clusters(channel: &Channel) -> BTreeMap<String, u64> {
    let reply = query(channel).list_clusters(v1::ListClustersRequest::default()).await.expect("lists clusters");
    reply.into_inner().clusters.into_iter().map(|c| (c.cluster_id, c.n_generations)).collect()
}

async fn stored_snapshot(channel: &Channel, cluster_id: &str, generation: u64) -> Option<ClusterSnapshot> {
    let request = v1::GetClusterRequest { cluster_id: cluster_id.to_string(), generation };
    match query(channel).get_cluster(request).await {
        Ok(reply) => {
            reply.into_inner().snapshot.map(|s| ClusterSnapshot::try_from(s).expect("a stored snapshot converts"))
        }
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("get_cluster {cluster_id}/{generation}: {status:?}"),
    }
}

/// A small deterministic generator (no dependency; the seed is printed to replay a run).
struct XorShift(u64);

impl XorShift {
    fn from_time() -> XorShift {
        let seed = std::env::var("KPLAN_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        eprintln!("random seed {seed} (KPLAN_TEST_SEED={seed} replays it)");
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------- snapshots

fn wire_node(name: &str) -> v1::Node {
    v1::Node {
        name: name.to_string(),
        labels: [("kubernetes.io/hostname".to_string(), "host".to_string())].into(),
        datacenter: "fra".into(),
        zone: "fra-a".into(),
        role: v1::NodeRole::Worker as i32,
        allocatable: Some(v1::Resources { cpu_millis: 4000, memory_bytes: 16 << 30, pods: 110 }),
        kubelet_version: "v1.29.0".into(),
        container_runtime: "containerd://1.7.2".into(),
        architecture: "amd64".into(),
        unschedulable: false,
        taints: Vec::new(),
        extended: Default::default(),
        runtime_handlers: Vec::new(),
    }
}

fn wire_namespace(name: &str) -> v1::Namespace {
    v1::Namespace {
        name: name.to_string(),
        labels: [("team".to_string(), "payments".to_string())].into(),
        security_tier: "prod".into(),
        sla_tier: v1::SlaTier::Gold as i32,
        requests: Some(v1::Resources { cpu_millis: 1500, memory_bytes: 4 << 30, pods: 12 }),
        pod_groups: Vec::new(),
        applied_prerelease: Vec::new(),
        disruption_budgets: Vec::new(),
    }
}

fn wire_snapshot(cluster_id: &str) -> v1::ClusterSnapshot {
    v1::ClusterSnapshot {
        cluster_id: cluster_id.to_string(),
        generation: 7,
        collected_at_unix: 1_700_000_000,
        facts: Some(v1::ClusterFacts {
            datacenter: "fra".into(),
            zone: "fra-a".into(),
            security_tier: "prod".into(),
            kubernetes_version: "v1.29.0".into(),
            cni: "calico".into(),
            csi_drivers: vec!["ebs-csi-node".into()],
        }),
        nodes: vec![wire_node("node-0"), wire_node("node-1")],
        namespaces: vec![wire_namespace("ns-0"), wire_namespace("ns-1")],
        isolation: Default::default(),
    }
}

fn request(snapshot: v1::ClusterSnapshot) -> v1::ReportSnapshotRequest {
    v1::ReportSnapshotRequest { snapshot: Some(snapshot) }
}

// ------------------------------------------------------- malformed snapshots

/// What a case sends.
enum Payload {
    /// A message, encoded and framed by tonic.
    Message(v1::ReportSnapshotRequest),
    /// A gRPC frame as is (prefix included), with this `grpc-encoding`.
    Frame { frame: Vec<u8>, encoding: Option<&'static str> },
}

enum Expect {
    /// Stored under this cluster id (a value exactly at a limit).
    Accepted(String),
    /// Refused with one of these codes and a message holding every fragment.
    Refused { codes: Vec<Code>, fragments: Vec<String> },
}

struct Case {
    name: String,
    payload: Payload,
    expect: Expect,
}

type SetValue = Box<dyn Fn(&mut v1::ClusterSnapshot, String)>;

/// A place in a snapshot where a value goes: the object and field a refusal must name.
struct Site {
    object: String,
    field: &'static str,
    set: SetValue,
}

fn site(object: &str, field: &'static str, set: impl Fn(&mut v1::ClusterSnapshot, String) + 'static) -> Site {
    Site { object: object.to_string(), field, set: Box::new(set) }
}

fn grpc_frame(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut frame = vec![u8::from(compressed)];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

fn gzip(bytes: impl FnOnce(&mut dyn Write)) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bytes(&mut encoder);
    encoder.finish().expect("gzip")
}

/// A request whose encoding is exactly `len` bytes (content invalid: a long label value).
fn request_of_len(len: usize) -> v1::ReportSnapshotRequest {
    let base = request(wire_snapshot("oversized"));
    let mut pad = len.saturating_sub(base.encoded_len() + 16);
    loop {
        let mut padded = base.clone();
        let snapshot = padded.snapshot.as_mut().expect("snapshot");
        snapshot.nodes[0].labels.insert("pad".into(), "x".repeat(pad));
        match padded.encoded_len().cmp(&len) {
            std::cmp::Ordering::Equal => return padded,
            std::cmp::Ordering::Less => pad += 1,
            std::cmp::Ordering::Greater => {
                // a length varint grew past the target: shorten another field by the difference
                let over = padded.encoded_len() - len;
                let snapshot = padded.snapshot.as_mut().expect("snapshot");
                let architecture = &mut snapshot.nodes[1].architecture;
                architecture.truncate(architecture.len() - over);
                assert_eq!(padded.encoded_len(), len, "exact padding");
                return padded;
            }
        }
    }
}

fn malformed_cases(max_message_bytes: usize) -> Vec<Case> {
    let limits = ValidationLimits::default();
    let mut cases: Vec<Case> = Vec::new();
    let mut n_accepted = 0;
    let refused = |fragments: &[&str]| Expect::Refused {
        codes: vec![Code::InvalidArgument],
        fragments: fragments.iter().map(|f| f.to_string()).collect(),
    };
    let mut add = |name: String, edit: &dyn Fn(&mut v1::ClusterSnapshot), expect: Expect| {
        let cluster_id = match &expect {
            Expect::Accepted(_) => {
                n_accepted += 1;
                format!("accepted-{n_accepted}")
            }
            Expect::Refused { .. } => "malformed".to_string(),
        };
        let mut snapshot = wire_snapshot(&cluster_id);
        edit(&mut snapshot);
        let expect = match expect {
            Expect::Accepted(_) => Expect::Accepted(snapshot.cluster_id.clone()),
            refused => refused,
        };
        cases.push(Case { name, payload: Payload::Message(request(snapshot)), expect });
    };

    // Names, topology and text: every site, every kind of bad value, every length limit ±1.
    let subdomain_bad: Vec<String> = [
        "",
        "UPPER",
        "Mixed.case",
        "under_score",
        "-lead",
        "trail-",
        "dot..dot",
        ".lead",
        "trail.",
        "sp ace",
        "nul\0x",
        "tab\tx",
        "new\nline",
        "ünïcode",
        "a/b",
        "a:b",
        "*.wild",
        "@",
        "a.-b",
        "a-.b",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["x".repeat(254), "x".repeat(5_000)])
    .collect();
    let subdomain_good = ["x".repeat(253), "a.b-c.d9".to_string()];
    let label_bad: Vec<String> =
        subdomain_bad.iter().filter(|v| !v.contains('.')).cloned().chain(["a.b".to_string(), "x".repeat(64)]).collect();
    let label_good = ["x".repeat(63), "a-9".to_string()];
    let topology_bad: Vec<String> = ["-x", "x-", "_x", "x.", "a b", "a/b", "nul\0", "ü", "new\nline", "a:b", "@"]
        .iter()
        .map(|s| s.to_string())
        .chain(["x".repeat(64), "x".repeat(1_000)])
        .collect();
    let topology_good = ["x".repeat(63), "A_b.C-1".to_string()];
    let text_bad: Vec<String> = ["\0", "a\0b", "a\nb", "\r", "\u{7f}", "\u{1b}[31m", "\u{85}"]
        .iter()
        .map(|s| s.to_string())
        .chain(["x".repeat(257), "x".repeat(100_000)])
        .collect();
    let text_good = ["x".repeat(256), "containerd://1.7.2 (ünïcode ok)".to_string()];

    let mut name_sites = vec![site("snapshot", "cluster_id", |s, v| s.cluster_id = v)];
    let mut label_sites = Vec::new();
    let mut required_topology_sites = Vec::new();
    let mut text_sites = vec![
        site("snapshot", "facts.kubernetes_version", |s, v| s.facts.as_mut().expect("facts").kubernetes_version = v),
        site("snapshot", "facts.cni", |s, v| s.facts.as_mut().expect("facts").cni = v),
    ];
    let optional_topology_sites = vec![
        site("snapshot", "facts.datacenter", |s, v| s.facts.as_mut().expect("facts").datacenter = v),
        site("snapshot", "facts.zone", |s, v| s.facts.as_mut().expect("facts").zone = v),
        site("snapshot", "facts.security_tier", |s, v| s.facts.as_mut().expect("facts").security_tier = v),
    ];
    for idx in 0..2 {
        let node = format!("nodes[{idx}]");
        name_sites.push(site(&node, "name", move |s, v| s.nodes[idx].name = v));
        required_topology_sites.push(site(&node, "datacenter", move |s, v| s.nodes[idx].datacenter = v));
        required_topology_sites.push(site(&node, "zone", move |s, v| s.nodes[idx].zone = v));
        text_sites.push(site(&node, "kubelet_version", move |s, v| s.nodes[idx].kubelet_version = v));
        text_sites.push(site(&node, "container_runtime", move |s, v| s.nodes[idx].container_runtime = v));
        text_sites.push(site(&node, "architecture", move |s, v| s.nodes[idx].architecture = v));
        label_sites.push((node.clone(), idx, true));
        let namespace = format!("namespaces[{idx}]");
        required_topology_sites
            .push(site(&namespace, "security_tier", move |s, v| s.namespaces[idx].security_tier = v));
        label_sites.push((namespace, idx, false));
    }
    for site in &name_sites {
        for value in &subdomain_bad {
            let object = if site.field == "cluster_id" { "snapshot".to_string() } else { site.object.clone() };
            add(
                format!("{}.{} = {value:.40?}", site.object, site.field),
                &|s| (site.set)(s, value.clone()),
                refused(&[&object, site.field]),
            );
        }
        for value in &subdomain_good {
            add(
                format!("{}.{} = {value:.40?} (at the limit)", site.object, site.field),
                &|s| (site.set)(s, value.clone()),
                Expect::Accepted(String::new()),
            );
        }
    }
    for idx in 0..2 {
        let object = format!("namespaces[{idx}]");
        for value in &label_bad {
            add(
                format!("{object}.name = {value:.40?}"),
                &|s| s.namespaces[idx].name = value.clone(),
                refused(&[&object, "name"]),
            );
        }
        for value in &label_good {
            add(
                format!("{object}.name = {value:.40?} (at the limit)"),
                &|s| s.namespaces[idx].name = value.clone(),
                Expect::Accepted(String::new()),
            );
        }
    }
    for site in &required_topology_sites {
        for value in topology_bad.iter().chain([&String::new()]) {
            add(
                format!("{}.{} = {value:.40?}", site.object, site.field),
                &|s| (site.set)(s, value.clone()),
                refused(&[&site.object, site.field]),
            );
        }
        for value in &topology_good {
            add(
                format!("{}.{} = {value:.40?} (at the limit)", site.object, site.field),
                &|s| (site.set)(s, value.clone()),
                Expect::Accepted(String::new()),
            );
        }
    }
    for site in &optional_topology_sites {
        for value in &topology_bad {
            add(
                format!("{} = {value:.40?}", site.field),
                &|s| (site.set)(s, value.clone()),
                refused(&["snapshot", site.field]),
            );
        }
        for value in topology_good.iter().chain([&String::new()]) {
            add(
                format!("{} = {value:.40?} (accepted)", site.field),
                &|s| (site.set)(s, value.clone()),
                Expect::Accepted(String::new()),
            );
        }
    }
    for site in &text_sites {
        for value in &text_bad {
            add(
                format!("{}.{} = {value:.40?}", site.object, site.field),
                &|s| (site.set)(s, value.clone()),
                refused(&[&site.object, site.field]),
            );
        }
        for value in &text_good {
            add(
                format!("{}.{} = {value:.40?} (at the limit)", site.object, site.field),
                &|s| (site.set)(s, value.clone()),
                Expect::Accepted(String::new()),
            );
        }
    }
    for value in ["", "\0", "a\tb"].iter().map(|s| s.to_string()).chain(["x".repeat(254)]) {
        add(
            format!("facts.csi_drivers[0] = {value:.40?}"),
            &|s| s.facts.as_mut().expect("facts").csi_drivers[0] = value.clone(),
            refused(&["facts.csi_drivers[0]"]),
        );
    }
    add(
        "facts.csi_drivers[0] at 253 characters".into(),
        &|s| s.facts.as_mut().expect("facts").csi_drivers[0] = "x".repeat(253),
        Expect::Accepted(String::new()),
    );

    // Labels: keys and values by Kubernetes' syntax, on nodes and namespaces.
    let bad_keys: Vec<String> = [
        "",
        "/x",
        "a/",
        "a/b/c",
        "UPPER.com/x",
        "-x",
        "x-",
        ".x",
        "x.",
        "a b",
        "x\0",
        "ü",
        "example.com/-x",
        "_x",
        "a..b/x",
        "a_b.com/x",
        "x:y",
        "x@y",
        "\nx",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("{}/x", "p".repeat(254)), "k".repeat(64), format!("p.io/{}", "k".repeat(64))])
    .collect();
    let bad_values: Vec<String> = ["-v", "v-", "_v", "v.", "a b", "v\0", "a/b", "ü", "v\n", "a:b"]
        .iter()
        .map(|s| s.to_string())
        .chain(["v".repeat(64)])
        .collect();
    let set_labels = |s: &mut v1::ClusterSnapshot, idx: usize, is_node: bool, key: String, value: String| {
        let labels = if is_node { &mut s.nodes[idx].labels } else { &mut s.namespaces[idx].labels };
        labels.insert(key, value);
    };
    for (object, idx, is_node) in &label_sites {
        let (idx, is_node) = (*idx, *is_node);
        for key in &bad_keys {
            add(
                format!("{object}.labels key {key:.40?}"),
                &|s| set_labels(s, idx, is_node, key.clone(), "v".into()),
                refused(&[object, "labels"]),
            );
        }
        for value in &bad_values {
            add(
                format!("{object}.labels value {value:.40?}"),
                &|s| set_labels(s, idx, is_node, "k".into(), value.clone()),
                refused(&[object, "labels[\"k\"]"]),
            );
        }
        let good_key = format!("{}/{}", "p".repeat(253), "k".repeat(63));
        add(
            format!("{object}.labels key and value at the limits"),
            &|s| set_labels(s, idx, is_node, good_key.clone(), "v".repeat(63)),
            Expect::Accepted(String::new()),
        );
        let many = |n: usize| {
            move |s: &mut v1::ClusterSnapshot| {
                for label_idx in 0..n {
                    set_labels(s, idx, is_node, format!("k{label_idx}"), "v".into());
                }
            }
        };
        // The base object has one label already.
        let over = many(limits.max_labels_per_object);
        add(
            format!("{object}: {} labels", limits.max_labels_per_object + 1),
            &over,
            refused(&[object, "labels", "at most 256"]),
        );
        let at = many(limits.max_labels_per_object - 1);
        add(
            format!("{object}: {} labels (at the limit)", limits.max_labels_per_object),
            &at,
            Expect::Accepted(String::new()),
        );
    }

    // Numbers: generation, time, quantities at their limit and past it.
    add("generation 0".into(), &|s| s.generation = 0, refused(&["snapshot", "generation"]));
    add("generation 1".into(), &|s| s.generation = 1, Expect::Accepted(String::new()));
    for time in [-1, i64::MIN, MAX_UNIX_TIME + 1, i64::MAX] {
        add(
            format!("collected_at_unix {time}"),
            &|s| s.collected_at_unix = time,
            refused(&["snapshot", "collected_at_unix"]),
        );
    }
    for time in [0, MAX_UNIX_TIME] {
        add(
            format!("collected_at_unix {time} (accepted)"),
            &|s| s.collected_at_unix = time,
            Expect::Accepted(String::new()),
        );
    }
    type Resource = fn(&mut v1::Resources, u64);
    let resources: [(&str, u64, Resource); 3] = [
        ("cpu_millis", MAX_CPU_MILLIS, |r, v| r.cpu_millis = v),
        ("memory_bytes", MAX_MEMORY_BYTES, |r, v| r.memory_bytes = v),
        ("pods", MAX_PODS, |r, v| r.pods = v),
    ];
    for idx in 0..2 {
        for (is_node, object, field) in
            [(true, format!("nodes[{idx}]"), "allocatable"), (false, format!("namespaces[{idx}]"), "requests")]
        {
            let target = move |s: &mut v1::ClusterSnapshot, set: Resource, value: u64| {
                let resources = if is_node { &mut s.nodes[idx].allocatable } else { &mut s.namespaces[idx].requests };
                set(resources.get_or_insert_default(), value);
            };
            for (name, max, set) in resources {
                for value in [max + 1, max.saturating_mul(1000), u64::MAX] {
                    add(
                        format!("{object}.{field}.{name} = {value}"),
                        &|s| target(s, set, value),
                        refused(&[&object, &format!("{field}.{name}"), "absurd"]),
                    );
                }
            }
            add(
                format!("{object}.{field} at every limit"),
                &|s| {
                    for (_, max, set) in resources {
                        target(s, set, max);
                    }
                },
                Expect::Accepted(String::new()),
            );
        }
    }

    // Enums outside kplan.v1.
    for idx in 0..2 {
        for role in [3, 4, 100, -1, i32::MAX, i32::MIN] {
            add(
                format!("nodes[{idx}].role = {role}"),
                &|s| s.nodes[idx].role = role,
                refused(&[&format!("nodes[{idx}]"), "role", "unknown value"]),
            );
        }
        for tier in [4, 5, -1, 1000, i32::MIN] {
            add(
                format!("namespaces[{idx}].sla_tier = {tier}"),
                &|s| s.namespaces[idx].sla_tier = tier,
                refused(&[&format!("namespaces[{idx}]"), "sla_tier", "unknown value"]),
            );
        }
    }
    for role in 0..=2 {
        add(format!("nodes[0].role = {role} (accepted)"), &|s| s.nodes[0].role = role, Expect::Accepted(String::new()));
    }
    for tier in 0..=3 {
        add(
            format!("namespaces[0].sla_tier = {tier} (accepted)"),
            &|s| s.namespaces[0].sla_tier = tier,
            Expect::Accepted(String::new()),
        );
    }

    // Counts over the caps, and at them.
    let n_nodes =
        |n: usize| move |s: &mut v1::ClusterSnapshot| s.nodes = (0..n).map(|i| wire_node(&format!("n{i}"))).collect();
    let n_namespaces = |n: usize| {
        move |s: &mut v1::ClusterSnapshot| s.namespaces = (0..n).map(|i| wire_namespace(&format!("n{i}"))).collect()
    };
    add(
        format!("{} nodes", limits.max_nodes_per_snapshot + 1),
        &n_nodes(limits.max_nodes_per_snapshot + 1),
        refused(&["snapshot", "nodes", "at most 10000"]),
    );
    add(
        format!("{} nodes (at the cap)", limits.max_nodes_per_snapshot),
        &n_nodes(limits.max_nodes_per_snapshot),
        Expect::Accepted(String::new()),
    );
    add(
        format!("{} namespaces", limits.max_namespaces_per_snapshot + 1),
        &n_namespaces(limits.max_namespaces_per_snapshot + 1),
        refused(&["snapshot", "namespaces", "at most 20000"]),
    );
    add(
        format!("{} namespaces (at the cap)", limits.max_namespaces_per_snapshot),
        &n_namespaces(limits.max_namespaces_per_snapshot),
        Expect::Accepted(String::new()),
    );
    add(
        "257 CSI drivers".into(),
        &|s| s.facts.as_mut().expect("facts").csi_drivers = (0..257).map(|i| format!("d{i}")).collect(),
        refused(&["facts.csi_drivers", "at most 256"]),
    );
    add(
        "256 CSI drivers (at the cap)".into(),
        &|s| s.facts.as_mut().expect("facts").csi_drivers = (0..256).map(|i| format!("d{i}")).collect(),
        Expect::Accepted(String::new()),
    );

    // Duplicates, missing parts, everything wrong at once.
    add(
        "duplicate node name".into(),
        &|s| s.nodes[1].name = "node-0".into(),
        refused(&["nodes[1] \"node-0\"", "duplicate node name"]),
    );
    add(
        "duplicate namespace name".into(),
        &|s| s.namespaces[1].name = "ns-0".into(),
        refused(&["namespaces[1] \"ns-0\"", "duplicate namespace name"]),
    );
    add(
        "500 nodes of one name".into(),
        &|s| s.nodes = vec![wire_node("same"); 500],
        refused(&["duplicate node name", "and 489 more problems"]),
    );
    add("missing facts".into(), &|s| s.facts = None, refused(&["snapshot.facts"]));
    add(
        "everything wrong at once".into(),
        &|s| {
            s.cluster_id = "BAD".into();
            s.generation = 0;
            s.nodes[0].name = "BAD".into();
            s.namespaces[0].security_tier = String::new();
            s.nodes[1].allocatable =
                Some(v1::Resources { cpu_millis: u64::MAX, memory_bytes: u64::MAX, pods: u64::MAX });
        },
        refused(&["cluster_id", "generation", "nodes[0]", "namespaces[0]", "nodes[1]"]),
    );
    cases.push(Case {
        name: "no snapshot".into(),
        payload: Payload::Message(v1::ReportSnapshotRequest { snapshot: None }),
        expect: refused(&["snapshot"]),
    });

    // Sizes: the decoded limit ±1, far beyond it, and the same through gzip (a bomb included).
    let size =
        |code: Code, fragment: &str| Expect::Refused { codes: vec![code], fragments: vec![fragment.to_string()] };
    let limit = max_message_bytes;
    cases.push(Case {
        name: format!("a message of exactly {limit} bytes (decoded, then refused by content)"),
        payload: Payload::Message(request_of_len(limit)),
        expect: refused(&["nodes[0]", "labels[\"pad\"]", "characters (at most 63)"]),
    });
    for len in [limit + 1, limit + 4096, 3 * limit] {
        cases.push(Case {
            name: format!("a message of {len} bytes"),
            payload: Payload::Message(request_of_len(len)),
            expect: size(Code::OutOfRange, "message length too large"),
        });
    }
    cases.push(Case {
        name: "a frame claiming 4 GiB".into(),
        payload: Payload::Frame {
            frame: {
                let mut f = grpc_frame(false, b"abc");
                f[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
                f
            },
            encoding: None,
        },
        expect: size(Code::OutOfRange, "message length too large"),
    });
    for len in [limit, limit + 1] {
        let encoded = request_of_len(len).encode_to_vec();
        let compressed = gzip(|w| w.write_all(&encoded).expect("compresses"));
        let expect =
            if len <= limit { refused(&["labels[\"pad\"]"]) } else { size(Code::ResourceExhausted, "size limit") };
        cases.push(Case {
            name: format!("gzip: {len} bytes decompressed"),
            payload: Payload::Frame { frame: grpc_frame(true, &compressed), encoding: Some("gzip") },
            expect,
        });
    }
    let bomb = gzip(|w| {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            w.write_all(&zeros).expect("compresses");
        }
    });
    assert!(bomb.len() < limit, "the bomb itself fits the limit ({} bytes)", bomb.len());
    cases.push(Case {
        name: format!("gzip bomb: 1 GiB of zeros in {} bytes", bomb.len()),
        payload: Payload::Frame { frame: grpc_frame(true, &bomb), encoding: Some("gzip") },
        expect: size(Code::ResourceExhausted, "size limit"),
    });
    let snapshot_bomb = gzip(|w| {
        // a valid message's start: field 1 (snapshot), then a label value of 512 MiB
        let mut head = Vec::new();
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut head);
        prost::encoding::encode_varint(512 << 20, &mut head);
        w.write_all(&head).expect("compresses");
        let filler = vec![b'a'; 1 << 20];
        for _ in 0..512 {
            w.write_all(&filler).expect("compresses");
        }
    });
    cases.push(Case {
        name: format!("gzip bomb: a 512 MiB snapshot in {} bytes", snapshot_bomb.len()),
        payload: Payload::Frame { frame: grpc_frame(true, &snapshot_bomb), encoding: Some("gzip") },
        expect: size(Code::ResourceExhausted, "size limit"),
    });

    // Frames that are not what they claim.
    let garbage = |name: &str, frame: Vec<u8>, encoding: Option<&'static str>, code: Code, fragment: &str| Case {
        name: name.to_string(),
        payload: Payload::Frame { frame, encoding },
        expect: Expect::Refused { codes: vec![code], fragments: vec![fragment.to_string()] },
    };
    cases.push(garbage("undecodable protobuf", grpc_frame(false, &[0xff; 64]), None, Code::Internal, "decode"));
    cases.push(garbage(
        "a truncated message",
        grpc_frame(false, &request(wire_snapshot("t")).encode_to_vec()[..40]),
        None,
        Code::Internal,
        "decode",
    ));
    cases.push(garbage(
        "not gzip",
        grpc_frame(true, b"this is not gzip at all"),
        Some("gzip"),
        Code::Internal,
        "decompressing",
    ));
    cases.push(garbage(
        "compressed flag without an encoding",
        grpc_frame(true, b"abc"),
        None,
        Code::Internal,
        "compressed-flag",
    ));
    cases.push(garbage(
        "compression flag 2",
        {
            let mut f = grpc_frame(false, b"abc");
            f[0] = 2;
            f
        },
        None,
        Code::Internal,
        "compression flag",
    ));
    cases.push(garbage(
        "an encoding the server does not accept",
        grpc_frame(true, b"abc"),
        Some("br"),
        Code::Unimplemented,
        "br",
    ));
    cases
}

async fn send_frame(channel: &Channel, addr: &str, frame: Vec<u8>, encoding: Option<&str>) -> Status {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/kplan.v1.InventoryService/ReportSnapshot"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(encoding) = encoding {
        builder = builder.header("grpc-encoding", encoding);
    }
    let body = tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(frame)));
    let response = channel.clone().oneshot(builder.body(body).expect("request")).await.expect("a response");
    let (parts, body) = response.into_parts();
    if let Some(status) = Status::from_header_map(&parts.headers) {
        return status;
    }
    let collected = body.collect().await.expect("the response body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    Status::from_header_map(&trailers).expect("a grpc-status trailer")
}

#[test]
fn malformed_snapshots_are_refused_by_name_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let max_message_bytes = 4 << 20;
    let config = dir.path().join("server.toml");
    std::fs::write(&config, format!("max_message_bytes = {max_message_bytes}\n")).expect("writes config");
    let data_dir = dir.path().join("data");
    let mut server = ServerProcess::start(&data_dir, &["--config", config.to_str().expect("utf-8")])
        .unwrap_or_else(|log| panic!("kplan-server {log}"));
    let cases = malformed_cases(max_message_bytes);
    let n_refused = cases.iter().filter(|c| matches!(c.expect, Expect::Refused { .. })).count();
    assert!(n_refused >= 500, "only {n_refused} malformed cases");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let channel = channel(&server.addr).await.expect("connects");
        // Warm up with one good report so the peak memory measured before is the running server's.
        inventory(&channel).report_snapshot(request(wire_snapshot("warm-up"))).await.expect("a good report is stored");
        let rss_before = peak_rss_kib(server.pid());
        let mut accepted = BTreeSet::from(["warm-up".to_string()]);
        let mut failures = Vec::new();
        for case in &cases {
            let result = match &case.payload {
                Payload::Message(message) => inventory(&channel).report_snapshot(message.clone()).await.map(|_| ()),
                Payload::Frame { frame, encoding } => {
                    let status = send_frame(&channel, &server.addr, frame.clone(), *encoding).await;
                    if status.code() == Code::Ok { Ok(()) } else { Err(status) }
                }
            };
            match (&case.expect, result) {
                (Expect::Accepted(cluster_id), Ok(())) => {
                    accepted.insert(cluster_id.clone());
                }
                (Expect::Accepted(_), Err(status)) => failures.push(format!("{}: refused: {status:?}", case.name)),
                (Expect::Refused { .. }, Ok(())) => failures.push(format!("{}: accepted", case.name)),
                (Expect::Refused { codes, fragments }, Err(status)) => {
                    let missing: Vec<&String> =
                        fragments.iter().filter(|f| !status.message().contains(f.as_str())).collect();
                    if !codes.contains(&status.code()) || !missing.is_empty() {
                        failures.push(format!(
                            "{}: {:?} {:?} (expected {codes:?} naming {missing:?})",
                            case.name,
                            status.code(),
                            status.message()
                        ));
                    }
                }
            }
        }
        let rss_after = peak_rss_kib(server.pid());
        let log = server.log_text();
        assert!(server.child.try_wait().expect("try_wait").is_none(), "the server exited; log:\n{log}");
        assert!(!log.contains("panicked"), "the server panicked; log:\n{log}");
        assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
        // Nothing of a refused report was stored: exactly the accepted clusters, one generation each.
        let stored = stored_clusters(&channel).await;
        assert_eq!(stored.keys().cloned().collect::<BTreeSet<_>>(), accepted, "stored clusters");
        assert!(stored.values().all(|n| *n == 1), "{stored:?}");
        eprintln!(
            "{} cases ({n_refused} refused, {} accepted at a limit); peak RSS {} MiB before, {} MiB after",
            cases.len(),
            accepted.len() - 1,
            rss_before / 1024,
            rss_after / 1024
        );
        // Bounded: a few buffers of max_message_bytes (frame, decompression, decoded message), not the bomb's GiB.
        let bound_kib = rss_before + 16 * (max_message_bytes as u64 / 1024) + 64 * 1024;
        assert!(
            rss_after <= bound_kib,
            "peak RSS grew from {rss_before} KiB to {rss_after} KiB (bound {bound_kib} KiB)"
        );
    });
}

// ------------------------------------------------------------------- crashes

/// The report a crash-test client sends for a generation: content derived from both.
fn crash_report(cluster_id: &str, generation: u64) -> v1::ClusterSnapshot {
    let mut snapshot = wire_snapshot(cluster_id);
    snapshot.generation = generation;
    snapshot.collected_at_unix = 1_700_000_000 + generation as i64;
    snapshot.nodes = (0..1 + generation % 4)
        .map(|i| {
            let mut node = wire_node(&format!("node-{i}"));
            node.labels.insert("generation".into(), generation.to_string());
            node.allocatable = Some(v1::Resources { cpu_millis: 1000 + generation, memory_bytes: 1 << 30, pods: 110 });
            node
        })
        .collect();
    snapshot.namespaces = (0..1 + generation % 3)
        .map(|i| {
            let mut namespace = wire_namespace(&format!("ns-{i}"));
            namespace.requests =
                Some(v1::Resources { cpu_millis: generation, memory_bytes: generation << 20, pods: i });
            namespace
        })
        .collect();
    snapshot
}

fn expected_snapshot(cluster_id: &str, generation: u64) -> ClusterSnapshot {
    ClusterSnapshot::try_from(crash_report(cluster_id, generation)).expect("converts")
}

#[derive(Default)]
struct CrashShared {
    /// The serving server's address; `None` while it is down.
    addr: Mutex<Option<String>>,
    /// Acknowledged generations per cluster, with the server run (epoch) that acknowledged them.
    acked: Mutex<BTreeMap<String, BTreeMap<u64, usize>>>,
    epoch: AtomicU64,
    stop: AtomicBool,
    n_failed_attempts: AtomicU64,
    /// Refusals that must never happen (a stale or conflicting generation).
    wrong: Mutex<Vec<String>>,
}

async fn crash_client(shared: Arc<CrashShared>, cluster_id: String) {
    let mut generation = 1;
    let mut connected: Option<(String, Channel)> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(addr) = shared.addr.lock().expect("lock").clone() else {
            connected = None;
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        if connected.as_ref().is_none_or(|(a, _)| *a != addr) {
            match channel(&addr).await {
                Ok(channel) => connected = Some((addr, channel)),
                Err(_) => {
                    shared.n_failed_attempts.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            }
        }
        let (_, channel) = connected.as_ref().expect("connected");
        let epoch = shared.epoch.load(Ordering::SeqCst) as usize;
        match inventory(channel).report_snapshot(request(crash_report(&cluster_id, generation))).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                assert_eq!(reply.stored_generation, generation);
                shared.acked.lock().expect("lock").entry(cluster_id.clone()).or_default().insert(generation, epoch);
                generation += 1;
            }
            Err(status)
                if matches!(
                    status.code(),
                    Code::FailedPrecondition | Code::AlreadyExists | Code::InvalidArgument | Code::DataLoss
                ) =>
            {
                shared.wrong.lock().expect("lock").push(format!("{cluster_id}/{generation}: {status:?}"));
                return;
            }
            Err(_) => {
                // The server went away mid-call: the same generation again (idempotent) once it is back.
                shared.n_failed_attempts.fetch_add(1, Ordering::Relaxed);
                connected = None;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// After a restart: every acknowledged generation is stored; those of the last run compare equal.
async fn check_acknowledged(addr: &str, acked: &BTreeMap<String, BTreeMap<u64, usize>>, last_epoch: usize) -> usize {
    let channel = channel(addr).await.expect("connects after restart");
    let mut n_compared = 0;
    for (cluster_id, generations) in acked {
        let reply = query(&channel)
            .list_generations(v1::ListGenerationsRequest { cluster_id: cluster_id.clone() })
            .await
            .expect("lists generations");
        let stored: BTreeSet<u64> = reply.into_inner().generations.iter().map(|g| g.generation).collect();
        let lost: Vec<&u64> = generations.keys().filter(|g| !stored.contains(g)).collect();
        assert!(lost.is_empty(), "{cluster_id}: acknowledged generations lost: {lost:?}");
        let newest = generations.keys().next_back().copied();
        for (&generation, &epoch) in generations {
            if epoch >= last_epoch || Some(generation) == newest {
                let got = stored_snapshot(&channel, cluster_id, generation).await;
                assert_eq!(got, Some(expected_snapshot(cluster_id, generation)), "{cluster_id}/{generation} changed");
                n_compared += 1;
            }
        }
    }
    n_compared
}

#[test]
fn acknowledged_reports_survive_sigkill() {
    let n_kills: usize = std::env::var("KPLAN_CRASH_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let n_clients = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut rng = XorShift::from_time();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let shared = Arc::new(CrashShared::default());
    let clients: Vec<_> =
        (0..n_clients).map(|i| runtime.spawn(crash_client(shared.clone(), format!("crash-{i}")))).collect();
    let started = Instant::now();
    let (mut n_starts, mut n_compared, mut n_kills_during_start) = (0, 0, 0);
    for kill_idx in 0..n_kills {
        // One kill in eight lands while the server opens and verifies the store.
        if kill_idx % 8 == 7 {
            let (mut child, _log) = ServerProcess::spawn(&data_dir, &[]);
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            child.kill().expect("SIGKILL");
            child.wait().expect("waits");
            n_kills_during_start += 1;
            continue;
        }
        let server = ServerProcess::start(&data_dir, &[])
            .unwrap_or_else(|log| panic!("failure to open after {kill_idx} kills: kplan-server {log}"));
        n_starts += 1;
        let epoch = shared.epoch.load(Ordering::SeqCst) as usize;
        let acked = shared.acked.lock().expect("lock").clone();
        n_compared += runtime.block_on(check_acknowledged(&server.addr, &acked, epoch));
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        *shared.addr.lock().expect("lock") = Some(server.addr.clone());
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        let wrong = shared.wrong.lock().expect("lock").clone();
        assert!(wrong.is_empty(), "refusals that must not happen: {wrong:?}");
        server.kill9();
        *shared.addr.lock().expect("lock") = None;
    }
    shared.stop.store(true, Ordering::SeqCst);
    for client in clients {
        runtime.block_on(client).expect("client task");
    }
    // The last word: the store opened directly, every acknowledged generation compared.
    let acked = shared.acked.lock().expect("lock").clone();
    let store = kplan_store::SledStore::open(&data_dir).expect("the store opens after the last kill");
    let mut n_acked = 0;
    for (cluster_id, generations) in &acked {
        use kplan_store::Store;
        let history: BTreeMap<u64, ClusterSnapshot> =
            store.history(cluster_id).expect("history").into_iter().map(|(info, s)| (info.generation, s)).collect();
        for &generation in generations.keys() {
            assert_eq!(
                history.get(&generation),
                Some(&expected_snapshot(cluster_id, generation)),
                "{cluster_id}/{generation}"
            );
            n_acked += 1;
        }
    }
    eprintln!(
        "{n_kills} SIGKILLs ({n_kills_during_start} during start-up) in {:.0?}: {n_starts} starts, 0 failures to open, \
         {n_acked} acknowledged reports all intact ({n_compared} compared right after a restart), {} calls cut off",
        started.elapsed(),
        shared.n_failed_attempts.load(Ordering::Relaxed)
    );
    assert!(n_acked >= n_kills, "too few reports acknowledged ({n_acked}) to mean anything");
}

// ----------------------------------------------------------------- corruption

/// `kplan-server --data-dir DIR ARGS...` (backup, restore): stdout on success, the last stderr line otherwise.
fn admin(data_dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new(common::bin("kplan-server"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("KPLAN_LOG", "warn")
        .output()
        .expect("runs kplan-server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(stderr.lines().last().unwrap_or_default().to_string())
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("lists") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copies");
        }
    }
}

fn blob_files(dir: &Path) -> Vec<PathBuf> {
    let mut blobs: Vec<PathBuf> = std::fs::read_dir(dir.join("blobs"))
        .map(|entries| entries.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    blobs.sort();
    blobs
}

/// The start of every value this build stores: magic "KP", schema version 2.
const VALUE_HEADER: &[u8] = b"KP\0\0\0\x02";

/// Writes through sled directly, as a future kplan (another schema) or a bad disk would.
fn with_raw_sled(dir: &Path, edit: impl FnOnce(&sled::Db)) {
    let db = sled::Config::new().path(dir).open().expect("sled opens");
    edit(&db);
    db.flush().expect("flushes");
}

#[test]
fn damaged_store_files_are_refused_at_start_and_a_backup_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // A store with three clusters, five generations each, one large enough for sled's blobs/.
    let mut reported = Vec::new();
    {
        let server = ServerProcess::start(&data_dir, &[]).unwrap_or_else(|log| panic!("kplan-server {log}"));
        runtime.block_on(async {
            let channel = channel(&server.addr).await.expect("connects");
            for cluster in ["fra-prod-1", "lon-dev-2", "sin-prod-3"] {
                for generation in 1..=5 {
                    let mut snapshot = crash_report(cluster, generation);
                    if cluster == "lon-dev-2" && generation == 3 {
                        snapshot.nodes = (0..2500).map(|i| wire_node(&format!("big-{i}"))).collect();
                        // Labels that do not compress: stored values are zstd-compressed.
                        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
                        for node in &mut snapshot.nodes {
                            for key in ["serial", "asset", "rack", "lease"] {
                                state ^= state << 13;
                                state ^= state >> 7;
                                state ^= state << 17;
                                node.labels.insert(
                                    format!("example.com/{key}"),
                                    format!("{state:016x}{:016x}", state.rotate_left(29)),
                                );
                            }
                        }
                    }
                    inventory(&channel).report_snapshot(request(snapshot.clone())).await.expect("stored");
                    reported.push(ClusterSnapshot::try_from(snapshot).expect("converts"));
                }
            }
        });
        server.kill9();
    }
    assert!(!blob_files(&data_dir).is_empty(), "a large snapshot lives in blobs/");
    let backup = dir.path().join("kplan.backup");
    let out = admin(&data_dir, &["backup", "--out", backup.to_str().expect("utf-8")]).expect("backs up");
    assert!(out.contains("15 snapshots"), "{out}");

    // Each damage on a copy of the store; the server must refuse it, in one line, without a panic.
    type Damage = Box<dyn Fn(&Path)>;
    let flip = |rel: &'static str, at: fn(usize) -> usize| -> Damage {
        Box::new(move |dir: &Path| {
            let path = dir.join(rel);
            let mut bytes = std::fs::read(&path).expect("reads");
            let idx = at(bytes.len());
            bytes[idx] ^= 0x5a;
            std::fs::write(&path, bytes).expect("writes");
        })
    };
    // sled's log holds values as written: flip the byte `offset` bytes into the first or last
    // copy of `needle` (a key, or the header of a stored value: its payload is compressed).
    let flip_in_db = |needle: &'static [u8], last: bool, offset: usize| -> Damage {
        Box::new(move |dir: &Path| {
            let path = dir.join("db");
            let mut bytes = std::fs::read(&path).expect("reads");
            let mut at = bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i);
            let idx = if last { at.next_back() } else { at.next() }.expect("the needle is in the log");
            bytes[idx + offset] ^= 0x01;
            std::fs::write(&path, bytes).expect("writes");
        })
    };
    let truncate_at_last_in_db = |needle: &'static str| -> Damage {
        Box::new(move |dir: &Path| {
            let path = dir.join("db");
            let bytes = std::fs::read(&path).expect("reads");
            let idx =
                bytes.windows(needle.len()).rposition(|w| w == needle.as_bytes()).expect("the needle is in the log");
            std::fs::write(&path, &bytes[..idx]).expect("writes");
        })
    };
    let truncate = |rel: &'static str, keep: fn(usize) -> usize| -> Damage {
        Box::new(move |dir: &Path| {
            let path = dir.join(rel);
            let len = std::fs::metadata(&path).expect("stat").len() as usize;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("opens")
                .set_len(keep(len) as u64)
                .expect("truncates");
        })
    };
    // sled may keep an old copy of a blob until it collects it: damage every copy.
    let on_blob =
        |edit: fn(&Path)| -> Damage { Box::new(move |dir: &Path| blob_files(dir).iter().for_each(|p| edit(p))) };
    let damages: Vec<(&str, Damage, &str)> = vec![
        ("db: a byte of the first stored value flipped", flip_in_db(VALUE_HEADER, false, 12), "cannot be opened"),
        ("db: a byte of the last stored value flipped", flip_in_db(VALUE_HEADER, true, 12), "cannot be opened"),
        ("db: a byte of the first key of a cluster flipped", flip_in_db(b"fra-prod-1", false, 1), "cannot be opened"),
        ("db: a byte of the last key of a cluster flipped", flip_in_db(b"sin-prod-3", true, 1), "cannot be opened"),
        ("db: truncated inside the last stored snapshot", truncate_at_last_in_db("sin-prod-3"), "cannot be opened"),
        ("db: truncated to 100 bytes", truncate("db", |_| 100), "cannot be opened"),
        ("db: emptied", truncate("db", |_| 0), "cannot be opened"),
        (
            "db: deleted",
            Box::new(|dir: &Path| std::fs::remove_file(dir.join("db")).expect("removes")),
            "cannot be opened",
        ),
        ("conf: a byte flipped", flip("conf", |len| len / 2), "cannot be opened"),
        ("conf: truncated", truncate("conf", |len| len / 2), "cannot be opened"),
        (
            "blobs/: a byte flipped in each",
            on_blob(|path| {
                let mut bytes = std::fs::read(path).expect("reads");
                let idx = bytes.len() / 2;
                bytes[idx] ^= 0x01;
                std::fs::write(path, bytes).expect("writes");
            }),
            "cannot be opened",
        ),
        (
            "blobs/: each truncated",
            on_blob(|path| {
                std::fs::OpenOptions::new().write(true).open(path).expect("opens").set_len(10).expect("truncates");
            }),
            "cannot be opened",
        ),
        ("blobs/: each deleted", on_blob(|path| std::fs::remove_file(path).expect("removes")), "cannot be opened"),
        ("kplan-manifest: a byte flipped", flip("kplan-manifest", |len| len / 2), "kplan-manifest is damaged"),
        (
            "kplan-manifest: deleted",
            Box::new(|dir: &Path| std::fs::remove_file(dir.join("kplan-manifest")).expect("removes")),
            "kplan-manifest is missing",
        ),
        (
            "meta: a schema version from the future",
            Box::new(|dir: &Path| {
                with_raw_sled(dir, |db| {
                    db.open_tree("meta").expect("meta").insert("schema_version", &3u32.to_be_bytes()).expect("inserts");
                })
            }),
            "schema version 3 is not supported (this build reads version 2)",
        ),
        (
            "a record of a future schema",
            Box::new(|dir: &Path| {
                with_raw_sled(dir, |db| {
                    let plans = db.open_tree("plans").expect("plans");
                    // magic "KP", schema version 3, a CRC-32, the payload
                    plans.insert("from-the-future", &b"KP\0\0\0\x03\0\0\0\0{}"[..]).expect("inserts");
                })
            }),
            "schema version 3 is not supported",
        ),
        (
            "a record failing its checksum",
            Box::new(|dir: &Path| {
                with_raw_sled(dir, |db| {
                    let snapshots = db.open_tree("snapshots").expect("snapshots");
                    let (key, value) = snapshots.iter().next().expect("a snapshot").expect("reads");
                    let mut value = value.to_vec();
                    let last = value.len() - 2;
                    value[last] ^= 0x01;
                    snapshots.insert(key, value).expect("inserts");
                })
            }),
            "checksum mismatch",
        ),
    ];
    for (case_idx, (what, damage, reason)) in damages.iter().enumerate() {
        let copy = dir.path().join(format!("damaged-{case_idx}"));
        copy_dir(&data_dir, &copy);
        damage(&copy);
        let (code, lines) = run_until_exit(&copy);
        let stderr = lines.join("\n");
        assert!(!stderr.contains("panicked"), "{what}: a panic:\n{stderr}");
        assert!(matches!(code, Some(c) if c != 0 && c != 101), "{what}: exit {code:?}:\n{stderr}");
        let last = lines.last().map(String::as_str).unwrap_or_default();
        assert!(
            last.starts_with("kplan-server: ") && last.contains(reason),
            "{what}: last line {last:?}, expected {reason:?}"
        );
        eprintln!("{what}: exit {code:?}: {last}");
    }

    // Restore: into a new directory, and over a damaged one (moved aside, not deleted).
    let restored = dir.path().join("restored");
    let backup_arg = backup.to_str().expect("utf-8");
    let out = admin(&restored, &["restore", backup_arg]).expect("restores");
    assert!(out.contains("15 snapshots"), "{out}");
    let damaged = dir.path().join("damaged-0");
    let err = admin(&damaged, &["restore", backup_arg]).expect_err("not empty");
    assert!(err.contains("is not empty"), "{err}");
    let out = admin(&damaged, &["restore", backup_arg, "--replace"]).expect("replaces the damaged store");
    let aside = out.rsplit("the previous contents are in ").next().expect("moved aside").trim();
    assert!(Path::new(aside).join("db").is_file(), "{out}");
    // A backup needs the store to itself: a running server makes it refuse, clearly.
    let server = ServerProcess::start(&restored, &[]).unwrap_or_else(|log| panic!("kplan-server {log}"));
    let again = dir.path().join("again.backup");
    let err = admin(&restored, &["backup", "--out", again.to_str().expect("utf-8")]).expect_err("locked");
    assert!(err.contains("locked"), "{err}");
    assert!(!again.exists());
    server.kill9();
    for target in [&restored, &damaged] {
        let server =
            ServerProcess::start(target, &[]).unwrap_or_else(|log| panic!("restored store: kplan-server {log}"));
        runtime.block_on(async {
            let channel = channel(&server.addr).await.expect("connects");
            for snapshot in &reported {
                let got = stored_snapshot(&channel, &snapshot.cluster_id, snapshot.generation).await;
                assert_eq!(
                    got.as_ref(),
                    Some(snapshot),
                    "{}/{} after restore",
                    snapshot.cluster_id,
                    snapshot.generation
                );
            }
            // and it takes new reports
            inventory(&channel).report_snapshot(request(crash_report("fra-prod-1", 6))).await.expect("stored");
        });
        server.kill9();
    }
}

// ----------------------------------------------------------- graceful shutdown

/// SIGTERM while eight clients report: the server finishes what it accepted, exits 0, and every
/// acknowledged report is stored intact; a call it did not finish is refused, never half-stored.
#[test]
fn sigterm_finishes_in_flight_reports_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut server = ServerProcess::start(&data_dir, &[]).unwrap_or_else(|log| panic!("kplan-server {log}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let addr = server.addr.clone();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let addr = addr.clone();
            runtime.spawn(async move {
                let cluster_id = format!("term-{i}");
                let channel = channel(&addr).await.expect("connects");
                let mut acked = Vec::new();
                for generation in 1.. {
                    match inventory(&channel).report_snapshot(request(crash_report(&cluster_id, generation))).await {
                        Ok(_) => acked.push(generation),
                        // Refused once the server stops taking calls: never anything else.
                        Err(status) => {
                            assert!(
                                matches!(status.code(), Code::Unavailable | Code::Cancelled | Code::Unknown),
                                "{cluster_id}/{generation}: {status:?}"
                            );
                            break;
                        }
                    }
                }
                (cluster_id, acked)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let sent = Instant::now();
    let term = Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().expect("kill -TERM");
    assert!(term.success());
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("waits") {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(30), "still running 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = server.log_text();
    assert!(status.success(), "exit {status} after SIGTERM; log:\n{log}");
    assert!(log.contains("shut down cleanly"), "{log}");
    let acked: Vec<(String, Vec<u64>)> =
        clients.into_iter().map(|c| runtime.block_on(c).expect("client task")).collect();
    let store = kplan_store::SledStore::open(&data_dir).expect("the store opens after SIGTERM");
    let mut n_acked = 0;
    for (cluster_id, generations) in &acked {
        use kplan_store::Store;
        let history: BTreeMap<u64, ClusterSnapshot> =
            store.history(cluster_id).expect("history").into_iter().map(|(info, s)| (info.generation, s)).collect();
        for generation in generations {
            assert_eq!(history.get(generation), Some(&expected_snapshot(cluster_id, *generation)), "{cluster_id}");
        }
        // What is stored beyond the acknowledged ones was finished after the client stopped waiting.
        assert!(history.keys().all(|g| *g <= generations.last().copied().unwrap_or(0) + 1), "{cluster_id}");
        n_acked += generations.len();
    }
    eprintln!("SIGTERM after {n_acked} acknowledged reports: exit 0 in {:.0?}, all stored", sent.elapsed());
    assert!(n_acked >= 8, "too few reports acknowledged ({n_acked}) to mean anything");
}
