//! The Kubernetes objects that close the widenings of [`super::analyse`], per
//! target cluster (k8s-openapi types; the CLI writes them as YAML):
//!
//! - per moved namespace, a label patch (`Namespace` with only labels):
//!   `kplan.io/source-cluster` and its Pod Security level, written explicitly;
//! - per ClusterRoleBinding that widens, one RoleBinding per namespace of its
//!   source cluster in the target (their new names), to the same ClusterRole,
//!   with service accounts' namespaces renamed as the plan renames them; and
//!   the ClusterRoles they reference that Kubernetes does not define itself;
//! - in a target fed by two or more source clusters, per moved namespace a
//!   default-deny ingress NetworkPolicy and one that admits the namespaces of
//!   its own source cluster (by the `kplan.io/source-cluster` label);
//! - the RuntimeClasses the moved pods ask for, as their source defines them;
//! - where RBAC widens, an OPA Gatekeeper ConstraintTemplate and its
//!   Constraint that keep the tenant subjects of the findings out of the
//!   platform's and the other tenants' namespaces ([`super::gatekeeper`]).
//!
//! Not emitted: ValidatingAdmissionPolicy objects, egress policies, and
//! allowances for shared platform services (an ingress controller or a
//! Prometheus of another source must be admitted by hand).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1 as k8s_net;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1 as k8s_rbac;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kplan_model::isolation::{self, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyRule, POD_SECURITY_ENFORCE_LABEL};
use kplan_model::{ClusterSnapshot, Plan};
use serde::Serialize;

use super::gatekeeper::{self, ConstraintTemplate, TenantConstraint};
use super::{FindingKind, SOURCE_CLUSTER_LABEL, TargetView, describe_subject, replacement_name};

/// The name of the default-deny ingress policy of every moved namespace.
pub const DEFAULT_DENY: &str = "kplan-default-deny";
/// The name of the policy that admits the namespaces of the same source cluster.
pub const ALLOW_SAME_SOURCE: &str = "kplan-allow-same-source";
/// ClusterRoles every Kubernetes cluster defines (not emitted).
const BUILT_IN_CLUSTER_ROLES: [&str; 4] = ["cluster-admin", "admin", "edit", "view"];

/// The objects of one target cluster, one list per kind, each sorted by namespace and name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetManifests {
    pub target_cluster: String,
    pub namespaces: Vec<Namespace>,
    pub cluster_roles: Vec<k8s_rbac::ClusterRole>,
    pub role_bindings: Vec<k8s_rbac::RoleBinding>,
    pub network_policies: Vec<k8s_net::NetworkPolicy>,
    pub runtime_classes: Vec<RuntimeClass>,
    /// Gatekeeper's template and the Constraint of its kind: none, or one each.
    pub constraint_templates: Vec<ConstraintTemplate>,
    pub constraints: Vec<TenantConstraint>,
}

impl TargetManifests {
    pub fn n_objects(&self) -> usize {
        self.namespaces.len()
            + self.cluster_roles.len()
            + self.role_bindings.len()
            + self.network_policies.len()
            + self.runtime_classes.len()
            + self.constraint_templates.len()
            + self.constraints.len()
    }
}

/// The two policies a moved namespace gets in a target shared with other
/// sources, in the model's form (what the analysis evaluates; [`manifests`]
/// writes the same as Kubernetes objects).
pub(crate) fn isolation_policies(view: &TargetView<'_>, source: &str, namespace: &str) -> Vec<NetworkPolicy> {
    let Some(new_name) = view.new_names.get(&(source, namespace)) else { return Vec::new() };
    let same_source = isolation::LabelSelector {
        match_labels: BTreeMap::from([(SOURCE_CLUSTER_LABEL.to_string(), source.to_string())]),
        ..Default::default()
    };
    vec![
        NetworkPolicy {
            namespace: new_name.to_string(),
            name: DEFAULT_DENY.to_string(),
            policy_types: vec!["Ingress".to_string()],
            ..Default::default()
        },
        NetworkPolicy {
            namespace: new_name.to_string(),
            name: ALLOW_SAME_SOURCE.to_string(),
            policy_types: vec!["Ingress".to_string()],
            ingress: vec![NetworkPolicyRule {
                peers: vec![NetworkPolicyPeer { namespace_selector: Some(same_source), ..Default::default() }],
                ports: Vec::new(),
            }],
            ..Default::default()
        },
    ]
}

fn meta(namespace: Option<&str>, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: (!labels.is_empty()).then_some(labels),
        ..Default::default()
    }
}

fn managed() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), "kplan".to_string())])
}

fn selector(selector: &isolation::LabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: (!selector.match_labels.is_empty()).then(|| selector.match_labels.clone()),
        match_expressions: None,
    }
}

/// A model policy (as [`isolation_policies`] makes them: match labels only, no ports) as a Kubernetes object.
fn network_policy_object(policy: &NetworkPolicy) -> k8s_net::NetworkPolicy {
    let ingress: Vec<k8s_net::NetworkPolicyIngressRule> = policy
        .ingress
        .iter()
        .map(|rule| k8s_net::NetworkPolicyIngressRule {
            from: Some(
                rule.peers
                    .iter()
                    .map(|peer| k8s_net::NetworkPolicyPeer {
                        namespace_selector: peer.namespace_selector.as_ref().map(selector),
                        pod_selector: peer.pod_selector.as_ref().map(selector),
                        ip_block: None,
                    })
                    .collect(),
            ),
            ports: None,
        })
        .collect();
    k8s_net::NetworkPolicy {
        metadata: meta(Some(&policy.namespace), &policy.name, managed()),
        spec: Some(k8s_net::NetworkPolicySpec {
            pod_selector: Some(selector(&policy.pod_selector)),
            policy_types: Some(policy.policy_types.clone()),
            ingress: (!ingress.is_empty()).then_some(ingress),
            egress: None,
        }),
    }
}

/// Every target's objects; targets without any are left out.
pub fn manifests(plan: &Plan, inventory: &[ClusterSnapshot]) -> Vec<TargetManifests> {
    let report = super::analyse(plan, inventory);
    let policy = plan.policy.clone().unwrap_or_default();
    let mut out = Vec::new();
    for view in super::target_views(plan, inventory) {
        let Some(target) = report.targets.iter().find(|t| t.target_cluster == view.name) else { continue };
        let mut objects = TargetManifests { target_cluster: view.name.to_string(), ..Default::default() };
        for moved in &target.namespaces {
            let mut labels = managed();
            labels.insert(SOURCE_CLUSTER_LABEL.to_string(), moved.source_cluster.clone());
            labels.insert(POD_SECURITY_ENFORCE_LABEL.to_string(), moved.pod_security.as_str().to_string());
            objects.namespaces.push(Namespace { metadata: meta(None, &moved.new_name, labels), ..Default::default() });
            if view.sources.len() >= 2 {
                let policies = isolation_policies(&view, &moved.source_cluster, &moved.namespace);
                objects.network_policies.extend(policies.iter().map(network_policy_object));
            }
        }
        // The widening bindings: (source, binding name), from the findings.
        let mut widening: Vec<(&str, &str)> = target
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::RbacWidening)
            .filter_map(|f| Some((f.source_cluster.as_str(), f.object.strip_prefix("ClusterRoleBinding ")?)))
            .collect();
        widening.sort_unstable();
        widening.dedup();
        let mut cluster_roles: BTreeMap<String, k8s_rbac::ClusterRole> = BTreeMap::new();
        // The tenant subjects of the RBAC findings, for Gatekeeper.
        let mut tenant_subjects = BTreeSet::new();
        for (source, binding_name) in widening {
            let cluster = view.sources[source];
            let Some(binding) = cluster.isolation.cluster_role_bindings.iter().find(|b| b.name == binding_name) else {
                continue;
            };
            let object = format!("ClusterRoleBinding {binding_name}");
            for subject in &binding.subjects {
                let described = describe_subject(subject);
                if target.findings.iter().any(|f| {
                    f.kind == FindingKind::RbacWidening
                        && f.source_cluster == source
                        && f.object == object
                        && f.subject == described
                }) {
                    tenant_subjects.insert((source, subject));
                }
            }
            let role = &binding.role_ref.name;
            if !BUILT_IN_CLUSTER_ROLES.contains(&role.as_str())
                && let Some(defined) = cluster.isolation.cluster_role(role)
            {
                cluster_roles.entry(role.clone()).or_insert_with(|| cluster_role_object(defined));
            }
            let subjects: Vec<k8s_rbac::Subject> = binding
                .subjects
                .iter()
                .map(|subject| {
                    let namespace = match subject.kind.as_str() {
                        "ServiceAccount" => Some(
                            view.new_names
                                .get(&(source, subject.namespace.as_str()))
                                .map_or(subject.namespace.clone(), |n| n.to_string()),
                        ),
                        _ => None,
                    };
                    k8s_rbac::Subject {
                        api_group: (subject.kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".to_string()),
                        kind: subject.kind.clone(),
                        name: subject.name.clone(),
                        namespace,
                    }
                })
                .collect();
            for namespace in view.namespaces_of(source) {
                let mut labels = managed();
                labels.insert(SOURCE_CLUSTER_LABEL.to_string(), source.to_string());
                objects.role_bindings.push(k8s_rbac::RoleBinding {
                    metadata: meta(Some(namespace), &replacement_name(&binding.name), labels),
                    role_ref: k8s_rbac::RoleRef {
                        api_group: "rbac.authorization.k8s.io".to_string(),
                        kind: "ClusterRole".to_string(),
                        name: role.clone(),
                    },
                    subjects: Some(subjects.clone()),
                });
            }
        }
        objects.cluster_roles = cluster_roles.into_values().collect();
        objects.runtime_classes = runtime_classes(&view);
        if let Some(constraint) = gatekeeper::constraint(&view, &policy, &tenant_subjects) {
            objects.constraint_templates.push(gatekeeper::template());
            objects.constraints.push(constraint);
        }
        objects
            .role_bindings
            .sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
        objects
            .network_policies
            .sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
        if objects.n_objects() > 0 {
            out.push(objects);
        }
    }
    out
}

fn cluster_role_object(role: &isolation::Role) -> k8s_rbac::ClusterRole {
    let non_empty = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
    k8s_rbac::ClusterRole {
        metadata: meta(None, &role.name, managed()),
        aggregation_rule: None,
        rules: Some(
            role.rules
                .iter()
                .map(|rule| k8s_rbac::PolicyRule {
                    api_groups: non_empty(&rule.api_groups),
                    resources: non_empty(&rule.resources),
                    verbs: rule.verbs.clone(),
                    resource_names: non_empty(&rule.resource_names),
                    non_resource_urls: non_empty(&rule.non_resource_urls),
                })
                .collect(),
        ),
    }
}

/// The RuntimeClasses the moved pods ask for, as the first source (by id) that defines them does.
fn runtime_classes(view: &TargetView<'_>) -> Vec<RuntimeClass> {
    let mut classes: BTreeMap<&str, &str> = BTreeMap::new();
    for (source, namespace) in view.new_names.keys() {
        let cluster = view.sources[source];
        let groups = cluster.namespaces.iter().filter(|n| n.name == *namespace).flat_map(|n| &n.pod_groups);
        for group in groups.filter(|g| !g.runtime_class.is_empty()) {
            let Some(class) = cluster.isolation.runtime_classes.iter().find(|c| c.name == group.runtime_class) else {
                continue;
            };
            classes.entry(&class.name).or_insert(&class.handler);
        }
    }
    classes
        .into_iter()
        .map(|(name, handler)| RuntimeClass {
            metadata: meta(None, name, managed()),
            handler: handler.to_string(),
            ..Default::default()
        })
        .collect()
}
