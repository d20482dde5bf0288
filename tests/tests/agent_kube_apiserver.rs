//! Issue 3 end to end against a REAL kube-apiserver (v1.20.2 with etcd, on
//! loopback; `scripts/kube-apiserver.sh` builds it once from Debian's source
//! package and caches it under ~/.cache/kplan/kube).
//!
//! The agent runs as the user `kplan-agent`, bound by a ClusterRoleBinding to
//! the ClusterRole of `deploy/kubernetes/agent/clusterrole.yaml` and nothing
//! else: the agent working at all proves it needs no more. One API server
//! serves every test of this binary (started on first use, stopped when the
//! test process exits).
//!
//! Gatekeeper runs nowhere here; its ConstraintTemplate CRD (the vendored
//! fixture), a template, the CRD Gatekeeper would make of it and an upstream
//! constraint (`fixtures/k8s/admission/`) are created by hand, and the agent
//! must report the constraint by kind and name. This API server predates
//! ValidatingAdmissionPolicy v1 (1.30): the agent reports without it.
//!
//! In CI (`CI` set) a missing API server fails the tests with the build's
//! reason; elsewhere they are skipped with a notice (`kube_harness`).

mod common;
mod kube_harness;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube_harness::{Apiserver, Kube};
use serde_json::{Value, json};

/// The shared API server with the agent's RBAC applied, or `None` (skip)
/// when it cannot be had outside CI.
fn apiserver() -> Option<&'static Apiserver> {
    static APISERVER: OnceLock<Option<Apiserver>> = OnceLock::new();
    APISERVER
        .get_or_init(|| {
            let server = Apiserver::start()?;
            Kube::connect(&server.admin_kubeconfig).apply_agent_rbac();
            Some(server)
        })
        .as_ref()
}

impl Kube {
    fn apply_agent_rbac(&self) {
        let text =
            std::fs::read_to_string(repo_root().join("deploy/kubernetes/agent/clusterrole.yaml")).expect("clusterrole");
        let role: ClusterRole = serde_saphyr::from_str(&text).expect("clusterrole.yaml is a ClusterRole");
        let name = role.metadata.name.clone().expect("named");
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "kplan-agent-e2e"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kplan-agent"}]
        }))
        .expect("binding");
        self.block_on(async {
            Api::<ClusterRole>::all(self.client.clone()).create(&PostParams::default(), &role).await.expect("role");
            Api::<ClusterRoleBinding>::all(self.client.clone())
                .create(&PostParams::default(), &binding)
                .await
                .expect("binding");
        });
    }

    /// A Gatekeeper constraint as Gatekeeper would leave it: the template CRD,
    /// a ConstraintTemplate defining `K8sRequiredLabels`, that kind's CRD and
    /// one constraint (the upstream fixture).
    fn create_gatekeeper_constraint(&self) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let yaml = |path: &str| -> Vec<Value> {
            let text = std::fs::read_to_string(repo_root().join(path)).expect(path);
            serde_saphyr::from_multiple::<Value>(&text).expect(path)
        };
        let constraint_crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "k8srequiredlabels.constraints.gatekeeper.sh"},
            "spec": {
                "group": "constraints.gatekeeper.sh",
                "scope": "Cluster",
                "names": {"kind": "K8sRequiredLabels", "plural": "k8srequiredlabels", "listKind": "K8sRequiredLabelsList",
                          "singular": "k8srequiredlabels", "categories": ["constraint", "constraints"]},
                "versions": [{"name": "v1beta1", "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        });
        let template = json!({
            "apiVersion": "templates.gatekeeper.sh/v1",
            "kind": "ConstraintTemplate",
            "metadata": {"name": "k8srequiredlabels"},
            "spec": {
                "crd": {"spec": {"names": {"kind": "K8sRequiredLabels"}}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": "package k8srequiredlabels\nviolation[{\"msg\": \"x\"}] { false }\n"}]
            }
        });
        let dynamic = |group: &str, version: &str, kind: &str, plural: &str| {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
        };
        self.block_on(async {
            let crds = Api::<CustomResourceDefinition>::all(self.client.clone());
            for crd in [yaml("fixtures/k8s/gatekeeper/constrainttemplate-crd.yaml").remove(0), constraint_crd] {
                let crd: CustomResourceDefinition = serde_json::from_value(crd).expect("a CRD");
                let name = crd.metadata.name.clone().expect("named");
                crds.create(&PostParams::default(), &crd).await.expect("creates the CRD");
                let established = |crd: CustomResourceDefinition| {
                    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
                    conditions.iter().any(|c| c.type_ == "Established" && c.status == "True")
                };
                let mut tries = 0;
                while !established(crds.get(&name).await.expect("the CRD")) {
                    tries += 1;
                    assert!(tries < 100, "CRD {name} never established");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            // Discovery may lag a moment behind the condition.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let templates = dynamic("templates.gatekeeper.sh", "v1", "ConstraintTemplate", "constrainttemplates");
            let object: DynamicObject = serde_json::from_value(template).expect("a template");
            Api::<DynamicObject>::all_with(self.client.clone(), &templates)
                .create(&PostParams::default(), &object)
                .await
                .expect("creates the template");
            let constraints = dynamic("constraints.gatekeeper.sh", "v1beta1", "K8sRequiredLabels", "k8srequiredlabels");
            let constraint = yaml("fixtures/k8s/admission/gatekeeper-constraint-scoped.yaml").remove(0);
            let object: DynamicObject = serde_json::from_value(constraint).expect("a constraint");
            Api::<DynamicObject>::all_with(self.client.clone(), &constraints)
                .create(&PostParams::default(), &object)
                .await
                .expect("creates the constraint");
        });
    }

    fn create_namespace(&self, name: &str, labels: Value) {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("namespace");
        self.block_on(Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &namespace))
            .expect("creates namespace");
    }

    /// Creates a node, then sets its status through the status subresource.
    fn create_node(&self, name: &str, labels: Value, cpu: &str, memory: &str) {
        let api = Api::<Node>::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("node");
        let status = json!({"status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "nodeInfo": {
                "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                "containerRuntimeVersion": "containerd://1.4.3", "architecture": "amd64",
                "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                "bootID": "b", "machineID": "m", "systemUUID": "s"
            }
        }});
        self.block_on(async {
            api.create(&PostParams::default(), &node).await.expect("creates node");
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
        });
    }

    /// A GPU node as a device plugin leaves it: tainted, labelled, with
    /// `nvidia.com/gpu` among its allocatable resources.
    fn create_gpu_node(&self, name: &str) {
        let api = Api::<Node>::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/region": "fra",
                "topology.kubernetes.io/zone": "fra-a", "accelerator": "nvidia"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
        }))
        .expect("node");
        let resources = json!({"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4"});
        let status = json!({"status": {"allocatable": resources, "capacity": resources, "nodeInfo": {
            "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
            "containerRuntimeVersion": "containerd://1.4.3", "architecture": "amd64",
            "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
            "bootID": "b", "machineID": "m", "systemUUID": "s"}}});
        self.block_on(async {
            api.create(&PostParams::default(), &node).await.expect("creates node");
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
        });
    }

    /// A pod of a Deployment's ReplicaSet (owner reference and
    /// `pod-template-hash` as the controllers set them).
    fn create_replica(&self, namespace: &str, name: &str, deployment: &str, hash: &str, spec: Value) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace, "labels": {"pod-template-hash": hash, "app": deployment},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-{hash}"),
                    "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
            "spec": spec
        }))
        .expect("pod");
        self.block_on(Api::<Pod>::namespaced(self.client.clone(), namespace).create(&PostParams::default(), &pod))
            .expect("creates pod");
    }

    fn create_pod(&self, namespace: &str, name: &str, node: &str, spec: Value) {
        let mut spec = spec;
        spec["nodeName"] = json!(node);
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": namespace}, "spec": spec}))
                .expect("pod");
        self.block_on(Api::<Pod>::namespaced(self.client.clone(), namespace).create(&PostParams::default(), &pod))
            .expect("creates pod");
    }

    fn patch_labels<K>(&self, api: Api<K>, name: &str, labels: Value)
    where
        K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let patch = json!({"metadata": {"labels": labels}});
        self.block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).expect("patches labels");
    }

    /// Issue 17: a local PersistentVolume on `node` (100 GiB, class
    /// `local-nvme`), its claim `data-db-0` in `db` bound to it by
    /// `spec.volumeName` (no controller binds it here), and a pod mounting the
    /// claim. Nothing schedules or runs the pod: it stays Pending.
    fn create_local_volume(&self, node: &str) {
        let class: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": "local-nvme"},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer"
        }))
        .expect("storage class");
        let volume: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pv-db-0"},
            "spec": {
                "capacity": {"storage": "100Gi"}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": "local-nvme", "persistentVolumeReclaimPolicy": "Retain",
                "local": {"path": "/mnt/nvme0"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
            }
        }))
        .expect("persistent volume");
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data-db-0", "namespace": "db"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-nvme", "volumeName": "pv-db-0",
                     "resources": {"requests": {"storage": "80Gi"}}}
        }))
        .expect("claim");
        self.block_on(async {
            Api::<StorageClass>::all(self.client.clone())
                .create(&PostParams::default(), &class)
                .await
                .expect("creates storage class");
            Api::<PersistentVolume>::all(self.client.clone())
                .create(&PostParams::default(), &volume)
                .await
                .expect("creates persistent volume");
            Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), "db")
                .create(&PostParams::default(), &claim)
                .await
                .expect("creates claim");
        });
        self.create_pod(
            "db",
            "db-0",
            node,
            json!({"containers": [container("pg", "500m", "1Gi")],
                   "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]}),
        );
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }
}

fn container(name: &str, cpu: &str, memory: &str) -> Value {
    json!({"name": name, "image": "registry.example/app:1", "resources": {"requests": {"cpu": cpu, "memory": memory}}})
}

const CLUSTER: &str = "lab-real";
const GI: u64 = 1 << 30;
const MI: u64 = 1 << 20;

/// Loads the test cluster: 4 nodes (label chains, beta labels, only a
/// hostname), 3 namespaces, 4 running pods, one finished pod, calico's
/// DaemonSet; and (issue 17) a GPU node with two training pods, and a
/// database pod whose claim is bound to a local volume on w-3.
/// PodDisruptionBudgets as the tests' API server (1.20) serves them.
fn budgets_v1beta1() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget"))
}

fn load_cluster(kube: &Kube) {
    kube.create_gatekeeper_constraint();
    kube.create_namespace("payments", json!({"kplan.io/security-tier": "prod", "kplan.io/sla-tier": "gold"}));
    kube.create_namespace("web", json!({"kplan.io/security-tier": "prod", "kplan.io/sla-tier": "silver"}));
    kube.create_namespace("batch", json!({"team": "data"}));
    kube.create_node(
        "cp-1",
        json!({"node-role.kubernetes.io/control-plane": "", "topology.kubernetes.io/region": "fra",
               "topology.kubernetes.io/zone": "fra-a"}),
        "4",
        "16Gi",
    );
    kube.create_node(
        "w-1",
        json!({"topology.kubernetes.io/region": "fra", "kplan.io/firewall-zone": "fra-dmz"}),
        "8",
        "32Gi",
    );
    kube.create_node(
        "w-2",
        json!({"failure-domain.beta.kubernetes.io/region": "fra", "failure-domain.beta.kubernetes.io/zone": "fra-b",
               "kubernetes.io/hostname": "w-2"}),
        "3500m",
        "16417180Ki",
    );
    kube.create_node("w-3", json!({"kubernetes.io/hostname": "w-3"}), "2", "8Gi");
    // Issue 17: a GPU node and two training pods that need it (not yet scheduled).
    kube.create_gpu_node("gpu-1");
    kube.create_namespace("ml", json!({"kplan.io/security-tier": "prod"}));
    for name in ["train-5f6-a", "train-5f6-b"] {
        kube.create_replica(
            "ml",
            name,
            "train",
            "5f6",
            json!({
                "containers": [{"name": "t", "image": "registry.example/train:1",
                    "resources": {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"nvidia.com/gpu": "2"}}}],
                "nodeSelector": {"accelerator": "nvidia"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
            }),
        );
    }
    // Issue 17: a PodDisruptionBudget over the training pods (by their label),
    // as policy/v1beta1: this API server (1.20) predates policy/v1, and the
    // agent reads whichever it serves.
    let budget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "train", "namespace": "ml"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "train"}}}
    }))
    .expect("pdb");
    kube.block_on(
        Api::<DynamicObject>::namespaced_with(kube.client.clone(), "ml", &budgets_v1beta1())
            .create(&PostParams::default(), &budget),
    )
    .expect("creates pdb");
    kube.create_pod(
        "payments",
        "api-0",
        "w-1",
        json!({"containers": [container("a", "500m", "1Gi"), container("b", "250m", "512Mi")]}),
    );
    kube.create_pod(
        "payments",
        "api-1",
        "w-2",
        json!({"containers": [container("a", "1", "2Gi")], "initContainers": [container("init", "2", "256Mi")]}),
    );
    kube.create_pod("web", "front-0", "w-1", json!({"containers": [container("web", "100m", "128Mi")]}));
    kube.create_pod("kube-system", "calico-node-x1", "w-3", json!({"containers": [container("calico", "250m", "0")]}));
    kube.create_namespace("db", json!({"kplan.io/security-tier": "prod"}));
    kube.create_local_volume("w-3");
    // A finished pod asks for nothing.
    kube.create_pod("batch", "done-0", "w-3", json!({"containers": [container("job", "4", "4Gi")]}));
    let finished = json!({"status": {"phase": "Succeeded"}});
    kube.block_on(Api::<Pod>::namespaced(kube.client.clone(), "batch").patch_status(
        "done-0",
        &PatchParams::default(),
        &Patch::Merge(&finished),
    ))
    .expect("pod status");
    let daemon_set: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "calico-node", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "calico-node"}},
            "template": {"metadata": {"labels": {"k8s-app": "calico-node"}},
                         "spec": {"containers": [{"name": "calico-node", "image": "calico/node:v3.17"}]}}
        }
    }))
    .expect("daemonset");
    kube.block_on(
        Api::<DaemonSet>::namespaced(kube.client.clone(), "kube-system").create(&PostParams::default(), &daemon_set),
    )
    .expect("creates daemonset");
}

fn show(url: &str) -> Option<Value> {
    let out = kplan(&["--server", url, "clusters", "show", CLUSTER, "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("json"))
}

fn node<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["nodes"].as_array().expect("nodes").iter().find(|n| n["name"] == name).unwrap_or_else(|| {
        panic!("node {name} missing: {snapshot:#}");
    })
}

fn namespace<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["namespaces"].as_array().expect("namespaces").iter().find(|n| n["name"] == name).unwrap_or_else(|| {
        panic!("namespace {name} missing: {snapshot:#}");
    })
}

/// Polls `kplan clusters show` until `condition` holds; returns the snapshot
/// and how long it took.
fn wait_until(
    url: &str,
    what: &str,
    timeout: Duration,
    agent: &mut AgentProcess,
    condition: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        if let Some(snapshot) = show(url)
            && condition(&snapshot)
        {
            return (snapshot, started.elapsed());
        }
        if started.elapsed() > timeout {
            panic!("{what}: not within {timeout:?}; server has {:#?}\nagent log:\n{}", show(url), agent.log_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_agent_reports_a_real_cluster_follows_changes_and_survives_an_outage() {
    let Some(apiserver) = apiserver() else { return };
    let kube = Kube::connect(&apiserver.admin_kubeconfig);
    load_cluster(&kube);

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = start_server_on(&data, &addr);
    let url = server.url();
    let debounce = Duration::from_secs(1);
    let mut agent = AgentProcess::start(
        &[
            "--kubeconfig",
            apiserver.agent_kubeconfig.to_str().expect("utf-8 path"),
            "--cluster-id",
            CLUSTER,
            "--server",
            &url,
            "--datacenter",
            "lab-dc",
            "--zone",
            "lab-zone",
            "--security-tier",
            "dev",
        ],
        &[
            ("KPLAN_AGENT_DEBOUNCE_SECONDS", "1"),
            ("KPLAN_AGENT_RETRY_INITIAL_SECONDS", "0.5"),
            ("KPLAN_AGENT_RETRY_MAX_SECONDS", "4"),
            ("KPLAN_AGENT_HEALTH_LISTEN", "127.0.0.1:0"),
        ],
    );
    let health = agent.wait_for("agent started", Duration::from_secs(30))["health_addr"]
        .as_str()
        .expect("health_addr")
        .to_string();
    agent.wait_for("snapshot reported", Duration::from_secs(60));
    assert_eq!(http_get(&health, "/readyz").0, 200);
    assert_eq!(http_get(&health, "/healthz").0, 200);

    // Labels, zones, capacities and demand arrived.
    let snapshot = show(&url).expect("the agent's report is stored");
    // The Gatekeeper constraint, by kind and name, with the namespaces it is limited to.
    assert_eq!(
        snapshot["isolation"]["admission_policies"],
        json!([{"group": "constraints.gatekeeper.sh", "kind": "K8sRequiredLabels", "name": "cm-must-have-gk-scoped",
                "namespaces": ["gatekeeper-test-playground-scoped"], "actions": ["scoped"]}]),
        "{snapshot:#}"
    );
    assert_eq!(snapshot["nodes"].as_array().expect("nodes").len(), 5, "{snapshot:#}");
    // What the scheduler reads: the GPU node's taint and devices, the training
    // pods as one group of their Deployment with their needs.
    let gpu = node(&snapshot, "gpu-1");
    // The API server also taints a node that never reported Ready
    // (node.kubernetes.io/not-ready): recorded, and not counted by plans.
    let taints = gpu["taints"].as_array().expect("taints");
    assert!(
        taints.contains(&json!({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})),
        "{taints:?}"
    );
    assert_eq!(gpu["extended"]["nvidia.com/gpu"], 4);
    let groups = namespace(&snapshot, "ml")["pod_groups"].as_array().expect("pod groups").clone();
    assert_eq!(groups.len(), 1, "{groups:#?}");
    let train = &groups[0];
    assert_eq!((train["owner_kind"].as_str(), train["owner_name"].as_str()), (Some("Deployment"), Some("train")));
    assert_eq!(train["replicas"], 2);
    assert_eq!(train["extended"]["nvidia.com/gpu"], 2);
    assert_eq!(train["node_selector"]["accelerator"], "nvidia");
    // Besides its own, the API server gives every pod the default not-ready and
    // unreachable tolerations (DefaultTolerationSeconds).
    let tolerations = train["tolerations"].as_array().expect("tolerations");
    assert!(tolerations.iter().any(|t| t["key"] == "nvidia.com/gpu" && t["operator"] == "Exists"), "{tolerations:?}");
    // Its PodDisruptionBudget, with the workload its selector matches.
    let (snapshot, _) = wait_until(&url, "the pod disruption budget", Duration::from_secs(10), &mut agent, |s| {
        namespace(s, "ml")["disruption_budgets"] != Value::Null
    });
    assert_eq!(
        namespace(&snapshot, "ml")["disruption_budgets"],
        json!([{"name": "train", "min_available": "1", "workloads": ["Deployment/train"]}])
    );
    let cp = node(&snapshot, "cp-1");
    assert_eq!(
        (cp["role"].as_str(), cp["zone"].as_str(), cp["datacenter"].as_str()),
        (Some("control-plane"), Some("fra-a"), Some("fra"))
    );
    assert_eq!(cp["allocatable"], json!({"cpu_millis": 4000, "memory_bytes": 16 * GI, "pods": 110}));
    assert_eq!(cp["kubelet_version"], "v1.20.2");
    assert_eq!(cp["labels"]["topology.kubernetes.io/zone"], "fra-a");
    assert_eq!(node(&snapshot, "w-1")["zone"], "fra-dmz");
    let w2 = node(&snapshot, "w-2");
    assert_eq!((w2["zone"].as_str(), w2["datacenter"].as_str()), (Some("fra-b"), Some("fra")));
    assert_eq!(w2["allocatable"]["cpu_millis"], 3500);
    assert_eq!(w2["allocatable"]["memory_bytes"], 16_417_180u64 * 1024);
    let w3 = node(&snapshot, "w-3");
    assert_eq!((w3["zone"].as_str(), w3["datacenter"].as_str()), (Some("lab-zone"), Some("lab-dc")));
    let payments = namespace(&snapshot, "payments");
    assert_eq!((payments["security_tier"].as_str(), payments["sla_tier"].as_str()), (Some("prod"), Some("gold")));
    // api-0: 500m + 250m, 1.5 GiB; api-1: max(1, init 2) cpu, max(2 GiB, 256 MiB).
    assert_eq!(payments["requests"], json!({"cpu_millis": 2750, "memory_bytes": GI + 512 * MI + 2 * GI, "pods": 2}));
    assert_eq!(namespace(&snapshot, "web")["requests"]["cpu_millis"], 100);
    let batch = namespace(&snapshot, "batch");
    assert_eq!((batch["security_tier"].as_str(), batch["sla_tier"].as_str()), (Some("dev"), Some("bronze")));
    assert_eq!(batch["requests"]["pods"], 0, "the finished pod does not count");
    assert_eq!(snapshot["facts"]["cni"], "calico");
    assert_eq!(snapshot["facts"]["kubernetes_version"], "v1.20.2");
    // The database pod's claim, resolved through the watched claims, volumes
    // and classes: the local volume pins it to w-3.
    let db = namespace(&snapshot, "db")["pod_groups"].as_array().expect("pod groups").clone();
    assert_eq!(db.len(), 1, "{db:#?}");
    let volumes = db[0]["volumes"].as_array().expect("volumes");
    assert_eq!(volumes.len(), 1, "{volumes:#?}");
    let volume = &volumes[0];
    assert_eq!(
        (
            volume["claim"].as_str(),
            volume["volume"].as_str(),
            volume["storage_class"].as_str(),
            volume["driver"].as_str()
        ),
        (Some("data-db-0"), Some("pv-db-0"), Some("local-nvme"), Some("kubernetes.io/local")),
        "{volume:#}"
    );
    assert_eq!(volume["size_bytes"], 100 * GI, "the volume's capacity, not the claim's request");
    let pinned: kplan_model::scheduling::NodeAffinity =
        serde_json::from_value(volume["node_affinity"].clone()).expect("the local volume's node affinity");
    let labels = |name: &str| -> std::collections::BTreeMap<String, String> {
        serde_json::from_value(node(&snapshot, name)["labels"].clone()).expect("node labels")
    };
    assert!(pinned.matches(&labels("w-3")), "{pinned:?} must match w-3: {:?}", labels("w-3"));
    assert!(!pinned.matches(&labels("w-2")), "{pinned:?} must not match w-2: {:?}", labels("w-2"));

    // A node label and a namespace's tier label change through the API: they
    // arrive within the debounce interval (plus delivery).
    let generation = snapshot["generation"].as_u64().expect("generation");
    kube.patch_labels(kube.nodes(), "w-1", json!({"kplan.io/firewall-zone": "fra-dmz-2"}));
    kube.patch_labels(kube.namespaces(), "web", json!({"kplan.io/security-tier": "dev"}));
    let (changed, latency) = wait_until(&url, "label changes", Duration::from_secs(20), &mut agent, |s| {
        node(s, "w-1")["zone"] == "fra-dmz-2" && namespace(s, "web")["security_tier"] == "dev"
    });
    eprintln!("label changes arrived after {latency:?} (debounce {debounce:?})");
    assert!(latency < debounce + Duration::from_millis(1500), "took {latency:?} with a {debounce:?} debounce");
    assert!(changed["generation"].as_u64().expect("generation") > generation);

    // Outage: the server stops, the cluster changes, the server comes back on
    // the same data directory and port.
    server.kill9();
    let outage_started = Instant::now();
    kube.create_node(
        "w-4",
        json!({"topology.kubernetes.io/region": "fra", "topology.kubernetes.io/zone": "fra-c"}),
        "16",
        "64Gi",
    );
    // No kubelet confirms a graceful deletion here: delete at once.
    kube.block_on(
        Api::<Pod>::namespaced(kube.client.clone(), "payments")
            .delete("api-0", &DeleteParams::default().grace_period(0)),
    )
    .expect("deletes pod");
    kube.patch_labels(kube.namespaces(), "payments", json!({"kplan.io/sla-tier": "silver"}));
    std::thread::sleep(Duration::from_secs(9));
    let n_failed_during_outage = agent.messages("report failed").len();
    let server = start_server_on(&data, &addr);
    let outage = outage_started.elapsed();
    let (recovered, _) = wait_until(&url, "state after the outage", Duration::from_secs(30), &mut agent, |s| {
        s["nodes"].as_array().is_some_and(|nodes| nodes.len() == 6)
            && namespace(s, "payments")["sla_tier"] == "silver"
            && namespace(s, "payments")["requests"]["pods"] == 1
    });
    assert_eq!(node(&recovered, "w-4")["zone"], "fra-c");
    assert_eq!(node(&recovered, "w-1")["zone"], "fra-dmz-2", "changes from before the outage are kept");

    // The log shows backoff, not a hot loop: a handful of attempts whose
    // delays grow up to the 4 s cap.
    let failures = agent.messages("report failed");
    let delays: Vec<u64> = failures.iter().map(|line| line["retry_in_ms"].as_u64().expect("retry_in_ms")).collect();
    eprintln!("{} failed attempts in a {outage:?} outage, retry delays {delays:?} ms", failures.len());
    assert!(n_failed_during_outage >= 3, "expected retries during the outage: {delays:?}");
    assert!(failures.len() <= 12, "hot loop: {} attempts in {outage:?}: {delays:?}", failures.len());
    assert!(delays.iter().all(|delay| (250..=4000).contains(delay)), "{delays:?}");
    for pair in delays.windows(2).take(3) {
        assert!(pair[1] >= pair[0], "delays must grow until the cap: {delays:?}");
    }
    assert!(delays.iter().max() > delays.first(), "{delays:?}");
    let attempts: Vec<u64> = failures.iter().map(|line| line["attempt"].as_u64().expect("attempt")).collect();
    assert_eq!(attempts, (1..=attempts.len() as u64).collect::<Vec<_>>(), "one delivery, counted attempts");
    // The delivery that ended the outage is the first report after the last
    // failure (later changes in the cluster may be reported again, at attempt 1).
    let last_failure = failures.last().expect("failures")["timestamp"].as_str().expect("timestamp").to_string();
    // The server may show the report a moment before the agent logs its acknowledgement.
    let log_deadline = Instant::now() + Duration::from_secs(10);
    let delivered = loop {
        let found = agent
            .messages("snapshot reported")
            .into_iter()
            .find(|line| line["timestamp"].as_str().is_some_and(|at| at > last_failure.as_str()));
        match found {
            Some(line) => break line,
            None if Instant::now() > log_deadline => panic!("reported after the outage:\n{}", agent.log_text()),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(delivered["attempt"].as_u64(), Some(attempts.len() as u64 + 1), "{delivered}");

    // The server ends with the cluster's current state: what a fresh
    // `kplan-agent snapshot` of the cluster gives, generation and time aside.
    let fresh = dir.path().join("fresh.json");
    let output = Command::new(bin("kplan-agent"))
        .args(["--kubeconfig", apiserver.agent_kubeconfig.to_str().expect("utf-8 path"), "--cluster-id", CLUSTER])
        .args(["--datacenter", "lab-dc", "--zone", "lab-zone", "--security-tier", "dev"])
        .args(["snapshot", "--out", fresh.to_str().expect("utf-8 path")])
        .output()
        .expect("runs kplan-agent snapshot");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let inventory = dir.path().join("inventory");
    let inventory = inventory.to_str().expect("utf-8 path");
    kplan_ok(&["--inventory", inventory, "import", "--cluster", CLUSTER, fresh.to_str().expect("utf-8 path")]);
    let mut fresh: Value =
        serde_json::from_str(&kplan_ok(&["--inventory", inventory, "clusters", "show", CLUSTER, "-o", "json"]))
            .expect("json");
    let mut stored = show(&url).expect("stored");
    for snapshot in [&mut stored, &mut fresh] {
        snapshot["generation"] = json!(0);
        snapshot["collected_at_unix"] = json!(0);
    }
    assert_eq!(stored, fresh);
    drop(server);
}

#[test]
fn the_agent_user_may_read_and_nothing_else() {
    let Some(apiserver) = apiserver() else { return };
    let agent = Kube::connect(&apiserver.agent_kubeconfig);
    agent.block_on(async {
        let client = agent.client.clone();
        Api::<Node>::all(client.clone()).list(&ListParams::default()).await.expect("may list nodes");
        Api::<Namespace>::all(client.clone()).list(&ListParams::default()).await.expect("may list namespaces");
        Api::<Pod>::all(client.clone()).list(&ListParams::default()).await.expect("may list pods");
        Api::<DaemonSet>::all(client.clone()).list(&ListParams::default()).await.expect("may list daemonsets");
        Api::<PersistentVolumeClaim>::all(client.clone()).list(&ListParams::default()).await.expect("may list claims");
        Api::<PersistentVolume>::all(client.clone()).list(&ListParams::default()).await.expect("may list volumes");
        Api::<StorageClass>::all(client.clone()).list(&ListParams::default()).await.expect("may list classes");
        Api::<DynamicObject>::all_with(client.clone(), &budgets_v1beta1())
            .list(&ListParams::default())
            .await
            .expect("may list budgets");
        let forbidden =
            |result: Result<_, kube::Error>| matches!(result, Err(kube::Error::Api(status)) if status.code == 403);
        assert!(forbidden(Api::<Secret>::all(client.clone()).list(&ListParams::default()).await.map(|_| ())));
        let config_map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("configmap");
        assert!(forbidden(
            Api::<ConfigMap>::namespaced(client.clone(), "default")
                .create(&PostParams::default(), &config_map)
                .await
                .map(|_| ())
        ));
        let patch = json!({"metadata": {"labels": {"x": "y"}}});
        assert!(forbidden(
            Api::<Namespace>::all(client.clone())
                .patch("default", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        ));
        assert!(forbidden(Api::<Namespace>::all(client).delete("default", &DeleteParams::default()).await.map(|_| ())));
    });
}
