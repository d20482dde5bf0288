//! Pod by pod (issue 17): at every moment of every wave, on every source and
//! target, the pods of the namespaces there must have nodes, as the
//! scheduler's filters see it: the node is schedulable, its taints are
//! tolerated (`NoSchedule`, `NoExecute`), it matches the pod's `nodeSelector`,
//! its required node affinity and the node affinity of its bound volumes (a
//! local volume keeps its pods on its node, unless the plan lists the
//! migration of its data under `local_volumes = "migrate-data"`), and one pod fits on that one node for every
//! resource (cpu, memory, pods and extended resources such as
//! `nvidia.com/gpu`). Then, for every set of nodes some workloads are
//! confined to, the pods confined to it must fit into it: with the policy's
//! headroom for cpu, memory and pods, in whole for extended resources (a GPU
//! is a device, not a share). This is Hall's condition on the sets that
//! occur; with the first check it is what the scheduler needs, short of an
//! exact bin packing.
//!
//! Written apart from the planner's model, as every rule of the validator.
//! Namespaces without pod groups (older snapshots, agents that do not report
//! pods) are not checked here; the capacity rule still holds for them.

use std::collections::{BTreeMap, BTreeSet};

use std::borrow::Cow;

use kplan_model::policy::LocalVolumes;
use kplan_model::scheduling::{PodGroup, refusal};
use kplan_model::{Namespace, Node, PreconditionKind};

use super::*;

/// What a node offers the scheduler, as far as these pods can tell: its
/// capacity, cordon, repelling taints, extended resources and the labels some
/// pod selects on (not the others: `kubernetes.io/hostname` alone would make
/// every node a class of its own).
type NodeClassKey<'n> = (
    kplan_model::Resources,
    bool,
    Vec<&'n kplan_model::scheduling::Taint>,
    &'n BTreeMap<String, u64>,
    Vec<(&'n str, &'n str)>,
);

impl<'a, 'p> BlockCheck<'a, 'p>
where
    'a: 'p,
{
    /// Checks the pods of `namespaces` against `nodes` (the workload nodes of
    /// one cluster at one moment).
    ///
    /// `in_transit`: claims whose pods move in this wave together with the
    /// node that holds their local data (not checked at this moment: the pods
    /// are down while their node changes cluster, and up on it after).
    pub(super) fn check_pods(
        &mut self,
        when: &str,
        side: &Side<'_>,
        nodes: &[&'a Node],
        namespaces: &[&'a Namespace],
        in_transit: &BTreeSet<(usize, &'a str)>,
    ) {
        let migrated = self.migrated_claims();
        let migrated = &migrated;
        // A node-local volume whose data the plan migrates no longer pins its pods.
        let groups: Vec<(&str, Cow<'_, PodGroup>)> = namespaces
            .iter()
            .flat_map(|ns| {
                let key = *ns as *const Namespace as usize;
                ns.pod_groups
                    .iter()
                    .map(move |g| {
                        let group = g.with_data_migrated(|v| migrated.contains(&(key, v.claim.as_str())));
                        (ns.name.as_str(), group)
                    })
                    .filter(move |(_, g)| {
                        let pinned = || g.volumes.iter().filter(|v| v.pins());
                        !(pinned().next().is_some() && pinned().all(|v| in_transit.contains(&(key, v.claim.as_str()))))
                    })
            })
            .collect();
        if groups.is_empty() {
            return;
        }
        // Nodes that look the same to these pods' filters, once.
        let selected: BTreeSet<&str> = groups.iter().flat_map(|(_, g)| g.selected_keys()).collect();
        let mut by_key: BTreeMap<NodeClassKey<'a>, (&'a Node, u64)> = BTreeMap::new();
        for node in nodes {
            let key: NodeClassKey<'a> = (
                node.allocatable,
                node.unschedulable,
                node.taints.iter().filter(|t| t.repels()).collect(),
                &node.extended,
                node.labels
                    .iter()
                    .filter(|(k, _)| selected.contains(k.as_str()))
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            );
            by_key.entry(key).or_insert((node, 0)).1 += 1;
        }
        // One representative node per class, and how many nodes it stands for.
        let classes: Vec<(&'a Node, u64)> = by_key.into_values().collect();
        let mut confined: BTreeMap<BTreeSet<usize>, Vec<(&str, &PodGroup)>> = BTreeMap::new();
        for (namespace, group) in &groups {
            let group: &PodGroup = group;
            let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
            let mut eligible = BTreeSet::new();
            for (c, (class, count)) in classes.iter().enumerate() {
                match refusal(class, group) {
                    None => {
                        eligible.insert(c);
                    }
                    Some(reason) => *refusals.entry(reason).or_insert(0) += count,
                }
            }
            if eligible.is_empty() {
                let key = format!("{}|{}|{namespace}|{}", side.describe(), "none", group.workload());
                if self.reported_pods.insert(key) {
                    let reasons: Vec<String> =
                        refusals.iter().map(|(reason, n)| format!("{n} node{}: {reason}", plural(*n))).collect();
                    let reasons = if reasons.is_empty() { "it has no nodes".to_string() } else { reasons.join("; ") };
                    self.push(
                        Rule::PodPlacement,
                        format!(
                            "{when}, pod {namespace}/{} ({} replica{}) has no node in {}: {reasons}",
                            group.workload(),
                            group.replicas,
                            plural(group.replicas),
                            side.describe()
                        ),
                    );
                }
                continue;
            }
            confined.entry(eligible).or_default().push((*namespace, group));
        }
        let all: BTreeSet<usize> = (0..classes.len()).collect();
        let headroom = [self.policy.headroom.cpu, self.policy.headroom.memory, self.policy.headroom.pods];
        for set in confined.keys() {
            // Every workload whose nodes all lie in `set` competes for `set`.
            let members: Vec<(&str, &PodGroup)> = confined
                .iter()
                .filter(|(other, _)| other.is_subset(set))
                .flat_map(|(_, groups)| groups.iter().copied())
                .collect();
            let mut over = Vec::new();
            if set != &all {
                let need = members.iter().fold([0u128; 3], |acc, (_, g)| {
                    let r = g.requests;
                    let n = u128::from(g.replicas);
                    [acc[0] + n * u128::from(r.cpu_millis), acc[1] + n * u128::from(r.memory_bytes), acc[2] + n]
                });
                let have = set.iter().fold([0u128; 3], |acc, &c| {
                    let (class, count) = &classes[c];
                    let a = class.allocatable;
                    let n = u128::from(*count);
                    [
                        acc[0] + n * u128::from(a.cpu_millis),
                        acc[1] + n * u128::from(a.memory_bytes),
                        acc[2] + n * u128::from(a.pods),
                    ]
                });
                for (r, name) in ["cpu", "memory", "pods"].iter().enumerate() {
                    let limit = (1.0 - headroom[r]) * have[r] as f64;
                    if need[r] as f64 > limit + 1e-9 * limit.max(1.0) {
                        over.push(format!(
                            "{name} {} requested, at most {} with {}% headroom",
                            resources_text(name, need[r] as u64),
                            resources_text(name, limit.max(0.0) as u64),
                            (headroom[r] * 100.0).round()
                        ));
                    }
                }
            }
            let mut extended_need: BTreeMap<&str, u128> = BTreeMap::new();
            for (_, g) in &members {
                for (resource, amount) in &g.extended {
                    *extended_need.entry(resource.as_str()).or_insert(0) +=
                        u128::from(g.replicas) * u128::from(*amount);
                }
            }
            for (resource, need) in extended_need {
                let have: u128 = set
                    .iter()
                    .map(|&c| {
                        u128::from(classes[c].1) * u128::from(classes[c].0.extended.get(resource).copied().unwrap_or(0))
                    })
                    .sum();
                if need > have {
                    over.push(format!("{resource} {need} requested, {have} allocatable"));
                }
            }
            if over.is_empty() {
                continue;
            }
            let mut workloads: Vec<String> =
                members.iter().map(|(namespace, g)| format!("{namespace}/{}", g.workload())).collect();
            workloads.sort();
            workloads.dedup();
            let n_nodes: u64 = set.iter().map(|&c| classes[c].1).sum();
            let key = format!("{}|set|{}", side.describe(), workloads.join(","));
            if self.reported_pods.insert(key) {
                self.push(
                    Rule::PodPlacement,
                    format!(
                        "{when}, in {} the {n_nodes} node{} that {} may use are short: {}",
                        side.describe(),
                        plural(n_nodes),
                        workloads.join(", "),
                        over.join("; ")
                    ),
                );
            }
        }
    }
}

impl<'a, 'p> BlockCheck<'a, 'p> {
    /// Under `migrate-data`, a data migration comes before its namespace
    /// moves and before any node that holds its data leaves; otherwise the
    /// data would be copied from a node that is gone.
    pub(super) fn check_data_migrations(&mut self) {
        if self.policy.local_volumes != LocalVolumes::MigrateData {
            return;
        }
        let block = self.block;
        let mut namespace_wave: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut node_wave: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for wave in &block.waves {
            for m in &wave.namespaces {
                namespace_wave.entry((m.from_cluster.as_str(), m.namespace.as_str())).or_insert(wave.index);
            }
            for m in &wave.nodes {
                node_wave.entry((m.cluster_id.as_str(), m.node.as_str())).or_insert(wave.index);
            }
        }
        let mut late = Vec::new();
        for p in block.preconditions.iter().filter(|p| p.kind == PreconditionKind::DataMigration) {
            let cluster = p.cluster_id.as_str();
            for (namespace, claim) in p.claims.iter().filter_map(|c| c.split_once('/')) {
                let mut earliest = namespace_wave.get(&(cluster, namespace)).copied();
                let volumes = self
                    .index
                    .namespaces
                    .get(&(cluster, namespace))
                    .into_iter()
                    .flat_map(|info| info.namespace.pod_groups.iter().flat_map(|g| &g.volumes))
                    .filter(|v| v.claim == claim && v.pins());
                for affinity in volumes.filter_map(|v| v.node_affinity.as_ref()) {
                    let holders = self
                        .index
                        .nodes
                        .iter()
                        .filter(|((c, _), info)| *c == cluster && affinity.matches(&info.node.labels));
                    for ((_, node), _) in holders {
                        if let Some(&w) = node_wave.get(&(cluster, *node)) {
                            earliest = Some(earliest.map_or(w, |e| e.min(w)));
                        }
                    }
                }
                if let Some(earliest) = earliest
                    && p.before_wave > earliest
                {
                    late.push(format!(
                        "the data migration of claim {namespace}/{claim} in {cluster} is due before wave {}, \
                         but its namespace or a node holding its data moves in wave {earliest}",
                        p.before_wave
                    ));
                }
            }
        }
        for message in late {
            self.push(Rule::PodPlacement, message);
        }
    }

    /// The node-local claims of namespaces that move in this wave whose data
    /// is on a node of their own source that joins the namespace's target in
    /// the same wave: those pods travel with their node.
    pub(super) fn in_transit(&self, moves: &WaveMoves<'a>) -> BTreeSet<(usize, &'a str)> {
        let mut out = BTreeSet::new();
        for (&(cluster, name), &target) in &moves.namespaces {
            let Some(info) = self.index.namespaces.get(&(cluster, name)) else { continue };
            let namespace = info.namespace;
            let key = namespace as *const Namespace as usize;
            for volume in namespace.pod_groups.iter().flat_map(|g| &g.volumes).filter(|v| v.pins()) {
                let Some(affinity) = &volume.node_affinity else { continue };
                let travels = moves.joins.iter().any(|(&(node_cluster, node), &to)| {
                    node_cluster == cluster
                        && to == target
                        && self.index.nodes.get(&(node_cluster, node)).is_some_and(|n| affinity.matches(&n.node.labels))
                });
                if travels {
                    out.insert((key, volume.claim.as_str()));
                }
            }
        }
        out
    }

    /// The claims whose node-local data the plan migrates, by namespace
    /// (its address in the inventory, so that two sources' namespaces of one
    /// name stay apart): the `data-migration` preconditions' claims, when the
    /// policy migrates data (`local_volumes = "migrate-data"`). Under the
    /// default policy a node-local volume always pins its pods.
    fn migrated_claims(&self) -> BTreeSet<(usize, &'a str)> {
        if self.policy.local_volumes != LocalVolumes::MigrateData {
            return BTreeSet::new();
        }
        let index = self.index;
        self.block
            .preconditions
            .iter()
            .filter(|p| p.kind == PreconditionKind::DataMigration)
            .flat_map(|p| {
                p.claims.iter().filter_map(move |c| {
                    let (namespace, claim) = c.split_once('/')?;
                    let info = index.namespaces.get(&(p.cluster_id.as_str(), namespace))?;
                    Some((info.namespace as *const Namespace as usize, claim))
                })
            })
            .collect()
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
