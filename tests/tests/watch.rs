//! The daemon keeps watch (issue 16), against the real binaries: a small
//! hand-made estate reported over gRPC (as agents do), a plan proposed and
//! approved with `kplan`, then the estate changed by hand in the reports.
//!
//! - `plan_lifecycle_survives_sigkill_and_is_shown`: approve, supersede,
//!   refusals; the state, who and when survive a SIGKILL of the server; the
//!   embedded mode does the same on a local store.
//! - `approved_plan_progress_and_drift_are_read_from_reports`: reports that
//!   carry out wave 1 make `plans status` show wave 1 done and the rest
//!   pending; a report growing a namespace beyond what a later wave can hold
//!   makes the plan drifted within 5 s, with a finding naming the namespace
//!   and the wave, in `plans status`, the metrics and the `WatchPlan` stream
//!   (read by the Python grpcio client with no kplan stubs).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, http_get, kplan, kplan_err, kplan_ok, metric_value, python3_has, repo_root};
use kplan_model::test_support::{carry_out_wave, three_cluster_block};
use kplan_model::{ClusterSnapshot, Plan};
use kplan_proto::v1::inventory_service_client::InventoryServiceClient;

/// Three clusters of one block (fra/prod), each a control plane and four workers over three zones.
fn estate() -> BTreeMap<String, ClusterSnapshot> {
    three_cluster_block().into_iter().map(|s| (s.cluster_id.clone(), s)).collect()
}

const POLICY: &str = "[wave_budget]\nnodes = 6\nnamespaces = 2\n";

fn write_policy(dir: &Path, name: &str, extra: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{POLICY}{extra}")).expect("writes the policy");
    path.to_str().expect("utf-8").to_string()
}

/// Reports snapshots over gRPC, as agents do.
fn report(server: &Server, snapshots: &[&ClusterSnapshot]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = InventoryServiceClient::connect(server.url()).await.expect("connects");
        for snapshot in snapshots {
            let request = kplan_proto::v1::ReportSnapshotRequest { snapshot: Some((*snapshot).clone().into()) };
            let reply =
                client.report_snapshot(request).await.unwrap_or_else(|e| panic!("{}: {e}", snapshot.cluster_id));
            assert!(reply.into_inner().created, "{} generation {} is new", snapshot.cluster_id, snapshot.generation);
        }
    });
}

fn propose(url: &str, policy: &str) -> Plan {
    let text = kplan_ok(&["--server", url, "propose", "--policy", policy, "-o", "json"]);
    let plan: Plan = serde_json::from_str(&text).expect("plan json");
    assert!(plan.blocks.iter().all(|b| b.status == kplan_model::BlockStatus::Planned), "planned: {text}");
    plan
}

fn status_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&kplan_ok(args)).expect("status json")
}

fn list_row<'a>(list: &'a serde_json::Value, plan_id: &str) -> &'a serde_json::Value {
    list.as_array().expect("array").iter().find(|p| p["id"] == plan_id).unwrap_or_else(|| panic!("{plan_id} in {list}"))
}

#[test]
fn plan_lifecycle_survives_sigkill_and_is_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let url = server.url();
    let estate = estate();
    report(&server, &estate.values().collect::<Vec<_>>());
    let first = propose(&url, &write_policy(dir.path(), "a.toml", ""));
    let second = propose(&url, &write_policy(dir.path(), "b.toml", "[headroom]\ncpu = 0.25\n"));
    assert_ne!(first.id, second.id);

    let list = status_json(&["--server", &url, "plans", "list", "-o", "json"]);
    assert_eq!(list_row(&list, &first.id)["lifecycle"]["state"], "proposed");
    let out = kplan_ok(&["--server", &url, "plans", "approve", &first.id]);
    assert!(out.starts_with(&format!("plan {}: approved by anonymous at ", first.id)), "{out}");
    // Approving the second (same block) supersedes the first.
    let out = kplan_ok(&["--server", &url, "plans", "approve", &second.id]);
    assert!(out.contains(&format!("plan {}: superseded by {}", first.id, second.id)), "{out}");
    let err = kplan_err(&["--server", &url, "plans", "approve", &first.id]);
    assert!(err.contains(&format!("plan {} is superseded", first.id)) && err.contains("FailedPrecondition"), "{err}");
    let err = kplan_err(&["--server", &url, "plans", "approve", "plan-nope"]);
    assert!(err.contains("plan \"plan-nope\" is not stored") && err.contains("NotFound"), "{err}");
    let table = kplan_ok(&["--server", &url, "plans", "list"]);
    assert!(table.contains("STATE") && table.contains("superseded") && table.contains("approved"), "{table}");

    // SIGKILL: every acknowledged change is on disk.
    server.kill9();
    let server = Server::start(&data);
    let url = server.url();
    let list = status_json(&["--server", &url, "plans", "list", "-o", "json"]);
    let row = list_row(&list, &first.id);
    assert_eq!(row["lifecycle"]["state"], "superseded", "{row}");
    assert_eq!(row["lifecycle"]["superseded_by"], second.id.as_str(), "{row}");
    assert_eq!(row["lifecycle"]["changed_by"], "anonymous", "{row}");
    assert!(row["lifecycle"]["changed_at_unix"].as_i64().unwrap_or(0) > 1_700_000_000, "{row}");
    assert_eq!(list_row(&list, &second.id)["lifecycle"]["state"], "approved");
    let show = kplan_ok(&["--server", &url, "plans", "show", &first.id]);
    assert!(show.starts_with("state: superseded by anonymous at "), "{show}");
    let out = kplan_ok(&["--server", &url, "plans", "abandon", &second.id]);
    assert!(out.starts_with(&format!("plan {}: abandoned by anonymous", second.id)), "{out}");
    drop(server);

    // Embedded: the same on a local store, by the local user.
    let inv = dir.path().join("inv");
    {
        let store = kplan_store::SledStore::open(&inv).expect("opens");
        for snapshot in estate.values() {
            kplan_store::Store::put_snapshot(&store, snapshot, 1_700_000_000).expect("stores");
        }
    }
    let inv = inv.to_str().expect("utf-8");
    let policy = write_policy(dir.path(), "a.toml", "");
    let plan: Plan =
        serde_json::from_str(&kplan_ok(&["--inventory", inv, "propose", "--policy", &policy, "-o", "json"]))
            .expect("json");
    let out = String::from_utf8(
        std::process::Command::new(common::bin("kplan"))
            .args(["--inventory", inv, "plans", "approve", &plan.id])
            .env("USER", "ops-alice")
            .env_remove("KPLAN_SERVER")
            .output()
            .expect("runs")
            .stdout,
    )
    .expect("utf-8");
    assert!(out.starts_with(&format!("plan {}: approved by local:ops-alice at ", plan.id)), "{out}");
    let list = status_json(&["--inventory", inv, "plans", "list", "-o", "json"]);
    assert_eq!(list_row(&list, &plan.id)["lifecycle"]["state"], "approved");
}

/// Polls `check` every 50 ms until it gives a value or `within` passes.
fn poll<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some((value, started.elapsed()));
        }
        if started.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server with the small estate reported and a plan of it proposed and approved.
fn approved_plan(dir: &Path) -> (Server, String, BTreeMap<String, ClusterSnapshot>, Plan) {
    approved_plan_with(dir, &[])
}

fn approved_plan_with(dir: &Path, server_args: &[&str]) -> (Server, String, BTreeMap<String, ClusterSnapshot>, Plan) {
    let server = Server::start_with(&dir.join("data"), server_args);
    let url = server.url();
    let estate = estate();
    report(&server, &estate.values().collect::<Vec<_>>());
    let plan = propose(&url, &write_policy(dir, "p.toml", ""));
    assert!(plan.blocks[0].waves.len() >= 3, "at least three waves: {}", plan.blocks[0].waves.len());
    kplan_ok(&["--server", &url, "plans", "approve", &plan.id]);
    (server, url, estate, plan)
}

#[test]
fn approved_plan_progress_and_drift_are_read_from_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, url, mut estate, plan) = approved_plan(dir.path());
    let block = &plan.blocks[0];
    let status_args = ["--server", url.as_str(), "plans", "status", plan.id.as_str(), "-o", "json"];

    // The approval's re-check: the plan holds on the inventory it was made from.
    let (status, _) = poll(Duration::from_secs(5), || {
        let status = status_json(&status_args);
        (status["health"]["status"] == "ok").then_some(status)
    })
    .expect("health ok within 5 s of the approval");
    assert!(
        status["progress"]["waves"].as_array().expect("waves").iter().all(|w| w["progress"] == "pending"),
        "{status}"
    );

    // Wave 1 carried out by hand.
    let changed = carry_out_wave(&plan, 1, &mut estate);
    report(&server, &changed.iter().map(|id| &estate[id]).collect::<Vec<_>>());
    let status = status_json(&status_args);
    let waves = status["progress"]["waves"].as_array().expect("waves");
    assert_eq!(waves[0]["progress"], "done", "{status}");
    assert!(waves[1..].iter().all(|w| w["progress"] == "pending"), "{status}");
    assert_eq!(status["progress"]["waves_done"], 1, "{status}");
    let table = kplan_ok(&["--server", &url, "plans", "status", &plan.id]);
    assert!(table.contains("progress: 1 of") && table.contains("STILL MISSING"), "{table}");
    let (_, _) = poll(Duration::from_secs(5), || {
        let status = status_json(&status_args);
        (status["health"]["status"] == "ok"
            && status["health"]["inventory"]
                .as_array()
                .is_some_and(|i| i.iter().any(|r| r["cluster_id"] == block.target_clusters[0].name.as_str())))
        .then_some(())
    })
    .expect("wave 1 done as planned: still ok, checked against the target's report");

    // The stream is open before the drift (python, no kplan stubs).
    let python = python3_has("grpc") && python3_has("grpc_reflection");
    if std::env::var_os("CI").is_some() {
        assert!(python, "CI has grpcio and grpcio-reflection (scripts/setup.sh)");
    }
    let mut follower = python.then(|| {
        let script = repo_root().join("tests/python/watch_plan.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .args([server.addr.as_str(), plan.id.as_str(), "HEALTH_STATUS_DRIFTED", "30"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs python3");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let ready = line == "ready";
            lines.push(line);
            if ready {
                break;
            }
        }
        assert_eq!(lines.last().map(String::as_str), Some("ready"), "the stream opened: {lines:?}");
        assert!(lines[0].contains("\"HEALTH_STATUS_OK\""), "{lines:?}");
        (child, rx)
    });
    if !python {
        eprintln!("skipping the python WatchPlan client: grpcio-reflection is not installed");
    }

    // A namespace of a later wave grows beyond what its target can hold then.
    let last = block.waves.iter().rev().find(|w| !w.namespaces.is_empty()).expect("a wave moves namespaces");
    assert!(last.index > 1);
    let grows = &last.namespaces[0];
    let source = estate.get_mut(&grows.from_cluster).expect("source");
    source.namespaces.iter_mut().find(|n| n.name == grows.namespace).expect("namespace").requests.cpu_millis = 200_000;
    source.generation += 1;
    let grown = source.clone();
    let reported = Instant::now();
    report(&server, &[&grown]);
    let subject = format!("{}/{}", grows.from_cluster, grows.namespace);
    let (finding, waited) = poll(Duration::from_secs(5), || {
        let status = status_json(&status_args);
        if status["health"]["status"] != "drifted" {
            return None;
        }
        status["health"]["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["kind"] == "capacity" && f["subject"] == subject.as_str() && f["wave"] == last.index)
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!("drifted within 5 s, naming {subject} at wave {}: {}", last.index, status_json(&status_args))
    });
    let detail = finding["detail"].as_str().expect("detail");
    assert!(detail.contains(&subject) && detail.contains(&format!("wave {}", last.index)), "{detail}");
    eprintln!("drift seen {waited:.1?} after polling began ({:.1?} after the report): {detail}", reported.elapsed());
    let table = kplan_ok(&["--server", &url, "plans", "status", &plan.id]);
    assert!(table.contains("health: drifted") && table.contains(&subject), "{table}");

    // The metrics say it too.
    let (_, page) = http_get(&server.metrics_addr, "/metrics");
    let label = format!("{{plan_id=\"{}\"}}", plan.id);
    assert_eq!(metric_value(&page, &format!("kplan_plan_health{label}")), Some(1.0), "{page}");
    assert_eq!(metric_value(&page, &format!("kplan_plan_waves_done{label}")), Some(1.0), "{page}");
    assert_eq!(
        metric_value(&page, &format!("kplan_plan_waves_total{label}")),
        Some(block.waves.len() as f64),
        "{page}"
    );
    let capacity = format!("kplan_plan_findings{{plan_id=\"{}\",kind=\"capacity\"}}", plan.id);
    assert!(metric_value(&page, &capacity).is_some_and(|n| n >= 1.0), "{page}");
    assert!(metric_value(&page, &format!("kplan_plan_oldest_report_age_seconds{label}")).is_some(), "{page}");
    monitoring_uses_exported_metrics(&page);

    // And the stream sent the change.
    if let Some((mut child, rx)) = follower.take() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            lines.push(line);
        }
        let status = child.wait().expect("python exits");
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            use std::io::Read;
            let _ = err.read_to_string(&mut stderr);
        }
        assert!(status.success(), "python saw the drift: {lines:?} {stderr}");
        let drifted = lines.iter().find(|l| l.contains("HEALTH_STATUS_DRIFTED")).expect("a drifted status");
        assert!(drifted.contains(&subject), "{drifted}");
    }

    // SIGKILL: the approval, the health and the progress are there after a restart.
    let data = server.data_dir.clone();
    server.kill9();
    let server = Server::start(&data);
    let url = server.url();
    let status = status_json(&["--server", url.as_str(), "plans", "status", plan.id.as_str(), "-o", "json"]);
    assert_eq!(status["lifecycle"]["state"], "approved", "{status}");
    assert_eq!(status["health"]["status"], "drifted", "{status}");
    assert_eq!(status["progress"]["waves_done"], 1, "{status}");
    let out = kplan(&["--server", &url, "plans", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("drifted"), "{out:?}");
}

/// The alerts and the dashboard of `deploy/monitoring/` read only metrics the
/// server exports (`page`: a scrape with an approved plan), and say what they are.
fn monitoring_uses_exported_metrics(page: &str) {
    let dir = repo_root().join("deploy/monitoring");
    let rules_text = std::fs::read_to_string(dir.join("prometheusrule.yaml")).expect("reads the rule");
    let rules: serde_json::Value = serde_saphyr::from_str(&rules_text).expect("the rule is YAML");
    assert_eq!(rules["kind"], "PrometheusRule");
    let alerts: Vec<&serde_json::Value> = rules["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        // The TLS group reads metrics only a TLS server exports (tests/tests/tls_reload.rs checks it).
        .filter(|g| g["name"] == "kplan-plans")
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect();
    let names: Vec<&str> = alerts.iter().map(|a| a["alert"].as_str().expect("alert name")).collect();
    assert_eq!(names, ["KplanPlanDrifted", "KplanPlanWaveStalled", "KplanPlanClusterSilent"]);
    let mut exprs: Vec<String> = Vec::new();
    for alert in &alerts {
        assert!(alert["for"].is_string() && alert["annotations"]["summary"].is_string(), "{alert}");
        exprs.push(alert["expr"].as_str().expect("expr").to_string());
        exprs.push(alert["annotations"]["description"].as_str().unwrap_or_default().to_string());
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grafana-dashboard.json")).expect("reads"))
            .expect("json");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    exprs.push(dashboard["templating"]["list"][1]["definition"].as_str().expect("plan variable").to_string());
    let exported: std::collections::BTreeSet<&str> =
        page.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        for (at, _) in expr.match_indices("kplan_") {
            let name: String =
                expr[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            used.insert(name);
        }
    }
    assert!(used.len() >= 7, "{used:?}");
    for name in &used {
        assert!(exported.contains(name.as_str()), "{name} is not exported: {exported:?}");
    }
}

/// An example estate carried out as planned for its first `n_waves` waves
/// (every block) stays healthy, and the progress reads exactly those waves
/// done: no finding the plan does not deserve. Embedded: the same
/// computation as the server's, checked there and then.
fn carried_out_as_planned_stays_healthy(example: &str, n_waves: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = dir.path().join("inv");
    let inv_arg = inv.to_str().expect("utf-8");
    let root = repo_root().join("examples").join(example);
    let (estate_file, policy) = (root.join("estate.toml"), root.join("policy.toml"));
    kplan_ok(&["--inventory", inv_arg, "import", "--estate", estate_file.to_str().expect("utf-8")]);
    let text =
        kplan_ok(&["--inventory", inv_arg, "propose", "--policy", policy.to_str().expect("utf-8"), "-o", "json"]);
    let plan: Plan = serde_json::from_str(&text).expect("plan json");
    kplan_ok(&["--inventory", inv_arg, "plans", "approve", &plan.id]);
    let status_args = ["--inventory", inv_arg, "plans", "status", plan.id.as_str(), "-o", "json"];
    let status = status_json(&status_args);
    assert_eq!(status["health"]["status"], "ok", "{status}");
    // Embedded, the check is stored as the daemon stores it: `plans list` shows it.
    let list = status_json(&["--inventory", inv_arg, "plans", "list", "-o", "json"]);
    assert_eq!(list_row(&list, &plan.id)["health"], "ok", "{list}");
    {
        let store = kplan_store::SledStore::open(&inv).expect("opens");
        let mut estate: BTreeMap<String, ClusterSnapshot> = kplan_store::Store::latest_snapshots(&store)
            .expect("reads")
            .into_iter()
            .map(|s| (s.cluster_id.clone(), s))
            .collect();
        let mut changed = std::collections::BTreeSet::new();
        for wave in 1..=n_waves {
            changed.extend(carry_out_wave(&plan, wave, &mut estate));
        }
        for id in changed {
            kplan_store::Store::put_snapshot(&store, &estate[&id], 1_800_000_000).expect("stores");
        }
    }
    let status = status_json(&status_args);
    assert_eq!(status["health"]["status"], "ok", "{status}");
    for wave in status["progress"]["waves"].as_array().expect("waves") {
        let expected = if wave["wave"].as_u64() <= Some(n_waves) { "done" } else { "pending" };
        assert_eq!(wave["progress"], expected, "{wave}");
    }
}

/// The 15-cluster example: add-ons, renames, pods, five blocks.
#[test]
fn the_example_estate_carried_out_as_planned_stays_healthy() {
    carried_out_as_planned_stays_healthy("bank", 2);
}

/// The pools example: namespaces that move in parts (checkout-api in 3, web-shop
/// in 2, from wave 3); three and four waves leave them between parts.
#[test]
fn the_pools_example_moved_in_parts_stays_healthy() {
    carried_out_as_planned_stays_healthy("pools", 3);
    carried_out_as_planned_stays_healthy("pools", 4);
}

/// `kplan propose --from-plan`: a plan that drifted before it began is
/// re-planned on the newest snapshots of its sources with its own policy; the
/// repaired plan passes the validator and, approved, supersedes the old one
/// and is healthy. Once a wave has begun, the re-plan is refused in words.
#[test]
fn a_drifted_plan_not_yet_begun_is_repaired_from_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, url, mut estate, plan) = approved_plan(dir.path());
    let status_of = |id: &str| status_json(&["--server", url.as_str(), "plans", "status", id, "-o", "json"]);

    // Demand grows beyond what the plan holds before anything moved.
    let grows = &plan.blocks[0].waves.iter().rev().find(|w| !w.namespaces.is_empty()).expect("moves").namespaces[0];
    let source = estate.get_mut(&grows.from_cluster).expect("source");
    source.namespaces.iter_mut().find(|n| n.name == grows.namespace).expect("namespace").requests.cpu_millis = 14_000;
    source.generation += 1;
    let grown = source.clone();
    report(&server, &[&grown]);
    poll(Duration::from_secs(5), || (status_of(&plan.id)["health"]["status"] == "drifted").then_some(()))
        .expect("drifted within 5 s");

    let out = kplan(&["--server", &url, "propose", "--from-plan", &plan.id, "-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let repaired: Plan = serde_json::from_slice(&out.stdout).expect("plan json");
    assert_ne!(repaired.id, plan.id);
    assert!(repaired.blocks.iter().all(|b| b.status == kplan_model::BlockStatus::Planned), "{stderr}");
    assert_eq!(repaired.policy, plan.policy, "planned with the old plan's policy");
    assert!(stderr.contains(&format!("re-plans {}", plan.id)) && stderr.contains("inputs differ"), "{stderr}");
    // The repaired plan passes the validator on the inventory it was made from.
    let inventory: Vec<ClusterSnapshot> =
        estate.values().filter(|s| repaired.inventory.iter().any(|r| r.cluster_id == s.cluster_id)).cloned().collect();
    let violations =
        kplan_planner::validate::validate(&inventory, repaired.policy.as_ref().expect("policy"), &repaired);
    assert!(violations.is_empty(), "{violations:?}");

    let out = kplan_ok(&["--server", &url, "plans", "approve", &repaired.id]);
    assert!(out.contains(&format!("plan {}: superseded by {}", plan.id, repaired.id)), "{out}");
    poll(Duration::from_secs(5), || (status_of(&repaired.id)["health"]["status"] == "ok").then_some(()))
        .expect("the repaired plan holds");

    // Once wave 1 is carried out, what is done cannot be kept fixed yet: refused in words.
    let changed = carry_out_wave(&repaired, 1, &mut estate);
    report(&server, &changed.iter().map(|id| &estate[id]).collect::<Vec<_>>());
    let err = kplan_err(&["--server", &url, "propose", "--from-plan", &repaired.id]);
    assert!(err.contains("has begun (block fra/prod wave 1 is done)") && err.contains("FailedPrecondition"), "{err}");
}

/// A wave begun and not done for longer than `watch_wave_stall_seconds` (1 s
/// here) has stalled: the metric the `KplanPlanWaveStalled` alert reads says
/// so, at a scrape, without another report.
#[test]
fn a_wave_in_progress_too_long_is_stalled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "watch_wave_stall_seconds = 1\n").expect("writes the config");
    let (server, url, estate, plan) = approved_plan_with(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    // Wave 1 begins: its nodes report in the target, their sources not yet again.
    let mut begun = estate.clone();
    carry_out_wave(&plan, 1, &mut begun);
    let target = &plan.blocks[0].target_clusters[0].name;
    report(&server, &[&begun[target]]);
    let label = format!("{{plan_id=\"{}\"}}", plan.id);
    let status = status_json(&["--server", url.as_str(), "plans", "status", plan.id.as_str(), "-o", "json"]);
    assert_eq!(status["progress"]["waves"][0]["progress"], "in-progress", "{status}");
    let (stalled, _) = poll(Duration::from_secs(10), || {
        let (_, page) = http_get(&server.metrics_addr, "/metrics");
        let stalled = metric_value(&page, &format!("kplan_plan_waves_stalled{label}"))?;
        (stalled == 1.0).then_some(page)
    })
    .expect("wave 1 stalled within 10 s of a 1 s limit");
    assert!(
        metric_value(&stalled, &format!("kplan_plan_wave_in_progress_seconds{label}")).is_some_and(|s| s > 1.0),
        "{stalled}"
    );
    // Done, it is no longer stalled.
    report(&server, &changed_sources(&plan, &begun, target));
    poll(Duration::from_secs(5), || {
        let (_, page) = http_get(&server.metrics_addr, "/metrics");
        (metric_value(&page, &format!("kplan_plan_waves_stalled{label}")) == Some(0.0)).then_some(())
    })
    .expect("a done wave does not stall");
}

/// The snapshots of wave 1's sources as carried out (every cluster of `estate` but `target`).
fn changed_sources<'a>(
    plan: &Plan,
    estate: &'a BTreeMap<String, ClusterSnapshot>,
    target: &str,
) -> Vec<&'a ClusterSnapshot> {
    let sources: std::collections::BTreeSet<&str> =
        plan.blocks[0].waves[0].nodes.iter().map(|n| n.cluster_id.as_str()).collect();
    estate.values().filter(|s| s.cluster_id != target && sources.contains(s.cluster_id.as_str())).collect()
}
