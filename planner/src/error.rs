//! Why no plan could be made at all.

/// Why no plan could be made at all (an infeasible block is not an error: it is
/// a block with status `infeasible` and an explanation).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("the inventory is empty: report or import at least one cluster first")]
    EmptyInventory,
    #[error("invalid inventory: cluster {cluster_id:?}: {reason}")]
    InvalidInventory { cluster_id: String, reason: String },
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    #[error("no block of the inventory matches {0}")]
    NoBlockMatches(String),
}
