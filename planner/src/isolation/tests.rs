//! Hand-made inventories of known answer: two source clusters `a` and `b`
//! merge into `fra-prod-1`; `a/web` is renamed `web-a` (it collides with `b/web`).

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::isolation::{
    IsolationInventory, LabelSelector, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyRule, POD_SECURITY_ENFORCE_LABEL,
    Role, RoleBinding, RoleRef, RuntimeClass, Subject,
};
use kplan_model::scheduling::PodGroup;
use kplan_model::test_support::{snapshot, worker};
use kplan_model::{
    BlockPlan, ClusterSnapshot, Namespace, NamespaceMove, Plan, PreconditionKind, Resources, SlaTier, TargetCluster,
    Wave,
};
use serde_json::Value;

use super::manifests::{TargetManifests, WaveManifests, manifests};
use super::{FindingKind, analyse};

pub(super) const TARGET: &str = "fra-prod-1";

pub(super) fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        name: name.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        security_tier: "prod".into(),
        sla_tier: SlaTier::Bronze,
        requests: Resources::new(100, 1 << 20, 1),
        pod_groups: Vec::new(),
        applied_prerelease: Vec::new(),
        disruption_budgets: Vec::new(),
    }
}

pub(super) fn subject(kind: &str, name: &str, namespace: &str) -> Subject {
    Subject { kind: kind.into(), name: name.into(), namespace: namespace.into() }
}

pub(super) fn cluster_binding(name: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        namespace: String::new(),
        name: name.into(),
        role_ref: RoleRef { kind: "ClusterRole".into(), name: role.into() },
        subjects,
    }
}

pub(super) fn cluster(id: &str, namespaces: Vec<Namespace>, isolation: IsolationInventory) -> ClusterSnapshot {
    let mut cluster = snapshot(id, 1, 0, vec![worker(&format!("{id}-w1"))]);
    cluster.facts.cni = "calico".into();
    cluster.namespaces = namespaces;
    cluster.isolation = isolation;
    cluster
}

/// `a`: shop, web (restricted), ci; team-a bound cluster-wide to `edit`, the
/// CI deployer (a service account of `ci`) to a custom `deployer` role, and
/// the built-in bindings. `b`: web, pay; team-b bound to `view`.
pub(super) fn inventory() -> Vec<ClusterSnapshot> {
    let a = cluster(
        "a",
        vec![
            namespace("shop", &[]),
            namespace("web", &[(POD_SECURITY_ENFORCE_LABEL, "restricted")]),
            namespace("ci", &[("team", "a")]),
        ],
        IsolationInventory {
            cluster_roles: vec![Role {
                namespace: String::new(),
                name: "deployer".into(),
                rules: vec![kplan_model::isolation::PolicyRule {
                    api_groups: vec!["apps".into()],
                    resources: vec!["deployments".into()],
                    verbs: vec!["get".into(), "patch".into()],
                    ..Default::default()
                }],
            }],
            cluster_role_bindings: vec![
                cluster_binding("team-a-edit", "edit", vec![subject("Group", "team-a", "")]),
                cluster_binding("ci-deployer", "deployer", vec![subject("ServiceAccount", "deployer", "ci")]),
                cluster_binding("cluster-admin", "cluster-admin", vec![subject("Group", "system:masters", "")]),
                cluster_binding(
                    "system:kube-controller-manager",
                    "system:kube-controller-manager",
                    vec![subject("User", "system:kube-controller-manager", "")],
                ),
                cluster_binding(
                    "calico-node",
                    "calico-node",
                    vec![subject("ServiceAccount", "calico-node", "kube-system")],
                ),
            ],
            ..Default::default()
        },
    );
    let b = cluster(
        "b",
        vec![namespace("web", &[]), namespace("pay", &[("team", "b")])],
        IsolationInventory {
            cluster_role_bindings: vec![cluster_binding("team-b-view", "view", vec![subject("Group", "team-b", "")])],
            ..Default::default()
        },
    );
    vec![a, b]
}

pub(super) fn moved(from: &str, namespace: &str, new_name: &str) -> NamespaceMove {
    NamespaceMove {
        from_cluster: from.into(),
        namespace: namespace.into(),
        to_cluster: TARGET.into(),
        new_name: new_name.into(),
        ..Default::default()
    }
}

pub(super) fn plan(cni: &str) -> Plan {
    Plan {
        id: "plan-test".into(),
        blocks: vec![BlockPlan {
            datacenter: "fra".into(),
            security_tier: "prod".into(),
            source_clusters: vec!["a".into(), "b".into()],
            target_clusters: vec![TargetCluster { name: TARGET.into(), cni: cni.into(), ..Default::default() }],
            waves: vec![
                Wave {
                    index: 1,
                    namespaces: vec![moved("a", "shop", "shop"), moved("a", "web", "web-a"), moved("a", "ci", "ci")],
                    ..Default::default()
                },
                Wave {
                    index: 2,
                    namespaces: vec![moved("b", "web", "web"), moved("b", "pay", "pay")],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The target's objects, every wave's together.
pub(super) fn objects(plan: &Plan, inventory: &[ClusterSnapshot]) -> WaveManifests {
    by_wave(plan, inventory).all()
}

pub(super) fn by_wave(plan: &Plan, inventory: &[ClusterSnapshot]) -> TargetManifests {
    let mut all = manifests(plan, inventory);
    assert_eq!(all.len(), 1);
    all.remove(0)
}

pub(super) fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ------------------------------------------------------------------ RBAC

/// An independent reading of RoleBindings (as their JSON): the namespaces in
/// which `kind`/`name` holds ClusterRole `role`.
fn namespaces_granted(bindings: &[Value], kind: &str, name: &str, role: &str) -> BTreeSet<String> {
    bindings
        .iter()
        .filter(|b| b["kind"] == "RoleBinding" && b["roleRef"]["kind"] == "ClusterRole" && b["roleRef"]["name"] == role)
        .filter(|b| b["subjects"].as_array().unwrap().iter().any(|s| s["kind"] == kind && s["name"] == name))
        .map(|b| b["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_group_bound_cluster_wide_to_edit_is_a_finding_and_its_role_bindings_give_exactly_its_old_namespaces() {
    let (plan, inventory) = (plan("calico"), inventory());
    let report = analyse(&plan, &inventory);
    let finding = report
        .findings()
        .find(|f| f.kind == FindingKind::RbacWidening && f.subject == "Group team-a")
        .expect("team-a's edit binding widens");
    assert_eq!(finding.object, "ClusterRoleBinding team-a-edit");
    assert_eq!(finding.role, "ClusterRole edit");
    assert_eq!(finding.source_cluster, "a");
    assert_eq!(finding.namespaces, ["pay", "web"], "b's namespaces, newly reached");
    assert!(!finding.open);
    assert_eq!(finding.closed_by.len(), 3);

    let objects = objects(&plan, &inventory);
    let bindings: Vec<Value> = objects.role_bindings.iter().map(|b| serde_json::to_value(b).unwrap()).collect();
    // Its old namespaces, the renamed one by its new name; none of b's.
    assert_eq!(namespaces_granted(&bindings, "Group", "team-a", "edit"), set(&["ci", "shop", "web-a"]));
    assert_eq!(namespaces_granted(&bindings, "Group", "team-b", "view"), set(&["pay", "web"]));
    let binding = bindings
        .iter()
        .find(|b| b["metadata"]["namespace"] == "web-a" && b["metadata"]["name"] == "kplan-team-a-edit")
        .unwrap();
    assert_eq!(binding["apiVersion"], "rbac.authorization.k8s.io/v1");
    assert_eq!(binding["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
}

#[test]
fn system_subjects_and_roles_and_platform_service_accounts_are_not_findings() {
    let report = analyse(&plan("calico"), &inventory());
    let rbac: Vec<(&str, &str)> = report
        .findings()
        .filter(|f| f.kind == FindingKind::RbacWidening)
        .map(|f| (f.object.as_str(), f.subject.as_str()))
        .collect();
    assert_eq!(
        rbac,
        [
            ("ClusterRoleBinding ci-deployer", "ServiceAccount ci/deployer"),
            ("ClusterRoleBinding team-a-edit", "Group team-a"),
            ("ClusterRoleBinding team-b-view", "Group team-b"),
        ]
    );
}

#[test]
fn a_service_account_keeps_its_renamed_namespace_and_its_custom_role_comes_along() {
    let mut inventory = inventory();
    // Rename a/ci in the target: the deployer's subject must follow.
    let mut plan = plan("calico");
    plan.blocks[0].waves[0].namespaces[2].new_name = "ci-a".into();
    inventory[0].isolation.cluster_role_bindings[1].subjects[0].namespace = "ci".into();
    let objects = objects(&plan, &inventory);
    let bindings: Vec<Value> = objects.role_bindings.iter().map(|b| serde_json::to_value(b).unwrap()).collect();
    let deployer = bindings.iter().find(|b| b["roleRef"]["name"] == "deployer").unwrap();
    assert_eq!(deployer["subjects"][0]["namespace"], "ci-a");
    assert!(deployer["subjects"][0].get("apiGroup").is_none(), "a service account has no apiGroup");
    let roles: Vec<&str> = objects.cluster_roles.iter().map(|r| r.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(roles, ["deployer"], "edit and view are built in");
}

#[test]
fn a_subject_that_held_the_same_role_in_the_other_source_does_not_widen_there() {
    let mut inventory = inventory();
    inventory[1].isolation.cluster_role_bindings.push(cluster_binding(
        "team-a-edit",
        "edit",
        vec![subject("Group", "team-a", "")],
    ));
    let report = analyse(&plan("calico"), &inventory);
    assert!(!report.findings().any(|f| f.subject == "Group team-a"));
}

#[test]
fn a_target_with_one_source_widens_nothing() {
    let mut plan = plan("calico");
    plan.blocks[0].waves.truncate(1);
    let report = analyse(&plan, &inventory());
    assert_eq!(report.findings().count(), 0);
    let objects = objects(&plan, &inventory());
    assert!(objects.network_policies.is_empty() && objects.role_bindings.is_empty());
    assert_eq!(objects.namespaces.len(), 3, "the label patches are still written");
}

// ------------------------------------------------------------------ network

/// An independent evaluator of NetworkPolicies (their JSON, ingress only,
/// pods without labels): can a pod of `from` reach a pod of `to`?
fn can_reach(
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    policies: &[Value],
    from: &str,
    to: &str,
) -> bool {
    let labels_match = |selector: &Value, labels: &BTreeMap<String, String>| {
        assert!(selector.get("matchExpressions").is_none(), "the evaluator reads matchLabels only");
        selector["matchLabels"]
            .as_object()
            .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()))
    };
    let no_labels = BTreeMap::new();
    let selecting: Vec<&Value> = policies
        .iter()
        .filter(|p| p["metadata"]["namespace"] == to)
        .filter(|p| p["spec"]["policyTypes"].as_array().unwrap().iter().any(|t| t == "Ingress"))
        .filter(|p| labels_match(&p["spec"]["podSelector"], &no_labels))
        .collect();
    if selecting.is_empty() {
        return true;
    }
    selecting.iter().flat_map(|p| p["spec"]["ingress"].as_array().into_iter().flatten()).any(|rule| {
        let Some(peers) = rule["from"].as_array() else { return true };
        peers.iter().any(|peer| {
            let namespace_ok = match peer.get("namespaceSelector") {
                Some(selector) => labels_match(selector, &namespaces[from]),
                None => from == to,
            };
            let pod_ok = peer.get("podSelector").is_none_or(|selector| labels_match(selector, &no_labels));
            namespace_ok && pod_ok && peer.get("ipBlock").is_none()
        })
    })
}

#[test]
fn namespaces_of_different_sources_cannot_talk_after_the_emitted_policies() {
    let (plan, inventory) = (plan("calico"), inventory());
    let report = analyse(&plan, &inventory);
    let network: Vec<(&str, &str, &[String], bool)> = report
        .findings()
        .filter(|f| f.kind == FindingKind::NetworkWidening)
        .map(|f| (f.source_cluster.as_str(), f.object.as_str(), f.namespaces.as_slice(), f.open))
        .collect();
    assert_eq!(network.len(), 2, "one finding per ordered pair of sources, not per pair of namespaces");
    assert_eq!(network[0].0, "a");
    assert_eq!(network[0].1, "pods of b");
    assert_eq!(network[0].2, ["ci", "shop", "web-a"]);
    assert!(!network[0].3);

    let objects = objects(&plan, &inventory);
    // The namespaces' labels in the target: the emitted patches plus the name label.
    let namespaces: BTreeMap<String, BTreeMap<String, String>> = objects
        .namespaces
        .iter()
        .map(|n| {
            let name = n.metadata.name.clone().unwrap();
            let mut labels = n.metadata.labels.clone().unwrap();
            labels.insert("kubernetes.io/metadata.name".into(), name.clone());
            (name, labels)
        })
        .collect();
    assert_eq!(namespaces.len(), 5);
    let policies: Vec<Value> = objects.network_policies.iter().map(|p| serde_json::to_value(p).unwrap()).collect();
    assert_eq!(policies.len(), 10, "two per moved namespace");
    assert!(can_reach(&namespaces, &[], "shop", "pay"), "without policies everything talks");
    let from_a = ["shop", "web-a", "ci"];
    let from_b = ["web", "pay"];
    for a in from_a {
        for b in from_b {
            assert!(!can_reach(&namespaces, &policies, a, b), "{a} -> {b}");
            assert!(!can_reach(&namespaces, &policies, b, a), "{b} -> {a}");
        }
        for other in from_a {
            assert!(can_reach(&namespaces, &policies, a, other), "{a} -> {other} (same source)");
        }
    }
    assert!(can_reach(&namespaces, &policies, "web", "pay"));
}

/// A policy of b's `pay` that isolates its pods and admits the namespaces `namespaces` selects.
pub(super) fn pay_admitting(name: &str, namespaces: LabelSelector) -> NetworkPolicy {
    NetworkPolicy {
        namespace: "pay".into(),
        name: name.into(),
        policy_types: vec!["Ingress".into()],
        ingress: vec![NetworkPolicyRule {
            peers: vec![NetworkPolicyPeer { namespace_selector: Some(namespaces), ..Default::default() }],
            ports: vec![],
        }],
        ..Default::default()
    }
}

#[test]
fn an_existing_policy_that_admits_every_namespace_leaves_the_widening_open() {
    let mut inventory = inventory();
    inventory[1].isolation.network_policies = vec![pay_admitting("allow-all-namespaces", LabelSelector::default())];
    let report = analyse(&plan("calico"), &inventory);
    let finding =
        report.findings().find(|f| f.kind == FindingKind::NetworkWidening && f.source_cluster == "b").unwrap();
    assert!(finding.open);
    assert!(finding.detail.contains("pay (NetworkPolicy allow-all-namespaces)"), "{}", finding.detail);
    assert_eq!(report.n_open(), 1);
}

#[test]
fn a_namespace_that_already_denies_other_namespaces_is_not_listed() {
    let mut inventory = inventory();
    let team_b = LabelSelector { match_labels: BTreeMap::from([("team".into(), "b".into())]), ..Default::default() };
    inventory[1].isolation.network_policies = vec![pay_admitting("same-team", team_b)];
    let report = analyse(&plan("calico"), &inventory);
    let finding =
        report.findings().find(|f| f.kind == FindingKind::NetworkWidening && f.source_cluster == "b").unwrap();
    assert_eq!(finding.namespaces, ["web"], "pay admits only team=b, which no namespace of a carries");
}

#[test]
fn a_flannel_target_gets_the_cni_precondition_and_its_network_findings_stay_open() {
    let inventory = inventory();
    let clusters: Vec<&ClusterSnapshot> = inventory.iter().collect();
    let preconditions = crate::preconditions::block_preconditions(&clusters, "", "flannel");
    let network: Vec<&str> = preconditions
        .iter()
        .filter(|p| p.kind == PreconditionKind::CniMigration && p.detail.contains("does not enforce NetworkPolicy"))
        .map(|p| p.cluster_id.as_str())
        .collect();
    assert_eq!(network, ["a", "b"]);
    assert!(
        crate::preconditions::block_preconditions(&clusters, "", "calico")
            .iter()
            .all(|p| !p.detail.contains("does not enforce NetworkPolicy"))
    );
    assert!(
        crate::preconditions::block_preconditions(&clusters[..1], "", "flannel")
            .iter()
            .all(|p| !p.detail.contains("NetworkPolicy"))
    );

    let report = analyse(&plan("flannel"), &inventory);
    assert!(!report.targets[0].network_policy_enforced);
    assert!(report.findings().filter(|f| f.kind == FindingKind::NetworkWidening).all(|f| f.open));
}

// ------------------------------------------------------------------ admission and runtime

#[test]
fn a_restricted_namespace_keeps_restricted_and_the_others_say_privileged() {
    let (plan, inventory) = (plan("calico"), inventory());
    let objects = objects(&plan, &inventory);
    let level = |name: &str| {
        let namespace = objects.namespaces.iter().find(|n| n.metadata.name.as_deref() == Some(name)).unwrap();
        let labels = namespace.metadata.labels.as_ref().unwrap();
        (labels[POD_SECURITY_ENFORCE_LABEL].clone(), labels[super::SOURCE_CLUSTER_LABEL].clone())
    };
    assert_eq!(level("web-a"), ("restricted".to_string(), "a".to_string()));
    assert_eq!(level("web"), ("privileged".to_string(), "b".to_string()));
}

#[test]
fn pods_asking_for_a_runtime_class_nobody_defines_are_an_open_finding() {
    let mut inventory = inventory();
    inventory[0].namespaces[0].pod_groups =
        vec![PodGroup { runtime_class: "gvisor".into(), replicas: 1, ..Default::default() }];
    let report = analyse(&plan("calico"), &inventory);
    let finding = report.findings().find(|f| f.kind == FindingKind::RuntimeClass).unwrap();
    assert_eq!((finding.object.as_str(), finding.open), ("RuntimeClass gvisor", true));
    assert_eq!(finding.namespaces, ["shop"]);

    inventory[0].isolation.runtime_classes = vec![RuntimeClass { name: "gvisor".into(), handler: "runsc".into() }];
    assert!(analyse(&plan("calico"), &inventory).findings().all(|f| f.kind != FindingKind::RuntimeClass));
    let objects = objects(&plan("calico"), &inventory);
    assert_eq!(objects.runtime_classes[0].handler, "runsc");
}

/// A pod group of `workload` (`Deployment/name`) breaking the given rules.
pub(super) fn violating(workload: &str, baseline: &[&str], restricted: &[&str]) -> PodGroup {
    let (kind, name) = workload.split_once('/').unwrap();
    PodGroup {
        owner_kind: kind.into(),
        owner_name: name.into(),
        replicas: 2,
        pod_security: kplan_model::isolation::PodSecurityViolations {
            baseline: baseline.iter().map(|r| r.to_string()).collect(),
            restricted: restricted.iter().map(|r| r.to_string()).collect(),
        },
        ..Default::default()
    }
}

#[test]
fn a_restricted_namespace_with_a_violating_pod_gets_a_finding_naming_the_pod_and_the_rule() {
    let mut inventory = inventory();
    // a/web (web-a in the target) enforces restricted; a/shop is privileged.
    inventory[0].namespaces[1].pod_groups = vec![
        violating("Deployment/api", &[], &["runAsNonRoot"]),
        violating("Deployment/agent", &["hostNamespaces"], &["runAsNonRoot"]),
        violating("Deployment/fine", &[], &[]),
    ];
    inventory[0].namespaces[0].pod_groups = vec![violating("Deployment/shop", &["privileged"], &[])];
    let report = analyse(&plan("calico"), &inventory);
    let found: Vec<_> = report.findings().filter(|f| f.kind == FindingKind::PodSecurity).collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    let api = found.iter().find(|f| f.object == "Deployment/api").unwrap();
    assert_eq!(
        (api.namespaces.as_slice(), api.rules.as_slice()),
        (&["web-a".to_string()][..], &["runAsNonRoot".to_string()][..])
    );
    assert_eq!((api.severity, api.open, api.role.as_str()), (super::Severity::Medium, true, "Pod Security restricted"));
    assert!(api.detail.contains("2 pods of Deployment/api in web-a (from a)"), "{}", api.detail);
    let agent = found.iter().find(|f| f.object == "Deployment/agent").unwrap();
    assert_eq!(agent.rules, ["hostNamespaces", "runAsNonRoot"]);
    assert_eq!(agent.severity, super::Severity::High);
    // Open, but not widenings: --fail-on-widening does not count them.
    assert_eq!(report.n_open(), report.n_open_widenings() + 2);
    // The privileged namespace's privileged pod is no finding.
    assert!(found.iter().all(|f| f.namespaces != ["shop"]));
}

#[test]
fn an_admission_policy_of_one_source_is_an_open_finding_in_its_target_and_closed_when_every_source_has_it() {
    use kplan_model::isolation::AdmissionPolicy;
    let mut inventory = inventory();
    let vap = |name: &str| AdmissionPolicy {
        group: "admissionregistration.k8s.io".into(),
        kind: "ValidatingAdmissionPolicyBinding".into(),
        name: name.into(),
        policy: "require-team".into(),
        actions: vec!["Deny".into()],
        ..Default::default()
    };
    let constraint = AdmissionPolicy {
        group: "constraints.gatekeeper.sh".into(),
        kind: "K8sRequiredLabels".into(),
        name: "ci-only".into(),
        namespaces: vec!["ci".into()],
        actions: vec!["dryrun".into()],
        ..Default::default()
    };
    let elsewhere =
        AdmissionPolicy { name: "not-moving".into(), namespaces: vec!["kube-system".into()], ..constraint.clone() };
    inventory[0].isolation.admission_policies = vec![vap("require-team"), constraint, elsewhere];
    let report = analyse(&plan("calico"), &inventory);
    let found: Vec<_> = report.findings().filter(|f| f.kind == FindingKind::AdmissionPolicy).collect();
    assert_eq!(found.len(), 2, "the constraint on kube-system applies to nothing moving: {found:#?}");
    let binding = found.iter().find(|f| f.object == "ValidatingAdmissionPolicyBinding require-team").unwrap();
    assert_eq!((binding.source_cluster.as_str(), binding.open, binding.severity), ("a", true, super::Severity::High));
    assert_eq!(binding.namespaces, ["ci", "shop", "web-a"]);
    assert!(binding.detail.contains("install it in fra-prod-1"), "{}", binding.detail);
    let gatekeeper = found.iter().find(|f| f.object == "K8sRequiredLabels ci-only").unwrap();
    assert_eq!(
        (gatekeeper.namespaces.as_slice(), gatekeeper.severity),
        (&["ci".to_string()][..], super::Severity::Medium)
    );

    // The same binding in b too: the platform's, closed in both.
    inventory[1].isolation.admission_policies = vec![vap("require-team")];
    let report = analyse(&plan("calico"), &inventory);
    let bindings: Vec<_> =
        report.findings().filter(|f| f.object == "ValidatingAdmissionPolicyBinding require-team").collect();
    assert_eq!(bindings.len(), 2);
    assert!(bindings.iter().all(|f| !f.open && f.detail.contains("in every source cluster")));
}

#[test]
fn a_runtime_class_whose_handler_no_node_of_the_target_offers_is_an_open_finding_where_handlers_are_known() {
    use kplan_model::{NodeRef, RuntimeHandler};
    let mut inventory = inventory();
    inventory[0].namespaces[0].pod_groups =
        vec![PodGroup { runtime_class: "gvisor".into(), replicas: 1, ..Default::default() }];
    inventory[0].isolation.runtime_classes = vec![RuntimeClass { name: "gvisor".into(), handler: "runsc".into() }];
    let mut plan = plan("calico");
    plan.blocks[0].target_clusters[0].nodes_kept =
        vec![NodeRef { cluster_id: "a".into(), node: "a-w1".into(), ..Default::default() }];
    // No node reports its handlers (before 1.30): not checked, as before.
    assert!(analyse(&plan, &inventory).findings().all(|f| f.kind != FindingKind::RuntimeClass));
    let handler = |name: &str| RuntimeHandler { name: name.into(), features: Vec::new() };
    inventory[0].nodes[0].runtime_handlers = vec![handler(""), handler("runc")];
    let report = analyse(&plan, &inventory);
    let finding = report.findings().find(|f| f.kind == FindingKind::RuntimeClass).expect("runsc is offered by no node");
    assert!(finding.open);
    assert!(finding.detail.contains("no node of fra-prod-1 offers its handler runsc"), "{}", finding.detail);
    assert!(super::verify(&plan, &inventory, &report, &manifests(&plan, &inventory)).is_empty());
    inventory[0].nodes[0].runtime_handlers.push(handler("runsc"));
    assert!(analyse(&plan, &inventory).findings().all(|f| f.kind != FindingKind::RuntimeClass));
}

#[test]
fn the_report_is_deterministic_and_names_clusters_without_isolation_inventory() {
    let mut inventory = inventory();
    inventory[1].isolation = IsolationInventory::default();
    let first = analyse(&plan("calico"), &inventory);
    inventory.reverse();
    assert_eq!(analyse(&plan("calico"), &inventory), first);
    assert_eq!(first.clusters_without_isolation_inventory, ["b"]);
}

// ------------------------------------------------------------------ through the planner

#[test]
fn a_planned_merge_onto_flannel_lists_the_precondition_and_its_renamed_namespace_keeps_its_binding() {
    use crate::tests::{
        cluster as planned_cluster, control_plane, namespace as planned_namespace, node, plan as propose,
    };
    let mut clusters: Vec<ClusterSnapshot> = ["a", "b"]
        .iter()
        .map(|id| {
            let mut nodes: Vec<_> =
                ["x", "y", "z"].iter().map(|zone| node(&format!("{id}-{zone}"), "dc1", zone, 8, 32)).collect();
            nodes.push(control_plane(node(&format!("{id}-cp"), "dc1", "x", 4, 16)));
            let mut cluster = planned_cluster(
                id,
                "prod",
                "dc1",
                nodes,
                vec![
                    planned_namespace("shop", "prod", SlaTier::Gold, 1000, 2, 4),
                    planned_namespace(&format!("only-{id}"), "prod", SlaTier::Bronze, 500, 1, 2),
                ],
            );
            cluster.facts.cni = "flannel".into();
            cluster
        })
        .collect();
    clusters[0].isolation.cluster_role_bindings =
        vec![cluster_binding("team-a-edit", "edit", vec![subject("Group", "team-a", "")])];
    let plan = propose(&clusters, &kplan_model::Policy::default());
    let block = &plan.blocks[0];
    assert_eq!(block.target_clusters.len(), 1, "{:?}", block.target_clusters);
    let network: Vec<&str> = block
        .preconditions
        .iter()
        .filter(|p| p.kind == PreconditionKind::CniMigration && p.detail.contains("does not enforce NetworkPolicy"))
        .map(|p| p.cluster_id.as_str())
        .collect();
    assert!(!network.is_empty(), "{:#?}", block.preconditions);
    let renamed = &block.namespace_renames[0];
    assert_eq!(renamed.namespace, "shop");

    let report = analyse(&plan, &clusters);
    let finding = report.findings().find(|f| f.kind == FindingKind::RbacWidening).expect("team-a widens");
    assert_eq!(finding.namespaces.len(), 2, "b's two namespaces: {:?}", finding.namespaces);
    let bindings: Vec<Value> =
        objects(&plan, &clusters).role_bindings.iter().map(|b| serde_json::to_value(b).unwrap()).collect();
    let a_shop = if renamed.from_cluster == "a" { renamed.new_name.as_str() } else { "shop" };
    assert_eq!(namespaces_granted(&bindings, "Group", "team-a", "edit"), set(&[a_shop, "only-a"]));
}

// ------------------------------------------------------------------ waves

/// Per wave, the `KIND NAMESPACE/NAME` (or `KIND NAME`) of its objects.
fn ids_by_wave(objects: &TargetManifests) -> BTreeMap<u64, BTreeSet<String>> {
    let id = |kind: &str, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| match &meta.namespace {
        Some(namespace) => format!("{kind} {namespace}/{}", meta.name.clone().unwrap_or_default()),
        None => format!("{kind} {}", meta.name.clone().unwrap_or_default()),
    };
    objects
        .waves
        .iter()
        .map(|w| {
            let mut ids = BTreeSet::new();
            ids.extend(w.namespaces.iter().map(|o| id("Namespace", &o.metadata)));
            ids.extend(w.cluster_roles.iter().map(|o| id("ClusterRole", &o.metadata)));
            ids.extend(w.role_bindings.iter().map(|o| id("RoleBinding", &o.metadata)));
            ids.extend(w.network_policies.iter().map(|o| id("NetworkPolicy", &o.metadata)));
            ids.extend(w.runtime_classes.iter().map(|o| id("RuntimeClass", &o.metadata)));
            ids.extend(w.constraint_templates.iter().map(|o| id("ConstraintTemplate", &o.metadata)));
            ids.extend(w.constraints.iter().map(|o| id("Constraint", &o.metadata)));
            (w.wave, ids)
        })
        .collect()
}

#[test]
fn a_namespace_moving_in_wave_2_has_its_objects_in_wave_2_and_the_cluster_scoped_ones_come_first() {
    let (plan, inventory) = (plan("calico"), inventory());
    let objects = by_wave(&plan, &inventory);
    let ids = ids_by_wave(&objects);
    assert_eq!(ids.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    // b's pay and web arrive in wave 2: their label patch, RoleBindings and policies are there, not in wave 1.
    for namespace in ["pay", "web"] {
        assert!(ids[&2].contains(&format!("Namespace {namespace}")), "{:?}", ids[&2]);
        assert!(ids[&2].contains(&format!("NetworkPolicy {namespace}/kplan-default-deny")), "{:?}", ids[&2]);
        assert!(ids[&2].iter().any(|i| i.starts_with(&format!("RoleBinding {namespace}/"))), "{:?}", ids[&2]);
        assert!(
            !ids[&1].iter().any(|i| i.contains(&format!(" {namespace}/")) || i.ends_with(&format!(" {namespace}")))
        );
    }
    for namespace in ["shop", "web-a", "ci"] {
        assert!(ids[&1].contains(&format!("Namespace {namespace}")), "{:?}", ids[&1]);
        assert!(ids[&1].contains(&format!("NetworkPolicy {namespace}/kplan-default-deny")), "{:?}", ids[&1]);
    }
    // Wave 0: cluster-scoped only; one Constraint per wave with namespaces, guarding that wave's.
    assert!(ids[&0].iter().all(|i| !i.contains('/')), "{:?}", ids[&0]);
    assert!(ids[&0].contains("ConstraintTemplate kplantenantnamespaces"), "{:?}", ids[&0]);
    for wave in [1, 2] {
        let constraint = &objects.wave(wave).unwrap().constraints;
        assert_eq!(constraint.len(), 1);
        assert_eq!(
            constraint[0].metadata.name.as_deref(),
            Some(format!("kplan-tenant-namespaces-wave-{wave}").as_str())
        );
    }
    assert_eq!(objects.wave(2).unwrap().constraints[0].spec.parameters.tenant_namespaces, ["pay", "web"]);
    // No id twice across the waves.
    let n: usize = ids.values().map(BTreeSet::len).sum();
    assert_eq!(n, ids.values().flatten().collect::<BTreeSet<_>>().len());
    assert_eq!(n, objects.n_objects());
}

#[test]
fn a_namespace_moving_in_parts_gets_its_objects_at_its_first_parts_wave() {
    let mut plan = plan("calico");
    // b's pay moves in two parts, waves 2 and 3: its objects belong to wave 2.
    let mut first = plan.blocks[0].waves[1].namespaces.iter().find(|m| m.namespace == "pay").unwrap().clone();
    first.part = Some(kplan_model::MovePart { index: 1, of: 2, workloads: Vec::new() });
    let mut second = first.clone();
    second.part = Some(kplan_model::MovePart { index: 2, of: 2, workloads: Vec::new() });
    plan.blocks[0].waves[1].namespaces.retain(|m| m.namespace != "pay");
    plan.blocks[0].waves[1].namespaces.push(first);
    plan.blocks[0].waves.push(Wave { index: 3, namespaces: vec![second], ..Default::default() });
    let objects = by_wave(&plan, &inventory());
    let ids = ids_by_wave(&objects);
    assert!(!ids.contains_key(&3), "nothing arrives first in wave 3: {ids:?}");
    assert!(ids[&2].contains("Namespace pay") && ids[&2].contains("NetworkPolicy pay/kplan-default-deny"));
    assert_eq!(crate::isolation::verify(&plan, &inventory(), &analyse(&plan, &inventory()), &[objects]), []);
}

#[test]
fn the_runbook_applies_each_waves_isolation_objects_before_its_namespaces_move_in() {
    use crate::runbook::{Phase, runbook};
    let (plan, inventory) = (plan("calico"), inventory());
    let book = runbook(&plan, &inventory, None);
    let waves = &book.blocks[0].waves;
    let applied = |wave: usize| -> Vec<String> {
        let steps = &waves[wave].steps;
        let first_restore = steps.iter().position(|s| s.phase == Phase::RestoreNamespace).unwrap();
        let applies: Vec<(usize, &crate::runbook::Step)> =
            steps.iter().enumerate().filter(|(_, s)| s.phase == Phase::ApplyIsolation).collect();
        assert!(applies.iter().all(|(i, _)| *i < first_restore), "before the namespaces move in");
        applies.iter().map(|(_, s)| s.commands[0].split("   #").next().unwrap().to_string()).collect()
    };
    assert_eq!(
        applied(0),
        [
            "kubectl --context fra-prod-1 apply -k isolation/fra-prod-1/wave-0",
            "kubectl --context fra-prod-1 apply -k isolation/fra-prod-1/wave-1",
        ]
    );
    assert_eq!(applied(1), ["kubectl --context fra-prod-1 apply -k isolation/fra-prod-1/wave-2"]);
}
