//! Checks on a snapshot before it is stored. Every problem names the object
//! and the field (`nodes[3] "node-a": labels: key "Bad Key": ...`); a snapshot
//! with any problem is refused whole, and nothing of it is written.
//!
//! What is checked:
//! - names: the cluster id and node names are DNS-1123 subdomains, namespace
//!   names DNS-1123 labels; node and namespace names are unique in a snapshot;
//! - labels: keys and values by Kubernetes' syntax and lengths (an optional
//!   DNS-subdomain prefix of at most 253 characters, a name of at most 63,
//!   values of at most 63);
//! - topology and tiers: datacenter, zone and security tier are non-empty
//!   (where the planner needs them) and follow the label-value syntax;
//! - text: no NUL or other control characters anywhere, bounded lengths;
//! - quantities: nothing absurd (more than [`MAX_CPU_MILLIS`], [`MAX_MEMORY_BYTES`]
//!   or [`MAX_PODS`] on one node or in one namespace);
//! - counts: nodes, namespaces, labels per object and isolation objects
//!   (RBAC, NetworkPolicies, RuntimeClasses, admission policies) within [`ValidationLimits`];
//! - isolation objects: names present, text bounded and free of control characters;
//! - the generation is at least 1, the collection time is a plausible Unix time.
//!
//! The node role and SLA tier enums are checked where the wire is converted
//! (`kplan_proto::convert`): the domain types cannot hold an unknown value.
//!
//! At most [`MAX_REPORTED_PROBLEMS`] problems are spelled out (the rest are
//! counted), and every quoted value is cut to [`MAX_QUOTED_CHARS`] characters,
//! so a refusal stays a short status message whatever the snapshot holds.

use std::collections::BTreeSet;
use std::fmt;

use kplan_model::{ClusterSnapshot, Resources};
use serde::{Deserialize, Serialize};

/// Longest cluster id accepted (a DNS subdomain).
pub const MAX_CLUSTER_ID_LEN: usize = 253;
/// Longest DNS-1123 subdomain (node names, label-key prefixes).
pub const MAX_SUBDOMAIN_LEN: usize = 253;
/// Longest DNS-1123 label (namespace names).
pub const MAX_DNS_LABEL_LEN: usize = 63;
/// Longest label-key name part and label value.
pub const MAX_LABEL_NAME_LEN: usize = 63;
/// Longest free-form text (kubelet version, container runtime, CNI, ...), in bytes.
pub const MAX_TEXT_LEN: usize = 256;
/// Most CSI drivers in one snapshot's facts.
pub const MAX_CSI_DRIVERS: usize = 256;
/// One million cores: more on one node or in one namespace is absurd.
pub const MAX_CPU_MILLIS: u64 = 1_000_000_000;
/// One PiB: more on one node or in one namespace is absurd.
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;
/// One million pods: more on one node or in one namespace is absurd.
pub const MAX_PODS: u64 = 1_000_000;
/// Latest accepted `collected_at_unix`: 9999-12-31T23:59:59Z.
pub const MAX_UNIX_TIME: i64 = 253_402_300_799;
/// Problems spelled out in a refusal; the rest are counted.
pub const MAX_REPORTED_PROBLEMS: usize = 10;
/// Characters of a refused value quoted in a problem.
pub const MAX_QUOTED_CHARS: usize = 64;

/// Configurable caps on the size of one snapshot (server config `[validation]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationLimits {
    /// Most nodes in one snapshot (default 10,000; Kubernetes supports 5,000 per cluster).
    pub max_nodes_per_snapshot: usize,
    /// Most namespaces in one snapshot (default 20,000).
    pub max_namespaces_per_snapshot: usize,
    /// Most labels on one node or namespace (default 256).
    pub max_labels_per_object: usize,
    /// Most RBAC objects, NetworkPolicies and RuntimeClasses in one snapshot,
    /// every kind together (default 100,000).
    pub max_isolation_objects_per_snapshot: usize,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            max_nodes_per_snapshot: 10_000,
            max_namespaces_per_snapshot: 20_000,
            max_labels_per_object: 256,
            max_isolation_objects_per_snapshot: 100_000,
        }
    }
}

impl ValidationLimits {
    /// Problems with the limits themselves (for the server's configuration check).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("validation.max_nodes_per_snapshot", self.max_nodes_per_snapshot),
            ("validation.max_namespaces_per_snapshot", self.max_namespaces_per_snapshot),
            ("validation.max_labels_per_object", self.max_labels_per_object),
            ("validation.max_isolation_objects_per_snapshot", self.max_isolation_objects_per_snapshot),
        ] {
            if value == 0 {
                problems.push(format!("{field}: must be at least 1"));
            }
        }
        problems
    }
}

/// A value as quoted in a problem: debug-escaped, cut to [`MAX_QUOTED_CHARS`].
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(MAX_QUOTED_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}... ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

/// Problems found so far: the first few spelled out, the rest counted.
#[derive(Default)]
struct Problems {
    shown: Vec<String>,
    n_more: usize,
}

impl Problems {
    fn add(&mut self, problem: fmt::Arguments<'_>) {
        if self.shown.len() < MAX_REPORTED_PROBLEMS {
            self.shown.push(problem.to_string());
        } else {
            self.n_more += 1;
        }
    }

    fn into_vec(mut self) -> Vec<String> {
        if self.n_more > 0 {
            self.shown.push(format!("and {} more problems", self.n_more));
        }
        self.shown
    }
}

fn is_alphanumeric(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_lower_alphanumeric(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most `max_len` characters.
fn is_dns_label(s: &str, max_len: usize) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max_len
        && bytes.iter().all(|&b| is_lower_alphanumeric(b) || b == b'-')
        && is_lower_alphanumeric(bytes[0])
        && is_lower_alphanumeric(bytes[bytes.len() - 1])
}

/// A DNS-1123 subdomain: DNS-1123 labels joined by dots, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SUBDOMAIN_LEN && s.split('.').all(|part| is_dns_label(part, MAX_SUBDOMAIN_LEN))
}

/// A label value or the name part of a label key, without the length check:
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (empty is allowed here).
fn is_label_syntax(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.is_empty()
        || (bytes.iter().all(|&b| is_alphanumeric(b) || matches!(b, b'-' | b'_' | b'.'))
            && is_alphanumeric(bytes[0])
            && is_alphanumeric(bytes[bytes.len() - 1]))
}

/// Why a label key is invalid (Kubernetes' qualified name), or `None`.
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Some("the prefix before '/' is empty".to_string());
        }
        if prefix.len() > MAX_SUBDOMAIN_LEN {
            return Some(format!("the prefix is {} characters (at most {MAX_SUBDOMAIN_LEN})", prefix.len()));
        }
        if !is_dns_subdomain(prefix) {
            return Some("the prefix is not a DNS subdomain (lowercase letters, digits, '-' and '.')".to_string());
        }
    }
    if name.is_empty() {
        return Some("the name is empty".to_string());
    }
    if name.len() > MAX_LABEL_NAME_LEN {
        return Some(format!("the name is {} characters (at most {MAX_LABEL_NAME_LEN})", name.len()));
    }
    if !is_label_syntax(name) {
        return Some(
            "the name must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
                .to_string(),
        );
    }
    None
}

/// Why a label value is invalid, or `None` (an empty value is valid).
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.len() > MAX_LABEL_NAME_LEN {
        return Some(format!("{} characters (at most {MAX_LABEL_NAME_LEN})", value.len()));
    }
    if !is_label_syntax(value) {
        return Some(
            "must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit".to_string(),
        );
    }
    None
}

/// Why free-form text is invalid (too long, NUL or control characters), or `None`.
fn text_problem(text: &str, max_len: usize) -> Option<String> {
    if text.len() > max_len {
        return Some(format!("{} bytes (at most {max_len})", text.len()));
    }
    if text.contains('\0') {
        return Some("contains a NUL byte".to_string());
    }
    if text.chars().any(char::is_control) {
        return Some("contains a control character".to_string());
    }
    None
}

/// Checks a name (NUL bytes first: they make the clearest message).
fn name_problem(name: &str, what: &str, max_len: usize, valid: impl Fn(&str) -> bool) -> Option<String> {
    if name.is_empty() {
        Some("must not be empty".to_string())
    } else if name.contains('\0') {
        Some(format!("{} contains a NUL byte", Quoted(name)))
    } else if name.len() > max_len {
        Some(format!("{} is {} characters (at most {max_len})", Quoted(name), name.len()))
    } else if !valid(name) {
        Some(format!("{} is not a {what}", Quoted(name)))
    } else {
        None
    }
}

const SUBDOMAIN: &str =
    "DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)";
const DNS_LABEL: &str =
    "DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)";

/// A label-value-like name the planner groups by (datacenter, zone, security tier).
fn topology_problem(value: &str, required: bool) -> Option<String> {
    if value.is_empty() {
        return required.then(|| "must not be empty".to_string());
    }
    if value.contains('\0') {
        return Some(format!("{} contains a NUL byte", Quoted(value)));
    }
    label_value_problem(value).map(|why| format!("{}: {why}", Quoted(value)))
}

fn check_labels(
    problems: &mut Problems,
    object: &str,
    labels: &std::collections::BTreeMap<String, String>,
    limits: &ValidationLimits,
) {
    if labels.len() > limits.max_labels_per_object {
        problems.add(format_args!(
            "{object}: labels: {} labels (at most {} per object)",
            labels.len(),
            limits.max_labels_per_object
        ));
    }
    for (key, value) in labels {
        if key.contains('\0') {
            problems.add(format_args!("{object}: labels: key {} contains a NUL byte", Quoted(key)));
        } else if let Some(why) = label_key_problem(key) {
            problems.add(format_args!("{object}: labels: key {}: {why}", Quoted(key)));
        }
        if value.contains('\0') {
            problems.add(format_args!("{object}: labels[{}]: value contains a NUL byte", Quoted(key)));
        } else if let Some(why) = label_value_problem(value) {
            problems.add(format_args!("{object}: labels[{}]: value {}: {why}", Quoted(key), Quoted(value)));
        }
    }
}

fn check_quantities(problems: &mut Problems, object: &str, field: &str, resources: &Resources) {
    if resources.cpu_millis > MAX_CPU_MILLIS {
        problems.add(format_args!(
            "{object}: {field}.cpu_millis: {} is absurd (at most {MAX_CPU_MILLIS}, a million cores)",
            resources.cpu_millis
        ));
    }
    if resources.memory_bytes > MAX_MEMORY_BYTES {
        problems.add(format_args!(
            "{object}: {field}.memory_bytes: {} is absurd (at most {MAX_MEMORY_BYTES}, 1 PiB)",
            resources.memory_bytes
        ));
    }
    if resources.pods > MAX_PODS {
        problems.add(format_args!("{object}: {field}.pods: {} is absurd (at most {MAX_PODS})", resources.pods));
    }
}

/// Checks a snapshot with the default [`ValidationLimits`]; returns every
/// problem found (empty when the snapshot may be stored).
pub fn check_snapshot(snapshot: &ClusterSnapshot) -> Vec<String> {
    check_snapshot_with(snapshot, &ValidationLimits::default())
}

/// Checks a snapshot; returns the problems found (empty when it may be stored),
/// at most [`MAX_REPORTED_PROBLEMS`] spelled out and a last one counting the rest.
pub fn check_snapshot_with(snapshot: &ClusterSnapshot, limits: &ValidationLimits) -> Vec<String> {
    let mut problems = Problems::default();
    let object = format!("snapshot {}", Quoted(&snapshot.cluster_id));
    let object = object.as_str();

    if let Some(why) = name_problem(&snapshot.cluster_id, "valid cluster id", MAX_CLUSTER_ID_LEN, is_dns_subdomain) {
        problems.add(format_args!(
            "{object}: cluster_id: {why} (lowercase letters, digits, '-' and '.', at most {MAX_CLUSTER_ID_LEN} characters)"
        ));
    }
    if snapshot.generation == 0 {
        problems.add(format_args!("{object}: generation: must be at least 1"));
    }
    if !(0..=MAX_UNIX_TIME).contains(&snapshot.collected_at_unix) {
        problems.add(format_args!(
            "{object}: collected_at_unix: {} is not a plausible Unix time (0 to {MAX_UNIX_TIME})",
            snapshot.collected_at_unix
        ));
    }

    let facts = &snapshot.facts;
    for (field, value) in
        [("datacenter", &facts.datacenter), ("zone", &facts.zone), ("security_tier", &facts.security_tier)]
    {
        if let Some(why) = topology_problem(value, false) {
            problems.add(format_args!("{object}: facts.{field}: {why}"));
        }
    }
    for (field, value) in [("kubernetes_version", &facts.kubernetes_version), ("cni", &facts.cni)] {
        if let Some(why) = text_problem(value, MAX_TEXT_LEN) {
            problems.add(format_args!("{object}: facts.{field}: {why}"));
        }
    }
    if facts.csi_drivers.len() > MAX_CSI_DRIVERS {
        problems.add(format_args!(
            "{object}: facts.csi_drivers: {} drivers (at most {MAX_CSI_DRIVERS})",
            facts.csi_drivers.len()
        ));
    }
    for (idx, driver) in facts.csi_drivers.iter().enumerate() {
        if driver.is_empty() {
            problems.add(format_args!("{object}: facts.csi_drivers[{idx}]: must not be empty"));
        } else if let Some(why) = text_problem(driver, MAX_SUBDOMAIN_LEN) {
            problems.add(format_args!("{object}: facts.csi_drivers[{idx}]: {why}"));
        }
    }

    if snapshot.nodes.len() > limits.max_nodes_per_snapshot {
        problems.add(format_args!(
            "{object}: nodes: {} nodes (at most {} per snapshot)",
            snapshot.nodes.len(),
            limits.max_nodes_per_snapshot
        ));
    }
    let mut seen = BTreeSet::new();
    for (idx, node) in snapshot.nodes.iter().enumerate() {
        let object = format!("nodes[{idx}] {}", Quoted(&node.name));
        let object = object.as_str();
        if let Some(why) = name_problem(&node.name, SUBDOMAIN, MAX_SUBDOMAIN_LEN, is_dns_subdomain) {
            problems.add(format_args!("{object}: name: {why}"));
        } else if !seen.insert(node.name.as_str()) {
            problems.add(format_args!("{object}: name: duplicate node name"));
        }
        check_labels(&mut problems, object, &node.labels, limits);
        for (field, value) in [("datacenter", &node.datacenter), ("zone", &node.zone)] {
            if let Some(why) = topology_problem(value, true) {
                problems.add(format_args!("{object}: {field}: {why}"));
            }
        }
        for (field, value) in [
            ("kubelet_version", &node.kubelet_version),
            ("container_runtime", &node.container_runtime),
            ("architecture", &node.architecture),
        ] {
            if let Some(why) = text_problem(value, MAX_TEXT_LEN) {
                problems.add(format_args!("{object}: {field}: {why}"));
            }
        }
        check_quantities(&mut problems, object, "allocatable", &node.allocatable);
    }

    if snapshot.namespaces.len() > limits.max_namespaces_per_snapshot {
        problems.add(format_args!(
            "{object}: namespaces: {} namespaces (at most {} per snapshot)",
            snapshot.namespaces.len(),
            limits.max_namespaces_per_snapshot
        ));
    }
    let mut seen = BTreeSet::new();
    for (idx, namespace) in snapshot.namespaces.iter().enumerate() {
        let object = format!("namespaces[{idx}] {}", Quoted(&namespace.name));
        let object = object.as_str();
        let is_label = |name: &str| is_dns_label(name, MAX_DNS_LABEL_LEN);
        if let Some(why) = name_problem(&namespace.name, DNS_LABEL, MAX_DNS_LABEL_LEN, is_label) {
            problems.add(format_args!("{object}: name: {why}"));
        } else if !seen.insert(namespace.name.as_str()) {
            problems.add(format_args!("{object}: name: duplicate namespace name"));
        }
        check_labels(&mut problems, object, &namespace.labels, limits);
        if let Some(why) = topology_problem(&namespace.security_tier, true) {
            problems.add(format_args!("{object}: security_tier: {why}"));
        }
        check_quantities(&mut problems, object, "requests", &namespace.requests);
        check_pod_groups(&mut problems, object, namespace);
        for (idx, applied) in namespace.applied_prerelease.iter().enumerate() {
            for (field, text) in
                [("api_version", &applied.api_version), ("kind", &applied.kind), ("name", &applied.name)]
            {
                if let Some(why) = text_problem(text, MAX_TEXT_LEN).or_else(|| text.is_empty().then(|| "empty".into()))
                {
                    problems.add(format_args!("{object}: applied_prerelease[{idx}].{field}: {why}"));
                }
            }
        }
    }
    check_isolation(&mut problems, object, &snapshot.isolation, limits);
    problems.into_vec()
}

/// RBAC, NetworkPolicies and RuntimeClasses (issue 14): how many, and that
/// every name and the text the reports quote are present and bounded.
fn check_isolation(
    problems: &mut Problems,
    object: &str,
    isolation: &kplan_model::isolation::IsolationInventory,
    limits: &ValidationLimits,
) {
    let n_objects = isolation.n_objects();
    if n_objects > limits.max_isolation_objects_per_snapshot {
        problems.add(format_args!(
            "{object}: isolation: {n_objects} objects (at most {} per snapshot)",
            limits.max_isolation_objects_per_snapshot
        ));
        return;
    }
    let mut check = |field: String, value: &str, required: bool| {
        if value.is_empty() {
            if required {
                problems.add(format_args!("{object}: {field}: must not be empty"));
            }
        } else if let Some(why) = text_problem(value, MAX_SUBDOMAIN_LEN) {
            problems.add(format_args!("{object}: {field}: {why}"));
        }
    };
    for (list, roles) in [("cluster_roles", &isolation.cluster_roles), ("roles", &isolation.roles)] {
        for (idx, role) in roles.iter().enumerate() {
            check(format!("isolation.{list}[{idx}].name"), &role.name, true);
            check(format!("isolation.{list}[{idx}].namespace"), &role.namespace, list == "roles");
        }
    }
    for (list, bindings) in
        [("cluster_role_bindings", &isolation.cluster_role_bindings), ("role_bindings", &isolation.role_bindings)]
    {
        for (idx, binding) in bindings.iter().enumerate() {
            check(format!("isolation.{list}[{idx}].name"), &binding.name, true);
            check(format!("isolation.{list}[{idx}].namespace"), &binding.namespace, list == "role_bindings");
            check(format!("isolation.{list}[{idx}].role_ref.name"), &binding.role_ref.name, true);
            for (subject_idx, subject) in binding.subjects.iter().enumerate() {
                let field = format!("isolation.{list}[{idx}].subjects[{subject_idx}]");
                check(format!("{field}.kind"), &subject.kind, true);
                check(format!("{field}.name"), &subject.name, true);
                check(format!("{field}.namespace"), &subject.namespace, false);
            }
        }
    }
    for (idx, policy) in isolation.network_policies.iter().enumerate() {
        check(format!("isolation.network_policies[{idx}].name"), &policy.name, true);
        check(format!("isolation.network_policies[{idx}].namespace"), &policy.namespace, true);
    }
    for (idx, class) in isolation.runtime_classes.iter().enumerate() {
        check(format!("isolation.runtime_classes[{idx}].name"), &class.name, true);
        check(format!("isolation.runtime_classes[{idx}].handler"), &class.handler, true);
    }
    for (idx, policy) in isolation.admission_policies.iter().enumerate() {
        let field = format!("isolation.admission_policies[{idx}]");
        check(format!("{field}.group"), &policy.group, true);
        check(format!("{field}.kind"), &policy.kind, true);
        check(format!("{field}.name"), &policy.name, true);
        check(format!("{field}.policy"), &policy.policy, false);
        for (n, namespace) in policy.namespaces.iter().enumerate() {
            check(format!("{field}.namespaces[{n}]"), namespace, true);
        }
        for (n, action) in policy.actions.iter().enumerate() {
            check(format!("{field}.actions[{n}]"), action, true);
        }
    }
}

/// Pod groups (issue 17): a workload name, at least one replica, one pod each,
/// and node affinity operators the scheduler knows.
fn check_pod_groups(problems: &mut Problems, object: &str, namespace: &kplan_model::Namespace) {
    const OPERATORS: [&str; 6] = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];
    for (idx, group) in namespace.pod_groups.iter().enumerate() {
        let object = format!("{object}: pod_groups[{idx}] {}", Quoted(&group.workload()));
        if group.owner_kind.trim().is_empty() || group.owner_name.trim().is_empty() {
            problems.add(format_args!("{object}: owner_kind and owner_name must not be empty"));
        }
        if group.replicas == 0 {
            problems.add(format_args!("{object}: replicas: must be at least 1"));
        }
        if group.requests.pods != 1 {
            problems.add(format_args!(
                "{object}: requests.pods: must be 1 (the requests of one pod), got {}",
                group.requests.pods
            ));
        }
        let requirements = group.node_affinity.iter().flat_map(|a| a.terms.iter().flatten());
        for requirement in requirements.filter(|r| !OPERATORS.contains(&r.operator.as_str())) {
            problems.add(format_args!(
                "{object}: node_affinity: operator {} of key {} is not one of {}",
                Quoted(&requirement.operator),
                Quoted(&requirement.key),
                OPERATORS.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplan_model::{ClusterFacts, Namespace, Node, SlaTier};

    #[test]
    fn bad_pod_groups_are_named() {
        let mut snapshot = ClusterSnapshot {
            cluster_id: "c1".into(),
            generation: 1,
            namespaces: vec![namespace("shop")],
            ..ClusterSnapshot::default()
        };
        snapshot.namespaces[0].pod_groups = vec![kplan_model::scheduling::PodGroup {
            owner_kind: "Deployment".into(),
            owner_name: "web".into(),
            replicas: 0,
            requests: Resources::new(100, 1, 1),
            node_affinity: Some(kplan_model::scheduling::NodeAffinity {
                terms: vec![vec![kplan_model::scheduling::NodeSelectorRequirement {
                    key: "zone".into(),
                    operator: "Near".into(),
                    values: vec![],
                }]],
            }),
            ..Default::default()
        }];
        let problems = check_snapshot(&snapshot).join("\n");
        assert!(problems.contains("pod_groups[0] \"Deployment/web\": replicas: must be at least 1"), "{problems}");
        assert!(problems.contains("operator \"Near\" of key \"zone\""), "{problems}");
    }

    fn node(name: &str) -> Node {
        Node {
            labels: [("kubernetes.io/hostname".to_string(), name.to_string())].into(),
            ..kplan_model::test_support::worker(name)
        }
    }

    fn namespace(name: &str) -> Namespace {
        Namespace {
            name: name.into(),
            labels: [("kplan.io/sla-tier".to_string(), "gold".to_string())].into(),
            security_tier: "prod".into(),
            sla_tier: SlaTier::Gold,
            requests: Resources::new(1500, 4 << 30, 12),
            pod_groups: Vec::new(),
            applied_prerelease: Vec::new(),
            disruption_budgets: Vec::new(),
        }
    }

    fn good() -> ClusterSnapshot {
        ClusterSnapshot {
            cluster_id: "fra-prod-payments.bank".into(),
            generation: 7,
            collected_at_unix: 1_700_000_000,
            facts: ClusterFacts {
                datacenter: "fra".into(),
                zone: "fra-a".into(),
                security_tier: "prod".into(),
                kubernetes_version: "v1.29.0".into(),
                cni: "calico".into(),
                csi_drivers: vec!["ebs-csi-node".into()],
            },
            nodes: vec![node("node-1"), node("node-2.fra.example")],
            namespaces: vec![namespace("payments"), namespace("kube-system")],
            isolation: Default::default(),
        }
    }

    fn problems_of(edit: impl FnOnce(&mut ClusterSnapshot)) -> Vec<String> {
        let mut snapshot = good();
        edit(&mut snapshot);
        check_snapshot(&snapshot)
    }

    /// Exactly one problem, containing every fragment.
    fn assert_one(edit: impl FnOnce(&mut ClusterSnapshot), fragments: &[&str]) {
        let problems = problems_of(edit);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        for fragment in fragments {
            assert!(problems[0].contains(fragment), "{:?} lacks {fragment:?}", problems[0]);
        }
    }

    #[test]
    fn isolation_objects_are_counted_and_their_names_checked() {
        use kplan_model::isolation::{RoleBinding, RoleRef, RuntimeClass, Subject};
        let binding = RoleBinding {
            namespace: String::new(),
            name: "team-edit".into(),
            role_ref: RoleRef { kind: "ClusterRole".into(), name: "edit".into() },
            subjects: vec![Subject { kind: "Group".into(), name: "team".into(), namespace: String::new() }],
        };
        let mut snapshot = good();
        snapshot.isolation.cluster_role_bindings = vec![binding.clone()];
        assert_eq!(check_snapshot(&snapshot), Vec::<String>::new());
        assert_one(
            |s| {
                s.isolation.cluster_role_bindings = vec![binding.clone()];
                s.isolation.cluster_role_bindings[0].subjects[0].name = "a\u{7}b".into();
            },
            &["isolation.cluster_role_bindings[0].subjects[0].name: contains a control character"],
        );
        assert_one(
            |s| s.isolation.role_bindings = vec![binding.clone()],
            &["isolation.role_bindings[0].namespace: must not be empty"],
        );
        assert_one(
            |s| s.isolation.runtime_classes = vec![RuntimeClass { name: "gvisor".into(), handler: String::new() }],
            &["isolation.runtime_classes[0].handler: must not be empty"],
        );
        let limits = ValidationLimits { max_isolation_objects_per_snapshot: 1, ..ValidationLimits::default() };
        snapshot.isolation.cluster_role_bindings.push(binding);
        assert_eq!(
            check_snapshot_with(&snapshot, &limits),
            ["snapshot \"fra-prod-payments.bank\": isolation: 2 objects (at most 1 per snapshot)"]
        );
    }

    #[test]
    fn a_good_snapshot_passes() {
        assert_eq!(check_snapshot(&good()), Vec::<String>::new());
    }

    #[test]
    fn names_every_problem() {
        let snapshot = ClusterSnapshot {
            cluster_id: "Bad_Id".into(),
            generation: 0,
            nodes: vec![Node { zone: String::new(), ..node("n1") }, node("n1")],
            namespaces: vec![namespace("payments"), namespace("payments")],
            ..good()
        };
        let problems = check_snapshot(&snapshot);
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].starts_with("snapshot \"Bad_Id\": cluster_id"), "{}", problems[0]);
        assert!(problems.iter().any(|p| p == "snapshot \"Bad_Id\": generation: must be at least 1"));
        assert!(problems.iter().any(|p| p == "nodes[0] \"n1\": zone: must not be empty"));
        assert!(problems.iter().any(|p| p == "nodes[1] \"n1\": name: duplicate node name"));
        assert!(problems.iter().any(|p| p == "namespaces[1] \"payments\": name: duplicate namespace name"));
    }

    #[test]
    fn names_are_dns_names() {
        assert!(is_dns_subdomain("fra-prod-payments.bank"));
        for bad in ["-fra", "", "fra-", "a..b", "a.-b", "Fra", "fra_1", "fra/1"] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
        }
        assert!(is_dns_subdomain(&"a".repeat(253)));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert_one(|s| s.nodes[0].name = "Node_1".into(), &["nodes[0] \"Node_1\": name:", "DNS-1123 subdomain"]);
        assert_one(|s| s.nodes[0].name = "n".repeat(254), &["nodes[0]", "name:", "254 characters (at most 253)"]);
        assert!(problems_of(|s| s.nodes[0].name = "n".repeat(253)).is_empty());
        assert_one(|s| s.namespaces[0].name = "a.b".into(), &["namespaces[0] \"a.b\": name:", "DNS-1123 label"]);
        assert_one(|s| s.namespaces[0].name = "n".repeat(64), &["namespaces[0]", "64 characters (at most 63)"]);
        assert!(problems_of(|s| s.namespaces[0].name = "n".repeat(63)).is_empty());
        assert_one(|s| s.namespaces[1].name = String::new(), &["namespaces[1] \"\": name: must not be empty"]);
        assert_one(|s| s.cluster_id = "c".repeat(254), &["cluster_id:", "254 characters"]);
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes() {
        for good_key in
            ["app", "kubernetes.io/hostname", "a.b-c/X_y.z", &"k".repeat(63), &format!("{}/k", "p".repeat(253))]
        {
            assert_eq!(label_key_problem(good_key), None, "{good_key:?}");
        }
        for bad_key in ["", "/app", "a/b/c", "Example.com/app", "app-", "-app", "has space", "ünï", &"k".repeat(64)] {
            assert!(label_key_problem(bad_key).is_some(), "{bad_key:?}");
        }
        assert!(label_key_problem(&format!("{}/k", "p".repeat(254))).is_some());
        for good_value in ["", "gold", "v1.2.3_x-y", &"v".repeat(63)] {
            assert_eq!(label_value_problem(good_value), None, "{good_value:?}");
        }
        for bad_value in ["-gold", "gold.", "a b", "a/b", &"v".repeat(64)] {
            assert!(label_value_problem(bad_value).is_some(), "{bad_value:?}");
        }
        assert_one(
            |s| {
                s.nodes[1].labels.insert("Bad Key".into(), "x".into());
            },
            &["nodes[1] \"node-2.fra.example\": labels: key \"Bad Key\": the name must be"],
        );
        assert_one(
            |s| {
                s.namespaces[0].labels.insert("team".into(), "v".repeat(64));
            },
            &["namespaces[0] \"payments\": labels[\"team\"]: value", "64 characters (at most 63)"],
        );
    }

    #[test]
    fn nul_bytes_are_refused_anywhere() {
        assert_one(|s| s.cluster_id = "fra\0x".into(), &["cluster_id:", "NUL"]);
        assert_one(|s| s.nodes[0].name = "n\0".into(), &["nodes[0]", "name:", "NUL"]);
        assert_one(
            |s| s.nodes[0].kubelet_version = "v1\0".into(),
            &["nodes[0] \"node-1\": kubelet_version: contains a NUL"],
        );
        assert_one(|s| s.nodes[0].zone = "a\0".into(), &["nodes[0] \"node-1\": zone:", "NUL"]);
        assert_one(
            |s| {
                s.nodes[0].labels.insert("a\0".into(), "b".into());
            },
            &["nodes[0] \"node-1\": labels: key", "NUL"],
        );
        assert_one(
            |s| {
                s.namespaces[0].labels.insert("a".into(), "\0".into());
            },
            &["namespaces[0] \"payments\": labels[\"a\"]: value contains a NUL"],
        );
        assert_one(|s| s.facts.cni = "\0".into(), &["facts.cni: contains a NUL"]);
        assert_one(|s| s.facts.csi_drivers.push("x\0".into()), &["facts.csi_drivers[1]: contains a NUL"]);
        assert_one(
            |s| s.namespaces[0].security_tier = "p\0".into(),
            &["namespaces[0] \"payments\": security_tier:", "NUL"],
        );
    }

    #[test]
    fn absurd_quantities_are_refused_at_the_limit_plus_one() {
        assert!(
            problems_of(|s| s.nodes[0].allocatable = Resources::new(MAX_CPU_MILLIS, MAX_MEMORY_BYTES, MAX_PODS))
                .is_empty()
        );
        assert_one(
            |s| s.nodes[0].allocatable.cpu_millis = MAX_CPU_MILLIS + 1,
            &["nodes[0] \"node-1\": allocatable.cpu_millis"],
        );
        assert_one(|s| s.nodes[0].allocatable.memory_bytes = u64::MAX, &["allocatable.memory_bytes", "absurd"]);
        assert_one(|s| s.namespaces[1].requests.pods = MAX_PODS + 1, &["namespaces[1] \"kube-system\": requests.pods"]);
    }

    #[test]
    fn counts_are_capped_by_the_limits() {
        let limits = ValidationLimits {
            max_nodes_per_snapshot: 2,
            max_namespaces_per_snapshot: 2,
            max_labels_per_object: 1,
            ..ValidationLimits::default()
        };
        assert!(check_snapshot_with(&good(), &limits).is_empty());
        let mut snapshot = good();
        snapshot.nodes.push(node("node-3"));
        snapshot.namespaces.push(namespace("third"));
        snapshot.nodes[0].labels.insert("second".into(), "x".into());
        let problems = check_snapshot_with(&snapshot, &limits);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems.contains(&"snapshot \"fra-prod-payments.bank\": nodes: 3 nodes (at most 2 per snapshot)".into())
        );
        assert!(
            problems.iter().any(|p| p.starts_with("snapshot \"fra-prod-payments.bank\": namespaces: 3 namespaces"))
        );
        assert!(problems.contains(&"nodes[0] \"node-1\": labels: 2 labels (at most 1 per object)".into()));
        assert_eq!(ValidationLimits::default().problems(), Vec::<String>::new());
        assert_eq!(ValidationLimits { max_labels_per_object: 0, ..Default::default() }.problems().len(), 1);
    }

    #[test]
    fn tiers_times_and_text_are_checked() {
        assert_one(
            |s| s.namespaces[0].security_tier = String::new(),
            &["namespaces[0] \"payments\": security_tier: must not be empty"],
        );
        assert_one(|s| s.nodes[0].datacenter = "fra dc".into(), &["nodes[0] \"node-1\": datacenter: \"fra dc\""]);
        assert!(
            problems_of(|s| s.facts.security_tier = String::new()).is_empty(),
            "the cluster default tier is optional"
        );
        assert_one(|s| s.facts.security_tier = "-prod".into(), &["facts.security_tier"]);
        assert_one(|s| s.collected_at_unix = -1, &["collected_at_unix: -1"]);
        assert_one(|s| s.collected_at_unix = MAX_UNIX_TIME + 1, &["collected_at_unix"]);
        assert_one(
            |s| s.nodes[0].architecture = "a".repeat(MAX_TEXT_LEN + 1),
            &["architecture: 257 bytes (at most 256)"],
        );
        assert_one(|s| s.nodes[0].container_runtime = "x\ny".into(), &["container_runtime: contains a control"]);
        assert_one(
            |s| s.facts.csi_drivers = vec!["d".into(); MAX_CSI_DRIVERS + 1],
            &["facts.csi_drivers: 257 drivers"],
        );
    }

    #[test]
    fn refusals_stay_short_whatever_the_snapshot_holds() {
        let mut snapshot = good();
        snapshot.nodes = (0..5_000).map(|i| node(&format!("Bad_{i}_{}", "x".repeat(10_000)))).collect();
        let problems = check_snapshot(&snapshot);
        assert_eq!(problems.len(), MAX_REPORTED_PROBLEMS + 1);
        assert_eq!(problems.last().map(String::as_str), Some("and 9990 more problems"));
        assert!(problems.iter().all(|p| p.len() < 400), "{problems:#?}");
    }
}
