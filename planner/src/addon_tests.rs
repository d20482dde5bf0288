//! Tests of platform add-ons (issue 15): installed once per target, never
//! moved or renamed, their demand reserved once (the largest instance), a
//! tenant namespace of the same name still a collision, different versions a
//! finding; and the validator refusing a plan that gets add-ons wrong.

use kplan_model::{AddonOrigin, ClusterSnapshot, Namespace, Plan, PreconditionKind, Resources, SlaTier};

use super::*;
use crate::class_tests::{pods, with_pods};
use crate::tests::{GIB, block, cluster, control_plane, namespace, node, plan, workers};

/// An `ingress-nginx` namespace running the upstream controller (`cpu` millicores per replica).
fn ingress(replicas: u64, cpu: u64, version: &str) -> Namespace {
    let mut ns = with_pods(
        namespace("ingress-nginx", "prod", SlaTier::Gold, 0, 0, 0),
        vec![pods("ingress-nginx-controller", replicas, cpu, 1)],
    );
    if !version.is_empty() {
        ns.labels.insert("app.kubernetes.io/version".into(), version.into());
    }
    ns
}

/// A namespace `name` with one Deployment `workload`.
fn app(name: &str, workload: &str, sla: SlaTier) -> Namespace {
    with_pods(namespace(name, "prod", sla, 0, 0, 0), vec![pods(workload, 2, 500, 1)])
}

/// Four prod clusters in `fra`, each with three workers in zones a, b, c and a
/// control-plane node, a tenant namespace of its own and `extra` namespaces.
fn four_clusters(extra: impl Fn(usize) -> Vec<Namespace>) -> Vec<ClusterSnapshot> {
    (1..=4)
        .map(|i| {
            let id = format!("c{i}");
            let mut nodes = workers(&format!("{id}-w"), "fra", &["a", "b", "c"], 3, 8, 32);
            nodes.push(control_plane(node(&format!("{id}-cp"), "fra", "a", 4, 16)));
            let mut namespaces = vec![app(&format!("shop-{i}"), "web", SlaTier::Silver)];
            namespaces.extend(extra(i));
            cluster(&id, "prod", "fra", nodes, namespaces)
        })
        .collect()
}

fn moved_names(plan: &Plan) -> Vec<String> {
    let fra = block(plan, "fra", "prod");
    fra.waves.iter().flat_map(|w| w.namespaces.iter().map(|m| format!("{}/{}", m.from_cluster, m.namespace))).collect()
}

#[test]
fn a_shared_ingress_nginx_across_four_clusters_is_one_addon_not_four_renames() {
    let inventory = four_clusters(|i| vec![ingress(2, 100 * i as u64, "1.10.1")]);
    let policy = Policy::default();
    let plan = plan(&inventory, &policy);
    let fra = block(&plan, "fra", "prod");
    assert_eq!(fra.target_clusters.len(), 1);
    let target = &fra.target_clusters[0];
    assert_eq!(target.addons.len(), 1, "{:?}", target.addons);
    let addon = &target.addons[0];
    assert_eq!(addon.namespace, "ingress-nginx");
    assert_eq!(addon.origin, AddonOrigin::Policy);
    let clusters: Vec<&str> = addon.instances.iter().map(|i| i.cluster_id.as_str()).collect();
    assert_eq!(clusters, ["c1", "c2", "c3", "c4"]);
    assert_eq!(addon.versions(), ["1.10.1"]);
    assert!(fra.namespace_renames.is_empty(), "{:?}", fra.namespace_renames);
    assert!(moved_names(&plan).iter().all(|m| !m.ends_with("/ingress-nginx")), "{:?}", moved_names(&plan));
    // Installed no later than the first namespace moving into the target.
    let first_move = fra.waves.iter().position(|w| !w.namespaces.is_empty()).unwrap() as u64 + 1;
    assert!(addon.wave <= first_move, "installed in wave {}, first move in wave {first_move}", addon.wave);
    // Same versions: no finding.
    assert!(fra.preconditions.iter().all(|p| p.kind != PreconditionKind::AddonVersions));
}

#[test]
fn addon_demand_is_counted_once_per_target_from_the_largest_source() {
    let inventory = four_clusters(|i| vec![ingress(2, 100 * i as u64, "")]);
    let plan = plan(&inventory, &Policy::default());
    let fra = block(&plan, "fra", "prod");
    let target = &fra.target_clusters[0];
    let addon = &target.addons[0];
    // c4's instance is the largest: 2 × 400m, 2 × 1 GiB, 2 pods.
    assert_eq!(addon.sized_from, "c4");
    assert_eq!(addon.requests, Resources::new(800, 2 * GIB, 2));
    assert_eq!(addon.versions(), ["unknown"]);
    // The target holds the four tenants (2 × 500m, 2 GiB, 2 pods each) and one add-on.
    let tenants = Resources::new(4 * 1000, 4 * 2 * GIB, 4 * 2);
    assert_eq!(target.requested, tenants.saturating_add(addon.requests));
    let last = fra.waves.last().unwrap();
    let after = last.capacity_after.iter().find(|c| c.cluster == target.name).unwrap();
    assert_eq!(after.requested, target.requested);
}

#[test]
fn a_tenant_namespace_that_shares_an_addons_name_is_still_a_collision() {
    // c1..c3 run the add-on; c4 has an application that happens to be called
    // `ingress-nginx` (none of the add-on's workloads), and c1..c3 a `monitoring`
    // stack while c4's `monitoring` is a tenant's own.
    let inventory = four_clusters(|i| {
        if i < 4 {
            vec![ingress(2, 100, "1.10.1"), app("monitoring", "prometheus-server", SlaTier::Bronze)]
        } else {
            vec![
                app("ingress-nginx", "legacy-router", SlaTier::Gold),
                app("monitoring", "team-dashboards", SlaTier::Gold),
            ]
        }
    });
    let plan = plan(&inventory, &Policy::default());
    let fra = block(&plan, "fra", "prod");
    let target = &fra.target_clusters[0];
    let addons: Vec<(&str, usize)> = target.addons.iter().map(|a| (a.namespace.as_str(), a.instances.len())).collect();
    assert_eq!(addons, [("ingress-nginx", 3), ("monitoring", 3)]);
    let moved = moved_names(&plan);
    assert!(moved.contains(&"c4/ingress-nginx".to_string()), "{moved:?}");
    assert!(moved.contains(&"c4/monitoring".to_string()), "{moved:?}");
    // The add-on keeps its name (even against a gold tenant): c4's are renamed.
    let renames: Vec<(&str, &str, &str)> = fra
        .namespace_renames
        .iter()
        .map(|r| (r.from_cluster.as_str(), r.namespace.as_str(), r.new_name.as_str()))
        .collect();
    assert_eq!(renames, [("c4", "ingress-nginx", "ingress-nginx-c4"), ("c4", "monitoring", "monitoring-c4")]);
    let sized_from = &target.addons[0].sized_from;
    assert_eq!(fra.namespace_renames[0].collides_with, vec![sized_from.clone()]);
}

#[test]
fn conflicting_addon_versions_are_a_finding() {
    let inventory = four_clusters(|i| vec![ingress(2, 100, if i == 2 { "1.9.4" } else { "1.10.1" })]);
    let plan = plan(&inventory, &Policy::default());
    let fra = block(&plan, "fra", "prod");
    let addon = &fra.target_clusters[0].addons[0];
    assert_eq!(addon.versions(), ["1.10.1", "1.9.4"]);
    let findings: Vec<_> = fra.preconditions.iter().filter(|p| p.kind == PreconditionKind::AddonVersions).collect();
    assert_eq!(findings.len(), 1, "{:?}", fra.preconditions);
    assert_eq!(findings[0].cluster_id, "fra-prod");
    assert_eq!(findings[0].before_wave, addon.wave);
    assert!(findings[0].detail.contains("1.9.4 in c2"), "{}", findings[0].detail);
    assert!(findings[0].detail.contains("1.10.1 in c1, c3, c4"), "{}", findings[0].detail);
}

#[test]
fn addons_are_detected_in_most_clusters_with_the_same_workloads_and_reported() {
    // `edge-proxy` is no well-known add-on, but three of four clusters run the
    // same workloads in it; `batch` runs the same workloads in only two of four.
    let inventory = four_clusters(|i| {
        let mut extra = vec![];
        if i < 4 {
            extra.push(app("edge-proxy", "envoy", SlaTier::Bronze));
        }
        if i < 3 {
            extra.push(app("batch", "runner", SlaTier::Bronze));
        }
        extra
    });
    let plan = plan(&inventory, &Policy::default());
    let fra = block(&plan, "fra", "prod");
    let target = &fra.target_clusters[0];
    let addons: Vec<(&str, AddonOrigin)> = target.addons.iter().map(|a| (a.namespace.as_str(), a.origin)).collect();
    assert_eq!(addons, [("edge-proxy", AddonOrigin::Detected)]);
    assert!(fra.explanation.contains("add-ons detected"), "{}", fra.explanation);
    assert!(fra.explanation.contains("edge-proxy (3 of 4 clusters)"), "{}", fra.explanation);
    // `batch` is two tenants: one keeps the name, the other is renamed.
    assert_eq!(fra.namespace_renames.len(), 1);
    assert_eq!(fra.namespace_renames[0].namespace, "batch");

    // Detection can be turned off: then `edge-proxy` is three colliding tenants.
    let policy = Policy { detect_addons: false, ..Policy::default() };
    let plan = crate::tests::plan(&inventory, &policy);
    let fra = block(&plan, "fra", "prod");
    assert!(fra.target_clusters[0].addons.is_empty());
    assert_eq!(fra.namespace_renames.iter().filter(|r| r.namespace == "edge-proxy").count(), 2);
}

#[test]
fn the_validator_refuses_a_plan_that_moves_or_forgets_addons() {
    let inventory = four_clusters(|_| vec![ingress(2, 100, "1.10.1")]);
    let policy = Policy::default();
    let good = plan(&inventory, &policy);
    let rules = |plan: &Plan| -> Vec<validate::Rule> {
        validate::validate(&inventory, &policy, plan).into_iter().map(|v| v.rule).collect()
    };

    // Forgotten: the add-on's largest instance never "moves".
    let mut forgotten = good.clone();
    forgotten.blocks[0].target_clusters[0].addons.clear();
    assert!(rules(&forgotten).contains(&validate::Rule::NamespaceAccounting), "{:?}", rules(&forgotten));

    // Reserved too little.
    let mut small = good.clone();
    small.blocks[0].target_clusters[0].addons[0].requests = Resources::ZERO;
    assert!(rules(&small).contains(&validate::Rule::NamespaceAccounting));

    // Installed after a namespace moved into the target.
    let mut late = good.clone();
    let fra = &mut late.blocks[0];
    let last = fra.waves.len() as u64;
    let first_move = fra.waves.iter().position(|w| !w.namespaces.is_empty()).unwrap() as u64 + 1;
    assert!(last > first_move, "the estate moves namespaces in more than one wave");
    fra.target_clusters[0].addons[0].wave = last;
    assert!(rules(&late).contains(&validate::Rule::SlaOrder), "{:?}", rules(&late));

    // Another instance installed instead of the largest.
    let mut other = good.clone();
    let addon = &mut other.blocks[0].target_clusters[0].addons[0];
    addon.sized_from = if addon.sized_from == "c1" { "c2".into() } else { "c1".into() };
    assert!(rules(&other).contains(&validate::Rule::NamespaceAccounting));
}

#[test]
fn the_runbook_installs_each_addon_once_before_namespaces_are_restored() {
    let inventory = four_clusters(|i| {
        vec![ingress(2, 100, "1.10.1"), app("monitoring", "prometheus", SlaTier::Bronze)]
            .into_iter()
            .take(if i == 1 { 1 } else { 2 })
            .collect()
    });
    let plan = plan(&inventory, &Policy::default());
    let book = runbook::runbook(&plan, &inventory, None);
    let mut installs = Vec::new();
    for wave in &book.blocks[0].waves {
        let first_restore = wave.steps.iter().find(|s| s.phase == runbook::Phase::RestoreNamespace).map(|s| s.number);
        for step in wave.steps.iter().filter(|s| s.phase == runbook::Phase::InstallAddon) {
            if let Some(restore) = first_restore {
                assert!(step.number < restore, "wave {}: {} comes after a restore", wave.wave, step.title);
            }
            installs.push((wave.wave, step.title.clone()));
        }
        // No add-on is backed up or restored.
        for step in wave.steps.iter().filter(|s| matches!(s.subject, runbook::Subject::Namespace { .. })) {
            assert!(!step.title.contains("ingress-nginx") && !step.title.contains("monitoring"), "{}", step.title);
        }
    }
    let titles: Vec<&str> = installs.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(titles, ["install add-on ingress-nginx on fra-prod", "install add-on monitoring on fra-prod"]);
}
