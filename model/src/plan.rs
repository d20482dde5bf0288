//! A consolidation plan: what `kplan propose` prints and the planner service stores.
//!
//! The JSON form of these types is a user-facing contract (`kplan propose -o json`);
//! rename fields only with a changelog entry.

use serde::{Deserialize, Serialize};

use crate::inventory::{Resources, SlaTier};

/// A whole plan over every (datacenter, security tier) block of an inventory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Assigned when the plan is stored (`plan-<time>-<digest>`); empty before.
    #[serde(default)]
    pub id: String,
    /// Seconds since the Unix epoch when the plan was made.
    #[serde(default)]
    pub created_at_unix: i64,
    /// The cluster generations the plan was made from.
    #[serde(default)]
    pub inventory: Vec<InventoryRef>,
    /// A digest of the policy the plan was made with (hex).
    #[serde(default)]
    pub policy_digest: String,
    pub blocks: Vec<BlockPlan>,
    pub summary: PlanSummary,
    /// What the plan was made from and a digest of what it says (empty in plans
    /// made before fingerprints).
    #[serde(default)]
    pub fingerprint: PlanFingerprint,
    /// The policy the plan was made with, every key resolved, so that
    /// `kplan propose --check` can re-plan with it (absent in older plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::Policy>,
}

/// A plan's fingerprint: two plans with the same `content_digest` say the same
/// thing; two runs with the same `input_digest` must give the same content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFingerprint {
    /// SHA-256 (hex) over every input: each snapshot's cluster, generation and
    /// content hash, the policy, the versions, the limits and the options.
    pub input_digest: String,
    /// SHA-256 (hex) over the plan without its id, creation time, timings and
    /// fingerprint.
    pub content_digest: String,
    pub kplan_version: String,
    pub highs_version: String,
    /// The solver's limits, e.g. `threads=1 random_seed=0 composition_max_nodes=5000 ...`.
    pub limits: String,
    /// The options of the run that shape the plan (`block=fra/prod`, `greedy-only`), or empty.
    #[serde(default)]
    pub options: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRef {
    pub cluster_id: String,
    pub generation: u64,
    /// SHA-256 (hex) of the snapshot's content (nodes and namespaces sorted by
    /// name; generation and collection time left out). Empty in older plans.
    #[serde(default)]
    pub content_sha256: String,
}

/// Totals over every block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub n_blocks: u64,
    pub n_blocks_infeasible: u64,
    pub nodes_before: u64,
    pub nodes_after: u64,
    pub control_planes_retired: u64,
    pub firewall_flows: u64,
    pub waves: u64,
    pub objective: f64,
    pub lower_bound: f64,
    pub solve_seconds: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockStatus {
    #[default]
    Planned,
    Infeasible,
}

/// The plan for one (datacenter, security tier) block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockPlan {
    pub datacenter: String,
    pub security_tier: String,
    pub status: BlockStatus,
    /// Why the block is infeasible, in a user's words; notes for a planned block
    /// (e.g. fewer than three firewall zones). Empty when there is nothing to say.
    pub explanation: String,
    pub source_clusters: Vec<String>,
    pub target_clusters: Vec<TargetCluster>,
    pub nodes_freed: Vec<NodeRef>,
    pub firewall_flows: Vec<FirewallFlow>,
    pub waves: Vec<Wave>,
    pub namespace_renames: Vec<NamespaceRename>,
    pub preconditions: Vec<Precondition>,
    pub nodes_before: u64,
    pub nodes_after: u64,
    /// The objective value of the chosen plan (lower is better).
    pub objective: f64,
    /// The best lower bound proved for the objective (LP relaxation or MIP dual bound).
    pub lower_bound: f64,
    /// `(objective - lower_bound) / objective`, 0 when proved optimal.
    pub gap: f64,
    /// The objective of the greedy first-fit-decreasing plan the solve started from.
    pub greedy_objective: f64,
    /// `optimal`, `gap-limit`, `work-limit` (the deterministic node limit),
    /// `greedy-fallback`, `wall-clock-limit` (a safety net stopped a stage: the
    /// plan depends on the machine) or `infeasible`; `time-limit` in plans made
    /// before work limits.
    pub solver_status: String,
    pub solve_seconds: f64,
    /// The planning stages (`composition`, `staging rescue`, `waves`) that a
    /// wall-clock safety net stopped; empty in a reproducible plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wall_clock_stops: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeRef {
    pub cluster_id: String,
    pub node: String,
    #[serde(default)]
    pub zone: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneNode {
    pub cluster_id: String,
    pub node: String,
    pub zone: String,
}

/// One cluster of the consolidated estate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCluster {
    pub name: String,
    pub nodes_kept: Vec<NodeRef>,
    /// Three nodes in three zones, or one for a small site, or fewer where the
    /// block has fewer zones (then `control_plane_note` says so).
    pub control_plane: Vec<ControlPlaneNode>,
    pub control_plane_note: String,
    /// A small site gets a lightweight single-binary distribution (K3s).
    pub small_site: bool,
    pub distribution: String,
    pub kubernetes_version: String,
    pub cni: String,
    pub zones: Vec<String>,
    pub allocatable: Resources,
    pub requested: Resources,
    /// Platform add-ons installed once on this target instead of moving, by
    /// namespace (absent in plans made before add-ons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<AddonInstall>,
}

/// Why a namespace is an add-on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddonOrigin {
    /// `policy.addon_namespaces` names it.
    #[default]
    Policy,
    /// kplan found it in most source clusters of the block with the same workloads.
    Detected,
}

impl AddonOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            AddonOrigin::Policy => "policy",
            AddonOrigin::Detected => "detected",
        }
    }
}

/// A platform add-on installed once on a target: its instances in the source
/// clusters are not moved or renamed; the target reserves the demand of the
/// largest of them from the wave it is installed in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonInstall {
    pub namespace: String,
    pub origin: AddonOrigin,
    /// The wave it is installed in: no later than the first namespace moving into
    /// the target.
    pub wave: u64,
    /// The source cluster of the largest instance, whose requests are reserved.
    pub sized_from: String,
    /// The requests reserved on the target (the largest instance's).
    pub requests: Resources,
    /// Every instance in the block's source clusters, by cluster id.
    pub instances: Vec<AddonInstance>,
}

impl AddonInstall {
    /// The distinct versions seen, sorted (`unknown` included when some instance has none).
    pub fn versions(&self) -> Vec<&str> {
        let versions: std::collections::BTreeSet<&str> = self.instances.iter().map(|i| i.version.as_str()).collect();
        versions.into_iter().collect()
    }
}

/// One source cluster's instance of an add-on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonInstance {
    pub cluster_id: String,
    /// The namespace's `app.kubernetes.io/version` label, else `unknown` (the
    /// inventory records no container images).
    pub version: String,
    pub requests: Resources,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    /// IP protocol 4 (Calico IP-in-IP).
    Ipip,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Ipip => "ipip",
        }
    }
}

/// A firewall flow that must be opened between two zones.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FirewallFlow {
    pub target_cluster: String,
    pub from_zone: String,
    pub to_zone: String,
    pub protocol: Protocol,
    /// A port (`6443`) or an inclusive range (`2379-2380`); empty for IP-in-IP.
    pub ports: String,
    /// Why: `api server`, `kubelet`, `etcd`, `calico bgp`, ...
    pub purpose: String,
}

/// What happens to a node in a wave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeAction {
    /// Drained from its source cluster and joined to the target.
    #[default]
    DrainAndJoin,
    /// Drained and handed back (no longer needed).
    Free,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMove {
    pub cluster_id: String,
    pub node: String,
    pub zone: String,
    pub action: NodeAction,
    pub to_cluster: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceMove {
    pub from_cluster: String,
    pub namespace: String,
    pub to_cluster: String,
    /// The name in the target (differs from `namespace` when renamed for a collision).
    pub new_name: String,
    pub sla_tier: SlaTier,
    pub requests: Resources,
    /// The part that moves, when the namespace moves in parts (absent: the
    /// whole namespace). `requests` are then the part's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<MovePart>,
}

/// A part of a namespace that moves in parts (docs/plan-semantics.md, "Parts"):
/// these replicas of its workloads. Part `of` is the cut-over: the namespace's
/// last pods leave its source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovePart {
    /// 1-based.
    pub index: u32,
    pub of: u32,
    /// By workload (`Deployment/web`); only those with replicas in the part.
    pub workloads: Vec<PartWorkload>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartWorkload {
    pub workload: String,
    pub replicas: u64,
}

/// Allocatable and requested capacity of one cluster at one point of a wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCapacity {
    pub cluster: String,
    pub allocatable: Resources,
    pub requested: Resources,
}

/// One wave of the migration. A moving unit counts on both sides during its wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// 1-based.
    pub index: u64,
    pub nodes: Vec<NodeMove>,
    pub namespaces: Vec<NamespaceMove>,
    /// Source clusters whose control plane is retired at the end of the wave.
    pub clusters_retired: Vec<String>,
    pub capacity_before: Vec<ClusterCapacity>,
    pub capacity_after: Vec<ClusterCapacity>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRename {
    pub from_cluster: String,
    pub namespace: String,
    pub new_name: String,
    pub target_cluster: String,
    /// The other source clusters with a namespace of the same name.
    pub collides_with: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreconditionKind {
    #[default]
    KubeletUpgrade,
    RuntimeMigration,
    CniMigration,
    CsiDriver,
    /// The cluster's namespaces move to a newer Kubernetes that no longer serves
    /// APIs they may use (`planner/src/removed_apis.rs`).
    RemovedApis,
    /// A node-local volume's data is copied to the target before its pods or
    /// its node move (policy `local_volumes = "migrate-data"`).
    DataMigration,
    /// An add-on runs different versions in the sources: one is chosen for the
    /// target before it is installed (`cluster_id` is the target).
    AddonVersions,
    /// A PodDisruptionBudget allows fewer disruptions than the smallest part
    /// the plan moves (`claims`: `namespace/budget`): relax it for its waves.
    DisruptionBudget,
}

/// Something that must change in a source cluster before its first wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    pub cluster_id: String,
    pub kind: PreconditionKind,
    pub detail: String,
    /// Nodes affected (empty when it concerns the whole cluster).
    pub nodes: Vec<String>,
    /// The first wave that touches the cluster (it must be done before).
    pub before_wave: u64,
    /// The claims it concerns, as `namespace/claim` (data migrations), or the
    /// PodDisruptionBudgets, as `namespace/budget` (disruption budgets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
}

/// One stored plan, without its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInfo {
    pub id: String,
    pub created_at_unix: i64,
    pub summary: PlanSummary,
}
