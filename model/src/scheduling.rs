//! What the Kubernetes scheduler looks at, as the inventory records it: node
//! taints and extended resources, and per namespace its pods grouped by
//! workload and by what they ask of a node (issue 17). All fields default to
//! empty, so snapshots made before them still load; an empty `pod_groups`
//! means "not known" (the plan says which pod-level checks it could not make).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Resources;

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
}

impl PodGroup {
    /// `Deployment/web`.
    pub fn workload(&self) -> String {
        format!("{}/{}", self.owner_kind, self.owner_name)
    }
}
