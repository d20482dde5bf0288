//! Ground truth for the plan's pod-level promise (issue 17): the real
//! kube-scheduler (v1.20.2, built from the same Kubernetes sources as the
//! tests' kube-apiserver by `scripts/kube-apiserver.sh`) binds every pod of a
//! target the plan keeps, on the nodes the plan keeps.
//!
//! The test plans the GPU estate of `gpu_estate` through `kplan import` and
//! `kplan propose`, creates in a fresh API server the workload nodes that the
//! target keeps (labels, taints, allocatable) and the pods of the namespaces
//! that move there (no `nodeName`), and starts kube-scheduler. Every pod is
//! bound. Then the same target without its GPU node: the training pods stay
//! pending (`Unschedulable`), so the test can fail, and kplan's validator
//! refuses that target too.

mod common;
mod gpu_estate;
mod kube_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gpu_estate::propose_gpu_estate;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_harness::{Apiserver, Kube, binaries};
use serde_json::{Value, json};

/// kube-scheduler against the API server, stopped on drop.
struct Scheduler(Child);

impl Scheduler {
    fn start(binary: &std::path::Path, server: &Apiserver) -> Scheduler {
        let log = std::fs::File::create(server.dir.join("scheduler.log")).expect("scheduler log");
        let child = Command::new(binary)
            .arg(format!("--kubeconfig={}", server.admin_kubeconfig.display()))
            .args(["--leader-elect=false", "--port=0", "--secure-port=0", "--v=2"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starts kube-scheduler");
        Scheduler(child)
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The kubectl objects of the estate's files, by kind and name.
fn objects(dir: &std::path::Path) -> Vec<Value> {
    ["gpu-a.json", "big-b.json"]
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(dir.join(file)).expect("estate file");
            let list: Value = serde_json::from_str(&text).expect("json");
            list["items"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

/// Creates a node as the kubelet would register it: labels, taints and
/// allocatable from the kubectl export (the API server's `not-ready` taint
/// is replaced by the node's own taints, as a Ready kubelet leaves them).
fn create_node(kube: &Kube, object: &Value) {
    let api = Api::<Node>::all(kube.client.clone());
    let name = object["metadata"]["name"].as_str().expect("name");
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": object["metadata"]["labels"]},
    }))
    .expect("node");
    let resources = &object["status"]["allocatable"];
    let status = json!({"status": {
        "allocatable": resources, "capacity": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": "2026-12-04T00:00:00Z", "lastTransitionTime": "2026-12-04T00:00:00Z"}],
        "nodeInfo": {"kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
            "containerRuntimeVersion": "containerd://1.4.3", "architecture": "amd64", "operatingSystem": "linux",
            "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0", "bootID": "b", "machineID": "m",
            "systemUUID": "s"}}});
    let taints = json!({"spec": {"taints": object["spec"]["taints"].as_array().cloned().unwrap_or_default()}});
    kube.block_on(async {
        api.create(&PostParams::default(), &node).await.expect("creates node");
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
        api.patch(name, &PatchParams::default(), &Patch::Merge(&taints)).await.expect("node taints");
    });
}

/// Creates a pod of the export in `namespace`, unscheduled.
fn create_pod(kube: &Kube, namespace: &str, object: &Value) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": object["metadata"]["name"], "namespace": namespace,
            "labels": object["metadata"]["labels"]},
        "spec": object["spec"],
    }))
    .expect("pod");
    kube.block_on(Api::<Pod>::namespaced(kube.client.clone(), namespace).create(&PostParams::default(), &pod))
        .expect("creates pod");
}

/// `namespace/name -> node` of the pods once every pod is bound or
/// `pending` of them were found unschedulable by the scheduler; `None` for a
/// pod without a node.
fn wait_for_bindings(kube: &Kube, namespaces: &[String], pending: usize) -> BTreeMap<String, Option<String>> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut bindings = BTreeMap::new();
        let mut unschedulable = 0;
        for namespace in namespaces {
            let pods = kube
                .block_on(Api::<Pod>::namespaced(kube.client.clone(), namespace).list(&ListParams::default()))
                .expect("lists pods");
            for pod in pods {
                let name = format!("{namespace}/{}", pod.metadata.name.clone().unwrap_or_default());
                let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                let refused = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|conditions| {
                    conditions.iter().any(|c| {
                        c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
                    })
                });
                unschedulable += usize::from(node.is_none() && refused);
                bindings.insert(name, node);
            }
        }
        let bound = bindings.values().filter(|n| n.is_some()).count();
        if bound + pending == bindings.len() && unschedulable == pending {
            return bindings;
        }
        if Instant::now() > deadline {
            panic!("the scheduler did not settle: {bindings:#?} ({unschedulable} unschedulable)");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_real_scheduler_binds_every_pod_of_the_target_and_not_without_its_gpu_node() {
    let Some(server) = Apiserver::start() else { return };
    let scheduler_binary = binaries().expect("binaries")[2].clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let (inv, plan) = propose_gpu_estate(dir.path(), 2);
    let block = &plan["blocks"][0];
    assert_eq!(block["status"], "planned", "{block:#}");
    let target = &block["target_clusters"][0];
    let target_name = target["name"].as_str().expect("target name");
    let control_plane: BTreeSet<&str> =
        target["control_plane"].as_array().expect("cp").iter().filter_map(|c| c["node"].as_str()).collect();
    // The target's workload nodes: what it keeps, less its dedicated control plane.
    let workers: Vec<&str> = target["nodes_kept"]
        .as_array()
        .expect("kept")
        .iter()
        .filter_map(|n| n["node"].as_str())
        .filter(|n| !control_plane.contains(n))
        .collect();
    // The namespaces that end up there, by source name and new name.
    let moved: BTreeMap<String, String> = block["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .flat_map(|w| w["namespaces"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["to_cluster"] == target_name)
        .map(|m| {
            (m["namespace"].as_str().unwrap_or_default().into(), m["new_name"].as_str().unwrap_or_default().into())
        })
        .collect();
    assert!(moved.contains_key("ml"), "{moved:?}");

    let objects = objects(dir.path());
    let of_kind = |kind: &'static str| objects.iter().filter(move |o| o["kind"] == kind);
    let kube = Kube::connect(&server.admin_kubeconfig);
    for node in of_kind("Node").filter(|n| workers.contains(&n["metadata"]["name"].as_str().unwrap_or_default())) {
        create_node(&kube, node);
    }
    let namespaces: Vec<String> = moved.values().cloned().collect();
    for name in &namespaces {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        kube.block_on(Api::<Namespace>::all(kube.client.clone()).create(&PostParams::default(), &namespace))
            .expect("creates namespace");
    }
    let create_pods = || {
        for pod in of_kind("Pod") {
            if let Some(new_name) = moved.get(pod["metadata"]["namespace"].as_str().unwrap_or_default()) {
                create_pod(&kube, new_name, pod);
            }
        }
    };
    create_pods();
    let _scheduler = Scheduler::start(&scheduler_binary, &server);

    // Every pod is bound; the training pods on the GPU node the plan keeps.
    let bindings = wait_for_bindings(&kube, &namespaces, 0);
    assert_eq!(bindings.len(), 4, "{bindings:#?}");
    let gpu_node: &str = workers.iter().copied().find(|n| n.starts_with("a-gpu")).expect("the target keeps a GPU node");
    for (pod, node) in &bindings {
        let node = node.as_deref().expect("bound");
        assert!(workers.contains(&node), "{pod} on {node}, not a node of the target");
        assert_eq!(pod.starts_with(&format!("{}/", moved["ml"])), node == gpu_node, "{pod} on {node}");
    }

    // The same target without its GPU node: the training pods stay pending.
    kube.block_on(async {
        for namespace in &namespaces {
            let api = Api::<Pod>::namespaced(kube.client.clone(), namespace);
            for pod in api.list(&ListParams::default()).await.expect("lists pods") {
                let name = pod.metadata.name.expect("name");
                api.delete(&name, &DeleteParams::default().grace_period(0)).await.expect("deletes pod");
            }
        }
        Api::<Node>::all(kube.client.clone()).delete(gpu_node, &DeleteParams::default()).await.expect("deletes node");
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while namespaces.iter().any(|ns| {
        !kube
            .block_on(Api::<Pod>::namespaced(kube.client.clone(), ns).list(&ListParams::default()))
            .expect("lists pods")
            .items
            .is_empty()
    }) {
        assert!(Instant::now() < deadline, "pods not deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    create_pods();
    let bindings = wait_for_bindings(&kube, &namespaces, 2);
    let pending: Vec<&String> = bindings.iter().filter(|(_, node)| node.is_none()).map(|(pod, _)| pod).collect();
    assert!(pending.iter().all(|pod| pod.starts_with(&format!("{}/", moved["ml"]))), "{bindings:#?}");

    // kplan's validator refuses that target too, naming the training pods.
    let mut without_gpu: kplan_model::Plan = serde_json::from_value(plan.clone()).expect("plan");
    let policy = without_gpu.policy.clone().expect("the plan records its policy");
    let block = &mut without_gpu.blocks[0];
    block.target_clusters[0].nodes_kept.retain(|n| n.node != gpu_node);
    for wave in &mut block.waves {
        for node in wave.nodes.iter_mut().filter(|n| n.node == gpu_node) {
            node.action = kplan_model::NodeAction::Free;
            node.to_cluster = String::new();
        }
    }
    let inventory: Vec<kplan_model::ClusterSnapshot> = ["big-b", "gpu-a"]
        .iter()
        .map(|id| {
            serde_json::from_str(&kplan_ok(&["--inventory", &inv, "clusters", "show", id, "-o", "json"]))
                .expect("snapshot json")
        })
        .collect();
    let violations: Vec<String> = kplan_planner::validate::validate(&inventory, &policy, &without_gpu)
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    assert!(violations.iter().any(|v| v.contains("ml/Deployment/train") && v.contains(target_name)), "{violations:#?}");
}
