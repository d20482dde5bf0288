//! A real kube-apiserver (v1.20.2 with etcd, on loopback) for the tests that
//! need one: `scripts/kube-apiserver.sh` builds it once from Debian's source
//! package with kube-scheduler beside it, and caches both under
//! ~/.cache/kplan/kube. Each test binary that uses it starts its own.
//!
//! In CI (`CI` set) a missing API server fails the tests with the build's
//! reason; elsewhere they are skipped with a notice.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::common::repo_root;

pub struct Apiserver {
    _script: Mutex<Child>,
    /// The directory of the running API server (certificates, kubeconfigs, logs).
    pub dir: PathBuf,
    pub admin_kubeconfig: PathBuf,
    pub agent_kubeconfig: PathBuf,
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// The cached binaries: kube-apiserver, etcd, kube-scheduler (built when
/// missing), or why they cannot be had.
pub fn binaries() -> Result<Vec<PathBuf>, String> {
    let script = repo_root().join("scripts/kube-apiserver.sh");
    let build = Command::new(&script).arg("build").stdout(Stdio::null()).output();
    match &build {
        Ok(output) if output.status.success() => {}
        Ok(output) => return Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
        Err(error) => return Err(format!("cannot run {}: {error}", script.display())),
    }
    let paths = Command::new(&script).arg("paths").output().map_err(|e| format!("{}: {e}", script.display()))?;
    Ok(String::from_utf8_lossy(&paths.stdout).lines().map(PathBuf::from).collect())
}

impl Apiserver {
    /// Builds (once) and starts an API server; `None` (skip) when it cannot be
    /// had outside CI.
    pub fn start() -> Option<Apiserver> {
        if let Err(reason) = binaries() {
            if in_ci() {
                panic!(
                    "CI needs a real kube-apiserver for the end-to-end tests, and \
                     `scripts/kube-apiserver.sh build` failed: {reason}"
                );
            }
            eprintln!(
                "NOTICE: skipping the real kube-apiserver tests: `scripts/kube-apiserver.sh build` failed: {reason}"
            );
            return None;
        }
        let script = repo_root().join("scripts/kube-apiserver.sh");
        let dir = tempfile::Builder::new().prefix("kplan-kube-").tempdir().expect("tempdir").keep();
        let mut child = Command::new(&script)
            .arg("run")
            .arg(&dir)
            .arg("--remove-on-exit")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting scripts/kube-apiserver.sh run");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.starts_with("ready ") => {}
            other => {
                let _ = child.kill();
                panic!("kube-apiserver did not become ready: {other:?} (logs in {})", dir.display());
            }
        }
        Some(Apiserver {
            _script: Mutex::new(child),
            admin_kubeconfig: dir.join("admin.kubeconfig"),
            agent_kubeconfig: dir.join("agent.kubeconfig"),
            dir,
        })
    }
}

/// A kube client with its own runtime, for synchronous tests.
pub struct Kube {
    pub runtime: tokio::runtime::Runtime,
    pub client: kube::Client,
}

impl Kube {
    pub fn connect(kubeconfig: &std::path::Path) -> Kube {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = runtime.block_on(async {
            let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kube config");
            kube::Client::try_from(config).expect("kube client")
        });
        Kube { runtime, client }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}
