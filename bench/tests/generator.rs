//! The generator is deterministic, and a small generated estate plans and validates.

use std::collections::BTreeMap;
use std::path::Path;

use kplan_bench::generate::{EstateSpec, Size, generate, write};
use kplan_model::{BlockStatus, ClusterSnapshot, Policy};
use kplan_planner::{PlanOptions, propose, validate};

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).expect("under dir").display().to_string();
                out.insert(name, std::fs::read(&path).expect("readable file"));
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let root = tempfile::tempdir().expect("tempdir");
    let spec = EstateSpec::sized(Size::S, 1);
    write(&generate(&spec, 1), &root.path().join("a")).expect("writes");
    write(&generate(&EstateSpec::sized(Size::S, 1), 1), &root.path().join("b")).expect("writes");
    write(&generate(&EstateSpec::sized(Size::S, 2), 2), &root.path().join("c")).expect("writes");
    let a = files(&root.path().join("a"));
    let b = files(&root.path().join("b"));
    let c = files(&root.path().join("c"));
    assert_eq!(a.len(), 20 + 2, "20 cluster files, estate.toml and policy.toml");
    assert!(a == b, "the same seed must give byte-identical files");
    assert!(a != c, "another seed must give another estate");

    // The files are what kplan reads: snapshots and a policy.
    let mut n_nodes = 0;
    for (name, bytes) in &a {
        if name.ends_with(".json") {
            let snapshot: ClusterSnapshot = serde_json::from_slice(bytes).expect("a kplan snapshot");
            n_nodes += snapshot.nodes.len();
        }
    }
    assert_eq!(n_nodes, 500);
    let policy: Policy =
        toml::from_str(std::str::from_utf8(&a["policy.toml"]).expect("utf-8")).expect("a kplan policy");
    assert!(!policy.zones.is_empty());
    let manifest = std::str::from_utf8(&a["estate.toml"]).expect("utf-8");
    assert_eq!(manifest.matches("[[clusters]]").count(), 20);
}

#[test]
fn estates_are_realistic() {
    let estate = generate(&EstateSpec::sized(Size::M, 3), 3);
    let runtimes: Vec<&str> =
        estate.snapshots.iter().flat_map(|s| s.nodes.iter().map(|n| n.container_runtime.as_str())).collect();
    assert!(runtimes.iter().any(|r| r.starts_with("docker://")), "some old docker clusters");
    let mut cnis: Vec<&str> = estate.snapshots.iter().map(|s| s.facts.cni.as_str()).collect();
    cnis.sort();
    cnis.dedup();
    assert!(cnis.len() >= 3, "mixed CNIs: {cnis:?}");
    // Collisions: the same application namespace in several clusters of one block.
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for s in &estate.snapshots {
        for ns in &s.namespaces {
            *seen.entry((s.facts.datacenter.clone(), s.facts.security_tier.clone(), ns.name.clone())).or_default() += 1;
        }
    }
    assert!(seen.iter().any(|((_, _, name), n)| !name.starts_with("kube-") && name != "default" && *n > 1));
    assert!(!estate.policy.open_flows.is_empty(), "a policy with some open flows");
    // Utilisation 25-60% of the ordinary workers' cpu by the ordinary namespaces.
    let special = |name: &str| name == "ml-training" || name == "inmemory-cache" || name.ends_with("-dedicated");
    for s in &estate.snapshots {
        let workers: u64 = s
            .nodes
            .iter()
            .filter(|n| {
                n.role == kplan_model::NodeRole::Worker && n.taints.is_empty() && !n.labels.contains_key("memory")
            })
            .map(|n| n.allocatable.cpu_millis)
            .sum();
        let used: u64 = s.namespaces.iter().filter(|ns| !special(&ns.name)).map(|ns| ns.requests.cpu_millis).sum();
        let used = used as f64 / workers as f64;
        assert!((0.24..=0.61).contains(&used), "{}: {used}", s.cluster_id);
        // Every namespace's demand is its pods'.
        for ns in &s.namespaces {
            let pods: u64 = ns.pod_groups.iter().map(|g| g.replicas).sum();
            assert_eq!(pods, ns.requests.pods, "{}/{}", s.cluster_id, ns.name);
        }
    }
    // Heterogeneous pools (issue 17): GPU nodes, tainted dedicated pools, big-memory nodes.
    let nodes: Vec<&kplan_model::Node> = estate.snapshots.iter().flat_map(|s| &s.nodes).collect();
    assert!(nodes.iter().any(|n| n.extended.get("nvidia.com/gpu") == Some(&8)), "GPU nodes");
    assert!(nodes.iter().any(|n| n.taints.iter().any(|t| t.key == "dedicated")), "dedicated pools");
    assert!(nodes.iter().any(|n| n.labels.get("memory").is_some_and(|v| v == "high")), "big-memory nodes");
}

#[test]
fn a_small_generated_estate_plans_and_every_block_validates() {
    let estate = generate(&EstateSpec::sized(Size::S, 1), 1);
    let options = PlanOptions { time_limit_seconds: Some(20.0), ..PlanOptions::default() };
    let outcome = propose(&estate.snapshots, &estate.policy, &options).expect("plans");
    let plan = &outcome.plan;
    assert_eq!(plan.blocks.len(), 4);
    for block in &plan.blocks {
        assert_eq!(
            block.status,
            BlockStatus::Planned,
            "{}/{}: {}",
            block.datacenter,
            block.security_tier,
            block.explanation
        );
        assert!(block.objective <= block.greedy_objective + 1e-6, "never worse than greedy");
    }
    let violations = validate::validate(&estate.snapshots, &estate.policy, plan);
    assert!(violations.is_empty(), "{violations:#?}");
}
