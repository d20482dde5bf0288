//! What must change in a source cluster before it merges: kubelet version skew,
//! docker-shim runtimes, CNI changes and CSI drivers; and the target's version
//! and CNI when the policy leaves them to the majority.
//!
//! Pure: no IO. Preconditions come out with `before_wave = 0`; the caller sets
//! the first wave that touches the cluster.

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::quantity::format_bytes;
use kplan_model::scheduling::PodVolume;
use kplan_model::{ClusterSnapshot, Namespace, NodeRole, Precondition, PreconditionKind};

use super::flows::normalize_cni;

/// A Kubernetes version reduced to (major, minor): `v1.28.3+k3s1` → (1, 28).
/// Accepts a leading `v`; the minor may carry a suffix (`28+`, as GKE reports).
pub fn parse_minor_version(text: &str) -> Option<(u64, u64)> {
    let text = text.trim();
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let mut parts = text.split('.');
    let leading_number = |part: &str| -> Option<u64> {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let major = parts.next().filter(|p| p.chars().all(|c| c.is_ascii_digit())).and_then(leading_number)?;
    let minor = parts.next().and_then(leading_number)?;
    Some((major, minor))
}

fn format_minor((major, minor): (u64, u64)) -> String {
    format!("v{major}.{minor}")
}

/// The version a cluster runs: its API server version, else its newest
/// control-plane kubelet, else its newest kubelet.
fn cluster_version(cluster: &ClusterSnapshot) -> Option<(u64, u64)> {
    parse_minor_version(&cluster.facts.kubernetes_version)
        .or_else(|| {
            cluster
                .nodes
                .iter()
                .filter(|node| node.role == NodeRole::ControlPlane)
                .filter_map(|node| parse_minor_version(&node.kubelet_version))
                .max()
        })
        .or_else(|| cluster.nodes.iter().filter_map(|node| parse_minor_version(&node.kubelet_version)).max())
}

/// The Kubernetes version most nodes run, as `vMAJOR.MINOR`: each cluster's
/// version (API server, else newest kubelet) weighted by its node count; ties go
/// to the newest version. Empty when no cluster's version is known.
pub fn majority_version(clusters: &[&ClusterSnapshot]) -> String {
    let mut weights: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for cluster in clusters {
        if let Some(version) = cluster_version(cluster) {
            *weights.entry(version).or_default() += cluster.nodes.len() as u64;
        }
    }
    // max_by_key returns the last maximum: iterating in ascending version order,
    // that is the newest among the tied.
    weights.into_iter().max_by_key(|&(_, weight)| weight).map(|(version, _)| format_minor(version)).unwrap_or_default()
}

/// The CNI most nodes run (each cluster's detected CNI, normalised, weighted by
/// its node count); ties go to the lexicographically smallest name. Clusters
/// whose CNI was not detected do not vote. Empty when none was detected.
pub fn majority_cni(clusters: &[&ClusterSnapshot]) -> String {
    let mut weights: BTreeMap<String, u64> = BTreeMap::new();
    for cluster in clusters {
        let cni = normalize_cni(&cluster.facts.cni);
        if !cni.is_empty() {
            *weights.entry(cni).or_default() += cluster.nodes.len() as u64;
        }
    }
    // Iterate in descending name order so that max_by_key's last maximum is the smallest name.
    weights.into_iter().rev().max_by_key(|(_, weight)| *weight).map(|(cni, _)| cni).unwrap_or_default()
}

/// How many minor versions a kubelet may lag the API server: 3 since
/// Kubernetes 1.28, 2 before.
pub fn max_kubelet_lag(target: (u64, u64)) -> u64 {
    if target >= (1, 28) { 3 } else { 2 }
}

fn sorted_versions<'a>(versions: impl Iterator<Item = &'a str>) -> String {
    let set: BTreeSet<(Option<(u64, u64)>, &str)> = versions.map(|v| (parse_minor_version(v), v)).collect();
    set.into_iter().map(|(_, v)| v).collect::<Vec<_>>().join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What must change in `cluster` before it merges into a target running
/// Kubernetes `target_version` (`vX.Y[.Z]`) and CNI `target_cni`:
///
/// - `kubelet-upgrade`: nodes whose kubelet is more minor versions behind the
///   target than Kubernetes allows (3 since 1.28, 2 before), and nodes whose
///   kubelet is newer than the target (a kubelet may never be newer than its
///   API server); one precondition for each, listing the nodes. Skipped when the
///   target version is empty or unparsable; nodes with an unknown kubelet
///   version are not listed.
/// - `runtime-migration`: nodes on docker-shim (`docker://`), removed in 1.24:
///   listed when the target is 1.24 or newer, or unknown.
/// - `cni-migration`: the cluster's CNI differs from the target's (or was not
///   detected while the target's is known); concerns the whole cluster.
///
/// - `removed-apis`: the cluster (API server, else newest kubelet) is older than
///   the target and Kubernetes removed APIs in between ([`crate::removed_apis`]).
///
/// CSI drivers need the other clusters of the block: see [`block_preconditions`].
/// `before_wave` is 0: the caller sets it.
pub fn preconditions(cluster: &ClusterSnapshot, target_version: &str, target_cni: &str) -> Vec<Precondition> {
    let mut out = Vec::new();
    let precondition = |kind, detail: String, nodes: Vec<String>| Precondition {
        cluster_id: cluster.cluster_id.clone(),
        kind,
        detail,
        nodes,
        before_wave: 0,
        claims: Vec::new(),
    };
    let target = parse_minor_version(target_version);

    // Namespaces moving to a newer Kubernetes cross every API removed in between.
    if let (Some(source), Some(target)) = (cluster_version(cluster), target)
        && source.0 == 1
        && target.0 == 1
    {
        let removed = crate::removed_apis::removed_between(source.1, target.1);
        if !removed.is_empty() {
            out.push(precondition(
                PreconditionKind::RemovedApis,
                format!(
                    "its namespaces move from {} to {}, which no longer serves APIs they may use ({}): \
                     their manifests, Helm charts and operators must use the replacements before they move",
                    format_minor(source),
                    format_minor(target),
                    crate::removed_apis::describe(&removed)
                ),
                Vec::new(),
            ));
        }
    }

    if let Some(target) = target {
        let lag = max_kubelet_lag(target);
        let mut too_old: Vec<(&str, &str)> = Vec::new();
        let mut too_new: Vec<(&str, &str)> = Vec::new();
        for node in &cluster.nodes {
            let Some(version) = parse_minor_version(&node.kubelet_version) else { continue };
            let entry = (node.name.as_str(), node.kubelet_version.trim());
            if version.0 != target.0 {
                if version.0 < target.0 { too_old.push(entry) } else { too_new.push(entry) }
            } else if version.1 > target.1 {
                too_new.push(entry);
            } else if target.1 - version.1 > lag {
                too_old.push(entry);
            }
        }
        let target_text = format_minor(target);
        if !too_old.is_empty() {
            let oldest_allowed = format_minor((target.0, target.1.saturating_sub(lag)));
            out.push(precondition(
                PreconditionKind::KubeletUpgrade,
                format!(
                    "kubelet on {} node{} ({}) is more than {lag} minor versions older than the target {target_text}: upgrade to {oldest_allowed} or newer before the merge",
                    too_old.len(),
                    plural(too_old.len()),
                    sorted_versions(too_old.iter().map(|(_, v)| *v)),
                ),
                sorted_names(too_old.iter().map(|(n, _)| *n)),
            ));
        }
        if !too_new.is_empty() {
            out.push(precondition(
                PreconditionKind::KubeletUpgrade,
                format!(
                    "kubelet on {} node{} ({}) is newer than the target {target_text}, and a kubelet may not be newer than its api server: reinstall at {target_text} or raise the target version",
                    too_new.len(),
                    plural(too_new.len()),
                    sorted_versions(too_new.iter().map(|(_, v)| *v)),
                ),
                sorted_names(too_new.iter().map(|(n, _)| *n)),
            ));
        }
    }

    let needs_containerd = target.is_none_or(|version| version >= (1, 24));
    let docker: Vec<&str> = cluster
        .nodes
        .iter()
        .filter(|node| node.container_runtime.trim().to_ascii_lowercase().starts_with("docker://"))
        .map(|node| node.name.as_str())
        .collect();
    if needs_containerd && !docker.is_empty() {
        let target_text = match target {
            Some(version) => format!("the target {}", format_minor(version)),
            None => "the target (version not set; every supported version)".to_string(),
        };
        out.push(precondition(
            PreconditionKind::RuntimeMigration,
            format!(
                "{} node{} run docker through dockershim, which kubernetes removed in v1.24 and {target_text} needs containerd: migrate them to containerd before the merge",
                docker.len(),
                plural(docker.len()),
            ),
            sorted_names(docker.into_iter()),
        ));
    }

    let cni = normalize_cni(&cluster.facts.cni);
    let target_cni = normalize_cni(target_cni);
    if !target_cni.is_empty() && cni != target_cni {
        let detail = if cni.is_empty() {
            format!(
                "no cni was detected on this cluster and the target runs {target_cni}: check which cni it runs, then plan its nodes' move to {target_cni} and review its network policies"
            )
        } else {
            format!(
                "the cluster runs {cni} and the target runs {target_cni}: its nodes move to {target_cni} when they join, review its network policies and {cni}-specific resources before the merge"
            )
        };
        out.push(precondition(PreconditionKind::CniMigration, detail, Vec::new()));
    }
    out
}

/// The storage drivers a cluster has: the CSI drivers its facts list, and
/// the drivers (CSI or provisioner) of the volumes its pods mount, with their
/// storage classes. Node-local volumes and classes without a provisioner
/// need no driver.
fn storage_drivers(cluster: &ClusterSnapshot) -> BTreeMap<String, BTreeSet<&str>> {
    let mut drivers: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for driver in &cluster.facts.csi_drivers {
        if !driver.trim().is_empty() {
            drivers.entry(driver.trim().to_string()).or_default();
        }
    }
    let volumes = cluster.namespaces.iter().flat_map(|n| &n.pod_groups).flat_map(|g| &g.volumes);
    for volume in volumes.filter(|v| !v.is_node_local() && !v.driver.is_empty()) {
        if volume.driver == "kubernetes.io/no-provisioner" {
            continue;
        }
        let classes = drivers.entry(volume.driver.clone()).or_default();
        if !volume.storage_class.is_empty() {
            classes.insert(volume.storage_class.as_str());
        }
    }
    drivers
}

/// The objects of `namespaces` (of `cluster`) whose last `kubectl apply` used
/// an API the move to `target_version` crosses ([`crate::removed_apis`]), as
/// `namespace/Kind/name (group/version)`, sorted: what the `removed-apis`
/// precondition names.
pub fn objects_on_removed_apis<'a>(
    cluster: &ClusterSnapshot,
    namespaces: impl IntoIterator<Item = &'a Namespace>,
    target_version: &str,
) -> Vec<String> {
    let (Some(source), Some(target)) = (cluster_version(cluster), parse_minor_version(target_version)) else {
        return Vec::new();
    };
    if source.0 != 1 || target.0 != 1 {
        return Vec::new();
    }
    let removed = crate::removed_apis::removed_between(source.1, target.1);
    let mut objects: Vec<String> = namespaces
        .into_iter()
        .flat_map(|namespace| namespace.applied_prerelease.iter().map(move |object| (namespace, object)))
        .filter(|(_, object)| {
            removed.iter().any(|api| api.api_version == object.api_version && api.kind == object.kind)
        })
        .map(|(namespace, object)| {
            format!("{}/{}/{} ({})", namespace.name, object.kind, object.name, object.api_version)
        })
        .collect();
    objects.sort();
    objects
}

fn sorted_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: BTreeSet<&str> = names.collect();
    set.into_iter().map(str::to_string).collect()
}

/// Every precondition of a block's source clusters, sorted by cluster then kind:
/// [`preconditions`] for each, plus `csi-driver` for every CSI driver a cluster
/// uses that none of the block's other clusters has (it must be installed on
/// the target before the cluster's volumes move). With a single source cluster
/// every driver it has is listed (the target is a new cluster).
pub fn block_preconditions(clusters: &[&ClusterSnapshot], target_version: &str, target_cni: &str) -> Vec<Precondition> {
    let mut sorted: Vec<&ClusterSnapshot> = clusters.to_vec();
    sorted.sort_by(|a, b| a.cluster_id.cmp(&b.cluster_id));
    sorted.dedup_by(|a, b| a.cluster_id == b.cluster_id);
    let mut out = Vec::new();
    for cluster in &sorted {
        out.extend(preconditions(cluster, target_version, target_cni));
        let others: BTreeSet<String> = sorted
            .iter()
            .filter(|other| other.cluster_id != cluster.cluster_id)
            .flat_map(|other| storage_drivers(other).into_keys())
            .collect();
        for (driver, classes) in storage_drivers(cluster).into_iter().filter(|(d, _)| !others.contains(d)) {
            let classes = if classes.is_empty() {
                String::new()
            } else {
                format!(
                    " (storage class{} {})",
                    if classes.len() == 1 { "" } else { "es" },
                    sorted_names(classes.into_iter()).join(", ")
                )
            };
            out.push(Precondition {
                cluster_id: cluster.cluster_id.clone(),
                kind: PreconditionKind::CsiDriver,
                detail: format!(
                    "csi driver {driver}{classes} is used here and by no other cluster of the block: install it on the target before this cluster's volumes move"
                ),
                nodes: Vec::new(),
                before_wave: 0,
                claims: Vec::new(),
            });
        }
    }
    out.extend(network_policy_preconditions(&sorted, target_cni));
    out.sort_by(|a, b| (&a.cluster_id, a.kind).cmp(&(&b.cluster_id, b.kind)));
    out
}

/// A `cni-migration` precondition on every source cluster of a block whose
/// target CNI does not enforce NetworkPolicy (flannel) when two or more source
/// clusters merge: the NetworkPolicies that keep their tenants apart
/// ([`crate::isolation`]) would be ignored.
fn network_policy_preconditions(clusters: &[&ClusterSnapshot], target_cni: &str) -> Vec<Precondition> {
    let target_cni = normalize_cni(target_cni);
    if clusters.len() < 2 || target_cni.is_empty() || crate::isolation::enforces_network_policy(&target_cni) {
        return Vec::new();
    }
    clusters
        .iter()
        .map(|cluster| Precondition {
            cluster_id: cluster.cluster_id.clone(),
            kind: PreconditionKind::CniMigration,
            detail: format!(
                "the target runs {target_cni}, which does not enforce NetworkPolicy, and {} source clusters share it: \
                 its namespaces would be reachable from every other tenant's pods; run the target on calico or cilium \
                 (policy target_cni) before this cluster's namespaces move",
                clusters.len()
            ),
            nodes: Vec::new(),
            before_wave: 0,
            claims: Vec::new(),
        })
        .collect()
}

/// The `data-migration` precondition of one namespace that moves to `target`
/// in wave `namespace_wave`, under `local_volumes = "migrate-data"`: the
/// node-local claims (local and hostPath volumes) of its pods, the nodes of
/// `cluster` that hold their data, and their size. It comes before the
/// earlier of the namespace's wave and the first wave in which one of those
/// nodes leaves (`node_wave`; a node that stays has none). `None` when its pods
/// mount no node-local volume.
pub fn data_migration(
    cluster: &ClusterSnapshot,
    namespace: &Namespace,
    target: &str,
    namespace_wave: u64,
    node_wave: impl Fn(&str) -> Option<u64>,
) -> Option<Precondition> {
    let mut claims: BTreeMap<&str, &PodVolume> = BTreeMap::new();
    for volume in namespace.pod_groups.iter().flat_map(|g| &g.volumes).filter(|v| v.pins()) {
        claims.entry(volume.claim.as_str()).or_insert(volume);
    }
    if claims.is_empty() {
        return None;
    }
    let mut nodes: BTreeSet<&str> = BTreeSet::new();
    let mut parts = Vec::new();
    let mut bytes: u64 = 0;
    for (claim, volume) in &claims {
        let holders: Vec<&str> = cluster
            .nodes
            .iter()
            .filter(|n| volume.node_affinity.as_ref().is_some_and(|a| a.matches(&n.labels)))
            .map(|n| n.name.as_str())
            .collect();
        bytes = bytes.saturating_add(volume.size_bytes);
        nodes.extend(holders.iter().copied());
        let on = if holders.is_empty() { "node unknown".to_string() } else { format!("on {}", holders.join(", ")) };
        parts.push(format!("{claim} ({}, {on})", format_bytes(volume.size_bytes)));
    }
    let before = nodes.iter().filter_map(|n| node_wave(n)).chain([namespace_wave]).min().unwrap_or(namespace_wave);
    Some(Precondition {
        cluster_id: cluster.cluster_id.clone(),
        kind: PreconditionKind::DataMigration,
        detail: format!(
            "namespace {} keeps {} on node-local volumes: {}; copy it to storage on {target} (a Velero file-system \
             backup and restore, or the application's own replication) before its pods or those nodes move",
            namespace.name,
            format_bytes(bytes),
            parts.join(", ")
        ),
        nodes: nodes.into_iter().map(str::to_string).collect(),
        before_wave: before,
        claims: claims.keys().map(|claim| format!("{}/{claim}", namespace.name)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use kplan_model::{ClusterFacts, Node, Resources};

    use super::*;

    fn node(name: &str, kubelet: &str, runtime: &str) -> Node {
        Node {
            name: name.into(),
            labels: Default::default(),
            datacenter: "fra".into(),
            zone: "fra-prod-a".into(),
            role: NodeRole::Worker,
            allocatable: Resources::new(4000, 16 << 30, 110),
            kubelet_version: kubelet.into(),
            container_runtime: runtime.into(),
            architecture: "amd64".into(),
            unschedulable: false,
            taints: Vec::new(),
            extended: Default::default(),
            runtime_handlers: Vec::new(),
        }
    }

    fn cluster(id: &str, version: &str, cni: &str, nodes: Vec<Node>) -> ClusterSnapshot {
        ClusterSnapshot {
            cluster_id: id.into(),
            generation: 1,
            collected_at_unix: 0,
            facts: ClusterFacts {
                datacenter: "fra".into(),
                zone: "fra-prod-a".into(),
                security_tier: "prod".into(),
                kubernetes_version: version.into(),
                cni: cni.into(),
                csi_drivers: Vec::new(),
            },
            nodes,
            namespaces: Vec::new(),
            isolation: Default::default(),
        }
    }

    fn n_nodes(n: usize, kubelet: &str) -> Vec<Node> {
        (0..n).map(|i| node(&format!("n{i}"), kubelet, "containerd://1.7.2")).collect()
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_minor_version("v1.28.3"), Some((1, 28)));
        assert_eq!(parse_minor_version("1.30"), Some((1, 30)));
        assert_eq!(parse_minor_version("v1.27.4+k3s1"), Some((1, 27)));
        assert_eq!(parse_minor_version("v1.26.5-eks-abc"), Some((1, 26)));
        assert_eq!(parse_minor_version("1.28+"), Some((1, 28)));
        assert_eq!(parse_minor_version(""), None);
        assert_eq!(parse_minor_version("latest"), None);
        assert_eq!(parse_minor_version("v1"), None);
    }

    #[test]
    fn majority_version_by_node_count_ties_to_newest() {
        let a = cluster("a", "v1.27.3", "calico", n_nodes(5, "v1.27.3"));
        let b = cluster("b", "v1.29.1", "calico", n_nodes(3, "v1.29.1"));
        let c = cluster("c", "v1.29.0", "calico", n_nodes(3, "v1.29.0"));
        assert_eq!(majority_version(&[&a, &b]), "v1.27");
        assert_eq!(majority_version(&[&a, &b, &c]), "v1.29");
        let d = cluster("d", "v1.28.0", "calico", n_nodes(5, "v1.28.0"));
        assert_eq!(majority_version(&[&a, &d]), "v1.28", "tie goes to the newest");
        // no API server version: the newest kubelet
        let e = cluster("e", "", "calico", vec![node("x", "v1.25.1", ""), node("y", "v1.26.0", "")]);
        assert_eq!(majority_version(&[&e]), "v1.26");
        assert_eq!(majority_version(&[]), "");
    }

    #[test]
    fn majority_cni_by_node_count_ties_to_smallest_name() {
        let a = cluster("a", "v1.29", "Calico", n_nodes(4, "v1.29.0"));
        let b = cluster("b", "v1.29", "flannel", n_nodes(4, "v1.29.0"));
        let c = cluster("c", "v1.29", "", n_nodes(10, "v1.29.0"));
        assert_eq!(majority_cni(&[&b, &a, &c]), "calico");
        let d = cluster("d", "v1.29", "cilium", n_nodes(5, "v1.29.0"));
        assert_eq!(majority_cni(&[&a, &b, &d]), "cilium");
        assert_eq!(majority_cni(&[&c]), "");
    }

    #[test]
    fn kubelet_skew_since_1_28_is_three_minors() {
        let c = cluster(
            "old",
            "v1.26.0",
            "calico",
            vec![
                node("ok-1", "v1.26.9", "containerd://1.7.2"),
                node("old-1", "v1.25.0", "containerd://1.7.2"),
                node("old-2", "v1.24.3", "containerd://1.7.2"),
                node("unknown", "", "containerd://1.7.2"),
            ],
        );
        let kubelets = |target: &str| -> Vec<Precondition> {
            preconditions(&c, target, "calico")
                .into_iter()
                .filter(|p| p.kind != PreconditionKind::RemovedApis)
                .collect()
        };
        let found = kubelets("v1.29");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].kind, PreconditionKind::KubeletUpgrade);
        assert_eq!(found[0].nodes, vec!["old-1".to_string(), "old-2".to_string()]);
        assert!(found[0].detail.contains("more than 3 minor versions"), "{}", found[0].detail);
        assert!(found[0].detail.contains("v1.26 or newer"), "{}", found[0].detail);
        assert_eq!(found[0].before_wave, 0);
        // before 1.28 only two minors are allowed
        let found = kubelets("v1.27.2");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].nodes, vec!["old-2".to_string()]);
    }

    #[test]
    fn kubelets_newer_than_the_target_are_listed() {
        let c = cluster("new", "v1.31.0", "calico", n_nodes(2, "v1.31.0"));
        let found = preconditions(&c, "v1.30.4", "calico");
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("newer than the target v1.30"), "{}", found[0].detail);
        assert_eq!(found[0].nodes.len(), 2);
        assert!(preconditions(&c, "v1.31", "calico").is_empty());
    }

    #[test]
    fn docker_nodes_need_containerd_from_1_24() {
        let c = cluster(
            "docker",
            "v1.23.0",
            "calico",
            vec![
                node("d1", "v1.23.0", "docker://20.10.7"),
                node("d0", "v1.23.0", "Docker://19.3.1"),
                node("c1", "v1.23.0", "containerd://1.6.0"),
            ],
        );
        let found = preconditions(&c, "v1.24.0", "calico");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].kind, PreconditionKind::RuntimeMigration);
        assert_eq!(found[0].nodes, vec!["d0".to_string(), "d1".to_string()]);
        assert!(found[0].detail.contains("containerd"));
        assert!(preconditions(&c, "v1.23.5", "calico").is_empty());
        // unknown target: every supported version needs containerd
        let found = preconditions(&c, "", "calico");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, PreconditionKind::RuntimeMigration);
    }

    #[test]
    fn cni_changes_are_listed() {
        let flannel = cluster("f", "v1.29", "flannel", n_nodes(1, "v1.29.0"));
        let found = preconditions(&flannel, "v1.29", "calico");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, PreconditionKind::CniMigration);
        assert!(found[0].nodes.is_empty());
        assert!(found[0].detail.contains("runs flannel"));
        assert!(preconditions(&flannel, "v1.29", "Flannel").is_empty());
        assert!(preconditions(&flannel, "v1.29", "").is_empty(), "no target cni: nothing to compare");
        let unknown = cluster("u", "v1.29", "", n_nodes(1, "v1.29.0"));
        let found = preconditions(&unknown, "v1.29", "calico");
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("no cni was detected"));
    }

    #[test]
    fn namespaces_moving_from_1_23_to_1_28_cross_removed_apis() {
        let old = cluster("old", "v1.23.17", "calico", n_nodes(2, "v1.23.17"));
        let found: Vec<Precondition> = preconditions(&old, "v1.28", "calico")
            .into_iter()
            .filter(|p| p.kind == PreconditionKind::RemovedApis)
            .collect();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].detail.contains("from v1.23 to v1.28"), "{}", found[0].detail);
        assert!(found[0].detail.contains("batch/v1beta1 CronJob (use batch/v1)"), "{}", found[0].detail);
        let recent = cluster("recent", "v1.27.3", "calico", n_nodes(2, "v1.27.3"));
        assert!(preconditions(&recent, "v1.28", "calico").iter().all(|p| p.kind != PreconditionKind::RemovedApis));
    }

    #[test]
    fn objects_last_applied_with_a_removed_api_are_named() {
        let old = cluster("old", "v1.23.17", "calico", n_nodes(2, "v1.23.17"));
        let applied = |api_version: &str, kind: &str, name: &str| kplan_model::AppliedObject {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
        };
        let payments = Namespace {
            name: "payments".into(),
            labels: BTreeMap::new(),
            security_tier: "prod".into(),
            sla_tier: kplan_model::SlaTier::Gold,
            requests: kplan_model::Resources::ZERO,
            pod_groups: Vec::new(),
            applied_prerelease: vec![
                applied("batch/v1beta1", "CronJob", "nightly"),
                applied("policy/v1beta1", "PodDisruptionBudget", "api"),
                // removed in 1.22, before the cluster's 1.23: not crossed
                applied("extensions/v1beta1", "Ingress", "web"),
                // still served in 1.28
                applied("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", "x"),
            ],
            disruption_budgets: Vec::new(),
        };
        assert_eq!(
            objects_on_removed_apis(&old, [&payments], "v1.28"),
            ["payments/CronJob/nightly (batch/v1beta1)", "payments/PodDisruptionBudget/api (policy/v1beta1)"]
        );
        // v1.23 -> v1.24 crosses no removal of these
        assert!(objects_on_removed_apis(&old, [&payments], "v1.24").is_empty());
    }

    #[test]
    fn csi_drivers_only_one_cluster_has() {
        let mut a = cluster("a", "v1.29", "calico", n_nodes(1, "v1.29.0"));
        a.facts.csi_drivers = vec!["ebs.csi.aws.com".into(), "nfs.csi.k8s.io".into()];
        let mut b = cluster("b", "v1.29", "calico", n_nodes(1, "v1.29.0"));
        b.facts.csi_drivers = vec!["nfs.csi.k8s.io".into()];
        let found = block_preconditions(&[&b, &a], "v1.29", "calico");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].cluster_id.as_str(), found[0].kind), ("a", PreconditionKind::CsiDriver));
        assert!(found[0].detail.contains("ebs.csi.aws.com"));
        // alone in its block, every driver must be installed on the new target
        assert_eq!(block_preconditions(&[&b], "v1.29", "calico").len(), 1);
    }
}
