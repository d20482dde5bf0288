//! kplan.v1.InventoryService: agents and `kplan import` report snapshots.

use kplan_model::ClusterSnapshot;
use kplan_proto::v1;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::{ApiState, now_unix, status};
use kplan_store::PutOutcome;
use kplan_store::validation::check_snapshot_with;

#[derive(Debug, Clone)]
pub struct InventoryApi {
    state: ApiState,
}

impl InventoryApi {
    pub fn new(state: ApiState) -> Self {
        InventoryApi { state }
    }
}

#[tonic::async_trait]
impl v1::inventory_service_server::InventoryService for InventoryApi {
    async fn report_snapshot(
        &self,
        request: Request<v1::ReportSnapshotRequest>,
    ) -> Result<Response<v1::ReportSnapshotResponse>, Status> {
        let wire = request.into_inner().snapshot.ok_or_else(|| Status::invalid_argument("missing field snapshot"))?;
        let snapshot = ClusterSnapshot::try_from(wire).map_err(|e| {
            self.state.metrics.refused("invalid");
            Status::invalid_argument(e.to_string())
        })?;
        let problems = check_snapshot_with(&snapshot, &self.state.validation_limits);
        if !problems.is_empty() {
            self.state.metrics.refused("invalid");
            warn!(cluster_id = %snapshot.cluster_id, n_problems = problems.len(), "snapshot refused");
            return Err(status::invalid(&problems));
        }
        let store = self.state.store.clone();
        let cluster_id = snapshot.cluster_id.clone();
        let generation = snapshot.generation;
        let n_nodes = snapshot.nodes.len();
        let n_namespaces = snapshot.namespaces.len();
        // put_snapshot flushes before it returns: the reply below is sent only
        // once the snapshot is durable.
        let outcome = tokio::task::spawn_blocking(move || store.put_snapshot(&snapshot, now_unix()))
            .await
            .map_err(status::join_error)?;
        match outcome {
            Ok(outcome) => {
                let created = outcome == PutOutcome::Created;
                if created {
                    // Marks the approved plans that touch it for a re-check; never waits for one.
                    self.state.watcher.snapshot_stored(&cluster_id);
                    self.state.metrics.snapshots_received.inc();
                } else {
                    self.state.metrics.snapshots_replayed.inc();
                }
                info!(%cluster_id, generation, n_nodes, n_namespaces, created, "snapshot stored");
                Ok(Response::new(v1::ReportSnapshotResponse { cluster_id, stored_generation: generation, created }))
            }
            Err(err) => {
                self.state.metrics.refused(match &err {
                    kplan_store::StoreError::StaleGeneration { .. } => "stale_generation",
                    kplan_store::StoreError::ConflictingReplay { .. } => "conflicting_replay",
                    _ => "store_error",
                });
                warn!(%cluster_id, generation, error = %err, "snapshot refused");
                Err(status::from_store(err))
            }
        }
    }
}
