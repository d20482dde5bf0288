//! Ingest and store: a real `kplan-server` under concurrent reporting clients,
//! and the size of its store on disk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::machine::vm_hwm_kib;
use crate::run::{RunOptions, Tools};

pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub addr: String,
}

impl ServerProcess {
    pub(crate) fn start(binary: &Path, data_dir: &Path) -> anyhow::Result<ServerProcess> {
        let help = Command::new(binary).arg("--help").output().context("kplan-server --help")?;
        let mut command = Command::new(binary);
        command.args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        if String::from_utf8_lossy(&help.stdout).contains("--insecure-plaintext") {
            command.arg("--insecure-plaintext");
        }
        // KPLAN_SERVER_* is the server's configuration: the bench's own KPLAN_SERVER_BIN must not reach it.
        let mut child = command
            .env_remove("KPLAN_SERVER_BIN")
            .env("KPLAN_LOG_FORMAT", "json")
            .env("KPLAN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kplan-server")?;
        let stderr = child.stderr.take().context("kplan-server stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                        && value["message"] == "listening"
                        && let Some(addr) = value["addr"].as_str()
                    {
                        let addr = addr.to_string();
                        // Keep draining the log so the server never blocks on a full pipe.
                        std::thread::spawn(move || while rx.recv().is_ok() {});
                        return Ok(ServerProcess { child, addr });
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("kplan-server did not listen within 30 s:\n{}", seen.join("\n"));
                }
            }
        }
    }

    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        // SIGTERM for a clean shutdown (sled flushes and releases its lock), then wait.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

pub(crate) struct IngestLevel {
    pub(crate) n_clients: usize,
    pub(crate) n_snapshots: usize,
    pub(crate) seconds: f64,
    pub(crate) latencies_ms: Vec<f64>,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
}

pub(crate) struct IngestResult {
    pub(crate) levels: Vec<IngestLevel>,
    pub(crate) peak_rss_kib: Option<u64>,
    pub(crate) store: Option<StoreResult>,
}

pub(crate) struct StoreResult {
    pub(crate) n_snapshots: usize,
    pub(crate) bytes_kept: u64,
    pub(crate) bytes_apparent: u64,
    pub(crate) bytes_allocated: u64,
}

pub(crate) fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let mut apparent = 0;
    let mut allocated = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                apparent += meta.len();
                allocated += meta.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

pub(crate) fn ingest(tools: &Tools, options: &RunOptions) -> anyhow::Result<IngestResult> {
    let data_dir = tools.work.path().join("ingest-store");
    let server = ServerProcess::start(&tools.server, &data_dir)?;
    let pid = server.child.id();
    let template = crate::ingest::template(options.seed);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("a tokio runtime")?;
    let mut levels = Vec::new();
    let mut next_cluster = 0;
    for &(n_clients, n_snapshots) in &options.ingest_levels {
        eprintln!("kplan-bench: ingest, {n_clients} clients, {n_snapshots} snapshots ...");
        let url = format!("http://{}", server.addr);
        let outcome =
            runtime.block_on(crate::ingest::drive(&url, &template, next_cluster, n_clients, n_snapshots / n_clients));
        next_cluster += n_clients;
        levels.push(IngestLevel {
            n_clients,
            n_snapshots: outcome.latencies_ms.len(),
            seconds: outcome.seconds,
            latencies_ms: outcome.latencies_ms,
            errors: outcome.errors,
            first_error: outcome.first_error,
        });
    }
    let peak_rss_kib = vm_hwm_kib(pid);
    server.stop()?;
    let store = match crate::ingest::kept_bytes(&data_dir) {
        Ok((n_snapshots, bytes_kept)) => {
            let (bytes_apparent, bytes_allocated) = dir_size(&data_dir);
            Some(StoreResult { n_snapshots, bytes_kept, bytes_apparent, bytes_allocated })
        }
        Err(error) => {
            eprintln!("kplan-bench: reading the store back: {error:#}");
            None
        }
    };
    Ok(IngestResult { levels, peak_rss_kib, store })
}
