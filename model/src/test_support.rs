//! Inventory objects for other crates' unit tests (feature `test-support`, turned
//! on only in dev-dependencies).

use std::collections::{BTreeMap, BTreeSet};

use crate::{ClusterFacts, ClusterSnapshot, Namespace, Node, NodeAction, NodeRole, Plan, Resources, SlaTier};

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
        runtime_handlers: Vec::new(),
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

/// A `prod`, gold namespace requesting `cpu_millis`, 2 GiB and 10 pods.
pub fn namespace(name: &str, cpu_millis: u64) -> Namespace {
    Namespace {
        name: name.into(),
        labels: Default::default(),
        security_tier: "prod".into(),
        sla_tier: SlaTier::Gold,
        requests: Resources::new(cpu_millis, 2 << 30, 10),
        pod_groups: Vec::new(),
        applied_prerelease: Vec::new(),
        disruption_budgets: Vec::new(),
    }
}

/// A cluster of datacenter `fra`, tier `prod` (Kubernetes v1.29.3, calico).
pub fn block_cluster(id: &str, generation: u64, nodes: Vec<Node>, namespaces: Vec<Namespace>) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster_id: id.into(),
        generation,
        collected_at_unix: 1_700_000_000 + generation as i64,
        facts: ClusterFacts {
            datacenter: "fra".into(),
            zone: String::new(),
            security_tier: "prod".into(),
            kubernetes_version: "v1.29.3".into(),
            cni: "calico".into(),
            csi_drivers: Vec::new(),
        },
        nodes,
        namespaces,
        isolation: Default::default(),
    }
}

/// Three clusters of one block (`fra/prod`: `fra-prod-1` to `-3`), each a
/// control plane and four 8-core workers over zones `fra-a`, `fra-b`,
/// `fra-c`, with namespaces `app<N>` (2 cores) and `shared` (1 core): the
/// estate of the watch tests (several waves with the budget of 6 nodes and 2
/// namespaces).
pub fn three_cluster_block() -> Vec<ClusterSnapshot> {
    (1..=3)
        .map(|c| {
            let mut cp = worker(&format!("c{c}-cp"));
            cp.role = NodeRole::ControlPlane;
            let mut nodes = vec![cp];
            for (w, zone) in ["fra-a", "fra-b", "fra-c", "fra-a"].iter().enumerate() {
                nodes.push(worker(&format!("c{c}-w{w}")));
                nodes[w + 1].zone = zone.to_string();
            }
            for node in &mut nodes {
                node.allocatable = Resources::new(8000, 32 << 30, 110);
                node.kubelet_version = "v1.29.3".into();
            }
            let namespaces = vec![namespace(&format!("app{c}"), 2000), namespace("shared", 1000)];
            block_cluster(&format!("fra-prod-{c}"), 1, nodes, namespaces)
        })
        .collect()
}

/// What operators do for wave `n` of every block of `plan`, in `estate`
/// (cluster id → newest snapshot): nodes leave their source and report in
/// their target (a cluster named as the target, made when missing), freed
/// nodes leave, namespaces move under their final names (a part before the
/// cut-over: its requests move, the namespace stays in its source), add-ons
/// are installed. Returns the clusters changed, their generation bumped.
pub fn carry_out_wave(plan: &Plan, n: u64, estate: &mut BTreeMap<String, ClusterSnapshot>) -> Vec<String> {
    let mut changed = BTreeSet::new();
    fn target(estate: &mut BTreeMap<String, ClusterSnapshot>, name: &str) {
        estate.entry(name.to_string()).or_insert_with(|| block_cluster(name, 0, Vec::new(), Vec::new()));
    }
    for block in &plan.blocks {
        let Some(wave) = block.waves.iter().find(|w| w.index == n) else { continue };
        for moved in &wave.nodes {
            let source = estate.get_mut(&moved.cluster_id).expect("the node's source");
            let at = source.nodes.iter().position(|x| x.name == moved.node).expect("the node in its source");
            let node = source.nodes.remove(at);
            changed.insert(moved.cluster_id.clone());
            if moved.action == NodeAction::DrainAndJoin {
                target(estate, &moved.to_cluster);
                estate.get_mut(&moved.to_cluster).expect("made").nodes.push(node);
                changed.insert(moved.to_cluster.clone());
            }
        }
        for ns in &wave.namespaces {
            let final_name = if ns.new_name.is_empty() { ns.namespace.clone() } else { ns.new_name.clone() };
            let source = estate.get_mut(&ns.from_cluster).expect("the namespace's source");
            let at =
                source.namespaces.iter().position(|x| x.name == ns.namespace).expect("the namespace in its source");
            let mut moved = match &ns.part {
                // A part before the cut-over: its pods start in the target, the rest stay.
                Some(part) if part.index < part.of => {
                    let left = &mut source.namespaces[at];
                    left.requests = left.requests.saturating_sub(ns.requests);
                    let mut moved = left.clone();
                    moved.requests = ns.requests;
                    moved
                }
                _ => source.namespaces.remove(at),
            };
            moved.name = final_name.clone();
            target(estate, &ns.to_cluster);
            let target = estate.get_mut(&ns.to_cluster).expect("made");
            match target.namespaces.iter_mut().find(|x| x.name == final_name) {
                // Later parts (and the cut-over) join the pods already there.
                Some(there) if ns.part.is_some() => there.requests = there.requests.saturating_add(moved.requests),
                _ => target.namespaces.push(moved),
            }
            changed.insert(ns.from_cluster.clone());
            changed.insert(ns.to_cluster.clone());
        }
        for install in block.target_clusters.iter().flat_map(|t| t.addons.iter().map(move |a| (t, a))) {
            let (t, addon) = install;
            if addon.wave == n {
                target(estate, &t.name);
                let mut installed = namespace(&addon.namespace, addon.requests.cpu_millis);
                installed.requests = addon.requests;
                estate.get_mut(&t.name).expect("made").namespaces.push(installed);
                changed.insert(t.name.clone());
            }
        }
    }
    for id in &changed {
        let snapshot = estate.get_mut(id).expect("changed");
        snapshot.generation += 1;
        snapshot.collected_at_unix += 1;
    }
    changed.into_iter().collect()
}
