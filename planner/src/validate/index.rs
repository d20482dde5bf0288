//! The inventory indexed once for the validator (its own `cluster_datacenter`,
//! on purpose: it shares no code with the planner's blocks).

use super::*;

pub(super) type BlockKey = (String, String);
pub(super) type NodeKey<'a> = (&'a str, &'a str);
pub(super) type NamespaceKey<'a> = (&'a str, &'a str);

pub(super) struct NodeInfo<'a> {
    pub(super) node: &'a Node,
    pub(super) block: BlockKey,
}

pub(super) struct NamespaceInfo<'a> {
    pub(super) namespace: &'a Namespace,
    /// None for a platform namespace and for an add-on's instance other than
    /// its largest (installed once per target, they belong to no block).
    pub(super) block: Option<BlockKey>,
}

#[derive(Default)]
pub(super) struct Members<'a> {
    pub(super) nodes: BTreeSet<NodeKey<'a>>,
    pub(super) namespaces: BTreeSet<NamespaceKey<'a>>,
}

/// The inventory, indexed once.
pub(super) struct Index<'a> {
    pub(super) clusters: BTreeMap<&'a str, &'a ClusterSnapshot>,
    /// The block that owns each cluster (its datacenter, its tier).
    pub(super) owner: BTreeMap<&'a str, BlockKey>,
    pub(super) nodes: BTreeMap<NodeKey<'a>, NodeInfo<'a>>,
    pub(super) namespaces: BTreeMap<NamespaceKey<'a>, NamespaceInfo<'a>>,
    /// Tiers of the clusters with nodes in each zone (for unlisted zones).
    pub(super) zone_tiers: BTreeMap<&'a str, BTreeSet<&'a str>>,
    pub(super) blocks: BTreeMap<BlockKey, Members<'a>>,
    /// Per block, the largest instance of each add-on (`namespaces::find_addons`):
    /// it stays in the block and is "moved" by the target's add-on install.
    pub(super) addons: BTreeMap<BlockKey, BTreeSet<NamespaceKey<'a>>>,
    /// Problems with the inventory itself (duplicate ids).
    pub(super) problems: Vec<String>,
    /// (cluster, namespace, part index) -> the part's key name (`parts.rs`).
    pub(super) part_names: BTreeMap<(&'a str, &'a str, u32), &'a str>,
    /// A namespace that moves in parts -> its parts' keys.
    pub(super) parts_of: BTreeMap<NamespaceKey<'a>, Vec<NamespaceKey<'a>>>,
}

pub(super) fn cluster_datacenter(cluster: &ClusterSnapshot) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &cluster.nodes {
        *counts.entry(node.datacenter.as_str()).or_default() += 1;
    }
    let best = counts.values().copied().max();
    match best {
        Some(best) => counts.into_iter().find(|&(_, n)| n == best).map(|(dc, _)| dc.to_string()).unwrap_or_default(),
        None => cluster.facts.datacenter.clone(),
    }
}

impl<'a> Index<'a> {
    pub(super) fn new(inventory: &'a [ClusterSnapshot], policy: &Policy) -> Self {
        let mut index = Index {
            clusters: BTreeMap::new(),
            owner: BTreeMap::new(),
            nodes: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            zone_tiers: BTreeMap::new(),
            blocks: BTreeMap::new(),
            addons: BTreeMap::new(),
            problems: Vec::new(),
            part_names: BTreeMap::new(),
            parts_of: BTreeMap::new(),
        };
        for cluster in inventory {
            let id = cluster.cluster_id.as_str();
            if index.clusters.insert(id, cluster).is_some() {
                index.problems.push(format!("cluster {id} appears twice in the inventory"));
                continue;
            }
            let tier = cluster.facts.security_tier.clone();
            let datacenter = cluster_datacenter(cluster);
            index.owner.insert(id, (datacenter.clone(), tier.clone()));
            for node in &cluster.nodes {
                let block = (node.datacenter.clone(), tier.clone());
                index.zone_tiers.entry(node.zone.as_str()).or_default().insert(cluster.facts.security_tier.as_str());
                if index.nodes.contains_key(&(id, node.name.as_str())) {
                    index.problems.push(format!("node {id}/{} appears twice in the inventory", node.name));
                    continue;
                }
                index.blocks.entry(block.clone()).or_default().nodes.insert((id, node.name.as_str()));
                index.nodes.insert((id, node.name.as_str()), NodeInfo { node, block });
            }
            for namespace in &cluster.namespaces {
                let key = (id, namespace.name.as_str());
                if index.namespaces.contains_key(&key) {
                    index.problems.push(format!("namespace {id}/{} appears twice in the inventory", namespace.name));
                    continue;
                }
                let block = if is_platform_namespace(&namespace.name, policy) {
                    None
                } else {
                    let block = (datacenter.clone(), namespace.security_tier.clone());
                    index.blocks.entry(block.clone()).or_default().namespaces.insert(key);
                    Some(block)
                };
                index.namespaces.insert(key, NamespaceInfo { namespace, block });
            }
        }
        index.set_addons(policy);
        index
    }

    /// Finds each block's add-ons with the shared definition, keeps their
    /// largest instances and takes the others out of the block.
    fn set_addons(&mut self, policy: &Policy) {
        for (key, members) in &mut self.blocks {
            let clusters: BTreeSet<&str> =
                members.nodes.iter().map(|k| k.0).chain(members.namespaces.iter().map(|k| k.0)).collect();
            let keys: Vec<NamespaceKey<'a>> = members.namespaces.iter().copied().collect();
            let candidates: Vec<(&str, &Namespace)> =
                keys.iter().map(|k| (k.0, self.namespaces[k].namespace)).collect();
            for found in find_addons(&candidates, clusters.len(), policy) {
                self.addons.entry(key.clone()).or_default().insert(keys[found.largest]);
                for &k in found.instances.iter().filter(|&&k| k != found.largest) {
                    members.namespaces.remove(&keys[k]);
                    if let Some(info) = self.namespaces.get_mut(&keys[k]) {
                        info.block = None;
                    }
                }
            }
        }
    }

    pub(super) fn may_host(&self, policy: &Policy, zone: &str, tier: &str) -> bool {
        match policy.zones.get(zone) {
            Some(zone_policy) => zone_policy.tiers.iter().any(|t| t == tier),
            None => {
                policy.unlisted_zones_host_any_tier
                    || self.zone_tiers.get(zone).is_some_and(|tiers| tiers.contains(tier))
            }
        }
    }
}
