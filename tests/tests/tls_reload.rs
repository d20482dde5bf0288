//! Issue 16 item 6: the real `kplan-server` with mutual TLS reloads its
//! certificate, key and token file when a Kubernetes Secret volume changes
//! (the kubelet swaps the `..data` symlink), without a restart. A client
//! reports throughout; every acknowledged report must be stored, a new
//! connection must see the new certificate (its serial), and the replaced
//! token file must refuse the old token and accept the new one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, bin, http_get, kplan_certs, metric_value, now_unix, small_snapshot, start_server_with};
use kplan_proto::tls::ClientSecurity;
use kplan_proto::v1;
use serde_json::Value;

/// A Secret volume as the kubelet writes it: `NAME -> ..data/NAME`, and
/// `..data` a symlink to a versioned directory, swapped atomically on update.
struct SecretVolume {
    dir: PathBuf,
    version: u32,
}

impl SecretVolume {
    fn new(dir: &Path, files: &[(&str, Vec<u8>)]) -> SecretVolume {
        std::fs::create_dir_all(dir).expect("dir");
        let mut volume = SecretVolume { dir: dir.to_path_buf(), version: 0 };
        volume.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).expect("symlink");
        }
        volume
    }

    fn update(&mut self, files: &[(&str, Vec<u8>)]) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).expect("dir");
        for (name, content) in files {
            std::fs::write(self.dir.join(&version).join(name), content).expect("writes");
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("atomic swap");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A server certificate for localhost and 127.0.0.1 with this serial, signed by the test CA.
fn server_certificate(ca_dir: &Path, serial: u64) -> (Vec<u8>, Vec<u8>) {
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.crt")).expect("ca");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).expect("key")).expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = time::OffsetDateTime::from_unix_timestamp(now_unix() - 3600).expect("date");
    params.not_after = time::OffsetDateTime::from_unix_timestamp(now_unix() + 90 * 86_400).expect("date");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
}

fn first_der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).next().expect("a certificate").expect("pem").to_vec()
}

/// The certificate the server presents to a new connection (DER).
async fn presented_certificate(addr: &str, ca_file: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls::pki_types::CertificateDer::pem_file_iter(ca_file).expect("ca") {
        roots.add(ca.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec()
}

fn start_server(data_dir: &Path, secret: &SecretVolume, ca_file: &Path) -> Server {
    let mut command = Command::new(bin("kplan-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--tls-cert")
        .arg(secret.path("tls.crt"))
        .arg("--tls-key")
        .arg(secret.path("tls.key"))
        .arg("--client-ca")
        .arg(ca_file)
        .arg("--token-file")
        .arg(secret.path("tokens"))
        .env("KPLAN_LOG_FORMAT", "json")
        .env("KPLAN_SERVER_TLS_RELOAD_INTERVAL_SECONDS", "1");
    start_server_with(&mut command, data_dir)
}

async fn list_clusters(addr: &str, security: &ClientSecurity) -> Result<Vec<(String, u64)>, tonic::Status> {
    let channel =
        security.connect(&format!("https://{addr}")).await.map_err(|err| tonic::Status::unknown(err.to_string()))?;
    let mut client = v1::query_service_client::QueryServiceClient::new(channel);
    let reply = client.list_clusters(v1::ListClustersRequest::default()).await?;
    Ok(reply.into_inner().clusters.into_iter().map(|c| (c.cluster_id, c.generation)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_tokens_are_reloaded_without_a_restart() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca_dir = pki.path().join("ca");
    let certs = pki.path().join("certs");
    let ca_dir_s = ca_dir.display().to_string();
    kplan_certs(&["init", "--out", &ca_dir_s, "--server-host", "localhost", "--server-host", "127.0.0.1"]);
    for cluster in ["cluster-a", "cluster-b"] {
        kplan_certs(&["issue", "--ca-dir", &ca_dir_s, "--cluster", cluster, "--out", &certs.display().to_string()]);
    }
    let old_token = pki.path().join("old.token");
    let new_token = pki.path().join("new.token");
    let old_line = kplan_certs(&["token", "--reader", "dashboards", "--out", &old_token.display().to_string()]);
    let new_line = kplan_certs(&["token", "--reader", "dashboards", "--out", &new_token.display().to_string()]);
    let ca_file = ca_dir.join("ca.crt");

    let (cert1, key1) = server_certificate(&ca_dir, 1001);
    let mut secret = SecretVolume::new(
        &pki.path().join("secret"),
        &[("tls.crt", cert1.clone()), ("tls.key", key1), ("tokens", old_line.into_bytes())],
    );
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_server(data.path(), &secret, &ca_file);
    let addr = server.addr.clone();
    assert_eq!(presented_certificate(&addr, &ca_file).await, first_der(&cert1), "the first certificate");

    // An agent reports throughout, a new connection for every report.
    let agent = ClientSecurity {
        ca_file: Some(ca_file.clone()),
        cert_file: Some(certs.join("cluster-a.crt")),
        key_file: Some(certs.join("cluster-a.key")),
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let reporter = {
        let (stop, acknowledged, addr, agent) = (stop.clone(), acknowledged.clone(), addr.clone(), agent.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut generation = 0;
            while !stop.load(Ordering::SeqCst) {
                generation += 1;
                let outcome = async {
                    let channel = agent.connect(&format!("https://{addr}")).await.map_err(|e| e.to_string())?;
                    let mut client = v1::inventory_service_client::InventoryServiceClient::new(channel);
                    let request =
                        v1::ReportSnapshotRequest { snapshot: Some(small_snapshot("cluster-a", generation).into()) };
                    client.report_snapshot(request).await.map_err(|e| e.to_string())
                }
                .await;
                match outcome {
                    Ok(_) => acknowledged.store(generation, Ordering::SeqCst),
                    Err(err) => failures.push(err),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_swap = acknowledged.load(Ordering::SeqCst);
    assert!(before_swap > 0, "reports are acknowledged before the swap");
    let reader_old =
        ClientSecurity { ca_file: Some(ca_file.clone()), token_file: Some(old_token.clone()), ..Default::default() };
    let reader_new =
        ClientSecurity { ca_file: Some(ca_file.clone()), token_file: Some(new_token.clone()), ..Default::default() };
    assert!(list_clusters(&addr, &reader_old).await.is_ok(), "the old token works before the swap");
    assert_eq!(list_clusters(&addr, &reader_new).await.expect_err("not yet").code(), tonic::Code::Unauthenticated);

    // A connection made before the update, used after it: open connections keep theirs.
    let agent_b = ClientSecurity {
        ca_file: Some(ca_file.clone()),
        cert_file: Some(certs.join("cluster-b.crt")),
        key_file: Some(certs.join("cluster-b.key")),
        ..Default::default()
    };
    let mut long_lived = v1::inventory_service_client::InventoryServiceClient::new(
        agent_b.connect(&format!("https://{addr}")).await.expect("connects"),
    );
    long_lived
        .report_snapshot(v1::ReportSnapshotRequest { snapshot: Some(small_snapshot("cluster-b", 1).into()) })
        .await
        .expect("cluster-b reports");

    // The Secret is updated: a new certificate (new serial, new key) and a new token file.
    let (cert2, key2) = server_certificate(&ca_dir, 2002);
    secret.update(&[("tls.crt", cert2.clone()), ("tls.key", key2), ("tokens", new_line.into_bytes())]);
    let swapped = Instant::now();
    loop {
        if presented_certificate(&addr, &ca_file).await == first_der(&cert2) {
            break;
        }
        assert!(swapped.elapsed() < Duration::from_secs(15), "a new connection still gets the old certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reload_seconds = swapped.elapsed().as_secs_f64();
    // The token file changed in the same update: the old token is refused, the new one accepted.
    loop {
        let old = list_clusters(&addr, &reader_old).await;
        let new = list_clusters(&addr, &reader_new).await;
        if matches!(&old, Err(s) if s.code() == tonic::Code::Unauthenticated) && new.is_ok() {
            break;
        }
        assert!(swapped.elapsed() < Duration::from_secs(15), "tokens not reloaded: old {old:?}, new {new:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_swap = acknowledged.load(Ordering::SeqCst);
    long_lived
        .report_snapshot(v1::ReportSnapshotRequest { snapshot: Some(small_snapshot("cluster-b", 2).into()) })
        .await
        .expect("the connection made before the update still serves");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let failures = reporter.await.expect("reporter");
    let last = acknowledged.load(Ordering::SeqCst);
    assert!(last > at_swap, "reports are acknowledged after the swap ({at_swap} then {last})");

    // Every acknowledged report is stored: generations go up one by one and a
    // stale generation is refused, so the stored generation is the last one
    // acknowledged, and every report after a failed one was acknowledged in order.
    let clusters = list_clusters(&addr, &reader_new).await.expect("lists");
    assert_eq!(clusters, vec![("cluster-a".to_string(), last), ("cluster-b".to_string(), 2)], "failures: {failures:?}");
    // The same process: no restart.
    assert!(server_pid_alive(&server));

    let (status, page) = http_get(&server.metrics_addr, "/metrics");
    assert_eq!(status, 200);
    let expiry = metric_value(&page, "kplan_tls_certificate_expiry_timestamp_seconds").expect("expiry metric");
    assert!((expiry - (now_unix() + 90 * 86_400) as f64).abs() < 120.0, "the new certificate's notAfter: {expiry}");
    for file in ["cert", "key", "token"] {
        let sample = format!(r#"kplan_tls_reloads_total{{file="{file}",result="success"}}"#);
        assert!(metric_value(&page, &sample).unwrap_or(0.0) >= 1.0, "{sample}:\n{page}");
        let sample = format!(r#"kplan_tls_last_reload_success{{file="{file}"}}"#);
        assert_eq!(metric_value(&page, &sample), Some(1.0), "{sample}");
    }

    tls_alerts_use_exported_metrics(&page);

    // An invalid update (a key that is not the certificate's) keeps the current certificate.
    let (_, stray_key) = server_certificate(&ca_dir, 3003);
    let tokens = std::fs::read(secret.path("tokens")).expect("tokens");
    secret.update(&[("tls.crt", cert2.clone()), ("tls.key", stray_key), ("tokens", tokens)]);
    let refused = Instant::now();
    loop {
        let (_, page) = http_get(&server.metrics_addr, "/metrics");
        if metric_value(&page, r#"kplan_tls_last_reload_success{file="key"}"#) == Some(0.0) {
            break;
        }
        assert!(refused.elapsed() < Duration::from_secs(15), "the bad key was not noticed:\n{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(presented_certificate(&addr, &ca_file).await, first_der(&cert2), "the valid certificate stays");
    assert!(list_clusters(&addr, &reader_new).await.is_ok(), "the server still serves");
    println!(
        "reports acknowledged: {last} ({before_swap} before the swap), failed attempts: {}, \
         new certificate seen {reload_seconds:.2} s after the swap",
        failures.len()
    );
}

/// The `kplan-tls` alerts of `deploy/monitoring/prometheusrule.yaml` read only
/// metrics a TLS server exports (`page`).
fn tls_alerts_use_exported_metrics(page: &str) {
    let path = common::repo_root().join("deploy/monitoring/prometheusrule.yaml");
    let rules: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).expect("reads")).expect("YAML");
    let group = rules["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "kplan-tls")
        .expect("the kplan-tls group");
    let alerts = group["rules"].as_array().expect("rules");
    let names: Vec<&str> = alerts.iter().map(|a| a["alert"].as_str().expect("name")).collect();
    assert_eq!(names, ["KplanTLSCertificateExpiresSoon", "KplanTLSReloadFailing"]);
    let exported: std::collections::BTreeSet<&str> =
        page.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    for alert in alerts {
        assert!(alert["for"].is_string() && alert["annotations"]["summary"].is_string(), "{alert}");
        let text = format!("{} {}", alert["expr"].as_str().expect("expr"), alert["annotations"]["description"]);
        for (at, _) in text.match_indices("kplan_tls_") {
            let name: String =
                text[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            assert!(exported.contains(name.as_str()), "{name} is not exported: {exported:?}");
        }
    }
}

fn server_pid_alive(server: &Server) -> bool {
    Path::new(&format!("/proc/{}", server.child.id())).exists()
}
