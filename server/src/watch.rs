//! The daemon's watch over approved plans.
//!
//! - Lifecycle changes (approve, abandon) are made one at a time, stored (and
//!   flushed) before the call returns.
//! - When a snapshot of a cluster that an approved plan touches (a source, or
//!   a target reporting under its name) is stored, the ingest path only marks
//!   the plan dirty ([`Watcher::snapshot_stored`]: a map lookup and a set
//!   insert, never a wait). A background task takes the whole dirty set at
//!   once (and at most once per `watch_recheck_interval_ms`), so a burst of
//!   reports makes one re-check per plan, and re-runs the
//!   validator against the fresh inventory ([`kplan_planner::watch::plan_health`]).
//!   A re-check reads the store (snapshots still encoded) and writes its
//!   result at normal priority; decoding and checking run on one thread at
//!   SCHED_IDLE that holds none of the store's locks (see [`Watcher::recheck`]).
//!   The health is stored when it changed.
//! - Every re-check and lifecycle change bumps a change counter that the
//!   `WatchPlan` streams follow, and refreshes the per-plan metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use kplan_model::Policy;
use kplan_model::watch::{HealthStatus, PlanState, PlanStatus, PlanWatch};
use kplan_planner::watch::{ProgressOptions, lifecycle, plan_health, progress, touched_clusters};
use kplan_store::{EncodedSnapshot, Store, StoreError};
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::metrics::Metrics;

/// Why a lifecycle change or a status read failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("plan {0:?} is not stored")]
    NotFound(String),
    #[error(transparent)]
    Lifecycle(#[from] kplan_planner::watch::LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the re-check stopped before it finished (it panicked; see the log above)")]
    WorkerGone,
}

/// Niceness of the re-check thread (it also runs SCHED_IDLE): the scheduler
/// gives it what the report handlers (nice 0) leave.
const RECHECK_NICE: i32 = 19;

/// Lowers the calling thread's CPU priority to [`RECHECK_NICE`] and the
/// SCHED_IDLE policy (Linux: both are per thread; elsewhere nothing).
#[allow(unsafe_code)]
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority reads and writes no memory of ours; `who = 0` names
        // the calling thread (Linux keeps the nice value per thread).
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, RECHECK_NICE) };
        if rc != 0 {
            warn!(error = %std::io::Error::last_os_error(), "lowering the re-check thread's priority failed");
        }
        // SCHED_IDLE: a report handler waking up preempts the re-check at once
        // (a nice value alone still lets it finish its slice first).
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is
        // the calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            warn!(error = %std::io::Error::last_os_error(), "making the re-check thread SCHED_IDLE failed");
        }
    }
}

/// The watch's settings (from the server's configuration).
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// A cluster whose newest report is older than this has stopped reporting.
    pub stale_after_seconds: i64,
    /// A wave in progress longer than this has stalled (`kplan_plan_waves_stalled`).
    pub wave_stall_seconds: i64,
    /// At least this long between the starts of two re-check runs, and a
    /// long run is followed by a rest three times as long as it took:
    /// reports arriving meanwhile wait for the next run (a steady stream of
    /// reports costs one run per interval, not one per report).
    pub recheck_interval: std::time::Duration,
}

/// A lifecycle change's outcome.
#[derive(Debug, Clone)]
pub struct LifecycleChange {
    pub record: PlanWatch,
    pub superseded: Vec<String>,
}

#[derive(Debug)]
pub struct Watcher {
    store: Arc<dyn Store>,
    default_policy: Arc<Policy>,
    settings: WatchSettings,
    metrics: Arc<Metrics>,
    /// Cluster id → the approved plans that touch it.
    index: RwLock<BTreeMap<String, BTreeSet<String>>>,
    /// Approved plans to re-check.
    dirty: Mutex<BTreeSet<String>>,
    wake: Notify,
    /// Bumped after every re-check and lifecycle change (`WatchPlan` follows it).
    changes: watch::Sender<u64>,
    /// One lifecycle change or health write at a time (read-modify-write of the records).
    records: Mutex<()>,
    /// The approved plans, decoded once (a stored plan never changes).
    plans: Mutex<BTreeMap<String, Arc<kplan_model::Plan>>>,
    /// The snapshots re-checks read, still encoded, by cluster and generation
    /// (a stored generation never changes): the snapshots the approved plans
    /// were made from and every cluster's newest. A re-check reads from the
    /// store only the generations that arrived since the last one; reading
    /// all of an XL estate's (1,800 values) each time took the CPU and sled's
    /// page cache from the reports (`benchmarks/watch-ingest.md`).
    encoded: Mutex<BTreeMap<(String, u64), Arc<EncodedSnapshot>>>,
}

impl Watcher {
    pub fn new(
        store: Arc<dyn Store>,
        default_policy: Arc<Policy>,
        metrics: Arc<Metrics>,
        settings: WatchSettings,
    ) -> Arc<Watcher> {
        Arc::new(Watcher {
            store,
            default_policy,
            settings,
            metrics,
            index: RwLock::default(),
            dirty: Mutex::default(),
            wake: Notify::new(),
            changes: watch::channel(0).0,
            records: Mutex::new(()),
            plans: Mutex::default(),
            encoded: Mutex::default(),
        })
    }

    /// Rebuilds the index of approved plans, marks them all dirty and starts
    /// the re-check task. Call once, with the store open.
    pub fn start(self: &Arc<Self>) {
        let watcher = self.clone();
        tokio::spawn(async move {
            let rebuilt = {
                let watcher = watcher.clone();
                tokio::task::spawn_blocking(move || watcher.rebuild_index()).await
            };
            match rebuilt {
                Ok(Ok(approved)) => {
                    info!(n_approved = approved.len(), "watching approved plans");
                    watcher.mark_dirty(approved);
                }
                Ok(Err(err)) => error!(error = %err, "reading the approved plans failed; none is watched"),
                Err(err) => error!(error = %err, "reading the approved plans failed; none is watched"),
            }
            watcher.run().await;
        });
    }

    /// Called after a snapshot is stored: marks the approved plans that touch
    /// `cluster_id` dirty. Never blocks on a re-check.
    pub fn snapshot_stored(&self, cluster_id: &str) {
        let plans = self.index.read().unwrap_or_else(PoisonError::into_inner).get(cluster_id).cloned();
        if let Some(plans) = plans {
            self.mark_dirty(plans);
        }
    }

    fn mark_dirty(&self, plans: impl IntoIterator<Item = String>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        let before = dirty.len();
        dirty.extend(plans);
        if dirty.len() > before {
            self.wake.notify_one();
        }
    }

    /// A receiver that sees every change (for `WatchPlan`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    async fn run(self: Arc<Self>) {
        let worker = low_priority_worker();
        let mut next_run: Option<tokio::time::Instant> = None;
        loop {
            self.wake.notified().await;
            if let Some(next_run) = next_run {
                tokio::time::sleep_until(next_run).await;
            }
            let started = tokio::time::Instant::now();
            let plans = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner));
            for plan_id in plans {
                if let Err(err) = self.clone().recheck(&plan_id, worker.as_ref()).await {
                    error!(plan_id = %plan_id, error = %err, "re-checking the plan failed");
                }
            }
            self.changed();
            next_run = Some(next_recheck(started, tokio::time::Instant::now(), self.settings.recheck_interval));
        }
    }

    /// Which clusters each approved plan touches; returns the approved plans.
    fn rebuild_index(&self) -> Result<Vec<String>, StoreError> {
        let mut index: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut approved = Vec::new();
        for (plan, _) in self.store.approved_plans()? {
            for cluster in touched_clusters(&plan) {
                index.entry(cluster).or_default().insert(plan.id.clone());
            }
            approved.push(plan.id);
        }
        let n_plans = approved.len();
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = index;
        self.plans.lock().unwrap_or_else(PoisonError::into_inner).retain(|id, _| approved.contains(id));
        self.metrics.retain_plans(&approved);
        tracing::debug!(n_plans, "watch index rebuilt");
        Ok(approved)
    }

    /// Approves a plan (blocking: call on a blocking thread). Stored and flushed before it returns.
    pub fn approve(&self, plan_id: &str, who: &str) -> Result<LifecycleChange, WatchError> {
        let outcome = {
            let _one_at_a_time = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            let plan = self.store.get_plan(plan_id)?.ok_or_else(|| WatchError::NotFound(plan_id.to_string()))?;
            let current = self.store.get_plan_watch(plan_id)?;
            let approved: Vec<_> = self
                .store
                .approved_plans()?
                .into_iter()
                .map(|(other, record)| (other.id.clone(), lifecycle::blocks_of(&other), record))
                .collect();
            let now = kplan_model::time::now_unix();
            let records = kplan_planner::watch::approve(&plan, current.as_ref(), &approved, who, now)?;
            if records.is_empty() {
                LifecycleChange { record: current.unwrap_or_default(), superseded: Vec::new() }
            } else {
                self.store.put_plan_watches(&records)?;
                let superseded = records[1..].iter().map(|(id, _)| id.clone()).collect();
                LifecycleChange { record: records[0].1.clone(), superseded }
            }
        };
        info!(plan_id, by = who, superseded = ?outcome.superseded, "plan approved");
        self.rebuild_index()?;
        self.mark_dirty([plan_id.to_string()]);
        self.changed();
        Ok(outcome)
    }

    /// Abandons a plan (blocking). Stored and flushed before it returns.
    pub fn abandon(&self, plan_id: &str, who: &str) -> Result<LifecycleChange, WatchError> {
        let record = {
            let _one_at_a_time = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            if self.store.get_plan(plan_id)?.is_none() {
                return Err(WatchError::NotFound(plan_id.to_string()));
            }
            let current = self.store.get_plan_watch(plan_id)?;
            match kplan_planner::watch::abandon(current.as_ref(), who, kplan_model::time::now_unix()) {
                Some(record) => {
                    self.store.put_plan_watches(&[(plan_id.to_string(), record.clone())])?;
                    record
                }
                None => current.unwrap_or_default(),
            }
        };
        info!(plan_id, by = who, "plan abandoned");
        self.rebuild_index()?;
        self.changed();
        Ok(LifecycleChange { record, superseded: Vec::new() })
    }

    /// Every plan ever acted on, with its record.
    pub fn lifecycles(&self) -> Result<Vec<(String, PlanWatch)>, StoreError> {
        self.store.list_plan_watches()
    }

    /// A stored plan (blocking).
    pub fn plan(&self, plan_id: &str) -> Result<kplan_model::Plan, WatchError> {
        self.store.get_plan(plan_id)?.ok_or_else(|| WatchError::NotFound(plan_id.to_string()))
    }

    /// A plan's lifecycle, stored health and progress read now (blocking).
    pub fn status(&self, plan_id: &str) -> Result<PlanStatus, WatchError> {
        let plan = self.store.get_plan(plan_id)?.ok_or_else(|| WatchError::NotFound(plan_id.to_string()))?;
        let record = self.store.get_plan_watch(plan_id)?.unwrap_or_default();
        let inventory = self.store.latest_snapshots()?;
        let summaries = self.store.list_clusters()?;
        let policy = plan.policy.clone().unwrap_or_else(|| self.default_policy.as_ref().clone());
        let progress = progress(&plan, &inventory, &summaries, &policy, self.progress_options());
        Ok(PlanStatus { plan_id: plan_id.to_string(), lifecycle: record.lifecycle, health: record.health, progress })
    }

    fn progress_options(&self) -> ProgressOptions {
        ProgressOptions {
            now_unix: kplan_model::time::now_unix(),
            stale_after_seconds: self.settings.stale_after_seconds,
        }
    }

    /// Re-checks one approved plan against the newest snapshots and stores its
    /// health when it changed. Its inputs are read, and its result stored, at
    /// normal priority on the blocking pool; the work between (decoding the
    /// snapshots, progress, the validator at every remaining wave) runs on the
    /// low-priority thread, holding none of the store's locks: sled's readers
    /// hold a lock every write waits for, so a reader preempted at SCHED_IDLE
    /// would make every report wait until a core falls idle.
    async fn recheck(self: Arc<Self>, plan_id: &str, worker: Option<&LowPriorityJobs>) -> Result<(), WatchError> {
        let started = std::time::Instant::now();
        let (watcher, id) = (self.clone(), plan_id.to_string());
        let inputs = tokio::task::spawn_blocking(move || watcher.read_inputs(&id))
            .await
            .unwrap_or_else(|_| Err(WatchError::WorkerGone))?;
        let Some(inputs) = inputs else { return Ok(()) };
        let options = self.progress_options();
        let computed = at_low_priority(worker, move || check(inputs, options)).await??;
        let (watcher, id) = (self.clone(), plan_id.to_string());
        tokio::task::spawn_blocking(move || watcher.store_check(&id, computed, started))
            .await
            .unwrap_or_else(|_| Err(WatchError::WorkerGone))
    }

    /// What a re-check of `plan_id` reads (blocking); `None` when it is not an approved plan.
    fn read_inputs(&self, plan_id: &str) -> Result<Option<RecheckInputs>, WatchError> {
        if self.store.get_plan_watch(plan_id)?.map(|r| r.lifecycle.state) != Some(PlanState::Approved) {
            return Ok(None);
        }
        let cached = self.plans.lock().unwrap_or_else(PoisonError::into_inner).get(plan_id).cloned();
        let plan = match cached {
            Some(plan) => plan,
            None => {
                let Some(plan) = self.store.get_plan(plan_id)? else { return Ok(None) };
                let plan = Arc::new(plan);
                self.plans.lock().unwrap_or_else(PoisonError::into_inner).insert(plan_id.to_string(), plan.clone());
                plan
            }
        };
        let policy = plan.policy.clone().unwrap_or_else(|| self.default_policy.as_ref().clone());
        let started = std::time::Instant::now();
        let summaries = self.store.list_clusters()?;
        let newest: Vec<(String, u64)> = summaries.iter().map(|s| (s.cluster_id.clone(), s.generation)).collect();
        let made_from: Vec<(String, u64)> =
            plan.inventory.iter().map(|input| (input.cluster_id.clone(), input.generation)).collect();
        let (fresh, planned) = (self.encoded_snapshots(&newest)?, self.encoded_snapshots(&made_from)?);
        self.prune_encoded(&newest);
        Ok(Some(RecheckInputs {
            fresh,
            summaries,
            planned,
            plan,
            policy,
            read_seconds: started.elapsed().as_secs_f64(),
        }))
    }

    /// These snapshots, encoded: from the cache, and from the store those not
    /// in it (blocking). A generation no longer stored is left out, as
    /// [`Store::snapshots_at_encoded`] does (history compaction removes
    /// generations: [`Watcher::history_compacted`] empties the cache).
    fn encoded_snapshots(&self, keys: &[(String, u64)]) -> Result<Vec<Arc<EncodedSnapshot>>, StoreError> {
        let mut found: Vec<Option<Arc<EncodedSnapshot>>> = {
            let cache = self.encoded.lock().unwrap_or_else(PoisonError::into_inner);
            keys.iter().map(|key| cache.get(key).cloned()).collect()
        };
        for (slot, (cluster_id, generation)) in found.iter_mut().zip(keys) {
            if slot.is_some() {
                continue;
            }
            let input = kplan_model::InventoryRef {
                cluster_id: cluster_id.clone(),
                generation: *generation,
                content_sha256: String::new(),
            };
            *slot = self.store.snapshots_at_encoded(std::slice::from_ref(&input))?.pop().map(Arc::new);
            if let Some(snapshot) = slot {
                let key = (cluster_id.clone(), *generation);
                self.encoded.lock().unwrap_or_else(PoisonError::into_inner).insert(key, snapshot.clone());
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// History compaction removed stored generations: what the re-checks kept
    /// is dropped, so they read (and leave out) exactly what is stored, as
    /// after a restart.
    pub fn history_compacted(&self) {
        self.encoded.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Keeps in the cache only what a re-check may read again: `newest`, and
    /// what the approved plans were made from.
    fn prune_encoded(&self, newest: &[(String, u64)]) {
        let mut keep: BTreeSet<(&str, u64)> = newest.iter().map(|(c, g)| (c.as_str(), *g)).collect();
        let plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        keep.extend(plans.values().flat_map(|p| p.inventory.iter().map(|i| (i.cluster_id.as_str(), i.generation))));
        self.encoded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(cluster_id, generation), _| keep.contains(&(cluster_id.as_str(), *generation)));
    }

    /// Stores a re-check's result when the plan is still approved (blocking).
    fn store_check(&self, plan_id: &str, checked: Checked, started: std::time::Instant) -> Result<(), WatchError> {
        let Checked { progress, health, now, timings } = checked;
        let record = {
            let _one_at_a_time = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(mut record) = self.store.get_plan_watch(plan_id)? else { return Ok(()) };
            if record.lifecycle.state != PlanState::Approved {
                return Ok(());
            }
            let changed = record.observe(health, &progress, now);
            // The metrics first: whoever reads the stored health (`plans
            // status`, a `WatchPlan` stream) then finds them at least as new.
            self.metrics.set_plan(plan_id, &record, &progress, now, self.settings.wave_stall_seconds);
            if changed {
                self.store.put_plan_watches(&[(plan_id.to_string(), record.clone())])?;
            }
            record
        };
        let n_findings = record.health.findings.len();
        let seconds = started.elapsed().as_secs_f64();
        if record.health.status == HealthStatus::Drifted {
            warn!(
                plan_id,
                n_findings,
                waves_done = progress.waves_done,
                seconds,
                read_seconds = timings.read,
                decode_seconds = timings.decode,
                validate_seconds = timings.validate,
                "approved plan drifted"
            );
        } else {
            info!(
                plan_id,
                waves_done = progress.waves_done,
                seconds,
                read_seconds = timings.read,
                decode_seconds = timings.decode,
                validate_seconds = timings.validate,
                "approved plan re-checked: ok"
            );
        }
        Ok(())
    }
}

/// What one re-check reads from the store; the snapshots still encoded.
struct RecheckInputs {
    plan: Arc<kplan_model::Plan>,
    policy: Policy,
    fresh: Vec<Arc<EncodedSnapshot>>,
    summaries: Vec<kplan_model::ClusterSummary>,
    planned: Vec<Arc<EncodedSnapshot>>,
    read_seconds: f64,
}

/// What one re-check found.
struct Checked {
    progress: kplan_model::watch::PlanProgress,
    health: kplan_model::watch::PlanHealth,
    now: i64,
    /// Where the re-check's time went, for its log line.
    timings: Timings,
}

/// Seconds spent in each step of a re-check (logged with its result).
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    read: f64,
    decode: f64,
    validate: f64,
}

/// The re-check itself: pure but for decoding, no store access (runs at low priority).
fn check(inputs: RecheckInputs, options: ProgressOptions) -> Result<Checked, WatchError> {
    let started = std::time::Instant::now();
    let decode = |encoded: &[Arc<EncodedSnapshot>]| {
        encoded.iter().map(|snapshot| snapshot.decode()).collect::<Result<Vec<_>, _>>()
    };
    let (fresh, planned) = (decode(&inputs.fresh)?, decode(&inputs.planned)?);
    let decoded = std::time::Instant::now();
    let (plan, policy) = (inputs.plan.as_ref(), &inputs.policy);
    let progress = progress(plan, &fresh, &inputs.summaries, policy, options);
    let health = plan_health(plan, policy, &planned, &fresh, &progress, options.now_unix);
    let timings = Timings {
        read: inputs.read_seconds,
        decode: (decoded - started).as_secs_f64(),
        validate: decoded.elapsed().as_secs_f64(),
    };
    Ok(Checked { progress, health, now: options.now_unix, timings })
}

/// A run of re-checks is followed by a rest this many times as long as it took.
const RECHECK_REST_FACTOR: u32 = 3;

/// When the next run of re-checks may start: `interval` after this one
/// started, and no sooner after it ended than [`RECHECK_REST_FACTOR`] times
/// what it lasted. Re-checks of large plans (2-3 s each on a 20,000-node
/// estate) under a steady stream of reports would otherwise run back to back;
/// this way they take at most a quarter of one core, whatever the estate
/// (two approved XL plans: a re-check about every 20 s), while small plans
/// keep `interval`. Even at SCHED_IDLE a re-check costs the reports
/// something (caches, memory bandwidth, its result's write): with a rest as
/// long as the run, the ingest p99 at 16 clients was 11% above the figure
/// without plans, with only the start-up re-check 3% (`benchmarks/watch-ingest.md`).
fn next_recheck(
    started: tokio::time::Instant,
    ended: tokio::time::Instant,
    interval: std::time::Duration,
) -> tokio::time::Instant {
    (started + interval).max(ended + (ended - started) * RECHECK_REST_FACTOR)
}

/// Work for the low-priority thread.
type LowPriorityJob = Box<dyn FnOnce() + Send>;
type LowPriorityJobs = std::sync::mpsc::Sender<LowPriorityJob>;

/// The thread re-checks compute on, at a lower CPU priority than the threads
/// that store and acknowledge reports (so a re-check never makes a report
/// wait for a core). `None` (the blocking pool instead) when the thread
/// cannot be started.
fn low_priority_worker() -> Option<LowPriorityJobs> {
    let (jobs, queue) = std::sync::mpsc::channel::<LowPriorityJob>();
    let started = std::thread::Builder::new().name("kplan-watch".into()).spawn(move || {
        lower_thread_priority();
        for job in queue {
            // A re-check that panics (a bug the validator met in some
            // inventory) fails that re-check only (its caller sees the reply
            // dropped), not every one after it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    });
    match started {
        Ok(_) => Some(jobs),
        Err(err) => {
            warn!(error = %err, "starting the re-check thread failed; re-checks run on the blocking pool");
            None
        }
    }
}

/// Runs `work` on the low-priority thread (or the blocking pool) and waits for it.
async fn at_low_priority<T: Send + 'static>(
    worker: Option<&LowPriorityJobs>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WatchError> {
    let (reply, done) = tokio::sync::oneshot::channel();
    let job: LowPriorityJob = Box::new(move || {
        let _ = reply.send(work());
    });
    match worker {
        Some(jobs) => jobs.send(job).map_err(|_| WatchError::WorkerGone)?,
        None => drop(tokio::task::spawn_blocking(job)),
    }
    done.await.map_err(|_| WatchError::WorkerGone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplan_model::test_support::three_cluster_block;
    use kplan_store::SledStore;

    #[test]
    fn a_long_re_check_is_followed_by_a_rest_three_times_as_long_and_a_short_one_by_the_interval() {
        let start = tokio::time::Instant::now();
        let (ms, second) = (std::time::Duration::from_millis, std::time::Duration::from_secs(1));
        // 70 ms of work: the next run a second after this one started.
        assert_eq!(next_recheck(start, start + ms(70), second), start + second);
        // 3 s of work: 9 s of rest after it, so at most a quarter of a core.
        assert_eq!(next_recheck(start, start + ms(3000), second), start + ms(12_000));
    }

    /// A store with the watch tests' estate and one approved plan of it.
    fn approved(dir: &std::path::Path) -> (Arc<Watcher>, Arc<Metrics>, String) {
        let store = SledStore::open(dir).expect("opens");
        for snapshot in three_cluster_block() {
            store.put_snapshot(&snapshot, 1).expect("stores");
        }
        let mut policy = Policy::default();
        policy.wave_budget.nodes = 6;
        policy.wave_budget.namespaces = 2;
        let inventory = store.latest_snapshots().expect("reads");
        let mut plan = kplan_planner::propose(&inventory, &policy, &Default::default()).expect("plans").plan;
        plan.policy = Some(policy.clone());
        kplan_planner::stamp(&mut plan, 10);
        store.put_plan(&plan).expect("stores");
        let metrics = Arc::new(Metrics::new());
        let watcher = Watcher::new(
            Arc::new(store),
            Arc::new(policy),
            metrics.clone(),
            WatchSettings {
                stale_after_seconds: 3600,
                wave_stall_seconds: 86_400,
                recheck_interval: std::time::Duration::from_secs(1),
            },
        );
        watcher.approve(&plan.id, "planner:test").expect("approves");
        (watcher, metrics, plan.id)
    }

    /// A re-check reads from the store only generations it has not read
    /// before, and keeps only what it may read again: each cluster's newest
    /// and what the plan was made from.
    #[test]
    fn re_checks_keep_the_snapshots_they_read_again_and_no_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (watcher, _, plan_id) = approved(dir.path());
        let cached =
            |watcher: &Watcher| -> Vec<(String, u64)> { watcher.encoded.lock().unwrap().keys().cloned().collect() };
        let inputs = watcher.read_inputs(&plan_id).expect("reads").expect("approved");
        let generation_1 = |c: u32| (format!("fra-prod-{c}"), 1);
        assert_eq!(cached(&watcher), vec![generation_1(1), generation_1(2), generation_1(3)]);
        assert!(Arc::ptr_eq(&inputs.fresh[0], &inputs.planned[0]), "the newest is what the plan was made from");
        let again = watcher.read_inputs(&plan_id).expect("reads").expect("approved");
        assert!(Arc::ptr_eq(&inputs.fresh[2], &again.fresh[2]), "read once, kept");
        // After a compaction the store is read again.
        watcher.history_compacted();
        assert!(cached(&watcher).is_empty());
        let after = watcher.read_inputs(&plan_id).expect("reads").expect("approved");
        assert!(!Arc::ptr_eq(&inputs.fresh[2], &after.fresh[2]), "read from the store again");

        // Two newer generations of fra-prod-1: the one in between is dropped,
        // the plan's own is kept.
        let mut snapshot = three_cluster_block().remove(0);
        for generation in [2, 3] {
            snapshot.generation = generation;
            snapshot.namespaces[0].name = format!("app-{generation}");
            watcher.store.put_snapshot(&snapshot, 2).expect("stores");
            watcher.read_inputs(&plan_id).expect("reads").expect("approved");
        }
        let inputs = watcher.read_inputs(&plan_id).expect("reads").expect("approved");
        assert_eq!(
            cached(&watcher),
            vec![generation_1(1), ("fra-prod-1".to_string(), 3), generation_1(2), generation_1(3)]
        );
        let fresh = inputs.fresh[0].decode().expect("decodes");
        assert_eq!((fresh.generation, fresh.namespaces[0].name.as_str()), (3, "app-3"));
        assert_eq!(inputs.planned[0].decode().expect("decodes").generation, 1);
    }

    /// A burst of reports before the re-check task runs makes one re-check,
    /// and marking a plan dirty never waits for one.
    #[test]
    fn a_burst_of_reports_is_one_recheck() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (watcher, metrics, plan_id) = approved(dir.path());
            // Not started yet: every report only marks the plan.
            for _ in 0..100 {
                watcher.snapshot_stored("fra-prod-1");
                watcher.snapshot_stored("fra-prod");
            }
            watcher.snapshot_stored("somewhere-else");
            assert_eq!(watcher.dirty.lock().unwrap().len(), 1);
            let mut changes = watcher.subscribe();
            watcher.start();
            // The start-up re-check of every approved plan and the burst share one run.
            changes.changed().await.expect("a run");
            assert_eq!(metrics.plan_rechecks.get(), 1);
            assert!(watcher.dirty.lock().unwrap().is_empty());
            let status = tokio::task::spawn_blocking({
                let watcher = watcher.clone();
                move || watcher.status(&plan_id)
            })
            .await
            .expect("joins")
            .expect("reads");
            assert_eq!(status.health.status, HealthStatus::Ok, "{:?}", status.health.findings);
            assert_eq!(status.lifecycle.changed_by, "planner:test");
        });
    }
}
