//! Issue 8: capacity reviews over gRPC, from the CLI and from the Python example client.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn capacity_review_from_cli_and_python_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let url = server.url();
    let estate = repo_root().join("examples/bank/estate.toml");
    kplan_ok(&["--server", &url, "import", "--estate", estate.to_str().expect("utf-8 path")]);

    let review: Value =
        serde_json::from_str(&kplan_ok(&["--server", &url, "capacity", "review", "-o", "json"])).expect("json");
    let blocks = review["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 5, "{review:#}");
    let fra_prod = blocks.iter().find(|b| b["datacenter"] == "fra" && b["security_tier"] == "prod").expect("fra/prod");
    assert_eq!(fra_prod["n_nodes"], 67);
    let cpu = &fra_prod["resources"][0];
    assert_eq!(cpu["resource"], "cpu");
    let utilisation = cpu["utilisation"].as_f64().expect("utilisation");
    let expected = cpu["requested"].as_f64().expect("requested") / cpu["allocatable"].as_f64().expect("allocatable");
    assert!((utilisation - expected).abs() < 1e-9);
    assert!(cpu["requested_change"].is_null(), "one quarter of history has no previous quarter");
    assert!(review["stale_clusters"].as_array().expect("stale").is_empty());

    // The embedded mode computes the same review from a local inventory.
    let inventory = dir.path().join("inv");
    let inventory = inventory.to_str().expect("utf-8 path");
    kplan_ok(&["--inventory", inventory, "import", "--estate", estate.to_str().expect("utf-8 path")]);
    let local: Value =
        serde_json::from_str(&kplan_ok(&["--inventory", inventory, "capacity", "review", "-o", "json"])).expect("json");
    assert_eq!(local["blocks"], review["blocks"]);

    let table = kplan_ok(&["--server", &url, "capacity", "review", "--datacenter", "sin"]);
    assert!(table.contains("sin/prod") && !table.contains("fra/prod"), "{table}");
    let line = kplan_err(&["--server", &url, "capacity", "review", "--quarter", "2026Q7"]);
    assert!(line.contains("2026Q7"), "{line}");

    if std::env::var_os("CI").is_none() && !python3_has("grpc_tools") {
        eprintln!("skipping the python client: grpcio-tools is not installed (scripts/setup.sh installs it)");
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("examples/capacity-review/review.py"))
        .args(["--server", &server.addr, "--tier", "prod"])
        .output()
        .expect("runs python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("capacity review "), "{stdout}");
    // 3 prod blocks × 3 resources, after the title and the header.
    assert_eq!(lines.len(), 2 + 9, "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("fra/prod") && l.contains("cpu_millis")), "{stdout}");
}
