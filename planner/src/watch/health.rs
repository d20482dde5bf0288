//! An approved plan re-checked against the fresh inventory.
//!
//! The validator checks a whole plan against the inventory it starts from, so
//! the fresh snapshots are first read back into that shape: what the done
//! waves already moved (nodes now reporting in a target, namespaces now in a
//! target under their new names) is put back in its source cluster, with its
//! fresh figures; a node or namespace of a begun wave that reports nowhere (in
//! transit, freed) is taken from the snapshot the plan was made from; target
//! clusters' own snapshots are left out. The plan's namespace moves and add-on
//! reservations are given their fresh requests (the validator compares them
//! with the inventory, and demand is what drifts). Then every planned block is
//! validated alone, as `propose` does, and findings about waves already done
//! are dropped, as are the per-wave capacity figures (the plan states the
//! figures of its day; the replay computes today's).
//!
//! Findings of its own, in users' words: a node the plan keeps (or frees)
//! that no longer reports anywhere before its wave (`node-gone`), a
//! namespace that appeared in a source after the plan and moves in no wave
//! (`new-namespace`), a namespace in a target taking the name a namespace of a
//! wave not begun is to get (`collision`), a precondition a source whose waves
//! have not begun now needs and the plan does not list (`precondition`); a
//! capacity finding names the namespaces whose requests grew since the plan
//! that it counts. Not found: a listed precondition no longer met (the plan
//! does not record which are done).

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::watch::{Finding, PlanProgress, Progress};
use kplan_model::{BlockStatus, ClusterSnapshot, NodeAction, Plan, Policy, Resources};

use super::block_name;
use super::progress::{first_open_wave, later_wave_begun, wave_progress};
use crate::namespaces::is_platform_namespace;
use crate::validate::{Rule, validate};

/// The findings of `plan` against `fresh` (every cluster's newest snapshot);
/// `planned` are the snapshots it was made from (those still stored),
/// `progress` what [`super::progress`] reads from `fresh`. Empty: the plan
/// still holds.
pub fn check_health(
    plan: &Plan,
    policy: &Policy,
    planned: &[ClusterSnapshot],
    fresh: &[ClusterSnapshot],
    progress: &PlanProgress,
) -> Vec<Finding> {
    let targets: BTreeSet<&str> =
        plan.blocks.iter().flat_map(|b| b.target_clusters.iter().map(|t| t.name.as_str())).collect();
    let fresh_by_id: BTreeMap<&str, &ClusterSnapshot> = fresh.iter().map(|s| (s.cluster_id.as_str(), s)).collect();
    let planned_by_id: BTreeMap<&str, &ClusterSnapshot> = planned.iter().map(|s| (s.cluster_id.as_str(), s)).collect();
    // The inventory as if the plan had not begun, with today's figures.
    let mut rebuilt: BTreeMap<String, ClusterSnapshot> = fresh
        .iter()
        .filter(|s| !targets.contains(s.cluster_id.as_str()))
        .map(|s| (s.cluster_id.clone(), s.clone()))
        .collect();
    for snapshot in planned {
        rebuilt.entry(snapshot.cluster_id.clone()).or_insert_with(|| snapshot.clone());
    }
    let open = first_open_wave(progress);
    let mut findings = Vec::new();
    let mut gone_nodes: BTreeSet<String> = BTreeSet::new();
    let mut new_namespaces: BTreeSet<String> = BTreeSet::new();

    for block in plan.blocks.iter().filter(|b| b.status == BlockStatus::Planned) {
        let name = block_name(block);
        let kept: BTreeMap<(&str, &str), &str> = block
            .target_clusters
            .iter()
            .flat_map(|t| t.nodes_kept.iter().map(move |n| ((n.cluster_id.as_str(), n.node.as_str()), t.name.as_str())))
            .collect();
        let moved: BTreeSet<(&str, &str)> = block
            .waves
            .iter()
            .flat_map(|w| w.namespaces.iter().map(|n| (n.from_cluster.as_str(), n.namespace.as_str())))
            .collect();
        let addons: BTreeSet<&str> =
            block.target_clusters.iter().flat_map(|t| t.addons.iter().map(|a| a.namespace.as_str())).collect();

        // Namespaces that appeared in a source after the plan.
        for source in &block.source_clusters {
            let Some(now) = fresh_by_id.get(source.as_str()) else { continue };
            let then = planned_by_id.get(source.as_str());
            for namespace in &now.namespaces {
                let key = (source.as_str(), namespace.name.as_str());
                if namespace.security_tier != block.security_tier
                    || is_platform_namespace(&namespace.name, policy)
                    || addons.contains(namespace.name.as_str())
                    || moved.contains(&key)
                    || then.is_some_and(|t| t.namespaces.iter().any(|n| n.name == namespace.name))
                {
                    continue;
                }
                let subject = format!("{source}/{}", namespace.name);
                findings.push(Finding {
                    kind: "new-namespace".into(),
                    block: name.clone(),
                    wave: 0,
                    subject: subject.clone(),
                    detail: format!(
                        "namespace {subject} appeared after the plan was made and moves in no wave (it requests {})",
                        resources_text(namespace.requests)
                    ),
                });
                new_namespaces.insert(subject);
            }
        }

        for wave in &block.waves {
            let state = wave_progress(progress, &name, wave.index);
            let begun = state != Progress::Pending;
            for node in &wave.nodes {
                let Some(source) = rebuilt.get_mut(&node.cluster_id) else { continue };
                if source.nodes.iter().any(|n| n.name == node.node) {
                    continue;
                }
                let planned_node = planned_by_id
                    .get(node.cluster_id.as_str())
                    .and_then(|s| s.nodes.iter().find(|n| n.name == node.node));
                let joins = node.action == NodeAction::DrainAndJoin;
                let in_target = fresh_by_id
                    .get(node.to_cluster.as_str())
                    .filter(|_| joins)
                    .and_then(|t| t.nodes.iter().find(|n| n.name == node.node));
                match (in_target, planned_node) {
                    (Some(now), planned_node) => {
                        let mut now = now.clone();
                        // Its role in the target (a target's control plane) is not its role in the source.
                        if let Some(planned_node) = planned_node {
                            now.role = planned_node.role;
                        }
                        source.nodes.push(now);
                    }
                    // In transit (its wave has begun, the next has not), or freed as planned.
                    (None, Some(planned_node))
                        if (state == Progress::InProgress && !later_wave_begun(progress, &name, wave.index))
                            || (state == Progress::Done && !joins) =>
                    {
                        source.nodes.push(planned_node.clone())
                    }
                    _ => {
                        let key = format!("{}/{}", node.cluster_id, node.node);
                        let detail = match kept.get(&(node.cluster_id.as_str(), node.node.as_str())) {
                            Some(target) if state != Progress::Pending => format!(
                                "node {key}, which joins target {target} in wave {} (begun), no longer reports there",
                                wave.index
                            ),
                            Some(target) => format!(
                                "node {key}, which the plan keeps in target {target} (joining in wave {}), no longer reports in {} nor in {target}",
                                wave.index, node.cluster_id
                            ),
                            None => format!(
                                "node {key}, which the plan frees in wave {}, no longer reports in {}",
                                wave.index, node.cluster_id
                            ),
                        };
                        gone_nodes.insert(key.clone());
                        findings.push(Finding {
                            kind: "node-gone".into(),
                            block: name.clone(),
                            wave: wave.index,
                            subject: key,
                            detail,
                        });
                    }
                }
            }
            for ns in &wave.namespaces {
                let final_name = if ns.new_name.is_empty() { ns.namespace.as_str() } else { ns.new_name.as_str() };
                if ns.part.is_some() && begun {
                    // Between its first part and its cut-over a namespace runs on both
                    // sides: the plan's parts are checked against it as planned.
                    let then = planned_by_id
                        .get(ns.from_cluster.as_str())
                        .and_then(|s| s.namespaces.iter().find(|n| n.name == ns.namespace));
                    if let (Some(then), Some(source)) = (then, rebuilt.get_mut(&ns.from_cluster)) {
                        source.namespaces.retain(|n| n.name != ns.namespace);
                        source.namespaces.push(then.clone());
                        continue;
                    }
                }
                put_back(
                    &mut rebuilt,
                    &fresh_by_id,
                    &planned_by_id,
                    &ns.from_cluster,
                    &ns.namespace,
                    &ns.to_cluster,
                    final_name,
                    begun,
                );
            }
            for target in &block.target_clusters {
                for addon in target.addons.iter().filter(|a| a.wave == wave.index) {
                    put_back(
                        &mut rebuilt,
                        &fresh_by_id,
                        &planned_by_id,
                        &addon.sized_from,
                        &addon.namespace,
                        &target.name,
                        &addon.namespace,
                        begun,
                    );
                }
            }
        }
    }

    // A new namespace has its finding; the plan's replay leaves it out.
    for snapshot in rebuilt.values_mut() {
        let id = snapshot.cluster_id.clone();
        snapshot.namespaces.retain(|n| !new_namespaces.contains(&format!("{id}/{}", n.name)));
    }
    let inventory: Vec<ClusterSnapshot> = rebuilt.into_values().collect();
    let requests_now: BTreeMap<(&str, &str), Resources> = inventory
        .iter()
        .flat_map(|s| s.namespaces.iter().map(move |n| ((s.cluster_id.as_str(), n.name.as_str()), n.requests)))
        .collect();

    for block in plan.blocks.iter().filter(|b| b.status == BlockStatus::Planned) {
        let name = block_name(block);
        let first_open = open.get(&name).copied().unwrap_or(u64::MAX);
        let mut fresh_block = block.clone();
        // namespace -> (wave, target, growth) for the namespaces whose requests grew
        let mut grown: Vec<(String, u64, String, String)> = Vec::new();
        for wave in &mut fresh_block.waves {
            // A part's requests are its pods': the validator derives them from the inventory's pods.
            for ns in wave.namespaces.iter_mut().filter(|ns| ns.part.is_none()) {
                if let Some(now) = requests_now.get(&(ns.from_cluster.as_str(), ns.namespace.as_str())) {
                    let growth = growth_text(ns.requests, *now);
                    if !growth.is_empty() {
                        grown.push((
                            format!("{}/{}", ns.from_cluster, ns.namespace),
                            wave.index,
                            ns.to_cluster.clone(),
                            growth,
                        ));
                    }
                    ns.requests = *now;
                }
            }
        }
        for target in &mut fresh_block.target_clusters {
            for addon in &mut target.addons {
                if let Some(now) = requests_now.get(&(addon.sized_from.as_str(), addon.namespace.as_str())) {
                    addon.requests = *now;
                }
            }
        }
        findings.extend(new_preconditions(block, &name, &fresh_by_id, progress));

        // A namespace in a target taking a name a wave not begun is to give.
        for wave in &block.waves {
            if wave_progress(progress, &name, wave.index) != Progress::Pending {
                continue;
            }
            // A later part finds the namespace its earlier parts brought.
            for ns in wave.namespaces.iter().filter(|ns| ns.part.as_ref().is_none_or(|p| p.index == 1)) {
                let final_name = if ns.new_name.is_empty() { ns.namespace.as_str() } else { ns.new_name.as_str() };
                let taken = fresh_by_id
                    .get(ns.to_cluster.as_str())
                    .is_some_and(|t| t.namespaces.iter().any(|n| n.name == final_name));
                if taken {
                    findings.push(Finding {
                        kind: "collision".into(),
                        block: name.clone(),
                        wave: wave.index,
                        subject: format!("{}/{}", ns.from_cluster, ns.namespace),
                        detail: format!(
                            "target {} already has a namespace {final_name}, the name namespace {}/{} is to get in wave {} (not begun)",
                            ns.to_cluster, ns.from_cluster, ns.namespace, wave.index
                        ),
                    });
                }
            }
        }

        let one = Plan { blocks: vec![fresh_block], ..Plan::default() };
        for violation in validate(&inventory, policy, &one) {
            if violation.datacenter != block.datacenter || violation.security_tier != block.security_tier {
                continue;
            }
            let detail = violation.detail;
            let wave = wave_of(&detail);
            if is_capacity_figure(violation.rule, &detail) || (wave != 0 && wave < first_open) {
                continue;
            }
            if violation.rule != Rule::Capacity
                && (gone_nodes.iter().any(|n| mentions(&detail, n))
                    || new_namespaces.iter().any(|n| mentions(&detail, n)))
            {
                continue;
            }
            let mut detail = detail;
            let mut subject = String::new();
            if violation.rule == Rule::Capacity {
                let counted: Vec<&(String, u64, String, String)> = grown
                    .iter()
                    .filter(|(namespace, moves_in, to, _)| {
                        if let Some(rest) = detail.split(", target ").nth(1) {
                            rest.starts_with(&format!("{to} ")) && *moves_in <= wave.max(1)
                        } else if let Some(rest) = detail.split(", source cluster ").nth(1) {
                            namespace.split('/').next().is_some_and(|c| rest.starts_with(&format!("{c} ")))
                                && *moves_in >= wave
                        } else {
                            false
                        }
                    })
                    .collect();
                if !counted.is_empty() {
                    subject = counted[0].0.clone();
                    let list: Vec<String> = counted
                        .iter()
                        .map(|(namespace, moves_in, to, growth)| {
                            format!("{namespace} ({growth}; moves to {to} in wave {moves_in})")
                        })
                        .collect();
                    detail = format!("{detail}; grown since the plan: {}", list.join(", "));
                }
            }
            findings.push(Finding {
                kind: violation.rule.as_str().to_string(),
                block: name.clone(),
                wave,
                subject,
                detail,
            });
        }
    }
    findings.sort();
    findings.dedup();
    findings
}

/// Preconditions the fresh snapshots of the block's sources need that the plan
/// does not list (a kubelet rolled back, a CNI changed, a CSI driver only one
/// source has now), for a source whose first wave has not begun: the same
/// rules as the planner's (`preconditions::block_preconditions`, kept where the
/// plan keeps nodes of the source or moves its namespaces). One finding per
/// cluster and kind; for node lists, the nodes the plan's does not name.
fn new_preconditions(
    block: &kplan_model::BlockPlan,
    name: &str,
    fresh: &BTreeMap<&str, &ClusterSnapshot>,
    progress: &PlanProgress,
) -> Vec<Finding> {
    use kplan_model::PreconditionKind as Kind;
    let Some(target) = block.target_clusters.first() else { return Vec::new() };
    let sources: Vec<&ClusterSnapshot> =
        block.source_clusters.iter().filter_map(|c| fresh.get(c.as_str()).copied()).collect();
    // A source's first wave, and whether the plan keeps nodes of it / moves its namespaces.
    let mut first_wave: BTreeMap<&str, u64> = BTreeMap::new();
    let mut keeps: BTreeSet<&str> = BTreeSet::new();
    let mut moves: BTreeSet<&str> = BTreeSet::new();
    for wave in &block.waves {
        for node in &wave.nodes {
            first_wave.entry(node.cluster_id.as_str()).or_insert(wave.index);
            if node.action == NodeAction::DrainAndJoin {
                keeps.insert(node.cluster_id.as_str());
            }
        }
        for ns in &wave.namespaces {
            first_wave.entry(ns.from_cluster.as_str()).or_insert(wave.index);
            moves.insert(ns.from_cluster.as_str());
        }
    }
    let kept_nodes: BTreeSet<(&str, &str)> = block
        .target_clusters
        .iter()
        .flat_map(|t| t.nodes_kept.iter().map(|n| (n.cluster_id.as_str(), n.node.as_str())))
        .collect();
    let mut out = Vec::new();
    let needed = crate::preconditions::block_preconditions(&sources, &target.kubernetes_version, &target.cni);
    for mut needed in needed {
        let cluster = needed.cluster_id.clone();
        let Some(&wave) = first_wave.get(cluster.as_str()) else { continue };
        if wave_progress(progress, name, wave) != Progress::Pending {
            continue;
        }
        let applies = match needed.kind {
            Kind::KubeletUpgrade | Kind::RuntimeMigration if needed.nodes.is_empty() => {
                keeps.contains(cluster.as_str())
            }
            Kind::KubeletUpgrade | Kind::RuntimeMigration => {
                needed.nodes.retain(|n| kept_nodes.contains(&(cluster.as_str(), n.as_str())));
                !needed.nodes.is_empty()
            }
            Kind::CniMigration => keeps.contains(cluster.as_str()),
            Kind::CsiDriver => keeps.contains(cluster.as_str()) || moves.contains(cluster.as_str()),
            Kind::RemovedApis => moves.contains(cluster.as_str()),
            Kind::DataMigration | Kind::AddonVersions | Kind::DisruptionBudget => false,
        };
        if !applies {
            continue;
        }
        let listed = block.preconditions.iter().find(|p| p.cluster_id == cluster && p.kind == needed.kind);
        let new_nodes: Vec<&str> =
            needed.nodes.iter().filter(|n| !listed.is_some_and(|p| p.nodes.contains(n))).map(String::as_str).collect();
        if listed.is_some() && new_nodes.is_empty() {
            continue;
        }
        let kind =
            serde_json::to_value(needed.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let nodes = if new_nodes.is_empty() { String::new() } else { format!(" (nodes {})", new_nodes.join(", ")) };
        out.push(Finding {
            kind: "precondition".into(),
            block: name.to_string(),
            wave,
            subject: cluster.clone(),
            detail: format!(
                "cluster {cluster} now needs a {kind} precondition the plan does not list{nodes}, before wave {wave}: {}",
                needed.detail
            ),
        });
    }
    out
}

/// Puts a moved namespace back in its source: from its target (fresh, renamed
/// back), or from the plan's snapshot when its wave has begun and it is in
/// neither (in transit).
#[allow(clippy::too_many_arguments)]
fn put_back(
    rebuilt: &mut BTreeMap<String, ClusterSnapshot>,
    fresh: &BTreeMap<&str, &ClusterSnapshot>,
    planned: &BTreeMap<&str, &ClusterSnapshot>,
    source: &str,
    namespace: &str,
    target: &str,
    final_name: &str,
    begun: bool,
) {
    let Some(snapshot) = rebuilt.get_mut(source) else { return };
    if snapshot.namespaces.iter().any(|n| n.name == namespace) {
        return;
    }
    if let Some(now) = fresh.get(target).and_then(|t| t.namespaces.iter().find(|n| n.name == final_name)) {
        let mut now = now.clone();
        now.name = namespace.to_string();
        snapshot.namespaces.push(now);
    } else if begun
        && let Some(then) = planned.get(source).and_then(|s| s.namespaces.iter().find(|n| n.name == namespace))
    {
        snapshot.namespaces.push(then.clone());
    }
}

/// Whether `detail` names `key` (`cluster/name`) as a whole word.
fn mentions(detail: &str, key: &str) -> bool {
    detail.match_indices(key).any(|(at, _)| {
        let after = detail[at + key.len()..].chars().next();
        let before = detail[..at].chars().next_back();
        !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '/')
    })
}

/// The first "wave N" a finding names (0: none).
fn wave_of(detail: &str) -> u64 {
    detail
        .match_indices("wave ")
        .filter_map(|(at, word)| {
            let digits: String = detail[at + word.len()..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .next()
        .unwrap_or(0)
}

/// The validator's comparison of the plan's stated per-wave figures with its replay.
fn is_capacity_figure(rule: Rule, detail: &str) -> bool {
    rule == Rule::Capacity && (detail.contains(" capacity_before ") || detail.contains(" capacity_after "))
}

fn resources_text(r: Resources) -> String {
    format!("{}m cpu, {:.2}Gi memory, {} pods", r.cpu_millis, r.memory_bytes as f64 / (1u64 << 30) as f64, r.pods)
}

/// What grew between `then` and `now`, e.g. "cpu +2000m, memory +1.00Gi"; empty when nothing did.
fn growth_text(then: Resources, now: Resources) -> String {
    let mut parts = Vec::new();
    if now.cpu_millis > then.cpu_millis {
        parts.push(format!("cpu +{}m", now.cpu_millis - then.cpu_millis));
    }
    if now.memory_bytes > then.memory_bytes {
        parts.push(format!("memory +{:.2}Gi", (now.memory_bytes - then.memory_bytes) as f64 / (1u64 << 30) as f64));
    }
    if now.pods > then.pods {
        parts.push(format!("pods +{}", now.pods - then.pods));
    }
    parts.join(", ")
}
