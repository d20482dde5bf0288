//! The planner's mixed-integer models, in a small solver-neutral form.
//!
//! [`LinearModel`] is the one representation of a model: `solve.rs` feeds it to
//! HiGHS through `good_lp`, and `mps.rs` writes it out, so the solved model and
//! the exported one cannot diverge.
//!
//! Longer than 900 lines on purpose: the composition model's variables and its
//! rows are built in one place, so that every row can be read beside the
//! variables it sums (splitting it would scatter one model over several files).
//!
//! # The composition model (stage 1)
//!
//! Over node pools (`pools.rs`: identical nodes of one source cluster, zone, shape
//! and role), for every possible target `t` (one, or `ceil(nodes / max_nodes_per_cluster)`):
//!
//! | variable | kind | meaning |
//! | --- | --- | --- |
//! | `keep[p,t]` | integer `0..=n_p` | nodes of pool `p` kept in target `t` |
//! | `cp[p,t]` | integer `0..=3` | of those, control-plane nodes of `t` |
//! | `zone[z,t]` | binary | `t` keeps a node in zone `z` |
//! | `cpzone[z,t]` | binary | `t` has a control-plane node in zone `z` |
//! | `open[t]` | binary | target `t` exists (`open[0] = 1`) |
//! | `share[t,r]` | continuous | share of the block's demand of resource `r` that `t` holds (several targets only) |
//! | `pair*[a,b,t]` | continuous | the products `zone·zone`, `cpzone·zone`, `cpzone·cpzone` for zone pairs |
//!
//! Constraints: a pool's nodes are kept at most once; nodes only in zones that may
//! host the tier (other pools have no variables); control plane: `n_cp` nodes (3, or
//! 1 on a small site) in `min(n_cp, allowed zones)` distinct zones (so one per
//! zone when three zones exist), chosen among kept nodes; capacity with headroom per resource,
//! `(1 - h_r) · Σ a_{p,r} · (keep - cp·dedicated) ≥ D_r · share[t,r]`; with
//! `survive_zone_loss` the same for every zone left out; at most
//! `max_nodes_per_cluster` nodes per target, and exactly `ceil(kept / max)` targets.
//!
//! Flows: for a zone pair `{a, b}` the number of flows `flows.rs` requires (minus
//! the open ones) depends only on whether each side hosts the control plane:
//! `f00, f10, f01, f11`. The pair's cost is written exactly as
//! `f00·[a∧b] + (f10-f00)·[cp_a∧b] + (f01-f00)·[a∧cp_b] + (f11-f10-f01+f00)·[cp_a∧cp_b]`,
//! each product linearised with `v ≥ x + y - 1` (positive coefficient) or
//! `v ≤ x, v ≤ y` (negative coefficient), which is exact at binary points.
//!
//! Cuts (valid for every plan, they only tighten the relaxation):
//! - flows ≥ the fewest flows of any zone choice that can hold the demand
//!   ([`zone_choices`], an enumeration over zone sets and control-plane zones);
//! - staging ([`StagingCut`]): a source's own control-plane nodes cannot hold its
//!   namespaces in the target (they join when it is retired), and what a source's
//!   workers cannot hold twice (a moving namespace counts on both sides) other
//!   sources' kept nodes must.
//!
//! When a single target already needs fewer flows than any two targets could, the
//! model is built for one target only (exact: a second target cannot be better).
//!
//! # The objective and its weights
//!
//! `objective = W_flows · new flows + W_nodes · nodes kept + W_waves · waves`, with
//! `W_waves = 1`, `W_nodes = N + M + 1` and `W_flows = W_nodes · (N + 1)`, where `N`
//! is the block's node count and `M` its count of namespaces that move.
//! Every wave moves at least one node or namespace, so a plan has at most `N + M`
//! waves: one node kept more costs more than any number of waves. A plan keeps
//! at most `N` nodes, so `W_nodes · N + (N + M) < W_flows`: one flow more costs more
//! than any nodes-and-waves difference. The weighted order is therefore exactly
//! the lexicographic order of the contract (new flows, then nodes kept, then waves).
//!
//! The composition model carries the flows and nodes terms; the waves are planned
//! afterwards for the chosen composition (`waves.rs`: greedy list scheduling, then
//! the time-indexed waves model when the schedule is longer than the bound below
//! and the model is small enough). The two stages are exact for the first two
//! terms; for the waves they are exact whenever the schedule meets the wave
//! bound, which the reported gap shows. Because every node and every
//! moving namespace must move, `waves ≥ max(ceil(N / node budget), 2 + ceil(M+ /
//! namespace budget))` for any composition (`M+`: namespaces with demand, which
//! cannot move in wave 1 nor in the last wave of their source); the reported lower
//! bound is the composition model's dual bound plus that wave bound, so it is a
//! proved bound on the whole lexicographic objective.
//!
//! HiGHS gets `mip_rel_gap = 0` and `mip_abs_gap = W_nodes · max(0.5, mip_gap ·
//! nodes kept)`: a relative gap on this objective would let the flows term hide
//! hundreds of extra nodes, so the policy's `mip_gap` applies to the nodes kept.

// Resource, zone and wave indexes address several parallel arrays at once.
#![allow(clippy::needless_range_loop)]

use crate::headroom::{fits_one, usable};
use std::collections::BTreeMap;

use kplan_model::Resources;

/// One variable of a [`LinearModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVariable {
    /// ASCII, no spaces (it is written to MPS as is).
    pub name: String,
    pub lower: f64,
    pub upper: f64,
    pub integer: bool,
    /// Coefficient in the objective (minimised).
    pub objective: f64,
}

/// One row: `lower <= Σ coefficient · variable <= upper` (either side may be infinite).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConstraint {
    pub name: String,
    pub terms: Vec<(usize, f64)>,
    pub lower: f64,
    pub upper: f64,
}

/// A mixed-integer linear model, minimised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinearModel {
    pub name: String,
    pub variables: Vec<ModelVariable>,
    pub constraints: Vec<ModelConstraint>,
    /// A constant added to the objective.
    pub objective_offset: f64,
}

impl LinearModel {
    pub fn new(name: impl Into<String>) -> Self {
        LinearModel { name: name.into(), ..LinearModel::default() }
    }

    pub fn add_variable(
        &mut self,
        name: impl Into<String>,
        lower: f64,
        upper: f64,
        integer: bool,
        objective: f64,
    ) -> usize {
        self.variables.push(ModelVariable { name: name.into(), lower, upper, integer, objective });
        self.variables.len() - 1
    }

    pub fn add_binary(&mut self, name: impl Into<String>, objective: f64) -> usize {
        self.add_variable(name, 0.0, 1.0, true, objective)
    }

    pub fn add_constraint(&mut self, name: impl Into<String>, terms: Vec<(usize, f64)>, lower: f64, upper: f64) {
        let terms = merge_terms(terms);
        self.constraints.push(ModelConstraint { name: name.into(), terms, lower, upper });
    }

    pub fn add_le(&mut self, name: impl Into<String>, terms: Vec<(usize, f64)>, upper: f64) {
        self.add_constraint(name, terms, f64::NEG_INFINITY, upper);
    }

    pub fn add_ge(&mut self, name: impl Into<String>, terms: Vec<(usize, f64)>, lower: f64) {
        self.add_constraint(name, terms, lower, f64::INFINITY);
    }

    pub fn add_eq(&mut self, name: impl Into<String>, terms: Vec<(usize, f64)>, value: f64) {
        self.add_constraint(name, terms, value, value);
    }

    pub fn n_integer(&self) -> usize {
        self.variables.iter().filter(|v| v.integer).count()
    }

    pub fn n_nonzeros(&self) -> usize {
        self.constraints.iter().map(|c| c.terms.len()).sum()
    }

    /// The objective at `values` (offset included).
    pub fn objective_value(&self, values: &[f64]) -> f64 {
        self.objective_offset + self.variables.iter().zip(values).map(|(v, x)| v.objective * x).sum::<f64>()
    }

    /// The first bound, integrality or row that `values` violates beyond `tolerance`.
    pub fn first_violation(&self, values: &[f64], tolerance: f64) -> Option<String> {
        if values.len() != self.variables.len() {
            return Some(format!("{} values for {} variables", values.len(), self.variables.len()));
        }
        for (variable, &x) in self.variables.iter().zip(values) {
            if x < variable.lower - tolerance || x > variable.upper + tolerance {
                return Some(format!("{} = {x} outside [{}, {}]", variable.name, variable.lower, variable.upper));
            }
            if variable.integer && (x - x.round()).abs() > tolerance {
                return Some(format!("{} = {x} is not integral", variable.name));
            }
        }
        for row in &self.constraints {
            let activity: f64 = row.terms.iter().map(|&(j, a)| a * values[j]).sum();
            let scale = 1.0 + activity.abs();
            if activity < row.lower - tolerance * scale || activity > row.upper + tolerance * scale {
                return Some(format!("{}: {activity} outside [{}, {}]", row.name, row.lower, row.upper));
            }
        }
        None
    }
}

/// Sorts terms by variable and adds up duplicates; drops zero coefficients.
fn merge_terms(mut terms: Vec<(usize, f64)>) -> Vec<(usize, f64)> {
    terms.sort_by_key(|&(j, _)| j);
    let mut merged: Vec<(usize, f64)> = Vec::with_capacity(terms.len());
    for (j, a) in terms {
        match merged.last_mut() {
            Some(last) if last.0 == j => last.1 += a,
            _ => merged.push((j, a)),
        }
    }
    merged.retain(|&(_, a)| a != 0.0);
    merged
}

/// The weights of the lexicographic objective (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub flows: f64,
    pub nodes: f64,
    pub waves: f64,
}

impl Weights {
    /// For a block of `n_nodes` nodes and `n_namespaces` namespaces that move.
    pub fn for_block(n_nodes: usize, n_namespaces: usize) -> Weights {
        let nodes = (n_nodes + n_namespaces + 1) as f64;
        Weights { flows: nodes * (n_nodes as f64 + 1.0), nodes, waves: 1.0 }
    }

    pub fn objective(&self, flows: usize, nodes_kept: usize, waves: usize) -> f64 {
        self.flows * flows as f64 + self.nodes * nodes_kept as f64 + self.waves * waves as f64
    }
}

/// Resources in the model's units: cores, GiB, pods.
pub fn model_units(resources: Resources) -> [f64; 3] {
    [resources.cpu_millis as f64 / 1000.0, resources.memory_bytes as f64 / (1u64 << 30) as f64, resources.pods as f64]
}

pub const RESOURCE_NAMES: [&str; 3] = ["cpu", "memory", "pods"];

/// Flow counts of one zone pair `{a, b}` (`a < b`), by control-plane status:
/// `[neither, a only, b only, both]`.
pub type PairFlows = [u64; 4];

/// Which nodes each target keeps, as counts per pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Composition {
    /// `keep[t][p]`: nodes of pool `p` kept by target `t` (control plane included).
    pub keep: Vec<Vec<u64>>,
    /// `control_plane[t][p]`: of those, control-plane nodes of `t`.
    pub control_plane: Vec<Vec<u64>>,
}

impl Composition {
    pub fn n_targets(&self) -> usize {
        self.keep.len()
    }

    /// Moves control-plane roles onto smaller workers of the same target, zone
    /// and source, where that can only help. The models count nodes, so among
    /// equal plans they may put a control plane on a large node; a platform
    /// team would not. The control plane keeps its zones (same flows) and its
    /// source gives up less. Either a smaller kept worker takes the role and
    /// the larger node holds workloads instead (it offers every resource and
    /// placement-class row at least what the smaller one did), or, with
    /// dedicated control planes (their capacity counts for nothing), a smaller
    /// node the plan frees is kept instead of the larger one, which is freed.
    pub fn prefer_small_control_planes(&mut self, input: &CompositionInput) {
        let kept_anywhere = |composition: &Composition, p: usize| -> u64 {
            (0..composition.n_targets()).map(|t| composition.keep[t][p]).sum()
        };
        let size = |p: usize| input.pools[p].allocatable[0] + input.pools[p].allocatable[1] / 4.0;
        let at_least = |a: usize, b: usize| {
            (0..3).all(|r| input.pools[a].allocatable[r] >= input.pools[b].allocatable[r])
                && input.class_rows.iter().all(|row| row.pool_supply[a] >= row.pool_supply[b])
        };
        for t in 0..self.n_targets() {
            loop {
                let this = &*self;
                let swap = (0..input.pools.len())
                    .filter(|&a| this.control_plane[t][a] > 0)
                    .flat_map(|a| (0..input.pools.len()).map(move |b| (a, b)))
                    .filter_map(|(a, b)| {
                        let (pa, pb) = (&input.pools[a], &input.pools[b]);
                        if a == b
                            || !pb.control_plane_eligible
                            || pb.zone != pa.zone
                            || pb.source != pa.source
                            || size(b) >= size(a)
                        {
                            return None;
                        }
                        if this.keep[t][b] > this.control_plane[t][b] && at_least(a, b) {
                            Some((a, b, false))
                        } else if input.dedicated_control_plane && kept_anywhere(this, b) < pb.count {
                            Some((a, b, true))
                        } else {
                            None
                        }
                    })
                    .min_by(|&(a1, b1, _), &(a2, b2, _)| size(b1).total_cmp(&size(b2)).then((a1, b1).cmp(&(a2, b2))));
                let Some((a, b, replace)) = swap else { break };
                self.control_plane[t][a] -= 1;
                self.control_plane[t][b] += 1;
                if replace {
                    self.keep[t][a] -= 1;
                    self.keep[t][b] += 1;
                }
            }
        }
    }

    pub fn nodes_kept(&self) -> u64 {
        self.keep.iter().flatten().sum()
    }
}

/// What the composition model needs to know about a block.
#[derive(Debug, Clone)]
pub struct CompositionInput {
    pub name: String,
    /// Per pool: zone index (into `zones`) if the zone may host the tier, node count, shape.
    pub pools: Vec<PoolInput>,
    pub zones: Vec<String>,
    /// Block demand (namespaces that move), model units.
    pub demand: [f64; 3],
    pub headroom: [f64; 3],
    /// Control-plane nodes per target (3, or 1 on a small site).
    pub n_control_plane: usize,
    /// Distinct zones the control plane must span (`min(n_control_plane, allowed zones)`).
    pub control_plane_zones: usize,
    /// Control-plane capacity does not count for workloads.
    pub dedicated_control_plane: bool,
    pub survive_zone_loss: bool,
    pub max_nodes_per_target: u64,
    pub max_targets: usize,
    /// Per zone pair `(a, b)`, `a < b`: flow counts.
    pub pair_flows: BTreeMap<(usize, usize), PairFlows>,
    pub weights: Weights,
    /// A proved lower bound on the block's new flows ([`zone_choices`]), added
    /// to the model as a cut.
    pub flows_lower_bound: Option<u64>,
    /// Necessary conditions for the waves to be able to start and go on.
    pub staging_cuts: Vec<StagingCut>,
    /// Placement-class rows (`classes.rs`).
    pub class_rows: Vec<ClassInput>,
    /// Per source (model units, per resource): what its workers can give up
    /// while it still holds all its demand with headroom, `(1 - h) W_s - D_s`
    /// (`f64::INFINITY` where the block does not check the source). A target's
    /// control plane joins before anything moves into it, so the sources give
    /// its nodes up while they still run everything.
    pub source_slack: Vec<[f64; 3]>,
    /// The same per placement-class row (`[source][row]`, in the row's unit).
    pub source_class_slack: Vec<Vec<f64>>,
}

/// A placement-class row for the composition: the kept nodes of the pools
/// that offer it hold what the pods confined to those nodes need, with the
/// row's headroom. With several targets the row holds over all of them
/// (a necessary condition: the confined namespaces may all go to one target;
/// `realize.rs` packs namespaces by row and checks every target exactly).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassInput {
    /// Per pool: what one of its nodes offers, in the row's unit.
    pub pool_supply: Vec<f64>,
    pub need: f64,
    pub headroom: f64,
}

/// Zones and control-plane zones of one target, with the flows they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneChoice {
    pub zones: Vec<usize>,
    pub control_plane_zones: Vec<usize>,
    pub flows: u64,
}

/// The most allowed zones [`zone_choices`] enumerates (2^n zone sets).
pub const MAX_ENUMERATED_ZONES: usize = 10;

/// Every (zones, control-plane zones) choice for a single target whose zones
/// could hold the demand (all their nodes, less the smallest node of each
/// control-plane zone, with headroom, and after losing any one zone when
/// asked), fewest flows first; and a proved lower bound on the block's flows:
/// one target needs at least the flows of the cheapest such choice; two or more
/// targets need at least twice the flows of the cheapest choice that merely
/// spreads a control plane. `None` with more than [`MAX_ENUMERATED_ZONES`] zones.
pub fn zone_choices(input: &CompositionInput) -> Option<ZoneAnalysis> {
    let n_zones = input.zones.len();
    if n_zones == 0 || n_zones > MAX_ENUMERATED_ZONES {
        return None;
    }
    let needed_zones = input.control_plane_zones.max(1);
    let mut capacity = vec![[0.0f64; 3]; n_zones];
    let mut smallest = vec![[f64::INFINITY; 3]; n_zones];
    for pool in &input.pools {
        let Some(z) = pool.zone else { continue };
        if pool.count == 0 {
            continue;
        }
        for r in 0..3 {
            capacity[z][r] += pool.count as f64 * pool.allocatable[r];
            smallest[z][r] = smallest[z][r].min(pool.allocatable[r]);
        }
    }
    let holds = |total: f64, r: usize| fits_one(input.demand[r], input.headroom[r], total);
    let mut choices = Vec::new();
    let mut spread_minimum = u64::MAX;
    for mask in 1u32..(1 << n_zones) {
        let zones: Vec<usize> = (0..n_zones).filter(|&z| mask & (1 << z) != 0).collect();
        if zones.len() < needed_zones {
            continue;
        }
        // Control-plane zone subsets of the right size.
        let mut cp_mask = mask;
        loop {
            if cp_mask.count_ones() as usize == needed_zones {
                let is_cp = |z: usize| cp_mask & (1 << z) != 0;
                let mut flows = 0u64;
                for (i, &a) in zones.iter().enumerate() {
                    for &b in &zones[i + 1..] {
                        if let Some(f) = input.pair_flows.get(&(a, b)) {
                            flows += f[usize::from(is_cp(a)) + 2 * usize::from(is_cp(b))];
                        }
                    }
                }
                spread_minimum = spread_minimum.min(flows);
                // Capacity: all nodes of the zones, less the control plane.
                let mut reserved = vec![[0.0f64; 3]; n_zones];
                if input.dedicated_control_plane {
                    for &z in &zones {
                        if is_cp(z) {
                            reserved[z] = smallest[z];
                        }
                    }
                }
                let extra = input.n_control_plane.saturating_sub(needed_zones) as f64;
                let mut ok = true;
                for r in 0..3 {
                    if input.demand[r] <= 0.0 {
                        continue;
                    }
                    let extra_reserve = if input.dedicated_control_plane {
                        extra * zones.iter().map(|&z| smallest[z][r]).fold(f64::INFINITY, f64::min)
                    } else {
                        0.0
                    };
                    let total: f64 =
                        zones.iter().map(|&z| capacity[z][r] - reserved[z][r]).sum::<f64>() - extra_reserve;
                    ok &= holds(total, r);
                    if input.survive_zone_loss {
                        for &z in &zones {
                            ok &= holds(total - (capacity[z][r] - reserved[z][r]), r);
                        }
                    }
                }
                if ok {
                    let control_plane_zones = zones.iter().copied().filter(|&z| is_cp(z)).collect();
                    choices.push(ZoneChoice { zones: zones.clone(), control_plane_zones, flows });
                }
            }
            if cp_mask == 0 {
                break;
            }
            cp_mask = (cp_mask - 1) & mask;
        }
    }
    choices.sort_by(|a, b| {
        (a.flows, a.zones.len(), &a.zones, &a.control_plane_zones).cmp(&(
            b.flows,
            b.zones.len(),
            &b.zones,
            &b.control_plane_zones,
        ))
    });
    let single = choices.first().map_or(u64::MAX, |c| c.flows);
    let bound = if input.max_targets > 1 { single.min(spread_minimum.saturating_mul(2)) } else { single };
    let bound = if bound == u64::MAX { 0 } else { bound };
    Some(ZoneAnalysis { flows_lower_bound: bound, spread_minimum, choices })
}

/// What [`zone_choices`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneAnalysis {
    /// A proved lower bound on the block's new flows.
    pub flows_lower_bound: u64,
    /// The fewest flows of any target (any zones that can spread a control plane).
    pub spread_minimum: u64,
    /// Single-target choices that pass the capacity relaxation, fewest flows first.
    pub choices: Vec<ZoneChoice>,
}

/// The flows a composition needs, by the model's pair counts.
pub fn composition_flows(input: &CompositionInput, composition: &Composition) -> u64 {
    let mut total = 0;
    for t in 0..composition.n_targets() {
        let mut used = vec![false; input.zones.len()];
        let mut control_plane = vec![false; input.zones.len()];
        for (p, pool) in input.pools.iter().enumerate() {
            if let Some(z) = pool.zone {
                used[z] |= composition.keep[t][p] > 0;
                control_plane[z] |= composition.control_plane[t][p] > 0;
            }
        }
        for (&(a, b), flows) in &input.pair_flows {
            if used[a] && used[b] {
                total += flows[usize::from(control_plane[a]) + 2 * usize::from(control_plane[b])];
            }
        }
    }
    total
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolInput {
    /// `None`: the pool's zone may not host the tier (its nodes are freed).
    pub zone: Option<usize>,
    pub count: u64,
    pub allocatable: [f64; 3],
    /// Index of the pool's source cluster, and whether its nodes are the
    /// source's workers (not its control plane).
    pub source: usize,
    pub source_worker: bool,
    /// The pool's nodes may be a target's control plane: source workers
    /// (a source's control-plane nodes leave only when it retires), and
    /// plain ones where the block has plain workers in enough zones
    /// (`Placement::special`).
    pub control_plane_eligible: bool,
}

/// A staging cut: a necessary condition for the waves, on the kept workload
/// capacity that is not a source's own (model units, with headroom):
/// `Σ_{p outside} (1 - h) a_p (keep - cp·dedicated) ≥ rhs`.
///
/// A source's control-plane nodes move only when it is retired, after all its
/// namespaces: so the nodes that hold its namespaces in the target exclude them
/// (`rhs = D_s`, outside = all but the source's control-plane pools). While a
/// namespace of the source moves, it counts in the source, on workers that have
/// not moved, and in the target: the source's workers hold at most
/// `(1 - h) W_s` of both copies, so the rest must come from other sources'
/// nodes (`rhs = max(2 q_s, D_s + m_s) - (1 - h) W_s`, with `q_s` the largest
/// and `m_s` the smallest of its namespaces, outside = other sources' pools).
///
/// The same holds for a placement-class row (`class_row`, an index into
/// `class_rows`): while a namespace with pods confined to the row's nodes
/// moves, the source's own nodes of the set and the target's together hold
/// both copies, so other sources' kept nodes of the set must hold what the
/// source's cannot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StagingCut {
    pub source: usize,
    /// The base resource (0 cpu, 1 memory, 2 pods), when `class_row` is `None`.
    pub resource: usize,
    pub rhs: f64,
    /// Leave out the source's workers too (not only its control plane).
    pub exclude_workers: bool,
    pub class_row: Option<usize>,
}

/// Column indexes of the composition model, to encode a warm start and decode a solution.
#[derive(Debug, Clone)]
pub struct CompositionModel {
    pub model: LinearModel,
    keep: Vec<Vec<Option<usize>>>,
    control_plane: Vec<Vec<Option<usize>>>,
    zone_used: Vec<Vec<usize>>,
    control_plane_zone: Vec<Vec<usize>>,
    open: Vec<usize>,
    share: Vec<Vec<usize>>,
    pairs: Vec<PairColumns>,
}

#[derive(Debug, Clone)]
struct PairColumns {
    target: usize,
    a: usize,
    b: usize,
    /// Variable and the two factors it is the product of.
    products: Vec<(usize, Factor, Factor)>,
}

#[derive(Debug, Clone, Copy)]
enum Factor {
    Zone(usize),
    ControlPlane(usize),
}

impl CompositionModel {
    pub fn build(input: &CompositionInput) -> CompositionModel {
        let n_targets = input.max_targets.max(1);
        let n_zones = input.zones.len();
        let mut model = LinearModel::new(format!("{}-composition", input.name));
        let w = input.weights;

        let mut keep = vec![vec![None; input.pools.len()]; n_targets];
        let mut control_plane = vec![vec![None; input.pools.len()]; n_targets];
        let mut zone_used = vec![Vec::new(); n_targets];
        let mut control_plane_zone = vec![Vec::new(); n_targets];
        let mut open = Vec::new();
        let mut share = vec![Vec::new(); n_targets];

        for t in 0..n_targets {
            let lower = if t == 0 { 1.0 } else { 0.0 };
            open.push(model.add_variable(format!("open_t{t}"), lower, 1.0, true, 0.0));
            for (p, pool) in input.pools.iter().enumerate() {
                if pool.zone.is_none() || pool.count == 0 {
                    continue;
                }
                let upper = pool.count.min(input.max_nodes_per_target) as f64;
                keep[t][p] = Some(model.add_variable(format!("keep_p{p}_t{t}"), 0.0, upper, true, w.nodes));
                // A target's control plane is made of source workers: a source's own
                // control-plane nodes leave only when it retires, and nothing may
                // join the target before its control plane (`waves.rs`).
                if input.n_control_plane > 0 && pool.control_plane_eligible {
                    let upper = pool.count.min(input.n_control_plane as u64) as f64;
                    control_plane[t][p] = Some(model.add_variable(format!("cp_p{p}_t{t}"), 0.0, upper, true, 0.0));
                }
            }
            for z in 0..n_zones {
                zone_used[t].push(model.add_binary(format!("zone_z{z}_t{t}"), 0.0));
                control_plane_zone[t].push(model.add_binary(format!("cpzone_z{z}_t{t}"), 0.0));
            }
            if n_targets > 1 {
                for r in 0..3 {
                    share[t].push(model.add_variable(format!("share_r{r}_t{t}"), 0.0, 1.0, false, 0.0));
                }
            }
        }

        // A pool's nodes are kept at most once.
        if n_targets > 1 {
            for (p, pool) in input.pools.iter().enumerate() {
                let terms: Vec<(usize, f64)> = (0..n_targets).filter_map(|t| keep[t][p].map(|j| (j, 1.0))).collect();
                if !terms.is_empty() {
                    model.add_le(format!("pool_p{p}"), terms, pool.count as f64);
                }
            }
        }

        let mut pairs = Vec::new();
        for t in 0..n_targets {
            for (p, pool) in input.pools.iter().enumerate() {
                let (Some(k), Some(z)) = (keep[t][p], pool.zone) else { continue };
                let upper = pool.count.min(input.max_nodes_per_target) as f64;
                model.add_le(format!("zonelink_p{p}_t{t}"), vec![(k, 1.0), (zone_used[t][z], -upper)], 0.0);
                if let Some(c) = control_plane[t][p] {
                    model.add_le(format!("cpkept_p{p}_t{t}"), vec![(c, 1.0), (k, -1.0)], 0.0);
                }
            }
            for z in 0..n_zones {
                model.add_le(format!("zoneopen_z{z}_t{t}"), vec![(zone_used[t][z], 1.0), (open[t], -1.0)], 0.0);
                model.add_le(
                    format!("cpzoneused_z{z}_t{t}"),
                    vec![(control_plane_zone[t][z], 1.0), (zone_used[t][z], -1.0)],
                    0.0,
                );
            }

            // Control plane: n_cp nodes in control_plane_zones distinct zones.
            let cp_terms: Vec<(usize, f64)> = control_plane[t].iter().flatten().map(|&j| (j, 1.0)).collect();
            let mut row = cp_terms;
            row.push((open[t], -(input.n_control_plane as f64)));
            model.add_eq(format!("cpcount_t{t}"), row, 0.0);
            for z in 0..n_zones {
                let in_zone: Vec<(usize, f64)> = input
                    .pools
                    .iter()
                    .enumerate()
                    .filter(|(_, pool)| pool.zone == Some(z))
                    .filter_map(|(p, _)| control_plane[t][p].map(|j| (j, 1.0)))
                    .collect();
                let mut lower = in_zone.clone();
                lower.push((control_plane_zone[t][z], -1.0));
                model.add_ge(format!("cpzonemin_z{z}_t{t}"), lower, 0.0);
                let mut upper = in_zone;
                upper.push((control_plane_zone[t][z], -(input.n_control_plane as f64)));
                model.add_le(format!("cpzonemax_z{z}_t{t}"), upper, 0.0);
            }
            let mut zones_row: Vec<(usize, f64)> = control_plane_zone[t].iter().map(|&j| (j, 1.0)).collect();
            zones_row.push((open[t], -(input.control_plane_zones as f64)));
            model.add_eq(format!("cpzones_t{t}"), zones_row, 0.0);

            // Capacity with headroom, and after the loss of any one zone.
            let lost_zones: Vec<Option<usize>> = if input.survive_zone_loss {
                std::iter::once(None).chain((0..n_zones).map(Some)).collect()
            } else {
                vec![None]
            };
            for lost in lost_zones {
                for r in 0..3 {
                    if input.demand[r] <= 0.0 {
                        continue;
                    }
                    let factor = usable(input.headroom[r], 1.0);
                    let mut row = Vec::new();
                    for (p, pool) in input.pools.iter().enumerate() {
                        if pool.zone.is_none() || pool.zone == lost {
                            continue;
                        }
                        let a = factor * pool.allocatable[r];
                        if let Some(k) = keep[t][p] {
                            row.push((k, a));
                        }
                        if input.dedicated_control_plane
                            && let Some(c) = control_plane[t][p]
                        {
                            row.push((c, -a));
                        }
                    }
                    let name = match lost {
                        None => format!("capacity_r{r}_t{t}"),
                        Some(z) => format!("zoneloss_z{z}_r{r}_t{t}"),
                    };
                    if n_targets > 1 {
                        row.push((share[t][r], -input.demand[r]));
                        model.add_ge(name, row, 0.0);
                    } else {
                        model.add_ge(name, row, input.demand[r]);
                    }
                }
            }

            // Kubernetes' tested limit.
            let mut row: Vec<(usize, f64)> = keep[t].iter().flatten().map(|&j| (j, 1.0)).collect();
            row.push((open[t], -(input.max_nodes_per_target as f64)));
            model.add_le(format!("maxnodes_t{t}"), row, 0.0);

            // Flows per zone pair.
            for (&(a, b), flows) in &input.pair_flows {
                let [f00, f10, f01, f11] = flows.map(|f| f as f64);
                let terms = [
                    (f00, Factor::Zone(a), Factor::Zone(b)),
                    (f10 - f00, Factor::ControlPlane(a), Factor::Zone(b)),
                    (f01 - f00, Factor::Zone(a), Factor::ControlPlane(b)),
                    (f11 - f10 - f01 + f00, Factor::ControlPlane(a), Factor::ControlPlane(b)),
                ];
                let mut products = Vec::new();
                for (i, (coefficient, x, y)) in terms.into_iter().enumerate() {
                    if coefficient == 0.0 {
                        continue;
                    }
                    let v =
                        model.add_variable(format!("pair{i}_z{a}_z{b}_t{t}"), 0.0, 1.0, false, w.flows * coefficient);
                    let column = |f: Factor| match f {
                        Factor::Zone(z) => zone_used[t][z],
                        Factor::ControlPlane(z) => control_plane_zone[t][z],
                    };
                    if coefficient > 0.0 {
                        model.add_ge(
                            format!("pairlo{i}_z{a}_z{b}_t{t}"),
                            vec![(v, 1.0), (column(x), -1.0), (column(y), -1.0)],
                            -1.0,
                        );
                    } else {
                        model.add_le(format!("pairx{i}_z{a}_z{b}_t{t}"), vec![(v, 1.0), (column(x), -1.0)], 0.0);
                        model.add_le(format!("pairy{i}_z{a}_z{b}_t{t}"), vec![(v, 1.0), (column(y), -1.0)], 0.0);
                    }
                    products.push((v, x, y));
                }
                pairs.push(PairColumns { target: t, a, b, products });
            }
        }

        // Placement classes: the nodes some pods are confined to.
        for (k, class) in input.class_rows.iter().enumerate() {
            let factor = usable(class.headroom, 1.0);
            let mut row = Vec::new();
            for t in 0..n_targets {
                for (p, &supply) in class.pool_supply.iter().enumerate() {
                    if supply <= 0.0 {
                        continue;
                    }
                    if let Some(j) = keep[t][p] {
                        row.push((j, factor * supply));
                    }
                    if input.dedicated_control_plane
                        && let Some(c) = control_plane[t][p]
                    {
                        row.push((c, -factor * supply));
                    }
                }
            }
            model.add_ge(format!("class{k}"), row, class.need);
        }

        // Staging: what a source's own workers cannot hold twice, nodes from
        // elsewhere must.
        for cut in &input.staging_cuts {
            let r = cut.resource;
            let class = cut.class_row.map(|k| &input.class_rows[k]);
            let factor = usable(class.map_or(input.headroom[r], |c| c.headroom), 1.0);
            let mut row = Vec::new();
            for t in 0..n_targets {
                for (p, pool) in input.pools.iter().enumerate() {
                    if pool.source == cut.source && (cut.exclude_workers || !pool.source_worker) {
                        continue;
                    }
                    let a = factor * class.map_or(pool.allocatable[r], |c| c.pool_supply[p]);
                    if a == 0.0 {
                        continue;
                    }
                    if let Some(k) = keep[t][p] {
                        row.push((k, a));
                    }
                    if input.dedicated_control_plane
                        && let Some(c) = control_plane[t][p]
                    {
                        row.push((c, -a));
                    }
                }
            }
            let kind = if cut.exclude_workers { "others" } else { "nocp" };
            let name = match cut.class_row {
                Some(k) => format!("staging_{kind}_s{}_class{k}", cut.source),
                None => format!("staging_{kind}_s{}_r{r}", cut.source),
            };
            model.add_ge(name, row, cut.rhs);
        }

        // Control-plane nodes leave their sources before any namespace has
        // moved (nothing joins a target before its control plane).
        for (source, slack) in input.source_slack.iter().enumerate() {
            for r in 0..3 {
                if !slack[r].is_finite() {
                    continue;
                }
                let factor = usable(input.headroom[r], 1.0);
                let row: Vec<(usize, f64)> = (0..n_targets)
                    .flat_map(|t| {
                        input.pools.iter().enumerate().filter_map(move |(p, pool)| {
                            (pool.source == source && pool.control_plane_eligible).then_some((t, p))
                        })
                    })
                    .filter_map(|(t, p)| control_plane[t][p].map(|c| (c, factor * input.pools[p].allocatable[r])))
                    .filter(|&(_, a)| a > 0.0)
                    .collect();
                if !row.is_empty() {
                    model.add_le(format!("cpslack_s{source}_r{r}"), row, slack[r].max(0.0));
                }
            }
        }
        for (source, slacks) in input.source_class_slack.iter().enumerate() {
            for (k, &slack) in slacks.iter().enumerate() {
                if !slack.is_finite() {
                    continue;
                }
                let class = &input.class_rows[k];
                let factor = usable(class.headroom, 1.0);
                let row: Vec<(usize, f64)> = (0..n_targets)
                    .flat_map(|t| (0..input.pools.len()).map(move |p| (t, p)))
                    .filter(|&(_, p)| input.pools[p].source == source && input.pools[p].control_plane_eligible)
                    .filter_map(|(t, p)| control_plane[t][p].map(|c| (c, factor * class.pool_supply[p])))
                    .filter(|&(_, a)| a > 0.0)
                    .collect();
                if !row.is_empty() {
                    model.add_le(format!("cpslack_s{source}_class{k}"), row, slack.max(0.0));
                }
            }
        }

        // The proved lower bound on flows, as a cut.
        if let Some(bound) = input.flows_lower_bound
            && bound > 0
        {
            let row: Vec<(usize, f64)> = pairs
                .iter()
                .flat_map(|pair| pair.products.iter().map(|&(v, ..)| (v, model.variables[v].objective / w.flows)))
                .collect();
            model.add_ge("flowsbound", row, bound as f64);
        }

        if n_targets > 1 {
            for r in 0..3 {
                if input.demand[r] <= 0.0 {
                    continue;
                }
                let row = (0..n_targets).map(|t| (share[t][r], 1.0)).collect();
                model.add_eq(format!("share_r{r}"), row, 1.0);
                for t in 0..n_targets {
                    model.add_le(format!("shareopen_r{r}_t{t}"), vec![(share[t][r], 1.0), (open[t], -1.0)], 0.0);
                }
            }
            for t in 1..n_targets {
                model.add_ge(format!("openorder_t{t}"), vec![(open[t - 1], 1.0), (open[t], -1.0)], 0.0);
            }
            // Exactly ceil(kept / max) targets.
            let max = input.max_nodes_per_target as f64;
            let mut row: Vec<(usize, f64)> = keep.iter().flatten().flatten().map(|&j| (j, 1.0)).collect();
            row.extend(open.iter().map(|&j| (j, -max)));
            model.add_ge("targetcount", row, 1.0 - max);
        }

        CompositionModel { model, keep, control_plane, zone_used, control_plane_zone, open, share, pairs }
    }

    /// A full assignment of the model's columns for `composition` (the warm start).
    /// `None` when the composition does not fit the model's shape.
    pub fn encode(&self, input: &CompositionInput, composition: &Composition) -> Option<Vec<f64>> {
        let n_targets = self.open.len();
        if composition.n_targets() > n_targets {
            return None;
        }
        let mut values = vec![0.0; self.model.variables.len()];
        let demand_share = shares_for(input, composition);
        for t in 0..n_targets {
            let active = t < composition.n_targets();
            values[self.open[t]] = if active { 1.0 } else { 0.0 };
            if !active {
                continue;
            }
            for p in 0..input.pools.len() {
                let kept = composition.keep[t][p];
                let cp = composition.control_plane[t][p];
                match self.keep[t][p] {
                    Some(j) => values[j] = kept as f64,
                    None if kept > 0 => return None,
                    None => {}
                }
                match self.control_plane[t][p] {
                    Some(j) => values[j] = cp as f64,
                    None if cp > 0 => return None,
                    None => {}
                }
                if let Some(z) = input.pools[p].zone {
                    if kept > 0 {
                        values[self.zone_used[t][z]] = 1.0;
                    }
                    if cp > 0 {
                        values[self.control_plane_zone[t][z]] = 1.0;
                    }
                }
            }
            if n_targets > 1 {
                for r in 0..3 {
                    values[self.share[t][r]] = demand_share[t][r];
                }
            }
        }
        for pair in &self.pairs {
            for &(v, x, y) in &pair.products {
                let value = |f: Factor, z: usize| match f {
                    Factor::Zone(_) => values[self.zone_used[pair.target][z]],
                    Factor::ControlPlane(_) => values[self.control_plane_zone[pair.target][z]],
                };
                let xa = value(x, pair.a);
                let yb = value(y, pair.b);
                values[v] = xa.min(yb);
            }
        }
        Some(values)
    }

    /// The composition a solution describes (values rounded to integers).
    pub fn decode(&self, input: &CompositionInput, values: &[f64]) -> Composition {
        let mut composition = Composition::default();
        for t in 0..self.open.len() {
            if values[self.open[t]] < 0.5 {
                continue;
            }
            let round = |j: Option<usize>| j.map(|j| values[j].round().max(0.0) as u64).unwrap_or(0);
            composition.keep.push((0..input.pools.len()).map(|p| round(self.keep[t][p])).collect());
            composition.control_plane.push((0..input.pools.len()).map(|p| round(self.control_plane[t][p])).collect());
        }
        composition
    }
}

/// Demand shares per target that a composition can hold (capacity-proportional).
fn shares_for(input: &CompositionInput, composition: &Composition) -> Vec<[f64; 3]> {
    let n = composition.n_targets();
    let mut shares = vec![[0.0; 3]; n];
    for r in 0..3 {
        let capacities: Vec<f64> = (0..n)
            .map(|t| {
                input
                    .pools
                    .iter()
                    .enumerate()
                    .map(|(p, pool)| {
                        let counted = composition.keep[t][p]
                            - if input.dedicated_control_plane { composition.control_plane[t][p] } else { 0 };
                        counted as f64 * pool.allocatable[r]
                    })
                    .sum()
            })
            .collect();
        let total: f64 = capacities.iter().sum();
        for t in 0..n {
            shares[t][r] = if total > 0.0 { capacities[t] / total } else { 1.0 / n as f64 };
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_keep_the_lexicographic_order() {
        let w = Weights::for_block(10, 5);
        // One flow fewer beats keeping every node and the most waves possible.
        assert!(w.objective(1, 0, 0) > w.objective(0, 10, 15));
        // One node fewer beats the most waves possible.
        assert!(w.objective(0, 1, 0) > w.objective(0, 0, 15));
    }

    fn input(n_zones: usize, pair_flows: BTreeMap<(usize, usize), PairFlows>) -> CompositionInput {
        CompositionInput {
            name: "t".into(),
            pools: (0..n_zones)
                .map(|z| PoolInput {
                    zone: Some(z),
                    count: 4,
                    allocatable: [8.0, 32.0, 110.0],
                    source: 0,
                    source_worker: true,
                    control_plane_eligible: true,
                })
                .collect(),
            zones: (0..n_zones).map(|z| format!("z{z}")).collect(),
            demand: [40.0, 10.0, 10.0],
            headroom: [0.2; 3],
            n_control_plane: 3,
            control_plane_zones: 3,
            dedicated_control_plane: true,
            survive_zone_loss: false,
            max_nodes_per_target: 5000,
            max_targets: 1,
            pair_flows,
            weights: Weights::for_block(16, 4),
            flows_lower_bound: None,
            staging_cuts: Vec::new(),
            class_rows: Vec::new(),
            source_slack: Vec::new(),
            source_class_slack: Vec::new(),
        }
    }

    #[test]
    fn zone_choices_put_the_fewest_flows_first() {
        // Pairs (0,1), (0,2), (1,2) cost 10 each, pairs with zone 3 cost 1.
        let mut flows = BTreeMap::new();
        for a in 0..4 {
            for b in a + 1..4 {
                flows.insert((a, b), if b == 3 { [1, 1, 1, 1] } else { [10, 10, 10, 10] });
            }
        }
        let analysis = zone_choices(&input(4, flows.clone())).unwrap();
        // 40 cores need 50: three zones hold 3 × 4 × 8 = 96 less 24 for the control plane.
        let best = &analysis.choices[0];
        assert_eq!(best.flows, 12);
        assert!(best.zones.contains(&3));
        assert_eq!(analysis.flows_lower_bound, 12);
        // Surviving the loss of a zone needs a fourth zone: 3 zones lose 24 of 72.
        let mut survive = input(4, flows);
        survive.demand = [45.0, 10.0, 10.0];
        survive.survive_zone_loss = true;
        let analysis = zone_choices(&survive).unwrap();
        assert!(analysis.choices.iter().all(|c| c.zones.len() == 4), "{:?}", analysis.choices);
        assert_eq!(analysis.flows_lower_bound, 33);
    }

    #[test]
    fn the_composition_model_accepts_the_greedy_start() {
        let mut flows = BTreeMap::new();
        flows.insert((0, 1), [2, 3, 3, 5]);
        flows.insert((0, 2), [2, 3, 3, 5]);
        flows.insert((1, 2), [2, 3, 3, 5]);
        let input = input(3, flows);
        let composition = crate::greedy::greedy_composition(&input).unwrap();
        let model = CompositionModel::build(&input);
        let values = model.encode(&input, &composition).unwrap();
        assert_eq!(model.model.first_violation(&values, 1e-9), None);
        assert_eq!(model.decode(&input, &values), composition);
        // Three zones, all control plane: 3 pairs × 5 flows.
        assert_eq!(composition_flows(&input, &composition), 15);
        let w = input.weights;
        assert_eq!(model.model.objective_value(&values), w.flows * 15.0 + w.nodes * composition.nodes_kept() as f64);
    }

    #[test]
    fn terms_are_merged_and_checked() {
        let mut model = LinearModel::new("t");
        let x = model.add_variable("x", 0.0, 3.0, true, 1.0);
        let y = model.add_variable("y", 0.0, 1.0, false, 2.0);
        model.add_le("r", vec![(x, 1.0), (y, 1.0), (x, 1.0), (y, -1.0)], 4.0);
        assert_eq!(model.constraints[0].terms, vec![(x, 2.0)]);
        assert!(model.first_violation(&[2.0, 0.5], 1e-9).is_none());
        assert!(model.first_violation(&[2.5, 0.5], 1e-9).is_some());
        assert!(model.first_violation(&[3.0, 0.5], 1e-9).is_some());
        assert_eq!(model.objective_value(&[2.0, 0.5]), 3.0);
    }
}
