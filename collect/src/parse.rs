//! Text (`kubectl get -o json|yaml` output, or a kplan snapshot file) to typed objects.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kplan_model::{AppliedObject, ClusterSnapshot};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::CollectError;
use crate::rbac::IsolationObject;

/// Where an object came from: the source (a file name) and its place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: Arc<str>,
    /// `items[3]` (a `List`), `[3]` (a bare array), `document 2` (YAML
    /// multi-document, counted from 1), a combination, or empty for a lone object.
    pub location: String,
}

impl Origin {
    pub fn new(source: impl Into<Arc<str>>, location: impl Into<String>) -> Self {
        Origin { source: source.into(), location: location.into() }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            f.write_str(&self.source)
        } else {
            write!(f, "{}, {}", self.source, self.location)
        }
    }
}

/// One parsed input object. The Kubernetes objects are k8s-openapi's types.
#[derive(Debug, Clone)]
pub enum KubeObject {
    Node {
        origin: Origin,
        node: Box<Node>,
    },
    Namespace {
        origin: Origin,
        namespace: Box<Namespace>,
    },
    Pod {
        origin: Origin,
        pod: Box<Pod>,
    },
    DaemonSet {
        origin: Origin,
        daemon_set: Box<DaemonSet>,
    },
    PersistentVolumeClaim {
        origin: Origin,
        claim: Box<PersistentVolumeClaim>,
    },
    PersistentVolume {
        origin: Origin,
        volume: Box<PersistentVolume>,
    },
    StorageClass {
        origin: Origin,
        class: Box<StorageClass>,
    },
    /// A PodDisruptionBudget (`policy/v1`, or `policy/v1beta1`: the fields read
    /// are the same), with its namespace's pre-release last-applied object as
    /// for a skipped kind.
    DisruptionBudget {
        origin: Origin,
        budget: Box<PodDisruptionBudget>,
        applied_prerelease: Option<(String, AppliedObject)>,
    },
    /// RBAC, a NetworkPolicy or a RuntimeClass (`crate::rbac`).
    Isolation {
        origin: Origin,
        object: Box<IsolationObject>,
    },
    /// A kind the collector does not read (Service, Event, Deployment, …), or
    /// an item without `kind` whose shape matches none of the four above (kind `unknown`).
    Skipped {
        origin: Origin,
        kind: String,
        name: String,
        resource_version: Option<String>,
        /// Its namespace, and the object as its last `kubectl apply` wrote it
        /// when that used a pre-release API version (see [`last_applied_prerelease`]).
        applied_prerelease: Option<(String, AppliedObject)>,
    },
    /// kplan's own snapshot format (`kplan-agent snapshot --out FILE`).
    Snapshot {
        origin: Origin,
        snapshot: Box<ClusterSnapshot>,
    },
}

impl KubeObject {
    pub fn origin(&self) -> &Origin {
        match self {
            KubeObject::Node { origin, .. }
            | KubeObject::Namespace { origin, .. }
            | KubeObject::Pod { origin, .. }
            | KubeObject::DaemonSet { origin, .. }
            | KubeObject::PersistentVolumeClaim { origin, .. }
            | KubeObject::PersistentVolume { origin, .. }
            | KubeObject::StorageClass { origin, .. }
            | KubeObject::DisruptionBudget { origin, .. }
            | KubeObject::Isolation { origin, .. }
            | KubeObject::Skipped { origin, .. }
            | KubeObject::Snapshot { origin, .. } => origin,
        }
    }

    /// `Node`, `Namespace`, `Pod`, `DaemonSet`, `ClusterSnapshot`, or the skipped kind.
    pub fn kind(&self) -> &str {
        match self {
            KubeObject::Node { .. } => "Node",
            KubeObject::Namespace { .. } => "Namespace",
            KubeObject::Pod { .. } => "Pod",
            KubeObject::DaemonSet { .. } => "DaemonSet",
            KubeObject::PersistentVolumeClaim { .. } => "PersistentVolumeClaim",
            KubeObject::PersistentVolume { .. } => "PersistentVolume",
            KubeObject::StorageClass { .. } => "StorageClass",
            KubeObject::DisruptionBudget { .. } => "PodDisruptionBudget",
            KubeObject::Isolation { object, .. } => object.kind(),
            KubeObject::Skipped { kind, .. } => kind,
            KubeObject::Snapshot { .. } => "ClusterSnapshot",
        }
    }

    /// `metadata.resourceVersion` when it is a number (it always is on a real
    /// API server: the etcd revision of the object's last change).
    pub fn resource_version(&self) -> Option<u64> {
        let text = match self {
            KubeObject::Node { node, .. } => node.metadata.resource_version.as_deref(),
            KubeObject::Namespace { namespace, .. } => namespace.metadata.resource_version.as_deref(),
            KubeObject::Pod { pod, .. } => pod.metadata.resource_version.as_deref(),
            KubeObject::DaemonSet { daemon_set, .. } => daemon_set.metadata.resource_version.as_deref(),
            KubeObject::PersistentVolumeClaim { claim, .. } => claim.metadata.resource_version.as_deref(),
            KubeObject::PersistentVolume { volume, .. } => volume.metadata.resource_version.as_deref(),
            KubeObject::StorageClass { class, .. } => class.metadata.resource_version.as_deref(),
            KubeObject::DisruptionBudget { budget, .. } => budget.metadata.resource_version.as_deref(),
            KubeObject::Isolation { object, .. } => object.metadata().resource_version.as_deref(),
            KubeObject::Skipped { resource_version, .. } => resource_version.as_deref(),
            KubeObject::Snapshot { .. } => None,
        };
        text.and_then(|text| text.trim().parse().ok())
    }
}

/// How many objects of each kind (`count_kinds(&objects)["Service"]`), for
/// reporting what an import read and what it skipped.
pub fn count_kinds(objects: &[KubeObject]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for object in objects {
        *counts.entry(object.kind().to_string()).or_insert(0) += 1;
    }
    counts
}

/// Parses the text of one input file (`source` names it in errors).
///
/// Accepted shapes, freely mixed:
/// - JSON: one object, a `List` / `NodeList` / `PodList` / any `*List`, a bare
///   array of objects, or several objects one after another (`kubectl get -w -o json`);
/// - YAML: the same, and several documents separated by `---`;
/// - list items with or without `kind` / `apiVersion` (see [`infer_kind`]);
/// - kplan's own snapshot (a serialised [`ClusterSnapshot`], recognised by a
///   top-level `cluster_id` and `nodes` and no `kind`), returned as
///   [`KubeObject::Snapshot`].
///
/// Kinds other than Node, Namespace, Pod, DaemonSet, the storage kinds, RBAC
/// (ClusterRole, ClusterRoleBinding, Role, RoleBinding), NetworkPolicy,
/// RuntimeClass and PodDisruptionBudget are returned as [`KubeObject::Skipped`] (a Secret is never read); something that is not an object with `kind` or
/// `metadata` is an error naming the source and the item. Unknown fields of
/// Kubernetes objects are ignored (newer API servers add fields), malformed
/// known fields are errors with their path. Fields kplan never reads and that
/// can be large (`metadata.managedFields`, a node's `status.images`) are dropped
/// before the typed conversion.
pub fn parse_documents(text: &str, source: &str) -> Result<Vec<KubeObject>, CollectError> {
    let source: Arc<str> = Arc::from(source);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let documents = read_documents(text, &source)?;
    if documents.is_empty() {
        return Err(CollectError::Empty { file: source.to_string() });
    }
    let n_documents = documents.len();
    let mut objects = Vec::new();
    for (document_idx, document) in documents.into_iter().enumerate() {
        let location = if n_documents > 1 { format!("document {}", document_idx + 1) } else { String::new() };
        read_document(document, &source, &location, &mut objects)?;
    }
    Ok(objects)
}

/// Splits the text into documents: JSON when it starts like JSON, else YAML.
fn read_documents(text: &str, source: &Arc<str>) -> Result<Vec<Value>, CollectError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let json: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text).into_iter::<Value>().collect();
        return match json {
            Ok(documents) => Ok(documents),
            // A YAML flow mapping (`{kind: Node, …}`) also starts with `{`.
            Err(json_error) => read_yaml(text, source)
                .map_err(|_| CollectError::Json { file: source.to_string(), message: json_error.to_string() }),
        };
    }
    read_yaml(text, source)
}

fn read_yaml(text: &str, source: &Arc<str>) -> Result<Vec<Value>, CollectError> {
    // An export of a large cluster is far bigger than the configuration files
    // serde-saphyr's default budget is sized for; keep the alias limits (they
    // stop "billion laughs") and raise the size limits.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 200_000_000;
    budget.max_nodes = 100_000_000;
    budget.max_documents = 1_000_000;
    budget.max_depth = 128;
    budget.max_total_scalar_bytes = 1 << 30;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    serde_saphyr::from_multiple_with_options::<Value>(text, options)
        .map_err(|error| CollectError::Yaml { file: source.to_string(), message: one_line(&error.to_string()) })
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn join_location(outer: &str, inner: &str) -> String {
    if outer.is_empty() { inner.to_string() } else { format!("{outer}, {inner}") }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn read_document(
    document: Value,
    source: &Arc<str>,
    location: &str,
    objects: &mut Vec<KubeObject>,
) -> Result<(), CollectError> {
    match document {
        Value::Array(items) => {
            for (item_idx, item) in items.into_iter().enumerate() {
                let item_location = join_location(location, &format!("[{item_idx}]"));
                read_item(item, source, &item_location, objects)?;
            }
            Ok(())
        }
        Value::Object(map) if is_snapshot(&map) => {
            let origin = Origin::new(source.clone(), location);
            let object = match map.get("cluster_id").and_then(Value::as_str) {
                Some(cluster_id) => format!("snapshot of cluster {cluster_id:?}"),
                None => "snapshot".to_string(),
            };
            let snapshot: ClusterSnapshot = typed(map, &origin, object)?;
            objects.push(KubeObject::Snapshot { origin, snapshot: Box::new(snapshot) });
            Ok(())
        }
        other => read_item(other, source, location, objects),
    }
}

fn is_snapshot(map: &Map<String, Value>) -> bool {
    map.contains_key("cluster_id") && map.contains_key("nodes") && !map.contains_key("kind")
}

/// A `List`, `NodeList`, …, or a kind-less object holding `items` and no name.
fn is_list(map: &Map<String, Value>) -> bool {
    match map.get("kind") {
        Some(Value::String(kind)) => kind.ends_with("List"),
        Some(_) => false,
        None => map.get("items").is_some_and(Value::is_array) && object_name(map).is_none(),
    }
}

fn object_name(map: &Map<String, Value>) -> Option<&str> {
    map.get("metadata")?.get("name")?.as_str()
}

fn object_namespace(map: &Map<String, Value>) -> Option<&str> {
    map.get("metadata")?.get("namespace")?.as_str().filter(|namespace| !namespace.is_empty())
}

/// The annotation `kubectl apply` keeps the applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The object as its [`LAST_APPLIED`] annotation (`last_applied`) says its
/// last `kubectl apply` wrote it, when that used a pre-release API version
/// (`batch/v1beta1`, ...: the only versions Kubernetes removes). The API
/// server serves the object in its preferred version; only the annotation
/// keeps the one applied.
pub fn last_applied_prerelease(last_applied: &str) -> Option<AppliedObject> {
    let applied: Value = serde_json::from_str(last_applied).ok()?;
    let api_version = applied.get("apiVersion")?.as_str()?;
    if !AppliedObject::is_prerelease(api_version) {
        return None;
    }
    Some(AppliedObject {
        api_version: api_version.to_string(),
        kind: applied.get("kind")?.as_str()?.to_string(),
        name: applied.get("metadata")?.get("name")?.as_str()?.to_string(),
    })
}

fn read_item(
    item: Value,
    source: &Arc<str>,
    location: &str,
    objects: &mut Vec<KubeObject>,
) -> Result<(), CollectError> {
    let not_kubernetes =
        |reason: String| CollectError::NotKubernetes { at: Origin::new(source.clone(), location).to_string(), reason };
    let mut map = match item {
        Value::Object(map) => map,
        other => {
            return Err(not_kubernetes(format!("expected an object, found {}", describe(&other))));
        }
    };
    if is_list(&map) {
        let items = match map.remove("items") {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => Vec::new(),
            Some(other) => {
                return Err(not_kubernetes(format!("items is {}, expected a list", describe(&other))));
            }
        };
        for (item_idx, item) in items.into_iter().enumerate() {
            let item_location = join_location(location, &format!("items[{item_idx}]"));
            read_item(item, source, &item_location, objects)?;
        }
        return Ok(());
    }
    let kind = match map.get("kind") {
        Some(Value::String(kind)) => Some(kind.clone()),
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(not_kubernetes(format!("kind is {}, expected a string", describe(other))));
        }
    };
    let api_version = match map.get("apiVersion") {
        Some(Value::String(api_version)) => Some(api_version.clone()),
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(not_kubernetes(format!("apiVersion is {}, expected a string", describe(other))));
        }
    };
    match map.get("metadata") {
        Some(Value::Object(_)) => {}
        None if kind.is_some() => {}
        None => {
            return Err(not_kubernetes("it has neither kind nor metadata".to_string()));
        }
        Some(other) => {
            return Err(not_kubernetes(format!("metadata is {}, expected an object", describe(other))));
        }
    }
    let kind = kind.unwrap_or_else(|| infer_kind(&map).to_string());
    let core = matches!(api_version.as_deref(), None | Some("v1"));
    let storage = matches!(api_version.as_deref(), None | Some("storage.k8s.io/v1"));
    let rbac = matches!(api_version.as_deref(), None | Some("rbac.authorization.k8s.io/v1"));
    let networking = matches!(api_version.as_deref(), None | Some("networking.k8s.io/v1"));
    let node = matches!(api_version.as_deref(), None | Some("node.k8s.io/v1"));
    let admission = api_version.as_deref() == Some("admissionregistration.k8s.io/v1");
    let gatekeeper = api_version.as_deref().is_some_and(|v| {
        v.split_once('/').is_some_and(|(group, _)| group == crate::rbac::GATEKEEPER_CONSTRAINTS_GROUP)
    });
    let policy = matches!(api_version.as_deref(), None | Some("policy/v1") | Some("policy/v1beta1"));
    let apps = match api_version.as_deref() {
        None => true,
        Some(api_version) => api_version.starts_with("apps/") || api_version.starts_with("extensions/"),
    };
    let origin = Origin::new(source.clone(), location);
    let name = object_name(&map).map(str::to_string);
    let namespace = object_namespace(&map).map(str::to_string);
    let object_ref = |kind: &str| match (&name, &namespace) {
        (Some(name), Some(namespace)) => format!("{kind} \"{namespace}/{name}\""),
        (Some(name), None) => format!("{kind} {name:?}"),
        (None, _) if origin.location.is_empty() => format!("{kind} without a name"),
        (None, _) => format!("{kind} at {}", origin.location),
    };
    // Checked (kind and apiVersion) and not needed by the typed conversion,
    // which would reject the older apiVersions of DaemonSet.
    map.remove("kind");
    map.remove("apiVersion");
    if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    let isolation =
        |object: IsolationObject| KubeObject::Isolation { object: Box::new(object), origin: origin.clone() };
    let object = match kind.as_str() {
        "Node" if core => {
            if let Some(Value::Object(status)) = map.get_mut("status") {
                status.remove("images");
            }
            let object = object_ref("node");
            KubeObject::Node { node: Box::new(typed(map, &origin, object)?), origin }
        }
        "Namespace" if core => {
            let object = object_ref("namespace");
            KubeObject::Namespace { namespace: Box::new(typed(map, &origin, object)?), origin }
        }
        "Pod" if core => {
            let object = object_ref("pod");
            KubeObject::Pod { pod: Box::new(typed(map, &origin, object)?), origin }
        }
        "DaemonSet" if apps => {
            let object = object_ref("daemonset");
            KubeObject::DaemonSet { daemon_set: Box::new(typed(map, &origin, object)?), origin }
        }
        "PersistentVolumeClaim" if core => {
            let object = object_ref("persistentvolumeclaim");
            KubeObject::PersistentVolumeClaim { claim: Box::new(typed(map, &origin, object)?), origin }
        }
        "PersistentVolume" if core => {
            let object = object_ref("persistentvolume");
            KubeObject::PersistentVolume { volume: Box::new(typed(map, &origin, object)?), origin }
        }
        "StorageClass" if storage => {
            let object = object_ref("storageclass");
            KubeObject::StorageClass { class: Box::new(typed(map, &origin, object)?), origin }
        }
        "PodDisruptionBudget" if policy => {
            let last_applied = map
                .get("metadata")
                .and_then(|metadata| metadata.get("annotations")?.get(LAST_APPLIED)?.as_str())
                .and_then(last_applied_prerelease);
            let applied_prerelease = namespace.clone().zip(last_applied);
            let object = object_ref("poddisruptionbudget");
            KubeObject::DisruptionBudget { budget: Box::new(typed(map, &origin, object)?), origin, applied_prerelease }
        }
        "ClusterRole" if rbac => {
            isolation(IsolationObject::ClusterRole(typed(map, &origin, object_ref("clusterrole"))?))
        }
        "ClusterRoleBinding" if rbac => {
            isolation(IsolationObject::ClusterRoleBinding(typed(map, &origin, object_ref("clusterrolebinding"))?))
        }
        "Role" if rbac => isolation(IsolationObject::Role(typed(map, &origin, object_ref("role"))?)),
        "RoleBinding" if rbac => {
            isolation(IsolationObject::RoleBinding(typed(map, &origin, object_ref("rolebinding"))?))
        }
        "NetworkPolicy" if networking => {
            isolation(IsolationObject::NetworkPolicy(typed(map, &origin, object_ref("networkpolicy"))?))
        }
        "RuntimeClass" if node => {
            isolation(IsolationObject::RuntimeClass(typed(map, &origin, object_ref("runtimeclass"))?))
        }
        "ValidatingAdmissionPolicy" if admission => {
            let object = object_ref("validatingadmissionpolicy");
            isolation(IsolationObject::ValidatingAdmissionPolicy(typed(map, &origin, object)?))
        }
        "ValidatingAdmissionPolicyBinding" if admission => {
            let object = object_ref("validatingadmissionpolicybinding");
            isolation(IsolationObject::ValidatingAdmissionPolicyBinding(typed(map, &origin, object)?))
        }
        _ if gatekeeper => {
            let mut constraint: crate::rbac::GatekeeperConstraint =
                typed(map, &origin, object_ref(&kind.to_ascii_lowercase()))?;
            constraint.kind = kind.clone();
            isolation(IsolationObject::GatekeeperConstraint(constraint))
        }
        _ => {
            let resource_version = map
                .get("metadata")
                .and_then(|metadata| metadata.get("resourceVersion"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let kind = match api_version {
                Some(api_version) if api_version.contains('/') => format!("{kind}.{api_version}"),
                _ => kind,
            };
            let last_applied = map
                .get("metadata")
                .and_then(|metadata| metadata.get("annotations")?.get(LAST_APPLIED)?.as_str())
                .and_then(last_applied_prerelease);
            let applied_prerelease = namespace.zip(last_applied);
            KubeObject::Skipped { origin, kind, name: name.unwrap_or_default(), resource_version, applied_prerelease }
        }
    };
    objects.push(object);
    Ok(())
}

/// Converts with the path of a malformed field in the error.
fn typed<T: DeserializeOwned>(map: Map<String, Value>, origin: &Origin, object: String) -> Result<T, CollectError> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|error| CollectError::Field {
        file: origin.source.to_string(),
        object,
        field: error.path().to_string(),
        message: error.inner().to_string(),
    })
}

/// The kind of an item that carries no `kind` (sonobuoy and insights-operator
/// dumps strip it), from its shape; the first rule that matches wins:
///
/// 1. `status.nodeInfo` → `Node`;
/// 2. `spec.containers` → `Pod`;
/// 3. `spec.template` and `spec.selector`, and none of the fields Deployments,
///    ReplicaSets, StatefulSets and Jobs carry (`spec.replicas`, `spec.strategy`,
///    `spec.serviceName`, `spec.parallelism`, `spec.completions`, `spec.backoffLimit`)
///    → `DaemonSet`;
/// 4. no `metadata.namespace`, no top-level field but `metadata`, `spec`,
///    `status`, `apiVersion`; `spec` (if any) holds only `finalizers`; `status`
///    (if any) holds only `phase` (`Active` or `Terminating`) and `conditions`
///    → `Namespace`;
/// 5. anything else → `unknown` (skipped).
pub fn infer_kind(map: &Map<String, Value>) -> &'static str {
    let spec = map.get("spec").and_then(Value::as_object);
    let status = map.get("status").and_then(Value::as_object);
    let spec_has = |field: &str| spec.is_some_and(|spec| spec.contains_key(field));
    if status.is_some_and(|status| status.contains_key("nodeInfo")) {
        return "Node";
    }
    if spec_has("containers") {
        return "Pod";
    }
    const NOT_DAEMON_SET: [&str; 6] =
        ["replicas", "strategy", "serviceName", "parallelism", "completions", "backoffLimit"];
    if spec_has("template") && spec_has("selector") && !NOT_DAEMON_SET.iter().any(|field| spec_has(field)) {
        return "DaemonSet";
    }
    let only_namespace_fields =
        map.keys().all(|key| matches!(key.as_str(), "metadata" | "spec" | "status" | "apiVersion"));
    let spec_ok = match map.get("spec") {
        None | Some(Value::Null) => true,
        Some(Value::Object(spec)) => spec.keys().all(|key| key == "finalizers"),
        Some(_) => false,
    };
    let status_ok = match map.get("status") {
        None | Some(Value::Null) => true,
        Some(Value::Object(status)) => {
            status.keys().all(|key| key == "phase" || key == "conditions")
                && match status.get("phase") {
                    None => true,
                    Some(phase) => matches!(phase.as_str(), Some("Active" | "Terminating")),
                }
        }
        Some(_) => false,
    };
    if only_namespace_fields && spec_ok && status_ok && object_namespace(map).is_none() {
        return "Namespace";
    }
    "unknown"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(objects: &[KubeObject]) -> Vec<&str> {
        objects.iter().map(KubeObject::kind).collect()
    }

    fn infer(value: Value) -> &'static str {
        infer_kind(value.as_object().unwrap())
    }

    #[test]
    fn infers_kinds_from_shape() {
        assert_eq!(infer(json!({"metadata": {"name": "n"}, "status": {"nodeInfo": {}}})), "Node");
        assert_eq!(infer(json!({"metadata": {"name": "p", "namespace": "a"}, "spec": {"containers": []}})), "Pod");
        assert_eq!(
            infer(json!({"metadata": {"name": "d"}, "spec": {"template": {}, "selector": {}, "updateStrategy": {}}})),
            "DaemonSet"
        );
        // A Deployment carries replicas and strategy: not a DaemonSet.
        assert_eq!(
            infer(json!({"metadata": {"name": "d"}, "spec": {"template": {}, "selector": {}, "replicas": 2}})),
            "unknown"
        );
        assert_eq!(infer(json!({"metadata": {"name": "ns"}})), "Namespace");
        assert_eq!(
            infer(
                json!({"metadata": {"name": "ns"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
            ),
            "Namespace"
        );
        // A PersistentVolumeClaim has a phase, but not a namespace's.
        assert_eq!(infer(json!({"metadata": {"name": "pvc"}, "status": {"phase": "Bound"}})), "unknown");
        // A metadata-only namespaced object (a ServiceAccount) is not a Namespace.
        assert_eq!(infer(json!({"metadata": {"name": "sa", "namespace": "a"}})), "unknown");
        assert_eq!(infer(json!({"metadata": {"name": "cm"}, "data": {}})), "unknown");
    }

    #[test]
    fn a_bare_array_of_kindless_items_parses() {
        let text = r#"[{"metadata": {"name": "n1", "resourceVersion": "7"}, "status": {"nodeInfo": {"kubeletVersion": "v1.30.1"}}},
                       {"metadata": {"name": "default"}, "status": {"phase": "Active"}}]"#;
        let objects = parse_documents(text, "dump.json").unwrap();
        assert_eq!(kinds(&objects), ["Node", "Namespace"]);
        assert_eq!(objects[0].origin().to_string(), "dump.json, [0]");
        assert_eq!(objects[0].resource_version(), Some(7));
    }

    #[test]
    fn yaml_multi_document_with_a_list_and_skipped_kinds() {
        let text = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web-0, namespace: shop}
  spec:
    containers:
    - name: web
      resources: {requests: {cpu: 250m}}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop, resourceVersion: \"99\"}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: calico-node, namespace: kube-system}
spec:
  selector: {}
  template: {}
";
        let objects = parse_documents(text, "all.yaml").unwrap();
        assert_eq!(kinds(&objects), ["Namespace", "Pod", "Service", "DaemonSet"]);
        assert_eq!(objects[1].origin().to_string(), "all.yaml, document 2, items[0]");
        assert_eq!(objects[2].resource_version(), Some(99));
        assert_eq!(count_kinds(&objects).get("Service"), Some(&1));
    }

    #[test]
    fn concatenated_json_objects_and_typed_lists() {
        let text = r#"{"kind": "PodList", "apiVersion": "v1", "items": [{"metadata": {"name": "a", "namespace": "x"}, "spec": {"containers": []}}]}
{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "x"}}"#;
        let objects = parse_documents(text, "stream.json").unwrap();
        assert_eq!(kinds(&objects), ["Pod", "Namespace"]);
        assert_eq!(objects[0].origin().location, "document 1, items[0]");
    }

    #[test]
    fn api_versions_decide_between_known_and_skipped() {
        let text = r#"[{"kind": "DaemonSet", "apiVersion": "extensions/v1beta1", "metadata": {"name": "old"}, "spec": {}},
                       {"kind": "Node", "apiVersion": "cluster.example.com/v1", "metadata": {"name": "not-a-node"}}]"#;
        let objects = parse_documents(text, "x.json").unwrap();
        assert_eq!(kinds(&objects), ["DaemonSet", "Node.cluster.example.com/v1"]);
    }

    #[test]
    fn yaml_flow_mapping_that_looks_like_json() {
        let objects = parse_documents("{kind: Namespace, apiVersion: v1, metadata: {name: a}}", "flow.yaml").unwrap();
        assert_eq!(kinds(&objects), ["Namespace"]);
    }

    #[test]
    fn not_json_is_an_error_naming_the_source_and_position() {
        let error = parse_documents("{\"kind\": \"Node\",\n \"metadata\": ", "broken.json").unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("broken.json: not valid json: "), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn text_that_is_no_kubernetes_object_is_an_error_naming_the_item() {
        let error = parse_documents("this is not json", "notes.txt").unwrap_err();
        assert_eq!(error.to_string(), "notes.txt: not a kubernetes object: expected an object, found a string");
        let error =
            parse_documents(r#"{"kind": "List", "items": [{"metadata": {"name": "a"}}, 5]}"#, "l.json").unwrap_err();
        assert_eq!(error.to_string(), "l.json, items[1]: not a kubernetes object: expected an object, found a number");
        let error = parse_documents(r#"[{"name": "a", "zone": "b"}]"#, "a.json").unwrap_err();
        assert_eq!(error.to_string(), "a.json, [0]: not a kubernetes object: it has neither kind nor metadata");
    }

    #[test]
    fn invalid_yaml_is_a_one_line_error() {
        let error = parse_documents("kind: Node\nmetadata:\n  name: [a\n", "bad.yaml").unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("bad.yaml: not valid yaml: "), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn empty_input_is_an_error() {
        assert_eq!(
            parse_documents(" \n", "empty.json").unwrap_err(),
            CollectError::Empty { file: "empty.json".into() }
        );
        assert!(matches!(parse_documents("---\n", "e.yaml"), Err(CollectError::Empty { .. })));
    }

    #[test]
    fn wrong_types_name_the_object_and_the_field_path() {
        let text = r#"{"kind": "Node", "apiVersion": "v1", "metadata": {"name": "w1", "labels": {"zone": 5}}}"#;
        let message = parse_documents(text, "n.json").unwrap_err().to_string();
        assert!(
            message.starts_with("n.json: node \"w1\": metadata.labels.zone: invalid type: integer `5`"),
            "{message}"
        );

        let text = r#"{"kind": "PodList", "items": [{"kind": "Pod", "metadata": {"name": "p", "namespace": "s"},
                      "spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": []}}]}}]}"#;
        let message = parse_documents(text, "p.json").unwrap_err().to_string();
        assert!(
            message.starts_with("p.json: pod \"s/p\": spec.containers[1].resources.requests: invalid type: sequence"),
            "{message}"
        );

        let text = r#"[{"metadata": {"labels": []}, "status": {"nodeInfo": {}}}]"#;
        let message = parse_documents(text, "q.json").unwrap_err().to_string();
        assert!(message.starts_with("q.json: node at [0]: metadata.labels: invalid type"), "{message}");
    }

    #[test]
    fn kplan_snapshot_is_recognised() {
        let snapshot = ClusterSnapshot { cluster_id: "c1".into(), generation: 12, ..ClusterSnapshot::default() };
        let text = serde_json::to_string_pretty(&snapshot).unwrap();
        let objects = parse_documents(&text, "snap.json").unwrap();
        match &objects[..] {
            [KubeObject::Snapshot { snapshot: parsed, .. }] => assert_eq!(**parsed, snapshot),
            other => panic!("expected one snapshot, got {other:?}"),
        }
        let text = text.replacen("\"generation\"", "\"generatoin\": 1, \"generation\"", 1);
        let message = parse_documents(&text, "snap.json").unwrap_err().to_string();
        assert!(message.starts_with("snap.json: snapshot of cluster \"c1\": generatoin: unknown field"), "{message}");
    }

    #[test]
    fn managed_fields_and_images_are_dropped() {
        let text = r#"{"kind": "Node", "apiVersion": "v1",
                       "metadata": {"name": "n", "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:x": {}}}]},
                       "status": {"images": [{"names": ["a"], "sizeBytes": 1}], "nodeInfo": {}}}"#;
        let objects = parse_documents(text, "n.json").unwrap();
        let KubeObject::Node { node, .. } = &objects[0] else { panic!("not a node") };
        assert!(node.metadata.managed_fields.is_none());
        assert!(node.status.as_ref().unwrap().images.is_none());
    }
}
