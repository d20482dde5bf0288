//! `kplan-server`: a thin main. Configuration (TLS files and tokens included)
//! is parsed and reported whole (exit 64) before the store is opened or any
//! port is bound. The gRPC port then binds with health NOT_SERVING, and turns
//! SERVING once the store is opened and verified.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kplan_server::api::{ApiState, GrpcServer, ServeError, ServeOptions};
use kplan_server::config::{ServerConfig, ServerOverrides};
use kplan_server::metrics::Metrics;
use kplan_server::telemetry;
use kplan_server::tls::TransportSecurity;
use kplan_store::SledStore;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

/// The kplan server: stores cluster inventories durably and plans consolidations.
#[derive(Debug, Parser)]
#[command(
    name = "kplan-server",
    version,
    after_help = "Examples:\n  \
kplan-server --listen 0.0.0.0:7470 --data-dir /var/lib/kplan --tls-cert server.crt --tls-key server.key --client-ca ca.crt\n  \
kplan-server --listen 127.0.0.1:7470 --data-dir /tmp/kplan --insecure-plaintext\n  \
kplan-server --data-dir /var/lib/kplan backup --out kplan-2026-11-25.backup   (server stopped)\n  \
kplan-server --data-dir /var/lib/kplan-new restore kplan-2026-11-25.backup\n\n\
Configuration layers: defaults < --config FILE < KPLAN_SERVER_* environment < flags.\n\
Logging: KPLAN_LOG (e.g. debug), KPLAN_LOG_FORMAT=json."
)]
struct Args {
    #[command(subcommand)]
    command: Option<AdminCommand>,
    /// Configuration file (TOML or YAML).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on for gRPC, e.g. 127.0.0.1:7470 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory of the sled store.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Address for /metrics, /healthz and /readyz (empty disables). Plain HTTP:
    /// Kubernetes probes cannot present client certificates.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// The server's TLS certificate (PEM; [tls] cert_file).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The server's TLS private key (PEM; [tls] key_file).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA bundle client certificates must chain to (PEM, one or more; [tls] client_ca_file).
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Bearer tokens of readers and planners: lines `ROLE NAME SHA256-HEX` (token_file).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve gRPC without TLS and without authentication (trusted test networks only).
    #[arg(long)]
    insecure_plaintext: bool,
}

/// Operator commands on a store no server is running on (without one: serve).
#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Write a consistent, checksummed export of the store (the server must be stopped:
    /// the store is opened exclusively and verified whole first).
    Backup {
        /// The backup file to write (through a temporary file, renamed once synced).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup into the data directory. Every record is checked before anything
    /// is written; the restored store is verified before it is moved into place.
    Restore {
        /// The backup file (from `kplan-server backup`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace a non-empty data directory; its contents are moved aside
        /// (`<data-dir>.before-restore-<unix time>`), never deleted.
        #[arg(long)]
        replace: bool,
    },
}

const EX_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init("info,highs=error");
    if let Some(command) = args.command {
        return admin(command, args.config.as_deref(), args.data_dir);
    }
    let overrides = ServerOverrides {
        listen: args.listen,
        data_dir: args.data_dir,
        metrics_listen: args.metrics_listen,
        tls_cert_file: args.tls_cert,
        tls_key_file: args.tls_key,
        client_ca_file: args.client_ca,
        token_file: args.token_file,
        insecure_plaintext: args.insecure_plaintext,
    };
    let (config, security) =
        match ServerConfig::load(args.config.as_deref(), &overrides).and_then(|c| c.security().map(|s| (c, s))) {
            Ok(loaded) => loaded,
            Err(err) => {
                eprintln!("kplan-server: {err}");
                return ExitCode::from(EX_CONFIG);
            }
        };
    // The default policy is configuration too: checked before anything starts.
    let default_policy = match kplan_planner::policy::load_policy(config.policy_file.as_deref()) {
        Ok(policy) => policy,
        Err(err) => {
            eprintln!("kplan-server: invalid configuration: policy_file: {err}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kplan-server: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The TLS files make a rustls configuration (a key that does not match its
    // certificate is found here): still configuration, still before any port.
    let grpc = match runtime.block_on(GrpcServer::new(security.clone(), serve_options(&config))) {
        Ok(grpc) => grpc,
        Err(err @ ServeError::Tls(_)) => {
            eprintln!("kplan-server: invalid configuration: {err}");
            return ExitCode::from(EX_CONFIG);
        }
        Err(err) => {
            eprintln!("kplan-server: {err}");
            return ExitCode::FAILURE;
        }
    };
    log_security(&security, &config);
    match runtime.block_on(run(config, default_policy, grpc)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "server stopped");
            eprintln!("kplan-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `backup` and `restore`: the data directory comes from the same layers as the server's.
fn admin(command: AdminCommand, config_file: Option<&std::path::Path>, data_dir: Option<PathBuf>) -> ExitCode {
    use kplan_store::admin;
    // Only the data directory matters here: TLS files need not exist for a backup.
    let overrides = ServerOverrides { data_dir, ..Default::default() };
    let config = match ServerConfig::load_layers(config_file, &overrides) {
        Ok(config) if config.data_dir.as_os_str().is_empty() => {
            eprintln!("kplan-server: invalid configuration: data_dir: must not be empty");
            return ExitCode::from(EX_CONFIG);
        }
        Ok(config) => config,
        Err(err) => {
            eprintln!("kplan-server: {err}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let data_dir = config.data_dir;
    let outcome = match command {
        AdminCommand::Backup { out } => admin::backup(&data_dir, &out).map(|summary| {
            info!(
                data_dir = %data_dir.display(),
                out = %summary.path.display(),
                bytes = summary.bytes,
                n_clusters = summary.contents.n_clusters,
                n_snapshots = summary.contents.n_snapshots,
                n_plans = summary.contents.n_plans,
                "backup written"
            );
            println!(
                "backup of {} written to {}: {} clusters, {} snapshots, {} plans, {} bytes",
                data_dir.display(),
                summary.path.display(),
                summary.contents.n_clusters,
                summary.contents.n_snapshots,
                summary.contents.n_plans,
                summary.bytes
            );
        }),
        AdminCommand::Restore { file, replace } => {
            admin::restore(&file, &data_dir, admin::RestoreOptions { replace_existing: replace }).map(|summary| {
                info!(
                    file = %file.display(),
                    data_dir = %summary.data_dir.display(),
                    n_snapshots = summary.contents.n_snapshots,
                    moved_aside = summary.moved_aside.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                    "backup restored"
                );
                println!(
                    "restored {} into {}: {} clusters, {} snapshots, {} plans{}",
                    file.display(),
                    summary.data_dir.display(),
                    summary.contents.n_clusters,
                    summary.contents.n_snapshots,
                    summary.contents.n_plans,
                    summary
                        .moved_aside
                        .map(|p| format!("; the previous contents are in {}", p.display()))
                        .unwrap_or_default()
                );
            })
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kplan-server: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve_options(config: &ServerConfig) -> ServeOptions {
    use std::time::Duration;
    ServeOptions {
        request_timeout: Duration::from_secs(config.request_timeout_seconds),
        max_concurrent_requests: config.max_concurrent_requests,
        tls_handshake_timeout: Duration::from_secs(config.tls_handshake_timeout_seconds),
        tls_reload_interval: Duration::from_secs(config.tls_reload_interval_seconds),
        http2_keepalive_interval: Duration::from_secs(config.http2_keepalive_interval_seconds),
        http2_keepalive_timeout: Duration::from_secs(config.http2_keepalive_timeout_seconds),
        tcp_keepalive: Duration::from_secs(config.tcp_keepalive_seconds),
    }
}

/// One line on how the gRPC port is protected; a warning for plaintext.
fn log_security(security: &TransportSecurity, config: &ServerConfig) {
    match security {
        TransportSecurity::InsecurePlaintext => warn!(
            "insecure plaintext: gRPC is neither encrypted nor authenticated and every caller may report for \
             any cluster, read and plan; use [tls] outside a trusted test network"
        ),
        TransportSecurity::MutualTls { material, tokens, .. } => {
            let now = kplan_model::time::now_unix();
            let days_left = (material.not_after_unix - now) / 86_400;
            info!(
                n_client_cas = material.n_client_cas,
                server_names = material.server_names.join(","),
                certificate_days_left = days_left,
                n_tokens = tokens.as_ref().map_or(0, |t| t.len()),
                token_file = config.token_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                "mutual TLS"
            );
            if days_left < 30 {
                warn!(certificate_days_left = days_left, "the server certificate expires soon: issue a new one");
            }
        }
    }
}

/// What `/metrics` and `/readyz` read.
struct MetricsSource {
    metrics: Arc<Metrics>,
    store: std::sync::OnceLock<Arc<SledStore>>,
}

impl kplan_server::metrics::MetricsSource for MetricsSource {
    fn render(&self) -> Result<String, String> {
        let Some(store) = self.store.get() else {
            return Err("the store is not open yet".to_string());
        };
        let now = kplan_model::time::now_unix();
        self.metrics.render(store.as_ref(), store.size_on_disk().ok(), now).map_err(|e| e.to_string())
    }

    fn ready(&self) -> bool {
        self.metrics.is_ready()
    }
}

async fn run(config: ServerConfig, default_policy: kplan_model::Policy, grpc: GrpcServer) -> anyhow::Result<()> {
    // Metrics and HTTP probes first: /healthz answers while the store is verified,
    // /readyz only once it is.
    let metrics = Arc::new(Metrics::new());
    let source = Arc::new(MetricsSource { metrics: metrics.clone(), store: std::sync::OnceLock::new() });
    if let Some(addr) = kplan_server::metrics::listen_addr(&config.metrics_listen) {
        let addr = addr.context("metrics_listen")?;
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding metrics on {addr}"))?;
        let local = listener.local_addr().context("reading the metrics address")?;
        info!(addr = %local, "metrics listening");
        let served: Arc<dyn kplan_server::metrics::MetricsSource> = source.clone();
        tokio::spawn(async move {
            if let Err(err) = kplan_server::metrics::serve(listener, served, shutdown_signal()).await {
                error!(error = %err, "metrics endpoint failed");
            }
        });
    }
    // The gRPC port binds now: health says NOT_SERVING and kplan calls answer
    // UNAVAILABLE until the store is opened and verified below.
    let listener =
        TcpListener::bind(config.listen_addr()).await.with_context(|| format!("binding {}", config.listen))?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    info!(addr = %local_addr, "grpc port bound; NOT_SERVING until the store is verified");
    let grpc = grpc.with_metrics(metrics.clone());
    let ready = grpc.ready_handle();
    let mut serving = tokio::spawn(grpc.serve(listener, shutdown_signal()));

    let data_dir = config.data_dir.clone();
    let cache_bytes = config.store_cache_mib.saturating_mul(1 << 20);
    let opening = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let store = SledStore::open_with_cache(&data_dir, cache_bytes)?;
        anyhow::Ok(store)
    });
    let store = tokio::select! {
        opened = opening => opened.context("opening the store")??,
        served = &mut serving => {
            // Stopped (a signal) or failed before the store was verified.
            served.context("the gRPC server task")?.context("serving gRPC")?;
            info!("shut down before the store was verified");
            return Ok(());
        }
    };
    info!(data_dir = %config.data_dir.display(), "store opened and verified");

    let store = Arc::new(store);
    let _ = source.store.set(store.clone());
    let default_policy = Arc::new(default_policy);
    let watcher = kplan_server::watch::Watcher::new(
        store.clone(),
        default_policy.clone(),
        metrics.clone(),
        kplan_server::watch::WatchSettings {
            stale_after_seconds: i64::try_from(config.watch_stale_after_seconds).unwrap_or(i64::MAX),
            wave_stall_seconds: i64::try_from(config.watch_wave_stall_seconds).unwrap_or(i64::MAX),
            recheck_interval: std::time::Duration::from_millis(config.watch_recheck_interval_ms),
        },
    );
    spawn_history_compaction(store.clone(), watcher.clone(), config.history_keep_all_days);
    watcher.start();
    let state = ApiState {
        metrics: metrics.clone(),
        store,
        default_policy,
        watcher,
        max_message_bytes: config.max_message_bytes,
        validation_limits: config.validation,
    };
    ready.ready(state).await;
    metrics.set_ready(true);
    // "listening" marks SERVING: scripts and tests wait for it.
    info!(addr = %local_addr, "listening");

    serving.await.context("the gRPC server task")?.context("serving gRPC")?;
    info!("shut down cleanly");
    Ok(())
}

/// Thins old history at start and every six hours, on a blocking thread.
fn spawn_history_compaction(store: Arc<SledStore>, watcher: Arc<kplan_server::watch::Watcher>, keep_all_days: u64) {
    use kplan_store::Store;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(6 * 3600));
        loop {
            every.tick().await;
            let store = store.clone();
            let now = kplan_model::time::now_unix();
            let keep = (keep_all_days as i64).saturating_mul(86_400);
            match tokio::task::spawn_blocking(move || store.compact_history(now, keep)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n_removed)) => {
                    // What the watch kept of the generations removed must go too.
                    watcher.history_compacted();
                    info!(n_removed, "history compacted");
                }
                Ok(Err(err)) => error!(error = %err, "history compaction failed"),
                Err(err) => error!(error = %err, "history compaction task failed"),
            }
        }
    });
}

/// Resolves on SIGTERM or SIGINT. In-flight requests finish (tonic drains them),
/// and every acknowledged snapshot was flushed before its reply.
async fn shutdown_signal() {
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
        () = ctrl_c => info!(signal = "SIGINT", "shutting down"),
        () = term => info!(signal = "SIGTERM", "shutting down"),
    }
}
