//! How far a plan is carried out, read from the newest snapshots.
//!
//! A step is done when the inventory shows its effect:
//! - a node the plan sends to target T reports in T's snapshot (the cluster
//!   whose id is T's name) and no longer in its source; in neither: in progress
//!   (draining or joining);
//! - a freed node no longer reports in its source;
//! - a namespace exists in its target under its final name and no longer in its
//!   source; in both (restored, not cut over) or in neither: in progress;
//! - a part of a namespace that moves in parts, before its last: the target
//!   runs at least the pods of this part and the earlier ones (the last part is
//!   the cut-over, read as a whole namespace);
//! - an add-on is installed: its namespace exists in the target;
//! - a retired source reports no nodes and no namespaces but platform ones, or
//!   stopped reporting (nothing newer than the stale limit).
//!
//! A wave is done when all its steps are, pending when none has begun, else in
//! progress. A node in neither cluster (draining, or gone) and a namespace in
//! both (restored, or another took its name) or in neither do not by
//! themselves show a wave begun: [`super::health`] tells them apart by whether
//! the rest of the wave has begun. A wave done while an earlier wave of its block is not is flagged
//! `out_of_order`.

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::watch::{PlanProgress, Progress, WaveProgress};
use kplan_model::{BlockStatus, ClusterSnapshot, ClusterSummary, NodeAction, Plan, Policy};

use super::block_name;
use crate::namespaces::is_platform_namespace;

/// How the reading is made.
#[derive(Debug, Clone, Copy)]
pub struct ProgressOptions {
    pub now_unix: i64,
    /// A cluster whose newest snapshot is older than this has stopped reporting.
    pub stale_after_seconds: i64,
}

/// At most this many missing steps are listed per wave.
const MISSING_SHOWN: usize = 8;

struct Inventory<'a> {
    snapshots: BTreeMap<&'a str, &'a ClusterSnapshot>,
    reported_at: BTreeMap<&'a str, i64>,
    options: ProgressOptions,
}

impl<'a> Inventory<'a> {
    fn silent(&self, cluster: &str) -> bool {
        match self.reported_at.get(cluster) {
            None => !self.snapshots.contains_key(cluster),
            Some(at) => *at < self.options.now_unix.saturating_sub(self.options.stale_after_seconds),
        }
    }
    fn has_node(&self, cluster: &str, node: &str) -> bool {
        self.snapshots.get(cluster).is_some_and(|s| s.nodes.iter().any(|n| n.name == node))
    }
    /// The pods a namespace of a cluster runs, if it has it.
    fn namespace_pods(&self, cluster: &str, namespace: &str) -> Option<u64> {
        self.snapshots.get(cluster)?.namespaces.iter().find(|n| n.name == namespace).map(|n| n.requests.pods)
    }
    fn has_namespace(&self, cluster: &str, namespace: &str) -> bool {
        self.snapshots.get(cluster).is_some_and(|s| s.namespaces.iter().any(|n| n.name == namespace))
    }
}

/// Every wave of every planned block of `plan`, as `inventory` (the newest
/// snapshots) and `summaries` (their reporting times) show it.
pub fn progress(
    plan: &Plan,
    inventory: &[ClusterSnapshot],
    summaries: &[ClusterSummary],
    policy: &Policy,
    options: ProgressOptions,
) -> PlanProgress {
    let inv = Inventory {
        snapshots: inventory.iter().map(|s| (s.cluster_id.as_str(), s)).collect(),
        reported_at: summaries.iter().map(|s| (s.cluster_id.as_str(), s.stored_at_unix)).collect(),
        options,
    };
    let mut out = PlanProgress::default();
    let mut depends_on: BTreeSet<&str> = BTreeSet::new();
    for block in plan.blocks.iter().filter(|b| b.status == BlockStatus::Planned) {
        let mut earlier_not_done = false;
        let mut retired_done: BTreeSet<&str> = BTreeSet::new();
        for wave in &block.waves {
            // (progress, what, whether it shows the wave has begun)
            let mut steps: Vec<(Progress, String, bool)> = Vec::new();
            for node in &wave.nodes {
                let in_source = inv.has_node(&node.cluster_id, &node.node);
                let step = match node.action {
                    NodeAction::DrainAndJoin => {
                        let in_target = inv.has_node(&node.to_cluster, &node.node);
                        let gone_from_source = !in_source || inv.silent(&node.cluster_id);
                        match (gone_from_source, in_target) {
                            (true, true) => Progress::Done,
                            (false, false) => Progress::Pending,
                            _ => Progress::InProgress,
                        }
                    }
                    NodeAction::Free => {
                        if in_source && !inv.silent(&node.cluster_id) {
                            Progress::Pending
                        } else {
                            Progress::Done
                        }
                    }
                };
                let what = match node.action {
                    NodeAction::DrainAndJoin => format!(
                        "node {}/{} to join {}{}",
                        node.cluster_id,
                        node.node,
                        node.to_cluster,
                        if step == Progress::InProgress {
                            if in_source { " (reports in both)" } else { " (reports in neither)" }
                        } else {
                            ""
                        }
                    ),
                    NodeAction::Free => format!("node {}/{} to be freed", node.cluster_id, node.node),
                };
                // A node in neither cluster may be draining, or gone: it alone does not show the wave begun.
                let certain = step != Progress::InProgress || in_source;
                steps.push((step, what, certain));
            }
            for ns in &wave.namespaces {
                let name = if ns.new_name.is_empty() { ns.namespace.as_str() } else { ns.new_name.as_str() };
                if let Some(part) = ns.part.as_ref().filter(|p| p.index < p.of) {
                    // A part before the cut-over: the namespace runs on both sides;
                    // done once the target runs the pods of this part and the earlier ones.
                    // The pods of the parts up to this one, and before it.
                    let through = |last: u32| -> u64 {
                        block
                            .waves
                            .iter()
                            .flat_map(|w| &w.namespaces)
                            .filter(|m| m.from_cluster == ns.from_cluster && m.namespace == ns.namespace)
                            .filter(|m| m.part.as_ref().is_some_and(|q| q.index <= last))
                            .map(|m| m.requests.pods)
                            .sum()
                    };
                    let (needed, before) = (through(part.index), through(part.index - 1));
                    let running = inv.namespace_pods(&ns.to_cluster, name);
                    let step = match running {
                        Some(pods) if pods >= needed => Progress::Done,
                        Some(pods) if pods > before => Progress::InProgress,
                        _ => Progress::Pending,
                    };
                    steps.push((
                        step,
                        format!(
                            "part {} of {} of namespace {}/{} to run in {} ({} of {needed} pods there)",
                            part.index,
                            part.of,
                            ns.from_cluster,
                            ns.namespace,
                            ns.to_cluster,
                            running.unwrap_or(0)
                        ),
                        true,
                    ));
                    continue;
                }
                let in_source = inv.has_namespace(&ns.from_cluster, &ns.namespace) && !inv.silent(&ns.from_cluster);
                let in_target = inv.has_namespace(&ns.to_cluster, name);
                let step = match (in_source, in_target) {
                    (false, true) => Progress::Done,
                    (true, false) => Progress::Pending,
                    _ => Progress::InProgress,
                };
                let renamed = if name != ns.namespace { format!(" as {name}") } else { String::new() };
                let note = match (in_source, in_target) {
                    (true, true) => " (in both: restored, not cut over)",
                    (false, false) => " (in neither)",
                    _ => "",
                };
                // In both (restored, or another namespace took the name) or in
                // neither: it alone does not show the wave begun.
                steps.push((
                    step,
                    format!(
                        "namespace {}/{} to move to {}{renamed}{note}",
                        ns.from_cluster, ns.namespace, ns.to_cluster
                    ),
                    step != Progress::InProgress,
                ));
            }
            for target in &block.target_clusters {
                for addon in target.addons.iter().filter(|a| a.wave == wave.index) {
                    let step = if inv.has_namespace(&target.name, &addon.namespace) {
                        Progress::Done
                    } else {
                        Progress::Pending
                    };
                    steps.push((step, format!("add-on {} to be installed on {}", addon.namespace, target.name), true));
                }
            }
            for cluster in &wave.clusters_retired {
                let (n_nodes, n_namespaces) = inv
                    .snapshots
                    .get(cluster.as_str())
                    .map(|s| {
                        (s.nodes.len(), s.namespaces.iter().filter(|n| !is_platform_namespace(&n.name, policy)).count())
                    })
                    .unwrap_or((0, 0));
                let done = inv.silent(cluster) || (n_nodes == 0 && n_namespaces == 0);
                if done {
                    retired_done.insert(cluster.as_str());
                }
                steps.push((
                    if done { Progress::Done } else { Progress::Pending },
                    format!(
                        "cluster {cluster} to be retired (reports {n_nodes} node(s) and {n_namespaces} namespace(s))"
                    ),
                    true,
                ));
            }
            let n_done = steps.iter().filter(|(s, _, _)| *s == Progress::Done).count();
            let begun = steps.iter().any(|(s, _, certain)| *s != Progress::Pending && *certain);
            let state = if n_done == steps.len() {
                Progress::Done
            } else if begun {
                Progress::InProgress
            } else {
                Progress::Pending
            };
            let missing: Vec<String> =
                steps.iter().filter(|(s, _, _)| *s != Progress::Done).map(|(_, w, _)| w.clone()).collect();
            let mut shown: Vec<String> = missing.iter().take(MISSING_SHOWN).cloned().collect();
            if missing.len() > MISSING_SHOWN {
                shown.push(format!("and {} more", missing.len() - MISSING_SHOWN));
            }
            out.waves.push(WaveProgress {
                block: block_name(block),
                wave: wave.index,
                progress: state,
                steps_done: n_done as u64,
                steps_total: steps.len() as u64,
                missing: shown,
                out_of_order: state == Progress::Done && earlier_not_done,
            });
            earlier_not_done |= state != Progress::Done;
        }
        for source in &block.source_clusters {
            if !retired_done.contains(source.as_str()) {
                depends_on.insert(source.as_str());
            }
        }
        for target in &block.target_clusters {
            if inv.snapshots.contains_key(target.name.as_str()) {
                depends_on.insert(target.name.as_str());
            }
        }
    }
    out.waves_total = out.waves.len() as u64;
    out.waves_done = out.waves.iter().filter(|w| w.progress == Progress::Done).count() as u64;
    out.oldest_report_unix = depends_on.iter().filter_map(|c| inv.reported_at.get(c)).copied().min().unwrap_or(0);
    out.silent_clusters = depends_on.iter().filter(|c| inv.silent(c)).map(|c| c.to_string()).collect();
    out
}

/// Per block, the first wave that is not done (`None`: every wave is).
pub fn first_open_wave(progress: &PlanProgress) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for wave in &progress.waves {
        if wave.progress != Progress::Done {
            out.entry(wave.block.clone()).or_insert(wave.wave);
        }
    }
    out
}

/// Whether a wave of `block` after `wave` has begun.
pub fn later_wave_begun(progress: &PlanProgress, block: &str, wave: u64) -> bool {
    progress.waves.iter().any(|w| w.block == block && w.wave > wave && w.progress != Progress::Pending)
}

/// The progress of one wave of one block.
pub fn wave_progress(progress: &PlanProgress, block: &str, wave: u64) -> Progress {
    progress.waves.iter().find(|w| w.block == block && w.wave == wave).map(|w| w.progress).unwrap_or_default()
}
