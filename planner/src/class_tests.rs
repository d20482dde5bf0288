//! Placement classes (issue 17): GPU, tainted, selected and big-pod nodes
//! are kept where pods need them, and handed over in stages.

use kplan_model::{BlockStatus, ClusterSnapshot, Namespace, Node, Resources, SlaTier};

use crate::tests::{GIB, block, cluster, control_plane, estate_policy, namespace, node, plan, workers};

pub(crate) fn gpu_node(name: &str, zone: &str) -> Node {
    let mut n = node(name, "dc1", zone, 16, 64);
    n.labels.insert("accelerator".into(), "nvidia".into());
    n.extended.insert("nvidia.com/gpu".into(), 4);
    n.taints.push(kplan_model::scheduling::Taint {
        key: "nvidia.com/gpu".into(),
        value: "present".into(),
        effect: "NoSchedule".into(),
    });
    n
}

pub(crate) fn pods(owner: &str, replicas: u64, cpu_millis: u64, memory_gib: u64) -> kplan_model::scheduling::PodGroup {
    kplan_model::scheduling::PodGroup {
        owner_kind: "Deployment".into(),
        owner_name: owner.into(),
        replicas,
        requests: Resources::new(cpu_millis, memory_gib * GIB, 1),
        ..Default::default()
    }
}

pub(crate) fn gpu_pods(owner: &str, replicas: u64, gpus: u64) -> kplan_model::scheduling::PodGroup {
    let mut group = pods(owner, replicas, 1000, 2);
    group.extended.insert("nvidia.com/gpu".into(), gpus);
    group.node_selector.insert("accelerator".into(), "nvidia".into());
    group.tolerations.push(kplan_model::scheduling::Toleration {
        key: "nvidia.com/gpu".into(),
        operator: "Exists".into(),
        ..Default::default()
    });
    group
}

pub(crate) fn with_pods(mut ns: Namespace, groups: Vec<kplan_model::scheduling::PodGroup>) -> Namespace {
    let sum = groups.iter().fold(Resources::ZERO, |acc, g| {
        acc.saturating_add(Resources::new(
            g.requests.cpu_millis * g.replicas,
            g.requests.memory_bytes * g.replicas,
            g.replicas,
        ))
    });
    ns.requests = sum;
    ns.pod_groups = groups;
    ns
}

/// `big-b`: four large plain workers (64 cores, 256 GiB) in zones a, b, c,
/// three small infrastructure workers (one per zone: what the target's
/// control plane is built from, before anything joins it) and a
/// control-plane node, running `shop/api` (6 × 4 cores, 8 GiB): cheaper per
/// core than any small or special node beside it.
pub(crate) fn big_b() -> ClusterSnapshot {
    let mut big = workers("b-w", "dc1", &["a", "b", "c"], 4, 64, 256);
    big.extend(workers("b-infra", "dc1", &["a", "b", "c"], 3, 4, 16));
    for n in &mut big {
        n.labels.insert("kubernetes.io/hostname".into(), n.name.clone());
    }
    big.push(control_plane(node("b-cp", "dc1", "b", 4, 16)));
    cluster(
        "big-b",
        "prod",
        "dc1",
        big,
        vec![with_pods(namespace("shop", "prod", SlaTier::Silver, 0, 0, 0), vec![pods("api", 6, 4000, 8)])],
    )
}

/// `gpu-a`: two tainted GPU nodes and one small worker, training pods that
/// need 4 GPUs in all; `big-b`: large plain nodes that hold everything else
/// more cheaply. Sum-only planning keeps the big nodes and frees the GPU nodes.
fn gpu_estate(training_replicas: u64) -> Vec<ClusterSnapshot> {
    let mut gpu = vec![gpu_node("a-gpu-1", "a"), gpu_node("a-gpu-2", "b"), node("a-w-1", "dc1", "c", 8, 32)];
    gpu.push(control_plane(node("a-cp", "dc1", "a", 4, 16)));
    vec![
        cluster(
            "gpu-a",
            "prod",
            "dc1",
            gpu,
            vec![
                with_pods(
                    namespace("ml", "prod", SlaTier::Silver, 0, 0, 0),
                    vec![gpu_pods("train", training_replicas, 2)],
                ),
                with_pods(namespace("web", "prod", SlaTier::Silver, 0, 0, 0), vec![pods("front", 2, 1000, 2)]),
            ],
        ),
        big_b(),
    ]
}

#[test]
fn the_planner_keeps_the_gpu_nodes_the_training_pods_need() {
    let inventory = gpu_estate(2);
    let plan = plan(&inventory, &estate_policy());
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let kept: Vec<&str> = prod.target_clusters[0].nodes_kept.iter().map(|n| n.node.as_str()).collect();
    let kept_gpus = kept.iter().filter(|n| n.contains("gpu")).count();
    // 2 pods × 2 GPUs: one 4-GPU node, not none, and not both (the second one
    // only serves the hand-over).
    assert_eq!(kept_gpus, 1, "kept {kept:?}");
    // The control plane is built from plain workers (the small infrastructure
    // ones), never from the GPU node the pods need, and joins first.
    let control_plane: Vec<&str> = prod.target_clusters[0].control_plane.iter().map(|c| c.node.as_str()).collect();
    assert!(control_plane.iter().all(|n| n.starts_with("b-infra")), "control plane {control_plane:?}");
    let first_joins: Vec<&str> = prod.waves[0].nodes.iter().map(|n| n.node.as_str()).collect();
    assert!(control_plane.iter().all(|n| first_joins.contains(n)), "wave 1 moves {first_joins:?}");
    // The training pods move after a GPU node joined the target and before the
    // other one leaves the source.
    let wave_of_node = |name: &str| prod.waves.iter().position(|w| w.nodes.iter().any(|n| n.node == name));
    let wave_of_namespace =
        |name: &str| prod.waves.iter().position(|w| w.namespaces.iter().any(|n| n.namespace == name)).unwrap();
    let ml = wave_of_namespace("ml");
    let (first, second) = {
        let mut gpu_waves = [wave_of_node("a-gpu-1").unwrap(), wave_of_node("a-gpu-2").unwrap()];
        gpu_waves.sort();
        (gpu_waves[0], gpu_waves[1])
    };
    assert!(first < ml && ml < second, "GPU nodes in waves {first}, {second}; ml in {ml}");
}

#[test]
fn one_gpu_node_cannot_be_handed_over_and_the_explanation_says_why() {
    let mut inventory = gpu_estate(2);
    // One GPU node only: the pods need it in the source until they move and in
    // the target from the moment they arrive.
    inventory[0].nodes.retain(|n| n.name != "a-gpu-2");
    let plan = plan(&inventory, &estate_policy());
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Infeasible);
    let text = &prod.explanation;
    assert!(text.contains("ml/Deployment/train"), "{text}");
    assert!(text.contains("nvidia.com/gpu"), "{text}");
    assert!(text.contains("temporary buffer node"), "{text}");
}

#[test]
fn pods_without_any_node_are_named_before_any_solve() {
    let mut inventory = gpu_estate(2);
    // 8 GPUs per pod: no node has that many.
    inventory[0].namespaces[0].pod_groups[0].extended.insert("nvidia.com/gpu".into(), 8);
    let plan = plan(&inventory, &estate_policy());
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Infeasible);
    assert!(
        prod.explanation.contains("pod ml/Deployment/train (2 replicas) has no node in the block"),
        "{}",
        prod.explanation
    );
    assert!(prod.explanation.contains("nvidia.com/gpu: 8 needed per pod, 4 allocatable"), "{}", prod.explanation);
}

/// `small`: nine 16-core nodes running small pods; `large`: `n_large`
/// 48-core nodes running two 20-core pods of `engine_memory_gib` each.
fn small_and_large(n_large: usize, engine_memory_gib: u64) -> Vec<ClusterSnapshot> {
    let mut small = workers("s-w", "dc1", &["a", "b", "c"], 9, 16, 64);
    small.push(control_plane(node("s-cp", "dc1", "a", 4, 16)));
    let mut large = workers("l-w", "dc1", &["a", "b", "c"], n_large, 48, 192);
    large.push(control_plane(node("l-cp", "dc1", "b", 4, 16)));
    vec![
        cluster(
            "small",
            "prod",
            "dc1",
            small,
            vec![with_pods(namespace("web", "prod", SlaTier::Silver, 0, 0, 0), vec![pods("front", 10, 2000, 4)])],
        ),
        cluster(
            "large",
            "prod",
            "dc1",
            large,
            vec![with_pods(
                namespace("risk", "prod", SlaTier::Silver, 0, 0, 0),
                vec![pods("engine", 2, 20000, engine_memory_gib)],
            )],
        ),
    ]
}

#[test]
fn a_pod_too_big_for_small_nodes_counts_only_on_big_ones() {
    // Three 20-core pods fit only the 48-core nodes; the 16-core nodes hold
    // far more cores in all, but none of them can run one such pod.
    let inventory = small_and_large(4, 100);
    let plan = plan(&inventory, &estate_policy());
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    // 40 cores with 20% headroom need 50: two 48-core nodes, whatever the
    // small nodes hold in all.
    let kept_large = prod.target_clusters[0].nodes_kept.iter().filter(|n| n.node.starts_with("l-w")).count();
    assert!(kept_large >= 2, "{:?}", prod.target_clusters[0].nodes_kept);
}

#[test]
fn a_namespace_too_big_to_move_in_one_piece_moves_in_parts() {
    // Two 20-core pods on three 48-core nodes: in one piece, with 20%
    // headroom, the target needs two big nodes before the pods arrive and the
    // source two until they leave. A pod at a time, one node each suffices.
    let inventory = small_and_large(3, 50);
    let policy = estate_policy();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    // Only the namespace that must: risk (2 × 20 cpu of 3 × 48), not web (10 × 2 cpu of 9 × 16).
    assert!(
        prod.explanation.contains("its largest namespace moves in parts") && prod.explanation.contains("large/risk ("),
        "{}",
        prod.explanation
    );
    assert!(!prod.waves.iter().flat_map(|w| &w.namespaces).any(|m| m.namespace == "web" && m.part.is_some()));
    let parts: Vec<(u64, u32, u64)> = prod
        .waves
        .iter()
        .flat_map(|w| w.namespaces.iter().map(move |m| (w.index, m)))
        .filter(|(_, m)| m.namespace == "risk")
        .map(|(wave, m)| {
            let part = m.part.as_ref().expect("risk moves in parts");
            (wave, part.index, part.workloads.iter().map(|w| w.replicas).sum())
        })
        .collect();
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts[0].0 < parts[1].0 && parts[0].1 == 1 && parts[1].1 == 2, "{parts:?}");
    assert!(parts.iter().all(|p| p.2 == 1), "one engine pod per part: {parts:?}");
    // The validator accepted it; a plan that moves both parts in one wave is refused.
    let mut tampered = plan.clone();
    let prod = tampered.blocks.iter_mut().find(|b| b.security_tier == "prod").expect("prod");
    let (first, _, _) = parts[0];
    let moved: Vec<_> = prod
        .waves
        .iter_mut()
        .flat_map(|w| {
            let taken: Vec<_> = w.namespaces.iter().filter(|m| m.namespace == "risk").cloned().collect();
            w.namespaces.retain(|m| m.namespace != "risk");
            taken
        })
        .collect();
    prod.waves[first as usize - 1].namespaces.extend(moved);
    let violations = crate::validate::validate(&inventory, &policy, &tampered);
    assert!(
        violations.iter().any(|v| v.detail.contains("part 2 moves in wave") && v.detail.contains("risk")),
        "{violations:?}"
    );
}

#[test]
fn a_block_that_cannot_be_staged_says_at_which_headroom_it_can_and_a_rerun_proves_it() {
    // As above, with moves in parts turned off: with 20% headroom the target
    // needs two big nodes before the pods arrive and the source two until they
    // leave (one holds 38.4 cores); with 15% one each suffices.
    let inventory = small_and_large(3, 50);
    let mut policy = estate_policy();
    policy.parts.enabled = false;
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Infeasible);
    assert!(prod.explanation.contains("risk/Deployment/engine"), "{}", prod.explanation);
    let level: f64 = prod
        .explanation
        .split("feasible if the headroom is at most ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no relaxation in {}", prod.explanation));
    assert_eq!(level, 15.0, "{}", prod.explanation);
    let mut relaxed = policy.clone();
    relaxed.headroom.cpu = level / 100.0;
    relaxed.headroom.memory = level / 100.0;
    relaxed.headroom.pods = level / 100.0;
    let again = self::plan(&inventory, &relaxed);
    assert_eq!(block(&again, "dc1", "prod").status, BlockStatus::Planned);
}

#[test]
fn with_several_targets_the_gpu_pods_go_where_the_gpu_node_is() {
    // 110 cores of web and shop pods need more nodes than one target may have
    // (8), so the block gets two targets; the training pods need one GPU
    // node, which only one of them can keep.
    let mut nodes = workers("w", "dc1", &["a", "b", "c"], 14, 16, 64);
    nodes.extend([gpu_node("gpu-1", "a"), gpu_node("gpu-2", "b")]);
    nodes.push(control_plane(node("cp", "dc1", "c", 4, 16)));
    let mut other = workers("v", "dc1", &["a", "b", "c"], 10, 16, 64);
    other.push(control_plane(node("cp2", "dc1", "a", 4, 16)));
    let inventory = vec![
        cluster(
            "one",
            "prod",
            "dc1",
            nodes,
            vec![
                with_pods(namespace("web", "prod", SlaTier::Silver, 0, 0, 0), vec![pods("front", 60, 1000, 2)]),
                with_pods(namespace("ml", "prod", SlaTier::Silver, 0, 0, 0), vec![gpu_pods("train", 2, 2)]),
            ],
        ),
        cluster(
            "two",
            "prod",
            "dc1",
            other,
            vec![with_pods(namespace("shop", "prod", SlaTier::Silver, 0, 0, 0), vec![pods("api", 50, 1000, 2)])],
        ),
    ];
    let mut policy = estate_policy();
    policy.max_nodes_per_cluster = 8;
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    assert!(prod.target_clusters.len() >= 2, "{} targets", prod.target_clusters.len());
    let ml_target = prod
        .waves
        .iter()
        .flat_map(|w| &w.namespaces)
        .find(|m| m.namespace == "ml")
        .map(|m| m.to_cluster.clone())
        .expect("ml moves");
    let with_gpu: Vec<&str> = prod
        .target_clusters
        .iter()
        .filter(|t| t.nodes_kept.iter().any(|n| n.node.starts_with("gpu")))
        .map(|t| t.name.as_str())
        .collect();
    assert!(with_gpu.contains(&ml_target.as_str()), "ml goes to {ml_target}, GPU nodes are in {with_gpu:?}");
}

/// `small_and_large` with a PodDisruptionBudget on the web pods.
fn with_budget(min_available: &str, max_unavailable: &str) -> Vec<ClusterSnapshot> {
    let mut inventory = small_and_large(4, 50);
    inventory[0].namespaces[0].disruption_budgets = vec![kplan_model::scheduling::DisruptionBudget {
        name: "front".into(),
        min_available: min_available.into(),
        max_unavailable: max_unavailable.into(),
        workloads: vec!["Deployment/front".into()],
    }];
    inventory
}

#[test]
fn a_disruption_budget_moves_a_namespace_a_few_replicas_at_a_time() {
    // maxUnavailable 40% of 10 front pods: 4 at a time, in 3 parts.
    let inventory = with_budget("", "40%");
    let policy = estate_policy();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let parts: Vec<(u64, u64)> = prod
        .waves
        .iter()
        .flat_map(|w| w.namespaces.iter().map(move |m| (w.index, m)))
        .filter(|(_, m)| m.namespace == "web")
        .map(|(wave, m)| (wave, m.part.as_ref().expect("in parts").workloads[0].replicas))
        .collect();
    assert_eq!(parts.iter().map(|p| p.1).collect::<Vec<_>>(), [4, 4, 2], "{parts:?}");
    assert!(parts.windows(2).all(|w| w[0].0 < w[1].0), "one part per wave, in order: {parts:?}");
    assert!(prod.preconditions.iter().all(|p| p.kind != kplan_model::PreconditionKind::DisruptionBudget));

    // Two parts folded into one wave's single part take 8 pods down at once.
    let mut tampered = plan.clone();
    let prod = tampered.blocks.iter_mut().find(|b| b.security_tier == "prod").expect("prod");
    let mut seen = 0;
    for wave in &mut prod.waves {
        for m in wave.namespaces.iter_mut().filter(|m| m.namespace == "web") {
            seen += 1;
            if seen == 1 {
                m.part.as_mut().expect("part").workloads[0].replicas = 8;
            }
        }
    }
    let violations = crate::validate::validate(&inventory, &policy, &tampered);
    assert!(
        violations.iter().any(|v| v.rule == crate::validate::Rule::DisruptionBudget
            && v.detail.contains("moves 8 pods of PodDisruptionBudget small/web/front")),
        "{violations:?}"
    );
}

#[test]
fn a_budget_that_allows_no_disruption_is_a_precondition_the_validator_requires() {
    // minAvailable 10 of 10: no pod may go; the plan moves them in at most
    // max_parts parts and says which budget to relax.
    let inventory = with_budget("10", "");
    let policy = estate_policy();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let found: Vec<_> =
        prod.preconditions.iter().filter(|p| p.kind == kplan_model::PreconditionKind::DisruptionBudget).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].claims, ["web/front"]);
    assert!(found[0].detail.contains("allows 0 of its 10 pods down at once"), "{}", found[0].detail);
    let mut tampered = plan.clone();
    let prod = tampered.blocks.iter_mut().find(|b| b.security_tier == "prod").expect("prod");
    prod.preconditions.retain(|p| p.kind != kplan_model::PreconditionKind::DisruptionBudget);
    let violations = crate::validate::validate(&inventory, &policy, &tampered);
    assert!(
        violations.iter().any(|v| v.rule == crate::validate::Rule::DisruptionBudget
            && v.detail.contains("no disruption-budget precondition names it")),
        "{violations:?}"
    );
}

#[test]
fn the_runbook_scales_a_statefulset_over_part_by_part_and_warns_of_its_ordinals() {
    // The budget's pods as a StatefulSet: 4, 4 and 2 of 10 move.
    let mut inventory = with_budget("", "40%");
    inventory[0].namespaces[0].pod_groups[0].owner_kind = "StatefulSet".into();
    inventory[0].namespaces[0].disruption_budgets[0].workloads = vec!["StatefulSet/front".into()];
    let plan = plan(&inventory, &estate_policy());
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let book = crate::runbook::runbook(&plan, &inventory, None);
    let steps: Vec<&crate::runbook::Step> = book
        .blocks
        .iter()
        .flat_map(|b| &b.waves)
        .flat_map(|w| &w.steps)
        .filter(|s| s.commands.iter().any(|c| c.contains("scale statefulset/front")))
        .collect();
    assert_eq!(steps.len(), 3, "one step per part: {steps:#?}");
    let target = &prod.target_clusters[0].name;
    for (step, (up, down)) in steps.iter().zip([(4, 6), (8, 2), (10, 0)]) {
        let has = |text: &str| step.commands.iter().any(|c| c.contains(text));
        assert!(has(&format!("--context {target} -n web scale statefulset/front --replicas={up}")), "{step:#?}");
        assert!(has(&format!("--context small -n web scale statefulset/front --replicas={down}")), "{step:#?}");
        // Both clusters run front-0.. until the last part.
        assert_eq!(has("both clusters run pods of the same names"), down > 0, "{step:#?}");
    }
    assert!(steps[2].commands.iter().any(|c| c.contains("delete namespace web")), "the cut-over: {:#?}", steps[2]);
    assert!(steps[..2].iter().all(|s| !s.commands.iter().any(|c| c.contains("delete namespace web"))));
}

#[test]
fn the_pod_report_follows_a_namespace_moving_in_parts_pod_by_pod() {
    // 4, 4 and 2 of the 10 front pods move: between the parts the workload
    // runs in both clusters, and the report says how many pods are where.
    let inventory = with_budget("", "40%");
    let policy = estate_policy();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let target = prod.target_clusters[0].name.clone();
    let report = crate::pod_report::pod_report(&inventory, &policy, &plan, Some("web"));
    assert_eq!(report.len(), 1, "{report:#?}");
    let moments = &report[0].moments;
    let during: Vec<(String, u64)> =
        moments.iter().filter(|m| m.when.starts_with("during")).map(|m| (m.cluster.clone(), m.pods)).collect();
    let small = "small".to_string();
    assert_eq!(
        during,
        [
            (small.clone(), 10),
            (target.clone(), 4),
            (small.clone(), 6),
            (target.clone(), 8),
            (small, 2),
            (target.clone(), 10)
        ],
        "{moments:#?}"
    );
    // After the first part: 6 in the source, 4 in the target; at the end all 10 in the target.
    let first_wave = moments.iter().find(|m| m.when.starts_with("during")).map(|m| m.when.clone()).expect("a move");
    let after_first = first_wave.replace("during", "after");
    let after_first = after_first.split(" (").next().expect("when");
    let rows: Vec<(&str, u64)> =
        moments.iter().filter(|m| m.when == after_first).map(|m| (m.cluster.as_str(), m.pods)).collect();
    assert_eq!(rows, [("small", 6), (target.as_str(), 4)], "{moments:#?}");
    let last = moments.last().expect("rows");
    assert_eq!((last.cluster.as_str(), last.pods), (target.as_str(), 10), "{moments:#?}");
    assert!(moments.iter().all(|m| m.problem.is_empty() && m.nodes > 0), "{moments:#?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..proptest::prelude::ProptestConfig::default() })]

    /// Moves in parts, for random budgets: every plan passes the validator,
    /// a namespace has at most `max_parts` parts, one per wave in order, and
    /// no part takes more pods of its budget down than the budget allows
    /// unless a disruption-budget precondition names it.
    #[test]
    fn parts_keep_within_their_budgets_or_say_so(
        replicas in 2u64..16,
        unavailable in 0u64..5,
        percent in proptest::prelude::any::<bool>(),
        max_parts in 1u32..8,
        n_large in 3usize..5,
    ) {
        let mut inventory = small_and_large(n_large, 50);
        inventory[0].namespaces[0] =
            with_pods(namespace("web", "prod", SlaTier::Silver, 0, 0, 0), vec![pods("front", replicas, 2000, 4)]);
        let rule = if percent { format!("{}%", unavailable * 10) } else { unavailable.to_string() };
        let budget = kplan_model::scheduling::DisruptionBudget {
            name: "front".into(),
            max_unavailable: rule,
            workloads: vec!["Deployment/front".into()],
            ..Default::default()
        };
        let allowed = budget.allowed_disruptions(replicas);
        inventory[0].namespaces[0].disruption_budgets = vec![budget];
        let mut policy = estate_policy();
        policy.parts.max_parts = max_parts;
        let plan = plan(&inventory, &policy);
        let violations = crate::validate::validate(&inventory, &policy, &plan);
        proptest::prop_assert!(violations.is_empty(), "{:#?}", violations);
        let prod = block(&plan, "dc1", "prod");
        proptest::prop_assume!(prod.status == BlockStatus::Planned);
        let parts: Vec<(u64, u64)> = prod
            .waves
            .iter()
            .flat_map(|w| w.namespaces.iter().map(move |m| (w.index, m)))
            .filter(|(_, m)| m.namespace == "web")
            .map(|(wave, m)| (wave, m.part.as_ref().map_or(replicas, |p| p.workloads.iter().map(|w| w.replicas).sum())))
            .collect();
        proptest::prop_assert!(parts.len() as u32 <= max_parts.max(1), "{parts:?}");
        proptest::prop_assert_eq!(parts.iter().map(|p| p.1).sum::<u64>(), replicas);
        proptest::prop_assert!(parts.windows(2).all(|w| w[0].0 < w[1].0), "{parts:?}");
        let named = prod.preconditions.iter().any(|p| p.claims == ["web/front"]);
        if allowed < replicas {
            proptest::prop_assert!(parts.len() > 1 || named, "{parts:?}");
        }
        proptest::prop_assert!(parts.iter().all(|p| p.1 <= allowed) || named, "{parts:?} allowed {allowed}");
    }
}

#[test]
fn a_source_too_full_to_let_a_node_go_is_feasible_with_a_buffer_node_and_a_rerun_proves_it() {
    // Two 150 GiB engine pods on two 192 GiB nodes: neither node can leave
    // while both pods are there, at any headroom, and no pod can leave before
    // a large node is in the target. One more large node breaks the deadlock.
    let mut inventory = small_and_large(2, 150);
    let policy = estate_policy();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Infeasible, "{}", prod.explanation);
    assert!(!prod.explanation.contains("feasible if the headroom"), "{}", prod.explanation);
    let note = prod
        .explanation
        .lines()
        .find(|line| line.contains("feasible with 1 temporary buffer node in large (large-kplan-buffer-1)"))
        .unwrap_or_else(|| panic!("no buffer relaxation in {}", prod.explanation));
    assert!(note.contains("like l-w") && note.contains("48 cores, 192 GiB"), "{note}");
    // The re-run with that node reported plans the block.
    let large = inventory.iter_mut().find(|c| c.cluster_id == "large").expect("large");
    let mut buffer = large.nodes.iter().find(|n| n.name.starts_with("l-w")).expect("a large worker").clone();
    buffer.name = "large-kplan-buffer-1".into();
    large.nodes.push(buffer);
    let again = self::plan(&inventory, &policy);
    let prod = block(&again, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
}

#[test]
fn a_block_whose_allowed_zones_are_too_small_says_which_zone_to_open_and_a_rerun_proves_it() {
    // The prod cluster's big workers are in zone d, which the policy keeps for
    // dev: the three small workers of a, b and c cannot hold 30 cores.
    let mut nodes = workers("small", "dc1", &["a", "b", "c"], 3, 8, 32);
    nodes.extend(workers("big", "dc1", &["d"], 4, 32, 128));
    nodes.push(control_plane(node("cp", "dc1", "a", 4, 16)));
    let inventory = vec![cluster(
        "one",
        "prod",
        "dc1",
        nodes,
        vec![with_pods(namespace("web", "prod", SlaTier::Silver, 0, 0, 0), vec![pods("front", 6, 5000, 8)])],
    )];
    let policy = estate_policy();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Infeasible, "{}", prod.explanation);
    assert!(
        prod.explanation.contains("feasible if zone d may host tier prod (policy [zones.d] tiers, now dev)"),
        "{}",
        prod.explanation
    );
    let mut relaxed = policy.clone();
    relaxed.zones.get_mut("d").expect("zone d").tiers.push("prod".into());
    let again = self::plan(&inventory, &relaxed);
    assert_eq!(block(&again, "dc1", "prod").status, BlockStatus::Planned);
}
