//! Keeping watch over approved plans: what the daemon (and the CLI, embedded)
//! computes about a stored plan from the live inventory. Pure, like the rest of
//! the crate: the caller reads the store and the clock.
//!
//! - [`lifecycle`]: approve and abandon, and which approved plans an approval
//!   supersedes (any of the same blocks).
//! - [`progress`]: per block and wave, done / in progress / pending, read from
//!   the newest snapshots (a node the plan sends to target T reports in T's
//!   snapshot and no longer in its source, ...).
//! - [`health`]: the plan re-checked by the independent validator against the
//!   fresh inventory at every remaining wave, with findings of its own (a kept
//!   node gone, a namespace that appeared after the plan, a new collision).

pub mod health;
pub mod lifecycle;
pub mod progress;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use kplan_model::watch::{HealthStatus, PlanHealth, PlanProgress, Progress};
use kplan_model::{BlockPlan, BlockStatus, ClusterSnapshot, InventoryRef, Plan, Policy};

/// A block as users write it: `datacenter/tier`.
pub fn block_name(block: &BlockPlan) -> String {
    format!("{}/{}", block.datacenter, block.security_tier)
}

/// Every cluster a plan depends on: its planned blocks' sources and targets.
pub fn touched_clusters(plan: &Plan) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for block in plan.blocks.iter().filter(|b| b.status == BlockStatus::Planned) {
        out.extend(block.source_clusters.iter().cloned());
        out.extend(block.target_clusters.iter().map(|t| t.name.clone()));
    }
    out
}

/// What `kplan propose --from-plan` plans: the newest snapshots of the plan's
/// source clusters (its targets' own reports left out), so the new plan covers
/// the same blocks with today's figures. Refused once a wave of the plan has
/// begun: the planner plans from sources to new targets, not from a half-built
/// target (what is done cannot be kept fixed yet).
pub fn replan_inputs(
    plan: &Plan,
    fresh: &[ClusterSnapshot],
    progress: &PlanProgress,
) -> Result<Vec<ClusterSnapshot>, LifecycleError> {
    if let Some(begun) = progress.waves.iter().find(|w| w.progress != Progress::Pending) {
        return Err(LifecycleError::Begun {
            plan_id: plan.id.clone(),
            block: begun.block.clone(),
            wave: begun.wave,
            progress: begun.progress,
        });
    }
    let sources: BTreeSet<&str> =
        plan.blocks.iter().flat_map(|b| b.source_clusters.iter().map(String::as_str)).collect();
    let inventory: Vec<ClusterSnapshot> =
        fresh.iter().filter(|s| sources.contains(s.cluster_id.as_str())).cloned().collect();
    if inventory.is_empty() {
        return Err(LifecycleError::Empty { plan_id: plan.id.clone() });
    }
    Ok(inventory)
}

/// [`check_health`] as a stored health: `ok` or `drifted`, when (the
/// caller's clock) and against which snapshots of the clusters it depends on.
pub fn plan_health(
    plan: &Plan,
    policy: &Policy,
    planned: &[ClusterSnapshot],
    fresh: &[ClusterSnapshot],
    progress: &PlanProgress,
    now_unix: i64,
) -> PlanHealth {
    let findings = check_health(plan, policy, planned, fresh, progress);
    let touched = touched_clusters(plan);
    PlanHealth {
        status: if findings.is_empty() { HealthStatus::Ok } else { HealthStatus::Drifted },
        checked_at_unix: now_unix,
        findings,
        inventory: fresh
            .iter()
            .filter(|s| touched.contains(&s.cluster_id))
            .map(|s| InventoryRef {
                cluster_id: s.cluster_id.clone(),
                generation: s.generation,
                content_sha256: String::new(),
            })
            .collect(),
    }
}

pub use health::check_health;
pub use lifecycle::{LifecycleError, abandon, approve};
pub use progress::{ProgressOptions, progress};
