//! `kplan-agent` configuration: defaults < file (`--config`, TOML or YAML) <
//! `KPLAN_AGENT_*` environment variables < flags. A bad configuration is
//! reported whole (every semantic problem at once) before anything connects
//! or binds a port; `main` exits 64 on it.
//!
//! Environment variables: `KPLAN_AGENT_` and the field name in upper case
//! (`KPLAN_AGENT_CLUSTER_ID`, `KPLAN_AGENT_DEBOUNCE_SECONDS`); nested fields
//! with `__` (`KPLAN_AGENT_LABELS__ZONE`); the label chains are
//! comma-separated lists (`KPLAN_AGENT_LABELS__ZONE=example.com/fw,topology.kubernetes.io/zone`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::collect::{CollectOptions, LabelKeys};

/// Everything `kplan-agent` can be told. Every field but `cluster_id` has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The cluster's id as the server knows it: lowercase letters, digits, `-`
    /// and `.`, at most 253 characters. Required.
    pub cluster_id: String,
    /// kplan-server's gRPC URL. Default `http://127.0.0.1:7470`.
    pub server: String,
    /// Datacenter of nodes without a datacenter label. Default: none (such a
    /// node is then an error, reported in the log, and no snapshot is sent).
    pub datacenter: Option<String>,
    /// Firewall zone of nodes without a zone label. Default: none (as above).
    pub zone: Option<String>,
    /// Security tier of namespaces without a tier label, and the cluster's own
    /// tier. Default: none (an unlabelled namespace is then an error).
    pub security_tier: Option<String>,
    /// Kubeconfig file. Default: none, which means the in-cluster service
    /// account when running in a pod, else `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context. Default: the kubeconfig's current context.
    pub context: Option<String>,
    /// Label keys of the label contract (README, "The label contract"). Default: the contract's keys.
    pub labels: LabelKeys,
    /// After a change that matters, wait this long (collecting further changes)
    /// before reporting: at most one change-driven report per interval. Default 10.
    pub debounce_seconds: f64,
    /// Report at least this often, changed or not. Default 300 (5 minutes).
    pub report_interval_seconds: f64,
    /// First delay before retrying a failed report; doubles per failure,
    /// jittered to between half and all of the doubled value. Default 1.
    pub retry_initial_seconds: f64,
    /// Cap of the retry delay. Default 60.
    pub retry_max_seconds: f64,
    /// Timeout of one report call to the server (connecting included). Default 30.
    pub request_timeout_seconds: f64,
    /// Address of the HTTP health endpoint (`/healthz`, `/readyz`). Default
    /// `0.0.0.0:7471`: the kubelet probes the pod's IP. Port 0 picks a free port.
    pub health_listen: String,
    /// Address of the Prometheus metrics endpoint (`/metrics`). Default
    /// `0.0.0.0:9471`; empty disables it. Port 0 picks a free port.
    pub metrics_listen: String,
    /// Objects per page of the initial lists (and relists). Default 500, as client-go.
    pub list_page_size: u32,
    /// Mutual TLS towards the server (`https://` URLs): the CA that signs the
    /// server's certificate, and this cluster's client certificate and key
    /// (its URI SAN `spiffe://kplan/cluster/<cluster_id>` is what the server
    /// believes). Env: `KPLAN_AGENT_TLS__CA_FILE`, ...
    pub tls: AgentTls,
    /// Report over plaintext `http://` without TLS (test machines only; logged
    /// as a warning). Default false: an `http://` server URL is then refused.
    pub insecure_plaintext: bool,
}

/// The agent's TLS files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name to check the server's certificate against, when it differs from the URL's host.
    pub server_name: Option<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            cluster_id: String::new(),
            server: "http://127.0.0.1:7470".to_string(),
            datacenter: None,
            zone: None,
            security_tier: None,
            kubeconfig: None,
            context: None,
            labels: LabelKeys::default(),
            debounce_seconds: 10.0,
            report_interval_seconds: 300.0,
            retry_initial_seconds: 1.0,
            retry_max_seconds: 60.0,
            request_timeout_seconds: 30.0,
            health_listen: "0.0.0.0:7471".to_string(),
            metrics_listen: "0.0.0.0:9471".to_string(),
            tls: AgentTls::default(),
            insecure_plaintext: false,
            list_page_size: 500,
        }
    }
}

/// Values given as flags; they override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct AgentOverrides {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster_id: Option<String>,
    pub server: Option<String>,
    pub datacenter: Option<String>,
    pub zone: Option<String>,
    pub security_tier: Option<String>,
    /// `--insecure-plaintext`: true overrides the file and the environment.
    pub insecure_plaintext: bool,
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

const ENV_PREFIX: &str = "KPLAN_AGENT";
const LIST_KEYS: [&str; 5] =
    ["labels.datacenter", "labels.zone", "labels.security_tier", "labels.sla_tier", "labels.control_plane"];

impl AgentConfig {
    /// Loads the layers from the process environment and checks the result.
    pub fn load(file: Option<&Path>, overrides: &AgentOverrides) -> Result<AgentConfig, ConfigError> {
        Self::load_with_env(file, None, overrides)
    }

    /// As [`load`](Self::load), with the environment given as a map (tests);
    /// `None` reads the process environment.
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
        overrides: &AgentOverrides,
    ) -> Result<AgentConfig, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError { problems: vec![format!("config file {}: not found", file.display())] });
            }
            builder = builder.add_source(config::File::from(file));
        }
        let mut environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .source(env);
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        builder = builder.add_source(environment);
        let source = file.map_or("environment".to_string(), |f| format!("{} (or the environment)", f.display()));
        let mut cfg: AgentConfig = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError { problems: vec![format!("{source}: {e}")] })?;
        cfg.apply(overrides);
        cfg.check()?;
        Ok(cfg)
    }

    fn apply(&mut self, overrides: &AgentOverrides) {
        let set = |target: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                target.clone_from(value);
            }
        };
        if let Some(cluster_id) = &overrides.cluster_id {
            self.cluster_id.clone_from(cluster_id);
        }
        if let Some(server) = &overrides.server {
            self.server.clone_from(server);
        }
        if overrides.kubeconfig.is_some() {
            self.kubeconfig.clone_from(&overrides.kubeconfig);
        }
        set(&mut self.context, &overrides.context);
        set(&mut self.datacenter, &overrides.datacenter);
        set(&mut self.zone, &overrides.zone);
        set(&mut self.security_tier, &overrides.security_tier);
        if overrides.insecure_plaintext {
            self.insecure_plaintext = true;
        }
    }

    /// Checks how the agent would reach the server: plaintext only when asked
    /// for, and the TLS files of an `https://` URL. Only the reporting mode
    /// calls it (`snapshot --out` talks to no server).
    pub fn check_transport(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Ok(uri) = self.server.parse::<http::Uri>() {
            if uri.scheme_str() == Some("http") && !self.insecure_plaintext {
                problems.push(format!(
                    "server: {:?} is plaintext: use https:// with [tls] ca_file, cert_file and key_file, or set \
                     insecure_plaintext (--insecure-plaintext) on a trusted test network",
                    self.server
                ));
            }
            if uri.scheme_str() == Some("https") {
                for (field, value) in [
                    ("tls.ca_file", &self.tls.ca_file),
                    ("tls.cert_file", &self.tls.cert_file),
                    ("tls.key_file", &self.tls.key_file),
                ] {
                    match value {
                        None => problems.push(format!("{field}: required for an https:// server")),
                        Some(path) if !path.is_file() => {
                            problems.push(format!("{field}: {} does not exist", path.display()))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
    }

    /// How the agent reaches the server (see `kplan_proto::tls`).
    pub fn client_security(&self) -> kplan_proto::tls::ClientSecurity {
        kplan_proto::tls::ClientSecurity {
            ca_file: self.tls.ca_file.clone(),
            cert_file: self.tls.cert_file.clone(),
            key_file: self.tls.key_file.clone(),
            token_file: None,
            server_name: self.tls.server_name.clone(),
            insecure_plaintext: self.insecure_plaintext,
        }
    }

    /// Semantic checks; every problem is collected.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.cluster_id.is_empty() {
            problems
                .push("cluster_id: required (--cluster-id, cluster_id in the file, or KPLAN_AGENT_CLUSTER_ID)".into());
        } else if !is_cluster_id(&self.cluster_id) {
            problems.push(format!(
                "cluster_id: {:?} is not a valid id (lowercase letters, digits, '-' and '.', starting and ending \
                 with a letter or digit, at most 253 characters)",
                self.cluster_id
            ));
        }
        match self.server.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => problems.push(format!("server: {:?} is not a URL like https://kplan.example:7470", self.server)),
        }
        for (field, value) in [
            ("datacenter", &self.datacenter),
            ("zone", &self.zone),
            ("security_tier", &self.security_tier),
            ("context", &self.context),
        ] {
            if value.as_deref().is_some_and(|value| value.trim().is_empty()) {
                problems.push(format!("{field}: must not be blank (leave it out for no default)"));
            }
        }
        if let Some(kubeconfig) = &self.kubeconfig
            && !kubeconfig.is_file()
        {
            problems.push(format!("kubeconfig: {} does not exist", kubeconfig.display()));
        }
        let positive = |field: &str, value: f64, problems: &mut Vec<String>| {
            if !(value.is_finite() && value > 0.0 && value <= 86_400.0 * 365.0) {
                problems.push(format!("{field}: {value} must be a positive number of seconds (at most a year)"));
            }
        };
        positive("debounce_seconds", self.debounce_seconds, &mut problems);
        positive("report_interval_seconds", self.report_interval_seconds, &mut problems);
        positive("retry_initial_seconds", self.retry_initial_seconds, &mut problems);
        positive("retry_max_seconds", self.retry_max_seconds, &mut problems);
        positive("request_timeout_seconds", self.request_timeout_seconds, &mut problems);
        if self.retry_max_seconds < self.retry_initial_seconds {
            problems.push(format!(
                "retry_max_seconds: {} is below retry_initial_seconds ({})",
                self.retry_max_seconds, self.retry_initial_seconds
            ));
        }
        if self.report_interval_seconds < self.debounce_seconds {
            problems.push(format!(
                "report_interval_seconds: {} is below debounce_seconds ({})",
                self.report_interval_seconds, self.debounce_seconds
            ));
        }
        if self.health_listen.parse::<SocketAddr>().is_err() {
            problems.push(format!("health_listen: {:?} is not an address like 0.0.0.0:7471", self.health_listen));
        }
        if !self.metrics_listen.trim().is_empty() && self.metrics_listen.trim().parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "metrics_listen: {:?} is not an address like 0.0.0.0:9471 (or empty to disable)",
                self.metrics_listen
            ));
        }
        if self.list_page_size == 0 {
            problems.push("list_page_size: must be at least 1".to_string());
        }
        for (field, keys) in [
            ("labels.datacenter", &self.labels.datacenter),
            ("labels.zone", &self.labels.zone),
            ("labels.security_tier", &self.labels.security_tier),
            ("labels.sla_tier", &self.labels.sla_tier),
            ("labels.control_plane", &self.labels.control_plane),
        ] {
            if keys.iter().any(|key| key.trim().is_empty()) {
                problems.push(format!("{field}: label keys must not be blank"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
    }

    /// The collector's options for this configuration (`generation` and
    /// `collected_at_unix` are set per snapshot).
    pub fn collect_options(&self) -> CollectOptions {
        CollectOptions {
            cluster_id: self.cluster_id.clone(),
            generation: None,
            datacenter: self.datacenter.clone(),
            zone: self.zone.clone(),
            security_tier: self.security_tier.clone(),
            label_keys: self.labels.clone(),
            collected_at_unix: 0,
        }
    }

    /// Checked in [`check`](Self::check).
    pub fn health_addr(&self) -> SocketAddr {
        self.health_listen.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 7471)))
    }

    /// The metrics address, or `None` when disabled (checked in `check`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let text = self.metrics_listen.trim();
        if text.is_empty() { None } else { text.parse().ok() }
    }

    pub fn debounce(&self) -> Duration {
        seconds(self.debounce_seconds)
    }

    pub fn report_interval(&self) -> Duration {
        seconds(self.report_interval_seconds)
    }

    pub fn retry_initial(&self) -> Duration {
        seconds(self.retry_initial_seconds)
    }

    pub fn retry_max(&self) -> Duration {
        seconds(self.retry_max_seconds)
    }

    pub fn request_timeout(&self) -> Duration {
        seconds(self.request_timeout_seconds)
    }
}

/// Checked values only (finite, positive, at most a year).
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::from_secs(1))
}

/// The server's rule for cluster ids (a DNS subdomain), checked here so a
/// typo is a config error at startup, not a refused report later.
pub fn is_cluster_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 253
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("writes");
        path
    }

    #[test]
    fn defaults_are_documented_values() {
        let cfg =
            AgentConfig::load_with_env(None, env(&[("KPLAN_AGENT_CLUSTER_ID", "c1")]), &AgentOverrides::default())
                .expect("loads");
        assert_eq!(cfg, AgentConfig { cluster_id: "c1".into(), ..AgentConfig::default() });
        assert_eq!(cfg.debounce(), Duration::from_secs(10));
        assert_eq!(cfg.report_interval(), Duration::from_secs(300));
        assert_eq!(cfg.labels, LabelKeys::default());
    }

    #[test]
    fn layers_file_then_environment_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            &dir,
            "agent.toml",
            "cluster_id = \"from-file\"\nzone = \"file-zone\"\ndatacenter = \"file-dc\"\ndebounce_seconds = 2.5\n\
             [labels]\nzone = [\"example.com/fw\"]\n",
        );
        let environment = env(&[
            ("KPLAN_AGENT_ZONE", "env-zone"),
            ("KPLAN_AGENT_SERVER", "http://kplan.example:7470"),
            ("KPLAN_AGENT_REPORT_INTERVAL_SECONDS", "60"),
            ("KPLAN_AGENT_LABELS__DATACENTER", "example.com/dc,topology.kubernetes.io/region"),
        ]);
        let overrides = AgentOverrides { zone: Some("flag-zone".into()), ..AgentOverrides::default() };
        let cfg = AgentConfig::load_with_env(Some(&file), environment.clone(), &overrides).expect("loads");
        assert_eq!(cfg.cluster_id, "from-file");
        assert_eq!(cfg.datacenter.as_deref(), Some("file-dc"));
        assert_eq!(cfg.zone.as_deref(), Some("flag-zone"));
        assert_eq!(cfg.server, "http://kplan.example:7470");
        assert_eq!(cfg.debounce(), Duration::from_millis(2500));
        assert_eq!(cfg.report_interval(), Duration::from_secs(60));
        assert_eq!(cfg.labels.zone, ["example.com/fw"]);
        assert_eq!(cfg.labels.datacenter, ["example.com/dc", "topology.kubernetes.io/region"]);
        assert_eq!(cfg.labels.security_tier, LabelKeys::default().security_tier);
        let cfg = AgentConfig::load_with_env(Some(&file), environment, &AgentOverrides::default()).expect("loads");
        assert_eq!(cfg.zone.as_deref(), Some("env-zone"));
    }

    #[test]
    fn yaml_files_work_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "agent.yaml", "cluster_id: fra-prod-1\nsecurity_tier: prod\nlist_page_size: 100\n");
        let cfg = AgentConfig::load_with_env(Some(&file), env(&[]), &AgentOverrides::default()).expect("loads");
        assert_eq!((cfg.cluster_id.as_str(), cfg.list_page_size), ("fra-prod-1", 100));
        assert_eq!(cfg.security_tier.as_deref(), Some("prod"));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "agent.toml", "cluster_id = \"c1\"\ndebounce = 3\n");
        let err = AgentConfig::load_with_env(Some(&file), env(&[]), &AgentOverrides::default()).expect_err("bad");
        assert!(err.to_string().contains("debounce"), "{err}");
        let file = write(&dir, "nested.toml", "cluster_id = \"c1\"\n[labels]\nzones = [\"a\"]\n");
        let err = AgentConfig::load_with_env(Some(&file), env(&[]), &AgentOverrides::default()).expect_err("bad");
        assert!(err.to_string().contains("zones"), "{err}");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            &dir,
            "agent.toml",
            "cluster_id = \"Not_Valid\"\nserver = \"kplan:7470\"\ndebounce_seconds = 0\nretry_initial_seconds = 5\n\
             retry_max_seconds = 1\nhealth_listen = \"nowhere\"\nkubeconfig = \"/nonexistent/kubeconfig\"\n\
             zone = \" \"\n",
        );
        let err = AgentConfig::load_with_env(Some(&file), env(&[]), &AgentOverrides::default()).expect_err("bad");
        let text = err.to_string();
        for field in
            ["cluster_id", "server", "debounce_seconds", "retry_max_seconds", "health_listen", "kubeconfig", "zone"]
        {
            assert!(text.contains(&format!("- {field}:")), "{field} missing from:\n{text}");
        }
        assert_eq!(err.problems.len(), 7, "{text}");
    }

    #[test]
    fn reporting_needs_tls_or_plaintext_asked_for() {
        let cfg = AgentConfig { cluster_id: "c1".into(), ..AgentConfig::default() };
        let err = cfg.check_transport().expect_err("plaintext was not asked for");
        assert!(err.to_string().contains("insecure_plaintext"), "{err}");
        let plaintext = AgentConfig { insecure_plaintext: true, ..cfg.clone() };
        assert!(plaintext.check_transport().is_ok());
        let https = AgentConfig { server: "https://kplan.example:7470".into(), ..cfg };
        let err = https.check_transport().expect_err("tls files are missing");
        assert_eq!(err.problems.len(), 3, "{err}");
        assert!(err.problems.iter().all(|p| p.starts_with("tls.")), "{err}");
    }

    #[test]
    fn a_missing_cluster_id_says_how_to_give_one() {
        let err = AgentConfig::load_with_env(None, env(&[]), &AgentOverrides::default()).expect_err("bad");
        assert!(err.to_string().contains("--cluster-id"), "{err}");
        let cfg = AgentConfig::load_with_env(
            None,
            env(&[]),
            &AgentOverrides { cluster_id: Some("c1".into()), ..AgentOverrides::default() },
        )
        .expect("loads");
        assert_eq!(cfg.cluster_id, "c1");
    }

    #[test]
    fn a_missing_file_is_a_problem_not_a_panic() {
        let err = AgentConfig::load_with_env(
            Some(Path::new("/nonexistent/agent.toml")),
            env(&[]),
            &AgentOverrides::default(),
        )
        .expect_err("bad");
        assert!(err.to_string().contains("/nonexistent/agent.toml: not found"), "{err}");
    }
}
