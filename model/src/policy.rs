//! The planning policy: what an architect may change between two runs of
//! `kplan propose`. Loaded from TOML or YAML (see `examples/bank/policy.toml`
//! for an annotated example); every field has a documented default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inventory::SlaTier;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Firewall zone → the security tiers it may host. A zone that is not
    /// listed may host only the tier of the clusters already in it, unless
    /// `unlisted_zones_host_any_tier` is true.
    pub zones: BTreeMap<String, ZonePolicy>,
    /// Default false: an unlisted zone keeps hosting only what it hosts today.
    pub unlisted_zones_host_any_tier: bool,
    /// Flows already open between zones; these are not counted as new.
    pub open_flows: Vec<OpenFlow>,
    /// Fraction of every resource kept free in every cluster at every wave.
    pub headroom: Headroom,
    /// Capacity must hold the demand with headroom even after losing the largest zone.
    pub survive_zone_loss: bool,
    /// At most this much changes in one wave.
    pub wave_budget: WaveBudget,
    /// The order in which SLA tiers move: least critical first.
    pub sla_order: Vec<SlaTier>,
    /// A block with at most this many nodes is a small site: one lightweight
    /// single-binary control plane (K3s) instead of three dedicated nodes.
    pub small_site_max_nodes: u64,
    /// Target Kubernetes version (`v1.30`); empty means the majority in the block.
    pub target_kubernetes_version: String,
    /// Target CNI (`calico`, `cilium`, ...); empty means the majority in the block.
    pub target_cni: String,
    /// Maximum nodes per target cluster (Kubernetes' tested limit is 5,000);
    /// a larger block gets several target clusters.
    pub max_nodes_per_cluster: u64,
    /// Open the NodePort range between all zones of a target.
    pub nodeport_flows: bool,
    pub nodeport_range: String,
    /// Calico's overlay: `ipip` (IP protocol 4) or `vxlan` (4789/udp).
    pub calico_encapsulation: String,
    /// Namespaces that exist in every cluster and merge instead of colliding.
    /// A trailing `*` matches a prefix (`kube-*`).
    pub platform_namespaces: Vec<String>,
    /// Platform add-ons: namespaces that are installed once per target instead
    /// of moving (ingress controllers, monitoring and logging stacks,
    /// cert-manager, service meshes, CNI and CSI operators, policy engines,
    /// backup tools). Same patterns as `platform_namespaces`. The default is
    /// [`DEFAULT_ADDON_NAMESPACES`]; kplan also detects add-ons the list does not
    /// name (`planner/src/namespaces.rs`, `find_addons`). Unlike a platform
    /// namespace, an add-on has something to install and its demand counts.
    pub addon_namespaces: Vec<String>,
    /// Whether kplan detects add-ons that `addon_namespaces` does not name (a
    /// namespace found with the same workloads in most clusters of a block).
    /// Default true; every detected add-on is reported in the plan.
    pub detect_addons: bool,
    /// StorageClasses the targets will not have, each with the class that
    /// replaces it: a namespace whose claims use one is restored with Velero's
    /// `change-storage-class` ConfigMap (`{ "vsphere-thin" = "ceph-rbd" }`).
    /// kplan cannot see a target's classes (it is a new cluster): the architect
    /// says which change. Default: none.
    pub storage_class_changes: BTreeMap<String, String>,
    /// Whether control-plane nodes are dedicated (their capacity does not count
    /// for workloads). Default true.
    pub dedicated_control_plane: bool,
    /// What happens to a pod whose volume keeps its data on one node (local
    /// and hostPath PersistentVolumes): `keep-node` (the default) keeps that
    /// node in the pod's target; `migrate-data` lets the node go and lists a
    /// data migration before the namespace's wave.
    pub local_volumes: LocalVolumes,
    /// How a namespace moves in parts (docs/plan-semantics.md, "Parts").
    pub parts: PartsPolicy,
    pub solver: SolverPolicy,
}

/// See [`Policy::parts`]. A namespace moves in parts, a number of replicas of
/// its workloads at a time, when a PodDisruptionBudget forbids taking its pods
/// down at once, and (only where its block cannot be staged otherwise) when it
/// is large: more than `large_share` of its source cluster's workload
/// allocatable (cpu or memory); as few large namespaces as let the block be
/// staged, the largest first. No part is larger than that share, unless one
/// pod is; a namespace has at most `max_parts` parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartsPolicy {
    /// Default true; false moves every namespace whole (PodDisruptionBudgets
    /// are then reported as preconditions).
    pub enabled: bool,
    /// Default 0.1.
    pub large_share: f64,
    /// Default 6: a PodDisruptionBudget that would need more parts is
    /// exceeded, and the plan lists it as a `disruption-budget` precondition.
    pub max_parts: u32,
}

impl Default for PartsPolicy {
    fn default() -> Self {
        PartsPolicy { enabled: true, large_share: 0.1, max_parts: 6 }
    }
}

/// The default of [`Policy::addon_namespaces`]: the namespaces the upstream
/// install instructions of well-known add-ons create.
pub const DEFAULT_ADDON_NAMESPACES: &[&str] = &[
    // ingress controllers
    "ingress-nginx",
    "nginx-ingress",
    "traefik",
    "haproxy-controller",
    "projectcontour",
    // monitoring and logging stacks
    "monitoring",
    "prometheus",
    "grafana",
    "logging",
    "loki",
    "elastic-system",
    "opentelemetry-operator-system",
    // certificates, DNS and secrets
    "cert-manager",
    "external-dns",
    "external-secrets",
    // service meshes
    "istio-system",
    "istio-ingress",
    "linkerd",
    "linkerd-viz",
    // CNI and CSI operators, load balancers
    "calico-system",
    "calico-apiserver",
    "tigera-operator",
    "cilium",
    "metallb-system",
    "longhorn-system",
    "rook-ceph",
    "trident",
    "openebs",
    // policy engines
    "gatekeeper-system",
    "kyverno",
    // backup tools
    "velero",
];

/// See [`Policy::local_volumes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalVolumes {
    #[default]
    KeepNode,
    MigrateData,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            zones: BTreeMap::new(),
            unlisted_zones_host_any_tier: false,
            open_flows: Vec::new(),
            headroom: Headroom::default(),
            survive_zone_loss: false,
            wave_budget: WaveBudget::default(),
            sla_order: vec![SlaTier::Bronze, SlaTier::Silver, SlaTier::Gold],
            small_site_max_nodes: 6,
            target_kubernetes_version: String::new(),
            target_cni: String::new(),
            max_nodes_per_cluster: 5000,
            nodeport_flows: false,
            nodeport_range: "30000-32767".to_string(),
            calico_encapsulation: "ipip".to_string(),
            platform_namespaces: vec!["default".to_string(), "kube-*".to_string()],
            addon_namespaces: DEFAULT_ADDON_NAMESPACES.iter().map(|name| name.to_string()).collect(),
            detect_addons: true,
            storage_class_changes: BTreeMap::new(),
            dedicated_control_plane: true,
            local_volumes: LocalVolumes::KeepNode,
            parts: PartsPolicy::default(),
            solver: SolverPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZonePolicy {
    /// Security tiers this zone may host (`prod`, `dev`, ...).
    pub tiers: Vec<String>,
}

/// A flow already open. An empty protocol or ports means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenFlow {
    pub from_zone: String,
    pub to_zone: String,
    /// `tcp`, `udp`, `ipip`, or empty for any.
    pub protocol: String,
    /// A port, a range `2379-2380`, or empty for any.
    pub ports: String,
    /// Also open in the other direction.
    pub bidirectional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Headroom {
    pub cpu: f64,
    pub memory: f64,
    pub pods: f64,
}

impl Default for Headroom {
    fn default() -> Self {
        Headroom { cpu: 0.2, memory: 0.2, pods: 0.2 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaveBudget {
    /// Nodes drained and joined (or freed) per wave.
    pub nodes: u64,
    /// Namespaces moved per wave.
    pub namespaces: u64,
}

impl Default for WaveBudget {
    fn default() -> Self {
        WaveBudget { nodes: 50, namespaces: 100 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SolverPolicy {
    /// Wall-clock safety net of the composition solve per block, in seconds.
    /// A plan stopped by it says so (`wall-clock-limit`): it depends on how busy
    /// the machine was. The work limits below are what normally stop a solve.
    pub time_limit_seconds: f64,
    /// Relative MIP gap at which the solve stops.
    pub mip_gap: f64,
    /// HiGHS threads per block solve (blocks also run in parallel; the number of
    /// blocks solved at once never changes a plan).
    pub threads: u32,
    /// HiGHS `random_seed`: fixed here, so the same inputs give the same plan.
    pub random_seed: u32,
    /// Branch-and-bound nodes of the composition solve (HiGHS `mip_max_nodes`):
    /// a deterministic work limit, unlike a time limit.
    pub composition_max_nodes: u64,
    /// Branch-and-bound nodes of each staging rescue attempt, when the greedy
    /// staging stalls on the model's composition. 0 skips the rescue.
    pub staging_max_nodes: u64,
    /// Branch-and-bound nodes of the waves model that shortens a valid schedule.
    /// 0 skips it.
    pub waves_max_nodes: u64,
    /// The largest staging rescue model tried, in variables (its root alone
    /// grows with its size; branch-and-bound nodes do not bound it).
    pub staging_max_variables: u64,
    /// The largest waves model tried, in variables; a larger block keeps its
    /// greedy schedule.
    pub waves_max_variables: u64,
    /// Wall-clock safety net of each staging rescue attempt, in seconds.
    pub staging_seconds: f64,
    /// Wall-clock safety net of the waves model, in seconds.
    pub waves_seconds: f64,
}

/// Default work limits (see `bench/PROFILE.md` for how they were chosen).
pub const DEFAULT_COMPOSITION_MAX_NODES: u64 = 5_000;
pub const DEFAULT_STAGING_MAX_NODES: u64 = 50;
pub const DEFAULT_WAVES_MAX_NODES: u64 = 50;

impl Default for SolverPolicy {
    fn default() -> Self {
        SolverPolicy {
            time_limit_seconds: 60.0,
            mip_gap: 0.005,
            threads: 1,
            random_seed: 0,
            composition_max_nodes: DEFAULT_COMPOSITION_MAX_NODES,
            staging_max_nodes: DEFAULT_STAGING_MAX_NODES,
            waves_max_nodes: DEFAULT_WAVES_MAX_NODES,
            staging_max_variables: 2_300,
            waves_max_variables: 1_500,
            staging_seconds: 20.0,
            waves_seconds: 10.0,
        }
    }
}
