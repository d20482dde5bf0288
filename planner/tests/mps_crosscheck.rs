//! Cross-checks kplan's optimisation with another HiGHS front end.
//!
//! Plans a few small hand-made blocks with `write_models`, writes each block's
//! models to a temporary directory in MPS, solves them with Python `highspy`,
//! and asserts that the objective kplan reports equals the external optimum
//! within the MIP gap kplan reports. The composition model carries the waves
//! term as its objective constant, so its optimum is the block's objective.
//!
//! Skipped, with a notice, when `python3 -c 'import highspy'` fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use kplan_model::policy::{OpenFlow, ZonePolicy};
use kplan_model::{BlockStatus, ClusterFacts, ClusterSnapshot, Namespace, Node, NodeRole, Policy, Resources, SlaTier};
use kplan_planner::{PlanOptions, propose};

const GIB: u64 = 1 << 30;

fn node(name: &str, zone: &str, cores: u64, memory_gib: u64, role: NodeRole) -> Node {
    Node {
        name: name.to_string(),
        labels: BTreeMap::new(),
        datacenter: "dc1".to_string(),
        zone: zone.to_string(),
        role,
        allocatable: Resources::new(cores * 1000, memory_gib * GIB, 110),
        kubelet_version: "v1.29.2".to_string(),
        container_runtime: "containerd://1.7.2".to_string(),
        architecture: "amd64".to_string(),
        unschedulable: false,
        taints: Vec::new(),
        extended: Default::default(),
        runtime_handlers: Vec::new(),
    }
}

fn namespace(name: &str, sla: SlaTier, cpu_millis: u64, memory_gib: u64, pods: u64) -> Namespace {
    Namespace {
        name: name.to_string(),
        labels: BTreeMap::new(),
        security_tier: "prod".to_string(),
        sla_tier: sla,
        requests: Resources::new(cpu_millis, memory_gib * GIB, pods),
        pod_groups: Vec::new(),
        applied_prerelease: Vec::new(),
        disruption_budgets: Vec::new(),
    }
}

fn cluster(id: &str, nodes: Vec<Node>, namespaces: Vec<Namespace>) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster_id: id.to_string(),
        generation: 1,
        collected_at_unix: 0,
        facts: ClusterFacts {
            datacenter: "dc1".to_string(),
            security_tier: "prod".to_string(),
            kubernetes_version: "v1.29.2".to_string(),
            cni: "cilium".to_string(),
            ..ClusterFacts::default()
        },
        nodes,
        namespaces,
        isolation: Default::default(),
    }
}

/// Workers `<prefix>-<i>` over `zones`, shapes cycling through `shapes`.
fn workers(prefix: &str, zones: &[&str], n: usize, shapes: &[(u64, u64)]) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let (cores, memory) = shapes[i % shapes.len()];
            node(&format!("{prefix}-{i:02}"), zones[i % zones.len()], cores, memory, NodeRole::Worker)
        })
        .collect()
}

fn policy(zones: &[&str]) -> Policy {
    let mut policy = Policy::default();
    for zone in zones {
        policy.zones.insert(zone.to_string(), ZonePolicy { tiers: vec!["prod".to_string()] });
    }
    policy.solver.time_limit_seconds = 20.0;
    policy
}

/// Small blocks with known structure: (name, inventory, policy).
fn cases() -> Vec<(&'static str, Vec<ClusterSnapshot>, Policy)> {
    let mut cases = Vec::new();

    // Two sources over three zones, mixed shapes.
    let mut a = workers("a", &["z1", "z2", "z3"], 9, &[(8, 32), (16, 64)]);
    a.push(node("a-cp", "z1", 4, 16, NodeRole::ControlPlane));
    let b = workers("b", &["z1", "z2"], 6, &[(4, 16), (32, 128)]);
    cases.push((
        "three-zones",
        vec![
            cluster(
                "a",
                a,
                vec![namespace("web", SlaTier::Gold, 9000, 20, 40), namespace("jobs", SlaTier::Bronze, 5000, 12, 20)],
            ),
            cluster(
                "b",
                b,
                vec![namespace("web", SlaTier::Silver, 12000, 30, 60), namespace("etl", SlaTier::Bronze, 7000, 40, 30)],
            ),
        ],
        policy(&["z1", "z2", "z3"]),
    ));

    // Five zones, two pairs already open: the zone choice matters.
    let mut open = policy(&["z1", "z2", "z3", "z4", "z5"]);
    for (from, to) in [("z4", "z5"), ("z3", "z4")] {
        open.open_flows.push(OpenFlow {
            from_zone: from.to_string(),
            to_zone: to.to_string(),
            protocol: String::new(),
            ports: String::new(),
            bidirectional: true,
        });
    }
    cases.push((
        "open-flows",
        vec![cluster(
            "c",
            workers("c", &["z1", "z2", "z3", "z4", "z5"], 20, &[(8, 32), (16, 64), (4, 8)]),
            vec![
                namespace("api", SlaTier::Gold, 30000, 60, 80),
                namespace("db", SlaTier::Silver, 20000, 90, 30),
                namespace("cache", SlaTier::Bronze, 6000, 20, 12),
            ],
        )],
        open,
    ));

    // Surviving the loss of a zone, tight budgets.
    let mut survive = policy(&["z1", "z2", "z3", "z4"]);
    survive.survive_zone_loss = true;
    survive.wave_budget.nodes = 4;
    survive.wave_budget.namespaces = 2;
    cases.push((
        "zone-loss",
        vec![
            cluster(
                "d",
                workers("d", &["z1", "z2", "z3", "z4"], 12, &[(8, 32)]),
                vec![namespace("pay", SlaTier::Gold, 10000, 20, 30), namespace("ops", SlaTier::Bronze, 4000, 8, 10)],
            ),
            cluster(
                "e",
                workers("e", &["z2", "z3"], 6, &[(16, 64)]),
                vec![namespace("pay", SlaTier::Gold, 8000, 30, 30), namespace("lab", SlaTier::Silver, 3000, 4, 6)],
            ),
        ],
        survive,
    ));
    cases
}

fn highspy_available() -> bool {
    Command::new("python3").args(["-c", "import highspy"]).output().is_ok_and(|o| o.status.success())
}

const SOLVE_SCRIPT: &str = r#"
import json, sys, highspy
for path in sys.argv[1:]:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("time_limit", 120.0)
    status = h.readModel(path)
    h.run()
    print("RESULT " + json.dumps({"path": path, "status": str(h.getModelStatus()), "read": str(status), "objective": repr(h.getInfo().objective_function_value)}), flush=True)
"#;

fn solve_externally(paths: &[String]) -> BTreeMap<String, (String, f64)> {
    let output = Command::new("python3").arg("-c").arg(SOLVE_SCRIPT).args(paths).output().expect("python3 runs");
    assert!(output.status.success(), "highspy failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("RESULT "))
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("one json object per model");
            let path = value["path"].as_str().unwrap_or_default().to_string();
            let status = value["status"].as_str().unwrap_or_default().to_string();
            let objective = value["objective"].as_str().unwrap_or_default().parse::<f64>().unwrap_or(f64::NAN);
            let status = format!("{status} (read: {})", value["read"].as_str().unwrap_or_default());
            (path, (status, objective))
        })
        .collect()
}

#[test]
fn kplan_objectives_match_an_external_highs() {
    if !highspy_available() {
        eprintln!(
            "notice: python3 with highspy is not available; skipping the external cross-check (pip install highspy)"
        );
        return;
    }
    let temporary = tempfile::tempdir().expect("a temporary directory");
    // KPLAN_KEEP_MODELS=DIR keeps the models for a look afterwards.
    let directory = match std::env::var("KPLAN_KEEP_MODELS") {
        Ok(keep) => {
            std::fs::create_dir_all(&keep).expect("the model directory");
            std::path::PathBuf::from(keep)
        }
        Err(_) => temporary.path().to_path_buf(),
    };
    for (name, inventory, policy) in cases() {
        let options = PlanOptions { write_models: true, ..PlanOptions::default() };
        let outcome = propose(&inventory, &policy, &options).expect("a plan");
        assert_eq!(outcome.plan.blocks.len(), 1, "{name}: one block");
        let block = &outcome.plan.blocks[0];
        assert_eq!(block.status, BlockStatus::Planned, "{name}: {}", block.explanation);
        assert!(!outcome.models.is_empty(), "{name}: no model written");

        let mut paths = Vec::new();
        for model in &outcome.models {
            let path = directory.join(format!("{name}.{}.mps", model.name));
            std::fs::write(&path, &model.mps).expect("the model is written");
            paths.push(path.to_string_lossy().to_string());
        }
        let results = solve_externally(&paths);
        for (model, path) in outcome.models.iter().zip(&paths) {
            // A staging rescue stops at its first schedule: no optimum to compare.
            if model.name.contains(".staging-") {
                continue;
            }
            let (status, external) = &results[path];
            assert!(status.contains("Optimal"), "{name} {}: highspy ended with {status}", model.name);
            let expected =
                if model.name.ends_with(".composition") { block.objective } else { block.waves.len() as f64 };
            // kplan cannot beat the optimum, and is within its reported gap of it.
            let tolerance = 1e-6 * expected.abs().max(1.0) + block.gap * expected.abs();
            assert!(
                (expected - external).abs() <= tolerance,
                "{name} {}: kplan reports {expected}, highspy finds {external} (gap {})",
                model.name,
                block.gap
            );
            eprintln!("{name} {}: kplan {expected}, highspy {external}", model.name);
        }
        assert!(Path::new(&paths[0]).exists());
    }
}
