//! [`WavesModel`]: the time-indexed waves model for a fixed composition
//! (cumulative integer moves per node unit and wave, binary per namespace and
//! wave), used to shorten the greedy schedule of `waves.rs` when it is longer
//! than the wave lower bound. Same semantics as `waves.rs`.

// Resource, zone and wave indexes address several parallel arrays at once.
#![allow(clippy::needless_range_loop)]

use std::collections::BTreeMap;

use super::model::{LinearModel, model_units};
use super::pools::BlockData;
use super::waves::{Assignment, Budget, Destination, HeadroomFractions, Schedule};
use crate::headroom::usable;

/// The time-indexed waves model for a fixed assignment.
#[derive(Debug, Clone)]
pub struct WavesModel {
    pub model: LinearModel,
    pub horizon: u32,
    /// Node units: nodes with the same pool, destination and target control-plane role.
    units: Vec<Vec<usize>>,
    /// `moved[u][w]`: cumulative nodes of unit `u` moved by the end of wave `w + 1`.
    moved: Vec<Vec<usize>>,
    /// `gone[j][w]`: namespace `j` moved by the end of wave `w + 1`.
    gone: Vec<Vec<usize>>,
    active: Vec<usize>,
    retired: BTreeMap<usize, Vec<usize>>,
    /// Per target with a control plane: its control-plane nodes, and `ready[w]`:
    /// they have joined by wave `w + 1`.
    ready: BTreeMap<usize, (Vec<usize>, Vec<usize>)>,
    thresholds: Vec<(usize, usize)>,
}

impl WavesModel {
    /// Columns the model would have, to decide whether it is worth building.
    pub fn size_estimate(data: &BlockData, assignment: &Assignment, horizon: u32) -> usize {
        let units = node_units(data, assignment).len();
        (units + data.n_namespaces() + 1) * horizon as usize
    }

    pub fn build(
        name: &str,
        data: &BlockData,
        assignment: &Assignment,
        n_sources: usize,
        headroom: &HeadroomFractions,
        budget: Budget,
        horizon: u32,
    ) -> WavesModel {
        let h = horizon as usize;
        let mut model = LinearModel::new(format!("{name}-waves"));
        let units = node_units(data, assignment);
        let active: Vec<usize> = (0..h).map(|w| model.add_binary(format!("wave_w{}", w + 1), 1.0)).collect();
        let mut moved = Vec::with_capacity(units.len());
        for (u, members) in units.iter().enumerate() {
            let n = members.len() as f64;
            let columns: Vec<usize> = (0..h)
                .map(|w| {
                    let lower = if w + 1 == h { n } else { 0.0 };
                    model.add_variable(format!("moved_u{u}_w{}", w + 1), lower, n, true, 0.0)
                })
                .collect();
            moved.push(columns);
        }
        let mut gone = Vec::with_capacity(data.n_namespaces());
        for j in 0..data.n_namespaces() {
            let columns: Vec<usize> = (0..h)
                .map(|w| {
                    let lower = if w + 1 == h { 1.0 } else { 0.0 };
                    model.add_variable(format!("gone_n{j}_w{}", w + 1), lower, 1.0, true, 0.0)
                })
                .collect();
            gone.push(columns);
        }
        // Monotone cumulative moves and active waves as a prefix.
        for (u, columns) in moved.iter().enumerate() {
            for w in 1..h {
                model.add_ge(format!("mono_u{u}_w{}", w + 1), vec![(columns[w], 1.0), (columns[w - 1], -1.0)], 0.0);
            }
        }
        for (j, columns) in gone.iter().enumerate() {
            for w in 1..h {
                model.add_ge(format!("mono_n{j}_w{}", w + 1), vec![(columns[w], 1.0), (columns[w - 1], -1.0)], 0.0);
            }
        }
        for w in 1..h {
            model.add_le(format!("prefix_w{}", w + 1), vec![(active[w], 1.0), (active[w - 1], -1.0)], 0.0);
        }
        // A namespace whose data is on a node's local volumes moves with the node.
        let unit_of: BTreeMap<usize, usize> =
            units.iter().enumerate().flat_map(|(u, members)| members.iter().map(move |&i| (i, u))).collect();
        for &(j, i) in &data.placement.travels {
            let u = unit_of[&i];
            if units[u].len() == 1 {
                for w in 0..h {
                    model.add_eq(
                        format!("travel_n{j}_i{i}_w{}", w + 1),
                        vec![(moved[u][w], 1.0), (gone[j][w], -1.0)],
                        0.0,
                    );
                }
            }
        }
        // The parts of a namespace move one after the other: part j has moved by
        // wave w only if the part before it had by wave w - 1.
        for (j, after) in data.namespace_after.iter().enumerate() {
            let Some(p) = *after else { continue };
            for w in 0..h {
                let mut row = vec![(gone[j][w], 1.0)];
                if w > 0 {
                    row.push((gone[p][w - 1], -1.0));
                }
                model.add_le(format!("part_n{j}_w{}", w + 1), row, 0.0);
            }
        }
        // Budgets.
        for w in 0..h {
            let mut row: Vec<(usize, f64)> = Vec::new();
            for columns in &moved {
                row.push((columns[w], 1.0));
                if w > 0 {
                    row.push((columns[w - 1], -1.0));
                }
            }
            row.push((active[w], -(budget.nodes as f64)));
            model.add_le(format!("nodebudget_w{}", w + 1), row, 0.0);
            let mut row: Vec<(usize, f64)> = Vec::new();
            for columns in &gone {
                row.push((columns[w], 1.0));
                if w > 0 {
                    row.push((columns[w - 1], -1.0));
                }
            }
            row.push((active[w], -(budget.namespaces as f64)));
            model.add_le(format!("nsbudget_w{}", w + 1), row, 0.0);
        }
        // Capacity of the sources during every wave (their demand before the wave,
        // their workers not moved by the end of the wave). Solutions are replayed
        // exactly before use, so the rows carry no safety margin.
        for s in (0..n_sources).filter(|&s| data.source_checked[s]) {
            let demand = model_units(
                (0..data.n_namespaces())
                    .filter(|&j| data.namespace_source[j] == s)
                    .map(|j| data.namespace_demand[j])
                    .sum(),
            );
            let allocatable = model_units(
                (0..data.n_nodes())
                    .filter(|&i| data.node_source[i] == s && !data.node_source_control_plane[i])
                    .map(|i| data.node_allocatable[i])
                    .sum(),
            );
            for r in 0..3 {
                if demand[r] <= 0.0 {
                    continue;
                }
                let factor = usable(headroom[r], 1.0);
                for w in 0..h {
                    let mut row = Vec::new();
                    for (u, members) in units.iter().enumerate() {
                        let i = members[0];
                        if data.node_source[i] == s && !data.node_source_control_plane[i] {
                            row.push((moved[u][w], -factor * model_units(data.node_allocatable[i])[r]));
                        }
                    }
                    if w > 0 {
                        for (j, columns) in gone.iter().enumerate() {
                            if data.namespace_source[j] == s {
                                row.push((columns[w - 1], model_units(data.namespace_demand[j])[r]));
                            }
                        }
                    }
                    let rhs = demand[r] - factor * allocatable[r];
                    model.add_ge(format!("source_s{s}_r{r}_w{}", w + 1), row, rhs);
                }
            }
        }
        // Capacity of the targets during every wave (nodes joined before it,
        // namespaces moved by its end).
        for t in 0..assignment.n_targets {
            for r in 0..3 {
                let factor = usable(headroom[r], 1.0);
                for w in 0..h {
                    let mut row = Vec::new();
                    for (j, columns) in gone.iter().enumerate() {
                        if assignment.namespace_target[j] == t {
                            row.push((columns[w], -model_units(data.namespace_demand[j])[r]));
                        }
                    }
                    if row.is_empty() {
                        continue;
                    }
                    if w > 0 {
                        for (u, members) in units.iter().enumerate() {
                            if assignment.counts_for_target(members[0]) == Some(t) {
                                row.push((moved[u][w - 1], factor * model_units(data.node_allocatable[members[0]])[r]));
                            }
                        }
                    }
                    model.add_ge(format!("target_t{t}_r{r}_w{}", w + 1), row, 0.0);
                }
            }
        }
        // The same for every placement-class row (`classes.rs`), in the row's unit;
        // pods that travel with their nodes are paired with them instead.
        for (k, row) in data.placement.rows.iter().enumerate().filter(|(_, row)| !row.travels) {
            let factor = usable(row.headroom, 1.0);
            let supply = |i: usize| row.node_supply[i] as f64 / row.unit;
            let need = |j: usize| row.namespace_need[j] as f64 / row.unit;
            for s in (0..n_sources).filter(|&s| data.source_checked[s]) {
                let demand: f64 = (0..data.n_namespaces()).filter(|&j| data.namespace_source[j] == s).map(need).sum();
                if demand <= 0.0 {
                    continue;
                }
                let available: f64 = (0..data.n_nodes())
                    .filter(|&i| data.node_source[i] == s && !data.node_source_control_plane[i])
                    .map(supply)
                    .sum();
                for w in 0..h {
                    let mut terms = Vec::new();
                    for (u, members) in units.iter().enumerate() {
                        let i = members[0];
                        if data.node_source[i] == s && !data.node_source_control_plane[i] && supply(i) > 0.0 {
                            terms.push((moved[u][w], -factor * supply(i)));
                        }
                    }
                    if w > 0 {
                        for (j, columns) in gone.iter().enumerate() {
                            if data.namespace_source[j] == s && need(j) > 0.0 {
                                terms.push((columns[w - 1], need(j)));
                            }
                        }
                    }
                    model.add_ge(format!("class{k}_s{s}_w{}", w + 1), terms, demand - factor * available);
                }
            }
            for t in 0..assignment.n_targets {
                for w in 0..h {
                    let mut terms = Vec::new();
                    for (j, columns) in gone.iter().enumerate() {
                        if assignment.namespace_target[j] == t && need(j) > 0.0 {
                            terms.push((columns[w], -need(j)));
                        }
                    }
                    if terms.is_empty() {
                        continue;
                    }
                    if w > 0 {
                        for (u, members) in units.iter().enumerate() {
                            if assignment.counts_for_target(members[0]) == Some(t) && supply(members[0]) > 0.0 {
                                terms.push((moved[u][w - 1], factor * supply(members[0])));
                            }
                        }
                    }
                    model.add_ge(format!("class{k}_t{t}_w{}", w + 1), terms, 0.0);
                }
            }
        }
        // SLA order: a threshold wave between consecutive ranks.
        let mut ranks: Vec<usize> = data.namespace_sla_rank.clone();
        ranks.sort_unstable();
        ranks.dedup();
        let mut thresholds = Vec::new();
        for pair in ranks.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let theta = model.add_variable(format!("sla_after_rank{before}"), 1.0, horizon as f64, false, 0.0);
            thresholds.push((before, theta));
            for (j, columns) in gone.iter().enumerate() {
                let rank = data.namespace_sla_rank[j];
                if rank != before && rank != after {
                    continue;
                }
                // wave(j) = h + 1 - Σ_w gone[j][w]
                let mut row: Vec<(usize, f64)> = columns.iter().map(|&c| (c, -1.0)).collect();
                row.push((theta, -1.0));
                if rank == before {
                    model.add_le(format!("sla_n{j}_le_rank{before}"), row, -(h as f64 + 1.0));
                } else {
                    model.add_ge(format!("sla_n{j}_ge_rank{before}"), row, -(h as f64 + 1.0));
                }
            }
        }
        // Retirement: a source's control-plane nodes move in the wave after which
        // nothing of it is left.
        let mut retired = BTreeMap::new();
        for s in 0..n_sources {
            let cp_units: Vec<usize> = (0..units.len())
                .filter(|&u| data.node_source[units[u][0]] == s && data.moves_at_retirement(units[u][0]))
                .collect();
            if cp_units.is_empty() {
                continue;
            }
            let columns: Vec<usize> = (0..h)
                .map(|w| {
                    let lower = if w + 1 == h { 1.0 } else { 0.0 };
                    model.add_variable(format!("retired_s{s}_w{}", w + 1), lower, 1.0, true, 0.0)
                })
                .collect();
            for w in 0..h {
                for u in 0..units.len() {
                    let i = units[u][0];
                    if data.node_source[i] != s {
                        continue;
                    }
                    let n = units[u].len() as f64;
                    if data.moves_at_retirement(i) {
                        model.add_eq(format!("retcp_u{u}_w{}", w + 1), vec![(moved[u][w], 1.0), (columns[w], -n)], 0.0);
                    } else {
                        model.add_ge(
                            format!("retnode_u{u}_w{}", w + 1),
                            vec![(moved[u][w], 1.0), (columns[w], -n)],
                            0.0,
                        );
                    }
                }
                for (j, gone_j) in gone.iter().enumerate() {
                    if data.namespace_source[j] == s {
                        model.add_ge(format!("retns_n{j}_w{}", w + 1), vec![(gone_j[w], 1.0), (columns[w], -1.0)], 0.0);
                    }
                }
            }
            retired.insert(s, columns);
        }
        // A target's control plane joins first: `ready[t][w]` says all its
        // control-plane nodes have joined by the end of wave `w + 1`; no other
        // node or namespace is in the target before.
        let mut ready = BTreeMap::new();
        for t in 0..assignment.n_targets {
            let in_target = |u: usize| assignment.node_destination[units[u][0]] == Destination::Target(t);
            let control_plane = |u: usize| assignment.node_target_control_plane[units[u][0]];
            if !(0..units.len()).any(|u| in_target(u) && control_plane(u)) {
                continue;
            }
            let columns: Vec<usize> = (0..h)
                .map(|w| {
                    let lower = if w + 1 == h { 1.0 } else { 0.0 };
                    model.add_variable(format!("ready_t{t}_w{}", w + 1), lower, 1.0, true, 0.0)
                })
                .collect();
            for w in 0..h {
                for u in (0..units.len()).filter(|&u| in_target(u)) {
                    let n = units[u].len() as f64;
                    let row = vec![(moved[u][w], 1.0), (columns[w], -n)];
                    if control_plane(u) {
                        model.add_ge(format!("cpready_u{u}_w{}", w + 1), row, 0.0);
                    } else {
                        model.add_le(format!("cpfirst_u{u}_w{}", w + 1), row, 0.0);
                    }
                }
                for (j, gone_j) in gone.iter().enumerate() {
                    if assignment.namespace_target[j] == t {
                        model.add_le(
                            format!("cpfirst_n{j}_w{}", w + 1),
                            vec![(gone_j[w], 1.0), (columns[w], -1.0)],
                            0.0,
                        );
                    }
                }
            }
            let nodes: Vec<usize> =
                (0..units.len()).filter(|&u| in_target(u) && control_plane(u)).flat_map(|u| units[u].clone()).collect();
            ready.insert(t, (nodes, columns));
        }
        WavesModel { model, horizon, units, moved, gone, active, retired, ready, thresholds }
    }

    /// The model's columns for a schedule that fits the horizon.
    pub fn encode(&self, data: &BlockData, schedule: &Schedule) -> Option<Vec<f64>> {
        if schedule.n_waves > self.horizon {
            return None;
        }
        let h = self.horizon as usize;
        let mut values = vec![0.0; self.model.variables.len()];
        for w in 0..h {
            values[self.active[w]] = if (w as u32) < schedule.n_waves { 1.0 } else { 0.0 };
        }
        for (u, members) in self.units.iter().enumerate() {
            for w in 0..h {
                let by = (w + 1) as u32;
                values[self.moved[u][w]] = members.iter().filter(|&&i| schedule.node_wave[i] <= by).count() as f64;
            }
        }
        for (j, columns) in self.gone.iter().enumerate() {
            for (w, &c) in columns.iter().enumerate() {
                values[c] = if schedule.namespace_wave[j] <= (w + 1) as u32 { 1.0 } else { 0.0 };
            }
        }
        let n_sources =
            self.retired.keys().max().map_or(0, |&s| s + 1).max(data.node_source.iter().max().map_or(0, |&s| s + 1));
        let retirement =
            schedule.retirement_waves(data, n_sources.max(data.namespace_source.iter().max().map_or(0, |&s| s + 1)));
        for (&s, columns) in &self.retired {
            for (w, &c) in columns.iter().enumerate() {
                values[c] = if retirement[s] <= (w + 1) as u32 { 1.0 } else { 0.0 };
            }
        }
        for (nodes, columns) in self.ready.values() {
            let joined = nodes.iter().map(|&i| schedule.node_wave[i]).max().unwrap_or(0);
            for (w, &c) in columns.iter().enumerate() {
                values[c] = if joined <= (w + 1) as u32 { 1.0 } else { 0.0 };
            }
        }
        for &(rank, theta) in &self.thresholds {
            let latest = (0..data.n_namespaces())
                .filter(|&j| data.namespace_sla_rank[j] == rank)
                .map(|j| schedule.namespace_wave[j])
                .max()
                .unwrap_or(1);
            values[theta] = latest.max(1) as f64;
        }
        Some(values)
    }

    /// The schedule a solution describes; units' nodes move in their pool order.
    pub fn decode(&self, data: &BlockData, values: &[f64]) -> Schedule {
        let h = self.horizon as usize;
        let mut node_wave = vec![0u32; data.n_nodes()];
        for (u, members) in self.units.iter().enumerate() {
            let mut done = 0usize;
            for w in 0..h {
                let by = (values[self.moved[u][w]].round().max(0.0) as usize).min(members.len());
                for &i in &members[done.min(by)..by] {
                    node_wave[i] = (w + 1) as u32;
                }
                done = done.max(by);
            }
        }
        let namespace_wave: Vec<u32> = self
            .gone
            .iter()
            .map(|columns| columns.iter().position(|&c| values[c] > 0.5).map_or(self.horizon, |w| (w + 1) as u32))
            .collect();
        let n_waves = node_wave.iter().chain(&namespace_wave).copied().max().unwrap_or(0);
        Schedule { node_wave, namespace_wave, n_waves }
    }
}

/// Nodes grouped into interchangeable units for the waves model.
fn node_units(data: &BlockData, assignment: &Assignment) -> Vec<Vec<usize>> {
    let mut units: BTreeMap<(usize, Destination, bool), Vec<usize>> = BTreeMap::new();
    for (p, pool) in data.pools.iter().enumerate() {
        for &i in &pool.members {
            units
                .entry((p, assignment.node_destination[i], assignment.node_target_control_plane[i]))
                .or_default()
                .push(i);
        }
    }
    units.into_values().collect()
}
