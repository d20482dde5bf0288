//! Issue 15: a plan's waves as runbooks. The example estate's first wave,
//! walked step by step against its plan: every node of the wave is drained
//! in exactly one step and, when it joins a target, joined in exactly one
//! later step; every namespace is backed up before any node is touched and
//! restored in exactly one step after the joins; in the documented order
//! (preconditions, firewall, backups, drains with source control planes last,
//! joins with the target's control plane first, add-on installs, restores, retirements); the firewall request lists every flow once, also as CSV; the
//! Velero manifests are written one file per object.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::Value;

const PHASES: [&str; 9] = [
    "precondition",
    "firewall",
    "backup-namespace",
    "drain-node",
    "join-node",
    "install-addon",
    "apply-isolation",
    "restore-namespace",
    "retire-cluster",
];

fn example_plan(inv: &str) -> Value {
    serde_json::from_str(&propose_bank_example(inv)).expect("plan json")
}

/// The example's plan and its JSON runbook (`extra`: more arguments, e.g.
/// `--wave 1`), with the directory of the inventory they were made from.
fn example_runbook(extra: &[&str]) -> (tempfile::TempDir, Value, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory");
    let inv = inventory.to_str().expect("utf-8");
    let plan = example_plan(inv);
    let id = plan["id"].as_str().expect("id");
    let mut args = vec!["--inventory", inv, "plans", "runbook", id, "--format", "json"];
    args.extend_from_slice(extra);
    let runbook: Value = serde_json::from_str(&kplan_ok(&args)).expect("runbook json");
    (dir, plan, runbook)
}

#[test]
fn the_first_wave_of_the_example_is_walked_step_by_step() {
    let (dir, plan, runbook) = example_runbook(&["--wave", "1"]);
    let inventory = dir.path().join("inventory");
    let inv = inventory.to_str().expect("utf-8");
    let id = plan["id"].as_str().expect("id");

    let blocks: BTreeMap<String, &Value> = plan["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| {
            (format!("{}/{}", b["datacenter"].as_str().unwrap_or(""), b["security_tier"].as_str().unwrap_or("")), b)
        })
        .collect();
    let books = runbook["blocks"].as_array().expect("runbook blocks");
    let planned = blocks.values().filter(|b| b["waves"].as_array().is_some_and(|w| !w.is_empty())).count();
    assert_eq!(books.len(), planned, "one runbook per block with waves");
    for book in books {
        let key =
            format!("{}/{}", book["datacenter"].as_str().unwrap_or(""), book["security_tier"].as_str().unwrap_or(""));
        let block = blocks[&key];
        let wave = &block["waves"][0];
        let steps = book["waves"][0]["steps"].as_array().expect("steps");
        assert_eq!(book["waves"][0]["wave"], 1);

        // Numbered 1.. in order, phases in the documented order.
        let phase_rank = |s: &Value| PHASES.iter().position(|p| s["phase"] == *p).expect("a known phase");
        for (i, step) in steps.iter().enumerate() {
            assert_eq!(step["number"], (i + 1) as u64, "{key}: steps are numbered in order");
            if i > 0 {
                assert!(phase_rank(&steps[i - 1]) <= phase_rank(step), "{key}: phases out of order at step {}", i + 1);
            }
        }

        // Every node of the wave: exactly one drain; every joining node exactly one join.
        let count_steps = |phase: &str, kind: &str, field: &str| -> BTreeMap<(String, String), usize> {
            let mut counts = BTreeMap::new();
            for step in steps.iter().filter(|s| s["phase"] == phase && s["subject"]["kind"] == kind) {
                let key = (
                    step["subject"]["cluster"].as_str().unwrap().to_string(),
                    step["subject"][field].as_str().unwrap().to_string(),
                );
                *counts.entry(key).or_insert(0) += 1;
            }
            counts
        };
        let node_key =
            |n: &Value| (n["cluster_id"].as_str().unwrap().to_string(), n["node"].as_str().unwrap().to_string());
        let wave_nodes: BTreeSet<(String, String)> =
            wave["nodes"].as_array().expect("nodes").iter().map(node_key).collect();
        let joining: BTreeSet<(String, String)> = wave["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["action"] == "drain-and-join")
            .map(node_key)
            .collect();
        let drains = count_steps("drain-node", "node", "node");
        let joins = count_steps("join-node", "node", "node");
        assert_eq!(drains.keys().cloned().collect::<BTreeSet<_>>(), wave_nodes, "{key}: the wave's nodes are drained");
        assert!(drains.values().all(|&n| n == 1), "{key}: one drain per node: {drains:?}");
        assert_eq!(joins.keys().cloned().collect::<BTreeSet<_>>(), joining, "{key}: the joining nodes join");
        assert!(joins.values().all(|&n| n == 1), "{key}: one join per node: {joins:?}");

        // Every namespace of the wave: exactly one step, renamed where the plan renames.
        let wave_namespaces: BTreeMap<(String, String), String> = wave["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|n| {
                (
                    (n["from_cluster"].as_str().unwrap().to_string(), n["namespace"].as_str().unwrap().to_string()),
                    n["new_name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let backups = count_steps("backup-namespace", "namespace", "namespace");
        assert!(backups.values().all(|&n| n == 1), "{key}: at most one backup per namespace");
        assert!(backups.keys().all(|k| wave_namespaces.contains_key(k)), "{key}: backups of the wave's namespaces");
        let namespace_steps: Vec<&Value> = steps.iter().filter(|s| s["phase"] == "restore-namespace").collect();
        assert_eq!(namespace_steps.len(), wave_namespaces.len(), "{key}: one restore per namespace");
        for step in namespace_steps {
            let subject = (
                step["subject"]["cluster"].as_str().unwrap().to_string(),
                step["subject"]["namespace"].as_str().unwrap().to_string(),
            );
            let new_name =
                wave_namespaces.get(&subject).unwrap_or_else(|| panic!("{key}: {subject:?} is not in wave 1"));
            let objects = step["objects"].as_array().expect("velero objects");
            let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
            assert_eq!(kinds, ["Restore"]);
            assert_eq!(objects[0]["spec"]["includedNamespaces"][0], subject.1.as_str());
            if *new_name != subject.1 {
                assert_eq!(objects[0]["spec"]["namespaceMapping"][&subject.1], new_name.as_str(), "{key}: rename");
            } else {
                assert!(objects[0]["spec"].get("namespaceMapping").is_none());
            }
            assert_eq!(backups.get(&subject), Some(&1), "{key}: {subject:?} is backed up in this wave");
        }

        // The control plane first: no worker joins a target before its first
        // control-plane node in this wave, and the first wave that joins nodes
        // to a target initialises it (the plan's rule `control-plane-first`).
        let control_plane: BTreeSet<(String, String)> = block["target_clusters"]
            .as_array()
            .expect("targets")
            .iter()
            .flat_map(|t| t["control_plane"].as_array().into_iter().flatten())
            .map(|c| (c["cluster_id"].as_str().unwrap().to_string(), c["node"].as_str().unwrap().to_string()))
            .collect();
        let node_order: Vec<bool> = steps
            .iter()
            .filter(|s| s["phase"] == "join-node" && s["subject"]["kind"] == "node")
            .map(|s| {
                control_plane.contains(&(
                    s["subject"]["cluster"].as_str().unwrap().to_string(),
                    s["subject"]["node"].as_str().unwrap().to_string(),
                ))
            })
            .collect();
        assert!(node_order.windows(2).all(|w| w[0] || !w[1]), "{key}: control-plane nodes first");
        let joins_target = wave["nodes"].as_array().unwrap().iter().any(|n| n["action"] == "drain-and-join");
        let initialises = steps.iter().any(|s| s["title"].as_str().is_some_and(|t| t.contains("(initialise)")));
        let blocked = steps.iter().any(|s| s["title"].as_str().is_some_and(|t| t.starts_with("BLOCKED")));
        assert!(!blocked, "{key}: no step is blocked by a missing control plane");
        if joins_target {
            assert!(initialises, "{key}: a target that takes nodes in wave 1 is initialised in it");
        }

        // The isolation objects: each directory once, before any namespace is
        // restored; a target's cluster-scoped `wave-0` before its `wave-1`.
        let applies: Vec<&str> = steps
            .iter()
            .filter(|s| s["phase"] == "apply-isolation")
            .map(|s| s["commands"][0].as_str().expect("a command"))
            .collect();
        let unique: BTreeSet<&&str> = applies.iter().collect();
        assert_eq!(unique.len(), applies.len(), "{key}: each isolation directory once: {applies:?}");
        for (i, command) in applies.iter().enumerate() {
            let dir = command.split_whitespace().nth(5).expect("apply -k DIR");
            assert!(
                dir.starts_with("isolation/") && (dir.ends_with("/wave-0") || dir.ends_with("/wave-1")),
                "{command}"
            );
            if let Some(target) = dir.strip_suffix("/wave-0") {
                let first = format!("{target}/wave-1");
                let later = applies[i..].iter().any(|c| c.contains(&first));
                let sooner = applies[..i].iter().any(|c| c.contains(&first));
                assert!(later || !sooner, "{key}: {target}'s wave-0 before its wave-1");
            }
        }

        // The firewall request: every flow of the block, once, before any node moves.
        let flows = block["firewall_flows"].as_array().expect("flows");
        let requests: Vec<&Value> = steps.iter().filter(|s| s["phase"] == "firewall").collect();
        if flows.is_empty() {
            assert!(requests.is_empty());
        } else {
            assert_eq!(requests.len(), 1, "{key}: one change request");
            assert_eq!(requests[0]["rows"].as_array().expect("rows").len(), flows.len());
        }
    }

    // The same request as CSV: a header and one row per flow of wave 1's blocks.
    let csv = kplan_ok(&["--inventory", inv, "plans", "runbook", id, "--wave", "1", "--firewall-csv"]);
    let n_flows: usize = blocks.values().map(|b| b["firewall_flows"].as_array().map_or(0, Vec::len)).sum();
    assert!(csv.starts_with("source zone,destination zone,protocol,ports,purpose,target cluster\n"), "{csv}");
    assert_eq!(csv.lines().count(), n_flows + 1);

    // Markdown for a board: one wave of one block.
    let markdown = kplan_ok(&["--inventory", inv, "plans", "runbook", id, "--block", "sin/prod", "--wave", "2"]);
    assert!(markdown.contains("## sin/prod") && markdown.contains("### Wave 2"), "{markdown}");
    assert!(!markdown.contains("## fra/prod"));
    let error = kplan_err(&["--inventory", inv, "plans", "runbook", id, "--wave", "99"]);
    assert!(error.contains("no wave 99"), "{error}");
}

#[test]
fn the_manifests_are_one_yaml_file_per_velero_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory");
    let inv = inventory.to_str().expect("utf-8");
    let plan = example_plan(inv);
    let id = plan["id"].as_str().expect("id");
    let out = dir.path().join("manifests");
    kplan_ok(&[
        "--inventory",
        inv,
        "plans",
        "export",
        id,
        "--format",
        "manifests",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    let moves: usize = plan["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .flat_map(|b| b["waves"].as_array().into_iter().flatten())
        .map(|w| w["namespaces"].as_array().map_or(0, Vec::len))
        .sum();
    let mut files = Vec::new();
    for block in std::fs::read_dir(&out).expect("blocks") {
        let block = block.expect("block").path();
        // The tenant isolation objects, per target (tests/tests/isolation.rs).
        if block.file_name().is_some_and(|name| name == "isolation") {
            continue;
        }
        for wave in std::fs::read_dir(&block).expect("waves") {
            for file in std::fs::read_dir(wave.expect("wave").path()).expect("files") {
                files.push(file.expect("file").path());
            }
        }
    }
    assert_eq!(files.len(), 2 * moves, "a Backup and a Restore per namespace move");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let object: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let kind = object["kind"].as_str().expect("kind");
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(name.starts_with(&kind.to_lowercase()), "{name} holds a {kind}");
        assert_eq!(object["apiVersion"], "velero.io/v1");
        assert_eq!(object["metadata"]["namespace"], "velero");
    }
    let error = kplan_err(&["--inventory", inv, "plans", "export", id, "--format", "manifests"]);
    assert!(error.contains("--out DIR"), "{error}");
}

/// Every add-on of the example's plan is installed in exactly one step, on
/// its target, in the wave the plan says, before any namespace is restored
/// into that target in that wave; no add-on is backed up or restored.
#[test]
fn every_addon_of_the_example_is_installed_once_before_its_target_takes_namespaces() {
    let (_dir, plan, runbook) = example_runbook(&[]);
    // (block, wave, target, add-on) as the plan says and as the runbook does.
    let mut planned = BTreeSet::new();
    // (block, source cluster, namespace) of every instance of an add-on.
    let mut instances = BTreeSet::new();
    for block in plan["blocks"].as_array().expect("blocks") {
        let key = format!("{}/{}", block["datacenter"].as_str().unwrap(), block["security_tier"].as_str().unwrap());
        for target in block["target_clusters"].as_array().expect("targets") {
            for addon in target["addons"].as_array().into_iter().flatten() {
                for instance in addon["instances"].as_array().expect("instances") {
                    instances.insert((
                        key.clone(),
                        instance["cluster_id"].as_str().unwrap().to_string(),
                        addon["namespace"].as_str().unwrap().to_string(),
                    ));
                }
                planned.insert((
                    key.clone(),
                    addon["wave"].as_u64().unwrap(),
                    target["name"].as_str().unwrap().to_string(),
                    addon["namespace"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    assert!(planned.len() >= 10, "the example installs its add-ons on every target: {planned:?}");
    let mut installed = Vec::new();
    for book in runbook["blocks"].as_array().expect("runbook blocks") {
        let key = format!("{}/{}", book["datacenter"].as_str().unwrap(), book["security_tier"].as_str().unwrap());
        for wave in book["waves"].as_array().expect("waves") {
            let steps = wave["steps"].as_array().expect("steps");
            for (i, step) in steps.iter().enumerate().filter(|(_, s)| s["phase"] == "install-addon") {
                let target = step["subject"]["cluster"].as_str().unwrap().to_string();
                let addon = step["subject"]["namespace"].as_str().unwrap().to_string();
                let restores_before = steps[..i]
                    .iter()
                    .filter(|s| s["phase"] == "restore-namespace")
                    .any(|s| s["commands"].to_string().contains(&format!("--context {target} create -f restore-")));
                assert!(
                    !restores_before,
                    "{key} wave {}: {addon} installed after a restore into {target}",
                    wave["wave"]
                );
                installed.push((key.clone(), wave["wave"].as_u64().unwrap(), target, addon));
            }
            for step in steps.iter().filter(|s| s["subject"]["kind"] == "namespace") {
                let subject = (
                    key.clone(),
                    step["subject"]["cluster"].as_str().unwrap().to_string(),
                    step["subject"]["namespace"].as_str().unwrap().to_string(),
                );
                assert!(!instances.contains(&subject), "{key}: an add-on is backed up or restored: {}", step["title"]);
            }
        }
    }
    let once: BTreeSet<_> = installed.iter().cloned().collect();
    assert_eq!(once.len(), installed.len(), "one install step per add-on");
    assert_eq!(once, planned, "the runbook installs what the plan lists, in its wave");
}

/// Every isolation directory the export writes (`isolation/<target>/wave-N`)
/// is applied by exactly one step of the whole runbook: `wave-N` in wave N,
/// `wave-0` in the target's first wave with one, before it; always before
/// the wave's restores.
#[test]
fn every_isolation_directory_is_applied_once_in_its_wave_before_the_restores() {
    let (dir, plan, runbook) = example_runbook(&[]);
    let inventory = dir.path().join("inventory");
    let out = dir.path().join("manifests");
    let id = plan["id"].as_str().expect("id");
    let (inv, out_arg) = (inventory.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    kplan_ok(&["--inventory", inv, "plans", "export", id, "--format", "manifests", "--out", out_arg]);
    let mut exported = BTreeSet::new();
    for target in std::fs::read_dir(out.join("isolation")).expect("isolation") {
        let target = target.expect("target").path();
        for wave in std::fs::read_dir(&target).expect("waves").map(|w| w.expect("wave").path()) {
            if wave.is_dir() {
                let target = target.file_name().and_then(|n| n.to_str()).expect("utf-8");
                let wave = wave.file_name().and_then(|n| n.to_str()).expect("utf-8");
                exported.insert(format!("isolation/{target}/{wave}"));
            }
        }
    }
    assert!(!exported.is_empty(), "the example's merges have isolation objects");
    // Every apply step: (its directory, the wave it is in).
    let mut applied: BTreeMap<String, u64> = BTreeMap::new();
    for block in runbook["blocks"].as_array().expect("blocks") {
        for wave in block["waves"].as_array().expect("waves") {
            let index = wave["wave"].as_u64().expect("wave");
            let steps = wave["steps"].as_array().expect("steps");
            let first_restore = steps.iter().position(|s| s["phase"] == "restore-namespace").unwrap_or(steps.len());
            for (i, step) in steps.iter().enumerate().filter(|(_, s)| s["phase"] == "apply-isolation") {
                assert!(i < first_restore, "wave {index}: {} before the restores", step["title"]);
                let command = step["commands"][0].as_str().expect("a command");
                let dir = command.split_whitespace().nth(5).expect("apply -k DIR").to_string();
                assert!(applied.insert(dir.clone(), index).is_none(), "{dir} applied twice");
            }
        }
    }
    assert_eq!(applied.keys().cloned().collect::<BTreeSet<_>>(), exported, "each exported directory, once");
    for (dir, wave) in &applied {
        let (target, named) = dir.rsplit_once("/wave-").expect("a wave directory");
        let named: u64 = named.parse().expect("a number");
        if named == 0 {
            let first = applied.iter().filter(|(d, _)| d.starts_with(&format!("{target}/"))).map(|(_, w)| *w).min();
            assert_eq!(Some(*wave), first, "{dir} in the target's first wave with isolation objects");
        } else {
            assert_eq!(*wave, named, "{dir} in its own wave");
        }
    }
}
