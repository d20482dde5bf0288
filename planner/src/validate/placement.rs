//! Targets, node assignment, control-plane placement and renames.

use super::*;

impl<'a, 'p> BlockCheck<'a, 'p>
where
    'a: 'p,
{
    /// Names, counts and sizes of the targets; their CNI and version.
    pub(super) fn check_targets(&mut self) {
        let block = self.block;
        let base = format!("{}-{}", block.datacenter, block.security_tier);
        if block.target_clusters.is_empty() {
            self.push(Rule::Structure, "a planned block has no target cluster".to_string());
        }
        for (i, target) in block.target_clusters.iter().enumerate() {
            let expected = if i == 0 { base.clone() } else { format!("{base}-{}", i + 1) };
            if target.name != expected {
                self.push(
                    Rule::Structure,
                    format!(
                        "target {} should be named {expected} (targets are <datacenter>-<tier>, -2, -3, ...)",
                        target.name
                    ),
                );
            }
            let max = self.policy.max_nodes_per_cluster;
            if target.nodes_kept.len() as u64 > max {
                self.push(
                    Rule::MaxNodes,
                    format!(
                        "target {} keeps {} nodes, more than max_nodes_per_cluster {max}",
                        target.name,
                        target.nodes_kept.len()
                    ),
                );
            }
            let policy_cni = normalize_cni(&self.policy.target_cni);
            if !policy_cni.is_empty() && normalize_cni(&target.cni) != policy_cni {
                self.push(
                    Rule::Structure,
                    format!("target {} runs cni {:?} but the policy asks for {policy_cni}", target.name, target.cni),
                );
            }
            let policy_version = self.policy.target_kubernetes_version.trim();
            if !policy_version.is_empty()
                && target.kubernetes_version.trim().trim_start_matches('v') != policy_version.trim_start_matches('v')
            {
                self.push(
                    Rule::Structure,
                    format!(
                        "target {} runs kubernetes {:?} but the policy asks for {policy_version}",
                        target.name, target.kubernetes_version
                    ),
                );
            }
        }
        let total_kept: u64 = block.target_clusters.iter().map(|t| t.nodes_kept.len() as u64).sum();
        let max = self.policy.max_nodes_per_cluster.max(1);
        let expected = total_kept.div_ceil(max).max(1);
        if !block.target_clusters.is_empty() && block.target_clusters.len() as u64 != expected {
            self.push(
                Rule::MaxNodes,
                format!(
                    "{total_kept} nodes kept with max_nodes_per_cluster {max} make {expected} target(s), the plan has {}",
                    block.target_clusters.len()
                ),
            );
        }
    }

    /// Every node of the block kept once or freed once; tier and zone of kept
    /// nodes. Returns node -> the target keeping it (first claim).
    pub(super) fn check_node_assignment(&mut self) -> BTreeMap<NodeKey<'a>, &'a str> {
        let block = self.block;
        let block_nodes = self.block_nodes();
        let mut claims: BTreeMap<NodeKey<'a>, Vec<String>> = BTreeMap::new();
        let mut kept: BTreeMap<NodeKey<'a>, &'a str> = BTreeMap::new();

        let mut refs: Vec<(Option<&'a TargetCluster>, &'a kplan_model::NodeRef)> = Vec::new();
        for target in &block.target_clusters {
            refs.extend(target.nodes_kept.iter().map(|r| (Some(target), r)));
        }
        refs.extend(block.nodes_freed.iter().map(|r| (None, r)));

        for (target, node_ref) in refs {
            let key = (node_ref.cluster_id.as_str(), node_ref.node.as_str());
            let what = match target {
                Some(target) => format!("kept by {}", target.name),
                None => "freed".to_string(),
            };
            let Some(info) = self.index.nodes.get(&key) else {
                self.push(Rule::NodeAccounting, format!("node {}/{} ({what}) is not in the inventory", key.0, key.1));
                continue;
            };
            if !block_nodes.contains(&key) {
                let (datacenter, tier) = &info.block;
                let rule = if datacenter == &block.datacenter && target.is_some() {
                    Rule::TierSeparation
                } else {
                    Rule::NodeAccounting
                };
                self.push(
                    rule,
                    format!(
                        "node {}/{} ({what}) belongs to block {datacenter}/{tier} (cluster {} is {tier})",
                        key.0, key.1, key.0
                    ),
                );
                continue;
            }
            if !node_ref.zone.is_empty() && node_ref.zone != info.node.zone {
                self.push(
                    Rule::NodeAccounting,
                    format!(
                        "node {}/{} is listed in zone {} but is in zone {}",
                        key.0, key.1, node_ref.zone, info.node.zone
                    ),
                );
            }
            if let Some(target) = target {
                if !self.index.may_host(self.policy, &info.node.zone, self.tier()) {
                    self.push(
                        Rule::ZonePermission,
                        format!(
                            "target {} keeps node {}/{} in zone {}, which may not host tier {}",
                            target.name,
                            key.0,
                            key.1,
                            info.node.zone,
                            self.tier()
                        ),
                    );
                }
                kept.entry(key).or_insert(target.name.as_str());
            }
            claims.entry(key).or_default().push(what);
        }
        for (key, what) in &claims {
            if what.len() > 1 {
                self.push(
                    Rule::NodeAccounting,
                    format!("node {}/{} is listed {} times: {}", key.0, key.1, what.len(), what.join(", ")),
                );
            }
        }
        let missing: Vec<String> =
            block_nodes.iter().filter(|key| !claims.contains_key(*key)).map(|(c, n)| format!("{c}/{n}")).collect();
        if !missing.is_empty() {
            self.push(
                Rule::NodeAccounting,
                format!("{} node(s) of the block are neither kept nor freed: {}", missing.len(), short_list(&missing)),
            );
        }
        kept
    }

    pub(super) fn check_control_plane(&mut self, kept: &BTreeMap<NodeKey<'a>, &'a str>) {
        let block = self.block;
        let small = self.is_small_site();
        let allowed = self.allowed_zones();
        for target in &block.target_clusters {
            if target.small_site != small {
                self.push(
                    Rule::ControlPlaneSpread,
                    format!(
                        "target {} has small_site = {} but the block has {} nodes (small_site_max_nodes {})",
                        target.name,
                        target.small_site,
                        self.block_nodes().len(),
                        self.policy.small_site_max_nodes
                    ),
                );
            }
            let mut nodes = BTreeSet::new();
            let mut zones = BTreeSet::new();
            for cp in &target.control_plane {
                let key = (cp.cluster_id.as_str(), cp.node.as_str());
                if !nodes.insert(key) {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!("target {} lists control-plane node {}/{} twice", target.name, key.0, key.1),
                    );
                    continue;
                }
                if kept.get(&key) != Some(&target.name.as_str()) {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!(
                            "control-plane node {}/{} of target {} is not a node it keeps",
                            key.0, key.1, target.name
                        ),
                    );
                    continue;
                }
                let zone = self.index.nodes[&key].node.zone.as_str();
                if cp.zone != zone {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!(
                            "control-plane node {}/{} is listed in zone {} but is in zone {zone}",
                            key.0, key.1, cp.zone
                        ),
                    );
                }
                zones.insert(zone);
            }
            if small {
                if target.control_plane.len() != 1 {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!(
                            "small-site target {} must have one control-plane node (k3s server), it has {}",
                            target.name,
                            target.control_plane.len()
                        ),
                    );
                }
                if !target.distribution.trim().eq_ignore_ascii_case("k3s") {
                    self.push(
                        Rule::ControlPlaneSpread,
                        format!("small-site target {} must use k3s, not {:?}", target.name, target.distribution),
                    );
                }
                continue;
            }
            if target.control_plane.len() != 3 {
                self.push(
                    Rule::ControlPlaneSpread,
                    format!(
                        "target {} must have three control-plane nodes, it has {}",
                        target.name,
                        target.control_plane.len()
                    ),
                );
            }
            let needed = allowed.len().min(3);
            if zones.len() < needed {
                self.push(
                    Rule::ControlPlaneSpread,
                    format!(
                        "the control plane of target {} spans {} zone(s) ({}), the block's allowed zones allow {needed}",
                        target.name,
                        zones.len(),
                        zones.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            if allowed.len() < 3 && target.control_plane_note.trim().is_empty() {
                self.push(
                    Rule::ControlPlaneSpread,
                    format!(
                        "the block's allowed zones number {} (fewer than three) but target {} has no control_plane_note saying so",
                        allowed.len(),
                        target.name
                    ),
                );
            }
        }
    }

    pub(super) fn check_renames(&mut self) {
        let block = self.block;
        let block_namespaces = self.block_namespaces();
        // target -> final name -> the namespaces with that final name
        let mut finals: BTreeMap<&str, BTreeMap<&str, Vec<NamespaceKey<'a>>>> = BTreeMap::new();
        // target -> original name -> clusters
        let mut originals: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
        // (cluster, namespace) -> (target, final name), for renamed moves
        let mut renamed: BTreeMap<NamespaceKey<'a>, (&'a str, &'a str)> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        // An add-on installed on a target keeps its name there.
        for target in &block.target_clusters {
            for addon in &target.addons {
                let key = (addon.sized_from.as_str(), addon.namespace.as_str());
                if !block_namespaces.contains(&key) || !seen.insert(key) {
                    continue;
                }
                finals.entry(target.name.as_str()).or_default().entry(key.1).or_default().push(key);
                originals.entry(target.name.as_str()).or_default().entry(key.1).or_default().insert(key.0);
            }
        }
        for wave in &block.waves {
            for namespace_move in &wave.namespaces {
                let key = (namespace_move.from_cluster.as_str(), namespace_move.namespace.as_str());
                if !self.moves_here(&block_namespaces, key) || !seen.insert(key) {
                    continue;
                }
                let target = namespace_move.to_cluster.as_str();
                let final_name =
                    if namespace_move.new_name.is_empty() { key.1 } else { namespace_move.new_name.as_str() };
                finals.entry(target).or_default().entry(final_name).or_default().push(key);
                originals.entry(target).or_default().entry(key.1).or_default().insert(key.0);
                if final_name != key.1 {
                    renamed.insert(key, (target, final_name));
                    if !is_dns1123_label(final_name) {
                        self.push(
                            Rule::RenameUniqueness,
                            format!(
                                "namespace {}/{} is renamed to {final_name:?}, not a valid dns-1123 label",
                                key.0, key.1
                            ),
                        );
                    }
                    if is_platform_namespace(final_name, self.policy) {
                        self.push(
                            Rule::RenameUniqueness,
                            format!(
                                "namespace {}/{} is renamed to {final_name}, a platform namespace name",
                                key.0, key.1
                            ),
                        );
                    }
                }
            }
        }
        for (target, names) in &finals {
            for (name, keys) in names {
                if keys.len() > 1 {
                    let from: Vec<String> = keys.iter().map(|(c, n)| format!("{c}/{n}")).collect();
                    self.push(
                        Rule::RenameUniqueness,
                        format!("target {target} gets {} namespaces named {name}: {}", keys.len(), from.join(", ")),
                    );
                }
            }
        }
        let mut entries: BTreeSet<NamespaceKey<'a>> = BTreeSet::new();
        for rename in &block.namespace_renames {
            let key = (rename.from_cluster.as_str(), rename.namespace.as_str());
            if !entries.insert(key) {
                self.push(Rule::RenameUniqueness, format!("namespace {}/{} has more than one rename", key.0, key.1));
                continue;
            }
            match renamed.get(&key) {
                Some(&(target, new_name)) if target == rename.target_cluster && new_name == rename.new_name => {}
                _ => {
                    self.push(
                        Rule::RenameUniqueness,
                        format!(
                            "rename of {}/{} to {} in {} is not what its namespace move does",
                            key.0, key.1, rename.new_name, rename.target_cluster
                        ),
                    );
                    continue;
                }
            }
            let others: BTreeSet<&str> = originals
                .get(rename.target_cluster.as_str())
                .and_then(|names| names.get(key.1))
                .map(|clusters| clusters.iter().copied().filter(|c| *c != key.0).collect())
                .unwrap_or_default();
            if others.is_empty() {
                self.push(
                    Rule::RenameUniqueness,
                    format!(
                        "namespace {}/{} is renamed though nothing collides with it in {}",
                        key.0, key.1, rename.target_cluster
                    ),
                );
            } else {
                let listed: BTreeSet<&str> = rename.collides_with.iter().map(String::as_str).collect();
                if listed != others {
                    self.push(
                        Rule::RenameUniqueness,
                        format!(
                            "rename of {}/{} says it collides with [{}], it collides with [{}]",
                            key.0,
                            key.1,
                            listed.into_iter().collect::<Vec<_>>().join(", "),
                            others.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
        }
        for (key, (target, new_name)) in &renamed {
            if !entries.contains(key) {
                self.push(
                    Rule::RenameUniqueness,
                    format!("namespace {}/{} moves to {target} as {new_name} without a rename entry", key.0, key.1),
                );
            }
        }
    }
}
