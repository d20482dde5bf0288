//! The plan validator: replays a plan against the inventory and the policy and
//! reports every hard rule it breaks. The solver proposes; the validator decides
//! (`kplan propose` never prints a plan this rejects).
//!
//! It is written independently of the model (`model.rs`, `solve.rs`,
//! `greedy.rs`, `waves.rs`): it uses only the inventory, the policy, the flow
//! table of `flows.rs` and `namespaces::{is_platform_namespace, find_addons}`, and recomputes
//! everything else from `docs/plan-semantics.md`, which decides when the two
//! disagree. It never trusts a figure of the plan; where the plan states one
//! (capacity before and after each wave, node zones, a target's zones), it
//! checks that the figure matches what it computes.
//!
//! # Definitions
//!
//! - A cluster's **datacenter** is where most of its nodes are (ties: the
//!   lexicographically smallest), else `facts.datacenter`. A cluster is **owned**
//!   by the block (its datacenter, `facts.security_tier`): it is retired there.
//! - A **node** belongs to the block (node datacenter, its cluster's tier).
//!   A **namespace** to (its cluster's datacenter, its own tier), unless it is a
//!   platform namespace: those never move and belong to no block.
//! - A block's **add-ons** are those `namespaces::find_addons` finds among its
//!   namespaces (counting the clusters with nodes or namespaces in the block):
//!   only the largest instance of each stays in the block, and the target that
//!   lists it in `addons` (`sized_from`, `wave`) "moves" it in that wave; its
//!   other instances belong to no block.
//! - The **sources** of a block are the clusters with nodes or namespaces in it.
//!   A *foreign* source has namespaces in the block but no nodes (its namespaces
//!   are of another tier than the cluster): its nodes live in another block's
//!   timeline, so its capacity is reported but not checked here.
//! - Nodes are identified by (cluster id, node name), namespaces by (cluster id, name).
//!
//! # What is checked ([`Rule`])
//!
//! Plan shape ([`Rule::Structure`], [`Rule::Explanation`]): every block of the
//! inventory has exactly one block in the plan and the plan has no other; an
//! infeasible block has a non-empty explanation and no waves; waves are numbered
//! 1, 2, ... in order; targets are named `<datacenter>-<tier>`, `-2`, `-3`, ...,
//! unique across the plan and distinct from every source cluster id; a target's
//! `zones` are its kept nodes' zones; a target's CNI and version are the policy's
//! when the policy sets them.
//!
//! For every `planned` block:
//! - [`Rule::TierSeparation`]: a target keeps only nodes of clusters of the
//!   block's tier and receives only namespaces of that tier; a target name is
//!   never used by blocks of two tiers.
//! - [`Rule::ZonePermission`]: every kept node is in a zone that may host the
//!   tier (`policy.zones[zone].tiers`; an unlisted zone only the tiers of the
//!   clusters with nodes in it, unless `unlisted_zones_host_any_tier`).
//! - [`Rule::NodeAccounting`]: every node of the block is kept by exactly one
//!   target or freed, never both, never twice, and nothing else is; it moves in
//!   exactly one wave, `drain-and-join` to the target keeping it or `free` when
//!   freed; stated zones match the inventory.
//! - [`Rule::NamespaceAccounting`]: every non-platform namespace of the block
//!   moves exactly once, to a target of the block, with its inventory SLA tier and
//!   requests; platform namespaces and namespaces of other blocks never move here.
//!   An add-on's largest instance moves only as its target's add-on install, with
//!   its inventory requests, in a wave no later than any namespace moving into
//!   that target.
//! - [`Rule::RenameUniqueness`]: per target, the final names (`new_name`, or the
//!   name when `new_name` is empty) are unique, valid DNS-1123 labels and not
//!   platform namespace names; every move whose name changes has a matching
//!   `namespace_renames` entry and every entry is applied by a move; a rename
//!   exists only for a collision (same name from two or more clusters into one
//!   target) and its `collides_with` names exactly the other clusters.
//! - [`Rule::Capacity`]: replaying the waves, at three moments of every wave —
//!   before (the state after the previous wave), during (nodes moving in this
//!   wave count in neither cluster, namespaces moving count in both) and after —
//!   every cluster with any demand holds it with headroom, per resource r:
//!   `demand_r <= (1 - headroom_r) * workload_allocatable_r` (relative tolerance
//!   1e-9). Workload allocatable excludes a source's control-plane nodes and a
//!   target's control-plane nodes when `dedicated_control_plane` (not on a small
//!   site). Demand is the requests of the block's non-platform namespaces present.
//!   With `survive_zone_loss`, each target after the last wave also holds its
//!   demand after losing all nodes of any one of its zones (which covers the
//!   largest zone of every resource). The plan's `capacity_before` and
//!   `capacity_after` must list every cluster with allocatable or demand at that
//!   moment, only sources and targets of the block, once each, with exactly the
//!   workload allocatable and demand computed here.
//! - [`Rule::Budget`]: per wave, nodes moved (joined + freed) <=
//!   `wave_budget.nodes` and namespaces moved <= `wave_budget.namespaces`.
//! - [`Rule::SlaOrder`]: for SLA tiers a before b in `policy.sla_order`, every
//!   namespace of tier a moves in a wave <= every namespace of tier b.
//! - [`Rule::ControlPlaneSpread`]: a block with at most `small_site_max_nodes`
//!   nodes is a small site: every target has `small_site = true`, distribution
//!   `k3s` and one control-plane node. Otherwise every target has three distinct
//!   control-plane nodes in `min(3, allowed zones)` distinct zones, where the
//!   allowed zones are the zones of the block's nodes that may host its tier; with
//!   fewer than three, `control_plane_note` must say so. Control-plane nodes are
//!   kept nodes of their target, with their inventory zone.
//! - [`Rule::Retirement`]: every source the block owns is retired exactly once,
//!   at the end of the wave after which none of its block nodes and none of its
//!   block namespaces are left (any wave when it had nothing to move), by the last
//!   wave; only clusters the block owns are retired in it; a source's
//!   control-plane nodes move only in its retirement wave (checked where the
//!   block owns the cluster).
//! - [`Rule::MaxNodes`]: every target keeps at most `max_nodes_per_cluster`
//!   nodes, and the block has `max(1, ceil(nodes kept / max_nodes_per_cluster))` targets.
//! - [`Rule::Flows`]: for every target, the listed flows equal (as a set)
//!   `flows::required_flows(target, zones of its kept nodes, zones of its
//!   control-plane nodes, its cni, small site, policy)`; every flow names a target
//!   of the block; the list is sorted with no duplicates.
//!
//! Apart from [`validate`] (the plan does not hold them),
//! [`isolation::validate_isolation`] checks the tenant isolation report's
//! findings and the objects emitted to close them against the plan and the
//! inventory ([`Rule::Isolation`]; see that module).
//!
//! Not checked: preconditions (but a `data-migration` under `migrate-data` must
//! come before its namespace or a node holding its data moves), objective figures, and the source capacity of a
//! cluster in another block's timeline (blocks are independent by definition).
//!
//! The output is deterministic: plan-level findings first, then blocks in plan
//! order, each in the order of the list above.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kplan_model::{
    BlockPlan, BlockStatus, ClusterCapacity, ClusterSnapshot, FirewallFlow, MovePart, Namespace, NamespaceMove, Node,
    NodeAction, NodeRole, PartWorkload, Plan, Policy, PreconditionKind, Resources, SlaTier, TargetCluster,
};

use crate::flows::{normalize_cni, required_flows};
use crate::namespaces::{find_addons, is_platform_namespace};

mod capacity;
mod flows;
mod index;
pub mod isolation;
mod parts;
mod placement;
mod pods;
mod shape;
#[cfg(test)]
mod tests;
mod waves;

use index::*;
use parts::PartNamespaces;
use shape::check_plan_shape;

/// A hard rule of `docs/plan-semantics.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    TierSeparation,
    ZonePermission,
    Capacity,
    Budget,
    SlaOrder,
    ControlPlaneSpread,
    NodeAccounting,
    NamespaceAccounting,
    RenameUniqueness,
    Retirement,
    Flows,
    MaxNodes,
    /// An infeasible block must say why.
    Explanation,
    /// The plan's shape: blocks listed once, waves numbered, targets named.
    Structure,
    /// Pods have nodes: the scheduler's filters, pod by pod (`pods.rs`).
    PodPlacement,
    /// Nothing joins a target before its control plane (`waves.rs`).
    ControlPlaneFirst,
    /// No wave takes more pods of a PodDisruptionBudget down than it allows,
    /// unless a `disruption-budget` precondition names it (`parts.rs`).
    DisruptionBudget,
    /// The isolation report's claims and emitted objects are true (`isolation.rs`,
    /// [`isolation::validate_isolation`]; not part of [`validate`]).
    Isolation,
}

impl Rule {
    pub const ALL: [Rule; 18] = [
        Rule::TierSeparation,
        Rule::ZonePermission,
        Rule::Capacity,
        Rule::Budget,
        Rule::SlaOrder,
        Rule::ControlPlaneSpread,
        Rule::NodeAccounting,
        Rule::NamespaceAccounting,
        Rule::RenameUniqueness,
        Rule::Retirement,
        Rule::Flows,
        Rule::MaxNodes,
        Rule::Explanation,
        Rule::Structure,
        Rule::PodPlacement,
        Rule::ControlPlaneFirst,
        Rule::DisruptionBudget,
        Rule::Isolation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::TierSeparation => "tier-separation",
            Rule::ZonePermission => "zone-permission",
            Rule::Capacity => "capacity",
            Rule::Budget => "budget",
            Rule::SlaOrder => "sla-order",
            Rule::ControlPlaneSpread => "control-plane-spread",
            Rule::NodeAccounting => "node-accounting",
            Rule::NamespaceAccounting => "namespace-accounting",
            Rule::RenameUniqueness => "rename-uniqueness",
            Rule::Retirement => "retirement",
            Rule::Flows => "flows",
            Rule::MaxNodes => "max-nodes",
            Rule::Explanation => "explanation",
            Rule::Structure => "structure",
            Rule::PodPlacement => "pod-placement",
            Rule::ControlPlaneFirst => "control-plane-first",
            Rule::DisruptionBudget => "disruption-budget",
            Rule::Isolation => "isolation",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule in one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub datacenter: String,
    pub security_tier: String,
    pub rule: Rule,
    /// What is wrong, in a user's words (lowercase, no trailing period).
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.datacenter.is_empty() && self.security_tier.is_empty() {
            write!(f, "plan: {}: {}", self.rule, self.detail)
        } else {
            write!(f, "{}/{}: {}: {}", self.datacenter, self.security_tier, self.rule, self.detail)
        }
    }
}

/// Checks `plan` against `inventory` and `policy`; empty when the plan is valid.
/// See the module documentation for every rule.
pub fn validate(inventory: &[ClusterSnapshot], policy: &Policy, plan: &Plan) -> Vec<Violation> {
    let parts = PartNamespaces::new(inventory, plan);
    let mut index = Index::new(inventory, policy);
    index.add_parts(&parts);
    let index = index;
    let mut out = Vec::new();
    check_plan_shape(&index, plan, &mut out);
    for block in &plan.blocks {
        let mut check = BlockCheck::new(&index, policy, block);
        match block.status {
            BlockStatus::Infeasible => check.infeasible(),
            BlockStatus::Planned => check.planned(),
        }
        out.extend(check.out);
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Moment {
    Before,
    During,
    After,
}

impl Moment {
    fn as_str(self) -> &'static str {
        match self {
            Moment::Before => "before",
            Moment::During => "during",
            Moment::After => "after",
        }
    }
}

/// A cluster during the replay: a source of the block or one of its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side<'a> {
    Source(&'a str),
    Target(&'a str),
}

impl Side<'_> {
    fn describe(&self) -> String {
        match self {
            Side::Source(name) => format!("source cluster {name}"),
            Side::Target(name) => format!("target {name}"),
        }
    }
    fn name(&self) -> &str {
        match self {
            Side::Source(name) | Side::Target(name) => name,
        }
    }
}

/// One wave's valid moves (first move of each unit only; errors are reported elsewhere).
#[derive(Default)]
struct WaveMoves<'a> {
    nodes: BTreeSet<NodeKey<'a>>,
    /// Node -> target, for nodes joining.
    joins: BTreeMap<NodeKey<'a>, &'a str>,
    /// Namespace -> target.
    namespaces: BTreeMap<NamespaceKey<'a>, &'a str>,
}

struct BlockCheck<'a, 'p> {
    index: &'p Index<'a>,
    policy: &'p Policy,
    block: &'a BlockPlan,
    key: BlockKey,
    members: Option<&'p Members<'a>>,
    out: Vec<Violation>,
    /// Pod placement findings already reported (one per cluster and workload,
    /// not one per moment of every wave).
    reported_pods: BTreeSet<String>,
}

fn resources_text(name: &str, value: u64) -> String {
    match name {
        "cpu" => format!("{value}m"),
        "memory" => format!("{:.2}Gi", value as f64 / (1u64 << 30) as f64),
        _ => format!("{value}"),
    }
}

fn resource_list(r: Resources) -> [(&'static str, u64); 3] {
    [("cpu", r.cpu_millis), ("memory", r.memory_bytes), ("pods", r.pods)]
}

fn has_demand(r: Resources) -> bool {
    r.cpu_millis > 0 || r.memory_bytes > 0 || r.pods > 0
}

impl<'a, 'p> BlockCheck<'a, 'p>
where
    'a: 'p,
{
    fn new(index: &'p Index<'a>, policy: &'p Policy, block: &'a BlockPlan) -> Self {
        let key = (block.datacenter.clone(), block.security_tier.clone());
        let members = index.blocks.get(&key);
        BlockCheck { index, policy, block, key, members, out: Vec::new(), reported_pods: BTreeSet::new() }
    }

    fn push(&mut self, rule: Rule, detail: String) {
        self.out.push(Violation {
            datacenter: self.block.datacenter.clone(),
            security_tier: self.block.security_tier.clone(),
            rule,
            detail,
        });
    }

    fn tier(&self) -> &'a str {
        self.block.security_tier.as_str()
    }

    fn infeasible(&mut self) {
        if self.block.explanation.trim().is_empty() {
            self.push(Rule::Explanation, "the block is infeasible but says nothing about why".to_string());
        }
        if !self.block.waves.is_empty() {
            self.push(Rule::Structure, format!("the block is infeasible but has {} wave(s)", self.block.waves.len()));
        }
    }

    fn block_nodes(&self) -> BTreeSet<NodeKey<'a>> {
        self.members.map(|m| m.nodes.clone()).unwrap_or_default()
    }

    fn block_namespaces(&self) -> BTreeSet<NamespaceKey<'a>> {
        self.members.map(|m| m.namespaces.clone()).unwrap_or_default()
    }

    fn is_small_site(&self) -> bool {
        (self.block_nodes().len() as u64) <= self.policy.small_site_max_nodes
    }

    /// Zones of the block's nodes that may host its tier.
    fn allowed_zones(&self) -> BTreeSet<&'a str> {
        self.block_nodes()
            .iter()
            .filter_map(|key| self.index.nodes.get(key))
            .map(|info| info.node.zone.as_str())
            .filter(|zone| self.index.may_host(self.policy, zone, self.tier()))
            .collect()
    }

    fn planned(&mut self) {
        self.check_targets();
        let kept = self.check_node_assignment();
        self.check_control_plane(&kept);
        let waves = self.check_waves(&kept);
        self.check_control_plane_first(&waves);
        self.check_budgets();
        self.check_sla_order();
        self.check_parts();
        self.check_renames();
        self.check_retirement();
        self.replay_capacity(&waves);
        self.check_data_migrations();
        self.check_flows();
    }
}

fn flow_text(flow: &FirewallFlow) -> String {
    let ports = if flow.ports.is_empty() { String::new() } else { format!(" {}", flow.ports) };
    format!("{} -> {} {}{} ({})", flow.from_zone, flow.to_zone, flow.protocol.as_str(), ports, flow.purpose)
}

/// At most ten items, then "and N more".
fn short_list(items: &[String]) -> String {
    const SHOWN: usize = 10;
    if items.len() <= SHOWN {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..SHOWN].join(", "), items.len() - SHOWN)
    }
}

/// A DNS-1123 label: 1 to 63 of `a-z0-9-`, starting and ending alphanumeric.
/// (Written here again on purpose: the validator does not trust the code that
/// makes the renames.)
fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}
