//! Every mapping from a domain error to a gRPC status, in one place.

use tonic::{Code, Status};

use kplan_store::StoreError;

pub(crate) fn from_store(err: StoreError) -> Status {
    let code = match &err {
        StoreError::StaleGeneration { .. } => Code::FailedPrecondition,
        StoreError::ConflictingReplay { .. } => Code::AlreadyExists,
        StoreError::Corrupt { .. } | StoreError::UnsupportedSchema { .. } => Code::DataLoss,
        StoreError::Encode { .. } | StoreError::Compress { .. } => Code::Internal,
        StoreError::Open { .. } | StoreError::Locked { .. } | StoreError::Sled(_) => Code::Unavailable,
    };
    Status::new(code, err.to_string())
}

pub(crate) fn invalid(problems: &[String]) -> Status {
    Status::invalid_argument(problems.join("; "))
}

pub(crate) fn join_error(err: tokio::task::JoinError) -> Status {
    Status::internal(format!("worker task failed: {err}"))
}

pub(crate) fn policy(err: &kplan_planner::policy::PolicyError) -> Status {
    Status::invalid_argument(format!("policy: {}", err.to_string().replace('\n', " ")))
}

pub(crate) fn from_plan(err: kplan_planner::PlanError) -> Status {
    use kplan_planner::PlanError;
    match err {
        err @ PlanError::EmptyInventory => Status::failed_precondition(err.to_string()),
        err @ PlanError::NoBlockMatches(_) => Status::not_found(err.to_string()),
        err => Status::invalid_argument(err.to_string()),
    }
}

pub(crate) fn from_watch(err: crate::watch::WatchError) -> Status {
    use crate::watch::WatchError;
    match err {
        err @ WatchError::NotFound(_) => Status::not_found(err.to_string()),
        err @ WatchError::Lifecycle(_) => Status::failed_precondition(err.to_string()),
        WatchError::Store(err) => from_store(err),
        err @ WatchError::WorkerGone => Status::internal(err.to_string()),
    }
}
