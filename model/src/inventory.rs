//! The inventory: what an agent (or `kplan import`) knows about one cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Capacity or demand in the three resources the planner packs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in millicores (`3500m` is 3500, `4` is 4000).
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Pods: allocatable pod slots on a node, or the pod count of a namespace.
    pub pods: u64,
}

impl Resources {
    pub const ZERO: Resources = Resources { cpu_millis: 0, memory_bytes: 0, pods: 0 };

    pub fn new(cpu_millis: u64, memory_bytes: u64, pods: u64) -> Self {
        Resources { cpu_millis, memory_bytes, pods }
    }

    pub fn saturating_add(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            pods: self.pods.saturating_add(other.pods),
        }
    }

    /// `n` times these requests (saturating).
    pub fn scaled(self, n: u64) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_mul(n),
            memory_bytes: self.memory_bytes.saturating_mul(n),
            pods: self.pods.saturating_mul(n),
        }
    }

    pub fn saturating_sub(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            pods: self.pods.saturating_sub(other.pods),
        }
    }

    /// True when every resource of `self` is at most the same resource of `other`.
    pub fn fits_within(self, other: Resources) -> bool {
        self.cpu_millis <= other.cpu_millis && self.memory_bytes <= other.memory_bytes && self.pods <= other.pods
    }
}

impl std::iter::Sum for Resources {
    fn sum<I: Iterator<Item = Resources>>(iter: I) -> Resources {
        iter.fold(Resources::ZERO, Resources::saturating_add)
    }
}

/// SLA tier of a namespace. Ordered from least to most critical, which is the
/// order namespaces move in: bronze first, gold last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaTier {
    #[default]
    Bronze,
    Silver,
    Gold,
}

impl SlaTier {
    pub const ALL: [SlaTier; 3] = [SlaTier::Bronze, SlaTier::Silver, SlaTier::Gold];

    pub fn as_str(self) -> &'static str {
        match self {
            SlaTier::Bronze => "bronze",
            SlaTier::Silver => "silver",
            SlaTier::Gold => "gold",
        }
    }
}

impl fmt::Display for SlaTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sla tier {0:?} (expected gold, silver or bronze)")]
pub struct UnknownSlaTier(pub String);

impl FromStr for SlaTier {
    type Err = UnknownSlaTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bronze" => Ok(SlaTier::Bronze),
            "silver" => Ok(SlaTier::Silver),
            "gold" => Ok(SlaTier::Gold),
            _ => Err(UnknownSlaTier(s.to_string())),
        }
    }
}

/// Whether a node runs the control plane of its source cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    ControlPlane,
    #[default]
    Worker,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node of a source cluster, with the label contract already applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Datacenter after the label contract (node label, then the cluster default).
    pub datacenter: String,
    /// Firewall zone after the label contract (node label, then the cluster default).
    pub zone: String,
    pub role: NodeRole,
    pub allocatable: Resources,
    /// `status.nodeInfo.kubeletVersion`, e.g. `v1.28.3`.
    #[serde(default)]
    pub kubelet_version: String,
    /// `status.nodeInfo.containerRuntimeVersion`, e.g. `containerd://1.7.2` or `docker://20.10.7`.
    #[serde(default)]
    pub container_runtime: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub unschedulable: bool,
    /// `spec.taints`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<crate::scheduling::Taint>,
    /// Allocatable resources besides cpu, memory and pods (`nvidia.com/gpu`,
    /// `hugepages-2Mi`, `ephemeral-storage`, ...), in the resource's own unit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extended: BTreeMap<String, u64>,
    /// `status.runtimeHandlers` (Kubernetes 1.30+): the CRI handlers the node
    /// offers, by name (the default handler's name is empty). Empty when the
    /// node does not report them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_handlers: Vec<RuntimeHandler>,
}

/// A CRI runtime handler a node offers (`status.runtimeHandlers[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHandler {
    /// `runc`, `runsc`, `kata`; empty for the default handler.
    #[serde(default)]
    pub name: String,
    /// The features it supports (`recursiveReadOnlyMounts`, `userNamespaces`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// One namespace of a source cluster, with its demand summed from its pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub security_tier: String,
    pub sla_tier: SlaTier,
    /// Summed effective requests of its non-terminated pods; `pods` is the pod count.
    pub requests: Resources,
    /// Its non-terminated pods, grouped by workload and needs (DaemonSet pods
    /// are left out: they come with the nodes). Empty when not known (older
    /// snapshots, agents that do not report pods yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_groups: Vec<crate::scheduling::PodGroup>,
    /// Its objects whose `kubectl.kubernetes.io/last-applied-configuration`
    /// uses a pre-release API version (`v1beta1`, `v2beta2`, `v1alpha1`: the
    /// only versions Kubernetes removes), sorted. Empty when none or not known
    /// (only `kplan import` of exports with those kinds records them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_prerelease: Vec<AppliedObject>,
    /// Its PodDisruptionBudgets (policy/v1), sorted by name. Empty when none
    /// or not known (older snapshots and exports without them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disruption_budgets: Vec<crate::scheduling::DisruptionBudget>,
}

/// An object as its last `kubectl apply` wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppliedObject {
    /// `group/version`, e.g. `batch/v1beta1`.
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl AppliedObject {
    /// Whether `api_version`'s version is a pre-release (`v1beta1`, `v2alpha1`).
    pub fn is_prerelease(api_version: &str) -> bool {
        let version = api_version.rsplit('/').next().unwrap_or_default();
        version.starts_with('v') && (version.contains("beta") || version.contains("alpha"))
    }
}

/// Facts about a whole cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFacts {
    /// The cluster's configured datacenter (used where a node has no label).
    #[serde(default)]
    pub datacenter: String,
    /// The cluster's configured firewall zone (used where a node has no label).
    #[serde(default)]
    pub zone: String,
    /// The cluster's security tier; its nodes belong to this tier.
    #[serde(default)]
    pub security_tier: String,
    /// The API server version if known, else the newest control-plane kubelet.
    #[serde(default)]
    pub kubernetes_version: String,
    /// Detected CNI plugin (`calico`, `cilium`, `flannel`, `kube-ovn`, `contiv`), or empty.
    #[serde(default)]
    pub cni: String,
    /// CSI drivers seen (DaemonSet names in kube-system ending in `csi-node` and the like).
    #[serde(default)]
    pub csi_drivers: Vec<String>,
}

/// Everything kplan knows about one cluster at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSnapshot {
    pub cluster_id: String,
    /// Only grows for a cluster; a replay of the same generation is idempotent.
    pub generation: u64,
    /// When the snapshot was collected, seconds since the Unix epoch.
    #[serde(default)]
    pub collected_at_unix: i64,
    pub facts: ClusterFacts,
    pub nodes: Vec<Node>,
    pub namespaces: Vec<Namespace>,
    /// RBAC, NetworkPolicies and RuntimeClasses (empty in older snapshots and
    /// exports without those kinds; not written when empty, so the content
    /// hash of a snapshot without them is unchanged).
    #[serde(default, skip_serializing_if = "crate::isolation::IsolationInventory::is_empty")]
    pub isolation: crate::isolation::IsolationInventory,
}

impl ClusterSnapshot {
    pub fn allocatable(&self) -> Resources {
        self.nodes.iter().map(|node| node.allocatable).sum()
    }

    pub fn requested(&self) -> Resources {
        self.namespaces.iter().map(|namespace| namespace.requests).sum()
    }

    pub fn summary(&self, stored_at_unix: i64, n_generations: u64) -> ClusterSummary {
        let mut zones: Vec<String> = self.nodes.iter().map(|n| n.zone.clone()).collect();
        zones.sort();
        zones.dedup();
        let mut datacenters: Vec<String> = self.nodes.iter().map(|n| n.datacenter.clone()).collect();
        datacenters.sort();
        datacenters.dedup();
        ClusterSummary {
            cluster_id: self.cluster_id.clone(),
            generation: self.generation,
            collected_at_unix: self.collected_at_unix,
            stored_at_unix,
            n_generations,
            n_nodes: self.nodes.len() as u64,
            n_namespaces: self.namespaces.len() as u64,
            datacenters,
            zones,
            security_tier: self.facts.security_tier.clone(),
            kubernetes_version: self.facts.kubernetes_version.clone(),
            cni: self.facts.cni.clone(),
            allocatable: self.allocatable(),
            requested: self.requested(),
        }
    }
}

/// One stored generation of a cluster, without its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationInfo {
    pub generation: u64,
    pub collected_at_unix: i64,
    pub stored_at_unix: i64,
}

/// A one-line view of a stored cluster, as `kplan clusters list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSummary {
    pub cluster_id: String,
    pub generation: u64,
    pub collected_at_unix: i64,
    pub stored_at_unix: i64,
    pub n_generations: u64,
    pub n_nodes: u64,
    pub n_namespaces: u64,
    pub datacenters: Vec<String>,
    pub zones: Vec<String>,
    pub security_tier: String,
    pub kubernetes_version: String,
    pub cni: String,
    pub allocatable: Resources,
    pub requested: Resources,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_tiers_order_least_critical_first() {
        let mut tiers = vec![SlaTier::Gold, SlaTier::Bronze, SlaTier::Silver];
        tiers.sort();
        assert_eq!(tiers, vec![SlaTier::Bronze, SlaTier::Silver, SlaTier::Gold]);
        assert_eq!("GOLD".parse::<SlaTier>(), Ok(SlaTier::Gold));
        assert!("platinum".parse::<SlaTier>().is_err());
    }

    #[test]
    fn resources_fit_and_sum() {
        let a = Resources::new(1000, 10, 1);
        let b = Resources::new(500, 20, 2);
        assert_eq!([a, b].into_iter().sum::<Resources>(), Resources::new(1500, 30, 3));
        assert!(!b.fits_within(a));
        assert!(Resources::new(1000, 10, 1).fits_within(a));
    }
}
