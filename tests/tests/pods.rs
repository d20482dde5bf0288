//! Issue 17 end to end, through `kplan import` of kubectl JSON and `kplan
//! propose`: a plan never leaves a pod without a node. Two clusters of one
//! block: `gpu-a` runs training pods that need its tainted GPU nodes; `big-b`
//! has large plain nodes the planner would rather keep. The plan keeps a GPU
//! node for the training pods in the target and hands them over in stages;
//! with a single GPU node no hand-over exists, and the block says so.

mod common;
mod gpu_estate;

use common::*;
use gpu_estate::propose_gpu_estate;
use serde_json::{Value, json};

#[test]
fn the_plan_keeps_a_gpu_node_for_the_training_pods_and_hands_them_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (inv, plan) = propose_gpu_estate(dir.path(), 2);
    let block = &plan["blocks"][0];
    // Planning by the namespace sums alone keeps the two 64-core nodes and
    // frees both GPU nodes; planning by placement class keeps one.
    assert_eq!(block["status"], "planned", "{block:#}");
    let kept: Vec<&str> = block["target_clusters"][0]["nodes_kept"]
        .as_array()
        .expect("kept")
        .iter()
        .filter_map(|n| n["node"].as_str())
        .collect();
    assert_eq!(kept.iter().filter(|n| n.starts_with("a-gpu")).count(), 1, "{kept:?}");
    assert!(!block["explanation"].as_str().unwrap_or_default().contains("pod-level checks"), "{block:#}");

    // The dry run per pod: the training pods have a GPU node at every moment,
    // first in gpu-a, then in the target.
    let id = plan["id"].as_str().expect("id");
    let report: Value =
        serde_json::from_str(&kplan_ok(&["--inventory", &inv, "plans", "pods", id, "--namespace", "ml", "-o", "json"]))
            .expect("report");
    let train = &report[0];
    assert_eq!(train["workload"], "Deployment/train");
    let moments = train["moments"].as_array().expect("moments");
    let before = &moments[0];
    assert_eq!(
        (before["when"].as_str(), before["cluster"].as_str(), before["nodes"].as_u64()),
        (Some("before"), Some("gpu-a"), Some(2))
    );
    assert_eq!(before["shapes"], json!(["2 × 16 cpu 64Gi nvidia.com/gpu=4"]));
    for moment in moments {
        assert!(moment["nodes"].as_u64().unwrap_or(0) >= 1 && moment["problem"] == "", "{moment:#}");
    }
    // The last row is where the pods run once the merge is done.
    let after = moments.last().expect("after");
    assert_eq!(after["cluster"], "fra-prod");
    let waves = plan["blocks"][0]["waves"].as_array().expect("waves").len();
    assert_eq!(after["when"], format!("after wave {waves}"));
}

#[test]
fn one_gpu_node_cannot_be_handed_over_and_the_block_says_what_would_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, plan) = propose_gpu_estate(dir.path(), 1);
    let block = &plan["blocks"][0];
    assert_eq!(block["status"], "infeasible", "{block:#}");
    let explanation = block["explanation"].as_str().expect("explanation");
    for needle in ["ml/Deployment/train", "accelerator=nvidia", "temporary buffer node"] {
        assert!(explanation.contains(needle), "{needle:?} in {explanation}");
    }
}

#[test]
fn the_example_plan_holds_pod_by_pod_in_the_dry_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory");
    let inv = inventory.to_str().expect("utf-8");
    let plan: Value = serde_json::from_str(&propose_bank_example(inv)).expect("plan");
    let targets: Vec<&str> = plan["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .flat_map(|b| b["target_clusters"].as_array().into_iter().flatten())
        .filter_map(|t| t["name"].as_str())
        .collect();
    let report = pod_report(inv, &plan);
    let workloads = report.as_array().expect("workloads");
    let moved: Vec<&Value> = workloads
        .iter()
        .filter(|w| {
            w["moments"]
                .as_array()
                .and_then(|m| m.last())
                .is_some_and(|m| targets.contains(&m["cluster"].as_str().unwrap_or_default()))
        })
        .collect();
    assert!(moved.len() > 50, "{} of {} workloads reach a target", moved.len(), workloads.len());
    // What the validator accepted, the dry run shows: a node at every moment.
    moved.into_iter().for_each(assert_a_node_at_every_moment);
}

/// `kplan plans pods ID -o json` of a stored plan.
fn pod_report(inv: &str, plan: &Value) -> Value {
    let id = plan["id"].as_str().expect("id");
    serde_json::from_str(&kplan_ok(&["--inventory", inv, "plans", "pods", id, "-o", "json"])).expect("report")
}

fn assert_a_node_at_every_moment(workload: &Value) {
    for moment in workload["moments"].as_array().expect("moments") {
        assert!(moment["nodes"].as_u64().unwrap_or(0) > 0 && moment["problem"] == "", "{workload:#}");
    }
}

/// The pools example (`examples/pools/`): GPU, dedicated and big-memory
/// pools that pods need. The block is planned, keeps a node of every pool,
/// every workload has nodes at every moment, and README.md shows the plan.
#[test]
fn the_pools_example_keeps_every_pool_its_pods_need() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory");
    let inv = inventory.to_str().expect("utf-8");
    let root = repo_root();
    let estate = root.join("examples/pools/estate.toml");
    let policy = root.join("examples/pools/policy.toml");
    kplan_ok(&["--inventory", inv, "import", "--estate", estate.to_str().expect("utf-8")]);
    let policy = policy.to_str().expect("utf-8");
    let table = kplan_ok(&["--inventory", inv, "propose", "--policy", policy]);
    let plan: Value =
        serde_json::from_str(&kplan_ok(&["--inventory", inv, "propose", "--policy", policy, "-o", "json"]))
            .expect("plan");
    let block = &plan["blocks"][0];
    assert_eq!(block["status"], "planned", "{block:#}");
    let kept: Vec<&str> = block["target_clusters"][0]["nodes_kept"]
        .as_array()
        .expect("kept")
        .iter()
        .filter_map(|n| n["node"].as_str())
        .collect();
    for pool in ["-gpu-", "-risk-risk-", "-data-mem-"] {
        assert!(kept.iter().any(|n| n.contains(pool)), "no {pool} node kept: {kept:?}");
    }
    // OpenSearch's data is on local volumes of the three large workers of
    // ams-prod-data: they are kept, and join the target in the wave `search` moves.
    let wave_of = |name: &str| -> Option<u64> {
        block["waves"].as_array().expect("waves").iter().find_map(|w| {
            let listed = |key: &str, field: &str| {
                w[key].as_array().is_some_and(|items| items.iter().any(|item| item[field] == name))
            };
            (listed("nodes", "node") || listed("namespaces", "namespace")).then(|| w["index"].as_u64().expect("index"))
        })
    };
    for host in ["ams-prod-data-w-01", "ams-prod-data-w-02", "ams-prod-data-w-03"] {
        assert!(kept.contains(&host), "{host} holds OpenSearch's data: {kept:?}");
        assert_eq!(wave_of(host), wave_of("search"), "{host} moves with search");
    }
    // PodDisruptionBudgets read from the export: web-shop (storefront,
    // maxUnavailable 50% of 8) and checkout-api (orders-db, minAvailable 2 of
    // 3) move in parts, one part per wave and never more pods of a budget at
    // once than it allows; search cannot (its pods keep their disks) and gets a
    // disruption-budget precondition naming its budget.
    let parts_of = |name: &str| -> Vec<(u64, u64, u64)> {
        let mut parts: Vec<(u64, u64, u64)> = block["waves"]
            .as_array()
            .expect("waves")
            .iter()
            .flat_map(|w| w["namespaces"].as_array().expect("namespaces").iter().map(move |m| (w["index"].clone(), m)))
            .filter(|(_, m)| m["namespace"] == name)
            .map(|(wave, m)| {
                let part = &m["part"];
                let budgeted = part["workloads"]
                    .as_array()
                    .expect("a part")
                    .iter()
                    .filter(|w| w["workload"] == "Deployment/storefront" || w["workload"] == "StatefulSet/orders-db")
                    .map(|w| w["replicas"].as_u64().expect("replicas"))
                    .sum();
                (wave.as_u64().expect("wave"), part["index"].as_u64().expect("index"), budgeted)
            })
            .collect();
        parts.sort();
        parts
    };
    let web = parts_of("web-shop");
    assert_eq!(web.iter().map(|p| (p.1, p.2)).collect::<Vec<_>>(), [(1, 4), (2, 4)], "{web:?}");
    let checkout = parts_of("checkout-api");
    assert_eq!(checkout.iter().map(|p| (p.1, p.2)).collect::<Vec<_>>(), [(1, 1), (2, 1), (3, 1)], "{checkout:?}");
    for parts in [&web, &checkout] {
        assert!(parts.windows(2).all(|w| w[0].0 < w[1].0), "one part per wave, in order: {parts:?}");
    }
    // quant-sim (3 pods of 20 cpu / 140 GiB on AVX-512 nodes, 48% of its
    // source's workload capacity) cannot move in one piece: the block is
    // planned again with it in parts, one pod per part, and says so.
    let quant: Vec<(u64, u64)> = block["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .flat_map(|w| w["namespaces"].as_array().expect("namespaces").iter().map(move |m| (w["index"].clone(), m)))
        .filter(|(_, m)| m["namespace"] == "quant-sim")
        .map(|(wave, m)| {
            let replicas = m["part"]["workloads"]
                .as_array()
                .expect("a part")
                .iter()
                .map(|w| w["replicas"].as_u64().expect("replicas"))
                .sum();
            (wave.as_u64().expect("wave"), replicas)
        })
        .collect();
    assert_eq!(quant.iter().map(|p| p.1).collect::<Vec<_>>(), [1, 1, 1], "quant-sim in parts of one pod: {quant:?}");
    assert!(quant.windows(2).all(|w| w[0].0 < w[1].0), "one part per wave: {quant:?}");
    let explanation = block["explanation"].as_str().expect("explanation");
    assert!(
        explanation.contains("cannot be staged") && explanation.contains("ams-prod-quant/quant-sim"),
        "{explanation}"
    );
    assert!(kept.iter().any(|n| n.contains("-quant-cpu-")), "no AVX-512 node kept: {kept:?}");
    let budgets: Vec<&str> = block["preconditions"]
        .as_array()
        .expect("preconditions")
        .iter()
        .filter(|p| p["kind"] == "disruption-budget")
        .filter_map(|p| p["claims"][0].as_str())
        .collect();
    assert_eq!(budgets, ["search/opensearch"]);
    let report = pod_report(inv, &plan);
    let workloads = report.as_array().expect("workloads");
    // Every workload of the 37 namespaces (a workload with pods in several namespaces counts once per namespace).
    assert!(workloads.len() >= 25, "{} workloads", workloads.len());
    workloads.iter().for_each(assert_a_node_at_every_moment);
    // README.md shows this table.
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let section = &readme[readme.find("## Pod by pod: the pools example").expect("the pools section")..];
    // The second block of the section: the first shows the commands.
    let shown = section.split("```\n").nth(3).expect("the output block");
    let normalise = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with("plan plan-"))
            // The summary names the plan, whose id holds the time it was made.
            .map(|line| match line.split_once(" (kplan plans isolation ") {
                Some((summary, _)) if line.starts_with("tenant isolation:") => summary.to_string(),
                _ => line.to_string(),
            })
            .filter(|line| !line.is_empty())
            .collect()
    };
    assert_eq!(normalise(shown), normalise(&table), "README.md's pools output: update it");
}

/// `kplan plans pods` against a server: the server's newest snapshots of the
/// plan's clusters, fetched with a reader's query, give the same report as
/// the local inventory does.
#[test]
fn the_pod_report_from_a_server_is_the_local_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (inv, local_plan) = propose_gpu_estate(dir.path(), 2);
    let local = pod_report(&inv, &local_plan);
    let server = Server::start(&dir.path().join("server"));
    let url = server.url();
    let remote = |args: &[&str]| -> String {
        let mut all = vec!["--server", url.as_str(), "--insecure-plaintext"];
        all.extend_from_slice(args);
        kplan_ok(&all)
    };
    for cluster in ["gpu-a", "big-b"] {
        let file = dir.path().join(format!("{cluster}.json"));
        let file = file.to_str().expect("utf-8");
        remote(&[
            "import",
            "--cluster",
            cluster,
            "--datacenter",
            "fra",
            "--security-tier",
            "prod",
            "--zone",
            "z1",
            file,
        ]);
    }
    let plan: Value = serde_json::from_str(&remote(&["propose", "-o", "json"])).expect("plan");
    assert_eq!(
        plan["fingerprint"]["content_digest"], local_plan["fingerprint"]["content_digest"],
        "the same inventory and policy give the same plan"
    );
    let id = plan["id"].as_str().expect("id");
    let report: Value = serde_json::from_str(&remote(&["plans", "pods", id, "-o", "json"])).expect("report");
    assert_eq!(report, local);
    assert!(report.as_array().is_some_and(|workloads| workloads.len() == 3), "{report:#}");
}
