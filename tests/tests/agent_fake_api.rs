//! Issue 3 end to end without a real Kubernetes: the real `kplan-agent`,
//! `kplan-server` and `kplan` binaries against the fake Kubernetes API
//! (`kplan_agent::fake_api`) served over loopback HTTP.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use kplan_agent::collect::parse_documents;
use kplan_agent::fake_api::FakeApi;
use serde_json::{Value, json};

const CLUSTER: &str = "fra-prod-payments";

/// The bank example's fra-prod-payments export, served over HTTP by a fake
/// API on its own runtime; dropped with the test.
struct FakeCluster {
    fake: FakeApi,
    _runtime: tokio::runtime::Runtime,
    kubeconfig: PathBuf,
}

impl FakeCluster {
    fn start(dir: &Path) -> FakeCluster {
        let fake = FakeApi::new();
        let export = repo_root().join(format!("examples/bank/clusters/{CLUSTER}.json"));
        let text = std::fs::read_to_string(&export).expect("bank example");
        fake.load(&parse_documents(&text, "export").expect("parses"));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("binds");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(fake.clone().serve(listener));
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{addr}\"}}\n\
                 users:\n- name: agent\n  user: {{token: t}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: agent}}\n\
                 current-context: fake\n"
            ),
        )
        .expect("writes kubeconfig");
        FakeCluster { fake, _runtime: runtime, kubeconfig }
    }

    fn kubeconfig(&self) -> &str {
        self.kubeconfig.to_str().expect("utf-8 path")
    }
}

fn show(args: &[&str]) -> Value {
    serde_json::from_str(&kplan_ok(args)).expect("json")
}

/// Generation and collection time differ between two imports of the same
/// cluster; everything else must not, pod groups included.
fn without_times(mut snapshot: Value) -> Value {
    snapshot["generation"] = json!(0);
    snapshot["collected_at_unix"] = json!(0);
    snapshot
}

#[test]
fn snapshot_file_imports_exactly_like_the_kubectl_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = FakeCluster::start(dir.path());
    let out = dir.path().join("snapshot.json");
    let output = std::process::Command::new(bin("kplan-agent"))
        .args(["--kubeconfig", cluster.kubeconfig(), "--cluster-id", CLUSTER])
        .args(["--datacenter", "fra", "--zone", "fra-prod-a", "--security-tier", "prod"])
        .args(["snapshot", "--out", out.to_str().expect("utf-8 path")])
        .env("KPLAN_LOG_FORMAT", "json")
        .output()
        .expect("runs kplan-agent");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kplan-agent snapshot failed:\n{stderr}");
    assert!(stderr.contains("snapshot written"), "{stderr}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("written")).expect("json");
    let generation = written["generation"].as_u64().expect("generation");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    assert!(generation <= now_ms && generation > now_ms - 600_000, "generation {generation} is unix milliseconds");
    assert!(cluster.fake.requests().iter().all(|request| request.method == "GET"), "the agent only reads");

    // `kplan import` takes the agent's file, and it stores what importing the
    // kubectl export itself stores.
    let from_agent = dir.path().join("from-agent");
    let from_kubectl = dir.path().join("from-kubectl");
    let from_agent = from_agent.to_str().expect("utf-8 path");
    let from_kubectl = from_kubectl.to_str().expect("utf-8 path");
    kplan_ok(&["--inventory", from_agent, "import", "--cluster", CLUSTER, out.to_str().expect("utf-8 path")]);
    let export = repo_root().join(format!("examples/bank/clusters/{CLUSTER}.json"));
    kplan_ok(&[
        "--inventory",
        from_kubectl,
        "import",
        "--cluster",
        CLUSTER,
        "--datacenter",
        "fra",
        "--zone",
        "fra-prod-a",
        "--security-tier",
        "prod",
        export.to_str().expect("utf-8 path"),
    ]);
    let agent_view = show(&["--inventory", from_agent, "clusters", "show", CLUSTER, "-o", "json"]);
    let kubectl_view = show(&["--inventory", from_kubectl, "clusters", "show", CLUSTER, "-o", "json"]);
    assert_eq!(agent_view["generation"], json!(generation), "the file's generation is kept");
    assert_eq!(without_times(agent_view.clone()), without_times(kubectl_view));
    assert_eq!(agent_view["nodes"].as_array().expect("nodes").len(), 20);
    assert_eq!(agent_view["facts"]["cni"], "calico");
}

#[test]
fn the_agent_reports_to_the_server_and_follows_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = FakeCluster::start(dir.path());
    let server = Server::start(&dir.path().join("data"));
    let url = server.url();
    let mut agent = AgentProcess::start(
        &["--kubeconfig", cluster.kubeconfig(), "--cluster-id", CLUSTER, "--server", &url],
        &[
            ("KPLAN_AGENT_DATACENTER", "fra"),
            ("KPLAN_AGENT_ZONE", "fra-prod-a"),
            ("KPLAN_AGENT_SECURITY_TIER", "prod"),
            ("KPLAN_AGENT_DEBOUNCE_SECONDS", "0.5"),
            ("KPLAN_AGENT_HEALTH_LISTEN", "127.0.0.1:0"),
        ],
    );
    let started = agent.wait_for("agent started", Duration::from_secs(30));
    let health = started["health_addr"].as_str().expect("health_addr").to_string();
    assert_eq!(http_get(&health, "/healthz").0, 200);
    agent.wait_for("snapshot reported", Duration::from_secs(30));
    let (status, body) = http_get(&health, "/readyz");
    assert_eq!(status, 200, "{body}");
    let first = show(&["--server", &url, "clusters", "show", CLUSTER, "-o", "json"]);
    assert_eq!(first["nodes"].as_array().expect("nodes").len(), 20);
    // The agent's metrics (issue 7) count the report.
    let metrics_addr =
        agent.wait_for("metrics listening", Duration::from_secs(5))["addr"].as_str().expect("metrics addr").to_string();
    let (status, page) = http_get(&metrics_addr, "/metrics");
    assert_eq!(status, 200);
    let sent_before = metric_value(&page, "kplan_agent_reports_sent_total").expect("reports sent");
    assert!(sent_before >= 1.0, "{page}");
    assert_eq!(metric_value(&page, "kplan_agent_ready"), Some(1.0), "{page}");
    assert!(metric_value(&page, "kplan_agent_last_report_timestamp_seconds").is_some_and(|t| t > 1.7e9), "{page}");
    assert!(page.contains("# TYPE kplan_agent_report_failures counter"), "{page}");

    // A node's zone label changes: the next report carries it.
    let mut node = cluster.fake.objects(kplan_agent::fake_api::ApiResource::Nodes)[0].clone();
    let name = node["metadata"]["name"].as_str().expect("name").to_string();
    node["metadata"]["labels"]["kplan.io/firewall-zone"] = json!("fra-moved");
    cluster.fake.apply(node);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = show(&["--server", &url, "clusters", "show", CLUSTER, "-o", "json"]);
        let zone = shown["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == name.as_str())
            .map(|n| n["zone"].clone());
        if zone == Some(json!("fra-moved")) {
            assert!(shown["generation"].as_u64() > first["generation"].as_u64());
            break;
        }
        assert!(Instant::now() < deadline, "the change did not arrive; agent log:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let reported = agent.messages("snapshot reported");
    assert!(reported.iter().all(|line| line["cluster_id"] == CLUSTER && line["n_nodes"] == 20), "{reported:?}");
    let (_, page) = http_get(&metrics_addr, "/metrics");
    let sent_after = metric_value(&page, "kplan_agent_reports_sent_total").expect("reports sent");
    assert!(sent_after > sent_before, "the metric moves with the report: {sent_before} -> {sent_after}");
}

#[test]
fn help_shows_every_flag() {
    let output = std::process::Command::new(bin("kplan-agent")).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--kubeconfig",
        "--context",
        "--cluster-id",
        "--server",
        "--datacenter",
        "--zone",
        "--security-tier",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    assert!(help.contains("snapshot"), "{help}");
    let output = std::process::Command::new(bin("kplan-agent")).args(["snapshot", "--help"]).output().expect("runs");
    assert!(String::from_utf8_lossy(&output.stdout).contains("--out"));
}

#[test]
fn a_bad_config_is_reported_whole_and_exits_64_before_binding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("cluster_id = \"Bad_Id\"\nserver = \"nowhere\"\ndebounce_seconds = -1\nhealth_listen = \"127.0.0.1:{port}\"\n"),
    )
    .expect("writes");
    let output = std::process::Command::new(bin("kplan-agent"))
        .arg("--config")
        .arg(&config)
        .env_remove("KUBECONFIG")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for field in ["cluster_id", "server", "debounce_seconds"] {
        assert!(stderr.contains(field), "{field} not reported:\n{stderr}");
    }
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the health port was never bound");
    // An unknown key, named.
    std::fs::write(&config, "cluster_id = \"c1\"\nbogus_key = 1\n").expect("writes");
    let output = std::process::Command::new(bin("kplan-agent")).arg("--config").arg(&config).output().expect("runs");
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bogus_key"));
}

/// `kplan-server` over mutual TLS on a fixed address, trusting client
/// certificates of `client_ca` only.
fn start_tls_server_on(data_dir: &Path, addr: &str, server_ca_dir: &Path, client_ca: &Path) -> Server {
    let mut command = std::process::Command::new(bin("kplan-server"));
    command
        .args(["--listen", addr, "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--tls-cert")
        .arg(server_ca_dir.join("server.crt"))
        .arg("--tls-key")
        .arg(server_ca_dir.join("server.key"))
        .arg("--client-ca")
        .arg(client_ca)
        .env("KPLAN_LOG_FORMAT", "json");
    start_server_with(&mut command, data_dir)
}

/// Replaces `path` whole, as a Secret update or cert-manager's renewal does.
fn replace_file(path: &Path, from: &Path) {
    let tmp = path.with_extension("tmp");
    std::fs::copy(from, &tmp).expect("copies");
    std::fs::rename(&tmp, path).expect("replaces");
}

/// Issue 16 item 6, the agent's side of rotation: its client certificate and
/// key are replaced on disk by ones of a new CA while it runs, and the server
/// now trusts only that CA. Without a restart, the agent's next report must
/// be signed by the new certificate and stored (the old one is refused).
#[test]
fn the_agent_reports_with_a_rotated_client_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |rel: &str| dir.path().join(rel).display().to_string();
    for ca in ["ca-old", "ca-new"] {
        kplan_certs(&["init", "--out", &path(ca), "--server-host", "localhost", "--server-host", "127.0.0.1"]);
        kplan_certs(&["issue", "--ca-dir", &path(ca), "--cluster", CLUSTER, "--out", &path(&format!("{ca}-certs"))]);
    }
    let issued = |ca: &str, ext: &str| dir.path().join(format!("{ca}-certs/{CLUSTER}.{ext}"));
    // The agent's mounted Secret: the old CA's certificate for now.
    std::fs::create_dir(dir.path().join("agent-tls")).expect("dir");
    let (agent_cert, agent_key) = (dir.path().join("agent-tls/tls.crt"), dir.path().join("agent-tls/tls.key"));
    replace_file(&agent_cert, &issued("ca-old", "crt"));
    replace_file(&agent_key, &issued("ca-old", "key"));

    let cluster = FakeCluster::start(dir.path());
    let data = dir.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = start_tls_server_on(&data, &addr, &dir.path().join("ca-old"), &dir.path().join("ca-old/ca.crt"));
    let url = format!("https://{addr}");
    let mut agent = AgentProcess::start(
        &["--kubeconfig", cluster.kubeconfig(), "--cluster-id", CLUSTER, "--server", &url],
        &[
            ("KPLAN_AGENT_INSECURE_PLAINTEXT", "false"),
            ("KPLAN_AGENT_TLS__CA_FILE", &path("ca-old/ca.crt")),
            ("KPLAN_AGENT_TLS__CERT_FILE", &agent_cert.display().to_string()),
            ("KPLAN_AGENT_TLS__KEY_FILE", &agent_key.display().to_string()),
            ("KPLAN_AGENT_DATACENTER", "fra"),
            ("KPLAN_AGENT_ZONE", "fra-prod-a"),
            ("KPLAN_AGENT_SECURITY_TIER", "prod"),
            ("KPLAN_AGENT_DEBOUNCE_SECONDS", "0.2"),
            ("KPLAN_AGENT_RETRY_INITIAL_SECONDS", "0.2"),
            ("KPLAN_AGENT_RETRY_MAX_SECONDS", "1"),
            ("KPLAN_AGENT_HEALTH_LISTEN", "127.0.0.1:0"),
        ],
    );
    let first = agent.wait_for("snapshot reported", Duration::from_secs(30));
    let first_generation = first["generation"].as_u64().expect("generation");

    // Rotation: the new CA's certificate and key in the agent's files, and a
    // server (restarted on the same address, so no old connection survives)
    // that trusts the new CA only.
    server.kill9();
    replace_file(&agent_cert, &issued("ca-new", "crt"));
    replace_file(&agent_key, &issued("ca-new", "key"));
    let server = start_tls_server_on(&data, &addr, &dir.path().join("ca-old"), &dir.path().join("ca-new/ca.crt"));

    // The old certificate is refused now: only the rotated one can get a report in.
    let old = kplan_proto::tls::ClientSecurity {
        ca_file: Some(dir.path().join("ca-old/ca.crt")),
        cert_file: Some(issued("ca-old", "crt")),
        key_file: Some(issued("ca-old", "key")),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let refused = runtime.block_on(async {
        let channel = old.connect(&url).await.map_err(|err| tonic::Status::unavailable(err.to_string()))?;
        let mut client = kplan_proto::v1::query_service_client::QueryServiceClient::new(channel);
        client.list_clusters(kplan_proto::v1::ListClustersRequest::default()).await
    });
    let refused = refused.expect_err("the server trusts only the new CA");
    // Refused by TLS, before any call reached the server: TLS 1.3 reports the
    // refusal of a client certificate after the handshake, as a fatal alert,
    // a broken pipe or a closed connection, whichever the client meets first;
    // never a status of the server's own (unauthenticated, denied).
    assert!(
        matches!(refused.code(), tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled),
        "{refused}"
    );

    let mut node = cluster.fake.objects(kplan_agent::fake_api::ApiResource::Nodes)[0].clone();
    node["metadata"]["labels"]["kplan.io/firewall-zone"] = json!("fra-rotated");
    cluster.fake.apply(node);
    let deadline = Instant::now() + Duration::from_secs(30);
    let reported = loop {
        let newer = agent
            .messages("snapshot reported")
            .into_iter()
            .find(|line| line["generation"].as_u64().is_some_and(|g| g > first_generation));
        if let Some(line) = newer {
            break line;
        }
        assert!(Instant::now() < deadline, "no report after the rotation; agent log:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(agent.messages("the TLS or token files changed: reporting with the new ones").len(), 1);
    drop(agent);
    server.kill9();
    let stored: Value =
        serde_json::from_str(&kplan_ok(&["--inventory", &path("data"), "clusters", "show", CLUSTER, "-o", "json"]))
            .expect("json");
    assert_eq!(stored["generation"], reported["generation"], "the report after the rotation is stored");
    assert!(stored["nodes"].as_array().expect("nodes").iter().any(|n| n["zone"] == "fra-rotated"), "{stored}");
}
