//! What the Kubernetes scheduler looks at, as the inventory records it: node
//! taints and extended resources, and per namespace its pods grouped by
//! workload and by what they ask of a node (issue 17). All fields default to
//! empty, so snapshots made before them still load; an empty `pod_groups`
//! means "not known" (the plan says which pod-level checks it could not make).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Node, Resources};

/// A node taint (`spec.taints[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Taint {
    /// Whether the taint keeps pods that do not tolerate it off the node
    /// (`PreferNoSchedule` only discourages). Condition taints are not a
    /// property of the node: see [`Taint::is_condition`].
    pub fn repels(&self) -> bool {
        (self.effect == "NoSchedule" || self.effect == "NoExecute") && !self.is_condition()
    }

    /// A taint the node lifecycle controller sets from the node's current
    /// conditions (`node.kubernetes.io/not-ready`, `unreachable`,
    /// `memory-pressure`, `unschedulable`, ...) or a cloud provider sets until it
    /// initialises the node: it says how the node is now, not what it offers
    /// once it has joined a target, so plans do not count it.
    pub fn is_condition(&self) -> bool {
        self.key.starts_with("node.kubernetes.io/") || self.key == "node.cloudprovider.kubernetes.io/uninitialized"
    }
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect)
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect)
        }
    }
}

/// A pod toleration (`spec.tolerations[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Toleration {
    /// Empty with operator `Exists`: tolerates every taint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// `Equal` (the default) or `Exists`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operator: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Empty: every effect.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub effect: String,
}

impl Toleration {
    /// The scheduler's rule (`v1.Toleration.ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "Exists" => true,
            "" | "Equal" => self.value == taint.value,
            _ => false,
        }
    }
}

/// One requirement of a node selector term (`matchExpressions[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt` or `Lt`.
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl NodeSelectorRequirement {
    /// The scheduler's rule for node labels (`matchFields` are not recorded).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let number = |text: &str| text.parse::<i64>().ok();
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !self.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            "Gt" | "Lt" => {
                let (Some(have), Some(bound)) =
                    (value.and_then(|v| number(v)), self.values.first().and_then(|v| number(v)))
                else {
                    return false;
                };
                if self.operator == "Gt" { have > bound } else { have < bound }
            }
            _ => false,
        }
    }
}

/// A pod's required node affinity: a node must match one term (OR); a term
/// matches when all its requirements do (AND); a term without requirements
/// matches nothing, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeAffinity {
    pub terms: Vec<Vec<NodeSelectorRequirement>>,
}

impl NodeAffinity {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().any(|term| !term.is_empty() && term.iter().all(|r| r.matches(labels)))
    }
}

/// Identical pods of one workload: same requests and the same needs of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodGroup {
    /// `Deployment`, `StatefulSet`, `ReplicaSet`, `Job`, `CronJob`, `Pod` (bare), ...
    pub owner_kind: String,
    /// The owning workload's name (the pod's own name for a bare pod).
    pub owner_name: String,
    /// How many such pods run.
    pub replicas: u64,
    /// The effective requests of one pod (`pods` is 1).
    pub requests: Resources,
    /// Requests of one pod for other resources (`nvidia.com/gpu`, `hugepages-2Mi`,
    /// `ephemeral-storage`, ...), in the resource's own unit (bytes for sizes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extended: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// `requiredDuringSchedulingIgnoredDuringExecution`; `None`: no requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime_class: String,
    /// The PersistentVolumeClaims its pods mount, sorted by claim name (pods of
    /// a StatefulSet mount one claim each, so they are groups of one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<PodVolume>,
    /// The Pod Security Standards rules its pods break (issue 14). Part of the
    /// group's identity: pods of one workload with different violations are
    /// different groups.
    #[serde(default, skip_serializing_if = "crate::isolation::PodSecurityViolations::is_empty")]
    pub pod_security: crate::isolation::PodSecurityViolations,
}

impl PodGroup {
    /// `Deployment/web`.
    pub fn workload(&self) -> String {
        format!("{}/{}", self.owner_kind, self.owner_name)
    }

    /// Every node label key the group's scheduling depends on: `nodeSelector`,
    /// required node affinity and its volumes' node affinity.
    pub fn selected_keys(&self) -> impl Iterator<Item = &str> {
        let affinity = self.node_affinity.iter().chain(self.volumes.iter().filter_map(|v| v.node_affinity.as_ref()));
        self.node_selector
            .keys()
            .map(String::as_str)
            .chain(affinity.flat_map(|a| a.terms.iter().flatten().map(|r| r.key.as_str())))
    }

    /// Whether some volume keeps its data on the node its affinity names
    /// (a local or hostPath volume that pins the pod: [`PodVolume::pins`]).
    pub fn has_node_local_data(&self) -> bool {
        self.volumes.iter().any(PodVolume::pins)
    }

    /// The group as it schedules once the data of the pinning volumes that
    /// `migrated` selects has been copied elsewhere (policy `local_volumes =
    /// "migrate-data"`): those volumes no longer pin it. Borrowed when none is.
    pub fn with_data_migrated(&self, migrated: impl Fn(&PodVolume) -> bool) -> Cow<'_, PodGroup> {
        let released = |v: &PodVolume| v.pins() && migrated(v);
        if !self.volumes.iter().any(released) {
            return Cow::Borrowed(self);
        }
        let mut group = self.clone();
        for volume in group.volumes.iter_mut().filter(|v| released(v)) {
            volume.node_affinity = None;
        }
        Cow::Owned(group)
    }
}

/// What a pod's PersistentVolumeClaim is bound to, as the scheduler's volume
/// filters and a data migration see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodVolume {
    /// The claim's name (in the pod's namespace).
    pub claim: String,
    /// The bound PersistentVolume; empty while the claim is unbound or the
    /// inventory has no PersistentVolumes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub volume: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_class: String,
    /// The volume's CSI driver, `kubernetes.io/local` or `kubernetes.io/host-path`
    /// for node-local volumes, else the storage class's provisioner.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// The volume's capacity (the claim's request while unbound).
    #[serde(default)]
    pub size_bytes: u64,
    /// The PersistentVolume's `spec.nodeAffinity.required`: the scheduler only
    /// places the pod on a matching node. A local volume names its one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
}

/// The driver name kplan records for `spec.local` volumes.
pub const LOCAL_VOLUME_DRIVER: &str = "kubernetes.io/local";
/// The driver name kplan records for `spec.hostPath` volumes.
pub const HOST_PATH_DRIVER: &str = "kubernetes.io/host-path";

impl PodVolume {
    /// Whether the data lives on one node's disks (local or hostPath volumes).
    pub fn is_node_local(&self) -> bool {
        self.driver == LOCAL_VOLUME_DRIVER || self.driver == HOST_PATH_DRIVER
    }

    /// Node-local data whose volume names the nodes that hold it (its node
    /// affinity): the pod may only run there. A hostPath volume without an
    /// affinity pins nothing the scheduler knows of.
    pub fn pins(&self) -> bool {
        self.is_node_local() && self.node_affinity.is_some()
    }
}

/// Why the scheduler would not place one pod of `group` on `node`, or `None`:
/// the node is cordoned, a taint that repels is not tolerated, the
/// `nodeSelector` or the required node affinity does not match, a bound
/// volume's node affinity does not match (`VolumeBinding`), or one pod
/// does not fit the node's allocatable for some resource (extended ones
/// included). The first filter that fails is named, as `kubectl describe pod`
/// names a scheduling failure.
pub fn refusal(node: &Node, group: &PodGroup) -> Option<String> {
    if node.unschedulable {
        return Some("cordoned (unschedulable)".to_string());
    }
    if let Some(taint) =
        node.taints.iter().find(|t| t.repels() && !group.tolerations.iter().any(|tol| tol.tolerates(t)))
    {
        return Some(format!("taint {taint} not tolerated"));
    }
    if let Some((key, value)) = group.node_selector.iter().find(|(k, v)| node.labels.get(*k) != Some(*v)) {
        return Some(format!("nodeSelector {key}={value} not matched"));
    }
    if let Some(affinity) = &group.node_affinity
        && !affinity.matches(&node.labels)
    {
        return Some("required node affinity not matched".to_string());
    }
    if let Some(volume) =
        group.volumes.iter().find(|v| v.node_affinity.as_ref().is_some_and(|a| !a.matches(&node.labels)))
    {
        let local = if volume.is_node_local() { "its data is on another node" } else { "node affinity not matched" };
        return Some(format!("volume {} (claim {}): {local}", volume.volume, volume.claim));
    }
    let a = node.allocatable;
    let r = group.requests;
    let gib = |bytes: u64| format!("{:.2}Gi", bytes as f64 / (1u64 << 30) as f64);
    if r.cpu_millis > a.cpu_millis {
        return Some(format!("too small for one pod (cpu {}m needed, {}m allocatable)", r.cpu_millis, a.cpu_millis));
    }
    if r.memory_bytes > a.memory_bytes {
        return Some(format!(
            "too small for one pod (memory {} needed, {} allocatable)",
            gib(r.memory_bytes),
            gib(a.memory_bytes)
        ));
    }
    if r.pods > a.pods {
        return Some(format!("too small for one pod (pods {} needed, {} allocatable)", r.pods, a.pods));
    }
    for (resource, need) in &group.extended {
        let have = node.extended.get(resource).copied().unwrap_or(0);
        if *need > have {
            return Some(format!("{resource}: {need} needed per pod, {have} allocatable"));
        }
    }
    None
}

/// A PodDisruptionBudget (`policy/v1`) as plans read it: how many of the
/// pods it selects may be down at once while a namespace moves in parts.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DisruptionBudget {
    pub name: String,
    /// `spec.minAvailable` as written (`2` or `50%`); empty when not set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min_available: String,
    /// `spec.maxUnavailable` as written; empty when not set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_unavailable: String,
    /// The workloads (`Deployment/web`, as [`PodGroup::workload`]) whose pods
    /// its selector matched when the inventory was taken, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<String>,
}

/// An `IntOrString` of a PodDisruptionBudget against `expected` pods, rounded
/// up as the disruption controller does (`GetScaledValueFromIntOrPercent(..,
/// true)`); `None` when it is neither a number nor a percentage.
fn scaled(value: &str, expected: u64) -> Option<u64> {
    match value.strip_suffix('%') {
        Some(percent) => {
            let percent: u64 = percent.trim().parse().ok()?;
            Some((percent.saturating_mul(expected)).div_ceil(100))
        }
        None => value.trim().parse().ok(),
    }
}

impl DisruptionBudget {
    /// How many of its `expected` healthy pods may be down at once: the
    /// disruption controller's `disruptionsAllowed` with every pod healthy.
    /// `maxUnavailable` wins when both are set (the API forbids both); a
    /// budget with neither, or an unreadable one, allows none.
    pub fn allowed_disruptions(&self, expected: u64) -> u64 {
        if !self.max_unavailable.is_empty() {
            return scaled(&self.max_unavailable, expected).map_or(0, |n| n.min(expected));
        }
        match scaled(&self.min_available, expected) {
            Some(min) if !self.min_available.is_empty() => expected.saturating_sub(min),
            _ => 0,
        }
    }

    /// `minAvailable 2`, `maxUnavailable 25%`.
    pub fn rule(&self) -> String {
        if !self.max_unavailable.is_empty() {
            format!("maxUnavailable {}", self.max_unavailable)
        } else if !self.min_available.is_empty() {
            format!("minAvailable {}", self.min_available)
        } else {
            "no minAvailable or maxUnavailable".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_follow_the_scheduler() {
        let taint = Taint { key: "gpu".into(), value: "yes".into(), effect: "NoSchedule".into() };
        let exists = Toleration { key: "gpu".into(), operator: "Exists".into(), ..Default::default() };
        let equal_other = Toleration { key: "gpu".into(), value: "no".into(), ..Default::default() };
        let everything = Toleration { operator: "Exists".into(), ..Default::default() };
        let other_effect = Toleration {
            key: "gpu".into(),
            operator: "Exists".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        assert!(exists.tolerates(&taint));
        assert!(!equal_other.tolerates(&taint));
        assert!(everything.tolerates(&taint));
        assert!(!other_effect.tolerates(&taint));
        assert!(!Taint { effect: "PreferNoSchedule".into(), ..taint.clone() }.repels());
        assert!(!Taint { key: "node.kubernetes.io/not-ready".into(), ..taint }.repels());
    }

    #[test]
    fn a_bound_volume_keeps_its_pods_on_the_nodes_its_affinity_names() {
        let host = |name: &str| {
            let mut node = crate::test_support::worker(name);
            node.labels.insert("kubernetes.io/hostname".into(), name.into());
            node
        };
        let volume = PodVolume {
            claim: "data-pg-0".into(),
            volume: "pv-1".into(),
            driver: LOCAL_VOLUME_DRIVER.into(),
            node_affinity: Some(NodeAffinity {
                terms: vec![vec![NodeSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: "In".into(),
                    values: vec!["db-1".into()],
                }]],
            }),
            ..Default::default()
        };
        let group = PodGroup {
            requests: Resources::new(1000, 1 << 30, 1),
            volumes: vec![volume],
            replicas: 1,
            ..Default::default()
        };
        assert_eq!(refusal(&host("db-1"), &group), None);
        let refused = refusal(&host("db-2"), &group).expect("refused");
        assert!(refused.contains("data-pg-0") && refused.contains("another node"), "{refused}");
        // Once its data is migrated, the volume no longer pins the pod.
        assert!(group.has_node_local_data());
        assert_eq!(refusal(&host("db-2"), &group.with_data_migrated(|_| true)), None);
        assert_eq!(
            refusal(&host("db-2"), &group.with_data_migrated(|v| v.claim == "other")),
            refusal(&host("db-2"), &group)
        );
    }

    #[test]
    fn node_affinity_operators_follow_the_scheduler() {
        let labels: BTreeMap<String, String> =
            [("disk".to_string(), "ssd".to_string()), ("gen".to_string(), "5".to_string())].into_iter().collect();
        let req = |key: &str, operator: &str, values: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        assert!(req("disk", "In", &["ssd", "nvme"]).matches(&labels));
        assert!(!req("disk", "NotIn", &["ssd"]).matches(&labels));
        assert!(req("zone", "NotIn", &["a"]).matches(&labels), "NotIn matches a missing label");
        assert!(req("gen", "Gt", &["4"]).matches(&labels) && !req("gen", "Lt", &["5"]).matches(&labels));
        assert!(req("zone", "DoesNotExist", &[]).matches(&labels));
        // Terms are ORed, requirements ANDed, an empty term matches nothing.
        let affinity =
            NodeAffinity { terms: vec![vec![], vec![req("disk", "In", &["ssd"]), req("gen", "Gt", &["4"])]] };
        assert!(affinity.matches(&labels));
        assert!(!NodeAffinity { terms: vec![vec![]] }.matches(&labels));
    }

    #[test]
    fn disruption_budgets_allow_what_the_disruption_controller_allows() {
        let budget = |min: &str, max: &str| DisruptionBudget {
            name: "b".into(),
            min_available: min.into(),
            max_unavailable: max.into(),
            workloads: Vec::new(),
        };
        assert_eq!(budget("2", "").allowed_disruptions(3), 1);
        assert_eq!(budget("3", "").allowed_disruptions(3), 0);
        assert_eq!(budget("5", "").allowed_disruptions(3), 0);
        // percentages round up: minAvailable 50% of 3 is 2, maxUnavailable 25% of 10 is 3
        assert_eq!(budget("50%", "").allowed_disruptions(3), 1);
        assert_eq!(budget("", "25%").allowed_disruptions(10), 3);
        assert_eq!(budget("", "1").allowed_disruptions(10), 1);
        assert_eq!(budget("", "20").allowed_disruptions(10), 10);
        assert_eq!(budget("", "").allowed_disruptions(4), 0);
        assert_eq!(budget("many", "").allowed_disruptions(4), 0);
        assert_eq!(budget("", "25%").rule(), "maxUnavailable 25%");
    }
}
