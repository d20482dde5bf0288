//! `kplan-server`: a thin main. Configuration is parsed and reported whole
//! (exit 64) before the store is opened or any port is bound.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kplan_server::api::{self, ApiState};
use kplan_server::config::{ServerConfig, ServerOverrides};
use kplan_server::metrics::Metrics;
use kplan_server::store::SledStore;
use kplan_server::telemetry;
use tokio::net::TcpListener;
use tracing::{error, info};

/// The kplan server: stores cluster inventories durably and plans consolidations.
#[derive(Debug, Parser)]
#[command(
    name = "kplan-server",
    version,
    after_help = "Example:\n  kplan-server --listen 127.0.0.1:7470 --data-dir /var/lib/kplan\n\n\
Configuration layers: defaults < --config FILE < KPLAN_SERVER_* environment < flags.\n\
Logging: KPLAN_LOG (e.g. debug), KPLAN_LOG_FORMAT=json."
)]
struct Args {
    /// Configuration file (TOML or YAML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on for gRPC, e.g. 127.0.0.1:7470 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory of the sled store.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address for /metrics, /healthz and /readyz (empty disables).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
}

const EX_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init("info");
    let overrides =
        ServerOverrides { listen: args.listen, data_dir: args.data_dir, metrics_listen: args.metrics_listen };
    let config = match ServerConfig::load(args.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kplan-server: {err}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    // The default policy is configuration too: checked before anything starts.
    let default_policy = match kplan_server::policy::load_policy(config.policy_file.as_deref()) {
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
    match runtime.block_on(run(config, default_policy)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "server stopped");
            eprintln!("kplan-server: {err:#}");
            ExitCode::FAILURE
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
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        self.metrics.render(store.as_ref(), store.size_on_disk().ok(), now).map_err(|e| e.to_string())
    }

    fn ready(&self) -> bool {
        self.metrics.is_ready()
    }
}

async fn run(config: ServerConfig, default_policy: kplan_model::Policy) -> anyhow::Result<()> {
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
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let store = SledStore::open(&data_dir)?;
        anyhow::Ok(store)
    })
    .await
    .context("opening the store")??;
    info!(data_dir = %config.data_dir.display(), "store opened and verified");

    let store = Arc::new(store);
    let _ = source.store.set(store.clone());
    spawn_history_compaction(store.clone(), config.history_keep_all_days);
    let state = ApiState {
        metrics: metrics.clone(),
        store,
        default_policy: Arc::new(default_policy),
        max_message_bytes: config.max_message_bytes,
    };
    let mut routes = tonic::service::RoutesBuilder::default();
    let health = api::register(&mut routes, state).await.context("building the reflection service")?;

    let listener =
        TcpListener::bind(config.listen_addr()).await.with_context(|| format!("binding {}", config.listen))?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    api::set_serving(&health).await;
    metrics.set_ready(true);
    info!(addr = %local_addr, "listening");

    tonic::transport::Server::builder()
        .timeout(std::time::Duration::from_secs(config.request_timeout_seconds))
        .concurrency_limit_per_connection(config.max_concurrent_requests)
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown_signal())
        .await
        .context("serving gRPC")?;
    info!("shut down cleanly");
    Ok(())
}

/// Thins old history at start and every six hours, on a blocking thread.
fn spawn_history_compaction(store: Arc<SledStore>, keep_all_days: u64) {
    use kplan_server::store::Store;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(6 * 3600));
        loop {
            every.tick().await;
            let store = store.clone();
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let keep = (keep_all_days as i64).saturating_mul(86_400);
            match tokio::task::spawn_blocking(move || store.compact_history(now, keep)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n_removed)) => info!(n_removed, "history compacted"),
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
