//! A small estate for the pod-level tests (issue 17), as kubectl JSON: `gpu-a`
//! runs training pods that need its tainted GPU nodes (`nvidia.com/gpu: 4`,
//! label `accelerator=nvidia`) and a web pod; `big-b` has large plain nodes the
//! planner would rather keep, three small ones for the target's control plane,
//! and a shop pod.

#![allow(dead_code)]

use serde_json::{Value, json};

use super::common::kplan_ok;

pub fn node(name: &str, zone: &str, cpu: &str, control_plane: bool, gpu: bool) -> Value {
    let mut labels = json!({"topology.kubernetes.io/zone": zone});
    if control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
    }
    let mut allocatable = json!({"cpu": cpu, "memory": "64Gi", "pods": "110"});
    let mut spec = json!({});
    if gpu {
        labels["accelerator"] = json!("nvidia");
        allocatable["nvidia.com/gpu"] = json!("4");
        spec["taints"] = json!([{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]);
    }
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels, "resourceVersion": "100"},
           "spec": spec,
           "status": {"allocatable": allocatable, "nodeInfo": {"kubeletVersion": "v1.29.4",
               "containerRuntimeVersion": "containerd://1.7.13", "architecture": "amd64"}}})
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "resourceVersion": "101",
        "labels": {"kplan.io/security-tier": "prod", "kplan.io/sla-tier": "silver"}}})
}

pub fn pod(namespace: &str, name: &str, owner: &str, cpu: &str, gpu: bool) -> Value {
    let mut resources = json!({"requests": {"cpu": cpu, "memory": "2Gi"}});
    let mut spec = json!({});
    if gpu {
        resources["limits"] = json!({"nvidia.com/gpu": "2"});
        spec["nodeSelector"] = json!({"accelerator": "nvidia"});
        spec["tolerations"] = json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]);
    }
    spec["containers"] = json!([{"name": "c", "image": "registry.example/app:1", "resources": resources}]);
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "resourceVersion": "102",
               "labels": {"pod-template-hash": "5f6"},
               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{owner}-5f6"),
                   "uid": "u", "controller": true}]},
           "spec": spec, "status": {"phase": "Running"}})
}

pub fn list(items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// Writes `gpu-a.json` and `big-b.json` into `dir`, imports them (block
/// fra/prod) and proposes: the inventory directory and the plan. Imports `gpu-a` (with `gpu_nodes` tainted GPU nodes) and `big-b` and proposes.
pub fn propose_gpu_estate(dir: &std::path::Path, gpu_nodes: usize) -> (String, Value) {
    let gpu_a = dir.join("gpu-a.json");
    let mut items = vec![node("a-cp", "z1", "4", true, false), node("a-w1", "z1", "8", false, false)];
    for g in 1..=gpu_nodes {
        items.push(node(&format!("a-gpu{g}"), ["z1", "z2", "z3"][g % 3], "16", false, true));
    }
    items.extend([
        namespace("ml"),
        namespace("web"),
        pod("ml", "train-5f6-a", "train", "1", true),
        pod("ml", "train-5f6-b", "train", "1", true),
        pod("web", "front-5f6-a", "front", "1", false),
    ]);
    std::fs::write(&gpu_a, list(items)).expect("write gpu-a");
    let big_b = dir.join("big-b.json");
    std::fs::write(
        &big_b,
        list(vec![
            node("b-cp1", "z2", "4", true, false),
            node("b-cp2", "z3", "4", true, false),
            node("b-cp3", "z1", "4", true, false),
            node("b-w1", "z2", "64", false, false),
            node("b-w2", "z3", "64", false, false),
            // Small infrastructure workers, one per zone: what the target's
            // control plane is built from (it joins before anything else).
            node("b-infra1", "z1", "4", false, false),
            node("b-infra2", "z2", "4", false, false),
            node("b-infra3", "z3", "4", false, false),
            namespace("shop"),
            pod("shop", "api-5f6-a", "api", "2", false),
        ]),
    )
    .expect("write big-b");
    let inventory = dir.join("inventory");
    let inv = inventory.to_str().expect("utf-8").to_string();
    for (cluster, file) in [("gpu-a", &gpu_a), ("big-b", &big_b)] {
        kplan_ok(&[
            "--inventory",
            &inv,
            "import",
            "--cluster",
            cluster,
            "--datacenter",
            "fra",
            "--security-tier",
            "prod",
            "--zone",
            "z1",
            file.to_str().expect("utf-8"),
        ]);
    }
    let plan: Value = serde_json::from_str(&kplan_ok(&["--inventory", &inv, "propose", "-o", "json"])).expect("plan");
    (inv, plan)
}
