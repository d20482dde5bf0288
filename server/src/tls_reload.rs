//! TLS termination that follows the files on disk: a Kubernetes Secret update
//! (new certificate, new client CA, new token file) takes effect without a restart.
//!
//! - [`build_server_config`]: the rustls configuration of [`TlsMaterial`]
//!   (mutual TLS; client certificates optional when tokens are accepted).
//! - [`tls_incoming`]: accepts TCP connections and runs each TLS handshake on
//!   its own task with the *current* configuration; the handshaken
//!   `tokio_rustls` streams go to tonic (`serve_with_incoming_shutdown`), whose
//!   `Connected` impl puts the peer certificates in every request's extensions
//!   (`TlsConnectInfo::peer_certs`), as before. Existing connections keep the
//!   configuration they were made with. A failed handshake only drops its
//!   connection; an accept error is logged and retried after 50 ms.
//! - [`TlsReloader`]: polls the certificate, key, client CA and token files
//!   every `tls_reload_interval_seconds` by content hash (SHA-256). On a change
//!   it parses them and swaps the configuration (or the token table) only if
//!   they are valid; otherwise the old one stays and the error names the file.
//!   Metrics: `kplan_tls_certificate_expiry_timestamp_seconds`,
//!   `kplan_tls_reloads_total{file,result}`, `kplan_tls_last_reload_success{file}`.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::tls::{TlsMaterial, TlsPaths, TokenTable};

/// The files of the server's transport security, watched for changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFilePaths {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: PathBuf,
    pub token_file: Option<PathBuf>,
}

/// The `file` label of the reload metrics.
pub const FILE_LABELS: [&str; 4] = ["cert", "key", "client_ca", "token"];

/// The current rustls configuration; new connections read it, the reloader replaces it.
#[derive(Clone)]
pub struct SharedServerConfig(Arc<RwLock<Arc<rustls::ServerConfig>>>);

impl std::fmt::Debug for SharedServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedServerConfig").finish_non_exhaustive()
    }
}

impl SharedServerConfig {
    pub fn new(config: Arc<rustls::ServerConfig>) -> SharedServerConfig {
        SharedServerConfig(Arc::new(RwLock::new(config)))
    }

    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn replace(&self, config: Arc<rustls::ServerConfig>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = config;
    }
}

/// The current bearer tokens; every request reads them, the reloader replaces them.
#[derive(Clone, Default)]
pub struct SharedTokens(Arc<RwLock<Arc<TokenTable>>>);

impl std::fmt::Debug for SharedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

impl SharedTokens {
    pub fn new(table: TokenTable) -> SharedTokens {
        SharedTokens(Arc::new(RwLock::new(Arc::new(table))))
    }

    pub fn current(&self) -> Arc<TokenTable> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn replace(&self, table: TokenTable) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }
}

/// The rustls configuration of the server's files: its certificate chain and
/// key (a key that is not the certificate's is refused), every certificate of
/// the client CA bundle as a trust anchor, HTTP/2 only.
pub fn build_server_config(
    material: &TlsMaterial,
    client_auth_optional: bool,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(&material.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("tls.cert_file: not PEM certificates ({err})"))?;
    let key = PrivateKeyDer::from_pem_slice(&material.key_pem)
        .map_err(|err| format!("tls.key_file: not a PEM private key ({err})"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&material.client_ca_pem) {
        let ca = ca.map_err(|err| format!("tls.client_ca_file: not PEM certificates ({err})"))?;
        roots.add(ca).map_err(|err| format!("tls.client_ca_file: not a CA certificate ({err})"))?;
    }
    let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if client_auth_optional {
        // With a token file, a client may come without a certificate and show a
        // token instead; a certificate it does show is still verified here.
        verifier = verifier.allow_unauthenticated();
    }
    let verifier = verifier.build().map_err(|err| format!("tls.client_ca_file: {err}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("tls: {err}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|err| format!("tls.cert_file and tls.key_file do not make a TLS identity: {err}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// How accepted connections are set up.
#[derive(Debug, Clone, Copy)]
pub struct AcceptOptions {
    pub handshake_timeout: Duration,
    pub tcp_keepalive: Duration,
}

/// The handshaken TLS connections of `listener`, for tonic. Stops accepting
/// when the stream is dropped (tonic's shutdown).
pub fn tls_incoming(
    listener: TcpListener,
    config: SharedServerConfig,
    options: AcceptOptions,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let _accepting = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = sender.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: never fatal.
                    warn!(error = %err, "tcp accept error; retrying in 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let keepalive = socket2::TcpKeepalive::new().with_time(options.tcp_keepalive);
            let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
            // The configuration current at accept time: a reload applies to new connections only.
            let acceptor = tokio_rustls::TlsAcceptor::from(config.current());
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(options.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = sender.send(Ok(tls)).await;
                    }
                    // The security tests read this line (rustls' reason).
                    Ok(Err(err)) => debug!(error = %err, remote = %remote, "tls accept error"),
                    Err(_) => debug!(error = "handshake timed out", remote = %remote, "tls accept error"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Watches the TLS and token files and swaps what changed, if it is valid.
#[derive(Debug)]
pub struct TlsReloader {
    paths: TlsFilePaths,
    config: SharedServerConfig,
    tokens: Option<SharedTokens>,
    metrics: Option<Arc<Metrics>>,
    /// SHA-256 of each file's content when last looked at (`None`: unreadable).
    hashes: [Option<[u8; 32]>; 4],
}

fn file_hash(path: &std::path::Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    <[u8; 32]>::try_from(digest.as_ref()).ok()
}

impl TlsReloader {
    /// `material` and `tokens` are what the server starts with (already checked).
    pub fn new(
        paths: TlsFilePaths,
        material: &TlsMaterial,
        config: SharedServerConfig,
        tokens: Option<SharedTokens>,
        metrics: Option<Arc<Metrics>>,
    ) -> TlsReloader {
        let mut reloader = TlsReloader { paths, config, tokens, metrics, hashes: [None; 4] };
        reloader.hashes = reloader.current_hashes();
        if let Some(metrics) = &reloader.metrics {
            metrics.set_tls_certificate_expiry(material.not_after_unix);
            for (idx, file) in FILE_LABELS.iter().enumerate() {
                if idx < 3 || reloader.tokens.is_some() {
                    metrics.tls_reloaded(file, None);
                }
            }
        }
        reloader
    }

    fn current_hashes(&self) -> [Option<[u8; 32]>; 4] {
        [
            file_hash(&self.paths.cert_file),
            file_hash(&self.paths.key_file),
            file_hash(&self.paths.client_ca_file),
            self.paths.token_file.as_deref().and_then(file_hash),
        ]
    }

    fn path_of(&self, idx: usize) -> String {
        match idx {
            0 => self.paths.cert_file.display().to_string(),
            1 => self.paths.key_file.display().to_string(),
            2 => self.paths.client_ca_file.display().to_string(),
            _ => self.paths.token_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        }
    }

    /// One look at the files; reloads what changed. Returns the files reloaded
    /// successfully and those refused (by their metric label).
    pub fn poll_once(&mut self) -> (Vec<&'static str>, Vec<&'static str>) {
        let hashes = self.current_hashes();
        let changed: Vec<usize> = (0..4).filter(|idx| hashes[*idx] != self.hashes[*idx]).collect();
        self.hashes = hashes;
        let (mut reloaded, mut refused) = (Vec::new(), Vec::new());
        let tls_changed: Vec<usize> = changed.iter().copied().filter(|idx| *idx < 3).collect();
        if !tls_changed.is_empty() {
            let files: Vec<String> = tls_changed.iter().map(|idx| self.path_of(*idx)).collect();
            let paths = TlsPaths {
                cert_file: &self.paths.cert_file,
                key_file: &self.paths.key_file,
                client_ca_file: &self.paths.client_ca_file,
            };
            let outcome = TlsMaterial::load(paths, kplan_model::time::now_unix())
                .map_err(|problems| problems.join("; "))
                .and_then(|material| {
                    build_server_config(&material, self.tokens.is_some()).map(|config| (material, config))
                });
            match outcome {
                Ok((material, config)) => {
                    self.config.replace(config);
                    info!(
                        files = files.join(","),
                        not_after = kplan_model::time::utc_readable(material.not_after_unix),
                        n_client_cas = material.n_client_cas,
                        "tls files reloaded; new connections use them"
                    );
                    if let Some(metrics) = &self.metrics {
                        metrics.set_tls_certificate_expiry(material.not_after_unix);
                    }
                    reloaded.extend(tls_changed.iter().map(|idx| FILE_LABELS[*idx]));
                }
                Err(err) => {
                    error!(
                        files = files.join(","),
                        error = %err,
                        "tls files changed but are not valid; the previous certificate stays in use"
                    );
                    refused.extend(tls_changed.iter().map(|idx| FILE_LABELS[*idx]));
                }
            }
        }
        if changed.contains(&3)
            && let (Some(tokens), Some(path)) = (&self.tokens, &self.paths.token_file)
        {
            match TokenTable::load(path) {
                Ok(table) => {
                    info!(file = %path.display(), n_tokens = table.len(), "token file reloaded");
                    tokens.replace(table);
                    reloaded.push("token");
                }
                Err(problems) => {
                    error!(
                        file = %path.display(),
                        error = problems.join("; "),
                        "token file changed but is not valid; the previous tokens stay in use"
                    );
                    refused.push("token");
                }
            }
        }
        if let Some(metrics) = &self.metrics {
            for file in &reloaded {
                metrics.tls_reloaded(file, Some(true));
            }
            for file in &refused {
                metrics.tls_reloaded(file, Some(false));
            }
        }
        (reloaded, refused)
    }

    /// Polls every `interval` until the task is aborted (file reads on a blocking thread).
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let reloader = Arc::new(std::sync::Mutex::new(self));
        tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let reloader = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    reloader.lock().unwrap_or_else(PoisonError::into_inner).poll_once();
                })
                .await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
        ca: rcgen::Issuer<'static, rcgen::KeyPair>,
        ca_pem: String,
    }

    impl Files {
        fn new() -> Files {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut params = rcgen::CertificateParams::default();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
            let key = rcgen::KeyPair::generate().expect("key");
            let ca_pem = params.self_signed(&key).expect("ca").pem();
            let files = Files { dir, ca: rcgen::Issuer::new(params, key), ca_pem };
            std::fs::write(files.path("ca.crt"), &files.ca_pem).expect("writes");
            files.issue(1);
            std::fs::write(files.path("tokens"), format!("reader a {}\n", crate::tls::token_sha256_hex("t1")))
                .expect("writes");
            files
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn issue(&self, serial: u64) {
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
            params.serial_number = Some(rcgen::SerialNumber::from(serial));
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &self.ca).expect("cert");
            std::fs::write(self.path("server.crt"), cert.pem()).expect("writes");
            std::fs::write(self.path("server.key"), key.serialize_pem()).expect("writes");
        }

        fn paths(&self) -> TlsFilePaths {
            TlsFilePaths {
                cert_file: self.path("server.crt"),
                key_file: self.path("server.key"),
                client_ca_file: self.path("ca.crt"),
                token_file: Some(self.path("tokens")),
            }
        }

        fn material(&self) -> TlsMaterial {
            let paths = self.paths();
            TlsMaterial::load(
                TlsPaths {
                    cert_file: &paths.cert_file,
                    key_file: &paths.key_file,
                    client_ca_file: &paths.client_ca_file,
                },
                kplan_model::time::now_unix(),
            )
            .expect("valid")
        }
    }

    #[test]
    fn valid_changes_are_swapped_in_and_invalid_ones_keep_the_old_configuration() {
        let files = Files::new();
        let material = files.material();
        let shared = SharedServerConfig::new(build_server_config(&material, true).expect("config"));
        let tokens = SharedTokens::new(TokenTable::load(&files.path("tokens")).expect("tokens"));
        let metrics = Arc::new(Metrics::new());
        let mut reloader =
            TlsReloader::new(files.paths(), &material, shared.clone(), Some(tokens.clone()), Some(metrics.clone()));
        assert_eq!(reloader.poll_once(), (vec![], vec![]), "nothing changed");

        let before = shared.current();
        files.issue(2);
        assert_eq!(reloader.poll_once(), (vec!["cert", "key"], vec![]));
        assert!(!Arc::ptr_eq(&before, &shared.current()), "a new configuration");

        // A key that is not the certificate's: refused, the configuration stays.
        let before = shared.current();
        std::fs::write(files.path("server.key"), rcgen::KeyPair::generate().expect("key").serialize_pem())
            .expect("writes");
        assert_eq!(reloader.poll_once(), (vec![], vec!["key"]));
        assert!(Arc::ptr_eq(&before, &shared.current()), "the old configuration stays");
        std::fs::write(files.path("server.crt"), "garbage").expect("writes");
        assert_eq!(reloader.poll_once(), (vec![], vec!["cert"]));
        assert!(Arc::ptr_eq(&before, &shared.current()));

        assert!(tokens.current().verify("t1").is_some());
        std::fs::write(files.path("tokens"), "reader a not-a-hash\n").expect("writes");
        assert_eq!(reloader.poll_once(), (vec![], vec!["token"]));
        assert!(tokens.current().verify("t1").is_some(), "the old tokens stay");
        std::fs::write(files.path("tokens"), format!("planner b {}\n", crate::tls::token_sha256_hex("t2")))
            .expect("writes");
        assert_eq!(reloader.poll_once(), (vec!["token"], vec![]));
        assert!(tokens.current().verify("t1").is_none());
        assert!(tokens.current().verify("t2").is_some());

        files.issue(3);
        assert_eq!(reloader.poll_once(), (vec!["cert", "key"], vec![]));
        let text = metrics.render_registry();
        assert!(text.contains("kplan_tls_certificate_expiry_timestamp_seconds "), "{text}");
        assert!(text.contains(r#"kplan_tls_reloads_total{file="key",result="failure"} 1"#), "{text}");
        assert!(text.contains(r#"kplan_tls_reloads_total{file="cert",result="success"} 2"#), "{text}");
        assert!(text.contains(r#"kplan_tls_last_reload_success{file="cert"} 1"#), "{text}");
        assert!(text.contains(r#"kplan_tls_last_reload_success{file="token"} 1"#), "{text}");
    }
}
