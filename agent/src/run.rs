//! The agent's two modes, wired from the parts: [`run_agent`] (watch and
//! report until stopped) and [`take_snapshot`] (list once, write one
//! snapshot, for clusters behind a jump host).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kplan_model::ClusterSnapshot;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::AgentConfig;
use crate::health;
use crate::report::{self, BuildTiming, GenerationClock, GrpcSink, ReportStats, RetryPolicy};
use crate::watch::{ViewHandle, WatchOptions, spawn_watchers};

/// The Kubernetes client of the configuration: `kubeconfig` (and `context`)
/// when given, else the in-cluster service account, else `$KUBECONFIG` or
/// `~/.kube/config` (with `context`, when given).
pub async fn kube_client(config: &AgentConfig) -> anyhow::Result<Client> {
    let options = KubeConfigOptions { context: config.context.clone(), ..KubeConfigOptions::default() };
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None if config.context.is_some() => {
            kube::Config::from_kubeconfig(&options).await.context("loading the kubeconfig for --context")?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig given, not in a cluster, and no $KUBECONFIG or ~/.kube/config")?,
    };
    info!(api_server = %kube_config.cluster_url, "kubernetes api");
    Client::try_from(kube_config).context("building the kubernetes client")
}

/// Watches and reports until SIGTERM or SIGINT. The health listener is bound
/// by the caller (after the configuration was checked).
pub async fn run_agent(
    config: AgentConfig,
    client: Client,
    health_listener: TcpListener,
    metrics_listener: Option<TcpListener>,
) -> anyhow::Result<()> {
    let handle = ViewHandle::new(config.collect_options());
    let stats = Arc::new(ReportStats::default());
    if config.insecure_plaintext {
        warn!(server = %config.server, "reporting over plaintext without TLS (insecure_plaintext): for trusted test networks only");
    }
    let sink = GrpcSink::new(&config.server, config.request_timeout(), &config.client_security())
        .with_context(|| format!("server url {:?}", config.server))?;
    let (slot, snapshots) = watch::channel(None);
    let mut tasks = JoinSet::new();
    spawn_watchers(client, &handle, &WatchOptions { page_size: config.list_page_size }, &mut tasks);
    tasks.spawn(report::run_builder(
        handle.clone(),
        BuildTiming { debounce: config.debounce(), interval: config.report_interval() },
        slot,
        stats.clone(),
    ));
    tasks.spawn(report::run_sender(
        sink,
        snapshots,
        RetryPolicy { initial: config.retry_initial(), max: config.retry_max() },
        stats.clone(),
    ));
    let health_addr = health_listener.local_addr().context("reading the health address")?;
    if let Some(listener) = metrics_listener {
        let metrics_addr = listener.local_addr().context("reading the metrics address")?;
        info!(addr = %metrics_addr, "metrics listening");
        let (handle, stats) = (handle.clone(), stats.clone());
        tasks.spawn(async move {
            if let Err(err) = health::serve_metrics(listener, handle, stats).await {
                error!(error = %err, "metrics endpoint failed");
            }
            // Keep the task alive: a failed metrics endpoint must not stop the agent.
            std::future::pending::<()>().await;
        });
    }
    let health = health::serve(health_listener, handle.clone(), stats);
    info!(
        cluster_id = %config.cluster_id,
        server = %config.server,
        health_addr = %health_addr,
        debounce_ms = config.debounce().as_millis() as u64,
        interval_ms = config.report_interval().as_millis() as u64,
        "agent started"
    );
    let outcome = tokio::select! {
        result = health => result.context("serving the health endpoint"),
        Some(ended) = tasks.join_next() => {
            // Watchers, builder and sender loop forever: ending is a bug.
            error!(?ended, "an agent task ended unexpectedly");
            Err(anyhow::anyhow!("an agent task ended unexpectedly: {ended:?}"))
        }
        signal = shutdown_signal() => {
            info!(signal, "shutting down");
            Ok(())
        }
    };
    tasks.shutdown().await;
    outcome
}

/// Lists every kind once, builds one snapshot (generation: unix
/// milliseconds) and writes it as kplan snapshot JSON to `out` (`-`:
/// standard output). Gives up after `timeout` when the API does not answer
/// (the watchers log why).
pub async fn take_snapshot(
    config: &AgentConfig,
    client: Client,
    out: &Path,
    timeout: Duration,
) -> anyhow::Result<ClusterSnapshot> {
    let started = Instant::now();
    let handle = ViewHandle::new(config.collect_options());
    let mut tasks = JoinSet::new();
    spawn_watchers(client, &handle, &WatchOptions { page_size: config.list_page_size }, &mut tasks);
    let synced = tokio::time::timeout(timeout, handle.wait_synced()).await;
    tasks.shutdown().await;
    if synced.is_err() {
        let waiting = handle.read(|view| view.unsynced_kinds());
        let kinds: Vec<&str> = waiting.iter().map(|kind| kind.as_str()).collect();
        anyhow::bail!(
            "the kubernetes api did not list {} within {} s (see the warnings above)",
            kinds.join(", "),
            timeout.as_secs()
        );
    }
    let listed_ms = started.elapsed().as_millis() as u64;
    let build_started = Instant::now();
    let generation = GenerationClock::default().next_generation();
    let snapshot =
        handle.read(|view| view.snapshot(generation, report::unix_seconds())).context("building the snapshot")?;
    let build_ms = build_started.elapsed().as_secs_f64() * 1000.0;
    write_snapshot(&snapshot, out)?;
    let counts = handle.read(|view| view.counts());
    info!(
        cluster_id = %snapshot.cluster_id,
        generation,
        out = %out.display(),
        n_nodes = snapshot.nodes.len(),
        n_namespaces = snapshot.namespaces.len(),
        n_pods = counts.n_pods,
        listed_ms,
        build_ms,
        total_ms = started.elapsed().as_millis() as u64,
        peak_rss_bytes = peak_rss_bytes().unwrap_or(0),
        "snapshot written"
    );
    Ok(snapshot)
}

/// Writes through a temporary file in the same directory, then renames: a
/// reader never sees half a snapshot.
fn write_snapshot(snapshot: &ClusterSnapshot, out: &Path) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(snapshot).context("encoding the snapshot")?;
    text.push('\n');
    if out.as_os_str() == "-" {
        use std::io::Write;
        return std::io::stdout().write_all(text.as_bytes()).context("writing the snapshot to standard output");
    }
    let mut temporary = PathBuf::from(out);
    temporary.as_mut_os_string().push(".partial");
    std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, out).with_context(|| format!("renaming {} to {}", temporary.display(), out.display()))
}

/// The process's peak resident set size (`VmHWM` of /proc/self/status), Linux only.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Resolves on SIGTERM or SIGINT with the signal's name.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = term => "SIGTERM",
    }
}
