//! Issue 7: the deployment files in `deploy/`, checked without a cluster, a
//! container engine or a running systemd.
//!
//! - Every kustomize overlay renders (`kubectl kustomize`) and every rendered
//!   object validates offline against the Kubernetes JSON schemas of the oldest
//!   and the newest version `kubernetes-validate` bundles, strictly (an unknown
//!   field fails, and so does a kind without a schema).
//! - Every pod meets the Pod Security Standard "restricted", has CPU and memory
//!   requests and limits, and lives in a namespace that enforces "restricted".
//! - The agent's ClusterRole grants exactly get, list and watch on nodes,
//!   namespaces, pods, daemonsets, persistentvolumeclaims, persistentvolumes and
//!   storageclasses, and only the agent's ServiceAccount is bound.
//! - NetworkPolicies deny by default and open exactly the documented ports;
//!   probes, Services, container ports and the configuration files agree on them.
//! - The systemd units pass `systemd-analyze verify` and `security`, and keep
//!   their sandbox directives.
//! - The Containerfile is multi-stage, runs as a numeric non-root user, copies
//!   the three binaries and fetches nothing outside the package manager.
//!
//! Every check is a function returning the problems it finds; each test also
//! feeds it a broken copy and asserts that the problem is found, so no check
//! can pass vacuously.
//!
//! Tools: `kubectl` (Debian's `kubernetes-client`; `$KUBECTL` picks another),
//! `python3` with `kubernetes-validate` (PyPI; it brings PyYAML), and
//! `systemd-analyze` and `systemd-sysusers` (Debian's `systemd`). Outside CI a
//! missing tool is a printed skip; with `CI` set it is a failure.
//!
//! (Over 900 lines on purpose: each file under `tests/tests/` is one test
//! binary, and these checks share one rendering of the overlays and one set of
//! helpers; split, every part would render and link them again.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{bin, python3_has, repo_root};
use serde_json::{Value, json};

/// The overlays the README documents; every directory under `overlays/` is checked.
const OVERLAYS: [&str; 3] = ["server-only", "agent-only", "example-all-in-one"];
const IMAGE: &str = "ghcr.io/kplan/kplan:0.1.0";
/// distroless' `nonroot` user and group: the Containerfile's USER and every pod's runAsUser.
const NON_ROOT_ID: i64 = 65532;
/// The binaries the image holds, under /usr/local/bin.
const BINARIES: [&str; 3] = ["kplan-server", "kplan-agent", "kplan"];
const SERVER_GRPC: i64 = 7470;
const SERVER_METRICS: i64 = 9470;
const AGENT_HEALTH: i64 = 7471;
const AGENT_METRICS: i64 = 9471;

// ---------------------------------------------------------------- tools

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// `true` when the tool is there; otherwise a printed skip, or a failure in CI.
fn have(tool: &str, available: bool, install: &str) -> bool {
    if available {
        return true;
    }
    assert!(!in_ci(), "{tool} is missing ({install}); CI must provide it (scripts/setup.sh)");
    eprintln!("skipped: {tool} is missing ({install}); with CI set this is a failure");
    false
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs `program`, with `input` on its standard input: (success, stdout, stderr).
fn run(program: &str, args: &[&str], input: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("running {program}: {err}"));
    let mut writer = None;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin piped");
        let input = input.to_string();
        // A separate thread: the child may fill its stdout before reading all of stdin.
        writer = Some(std::thread::spawn(move || stdin.write_all(input.as_bytes())));
    }
    let out = child.wait_with_output().unwrap_or_else(|err| panic!("waiting for {program}: {err}"));
    if let Some(writer) = writer {
        // A child that exits without reading all of its input is reported by its status.
        let _ = writer.join();
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string())
}

fn have_kubectl_and_yaml() -> bool {
    have("kubectl", runs(&kubectl(), &["version", "--client"]), "apt-get install kubernetes-client")
        && have(
            "python3 with PyYAML",
            python3_has("yaml"),
            "pip install kubernetes-validate, or apt-get install python3-yaml",
        )
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

// ---------------------------------------------------------------- rendering

#[derive(Debug)]
struct Overlay {
    name: String,
    objects: Vec<Value>,
}

/// `kubectl kustomize DIR`, as JSON objects. kubectl may only warn about
/// deprecated fields (`bases:`, kept for kubectl 1.14 to 1.20).
fn render(dir: &Path) -> Vec<Value> {
    let dir_arg = dir.to_str().expect("utf-8 path");
    let (ok, yaml, stderr) = run(&kubectl(), &["kustomize", dir_arg], None);
    assert!(ok, "kubectl kustomize {dir_arg} failed:\n{stderr}");
    for line in stderr.lines().filter(|line| !line.trim().is_empty()) {
        assert!(line.contains("deprecated"), "kubectl kustomize {dir_arg}: unexpected message: {line}");
    }
    yaml_to_json(&yaml)
}

fn yaml_to_json(yaml: &str) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)";
    let (ok, out, err) = run("python3", &["-c", script], Some(yaml));
    assert!(ok, "python3 could not read the YAML: {err}");
    serde_json::from_str(&out).expect("python3 prints JSON")
}

/// Every overlay, rendered once per test binary; `None` when a tool is missing (outside CI).
fn overlays() -> Option<&'static [Overlay]> {
    static RENDERED: OnceLock<Option<Vec<Overlay>>> = OnceLock::new();
    RENDERED
        .get_or_init(|| {
            if !have_kubectl_and_yaml() {
                return None;
            }
            let dir = deploy_dir().join("kubernetes/overlays");
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .expect("deploy/kubernetes/overlays")
                .map(|entry| entry.expect("dir entry").path())
                .filter(|path| path.join("kustomization.yaml").is_file())
                .map(|path| path.file_name().expect("name").to_string_lossy().into_owned())
                .collect();
            names.sort();
            for expected in OVERLAYS {
                assert!(names.iter().any(|name| name == expected), "overlay {expected} is missing: {names:?}");
            }
            Some(names.into_iter().map(|name| Overlay { objects: render(&dir.join(&name)), name }).collect())
        })
        .as_deref()
}

// ---------------------------------------------------------------- object helpers

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or("")
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

fn id(object: &Value) -> String {
    format!("{}/{}", kind(object), name(object))
}

fn find<'a>(objects: &'a [Value], kind_: &str, name_: &str) -> Option<&'a Value> {
    objects.iter().find(|object| kind(object) == kind_ && name(object) == name_)
}

/// The pod template's spec of any kind that runs pods.
fn pod_spec(object: &Value) -> Option<&Value> {
    match kind(object) {
        "Pod" => Some(&object["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some(&object["spec"]["template"]["spec"]),
        "CronJob" => Some(&object["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

fn pod_labels(object: &Value) -> &Value {
    match kind(object) {
        "Pod" => &object["metadata"]["labels"],
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"],
        _ => &object["spec"]["template"]["metadata"]["labels"],
    }
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn all_containers(spec: &Value) -> impl Iterator<Item = &Value> {
    array(&spec["initContainers"]).iter().chain(array(&spec["containers"])).chain(array(&spec["ephemeralContainers"]))
}

fn workloads(objects: &[Value]) -> impl Iterator<Item = &Value> {
    objects.iter().filter(|object| pod_spec(object).is_some())
}

fn mutate(object: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut copy = object.clone();
    edit(&mut copy);
    copy
}

/// The port a container port name or number stands for.
fn container_port(container: &Value, port: &Value) -> Option<i64> {
    match port {
        Value::Number(number) => number.as_i64(),
        Value::String(port_name) => array(&container["ports"])
            .iter()
            .find(|candidate| candidate["name"] == port_name.as_str())
            .and_then(|candidate| candidate["containerPort"].as_i64()),
        _ => None,
    }
}

// ---------------------------------------------------------------- schema validation

/// Validates every object with `kubernetes-validate`, strictly, against the
/// oldest and the newest Kubernetes version it bundles; returns the problems.
fn schema_problems(objects: &[Value]) -> Vec<String> {
    let script = r#"
import json, sys
import kubernetes_validate.utils as kv
objects = json.load(sys.stdin)
known = kv.all_versions()
versions = [known[0], known[-1]]
problems, checked = [], 0
for o in objects:
    label = "%s/%s" % (o.get("kind"), (o.get("metadata") or {}).get("name"))
    for version in versions:
        try:
            kv.validate(o, version, strict=True)
            checked += 1
        except kv.ValidationError as e:
            problems.append("%s, Kubernetes %s: %s: %s" % (label, version, ".".join(map(str, e.path)), e.message))
        except kv.SchemaNotFoundError as e:
            problems.append("%s, Kubernetes %s: %s" % (label, version, e.message))
print(json.dumps({"versions": versions, "checked": checked, "problems": problems}))
"#;
    let input = serde_json::to_string(objects).expect("json");
    let (ok, out, err) = run("python3", &["-c", script], Some(&input));
    assert!(ok, "kubernetes-validate failed to run: {err}");
    let report: Value = serde_json::from_str(&out).expect("report is JSON");
    let mut problems: Vec<String> =
        array(&report["problems"]).iter().map(|p| p.as_str().unwrap_or_default().to_string()).collect();
    let expected = objects.len() * array(&report["versions"]).len();
    if problems.is_empty() && report["checked"].as_u64() != Some(expected as u64) {
        problems.push(format!("validated {} of {expected} object-versions", report["checked"]));
    }
    problems
}

#[test]
fn every_overlay_renders_and_validates_offline_against_the_kubernetes_schemas() {
    let Some(overlays) = overlays() else { return };
    if !have("kubernetes-validate", python3_has("kubernetes_validate"), "pip install kubernetes-validate") {
        return;
    }
    for overlay in overlays {
        assert!(overlay.objects.len() >= 5, "{}: only {} objects rendered", overlay.name, overlay.objects.len());
        let problems = schema_problems(&overlay.objects);
        assert!(problems.is_empty(), "{}: objects do not validate:\n{}", overlay.name, problems.join("\n"));
    }
    // The agent's ClusterRole on its own (what the agent's real-API test binds).
    let role = render(&deploy_dir().join("kubernetes/agent"));
    assert!(schema_problems(&role).is_empty(), "deploy/kubernetes/agent does not validate");

    // The validator bites: a misspelled field, a wrong type and an unknown kind all fail.
    let deployment =
        overlays[0].objects.iter().find(|object| kind(object) == "Deployment").expect("a Deployment to break");
    let typo = mutate(deployment, |d| {
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = json!(true);
    });
    let wrong_type = mutate(deployment, |d| d["spec"]["replicas"] = json!("one"));
    let unknown_kind = json!({"apiVersion": "v1", "kind": "Bogus", "metadata": {"name": "x"}});
    for broken in [typo, wrong_type, unknown_kind] {
        assert!(!schema_problems(std::slice::from_ref(&broken)).is_empty(), "the validator accepted {}", id(&broken));
    }
}

// ---------------------------------------------------------------- restricted profile

const RESTRICTED_VOLUME_TYPES: [&str; 8] =
    ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

/// What keeps a workload from the Pod Security Standard "restricted" (and from
/// this project's own rules: requests and limits, the image, no service links).
fn restricted_problems(workload: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(spec) = pod_spec(workload) else { return vec![format!("{}: not a workload", id(workload))] };
    let mut problem = |text: String| problems.push(format!("{}: {text}", id(workload)));
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[field] == true {
            problem(format!("{field} is set"));
        }
    }
    if spec["enableServiceLinks"] != false {
        problem("enableServiceLinks is not false (KPLAN_*_PORT variables would be read as configuration)".into());
    }
    let pod = &spec["securityContext"];
    if !array(&pod["sysctls"]).is_empty() {
        problem("sets sysctls".into());
    }
    for volume in array(&spec["volumes"]) {
        let types: Vec<&String> =
            volume.as_object().map(|v| v.keys().filter(|k| *k != "name").collect()).unwrap_or_default();
        if types.len() != 1 || !RESTRICTED_VOLUME_TYPES.contains(&types[0].as_str()) {
            problem(format!("volume {} has type {types:?}, not allowed under restricted", volume["name"]));
        }
    }
    if all_containers(spec).next().is_none() {
        problem("has no containers".into());
    }
    for container in all_containers(spec) {
        let name = container["name"].as_str().unwrap_or("?");
        let own = &container["securityContext"];
        let effective = |field: &str| if own[field].is_null() { &pod[field] } else { &own[field] };
        if effective("runAsNonRoot") != true {
            problem(format!("container {name}: runAsNonRoot is not true"));
        }
        for field in ["runAsUser", "runAsGroup"] {
            if effective(field).as_i64() != Some(NON_ROOT_ID) {
                problem(format!("container {name}: {field} is {} (want {NON_ROOT_ID})", effective(field)));
            }
        }
        if effective("seccompProfile")["type"] != "RuntimeDefault" {
            problem(format!("container {name}: seccompProfile is not RuntimeDefault"));
        }
        if own["allowPrivilegeEscalation"] != false {
            problem(format!("container {name}: allowPrivilegeEscalation is not false"));
        }
        if own["readOnlyRootFilesystem"] != true {
            problem(format!("container {name}: readOnlyRootFilesystem is not true"));
        }
        if own["privileged"] == true {
            problem(format!("container {name}: privileged"));
        }
        if array(&own["capabilities"]["drop"]) != [json!("ALL")] {
            problem(format!("container {name}: capabilities.drop is not [ALL]"));
        }
        if !array(&own["capabilities"]["add"]).is_empty() {
            problem(format!("container {name}: adds capabilities"));
        }
        for port in array(&container["ports"]) {
            if !port["hostPort"].is_null() {
                problem(format!("container {name}: hostPort {}", port["hostPort"]));
            }
        }
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                if container["resources"][bound][resource].is_null() {
                    problem(format!("container {name}: no {resource} in resources.{bound}"));
                }
            }
        }
        if container["image"] != IMAGE {
            problem(format!("container {name}: image {} (want {IMAGE})", container["image"]));
        }
        let command = container["command"][0].as_str().unwrap_or("");
        if !BINARIES.iter().any(|binary| command == format!("/usr/local/bin/{binary}")) {
            problem(format!("container {name}: command {command:?} is not one of the image's binaries"));
        }
    }
    problems
}

/// Namespaced objects must sit in a rendered namespace that enforces "restricted".
fn namespace_problems(objects: &[Value]) -> Vec<String> {
    const CLUSTER_SCOPED: [&str; 3] = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
    let mut problems = Vec::new();
    for object in objects {
        let namespace = object["metadata"]["namespace"].as_str();
        match (CLUSTER_SCOPED.contains(&kind(object)), namespace) {
            (true, None) => {}
            (true, Some(_)) => problems.push(format!("{}: cluster-scoped but has a namespace", id(object))),
            (false, None) => {
                problems.push(format!("{}: no namespace (it would land in the user's default)", id(object)))
            }
            (false, Some(namespace)) => match find(objects, "Namespace", namespace) {
                None => problems.push(format!("{}: namespace {namespace} is not part of the overlay", id(object))),
                Some(ns) => {
                    let labels = &ns["metadata"]["labels"];
                    if labels["pod-security.kubernetes.io/enforce"] != "restricted" {
                        problems.push(format!("namespace {namespace}: does not enforce the restricted profile"));
                    }
                }
            },
        }
    }
    problems
}

#[test]
fn every_pod_meets_the_restricted_profile_in_a_restricted_namespace() {
    let Some(overlays) = overlays() else { return };
    for overlay in overlays {
        let expected = match overlay.name.as_str() {
            "example-all-in-one" => 2,
            _ => 1,
        };
        let workloads: Vec<&Value> = workloads(&overlay.objects).collect();
        assert!(workloads.len() >= expected, "{}: {} workloads, expected {expected}", overlay.name, workloads.len());
        let mut problems: Vec<String> = workloads.iter().flat_map(|w| restricted_problems(w)).collect();
        problems.extend(namespace_problems(&overlay.objects));
        assert!(problems.is_empty(), "{}:\n{}", overlay.name, problems.join("\n"));
    }

    // Each rule bites.
    let overlay = overlays.iter().find(|o| o.name == "example-all-in-one").expect("all-in-one");
    let server = find(&overlay.objects, "Deployment", "kplan-server").expect("server Deployment");
    let container = "/spec/template/spec/containers/0";
    type Breakage = Box<dyn Fn(&mut Value)>;
    let breakages: Vec<(&str, Breakage)> = vec![
        (
            "runAsNonRoot",
            Box::new(move |d: &mut Value| {
                d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = json!(false);
                d.pointer_mut(&format!("{container}/securityContext")).expect("sc")["runAsNonRoot"] = Value::Null;
            }),
        ),
        (
            "runAsUser",
            Box::new(move |d: &mut Value| {
                d.pointer_mut(&format!("{container}/securityContext")).expect("sc")["runAsUser"] = json!(0)
            }),
        ),
        (
            "readOnlyRootFilesystem",
            Box::new(move |d: &mut Value| {
                d.pointer_mut(&format!("{container}/securityContext")).expect("sc")["readOnlyRootFilesystem"] =
                    json!(false);
            }),
        ),
        (
            "allowPrivilegeEscalation",
            Box::new(move |d: &mut Value| {
                d.pointer_mut(&format!("{container}/securityContext")).expect("sc")["allowPrivilegeEscalation"] =
                    Value::Null;
            }),
        ),
        (
            "capabilities.drop",
            Box::new(move |d: &mut Value| {
                d.pointer_mut(&format!("{container}/securityContext/capabilities")).expect("caps")["drop"] =
                    json!(["NET_RAW"]);
            }),
        ),
        (
            "seccompProfile",
            Box::new(move |d: &mut Value| {
                d["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"});
                d.pointer_mut(&format!("{container}/securityContext")).expect("sc")["seccompProfile"] = Value::Null;
            }),
        ),
        (
            "resources.limits",
            Box::new(move |d: &mut Value| d.pointer_mut(container).expect("c")["resources"]["limits"] = json!({})),
        ),
        (
            "hostPath",
            Box::new(|d: &mut Value| {
                d["spec"]["template"]["spec"]["volumes"]
                    .as_array_mut()
                    .expect("volumes")
                    .push(json!({"name": "h", "hostPath": {"path": "/"}}));
            }),
        ),
        ("hostNetwork", Box::new(|d: &mut Value| d["spec"]["template"]["spec"]["hostNetwork"] = json!(true))),
        (
            "enableServiceLinks",
            Box::new(|d: &mut Value| d["spec"]["template"]["spec"]["enableServiceLinks"] = Value::Null),
        ),
        (
            "image",
            Box::new(move |d: &mut Value| {
                d.pointer_mut(container).expect("c")["image"] = json!("ghcr.io/kplan/kplan:latest")
            }),
        ),
    ];
    for (what, breakage) in breakages {
        let broken = mutate(server, breakage);
        assert!(!restricted_problems(&broken).is_empty(), "breaking {what} went unnoticed");
    }
    let mut unlabelled = overlay.objects.clone();
    for object in &mut unlabelled {
        if kind(object) == "Namespace" {
            object["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = json!("baseline");
        }
    }
    assert!(!namespace_problems(&unlabelled).is_empty(), "a namespace without enforce=restricted went unnoticed");
}

// ---------------------------------------------------------------- TLS Secret mounts

/// The Secret the server's certificate, key and client CA come from.
const SERVER_TLS_SECRET: &str = "kplan-server-tls";

/// The server's TLS Secret must be mounted as a directory: the kubelet updates
/// a Secret volume by swapping its `..data` symlink, and a `subPath` mount is a
/// bind mount of one file that never sees the update, so the server's reload
/// (`tls_reload_interval_seconds`) would never happen.
fn tls_secret_mount_problems(workload: &Value) -> Vec<String> {
    let Some(spec) = pod_spec(workload) else { return Vec::new() };
    let tls_volumes: BTreeSet<&str> = array(&spec["volumes"])
        .iter()
        .filter(|volume| {
            volume["secret"]["secretName"] == SERVER_TLS_SECRET
                || array(&volume["projected"]["sources"]).iter().any(|s| s["secret"]["name"] == SERVER_TLS_SECRET)
        })
        .filter_map(|volume| volume["name"].as_str())
        .collect();
    let mut problems = Vec::new();
    for container in all_containers(spec) {
        for mount in array(&container["volumeMounts"]) {
            let volume = mount["name"].as_str().unwrap_or("");
            if tls_volumes.contains(volume) && (mount.get("subPath").is_some() || mount.get("subPathExpr").is_some()) {
                problems.push(format!(
                    "{}: container {} mounts the Secret {SERVER_TLS_SECRET} (volume {volume}) with subPath: a \
                     subPath mount never sees a Secret update, so the certificate would not be reloaded; mount \
                     the volume as a directory",
                    id(workload),
                    container["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    problems
}

#[test]
fn the_tls_secret_is_mounted_as_a_directory_so_updates_reach_the_server() {
    let Some(overlays) = overlays() else { return };
    let mut n_mounts = 0;
    for overlay in overlays {
        for workload in workloads(&overlay.objects) {
            let problems = tls_secret_mount_problems(workload);
            assert!(problems.is_empty(), "{}:\n{}", overlay.name, problems.join("\n"));
            if name(workload) == "kplan-server" {
                n_mounts += 1;
            }
        }
    }
    assert!(n_mounts >= 2, "the server Deployment is rendered by server-only and example-all-in-one");

    // The check bites: the certificate mounted as a single file.
    let overlay = overlays.iter().find(|o| o.name == "server-only").expect("server-only");
    let server = find(&overlay.objects, "Deployment", "kplan-server").expect("server Deployment");
    let broken = mutate(server, |d| {
        let mounts = d
            .pointer_mut("/spec/template/spec/containers/0/volumeMounts")
            .and_then(Value::as_array_mut)
            .expect("volumeMounts");
        let tls = mounts.iter_mut().find(|m| m["name"] == "tls").expect("the tls mount");
        tls["mountPath"] = json!("/etc/kplan/tls/tls.crt");
        tls["subPath"] = json!("tls.crt");
    });
    let problems = tls_secret_mount_problems(&broken);
    assert!(problems.len() == 1 && problems[0].contains("subPath"), "{problems:?}");
}

// ---------------------------------------------------------------- RBAC

fn expected_agent_rules() -> BTreeSet<(String, String, String)> {
    let mut rules = BTreeSet::new();
    for (group, resource) in [
        ("", "nodes"),
        ("", "namespaces"),
        ("", "pods"),
        ("apps", "daemonsets"),
        ("", "persistentvolumeclaims"),
        ("", "persistentvolumes"),
        ("storage.k8s.io", "storageclasses"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("networking.k8s.io", "networkpolicies"),
        ("node.k8s.io", "runtimeclasses"),
        ("policy", "poddisruptionbudgets"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    ] {
        for verb in ["get", "list", "watch"] {
            rules.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    }
    // Gatekeeper's templates and constraints are listed, not watched.
    for (group, resource) in [("templates.gatekeeper.sh", "constrainttemplates"), ("constraints.gatekeeper.sh", "*")] {
        rules.insert((group.to_string(), resource.to_string(), "list".to_string()));
    }
    rules
}

/// The agent's ClusterRole must grant exactly get/list/watch on the sixteen kinds
/// it watches (nodes, namespaces, pods, DaemonSets, claims, volumes, storage classes,
/// the four RBAC kinds, NetworkPolicies, RuntimeClasses, PodDisruptionBudgets,
/// ValidatingAdmissionPolicies and their bindings), and list on Gatekeeper's
/// ConstraintTemplates and constraints.
fn cluster_role_problems(role: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut granted = BTreeSet::new();
    if role["aggregationRule"] != Value::Null {
        problems.push("has an aggregationRule".to_string());
    }
    for rule in array(&role["rules"]) {
        for field in ["resourceNames", "nonResourceURLs"] {
            if !rule[field].is_null() {
                problems.push(format!("a rule has {field}"));
            }
        }
        for group in array(&rule["apiGroups"]) {
            for resource in array(&rule["resources"]) {
                for verb in array(&rule["verbs"]) {
                    let key = |v: &Value| v.as_str().unwrap_or("?").to_string();
                    granted.insert((key(group), key(resource), key(verb)));
                }
            }
        }
    }
    let expected = expected_agent_rules();
    for extra in granted.difference(&expected) {
        problems.push(format!("grants {extra:?}, which the agent must not have"));
    }
    for missing in expected.difference(&granted) {
        problems.push(format!("lacks {missing:?}, which the agent needs"));
    }
    problems
}

/// The agent's identity: its ServiceAccount, bound to the ClusterRole and to
/// nothing else; no other RBAC object in the overlay; the server has no token.
fn rbac_problems(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let rbac: Vec<&Value> = objects
        .iter()
        .filter(|o| ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"].contains(&kind(o)))
        .collect();
    if let Some(server) = find(objects, "Deployment", "kplan-server")
        && server["spec"]["template"]["spec"]["automountServiceAccountToken"] != false
    {
        problems.push("the server mounts a service-account token it does not need".to_string());
    }
    let Some(agent) = find(objects, "Deployment", "kplan-agent") else {
        if !rbac.is_empty() {
            problems
                .push(format!("RBAC objects without an agent: {:?}", rbac.iter().map(|o| id(o)).collect::<Vec<_>>()));
        }
        return problems;
    };
    let namespace = agent["metadata"]["namespace"].as_str().unwrap_or("");
    let spec = &agent["spec"]["template"]["spec"];
    if spec["serviceAccountName"] != "kplan-agent" {
        problems.push(format!("the agent runs as service account {}", spec["serviceAccountName"]));
    }
    if !objects
        .iter()
        .any(|o| kind(o) == "ServiceAccount" && name(o) == "kplan-agent" && o["metadata"]["namespace"] == namespace)
    {
        problems.push(format!("no ServiceAccount kplan-agent in {namespace}"));
    }
    for object in &rbac {
        match (kind(object), name(object)) {
            ("ClusterRole", "kplan-agent") => {
                problems
                    .extend(cluster_role_problems(object).into_iter().map(|p| format!("ClusterRole kplan-agent: {p}")));
            }
            ("ClusterRoleBinding", "kplan-agent") => {
                let role_ref = &object["roleRef"];
                if role_ref["kind"] != "ClusterRole" || role_ref["name"] != "kplan-agent" {
                    problems.push(format!("ClusterRoleBinding kplan-agent binds {role_ref}"));
                }
                let want = json!([{"kind": "ServiceAccount", "name": "kplan-agent", "namespace": namespace}]);
                if object["subjects"] != want {
                    problems.push(format!("ClusterRoleBinding kplan-agent binds {} (want {want})", object["subjects"]));
                }
            }
            _ => problems.push(format!("unexpected RBAC object {}", id(object))),
        }
    }
    for needed in ["ClusterRole", "ClusterRoleBinding"] {
        if find(objects, needed, "kplan-agent").is_none() {
            problems.push(format!("no {needed} kplan-agent"));
        }
    }
    problems
}

#[test]
fn the_agent_may_only_get_list_and_watch_the_kinds_it_reports() {
    let Some(overlays) = overlays() else { return };
    // The file the agent's real-API end-to-end test binds its user to.
    let alone = render(&deploy_dir().join("kubernetes/agent"));
    assert_eq!(alone.len(), 1, "deploy/kubernetes/agent renders one object: {alone:?}");
    assert_eq!(id(&alone[0]), "ClusterRole/kplan-agent");
    let problems = cluster_role_problems(&alone[0]);
    assert!(problems.is_empty(), "deploy/kubernetes/agent/clusterrole.yaml:\n{}", problems.join("\n"));

    for overlay in overlays {
        let problems = rbac_problems(&overlay.objects);
        assert!(problems.is_empty(), "{}:\n{}", overlay.name, problems.join("\n"));
        let has_agent = find(&overlay.objects, "Deployment", "kplan-agent").is_some();
        assert_eq!(has_agent, overlay.name != "server-only", "{}: agent presence", overlay.name);
    }

    // Each rule bites.
    let role = &alone[0];
    let breakages: Vec<(&str, Value)> = vec![
        ("secrets", mutate(role, |r| r["rules"][0]["resources"].as_array_mut().expect("list").push(json!("secrets")))),
        ("a write verb", mutate(role, |r| r["rules"][1]["verbs"].as_array_mut().expect("list").push(json!("patch")))),
        ("a wildcard", mutate(role, |r| r["rules"][0]["verbs"] = json!(["*"]))),
        ("a missing kind", mutate(role, |r| r["rules"].as_array_mut().expect("rules").truncate(1))),
        ("resourceNames", mutate(role, |r| r["rules"][0]["resourceNames"] = json!(["n1"]))),
    ];
    for (what, broken) in breakages {
        assert!(!cluster_role_problems(&broken).is_empty(), "a ClusterRole with {what} went unnoticed");
    }
    let overlay = overlays.iter().find(|o| o.name == "example-all-in-one").expect("all-in-one");
    let mut extra = overlay.objects.clone();
    extra.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kplan-agent-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "kplan-agent", "namespace": "kplan-system"}]}));
    assert!(!rbac_problems(&extra).is_empty(), "an extra binding went unnoticed");
    let mut token = overlay.objects.clone();
    for object in &mut token {
        if id(object) == "Deployment/kplan-server" {
            object["spec"]["template"]["spec"]["automountServiceAccountToken"] = json!(true);
        }
    }
    assert!(!rbac_problems(&token).is_empty(), "a server with a token went unnoticed");
}

// ---------------------------------------------------------------- network policies and ports

fn selects(selector: &Value, labels: &Value) -> bool {
    assert!(selector["matchExpressions"].is_null(), "matchExpressions are not evaluated by this test");
    selector["matchLabels"].as_object().is_none_or(|want| want.iter().all(|(key, value)| &labels[key] == value))
}

fn policy_types(policy: &Value) -> BTreeSet<&str> {
    array(&policy["spec"]["policyTypes"]).iter().filter_map(Value::as_str).collect()
}

/// (protocol, port) pairs of a rule; a rule without ports allows every port.
fn rule_ports(rule: &Value) -> Option<BTreeSet<(String, i64)>> {
    let ports = array(&rule["ports"]);
    if ports.is_empty() {
        return None;
    }
    Some(
        ports
            .iter()
            .map(|p| (p["protocol"].as_str().unwrap_or("TCP").to_string(), p["port"].as_i64().unwrap_or(-1)))
            .collect(),
    )
}

fn tcp(ports: &[i64]) -> BTreeSet<(String, i64)> {
    ports.iter().map(|port| ("TCP".to_string(), *port)).collect()
}

/// The NetworkPolicies: default deny per namespace, then exactly the documented
/// ports for the server and the agent.
fn network_problems(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let policies: Vec<&Value> = objects.iter().filter(|o| kind(o) == "NetworkPolicy").collect();
    let server_labels = find(objects, "Deployment", "kplan-server").map(pod_labels);
    for workload in workloads(objects) {
        let namespace = &workload["metadata"]["namespace"];
        let labels = pod_labels(workload);
        let in_namespace: Vec<&Value> =
            policies.iter().copied().filter(|p| &p["metadata"]["namespace"] == namespace).collect();
        let default_deny = in_namespace.iter().any(|p| {
            p["spec"]["podSelector"]
                .as_object()
                .is_some_and(|s| s.values().all(|v| v.as_object().is_some_and(|m| m.is_empty())))
                && policy_types(p).is_superset(&BTreeSet::from(["Ingress", "Egress"]))
                && array(&p["spec"]["ingress"]).is_empty()
                && array(&p["spec"]["egress"]).is_empty()
        });
        if !default_deny {
            problems.push(format!("namespace {namespace}: no default-deny NetworkPolicy for ingress and egress"));
        }
        let selecting: Vec<&Value> =
            in_namespace.into_iter().filter(|p| selects(&p["spec"]["podSelector"], labels)).collect();
        let mut ingress = BTreeSet::new();
        let mut egress = BTreeSet::new();
        let mut egress_rules = Vec::new();
        for policy in &selecting {
            let types = policy_types(policy);
            for (direction, set, wanted) in [("ingress", &mut ingress, "Ingress"), ("egress", &mut egress, "Egress")] {
                if !types.contains(wanted) {
                    continue;
                }
                for rule in array(&policy["spec"][direction]) {
                    match rule_ports(rule) {
                        Some(ports) => set.extend(ports),
                        None => problems.push(format!(
                            "{}: {direction} rule of {} allows every port",
                            id(workload),
                            id(policy)
                        )),
                    }
                    if direction == "egress" {
                        egress_rules.push(rule);
                    }
                }
            }
        }
        let (want_ingress, want_egress) = match name(workload) {
            "kplan-server" => (tcp(&[SERVER_GRPC, SERVER_METRICS]), BTreeSet::new()),
            "kplan-agent" => {
                let mut egress = tcp(&[53, 443, 6443, SERVER_GRPC]);
                egress.insert(("UDP".to_string(), 53));
                (tcp(&[AGENT_HEALTH, AGENT_METRICS]), egress)
            }
            other => {
                problems.push(format!("unexpected workload {other}"));
                continue;
            }
        };
        if ingress != want_ingress {
            problems.push(format!("{}: ingress ports {ingress:?}, want {want_ingress:?}", id(workload)));
        }
        if egress != want_egress {
            problems.push(format!("{}: egress ports {egress:?}, want {want_egress:?}", id(workload)));
        }
        // The agent's egress: DNS only to kube-system, 7470 only to the server.
        for rule in egress_rules {
            let ports = rule_ports(rule).unwrap_or_default();
            let to = array(&rule["to"]);
            if ports.iter().any(|(_, port)| *port == 53)
                && (to.is_empty()
                    || !to.iter().all(|peer| {
                        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "kube-system"
                    }))
            {
                problems.push(format!("{}: DNS egress is not limited to kube-system", id(workload)));
            }
            if ports.iter().any(|(_, port)| *port == SERVER_GRPC) {
                if to.is_empty() {
                    problems.push(format!(
                        "{}: egress to port {SERVER_GRPC} goes anywhere, not to the server",
                        id(workload)
                    ));
                }
                if let Some(server_labels) = server_labels
                    && !to
                        .iter()
                        .any(|peer| peer["podSelector"].is_object() && selects(&peer["podSelector"], server_labels))
                {
                    problems
                        .push(format!("{}: egress to {SERVER_GRPC} does not select the server's pods", id(workload)));
                }
            }
        }
    }
    problems
}

fn toml_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

fn port_of(address: &str) -> Option<i64> {
    address.rsplit_once(':').and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
}

/// The probes, ports, Services and configuration files agree on every port and path.
fn port_problems(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for workload in workloads(objects) {
        let spec = pod_spec(workload).expect("workload");
        let container = &spec["containers"][0];
        let who = id(workload);
        let ports: BTreeMap<&str, i64> = array(&container["ports"])
            .iter()
            .map(|p| (p["name"].as_str().unwrap_or("?"), p["containerPort"].as_i64().unwrap_or(-1)))
            .collect();
        let (want_ports, config_key) = match name(workload) {
            "kplan-server" => (BTreeMap::from([("grpc", SERVER_GRPC), ("metrics", SERVER_METRICS)]), "server.toml"),
            _ => (BTreeMap::from([("health", AGENT_HEALTH), ("metrics", AGENT_METRICS)]), "agent.toml"),
        };
        if ports != want_ports {
            problems.push(format!("{who}: container ports {ports:?}, want {want_ports:?}"));
        }
        let annotations = &workload["spec"]["template"]["metadata"]["annotations"];
        if annotations["prometheus.io/port"].as_str().and_then(|p| p.parse::<i64>().ok())
            != want_ports.get("metrics").copied()
        {
            problems.push(format!("{who}: prometheus.io/port does not name the metrics port"));
        }
        // Probes.
        if name(workload) == "kplan-server" {
            // gRPC probes cannot present a client certificate to the mTLS port: the
            // server's probes are plain HTTP on its metrics port.
            for (probe, path) in
                [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]
            {
                let get = &container[probe]["httpGet"];
                if get["path"] != path || container_port(container, &get["port"]) != Some(SERVER_METRICS) {
                    problems.push(format!("{who}: {probe} is not GET {path} on {SERVER_METRICS}"));
                }
            }
        } else {
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &container[probe]["httpGet"];
                if get["path"] != path || container_port(container, &get["port"]) != Some(AGENT_HEALTH) {
                    problems.push(format!("{who}: {probe} is not GET {path} on {AGENT_HEALTH}"));
                }
            }
        }
        // Services target the declared ports.
        for service in objects.iter().filter(|o| kind(o) == "Service") {
            if !selects(&json!({"matchLabels": service["spec"]["selector"]}), pod_labels(workload)) {
                continue;
            }
            for port in array(&service["spec"]["ports"]) {
                let target = if port["targetPort"].is_null() { &port["port"] } else { &port["targetPort"] };
                match container_port(container, target) {
                    Some(p) if want_ports.values().any(|w| *w == p) && port["port"].as_i64() == Some(p) => {}
                    _ => problems.push(format!("{}: port {port} does not reach a port of {who}", id(service))),
                }
            }
        }
        // The configuration file: the one --config names, from the ConfigMap mounted there.
        let args: Vec<&str> = array(&container["args"]).iter().filter_map(Value::as_str).collect();
        let config_path = args.windows(2).find(|w| w[0] == "--config").map(|w| w[1]).unwrap_or("");
        let mount = array(&container["volumeMounts"])
            .iter()
            .find(|m| m["mountPath"].as_str().is_some_and(|dir| config_path == format!("{dir}/{config_key}")));
        let volume = mount.and_then(|m| array(&spec["volumes"]).iter().find(|v| v["name"] == m["name"]));
        let config_map =
            volume.and_then(|v| v["configMap"]["name"].as_str()).and_then(|n| find(objects, "ConfigMap", n));
        let Some(text) = config_map.and_then(|c| c["data"][config_key].as_str()) else {
            problems.push(format!("{who}: --config {config_path:?} is not a mounted ConfigMap key {config_key}"));
            continue;
        };
        let listen = |key: &str| toml_value(text, key).and_then(|a| port_of(&a));
        if name(workload) == "kplan-server" {
            if toml_value(text, "listen").as_deref() != Some("0.0.0.0:7470") {
                problems.push(format!(
                    "{who}: server.toml listen is not 0.0.0.0:{SERVER_GRPC} (the kubelet probes the pod IP)"
                ));
            }
            if listen("metrics_listen") != Some(SERVER_METRICS) {
                problems.push(format!("{who}: server.toml metrics_listen is not on {SERVER_METRICS}"));
            }
            let data_dir = toml_value(text, "data_dir").unwrap_or_default();
            let data_mount = array(&container["volumeMounts"]).iter().find(|m| m["mountPath"] == data_dir.as_str());
            let data_volume = data_mount.and_then(|m| array(&spec["volumes"]).iter().find(|v| v["name"] == m["name"]));
            if data_volume.is_none_or(|v| {
                v["persistentVolumeClaim"]["claimName"]
                    .as_str()
                    .is_none_or(|c| find(objects, "PersistentVolumeClaim", c).is_none())
            }) {
                problems.push(format!("{who}: data_dir {data_dir:?} is not on the rendered PersistentVolumeClaim"));
            }
        } else {
            if toml_value(text, "health_listen").is_none_or(|a| !a.starts_with("0.0.0.0:"))
                || listen("health_listen") != Some(AGENT_HEALTH)
            {
                problems.push(format!("{who}: agent.toml health_listen is not 0.0.0.0:{AGENT_HEALTH}"));
            }
            if listen("metrics_listen") != Some(AGENT_METRICS) {
                problems.push(format!("{who}: agent.toml metrics_listen is not on {AGENT_METRICS}"));
            }
            if toml_value(text, "cluster_id").is_none_or(|id| id.is_empty()) {
                problems.push(format!("{who}: agent.toml has no cluster_id"));
            }
            let server = toml_value(text, "server").unwrap_or_default();
            if port_of(&server) != Some(SERVER_GRPC) {
                problems.push(format!("{who}: agent.toml server {server:?} is not on port {SERVER_GRPC}"));
            }
            if let Some(service) = find(objects, "Service", "kplan-server") {
                let host = format!("{}.{}.svc", name(service), service["metadata"]["namespace"].as_str().unwrap_or(""));
                if !server.contains(&format!("//{host}:")) && !server.contains(&format!("//{host}.cluster.local:")) {
                    problems.push(format!("{who}: agent.toml server {server:?} is not the in-cluster Service {host}"));
                }
            }
        }
        // Certificates: a Secret, mounted read-only at /etc/kplan/tls.
        let tls = array(&container["volumeMounts"]).iter().find(|m| m["mountPath"] == "/etc/kplan/tls");
        let tls_volume = tls.and_then(|m| array(&spec["volumes"]).iter().find(|v| v["name"] == m["name"]));
        if tls.is_none_or(|m| m["readOnly"] != true) || tls_volume.is_none_or(|v| v["secret"]["secretName"].is_null()) {
            problems.push(format!("{who}: no Secret mounted read-only at /etc/kplan/tls"));
        }
    }
    problems
}

#[test]
fn network_policies_probes_services_and_configs_agree_on_the_documented_ports() {
    let Some(overlays) = overlays() else { return };
    for overlay in overlays {
        let mut problems = network_problems(&overlay.objects);
        problems.extend(port_problems(&overlay.objects));
        assert!(problems.is_empty(), "{}:\n{}", overlay.name, problems.join("\n"));
    }

    // Each rule bites.
    let objects = &overlays.iter().find(|o| o.name == "example-all-in-one").expect("all-in-one").objects;
    let edit = |target: &str, edit: &dyn Fn(&mut Value)| -> Vec<Value> {
        objects.iter().map(|o| if id(o) == target { mutate(o, edit) } else { o.clone() }).collect()
    };
    let network_breakages: Vec<(&str, Vec<Value>)> = vec![
        ("no default deny", objects.iter().filter(|o| name(o) != "default-deny-all").cloned().collect()),
        (
            "server egress",
            edit("NetworkPolicy/kplan-server", &|p: &mut Value| {
                p["spec"]["egress"] = json!([{"ports": [{"port": 443}]}])
            }),
        ),
        (
            "an extra server port",
            edit("NetworkPolicy/kplan-server", &|p: &mut Value| {
                p["spec"]["ingress"][0]["ports"].as_array_mut().expect("ports").push(json!({"port": 22}))
            }),
        ),
        (
            "an all-ports rule",
            edit("NetworkPolicy/kplan-agent", &|p: &mut Value| {
                p["spec"]["egress"]
                    .as_array_mut()
                    .expect("egress")
                    .push(json!({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}))
            }),
        ),
        (
            "7470 to anywhere",
            edit("NetworkPolicy/kplan-agent-to-server", &|p: &mut Value| p["spec"]["egress"][0]["to"] = json!([])),
        ),
        ("DNS anywhere", edit("NetworkPolicy/kplan-agent", &|p: &mut Value| p["spec"]["egress"][0]["to"] = json!([]))),
    ];
    for (what, broken) in network_breakages {
        assert!(!network_problems(&broken).is_empty(), "{what} went unnoticed");
    }
    let server_container = "/spec/template/spec/containers/0";
    let port_breakages: Vec<(&str, Vec<Value>)> = vec![
        (
            "a gRPC probe on the server's mTLS port",
            edit("Deployment/kplan-server", &|d: &mut Value| {
                d.pointer_mut(server_container).expect("c")["livenessProbe"] = json!({"grpc": {"port": 7470}});
            }),
        ),
        (
            "the agent's readiness on /healthz",
            edit("Deployment/kplan-agent", &|d: &mut Value| {
                d.pointer_mut(server_container).expect("c")["readinessProbe"]["httpGet"]["path"] = json!("/healthz");
            }),
        ),
        (
            "a Service to a wrong port",
            edit("Service/kplan-server", &|s: &mut Value| s["spec"]["ports"][0]["targetPort"] = json!(8080)),
        ),
        (
            "no TLS Secret",
            edit("Deployment/kplan-agent", &|d: &mut Value| {
                d.pointer_mut(server_container).expect("c")["volumeMounts"]
                    .as_array_mut()
                    .expect("mounts")
                    .retain(|m| m["name"] != "tls");
            }),
        ),
    ];
    for (what, broken) in port_breakages {
        assert!(!port_problems(&broken).is_empty(), "{what} went unnoticed");
    }
    for (key, bad) in [("listen", "127.0.0.1:7470"), ("metrics_listen", "0.0.0.0:9999"), ("data_dir", "/data")] {
        let broken: Vec<Value> = objects
            .iter()
            .map(|o| {
                if kind(o) != "ConfigMap" || o["data"]["server.toml"].is_null() {
                    return o.clone();
                }
                mutate(o, |c| {
                    let text = c["data"]["server.toml"].as_str().expect("text").to_string();
                    let line =
                        text.lines().find(|l| l.starts_with(&format!("{key} ="))).expect("key present").to_string();
                    c["data"]["server.toml"] = json!(text.replace(&line, &format!("{key} = \"{bad}\"")));
                })
            })
            .collect();
        assert!(!port_problems(&broken).is_empty(), "server.toml {key} = {bad} went unnoticed");
    }
}

// ---------------------------------------------------------------- systemd

/// `(key, value)` lines of a unit file, comments and sections left out.
fn unit_directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';') && !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// The sandbox and lifecycle directives both units must keep.
fn unit_problems(unit: &str, text: &str) -> Vec<String> {
    let directives = unit_directives(text);
    let values = |key: &str| directives.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    let short = unit.trim_start_matches("kplan-").trim_end_matches(".service");
    let mut required: Vec<(&str, String)> = [
        ("Type", "exec"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "64"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("User", "kplan"),
    ]
    .into_iter()
    .map(|(key, value)| (key, value.to_string()))
    .collect();
    required.push(("ExecStart", format!("/usr/local/bin/kplan-{short} --config /etc/kplan/{short}.toml")));
    if short == "server" {
        required.push(("StateDirectory", "kplan".to_string()));
    }
    let mut problems = Vec::new();
    for (key, value) in required {
        if !values(key).contains(&value.as_str()) {
            problems.push(format!("{unit}: {key}={value} is missing (found {:?})", values(key)));
        }
    }
    for (key, value) in &directives {
        if (key == "CapabilityBoundingSet" || key == "AmbientCapabilities") && !value.is_empty() {
            problems.push(format!("{unit}: {key}={value} grants capabilities"));
        }
        if key == "DynamicUser" || (key == "User" && value == "root") {
            problems.push(format!("{unit}: {key}={value} (the units run as the sysusers.d user kplan)"));
        }
    }
    problems
}

/// A scratch root for `systemd-analyze --root`: the host's own unit tree (for
/// the targets the units name), the units under etc/, and an executable stub at
/// each ExecStart path. verify insists that ExecStart's binary exists; a stub in
/// a scratch root checks the shipped files byte for byte, whether or not the
/// binaries are built or installed on this host, and never touches the host.
fn scratch_root(units: &[(&str, String)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|dir| Path::new(dir).join("multi-user.target").exists())
        .expect("the host's systemd unit directory (systemd is installed)");
    let target = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&target).expect("mkdir");
    let (ok, _, err) = run("cp", &["-a", system_units, target.to_str().expect("utf-8")], None);
    assert!(ok, "copying {system_units}: {err}");
    let etc = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&etc).expect("mkdir");
    for (unit, text) in units {
        std::fs::write(etc.join(unit), text).expect("writes unit");
        for (key, value) in unit_directives(text) {
            if key == "ExecStart" {
                let binary =
                    value.split_whitespace().next().expect("ExecStart path").trim_start_matches(['-', '@', '+', '!']);
                let stub = root.path().join(binary.trim_start_matches('/'));
                std::fs::create_dir_all(stub.parent().expect("parent")).expect("mkdir");
                std::fs::write(&stub, "#!/bin/sh\nexit 0\n").expect("stub");
                let (ok, _, err) = run("chmod", &["0755", stub.to_str().expect("utf-8")], None);
                assert!(ok, "chmod: {err}");
            }
        }
    }
    root
}

/// `systemd-analyze verify` (silent: a warning is a problem) and
/// `security --threshold` (exposure at most 2.0 of 10).
fn analyze_problems(units: &[(&str, String)]) -> Vec<String> {
    let root = scratch_root(units);
    let root_arg = format!("--root={}", root.path().display());
    let mut problems = Vec::new();
    for (unit, _) in units {
        let path = format!("/etc/systemd/system/{unit}");
        let (ok, out, err) = run("systemd-analyze", &["verify", "--man=no", &root_arg, &path], None);
        let said = format!("{out}{err}");
        if !ok || !said.trim().is_empty() {
            problems.push(format!("systemd-analyze verify {unit}:\n{said}"));
        }
        let (ok, out, err) =
            run("systemd-analyze", &["security", "--offline=true", "--threshold=20", &root_arg, &path], None);
        if !ok {
            let overall = format!("{out}{err}").lines().filter(|l| l.contains("Overall")).collect::<Vec<_>>().join("");
            problems.push(format!("systemd-analyze security {unit}: exposure above 2.0: {overall}{err}"));
        }
    }
    problems
}

fn units() -> Vec<(&'static str, String)> {
    let dir = deploy_dir().join("systemd");
    ["kplan-server.service", "kplan-agent.service"].into_iter().map(|unit| (unit, read(&dir.join(unit)))).collect()
}

#[test]
fn the_systemd_units_verify_and_keep_their_sandbox() {
    let units = units();
    let mut problems: Vec<String> = units.iter().flat_map(|(unit, text)| unit_problems(unit, text)).collect();
    // The example configuration each unit names, and the store where the unit puts it.
    let etc = deploy_dir().join("systemd/etc/kplan");
    let server = read(&etc.join("server.toml"));
    let agent = read(&etc.join("agent.toml"));
    if toml_value(&server, "data_dir").as_deref() != Some("/var/lib/kplan") {
        problems.push("server.toml: data_dir is not the unit's StateDirectory /var/lib/kplan".into());
    }
    for (file, text, key, port) in [
        ("server.toml", &server, "listen", SERVER_GRPC),
        ("server.toml", &server, "metrics_listen", SERVER_METRICS),
        ("agent.toml", &agent, "health_listen", AGENT_HEALTH),
        ("agent.toml", &agent, "metrics_listen", AGENT_METRICS),
        ("agent.toml", &agent, "server", SERVER_GRPC),
    ] {
        if toml_value(text, key).and_then(|a| port_of(&a)) != Some(port) {
            problems.push(format!("{file}: {key} is not on port {port}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (what, from, to) in [
        ("ProtectSystem", "ProtectSystem=strict", "ProtectSystem=full"),
        ("a capability", "CapabilityBoundingSet=\n", "CapabilityBoundingSet=CAP_NET_ADMIN\n"),
        ("the user", "User=kplan", "User=root"),
    ] {
        let broken = units[0].1.replace(from, to);
        assert!(!unit_problems(units[0].0, &broken).is_empty(), "{what} went unnoticed");
    }

    if !have("systemd-analyze", runs("systemd-analyze", &["--version"]), "apt-get install systemd") {
        return;
    }
    let problems = analyze_problems(&units);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // verify bites on a typo and on a missing binary; security on a lost sandbox.
    let typo = units[0].1.replace("ProtectSystem=strict", "ProtectSytem=strict");
    assert!(!analyze_problems(&[(units[0].0, typo)]).is_empty(), "verify accepted a misspelled directive");
    let unsandboxed: String = units[0]
        .1
        .lines()
        .take_while(|line| !line.starts_with("# Identity"))
        .chain(["[Install]", "WantedBy=multi-user.target"])
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(!analyze_problems(&[(units[0].0, unsandboxed)]).is_empty(), "security accepted an unsandboxed unit");

    if have("systemd-sysusers", runs("systemd-sysusers", &["--version"]), "apt-get install systemd") {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
        let file = deploy_dir().join("systemd/sysusers.d/kplan.conf");
        let (ok, out, err) = run(
            "systemd-sysusers",
            &["--dry-run", &format!("--root={}", root.path().display()), file.to_str().expect("utf-8")],
            None,
        );
        assert!(ok && format!("{out}{err}").contains("user 'kplan'"), "sysusers.d/kplan.conf:\n{out}{err}");
    }
}

// ---------------------------------------------------------------- Containerfile

#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// Instructions with continuation lines joined and comments dropped.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            joined.push(std::mem::take(&mut current));
        }
    }
    joined
        .into_iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            Instruction { keyword: keyword.to_uppercase(), args: args.trim().to_string() }
        })
        .collect()
}

fn containerfile_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let all = instructions(text);
    let stages: Vec<usize> = all.iter().enumerate().filter(|(_, i)| i.keyword == "FROM").map(|(n, _)| n).collect();
    if stages.len() < 2 {
        problems.push(format!("{} stage(s): the build must be multi-stage", stages.len()));
        return problems;
    }
    for &start in &stages {
        let image = all[start].args.split_whitespace().next().unwrap_or("");
        let tag = image.rsplit_once('/').map_or(image, |(_, last)| last);
        if !(tag.contains(':') || image.contains('@')) || tag.ends_with(":latest") {
            problems.push(format!("FROM {image}: pin a tag or digest (not latest)"));
        }
    }
    let builder = &all[stages[0]].args;
    if !(builder.starts_with("docker.io/library/rust:") || builder.starts_with("rust:"))
        || !builder.contains("bookworm")
        || !builder.to_lowercase().contains(" as builder")
    {
        problems.push(format!("the first stage is {builder:?}, want rust:*-bookworm AS builder"));
    }
    let last = *stages.last().expect("stages");
    let runtime = &all[last].args;
    let distroless = runtime.starts_with("gcr.io/distroless/cc-debian12");
    if !distroless
        && !runtime.starts_with("debian:bookworm-slim")
        && !runtime.starts_with("docker.io/library/debian:bookworm-slim")
    {
        problems.push(format!("the runtime stage is {runtime:?}, want distroless cc-debian12 or debian:bookworm-slim"));
    }
    for instruction in &all {
        let args = instruction.args.to_lowercase();
        if instruction.keyword == "ADD" && (args.contains("://") || args.contains("git@")) {
            problems.push(format!("ADD {}: fetches from the network", instruction.args));
        }
        if instruction.keyword == "RUN" && (args.contains("curl ") || args.contains("wget ")) {
            problems.push(format!("RUN downloads outside the package manager: {}", instruction.args));
        }
    }
    let build_runs: String = all[stages[0]..last]
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for needed in ["cmake", "libclang-dev", "cargo build", "--release", "--locked"] {
        if !build_runs.contains(needed) {
            problems.push(format!("the build stage does not use {needed}"));
        }
    }
    let final_stage = &all[last + 1..];
    match final_stage.iter().rfind(|i| i.keyword == "USER") {
        None => problems.push("the runtime stage has no USER (it would run as root)".into()),
        Some(user) => {
            let (uid, gid) = user.args.split_once(':').unwrap_or((&user.args, ""));
            if uid.parse::<i64>().ok() != Some(NON_ROOT_ID)
                || (!gid.is_empty() && gid.parse::<i64>().ok() != Some(NON_ROOT_ID))
            {
                problems.push(format!(
                    "USER {}: want the numeric non-root {NON_ROOT_ID}:{NON_ROOT_ID} of the manifests",
                    user.args
                ));
            }
        }
    }
    if distroless && final_stage.iter().any(|i| i.keyword == "RUN") {
        problems.push("RUN in the distroless stage: there is no shell".into());
    }
    let copies: String = final_stage
        .iter()
        .filter(|i| i.keyword == "COPY" && i.args.starts_with("--from=builder"))
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for binary in BINARIES {
        if !copies.split_whitespace().any(|word| word.ends_with(&format!("/{binary}")))
            || !copies.contains("/usr/local/bin/")
        {
            problems.push(format!("the runtime stage does not copy {binary} from the builder into /usr/local/bin/"));
        }
    }
    for instruction in final_stage.iter().filter(|i| i.keyword == "CMD" || i.keyword == "ENTRYPOINT") {
        if !instruction.args.starts_with('[') {
            problems.push(format!("{} in shell form: there is no shell", instruction.keyword));
        }
    }
    problems
}

#[test]
fn the_containerfile_is_multi_stage_non_root_and_fetches_nothing() {
    // No container engine here: the file is checked statically.
    let text = read(&deploy_dir().join("container/Containerfile"));
    let problems = containerfile_problems(&text);
    assert!(problems.is_empty(), "deploy/container/Containerfile:\n{}", problems.join("\n"));
    for (what, from, to) in [
        ("a root user", "USER 65532:65532", "USER root"),
        ("no USER", "USER 65532:65532", ""),
        ("a single stage", "FROM gcr.io/distroless/cc-debian12:nonroot", ""),
        ("a remote ADD", "WORKDIR /src", "WORKDIR /src\nADD https://example.com/x.tar.gz /x"),
        ("a latest tag", "cc-debian12:nonroot", "cc-debian12:latest"),
        ("a missing binary", "/out/kplan-agent ", ""),
        ("a shell in distroless", "USER 65532:65532", "RUN echo hi\nUSER 65532:65532"),
    ] {
        assert!(text.contains(from), "the breakage of {what} no longer applies: {from:?} not found");
        assert!(!containerfile_problems(&text.replacen(from, to, 1)).is_empty(), "{what} went unnoticed");
    }
}

// ---------------------------------------------------------------- the deploy README

#[test]
fn the_deploy_readme_walks_through_every_overlay_secret_and_unit() {
    let readme = read(&deploy_dir().join("README.md"));
    let mut missing = Vec::new();
    for overlay in OVERLAYS {
        missing.push(format!("deploy/kubernetes/overlays/{overlay}"));
    }
    for secret in ["kplan-server-tls", "kplan-agent-tls"] {
        missing.push(format!("create secret generic {secret}"));
    }
    for unit in [
        "kplan-server.service",
        "kplan-agent.service",
        "sysusers.d/kplan.conf",
        "etc/kplan/server.toml",
        "etc/kplan/agent.toml",
    ] {
        missing.push(format!("deploy/systemd/{unit}"));
    }
    for port in [SERVER_GRPC, SERVER_METRICS, AGENT_HEALTH, AGENT_METRICS] {
        missing.push(format!("| {port} |"));
    }
    missing.retain(|needle| !readme.contains(needle.as_str()));
    assert!(missing.is_empty(), "deploy/README.md does not mention: {missing:?}");
    // Every Secret the manifests mount is one the README creates.
    for base in ["server", "agent"] {
        let text = read(&deploy_dir().join(format!("kubernetes/base/{base}/deployment.yaml")));
        for line in text.lines().filter(|line| line.trim_start().starts_with("secretName:")) {
            let secret = line.split_once(':').expect("key").1.trim();
            assert!(
                readme.contains(&format!("create secret generic {secret}")),
                "README does not create Secret {secret}"
            );
        }
    }
}

// ---------------------------------------------------------------- the shipped configs, run

/// Starts `program` and waits for `ready` in its JSON log; returns its log on failure.
fn starts(mut command: Command, ready: &str) -> Result<(), String> {
    let mut child: Child = command
        .env("KPLAN_LOG", "info")
        .env("KPLAN_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("spawn: {err}"))?;
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    let outcome = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let started = serde_json::from_str::<Value>(&line).is_ok_and(|v| v["message"] == ready);
                log.push(line);
                if started {
                    break Ok(());
                }
            }
            Err(_) => break Err(format!("no {ready:?} in the log within 30 s (exit status: {:?})", child.try_wait())),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome.map_err(|why| format!("{why}; log:\n{}", log.join("\n")))
}

/// The shipped configuration files are accepted by the real binaries (unknown
/// keys are fatal there). Ports are moved to free ones through the environment.
/// TLS files come from `kplan certs` through the environment.
#[test]
fn the_shipped_configs_are_accepted_by_the_binaries() {
    let deploy = deploy_dir();
    let mut failures = Vec::new();
    // The configs name /etc/kplan/tls/*: real certificates from `kplan certs`
    // stand in for them through the environment (the layer above the file).
    let certs = tempfile::tempdir().expect("tempdir");
    let ca_dir = certs.path().join("ca");
    let ca_dir = ca_dir.to_str().expect("utf-8 path");
    common::kplan_ok(&["certs", "init", "--out", ca_dir, "--server-host", "127.0.0.1"]);
    let agent_dir = certs.path().join("agent");
    common::kplan_ok(&[
        "certs",
        "issue",
        "--ca-dir",
        ca_dir,
        "--cluster",
        "example-cluster",
        "--out",
        agent_dir.to_str().expect("utf-8"),
    ]);
    let cert = |dir: &str, file: &str| format!("{dir}/{file}");
    let agent_dir = agent_dir.to_str().expect("utf-8 path").to_string();
    for file in ["systemd/etc/kplan/server.toml", "kubernetes/base/server/server.toml"] {
        let data = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(bin("kplan-server"));
        command
            .arg("--config")
            .arg(deploy.join(file))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("KPLAN_SERVER_METRICS_LISTEN", "127.0.0.1:0")
            .env("KPLAN_SERVER_TLS__CERT_FILE", cert(ca_dir, "server.crt"))
            .env("KPLAN_SERVER_TLS__KEY_FILE", cert(ca_dir, "server.key"))
            .env("KPLAN_SERVER_TLS__CLIENT_CA_FILE", cert(ca_dir, "ca.crt"));
        if let Err(why) = starts(command, "listening") {
            failures.push(format!("{file}: {why}"));
        }
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let kubeconfig = scratch.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    \
         insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    \
         cluster: c\n    user: u\ncurrent-context: c\n",
    )
    .expect("kubeconfig");
    let mut agent_files =
        vec!["systemd/etc/kplan/agent.toml".to_string(), "kubernetes/base/agent/agent.toml".to_string()];
    agent_files.extend(
        OVERLAYS.iter().map(|o| format!("kubernetes/overlays/{o}/agent.toml")).filter(|f| deploy.join(f).is_file()),
    );
    for file in agent_files {
        let mut command = Command::new(bin("kplan-agent"));
        command
            .arg("--config")
            .arg(deploy.join(&file))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("KPLAN_AGENT_HEALTH_LISTEN", "127.0.0.1:0")
            .env("KPLAN_AGENT_METRICS_LISTEN", "127.0.0.1:0")
            .env("KPLAN_AGENT_CLUSTER_ID", "example-cluster")
            .env("KPLAN_AGENT_TLS__CA_FILE", cert(ca_dir, "ca.crt"))
            .env("KPLAN_AGENT_TLS__CERT_FILE", cert(&agent_dir, "example-cluster.crt"))
            .env("KPLAN_AGENT_TLS__KEY_FILE", cert(&agent_dir, "example-cluster.key"));
        if let Err(why) = starts(command, "agent started") {
            failures.push(format!("{file}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
