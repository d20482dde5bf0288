//! `kplan-server` configuration: defaults < file (`--config`) < `KPLAN_SERVER_*`
//! environment variables < flags. A bad configuration is reported whole, before
//! any port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// Requests served at once; more are refused with RESOURCE_EXHAUSTED. Default 256.
    pub max_concurrent_requests: usize,
    /// Prometheus metrics and HTTP probes (`/metrics`, `/healthz`, `/readyz`).
    /// Default `127.0.0.1:9470`; empty disables.
    pub metrics_listen: String,
    /// Every snapshot is kept this many days; older history is thinned to one
    /// snapshot per cluster per day (for quarterly trends). Default 7.
    pub history_keep_all_days: u64,
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
            metrics_listen: "127.0.0.1:9470".to_string(),
        }
    }
}

/// Values given on the command line; they override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct ServerOverrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub metrics_listen: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ServerConfig {
    /// Loads the layers and checks the result, reporting every problem at once.
    pub fn load(file: Option<&Path>, overrides: &ServerOverrides) -> Result<ServerConfig, ConfigError> {
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
        cfg.check()?;
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
        if self.request_timeout_seconds == 0 {
            problems.push("request_timeout_seconds: must be at least 1".to_string());
        }
        if self.max_concurrent_requests == 0 {
            problems.push("max_concurrent_requests: must be at least 1".to_string());
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
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
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n").expect("writes");
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
        std::fs::write(&file, "listen = \"nowhere\"\nrequest_timeout_seconds = 0\nmax_message_bytes = 3\n")
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
}
