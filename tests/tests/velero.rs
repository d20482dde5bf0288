//! Issue 15: the Velero objects of a runbook are objects Velero takes.
//!
//! The example estate is planned (`kplan import`, `kplan propose`) and
//! `kplan_planner::runbook::runbook` makes its runbook; every `Backup` and
//! `Restore` of it is then checked twice:
//!
//! - offline, against the `openAPIV3Schema` of its kind in the vendored,
//!   pinned Velero CRDs (`fixtures/velero/`, Velero v1.13), with a JSON-schema
//!   validator. The CRD schema is a Kubernetes *structural* schema: the
//!   conversion below handles its extensions (`nullable`,
//!   `x-kubernetes-preserve-unknown-fields`), refuses unknown fields (the API
//!   server would silently prune them, so Velero would never see them), and a
//!   test makes sure the schemas use no keyword the check does not enforce or
//!   handle. What the API server checks beside the schema (the object's
//!   metadata) and what Velero's own types parse (a Go duration as `ttl`, the
//!   two values of `existingResourcePolicy`) are checked too;
//! - against the tests' real kube-apiserver with the two CRDs installed: every
//!   object of one wave is created with a server-side dry run (what `kubectl
//!   apply --dry-run=server` does), and comes back with nothing pruned.
//!
//! The `change-storage-class` ConfigMap a restore brings when its claims use
//! a class the target will not have (policy `storage_class_changes`) is a core
//! object: offline, its Velero plugin labels, namespace and data are checked
//! (what Velero's plugin looks up); on the real API server it is created with
//! the same dry run.
//!
//! Both checks can fail: broken copies of emitted objects are refused.

mod common;
mod kube_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kplan_model::{ClusterSnapshot, Plan};
use kplan_planner::runbook::{self, Runbook, VELERO_NAMESPACE};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube_harness::{Apiserver, Kube};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The vendored CRDs: kind, plural, file.
const CRDS: [(&str, &str, &str); 2] =
    [("Backup", "backups", "velero.io_backups.yaml"), ("Restore", "restores", "velero.io_restores.yaml")];

/// Schema keywords the JSON-schema validator enforces (draft 4, formats on).
const ENFORCED: [&str; 8] =
    ["type", "properties", "items", "required", "enum", "additionalProperties", "minItems", "format"];
/// Kubernetes structural-schema keywords the conversion handles, and annotations.
/// `x-kubernetes-map-type` only tells server-side apply how to merge: it
/// constrains no value.
const HANDLED: [&str; 4] = ["nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-map-type", "description"];

fn velero_fixture(file: &str) -> std::path::PathBuf {
    repo_root().join("fixtures/velero").join(file)
}

/// A vendored CRD as JSON.
fn crd(file: &str) -> Value {
    let text = std::fs::read_to_string(velero_fixture(file)).expect("vendored CRD");
    serde_saphyr::from_str(&text).expect("the vendored CRD is YAML")
}

/// The `openAPIV3Schema` of version v1 of a CRD.
fn openapi_schema(crd: &Value) -> Value {
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let v1 = versions.iter().find(|v| v["name"] == "v1").expect("version v1");
    assert!(v1["served"] == true && v1["storage"] == true, "v1 is served and stored");
    v1["schema"]["openAPIV3Schema"].clone()
}

/// A Kubernetes structural schema as a JSON schema (draft 4): `nullable`
/// admits null; an object with `properties` admits no other field unless it
/// preserves unknown fields (the API server would prune them).
fn to_json_schema(schema: &Value) -> Value {
    let map = schema.as_object().expect("a schema is an object");
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "properties" => {
                let properties = value.as_object().expect("properties");
                let converted = properties.iter().map(|(name, s)| (name.clone(), to_json_schema(s))).collect();
                out.insert(key.clone(), Value::Object(converted));
            }
            "items" | "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), to_json_schema(value));
            }
            "nullable" | "x-kubernetes-preserve-unknown-fields" | "x-kubernetes-map-type" | "description" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if map.get("nullable") == Some(&Value::Bool(true)) {
        let kind = out.get("type").cloned().expect("a nullable schema has a type");
        out.insert("type".to_string(), json!([kind, "null"]));
    }
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !preserves {
        out.insert("additionalProperties".to_string(), Value::Bool(false));
    }
    Value::Object(out)
}

/// Every keyword a schema uses (property names are not keywords).
fn keywords(schema: &Value, out: &mut BTreeSet<String>) {
    for (key, value) in schema.as_object().expect("a schema is an object") {
        out.insert(key.clone());
        match key.as_str() {
            "properties" => value.as_object().expect("properties").values().for_each(|s| keywords(s, out)),
            "items" | "additionalProperties" if value.is_object() => keywords(value, out),
            _ => {}
        }
    }
}

/// The checks of the Velero objects: one validator per kind.
struct Checker {
    backup: jsonschema::Validator,
    restore: jsonschema::Validator,
}

impl Checker {
    fn new() -> Checker {
        let validator = |file: &str| {
            let schema = to_json_schema(&openapi_schema(&crd(file)));
            jsonschema::draft4::options().should_validate_formats(true).build(&schema).expect("a valid draft-4 schema")
        };
        Checker { backup: validator(CRDS[0].2), restore: validator(CRDS[1].2) }
    }

    /// What is wrong with `object`, one line a problem; empty when Velero takes it.
    fn problems(&self, object: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let validator = match object["kind"].as_str() {
            Some("Backup") => &self.backup,
            Some("Restore") => &self.restore,
            Some("ConfigMap") => return change_storage_class_problems(object),
            other => return vec![format!("kind {other:?} is not a Velero Backup or Restore")],
        };
        if object["apiVersion"] != "velero.io/v1" {
            problems.push(format!("apiVersion {} is not velero.io/v1", object["apiVersion"]));
        }
        // The CRD schema.
        problems.extend(validator.iter_errors(object).map(|e| format!("schema: {e} (at {})", e.instance_path())));
        // The object relies on no `nullable`: it holds no null.
        nulls(object, "", &mut problems);
        // What the API server checks of the metadata (not in the schema).
        problems.extend(metadata_problems(&object["metadata"]));
        if object.get("status").is_some() {
            problems.push("status is the controller's, not the runbook's".to_string());
        }
        // What Velero's Go types and controllers accept beyond the schema.
        let spec = &object["spec"];
        let ttl = spec.get("ttl").filter(|_| object["kind"] == "Backup");
        if let Some(ttl) = ttl
            && !ttl.as_str().is_some_and(is_go_duration)
        {
            problems.push(format!("velero: spec.ttl {ttl} is not a Go duration (time.ParseDuration)"));
        }
        let policy = spec.get("existingResourcePolicy").filter(|_| object["kind"] == "Restore");
        if let Some(policy) = policy
            && !(policy == "none" || policy == "update")
        {
            problems.push(format!("velero: spec.existingResourcePolicy {policy} is neither none nor update"));
        }
        problems
    }
}

/// What Velero's `change-storage-class` RestoreItemAction needs of its
/// ConfigMap: found by its two labels in Velero's namespace, its data a map of
/// storage class names (old → new).
fn change_storage_class_problems(object: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if object["apiVersion"] != "v1" {
        problems.push(format!("apiVersion {} is not v1", object["apiVersion"]));
    }
    nulls(object, "", &mut problems);
    problems.extend(metadata_problems(&object["metadata"]));
    let labels = &object["metadata"]["labels"];
    if labels["velero.io/plugin-config"] != "" {
        problems.push("velero: label velero.io/plugin-config is not \"\"".to_string());
    }
    if labels["velero.io/change-storage-class"] != "RestoreItemAction" {
        problems.push("velero: label velero.io/change-storage-class is not RestoreItemAction".to_string());
    }
    match object["data"].as_object() {
        Some(data) if !data.is_empty() => {
            for (from, to) in data {
                let class = |name: &str| !name.is_empty() && name.split('.').all(is_dns_label);
                if !class(from) || !to.as_str().is_some_and(class) {
                    problems.push(format!("data {from}: {to} is not a storage class name to another"));
                }
            }
        }
        _ => problems.push("data maps no storage class".to_string()),
    }
    for key in object.as_object().into_iter().flatten().map(|(k, _)| k.as_str()) {
        if !["apiVersion", "kind", "metadata", "data"].contains(&key) {
            problems.push(format!("{key} is not a ConfigMap field the runbook needs"));
        }
    }
    problems
}

fn nulls(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Null => out.push(format!("{path} is null")),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| nulls(v, &format!("{path}/{i}"), out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| nulls(v, &format!("{path}/{k}"), out)),
        _ => {}
    }
}

/// A DNS-1123 label: what Velero's names must be, as they become label
/// values (`velero.io/backup-name`, at most 63 characters).
fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
fn is_label_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric())
}

fn metadata_problems(metadata: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    match metadata["name"].as_str() {
        Some(name) if is_dns_label(name) => {}
        other => problems.push(format!("metadata.name {other:?} is not a DNS-1123 label")),
    }
    if metadata["namespace"] != VELERO_NAMESPACE {
        problems.push(format!("metadata.namespace {} is not {VELERO_NAMESPACE}", metadata["namespace"]));
    }
    for (key, value) in metadata["labels"].as_object().into_iter().flatten() {
        let name = key.rsplit('/').next().unwrap_or_default();
        if !is_label_value(name) || name.is_empty() || !value.as_str().is_some_and(is_label_value) {
            problems.push(format!("metadata.labels {key}={value} is not a valid label"));
        }
    }
    problems
}

/// Go's `time.ParseDuration` syntax: `[+-]` then one or more `<decimal><unit>`, or `0`.
fn is_go_duration(text: &str) -> bool {
    let mut rest = text.strip_prefix(['+', '-']).unwrap_or(text);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) =
            ["ns", "us", "µs", "ms", "s", "m", "h"].iter().filter(|u| rest.starts_with(**u)).max_by_key(|u| u.len())
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// The example estate's plan and the inventory it was made from, planned once
/// per test binary.
struct Example {
    plan: Plan,
    inventory: Vec<ClusterSnapshot>,
}

fn example() -> &'static Example {
    static EXAMPLE: OnceLock<Example> = OnceLock::new();
    EXAMPLE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = dir.path().join("inventory");
        let inv = inventory.to_str().expect("utf-8");
        let plan_json = propose_bank_example(inv);
        let plan: Plan = serde_json::from_str(&plan_json).expect("plan json");
        let clusters: Value =
            serde_json::from_str(&kplan_ok(&["--inventory", inv, "clusters", "list", "-o", "json"])).expect("clusters");
        let inventory: Vec<ClusterSnapshot> = clusters
            .as_array()
            .expect("a list of clusters")
            .iter()
            .map(|c| {
                let id = c["cluster_id"].as_str().expect("cluster_id");
                serde_json::from_str(&kplan_ok(&["--inventory", inv, "clusters", "show", id, "-o", "json"]))
                    .expect("snapshot json")
            })
            .collect();
        assert!(inventory.len() > 1, "the example estate has clusters");
        Example { plan, inventory }
    })
}

/// Every Velero object of a runbook, with the wave it belongs to.
fn velero_objects(book: &Runbook) -> Vec<(u64, Value)> {
    book.blocks
        .iter()
        .flat_map(|b| &b.waves)
        .flat_map(|w| w.steps.iter().flat_map(move |s| s.objects.iter().map(move |o| (w.wave, o.clone()))))
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_vendored_crds_are_the_pinned_ones_and_use_only_keywords_the_check_understands() {
    let sources = std::fs::read_to_string(velero_fixture("SOURCES.md")).expect("SOURCES.md");
    assert!(velero_fixture("LICENSE-NOTICE.md").is_file(), "the licence notice stays beside the CRDs");
    assert!(sources.contains("57879357fcce4765dfd92c60837e242ec0eab283") && sources.contains("Apache"));
    for (kind, plural, file) in CRDS {
        let bytes = std::fs::read(velero_fixture(file)).expect("vendored CRD");
        let digest = sha256_hex(&bytes);
        assert!(
            sources.contains(&format!("| `{file}` | `{digest}` |")),
            "{file} (sha256 {digest}) is not the file SOURCES.md pins: update both together"
        );
        let crd = crd(file);
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(crd["metadata"]["name"], format!("{plural}.velero.io"));
        assert_eq!((&crd["spec"]["group"], &crd["spec"]["names"]["kind"]), (&json!("velero.io"), &json!(kind)));
        assert_eq!(crd["spec"]["scope"], "Namespaced");

        // Every keyword is enforced by the validator or handled by the
        // conversion: a newer CRD with, say, CEL rules
        // (`x-kubernetes-validations`) or `x-kubernetes-int-or-string` fails
        // here instead of being ignored.
        let schema = openapi_schema(&crd);
        let mut used = BTreeSet::new();
        keywords(&schema, &mut used);
        let known: BTreeSet<String> = ENFORCED.iter().chain(&HANDLED).map(|k| k.to_string()).collect();
        let unknown: Vec<&String> = used.difference(&known).collect();
        assert!(unknown.is_empty(), "{file}: schema keywords the check neither enforces nor handles: {unknown:?}");
        assert!(used.contains("nullable") && used.contains("required"), "{file}: {used:?}");
        // The validator accepts the converted schema as draft 4.
        assert!(jsonschema::draft4::meta::is_valid(&to_json_schema(&schema)), "{file}: converted schema");
    }
}

#[test]
fn every_velero_object_of_the_example_runbook_is_valid_against_the_crds() {
    let example = example();
    let book = runbook::runbook(&example.plan, &example.inventory, None);
    let objects = velero_objects(&book);
    let moves: usize = example.plan.blocks.iter().flat_map(|b| &b.waves).map(|w| w.namespaces.len()).sum();
    assert!(moves > 10, "the example moves namespaces: {moves}");
    assert_eq!(objects.len(), 2 * moves, "a Backup and a Restore per namespace move");
    let checker = Checker::new();
    let mut failures = Vec::new();
    for (wave, object) in &objects {
        for problem in checker.problems(object) {
            failures.push(format!("wave {wave} {} {}: {problem}", object["kind"], object["metadata"]["name"]));
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));

    // Each Restore restores a Backup of the runbook (taken earlier in the wave).
    let backups: BTreeMap<&str, &Value> = objects
        .iter()
        .filter(|(_, o)| o["kind"] == "Backup")
        .filter_map(|(_, o)| o["metadata"]["name"].as_str().map(|n| (n, o)))
        .collect();
    for (_, restore) in objects.iter().filter(|(_, o)| o["kind"] == "Restore") {
        let name = restore["spec"]["backupName"].as_str().expect("backupName");
        let backup = backups.get(name).unwrap_or_else(|| panic!("restore of {name}: no such backup"));
        assert_eq!(restore["spec"]["includedNamespaces"], backup["spec"]["includedNamespaces"]);
    }
    assert_eq!(backups.len(), moves, "one Backup per namespace move");
    // Every shape `velero_objects` makes (renamed or not, each way of treating
    // volume data) is checked, whether or not the example has it.
    let renamed = objects.iter().filter(|(_, o)| o["spec"].get("namespaceMapping").is_some()).count();
    assert!(renamed > 0, "the example renames a namespace");
    let config = change_storage_class_config();
    assert!(checker.problems(&config).is_empty(), "{:#?}", checker.problems(&config));
    for (from, to) in [("payments", "payments"), ("payments", "payments-fra-prod-core")] {
        for data in [runbook::VolumeData::Snapshot, runbook::VolumeData::StaysOnNode, runbook::VolumeData::Copy] {
            let (backup, restore) = runbook::velero_objects("kplan-w2-fra-prod-core-payments", from, to, data);
            for object in [backup, restore] {
                let problems = checker.problems(&object);
                assert!(problems.is_empty(), "{from}->{to} {data:?}: {problems:#?}\n{object:#}");
            }
        }
    }
}

/// The ConfigMap a restore into `fra-prod` brings when the policy changes two
/// storage classes (the example's claims use none).
fn change_storage_class_config() -> Value {
    let changes: BTreeMap<String, String> =
        [("vsphere-thin", "ceph-rbd"), ("netapp.gold", "ceph-rbd-fast")].map(|(a, b)| (a.into(), b.into())).into();
    runbook::change_storage_class_config("fra-prod", &changes)
}

/// Broken copies of emitted objects: each is refused, for the reason given.
#[test]
fn the_offline_check_refuses_broken_velero_objects() {
    let checker = Checker::new();
    let config = change_storage_class_config();
    let (backup, restore) = runbook::velero_objects(
        "kplan-w2-lon-prod-banking-reporting",
        "reporting",
        "reporting-lon",
        runbook::VolumeData::Copy,
    );
    assert!(checker.problems(&backup).is_empty() && checker.problems(&restore).is_empty());
    let broken = |object: &Value, change: &dyn Fn(&mut Value)| {
        let mut copy = object.clone();
        change(&mut copy);
        checker.problems(&copy)
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "includedNamespaces as a string",
            broken(&backup, &|o| o["spec"]["includedNamespaces"] = json!("reporting")),
            "(at /spec/includedNamespaces)",
        ),
        ("ttl as a number", broken(&backup, &|o| o["spec"]["ttl"] = json!(720)), "(at /spec/ttl)"),
        ("ttl not a Go duration", broken(&backup, &|o| o["spec"]["ttl"] = json!("30 days")), "spec.ttl"),
        (
            "a misspelt field (the API server would prune it)",
            broken(&backup, &|o| o["spec"]["includeNamespaces"] = json!(["reporting"])),
            "includeNamespaces",
        ),
        (
            "null where the schema is not nullable",
            broken(&backup, &|o| o["spec"]["ttl"] = Value::Null),
            "(at /spec/ttl)",
        ),
        (
            "an unknown hook error mode (an enum)",
            broken(&backup, &|o| {
                o["spec"]["hooks"] =
                    json!({"resources": [{"name": "h", "pre": [{"exec": {"command": ["true"], "onError": "Ignore"}}]}]})
            }),
            "onError",
        ),
        ("no backupName (required)", broken(&restore, &|o| o["spec"].as_object_mut().unwrap().clear()), "backupName"),
        (
            "namespaceMapping to a number",
            broken(&restore, &|o| o["spec"]["namespaceMapping"] = json!({"reporting": 1})),
            "(at /spec/namespaceMapping/reporting)",
        ),
        (
            "an existingResourcePolicy Velero does not know",
            broken(&restore, &|o| o["spec"]["existingResourcePolicy"] = json!("overwrite")),
            "existingResourcePolicy",
        ),
        (
            "a name that is no DNS label",
            broken(&restore, &|o| o["metadata"]["name"] = json!("Kplan_W2")),
            "metadata.name",
        ),
        (
            "a name too long for a label value",
            broken(&backup, &|o| o["metadata"]["name"] = json!("k".repeat(64))),
            "metadata.name",
        ),
        (
            "another namespace than Velero's",
            broken(&restore, &|o| o["metadata"]["namespace"] = json!("default")),
            "metadata.namespace",
        ),
        ("a status", broken(&backup, &|o| o["status"] = json!({"phase": "Completed"})), "status"),
        ("another kind", broken(&backup, &|o| o["kind"] = json!("Schedule")), "Schedule"),
        (
            "a ConfigMap without the plugin-config label",
            broken(&config, &|o| o["metadata"]["labels"].as_object_mut().unwrap().clear()),
            "velero.io/plugin-config",
        ),
        (
            "a ConfigMap for another plugin action",
            broken(&config, &|o| o["metadata"]["labels"]["velero.io/change-storage-class"] = json!("BackupItemAction")),
            "RestoreItemAction",
        ),
        ("a ConfigMap that changes nothing", broken(&config, &|o| o["data"] = json!({})), "data"),
        (
            "a ConfigMap changing a class to a number",
            broken(&config, &|o| o["data"]["vsphere-thin"] = json!(1)),
            "vsphere-thin",
        ),
        (
            "a ConfigMap outside Velero's namespace",
            broken(&config, &|o| o["metadata"]["namespace"] = json!("default")),
            "metadata.namespace",
        ),
    ];
    for (what, problems, needle) in cases {
        assert!(!problems.is_empty(), "{what}: accepted");
        assert!(problems.iter().any(|p| p.contains(needle)), "{what}: {needle:?} not in {problems:#?}");
    }
    // `nullable` is honoured: null is what the schema allows where it says so
    // (the check still refuses it, as the runbook never needs it).
    let mut with_null = backup.clone();
    with_null["spec"]["includedNamespaces"] = Value::Null;
    let problems = checker.problems(&with_null);
    assert!(problems.iter().all(|p| !p.starts_with("schema:")), "{problems:#?}");
    assert_eq!(problems, ["/spec/includedNamespaces is null"]);
    // Go durations as Velero parses them.
    for good in ["720h0m0s", "24h", "1.5h", "90m", "0", "300ms", "1h30m"] {
        assert!(is_go_duration(good), "{good}");
    }
    for bad in ["", "720", "h", "30 days", "1d", "1..5h", "-"] {
        assert!(!is_go_duration(bad), "{bad}");
    }
}

/// The Velero objects of the wave that moves the most namespaces.
fn busiest_wave(book: &Runbook) -> (u64, Vec<Value>) {
    let objects = velero_objects(book);
    let waves: BTreeSet<u64> = objects.iter().map(|(w, _)| *w).collect();
    let wave = waves
        .into_iter()
        .max_by_key(|w| (objects.iter().filter(|(ow, _)| ow == w).count(), std::cmp::Reverse(*w)))
        .expect("a wave with Velero objects");
    (wave, objects.into_iter().filter(|(w, _)| *w == wave).map(|(_, o)| o).collect())
}

fn api_resource(kind: &str) -> ApiResource {
    if kind == "ConfigMap" {
        return ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", kind), "configmaps");
    }
    let plural = CRDS.iter().find(|(k, _, _)| *k == kind).map(|(_, p, _)| *p).expect("a Velero kind");
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", kind), plural)
}

/// Creates `object` with a server-side dry run; the server's answer, or its refusal.
async fn dry_run_create(client: &kube::Client, object: &Value) -> Result<DynamicObject, kube::Error> {
    let resource = api_resource(object["kind"].as_str().expect("kind"));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), VELERO_NAMESPACE, &resource);
    let dynamic: DynamicObject = serde_json::from_value(object.clone()).expect("a Kubernetes object");
    api.create(&PostParams { dry_run: true, ..PostParams::default() }, &dynamic).await
}

#[test]
fn the_real_apiserver_takes_every_velero_object_of_a_wave_in_a_server_side_dry_run() {
    let Some(server) = Apiserver::start() else { return };
    let example = example();
    let book = runbook::runbook(&example.plan, &example.inventory, None);
    let (wave, mut objects) = busiest_wave(&book);
    assert!(objects.len() >= 10, "wave {wave}: {} objects", objects.len());
    // The renamed shape too, whichever wave has it.
    if !objects.iter().any(|o| o["spec"].get("namespaceMapping").is_some()) {
        let renamed =
            velero_objects(&book).into_iter().map(|(_, o)| o).find(|o| o["spec"].get("namespaceMapping").is_some());
        objects.extend(renamed);
    }
    // The change-storage-class ConfigMap (the example's claims need none).
    objects.push(change_storage_class_config());
    let kube = Kube::connect(&server.admin_kubeconfig);
    let client = kube.client.clone();
    kube.block_on(async {
        // The two CRDs as vendored (sent as they are, not through a typed struct).
        let crd_resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        );
        let dynamic_crds: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource);
        for (_, _, file) in CRDS {
            let crd: DynamicObject = serde_json::from_value(crd(file)).expect("a CRD object");
            dynamic_crds.create(&PostParams::default(), &crd).await.unwrap_or_else(|e| panic!("creates {file}: {e}"));
        }
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        for (_, plural, _) in CRDS {
            let name = format!("{plural}.velero.io");
            loop {
                let crd = crds.get(&name).await.expect("reads the CRD");
                let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
                if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
                    break;
                }
                assert!(Instant::now() < deadline, "{name} not Established: {conditions:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": VELERO_NAMESPACE}})).expect("namespace");
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.expect("creates velero");

        // Every object of the wave is taken, with nothing pruned: the server's
        // answer carries every field that was sent.
        for object in &objects {
            let name = format!("{}/{}", object["kind"], object["metadata"]["name"]);
            let mut answer = dry_run_create(&client, object).await;
            // Established CRDs can take a moment to be served.
            while matches!(&answer, Err(kube::Error::Api(s)) if s.code == 404) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                answer = dry_run_create(&client, object).await;
            }
            let created = answer.unwrap_or_else(|e| panic!("wave {wave}: the API server refused {name}: {e}"));
            assert_eq!(created.data["spec"], object["spec"], "{name}: the server pruned or changed the spec");
            assert_eq!(created.data["data"], object["data"], "{name}: the server changed the data");
            assert_eq!(
                serde_json::to_value(&created.metadata.labels).expect("labels"),
                object["metadata"]["labels"],
                "{name}: labels"
            );
            assert_eq!(created.metadata.name.as_deref(), object["metadata"]["name"].as_str());
        }
        // A dry run stores nothing.
        for (kind, _, _) in CRDS {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), VELERO_NAMESPACE, &api_resource(kind));
            let stored = api.list(&ListParams::default()).await.expect("lists");
            assert!(stored.items.is_empty(), "a dry run stored {kind}s");
        }

        // Broken objects are refused by the server, naming the field.
        let backup = objects.iter().find(|o| o["kind"] == "Backup").expect("a Backup");
        let restore = objects.iter().find(|o| o["kind"] == "Restore").expect("a Restore");
        let mut wrong_type = backup.clone();
        wrong_type["spec"]["includedNamespaces"] = json!("payments");
        let mut no_backup_name = restore.clone();
        no_backup_name["spec"].as_object_mut().expect("spec").remove("backupName");
        let mut wrong_map = restore.clone();
        wrong_map["spec"]["namespaceMapping"] = json!({"payments": 7});
        for (broken, field) in [
            (wrong_type, "spec.includedNamespaces"),
            (no_backup_name, "spec.backupName"),
            (wrong_map, "spec.namespaceMapping"),
        ] {
            match dry_run_create(&client, &broken).await {
                Err(kube::Error::Api(status)) => {
                    assert_eq!(status.code, 422, "{field}: {status:?}");
                    assert!(status.message.contains(field), "{field} not named: {}", status.message);
                }
                other => panic!("the API server took a broken {}: {field}: {other:?}", broken["kind"]),
            }
        }
    });
}
