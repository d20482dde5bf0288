//! A composition (how many nodes of each pool each target keeps) made into a
//! full candidate: nodes assigned, namespaces packed, waves scheduled greedily,
//! flows listed ([`Realized`]); or why it cannot be ([`RealizeFailure`]), the
//! facts the explainer turns into words.

use std::collections::BTreeSet;

use kplan_model::{FirewallFlow, Resources};

use super::flows::required_flows;
use super::model::{Composition, model_units};
use super::pools::BlockData;
use super::waves::{
    Assignment, ClassShort, Destination, HeadroomFractions, Schedule, Side, Stall, fits, schedule_greedy,
};
use crate::context::BlockContext;
use crate::headroom::usable;

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
    /// A target does not hold what the pods confined to some nodes need.
    Class(Box<ClassShort>),
    /// The greedy wave scheduling got stuck (the composition and assignment are
    /// kept so that the waves model can try).
    Stall { stall: Box<Stall>, composition: Box<Composition>, assignment: Box<Assignment> },
}

pub(crate) fn assign_nodes(ctx: &BlockContext, composition: &Composition) -> Assignment {
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
pub(crate) fn add_node_for(
    ctx: &BlockContext,
    composition: &mut Composition,
    capacity: &[Resources],
    j: usize,
) -> bool {
    let data = &ctx.data;
    let demand = model_units(data.namespace_demand[j]);
    let room = |t: usize| -> f64 {
        let c = model_units(capacity[t]);
        (0..3).map(|k| usable(ctx.headroom[k], c[k]) - demand[k]).fold(f64::INFINITY, f64::min)
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
        let size = |p: usize| pool_size(data.pools[p].allocatable, &demand);
        // A node that offers every placement class the namespace's pods are confined to.
        let serves = |p: usize| {
            data.pools[p].members.first().is_some_and(|&i| {
                data.placement.rows.iter().all(|row| row.namespace_need[j] == 0 || row.node_supply[i] > 0)
            })
        };
        // A namespace with confined pods is helped only by a node of its classes.
        let confined = data.placement.rows.iter().any(|row| row.namespace_need[j] > 0);
        let best = (0..data.pools.len()).filter(|&p| free(p) && (!confined || serves(p))).max_by(|&a, &b| {
            let in_zone = |p: usize| zones.contains(data.pools[p].zone.as_str());
            serves(a)
                .cmp(&serves(b))
                .then(in_zone(a).cmp(&in_zone(b)))
                .then(size(a).total_cmp(&size(b)))
                .then(b.cmp(&a))
        });
        if let Some(p) = best {
            composition.keep[t][p] += 1;
            return true;
        }
    }
    false
}

/// How many copies of `demand` (in model units) one node of `allocatable` holds,
/// summed over the resources `demand` asks for: the measure by which a stalled
/// step picks the pool to add a node from.
pub(crate) fn pool_size(allocatable: Resources, demand: &[f64]) -> f64 {
    model_units(allocatable).iter().zip(demand).map(|(a, d)| if *d > 0.0 { a / d } else { 0.0 }).sum()
}

pub fn realize(ctx: &BlockContext, mut composition: Composition) -> Result<Realized, RealizeFailure> {
    composition.prefer_small_control_planes(&ctx.input);
    let data = &ctx.data;
    let n_targets = composition.n_targets();
    let mut repairs = 0;
    let (assignment, capacity) = loop {
        let mut assignment = assign_nodes(ctx, &composition);
        let mut capacity = vec![Resources::ZERO; n_targets];
        let mut row_supply = vec![vec![0u64; data.placement.rows.len()]; n_targets];
        for i in 0..data.n_nodes() {
            if let Some(t) = assignment.counts_for_target(i) {
                capacity[t] = capacity[t].saturating_add(data.node_allocatable[i]);
                for (k, row) in data.placement.rows.iter().enumerate() {
                    row_supply[t][k] = row_supply[t][k].saturating_add(row.node_supply[i]);
                }
            }
        }
        if n_targets == 1 {
            break (assignment, capacity);
        }
        match pack_namespaces(data, &capacity, &row_supply, &ctx.headroom) {
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
    for (k, row) in data.placement.rows.iter().enumerate() {
        let mut need = vec![0u64; n_targets];
        let mut supply = vec![0u64; n_targets];
        for j in 0..data.n_namespaces() {
            let t = assignment.namespace_target[j];
            need[t] = need[t].saturating_add(row.namespace_need[j]);
        }
        for i in 0..data.n_nodes() {
            if let Some(t) = assignment.counts_for_target(i) {
                supply[t] = supply[t].saturating_add(row.node_supply[i]);
            }
        }
        if let Some(t) = (0..n_targets).find(|&t| !row.fits(need[t], supply[t])) {
            let (need, supply) = (need[t], supply[t]);
            return Err(RealizeFailure::Class(Box::new(ClassShort {
                row: k,
                side: Side::Target(t),
                need,
                supply,
                namespace: None,
                node: None,
            })));
        }
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
        Err(stall) => Err(RealizeFailure::Stall {
            stall: Box::new(stall),
            composition: Box::new(composition),
            assignment: Box::new(assignment),
        }),
    }
}

pub(crate) fn finish(
    ctx: &BlockContext,
    composition: Composition,
    assignment: Assignment,
    schedule: Schedule,
) -> Realized {
    let flows = block_flows(ctx, &assignment);
    let kept = assignment.node_destination.iter().filter(|d| **d != Destination::Free).count();
    let objective = ctx.weights.objective(flows.len(), kept, schedule.n_waves as usize);
    Realized { composition, assignment, schedule, flows, objective }
}

/// Zones and control-plane zones of every target.
pub(crate) fn target_zones(ctx: &BlockContext, assignment: &Assignment) -> Vec<(Vec<String>, Vec<String>)> {
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

pub(crate) fn block_flows(ctx: &BlockContext, assignment: &Assignment) -> Vec<FirewallFlow> {
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
/// with the most room left that holds it, for the namespace sums and for every
/// placement-class row (`classes.rs`; namespaces with confined pods first).
/// `row_supply[t][k]`: what target `t`'s workload nodes offer row `k`.
pub(crate) fn pack_namespaces(
    data: &BlockData,
    capacity: &[Resources],
    row_supply: &[Vec<u64>],
    headroom: &HeadroomFractions,
) -> Result<Vec<usize>, usize> {
    let rows = &data.placement.rows;
    let total = model_units(data.demand);
    let norm = |r: Resources| -> f64 {
        let u = model_units(r);
        (0..3).filter(|&k| total[k] > 0.0).map(|k| u[k] / total[k]).sum()
    };
    // The parts of a namespace (`parts.rs`) go to one target: whole
    // namespaces are packed, by their first unit.
    let mut family: Vec<Vec<usize>> = vec![Vec::new(); data.n_namespaces()];
    let mut first: Vec<usize> = (0..data.n_namespaces()).collect();
    for j in 0..data.n_namespaces() {
        if let Some(p) = data.namespace_after[j] {
            first[j] = first[p];
        }
        family[first[j]].push(j);
    }
    let demand_of = |f: usize| -> Resources { family[f].iter().map(|&j| data.namespace_demand[j]).sum() };
    let need_of = |f: usize, k: usize| -> u64 {
        family[f].iter().fold(0u64, |acc, &j| acc.saturating_add(rows[k].namespace_need[j]))
    };
    let confined = |f: usize| (0..rows.len()).any(|k| need_of(f, k) > 0);
    let mut order: Vec<usize> = (0..data.n_namespaces()).filter(|&j| first[j] == j).collect();
    order.sort_by(|&a, &b| {
        confined(b).cmp(&confined(a)).then(norm(demand_of(b)).total_cmp(&norm(demand_of(a)))).then(a.cmp(&b))
    });
    let mut used = vec![Resources::ZERO; capacity.len()];
    let mut used_rows = vec![vec![0u64; rows.len()]; capacity.len()];
    let mut target = vec![0; data.n_namespaces()];
    for f in order {
        let d = demand_of(f);
        let room = |t: usize| -> f64 {
            let c = model_units(capacity[t]);
            let u = model_units(used[t]);
            (0..3).map(|k| (usable(headroom[k], c[k]) - u[k]) / total[k].max(1e-9)).fold(f64::INFINITY, f64::min)
        };
        let holds = |t: usize| {
            fits(used[t].saturating_add(d), capacity[t], headroom)
                && (0..rows.len())
                    .all(|k| rows[k].fits(used_rows[t][k].saturating_add(need_of(f, k)), row_supply[t][k]))
        };
        let best = (0..capacity.len())
            .filter(|&t| holds(t))
            .max_by(|&a, &b| room(a).total_cmp(&room(b)).then(b.cmp(&a)))
            .ok_or(f)?;
        used[best] = used[best].saturating_add(d);
        for (k, used) in used_rows[best].iter_mut().enumerate() {
            *used = used.saturating_add(need_of(f, k));
        }
        for &j in &family[f] {
            target[j] = best;
        }
    }
    Ok(target)
}
