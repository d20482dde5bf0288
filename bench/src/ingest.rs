//! The ingest measurement: concurrent gRPC clients reporting 200-node snapshots.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use kplan_model::ClusterSnapshot;
use kplan_proto::v1::ReportSnapshotRequest;
use kplan_proto::v1::inventory_service_client::InventoryServiceClient;
use kplan_store::{SledStore, Store};

use crate::generate::{EstateSpec, generate};

/// A 200-node snapshot of the generator's kind.
pub fn template(seed: u64) -> ClusterSnapshot {
    let estate = generate(&EstateSpec::single_block(1, 200), seed);
    estate.snapshots.into_iter().next().expect("one cluster")
}

#[derive(Debug)]
pub struct DriveOutcome {
    pub seconds: f64,
    pub latencies_ms: Vec<f64>,
    pub errors: usize,
    pub first_error: Option<String>,
}

/// `n_clients` clients, each on its own connection, each sending `per_client`
/// generations of its own cluster (`ingest-<first_cluster + c>`), one after another.
pub async fn drive(
    url: &str,
    template: &ClusterSnapshot,
    first_cluster: usize,
    n_clients: usize,
    per_client: usize,
) -> DriveOutcome {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..n_clients {
        let url = url.to_string();
        let mut snapshot = template.clone();
        snapshot.cluster_id = format!("ingest-{:03}", first_cluster + c);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            let mut errors = 0;
            let mut first_error = None;
            let mut client = match InventoryServiceClient::connect(url).await {
                Ok(client) => client.max_decoding_message_size(64 << 20),
                Err(e) => return (latencies, per_client, Some(format!("connect: {e}"))),
            };
            for generation in 1..=per_client as u64 {
                snapshot.generation = generation;
                snapshot.collected_at_unix += 60;
                // Demand drifts a little from one report to the next, as it does.
                let n_namespaces = snapshot.namespaces.len().max(1);
                if let Some(ns) = snapshot.namespaces.get_mut(generation as usize % n_namespaces) {
                    ns.requests.cpu_millis += 10;
                }
                let wire: kplan_proto::v1::ClusterSnapshot = snapshot.clone().into();
                let request = ReportSnapshotRequest { snapshot: Some(wire) };
                let sent = Instant::now();
                match client.report_snapshot(request).await {
                    Ok(_) => latencies.push(sent.elapsed().as_secs_f64() * 1000.0),
                    Err(status) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{}: {}", status.code(), status.message()));
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut outcome = DriveOutcome { seconds: 0.0, latencies_ms: Vec::new(), errors: 0, first_error: None };
    for task in tasks {
        match task.await {
            Ok((latencies, errors, first_error)) => {
                outcome.latencies_ms.extend(latencies);
                outcome.errors += errors;
                if outcome.first_error.is_none() {
                    outcome.first_error = first_error;
                }
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}

/// Every snapshot the store keeps, and their total size as compact JSON.
pub fn kept_bytes(data_dir: &Path) -> anyhow::Result<(usize, u64)> {
    let store = SledStore::open(data_dir).context("opening the store again")?;
    let mut n = 0;
    let mut bytes = 0u64;
    for cluster in store.list_clusters()? {
        for (_, snapshot) in store.history(&cluster.cluster_id)? {
            n += 1;
            bytes += serde_json::to_vec(&snapshot)?.len() as u64;
        }
    }
    Ok((n, bytes))
}
