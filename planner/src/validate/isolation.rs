//! Tenant isolation, checked independently ([`Rule::Isolation`]): the
//! isolation report's claims (its findings) and the objects emitted to close
//! them, replayed against the plan and the inventory. Written apart from
//! `crate::isolation` (which it must not import): it reads RBAC and
//! NetworkPolicies itself, the inventory's as model types and the emitted
//! ones as the Kubernetes objects (k8s-openapi) that would be applied.
//!
//! Per target of a planned block fed by two or more source clusters (its
//! namespaces: the plan's moves into it, by their names there):
//!
//! - **RBAC widenings are claimed**: a tenant ClusterRoleBinding of a source
//!   (to a ClusterRole; binding and role not `system:*`; subject not a
//!   `system:*` user or group, nor a service account of a platform namespace)
//!   gives its subject the role over the target's namespaces of other sources
//!   where it did not hold that role before (bound to it cluster-wide there, or
//!   in that namespace). Each such (binding, subject) must be a finding
//!   listing at least those namespaces.
//! - **Emitted RoleBindings grant nothing new**: every subject of an emitted
//!   RoleBinding in namespace N held the same role over N before the merge in
//!   N's own source cluster (service accounts' namespaces mapped back through
//!   the plan's renames); N must be a namespace moving into the target.
//! - **Closed findings name objects that exist**: every `RoleBinding NS/NAME`
//!   and `NetworkPolicy NS/NAME` a finding is `closed_by` is emitted.
//! - **Network paths are claimed, and closed ones are closed**: a namespace
//!   that admits ingress from some namespace of another source (its own
//!   NetworkPolicies, labels after the merge: its own, the emitted label
//!   patch's, `kubernetes.io/metadata.name`) must be listed in a finding for
//!   that (receiving, sending) pair. If it still admits it with the emitted
//!   policies added, or the target's CNI ignores NetworkPolicy (flannel), that
//!   finding must be open.
//!
//! NetworkPolicies are read as Kubernetes defines them, conservatively where
//! the inventory is silent (pod labels are unknown): a namespace is closed to
//! a peer only if a policy restricting ingress selects every pod (empty
//! `podSelector`) and no ingress rule of any policy there admits the peer (a
//! rule without peers admits everyone; an `ipBlock` may cover pod addresses;
//! a `namespaceSelector` admits the namespaces it matches; a `podSelector`
//! alone only the namespace's own pods).
//!
//! - **The Gatekeeper Constraint names exactly the tenants**: its subjects are
//!   the subjects of the target's RBAC findings (a service account as the user
//!   `system:serviceaccount:NS:NAME`, NS its namespace's name in the target),
//!   no more and no fewer.
//!
//! - **Pod Security is kept**: an emitted namespace label patch that sets
//!   `pod-security.kubernetes.io/enforce` sets a known level at least as strict
//!   as the one the namespace enforced in its source (its label; Kubernetes'
//!   default, `privileged`, without one), and names a namespace moving into
//!   the target.
//! - **RuntimeClasses are there for the pods that need them**: a pod group
//!   moving into the target that asks for a `runtimeClassName` finds an
//!   emitted RuntimeClass of that name with the handler its source defines, or
//!   an open runtime-class finding names it for that namespace; every emitted
//!   RuntimeClass is asked for by some pod moving into the target.
//!
//! - **Handlers are offered**: where some node the target keeps reports its
//!   runtime handlers, a pod group asking for a RuntimeClass whose handler
//!   (as its source defines it) none of them offers must be named by an open
//!   runtime-class finding for its namespace.
//! - **Pods that break their namespace's level are claimed**: per moved
//!   namespace, the level it enforced in its source (its label) against the
//!   rules each of its pod groups breaks (recorded per level by the
//!   collector; restricted enforces baseline's rules too), re-derived here:
//!   every breaking workload must have an open pod-security finding for that
//!   namespace listing at least those rules; a pod-security finding must be
//!   open (nothing emitted changes a pod spec) and name rules its workload
//!   breaks there.
//! - **Admission policies are claimed**: every admission policy (binding,
//!   constraint) of a source whose scope (namespace names, selector on the
//!   source's labels) takes in a namespace moving into the target has an
//!   admission-policy finding of that source naming it; it is open unless the
//!   same group, kind and name exist in every source of the target.
//! - **Every object is applied in time, once**: the emitted objects come in
//!   waves (0: before any namespace arrives). An object of namespace N (its
//!   label patch, a RoleBinding or NetworkPolicy in it) is in a wave no later
//!   than the first wave that moves N (or a part of it) into the target; a
//!   cluster-scoped object (ClusterRole, RuntimeClass, ConstraintTemplate) no
//!   later than the first wave that moves any namespace there, the template
//!   no later than the first Constraint; where there are Gatekeeper
//!   Constraints, every namespace arriving in wave W is guarded by one of a
//!   wave no later than W; and no kind/namespace/name is in two waves (the
//!   target's kustomization of all its waves would be refused).
//!
//! Not checked: the other claims of runtime-class findings, the Gatekeeper
//! template and the Constraint's namespaces (they add refusals; they cannot
//! widen), and egress.

use k8s_openapi::api::core::v1::Namespace as K8sNamespace;
use k8s_openapi::api::networking::v1 as k8s_net;
use k8s_openapi::api::rbac::v1 as k8s_rbac;
use kplan_model::isolation::{LabelSelector, NetworkPolicy, RoleBinding, Subject};

use super::*;

/// A finding as the isolation report states it.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// `rbac-widening`, `network-widening`, `runtime-class`.
    pub kind: &'a str,
    pub target_cluster: &'a str,
    pub source_cluster: &'a str,
    /// `ClusterRoleBinding NAME`; `pods of SOURCE` for a network finding.
    pub object: &'a str,
    /// `Group NAME`, `User NAME`, `ServiceAccount NS/NAME`; empty for network findings.
    pub subject: &'a str,
    /// A pod-security finding's rules.
    pub rules: &'a [String],
    pub namespaces: &'a [String],
    pub closed_by: &'a [String],
    pub open: bool,
}

/// The objects emitted for one target.
#[derive(Debug, Clone, Copy)]
pub struct Emitted<'a> {
    pub target_cluster: &'a str,
    pub namespaces: &'a [K8sNamespace],
    pub role_bindings: &'a [k8s_rbac::RoleBinding],
    pub network_policies: &'a [k8s_net::NetworkPolicy],
    /// The subjects of each emitted Gatekeeper Constraint (one per wave) as
    /// `KIND NAME` (a service account as the user
    /// `system:serviceaccount:NS:NAME`); empty without a Constraint.
    pub gatekeeper_subjects: &'a [Vec<String>],
    pub runtime_classes: &'a [k8s_openapi::api::node::v1::RuntimeClass],
    /// Every emitted object with the wave it is applied in.
    pub placed: &'a [Placed],
}

/// An emitted object and the wave its directory is applied in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// 0: before the target's first namespace arrives; else the plan's wave.
    pub wave: u64,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    /// A Gatekeeper Constraint's `tenantNamespaces`; empty for other kinds.
    pub guards: Vec<String>,
}

/// The label the API server sets on every namespace (Kubernetes 1.21+).
const NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// CNIs that do not enforce NetworkPolicy (written here again on purpose).
const NO_NETWORK_POLICY: [&str; 1] = ["flannel"];

/// One target as the plan fills it.
struct Target<'a> {
    block: &'a BlockPlan,
    name: &'a str,
    cni: &'a str,
    /// (source, namespace) -> its name in the target.
    names: BTreeMap<(&'a str, &'a str), &'a str>,
    /// (cluster, node) of the nodes it keeps and of its control plane.
    nodes: Vec<(&'a str, &'a str)>,
}

impl<'a> Target<'a> {
    fn sources(&self) -> BTreeSet<&'a str> {
        self.names.keys().map(|(s, _)| *s).collect()
    }

    /// The source and old name of a namespace of the target.
    fn origin(&self, new_name: &str) -> Option<(&'a str, &'a str)> {
        self.names.iter().find(|(_, n)| **n == new_name).map(|(key, _)| *key)
    }
}

fn targets(plan: &Plan) -> Vec<Target<'_>> {
    let mut out = Vec::new();
    for block in plan.blocks.iter().filter(|b| b.status == BlockStatus::Planned) {
        for target in &block.target_clusters {
            let mut names = BTreeMap::new();
            for moved in block.waves.iter().flat_map(|w| &w.namespaces).filter(|m| m.to_cluster == target.name) {
                let new_name = if moved.new_name.is_empty() { &moved.namespace } else { &moved.new_name };
                names.insert((moved.from_cluster.as_str(), moved.namespace.as_str()), new_name.as_str());
            }
            let nodes = target
                .nodes_kept
                .iter()
                .map(|n| (n.cluster_id.as_str(), n.node.as_str()))
                .chain(target.control_plane.iter().map(|n| (n.cluster_id.as_str(), n.node.as_str())))
                .collect();
            out.push(Target { block, name: &target.name, cni: &target.cni, names, nodes });
        }
    }
    out
}

fn violation(block: &BlockPlan, detail: String) -> Violation {
    Violation {
        datacenter: block.datacenter.clone(),
        security_tier: block.security_tier.clone(),
        rule: Rule::Isolation,
        detail,
    }
}

fn subject_text(subject: &Subject) -> String {
    if subject.kind == "ServiceAccount" {
        format!("ServiceAccount {}/{}", subject.namespace, subject.name)
    } else {
        format!("{} {}", subject.kind, subject.name)
    }
}

fn is_tenant_subject(subject: &Subject, policy: &Policy) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => !is_platform_namespace(&subject.namespace, policy),
        _ => !subject.name.starts_with("system:"),
    }
}

/// Whether `subject` held ClusterRole `role` over `namespace` of `cluster`.
fn held(cluster: &ClusterSnapshot, namespace: &str, subject: &Subject, role: &str) -> bool {
    let grants = |b: &&RoleBinding| b.role_ref.kind == "ClusterRole" && b.role_ref.name == role;
    cluster.isolation.cluster_role_bindings.iter().filter(grants).any(|b| b.subjects.contains(subject))
        || cluster
            .isolation
            .role_bindings
            .iter()
            .filter(|b| b.namespace == namespace)
            .filter(grants)
            .any(|b| b.subjects.contains(subject))
}

/// Checks the isolation report's claims and the emitted objects against the
/// plan and the inventory (see the module documentation); empty when true.
pub fn validate_isolation(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    plan: &Plan,
    claims: &[Claim<'_>],
    emitted: &[Emitted<'_>],
) -> Vec<Violation> {
    let clusters: BTreeMap<&str, &ClusterSnapshot> = inventory.iter().map(|c| (c.cluster_id.as_str(), c)).collect();
    let mut out = Vec::new();
    for target in targets(plan) {
        let objects = emitted.iter().find(|e| e.target_cluster == target.name);
        let claims: Vec<&Claim<'_>> = claims.iter().filter(|c| c.target_cluster == target.name).collect();
        if target.names.keys().any(|(source, _)| !clusters.contains_key(source)) {
            // A source the inventory does not hold: nothing of it can be known.
            continue;
        }
        check_closed_by(&target, &claims, objects, &mut out);
        check_waves(&target, objects, &mut out);
        check_role_bindings(&target, &clusters, objects, &mut out);
        check_pod_security(&target, &clusters, objects, &mut out);
        check_runtime_classes(&target, &clusters, &claims, objects, &mut out);
        check_pod_violations(&target, &clusters, &claims, &mut out);
        check_admission_policies(&target, &clusters, &claims, &mut out);
        if target.sources().len() < 2 {
            continue;
        }
        check_rbac_claims(&target, &clusters, policy, &claims, &mut out);
        check_gatekeeper(&target, &claims, objects, &mut out);
        check_network(&target, &clusters, &claims, objects, &mut out);
    }
    out
}

/// Kinds the validator knows to be cluster-scoped (besides Namespace and Gatekeeper's Constraints).
const CLUSTER_SCOPED: [&str; 3] = ["ClusterRole", "RuntimeClass", "ConstraintTemplate"];

fn check_waves(target: &Target<'_>, objects: Option<&Emitted<'_>>, out: &mut Vec<Violation>) {
    let Some(objects) = objects else { return };
    // A namespace's name in the target → the first wave that moves it (or a part of it) there.
    let mut arrives: BTreeMap<&str, u64> = BTreeMap::new();
    for wave in &target.block.waves {
        for moved in wave.namespaces.iter().filter(|m| m.to_cluster == target.name) {
            let name = if moved.new_name.is_empty() { &moved.namespace } else { &moved.new_name };
            let first = arrives.entry(name.as_str()).or_insert(wave.index);
            *first = (*first).min(wave.index);
        }
    }
    let Some(&first) = arrives.values().min() else { return };
    let mut seen: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    for placed in objects.placed {
        let id = format!(
            "{} {}{}",
            placed.kind,
            if placed.namespace.is_empty() { String::new() } else { format!("{}/", placed.namespace) },
            placed.name
        );
        if let Some(earlier) = seen.insert((&placed.kind, &placed.namespace, &placed.name), placed.wave) {
            out.push(violation(
                target.block,
                format!("target {}: {id} is emitted in wave {earlier} and again in wave {}", target.name, placed.wave),
            ));
        }
        let namespace = if placed.kind == "Namespace" { placed.name.as_str() } else { placed.namespace.as_str() };
        let due = if !namespace.is_empty() {
            arrives.get(namespace).copied().map(|w| (w, format!("{namespace} arrives")))
        } else if CLUSTER_SCOPED.contains(&placed.kind.as_str()) {
            Some((first, "the first namespace arrives".to_string()))
        } else {
            None
        };
        if let Some((due, what)) = due.filter(|(due, _)| placed.wave > *due) {
            out.push(violation(
                target.block,
                format!("target {}: {id} is applied in wave {}, after {what} in wave {due}", target.name, placed.wave),
            ));
        }
    }
    let constraints: Vec<&Placed> = objects.placed.iter().filter(|p| !p.guards.is_empty()).collect();
    if constraints.is_empty() {
        return;
    }
    let first_constraint = constraints.iter().map(|p| p.wave).min().unwrap_or(first);
    for template in objects.placed.iter().filter(|p| p.kind == "ConstraintTemplate" && p.wave > first_constraint) {
        out.push(violation(
            target.block,
            format!(
                "target {}: ConstraintTemplate {} is applied in wave {}, after a Constraint of its kind in wave {first_constraint}",
                target.name, template.name, template.wave
            ),
        ));
    }
    for (namespace, arrival) in &arrives {
        let guarded = constraints.iter().any(|c| c.wave <= *arrival && c.guards.iter().any(|g| g == namespace));
        if !guarded {
            out.push(violation(
                target.block,
                format!(
                    "target {}: {namespace} arrives in wave {arrival} and no Gatekeeper Constraint applied by then guards it",
                    target.name
                ),
            ));
        }
    }
}

fn check_gatekeeper(
    target: &Target<'_>,
    claims: &[&Claim<'_>],
    objects: Option<&Emitted<'_>>,
    out: &mut Vec<Violation>,
) {
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    for claim in claims.iter().filter(|c| c.kind == "rbac-widening") {
        let Some((kind, name)) = claim.subject.split_once(' ') else { continue };
        let subject = match (kind, name.split_once('/')) {
            ("ServiceAccount", Some((namespace, account))) => {
                let there = target.names.get(&(claim.source_cluster, namespace)).copied().unwrap_or(namespace);
                format!("User system:serviceaccount:{there}:{account}")
            }
            _ => claim.subject.to_string(),
        };
        claimed.insert(subject);
    }
    // Every Constraint (one per wave) names them all; without any, none does.
    let no_constraint = [Vec::new()];
    let constraints = match objects.map(|o| o.gatekeeper_subjects) {
        Some(lists) if !lists.is_empty() => lists,
        _ => &no_constraint[..],
    };
    // Each distinct fault once, however many Constraints share it.
    let mut faults: BTreeSet<String> = BTreeSet::new();
    for emitted in constraints {
        let emitted: BTreeSet<String> = emitted.iter().cloned().collect();
        let missing: Vec<&str> = claimed.difference(&emitted).map(String::as_str).collect();
        let extra: Vec<&str> = emitted.difference(&claimed).map(String::as_str).collect();
        if !missing.is_empty() {
            faults.insert(format!(
                "target {}: the Gatekeeper Constraint leaves out {}, subject of an RBAC finding",
                target.name,
                missing.join(", ")
            ));
        }
        if !extra.is_empty() {
            faults.insert(format!(
                "target {}: the Gatekeeper Constraint names {}, subject of no RBAC finding",
                target.name,
                extra.join(", ")
            ));
        }
    }
    out.extend(faults.into_iter().map(|fault| violation(target.block, fault)));
}

fn check_runtime_classes(
    target: &Target<'_>,
    clusters: &BTreeMap<&str, &ClusterSnapshot>,
    claims: &[&Claim<'_>],
    objects: Option<&Emitted<'_>>,
    out: &mut Vec<Violation>,
) {
    let emitted: BTreeMap<&str, &str> = objects
        .into_iter()
        .flat_map(|o| o.runtime_classes)
        .map(|c| (c.metadata.name.as_deref().unwrap_or_default(), c.handler.as_str()))
        .collect();
    // The handlers the target's nodes report; None when none reports any.
    let nodes: Vec<&kplan_model::Node> = target
        .nodes
        .iter()
        .filter_map(|(cluster, node)| clusters.get(cluster)?.nodes.iter().find(|n| n.name == *node))
        .collect();
    let offered: Option<BTreeSet<&str>> = nodes
        .iter()
        .any(|n| !n.runtime_handlers.is_empty())
        .then(|| nodes.iter().flat_map(|n| n.runtime_handlers.iter().map(|h| h.name.as_str())).collect());
    let mut asked: BTreeSet<&str> = BTreeSet::new();
    for ((source, namespace), new_name) in &target.names {
        let Some(cluster) = clusters.get(source) else { continue };
        let groups = cluster.namespaces.iter().filter(|n| n.name == *namespace).flat_map(|n| &n.pod_groups);
        for class in groups.map(|g| g.runtime_class.as_str()).filter(|c| !c.is_empty()) {
            asked.insert(class);
            let handler =
                cluster.isolation.runtime_classes.iter().find(|c| c.name == class).map(|c| c.handler.as_str());
            let claimed = claims.iter().any(|c| {
                c.kind == "runtime-class"
                    && c.open
                    && c.object == format!("RuntimeClass {class}")
                    && c.namespaces.iter().any(|n| n == new_name)
            });
            if let (Some(handler), Some(offered)) = (handler, &offered)
                && !offered.contains(handler)
                && !claimed
            {
                out.push(violation(
                    target.block,
                    format!(
                        "target {}: pods of {new_name} (from {source}) need RuntimeClass {class}, whose handler \
                         {handler} no node of the target offers, and no open finding says so",
                        target.name
                    ),
                ));
                continue;
            }
            match (emitted.get(class), handler) {
                (Some(there), Some(handler)) if *there == handler => {}
                _ if claimed => {}
                (Some(there), _) => out.push(violation(
                    target.block,
                    format!(
                        "target {}: pods of {new_name} (from {source}) need RuntimeClass {class} with handler {}, \
                         the emitted one has handler {there}, and no open finding says so",
                        target.name,
                        handler.unwrap_or("(none defined)")
                    ),
                )),
                (None, _) => out.push(violation(
                    target.block,
                    format!(
                        "target {}: pods of {new_name} (from {source}) need RuntimeClass {class}, which is not \
                         emitted, and no open finding says so",
                        target.name
                    ),
                )),
            }
        }
    }
    for class in emitted.keys().filter(|c| !asked.contains(*c)) {
        out.push(violation(
            target.block,
            format!("target {}: emitted RuntimeClass {class} is asked for by no pod moving into it", target.name),
        ));
    }
}

/// The rules a namespace enforcing `level` refuses a pod group for, from the
/// collector's per-level lists (restricted enforces baseline's too).
fn refused_rules(
    level: kplan_model::isolation::PodSecurityLevel,
    group: &kplan_model::scheduling::PodGroup,
) -> BTreeSet<&str> {
    use kplan_model::isolation::PodSecurityLevel;
    let mut rules: BTreeSet<&str> = BTreeSet::new();
    if level >= PodSecurityLevel::Baseline {
        rules.extend(group.pod_security.baseline.iter().map(String::as_str));
    }
    if level >= PodSecurityLevel::Restricted {
        rules.extend(group.pod_security.restricted.iter().map(String::as_str));
    }
    rules
}

fn check_pod_violations(
    target: &Target<'_>,
    clusters: &BTreeMap<&str, &ClusterSnapshot>,
    claims: &[&Claim<'_>],
    out: &mut Vec<Violation>,
) {
    use kplan_model::isolation::PodSecurityLevel;
    // (new name, workload) -> rules broken.
    let mut broken: BTreeMap<(&str, String), BTreeSet<&str>> = BTreeMap::new();
    for ((source, namespace), new_name) in &target.names {
        let Some(found) = clusters.get(source).and_then(|c| c.namespaces.iter().find(|n| n.name == *namespace)) else {
            continue;
        };
        let level = PodSecurityLevel::of_labels(&found.labels);
        for group in &found.pod_groups {
            let rules = refused_rules(level, group);
            if !rules.is_empty() {
                let workload = format!("{}/{}", group.owner_kind, group.owner_name);
                broken.entry((new_name, workload)).or_default().extend(rules);
            }
        }
    }
    for ((namespace, workload), rules) in &broken {
        let claimed: BTreeSet<&str> = claims
            .iter()
            .filter(|c| c.kind == "pod-security" && c.object == workload && c.namespaces.iter().any(|n| n == namespace))
            .filter(|c| c.open)
            .flat_map(|c| c.rules.iter().map(String::as_str))
            .collect();
        let missing: Vec<&str> = rules.difference(&claimed).copied().collect();
        if !missing.is_empty() {
            out.push(violation(
                target.block,
                format!(
                    "target {}: pods of {workload} in {namespace} break Pod Security rules {} of the level it \
                     keeps, and no open pod-security finding names them",
                    target.name,
                    missing.join(", ")
                ),
            ));
        }
    }
    for claim in claims.iter().filter(|c| c.kind == "pod-security") {
        let real = claim.namespaces.iter().any(|n| {
            broken
                .get(&(n.as_str(), claim.object.to_string()))
                .is_some_and(|rules| claim.rules.iter().all(|r| rules.contains(r.as_str())))
        });
        if !claim.open || !real {
            out.push(violation(
                target.block,
                format!(
                    "target {}: the pod-security finding of {} in {} ({}) is {}",
                    target.name,
                    claim.object,
                    claim.namespaces.join(", "),
                    claim.rules.join(", "),
                    if claim.open {
                        "not what its pods break"
                    } else {
                        "closed, but nothing emitted changes a pod spec"
                    }
                ),
            ));
        }
    }
}

fn check_admission_policies(
    target: &Target<'_>,
    clusters: &BTreeMap<&str, &ClusterSnapshot>,
    claims: &[&Claim<'_>],
    out: &mut Vec<Violation>,
) {
    let sources: Vec<&ClusterSnapshot> = target.sources().iter().filter_map(|s| clusters.get(s).copied()).collect();
    for source in target.sources() {
        let Some(cluster) = clusters.get(source) else { continue };
        for policy in &cluster.isolation.admission_policies {
            let applies = target.names.keys().filter(|(s, _)| *s == source).any(|(_, namespace)| {
                let labels = cluster.namespaces.iter().find(|n| n.name == *namespace).map(|n| &n.labels);
                (policy.namespaces.is_empty() || policy.namespaces.iter().any(|n| n == namespace))
                    && policy.namespace_selector.as_ref().is_none_or(|s| labels.is_some_and(|l| s.matches(l)))
            });
            if !applies {
                continue;
            }
            let everywhere = sources.iter().all(|c| {
                c.isolation
                    .admission_policies
                    .iter()
                    .any(|p| p.group == policy.group && p.kind == policy.kind && p.name == policy.name)
            });
            let object = format!("{} {}", policy.kind, policy.name);
            let claim = claims
                .iter()
                .find(|c| c.kind == "admission-policy" && c.source_cluster == source && c.object == object);
            let problem = match claim {
                None => "no admission-policy finding names it",
                Some(claim) if !claim.open && !everywhere => "its finding is closed, but not every source has it",
                Some(_) => continue,
            };
            out.push(violation(
                target.block,
                format!(
                    "target {}: {object} of {source} applies to namespaces moving into it and {problem}",
                    target.name
                ),
            ));
        }
    }
}

fn check_pod_security(
    target: &Target<'_>,
    clusters: &BTreeMap<&str, &ClusterSnapshot>,
    objects: Option<&Emitted<'_>>,
    out: &mut Vec<Violation>,
) {
    use kplan_model::isolation::{POD_SECURITY_ENFORCE_LABEL, PodSecurityLevel};
    for patch in objects.into_iter().flat_map(|o| o.namespaces) {
        let name = patch.metadata.name.as_deref().unwrap_or_default();
        let Some((source, old_name)) = target.origin(name) else {
            out.push(violation(
                target.block,
                format!("target {}: emitted namespace patch {name} names no namespace moving into it", target.name),
            ));
            continue;
        };
        let Some(value) = patch.metadata.labels.as_ref().and_then(|l| l.get(POD_SECURITY_ENFORCE_LABEL)) else {
            continue;
        };
        let before = clusters
            .get(source)
            .and_then(|c| c.namespaces.iter().find(|n| n.name == old_name))
            .map(|n| PodSecurityLevel::of_labels(&n.labels))
            .unwrap_or_default();
        match PodSecurityLevel::parse(value) {
            Some(level) if level >= before => {}
            Some(level) => out.push(violation(
                target.block,
                format!(
                    "target {}: emitted namespace patch {name} sets Pod Security {} where {source}/{old_name} \
                     enforced {}",
                    target.name,
                    level.as_str(),
                    before.as_str()
                ),
            )),
            None => out.push(violation(
                target.block,
                format!(
                    "target {}: emitted namespace patch {name} sets Pod Security {value:?}, which is no level",
                    target.name
                ),
            )),
        }
    }
}

fn check_closed_by(
    target: &Target<'_>,
    claims: &[&Claim<'_>],
    objects: Option<&Emitted<'_>>,
    out: &mut Vec<Violation>,
) {
    let key = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
    };
    let mut existing: BTreeSet<String> = BTreeSet::new();
    if let Some(objects) = objects {
        existing.extend(objects.role_bindings.iter().map(|b| format!("RoleBinding {}", key(&b.metadata))));
        existing.extend(objects.network_policies.iter().map(|p| format!("NetworkPolicy {}", key(&p.metadata))));
    }
    for claim in claims {
        for object in claim.closed_by.iter().filter(|o| !existing.contains(*o)) {
            out.push(violation(
                target.block,
                format!(
                    "target {}: the {} finding of {} ({}) is closed by {object}, which is not emitted",
                    target.name, claim.kind, claim.source_cluster, claim.object
                ),
            ));
        }
    }
}

/// Every emitted RoleBinding grants only what its subjects held before.
fn check_role_bindings(
    target: &Target<'_>,
    clusters: &BTreeMap<&str, &ClusterSnapshot>,
    objects: Option<&Emitted<'_>>,
    out: &mut Vec<Violation>,
) {
    let Some(objects) = objects else { return };
    for binding in objects.role_bindings {
        let namespace = binding.metadata.namespace.as_deref().unwrap_or_default();
        let name = binding.metadata.name.as_deref().unwrap_or_default();
        let Some((source, old)) = target.origin(namespace) else {
            out.push(violation(
                target.block,
                format!(
                    "target {}: emitted RoleBinding {namespace}/{name} is in a namespace no source moves there",
                    target.name
                ),
            ));
            continue;
        };
        let cluster = clusters[source];
        let role = &binding.role_ref;
        for subject in binding.subjects.iter().flatten() {
            // Back to the subject as the source knew it: a service account's namespace by its old name.
            let subject_namespace = match subject.kind.as_str() {
                "ServiceAccount" => {
                    let new = subject.namespace.as_deref().unwrap_or_default();
                    target
                        .names
                        .iter()
                        .find(|((s, _), n)| *s == source && **n == new)
                        .map_or(new.to_string(), |((_, o), _)| o.to_string())
                }
                _ => String::new(),
            };
            let before =
                Subject { kind: subject.kind.clone(), name: subject.name.clone(), namespace: subject_namespace };
            let ok = match role.kind.as_str() {
                "ClusterRole" => held(cluster, old, &before, &role.name),
                // A Role of the namespace itself: bound to the subject there before.
                _ => cluster.isolation.role_bindings.iter().any(|b| {
                    b.namespace == old
                        && b.role_ref.kind == role.kind
                        && b.role_ref.name == role.name
                        && b.subjects.contains(&before)
                }),
            };
            if !ok {
                out.push(violation(
                    target.block,
                    format!(
                        "target {}: emitted RoleBinding {namespace}/{name} gives {} {} {} in namespace {namespace}, \
                         which it did not hold there before the merge ({namespace} is {source}/{old})",
                        target.name,
                        subject_text(&before),
                        role.kind,
                        role.name,
                    ),
                ));
            }
        }
    }
}

/// Every RBAC widening is a finding listing the namespaces it newly reaches.
fn check_rbac_claims(
    target: &Target<'_>,
    clusters: &BTreeMap<&str, &ClusterSnapshot>,
    policy: &Policy,
    claims: &[&Claim<'_>],
    out: &mut Vec<Violation>,
) {
    for source in target.sources() {
        let cluster = clusters[source];
        for binding in &cluster.isolation.cluster_role_bindings {
            let role = &binding.role_ref.name;
            if binding.role_ref.kind != "ClusterRole"
                || role.starts_with("system:")
                || binding.name.starts_with("system:")
            {
                continue;
            }
            for subject in binding.subjects.iter().filter(|s| is_tenant_subject(s, policy)) {
                let newly: BTreeSet<&str> = target
                    .names
                    .iter()
                    .filter(|((other, _), _)| *other != source)
                    .filter(|((other, namespace), _)| !held(clusters[other], namespace, subject, role))
                    .map(|(_, new_name)| *new_name)
                    .collect();
                if newly.is_empty() {
                    continue;
                }
                let described = subject_text(subject);
                let object = format!("ClusterRoleBinding {}", binding.name);
                let claim = claims.iter().find(|c| {
                    c.kind == "rbac-widening"
                        && c.source_cluster == source
                        && c.object == object
                        && c.subject == described
                });
                let listed: BTreeSet<&str> =
                    claim.map(|c| c.namespaces.iter().map(String::as_str).collect()).unwrap_or_default();
                let missing: Vec<String> = newly.difference(&listed).map(|n| n.to_string()).collect();
                if missing.is_empty() {
                    continue;
                }
                out.push(violation(
                    target.block,
                    format!(
                        "target {}: {object} of {source} gives {described} ClusterRole {role} over namespace{} {} \
                         of other sources, and no finding says so",
                        target.name,
                        if missing.len() == 1 { "" } else { "s" },
                        short_list(&missing),
                    ),
                ));
            }
        }
    }
}

/// A NetworkPolicy's ingress as the validator reads it.
#[derive(Clone)]
struct Ingress {
    selects_every_pod: bool,
    /// Each rule: `None` admits every peer; else its peers.
    rules: Vec<Option<Vec<Peer>>>,
}

#[derive(Clone)]
enum Peer {
    /// An ipBlock: may cover pod addresses.
    Addresses,
    Namespaces(LabelSelector),
    /// A podSelector alone: the policy's own namespace only.
    OwnNamespace,
}

fn from_model(policy: &NetworkPolicy) -> Option<Ingress> {
    if !policy.policy_types.iter().any(|t| t == "Ingress") {
        return None;
    }
    let rules = policy
        .ingress
        .iter()
        .map(|rule| {
            (!rule.peers.is_empty()).then(|| {
                rule.peers
                    .iter()
                    .map(|peer| match (&peer.ip_block, &peer.namespace_selector) {
                        (Some(_), _) => Peer::Addresses,
                        (None, Some(selector)) => Peer::Namespaces(selector.clone()),
                        (None, None) => Peer::OwnNamespace,
                    })
                    .collect()
            })
        })
        .collect();
    Some(Ingress { selects_every_pod: policy.pod_selector.is_empty(), rules })
}

fn selector_of(selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions: selector
            .match_expressions
            .iter()
            .flatten()
            .map(|e| kplan_model::isolation::LabelSelectorRequirement {
                key: e.key.clone(),
                operator: e.operator.clone(),
                values: e.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn from_k8s(policy: &k8s_net::NetworkPolicy) -> Option<Ingress> {
    let spec = policy.spec.as_ref()?;
    // Kubernetes' default: Ingress always, Egress when egress rules exist.
    let ingress_restricted = spec.policy_types.as_ref().is_none_or(|types| types.iter().any(|t| t == "Ingress"));
    if !ingress_restricted {
        return None;
    }
    let selects_every_pod = spec.pod_selector.as_ref().is_none_or(|s| selector_of(s).is_empty());
    let rules = spec
        .ingress
        .iter()
        .flatten()
        .map(|rule| {
            let peers = rule.from.as_deref().unwrap_or_default();
            (!peers.is_empty()).then(|| {
                peers
                    .iter()
                    .map(|peer| match (&peer.ip_block, &peer.namespace_selector) {
                        (Some(_), _) => Peer::Addresses,
                        (None, Some(selector)) => Peer::Namespaces(selector_of(selector)),
                        (None, None) => Peer::OwnNamespace,
                    })
                    .collect()
            })
        })
        .collect();
    Some(Ingress { selects_every_pod, rules })
}

/// Whether a namespace with these policies admits some pod of another
/// namespace labelled `from`.
fn admits_from(policies: &[Ingress], from: &BTreeMap<String, String>) -> bool {
    if !policies.iter().any(|p| p.selects_every_pod) {
        return true;
    }
    policies.iter().flat_map(|p| &p.rules).any(|rule| match rule {
        None => true,
        Some(peers) => peers.iter().any(|peer| match peer {
            Peer::Addresses => true,
            Peer::Namespaces(selector) => selector.matches(from),
            Peer::OwnNamespace => false,
        }),
    })
}

/// Every cross-source path is a finding; a closed finding's paths are closed.
fn check_network(
    target: &Target<'_>,
    clusters: &BTreeMap<&str, &ClusterSnapshot>,
    claims: &[&Claim<'_>],
    objects: Option<&Emitted<'_>>,
    out: &mut Vec<Violation>,
) {
    let enforced = !NO_NETWORK_POLICY.contains(&normalize_cni(target.cni).as_str());
    // The labels of each namespace after the merge, by its name in the target.
    let labels: BTreeMap<&str, BTreeMap<String, String>> = target
        .names
        .iter()
        .map(|(&(source, namespace), &new_name)| {
            let mut labels = clusters[source]
                .namespaces
                .iter()
                .find(|n| n.name == namespace)
                .map(|n| n.labels.clone())
                .unwrap_or_default();
            if let Some(patch) =
                objects.into_iter().flat_map(|o| o.namespaces).find(|n| n.metadata.name.as_deref() == Some(new_name))
            {
                labels.extend(patch.metadata.labels.clone().unwrap_or_default());
            }
            labels.insert(NAME_LABEL.to_string(), new_name.to_string());
            (new_name, labels)
        })
        .collect();
    let sources = target.sources();
    for (&(receiver, namespace), &new_name) in &target.names {
        let before: Vec<Ingress> = clusters[receiver]
            .isolation
            .network_policies
            .iter()
            .filter(|p| p.namespace == namespace)
            .filter_map(from_model)
            .collect();
        let mut after = before.clone();
        after.extend(
            objects
                .into_iter()
                .flat_map(|o| o.network_policies)
                .filter(|p| p.metadata.namespace.as_deref() == Some(new_name))
                .filter_map(from_k8s),
        );
        for &sender in sources.iter().filter(|&&s| s != receiver) {
            let senders: Vec<&BTreeMap<String, String>> =
                target.names.iter().filter(|((s, _), _)| *s == sender).map(|(_, n)| &labels[n]).collect();
            if !senders.iter().any(|from| admits_from(&before, from)) {
                continue;
            }
            let object = format!("pods of {sender}");
            let claim = claims.iter().find(|c| {
                c.kind == "network-widening"
                    && c.source_cluster == receiver
                    && c.object == object
                    && c.namespaces.iter().any(|n| n == new_name)
            });
            let Some(claim) = claim else {
                out.push(violation(
                    target.block,
                    format!(
                        "target {}: namespace {new_name} (from {receiver}) admits pods of {sender}, \
                         and no finding says so",
                        target.name
                    ),
                ));
                continue;
            };
            if claim.open {
                continue;
            }
            if !enforced {
                out.push(violation(
                    target.block,
                    format!(
                        "target {}: the finding says pods of {sender} are kept out of {new_name}, but {} does not \
                         enforce NetworkPolicy",
                        target.name, target.cni
                    ),
                ));
            } else if senders.iter().any(|from| admits_from(&after, from)) {
                out.push(violation(
                    target.block,
                    format!(
                        "target {}: the finding says pods of {sender} are kept out of {new_name}, but its \
                         NetworkPolicies, the emitted ones included, still admit them",
                        target.name
                    ),
                ));
            }
        }
    }
}
