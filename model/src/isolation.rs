//! What keeps tenants apart inside one cluster: RBAC, NetworkPolicies and
//! RuntimeClasses, as collected from a source cluster (issue 14). Pod Security
//! admission levels are namespace labels (`Namespace::labels`,
//! `pod-security.kubernetes.io/enforce`) and need no type of their own.
//!
//! Plain data. Every struct takes `#[serde(default)]` so that snapshots
//! stored before these fields existed, and older JSON, still load. Secrets are
//! never part of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A cluster's RBAC, NetworkPolicies and RuntimeClasses. Lists are sorted by
/// (namespace, name) by the collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationInventory {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_roles: Vec<Role>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_role_bindings: Vec<RoleBinding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub role_bindings: Vec<RoleBinding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_policies: Vec<NetworkPolicy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime_classes: Vec<RuntimeClass>,
    /// ValidatingAdmissionPolicies, their bindings and Gatekeeper constraints:
    /// the cluster's own admission rules, which do not follow its namespaces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admission_policies: Vec<AdmissionPolicy>,
}

impl IsolationInventory {
    /// Nothing collected (an older snapshot, or an export without these kinds).
    pub fn is_empty(&self) -> bool {
        self.n_objects() == 0
    }

    /// How many objects it holds, every kind together.
    pub fn n_objects(&self) -> usize {
        self.cluster_roles.len()
            + self.cluster_role_bindings.len()
            + self.roles.len()
            + self.role_bindings.len()
            + self.network_policies.len()
            + self.runtime_classes.len()
            + self.admission_policies.len()
    }

    /// Appends every object of `other`.
    pub fn extend(&mut self, other: IsolationInventory) {
        self.cluster_roles.extend(other.cluster_roles);
        self.cluster_role_bindings.extend(other.cluster_role_bindings);
        self.roles.extend(other.roles);
        self.role_bindings.extend(other.role_bindings);
        self.network_policies.extend(other.network_policies);
        self.runtime_classes.extend(other.runtime_classes);
        self.admission_policies.extend(other.admission_policies);
    }

    /// The ClusterRole of this name.
    pub fn cluster_role(&self, name: &str) -> Option<&Role> {
        self.cluster_roles.iter().find(|role| role.name == name)
    }
}

/// A ClusterRole (`namespace` empty) or a Role. An aggregated ClusterRole is
/// kept with the rules the API server aggregated into it (as listed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Role {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    pub rules: Vec<PolicyRule>,
}

/// One rule of a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyRule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

/// A ClusterRoleBinding (`namespace` empty) or a RoleBinding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleBinding {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    pub role_ref: RoleRef,
    pub subjects: Vec<Subject>,
}

/// `ClusterRole` or `Role`, and its name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleRef {
    pub kind: String,
    pub name: String,
}

/// `User`, `Group` or `ServiceAccount` (with its namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Subject {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl Subject {
    /// The name Kubernetes authorizes: `system:serviceaccount:NS:NAME` for a
    /// service account, else the name.
    pub fn username(&self) -> String {
        if self.kind == "ServiceAccount" {
            format!("system:serviceaccount:{}:{}", self.namespace, self.name)
        } else {
            self.name.clone()
        }
    }
}

/// A NetworkPolicy. `policy_types` is always filled (the collector applies
/// Kubernetes' default: `Ingress`, plus `Egress` when egress rules exist).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    pub pod_selector: LabelSelector,
    pub policy_types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<NetworkPolicyRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<NetworkPolicyRule>,
}

impl NetworkPolicy {
    pub fn restricts_ingress(&self) -> bool {
        self.policy_types.iter().any(|t| t == "Ingress")
    }

    pub fn restricts_egress(&self) -> bool {
        self.policy_types.iter().any(|t| t == "Egress")
    }
}

/// One ingress (`from`) or egress (`to`) rule: no peer means every peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPolicyRule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<NetworkPolicyPeer>,
    /// `TCP/443`, `UDP/53`, `TCP/8000-8080`, `TCP/http`; empty: every port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPolicyPeer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// A label selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether the labels satisfy the selector (Kubernetes semantics: `In`,
    /// `NotIn`, `Exists`, `DoesNotExist`; an unknown operator matches nothing).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(key, value)| labels.get(key) == Some(value))
            && self.match_expressions.iter().all(|requirement| {
                let value = labels.get(&requirement.key);
                match requirement.operator.as_str() {
                    "In" => value.is_some_and(|v| requirement.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !requirement.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpBlock {
    pub cidr: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

/// A RuntimeClass: the name pods ask for (`runtimeClassName`) and the CRI
/// handler nodes must offer (`runsc` for gVisor, `kata` for Kata Containers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeClass {
    pub name: String,
    pub handler: String,
}

/// An admission policy object of a cluster: a `ValidatingAdmissionPolicy`,
/// a `ValidatingAdmissionPolicyBinding` (`admissionregistration.k8s.io/v1`)
/// or a Gatekeeper constraint (group `constraints.gatekeeper.sh`, its kind
/// defined by a ConstraintTemplate). All cluster-scoped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionPolicy {
    /// `admissionregistration.k8s.io` or `constraints.gatekeeper.sh`.
    pub group: String,
    /// `ValidatingAdmissionPolicy`, `ValidatingAdmissionPolicyBinding`, or the
    /// constraint's kind (`K8sRequiredLabels`).
    pub kind: String,
    pub name: String,
    /// A binding's `spec.policyName`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy: String,
    /// The namespaces it is limited to (a constraint's `spec.match.namespaces`);
    /// empty: not limited by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The namespaces it is limited to by label (`matchResources.namespaceSelector`,
    /// a constraint's `spec.match.namespaceSelector`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// What a refusal does: a binding's `validationActions` (`Deny`, `Warn`,
    /// `Audit`), a constraint's `enforcementAction` (`deny`, `dryrun`, `warn`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

impl AdmissionPolicy {
    /// `ValidatingAdmissionPolicy require-labels`, `K8sRequiredLabels must-have-team`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// The Pod Security admission label that a namespace's level is read from.
pub const POD_SECURITY_ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// A Pod Security Standard level, least to most strict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// Kubernetes' default when a namespace has no label and the cluster no
    /// admission configuration that says otherwise.
    #[default]
    Privileged,
    Baseline,
    Restricted,
}

impl PodSecurityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Privileged => "privileged",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }

    /// The level a label value names; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "privileged" => Some(PodSecurityLevel::Privileged),
            "baseline" => Some(PodSecurityLevel::Baseline),
            "restricted" => Some(PodSecurityLevel::Restricted),
            _ => None,
        }
    }

    /// The level a namespace enforces, from its labels (privileged without one).
    pub fn of_labels(labels: &BTreeMap<String, String>) -> Self {
        labels.get(POD_SECURITY_ENFORCE_LABEL).and_then(|value| Self::parse(value)).unwrap_or_default()
    }
}

/// The Pod Security Standards rules a pod breaks, by the check ids of
/// Kubernetes' `pod-security-admission` (`hostNamespaces`, `privileged`,
/// `capabilities_baseline`, `runAsNonRoot`, `seccompProfile_restricted`, ...).
/// Sorted; each level's list holds only the rules that level adds (the
/// restricted level enforces both lists).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PodSecurityViolations {
    /// Rules of the baseline level.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<String>,
    /// Rules the restricted level adds to baseline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restricted: Vec<String>,
}

impl PodSecurityViolations {
    pub fn is_empty(&self) -> bool {
        self.baseline.is_empty() && self.restricted.is_empty()
    }

    /// The rules a namespace enforcing `level` refuses the pod for (none at `privileged`).
    pub fn at(&self, level: PodSecurityLevel) -> Vec<&str> {
        let restricted = if level == PodSecurityLevel::Restricted { self.restricted.as_slice() } else { &[] };
        let baseline = if level == PodSecurityLevel::Privileged { &[] } else { self.baseline.as_slice() };
        baseline.iter().chain(restricted).map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels = BTreeMap::from([("team".to_string(), "pay".to_string())]);
        assert!(LabelSelector::default().matches(&labels));
        let selector = LabelSelector {
            match_labels: BTreeMap::from([("team".into(), "pay".into())]),
            match_expressions: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "DoesNotExist".into(),
                values: vec![],
            }],
        };
        assert!(selector.matches(&labels));
        let not_in = LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "NotIn".into(),
                values: vec!["pay".into()],
            }],
            ..Default::default()
        };
        assert!(!not_in.matches(&labels));
    }

    #[test]
    fn old_json_without_isolation_loads_and_empty_isolation_is_not_written() {
        let inventory: IsolationInventory = serde_json::from_str("{}").unwrap();
        assert!(inventory.is_empty());
        assert_eq!(serde_json::to_string(&inventory).unwrap(), "{}");
        assert_eq!(PodSecurityLevel::of_labels(&BTreeMap::new()), PodSecurityLevel::Privileged);
    }

    #[test]
    fn the_restricted_level_enforces_the_baseline_rules_too() {
        let violations =
            PodSecurityViolations { baseline: vec!["hostNamespaces".into()], restricted: vec!["runAsNonRoot".into()] };
        assert!(violations.at(PodSecurityLevel::Privileged).is_empty());
        assert_eq!(violations.at(PodSecurityLevel::Baseline), ["hostNamespaces"]);
        assert_eq!(violations.at(PodSecurityLevel::Restricted), ["hostNamespaces", "runAsNonRoot"]);
    }
}
