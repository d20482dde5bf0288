//! Issue 14: a merge keeps tenants as isolated as their own clusters did.
//!
//! Three clusters of the example estate (fra/dev) are exported with RBAC and
//! NetworkPolicies beside their nodes and pods, imported, planned and
//! exported with the real `kplan` binary; then the objects it writes under
//! `isolation/<target>/wave-N/` are applied to the tests' real kube-apiserver
//! wave by wave in order with `kubectl apply -k`, then the target's own
//! kustomization (every wave together: no object twice), and
//! the API server's own authorizer (SubjectAccessReview) says who may do what
//! where: a tenant's group and a CI service account act in their own source
//! cluster's namespaces (renamed ones by their new names), and in no other
//! tenant's namespace nor in kube-system. Then Gatekeeper's ConstraintTemplate
//! CRD (`fixtures/k8s/gatekeeper/`) is installed, the emitted template is
//! created, its Constraint kind gets the CRD Gatekeeper would make from it,
//! and every emitted object of the target goes through the API server's
//! validation: each Gatekeeper object by a server-side dry-run create (the
//! server must keep every field: nothing pruned), and the whole
//! kustomization by `kubectl apply --dry-run=server -k`.
//!
//! (Gatekeeper's CRDs are installed before the waves are applied: in a real
//! target Gatekeeper makes the Constraint kind from `wave-0`'s template.)

mod common;
mod kube_harness;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube_harness::{Apiserver, Kube};
use serde_json::{Value, json};

const CLUSTERS: [(&str, &str); 3] =
    [("fra-dev-apps", "fra-dev-a"), ("fra-dev-ci", "fra-dev-a"), ("fra-dev-analytics", "fra-dev-b")];

fn cluster_role_binding(name: &str, role: &str, subject: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": name, "resourceVersion": "1"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": [subject]})
}

/// The RBAC and policies of each cluster, as `kubectl get ... -o json` writes them.
fn rbac_export(cluster: &str) -> Value {
    let group = |name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name});
    let items = match cluster {
        "fra-dev-apps" => vec![
            cluster_role_binding("apps-developers-edit", "edit", group("team-apps")),
            cluster_role_binding("cluster-admins", "cluster-admin", group("system:masters")),
        ],
        "fra-dev-ci" => vec![
            cluster_role_binding(
                "ci-runner-deployer",
                "ci-deployer",
                json!({"kind": "ServiceAccount", "name": "runner", "namespace": "ci-runners"}),
            ),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "ci-deployer"},
                   "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "patch"]}]}),
        ],
        _ => vec![
            cluster_role_binding("data-science-view", "view", group("team-data")),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "allow-from-all-namespaces", "namespace": "model-training"},
                   "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}}),
        ],
    };
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// Imports the three clusters with their RBAC into `inv` (files under `dir`).
fn import(dir: &Path, inv: &str) {
    let bank = repo_root().join("examples/bank/clusters");
    let mut estate = String::new();
    for (cluster, zone) in CLUSTERS {
        let rbac = dir.join(format!("{cluster}-rbac.json"));
        std::fs::write(&rbac, rbac_export(cluster).to_string()).expect("writes the rbac export");
        estate.push_str(&format!(
            "[[clusters]]\nid = \"{cluster}\"\ndatacenter = \"fra\"\nsecurity_tier = \"dev\"\nzone = \"{zone}\"\nfiles = [{:?}, {:?}]\n\n",
            bank.join(format!("{cluster}.json")).to_str().expect("utf-8"),
            rbac.to_str().expect("utf-8"),
        ));
    }
    let estate_path = dir.join("estate.toml");
    std::fs::write(&estate_path, estate).expect("writes the estate");
    kplan_ok(&["--inventory", inv, "import", "--estate", estate_path.to_str().expect("utf-8")]);
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether the API server's authorizer lets `user` (in `groups`) `verb` deployments in `namespace`.
async fn allowed(client: &kube::Client, user: &str, groups: &[&str], verb: &str, namespace: &str) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some(verb.to_string()),
                group: Some("apps".to_string()),
                resource: Some("deployments".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SubjectAccessReview");
    answer.status.expect("a status").allowed
}

#[test]
fn the_emitted_rbac_keeps_tenant_subjects_in_their_own_namespaces_on_the_real_apiserver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv_path = dir.path().join("inventory");
    let inv = inv_path.to_str().expect("utf-8");
    import(dir.path(), inv);

    // The plan is stored and printed, then refused for CI: the policy that
    // admits every namespace stays open whatever kplan emits.
    let out = kplan(&["--inventory", inv, "propose", "--fail-on-widening", "-o", "json"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("the plan is printed first");
    let plan_id = plan["id"].as_str().expect("a stored plan");
    // model-training admits every namespace: open towards both other sources.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kplan: 2 tenant isolation widenings left open"), "{stderr}");

    let report: Value =
        serde_json::from_str(&kplan_ok(&["--inventory", inv, "plans", "isolation", plan_id, "-o", "json"]))
            .expect("report json");
    let findings =
        report["targets"].as_array().expect("targets").iter().flat_map(|t| t["findings"].as_array().unwrap());
    let rbac: BTreeSet<(String, String)> = findings
        .filter(|f| f["kind"] == "rbac-widening")
        .map(|f| (f["subject"].as_str().unwrap().to_string(), f["role"].as_str().unwrap().to_string()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("Group team-apps", "ClusterRole edit"),
        ("Group team-data", "ClusterRole view"),
        ("ServiceAccount ci-runners/runner", "ClusterRole ci-deployer"),
    ]
    .iter()
    .map(|(s, r)| (s.to_string(), r.to_string()))
    .collect();
    assert_eq!(rbac, expected, "system:masters is not a finding");
    let target = &report["targets"][0];
    let target_name = target["target_cluster"].as_str().expect("a target");
    let namespaces_of = |source: &str| -> Vec<String> {
        target["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["source_cluster"] == source)
            .map(|n| n["new_name"].as_str().unwrap().to_string())
            .collect()
    };
    let (apps, ci) = (namespaces_of("fra-dev-apps"), namespaces_of("fra-dev-ci"));
    assert!(apps.len() >= 5 && ci.len() >= 3, "apps {apps:?}, ci {ci:?}");
    let runner_namespace = target["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["source_cluster"] == "fra-dev-ci" && n["namespace"] == "ci-runners")
        .and_then(|n| n["new_name"].as_str())
        .expect("ci-runners moves")
        .to_string();

    // The Markdown and HTML reports carry the same findings.
    let markdown = kplan_ok(&["--inventory", inv, "plans", "export", plan_id, "--format", "markdown"]);
    assert!(markdown.contains("## Tenant isolation\n\n9 findings, 2 open"), "{markdown}");
    let html = kplan_ok(&["--inventory", inv, "plans", "export", plan_id, "--format", "html"]);
    assert!(html.contains("<h3>Tenant isolation</h3><p>9 findings, 2 open"), "html report");

    let out_dir = dir.path().join("manifests");
    kplan_ok(&[
        "--inventory",
        inv,
        "plans",
        "export",
        plan_id,
        "--format",
        "manifests",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let target_dir = out_dir.join("isolation").join(target_name);
    // The target's kustomization lists its wave directories, wave-0 (cluster-scoped) first.
    let kustomization = yaml_documents(&target_dir.join("kustomization.yaml"));
    let waves: Vec<String> = kustomization[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a directory").to_string())
        .collect();
    assert_eq!(waves.first().map(String::as_str), Some("wave-0"), "{waves:?}");
    assert!(waves.len() >= 2, "wave-0 and a wave with namespaces: {waves:?}");
    let wave_dirs: Vec<std::path::PathBuf> = waves.iter().map(|w| target_dir.join(w)).collect();
    // Every kind of the old layout, each in the waves that have it; wave-0 cluster-scoped only.
    let mut kinds = BTreeSet::new();
    for dir in &wave_dirs {
        let resources = yaml_documents(&dir.join("kustomization.yaml"))[0]["resources"].clone();
        for file in resources.as_array().expect("resources") {
            kinds.insert(file.as_str().expect("a file").to_string());
        }
    }
    let expected: BTreeSet<String> = [
        "namespaces.yaml",
        "clusterroles.yaml",
        "rolebindings.yaml",
        "networkpolicies.yaml",
        "constrainttemplates.yaml",
        "constraints.yaml",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    assert_eq!(kinds, expected);
    for document in wave_dirs[0].read_dir().expect("wave-0").map(|f| f.expect("a file").path()) {
        for object in yaml_documents(&document) {
            assert!(object["metadata"].get("namespace").is_none(), "wave-0 is cluster-scoped: {object}");
        }
    }
    // Each kind's documents over every wave.
    let documents = |file: &str| -> Vec<Value> {
        wave_dirs.iter().map(|d| d.join(file)).filter(|p| p.is_file()).flat_map(|p| yaml_documents(&p)).collect()
    };
    assert!(documents("namespaces.yaml").iter().all(|n| serde_json::from_value::<Namespace>(n.clone()).is_ok()));
    assert!(documents("rolebindings.yaml").iter().all(|b| serde_json::from_value::<RoleBinding>(b.clone()).is_ok()));
    assert!(
        documents("networkpolicies.yaml").iter().all(|p| serde_json::from_value::<NetworkPolicy>(p.clone()).is_ok())
    );

    let Some(server) = Apiserver::start() else { return };
    let kubeconfig = server.admin_kubeconfig.to_str().expect("utf-8").to_string();
    let kubectl = |args: &[&str], dir: &Path| {
        let out = std::process::Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig])
            .args(args)
            .arg(dir)
            .output()
            .expect("kubectl (scripts/setup.sh installs it)");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} {}: {stdout}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let kube = Kube::connect(&server.admin_kubeconfig);
    let client = kube.client.clone();
    kube.block_on(async {
        // No kube-controller-manager runs here to aggregate `edit`'s rules:
        // give it the deployments rule it aggregates from the built-in roles.
        let create = PostParams::default();
        let roles = Api::<ClusterRole>::all(client.clone());
        let mut edit = roles.get("edit").await.expect("the built-in edit role");
        edit.rules = Some(vec![PolicyRule {
            api_groups: Some(vec!["apps".to_string()]),
            resources: Some(vec!["deployments".to_string()]),
            verbs: ["create", "delete", "get", "list", "patch", "update"].iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }]);
        roles.replace("edit", &create, &edit).await.expect("aggregates edit");
        // Nobody holds anything before the RoleBindings.
        assert!(!allowed(&client, "alice", &["team-apps"], "create", &apps[0]).await);
        gatekeeper_objects_pass_the_api_server(&client, &documents).await;
    });

    // The waves in order, as the runbook applies them.
    for dir in &wave_dirs {
        kubectl(&["apply", "-k"], dir);
    }
    kube.block_on(async {
        // team-apps edits its own namespaces, no other tenant's, not kube-system.
        for namespace in &apps {
            assert!(allowed(&client, "alice", &["team-apps"], "create", namespace).await, "team-apps in {namespace}");
        }
        for namespace in ci.iter().chain(std::iter::once(&"kube-system".to_string())) {
            assert!(!allowed(&client, "alice", &["team-apps"], "create", namespace).await, "team-apps in {namespace}");
        }
        // The CI service account (in its namespace's name in the target) deploys to ci's namespaces only.
        let runner = format!("system:serviceaccount:{runner_namespace}:runner");
        let runner_groups = ["system:serviceaccounts", "system:authenticated"];
        for namespace in &ci {
            assert!(allowed(&client, &runner, &runner_groups, "patch", namespace).await, "runner in {namespace}");
        }
        for namespace in apps.iter().chain(std::iter::once(&"kube-system".to_string())) {
            assert!(!allowed(&client, &runner, &runner_groups, "patch", namespace).await, "runner in {namespace}");
        }
    });
    // The whole target at once, as an operator would apply it: every wave
    // together, no object twice (kustomize refuses duplicate ids), all there already.
    let stdout = kubectl(&["apply", "-k"], &target_dir);
    assert!(!stdout.contains("created"), "every object was applied by its wave: {stdout}");
    let stdout = kubectl(&["apply", "--dry-run=server", "-k"], &target_dir);
    assert!(
        stdout.contains(&format!("{GATEKEEPER_KIND_LOWER}.constraints.gatekeeper.sh/kplan-tenant-namespaces-wave-")),
        "{stdout}"
    );
}

const GATEKEEPER_KIND_LOWER: &str = "kplantenantnamespaces";

/// Creates a CRD and waits until the API server serves it.
async fn install_crd(client: &kube::Client, crd: CustomResourceDefinition) {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let name = crd.metadata.name.clone().expect("a named CRD");
    crds.create(&PostParams::default(), &crd).await.unwrap_or_else(|e| panic!("creates CRD {name}: {e}"));
    for _ in 0..100 {
        let crd = crds.get(&name).await.expect("the CRD");
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
            // Discovery may lag a moment behind the condition.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("CRD {name} was never established");
}

/// A server-side dry-run create of `object`: the server must accept it and keep its spec whole.
async fn dry_run_create(client: &kube::Client, resource: &ApiResource, object: &Value) -> Result<(), String> {
    let object: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let api = Api::<DynamicObject>::all_with(client.clone(), resource);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let created = api.create(&dry_run, &object).await.map_err(|e| e.to_string())?;
    if created.data["spec"] != object.data["spec"] {
        return Err(format!(
            "the server changed the spec: sent {}, kept {}",
            object.data["spec"], created.data["spec"]
        ));
    }
    Ok(())
}

/// Gatekeeper's template CRD from the fixture, the emitted template, the
/// Constraint CRD as Gatekeeper makes it from the template, the emitted
/// Constraint; and a malformed template refused (the schema is enforced).
async fn gatekeeper_objects_pass_the_api_server(client: &kube::Client, documents: &dyn Fn(&str) -> Vec<Value>) {
    let crd_path = repo_root().join("fixtures/k8s/gatekeeper/constrainttemplate-crd.yaml");
    let crd = yaml_documents(&crd_path).remove(0);
    install_crd(client, serde_json::from_value(crd).expect("a CRD")).await;
    let templates = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("templates.gatekeeper.sh", "v1", "ConstraintTemplate"),
        "constrainttemplates",
    );
    let template_docs = documents("constrainttemplates.yaml");
    assert_eq!(template_docs.len(), 1, "one template per target");
    let template = &template_docs[0];
    dry_run_create(client, &templates, template).await.expect("the template passes");
    let mut malformed = template.clone();
    malformed["spec"]["targets"] = json!("admission.k8s.gatekeeper.sh");
    assert!(dry_run_create(client, &templates, &malformed).await.is_err(), "a malformed template is refused");
    let object: DynamicObject = serde_json::from_value(template.clone()).expect("a template");
    Api::<DynamicObject>::all_with(client.clone(), &templates)
        .create(&PostParams::default(), &object)
        .await
        .expect("creates the template");

    // What Gatekeeper's controller makes of the template: its kind, lowercased as plural, in
    // constraints.gatekeeper.sh, with the template's schema as `spec.parameters`.
    let kind = template["spec"]["crd"]["spec"]["names"]["kind"].as_str().expect("a kind");
    let plural = kind.to_lowercase();
    assert_eq!(plural, GATEKEEPER_KIND_LOWER);
    let parameters = template["spec"]["crd"]["spec"]["validation"]["openAPIV3Schema"].clone();
    let schema = json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 63}}},
            "spec": {"type": "object", "properties": {
                "enforcementAction": {"type": "string"},
                "match": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "parameters": parameters,
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
    });
    let constraint_crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.constraints.gatekeeper.sh")},
        "spec": {"group": "constraints.gatekeeper.sh", "scope": "Cluster",
                 "names": {"kind": kind, "plural": plural, "singular": plural, "listKind": format!("{kind}List"),
                           "categories": ["constraint", "constraints"]},
                 "versions": [{"name": "v1beta1", "served": true, "storage": true,
                               "subresources": {"status": {}}, "schema": {"openAPIV3Schema": schema}}]},
    });
    install_crd(client, serde_json::from_value(constraint_crd).expect("a CRD")).await;
    let constraints = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("constraints.gatekeeper.sh", "v1beta1", kind),
        &plural,
    );
    let constraint_docs = documents("constraints.yaml");
    assert!(!constraint_docs.is_empty(), "one constraint per wave with namespaces");
    for constraint in &constraint_docs {
        assert!(!constraint["spec"]["parameters"]["subjects"].as_array().expect("subjects").is_empty());
        dry_run_create(client, &constraints, constraint).await.expect("the constraint passes");
    }
    let constraint = &constraint_docs[0];
    let mut malformed = constraint.clone();
    malformed["spec"]["parameters"]["subjects"][0]["namespaces"] = json!("not-a-list");
    assert!(dry_run_create(client, &constraints, &malformed).await.is_err(), "parameters off the schema are refused");
}
