//! Tenant isolation after a merge (issue 14): what a subject, a pod or a
//! namespace can reach in a target cluster that it could not reach in its
//! own source cluster, and the Kubernetes objects that close it
//! ([`manifests`]).
//!
//! Pure and deterministic: a plan and the snapshots it was made from in, an
//! [`IsolationReport`] out, sorted by target, kind and name.
//!
//! What is compared, per target cluster that receives namespaces from two or
//! more source clusters (a target fed by one source widens nothing):
//!
//! - **RBAC**: every ClusterRoleBinding of a source cluster gave its subjects
//!   its ClusterRole over every namespace of that cluster; in the target it
//!   would give it over every namespace of the target. The namespaces newly
//!   reached are the target's namespaces from *other* source clusters, less
//!   those where the same subject already had the same ClusterRole (bound
//!   cluster-wide in that source, or by a RoleBinding in that namespace).
//!   Built-in subjects and roles are left as Kubernetes defines them: a
//!   binding, role or User/Group subject named `system:*`, and service
//!   accounts of platform namespaces (`kube-system`, ...: the platform merges
//!   into the target's own), are not findings.
//! - **Network**: pods of different source clusters could not talk before
//!   (separate pod networks behind firewall zones); after the merge a
//!   namespace is reachable from another source's namespaces unless its
//!   NetworkPolicies deny it ([`admits`]). One finding per (target, receiving
//!   source, sending source), listing the namespaces that would be open, not
//!   one per pair of namespaces. A target whose CNI does not enforce
//!   NetworkPolicy (flannel) gets a `cni-migration` precondition
//!   ([`crate::preconditions::block_preconditions`]).
//! - **Pod Security**: each moved namespace keeps its Pod Security level
//!   (`pod-security.kubernetes.io/enforce`; `privileged`, Kubernetes' default,
//!   without the label; a cluster-wide admission configuration default is not
//!   in the inventory): [`manifests`] writes the label explicitly. Its pods
//!   that break that level (the rules the collector recorded per pod group,
//!   `PodGroup::pod_security`) are a `pod-security` finding per (namespace,
//!   workload), naming the rules: Pod Security admission refuses them when
//!   they are recreated in the target. High when they break baseline rules,
//!   medium when only restricted ones. Always open (nothing kplan emits
//!   changes a pod spec), but not a widening: it is a refusal, not wider
//!   reach, so [`IsolationReport::n_open_widenings`] (what `propose
//!   --fail-on-widening` counts) leaves it out. The policy holds no minimum
//!   level per tier: the level compared is the namespace's own.
//! - **Admission policies**: a source's ValidatingAdmissionPolicies, their
//!   bindings and its Gatekeeper constraints are cluster objects that do not
//!   follow its namespaces. Each one whose scope (namespace names or selector,
//!   read on the source's labels) takes in a namespace moving into the target
//!   is an `admission-policy` finding: it must be installed in the target,
//!   else the tenants it constrained escape it (a widening, open). When the
//!   same kind and name exist in every source of the target, it is the
//!   platform's (installed with it): the finding is closed.
//! - **Runtime**: pods with a `runtimeClassName` need that RuntimeClass (and
//!   nodes offering its handler) in the target: a finding when no source of the
//!   target defines it, or two define it with different handlers, or, where
//!   some node the target keeps reports its runtime handlers
//!   (`status.runtimeHandlers`, Kubernetes 1.30+), no such node offers the
//!   class's handler. Where no node reports them (older clusters) handlers
//!   are not checked.
//!
//! A finding is *open* when the emitted objects do not close it: an existing
//! NetworkPolicy that still admits other sources' namespaces once the emitted
//! ones are applied, a RuntimeClass conflict or missing handler, a target
//! without NetworkPolicy enforcement, a pod that breaks its namespace's level,
//! an admission policy not already in every source.

pub mod gatekeeper;
#[cfg(test)]
mod gatekeeper_tests;
pub mod manifests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::isolation::{AdmissionPolicy, NetworkPolicy, PodSecurityLevel, RoleBinding, Subject};
use kplan_model::{ClusterSnapshot, Node, Plan, Policy};
use serde::{Deserialize, Serialize};

use crate::namespaces::is_platform_namespace;

/// The namespace label that names a namespace's source cluster in a target.
pub const SOURCE_CLUSTER_LABEL: &str = "kplan.io/source-cluster";
/// The label the API server sets on every namespace (Kubernetes 1.21+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// CNIs known not to enforce NetworkPolicy.
const CNIS_WITHOUT_NETWORK_POLICY: [&str; 1] = ["flannel"];

/// Whether a (normalised) CNI enforces NetworkPolicy. An undetected CNI is
/// given the benefit of the doubt (the CNI precondition already asks to check it).
pub fn enforces_network_policy(cni: &str) -> bool {
    !CNIS_WITHOUT_NETWORK_POLICY.contains(&crate::flows::normalize_cni(cni).as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A ClusterRoleBinding would reach other sources' namespaces.
    RbacWidening,
    /// Namespaces of one source would be reachable from another source's pods.
    NetworkWidening,
    /// Pods need a RuntimeClass the target would not define (or defines
    /// twice), or whose handler no node of the target offers.
    RuntimeClass,
    /// Pods break the Pod Security level their namespace keeps in the target.
    PodSecurity,
    /// A source's admission policy (ValidatingAdmissionPolicy, binding,
    /// Gatekeeper constraint) does not follow its namespaces into the target.
    AdmissionPolicy,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::RbacWidening => "rbac-widening",
            FindingKind::NetworkWidening => "network-widening",
            FindingKind::RuntimeClass => "runtime-class",
            FindingKind::PodSecurity => "pod-security",
            FindingKind::AdmissionPolicy => "admission-policy",
        }
    }

    /// Whether an open finding of this kind leaves something wider than in
    /// its source: every kind but `pod-security` (pods refused, see the module
    /// documentation).
    pub fn widens(self) -> bool {
        self != FindingKind::PodSecurity
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One widening: who or what, in which target, and what closes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub target_cluster: String,
    /// The source cluster the binding, namespaces or pods come from.
    pub source_cluster: String,
    /// `ClusterRoleBinding team-edit` (RBAC), the other source (network), `RuntimeClass gvisor`.
    pub object: String,
    /// `Group team-payments`, `ServiceAccount ci/deployer`; empty for network and runtime findings.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// `ClusterRole edit`; `Pod Security restricted` (the level kept) for a
    /// pod-security finding; empty for the others.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// A pod-security finding's broken rules (pod-security-admission check
    /// ids, sorted); empty for the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Namespaces (their names in the target) newly reached (RBAC), newly
    /// reachable (network) or running the pods (runtime).
    pub namespaces: Vec<String>,
    pub detail: String,
    /// The emitted objects that close it (`RoleBinding payments/kplan-team-edit`).
    pub closed_by: Vec<String>,
    /// True when the emitted objects do not close it (see the module documentation).
    pub open: bool,
}

/// A namespace that moves into a target, with what it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedNamespace {
    pub source_cluster: String,
    pub namespace: String,
    /// Its name in the target (differs when renamed for a collision).
    pub new_name: String,
    /// The Pod Security level it enforced (and keeps).
    pub pod_security: PodSecurityLevel,
}

/// The isolation of one target cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetIsolation {
    pub datacenter: String,
    pub security_tier: String,
    pub target_cluster: String,
    pub cni: String,
    pub source_clusters: Vec<String>,
    /// False when the target's CNI ignores NetworkPolicies (flannel): the
    /// network findings stay open until the `cni-migration` precondition is done.
    pub network_policy_enforced: bool,
    pub namespaces: Vec<MovedNamespace>,
    pub findings: Vec<Finding>,
}

impl TargetIsolation {
    /// Whether the target is shared by several sources on a CNI that ignores
    /// NetworkPolicy (it then has a `cni-migration` precondition).
    pub fn needs_network_policy_cni(&self) -> bool {
        !self.network_policy_enforced && self.source_clusters.len() >= 2
    }
}

/// The isolation of every target of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationReport {
    pub plan_id: String,
    pub targets: Vec<TargetIsolation>,
    /// Source clusters of the plan whose snapshot holds no RBAC or
    /// NetworkPolicy at all (older snapshots, exports without those kinds):
    /// their widenings cannot be known.
    pub clusters_without_isolation_inventory: Vec<String>,
}

impl IsolationReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.targets.iter().flat_map(|t| &t.findings)
    }

    /// Findings the emitted objects do not close.
    pub fn n_open(&self) -> usize {
        self.findings().filter(|f| f.open).count()
    }

    /// Open findings that widen ([`FindingKind::widens`]): what `propose
    /// --fail-on-widening` fails on.
    pub fn n_open_widenings(&self) -> usize {
        self.findings().filter(|f| f.open && f.kind.widens()).count()
    }
}

/// Reads the plan and its snapshots into per-target facts shared by the
/// analysis and [`manifests`].
pub(crate) struct TargetView<'a> {
    pub datacenter: &'a str,
    pub security_tier: &'a str,
    pub name: &'a str,
    pub cni: &'a str,
    /// Source cluster id → its snapshot, for the sources that send namespaces here.
    pub sources: BTreeMap<&'a str, &'a ClusterSnapshot>,
    /// (source, namespace) → the name in the target.
    pub new_names: BTreeMap<(&'a str, &'a str), &'a str>,
    /// The nodes the target keeps (and its control plane's), as inventoried.
    pub nodes: Vec<&'a Node>,
}

impl<'a> TargetView<'a> {
    /// The namespaces of `source` in this target (their new names), sorted.
    pub fn namespaces_of(&self, source: &str) -> Vec<&'a str> {
        let mut names: Vec<&str> = self.new_names.iter().filter(|((s, _), _)| *s == source).map(|(_, n)| *n).collect();
        names.sort_unstable();
        names
    }

    /// The labels a moved namespace has in the target: its own, its source
    /// cluster's label and the name label the API server sets.
    pub fn labels_after(&self, source: &str, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .sources
            .get(source)
            .and_then(|c| c.namespaces.iter().find(|n| n.name == namespace))
            .map(|n| n.labels.clone())
            .unwrap_or_default();
        labels.insert(SOURCE_CLUSTER_LABEL.to_string(), source.to_string());
        if let Some(new_name) = self.new_names.get(&(source, namespace)) {
            labels.insert(NAMESPACE_NAME_LABEL.to_string(), new_name.to_string());
        }
        labels
    }
}

pub(crate) fn target_views<'a>(plan: &'a Plan, inventory: &'a [ClusterSnapshot]) -> Vec<TargetView<'a>> {
    let by_id: BTreeMap<&str, &ClusterSnapshot> = inventory.iter().map(|c| (c.cluster_id.as_str(), c)).collect();
    let mut views = Vec::new();
    for block in &plan.blocks {
        for target in &block.target_clusters {
            let mut view = TargetView {
                datacenter: &block.datacenter,
                security_tier: &block.security_tier,
                name: &target.name,
                cni: &target.cni,
                sources: BTreeMap::new(),
                new_names: BTreeMap::new(),
                nodes: Vec::new(),
            };
            let kept = target.nodes_kept.iter().map(|n| (&n.cluster_id, &n.node));
            let control_plane = target.control_plane.iter().map(|n| (&n.cluster_id, &n.node));
            for (cluster, node) in kept.chain(control_plane) {
                let found = by_id.get(cluster.as_str()).and_then(|c| c.nodes.iter().find(|n| &n.name == node));
                view.nodes.extend(found);
            }
            for moved in block.waves.iter().flat_map(|w| &w.namespaces).filter(|m| m.to_cluster == target.name) {
                let Some(cluster) = by_id.get(moved.from_cluster.as_str()) else { continue };
                view.sources.insert(&moved.from_cluster, cluster);
                let new_name = if moved.new_name.is_empty() { &moved.namespace } else { &moved.new_name };
                view.new_names.insert((&moved.from_cluster, &moved.namespace), new_name);
            }
            views.push(view);
        }
    }
    views.sort_by(|a, b| a.name.cmp(b.name));
    views
}

/// Every widening of `plan` over the snapshots it was made from (clusters
/// missing from `inventory` are left out).
pub fn analyse(plan: &Plan, inventory: &[ClusterSnapshot]) -> IsolationReport {
    let policy = plan.policy.clone().unwrap_or_default();
    let mut report = IsolationReport { plan_id: plan.id.clone(), ..IsolationReport::default() };
    let mut without: BTreeSet<String> = BTreeSet::new();
    for view in target_views(plan, inventory) {
        for (id, cluster) in &view.sources {
            if cluster.isolation.cluster_role_bindings.is_empty()
                && cluster.isolation.role_bindings.is_empty()
                && cluster.isolation.network_policies.is_empty()
            {
                without.insert(id.to_string());
            }
        }
        let mut namespaces: Vec<MovedNamespace> = view
            .new_names
            .iter()
            .map(|((source, namespace), new_name)| MovedNamespace {
                source_cluster: source.to_string(),
                namespace: namespace.to_string(),
                new_name: new_name.to_string(),
                pod_security: view
                    .sources
                    .get(source)
                    .and_then(|c| c.namespaces.iter().find(|n| n.name == *namespace))
                    .map(|n| PodSecurityLevel::of_labels(&n.labels))
                    .unwrap_or_default(),
            })
            .collect();
        namespaces.sort_by(|a, b| a.new_name.cmp(&b.new_name));
        let enforced = enforces_network_policy(view.cni);
        let mut findings = Vec::new();
        if view.sources.len() >= 2 {
            findings.extend(rbac_findings(&view, &policy));
            findings.extend(network_findings(&view, enforced));
        }
        findings.extend(runtime_findings(&view));
        findings.extend(pod_security_findings(&view));
        findings.extend(admission_findings(&view));
        findings.sort_by(|a, b| {
            (a.kind, &a.source_cluster, &a.object, &a.subject).cmp(&(b.kind, &b.source_cluster, &b.object, &b.subject))
        });
        report.targets.push(TargetIsolation {
            datacenter: view.datacenter.to_string(),
            security_tier: view.security_tier.to_string(),
            target_cluster: view.name.to_string(),
            cni: view.cni.to_string(),
            source_clusters: view.sources.keys().map(|s| s.to_string()).collect(),
            network_policy_enforced: enforced,
            namespaces,
            findings,
        });
    }
    report.clusters_without_isolation_inventory = without.into_iter().collect();
    report
}

// ------------------------------------------------------------------ RBAC

/// Whether a name is Kubernetes' own (`system:masters`, `system:node`, ...).
fn is_system(name: &str) -> bool {
    name.starts_with("system:")
}

/// Whether a subject is a tenant's: not a `system:` user or group, not a
/// service account of a platform namespace.
fn is_tenant_subject(subject: &Subject, policy: &Policy) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => !is_platform_namespace(&subject.namespace, policy),
        _ => !is_system(&subject.name),
    }
}

/// A ClusterRoleBinding that widens in a merged target: a tenant's binding to
/// a non-system ClusterRole.
fn is_tenant_binding(binding: &RoleBinding) -> bool {
    binding.role_ref.kind == "ClusterRole" && !is_system(&binding.role_ref.name) && !is_system(&binding.name)
}

/// `Group team-payments`, `ServiceAccount ci/deployer`.
pub fn describe_subject(subject: &Subject) -> String {
    if subject.kind == "ServiceAccount" {
        format!("ServiceAccount {}/{}", subject.namespace, subject.name)
    } else {
        format!("{} {}", subject.kind, subject.name)
    }
}

/// The name of the RoleBinding that replaces a ClusterRoleBinding in each namespace.
pub fn replacement_name(binding: &str) -> String {
    format!("kplan-{binding}")
}

/// High for roles that can read secrets or do anything; medium otherwise.
fn role_severity(cluster: &ClusterSnapshot, role: &str) -> Severity {
    if matches!(role, "cluster-admin" | "admin" | "edit") {
        return Severity::High;
    }
    let Some(role) = cluster.isolation.cluster_role(role) else { return Severity::Medium };
    let broad = role
        .rules
        .iter()
        .any(|rule| rule.verbs.iter().any(|v| v == "*") || rule.resources.iter().any(|r| r == "*" || r == "secrets"));
    if broad { Severity::High } else { Severity::Medium }
}

/// Whether `subject` already held ClusterRole `role` over `namespace` of `cluster`.
fn held_before(cluster: &ClusterSnapshot, namespace: &str, subject: &Subject, role: &str) -> bool {
    let grants = |binding: &RoleBinding| {
        binding.role_ref.kind == "ClusterRole" && binding.role_ref.name == role && binding.subjects.contains(subject)
    };
    cluster.isolation.cluster_role_bindings.iter().any(grants)
        || cluster.isolation.role_bindings.iter().filter(|b| b.namespace == namespace).any(grants)
}

fn rbac_findings(view: &TargetView<'_>, policy: &Policy) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (source, cluster) in &view.sources {
        for binding in cluster.isolation.cluster_role_bindings.iter().filter(|b| is_tenant_binding(b)) {
            let own = view.namespaces_of(source);
            let closed_by: Vec<String> =
                own.iter().map(|n| format!("RoleBinding {n}/{}", replacement_name(&binding.name))).collect();
            for subject in binding.subjects.iter().filter(|s| is_tenant_subject(s, policy)) {
                let mut newly: Vec<&str> = view
                    .new_names
                    .iter()
                    .filter(|((other, _), _)| other != source)
                    .filter(|((other, namespace), _)| {
                        !held_before(view.sources[other], namespace, subject, &binding.role_ref.name)
                    })
                    .map(|(_, new_name)| *new_name)
                    .collect();
                if newly.is_empty() {
                    continue;
                }
                newly.sort_unstable();
                findings.push(Finding {
                    kind: FindingKind::RbacWidening,
                    severity: role_severity(cluster, &binding.role_ref.name),
                    target_cluster: view.name.to_string(),
                    source_cluster: source.to_string(),
                    object: format!("ClusterRoleBinding {}", binding.name),
                    subject: describe_subject(subject),
                    role: format!("ClusterRole {}", binding.role_ref.name),
                    rules: Vec::new(),
                    detail: format!(
                        "{} holds ClusterRole {} over every namespace of {source} through ClusterRoleBinding {}; \
                         recreated in {}, it would reach {} namespace{} of other source clusters: \
                         do not recreate the ClusterRoleBinding, apply one RoleBinding per namespace of {source} instead",
                        describe_subject(subject),
                        binding.role_ref.name,
                        binding.name,
                        view.name,
                        newly.len(),
                        if newly.len() == 1 { "" } else { "s" },
                    ),
                    namespaces: newly.into_iter().map(str::to_string).collect(),
                    closed_by: closed_by.clone(),
                    open: false,
                });
            }
        }
    }
    findings
}

// ------------------------------------------------------------------ network

/// How a peer of an ingress rule can match a pod of another namespace.
fn peer_admits(peer: &kplan_model::isolation::NetworkPolicyPeer, from_labels: &BTreeMap<String, String>) -> bool {
    match (&peer.namespace_selector, &peer.ip_block) {
        // An ipBlock may cover pod addresses: counted as admitting.
        (_, Some(_)) => true,
        (Some(namespaces), None) => namespaces.matches(from_labels),
        // A podSelector alone selects pods of the policy's own namespace.
        (None, None) => false,
    }
}

/// Whether the NetworkPolicies of one namespace (`policies`, all in it) let
/// some pod of a namespace labelled `from_labels` (another namespace) reach
/// some of its pods. Conservative where the inventory does not say (pod
/// labels are unknown): pods not selected by a policy with an empty pod
/// selector are taken to exist, and a rule's pod selector to match some pod.
pub fn admits(policies: &[&NetworkPolicy], from_labels: &BTreeMap<String, String>) -> bool {
    let ingress: Vec<&&NetworkPolicy> = policies.iter().filter(|p| p.restricts_ingress()).collect();
    let isolates_every_pod = ingress.iter().any(|p| p.pod_selector.is_empty());
    if !isolates_every_pod {
        return true;
    }
    ingress
        .iter()
        .flat_map(|p| &p.ingress)
        .any(|rule| rule.peers.is_empty() || rule.peers.iter().any(|peer| peer_admits(peer, from_labels)))
}

/// The policies a moved namespace carries into the target (its own, from its source).
fn existing_policies<'a>(cluster: &'a ClusterSnapshot, namespace: &str) -> Vec<&'a NetworkPolicy> {
    cluster.isolation.network_policies.iter().filter(|p| p.namespace == namespace).collect()
}

fn network_findings(view: &TargetView<'_>, enforced: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    let emitted: BTreeMap<(&str, &str), Vec<NetworkPolicy>> = view
        .new_names
        .keys()
        .map(|&(source, namespace)| ((source, namespace), manifests::isolation_policies(view, source, namespace)))
        .collect();
    for (&receiver, cluster) in &view.sources {
        for &sender in view.sources.keys().filter(|&&s| s != receiver) {
            let senders: Vec<BTreeMap<String, String>> =
                view.new_names.keys().filter(|(s, _)| *s == sender).map(|(s, n)| view.labels_after(s, n)).collect();
            let mut open_now: Vec<&str> = Vec::new();
            let mut open_after: Vec<String> = Vec::new();
            for ((_, namespace), new_name) in view.new_names.iter().filter(|((s, _), _)| *s == receiver) {
                let existing = existing_policies(cluster, namespace);
                if !senders.iter().any(|labels| admits(&existing, labels)) {
                    continue;
                }
                open_now.push(new_name);
                let mut with_emitted = existing.clone();
                with_emitted.extend(emitted[&(receiver, *namespace)].iter());
                if senders.iter().any(|labels| admits(&with_emitted, labels)) {
                    let names: Vec<&str> = existing.iter().map(|p| p.name.as_str()).collect();
                    open_after.push(format!("{new_name} (NetworkPolicy {})", names.join(", ")));
                }
            }
            if open_now.is_empty() {
                continue;
            }
            open_now.sort_unstable();
            let closed_by: Vec<String> = open_now
                .iter()
                .flat_map(|n| {
                    [
                        format!("NetworkPolicy {n}/{}", manifests::DEFAULT_DENY),
                        format!("NetworkPolicy {n}/{}", manifests::ALLOW_SAME_SOURCE),
                    ]
                })
                .collect();
            let mut detail = format!(
                "{} namespace{} of {receiver} would be reachable from pods of {sender} in {}, which their cluster \
                 boundary kept out",
                open_now.len(),
                if open_now.len() == 1 { "" } else { "s" },
                view.name,
            );
            if !open_after.is_empty() {
                detail.push_str(&format!(
                    "; existing policies still admit {sender} after the emitted ones: {}",
                    open_after.join("; ")
                ));
            }
            if !enforced {
                detail.push_str(&format!(
                    "; {} runs {}, which does not enforce NetworkPolicy: see its cni-migration precondition",
                    view.name, view.cni
                ));
            }
            findings.push(Finding {
                kind: FindingKind::NetworkWidening,
                severity: Severity::High,
                target_cluster: view.name.to_string(),
                source_cluster: receiver.to_string(),
                object: format!("pods of {sender}"),
                subject: String::new(),
                role: String::new(),
                rules: Vec::new(),
                namespaces: open_now.into_iter().map(str::to_string).collect(),
                detail,
                closed_by,
                open: !open_after.is_empty() || !enforced,
            });
        }
    }
    findings
}

// ------------------------------------------------------------------ runtime

fn runtime_findings(view: &TargetView<'_>) -> Vec<Finding> {
    // RuntimeClass name → (handler → sources defining it).
    let mut defined: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for (source, cluster) in &view.sources {
        for class in &cluster.isolation.runtime_classes {
            defined.entry(&class.name).or_default().entry(&class.handler).or_default().push(source);
        }
    }
    // (source, RuntimeClass) → namespaces (new names) whose pods ask for it.
    let mut used: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for ((source, namespace), new_name) in &view.new_names {
        let groups =
            view.sources[source].namespaces.iter().filter(|n| n.name == *namespace).flat_map(|n| &n.pod_groups);
        for group in groups.filter(|g| !g.runtime_class.is_empty()) {
            used.entry((source, &group.runtime_class)).or_default().insert(new_name);
        }
    }
    // Handlers the target's nodes offer, when some node reports them.
    let reported: Option<BTreeSet<&str>> = view
        .nodes
        .iter()
        .any(|n| !n.runtime_handlers.is_empty())
        .then(|| view.nodes.iter().flat_map(|n| &n.runtime_handlers).map(|h| h.name.as_str()).collect());
    let mut findings = Vec::new();
    for ((source, class), namespaces) in used {
        let handlers = defined.get(class);
        let problem = match handlers {
            None => format!("no source cluster of {} defines RuntimeClass {class}", view.name),
            Some(handlers) if handlers.len() > 1 => format!(
                "the sources of {} define RuntimeClass {class} with different handlers ({})",
                view.name,
                handlers.iter().map(|(h, s)| format!("{h} in {}", s.join(", "))).collect::<Vec<_>>().join("; ")
            ),
            Some(handlers) => match (handlers.keys().next(), &reported) {
                (Some(handler), Some(offered)) if !offered.contains(handler) => format!(
                    "no node of {} offers its handler {handler} (the nodes report {})",
                    view.name,
                    offered.iter().map(|h| if h.is_empty() { "(default)" } else { h }).collect::<Vec<_>>().join(", ")
                ),
                _ => continue,
            },
        };
        findings.push(Finding {
            kind: FindingKind::RuntimeClass,
            severity: Severity::Medium,
            target_cluster: view.name.to_string(),
            source_cluster: source.to_string(),
            object: format!("RuntimeClass {class}"),
            subject: String::new(),
            role: String::new(),
            rules: Vec::new(),
            namespaces: namespaces.into_iter().map(str::to_string).collect(),
            detail: format!(
                "pods ask for runtimeClassName {class}, and {problem}: define it in the target, with nodes that offer its handler"
            ),
            closed_by: Vec::new(),
            open: true,
        });
    }
    findings
}

// ------------------------------------------------------------------ Pod Security

/// The level a moved namespace enforced in its source, which it keeps.
fn level_kept(view: &TargetView<'_>, source: &str, namespace: &str) -> PodSecurityLevel {
    view.sources
        .get(source)
        .and_then(|c| c.namespaces.iter().find(|n| n.name == namespace))
        .map(|n| PodSecurityLevel::of_labels(&n.labels))
        .unwrap_or_default()
}

fn pod_security_findings(view: &TargetView<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (&(source, namespace), &new_name) in &view.new_names {
        let level = level_kept(view, source, namespace);
        // Workload → (pods, rules broken, whether a baseline rule is among them).
        let mut broken: BTreeMap<String, (u64, BTreeSet<&str>, bool)> = BTreeMap::new();
        let groups = view.sources[source].namespaces.iter().filter(|n| n.name == namespace).flat_map(|n| &n.pod_groups);
        for group in groups {
            let rules = group.pod_security.at(level);
            if rules.is_empty() {
                continue;
            }
            let entry = broken.entry(group.workload()).or_default();
            entry.0 += group.replicas;
            entry.1.extend(rules);
            entry.2 |= !group.pod_security.baseline.is_empty();
        }
        for (workload, (pods, rules, breaks_baseline)) in broken {
            let rules: Vec<String> = rules.into_iter().map(str::to_string).collect();
            findings.push(Finding {
                kind: FindingKind::PodSecurity,
                severity: if breaks_baseline { Severity::High } else { Severity::Medium },
                target_cluster: view.name.to_string(),
                source_cluster: source.to_string(),
                object: workload.clone(),
                subject: String::new(),
                role: format!("Pod Security {}", level.as_str()),
                detail: format!(
                    "{pods} pod{} of {workload} in {new_name} (from {source}) break{} the Pod Security level {} that \
                     {new_name} keeps in {} ({}): admission refuses {} when recreated there; fix the securityContext \
                     before the move (nothing kplan emits changes a pod spec)",
                    if pods == 1 { "" } else { "s" },
                    if pods == 1 { "s" } else { "" },
                    level.as_str(),
                    view.name,
                    rules.join(", "),
                    if pods == 1 { "it" } else { "them" },
                ),
                rules,
                namespaces: vec![new_name.to_string()],
                closed_by: Vec::new(),
                open: true,
            });
        }
    }
    findings
}

// ------------------------------------------------------------------ admission policies

/// The namespaces of `source` moving into the target (their new names) that
/// `policy` applies to: those its namespace names and its selector (on the
/// namespace's labels in the source) take in; all of them without either.
fn policy_scope<'a>(view: &TargetView<'a>, source: &str, policy: &AdmissionPolicy) -> Vec<&'a str> {
    let cluster = view.sources[source];
    let mut names: Vec<&str> = view
        .new_names
        .iter()
        .filter(|((s, _), _)| *s == source)
        .filter(|((_, namespace), _)| policy.namespaces.is_empty() || policy.namespaces.iter().any(|n| n == namespace))
        .filter(|((_, namespace), _)| {
            policy.namespace_selector.as_ref().is_none_or(|selector| {
                let labels = cluster.namespaces.iter().find(|n| n.name == *namespace).map(|n| &n.labels);
                labels.is_some_and(|labels| selector.matches(labels))
            })
        })
        .map(|(_, new_name)| *new_name)
        .collect();
    names.sort_unstable();
    names
}

fn admission_findings(view: &TargetView<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (&source, cluster) in &view.sources {
        for policy in &cluster.isolation.admission_policies {
            let namespaces = policy_scope(view, source, policy);
            if namespaces.is_empty() {
                continue;
            }
            let everywhere = view.sources.values().all(|other| {
                other
                    .isolation
                    .admission_policies
                    .iter()
                    .any(|p| (&p.group, &p.kind, &p.name) == (&policy.group, &policy.kind, &policy.name))
            });
            let denies = policy.actions.is_empty() || policy.actions.iter().any(|a| a.eq_ignore_ascii_case("deny"));
            let what = if policy.policy.is_empty() { String::new() } else { format!(" (of policy {})", policy.policy) };
            let detail = if everywhere {
                format!(
                    "{}{what} exists with this kind and name in every source cluster of {}: installed there with \
                     the platform, it keeps applying to {} namespace{} of {source}",
                    policy.describe(),
                    view.name,
                    namespaces.len(),
                    if namespaces.len() == 1 { "" } else { "s" },
                )
            } else {
                format!(
                    "{}{what} of {source} applies to {} of its namespace{} moving into {}; it does not follow them: \
                     install it in {} or they escape it",
                    policy.describe(),
                    namespaces.len(),
                    if namespaces.len() == 1 { "" } else { "s" },
                    view.name,
                    view.name,
                )
            };
            findings.push(Finding {
                kind: FindingKind::AdmissionPolicy,
                severity: if denies { Severity::High } else { Severity::Medium },
                target_cluster: view.name.to_string(),
                source_cluster: source.to_string(),
                object: policy.describe(),
                subject: String::new(),
                role: String::new(),
                rules: Vec::new(),
                namespaces: namespaces.into_iter().map(str::to_string).collect(),
                detail,
                closed_by: Vec::new(),
                open: !everywhere,
            });
        }
    }
    findings
}

// ------------------------------------------------------------------ independent check

/// The validator's independent check of `report` and the emitted `targets`
/// ([`crate::validate::isolation::validate_isolation`]): empty when every
/// widening is claimed and every closed one is closed by what is emitted.
pub fn verify(
    plan: &Plan,
    inventory: &[ClusterSnapshot],
    report: &IsolationReport,
    targets: &[manifests::TargetManifests],
) -> Vec<crate::validate::Violation> {
    use crate::validate::isolation::{Claim, Emitted, Placed, validate_isolation};
    let claims: Vec<Claim<'_>> = report
        .findings()
        .map(|f| Claim {
            kind: f.kind.as_str(),
            target_cluster: &f.target_cluster,
            source_cluster: &f.source_cluster,
            object: &f.object,
            subject: &f.subject,
            rules: &f.rules,
            namespaces: &f.namespaces,
            closed_by: &f.closed_by,
            open: f.open,
        })
        .collect();
    let all: Vec<manifests::WaveManifests> = targets.iter().map(manifests::TargetManifests::all).collect();
    let gatekeeper_subjects: Vec<Vec<Vec<String>>> = all
        .iter()
        .map(|t| {
            let subjects = |c: &gatekeeper::TenantConstraint| {
                c.spec.parameters.subjects.iter().map(|s| format!("{} {}", s.kind, s.name)).collect()
            };
            t.constraints.iter().map(subjects).collect()
        })
        .collect();
    let placed: Vec<Vec<Placed>> = targets.iter().map(placed_objects).collect();
    let emitted: Vec<Emitted<'_>> = targets
        .iter()
        .zip(&all)
        .zip(gatekeeper_subjects.iter().zip(&placed))
        .map(|((t, all), (gatekeeper_subjects, placed))| Emitted {
            target_cluster: &t.target_cluster,
            namespaces: &all.namespaces,
            role_bindings: &all.role_bindings,
            network_policies: &all.network_policies,
            gatekeeper_subjects,
            runtime_classes: &all.runtime_classes,
            placed,
        })
        .collect();
    validate_isolation(inventory, &plan.policy.clone().unwrap_or_default(), plan, &claims, &emitted)
}

/// Every object of `target` with the wave it is applied in, as the validator reads them.
fn placed_objects(target: &manifests::TargetManifests) -> Vec<crate::validate::isolation::Placed> {
    use crate::validate::isolation::Placed;
    let mut placed = Vec::new();
    for wave in &target.waves {
        let mut add = |kind: &str, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, guards| {
            placed.push(Placed {
                wave: wave.wave,
                kind: kind.to_string(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
                guards,
            });
        };
        wave.namespaces.iter().for_each(|o| add("Namespace", &o.metadata, Vec::new()));
        wave.cluster_roles.iter().for_each(|o| add("ClusterRole", &o.metadata, Vec::new()));
        wave.role_bindings.iter().for_each(|o| add("RoleBinding", &o.metadata, Vec::new()));
        wave.network_policies.iter().for_each(|o| add("NetworkPolicy", &o.metadata, Vec::new()));
        wave.runtime_classes.iter().for_each(|o| add("RuntimeClass", &o.metadata, Vec::new()));
        wave.constraint_templates.iter().for_each(|o| add("ConstraintTemplate", &o.metadata, Vec::new()));
        for constraint in &wave.constraints {
            add(&constraint.kind, &constraint.metadata, constraint.spec.parameters.tenant_namespaces.clone());
        }
    }
    placed
}
