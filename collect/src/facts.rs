//! Cluster-wide facts: CNI plugin, CSI drivers, Kubernetes version.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kplan_model::{Node, NodeRole};

/// Namespaces whose DaemonSets and pods name the CNI plugin and CSI drivers:
/// kube-system (README, "The label contract"), plus the namespaces the Calico operator and
/// the current Flannel manifests install into.
pub const DETECTION_NAMESPACES: [&str; 3] = ["kube-system", "calico-system", "kube-flannel"];

/// Workload name prefix → CNI plugin. A workload matches when its name is the
/// prefix or starts with the prefix and a dash (`kube-flannel-ds`,
/// `kube-ovn-cni`, `contiv-netplugin`, a pod `calico-node-x7d2k`).
pub const CNI_WORKLOADS: [(&str, &str); 5] = [
    ("calico-node", "calico"),
    ("cilium", "cilium"),
    ("kube-flannel", "flannel"),
    ("kube-ovn", "kube-ovn"),
    ("contiv", "contiv"),
];

/// Role suffixes dropped from a CSI workload name to get the driver
/// (`ebs-csi-node` and `ebs-csi-controller` are both driver `ebs-csi`).
const CSI_ROLE_SUFFIXES: [&str; 7] =
    ["-node-windows", "-nodeplugin", "-controllerplugin", "-controller", "-provisioner", "-plugin", "-node"];

pub fn is_detection_namespace(namespace: &str) -> bool {
    DETECTION_NAMESPACES.contains(&namespace)
}

/// The name of the workload that owns a pod: its DaemonSet, StatefulSet or Job,
/// the Deployment behind its ReplicaSet (the ReplicaSet's name without the
/// pod-template hash), or the pod's own name when it has no such owner.
pub fn pod_workload_name(pod: &Pod) -> String {
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    let owner = owners.iter().find(|owner| owner.controller == Some(true)).or_else(|| owners.first());
    match owner {
        Some(owner) if owner.kind == "ReplicaSet" => match owner.name.rsplit_once('-') {
            Some((deployment, hash)) if !deployment.is_empty() && hash.chars().all(|c| c.is_ascii_alphanumeric()) => {
                deployment.to_string()
            }
            _ => owner.name.clone(),
        },
        Some(owner) if matches!(owner.kind.as_str(), "DaemonSet" | "StatefulSet" | "Job" | "Deployment") => {
            owner.name.clone()
        }
        _ => pod.metadata.name.clone().unwrap_or_default(),
    }
}

/// The CNI plugin(s) named by these workloads (DaemonSet names or pod
/// workload names from [`DETECTION_NAMESPACES`]): empty when none, the plugin
/// when one, `a+b` (sorted) when several are running, as during a migration.
pub fn detect_cni<'a>(workloads: impl IntoIterator<Item = &'a str>) -> String {
    let mut plugins = BTreeSet::new();
    for workload in workloads {
        for (prefix, plugin) in CNI_WORKLOADS {
            let matches = workload.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('-'));
            if matches {
                plugins.insert(plugin);
            }
        }
    }
    plugins.into_iter().collect::<Vec<_>>().join("+")
}

/// CSI drivers: the workloads whose name contains `csi`, role suffix
/// removed (unless only `csi` would remain), sorted and without duplicates.
pub fn detect_csi_drivers<'a>(workloads: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let drivers: BTreeSet<String> = workloads
        .into_iter()
        .filter(|workload| workload.contains("csi"))
        .map(|workload| {
            let driver = CSI_ROLE_SUFFIXES
                .iter()
                .find_map(|suffix| workload.strip_suffix(suffix))
                .filter(|driver| driver.contains("csi") && *driver != "csi")
                .unwrap_or(workload);
            driver.to_string()
        })
        .collect();
    drivers.into_iter().collect()
}

/// `v1.21.2-13+d2965f0db10712` → (1, 21, 2); `None` when it has no such numbers.
fn version_numbers(version: &str) -> Option<(u64, u64, u64)> {
    let version = version.trim().trim_start_matches('v');
    let core = version.split(['-', '+']).next()?;
    let mut numbers = core.split('.').map(|part| part.parse::<u64>());
    let major = numbers.next()?.ok()?;
    let minor = numbers.next().unwrap_or(Ok(0)).ok()?;
    let patch = numbers.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

/// Orders kubelet versions numerically (`v1.9.0` < `v1.10.0`); unparsable
/// versions sort first, ties by text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    version_numbers(a).cmp(&version_numbers(b)).then_with(|| a.cmp(b))
}

/// The cluster's Kubernetes version: the newest kubelet among control-plane
/// nodes, else among all nodes; empty when no node reports one.
pub fn kubernetes_version(nodes: &[Node]) -> String {
    let newest = |role: Option<NodeRole>| {
        nodes
            .iter()
            .filter(|node| role.is_none_or(|role| node.role == role))
            .map(|node| node.kubelet_version.as_str())
            .filter(|version| !version.trim().is_empty())
            .max_by(|a, b| compare_versions(a, b))
    };
    newest(Some(NodeRole::ControlPlane)).or_else(|| newest(None)).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cni_from_workload_names() {
        assert_eq!(detect_cni(["coredns", "kube-proxy", "calico-node"]), "calico");
        assert_eq!(detect_cni(["cilium-x7d2k", "cilium-operator"]), "cilium");
        assert_eq!(detect_cni(["kube-flannel-ds-amd64"]), "flannel");
        assert_eq!(detect_cni(["kube-ovn-cni", "ovs-ovn"]), "kube-ovn");
        assert_eq!(detect_cni(["contiv-netplugin"]), "contiv");
        assert_eq!(detect_cni(["kube-flannel-ds", "cilium"]), "cilium+flannel");
        // Prefix must end at a dash: these are not plugins.
        assert_eq!(detect_cni(["ciliumish", "calico-nodes", "kube-proxy"]), "");
        assert_eq!(detect_cni(Vec::<&str>::new()), "");
    }

    #[test]
    fn csi_drivers_from_workload_names() {
        let workloads =
            ["ebs-csi-node", "ebs-csi-controller", "csi-rbdplugin", "csi-rbdplugin-provisioner", "coredns", "csi-node"];
        assert_eq!(detect_csi_drivers(workloads), ["csi-node", "csi-rbdplugin", "ebs-csi"]);
    }

    #[test]
    fn pod_workload_names_from_owners() {
        let pod = |owners: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "x-abc12", "ownerReferences": owners}})).unwrap()
        };
        let owner = |kind: &str, name: &str| json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u", "controller": true});
        assert_eq!(pod_workload_name(&pod(json!([owner("DaemonSet", "ebs-csi-node")]))), "ebs-csi-node");
        assert_eq!(
            pod_workload_name(&pod(json!([owner("ReplicaSet", "ebs-csi-controller-5d8f9c7b6")]))),
            "ebs-csi-controller"
        );
        assert_eq!(pod_workload_name(&pod(json!([owner("Node", "minikube")]))), "x-abc12");
        assert_eq!(pod_workload_name(&pod(json!([]))), "x-abc12");
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("v1.9.0", "v1.10.0"), Ordering::Less);
        assert_eq!(compare_versions("v1.21.2-13+d2965f0db10712", "v1.21.1"), Ordering::Greater);
        assert_eq!(version_numbers("v1.20.0+2817867"), Some((1, 20, 0)));
        assert_eq!(version_numbers("garbage"), None);
    }
}
