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
//!   Constraints that keep the tenant subjects of the findings out of the
//!   platform's and the other tenants' namespaces ([`super::gatekeeper`]).
//!
//! Grouped by the wave in which they must exist ([`WaveManifests`]): the
//! objects of a moved namespace (its label patch, the RoleBindings into it,
//! its NetworkPolicies) in the wave in which it first arrives in the target
//! (its first part's, for a namespace that moves in parts); the
//! cluster-scoped prerequisites (ClusterRoles, RuntimeClasses, the
//! ConstraintTemplate) in [`CLUSTER_SCOPED_WAVE`], wave 0, which the runbook
//! applies once, in the wave the target's first namespace arrives, after its
//! control plane and add-ons and before that wave's own objects; and one
//! Gatekeeper Constraint per wave that moves namespaces in
//! ([`gatekeeper::per_wave`] says why that is sound). No object is in two
//! waves, so a target's kustomization of all its waves has no duplicate id.
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

/// The wave of the cluster-scoped prerequisites of a target (`wave-0` on disk):
/// applied before any namespace arrives in it.
pub const CLUSTER_SCOPED_WAVE: u64 = 0;

/// The objects of one target cluster, by wave (sorted; waves without objects left out).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetManifests {
    pub target_cluster: String,
    pub waves: Vec<WaveManifests>,
}

impl TargetManifests {
    pub fn n_objects(&self) -> usize {
        self.waves.iter().map(WaveManifests::n_objects).sum()
    }

    /// The objects of wave `wave`, if it has any.
    pub fn wave(&self, wave: u64) -> Option<&WaveManifests> {
        self.waves.iter().find(|w| w.wave == wave)
    }

    /// Every wave's objects in one list per kind (the target's final state;
    /// `wave` is the last wave's).
    pub fn all(&self) -> WaveManifests {
        let mut all = WaveManifests { wave: self.waves.last().map_or(0, |w| w.wave), ..Default::default() };
        for wave in &self.waves {
            all.namespaces.extend(wave.namespaces.iter().cloned());
            all.cluster_roles.extend(wave.cluster_roles.iter().cloned());
            all.role_bindings.extend(wave.role_bindings.iter().cloned());
            all.network_policies.extend(wave.network_policies.iter().cloned());
            all.runtime_classes.extend(wave.runtime_classes.iter().cloned());
            all.constraint_templates.extend(wave.constraint_templates.iter().cloned());
            all.constraints.extend(wave.constraints.iter().cloned());
        }
        all
    }
}

/// The objects of one target that must exist from wave `wave` on, one list
/// per kind, each sorted by namespace and name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WaveManifests {
    /// [`CLUSTER_SCOPED_WAVE`] for the cluster-scoped prerequisites, else the plan's (1-based) wave.
    pub wave: u64,
    pub namespaces: Vec<Namespace>,
    pub cluster_roles: Vec<k8s_rbac::ClusterRole>,
    pub role_bindings: Vec<k8s_rbac::RoleBinding>,
    pub network_policies: Vec<k8s_net::NetworkPolicy>,
    pub runtime_classes: Vec<RuntimeClass>,
    /// Gatekeeper's template (wave 0) and the Constraint of the wave: none, or one.
    pub constraint_templates: Vec<ConstraintTemplate>,
    pub constraints: Vec<TenantConstraint>,
}

impl WaveManifests {
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

/// The wave in which each (source, namespace) first arrives in `target`: the
/// lowest wave that moves it (or a part of it) there.
pub fn arrival_waves<'a>(plan: &'a Plan, target: &str) -> BTreeMap<(&'a str, &'a str), u64> {
    let mut waves: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for wave in plan.blocks.iter().flat_map(|b| &b.waves) {
        for moved in wave.namespaces.iter().filter(|m| m.to_cluster == target) {
            let first = waves.entry((&moved.from_cluster, &moved.namespace)).or_insert(wave.index);
            *first = (*first).min(wave.index);
        }
    }
    waves
}

/// Every target's objects, by wave; targets without any are left out.
pub fn manifests(plan: &Plan, inventory: &[ClusterSnapshot]) -> Vec<TargetManifests> {
    let report = super::analyse(plan, inventory);
    let policy = plan.policy.clone().unwrap_or_default();
    let mut out = Vec::new();
    for view in super::target_views(plan, inventory) {
        let Some(target) = report.targets.iter().find(|t| t.target_cluster == view.name) else { continue };
        let arrivals = arrival_waves(plan, view.name);
        // A namespace's name in the target → the wave it first arrives in.
        let arrival_of: BTreeMap<String, u64> = view
            .new_names
            .iter()
            .filter_map(|(key, new_name)| Some((new_name.to_string(), *arrivals.get(key)?)))
            .collect();
        let mut waves: BTreeMap<u64, WaveManifests> = BTreeMap::new();
        for moved in &target.namespaces {
            let wave = arrival_of.get(&moved.new_name).copied().unwrap_or(CLUSTER_SCOPED_WAVE);
            let objects = wave_of(&mut waves, wave);
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
                let wave = arrival_of.get(namespace).copied().unwrap_or(CLUSTER_SCOPED_WAVE);
                wave_of(&mut waves, wave).role_bindings.push(k8s_rbac::RoleBinding {
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
        let runtime_classes = runtime_classes(&view);
        if !cluster_roles.is_empty() || !runtime_classes.is_empty() {
            let first = wave_of(&mut waves, CLUSTER_SCOPED_WAVE);
            first.cluster_roles = cluster_roles.into_values().collect();
            first.runtime_classes = runtime_classes;
        }
        if let Some(constraint) = gatekeeper::constraint(&view, &policy, &tenant_subjects) {
            wave_of(&mut waves, CLUSTER_SCOPED_WAVE).constraint_templates.push(gatekeeper::template());
            for (wave, constraint) in gatekeeper::per_wave(&constraint, &arrival_of) {
                wave_of(&mut waves, wave).constraints.push(constraint);
            }
        }
        let mut objects = TargetManifests { target_cluster: view.name.to_string(), waves: Vec::new() };
        for mut wave in waves.into_values().filter(|w| w.n_objects() > 0) {
            let key = |meta: &ObjectMeta| (meta.namespace.clone(), meta.name.clone());
            wave.role_bindings.sort_by_key(|b| key(&b.metadata));
            wave.network_policies.sort_by_key(|p| key(&p.metadata));
            objects.waves.push(wave);
        }
        if objects.n_objects() > 0 {
            out.push(objects);
        }
    }
    out
}

fn wave_of(waves: &mut BTreeMap<u64, WaveManifests>, wave: u64) -> &mut WaveManifests {
    waves.entry(wave).or_insert_with(|| WaveManifests { wave, ..Default::default() })
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
