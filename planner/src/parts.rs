//! Moves in parts (issue 17, docs/plan-semantics.md "Parts"): a namespace
//! that must not, or cannot, move in one piece moves a number of replicas of
//! its workloads at a time, one part per wave, in order.
//!
//! Two reasons split a namespace:
//! - a PodDisruptionBudget: moving a workload's replicas takes them down in
//!   the source, so no part holds more pods of a budget than it allows at once
//!   (`disruptionsAllowed` with every pod healthy); a budget that allows none,
//!   or would need more than `policy.parts.max_parts` parts, is exceeded by the
//!   smallest part that keeps within that count, and the plan lists a
//!   `disruption-budget` precondition (`materialise.rs`). Every block is split
//!   this way from the start ([`split_for_budgets`]).
//! - size, only where a block cannot be staged otherwise
//!   ([`split_large`], tried by `lib.rs` before a block is called infeasible):
//!   a namespace that asks for more than `policy.parts.large_share` of its
//!   source cluster's workload allocatable (cpu or memory) may move in parts of
//!   at most that share (a part holds at least one pod). As few as help are
//!   split: the largest first, then the two largest, the four largest, ...
//!
//! A namespace whose pods keep data on node-local volumes, an add-on and a
//! namespace whose pods the inventory does not describe stay whole. Parts are
//! block units like whole namespaces (`Block::namespaces`, with
//! `NamespaceId::part`), so every model sees them; what ties them is that
//! parts of one namespace move in strictly increasing waves to one target.

use std::collections::BTreeMap;

use kplan_model::scheduling::DisruptionBudget;
use kplan_model::{ClusterSnapshot, Namespace, NodeRole, Policy, Resources};

use crate::blocks::{Block, NamespaceId};

/// One part of a namespace: how many replicas of each of its pod groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePart {
    /// Per pod group of the namespace (`Namespace::pod_groups` order).
    pub replicas: Vec<u64>,
    /// The part's requests; the last part also carries what the pod groups
    /// do not (the namespace's requests minus its groups').
    pub requests: Resources,
}

/// A PodDisruptionBudget the parts take more pods of at once than it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceededBudget {
    pub budget: String,
    pub rule: String,
    pub expected: u64,
    pub allowed: u64,
    /// The most pods of it one part takes down.
    pub per_part: u64,
}

/// A namespace's parts, in the order they move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub parts: Vec<NamespacePart>,
    pub exceeded: Vec<ExceededBudget>,
}

/// The pods a budget covers: its workloads' replicas.
pub(crate) fn expected_pods(namespace: &Namespace, budget: &DisruptionBudget) -> u64 {
    namespace
        .pod_groups
        .iter()
        .filter(|g| budget.workloads.binary_search(&g.workload()).is_ok())
        .map(|g| g.replicas)
        .sum()
}

/// Whether a namespace may move in parts at all.
fn splittable(namespace: &Namespace) -> bool {
    let pods: u64 = namespace.pod_groups.iter().map(|g| g.replicas).sum();
    pods > 1 && !namespace.pod_groups.iter().any(|g| g.has_node_local_data())
}

/// Parts of `namespace` that keep each budget's pods per part within its
/// allowance and, with `cap`, each part's cpu and memory within `cap` (a part
/// holds at least one pod). `None` when one part would do.
pub fn split(namespace: &Namespace, cap: Option<Resources>, max_parts: u32) -> Option<Split> {
    if !splittable(namespace) {
        return None;
    }
    let max_parts = u64::from(max_parts.max(1));
    let groups = &namespace.pod_groups;
    // Per budget: its groups, and how many of its pods one part may take.
    let mut exceeded = Vec::new();
    let mut limits: Vec<(Vec<usize>, u64)> = Vec::new();
    for budget in &namespace.disruption_budgets {
        let expected = expected_pods(namespace, budget);
        if expected == 0 {
            continue;
        }
        let allowed = budget.allowed_disruptions(expected);
        if allowed >= expected {
            continue;
        }
        let per_part = allowed.max(1).max(expected.div_ceil(max_parts));
        if per_part > allowed {
            exceeded.push(ExceededBudget {
                budget: budget.name.clone(),
                rule: budget.rule(),
                expected,
                allowed,
                per_part,
            });
        }
        let members =
            (0..groups.len()).filter(|&g| budget.workloads.binary_search(&groups[g].workload()).is_ok()).collect();
        limits.push((members, per_part));
    }
    if limits.is_empty() && cap.is_none() {
        return None;
    }
    let pack = |cap: Option<Resources>| -> Vec<Vec<u64>> {
        let mut remaining: Vec<u64> = groups.iter().map(|g| g.replicas).collect();
        let mut parts = Vec::new();
        while remaining.iter().any(|&r| r > 0) {
            let mut part = vec![0u64; groups.len()];
            let mut taken = vec![0u64; limits.len()];
            let mut used = Resources::ZERO;
            let mut empty = true;
            // A workload's pod groups are taken in order (the validator fills
            // them so): none after one this part leaves unfinished.
            let mut unfinished: Vec<String> = Vec::new();
            for g in 0..groups.len() {
                let workload = groups[g].workload();
                if unfinished.contains(&workload) {
                    continue;
                }
                let mut take = remaining[g];
                for (b, (members, per_part)) in limits.iter().enumerate() {
                    if members.contains(&g) {
                        take = take.min(per_part.saturating_sub(taken[b]));
                    }
                }
                if let Some(cap) = cap {
                    let pod = groups[g].requests;
                    let room =
                        |have: u64, used: u64, one: u64| have.saturating_sub(used).checked_div(one).unwrap_or(u64::MAX);
                    let fits = room(cap.cpu_millis, used.cpu_millis, pod.cpu_millis).min(room(
                        cap.memory_bytes,
                        used.memory_bytes,
                        pod.memory_bytes,
                    ));
                    take = take.min(if empty { fits.max(1) } else { fits });
                }
                if take < remaining[g] {
                    unfinished.push(workload);
                }
                if take == 0 {
                    continue;
                }
                empty = false;
                part[g] = take;
                remaining[g] -= take;
                used = used.saturating_add(groups[g].requests.scaled(take));
                for (b, (members, _)) in limits.iter().enumerate() {
                    if members.contains(&g) {
                        taken[b] += take;
                    }
                }
            }
            parts.push(part);
        }
        parts
    };
    // A size cap that gives too many parts is raised until it does not
    // (budgets alone never need more than `max_parts`).
    let mut cap = cap;
    let mut parts = pack(cap);
    while parts.len() as u64 > max_parts
        && let Some(c) = cap
    {
        // (at least 1, so that a zero cap grows too)
        let double = |x: u64| x.saturating_mul(2).max(1);
        cap = Some(Resources { cpu_millis: double(c.cpu_millis), memory_bytes: double(c.memory_bytes), pods: c.pods });
        parts = pack(cap);
    }
    if parts.len() < 2 {
        return None;
    }
    let grouped: Resources = groups.iter().map(|g| g.requests.scaled(g.replicas)).sum();
    let rest = namespace.requests.saturating_sub(grouped);
    let n = parts.len();
    let parts = parts
        .into_iter()
        .enumerate()
        .map(|(k, replicas)| {
            let mut requests: Resources = replicas.iter().zip(groups).map(|(&r, g)| g.requests.scaled(r)).sum();
            if k + 1 == n {
                requests = requests.saturating_add(rest);
            }
            NamespacePart { replicas, requests }
        })
        .collect();
    Some(Split { parts, exceeded })
}

/// Replaces every namespace of `block` in `chosen` by its parts.
fn apply(
    inventory: &[ClusterSnapshot],
    block: &mut Block,
    mut chosen: impl FnMut(NamespaceId, &Namespace) -> Option<Split>,
) {
    let mut units = Vec::with_capacity(block.namespaces.len());
    for &id in &block.namespaces {
        let namespace = block.namespace(inventory, id);
        let whole = id.part == 0 && block.addon_of(id).is_none();
        match whole.then(|| chosen(id, namespace)).flatten() {
            Some(split) => {
                for k in 0..split.parts.len() {
                    units.push(NamespaceId { part: k as u16 + 1, ..id });
                }
                block.parts.insert((id.cluster, id.namespace), split);
            }
            None => units.push(id),
        }
    }
    block.namespaces = units;
}

/// Splits the namespaces of `block` whose PodDisruptionBudgets forbid moving
/// them in one piece (with `policy.parts.enabled`).
pub fn split_for_budgets(inventory: &[ClusterSnapshot], block: &mut Block, policy: &Policy) {
    if !policy.parts.enabled {
        return;
    }
    apply(inventory, block, |_, namespace| split(namespace, None, policy.parts.max_parts));
}

/// What [`split_large`] made of a block.
#[derive(Debug, Clone)]
pub struct LargeSplit {
    /// The block with the chosen namespaces in parts.
    pub block: Block,
    /// The namespaces split for their size, each with its share of its source.
    pub chosen: Vec<(NamespaceId, f64)>,
    /// How many large namespaces the block has in all.
    pub n_large: usize,
}

/// `block` with its `limit` largest large namespaces in parts too (see the
/// module documentation): those split, each with its share of its source,
/// and the number of large namespaces there are; `None` when it has none to
/// split. "Largest" is the
/// larger of a namespace's cpu and memory shares of its source's workload
/// allocatable; ties go to the first in block order, so the choice is
/// deterministic.
pub fn split_large(inventory: &[ClusterSnapshot], block: &Block, policy: &Policy, limit: usize) -> Option<LargeSplit> {
    if !policy.parts.enabled || policy.parts.large_share <= 0.0 || limit == 0 {
        return None;
    }
    let share = policy.parts.large_share;
    let workers: BTreeMap<usize, Resources> = block
        .source_clusters
        .iter()
        .map(|&c| {
            let cluster = &inventory[c];
            let total = cluster.nodes.iter().filter(|n| n.role != NodeRole::ControlPlane).map(|n| n.allocatable).sum();
            (c, total)
        })
        .collect();
    let cap_of = |cluster: usize| -> Option<Resources> {
        let allocatable = workers.get(&cluster).copied().unwrap_or(Resources::ZERO);
        // A source without workers of its own here (another block's) is not measured.
        (allocatable != Resources::ZERO).then_some(Resources {
            cpu_millis: (allocatable.cpu_millis as f64 * share) as u64,
            memory_bytes: (allocatable.memory_bytes as f64 * share) as u64,
            pods: u64::MAX,
        })
    };
    // Budget splits are kept; a namespace split for them is split again
    // with the cap from scratch.
    let mut whole = block.namespaces.clone();
    whole.dedup_by_key(|id| (id.cluster, id.namespace));
    let whole: Vec<NamespaceId> = whole.into_iter().map(|id| NamespaceId { part: 0, ..id }).collect();
    // The large namespaces that parts can split, largest share first.
    let mut large: Vec<(f64, usize, NamespaceId)> = whole
        .iter()
        .enumerate()
        .filter(|(_, id)| block.addon_of(**id).is_none())
        .filter_map(|(k, &id)| {
            let cap = cap_of(id.cluster)?;
            let namespace = block.namespace(inventory, id);
            let over =
                namespace.requests.cpu_millis > cap.cpu_millis || namespace.requests.memory_bytes > cap.memory_bytes;
            let fraction = |used: u64, cap: u64| used as f64 / (cap.max(1) as f64 / share);
            let size = fraction(namespace.requests.cpu_millis, cap.cpu_millis)
                .max(fraction(namespace.requests.memory_bytes, cap.memory_bytes));
            (over && split(namespace, Some(cap), policy.parts.max_parts).is_some()).then_some((size, k, id))
        })
        .collect();
    if large.is_empty() {
        return None;
    }
    let n_large = large.len();
    large.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let chosen: Vec<(NamespaceId, f64)> = large.iter().take(limit).map(|&(size, _, id)| (id, size)).collect();
    let mut split_block = block.clone();
    split_block.namespaces = whole;
    split_block.parts.clear();
    apply(inventory, &mut split_block, |id, namespace| {
        let cap = if chosen.iter().any(|(c, _)| (c.cluster, c.namespace) == (id.cluster, id.namespace)) {
            cap_of(id.cluster)
        } else {
            None
        };
        split(namespace, cap, policy.parts.max_parts)
    });
    Some(LargeSplit { block: split_block, chosen, n_large })
}

#[cfg(test)]
mod tests {
    use kplan_model::SlaTier;
    use kplan_model::scheduling::PodGroup;

    use super::*;

    fn group(kind: &str, name: &str, replicas: u64, cpu: u64) -> PodGroup {
        PodGroup {
            owner_kind: kind.into(),
            owner_name: name.into(),
            replicas,
            requests: Resources { cpu_millis: cpu, memory_bytes: 1 << 30, pods: 1 },
            ..PodGroup::default()
        }
    }

    fn namespace(groups: Vec<PodGroup>, budgets: Vec<DisruptionBudget>) -> Namespace {
        let requests = groups.iter().map(|g| g.requests.scaled(g.replicas)).sum();
        Namespace {
            name: "shop".into(),
            labels: Default::default(),
            security_tier: "prod".into(),
            sla_tier: SlaTier::Gold,
            requests,
            pod_groups: groups,
            applied_prerelease: Vec::new(),
            disruption_budgets: budgets,
        }
    }

    fn budget(name: &str, max_unavailable: &str, workloads: &[&str]) -> DisruptionBudget {
        DisruptionBudget {
            name: name.into(),
            max_unavailable: max_unavailable.into(),
            workloads: workloads.iter().map(|w| w.to_string()).collect(),
            ..DisruptionBudget::default()
        }
    }

    #[test]
    fn a_budget_limits_the_pods_of_its_workloads_per_part() {
        let ns = namespace(
            vec![group("Deployment", "api", 3, 500), group("Deployment", "web", 2, 250)],
            vec![budget("api", "1", &["Deployment/api"])],
        );
        let split = split(&ns, None, 6).expect("split");
        assert_eq!(
            split.parts.iter().map(|p| p.replicas.clone()).collect::<Vec<_>>(),
            [vec![1, 2], vec![1, 0], vec![1, 0]]
        );
        assert!(split.exceeded.is_empty());
        let total: Resources = split.parts.iter().map(|p| p.requests).sum();
        assert_eq!(total, ns.requests);
    }

    #[test]
    fn a_budget_that_allows_nothing_is_exceeded_by_one_pod_and_said() {
        let ns = namespace(vec![group("StatefulSet", "db", 3, 1000)], vec![budget("db", "0", &["StatefulSet/db"])]);
        let split = split(&ns, None, 2).expect("split");
        // at most 2 parts: 2 pods, then 1
        assert_eq!(split.parts.iter().map(|p| p.replicas[0]).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(split.exceeded.len(), 1);
        assert_eq!((split.exceeded[0].allowed, split.exceeded[0].per_part), (0, 2));
    }

    #[test]
    fn no_budget_and_no_cap_moves_whole_and_a_cap_splits_by_size() {
        let ns = namespace(vec![group("Deployment", "train", 3, 20_000)], Vec::new());
        assert_eq!(split(&ns, None, 6), None);
        let cap = Resources { cpu_millis: 25_000, memory_bytes: u64::MAX, pods: u64::MAX };
        let split = split(&ns, Some(cap), 6).expect("split");
        assert_eq!(split.parts.iter().map(|p| p.replicas[0]).collect::<Vec<_>>(), [1, 1, 1]);
        // a pod larger than the cap still moves, one per part
        let tiny = Resources { cpu_millis: 1_000, memory_bytes: u64::MAX, pods: u64::MAX };
        assert_eq!(super::split(&ns, Some(tiny), 6).expect("split").parts.len(), 3);
    }

    #[test]
    fn a_zero_cap_still_ends_in_at_most_max_parts() {
        let ns = namespace(vec![group("Deployment", "web", 40, 100)], Vec::new());
        let split = split(&ns, Some(Resources::ZERO), 4).expect("split");
        assert!(split.parts.len() <= 4, "{}", split.parts.len());
        assert_eq!(split.parts.iter().map(|p| p.replicas[0]).sum::<u64>(), 40);
    }
}
