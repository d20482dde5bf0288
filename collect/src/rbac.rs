//! RBAC, NetworkPolicies, RuntimeClasses and admission policies
//! (ValidatingAdmissionPolicies and their bindings, k8s-openapi types;
//! Gatekeeper constraints, [`GatekeeperConstraint`]) into the snapshot's
//! [`IsolationInventory`]. Shared by `kplan import` (through
//! [`crate::collect`]) and the agent (one conversion per object as it is
//! watched). Secrets are never read: no kind here holds one.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1 as k8s_admission;
use k8s_openapi::api::networking::v1 as k8s_net;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1 as k8s_rbac;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as k8s_meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kplan_model::isolation::{
    AdmissionPolicy, IpBlock, IsolationInventory, LabelSelector, LabelSelectorRequirement, NetworkPolicy,
    NetworkPolicyPeer, NetworkPolicyRule, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::{CollectError, Origin};

/// One parsed object of the kinds that keep tenants apart.
#[derive(Debug, Clone)]
pub enum IsolationObject {
    ClusterRole(k8s_rbac::ClusterRole),
    ClusterRoleBinding(k8s_rbac::ClusterRoleBinding),
    Role(k8s_rbac::Role),
    RoleBinding(k8s_rbac::RoleBinding),
    NetworkPolicy(k8s_net::NetworkPolicy),
    RuntimeClass(RuntimeClass),
    ValidatingAdmissionPolicy(k8s_admission::ValidatingAdmissionPolicy),
    ValidatingAdmissionPolicyBinding(k8s_admission::ValidatingAdmissionPolicyBinding),
    GatekeeperConstraint(GatekeeperConstraint),
}

/// The group of Gatekeeper's constraints (their kinds come from ConstraintTemplates).
pub const GATEKEEPER_CONSTRAINTS_GROUP: &str = "constraints.gatekeeper.sh";
/// The group of ValidatingAdmissionPolicies and their bindings.
pub const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";

/// A Gatekeeper constraint (group `constraints.gatekeeper.sh`, any version):
/// its kind, name and what it applies to; the rest of its spec is not read.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct GatekeeperConstraint {
    /// Set by the reader from the object's `kind` (`K8sRequiredLabels`).
    #[serde(skip)]
    pub kind: String,
    pub metadata: k8s_meta::ObjectMeta,
    pub spec: ConstraintSpec,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConstraintSpec {
    pub enforcement_action: Option<String>,
    #[serde(rename = "match")]
    pub match_: ConstraintMatch,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConstraintMatch {
    pub namespaces: Option<Vec<String>>,
    pub namespace_selector: Option<k8s_meta::LabelSelector>,
}

impl IsolationObject {
    /// `ClusterRole`, `RoleBinding`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            IsolationObject::ClusterRole(_) => "ClusterRole",
            IsolationObject::ClusterRoleBinding(_) => "ClusterRoleBinding",
            IsolationObject::Role(_) => "Role",
            IsolationObject::RoleBinding(_) => "RoleBinding",
            IsolationObject::NetworkPolicy(_) => "NetworkPolicy",
            IsolationObject::RuntimeClass(_) => "RuntimeClass",
            IsolationObject::ValidatingAdmissionPolicy(_) => "ValidatingAdmissionPolicy",
            IsolationObject::ValidatingAdmissionPolicyBinding(_) => "ValidatingAdmissionPolicyBinding",
            IsolationObject::GatekeeperConstraint(_) => "GatekeeperConstraint",
        }
    }

    pub fn metadata(&self) -> &k8s_meta::ObjectMeta {
        match self {
            IsolationObject::ClusterRole(o) => &o.metadata,
            IsolationObject::ClusterRoleBinding(o) => &o.metadata,
            IsolationObject::Role(o) => &o.metadata,
            IsolationObject::RoleBinding(o) => &o.metadata,
            IsolationObject::NetworkPolicy(o) => &o.metadata,
            IsolationObject::RuntimeClass(o) => &o.metadata,
            IsolationObject::ValidatingAdmissionPolicy(o) => &o.metadata,
            IsolationObject::ValidatingAdmissionPolicyBinding(o) => &o.metadata,
            IsolationObject::GatekeeperConstraint(o) => &o.metadata,
        }
    }

    /// `namespace/name` for namespaced kinds, else the name (`KIND/name` for
    /// a Gatekeeper constraint: names are unique per constraint kind).
    fn key(&self) -> String {
        let metadata = self.metadata();
        let name = metadata.name.as_deref().unwrap_or_default();
        if let IsolationObject::GatekeeperConstraint(constraint) = self {
            return format!("{}/{name}", constraint.kind);
        }
        match metadata.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name.to_string(),
        }
    }
}

/// The objects of one cluster as they are read, checked for duplicates.
#[derive(Debug, Default)]
pub struct IsolationIndex {
    seen: BTreeMap<(&'static str, String), Origin>,
    inventory: IsolationInventory,
}

impl IsolationIndex {
    /// Adds one object; the same kind and name twice is an error naming both places.
    pub fn add(&mut self, object: IsolationObject, origin: &Origin) -> Result<(), CollectError> {
        let key = (object.kind(), object.key());
        if let Some(first) = self.seen.get(&key) {
            return Err(CollectError::Duplicate {
                kind: object.kind(),
                name: key.1,
                first: first.to_string(),
                second: origin.to_string(),
            });
        }
        self.seen.insert(key, origin.clone());
        add_object(&mut self.inventory, object);
        Ok(())
    }

    /// The inventory, every list sorted by (namespace, name).
    pub fn finish(self) -> IsolationInventory {
        sorted(self.inventory)
    }
}

/// Adds one object to an inventory (unsorted; see [`sorted`]).
pub fn add_object(inventory: &mut IsolationInventory, object: IsolationObject) {
    match object {
        IsolationObject::ClusterRole(o) => inventory.cluster_roles.push(role(o.metadata, o.rules)),
        IsolationObject::Role(o) => inventory.roles.push(role(o.metadata, o.rules)),
        IsolationObject::ClusterRoleBinding(o) => {
            inventory.cluster_role_bindings.push(binding(o.metadata, o.role_ref, o.subjects))
        }
        IsolationObject::RoleBinding(o) => inventory.role_bindings.push(binding(o.metadata, o.role_ref, o.subjects)),
        IsolationObject::NetworkPolicy(o) => inventory.network_policies.push(network_policy(o)),
        IsolationObject::RuntimeClass(o) => inventory.runtime_classes.push(kplan_model::isolation::RuntimeClass {
            name: o.metadata.name.unwrap_or_default(),
            handler: o.handler,
        }),
        IsolationObject::ValidatingAdmissionPolicy(o) => {
            let selector = o.spec.and_then(|spec| spec.match_constraints).and_then(|m| m.namespace_selector);
            inventory.admission_policies.push(AdmissionPolicy {
                group: ADMISSION_GROUP.to_string(),
                kind: "ValidatingAdmissionPolicy".to_string(),
                name: o.metadata.name.unwrap_or_default(),
                namespace_selector: selector.map(self::selector).filter(|s| !s.is_empty()),
                ..AdmissionPolicy::default()
            })
        }
        IsolationObject::ValidatingAdmissionPolicyBinding(o) => {
            let spec = o.spec.unwrap_or_default();
            let selector = spec.match_resources.and_then(|m| m.namespace_selector);
            inventory.admission_policies.push(AdmissionPolicy {
                group: ADMISSION_GROUP.to_string(),
                kind: "ValidatingAdmissionPolicyBinding".to_string(),
                name: o.metadata.name.unwrap_or_default(),
                policy: spec.policy_name.unwrap_or_default(),
                namespace_selector: selector.map(self::selector).filter(|s| !s.is_empty()),
                actions: spec.validation_actions.unwrap_or_default(),
                ..AdmissionPolicy::default()
            })
        }
        IsolationObject::GatekeeperConstraint(o) => {
            let mut namespaces = o.spec.match_.namespaces.unwrap_or_default();
            namespaces.sort();
            inventory.admission_policies.push(AdmissionPolicy {
                group: GATEKEEPER_CONSTRAINTS_GROUP.to_string(),
                kind: o.kind,
                name: o.metadata.name.unwrap_or_default(),
                namespaces,
                namespace_selector: o.spec.match_.namespace_selector.map(self::selector).filter(|s| !s.is_empty()),
                // Gatekeeper's default.
                actions: vec![o.spec.enforcement_action.unwrap_or_else(|| "deny".to_string())],
                ..AdmissionPolicy::default()
            })
        }
    }
}

/// Every list sorted by (namespace, name): the same objects give the same inventory.
pub fn sorted(mut inventory: IsolationInventory) -> IsolationInventory {
    let roles = |a: &Role, b: &Role| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name));
    let bindings = |a: &RoleBinding, b: &RoleBinding| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name));
    inventory.cluster_roles.sort_by(roles);
    inventory.roles.sort_by(roles);
    inventory.cluster_role_bindings.sort_by(bindings);
    inventory.role_bindings.sort_by(bindings);
    inventory.network_policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    inventory.runtime_classes.sort_by(|a, b| a.name.cmp(&b.name));
    inventory.admission_policies.sort_by(|a, b| (&a.group, &a.kind, &a.name).cmp(&(&b.group, &b.kind, &b.name)));
    inventory
}

fn role(metadata: k8s_meta::ObjectMeta, rules: Option<Vec<k8s_rbac::PolicyRule>>) -> Role {
    Role {
        namespace: metadata.namespace.unwrap_or_default(),
        name: metadata.name.unwrap_or_default(),
        rules: rules
            .unwrap_or_default()
            .into_iter()
            .map(|rule| PolicyRule {
                api_groups: rule.api_groups.unwrap_or_default(),
                resources: rule.resources.unwrap_or_default(),
                verbs: rule.verbs,
                resource_names: rule.resource_names.unwrap_or_default(),
                non_resource_urls: rule.non_resource_urls.unwrap_or_default(),
            })
            .collect(),
    }
}

fn binding(
    metadata: k8s_meta::ObjectMeta,
    role_ref: k8s_rbac::RoleRef,
    subjects: Option<Vec<k8s_rbac::Subject>>,
) -> RoleBinding {
    let namespace = metadata.namespace.unwrap_or_default();
    RoleBinding {
        name: metadata.name.unwrap_or_default(),
        role_ref: RoleRef { kind: role_ref.kind, name: role_ref.name },
        subjects: subjects
            .unwrap_or_default()
            .into_iter()
            .map(|subject| Subject {
                // A RoleBinding's service account without a namespace is in the binding's.
                namespace: match (subject.kind.as_str(), subject.namespace) {
                    ("ServiceAccount", None) => namespace.clone(),
                    (_, namespace) => namespace.unwrap_or_default(),
                },
                kind: subject.kind,
                name: subject.name,
            })
            .collect(),
        namespace,
    }
}

/// Kubernetes' default policy types: `Ingress`, and `Egress` when the policy has egress rules.
fn network_policy(policy: k8s_net::NetworkPolicy) -> NetworkPolicy {
    let spec = policy.spec.unwrap_or_default();
    let ingress: Vec<NetworkPolicyRule> =
        spec.ingress.unwrap_or_default().into_iter().map(|rule| policy_rule(rule.from, rule.ports)).collect();
    let has_egress = spec.egress.is_some();
    let egress: Vec<NetworkPolicyRule> =
        spec.egress.unwrap_or_default().into_iter().map(|rule| policy_rule(rule.to, rule.ports)).collect();
    let policy_types = spec.policy_types.unwrap_or_else(|| {
        let mut types = vec!["Ingress".to_string()];
        if has_egress {
            types.push("Egress".to_string());
        }
        types
    });
    NetworkPolicy {
        namespace: policy.metadata.namespace.unwrap_or_default(),
        name: policy.metadata.name.unwrap_or_default(),
        pod_selector: spec.pod_selector.map(selector).unwrap_or_default(),
        policy_types,
        ingress,
        egress,
    }
}

fn policy_rule(
    peers: Option<Vec<k8s_net::NetworkPolicyPeer>>,
    ports: Option<Vec<k8s_net::NetworkPolicyPort>>,
) -> NetworkPolicyRule {
    NetworkPolicyRule {
        peers: peers
            .unwrap_or_default()
            .into_iter()
            .map(|peer| NetworkPolicyPeer {
                pod_selector: peer.pod_selector.map(selector),
                namespace_selector: peer.namespace_selector.map(selector),
                ip_block: peer
                    .ip_block
                    .map(|block| IpBlock { cidr: block.cidr, except: block.except.unwrap_or_default() }),
            })
            .collect(),
        ports: ports.unwrap_or_default().into_iter().map(port).collect(),
    }
}

/// `TCP/443`, `UDP/53`, `TCP/8000-8080`, `TCP/http`, `TCP` (every port of the protocol).
fn port(port: k8s_net::NetworkPolicyPort) -> String {
    let protocol = port.protocol.unwrap_or_else(|| "TCP".to_string());
    match (port.port, port.end_port) {
        (None, _) => protocol,
        (Some(IntOrString::Int(low)), Some(high)) => format!("{protocol}/{low}-{high}"),
        (Some(IntOrString::Int(n)), None) => format!("{protocol}/{n}"),
        (Some(IntOrString::String(name)), _) => format!("{protocol}/{name}"),
    }
}

/// A Kubernetes label selector as the inventory records it (and matches it:
/// `LabelSelector::matches`).
pub(crate) fn selector(selector: k8s_meta::LabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: selector.match_labels.unwrap_or_default(),
        match_expressions: selector
            .match_expressions
            .unwrap_or_default()
            .into_iter()
            .map(|e| LabelSelectorRequirement {
                key: e.key,
                operator: e.operator,
                values: e.values.unwrap_or_default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use crate::{CollectOptions, KubeObject, collect, parse_documents};

    /// `kubectl get clusterroles,clusterrolebindings,roles,rolebindings,networkpolicies,runtimeclasses -A -o json`
    /// (trimmed), beside a namespace so the export is a cluster.
    const EXPORT: &str = r#"{"apiVersion": "v1", "kind": "List", "items": [
      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments", "resourceVersion": "10",
        "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
      {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
       "metadata": {"name": "edit", "resourceVersion": "11"},
       "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}}]},
       "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "delete"]}]},
      {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
       "metadata": {"name": "payments-team-edit", "resourceVersion": "12"},
       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-payments"},
                    {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}]},
      {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
       "metadata": {"name": "reader", "namespace": "payments"},
       "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
      {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
       "metadata": {"name": "reader", "namespace": "payments"},
       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
       "subjects": [{"kind": "ServiceAccount", "name": "monitor"}]},
      {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
       "metadata": {"name": "web", "namespace": "payments"},
       "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["payments"]}]}},
                                      {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.9.0.0/16"]}}],
                             "ports": [{"port": 8443}, {"protocol": "UDP", "port": 5000, "endPort": 5010}]}]}},
      {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor"}, "handler": "runsc"},
      {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "payments"}, "data": {"t": "c2VjcmV0"}}
    ]}"#;

    fn options() -> CollectOptions {
        CollectOptions { cluster_id: "c1".into(), security_tier: Some("prod".into()), ..Default::default() }
    }

    #[test]
    fn rbac_network_policies_and_runtime_classes_are_collected_from_kubectl_json() {
        let objects = parse_documents(EXPORT, "rbac.json").unwrap();
        let kinds: Vec<&str> = objects.iter().map(KubeObject::kind).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "NetworkPolicy",
                "RuntimeClass",
                "Secret"
            ]
        );
        let snapshot = collect(objects, &options()).unwrap();
        let isolation = &snapshot.isolation;
        assert_eq!(isolation.cluster_roles[0].name, "edit");
        assert_eq!(isolation.cluster_roles[0].rules[0].verbs, ["create", "delete"]);
        let binding = &isolation.cluster_role_bindings[0];
        assert_eq!((binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()), ("ClusterRole", "edit"));
        assert_eq!(binding.subjects[0].kind, "Group");
        assert_eq!(binding.subjects[1].username(), "system:serviceaccount:ci:deployer");
        // A RoleBinding's service account without a namespace is in the binding's namespace.
        assert_eq!(isolation.role_bindings[0].subjects[0].namespace, "payments");
        assert_eq!(isolation.roles[0].namespace, "payments");
        let policy = &isolation.network_policies[0];
        assert_eq!(policy.policy_types, ["Ingress"], "Kubernetes' default without egress rules");
        assert_eq!(policy.pod_selector.match_labels["app"], "web");
        assert_eq!(policy.ingress[0].ports, ["TCP/8443", "UDP/5000-5010"]);
        assert_eq!(policy.ingress[0].peers[1].ip_block.as_ref().unwrap().except, ["10.9.0.0/16"]);
        assert_eq!(
            policy.ingress[0].peers[0].namespace_selector.as_ref().unwrap().match_expressions[0].values,
            ["payments"]
        );
        assert_eq!(isolation.runtime_classes[0].handler, "runsc");
        assert_eq!(isolation.n_objects(), 6, "the Secret is skipped, never read");
        // The Pod Security level stays a namespace label.
        assert_eq!(snapshot.namespaces[0].labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(snapshot.generation, 12);
    }

    #[test]
    fn the_same_binding_twice_is_an_error_naming_both_places() {
        let binding = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "ops"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}}"#;
        let mut objects = parse_documents(binding, "a.json").unwrap();
        objects.extend(parse_documents(binding, "b.json").unwrap());
        objects.extend(
            parse_documents(r#"{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "x"}}"#, "n.json")
                .unwrap(),
        );
        let error = collect(objects, &CollectOptions { generation: Some(1), ..options() }).unwrap_err();
        assert_eq!(error.to_string(), "duplicate ClusterRoleBinding \"ops\": in a.json and in b.json");
    }

    #[test]
    fn a_malformed_binding_names_its_field() {
        let text = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": "r", "namespace": "a"}, "roleRef": {"kind": 5}}"#;
        let message = parse_documents(text, "r.json").unwrap_err().to_string();
        assert!(message.starts_with("r.json: rolebinding \"a/r\": roleRef"), "{message}");
    }
}
