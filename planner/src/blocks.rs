//! Partitions the inventory into (datacenter, security tier) blocks, exactly as
//! `docs/plan-semantics.md` defines them.
//!
//! - A node belongs to (its datacenter, its cluster's security tier).
//! - A namespace belongs to (its cluster's datacenter, the namespace's security tier);
//!   a cluster's datacenter is where most of its nodes are (ties: the smallest
//!   name), else `facts.datacenter`.
//! - Platform namespaces never move and are not part of any block.
//! - A platform add-on (`namespaces::find_addons`) is installed once per target:
//!   of its instances in the block, only the largest stays a block namespace
//!   (its requests are what the target reserves; it "moves" in the wave the
//!   add-on is installed, before every other namespace by rank); the others
//!   are left out of the block like platform namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kplan_model::{AddonOrigin, ClusterSnapshot, Namespace, Node, Policy, Resources};

use super::namespaces::{find_addons, is_platform_namespace};
use crate::error::PlanError;
use crate::parts::{NamespacePart, Split, split_for_budgets};

/// One (datacenter, security tier).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockKey {
    pub datacenter: String,
    pub security_tier: String,
}

impl BlockKey {
    /// The base name of the block's target clusters: `<datacenter>-<tier>`.
    pub fn target_base_name(&self) -> String {
        format!("{}-{}", self.datacenter, self.security_tier)
    }

    /// `<datacenter>-<tier>` with anything but ASCII letters, digits, `-`, `_`
    /// and `.` replaced: usable as a file name.
    pub fn file_name(&self) -> String {
        self.target_base_name()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
            .collect()
    }

    /// The i-th target's name (0-based): `dc-tier`, `dc-tier-2`, ...
    pub fn target_name(&self, index: usize) -> String {
        if index == 0 { self.target_base_name() } else { format!("{}-{}", self.target_base_name(), index + 1) }
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.datacenter, self.security_tier)
    }
}

/// A node, by index into the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub cluster: usize,
    pub node: usize,
}

/// A namespace, by index into the inventory, or one part of it (`parts.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespaceId {
    pub cluster: usize,
    pub namespace: usize,
    /// 0: the whole namespace; k >= 1: its k-th part (`Block::parts`).
    pub part: u16,
}

/// The inventory of one block.
#[derive(Debug, Clone)]
pub struct Block {
    pub key: BlockKey,
    /// Sorted by (cluster id, node name).
    pub nodes: Vec<NodeId>,
    /// Namespaces that move (platform namespaces excluded), sorted by (cluster id, name).
    pub namespaces: Vec<NamespaceId>,
    /// Inventory indexes of the clusters with nodes or namespaces in the block, by cluster id.
    pub source_clusters: Vec<usize>,
    /// Zones of the block's nodes that may host its tier, sorted.
    pub allowed_zones: Vec<String>,
    /// Zones of the block's nodes that may not host its tier, sorted.
    pub forbidden_zones: Vec<String>,
    /// The block's platform add-ons, by name.
    pub addons: Vec<BlockAddon>,
    /// Namespaces that move in parts, by (cluster, namespace) index.
    pub parts: BTreeMap<(usize, usize), Split>,
}

/// A platform add-on of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAddon {
    pub name: String,
    pub origin: AddonOrigin,
    /// Every instance, by cluster id.
    pub instances: Vec<NamespaceId>,
    /// The largest instance: the one that stays in `Block::namespaces`.
    pub largest: NamespaceId,
}

impl Block {
    pub fn node<'a>(&self, inventory: &'a [ClusterSnapshot], id: NodeId) -> &'a Node {
        &inventory[id.cluster].nodes[id.node]
    }

    pub fn namespace<'a>(&self, inventory: &'a [ClusterSnapshot], id: NamespaceId) -> &'a Namespace {
        &inventory[id.cluster].namespaces[id.namespace]
    }

    /// The part `id` names, when it is one.
    pub fn part(&self, id: NamespaceId) -> Option<(&NamespacePart, usize)> {
        let split = self.parts.get(&(id.cluster, id.namespace))?;
        let k = usize::from(id.part).checked_sub(1)?;
        split.parts.get(k).map(|part| (part, split.parts.len()))
    }

    /// What the unit `id` asks for: the namespace's requests, or its part's.
    pub fn unit_requests(&self, inventory: &[ClusterSnapshot], id: NamespaceId) -> Resources {
        match self.part(id) {
            Some((part, _)) => part.requests,
            None => self.namespace(inventory, id).requests,
        }
    }

    /// How many pods of the namespace's `group`-th pod group the unit `id` holds.
    pub fn unit_replicas(&self, inventory: &[ClusterSnapshot], id: NamespaceId, group: usize) -> u64 {
        match self.part(id) {
            Some((part, _)) => part.replicas.get(group).copied().unwrap_or(0),
            None => self.namespace(inventory, id).pod_groups.get(group).map_or(0, |g| g.replicas),
        }
    }

    /// The add-on whose largest instance is `id`, if any.
    pub fn addon_of(&self, id: NamespaceId) -> Option<&BlockAddon> {
        self.addons.iter().find(|addon| addon.largest == id)
    }
}

/// The datacenter of a cluster: where most of its nodes are (ties: the smallest
/// name), else its configured datacenter.
pub fn cluster_datacenter(cluster: &ClusterSnapshot) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &cluster.nodes {
        *counts.entry(node.datacenter.as_str()).or_default() += 1;
    }
    // BTreeMap iterates names in order; keep the first of the largest count.
    let mut best: Option<(&str, usize)> = None;
    for (name, count) in counts {
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((name, count));
        }
    }
    match best {
        Some((name, _)) => name.to_string(),
        None => cluster.facts.datacenter.clone(),
    }
}

/// Which tiers each zone may host, from the policy and (for unlisted zones) from
/// the clusters whose nodes are already in it.
#[derive(Debug, Clone, Default)]
pub struct ZoneTiers {
    present: BTreeMap<String, BTreeSet<String>>,
}

impl ZoneTiers {
    pub fn from_inventory(inventory: &[ClusterSnapshot]) -> Self {
        let mut present: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for cluster in inventory {
            for node in &cluster.nodes {
                present.entry(node.zone.clone()).or_default().insert(cluster.facts.security_tier.clone());
            }
        }
        ZoneTiers { present }
    }

    pub fn may_host(&self, policy: &Policy, zone: &str, tier: &str) -> bool {
        match policy.zones.get(zone) {
            Some(zone_policy) => zone_policy.tiers.iter().any(|t| t == tier),
            None => {
                policy.unlisted_zones_host_any_tier || self.present.get(zone).is_some_and(|tiers| tiers.contains(tier))
            }
        }
    }

    /// The tiers a zone may host, for explanations.
    pub fn hosted_tiers(&self, policy: &Policy, zone: &str) -> Vec<String> {
        match policy.zones.get(zone) {
            Some(zone_policy) => zone_policy.tiers.clone(),
            None => self.present.get(zone).map(|t| t.iter().cloned().collect()).unwrap_or_default(),
        }
    }
}

/// Rejects an inventory the planner cannot make sense of.
pub fn check_inventory(inventory: &[ClusterSnapshot]) -> Result<(), PlanError> {
    if inventory.is_empty() {
        return Err(PlanError::EmptyInventory);
    }
    let mut ids = BTreeSet::new();
    for cluster in inventory {
        if cluster.cluster_id.is_empty() {
            return Err(PlanError::InvalidInventory {
                cluster_id: String::new(),
                reason: "a cluster has an empty cluster id".to_string(),
            });
        }
        if !ids.insert(cluster.cluster_id.as_str()) {
            return Err(PlanError::InvalidInventory {
                cluster_id: cluster.cluster_id.clone(),
                reason: "the cluster appears twice in the inventory".to_string(),
            });
        }
        let mut names = BTreeSet::new();
        for node in &cluster.nodes {
            if !names.insert(node.name.as_str()) {
                return Err(PlanError::InvalidInventory {
                    cluster_id: cluster.cluster_id.clone(),
                    reason: format!("node {} appears twice", node.name),
                });
            }
        }
        let mut names = BTreeSet::new();
        for namespace in &cluster.namespaces {
            if !names.insert(namespace.name.as_str()) {
                return Err(PlanError::InvalidInventory {
                    cluster_id: cluster.cluster_id.clone(),
                    reason: format!("namespace {} appears twice", namespace.name),
                });
            }
        }
    }
    Ok(())
}

/// Every block of the inventory, sorted by key.
pub fn partition(inventory: &[ClusterSnapshot], policy: &Policy) -> Vec<Block> {
    let zone_tiers = ZoneTiers::from_inventory(inventory);
    let mut order: Vec<usize> = (0..inventory.len()).collect();
    order.sort_by(|&a, &b| inventory[a].cluster_id.cmp(&inventory[b].cluster_id));

    #[derive(Default)]
    struct Members {
        nodes: Vec<NodeId>,
        namespaces: Vec<NamespaceId>,
    }
    let mut members: BTreeMap<BlockKey, Members> = BTreeMap::new();
    for &c in &order {
        let cluster = &inventory[c];
        let mut node_order: Vec<usize> = (0..cluster.nodes.len()).collect();
        node_order.sort_by(|&a, &b| cluster.nodes[a].name.cmp(&cluster.nodes[b].name));
        for n in node_order {
            let key = BlockKey {
                datacenter: cluster.nodes[n].datacenter.clone(),
                security_tier: cluster.facts.security_tier.clone(),
            };
            members.entry(key).or_default().nodes.push(NodeId { cluster: c, node: n });
        }
        let datacenter = cluster_datacenter(cluster);
        let mut namespace_order: Vec<usize> = (0..cluster.namespaces.len()).collect();
        namespace_order.sort_by(|&a, &b| cluster.namespaces[a].name.cmp(&cluster.namespaces[b].name));
        for n in namespace_order {
            let namespace = &cluster.namespaces[n];
            if is_platform_namespace(&namespace.name, policy) {
                continue;
            }
            let key = BlockKey { datacenter: datacenter.clone(), security_tier: namespace.security_tier.clone() };
            members.entry(key).or_default().namespaces.push(NamespaceId { cluster: c, namespace: n, part: 0 });
        }
    }

    members
        .into_iter()
        .map(|(key, mut m)| {
            let addons = block_addons(inventory, &mut m.namespaces, &m.nodes, policy);
            let mut clusters: BTreeSet<(&str, usize)> = BTreeSet::new();
            let mut allowed = BTreeSet::new();
            let mut forbidden = BTreeSet::new();
            for id in &m.nodes {
                clusters.insert((inventory[id.cluster].cluster_id.as_str(), id.cluster));
                let zone = &inventory[id.cluster].nodes[id.node].zone;
                if zone_tiers.may_host(policy, zone, &key.security_tier) {
                    allowed.insert(zone.clone());
                } else {
                    forbidden.insert(zone.clone());
                }
            }
            for id in &m.namespaces {
                clusters.insert((inventory[id.cluster].cluster_id.as_str(), id.cluster));
            }
            let mut block = Block {
                key,
                nodes: m.nodes,
                namespaces: m.namespaces,
                source_clusters: clusters.into_iter().map(|(_, c)| c).collect(),
                allowed_zones: allowed.into_iter().collect(),
                forbidden_zones: forbidden.into_iter().collect(),
                addons,
                parts: BTreeMap::new(),
            };
            split_for_budgets(inventory, &mut block, policy);
            block
        })
        .collect()
}

/// The add-ons among a block's `namespaces`: every instance but the largest is
/// taken out of `namespaces`. Clusters are counted before that.
fn block_addons(
    inventory: &[ClusterSnapshot],
    namespaces: &mut Vec<NamespaceId>,
    nodes: &[NodeId],
    policy: &Policy,
) -> Vec<BlockAddon> {
    let n_clusters = nodes
        .iter()
        .map(|id| id.cluster)
        .chain(namespaces.iter().map(|id| id.cluster))
        .collect::<BTreeSet<usize>>()
        .len();
    let candidates: Vec<(&str, &Namespace)> = namespaces
        .iter()
        .map(|id| (inventory[id.cluster].cluster_id.as_str(), &inventory[id.cluster].namespaces[id.namespace]))
        .collect();
    let addons: Vec<BlockAddon> = find_addons(&candidates, n_clusters, policy)
        .into_iter()
        .map(|found| BlockAddon {
            name: found.name,
            origin: found.origin,
            instances: found.instances.iter().map(|&k| namespaces[k]).collect(),
            largest: namespaces[found.largest],
        })
        .collect();
    let left_out: BTreeSet<NamespaceId> =
        addons.iter().flat_map(|addon| addon.instances.iter().copied().filter(|&id| id != addon.largest)).collect();
    namespaces.retain(|id| !left_out.contains(id));
    addons
}
