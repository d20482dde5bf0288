//! What the scheduler reads of nodes and pods (issue 17): node taints and
//! extended resources, and per pod its owning workload, its requests for
//! resources besides cpu and memory, node selector, required node affinity,
//! tolerations and runtime class. Pods with the same workload and needs
//! become one [`PodGroup`] with a replica count, so a snapshot stays small.
//! PodDisruptionBudgets are recorded with the workloads their selectors match.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kplan_model::Resources;
use kplan_model::quantity::{parse_bytes, parse_count};
use kplan_model::scheduling::{DisruptionBudget, PodGroup, Taint, Toleration};

use crate::CollectError;

/// The resources the inventory keeps apart from [`Resources`].
fn is_extended(resource: &str) -> bool {
    !matches!(resource, "cpu" | "memory" | "pods")
}

/// A quantity of an extended resource in its own unit: sizes
/// (`hugepages-*`, `ephemeral-storage`) in bytes, devices as counts.
fn extended_quantity(resource: &str, quantity: &Quantity, object: &str, field: &str) -> Result<u64, CollectError> {
    let parsed = if resource.starts_with("hugepages-") || resource == "ephemeral-storage" {
        parse_bytes(&quantity.0)
    } else {
        parse_count(&quantity.0).or_else(|_| parse_bytes(&quantity.0))
    };
    parsed.map_err(|error| CollectError::field(object.to_string(), format!("{field}.{resource}"), error.to_string()))
}

/// A node's taints and its allocatable resources besides cpu, memory and pods.
pub fn node_scheduling(node: &Node, object: &str) -> Result<(Vec<Taint>, BTreeMap<String, u64>), CollectError> {
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|spec| spec.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| Taint { key: t.key.clone(), value: t.value.clone().unwrap_or_default(), effect: t.effect.clone() })
        .collect();
    taints.sort();
    let mut extended = BTreeMap::new();
    if let Some(allocatable) = node.status.as_ref().and_then(|status| status.allocatable.as_ref()) {
        for (resource, quantity) in allocatable.iter().filter(|(resource, _)| is_extended(resource)) {
            let amount = extended_quantity(resource, quantity, object, "status.allocatable")?;
            if amount > 0 {
                extended.insert(resource.clone(), amount);
            }
        }
    }
    Ok((taints, extended))
}

/// A container's requests for extended resources (a limit without a request
/// requests the limit, as the API server defaults it).
fn container_extended(container: &Container, object: &str, path: &str) -> Result<BTreeMap<String, u64>, CollectError> {
    let mut out = BTreeMap::new();
    let Some(resources) = container.resources.as_ref() else { return Ok(out) };
    for source in [resources.limits.as_ref(), resources.requests.as_ref()].into_iter().flatten() {
        for (resource, quantity) in source.iter().filter(|(resource, _)| is_extended(resource)) {
            // Requests are read last and replace limits.
            out.insert(resource.clone(), extended_quantity(resource, quantity, object, &format!("{path}.resources"))?);
        }
    }
    Ok(out)
}

/// The owning workload: `(kind, name)`; a ReplicaSet named after its pods'
/// `pod-template-hash` belongs to the Deployment of that name.
fn owner(pod: &Pod) -> (String, String) {
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    let owner = owners.iter().find(|owner| owner.controller == Some(true)).or_else(|| owners.first());
    let hash = pod.metadata.labels.as_ref().and_then(|labels| labels.get("pod-template-hash"));
    match owner {
        Some(owner) if owner.kind == "ReplicaSet" => match hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}")))
        {
            Some(deployment) if !deployment.is_empty() => ("Deployment".to_string(), deployment.to_string()),
            _ => ("ReplicaSet".to_string(), owner.name.clone()),
        },
        Some(owner) => (owner.kind.clone(), owner.name.clone()),
        None => ("Pod".to_string(), pod.metadata.name.clone().unwrap_or_default()),
    }
}

/// One pod as a group of one: `None` for a DaemonSet's pod (it comes with its
/// node) and for a terminated pod. `requests` is the pod's effective request
/// from [`pod_demand`](crate::pod_demand).
pub fn pod_group(pod: &Pod, requests: Resources, object: &str) -> Result<Option<PodGroup>, CollectError> {
    let (owner_kind, owner_name) = owner(pod);
    if owner_kind == "DaemonSet" || crate::is_terminated(pod) {
        return Ok(None);
    }
    let Some(spec) = pod.spec.as_ref() else { return Ok(None) };
    let mut extended: BTreeMap<String, u64> = BTreeMap::new();
    for (index, container) in spec.containers.iter().enumerate() {
        for (resource, amount) in container_extended(container, object, &format!("spec.containers[{index}]"))? {
            *extended.entry(resource).or_insert(0) += amount;
        }
    }
    for (index, container) in spec.init_containers.iter().flatten().enumerate() {
        for (resource, amount) in container_extended(container, object, &format!("spec.initContainers[{index}]"))? {
            let entry = extended.entry(resource).or_insert(0);
            *entry = (*entry).max(amount);
        }
    }
    let node_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
        .map(crate::volumes::node_affinity);
    let mut tolerations: Vec<Toleration> = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| Toleration {
            key: t.key.clone().unwrap_or_default(),
            operator: t.operator.clone().unwrap_or_default(),
            value: t.value.clone().unwrap_or_default(),
            effect: t.effect.clone().unwrap_or_default(),
        })
        .collect();
    tolerations.sort();
    tolerations.dedup();
    Ok(Some(PodGroup {
        owner_kind,
        owner_name,
        replicas: 1,
        requests,
        extended,
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        node_affinity,
        tolerations,
        runtime_class: spec.runtime_class_name.clone().unwrap_or_default(),
        volumes: crate::volumes::pod_claims(pod),
        pod_security: crate::pod_security::pod_violations(spec, pod.metadata.annotations.as_ref()),
    }))
}

/// A namespace's groups as a snapshot lists them, from its pods counted per
/// group of one (the collector and the agent both count identical pods with
/// a map keyed by [`pod_group`]'s value): replicas set, sorted by workload,
/// then by requests.
pub fn counted_groups<'g>(counts: impl IntoIterator<Item = (&'g PodGroup, u64)>) -> Vec<PodGroup> {
    let mut groups: Vec<PodGroup> =
        counts.into_iter().map(|(group, replicas)| PodGroup { replicas, ..group.clone() }).collect();
    groups.sort_by(|a, b| {
        (a.owner_kind.as_str(), a.owner_name.as_str(), a.requests, a.replicas)
            .cmp(&(b.owner_kind.as_str(), b.owner_name.as_str(), b.requests, b.replicas))
            .then_with(|| {
                serde_json::to_string(a).unwrap_or_default().cmp(&serde_json::to_string(b).unwrap_or_default())
            })
    });
    groups
}

/// The pod's owning workload as [`PodGroup::workload`] names it
/// (`Deployment/web`), or `None` for a DaemonSet's pod.
pub fn pod_workload(pod: &Pod) -> Option<String> {
    let (kind, name) = owner(pod);
    (kind != "DaemonSet").then(|| format!("{kind}/{name}"))
}

/// A PodDisruptionBudget as the snapshot records it: its rule as written and
/// the workloads of `pods` (`(labels, workload)` of its namespace's pods)
/// that its selector matches.
pub fn disruption_budget<'p>(
    budget: &PodDisruptionBudget,
    pods: impl IntoIterator<Item = (&'p BTreeMap<String, String>, &'p str)>,
) -> DisruptionBudget {
    let spec = budget.spec.as_ref();
    let text = |value: Option<&IntOrString>| match value {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => String::new(),
    };
    // No selector matches every pod of the namespace (an empty one does
    // anyway: `LabelSelector::matches` of nothing is true).
    let selector = spec.and_then(|spec| spec.selector.clone()).map(crate::rbac::selector).unwrap_or_default();
    let mut workloads: Vec<String> = pods
        .into_iter()
        .filter(|(labels, _)| selector.matches(labels))
        .map(|(_, workload)| workload.to_string())
        .collect();
    workloads.sort();
    workloads.dedup();
    DisruptionBudget {
        name: budget.metadata.name.clone().unwrap_or_default(),
        min_available: text(spec.and_then(|spec| spec.min_available.as_ref())),
        max_unavailable: text(spec.and_then(|spec| spec.max_unavailable.as_ref())),
        workloads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("pod")
    }

    #[test]
    fn a_gpu_training_pod_is_read_with_its_needs_and_its_deployment() {
        let p = pod(json!({
            "metadata": {"name": "train-7d9f-abcde", "namespace": "ml", "labels": {"pod-template-hash": "7d9f"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "train-7d9f", "uid": "u", "controller": true}]},
            "spec": {
                "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}, "requests": {"cpu": "4"}}}],
                "nodeSelector": {"accelerator": "nvidia"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu-mem", "operator": "Gt", "values": ["40"]}]}]}}},
                "runtimeClassName": "nvidia"
            }
        }));
        let group = pod_group(&p, Resources::new(4000, 0, 1), "pod").unwrap().unwrap();
        assert_eq!(group.workload(), "Deployment/train");
        assert_eq!(group.extended.get("nvidia.com/gpu"), Some(&2));
        assert_eq!(group.node_selector.get("accelerator").map(String::as_str), Some("nvidia"));
        assert_eq!(group.tolerations.len(), 1);
        assert_eq!(group.node_affinity.as_ref().map(|a| a.terms.len()), Some(1));
        assert_eq!(group.runtime_class, "nvidia");
    }

    #[test]
    fn daemonset_pods_come_with_their_nodes_and_identical_pods_are_counted() {
        let ds = pod(json!({"metadata": {"name": "agent-x", "namespace": "mon",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "c"}]}}));
        assert!(pod_group(&ds, Resources::new(100, 0, 1), "pod").unwrap().is_none());
        let web = |name: &str| {
            pod(json!({"metadata": {"name": name, "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": true}]},
                "spec": {"containers": [{"name": "c"}]}}))
        };
        let mut counts = std::collections::HashMap::new();
        for name in ["db-0", "db-1", "db-2"] {
            *counts.entry(pod_group(&web(name), Resources::new(500, 1, 1), "pod").unwrap().unwrap()).or_insert(0) += 1;
        }
        let groups = counted_groups(counts.iter().map(|(group, n)| (group, *n)));
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].replicas, 3);
        assert_eq!(groups[0].workload(), "StatefulSet/db");
    }

    #[test]
    fn pods_of_one_workload_that_break_different_rules_are_different_groups() {
        let pod_of = |name: &str, spec: serde_json::Value| {
            pod(json!({"metadata": {"name": name, "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u", "controller": true}]},
                "spec": spec}))
        };
        let plain = json!({"containers": [{"name": "c"}]});
        let host = json!({"hostNetwork": true, "containers": [{"name": "c"}]});
        let mut counts = std::collections::HashMap::new();
        for (name, spec) in [("db-0", &plain), ("db-1", &plain), ("db-2", &host)] {
            let group = pod_group(&pod_of(name, spec.clone()), Resources::new(500, 1, 1), "pod").unwrap().unwrap();
            *counts.entry(group).or_insert(0) += 1;
        }
        let groups = counted_groups(counts.iter().map(|(group, n)| (group, *n)));
        let seen: Vec<(u64, Vec<String>)> =
            groups.iter().map(|g| (g.replicas, g.pod_security.baseline.clone())).collect();
        assert_eq!(seen.len(), 2, "{groups:#?}");
        assert!(seen.contains(&(2, Vec::new())) && seen.contains(&(1, vec!["hostNamespaces".to_string()])));
    }

    #[test]
    fn node_taints_and_extended_resources_are_read_and_bad_quantities_named() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "gpu-1"},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4",
                "hugepages-2Mi": "1Gi", "ephemeral-storage": "100Gi"}}
        }))
        .unwrap();
        let (taints, extended) = node_scheduling(&node, "node \"gpu-1\"").unwrap();
        assert_eq!(taints[0].to_string(), "nvidia.com/gpu=present:NoSchedule");
        assert_eq!(extended.get("nvidia.com/gpu"), Some(&4));
        assert_eq!(extended.get("hugepages-2Mi"), Some(&(1 << 30)));
        let bad: Node = serde_json::from_value(json!({"metadata": {"name": "x"},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10", "nvidia.com/gpu": "four"}}}))
        .unwrap();
        let error = node_scheduling(&bad, "node \"x\"").unwrap_err().to_string();
        assert!(error.contains("status.allocatable.nvidia.com/gpu"), "{error}");
    }

    #[test]
    fn a_disruption_budget_names_the_workloads_its_selector_matches() {
        let budget: PodDisruptionBudget = serde_json::from_value(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"maxUnavailable": "25%", "selector": {
                "matchLabels": {"app": "db"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["cache"]}]}}
        }))
        .expect("pdb");
        let label = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let db = label(&[("app", "db")]);
        let cache = label(&[("app", "db"), ("tier", "cache")]);
        let web = label(&[("app", "web")]);
        let pods = [
            (&db, "StatefulSet/db"),
            (&cache, "Deployment/db-cache"),
            (&web, "Deployment/web"),
            (&db, "StatefulSet/db"),
        ];
        let read = disruption_budget(&budget, pods);
        assert_eq!(read.name, "db");
        assert_eq!(read.max_unavailable, "25%");
        assert_eq!(read.min_available, "");
        assert_eq!(read.workloads, ["StatefulSet/db"]);
        // no selector: every pod of the namespace
        let everything: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "all"}, "spec": {"minAvailable": 1}
        }))
        .expect("pdb");
        let read = disruption_budget(&everything, pods);
        assert_eq!(read.min_available, "1");
        assert_eq!(read.workloads, ["Deployment/db-cache", "Deployment/web", "StatefulSet/db"]);
    }
}
