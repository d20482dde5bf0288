//! The collector against the shipped real fixtures (`fixtures/k8s/`, see its
//! SOURCES.md) and hand-made objects. Tests that need kplan's labels or bad
//! values edit in-memory copies of the fixtures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kplan_model::{ClusterSnapshot, NodeRole, Resources, SlaTier};
use serde_json::{Value, json};

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/k8s");
const KI: u64 = 1024;
const MI: u64 = 1 << 20;

fn fixture_text(path: &str) -> String {
    let full = Path::new(FIXTURES).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

fn parse_fixture(path: &str) -> Vec<KubeObject> {
    parse_documents(&fixture_text(path), path).unwrap_or_else(|error| panic!("{error}"))
}

fn options() -> CollectOptions {
    CollectOptions {
        cluster_id: "test".into(),
        security_tier: Some("dev".into()),
        collected_at_unix: 1_700_000_000,
        ..CollectOptions::default()
    }
}

fn collect_fixtures(paths: &[&str], options: &CollectOptions) -> Result<ClusterSnapshot, CollectError> {
    let objects: Vec<KubeObject> = paths.iter().flat_map(|path| parse_fixture(path)).collect();
    collect(objects, options)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every shipped fixture parses, with the expected kinds; a fixture added
/// without an expectation here fails the test.
#[test]
fn every_fixture_parses_with_the_right_counts() {
    let expected: BTreeMap<&str, (&str, usize)> = [
        ("eks-graviton-tainted-nodelist.json", ("Node", 2)),
        ("k9s-kube-system-namespace.json", ("Namespace", 1)),
        ("minikube-1.15-docker-node.json", ("Node", 1)),
        ("minikube-1.22-arm64-nodes.yaml", ("Node", 1)),
        ("minikube-1.35-namespaces.yaml", ("Namespace", 6)),
        ("minikube-1.35-nodes.yaml", ("Node", 1)),
        ("openshift-4.8-aws-namespaces/kube-system.yaml", ("Namespace", 1)),
        ("openshift-4.8-aws-namespaces/openshift-etcd.yaml", ("Namespace", 1)),
        ("openshift-gcp-4.4-nodelist.derived.json", ("Node", 6)),
        ("openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-master-0.json", ("Node", 1)),
        ("openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-master-1.json", ("Node", 1)),
        ("openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-master-2.json", ("Node", 1)),
        ("openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-worker-b-q6vs9.json", ("Node", 1)),
        ("openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-worker-c-h8zcp.json", ("Node", 1)),
        ("openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-worker-d-pbtms.json", ("Node", 1)),
        ("openshift-onprem-4.7-nodes/master-0.imeixner20210707.lab.upshift.rdu2.redhat.com.json", ("Node", 1)),
        ("openshift-onprem-4.7-nodes/worker-0.imeixner20210707.lab.upshift.rdu2.redhat.com.json", ("Node", 1)),
        ("sonobuoy-aws-k8s1.7-nodes.json", ("Node", 3)),
        ("sonobuoy-aws-k8s1.8-nodes.json", ("Node", 3)),
        ("sonobuoy-kind-1.21-namespaces.json", ("Namespace", 20)),
        ("sonobuoy-kind-1.21-nodes.json", ("Node", 1)),
    ]
    .into_iter()
    .collect();

    let mut files = Vec::new();
    files_under(Path::new(FIXTURES), &mut files);
    let mut seen = Vec::new();
    for file in files {
        let relative = file.strip_prefix(FIXTURES).unwrap().to_string_lossy().replace('\\', "/");
        // Gatekeeper's CRD is installed in the tests' API server
        // (tests/tests/isolation.rs), not a cluster export to collect; the
        // admission policies have their own test below.
        if relative.ends_with(".md") || relative.starts_with("gatekeeper/") || relative.starts_with("admission/") {
            continue;
        }
        let Some(&(kind, count)) = expected.get(relative.as_str()) else {
            panic!("fixture {relative} has no expectation in this test");
        };
        let objects = parse_fixture(&relative);
        let counts = count_kinds(&objects);
        assert_eq!(counts, BTreeMap::from([(kind.to_string(), count)]), "{relative}");
        // Each one also collects into a snapshot on its own (with defaults for
        // the zone-less ones).
        let options = CollectOptions { datacenter: Some("dc".into()), zone: Some("zone".into()), ..options() };
        let snapshot = collect(objects, &options).unwrap_or_else(|error| panic!("{relative}: {error}"));
        assert_eq!(snapshot.nodes.len() + snapshot.namespaces.len(), count, "{relative}");
        seen.push(relative);
    }
    assert_eq!(seen.len(), expected.len(), "missing fixtures: {seen:?}");
}

#[test]
fn openshift_gcp_nodes_zones_roles_and_capacity() {
    let snapshot = collect_fixtures(&["openshift-gcp-4.4-nodelist.derived.json"], &options()).unwrap();
    assert_eq!(snapshot.nodes.len(), 6);
    let masters: Vec<&str> = snapshot
        .nodes
        .iter()
        .filter(|node| node.role == NodeRole::ControlPlane)
        .map(|node| node.zone.as_str())
        .collect();
    assert_eq!(masters, ["us-east1-b", "us-east1-c", "us-east1-d"]);
    let master = &snapshot.nodes[0];
    assert_eq!(master.name, "ci-ln-3z9y7mt-f76d1-69jcr-master-0");
    assert_eq!(master.datacenter, "us-east1");
    assert_eq!(master.allocatable, Resources::new(3500, 14_238_280 * KI, 250));
    assert_eq!(master.kubelet_version, "v1.17.1+9d33dd3");
    assert_eq!(master.container_runtime, "cri-o://1.17.4-18.dev.rhaos4.4.gitfb8131a.el8");
    let worker_c = snapshot.nodes.iter().find(|node| node.name.ends_with("worker-c-h8zcp")).unwrap();
    assert_eq!(worker_c.role, NodeRole::Worker);
    assert_eq!(worker_c.allocatable.memory_bytes, 14_238_264 * KI);
    assert_eq!(snapshot.allocatable(), Resources::new(6 * 3500, (5 * 14_238_280 + 14_238_264) * KI, 1500));
    assert_eq!(snapshot.facts.kubernetes_version, "v1.17.1+9d33dd3");
    // Generation: the highest resourceVersion of the nodes (the list's own is "").
    assert_eq!(snapshot.generation, 50771);
    assert_eq!(snapshot.collected_at_unix, 1_700_000_000);
}

#[test]
fn single_object_files_give_the_same_snapshot_as_the_list() {
    let singles: Vec<String> =
        ["master-0", "master-1", "master-2", "worker-b-q6vs9", "worker-c-h8zcp", "worker-d-pbtms"]
            .iter()
            .rev() // input order must not matter
            .map(|name| format!("openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-{name}.json"))
            .collect();
    let singles: Vec<&str> = singles.iter().map(String::as_str).collect();
    let from_singles = collect_fixtures(&singles, &options()).unwrap();
    let from_list = collect_fixtures(&["openshift-gcp-4.4-nodelist.derived.json"], &options()).unwrap();
    assert_eq!(from_singles, from_list);
}

#[test]
fn beta_only_labels_give_zone_and_datacenter() {
    let snapshot = collect_fixtures(&["sonobuoy-aws-k8s1.8-nodes.json"], &options()).unwrap();
    assert_eq!(snapshot.nodes.len(), 3);
    for node in &snapshot.nodes {
        assert_eq!((node.datacenter.as_str(), node.zone.as_str()), ("us-west-2", "us-west-2a"), "{}", node.name);
        assert_eq!(node.allocatable, Resources::new(1000, 3_750_580 * KI, 110));
        assert_eq!((node.kubelet_version.as_str(), node.container_runtime.as_str()), ("v1.8.4", "docker://1.12.6"));
    }
    let masters: Vec<&str> = snapshot
        .nodes
        .iter()
        .filter(|node| node.role == NodeRole::ControlPlane)
        .map(|node| node.name.as_str())
        .collect();
    assert_eq!(masters, ["ip-10-0-9-206.us-west-2.compute.internal"]);
    assert_eq!(snapshot.generation, 1325);
}

#[test]
fn on_prem_nodes_without_zone_use_the_cluster_defaults() {
    let paths = [
        "openshift-onprem-4.7-nodes/master-0.imeixner20210707.lab.upshift.rdu2.redhat.com.json",
        "openshift-onprem-4.7-nodes/worker-0.imeixner20210707.lab.upshift.rdu2.redhat.com.json",
    ];
    let options = CollectOptions { datacenter: Some("rdu2".into()), zone: Some("lab-a".into()), ..options() };
    let snapshot = collect_fixtures(&paths, &options).unwrap();
    let summary: Vec<(&str, &str, NodeRole, u64)> = snapshot
        .nodes
        .iter()
        .map(|node| (node.datacenter.as_str(), node.zone.as_str(), node.role, node.allocatable.cpu_millis))
        .collect();
    assert_eq!(summary, [("rdu2", "lab-a", NodeRole::ControlPlane, 7500), ("rdu2", "lab-a", NodeRole::Worker, 3500)]);
    assert_eq!(snapshot.facts.zone, "lab-a");
    assert_eq!(snapshot.facts.kubernetes_version, "v1.20.0+2817867");

    // Without the defaults: an error naming the file, the node and the fixes.
    let error = collect_fixtures(&paths, &CollectOptions { zone: None, ..options }).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(
            "openshift-onprem-4.7-nodes/master-0.imeixner20210707.lab.upshift.rdu2.redhat.com.json: \
             node \"master-0.imeixner20210707.lab.upshift.rdu2.redhat.com\" has no firewall zone: \
             set one of the node labels kplan.io/firewall-zone"
        ),
        "{message}"
    );
    assert!(message.contains("(--zone, or zone in the agent config)"), "{message}");
}

#[test]
fn eks_nodes_keep_their_disagreeing_regions() {
    let snapshot = collect_fixtures(&["eks-graviton-tainted-nodelist.json"], &options()).unwrap();
    let places: Vec<(&str, &str)> =
        snapshot.nodes.iter().map(|node| (node.datacenter.as_str(), node.zone.as_str())).collect();
    assert_eq!(places, [("us-east-1", "us-east-1a"), ("us-east-2", "us-east-2d")]);
    assert_eq!(snapshot.nodes[0].allocatable, Resources::new(7910, 31_127_824 * KI, 58));
    assert_eq!(snapshot.nodes[0].architecture, "arm64");
    assert_eq!(snapshot.facts.kubernetes_version, "v1.21.2-13+d2965f0db10712");
}

#[test]
fn minikube_yaml_lists_nodes_and_namespaces() {
    let options = CollectOptions { datacenter: Some("laptop".into()), zone: Some("desk".into()), ..options() };
    let snapshot = collect_fixtures(&["minikube-1.35-nodes.yaml", "minikube-1.35-namespaces.yaml"], &options).unwrap();
    let [node] = &snapshot.nodes[..] else { panic!("one node expected") };
    assert_eq!(node.name, "datagen-1-35");
    assert_eq!(node.role, NodeRole::ControlPlane);
    assert_eq!(node.allocatable, Resources::new(14_000, 8_024_304 * KI, 110));
    assert_eq!(node.kubelet_version, "v1.35.0");
    assert_eq!(node.container_runtime, "containerd://2.2.1");
    // status.runtimeHandlers (1.30+): the default handler (no name) and runc.
    let handlers: Vec<(&str, &[String])> =
        node.runtime_handlers.iter().map(|h| (h.name.as_str(), h.features.as_slice())).collect();
    let both = ["recursiveReadOnlyMounts".to_string(), "userNamespaces".to_string()];
    assert_eq!(handlers, [("", &both[..]), ("runc", &both[..])]);
    let names: Vec<&str> = snapshot.namespaces.iter().map(|ns| ns.name.as_str()).collect();
    assert_eq!(names, ["default", "kube-node-lease", "kube-public", "kube-system", "nri-test-namespace", "scraper"]);
    assert!(snapshot.namespaces.iter().all(|ns| ns.security_tier == "dev" && ns.sla_tier == SlaTier::Bronze));
    assert_eq!(snapshot.generation, 825);

    let old = collect_fixtures(&["minikube-1.22-arm64-nodes.yaml"], &options).unwrap();
    assert_eq!(old.nodes[0].allocatable, Resources::new(5000, 8_039_936 * KI, 110));
    assert_eq!(old.nodes[0].container_runtime, "containerd://1.6.15");
    assert!(old.nodes[0].runtime_handlers.is_empty(), "a 1.22 node reports no handlers");
    let docker = collect_fixtures(&["minikube-1.15-docker-node.json"], &options).unwrap();
    assert_eq!(docker.nodes[0].container_runtime, "docker://18.9.8");
    assert_eq!(docker.nodes[0].role, NodeRole::ControlPlane);
}

#[test]
fn kind_nodes_and_kindless_namespaces() {
    let options = CollectOptions { datacenter: Some("ci".into()), zone: Some("ci".into()), ..options() };
    let snapshot =
        collect_fixtures(&["sonobuoy-kind-1.21-nodes.json", "sonobuoy-kind-1.21-namespaces.json"], &options).unwrap();
    assert_eq!((snapshot.nodes.len(), snapshot.namespaces.len()), (1, 20));
    assert_eq!(snapshot.nodes[0].role, NodeRole::ControlPlane);
    assert_eq!(snapshot.nodes[0].allocatable, Resources::new(8000, 30_823_900 * KI, 110));
    // The newest object is a namespace (149606), newer than the node (149467).
    assert_eq!(snapshot.generation, 149_606);
    // Sorted by name.
    let names: Vec<&str> = snapshot.namespaces.iter().map(|ns| ns.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.first(), Some(&"crd-publish-openapi-4326"));
}

/// Adds labels to every object with the given name in a parsed JSON/YAML value.
fn add_labels(value: &mut Value, name: &str, labels: &[(&str, &str)]) -> usize {
    let mut n_changed = 0;
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| n_changed += add_labels(item, name, labels)),
        Value::Object(map) => {
            if map.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) == Some(name) {
                let metadata = map["metadata"].as_object_mut().unwrap();
                let existing = metadata.entry("labels").or_insert_with(|| json!({}));
                for (key, label) in labels {
                    existing[*key] = json!(label);
                }
                n_changed += 1;
            }
            if let Some(items) = map.get_mut("items") {
                n_changed += add_labels(items, name, labels);
            }
        }
        _ => {}
    }
    n_changed
}

fn edited_fixture(path: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_saphyr::from_str(&fixture_text(path)).unwrap();
    edit(&mut value);
    serde_json::to_string(&value).unwrap()
}

#[test]
fn kplan_labels_on_modified_copies_win() {
    // Copies of real objects with kplan's labels added (the originals carry none).
    let nodes = edited_fixture("openshift-gcp-4.4-nodelist.derived.json", |value| {
        let labels = [("kplan.io/firewall-zone", "fw-core"), ("kplan.io/datacenter", "fra1")];
        assert_eq!(add_labels(value, "ci-ln-3z9y7mt-f76d1-69jcr-worker-b-q6vs9", &labels), 1);
    });
    let namespaces = edited_fixture("minikube-1.35-namespaces.yaml", |value| {
        let labels = [("kplan.io/security-tier", "prod"), ("kplan.io/sla-tier", "gold")];
        assert_eq!(add_labels(value, "scraper", &labels), 1);
        assert_eq!(add_labels(value, "default", &[("kplan.io/sla-tier", "silver")]), 1);
    });
    let mut objects = parse_documents(&nodes, "nodes.json").unwrap();
    objects.extend(parse_documents(&namespaces, "namespaces.json").unwrap());
    let snapshot = collect(objects, &options()).unwrap();

    let worker_b = snapshot.nodes.iter().find(|node| node.name.ends_with("worker-b-q6vs9")).unwrap();
    assert_eq!((worker_b.datacenter.as_str(), worker_b.zone.as_str()), ("fra1", "fw-core"));
    let worker_c = snapshot.nodes.iter().find(|node| node.name.ends_with("worker-c-h8zcp")).unwrap();
    assert_eq!((worker_c.datacenter.as_str(), worker_c.zone.as_str()), ("us-east1", "us-east1-c"));

    let tiers: BTreeMap<&str, (&str, SlaTier)> =
        snapshot.namespaces.iter().map(|ns| (ns.name.as_str(), (ns.security_tier.as_str(), ns.sla_tier))).collect();
    assert_eq!(tiers["scraper"], ("prod", SlaTier::Gold));
    assert_eq!(tiers["default"], ("dev", SlaTier::Silver));
    assert_eq!(tiers["kube-system"], ("dev", SlaTier::Bronze));
}

#[test]
fn unknown_sla_tier_in_a_fixture_copy_names_file_namespace_and_value() {
    let namespaces = edited_fixture("sonobuoy-kind-1.21-namespaces.json", |value| {
        add_labels(value, "sonobuoy", &[("kplan.io/sla-tier", "platinum")]);
    });
    let objects = parse_documents(&namespaces, "namespaces.json").unwrap();
    assert_eq!(
        collect(objects, &options()).unwrap_err().to_string(),
        "namespaces.json: namespace \"sonobuoy\": label kplan.io/sla-tier: unknown sla tier \"platinum\" \
         (expected gold, silver or bronze)"
    );
}

#[test]
fn bad_quantity_in_a_fixture_copy_names_file_node_and_field() {
    let nodes = edited_fixture("eks-graviton-tainted-nodelist.json", |value| {
        value["items"][0]["status"]["allocatable"]["cpu"] = json!("4x");
    });
    let objects = parse_documents(&nodes, "nodes.json").unwrap();
    assert_eq!(
        collect(objects, &options()).unwrap_err().to_string(),
        "nodes.json: node \"duckboat-01\": status.allocatable.cpu: malformed quantity \"4x\""
    );
}

#[test]
fn wrong_type_in_a_fixture_copy_names_file_node_and_field() {
    let nodes = edited_fixture("sonobuoy-aws-k8s1.7-nodes.json", |value| {
        value[1]["spec"]["unschedulable"] = json!("yes");
    });
    let message = parse_documents(&nodes, "nodes.json").unwrap_err().to_string();
    assert!(
        message.starts_with(
            "nodes.json: node \"ip-10-0-19-88.us-west-2.compute.internal\": spec.unschedulable: invalid type: string \"yes\", expected a boolean"
        ),
        "{message}"
    );
}

#[test]
fn duplicates_are_errors_naming_both_places() {
    let objects: Vec<KubeObject> =
        ["openshift-gcp-4.4-nodelist.derived.json", "openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-master-1.json"]
            .iter()
            .flat_map(|path| parse_fixture(path))
            .collect();
    assert_eq!(
        collect(objects, &options()).unwrap_err(),
        CollectError::Duplicate {
            kind: "node",
            name: "ci-ln-3z9y7mt-f76d1-69jcr-master-1".into(),
            first: "openshift-gcp-4.4-nodelist.derived.json, items[1]".into(),
            second: "openshift-gcp-4.4-nodes/ci-ln-3z9y7mt-f76d1-69jcr-master-1.json".into(),
        }
    );
    let twice = ["k9s-kube-system-namespace.json", "openshift-4.8-aws-namespaces/kube-system.yaml"];
    let error = collect_fixtures(&twice, &options()).unwrap_err();
    assert!(
        matches!(&error, CollectError::Duplicate { kind: "namespace", name, .. } if name == "kube-system"),
        "{error}"
    );
}

fn pod(namespace: &str, name: &str, phase: &str, containers: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "900000"},
        "spec": {"containers": containers},
        "status": {"phase": phase}
    })
}

fn requests(cpu: &str, memory: &str) -> Value {
    json!([{"name": "main", "resources": {"requests": {"cpu": cpu, "memory": memory}}}])
}

#[test]
fn namespace_demand_sums_non_terminated_pods() {
    let pods = json!({
        "apiVersion": "v1", "kind": "List",
        "items": [
            pod("scraper", "a", "Running", requests("500m", "256Mi")),
            pod("scraper", "b", "Pending", requests("1.5", "1Gi")),
            pod("scraper", "done", "Succeeded", requests("4", "4Gi")),
            pod("scraper", "crashed", "Failed", requests("4", "4Gi")),
            {
                "kind": "Pod",
                "metadata": {"name": "init", "namespace": "default"},
                "spec": {
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
                    "containers": requests("250m", "128Mi"),
                },
                "status": {"phase": "Running"}
            },
            // A namespace that is not in the input still gets its demand.
            pod("orphans", "x", "Running", requests("100m", "10Mi")),
        ]
    });
    let mut objects = parse_fixture("minikube-1.35-namespaces.yaml");
    objects.extend(parse_documents(&pods.to_string(), "pods.json").unwrap());
    let snapshot = collect(objects, &options()).unwrap();
    let demand: BTreeMap<&str, Resources> =
        snapshot.namespaces.iter().map(|ns| (ns.name.as_str(), ns.requests)).collect();
    assert_eq!(demand["scraper"], Resources::new(2000, 1280 * MI, 2));
    assert_eq!(demand["default"], Resources::new(2000, 128 * MI, 1));
    assert_eq!(demand["orphans"], Resources::new(100, 10 * MI, 1));
    assert_eq!(demand["kube-system"], Resources::ZERO);
    let orphans = snapshot.namespaces.iter().find(|ns| ns.name == "orphans").unwrap();
    assert_eq!((orphans.security_tier.as_str(), orphans.sla_tier), ("dev", SlaTier::Bronze));
    assert_eq!(snapshot.requested(), Resources::new(4100, 1418 * MI, 4));
    assert_eq!(snapshot.generation, 900_000);
}

#[test]
fn cni_and_csi_from_system_daemonsets_and_pods_only() {
    let objects = json!([
        {"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "calico-node", "namespace": "kube-system"}, "spec": {}},
        {"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "ebs-csi-node", "namespace": "kube-system"}, "spec": {}},
        {"kind": "Pod", "apiVersion": "v1",
         "metadata": {"name": "ebs-csi-controller-6d5c7b9f8-x2x4z", "namespace": "kube-system",
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ebs-csi-controller-6d5c7b9f8", "uid": "u", "controller": true}]},
         "spec": {"containers": []}, "status": {"phase": "Running"}},
        // Outside the detection namespaces: ignored.
        {"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "cilium", "namespace": "lab"}, "spec": {}},
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "kube-flannel-ds-abcde", "namespace": "default"},
         "spec": {"containers": []}, "status": {"phase": "Running"}},
        {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "kube-system", "resourceVersion": "3"}},
    ]);
    let snapshot = collect(parse_documents(&objects.to_string(), "system.json").unwrap(), &options()).unwrap();
    assert_eq!(snapshot.facts.cni, "calico");
    assert_eq!(snapshot.facts.csi_drivers, ["ebs-csi"]);

    let kindless_daemon_set = json!([
        {"metadata": {"name": "kube-flannel-ds", "namespace": "kube-flannel", "resourceVersion": "5"},
         "spec": {"selector": {}, "template": {}, "updateStrategy": {}}},
        {"metadata": {"name": "kube-flannel"}},
    ]);
    let snapshot = collect(parse_documents(&kindless_daemon_set.to_string(), "ds.json").unwrap(), &options()).unwrap();
    assert_eq!(snapshot.facts.cni, "flannel");
    assert_eq!(snapshot.namespaces.len(), 1);
}

#[test]
fn generation_from_option_or_resource_versions() {
    let text = r#"{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a"}}"#;
    let objects = || parse_documents(text, "a.json").unwrap();
    assert_eq!(collect(objects(), &options()).unwrap_err(), CollectError::NoGeneration);
    let with_generation = CollectOptions { generation: Some(42), ..options() };
    assert_eq!(collect(objects(), &with_generation).unwrap().generation, 42);
    // An explicit generation wins over resource versions too.
    let snapshot = collect_fixtures(&["sonobuoy-aws-k8s1.8-nodes.json"], &with_generation).unwrap();
    assert_eq!(snapshot.generation, 42);
    // Skipped kinds count towards the generation.
    let text = r#"[{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a", "resourceVersion": "10"}},
                   {"kind": "Event", "apiVersion": "v1", "metadata": {"name": "e", "namespace": "a", "resourceVersion": "77"}}]"#;
    assert_eq!(collect(parse_documents(text, "b.json").unwrap(), &options()).unwrap().generation, 77);
}

#[test]
fn reimporting_the_same_export_is_identical() {
    let paths = ["sonobuoy-kind-1.21-nodes.json", "sonobuoy-kind-1.21-namespaces.json"];
    let options = CollectOptions { zone: Some("z".into()), datacenter: Some("d".into()), ..options() };
    let first = collect_fixtures(&paths, &options).unwrap();
    let mut objects: Vec<KubeObject> = paths.iter().flat_map(|path| parse_fixture(path)).collect();
    objects.reverse();
    assert_eq!(collect(objects, &options).unwrap(), first);
}

#[test]
fn nothing_to_collect_and_empty_cluster_id() {
    let text = r#"{"kind": "List", "items": [{"kind": "Service", "apiVersion": "v1", "metadata": {"name": "s", "namespace": "a"}}]}"#;
    assert_eq!(
        collect(parse_documents(text, "s.json").unwrap(), &options()).unwrap_err().to_string(),
        "no nodes, namespaces or pods in the input (skipped: 1 Service)"
    );
    let no_id = CollectOptions { cluster_id: String::new(), ..options() };
    assert_eq!(
        collect_fixtures(&["k9s-kube-system-namespace.json"], &no_id).unwrap_err(),
        CollectError::EmptyClusterId
    );
}

#[test]
fn kplan_snapshot_files_pass_through() {
    let options = CollectOptions { zone: Some("z".into()), datacenter: Some("d".into()), ..options() };
    let snapshot = collect_fixtures(&["sonobuoy-kind-1.21-nodes.json"], &options).unwrap();
    let text = serde_json::to_string(&snapshot).unwrap();
    let objects = parse_documents(&text, "snap.json").unwrap();
    assert_eq!(collect(objects, &options).unwrap(), snapshot);
    // The CLI's `--cluster` is optional for a snapshot but must agree.
    let any_cluster = CollectOptions { cluster_id: String::new(), ..options.clone() };
    assert_eq!(collect(parse_documents(&text, "snap.json").unwrap(), &any_cluster).unwrap(), snapshot);
    let other = CollectOptions { cluster_id: "other".into(), ..options.clone() };
    assert_eq!(
        collect(parse_documents(&text, "snap.json").unwrap(), &other).unwrap_err().to_string(),
        "snap.json: snapshot is of cluster \"test\", not \"other\""
    );
    // YAML too (`-o yaml` of a snapshot).
    let yaml = serde_saphyr::to_string(&snapshot).unwrap();
    assert_eq!(collect(parse_documents(&yaml, "snap.yaml").unwrap(), &options).unwrap(), snapshot);
    // Not with other input.
    let mut mixed = parse_documents(&text, "snap.json").unwrap();
    mixed.extend(parse_fixture("k9s-kube-system-namespace.json"));
    assert_eq!(
        collect(mixed, &options).unwrap_err().to_string(),
        "snap.json: a kplan snapshot cannot be combined with other input (Namespace from k9s-kube-system-namespace.json)"
    );
}

#[test]
fn build_snapshot_for_the_watcher() {
    let options = CollectOptions { zone: Some("z".into()), datacenter: Some("d".into()), ..options() };
    let nodes = parse_fixture("sonobuoy-aws-k8s1.7-nodes.json");
    let nodes: Vec<kplan_model::Node> = nodes
        .iter()
        .map(|object| match object {
            KubeObject::Node { node, .. } => node_from_k8s(node, &options).unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let demand = BTreeMap::from([("shop".to_string(), Resources::new(100, MI, 1))]);
    let snapshot = build_snapshot(nodes.into_iter().rev(), [], &demand, ["cilium"], 7, &options).unwrap();
    assert_eq!(snapshot.nodes[0].name, "ip-10-0-15-53.us-west-2.compute.internal");
    assert_eq!(snapshot.namespaces.len(), 1);
    assert_eq!(snapshot.namespaces[0].requests, Resources::new(100, MI, 1));
    assert_eq!((snapshot.generation, snapshot.facts.cni.as_str()), (7, "cilium"));
    assert_eq!(snapshot.facts.kubernetes_version, "v1.7.2");
}

#[test]
fn label_keys_config_defaults_and_strictness() {
    let keys: LabelKeys = serde_json::from_str("{}").unwrap();
    assert_eq!(keys, LabelKeys::default());
    assert_eq!(keys.zone[0], "kplan.io/firewall-zone");
    assert_eq!(keys.control_plane, ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"]);
    let keys: LabelKeys = serde_json::from_str(r#"{"zone": ["example.com/fw"]}"#).unwrap();
    assert_eq!(keys.zone, ["example.com/fw"]);
    assert_eq!(keys.datacenter, LabelKeys::default().datacenter);
    let error = serde_json::from_str::<LabelKeys>(r#"{"zones": []}"#).unwrap_err();
    assert!(error.to_string().starts_with("unknown field `zones`"), "{error}");
}

#[test]
fn nameless_objects_are_named_by_their_place() {
    let text = r#"{"kind": "List", "items": [
        {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a"}},
        {"kind": "Namespace", "apiVersion": "v1", "metadata": {"labels": {"x": "y"}}}]}"#;
    assert_eq!(
        collect(parse_documents(text, "ns.json").unwrap(), &options()).unwrap_err().to_string(),
        "ns.json: namespace at items[1]: metadata.name: missing"
    );
}

#[test]
fn a_gpu_pool_and_its_training_pods_are_recorded_for_the_pod_level_checks() {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1", "resourceVersion": "10",
            "labels": {"topology.kubernetes.io/zone": "a", "accelerator": "nvidia"}},
         "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
         "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4"}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "train-5f6-a", "namespace": "ml", "resourceVersion": "11",
            "labels": {"pod-template-hash": "5f6"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "train-5f6", "uid": "u", "controller": true}]},
         "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"nvidia.com/gpu": "2"}}}],
                  "nodeSelector": {"accelerator": "nvidia"},
                  "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
         "status": {"phase": "Running"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "train-5f6-b", "namespace": "ml", "resourceVersion": "12",
            "labels": {"pod-template-hash": "5f6"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "train-5f6", "uid": "u", "controller": true}]},
         "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"nvidia.com/gpu": "2"}}}],
                  "nodeSelector": {"accelerator": "nvidia"},
                  "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
         "status": {"phase": "Running"}}
    ]});
    let objects = parse_documents(&list.to_string(), "gpu.json").unwrap();
    let options = CollectOptions { datacenter: Some("fra".into()), ..options() };
    let snapshot = collect(objects, &options).unwrap();
    let node = &snapshot.nodes[0];
    assert_eq!(node.extended.get("nvidia.com/gpu"), Some(&4));
    assert_eq!(node.taints.len(), 1);
    let ml = snapshot.namespaces.iter().find(|n| n.name == "ml").unwrap();
    assert_eq!(ml.pod_groups.len(), 1, "two identical pods are one group: {:#?}", ml.pod_groups);
    let group = &ml.pod_groups[0];
    assert_eq!((group.workload().as_str(), group.replicas), ("Deployment/train", 2));
    assert_eq!(group.extended.get("nvidia.com/gpu"), Some(&2));
    assert_eq!(group.requests, Resources::new(2000, 8 << 30, 1));
    // The namespace's sum is still what the pods request.
    assert_eq!(ml.requests, Resources::new(4000, 16 << 30, 2));
}

/// Objects last applied with a pre-release API (`kubectl.kubernetes.io/last-applied-configuration`)
/// are recorded by name in their namespace, whatever version the API server
/// serves them in; objects applied with a GA version, or never applied, are not.
#[test]
fn objects_last_applied_with_a_prerelease_api_are_named_per_namespace() {
    let applied = |api_version: &str, kind: &str, name: &str| {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "payments"}})
            .to_string()
    };
    let object = |api_version: &str, kind: &str, name: &str, last_applied: Option<String>| {
        let mut metadata = json!({"name": name, "namespace": "payments", "resourceVersion": "7"});
        if let Some(text) = last_applied {
            metadata["annotations"] = json!({ parse::LAST_APPLIED: text });
        }
        json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": {}})
    };
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments", "resourceVersion": "5"}},
        // served as batch/v1, applied as batch/v1beta1 (removed in 1.25)
        object("batch/v1", "CronJob", "nightly", Some(applied("batch/v1beta1", "CronJob", "nightly"))),
        object("policy/v1", "PodDisruptionBudget", "api", Some(applied("policy/v1beta1", "PodDisruptionBudget", "api"))),
        // applied with a GA version, or created without kubectl apply: nothing to say
        object("apps/v1", "Deployment", "api", Some(applied("apps/v1", "Deployment", "api"))),
        object("autoscaling/v2", "HorizontalPodAutoscaler", "api", None),
        // a broken annotation is ignored, not an error
        object("networking.k8s.io/v1", "Ingress", "web", Some("{not json".to_string())),
        // a DaemonSet is read, and its annotation too
        object("apps/v1", "DaemonSet", "agent", Some(applied("extensions/v1beta1", "DaemonSet", "agent"))),
    ]});
    let objects = parse_documents(&list.to_string(), "export.json").unwrap();
    let snapshot = collect(objects, &options()).unwrap();
    let payments = snapshot.namespaces.iter().find(|n| n.name == "payments").expect("payments");
    let named: Vec<(&str, &str, &str)> = payments
        .applied_prerelease
        .iter()
        .map(|a| (a.api_version.as_str(), a.kind.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("batch/v1beta1", "CronJob", "nightly"),
            ("extensions/v1beta1", "DaemonSet", "agent"),
            ("policy/v1beta1", "PodDisruptionBudget", "api"),
        ]
    );
}

/// A ValidatingAdmissionPolicy with its binding (multi-document YAML) and a
/// Gatekeeper constraint, as published upstream (`fixtures/k8s/admission/`),
/// collected beside a real node and namespaces.
#[test]
fn admission_policies_and_gatekeeper_constraints_are_collected_by_kind_and_name() {
    use kplan_model::isolation::{AdmissionPolicy, LabelSelector, LabelSelectorRequirement};
    let options = CollectOptions { datacenter: Some("laptop".into()), zone: Some("desk".into()), ..options() };
    let snapshot = collect_fixtures(
        &[
            "minikube-1.35-nodes.yaml",
            "minikube-1.35-namespaces.yaml",
            "admission/deny-privileged-policy.yaml",
            "admission/gatekeeper-constraint-scoped.yaml",
        ],
        &options,
    )
    .unwrap();
    let policies = &snapshot.isolation.admission_policies;
    assert_eq!(
        policies,
        &[
            AdmissionPolicy {
                group: "admissionregistration.k8s.io".into(),
                kind: "ValidatingAdmissionPolicy".into(),
                name: "example-deny-privileged.static.k8s.io".into(),
                ..Default::default()
            },
            AdmissionPolicy {
                group: "admissionregistration.k8s.io".into(),
                kind: "ValidatingAdmissionPolicyBinding".into(),
                name: "example-deny-privileged-binding.static.k8s.io".into(),
                policy: "example-deny-privileged.static.k8s.io".into(),
                namespace_selector: Some(LabelSelector {
                    match_expressions: vec![LabelSelectorRequirement {
                        key: "kubernetes.io/metadata.name".into(),
                        operator: "NotIn".into(),
                        values: vec!["kube-system".into()],
                    }],
                    ..Default::default()
                }),
                actions: vec!["Deny".into()],
                ..Default::default()
            },
            AdmissionPolicy {
                group: "constraints.gatekeeper.sh".into(),
                kind: "K8sRequiredLabels".into(),
                name: "cm-must-have-gk-scoped".into(),
                namespaces: vec!["gatekeeper-test-playground-scoped".into()],
                actions: vec!["scoped".into()],
                ..Default::default()
            },
        ]
    );
    // The same constraint twice is a duplicate, named as such.
    let twice = collect_fixtures(
        &["admission/gatekeeper-constraint-scoped.yaml", "admission/gatekeeper-constraint-scoped.yaml"],
        &options,
    )
    .unwrap_err();
    assert!(twice.to_string().contains("K8sRequiredLabels/cm-must-have-gk-scoped"), "{twice}");
}
