//! The Gatekeeper objects of the hand-made merge of `tests.rs` (sources `a`
//! and `b` into `fra-prod-1`), and their Rego evaluated (regorus, Rego v0 as
//! Gatekeeper's `rego` field is) on admission requests of known answer.

use serde_json::{Value, json};

use super::gatekeeper::{CONSTRAINT_KIND, REGO, TEMPLATE_NAME, TenantSubject};
use super::tests::{inventory, objects, plan};

fn entry(kind: &str, name: &str, namespaces: &[&str]) -> TenantSubject {
    TenantSubject {
        kind: kind.into(),
        name: name.into(),
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
    }
}

#[test]
fn a_widening_target_gets_one_template_and_one_constraint_naming_each_tenant_subject_and_its_old_namespaces() {
    let objects = objects(&plan("calico"), &inventory());
    assert_eq!(objects.constraint_templates.len(), 1);
    let template = serde_json::to_value(&objects.constraint_templates[0]).unwrap();
    assert_eq!(template["apiVersion"], "templates.gatekeeper.sh/v1");
    assert_eq!(template["metadata"]["name"], TEMPLATE_NAME);
    assert_eq!(template["spec"]["crd"]["spec"]["names"]["kind"], CONSTRAINT_KIND);
    assert_eq!(TEMPLATE_NAME, CONSTRAINT_KIND.to_lowercase(), "Gatekeeper requires it");
    assert_eq!(template["spec"]["targets"][0]["target"], "admission.k8s.gatekeeper.sh");

    // One Constraint per wave (a's namespaces arrive in wave 1, b's in wave 2), each guarding its wave's.
    assert_eq!(objects.constraints.len(), 2);
    for constraint in &objects.constraints {
        assert_eq!(constraint.api_version, "constraints.gatekeeper.sh/v1beta1");
        assert_eq!(constraint.kind, CONSTRAINT_KIND);
        assert_eq!(constraint.spec.parameters.protected_namespaces, ["default", "kube-*"], "the platform namespaces");
    }
    let (wave_1, wave_2) = (&objects.constraints[0].spec.parameters, &objects.constraints[1].spec.parameters);
    assert_eq!(objects.constraints[0].metadata.name.as_deref(), Some("kplan-tenant-namespaces-wave-1"));
    assert_eq!(wave_1.tenant_namespaces, ["ci", "shop", "web-a"]);
    assert_eq!(wave_2.tenant_namespaces, ["pay", "web"]);
    // The subjects of the three RBAC findings in both; the system ones are not there.
    assert_eq!(
        wave_1.subjects,
        [
            entry("Group", "team-a", &["ci", "shop", "web-a"]),
            entry("Group", "team-b", &[]),
            entry("User", "system:serviceaccount:ci:deployer", &["ci", "shop", "web-a"]),
        ]
    );
    assert_eq!(
        wave_2.subjects,
        [
            entry("Group", "team-a", &[]),
            entry("Group", "team-b", &["pay", "web"]),
            entry("User", "system:serviceaccount:ci:deployer", &[]),
        ]
    );
}

#[test]
fn a_subject_that_could_already_act_in_the_other_source_keeps_that_namespace() {
    let mut inventory = inventory();
    // team-b also holds view in b... and in a's shop, by a RoleBinding there.
    inventory[0].isolation.role_bindings.push(kplan_model::isolation::RoleBinding {
        namespace: "shop".into(),
        name: "team-b-view".into(),
        role_ref: kplan_model::isolation::RoleRef { kind: "ClusterRole".into(), name: "view".into() },
        subjects: vec![super::tests::subject("Group", "team-b", "")],
    });
    let objects = objects(&plan("calico"), &inventory);
    let team_b: Vec<&String> = objects
        .constraints
        .iter()
        .flat_map(|c| &c.spec.parameters.subjects)
        .filter(|s| s.name == "team-b")
        .flat_map(|s| &s.namespaces)
        .collect();
    assert_eq!(team_b, ["shop", "pay", "web"], "shop in wave 1's Constraint, pay and web in wave 2's");
}

#[test]
fn a_target_without_rbac_widening_gets_no_gatekeeper_objects() {
    let mut inventory = inventory();
    for cluster in &mut inventory {
        cluster.isolation.cluster_role_bindings.retain(|b| b.name.starts_with("system:") || b.name == "cluster-admin");
    }
    let objects = objects(&plan("calico"), &inventory);
    assert!(objects.constraint_templates.is_empty() && objects.constraints.is_empty());
}

/// The messages of the template's `violation` rule for one admission request,
/// under every Constraint (`parameters`: one per Constraint; Gatekeeper refuses
/// what any of them refuses).
fn violations(parameters: &Value, user: &str, groups: &[&str], namespace: &str) -> Vec<String> {
    parameters.as_array().unwrap().iter().flat_map(|p| violations_of(p, user, groups, namespace)).collect()
}

fn violations_of(parameters: &Value, user: &str, groups: &[&str], namespace: &str) -> Vec<String> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    engine.add_policy("tenant_namespaces.rego".into(), REGO.into()).expect("the Rego compiles");
    let input = json!({
        "parameters": parameters,
        "review": {
            "operation": "CREATE",
            "namespace": namespace,
            "userInfo": {"username": user, "groups": groups},
            "object": {"kind": "Deployment", "metadata": {"name": "web", "namespace": namespace}},
        },
    });
    engine.set_input(regorus::Value::from_json_str(&input.to_string()).unwrap());
    let result = engine.eval_rule("data.kplantenantnamespaces.violation".into()).expect("evaluates");
    let result: Value = serde_json::from_str(&result.to_json_str().unwrap()).unwrap();
    result.as_array().unwrap().iter().map(|v| v["msg"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_rego_refuses_a_tenant_in_kube_system_and_in_another_tenants_namespace_and_nothing_else() {
    let objects = objects(&plan("calico"), &inventory());
    // After every wave: both Constraints.
    let every: Vec<&super::gatekeeper::ConstraintParameters> =
        objects.constraints.iter().map(|c| &c.spec.parameters).collect();
    let parameters = serde_json::to_value(&every).unwrap();
    let team_a = |namespace: &str| violations(&parameters, "alice", &["team-a", "system:authenticated"], namespace);
    assert!(team_a("shop").is_empty() && team_a("web-a").is_empty(), "its own namespaces");
    assert_eq!(
        team_a("pay"),
        ["alice may not act in namespace pay after the merge (kplan tenant isolation: Group team-a)"]
    );
    assert_eq!(team_a("web").len(), 1, "b's web, not a's (renamed web-a)");
    assert_eq!(team_a("kube-system").len(), 2, "kube-* is protected (by each Constraint)");
    assert_eq!(team_a("default").len(), 2);
    assert!(team_a("some-new-namespace").is_empty(), "a namespace nobody guards is RBAC's business");
    // The service account is matched by its user name; in b's namespaces it is refused.
    let deployer = "system:serviceaccount:ci:deployer";
    assert!(violations(&parameters, deployer, &["system:serviceaccounts"], "ci").is_empty());
    assert_eq!(violations(&parameters, deployer, &["system:serviceaccounts"], "pay").len(), 1);
    // Someone who is no tenant subject is not this constraint's business; nor are cluster-scoped requests.
    assert!(violations(&parameters, "admin", &["system:masters"], "kube-system").is_empty());
    assert!(team_a("").is_empty());
    // In both tenants' groups: allowed in the namespaces of both.
    assert!(violations(&parameters, "bob", &["team-a", "team-b"], "pay").is_empty());
    assert_eq!(violations(&parameters, "bob", &["team-a", "team-b"], "kube-system").len(), 2);
    // After wave 1 only: a's namespaces and the platform's guarded, b's (not there yet) not.
    let wave_1 = serde_json::to_value([&objects.constraints[0].spec.parameters]).unwrap();
    let deployer = |namespace: &str| violations(&wave_1, deployer, &["system:serviceaccounts"], namespace);
    assert!(deployer("ci").is_empty() && deployer("shop").is_empty());
    assert_eq!(deployer("kube-system").len(), 1);
    let team_b = |namespace: &str| violations(&wave_1, "carol", &["team-b"], namespace);
    assert_eq!(team_b("shop").len(), 1, "b's team is kept out of a's namespaces from wave 1 on");
    assert!(team_b("pay").is_empty());
}
