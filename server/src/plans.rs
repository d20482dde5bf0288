//! Proposing and storing plans: the one path the planner service and the
//! CLI's embedded mode share (read the newest inventory, plan, store, return).

use kplan_model::{Plan, Policy};

use crate::planner::{self, PlanError, PlanOptions, ProposeOutcome};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// Plans the store's newest inventory and stores the plan under a new id.
pub fn propose_and_store(
    store: &dyn Store,
    policy: &Policy,
    options: &PlanOptions,
    now_unix: i64,
) -> Result<ProposeOutcome, ProposeError> {
    let inventory = store.latest_snapshots()?;
    let mut outcome = planner::propose(&inventory, policy, options)?;
    outcome.plan.created_at_unix = now_unix;
    outcome.plan.id = plan_id(&outcome.plan, now_unix);
    store.put_plan(&outcome.plan)?;
    Ok(outcome)
}

/// `plan-20261125t193000z-1a2b3c4d`: the UTC time and a digest of what the plan
/// was made from (inventory generations and policy), so ids sort by time and two
/// plans made in one second from different inputs do not collide.
pub fn plan_id(plan: &Plan, now_unix: i64) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for cluster in &plan.inventory {
        feed(cluster.cluster_id.as_bytes());
        feed(&cluster.generation.to_be_bytes());
    }
    feed(plan.policy_digest.as_bytes());
    for block in &plan.blocks {
        feed(block.datacenter.as_bytes());
        feed(block.security_tier.as_bytes());
    }
    format!("plan-{}-{:08x}", utc_compact(now_unix), hash as u32)
}

pub use kplan_model::time::{civil_from_unix, utc_compact, utc_readable};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_with_inputs() {
        let mut plan = Plan::default();
        let a = plan_id(&plan, 10);
        plan.policy_digest = "x".into();
        assert_ne!(a, plan_id(&plan, 10));
        assert!(a.starts_with("plan-19700101t000010z-"));
    }
}
