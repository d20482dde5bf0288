//! kplan.v1.CapacityService: quarterly capacity reviews.

use std::collections::BTreeMap;

use kplan_proto::v1;
use tonic::{Request, Response, Status};

use super::{ApiState, now_unix, status};
use crate::capacity::{self, HistoryPoint, Quarter, Resources3, ReviewRequest};
use crate::store::Store;

/// A cluster whose last report is older than this is flagged stale (one day).
pub const DEFAULT_STALE_AFTER_SECONDS: i64 = 86_400;

#[derive(Debug, Clone)]
pub struct CapacityApi {
    state: ApiState,
}

impl CapacityApi {
    pub fn new(state: ApiState) -> Self {
        CapacityApi { state }
    }
}

/// Every stored snapshot of every cluster, for the review.
pub fn load_history(store: &dyn Store) -> Result<BTreeMap<String, Vec<HistoryPoint>>, crate::store::StoreError> {
    let mut history = BTreeMap::new();
    for cluster in store.list_clusters()? {
        let points = store
            .history(&cluster.cluster_id)?
            .into_iter()
            .map(|(info, snapshot)| HistoryPoint { stored_at_unix: info.stored_at_unix, snapshot })
            .collect();
        history.insert(cluster.cluster_id, points);
    }
    Ok(history)
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
            Quarter::containing(now)
        } else {
            request.quarter.parse::<Quarter>().map_err(|e| Status::invalid_argument(format!("quarter: {e}")))?
        };
        let headroom = self.state.default_policy.headroom;
        let threshold = if request.headroom_threshold > 0.0 {
            if request.headroom_threshold >= 1.0 {
                return Err(Status::invalid_argument("headroom_threshold: must be below 1 (a fraction, 0.2 = 20%)"));
            }
            let t = request.headroom_threshold;
            Resources3 { cpu: t, memory: t, pods: t }
        } else {
            Resources3 { cpu: headroom.cpu, memory: headroom.memory, pods: headroom.pods }
        };
        let review_request = ReviewRequest {
            quarter,
            datacenter: (!request.datacenter.is_empty()).then_some(request.datacenter),
            security_tier: (!request.security_tier.is_empty()).then_some(request.security_tier),
            threshold,
            stale_after_seconds: if request.stale_after_seconds > 0 {
                request.stale_after_seconds
            } else {
                DEFAULT_STALE_AFTER_SECONDS
            },
            now_unix: now,
        };
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
