//! What the daemon keeps about a stored plan once people act on it: its
//! lifecycle (proposed, approved, superseded, abandoned; who and when), its
//! health against the live inventory (`ok`, or `drifted` with findings) and its
//! progress read from the inventory (per block and wave: done, in progress,
//! pending).
//!
//! Stored beside the plan (the plan itself never changes once stored). A plan
//! with no record is `proposed`: plans stored before lifecycles existed load so.

use serde::{Deserialize, Serialize};

use crate::plan::InventoryRef;

/// Where a plan is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanState {
    /// Stored, not acted on (every plan starts here).
    #[default]
    Proposed,
    /// People decided to carry it out: the daemon watches it.
    Approved,
    /// A newer approved plan covers one of its blocks.
    Superseded,
    /// Given up.
    Abandoned,
}

impl PlanState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::Proposed => "proposed",
            PlanState::Approved => "approved",
            PlanState::Superseded => "superseded",
            PlanState::Abandoned => "abandoned",
        }
    }
}

impl std::fmt::Display for PlanState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan's state, who put it there and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLifecycle {
    pub state: PlanState,
    /// The caller's identity (certificate or token name; `local:<user>`
    /// embedded); empty for a plan never acted on.
    #[serde(default)]
    pub changed_by: String,
    #[serde(default)]
    pub changed_at_unix: i64,
    /// The approved plan that superseded this one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub superseded_by: String,
}

/// Whether an approved plan still holds on the live inventory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Not checked yet (not approved, or no report since it was approved).
    #[default]
    Unchecked,
    Ok,
    Drifted,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unchecked => "unchecked",
            HealthStatus::Ok => "ok",
            HealthStatus::Drifted => "drifted",
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that no longer holds, in a user's words.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    /// `capacity`, `node-gone`, `new-namespace`, `collision`, `precondition`,
    /// or another validator rule (`namespace-accounting`, `pod-placement`, ...).
    pub kind: String,
    /// The block, `datacenter/tier` (empty for the plan as a whole).
    pub block: String,
    /// The wave it concerns (0: none in particular).
    pub wave: u64,
    /// What it is about: `cluster/namespace`, `cluster/node` or a cluster.
    pub subject: String,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let block = if self.block.is_empty() { "plan" } else { self.block.as_str() };
        if self.wave > 0 {
            write!(f, "{block}: wave {}: {}: {}", self.wave, self.kind, self.detail)
        } else {
            write!(f, "{block}: {}: {}", self.kind, self.detail)
        }
    }
}

/// The last re-check of an approved plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanHealth {
    pub status: HealthStatus,
    pub checked_at_unix: i64,
    pub findings: Vec<Finding>,
    /// The snapshots it was checked against.
    #[serde(default)]
    pub inventory: Vec<InventoryRef>,
}

/// What is stored beside a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanWatch {
    pub lifecycle: PlanLifecycle,
    #[serde(default)]
    pub health: PlanHealth,
    /// Since when (unix seconds) each wave in progress has been, by
    /// `datacenter/tier#wave`, as re-checks saw it: what says a wave stalled.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub in_progress_since: std::collections::BTreeMap<String, i64>,
}

/// The key of a wave in [`PlanWatch::in_progress_since`].
pub fn wave_key(block: &str, wave: u64) -> String {
    format!("{block}#{wave}")
}

impl PlanWatch {
    /// Keeps the times of the waves `progress` shows in progress (a wave seen
    /// in progress for the first time starts at `now_unix`) and drops the
    /// others; whether anything changed.
    pub fn track_progress(&mut self, progress: &PlanProgress, now_unix: i64) -> bool {
        let in_progress: std::collections::BTreeMap<String, i64> = progress
            .waves
            .iter()
            .filter(|w| w.progress == Progress::InProgress)
            .map(|w| {
                let key = wave_key(&w.block, w.wave);
                let since = self.in_progress_since.get(&key).copied().unwrap_or(now_unix);
                (key, since)
            })
            .collect();
        let changed = in_progress != self.in_progress_since;
        self.in_progress_since = in_progress;
        changed
    }

    /// Takes in a re-check: the waves in progress ([`Self::track_progress`])
    /// and `health` when its status, findings or inventory differ from the
    /// stored one (a re-check that finds the same keeps the first check's
    /// time). Whether anything changed, that is whether to store the record.
    pub fn observe(&mut self, health: PlanHealth, progress: &PlanProgress, now_unix: i64) -> bool {
        let tracked = self.track_progress(progress, now_unix);
        let same_health = self.health.status == health.status
            && self.health.findings == health.findings
            && self.health.inventory == health.inventory;
        if !same_health {
            self.health = health;
        }
        tracked || !same_health
    }

    /// When the longest-running wave in progress began (`None`: none is).
    pub fn oldest_in_progress(&self) -> Option<i64> {
        self.in_progress_since.values().copied().min()
    }
}

/// How far a wave (or one move of it) is carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Progress {
    #[default]
    Pending,
    InProgress,
    Done,
}

impl Progress {
    pub fn as_str(self) -> &'static str {
        match self {
            Progress::Pending => "pending",
            Progress::InProgress => "in-progress",
            Progress::Done => "done",
        }
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One wave of one block, as the inventory shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveProgress {
    /// `datacenter/tier`.
    pub block: String,
    pub wave: u64,
    pub progress: Progress,
    pub steps_done: u64,
    pub steps_total: u64,
    /// What is still missing, in words (at most a few, then "and N more").
    pub missing: Vec<String>,
    /// Done (or begun) while an earlier wave of its block is not done.
    pub out_of_order: bool,
}

/// Every wave of a plan, as the inventory shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanProgress {
    pub waves: Vec<WaveProgress>,
    pub waves_done: u64,
    pub waves_total: u64,
    /// Reporting time (`stored_at_unix`) of the oldest newest snapshot of the
    /// clusters the plan depends on (0 when none reports).
    pub oldest_report_unix: i64,
    /// Clusters the plan depends on that stopped reporting (nothing newer
    /// than the stale limit) or never reported, sorted.
    pub silent_clusters: Vec<String>,
}

/// A plan's lifecycle, health and progress together: `kplan plans status`,
/// and what `WatchPlan` streams.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStatus {
    pub plan_id: String,
    pub lifecycle: PlanLifecycle,
    pub health: PlanHealth,
    pub progress: PlanProgress,
}
