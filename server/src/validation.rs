//! Checks on a snapshot before it is stored. Every problem names the field and
//! the object; a snapshot with any problem is refused whole.

use std::collections::BTreeSet;

use kplan_model::ClusterSnapshot;

/// Longest cluster id accepted (a DNS subdomain).
pub const MAX_CLUSTER_ID_LEN: usize = 253;

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CLUSTER_ID_LEN
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Returns every problem found (empty when the snapshot may be stored).
pub fn check_snapshot(snapshot: &ClusterSnapshot) -> Vec<String> {
    let mut problems = Vec::new();
    if !is_dns_subdomain(&snapshot.cluster_id) {
        problems.push(format!(
            "cluster_id: {:?} is not a valid id (lowercase letters, digits, '-' and '.', at most {MAX_CLUSTER_ID_LEN} characters)",
            snapshot.cluster_id
        ));
    }
    if snapshot.generation == 0 {
        problems.push("generation: must be at least 1".to_string());
    }
    let mut seen = BTreeSet::new();
    for (idx, node) in snapshot.nodes.iter().enumerate() {
        if node.name.is_empty() {
            problems.push(format!("nodes[{idx}].name: must not be empty"));
        } else if !seen.insert(node.name.as_str()) {
            problems.push(format!("nodes[{idx}] {:?}: duplicate node name", node.name));
        }
        if node.zone.is_empty() {
            problems.push(format!("nodes[{idx}] {:?}: zone must not be empty", node.name));
        }
        if node.datacenter.is_empty() {
            problems.push(format!("nodes[{idx}] {:?}: datacenter must not be empty", node.name));
        }
    }
    let mut seen = BTreeSet::new();
    for (idx, namespace) in snapshot.namespaces.iter().enumerate() {
        if namespace.name.is_empty() {
            problems.push(format!("namespaces[{idx}].name: must not be empty"));
        } else if !seen.insert(namespace.name.as_str()) {
            problems.push(format!("namespaces[{idx}] {:?}: duplicate namespace name", namespace.name));
        }
        if namespace.security_tier.is_empty() {
            problems.push(format!("namespaces[{idx}] {:?}: security_tier must not be empty", namespace.name));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplan_model::{Namespace, Node};

    #[test]
    fn names_every_problem() {
        let node = Node {
            name: "n1".into(),
            labels: Default::default(),
            datacenter: "fra".into(),
            zone: String::new(),
            role: Default::default(),
            allocatable: Default::default(),
            kubelet_version: String::new(),
            container_runtime: String::new(),
            architecture: String::new(),
            unschedulable: false,
        };
        let namespace = Namespace {
            name: "payments".into(),
            labels: Default::default(),
            security_tier: "prod".into(),
            sla_tier: Default::default(),
            requests: Default::default(),
        };
        let snapshot = ClusterSnapshot {
            cluster_id: "Bad_Id".into(),
            generation: 0,
            nodes: vec![node.clone(), node],
            namespaces: vec![namespace.clone(), namespace],
            ..Default::default()
        };
        let problems = check_snapshot(&snapshot);
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].starts_with("cluster_id"));
        assert!(problems.iter().any(|p| p.contains("duplicate node name")));
        assert!(problems.iter().any(|p| p.contains("duplicate namespace name")));
    }

    #[test]
    fn accepts_a_good_id() {
        assert!(is_dns_subdomain("fra-prod-payments.bank"));
        assert!(!is_dns_subdomain("-fra"));
        assert!(!is_dns_subdomain(""));
    }
}
