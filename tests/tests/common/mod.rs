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
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
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
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(remaining) {
                Ok(line) => {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                        && value["message"] == "listening"
                    {
                        let addr = value["addr"].as_str().expect("addr field").to_string();
                        return Server { child, addr, data_dir: data_dir.to_path_buf(), log: rx };
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
