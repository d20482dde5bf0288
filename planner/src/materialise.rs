//! A realized candidate written out as the plan users read ([`BlockPlan`]):
//! targets, waves with capacity before and after, renames, preconditions.

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::policy::LocalVolumes;
use kplan_model::{
    AddonInstall, AddonInstance, AddonOrigin, BlockPlan, BlockStatus, ClusterCapacity, ClusterSnapshot,
    ControlPlaneNode, MovePart, NamespaceMove, NodeAction, NodeMove, NodeRef, PartWorkload, Precondition,
    PreconditionKind, Resources, TargetCluster, Wave,
};

use super::explain;
use super::flows::is_known_cni;
use super::namespaces::{NamespacePlacement, addon_version, resolve_collisions};
use super::preconditions::{block_preconditions, data_migration, objects_on_removed_apis};
use super::waves::Destination;
use crate::context::BlockContext;
use crate::realize::{Realized, target_zones};

/// A block plan with the block's identity and nothing planned.
pub fn empty_plan(ctx: &BlockContext) -> BlockPlan {
    BlockPlan {
        datacenter: ctx.block.key.datacenter.clone(),
        security_tier: ctx.block.key.security_tier.clone(),
        source_clusters: (0..ctx.n_sources()).map(|s| ctx.source_id(s).to_string()).collect(),
        nodes_before: ctx.data.n_nodes() as u64,
        ..BlockPlan::default()
    }
}

// ---------------------------------------------------------------------------
// The plan

pub(crate) fn node_ref(ctx: &BlockContext, i: usize) -> NodeRef {
    NodeRef {
        cluster_id: ctx.source_id(ctx.data.node_source[i]).to_string(),
        node: ctx.node_name(i).to_string(),
        zone: ctx.data.node_zone[i].clone(),
    }
}

/// Capacity of every source and target after each wave (index 0: before wave 1).
struct Timeline {
    sources: Vec<Vec<(Resources, Resources)>>,
    targets: Vec<Vec<(Resources, Resources)>>,
}

fn timeline(ctx: &BlockContext, realized: &Realized) -> Timeline {
    let data = &ctx.data;
    let assignment = &realized.assignment;
    let n_waves = realized.schedule.n_waves as usize;
    let mut source = vec![(Resources::ZERO, Resources::ZERO); ctx.n_sources()];
    for i in 0..data.n_nodes() {
        if !data.node_source_control_plane[i] {
            let s = data.node_source[i];
            source[s].0 = source[s].0.saturating_add(data.node_allocatable[i]);
        }
    }
    for j in 0..data.n_namespaces() {
        let s = data.namespace_source[j];
        source[s].1 = source[s].1.saturating_add(data.namespace_demand[j]);
    }
    let mut target = vec![(Resources::ZERO, Resources::ZERO); assignment.n_targets];
    let mut timeline = Timeline { sources: vec![source.clone()], targets: vec![target.clone()] };
    let mut nodes_by_wave = vec![Vec::new(); n_waves + 1];
    for (i, &w) in realized.schedule.node_wave.iter().enumerate() {
        nodes_by_wave[w as usize].push(i);
    }
    let mut namespaces_by_wave = vec![Vec::new(); n_waves + 1];
    for (j, &w) in realized.schedule.namespace_wave.iter().enumerate() {
        namespaces_by_wave[w as usize].push(j);
    }
    for w in 1..=n_waves {
        for &i in &nodes_by_wave[w] {
            if !data.node_source_control_plane[i] {
                let s = data.node_source[i];
                source[s].0 = source[s].0.saturating_sub(data.node_allocatable[i]);
            }
            if let Some(t) = assignment.counts_for_target(i) {
                target[t].0 = target[t].0.saturating_add(data.node_allocatable[i]);
            }
        }
        for &j in &namespaces_by_wave[w] {
            let s = data.namespace_source[j];
            let t = assignment.namespace_target[j];
            source[s].1 = source[s].1.saturating_sub(data.namespace_demand[j]);
            target[t].1 = target[t].1.saturating_add(data.namespace_demand[j]);
        }
        timeline.sources.push(source.clone());
        timeline.targets.push(target.clone());
    }
    timeline
}

/// The block plan of a realized candidate (figures other than the objective are
/// filled in by the caller).
pub fn materialise(ctx: &BlockContext, realized: &Realized) -> BlockPlan {
    let data = &ctx.data;
    let assignment = &realized.assignment;
    let schedule = &realized.schedule;
    let key = &ctx.block.key;
    let target_names: Vec<String> = (0..assignment.n_targets).map(|t| key.target_name(t)).collect();
    let zones = target_zones(ctx, assignment);
    let timeline = timeline(ctx, realized);
    let mut plan = empty_plan(ctx);
    plan.status = BlockStatus::Planned;
    // Block namespace index -> the add-on it is the largest instance of.
    let addon_of: BTreeMap<usize, &crate::blocks::BlockAddon> = (0..data.n_namespaces())
        .filter_map(|j| ctx.block.addon_of(ctx.block.namespaces[j]).map(|addon| (j, addon)))
        .collect();
    let mut addons: Vec<Vec<AddonInstall>> = vec![Vec::new(); assignment.n_targets];
    for (&j, addon) in &addon_of {
        let instances: Vec<AddonInstance> = addon
            .instances
            .iter()
            .map(|&id| {
                let namespace = ctx.block.namespace(ctx.inventory, id);
                AddonInstance {
                    cluster_id: ctx.inventory[id.cluster].cluster_id.clone(),
                    version: addon_version(namespace),
                    requests: namespace.requests,
                }
            })
            .collect();
        addons[assignment.namespace_target[j]].push(AddonInstall {
            namespace: addon.name.clone(),
            origin: addon.origin,
            wave: schedule.namespace_wave[j] as u64,
            sized_from: ctx.source_id(data.namespace_source[j]).to_string(),
            requests: data.namespace_demand[j],
            instances,
        });
    }
    for list in &mut addons {
        list.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    }

    // Targets.
    let mut notes = Vec::new();
    for t in 0..assignment.n_targets {
        let mut nodes_kept: Vec<NodeRef> = (0..data.n_nodes())
            .filter(|&i| assignment.node_destination[i] == Destination::Target(t))
            .map(|i| node_ref(ctx, i))
            .collect();
        nodes_kept.sort();
        let mut control_plane: Vec<ControlPlaneNode> = (0..data.n_nodes())
            .filter(|&i| {
                assignment.node_destination[i] == Destination::Target(t) && assignment.node_target_control_plane[i]
            })
            .map(|i| {
                let r = node_ref(ctx, i);
                ControlPlaneNode { cluster_id: r.cluster_id, node: r.node, zone: r.zone }
            })
            .collect();
        control_plane.sort_by(|a, b| (&a.zone, &a.cluster_id, &a.node).cmp(&(&b.zone, &b.cluster_id, &b.node)));
        let control_plane_note = explain::control_plane_note(ctx, &zones[t].1);
        if !control_plane_note.is_empty() && t == 0 && !ctx.small_site {
            notes.push(control_plane_note.clone());
        }
        let (allocatable, requested) = timeline.targets.last().map(|v| v[t]).unwrap_or_default();
        plan.target_clusters.push(TargetCluster {
            name: target_names[t].clone(),
            nodes_kept,
            control_plane,
            control_plane_note,
            small_site: ctx.small_site,
            distribution: if ctx.small_site { "k3s" } else { "kubeadm" }.to_string(),
            kubernetes_version: ctx.target_version.clone(),
            cni: ctx.target_cni.clone(),
            zones: zones[t].0.clone(),
            allocatable,
            requested,
            addons: std::mem::take(&mut addons[t]),
        });
    }
    if ctx.small_site {
        notes.push(explain::control_plane_note(ctx, &[]));
    }
    if assignment.n_targets > 1 {
        notes.push(format!(
            "{} target clusters: the nodes kept exceed max_nodes_per_cluster ({})",
            assignment.n_targets, ctx.policy.max_nodes_per_cluster
        ));
    }
    if ctx.target_cni.trim().is_empty() {
        notes.push(
            "no CNI was detected in the block's clusters and the policy sets none: the CNI's own flows are not listed"
                .to_string(),
        );
    } else if !is_known_cni(&ctx.target_cni) {
        notes.push(format!("kplan does not know the flows of CNI {:?}: its own flows are not listed", ctx.target_cni));
    }
    let detected: Vec<String> = ctx
        .block
        .addons
        .iter()
        .filter(|addon| addon.origin == AddonOrigin::Detected)
        .map(|addon| format!("{} ({} of {} clusters)", addon.name, addon.instances.len(), ctx.n_sources()))
        .collect();
    if !detected.is_empty() {
        notes.push(format!(
            "add-ons detected (the same workloads in most source clusters; installed once per target, not moved): {}",
            detected.join(", ")
        ));
    }
    plan.explanation = notes.join("\n");
    let mut freed: Vec<NodeRef> = (0..data.n_nodes())
        .filter(|&i| assignment.node_destination[i] == Destination::Free)
        .map(|i| node_ref(ctx, i))
        .collect();
    freed.sort();
    plan.nodes_freed = freed;
    plan.firewall_flows = realized.flows.clone();

    // Renames.
    // One placement per namespace: its first part stands for it (all parts
    // go to one target).
    let placements: Vec<NamespacePlacement> = (0..data.n_namespaces())
        .filter(|&j| ctx.block.namespaces[j].part <= 1)
        .map(|j| NamespacePlacement {
            from_cluster: ctx.source_id(data.namespace_source[j]).to_string(),
            namespace: ctx.namespace_name(j).to_string(),
            target_cluster: target_names[assignment.namespace_target[j]].clone(),
            sla_tier: data.namespace_sla[j],
            pods: ctx.block.namespace(ctx.inventory, ctx.block.namespaces[j]).requests.pods,
            addon: addon_of.contains_key(&j),
        })
        .collect();
    let renames = resolve_collisions(&placements, ctx.policy);
    let new_names: BTreeMap<(&str, &str), &str> =
        renames.iter().map(|r| ((r.from_cluster.as_str(), r.namespace.as_str()), r.new_name.as_str())).collect();

    // Waves.
    let retirement = schedule.retirement_waves(data, ctx.n_sources());
    let n_waves = schedule.n_waves as usize;
    let mut waves: Vec<Wave> = (1..=n_waves).map(|w| Wave { index: w as u64, ..Wave::default() }).collect();
    for i in 0..data.n_nodes() {
        let w = schedule.node_wave[i] as usize - 1;
        let r = node_ref(ctx, i);
        let (action, to_cluster) = match assignment.node_destination[i] {
            Destination::Target(t) => (NodeAction::DrainAndJoin, target_names[t].clone()),
            Destination::Free => (NodeAction::Free, String::new()),
        };
        waves[w].nodes.push(NodeMove { cluster_id: r.cluster_id, node: r.node, zone: r.zone, action, to_cluster });
    }
    // An add-on is installed (`TargetCluster::addons`), not moved.
    for j in (0..data.n_namespaces()).filter(|j| !addon_of.contains_key(j)) {
        let w = schedule.namespace_wave[j] as usize - 1;
        let from_cluster = ctx.source_id(data.namespace_source[j]);
        let namespace = ctx.namespace_name(j);
        let new_name = new_names.get(&(from_cluster, namespace)).copied().unwrap_or(namespace);
        waves[w].namespaces.push(NamespaceMove {
            from_cluster: from_cluster.to_string(),
            namespace: namespace.to_string(),
            to_cluster: target_names[assignment.namespace_target[j]].clone(),
            new_name: new_name.to_string(),
            sla_tier: data.namespace_sla[j],
            requests: data.namespace_demand[j],
            part: move_part(ctx, j),
        });
    }
    for (s, &w) in retirement.iter().enumerate() {
        if w > 0 && data.source_owned[s] {
            waves[w as usize - 1].clusters_retired.push(ctx.source_id(s).to_string());
        }
    }
    // Capacity of every cluster with allocatable or demand, before and after each wave.
    let capacity = |moment: usize| -> Vec<ClusterCapacity> {
        let mut rows: Vec<ClusterCapacity> = (0..ctx.n_sources())
            .map(|s| (ctx.source_id(s).to_string(), timeline.sources[moment][s]))
            .chain((0..assignment.n_targets).map(|t| (target_names[t].clone(), timeline.targets[moment][t])))
            .filter(|(_, (allocatable, requested))| *allocatable != Resources::ZERO || *requested != Resources::ZERO)
            .map(|(cluster, (allocatable, requested))| ClusterCapacity { cluster, allocatable, requested })
            .collect();
        rows.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        rows
    };
    for (w, wave) in waves.iter_mut().enumerate() {
        wave.nodes.sort_by(|a, b| (&a.cluster_id, &a.node).cmp(&(&b.cluster_id, &b.node)));
        wave.namespaces.sort_by(|a, b| (&a.from_cluster, &a.namespace).cmp(&(&b.from_cluster, &b.namespace)));
        wave.clusters_retired.sort();
        wave.capacity_before = capacity(w);
        wave.capacity_after = capacity(w + 1);
    }
    plan.waves = waves;
    plan.namespace_renames = renames;

    // Preconditions, before the first wave that touches each source.
    let mut first_wave = vec![u32::MAX; ctx.n_sources()];
    let mut kept_nodes: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); ctx.n_sources()];
    let mut moves_namespaces = vec![false; ctx.n_sources()];
    for i in 0..data.n_nodes() {
        let s = data.node_source[i];
        first_wave[s] = first_wave[s].min(schedule.node_wave[i]);
        if assignment.node_destination[i] != Destination::Free {
            kept_nodes[s].insert(ctx.node_name(i));
        }
    }
    for j in (0..data.n_namespaces()).filter(|j| !addon_of.contains_key(j)) {
        let s = data.namespace_source[j];
        first_wave[s] = first_wave[s].min(schedule.namespace_wave[j]);
        moves_namespaces[s] = true;
    }
    let source_slot: BTreeMap<&str, usize> = (0..ctx.n_sources()).map(|s| (ctx.source_id(s), s)).collect();
    let clusters: Vec<&ClusterSnapshot> = ctx.block.source_clusters.iter().map(|&c| &ctx.inventory[c]).collect();
    for mut precondition in block_preconditions(&clusters, &ctx.target_version, &ctx.target_cni) {
        let Some(&s) = source_slot.get(precondition.cluster_id.as_str()) else { continue };
        let keep = match precondition.kind {
            PreconditionKind::KubeletUpgrade | PreconditionKind::RuntimeMigration => {
                if precondition.nodes.is_empty() {
                    !kept_nodes[s].is_empty()
                } else {
                    precondition.nodes.retain(|n| kept_nodes[s].contains(n.as_str()));
                    !precondition.nodes.is_empty()
                }
            }
            PreconditionKind::CniMigration => !kept_nodes[s].is_empty(),
            PreconditionKind::CsiDriver => !kept_nodes[s].is_empty() || moves_namespaces[s],
            PreconditionKind::RemovedApis => moves_namespaces[s],
            PreconditionKind::DataMigration | PreconditionKind::AddonVersions | PreconditionKind::DisruptionBudget => {
                false
            }
        };
        if keep && precondition.kind == PreconditionKind::RemovedApis {
            // The objects of the namespaces that move, by name, where the inventory knows them.
            let moving = (0..data.n_namespaces())
                .filter(|j| data.namespace_source[*j] == s && !addon_of.contains_key(j))
                .filter(|&j| ctx.block.namespaces[j].part <= 1)
                .map(|j| ctx.block.namespace(ctx.inventory, ctx.block.namespaces[j]));
            let objects = objects_on_removed_apis(clusters[s], moving, &ctx.target_version);
            if !objects.is_empty() {
                precondition
                    .detail
                    .push_str(&format!("; last applied (kubectl) with a removed api: {}", objects.join(", ")));
            }
        }
        if keep && first_wave[s] != u32::MAX {
            precondition.before_wave = first_wave[s] as u64;
            plan.preconditions.push(precondition);
        }
    }
    if ctx.policy.local_volumes == LocalVolumes::MigrateData {
        let node_wave: BTreeMap<(usize, &str), u64> = (0..data.n_nodes())
            .map(|i| ((data.node_source[i], ctx.node_name(i)), schedule.node_wave[i] as u64))
            .collect();
        for j in 0..data.n_namespaces() {
            let s = data.namespace_source[j];
            let cluster = &ctx.inventory[ctx.block.source_clusters[s]];
            let namespace = ctx.block.namespace(ctx.inventory, ctx.block.namespaces[j]);
            let target = &target_names[assignment.namespace_target[j]];
            let wave = schedule.namespace_wave[j] as u64;
            plan.preconditions
                .extend(data_migration(cluster, namespace, target, wave, |node| node_wave.get(&(s, node)).copied()));
        }
    }
    plan.preconditions.extend(disruption_budget_findings(ctx, schedule));
    plan.preconditions.extend(plan.target_clusters.iter().flat_map(addon_version_findings));
    plan.preconditions.sort_by(|a: &Precondition, b: &Precondition| {
        (a.before_wave, &a.cluster_id, a.kind, &a.detail).cmp(&(b.before_wave, &b.cluster_id, b.kind, &b.detail))
    });
    plan.nodes_after = assignment.node_destination.iter().filter(|d| **d != Destination::Free).count() as u64;
    plan
}

/// The part of its namespace that unit `j` is, with its replicas by workload.
fn move_part(ctx: &BlockContext, j: usize) -> Option<MovePart> {
    let id = ctx.block.namespaces[j];
    let (part, of) = ctx.block.part(id)?;
    let namespace = ctx.block.namespace(ctx.inventory, id);
    let mut by_workload: BTreeMap<String, u64> = BTreeMap::new();
    for (group, &replicas) in namespace.pod_groups.iter().zip(&part.replicas).filter(|(_, r)| **r > 0) {
        *by_workload.entry(group.workload()).or_default() += replicas;
    }
    Some(MovePart {
        index: u32::from(id.part),
        of: of as u32,
        workloads: by_workload.into_iter().map(|(workload, replicas)| PartWorkload { workload, replicas }).collect(),
    })
}

/// A `disruption-budget` precondition per PodDisruptionBudget that the parts
/// of its namespace exceed (`parts.rs`), before the namespace's first part.
fn disruption_budget_findings(ctx: &BlockContext, schedule: &crate::waves::Schedule) -> Vec<Precondition> {
    let mut found = Vec::new();
    // Whole namespaces (not split: parts disabled, a single pod, node-local
    // data) take every pod of their budgets down at once.
    for (j, &id) in ctx.block.namespaces.iter().enumerate() {
        if id.part != 0 || ctx.block.addon_of(id).is_some() {
            continue;
        }
        let namespace = ctx.block.namespace(ctx.inventory, id);
        for budget in &namespace.disruption_budgets {
            let expected = crate::parts::expected_pods(namespace, budget);
            let allowed = budget.allowed_disruptions(expected);
            if allowed < expected {
                found.push(Precondition {
                    cluster_id: ctx.inventory[id.cluster].cluster_id.clone(),
                    kind: PreconditionKind::DisruptionBudget,
                    detail: format!(
                        "PodDisruptionBudget {}/{} ({}) allows {allowed} of its {expected} pods down at once; the namespace moves in one piece: relax it while it moves",
                        namespace.name,
                        budget.name,
                        budget.rule()
                    ),
                    nodes: Vec::new(),
                    before_wave: schedule.namespace_wave[j] as u64,
                    claims: vec![format!("{}/{}", namespace.name, budget.name)],
                });
            }
        }
    }
    for (j, &id) in ctx.block.namespaces.iter().enumerate().filter(|(_, id)| id.part == 1) {
        let Some(split) = ctx.block.parts.get(&(id.cluster, id.namespace)) else { continue };
        let namespace = ctx.block.namespace(ctx.inventory, id);
        let cluster = &ctx.inventory[id.cluster].cluster_id;
        for exceeded in &split.exceeded {
            found.push(Precondition {
                cluster_id: cluster.clone(),
                kind: PreconditionKind::DisruptionBudget,
                detail: format!(
                    "PodDisruptionBudget {}/{} ({}) allows {} of its {} pods down at once; the namespace moves in {} parts of up to {} of them: relax it while they move",
                    namespace.name,
                    exceeded.budget,
                    exceeded.rule,
                    exceeded.allowed,
                    exceeded.expected,
                    split.parts.len(),
                    exceeded.per_part
                ),
                nodes: Vec::new(),
                before_wave: schedule.namespace_wave[j] as u64,
                claims: vec![format!("{}/{}", namespace.name, exceeded.budget)],
            });
        }
    }
    found
}

/// A finding per add-on of `target` whose instances run different known
/// versions: one must be chosen before it is installed.
fn addon_version_findings(target: &TargetCluster) -> Vec<Precondition> {
    target
        .addons
        .iter()
        .filter_map(|addon| {
            let known: Vec<&str> = addon.versions().into_iter().filter(|v| *v != "unknown").collect();
            if known.len() < 2 {
                return None;
            }
            let seen: Vec<String> = known
                .iter()
                .map(|version| {
                    let clusters: Vec<&str> = addon
                        .instances
                        .iter()
                        .filter(|i| i.version == *version)
                        .map(|i| i.cluster_id.as_str())
                        .collect();
                    format!("{version} in {}", clusters.join(", "))
                })
                .collect();
            Some(Precondition {
                cluster_id: target.name.clone(),
                kind: PreconditionKind::AddonVersions,
                detail: format!(
                    "add-on {} runs different versions ({}): choose the one to install on {}",
                    addon.namespace,
                    seen.join("; "),
                    target.name
                ),
                nodes: Vec::new(),
                before_wave: addon.wave,
                claims: Vec::new(),
            })
        })
        .collect()
}
