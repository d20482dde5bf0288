//! kplan.v1.QueryService: read the stored inventory.

use kplan_proto::v1;
use tonic::{Request, Response, Status};

use super::{ApiState, status};

#[derive(Debug, Clone)]
pub struct QueryApi {
    state: ApiState,
}

impl QueryApi {
    pub fn new(state: ApiState) -> Self {
        QueryApi { state }
    }
}

#[tonic::async_trait]
impl v1::query_service_server::QueryService for QueryApi {
    async fn list_clusters(
        &self,
        request: Request<v1::ListClustersRequest>,
    ) -> Result<Response<v1::ListClustersResponse>, Status> {
        let filter = request.into_inner();
        let store = self.state.store.clone();
        let clusters = tokio::task::spawn_blocking(move || store.list_clusters())
            .await
            .map_err(status::join_error)?
            .map_err(status::from_store)?;
        let clusters = clusters
            .into_iter()
            .filter(|c| filter.datacenter.is_empty() || c.datacenters.contains(&filter.datacenter))
            .filter(|c| filter.security_tier.is_empty() || c.security_tier == filter.security_tier)
            .map(Into::into)
            .collect();
        Ok(Response::new(v1::ListClustersResponse { clusters }))
    }

    async fn get_cluster(
        &self,
        request: Request<v1::GetClusterRequest>,
    ) -> Result<Response<v1::GetClusterResponse>, Status> {
        let request = request.into_inner();
        let store = self.state.store.clone();
        let cluster_id = request.cluster_id.clone();
        let generation = (request.generation > 0).then_some(request.generation);
        let found = tokio::task::spawn_blocking(move || store.get_cluster(&cluster_id, generation))
            .await
            .map_err(status::join_error)?
            .map_err(status::from_store)?;
        let Some((summary, snapshot)) = found else {
            return Err(Status::not_found(match generation {
                Some(g) => format!("cluster {:?} has no stored generation {g}", request.cluster_id),
                None => format!("cluster {:?} is not in the inventory", request.cluster_id),
            }));
        };
        Ok(Response::new(v1::GetClusterResponse { summary: Some(summary.into()), snapshot: Some(snapshot.into()) }))
    }

    async fn list_generations(
        &self,
        request: Request<v1::ListGenerationsRequest>,
    ) -> Result<Response<v1::ListGenerationsResponse>, Status> {
        let cluster_id = request.into_inner().cluster_id;
        let store = self.state.store.clone();
        let generations = tokio::task::spawn_blocking(move || store.list_generations(&cluster_id))
            .await
            .map_err(status::join_error)?
            .map_err(status::from_store)?;
        Ok(Response::new(v1::ListGenerationsResponse {
            generations: generations.into_iter().map(Into::into).collect(),
        }))
    }
}
