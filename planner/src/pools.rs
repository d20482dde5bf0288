//! Aggregates a block's nodes into pools and its namespaces into groups.
//!
//! A pool is a set of interchangeable nodes: same source cluster, zone,
//! allocatable shape (exact cpu, memory and pods) and role. The models count
//! nodes per pool instead of deciding node by node. Runtime and kubelet version
//! are deliberately not part of the key: they change no constraint, only the
//! preconditions; within a pool, nodes are kept in a preference order instead
//! (schedulable before cordoned, containerd before docker, then by name), so the
//! concrete choice is deterministic and needs the fewest migrations.
//!
//! Nodes that offer the block's placement classes differently (`classes.rs`:
//! a GPU node, a tainted node, a node some pods select) are in different pools.
//!
//! A namespace group is the namespaces of one source cluster and SLA tier.

use std::collections::BTreeMap;

use kplan_model::{ClusterSnapshot, NodeRole, Policy, Resources, SlaTier};

use super::blocks::{Block, cluster_datacenter};
use crate::classes::Placement;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePool {
    /// Index into `Block::source_clusters`.
    pub source: usize,
    pub zone: String,
    pub allocatable: Resources,
    pub role: NodeRole,
    /// The zone may host the block's tier.
    pub allowed: bool,
    /// Block node indexes, in the order they are kept.
    pub members: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceGroup {
    pub source: usize,
    pub sla_rank: usize,
    /// Block namespace indexes.
    pub members: Vec<usize>,
    pub demand: Resources,
}

/// Per-unit facts of a block, indexed like `Block::nodes` and `Block::namespaces`.
#[derive(Debug, Clone)]
pub struct BlockData {
    pub node_allocatable: Vec<Resources>,
    /// Index into `Block::source_clusters`.
    pub node_source: Vec<usize>,
    /// The node runs its source cluster's control plane.
    pub node_source_control_plane: Vec<bool>,
    pub node_zone: Vec<String>,
    pub node_allowed: Vec<bool>,
    pub node_pool: Vec<usize>,
    pub pools: Vec<NodePool>,
    pub namespace_demand: Vec<Resources>,
    pub namespace_source: Vec<usize>,
    pub namespace_sla: Vec<SlaTier>,
    /// Position of the namespace's SLA tier in the policy's order, plus one
    /// (moves first when lower); 0 for a platform add-on, installed first.
    pub namespace_sla_rank: Vec<usize>,
    pub groups: Vec<NamespaceGroup>,
    /// Per namespace unit: the part of the same namespace that moves just
    /// before it (`parts.rs`), which must move in an earlier wave.
    pub namespace_after: Vec<Option<usize>>,
    /// Total demand of the namespaces that move.
    pub demand: Resources,
    /// Per source: it has nodes in the block, so its capacity is checked here (a
    /// foreign source only has namespaces of another tier than its own here: its
    /// nodes live in another block's timeline).
    pub source_checked: Vec<bool>,
    /// Per source: the block owns the cluster (its datacenter and tier), so the
    /// cluster is retired in this block.
    pub source_owned: Vec<bool>,
    /// What the pods need of the nodes, beyond the namespace sums (`classes.rs`).
    pub placement: Placement,
}

/// Where an SLA tier moves: its position in `policy.sla_order`; tiers the policy
/// does not list move after the listed ones, least critical first.
pub fn sla_rank(policy: &Policy, tier: SlaTier) -> usize {
    match policy.sla_order.iter().position(|&t| t == tier) {
        Some(position) => position,
        None => policy.sla_order.len() + tier as usize,
    }
}

fn is_docker(runtime: &str) -> bool {
    runtime.starts_with("docker")
}

impl BlockData {
    pub fn new(
        inventory: &[ClusterSnapshot],
        block: &Block,
        allowed: impl Fn(&str) -> bool,
        policy: &Policy,
    ) -> BlockData {
        let source_slot: BTreeMap<usize, usize> =
            block.source_clusters.iter().enumerate().map(|(slot, &c)| (c, slot)).collect();

        let mut node_allocatable = Vec::with_capacity(block.nodes.len());
        let mut node_source = Vec::with_capacity(block.nodes.len());
        let mut node_source_control_plane = Vec::with_capacity(block.nodes.len());
        let mut node_zone = Vec::with_capacity(block.nodes.len());
        let mut node_allowed = Vec::with_capacity(block.nodes.len());
        let headroom = [policy.headroom.cpu, policy.headroom.memory, policy.headroom.pods];
        let placement = Placement::new(inventory, block, headroom, policy.local_volumes);
        // Nodes that offer placement classes differently are not interchangeable.
        type PoolKey = (usize, String, NodeRole, Resources, Vec<u64>);
        let mut keys: BTreeMap<PoolKey, Vec<usize>> = BTreeMap::new();
        for (i, &id) in block.nodes.iter().enumerate() {
            let node = block.node(inventory, id);
            let source = source_slot[&id.cluster];
            node_allocatable.push(node.allocatable);
            node_source.push(source);
            node_source_control_plane.push(node.role == NodeRole::ControlPlane);
            node_zone.push(node.zone.clone());
            node_allowed.push(allowed(&node.zone));
            let signature = placement.node_signature(i);
            keys.entry((source, node.zone.clone(), node.role, node.allocatable, signature)).or_default().push(i);
        }
        let mut pools = Vec::with_capacity(keys.len());
        let mut node_pool = vec![0; block.nodes.len()];
        for ((source, zone, role, allocatable, _), mut members) in keys {
            members.sort_by_cached_key(|&i| {
                let node = block.node(inventory, block.nodes[i]);
                (node.unschedulable, is_docker(&node.container_runtime), node.name.clone())
            });
            for &i in &members {
                node_pool[i] = pools.len();
            }
            let allowed = allowed(&zone);
            pools.push(NodePool { source, zone, allocatable, role, allowed, members });
        }

        let mut namespace_demand = Vec::with_capacity(block.namespaces.len());
        let mut namespace_source = Vec::with_capacity(block.namespaces.len());
        let mut namespace_sla = Vec::with_capacity(block.namespaces.len());
        let mut namespace_sla_rank = Vec::with_capacity(block.namespaces.len());
        let mut group_keys: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, &id) in block.namespaces.iter().enumerate() {
            let namespace = block.namespace(inventory, id);
            let source = source_slot[&id.cluster];
            // An add-on is installed before any namespace moves: it ranks first.
            let rank = if block.addon_of(id).is_some() { 0 } else { 1 + sla_rank(policy, namespace.sla_tier) };
            namespace_demand.push(block.unit_requests(inventory, id));
            namespace_source.push(source);
            namespace_sla.push(namespace.sla_tier);
            namespace_sla_rank.push(rank);
            group_keys.entry((source, rank)).or_default().push(i);
        }
        let groups = group_keys
            .into_iter()
            .map(|((source, sla_rank), members)| NamespaceGroup {
                source,
                sla_rank,
                demand: members.iter().map(|&i| namespace_demand[i]).sum(),
                members,
            })
            .collect();
        let demand = namespace_demand.iter().copied().sum();
        let namespace_after = (0..block.namespaces.len())
            .map(|j| {
                let id = block.namespaces[j];
                (j > 0 && id.part > 1).then(|| j - 1).filter(|&p| {
                    let before = block.namespaces[p];
                    (before.cluster, before.namespace, before.part + 1) == (id.cluster, id.namespace, id.part)
                })
            })
            .collect();
        let mut source_checked = vec![false; block.source_clusters.len()];
        for &s in &node_source {
            source_checked[s] = true;
        }
        let source_owned = block
            .source_clusters
            .iter()
            .map(|&c| {
                let cluster = &inventory[c];
                cluster.facts.security_tier == block.key.security_tier
                    && cluster_datacenter(cluster) == block.key.datacenter
            })
            .collect();

        BlockData {
            node_allocatable,
            node_source,
            node_source_control_plane,
            node_zone,
            node_allowed,
            node_pool,
            pools,
            namespace_demand,
            namespace_source,
            namespace_sla,
            namespace_sla_rank,
            groups,
            namespace_after,
            demand,
            source_checked,
            source_owned,
            placement,
        }
    }

    /// The node is a control-plane node of a source the block owns: it moves
    /// only in the wave its source is retired.
    pub fn moves_at_retirement(&self, node: usize) -> bool {
        self.node_source_control_plane[node] && self.source_owned[self.node_source[node]]
    }

    pub fn n_nodes(&self) -> usize {
        self.node_allocatable.len()
    }

    pub fn n_namespaces(&self) -> usize {
        self.namespace_demand.len()
    }
}
