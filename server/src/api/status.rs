//! Every mapping from a domain error to a gRPC status, in one place.

use tonic::{Code, Status};

use crate::store::StoreError;

pub(crate) fn from_store(err: StoreError) -> Status {
    let code = match &err {
        StoreError::StaleGeneration { .. } => Code::FailedPrecondition,
        StoreError::ConflictingReplay { .. } => Code::AlreadyExists,
        StoreError::Corrupt { .. } | StoreError::UnsupportedSchema { .. } => Code::DataLoss,
        StoreError::Encode { .. } => Code::Internal,
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
