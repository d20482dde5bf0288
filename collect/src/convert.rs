//! One Kubernetes object to its part of the inventory, by the label contract
//! (README, "The label contract"). These are the incremental pieces the watcher reuses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kplan_model::quantity::{QuantityError, parse_bytes, parse_count, parse_cpu_millis};
use kplan_model::{NodeRole, Resources, SlaTier};

use super::{CollectError, CollectOptions};

/// The first of `keys` that is set to a non-blank value, as (key, trimmed value).
/// A label set to an empty string counts as absent (except for the
/// control-plane role labels, whose value is empty by convention).
pub(crate) fn first_label<'a>(
    labels: Option<&'a BTreeMap<String, String>>,
    keys: &'a [String],
) -> Option<(&'a str, &'a str)> {
    let labels = labels?;
    keys.iter().find_map(|key| {
        let value = labels.get(key)?.trim();
        (!value.is_empty()).then_some((key.as_str(), value))
    })
}

/// `a, b or c`
pub(crate) fn list_keys(keys: &[String]) -> String {
    match keys {
        [] => "(none configured)".to_string(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty())
}

fn name_of(kind: &str, metadata: &ObjectMeta) -> Result<String, CollectError> {
    match metadata.name.as_deref() {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(CollectError::field(format!("{kind} without a name"), "metadata.name", "missing")),
    }
}

fn quantity(
    values: Option<&BTreeMap<String, Quantity>>,
    resource: &str,
    parse: fn(&str) -> Result<u64, QuantityError>,
    object: &str,
    path: &str,
) -> Result<Option<u64>, CollectError> {
    match values.and_then(|values| values.get(resource)) {
        None => Ok(None),
        Some(Quantity(text)) => parse(text)
            .map(Some)
            .map_err(|error| CollectError::field(object.to_string(), format!("{path}.{resource}"), error)),
    }
}

/// A Kubernetes Node as an inventory node.
///
/// Datacenter and firewall zone follow the label chains of
/// [`LabelKeys`](super::LabelKeys), then the cluster defaults of `options`;
/// with neither it is an error that says which labels or settings would fix
/// it. The role is control-plane when any of the control-plane labels is
/// present (any value). Capacity is `status.allocatable` cpu, memory and pods,
/// all three required.
pub fn node_from_k8s(node: &Node, options: &CollectOptions) -> Result<kplan_model::Node, CollectError> {
    let name = name_of("node", &node.metadata)?;
    let object = format!("node {name:?}");
    let labels = node.metadata.labels.as_ref();
    let keys = &options.label_keys;

    let topology = |chain: &[String], default: &Option<String>, fact: &'static str, fix: &'static str| match first_label(
        labels, chain,
    ) {
        Some((_, value)) => Ok(value.to_string()),
        None => non_empty(default).map(str::to_string).ok_or_else(|| CollectError::MissingTopology {
            file: String::new(),
            node: name.clone(),
            fact,
            labels: list_keys(chain),
            fix,
        }),
    };
    let datacenter = topology(
        &keys.datacenter,
        &options.datacenter,
        "datacenter",
        "--datacenter, or datacenter in the agent config",
    )?;
    let zone = topology(&keys.zone, &options.zone, "firewall zone", "--zone, or zone in the agent config")?;

    let is_control_plane = labels.is_some_and(|labels| keys.control_plane.iter().any(|key| labels.contains_key(key)));
    let role = if is_control_plane { NodeRole::ControlPlane } else { NodeRole::Worker };

    let status = node.status.as_ref();
    let allocatable = status.and_then(|status| status.allocatable.as_ref());
    if allocatable.is_none() {
        return Err(CollectError::field(object, "status.allocatable", "missing"));
    }
    let required = |resource: &str, parse: fn(&str) -> Result<u64, QuantityError>| {
        quantity(allocatable, resource, parse, &object, "status.allocatable")?
            .ok_or_else(|| CollectError::field(object.clone(), format!("status.allocatable.{resource}"), "missing"))
    };
    let allocatable = Resources {
        cpu_millis: required("cpu", parse_cpu_millis)?,
        memory_bytes: required("memory", parse_bytes)?,
        pods: required("pods", parse_count)?,
    };

    let node_info = status.and_then(|status| status.node_info.as_ref());
    let (taints, extended) = crate::scheduling::node_scheduling(node, &object)?;
    Ok(kplan_model::Node {
        name,
        labels: node.metadata.labels.clone().unwrap_or_default(),
        datacenter,
        zone,
        role,
        allocatable,
        kubelet_version: node_info.map(|info| info.kubelet_version.clone()).unwrap_or_default(),
        container_runtime: node_info.map(|info| info.container_runtime_version.clone()).unwrap_or_default(),
        architecture: node_info.map(|info| info.architecture.clone()).unwrap_or_default(),
        unschedulable: node.spec.as_ref().and_then(|spec| spec.unschedulable).unwrap_or(false),
        taints,
        extended,
        runtime_handlers: runtime_handlers(status.and_then(|status| status.runtime_handlers.as_deref())),
    })
}

/// `status.runtimeHandlers` (Kubernetes 1.30+): each handler with the
/// features it supports, sorted by name.
fn runtime_handlers(
    handlers: Option<&[k8s_openapi::api::core::v1::NodeRuntimeHandler]>,
) -> Vec<kplan_model::RuntimeHandler> {
    let mut out: Vec<kplan_model::RuntimeHandler> = handlers
        .unwrap_or_default()
        .iter()
        .map(|handler| {
            let features = handler.features.as_ref();
            let supported = [
                ("recursiveReadOnlyMounts", features.and_then(|f| f.recursive_read_only_mounts)),
                ("userNamespaces", features.and_then(|f| f.user_namespaces)),
            ];
            kplan_model::RuntimeHandler {
                name: handler.name.clone().unwrap_or_default(),
                features: supported
                    .into_iter()
                    .filter(|(_, on)| *on == Some(true))
                    .map(|(name, _)| name.to_string())
                    .collect(),
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A Kubernetes Namespace as an inventory namespace, with zero requests (the
/// demand is summed from pods separately, see [`pod_demand`]).
///
/// Security tier: the label chain, then the cluster default, else an error.
/// SLA tier: the label chain (gold, silver, bronze, any case; another value
/// is an error), else bronze.
pub fn namespace_from_k8s(
    namespace: &Namespace,
    options: &CollectOptions,
) -> Result<kplan_model::Namespace, CollectError> {
    let name = name_of("namespace", &namespace.metadata)?;
    namespace_from_parts(name, namespace.metadata.labels.clone().unwrap_or_default(), options)
}

/// A namespace known only by name (its pods were in the input, the Namespace
/// object was not): no labels, so the cluster default tier and bronze.
pub fn namespace_from_name(name: &str, options: &CollectOptions) -> Result<kplan_model::Namespace, CollectError> {
    namespace_from_parts(name.to_string(), BTreeMap::new(), options)
}

fn namespace_from_parts(
    name: String,
    labels: BTreeMap<String, String>,
    options: &CollectOptions,
) -> Result<kplan_model::Namespace, CollectError> {
    let keys = &options.label_keys;
    let security_tier = match first_label(Some(&labels), &keys.security_tier) {
        Some((_, value)) => value.to_string(),
        None => {
            non_empty(&options.security_tier).map(str::to_string).ok_or_else(|| CollectError::MissingSecurityTier {
                file: String::new(),
                namespace: name.clone(),
                labels: list_keys(&keys.security_tier),
            })?
        }
    };
    let sla_tier = match first_label(Some(&labels), &keys.sla_tier) {
        Some((key, value)) => value.parse::<SlaTier>().map_err(|_| CollectError::UnknownSlaTier {
            file: String::new(),
            namespace: name.clone(),
            label: key.to_string(),
            value: value.to_string(),
        })?,
        None => SlaTier::Bronze,
    };
    Ok(kplan_model::Namespace {
        name,
        labels,
        security_tier,
        sla_tier,
        requests: Resources::ZERO,
        pod_groups: Vec::new(),
        applied_prerelease: Vec::new(),
        disruption_budgets: Vec::new(),
    })
}

/// Whether a pod no longer holds resources (phase `Succeeded` or `Failed`).
pub fn is_terminated(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|status| status.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// What a pod asks of its namespace: its namespace and its effective request
/// (cpu, memory, and `pods` = 1), or `None` for a terminated pod.
///
/// The effective request is the scheduler's: per resource, the larger of the
/// sum over the containers and the largest init container, where sidecars
/// (init containers with `restartPolicy: Always`) run alongside everything
/// after them and so add to both; pod-level `spec.resources.requests` replace
/// the computed value where set; `spec.overhead` is added. A container that
/// sets a limit and no request requests its limit (what the API server's
/// defaulting stores). Kept as one small value so a watcher can hold
/// per-namespace sums without holding pods.
pub fn pod_demand(pod: &Pod) -> Result<Option<(String, Resources)>, CollectError> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let object = match (name.is_empty(), namespace.is_empty()) {
        (false, false) => format!("pod \"{namespace}/{name}\""),
        (false, true) => format!("pod {name:?}"),
        (true, _) => "pod without a name".to_string(),
    };
    if name.is_empty() {
        return Err(CollectError::field(object, "metadata.name", "missing"));
    }
    if namespace.is_empty() {
        return Err(CollectError::field(object, "metadata.namespace", "missing"));
    }
    if is_terminated(pod) {
        return Ok(None);
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Err(CollectError::field(object, "spec", "missing"));
    };

    let mut requests = Resources::ZERO;
    for (container_idx, container) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{container_idx}]");
        requests = requests.saturating_add(container_requests(container, &object, &path)?);
    }
    let mut sidecars = Resources::ZERO;
    let mut largest_init = Resources::ZERO;
    for (container_idx, container) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{container_idx}]");
        let container_requests = container_requests(container, &object, &path)?;
        let while_running = if container.restart_policy.as_deref() == Some("Always") {
            requests = requests.saturating_add(container_requests);
            sidecars = sidecars.saturating_add(container_requests);
            sidecars
        } else {
            sidecars.saturating_add(container_requests)
        };
        largest_init = max_each(largest_init, while_running);
    }
    let mut requests = max_each(requests, largest_init);

    let pod_level = spec.resources.as_ref().and_then(|resources| resources.requests.as_ref());
    if let Some(cpu) = quantity(pod_level, "cpu", parse_cpu_millis, &object, "spec.resources.requests")? {
        requests.cpu_millis = cpu;
    }
    if let Some(memory) = quantity(pod_level, "memory", parse_bytes, &object, "spec.resources.requests")? {
        requests.memory_bytes = memory;
    }
    let overhead = spec.overhead.as_ref();
    let overhead = Resources {
        cpu_millis: quantity(overhead, "cpu", parse_cpu_millis, &object, "spec.overhead")?.unwrap_or(0),
        memory_bytes: quantity(overhead, "memory", parse_bytes, &object, "spec.overhead")?.unwrap_or(0),
        pods: 0,
    };
    let requests = requests.saturating_add(overhead);
    Ok(Some((namespace.to_string(), Resources { pods: 1, ..requests })))
}

fn max_each(a: Resources, b: Resources) -> Resources {
    Resources {
        cpu_millis: a.cpu_millis.max(b.cpu_millis),
        memory_bytes: a.memory_bytes.max(b.memory_bytes),
        pods: a.pods.max(b.pods),
    }
}

fn container_requests(container: &Container, object: &str, path: &str) -> Result<Resources, CollectError> {
    let resources: Option<&ResourceRequirements> = container.resources.as_ref();
    let requests = resources.and_then(|resources| resources.requests.as_ref());
    let limits = resources.and_then(|resources| resources.limits.as_ref());
    let one = |resource: &str, parse: fn(&str) -> Result<u64, QuantityError>| -> Result<u64, CollectError> {
        let requested = quantity(requests, resource, parse, object, &format!("{path}.resources.requests"))?;
        let limited = quantity(limits, resource, parse, object, &format!("{path}.resources.limits"))?;
        Ok(requested.or(limited).unwrap_or(0))
    };
    Ok(Resources { cpu_millis: one("cpu", parse_cpu_millis)?, memory_bytes: one("memory", parse_bytes)?, pods: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabelKeys;
    use serde_json::json;

    fn options() -> CollectOptions {
        CollectOptions {
            cluster_id: "c1".into(),
            datacenter: Some("dc-default".into()),
            zone: Some("zone-default".into()),
            security_tier: Some("dev".into()),
            ..CollectOptions::default()
        }
    }

    fn k8s_node(labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "worker-1", "labels": labels},
            "spec": {"unschedulable": true},
            "status": {
                "allocatable": {"cpu": "3500m", "memory": "16417180Ki", "pods": "110", "hugepages-2Mi": "0"},
                "nodeInfo": {
                    "kubeletVersion": "v1.30.2", "containerRuntimeVersion": "containerd://1.7.2",
                    "architecture": "arm64", "bootID": "", "kernelVersion": "", "kubeProxyVersion": "",
                    "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""
                }
            }
        }))
        .unwrap()
    }

    fn namespace(labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": "shop", "labels": labels}})).unwrap()
    }

    fn pod(spec: serde_json::Value, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": spec,
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn container(name: &str, cpu: &str, memory: &str) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": {"cpu": cpu, "memory": memory}}})
    }

    const MI: u64 = 1 << 20;

    #[test]
    fn node_fields_by_the_contract() {
        let node = node_from_k8s(
            &k8s_node(json!({"topology.kubernetes.io/zone": "z1", "topology.kubernetes.io/region": "r1"})),
            &options(),
        )
        .unwrap();
        assert_eq!(node.name, "worker-1");
        assert_eq!((node.datacenter.as_str(), node.zone.as_str()), ("r1", "z1"));
        assert_eq!(node.role, NodeRole::Worker);
        assert_eq!(node.allocatable, Resources::new(3500, 16_417_180 * 1024, 110));
        assert_eq!(node.kubelet_version, "v1.30.2");
        assert_eq!(node.container_runtime, "containerd://1.7.2");
        assert_eq!(node.architecture, "arm64");
        assert!(node.unschedulable);
        assert_eq!(node.labels.len(), 2);
    }

    #[test]
    fn topology_label_chain_order_and_defaults() {
        let labels = json!({
            "kplan.io/firewall-zone": "fw-a",
            "topology.kubernetes.io/zone": "z1",
            "failure-domain.beta.kubernetes.io/zone": "old",
            "failure-domain.beta.kubernetes.io/region": "beta-region",
        });
        let node = node_from_k8s(&k8s_node(labels), &options()).unwrap();
        assert_eq!((node.datacenter.as_str(), node.zone.as_str()), ("beta-region", "fw-a"));

        // An empty kplan label does not hide the next one in the chain.
        let labels = json!({"kplan.io/datacenter": "", "failure-domain.beta.kubernetes.io/zone": "beta-zone"});
        let node = node_from_k8s(&k8s_node(labels), &options()).unwrap();
        assert_eq!((node.datacenter.as_str(), node.zone.as_str()), ("dc-default", "beta-zone"));
    }

    #[test]
    fn missing_zone_without_default_names_node_labels_and_flag() {
        let options = CollectOptions { zone: None, ..options() };
        let error = node_from_k8s(&k8s_node(json!({})), &options).unwrap_err();
        assert_eq!(
            error.to_string(),
            "node \"worker-1\" has no firewall zone: set one of the node labels kplan.io/firewall-zone, \
             topology.kubernetes.io/zone or failure-domain.beta.kubernetes.io/zone, or give the cluster \
             a default firewall zone (--zone, or zone in the agent config)"
        );
        let options = CollectOptions { datacenter: Some("  ".into()), ..options };
        let error = node_from_k8s(&k8s_node(json!({"kplan.io/firewall-zone": "a"})), &options).unwrap_err();
        assert!(matches!(error, CollectError::MissingTopology { fact: "datacenter", .. }), "{error}");
    }

    #[test]
    fn control_plane_from_either_role_label() {
        for key in ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"] {
            let node = node_from_k8s(&k8s_node(json!({ key: "" })), &options()).unwrap();
            assert_eq!(node.role, NodeRole::ControlPlane, "{key}");
        }
        let node = node_from_k8s(&k8s_node(json!({"node-role.kubernetes.io/worker": ""})), &options()).unwrap();
        assert_eq!(node.role, NodeRole::Worker);
    }

    #[test]
    fn configured_label_keys_replace_the_defaults() {
        let options = CollectOptions {
            label_keys: LabelKeys {
                zone: vec!["example.com/fw".into()],
                control_plane: vec!["example.com/cp".into()],
                ..LabelKeys::default()
            },
            ..options()
        };
        let node = node_from_k8s(
            &k8s_node(json!({"example.com/fw": "dmz", "topology.kubernetes.io/zone": "z1", "example.com/cp": "yes"})),
            &options,
        )
        .unwrap();
        assert_eq!(node.zone, "dmz");
        assert_eq!(node.role, NodeRole::ControlPlane);
        let node = node_from_k8s(&k8s_node(json!({"node-role.kubernetes.io/master": ""})), &options).unwrap();
        assert_eq!((node.zone.as_str(), node.role), ("zone-default", NodeRole::Worker));
    }

    #[test]
    fn malformed_and_missing_allocatable() {
        let mut bad = k8s_node(json!({}));
        let allocatable = bad.status.as_mut().unwrap().allocatable.as_mut().unwrap();
        allocatable.insert("cpu".into(), Quantity("4x".into()));
        assert_eq!(
            node_from_k8s(&bad, &options()).unwrap_err().to_string(),
            "node \"worker-1\": status.allocatable.cpu: malformed quantity \"4x\""
        );
        let allocatable = bad.status.as_mut().unwrap().allocatable.as_mut().unwrap();
        allocatable.remove("cpu");
        assert_eq!(
            node_from_k8s(&bad, &options()).unwrap_err().to_string(),
            "node \"worker-1\": status.allocatable.cpu: missing"
        );
        bad.status = None;
        assert_eq!(
            node_from_k8s(&bad, &options()).unwrap_err().to_string(),
            "node \"worker-1\": status.allocatable: missing"
        );
    }

    #[test]
    fn namespace_tiers() {
        let ns = namespace_from_k8s(
            &namespace(json!({"kplan.io/security-tier": "prod", "kplan.io/sla-tier": "Gold"})),
            &options(),
        )
        .unwrap();
        assert_eq!((ns.security_tier.as_str(), ns.sla_tier), ("prod", SlaTier::Gold));
        assert_eq!(ns.requests, Resources::ZERO);
        let ns = namespace_from_k8s(&namespace(json!({"team": "a"})), &options()).unwrap();
        assert_eq!((ns.security_tier.as_str(), ns.sla_tier), ("dev", SlaTier::Bronze));
        assert_eq!(ns.labels.get("team").map(String::as_str), Some("a"));
    }

    #[test]
    fn unknown_sla_tier_names_namespace_label_and_value() {
        let error = namespace_from_k8s(&namespace(json!({"kplan.io/sla-tier": "platinum"})), &options()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "namespace \"shop\": label kplan.io/sla-tier: unknown sla tier \"platinum\" (expected gold, silver or bronze)"
        );
    }

    #[test]
    fn missing_security_tier_is_an_error() {
        let options = CollectOptions { security_tier: None, ..options() };
        let error = namespace_from_k8s(&namespace(json!({})), &options).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "namespace \"shop\" has no security tier: set one of the namespace labels kplan.io/security-tier"
            ),
            "{error}"
        );
        assert!(namespace_from_name("other", &options).is_err());
    }

    #[test]
    fn pod_demand_sums_containers_and_takes_the_largest_init_container() {
        let spec = json!({
            "containers": [container("a", "100m", "256Mi"), container("b", "200m", "256Mi")],
            "initContainers": [container("init-1", "500m", "64Mi"), container("init-2", "50m", "1Gi")],
        });
        let (namespace, demand) = pod_demand(&pod(spec, "Running")).unwrap().unwrap();
        assert_eq!(namespace, "shop");
        assert_eq!(demand, Resources::new(500, 1024 * MI, 1));
    }

    #[test]
    fn sidecar_init_containers_run_alongside() {
        // Sidecar first: it adds to the containers (300 + 100) and to the
        // plain init container after it (100 + 350), which is the largest.
        let sidecar = json!({"name": "mesh", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}});
        let spec = json!({
            "containers": [container("a", "300m", "0")],
            "initContainers": [sidecar.clone(), container("migrate", "350m", "0")],
        });
        let (_, demand) = pod_demand(&pod(spec, "Pending")).unwrap().unwrap();
        assert_eq!(demand.cpu_millis, 450);
        // Sidecar last: the plain init container runs alone before it.
        let spec = json!({
            "containers": [container("a", "300m", "0")],
            "initContainers": [container("migrate", "350m", "0"), sidecar],
        });
        let (_, demand) = pod_demand(&pod(spec, "Pending")).unwrap().unwrap();
        assert_eq!(demand.cpu_millis, 400);
    }

    #[test]
    fn limits_without_requests_pod_level_requests_and_overhead() {
        let spec = json!({
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, {"name": "b"}],
            "overhead": {"cpu": "250m", "memory": "120Mi"},
        });
        let (_, demand) = pod_demand(&pod(spec, "Running")).unwrap().unwrap();
        assert_eq!(demand, Resources::new(1250, 1144 * MI, 1));

        let spec = json!({
            "containers": [container("a", "100m", "100Mi")],
            "resources": {"requests": {"cpu": "2"}},
        });
        let (_, demand) = pod_demand(&pod(spec, "Running")).unwrap().unwrap();
        assert_eq!(demand, Resources::new(2000, 100 * MI, 1));
    }

    #[test]
    fn terminated_pods_ask_nothing() {
        let spec = json!({"containers": [container("a", "1", "1Gi")]});
        for phase in ["Succeeded", "Failed"] {
            assert_eq!(pod_demand(&pod(spec.clone(), phase)).unwrap(), None, "{phase}");
        }
        for phase in ["Running", "Pending", "Unknown"] {
            assert!(pod_demand(&pod(spec.clone(), phase)).unwrap().is_some(), "{phase}");
        }
    }

    #[test]
    fn malformed_pod_quantities_name_the_container_field() {
        let spec = json!({"containers": [container("a", "1", "1Gi"), container("b", "1x", "1Gi")]});
        assert_eq!(
            pod_demand(&pod(spec, "Running")).unwrap_err().to_string(),
            "pod \"shop/web-0\": spec.containers[1].resources.requests.cpu: malformed quantity \"1x\""
        );
        let spec =
            json!({"containers": [], "initContainers": [{"name": "i", "resources": {"limits": {"memory": "-1Gi"}}}]});
        assert_eq!(
            pod_demand(&pod(spec, "Running")).unwrap_err().to_string(),
            "pod \"shop/web-0\": spec.initContainers[0].resources.limits.memory: negative quantity \"-1Gi\""
        );
        let mut orphan = pod(json!({"containers": []}), "Running");
        orphan.metadata.namespace = None;
        assert_eq!(pod_demand(&orphan).unwrap_err().to_string(), "pod \"web-0\": metadata.namespace: missing");
    }
}
