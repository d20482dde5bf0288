//! The gRPC API: the only module that sees tonic and protobuf types.
//!
//! Each service converts wire messages to domain types (`kplan_proto::convert`),
//! calls the store or the planner on a blocking thread, and maps errors to
//! statuses in [`status`].

mod capacity;
mod inventory;
mod planner;
mod query;
mod status;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kplan_proto::v1;
use tonic::codec::CompressionEncoding;
use tonic::service::RoutesBuilder;

use crate::store::Store;

pub use capacity::{CapacityApi, DEFAULT_STALE_AFTER_SECONDS, load_history};
pub use inventory::InventoryApi;
pub use planner::PlannerApi;
pub use query::QueryApi;

/// What every service shares.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// The policy of plans proposed without one (the server's `policy_file`, or defaults).
    pub default_policy: Arc<kplan_model::Policy>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub max_message_bytes: usize,
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Adds every kplan service, health and reflection to `routes`, and returns the
/// health reporter (still NOT_SERVING: the caller flips it once it is ready).
pub async fn register(
    routes: &mut RoutesBuilder,
    state: ApiState,
) -> Result<tonic_health::server::HealthReporter, tonic_reflection::server::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kplan_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kplan_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let limit = state.max_message_bytes;
    routes
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(
            v1::inventory_service_server::InventoryServiceServer::new(InventoryApi::new(state.clone()))
                .max_decoding_message_size(limit)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd),
        )
        .add_service(
            v1::query_service_server::QueryServiceServer::new(QueryApi::new(state.clone()))
                .max_encoding_message_size(limit)
                .max_decoding_message_size(limit)
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip),
        )
        .add_service(
            v1::capacity_service_server::CapacityServiceServer::new(CapacityApi::new(state.clone()))
                .max_encoding_message_size(limit)
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip),
        )
        .add_service(
            v1::planner_service_server::PlannerServiceServer::new(PlannerApi::new(state.clone()))
                .max_encoding_message_size(limit)
                .max_decoding_message_size(limit)
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip),
        );
    Ok(health_reporter)
}

/// Marks every service as serving.
pub async fn set_serving(reporter: &tonic_health::server::HealthReporter) {
    use v1::capacity_service_server::CapacityServiceServer;
    use v1::inventory_service_server::InventoryServiceServer;
    use v1::planner_service_server::PlannerServiceServer;
    use v1::query_service_server::QueryServiceServer;
    reporter.set_serving::<InventoryServiceServer<InventoryApi>>().await;
    reporter.set_serving::<PlannerServiceServer<PlannerApi>>().await;
    reporter.set_serving::<CapacityServiceServer<CapacityApi>>().await;
    reporter.set_serving::<QueryServiceServer<QueryApi>>().await;
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
}
