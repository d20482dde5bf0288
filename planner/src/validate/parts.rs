//! Namespaces that move in parts (docs/plan-semantics.md, "Parts"), checked
//! from the plan's `NamespaceMove::part` and the inventory alone.
//!
//! Each part the plan moves becomes a namespace of its own for the rest of
//! the validator (`shop (part 2 of 3)`): the inventory's namespace with the
//! part's replicas of each workload (a workload's pod groups are filled in
//! inventory order, part after part) and their requests (the last part also
//! carries what no pod group describes). So capacity, SLA order, budgets and
//! the scheduler's filters see exactly what is where at every moment. This
//! file then checks what ties the parts: together they are the namespace's
//! pods, they move to one target under one name, one after the other, and no
//! part takes more pods of a PodDisruptionBudget down than it allows, unless
//! a `disruption-budget` precondition names the budget.

use super::*;

/// The parts the plan moves, as namespaces of their own (owned here, borrowed
/// by the index).
pub(super) struct PartNamespaces {
    /// (cluster, namespace, part index, the part as a namespace).
    pub(super) list: Vec<(String, String, u32, Namespace)>,
}

/// The part's name for the validator's bookkeeping and messages.
pub(super) fn part_name(namespace: &str, index: u32, of: u32) -> String {
    format!("{namespace} (part {index} of {of})")
}

impl PartNamespaces {
    pub(super) fn new(inventory: &[ClusterSnapshot], plan: &Plan) -> PartNamespaces {
        // (cluster, namespace) -> its parts in index order.
        let mut moved: BTreeMap<(&str, &str), BTreeMap<u32, &MovePart>> = BTreeMap::new();
        for wave in plan.blocks.iter().flat_map(|b| &b.waves) {
            for m in &wave.namespaces {
                if let Some(part) = &m.part {
                    moved.entry((m.from_cluster.as_str(), m.namespace.as_str())).or_default().insert(part.index, part);
                }
            }
        }
        let mut list = Vec::new();
        for ((cluster, name), parts) in moved {
            let Some(namespace) = inventory
                .iter()
                .find(|c| c.cluster_id == cluster)
                .and_then(|c| c.namespaces.iter().find(|n| n.name == name))
            else {
                continue;
            };
            // Per pod group, replicas not yet given to a part.
            let mut left: Vec<u64> = namespace.pod_groups.iter().map(|g| g.replicas).collect();
            let grouped: Resources = namespace.pod_groups.iter().map(|g| g.requests.scaled(g.replicas)).sum();
            for (&index, part) in &parts {
                let mut groups = Vec::new();
                let mut requests = Resources::ZERO;
                for take in &part.workloads {
                    let mut wanted = take.replicas;
                    for (g, group) in namespace.pod_groups.iter().enumerate() {
                        if wanted == 0 {
                            break;
                        }
                        if group.workload() != take.workload || left[g] == 0 {
                            continue;
                        }
                        let n = wanted.min(left[g]);
                        left[g] -= n;
                        wanted -= n;
                        requests = requests.saturating_add(group.requests.scaled(n));
                        groups.push(kplan_model::scheduling::PodGroup { replicas: n, ..group.clone() });
                    }
                }
                if index == part.of {
                    requests = requests.saturating_add(namespace.requests.saturating_sub(grouped));
                }
                let part_namespace = Namespace {
                    name: part_name(name, index, part.of),
                    requests,
                    pod_groups: groups,
                    ..namespace.clone()
                };
                list.push((cluster.to_string(), name.to_string(), index, part_namespace));
            }
        }
        PartNamespaces { list }
    }
}

impl<'a> Index<'a> {
    /// Puts the parts in the index: each a namespace of the whole's block,
    /// which then expects its parts to move instead of the whole.
    pub(super) fn add_parts(&mut self, parts: &'a PartNamespaces) {
        for (cluster, name, index, namespace) in &parts.list {
            let Some((&whole_key, whole)) = self.namespaces.get_key_value(&(cluster.as_str(), name.as_str())) else {
                continue;
            };
            let block = whole.block.clone();
            let key = (whole_key.0, namespace.name.as_str());
            if let Some(block) = &block
                && let Some(members) = self.blocks.get_mut(block)
                && members.namespaces.contains(&whole_key)
            {
                members.namespaces.insert(key);
            }
            self.part_names.insert((whole_key.0, whole_key.1, *index), namespace.name.as_str());
            self.parts_of.entry(whole_key).or_default().push(key);
            self.namespaces.insert(key, NamespaceInfo { namespace, block });
        }
        for (whole, _) in self.parts_of.iter() {
            if let Some(block) = self.namespaces.get(whole).and_then(|info| info.block.clone())
                && let Some(members) = self.blocks.get_mut(&block)
            {
                members.namespaces.remove(whole);
            }
        }
    }
}

impl<'a, 'p> BlockCheck<'a, 'p>
where
    'a: 'p,
{
    /// The key a namespace move counts under: its part's, when it moves one.
    pub(super) fn move_key(&self, m: &'a NamespaceMove) -> NamespaceKey<'a> {
        let whole = (m.from_cluster.as_str(), m.namespace.as_str());
        match &m.part {
            Some(part) => match self.index.part_names.get(&(whole.0, whole.1, part.index)) {
                Some(&name) => (whole.0, name),
                None => whole,
            },
            None => whole,
        }
    }

    /// Whether the whole namespace `key` moves in this block (itself or its parts).
    pub(super) fn moves_here(&self, block_namespaces: &BTreeSet<NamespaceKey<'a>>, key: NamespaceKey<'a>) -> bool {
        block_namespaces.contains(&key)
            || self.index.parts_of.get(&key).is_some_and(|parts| parts.iter().any(|p| block_namespaces.contains(p)))
    }

    /// What ties the parts of a namespace, and its disruption budgets.
    pub(super) fn check_parts(&mut self) {
        let block = self.block;
        let block_namespaces = self.block_namespaces();
        // (cluster, namespace) -> [(index, of, wave, target, final name, workloads)]
        type Seen<'x> = Vec<(u32, u32, u64, &'x str, &'x str, &'x [PartWorkload])>;
        let mut parts: BTreeMap<NamespaceKey<'a>, Seen<'a>> = BTreeMap::new();
        let mut whole_moves: Vec<(NamespaceKey<'a>, u64)> = Vec::new();
        for wave in &block.waves {
            for m in &wave.namespaces {
                let key = (m.from_cluster.as_str(), m.namespace.as_str());
                match &m.part {
                    Some(part) => parts.entry(key).or_default().push((
                        part.index,
                        part.of,
                        wave.index,
                        m.to_cluster.as_str(),
                        m.new_name.as_str(),
                        part.workloads.as_slice(),
                    )),
                    None if block_namespaces.contains(&key) => whole_moves.push((key, wave.index)),
                    None => {}
                }
            }
        }
        let relaxed: BTreeSet<(&str, &str)> = block
            .preconditions
            .iter()
            .filter(|p| p.kind == PreconditionKind::DisruptionBudget)
            .flat_map(|p| p.claims.iter().map(move |c| (p.cluster_id.as_str(), c.as_str())))
            .collect();
        for (key, mut seen) in parts {
            let Some(info) = self.index.namespaces.get(&key) else { continue };
            let namespace = info.namespace;
            let what = format!("namespace {}/{}", key.0, key.1);
            seen.sort_by_key(|s| s.0);
            let of = seen[0].1;
            let indices: Vec<u32> = seen.iter().map(|s| s.0).collect();
            if indices != (1..=of).collect::<Vec<u32>>() || seen.iter().any(|s| s.1 != of) {
                self.push(
                    Rule::NamespaceAccounting,
                    format!("{what} moves parts {indices:?} of {of}: each part exactly once"),
                );
            }
            if seen.iter().any(|s| s.3 != seen[0].3 || s.4 != seen[0].4) {
                self.push(Rule::NamespaceAccounting, format!("{what} moves its parts to different targets or names"));
            }
            for pair in seen.windows(2) {
                if pair[1].2 <= pair[0].2 {
                    self.push(
                        Rule::NamespaceAccounting,
                        format!(
                            "{what}: part {} moves in wave {}, not after part {} (wave {})",
                            pair[1].0, pair[1].2, pair[0].0, pair[0].2
                        ),
                    );
                }
            }
            // Together the parts are the namespace's pods, workload by workload.
            let mut stated: BTreeMap<String, u64> = BTreeMap::new();
            for w in seen.iter().flat_map(|s| s.5.iter()) {
                *stated.entry(w.workload.clone()).or_default() += w.replicas;
            }
            let mut actual: BTreeMap<String, u64> = BTreeMap::new();
            for g in &namespace.pod_groups {
                *actual.entry(g.workload()).or_default() += g.replicas;
            }
            if stated != actual {
                let differ: Vec<String> = actual
                    .keys()
                    .chain(stated.keys())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|w| stated.get(*w) != actual.get(*w))
                    .map(|w| format!("{w}: {} moved of {}", stated.get(w).unwrap_or(&0), actual.get(w).unwrap_or(&0)))
                    .collect();
                self.push(
                    Rule::NamespaceAccounting,
                    format!("{what}: its parts do not move exactly its pods ({})", short_list(&differ)),
                );
            }
            // Disruption budgets, part by part.
            for s in &seen {
                let moved: BTreeMap<&str, u64> = s.5.iter().map(|w| (w.workload.as_str(), w.replicas)).collect();
                self.check_budgets_of(namespace, key, &moved, s.2, &relaxed, &format!(" (part {} of {of})", s.0));
            }
        }
        // A namespace moved whole takes all its pods down at once.
        for (key, wave) in whole_moves {
            let Some(info) = self.index.namespaces.get(&key) else { continue };
            let namespace = info.namespace;
            let mut moved: BTreeMap<String, u64> = BTreeMap::new();
            for g in &namespace.pod_groups {
                *moved.entry(g.workload()).or_default() += g.replicas;
            }
            let moved: BTreeMap<&str, u64> = moved.iter().map(|(w, n)| (w.as_str(), *n)).collect();
            self.check_budgets_of(namespace, key, &moved, wave, &relaxed, "");
        }
    }

    fn check_budgets_of(
        &mut self,
        namespace: &Namespace,
        key: NamespaceKey<'a>,
        moved: &BTreeMap<&str, u64>,
        wave: u64,
        relaxed: &BTreeSet<(&str, &str)>,
        part: &str,
    ) {
        for budget in &namespace.disruption_budgets {
            let expected: u64 = namespace
                .pod_groups
                .iter()
                .filter(|g| budget.workloads.contains(&g.workload()))
                .map(|g| g.replicas)
                .sum();
            let down: u64 = budget.workloads.iter().filter_map(|w| moved.get(w.as_str())).sum();
            let allowed = budget.allowed_disruptions(expected);
            let named = format!("{}/{}", namespace.name, budget.name);
            if down > allowed && !relaxed.contains(&(key.0, named.as_str())) {
                self.push(
                    Rule::DisruptionBudget,
                    format!(
                        "wave {wave} moves {down} pods of PodDisruptionBudget {}/{named} ({}, {allowed} of {expected} may be down) at once{part}, and no disruption-budget precondition names it",
                        key.0,
                        budget.rule()
                    ),
                );
            }
        }
    }
}
