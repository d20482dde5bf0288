//! Inventory objects for other crates' unit tests (feature `test-support`, turned
//! on only in dev-dependencies).

use crate::{ClusterFacts, ClusterSnapshot, Node, NodeRole, Resources};

/// A 4-core, 16 GiB, 110-pod worker in datacenter `fra`, zone `fra-a`, without labels.
pub fn worker(name: &str) -> Node {
    Node {
        name: name.into(),
        labels: Default::default(),
        datacenter: "fra".into(),
        zone: "fra-a".into(),
        role: NodeRole::Worker,
        allocatable: Resources::new(4000, 16 << 30, 110),
        kubelet_version: "v1.29.0".into(),
        container_runtime: "containerd://1.7.0".into(),
        architecture: "amd64".into(),
        unschedulable: false,
        taints: Vec::new(),
        extended: Default::default(),
    }
}

/// A `prod` snapshot of `cluster_id` with these nodes and no namespaces.
pub fn snapshot(cluster_id: &str, generation: u64, collected_at_unix: i64, nodes: Vec<Node>) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster_id: cluster_id.into(),
        generation,
        collected_at_unix,
        facts: ClusterFacts { security_tier: "prod".into(), ..Default::default() },
        nodes,
        namespaces: vec![],
        isolation: Default::default(),
    }
}
