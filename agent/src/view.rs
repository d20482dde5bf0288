//! The agent's view of its cluster, kept up to date object by object from
//! watch events. Pure: no IO, no clock, no logging.
//!
//! What it keeps, and what it does not:
//! - per node and per namespace, the converted inventory entry (or the
//!   conversion's error), by the label contract ([`node_from_k8s`],
//!   [`namespace_from_k8s`]);
//! - per pod only its key (`namespace/name`) and its contribution to its
//!   namespace's demand ([`pod_demand`]); for pods in the
//!   [detection namespaces](crate::collect::DETECTION_NAMESPACES) also its
//!   workload name. The per-namespace sums are updated incrementally: an event
//!   subtracts the pod's old contribution and adds its new one. Whole Pod
//!   objects are never kept;
//! - the names of the DaemonSets in the detection namespaces;
//! - the cluster's RBAC objects, NetworkPolicies and RuntimeClasses, each
//!   converted at once to what the snapshot carries
//!   ([`kplan_model::isolation`]); Secrets are never watched;
//! - the cluster's PersistentVolumeClaims, PersistentVolumes and
//!   StorageClasses, reduced to their name (and namespace) and their `spec`
//!   and `status` (labels, annotations and `managedFields` dropped). They
//!   are few, and the pods' claims are resolved through them at every
//!   [`snapshot`](ClusterView::snapshot) (a
//!   [`VolumeIndex`](crate::collect::volumes::VolumeIndex) built from them),
//!   so a claim bound or a volume created after its pods is read right.
//!   Pods keep only their claims' names.
//!
//! Relists: [`begin_list`](ClusterView::begin_list) starts an epoch, every listed
//! object is stamped with it, and [`end_list`](ClusterView::end_list) drops what
//! the list did not contain (deleted while the watch was down). No second
//! copy of the state is built during a relist.
//!
//! Every update says whether something that matters for the snapshot changed
//! (a pod's status heartbeat does not; its requests or phase do), so the
//! reporter wakes only for real changes.
//!
//! The volume kinds are [optional](Kind::is_optional): an API server that
//! refuses to list one ([`list_refused`](ClusterView::list_refused)) does not
//! hold the snapshot back; it is reported without that kind (the pods'
//! claims keep what the other kinds tell of them, at worst their names)
//! until a list succeeds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kplan_model::isolation::IsolationInventory;
use kplan_model::scheduling::PodGroup;
use kplan_model::{ClusterSnapshot, Resources};

use crate::collect::rbac::{IsolationObject, add_object, sorted};
use crate::collect::scheduling::{counted_groups, disruption_budget, pod_group};
use crate::collect::volumes::VolumeIndex;
use crate::collect::{
    CollectError, CollectOptions, build_snapshot, is_detection_namespace, namespace_from_k8s, node_from_k8s,
    pod_demand, pod_workload_name,
};

/// The kinds of object the agent watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Nodes,
    Namespaces,
    Pods,
    DaemonSets,
    PersistentVolumeClaims,
    PersistentVolumes,
    StorageClasses,
    ClusterRoles,
    ClusterRoleBindings,
    Roles,
    RoleBindings,
    NetworkPolicies,
    RuntimeClasses,
    DisruptionBudgets,
    ValidatingAdmissionPolicies,
    ValidatingAdmissionPolicyBindings,
    /// Gatekeeper's constraints, every kind its ConstraintTemplates define
    /// (listed together by [`crate::watch`]'s poll, not watched).
    GatekeeperConstraints,
}

const N_KINDS: usize = 17;

impl Kind {
    pub const ALL: [Kind; N_KINDS] = [
        Kind::Nodes,
        Kind::Namespaces,
        Kind::Pods,
        Kind::DaemonSets,
        Kind::PersistentVolumeClaims,
        Kind::PersistentVolumes,
        Kind::StorageClasses,
        Kind::ClusterRoles,
        Kind::ClusterRoleBindings,
        Kind::Roles,
        Kind::RoleBindings,
        Kind::NetworkPolicies,
        Kind::RuntimeClasses,
        Kind::DisruptionBudgets,
        Kind::ValidatingAdmissionPolicies,
        Kind::ValidatingAdmissionPolicyBindings,
        Kind::GatekeeperConstraints,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Nodes => "nodes",
            Kind::Namespaces => "namespaces",
            Kind::Pods => "pods",
            Kind::DaemonSets => "daemonsets",
            Kind::PersistentVolumeClaims => "persistentvolumeclaims",
            Kind::PersistentVolumes => "persistentvolumes",
            Kind::StorageClasses => "storageclasses",
            Kind::ClusterRoles => "clusterroles",
            Kind::ClusterRoleBindings => "clusterrolebindings",
            Kind::Roles => "roles",
            Kind::RoleBindings => "rolebindings",
            Kind::NetworkPolicies => "networkpolicies",
            Kind::RuntimeClasses => "runtimeclasses",
            Kind::DisruptionBudgets => "poddisruptionbudgets",
            Kind::ValidatingAdmissionPolicies => "validatingadmissionpolicies",
            Kind::ValidatingAdmissionPolicyBindings => "validatingadmissionpolicybindings",
            Kind::GatekeeperConstraints => "constraints.gatekeeper.sh",
        }
    }

    /// Whether a snapshot can be made without this kind: the volume kinds,
    /// which complete the pods' claims (a ClusterRole from before issue 17
    /// does not grant them), and the isolation kinds (RBAC, NetworkPolicies,
    /// RuntimeClasses; not granted before issue 14). Without them a snapshot
    /// still carries all capacity and demand; it only knows less of the pods'
    /// volumes, or nothing of the cluster's tenant isolation.
    pub fn is_optional(self) -> bool {
        matches!(
            self,
            Kind::PersistentVolumeClaims | Kind::PersistentVolumes | Kind::StorageClasses | Kind::DisruptionBudgets
        ) || self.is_isolation()
    }

    /// The kind an RBAC object, NetworkPolicy or RuntimeClass is watched as.
    pub fn of_isolation(object: &IsolationObject) -> Kind {
        match object {
            IsolationObject::ClusterRole(_) => Kind::ClusterRoles,
            IsolationObject::ClusterRoleBinding(_) => Kind::ClusterRoleBindings,
            IsolationObject::Role(_) => Kind::Roles,
            IsolationObject::RoleBinding(_) => Kind::RoleBindings,
            IsolationObject::NetworkPolicy(_) => Kind::NetworkPolicies,
            IsolationObject::RuntimeClass(_) => Kind::RuntimeClasses,
            IsolationObject::ValidatingAdmissionPolicy(_) => Kind::ValidatingAdmissionPolicies,
            IsolationObject::ValidatingAdmissionPolicyBinding(_) => Kind::ValidatingAdmissionPolicyBindings,
            IsolationObject::GatekeeperConstraint(_) => Kind::GatekeeperConstraints,
        }
    }

    /// RBAC, NetworkPolicies, RuntimeClasses and admission policies (issue 14).
    pub fn is_isolation(self) -> bool {
        matches!(
            self,
            Kind::ClusterRoles
                | Kind::ClusterRoleBindings
                | Kind::Roles
                | Kind::RoleBindings
                | Kind::NetworkPolicies
                | Kind::RuntimeClasses
                | Kind::ValidatingAdmissionPolicies
                | Kind::ValidatingAdmissionPolicyBindings
                | Kind::GatekeeperConstraints
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no snapshot can be built right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// Some kinds have not completed their first list yet.
    #[error("waiting for the initial list of {}", kinds_text(.kinds))]
    NotSynced { kinds: Vec<Kind> },
    /// A relist is under way: the view mixes old and new objects of these kinds.
    #[error("relisting {}", kinds_text(.kinds))]
    Listing { kinds: Vec<Kind> },
    /// Objects that break the label contract (a node without zone and no
    /// default zone, say). No snapshot is sent until they are fixed:
    /// a snapshot without them would silently lose capacity or demand.
    #[error("{n_invalid} object(s) cannot be converted: {}{}", .first.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), if *.n_invalid > .first.len() { "; …" } else { "" })]
    InvalidObjects { n_invalid: usize, first: Vec<CollectError> },
    /// The collector refused the parts (e.g. an empty cluster id).
    #[error(transparent)]
    Collect(#[from] CollectError),
}

fn kinds_text(kinds: &[Kind]) -> String {
    kinds.iter().map(|kind| kind.as_str()).collect::<Vec<_>>().join(", ")
}

/// How many invalid objects a [`ViewError::InvalidObjects`] names.
const MAX_ERRORS_SHOWN: usize = 5;

#[derive(Debug, Clone, PartialEq)]
struct Stamped<V> {
    value: V,
    epoch: u32,
}

/// A pod's part of the inventory: what it adds to its namespace's demand, and
/// its workload name when it runs in a detection namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodEntry {
    demand: Resources,
    workload: Option<Box<str>>,
    /// What the pod asks of a node (one replica), shared with every identical
    /// pod of its namespace; `None` for a DaemonSet's pod.
    group: Option<Arc<PodGroup>>,
    /// Its workload's template labels (see [`template_labels`]), shared with
    /// the workload's other pods: what PodDisruptionBudgets select.
    labels: Option<Arc<Labels>>,
}

/// A pod's labels.
type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, Default)]
struct SyncState {
    epoch: u32,
    listing: bool,
    listed_once: bool,
    /// An optional kind whose last list the API server refused (see
    /// [`ClusterView::list_refused`]): it counts as synced, contributes
    /// nothing, and does not hold snapshots back while it is retried.
    refused: bool,
    /// Something that matters changed during the current list.
    changed_while_listing: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub struct ClusterView {
    options: CollectOptions,
    nodes: BTreeMap<String, Stamped<Result<kplan_model::Node, CollectError>>>,
    namespaces: BTreeMap<String, Stamped<Result<kplan_model::Namespace, CollectError>>>,
    /// `namespace/name` → contribution. Terminated pods are not kept.
    pods: HashMap<Box<str>, Stamped<PodEntry>>,
    /// Pods whose requests cannot be read (malformed quantities).
    invalid_pods: BTreeMap<Box<str>, Stamped<CollectError>>,
    /// Sum of the pod entries per namespace; a namespace leaves when its last pod does.
    demand: HashMap<String, Resources>,
    /// Workload name → number of detection-namespace pods of that workload.
    system_pod_workloads: BTreeMap<Box<str>, usize>,
    /// Per namespace, each distinct pod group (one replica) → its pods.
    groups: HashMap<String, HashMap<Arc<PodGroup>, u64>>,
    /// (namespace, name) of the DaemonSets in the detection namespaces.
    daemon_sets: BTreeMap<(String, String), Stamped<()>>,
    /// (namespace, name) → the claim (see [`lean_meta`]), or why its size cannot be read.
    claims: BTreeMap<(String, String), Stamped<Result<PersistentVolumeClaim, CollectError>>>,
    /// Name → the volume (see [`lean_meta`]), or why its size cannot be read.
    volumes: BTreeMap<String, Stamped<Result<PersistentVolume, CollectError>>>,
    /// Name → the storage class (see [`lean_meta`]).
    storage_classes: BTreeMap<String, Stamped<StorageClass>>,
    /// (kind, namespace, name) → the object as the snapshot carries it (an
    /// inventory holding that one object).
    isolation: BTreeMap<(Kind, String, String), Stamped<IsolationInventory>>,
    /// (namespace, workload) → the template labels of its pods and how many
    /// pods carry them (one copy per workload, not per pod).
    workload_labels: HashMap<(String, String), (Arc<Labels>, u64)>,
    /// (namespace, name) → the PodDisruptionBudget (see [`lean_meta`]).
    budgets: BTreeMap<(String, String), Stamped<PodDisruptionBudget>>,
    sync: [SyncState; N_KINDS],
}

/// Sizes of the view, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewCounts {
    pub n_nodes: usize,
    pub n_namespaces: usize,
    pub n_pods: usize,
    pub n_daemon_sets: usize,
    /// PersistentVolumeClaims, PersistentVolumes, StorageClasses and PodDisruptionBudgets.
    pub n_volume_objects: usize,
    /// RBAC objects, NetworkPolicies and RuntimeClasses.
    pub n_isolation_objects: usize,
    pub n_invalid: usize,
}

impl ClusterView {
    /// An empty view. `options` carry the cluster id, the defaults and the
    /// label keys; their `generation` and `collected_at_unix` are ignored.
    pub fn new(options: CollectOptions) -> Self {
        ClusterView {
            options,
            nodes: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            pods: HashMap::new(),
            invalid_pods: BTreeMap::new(),
            demand: HashMap::new(),
            groups: HashMap::new(),
            system_pod_workloads: BTreeMap::new(),
            daemon_sets: BTreeMap::new(),
            claims: BTreeMap::new(),
            volumes: BTreeMap::new(),
            storage_classes: BTreeMap::new(),
            isolation: BTreeMap::new(),
            workload_labels: HashMap::new(),
            budgets: BTreeMap::new(),
            sync: [SyncState::default(); N_KINDS],
        }
    }

    pub fn options(&self) -> &CollectOptions {
        &self.options
    }

    /// True once every kind has completed its first list (or, for an
    /// optional kind, had its list refused).
    pub fn is_synced(&self) -> bool {
        self.sync.iter().all(|state| state.listed_once || state.refused)
    }

    /// The kinds still waiting for their first complete list.
    pub fn unsynced_kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|kind| {
                let state = &self.sync[kind.index()];
                !state.listed_once && !state.refused
            })
            .collect()
    }

    /// The optional kinds the API server refuses to list: snapshots are
    /// made without them.
    pub fn refused_kinds(&self) -> Vec<Kind> {
        Kind::ALL.into_iter().filter(|kind| self.is_refused(*kind)).collect()
    }

    /// Whether the API server refused the last list of `kind` (see [`list_refused`](Self::list_refused)).
    pub fn is_refused(&self, kind: Kind) -> bool {
        self.sync[kind.index()].refused
    }

    pub fn counts(&self) -> ViewCounts {
        ViewCounts {
            n_nodes: self.nodes.len(),
            n_namespaces: self.namespaces.len(),
            n_pods: self.pods.len() + self.invalid_pods.len(),
            n_daemon_sets: self.daemon_sets.len(),
            n_volume_objects: self.claims.len() + self.volumes.len() + self.storage_classes.len() + self.budgets.len(),
            n_isolation_objects: self.isolation.len(),
            n_invalid: self.n_invalid(),
        }
    }

    fn n_invalid(&self) -> usize {
        self.nodes.values().filter(|entry| entry.value.is_err()).count()
            + self.namespaces.values().filter(|entry| entry.value.is_err()).count()
            + self.invalid_pods.len()
            + self.claims.values().filter(|entry| entry.value.is_err()).count()
            + self.volumes.values().filter(|entry| entry.value.is_err()).count()
    }

    /// A (re)list of `kind` starts: objects applied from now on carry a new epoch.
    pub fn begin_list(&mut self, kind: Kind) {
        let state = &mut self.sync[kind.index()];
        state.epoch = state.epoch.wrapping_add(1);
        state.listing = true;
        state.changed_while_listing = false;
    }

    /// The (re)list of `kind` is complete: objects it did not contain are
    /// dropped. True when the view changed during the list, or this was the
    /// kind's first list.
    pub fn end_list(&mut self, kind: Kind) -> bool {
        let state = self.sync[kind.index()];
        let epoch = state.epoch;
        let mut removed = false;
        match kind {
            Kind::Nodes => {
                let before = self.nodes.len();
                self.nodes.retain(|_, entry| entry.epoch == epoch);
                removed = self.nodes.len() != before;
            }
            Kind::Namespaces => {
                let before = self.namespaces.len();
                self.namespaces.retain(|_, entry| entry.epoch == epoch);
                removed = self.namespaces.len() != before;
            }
            Kind::Pods => {
                let stale: Vec<Box<str>> =
                    self.pods.iter().filter(|(_, entry)| entry.epoch != epoch).map(|(key, _)| key.clone()).collect();
                for key in stale {
                    if let Some(entry) = self.pods.remove(&key) {
                        self.uncount(&key, &entry.value);
                        removed = true;
                    }
                }
                let before = self.invalid_pods.len();
                self.invalid_pods.retain(|_, entry| entry.epoch == epoch);
                removed |= self.invalid_pods.len() != before;
            }
            Kind::DaemonSets => {
                let before = self.daemon_sets.len();
                self.daemon_sets.retain(|_, entry| entry.epoch == epoch);
                removed = self.daemon_sets.len() != before;
            }
            Kind::PersistentVolumeClaims => {
                let before = self.claims.len();
                self.claims.retain(|_, entry| entry.epoch == epoch);
                removed = self.claims.len() != before;
            }
            Kind::PersistentVolumes => {
                let before = self.volumes.len();
                self.volumes.retain(|_, entry| entry.epoch == epoch);
                removed = self.volumes.len() != before;
            }
            Kind::StorageClasses => {
                let before = self.storage_classes.len();
                self.storage_classes.retain(|_, entry| entry.epoch == epoch);
                removed = self.storage_classes.len() != before;
            }
            Kind::DisruptionBudgets => {
                let before = self.budgets.len();
                self.budgets.retain(|_, entry| entry.epoch == epoch);
                removed = self.budgets.len() != before;
            }
            isolation_kind => {
                let before = self.isolation.len();
                self.isolation.retain(|(kind, _, _), entry| *kind != isolation_kind || entry.epoch == epoch);
                removed = self.isolation.len() != before;
            }
        }
        let state = &mut self.sync[kind.index()];
        // A kind listed again after a refusal now counts: that is a change.
        let first = !state.listed_once || state.refused;
        let changed = first || removed || state.changed_while_listing;
        state.listing = false;
        state.listed_once = true;
        state.refused = false;
        state.changed_while_listing = false;
        changed
    }

    /// The API server refused to list `kind` (403 Forbidden: the ClusterRole
    /// lacks it; 404: it does not serve it). For an [optional](Kind::is_optional)
    /// kind the view stops waiting for it: what it held is dropped (it can no
    /// longer be kept current), it counts as synced, and snapshots are made
    /// without it until a list succeeds ([`end_list`](Self::end_list)).
    /// True when this changed the view (the first refusal, or objects
    /// dropped). Nothing happens for the other kinds: a snapshot without
    /// nodes or pods would be wrong, not just less complete.
    pub fn list_refused(&mut self, kind: Kind) -> bool {
        if !kind.is_optional() {
            return false;
        }
        let removed = match kind {
            Kind::PersistentVolumeClaims => !std::mem::take(&mut self.claims).is_empty(),
            Kind::PersistentVolumes => !std::mem::take(&mut self.volumes).is_empty(),
            Kind::StorageClasses => !std::mem::take(&mut self.storage_classes).is_empty(),
            Kind::DisruptionBudgets => !std::mem::take(&mut self.budgets).is_empty(),
            Kind::Nodes | Kind::Namespaces | Kind::Pods | Kind::DaemonSets => false,
            isolation_kind => {
                let before = self.isolation.len();
                self.isolation.retain(|(kind, _, _), _| *kind != isolation_kind);
                self.isolation.len() != before
            }
        };
        let state = &mut self.sync[kind.index()];
        let newly = !state.refused;
        state.refused = true;
        state.listing = false;
        state.changed_while_listing = false;
        newly || removed
    }

    fn stamp(&mut self, kind: Kind, changed: bool) -> (u32, bool) {
        let state = &mut self.sync[kind.index()];
        if state.listing && changed {
            state.changed_while_listing = true;
        }
        (state.epoch, changed)
    }

    /// A node was added or modified (or listed). True when its inventory entry changed.
    pub fn apply_node(&mut self, node: &Node) -> bool {
        let Some(name) = node.metadata.name.clone().filter(|name| !name.is_empty()) else { return false };
        let converted = node_from_k8s(node, &self.options);
        let changed = self.nodes.get(&name).is_none_or(|entry| entry.value != converted);
        let (epoch, changed) = self.stamp(Kind::Nodes, changed);
        self.nodes.insert(name, Stamped { value: converted, epoch });
        changed
    }

    pub fn delete_node(&mut self, name: &str) -> bool {
        self.nodes.remove(name).is_some()
    }

    /// A namespace was added or modified (or listed); only its metadata is read.
    pub fn apply_namespace(&mut self, metadata: &ObjectMeta) -> bool {
        let Some(name) = metadata.name.clone().filter(|name| !name.is_empty()) else { return false };
        let namespace = Namespace { metadata: metadata.clone(), ..Namespace::default() };
        let converted = namespace_from_k8s(&namespace, &self.options);
        let changed = self.namespaces.get(&name).is_none_or(|entry| entry.value != converted);
        let (epoch, changed) = self.stamp(Kind::Namespaces, changed);
        self.namespaces.insert(name, Stamped { value: converted, epoch });
        changed
    }

    pub fn delete_namespace(&mut self, name: &str) -> bool {
        self.namespaces.remove(name).is_some()
    }

    /// A pod was added or modified (or listed): its old contribution is
    /// replaced by its new one. A terminated pod leaves the view.
    pub fn apply_pod(&mut self, pod: &Pod) -> bool {
        let Some(key) = pod_key(&pod.metadata) else { return false };
        match pod_demand(pod) {
            Ok(None) => {
                let changed = self.remove_pod(&key);
                self.stamp(Kind::Pods, changed).1
            }
            Ok(Some((namespace, demand))) => {
                let workload = is_detection_namespace(&namespace).then(|| pod_workload_name(pod).into_boxed_str());
                let group = match pod_group(pod, demand, &format!("pod {key:?}")) {
                    Ok(group) => group.map(|group| self.intern(&namespace, group)),
                    Err(error) => {
                        let removed = self.remove_pod(&key);
                        let changed = removed || self.invalid_pods.get(&key).is_none_or(|old| old.value != error);
                        let (epoch, changed) = self.stamp(Kind::Pods, changed);
                        self.invalid_pods.insert(key, Stamped { value: error, epoch });
                        return changed;
                    }
                };
                let labels = group.as_ref().map(|group| self.intern_labels(&namespace, &group.workload(), pod));
                let entry = PodEntry { demand, workload, group, labels };
                let was_invalid = self.invalid_pods.remove(&key).is_some();
                let changed = was_invalid || self.pods.get(&key).is_none_or(|old| old.value != entry);
                let (epoch, changed) = self.stamp(Kind::Pods, changed);
                if changed {
                    if let Some(old) = self.pods.get(&key).map(|old| old.value.clone()) {
                        self.uncount(&key, &old);
                    }
                    self.count(&key, &entry);
                }
                self.pods.insert(key, Stamped { value: entry, epoch });
                changed
            }
            Err(error) => {
                let removed = self.remove_pod(&key);
                let changed = removed || self.invalid_pods.get(&key).is_none_or(|old| old.value != error);
                let (epoch, changed) = self.stamp(Kind::Pods, changed);
                self.invalid_pods.insert(key, Stamped { value: error, epoch });
                changed
            }
        }
    }

    pub fn delete_pod(&mut self, metadata: &ObjectMeta) -> bool {
        let Some(key) = pod_key(metadata) else { return false };
        let invalid = self.invalid_pods.remove(&key).is_some();
        self.remove_pod(&key) || invalid
    }

    fn remove_pod(&mut self, key: &str) -> bool {
        match self.pods.remove(key) {
            Some(old) => {
                self.uncount(key, &old.value);
                true
            }
            None => false,
        }
    }

    /// The shared copy of `group` in `namespace`, if one is counted already.
    fn intern(&self, namespace: &str, group: PodGroup) -> Arc<PodGroup> {
        match self.groups.get(namespace).and_then(|groups| groups.get_key_value(&group)) {
            Some((shared, _)) => Arc::clone(shared),
            None => Arc::new(group),
        }
    }

    /// The shared copy of the pod's template labels for its workload: the
    /// copy already counted when the workload has one (pods of a workload
    /// share their template; the first pod's stand for all).
    fn intern_labels(&self, namespace: &str, workload: &str, pod: &Pod) -> Arc<Labels> {
        match self.workload_labels.get(&(namespace.to_string(), workload.to_string())) {
            Some((labels, _)) => Arc::clone(labels),
            None => Arc::new(template_labels(pod)),
        }
    }

    fn count(&mut self, key: &str, entry: &PodEntry) {
        let namespace = namespace_of(key);
        if let (Some(group), Some(labels)) = (&entry.group, &entry.labels) {
            let slot = self
                .workload_labels
                .entry((namespace.to_string(), group.workload()))
                .or_insert_with(|| (Arc::clone(labels), 0));
            slot.1 += 1;
        }
        if let Some(group) = &entry.group {
            *self.groups.entry(namespace.to_string()).or_default().entry(Arc::clone(group)).or_insert(0) += 1;
        }
        match self.demand.get_mut(namespace) {
            Some(sum) => *sum = sum.saturating_add(entry.demand),
            None => {
                self.demand.insert(namespace.to_string(), entry.demand);
            }
        }
        if let Some(workload) = &entry.workload {
            *self.system_pod_workloads.entry(workload.clone()).or_insert(0) += 1;
        }
    }

    fn uncount(&mut self, key: &str, entry: &PodEntry) {
        let namespace = namespace_of(key);
        if let Some(group) = &entry.group
            && entry.labels.is_some()
        {
            let key = (namespace.to_string(), group.workload());
            if let Some(slot) = self.workload_labels.get_mut(&key) {
                slot.1 -= 1;
                if slot.1 == 0 {
                    self.workload_labels.remove(&key);
                }
            }
        }
        if let Some(group) = &entry.group
            && let Some(groups) = self.groups.get_mut(namespace)
        {
            if let Some(n) = groups.get_mut(group) {
                *n -= 1;
                if *n == 0 {
                    groups.remove(group);
                }
            }
            if groups.is_empty() {
                self.groups.remove(namespace);
            }
        }
        if let Some(sum) = self.demand.get_mut(namespace) {
            *sum = sum.saturating_sub(entry.demand);
            // Every counted pod adds 1 to `pods`: none left, no entry.
            if sum.pods == 0 {
                self.demand.remove(namespace);
            }
        }
        if let Some(workload) = &entry.workload
            && let Some(n) = self.system_pod_workloads.get_mut(workload)
        {
            *n -= 1;
            if *n == 0 {
                self.system_pod_workloads.remove(workload);
            }
        }
    }

    /// A DaemonSet was added or modified (or listed); only its name and
    /// namespace are read, and only the detection namespaces' are kept.
    pub fn apply_daemon_set(&mut self, metadata: &ObjectMeta) -> bool {
        let (Some(namespace), Some(name)) = (&metadata.namespace, &metadata.name) else { return false };
        if !is_detection_namespace(namespace) {
            return false;
        }
        let key = (namespace.clone(), name.clone());
        let changed = !self.daemon_sets.contains_key(&key);
        let (epoch, changed) = self.stamp(Kind::DaemonSets, changed);
        self.daemon_sets.insert(key, Stamped { value: (), epoch });
        changed
    }

    pub fn delete_daemon_set(&mut self, metadata: &ObjectMeta) -> bool {
        let (Some(namespace), Some(name)) = (&metadata.namespace, &metadata.name) else { return false };
        self.daemon_sets.remove(&(namespace.clone(), name.clone())).is_some()
    }

    /// A PersistentVolumeClaim was added or modified (or listed). Its size
    /// is read at once: a malformed one is an invalid object, as for pods.
    pub fn apply_claim(&mut self, claim: &PersistentVolumeClaim) -> bool {
        let (Some(namespace), Some(name)) = (&claim.metadata.namespace, &claim.metadata.name) else { return false };
        let lean = PersistentVolumeClaim {
            metadata: lean_meta(&claim.metadata),
            spec: claim.spec.clone(),
            status: claim.status.clone(),
        };
        let object = format!("persistentvolumeclaim \"{namespace}/{name}\"");
        let value = VolumeIndex::default().add_claim(&lean, &object).map(|()| lean);
        let key = (namespace.clone(), name.clone());
        let changed = self.claims.get(&key).is_none_or(|entry| entry.value != value);
        let (epoch, changed) = self.stamp(Kind::PersistentVolumeClaims, changed);
        self.claims.insert(key, Stamped { value, epoch });
        changed
    }

    pub fn delete_claim(&mut self, metadata: &ObjectMeta) -> bool {
        let (Some(namespace), Some(name)) = (&metadata.namespace, &metadata.name) else { return false };
        self.claims.remove(&(namespace.clone(), name.clone())).is_some()
    }

    /// A PersistentVolume was added or modified (or listed).
    pub fn apply_volume(&mut self, volume: &PersistentVolume) -> bool {
        let Some(name) = volume.metadata.name.clone().filter(|name| !name.is_empty()) else { return false };
        let lean = PersistentVolume {
            metadata: lean_meta(&volume.metadata),
            spec: volume.spec.clone(),
            status: volume.status.clone(),
        };
        let value = VolumeIndex::default().add_volume(&lean, &format!("persistentvolume {name:?}")).map(|()| lean);
        let changed = self.volumes.get(&name).is_none_or(|entry| entry.value != value);
        let (epoch, changed) = self.stamp(Kind::PersistentVolumes, changed);
        self.volumes.insert(name, Stamped { value, epoch });
        changed
    }

    pub fn delete_volume(&mut self, name: &str) -> bool {
        self.volumes.remove(name).is_some()
    }

    /// A StorageClass was added or modified (or listed).
    pub fn apply_storage_class(&mut self, class: &StorageClass) -> bool {
        let Some(name) = class.metadata.name.clone().filter(|name| !name.is_empty()) else { return false };
        let lean = StorageClass { metadata: lean_meta(&class.metadata), ..class.clone() };
        let changed = self.storage_classes.get(&name).is_none_or(|entry| entry.value != lean);
        let (epoch, changed) = self.stamp(Kind::StorageClasses, changed);
        self.storage_classes.insert(name, Stamped { value: lean, epoch });
        changed
    }

    pub fn delete_storage_class(&mut self, name: &str) -> bool {
        self.storage_classes.remove(name).is_some()
    }

    /// A PodDisruptionBudget was added or modified (or listed); its spec is kept.
    pub fn apply_budget(&mut self, budget: &PodDisruptionBudget) -> bool {
        let (Some(namespace), Some(name)) = (&budget.metadata.namespace, &budget.metadata.name) else { return false };
        let key = (namespace.clone(), name.clone());
        let lean =
            PodDisruptionBudget { metadata: lean_meta(&budget.metadata), spec: budget.spec.clone(), status: None };
        let changed = self.budgets.get(&key).is_none_or(|entry| entry.value != lean);
        let (epoch, changed) = self.stamp(Kind::DisruptionBudgets, changed);
        self.budgets.insert(key, Stamped { value: lean, epoch });
        changed
    }

    pub fn delete_budget(&mut self, metadata: &ObjectMeta) -> bool {
        let key = (metadata.namespace.clone().unwrap_or_default(), metadata.name.clone().unwrap_or_default());
        self.budgets.remove(&key).is_some()
    }

    /// The PodDisruptionBudgets of `namespace`, with the workloads their
    /// selectors match (by their pods' template labels); none while the kind is refused.
    fn budgets_of(&self, namespace: &str) -> Vec<kplan_model::scheduling::DisruptionBudget> {
        if self.sync[Kind::DisruptionBudgets.index()].refused {
            return Vec::new();
        }
        let pods: Vec<(&BTreeMap<String, String>, &str)> = self
            .workload_labels
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|((_, workload), (labels, _))| (&**labels, workload.as_str()))
            .collect();
        let mut budgets: Vec<_> = self
            .budgets
            .range((namespace.to_string(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, entry)| disruption_budget(&entry.value, pods.iter().copied()))
            .collect();
        budgets.sort_by(|a, b| a.name.cmp(&b.name));
        budgets
    }

    /// An RBAC object, NetworkPolicy, RuntimeClass or admission policy was
    /// added or modified (or listed). A Gatekeeper constraint is keyed by its
    /// kind in place of a namespace (constraints are cluster-scoped; names are
    /// unique per kind).
    pub fn apply_isolation(&mut self, object: IsolationObject) -> bool {
        let kind = Kind::of_isolation(&object);
        let metadata = object.metadata();
        let Some(name) = metadata.name.clone().filter(|name| !name.is_empty()) else { return false };
        let scope = match &object {
            IsolationObject::GatekeeperConstraint(constraint) => constraint.kind.clone(),
            _ => metadata.namespace.clone().unwrap_or_default(),
        };
        let key = (kind, scope, name);
        let mut value = IsolationInventory::default();
        add_object(&mut value, object);
        let changed = self.isolation.get(&key).is_none_or(|entry| entry.value != value);
        let (epoch, changed) = self.stamp(kind, changed);
        self.isolation.insert(key, Stamped { value, epoch });
        changed
    }

    pub fn delete_isolation(&mut self, kind: Kind, metadata: &ObjectMeta) -> bool {
        let key = (kind, metadata.namespace.clone().unwrap_or_default(), metadata.name.clone().unwrap_or_default());
        self.isolation.remove(&key).is_some()
    }

    /// The isolation objects the view holds now; a refused kind adds nothing.
    fn isolation_inventory(&self) -> IsolationInventory {
        let mut inventory = IsolationInventory::default();
        for ((kind, _, _), entry) in &self.isolation {
            if self.sync[kind.index()].refused {
                continue;
            }
            inventory.extend(entry.value.clone());
        }
        sorted(inventory)
    }

    /// The index of the claims, volumes and classes the view holds now.
    /// A refused kind adds nothing (not even what a retried list has
    /// brought so far).
    fn volume_index(&self) -> Result<VolumeIndex, CollectError> {
        let refused = |kind: Kind| self.sync[kind.index()].refused;
        let mut index = VolumeIndex::default();
        if !refused(Kind::StorageClasses) {
            for entry in self.storage_classes.values() {
                index.add_class(&entry.value);
            }
        }
        if !refused(Kind::PersistentVolumes) {
            for (name, entry) in &self.volumes {
                if let Ok(volume) = &entry.value {
                    index.add_volume(volume, &format!("persistentvolume {name:?}"))?;
                }
            }
        }
        if !refused(Kind::PersistentVolumeClaims) {
            for ((namespace, name), entry) in &self.claims {
                if let Ok(claim) = &entry.value {
                    index.add_claim(claim, &format!("persistentvolumeclaim \"{namespace}/{name}\""))?;
                }
            }
        }
        Ok(index)
    }

    /// The snapshot of the view, with this generation and collection time.
    /// An error while a kind is not yet listed, a relist is under way, or an
    /// object breaks the label contract.
    pub fn snapshot(&self, generation: u64, collected_at_unix: i64) -> Result<ClusterSnapshot, ViewError> {
        let unsynced = self.unsynced_kinds();
        if !unsynced.is_empty() {
            return Err(ViewError::NotSynced { kinds: unsynced });
        }
        let listing: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|kind| {
                let state = &self.sync[kind.index()];
                state.listing && !state.refused
            })
            .collect();
        if !listing.is_empty() {
            return Err(ViewError::Listing { kinds: listing });
        }
        let n_invalid = self.n_invalid();
        if n_invalid > 0 {
            let first = self
                .nodes
                .values()
                .filter_map(|entry| entry.value.as_ref().err())
                .chain(self.namespaces.values().filter_map(|entry| entry.value.as_ref().err()))
                .chain(self.invalid_pods.values().map(|entry| &entry.value))
                .chain(self.claims.values().filter_map(|entry| entry.value.as_ref().err()))
                .chain(self.volumes.values().filter_map(|entry| entry.value.as_ref().err()))
                .take(MAX_ERRORS_SHOWN)
                .cloned()
                .collect();
            return Err(ViewError::InvalidObjects { n_invalid, first });
        }
        let nodes = self.nodes.values().filter_map(|entry| entry.value.as_ref().ok()).cloned();
        let namespaces = self.namespaces.values().filter_map(|entry| entry.value.as_ref().ok()).cloned();
        let demand: BTreeMap<String, Resources> =
            self.demand.iter().map(|(namespace, sum)| (namespace.clone(), *sum)).collect();
        let workloads: BTreeSet<&str> = self
            .daemon_sets
            .keys()
            .map(|(_, name)| name.as_str())
            .chain(self.system_pod_workloads.keys().map(|name| &**name))
            .collect();
        let options = CollectOptions { collected_at_unix, generation: Some(generation), ..self.options.clone() };
        let mut snapshot = build_snapshot(nodes, namespaces, &demand, workloads, generation, &options)?;
        // Built now, from the claims and volumes as they are, not when the pods were read.
        let volumes = self.volume_index()?;
        for namespace in &mut snapshot.namespaces {
            if let Some(groups) = self.groups.get(&namespace.name) {
                namespace.pod_groups = counted_groups(groups.iter().map(|(group, n)| (&**group, *n)));
                volumes.resolve_groups(&namespace.name, &mut namespace.pod_groups);
            }
            namespace.disruption_budgets = self.budgets_of(&namespace.name);
        }
        snapshot.isolation = self.isolation_inventory();
        Ok(snapshot)
    }
}

/// What the view keeps of a volume object's metadata: its name and namespace
/// (labels, annotations and `managedFields` are the bulk of a small object,
/// and the index reads none of them).
fn lean_meta(metadata: &ObjectMeta) -> ObjectMeta {
    ObjectMeta { name: metadata.name.clone(), namespace: metadata.namespace.clone(), ..ObjectMeta::default() }
}

/// A pod's labels as its workload's template gives them: those the
/// controllers set per pod (its name, ordinal, completion index, revision)
/// dropped.
fn template_labels(pod: &Pod) -> BTreeMap<String, String> {
    const PER_POD: [&str; 4] = [
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "batch.kubernetes.io/job-completion-index",
        "controller-revision-hash",
    ];
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.retain(|key, _| !PER_POD.contains(&key.as_str()));
    labels
}

fn pod_key(metadata: &ObjectMeta) -> Option<Box<str>> {
    match (metadata.namespace.as_deref(), metadata.name.as_deref()) {
        (Some(namespace), Some(name)) if !namespace.is_empty() && !name.is_empty() => {
            let mut key = String::with_capacity(namespace.len() + 1 + name.len());
            key.push_str(namespace);
            key.push('/');
            key.push_str(name);
            Some(key.into_boxed_str())
        }
        _ => None,
    }
}

/// Namespace names hold no `/`.
fn namespace_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(namespace, _)| namespace)
}

#[cfg(test)]
mod tests;
