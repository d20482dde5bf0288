//! Prometheus metrics of the server, served as text on `metrics_listen`
//! (`GET /metrics`), with `/healthz` (the process answers) and `/readyz` (the
//! store is open and verified) beside them for HTTP probes.
//!
//! | metric | type | meaning |
//! | --- | --- | --- |
//! | `kplan_snapshots_received_total` | counter | snapshots stored (new generations) |
//! | `kplan_snapshots_replayed_total` | counter | idempotent replays of a stored generation |
//! | `kplan_snapshots_refused_total{reason}` | counter | refused: `invalid`, `stale_generation`, `conflicting_replay`, `store_error` |
//! | `kplan_cluster_last_report_age_seconds{cluster_id}` | gauge | seconds since each cluster's last stored report |
//! | `kplan_clusters` | gauge | clusters in the inventory |
//! | `kplan_plans_proposed_total` | counter | plans proposed and stored |
//! | `kplan_plan_solve_seconds` | histogram | time to propose a plan |
//! | `kplan_store_size_bytes` | gauge | bytes the sled store occupies on disk |
//! | `kplan_plan_health{plan_id}` | gauge | per approved plan: 0 ok, 1 drifted (after its first re-check) |
//! | `kplan_plan_findings{plan_id,kind}` | gauge | findings of its last re-check, by kind |
//! | `kplan_plan_waves_done{plan_id}`, `kplan_plan_waves_total{plan_id}` | gauge | waves done (read from the inventory), of all |
//! | `kplan_plan_waves_in_progress{plan_id}` | gauge | waves begun, not done |
//! | `kplan_plan_oldest_report_age_seconds{plan_id}` | gauge | age of the oldest newest report among the clusters it depends on |
//! | `kplan_plan_wave_in_progress_seconds{plan_id}` | gauge | how long its longest-running wave in progress has been (0: none) |
//! | `kplan_plan_waves_stalled{plan_id}` | gauge | waves in progress longer than `watch_wave_stall_seconds` |
//! | `kplan_plan_silent_clusters{plan_id}` | gauge | clusters it depends on that stopped reporting (`watch_stale_after_seconds`) |
//! | `kplan_plan_rechecks_total` | counter | re-checks of approved plans |
//! | `kplan_tls_certificate_expiry_timestamp_seconds` | gauge | notAfter of the server certificate in use (unix seconds; 0 without TLS) |
//! | `kplan_tls_reloads_total{file,result}` | counter | reloads of a changed TLS or token file (`file`: `cert`, `key`, `client_ca`, `token`; `result`: `success`, `failure`) |
//! | `kplan_tls_last_reload_success{file}` | gauge | 1 if the file's last change was loaded (or none since the start), 0 if it was refused and the previous one is in use |

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use kplan_store::{Store, StoreError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabel {
    pub file: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileResultLabel {
    pub file: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    pub cluster_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabel {
    pub plan_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanKindLabel {
    pub plan_id: String,
    pub kind: String,
}

/// The per-plan gauges of the approved plans.
#[derive(Debug, Default)]
struct PlanGauges {
    health: Family<PlanLabel, Gauge>,
    findings: Family<PlanKindLabel, Gauge>,
    waves_done: Family<PlanLabel, Gauge>,
    waves_total: Family<PlanLabel, Gauge>,
    waves_in_progress: Family<PlanLabel, Gauge>,
    oldest_report_age: Family<PlanLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    silent_clusters: Family<PlanLabel, Gauge>,
    waves_stalled: Family<PlanLabel, Gauge>,
    wave_in_progress_seconds: Family<PlanLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// What each exported plan's time-based gauges are computed from at every
    /// scrape, and which finding kinds it exported (to zero and remove them).
    exported: Mutex<BTreeMap<String, PlanTimes>>,
}

#[derive(Debug, Default)]
struct PlanTimes {
    kinds: BTreeSet<String>,
    /// The oldest newest report it depends on (0: none).
    oldest_report_unix: i64,
    /// Since when each wave in progress has been.
    in_progress_since: Vec<i64>,
    stall_seconds: i64,
}

impl PlanGauges {
    /// The gauges that grow with time between re-checks.
    fn refresh_times(&self, plan_id: &str, times: &PlanTimes, now_unix: i64) {
        let plan = PlanLabel { plan_id: plan_id.to_string() };
        let age = |since: i64| (now_unix - since).max(0);
        let report_age = if times.oldest_report_unix > 0 { age(times.oldest_report_unix) } else { 0 };
        self.oldest_report_age.get_or_create(&plan).set(report_age as f64);
        let longest = times.in_progress_since.iter().map(|since| age(*since)).max().unwrap_or(0);
        self.wave_in_progress_seconds.get_or_create(&plan).set(longest as f64);
        let stalled = times.in_progress_since.iter().filter(|since| age(**since) > times.stall_seconds).count();
        self.waves_stalled.get_or_create(&plan).set(stalled as i64);
    }
}

/// The reasons of `kplan_snapshots_refused_total`.
pub const REFUSAL_REASONS: [&str; 4] = ["invalid", "stale_generation", "conflicting_replay", "store_error"];

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub snapshots_received: Counter,
    pub snapshots_replayed: Counter,
    pub snapshots_refused: Family<ReasonLabel, Counter>,
    pub plans_proposed: Counter,
    pub plan_solve_seconds: Histogram,
    cluster_age: Family<ClusterLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    clusters: Gauge,
    store_size: Gauge,
    plans: PlanGauges,
    pub plan_rechecks: Counter,
    tls_certificate_expiry: Gauge,
    tls_reloads: Family<FileResultLabel, Counter>,
    tls_last_reload_success: Family<FileLabel, Gauge>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kplan");
        let snapshots_received = Counter::default();
        registry.register("snapshots_received", "Snapshots stored as new generations", snapshots_received.clone());
        let snapshots_replayed = Counter::default();
        registry.register(
            "snapshots_replayed",
            "Idempotent replays of a stored generation",
            snapshots_replayed.clone(),
        );
        let snapshots_refused = Family::<ReasonLabel, Counter>::default();
        // Every reason exists from the start, at zero, so rates work from the first scrape.
        for reason in REFUSAL_REASONS {
            let _ = snapshots_refused.get_or_create(&ReasonLabel { reason });
        }
        registry.register("snapshots_refused", "Snapshots refused, by reason", snapshots_refused.clone());
        let plans_proposed = Counter::default();
        registry.register("plans_proposed", "Plans proposed and stored", plans_proposed.clone());
        let plan_solve_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        registry.register("plan_solve_seconds", "Time to propose a plan, in seconds", plan_solve_seconds.clone());
        let cluster_age = Family::<ClusterLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "cluster_last_report_age_seconds",
            "Seconds since each cluster's last stored report",
            cluster_age.clone(),
        );
        let clusters = Gauge::default();
        registry.register("clusters", "Clusters in the inventory", clusters.clone());
        let store_size = Gauge::default();
        registry.register("store_size_bytes", "Bytes the store occupies on disk", store_size.clone());
        let plans = PlanGauges::default();
        registry.register("plan_health", "Per approved plan: 0 ok, 1 drifted", plans.health.clone());
        registry.register(
            "plan_findings",
            "Findings of an approved plan's last re-check, by kind",
            plans.findings.clone(),
        );
        registry.register(
            "plan_waves_done",
            "Waves of an approved plan done, read from the inventory",
            plans.waves_done.clone(),
        );
        registry.register("plan_waves_total", "Waves of an approved plan", plans.waves_total.clone());
        registry.register(
            "plan_waves_in_progress",
            "Waves of an approved plan begun and not done",
            plans.waves_in_progress.clone(),
        );
        registry.register(
            "plan_oldest_report_age_seconds",
            "Age of the oldest newest report among the clusters an approved plan depends on",
            plans.oldest_report_age.clone(),
        );
        registry.register(
            "plan_wave_in_progress_seconds",
            "How long the longest-running wave in progress of an approved plan has been",
            plans.wave_in_progress_seconds.clone(),
        );
        registry.register(
            "plan_waves_stalled",
            "Waves of an approved plan in progress for longer than watch_wave_stall_seconds",
            plans.waves_stalled.clone(),
        );
        registry.register(
            "plan_silent_clusters",
            "Clusters an approved plan depends on that stopped reporting",
            plans.silent_clusters.clone(),
        );
        let plan_rechecks = Counter::default();
        registry.register("plan_rechecks", "Re-checks of approved plans", plan_rechecks.clone());
        let tls_certificate_expiry = Gauge::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "notAfter of the server certificate in use, unix seconds (0 without TLS)",
            tls_certificate_expiry.clone(),
        );
        let tls_reloads = Family::<FileResultLabel, Counter>::default();
        registry.register("tls_reloads", "Reloads of changed TLS and token files, by result", tls_reloads.clone());
        let tls_last_reload_success = Family::<FileLabel, Gauge>::default();
        registry.register(
            "tls_last_reload_success",
            "1 if the file's last change was loaded, 0 if it was refused (the previous one is in use)",
            tls_last_reload_success.clone(),
        );
        Metrics {
            tls_certificate_expiry,
            tls_reloads,
            tls_last_reload_success,
            registry,
            plans,
            plan_rechecks,
            snapshots_received,
            snapshots_replayed,
            snapshots_refused,
            plans_proposed,
            plan_solve_seconds,
            cluster_age,
            clusters,
            store_size,
            ready: AtomicBool::new(false),
        }
    }

    pub fn refused(&self, reason: &'static str) {
        self.snapshots_refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Records an approved plan's last re-check (`record`: its stored health and
    /// the times its waves in progress began; a wave in progress longer than
    /// `stall_seconds` has stalled).
    pub fn set_plan(
        &self,
        plan_id: &str,
        record: &kplan_model::watch::PlanWatch,
        progress: &kplan_model::watch::PlanProgress,
        now_unix: i64,
        stall_seconds: i64,
    ) {
        use kplan_model::watch::{HealthStatus, Progress};
        self.plan_rechecks.inc();
        let plan = PlanLabel { plan_id: plan_id.to_string() };
        let gauges = &self.plans;
        gauges.health.get_or_create(&plan).set(i64::from(record.health.status == HealthStatus::Drifted));
        gauges.waves_done.get_or_create(&plan).set(progress.waves_done as i64);
        gauges.waves_total.get_or_create(&plan).set(progress.waves_total as i64);
        let in_progress = progress.waves.iter().filter(|w| w.progress == Progress::InProgress).count();
        gauges.waves_in_progress.get_or_create(&plan).set(in_progress as i64);
        gauges.silent_clusters.get_or_create(&plan).set(progress.silent_clusters.len() as i64);
        let mut by_kind: BTreeMap<&str, i64> = BTreeMap::new();
        for finding in &record.health.findings {
            *by_kind.entry(finding.kind.as_str()).or_default() += 1;
        }
        let mut exported = gauges.exported.lock().unwrap_or_else(PoisonError::into_inner);
        let times = exported.entry(plan_id.to_string()).or_default();
        for kind in times.kinds.iter().filter(|kind| !by_kind.contains_key(kind.as_str())) {
            gauges.findings.get_or_create(&PlanKindLabel { plan_id: plan_id.into(), kind: kind.clone() }).set(0);
        }
        for (kind, n) in &by_kind {
            gauges.findings.get_or_create(&PlanKindLabel { plan_id: plan_id.into(), kind: kind.to_string() }).set(*n);
            times.kinds.insert(kind.to_string());
        }
        times.oldest_report_unix = progress.oldest_report_unix;
        times.in_progress_since = record.in_progress_since.values().copied().collect();
        times.stall_seconds = stall_seconds;
        gauges.refresh_times(plan_id, times, now_unix);
    }

    /// Drops the series of plans that are no longer approved.
    pub fn retain_plans(&self, approved: &[String]) {
        let gauges = &self.plans;
        let mut exported = gauges.exported.lock().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<String> = exported.keys().filter(|id| !approved.contains(id)).cloned().collect();
        for plan_id in gone {
            let plan = PlanLabel { plan_id: plan_id.clone() };
            for family in [
                &gauges.health,
                &gauges.waves_done,
                &gauges.waves_total,
                &gauges.waves_in_progress,
                &gauges.silent_clusters,
                &gauges.waves_stalled,
            ] {
                family.remove(&plan);
            }
            gauges.oldest_report_age.remove(&plan);
            gauges.wave_in_progress_seconds.remove(&plan);
            if let Some(times) = exported.remove(&plan_id) {
                for kind in times.kinds {
                    gauges.findings.remove(&PlanKindLabel { plan_id: plan_id.clone(), kind });
                }
            }
        }
    }

    /// The notAfter of the server certificate in use.
    pub fn set_tls_certificate_expiry(&self, not_after_unix: i64) {
        self.tls_certificate_expiry.set(not_after_unix);
    }

    /// A reload of `file`: `None` at the start (both results at zero, success 1).
    pub fn tls_reloaded(&self, file: &'static str, success: Option<bool>) {
        for result in ["success", "failure"] {
            let counter = self.tls_reloads.get_or_create(&FileResultLabel { file, result });
            if success == Some(result == "success") {
                counter.inc();
            }
        }
        self.tls_last_reload_success.get_or_create(&FileLabel { file }).set(i64::from(success != Some(false)));
    }

    /// Every metric, without refreshing the store's gauges (tests).
    pub fn render_registry(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Refreshes the gauges read from the store, then encodes every metric.
    pub fn render(
        &self,
        store: &dyn Store,
        store_size_bytes: Option<u64>,
        now_unix: i64,
    ) -> Result<String, StoreError> {
        let clusters = store.list_clusters()?;
        self.clusters.set(clusters.len() as i64);
        for cluster in &clusters {
            self.cluster_age
                .get_or_create(&ClusterLabel { cluster_id: cluster.cluster_id.clone() })
                .set((now_unix - cluster.stored_at_unix).max(0) as f64);
        }
        if let Some(size) = store_size_bytes {
            self.store_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        }
        // Report ages and waves in progress grow between re-checks.
        for (plan_id, times) in self.plans.exported.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            self.plans.refresh_times(plan_id, times, now_unix);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        Ok(text)
    }
}

/// What the metrics endpoint reads at every scrape.
pub trait MetricsSource: Send + Sync + 'static {
    fn render(&self) -> Result<String, String>;
    fn ready(&self) -> bool;
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: Arc<dyn MetricsSource>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    let metrics_source = source.clone();
    let ready_source = source;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let source = metrics_source.clone();
                async move {
                    match tokio::task::spawn_blocking(move || source.render()).await {
                        Ok(Ok(text)) => (
                            StatusCode::OK,
                            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                            text,
                        ),
                        Ok(Err(err)) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], err)
                        }
                        Err(err) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], err.to_string())
                        }
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready_source.ready();
                async move {
                    if ready { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
                }
            }),
        );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Parses a `metrics_listen` value: empty means disabled.
pub fn listen_addr(text: &str) -> Option<Result<SocketAddr, std::net::AddrParseError>> {
    (!text.trim().is_empty()).then(|| text.trim().parse())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplan_store::SledStore;

    #[test]
    fn renders_counters_and_store_gauges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        let snapshot = kplan_model::ClusterSnapshot { cluster_id: "c1".into(), generation: 1, ..Default::default() };
        store.put_snapshot(&snapshot, 100).expect("stores");
        let metrics = Metrics::new();
        metrics.snapshots_received.inc();
        metrics.refused("stale_generation");
        let text = metrics.render(&store, Some(4096), 160).expect("renders");
        assert!(text.contains("kplan_snapshots_received_total 1"), "{text}");
        assert!(text.contains("kplan_snapshots_refused_total{reason=\"stale_generation\"} 1"), "{text}");
        assert!(text.contains("kplan_cluster_last_report_age_seconds{cluster_id=\"c1\"} 60"), "{text}");
        assert!(text.contains("kplan_clusters 1"), "{text}");
        assert!(text.contains("kplan_store_size_bytes 4096"), "{text}");
    }
}
