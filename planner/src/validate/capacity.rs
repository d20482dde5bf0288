//! Capacity with headroom at every moment of every wave, and the figures a plan reports.

use super::*;

impl<'a, 'p> BlockCheck<'a, 'p>
where
    'a: 'p,
{
    /// Replays the waves and checks capacity with headroom at every moment, and
    /// the plan's stated capacity figures.
    pub(super) fn replay_capacity(&mut self, waves: &[WaveMoves<'a>]) {
        let block = self.block;
        let small = self.is_small_site();
        let dedicated = self.policy.dedicated_control_plane && !small;
        let index = self.index;

        let mut source_nodes: BTreeMap<&'a str, BTreeSet<NodeKey<'a>>> = BTreeMap::new();
        let mut source_namespaces: BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>> = BTreeMap::new();
        for key in self.block_nodes() {
            source_nodes.entry(key.0).or_default().insert(key);
            source_namespaces.entry(key.0).or_default();
        }
        for key in self.block_namespaces() {
            source_namespaces.entry(key.0).or_default().insert(key);
            source_nodes.entry(key.0).or_default();
        }
        // Foreign sources (no node in the block) are reported, not checked.
        let checked_sources: BTreeSet<&'a str> =
            source_nodes.iter().filter(|(_, nodes)| !nodes.is_empty()).map(|(c, _)| *c).collect();

        let mut target_nodes: BTreeMap<&'a str, BTreeSet<NodeKey<'a>>> = BTreeMap::new();
        let mut target_namespaces: BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>> = BTreeMap::new();
        let mut control_plane: BTreeSet<NodeKey<'a>> = BTreeSet::new();
        for target in &block.target_clusters {
            target_nodes.entry(target.name.as_str()).or_default();
            target_namespaces.entry(target.name.as_str()).or_default();
            control_plane.extend(target.control_plane.iter().map(|cp| (cp.cluster_id.as_str(), cp.node.as_str())));
        }

        let node_allocatable = |key: &NodeKey<'a>| index.nodes.get(key).map(|i| i.node.allocatable).unwrap_or_default();
        let namespace_requests =
            |key: &NamespaceKey<'a>| index.namespaces.get(key).map(|i| i.namespace.requests).unwrap_or_default();

        type PodStates<'x> = Vec<(Side<'x>, Vec<&'x kplan_model::Node>, Vec<&'x kplan_model::Namespace>)>;
        // cluster -> (workload allocatable, demand)
        type Capacities<'x> = BTreeMap<Side<'x>, (Resources, Resources)>;
        let snapshot = |source_nodes: &BTreeMap<&'a str, BTreeSet<NodeKey<'a>>>,
                        source_namespaces: &BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>>,
                        target_nodes: &BTreeMap<&'a str, BTreeSet<NodeKey<'a>>>,
                        target_namespaces: &BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>>,
                        moving: Option<&WaveMoves<'a>>|
         -> Capacities<'a> {
            let mut capacities = Capacities::new();
            for (cluster, nodes) in source_nodes {
                let allocatable: Resources = nodes
                    .iter()
                    .filter(|key| index.nodes[*key].node.role != NodeRole::ControlPlane)
                    .filter(|key| moving.is_none_or(|m| !m.nodes.contains(*key)))
                    .map(node_allocatable)
                    .sum();
                let demand: Resources = source_namespaces[cluster].iter().map(namespace_requests).sum();
                capacities.insert(Side::Source(cluster), (allocatable, demand));
            }
            for (target, nodes) in target_nodes {
                let allocatable: Resources =
                    nodes.iter().filter(|key| !(dedicated && control_plane.contains(*key))).map(node_allocatable).sum();
                let mut demand: Resources = target_namespaces[target].iter().map(namespace_requests).sum();
                if let Some(moving) = moving {
                    demand = demand.saturating_add(
                        moving
                            .namespaces
                            .iter()
                            .filter(|(_, t)| *t == target)
                            .map(|(key, _)| namespace_requests(key))
                            .sum(),
                    );
                }
                capacities.insert(Side::Target(target), (allocatable, demand));
            }
            capacities
        };

        // The pods of each cluster on its workload nodes, at one moment (the same
        // nodes and namespaces the capacity figures count).
        let pod_states = |source_nodes: &BTreeMap<&'a str, BTreeSet<NodeKey<'a>>>,
                          source_namespaces: &BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>>,
                          target_nodes: &BTreeMap<&'a str, BTreeSet<NodeKey<'a>>>,
                          target_namespaces: &BTreeMap<&'a str, BTreeSet<NamespaceKey<'a>>>,
                          moving: Option<&WaveMoves<'a>>|
         -> PodStates<'a> {
            let mut states = PodStates::new();
            for (cluster, nodes) in source_nodes {
                if !checked_sources.contains(cluster) {
                    continue;
                }
                let nodes = nodes
                    .iter()
                    .filter(|key| index.nodes[*key].node.role != NodeRole::ControlPlane)
                    .filter(|key| moving.is_none_or(|m| !m.nodes.contains(*key)))
                    .map(|key| index.nodes[key].node)
                    .collect();
                let namespaces = source_namespaces[cluster]
                    .iter()
                    .filter_map(|k| index.namespaces.get(k))
                    .map(|i| i.namespace)
                    .collect();
                states.push((Side::Source(cluster), nodes, namespaces));
            }
            for (target, nodes) in target_nodes {
                let nodes = nodes
                    .iter()
                    .filter(|key| !(dedicated && control_plane.contains(*key)))
                    .map(|key| index.nodes[key].node)
                    .collect();
                let mut namespaces: Vec<&'a kplan_model::Namespace> = target_namespaces[target]
                    .iter()
                    .filter_map(|k| index.namespaces.get(k))
                    .map(|i| i.namespace)
                    .collect();
                if let Some(moving) = moving {
                    namespaces.extend(
                        moving
                            .namespaces
                            .iter()
                            .filter(|(_, t)| *t == target)
                            .filter_map(|(k, _)| index.namespaces.get(k))
                            .map(|i| i.namespace),
                    );
                }
                states.push((Side::Target(target), nodes, namespaces));
            }
            states
        };

        for (position, moves) in waves.iter().enumerate() {
            let number = position as u64 + 1;
            let wave = &block.waves[position];
            let before = snapshot(&source_nodes, &source_namespaces, &target_nodes, &target_namespaces, None);
            let during = snapshot(&source_nodes, &source_namespaces, &target_nodes, &target_namespaces, Some(moves));
            let pods_during =
                pod_states(&source_nodes, &source_namespaces, &target_nodes, &target_namespaces, Some(moves));
            let in_transit = self.in_transit(moves);
            for (side, nodes, namespaces) in &pods_during {
                self.check_pods(&format!("during wave {number}"), side, nodes, namespaces, &in_transit);
            }
            for key in &moves.nodes {
                if let Some(nodes) = source_nodes.get_mut(key.0) {
                    nodes.remove(key);
                }
            }
            for (key, target) in &moves.joins {
                if let Some(nodes) = target_nodes.get_mut(target) {
                    nodes.insert(*key);
                }
            }
            for (key, target) in &moves.namespaces {
                if let Some(namespaces) = source_namespaces.get_mut(key.0) {
                    namespaces.remove(key);
                }
                if let Some(namespaces) = target_namespaces.get_mut(target) {
                    namespaces.insert(*key);
                }
            }
            let after = snapshot(&source_nodes, &source_namespaces, &target_nodes, &target_namespaces, None);
            let pods_after = pod_states(&source_nodes, &source_namespaces, &target_nodes, &target_namespaces, None);
            for (side, nodes, namespaces) in &pods_after {
                self.check_pods(&format!("after wave {number}"), side, nodes, namespaces, &BTreeSet::new());
            }
            for (moment, capacities) in [(Moment::Before, &before), (Moment::During, &during), (Moment::After, &after)]
            {
                for (side, (allocatable, demand)) in capacities {
                    if let Side::Source(cluster) = side
                        && !checked_sources.contains(cluster)
                    {
                        continue;
                    }
                    self.check_fits(&format!("{} wave {number}", moment.as_str()), side, *allocatable, *demand, "");
                }
            }
            self.check_figures(number, "capacity_before", &wave.capacity_before, &before);
            self.check_figures(number, "capacity_after", &wave.capacity_after, &after);
        }

        if self.policy.survive_zone_loss && !waves.is_empty() {
            for (target, nodes) in &target_nodes {
                let demand: Resources = target_namespaces[target].iter().map(namespace_requests).sum();
                if !has_demand(demand) {
                    continue;
                }
                let workload: Vec<&NodeKey<'a>> =
                    nodes.iter().filter(|key| !(dedicated && control_plane.contains(*key))).collect();
                let zones: BTreeSet<&str> = nodes.iter().map(|key| index.nodes[key].node.zone.as_str()).collect();
                for zone in zones {
                    let left: Resources = workload
                        .iter()
                        .filter(|key| index.nodes[**key].node.zone != zone)
                        .map(|key| node_allocatable(key))
                        .sum();
                    self.check_fits(
                        "after the last wave",
                        &Side::Target(target),
                        left,
                        demand,
                        &format!(" after losing zone {zone} (survive_zone_loss)"),
                    );
                }
            }
        }
    }

    pub(super) fn check_fits(
        &mut self,
        when: &str,
        side: &Side<'_>,
        allocatable: Resources,
        demand: Resources,
        suffix: &str,
    ) {
        if !has_demand(demand) {
            return;
        }
        let headroom = self.policy.headroom;
        let mut over = Vec::new();
        for (((name, need), (_, have)), fraction) in resource_list(demand)
            .into_iter()
            .zip(resource_list(allocatable))
            .zip([headroom.cpu, headroom.memory, headroom.pods])
        {
            let limit = (1.0 - fraction) * have as f64;
            if need as f64 > limit + 1e-9 * limit.max(1.0) {
                over.push(format!(
                    "{name} {} requested, {} allocatable, at most {} with {}% headroom",
                    resources_text(name, need),
                    resources_text(name, have),
                    resources_text(name, limit.max(0.0).floor() as u64),
                    (fraction * 100.0).round()
                ));
            }
        }
        if !over.is_empty() {
            self.push(Rule::Capacity, format!("{when}, {}{suffix} is short: {}", side.describe(), over.join("; ")));
        }
    }

    pub(super) fn check_figures(
        &mut self,
        number: u64,
        field: &str,
        stated: &[ClusterCapacity],
        computed: &BTreeMap<Side<'a>, (Resources, Resources)>,
    ) {
        // Names used by both a source and a target are ambiguous: the plan-level
        // check reports them; skip them here.
        let mut by_name: BTreeMap<&str, Vec<(Resources, Resources)>> = BTreeMap::new();
        for (side, figures) in computed {
            by_name.entry(side.name()).or_default().push(*figures);
        }
        let mut listed = BTreeSet::new();
        for capacity in stated {
            let name = capacity.cluster.as_str();
            if !listed.insert(name) {
                self.push(Rule::Capacity, format!("wave {number} {field} lists {name} twice"));
                continue;
            }
            match by_name.get(name).map(Vec::as_slice) {
                None => self.push(
                    Rule::Capacity,
                    format!("wave {number} {field} lists {name}, which is neither a source nor a target of the block"),
                ),
                Some([(allocatable, demand)]) => {
                    if capacity.allocatable != *allocatable || capacity.requested != *demand {
                        self.push(
                            Rule::Capacity,
                            format!(
                                "wave {number} {field} states {name} at allocatable {:?} / requested {:?}, the replay gives {allocatable:?} / {demand:?}",
                                capacity.allocatable, capacity.requested
                            ),
                        );
                    }
                }
                Some(_) => {}
            }
        }
        for (name, figures) in &by_name {
            let (allocatable, demand) = figures[0];
            if !listed.contains(name) && (has_demand(allocatable) || has_demand(demand)) {
                self.push(Rule::Capacity, format!("wave {number} {field} does not list {name}"));
            }
        }
    }
}
