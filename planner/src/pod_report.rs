//! Where each workload's pods can run, before the plan, during the wave that
//! moves them and after every wave that changes their cluster: `kplan plans
//! pods ID` (issue 17's dry run). For each moment, the cluster the pods are in,
//! how many of its workload nodes pass the scheduler's filters for one pod
//! ([`kplan_model::scheduling::refusal`]), the node shapes they offer, and,
//! when none does, why (the filter, and on how many nodes). A report, not a
//! check: the validator (`validate/pods.rs`) decides whether a plan holds.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use kplan_model::policy::LocalVolumes;
use kplan_model::scheduling::{PodGroup, refusal};
use kplan_model::{BlockStatus, ClusterSnapshot, Node, NodeAction, NodeRole, Plan, Policy, PreconditionKind};
use serde::Serialize;

/// One workload of one source namespace, through the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadPlacement {
    pub source_cluster: String,
    pub namespace: String,
    /// `Deployment/web`.
    pub workload: String,
    pub replicas: u64,
    pub moments: Vec<PodMoment>,
}

/// Where the pods are at one moment and what they may use there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodMoment {
    /// `before`, `during wave N` (the move: both sides), `after wave N`.
    pub when: String,
    pub cluster: String,
    /// How many of the workload's pods are in `cluster` at that moment (a
    /// namespace moving in parts has some on each side between its parts;
    /// during a move, the moving pods count on both sides).
    pub pods: u64,
    /// Workload nodes of `cluster` that pass the filters for one pod.
    pub nodes: u64,
    /// What those nodes offer, e.g. `3 × 16 cpu 64Gi nvidia.com/gpu=4`.
    pub shapes: Vec<String>,
    /// Why no node can take a pod (empty when some can).
    pub problem: String,
}

/// The report for every workload of `plan` (of `namespace` only, when given),
/// against `inventory`. Infeasible blocks show where the pods are now.
pub fn pod_report(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    plan: &Plan,
    namespace: Option<&str>,
) -> Vec<WorkloadPlacement> {
    let clusters: BTreeMap<&str, &ClusterSnapshot> = inventory.iter().map(|c| (c.cluster_id.as_str(), c)).collect();
    let mut out = Vec::new();
    for block in &plan.blocks {
        // Cluster -> its workload nodes, as the plan changes them.
        let mut nodes: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for source in &block.source_clusters {
            let Some(cluster) = clusters.get(source.as_str()) else { continue };
            let workers = cluster.nodes.iter().filter(|n| n.role != NodeRole::ControlPlane);
            nodes.insert(source.clone(), workers.map(|n| (source.clone(), n.name.clone())).collect());
        }
        let dedicated: BTreeSet<(String, String)> = block
            .target_clusters
            .iter()
            .filter(|t| policy.dedicated_control_plane && !t.small_site)
            .flat_map(|t| t.control_plane.iter().map(|c| (c.cluster_id.clone(), c.node.clone())))
            .collect();
        for target in &block.target_clusters {
            nodes.entry(target.name.clone()).or_default();
        }
        let targets: BTreeSet<&str> = block.target_clusters.iter().map(|t| t.name.as_str()).collect();
        let lookup = |(cluster, node): &(String, String)| -> Option<&Node> {
            clusters.get(cluster.as_str()).and_then(|c| c.nodes.iter().find(|n| &n.name == node))
        };
        let migrated_claims: BTreeSet<(&str, &str, &str)> = if policy.local_volumes == LocalVolumes::MigrateData {
            block
                .preconditions
                .iter()
                .filter(|p| p.kind == PreconditionKind::DataMigration)
                .flat_map(|p| {
                    p.claims
                        .iter()
                        .filter_map(|c| c.split_once('/'))
                        .map(|(ns, claim)| (p.cluster_id.as_str(), ns, claim))
                })
                .collect()
        } else {
            BTreeSet::new()
        };
        // Every workload of the block's namespaces, where it starts.
        let mut tracked: Vec<Tracked<'_>> = Vec::new();
        for source in &block.source_clusters {
            let Some(cluster) = clusters.get(source.as_str()) else { continue };
            for ns in cluster.namespaces.iter().filter(|ns| namespace.is_none_or(|n| n == ns.name)) {
                let moves_here = block
                    .waves
                    .iter()
                    .any(|w| w.namespaces.iter().any(|m| m.from_cluster == *source && m.namespace == ns.name));
                if block.status == BlockStatus::Planned && !moves_here {
                    continue; // a platform namespace, or one of another block
                }
                for group in &ns.pod_groups {
                    let placement = WorkloadPlacement {
                        source_cluster: source.clone(),
                        namespace: ns.name.clone(),
                        workload: {
                            // Pods with their own local data are told apart by their claim.
                            let local: Vec<&str> =
                                group.volumes.iter().filter(|v| v.pins()).map(|v| v.claim.as_str()).collect();
                            if local.is_empty() {
                                group.workload()
                            } else {
                                format!("{} ({})", group.workload(), local.join(", "))
                            }
                        },
                        replicas: group.replicas,
                        moments: Vec::new(),
                    };
                    // Data the plan migrates (`data-migration`) no longer pins the pods.
                    let group = group.with_data_migrated(|v| {
                        migrated_claims.contains(&(source.as_str(), ns.name.as_str(), v.claim.as_str()))
                    });
                    let replicas = group.replicas;
                    tracked.push(Tracked { placement, group, at: vec![(source.clone(), replicas)] });
                }
            }
        }
        let moment = |when: String,
                      (cluster, pods): (&str, u64),
                      nodes: &BTreeMap<String, BTreeSet<(String, String)>>,
                      group: &PodGroup| {
            let candidates: Vec<&Node> = nodes
                .get(cluster)
                .into_iter()
                .flatten()
                // A target's dedicated control-plane nodes run no workloads; in
                // their source they still do.
                .filter(|key| !(targets.contains(cluster) && dedicated.contains(*key)))
                .filter_map(lookup)
                .collect();
            describe(when, (cluster, pods), &candidates, group)
        };
        for t in &mut tracked {
            let here = (t.at[0].0.as_str(), t.at[0].1);
            t.placement.moments.push(moment("before".to_string(), here, &nodes, &t.group));
        }
        for wave in &block.waves {
            let number = wave.index;
            // A namespace moving in parts moves, per part, a number of each
            // workload's replicas; they fill the workload's pod groups in
            // order, as the validator fills them.
            type Moving<'m> = BTreeMap<(&'m str, &'m str), (&'m str, Option<BTreeMap<&'m str, u64>>)>;
            let moving: Moving<'_> = wave
                .namespaces
                .iter()
                .map(|m| {
                    let workloads = m
                        .part
                        .as_ref()
                        .map(|p| p.workloads.iter().map(|w| (w.workload.as_str(), w.replicas)).collect());
                    ((m.from_cluster.as_str(), m.namespace.as_str()), (m.to_cluster.as_str(), workloads))
                })
                .collect();
            let mut part_left: BTreeMap<(&str, &str, String), u64> = BTreeMap::new();
            let leaving: BTreeSet<(String, String)> =
                wave.nodes.iter().map(|m| (m.cluster_id.clone(), m.node.clone())).collect();
            let during: BTreeMap<String, BTreeSet<(String, String)>> = nodes
                .iter()
                .map(|(cluster, set)| (cluster.clone(), set.difference(&leaving).cloned().collect()))
                .collect();
            for t in &mut tracked {
                let source = t.placement.source_cluster.as_str();
                let Some(&(to, ref workloads)) = moving.get(&(source, t.placement.namespace.as_str())) else {
                    continue;
                };
                let Some(k) = t.at.iter().position(|(cluster, _)| cluster != to) else { continue };
                let (at, in_source) = t.at[k].clone();
                let workload = t.group.workload();
                let n = match workloads {
                    None => in_source,
                    Some(part) => {
                        let key = (source, t.placement.namespace.as_str(), workload.clone());
                        let left =
                            part_left.entry(key).or_insert_with(|| part.get(workload.as_str()).copied().unwrap_or(0));
                        let n = (*left).min(in_source);
                        *left -= n;
                        n
                    }
                };
                if n == 0 {
                    continue;
                }
                let in_target = t.at.iter().find(|(cluster, _)| cluster == to).map_or(0, |(_, pods)| *pods) + n;
                // Pods with local data travel with their node when it joins their target now.
                let joining: Vec<&Node> = wave
                    .nodes
                    .iter()
                    .filter(|m| m.cluster_id == at && m.action == NodeAction::DrainAndJoin && m.to_cluster == to)
                    .filter_map(|m| lookup(&(m.cluster_id.clone(), m.node.clone())))
                    .collect();
                let mut pinned =
                    t.group.volumes.iter().filter_map(|v| v.node_affinity.as_ref().filter(|_| v.pins())).peekable();
                let travels = pinned.peek().is_some() && pinned.all(|a| joining.iter().any(|n| a.matches(&n.labels)));
                let part = workloads.as_ref().map_or(String::new(), |_| format!(", {n} of {}", t.placement.replicas));
                if travels {
                    let when = format!("during wave {number} (with its node{part})");
                    t.placement.moments.push(describe(when, (to, in_target), &joining, &t.group));
                } else {
                    let when = format!(
                        "during wave {number}{}",
                        if part.is_empty() { String::new() } else { format!(" ({})", &part[2..]) }
                    );
                    t.placement.moments.push(moment(when.clone(), (&at, in_source), &during, &t.group));
                    t.placement.moments.push(moment(when, (to, in_target), &nodes, &t.group));
                }
                t.at[k].1 -= n;
                match t.at.iter_mut().find(|(cluster, _)| cluster == to) {
                    Some(entry) => entry.1 = in_target,
                    None => t.at.push((to.to_string(), in_target)),
                }
                t.at.retain(|(_, pods)| *pods > 0);
            }
            for node_move in &wave.nodes {
                let key = (node_move.cluster_id.clone(), node_move.node.clone());
                if let Some(set) = nodes.get_mut(&node_move.cluster_id) {
                    set.remove(&key);
                }
                if node_move.action == NodeAction::DrainAndJoin {
                    nodes.entry(node_move.to_cluster.clone()).or_default().insert(key);
                }
            }
            // A row when the workload's nodes changed, and always after the
            // last wave: where its pods run once the merge is done.
            let final_wave = block.waves.last().is_some_and(|w| w.index == number);
            for t in &mut tracked {
                let now: Vec<PodMoment> = t
                    .at
                    .iter()
                    .map(|(cluster, pods)| moment(format!("after wave {number}"), (cluster, *pods), &nodes, &t.group))
                    .collect();
                // Unchanged: each cluster's newest row says the same.
                let unchanged = now.iter().all(|m| {
                    t.placement
                        .moments
                        .iter()
                        .rev()
                        .find(|last| last.cluster == m.cluster)
                        .is_some_and(|last| (last.pods, last.nodes, &last.shapes) == (m.pods, m.nodes, &m.shapes))
                });
                if final_wave || !unchanged {
                    t.placement.moments.extend(now);
                }
            }
        }
        out.extend(tracked.into_iter().map(|t| t.placement));
    }
    out.sort_by(|a, b| {
        (&a.source_cluster, &a.namespace, &a.workload).cmp(&(&b.source_cluster, &b.namespace, &b.workload))
    });
    out
}

/// A workload's pod group through the plan: the clusters its pods are in,
/// with how many (two between the parts of a namespace moving in parts).
struct Tracked<'a> {
    placement: WorkloadPlacement,
    group: Cow<'a, PodGroup>,
    at: Vec<(String, u64)>,
}

fn describe(when: String, (cluster, pods): (&str, u64), candidates: &[&Node], group: &PodGroup) -> PodMoment {
    let mut shapes: BTreeMap<String, u64> = BTreeMap::new();
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut fitting = 0;
    for node in candidates {
        match refusal(node, group) {
            None => {
                fitting += 1;
                *shapes.entry(shape(node)).or_insert(0) += 1;
            }
            Some(reason) => *refusals.entry(reason).or_insert(0) += 1,
        }
    }
    let problem = if fitting > 0 {
        String::new()
    } else if candidates.is_empty() {
        "the cluster has no workload nodes".to_string()
    } else {
        refusals
            .iter()
            .map(|(reason, n)| format!("{n} node{}: {reason}", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join("; ")
    };
    PodMoment {
        when,
        cluster: cluster.to_string(),
        pods,
        nodes: fitting,
        shapes: shapes.into_iter().map(|(shape, n)| format!("{n} × {shape}")).collect(),
        problem,
    }
}

fn shape(node: &Node) -> String {
    let a = node.allocatable;
    let mut text = format!("{} cpu {}Gi", a.cpu_millis as f64 / 1000.0, a.memory_bytes >> 30);
    for (resource, amount) in &node.extended {
        if !resource.starts_with("hugepages-") && resource != "ephemeral-storage" {
            text.push_str(&format!(" {resource}={amount}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PlanOptions, propose};
    use kplan_model::scheduling::PodGroup;
    use kplan_model::{ClusterFacts, Namespace, Resources, SlaTier};

    /// A 16-core worker (or control plane) labelled `disk=ssd`.
    fn node(name: &str, zone: &str, role: NodeRole) -> Node {
        let mut node = kplan_model::test_support::worker(name);
        node.labels.insert("disk".into(), "ssd".into());
        node.zone = zone.into();
        node.role = role;
        node.allocatable = Resources::new(16_000, 64 << 30, 110);
        node
    }

    fn cluster(id: &str, selector: &str) -> ClusterSnapshot {
        let group = PodGroup {
            owner_kind: "Deployment".into(),
            owner_name: "web".into(),
            replicas: 3,
            requests: Resources::new(1000, 1 << 30, 1),
            node_selector: [("disk".to_string(), selector.to_string())].into_iter().collect(),
            ..PodGroup::default()
        };
        ClusterSnapshot {
            cluster_id: id.into(),
            generation: 1,
            facts: ClusterFacts { datacenter: "fra".into(), security_tier: "prod".into(), ..ClusterFacts::default() },
            nodes: vec![
                node(&format!("{id}-cp"), "a", NodeRole::ControlPlane),
                node(&format!("{id}-w1"), "a", NodeRole::Worker),
                node(&format!("{id}-w2"), "b", NodeRole::Worker),
                node(&format!("{id}-w3"), "c", NodeRole::Worker),
            ],
            namespaces: vec![Namespace {
                name: format!("shop-{id}"),
                labels: Default::default(),
                security_tier: "prod".into(),
                sla_tier: SlaTier::Silver,
                requests: Resources::new(3000, 3 << 30, 3),
                pod_groups: vec![group],
                applied_prerelease: Vec::new(),
                disruption_budgets: Vec::new(),
            }],
            ..ClusterSnapshot::default()
        }
    }

    #[test]
    fn every_workload_is_followed_from_its_source_to_its_target() {
        let inventory = vec![cluster("c1", "ssd"), cluster("c2", "ssd")];
        let policy = Policy::default();
        let plan = propose(&inventory, &policy, &PlanOptions::default()).unwrap().plan;
        assert_eq!(plan.blocks[0].status, BlockStatus::Planned, "{}", plan.blocks[0].explanation);
        let report = pod_report(&inventory, &policy, &plan, None);
        assert_eq!(report.len(), 2);
        let target = &plan.blocks[0].target_clusters[0].name;
        for workload in &report {
            assert_eq!(workload.moments[0].when, "before");
            assert_eq!(&workload.moments.last().unwrap().cluster, target, "{workload:#?}");
            assert!(workload.moments.iter().any(|m| m.when.starts_with("during wave")), "{workload:#?}");
            assert!(workload.moments.iter().all(|m| m.nodes > 0 && m.problem.is_empty()), "{workload:#?}");
        }
        assert_eq!(pod_report(&inventory, &policy, &plan, Some("shop-c1")).len(), 1);
    }

    #[test]
    fn a_workload_without_a_node_says_which_filter_refuses_it() {
        let inventory = vec![cluster("c1", "nvme"), cluster("c2", "ssd")];
        let policy = Policy::default();
        let plan = propose(&inventory, &policy, &PlanOptions::default()).unwrap().plan;
        let report = pod_report(&inventory, &policy, &plan, Some("shop-c1"));
        let before = &report[0].moments[0];
        assert_eq!((before.when.as_str(), before.cluster.as_str(), before.nodes), ("before", "c1", 0));
        assert_eq!(before.problem, "3 nodes: nodeSelector disk=nvme not matched");
    }
}
