//! Unit tests of the cluster view (`view.rs`).

use super::*;
use crate::collect::{KubeObject, collect, parse_documents};
use kplan_model::scheduling::{LOCAL_VOLUME_DRIVER, PodVolume};
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
            KubeObject::PersistentVolumeClaim { claim, .. } => {
                view.apply_claim(claim);
            }
            KubeObject::PersistentVolume { volume, .. } => {
                view.apply_volume(volume);
            }
            KubeObject::StorageClass { class, .. } => {
                view.apply_storage_class(class);
            }
            KubeObject::Isolation { object, .. } => {
                view.apply_isolation((**object).clone());
            }
            KubeObject::DisruptionBudget { budget, .. } => {
                view.apply_budget(budget);
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
    let KubeObject::Node { node, .. } = objects.iter().find(|o| matches!(o, KubeObject::Node { .. })).unwrap() else {
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

/// A pod mounting `data-db-0`, the claim bound to `pv-a`, a local volume
/// on `db-host-1`, and its class, as the API server sends them.
fn volume_objects() -> (Pod, PersistentVolumeClaim, PersistentVolume, StorageClass) {
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "db-0", "namespace": "payments"},
        "spec": {"containers": [{"name": "pg", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]}
    }))
    .unwrap();
    let claim = serde_json::from_value(json!({
        "metadata": {"name": "data-db-0", "namespace": "payments",
                     "annotations": {"pv.kubernetes.io/bind-completed": "yes"},
                     "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]},
        "spec": {"volumeName": "pv-a", "storageClassName": "local-ssd", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "50Gi"}}},
        "status": {"phase": "Bound"}
    }))
    .unwrap();
    let volume = serde_json::from_value(json!({
        "metadata": {"name": "pv-a", "labels": {"disk": "nvme"}},
        "spec": {"capacity": {"storage": "100Gi"}, "storageClassName": "local-ssd",
                 "accessModes": ["ReadWriteOnce"], "local": {"path": "/mnt/disks/a"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["db-host-1"]}]}]}}}
    }))
    .unwrap();
    let class = serde_json::from_value(json!({
        "metadata": {"name": "local-ssd"}, "provisioner": "kubernetes.io/no-provisioner"
    }))
    .unwrap();
    (pod, claim, volume, class)
}

fn synced_view() -> ClusterView {
    let mut view = ClusterView::new(options());
    for kind in Kind::ALL {
        view.begin_list(kind);
        view.end_list(kind);
    }
    view
}

fn db_volumes(view: &ClusterView) -> Vec<PodVolume> {
    let snapshot = view.snapshot(1, 0).expect("snapshot");
    let payments = snapshot.namespaces.iter().find(|ns| ns.name == "payments").expect("payments");
    assert_eq!(payments.pod_groups.len(), 1, "{:?}", payments.pod_groups);
    payments.pod_groups[0].volumes.clone()
}

fn oracle(view: &ClusterView, objects: Vec<KubeObject>) {
    let expected = collect(objects, &CollectOptions { generation: Some(1), ..options() }).expect("collects");
    assert_eq!(view.snapshot(1, 0).expect("snapshot"), expected);
}

#[test]
fn a_claim_bound_after_its_pod_resolves_at_the_next_snapshot_and_a_deleted_volume_leaves_the_claim() {
    use crate::collect::Origin;
    let (pod, claim, volume, class) = volume_objects();
    let mut view = synced_view();
    assert!(view.apply_pod(&pod));
    // The pod first: its claim is known by name only.
    assert_eq!(db_volumes(&view), [PodVolume { claim: "data-db-0".into(), ..PodVolume::default() }]);

    // The class, the volume and the claim arrive later: the next snapshot has them.
    assert!(view.apply_storage_class(&class));
    assert!(view.apply_volume(&volume));
    assert!(view.apply_claim(&claim));
    assert!(!view.apply_claim(&claim), "the same claim again is no change");
    let resolved = &db_volumes(&view)[0];
    assert_eq!(
        (resolved.volume.as_str(), resolved.storage_class.as_str(), resolved.driver.as_str()),
        ("pv-a", "local-ssd", LOCAL_VOLUME_DRIVER)
    );
    assert_eq!(resolved.size_bytes, 100 << 30);
    let pinned = resolved.node_affinity.as_ref().expect("the local volume's node");
    let host = |name: &str| [("kubernetes.io/hostname".to_string(), name.to_string())].into_iter().collect();
    assert!(pinned.matches(&host("db-host-1")) && !pinned.matches(&host("db-host-2")));
    let origin = || Origin::new("test", "");
    let mut objects = vec![
        KubeObject::Pod { origin: origin(), pod: Box::new(pod.clone()) },
        KubeObject::StorageClass { origin: origin(), class: Box::new(class.clone()) },
        KubeObject::PersistentVolumeClaim { origin: origin(), claim: Box::new(claim.clone()) },
        KubeObject::PersistentVolume { origin: origin(), volume: Box::new(volume.clone()) },
    ];
    oracle(&view, objects.clone());
    // Only name, namespace, spec and status are kept.
    let kept = view.claims.values().next().unwrap().value.as_ref().unwrap();
    assert!(kept.metadata.managed_fields.is_none() && kept.metadata.annotations.is_none());
    assert!(view.volumes.values().next().unwrap().value.as_ref().unwrap().metadata.labels.is_none());

    // The volume goes: the claim keeps its own volume name, class and request;
    // no driver (its volume is unknown, so the plan says which checks it could
    // not make) and no node affinity.
    assert!(view.delete_volume("pv-a"));
    assert!(!view.delete_volume("pv-a"));
    assert_eq!(
        db_volumes(&view),
        [PodVolume {
            claim: "data-db-0".into(),
            volume: "pv-a".into(),
            storage_class: "local-ssd".into(),
            driver: String::new(),
            size_bytes: 50 << 30,
            node_affinity: None,
        }]
    );
    objects.pop();
    oracle(&view, objects);
    // The claim goes: the name is all that is left.
    assert!(view.delete_claim(&claim.metadata));
    assert_eq!(db_volumes(&view), [PodVolume { claim: "data-db-0".into(), ..PodVolume::default() }]);
}

#[test]
fn a_refused_volume_kind_counts_as_synced_and_comes_back_with_its_next_list() {
    let (pod, claim, volume, class) = volume_objects();
    let mut view = ClusterView::new(options());
    for kind in Kind::ALL {
        view.begin_list(kind);
    }
    view.apply_pod(&pod);
    view.apply_volume(&volume);
    view.apply_storage_class(&class);
    let isolation = Kind::ALL.into_iter().filter(|kind| kind.is_isolation());
    let listed = [Kind::Nodes, Kind::Namespaces, Kind::DaemonSets, Kind::PersistentVolumes, Kind::DisruptionBudgets];
    for kind in listed.into_iter().chain(isolation) {
        view.end_list(kind);
    }
    assert!(!view.list_refused(Kind::Pods), "required kinds are waited for");
    assert_eq!(view.unsynced_kinds(), [Kind::Pods, Kind::PersistentVolumeClaims, Kind::StorageClasses]);
    view.end_list(Kind::Pods);
    // Forbidden claims and classes (an older ClusterRole): synced without them.
    assert!(view.list_refused(Kind::PersistentVolumeClaims));
    assert!(view.list_refused(Kind::StorageClasses), "the listed class is dropped");
    assert!(!view.list_refused(Kind::StorageClasses), "a second refusal changes nothing");
    assert!(view.is_synced());
    assert_eq!(view.refused_kinds(), [Kind::PersistentVolumeClaims, Kind::StorageClasses]);
    assert_eq!(db_volumes(&view), [PodVolume { claim: "data-db-0".into(), ..PodVolume::default() }]);
    // A retried list under way holds nothing back and adds nothing yet.
    view.begin_list(Kind::PersistentVolumeClaims);
    view.apply_claim(&claim);
    assert_eq!(db_volumes(&view), [PodVolume { claim: "data-db-0".into(), ..PodVolume::default() }]);
    // It completes (the ClusterRole was fixed): the claim resolves.
    assert!(view.end_list(Kind::PersistentVolumeClaims));
    assert_eq!(view.refused_kinds(), [Kind::StorageClasses]);
    let resolved = &db_volumes(&view)[0];
    assert_eq!((resolved.volume.as_str(), resolved.driver.as_str()), ("pv-a", LOCAL_VOLUME_DRIVER));
    assert!(resolved.node_affinity.is_some());
}

#[test]
fn a_claim_whose_size_cannot_be_read_blocks_the_snapshot_like_a_pod() {
    let (_, claim, _, _) = volume_objects();
    let mut view = synced_view();
    let mut bad = serde_json::to_value(&claim).unwrap();
    bad["spec"]["resources"]["requests"]["storage"] = json!("lots");
    let bad: PersistentVolumeClaim = serde_json::from_value(bad).unwrap();
    assert!(view.apply_claim(&bad));
    let error = view.snapshot(1, 0).expect_err("invalid claim");
    assert!(error.to_string().contains("persistentvolumeclaim \"payments/data-db-0\""), "{error}");
    assert!(view.apply_claim(&claim));
    assert!(view.snapshot(1, 0).is_ok());
}

/// RBAC, a NetworkPolicy and a RuntimeClass, as `kubectl get -o json` lists them.
const ISOLATION: &str = r#"{"kind": "List", "apiVersion": "v1", "items": [
  {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "payments-edit"},
   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-payments"}]},
  {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "ci", "namespace": "payments"},
   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
   "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}]},
  {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "payments"},
   "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
  {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor"}, "handler": "runsc"}
]}"#;

#[test]
fn isolation_objects_reach_the_snapshot_as_an_import_reads_them_and_a_refused_kind_leaves() {
    let mut objects = bank_objects();
    objects.extend(parse_documents(ISOLATION, "rbac.json").expect("parses"));
    let mut view = ClusterView::new(options());
    load(&mut view, &objects);
    let snapshot = view.snapshot(7, 0).expect("snapshot");
    assert_eq!(snapshot.isolation.n_objects(), 4);
    assert_eq!(snapshot, expected(objects.clone()), "the agent and kplan import agree");
    assert_eq!(view.counts().n_isolation_objects, 4);

    // A relist without the binding drops it; the others stay.
    view.begin_list(Kind::ClusterRoleBindings);
    assert!(view.end_list(Kind::ClusterRoleBindings));
    assert!(view.snapshot(7, 0).expect("snapshot").isolation.cluster_role_bindings.is_empty());
    // An older ClusterRole: NetworkPolicies refused, the snapshot is made without them.
    assert!(view.list_refused(Kind::NetworkPolicies));
    assert!(view.is_synced());
    let isolation = view.snapshot(7, 0).expect("snapshot").isolation;
    assert!(isolation.network_policies.is_empty());
    assert_eq!(isolation.role_bindings[0].subjects[0].username(), "system:serviceaccount:ci:deployer");
    assert_eq!(isolation.runtime_classes[0].handler, "runsc");
}

/// Three `web` pods of a Deployment (ReplicaSet `web-5f6`), one `cache` pod
/// and a PodDisruptionBudget selecting `app: web`, as kubectl prints them.
fn budget_objects(n_web: usize) -> Vec<KubeObject> {
    let pod = |name: &str, app: &str, owner: &str, hash: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "shop", "resourceVersion": "10",
                            "labels": {"app": app, "pod-template-hash": hash},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                                 "uid": "u", "controller": true}]},
               "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
               "status": {"phase": "Running"}})
    };
    let mut items: Vec<serde_json::Value> =
        (0..n_web).map(|i| pod(&format!("web-5f6-{i}"), "web", "web-5f6", "5f6")).collect();
    items.push(pod("cache-7a8-0", "cache", "cache-7a8", "7a8"));
    items.push(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                      "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "11"},
                      "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}));
    let text = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    parse_documents(&text, "shop.json").expect("parses")
}

#[test]
fn disruption_budgets_name_the_workloads_they_select_as_an_import_does_and_a_refused_kind_leaves() {
    let objects = budget_objects(3);
    let mut view = ClusterView::new(options());
    load(&mut view, &objects);
    let snapshot = view.snapshot(7, 0).expect("snapshot");
    assert_eq!(snapshot, expected(objects.clone()));
    let shop = snapshot.namespaces.iter().find(|ns| ns.name == "shop").expect("shop");
    assert_eq!(shop.disruption_budgets.len(), 1);
    assert_eq!(shop.disruption_budgets[0].workloads, ["Deployment/web"]);
    assert_eq!(shop.disruption_budgets[0].max_unavailable, "1");
    // The web pods go: the budget selects nothing (the labels leave with the last pod).
    for pod in pods(&objects).iter().filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with("web"))) {
        view.delete_pod(&pod.metadata);
    }
    let shop =
        view.snapshot(8, 0).expect("snapshot").namespaces.into_iter().find(|ns| ns.name == "shop").expect("shop");
    assert_eq!(shop.disruption_budgets[0].workloads, Vec::<String>::new());
    // A refused kind reports no budgets at all.
    assert!(view.list_refused(Kind::DisruptionBudgets));
    let shop =
        view.snapshot(9, 0).expect("snapshot").namespaces.into_iter().find(|ns| ns.name == "shop").expect("shop");
    assert!(shop.disruption_budgets.is_empty());
}
