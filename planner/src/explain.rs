//! Why a block cannot be planned, in a user's words: which block, which resource,
//! how much is needed (demand ÷ (1 - headroom)) and how much the allowed zones
//! hold, or which policy rules conflict. Never a bare "infeasible".

// Resource, zone and wave indexes address several parallel arrays at once.
#![allow(clippy::needless_range_loop)]

use std::collections::BTreeMap;

use kplan_model::Resources;

use super::context::BlockContext;
use super::headroom::{first_misfit, fits, fits_one, usable};
use super::realize::RealizeFailure;
use super::waves::{ClassShort, Side, Stall, StallKind};

const RESOURCES: [&str; 3] = ["cpu", "memory", "pods"];

fn part(r: Resources, k: usize) -> u64 {
    [r.cpu_millis, r.memory_bytes, r.pods][k]
}

/// A resource amount in the user's units: cores, GiB, pods.
pub fn amount(k: usize, value: f64) -> String {
    match k {
        0 => {
            let cores = value / 1000.0;
            if (cores - cores.round()).abs() < 0.005 {
                format!("{} cores", cores.round() as i64)
            } else {
                format!("{cores:.2} cores")
            }
        }
        1 => format!("{:.1} GiB", value / (1u64 << 30) as f64),
        _ => format!("{} pods", value.ceil() as i64),
    }
}

fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 100.0 * 10.0).round() / 10.0)
}

fn zone_list(zones: &[String]) -> String {
    zones.iter().map(|z| if z.is_empty() { "(no zone)".to_string() } else { z.clone() }).collect::<Vec<_>>().join(", ")
}

/// Why a block cannot be planned, found before any model is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precheck {
    pub explanation: String,
    /// The hand-over of pods confined to some nodes cannot be staged in one
    /// piece: moving namespaces in parts may help (`parts.rs`).
    pub staging: bool,
}

/// Infeasibilities that need no solve. `None` when none is found.
pub fn precheck(ctx: &BlockContext) -> Option<Precheck> {
    precheck_words(ctx).map(|(explanation, staging)| Precheck { explanation, staging })
}

fn precheck_words(ctx: &BlockContext) -> Option<(String, bool)> {
    let key = &ctx.block.key;
    let data = &ctx.data;
    let policy = ctx.policy;
    let tier = &key.security_tier;
    let n_nodes = data.n_nodes();
    let n_namespaces = data.n_namespaces();

    if n_nodes == 0 {
        return Some((
            format!(
                "block {key}: {n_namespaces} namespaces of tier {tier} must move ({}), but no node of tier {tier} is in datacenter {}: nothing can host them",
                demand_words(data.demand),
                key.datacenter
            ),
            false,
        ));
    }
    if ctx.block.allowed_zones.is_empty() {
        let zones: Vec<String> = ctx
            .block
            .forbidden_zones
            .iter()
            .map(|z| {
                let tiers = ctx.zone_tiers.hosted_tiers(policy, z);
                let source =
                    if policy.zones.contains_key(z) { "policy.zones" } else { "unlisted: what it hosts today" };
                if tiers.is_empty() {
                    format!("zone {z} may host no tier ({source})")
                } else {
                    format!("zone {z} may host only {} ({source})", tiers.join(", "))
                }
            })
            .collect();
        return Some((
            format!(
                "block {key}: no firewall zone of its nodes may host tier {tier}: {}; allow {tier} in one of these zones (policy.zones.<zone>.tiers) or set unlisted_zones_host_any_tier",
                zones.join("; ")
            ),
            false,
        ));
    }
    if ctx.budget.nodes == 0 {
        return Some((
            format!(
                "block {key}: wave_budget.nodes is 0 but {n_nodes} nodes must be drained (joined to the target or freed); the policy allows no wave to make progress"
            ),
            false,
        ));
    }
    if n_namespaces > 0 && ctx.budget.namespaces == 0 {
        return Some((
            format!(
                "block {key}: wave_budget.namespaces is 0 but {n_namespaces} namespaces must move; the policy allows no wave to make progress"
            ),
            false,
        ));
    }
    for s in 0..ctx.n_sources() {
        let n_control_plane = (0..n_nodes).filter(|&i| data.node_source[i] == s && data.moves_at_retirement(i)).count();
        if n_control_plane as u64 > ctx.budget.nodes {
            return Some((
                format!(
                    "block {key}: cluster {} has {n_control_plane} control-plane nodes, which all move in the wave that retires it, but wave_budget.nodes is {}; raise the node budget to at least {n_control_plane}",
                    ctx.source_id(s),
                    ctx.budget.nodes
                ),
                false,
            ));
        }
    }
    let allowed_nodes = data.node_allowed.iter().filter(|&&a| a).count();
    if allowed_nodes < ctx.n_control_plane {
        return Some((
            format!(
                "block {key}: the target needs {} control-plane nodes but only {allowed_nodes} of its {} {} in zones that may host tier {tier} ({})",
                ctx.n_control_plane,
                nodes_word(n_nodes),
                if allowed_nodes == 1 { "is" } else { "are" },
                zone_list(&ctx.block.allowed_zones)
            ),
            false,
        ));
    }
    // The target's control plane is made of source workers (`docs/plan-semantics.md`).
    let allowed_workers = (0..n_nodes).filter(|&i| data.node_allowed[i] && !data.node_source_control_plane[i]).count();
    if allowed_workers < ctx.n_control_plane {
        return Some((
            format!(
                "block {key}: the target needs {} control-plane nodes, which join it before anything else and so must be workers of the sources (their own control-plane nodes leave only when they retire), but only {allowed_workers} worker {} in zones that may host tier {tier} ({})",
                ctx.n_control_plane,
                if allowed_workers == 1 { "node is" } else { "nodes are" },
                zone_list(&ctx.block.allowed_zones)
            ),
            false,
        ));
    }
    if (policy.max_nodes_per_cluster as usize) < ctx.n_control_plane {
        return Some((
            format!(
                "block {key}: max_nodes_per_cluster is {} but a target needs {} control-plane nodes",
                policy.max_nodes_per_cluster, ctx.n_control_plane
            ),
            false,
        ));
    }
    if policy.survive_zone_loss && ctx.block.allowed_zones.len() == 1 && data.demand != Resources::ZERO {
        return Some((
            format!(
                "block {key}: survive_zone_loss is set but only zone {} may host tier {tier} in {}: losing it loses every node; allow a second zone for {tier} or unset survive_zone_loss",
                zone_list(&ctx.block.allowed_zones),
                key.datacenter
            ),
            false,
        ));
    }

    // Capacity of the allowed zones, minus the smallest nodes a dedicated control plane takes.
    let mut allowed_sizes: Vec<Resources> =
        (0..n_nodes).filter(|&i| data.node_allowed[i]).map(|i| data.node_allocatable[i]).collect();
    for k in 0..3 {
        let demand = part(data.demand, k) as f64;
        if demand <= 0.0 {
            continue;
        }
        allowed_sizes.sort_by_key(|r| part(*r, k));
        let reserved: f64 = if ctx.dedicated_control_plane {
            allowed_sizes.iter().take(ctx.n_control_plane).map(|r| part(*r, k) as f64).sum()
        } else {
            0.0
        };
        let total: f64 = allowed_sizes.iter().map(|r| part(*r, k) as f64).sum();
        let hold = total - reserved;
        let factor = usable(ctx.headroom[k], 1.0);
        let needed = demand / factor;
        if !fits_one(demand, ctx.headroom[k], hold) {
            let cp = if ctx.dedicated_control_plane {
                format!(" after {} dedicated control-plane nodes ({})", ctx.n_control_plane, amount(k, reserved))
            } else {
                String::new()
            };
            return Some((
                format!(
                    "block {key}: not enough {}: the namespaces need {} ({} of requests ÷ (1 - {} headroom)), but the {} in the zones that may host tier {tier} ({}) {} {}{cp}; short by {}",
                    RESOURCES[k],
                    amount(k, needed),
                    amount(k, demand),
                    percent(ctx.headroom[k]),
                    nodes_word(allowed_nodes),
                    zone_list(&ctx.block.allowed_zones),
                    if allowed_nodes == 1 { "holds" } else { "hold" },
                    amount(k, hold),
                    amount(k, needed - hold)
                ),
                false,
            ));
        }
        if policy.survive_zone_loss {
            let mut by_zone: BTreeMap<&str, f64> = BTreeMap::new();
            for i in 0..n_nodes {
                if data.node_allowed[i] {
                    *by_zone.entry(data.node_zone[i].as_str()).or_default() += part(data.node_allocatable[i], k) as f64;
                }
            }
            let (largest, largest_amount) = by_zone
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(z, a)| (z.to_string(), *a))
                .unwrap_or_default();
            let left = total - largest_amount;
            if !fits_one(demand, ctx.headroom[k], left) {
                return Some((
                    format!(
                        "block {key}: survive_zone_loss cannot hold for {}: the namespaces need {} ({} ÷ (1 - {} headroom)), but after losing zone {largest} (the largest, {}) the other zones hold at most {}",
                        RESOURCES[k],
                        amount(k, needed),
                        amount(k, demand),
                        percent(ctx.headroom[k]),
                        amount(k, largest_amount),
                        amount(k, left)
                    ),
                    false,
                ));
            }
        }
    }

    // Pods that no node can host, and placement classes the allowed zones cannot hold.
    if let Some(homeless) = data.placement.homeless.first() {
        let more = data.placement.homeless.len() - 1;
        let more = if more > 0 { format!(" (and {more} more workloads)") } else { String::new() };
        return Some((format!("block {key}: {homeless}{more}"), false));
    }
    for row in &data.placement.rows {
        let supply: u64 = (0..n_nodes).filter(|&i| data.node_allowed[i]).map(|i| row.node_supply[i]).sum();
        if !row.fits(row.total_need(), supply) {
            let set = &data.placement.sets[row.set];
            return Some((
                format!(
                    "block {key}: {} may only run on nodes that are {}; those in zones that may host tier {tier} offer {} {}, but they request {}{}",
                    set.workloads.join(", "),
                    set.nodes,
                    row.resource,
                    row.amount(supply),
                    row.amount(row.total_need()),
                    if row.headroom > 0.0 {
                        format!(" (with {} headroom)", percent(row.headroom))
                    } else {
                        String::new()
                    }
                ),
                false,
            ));
        }
    }

    // A hand-over no choice of nodes allows: while a source's pods confined to
    // some nodes move, its own nodes of that kind and the target's hold both
    // copies, and the other sources' nodes of that kind are too few.
    for cut in &ctx.input.staging_cuts {
        let Some(k) = cut.class_row else { continue };
        let class = &ctx.input.class_rows[k];
        let factor = usable(class.headroom, 1.0);
        let others: f64 = ctx
            .input
            .pools
            .iter()
            .enumerate()
            .filter(|(_, pool)| pool.source != cut.source && pool.zone.is_some())
            .map(|(p, pool)| factor * class.pool_supply[p] * pool.count as f64)
            .sum();
        if cut.rhs > others + 1e-9 {
            let row = &data.placement.rows[k];
            let set = &data.placement.sets[row.set];
            let unit = |x: f64| row.amount((x * row.unit).round() as u64);
            return Some((
                format!(
                    "block {key}: {} may only run on nodes that are {}; while they move, cluster {} must hold them on its own such nodes and the target too: that needs {} more {} (usable) than cluster {}'s own such nodes can give, and the other clusters' such nodes give {}; keep or add a temporary buffer node of this kind in the target for the migration, or move these workloads a few replicas at a time",
                    set.workloads.join(", "),
                    set.nodes,
                    ctx.source_id(cut.source),
                    unit(cut.rhs),
                    row.resource,
                    ctx.source_id(cut.source),
                    unit(others),
                ),
                true,
            ));
        }
    }

    // Sources that already break their headroom.
    for s in 0..ctx.n_sources() {
        if let Some(text) = overloaded_source(ctx, s) {
            return Some((text, false));
        }
    }
    None
}

fn nodes_word(n: usize) -> String {
    if n == 1 { "1 node".to_string() } else { format!("{n} nodes") }
}

fn demand_words(demand: Resources) -> String {
    (0..3).map(|k| amount(k, part(demand, k) as f64)).collect::<Vec<_>>().join(", ")
}

/// A source that does not hold its own demand with headroom before any wave.
fn overloaded_source(ctx: &BlockContext, s: usize) -> Option<String> {
    let data = &ctx.data;
    if !data.source_checked[s] {
        return None;
    }
    let demand: Resources =
        (0..data.n_namespaces()).filter(|&j| data.namespace_source[j] == s).map(|j| data.namespace_demand[j]).sum();
    let workers: Resources = (0..data.n_nodes())
        .filter(|&i| data.node_source[i] == s && !data.node_source_control_plane[i])
        .map(|i| data.node_allocatable[i])
        .sum();
    if fits(demand, workers, &ctx.headroom) {
        return None;
    }
    let k = first_misfit(demand, workers, &ctx.headroom).unwrap_or(0);
    let factor = usable(ctx.headroom[k], 1.0);
    Some(format!(
        "block {}: cluster {} already runs above its headroom before any wave: its namespaces request {} of {}, but {} of its workers' {} is {}; no node can be drained from it and the staged merge cannot start (raise the capacity of {} or lower the {} headroom)",
        ctx.block.key,
        ctx.source_id(s),
        amount(k, part(demand, k) as f64),
        RESOURCES[k],
        percent(factor),
        amount(k, part(workers, k) as f64),
        amount(k, factor * part(workers, k) as f64),
        ctx.source_id(s),
        RESOURCES[k]
    ))
}

/// Why no candidate composition became a plan.
pub fn no_plan(ctx: &BlockContext, failures: &[RealizeFailure], model_infeasible: bool) -> String {
    let key = &ctx.block.key;
    for failure in failures {
        match failure {
            RealizeFailure::Stall { stall, .. } => return stall_words(ctx, stall),
            RealizeFailure::Class(short) => return format!("block {key}: {}", class_short_words(ctx, short)),
            _ => {}
        }
    }
    let tier = &key.security_tier;
    let zone_loss = if ctx.policy.survive_zone_loss { " and still holds it after losing any one zone" } else { "" };
    let reason = if model_infeasible {
        "the model proves there is no"
    } else {
        "neither the model (within its deadline) nor the greedy heuristic found any"
    };
    let needs: Vec<String> = (0..3)
        .filter(|&k| part(ctx.data.demand, k) > 0)
        .map(|k| {
            let demand = part(ctx.data.demand, k) as f64;
            let total: f64 = (0..ctx.data.n_nodes())
                .filter(|&i| ctx.data.node_allowed[i])
                .map(|i| part(ctx.data.node_allocatable[i], k) as f64)
                .sum();
            format!(
                "{} needs {} ({} ÷ (1 - {})), the allowed zones hold {} in all",
                RESOURCES[k],
                amount(k, demand / usable(ctx.headroom[k], 1.0)),
                amount(k, demand),
                percent(ctx.headroom[k]),
                amount(k, total)
            )
        })
        .collect();
    format!(
        "block {key}: {reason} choice of nodes in the zones that may host tier {tier} ({}) that keeps {} control-plane nodes in {} distinct zones{} (workers their sources can give up while still running all their namespaces with headroom: the control plane joins first), at most {} nodes per target, and holds the demand with headroom{zone_loss}; {}",
        zone_list(&ctx.block.allowed_zones),
        ctx.n_control_plane,
        ctx.control_plane_zones,
        if ctx.dedicated_control_plane { " (dedicated: their capacity does not count)" } else { "" },
        ctx.policy.max_nodes_per_cluster,
        if needs.is_empty() { "the block has no demand".to_string() } else { needs.join("; ") }
    )
}

/// A stalled schedule, in words.
pub fn stall_words(ctx: &BlockContext, stall: &Stall) -> String {
    let key = &ctx.block.key;
    let data = &ctx.data;
    match &stall.kind {
        StallKind::SourceOverloaded { source } => overloaded_source(ctx, *source).unwrap_or_else(|| {
            format!("block {key}: cluster {} does not hold its demand before any wave", ctx.source_id(*source))
        }),
        StallKind::BudgetZero => format!("block {key}: the wave budget is zero, so no wave can make progress"),
        StallKind::Stuck { next_namespace, sources_without_slack, class_short } => {
            let mut parts = Vec::new();
            if let Some(short) = class_short {
                parts.push(format!("block {key}: the staged merge stalls at wave {}", stall.wave));
                parts.push(class_short_words(ctx, short));
                return parts.join("; ");
            }
            if stall.wave == 1 {
                parts.push(format!(
                    "block {key}: staging impossible: no source cluster has the slack to drain even one node in wave 1, and the target holds nothing until nodes join it"
                ));
            } else {
                parts.push(format!("block {key}: the staged merge stalls at wave {}", stall.wave));
            }
            if let Some(next) = next_namespace {
                let j = next.namespace;
                let k = (0..3)
                    .find(|&k| {
                        let need = part(next.target_demand, k) + part(data.namespace_demand[j], k);
                        !fits_one(need as f64, ctx.headroom[k], part(next.target_allocatable, k) as f64)
                    })
                    .unwrap_or(0);
                parts.push(format!(
                    "the next namespace to move, {} of {} ({}), does not fit in target {} yet: it holds {} of {} for workloads ({} with {} headroom) and already runs {}",
                    ctx.unit_label(j),
                    ctx.source_id(data.namespace_source[j]),
                    demand_words(data.namespace_demand[j]),
                    key.target_name(next.target),
                    amount(k, part(next.target_allocatable, k) as f64),
                    RESOURCES[k],
                    amount(k, usable(ctx.headroom[k], part(next.target_allocatable, k) as f64)),
                    percent(ctx.headroom[k]),
                    amount(k, part(next.target_demand, k) as f64)
                ));
            }
            let details: Vec<String> = sources_without_slack
                .iter()
                .take(5)
                .map(|stuck| {
                    let k = (0..3)
                        .find(|&k| {
                            let left = part(stuck.workers_left, k).saturating_sub(part(stuck.smallest_waiting, k));
                            !fits_one(part(stuck.demand, k) as f64, ctx.headroom[k], left as f64)
                        })
                        .unwrap_or(0);
                    format!(
                        "{} still runs {} of {} on {} of workers, and without its smallest waiting node ({}) it would exceed {} of what is left",
                        ctx.source_id(stuck.source),
                        amount(k, part(stuck.demand, k) as f64),
                        RESOURCES[k],
                        amount(k, part(stuck.workers_left, k) as f64),
                        amount(k, part(stuck.smallest_waiting, k) as f64),
                        percent(usable(ctx.headroom[k], 1.0))
                    )
                })
                .collect();
            if !details.is_empty() {
                parts.push(format!("no waiting node can leave its source: {}", details.join("; ")));
            }
            let order: Vec<&str> = ctx.policy.sla_order.iter().map(|t| t.as_str()).collect();
            parts.push(format!(
                "the policy keeps headroom in every cluster at every wave and moves SLA tiers in the order {}: staging needs more slack in the sources, more allowed capacity for the target early on, or a lower headroom during the migration",
                order.join(", ")
            ));
            parts.join("; ")
        }
    }
}

/// A placement-class row that does not hold, in words: which workloads, on
/// which nodes, in which cluster, need and supply, and what would help.
pub fn class_short_words(ctx: &BlockContext, short: &ClassShort) -> String {
    let data = &ctx.data;
    let row = &data.placement.rows[short.row];
    let set = &data.placement.sets[row.set];
    let cluster = match short.side {
        Side::Source(s) => format!("source cluster {}", ctx.source_id(s)),
        Side::Target(t) => format!("target {}", ctx.block.key.target_name(t)),
    };
    let shown: Vec<&str> = set.workloads.iter().take(5).map(String::as_str).collect();
    let more = if set.workloads.len() > shown.len() {
        format!(" and {} more", set.workloads.len() - shown.len())
    } else {
        String::new()
    };
    let usable = (usable(row.headroom, short.supply as f64)).floor().max(0.0) as u64;
    let have = if row.headroom > 0.0 {
        format!(
            "{} allocatable, {} usable with {} headroom",
            row.amount(short.supply),
            row.amount(usable),
            percent(row.headroom)
        )
    } else {
        row.amount(short.supply)
    };
    let mut text = format!(
        "{} may only run on nodes that are {} ({} in the block); in {cluster} they would need {} {} but have {have}",
        format_args!("{}{more}", shown.join(", ")),
        set.nodes,
        set.n_nodes,
        row.resource,
        row.amount(short.need),
    );
    if let Some(j) = short.namespace {
        text.push_str(&format!(" when {} of {} moves", ctx.unit_label(j), ctx.source_id(data.namespace_source[j])));
    }
    if let Some(i) = short.node {
        text.push_str(&format!(" if node {} leaves", ctx.node_name(i)));
    }
    if matches!(short.side, Side::Source(_)) && short.node.is_none() {
        text.push_str(": the source already lacks such nodes, or breaks their headroom, before any wave");
    } else if short.namespace.is_some() || short.node.is_some() {
        text.push_str(
            ": these pods need such nodes in their source until they move and in the target from the moment they \
             arrive, so at least one more node of this kind must be kept (or added for the migration as a temporary \
             buffer node) to hand them over in stages",
        );
    } else {
        text.push_str(": the target must keep more nodes of this kind");
    }
    text
}

/// Every candidate was rejected by the planner's replay or the validator.
pub fn rejected(ctx: &BlockContext, violations: &[String]) -> String {
    let shown: Vec<&str> = violations.iter().take(10).map(String::as_str).collect();
    let more = if violations.len() > shown.len() {
        format!(" (and {} more)", violations.len() - shown.len())
    } else {
        String::new()
    };
    format!("block {}: no plan the planner could make passed the validator: {}{more}", ctx.block.key, shown.join("; "))
}

/// The plain note on a target's control plane, or empty.
pub fn control_plane_note(ctx: &BlockContext, control_plane_zones: &[String]) -> String {
    let key = &ctx.block.key;
    if ctx.small_site {
        return format!(
            "small site ({} nodes, at most {}): one K3s server node instead of three dedicated control-plane nodes",
            ctx.data.n_nodes(),
            ctx.policy.small_site_max_nodes
        );
    }
    let allowed = &ctx.block.allowed_zones;
    if allowed.len() >= 3 {
        return String::new();
    }
    let zones = if control_plane_zones.is_empty() { allowed.as_slice() } else { control_plane_zones };
    match allowed.len() {
        1 => format!(
            "only one firewall zone ({}) may host tier {} in {}: all three control-plane nodes are in it, so one network fault in that zone takes the whole control plane down; allow the tier in two more zones for a highly available control plane",
            zone_list(zones),
            key.security_tier,
            key.datacenter
        ),
        _ => format!(
            "only {} firewall zones ({}) may host tier {} in {}: the three control-plane nodes span {} zones, so losing the zone with two of them loses etcd quorum; allow the tier in a third zone for a highly available control plane",
            allowed.len(),
            zone_list(zones),
            key.security_tier,
            key.datacenter,
            allowed.len()
        ),
    }
}
