//! Waves: what moves when, for a chosen composition.
//!
//! Semantics (docs/plan-semantics.md): during wave `w` the nodes that move count in
//! neither cluster and the namespaces that move count in both; before and after,
//! every cluster holds its demand with headroom; per wave at most `wave_budget.nodes`
//! nodes and `wave_budget.namespaces` namespaces move; SLA tiers move in the
//! policy's order; a source's control-plane nodes move in the wave it is retired.
//!
//! Three tools, all on the same per-unit facts ([`BlockData`]):
//! - [`replay`]: an exact check of a schedule, in integer resources (the planner's
//!   own check; the validator still decides);
//! - [`schedule_greedy`]: list scheduling, wave by wave (namespaces the targets can
//!   hold, least critical SLA first, from the most loaded sources; then nodes:
//!   kept nodes first, largest first, as far as their sources' slack allows;
//!   then whole drained sources with their control plane; then freed nodes);
//! - [`WavesModel`] (`waves_model.rs`): the time-indexed model (cumulative integer moves per node
//!   unit and wave, binary per namespace and wave), used to shorten the greedy
//!   schedule when it is longer than the wave lower bound.

// Resource, zone and wave indexes address several parallel arrays at once.
#![allow(clippy::needless_range_loop)]

use std::collections::BTreeMap;

use kplan_model::Resources;

use super::model::model_units;
use super::pools::BlockData;

use crate::headroom::usable;
pub use crate::headroom::{HeadroomFractions, fits};

/// Where a node goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    Target(usize),
    Free,
}

/// A composition made concrete: every node's destination and every namespace's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub n_targets: usize,
    pub node_destination: Vec<Destination>,
    /// The node is one of its target's control-plane nodes.
    pub node_target_control_plane: Vec<bool>,
    pub namespace_target: Vec<usize>,
    /// Target control-plane nodes do not count for workloads.
    pub dedicated_control_plane: bool,
}

impl Assignment {
    /// Whether the node's capacity counts for its target's workloads.
    pub fn counts_for_target(&self, node: usize) -> Option<usize> {
        match self.node_destination[node] {
            Destination::Target(t) if !(self.dedicated_control_plane && self.node_target_control_plane[node]) => {
                Some(t)
            }
            _ => None,
        }
    }
}

/// The 1-based wave of every node and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub node_wave: Vec<u32>,
    pub namespace_wave: Vec<u32>,
    pub n_waves: u32,
}

impl Schedule {
    /// The wave after which each source is retired (its last move).
    pub fn retirement_waves(&self, data: &BlockData, n_sources: usize) -> Vec<u32> {
        let mut last = vec![0u32; n_sources];
        for (i, &w) in self.node_wave.iter().enumerate() {
            let s = data.node_source[i];
            last[s] = last[s].max(w);
        }
        for (j, &w) in self.namespace_wave.iter().enumerate() {
            let s = data.namespace_source[j];
            last[s] = last[s].max(w);
        }
        last
    }
}

/// Per-wave change budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub nodes: u64,
    pub namespaces: u64,
}

/// The namespace that should move next and its target's state when the schedule stalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceStuck {
    pub namespace: usize,
    pub target: usize,
    pub target_allocatable: Resources,
    pub target_demand: Resources,
}

/// A source whose remaining workers cannot lose one more node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStuck {
    pub source: usize,
    pub demand: Resources,
    pub workers_left: Resources,
    /// The smallest worker still waiting to move.
    pub smallest_waiting: Resources,
}

/// Why a schedule cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub wave: u32,
    pub kind: StallKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallKind {
    /// A source does not hold its demand with headroom before anything moves.
    SourceOverloaded { source: usize },
    /// Nodes or namespaces must move but the budget is zero.
    BudgetZero,
    /// Nothing can move: the next namespace does not fit its target and no
    /// waiting node can leave its source without breaking the source's headroom.
    /// `class_short`: a placement-class row that blocks (`classes.rs`), when
    /// one does.
    Stuck {
        next_namespace: Option<NamespaceStuck>,
        sources_without_slack: Vec<SourceStuck>,
        class_short: Option<Box<ClassShort>>,
    },
}

/// A cluster of the block: a source (index into the block's sources) or a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source(usize),
    Target(usize),
}

/// A placement-class row ([`crate::classes::ClassRow`]) that does not hold in a
/// cluster: what the workloads confined to its nodes need and what they have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassShort {
    pub row: usize,
    pub side: Side,
    pub need: u64,
    pub supply: u64,
    /// The block namespace whose move was refused, or the node that could not leave.
    pub namespace: Option<usize>,
    pub node: Option<usize>,
}

/// A proved lower bound on the number of waves of any plan of the block: every
/// node and every namespace moves; a namespace with demand cannot move in wave 1
/// (the target holds nothing yet) nor in the last wave (its source keeps a node
/// until the wave after its last namespace left).
pub fn wave_lower_bound(data: &BlockData, budget: Budget) -> u64 {
    let n = data.n_nodes() as u64;
    let m = data.n_namespaces() as u64;
    let m_positive = data.namespace_demand.iter().filter(|d| **d != Resources::ZERO).count() as u64;
    let mut bound = 0;
    if n > 0 {
        bound = bound.max(n.div_ceil(budget.nodes.max(1)));
    }
    if m > 0 {
        bound = bound.max(m.div_ceil(budget.namespaces.max(1)));
    }
    if m_positive > 0 {
        bound = bound.max(2 + m_positive.div_ceil(budget.namespaces.max(1)));
    }
    bound
}

/// Capacity state of the block's clusters.
#[derive(Debug, Clone)]
struct State {
    source_allocatable: Vec<Resources>,
    source_demand: Vec<Resources>,
    source_nodes_left: Vec<usize>,
    source_namespaces_left: Vec<usize>,
    target_allocatable: Vec<Resources>,
    target_demand: Vec<Resources>,
    /// Per cluster and placement-class row: supply and need (`classes.rs`).
    source_row_supply: Vec<Vec<u64>>,
    source_row_need: Vec<Vec<u64>>,
    target_row_supply: Vec<Vec<u64>>,
    target_row_need: Vec<Vec<u64>>,
}

/// Adds (or with `sign` false, removes) a unit's per-row amounts.
fn apply_rows(
    totals: &mut [u64],
    rows: &[crate::classes::ClassRow],
    amount: impl Fn(&crate::classes::ClassRow) -> u64,
    add: bool,
) {
    for (total, row) in totals.iter_mut().zip(rows) {
        let a = amount(row);
        *total = if add { total.saturating_add(a) } else { total.saturating_sub(a) };
    }
}

/// The first row whose need does not fit its supply.
fn first_short_row(rows: &[crate::classes::ClassRow], need: &[u64], supply: &[u64]) -> Option<usize> {
    (0..rows.len()).find(|&k| !rows[k].fits_staged(need[k], supply[k]))
}

impl State {
    fn initial(data: &BlockData, assignment: &Assignment, n_sources: usize) -> State {
        let rows = &data.placement.rows;
        let mut state = State {
            source_allocatable: vec![Resources::ZERO; n_sources],
            source_demand: vec![Resources::ZERO; n_sources],
            source_nodes_left: vec![0; n_sources],
            source_namespaces_left: vec![0; n_sources],
            target_allocatable: vec![Resources::ZERO; assignment.n_targets],
            target_demand: vec![Resources::ZERO; assignment.n_targets],
            source_row_supply: vec![vec![0; rows.len()]; n_sources],
            source_row_need: vec![vec![0; rows.len()]; n_sources],
            target_row_supply: vec![vec![0; rows.len()]; assignment.n_targets],
            target_row_need: vec![vec![0; rows.len()]; assignment.n_targets],
        };
        for i in 0..data.n_nodes() {
            let s = data.node_source[i];
            state.source_nodes_left[s] += 1;
            if !data.node_source_control_plane[i] {
                state.source_allocatable[s] = state.source_allocatable[s].saturating_add(data.node_allocatable[i]);
                apply_rows(&mut state.source_row_supply[s], rows, |row| row.node_supply[i], true);
            }
        }
        for j in 0..data.n_namespaces() {
            let s = data.namespace_source[j];
            state.source_namespaces_left[s] += 1;
            state.source_demand[s] = state.source_demand[s].saturating_add(data.namespace_demand[j]);
            apply_rows(&mut state.source_row_need[s], rows, |row| row.namespace_need[j], true);
        }
        state
    }

    /// Takes node `i` out of its source's workload capacity (it is draining).
    fn drain_node(&mut self, data: &BlockData, i: usize) {
        let s = data.node_source[i];
        if !data.node_source_control_plane[i] {
            self.source_allocatable[s] = self.source_allocatable[s].saturating_sub(data.node_allocatable[i]);
            apply_rows(&mut self.source_row_supply[s], &data.placement.rows, |row| row.node_supply[i], false);
        }
    }

    /// Counts namespace `j` in its target too (it is moving).
    fn arrive_namespace(&mut self, data: &BlockData, assignment: &Assignment, j: usize) {
        let t = assignment.namespace_target[j];
        self.target_demand[t] = self.target_demand[t].saturating_add(data.namespace_demand[j]);
        apply_rows(&mut self.target_row_need[t], &data.placement.rows, |row| row.namespace_need[j], true);
    }

    fn move_node(&mut self, data: &BlockData, assignment: &Assignment, i: usize) {
        let s = data.node_source[i];
        self.source_nodes_left[s] -= 1;
        self.drain_node(data, i);
        if let Some(t) = assignment.counts_for_target(i) {
            self.target_allocatable[t] = self.target_allocatable[t].saturating_add(data.node_allocatable[i]);
            apply_rows(&mut self.target_row_supply[t], &data.placement.rows, |row| row.node_supply[i], true);
        }
    }

    fn move_namespace(&mut self, data: &BlockData, assignment: &Assignment, j: usize) {
        let s = data.namespace_source[j];
        self.source_namespaces_left[s] -= 1;
        self.source_demand[s] = self.source_demand[s].saturating_sub(data.namespace_demand[j]);
        apply_rows(&mut self.source_row_need[s], &data.placement.rows, |row| row.namespace_need[j], false);
        self.arrive_namespace(data, assignment, j);
    }

    fn check(&self, data: &BlockData, headroom: &HeadroomFractions, moment: &str, wave: u32) -> Result<(), String> {
        let rows = &data.placement.rows;
        for (s, (&demand, &allocatable)) in self.source_demand.iter().zip(&self.source_allocatable).enumerate() {
            if data.source_checked[s] && !fits(demand, allocatable, headroom) {
                return Err(format!("wave {wave} {moment}: source #{s} does not hold its demand"));
            }
            if data.source_checked[s]
                && let Some(k) = first_short_row(rows, &self.source_row_need[s], &self.source_row_supply[s])
            {
                return Err(format!("wave {wave} {moment}: source #{s} does not hold placement class row {k}"));
            }
        }
        for (t, (&demand, &allocatable)) in self.target_demand.iter().zip(&self.target_allocatable).enumerate() {
            if !fits(demand, allocatable, headroom) {
                return Err(format!("wave {wave} {moment}: target #{t} does not hold its demand"));
            }
            if let Some(k) = first_short_row(rows, &self.target_row_need[t], &self.target_row_supply[t]) {
                return Err(format!("wave {wave} {moment}: target #{t} does not hold placement class row {k}"));
            }
        }
        Ok(())
    }
}

/// Checks a schedule exactly against the semantics (capacity at every moment,
/// budgets, SLA order, control-plane nodes moving in the retirement wave,
/// everything moved).
pub fn replay(
    data: &BlockData,
    assignment: &Assignment,
    schedule: &Schedule,
    n_sources: usize,
    headroom: &HeadroomFractions,
    budget: Budget,
) -> Result<(), String> {
    let n_waves = schedule.n_waves;
    if schedule.node_wave.iter().chain(&schedule.namespace_wave).any(|&w| w == 0 || w > n_waves) {
        return Err("a unit is not scheduled in a wave of the plan".to_string());
    }
    let mut nodes_by_wave: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &w) in schedule.node_wave.iter().enumerate() {
        nodes_by_wave.entry(w).or_default().push(i);
    }
    let mut namespaces_by_wave: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (j, &w) in schedule.namespace_wave.iter().enumerate() {
        namespaces_by_wave.entry(w).or_default().push(j);
    }
    // SLA order.
    let mut latest_by_rank: BTreeMap<usize, u32> = BTreeMap::new();
    let mut earliest_by_rank: BTreeMap<usize, u32> = BTreeMap::new();
    for (j, &w) in schedule.namespace_wave.iter().enumerate() {
        let rank = data.namespace_sla_rank[j];
        let latest = latest_by_rank.entry(rank).or_insert(0);
        *latest = (*latest).max(w);
        let earliest = earliest_by_rank.entry(rank).or_insert(u32::MAX);
        *earliest = (*earliest).min(w);
    }
    for (&rank, &latest) in &latest_by_rank {
        for (_, &earliest) in earliest_by_rank.range(rank + 1..) {
            if earliest < latest {
                return Err("namespaces of a more critical SLA tier move before a less critical one".to_string());
            }
        }
    }
    // The parts of a namespace move one after the other, one per wave.
    for (j, after) in data.namespace_after.iter().enumerate() {
        if let Some(p) = *after
            && schedule.namespace_wave[j] <= schedule.namespace_wave[p]
        {
            return Err(format!(
                "a namespace's part moves in wave {}, not after the part before it (wave {})",
                schedule.namespace_wave[j], schedule.namespace_wave[p]
            ));
        }
    }
    // Namespaces move with the nodes that hold their local data.
    for &(j, i) in &data.placement.travels {
        if schedule.node_wave[i] != schedule.namespace_wave[j] {
            return Err(format!(
                "a namespace moves in wave {} and the node with its local data in wave {}",
                schedule.namespace_wave[j], schedule.node_wave[i]
            ));
        }
    }
    // A target's control plane joins first: nothing joins a target in a wave
    // before the last of its control-plane nodes.
    let mut control_plane_wave = vec![0u32; assignment.n_targets];
    for (i, &w) in schedule.node_wave.iter().enumerate() {
        if let Destination::Target(t) = assignment.node_destination[i]
            && assignment.node_target_control_plane[i]
        {
            control_plane_wave[t] = control_plane_wave[t].max(w);
        }
    }
    for (i, &w) in schedule.node_wave.iter().enumerate() {
        if let Destination::Target(t) = assignment.node_destination[i]
            && w < control_plane_wave[t]
        {
            return Err(format!(
                "a node joins target #{t} in wave {w}, before its control plane (wave {})",
                control_plane_wave[t]
            ));
        }
    }
    for (j, &w) in schedule.namespace_wave.iter().enumerate() {
        let t = assignment.namespace_target[j];
        if w < control_plane_wave[t] {
            return Err(format!(
                "a namespace moves to target #{t} in wave {w}, before its control plane (wave {})",
                control_plane_wave[t]
            ));
        }
    }
    // Control-plane nodes move in the retirement wave.
    let retirement = schedule.retirement_waves(data, n_sources);
    for (i, &w) in schedule.node_wave.iter().enumerate() {
        if data.moves_at_retirement(i) && w != retirement[data.node_source[i]] {
            return Err(format!("a control-plane node of source #{} moves before its retirement", data.node_source[i]));
        }
    }

    let mut state = State::initial(data, assignment, n_sources);
    state.check(data, headroom, "before", 1)?;
    let empty = Vec::new();
    for w in 1..=n_waves {
        let nodes = nodes_by_wave.get(&w).unwrap_or(&empty);
        let namespaces = namespaces_by_wave.get(&w).unwrap_or(&empty);
        if nodes.len() as u64 > budget.nodes {
            return Err(format!("wave {w} moves {} nodes, over the budget", nodes.len()));
        }
        if namespaces.len() as u64 > budget.namespaces {
            return Err(format!("wave {w} moves {} namespaces, over the budget", namespaces.len()));
        }
        // During: moving nodes count nowhere, moving namespaces count on both sides.
        let mut during = state.clone();
        for &i in nodes {
            during.drain_node(data, i);
        }
        for &j in namespaces {
            during.arrive_namespace(data, assignment, j);
        }
        during.check(data, headroom, "during", w)?;
        for &i in nodes {
            state.move_node(data, assignment, i);
        }
        for &j in namespaces {
            state.move_namespace(data, assignment, j);
        }
        state.check(data, headroom, "after", w)?;
    }
    Ok(())
}

/// Greedy list scheduling (see the module documentation).
pub fn schedule_greedy(
    data: &BlockData,
    assignment: &Assignment,
    n_sources: usize,
    headroom: &HeadroomFractions,
    budget: Budget,
) -> Result<Schedule, Stall> {
    let n_nodes = data.n_nodes();
    let n_namespaces = data.n_namespaces();
    let mut node_wave = vec![0u32; n_nodes];
    let mut namespace_wave = vec![0u32; n_namespaces];
    let rows = &data.placement.rows;
    let mut state = State::initial(data, assignment, n_sources);
    for s in 0..n_sources {
        if data.source_checked[s] && !fits(state.source_demand[s], state.source_allocatable[s], headroom) {
            return Err(Stall { wave: 1, kind: StallKind::SourceOverloaded { source: s } });
        }
        if data.source_checked[s]
            && let Some(row) = first_short_row(rows, &state.source_row_need[s], &state.source_row_supply[s])
        {
            let class_short = Some(Box::new(ClassShort {
                row,
                side: Side::Source(s),
                need: state.source_row_need[s][row],
                supply: state.source_row_supply[s][row],
                namespace: None,
                node: None,
            }));
            return Err(Stall {
                wave: 1,
                kind: StallKind::Stuck { next_namespace: None, sources_without_slack: Vec::new(), class_short },
            });
        }
    }
    if (n_nodes > 0 && budget.nodes == 0) || (n_namespaces > 0 && budget.namespaces == 0) {
        return Err(Stall { wave: 1, kind: StallKind::BudgetZero });
    }

    // Normalised node size, for "largest first".
    let total: Resources = data.node_allocatable.iter().copied().sum();
    let total_units = model_units(total);
    let size = |r: Resources| -> f64 {
        let u = model_units(r);
        (0..3).filter(|&k| total_units[k] > 0.0).map(|k| u[k] / total_units[k]).sum()
    };
    let node_size: Vec<f64> = data.node_allocatable.iter().map(|&r| size(r)).collect();
    let namespace_size: Vec<f64> = data.namespace_demand.iter().map(|&r| size(r)).collect();

    // Static orders.
    // Nodes with a namespace's local data move with it (`Placement::travels`).
    let mut travelling_nodes: Vec<Vec<usize>> = vec![Vec::new(); n_namespaces];
    let mut travels = vec![false; n_nodes];
    for &(j, i) in &data.placement.travels {
        travelling_nodes[j].push(i);
        travels[i] = true;
    }
    // Namespaces that share such a node move together (transitively).
    let mut company: Vec<Vec<usize>> = vec![Vec::new(); n_namespaces];
    for j in 0..n_namespaces {
        if travelling_nodes[j].is_empty() {
            continue;
        }
        let mut seen = vec![j];
        let mut next = 0;
        while next < seen.len() {
            let k = seen[next];
            next += 1;
            for &(other, i) in &data.placement.travels {
                if travelling_nodes[k].contains(&i) && !seen.contains(&other) {
                    seen.push(other);
                }
            }
        }
        company[j] = seen;
    }
    let mut kept_order: Vec<usize> = (0..n_nodes)
        .filter(|&i| {
            matches!(assignment.node_destination[i], Destination::Target(_))
                && !data.moves_at_retirement(i)
                && !travels[i]
        })
        .collect();
    // Targets' control-plane nodes first (nothing joins a target before them),
    // then the nodes that hold workloads, largest first.
    kept_order.sort_by(|&a, &b| {
        let cp = |i: usize| assignment.node_target_control_plane[i];
        let ca = assignment.counts_for_target(a).is_some();
        let cb = assignment.counts_for_target(b).is_some();
        cp(b).cmp(&cp(a)).then(cb.cmp(&ca)).then(node_size[b].total_cmp(&node_size[a])).then(a.cmp(&b))
    });
    // Per target, its control-plane nodes not moved yet.
    let mut control_plane_left = vec![0usize; assignment.n_targets];
    for i in 0..n_nodes {
        if let Destination::Target(t) = assignment.node_destination[i]
            && assignment.node_target_control_plane[i]
        {
            control_plane_left[t] += 1;
        }
    }
    let mut freed_order: Vec<usize> = (0..n_nodes)
        .filter(|&i| assignment.node_destination[i] == Destination::Free && !data.moves_at_retirement(i) && !travels[i])
        .collect();
    freed_order.sort_by(|&a, &b| node_size[a].total_cmp(&node_size[b]).then(a.cmp(&b)));
    let mut nodes_of_source: Vec<Vec<usize>> = vec![Vec::new(); n_sources];
    for i in 0..n_nodes {
        nodes_of_source[data.node_source[i]].push(i);
    }

    let mut moved_nodes = 0usize;
    let mut moved_namespaces = 0usize;
    let mut wave = 0u32;
    while moved_nodes < n_nodes || moved_namespaces < n_namespaces {
        wave += 1;
        // 1. Namespaces the targets can hold, SLA order, most loaded sources first.
        let pressure: Vec<f64> = (0..n_sources)
            .map(|s| {
                let d = model_units(state.source_demand[s]);
                let a = model_units(state.source_allocatable[s]);
                (0..3)
                    .map(|r| if d[r] > 0.0 { d[r] / usable(headroom[r], a[r]).max(1e-12) } else { 0.0 })
                    .fold(0.0, f64::max)
            })
            .collect();
        let mut candidates: Vec<usize> = (0..n_namespaces).filter(|&j| namespace_wave[j] == 0).collect();
        candidates.sort_by(|&a, &b| {
            data.namespace_sla_rank[a]
                .cmp(&data.namespace_sla_rank[b])
                .then(pressure[data.namespace_source[b]].total_cmp(&pressure[data.namespace_source[a]]))
                .then(data.namespace_source[a].cmp(&data.namespace_source[b]))
                .then(namespace_size[b].total_cmp(&namespace_size[a]))
                .then(a.cmp(&b))
        });
        let mut incoming = vec![Resources::ZERO; assignment.n_targets];
        let mut incoming_rows = vec![vec![0u64; rows.len()]; assignment.n_targets];
        let mut moving_namespaces = Vec::new();
        let mut blocked_rank: Option<usize> = None;
        for &j in &candidates {
            let rank = data.namespace_sla_rank[j];
            if blocked_rank.is_some_and(|b| rank > b) {
                break;
            }
            let t = assignment.namespace_target[j];
            // The target has no control plane yet (but for nodes that travel with
            // the namespace, and join with it).
            let travelling_control_plane = travelling_nodes[j]
                .iter()
                .filter(|&&i| node_wave[i] == 0 && assignment.node_target_control_plane[i])
                .count();
            // A part waits for the part before it to have moved in an earlier
            // wave (and holds back what comes after it in the SLA order).
            let waits = data.namespace_after[j].is_some_and(|p| namespace_wave[p] == 0);
            if control_plane_left[t] > travelling_control_plane || waits {
                blocked_rank = Some(rank);
                continue;
            }
            let demand = state.target_demand[t].saturating_add(incoming[t]).saturating_add(data.namespace_demand[j]);
            let rows_fit = (0..rows.len()).all(|k| {
                let need = state.target_row_need[t][k]
                    .saturating_add(incoming_rows[t][k])
                    .saturating_add(rows[k].namespace_need[j]);
                rows[k].fits_staged(need, state.target_row_supply[t][k])
            });
            if (moving_namespaces.len() as u64) < budget.namespaces
                && fits(demand, state.target_allocatable[t], headroom)
                && rows_fit
            {
                incoming[t] = incoming[t].saturating_add(data.namespace_demand[j]);
                apply_rows(&mut incoming_rows[t], rows, |row| row.namespace_need[j], true);
                moving_namespaces.push(j);
            } else {
                blocked_rank = Some(rank);
            }
        }

        // 2. Nodes, as far as the sources' slack allows.
        let mut moving_nodes: Vec<usize> = Vec::new();
        let mut chosen = vec![false; n_nodes];
        // What is draining from each source this wave: resources and class rows.
        let mut draining: Vec<(Resources, Vec<u64>)> = vec![(Resources::ZERO, vec![0; rows.len()]); n_sources];
        let room = |moving: &Vec<usize>| (moving.len() as u64) < budget.nodes;
        let can_drain = |draining: &Vec<(Resources, Vec<u64>)>, s: usize, i: usize| {
            let left =
                state.source_allocatable[s].saturating_sub(draining[s].0).saturating_sub(data.node_allocatable[i]);
            let counted = !data.node_source_control_plane[i];
            fits(state.source_demand[s], left, headroom)
                && (0..rows.len()).all(|k| {
                    let gone = draining[s].1[k].saturating_add(if counted { rows[k].node_supply[i] } else { 0 });
                    rows[k].fits_staged(state.source_row_need[s][k], state.source_row_supply[s][k].saturating_sub(gone))
                })
        };
        let drain = |draining: &mut Vec<(Resources, Vec<u64>)>, i: usize| {
            let s = data.node_source[i];
            draining[s].0 = draining[s].0.saturating_add(data.node_allocatable[i]);
            if !data.node_source_control_plane[i] {
                apply_rows(&mut draining[s].1, rows, |row| row.node_supply[i], true);
            }
        };
        // Control-plane nodes still waiting after this wave, per target: a node may
        // join a target only once its control plane is complete.
        let mut control_plane_waiting = control_plane_left.clone();
        let joins_ready = |waiting: &[usize], i: usize| match assignment.node_destination[i] {
            Destination::Target(t) => assignment.node_target_control_plane[i] || waiting[t] == 0,
            Destination::Free => true,
        };
        // Namespaces with local data take their nodes along, or wait (with
        // every less critical namespace, for the SLA order).
        let mut kept_namespaces = Vec::with_capacity(moving_namespaces.len());
        let mut dropped_rank: Option<usize> = None;
        // Namespaces that share a node move together or not at all: decided once per company.
        let mut decided: Vec<Option<bool>> = vec![None; n_namespaces];
        for &j in &moving_namespaces {
            if let Some(keep) = decided[j] {
                if keep {
                    kept_namespaces.push(j);
                }
                continue;
            }
            let members: Vec<usize> = if company[j].is_empty() { vec![j] } else { company[j].clone() };
            let ranks = members.iter().map(|&k| data.namespace_sla_rank[k]);
            let after_dropped = dropped_rank.is_some_and(|r| ranks.clone().any(|rank| rank > r));
            let together = members.iter().all(|k| moving_namespaces.contains(k));
            let mut along: Vec<usize> = members
                .iter()
                .flat_map(|&k| travelling_nodes[k].iter().copied())
                .filter(|&i| node_wave[i] == 0 && !chosen[i])
                .collect();
            along.sort_unstable();
            along.dedup();
            let mut trial = draining.clone();
            let keep = !after_dropped
                && together
                && moving_nodes.len() + along.len() <= budget.nodes as usize
                && along.iter().all(|&i| {
                    let ok = can_drain(&trial, data.node_source[i], i);
                    drain(&mut trial, i);
                    ok
                });
            for &k in &members {
                decided[k] = Some(keep);
            }
            if keep {
                draining = trial;
                for i in along {
                    chosen[i] = true;
                    moving_nodes.push(i);
                    if let Destination::Target(t) = assignment.node_destination[i]
                        && assignment.node_target_control_plane[i]
                    {
                        control_plane_waiting[t] -= 1;
                    }
                }
                kept_namespaces.push(j);
            } else {
                let lowest = ranks.min().unwrap_or(data.namespace_sla_rank[j]);
                dropped_rank = Some(dropped_rank.map_or(lowest, |r| r.min(lowest)));
            }
        }
        let moving_namespaces = kept_namespaces;
        let mut namespaces_leaving = vec![0usize; n_sources];
        for &j in &moving_namespaces {
            namespaces_leaving[data.namespace_source[j]] += 1;
        }
        for &i in &kept_order {
            if !room(&moving_nodes) {
                break;
            }
            let s = data.node_source[i];
            if node_wave[i] == 0 && joins_ready(&control_plane_waiting, i) && can_drain(&draining, s, i) {
                drain(&mut draining, i);
                chosen[i] = true;
                moving_nodes.push(i);
                if let Destination::Target(t) = assignment.node_destination[i]
                    && assignment.node_target_control_plane[i]
                {
                    control_plane_waiting[t] -= 1;
                }
            }
        }
        // Whole sources without demand, with their control plane: they retire.
        let mut retiring: Vec<usize> = (0..n_sources)
            .filter(|&s| {
                state.source_demand[s] == Resources::ZERO
                    && state.source_namespaces_left[s] == namespaces_leaving[s]
                    && nodes_of_source[s].iter().any(|&i| node_wave[i] == 0 && !chosen[i])
            })
            .collect();
        retiring.sort_by_key(|&s| (nodes_of_source[s].iter().filter(|&&i| node_wave[i] == 0 && !chosen[i]).count(), s));
        for s in retiring {
            let left: Vec<usize> =
                nodes_of_source[s].iter().copied().filter(|&i| node_wave[i] == 0 && !chosen[i]).collect();
            let mut waiting = control_plane_waiting.clone();
            for &i in &left {
                if let Destination::Target(t) = assignment.node_destination[i]
                    && assignment.node_target_control_plane[i]
                {
                    waiting[t] -= 1;
                }
            }
            if (moving_nodes.len() + left.len()) as u64 <= budget.nodes
                && left.iter().all(|&i| joins_ready(&waiting, i))
            {
                control_plane_waiting = waiting;
                for i in left {
                    chosen[i] = true;
                    moving_nodes.push(i);
                }
            }
        }
        for &i in &freed_order {
            if !room(&moving_nodes) {
                break;
            }
            let s = data.node_source[i];
            if node_wave[i] == 0 && !chosen[i] && can_drain(&draining, s, i) {
                drain(&mut draining, i);
                chosen[i] = true;
                moving_nodes.push(i);
            }
        }

        if moving_nodes.is_empty() && moving_namespaces.is_empty() {
            return Err(Stall {
                wave,
                kind: stall_details(data, assignment, headroom, &state, &node_wave, &namespace_wave),
            });
        }
        for &i in &moving_nodes {
            node_wave[i] = wave;
            state.move_node(data, assignment, i);
        }
        control_plane_left = control_plane_waiting;
        for &j in &moving_namespaces {
            namespace_wave[j] = wave;
            state.move_namespace(data, assignment, j);
        }
        moved_nodes += moving_nodes.len();
        moved_namespaces += moving_namespaces.len();
    }
    Ok(Schedule { node_wave, namespace_wave, n_waves: wave })
}

fn stall_details(
    data: &BlockData,
    assignment: &Assignment,
    headroom: &HeadroomFractions,
    state: &State,
    node_wave: &[u32],
    namespace_wave: &[u32],
) -> StallKind {
    let next_namespace = (0..data.n_namespaces())
        .filter(|&j| namespace_wave[j] == 0)
        .min_by_key(|&j| (data.namespace_sla_rank[j], j))
        .map(|j| {
            let t = assignment.namespace_target[j];
            NamespaceStuck {
                namespace: j,
                target: t,
                target_allocatable: state.target_allocatable[t],
                target_demand: state.target_demand[t],
            }
        });
    let mut smallest: BTreeMap<usize, Resources> = BTreeMap::new();
    for i in (0..data.n_nodes()).filter(|&i| node_wave[i] == 0 && !data.node_source_control_plane[i]) {
        let s = data.node_source[i];
        if state.source_demand[s] == Resources::ZERO {
            continue;
        }
        let size = data.node_allocatable[i];
        let entry = smallest.entry(s).or_insert(size);
        if model_units(size).iter().sum::<f64>() < model_units(*entry).iter().sum::<f64>() {
            *entry = size;
        }
    }
    let sources_without_slack = smallest
        .into_iter()
        .map(|(s, smallest_waiting)| SourceStuck {
            source: s,
            demand: state.source_demand[s],
            workers_left: state.source_allocatable[s],
            smallest_waiting,
        })
        .collect();
    // A placement-class row that blocks: the next namespace's in its target,
    // else one that keeps a waiting node in its source.
    let rows = &data.placement.rows;
    let target_short = next_namespace.as_ref().and_then(|next| {
        let (t, j) = (next.target, next.namespace);
        (0..rows.len()).find_map(|k| {
            let need = state.target_row_need[t][k].saturating_add(rows[k].namespace_need[j]);
            let supply = state.target_row_supply[t][k];
            (!rows[k].fits_staged(need, supply)).then_some(ClassShort {
                row: k,
                side: Side::Target(t),
                need,
                supply,
                namespace: Some(j),
                node: None,
            })
        })
    });
    // Only a node whose leaving the namespace sums would allow: then the row
    // is what keeps it.
    let source_short = || {
        (0..data.n_nodes()).filter(|&i| node_wave[i] == 0 && !data.node_source_control_plane[i]).find_map(|i| {
            let s = data.node_source[i];
            let left = state.source_allocatable[s].saturating_sub(data.node_allocatable[i]);
            if !fits(state.source_demand[s], left, headroom) {
                return None;
            }
            (0..rows.len()).find_map(|k| {
                let need = state.source_row_need[s][k];
                let supply = state.source_row_supply[s][k].saturating_sub(rows[k].node_supply[i]);
                (rows[k].node_supply[i] > 0 && !rows[k].fits_staged(need, supply)).then_some(ClassShort {
                    row: k,
                    side: Side::Source(s),
                    need,
                    supply,
                    namespace: None,
                    node: Some(i),
                })
            })
        })
    };
    let class_short = target_short.or_else(source_short).map(Box::new);
    StallKind::Stuck { next_namespace, sources_without_slack, class_short }
}

pub use crate::waves_model::WavesModel;
