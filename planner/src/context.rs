//! What is derived once per block before any solve: [`BlockContext`] (the
//! block's data, headroom, budget, source and node names) and the settings
//! ([`BlockSettings`]) and result ([`BlockOutcome`]) of planning one block.

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::policy::SolverPolicy;
use kplan_model::{BlockPlan, ClusterSnapshot, NodeRole, Policy};

use super::blocks::{Block, ZoneTiers};
use super::flows::required_flows;
use super::model::{ClassInput, CompositionInput, PairFlows, PoolInput, StagingCut, Weights, model_units};
use super::pools::BlockData;
use super::preconditions::{majority_cni, majority_version};
use super::waves::{Budget, HeadroomFractions};
use crate::headroom::usable;

// One block

/// How to plan one block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockSettings {
    /// The policy's solver settings (work limits, seed, threads, safety nets),
    /// with the caller's time-limit override applied.
    pub solver: SolverPolicy,
    pub write_models: bool,
    /// False: greedy only (no HiGHS).
    pub use_solver: bool,
}

/// A block's plan and, when asked, its models in MPS.
#[derive(Debug, Clone)]
pub struct BlockOutcome {
    pub plan: BlockPlan,
    /// `(name, MPS text)`.
    pub models: Vec<(String, String)>,
    /// No plan, and a composition was found but could not be staged: moving
    /// large namespaces in parts may help (`parts.rs`).
    pub stalled: bool,
}

/// Everything derived once per block.
#[derive(Debug)]
pub struct BlockContext<'a> {
    pub inventory: &'a [ClusterSnapshot],
    pub policy: &'a Policy,
    pub block: &'a Block,
    pub zone_tiers: &'a ZoneTiers,
    pub data: BlockData,
    pub headroom: HeadroomFractions,
    pub budget: Budget,
    pub small_site: bool,
    pub n_control_plane: usize,
    pub control_plane_zones: usize,
    pub dedicated_control_plane: bool,
    pub target_version: String,
    pub target_cni: String,
    pub weights: Weights,
    pub input: CompositionInput,
}

impl<'a> BlockContext<'a> {
    pub fn new(
        inventory: &'a [ClusterSnapshot],
        policy: &'a Policy,
        block: &'a Block,
        zone_tiers: &'a ZoneTiers,
    ) -> BlockContext<'a> {
        let tier = &block.key.security_tier;
        let data = BlockData::new(inventory, block, |zone| zone_tiers.may_host(policy, zone, tier), policy);
        let headroom = [policy.headroom.cpu, policy.headroom.memory, policy.headroom.pods];
        let budget = Budget { nodes: policy.wave_budget.nodes, namespaces: policy.wave_budget.namespaces };
        let small_site = (block.nodes.len() as u64) <= policy.small_site_max_nodes;
        let n_control_plane = if small_site { 1 } else { 3 };
        let control_plane_zones = n_control_plane.min(block.allowed_zones.len());
        let dedicated_control_plane = policy.dedicated_control_plane && !small_site;

        let sources: Vec<&ClusterSnapshot> = block
            .source_clusters
            .iter()
            .map(|&c| &inventory[c])
            .filter(|c| c.nodes.iter().any(|n| n.datacenter == block.key.datacenter))
            .collect();
        let sources =
            if sources.is_empty() { block.source_clusters.iter().map(|&c| &inventory[c]).collect() } else { sources };
        let target_version = if policy.target_kubernetes_version.is_empty() {
            majority_version(&sources)
        } else {
            policy.target_kubernetes_version.clone()
        };
        let target_cni = if policy.target_cni.is_empty() { majority_cni(&sources) } else { policy.target_cni.clone() };

        let weights = Weights::for_block(data.n_nodes(), data.n_namespaces());
        let zone_index: BTreeMap<&str, usize> =
            block.allowed_zones.iter().enumerate().map(|(z, name)| (name.as_str(), z)).collect();
        // The target's control plane: source workers, plain ones (no GPU,
        // dedicated or big-memory node, `Placement::special`) where plain
        // workers are in enough allowed zones.
        let special = |pool: &super::pools::NodePool| {
            pool.members.first().is_some_and(|&i| data.placement.special.get(i).copied().unwrap_or(false))
        };
        let plain_zones: BTreeSet<&str> = data
            .pools
            .iter()
            .filter(|pool| pool.allowed && pool.role != NodeRole::ControlPlane && !special(pool))
            .map(|pool| pool.zone.as_str())
            .collect();
        let plain_only = plain_zones.len() >= control_plane_zones;
        let pools = data
            .pools
            .iter()
            .map(|pool| PoolInput {
                zone: if pool.allowed { zone_index.get(pool.zone.as_str()).copied() } else { None },
                count: pool.members.len() as u64,
                allocatable: model_units(pool.allocatable),
                source: pool.source,
                source_worker: pool.role != NodeRole::ControlPlane,
                control_plane_eligible: pool.role != NodeRole::ControlPlane && !(plain_only && special(pool)),
            })
            .collect();
        // Staging cuts per source with nodes here and demand, where the capacity
        // rows do not already imply them (the block's demand less what the
        // source's own nodes could hold).
        let block_demand = model_units(data.demand);
        let mut staging_cuts = Vec::new();
        let mut source_slack = vec![[f64::INFINITY; 3]; block.source_clusters.len()];
        let mut source_class_slack = vec![vec![f64::INFINITY; data.placement.rows.len()]; block.source_clusters.len()];
        for s in 0..block.source_clusters.len() {
            if !data.source_checked[s] {
                continue;
            }
            let sum_where = |keep: &dyn Fn(usize) -> bool| {
                model_units(
                    (0..data.n_nodes())
                        .filter(|&i| data.node_source[i] == s && keep(i))
                        .map(|i| data.node_allocatable[i])
                        .sum(),
                )
            };
            let workers = sum_where(&|i| !data.node_source_control_plane[i]);
            let retiring = sum_where(&|i| data.moves_at_retirement(i));
            let own = sum_where(&|_| true);
            let demands: Vec<[f64; 3]> = (0..data.n_namespaces())
                .filter(|&j| data.namespace_source[j] == s)
                .map(|j| model_units(data.namespace_demand[j]))
                .collect();
            for r in 0..3 {
                let total: f64 = demands.iter().map(|d| d[r]).sum();
                if total <= 0.0 {
                    continue;
                }
                let factor = usable(headroom[r], 1.0);
                source_slack[s][r] = factor * workers[r] - total;
                let largest = demands.iter().map(|d| d[r]).fold(0.0, f64::max);
                let smallest = demands.iter().map(|d| d[r]).fold(f64::INFINITY, f64::min);
                if retiring[r] > 0.0 && total > block_demand[r] - factor * retiring[r] + 1e-9 {
                    staging_cuts.push(StagingCut {
                        source: s,
                        resource: r,
                        rhs: total,
                        exclude_workers: false,
                        class_row: None,
                    });
                }
                let rhs = (2.0 * largest).max(total + smallest) - factor * workers[r];
                if rhs > 1e-9 && rhs > block_demand[r] - factor * own[r] + 1e-9 {
                    staging_cuts.push(StagingCut {
                        source: s,
                        resource: r,
                        rhs,
                        exclude_workers: true,
                        class_row: None,
                    });
                }
            }
            // The same for every placement-class row, on the nodes of its set
            // (not for pods that travel with their nodes: they are never on both sides).
            for (k, row) in data.placement.rows.iter().enumerate().filter(|(_, row)| !row.travels) {
                let needs: Vec<f64> = (0..data.n_namespaces())
                    .filter(|&j| data.namespace_source[j] == s && row.namespace_need[j] > 0)
                    .map(|j| row.namespace_need[j] as f64 / row.unit)
                    .collect();
                if needs.is_empty() {
                    continue;
                }
                let total: f64 = needs.iter().sum();
                let largest = needs.iter().copied().fold(0.0, f64::max);
                let smallest = needs.iter().copied().fold(f64::INFINITY, f64::min);
                let supply = |keep: &dyn Fn(usize) -> bool| -> f64 {
                    (0..data.n_nodes())
                        .filter(|&i| data.node_source[i] == s && keep(i))
                        .map(|i| row.node_supply[i] as f64 / row.unit)
                        .sum()
                };
                let workers = supply(&|i| !data.node_source_control_plane[i]);
                let own = supply(&|_| true);
                let factor = usable(row.headroom, 1.0);
                source_class_slack[s][k] = factor * workers - total;
                let block_need = row.total_need() as f64 / row.unit;
                let rhs = (2.0 * largest).max(total + smallest) - factor * workers;
                if rhs > 1e-9 && rhs > block_need - factor * own + 1e-9 {
                    staging_cuts.push(StagingCut {
                        source: s,
                        resource: 0,
                        rhs,
                        exclude_workers: true,
                        class_row: Some(k),
                    });
                }
            }
        }
        let mut pair_flows: BTreeMap<(usize, usize), PairFlows> = BTreeMap::new();
        for a in 0..block.allowed_zones.len() {
            for b in a + 1..block.allowed_zones.len() {
                let (za, zb) = (&block.allowed_zones[a], &block.allowed_zones[b]);
                let zones = vec![za.clone(), zb.clone()];
                let count = |cp: Vec<String>| {
                    required_flows(&block.key.target_base_name(), &zones, &cp, &target_cni, small_site, policy).len()
                        as u64
                };
                let flows = [
                    count(vec![]),
                    count(vec![za.clone()]),
                    count(vec![zb.clone()]),
                    count(vec![za.clone(), zb.clone()]),
                ];
                if flows != [0; 4] {
                    pair_flows.insert((a, b), flows);
                }
            }
        }
        let class_rows = data
            .placement
            .rows
            .iter()
            .map(|row| ClassInput {
                pool_supply: data
                    .pools
                    .iter()
                    .map(|pool| pool.members.first().map_or(0.0, |&i| row.node_supply[i] as f64 / row.unit))
                    .collect(),
                need: row.total_need() as f64 / row.unit,
                headroom: row.headroom,
            })
            .collect();
        let allowed_nodes = data.node_allowed.iter().filter(|&&a| a).count() as u64;
        let max_nodes = policy.max_nodes_per_cluster.max(1);
        let input = CompositionInput {
            name: block.key.file_name(),
            pools,
            zones: block.allowed_zones.clone(),
            demand: model_units(data.demand),
            headroom,
            n_control_plane,
            control_plane_zones,
            dedicated_control_plane,
            survive_zone_loss: policy.survive_zone_loss,
            max_nodes_per_target: max_nodes,
            max_targets: allowed_nodes.div_ceil(max_nodes).max(1) as usize,
            pair_flows,
            weights,
            flows_lower_bound: None,
            staging_cuts,
            class_rows,
            source_slack,
            source_class_slack,
        };
        BlockContext {
            inventory,
            policy,
            block,
            zone_tiers,
            data,
            headroom,
            budget,
            small_site,
            n_control_plane,
            control_plane_zones,
            dedicated_control_plane,
            target_version,
            target_cni,
            weights,
            input,
        }
    }

    pub fn n_sources(&self) -> usize {
        self.block.source_clusters.len()
    }

    pub fn source_id(&self, source: usize) -> &'a str {
        &self.inventory[self.block.source_clusters[source]].cluster_id
    }

    pub fn node_name(&self, i: usize) -> &'a str {
        &self.block.node(self.inventory, self.block.nodes[i]).name
    }

    pub fn namespace_name(&self, j: usize) -> &'a str {
        &self.block.namespace(self.inventory, self.block.namespaces[j]).name
    }

    /// The unit in a user's words: `shop`, or `shop (part 2 of 3)`.
    pub fn unit_label(&self, j: usize) -> String {
        let id = self.block.namespaces[j];
        match self.block.part(id) {
            Some((_, of)) => format!("{} (part {} of {of})", self.namespace_name(j), id.part),
            None => self.namespace_name(j).to_string(),
        }
    }
}
