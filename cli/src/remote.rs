//! The gRPC client side of the CLI: the only CLI module that sees wire types.

use anyhow::Context;
use kplan_model::{ClusterSnapshot, ClusterSummary, Plan};
use kplan_planner::PlanOptions;
use kplan_proto::tls::{AuthChannel, ClientSecurity};
use kplan_proto::v1;
use kplan_store::PlanInfo;

#[derive(Debug, Clone)]
pub struct Remote {
    url: String,
    channel: AuthChannel,
}

/// One line for a refused call: the server's message and the status code.
pub fn describe_status(status: &tonic::Status) -> String {
    format!("{} ({:?})", status.message(), status.code())
}

fn refused(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        // A TLS or connection failure surfaces on the first call: say so.
        tonic::Code::Unavailable | tonic::Code::Unknown if is_transport_failure(&status) => {
            anyhow::anyhow!("connection failed: {}", transport_detail(&status))
        }
        _ => anyhow::anyhow!("server refused: {}", describe_status(&status)),
    }
}

fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// The message of an error and of its sources, each once: the innermost cause
/// (a TLS alert, a refused connection) is what helps.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

fn transport_detail(status: &tonic::Status) -> String {
    let message = status.message();
    match std::error::Error::source(status).map(error_chain) {
        Some(chain) if message.is_empty() || chain.contains(message) => chain,
        Some(chain) => format!("{message}: {chain}"),
        None => message.to_string(),
    }
}

/// One line naming the URL and the innermost cause.
fn connect_error(url: &str, err: &tonic::transport::Error) -> anyhow::Error {
    anyhow::anyhow!("connecting to {url}: {}", error_chain(err))
}

impl Remote {
    /// Connects with TLS (`https://`: the CA, and a client certificate or a
    /// bearer token) or, only when allowed, plaintext (`http://`); see
    /// `kplan_proto::tls`, shared with the agent.
    pub async fn connect(url: &str, security: &ClientSecurity) -> anyhow::Result<Remote> {
        let endpoint = security.endpoint(url)?;
        let bearer = security.bearer_token()?;
        let channel = endpoint.connect().await.map_err(|err| connect_error(url, &err))?;
        Ok(Remote { url: url.to_string(), channel: AuthChannel::new(channel, bearer) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn channel(&self) -> AuthChannel {
        self.channel.clone()
    }

    pub async fn report(&self, snapshot: ClusterSnapshot) -> anyhow::Result<bool> {
        let mut client = v1::inventory_service_client::InventoryServiceClient::new(self.channel())
            .max_encoding_message_size(usize::MAX);
        let reply = client
            .report_snapshot(v1::ReportSnapshotRequest { snapshot: Some(snapshot.into()) })
            .await
            .map_err(refused)?;
        Ok(reply.into_inner().created)
    }

    pub async fn list_clusters(&self) -> anyhow::Result<Vec<ClusterSummary>> {
        let mut client = v1::query_service_client::QueryServiceClient::new(self.channel());
        let reply = client.list_clusters(v1::ListClustersRequest::default()).await.map_err(refused)?;
        Ok(reply.into_inner().clusters.into_iter().map(Into::into).collect())
    }

    pub async fn get_cluster(
        &self,
        cluster_id: &str,
        generation: Option<u64>,
    ) -> anyhow::Result<Option<(ClusterSummary, ClusterSnapshot)>> {
        let mut client =
            v1::query_service_client::QueryServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX);
        let reply = client
            .get_cluster(v1::GetClusterRequest {
                cluster_id: cluster_id.to_string(),
                generation: generation.unwrap_or(0),
            })
            .await;
        match reply {
            Ok(reply) => {
                let reply = reply.into_inner();
                let summary = reply.summary.context("server reply lacks the cluster summary")?;
                let snapshot = reply.snapshot.context("server reply lacks the snapshot")?;
                Ok(Some((summary.into(), ClusterSnapshot::try_from(snapshot)?)))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(refused(status)),
        }
    }

    /// `policy_toml`: the merged, checked policy as TOML, or none for the server's own.
    /// `from_plan`: re-plan that stored plan's blocks (`kplan propose --from-plan`).
    pub async fn propose(
        &self,
        policy_toml: Option<String>,
        options: &PlanOptions,
        from_plan: Option<&str>,
    ) -> anyhow::Result<Plan> {
        let mut client =
            v1::planner_service_client::PlannerServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX);
        let policy_format = if policy_toml.is_some() { "toml".to_string() } else { String::new() };
        let policy = policy_toml.unwrap_or_default();
        let filter = options.block_filter.clone().unwrap_or_default();
        let reply = client
            .propose_plan(v1::ProposePlanRequest {
                policy,
                policy_format,
                datacenters: filter.datacenter.into_iter().collect(),
                security_tiers: filter.security_tier.into_iter().collect(),
                from_plan: from_plan.unwrap_or_default().to_string(),
            })
            .await
            .map_err(refused)?;
        Ok(reply.into_inner().plan.context("server reply lacks the plan")?.into())
    }

    pub async fn get_plan(&self, plan_id: &str) -> anyhow::Result<Option<Plan>> {
        let mut client =
            v1::planner_service_client::PlannerServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX);
        match client.get_plan(v1::GetPlanRequest { plan_id: plan_id.to_string() }).await {
            Ok(reply) => Ok(Some(reply.into_inner().plan.context("server reply lacks the plan")?.into())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(refused(status)),
        }
    }

    pub async fn list_plans(&self) -> anyhow::Result<Vec<PlanInfo>> {
        let mut client = v1::planner_service_client::PlannerServiceClient::new(self.channel());
        let reply = client.list_plans(v1::ListPlansRequest {}).await.map_err(refused)?;
        Ok(reply.into_inner().plans.into_iter().map(Into::into).collect())
    }

    pub async fn capacity_review(
        &self,
        quarter: String,
        datacenter: Option<String>,
        security_tier: Option<String>,
        headroom_threshold: f64,
        stale_after_seconds: i64,
    ) -> anyhow::Result<kplan_model::capacity::CapacityReview> {
        let mut client = v1::capacity_service_client::CapacityServiceClient::new(self.channel())
            .max_decoding_message_size(usize::MAX);
        let reply = client
            .capacity_review(v1::CapacityReviewRequest {
                quarter,
                datacenter: datacenter.unwrap_or_default(),
                security_tier: security_tier.unwrap_or_default(),
                headroom_threshold,
                stale_after_seconds,
            })
            .await
            .map_err(refused)?;
        Ok(reply.into_inner().try_into()?)
    }

    /// Approves (`approve`) or abandons a plan; returns its lifecycle and the plans an approval superseded.
    pub async fn set_lifecycle(
        &self,
        plan_id: &str,
        approve: bool,
    ) -> anyhow::Result<(kplan_model::watch::PlanLifecycle, Vec<String>)> {
        let mut client = v1::watch_service_client::WatchServiceClient::new(self.channel());
        let reply = if approve {
            client.approve_plan(v1::ApprovePlanRequest { plan_id: plan_id.to_string() }).await
        } else {
            client.abandon_plan(v1::AbandonPlanRequest { plan_id: plan_id.to_string() }).await
        }
        .map_err(refused)?
        .into_inner();
        Ok((reply.lifecycle.context("server reply lacks the lifecycle")?.into(), reply.superseded))
    }

    /// A plan's lifecycle, its last health check and its progress, as the server reads them.
    pub async fn plan_status(&self, plan_id: &str) -> anyhow::Result<kplan_model::watch::PlanStatus> {
        let mut client =
            v1::watch_service_client::WatchServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX);
        let reply =
            client.get_plan_status(v1::GetPlanStatusRequest { plan_id: plan_id.to_string() }).await.map_err(refused)?;
        Ok(reply.into_inner().into())
    }

    /// Every plan ever acted on: id, lifecycle, health.
    pub async fn plan_lifecycles(
        &self,
    ) -> anyhow::Result<Vec<(String, kplan_model::watch::PlanLifecycle, kplan_model::watch::HealthStatus)>> {
        let mut client = v1::watch_service_client::WatchServiceClient::new(self.channel());
        let reply = client.list_plan_lifecycles(v1::ListPlanLifecyclesRequest {}).await.map_err(refused)?;
        Ok(reply
            .into_inner()
            .plans
            .into_iter()
            .map(|p| {
                (
                    p.plan_id,
                    p.lifecycle.map(Into::into).unwrap_or_default(),
                    kplan_proto::convert::health_status_from_wire(p.health),
                )
            })
            .collect())
    }
}
