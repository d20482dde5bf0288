//! The plan validator: replays a plan against the inventory and the policy and
//! reports every hard rule it breaks. The solver proposes; the validator decides
//! (`kplan propose` never prints a plan this rejects).
//!
//! It is written independently of the model (`model.rs`, `solve.rs`,
//! `greedy.rs`, `waves.rs`): it uses only the inventory, the policy, the flow
//! table of `flows.rs` and `namespaces::is_platform_namespace`, and recomputes
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
//! Not checked: preconditions, objective figures, and the source capacity of a
//! cluster in another block's timeline (blocks are independent by definition).
//!
//! The output is deterministic: plan-level findings first, then blocks in plan
//! order, each in the order of the list above.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kplan_model::{
    BlockPlan, BlockStatus, ClusterCapacity, ClusterSnapshot, FirewallFlow, Namespace, Node, NodeAction, NodeRole,
    Plan, Policy, Resources, SlaTier, TargetCluster,
};

use super::flows::{normalize_cni, required_flows};
use super::namespaces::is_platform_namespace;

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
}

impl Rule {
    pub const ALL: [Rule; 14] = [
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
    let index = Index::new(inventory, policy);
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

type BlockKey = (String, String);
type NodeKey<'a> = (&'a str, &'a str);
type NamespaceKey<'a> = (&'a str, &'a str);

struct NodeInfo<'a> {
    node: &'a Node,
    block: BlockKey,
}

struct NamespaceInfo<'a> {
    namespace: &'a Namespace,
    /// None for a platform namespace.
    block: Option<BlockKey>,
}

#[derive(Default)]
struct Members<'a> {
    nodes: BTreeSet<NodeKey<'a>>,
    namespaces: BTreeSet<NamespaceKey<'a>>,
}

/// The inventory, indexed once.
struct Index<'a> {
    clusters: BTreeMap<&'a str, &'a ClusterSnapshot>,
    /// The block that owns each cluster (its datacenter, its tier).
    owner: BTreeMap<&'a str, BlockKey>,
    nodes: BTreeMap<NodeKey<'a>, NodeInfo<'a>>,
    namespaces: BTreeMap<NamespaceKey<'a>, NamespaceInfo<'a>>,
    /// Tiers of the clusters with nodes in each zone (for unlisted zones).
    zone_tiers: BTreeMap<&'a str, BTreeSet<&'a str>>,
    blocks: BTreeMap<BlockKey, Members<'a>>,
    /// Problems with the inventory itself (duplicate ids).
    problems: Vec<String>,
}

fn cluster_datacenter(cluster: &ClusterSnapshot) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &cluster.nodes {
        *counts.entry(node.datacenter.as_str()).or_default() += 1;
    }
    let best = counts.values().copied().max();
    match best {
        Some(best) => counts.into_iter().find(|&(_, n)| n == best).map(|(dc, _)| dc.to_string()).unwrap_or_default(),
        None => cluster.facts.datacenter.clone(),
    }
}

impl<'a> Index<'a> {
    fn new(inventory: &'a [ClusterSnapshot], policy: &Policy) -> Self {
        let mut index = Index {
            clusters: BTreeMap::new(),
            owner: BTreeMap::new(),
            nodes: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            zone_tiers: BTreeMap::new(),
            blocks: BTreeMap::new(),
            problems: Vec::new(),
        };
        for cluster in inventory {
            let id = cluster.cluster_id.as_str();
            if index.clusters.insert(id, cluster).is_some() {
                index.problems.push(format!("cluster {id} appears twice in the inventory"));
                continue;
            }
            let tier = cluster.facts.security_tier.clone();
            let datacenter = cluster_datacenter(cluster);
            index.owner.insert(id, (datacenter.clone(), tier.clone()));
            for node in &cluster.nodes {
                let block = (node.datacenter.clone(), tier.clone());
                index.zone_tiers.entry(node.zone.as_str()).or_default().insert(cluster.facts.security_tier.as_str());
                if index.nodes.contains_key(&(id, node.name.as_str())) {
                    index.problems.push(format!("node {id}/{} appears twice in the inventory", node.name));
                    continue;
                }
                index.blocks.entry(block.clone()).or_default().nodes.insert((id, node.name.as_str()));
                index.nodes.insert((id, node.name.as_str()), NodeInfo { node, block });
            }
            for namespace in &cluster.namespaces {
                let key = (id, namespace.name.as_str());
                if index.namespaces.contains_key(&key) {
                    index.problems.push(format!("namespace {id}/{} appears twice in the inventory", namespace.name));
                    continue;
                }
                let block = if is_platform_namespace(&namespace.name, policy) {
                    None
                } else {
                    let block = (datacenter.clone(), namespace.security_tier.clone());
                    index.blocks.entry(block.clone()).or_default().namespaces.insert(key);
                    Some(block)
                };
                index.namespaces.insert(key, NamespaceInfo { namespace, block });
            }
        }
        index
    }

    fn may_host(&self, policy: &Policy, zone: &str, tier: &str) -> bool {
        match policy.zones.get(zone) {
            Some(zone_policy) => zone_policy.tiers.iter().any(|t| t == tier),
            None => {
                policy.unlisted_zones_host_any_tier
                    || self.zone_tiers.get(zone).is_some_and(|tiers| tiers.contains(tier))
            }
        }
    }
}

fn check_plan_shape(index: &Index<'_>, plan: &Plan, out: &mut Vec<Violation>) {
    let plan_level =
        |rule, detail: String| Violation { datacenter: String::new(), security_tier: String::new(), rule, detail };
    for problem in &index.problems {
        out.push(plan_level(Rule::Structure, problem.clone()));
    }
    let mut seen: BTreeSet<BlockKey> = BTreeSet::new();
    for block in &plan.blocks {
        let key = (block.datacenter.clone(), block.security_tier.clone());
        let violation = |rule, detail: String| Violation {
            datacenter: block.datacenter.clone(),
            security_tier: block.security_tier.clone(),
            rule,
            detail,
        };
        if !seen.insert(key.clone()) {
            out.push(violation(Rule::Structure, "the block appears more than once in the plan".to_string()));
        } else if !index.blocks.contains_key(&key) {
            out.push(violation(
                Rule::Structure,
                "the inventory has no node and no namespace in this block".to_string(),
            ));
        }
    }
    for ((datacenter, tier), members) in &index.blocks {
        if seen.contains(&(datacenter.clone(), tier.clone())) {
            continue;
        }
        let violation = |rule, detail: String| Violation {
            datacenter: datacenter.clone(),
            security_tier: tier.clone(),
            rule,
            detail,
        };
        if !members.nodes.is_empty() {
            out.push(violation(
                Rule::NodeAccounting,
                format!("the plan has no block for {} node(s) of this block", members.nodes.len()),
            ));
        }
        if !members.namespaces.is_empty() {
            out.push(violation(
                Rule::NamespaceAccounting,
                format!("the plan has no block for {} namespace(s) of this block", members.namespaces.len()),
            ));
        }
    }
    // Target names: unique across the plan, never an existing cluster's id.
    let mut targets: BTreeMap<&str, &BlockPlan> = BTreeMap::new();
    for block in &plan.blocks {
        for target in &block.target_clusters {
            let violation = |rule, detail: String| Violation {
                datacenter: block.datacenter.clone(),
                security_tier: block.security_tier.clone(),
                rule,
                detail,
            };
            if index.clusters.contains_key(target.name.as_str()) {
                out.push(violation(
                    Rule::Structure,
                    format!("target {} has the name of an existing source cluster", target.name),
                ));
            }
            match targets.get(target.name.as_str()) {
                Some(other) if !std::ptr::eq(*other, block) => {
                    let rule =
                        if other.security_tier != block.security_tier { Rule::TierSeparation } else { Rule::Structure };
                    out.push(violation(
                        rule,
                        format!(
                            "target {} is also a target of block {}/{}",
                            target.name, other.datacenter, other.security_tier
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    targets.insert(target.name.as_str(), block);
                }
            }
        }
    }
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
        BlockCheck { index, policy, block, key, members, out: Vec::new() }
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
        self.check_budgets();
        self.check_sla_order();
        self.check_renames();
        self.check_retirement();
        self.replay_capacity(&waves);
        self.check_flows();
    }

    /// Names, counts and sizes of the targets; their CNI and version.
    fn check_targets(&mut self) {
        let block = self.block;
        let base = format!("{}-{}", block.datacenter, block.security_tier);
        if block.target_clusters.is_empty() {
            self.push(Rule::Structure, "a planned block has no target cluster".to_string());
        }
        for (i, target) in block.target_clusters.iter().enumerate() {
            let expected = if i == 0 { base.clone() } else { format!("{base}-{}", i + 1) };
            if target.name != expected {
                self.push(
                    Rule::Structure,
                    format!(
                        "target {} should be named {expected} (targets are <datacenter>-<tier>, -2, -3, ...)",
                        target.name
                    ),
                );
            }
            let max = self.policy.max_nodes_per_cluster;
            if target.nodes_kept.len() as u64 > max {
                self.push(
                    Rule::MaxNodes,
                    format!(
                        "target {} keeps {} nodes, more than max_nodes_per_cluster {max}",
                        target.name,
                        target.nodes_kept.len()
                    ),
                );
            }
            let policy_cni = normalize_cni(&self.policy.target_cni);
            if !policy_cni.is_empty() && normalize_cni(&target.cni) != policy_cni {
                self.push(
                    Rule::Structure,
                    format!("target {} runs cni {:?} but the policy asks for {policy_cni}", target.name, target.cni),
                );
            }
            let policy_version = self.policy.target_kubernetes_version.trim();
            if !policy_version.is_empty()
                && target.kubernetes_version.trim().trim_start_matches('v') != policy_version.trim_start_matches('v')
            {
                self.push(
                    Rule::Structure,
                    format!(
                        "target {} runs kubernetes {:?} but the policy asks for {policy_version}",
                        target.name, target.kubernetes_version
                    ),
                );
            }
        }
        let total_kept: u64 = block.target_clusters.iter().map(|t| t.nodes_kept.len() as u64).sum();
        let max = self.policy.max_nodes_per_cluster.max(1);
        let expected = total_kept.div_ceil(max).max(1);
        if !block.target_clusters.is_empty() && block.target_clusters.len() as u64 != expected {
            self.push(
                Rule::MaxNodes,
                format!(
                    "{total_kept} nodes kept with max_nodes_per_cluster {max} make {expected} target(s), the plan has {}",
                    block.target_clusters.len()
                ),
            );
        }
    }

    /// Every node of the block kept once or freed once; tier and zone of kept
    /// nodes. Returns node -> the target keeping it (first claim).
    fn check_node_assignment(&mut self) -> BTreeMap<NodeKey<'a>, &'a str> {
        let block = self.block;
        let block_nodes = self.block_nodes();
        let mut claims: BTreeMap<NodeKey<'a>, Vec<String>> = BTreeMap::new();
        let mut kept: BTreeMap<NodeKey<'a>, &'a str> = BTreeMap::new();

        let mut refs: Vec<(Option<&'a TargetCluster>, &'a kplan_model::NodeRef)> = Vec::new();
        for target in &block.target_clusters {
            refs.extend(target.nodes_kept.iter().map(|r| (Some(target), r)));
        }
        refs.extend(block.nodes_freed.iter().map(|r| (None, r)));

        for (target, node_ref) in refs {
            let key = (node_ref.cluster_id.as_str(), node_ref.node.as_str());
            let what = match target {
                Some(target) => format!("kept by {}", target.name),
                None => "freed".to_string(),
            };
            let Some(info) = self.index.nodes.get(&key) else {
                self.push(Rule::NodeAccounting, format!("node {}/{} ({what}) is not in the inventory", key.0, key.1));
                continue;
            };
            if !block_nodes.contains(&key) {
                let (datacenter, tier) = &info.block;
                let rule = if datacenter == &block.datacenter && target.is_some() {
                    Rule::TierSeparation
                } else {
                    Rule::NodeAccounting
                };
                self.push(
                    rule,
                    format!(
                        "node {}/{} ({what}) belongs to block {datacenter}/{tier} (cluster {} is {tier})",
                        key.0, key.1, key.0
                    ),
                );
                continue;
            }
            if !node_ref.zone.is_empty() && node_ref.zone != info.node.zone {
                self.push(
                    Rule::NodeAccounting,
                    format!(
                        "node {}/{} is listed in zone {} but is in zone {}",
                        key.0, key.1, node_ref.zone, info.node.zone
                    ),
                );
            }
            if let Some(target) = target {
                if !self.index.may_host(self.policy, &info.node.zone, self.tier()) {
                    self.push(
                        Rule::ZonePermission,
                        format!(
                            "target {} keeps node {}/{} in zone {}, which may not host tier {}",
                            target.name,
                            key.0,
                            key.1,
                            info.node.zone,
                            self.tier()
                        ),
                    );
                }
                kept.entry(key).or_insert(target.name.as_str());
            }
            claims.entry(key).or_default().push(what);
        }
        for (key, what) in &claims {
            if what.len() > 1 {
                self.push(
                    Rule::NodeAccounting,
                    format!("node {}/{} is listed {} times: {}", key.0, key.1, what.len(), what.join(", ")),
                );
            }
        }
        let missing: Vec<String> =
            block_nodes.iter().filter(|key| !claims.contains_key(*key)).map(|(c, n)| format!("{c}/{n}")).collect();
        if !missing.is_empty() {
            self.push(
                Rule::NodeAccounting,
                format!("{} node(s) of the block are neither kept nor freed: {}", missing.len(), short_list(&missing)),
            );
        }
        kept
    }

    fn check_control_plane(&mut self, kept: &BTreeMap<NodeKey<'a>, &'a str>) {
        let block = self.block;
        let small = self.is_small_site();
        let allowed = self.allowed_zones();
        for target in &block.target_clusters {
            if target.small_site != small {
                self.push(
                    Rule::ControlPlaneSpread,
                    format!(
                        "target {} has small_site = {} but the block has {} nodes (small_site_max_nodes {})",
                        target.name,
                        target.small_site,
                        self.block_nodes().len(),
                        self.policy.small_site_max_nodes
                    ),
                );
            }
            let mut nodes = BTreeSet::new();
            let mut zones = BTreeSet::new();
            for cp in &target.control_plane {
                let key = (cp.cluster_id.as_str(), cp.node.as_str());
                if !nodes.insert(key) {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!("target {} lists control-plane node {}/{} twice", target.name, key.0, key.1),
                    );
                    continue;
                }
                if kept.get(&key) != Some(&target.name.as_str()) {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!(
                            "control-plane node {}/{} of target {} is not a node it keeps",
                            key.0, key.1, target.name
                        ),
                    );
                    continue;
                }
                let zone = self.index.nodes[&key].node.zone.as_str();
                if cp.zone != zone {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!(
                            "control-plane node {}/{} is listed in zone {} but is in zone {zone}",
                            key.0, key.1, cp.zone
                        ),
                    );
                }
                zones.insert(zone);
            }
            if small {
                if target.control_plane.len() != 1 {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!(
                            "small-site target {} must have one control-plane node (k3s server), it has {}",
                            target.name,
                            target.control_plane.len()
                        ),
                    );
                }
                if !target.distribution.trim().eq_ignore_ascii_case("k3s") {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!("small-site target {} must use k3s, not {:?}", target.name, target.distribution),
                    );
                }
                continue;
            }
            if target.control_plane.len() != 3 {
                self.push(
                    Rule::ControlPlaneSpread,
                    format!(
                        "target {} must have three control-plane nodes, it has {}",
                        target.name,
                        target.control_plane.len()
                    ),
                );
            }
            let needed = allowed.len().min(3);
            if zones.len() < needed {
                self.push(
                    Rule::ControlPlaneSpread,
                    format!(
                        "the control plane of target {} spans {} zone(s) ({}), the block's allowed zones allow {needed}",
                        target.name,
                        zones.len(),
                        zones.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            if allowed.len() < 3 && target.control_plane_note.trim().is_empty() {
                self.push(
                    Rule::ControlPlaneSpread,
                    format!(
                        "the block's allowed zones number {} (fewer than three) but target {} has no control_plane_note saying so",
                        allowed.len(),
                        target.name
                    ),
                );
            }
        }
    }

    /// Waves numbered 1..n; every node and namespace of the block moves exactly
    /// once and consistently with the targets. Returns the valid moves per wave.
    fn check_waves(&mut self, kept: &BTreeMap<NodeKey<'a>, &'a str>) -> Vec<WaveMoves<'a>> {
        let block = self.block;
        let block_nodes = self.block_nodes();
        let block_namespaces = self.block_namespaces();
        let freed: BTreeSet<NodeKey<'a>> =
            block.nodes_freed.iter().map(|r| (r.cluster_id.as_str(), r.node.as_str())).collect();
        let targets: BTreeSet<&str> = block.target_clusters.iter().map(|t| t.name.as_str()).collect();

        let mut node_wave: BTreeMap<NodeKey<'a>, u64> = BTreeMap::new();
        let mut namespace_wave: BTreeMap<NamespaceKey<'a>, u64> = BTreeMap::new();
        let mut waves = Vec::new();
        for (position, wave) in block.waves.iter().enumerate() {
            let number = position as u64 + 1;
            if wave.index != number {
                self.push(Rule::Structure, format!("wave {} is listed at position {number}", wave.index));
            }
            let mut moves = WaveMoves::default();
            for node_move in &wave.nodes {
                let key = (node_move.cluster_id.as_str(), node_move.node.as_str());
                let Some(info) = self.index.nodes.get(&key) else {
                    self.push(
                        Rule::NodeAccounting,
                        format!("wave {number} moves node {}/{}, which is not in the inventory", key.0, key.1),
                    );
                    continue;
                };
                if !block_nodes.contains(&key) {
                    let (datacenter, tier) = &info.block;
                    let rule =
                        if *datacenter == block.datacenter { Rule::TierSeparation } else { Rule::NodeAccounting };
                    self.push(
                        rule,
                        format!("wave {number} moves node {}/{} of block {datacenter}/{tier}", key.0, key.1),
                    );
                    continue;
                }
                if let Some(first) = node_wave.get(&key) {
                    self.push(
                        Rule::NodeAccounting,
                        format!("node {}/{} moves twice, in waves {first} and {number}", key.0, key.1),
                    );
                    continue;
                }
                node_wave.insert(key, number);
                if !node_move.zone.is_empty() && node_move.zone != info.node.zone {
                    self.push(
                        Rule::NodeAccounting,
                        format!(
                            "wave {number} moves node {}/{} from zone {}, but it is in zone {}",
                            key.0, key.1, node_move.zone, info.node.zone
                        ),
                    );
                }
                match node_move.action {
                    NodeAction::DrainAndJoin => match kept.get(&key) {
                        Some(target) if *target == node_move.to_cluster => {
                            moves.joins.insert(key, target);
                        }
                        Some(target) => self.push(
                            Rule::NodeAccounting,
                            format!(
                                "wave {number} joins node {}/{} to {:?} but target {target} keeps it",
                                key.0, key.1, node_move.to_cluster
                            ),
                        ),
                        None => self.push(
                            Rule::NodeAccounting,
                            format!(
                                "wave {number} joins node {}/{} to {:?} but no target keeps it",
                                key.0, key.1, node_move.to_cluster
                            ),
                        ),
                    },
                    NodeAction::Free => {
                        if let Some(target) = kept.get(&key) {
                            self.push(
                                Rule::NodeAccounting,
                                format!("wave {number} frees node {}/{}, which target {target} keeps", key.0, key.1),
                            );
                        } else if !freed.contains(&key) {
                            self.push(
                                Rule::NodeAccounting,
                                format!(
                                    "wave {number} frees node {}/{}, which nodes_freed does not list",
                                    key.0, key.1
                                ),
                            );
                        }
                    }
                }
                moves.nodes.insert(key);
            }
            for namespace_move in &wave.namespaces {
                let key = (namespace_move.from_cluster.as_str(), namespace_move.namespace.as_str());
                let Some(info) = self.index.namespaces.get(&key) else {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!("wave {number} moves namespace {}/{}, which is not in the inventory", key.0, key.1),
                    );
                    continue;
                };
                let Some((datacenter, tier)) = &info.block else {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "wave {number} moves platform namespace {}/{}; platform namespaces merge and never move",
                            key.0, key.1
                        ),
                    );
                    continue;
                };
                if !block_namespaces.contains(&key) {
                    let rule =
                        if tier != &block.security_tier { Rule::TierSeparation } else { Rule::NamespaceAccounting };
                    self.push(
                        rule,
                        format!("wave {number} moves namespace {}/{} of block {datacenter}/{tier}", key.0, key.1),
                    );
                    continue;
                }
                if let Some(first) = namespace_wave.get(&key) {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!("namespace {}/{} moves twice, in waves {first} and {number}", key.0, key.1),
                    );
                    continue;
                }
                namespace_wave.insert(key, number);
                if !targets.contains(namespace_move.to_cluster.as_str()) {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "wave {number} moves namespace {}/{} to {:?}, which is not a target of the block",
                            key.0, key.1, namespace_move.to_cluster
                        ),
                    );
                    continue;
                }
                if namespace_move.sla_tier != info.namespace.sla_tier
                    || namespace_move.requests != info.namespace.requests
                {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "wave {number} states namespace {}/{} as {} with {:?}, the inventory says {} with {:?}",
                            key.0,
                            key.1,
                            namespace_move.sla_tier,
                            namespace_move.requests,
                            info.namespace.sla_tier,
                            info.namespace.requests
                        ),
                    );
                }
                moves.namespaces.insert(key, namespace_move.to_cluster.as_str());
            }
            waves.push(moves);
        }
        let unmoved: Vec<String> =
            block_nodes.iter().filter(|key| !node_wave.contains_key(*key)).map(|(c, n)| format!("{c}/{n}")).collect();
        if !unmoved.is_empty() {
            self.push(
                Rule::NodeAccounting,
                format!("{} node(s) of the block move in no wave: {}", unmoved.len(), short_list(&unmoved)),
            );
        }
        let unmoved: Vec<String> = block_namespaces
            .iter()
            .filter(|key| !namespace_wave.contains_key(*key))
            .map(|(c, n)| format!("{c}/{n}"))
            .collect();
        if !unmoved.is_empty() {
            self.push(
                Rule::NamespaceAccounting,
                format!(
                    "{} namespace(s) of the block move in no wave (they would be lost): {}",
                    unmoved.len(),
                    short_list(&unmoved)
                ),
            );
        }
        waves
    }

    fn check_budgets(&mut self) {
        let budget = self.policy.wave_budget;
        for (position, wave) in self.block.waves.iter().enumerate() {
            let number = position + 1;
            if wave.nodes.len() as u64 > budget.nodes {
                self.push(
                    Rule::Budget,
                    format!(
                        "wave {number} moves {} nodes, over the budget of {} per wave",
                        wave.nodes.len(),
                        budget.nodes
                    ),
                );
            }
            if wave.namespaces.len() as u64 > budget.namespaces {
                self.push(
                    Rule::Budget,
                    format!(
                        "wave {number} moves {} namespaces, over the budget of {} per wave",
                        wave.namespaces.len(),
                        budget.namespaces
                    ),
                );
            }
        }
    }

    fn check_sla_order(&mut self) {
        let block_namespaces = self.block_namespaces();
        // tier -> (first wave, last wave) over the block's namespace moves
        let mut span: BTreeMap<SlaTier, (u64, u64)> = BTreeMap::new();
        for (position, wave) in self.block.waves.iter().enumerate() {
            let number = position as u64 + 1;
            for namespace_move in &wave.namespaces {
                let key = (namespace_move.from_cluster.as_str(), namespace_move.namespace.as_str());
                if !block_namespaces.contains(&key) {
                    continue;
                }
                let tier = self.index.namespaces[&key].namespace.sla_tier;
                let entry = span.entry(tier).or_insert((number, number));
                entry.0 = entry.0.min(number);
                entry.1 = entry.1.max(number);
            }
        }
        let order = &self.policy.sla_order;
        for (i, earlier) in order.iter().enumerate() {
            for later in &order[i + 1..] {
                if let (Some(&(_, last_earlier)), Some(&(first_later, _))) = (span.get(earlier), span.get(later))
                    && last_earlier > first_later
                {
                    self.push(
                        Rule::SlaOrder,
                        format!(
                            "a {earlier} namespace moves in wave {last_earlier}, after a {later} namespace in wave {first_later} ({earlier} moves first)"
                        ),
                    );
                }
            }
        }
    }

    fn check_renames(&mut self) {
        let block = self.block;
        let block_namespaces = self.block_namespaces();
        // target -> final name -> the namespaces with that final name
        let mut finals: BTreeMap<&str, BTreeMap<&str, Vec<NamespaceKey<'a>>>> = BTreeMap::new();
        // target -> original name -> clusters
        let mut originals: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
        // (cluster, namespace) -> (target, final name), for renamed moves
        let mut renamed: BTreeMap<NamespaceKey<'a>, (&'a str, &'a str)> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for wave in &block.waves {
            for namespace_move in &wave.namespaces {
                let key = (namespace_move.from_cluster.as_str(), namespace_move.namespace.as_str());
                if !block_namespaces.contains(&key) || !seen.insert(key) {
                    continue;
                }
                let target = namespace_move.to_cluster.as_str();
                let final_name =
                    if namespace_move.new_name.is_empty() { key.1 } else { namespace_move.new_name.as_str() };
                finals.entry(target).or_default().entry(final_name).or_default().push(key);
                originals.entry(target).or_default().entry(key.1).or_default().insert(key.0);
                if final_name != key.1 {
                    renamed.insert(key, (target, final_name));
                    if !is_dns1123_label(final_name) {
                        self.push(
                            Rule::RenameUniqueness,
                            format!(
                                "namespace {}/{} is renamed to {final_name:?}, not a valid dns-1123 label",
                                key.0, key.1
                            ),
                        );
                    }
                    if is_platform_namespace(final_name, self.policy) {
                        self.push(
                            Rule::RenameUniqueness,
                            format!(
                                "namespace {}/{} is renamed to {final_name}, a platform namespace name",
                                key.0, key.1
                            ),
                        );
                    }
                }
            }
        }
        for (target, names) in &finals {
            for (name, keys) in names {
                if keys.len() > 1 {
                    let from: Vec<String> = keys.iter().map(|(c, n)| format!("{c}/{n}")).collect();
                    self.push(
                        Rule::RenameUniqueness,
                        format!("target {target} gets {} namespaces named {name}: {}", keys.len(), from.join(", ")),
                    );
                }
            }
        }
        let mut entries: BTreeSet<NamespaceKey<'a>> = BTreeSet::new();
        for rename in &block.namespace_renames {
            let key = (rename.from_cluster.as_str(), rename.namespace.as_str());
            if !entries.insert(key) {
                self.push(Rule::RenameUniqueness, format!("namespace {}/{} has more than one rename", key.0, key.1));
                continue;
            }
            match renamed.get(&key) {
                Some(&(target, new_name)) if target == rename.target_cluster && new_name == rename.new_name => {}
                _ => {
                    self.push(
                        Rule::RenameUniqueness,
                        format!(
                            "rename of {}/{} to {} in {} is not what its namespace move does",
                            key.0, key.1, rename.new_name, rename.target_cluster
                        ),
                    );
                    continue;
                }
            }
            let others: BTreeSet<&str> = originals
                .get(rename.target_cluster.as_str())
                .and_then(|names| names.get(key.1))
                .map(|clusters| clusters.iter().copied().filter(|c| *c != key.0).collect())
                .unwrap_or_default();
            if others.is_empty() {
                self.push(
                    Rule::RenameUniqueness,
                    format!(
                        "namespace {}/{} is renamed though nothing collides with it in {}",
                        key.0, key.1, rename.target_cluster
                    ),
                );
            } else {
                let listed: BTreeSet<&str> = rename.collides_with.iter().map(String::as_str).collect();
                if listed != others {
                    self.push(
                        Rule::RenameUniqueness,
                        format!(
                            "rename of {}/{} says it collides with [{}], it collides with [{}]",
                            key.0,
                            key.1,
                            listed.into_iter().collect::<Vec<_>>().join(", "),
                            others.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
        }
        for (key, (target, new_name)) in &renamed {
            if !entries.contains(key) {
                self.push(
                    Rule::RenameUniqueness,
                    format!("namespace {}/{} moves to {target} as {new_name} without a rename entry", key.0, key.1),
                );
            }
        }
    }

    fn check_retirement(&mut self) {
        let block = self.block;
        let n_waves = block.waves.len() as u64;
        let block_nodes = self.block_nodes();
        let block_namespaces = self.block_namespaces();
        // The block's sources it owns, and the last wave each has something moving.
        let mut owned: BTreeMap<&'a str, u64> = BTreeMap::new();
        for &(cluster, _) in block_nodes.iter().chain(block_namespaces.iter()) {
            if self.index.owner.get(cluster) == Some(&self.key) {
                owned.insert(cluster, 0);
            }
        }
        let mut node_wave: BTreeMap<NodeKey<'a>, u64> = BTreeMap::new();
        for (position, wave) in block.waves.iter().enumerate() {
            let number = position as u64 + 1;
            for node_move in &wave.nodes {
                let key = (node_move.cluster_id.as_str(), node_move.node.as_str());
                if block_nodes.contains(&key) {
                    node_wave.entry(key).or_insert(number);
                    if let Some(last) = owned.get_mut(key.0) {
                        *last = (*last).max(number);
                    }
                }
            }
            for namespace_move in &wave.namespaces {
                let key = (namespace_move.from_cluster.as_str(), namespace_move.namespace.as_str());
                if block_namespaces.contains(&key)
                    && let Some(last) = owned.get_mut(key.0)
                {
                    *last = (*last).max(number);
                }
            }
        }
        let mut retired: BTreeMap<&'a str, u64> = BTreeMap::new();
        for (position, wave) in block.waves.iter().enumerate() {
            let number = position as u64 + 1;
            for cluster in &wave.clusters_retired {
                let cluster = cluster.as_str();
                if let Some(first) = retired.get(cluster) {
                    self.push(
                        Rule::Retirement,
                        format!("cluster {cluster} is retired twice, in waves {first} and {number}"),
                    );
                    continue;
                }
                match self.index.owner.get(cluster) {
                    None => {
                        self.push(
                            Rule::Retirement,
                            format!("wave {number} retires {cluster}, which is not in the inventory"),
                        );
                        continue;
                    }
                    Some(owner) if *owner != self.key => {
                        self.push(
                            Rule::Retirement,
                            format!("wave {number} retires {cluster}, which belongs to block {}/{}", owner.0, owner.1),
                        );
                        continue;
                    }
                    Some(_) => {}
                }
                retired.insert(cluster, number);
                if let Some(&emptied) = owned.get(cluster)
                    && emptied > 0
                    && emptied != number
                {
                    let detail = if emptied > number {
                        format!(
                            "cluster {cluster} is retired at the end of wave {number} but still has nodes or namespaces moving in wave {emptied}"
                        )
                    } else {
                        format!(
                            "cluster {cluster} is empty after wave {emptied} but retired only at the end of wave {number}"
                        )
                    };
                    self.push(Rule::Retirement, detail);
                }
            }
        }
        for cluster in owned.keys() {
            if !retired.contains_key(cluster) {
                self.push(
                    Rule::Retirement,
                    format!("source cluster {cluster} is not retired by the last wave ({n_waves})"),
                );
            }
        }
        // A source's control-plane nodes move only in its retirement wave.
        for (key, wave) in &node_wave {
            let info = &self.index.nodes[key];
            if info.node.role != NodeRole::ControlPlane || self.index.owner.get(key.0) != Some(&self.key) {
                continue;
            }
            match retired.get(key.0) {
                Some(retirement) if retirement == wave => {}
                Some(retirement) => self.push(
                    Rule::Retirement,
                    format!(
                        "control-plane node {}/{} moves in wave {wave}, but its cluster is retired in wave {retirement}",
                        key.0, key.1
                    ),
                ),
                None => self.push(
                    Rule::Retirement,
                    format!("control-plane node {}/{} moves in wave {wave}, but its cluster is never retired", key.0, key.1),
                ),
            }
        }
    }

    /// Replays the waves and checks capacity with headroom at every moment, and
    /// the plan's stated capacity figures.
    fn replay_capacity(&mut self, waves: &[WaveMoves<'a>]) {
        let block = self.block;
        let small = self.is_small_site();
        let dedicated = self.policy.dedicated_control_plane && !small;
        let index = self.index;

        let mut source_nodes: BTreeMap<&'a str, BTreeSet<NodeKey<'a>>> = BTreeMap::new();
        let mut source_namespaces: BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>> = BTreeMap::new();
        for key in self.block_nodes() {
            source_nodes.entry(key.0).or_default().insert(key);
            source_namespaces.entry(key.0).or_default();
        }
        for key in self.block_namespaces() {
            source_namespaces.entry(key.0).or_default().insert(key);
            source_nodes.entry(key.0).or_default();
        }
        // Foreign sources (no node in the block) are reported, not checked.
        let checked_sources: BTreeSet<&'a str> =
            source_nodes.iter().filter(|(_, nodes)| !nodes.is_empty()).map(|(c, _)| *c).collect();

        let mut target_nodes: BTreeMap<&'a str, BTreeSet<NodeKey<'a>>> = BTreeMap::new();
        let mut target_namespaces: BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>> = BTreeMap::new();
        let mut control_plane: BTreeSet<NodeKey<'a>> = BTreeSet::new();
        for target in &block.target_clusters {
            target_nodes.entry(target.name.as_str()).or_default();
            target_namespaces.entry(target.name.as_str()).or_default();
            control_plane.extend(target.control_plane.iter().map(|cp| (cp.cluster_id.as_str(), cp.node.as_str())));
        }

        let node_allocatable = |key: &NodeKey<'a>| index.nodes.get(key).map(|i| i.node.allocatable).unwrap_or_default();
        let namespace_requests =
            |key: &NamespaceKey<'a>| index.namespaces.get(key).map(|i| i.namespace.requests).unwrap_or_default();

        // cluster -> (workload allocatable, demand)
        type Capacities<'x> = BTreeMap<Side<'x>, (Resources, Resources)>;
        let snapshot = |source_nodes: &BTreeMap<&'a str, BTreeSet<NodeKey<'a>>>,
                        source_namespaces: &BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>>,
                        target_nodes: &BTreeMap<&'a str, BTreeSet<NodeKey<'a>>>,
                        target_namespaces: &BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>>,
                        moving: Option<&WaveMoves<'a>>|
         -> Capacities<'a> {
            let mut capacities = Capacities::new();
            for (cluster, nodes) in source_nodes {
                let allocatable: Resources = nodes
                    .iter()
                    .filter(|key| index.nodes[*key].node.role != NodeRole::ControlPlane)
                    .filter(|key| moving.is_none_or(|m| !m.nodes.contains(*key)))
                    .map(node_allocatable)
                    .sum();
                let demand: Resources = source_namespaces[cluster].iter().map(namespace_requests).sum();
                capacities.insert(Side::Source(cluster), (allocatable, demand));
            }
            for (target, nodes) in target_nodes {
                let allocatable: Resources =
                    nodes.iter().filter(|key| !(dedicated && control_plane.contains(*key))).map(node_allocatable).sum();
                let mut demand: Resources = target_namespaces[target].iter().map(namespace_requests).sum();
                if let Some(moving) = moving {
                    demand = demand.saturating_add(
                        moving
                            .namespaces
                            .iter()
                            .filter(|(_, t)| *t == target)
                            .map(|(key, _)| namespace_requests(key))
                            .sum(),
                    );
                }
                capacities.insert(Side::Target(target), (allocatable, demand));
            }
            capacities
        };

        for (position, moves) in waves.iter().enumerate() {
            let number = position as u64 + 1;
            let wave = &block.waves[position];
            let before = snapshot(&source_nodes, &source_namespaces, &target_nodes, &target_namespaces, None);
            let during = snapshot(&source_nodes, &source_namespaces, &target_nodes, &target_namespaces, Some(moves));
            for key in &moves.nodes {
                if let Some(nodes) = source_nodes.get_mut(key.0) {
                    nodes.remove(key);
                }
            }
            for (key, target) in &moves.joins {
                if let Some(nodes) = target_nodes.get_mut(target) {
                    nodes.insert(*key);
                }
            }
            for (key, target) in &moves.namespaces {
                if let Some(namespaces) = source_namespaces.get_mut(key.0) {
                    namespaces.remove(key);
                }
                if let Some(namespaces) = target_namespaces.get_mut(target) {
                    namespaces.insert(*key);
                }
            }
            let after = snapshot(&source_nodes, &source_namespaces, &target_nodes, &target_namespaces, None);
            for (moment, capacities) in [(Moment::Before, &before), (Moment::During, &during), (Moment::After, &after)]
            {
                for (side, (allocatable, demand)) in capacities {
                    if let Side::Source(cluster) = side
                        && !checked_sources.contains(cluster)
                    {
                        continue;
                    }
                    self.check_fits(&format!("{} wave {number}", moment.as_str()), side, *allocatable, *demand, "");
                }
            }
            self.check_figures(number, "capacity_before", &wave.capacity_before, &before);
            self.check_figures(number, "capacity_after", &wave.capacity_after, &after);
        }

        if self.policy.survive_zone_loss && !waves.is_empty() {
            for (target, nodes) in &target_nodes {
                let demand: Resources = target_namespaces[target].iter().map(namespace_requests).sum();
                if !has_demand(demand) {
                    continue;
                }
                let workload: Vec<&NodeKey<'a>> =
                    nodes.iter().filter(|key| !(dedicated && control_plane.contains(*key))).collect();
                let zones: BTreeSet<&str> = nodes.iter().map(|key| index.nodes[key].node.zone.as_str()).collect();
                for zone in zones {
                    let left: Resources = workload
                        .iter()
                        .filter(|key| index.nodes[**key].node.zone != zone)
                        .map(|key| node_allocatable(key))
                        .sum();
                    self.check_fits(
                        "after the last wave",
                        &Side::Target(target),
                        left,
                        demand,
                        &format!(" after losing zone {zone} (survive_zone_loss)"),
                    );
                }
            }
        }
    }

    fn check_fits(&mut self, when: &str, side: &Side<'_>, allocatable: Resources, demand: Resources, suffix: &str) {
        if !has_demand(demand) {
            return;
        }
        let headroom = self.policy.headroom;
        let mut over = Vec::new();
        for (((name, need), (_, have)), fraction) in resource_list(demand)
            .into_iter()
            .zip(resource_list(allocatable))
            .zip([headroom.cpu, headroom.memory, headroom.pods])
        {
            let limit = (1.0 - fraction) * have as f64;
            if need as f64 > limit + 1e-9 * limit.max(1.0) {
                over.push(format!(
                    "{name} {} requested, {} allocatable, at most {} with {}% headroom",
                    resources_text(name, need),
                    resources_text(name, have),
                    resources_text(name, limit.max(0.0).floor() as u64),
                    (fraction * 100.0).round()
                ));
            }
        }
        if !over.is_empty() {
            self.push(Rule::Capacity, format!("{when}, {}{suffix} is short: {}", side.describe(), over.join("; ")));
        }
    }

    fn check_figures(
        &mut self,
        number: u64,
        field: &str,
        stated: &[ClusterCapacity],
        computed: &BTreeMap<Side<'a>, (Resources, Resources)>,
    ) {
        // Names used by both a source and a target are ambiguous: the plan-level
        // check reports them; skip them here.
        let mut by_name: BTreeMap<&str, Vec<(Resources, Resources)>> = BTreeMap::new();
        for (side, figures) in computed {
            by_name.entry(side.name()).or_default().push(*figures);
        }
        let mut listed = BTreeSet::new();
        for capacity in stated {
            let name = capacity.cluster.as_str();
            if !listed.insert(name) {
                self.push(Rule::Capacity, format!("wave {number} {field} lists {name} twice"));
                continue;
            }
            match by_name.get(name).map(Vec::as_slice) {
                None => self.push(
                    Rule::Capacity,
                    format!("wave {number} {field} lists {name}, which is neither a source nor a target of the block"),
                ),
                Some([(allocatable, demand)]) => {
                    if capacity.allocatable != *allocatable || capacity.requested != *demand {
                        self.push(
                            Rule::Capacity,
                            format!(
                                "wave {number} {field} states {name} at allocatable {:?} / requested {:?}, the replay gives {allocatable:?} / {demand:?}",
                                capacity.allocatable, capacity.requested
                            ),
                        );
                    }
                }
                Some(_) => {}
            }
        }
        for (name, figures) in &by_name {
            let (allocatable, demand) = figures[0];
            if !listed.contains(name) && (has_demand(allocatable) || has_demand(demand)) {
                self.push(Rule::Capacity, format!("wave {number} {field} does not list {name}"));
            }
        }
    }

    fn check_flows(&mut self) {
        let block = self.block;
        let small = self.is_small_site();
        let index = self.index;
        let targets: BTreeSet<&str> = block.target_clusters.iter().map(|t| t.name.as_str()).collect();
        let mut previous: Option<&FirewallFlow> = None;
        for flow in &block.firewall_flows {
            if let Some(previous) = previous {
                if previous == flow {
                    self.push(Rule::Flows, format!("flow {} is listed twice", flow_text(flow)));
                } else if previous > flow {
                    self.push(Rule::Flows, format!("flow {} is listed out of order", flow_text(flow)));
                }
            }
            previous = Some(flow);
            if !targets.contains(flow.target_cluster.as_str()) {
                self.push(
                    Rule::Flows,
                    format!("flow {} names {:?}, not a target of the block", flow_text(flow), flow.target_cluster),
                );
            }
        }
        for target in &block.target_clusters {
            let zone_of = |cluster: &str, node: &str| index.nodes.get(&(cluster, node)).map(|i| i.node.zone.clone());
            let zones: BTreeSet<String> =
                target.nodes_kept.iter().filter_map(|r| zone_of(&r.cluster_id, &r.node)).collect();
            let control_plane_zones: BTreeSet<String> =
                target.control_plane.iter().filter_map(|cp| zone_of(&cp.cluster_id, &cp.node)).collect();
            let stated_zones: BTreeSet<String> = target.zones.iter().cloned().collect();
            if stated_zones != zones || stated_zones.len() != target.zones.len() {
                self.push(
                    Rule::Structure,
                    format!(
                        "target {} lists zones [{}], its kept nodes are in [{}]",
                        target.name,
                        target.zones.join(", "),
                        zones.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            let zones: Vec<String> = zones.into_iter().collect();
            let control_plane_zones: Vec<String> = control_plane_zones.into_iter().collect();
            let required: BTreeSet<FirewallFlow> =
                required_flows(&target.name, &zones, &control_plane_zones, &target.cni, small, self.policy)
                    .into_iter()
                    .collect();
            let listed: BTreeSet<FirewallFlow> =
                block.firewall_flows.iter().filter(|f| f.target_cluster == target.name).cloned().collect();
            let missing: Vec<String> = required.difference(&listed).map(flow_text).collect();
            let extra: Vec<String> = listed.difference(&required).map(flow_text).collect();
            if !missing.is_empty() {
                self.push(
                    Rule::Flows,
                    format!(
                        "target {} needs {} flow(s) the plan does not list: {}",
                        target.name,
                        missing.len(),
                        short_list(&missing)
                    ),
                );
            }
            if !extra.is_empty() {
                self.push(
                    Rule::Flows,
                    format!(
                        "target {} lists {} flow(s) it does not need or that are already open: {}",
                        target.name,
                        extra.len(),
                        short_list(&extra)
                    ),
                );
            }
        }
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

#[cfg(test)]
mod tests {
    use kplan_model::policy::ZonePolicy;
    use kplan_model::{ClusterFacts, ControlPlaneNode, NamespaceMove, NamespaceRename, NodeMove, NodeRef, Wave};

    use super::*;

    const CPU: u64 = 8000;
    const MEMORY: u64 = 32 << 30;
    const PODS: u64 = 110;

    fn node(name: &str, zone: &str, role: NodeRole) -> Node {
        Node {
            name: name.into(),
            labels: Default::default(),
            datacenter: "fra".into(),
            zone: zone.into(),
            role,
            allocatable: Resources::new(CPU, MEMORY, PODS),
            kubelet_version: "v1.29.3".into(),
            container_runtime: "containerd://1.7.2".into(),
            architecture: "amd64".into(),
            unschedulable: false,
        }
    }

    fn namespace(name: &str, tier: &str, sla: SlaTier) -> Namespace {
        Namespace {
            name: name.into(),
            labels: Default::default(),
            security_tier: tier.into(),
            sla_tier: sla,
            requests: Resources::new(1000, 1 << 30, 5),
        }
    }

    fn cluster(id: &str, tier: &str, nodes: Vec<Node>, namespaces: Vec<Namespace>) -> ClusterSnapshot {
        ClusterSnapshot {
            cluster_id: id.into(),
            generation: 1,
            collected_at_unix: 0,
            facts: ClusterFacts {
                datacenter: "fra".into(),
                zone: String::new(),
                security_tier: tier.into(),
                kubernetes_version: "v1.29.3".into(),
                cni: "calico".into(),
                csi_drivers: Vec::new(),
            },
            nodes,
            namespaces,
        }
    }

    use NodeRole::{ControlPlane as Cp, Worker as W};

    /// fra/prod: c1 and c2 (4 nodes each, one control plane) over zones za, zb, zc;
    /// fra/dev: d1 (3 nodes in zd, a small site) plus c1's dev-tier `sandbox`.
    fn inventory() -> Vec<ClusterSnapshot> {
        vec![
            cluster(
                "c1",
                "prod",
                vec![node("c1-cp", "za", Cp), node("c1-w1", "za", W), node("c1-w2", "zb", W), node("c1-w3", "zb", W)],
                vec![
                    namespace("payments", "prod", SlaTier::Gold),
                    namespace("web", "prod", SlaTier::Bronze),
                    namespace("kube-system", "prod", SlaTier::Bronze),
                    namespace("sandbox", "dev", SlaTier::Bronze),
                ],
            ),
            cluster(
                "c2",
                "prod",
                vec![node("c2-cp", "zb", Cp), node("c2-w1", "zc", W), node("c2-w2", "zc", W), node("c2-w3", "za", W)],
                vec![namespace("payments", "prod", SlaTier::Silver), namespace("api", "prod", SlaTier::Silver)],
            ),
            cluster(
                "d1",
                "dev",
                vec![node("d1-cp", "zd", Cp), node("d1-w1", "zd", W), node("d1-w2", "zd", W)],
                vec![namespace("test", "dev", SlaTier::Bronze), namespace("default", "dev", SlaTier::Bronze)],
            ),
        ]
    }

    fn policy() -> Policy {
        let zone = |tier: &str| ZonePolicy { tiers: vec![tier.to_string()] };
        Policy {
            zones: [("za", zone("prod")), ("zb", zone("prod")), ("zc", zone("prod")), ("zd", zone("dev"))]
                .into_iter()
                .map(|(name, zone)| (name.to_string(), zone))
                .collect(),
            small_site_max_nodes: 3,
            wave_budget: kplan_model::policy::WaveBudget { nodes: 4, namespaces: 3 },
            ..Policy::default()
        }
    }

    fn node_ref(cluster: &str, node: &str, zone: &str) -> NodeRef {
        NodeRef { cluster_id: cluster.into(), node: node.into(), zone: zone.into() }
    }

    fn join(cluster: &str, node: &str, zone: &str, to: &str) -> NodeMove {
        NodeMove {
            cluster_id: cluster.into(),
            node: node.into(),
            zone: zone.into(),
            action: NodeAction::DrainAndJoin,
            to_cluster: to.into(),
        }
    }

    fn free(cluster: &str, node: &str, zone: &str) -> NodeMove {
        NodeMove {
            cluster_id: cluster.into(),
            node: node.into(),
            zone: zone.into(),
            action: NodeAction::Free,
            to_cluster: String::new(),
        }
    }

    fn move_namespace(cluster: &str, name: &str, to: &str, new_name: &str, sla: SlaTier) -> NamespaceMove {
        NamespaceMove {
            from_cluster: cluster.into(),
            namespace: name.into(),
            to_cluster: to.into(),
            new_name: new_name.into(),
            sla_tier: sla,
            requests: Resources::new(1000, 1 << 30, 5),
        }
    }

    /// A cluster with `n_nodes` workload nodes and `n_namespaces` namespaces.
    fn capacity(cluster: &str, n_nodes: u64, n_namespaces: u64) -> ClusterCapacity {
        ClusterCapacity {
            cluster: cluster.into(),
            allocatable: Resources::new(CPU * n_nodes, MEMORY * n_nodes, PODS * n_nodes),
            requested: Resources::new(1000 * n_namespaces, (1 << 30) * n_namespaces, 5 * n_namespaces),
        }
    }

    fn wave(
        index: u64,
        nodes: Vec<NodeMove>,
        namespaces: Vec<NamespaceMove>,
        retired: &[&str],
        before: Vec<ClusterCapacity>,
        after: Vec<ClusterCapacity>,
    ) -> Wave {
        Wave {
            index,
            nodes,
            namespaces,
            clusters_retired: retired.iter().map(|c| c.to_string()).collect(),
            capacity_before: before,
            capacity_after: after,
        }
    }

    fn cp(cluster: &str, node: &str, zone: &str) -> ControlPlaneNode {
        ControlPlaneNode { cluster_id: cluster.into(), node: node.into(), zone: zone.into() }
    }

    fn plan() -> Plan {
        let policy = policy();
        let abc: Vec<String> = ["za", "zb", "zc"].iter().map(|z| z.to_string()).collect();
        let prod = BlockPlan {
            datacenter: "fra".into(),
            security_tier: "prod".into(),
            status: BlockStatus::Planned,
            source_clusters: vec!["c1".into(), "c2".into()],
            target_clusters: vec![TargetCluster {
                name: "fra-prod".into(),
                nodes_kept: vec![
                    node_ref("c1", "c1-w1", "za"),
                    node_ref("c1", "c1-w2", "zb"),
                    node_ref("c2", "c2-w1", "zc"),
                    node_ref("c2", "c2-w2", "zc"),
                ],
                control_plane: vec![cp("c1", "c1-w1", "za"), cp("c1", "c1-w2", "zb"), cp("c2", "c2-w1", "zc")],
                distribution: "kubeadm".into(),
                kubernetes_version: "v1.29".into(),
                cni: "calico".into(),
                zones: abc.clone(),
                ..TargetCluster::default()
            }],
            nodes_freed: vec![
                node_ref("c1", "c1-cp", "za"),
                node_ref("c1", "c1-w3", "zb"),
                node_ref("c2", "c2-cp", "zb"),
                node_ref("c2", "c2-w3", "za"),
            ],
            firewall_flows: required_flows("fra-prod", &abc, &abc, "calico", false, &policy),
            waves: vec![
                wave(
                    1,
                    vec![
                        join("c1", "c1-w1", "za", "fra-prod"),
                        join("c1", "c1-w2", "zb", "fra-prod"),
                        join("c2", "c2-w1", "zc", "fra-prod"),
                        join("c2", "c2-w2", "zc", "fra-prod"),
                    ],
                    vec![],
                    &[],
                    vec![capacity("c1", 3, 2), capacity("c2", 3, 2), capacity("fra-prod", 0, 0)],
                    vec![capacity("c1", 1, 2), capacity("c2", 1, 2), capacity("fra-prod", 1, 0)],
                ),
                wave(
                    2,
                    vec![],
                    vec![
                        move_namespace("c1", "web", "fra-prod", "web", SlaTier::Bronze),
                        move_namespace("c2", "api", "fra-prod", "api", SlaTier::Silver),
                        move_namespace("c2", "payments", "fra-prod", "payments-c2", SlaTier::Silver),
                    ],
                    &[],
                    vec![capacity("c1", 1, 2), capacity("c2", 1, 2), capacity("fra-prod", 1, 0)],
                    vec![capacity("c1", 1, 1), capacity("c2", 1, 0), capacity("fra-prod", 1, 3)],
                ),
                wave(
                    3,
                    vec![free("c2", "c2-w3", "za"), free("c2", "c2-cp", "zb")],
                    vec![move_namespace("c1", "payments", "fra-prod", "payments", SlaTier::Gold)],
                    &["c2"],
                    vec![capacity("c1", 1, 1), capacity("c2", 1, 0), capacity("fra-prod", 1, 3)],
                    vec![capacity("c1", 1, 0), capacity("c2", 0, 0), capacity("fra-prod", 1, 4)],
                ),
                wave(
                    4,
                    vec![free("c1", "c1-w3", "zb"), free("c1", "c1-cp", "za")],
                    vec![],
                    &["c1"],
                    vec![capacity("c1", 1, 0), capacity("fra-prod", 1, 4)],
                    vec![capacity("fra-prod", 1, 4)],
                ),
            ],
            namespace_renames: vec![NamespaceRename {
                from_cluster: "c2".into(),
                namespace: "payments".into(),
                new_name: "payments-c2".into(),
                target_cluster: "fra-prod".into(),
                collides_with: vec!["c1".into()],
            }],
            ..BlockPlan::default()
        };
        let dev = BlockPlan {
            datacenter: "fra".into(),
            security_tier: "dev".into(),
            status: BlockStatus::Planned,
            source_clusters: vec!["c1".into(), "d1".into()],
            target_clusters: vec![TargetCluster {
                name: "fra-dev".into(),
                nodes_kept: vec![node_ref("d1", "d1-w1", "zd")],
                control_plane: vec![cp("d1", "d1-w1", "zd")],
                small_site: true,
                distribution: "k3s".into(),
                cni: "flannel".into(),
                zones: vec!["zd".into()],
                ..TargetCluster::default()
            }],
            nodes_freed: vec![node_ref("d1", "d1-cp", "zd"), node_ref("d1", "d1-w2", "zd")],
            firewall_flows: vec![],
            waves: vec![
                wave(
                    1,
                    vec![join("d1", "d1-w1", "zd", "fra-dev")],
                    vec![],
                    &[],
                    vec![capacity("c1", 0, 1), capacity("d1", 2, 1), capacity("fra-dev", 0, 0)],
                    vec![capacity("c1", 0, 1), capacity("d1", 1, 1), capacity("fra-dev", 1, 0)],
                ),
                wave(
                    2,
                    vec![],
                    vec![
                        move_namespace("c1", "sandbox", "fra-dev", "sandbox", SlaTier::Bronze),
                        move_namespace("d1", "test", "fra-dev", "test", SlaTier::Bronze),
                    ],
                    &[],
                    vec![capacity("c1", 0, 1), capacity("d1", 1, 1), capacity("fra-dev", 1, 0)],
                    vec![capacity("c1", 0, 0), capacity("d1", 1, 0), capacity("fra-dev", 1, 2)],
                ),
                wave(
                    3,
                    vec![free("d1", "d1-w2", "zd"), free("d1", "d1-cp", "zd")],
                    vec![],
                    &["d1"],
                    vec![capacity("d1", 1, 0), capacity("fra-dev", 1, 2)],
                    vec![capacity("d1", 0, 0), capacity("fra-dev", 1, 2)],
                ),
            ],
            ..BlockPlan::default()
        };
        Plan { blocks: vec![dev, prod], ..Plan::default() }
    }

    fn violations_of(mutate: impl FnOnce(&mut Vec<ClusterSnapshot>, &mut Policy, &mut Plan)) -> Vec<Violation> {
        let (mut inventory, mut policy, mut plan) = (inventory(), policy(), plan());
        mutate(&mut inventory, &mut policy, &mut plan);
        validate(&inventory, &policy, &plan)
    }

    fn prod(plan: &mut Plan) -> &mut BlockPlan {
        plan.blocks.iter_mut().find(|b| b.security_tier == "prod").unwrap()
    }

    fn dev(plan: &mut Plan) -> &mut BlockPlan {
        plan.blocks.iter_mut().find(|b| b.security_tier == "dev").unwrap()
    }

    #[track_caller]
    fn assert_breaks(violations: &[Violation], rule: Rule) {
        assert!(
            violations.iter().any(|v| v.rule == rule),
            "expected a {rule} violation, got:\n{}",
            violations.iter().map(|v| format!("  {v}\n")).collect::<String>()
        );
    }

    #[track_caller]
    fn assert_only(violations: &[Violation], rule: Rule) {
        assert_breaks(violations, rule);
        let others: Vec<&Violation> = violations.iter().filter(|v| v.rule != rule).collect();
        assert!(others.is_empty(), "expected only {rule} violations, also got {others:#?}");
    }

    #[test]
    fn a_valid_plan_passes() {
        let violations = violations_of(|_, _, _| {});
        assert!(violations.is_empty(), "{}", violations.iter().map(|v| format!("{v}\n")).collect::<String>());
    }

    #[test]
    fn unlisted_zones_host_the_tiers_already_in_them() {
        let violations = violations_of(|_, policy, _| policy.zones.clear());
        assert!(violations.is_empty(), "{violations:#?}");
    }

    #[test]
    fn an_explained_infeasible_block_passes() {
        let violations = violations_of(|_, _, plan| {
            let dev = dev(plan);
            *dev = BlockPlan {
                datacenter: "fra".into(),
                security_tier: "dev".into(),
                status: BlockStatus::Infeasible,
                explanation: "fra/dev needs 3000m cpu, its allowed zones hold 2400m".into(),
                ..BlockPlan::default()
            };
        });
        assert!(violations.is_empty(), "{violations:#?}");
    }

    #[test]
    fn tier_separation_nodes() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).target_clusters[0].nodes_kept.push(node_ref("d1", "d1-w2", "zd"));
        });
        assert_breaks(&violations, Rule::TierSeparation);
        assert!(violations.iter().all(|v| v.security_tier == "prod"));
    }

    #[test]
    fn tier_separation_namespaces() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).waves[1].namespaces.push(move_namespace("d1", "test", "fra-prod", "test", SlaTier::Bronze));
        });
        assert_breaks(&violations, Rule::TierSeparation);
    }

    #[test]
    fn zone_permission() {
        let violations = violations_of(|_, policy, _| {
            policy.zones.insert("zc".into(), ZonePolicy { tiers: vec!["dev".into()] });
        });
        assert_breaks(&violations, Rule::ZonePermission);
        // a zone that hosts nothing (a dmz)
        let violations = violations_of(|_, policy, _| {
            policy.zones.insert("za".into(), ZonePolicy { tiers: vec![] });
        });
        assert_breaks(&violations, Rule::ZonePermission);
    }

    #[test]
    fn capacity_with_headroom() {
        let violations = violations_of(|_, policy, _| policy.headroom.cpu = 0.9);
        assert_only(&violations, Rule::Capacity);
        assert!(violations.iter().any(|v| v.detail.contains("cpu")), "{violations:#?}");
    }

    #[test]
    fn capacity_during_a_wave() {
        // web moves in wave 1, while the target's nodes are still joining
        let violations = violations_of(|_, _, plan| {
            let block = prod(plan);
            let web = block.waves[1].namespaces.remove(0);
            block.waves[0].namespaces.push(web);
        });
        assert_breaks(&violations, Rule::Capacity);
        assert!(
            violations
                .iter()
                .any(|v| v.rule == Rule::Capacity && v.detail.starts_with("during wave 1, target fra-prod")),
            "{violations:#?}"
        );
    }

    #[test]
    fn capacity_of_a_source_counts_only_workers() {
        // c1 keeps only its control-plane node while web and payments are still there
        let violations = violations_of(|_, _, plan| {
            let block = prod(plan);
            let w3 = block.waves[3].nodes.remove(0);
            block.waves[0].nodes.push(w3);
        });
        assert!(
            violations.iter().any(|v| v.rule == Rule::Capacity && v.detail.contains("source cluster c1")),
            "{violations:#?}"
        );
    }

    #[test]
    fn capacity_figures_must_match_the_replay() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).waves[1].capacity_after[2].requested.cpu_millis += 1;
        });
        assert_only(&violations, Rule::Capacity);
        let violations = violations_of(|_, _, plan| {
            prod(plan).waves[0].capacity_before.remove(0);
        });
        assert_only(&violations, Rule::Capacity);
    }

    #[test]
    fn capacity_after_losing_a_zone() {
        let violations = violations_of(|_, policy, _| policy.survive_zone_loss = true);
        assert_only(&violations, Rule::Capacity);
        assert!(violations.iter().any(|v| v.detail.contains("after losing zone zc")), "{violations:#?}");
    }

    #[test]
    fn budget() {
        let violations = violations_of(|_, policy, _| policy.wave_budget.nodes = 3);
        assert_only(&violations, Rule::Budget);
        let violations = violations_of(|_, policy, _| policy.wave_budget.namespaces = 2);
        assert_only(&violations, Rule::Budget);
    }

    #[test]
    fn sla_order() {
        let violations = violations_of(|_, policy, _| {
            policy.sla_order = vec![SlaTier::Gold, SlaTier::Silver, SlaTier::Bronze];
        });
        assert_only(&violations, Rule::SlaOrder);
    }

    #[test]
    fn control_plane_needs_three_nodes() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).target_clusters[0].control_plane.pop();
        });
        assert_breaks(&violations, Rule::ControlPlaneSpread);
    }

    #[test]
    fn control_plane_needs_three_zones() {
        // c2-w2 (zc) instead of c1-w2 (zb): two nodes in zc
        let violations = violations_of(|_, _, plan| {
            prod(plan).target_clusters[0].control_plane[1] = cp("c2", "c2-w2", "zc");
        });
        assert_breaks(&violations, Rule::ControlPlaneSpread);
        // (the flows change with the control plane's zones too)
        assert!(violations.iter().all(|v| matches!(v.rule, Rule::ControlPlaneSpread | Rule::Flows)));
    }

    #[test]
    fn fewer_than_three_zones_needs_a_note() {
        // zc may host nothing: the block's allowed zones are za and zb
        let violations = violations_of(|_, policy, plan| {
            policy.zones.insert("zc".into(), ZonePolicy { tiers: vec![] });
            prod(plan).target_clusters[0].control_plane_note = String::new();
        });
        assert!(
            violations.iter().any(|v| v.rule == Rule::ControlPlaneSpread && v.detail.contains("control_plane_note")),
            "{violations:#?}"
        );
    }

    #[test]
    fn small_site_runs_k3s() {
        let violations = violations_of(|_, _, plan| dev(plan).target_clusters[0].distribution = "kubeadm".into());
        assert_only(&violations, Rule::ControlPlaneSpread);
        let violations = violations_of(|_, _, plan| dev(plan).target_clusters[0].small_site = false);
        assert_breaks(&violations, Rule::ControlPlaneSpread);
    }

    #[test]
    fn node_kept_and_freed() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).target_clusters[0].nodes_kept.push(node_ref("c1", "c1-w3", "zb"));
        });
        assert_breaks(&violations, Rule::NodeAccounting);
    }

    #[test]
    fn node_in_two_targets() {
        let violations = violations_of(|_, _, plan| {
            let block = prod(plan);
            let mut second = block.target_clusters[0].clone();
            second.name = "fra-prod-2".into();
            block.target_clusters.push(second);
        });
        assert_breaks(&violations, Rule::NodeAccounting);
        assert_breaks(&violations, Rule::MaxNodes);
    }

    #[test]
    fn node_that_never_moves() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).waves[2].nodes.remove(0);
        });
        assert_breaks(&violations, Rule::NodeAccounting);
    }

    #[test]
    fn namespace_lost() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).waves[1].namespaces.remove(0);
        });
        assert_breaks(&violations, Rule::NamespaceAccounting);
    }

    #[test]
    fn platform_namespaces_never_move() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).waves[1].namespaces.push(move_namespace(
                "c1",
                "kube-system",
                "fra-prod",
                "kube-system",
                SlaTier::Bronze,
            ));
        });
        assert_breaks(&violations, Rule::NamespaceAccounting);
    }

    #[test]
    fn renames_must_be_unique() {
        let violations = violations_of(|_, _, plan| {
            let block = prod(plan);
            block.waves[1].namespaces[2].new_name = "payments".into();
            block.namespace_renames.clear();
        });
        assert_only(&violations, Rule::RenameUniqueness);
    }

    #[test]
    fn renames_must_be_labels_and_applied() {
        let violations = violations_of(|_, _, plan| {
            let block = prod(plan);
            block.waves[1].namespaces[2].new_name = "Payments_C2".into();
            block.namespace_renames[0].new_name = "Payments_C2".into();
        });
        assert_only(&violations, Rule::RenameUniqueness);
        // the rename says one thing, the move does another
        let violations = violations_of(|_, _, plan| prod(plan).namespace_renames[0].new_name = "payments-2".into());
        assert_only(&violations, Rule::RenameUniqueness);
        // a collision not reported
        let violations = violations_of(|_, _, plan| prod(plan).namespace_renames[0].collides_with.clear());
        assert_only(&violations, Rule::RenameUniqueness);
    }

    #[test]
    fn retirement_by_the_last_wave() {
        let violations = violations_of(|_, _, plan| prod(plan).waves[3].clusters_retired.clear());
        assert_only(&violations, Rule::Retirement);
    }

    #[test]
    fn control_plane_nodes_move_only_when_retired() {
        // c2-cp freed in wave 2, c2 retired in wave 3
        let violations = violations_of(|_, _, plan| {
            let block = prod(plan);
            let cp = block.waves[2].nodes.remove(1);
            block.waves[1].nodes.push(cp);
            block.waves[1].capacity_after[1] = capacity("c2", 1, 0);
        });
        assert_only(&violations, Rule::Retirement);
    }

    #[test]
    fn retired_while_not_empty() {
        let violations = violations_of(|_, _, plan| {
            let block = prod(plan);
            block.waves[3].clusters_retired.clear();
            block.waves[2].clusters_retired.push("c1".into());
        });
        assert_breaks(&violations, Rule::Retirement);
        // and a cluster of another block
        let violations = violations_of(|_, _, plan| prod(plan).waves[3].clusters_retired.push("d1".into()));
        assert_breaks(&violations, Rule::Retirement);
    }

    #[test]
    fn flows_must_equal_the_required_set() {
        let violations = violations_of(|_, _, plan| {
            prod(plan).firewall_flows.pop();
        });
        assert_only(&violations, Rule::Flows);
        let violations = violations_of(|_, _, plan| {
            let block = prod(plan);
            let mut extra = block.firewall_flows[0].clone();
            extra.ports = "8080".into();
            block.firewall_flows.push(extra);
        });
        assert_only(&violations, Rule::Flows);
        // already open flows must not be listed
        let violations = violations_of(|_, policy, _| {
            policy.open_flows.push(kplan_model::policy::OpenFlow {
                from_zone: "za".into(),
                to_zone: "zb".into(),
                bidirectional: true,
                ..Default::default()
            });
        });
        assert_only(&violations, Rule::Flows);
    }

    #[test]
    fn max_nodes_per_target() {
        let violations = violations_of(|_, policy, _| policy.max_nodes_per_cluster = 3);
        assert_only(&violations, Rule::MaxNodes);
    }

    #[test]
    fn an_infeasible_block_must_explain() {
        let violations = violations_of(|_, _, plan| {
            let dev = dev(plan);
            dev.status = BlockStatus::Infeasible;
            dev.explanation = "  ".into();
        });
        assert_breaks(&violations, Rule::Explanation);
        assert_breaks(&violations, Rule::Structure);
    }

    #[test]
    fn structure() {
        let violations = violations_of(|_, _, plan| prod(plan).waves[2].index = 7);
        assert_only(&violations, Rule::Structure);
        let violations = violations_of(|_, _, plan| prod(plan).target_clusters[0].name = "c1".into());
        assert_breaks(&violations, Rule::Structure);
    }

    #[test]
    fn every_block_is_planned() {
        let violations = violations_of(|_, _, plan| plan.blocks.retain(|b| b.security_tier != "dev"));
        assert_breaks(&violations, Rule::NodeAccounting);
        assert_breaks(&violations, Rule::NamespaceAccounting);
        assert!(violations.iter().all(|v| v.security_tier == "dev"), "{violations:#?}");
    }

    #[test]
    fn violations_display_block_rule_and_detail() {
        let violation = Violation {
            datacenter: "fra".into(),
            security_tier: "prod".into(),
            rule: Rule::SlaOrder,
            detail: "x".into(),
        };
        assert_eq!(violation.to_string(), "fra/prod: sla-order: x");
        let names: BTreeSet<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Rule::ALL.len());
    }
}
