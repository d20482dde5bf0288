//! `kplan-server`: a thin main. Configuration is parsed and reported whole
//! (exit 64) before the store is opened or any port is bound.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kplan_server::api::{self, ApiState};
use kplan_server::config::{ServerConfig, ServerOverrides};
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
}

const EX_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init("info");
    let overrides = ServerOverrides { listen: args.listen, data_dir: args.data_dir };
    let config = match ServerConfig::load(args.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kplan-server: {err}");
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
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = format!("{err:#}"), "server stopped");
            eprintln!("kplan-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ServerConfig) -> anyhow::Result<()> {
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

    let state = ApiState { store: Arc::new(store), max_message_bytes: config.max_message_bytes };
    let mut routes = tonic::service::RoutesBuilder::default();
    let health = api::register(&mut routes, state).await.context("building the reflection service")?;

    let listener =
        TcpListener::bind(config.listen_addr()).await.with_context(|| format!("binding {}", config.listen))?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    api::set_serving(&health).await;
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
