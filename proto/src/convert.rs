//! Conversions between the wire types of `kplan.v1` and the domain types of
//! `kplan-model`. This module is the only place that knows both (an
//! architecture invariant), which is why it is longer than 900 lines: one
//! `From` pair per message, and its round-trip tests.
//!
//! Wire → domain conversions that can fail (a missing required message) return
//! [`ConvertError`] naming the field; the server maps it to INVALID_ARGUMENT.

use kplan_model as model;

use crate::v1;

/// The watch service's messages (lifecycle, health, progress).
mod watch;
pub use watch::{health_status_from_wire, health_status_to_wire};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {0}: invalid value {1:?}")]
    Invalid(&'static str, String),
    /// An enum number this protocol version does not define (proto3 enums are open).
    #[error("{object}: {field}: unknown value {value} (expected {expected})")]
    UnknownEnum { object: String, field: &'static str, value: i32, expected: &'static str },
}

/// An object as named in an error: its list index and its name, cut to 64 characters.
fn object_name(list: &str, idx: usize, name: &str) -> String {
    match name.char_indices().nth(64) {
        None => format!("{list}[{idx}] {name:?}"),
        Some((cut, _)) => format!("{list}[{idx}] {:?}...", &name[..cut]),
    }
}

/// Refuses node roles and SLA tiers outside the enums (the domain types cannot hold them).
fn check_enums(s: &v1::ClusterSnapshot) -> Result<(), ConvertError> {
    if let Some((idx, node)) = s.nodes.iter().enumerate().find(|(_, n)| v1::NodeRole::try_from(n.role).is_err()) {
        return Err(ConvertError::UnknownEnum {
            object: object_name("nodes", idx, &node.name),
            field: "role",
            value: node.role,
            expected: "0 unspecified (worker), 1 control-plane or 2 worker",
        });
    }
    if let Some((idx, namespace)) =
        s.namespaces.iter().enumerate().find(|(_, n)| v1::SlaTier::try_from(n.sla_tier).is_err())
    {
        return Err(ConvertError::UnknownEnum {
            object: object_name("namespaces", idx, &namespace.name),
            field: "sla_tier",
            value: namespace.sla_tier,
            expected: "0 unspecified (bronze), 1 bronze, 2 silver or 3 gold",
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- resources

impl From<model::Resources> for v1::Resources {
    fn from(r: model::Resources) -> Self {
        v1::Resources { cpu_millis: r.cpu_millis, memory_bytes: r.memory_bytes, pods: r.pods }
    }
}

impl From<v1::Resources> for model::Resources {
    fn from(r: v1::Resources) -> Self {
        model::Resources { cpu_millis: r.cpu_millis, memory_bytes: r.memory_bytes, pods: r.pods }
    }
}

fn resources(r: Option<v1::Resources>) -> model::Resources {
    r.map(Into::into).unwrap_or_default()
}

fn sla_to_wire(tier: model::SlaTier) -> i32 {
    match tier {
        model::SlaTier::Bronze => v1::SlaTier::Bronze as i32,
        model::SlaTier::Silver => v1::SlaTier::Silver as i32,
        model::SlaTier::Gold => v1::SlaTier::Gold as i32,
    }
}

fn sla_from_wire(tier: i32) -> model::SlaTier {
    match v1::SlaTier::try_from(tier) {
        Ok(v1::SlaTier::Silver) => model::SlaTier::Silver,
        Ok(v1::SlaTier::Gold) => model::SlaTier::Gold,
        _ => model::SlaTier::Bronze,
    }
}

// ---------------------------------------------------------------- inventory

impl From<model::Node> for v1::Node {
    fn from(n: model::Node) -> Self {
        v1::Node {
            name: n.name,
            labels: n.labels.into_iter().collect(),
            datacenter: n.datacenter,
            zone: n.zone,
            role: match n.role {
                model::NodeRole::ControlPlane => v1::NodeRole::ControlPlane as i32,
                model::NodeRole::Worker => v1::NodeRole::Worker as i32,
            },
            allocatable: Some(n.allocatable.into()),
            kubelet_version: n.kubelet_version,
            container_runtime: n.container_runtime,
            architecture: n.architecture,
            unschedulable: n.unschedulable,
            taints: vec_into(n.taints),
            extended: n.extended.into_iter().collect(),
            runtime_handlers: vec_into(n.runtime_handlers),
        }
    }
}

impl From<v1::Node> for model::Node {
    fn from(n: v1::Node) -> Self {
        model::Node {
            name: n.name,
            labels: n.labels.into_iter().collect(),
            datacenter: n.datacenter,
            zone: n.zone,
            role: if n.role == v1::NodeRole::ControlPlane as i32 {
                model::NodeRole::ControlPlane
            } else {
                model::NodeRole::Worker
            },
            allocatable: resources(n.allocatable),
            kubelet_version: n.kubelet_version,
            container_runtime: n.container_runtime,
            architecture: n.architecture,
            unschedulable: n.unschedulable,
            taints: vec_into(n.taints),
            extended: n.extended.into_iter().collect(),
            runtime_handlers: vec_into(n.runtime_handlers),
        }
    }
}

impl From<model::Namespace> for v1::Namespace {
    fn from(n: model::Namespace) -> Self {
        v1::Namespace {
            name: n.name,
            labels: n.labels.into_iter().collect(),
            security_tier: n.security_tier,
            sla_tier: sla_to_wire(n.sla_tier),
            requests: Some(n.requests.into()),
            pod_groups: vec_into(n.pod_groups),
            applied_prerelease: n
                .applied_prerelease
                .into_iter()
                .map(|a| v1::AppliedObject { api_version: a.api_version, kind: a.kind, name: a.name })
                .collect(),
            disruption_budgets: vec_into(n.disruption_budgets),
        }
    }
}

impl From<v1::Namespace> for model::Namespace {
    fn from(n: v1::Namespace) -> Self {
        model::Namespace {
            name: n.name,
            labels: n.labels.into_iter().collect(),
            security_tier: n.security_tier,
            sla_tier: sla_from_wire(n.sla_tier),
            requests: resources(n.requests),
            pod_groups: vec_into(n.pod_groups),
            applied_prerelease: n
                .applied_prerelease
                .into_iter()
                .map(|a| model::AppliedObject { api_version: a.api_version, kind: a.kind, name: a.name })
                .collect(),
            disruption_budgets: vec_into(n.disruption_budgets),
        }
    }
}

impl From<model::scheduling::DisruptionBudget> for v1::DisruptionBudget {
    fn from(b: model::scheduling::DisruptionBudget) -> Self {
        v1::DisruptionBudget {
            name: b.name,
            min_available: b.min_available,
            max_unavailable: b.max_unavailable,
            workloads: b.workloads,
        }
    }
}

impl From<v1::DisruptionBudget> for model::scheduling::DisruptionBudget {
    fn from(b: v1::DisruptionBudget) -> Self {
        model::scheduling::DisruptionBudget {
            name: b.name,
            min_available: b.min_available,
            max_unavailable: b.max_unavailable,
            workloads: b.workloads,
        }
    }
}

impl From<model::PartWorkload> for v1::PartWorkload {
    fn from(w: model::PartWorkload) -> Self {
        v1::PartWorkload { workload: w.workload, replicas: w.replicas }
    }
}

impl From<v1::PartWorkload> for model::PartWorkload {
    fn from(w: v1::PartWorkload) -> Self {
        model::PartWorkload { workload: w.workload, replicas: w.replicas }
    }
}

impl From<model::scheduling::PodGroup> for v1::PodGroup {
    fn from(g: model::scheduling::PodGroup) -> Self {
        let (has_node_affinity, node_affinity) = affinity_to_wire(g.node_affinity);
        v1::PodGroup {
            owner_kind: g.owner_kind,
            owner_name: g.owner_name,
            replicas: g.replicas,
            requests: Some(g.requests.into()),
            extended: g.extended.into_iter().collect(),
            node_selector: g.node_selector.into_iter().collect(),
            has_node_affinity,
            node_affinity,
            tolerations: vec_into(g.tolerations),
            runtime_class: g.runtime_class,
            volumes: vec_into(g.volumes),
            pod_security: Some(g.pod_security.into()),
        }
    }
}

fn affinity_to_wire(affinity: Option<model::scheduling::NodeAffinity>) -> (bool, Vec<v1::NodeSelectorTerm>) {
    let has = affinity.is_some();
    let terms = affinity
        .map(|a| a.terms.into_iter().map(|t| v1::NodeSelectorTerm { requirements: vec_into(t) }).collect())
        .unwrap_or_default();
    (has, terms)
}

fn affinity_from_wire(has: bool, terms: Vec<v1::NodeSelectorTerm>) -> Option<model::scheduling::NodeAffinity> {
    has.then(|| model::scheduling::NodeAffinity {
        terms: terms.into_iter().map(|t| vec_into(t.requirements)).collect(),
    })
}

impl From<model::scheduling::PodVolume> for v1::PodVolume {
    fn from(v: model::scheduling::PodVolume) -> Self {
        let (has_node_affinity, node_affinity) = affinity_to_wire(v.node_affinity);
        v1::PodVolume {
            claim: v.claim,
            volume: v.volume,
            storage_class: v.storage_class,
            driver: v.driver,
            size_bytes: v.size_bytes,
            has_node_affinity,
            node_affinity,
        }
    }
}

impl From<v1::PodVolume> for model::scheduling::PodVolume {
    fn from(v: v1::PodVolume) -> Self {
        model::scheduling::PodVolume {
            claim: v.claim,
            volume: v.volume,
            storage_class: v.storage_class,
            driver: v.driver,
            size_bytes: v.size_bytes,
            node_affinity: affinity_from_wire(v.has_node_affinity, v.node_affinity),
        }
    }
}

impl From<v1::PodGroup> for model::scheduling::PodGroup {
    fn from(g: v1::PodGroup) -> Self {
        model::scheduling::PodGroup {
            owner_kind: g.owner_kind,
            owner_name: g.owner_name,
            replicas: g.replicas,
            requests: resources(g.requests),
            extended: g.extended.into_iter().collect(),
            node_selector: g.node_selector.into_iter().collect(),
            node_affinity: affinity_from_wire(g.has_node_affinity, g.node_affinity),
            tolerations: vec_into(g.tolerations),
            runtime_class: g.runtime_class,
            volumes: vec_into(g.volumes),
            pod_security: g.pod_security.map(Into::into).unwrap_or_default(),
        }
    }
}

impl From<model::ClusterFacts> for v1::ClusterFacts {
    fn from(f: model::ClusterFacts) -> Self {
        v1::ClusterFacts {
            datacenter: f.datacenter,
            zone: f.zone,
            security_tier: f.security_tier,
            kubernetes_version: f.kubernetes_version,
            cni: f.cni,
            csi_drivers: f.csi_drivers,
        }
    }
}

impl From<v1::ClusterFacts> for model::ClusterFacts {
    fn from(f: v1::ClusterFacts) -> Self {
        model::ClusterFacts {
            datacenter: f.datacenter,
            zone: f.zone,
            security_tier: f.security_tier,
            kubernetes_version: f.kubernetes_version,
            cni: f.cni,
            csi_drivers: f.csi_drivers,
        }
    }
}

impl From<model::ClusterSnapshot> for v1::ClusterSnapshot {
    fn from(s: model::ClusterSnapshot) -> Self {
        v1::ClusterSnapshot {
            cluster_id: s.cluster_id,
            generation: s.generation,
            collected_at_unix: s.collected_at_unix,
            facts: Some(s.facts.into()),
            nodes: s.nodes.into_iter().map(Into::into).collect(),
            namespaces: s.namespaces.into_iter().map(Into::into).collect(),
            isolation: (!s.isolation.is_empty()).then(|| Box::new(s.isolation.into())),
        }
    }
}

impl TryFrom<v1::ClusterSnapshot> for model::ClusterSnapshot {
    type Error = ConvertError;
    fn try_from(s: v1::ClusterSnapshot) -> Result<Self, ConvertError> {
        check_enums(&s)?;
        Ok(model::ClusterSnapshot {
            cluster_id: s.cluster_id,
            generation: s.generation,
            collected_at_unix: s.collected_at_unix,
            facts: s.facts.ok_or(ConvertError::Missing("snapshot.facts"))?.into(),
            // Label maps arrive unordered on the wire; the domain keeps them sorted,
            // and nodes/namespaces are kept in the order the agent sent them.
            nodes: s.nodes.into_iter().map(Into::into).collect(),
            namespaces: s.namespaces.into_iter().map(Into::into).collect(),
            isolation: s.isolation.map(|isolation| (*isolation).into()).unwrap_or_default(),
        })
    }
}

impl From<model::ClusterSummary> for v1::ClusterSummary {
    fn from(s: model::ClusterSummary) -> Self {
        v1::ClusterSummary {
            cluster_id: s.cluster_id,
            generation: s.generation,
            collected_at_unix: s.collected_at_unix,
            stored_at_unix: s.stored_at_unix,
            n_generations: s.n_generations,
            n_nodes: s.n_nodes,
            n_namespaces: s.n_namespaces,
            datacenters: s.datacenters,
            zones: s.zones,
            security_tier: s.security_tier,
            kubernetes_version: s.kubernetes_version,
            cni: s.cni,
            allocatable: Some(s.allocatable.into()),
            requested: Some(s.requested.into()),
        }
    }
}

impl From<v1::ClusterSummary> for model::ClusterSummary {
    fn from(s: v1::ClusterSummary) -> Self {
        model::ClusterSummary {
            cluster_id: s.cluster_id,
            generation: s.generation,
            collected_at_unix: s.collected_at_unix,
            stored_at_unix: s.stored_at_unix,
            n_generations: s.n_generations,
            n_nodes: s.n_nodes,
            n_namespaces: s.n_namespaces,
            datacenters: s.datacenters,
            zones: s.zones,
            security_tier: s.security_tier,
            kubernetes_version: s.kubernetes_version,
            cni: s.cni,
            allocatable: resources(s.allocatable),
            requested: resources(s.requested),
        }
    }
}

// ---------------------------------------------------------------- plans

fn vec_into<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(Into::into).collect()
}

macro_rules! both_ways {
    ($domain:ty, $wire:ty, { $($field:ident),* $(,)? }) => {
        both_ways!($domain, $wire, { $($field),* }, mapped {});
    };
    // `mapped`: optional message fields, converted inside their `Option`.
    ($domain:ty, $wire:ty, { $($field:ident),* $(,)? }, mapped { $($mapped:ident),* $(,)? }) => {
        impl From<$domain> for $wire {
            fn from(x: $domain) -> Self { Self { $($field: x.$field,)* $($mapped: x.$mapped.map(Into::into),)* } }
        }
        impl From<$wire> for $domain {
            fn from(x: $wire) -> Self { Self { $($field: x.$field,)* $($mapped: x.$mapped.map(Into::into),)* } }
        }
    };
}

both_ways!(model::NodeRef, v1::NodeRef, { cluster_id, node, zone });
both_ways!(model::scheduling::Taint, v1::Taint, { key, value, effect });
both_ways!(model::scheduling::Toleration, v1::Toleration, { key, operator, value, effect });
both_ways!(model::scheduling::NodeSelectorRequirement, v1::NodeSelectorRequirement, { key, operator, values });
both_ways!(model::ControlPlaneNode, v1::ControlPlaneNode, { cluster_id, node, zone });
both_ways!(model::InventoryRef, v1::InventoryRef, { cluster_id, generation, content_sha256 });
both_ways!(model::PlanFingerprint, v1::PlanFingerprint, {
    input_digest, content_digest, kplan_version, highs_version, limits, options
});
both_ways!(model::NamespaceRename, v1::NamespaceRename, {
    from_cluster, namespace, new_name, target_cluster, collides_with
});
both_ways!(model::PlanSummary, v1::PlanSummary, {
    n_blocks, n_blocks_infeasible, nodes_before, nodes_after, control_planes_retired,
    firewall_flows, waves, objective, lower_bound, solve_seconds
});
both_ways!(model::GenerationInfo, v1::GenerationInfo, { generation, collected_at_unix, stored_at_unix });

// ---------------------------------------------------------------- isolation (RBAC, network, runtime)

both_ways!(model::isolation::PolicyRule, v1::PolicyRule, {
    api_groups, resources, verbs, resource_names, non_resource_urls
});
both_ways!(model::isolation::Subject, v1::RbacSubject, { kind, name, namespace });
both_ways!(model::isolation::LabelSelectorRequirement, v1::LabelSelectorRequirement, { key, operator, values });
both_ways!(model::isolation::IpBlock, v1::IpBlock, { cidr, except });
both_ways!(model::isolation::RuntimeClass, v1::RuntimeClass, { name, handler });
both_ways!(model::isolation::PodSecurityViolations, v1::PodSecurityViolations, { baseline, restricted });
both_ways!(model::RuntimeHandler, v1::RuntimeHandler, { name, features });

both_ways!(model::isolation::AdmissionPolicy, v1::AdmissionPolicy, {
    group, kind, name, policy, namespaces, actions
}, mapped { namespace_selector });

impl From<model::isolation::IsolationInventory> for v1::IsolationInventory {
    fn from(i: model::isolation::IsolationInventory) -> Self {
        v1::IsolationInventory {
            cluster_roles: vec_into(i.cluster_roles),
            cluster_role_bindings: vec_into(i.cluster_role_bindings),
            roles: vec_into(i.roles),
            role_bindings: vec_into(i.role_bindings),
            network_policies: vec_into(i.network_policies),
            runtime_classes: vec_into(i.runtime_classes),
            admission_policies: vec_into(i.admission_policies),
        }
    }
}

impl From<v1::IsolationInventory> for model::isolation::IsolationInventory {
    fn from(i: v1::IsolationInventory) -> Self {
        model::isolation::IsolationInventory {
            cluster_roles: vec_into(i.cluster_roles),
            cluster_role_bindings: vec_into(i.cluster_role_bindings),
            roles: vec_into(i.roles),
            role_bindings: vec_into(i.role_bindings),
            network_policies: vec_into(i.network_policies),
            runtime_classes: vec_into(i.runtime_classes),
            admission_policies: vec_into(i.admission_policies),
        }
    }
}

impl From<model::isolation::Role> for v1::Role {
    fn from(r: model::isolation::Role) -> Self {
        v1::Role { namespace: r.namespace, name: r.name, rules: vec_into(r.rules) }
    }
}

impl From<v1::Role> for model::isolation::Role {
    fn from(r: v1::Role) -> Self {
        model::isolation::Role { namespace: r.namespace, name: r.name, rules: vec_into(r.rules) }
    }
}

impl From<model::isolation::RoleBinding> for v1::RoleBinding {
    fn from(b: model::isolation::RoleBinding) -> Self {
        v1::RoleBinding {
            namespace: b.namespace,
            name: b.name,
            role_kind: b.role_ref.kind,
            role_name: b.role_ref.name,
            subjects: vec_into(b.subjects),
        }
    }
}

impl From<v1::RoleBinding> for model::isolation::RoleBinding {
    fn from(b: v1::RoleBinding) -> Self {
        model::isolation::RoleBinding {
            namespace: b.namespace,
            name: b.name,
            role_ref: model::isolation::RoleRef { kind: b.role_kind, name: b.role_name },
            subjects: vec_into(b.subjects),
        }
    }
}

impl From<model::isolation::LabelSelector> for v1::LabelSelector {
    fn from(s: model::isolation::LabelSelector) -> Self {
        v1::LabelSelector {
            match_labels: s.match_labels.into_iter().collect(),
            match_expressions: vec_into(s.match_expressions),
        }
    }
}

impl From<v1::LabelSelector> for model::isolation::LabelSelector {
    fn from(s: v1::LabelSelector) -> Self {
        model::isolation::LabelSelector {
            match_labels: s.match_labels.into_iter().collect(),
            match_expressions: vec_into(s.match_expressions),
        }
    }
}

impl From<model::isolation::NetworkPolicyPeer> for v1::NetworkPolicyPeer {
    fn from(p: model::isolation::NetworkPolicyPeer) -> Self {
        v1::NetworkPolicyPeer {
            pod_selector: p.pod_selector.map(Into::into),
            namespace_selector: p.namespace_selector.map(Into::into),
            ip_block: p.ip_block.map(Into::into),
        }
    }
}

impl From<v1::NetworkPolicyPeer> for model::isolation::NetworkPolicyPeer {
    fn from(p: v1::NetworkPolicyPeer) -> Self {
        model::isolation::NetworkPolicyPeer {
            pod_selector: p.pod_selector.map(Into::into),
            namespace_selector: p.namespace_selector.map(Into::into),
            ip_block: p.ip_block.map(Into::into),
        }
    }
}

impl From<model::isolation::NetworkPolicyRule> for v1::NetworkPolicyRule {
    fn from(r: model::isolation::NetworkPolicyRule) -> Self {
        v1::NetworkPolicyRule { peers: vec_into(r.peers), ports: r.ports }
    }
}

impl From<v1::NetworkPolicyRule> for model::isolation::NetworkPolicyRule {
    fn from(r: v1::NetworkPolicyRule) -> Self {
        model::isolation::NetworkPolicyRule { peers: vec_into(r.peers), ports: r.ports }
    }
}

impl From<model::isolation::NetworkPolicy> for v1::NetworkPolicy {
    fn from(p: model::isolation::NetworkPolicy) -> Self {
        v1::NetworkPolicy {
            namespace: p.namespace,
            name: p.name,
            pod_selector: Some(p.pod_selector.into()),
            policy_types: p.policy_types,
            ingress: vec_into(p.ingress),
            egress: vec_into(p.egress),
        }
    }
}

impl From<v1::NetworkPolicy> for model::isolation::NetworkPolicy {
    fn from(p: v1::NetworkPolicy) -> Self {
        model::isolation::NetworkPolicy {
            namespace: p.namespace,
            name: p.name,
            pod_selector: p.pod_selector.map(Into::into).unwrap_or_default(),
            policy_types: p.policy_types,
            ingress: vec_into(p.ingress),
            egress: vec_into(p.egress),
        }
    }
}

impl From<model::PlanInfo> for v1::PlanInfo {
    fn from(p: model::PlanInfo) -> Self {
        v1::PlanInfo { id: p.id, created_at_unix: p.created_at_unix, summary: Some(p.summary.into()) }
    }
}

impl From<v1::PlanInfo> for model::PlanInfo {
    fn from(p: v1::PlanInfo) -> Self {
        model::PlanInfo {
            id: p.id,
            created_at_unix: p.created_at_unix,
            summary: p.summary.map(Into::into).unwrap_or_default(),
        }
    }
}

impl From<model::TargetCluster> for v1::TargetCluster {
    fn from(t: model::TargetCluster) -> Self {
        v1::TargetCluster {
            name: t.name,
            nodes_kept: vec_into(t.nodes_kept),
            control_plane: vec_into(t.control_plane),
            control_plane_note: t.control_plane_note,
            small_site: t.small_site,
            distribution: t.distribution,
            kubernetes_version: t.kubernetes_version,
            cni: t.cni,
            zones: t.zones,
            allocatable: Some(t.allocatable.into()),
            requested: Some(t.requested.into()),
            addons: vec_into(t.addons),
        }
    }
}

impl From<v1::TargetCluster> for model::TargetCluster {
    fn from(t: v1::TargetCluster) -> Self {
        model::TargetCluster {
            name: t.name,
            nodes_kept: vec_into(t.nodes_kept),
            control_plane: vec_into(t.control_plane),
            control_plane_note: t.control_plane_note,
            small_site: t.small_site,
            distribution: t.distribution,
            kubernetes_version: t.kubernetes_version,
            cni: t.cni,
            zones: t.zones,
            allocatable: resources(t.allocatable),
            requested: resources(t.requested),
            addons: vec_into(t.addons),
        }
    }
}

impl From<model::AddonInstall> for v1::AddonInstall {
    fn from(a: model::AddonInstall) -> Self {
        v1::AddonInstall {
            namespace: a.namespace,
            origin: match a.origin {
                model::AddonOrigin::Policy => v1::AddonOrigin::Policy,
                model::AddonOrigin::Detected => v1::AddonOrigin::Detected,
            } as i32,
            wave: a.wave,
            sized_from: a.sized_from,
            requests: Some(a.requests.into()),
            instances: vec_into(a.instances),
        }
    }
}

impl From<v1::AddonInstall> for model::AddonInstall {
    fn from(a: v1::AddonInstall) -> Self {
        model::AddonInstall {
            namespace: a.namespace,
            origin: match v1::AddonOrigin::try_from(a.origin) {
                Ok(v1::AddonOrigin::Detected) => model::AddonOrigin::Detected,
                _ => model::AddonOrigin::Policy,
            },
            wave: a.wave,
            sized_from: a.sized_from,
            requests: resources(a.requests),
            instances: vec_into(a.instances),
        }
    }
}

impl From<model::AddonInstance> for v1::AddonInstance {
    fn from(i: model::AddonInstance) -> Self {
        v1::AddonInstance { cluster_id: i.cluster_id, version: i.version, requests: Some(i.requests.into()) }
    }
}

impl From<v1::AddonInstance> for model::AddonInstance {
    fn from(i: v1::AddonInstance) -> Self {
        model::AddonInstance { cluster_id: i.cluster_id, version: i.version, requests: resources(i.requests) }
    }
}

fn protocol_to_wire(p: model::Protocol) -> i32 {
    match p {
        model::Protocol::Tcp => v1::Protocol::Tcp as i32,
        model::Protocol::Udp => v1::Protocol::Udp as i32,
        model::Protocol::Ipip => v1::Protocol::Ipip as i32,
    }
}

fn protocol_from_wire(p: i32) -> model::Protocol {
    match v1::Protocol::try_from(p) {
        Ok(v1::Protocol::Udp) => model::Protocol::Udp,
        Ok(v1::Protocol::Ipip) => model::Protocol::Ipip,
        _ => model::Protocol::Tcp,
    }
}

impl From<model::FirewallFlow> for v1::FirewallFlow {
    fn from(f: model::FirewallFlow) -> Self {
        v1::FirewallFlow {
            target_cluster: f.target_cluster,
            from_zone: f.from_zone,
            to_zone: f.to_zone,
            protocol: protocol_to_wire(f.protocol),
            ports: f.ports,
            purpose: f.purpose,
        }
    }
}

impl From<v1::FirewallFlow> for model::FirewallFlow {
    fn from(f: v1::FirewallFlow) -> Self {
        model::FirewallFlow {
            target_cluster: f.target_cluster,
            from_zone: f.from_zone,
            to_zone: f.to_zone,
            protocol: protocol_from_wire(f.protocol),
            ports: f.ports,
            purpose: f.purpose,
        }
    }
}

impl From<model::NodeMove> for v1::NodeMove {
    fn from(m: model::NodeMove) -> Self {
        v1::NodeMove {
            cluster_id: m.cluster_id,
            node: m.node,
            zone: m.zone,
            action: match m.action {
                model::NodeAction::DrainAndJoin => v1::NodeAction::DrainAndJoin as i32,
                model::NodeAction::Free => v1::NodeAction::Free as i32,
            },
            to_cluster: m.to_cluster,
        }
    }
}

impl From<v1::NodeMove> for model::NodeMove {
    fn from(m: v1::NodeMove) -> Self {
        model::NodeMove {
            cluster_id: m.cluster_id,
            node: m.node,
            zone: m.zone,
            action: if m.action == v1::NodeAction::Free as i32 {
                model::NodeAction::Free
            } else {
                model::NodeAction::DrainAndJoin
            },
            to_cluster: m.to_cluster,
        }
    }
}

impl From<model::NamespaceMove> for v1::NamespaceMove {
    fn from(m: model::NamespaceMove) -> Self {
        v1::NamespaceMove {
            from_cluster: m.from_cluster,
            namespace: m.namespace,
            to_cluster: m.to_cluster,
            new_name: m.new_name,
            sla_tier: sla_to_wire(m.sla_tier),
            requests: Some(m.requests.into()),
            part: m.part.map(|p| v1::MovePart { index: p.index, of: p.of, workloads: vec_into(p.workloads) }),
        }
    }
}

impl From<v1::NamespaceMove> for model::NamespaceMove {
    fn from(m: v1::NamespaceMove) -> Self {
        model::NamespaceMove {
            from_cluster: m.from_cluster,
            namespace: m.namespace,
            to_cluster: m.to_cluster,
            new_name: m.new_name,
            sla_tier: sla_from_wire(m.sla_tier),
            requests: resources(m.requests),
            part: m.part.map(|p| model::MovePart { index: p.index, of: p.of, workloads: vec_into(p.workloads) }),
        }
    }
}

impl From<model::ClusterCapacity> for v1::ClusterCapacity {
    fn from(c: model::ClusterCapacity) -> Self {
        v1::ClusterCapacity {
            cluster: c.cluster,
            allocatable: Some(c.allocatable.into()),
            requested: Some(c.requested.into()),
        }
    }
}

impl From<v1::ClusterCapacity> for model::ClusterCapacity {
    fn from(c: v1::ClusterCapacity) -> Self {
        model::ClusterCapacity {
            cluster: c.cluster,
            allocatable: resources(c.allocatable),
            requested: resources(c.requested),
        }
    }
}

impl From<model::Wave> for v1::Wave {
    fn from(w: model::Wave) -> Self {
        v1::Wave {
            index: w.index,
            nodes: vec_into(w.nodes),
            namespaces: vec_into(w.namespaces),
            clusters_retired: w.clusters_retired,
            capacity_before: vec_into(w.capacity_before),
            capacity_after: vec_into(w.capacity_after),
        }
    }
}

impl From<v1::Wave> for model::Wave {
    fn from(w: v1::Wave) -> Self {
        model::Wave {
            index: w.index,
            nodes: vec_into(w.nodes),
            namespaces: vec_into(w.namespaces),
            clusters_retired: w.clusters_retired,
            capacity_before: vec_into(w.capacity_before),
            capacity_after: vec_into(w.capacity_after),
        }
    }
}

fn precondition_kind_to_wire(k: model::PreconditionKind) -> i32 {
    use model::PreconditionKind as K;
    (match k {
        K::KubeletUpgrade => v1::PreconditionKind::KubeletUpgrade,
        K::RuntimeMigration => v1::PreconditionKind::RuntimeMigration,
        K::CniMigration => v1::PreconditionKind::CniMigration,
        K::CsiDriver => v1::PreconditionKind::CsiDriver,
        K::RemovedApis => v1::PreconditionKind::RemovedApis,
        K::DataMigration => v1::PreconditionKind::DataMigration,
        K::AddonVersions => v1::PreconditionKind::AddonVersions,
        K::DisruptionBudget => v1::PreconditionKind::DisruptionBudget,
    }) as i32
}

fn precondition_kind_from_wire(k: i32) -> model::PreconditionKind {
    use model::PreconditionKind as K;
    match v1::PreconditionKind::try_from(k) {
        Ok(v1::PreconditionKind::RuntimeMigration) => K::RuntimeMigration,
        Ok(v1::PreconditionKind::CniMigration) => K::CniMigration,
        Ok(v1::PreconditionKind::CsiDriver) => K::CsiDriver,
        Ok(v1::PreconditionKind::RemovedApis) => K::RemovedApis,
        Ok(v1::PreconditionKind::DataMigration) => K::DataMigration,
        Ok(v1::PreconditionKind::AddonVersions) => K::AddonVersions,
        Ok(v1::PreconditionKind::DisruptionBudget) => K::DisruptionBudget,
        _ => K::KubeletUpgrade,
    }
}

impl From<model::Precondition> for v1::Precondition {
    fn from(p: model::Precondition) -> Self {
        v1::Precondition {
            cluster_id: p.cluster_id,
            kind: precondition_kind_to_wire(p.kind),
            detail: p.detail,
            nodes: p.nodes,
            before_wave: p.before_wave,
            claims: p.claims,
        }
    }
}

impl From<v1::Precondition> for model::Precondition {
    fn from(p: v1::Precondition) -> Self {
        model::Precondition {
            cluster_id: p.cluster_id,
            kind: precondition_kind_from_wire(p.kind),
            detail: p.detail,
            nodes: p.nodes,
            before_wave: p.before_wave,
            claims: p.claims,
        }
    }
}

impl From<model::BlockPlan> for v1::BlockPlan {
    fn from(b: model::BlockPlan) -> Self {
        v1::BlockPlan {
            datacenter: b.datacenter,
            security_tier: b.security_tier,
            status: match b.status {
                model::BlockStatus::Planned => v1::BlockStatus::Planned as i32,
                model::BlockStatus::Infeasible => v1::BlockStatus::Infeasible as i32,
            },
            explanation: b.explanation,
            source_clusters: b.source_clusters,
            target_clusters: vec_into(b.target_clusters),
            nodes_freed: vec_into(b.nodes_freed),
            firewall_flows: vec_into(b.firewall_flows),
            waves: vec_into(b.waves),
            namespace_renames: vec_into(b.namespace_renames),
            preconditions: vec_into(b.preconditions),
            nodes_before: b.nodes_before,
            nodes_after: b.nodes_after,
            objective: b.objective,
            lower_bound: b.lower_bound,
            gap: b.gap,
            greedy_objective: b.greedy_objective,
            solver_status: b.solver_status,
            solve_seconds: b.solve_seconds,
            wall_clock_stops: b.wall_clock_stops,
        }
    }
}

impl From<v1::BlockPlan> for model::BlockPlan {
    fn from(b: v1::BlockPlan) -> Self {
        model::BlockPlan {
            datacenter: b.datacenter,
            security_tier: b.security_tier,
            status: if b.status == v1::BlockStatus::Infeasible as i32 {
                model::BlockStatus::Infeasible
            } else {
                model::BlockStatus::Planned
            },
            explanation: b.explanation,
            source_clusters: b.source_clusters,
            target_clusters: vec_into(b.target_clusters),
            nodes_freed: vec_into(b.nodes_freed),
            firewall_flows: vec_into(b.firewall_flows),
            waves: vec_into(b.waves),
            namespace_renames: vec_into(b.namespace_renames),
            preconditions: vec_into(b.preconditions),
            nodes_before: b.nodes_before,
            nodes_after: b.nodes_after,
            objective: b.objective,
            lower_bound: b.lower_bound,
            gap: b.gap,
            greedy_objective: b.greedy_objective,
            solver_status: b.solver_status,
            solve_seconds: b.solve_seconds,
            wall_clock_stops: b.wall_clock_stops,
        }
    }
}

impl From<model::Plan> for v1::Plan {
    fn from(p: model::Plan) -> Self {
        v1::Plan {
            id: p.id,
            created_at_unix: p.created_at_unix,
            inventory: vec_into(p.inventory),
            policy_digest: p.policy_digest,
            blocks: vec_into(p.blocks),
            summary: Some(p.summary.into()),
            fingerprint: Some(p.fingerprint.into()),
            // A Policy always serialises (plain data, string keys).
            policy_json: p.policy.as_ref().and_then(|policy| serde_json::to_string(policy).ok()).unwrap_or_default(),
        }
    }
}

impl From<v1::Plan> for model::Plan {
    fn from(p: v1::Plan) -> Self {
        model::Plan {
            id: p.id,
            created_at_unix: p.created_at_unix,
            inventory: vec_into(p.inventory),
            policy_digest: p.policy_digest,
            blocks: vec_into(p.blocks),
            summary: p.summary.map(Into::into).unwrap_or_default(),
            fingerprint: p.fingerprint.map(Into::into).unwrap_or_default(),
            // Empty (an older server) or unreadable: no policy to re-plan with.
            policy: serde_json::from_str(&p.policy_json).ok(),
        }
    }
}

// ---------------------------------------------------------------- capacity

impl From<model::capacity::CapacityReview> for v1::CapacityReviewResponse {
    fn from(review: model::capacity::CapacityReview) -> Self {
        v1::CapacityReviewResponse {
            quarter: review.quarter.to_string(),
            previous_quarter: review.previous_quarter.to_string(),
            blocks: vec_into(review.blocks),
            stale_clusters: review
                .stale_clusters
                .into_iter()
                .map(|s| v1::StaleCluster {
                    cluster_id: s.cluster_id,
                    last_report_unix: s.last_report_unix,
                    age_seconds: s.age_seconds,
                })
                .collect(),
        }
    }
}

impl From<model::capacity::BlockCapacity> for v1::BlockCapacity {
    fn from(b: model::capacity::BlockCapacity) -> Self {
        v1::BlockCapacity {
            datacenter: b.datacenter,
            security_tier: b.security_tier,
            clusters: b.clusters,
            n_nodes: b.n_nodes,
            n_namespaces: b.n_namespaces,
            resources: b
                .resources
                .into_iter()
                .map(|r| v1::ResourceUsage {
                    resource: r.resource.name().to_string(),
                    allocatable: r.allocatable,
                    requested: r.requested,
                    utilisation: r.utilisation,
                    headroom: r.headroom,
                    requested_change: r.requested_change.unwrap_or(f64::NAN),
                    allocatable_change: r.allocatable_change.unwrap_or(f64::NAN),
                    runs_out_in: r.runs_out_in.map(|q| q.to_string()).unwrap_or_default(),
                })
                .collect(),
            trend: b
                .trend
                .into_iter()
                .map(|p| v1::QuarterPoint {
                    quarter: p.quarter.to_string(),
                    allocatable: Some(p.allocatable.into()),
                    requested: Some(p.requested.into()),
                })
                .collect(),
        }
    }
}

fn quarter(text: &str, field: &'static str) -> Result<model::capacity::Quarter, ConvertError> {
    text.parse().map_err(|_| ConvertError::Invalid(field, text.to_string()))
}

impl TryFrom<v1::CapacityReviewResponse> for model::capacity::CapacityReview {
    type Error = ConvertError;
    fn try_from(r: v1::CapacityReviewResponse) -> Result<Self, ConvertError> {
        use model::capacity::{BlockCapacity, QuarterPoint, Resource, ResourceUsage, StaleCluster};
        let finite = |x: f64| x.is_finite().then_some(x);
        let mut blocks = Vec::with_capacity(r.blocks.len());
        for b in r.blocks {
            let mut usages = Vec::with_capacity(b.resources.len());
            for u in b.resources {
                let resource = Resource::ALL
                    .into_iter()
                    .find(|x| x.name() == u.resource)
                    .ok_or(ConvertError::Invalid("resources.resource", u.resource.clone()))?;
                usages.push(ResourceUsage {
                    resource,
                    allocatable: u.allocatable,
                    requested: u.requested,
                    utilisation: u.utilisation,
                    headroom: u.headroom,
                    requested_change: finite(u.requested_change),
                    allocatable_change: finite(u.allocatable_change),
                    runs_out_in: if u.runs_out_in.is_empty() {
                        None
                    } else {
                        Some(quarter(&u.runs_out_in, "resources.runs_out_in")?)
                    },
                });
            }
            let mut trend = Vec::with_capacity(b.trend.len());
            for p in b.trend {
                trend.push(QuarterPoint {
                    quarter: quarter(&p.quarter, "trend.quarter")?,
                    allocatable: resources(p.allocatable),
                    requested: resources(p.requested),
                });
            }
            blocks.push(BlockCapacity {
                datacenter: b.datacenter,
                security_tier: b.security_tier,
                clusters: b.clusters,
                n_nodes: b.n_nodes,
                n_namespaces: b.n_namespaces,
                resources: usages,
                trend,
            });
        }
        Ok(model::capacity::CapacityReview {
            quarter: quarter(&r.quarter, "quarter")?,
            previous_quarter: quarter(&r.previous_quarter, "previous_quarter")?,
            blocks,
            stale_clusters: r
                .stale_clusters
                .into_iter()
                .map(|s| StaleCluster {
                    cluster_id: s.cluster_id,
                    last_report_unix: s.last_report_unix,
                    age_seconds: s.age_seconds,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn snapshot() -> model::ClusterSnapshot {
        model::ClusterSnapshot {
            cluster_id: "fra-prod-1".into(),
            generation: 42,
            collected_at_unix: 1_700_000_000,
            facts: model::ClusterFacts {
                datacenter: "fra".into(),
                zone: "fra-prod-a".into(),
                security_tier: "prod".into(),
                kubernetes_version: "v1.29.1".into(),
                cni: "calico".into(),
                csi_drivers: vec!["ebs.csi.aws.com".into()],
            },
            nodes: vec![model::Node {
                name: "n1".into(),
                labels: BTreeMap::from([("a".into(), "b".into())]),
                datacenter: "fra".into(),
                zone: "fra-prod-a".into(),
                role: model::NodeRole::ControlPlane,
                allocatable: model::Resources::new(3500, 16 << 30, 110),
                kubelet_version: "v1.29.1".into(),
                container_runtime: "containerd://1.7.2".into(),
                architecture: "amd64".into(),
                unschedulable: true,
                taints: Vec::new(),
                extended: Default::default(),
                runtime_handlers: vec![
                    model::RuntimeHandler { name: String::new(), features: vec!["recursiveReadOnlyMounts".into()] },
                    model::RuntimeHandler { name: "runsc".into(), features: Vec::new() },
                ],
            }],
            namespaces: vec![model::Namespace {
                name: "payments".into(),
                labels: BTreeMap::new(),
                security_tier: "prod".into(),
                sla_tier: model::SlaTier::Gold,
                requests: model::Resources::new(250, 1 << 29, 3),
                pod_groups: vec![model::scheduling::PodGroup {
                    owner_kind: "Deployment".into(),
                    owner_name: "agent".into(),
                    replicas: 2,
                    pod_security: model::isolation::PodSecurityViolations {
                        baseline: vec!["hostNamespaces".into()],
                        restricted: vec!["runAsNonRoot".into()],
                    },
                    ..Default::default()
                }],
                applied_prerelease: vec![model::AppliedObject {
                    api_version: "batch/v1beta1".into(),
                    kind: "CronJob".into(),
                    name: "nightly".into(),
                }],
                disruption_budgets: vec![model::scheduling::DisruptionBudget {
                    name: "api".into(),
                    min_available: "2".into(),
                    max_unavailable: String::new(),
                    workloads: vec!["Deployment/api".into()],
                }],
            }],
            isolation: isolation(),
        }
    }

    /// One object of every isolation kind, every field set.
    fn isolation() -> model::isolation::IsolationInventory {
        use model::isolation::*;
        let selector = LabelSelector {
            match_labels: BTreeMap::from([("team".into(), "pay".into())]),
            match_expressions: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: vec!["web".into()],
            }],
        };
        let rule = PolicyRule {
            api_groups: vec!["apps".into()],
            resources: vec!["deployments".into()],
            verbs: vec!["get".into()],
            resource_names: vec!["web".into()],
            non_resource_urls: vec!["/healthz".into()],
        };
        let binding = |namespace: &str| RoleBinding {
            namespace: namespace.into(),
            name: "pay-edit".into(),
            role_ref: RoleRef { kind: "ClusterRole".into(), name: "edit".into() },
            subjects: vec![Subject { kind: "ServiceAccount".into(), name: "ci".into(), namespace: "ci".into() }],
        };
        IsolationInventory {
            cluster_roles: vec![Role { namespace: String::new(), name: "edit".into(), rules: vec![rule.clone()] }],
            cluster_role_bindings: vec![binding("")],
            roles: vec![Role { namespace: "payments".into(), name: "reader".into(), rules: vec![rule] }],
            role_bindings: vec![binding("payments")],
            network_policies: vec![NetworkPolicy {
                namespace: "payments".into(),
                name: "web".into(),
                pod_selector: selector.clone(),
                policy_types: vec!["Ingress".into(), "Egress".into()],
                ingress: vec![NetworkPolicyRule {
                    peers: vec![NetworkPolicyPeer {
                        pod_selector: Some(selector.clone()),
                        namespace_selector: Some(LabelSelector::default()),
                        ip_block: Some(IpBlock { cidr: "10.0.0.0/8".into(), except: vec!["10.1.0.0/16".into()] }),
                    }],
                    ports: vec!["TCP/443".into()],
                }],
                egress: vec![NetworkPolicyRule { peers: Vec::new(), ports: vec!["UDP/53".into()] }],
            }],
            runtime_classes: vec![RuntimeClass { name: "gvisor".into(), handler: "runsc".into() }],
            admission_policies: vec![model::isolation::AdmissionPolicy {
                group: "constraints.gatekeeper.sh".into(),
                kind: "K8sRequiredLabels".into(),
                name: "must-have-team".into(),
                namespaces: vec!["payments".into()],
                namespace_selector: Some(LabelSelector::default()),
                actions: vec!["deny".into()],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_snapshot_without_isolation_sends_none_and_reads_back_empty() {
        let mut domain = snapshot();
        domain.isolation = Default::default();
        let wire: v1::ClusterSnapshot = domain.clone().into();
        assert!(wire.isolation.is_none());
        assert_eq!(model::ClusterSnapshot::try_from(wire).expect("converts back"), domain);
    }

    #[test]
    fn snapshot_round_trips_through_the_wire() {
        let domain = snapshot();
        let wire: v1::ClusterSnapshot = domain.clone().into();
        let back = model::ClusterSnapshot::try_from(wire).expect("converts back");
        assert_eq!(back, domain);
    }

    #[test]
    fn missing_facts_is_named() {
        let mut wire: v1::ClusterSnapshot = snapshot().into();
        wire.facts = None;
        let err = model::ClusterSnapshot::try_from(wire).expect_err("facts are required");
        assert_eq!(err.to_string(), "missing field snapshot.facts");
    }

    #[test]
    fn unknown_enum_values_are_named() {
        let mut wire: v1::ClusterSnapshot = snapshot().into();
        wire.nodes[0].role = 7;
        let err = model::ClusterSnapshot::try_from(wire).expect_err("role 7 is unknown");
        assert_eq!(
            err.to_string(),
            "nodes[0] \"n1\": role: unknown value 7 (expected 0 unspecified (worker), 1 control-plane or 2 worker)"
        );
        let mut wire: v1::ClusterSnapshot = snapshot().into();
        wire.namespaces[0].sla_tier = -1;
        let err = model::ClusterSnapshot::try_from(wire).expect_err("tier -1 is unknown");
        assert!(err.to_string().starts_with("namespaces[0] \"payments\": sla_tier: unknown value -1"), "{err}");
    }

    #[test]
    fn plan_round_trips_through_the_wire() {
        let plan = model::Plan {
            id: "plan-1".into(),
            blocks: vec![model::BlockPlan {
                datacenter: "fra".into(),
                security_tier: "prod".into(),
                status: model::BlockStatus::Infeasible,
                explanation: "not enough memory".into(),
                firewall_flows: vec![model::FirewallFlow {
                    protocol: model::Protocol::Udp,
                    ports: "8472".into(),
                    ..Default::default()
                }],
                waves: vec![model::Wave {
                    index: 1,
                    nodes: vec![model::NodeMove { action: model::NodeAction::Free, ..Default::default() }],
                    namespaces: vec![model::NamespaceMove {
                        sla_tier: model::SlaTier::Silver,
                        part: Some(model::MovePart {
                            index: 2,
                            of: 3,
                            workloads: vec![model::PartWorkload { workload: "Deployment/web".into(), replicas: 4 }],
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                preconditions: vec![model::Precondition {
                    kind: model::PreconditionKind::RuntimeMigration,
                    ..Default::default()
                }],
                target_clusters: vec![model::TargetCluster {
                    name: "fra-prod".into(),
                    addons: vec![model::AddonInstall {
                        namespace: "ingress-nginx".into(),
                        origin: model::AddonOrigin::Detected,
                        wave: 2,
                        sized_from: "c1".into(),
                        requests: model::Resources::new(500, 1 << 30, 2),
                        instances: vec![model::AddonInstance {
                            cluster_id: "c1".into(),
                            version: "1.10.1".into(),
                            requests: model::Resources::new(500, 1 << 30, 2),
                        }],
                    }],
                    ..Default::default()
                }],
                gap: 0.01,
                ..Default::default()
            }],
            ..Default::default()
        };
        let wire: v1::Plan = plan.clone().into();
        assert_eq!(model::Plan::from(wire), plan);
    }
}
