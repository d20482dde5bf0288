//! The OPA Gatekeeper objects of a shared target (issue 14): one
//! ConstraintTemplate (`templates.gatekeeper.sh/v1`, its Rego in
//! `tenant_namespaces.rego`) and one Constraint of its kind
//! (`constraints.gatekeeper.sh/v1beta1`) that keep the tenant subjects of the
//! RBAC findings out of the platform's namespaces (the policy's
//! `platform_namespaces`: `kube-system`, `default`, ...) and out of the other
//! tenants' namespaces, whatever RBAC someone adds later.
//!
//! What it cannot do: Gatekeeper is an admission webhook, so it sees writes
//! (create, update, delete, connect), never reads (get, list, watch): reads
//! are kept apart by the emitted RoleBindings alone. It does nothing in a
//! namespace Gatekeeper is configured to exempt (its own, and often
//! `kube-system`), and a webhook that fails open lets requests through while
//! Gatekeeper is down.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kplan_model::Policy;
use kplan_model::isolation::Subject;
use serde::{Deserialize, Serialize};

use super::TargetView;

/// The template's name: Gatekeeper requires the lowercase of its kind.
pub const TEMPLATE_NAME: &str = "kplantenantnamespaces";
/// The Constraint kind the template defines.
pub const CONSTRAINT_KIND: &str = "KplanTenantNamespaces";
/// The Constraint of a target; each wave's is named `<this>-wave-N` ([`per_wave`]).
pub const CONSTRAINT_NAME: &str = "kplan-tenant-namespaces";
/// The Rego the template carries (Rego v0 syntax, Gatekeeper's `rego` field).
pub const REGO: &str = include_str!("tenant_namespaces.rego");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintTemplate {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: TemplateSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub crd: TemplateCrd,
    pub targets: Vec<TemplateTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateCrd {
    pub spec: TemplateCrdSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateCrdSpec {
    pub names: TemplateNames,
    pub validation: TemplateValidation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateNames {
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateValidation {
    /// False: the schema is structural (Gatekeeper's default for `v1`, written out).
    #[serde(rename = "legacySchema")]
    pub legacy_schema: bool,
    #[serde(rename = "openAPIV3Schema")]
    pub open_api_v3_schema: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateTarget {
    pub target: String,
    pub rego: String,
}

/// The Constraint (`constraints.gatekeeper.sh/v1beta1`, kind [`CONSTRAINT_KIND`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantConstraint {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ConstraintSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintSpec {
    pub enforcement_action: String,
    pub parameters: ConstraintParameters,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintParameters {
    /// The policy's platform namespaces: names or `prefix*` patterns.
    pub protected_namespaces: Vec<String>,
    /// Every namespace that moves into the target (its name there).
    pub tenant_namespaces: Vec<String>,
    pub subjects: Vec<TenantSubject>,
}

/// A subject as the API server authenticates it: `User` (a service account
/// is the user `system:serviceaccount:NS:NAME`, NS its namespace's name in
/// the target) or `Group`, with the target namespaces where it could act
/// before the merge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantSubject {
    pub kind: String,
    pub name: String,
    pub namespaces: Vec<String>,
}

/// The schema of the Constraint's `parameters`, as the template declares it.
fn parameters_schema() -> serde_json::Value {
    let strings = serde_json::json!({"type": "array", "items": {"type": "string"}});
    serde_json::json!({
        "type": "object",
        "properties": {
            "protectedNamespaces": strings,
            "tenantNamespaces": strings,
            "subjects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "enum": ["User", "Group"]},
                        "name": {"type": "string"},
                        "namespaces": strings,
                    },
                },
            },
        },
    })
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), "kplan".to_string())])),
        ..Default::default()
    }
}

/// The template (the same for every target).
pub fn template() -> ConstraintTemplate {
    ConstraintTemplate {
        api_version: "templates.gatekeeper.sh/v1".to_string(),
        kind: "ConstraintTemplate".to_string(),
        metadata: meta(TEMPLATE_NAME),
        spec: TemplateSpec {
            crd: TemplateCrd {
                spec: TemplateCrdSpec {
                    names: TemplateNames { kind: CONSTRAINT_KIND.to_string() },
                    validation: TemplateValidation { legacy_schema: false, open_api_v3_schema: parameters_schema() },
                },
            },
            targets: vec![TemplateTarget { target: "admission.k8s.gatekeeper.sh".to_string(), rego: REGO.to_string() }],
        },
    }
}

/// Whether `subject` could act in namespace `namespace` of `source` before
/// the merge: bound by any ClusterRoleBinding of that cluster, or by a
/// RoleBinding in that namespace.
fn could_act(view: &TargetView<'_>, source: &str, namespace: &str, subject: &Subject) -> bool {
    let Some(cluster) = view.sources.get(source) else { return false };
    cluster.isolation.cluster_role_bindings.iter().any(|b| b.subjects.contains(subject))
        || cluster.isolation.role_bindings.iter().any(|b| b.namespace == namespace && b.subjects.contains(subject))
}

/// The Constraint of one target for the tenant subjects of its RBAC findings
/// (`(source cluster, subject)`); `None` without any.
pub(crate) fn constraint(
    view: &TargetView<'_>,
    policy: &Policy,
    subjects: &BTreeSet<(&str, &Subject)>,
) -> Option<TenantConstraint> {
    if subjects.is_empty() {
        return None;
    }
    // One entry per authenticated name: a group bound in two sources is one group.
    let mut entries: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for &(source, subject) in subjects {
        let (kind, name) = match subject.kind.as_str() {
            "ServiceAccount" => {
                let namespace =
                    view.new_names.get(&(source, subject.namespace.as_str())).copied().unwrap_or(&subject.namespace);
                ("User".to_string(), format!("system:serviceaccount:{namespace}:{}", subject.name))
            }
            kind => (kind.to_string(), subject.name.clone()),
        };
        let allowed = entries.entry((kind, name)).or_default();
        for ((other, namespace), new_name) in &view.new_names {
            if could_act(view, other, namespace, subject) {
                allowed.insert(new_name.to_string());
            }
        }
    }
    let mut tenant_namespaces: Vec<String> = view.new_names.values().map(|n| n.to_string()).collect();
    tenant_namespaces.sort_unstable();
    Some(TenantConstraint {
        api_version: "constraints.gatekeeper.sh/v1beta1".to_string(),
        kind: CONSTRAINT_KIND.to_string(),
        metadata: meta(CONSTRAINT_NAME),
        spec: ConstraintSpec {
            enforcement_action: "deny".to_string(),
            parameters: ConstraintParameters {
                protected_namespaces: policy.platform_namespaces.clone(),
                tenant_namespaces,
                subjects: entries
                    .into_iter()
                    .map(|((kind, name), namespaces)| TenantSubject {
                        kind,
                        name,
                        namespaces: namespaces.into_iter().collect(),
                    })
                    .collect(),
            },
        },
    })
}

/// The target's Constraint cut into one Constraint per wave that moves
/// namespaces in (`arrival_of`: a namespace's name in the target → the wave it
/// first arrives in), named `kplan-tenant-namespaces-wave-N`, so that applying
/// every wave's directory together never gives two objects the same id.
///
/// Wave N's Constraint guards the platform's namespaces and the tenant
/// namespaces that arrive in wave N; it names every tenant subject, each
/// allowed in its own namespaces among those. Why this is sound: the Rego
/// refuses a listed subject in a namespace only if the namespace is guarded
/// and not among the subject's allowed ones, and Gatekeeper refuses a request
/// that any Constraint refuses. So with the Constraints of waves 1..=N
/// applied, a subject is refused in the platform's namespaces (every
/// Constraint guards them) and in exactly the arrived tenant namespaces
/// outside its own: a namespace arrived in wave K ≤ N is guarded by wave K's
/// Constraint alone, which allows the subject there exactly when the whole
/// target's Constraint would. Namespaces still to arrive are guarded by no
/// Constraint yet, and do not exist in the target. After the last wave, the
/// union is the target's one Constraint, namespace for namespace.
pub(crate) fn per_wave(
    constraint: &TenantConstraint,
    arrival_of: &BTreeMap<String, u64>,
) -> Vec<(u64, TenantConstraint)> {
    let mut by_wave: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for namespace in &constraint.spec.parameters.tenant_namespaces {
        if let Some(wave) = arrival_of.get(namespace) {
            by_wave.entry(*wave).or_default().insert(namespace);
        }
    }
    by_wave
        .into_iter()
        .map(|(wave, arrived)| {
            let mut part = constraint.clone();
            part.metadata.name = Some(format!("{CONSTRAINT_NAME}-wave-{wave}"));
            let parameters = &mut part.spec.parameters;
            parameters.tenant_namespaces.retain(|n| arrived.contains(n.as_str()));
            for subject in &mut parameters.subjects {
                subject.namespaces.retain(|n| arrived.contains(n.as_str()));
            }
            (wave, part)
        })
        .collect()
}
