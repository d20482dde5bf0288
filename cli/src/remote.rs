//! The gRPC client side of the CLI: the only CLI module that sees wire types.

use anyhow::Context;
use kplan_model::{ClusterSnapshot, ClusterSummary};
use kplan_proto::v1;
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
}
