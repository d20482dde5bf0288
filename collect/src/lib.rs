//! kplan-collect: Kubernetes objects in, a [`ClusterSnapshot`] out, by the
//! label contract (README, "The label contract"). Pure: no IO, no clock, no logging; the same
//! objects and options give the same snapshot.
//!
//! Two ways in:
//! - files (`kplan import`): [`parse_documents`] on each file's text, then
//!   [`collect`] on all the objects;
//! - the agent's watcher: [`node_from_k8s`], [`namespace_from_k8s`] and
//!   [`pod_demand`] per object as events arrive, then [`build_snapshot`] from
//!   what it keeps (nodes, namespaces, per-namespace sums, system workload names).
//!
//! Decisions where the contract is silent:
//! - a pod whose namespace is not in the input still counts: its namespace gets
//!   an entry with no labels (cluster default security tier, bronze), so an
//!   export of pods without namespaces loses no demand;
//! - the same node, namespace or pod twice in the input is an error naming
//!   both places (one cluster's export read twice, or two clusters mixed);
//! - a namespace with neither a security-tier label nor a cluster default is
//!   an error, like a node without datacenter or zone: an empty tier would
//!   let the planner merge production with development;
//! - a label set to an empty string counts as absent, except the control-plane
//!   role labels, which are empty by convention;
//! - input holding no node, namespace or pod at all is an error;
//! - a kplan snapshot file must be the only input; it passes through unchanged
//!   except for the generation given in the options, if any.

mod convert;
mod error;
mod facts;
mod parse;
pub mod pod_security;
pub mod rbac;
pub mod scheduling;
pub mod volumes;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kplan_model::{ClusterFacts, ClusterSnapshot, Resources};
use serde::{Deserialize, Serialize};

pub use convert::{is_terminated, namespace_from_k8s, namespace_from_name, node_from_k8s, pod_demand};
pub use error::CollectError;
pub use facts::{
    CNI_WORKLOADS, DETECTION_NAMESPACES, compare_versions, detect_cni, detect_csi_drivers, is_detection_namespace,
    kubernetes_version, pod_workload_name,
};
pub use parse::{KubeObject, Origin, count_kinds, infer_kind, parse_documents};

/// Every configurable key of the label contract (README, "The label contract"). Each is a
/// chain: the first key present on the object (with a non-empty value) wins.
/// Embedded in the agent's and the CLI's configuration; a missing field takes
/// its default, an unknown one is an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelKeys {
    /// Node labels naming its datacenter.
    /// Default: `kplan.io/datacenter`, `topology.kubernetes.io/region`, `failure-domain.beta.kubernetes.io/region`.
    pub datacenter: Vec<String>,
    /// Node labels naming its firewall zone.
    /// Default: `kplan.io/firewall-zone`, `topology.kubernetes.io/zone`, `failure-domain.beta.kubernetes.io/zone`.
    pub zone: Vec<String>,
    /// Namespace labels naming its security tier. Default: `kplan.io/security-tier`.
    pub security_tier: Vec<String>,
    /// Namespace labels naming its SLA tier (gold, silver, bronze). Default: `kplan.io/sla-tier`.
    pub sla_tier: Vec<String>,
    /// Node labels whose presence (any value) marks a control-plane node.
    /// Default: `node-role.kubernetes.io/control-plane`, `node-role.kubernetes.io/master`.
    pub control_plane: Vec<String>,
}

impl Default for LabelKeys {
    fn default() -> Self {
        let keys = |keys: &[&str]| keys.iter().map(|key| key.to_string()).collect();
        LabelKeys {
            datacenter: keys(&[
                "kplan.io/datacenter",
                "topology.kubernetes.io/region",
                "failure-domain.beta.kubernetes.io/region",
            ]),
            zone: keys(&[
                "kplan.io/firewall-zone",
                "topology.kubernetes.io/zone",
                "failure-domain.beta.kubernetes.io/zone",
            ]),
            security_tier: keys(&["kplan.io/security-tier"]),
            sla_tier: keys(&["kplan.io/sla-tier"]),
            control_plane: keys(&["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"]),
        }
    }
}

/// What the collector needs besides the objects. `None` (or blank) defaults
/// mean "no default": an object that needs one is then an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectOptions {
    pub cluster_id: String,
    /// The snapshot's generation; `None` takes the highest numeric
    /// `metadata.resourceVersion` of the input (see [`collect`]).
    pub generation: Option<u64>,
    /// The cluster's datacenter, for nodes without a datacenter label.
    pub datacenter: Option<String>,
    /// The cluster's firewall zone, for nodes without a zone label.
    pub zone: Option<String>,
    /// The cluster's security tier, for namespaces without a tier label.
    pub security_tier: Option<String>,
    pub label_keys: LabelKeys,
    /// Stored as the snapshot's `collected_at_unix` (the collector reads no clock).
    pub collected_at_unix: i64,
}

/// A grouped pod's labels and workload (`Deployment/web`).
type PodLabels = (BTreeMap<String, String>, String);

/// Turns parsed objects (from any number of files) into one cluster snapshot.
///
/// Nodes and namespaces follow the label contract (see [`node_from_k8s`],
/// [`namespace_from_k8s`]); a namespace's requests are the sum of
/// [`pod_demand`] over its non-terminated pods; DaemonSets and pods in
/// [`DETECTION_NAMESPACES`] name the CNI plugin and CSI drivers.
///
/// Generation: `options.generation`, else the highest numeric
/// `metadata.resourceVersion` of any input object, skipped kinds included.
/// Resource versions are etcd revisions, which only grow, so importing the
/// same export twice gives the same generation and an older export a lower
/// one. No such version and no option is an error.
///
/// Output is deterministic: nodes and namespaces sorted by name.
pub fn collect(
    objects: impl IntoIterator<Item = KubeObject>,
    options: &CollectOptions,
) -> Result<ClusterSnapshot, CollectError> {
    let mut nodes: BTreeMap<String, (kplan_model::Node, Origin)> = BTreeMap::new();
    let mut namespaces: BTreeMap<String, (kplan_model::Namespace, Origin)> = BTreeMap::new();
    let mut pods: HashMap<(String, String), Origin> = HashMap::new();
    let mut demand: BTreeMap<String, Resources> = BTreeMap::new();
    let mut pod_groups: BTreeMap<String, HashMap<kplan_model::scheduling::PodGroup, u64>> = BTreeMap::new();
    // Per namespace: each grouped pod's labels and workload, for the
    // PodDisruptionBudgets' selectors (read after every object is seen).
    let mut pod_labels: BTreeMap<String, Vec<PodLabels>> = BTreeMap::new();
    let mut budgets: BTreeMap<String, Vec<k8s_openapi::api::policy::v1::PodDisruptionBudget>> = BTreeMap::new();
    let mut workloads: BTreeSet<String> = BTreeSet::new();
    let mut volumes = volumes::VolumeIndex::default();
    let mut isolation = rbac::IsolationIndex::default();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut applied: BTreeMap<String, BTreeSet<kplan_model::AppliedObject>> = BTreeMap::new();
    let mut snapshot: Option<(Origin, Box<ClusterSnapshot>)> = None;
    let mut first_kube_object: Option<String> = None;
    let mut generation: Option<u64> = None;

    for object in objects {
        generation = generation.max(object.resource_version());
        if !matches!(object, KubeObject::Snapshot { .. } | KubeObject::Skipped { .. }) && first_kube_object.is_none() {
            first_kube_object = Some(format!("{} from {}", object.kind(), object.origin()));
        }
        match object {
            KubeObject::Node { origin, node } => {
                let node = node_from_k8s(&node, options).map_err(|error| locate(error, &origin))?;
                if let Some((_, first)) = nodes.get(&node.name) {
                    return Err(duplicate("node", &node.name, first, &origin));
                }
                nodes.insert(node.name.clone(), (node, origin));
            }
            KubeObject::Namespace { origin, namespace } => {
                let namespace = namespace_from_k8s(&namespace, options).map_err(|error| locate(error, &origin))?;
                if let Some((_, first)) = namespaces.get(&namespace.name) {
                    return Err(duplicate("namespace", &namespace.name, first, &origin));
                }
                namespaces.insert(namespace.name.clone(), (namespace, origin));
            }
            KubeObject::Pod { origin, pod } => {
                let pod_demand = pod_demand(&pod).map_err(|error| locate(error, &origin))?;
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                if is_detection_namespace(&namespace) && !is_terminated(&pod) {
                    workloads.insert(pod_workload_name(&pod));
                }
                let key = (namespace, name);
                if let Some(first) = pods.get(&key) {
                    return Err(duplicate("pod", &format!("{}/{}", key.0, key.1), first, &origin));
                }
                pods.insert(key.clone(), origin.clone());
                if let Some((namespace, requests)) = pod_demand {
                    let object = format!("pod \"{namespace}/{}\"", key.1);
                    if let Some(group) =
                        scheduling::pod_group(&pod, requests, &object).map_err(|error| locate(error, &origin))?
                    {
                        *pod_groups.entry(namespace.clone()).or_default().entry(group).or_insert(0) += 1;
                        if let Some(workload) = scheduling::pod_workload(&pod) {
                            let labels = pod.metadata.labels.clone().unwrap_or_default();
                            pod_labels.entry(namespace.clone()).or_default().push((labels, workload));
                        }
                    }
                    let sum = demand.entry(namespace).or_insert(Resources::ZERO);
                    *sum = sum.saturating_add(requests);
                }
            }
            KubeObject::DaemonSet { daemon_set, .. } => {
                let namespace = daemon_set.metadata.namespace.as_deref().unwrap_or_default();
                let annotations = daemon_set.metadata.annotations.as_ref();
                if let Some(object) = annotations
                    .and_then(|a| a.get(parse::LAST_APPLIED))
                    .and_then(|text| parse::last_applied_prerelease(text))
                {
                    applied.entry(namespace.to_string()).or_default().insert(object);
                }
                if is_detection_namespace(namespace)
                    && let Some(name) = &daemon_set.metadata.name
                {
                    workloads.insert(name.clone());
                }
            }
            KubeObject::PersistentVolumeClaim { origin, claim } => {
                let object = format!(
                    "persistentvolumeclaim \"{}/{}\"",
                    claim.metadata.namespace.as_deref().unwrap_or_default(),
                    claim.metadata.name.as_deref().unwrap_or_default()
                );
                volumes.add_claim(&claim, &object).map_err(|error| locate(error, &origin))?;
            }
            KubeObject::PersistentVolume { origin, volume } => {
                let object = format!("persistentvolume {:?}", volume.metadata.name.as_deref().unwrap_or_default());
                volumes.add_volume(&volume, &object).map_err(|error| locate(error, &origin))?;
            }
            KubeObject::StorageClass { class, .. } => volumes.add_class(&class),
            KubeObject::DisruptionBudget { budget, applied_prerelease, .. } => {
                if let Some((namespace, object)) = applied_prerelease {
                    applied.entry(namespace).or_default().insert(object);
                }
                let namespace = budget.metadata.namespace.clone().unwrap_or_default();
                budgets.entry(namespace).or_default().push(*budget);
            }
            KubeObject::Isolation { origin, object } => isolation.add(*object, &origin)?,
            KubeObject::Skipped { kind, applied_prerelease, .. } => {
                *skipped.entry(kind).or_insert(0) += 1;
                if let Some((namespace, object)) = applied_prerelease {
                    applied.entry(namespace).or_default().insert(object);
                }
            }
            KubeObject::Snapshot { origin, snapshot: found } => {
                if let Some((first, _)) = &snapshot {
                    return Err(CollectError::SnapshotMixed {
                        at: origin.to_string(),
                        other: format!("another snapshot from {first}"),
                    });
                }
                snapshot = Some((origin, found));
            }
        }
    }

    if let Some((origin, snapshot)) = snapshot {
        return pass_through(origin, *snapshot, first_kube_object, options);
    }
    if nodes.is_empty() && namespaces.is_empty() && pods.is_empty() {
        let skipped = skipped.iter().map(|(kind, n)| format!("{n} {kind}")).collect::<Vec<_>>().join(", ");
        return Err(CollectError::NothingToCollect { skipped });
    }
    let generation = options.generation.or(generation).ok_or(CollectError::NoGeneration)?;
    let mut snapshot = build_snapshot(
        nodes.into_values().map(|(node, _)| node),
        namespaces.into_values().map(|(namespace, _)| namespace),
        &demand,
        workloads.iter().map(String::as_str),
        generation,
        options,
    )?;
    for namespace in &mut snapshot.namespaces {
        if let Some(objects) = applied.remove(&namespace.name) {
            namespace.applied_prerelease = objects.into_iter().collect();
        }
        if let Some(counts) = pod_groups.get(&namespace.name) {
            namespace.pod_groups = scheduling::counted_groups(counts.iter().map(|(group, n)| (group, *n)));
            volumes.resolve_groups(&namespace.name, &mut namespace.pod_groups);
        }
        if let Some(found) = budgets.get(&namespace.name) {
            let pods = pod_labels.get(&namespace.name).map(Vec::as_slice).unwrap_or_default();
            namespace.disruption_budgets = found
                .iter()
                .map(|budget| scheduling::disruption_budget(budget, pods.iter().map(|(l, w)| (l, w.as_str()))))
                .collect();
            namespace.disruption_budgets.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
    snapshot.isolation = isolation.finish();
    Ok(snapshot)
}

/// Names the file of an error from the per-object conversions, and the
/// object's place in it when the object has no name.
fn locate(error: CollectError, origin: &Origin) -> CollectError {
    match error.in_file(&origin.source) {
        CollectError::Field { file, object, field, message }
            if !origin.location.is_empty() && object.ends_with(" without a name") =>
        {
            let kind = object.trim_end_matches(" without a name");
            CollectError::Field { file, object: format!("{kind} at {}", origin.location), field, message }
        }
        other => other,
    }
}

fn duplicate(kind: &'static str, name: &str, first: &Origin, second: &Origin) -> CollectError {
    CollectError::Duplicate { kind, name: name.to_string(), first: first.to_string(), second: second.to_string() }
}

fn pass_through(
    origin: Origin,
    mut snapshot: ClusterSnapshot,
    other: Option<String>,
    options: &CollectOptions,
) -> Result<ClusterSnapshot, CollectError> {
    if let Some(other) = other {
        return Err(CollectError::SnapshotMixed { at: origin.to_string(), other });
    }
    if !options.cluster_id.is_empty() && options.cluster_id != snapshot.cluster_id {
        return Err(CollectError::ClusterMismatch {
            at: origin.to_string(),
            found: snapshot.cluster_id,
            expected: options.cluster_id.clone(),
        });
    }
    if let Some(generation) = options.generation {
        snapshot.generation = generation;
    }
    Ok(snapshot)
}

/// Assembles a snapshot from parts already converted: nodes and namespaces
/// (from [`node_from_k8s`], [`namespace_from_k8s`]; requests are overwritten),
/// per-namespace demand (sums of [`pod_demand`]; a namespace that has demand
/// but no entry gets one, see [`namespace_from_name`]), and the names of the
/// DaemonSets and pod workloads seen in [`DETECTION_NAMESPACES`].
/// Sorts nodes and namespaces by name; fills [`ClusterFacts`] from the options.
pub fn build_snapshot<'a>(
    nodes: impl IntoIterator<Item = kplan_model::Node>,
    namespaces: impl IntoIterator<Item = kplan_model::Namespace>,
    demand: &BTreeMap<String, Resources>,
    system_workloads: impl IntoIterator<Item = &'a str>,
    generation: u64,
    options: &CollectOptions,
) -> Result<ClusterSnapshot, CollectError> {
    if options.cluster_id.trim().is_empty() {
        return Err(CollectError::EmptyClusterId);
    }
    let mut nodes: Vec<kplan_model::Node> = nodes.into_iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut by_name: BTreeMap<String, kplan_model::Namespace> =
        namespaces.into_iter().map(|namespace| (namespace.name.clone(), namespace)).collect();
    for name in demand.keys() {
        if !by_name.contains_key(name) {
            by_name.insert(name.clone(), namespace_from_name(name, options)?);
        }
    }
    let namespaces = by_name
        .into_values()
        .map(|namespace| kplan_model::Namespace {
            requests: demand.get(&namespace.name).copied().unwrap_or(Resources::ZERO),
            ..namespace
        })
        .collect();
    let workloads: Vec<&str> = system_workloads.into_iter().collect();
    let trimmed = |value: &Option<String>| value.as_deref().unwrap_or_default().trim().to_string();
    let facts = ClusterFacts {
        datacenter: trimmed(&options.datacenter),
        zone: trimmed(&options.zone),
        security_tier: trimmed(&options.security_tier),
        kubernetes_version: kubernetes_version(&nodes),
        cni: detect_cni(workloads.iter().copied()),
        csi_drivers: detect_csi_drivers(workloads.iter().copied()),
    };
    Ok(ClusterSnapshot {
        cluster_id: options.cluster_id.clone(),
        generation,
        collected_at_unix: options.collected_at_unix,
        facts,
        nodes,
        namespaces,
        isolation: Default::default(),
    })
}
