//! The gRPC API: the only module that sees tonic and protobuf types.
//!
//! Each service converts wire messages to domain types (`kplan_proto::convert`),
//! calls the store or the planner on a blocking thread, and maps errors to
//! statuses in [`status`]. `serve.rs` assembles the server (TLS, limits, the
//! store gate) and [`auth`] decides who may call what.

pub mod auth;
mod capacity;
mod inventory;
mod planner;
mod query;
mod serve;
mod status;
mod watch;

use std::sync::Arc;

use kplan_proto::v1;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;

use kplan_store::Store;

pub use auth::{AgentScopedInventory, AgentScopedQuery, Peer};
pub use capacity::CapacityApi;
pub use inventory::InventoryApi;
pub use planner::PlannerApi;
pub use query::QueryApi;
pub use serve::{GrpcServer, ReadyHandle, ServeError, ServeOptions};
pub use watch::WatchApi;

/// What every service shares.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    /// The policy of plans proposed without one (the server's `policy_file`, or defaults).
    pub default_policy: Arc<kplan_model::Policy>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub max_message_bytes: usize,
    /// Caps on one snapshot, checked before it is stored.
    pub validation_limits: kplan_store::validation::ValidationLimits,
    /// The watch over approved plans (told of every stored snapshot).
    pub watcher: Arc<crate::watch::Watcher>,
}

pub(crate) use kplan_model::time::now_unix;

/// Health (every service NOT_SERVING until [`set_serving`]) and reflection:
/// what the server answers before the store is verified.
pub async fn health_and_reflection()
-> Result<(tonic_health::server::HealthReporter, Routes), tonic_reflection::server::Error> {
    use v1::capacity_service_server::CapacityServiceServer;
    use v1::inventory_service_server::InventoryServiceServer;
    use v1::planner_service_server::PlannerServiceServer;
    use v1::query_service_server::QueryServiceServer;
    use v1::watch_service_server::WatchServiceServer;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    health_reporter.set_not_serving::<InventoryServiceServer<AgentScopedInventory>>().await;
    health_reporter.set_not_serving::<PlannerServiceServer<PlannerApi>>().await;
    health_reporter.set_not_serving::<CapacityServiceServer<CapacityApi>>().await;
    health_reporter.set_not_serving::<QueryServiceServer<AgentScopedQuery>>().await;
    health_reporter.set_not_serving::<WatchServiceServer<WatchApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kplan_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kplan_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let routes = Routes::new(health_service).add_service(reflection).add_service(reflection_v1alpha);
    Ok((health_reporter, routes))
}

/// Every kplan service over `state`, the agents' cluster scope in front of the
/// inventory and query services (see [`auth`]).
pub fn kplan_routes(state: ApiState) -> Routes {
    let limit = state.max_message_bytes;
    Routes::new(
        v1::inventory_service_server::InventoryServiceServer::new(AgentScopedInventory(InventoryApi::new(
            state.clone(),
        )))
        .max_decoding_message_size(limit)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd),
    )
    .add_service(
        v1::query_service_server::QueryServiceServer::new(AgentScopedQuery(QueryApi::new(state.clone())))
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
    )
    .add_service(
        v1::watch_service_server::WatchServiceServer::new(WatchApi::new(state.watcher.clone()))
            .max_encoding_message_size(limit)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip),
    )
}

/// Marks every service as serving.
pub async fn set_serving(reporter: &tonic_health::server::HealthReporter) {
    use v1::capacity_service_server::CapacityServiceServer;
    use v1::inventory_service_server::InventoryServiceServer;
    use v1::planner_service_server::PlannerServiceServer;
    use v1::query_service_server::QueryServiceServer;
    use v1::watch_service_server::WatchServiceServer;
    reporter.set_serving::<InventoryServiceServer<AgentScopedInventory>>().await;
    reporter.set_serving::<PlannerServiceServer<PlannerApi>>().await;
    reporter.set_serving::<CapacityServiceServer<CapacityApi>>().await;
    reporter.set_serving::<QueryServiceServer<AgentScopedQuery>>().await;
    reporter.set_serving::<WatchServiceServer<WatchApi>>().await;
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
}
