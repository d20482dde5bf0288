//! The greedy composition: first-fit decreasing, without the solver.
//!
//! Per target (one, or more when a target would exceed `max_nodes_per_cluster`,
//! each holding an equal share of the demand): take the allowed zones by capacity,
//! largest first, as many as the control plane needs; put the control plane on the
//! smallest node of each of those zones; then keep the largest remaining nodes of
//! the chosen zones until the demand fits with headroom (and, with
//! `survive_zone_loss`, still fits without any one zone), opening the next zone
//! when the chosen ones run out. It ignores firewall flows, which is what the
//! model improves on. Its plan is the warm start, the fallback, and the baseline
//! reported as `greedy_objective`.

// Resource, zone and wave indexes address several parallel arrays at once.
#![allow(clippy::needless_range_loop)]

use super::model::{Composition, CompositionInput, ZoneChoice};

use crate::headroom::{MARGIN, safe_usable, usable};

pub fn greedy_composition(input: &CompositionInput) -> Option<Composition> {
    (1..=input.max_targets.max(1)).find_map(|n_targets| compose(input, n_targets, None))
}

/// The same first-fit decreasing, for one target, within the zones of `choice`
/// and with the control plane in its control-plane zones (the solver's own
/// warm start; not the greedy baseline).
pub fn greedy_in_zones(input: &CompositionInput, choice: &ZoneChoice) -> Option<Composition> {
    compose(input, 1, Some(choice))
}

fn size(input: &CompositionInput, allocatable: &[f64; 3]) -> f64 {
    (0..3).filter(|&r| input.demand[r] > 0.0).map(|r| allocatable[r] / input.demand[r]).sum::<f64>()
        + 1e-9 * allocatable.iter().sum::<f64>()
}

fn compose(input: &CompositionInput, n_targets: usize, fixed: Option<&ZoneChoice>) -> Option<Composition> {
    let n_pools = input.pools.len();
    let mut remaining: Vec<u64> =
        input.pools.iter().map(|pool| if pool.zone.is_some() { pool.count } else { 0 }).collect();
    let need: [f64; 3] = input.demand.map(|d| d / n_targets as f64);
    // Pools, largest nodes first (ties: pool order).
    let mut by_size: Vec<usize> = (0..n_pools).filter(|&p| input.pools[p].zone.is_some()).collect();
    by_size.sort_by(|&a, &b| {
        size(input, &input.pools[b].allocatable).total_cmp(&size(input, &input.pools[a].allocatable)).then(a.cmp(&b))
    });

    let mut composition = Composition::default();
    // What each source can still give up to control planes, over all targets.
    let mut slack = input.source_slack.clone();
    let mut class_slack = input.source_class_slack.clone();
    for target in 0..n_targets {
        let mut keep = vec![0u64; n_pools];
        let mut control_plane = vec![0u64; n_pools];

        // Zones by remaining worker capacity, largest first (a zone with only
        // sources' control-plane nodes cannot host the target's control plane).
        let mut zone_capacity = vec![0.0f64; input.zones.len()];
        for (p, pool) in input.pools.iter().enumerate() {
            if let Some(z) = pool.zone
                && pool.control_plane_eligible
            {
                zone_capacity[z] += remaining[p] as f64 * size(input, &pool.allocatable);
            }
        }
        let mut zone_order: Vec<usize> = (0..input.zones.len()).filter(|&z| zone_capacity[z] > 0.0).collect();
        zone_order.sort_by(|&a, &b| zone_capacity[b].total_cmp(&zone_capacity[a]).then(a.cmp(&b)));
        if let Some(choice) = fixed {
            // The control-plane zones first, then the choice's other zones by capacity.
            let mut order: Vec<usize> = choice.control_plane_zones.clone();
            order.extend(
                zone_order
                    .iter()
                    .copied()
                    .filter(|z| choice.zones.contains(z) && !choice.control_plane_zones.contains(z)),
            );
            zone_order = order;
        }
        if zone_order.len() < input.control_plane_zones {
            return None;
        }
        let mut chosen: Vec<usize> = zone_order[..input.control_plane_zones.max(1).min(zone_order.len())].to_vec();
        let mut next_zone = chosen.len();

        // Control plane: the smallest worker of each of the first zones, then the
        // smallest others (a source's control-plane nodes leave only at its retirement).
        // A source gives them up while it still runs everything (`source_slack`).
        let smallest_in = |zones: &[usize],
                           keep: &[u64],
                           remaining: &[u64],
                           slack: &[[f64; 3]],
                           class_slack: &[Vec<f64>]|
         -> Option<usize> {
            by_size.iter().rev().copied().find(|&p| {
                let pool = &input.pools[p];
                pool.control_plane_eligible
                    && pool.zone.is_some_and(|z| zones.contains(&z))
                    && remaining[p] > keep[p]
                    && slack.get(pool.source).is_none_or(|left| {
                        (0..3).all(|r| usable(input.headroom[r], pool.allocatable[r]) <= left[r] + 1e-9)
                    })
                    && class_slack.get(pool.source).is_none_or(|left| {
                        left.iter().enumerate().all(|(k, &left)| {
                            let class = &input.class_rows[k];
                            usable(class.headroom, class.pool_supply[p]) <= left + 1e-9
                        })
                    })
            })
        };
        for k in 0..input.n_control_plane {
            let zones: Vec<usize> = if k < input.control_plane_zones { vec![chosen[k]] } else { chosen.clone() };
            let p = smallest_in(&zones, &keep, &remaining, &slack, &class_slack)?;
            keep[p] += 1;
            control_plane[p] += 1;
            if let Some(left) = slack.get_mut(input.pools[p].source) {
                for r in 0..3 {
                    left[r] -= usable(input.headroom[r], input.pools[p].allocatable[r]);
                }
            }
            if let Some(left) = class_slack.get_mut(input.pools[p].source) {
                for (k, left) in left.iter_mut().enumerate() {
                    let class = &input.class_rows[k];
                    *left -= usable(class.headroom, class.pool_supply[p]);
                }
            }
        }

        loop {
            // The deficient constraint: the base capacity, or the loss of one zone.
            // Then the placement classes (`ClassInput`), over all targets: the
            // last one keeps what the earlier ones lack.
            let short = match deficiency(input, &need, &keep, &control_plane, &chosen) {
                Some((lost, deficit)) => Some((lost, deficit, None)),
                None if target + 1 == n_targets => class_deficiency(input, &composition, &keep, &control_plane)
                    .map(|class| (None, [0.0; 3], Some(class))),
                None => None,
            };
            let Some((lost_zone, deficit, class)) = short else { break };
            // The largest node; among equal sizes, from the zone with the most
            // nodes left (so later targets still find three zones).
            let mut zone_left = vec![0u64; input.zones.len()];
            for (p, pool) in input.pools.iter().enumerate() {
                if let Some(z) = pool.zone {
                    zone_left[z] += remaining[p] - keep[p];
                }
            }
            let eligible = |p: usize| {
                let zone = input.pools[p].zone;
                remaining[p] > keep[p]
                    && zone.is_some_and(|z| chosen.contains(&z))
                    && (lost_zone.is_none() || zone != lost_zone)
                    && class.is_none_or(|(k, _)| input.class_rows[k].pool_supply[p] > 0.0)
            };
            // Workers before a source's control-plane nodes (those join only when
            // their source is retired, too late to hold its namespaces).
            let candidate = by_size.iter().copied().filter(|&p| eligible(p)).min_by(|&a, &b| {
                let size_a = size(input, &input.pools[a].allocatable);
                let size_b = size(input, &input.pools[b].allocatable);
                let left = |p: usize| input.pools[p].zone.map_or(0, |z| zone_left[z]);
                let worker = |p: usize| input.pools[p].source_worker;
                worker(b).cmp(&worker(a)).then(size_b.total_cmp(&size_a)).then(left(b).cmp(&left(a))).then(a.cmp(&b))
            });
            match candidate {
                Some(p) => {
                    let allocatable = input.pools[p].allocatable;
                    // As many nodes of this pool as the deficit needs, at least one.
                    let wanted = if let Some((k, missing)) = class {
                        let row = &input.class_rows[k];
                        (missing / usable(row.headroom, row.pool_supply[p])).ceil().max(1.0) as u64
                    } else {
                        (0..3)
                            .filter(|&r| deficit[r] > 0.0 && allocatable[r] > 0.0)
                            .map(|r| (deficit[r] / usable(input.headroom[r], allocatable[r])).ceil() as u64)
                            .max()
                            .unwrap_or(1)
                            .max(1)
                    };
                    keep[p] += wanted.min(remaining[p] - keep[p]);
                }
                None => {
                    if next_zone >= zone_order.len() {
                        return None;
                    }
                    chosen.push(zone_order[next_zone]);
                    next_zone += 1;
                }
            }
            if keep.iter().sum::<u64>() > input.max_nodes_per_target {
                return None;
            }
        }
        for p in 0..n_pools {
            remaining[p] -= keep[p];
        }
        composition.keep.push(keep);
        composition.control_plane.push(control_plane);
    }
    Some(composition)
}

/// The first capacity constraint `keep` does not meet, with the missing demand per
/// resource: `(None, deficit)` for the base capacity, `(Some(zone), deficit)` for
/// the loss of that zone.
fn deficiency(
    input: &CompositionInput,
    need: &[f64; 3],
    keep: &[u64],
    control_plane: &[u64],
    chosen: &[usize],
) -> Option<(Option<usize>, [f64; 3])> {
    let capacity_without = |lost: Option<usize>| -> [f64; 3] {
        let mut capacity = [0.0; 3];
        for (p, pool) in input.pools.iter().enumerate() {
            if pool.zone.is_none() || pool.zone == lost {
                continue;
            }
            let counted = keep[p] - if input.dedicated_control_plane { control_plane[p] } else { 0 };
            for r in 0..3 {
                capacity[r] += counted as f64 * pool.allocatable[r];
            }
        }
        capacity
    };
    let mut cases = vec![None];
    if input.survive_zone_loss {
        cases.extend(chosen.iter().map(|&z| Some(z)));
    }
    for lost in cases {
        let capacity = capacity_without(lost);
        let mut deficit = [0.0; 3];
        let mut short = false;
        for r in 0..3 {
            let usable = safe_usable(input.headroom[r], capacity[r]);
            if need[r] > 0.0 && usable < need[r] {
                deficit[r] = (need[r] - usable) / (1.0 - MARGIN);
                short = true;
            }
        }
        if short {
            return Some((lost, deficit));
        }
    }
    None
}

/// The first placement-class row that the targets already composed
/// (`earlier`) and the current one (`keep`, `control_plane`) do not hold
/// together, with what is missing (in the row's unit, before headroom).
fn class_deficiency(
    input: &CompositionInput,
    earlier: &Composition,
    keep: &[u64],
    control_plane: &[u64],
) -> Option<(usize, f64)> {
    let counted = |keep: &[u64], control_plane: &[u64], p: usize| {
        keep[p] - if input.dedicated_control_plane { control_plane[p] } else { 0 }
    };
    input.class_rows.iter().enumerate().find_map(|(k, row)| {
        let need = row.need;
        let supply: f64 = (0..input.pools.len())
            .map(|p| {
                let before: u64 =
                    (0..earlier.n_targets()).map(|t| counted(&earlier.keep[t], &earlier.control_plane[t], p)).sum();
                (before + counted(keep, control_plane, p)) as f64 * row.pool_supply[p]
            })
            .sum();
        // Without headroom (devices), exactly: 4 GPUs hold 4.
        let usable = if row.headroom <= 0.0 { supply } else { safe_usable(row.headroom, supply) };
        (need > 0.0 && usable < need).then(|| (k, (need - usable) / (1.0 - MARGIN)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PoolInput, Weights};
    use std::collections::BTreeMap;

    fn input(pools: Vec<PoolInput>, n_zones: usize, demand: [f64; 3]) -> CompositionInput {
        CompositionInput {
            name: "t".into(),
            pools,
            zones: (0..n_zones).map(|z| format!("z{z}")).collect(),
            demand,
            headroom: [0.2; 3],
            n_control_plane: 3,
            control_plane_zones: n_zones.min(3),
            dedicated_control_plane: true,
            survive_zone_loss: false,
            max_nodes_per_target: 5000,
            max_targets: 1,
            pair_flows: BTreeMap::new(),
            weights: Weights::for_block(10, 10),
            flows_lower_bound: None,
            staging_cuts: Vec::new(),
            class_rows: Vec::new(),
            source_slack: Vec::new(),
            source_class_slack: Vec::new(),
        }
    }

    #[test]
    fn keeps_the_largest_nodes_and_a_control_plane_in_three_zones() {
        let small = [2.0, 8.0, 110.0];
        let large = [16.0, 64.0, 110.0];
        let pools = vec![
            PoolInput {
                zone: Some(0),
                count: 4,
                allocatable: small,
                source: 0,
                source_worker: true,
                control_plane_eligible: true,
            },
            PoolInput {
                zone: Some(1),
                count: 4,
                allocatable: small,
                source: 0,
                source_worker: true,
                control_plane_eligible: true,
            },
            PoolInput {
                zone: Some(2),
                count: 2,
                allocatable: small,
                source: 0,
                source_worker: true,
                control_plane_eligible: true,
            },
            PoolInput {
                zone: Some(0),
                count: 3,
                allocatable: large,
                source: 0,
                source_worker: true,
                control_plane_eligible: true,
            },
        ];
        // 20 cores need 25 with 20% headroom: two large nodes (32 cores).
        let composition = greedy_composition(&input(pools, 3, [20.0, 40.0, 50.0])).unwrap();
        assert_eq!(composition.keep[0], vec![1, 1, 1, 2]);
        assert_eq!(composition.control_plane[0], vec![1, 1, 1, 0]);
    }

    #[test]
    fn fails_when_nothing_holds_the_demand() {
        let pools = vec![PoolInput {
            zone: Some(0),
            count: 4,
            allocatable: [2.0, 8.0, 110.0],
            source: 0,
            source_worker: true,
            control_plane_eligible: true,
        }];
        assert!(greedy_composition(&input(pools, 1, [100.0, 1.0, 1.0])).is_none());
    }
}
