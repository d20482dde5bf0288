//! The architecture invariants of ARCHITECTURE.md, checked: which crate may
//! depend on which (`cargo tree -e normal`, default features), and that the
//! validator imports nothing of the planner but the flow table and the
//! platform-namespace rule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Every package name in the normal (non-dev, non-build) dependency tree of
/// `package`, with its default features.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace())
        .args(["tree", "--locked", "--offline", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != package)
        .map(str::to_string)
        .collect()
}

fn assert_none_of(package: &str, forbidden: &[&str]) {
    let deps = normal_dependencies(package);
    assert!(deps.len() > 1, "cargo tree listed almost nothing for {package}: {deps:?}");
    let found: Vec<&&str> = forbidden.iter().filter(|name| deps.contains(**name)).collect();
    assert!(found.is_empty(), "{package} must not depend on {found:?} (ARCHITECTURE.md, \"Architecture invariants\")");
}

#[test]
fn the_planner_is_pure() {
    assert_none_of(
        "kplan-planner",
        &["tonic", "prost", "kplan-proto", "sled", "kplan-store", "tokio", "axum", "config", "kplan-server"],
    );
    // and it does use the solver: the check above is not vacuous
    assert!(normal_dependencies("kplan-planner").contains("highs-sys"));
}

#[test]
fn the_store_knows_no_service_and_no_solver() {
    assert_none_of(
        "kplan-store",
        &["tonic", "prost", "tokio", "good_lp", "highs-sys", "kplan-planner", "kplan-server"],
    );
    assert!(normal_dependencies("kplan-store").contains("sled"));
}

#[test]
fn the_model_is_plain_data() {
    assert_none_of(
        "kplan-model",
        &["tonic", "prost", "tokio", "sled", "good_lp", "highs-sys", "config", "kplan-planner"],
    );
}

#[test]
fn the_protocol_holds_no_store_or_solver() {
    assert_none_of("kplan-proto", &["sled", "good_lp", "highs-sys", "kplan-planner", "kplan-store", "kplan-server"]);
}

#[test]
fn the_cli_and_the_benchmark_never_link_the_server() {
    assert_none_of("kplan-cli", &["kplan-server"]);
    assert_none_of("kplan-bench", &["kplan-server"]);
    assert!(normal_dependencies("kplan-cli").contains("kplan-planner"));
}

#[test]
fn the_collector_is_pure() {
    assert_none_of(
        "kplan-collect",
        &["tokio", "kube", "kube-client", "hyper", "tonic", "prost", "sled", "good_lp", "kplan-proto", "kplan-planner"],
    );
}

#[test]
fn the_agent_never_links_the_planner_or_the_store() {
    assert_none_of("kplan-agent", &["kplan-planner", "kplan-store", "kplan-server", "good_lp", "sled"]);
}

/// The validator's imports from the rest of its crate: only these.
const VALIDATOR_MAY_IMPORT: &[&str] =
    &["crate::flows::{normalize_cni, required_flows}", "crate::namespaces::{find_addons, is_platform_namespace}"];

#[test]
fn the_validator_shares_no_code_with_the_model() {
    let dir = workspace().join("planner/src/validate");
    let mut imports = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("planner/src/validate") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        for line in text.lines() {
            let line = line.trim();
            // Paths out of the validator: `crate::…`, or `super::` from validate/mod.rs.
            let outward = line.contains("crate::") || (path.ends_with("mod.rs") && line.contains("super::"));
            if outward && !line.starts_with("//") {
                imports.push((path.file_name().unwrap().to_string_lossy().to_string(), line.to_string()));
            }
        }
    }
    assert!(!imports.is_empty(), "the validator imports the flow table; found no import at all");
    for (file, line) in &imports {
        let allowed = VALIDATOR_MAY_IMPORT.iter().any(|allowed| line == &format!("use {allowed};"));
        assert!(allowed, "validate/{file}: {line:?} reaches into the planner (allowed: {VALIDATOR_MAY_IMPORT:?})");
    }
}
