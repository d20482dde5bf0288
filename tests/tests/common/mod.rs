//! Helpers for end-to-end tests: the real binaries, started as processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The directory holding the workspace's binaries (`target/<profile>/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("fixtures/k8s").join(rel)
}

/// A running `kplan-server` with its log collected in the background.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// The /metrics, /healthz, /readyz address.
    pub metrics_addr: String,
    pub data_dir: PathBuf,
    pub log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts the server on `127.0.0.1:0` over `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra_args: &[&str]) -> Server {
        let mut child = Command::new(bin("kplan-server"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--insecure-plaintext", "--data-dir"])
            .arg(data_dir)
            .args(extra_args)
            .env("KPLAN_LOG_FORMAT", "json")
            .env("KPLAN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kplan-server");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let mut metrics_addr = String::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(remaining) {
                Ok(line) => {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                        if value["message"] == "metrics listening" {
                            metrics_addr = value["addr"].as_str().expect("addr field").to_string();
                        }
                        if value["message"] == "listening" {
                            let addr = value["addr"].as_str().expect("addr field").to_string();
                            return Server { child, addr, metrics_addr, data_dir: data_dir.to_path_buf(), log: rx };
                        }
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("kplan-server did not start listening within 30 s; log:\n{}", seen.join("\n"));
                }
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no chance to flush anything that was not already flushed.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL kplan-server");
        let _ = self.child.wait();
    }

    /// Every log line received so far.
    pub fn drain_log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kplan` with arguments and returns its output.
pub fn kplan(args: &[&str]) -> Output {
    Command::new(bin("kplan"))
        .args(args)
        .env_remove("KPLAN_SERVER")
        .env_remove("KPLAN_INVENTORY")
        // The test servers are plaintext (tests/tests/security.rs covers TLS).
        .env("KPLAN_INSECURE_PLAINTEXT", "true")
        .output()
        .expect("running kplan")
}

/// Runs `kplan` and asserts success; returns stdout.
pub fn kplan_ok(args: &[&str]) -> String {
    let out = kplan(args);
    assert!(
        out.status.success(),
        "kplan {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Imports the example estate (`examples/bank`) into the inventory directory
/// `inv` and plans it with its policy; the plan as JSON text.
#[allow(dead_code)] // not every test file uses it
pub fn propose_bank_example(inv: &str) -> String {
    let root = repo_root();
    let estate = root.join("examples/bank/estate.toml");
    let policy = root.join("examples/bank/policy.toml");
    kplan_ok(&["--inventory", inv, "import", "--estate", estate.to_str().expect("utf-8")]);
    kplan_ok(&["--inventory", inv, "propose", "--policy", policy.to_str().expect("utf-8"), "-o", "json"])
}

/// Asserts that `kplan` failed with exactly one line on stderr, no panic; returns that line.
pub fn kplan_err(args: &[&str]) -> String {
    let out = kplan(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "kplan {args:?} unexpectedly succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert_ne!(out.status.code(), Some(101), "kplan {args:?} panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "kplan {args:?} panicked: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "kplan {args:?}: expected one line on stderr, got:\n{stderr}");
    stderr.trim_end().to_string()
}

pub fn python3_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---- kplan-agent (issue 3) ----

/// A free TCP port on 127.0.0.1 (bound, then released; a small race, fine for
/// tests that must know a port before starting a process on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Spawns a command with stderr piped into a channel, line by line.
pub fn spawn_logged(command: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawning a process");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Starts `kplan-server` on a fixed address (to restart it on the same port,
/// as an agent's server URL is fixed), over `data_dir`.
pub fn start_server_on(data_dir: &Path, addr: &str) -> Server {
    let mut command = Command::new(bin("kplan-server"));
    command
        .args(["--listen", addr, "--metrics-listen", "127.0.0.1:0", "--insecure-plaintext", "--data-dir"])
        .arg(data_dir)
        .env("KPLAN_LOG_FORMAT", "json")
        .env("KPLAN_LOG", "info");
    start_server_with(&mut command, data_dir)
}

/// Spawns `command` (a `kplan-server` with JSON logs over `data_dir`) and
/// waits until it listens; panics with its log if it does not within 30 s.
pub fn start_server_with(command: &mut Command, data_dir: &Path) -> Server {
    let (mut child, rx) = spawn_logged(command);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut metrics_addr = String::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
            if value["message"] == "metrics listening" {
                metrics_addr = value["addr"].as_str().expect("addr field").to_string();
            }
            if value["message"] == "listening" {
                let addr = value["addr"].as_str().expect("addr field").to_string();
                return Server { child, addr, metrics_addr, data_dir: data_dir.to_path_buf(), log: rx };
            }
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("kplan-server did not listen within 30 s; log:\n{}", seen.join("\n"));
}

/// `kplan certs ARGS`: stdout (asserts success).
pub fn kplan_certs(args: &[&str]) -> String {
    let out = Command::new(bin("kplan")).arg("certs").args(args).output().expect("running kplan certs");
    assert!(out.status.success(), "kplan certs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A small `fra`/`prod` snapshot collected now: one control-plane node, two
/// workers and a gold namespace `payments`.
pub fn small_snapshot(cluster_id: &str, generation: u64) -> kplan_model::ClusterSnapshot {
    use kplan_model::{ClusterFacts, ClusterSnapshot, Namespace, Node, NodeRole, Resources, SlaTier};
    let node = |idx: usize, role: NodeRole| Node {
        name: format!("{cluster_id}-node-{idx}"),
        labels: Default::default(),
        datacenter: "fra".into(),
        zone: "fra-prod-a".into(),
        role,
        allocatable: Resources { cpu_millis: 16_000, memory_bytes: 64 << 30, pods: 110 },
        kubelet_version: "v1.29.2".into(),
        container_runtime: "containerd://1.7.13".into(),
        architecture: "amd64".into(),
        unschedulable: false,
        taints: Vec::new(),
        extended: Default::default(),
        runtime_handlers: Vec::new(),
    };
    ClusterSnapshot {
        cluster_id: cluster_id.into(),
        generation,
        collected_at_unix: now_unix(),
        facts: ClusterFacts {
            datacenter: "fra".into(),
            zone: "fra-prod-a".into(),
            security_tier: "prod".into(),
            kubernetes_version: "v1.29.2".into(),
            cni: "calico".into(),
            csi_drivers: vec![],
        },
        nodes: vec![node(0, NodeRole::ControlPlane), node(1, NodeRole::Worker), node(2, NodeRole::Worker)],
        namespaces: vec![Namespace {
            name: "payments".into(),
            labels: Default::default(),
            security_tier: "prod".into(),
            sla_tier: SlaTier::Gold,
            requests: Resources { cpu_millis: 4_000, memory_bytes: 8 << 30, pods: 20 },
            pod_groups: Vec::new(),
            applied_prerelease: Vec::new(),
            disruption_budgets: Vec::new(),
        }],
        isolation: Default::default(),
    }
}

/// A running `kplan-agent` (JSON logs), its log kept as it arrives.
pub struct AgentProcess {
    pub child: Child,
    log: mpsc::Receiver<String>,
    /// Every log line received so far, parsed (non-JSON lines as strings).
    pub lines: Vec<serde_json::Value>,
}

impl AgentProcess {
    /// `kplan-agent ARGS` with `KPLAN_LOG_FORMAT=json` and the given environment.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> AgentProcess {
        let mut command = Command::new(bin("kplan-agent"));
        command
            .args(args)
            .env("KPLAN_LOG_FORMAT", "json")
            .env("KPLAN_LOG", "info,kube=warn,tower=warn,hyper=warn")
            // Parallel tests: a free port, not the default 9471 (the env below may override).
            .env("KPLAN_AGENT_METRICS_LISTEN", "127.0.0.1:0")
            // The test servers are plaintext (tests/tests/security.rs covers TLS).
            .env("KPLAN_AGENT_INSECURE_PLAINTEXT", "true");
        for (key, value) in env {
            command.env(key, value);
        }
        let (child, log) = spawn_logged(&mut command);
        AgentProcess { child, log, lines: Vec::new() }
    }

    fn drain(&mut self) {
        for line in self.log.try_iter() {
            self.lines.push(serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line)));
        }
    }

    /// The log lines so far with this message.
    pub fn messages(&mut self, message: &str) -> Vec<serde_json::Value> {
        self.drain();
        self.lines.iter().filter(|line| line["message"] == message).cloned().collect()
    }

    /// Waits for a log line with this message; panics with the log after `timeout`.
    pub fn wait_for(&mut self, message: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.messages(message).into_iter().next() {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                panic!("kplan-agent exited ({status}) before logging {message:?}; log:\n{}", self.log_text());
            }
            if Instant::now() > deadline {
                panic!("kplan-agent did not log {message:?} within {timeout:?}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&mut self) -> String {
        self.drain();
        self.lines.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1 (no client library): (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
    (status, body)
}

/// The value of one sample (`name{labels} value`) in a Prometheus text page.
pub fn metric_value(page: &str, sample: &str) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.split_whitespace().next()?.parse().ok()))
}
