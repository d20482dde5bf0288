//! Lean views of Pods and Nodes: only the fields the label contract reads are
//! deserialised; the rest of each object (environment, volumes other than
//! claims, managed fields, conditions, a node's image list, …) is skipped by the JSON parser
//! without being allocated. The watchers list and watch these types; each is
//! turned into the k8s-openapi object the collector takes ([`LeanPod::into_pod`],
//! [`LeanNode::into_node`]) holding just those fields.
//!
//! A pod's contribution depends on: name, namespace, owner references (the
//! workload name of system pods, a pod group's workload), the
//! `pod-template-hash` label (a ReplicaSet's Deployment), `spec.containers[*]`
//! and `spec.initContainers[*]` `resources` and `restartPolicy`,
//! `spec.overhead`, `spec.resources` (pod-level requests), what the scheduler
//! reads (`spec.nodeSelector`, the required part of `spec.affinity.nodeAffinity`,
//! `spec.tolerations`, `spec.runtimeClassName`), its volumes (the claims it
//! mounts, and every volume's source for the Pod Security Standards), what
//! the Pod Security Standards read (`spec.securityContext`, `hostNetwork`,
//! `hostPID`, `hostIPC`, `spec.os`, each container's, init and ephemeral
//! container's `securityContext` and `ports`), and `status.phase`. A node's
//! on: name, labels, `spec.unschedulable`, `spec.taints`, `status.allocatable`,
//! `status.nodeInfo`, `status.runtimeHandlers`.
//! A unit test checks that the lean path gives the same inventory as the
//! full objects for every pod and node of the bank example.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EphemeralContainer, Node, NodeAffinity, NodeRuntimeHandler, NodeSpec,
    NodeStatus, NodeSystemInfo, Pod, PodOS, PodSecurityContext, PodSpec, PodStatus, ResourceRequirements,
    SecurityContext, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Deserializer};

/// The metadata fields read of pods and nodes (a node's owner references are
/// not read). A pod's labels are read for `pod-template-hash` (a ReplicaSet's
/// pods carry it) and for what PodDisruptionBudgets select: the view keeps
/// one copy per workload, not per pod.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanMeta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    owner_references: Option<Vec<LeanOwner>>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanNodeMeta {
    name: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanOwner {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    controller: Option<bool>,
}

fn lean_meta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let meta = LeanMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        resource_version: meta.resource_version,
        labels: meta.labels,
        owner_references: meta.owner_references.map(|owners| {
            owners
                .into_iter()
                .map(|owner| OwnerReference {
                    kind: owner.kind,
                    name: owner.name,
                    controller: owner.controller,
                    ..OwnerReference::default()
                })
                .collect()
        }),
        ..ObjectMeta::default()
    })
}

fn lean_node_meta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let meta = LeanNodeMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: meta.name,
        resource_version: meta.resource_version,
        labels: meta.labels,
        ..ObjectMeta::default()
    })
}

macro_rules! resource {
    ($type:ty, $kind:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $type {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("")
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("v1")
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A Pod as the agent reads it (see the module documentation).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LeanPod {
    #[serde(default, deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<LeanPodSpec>,
    #[serde(default)]
    status: Option<LeanPodStatus>,
}

resource!(LeanPod, "Pod", "pods", k8s_openapi::NamespaceResourceScope);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanPodSpec {
    #[serde(default)]
    containers: Vec<LeanContainer>,
    init_containers: Option<Vec<LeanContainer>>,
    overhead: Option<BTreeMap<String, Quantity>>,
    resources: Option<LeanResources>,
    node_selector: Option<BTreeMap<String, String>>,
    affinity: Option<LeanAffinity>,
    tolerations: Option<Vec<Toleration>>,
    runtime_class_name: Option<String>,
    volumes: Option<Vec<Volume>>,
    security_context: Option<PodSecurityContext>,
    #[serde(rename = "hostNetwork")]
    host_network: Option<bool>,
    #[serde(rename = "hostPID")]
    host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    host_ipc: Option<bool>,
    os: Option<PodOS>,
    ephemeral_containers: Option<Vec<LeanContainer>>,
}

/// Only the node affinity of `spec.affinity` (pod affinity is not read).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanAffinity {
    node_affinity: Option<NodeAffinity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanContainer {
    resources: Option<LeanResources>,
    restart_policy: Option<String>,
    security_context: Option<SecurityContext>,
    ports: Option<Vec<ContainerPort>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct LeanResources {
    limits: Option<BTreeMap<String, Quantity>>,
    requests: Option<BTreeMap<String, Quantity>>,
}

impl LeanResources {
    fn into_requirements(self) -> ResourceRequirements {
        ResourceRequirements { limits: self.limits, requests: self.requests, ..Default::default() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct LeanPodStatus {
    phase: Option<String>,
}

impl LeanContainer {
    /// Without its name: the collector names containers by index.
    fn into_container(self) -> Container {
        Container {
            resources: self.resources.map(LeanResources::into_requirements),
            restart_policy: self.restart_policy,
            security_context: self.security_context,
            ports: self.ports,
            ..Container::default()
        }
    }

    /// An ephemeral container: what the Pod Security Standards read of it.
    fn into_ephemeral(self) -> EphemeralContainer {
        EphemeralContainer {
            security_context: self.security_context,
            ports: self.ports,
            ..EphemeralContainer::default()
        }
    }
}

impl LeanPod {
    /// The k8s-openapi Pod holding the fields read (for [`pod_demand`](crate::collect::pod_demand)).
    pub fn into_pod(self) -> Pod {
        Pod {
            metadata: self.metadata,
            spec: self.spec.map(|spec| PodSpec {
                containers: spec.containers.into_iter().map(LeanContainer::into_container).collect(),
                init_containers: spec
                    .init_containers
                    .map(|containers| containers.into_iter().map(LeanContainer::into_container).collect()),
                overhead: spec.overhead,
                resources: spec.resources.map(LeanResources::into_requirements),
                node_selector: spec.node_selector,
                affinity: spec
                    .affinity
                    .map(|affinity| Affinity { node_affinity: affinity.node_affinity, ..Affinity::default() }),
                tolerations: spec.tolerations,
                runtime_class_name: spec.runtime_class_name,
                volumes: spec.volumes,
                security_context: spec.security_context,
                host_network: spec.host_network,
                host_pid: spec.host_pid,
                host_ipc: spec.host_ipc,
                os: spec.os,
                ephemeral_containers: spec
                    .ephemeral_containers
                    .map(|containers| containers.into_iter().map(LeanContainer::into_ephemeral).collect()),
                ..PodSpec::default()
            }),
            status: self.status.map(|status| PodStatus { phase: status.phase, ..PodStatus::default() }),
        }
    }
}

/// A Node as the agent reads it (see the module documentation).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LeanNode {
    #[serde(default, deserialize_with = "lean_node_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<LeanNodeSpec>,
    #[serde(default)]
    status: Option<LeanNodeStatus>,
}

resource!(LeanNode, "Node", "nodes", k8s_openapi::ClusterResourceScope);

#[derive(Debug, Clone, Default, Deserialize)]
struct LeanNodeSpec {
    unschedulable: Option<bool>,
    /// What the scheduler keeps off the node (issue 17).
    taints: Option<Vec<k8s_openapi::api::core::v1::Taint>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanNodeStatus {
    allocatable: Option<BTreeMap<String, Quantity>>,
    node_info: Option<LeanNodeInfo>,
    runtime_handlers: Option<Vec<NodeRuntimeHandler>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanNodeInfo {
    #[serde(default)]
    kubelet_version: String,
    #[serde(default)]
    container_runtime_version: String,
    #[serde(default)]
    architecture: String,
}

impl LeanNode {
    /// The k8s-openapi Node holding the fields read (for [`node_from_k8s`](crate::collect::node_from_k8s)).
    pub fn into_node(self) -> Node {
        Node {
            metadata: self.metadata,
            spec: self.spec.map(|spec| NodeSpec {
                unschedulable: spec.unschedulable,
                taints: spec.taints,
                ..NodeSpec::default()
            }),
            status: self.status.map(|status| NodeStatus {
                allocatable: status.allocatable,
                node_info: status.node_info.map(|info| NodeSystemInfo {
                    kubelet_version: info.kubelet_version,
                    container_runtime_version: info.container_runtime_version,
                    architecture: info.architecture,
                    ..NodeSystemInfo::default()
                }),
                runtime_handlers: status.runtime_handlers,
                ..NodeStatus::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::scheduling::pod_group;
    use crate::collect::{CollectOptions, KubeObject, node_from_k8s, parse_documents, pod_demand, pod_workload_name};
    use kplan_model::Resources;

    /// Every pod and node of the bank example: the lean path gives what the
    /// full object gives.
    #[test]
    fn lean_objects_give_the_full_objects_inventory() {
        let options = CollectOptions { cluster_id: "c".into(), zone: Some("z".into()), ..CollectOptions::default() };
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bank/clusters");
        let (mut n_pods, mut n_nodes) = (0, 0);
        for entry in std::fs::read_dir(dir).expect("bank clusters") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("reads");
            let raw: serde_json::Value = serde_json::from_str(&text).expect("json");
            let objects = parse_documents(&text, "bank").expect("parses");
            for (object, item) in objects.iter().zip(raw["items"].as_array().expect("a List")) {
                match object {
                    KubeObject::Pod { pod, .. } => {
                        let lean: LeanPod = serde_json::from_value(item.clone()).expect("lean pod");
                        let lean = lean.into_pod();
                        assert_eq!(pod_demand(&lean), pod_demand(pod), "{:?}", pod.metadata.name);
                        assert_eq!(pod_workload_name(&lean), pod_workload_name(pod));
                        let requests = Resources::new(1, 1, 1);
                        assert_eq!(pod_group(&lean, requests, "p"), pod_group(pod, requests, "p"));
                        n_pods += 1;
                    }
                    KubeObject::Node { node, .. } => {
                        let lean: LeanNode = serde_json::from_value(item.clone()).expect("lean node");
                        assert_eq!(node_from_k8s(&lean.into_node(), &options), node_from_k8s(node, &options));
                        n_nodes += 1;
                    }
                    _ => {}
                }
            }
        }
        assert!(n_pods > 900 && n_nodes > 150, "{n_pods} pods, {n_nodes} nodes");
    }

    #[test]
    fn sidecars_and_pod_level_requests_survive_the_lean_path() {
        let item = serde_json::json!({
            "metadata": {"name": "p", "namespace": "a", "managedFields": [{"manager": "x"}]},
            "spec": {
                "containers": [{"name": "app", "image": "i", "env": [{"name": "A", "value": "1"}],
                                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                "initContainers": [{"name": "mesh", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}}],
                "overhead": {"cpu": "50m"},
                "resources": {"requests": {"memory": "3Gi"}}
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let full: Pod = serde_json::from_value(item.clone()).expect("full pod");
        let lean: LeanPod = serde_json::from_value(item).expect("lean pod");
        assert_eq!(pod_demand(&lean.into_pod()), pod_demand(&full));
        assert!(pod_demand(&full).expect("demand").is_some());
    }

    #[test]
    fn what_the_scheduler_reads_survives_the_lean_path() {
        let item = serde_json::json!({
            "metadata": {"name": "train-5f6-a", "namespace": "ml", "labels": {"pod-template-hash": "5f6", "team": "ml"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "train-5f6", "uid": "u", "controller": true}]},
            "spec": {
                "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
                "nodeSelector": {"accelerator": "nvidia"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}},
                    "podAntiAffinity": {}},
                "runtimeClassName": "nvidia"
            },
            "status": {"phase": "Running"}
        });
        let full: Pod = serde_json::from_value(item.clone()).expect("full pod");
        let lean: LeanPod = serde_json::from_value(item).expect("lean pod");
        let lean = lean.into_pod();
        let requests = Resources::new(1000, 1, 1);
        let group = pod_group(&lean, requests, "p").expect("reads").expect("a group");
        assert_eq!(Some(group.clone()), pod_group(&full, requests, "p").expect("reads"));
        assert_eq!(group.workload(), "Deployment/train");
        assert_eq!(group.extended.get("nvidia.com/gpu"), Some(&2));
        // Its labels are kept: PodDisruptionBudgets select by them.
        assert_eq!(lean.metadata.labels.map(|l| l.len()), Some(2));
    }

    #[test]
    fn claims_and_every_volume_source_survive_the_lean_path() {
        let item = serde_json::json!({
            "metadata": {"name": "db-0", "namespace": "payments"},
            "spec": {
                "containers": [{"name": "pg", "resources": {"requests": {"cpu": "1"}}}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0", "readOnly": false}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}},
                    {"name": "config", "configMap": {"name": "pg", "items": [{"key": "a", "path": "b"}]}},
                    {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}
                ]
            }
        });
        let full: Pod = serde_json::from_value(item.clone()).expect("full pod");
        let lean: LeanPod = serde_json::from_value(item).expect("lean pod");
        let lean = lean.into_pod();
        let requests = Resources::new(1000, 1, 1);
        let group = pod_group(&lean, requests, "p").expect("reads").expect("a group");
        assert_eq!(Some(group.clone()), pod_group(&full, requests, "p").expect("reads"));
        let claims: Vec<&str> = group.volumes.iter().map(|v| v.claim.as_str()).collect();
        assert_eq!(claims, ["data-db-0"], "ephemeral claims die with their pod");
        // Every volume is kept: the Pod Security Standards read their sources.
        assert_eq!(lean.spec.expect("spec").volumes.expect("volumes").len(), 4);
        assert_eq!(
            group.pod_security.restricted,
            ["allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot", "seccompProfile_restricted"]
        );
    }

    #[test]
    fn node_taints_survive_the_lean_path() {
        let item = serde_json::json!({
            "metadata": {"name": "gpu-1", "labels": {"topology.kubernetes.io/zone": "a"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "4"}}
        });
        let options =
            CollectOptions { cluster_id: "c".into(), datacenter: Some("d".into()), ..CollectOptions::default() };
        let full: Node = serde_json::from_value(item.clone()).expect("full node");
        let lean: LeanNode = serde_json::from_value(item).expect("lean node");
        let node = node_from_k8s(&lean.into_node(), &options).expect("converts");
        assert_eq!(Ok(node.clone()), node_from_k8s(&full, &options));
        assert_eq!(node.taints.len(), 1);
        assert_eq!(node.extended.get("nvidia.com/gpu"), Some(&4));
    }
}
