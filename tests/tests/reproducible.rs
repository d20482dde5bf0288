//! Issue 13 end to end: the same inventory and policy give the same plan on
//! any machine and under any load (deterministic work limits, a fixed seed and
//! thread count), every plan carries its fingerprint, and `kplan propose
//! --check` re-plans a stored plan and names what changed.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn example(file: &str) -> String {
    repo_root().join("examples/bank").join(file).to_str().expect("utf-8 path").to_string()
}

fn kplan_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(bin("kplan"));
    command.args(args).env_remove("KPLAN_SERVER").env_remove("KPLAN_INVENTORY").env_remove("RAYON_NUM_THREADS");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("running kplan")
}

/// The JSON export without the fields that belong to the run, not to the plan:
/// the id (it holds the creation time), the creation time and the timings.
/// Everything else must be byte-identical.
fn without_run_fields(json: &str) -> String {
    json.lines()
        .filter(|line| {
            let line = line.trim_start();
            !(line.starts_with("\"solve_seconds\":")
                || line.starts_with("\"created_at_unix\":")
                || line.starts_with("\"id\": \"plan-"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Busy loops on every core, killed on drop: the load of a shared CI runner.
struct CpuBurner(Vec<Child>);

impl CpuBurner {
    fn start() -> CpuBurner {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let children = (0..cores)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("starting a cpu burner")
            })
            .collect();
        CpuBurner(children)
    }
}

impl Drop for CpuBurner {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Plans `inventory` with `policy` three times: one planning thread, every
/// core, and every core while each core is kept busy by another process.
fn plan_three_ways(inventory: &Path, policy: &str) {
    let inventory = inventory.to_str().expect("utf-8 path");
    let args = ["--inventory", inventory, "propose", "--policy", policy, "-o", "json"];
    let run = |env: &[(&str, &str)]| -> String {
        let out = kplan_env(&args, env);
        assert!(out.status.success(), "kplan propose failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let single = run(&[("RAYON_NUM_THREADS", "1")]);
    let all_cores = run(&[]);
    let loaded = {
        let _burner = CpuBurner::start();
        run(&[])
    };
    let digest = |json: &str| -> (String, String, Vec<String>) {
        let plan: Value = serde_json::from_str(json).expect("plan json");
        let stops: Vec<String> = plan["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter(|b| b.get("wall_clock_stops").is_some())
            .map(|b| format!("{}/{}", b["datacenter"], b["security_tier"]))
            .collect();
        (
            plan["fingerprint"]["content_digest"].as_str().expect("content digest").to_string(),
            plan["fingerprint"]["input_digest"].as_str().expect("input digest").to_string(),
            stops,
        )
    };
    let (content, input, stops) = digest(&single);
    assert_eq!(content.len(), 64, "a sha-256 content digest");
    assert!(stops.is_empty(), "no safety net may decide a reproducible plan: {stops:?}");
    for (name, other) in [("every core", &all_cores), ("every core, loaded", &loaded)] {
        let (other_content, other_input, other_stops) = digest(other);
        assert!(other_stops.is_empty(), "{name}: safety nets fired in {other_stops:?}");
        assert_eq!(other_input, input, "{name}: same inputs, same input digest");
        assert_eq!(other_content, content, "{name}: the content digest differs from the single-threaded plan");
        assert!(
            without_run_fields(other) == without_run_fields(&single),
            "{name}: the JSON exports differ beyond the id, times and timings"
        );
    }
}

#[test]
fn the_example_estate_plans_the_same_on_one_thread_on_every_core_and_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory");
    kplan_ok(&["--inventory", inventory.to_str().expect("utf-8"), "import", "--estate", &example("estate.toml")]);
    plan_three_ways(&inventory, &example("policy.toml"));
}

#[test]
fn the_generated_m_estate_plans_the_same_on_one_thread_on_every_core_and_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let estate = dir.path().join("estate-m");
    let generated = Command::new(bin("kplan-bench"))
        .args(["generate", "--size", "M", "--seed", "1", "--out", estate.to_str().expect("utf-8")])
        .output()
        .expect("running kplan-bench generate");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let inventory = dir.path().join("inventory");
    let estate_file = estate.join("estate.toml");
    kplan_ok(&[
        "--inventory",
        inventory.to_str().expect("utf-8"),
        "import",
        "--estate",
        estate_file.to_str().expect("utf-8"),
    ]);
    plan_three_ways(&inventory, estate.join("policy.toml").to_str().expect("utf-8"));
}

#[test]
fn propose_check_says_identical_and_names_a_changed_node_after_a_reimport() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A copy of the example estate whose files the test may change.
    let estate = dir.path().join("bank");
    std::fs::create_dir_all(estate.join("clusters")).expect("mkdir");
    std::fs::copy(example("estate.toml"), estate.join("estate.toml")).expect("copy estate.toml");
    for entry in std::fs::read_dir(repo_root().join("examples/bank/clusters")).expect("clusters") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, estate.join("clusters").join(path.file_name().expect("name"))).expect("copy cluster");
    }
    let inventory = dir.path().join("inventory");
    let inv = inventory.to_str().expect("utf-8");
    let estate_file = estate.join("estate.toml");
    kplan_ok(&["--inventory", inv, "import", "--estate", estate_file.to_str().expect("utf-8")]);
    let plan: Value = serde_json::from_str(&kplan_ok(&[
        "--inventory",
        inv,
        "propose",
        "--policy",
        &example("policy.toml"),
        "-o",
        "json",
    ]))
    .expect("plan json");
    let id = plan["id"].as_str().expect("id").to_string();
    let input_digest = plan["fingerprint"]["input_digest"].as_str().expect("input digest").to_string();

    // `plans show` prints both digests.
    let shown = kplan_ok(&["--inventory", inv, "plans", "show", &id]);
    assert!(shown.contains(&input_digest), "{shown}");
    assert!(shown.contains(plan["fingerprint"]["content_digest"].as_str().expect("content")), "{shown}");

    // Unchanged inventory: identical, exit 0.
    let same = kplan_env(&["--inventory", inv, "propose", "--check", &id], &[]);
    let stdout = String::from_utf8_lossy(&same.stdout);
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stderr));
    assert!(stdout.contains("inputs: identical") && stdout.contains("plan: identical"), "{stdout}");

    // The allocatable cpu of a node the plan keeps changes in one cluster; it is
    // imported again.
    let kept = plan["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .flat_map(|b| b["target_clusters"].as_array().into_iter().flatten())
        .flat_map(|t| t["nodes_kept"].as_array().into_iter().flatten())
        .find(|n| n["cluster_id"] == "fra-prod-core")
        .and_then(|n| n["node"].as_str())
        .expect("the plan keeps a node of fra-prod-core")
        .to_string();
    let cluster_file = estate.join("clusters/fra-prod-core.json");
    let mut export: Value = serde_json::from_str(&std::fs::read_to_string(&cluster_file).expect("read")).expect("json");
    let node = export["items"]
        .as_array_mut()
        .expect("items")
        .iter_mut()
        .find(|item| item["kind"] == "Node" && item["metadata"]["name"] == kept.as_str())
        .expect("the kept node");
    let name = node["metadata"]["name"].as_str().expect("node name").to_string();
    node["status"]["allocatable"]["cpu"] = Value::from("3");
    // As in a real export: the changed object has a newer resourceVersion (the
    // snapshot's generation is the highest one).
    node["metadata"]["resourceVersion"] = Value::from("999999999");
    std::fs::write(&cluster_file, serde_json::to_string(&export).expect("json")).expect("write");
    kplan_ok(&["--inventory", inv, "import", "--estate", estate_file.to_str().expect("utf-8")]);

    // From its recorded snapshots the approved plan is still reproduced, with a
    // note that the estate has moved on.
    let recorded = kplan_env(&["--inventory", inv, "propose", "--check", &id], &[]);
    let stdout = String::from_utf8_lossy(&recorded.stdout);
    let stderr = String::from_utf8_lossy(&recorded.stderr);
    assert!(recorded.status.success(), "{stderr}");
    assert!(stdout.contains("inputs: identical") && stdout.contains("plan: identical"), "{stdout}");
    assert!(stderr.contains("fra-prod-core (generation") && stderr.contains("--latest"), "{stderr}");

    // On the current inventory, the change shows.
    let changed = kplan_env(&["--inventory", inv, "propose", "--check", &id, "--latest", "-o", "json"], &[]);
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert_eq!(changed.status.code(), Some(2), "a different plan is exit code 2: {stderr}");
    assert!(stderr.contains("inputs differ"), "{stderr}");
    assert!(stderr.contains("cluster fra-prod-core: its snapshot changed"), "{stderr}");
    let replanned: Value = serde_json::from_slice(&changed.stdout).expect("the re-plan as json");
    assert_ne!(replanned["fingerprint"]["input_digest"].as_str(), Some(input_digest.as_str()));
    // The re-plan records the changed snapshot's new content hash, and is not stored.
    let hash_of = |plan: &Value| -> String {
        let clusters = plan["inventory"].as_array().expect("inventory");
        let core = clusters.iter().find(|c| c["cluster_id"] == "fra-prod-core").expect("fra-prod-core");
        core["content_sha256"].as_str().expect("content hash").to_string()
    };
    assert_eq!(hash_of(&plan).len(), 64);
    assert_ne!(hash_of(&replanned), hash_of(&plan), "node {name}'s cpu changed the snapshot's content hash");
    let listed = kplan_ok(&["--inventory", inv, "plans", "list", "-o", "json"]);
    let listed: Value = serde_json::from_str(&listed).expect("list json");
    assert_eq!(listed.as_array().expect("plans").len(), 1, "--check stores nothing");
}

/// A plan's table without what belongs to the run: the time in the plan id
/// (`plan-20261204t063824z-…`, also in the tenant isolation line) and the
/// solve time.
fn without_run_text(table: &str) -> String {
    const ISOLATION: &str = "(kplan plans isolation plan-";
    table
        .lines()
        .map(|line| match line.strip_prefix("plan plan-") {
            Some(rest) if rest.len() > 17 => {
                let solved = rest.find(", solved in ").map_or(rest.len(), |i| i);
                format!("plan plan-TIME{}, solved in (time)", &rest[16..solved])
            }
            _ => match line.find(ISOLATION) {
                Some(i) if line.len() > i + ISOLATION.len() + 16 => {
                    format!("{}{ISOLATION}TIME{}", &line[..i], &line[i + ISOLATION.len() + 16..])
                }
                _ => line.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_shows_what_the_main_job_prints() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = &readme[readme.find("## What the main job prints").expect("the main job's section")..];
    let block = section.split("```\n").nth(1).expect("the output block");
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory");
    let inv = inventory.to_str().expect("utf-8");
    // What scripts/run-example.sh runs (with this build's binary).
    kplan_ok(&["--inventory", inv, "import", "--estate", &example("estate.toml")]);
    let printed = kplan_ok(&["--inventory", inv, "propose", "--policy", &example("policy.toml")]);
    assert_eq!(
        without_run_text(block),
        without_run_text(&printed),
        "README.md's example output is not what the main job prints: update it from ./scripts/run-example.sh"
    );
}

/// README.md's isolation output for the example's plan: every line of the
/// block (rows left out are marked `…`) is a line `kplan plans isolation`
/// prints, in the same order, and the summary is the last line of both.
#[test]
fn the_readme_shows_the_example_plans_isolation_report() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section =
        &readme[readme.find("The example estate itself (`examples/bank/`)").expect("the example's isolation")..];
    let block = section.split("```\n").nth(1).expect("the output block");
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory");
    let inv = inventory.to_str().expect("utf-8");
    let plan: Value = serde_json::from_str(&propose_bank_example(inv)).expect("plan json");
    let id = plan["id"].as_str().expect("id");
    let printed = kplan_ok(&["--inventory", inv, "plans", "isolation", id]);
    let mut printed_lines = printed.lines();
    for line in block.lines().filter(|line| *line != "…") {
        assert!(
            printed_lines.any(|p| p == line),
            "README.md's isolation output has a line `kplan plans isolation` does not print (or not in this order): \
             {line:?}\n{printed}"
        );
    }
    assert_eq!(block.lines().last(), printed.lines().last(), "the summary line");
    assert!(block.lines().count() >= 10, "the block shows rows");
}
