//! The agent's own health over HTTP, for kubelet probes and systemd watchers:
//!
//! - `GET /healthz`: 200 `ok` while the process serves requests (liveness);
//! - `GET /readyz`: 200 `ready` once every watcher has completed its first
//!   list, else 503 with what it still waits for (readiness). Readiness does
//!   not depend on the server: an agent that cannot report is still doing
//!   its job (it retries), and restarting it would not help.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::report::ReportStats;
use crate::watch::ViewHandle;

#[derive(Debug, Clone)]
struct HealthState {
    handle: ViewHandle,
    stats: Arc<ReportStats>,
}

/// The health routes.
pub fn router(handle: ViewHandle, stats: Arc<ReportStats>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(HealthState { handle, stats })
}

async fn readyz(State(state): State<HealthState>) -> (StatusCode, String) {
    let unsynced = state.handle.read(|view| view.unsynced_kinds());
    if unsynced.is_empty() {
        let sent = state.stats.reports_sent.load(Ordering::Relaxed);
        let failed = state.stats.reports_failed.load(Ordering::Relaxed);
        (StatusCode::OK, format!("ready (reports sent: {sent}, failed: {failed})\n"))
    } else {
        let kinds: Vec<&str> = unsynced.iter().map(|kind| kind.as_str()).collect();
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: waiting for the initial list of {}\n", kinds.join(", ")))
    }
}

/// Serves the routes on an already bound listener until the task is dropped.
pub async fn serve(listener: TcpListener, handle: ViewHandle, stats: Arc<ReportStats>) -> std::io::Result<()> {
    axum::serve(listener, router(handle, stats)).await
}
