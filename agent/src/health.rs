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

/// Prometheus text exposition of the reporter's counters.
///
/// | metric | type | meaning |
/// | --- | --- | --- |
/// | `kplan_agent_reports_sent_total` | counter | snapshots the server acknowledged |
/// | `kplan_agent_report_failures_total` | counter | report attempts that failed (each retry counts) |
/// | `kplan_agent_snapshots_built_total` | counter | snapshots built from the view |
/// | `kplan_agent_last_report_timestamp_seconds` | gauge | Unix time of the last acknowledged report (0 before) |
/// | `kplan_agent_ready` | gauge | 1 once every watcher has listed once |
///
/// Written by hand from the atomics the reporter already keeps: five samples
/// do not need a registry.
pub fn metrics_text(handle: &ViewHandle, stats: &ReportStats) -> String {
    let ready = handle.read(|view| view.unsynced_kinds().is_empty());
    let samples: [(&str, &str, &str, u64); 5] = [
        (
            "kplan_agent_reports_sent",
            "counter",
            "Snapshots the server acknowledged",
            stats.reports_sent.load(Ordering::Relaxed),
        ),
        (
            "kplan_agent_report_failures",
            "counter",
            "Report attempts that failed",
            stats.reports_failed.load(Ordering::Relaxed),
        ),
        (
            "kplan_agent_snapshots_built",
            "counter",
            "Snapshots built from the view",
            stats.snapshots_built.load(Ordering::Relaxed),
        ),
        (
            "kplan_agent_last_report_timestamp_seconds",
            "gauge",
            "Unix time of the last acknowledged report",
            stats.last_report_unix.load(Ordering::Relaxed),
        ),
        ("kplan_agent_ready", "gauge", "1 once every watcher has listed once", u64::from(ready)),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in samples {
        let sample = if kind == "counter" { format!("{name}_total") } else { name.to_string() };
        out.push_str(&format!("# HELP {name} {help}.\n# TYPE {name} {kind}\n{sample} {value}\n"));
    }
    out.push_str("# EOF\n");
    out
}

/// Serves `/metrics` on an already bound listener until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, handle: ViewHandle, stats: Arc<ReportStats>) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(state): State<HealthState>| async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    metrics_text(&state.handle, &state.stats),
                )
            }),
        )
        .with_state(HealthState { handle, stats });
    axum::serve(listener, app).await
}

/// Serves the routes on an already bound listener until the task is dropped.
pub async fn serve(listener: TcpListener, handle: ViewHandle, stats: Arc<ReportStats>) -> std::io::Result<()> {
    axum::serve(listener, router(handle, stats)).await
}
