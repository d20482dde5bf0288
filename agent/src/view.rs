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
//! - the names of the DaemonSets in the detection namespaces.
//!
//! Relists: [`begin_list`](ClusterView::begin_list) starts an epoch, every listed
//! object is stamped with it, and [`end_list`](ClusterView::end_list) drops what
//! the list did not contain (deleted while the watch was down). No second
//! copy of the state is built during a relist.
//!
//! Every update says whether something that matters for the snapshot changed
//! (a pod's status heartbeat does not; its requests or phase do), so the
//! reporter wakes only for real changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kplan_model::scheduling::PodGroup;
use kplan_model::{ClusterSnapshot, Resources};

use crate::collect::scheduling::{counted_groups, pod_group};
use crate::collect::{
    CollectError, CollectOptions, build_snapshot, is_detection_namespace, namespace_from_k8s, node_from_k8s,
    pod_demand, pod_workload_name,
};

/// The four kinds of object the agent watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Nodes,
    Namespaces,
    Pods,
    DaemonSets,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Nodes, Kind::Namespaces, Kind::Pods, Kind::DaemonSets];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Nodes => "nodes",
            Kind::Namespaces => "namespaces",
            Kind::Pods => "pods",
            Kind::DaemonSets => "daemonsets",
        }
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
}

#[derive(Debug, Clone, Copy, Default)]
struct SyncState {
    epoch: u32,
    listing: bool,
    listed_once: bool,
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
    sync: [SyncState; 4],
}

/// Sizes of the view, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewCounts {
    pub n_nodes: usize,
    pub n_namespaces: usize,
    pub n_pods: usize,
    pub n_daemon_sets: usize,
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
            sync: [SyncState::default(); 4],
        }
    }

    pub fn options(&self) -> &CollectOptions {
        &self.options
    }

    /// True once every kind has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.sync.iter().all(|state| state.listed_once)
    }

    /// The kinds still waiting for their first complete list.
    pub fn unsynced_kinds(&self) -> Vec<Kind> {
        Kind::ALL.into_iter().filter(|kind| !self.sync[kind.index()].listed_once).collect()
    }

    pub fn counts(&self) -> ViewCounts {
        ViewCounts {
            n_nodes: self.nodes.len(),
            n_namespaces: self.namespaces.len(),
            n_pods: self.pods.len() + self.invalid_pods.len(),
            n_daemon_sets: self.daemon_sets.len(),
            n_invalid: self.n_invalid(),
        }
    }

    fn n_invalid(&self) -> usize {
        self.nodes.values().filter(|entry| entry.value.is_err()).count()
            + self.namespaces.values().filter(|entry| entry.value.is_err()).count()
            + self.invalid_pods.len()
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
        }
        let state = &mut self.sync[kind.index()];
        let first = !state.listed_once;
        let changed = first || removed || state.changed_while_listing;
        state.listing = false;
        state.listed_once = true;
        state.changed_while_listing = false;
        changed
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
                let entry = PodEntry { demand, workload, group };
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

    fn count(&mut self, key: &str, entry: &PodEntry) {
        let namespace = namespace_of(key);
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

    /// The snapshot of the view, with this generation and collection time.
    /// An error while a kind is not yet listed, a relist is under way, or an
    /// object breaks the label contract.
    pub fn snapshot(&self, generation: u64, collected_at_unix: i64) -> Result<ClusterSnapshot, ViewError> {
        let unsynced = self.unsynced_kinds();
        if !unsynced.is_empty() {
            return Err(ViewError::NotSynced { kinds: unsynced });
        }
        let listing: Vec<Kind> = Kind::ALL.into_iter().filter(|kind| self.sync[kind.index()].listing).collect();
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
        for namespace in &mut snapshot.namespaces {
            if let Some(groups) = self.groups.get(&namespace.name) {
                namespace.pod_groups = counted_groups(groups.iter().map(|(group, n)| (&**group, *n)));
            }
        }
        Ok(snapshot)
    }
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
mod tests {
    use super::*;
    use crate::collect::{KubeObject, collect, parse_documents};
    use serde_json::json;

    const BANK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bank/clusters/fra-prod-payments.json");

    fn options() -> CollectOptions {
        CollectOptions {
            cluster_id: "fra-prod-payments".into(),
            security_tier: Some("prod".into()),
            ..CollectOptions::default()
        }
    }

    fn bank_objects() -> Vec<KubeObject> {
        let text = std::fs::read_to_string(BANK).expect("bank example");
        parse_documents(&text, "fra-prod-payments.json").expect("parses")
    }

    fn load(view: &mut ClusterView, objects: &[KubeObject]) {
        for kind in Kind::ALL {
            view.begin_list(kind);
        }
        for object in objects {
            match object {
                KubeObject::Node { node, .. } => {
                    view.apply_node(node);
                }
                KubeObject::Namespace { namespace, .. } => {
                    view.apply_namespace(&namespace.metadata);
                }
                KubeObject::Pod { pod, .. } => {
                    view.apply_pod(pod);
                }
                KubeObject::DaemonSet { daemon_set, .. } => {
                    view.apply_daemon_set(&daemon_set.metadata);
                }
                _ => {}
            }
        }
        for kind in Kind::ALL {
            view.end_list(kind);
        }
    }

    fn expected(objects: Vec<KubeObject>) -> ClusterSnapshot {
        collect(objects, &CollectOptions { generation: Some(7), ..options() }).expect("collects")
    }

    fn pods(objects: &[KubeObject]) -> Vec<Pod> {
        objects
            .iter()
            .filter_map(|object| match object {
                KubeObject::Pod { pod, .. } => Some((**pod).clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_listed_cluster_gives_the_collectors_snapshot() {
        let objects = bank_objects();
        let mut view = ClusterView::new(options());
        assert!(matches!(view.snapshot(7, 0), Err(ViewError::NotSynced { .. })));
        load(&mut view, &objects);
        assert!(view.is_synced());
        let snapshot = view.snapshot(7, 0).expect("snapshot");
        assert_eq!(snapshot, expected(objects));
        assert_eq!(snapshot.facts.cni, "calico");
    }

    #[test]
    fn incremental_pod_changes_match_a_fresh_collection() {
        let objects = bank_objects();
        let mut view = ClusterView::new(options());
        load(&mut view, &objects);
        let mut all_pods = pods(&objects);
        // Grow a pod's requests, finish another, delete a third, add a new one.
        let grown = &mut all_pods[0];
        let container = &mut grown.spec.as_mut().unwrap().containers[0];
        let requests = container.resources.get_or_insert_default().requests.get_or_insert_default();
        requests.insert("cpu".into(), k8s_openapi::apimachinery::pkg::api::resource::Quantity("7".into()));
        assert!(view.apply_pod(&all_pods[0]));
        all_pods[1].status.get_or_insert_default().phase = Some("Succeeded".into());
        assert!(view.apply_pod(&all_pods[1]));
        let deleted = all_pods.remove(2);
        assert!(view.delete_pod(&deleted.metadata));
        let mut added = all_pods[3].clone();
        added.metadata.name = Some("brand-new".into());
        assert!(view.apply_pod(&added));
        all_pods.push(added);

        let mut objects: Vec<KubeObject> =
            objects.into_iter().filter(|object| !matches!(object, KubeObject::Pod { .. })).collect();
        objects.extend(
            all_pods
                .into_iter()
                .map(|pod| KubeObject::Pod { origin: crate::collect::Origin::new("test", ""), pod: Box::new(pod) }),
        );
        assert_eq!(view.snapshot(7, 0).expect("snapshot"), expected(objects));
    }

    #[test]
    fn changes_that_do_not_matter_are_not_changes() {
        let objects = bank_objects();
        let mut view = ClusterView::new(options());
        load(&mut view, &objects);
        let mut pod = pods(&objects)[0].clone();
        pod.metadata.resource_version = Some("999999".into());
        pod.status.get_or_insert_default().pod_ip = Some("10.1.2.3".into());
        assert!(!view.apply_pod(&pod), "a status-only change is not a change");
        let KubeObject::Node { node, .. } = objects.iter().find(|o| matches!(o, KubeObject::Node { .. })).unwrap()
        else {
            unreachable!()
        };
        let mut node = (**node).clone();
        node.metadata.resource_version = Some("1000000".into());
        assert!(!view.apply_node(&node), "a heartbeat is not a change");
        node.metadata.labels.get_or_insert_default().insert("topology.kubernetes.io/zone".into(), "elsewhere".into());
        assert!(view.apply_node(&node));
        assert!(!view.delete_pod(&ObjectMeta {
            namespace: Some("nowhere".into()),
            name: Some("nothing".into()),
            ..ObjectMeta::default()
        }));
    }

    #[test]
    fn a_relist_drops_what_it_did_not_see_and_keeps_sums_right() {
        let objects = bank_objects();
        let mut view = ClusterView::new(options());
        load(&mut view, &objects);
        // Relist without the first namespace's pods and without one node.
        let first_namespace = pods(&objects)[0].metadata.namespace.clone().unwrap();
        let first_node = objects.iter().find(|o| matches!(o, KubeObject::Node { .. })).unwrap().clone();
        let kept: Vec<KubeObject> = objects
            .into_iter()
            .filter(|object| match object {
                KubeObject::Pod { pod, .. } => pod.metadata.namespace.as_deref() != Some(&first_namespace),
                KubeObject::Node { node, .. } => {
                    let KubeObject::Node { node: first, .. } = &first_node else { unreachable!() };
                    node.metadata.name != first.metadata.name
                }
                _ => true,
            })
            .collect();
        view.begin_list(Kind::Pods);
        view.begin_list(Kind::Nodes);
        assert!(matches!(view.snapshot(7, 0), Err(ViewError::Listing { .. })));
        for object in &kept {
            match object {
                KubeObject::Pod { pod, .. } => assert!(!view.apply_pod(pod)),
                KubeObject::Node { node, .. } => assert!(!view.apply_node(node)),
                _ => {}
            }
        }
        assert!(view.end_list(Kind::Pods));
        assert!(view.end_list(Kind::Nodes));
        assert_eq!(view.snapshot(7, 0).expect("snapshot"), expected(kept.clone()));
        // A relist that finds nothing new is no change.
        view.begin_list(Kind::DaemonSets);
        for object in &kept {
            if let KubeObject::DaemonSet { daemon_set, .. } = object {
                assert!(!view.apply_daemon_set(&daemon_set.metadata));
            }
        }
        assert!(!view.end_list(Kind::DaemonSets));
    }

    #[test]
    fn invalid_objects_block_the_snapshot_until_fixed() {
        let mut view = ClusterView::new(CollectOptions { zone: None, ..options() });
        for kind in Kind::ALL {
            view.begin_list(kind);
            view.end_list(kind);
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "w1", "labels": {"topology.kubernetes.io/region": "fra"}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
        }))
        .unwrap();
        assert!(view.apply_node(&node));
        let error = view.snapshot(1, 0).expect_err("no zone");
        assert!(error.to_string().contains("node \"w1\" has no firewall zone"), "{error}");
        let bad_pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1x"}}}]}
        }))
        .unwrap();
        assert!(view.apply_pod(&bad_pod));
        assert_eq!(view.counts().n_invalid, 2);
        let mut fixed = node.clone();
        fixed.metadata.labels.as_mut().unwrap().insert("topology.kubernetes.io/zone".into(), "a".into());
        assert!(view.apply_node(&fixed));
        assert!(view.delete_pod(&bad_pod.metadata));
        let snapshot = view.snapshot(1, 0).expect("fixed");
        assert_eq!(snapshot.nodes.len(), 1);
        assert!(snapshot.namespaces.is_empty());
    }

    #[test]
    fn pods_without_a_namespace_object_still_count_and_leave_with_their_last_pod() {
        let mut view = ClusterView::new(options());
        for kind in Kind::ALL {
            view.begin_list(kind);
            view.end_list(kind);
        }
        let pod = |name: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "orphans"},
                "spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}]}
            }))
            .unwrap()
        };
        view.apply_pod(&pod("a"));
        view.apply_pod(&pod("b"));
        let snapshot = view.snapshot(1, 0).expect("snapshot");
        assert_eq!(snapshot.namespaces.len(), 1);
        assert_eq!(snapshot.namespaces[0].requests, Resources::new(500, 2 << 30, 2));
        view.delete_pod(&pod("a").metadata);
        view.delete_pod(&pod("b").metadata);
        assert!(view.snapshot(1, 0).expect("snapshot").namespaces.is_empty());
    }
}
