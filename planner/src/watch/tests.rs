//! Keeping watch: a small estate planned for real, then carried out by hand in
//! its snapshots, read back as progress and health.

use std::collections::BTreeMap;

use kplan_model::test_support::{carry_out_wave, namespace, three_cluster_block};
use kplan_model::watch::{PlanState, PlanWatch, Progress};
use kplan_model::{ClusterSnapshot, NodeAction, Plan, Policy};

use super::progress::ProgressOptions;
use super::*;

fn estate() -> Vec<ClusterSnapshot> {
    three_cluster_block()
}

fn policy() -> Policy {
    let mut policy = Policy::default();
    policy.wave_budget.nodes = 6;
    policy.wave_budget.namespaces = 2;
    policy
}

fn plan(inventory: &[ClusterSnapshot]) -> Plan {
    let mut plan = crate::propose(inventory, &policy(), &crate::PlanOptions::default()).expect("plans").plan;
    plan.id = "plan-a".into();
    assert_eq!(plan.blocks[0].status, kplan_model::BlockStatus::Planned, "{}", plan.blocks[0].explanation);
    assert!(plan.blocks[0].waves.len() >= 3, "at least three waves: {}", plan.blocks[0].waves.len());
    plan
}

fn carry_out(plan: &Plan, n: u64, estate: &mut BTreeMap<String, ClusterSnapshot>) {
    carry_out_wave(plan, n, estate);
}

fn read(plan: &Plan, estate: &BTreeMap<String, ClusterSnapshot>) -> kplan_model::watch::PlanProgress {
    let snapshots: Vec<ClusterSnapshot> = estate.values().cloned().collect();
    let summaries: Vec<_> = snapshots.iter().map(|s| s.summary(1_000, 1)).collect();
    progress(plan, &snapshots, &summaries, &policy(), ProgressOptions { now_unix: 1_000, stale_after_seconds: 600 })
}

fn health(
    plan: &Plan,
    planned: &[ClusterSnapshot],
    estate: &BTreeMap<String, ClusterSnapshot>,
) -> Vec<kplan_model::watch::Finding> {
    let fresh: Vec<ClusterSnapshot> = estate.values().cloned().collect();
    check_health(plan, &policy(), planned, &fresh, &read(plan, estate))
}

#[test]
fn progress_follows_the_waves_carried_out_by_hand_and_flags_one_out_of_order() {
    let planned = estate();
    let plan = plan(&planned);
    let mut estate: BTreeMap<String, ClusterSnapshot> =
        planned.iter().map(|s| (s.cluster_id.clone(), s.clone())).collect();
    let before = read(&plan, &estate);
    assert!(before.waves.iter().all(|w| w.progress == Progress::Pending), "{before:#?}");
    assert_eq!(before.waves_total, plan.blocks[0].waves.len() as u64);

    carry_out(&plan, 1, &mut estate);
    let after = read(&plan, &estate);
    assert_eq!(after.waves[0].progress, Progress::Done, "{:#?}", after.waves[0]);
    assert!(after.waves[1..].iter().all(|w| w.progress == Progress::Pending), "{after:#?}");
    assert_eq!(after.waves_done, 1);
    assert!(after.waves[1].missing.iter().any(|m| m.contains("to join") || m.contains("to move")), "{after:#?}");

    // Waves 2 and 3 carried out, but a node of wave 2 still reports in its
    // source: wave 2 is in progress, wave 3 done out of order.
    let mut skipped = estate.clone();
    carry_out(&plan, 2, &mut skipped);
    carry_out(&plan, 3, &mut skipped);
    let back = &plan.blocks[0].waves[1].nodes[0];
    let node = planned.iter().flat_map(|s| &s.nodes).find(|n| n.name == back.node).expect("planned").clone();
    for snapshot in skipped.values_mut() {
        snapshot.nodes.retain(|n| n.name != back.node);
    }
    skipped.get_mut(&back.cluster_id).expect("source").nodes.push(node);
    let skipped = read(&plan, &skipped);
    assert_eq!(skipped.waves[1].progress, Progress::InProgress, "{:#?}", skipped.waves[1]);
    assert!(skipped.waves[1].missing[0].contains(&back.node), "{:#?}", skipped.waves[1]);
    assert_eq!(skipped.waves[2].progress, Progress::Done, "{:#?}", skipped.waves[2]);
    assert!(skipped.waves[2].out_of_order);
    assert!(!skipped.waves[0].out_of_order && !skipped.waves[1].out_of_order);
}

#[test]
fn health_is_clean_before_and_after_a_wave_and_names_what_drifted() {
    let planned = estate();
    let plan = plan(&planned);
    let mut estate: BTreeMap<String, ClusterSnapshot> =
        planned.iter().map(|s| (s.cluster_id.clone(), s.clone())).collect();
    assert_eq!(health(&plan, &planned, &estate), Vec::new());
    carry_out(&plan, 1, &mut estate);
    assert_eq!(health(&plan, &planned, &estate), Vec::new(), "wave 1 done as planned holds");

    // A namespace of the last wave grows beyond what the target can hold.
    let block = &plan.blocks[0];
    let last = block.waves.iter().rev().find(|w| !w.namespaces.is_empty()).expect("a wave moves namespaces");
    let grows = &last.namespaces[0];
    let mut grown = estate.clone();
    let source = grown.get_mut(&grows.from_cluster).expect("source");
    source.namespaces.iter_mut().find(|n| n.name == grows.namespace).expect("namespace").requests.cpu_millis = 200_000;
    let findings = health(&plan, &planned, &grown);
    let subject = format!("{}/{}", grows.from_cluster, grows.namespace);
    let capacity: Vec<_> = findings.iter().filter(|f| f.kind == "capacity" && f.subject == subject).collect();
    assert!(!capacity.is_empty(), "{findings:#?}");
    assert!(
        capacity.iter().any(|f| f.wave == last.index
            && f.detail.contains(&format!("moves to {} in wave {}", grows.to_cluster, last.index))),
        "{capacity:#?}"
    );

    // A kept node of a later wave is gone; a namespace appears; a target takes a name a pending move needs.
    let mut drifted = estate.clone();
    drifted.get_mut("fra-prod-1").expect("source").namespaces.push(namespace("newcomer", 100));
    let pending = &last.namespaces[0];
    let final_name = if pending.new_name.is_empty() { &pending.namespace } else { &pending.new_name };
    drifted
        .get_mut(&pending.to_cluster)
        .expect("target reports after wave 1")
        .namespaces
        .push(namespace(final_name, 100));
    let findings = health(&plan, &planned, &drifted);
    let kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
    assert!(findings.iter().any(|f| f.kind == "new-namespace" && f.subject == "fra-prod-1/newcomer"), "{findings:#?}");
    assert!(findings.iter().any(|f| f.kind == "collision" && f.wave == last.index), "{findings:#?}");
    assert_eq!(kinds, vec!["collision", "new-namespace"], "each said once: {findings:#?}");

    // Before its waves begin, fra-prod-3 moves to another CNI: the plan lists
    // no migration for it.
    let mut switched: BTreeMap<String, ClusterSnapshot> =
        planned.iter().map(|s| (s.cluster_id.clone(), s.clone())).collect();
    switched.get_mut("fra-prod-3").expect("source").facts.cni = "cilium".into();
    let findings = health(&plan, &planned, &switched);
    let precondition: Vec<_> = findings.iter().filter(|f| f.kind == "precondition").collect();
    assert_eq!(precondition.len(), 1, "{findings:#?}");
    assert_eq!(precondition[0].subject, "fra-prod-3");
    assert!(precondition[0].detail.contains("cni-migration"), "{precondition:#?}");

    // Before anything began, a node the plan keeps dies.
    let mut lost: BTreeMap<String, ClusterSnapshot> =
        planned.iter().map(|s| (s.cluster_id.clone(), s.clone())).collect();
    let kept = block.waves[0].nodes.iter().find(|n| n.action == NodeAction::DrainAndJoin).expect("wave 1 joins a node");
    lost.get_mut(&kept.cluster_id).expect("source").nodes.retain(|n| n.name != kept.node);
    let findings = health(&plan, &planned, &lost);
    let gone: Vec<_> = findings.iter().filter(|f| f.kind == "node-gone").collect();
    assert_eq!(gone.len(), 1, "{findings:#?}");
    assert_eq!(gone[0].subject, format!("{}/{}", kept.cluster_id, kept.node));
    assert!(gone[0].detail.contains(&format!("keeps in target {}", kept.to_cluster)), "{gone:#?}");
    assert!(
        !findings.iter().any(|f| f.kind == "node-accounting"),
        "the validator's version is not repeated: {findings:#?}"
    );
}

#[test]
fn approving_supersedes_an_approved_plan_of_the_same_block_and_abandoned_plans_stay_so() {
    let planned = estate();
    let first = plan(&planned);
    let mut second = first.clone();
    second.id = "plan-b".into();
    let approved_first = approve(&first, None, &[], "planner:alice", 10).expect("approves");
    assert_eq!(approved_first.len(), 1);
    assert_eq!(approved_first[0].1.lifecycle.state, PlanState::Approved);
    assert_eq!(approved_first[0].1.lifecycle.changed_by, "planner:alice");
    let others = vec![("plan-a".to_string(), lifecycle::blocks_of(&first), approved_first[0].1.clone())];
    let records = approve(&second, None, &others, "planner:bob", 20).expect("approves");
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].0, "plan-a");
    assert_eq!(records[1].1.lifecycle.state, PlanState::Superseded);
    assert_eq!(records[1].1.lifecycle.superseded_by, "plan-b");
    // Approving again changes nothing; an abandoned plan is not approved.
    assert!(approve(&second, Some(&records[0].1), &others, "planner:bob", 30).expect("idempotent").is_empty());
    let abandoned: PlanWatch = abandon(Some(&records[0].1), "planner:carol", 40).expect("abandons");
    assert_eq!(abandoned.lifecycle.state, PlanState::Abandoned);
    let err = approve(&second, Some(&abandoned), &[], "planner:bob", 50).expect_err("refused");
    assert!(err.to_string().contains("plan plan-b is abandoned"), "{err}");
}
