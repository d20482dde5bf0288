//! A plan's lifecycle: `proposed` → `approved` → (`superseded` | `abandoned`).

use std::collections::BTreeSet;

use kplan_model::watch::{PlanLifecycle, PlanState, PlanWatch};
use kplan_model::{BlockStatus, Plan};

use super::block_name;

/// Why a lifecycle change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("plan {plan_id} is {state}: only a proposed plan can be approved (propose again to plan anew)")]
    NotApprovable { plan_id: String, state: PlanState },
    #[error(
        "plan {plan_id} has {n} infeasible block(s) ({blocks}): only a plan whose every block is planned can be approved"
    )]
    Infeasible { plan_id: String, n: usize, blocks: String },
    #[error("plan {plan_id} has no block: nothing to approve")]
    Empty { plan_id: String },
    #[error(
        "plan {plan_id} has begun (block {block} wave {wave} is {progress}): re-planning the rest while keeping \
         what is done is not supported yet; only a plan none of whose waves has begun is re-planned"
    )]
    Begun { plan_id: String, block: String, wave: u64, progress: kplan_model::watch::Progress },
}

/// The blocks a plan covers (`datacenter/tier`).
pub fn blocks_of(plan: &Plan) -> BTreeSet<String> {
    plan.blocks.iter().map(block_name).collect()
}

/// Approves `plan` (whose record is `current`, `None` when never acted on).
/// `approved` are the other approved plans with the blocks they cover; every
/// one that shares a block with `plan` is superseded by it. Returns the records
/// to store together (the approval first), or nothing when `plan` is already
/// approved.
pub fn approve(
    plan: &Plan,
    current: Option<&PlanWatch>,
    approved: &[(String, BTreeSet<String>, PlanWatch)],
    who: &str,
    now_unix: i64,
) -> Result<Vec<(String, PlanWatch)>, LifecycleError> {
    let current = current.cloned().unwrap_or_default();
    match current.lifecycle.state {
        PlanState::Approved => return Ok(Vec::new()),
        PlanState::Proposed => {}
        state => return Err(LifecycleError::NotApprovable { plan_id: plan.id.clone(), state }),
    }
    if plan.blocks.is_empty() {
        return Err(LifecycleError::Empty { plan_id: plan.id.clone() });
    }
    let infeasible: Vec<String> =
        plan.blocks.iter().filter(|b| b.status == BlockStatus::Infeasible).map(block_name).collect();
    if !infeasible.is_empty() {
        return Err(LifecycleError::Infeasible {
            plan_id: plan.id.clone(),
            n: infeasible.len(),
            blocks: infeasible.join(", "),
        });
    }
    let mine = blocks_of(plan);
    let mut out = vec![(
        plan.id.clone(),
        PlanWatch {
            lifecycle: PlanLifecycle {
                state: PlanState::Approved,
                changed_by: who.to_string(),
                changed_at_unix: now_unix,
                superseded_by: String::new(),
            },
            ..PlanWatch::default()
        },
    )];
    for (id, blocks, record) in approved {
        if *id == plan.id || record.lifecycle.state != PlanState::Approved || blocks.is_disjoint(&mine) {
            continue;
        }
        let mut record = record.clone();
        record.lifecycle = PlanLifecycle {
            state: PlanState::Superseded,
            changed_by: who.to_string(),
            changed_at_unix: now_unix,
            superseded_by: plan.id.clone(),
        };
        out.push((id.clone(), record));
    }
    Ok(out)
}

/// Abandons a plan; `None` when it already is.
pub fn abandon(current: Option<&PlanWatch>, who: &str, now_unix: i64) -> Option<PlanWatch> {
    let mut record = current.cloned().unwrap_or_default();
    if record.lifecycle.state == PlanState::Abandoned {
        return None;
    }
    record.lifecycle = PlanLifecycle {
        state: PlanState::Abandoned,
        changed_by: who.to_string(),
        changed_at_unix: now_unix,
        superseded_by: String::new(),
    };
    Some(record)
}
