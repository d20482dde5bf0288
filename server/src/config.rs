//! `kplan-server` configuration: defaults < file (`--config`) < `KPLAN_SERVER_*`
//! environment variables < flags. A bad configuration is reported whole, before
//! any port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tls::{TlsMaterial, TlsPaths, TokenTable, TransportSecurity};

/// Everything `kplan-server` can be told. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC listen address. Default `127.0.0.1:7470`.
    pub listen: String,
    /// Directory of the sled store. Default `./kplan-data`.
    pub data_dir: PathBuf,
    /// Policy file used for plans proposed without a policy and for capacity
    /// thresholds. Default: none (built-in policy defaults).
    pub policy_file: Option<PathBuf>,
    /// Largest accepted gRPC message, decoded and decompressed. Default 64 MiB.
    pub max_message_bytes: usize,
    /// Per-request timeout in seconds. Default 300 (plans of large estates take time).
    pub request_timeout_seconds: u64,
    /// Requests served at once, over all connections; more are refused at once
    /// with RESOURCE_EXHAUSTED (load shedding, no queue). Default 256.
    pub max_concurrent_requests: usize,
    /// Prometheus metrics and HTTP probes (`/metrics`, `/healthz`, `/readyz`).
    /// Default `127.0.0.1:9470`; empty disables.
    pub metrics_listen: String,
    /// Every snapshot is kept this many days; older history is thinned to one
    /// snapshot per cluster per day (for quarterly trends). Default 7.
    pub history_keep_all_days: u64,
    /// The store's page cache in MiB (sled's own default is 1024, which alone
    /// outgrows a 512 MiB pod limit during ingest). Default 128 (BENCHMARKS.md).
    pub store_cache_mib: u64,
    /// An approved plan's cluster whose newest report is older than this many
    /// seconds has stopped reporting (`kplan plans status`, the
    /// `kplan_plan_silent_clusters` metric; a retired source that stops
    /// reporting is done). Default 3600.
    pub watch_stale_after_seconds: u64,
    /// At least this many milliseconds between two re-check runs of the
    /// approved plans (each run re-checks every plan a report touched since the
    /// last): what the re-checks may take of the CPU reports need. Default 1000.
    pub watch_recheck_interval_ms: u64,
    /// A wave of an approved plan in progress (begun, not done) for longer than
    /// this many seconds has stalled (`kplan_plan_waves_stalled`, the
    /// `KplanPlanWaveStalled` alert): the change policy's pace. Default 259200 (3 days).
    pub watch_wave_stall_seconds: u64,
    /// Caps on one snapshot (`[validation]`): nodes, namespaces, labels per object.
    pub validation: kplan_store::validation::ValidationLimits,
    /// Mutual TLS on the gRPC port (`[tls]`). Required unless `insecure_plaintext`.
    pub tls: TlsFiles,
    /// Bearer tokens of readers and planners: lines `ROLE NAME SHA256-HEX`
    /// (`kplan certs token` makes one). Needs `[tls]`. Default: none.
    pub token_file: Option<PathBuf>,
    /// Serve gRPC in plaintext, without authentication: every caller may do
    /// everything. Only for a trusted test network; logged as a warning. Default false.
    pub insecure_plaintext: bool,
    /// A TLS handshake not finished within this many seconds is dropped. Default 10.
    pub tls_handshake_timeout_seconds: u64,
    /// How often the TLS files and the token file are checked for changes (by
    /// content hash) and reloaded without a restart; new connections use the
    /// new certificate. Default 5.
    pub tls_reload_interval_seconds: u64,
    /// HTTP/2 PING interval on every connection (dead peers are noticed). Default 30.
    pub http2_keepalive_interval_seconds: u64,
    /// A PING unanswered this long closes the connection. Default 20.
    pub http2_keepalive_timeout_seconds: u64,
    /// TCP keepalive of accepted connections (firewalls drop idle flows). Default 60.
    pub tcp_keepalive_seconds: u64,
}

/// `[tls]`: the server's certificate and key, and the CA bundle (one or more PEM
/// certificates: old and new during a CA rotation) that client certificates
/// must chain to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsFiles {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none() && self.client_ca_file.is_none()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:7470".to_string(),
            data_dir: PathBuf::from("kplan-data"),
            policy_file: None,
            max_message_bytes: 64 << 20,
            request_timeout_seconds: 300,
            max_concurrent_requests: 256,
            history_keep_all_days: 7,
            store_cache_mib: 128,
            watch_stale_after_seconds: 3600,
            watch_recheck_interval_ms: 1000,
            watch_wave_stall_seconds: 259_200,
            validation: kplan_store::validation::ValidationLimits::default(),
            metrics_listen: "127.0.0.1:9470".to_string(),
            tls: TlsFiles::default(),
            token_file: None,
            insecure_plaintext: false,
            tls_handshake_timeout_seconds: 10,
            tls_reload_interval_seconds: 5,
            http2_keepalive_interval_seconds: 30,
            http2_keepalive_timeout_seconds: 20,
            tcp_keepalive_seconds: 60,
        }
    }
}

/// Values given on the command line; they override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct ServerOverrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub metrics_listen: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    /// `--insecure-plaintext` (a flag can only turn it on).
    pub insecure_plaintext: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ServerConfig {
    /// Loads the layers and checks the result, reporting every problem at once.
    pub fn load(file: Option<&Path>, overrides: &ServerOverrides) -> Result<ServerConfig, ConfigError> {
        let cfg = Self::load_layers(file, overrides)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Loads the layers without the semantic checks: for the offline commands
    /// (`backup`, `restore`) that need only the data directory, not the TLS files.
    pub fn load_layers(file: Option<&Path>, overrides: &ServerOverrides) -> Result<ServerConfig, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError { problems: vec![format!("config file {}: not found", file.display())] });
            }
            builder = builder.add_source(config::File::from(file));
        }
        builder =
            builder.add_source(config::Environment::with_prefix("KPLAN_SERVER").prefix_separator("_").separator("__"));
        let source = file.map_or("environment".to_string(), |f| f.display().to_string());
        let mut cfg: ServerConfig = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError { problems: vec![format!("{source}: {e}")] })?;
        if let Some(listen) = &overrides.listen {
            cfg.listen = listen.clone();
        }
        if let Some(dir) = &overrides.data_dir {
            cfg.data_dir = dir.clone();
        }
        if let Some(metrics) = &overrides.metrics_listen {
            cfg.metrics_listen = metrics.clone();
        }
        if let Some(file) = &overrides.tls_cert_file {
            cfg.tls.cert_file = Some(file.clone());
        }
        if let Some(file) = &overrides.tls_key_file {
            cfg.tls.key_file = Some(file.clone());
        }
        if let Some(file) = &overrides.client_ca_file {
            cfg.tls.client_ca_file = Some(file.clone());
        }
        if let Some(file) = &overrides.token_file {
            cfg.token_file = Some(file.clone());
        }
        cfg.insecure_plaintext |= overrides.insecure_plaintext;
        Ok(cfg)
    }

    /// Semantic checks; every problem is collected.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!("listen: {:?} is not an address like 127.0.0.1:7470", self.listen));
        }
        if let Some(Err(_)) = crate::metrics::listen_addr(&self.metrics_listen) {
            problems.push(format!(
                "metrics_listen: {:?} is not an address like 127.0.0.1:9470 (or empty)",
                self.metrics_listen
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir: must not be empty".to_string());
        }
        if let Some(policy) = &self.policy_file
            && !policy.is_file()
        {
            problems.push(format!("policy_file: {} does not exist", policy.display()));
        }
        if self.max_message_bytes < 1024 {
            problems.push(format!("max_message_bytes: {} is below the minimum of 1024", self.max_message_bytes));
        }
        if self.watch_wave_stall_seconds == 0 {
            problems.push("watch_wave_stall_seconds: 0; give a positive number of seconds".to_string());
        }
        if self.watch_stale_after_seconds == 0 {
            problems.push("watch_stale_after_seconds: 0; give a positive number of seconds".to_string());
        }
        if self.store_cache_mib < 16 {
            problems.push(format!("store_cache_mib: {} is below the minimum of 16", self.store_cache_mib));
        }
        if self.request_timeout_seconds == 0 {
            problems.push("request_timeout_seconds: must be at least 1".to_string());
        }
        if self.max_concurrent_requests == 0 {
            problems.push("max_concurrent_requests: must be at least 1".to_string());
        }
        for (key, value) in [
            ("tls_handshake_timeout_seconds", self.tls_handshake_timeout_seconds),
            ("tls_reload_interval_seconds", self.tls_reload_interval_seconds),
            ("http2_keepalive_interval_seconds", self.http2_keepalive_interval_seconds),
            ("http2_keepalive_timeout_seconds", self.http2_keepalive_timeout_seconds),
            ("tcp_keepalive_seconds", self.tcp_keepalive_seconds),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        problems.extend(self.validation.problems());
        if let Err(security) = self.security() {
            problems.extend(security.problems);
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
    }

    /// How the gRPC port is protected, with the TLS and token files read and
    /// checked. Exactly one of `[tls]` and `insecure_plaintext` must be given.
    pub fn security(&self) -> Result<TransportSecurity, ConfigError> {
        let mut problems = Vec::new();
        if self.insecure_plaintext {
            if !self.tls.is_empty() {
                problems.push("insecure_plaintext: give either [tls] or insecure_plaintext, not both".to_string());
            }
            if self.token_file.is_some() {
                problems.push(
                    "token_file: bearer tokens must not travel in clear; it needs [tls], not insecure_plaintext"
                        .to_string(),
                );
            }
            return if problems.is_empty() {
                Ok(TransportSecurity::InsecurePlaintext)
            } else {
                Err(ConfigError { problems })
            };
        }
        if self.tls.is_empty() {
            return Err(ConfigError {
                problems: vec![
                    "no transport security: set [tls] cert_file, key_file and client_ca_file (--tls-cert, \
                     --tls-key, --client-ca; `kplan certs init` and `kplan certs issue` make them), or serve \
                     plaintext without authentication on a trusted network with --insecure-plaintext \
                     (insecure_plaintext = true)"
                        .to_string(),
                ],
            });
        }
        let missing = |key: &str, what: &str| format!("tls.{key}: missing ({what})");
        let cert_file = self.tls.cert_file.as_deref();
        let key_file = self.tls.key_file.as_deref();
        let client_ca_file = self.tls.client_ca_file.as_deref();
        if cert_file.is_none() {
            problems.push(missing("cert_file", "the server's certificate, PEM"));
        }
        if key_file.is_none() {
            problems.push(missing("key_file", "the server's private key, PEM"));
        }
        if client_ca_file.is_none() {
            problems.push(missing("client_ca_file", "the CA bundle client certificates must chain to, PEM"));
        }
        let tokens = match &self.token_file {
            Some(path) => TokenTable::load(path).map_err(|more| problems.extend(more)).ok(),
            None => None,
        };
        let (Some(cert_file), Some(key_file), Some(client_ca_file)) = (cert_file, key_file, client_ca_file) else {
            return Err(ConfigError { problems });
        };
        let now = kplan_model::time::now_unix();
        let material = TlsMaterial::load(TlsPaths { cert_file, key_file, client_ca_file }, now)
            .map_err(|more| problems.extend(more))
            .ok();
        match material {
            Some(material) if problems.is_empty() => {
                let paths = crate::tls_reload::TlsFilePaths {
                    cert_file: cert_file.to_path_buf(),
                    key_file: key_file.to_path_buf(),
                    client_ca_file: client_ca_file.to_path_buf(),
                    token_file: self.token_file.clone(),
                };
                Ok(TransportSecurity::MutualTls { material, tokens, paths })
            }
            _ => Err(ConfigError { problems }),
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // checked in `check`
        self.listen.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7470)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\ninsecure_plaintext = true\n")
            .expect("writes");
        let cfg = ServerConfig::load(Some(&file), &ServerOverrides::default()).expect("loads");
        assert_eq!(cfg.listen, "127.0.0.1:9000");
        let cfg = ServerConfig::load(
            Some(&file),
            &ServerOverrides { listen: Some("127.0.0.1:9001".into()), ..Default::default() },
        )
        .expect("loads");
        assert_eq!(cfg.listen, "127.0.0.1:9001");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn every_problem_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "listen = \"nowhere\"\nrequest_timeout_seconds = 0\nmax_message_bytes = 3\ninsecure_plaintext = true\n",
        )
        .expect("writes");
        let err = ServerConfig::load(Some(&file), &ServerOverrides::default()).expect_err("is bad");
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").expect("writes");
        let err = ServerConfig::load(Some(&file), &ServerOverrides::default()).expect_err("is bad");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn transport_security_is_chosen_explicitly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n").expect("writes");
        let err = ServerConfig::load(Some(&file), &ServerOverrides::default()).expect_err("neither");
        assert!(err.to_string().contains("no transport security") && err.to_string().contains("--insecure-plaintext"));
        let flag = ServerOverrides { insecure_plaintext: true, ..Default::default() };
        let cfg = ServerConfig::load(Some(&file), &flag).expect("plaintext when asked for");
        assert!(matches!(cfg.security(), Ok(TransportSecurity::InsecurePlaintext)));

        // Both, and a token file over plaintext: refused together.
        let both = ServerOverrides {
            insecure_plaintext: true,
            tls_cert_file: Some(dir.path().join("server.crt")),
            token_file: Some(dir.path().join("tokens")),
            ..Default::default()
        };
        let err = ServerConfig::load(Some(&file), &both).expect_err("both");
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn tls_problems_are_reported_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.toml");
        std::fs::write(dir.path().join("server.crt"), "not a certificate").expect("writes");
        std::fs::write(dir.path().join("tokens"), "agent fra-prod-1 abc\n").expect("writes");
        std::fs::write(
            &file,
            format!(
                "token_file = \"{0}/tokens\"\n[tls]\ncert_file = \"{0}/server.crt\"\nkey_file = \"{0}/server.key\"\n",
                dir.path().display()
            ),
        )
        .expect("writes");
        let err = ServerConfig::load(Some(&file), &ServerOverrides::default()).expect_err("bad");
        let text = err.to_string();
        assert!(text.contains("tls.client_ca_file: missing"), "{text}");
        assert!(text.contains("token_file") && text.contains("line 1"), "{text}");
        // The files are only read once all three are named.
        let flags = ServerOverrides { client_ca_file: Some(dir.path().join("ca.crt")), ..Default::default() };
        let text = ServerConfig::load(Some(&file), &flags).expect_err("bad").to_string();
        assert!(text.contains("tls.cert_file") && text.contains("no PEM certificate"), "{text}");
        assert!(text.contains("tls.key_file") && text.contains("server.key"), "{text}");
        assert!(text.contains("tls.client_ca_file") && text.contains("ca.crt"), "{text}");
    }
}
