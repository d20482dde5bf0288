//! The validator's tests: hand-made plans that break one rule each.

use kplan_model::policy::ZonePolicy;
use kplan_model::{ClusterFacts, ControlPlaneNode, NamespaceMove, NamespaceRename, NodeMove, NodeRef, Wave};

use super::*;

const CPU: u64 = 8000;
const MEMORY: u64 = 32 << 30;
const PODS: u64 = 110;

fn node(name: &str, zone: &str, role: NodeRole) -> Node {
    Node {
        name: name.into(),
        labels: Default::default(),
        datacenter: "fra".into(),
        zone: zone.into(),
        role,
        allocatable: Resources::new(CPU, MEMORY, PODS),
        kubelet_version: "v1.29.3".into(),
        container_runtime: "containerd://1.7.2".into(),
        architecture: "amd64".into(),
        unschedulable: false,
        taints: Vec::new(),
        extended: Default::default(),
        runtime_handlers: Vec::new(),
    }
}

fn namespace(name: &str, tier: &str, sla: SlaTier) -> Namespace {
    Namespace {
        name: name.into(),
        labels: Default::default(),
        security_tier: tier.into(),
        sla_tier: sla,
        requests: Resources::new(1000, 1 << 30, 5),
        pod_groups: Vec::new(),
        applied_prerelease: Vec::new(),
        disruption_budgets: Vec::new(),
    }
}

fn cluster(id: &str, tier: &str, nodes: Vec<Node>, namespaces: Vec<Namespace>) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster_id: id.into(),
        generation: 1,
        collected_at_unix: 0,
        facts: ClusterFacts {
            datacenter: "fra".into(),
            zone: String::new(),
            security_tier: tier.into(),
            kubernetes_version: "v1.29.3".into(),
            cni: "calico".into(),
            csi_drivers: Vec::new(),
        },
        nodes,
        namespaces,
        isolation: Default::default(),
    }
}

use NodeRole::{ControlPlane as Cp, Worker as W};

/// fra/prod: c1 and c2 (4 nodes each, one control plane) over zones za, zb, zc;
/// fra/dev: d1 (3 nodes in zd, a small site) plus c1's dev-tier `sandbox`.
fn inventory() -> Vec<ClusterSnapshot> {
    vec![
        cluster(
            "c1",
            "prod",
            vec![node("c1-cp", "za", Cp), node("c1-w1", "za", W), node("c1-w2", "zb", W), node("c1-w3", "zb", W)],
            vec![
                namespace("payments", "prod", SlaTier::Gold),
                namespace("web", "prod", SlaTier::Bronze),
                namespace("kube-system", "prod", SlaTier::Bronze),
                namespace("sandbox", "dev", SlaTier::Bronze),
            ],
        ),
        cluster(
            "c2",
            "prod",
            vec![node("c2-cp", "zb", Cp), node("c2-w1", "zc", W), node("c2-w2", "zc", W), node("c2-w3", "za", W)],
            vec![namespace("payments", "prod", SlaTier::Silver), namespace("api", "prod", SlaTier::Silver)],
        ),
        cluster(
            "d1",
            "dev",
            vec![node("d1-cp", "zd", Cp), node("d1-w1", "zd", W), node("d1-w2", "zd", W)],
            vec![namespace("test", "dev", SlaTier::Bronze), namespace("default", "dev", SlaTier::Bronze)],
        ),
    ]
}

fn policy() -> Policy {
    let zone = |tier: &str| ZonePolicy { tiers: vec![tier.to_string()] };
    Policy {
        zones: [("za", zone("prod")), ("zb", zone("prod")), ("zc", zone("prod")), ("zd", zone("dev"))]
            .into_iter()
            .map(|(name, zone)| (name.to_string(), zone))
            .collect(),
        small_site_max_nodes: 3,
        wave_budget: kplan_model::policy::WaveBudget { nodes: 4, namespaces: 3 },
        ..Policy::default()
    }
}

fn node_ref(cluster: &str, node: &str, zone: &str) -> NodeRef {
    NodeRef { cluster_id: cluster.into(), node: node.into(), zone: zone.into() }
}

fn join(cluster: &str, node: &str, zone: &str, to: &str) -> NodeMove {
    NodeMove {
        cluster_id: cluster.into(),
        node: node.into(),
        zone: zone.into(),
        action: NodeAction::DrainAndJoin,
        to_cluster: to.into(),
    }
}

fn free(cluster: &str, node: &str, zone: &str) -> NodeMove {
    NodeMove {
        cluster_id: cluster.into(),
        node: node.into(),
        zone: zone.into(),
        action: NodeAction::Free,
        to_cluster: String::new(),
    }
}

fn move_namespace(cluster: &str, name: &str, to: &str, new_name: &str, sla: SlaTier) -> NamespaceMove {
    NamespaceMove {
        from_cluster: cluster.into(),
        namespace: name.into(),
        to_cluster: to.into(),
        new_name: new_name.into(),
        sla_tier: sla,
        requests: Resources::new(1000, 1 << 30, 5),
        part: None,
    }
}

/// A cluster with `n_nodes` workload nodes and `n_namespaces` namespaces.
fn capacity(cluster: &str, n_nodes: u64, n_namespaces: u64) -> ClusterCapacity {
    ClusterCapacity {
        cluster: cluster.into(),
        allocatable: Resources::new(CPU * n_nodes, MEMORY * n_nodes, PODS * n_nodes),
        requested: Resources::new(1000 * n_namespaces, (1 << 30) * n_namespaces, 5 * n_namespaces),
    }
}

fn wave(
    index: u64,
    nodes: Vec<NodeMove>,
    namespaces: Vec<NamespaceMove>,
    retired: &[&str],
    before: Vec<ClusterCapacity>,
    after: Vec<ClusterCapacity>,
) -> Wave {
    Wave {
        index,
        nodes,
        namespaces,
        clusters_retired: retired.iter().map(|c| c.to_string()).collect(),
        capacity_before: before,
        capacity_after: after,
    }
}

fn cp(cluster: &str, node: &str, zone: &str) -> ControlPlaneNode {
    ControlPlaneNode { cluster_id: cluster.into(), node: node.into(), zone: zone.into() }
}

fn plan() -> Plan {
    let policy = policy();
    let abc: Vec<String> = ["za", "zb", "zc"].iter().map(|z| z.to_string()).collect();
    let prod = BlockPlan {
        datacenter: "fra".into(),
        security_tier: "prod".into(),
        status: BlockStatus::Planned,
        source_clusters: vec!["c1".into(), "c2".into()],
        target_clusters: vec![TargetCluster {
            name: "fra-prod".into(),
            nodes_kept: vec![
                node_ref("c1", "c1-w1", "za"),
                node_ref("c1", "c1-w2", "zb"),
                node_ref("c2", "c2-w1", "zc"),
                node_ref("c2", "c2-w2", "zc"),
            ],
            control_plane: vec![cp("c1", "c1-w1", "za"), cp("c1", "c1-w2", "zb"), cp("c2", "c2-w1", "zc")],
            distribution: "kubeadm".into(),
            kubernetes_version: "v1.29".into(),
            cni: "calico".into(),
            zones: abc.clone(),
            ..TargetCluster::default()
        }],
        nodes_freed: vec![
            node_ref("c1", "c1-cp", "za"),
            node_ref("c1", "c1-w3", "zb"),
            node_ref("c2", "c2-cp", "zb"),
            node_ref("c2", "c2-w3", "za"),
        ],
        firewall_flows: required_flows("fra-prod", &abc, &abc, "calico", false, &policy),
        waves: vec![
            wave(
                1,
                vec![
                    join("c1", "c1-w1", "za", "fra-prod"),
                    join("c1", "c1-w2", "zb", "fra-prod"),
                    join("c2", "c2-w1", "zc", "fra-prod"),
                    join("c2", "c2-w2", "zc", "fra-prod"),
                ],
                vec![],
                &[],
                vec![capacity("c1", 3, 2), capacity("c2", 3, 2), capacity("fra-prod", 0, 0)],
                vec![capacity("c1", 1, 2), capacity("c2", 1, 2), capacity("fra-prod", 1, 0)],
            ),
            wave(
                2,
                vec![],
                vec![
                    move_namespace("c1", "web", "fra-prod", "web", SlaTier::Bronze),
                    move_namespace("c2", "api", "fra-prod", "api", SlaTier::Silver),
                    move_namespace("c2", "payments", "fra-prod", "payments-c2", SlaTier::Silver),
                ],
                &[],
                vec![capacity("c1", 1, 2), capacity("c2", 1, 2), capacity("fra-prod", 1, 0)],
                vec![capacity("c1", 1, 1), capacity("c2", 1, 0), capacity("fra-prod", 1, 3)],
            ),
            wave(
                3,
                vec![free("c2", "c2-w3", "za"), free("c2", "c2-cp", "zb")],
                vec![move_namespace("c1", "payments", "fra-prod", "payments", SlaTier::Gold)],
                &["c2"],
                vec![capacity("c1", 1, 1), capacity("c2", 1, 0), capacity("fra-prod", 1, 3)],
                vec![capacity("c1", 1, 0), capacity("c2", 0, 0), capacity("fra-prod", 1, 4)],
            ),
            wave(
                4,
                vec![free("c1", "c1-w3", "zb"), free("c1", "c1-cp", "za")],
                vec![],
                &["c1"],
                vec![capacity("c1", 1, 0), capacity("fra-prod", 1, 4)],
                vec![capacity("fra-prod", 1, 4)],
            ),
        ],
        namespace_renames: vec![NamespaceRename {
            from_cluster: "c2".into(),
            namespace: "payments".into(),
            new_name: "payments-c2".into(),
            target_cluster: "fra-prod".into(),
            collides_with: vec!["c1".into()],
        }],
        ..BlockPlan::default()
    };
    let dev = BlockPlan {
        datacenter: "fra".into(),
        security_tier: "dev".into(),
        status: BlockStatus::Planned,
        source_clusters: vec!["c1".into(), "d1".into()],
        target_clusters: vec![TargetCluster {
            name: "fra-dev".into(),
            nodes_kept: vec![node_ref("d1", "d1-w1", "zd")],
            control_plane: vec![cp("d1", "d1-w1", "zd")],
            small_site: true,
            distribution: "k3s".into(),
            cni: "flannel".into(),
            zones: vec!["zd".into()],
            ..TargetCluster::default()
        }],
        nodes_freed: vec![node_ref("d1", "d1-cp", "zd"), node_ref("d1", "d1-w2", "zd")],
        firewall_flows: vec![],
        waves: vec![
            wave(
                1,
                vec![join("d1", "d1-w1", "zd", "fra-dev")],
                vec![],
                &[],
                vec![capacity("c1", 0, 1), capacity("d1", 2, 1), capacity("fra-dev", 0, 0)],
                vec![capacity("c1", 0, 1), capacity("d1", 1, 1), capacity("fra-dev", 1, 0)],
            ),
            wave(
                2,
                vec![],
                vec![
                    move_namespace("c1", "sandbox", "fra-dev", "sandbox", SlaTier::Bronze),
                    move_namespace("d1", "test", "fra-dev", "test", SlaTier::Bronze),
                ],
                &[],
                vec![capacity("c1", 0, 1), capacity("d1", 1, 1), capacity("fra-dev", 1, 0)],
                vec![capacity("c1", 0, 0), capacity("d1", 1, 0), capacity("fra-dev", 1, 2)],
            ),
            wave(
                3,
                vec![free("d1", "d1-w2", "zd"), free("d1", "d1-cp", "zd")],
                vec![],
                &["d1"],
                vec![capacity("d1", 1, 0), capacity("fra-dev", 1, 2)],
                vec![capacity("d1", 0, 0), capacity("fra-dev", 1, 2)],
            ),
        ],
        ..BlockPlan::default()
    };
    Plan { blocks: vec![dev, prod], ..Plan::default() }
}

fn violations_of(mutate: impl FnOnce(&mut Vec<ClusterSnapshot>, &mut Policy, &mut Plan)) -> Vec<Violation> {
    let (mut inventory, mut policy, mut plan) = (inventory(), policy(), plan());
    mutate(&mut inventory, &mut policy, &mut plan);
    validate(&inventory, &policy, &plan)
}

fn prod(plan: &mut Plan) -> &mut BlockPlan {
    plan.blocks.iter_mut().find(|b| b.security_tier == "prod").unwrap()
}

fn dev(plan: &mut Plan) -> &mut BlockPlan {
    plan.blocks.iter_mut().find(|b| b.security_tier == "dev").unwrap()
}

#[track_caller]
fn assert_breaks(violations: &[Violation], rule: Rule) {
    assert!(
        violations.iter().any(|v| v.rule == rule),
        "expected a {rule} violation, got:\n{}",
        violations.iter().map(|v| format!("  {v}\n")).collect::<String>()
    );
}

#[track_caller]
fn assert_only(violations: &[Violation], rule: Rule) {
    assert_breaks(violations, rule);
    let others: Vec<&Violation> = violations.iter().filter(|v| v.rule != rule).collect();
    assert!(others.is_empty(), "expected only {rule} violations, also got {others:#?}");
}

#[test]
fn a_valid_plan_passes() {
    let violations = violations_of(|_, _, _| {});
    assert!(violations.is_empty(), "{}", violations.iter().map(|v| format!("{v}\n")).collect::<String>());
}

#[test]
fn unlisted_zones_host_the_tiers_already_in_them() {
    let violations = violations_of(|_, policy, _| policy.zones.clear());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn an_explained_infeasible_block_passes() {
    let violations = violations_of(|_, _, plan| {
        let dev = dev(plan);
        *dev = BlockPlan {
            datacenter: "fra".into(),
            security_tier: "dev".into(),
            status: BlockStatus::Infeasible,
            explanation: "fra/dev needs 3000m cpu, its allowed zones hold 2400m".into(),
            ..BlockPlan::default()
        };
    });
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn tier_separation_nodes() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).target_clusters[0].nodes_kept.push(node_ref("d1", "d1-w2", "zd"));
    });
    assert_breaks(&violations, Rule::TierSeparation);
    assert!(violations.iter().all(|v| v.security_tier == "prod"));
}

#[test]
fn tier_separation_namespaces() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).waves[1].namespaces.push(move_namespace("d1", "test", "fra-prod", "test", SlaTier::Bronze));
    });
    assert_breaks(&violations, Rule::TierSeparation);
}

#[test]
fn zone_permission() {
    let violations = violations_of(|_, policy, _| {
        policy.zones.insert("zc".into(), ZonePolicy { tiers: vec!["dev".into()] });
    });
    assert_breaks(&violations, Rule::ZonePermission);
    // a zone that hosts nothing (a dmz)
    let violations = violations_of(|_, policy, _| {
        policy.zones.insert("za".into(), ZonePolicy { tiers: vec![] });
    });
    assert_breaks(&violations, Rule::ZonePermission);
}

#[test]
fn capacity_with_headroom() {
    let violations = violations_of(|_, policy, _| policy.headroom.cpu = 0.9);
    assert_only(&violations, Rule::Capacity);
    assert!(violations.iter().any(|v| v.detail.contains("cpu")), "{violations:#?}");
}

#[test]
fn capacity_during_a_wave() {
    // web moves in wave 1, while the target's nodes are still joining
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        let web = block.waves[1].namespaces.remove(0);
        block.waves[0].namespaces.push(web);
    });
    assert_breaks(&violations, Rule::Capacity);
    assert!(
        violations.iter().any(|v| v.rule == Rule::Capacity && v.detail.starts_with("during wave 1, target fra-prod")),
        "{violations:#?}"
    );
}

#[test]
fn capacity_of_a_source_counts_only_workers() {
    // c1 keeps only its control-plane node while web and payments are still there
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        let w3 = block.waves[3].nodes.remove(0);
        block.waves[0].nodes.push(w3);
    });
    assert!(
        violations.iter().any(|v| v.rule == Rule::Capacity && v.detail.contains("source cluster c1")),
        "{violations:#?}"
    );
}

#[test]
fn capacity_figures_must_match_the_replay() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).waves[1].capacity_after[2].requested.cpu_millis += 1;
    });
    assert_only(&violations, Rule::Capacity);
    let violations = violations_of(|_, _, plan| {
        prod(plan).waves[0].capacity_before.remove(0);
    });
    assert_only(&violations, Rule::Capacity);
}

#[test]
fn capacity_after_losing_a_zone() {
    let violations = violations_of(|_, policy, _| policy.survive_zone_loss = true);
    assert_only(&violations, Rule::Capacity);
    assert!(violations.iter().any(|v| v.detail.contains("after losing zone zc")), "{violations:#?}");
}

#[test]
fn budget() {
    let violations = violations_of(|_, policy, _| policy.wave_budget.nodes = 3);
    assert_only(&violations, Rule::Budget);
    let violations = violations_of(|_, policy, _| policy.wave_budget.namespaces = 2);
    assert_only(&violations, Rule::Budget);
}

#[test]
fn sla_order() {
    let violations = violations_of(|_, policy, _| {
        policy.sla_order = vec![SlaTier::Gold, SlaTier::Silver, SlaTier::Bronze];
    });
    assert_only(&violations, Rule::SlaOrder);
}

#[test]
fn control_plane_needs_three_nodes() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).target_clusters[0].control_plane.pop();
    });
    assert_breaks(&violations, Rule::ControlPlaneSpread);
}

#[test]
fn control_plane_needs_three_zones() {
    // c2-w2 (zc) instead of c1-w2 (zb): two nodes in zc
    let violations = violations_of(|_, _, plan| {
        prod(plan).target_clusters[0].control_plane[1] = cp("c2", "c2-w2", "zc");
    });
    assert_breaks(&violations, Rule::ControlPlaneSpread);
    // (the flows change with the control plane's zones too)
    assert!(violations.iter().all(|v| matches!(v.rule, Rule::ControlPlaneSpread | Rule::Flows)));
}

#[test]
fn fewer_than_three_zones_needs_a_note() {
    // zc may host nothing: the block's allowed zones are za and zb
    let violations = violations_of(|_, policy, plan| {
        policy.zones.insert("zc".into(), ZonePolicy { tiers: vec![] });
        prod(plan).target_clusters[0].control_plane_note = String::new();
    });
    assert!(
        violations.iter().any(|v| v.rule == Rule::ControlPlaneSpread && v.detail.contains("control_plane_note")),
        "{violations:#?}"
    );
}

#[test]
fn small_site_runs_k3s() {
    let violations = violations_of(|_, _, plan| dev(plan).target_clusters[0].distribution = "kubeadm".into());
    assert_only(&violations, Rule::ControlPlaneSpread);
    let violations = violations_of(|_, _, plan| dev(plan).target_clusters[0].small_site = false);
    assert_breaks(&violations, Rule::ControlPlaneSpread);
}

#[test]
fn node_kept_and_freed() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).target_clusters[0].nodes_kept.push(node_ref("c1", "c1-w3", "zb"));
    });
    assert_breaks(&violations, Rule::NodeAccounting);
}

#[test]
fn node_in_two_targets() {
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        let mut second = block.target_clusters[0].clone();
        second.name = "fra-prod-2".into();
        block.target_clusters.push(second);
    });
    assert_breaks(&violations, Rule::NodeAccounting);
    assert_breaks(&violations, Rule::MaxNodes);
}

#[test]
fn node_that_never_moves() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).waves[2].nodes.remove(0);
    });
    assert_breaks(&violations, Rule::NodeAccounting);
}

#[test]
fn namespace_lost() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).waves[1].namespaces.remove(0);
    });
    assert_breaks(&violations, Rule::NamespaceAccounting);
}

#[test]
fn platform_namespaces_never_move() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).waves[1].namespaces.push(move_namespace(
            "c1",
            "kube-system",
            "fra-prod",
            "kube-system",
            SlaTier::Bronze,
        ));
    });
    assert_breaks(&violations, Rule::NamespaceAccounting);
}

#[test]
fn renames_must_be_unique() {
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        block.waves[1].namespaces[2].new_name = "payments".into();
        block.namespace_renames.clear();
    });
    assert_only(&violations, Rule::RenameUniqueness);
}

#[test]
fn renames_must_be_labels_and_applied() {
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        block.waves[1].namespaces[2].new_name = "Payments_C2".into();
        block.namespace_renames[0].new_name = "Payments_C2".into();
    });
    assert_only(&violations, Rule::RenameUniqueness);
    // the rename says one thing, the move does another
    let violations = violations_of(|_, _, plan| prod(plan).namespace_renames[0].new_name = "payments-2".into());
    assert_only(&violations, Rule::RenameUniqueness);
    // a collision not reported
    let violations = violations_of(|_, _, plan| prod(plan).namespace_renames[0].collides_with.clear());
    assert_only(&violations, Rule::RenameUniqueness);
}

#[test]
fn retirement_by_the_last_wave() {
    let violations = violations_of(|_, _, plan| prod(plan).waves[3].clusters_retired.clear());
    assert_only(&violations, Rule::Retirement);
}

#[test]
fn control_plane_nodes_move_only_when_retired() {
    // c2-cp freed in wave 2, c2 retired in wave 3
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        let cp = block.waves[2].nodes.remove(1);
        block.waves[1].nodes.push(cp);
        block.waves[1].capacity_after[1] = capacity("c2", 1, 0);
    });
    assert_only(&violations, Rule::Retirement);
}

#[test]
fn retired_while_not_empty() {
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        block.waves[3].clusters_retired.clear();
        block.waves[2].clusters_retired.push("c1".into());
    });
    assert_breaks(&violations, Rule::Retirement);
    // and a cluster of another block
    let violations = violations_of(|_, _, plan| prod(plan).waves[3].clusters_retired.push("d1".into()));
    assert_breaks(&violations, Rule::Retirement);
}

#[test]
fn flows_must_equal_the_required_set() {
    let violations = violations_of(|_, _, plan| {
        prod(plan).firewall_flows.pop();
    });
    assert_only(&violations, Rule::Flows);
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        let mut extra = block.firewall_flows[0].clone();
        extra.ports = "8080".into();
        block.firewall_flows.push(extra);
    });
    assert_only(&violations, Rule::Flows);
    // already open flows must not be listed
    let violations = violations_of(|_, policy, _| {
        policy.open_flows.push(kplan_model::policy::OpenFlow {
            from_zone: "za".into(),
            to_zone: "zb".into(),
            bidirectional: true,
            ..Default::default()
        });
    });
    assert_only(&violations, Rule::Flows);
}

#[test]
fn max_nodes_per_target() {
    let violations = violations_of(|_, policy, _| policy.max_nodes_per_cluster = 3);
    assert_only(&violations, Rule::MaxNodes);
}

#[test]
fn an_infeasible_block_must_explain() {
    let violations = violations_of(|_, _, plan| {
        let dev = dev(plan);
        dev.status = BlockStatus::Infeasible;
        dev.explanation = "  ".into();
    });
    assert_breaks(&violations, Rule::Explanation);
    assert_breaks(&violations, Rule::Structure);
}

#[test]
fn structure() {
    let violations = violations_of(|_, _, plan| prod(plan).waves[2].index = 7);
    assert_only(&violations, Rule::Structure);
    let violations = violations_of(|_, _, plan| prod(plan).target_clusters[0].name = "c1".into());
    assert_breaks(&violations, Rule::Structure);
}

#[test]
fn every_block_is_planned() {
    let violations = violations_of(|_, _, plan| plan.blocks.retain(|b| b.security_tier != "dev"));
    assert_breaks(&violations, Rule::NodeAccounting);
    assert_breaks(&violations, Rule::NamespaceAccounting);
    assert!(violations.iter().all(|v| v.security_tier == "dev"), "{violations:#?}");
}

#[test]
fn violations_display_block_rule_and_detail() {
    let violation =
        Violation { datacenter: "fra".into(), security_tier: "prod".into(), rule: Rule::SlaOrder, detail: "x".into() };
    assert_eq!(violation.to_string(), "fra/prod: sla-order: x");
    let names: BTreeSet<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), Rule::ALL.len());
}

/// A GPU node (tainted, labelled, 4 GPUs) and a workload of 2 pods that need 2
/// GPUs each, tolerate the taint and select the label.
fn make_gpu_node(node: &mut Node) {
    node.taints = vec![kplan_model::scheduling::Taint {
        key: "nvidia.com/gpu".into(),
        value: "present".into(),
        effect: "NoSchedule".into(),
    }];
    node.extended.insert("nvidia.com/gpu".into(), 4);
    node.labels.insert("accelerator".into(), "nvidia".into());
}

fn gpu_training() -> kplan_model::scheduling::PodGroup {
    kplan_model::scheduling::PodGroup {
        owner_kind: "Deployment".into(),
        owner_name: "train".into(),
        replicas: 2,
        requests: Resources::new(500, 1 << 28, 1),
        extended: [("nvidia.com/gpu".to_string(), 2)].into_iter().collect(),
        node_selector: [("accelerator".to_string(), "nvidia".to_string())].into_iter().collect(),
        tolerations: vec![kplan_model::scheduling::Toleration {
            key: "nvidia.com/gpu".into(),
            operator: "Exists".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn with_gpu_pods(inventory: &mut [ClusterSnapshot], gpu_nodes: &[&str]) {
    let c2 = inventory.iter_mut().find(|c| c.cluster_id == "c2").unwrap();
    for node in c2.nodes.iter_mut().filter(|n| gpu_nodes.contains(&n.name.as_str())) {
        make_gpu_node(node);
    }
    c2.namespaces.iter_mut().find(|n| n.name == "api").unwrap().pod_groups = vec![gpu_training()];
}

#[test]
fn a_plan_that_frees_the_gpu_nodes_its_pods_need_is_refused_naming_the_pod() {
    // c2-w3 is the only GPU node, and the plan frees it: api's GPU pods have no node in fra-prod.
    let violations = violations_of(|inventory, _, _| with_gpu_pods(inventory, &["c2-w3"]));
    let pods: Vec<&Violation> = violations.iter().filter(|v| v.rule == Rule::PodPlacement).collect();
    assert!(!pods.is_empty(), "{violations:#?}");
    let text = pods.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("pod api/Deployment/train (2 replicas) has no node in target fra-prod"), "{text}");
    assert!(text.contains("nodeSelector accelerator=nvidia not matched"), "names the filter: {text}");
    assert!(text.contains("during wave 2"), "the move is checked while it happens: {text}");
}

#[test]
fn gpu_pods_with_a_gpu_node_on_each_side_of_their_move_pass() {
    // c2-w2 joins fra-prod in wave 1 (a worker there; c2-w1 is one of its dedicated
    // control-plane nodes); c2-w3 stays in c2 until wave 3, after api has moved.
    let violations = violations_of(|inventory, _, _| with_gpu_pods(inventory, &["c2-w2", "c2-w3"]));
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn condition_taints_say_how_a_node_is_now_and_do_not_count() {
    let violations = violations_of(|inventory, _, _| {
        with_gpu_pods(inventory, &["c2-w2", "c2-w3"]);
        for node in inventory.iter_mut().flat_map(|c| c.nodes.iter_mut()) {
            node.taints.push(kplan_model::scheduling::Taint {
                key: "node.kubernetes.io/not-ready".into(),
                value: String::new(),
                effect: "NoSchedule".into(),
            });
        }
    });
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn more_gpus_than_the_kept_gpu_nodes_hold_is_short_by_name() {
    let violations = violations_of(|inventory, _, _| {
        with_gpu_pods(inventory, &["c2-w2", "c2-w3"]);
        let c2 = inventory.iter_mut().find(|c| c.cluster_id == "c2").unwrap();
        c2.namespaces.iter_mut().find(|n| n.name == "api").unwrap().pod_groups[0].replicas = 3;
    });
    let text = violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");
    assert!(
        text.contains("api/Deployment/train may use are short: nvidia.com/gpu 6 requested, 4 allocatable"),
        "{text}"
    );
}

#[test]
fn nothing_joins_a_target_before_its_control_plane() {
    // c2-w1, a control-plane node of fra-prod, joins in wave 2: c2-w2 joined in wave 1.
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        let position = block.waves[0].nodes.iter().position(|m| m.node == "c2-w1").unwrap();
        let control_plane = block.waves[0].nodes.remove(position);
        block.waves[1].nodes.push(control_plane);
    });
    assert_breaks(&violations, Rule::ControlPlaneFirst);
    let detail = &violations.iter().find(|v| v.rule == Rule::ControlPlaneFirst).unwrap().detail;
    assert!(detail.contains("wave 1") && detail.contains("c2/c2-w2") && detail.contains("(wave 2)"), "{detail}");
    // The namespaces of wave 2 arrive with the control plane, not before it.
    assert!(!detail.contains("web"), "{detail}");

    // A namespace moved in wave 1, before any control-plane node joined.
    let violations = violations_of(|_, _, plan| {
        let block = prod(plan);
        let web = block.waves[1].namespaces.remove(0);
        for m in std::mem::take(&mut block.waves[0].nodes) {
            block.waves[1].nodes.push(m);
        }
        block.waves[0].namespaces.push(web);
    });
    assert!(
        violations.iter().any(|v| v.rule == Rule::ControlPlaneFirst && v.detail.contains("c1/web")),
        "{violations:#?}"
    );
}
