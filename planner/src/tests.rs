//! Tests of `propose` as a whole: hand-made estates with known answers and
//! property tests (every returned plan passes the validator).

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::policy::{OpenFlow, ZonePolicy};
use kplan_model::{
    ClusterFacts, ClusterSnapshot, Namespace, Node, NodeRole, Plan, PreconditionKind, Resources, SlaTier,
};
use proptest::prelude::*;

use super::*;
use crate::class_tests::{gpu_node, gpu_pods, pods, with_pods};

pub(crate) const GIB: u64 = 1 << 30;

pub(crate) fn node(name: &str, datacenter: &str, zone: &str, cores: u64, memory_gib: u64) -> Node {
    Node {
        name: name.to_string(),
        labels: BTreeMap::new(),
        datacenter: datacenter.to_string(),
        zone: zone.to_string(),
        role: NodeRole::Worker,
        allocatable: Resources::new(cores * 1000, memory_gib * GIB, 110),
        kubelet_version: "v1.29.4".to_string(),
        container_runtime: "containerd://1.7.2".to_string(),
        architecture: "amd64".to_string(),
        unschedulable: false,
        taints: Vec::new(),
        extended: Default::default(),
        runtime_handlers: Vec::new(),
    }
}

pub(crate) fn control_plane(mut node: Node) -> Node {
    node.role = NodeRole::ControlPlane;
    node
}

pub(crate) fn namespace(
    name: &str,
    tier: &str,
    sla: SlaTier,
    cpu_millis: u64,
    memory_gib: u64,
    pods: u64,
) -> Namespace {
    Namespace {
        name: name.to_string(),
        labels: BTreeMap::new(),
        security_tier: tier.to_string(),
        sla_tier: sla,
        requests: Resources::new(cpu_millis, memory_gib * GIB, pods),
        pod_groups: Vec::new(),
        applied_prerelease: Vec::new(),
        disruption_budgets: Vec::new(),
    }
}

pub(crate) fn cluster(
    id: &str,
    tier: &str,
    datacenter: &str,
    nodes: Vec<Node>,
    namespaces: Vec<Namespace>,
) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster_id: id.to_string(),
        generation: 1,
        collected_at_unix: 0,
        facts: ClusterFacts {
            datacenter: datacenter.to_string(),
            zone: String::new(),
            security_tier: tier.to_string(),
            kubernetes_version: "v1.29.4".to_string(),
            cni: "calico".to_string(),
            csi_drivers: Vec::new(),
        },
        nodes,
        namespaces,
        isolation: Default::default(),
    }
}

/// `n` workers `<prefix>-<i>` spread round-robin over `zones`.
pub(crate) fn workers(
    prefix: &str,
    datacenter: &str,
    zones: &[&str],
    n: usize,
    cores: u64,
    memory_gib: u64,
) -> Vec<Node> {
    (0..n).map(|i| node(&format!("{prefix}-{i:02}"), datacenter, zones[i % zones.len()], cores, memory_gib)).collect()
}

fn policy_with_zones(zones: &[(&str, &[&str])]) -> Policy {
    let mut policy = Policy::default();
    for (zone, tiers) in zones {
        policy.zones.insert(zone.to_string(), ZonePolicy { tiers: tiers.iter().map(|t| t.to_string()).collect() });
    }
    policy.solver.time_limit_seconds = 10.0;
    policy
}

pub(crate) fn plan(inventory: &[ClusterSnapshot], policy: &Policy) -> Plan {
    let outcome = propose(inventory, policy, &PlanOptions::default()).unwrap();
    let violations = validate::validate(inventory, policy, &outcome.plan);
    assert!(violations.is_empty(), "the validator rejects the plan: {violations:#?}");
    outcome.plan
}

pub(crate) fn block<'p>(plan: &'p Plan, datacenter: &str, tier: &str) -> &'p BlockPlan {
    plan.blocks
        .iter()
        .find(|b| b.datacenter == datacenter && b.security_tier == tier)
        .unwrap_or_else(|| panic!("no block {datacenter}/{tier}"))
}

/// Two prod clusters over zones a, b, c and a dev cluster in zone d of dc1.
fn estate() -> Vec<ClusterSnapshot> {
    let mut prod_a = workers("pa", "dc1", &["a", "b", "c"], 9, 8, 32);
    prod_a.push(control_plane(node("pa-cp", "dc1", "a", 4, 16)));
    let prod_b = workers("pb", "dc1", &["a", "b"], 6, 16, 64);
    let dev = workers("dv", "dc1", &["d"], 5, 8, 32);
    vec![
        cluster(
            "prod-a",
            "prod",
            "dc1",
            prod_a,
            vec![
                namespace("payments", "prod", SlaTier::Gold, 6000, 20, 30),
                namespace("ledger", "prod", SlaTier::Silver, 4000, 10, 20),
                namespace("sandbox", "dev", SlaTier::Bronze, 500, 1, 3),
                namespace("kube-system", "prod", SlaTier::Bronze, 1000, 2, 10),
            ],
        ),
        cluster(
            "prod-b",
            "prod",
            "dc1",
            prod_b,
            vec![
                namespace("payments", "prod", SlaTier::Gold, 8000, 24, 40),
                namespace("batch", "prod", SlaTier::Bronze, 10000, 30, 50),
            ],
        ),
        cluster("dev-1", "dev", "dc1", dev, vec![namespace("tools", "dev", SlaTier::Bronze, 2000, 4, 12)]),
    ]
}

pub(crate) fn estate_policy() -> Policy {
    policy_with_zones(&[("a", &["prod"]), ("b", &["prod"]), ("c", &["prod"]), ("d", &["dev"])])
}

#[test]
fn tiers_stay_separate() {
    let inventory = estate();
    let plan = plan(&inventory, &estate_policy());
    assert_eq!(plan.blocks.len(), 2);
    let prod = block(&plan, "dc1", "prod");
    let dev = block(&plan, "dc1", "dev");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    assert_eq!(dev.status, BlockStatus::Planned, "{}", dev.explanation);
    for node in &prod.target_clusters[0].nodes_kept {
        assert!(node.cluster_id.starts_with("prod-"), "{node:?}");
    }
    for node in &dev.target_clusters[0].nodes_kept {
        assert_eq!(node.cluster_id, "dev-1");
    }
    // The dev namespace of a prod cluster moves with the dev block.
    let moved_to_dev: Vec<&str> =
        dev.waves.iter().flat_map(|w| w.namespaces.iter().map(|n| n.namespace.as_str())).collect();
    assert!(moved_to_dev.contains(&"sandbox"), "{moved_to_dev:?}");
    let moved_to_prod: Vec<&str> =
        prod.waves.iter().flat_map(|w| w.namespaces.iter().map(|n| n.namespace.as_str())).collect();
    assert!(!moved_to_prod.contains(&"sandbox") && !moved_to_prod.contains(&"kube-system"));
    assert!(prod.objective <= prod.greedy_objective + 1e-6, "{} > {}", prod.objective, prod.greedy_objective);
}

#[test]
fn control_plane_spans_three_zones() {
    let inventory = estate();
    let plan = plan(&inventory, &estate_policy());
    let target = &block(&plan, "dc1", "prod").target_clusters[0];
    assert_eq!(target.control_plane.len(), 3);
    let zones: BTreeSet<&str> = target.control_plane.iter().map(|cp| cp.zone.as_str()).collect();
    assert_eq!(zones, BTreeSet::from(["a", "b", "c"]));
    assert!(target.control_plane_note.is_empty());
    assert!(!target.small_site);
    assert_eq!(target.distribution, "kubeadm");
}

#[test]
fn a_block_with_two_zones_gets_a_note() {
    let inventory = vec![cluster(
        "prod-a",
        "prod",
        "dc1",
        workers("pa", "dc1", &["a", "b"], 10, 8, 32),
        vec![namespace("web", "prod", SlaTier::Silver, 8000, 16, 40)],
    )];
    let plan = plan(&inventory, &policy_with_zones(&[("a", &["prod"]), ("b", &["prod"])]));
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let target = &prod.target_clusters[0];
    assert_eq!(target.control_plane.len(), 3);
    let zones: BTreeSet<&str> = target.control_plane.iter().map(|cp| cp.zone.as_str()).collect();
    assert_eq!(zones.len(), 2);
    assert!(target.control_plane_note.contains("only 2 firewall zones"), "{}", target.control_plane_note);
    assert!(prod.explanation.contains("only 2 firewall zones"), "{}", prod.explanation);
}

#[test]
fn a_small_site_gets_one_k3s_server() {
    let inventory = vec![cluster(
        "branch",
        "prod",
        "site9",
        workers("br", "site9", &["x"], 5, 8, 32),
        vec![namespace("pos", "prod", SlaTier::Gold, 4000, 8, 20)],
    )];
    let plan = plan(&inventory, &policy_with_zones(&[("x", &["prod"])]));
    let site = block(&plan, "site9", "prod");
    assert_eq!(site.status, BlockStatus::Planned, "{}", site.explanation);
    let target = &site.target_clusters[0];
    assert!(target.small_site);
    assert_eq!(target.distribution, "k3s");
    assert_eq!(target.control_plane.len(), 1);
    // 4 cores need 5 with headroom; the K3s server counts for workloads: one node.
    assert_eq!(target.nodes_kept.len(), 1);
    assert!(target.control_plane_note.contains("K3s"), "{}", target.control_plane_note);
}

#[test]
fn colliding_namespaces_are_renamed_in_the_moves() {
    let inventory = estate();
    let plan = plan(&inventory, &estate_policy());
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.namespace_renames.len(), 1, "{:?}", prod.namespace_renames);
    let rename = &prod.namespace_renames[0];
    assert_eq!(rename.namespace, "payments");
    let moves: Vec<&kplan_model::NamespaceMove> =
        prod.waves.iter().flat_map(|w| &w.namespaces).filter(|m| m.namespace == "payments").collect();
    assert_eq!(moves.len(), 2);
    let renamed: Vec<&&kplan_model::NamespaceMove> = moves.iter().filter(|m| m.new_name != "payments").collect();
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0].from_cluster, rename.from_cluster);
    assert_eq!(renamed[0].new_name, rename.new_name);
}

#[test]
fn docker_nodes_that_are_kept_need_a_runtime_migration_first() {
    let mut nodes = workers("old", "dc1", &["a", "b", "c"], 6, 16, 64);
    for node in &mut nodes {
        node.container_runtime = "docker://20.10.7".to_string();
    }
    let mut inventory =
        vec![cluster("old", "prod", "dc1", nodes, vec![namespace("app", "prod", SlaTier::Silver, 20000, 40, 60)])];
    inventory[0].facts.kubernetes_version = "v1.23.5".to_string();
    let mut policy = policy_with_zones(&[("a", &["prod"]), ("b", &["prod"]), ("c", &["prod"])]);
    policy.target_kubernetes_version = "v1.29".to_string();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    let migration = prod
        .preconditions
        .iter()
        .find(|p| p.kind == PreconditionKind::RuntimeMigration)
        .unwrap_or_else(|| panic!("no runtime migration in {:#?}", prod.preconditions));
    assert_eq!(migration.cluster_id, "old");
    assert_eq!(migration.before_wave, 1);
    let kept: BTreeSet<&str> = prod.target_clusters[0].nodes_kept.iter().map(|n| n.node.as_str()).collect();
    let listed: BTreeSet<&str> = migration.nodes.iter().map(String::as_str).collect();
    assert_eq!(listed, kept, "only the nodes that join the target migrate");
}

#[test]
fn an_infeasible_block_names_the_resource_and_the_figures() {
    let inventory = vec![cluster(
        "prod-a",
        "prod",
        "dc1",
        workers("pa", "dc1", &["a", "b", "c"], 8, 8, 32),
        vec![namespace("huge", "prod", SlaTier::Gold, 100_000, 10, 10)],
    )];
    let plan = plan(&inventory, &estate_policy());
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Infeasible);
    assert_eq!(prod.solver_status, "infeasible");
    let text = &prod.explanation;
    // 100 cores ÷ (1 - 20%) = 125 cores; 8 × 8 cores less 3 control-plane nodes (24 cores): 40 cores.
    for needle in ["dc1/prod", "cpu", "125 cores", "100 cores", "hold 40 cores", "24 cores", "20%", "short by 85 cores"]
    {
        assert!(text.contains(needle), "{needle:?} missing from {text:?}");
    }
    assert!(prod.waves.is_empty());
}

#[test]
fn conflicting_rules_are_explained() {
    // No zone may host the tier.
    let inventory = vec![cluster(
        "prod-a",
        "prod",
        "dc1",
        workers("pa", "dc1", &["d"], 8, 8, 32),
        vec![namespace("web", "prod", SlaTier::Gold, 1000, 1, 1)],
    )];
    let prod = block(&plan(&inventory, &estate_policy()), "dc1", "prod").clone();
    assert_eq!(prod.status, BlockStatus::Infeasible);
    assert!(
        prod.explanation.contains("may host tier prod") && prod.explanation.contains("zone d"),
        "{}",
        prod.explanation
    );

    // A zero budget.
    let inventory = estate();
    let mut policy = estate_policy();
    policy.wave_budget.nodes = 0;
    // refused by the policy's one rule set, naming the field (as a policy file would be)
    let err = propose(&inventory, &policy, &PlanOptions::default()).unwrap_err();
    assert!(matches!(&err, PlanError::InvalidPolicy(text) if text.contains("wave_budget.nodes")), "{err}");

    // Surviving the loss of the only zone.
    let inventory = vec![cluster(
        "prod-a",
        "prod",
        "dc1",
        workers("pa", "dc1", &["a"], 8, 8, 32),
        vec![namespace("web", "prod", SlaTier::Gold, 1000, 1, 1)],
    )];
    let mut policy = estate_policy();
    policy.survive_zone_loss = true;
    let prod = block(&plan(&inventory, &policy), "dc1", "prod").clone();
    assert_eq!(prod.status, BlockStatus::Infeasible);
    assert!(prod.explanation.contains("survive_zone_loss"), "{}", prod.explanation);
}

#[test]
fn sources_without_slack_make_staging_impossible() {
    // The target can hold the namespace (13 workers and 3 control-plane nodes
    // of 16), but the namespace must fit in the target while it still runs in
    // its source: 2 × 50 cores of 64.
    let inventory = vec![cluster(
        "prod-a",
        "prod",
        "dc1",
        workers("pa", "dc1", &["a", "b", "c"], 16, 4, 32),
        vec![namespace("big", "prod", SlaTier::Gold, 40_000, 4, 10)],
    )];
    let prod = block(&plan(&inventory, &estate_policy()), "dc1", "prod").clone();
    assert_eq!(prod.status, BlockStatus::Infeasible);
    let text = &prod.explanation;
    for needle in ["dc1/prod", "stalls", "big of prod-a", "does not fit", "prod-a still runs 40 cores"] {
        assert!(text.contains(needle), "{needle:?} missing from {text:?}");
    }

    // A source already above its headroom before anything moves.
    let inventory = vec![
        cluster(
            "prod-a",
            "prod",
            "dc1",
            workers("pa", "dc1", &["a"], 2, 4, 32),
            vec![namespace("tight", "prod", SlaTier::Gold, 7000, 4, 10)],
        ),
        cluster("prod-b", "prod", "dc1", workers("pb", "dc1", &["a", "b", "c"], 9, 16, 64), vec![]),
    ];
    let prod = block(&plan(&inventory, &estate_policy()), "dc1", "prod").clone();
    assert_eq!(prod.status, BlockStatus::Infeasible);
    let text = &prod.explanation;
    for needle in
        ["cluster prod-a already runs above its headroom", "7 cores", "80% of its workers' 8 cores is 6.40 cores"]
    {
        assert!(text.contains(needle), "{needle:?} missing from {text:?}");
    }
}

#[test]
fn flows_are_counted_and_open_flows_steer_the_zones() {
    // Four allowed zones of equal capacity; b, c and d have everything open
    // between them. The greedy takes zones by capacity (a, b, c); the model
    // takes the zones whose flows are open.
    let nodes = workers("pa", "dc1", &["a", "b", "c", "d"], 16, 8, 32);
    let inventory =
        vec![cluster("prod-a", "prod", "dc1", nodes, vec![namespace("web", "prod", SlaTier::Gold, 20000, 20, 40)])];
    let mut policy = policy_with_zones(&[("a", &["prod"]), ("b", &["prod"]), ("c", &["prod"]), ("d", &["prod"])]);
    for (from, to) in [("b", "c"), ("b", "d"), ("c", "d")] {
        policy.open_flows.push(OpenFlow {
            from_zone: from.to_string(),
            to_zone: to.to_string(),
            protocol: String::new(),
            ports: String::new(),
            bidirectional: true,
        });
    }
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    let target = &prod.target_clusters[0];
    assert_eq!(target.zones, vec!["b", "c", "d"], "the zones whose flows are open");
    assert!(prod.firewall_flows.is_empty(), "{:?}", prod.firewall_flows);
    // Listed flows are exactly what flows.rs requires for the chosen zones.
    let cp_zones: Vec<String> = target.control_plane.iter().map(|cp| cp.zone.clone()).collect();
    let expected = flows::required_flows(&target.name, &target.zones, &cp_zones, &target.cni, false, &policy);
    assert_eq!(prod.firewall_flows, expected);
    assert!(prod.objective < prod.greedy_objective, "{} vs greedy {}", prod.objective, prod.greedy_objective);
    assert_eq!(prod.solver_status, "optimal");
    assert_eq!(prod.gap, 0.0);

    // Without open flows: three zones, 30 flows (calico ip-in-ip).
    let mut closed = policy.clone();
    closed.open_flows.clear();
    let plan = super::tests::plan(&inventory, &closed);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.target_clusters[0].zones.len(), 3);
    assert_eq!(prod.firewall_flows.len(), 30);
}

#[test]
fn the_plan_is_never_worse_than_greedy_and_its_bound_holds() {
    let inventory = estate();
    let plan = plan(&inventory, &estate_policy());
    for block in &plan.blocks {
        assert!(block.objective <= block.greedy_objective + 1e-6, "{block:#?}");
        assert!(block.lower_bound <= block.objective + 1e-6);
        assert!((0.0..=1.0).contains(&block.gap));
        assert!(["optimal", "gap-limit", "work-limit", "greedy-fallback"].contains(&block.solver_status.as_str()));
    }
    let greedy = propose(&inventory, &estate_policy(), &PlanOptions { greedy_only: true, ..PlanOptions::default() })
        .unwrap()
        .plan;
    for (solved, greedy) in plan.blocks.iter().zip(&greedy.blocks) {
        assert!(solved.objective <= greedy.objective + 1e-6);
        assert_eq!(greedy.solver_status, "greedy-fallback");
    }
}

#[test]
fn the_same_inputs_give_the_same_plan() {
    let inventory = estate();
    let mut reversed = inventory.clone();
    reversed.reverse();
    let strip = |mut plan: Plan| {
        plan.summary.solve_seconds = 0.0;
        for block in &mut plan.blocks {
            block.solve_seconds = 0.0;
        }
        plan
    };
    let first = strip(plan(&inventory, &estate_policy()));
    let second = strip(plan(&inventory, &estate_policy()));
    let third = strip(plan(&reversed, &estate_policy()));
    assert_eq!(first, second);
    assert_eq!(first.blocks, third.blocks);
}

#[test]
fn a_block_over_the_node_limit_gets_several_targets() {
    let nodes = workers("pa", "dc1", &["a", "b", "c"], 40, 4, 16);
    let inventory = vec![cluster(
        "prod-a",
        "prod",
        "dc1",
        nodes,
        (0..6).map(|i| namespace(&format!("app{i}"), "prod", SlaTier::Silver, 12000, 8, 20)).collect(),
    )];
    let mut policy = estate_policy();
    policy.max_nodes_per_cluster = 14;
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    // 72 cores need 90 (23 nodes); with 3 control-plane nodes per target, 3 targets
    // of at most 14; whole namespaces (2 of 12 cores each per target) need 8
    // workers each: 33 nodes.
    assert_eq!(prod.target_clusters.len(), 3);
    assert_eq!(prod.nodes_after, 33);
    assert_eq!(prod.target_clusters[1].name, "dc1-prod-2");
    for target in &prod.target_clusters {
        assert!(target.nodes_kept.len() <= 14);
        assert_eq!(target.control_plane.len(), 3);
    }
}

#[test]
fn budgets_and_sla_order_shape_the_waves() {
    let inventory = estate();
    let mut policy = estate_policy();
    policy.wave_budget.nodes = 4;
    policy.wave_budget.namespaces = 1;
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let mut last_rank = 0;
    for wave in &prod.waves {
        assert!(wave.nodes.len() <= 4 && wave.namespaces.len() <= 1);
        for ns in &wave.namespaces {
            let rank = policy.sla_order.iter().position(|&t| t == ns.sla_tier).unwrap();
            assert!(rank >= last_rank, "{} moves after a more critical tier", ns.namespace);
            last_rank = rank;
        }
    }
    // 16 nodes at 4 per wave, 4 namespaces at 1 per wave from wave 2 on.
    assert!(prod.waves.len() >= 6);
}

#[test]
fn models_are_written_when_asked() {
    let inventory = estate();
    let options = PlanOptions { write_models: true, ..PlanOptions::default() };
    let outcome = propose(&inventory, &estate_policy(), &options).unwrap();
    let names: Vec<&str> = outcome.models.iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"dc1-prod.composition"), "{names:?}");
    let model = outcome.models.iter().find(|m| m.name == "dc1-prod.composition").unwrap();
    let parsed = mps::parse_mps(&model.mps).unwrap();
    assert!(parsed.n_integer() > 0);
}

#[test]
fn input_errors_are_errors_not_plans() {
    assert_eq!(propose(&[], &Policy::default(), &PlanOptions::default()), Err(PlanError::EmptyInventory));
    let mut twice = estate();
    twice.push(twice[0].clone());
    assert!(matches!(
        propose(&twice, &estate_policy(), &PlanOptions::default()),
        Err(PlanError::InvalidInventory { .. })
    ));
    let mut policy = estate_policy();
    policy.headroom.cpu = 1.0;
    assert!(matches!(propose(&estate(), &policy, &PlanOptions::default()), Err(PlanError::InvalidPolicy(_))));
    let options = PlanOptions { block_filter: Some(BlockFilter::parse("nowhere/")), ..PlanOptions::default() };
    assert!(matches!(propose(&estate(), &estate_policy(), &options), Err(PlanError::NoBlockMatches(_))));
}

// Property: for random small inventories and policies, every plan passes the
// validator and every infeasible block says why.

fn arbitrary_cluster(index: usize) -> impl Strategy<Value = ClusterSnapshot> {
    let shapes = prop::sample::select(vec![(2u64, 4u64), (4, 16), (8, 32), (16, 64)]);
    let node_strategy = (
        prop::sample::select(vec!["dc1", "dc1", "dc2"]),
        prop::sample::select(vec!["a", "b", "c", "d"]),
        shapes,
        any::<bool>(),
    );
    let namespace_strategy = (
        prop::sample::select(vec!["web", "api", "db", "batch", "payments", "kube-system"]),
        prop::sample::select(vec!["prod", "prod", "prod", "dev"]),
        prop::sample::select(vec![SlaTier::Bronze, SlaTier::Silver, SlaTier::Gold]),
        0u64..6000,
        0u64..12,
        0u64..40,
    );
    (
        prop::sample::select(vec!["prod", "dev"]),
        prop::collection::vec(node_strategy, 1..10),
        prop::collection::vec(namespace_strategy, 0..6),
    )
        .prop_map(move |(tier, nodes, namespaces)| {
            let id = format!("c{index}");
            let nodes: Vec<Node> = nodes
                .into_iter()
                .enumerate()
                .map(|(i, (dc, zone, (cores, memory), is_control_plane))| {
                    let n = node(&format!("{id}-n{i}"), dc, zone, cores, memory);
                    if is_control_plane && i % 3 == 0 { control_plane(n) } else { n }
                })
                .collect();
            let mut seen = BTreeSet::new();
            let namespaces: Vec<Namespace> = namespaces
                .into_iter()
                .filter(|(name, ..)| seen.insert(*name))
                .map(|(name, ns_tier, sla, cpu, memory, pods)| {
                    let ns_tier = if ns_tier == "dev" { "dev" } else { tier };
                    namespace(name, ns_tier, sla, cpu, memory, pods)
                })
                .collect();
            cluster(&id, tier, "dc1", nodes, namespaces)
        })
}

fn arbitrary_inventory() -> impl Strategy<Value = Vec<ClusterSnapshot>> {
    (1usize..4).prop_flat_map(|n| (0..n).map(arbitrary_cluster).collect::<Vec<_>>())
}

fn arbitrary_policy() -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(vec![0.1, 0.2, 0.3]),
        1u64..12,
        1u64..6,
        any::<bool>(),
        prop::sample::select(vec![0u64, 3, 6]),
        prop::sample::select(vec![0usize, 1, 2]),
        prop::sample::select(vec![4u64, 5000]),
    )
        .prop_map(|(headroom, node_budget, namespace_budget, survive, small, zoning, max_nodes)| {
            let mut policy = match zoning {
                0 => Policy::default(),
                1 => policy_with_zones(&[("a", &["prod"]), ("b", &["prod"]), ("c", &["prod", "dev"]), ("d", &["dev"])]),
                _ => {
                    let mut p = policy_with_zones(&[("a", &["prod"]), ("b", &["dev"])]);
                    p.open_flows.push(OpenFlow {
                        from_zone: "a".into(),
                        to_zone: "c".into(),
                        protocol: "tcp".into(),
                        ports: String::new(),
                        bidirectional: true,
                    });
                    p
                }
            };
            policy.headroom.cpu = headroom;
            policy.headroom.memory = headroom;
            policy.headroom.pods = headroom;
            policy.wave_budget.nodes = node_budget;
            policy.wave_budget.namespaces = namespace_budget;
            policy.survive_zone_loss = survive;
            // The policy's rules: a small site is smaller than the largest target.
            policy.small_site_max_nodes = small.min(max_nodes.saturating_sub(1));
            policy.max_nodes_per_cluster = max_nodes;
            policy.solver.time_limit_seconds = 5.0;
            policy
        })
}

/// A single (dc1, prod) block of `n_clusters` sources with `nodes_per_cluster`
/// nodes each, over five zones, three shapes, 20 namespaces per cluster.
pub(crate) fn large_block(n_clusters: usize, nodes_per_cluster: usize, seed: u64) -> Vec<ClusterSnapshot> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let zones = ["z1", "z2", "z3", "z4", "z5"];
    let shapes = [(8u64, 32u64), (16, 64), (32, 128)];
    (0..n_clusters)
        .map(|c| {
            let id = format!("src{c:03}");
            let shape = shapes[next(3) as usize];
            let shape2 = shapes[next(3) as usize];
            let first_zone = next(5) as usize;
            let span = 1 + next(3) as usize;
            let mut nodes: Vec<Node> = (0..nodes_per_cluster)
                .map(|i| {
                    let zone = zones[(first_zone + i % span) % 5];
                    let (cores, memory) = if i % 4 == 3 { shape2 } else { shape };
                    node(&format!("{id}-w{i:03}"), "dc1", zone, cores, memory)
                })
                .collect();
            for k in 0..3 {
                nodes.push(control_plane(node(
                    &format!("{id}-cp{k}"),
                    "dc1",
                    zones[(first_zone + k % span) % 5],
                    4,
                    16,
                )));
            }
            let capacity = nodes_per_cluster as u64 * shape.0 * 1000;
            let utilisation = 35 + next(30); // percent
            let total = capacity * utilisation / 100;
            let namespaces = (0..20)
                .map(|k| {
                    let sla = [SlaTier::Bronze, SlaTier::Silver, SlaTier::Gold][next(3) as usize];
                    let cpu = total / 20;
                    namespace(&format!("app{k:02}"), "prod", sla, cpu, cpu / 250, 10 + next(30))
                })
                .collect();
            cluster(&id, "prod", "dc1", nodes, namespaces)
        })
        .collect()
}

#[test]
#[ignore = "a timing experiment: cargo test --release -- --ignored --nocapture"]
fn time_a_large_block() {
    for (n_clusters, nodes_per_cluster, survive) in [(20, 25, false), (60, 33, false), (60, 33, true), (150, 33, true)]
    {
        let inventory = large_block(n_clusters, nodes_per_cluster, 7);
        let mut policy = policy_with_zones(&[
            ("z1", &["prod"]),
            ("z2", &["prod"]),
            ("z3", &["prod"]),
            ("z4", &["prod"]),
            ("z5", &["prod"]),
        ]);
        policy.survive_zone_loss = survive;
        policy.open_flows.push(OpenFlow {
            from_zone: "z4".into(),
            to_zone: "z5".into(),
            protocol: String::new(),
            ports: String::new(),
            bidirectional: true,
        });
        let started = std::time::Instant::now();
        let outcome = propose(&inventory, &policy, &PlanOptions::default()).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let block = &outcome.plan.blocks[0];
        eprintln!(
            "{} nodes, {} namespaces: {:.2} s, status {}, solver {}, kept {}, flows {}, waves {}, objective {}, greedy {}, bound {}, gap {:.2e}",
            block.nodes_before,
            n_clusters * 20,
            seconds,
            serde_json::to_string(&block.status).unwrap(),
            block.solver_status,
            block.nodes_after,
            block.firewall_flows.len(),
            block.waves.len(),
            block.objective,
            block.greedy_objective,
            block.lower_bound,
            block.gap
        );
        if block.status != BlockStatus::Planned {
            eprintln!("{}", block.explanation);
        }
    }
}

#[test]
fn the_greedy_schedule_satisfies_the_waves_model() {
    for (inventory, policy) in [(estate(), estate_policy())] {
        let blocks = blocks::partition(&inventory, &policy);
        let zone_tiers = ZoneTiers::from_inventory(&inventory);
        for block in &blocks {
            let ctx = context::BlockContext::new(&inventory, &policy, block, &zone_tiers);
            let composition = greedy::greedy_composition(&ctx.input).unwrap();
            let realized = realize::realize(&ctx, composition).unwrap();
            let model = waves::WavesModel::build(
                "t",
                &ctx.data,
                &realized.assignment,
                ctx.n_sources(),
                &ctx.headroom,
                ctx.budget,
                realized.schedule.n_waves,
            );
            let values = model.encode(&ctx.data, &realized.schedule).unwrap();
            assert_eq!(model.model.first_violation(&values, 1e-9), None, "{}", block.key);
            assert_eq!(model.decode(&ctx.data, &values), realized.schedule);
        }
    }
}

/// The same estates with pods: some nodes become tainted GPU nodes or get a
/// `disk=ssd` label, and every namespace's demand becomes pod groups, some of
/// them asking for GPUs, some selecting `disk=ssd`, some one large pod.
fn arbitrary_pod_inventory() -> impl Strategy<Value = Vec<ClusterSnapshot>> {
    (arbitrary_inventory(), 0u64..12, 1u64..5).prop_map(|(mut inventory, seed, gpus)| {
        for (c, cluster) in inventory.iter_mut().enumerate() {
            for (i, n) in cluster.nodes.iter_mut().enumerate() {
                if n.role != NodeRole::Worker {
                    continue;
                }
                n.labels.insert("kubernetes.io/hostname".into(), n.name.clone());
                match (i as u64 + c as u64 + seed) % 5 {
                    0 => {
                        let name = n.name.clone();
                        let (dc, zone) = (n.datacenter.clone(), n.zone.clone());
                        *n = gpu_node(&name, &zone);
                        n.datacenter = dc;
                    }
                    1 => {
                        n.labels.insert("disk".into(), "ssd".into());
                    }
                    _ => {}
                }
            }
            let cluster_workers: Vec<String> = cluster
                .nodes
                .iter()
                .filter(|n| n.role == NodeRole::Worker && n.taints.is_empty())
                .map(|n| n.name.clone())
                .collect();
            for (j, ns) in cluster.namespaces.iter_mut().enumerate() {
                if ns.requests.pods == 0 {
                    continue;
                }
                let r = ns.requests;
                let n = r.pods;
                let mut groups = vec![kplan_model::scheduling::PodGroup {
                    owner_kind: "Deployment".into(),
                    owner_name: "app".into(),
                    replicas: n,
                    requests: Resources::new(r.cpu_millis / n, r.memory_bytes / n, 1),
                    ..Default::default()
                }];
                let first_worker = cluster_workers.get(j % cluster_workers.len().max(1)).cloned();
                match (j as u64 + seed) % 5 {
                    0 => groups.push(gpu_pods("train", 1, gpus)),
                    1 => groups[0].node_selector.insert("disk".into(), "ssd".into()).map_or((), |_| ()),
                    2 => groups.push(pods("big", 1, 6000, 20)),
                    3 => {
                        // A database whose data is on one worker's local disk.
                        if let Some(host) = first_worker {
                            groups.push(crate::volume_tests::database_on(&host));
                        }
                    }
                    _ => {}
                }
                *ns = with_pods(ns.clone(), groups);
            }
        }
        inventory
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Issue 17: every plan holds pod by pod, and a refused block says which
    /// pods and why.
    #[test]
    fn every_plan_with_pods_passes_the_pod_level_validator(
        inventory in arbitrary_pod_inventory(),
        policy in arbitrary_policy(),
        migrate in any::<bool>(),
    ) {
        let local_volumes = if migrate {
            kplan_model::policy::LocalVolumes::MigrateData
        } else {
            kplan_model::policy::LocalVolumes::KeepNode
        };
        let policy = Policy { local_volumes, ..policy };
        let outcome = propose(&inventory, &policy, &PlanOptions::default()).unwrap();
        let violations = validate::validate(&inventory, &policy, &outcome.plan);
        prop_assert!(violations.is_empty(), "{:#?}", violations);
        for block in &outcome.plan.blocks {
            if block.status == BlockStatus::Infeasible {
                let name = format!("{}/{}", block.datacenter, block.security_tier);
                prop_assert!(block.explanation.contains(&name), "{}", block.explanation);
            }
        }
    }

    #[test]
    fn every_plan_passes_the_validator(inventory in arbitrary_inventory(), policy in arbitrary_policy()) {
        let outcome = propose(&inventory, &policy, &PlanOptions::default()).unwrap();
        let violations = validate::validate(&inventory, &policy, &outcome.plan);
        prop_assert!(violations.is_empty(), "{:#?}", violations);
        for block in &outcome.plan.blocks {
            match block.status {
                BlockStatus::Infeasible => {
                    prop_assert!(!block.explanation.trim().is_empty());
                    let name = format!("{}/{}", block.datacenter, block.security_tier);
                    prop_assert!(block.explanation.contains(&name), "{}", block.explanation);
                }
                BlockStatus::Planned => {
                    prop_assert!(block.objective <= block.greedy_objective + 1e-6 || block.greedy_objective == 0.0);
                    prop_assert!(block.lower_bound <= block.objective + 1e-6);
                }
            }
        }
    }
}

/// A namespace moving from v1.23 to a v1.28 target with a CronJob last applied
/// as `batch/v1beta1`: the `removed-apis` precondition names the object.
#[test]
fn the_removed_apis_precondition_names_objects_applied_with_them() {
    let mut old_nodes = workers("old-w", "dc1", &["a", "b", "c"], 3, 8, 32);
    old_nodes.push(control_plane(node("old-cp", "dc1", "a", 4, 16)));
    for n in &mut old_nodes {
        n.kubelet_version = "v1.23.17".into();
    }
    let mut payments = namespace("payments", "prod", SlaTier::Gold, 1000, 2, 2);
    payments.applied_prerelease = vec![kplan_model::AppliedObject {
        api_version: "batch/v1beta1".into(),
        kind: "CronJob".into(),
        name: "nightly".into(),
    }];
    let mut old = cluster("old", "prod", "dc1", old_nodes, vec![payments]);
    old.facts.kubernetes_version = "v1.23.17".into();
    let mut new_nodes = workers("new-w", "dc1", &["a", "b", "c"], 3, 8, 32);
    new_nodes.push(control_plane(node("new-cp", "dc1", "a", 4, 16)));
    let new = cluster("new", "prod", "dc1", new_nodes, vec![namespace("ledger", "prod", SlaTier::Gold, 1000, 2, 2)]);
    let policy = Policy { target_kubernetes_version: "v1.28".into(), ..Policy::default() };
    let plan = plan(&[old, new], &policy);
    let removed: Vec<&str> = block(&plan, "dc1", "prod")
        .preconditions
        .iter()
        .filter(|p| p.kind == PreconditionKind::RemovedApis)
        .map(|p| p.detail.as_str())
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(
        removed[0].ends_with("last applied (kubectl) with a removed api: payments/CronJob/nightly (batch/v1beta1)"),
        "{}",
        removed[0]
    );
}
