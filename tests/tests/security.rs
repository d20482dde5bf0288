//! Issue 6, mutual TLS: the authentication matrix against the real
//! `kplan-server` binary, with certificates made by `kplan certs` (and, for the
//! bad ones, by rcgen directly). Every refused call is checked for its status
//! (or for a failed TLS handshake), and for writing nothing: through an
//! authorised query, and through the store itself once the server is stopped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, bin, http_get, kplan_certs, now_unix, small_snapshot, start_server_with};
use kplan_model::ClusterSnapshot;
use kplan_proto::tls::ClientSecurity;
use kplan_proto::v1;
use serde_json::Value;
use tonic::Code;

/// The CA, certificates and tokens of one test, made by `kplan certs`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki { dir: tempfile::tempdir().expect("tempdir") };
        let ca = pki.path("ca");
        let certs = pki.path("certs");
        kplan_certs(&["init", "--out", &ca, "--server-host", "localhost", "--server-host", "127.0.0.1"]);
        for identity in
            [["--cluster", "cluster-a"], ["--cluster", "cluster-b"], ["--reader", "alice"], ["--planner", "bob"]]
        {
            kplan_certs(&["issue", "--ca-dir", &ca, identity[0], identity[1], "--out", &certs]);
        }
        // Tokens: the server's file holds only their hashes.
        let mut lines = String::new();
        for (role, name) in [("--reader", "dashboards"), ("--planner", "capacity-bot")] {
            let token = pki.path(&format!("{name}.token"));
            lines.push_str(&kplan_certs(&["token", role, name, "--out", &token]));
        }
        std::fs::write(pki.dir.path().join("tokens"), &lines).expect("token file");
        std::fs::write(pki.dir.path().join("wrong.token"), "0123456789abcdef0123456789abcdef\n").expect("token");
        pki
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca/ca.crt")
    }

    /// A client with the certificate `certs/<stem>.crt` (or `bad/<stem>.crt`).
    fn cert(&self, stem: &str) -> ClientSecurity {
        let base = if self.dir.path().join(format!("certs/{stem}.crt")).is_file() { "certs" } else { "bad" };
        ClientSecurity {
            ca_file: Some(self.ca()),
            cert_file: Some(self.dir.path().join(format!("{base}/{stem}.crt"))),
            key_file: Some(self.dir.path().join(format!("{base}/{stem}.key"))),
            ..Default::default()
        }
    }

    fn token(&self, file: &str) -> ClientSecurity {
        ClientSecurity { ca_file: Some(self.ca()), token_file: Some(self.dir.path().join(file)), ..Default::default() }
    }

    fn anonymous(&self) -> ClientSecurity {
        ClientSecurity { ca_file: Some(self.ca()), ..Default::default() }
    }

    /// Certificates the server must refuse in the handshake, made with rcgen:
    /// self-signed, from another CA, expired (signed by the right CA). All name
    /// cluster-a, so only the chain or the dates are wrong.
    fn make_bad_certificates(&self) {
        let bad = self.dir.path().join("bad");
        std::fs::create_dir_all(&bad).expect("dir");
        let write = |stem: &str, cert: &rcgen::Certificate, key: &rcgen::KeyPair| {
            std::fs::write(bad.join(format!("{stem}.crt")), cert.pem()).expect("cert");
            std::fs::write(bad.join(format!("{stem}.key")), key.serialize_pem()).expect("key");
        };
        let client_params = |not_after: time::OffsetDateTime| {
            let mut params = rcgen::CertificateParams::default();
            params.subject_alt_names =
                vec![rcgen::SanType::URI("spiffe://kplan/cluster/cluster-a".try_into().expect("uri"))];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            params.not_before = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).expect("date");
            params.not_after = not_after;
            params
        };
        let far = time::OffsetDateTime::from_unix_timestamp(4_000_000_000).expect("date");

        let key = rcgen::KeyPair::generate().expect("key");
        write("self-signed", &client_params(far).self_signed(&key).expect("cert"), &key);

        let other_ca_key = rcgen::KeyPair::generate().expect("key");
        let mut other_ca = rcgen::CertificateParams::default();
        other_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        other_ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let other_issuer = rcgen::Issuer::new(other_ca, other_ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        write("other-ca", &client_params(far).signed_by(&key, &other_issuer).expect("cert"), &key);

        let ca_pem = std::fs::read_to_string(self.ca()).expect("ca");
        let ca_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(self.path("ca/ca.key")).expect("key")).expect("ca key");
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
        let yesterday = time::OffsetDateTime::from_unix_timestamp(now_unix() - 86_400).expect("date");
        let key = rcgen::KeyPair::generate().expect("key");
        write("expired", &client_params(yesterday).signed_by(&key, &issuer).expect("cert"), &key);
    }
}

/// `kplan-server` with mutual TLS (and the token file, if asked), JSON logs.
fn start_tls_server(pki: &Pki, data_dir: &Path, with_tokens: bool) -> Server {
    let mut command = Command::new(bin("kplan-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--tls-cert", &pki.path("ca/server.crt"), "--tls-key", &pki.path("ca/server.key")])
        .args(["--client-ca", &pki.path("ca/ca.crt")])
        .env("KPLAN_LOG_FORMAT", "json")
        // The server's acceptor (tls_reload.rs) logs refused TLS handshakes (with rustls' reason) at debug.
        .env("KPLAN_LOG", "info,kplan_server::tls_reload=debug");
    if with_tokens {
        command.args(["--token-file", &pki.path("tokens")]);
    }
    start_server_with(&mut command, data_dir)
}

/// What a call came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    /// The server answered with this status.
    Refused(Code),
    /// The connection failed below gRPC: no status came from the server. For a
    /// refused certificate the server's log says why ([`tls_refusals`]).
    Transport(String),
}

/// In TLS 1.3 the client learns that its certificate was refused only after
/// it sent it, so the refusal surfaces on the first call, as a transport error
/// (the alert, a closed connection or a broken pipe, depending on timing).
fn classify<T>(result: Result<T, tonic::Status>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(status) => {
            let transport = std::error::Error::source(&status)
                .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some());
            if transport { Outcome::Transport(error_chain(&status)) } else { Outcome::Refused(status.code()) }
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    parts.join(": ")
}

/// The "tls accept error" lines (rustls' reasons) the server logs from now on:
/// waits up to 10 s for the first, then 300 ms for more (a client may try a
/// connection twice). Every line read is kept in `log`.
fn tls_refusals(server: &Server, log: &mut Vec<String>) -> Vec<String> {
    let mut refusals = Vec::new();
    let mut deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(line) = server.log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        log.push(line.clone());
        if let Ok(value) = serde_json::from_str::<Value>(&line)
            && value["message"] == "tls accept error"
        {
            refusals.push(value["error"].as_str().unwrap_or_default().to_string());
            deadline = Instant::now() + Duration::from_millis(300);
        }
    }
    assert!(!refusals.is_empty(), "the server logged no refused TLS handshake; log:\n{}", log.join("\n"));
    refusals
}

/// Reads the log until it has been quiet for 300 ms.
fn settle(server: &Server, log: &mut Vec<String>) {
    while let Ok(line) = server.log.recv_timeout(Duration::from_millis(300)) {
        log.push(line);
    }
}

/// The call failed in the TLS handshake, and the server refused it for `reason`.
async fn assert_handshake_refused(
    what: &str,
    attempt: impl std::future::Future<Output = Outcome>,
    server: &Server,
    log: &mut Vec<String>,
    reason: &str,
) {
    settle(server, log);
    let outcome = attempt.await;
    assert!(matches!(outcome, Outcome::Transport(_)), "{what}: expected a failed TLS handshake, got {outcome:?}");
    for refusal in tls_refusals(server, log) {
        assert!(refusal.contains(reason), "{what}: the server refused the handshake with {refusal:?}, not {reason:?}");
    }
}

async fn channel(server: &Server, security: &ClientSecurity) -> Result<kplan_proto::tls::AuthChannel, String> {
    security.connect(&format!("https://{}", server.addr)).await.map_err(|err| error_chain(&err))
}

async fn report(server: &Server, security: &ClientSecurity, snapshot: ClusterSnapshot) -> Outcome {
    let channel = match channel(server, security).await {
        Ok(channel) => channel,
        Err(err) => return Outcome::Transport(err),
    };
    let mut client = v1::inventory_service_client::InventoryServiceClient::new(channel);
    classify(client.report_snapshot(v1::ReportSnapshotRequest { snapshot: Some(snapshot.into()) }).await)
}

async fn list_clusters(server: &Server, security: &ClientSecurity) -> Result<Vec<(String, u64)>, Outcome> {
    let channel = channel(server, security).await.map_err(Outcome::Transport)?;
    let mut client = v1::query_service_client::QueryServiceClient::new(channel);
    match client.list_clusters(v1::ListClustersRequest::default()).await {
        Ok(reply) => {
            Ok(reply.into_inner().clusters.into_iter().map(|c| (c.cluster_id.clone(), c.generation)).collect())
        }
        Err(status) => Err(classify::<()>(Err(status))),
    }
}

async fn get_cluster(server: &Server, security: &ClientSecurity, cluster_id: &str) -> Outcome {
    let channel = match channel(server, security).await {
        Ok(channel) => channel,
        Err(err) => return Outcome::Transport(err),
    };
    let mut client = v1::query_service_client::QueryServiceClient::new(channel);
    classify(client.get_cluster(v1::GetClusterRequest { cluster_id: cluster_id.into(), generation: 0 }).await)
}

async fn propose(server: &Server, security: &ClientSecurity) -> Outcome {
    let channel = match channel(server, security).await {
        Ok(channel) => channel,
        Err(err) => return Outcome::Transport(err),
    };
    let mut client = v1::planner_service_client::PlannerServiceClient::new(channel);
    classify(client.propose_plan(v1::ProposePlanRequest::default()).await)
}

/// A proposal that must succeed; the stored plan's id.
async fn propose_ok(server: &Server, security: &ClientSecurity) -> String {
    let channel = channel(server, security).await.expect("connects");
    let mut client = v1::planner_service_client::PlannerServiceClient::new(channel);
    let reply = client.propose_plan(v1::ProposePlanRequest::default()).await.expect("a planner proposes");
    reply.into_inner().plan.expect("plan").id
}

async fn list_plans(server: &Server, security: &ClientSecurity) -> Result<usize, Outcome> {
    let channel = channel(server, security).await.map_err(Outcome::Transport)?;
    let mut client = v1::planner_service_client::PlannerServiceClient::new(channel);
    match client.list_plans(v1::ListPlansRequest {}).await {
        Ok(reply) => Ok(reply.into_inner().plans.len()),
        Err(status) => Err(classify::<()>(Err(status))),
    }
}

async fn health(server: &Server, security: &ClientSecurity) -> Result<i32, Outcome> {
    let channel = channel(server, security).await.map_err(Outcome::Transport)?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    match client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await {
        Ok(reply) => Ok(reply.into_inner().status),
        Err(status) => Err(classify::<()>(Err(status))),
    }
}

/// `kplan --inventory DIR ...` on the stopped server's store: what is really on disk.
fn stored(data_dir: &Path, args: &[&str]) -> Value {
    let out = common::kplan_ok(&[&["--inventory", &data_dir.display().to_string()], args].concat());
    serde_json::from_str(&out).expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_matrix_over_mutual_tls() {
    let pki = Pki::new();
    pki.make_bad_certificates();
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_tls_server(&pki, data.path(), true);

    // Allowed: the agent of cluster-a reports cluster-a.
    assert_eq!(report(&server, &pki.cert("cluster-a"), small_snapshot("cluster-a", 1)).await, Outcome::Ok);

    // Refused, each trying to write something: every refusal with its status.
    let attempts: Vec<(&str, ClientSecurity, ClusterSnapshot, Outcome)> = vec![
        (
            "no client certificate, no token",
            pki.anonymous(),
            small_snapshot("cluster-a", 2),
            Outcome::Refused(Code::Unauthenticated),
        ),
        (
            "cluster-a's certificate reporting cluster-b",
            pki.cert("cluster-a"),
            small_snapshot("cluster-b", 1),
            Outcome::Refused(Code::PermissionDenied),
        ),
        (
            "a reader reporting",
            pki.cert("reader-alice"),
            small_snapshot("cluster-a", 2),
            Outcome::Refused(Code::PermissionDenied),
        ),
        (
            "a planner reporting",
            pki.cert("planner-bob"),
            small_snapshot("cluster-b", 1),
            Outcome::Refused(Code::PermissionDenied),
        ),
        (
            "a wrong token",
            pki.token("wrong.token"),
            small_snapshot("cluster-b", 1),
            Outcome::Refused(Code::Unauthenticated),
        ),
        (
            "a valid reader token reporting (tokens are never agents)",
            pki.token("dashboards.token"),
            small_snapshot("cluster-b", 1),
            Outcome::Refused(Code::PermissionDenied),
        ),
    ];
    for (what, security, snapshot, expected) in attempts {
        assert_eq!(report(&server, &security, snapshot).await, expected, "{what}");
    }
    let mut log = Vec::new();
    for (stem, reason) in [("self-signed", "UnknownIssuer"), ("other-ca", "UnknownIssuer"), ("expired", "xpired")] {
        for snapshot in [small_snapshot("cluster-a", 2), small_snapshot("cluster-b", 1)] {
            let security = pki.cert(stem);
            let attempt = report(&server, &security, snapshot);
            assert_handshake_refused(stem, attempt, &server, &mut log, reason).await;
        }
    }

    // Reading: readers, planners and tokens read; an agent reads only its own cluster.
    assert_eq!(list_clusters(&server, &pki.cert("reader-alice")).await, Ok(vec![("cluster-a".to_string(), 1)]));
    assert_eq!(list_clusters(&server, &pki.token("dashboards.token")).await, Ok(vec![("cluster-a".to_string(), 1)]));
    assert_eq!(list_clusters(&server, &pki.cert("cluster-a")).await, Err(Outcome::Refused(Code::PermissionDenied)));
    assert_eq!(list_clusters(&server, &pki.token("wrong.token")).await, Err(Outcome::Refused(Code::Unauthenticated)));
    assert_eq!(get_cluster(&server, &pki.cert("cluster-a"), "cluster-a").await, Outcome::Ok);
    assert_eq!(
        get_cluster(&server, &pki.cert("cluster-b"), "cluster-a").await,
        Outcome::Refused(Code::PermissionDenied),
        "an agent reads only its own cluster"
    );

    // Planning: a reader (certificate or token) and an agent may not propose; a planner may.
    assert_eq!(propose(&server, &pki.cert("reader-alice")).await, Outcome::Refused(Code::PermissionDenied));
    assert_eq!(propose(&server, &pki.token("dashboards.token")).await, Outcome::Refused(Code::PermissionDenied));
    assert_eq!(propose(&server, &pki.cert("cluster-a")).await, Outcome::Refused(Code::PermissionDenied));
    assert_eq!(list_plans(&server, &pki.cert("reader-alice")).await, Ok(0), "refused proposals stored no plan");
    let mut plan_ids = std::collections::BTreeSet::new();
    plan_ids.insert(propose_ok(&server, &pki.cert("planner-bob")).await);
    // A planner token too (the same plan in the same second has the same id).
    plan_ids.insert(propose_ok(&server, &pki.token("capacity-bot.token")).await);
    assert_eq!(list_plans(&server, &pki.token("dashboards.token")).await, Ok(plan_ids.len()));

    // Health is open to every authenticated peer, an agent too; not to strangers.
    assert_eq!(health(&server, &pki.cert("cluster-b")).await, Ok(1), "SERVING");
    assert_eq!(health(&server, &pki.anonymous()).await, Err(Outcome::Refused(Code::Unauthenticated)));
    // Probes use the plaintext metrics port.
    assert_eq!(http_get(&server.metrics_addr, "/readyz").0, 200);

    // 0 records written by the refusals: one cluster, one generation.
    let generations = {
        let channel = channel(&server, &pki.cert("reader-alice")).await.expect("reader connects");
        let mut client = v1::query_service_client::QueryServiceClient::new(channel);
        let reply = client
            .list_generations(v1::ListGenerationsRequest { cluster_id: "cluster-a".into() })
            .await
            .expect("generations");
        reply.into_inner().generations.len()
    };
    assert_eq!(generations, 1);
    log.extend(server.drain_log());
    let refused_log: Vec<&String> = log.iter().filter(|l| l.contains("refused")).collect();
    assert!(!refused_log.is_empty(), "refusals are logged");
    let token = std::fs::read_to_string(pki.path("dashboards.token")).expect("token");
    assert!(!refused_log.iter().any(|line| line.contains(token.trim())), "tokens are never logged");

    // And on disk, after the server is stopped.
    let data_dir = server.data_dir.clone();
    server.kill9();
    let clusters = stored(&data_dir, &["clusters", "list", "-o", "json"]);
    let ids: Vec<(&str, u64)> = clusters
        .as_array()
        .expect("array")
        .iter()
        .map(|c| (c["cluster_id"].as_str().expect("id"), c["generation"].as_u64().expect("generation")))
        .collect();
    assert_eq!(ids, vec![("cluster-a", 1)]);
    let plans = stored(&data_dir, &["plans", "list", "-o", "json"]);
    assert_eq!(plans.as_array().expect("array").len(), plan_ids.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_file_a_client_certificate_is_required_in_the_handshake() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_tls_server(&pki, data.path(), false);
    let mut log = Vec::new();
    let (anonymous, token) = (pki.anonymous(), pki.token("dashboards.token"));
    let attempt = report(&server, &anonymous, small_snapshot("cluster-a", 1));
    assert_handshake_refused("no certificate", attempt, &server, &mut log, "no certificates").await;
    let attempt = report(&server, &token, small_snapshot("cluster-a", 1));
    assert_handshake_refused("a token, no certificate", attempt, &server, &mut log, "no certificates").await;
    assert_eq!(report(&server, &pki.cert("cluster-a"), small_snapshot("cluster-a", 1)).await, Outcome::Ok);
    assert_eq!(list_clusters(&server, &pki.cert("reader-alice")).await, Ok(vec![("cluster-a".to_string(), 1)]));
}

#[test]
fn the_cli_speaks_mutual_tls_and_tokens() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_tls_server(&pki, data.path(), true);
    let url = format!("https://{}", server.addr);
    let ca = pki.path("ca/ca.crt");
    let nodes = common::fixture("minikube-1.35-nodes.yaml").display().to_string();
    // Plain Command: the common helper allows plaintext, these runs must not need it.
    let kplan = |args: &[&str]| {
        Command::new(bin("kplan"))
            .args(args)
            .env_remove("KPLAN_SERVER")
            .env_remove("KPLAN_INVENTORY")
            .env_remove("KPLAN_INSECURE_PLAINTEXT")
            .env("XDG_CONFIG_HOME", pki.path("no-user-config"))
            .output()
            .expect("kplan runs")
    };
    let tls = ["--server", url.as_str(), "--ca", ca.as_str()];
    let (cert, key, token_file) =
        (pki.path("certs/cluster-a.crt"), pki.path("certs/cluster-a.key"), pki.path("dashboards.token"));
    let agent = [&tls[..], &["--cert", &cert, "--key", &key]].concat();
    let import = |cluster: &'static str| {
        ["import", "--cluster", cluster, "--datacenter", "fra", "--zone", "fra-a", "--security-tier", "prod"]
    };
    let out = kplan(&[&agent[..], &import("cluster-a"), &[nodes.as_str()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = kplan(&[&agent[..], &import("cluster-b"), &[nodes.as_str()]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("PermissionDenied"), "{stderr}");

    let token = [&tls[..], &["--token-file", &token_file]].concat();
    let out = kplan(&[&token[..], &["clusters", "list", "-o", "json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let clusters: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(clusters.as_array().expect("array").len(), 1);

    // A plan's lifecycle names the certificate that changed it; a reader may not.
    let as_identity = |stem: &str| {
        let (cert, key) = (pki.path(&format!("certs/{stem}.crt")), pki.path(&format!("certs/{stem}.key")));
        [&tls[..], &["--cert", cert.as_str(), "--key", key.as_str()]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |identity: &[String], args: &[&str]| {
        let mut all: Vec<&str> = identity.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        kplan(&all)
    };
    let (planner, reader) = (as_identity("planner-bob"), as_identity("reader-alice"));
    let out = run(&planner, &["propose", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = plan["id"].as_str().expect("id");
    let out = run(&reader, &["plans", "abandon", id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("PermissionDenied"), "{stderr}");
    let out = run(&planner, &["plans", "abandon", id]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("plan {id}: abandoned by planner:bob at ")),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Plaintext only when asked for; https only with a CA.
    let out = kplan(&["--server", &format!("http://{}", server.addr), "clusters", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--insecure-plaintext"), "{stderr}");
    let out = kplan(&["--server", &url, "clusters", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--ca"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn the_server_refuses_to_start_without_a_choice_of_transport() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new(bin("kplan-server"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir"])
            .arg(data.path())
            .args(args)
            .output()
            .expect("runs");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("no transport security") && stderr.contains("--insecure-plaintext"), "{stderr}");

    let tls = ["--tls-cert", &pki.path("ca/server.crt"), "--tls-key", &pki.path("ca/server.key")];
    let (code, stderr) = run(&[&tls[..], &["--client-ca", &pki.path("ca/ca.crt"), "--insecure-plaintext"]].concat());
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("not both"), "{stderr}");

    // A key that is not the certificate's: still a configuration error, before any port.
    let mismatched = ["--tls-cert", &pki.path("ca/server.crt"), "--tls-key", &pki.path("certs/cluster-a.key")];
    let (code, stderr) = run(&[&mismatched[..], &["--client-ca", &pki.path("ca/ca.crt")]].concat());
    assert_eq!(code, Some(64), "{stderr}");

    // A token file with an agent in it, or a token in clear: refused, reported together.
    std::fs::write(pki.dir.path().join("bad-tokens"), "agent cluster-a 1234\nreader alice s3cret\n").expect("writes");
    let (code, stderr) =
        run(&[&tls[..], &["--client-ca", &pki.path("ca/ca.crt"), "--token-file", &pki.path("bad-tokens")]].concat());
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("line 1") && stderr.contains("line 2") && !stderr.contains("s3cret"), "{stderr}");
    assert_eq!(std::fs::read_dir(data.path()).expect("data dir").count(), 0, "nothing was opened or written");
}
