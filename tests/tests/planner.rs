//! Issue 4 end to end: `kplan propose` on the example estate, embedded and
//! against the real server, the stored plans and their exports.

mod common;

use common::*;
use serde_json::Value;

fn estate() -> String {
    repo_root().join("examples/bank/estate.toml").to_str().expect("utf-8 path").to_string()
}

fn policy() -> String {
    repo_root().join("examples/bank/policy.toml").to_str().expect("utf-8 path").to_string()
}

fn block<'a>(plan: &'a Value, dc: &str, tier: &str) -> &'a Value {
    plan["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .find(|b| b["datacenter"] == dc && b["security_tier"] == tier)
        .unwrap_or_else(|| panic!("no block {dc}/{tier}"))
}

/// What the example estate must show (examples/bank/README.md lists the cases).
fn check_bank_plan(plan: &Value) {
    let blocks = plan["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 5, "fra/prod, fra/dev, lon/prod, lon/dev, sin/prod");
    for b in blocks {
        for field in [
            "datacenter",
            "security_tier",
            "status",
            "explanation",
            "target_clusters",
            "nodes_freed",
            "firewall_flows",
            "waves",
            "namespace_renames",
            "preconditions",
            "objective",
            "lower_bound",
            "gap",
        ] {
            assert!(b.get(field).is_some(), "block lacks {field}: {b:#}");
        }
        if b["status"] == "infeasible" {
            // Never a bare "infeasible": the block, what stalls and why.
            let explanation = b["explanation"].as_str().expect("explanation");
            assert!(explanation.len() > 80, "{explanation}");
            assert!(b["waves"].as_array().expect("waves").is_empty());
            continue;
        }
        assert_eq!(b["status"], "planned");
        let gap = b["gap"].as_f64().expect("gap");
        assert!((0.0..=1.0).contains(&gap), "gap {gap}");
        assert!(b["objective"].as_f64().expect("objective") + 1e-6 >= b["lower_bound"].as_f64().expect("bound"));
        assert!(!b["waves"].as_array().expect("waves").is_empty());
        for target in b["target_clusters"].as_array().expect("targets") {
            assert!(target["nodes_kept"].as_array().is_some_and(|n| !n.is_empty()));
            for cp in target["control_plane"].as_array().expect("control plane") {
                assert!(cp["node"].is_string() && cp["zone"].is_string(), "{cp}");
            }
        }
    }
    for (dc, tier) in [("fra", "prod"), ("fra", "dev"), ("lon", "prod"), ("sin", "prod")] {
        assert_eq!(block(plan, dc, tier)["status"], "planned", "{dc}/{tier}: {}", block(plan, dc, tier)["explanation"]);
    }

    // Three control-plane nodes in three distinct zones where the block has three zones.
    let fra_prod = block(plan, "fra", "prod");
    let target = &fra_prod["target_clusters"][0];
    let mut zones: Vec<&str> =
        target["control_plane"].as_array().expect("cp").iter().map(|c| c["zone"].as_str().expect("zone")).collect();
    zones.sort_unstable();
    zones.dedup();
    assert_eq!(zones.len(), 3, "{target:#}");
    // The payments collision is reported with a rename.
    let renames = fra_prod["namespace_renames"].as_array().expect("renames");
    assert!(renames.iter().any(|r| r["namespace"] == "payments"), "{renames:#?}");
    // The old docker cluster must migrate its runtime first.
    let preconditions = fra_prod["preconditions"].as_array().expect("preconditions");
    assert!(
        preconditions.iter().any(|p| p["cluster_id"] == "fra-prod-core" && p["kind"] == "runtime-migration"),
        "{preconditions:#?}"
    );
    // Cross-zone flows are listed with their purpose.
    let flows = fra_prod["firewall_flows"].as_array().expect("flows");
    assert!(flows.iter().any(|f| f["purpose"] == "etcd" && f["ports"] == "2379-2380"), "{flows:#?}");

    // fra/dev has two zones: the control plane cannot spread over three, and the plan says so.
    let fra_dev = block(plan, "fra", "dev");
    let note = fra_dev["target_clusters"][0]["control_plane_note"].as_str().expect("note");
    assert!(note.contains("2 firewall zones"), "{note}");

    // lon/dev (one zone, two tightly packed sources) cannot be staged within the
    // policy's headroom; the plan says why in a user's words.
    let lon_dev = block(plan, "lon", "dev");
    if lon_dev["status"] == "infeasible" {
        let explanation = lon_dev["explanation"].as_str().expect("explanation");
        assert!(explanation.contains("lon/dev") && explanation.contains("headroom"), "{explanation}");
    }

    // The small site gets one lightweight server.
    let sin = &block(plan, "sin", "prod")["target_clusters"][0];
    assert_eq!(sin["small_site"], true);
    assert_eq!(sin["control_plane"].as_array().expect("cp").len(), 1);

    // The prod namespace living in a dev cluster moves with the prod block.
    let moved: Vec<(String, String)> = fra_prod["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .flat_map(|w| w["namespaces"].as_array().expect("namespaces").iter())
        .map(|n| {
            (n["from_cluster"].as_str().unwrap_or("").to_string(), n["namespace"].as_str().unwrap_or("").to_string())
        })
        .collect();
    assert!(
        moved.iter().any(|(c, _)| c == "fra-dev-analytics"),
        "fra/prod must receive fra-dev-analytics' prod namespace"
    );
}

#[test]
fn propose_embedded_on_the_example_estate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inv");
    let inventory = inventory.to_str().expect("utf-8 path");
    kplan_ok(&["--inventory", inventory, "import", "--estate", &estate()]);
    let out = kplan_ok(&["--inventory", inventory, "propose", "--policy", &policy(), "-o", "json"]);
    let plan: Value = serde_json::from_str(&out).expect("json plan");
    check_bank_plan(&plan);

    let id = plan["id"].as_str().expect("id");
    let listed: Value =
        serde_json::from_str(&kplan_ok(&["--inventory", inventory, "plans", "list", "-o", "json"])).expect("json");
    assert_eq!(listed[0]["id"], id);
    let shown: Value =
        serde_json::from_str(&kplan_ok(&["--inventory", inventory, "plans", "show", id, "-o", "json"])).expect("json");
    assert_eq!(shown, plan);
    let dot = kplan_ok(&["--inventory", inventory, "plans", "export", id, "--format", "dot"]);
    assert!(dot.starts_with("digraph plan {") && dot.contains("wave"), "{dot}");
    let md = kplan_ok(&["--inventory", inventory, "plans", "export", id, "--format", "markdown"]);
    assert!(md.contains("## fra / prod") && md.contains("### Firewall flows to open"), "{md}");
    let table = kplan_ok(&["--inventory", inventory, "propose", "--policy", &policy()]);
    assert!(table.starts_with("BLOCK"), "{table}");

    // --write-model writes one MPS file per solved model.
    let models = dir.path().join("models");
    kplan_ok(&[
        "--inventory",
        inventory,
        "propose",
        "--policy",
        &policy(),
        "--block",
        "sin/prod",
        "--write-model",
        models.to_str().expect("utf-8 path"),
    ]);
    let n_models = std::fs::read_dir(&models).expect("models dir").count();
    assert!(n_models >= 1, "no model written");
}

#[test]
fn propose_through_the_server_and_plans_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let url = server.url();
    // An empty inventory is refused with a reason, not a crash.
    let line = kplan_err(&["--server", &url, "propose"]);
    assert!(line.contains("inventory is empty"), "{line}");

    kplan_ok(&["--server", &url, "import", "--estate", &estate()]);
    let plan: Value =
        serde_json::from_str(&kplan_ok(&["--server", &url, "propose", "--policy", &policy(), "-o", "json"]))
            .expect("json");
    check_bank_plan(&plan);
    let id = plan["id"].as_str().expect("id").to_string();
    server.kill9();

    let server = Server::start(dir.path());
    let url = server.url();
    let shown: Value =
        serde_json::from_str(&kplan_ok(&["--server", &url, "plans", "show", &id, "-o", "json"])).expect("json");
    assert_eq!(shown["blocks"], plan["blocks"]);
    let yaml = kplan_ok(&["--server", &url, "plans", "export", &id, "--format", "yaml"]);
    assert!(yaml.contains(&format!("id: {id}")), "{yaml}");
    let line = kplan_err(&["--server", &url, "plans", "show", "plan-nope"]);
    assert!(line.contains("plan-nope"), "{line}");
}

#[test]
fn a_bad_policy_is_named_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inv");
    let inventory = inventory.to_str().expect("utf-8 path");
    kplan_ok(&["--inventory", inventory, "import", "--estate", &estate()]);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[headroom]\ncpu = 1.5\n[wave_budget]\nnodes = 0\n").expect("writes");
    let line = kplan_err(&["--inventory", inventory, "propose", "--policy", bad.to_str().expect("utf-8 path")]);
    assert!(line.contains("headroom.cpu") && line.contains("wave_budget.nodes"), "{line}");
    std::fs::write(&bad, "hedroom = 3\n").expect("writes");
    let line = kplan_err(&["--inventory", inventory, "propose", "--policy", bad.to_str().expect("utf-8 path")]);
    assert!(line.contains("hedroom"), "{line}");
}

/// `kplan` with extra environment variables; asserts success, returns stdout.
fn kplan_env_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(bin("kplan"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("KPLAN_SERVER")
        .env_remove("KPLAN_INVENTORY")
        .env("KPLAN_INSECURE_PLAINTEXT", "true")
        .output()
        .expect("running kplan");
    assert!(out.status.success(), "kplan {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// A server plans with what the CLI merged and checked (file < KPLAN_POLICY__*),
/// not with the raw file, nor with its own default when only variables are set.
#[test]
fn a_server_plans_with_the_policy_the_cli_merged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inv");
    let inventory = inventory.to_str().expect("utf-8 path");
    kplan_ok(&["--inventory", inventory, "import", "--estate", &estate()]);
    let server = Server::start(&dir.path().join("server"));
    let url = server.url();
    kplan_ok(&["--server", &url, "import", "--estate", &estate()]);

    let digest = |mode: &[&str], policy: Option<&str>, env: &[(&str, &str)]| -> String {
        let mut args: Vec<&str> = mode.to_vec();
        args.extend(["propose", "--block", "sin/prod", "-o", "json"]);
        if let Some(policy) = policy {
            args.extend(["--policy", policy]);
        }
        let plan: Value = serde_json::from_str(&kplan_env_ok(&args, env)).expect("json");
        plan["policy_digest"].as_str().expect("digest").to_string()
    };
    let embedded: &[&str] = &["--inventory", inventory];
    let remote: &[&str] = &["--server", &url];
    let headroom = [("KPLAN_POLICY__HEADROOM__CPU", "0.35")];
    let policy = policy();

    // the file with an override, and an override alone: the same policy both ways
    let with_file = digest(embedded, Some(&policy), &headroom);
    assert_eq!(digest(remote, Some(&policy), &headroom), with_file);
    assert_ne!(with_file, digest(embedded, Some(&policy), &[]), "the override changes the policy");
    let alone = digest(embedded, None, &headroom);
    assert_eq!(digest(remote, None, &headroom), alone);
    // neither: the server's own policy (here its defaults), as before
    assert_eq!(digest(remote, None, &[]), digest(embedded, None, &[]));
}
