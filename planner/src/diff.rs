//! What differs between two plans, in a user's words: their inputs (clusters,
//! generations, snapshot contents, policy, versions, limits) and their content
//! (per block: status, nodes kept, control plane, flows, waves, renames,
//! preconditions). `kplan propose --check` and `kplan plans diff` print it.
//! Lines come in a fixed order (blocks by datacenter and tier, then the order
//! above, items sorted), so two diffs of the same plans are the same text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use kplan_model::{BlockPlan, Plan};

/// How the inputs of `old` and `new` differ; empty when the input digests
/// match (or every recorded input is equal).
pub fn input_differences(old: &Plan, new: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if !old.fingerprint.input_digest.is_empty() && old.fingerprint.input_digest == new.fingerprint.input_digest {
        return out;
    }
    let clusters = |plan: &Plan| -> BTreeMap<String, (u64, String)> {
        plan.inventory.iter().map(|c| (c.cluster_id.clone(), (c.generation, c.content_sha256.clone()))).collect()
    };
    let (a, b) = (clusters(old), clusters(new));
    for (id, (generation, hash)) in &a {
        match b.get(id) {
            None => out.push(format!("cluster {id}: no longer in the inventory")),
            Some((new_generation, new_hash)) => {
                if hash != new_hash {
                    out.push(format!(
                        "cluster {id}: its snapshot changed (generation {generation} → {new_generation}, content {} → {})",
                        short(hash),
                        short(new_hash)
                    ));
                } else if generation != new_generation {
                    out.push(format!(
                        "cluster {id}: reported again, same content (generation {generation} → {new_generation})"
                    ));
                }
            }
        }
    }
    for id in b.keys().filter(|id| !a.contains_key(*id)) {
        out.push(format!("cluster {id}: new in the inventory"));
    }
    if old.policy_digest != new.policy_digest {
        out.push(format!("policy: digest {} → {}", old.policy_digest, new.policy_digest));
    }
    let (f, g) = (&old.fingerprint, &new.fingerprint);
    for (what, x, y) in [
        ("kplan version", &f.kplan_version, &g.kplan_version),
        ("HiGHS version", &f.highs_version, &g.highs_version),
        ("solver limits", &f.limits, &g.limits),
        ("options", &f.options, &g.options),
    ] {
        if x != y {
            out.push(format!("{what}: {} → {}", or_none(x), or_none(y)));
        }
    }
    out
}

/// How the content of `old` and `new` differs; empty when they say the same.
pub fn content_differences(old: &Plan, new: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let (s, t) = (&old.summary, &new.summary);
    for (what, x, y) in [
        ("blocks", s.n_blocks, t.n_blocks),
        ("infeasible blocks", s.n_blocks_infeasible, t.n_blocks_infeasible),
        ("nodes after", s.nodes_after, t.nodes_after),
        ("control planes retired", s.control_planes_retired, t.control_planes_retired),
        ("firewall flows", s.firewall_flows, t.firewall_flows),
        ("waves", s.waves, t.waves),
    ] {
        if x != y {
            out.push(format!("plan: {what} {x} → {y}"));
        }
    }
    let blocks = |plan: &Plan| -> BTreeMap<String, BlockPlan> {
        plan.blocks.iter().map(|b| (format!("{}/{}", b.datacenter, b.security_tier), b.clone())).collect()
    };
    let (a, b) = (blocks(old), blocks(new));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        match (a.get(name), b.get(name)) {
            (Some(_), None) => out.push(format!("{name}: only in the first plan")),
            (None, Some(_)) => out.push(format!("{name}: only in the second plan")),
            (Some(x), Some(y)) => block_differences(name, x, y, &mut out),
            (None, None) => {}
        }
    }
    out
}

fn block_differences(name: &str, a: &BlockPlan, b: &BlockPlan, out: &mut Vec<String>) {
    let mut changed = |what: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name}: {what} {x} → {y}"));
        }
    };
    changed("status", format!("{:?}", a.status).to_lowercase(), format!("{:?}", b.status).to_lowercase());
    changed("solver status", a.solver_status.clone(), b.solver_status.clone());
    changed("nodes after", a.nodes_after.to_string(), b.nodes_after.to_string());
    changed("waves", a.waves.len().to_string(), b.waves.len().to_string());
    changed("gap", format!("{:.2}%", a.gap * 100.0), format!("{:.2}%", b.gap * 100.0));
    if a.explanation != b.explanation {
        out.push(format!("{name}: the explanation changed"));
    }
    let kept = |p: &BlockPlan| -> BTreeSet<String> {
        p.target_clusters
            .iter()
            .flat_map(|t| t.nodes_kept.iter().map(move |n| format!("{} keeps {}/{}", t.name, n.cluster_id, n.node)))
            .collect()
    };
    set_changes(name, &kept(a), &kept(b), out);
    let control_plane = |p: &BlockPlan| -> BTreeSet<String> {
        p.target_clusters
            .iter()
            .flat_map(|t| {
                t.control_plane
                    .iter()
                    .map(move |n| format!("{} control plane {}/{}@{}", t.name, n.cluster_id, n.node, n.zone))
            })
            .collect()
    };
    set_changes(name, &control_plane(a), &control_plane(b), out);
    let flows = |p: &BlockPlan| -> BTreeSet<String> {
        p.firewall_flows
            .iter()
            .map(|f| {
                format!(
                    "flow {} {}→{} {}/{} ({})",
                    f.target_cluster,
                    f.from_zone,
                    f.to_zone,
                    f.protocol.as_str(),
                    f.ports,
                    f.purpose
                )
            })
            .collect()
    };
    set_changes(name, &flows(a), &flows(b), out);
    let renames = |p: &BlockPlan| -> BTreeSet<String> {
        p.namespace_renames
            .iter()
            .map(|r| format!("rename {}/{} → {} in {}", r.from_cluster, r.namespace, r.new_name, r.target_cluster))
            .collect()
    };
    set_changes(name, &renames(a), &renames(b), out);
    let preconditions = |p: &BlockPlan| -> BTreeSet<String> {
        p.preconditions
            .iter()
            .map(|c| {
                format!("precondition on {} ({:?}, before wave {}): {}", c.cluster_id, c.kind, c.before_wave, c.detail)
            })
            .collect()
    };
    set_changes(name, &preconditions(a), &preconditions(b), out);
    // Wave by wave: which wave each node and namespace moves in.
    let schedule = |p: &BlockPlan| -> BTreeSet<String> {
        p.waves
            .iter()
            .flat_map(|w| {
                let nodes =
                    w.nodes.iter().map(move |m| format!("wave {} moves node {}/{}", w.index, m.cluster_id, m.node));
                let namespaces = w
                    .namespaces
                    .iter()
                    .map(move |m| format!("wave {} moves namespace {}/{}", w.index, m.from_cluster, m.namespace));
                nodes.chain(namespaces)
            })
            .collect()
    };
    set_changes(name, &schedule(a), &schedule(b), out);
}

/// `- x` for what only `a` has, `+ y` for what only `b` has, in sorted order.
fn set_changes(name: &str, a: &BTreeSet<String>, b: &BTreeSet<String>, out: &mut Vec<String>) {
    out.extend(a.difference(b).map(|x| format!("{name}: - {x}")));
    out.extend(b.difference(a).map(|y| format!("{name}: + {y}")));
}

fn short(hash: &str) -> impl Display + '_ {
    if hash.is_empty() { "(not recorded)" } else { &hash[..hash.len().min(12)] }
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "(not recorded)" } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplan_model::{InventoryRef, NodeRef, TargetCluster};

    fn plan(node: &str, generation: u64, hash: &str) -> Plan {
        let block = BlockPlan {
            datacenter: "fra".into(),
            security_tier: "prod".into(),
            target_clusters: vec![TargetCluster {
                name: "fra-prod".into(),
                nodes_kept: vec![NodeRef { cluster_id: "c1".into(), node: node.into(), zone: "a".into() }],
                ..TargetCluster::default()
            }],
            ..BlockPlan::default()
        };
        Plan {
            inventory: vec![InventoryRef { cluster_id: "c1".into(), generation, content_sha256: hash.into() }],
            blocks: vec![block],
            ..Plan::default()
        }
    }

    #[test]
    fn equal_plans_have_no_differences() {
        let a = plan("n1", 1, "aa");
        assert!(input_differences(&a, &a).is_empty());
        assert!(content_differences(&a, &a).is_empty());
    }

    #[test]
    fn a_changed_snapshot_and_a_changed_node_are_named() {
        let (a, b) = (plan("n1", 1, "aaaa"), plan("n2", 2, "bbbb"));
        assert_eq!(
            input_differences(&a, &b),
            vec!["cluster c1: its snapshot changed (generation 1 → 2, content aaaa → bbbb)".to_string()]
        );
        assert_eq!(
            content_differences(&a, &b),
            vec!["fra/prod: - fra-prod keeps c1/n1".to_string(), "fra/prod: + fra-prod keeps c1/n2".to_string()]
        );
    }
}
