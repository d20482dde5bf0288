//! kplan.v1.PlannerService: propose, get and list plans.

use kplan_model::Policy;
use kplan_proto::v1;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use kplan_planner::policy::{PolicyFormat, parse_policy};
use kplan_planner::{BlockFilter, PlanOptions, ProposeOutcome};
use kplan_store::Store;

use super::{ApiState, now_unix, status};

#[derive(Debug, Clone)]
pub struct PlannerApi {
    state: ApiState,
}

impl PlannerApi {
    pub fn new(state: ApiState) -> Self {
        PlannerApi { state }
    }
}

#[tonic::async_trait]
impl v1::planner_service_server::PlannerService for PlannerApi {
    async fn propose_plan(
        &self,
        request: Request<v1::ProposePlanRequest>,
    ) -> Result<Response<v1::ProposePlanResponse>, Status> {
        let request = request.into_inner();
        let from_plan = (!request.from_plan.trim().is_empty()).then(|| request.from_plan.trim().to_string());
        if from_plan.is_some() && (!request.datacenters.is_empty() || !request.security_tiers.is_empty()) {
            return Err(Status::invalid_argument("from_plan re-plans the plan's own blocks: give no block filter"));
        }
        // With from_plan: the stored plan and its progress, read from the newest snapshots.
        let from = match &from_plan {
            None => None,
            Some(id) => {
                let watcher = self.state.watcher.clone();
                let id = id.clone();
                let found = tokio::task::spawn_blocking(move || -> Result<_, crate::watch::WatchError> {
                    let status = watcher.status(&id)?;
                    let plan = watcher.plan(&id)?;
                    Ok((plan, status.progress))
                })
                .await
                .map_err(status::join_error)?
                .map_err(status::from_watch)?;
                Some(found)
            }
        };
        let policy: Policy = if request.policy.trim().is_empty() {
            match &from {
                Some((plan, _)) => plan.policy.clone().unwrap_or_else(|| self.state.default_policy.as_ref().clone()),
                None => self.state.default_policy.as_ref().clone(),
            }
        } else {
            let format = if request.policy_format.is_empty() {
                PolicyFormat::Toml
            } else {
                request.policy_format.parse().map_err(|e: kplan_planner::policy::PolicyError| status::policy(&e))?
            };
            parse_policy(&request.policy, format).map_err(|e| status::policy(&e))?
        };
        if request.datacenters.len() > 1 || request.security_tiers.len() > 1 {
            return Err(Status::invalid_argument(
                "datacenters, security_tiers: give at most one of each (one block filter)",
            ));
        }
        let block_filter =
            (!request.datacenters.is_empty() || !request.security_tiers.is_empty()).then(|| BlockFilter {
                datacenter: request.datacenters.first().cloned(),
                security_tier: request.security_tiers.first().cloned(),
            });
        let options = PlanOptions { block_filter, ..PlanOptions::default() };
        let store = self.state.store.clone();
        let outcome = tokio::task::spawn_blocking(move || propose_and_store(store.as_ref(), &policy, &options, from))
            .await
            .map_err(status::join_error)?;
        match outcome {
            Ok(outcome) => {
                let plan = outcome.plan;
                self.state.metrics.plans_proposed.inc();
                self.state.metrics.plan_solve_seconds.observe(plan.summary.solve_seconds);
                info!(
                    plan_id = %plan.id,
                    from_plan = from_plan.as_deref().unwrap_or_default(),
                    n_blocks = plan.summary.n_blocks,
                    n_infeasible = plan.summary.n_blocks_infeasible,
                    solve_seconds = plan.summary.solve_seconds,
                    "plan proposed"
                );
                Ok(Response::new(v1::ProposePlanResponse { plan: Some(plan.into()) }))
            }
            Err(status) => {
                warn!(error = %status.message(), "plan refused");
                Err(status)
            }
        }
    }

    async fn get_plan(&self, request: Request<v1::GetPlanRequest>) -> Result<Response<v1::GetPlanResponse>, Status> {
        let plan_id = request.into_inner().plan_id;
        let store = self.state.store.clone();
        let lookup = plan_id.clone();
        let plan = tokio::task::spawn_blocking(move || store.get_plan(&lookup))
            .await
            .map_err(status::join_error)?
            .map_err(status::from_store)?
            .ok_or_else(|| Status::not_found(format!("plan {plan_id:?} is not stored")))?;
        Ok(Response::new(v1::GetPlanResponse { plan: Some(plan.into()) }))
    }

    async fn list_plans(
        &self,
        _request: Request<v1::ListPlansRequest>,
    ) -> Result<Response<v1::ListPlansResponse>, Status> {
        let store = self.state.store.clone();
        let plans = tokio::task::spawn_blocking(move || store.list_plans())
            .await
            .map_err(status::join_error)?
            .map_err(status::from_store)?;
        Ok(Response::new(v1::ListPlansResponse { plans: plans.into_iter().map(Into::into).collect() }))
    }
}

/// Plans the store's newest inventory (with `from`: a stored plan and its
/// progress, the newest snapshots of its sources) and stores the plan under a new id.
fn propose_and_store(
    store: &dyn Store,
    policy: &Policy,
    options: &PlanOptions,
    from: Option<(kplan_model::Plan, kplan_model::watch::PlanProgress)>,
) -> Result<ProposeOutcome, Status> {
    let mut inventory = store.latest_snapshots().map_err(status::from_store)?;
    if let Some((plan, progress)) = &from {
        inventory = kplan_planner::watch::replan_inputs(plan, &inventory, progress)
            .map_err(|e| status::from_watch(e.into()))?;
    }
    let mut outcome = kplan_planner::propose(&inventory, policy, options).map_err(status::from_plan)?;
    kplan_planner::stamp(&mut outcome.plan, now_unix());
    store.put_plan(&outcome.plan).map_err(status::from_store)?;
    Ok(outcome)
}
