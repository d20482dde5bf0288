//! kplan-store: durable storage of snapshots and plans.
//!
//! [`Store`] is what the server's API and the CLI's embedded mode use;
//! [`SledStore`] is the implementation. [`validation`] holds the checks every
//! snapshot passes before it is written, [`history`] what capacity reviews read. Every write is flushed to disk before it returns, so a
//! caller may acknowledge as soon as a `put_*` call is `Ok`.

pub mod admin;
pub mod backup;
mod envelope;
pub mod history;
pub mod manifest;
mod sled_store;
pub mod validation;

pub use envelope::SCHEMA_VERSION;
pub use history::load_history;
pub use sled_store::{EncodedSnapshot, SledStore, StoreContents};

use kplan_model::watch::PlanWatch;
use kplan_model::{ClusterSnapshot, ClusterSummary, Plan};
pub use kplan_model::{GenerationInfo, PlanInfo};

/// What happened to a reported snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new generation was stored.
    Created,
    /// The same generation with the same content was already stored; nothing changed.
    Replayed,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cluster {cluster_id:?}: generation {offered} is older than the stored generation {stored}")]
    StaleGeneration { cluster_id: String, stored: u64, offered: u64 },
    #[error(
        "cluster {cluster_id:?}: generation {generation} is already stored with different content; report a newer generation"
    )]
    ConflictingReplay { cluster_id: String, generation: u64 },
    /// The database files cannot be opened or read (damaged, unreadable, or
    /// sled failed on them); `reason` says which and what to do.
    #[error("store at {path} cannot be opened: {reason}")]
    Open { path: String, reason: String },
    #[error("store at {path} is locked by another process (is a kplan-server running on it?)")]
    Locked { path: String },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: corrupt record {tree}/{key}: {reason}")]
    Corrupt { tree: &'static str, key: String, reason: String },
    #[error("store: schema version {found} is not supported (this build reads version {supported})")]
    UnsupportedSchema { found: u32, supported: u32 },
    #[error("store: encoding {what}: {source}")]
    Encode { what: &'static str, source: serde_json::Error },
    #[error("store: compressing {what}: {source}")]
    Compress { what: &'static str, source: std::io::Error },
}

/// Durable inventory and plan storage.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Stores a snapshot and flushes it to disk before returning.
    ///
    /// An older generation than the newest stored one is refused; the newest
    /// generation again with the same content (ignoring `collected_at_unix`) is
    /// an idempotent replay; with different content it is refused.
    fn put_snapshot(&self, snapshot: &ClusterSnapshot, now_unix: i64) -> Result<PutOutcome, StoreError>;

    /// Every cluster's newest generation, as summaries, sorted by cluster id.
    fn list_clusters(&self) -> Result<Vec<ClusterSummary>, StoreError>;

    /// One cluster at a generation (`None` = newest), with its summary.
    fn get_cluster(
        &self,
        cluster_id: &str,
        generation: Option<u64>,
    ) -> Result<Option<(ClusterSummary, ClusterSnapshot)>, StoreError>;

    /// The stored generations of a cluster, oldest first.
    fn list_generations(&self, cluster_id: &str) -> Result<Vec<GenerationInfo>, StoreError>;

    /// Every cluster's newest snapshot, sorted by cluster id: the planner's input.
    fn latest_snapshots(&self) -> Result<Vec<ClusterSnapshot>, StoreError>;

    /// [`Store::snapshots_at`], each still encoded. The daemon's re-checks
    /// read with it (at normal priority: a reader preempted while it holds
    /// sled's lock would make every write, every report, wait for it) and
    /// decode at a low one.
    fn snapshots_at_encoded(&self, refs: &[kplan_model::InventoryRef]) -> Result<Vec<EncodedSnapshot>, StoreError>;

    /// Every stored snapshot of a cluster, oldest first (for capacity trends).
    fn history(&self, cluster_id: &str) -> Result<Vec<(GenerationInfo, ClusterSnapshot)>, StoreError>;

    /// Thins out old history: snapshots stored more than `keep_all_seconds`
    /// before `now_unix` are kept one per cluster per UTC day (the day's last);
    /// a cluster's newest generation is always kept. Returns how many were removed.
    fn compact_history(&self, now_unix: i64, keep_all_seconds: i64) -> Result<u64, StoreError>;

    /// Stores a plan under `plan.id` and flushes.
    fn put_plan(&self, plan: &Plan) -> Result<(), StoreError>;

    fn get_plan(&self, plan_id: &str) -> Result<Option<Plan>, StoreError>;

    /// Stored plans, oldest first.
    fn list_plans(&self) -> Result<Vec<PlanInfo>, StoreError>;

    /// What is kept beside a plan (lifecycle, health); `None` for a plan never
    /// acted on (it is `proposed`).
    fn get_plan_watch(&self, plan_id: &str) -> Result<Option<PlanWatch>, StoreError>;

    /// Stores the records of several plans in one transaction (an approval and
    /// the plans it supersedes) and flushes before returning.
    fn put_plan_watches(&self, records: &[(String, PlanWatch)]) -> Result<(), StoreError>;

    /// Every plan's record, by plan id.
    fn list_plan_watches(&self) -> Result<Vec<(String, PlanWatch)>, StoreError>;

    /// The approved plans, with their records.
    fn approved_plans(&self) -> Result<Vec<(Plan, PlanWatch)>, StoreError> {
        let mut out = Vec::new();
        for (plan_id, record) in self.list_plan_watches()? {
            if record.lifecycle.state == kplan_model::watch::PlanState::Approved
                && let Some(plan) = self.get_plan(&plan_id)?
            {
                out.push((plan, record));
            }
        }
        Ok(out)
    }

    /// The snapshots `refs` name (a plan's inputs) that are still stored
    /// (compaction may have thinned some out).
    fn snapshots_at(&self, refs: &[kplan_model::InventoryRef]) -> Result<Vec<ClusterSnapshot>, StoreError> {
        let mut out = Vec::with_capacity(refs.len());
        for input in refs {
            if let Some((_, snapshot)) = self.get_cluster(&input.cluster_id, Some(input.generation))? {
                out.push(snapshot);
            }
        }
        Ok(out)
    }
}
