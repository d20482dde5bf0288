//! kplan.v1.CapacityService: quarterly capacity reviews.

use kplan_proto::v1;
use tonic::{Request, Response, Status};

use super::{ApiState, now_unix, status};
use kplan_planner::capacity::{self, Quarter, ReviewRequest};
use kplan_store::load_history;

#[derive(Debug, Clone)]
pub struct CapacityApi {
    state: ApiState,
}

impl CapacityApi {
    pub fn new(state: ApiState) -> Self {
        CapacityApi { state }
    }
}

#[tonic::async_trait]
impl v1::capacity_service_server::CapacityService for CapacityApi {
    async fn capacity_review(
        &self,
        request: Request<v1::CapacityReviewRequest>,
    ) -> Result<Response<v1::CapacityReviewResponse>, Status> {
        let request = request.into_inner();
        let now = now_unix();
        let quarter = if request.quarter.is_empty() {
            None
        } else {
            Some(request.quarter.parse::<Quarter>().map_err(|e| Status::invalid_argument(format!("quarter: {e}")))?)
        };
        let mut review_request = ReviewRequest::new(
            quarter,
            (request.headroom_threshold > 0.0).then_some(request.headroom_threshold),
            (request.stale_after_seconds > 0).then_some(request.stale_after_seconds),
            &self.state.default_policy.headroom,
            now,
        )
        .map_err(Status::invalid_argument)?;
        review_request.datacenter = (!request.datacenter.is_empty()).then_some(request.datacenter);
        review_request.security_tier = (!request.security_tier.is_empty()).then_some(request.security_tier);
        let store = self.state.store.clone();
        let review = tokio::task::spawn_blocking(move || {
            load_history(store.as_ref()).map(|history| capacity::review(&history, &review_request))
        })
        .await
        .map_err(status::join_error)?
        .map_err(status::from_store)?;
        Ok(Response::new(review.into()))
    }
}
