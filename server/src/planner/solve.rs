//! Solving one block: greedy, the composition model, the waves, the plan.
//!
//! 1. Pre-checks (`explain.rs`): a block that cannot be planned says why, before
//!    any solve.
//! 2. The greedy composition and its waves: the warm start, the fallback and the
//!    `greedy_objective`.
//! 3. The composition model (`model.rs`) in HiGHS through good_lp, warm-started
//!    with the greedy composition, under the block's deadline (HiGHS's
//!    `time_limit`, plus this module's own deadline on a worker thread: HiGHS's
//!    MIP does not always honour its limit).
//! 4. Waves for the better composition (greedy list scheduling; when that is
//!    longer than the wave lower bound and the model is small enough, the
//!    time-indexed waves model with the greedy schedule as warm start).
//! 5. The plan, checked by the planner's exact replay and then by the validator;
//!    a rejected candidate falls back to the next (model, then greedy), and a
//!    block with no acceptable candidate is infeasible with the reasons.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use good_lp::{Expression, ProblemVariables, SolverModel, variable};
use highs::{HighsModelStatus, HighsSolutionStatus};
use kplan_model::{
    BlockPlan, BlockStatus, ClusterCapacity, ClusterSnapshot, ControlPlaneNode, FirewallFlow, NamespaceMove,
    NodeAction, NodeMove, NodeRef, NodeRole, Policy, Precondition, PreconditionKind, Resources, TargetCluster, Wave,
};

use super::blocks::{Block, ZoneTiers};
use super::explain;
use super::flows::{is_known_cni, required_flows};
use super::greedy::{greedy_composition, greedy_in_zones};
use super::model::{
    Composition, CompositionInput, CompositionModel, LinearModel, PairFlows, PoolInput, StagingCut, Weights,
    composition_flows, model_units, zone_choices,
};
use super::mps::write_mps;
use super::namespaces::{NamespacePlacement, resolve_collisions};
use super::pools::BlockData;
use super::preconditions::{block_preconditions, majority_cni, majority_version};
use super::waves::{
    Assignment, Budget, Destination, HeadroomFractions, Schedule, Stall, StallKind, WavesModel, fits, replay,
    schedule_greedy, wave_lower_bound,
};

// ---------------------------------------------------------------------------
// HiGHS

/// How HiGHS runs one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverSettings {
    pub time_limit_seconds: f64,
    /// Relative gap (HiGHS `mip_rel_gap`).
    pub mip_rel_gap: f64,
    /// Absolute gap (HiGHS `mip_abs_gap`).
    pub mip_abs_gap: f64,
    pub threads: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MipStatus {
    Optimal,
    GapLimit,
    TimeLimit,
    Infeasible,
    /// Stopped without a feasible solution.
    NoSolution,
    /// Our own deadline passed before HiGHS returned.
    Deadline,
    Error,
}

#[derive(Debug, Clone)]
pub struct MipResult {
    pub status: MipStatus,
    pub values: Option<Vec<f64>>,
    pub objective: f64,
    /// HiGHS's MIP dual bound (a proved lower bound), or `-inf` when unknown.
    pub dual_bound: f64,
    pub seconds: f64,
    pub message: String,
}

/// Solves `model` with HiGHS (through good_lp) on a worker thread, giving up
/// after the time limit plus a grace period even if HiGHS does not return.
pub fn solve_mip(model: &LinearModel, warm_start: Option<Vec<f64>>, settings: SolverSettings) -> MipResult {
    let started = Instant::now();
    let (sender, receiver) = mpsc::channel();
    let owned = model.clone();
    let spawned = std::thread::Builder::new().name("kplan-highs".to_string()).spawn(move || {
        let result = run_highs(&owned, warm_start.as_deref(), settings);
        let _ = sender.send(result);
    });
    if let Err(error) = spawned {
        return MipResult {
            status: MipStatus::Error,
            values: None,
            objective: f64::INFINITY,
            dual_bound: f64::NEG_INFINITY,
            seconds: 0.0,
            message: format!("cannot start the solver thread: {error}"),
        };
    }
    let grace = 1.0 + 0.1 * settings.time_limit_seconds;
    match receiver.recv_timeout(Duration::from_secs_f64(settings.time_limit_seconds.max(0.0) + grace)) {
        Ok(mut result) => {
            result.seconds = started.elapsed().as_secs_f64();
            result
        }
        Err(_) => {
            tracing::warn!(model = %model.name, "highs did not return by the deadline; the solve thread is left to finish on its own");
            MipResult {
                status: MipStatus::Deadline,
                values: None,
                objective: f64::INFINITY,
                dual_bound: f64::NEG_INFINITY,
                seconds: started.elapsed().as_secs_f64(),
                message: "the solver did not return by the deadline".to_string(),
            }
        }
    }
}

fn run_highs(model: &LinearModel, warm_start: Option<&[f64]>, settings: SolverSettings) -> MipResult {
    let failed = |status: MipStatus, message: String| MipResult {
        status,
        values: None,
        objective: f64::INFINITY,
        dual_bound: f64::NEG_INFINITY,
        seconds: 0.0,
        message,
    };
    let mut variables = ProblemVariables::new();
    let columns: Vec<good_lp::Variable> = model
        .variables
        .iter()
        .map(|v| {
            let mut definition = variable().min(v.lower).max(v.upper);
            if v.integer {
                definition = definition.integer();
            }
            variables.add(definition)
        })
        .collect();
    let mut objective = Expression::with_capacity(columns.len());
    for (column, v) in columns.iter().zip(&model.variables) {
        if v.objective != 0.0 {
            objective.add_mul(v.objective, *column);
        }
    }
    let mut problem = variables.minimise(objective).using(good_lp::solvers::highs::highs);
    for row in &model.constraints {
        let mut expression = Expression::with_capacity(row.terms.len());
        for &(j, a) in &row.terms {
            expression.add_mul(a, columns[j]);
        }
        if row.lower == row.upper {
            problem.add_constraint(expression.eq(row.lower));
            continue;
        }
        if row.lower.is_finite() {
            problem.add_constraint(expression.clone().geq(row.lower));
        }
        if row.upper.is_finite() {
            problem.add_constraint(expression.leq(row.upper));
        }
    }
    let mut highs_model = match problem.try_into_inner() {
        Ok(m) => m,
        Err(error) => return failed(MipStatus::Error, error.to_string()),
    };
    let options: [(&str, f64); 3] = [
        ("time_limit", settings.time_limit_seconds.max(0.01)),
        ("mip_rel_gap", settings.mip_rel_gap.max(0.0)),
        ("mip_abs_gap", settings.mip_abs_gap.max(0.0)),
    ];
    for (name, value) in options {
        if highs_model.try_set_option(name, value).is_err() {
            return failed(MipStatus::Error, format!("highs rejected option {name}"));
        }
    }
    let _ = highs_model.try_set_option("threads", settings.threads.max(1) as i32);
    if let Some(values) = warm_start
        && values.len() == model.variables.len()
        && highs_model.try_set_solution(Some(values), None, None, None).is_err()
    {
        tracing::debug!(model = %model.name, "highs refused the warm start");
    }
    let solved = match highs_model.try_solve() {
        Ok(s) => s,
        Err(status) => return failed(MipStatus::Error, format!("highs failed: {status:?}")),
    };
    let model_status = solved.status();
    let has_solution = solved.primal_solution_status() == HighsSolutionStatus::Feasible;
    let dual_bound = solved.double_info_value(c"mip_dual_bound").unwrap_or(f64::NEG_INFINITY);
    let status = match model_status {
        HighsModelStatus::Optimal => {
            let gap = solved.mip_gap();
            if gap.is_finite() && gap > 1e-9 { MipStatus::GapLimit } else { MipStatus::Optimal }
        }
        HighsModelStatus::ObjectiveBound | HighsModelStatus::ObjectiveTarget => MipStatus::GapLimit,
        HighsModelStatus::Infeasible | HighsModelStatus::UnboundedOrInfeasible => MipStatus::Infeasible,
        HighsModelStatus::ReachedTimeLimit
        | HighsModelStatus::ReachedIterationLimit
        | HighsModelStatus::ReachedSolutionLimit
        | HighsModelStatus::ReachedInterrupt
        | HighsModelStatus::ReachedMemoryLimit => {
            if has_solution {
                MipStatus::TimeLimit
            } else {
                MipStatus::NoSolution
            }
        }
        other => return failed(MipStatus::Error, format!("highs ended with {other:?}")),
    };
    if !has_solution {
        let status = if status == MipStatus::Infeasible { status } else { MipStatus::NoSolution };
        return MipResult { dual_bound, ..failed(status, format!("{model_status:?}")) };
    }
    let values = solved.get_solution().columns().to_vec();
    let objective = model.objective_value(&values);
    MipResult { status, values: Some(values), objective, dual_bound, seconds: 0.0, message: String::new() }
}

// ---------------------------------------------------------------------------
// One block

/// How to plan one block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockSettings {
    pub time_limit_seconds: f64,
    pub mip_gap: f64,
    /// Budget of the staging rescue (the waves model on a composition the greedy staging stalled on).
    pub staging_seconds: f64,
    /// Budget of the waves model shortening the best valid schedule.
    pub waves_seconds: f64,
    pub threads: u32,
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
        let pools = data
            .pools
            .iter()
            .map(|pool| PoolInput {
                zone: if pool.allowed { zone_index.get(pool.zone.as_str()).copied() } else { None },
                count: pool.members.len() as u64,
                allocatable: model_units(pool.allocatable),
                source: pool.source,
                source_worker: pool.role != NodeRole::ControlPlane,
            })
            .collect();
        // Staging cuts per source with nodes here and demand, where the capacity
        // rows do not already imply them (the block's demand less what the
        // source's own nodes could hold).
        let block_demand = model_units(data.demand);
        let mut staging_cuts = Vec::new();
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
                let factor = 1.0 - headroom[r];
                let largest = demands.iter().map(|d| d[r]).fold(0.0, f64::max);
                let smallest = demands.iter().map(|d| d[r]).fold(f64::INFINITY, f64::min);
                if retiring[r] > 0.0 && total > block_demand[r] - factor * retiring[r] + 1e-9 {
                    staging_cuts.push(StagingCut { source: s, resource: r, rhs: total, exclude_workers: false });
                }
                let rhs = (2.0 * largest).max(total + smallest) - factor * workers[r];
                if rhs > 1e-9 && rhs > block_demand[r] - factor * own[r] + 1e-9 {
                    staging_cuts.push(StagingCut { source: s, resource: r, rhs, exclude_workers: true });
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
}

/// A composition made into a full candidate plan.
#[derive(Debug, Clone)]
pub struct Realized {
    pub composition: Composition,
    pub assignment: Assignment,
    pub schedule: Schedule,
    pub flows: Vec<FirewallFlow>,
    pub objective: f64,
}

/// Why a composition could not be made into a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealizeFailure {
    /// A target does not hold its namespaces (exact check), or losing a zone breaks it.
    Capacity { target: usize, zone_lost: Option<String> },
    /// The namespaces could not be split between several targets.
    Packing,
    /// The greedy wave scheduling got stuck (the composition and assignment are
    /// kept so that the waves model can try).
    Stall { stall: Stall, composition: Box<Composition>, assignment: Box<Assignment> },
}

fn assign_nodes(ctx: &BlockContext, composition: &Composition) -> Assignment {
    let data = &ctx.data;
    let n_targets = composition.n_targets();
    let mut node_destination = vec![Destination::Free; data.n_nodes()];
    let mut node_target_control_plane = vec![false; data.n_nodes()];
    for (p, pool) in data.pools.iter().enumerate() {
        let mut members = pool.members.iter();
        for t in 0..n_targets {
            let kept = composition.keep[t][p] as usize;
            let control_plane = composition.control_plane[t][p] as usize;
            for k in 0..kept {
                let Some(&i) = members.next() else { break };
                node_destination[i] = Destination::Target(t);
                node_target_control_plane[i] = k < control_plane;
            }
        }
    }
    Assignment {
        n_targets,
        node_destination,
        node_target_control_plane,
        namespace_target: vec![0; data.n_namespaces()],
        dedicated_control_plane: ctx.dedicated_control_plane,
    }
}

/// Keeps one more node so that namespace `j` finds a target: in the target with
/// the most room, the largest free node of a zone it already spans (no new flows),
/// else of any allowed zone. False when no node can be added.
fn add_node_for(ctx: &BlockContext, composition: &mut Composition, capacity: &[Resources], j: usize) -> bool {
    let data = &ctx.data;
    let demand = model_units(data.namespace_demand[j]);
    let room = |t: usize| -> f64 {
        let c = model_units(capacity[t]);
        (0..3).map(|k| (1.0 - ctx.headroom[k]) * c[k] - demand[k]).fold(f64::INFINITY, f64::min)
    };
    let max = ctx.policy.max_nodes_per_cluster.max(1);
    let mut targets: Vec<usize> = (0..composition.n_targets()).collect();
    targets.sort_by(|&a, &b| room(b).total_cmp(&room(a)).then(a.cmp(&b)));
    for t in targets {
        if composition.keep[t].iter().sum::<u64>() >= max {
            continue;
        }
        let zones: BTreeSet<&str> = (0..data.pools.len())
            .filter(|&p| composition.keep[t][p] > 0)
            .map(|p| data.pools[p].zone.as_str())
            .collect();
        let free = |p: usize| {
            let pool = &data.pools[p];
            pool.allowed && (pool.members.len() as u64) > composition.keep.iter().map(|k| k[p]).sum::<u64>()
        };
        let size = |p: usize| {
            model_units(data.pools[p].allocatable)
                .iter()
                .zip(&demand)
                .map(|(a, d)| if *d > 0.0 { a / d } else { 0.0 })
                .sum::<f64>()
        };
        let best = (0..data.pools.len()).filter(|&p| free(p)).max_by(|&a, &b| {
            let in_zone = |p: usize| zones.contains(data.pools[p].zone.as_str());
            in_zone(a).cmp(&in_zone(b)).then(size(a).total_cmp(&size(b))).then(b.cmp(&a))
        });
        if let Some(p) = best {
            composition.keep[t][p] += 1;
            return true;
        }
    }
    false
}

pub fn realize(ctx: &BlockContext, mut composition: Composition) -> Result<Realized, RealizeFailure> {
    let data = &ctx.data;
    let n_targets = composition.n_targets();
    let mut repairs = 0;
    let (assignment, capacity) = loop {
        let mut assignment = assign_nodes(ctx, &composition);
        let mut capacity = vec![Resources::ZERO; n_targets];
        for i in 0..data.n_nodes() {
            if let Some(t) = assignment.counts_for_target(i) {
                capacity[t] = capacity[t].saturating_add(data.node_allocatable[i]);
            }
        }
        if n_targets == 1 {
            break (assignment, capacity);
        }
        match pack_namespaces(data, &capacity, &ctx.headroom) {
            Ok(targets) => {
                assignment.namespace_target = targets;
                break (assignment, capacity);
            }
            Err(j) => {
                repairs += 1;
                if repairs > data.n_nodes() || !add_node_for(ctx, &mut composition, &capacity, j) {
                    return Err(RealizeFailure::Packing);
                }
            }
        }
    };
    let mut demand = vec![Resources::ZERO; n_targets];
    for j in 0..data.n_namespaces() {
        let t = assignment.namespace_target[j];
        demand[t] = demand[t].saturating_add(data.namespace_demand[j]);
    }
    for t in 0..n_targets {
        if !fits(demand[t], capacity[t], &ctx.headroom) {
            return Err(RealizeFailure::Capacity { target: t, zone_lost: None });
        }
        if ctx.policy.survive_zone_loss {
            for zone in &ctx.block.allowed_zones {
                let left: Resources = (0..data.n_nodes())
                    .filter(|&i| assignment.counts_for_target(i) == Some(t) && &data.node_zone[i] != zone)
                    .map(|i| data.node_allocatable[i])
                    .sum();
                if !fits(demand[t], left, &ctx.headroom) {
                    return Err(RealizeFailure::Capacity { target: t, zone_lost: Some(zone.clone()) });
                }
            }
        }
    }
    match schedule_greedy(data, &assignment, ctx.n_sources(), &ctx.headroom, ctx.budget) {
        Ok(schedule) => Ok(finish(ctx, composition, assignment, schedule)),
        Err(stall) => {
            Err(RealizeFailure::Stall { stall, composition: Box::new(composition), assignment: Box::new(assignment) })
        }
    }
}

fn finish(ctx: &BlockContext, composition: Composition, assignment: Assignment, schedule: Schedule) -> Realized {
    let flows = block_flows(ctx, &assignment);
    let kept = assignment.node_destination.iter().filter(|d| **d != Destination::Free).count();
    let objective = ctx.weights.objective(flows.len(), kept, schedule.n_waves as usize);
    Realized { composition, assignment, schedule, flows, objective }
}

/// Zones and control-plane zones of every target.
fn target_zones(ctx: &BlockContext, assignment: &Assignment) -> Vec<(Vec<String>, Vec<String>)> {
    let mut zones = vec![(BTreeSet::new(), BTreeSet::new()); assignment.n_targets];
    for i in 0..ctx.data.n_nodes() {
        if let Destination::Target(t) = assignment.node_destination[i] {
            zones[t].0.insert(ctx.data.node_zone[i].clone());
            if assignment.node_target_control_plane[i] {
                zones[t].1.insert(ctx.data.node_zone[i].clone());
            }
        }
    }
    zones.into_iter().map(|(a, b)| (a.into_iter().collect(), b.into_iter().collect())).collect()
}

fn block_flows(ctx: &BlockContext, assignment: &Assignment) -> Vec<FirewallFlow> {
    let mut flows: Vec<FirewallFlow> = target_zones(ctx, assignment)
        .into_iter()
        .enumerate()
        .flat_map(|(t, (zones, cp_zones))| {
            required_flows(
                &ctx.block.key.target_name(t),
                &zones,
                &cp_zones,
                &ctx.target_cni,
                ctx.small_site,
                ctx.policy,
            )
        })
        .collect();
    flows.sort();
    flows.dedup();
    flows
}

/// Splits namespaces between several targets: largest first, each to the target
/// with the most room left that holds it.
fn pack_namespaces(
    data: &BlockData,
    capacity: &[Resources],
    headroom: &HeadroomFractions,
) -> Result<Vec<usize>, usize> {
    let total = model_units(data.demand);
    let norm = |r: Resources| -> f64 {
        let u = model_units(r);
        (0..3).filter(|&k| total[k] > 0.0).map(|k| u[k] / total[k]).sum()
    };
    let mut order: Vec<usize> = (0..data.n_namespaces()).collect();
    order.sort_by(|&a, &b| norm(data.namespace_demand[b]).total_cmp(&norm(data.namespace_demand[a])).then(a.cmp(&b)));
    let mut used = vec![Resources::ZERO; capacity.len()];
    let mut target = vec![0; data.n_namespaces()];
    for j in order {
        let d = data.namespace_demand[j];
        let room = |t: usize| -> f64 {
            let c = model_units(capacity[t]);
            let u = model_units(used[t]);
            (0..3).map(|k| ((1.0 - headroom[k]) * c[k] - u[k]) / total[k].max(1e-9)).fold(f64::INFINITY, f64::min)
        };
        let best = (0..capacity.len())
            .filter(|&t| fits(used[t].saturating_add(d), capacity[t], headroom))
            .max_by(|&a, &b| room(a).total_cmp(&room(b)).then(b.cmp(&a)))
            .ok_or(j)?;
        used[best] = used[best].saturating_add(d);
        target[j] = best;
    }
    Ok(target)
}

/// Which candidate a plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Model,
    Greedy,
}

/// Plans one block; `validate` returns the validator's objections to a block plan.
pub fn plan_block(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    block: &Block,
    zone_tiers: &ZoneTiers,
    settings: BlockSettings,
    validate: &(dyn Fn(&BlockPlan) -> Vec<String> + Sync),
) -> BlockOutcome {
    let started = Instant::now();
    let ctx = BlockContext::new(inventory, policy, block, zone_tiers);
    let mut models = Vec::new();
    let infeasible = |explanation: String, started: Instant| {
        let mut plan = empty_plan(&ctx);
        plan.status = BlockStatus::Infeasible;
        plan.explanation = explanation;
        plan.solver_status = "infeasible".to_string();
        plan.nodes_after = plan.nodes_before;
        plan.solve_seconds = started.elapsed().as_secs_f64();
        plan
    };
    if let Some(explanation) = explain::precheck(&ctx) {
        return BlockOutcome { plan: infeasible(explanation, started), models };
    }

    let wave_bound = wave_lower_bound(&ctx.data, ctx.budget);
    let greedy = greedy_composition(&ctx.input);
    let greedy_realized = greedy.clone().map(|c| realize(&ctx, c));

    // The composition model.
    let mut mip_status = None;
    let mut dual_bound = f64::NEG_INFINITY;
    let mut composition_model = None;
    let mut composition_settings = None;
    let mut model_realized = None;
    let analysis = zone_choices(&ctx.input);
    if settings.use_solver {
        let mut input = ctx.input.clone();
        // Starts: the greedy, and the greedy within the zone choices that need the fewest flows.
        let mut starts: Vec<Composition> = greedy.iter().cloned().collect();
        if let Some(analysis) = &analysis {
            input.flows_lower_bound = Some(analysis.flows_lower_bound);
            let fewest = analysis.choices.first().map_or(0, |c| c.flows);
            starts.extend(
                analysis
                    .choices
                    .iter()
                    .take_while(|c| c.flows == fewest)
                    .take(8)
                    .filter_map(|c| greedy_in_zones(&input, c)),
            );
            // A single target with fewer flows than any two targets could need:
            // more targets cannot be better, so the model needs only one.
            let single_target_flows =
                starts.iter().filter(|c| c.n_targets() == 1).map(|c| composition_flows(&input, c)).min();
            if input.max_targets > 1
                && single_target_flows.is_some_and(|f| f < analysis.spread_minimum.saturating_mul(2))
            {
                input.max_targets = 1;
                input.flows_lower_bound = analysis.choices.first().map(|c| c.flows);
            }
        }
        let built = CompositionModel::build(&input);
        let warm = starts
            .iter()
            .filter_map(|c| built.encode(&input, c))
            .filter(|values| built.model.first_violation(values, 1e-7).is_none())
            .min_by(|a, b| built.model.objective_value(a).total_cmp(&built.model.objective_value(b)));
        let greedy_kept = greedy.as_ref().map_or(ctx.data.n_nodes() as u64, |c| c.nodes_kept());
        let remaining = settings.time_limit_seconds - started.elapsed().as_secs_f64();
        let solver_settings = SolverSettings {
            time_limit_seconds: (remaining * 0.8).max(0.05),
            mip_rel_gap: 0.0,
            // Flows exact; nodes kept within mip_gap (at least half a node).
            mip_abs_gap: ctx.weights.nodes * (settings.mip_gap * greedy_kept as f64).max(0.5),
            threads: settings.threads,
        };
        composition_settings = Some(solver_settings);
        let result = solve_mip(&built.model, warm, solver_settings);
        tracing::debug!(
            block = %block.key,
            status = ?result.status,
            seconds = result.seconds,
            n_variables = built.model.variables.len(),
            n_constraints = built.model.constraints.len(),
            "composition solved"
        );
        mip_status = Some(result.status);
        dual_bound = result.dual_bound;
        if let Some(values) = &result.values {
            let composition = built.decode(&input, values);
            model_realized = Some(realize(&ctx, composition));
        }
        composition_model = Some(built);
    }

    // Candidates, best objective first (the model's first on a tie).
    let mut staging_models = Vec::new();
    let mut candidates: Vec<(Origin, Realized)> = Vec::new();
    let mut failures: Vec<RealizeFailure> = Vec::new();
    for (origin, realized) in [(Origin::Model, model_realized), (Origin::Greedy, greedy_realized.clone())] {
        match realized {
            Some(Ok(r)) => candidates.push((origin, r)),
            Some(Err(failure)) => {
                // The greedy waves got stuck. First (cheap): keep more nodes until the
                // staging goes through. Then, with time left, the waves model may find a
                // schedule for the original composition (fewer nodes: the better plan).
                if candidates.is_empty()
                    && let RealizeFailure::Stall { stall, composition, assignment } = &failure
                {
                    let repaired = repair_staging(&ctx, (**composition).clone(), stall.clone());
                    // A repair within the composition solve's own tolerance (mip_gap of the
                    // nodes kept, at least half a node; no new flow) is as good as its answer:
                    // the rescue could not do better by more than the solve already accepts.
                    let close_enough = repaired.as_ref().is_some_and(|r| {
                        let extra = r.composition.nodes_kept().saturating_sub(composition.nodes_kept()) as f64;
                        r.composition.keep.len() == composition.keep.len()
                            && composition_flows(&ctx.input, &r.composition)
                                == composition_flows(&ctx.input, composition)
                            && extra <= (settings.mip_gap * composition.nodes_kept() as f64).max(0.5)
                    });
                    if let Some(repaired) = repaired {
                        tracing::debug!(
                            block = %block.key,
                            ?origin,
                            stall_wave = stall.wave,
                            nodes_kept = composition.nodes_kept(),
                            repaired_nodes_kept = repaired.composition.nodes_kept(),
                            close_enough,
                            "staging repaired"
                        );
                        candidates.push((origin, repaired));
                    }
                    if settings.use_solver
                        && !close_enough
                        && let Some(schedule) =
                            rescue_waves(&ctx, assignment, stall.wave, settings, started, &mut staging_models)
                    {
                        candidates
                            .push((origin, finish(&ctx, (**composition).clone(), (**assignment).clone(), schedule)));
                    }
                }
                failures.push(failure);
            }
            None => {}
        }
    }
    candidates.sort_by(|a, b| a.1.objective.total_cmp(&b.1.objective));
    let greedy_objective = match &greedy_realized {
        Some(Ok(r)) => r.objective,
        _ => 0.0,
    };

    // Shorten the waves of the best candidate with the waves model.
    let mut waves_model_text = None;
    if settings.use_solver
        && let Some((_, best)) = candidates.first_mut()
        && (u64::from(best.schedule.n_waves) > wave_bound || settings.write_models)
    {
        let horizon = best.schedule.n_waves;
        let fits_size = WavesModel::size_estimate(&ctx.data, &best.assignment, horizon) <= 20_000;
        let remaining = settings.time_limit_seconds - started.elapsed().as_secs_f64();
        let time_limit = remaining.min(settings.waves_seconds);
        if fits_size && (time_limit >= 0.05 || settings.write_models) {
            let waves_model = WavesModel::build(
                &block.key.file_name(),
                &ctx.data,
                &best.assignment,
                ctx.n_sources(),
                &ctx.headroom,
                ctx.budget,
                horizon,
            );
            let warm = waves_model.encode(&ctx.data, &best.schedule);
            let waves_settings = SolverSettings {
                time_limit_seconds: time_limit.max(0.05),
                mip_rel_gap: 0.0,
                mip_abs_gap: WAVES_ABS_GAP,
                threads: settings.threads,
            };
            if time_limit >= 0.05 {
                let result = solve_mip(&waves_model.model, warm, waves_settings);
                tracing::debug!(
                    block = %block.key,
                    status = ?result.status,
                    seconds = result.seconds,
                    time_limit,
                    horizon,
                    wave_bound,
                    n_variables = waves_model.model.variables.len(),
                    n_constraints = waves_model.model.constraints.len(),
                    "waves model solved"
                );
                if let Some(values) = &result.values {
                    let schedule = waves_model.decode(&ctx.data, values);
                    if schedule.n_waves < best.schedule.n_waves
                        && replay(&ctx.data, &best.assignment, &schedule, ctx.n_sources(), &ctx.headroom, ctx.budget)
                            .is_ok()
                    {
                        let realized = finish(&ctx, best.composition.clone(), best.assignment.clone(), schedule);
                        *best = realized;
                    }
                }
            }
            if settings.write_models {
                waves_model_text = Some(with_settings(write_mps(&waves_model.model), waves_settings));
            }
        }
    }

    // The plan: the first candidate the replay and the validator accept.
    let mut rejections: Vec<String> = Vec::new();
    let mut chosen: Option<(Origin, BlockPlan, f64)> = None;
    for (origin, realized) in &candidates {
        if let Err(error) =
            replay(&ctx.data, &realized.assignment, &realized.schedule, ctx.n_sources(), &ctx.headroom, ctx.budget)
        {
            tracing::warn!(block = %block.key, ?origin, error, "a candidate plan fails the planner's own replay");
            rejections.push(error);
            continue;
        }
        let plan = materialise(&ctx, realized);
        let validating = Instant::now();
        let violations = validate(&plan);
        tracing::debug!(block = %block.key, seconds = validating.elapsed().as_secs_f64(), "validated");
        if violations.is_empty() {
            chosen = Some((*origin, plan, realized.objective));
            break;
        }
        tracing::warn!(block = %block.key, ?origin, n_violations = violations.len(), "the validator rejected a candidate plan");
        rejections.extend(violations);
    }

    let Some((origin, mut plan, objective)) = chosen else {
        let explanation = if !rejections.is_empty() {
            explain::rejected(&ctx, &rejections)
        } else {
            explain::no_plan(&ctx, &failures, mip_status == Some(MipStatus::Infeasible))
        };
        return BlockOutcome { plan: infeasible(explanation, started), models };
    };

    // Figures.
    let waves_bound = ctx.weights.waves * wave_bound as f64;
    let composition_bound = analytic_bound(&ctx, analysis.as_ref().map(|a| a.flows_lower_bound))
        .max(if dual_bound.is_finite() { dual_bound } else { 0.0 });
    let lower_bound = (composition_bound + waves_bound).min(objective);
    plan.objective = objective;
    plan.lower_bound = lower_bound;
    plan.gap = if objective > 0.0 { ((objective - lower_bound) / objective.max(1e-9)).max(0.0) } else { 0.0 };
    plan.greedy_objective = greedy_objective;
    let proved = objective - lower_bound < 0.5 * ctx.weights.waves;
    plan.solver_status = match (origin, mip_status) {
        (Origin::Model, Some(MipStatus::Optimal)) if proved => "optimal",
        (Origin::Model, Some(MipStatus::Optimal | MipStatus::GapLimit)) => "gap-limit",
        (Origin::Model, _) => "time-limit",
        // No model plan, a worse one, or one the validator rejected.
        (Origin::Greedy, _) => "greedy-fallback",
    }
    .to_string();
    let solver_note = match plan.solver_status.as_str() {
        "time-limit" => Some(format!(
            "the solver stopped at its deadline ({} s): this is the best plan it found, within {:.2e} of the proved bound",
            settings.time_limit_seconds, plan.gap
        )),
        "greedy-fallback" if settings.use_solver => Some(match mip_status {
            Some(MipStatus::Deadline | MipStatus::NoSolution) => {
                "the solver found no plan by its deadline: this is the greedy plan".to_string()
            }
            Some(MipStatus::Error) => "the solver failed: this is the greedy plan".to_string(),
            _ => "the solver's plan was not usable: this is the greedy plan".to_string(),
        }),
        _ => None,
    };
    if let Some(note) = solver_note {
        plan.explanation = if plan.explanation.is_empty() { note } else { format!("{}\n{note}", plan.explanation) };
    }
    if settings.write_models
        && let Some(built) = &mut composition_model
    {
        built.model.objective_offset = ctx.weights.waves * plan.waves.len() as f64;
        let text = match composition_settings {
            Some(solver_settings) => with_settings(write_mps(&built.model), solver_settings),
            None => write_mps(&built.model),
        };
        models.push((format!("{}.composition", block.key.file_name()), text));
        models.append(&mut staging_models);
        if let Some(text) = waves_model_text {
            models.push((format!("{}.waves", block.key.file_name()), text));
        }
    }
    plan.solve_seconds = started.elapsed().as_secs_f64();
    BlockOutcome { plan, models }
}

/// The waves model's objective counts waves: an integer. A gap below 1 proves
/// the incumbent optimal, so HiGHS stops as soon as its bound rounds up to it
/// (often at the root) instead of searching for a proof of the last fraction.
const WAVES_ABS_GAP: f64 = 0.999;

/// An MPS model with the solver settings kplan used for it in a comment line
/// first, so an external cross-check can solve it the same way.
fn with_settings(mps: String, settings: SolverSettings) -> String {
    format!(
        "* kplan solver settings: mip_rel_gap={} mip_abs_gap={} threads={} time_limit={}\n{mps}",
        settings.mip_rel_gap, settings.mip_abs_gap, settings.threads, settings.time_limit_seconds
    )
}

/// A bound on the composition part of the objective without a solve: the
/// fewest flows any zone choice needs, and the fewest nodes that could hold the
/// demand (largest nodes only) plus the control plane.
fn analytic_bound(ctx: &BlockContext, flows_lower_bound: Option<u64>) -> f64 {
    let data = &ctx.data;
    let largest = (0..data.n_nodes()).filter(|&i| data.node_allowed[i]).fold([0.0f64; 3], |acc, i| {
        let u = model_units(data.node_allocatable[i]);
        [acc[0].max(u[0]), acc[1].max(u[1]), acc[2].max(u[2])]
    });
    let demand = model_units(data.demand);
    let workers = (0..3)
        .filter(|&r| demand[r] > 0.0 && largest[r] > 0.0)
        .map(|r| (demand[r] / ((1.0 - ctx.headroom[r]) * largest[r]) - 1e-9).ceil().max(0.0))
        .fold(0.0, f64::max);
    let nodes = if ctx.dedicated_control_plane {
        workers + ctx.n_control_plane as f64
    } else {
        workers.max(ctx.n_control_plane as f64)
    };
    ctx.weights.flows * flows_lower_bound.unwrap_or(0) as f64 + ctx.weights.nodes * nodes
}

/// Keeps more nodes until the greedy staging goes through: while the schedule
/// stalls because the next namespace does not fit its target, the target keeps
/// one more worker that would otherwise be freed, taken from a source that can
/// release it now (not one of the sources without slack), in a zone the target
/// already spans when possible (no new flows). Feasibility comes first in the
/// objective, so a plan with more nodes beats no plan; the lower bound is
/// untouched, so the gap shows the price honestly.
fn repair_staging(ctx: &BlockContext, mut composition: Composition, mut stall: Stall) -> Option<Realized> {
    let data = &ctx.data;
    let max = ctx.policy.max_nodes_per_cluster.max(1);
    for _ in 0..data.n_nodes() {
        let StallKind::Stuck { next_namespace: Some(next), sources_without_slack } = &stall.kind else {
            return None;
        };
        let target = next.target;
        if composition.keep[target].iter().sum::<u64>() >= max {
            return None;
        }
        let stuck: BTreeSet<usize> = sources_without_slack.iter().map(|s| s.source).collect();
        let spanned: BTreeSet<&str> = (0..data.pools.len())
            .filter(|&p| composition.keep[target][p] > 0)
            .map(|p| data.pools[p].zone.as_str())
            .collect();
        let has_free =
            |p: usize| (data.pools[p].members.len() as u64) > composition.keep.iter().map(|k| k[p]).sum::<u64>();
        let demand = model_units(data.namespace_demand[next.namespace]);
        let size = |p: usize| {
            model_units(data.pools[p].allocatable)
                .iter()
                .zip(&demand)
                .map(|(a, d)| if *d > 0.0 { a / d } else { 0.0 })
                .sum::<f64>()
        };
        let best = (0..data.pools.len())
            .filter(|&p| {
                let pool = &data.pools[p];
                pool.allowed
                    && pool.role == kplan_model::NodeRole::Worker
                    && has_free(p)
                    && !stuck.contains(&pool.source)
            })
            .max_by(|&a, &b| {
                let in_zone = |p: usize| spanned.contains(data.pools[p].zone.as_str());
                in_zone(a).cmp(&in_zone(b)).then(size(a).total_cmp(&size(b))).then(b.cmp(&a))
            })?;
        composition.keep[target][best] += 1;
        match realize(ctx, composition.clone()) {
            Ok(realized) => return Some(realized),
            Err(RealizeFailure::Stall { stall: next_stall, composition: next_composition, .. }) => {
                stall = next_stall;
                composition = *next_composition;
            }
            Err(_) => return None,
        }
    }
    None
}

/// The largest staging rescue tried. On the generated M and L estates a first
/// schedule was found within 2 s for models of up to 2,182 variables and for none
/// of 2,562 or more (11 blocks); a larger model costs its whole budget for nothing
/// and the repaired plan stands.
const RESCUE_MAX_VARIABLES: usize = 2_500;

/// A schedule from the waves model alone, for an assignment the greedy waves
/// could not stage. The horizon allows one unit per wave (every schedule fits).
fn rescue_waves(
    ctx: &BlockContext,
    assignment: &Assignment,
    stall_wave: u32,
    settings: BlockSettings,
    started: Instant,
    models: &mut Vec<(String, String)>,
) -> Option<Schedule> {
    let full_horizon = (ctx.data.n_nodes() + ctx.data.n_namespaces()).min(400) as u32;
    // Its own budget (`solver.staging_seconds`): the repair already has a plan in hand.
    let budget = (settings.time_limit_seconds - started.elapsed().as_secs_f64()).min(settings.staging_seconds);
    let rescue_started = Instant::now();
    // First a short horizon (twice the waves the greedy managed): a much smaller model
    // that usually holds a schedule; then the full horizon with the time left.
    let short_horizon = (2 * stall_wave).max(wave_lower_bound(&ctx.data, ctx.budget) as u32 + 2).min(full_horizon);
    let mut horizons = vec![short_horizon, full_horizon];
    horizons.dedup();
    for (attempt, horizon) in horizons.into_iter().enumerate() {
        // The short horizon may use the whole budget (it usually holds a schedule, and
        // the larger model is harder still); the full one gets what is left, which is
        // most of it when HiGHS proves the short one infeasible (usually in milliseconds).
        let time_limit = budget - rescue_started.elapsed().as_secs_f64();
        if horizon == 0
            || time_limit < 0.05
            || WavesModel::size_estimate(&ctx.data, assignment, horizon) > RESCUE_MAX_VARIABLES
        {
            continue;
        }
        let waves_model = WavesModel::build(
            &ctx.block.key.file_name(),
            &ctx.data,
            assignment,
            ctx.n_sources(),
            &ctx.headroom,
            ctx.budget,
            horizon,
        );
        // Any schedule will do (a gap of 100% stops at the first one): the waves
        // model shortens the best candidate afterwards, warm-started from it.
        let solver_settings = SolverSettings {
            time_limit_seconds: time_limit,
            mip_rel_gap: 1.0,
            mip_abs_gap: WAVES_ABS_GAP,
            threads: settings.threads,
        };
        let result = solve_mip(&waves_model.model, None, solver_settings);
        if settings.write_models {
            models.push((
                format!("{}.staging-{}", ctx.block.key.file_name(), attempt + 1),
                with_settings(write_mps(&waves_model.model), solver_settings),
            ));
        }
        tracing::debug!(
            block = %ctx.block.key,
            status = ?result.status,
            seconds = result.seconds,
            time_limit,
            horizon,
            stall_wave,
            n_variables = waves_model.model.variables.len(),
            "staging rescue solved"
        );
        let Some(values) = result.values.as_ref() else { continue };
        let schedule = waves_model.decode(&ctx.data, values);
        if replay(&ctx.data, assignment, &schedule, ctx.n_sources(), &ctx.headroom, ctx.budget).is_ok() {
            return Some(schedule);
        }
    }
    None
}

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

fn node_ref(ctx: &BlockContext, i: usize) -> NodeRef {
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
    plan.explanation = notes.join("\n");
    let mut freed: Vec<NodeRef> = (0..data.n_nodes())
        .filter(|&i| assignment.node_destination[i] == Destination::Free)
        .map(|i| node_ref(ctx, i))
        .collect();
    freed.sort();
    plan.nodes_freed = freed;
    plan.firewall_flows = realized.flows.clone();

    // Renames.
    let placements: Vec<NamespacePlacement> = (0..data.n_namespaces())
        .map(|j| NamespacePlacement {
            from_cluster: ctx.source_id(data.namespace_source[j]).to_string(),
            namespace: ctx.namespace_name(j).to_string(),
            target_cluster: target_names[assignment.namespace_target[j]].clone(),
            sla_tier: data.namespace_sla[j],
            pods: data.namespace_demand[j].pods,
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
    for j in 0..data.n_namespaces() {
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
    for j in 0..data.n_namespaces() {
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
        };
        if keep && first_wave[s] != u32::MAX {
            precondition.before_wave = first_wave[s] as u64;
            plan.preconditions.push(precondition);
        }
    }
    plan.preconditions.sort_by(|a: &Precondition, b: &Precondition| {
        (a.before_wave, &a.cluster_id, a.kind, &a.detail).cmp(&(b.before_wave, &b.cluster_id, b.kind, &b.detail))
    });
    plan.nodes_after = assignment.node_destination.iter().filter(|d| **d != Destination::Free).count() as u64;
    plan
}
