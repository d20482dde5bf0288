//! Pods pinned by local volumes (issue 17): the node that holds their data is
//! kept and moves with them (`local_volumes = "keep-node"`), or the plan
//! lists the migration of their data (`"migrate-data"`); the validator
//! refuses a plan that strands them.

use kplan_model::policy::LocalVolumes;
use kplan_model::scheduling::{LOCAL_VOLUME_DRIVER, NodeAffinity, NodeSelectorRequirement, PodGroup, PodVolume};
use kplan_model::{BlockStatus, ClusterSnapshot, Plan, Policy, PreconditionKind, SlaTier};

use crate::class_tests::{big_b, pods, with_pods};
use crate::tests::{block, cluster, control_plane, estate_policy, namespace, node, plan};
use crate::validate::{Rule, validate};

const GIB: u64 = 1 << 30;

/// `pg`: a StatefulSet of one pod whose claim is bound to a local volume on `host`.
pub(crate) fn database_on(host: &str) -> PodGroup {
    let mut group = pods("pg", 1, 2000, 8);
    group.owner_kind = "StatefulSet".into();
    group.volumes.push(PodVolume {
        claim: "data-pg-0".into(),
        volume: "local-pv-1".into(),
        storage_class: "local-nvme".into(),
        driver: LOCAL_VOLUME_DRIVER.into(),
        size_bytes: 200 * GIB,
        node_affinity: Some(NodeAffinity {
            terms: vec![vec![NodeSelectorRequirement {
                key: "kubernetes.io/hostname".into(),
                operator: "In".into(),
                values: vec![host.into()],
            }]],
        }),
    });
    group
}

/// `db-a`: two small workers, the database's data on `a-w-1`; `big-b`: large
/// workers that hold everything more cheaply. By the sums, `db-a`'s workers
/// would be freed.
fn estate() -> Vec<ClusterSnapshot> {
    let mut small = vec![node("a-w-1", "dc1", "b", 8, 32), node("a-w-2", "dc1", "b", 8, 32)];
    for n in &mut small {
        n.labels.insert("kubernetes.io/hostname".into(), n.name.clone());
    }
    small.push(control_plane(node("a-cp", "dc1", "c", 4, 16)));
    vec![
        cluster(
            "db-a",
            "prod",
            "dc1",
            small,
            vec![
                with_pods(namespace("ledger", "prod", SlaTier::Silver, 0, 0, 0), vec![database_on("a-w-1")]),
                with_pods(namespace("web", "prod", SlaTier::Silver, 0, 0, 0), vec![pods("front", 2, 1000, 2)]),
            ],
        ),
        big_b(),
    ]
}

fn migrate_data() -> Policy {
    Policy { local_volumes: LocalVolumes::MigrateData, ..estate_policy() }
}

fn wave_of(plan: &Plan, node_or_namespace: &str) -> Option<u64> {
    let prod = block(plan, "dc1", "prod");
    prod.waves
        .iter()
        .find(|w| {
            w.nodes.iter().any(|n| n.node == node_or_namespace)
                || w.namespaces.iter().any(|n| n.namespace == node_or_namespace)
        })
        .map(|w| w.index)
}

#[test]
fn the_node_with_a_local_volume_is_kept_and_moves_with_its_pods() {
    let inventory = estate();
    let policy = estate_policy();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let kept: Vec<&str> = prod.target_clusters[0].nodes_kept.iter().map(|n| n.node.as_str()).collect();
    assert!(kept.contains(&"a-w-1"), "the database's node is kept: {kept:?}");
    assert!(!kept.contains(&"a-w-2"), "the other small worker is not needed: {kept:?}");
    assert_eq!(wave_of(&plan, "a-w-1"), wave_of(&plan, "ledger"), "the node and its namespace move together");
    assert!(prod.preconditions.iter().all(|p| p.kind != PreconditionKind::DataMigration));
    assert!(validate(&inventory, &policy, &plan).is_empty());
}

#[test]
fn migrating_the_data_frees_the_node_and_lists_the_claim() {
    let inventory = estate();
    let policy = migrate_data();
    let plan = plan(&inventory, &policy);
    let prod = block(&plan, "dc1", "prod");
    assert_eq!(prod.status, BlockStatus::Planned, "{}", prod.explanation);
    let kept: Vec<&str> = prod.target_clusters[0].nodes_kept.iter().map(|n| n.node.as_str()).collect();
    assert!(!kept.contains(&"a-w-1"), "the small workers are freed: {kept:?}");
    let migration = prod
        .preconditions
        .iter()
        .find(|p| p.kind == PreconditionKind::DataMigration)
        .expect("a data migration is listed");
    assert_eq!(migration.cluster_id, "db-a");
    assert_eq!(migration.claims, ["ledger/data-pg-0"]);
    assert_eq!(migration.nodes, ["a-w-1"]);
    assert!(migration.detail.contains("200.0Gi"), "{}", migration.detail);
    let earliest = [wave_of(&plan, "a-w-1"), wave_of(&plan, "ledger")].into_iter().flatten().min();
    assert_eq!(Some(migration.before_wave), earliest, "before the node or the pods move");
    assert!(validate(&inventory, &policy, &plan).is_empty());
}

#[test]
fn a_plan_that_frees_the_node_of_a_local_volume_is_refused_naming_the_pod() {
    let inventory = estate();
    // A plan made under migrate-data frees the node; without the migration it strands the pod.
    let freeing = plan(&inventory, &migrate_data());
    let refused = |violations: Vec<crate::validate::Violation>| {
        let pods: Vec<String> =
            violations.iter().filter(|v| v.rule == Rule::PodPlacement).map(|v| v.detail.clone()).collect();
        assert!(pods.iter().any(|m| m.contains("ledger/StatefulSet/pg") && m.contains("data-pg-0")), "{violations:#?}");
    };
    // Under keep-node the plan's data migration does not count.
    refused(validate(&inventory, &estate_policy(), &freeing));
    // Under migrate-data, a plan that does not list the migration strands the pod too.
    let mut silent = freeing.clone();
    for block in &mut silent.blocks {
        block.preconditions.retain(|p| p.kind != PreconditionKind::DataMigration);
    }
    refused(validate(&inventory, &migrate_data(), &silent));
}

#[test]
fn a_data_migration_due_after_its_node_has_left_is_refused() {
    let inventory = estate();
    let policy = migrate_data();
    let mut late = plan(&inventory, &policy);
    assert!(validate(&inventory, &policy, &late).is_empty());
    let last = late.blocks[0].waves.len() as u64 + 1;
    for block in &mut late.blocks {
        for p in block.preconditions.iter_mut().filter(|p| p.kind == PreconditionKind::DataMigration) {
            p.before_wave = last;
        }
    }
    let violations = validate(&inventory, &policy, &late);
    assert!(
        violations.iter().any(|v| v.rule == Rule::PodPlacement && v.detail.contains("ledger/data-pg-0")),
        "{violations:#?}"
    );
}
