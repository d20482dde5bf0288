//! The validator's isolation rule on the hand-made merge of `tests.rs`: the
//! analysis and its objects pass it; a tampered report or tampered objects
//! are refused with a message naming the subject or the namespace.

use kplan_model::isolation::LabelSelector;
use kplan_model::{ClusterSnapshot, Plan};

use super::manifests::{TargetManifests, WaveManifests, manifests};
use super::tests::{inventory, pay_admitting, plan};
use super::{FindingKind, IsolationReport, analyse, verify};
use crate::validate::Rule;

/// The report and the objects, every target's objects in one wave 0 (applied
/// before anything arrives: never late), for the tests that tamper with them.
fn honest(plan: &Plan, inventory: &[ClusterSnapshot]) -> (IsolationReport, Vec<TargetManifests>) {
    let flat = manifests(plan, inventory)
        .iter()
        .map(|t| TargetManifests {
            target_cluster: t.target_cluster.clone(),
            waves: vec![WaveManifests { wave: 0, ..t.all() }],
        })
        .collect();
    (analyse(plan, inventory), flat)
}

/// The violations' details, after checking they are all of the isolation rule.
fn refused(
    plan: &Plan,
    inventory: &[ClusterSnapshot],
    report: &IsolationReport,
    targets: &[TargetManifests],
) -> String {
    let violations = verify(plan, inventory, report, targets);
    assert!(violations.iter().all(|v| v.rule == Rule::Isolation));
    violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_analysis_and_its_objects_pass_on_calico_on_flannel_and_with_an_open_policy() {
    for cni in ["calico", "flannel"] {
        let (plan, inventory) = (plan(cni), inventory());
        let (report, targets) = (analyse(&plan, &inventory), manifests(&plan, &inventory));
        assert_eq!(refused(&plan, &inventory, &report, &targets), "", "{cni}");
    }
    let mut inventory = inventory();
    inventory[1].isolation.network_policies = vec![pay_admitting("allow-all-namespaces", LabelSelector::default())];
    let plan = plan("calico");
    let (report, targets) = honest(&plan, &inventory);
    assert_eq!(report.n_open(), 1);
    assert_eq!(refused(&plan, &inventory, &report, &targets), "");
}

#[test]
fn a_report_without_an_rbac_finding_is_refused_naming_the_subject_and_the_namespaces() {
    let (plan, inventory) = (plan("calico"), inventory());
    let (mut report, targets) = honest(&plan, &inventory);
    report.targets[0].findings.retain(|f| f.subject != "Group team-a");
    let text = refused(&plan, &inventory, &report, &targets);
    assert_eq!(
        text,
        "fra/prod: isolation: target fra-prod-1: ClusterRoleBinding team-a-edit of a gives Group team-a \
         ClusterRole edit over namespaces pay, web of other sources, and no finding says so\n\
         fra/prod: isolation: target fra-prod-1: the Gatekeeper Constraint names Group team-a, \
         subject of no RBAC finding"
    );
    // A finding that lists fewer namespaces than are reached is refused too.
    let (mut report, _) = honest(&plan, &inventory);
    let finding = report.targets[0].findings.iter_mut().find(|f| f.subject == "Group team-b").unwrap();
    finding.namespaces.retain(|n| n != "shop");
    assert!(refused(&plan, &inventory, &report, &targets).contains("over namespace shop of other sources"));
}

#[test]
fn an_emitted_role_binding_that_grants_another_tenants_namespace_is_refused() {
    let (plan, inventory) = (plan("calico"), inventory());
    let (report, mut targets) = honest(&plan, &inventory);
    let mut extra = targets[0].waves[0]
        .role_bindings
        .iter()
        .find(|b| b.metadata.name.as_deref() == Some("kplan-team-a-edit"))
        .unwrap()
        .clone();
    extra.metadata.namespace = Some("pay".into());
    targets[0].waves[0].role_bindings.push(extra);
    let text = refused(&plan, &inventory, &report, &targets);
    assert_eq!(
        text,
        "fra/prod: isolation: target fra-prod-1: emitted RoleBinding pay/kplan-team-a-edit gives Group team-a \
         ClusterRole edit in namespace pay, which it did not hold there before the merge (pay is b/pay)"
    );
    // An added subject is refused the same way: the CI deployer in b's web.
    let (_, mut targets) = honest(&plan, &inventory);
    let web = targets[0].waves[0]
        .role_bindings
        .iter_mut()
        .find(|b| b.metadata.namespace.as_deref() == Some("web") && b.role_ref.name == "view")
        .unwrap();
    let mut deployer = k8s_openapi::api::rbac::v1::Subject {
        kind: "ServiceAccount".into(),
        name: "deployer".into(),
        namespace: Some("ci".into()),
        api_group: None,
    };
    web.subjects.as_mut().unwrap().push(deployer.clone());
    assert!(
        refused(&plan, &inventory, &report, &targets)
            .contains("gives ServiceAccount ci/deployer ClusterRole view in namespace web")
    );
    // ... and in its own source's namespaces it is fine (it held `deployer` there, cluster-wide).
    let (_, mut targets) = honest(&plan, &inventory);
    deployer.namespace = Some("ci".into());
    let shop = targets[0].waves[0]
        .role_bindings
        .iter_mut()
        .find(|b| b.metadata.namespace.as_deref() == Some("shop") && b.role_ref.name == "deployer")
        .unwrap();
    shop.subjects = Some(vec![deployer]);
    assert_eq!(refused(&plan, &inventory, &report, &targets), "");
}

#[test]
fn a_network_path_left_out_or_claimed_closed_while_open_is_refused() {
    let (plan, inventory) = (plan("calico"), inventory());
    // Left out: b's namespaces admit a's pods and no finding says so.
    let (mut report, targets) = honest(&plan, &inventory);
    report.targets[0].findings.retain(|f| !(f.kind == FindingKind::NetworkWidening && f.source_cluster == "b"));
    let text = refused(&plan, &inventory, &report, &targets);
    assert!(text.contains("namespace pay (from b) admits pods of a, and no finding says so"), "{text}");
    assert!(text.contains("namespace web (from b) admits pods of a"), "{text}");

    // Claimed closed, but pay's emitted default deny is gone.
    let (report, mut targets) = honest(&plan, &inventory);
    targets[0].waves[0].network_policies.retain(|p| p.metadata.namespace.as_deref() != Some("pay"));
    let text = refused(&plan, &inventory, &report, &targets);
    assert!(text.contains("is closed by NetworkPolicy pay/kplan-default-deny, which is not emitted"), "{text}");
    assert!(
        text.contains("the finding says pods of a are kept out of pay, but its NetworkPolicies, the emitted ones included, still admit them"),
        "{text}"
    );

    // Claimed closed on flannel, which enforces nothing.
    let plan = super::tests::plan("flannel");
    let (mut report, targets) = honest(&plan, &inventory);
    for finding in &mut report.targets[0].findings {
        finding.open = false;
    }
    let text = refused(&plan, &inventory, &report, &targets);
    assert!(text.contains("but flannel does not enforce NetworkPolicy"), "{text}");
}

#[test]
fn a_gatekeeper_constraint_that_leaves_out_or_adds_a_tenant_is_refused() {
    let (plan, inventory) = (plan("calico"), inventory());
    let (report, mut targets) = honest(&plan, &inventory);
    let subjects = &mut targets[0].waves[0].constraints[0].spec.parameters.subjects;
    assert!(subjects.iter().any(|s| s.kind == "Group" && s.name == "team-a"));
    subjects.retain(|s| s.name != "team-a");
    assert_eq!(
        refused(&plan, &inventory, &report, &targets),
        "fra/prod: isolation: target fra-prod-1: the Gatekeeper Constraint leaves out Group team-a, \
         subject of an RBAC finding"
    );
    let (_, mut targets) = honest(&plan, &inventory);
    let subjects = &mut targets[0].waves[0].constraints[0].spec.parameters.subjects;
    let mut extra = subjects[0].clone();
    extra.name = "team-z".into();
    subjects.push(extra.clone());
    assert!(
        refused(&plan, &inventory, &report, &targets)
            .contains(&format!("the Gatekeeper Constraint names {} team-z, subject of no RBAC finding", extra.kind))
    );
    // Without a Constraint at all, every tenant subject is missing.
    let (_, mut targets) = honest(&plan, &inventory);
    targets[0].waves[0].constraints.clear();
    assert!(refused(&plan, &inventory, &report, &targets).contains("leaves out Group team-a, Group team-b"));
}

#[test]
fn a_runtime_class_missing_for_its_pods_or_emitted_for_nobody_is_refused() {
    use kplan_model::isolation::RuntimeClass;
    use kplan_model::scheduling::PodGroup;
    let (plan, mut inventory) = (plan("calico"), inventory());
    inventory[0].namespaces[0].pod_groups =
        vec![PodGroup { runtime_class: "gvisor".into(), replicas: 1, ..Default::default() }];
    inventory[0].isolation.runtime_classes = vec![RuntimeClass { name: "gvisor".into(), handler: "runsc".into() }];
    let (report, mut targets) = honest(&plan, &inventory);
    assert_eq!(refused(&plan, &inventory, &report, &targets), "");
    targets[0].waves[0].runtime_classes.clear();
    assert_eq!(
        refused(&plan, &inventory, &report, &targets),
        "fra/prod: isolation: target fra-prod-1: pods of shop (from a) need RuntimeClass gvisor, which is not \
         emitted, and no open finding says so"
    );
    let (_, mut targets) = honest(&plan, &inventory);
    targets[0].waves[0].runtime_classes[0].handler = "kata".into();
    assert!(
        refused(&plan, &inventory, &report, &targets).contains("with handler runsc, the emitted one has handler kata")
    );
    // Emitted for no pod: the pods no longer ask for it.
    let (_, targets) = honest(&plan, &inventory);
    inventory[0].namespaces[0].pod_groups.clear();
    let report = analyse(&plan, &inventory);
    assert_eq!(
        refused(&plan, &inventory, &report, &targets),
        "fra/prod: isolation: target fra-prod-1: emitted RuntimeClass gvisor is asked for by no pod moving into it"
    );
}

#[test]
fn a_namespace_patch_that_lowers_pod_security_is_refused() {
    use kplan_model::isolation::POD_SECURITY_ENFORCE_LABEL;
    let (plan, inventory) = (plan("calico"), inventory());
    let (report, mut targets) = honest(&plan, &inventory);
    // a's web (web-a in the target) enforces restricted; its patch must not say baseline.
    let web = targets[0].waves[0].namespaces.iter_mut().find(|n| n.metadata.name.as_deref() == Some("web-a")).unwrap();
    let labels = web.metadata.labels.get_or_insert_with(Default::default);
    assert_eq!(labels.get(POD_SECURITY_ENFORCE_LABEL).map(String::as_str), Some("restricted"));
    labels.insert(POD_SECURITY_ENFORCE_LABEL.into(), "baseline".into());
    let text = refused(&plan, &inventory, &report, &targets);
    assert_eq!(
        text,
        "fra/prod: isolation: target fra-prod-1: emitted namespace patch web-a sets Pod Security baseline \
         where a/web enforced restricted"
    );
    // A value that is no level is refused; a stricter one is fine.
    let web = targets[0].waves[0].namespaces.iter_mut().find(|n| n.metadata.name.as_deref() == Some("web-a")).unwrap();
    let labels = web.metadata.labels.as_mut().unwrap();
    labels.insert(POD_SECURITY_ENFORCE_LABEL.into(), "strict".into());
    assert!(refused(&plan, &inventory, &report, &targets).contains("sets Pod Security \"strict\", which is no level"));
    let (_, mut targets) = honest(&plan, &inventory);
    for patch in &mut targets[0].waves[0].namespaces {
        patch
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_SECURITY_ENFORCE_LABEL.into(), "restricted".into());
    }
    assert_eq!(refused(&plan, &inventory, &report, &targets), "");
    // A patch for a namespace that does not move into the target is refused.
    let mut stray = targets[0].waves[0].namespaces[0].clone();
    stray.metadata.name = Some("elsewhere".into());
    targets[0].waves[0].namespaces.push(stray);
    assert!(
        refused(&plan, &inventory, &report, &targets).contains("patch elsewhere names no namespace moving into it")
    );
}

// ------------------------------------------------------------------ waves

/// The objects by wave, as emitted.
fn by_wave(plan: &Plan, inventory: &[ClusterSnapshot]) -> (IsolationReport, Vec<TargetManifests>) {
    (analyse(plan, inventory), manifests(plan, inventory))
}

#[test]
fn a_namespace_object_applied_after_the_namespace_arrives_is_refused() {
    let (plan, inventory) = (plan("calico"), inventory());
    let (report, mut targets) = by_wave(&plan, &inventory);
    // b's pay arrives in wave 2: move its default-deny policy to a wave 3.
    let wave_2 = targets[0].waves.iter_mut().find(|w| w.wave == 2).unwrap();
    let at = wave_2.network_policies.iter().position(|p| p.metadata.namespace.as_deref() == Some("pay")).unwrap();
    let late = wave_2.network_policies.remove(at);
    let name = late.metadata.name.clone().unwrap();
    targets[0].waves.push(WaveManifests { wave: 3, network_policies: vec![late], ..Default::default() });
    assert_eq!(
        refused(&plan, &inventory, &report, &targets),
        format!(
            "fra/prod: isolation: target fra-prod-1: NetworkPolicy pay/{name} is applied in wave 3, after pay arrives in wave 2"
        )
    );
}

#[test]
fn a_late_cluster_scoped_object_a_duplicate_and_an_unguarded_namespace_are_refused() {
    let (plan, inventory) = (plan("calico"), inventory());
    let (report, targets) = by_wave(&plan, &inventory);
    // The template moved from wave 0 to wave 2: after the first arrivals (wave 1) and wave 1's Constraint.
    let mut late = targets.clone();
    let template = std::mem::take(&mut late[0].waves[0].constraint_templates);
    late[0].waves.iter_mut().find(|w| w.wave == 2).unwrap().constraint_templates = template;
    let text = refused(&plan, &inventory, &report, &late);
    assert!(
        text.contains(
            "ConstraintTemplate kplantenantnamespaces is applied in wave 2, after the first namespace arrives in wave 1"
        ),
        "{text}"
    );
    assert!(text.contains("after a Constraint of its kind in wave 1"), "{text}");
    // The same RoleBinding in waves 1 and 2.
    let mut twice = targets.clone();
    let binding = twice[0].waves.iter().find(|w| w.wave == 1).unwrap().role_bindings[0].clone();
    let id = format!("{}/{}", binding.metadata.namespace.clone().unwrap(), binding.metadata.name.clone().unwrap());
    twice[0].waves.iter_mut().find(|w| w.wave == 2).unwrap().role_bindings.push(binding);
    let text = refused(&plan, &inventory, &report, &twice);
    assert!(text.contains(&format!("RoleBinding {id} is emitted in wave 1 and again in wave 2")), "{text}");
    // Wave 2's Constraint gone: the namespaces arriving in wave 2 are unguarded.
    let mut unguarded = targets;
    unguarded[0].waves.iter_mut().find(|w| w.wave == 2).unwrap().constraints.clear();
    let text = refused(&plan, &inventory, &report, &unguarded);
    assert!(text.contains("pay arrives in wave 2 and no Gatekeeper Constraint applied by then guards it"), "{text}");
}

#[test]
fn a_pod_security_finding_left_out_or_closed_or_an_admission_policy_left_out_is_refused() {
    use super::tests::violating;
    use kplan_model::isolation::AdmissionPolicy;
    let (plan, mut inventory) = (plan("calico"), inventory());
    inventory[0].namespaces[1].pod_groups = vec![violating("Deployment/api", &["hostPorts"], &["runAsNonRoot"])];
    inventory[1].isolation.admission_policies = vec![AdmissionPolicy {
        group: "admissionregistration.k8s.io".into(),
        kind: "ValidatingAdmissionPolicy".into(),
        name: "no-latest".into(),
        ..Default::default()
    }];
    let (report, targets) = honest(&plan, &inventory);
    assert_eq!(refused(&plan, &inventory, &report, &targets), "");

    let mut tampered = report.clone();
    for target in &mut tampered.targets {
        target.findings.retain(|f| f.kind != FindingKind::PodSecurity && f.kind != FindingKind::AdmissionPolicy);
    }
    let text = refused(&plan, &inventory, &tampered, &targets);
    assert!(
        text.contains(
            "pods of Deployment/api in web-a break Pod Security rules hostPorts, runAsNonRoot of the level it keeps"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "ValidatingAdmissionPolicy no-latest of b applies to namespaces moving into it and no \
             admission-policy finding names it"
        ),
        "{text}"
    );

    let mut tampered = report.clone();
    for finding in tampered.targets.iter_mut().flat_map(|t| &mut t.findings) {
        finding.open = false;
    }
    let text = refused(&plan, &inventory, &tampered, &targets);
    assert!(text.contains("is closed, but nothing emitted changes a pod spec"), "{text}");
    assert!(text.contains("its finding is closed, but not every source has it"), "{text}");
}
