//! kplan's domain types, shared by the agent, the server, the planner and the CLI.
//!
//! Everything here is plain data with serde derives: no IO, no protobuf. The wire
//! types live in `kplan-proto`; conversions between the two live in
//! `kplan_proto::convert` and nowhere else.

pub mod capacity;
pub mod inventory;
pub mod isolation;
pub mod plan;
pub mod policy;
pub mod quantity;
pub mod scheduling;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod time;
pub mod watch;

pub use inventory::{
    AppliedObject, ClusterFacts, ClusterSnapshot, ClusterSummary, GenerationInfo, Namespace, Node, NodeRole, Resources,
    RuntimeHandler, SlaTier,
};
pub use plan::*;
pub use policy::Policy;
