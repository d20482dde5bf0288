//! Waves: every node and namespace moved once, budgets, SLA order, retirement.

use super::*;

impl<'a, 'p> BlockCheck<'a, 'p>
where
    'a: 'p,
{
    /// Waves numbered 1..n; every node and namespace of the block moves exactly
    /// once and consistently with the targets. Returns the valid moves per wave.
    pub(super) fn check_waves(&mut self, kept: &BTreeMap<NodeKey<'a>, &'a str>) -> Vec<WaveMoves<'a>> {
        let block = self.block;
        let block_nodes = self.block_nodes();
        let block_namespaces = self.block_namespaces();
        let freed: BTreeSet<NodeKey<'a>> =
            block.nodes_freed.iter().map(|r| (r.cluster_id.as_str(), r.node.as_str())).collect();
        let targets: BTreeSet<&str> = block.target_clusters.iter().map(|t| t.name.as_str()).collect();

        let mut node_wave: BTreeMap<NodeKey<'a>, u64> = BTreeMap::new();
        let mut namespace_wave: BTreeMap<NamespaceKey<'a>, u64> = BTreeMap::new();
        let mut waves = Vec::new();
        for (position, wave) in block.waves.iter().enumerate() {
            let number = position as u64 + 1;
            if wave.index != number {
                self.push(Rule::Structure, format!("wave {} is listed at position {number}", wave.index));
            }
            let mut moves = WaveMoves::default();
            for node_move in &wave.nodes {
                let key = (node_move.cluster_id.as_str(), node_move.node.as_str());
                let Some(info) = self.index.nodes.get(&key) else {
                    self.push(
                        Rule::NodeAccounting,
                        format!("wave {number} moves node {}/{}, which is not in the inventory", key.0, key.1),
                    );
                    continue;
                };
                if !block_nodes.contains(&key) {
                    let (datacenter, tier) = &info.block;
                    let rule =
                        if *datacenter == block.datacenter { Rule::TierSeparation } else { Rule::NodeAccounting };
                    self.push(
                        rule,
                        format!("wave {number} moves node {}/{} of block {datacenter}/{tier}", key.0, key.1),
                    );
                    continue;
                }
                if let Some(first) = node_wave.get(&key) {
                    self.push(
                        Rule::NodeAccounting,
                        format!("node {}/{} moves twice, in waves {first} and {number}", key.0, key.1),
                    );
                    continue;
                }
                node_wave.insert(key, number);
                if !node_move.zone.is_empty() && node_move.zone != info.node.zone {
                    self.push(
                        Rule::NodeAccounting,
                        format!(
                            "wave {number} moves node {}/{} from zone {}, but it is in zone {}",
                            key.0, key.1, node_move.zone, info.node.zone
                        ),
                    );
                }
                match node_move.action {
                    NodeAction::DrainAndJoin => match kept.get(&key) {
                        Some(target) if *target == node_move.to_cluster => {
                            moves.joins.insert(key, target);
                        }
                        Some(target) => self.push(
                            Rule::NodeAccounting,
                            format!(
                                "wave {number} joins node {}/{} to {:?} but target {target} keeps it",
                                key.0, key.1, node_move.to_cluster
                            ),
                        ),
                        None => self.push(
                            Rule::NodeAccounting,
                            format!(
                                "wave {number} joins node {}/{} to {:?} but no target keeps it",
                                key.0, key.1, node_move.to_cluster
                            ),
                        ),
                    },
                    NodeAction::Free => {
                        if let Some(target) = kept.get(&key) {
                            self.push(
                                Rule::NodeAccounting,
                                format!("wave {number} frees node {}/{}, which target {target} keeps", key.0, key.1),
                            );
                        } else if !freed.contains(&key) {
                            self.push(
                                Rule::NodeAccounting,
                                format!(
                                    "wave {number} frees node {}/{}, which nodes_freed does not list",
                                    key.0, key.1
                                ),
                            );
                        }
                    }
                }
                moves.nodes.insert(key);
            }
            for namespace_move in &wave.namespaces {
                let key = self.move_key(namespace_move);
                let Some(info) = self.index.namespaces.get(&key) else {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!("wave {number} moves namespace {}/{}, which is not in the inventory", key.0, key.1),
                    );
                    continue;
                };
                let Some((datacenter, tier)) = &info.block else {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "wave {number} moves platform namespace or add-on instance {}/{}; those never move",
                            key.0, key.1
                        ),
                    );
                    continue;
                };
                if !block_namespaces.contains(&key) {
                    let rule =
                        if tier != &block.security_tier { Rule::TierSeparation } else { Rule::NamespaceAccounting };
                    self.push(
                        rule,
                        format!("wave {number} moves namespace {}/{} of block {datacenter}/{tier}", key.0, key.1),
                    );
                    continue;
                }
                if let Some(first) = namespace_wave.get(&key) {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!("namespace {}/{} moves twice, in waves {first} and {number}", key.0, key.1),
                    );
                    continue;
                }
                namespace_wave.insert(key, number);
                if !targets.contains(namespace_move.to_cluster.as_str()) {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "wave {number} moves namespace {}/{} to {:?}, which is not a target of the block",
                            key.0, key.1, namespace_move.to_cluster
                        ),
                    );
                    continue;
                }
                if namespace_move.sla_tier != info.namespace.sla_tier
                    || namespace_move.requests != info.namespace.requests
                {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "wave {number} states namespace {}/{} as {} with {:?}, the inventory says {} with {:?}",
                            key.0,
                            key.1,
                            namespace_move.sla_tier,
                            namespace_move.requests,
                            info.namespace.sla_tier,
                            info.namespace.requests
                        ),
                    );
                }
                moves.namespaces.insert(key, namespace_move.to_cluster.as_str());
            }
            waves.push(moves);
        }
        self.add_addon_installs(&mut waves, &mut namespace_wave);
        let unmoved: Vec<String> =
            block_nodes.iter().filter(|key| !node_wave.contains_key(*key)).map(|(c, n)| format!("{c}/{n}")).collect();
        if !unmoved.is_empty() {
            self.push(
                Rule::NodeAccounting,
                format!("{} node(s) of the block move in no wave: {}", unmoved.len(), short_list(&unmoved)),
            );
        }
        let unmoved: Vec<String> = block_namespaces
            .iter()
            .filter(|key| !namespace_wave.contains_key(*key))
            .map(|(c, n)| format!("{c}/{n}"))
            .collect();
        if !unmoved.is_empty() {
            self.push(
                Rule::NamespaceAccounting,
                format!(
                    "{} namespace(s) of the block move in no wave (they would be lost): {}",
                    unmoved.len(),
                    short_list(&unmoved)
                ),
            );
        }
        waves
    }

    /// A target's control plane exists before anything else joins it: every
    /// node and namespace of a target moves in a wave no earlier than the last
    /// of its control-plane nodes (within a wave, the control plane joins first).
    pub(super) fn check_control_plane_first(&mut self, waves: &[WaveMoves<'a>]) {
        for target in &self.block.target_clusters {
            let name = target.name.as_str();
            let control_plane: BTreeSet<NodeKey<'_>> =
                target.control_plane.iter().map(|cp| (cp.cluster_id.as_str(), cp.node.as_str())).collect();
            // The wave in which the last control-plane node joins.
            let mut ready: Option<usize> = None;
            let mut seen = 0usize;
            for (position, moves) in waves.iter().enumerate() {
                seen += control_plane.iter().filter(|key| moves.joins.get(*key) == Some(&name)).count();
                if seen == control_plane.len() && !control_plane.is_empty() {
                    ready = Some(position + 1);
                    break;
                }
            }
            let Some(ready) = ready else {
                if !control_plane.is_empty() {
                    self.push(
                        Rule::ControlPlaneFirst,
                        format!("the control-plane nodes of target {name} do not all join it in a wave"),
                    );
                }
                continue;
            };
            for (position, moves) in waves.iter().enumerate().take(ready - 1) {
                let number = position + 1;
                let nodes: Vec<String> = moves
                    .joins
                    .iter()
                    .filter(|(key, to)| **to == name && !control_plane.contains(*key))
                    .map(|((cluster, node), _)| format!("{cluster}/{node}"))
                    .collect();
                let namespaces: Vec<String> = moves
                    .namespaces
                    .iter()
                    .filter(|(_, to)| **to == name)
                    .map(|((cluster, namespace), _)| format!("{cluster}/{namespace}"))
                    .collect();
                if !nodes.is_empty() || !namespaces.is_empty() {
                    let what: Vec<String> = nodes.into_iter().chain(namespaces).collect();
                    self.push(
                        Rule::ControlPlaneFirst,
                        format!(
                            "wave {number} moves {} into target {name} before its control plane is complete (wave {ready}): {}",
                            what.len(),
                            short_list(&what)
                        ),
                    );
                }
            }
        }
    }

    /// Each target's add-on installs, as moves of the add-on's largest instance
    /// into the target in the install wave.
    fn add_addon_installs(
        &mut self,
        waves: &mut [WaveMoves<'a>],
        namespace_wave: &mut BTreeMap<NamespaceKey<'a>, u64>,
    ) {
        let block = self.block;
        let largest = self.index.addons.get(&self.key).cloned().unwrap_or_default();
        for target in &block.target_clusters {
            for addon in &target.addons {
                let key = (addon.sized_from.as_str(), addon.namespace.as_str());
                if !largest.contains(&key) {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "target {} installs add-on {} sized from {}, which is not the largest instance of an add-on of the block",
                            target.name, key.1, key.0
                        ),
                    );
                    continue;
                }
                if addon.wave == 0 || addon.wave > waves.len() as u64 {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "target {} installs add-on {} in wave {}, not a wave of the block",
                            target.name, key.1, addon.wave
                        ),
                    );
                    continue;
                }
                if let Some(first) = namespace_wave.get(&key) {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!("add-on {}/{} moves twice, in waves {first} and {}", key.0, key.1, addon.wave),
                    );
                    continue;
                }
                let requests = self.index.namespaces[&key].namespace.requests;
                if addon.requests != requests {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "target {} reserves {:?} for add-on {}, its largest instance ({}) requests {:?}",
                            target.name, addon.requests, key.1, key.0, requests
                        ),
                    );
                }
                namespace_wave.insert(key, addon.wave);
                waves[addon.wave as usize - 1].namespaces.insert(key, target.name.as_str());
            }
        }
    }

    pub(super) fn check_budgets(&mut self) {
        let budget = self.policy.wave_budget;
        for (position, wave) in self.block.waves.iter().enumerate() {
            let number = position + 1;
            if wave.nodes.len() as u64 > budget.nodes {
                self.push(
                    Rule::Budget,
                    format!(
                        "wave {number} moves {} nodes, over the budget of {} per wave",
                        wave.nodes.len(),
                        budget.nodes
                    ),
                );
            }
            if wave.namespaces.len() as u64 > budget.namespaces {
                self.push(
                    Rule::Budget,
                    format!(
                        "wave {number} moves {} namespaces, over the budget of {} per wave",
                        wave.namespaces.len(),
                        budget.namespaces
                    ),
                );
            }
        }
    }

    pub(super) fn check_sla_order(&mut self) {
        let block_namespaces = self.block_namespaces();
        // tier -> (first wave, last wave) over the block's namespace moves
        let mut span: BTreeMap<SlaTier, (u64, u64)> = BTreeMap::new();
        for (position, wave) in self.block.waves.iter().enumerate() {
            let number = position as u64 + 1;
            for namespace_move in &wave.namespaces {
                let key = self.move_key(namespace_move);
                if !block_namespaces.contains(&key) {
                    continue;
                }
                let tier = self.index.namespaces[&key].namespace.sla_tier;
                let entry = span.entry(tier).or_insert((number, number));
                entry.0 = entry.0.min(number);
                entry.1 = entry.1.max(number);
            }
        }
        // An add-on is installed no later than the first namespace moving into its target.
        for target in &self.block.target_clusters {
            let first = self
                .block
                .waves
                .iter()
                .position(|wave| wave.namespaces.iter().any(|m| m.to_cluster == target.name))
                .map(|position| position as u64 + 1);
            for addon in target.addons.iter().filter(|addon| first.is_some_and(|first| addon.wave > first)) {
                self.push(
                    Rule::SlaOrder,
                    format!(
                        "add-on {} is installed on {} in wave {}, after namespaces move into it in wave {}",
                        addon.namespace,
                        target.name,
                        addon.wave,
                        first.unwrap_or_default()
                    ),
                );
            }
        }
        let order = &self.policy.sla_order;
        for (i, earlier) in order.iter().enumerate() {
            for later in &order[i + 1..] {
                if let (Some(&(_, last_earlier)), Some(&(first_later, _))) = (span.get(earlier), span.get(later))
                    && last_earlier > first_later
                {
                    self.push(
                        Rule::SlaOrder,
                        format!(
                            "a {earlier} namespace moves in wave {last_earlier}, after a {later} namespace in wave {first_later} ({earlier} moves first)"
                        ),
                    );
                }
            }
        }
    }

    pub(super) fn check_retirement(&mut self) {
        let block = self.block;
        let n_waves = block.waves.len() as u64;
        let block_nodes = self.block_nodes();
        let block_namespaces = self.block_namespaces();
        // The block's sources it owns, and the last wave each has something moving.
        let mut owned: BTreeMap<&'a str, u64> = BTreeMap::new();
        for &(cluster, _) in block_nodes.iter().chain(block_namespaces.iter()) {
            if self.index.owner.get(cluster) == Some(&self.key) {
                owned.insert(cluster, 0);
            }
        }
        let mut node_wave: BTreeMap<NodeKey<'a>, u64> = BTreeMap::new();
        for (position, wave) in block.waves.iter().enumerate() {
            let number = position as u64 + 1;
            for node_move in &wave.nodes {
                let key = (node_move.cluster_id.as_str(), node_move.node.as_str());
                if block_nodes.contains(&key) {
                    node_wave.entry(key).or_insert(number);
                    if let Some(last) = owned.get_mut(key.0) {
                        *last = (*last).max(number);
                    }
                }
            }
            for namespace_move in &wave.namespaces {
                let key = self.move_key(namespace_move);
                if block_namespaces.contains(&key)
                    && let Some(last) = owned.get_mut(key.0)
                {
                    *last = (*last).max(number);
                }
            }
        }
        let mut retired: BTreeMap<&'a str, u64> = BTreeMap::new();
        for (position, wave) in block.waves.iter().enumerate() {
            let number = position as u64 + 1;
            for cluster in &wave.clusters_retired {
                let cluster = cluster.as_str();
                if let Some(first) = retired.get(cluster) {
                    self.push(
                        Rule::Retirement,
                        format!("cluster {cluster} is retired twice, in waves {first} and {number}"),
                    );
                    continue;
                }
                match self.index.owner.get(cluster) {
                    None => {
                        self.push(
                            Rule::Retirement,
                            format!("wave {number} retires {cluster}, which is not in the inventory"),
                        );
                        continue;
                    }
                    Some(owner) if *owner != self.key => {
                        self.push(
                            Rule::Retirement,
                            format!("wave {number} retires {cluster}, which belongs to block {}/{}", owner.0, owner.1),
                        );
                        continue;
                    }
                    Some(_) => {}
                }
                retired.insert(cluster, number);
                if let Some(&emptied) = owned.get(cluster)
                    && emptied > 0
                    && emptied != number
                {
                    let detail = if emptied > number {
                        format!(
                            "cluster {cluster} is retired at the end of wave {number} but still has nodes or namespaces moving in wave {emptied}"
                        )
                    } else {
                        format!(
                            "cluster {cluster} is empty after wave {emptied} but retired only at the end of wave {number}"
                        )
                    };
                    self.push(Rule::Retirement, detail);
                }
            }
        }
        for cluster in owned.keys() {
            if !retired.contains_key(cluster) {
                self.push(
                    Rule::Retirement,
                    format!("source cluster {cluster} is not retired by the last wave ({n_waves})"),
                );
            }
        }
        // A source's control-plane nodes move only in its retirement wave.
        for (key, wave) in &node_wave {
            let info = &self.index.nodes[key];
            if info.node.role != NodeRole::ControlPlane || self.index.owner.get(key.0) != Some(&self.key) {
                continue;
            }
            match retired.get(key.0) {
                Some(retirement) if retirement == wave => {}
                Some(retirement) => self.push(
                    Rule::Retirement,
                    format!(
                        "control-plane node {}/{} moves in wave {wave}, but its cluster is retired in wave {retirement}",
                        key.0, key.1
                    ),
                ),
                None => self.push(
                    Rule::Retirement,
                    format!("control-plane node {}/{} moves in wave {wave}, but its cluster is never retired", key.0, key.1),
                ),
            }
        }
    }
}
