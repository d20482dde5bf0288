//! Reporting snapshots to kplan-server.
//!
//! Two tasks joined by a `tokio::sync::watch` channel that holds only the
//! newest snapshot (so an unsent snapshot is superseded, never queued):
//!
//! - the **builder** ([`run_builder`]) builds a snapshot from the view once
//!   the watchers have synced, then again when something that matters changed
//!   (debounced: it waits `debounce` after the first change, collecting the
//!   changes that follow, so at most one change-driven report per `debounce`
//!   and none later than `debounce` after a change), and at least every
//!   `interval` even without a change. A change-driven snapshot whose content
//!   equals the last one published is not published again;
//! - the **sender** ([`run_sender`]) delivers the newest snapshot. A failure
//!   is retried after a jittered, capped exponential backoff ([`Backoff`]);
//!   a newer snapshot published meanwhile replaces the one being retried at
//!   the next attempt, not sooner, so a busy cluster cannot turn an outage
//!   into a hot loop. Every report sent and every failure is logged.
//!
//! Generations ([`GenerationClock`]): the sender stamps each snapshot, at its
//! first attempt, with `max(previous + 1, now in unix milliseconds)`; retries
//! of that snapshot keep its generation, so a retry after a lost reply is an
//! idempotent replay on the server. Unix milliseconds grow across restarts
//! without any state on disk (the agent runs with a read-only root
//! filesystem), as long as the clock does not step back further than the
//! restart takes. If it does, or another writer stored a higher generation,
//! the server answers FAILED_PRECONDITION (or ALREADY_EXISTS); the sender
//! then asks the server for the newest stored generation, continues above it,
//! and logs a warning.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kplan_model::ClusterSnapshot;
use kplan_proto::tls::{ClientSecurity, ClientSecurityError, SecurityFiles};
use kplan_proto::v1;
use tokio::sync::watch;
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tracing::{error, info, warn};

use crate::view::ViewError;
use crate::watch::ViewHandle;

/// The newest snapshot to deliver; `None` until the first one is built.
pub type SnapshotSlot = watch::Sender<Option<Arc<ClusterSnapshot>>>;

/// Counters of the reporter, for health and metrics.
#[derive(Debug, Default)]
pub struct ReportStats {
    pub reports_sent: AtomicU64,
    pub reports_failed: AtomicU64,
    pub snapshots_built: AtomicU64,
    /// Unix seconds of the last delivered report; 0 before the first.
    pub last_report_unix: AtomicU64,
}

/// Jittered, capped exponential backoff: the n-th delay (from 0) is drawn
/// uniformly from `[d/2, d]` where `d = min(max, initial * 2^n)`. Until the
/// cap, every delay is at least the previous one's upper bound, so the
/// delays grow; at the cap they stay between `max/2` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max: max.max(initial), attempt: 0 }
    }

    /// The un-jittered delay of the next attempt.
    fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(rand::random::<f64>()) + (ceiling - half * 2)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Generations that only grow: `max(previous + 1, unix milliseconds)`.
#[derive(Debug, Clone, Default)]
pub struct GenerationClock {
    last: u64,
}

impl GenerationClock {
    pub fn next_generation(&mut self) -> u64 {
        self.last = self.last.saturating_add(1).max(unix_millis());
        self.last
    }

    /// The server holds `stored`: continue above it.
    pub fn raise_above(&mut self, stored: u64) {
        self.last = self.last.max(stored);
    }
}

pub fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub fn unix_seconds() -> i64 {
    kplan_model::time::now_unix()
}

/// Why a snapshot was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Initial,
    Change,
    Interval,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Initial => "initial",
            Trigger::Change => "change",
            Trigger::Interval => "interval",
        }
    }
}

/// When the builder builds.
#[derive(Debug, Clone, Copy)]
pub struct BuildTiming {
    pub debounce: Duration,
    pub interval: Duration,
}

/// Builds snapshots from the view into `slot` (see the module documentation).
/// Runs until `slot` has no receiver left.
pub async fn run_builder(handle: ViewHandle, timing: BuildTiming, slot: SnapshotSlot, stats: Arc<ReportStats>) {
    let mut changes = handle.subscribe();
    handle.wait_synced().await;
    changes.mark_unchanged();
    let mut last_content: Option<ClusterSnapshot> = None;
    let mut next_periodic = tokio::time::Instant::now() + timing.interval;
    let mut trigger = Trigger::Initial;
    // A periodic report deferred by a relist is made by the next build.
    let mut periodic_due = false;
    loop {
        if slot.is_closed() {
            return;
        }
        if trigger == Trigger::Interval {
            periodic_due = true;
            next_periodic = tokio::time::Instant::now() + timing.interval;
        }
        let started = Instant::now();
        // Built with generation 0: the sender stamps the generation.
        match handle.read(|view| view.snapshot(0, unix_seconds())) {
            Ok(snapshot) => {
                let content = ClusterSnapshot { collected_at_unix: 0, ..snapshot.clone() };
                let unchanged = last_content.as_ref() == Some(&content);
                if periodic_due || !unchanged {
                    let trigger = if periodic_due && unchanged { Trigger::Interval } else { trigger };
                    stats.snapshots_built.fetch_add(1, Ordering::Relaxed);
                    info!(
                        trigger = trigger.as_str(),
                        n_nodes = snapshot.nodes.len(),
                        n_namespaces = snapshot.namespaces.len(),
                        build_ms = started.elapsed().as_secs_f64() * 1000.0,
                        "snapshot built"
                    );
                    slot.send_replace(Some(Arc::new(snapshot)));
                    last_content = Some(content);
                    next_periodic = tokio::time::Instant::now() + timing.interval;
                    periodic_due = false;
                }
            }
            // A relist under way ends with a change notification: build then.
            Err(ViewError::Listing { .. } | ViewError::NotSynced { .. }) => {}
            Err(error) => {
                periodic_due = false;
                warn!(trigger = trigger.as_str(), error = %error, "no snapshot: the cluster breaks the label contract");
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(timing.debounce).await;
                changes.mark_unchanged();
                trigger = Trigger::Change;
            }
            () = tokio::time::sleep_until(next_periodic) => {
                trigger = Trigger::Interval;
            }
        }
    }
}

/// A report refused or not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code:?})")]
pub struct ReportError {
    pub code: Code,
    pub message: String,
}

impl From<tonic::Status> for ReportError {
    fn from(status: tonic::Status) -> Self {
        ReportError { code: status.code(), message: status.message().to_string() }
    }
}

/// What the sender needs from the server.
pub trait SnapshotSink {
    /// Stores the snapshot; `Ok(created)` once it is durable.
    fn report(&mut self, snapshot: ClusterSnapshot) -> impl Future<Output = Result<bool, ReportError>> + Send;
    /// The newest generation stored for the cluster, if any.
    fn newest_generation(&mut self, cluster_id: &str) -> impl Future<Output = Result<Option<u64>, ReportError>> + Send;
}

/// kplan-server over gRPC (`kplan.v1.InventoryService/ReportSnapshot`, gzip).
///
/// Certificate rotation: before every call the CA, certificate, key and token
/// files are read again; when they changed (a Kubernetes Secret updated in
/// place, as cert-manager does), the call and those after it go over a new
/// channel built from them, so the new certificate or token is presented at
/// once, without a restart. When the changed files are not usable (a key that
/// does not match, a half-written file), the channel in use stays and the
/// problem is logged once per change.
#[derive(Debug, Clone)]
pub struct GrpcSink {
    url: String,
    timeout: Duration,
    security: ClientSecurity,
    /// The files as last read, and the problem they had (logged once).
    files: SecurityFiles,
    files_problem: Option<String>,
    channel: kplan_proto::tls::AuthChannel,
}

impl GrpcSink {
    /// Does not connect: the first report does, and every failed call
    /// reconnects at the next. TLS, timeouts and keepalives come from the
    /// shared client helper (`kplan_proto::tls`), as in the CLI.
    pub fn new(url: &str, timeout: Duration, security: &ClientSecurity) -> Result<Self, ClientSecurityError> {
        let files = security.read_files()?;
        let channel = Self::channel(url, timeout, security)?;
        Ok(GrpcSink { url: url.to_string(), timeout, security: security.clone(), files, files_problem: None, channel })
    }

    fn channel(
        url: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> Result<kplan_proto::tls::AuthChannel, ClientSecurityError> {
        let endpoint = security.endpoint(url)?.connect_timeout(timeout).timeout(timeout);
        security.channel(endpoint.connect_lazy())
    }

    /// The channel of the files on disk now (see the type's documentation).
    fn current_channel(&mut self) -> kplan_proto::tls::AuthChannel {
        let read = self.security.read_files();
        let problem = match read {
            Ok(files) if files == self.files => None,
            Ok(files) => match Self::channel(&self.url, self.timeout, &self.security) {
                Ok(channel) => {
                    self.channel = channel;
                    self.files = files;
                    info!(server = %self.url, "the TLS or token files changed: reporting with the new ones");
                    None
                }
                Err(err) => Some(err.to_string()),
            },
            Err(err) => Some(err.to_string()),
        };
        if let Some(problem) = &problem
            && self.files_problem.as_ref() != Some(problem)
        {
            error!(server = %self.url, error = %problem, "the changed TLS or token files are not usable; the previous ones stay in use");
        }
        self.files_problem = problem;
        self.channel.clone()
    }
}

impl SnapshotSink for GrpcSink {
    async fn report(&mut self, snapshot: ClusterSnapshot) -> Result<bool, ReportError> {
        let channel = self.current_channel();
        let mut client = v1::inventory_service_client::InventoryServiceClient::new(channel)
            .send_compressed(CompressionEncoding::Gzip)
            .max_encoding_message_size(usize::MAX);
        let request = v1::ReportSnapshotRequest { snapshot: Some(snapshot.into()) };
        Ok(client.report_snapshot(request).await?.into_inner().created)
    }

    async fn newest_generation(&mut self, cluster_id: &str) -> Result<Option<u64>, ReportError> {
        let mut client = v1::query_service_client::QueryServiceClient::new(self.current_channel())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(usize::MAX);
        let request = v1::GetClusterRequest { cluster_id: cluster_id.to_string(), generation: 0 };
        match client.get_cluster(request).await {
            Ok(reply) => Ok(reply.into_inner().summary.map(|summary| summary.generation)),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }
}

/// Retry delays of the sender.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

/// Delivers the newest snapshot of `snapshots` (see the module documentation).
/// Runs until the builder side is dropped.
pub async fn run_sender<S: SnapshotSink>(
    mut sink: S,
    mut snapshots: watch::Receiver<Option<Arc<ClusterSnapshot>>>,
    retry: RetryPolicy,
    stats: Arc<ReportStats>,
) {
    let mut clock = GenerationClock::default();
    let mut backoff = Backoff::new(retry.initial, retry.max);
    loop {
        if snapshots.changed().await.is_err() {
            return;
        }
        backoff.reset();
        let mut attempt = 0u32;
        // The snapshot being delivered and its generation.
        let mut current: Option<(Arc<ClusterSnapshot>, u64)> = None;
        loop {
            let Some(newest) = snapshots.borrow_and_update().clone() else { break };
            let (content, generation) = match current.take() {
                Some((content, generation)) if Arc::ptr_eq(&content, &newest) => (content, generation),
                previous => {
                    if let Some((_, superseded)) = previous {
                        info!(generation = superseded, "undelivered snapshot superseded by a newer one");
                    }
                    (newest, clock.next_generation())
                }
            };
            current = Some((content.clone(), generation));
            attempt += 1;
            let snapshot = ClusterSnapshot { generation, ..(*content).clone() };
            let (n_nodes, n_namespaces) = (snapshot.nodes.len(), snapshot.namespaces.len());
            let started = Instant::now();
            match sink.report(snapshot).await {
                Ok(created) => {
                    stats.reports_sent.fetch_add(1, Ordering::Relaxed);
                    stats.last_report_unix.store(unix_seconds().max(0) as u64, Ordering::Relaxed);
                    info!(
                        cluster_id = %content.cluster_id,
                        generation,
                        n_nodes,
                        n_namespaces,
                        created,
                        attempt,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "snapshot reported"
                    );
                    break;
                }
                Err(failure) => {
                    stats.reports_failed.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.next_delay();
                    let retry_in_ms = delay.as_millis() as u64;
                    if matches!(failure.code, Code::FailedPrecondition | Code::AlreadyExists) {
                        // The server holds this generation or a newer one:
                        // continue above the newest stored.
                        match sink.newest_generation(&content.cluster_id).await {
                            Ok(stored) => clock.raise_above(stored.unwrap_or(generation).max(generation)),
                            Err(_) => clock.raise_above(generation),
                        }
                        current = None;
                        warn!(
                            cluster_id = %content.cluster_id, generation, attempt, retry_in_ms, error = %failure,
                            "report refused: the server holds a newer generation (clock stepped back, or another \
                             agent reports this cluster id); continuing above it"
                        );
                    } else if failure.code == Code::InvalidArgument {
                        error!(
                            cluster_id = %content.cluster_id, generation, attempt, retry_in_ms, error = %failure,
                            "report refused: the server finds the snapshot invalid"
                        );
                    } else {
                        warn!(
                            cluster_id = %content.cluster_id, generation, attempt, retry_in_ms, error = %failure,
                            "report failed"
                        );
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    #[test]
    fn backoff_grows_doubles_and_caps_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1600));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        let ceilings = [100, 200, 400, 800, 1600, 1600, 1600, 1600];
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            let ceiling = Duration::from_millis(ceiling);
            assert!(*delay >= ceiling / 2 && *delay <= ceiling, "{delay:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
        }
        for pair in delays.windows(2).take(4) {
            assert!(pair[1] >= pair[0], "delays must not shrink before the cap: {delays:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
        let mut huge = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            assert!(huge.next_delay() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn generations_only_grow() {
        let mut clock = GenerationClock::default();
        let first = clock.next_generation();
        assert!(first >= unix_millis() - 1000);
        let mut previous = first;
        for _ in 0..1000 {
            let next = clock.next_generation();
            assert!(next > previous);
            previous = next;
        }
        clock.raise_above(u64::MAX / 2);
        assert_eq!(clock.next_generation(), u64::MAX / 2 + 1);
    }

    /// A server that fails a given number of times, then stores.
    #[derive(Clone, Default)]
    struct FakeSink {
        failures: Arc<Mutex<VecDeque<ReportError>>>,
        stored: Arc<Mutex<Vec<ClusterSnapshot>>>,
        attempts: Arc<Mutex<Vec<(tokio::time::Instant, u64, usize)>>>,
        newest: Arc<Mutex<Option<u64>>>,
    }

    impl SnapshotSink for FakeSink {
        async fn report(&mut self, snapshot: ClusterSnapshot) -> Result<bool, ReportError> {
            self.attempts.lock().unwrap().push((
                tokio::time::Instant::now(),
                snapshot.generation,
                snapshot.nodes.len(),
            ));
            if let Some(failure) = self.failures.lock().unwrap().pop_front() {
                return Err(failure);
            }
            *self.newest.lock().unwrap() = Some(snapshot.generation);
            self.stored.lock().unwrap().push(snapshot);
            Ok(true)
        }

        async fn newest_generation(&mut self, _: &str) -> Result<Option<u64>, ReportError> {
            Ok(*self.newest.lock().unwrap())
        }
    }

    fn unavailable() -> ReportError {
        ReportError { code: Code::Unavailable, message: "connection refused".into() }
    }

    fn snapshot_with(n_nodes: usize) -> Arc<ClusterSnapshot> {
        let node = kplan_model::Node {
            name: String::new(),
            labels: Default::default(),
            datacenter: "dc".into(),
            zone: "z".into(),
            role: Default::default(),
            allocatable: Default::default(),
            kubelet_version: String::new(),
            container_runtime: String::new(),
            architecture: String::new(),
            unschedulable: false,
            taints: Vec::new(),
            extended: Default::default(),
            runtime_handlers: Vec::new(),
        };
        let nodes = (0..n_nodes).map(|idx| kplan_model::Node { name: format!("n{idx}"), ..node.clone() }).collect();
        Arc::new(ClusterSnapshot { cluster_id: "c1".into(), nodes, ..ClusterSnapshot::default() })
    }

    const RETRY: RetryPolicy = RetryPolicy { initial: Duration::from_secs(1), max: Duration::from_secs(8) };

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_and_the_newest_snapshot_wins() {
        let sink = FakeSink::default();
        sink.failures.lock().unwrap().extend((0..6).map(|_| unavailable()));
        let (slot, receiver) = watch::channel(None);
        let stats = Arc::new(ReportStats::default());
        let sender = tokio::spawn(run_sender(sink.clone(), receiver, RETRY, stats.clone()));
        slot.send_replace(Some(snapshot_with(1)));
        // Newer snapshots arrive during the outage; only the newest is delivered.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        slot.send_replace(Some(snapshot_with(2)));
        slot.send_replace(Some(snapshot_with(3)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let stored = sink.stored.lock().unwrap().clone();
        assert_eq!(stored.len(), 1, "one delivery: {stored:?}");
        assert_eq!(stored[0].nodes.len(), 3);
        let attempts = sink.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 7);
        let gaps: Vec<Duration> = attempts.windows(2).map(|pair| pair[1].0 - pair[0].0).collect();
        let ceilings = [1, 2, 4, 8, 8, 8];
        for (gap, ceiling) in gaps.iter().zip(ceilings) {
            let ceiling = Duration::from_secs(ceiling);
            assert!(*gap >= ceiling / 2 && *gap <= ceiling, "gap {gap:?} for ceiling {ceiling:?}: {gaps:?}");
        }
        // Retries of one snapshot keep its generation; the newer one gets a higher one.
        assert_eq!(attempts[0].1, attempts[1].1);
        assert!(attempts[6].1 > attempts[0].1);
        assert_eq!(stats.reports_failed.load(Ordering::Relaxed), 6);
        assert_eq!(stats.reports_sent.load(Ordering::Relaxed), 1);
        drop(slot);
        sender.await.expect("sender ends when the builder is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_generation_on_the_server_is_overtaken() {
        let sink = FakeSink::default();
        let future = unix_millis() + 3_600_000;
        *sink.newest.lock().unwrap() = Some(future);
        sink.failures.lock().unwrap().push_back(ReportError {
            code: Code::FailedPrecondition,
            message: "generation is older than the stored generation".into(),
        });
        let (slot, receiver) = watch::channel(None);
        let sender = tokio::spawn(run_sender(sink.clone(), receiver, RETRY, Arc::default()));
        slot.send_replace(Some(snapshot_with(1)));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let stored = sink.stored.lock().unwrap().clone();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].generation, future + 1);
        drop(slot);
        sender.await.expect("ends");
    }

    fn k8s_node(zone: &str) -> k8s_openapi::api::core::v1::Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "w1", "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
        }))
        .expect("node")
    }

    #[tokio::test(start_paused = true)]
    async fn the_builder_debounces_changes_and_reports_periodically() {
        use crate::view::Kind;
        let options = crate::collect::CollectOptions {
            cluster_id: "c1".into(),
            datacenter: Some("dc".into()),
            ..Default::default()
        };
        let handle = ViewHandle::new(options);
        let (slot, mut receiver) = watch::channel(None);
        let timing = BuildTiming { debounce: Duration::from_secs(10), interval: Duration::from_secs(300) };
        let start = tokio::time::Instant::now();
        let builder = tokio::spawn(run_builder(handle.clone(), timing, slot, Arc::default()));
        let published = tokio::spawn(async move {
            let mut seen = Vec::new();
            while receiver.changed().await.is_ok() {
                let snapshot = receiver.borrow_and_update().clone().expect("a snapshot");
                seen.push(((tokio::time::Instant::now() - start).as_secs(), snapshot.nodes[0].zone.clone()));
            }
            seen
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        handle.update(|view| {
            for kind in Kind::ALL {
                view.begin_list(kind);
            }
            view.apply_node(&k8s_node("a"));
            Kind::ALL.into_iter().fold(false, |changed, kind| view.end_list(kind) | changed)
        });
        // Two changes 2 s apart: one snapshot, 10 s after the first, with both.
        tokio::time::sleep(Duration::from_secs(10)).await;
        handle.update(|view| view.apply_node(&k8s_node("b")));
        tokio::time::sleep(Duration::from_secs(2)).await;
        handle.update(|view| view.apply_node(&k8s_node("c")));
        // A change signal without a different snapshot publishes nothing.
        tokio::time::sleep(Duration::from_secs(30)).await;
        handle.update(|_| true);
        // Then only the interval.
        tokio::time::sleep(Duration::from_secs(700)).await;
        builder.abort();
        let seen = published.await.expect("collector");
        let expected: Vec<(u64, String)> =
            [(1, "a"), (21, "c"), (321, "c"), (621, "c")].iter().map(|(t, z)| (*t, z.to_string())).collect();
        assert_eq!(seen, expected);
    }
}
