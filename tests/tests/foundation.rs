//! Issue 2 end to end: the real `kplan-server` and `kplan` binaries over TCP,
//! a real sled store on disk, SIGKILL and restart, and a foreign gRPC client.

mod common;

use common::*;
use serde_json::Value;

fn import_two_clusters(server_url: &str) {
    let gcp = fixture("openshift-gcp-4.4-nodelist.derived.json");
    let kind_nodes = fixture("sonobuoy-kind-1.21-nodes.json");
    let kind_namespaces = fixture("sonobuoy-kind-1.21-namespaces.json");
    kplan_ok(&[
        "--server",
        server_url,
        "import",
        "--cluster",
        "gcp-prod",
        "--security-tier",
        "prod",
        gcp.to_str().expect("utf-8 path"),
    ]);
    kplan_ok(&[
        "--server",
        server_url,
        "import",
        "--cluster",
        "kind-dev",
        "--datacenter",
        "lab",
        "--zone",
        "lab-a",
        "--security-tier",
        "dev",
        kind_nodes.to_str().expect("utf-8 path"),
        kind_namespaces.to_str().expect("utf-8 path"),
    ]);
}

fn clusters_json(server_url: &str) -> Vec<Value> {
    let out = kplan_ok(&["--server", server_url, "clusters", "list", "-o", "json"]);
    serde_json::from_str::<Value>(&out).expect("json").as_array().expect("array").clone()
}

fn find<'a>(clusters: &'a [Value], id: &str) -> &'a Value {
    clusters.iter().find(|c| c["cluster_id"] == id).unwrap_or_else(|| panic!("{id} not listed in {clusters:#?}"))
}

#[test]
fn import_list_and_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    import_two_clusters(&server.url());

    let clusters = clusters_json(&server.url());
    assert_eq!(clusters.len(), 2);
    let gcp = find(&clusters, "gcp-prod");
    assert_eq!(gcp["n_nodes"], 6);
    assert_eq!(gcp["zones"], serde_json::json!(["us-east1-b", "us-east1-c", "us-east1-d"]));
    assert_eq!(gcp["allocatable"]["cpu_millis"], 6 * 3500);
    let kind = find(&clusters, "kind-dev");
    assert_eq!(kind["n_nodes"], 1);
    assert_eq!(kind["n_namespaces"], 20);

    // Kill without warning right after an acknowledged import, then restart on the same directory.
    let minikube = fixture("minikube-1.35-nodes.yaml");
    kplan_ok(&[
        "--server",
        &server.url(),
        "import",
        "--cluster",
        "minikube",
        "--datacenter",
        "home",
        "--zone",
        "home-a",
        minikube.to_str().expect("utf-8 path"),
    ]);
    server.kill9();
    let server = Server::start(dir.path());
    let clusters = clusters_json(&server.url());
    assert_eq!(clusters.len(), 3, "{clusters:#?}");
    assert_eq!(find(&clusters, "minikube")["n_nodes"], 1);

    let shown = kplan_ok(&["--server", &server.url(), "clusters", "show", "gcp-prod", "-o", "json"]);
    let shown: Value = serde_json::from_str(&shown).expect("json");
    let masters = shown["nodes"].as_array().expect("nodes").iter().filter(|n| n["role"] == "control-plane").count();
    assert_eq!(masters, 3);
}

#[test]
fn replays_are_idempotent_and_older_generations_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let file = fixture("openshift-gcp-4.4-nodelist.derived.json");
    let file = file.to_str().expect("utf-8 path");
    let url = server.url();
    let first =
        kplan_ok(&["--server", &url, "import", "--cluster", "gcp", "--security-tier", "prod", file, "-o", "json"]);
    let second =
        kplan_ok(&["--server", &url, "import", "--cluster", "gcp", "--security-tier", "prod", file, "-o", "json"]);
    let first: Value = serde_json::from_str(&first).expect("json");
    let second: Value = serde_json::from_str(&second).expect("json");
    assert_eq!(first[0]["created"], true);
    assert_eq!(second[0]["created"], false);
    assert_eq!(first[0]["generation"], second[0]["generation"]);
    let clusters = clusters_json(&url);
    assert_eq!(find(&clusters, "gcp")["n_generations"], 1);

    let generation = first[0]["generation"].as_u64().expect("generation");
    let older = (generation - 1).to_string();
    let line = kplan_err(&[
        "--server",
        &url,
        "import",
        "--cluster",
        "gcp",
        "--security-tier",
        "prod",
        "--generation",
        &older,
        file,
    ]);
    assert!(line.contains("older than the stored generation"), "{line}");
    assert!(line.contains("FailedPrecondition"), "{line}");
    // A different content under the stored generation is refused too.
    let other = fixture("sonobuoy-aws-k8s1.8-nodes.json");
    let stored = generation.to_string();
    let line = kplan_err(&[
        "--server",
        &url,
        "import",
        "--cluster",
        "gcp",
        "--security-tier",
        "prod",
        "--generation",
        &stored,
        other.to_str().expect("utf-8 path"),
    ]);
    assert!(line.contains("already stored with different content"), "{line}");
    assert_eq!(find(&clusters_json(&url), "gcp")["n_generations"], 1);
}

#[test]
fn embedded_inventory_needs_no_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inv");
    let inventory = inventory.to_str().expect("utf-8 path");
    let estate = repo_root().join("examples/bank/estate.toml");
    kplan_ok(&["--inventory", inventory, "import", "--estate", estate.to_str().expect("utf-8 path")]);
    let out = kplan_ok(&["--inventory", inventory, "clusters", "list", "-o", "json"]);
    let clusters: Vec<Value> = serde_json::from_str(&out).expect("json");
    assert!(clusters.len() >= 15, "{}", clusters.len());
    let yaml = kplan_ok(&["--inventory", inventory, "clusters", "show", "sin-prod-core", "-o", "yaml"]);
    assert!(yaml.contains("cluster_id: sin-prod-core"), "{yaml}");
}

#[test]
fn cli_errors_are_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inv");
    let inventory = inventory.to_str().expect("utf-8 path");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ this is not json").expect("writes");
    let garbage = garbage.to_str().expect("utf-8 path");
    let bad_quantity = dir.path().join("bad.json");
    std::fs::write(
        &bad_quantity,
        r#"{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1","resourceVersion":"5","labels":{"topology.kubernetes.io/zone":"a","topology.kubernetes.io/region":"r"}},"status":{"allocatable":{"cpu":"4x","memory":"1Gi","pods":"110"},"nodeInfo":{"kubeletVersion":"v1.29.0","containerRuntimeVersion":"containerd://1.7.0","architecture":"amd64","bootID":"","kernelVersion":"","machineID":"","operatingSystem":"linux","osImage":"","systemUUID":"","kubeProxyVersion":""}}}"#,
    )
    .expect("writes");
    let bad_quantity = bad_quantity.to_str().expect("utf-8 path");

    let line = kplan_err(&["--inventory", inventory, "import", "--cluster", "c1", garbage]);
    assert!(line.contains("garbage.json"), "{line}");
    let line = kplan_err(&["--inventory", inventory, "import", "--cluster", "c1", bad_quantity]);
    assert!(line.contains("n1") && line.contains("cpu"), "{line}");
    let line = kplan_err(&["--inventory", inventory, "import", "--cluster", "c1", "/nonexistent/file.json"]);
    assert!(line.contains("/nonexistent/file.json"), "{line}");
    let line = kplan_err(&["--inventory", inventory, "import", "--cluster", "Not_Valid", bad_quantity]);
    assert!(line.contains("c") || line.contains("cluster"), "{line}");
    let line = kplan_err(&["--inventory", inventory, "clusters", "show", "nope"]);
    assert!(line.contains("nope"), "{line}");
    let line = kplan_err(&["--server", "http://127.0.0.1:1", "clusters", "list"]);
    assert!(line.contains("127.0.0.1:1"), "{line}");
    let line = kplan_err(&["--server", "not a url", "clusters", "list"]);
    assert!(line.contains("not a url"), "{line}");
    // Nothing was stored by the failed imports.
    let out = kplan_ok(&["--inventory", inventory, "clusters", "list", "-o", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), serde_json::json!([]));
}

#[test]
fn bad_server_config_exits_64_before_binding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "listen = \"nowhere\"\nrequest_timeout_seconds = 0\nbogus = 1\n").expect("writes");
    let out = std::process::Command::new(bin("kplan-server")).arg("--config").arg(&config).output().expect("runs");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bogus"), "{stderr}");
    // Semantic problems are reported together when the file parses.
    std::fs::write(&config, "listen = \"nowhere\"\nrequest_timeout_seconds = 0\n").expect("writes");
    let out = std::process::Command::new(bin("kplan-server")).arg("--config").arg(&config).output().expect("runs");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen") && stderr.contains("request_timeout_seconds"), "{stderr}");
}

#[test]
fn a_python_grpc_client_lists_clusters() {
    if std::env::var_os("CI").is_some() {
        assert!(python3_has("grpc_tools"), "CI must install grpcio-tools (scripts/setup.sh)");
    } else if !python3_has("grpc_tools") {
        eprintln!("skipping: python grpcio-tools is not installed (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"));
    import_two_clusters(&server.url());
    let script = repo_root().join("tests/python/list_clusters.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&server.addr)
        .arg(dir.path().join("gen"))
        .output()
        .expect("runs python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        vec!["gcp-prod 6 nodes", "kind-dev 1 nodes", "health SERVING", "reflection lists kplan.v1.QueryService"]
    );
}
