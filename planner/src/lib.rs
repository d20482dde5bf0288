//! kplan-planner: inventory + policy → a staged, validated consolidation plan.
//!
//! Pure: no IO, no protobuf, no clock, no randomness. The same inputs give the
//! same plan on any machine: every solve stops at a deterministic work limit
//! (branch-and-bound nodes) with a fixed seed and thread count, blocks are
//! solved in parallel but assembled in a fixed order, and only `solve_seconds`
//! differs. Wall-clock limits are safety nets: a block one stopped is marked
//! `wall-clock-limit`. Every plan carries its fingerprint (input and content
//! digests, [`digest`]).
//! `docs/plan-semantics.md` is the contract between the model and the validator.
//!
//! # The public API
//!
//! - [`propose`]: plan every block of an inventory ([`PlanOptions`],
//!   [`ProposeOutcome`]: the plan and, when asked, its models in MPS);
//! - [`validate::validate`]: the independent validator (every rule a plan
//!   breaks, as [`validate::Violation`]s);
//! - [`stamp`]: give a plan its id and time (the caller's clock);
//! - [`policy::policy_problems`]: the policy's one rule set; with the `files`
//!   feature, [`policy::load_policy`] layers defaults, a file and the environment;
//! - [`capacity::review`]: the quarterly capacity review;
//! - [`diff::input_differences`], [`diff::content_differences`]: what differs
//!   between two plans (`kplan propose --check`, `kplan plans diff`);
//! - [`pod_report::pod_report`]: where each workload's pods can run at every
//!   moment of a plan (`kplan plans pods`).
//!
//! ```
//! use kplan_model::{ClusterFacts, ClusterSnapshot, Node, NodeRole, Policy, Resources};
//! use kplan_planner::{PlanOptions, propose, validate::validate};
//!
//! let node = |name: &str, zone: &str| Node {
//!     name: name.into(),
//!     datacenter: "fra".into(),
//!     zone: zone.into(),
//!     role: NodeRole::Worker,
//!     allocatable: Resources::new(8_000, 32 << 30, 110),
//!     kubelet_version: "v1.30.0".into(),
//!     container_runtime: "containerd://1.7.0".into(),
//!     architecture: "amd64".into(),
//!     labels: Default::default(),
//!     unschedulable: false,
//!     taints: vec![],
//!     extended: Default::default(),
//!     runtime_handlers: Vec::new(),
//! };
//! let cluster = |id: &str| ClusterSnapshot {
//!     cluster_id: id.into(),
//!     generation: 1,
//!     facts: ClusterFacts { datacenter: "fra".into(), security_tier: "prod".into(), ..ClusterFacts::default() },
//!     nodes: ["a", "b", "c"].iter().map(|z| node(&format!("{id}-{z}"), &format!("fra-{z}"))).collect(),
//!     ..ClusterSnapshot::default()
//! };
//! let inventory = vec![cluster("fra-1"), cluster("fra-2")];
//! let policy = Policy::default();
//! let plan = propose(&inventory, &policy, &PlanOptions::default()).unwrap().plan;
//! assert_eq!(plan.blocks.len(), 1);
//! assert!(validate(&inventory, &policy, &plan).is_empty());
//! ```
//!
//! # Modules
//!
//! - [`blocks`]: the inventory cut into (datacenter, security tier) blocks;
//! - [`pools`]: identical nodes aggregated into pools, namespaces into groups;
//! - [`greedy`]: first-fit decreasing, the warm start and fallback;
//! - [`model`]: the composition model and the weights of the objective;
//! - [`waves`]: wave scheduling (greedy and the time-indexed model) and an exact replay;
//! - [`highs`]: HiGHS through good_lp with a deadline (the only module that runs a solver);
//! - [`context`] → [`realize`] → [`solve`] → [`materialise`]: one block from
//!   start to plan (derived data; a composition made into a candidate; the
//!   candidates, solves and fallbacks; the plan users read);
//! - [`explain`]: why a block cannot be planned, in a user's words (reads
//!   [`realize::RealizeFailure`] and [`waves::Stall`], never the solver);
//! - [`mps`]: a model written out in MPS for an external cross-check;
//! - [`flows`], [`namespaces`], [`preconditions`]: the flow table, collisions,
//!   compatibility;
//! - [`validate`]: the independent validator (shares no code with the model);
//! - [`policy`], [`capacity`], [`digest`], [`diff`]: the policy's rules, capacity
//!   reviews, plan ids and fingerprints, differences between plans.

pub mod blocks;
pub mod capacity;
pub mod classes;
pub mod context;
pub mod diff;
pub mod digest;
mod error;
pub mod explain;
pub mod flows;
pub mod greedy;
pub mod headroom;
pub mod highs;
pub mod isolation;
pub mod materialise;
pub mod model;
pub mod mps;
pub mod namespaces;
pub mod parts;
pub mod pod_report;
pub mod policy;
pub mod pools;
pub mod preconditions;
pub mod realize;
pub mod removed_apis;
pub mod runbook;
pub mod solve;
pub mod validate;
pub mod watch;
pub mod waves;
pub mod waves_model;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kplan_model::policy::SolverPolicy;
use kplan_model::{BlockPlan, BlockStatus, ClusterSnapshot, InventoryRef, Plan, PlanFingerprint, PlanSummary, Policy};
use rayon::prelude::*;

pub use digest::{plan_id, policy_digest, stamp};
pub use error::PlanError;

use blocks::{BlockKey, ZoneTiers, check_inventory, partition};
use context::BlockSettings;
use solve::plan_block;

/// Plans only the blocks that match (an empty field matches anything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockFilter {
    pub datacenter: Option<String>,
    pub security_tier: Option<String>,
}

impl BlockFilter {
    /// `dc/tier`, `dc/` or `/tier`.
    pub fn parse(text: &str) -> BlockFilter {
        let (datacenter, tier) = text.split_once('/').unwrap_or((text, ""));
        let non_empty = |s: &str| if s.trim().is_empty() { None } else { Some(s.trim().to_string()) };
        BlockFilter { datacenter: non_empty(datacenter), security_tier: non_empty(tier) }
    }

    pub fn matches(&self, key: &BlockKey) -> bool {
        self.datacenter.as_ref().is_none_or(|d| *d == key.datacenter)
            && self.security_tier.as_ref().is_none_or(|t| *t == key.security_tier)
    }
}

impl std::fmt::Display for BlockFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.datacenter.as_deref().unwrap_or("*"), self.security_tier.as_deref().unwrap_or("*"))
    }
}

/// Options of one `propose` run (the policy holds the defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanOptions {
    /// Deadline per block, overriding `policy.solver.time_limit_seconds`.
    pub time_limit_seconds: Option<f64>,
    /// Plan only the matching blocks.
    pub block_filter: Option<BlockFilter>,
    /// Return each block's models in MPS (`kplan propose --write-model DIR`).
    pub write_models: bool,
    /// Skip the solver: the greedy plan only (a baseline for benchmarks).
    pub greedy_only: bool,
}

/// A block's model in MPS, named `<datacenter>-<tier>.composition` or `.waves`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockModel {
    pub name: String,
    pub mps: String,
}

/// A plan and, when asked, the models it was solved from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposeOutcome {
    pub plan: Plan,
    pub models: Vec<BlockModel>,
}

/// The policy's one rule set ([`policy::policy_problems`]), and the time limit a
/// caller may give instead of the policy's.
fn check_policy(policy: &Policy, time_limit: f64) -> Result<(), PlanError> {
    let mut problems: Vec<String> = policy::policy_problems(policy).iter().map(ToString::to_string).collect();
    if !(time_limit.is_finite() && time_limit > 0.0) {
        problems.push(format!("the solver time limit is {time_limit} s, it must be positive"));
    }
    if problems.is_empty() { Ok(()) } else { Err(PlanError::InvalidPolicy(problems.join("; "))) }
}

/// Plans every block of `inventory` (or those `options.block_filter` matches).
///
/// Blocks are solved in parallel; each gets `policy.solver.time_limit_seconds`
/// (or the override). Every planned block has passed the validator; a block that
/// cannot be planned is `infeasible` with an explanation.
pub fn propose(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    options: &PlanOptions,
) -> Result<ProposeOutcome, PlanError> {
    let started = Instant::now();
    check_inventory(inventory)?;
    let time_limit = options.time_limit_seconds.unwrap_or(policy.solver.time_limit_seconds);
    check_policy(policy, time_limit)?;

    let mut blocks = partition(inventory, policy);
    if let Some(filter) = &options.block_filter {
        blocks.retain(|block| filter.matches(&block.key));
        if blocks.is_empty() {
            return Err(PlanError::NoBlockMatches(filter.to_string()));
        }
    }
    let zone_tiers = ZoneTiers::from_inventory(inventory);
    let settings = BlockSettings {
        solver: SolverPolicy { time_limit_seconds: time_limit, ..policy.solver },
        write_models: options.write_models,
        use_solver: !options.greedy_only,
    };
    let validate_block = |block: &BlockPlan| block_violations(inventory, policy, block);

    // Largest blocks first for load balance; results back in block order.
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    order.sort_by_key(|&b| (std::cmp::Reverse(blocks[b].nodes.len() + blocks[b].namespaces.len()), b));
    let mut outcomes: Vec<(usize, context::BlockOutcome)> = order
        .par_iter()
        .map(|&b| {
            let mut outcome = plan_block(inventory, policy, &blocks[b], &zone_tiers, settings, &validate_block);
            // Before a block is called infeasible: its large namespaces in parts.
            if outcome.stalled
                && let Some(rescued) =
                    rescue_in_parts(inventory, policy, &blocks[b], &zone_tiers, settings, &validate_block)
            {
                outcome = rescued;
            }
            if outcome.plan.status == BlockStatus::Infeasible
                && let Some(note) = relaxation(inventory, policy, &blocks[b], settings)
                    .or_else(|| zone_relaxation(inventory, policy, &blocks[b], settings))
                    .or_else(|| buffer_relaxation(inventory, policy, &blocks[b], settings))
            {
                outcome.plan.explanation = format!("{}\n{note}", outcome.plan.explanation);
            }
            (b, outcome)
        })
        .collect();
    outcomes.sort_by_key(|(b, _)| *b);

    let mut models = Vec::new();
    let mut block_plans = Vec::with_capacity(outcomes.len());
    for (_, outcome) in outcomes {
        models.extend(outcome.models.into_iter().map(|(name, mps)| BlockModel { name, mps }));
        block_plans.push(outcome.plan);
    }

    let mut plan = Plan {
        id: String::new(),
        created_at_unix: 0,
        inventory: {
            let mut refs: Vec<InventoryRef> = inventory
                .iter()
                .map(|c| InventoryRef {
                    cluster_id: c.cluster_id.clone(),
                    generation: c.generation,
                    content_sha256: String::new(),
                })
                .collect();
            refs.sort_by(|a, b| a.cluster_id.cmp(&b.cluster_id));
            refs
        },
        policy_digest: policy_digest(policy),
        blocks: block_plans,
        summary: PlanSummary::default(),
        fingerprint: PlanFingerprint::default(),
        policy: None,
    };

    // The whole plan once more: whatever the validator still rejects is not printed.
    let violations = validate::validate(inventory, policy, &plan);
    let mut by_block: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for violation in violations {
        if violation.datacenter.is_empty() && violation.security_tier.is_empty() {
            tracing::warn!(%violation, "the validator rejects the plan as a whole");
        }
        by_block
            .entry((violation.datacenter.clone(), violation.security_tier.clone()))
            .or_default()
            .push(violation.to_string());
    }
    for block in &mut plan.blocks {
        if block.status != BlockStatus::Planned {
            continue;
        }
        if let Some(found) = by_block.get(&(block.datacenter.clone(), block.security_tier.clone())) {
            tracing::warn!(datacenter = %block.datacenter, tier = %block.security_tier, n_violations = found.len(), "the validator rejected a block of the assembled plan");
            *block = rejected_block(block, found);
        }
    }
    note_unchecked_pods(&mut plan.blocks, inventory);
    plan.summary = summarize(&plan.blocks, started.elapsed().as_secs_f64());
    fingerprint(&mut plan, inventory, policy, &settings.solver, options);
    Ok(ProposeOutcome { plan, models })
}

/// A block that could not be staged, planned again with large namespaces in
/// parts (`parts::split_large`): the largest one first, then the two largest,
/// the four largest, ..., as few as let the greedy plan through. Each trial is
/// a greedy solve (cheap); only the split that passes is solved in full, so a
/// block the rescue cannot help costs a few greedy solves more, not another
/// solver run. Deterministic: the order and the steps depend on the inventory
/// and the policy only.
fn rescue_in_parts(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    block: &blocks::Block,
    zone_tiers: &ZoneTiers,
    settings: BlockSettings,
    validate_block: &(dyn Fn(&BlockPlan) -> Vec<String> + Sync),
) -> Option<context::BlockOutcome> {
    let greedy = BlockSettings { use_solver: false, write_models: false, ..settings };
    let mut limit = 1;
    loop {
        let parts::LargeSplit { block: split, chosen, n_large } = parts::split_large(inventory, block, policy, limit)?;
        let trial = plan_block(inventory, policy, &split, zone_tiers, greedy, validate_block);
        tracing::debug!(block = %block.key, n_split = chosen.len(), n_large, status = ?trial.plan.status, "moves in parts tried");
        if trial.plan.status == BlockStatus::Planned {
            let mut rescued = if settings.use_solver {
                plan_block(inventory, policy, &split, zone_tiers, settings, validate_block)
            } else {
                trial
            };
            if rescued.plan.status != BlockStatus::Planned {
                return None;
            }
            let named: Vec<String> = chosen
                .iter()
                .map(|&(id, share)| {
                    let cluster = &inventory[id.cluster].cluster_id;
                    let namespace = &block.namespace(inventory, id).name;
                    format!("{cluster}/{namespace} ({:.0}% of it)", share * 100.0)
                })
                .collect();
            let note = format!(
                "in one piece the block cannot be staged; {} in parts of at most {}% of its source's workload capacity (one pod at least): {}",
                if named.len() == 1 { "its largest namespace moves" } else { "its largest namespaces move" },
                policy.parts.large_share * 100.0,
                named.join(", ")
            );
            rescued.plan.explanation = if rescued.plan.explanation.is_empty() {
                note
            } else {
                format!("{}\n{note}", rescued.plan.explanation)
            };
            return Some(rescued);
        }
        if chosen.len() == n_large {
            return None;
        }
        limit *= 2;
    }
}

/// What the validator says of `block` planned on its own, in words.
fn block_violations(inventory: &[ClusterSnapshot], policy: &Policy, block: &BlockPlan) -> Vec<String> {
    let plan = Plan { blocks: vec![block.clone()], ..Plan::default() };
    validate::validate(inventory, policy, &plan)
        .into_iter()
        .filter(|v| v.datacenter == block.datacenter && v.security_tier == block.security_tier)
        .map(|v| v.to_string())
        .collect()
}

/// The greedy plan of block `key` of a relaxed inventory or policy, with its
/// large namespaces in parts where that helps, when the validator (of that
/// inventory and policy) accepts it: the proof behind a "feasible if ...".
fn prove(inventory: &[ClusterSnapshot], policy: &Policy, key: &BlockKey, settings: BlockSettings) -> Option<BlockPlan> {
    let block = partition(inventory, policy).into_iter().find(|b| &b.key == key)?;
    let zone_tiers = ZoneTiers::from_inventory(inventory);
    let validate_block = |plan: &BlockPlan| block_violations(inventory, policy, plan);
    let greedy = BlockSettings { use_solver: false, write_models: false, ..settings };
    let mut outcome = plan_block(inventory, policy, &block, &zone_tiers, greedy, &validate_block);
    if outcome.stalled
        && let Some(rescued) = rescue_in_parts(inventory, policy, &block, &zone_tiers, greedy, &validate_block)
    {
        outcome = rescued;
    }
    (outcome.plan.status == BlockStatus::Planned).then_some(outcome.plan)
}

/// The smallest headroom, in steps of 5 points down to 5%, at which the
/// greedy plan of an infeasible block passes the validator: "feasible if ...".
/// The greedy plan is one of the candidates of every run, so a re-run with
/// that headroom plans the block (the solver may find a better plan). The
/// search is deterministic and costs at most a few greedy solves of the block.
fn relaxation(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    block: &blocks::Block,
    settings: BlockSettings,
) -> Option<String> {
    let current = [policy.headroom.cpu, policy.headroom.memory, policy.headroom.pods];
    let highest = current.iter().copied().fold(0.0, f64::max);
    let mut step = 1;
    loop {
        let level = ((highest - 0.05 * step as f64) * 100.0).round() / 100.0;
        if level < 0.05 - 1e-9 {
            return None;
        }
        step += 1;
        let mut relaxed = policy.clone();
        relaxed.headroom.cpu = current[0].min(level);
        relaxed.headroom.memory = current[1].min(level);
        relaxed.headroom.pods = current[2].min(level);
        if let Some(planned) = prove(inventory, &relaxed, &block.key, settings) {
            let kept: usize = planned.target_clusters.iter().map(|t| t.nodes_kept.len()).sum();
            return Some(format!(
                "feasible if the headroom is at most {}% (policy [headroom] cpu, memory and pods, now {}%, {}% and {}%; it applies to every block): \
                 with it this block is planned, {} → {kept} nodes in {} waves; re-run `kplan propose` with that policy to get the plan",
                (level * 100.0).round(),
                (current[0] * 100.0).round(),
                (current[1] * 100.0).round(),
                (current[2] * 100.0).round(),
                planned.nodes_before,
                planned.waves.len()
            ));
        }
    }
}

/// Where a lower headroom does not help: the first zone (by name) among the
/// block's zones that the policy lists but does not let host the block's tier,
/// with which, opened to the tier, the block's greedy plan passes the
/// validator: "feasible if zone Z may host tier T". Zones the policy does not
/// list keep what they host today and are not proposed (opening them is a
/// decision of their own). Deterministic; one greedy solve per zone.
fn zone_relaxation(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    block: &blocks::Block,
    settings: BlockSettings,
) -> Option<String> {
    let tier = &block.key.security_tier;
    for zone in block.forbidden_zones.iter().filter(|z| policy.zones.contains_key(*z)) {
        let mut relaxed = policy.clone();
        relaxed.zones.get_mut(zone)?.tiers.push(tier.clone());
        if let Some(planned) = prove(inventory, &relaxed, &block.key, settings) {
            let kept: usize = planned.target_clusters.iter().map(|t| t.nodes_kept.len()).sum();
            return Some(format!(
                "feasible if zone {zone} may host tier {tier} (policy [zones.{zone}] tiers, now {}): with it this block \
                 is planned, {} → {kept} nodes in {} waves; re-run `kplan propose` with that policy to get the plan",
                policy.zones[zone].tiers.join(", "),
                planned.nodes_before,
                planned.waves.len()
            ));
        }
    }
    None
}

/// The most temporary buffer nodes a relaxation proposes.
const MAX_BUFFER_NODES: usize = 3;

/// Where a lower headroom does not help: the fewest temporary buffer nodes
/// (up to [`MAX_BUFFER_NODES`]) with which the block's greedy plan (its large
/// namespaces in parts where that helps) passes the validator. Each is a copy
/// of the shape of the largest untainted worker of the block's fullest source
/// cluster (by the larger of its cpu and memory use of its workers), added to
/// that cluster: the slack a source needs to let its first node go. A re-run on
/// the inventory with those nodes reported plans the block, so the note says
/// "feasible with ...". Deterministic; it costs a few greedy solves.
fn buffer_relaxation(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    block: &blocks::Block,
    settings: BlockSettings,
) -> Option<String> {
    let use_of = |cluster: &ClusterSnapshot| -> f64 {
        let workers: kplan_model::Resources =
            cluster.nodes.iter().filter(|n| n.role != kplan_model::NodeRole::ControlPlane).map(|n| n.allocatable).sum();
        let used = cluster.requested();
        let share = |used: u64, cap: u64| used as f64 / cap.max(1) as f64;
        share(used.cpu_millis, workers.cpu_millis).max(share(used.memory_bytes, workers.memory_bytes))
    };
    // The fullest source; ties to the first by cluster id (source_clusters is sorted).
    let fullest = block
        .source_clusters
        .iter()
        .copied()
        .fold(None::<(usize, f64)>, |best, c| {
            let u = use_of(&inventory[c]);
            match best {
                Some((_, b)) if b >= u => best,
                _ => Some((c, u)),
            }
        })?
        .0;
    let cluster = &inventory[fullest];
    let shape = cluster
        .nodes
        .iter()
        .filter(|n| n.role != kplan_model::NodeRole::ControlPlane && n.taints.is_empty() && !n.unschedulable)
        .max_by(|a, b| {
            (a.allocatable.cpu_millis, a.allocatable.memory_bytes)
                .cmp(&(b.allocatable.cpu_millis, b.allocatable.memory_bytes))
                .then(b.name.cmp(&a.name))
        })?;
    for count in 1..=MAX_BUFFER_NODES {
        let mut relaxed = inventory.to_vec();
        let names: Vec<String> = (1..=count).map(|i| format!("{}-kplan-buffer-{i}", cluster.cluster_id)).collect();
        if names.iter().any(|name| cluster.nodes.iter().any(|n| &n.name == name)) {
            return None;
        }
        for name in &names {
            let mut node = shape.clone();
            node.name = name.clone();
            if let Some(hostname) = node.labels.get_mut("kubernetes.io/hostname") {
                *hostname = name.clone();
            }
            relaxed[fullest].nodes.push(node);
        }
        if let Some(planned) = prove(&relaxed, policy, &block.key, settings) {
            let kept: usize = planned.target_clusters.iter().map(|t| t.nodes_kept.len()).sum();
            let gib = shape.allocatable.memory_bytes as f64 / f64::from(1u32 << 30);
            return Some(format!(
                "feasible with {count} temporary buffer node{} in {} ({}), each like {} ({:.0} cores, {gib:.0} GiB, zone {}): \
                 with {} this block is planned, {} → {kept} nodes in {} waves; add {}, let the cluster report, and re-run `kplan propose`",
                if count == 1 { "" } else { "s" },
                cluster.cluster_id,
                names.join(", "),
                shape.name,
                shape.allocatable.cpu_millis as f64 / 1000.0,
                shape.zone,
                if count == 1 { "it" } else { "them" },
                planned.nodes_before,
                planned.waves.len(),
                if count == 1 { "it" } else { "them" },
            ));
        }
    }
    None
}

/// Says which source clusters of a planned block have pods the inventory does
/// not describe one by one (older snapshots, kubectl exports without pods,
/// agents that report sums only): the validator's pod-level checks
/// (`validate/pods.rs`) could not be made for them.
fn note_unchecked_pods(blocks: &mut [BlockPlan], inventory: &[ClusterSnapshot]) {
    let unchecked: BTreeSet<&str> = inventory
        .iter()
        // A cluster that reports pods for no namespace while its namespaces have pods
        // (DaemonSet pods alone are never grouped: they come with the nodes).
        .filter(|c| {
            c.namespaces.iter().all(|n| n.pod_groups.is_empty()) && c.namespaces.iter().any(|n| n.requests.pods > 0)
        })
        .map(|c| c.cluster_id.as_str())
        .collect();
    // Clusters whose pods mount claims the inventory does not describe
    // (an export without persistentvolumeclaims and persistentvolumes).
    let unresolved: BTreeSet<&str> = inventory
        .iter()
        .filter(|c| {
            let mut volumes = c.namespaces.iter().flat_map(|n| &n.pod_groups).flat_map(|g| &g.volumes);
            // No driver: the claim, its volume or its class is not in the snapshot.
            volumes.any(|v| v.driver.is_empty())
        })
        .map(|c| c.cluster_id.as_str())
        .collect();
    for block in blocks.iter_mut().filter(|b| b.status == BlockStatus::Planned) {
        let of = |set: &BTreeSet<&str>| -> Vec<String> {
            block.source_clusters.iter().filter(|c| set.contains(c.as_str())).cloned().collect()
        };
        let mut notes = Vec::new();
        let missing = of(&unchecked);
        if !missing.is_empty() {
            notes.push(format!(
                "pod-level checks (taints, selectors, affinity, extended resources) not made for {}: their snapshots \
                 have namespace sums but not their pods",
                missing.join(", ")
            ));
        }
        let missing = of(&unresolved);
        if !missing.is_empty() {
            notes.push(format!(
                "volume checks (local volumes, storage drivers) not made for some claims of {}: their snapshots \
                 do not list the claims' PersistentVolumeClaims and PersistentVolumes",
                missing.join(", ")
            ));
        }
        for note in notes {
            block.explanation =
                if block.explanation.is_empty() { note } else { format!("{}\n{note}", block.explanation) };
        }
    }
}

/// Records what the plan was made from (snapshot content hashes, the policy,
/// versions, limits, options) and the digests of its inputs and content.
fn fingerprint(
    plan: &mut Plan,
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    solver: &SolverPolicy,
    options: &PlanOptions,
) {
    let hashes: BTreeMap<&str, String> =
        inventory.iter().map(|c| (c.cluster_id.as_str(), digest::snapshot_content_sha256(c))).collect();
    for cluster in &mut plan.inventory {
        cluster.content_sha256 = hashes.get(cluster.cluster_id.as_str()).cloned().unwrap_or_default();
    }
    // The policy as applied (with a caller's time-limit override), so a re-plan uses the same.
    plan.policy = Some(Policy { solver: *solver, ..policy.clone() });
    let mut words = Vec::new();
    if let Some(filter) = &options.block_filter {
        words.push(format!("block={filter}"));
    }
    if options.greedy_only {
        words.push("greedy-only".to_string());
    }
    plan.fingerprint = PlanFingerprint {
        kplan_version: env!("CARGO_PKG_VERSION").to_string(),
        highs_version: highs::HIGHS_VERSION.to_string(),
        limits: digest::limits_text(solver),
        options: words.join(" "),
        ..PlanFingerprint::default()
    };
    plan.fingerprint.input_digest = digest::input_digest(plan);
    plan.fingerprint.content_digest = digest::content_digest(plan);
}

fn rejected_block(block: &BlockPlan, violations: &[String]) -> BlockPlan {
    let shown: Vec<&str> = violations.iter().take(10).map(String::as_str).collect();
    BlockPlan {
        datacenter: block.datacenter.clone(),
        security_tier: block.security_tier.clone(),
        status: BlockStatus::Infeasible,
        explanation: format!(
            "block {}/{}: the plan made for it did not pass the validator: {}",
            block.datacenter,
            block.security_tier,
            shown.join("; ")
        ),
        source_clusters: block.source_clusters.clone(),
        nodes_before: block.nodes_before,
        nodes_after: block.nodes_before,
        greedy_objective: block.greedy_objective,
        solver_status: "infeasible".to_string(),
        solve_seconds: block.solve_seconds,
        ..BlockPlan::default()
    }
}

fn summarize(blocks: &[BlockPlan], seconds: f64) -> PlanSummary {
    let planned = || blocks.iter().filter(|b| b.status == BlockStatus::Planned);
    let unplanned_sources: BTreeSet<&str> = blocks
        .iter()
        .filter(|b| b.status != BlockStatus::Planned)
        .flat_map(|b| b.source_clusters.iter().map(String::as_str))
        .collect();
    let retired: BTreeSet<&str> = planned()
        .flat_map(|b| b.waves.iter().flat_map(|w| w.clusters_retired.iter().map(String::as_str)))
        .filter(|c| !unplanned_sources.contains(c))
        .collect();
    PlanSummary {
        n_blocks: blocks.len() as u64,
        n_blocks_infeasible: blocks.iter().filter(|b| b.status == BlockStatus::Infeasible).count() as u64,
        nodes_before: blocks.iter().map(|b| b.nodes_before).sum(),
        nodes_after: blocks
            .iter()
            .map(|b| if b.status == BlockStatus::Planned { b.nodes_after } else { b.nodes_before })
            .sum(),
        control_planes_retired: retired.len() as u64,
        firewall_flows: planned().map(|b| b.firewall_flows.len() as u64).sum(),
        waves: planned().map(|b| b.waves.len() as u64).sum(),
        objective: planned().map(|b| b.objective).sum(),
        lower_bound: planned().map(|b| b.lower_bound).sum(),
        solve_seconds: seconds,
    }
}

#[cfg(test)]
mod addon_tests;
#[cfg(test)]
mod class_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod volume_tests;
