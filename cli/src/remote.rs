//! The gRPC client side of the CLI: the only CLI module that sees wire types.

use anyhow::Context;
use kplan_model::{ClusterSnapshot, ClusterSummary, Plan};
use kplan_proto::v1;
use kplan_server::planner::PlanOptions;
use kplan_server::store::PlanInfo;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Clone)]
pub struct Remote {
    url: String,
    channel: Channel,
}

/// One line for a refused call: the server's message and the status code.
pub fn describe_status(status: &tonic::Status) -> String {
    format!("{} ({:?})", status.message(), status.code())
}

fn refused(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("server refused: {}", describe_status(&status))
}

impl Remote {
    pub async fn connect(url: &str) -> anyhow::Result<Remote> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .with_context(|| format!("server url {url:?} is not a valid URL (e.g. http://127.0.0.1:7470)"))?
            .connect_timeout(std::time::Duration::from_secs(10));
        let channel = endpoint.connect().await.with_context(|| format!("connecting to {url}"))?;
        Ok(Remote { url: url.to_string(), channel })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn channel(&self) -> Channel {
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

    pub async fn propose(&self, policy: Option<(String, String)>, options: &PlanOptions) -> anyhow::Result<Plan> {
        let mut client =
            v1::planner_service_client::PlannerServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX);
        let (policy, policy_format) = policy.unwrap_or_default();
        let filter = options.block_filter.clone().unwrap_or_default();
        let reply = client
            .propose_plan(v1::ProposePlanRequest {
                policy,
                policy_format,
                datacenters: filter.datacenter.into_iter().collect(),
                security_tiers: filter.security_tier.into_iter().collect(),
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
        Ok(reply
            .into_inner()
            .plans
            .into_iter()
            .map(|p| PlanInfo {
                id: p.id,
                created_at_unix: p.created_at_unix,
                summary: p.summary.map(Into::into).unwrap_or_default(),
            })
            .collect())
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
}
