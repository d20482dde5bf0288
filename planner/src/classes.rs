//! Placement classes (issue 17): what a block's pods need of a node, as few
//! rows as the distinct needs, so that every model grows with the number of
//! classes and not with pods.
//!
//! Nodes are grouped into *node classes* (same allocatable, cordon, repelling
//! taints, extended resources that some pod asks for, and labels some pod
//! selects on); pod groups are judged once per node class by the scheduler's
//! filters ([`refusal`]: taints and tolerations, `nodeSelector`, required node
//! affinity, and one pod fitting on one node for every resource). The set of
//! node classes that may host a workload is its *eligible set*. A workload
//! whose eligible set is not every node of the block (GPU pods, pods pinned by
//! affinity, pods too large for the small nodes, and ordinary pods when some
//! nodes are tainted) is *confined*, and so is one that asks for an extended
//! resource.
//!
//! For every distinct eligible set `S` of a confined workload, the block gets
//! [`ClassRow`]s: the nodes of `S` that a cluster has at a moment must hold,
//! with the policy's headroom for cpu, memory and pods and in whole for
//! extended resources (a GPU is a device, not a share), every workload whose
//! eligible set lies within `S`. The composition model keeps them in the
//! target, the waves keep them in every source and target at every moment,
//! exactly as they keep the namespace sums.
//!
//! These are Hall's conditions on the sets that occur; the validator checks
//! the same kind of condition on each cluster's own nodes at each moment,
//! where intersections can form sets that do not occur block-wide. A plan the
//! rows accept may therefore, rarely, still be refused by the validator (and
//! then falls back or is explained); a plan they refuse is never valid.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use kplan_model::policy::LocalVolumes;
use kplan_model::scheduling::{PodGroup, Taint, refusal};
use kplan_model::{ClusterSnapshot, Node, Resources};

use crate::blocks::Block;

/// One condition on one set of node classes and one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRow {
    /// Index into [`Placement::sets`].
    pub set: usize,
    /// `cpu`, `memory`, `pods` or an extended resource's name.
    pub resource: String,
    /// The fraction kept free: the policy's headroom for cpu, memory and
    /// pods, 0 for extended resources.
    pub headroom: f64,
    /// The row's unit in the models (1000 for millicores, 2^30 for bytes).
    pub unit: f64,
    /// Per block node: what it offers the set's workloads (0 outside the set).
    pub node_supply: Vec<u64>,
    /// Per block namespace: what its pods confined to the set ask for.
    pub namespace_need: Vec<u64>,
    /// The row's pods keep their data on the set's nodes (local volumes,
    /// `local_volumes = "keep-node"`): they move with those nodes, in the same
    /// wave ([`Placement::travels`]), so the waves do not hold them on both
    /// sides. The composition still keeps the nodes in the target.
    pub travels: bool,
}

impl ClassRow {
    /// `need` fits on `supply` under the row's headroom (the planner's one
    /// headroom rule, [`crate::headroom::fits_one`]); without headroom, in
    /// whole units exactly (4 GPUs fit on 4).
    pub fn fits(&self, need: u64, supply: u64) -> bool {
        if self.headroom <= 0.0 {
            return need <= supply;
        }
        crate::headroom::fits_one(need as f64, self.headroom, supply as f64)
    }

    /// [`fits`](Self::fits) at a moment of the waves: a row whose pods travel
    /// with their nodes always fits there (the pairing is a rule of its own).
    pub fn fits_staged(&self, need: u64, supply: u64) -> bool {
        self.travels || self.fits(need, supply)
    }

    pub fn total_need(&self) -> u64 {
        self.namespace_need.iter().fold(0u64, |acc, n| acc.saturating_add(*n))
    }

    /// An amount of the row's resource in a user's words.
    pub fn amount(&self, value: u64) -> String {
        match self.resource.as_str() {
            "cpu" => format!("{:.2} cores", value as f64 / 1000.0),
            "memory" => format!("{:.1} GiB", value as f64 / (1u64 << 30) as f64),
            "pods" => format!("{value} pods"),
            _ if self.unit > 1.0 => format!("{:.1} GiB", value as f64 / self.unit),
            _ => value.to_string(),
        }
    }
}

/// A set of node classes some workloads are confined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfinedSet {
    /// `namespace/Kind/name` of the workloads that may only run there (sorted).
    pub workloads: Vec<String>,
    /// How many block nodes are in the set.
    pub n_nodes: usize,
    /// What the set's nodes have in common, in a user's words.
    pub nodes: String,
}

/// The block's placement classes and the rows they give.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub sets: Vec<ConfinedSet>,
    pub rows: Vec<ClassRow>,
    pub n_node_classes: usize,
    /// Distinct eligible sets of the block's workloads.
    pub n_pod_classes: usize,
    /// Workloads no node of the block can host, with the scheduler's reasons.
    pub homeless: Vec<String>,
    /// `(namespace, node)`, block indices: the namespace's pods keep data on
    /// local volumes of the node, in its own source (`local_volumes =
    /// "keep-node"`): the node is kept in the namespace's target and both move
    /// in the same wave, the pods with their disks. Sorted.
    pub travels: Vec<(usize, usize)>,
    /// Per block node: some pod of the block needs what it has (a repelling
    /// taint, an extended resource some pod asks for, a label some pod
    /// selects): a GPU, dedicated or big-memory node. Not a target's
    /// control-plane node where plain ones will do (`context.rs`). Empty when
    /// the block reports no pods.
    pub special: Vec<bool>,
}

/// Labels that say where a node is, not what it offers: a pod that selects on
/// them (a local volume's `kubernetes.io/hostname`) does not make a node special.
const TOPOLOGY_LABELS: [&str; 3] =
    ["kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region"];

/// The node class key: what the block's pods can tell apart.
type NodeKey<'n> = (Resources, bool, Vec<&'n Taint>, Vec<(&'n str, u64)>, Vec<(&'n str, &'n str)>);

impl Placement {
    /// The placement classes of `block` (empty when its namespaces report no pods).
    pub fn new(
        inventory: &[ClusterSnapshot],
        block: &Block,
        headroom: [f64; 3],
        local_volumes: LocalVolumes,
    ) -> Placement {
        // Under `migrate-data` node-local volumes do not pin (their data moves,
        // and the plan lists the migration: `materialise.rs`).
        let migrate = local_volumes == LocalVolumes::MigrateData;
        let groups: Vec<(usize, &str, Cow<'_, PodGroup>)> = block
            .namespaces
            .iter()
            .enumerate()
            .flat_map(|(j, &id)| {
                let namespace = block.namespace(inventory, id);
                // A part holds some of each group's replicas (`parts.rs`).
                namespace.pod_groups.iter().enumerate().filter_map(move |(k, g)| {
                    let replicas = block.unit_replicas(inventory, id, k);
                    let mut group = g.with_data_migrated(|_| migrate);
                    if replicas != g.replicas {
                        group.to_mut().replicas = replicas;
                    }
                    (replicas > 0).then_some((j, namespace.name.as_str(), group))
                })
            })
            .collect();
        if groups.is_empty() {
            return Placement::default();
        }
        let nodes: Vec<&Node> = block.nodes.iter().map(|&id| block.node(inventory, id)).collect();
        let selected: BTreeSet<&str> = groups.iter().flat_map(|(_, _, g)| g.selected_keys()).collect();
        let requested: BTreeSet<&str> =
            groups.iter().flat_map(|(_, _, g)| g.extended.keys().map(String::as_str)).collect();

        // Node classes, in key order; per node its class.
        let mut by_key: BTreeMap<NodeKey<'_>, Vec<usize>> = BTreeMap::new();
        for (i, node) in nodes.iter().enumerate() {
            let key: NodeKey<'_> = (
                node.allocatable,
                node.unschedulable,
                node.taints.iter().filter(|t| t.repels()).collect(),
                requested.iter().map(|&r| (r, node.extended.get(r).copied().unwrap_or(0))).collect(),
                node.labels
                    .iter()
                    .filter(|(k, _)| selected.contains(k.as_str()))
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            );
            by_key.entry(key).or_default().push(i);
        }
        let classes: Vec<Vec<usize>> = by_key.into_values().collect();
        let all: BTreeSet<usize> = (0..classes.len()).collect();

        let special = nodes
            .iter()
            .map(|node| {
                node.taints.iter().any(|t| t.repels())
                    || requested.iter().any(|&r| node.extended.get(r).is_some_and(|&n| n > 0))
                    || node
                        .labels
                        .keys()
                        .any(|k| selected.contains(k.as_str()) && !TOPOLOGY_LABELS.contains(&k.as_str()))
            })
            .collect();
        let mut placement = Placement { n_node_classes: classes.len(), special, ..Placement::default() };
        let mut confined: BTreeMap<BTreeSet<usize>, Vec<(usize, String, &PodGroup)>> = BTreeMap::new();
        let mut eligible_sets: BTreeSet<BTreeSet<usize>> = BTreeSet::new();
        for (j, namespace, group) in &groups {
            let (j, namespace, group): (usize, &str, &PodGroup) = (*j, namespace, group);
            let mut eligible = BTreeSet::new();
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            for (c, members) in classes.iter().enumerate() {
                match refusal(nodes[members[0]], group) {
                    None => {
                        eligible.insert(c);
                    }
                    Some(reason) => *reasons.entry(reason).or_default() += members.len(),
                }
            }
            let workload = format!("{namespace}/{}", group.workload());
            if eligible.is_empty() {
                let reasons: Vec<String> = reasons.into_iter().map(|(r, n)| format!("{n} node(s): {r}")).collect();
                placement.homeless.push(format!(
                    "pod {workload} ({} replica{}) has no node in the block: {}",
                    group.replicas,
                    if group.replicas == 1 { "" } else { "s" },
                    if reasons.is_empty() { "the block has no nodes".to_string() } else { reasons.join("; ") }
                ));
                continue;
            }
            eligible_sets.insert(eligible.clone());
            if eligible != all || !group.extended.is_empty() {
                confined.entry(eligible).or_default().push((j, workload, group));
            }
        }
        placement.homeless.sort();
        placement.homeless.dedup();
        if !migrate {
            for (j, _, group) in &groups {
                let source = block.namespaces[*j].cluster;
                for volume in group.volumes.iter().filter(|v| v.pins()) {
                    let Some(affinity) = &volume.node_affinity else { continue };
                    for (i, node) in nodes.iter().enumerate() {
                        if block.nodes[i].cluster == source && affinity.matches(&node.labels) {
                            placement.travels.push((*j, i));
                        }
                    }
                }
            }
            placement.travels.sort();
            placement.travels.dedup();
        }
        placement.n_pod_classes = eligible_sets.len();

        let n_namespaces = block.namespaces.len();
        for set in confined.keys() {
            let members: Vec<&(usize, String, &PodGroup)> =
                confined.iter().filter(|(other, _)| other.is_subset(set)).flat_map(|(_, m)| m.iter()).collect();
            let in_set: Vec<bool> = {
                let mut flags = vec![false; nodes.len()];
                for &c in set {
                    for &i in &classes[c] {
                        flags[i] = true;
                    }
                }
                flags
            };
            let set_index = placement.sets.len();
            let mut rows = Vec::new();
            if set != &all {
                for (r, resource) in ["cpu", "memory", "pods"].into_iter().enumerate() {
                    let part = |x: Resources| [x.cpu_millis, x.memory_bytes, x.pods][r];
                    let mut need = vec![0u64; n_namespaces];
                    for (j, _, g) in &members {
                        need[*j] = need[*j].saturating_add(g.replicas.saturating_mul(part(g.requests)));
                    }
                    let supply =
                        nodes.iter().zip(&in_set).map(|(n, &inside)| if inside { part(n.allocatable) } else { 0 });
                    let unit = [1000.0, (1u64 << 30) as f64, 1.0][r];
                    rows.push(ClassRow {
                        set: set_index,
                        resource: resource.to_string(),
                        headroom: headroom[r],
                        unit,
                        node_supply: supply.collect(),
                        namespace_need: need,
                        travels: false,
                    });
                }
            }
            let extended: BTreeSet<&str> =
                members.iter().flat_map(|(_, _, g)| g.extended.keys()).map(String::as_str).collect();
            for resource in extended {
                let mut need = vec![0u64; n_namespaces];
                for (j, _, g) in &members {
                    let amount = g.extended.get(resource).copied().unwrap_or(0);
                    need[*j] = need[*j].saturating_add(g.replicas.saturating_mul(amount));
                }
                let node_supply: Vec<u64> = nodes
                    .iter()
                    .zip(&in_set)
                    .map(|(n, &inside)| if inside { n.extended.get(resource).copied().unwrap_or(0) } else { 0 })
                    .collect();
                let largest = node_supply.iter().copied().max().unwrap_or(0);
                let unit = if largest > 1 << 20 { (1u64 << 30) as f64 } else { 1.0 };
                rows.push(ClassRow {
                    set: set_index,
                    resource: resource.to_string(),
                    headroom: 0.0,
                    unit,
                    node_supply,
                    namespace_need: need,
                    travels: false,
                });
            }
            rows.retain(|row| row.total_need() > 0);
            let travels = !migrate && members.iter().all(|(_, _, g)| g.has_node_local_data());
            for row in &mut rows {
                row.travels = travels;
            }
            if rows.is_empty() {
                continue;
            }
            let mut workloads: Vec<String> = members.iter().map(|(_, w, _)| w.clone()).collect();
            workloads.sort();
            workloads.dedup();
            let n_nodes = in_set.iter().filter(|&&x| x).count();
            let description = describe(set.iter().map(|&c| nodes[classes[c][0]]).collect(), &selected, &requested);
            placement.sets.push(ConfinedSet { workloads, n_nodes, nodes: description });
            placement.rows.extend(rows);
        }
        placement
    }

    /// Per block node: what it offers each row (the key that splits pools).
    pub fn node_signature(&self, node: usize) -> Vec<u64> {
        self.rows.iter().map(|row| row.node_supply[node]).collect()
    }
}

/// What the nodes of a set share: the selected labels, extended resources and
/// repelling taints they all have; else their count of shapes.
fn describe(nodes: Vec<&Node>, selected: &BTreeSet<&str>, requested: &BTreeSet<&str>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(first) = nodes.first() {
        for (key, value) in &first.labels {
            if selected.contains(key.as_str()) && nodes.iter().all(|n| n.labels.get(key) == Some(value)) {
                parts.push(format!("{key}={value}"));
            }
        }
        for resource in requested {
            if nodes.iter().all(|n| n.extended.get(*resource).copied().unwrap_or(0) > 0) {
                parts.push(format!("with {resource}"));
            }
        }
        for taint in first.taints.iter().filter(|t| t.repels()) {
            if nodes.iter().all(|n| n.taints.contains(taint)) {
                parts.push(format!("tainted {taint}"));
            }
        }
        if nodes.iter().all(|n| n.taints.iter().all(|t| !t.repels())) {
            parts.push("untainted".to_string());
        }
    }
    let cores: BTreeSet<u64> = nodes.iter().map(|n| n.allocatable.cpu_millis / 1000).collect();
    if cores.len() <= 3 {
        parts.push(format!("{}-core", cores.into_iter().map(|c| c.to_string()).collect::<Vec<_>>().join("/")));
    }
    parts.join(", ")
}
