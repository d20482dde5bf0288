//! A wave as steps people carry out (issue 15): `kplan plans runbook`.
//!
//! Pure: a [`Plan`] (and, for the post-checks, the inventory it was made
//! from) in, [`Runbook`] out. Per wave, in order:
//!
//! 1. **Preconditions** whose `before_wave` is this wave.
//! 2. **Firewall change request** (first wave of the block only: every flow
//!    of the block's targets must be open before anything joins them), one
//!    row per flow; [`firewall_csv`] writes the same rows as CSV.
//! 3. **Nodes**, one step each, control-plane nodes first: cordon and drain
//!    out of the source through the eviction API (every PodDisruptionBudget
//!    is respected; never `--disable-eviction`), remove the node object, then
//!    reset it and join the target (the first control-plane node of a new
//!    target initialises it, the others join as control plane, workers as
//!    workers; `kubeadm`, or `k3s` on a small site), or hand it back. Secrets
//!    are placeholders (`<TOKEN>`, `<CA_HASH>`, `<CERTIFICATE_KEY>`), never
//!    values. The plan joins a target's control plane no later than anything
//!    else (the validator's rule `control-plane-first`); a wave that still
//!    joins nodes to a target without one (a plan stored before the rule)
//!    gets a `BLOCKED` step saying so.
//! 4. **Add-ons**: each platform add-on a target lists for this wave is
//!    installed on it once (not moved, not renamed), after the joins and
//!    before any namespace is restored into it.
//! 5. **Isolation objects** (`kplan plans export --format manifests`,
//!    [`crate::isolation::manifests`]): per target, in the wave its first
//!    namespace arrives, `kubectl apply -k isolation/<target>/wave-0` (the
//!    cluster-scoped prerequisites) once; then, in every wave that has them,
//!    `isolation/<target>/wave-N` (the label patches, RoleBindings,
//!    NetworkPolicies and Gatekeeper Constraint of the namespaces arriving in
//!    it), before they are restored.
//! 6. **Namespaces**: a Velero `Backup` in the source and a `Restore` in the
//!    target (`namespaceMapping` when the namespace is renamed,
//!    `existingResourcePolicy: none`, node-local data through file-system
//!    backup; Velero's `change-storage-class` ConfigMap in the target when the
//!    namespace's claims use a class the policy's `storage_class_changes`
//!    replaces), then the post-checks (every pod ready, as many pods as in the
//!    source) and the cut-over (the source's namespace deleted).
//! 7. **Source clusters retired** at the end of the wave.
//!
//! Every step says how to roll it back. Every node and every namespace of a
//! wave is the subject of exactly one step (tested).

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::{BlockPlan, ClusterSnapshot, NodeAction, Plan, PreconditionKind};
use serde::Serialize;
use serde_json::{Value, json};

/// The namespace Velero runs in (its installation default).
pub const VELERO_NAMESPACE: &str = "velero";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runbook {
    pub plan_id: String,
    pub blocks: Vec<BlockRunbook>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockRunbook {
    pub datacenter: String,
    pub security_tier: String,
    pub waves: Vec<WaveRunbook>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveRunbook {
    pub wave: u64,
    pub steps: Vec<Step>,
}

/// The phases of a wave, in the order they are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Precondition,
    Firewall,
    BackupNamespace,
    DrainNode,
    JoinNode,
    InstallAddon,
    ApplyIsolation,
    RestoreNamespace,
    RetireCluster,
}

impl Phase {
    pub fn title(self) -> &'static str {
        match self {
            Phase::Precondition => "Preconditions",
            Phase::Firewall => "Firewall change request",
            Phase::BackupNamespace => "Back up the namespaces (before any node is touched)",
            Phase::DrainNode => "Drain the nodes out of their sources (source control planes last)",
            Phase::JoinNode => "Join the nodes to their targets (control plane first)",
            Phase::InstallAddon => "Install the platform add-ons on their targets (once, before namespaces move in)",
            Phase::ApplyIsolation => "Apply the isolation objects (before namespaces move in)",
            Phase::RestoreNamespace => "Restore the namespaces in their targets, check, cut over",
            Phase::RetireCluster => "Retire the source clusters",
        }
    }
}

/// What a step acts on (for the walk test and for tools).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Subject {
    Precondition {
        cluster: String,
        index: usize,
    },
    Flows {
        count: usize,
    },
    Node {
        cluster: String,
        node: String,
    },
    Namespace {
        cluster: String,
        namespace: String,
    },
    /// A platform add-on installed on the target `cluster`.
    Addon {
        cluster: String,
        namespace: String,
    },
    Cluster {
        cluster: String,
    },
    /// The isolation objects of target `cluster` for wave `wave` (0: its cluster-scoped ones).
    Isolation {
        cluster: String,
        wave: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// 1-based within the wave.
    pub number: usize,
    pub phase: Phase,
    pub subject: Subject,
    pub title: String,
    /// Shell commands, in order (kubectl contexts are named after clusters).
    pub commands: Vec<String>,
    /// Kubernetes objects to apply (Velero `Backup` and `Restore`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Value>,
    /// How to check the step worked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// How to undo it.
    pub rollback: Vec<String>,
    /// Table rows (the firewall change request).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<Vec<String>>,
}

/// The columns of the firewall change request.
pub const FIREWALL_COLUMNS: [&str; 6] =
    ["source zone", "destination zone", "protocol", "ports", "purpose", "target cluster"];

/// The runbook of `plan` (of one wave, when given). `inventory` gives the
/// post-checks their pod counts and the namespace steps their node-local
/// volumes; without it they say less.
pub fn runbook(plan: &Plan, inventory: &[ClusterSnapshot], only_wave: Option<u64>) -> Runbook {
    let clusters: BTreeMap<&str, &ClusterSnapshot> = inventory.iter().map(|c| (c.cluster_id.as_str(), c)).collect();
    // Per target, the waves with isolation objects.
    let isolation: BTreeMap<String, BTreeSet<u64>> = crate::isolation::manifests::manifests(plan, inventory)
        .into_iter()
        .map(|t| (t.target_cluster, t.waves.iter().map(|w| w.wave).collect()))
        .collect();
    let blocks = plan
        .blocks
        .iter()
        .filter(|b| !b.waves.is_empty())
        .map(|block| BlockRunbook {
            datacenter: block.datacenter.clone(),
            security_tier: block.security_tier.clone(),
            waves: block
                .waves
                .iter()
                .filter(|w| only_wave.is_none_or(|n| n == w.index))
                .map(|w| wave_runbook(plan, block, w.index, &clusters, &isolation))
                .collect(),
        })
        .filter(|b| !b.waves.is_empty())
        .collect();
    Runbook { plan_id: plan.id.clone(), blocks }
}

fn wave_runbook(
    plan: &Plan,
    block: &BlockPlan,
    index: u64,
    clusters: &BTreeMap<&str, &ClusterSnapshot>,
    isolation: &BTreeMap<String, BTreeSet<u64>>,
) -> WaveRunbook {
    let Some(wave) = block.waves.iter().find(|w| w.index == index) else {
        return WaveRunbook { wave: index, steps: Vec::new() };
    };
    let mut steps: Vec<Step> = Vec::new();
    let namespace_of =
        |cluster: &str, name: &str| clusters.get(cluster).and_then(|c| c.namespaces.iter().find(|n| n.name == name));
    // Data migrations (`migrate-data`): the claims each covers, by namespace.
    let migrations: BTreeMap<(&str, &str), &kplan_model::Precondition> = block
        .preconditions
        .iter()
        .filter(|p| p.kind == PreconditionKind::DataMigration)
        .flat_map(|p| {
            p.claims.iter().filter_map(move |c| c.split_once('/')).map(move |(ns, _)| ((p.cluster_id.as_str(), ns), p))
        })
        .collect();
    let wave_of_namespace = |cluster: &str, name: &str| {
        block
            .waves
            .iter()
            .find(|w| w.namespaces.iter().any(|m| m.from_cluster == cluster && m.namespace == name))
            .map(|w| w.index)
    };

    // 1. Preconditions due before this wave; a data migration takes its
    // backup here, while the pods still run on the nodes with their data.
    for (i, precondition) in block.preconditions.iter().enumerate().filter(|(_, p)| p.before_wave == index) {
        let kind = serde_json::to_value(precondition.kind).ok().and_then(|v| v.as_str().map(str::to_string));
        let mut commands = vec![format!("# {}", precondition.detail)];
        if !precondition.nodes.is_empty() {
            commands.push(format!("# nodes: {}", precondition.nodes.join(", ")));
        }
        let mut objects = Vec::new();
        if precondition.kind == PreconditionKind::DataMigration {
            let namespaces: BTreeSet<&str> =
                precondition.claims.iter().filter_map(|c| c.split_once('/')).map(|(ns, _)| ns).collect();
            for namespace in namespaces {
                let moves_in = wave_of_namespace(&precondition.cluster_id, namespace).unwrap_or(index);
                let name = velero_name(&plan.id, moves_in, &precondition.cluster_id, namespace);
                let (backup, _) = velero_objects(&name, namespace, namespace, VolumeData::Copy);
                commands.extend(backup_commands(&precondition.cluster_id, &name));
                commands.push(format!(
                    "# writes to {namespace} after this backup are not in it: stop its writers, or let the \
                     application replicate, until it moves in wave {moves_in}"
                ));
                objects.push(backup);
            }
        }
        let mut step = step(
            Phase::Precondition,
            Subject::Precondition { cluster: precondition.cluster_id.clone(), index: i },
            format!("{} on {}", kind.unwrap_or_default(), precondition.cluster_id),
            commands,
            vec!["# nothing to undo: the cluster keeps running as it did".to_string()],
        );
        step.objects = objects;
        steps.push(step);
    }

    // 2. The firewall change request, before anything joins a target.
    let first_wave = block.waves.first().is_some_and(|w| w.index == index);
    if first_wave && !block.firewall_flows.is_empty() {
        let rows: Vec<Vec<String>> = block
            .firewall_flows
            .iter()
            .map(|f| {
                vec![
                    f.from_zone.clone(),
                    f.to_zone.clone(),
                    f.protocol.as_str().to_string(),
                    if f.ports.is_empty() { "-".to_string() } else { f.ports.clone() },
                    f.purpose.clone(),
                    f.target_cluster.clone(),
                ]
            })
            .collect();
        let mut request = step(
            Phase::Firewall,
            Subject::Flows { count: rows.len() },
            format!("open {} flow{} between firewall zones", rows.len(), plural(rows.len())),
            vec![format!(
                "# file the change request (kplan plans runbook {} --firewall-csv) and wait until it is implemented",
                plan.id
            )],
            vec!["# close the flows again (the same rows, as a removal request)".to_string()],
        );
        request.rows = rows;
        request.checks = block
            .firewall_flows
            .iter()
            .filter(|f| f.protocol != kplan_model::Protocol::Ipip && !f.ports.is_empty())
            .take(3)
            .map(|f| {
                let port = f.ports.split('-').next().unwrap_or_default();
                format!("# from a node in {}: nc -zv <node in {}> {port}   ({})", f.from_zone, f.to_zone, f.purpose)
            })
            .collect();
        steps.push(request);
    }

    // 3. Backups of the namespaces that move, before any node is touched (a
    // file-system backup needs its pods running; a source's API must still
    // answer). Pods whose data travels with their node back up their objects
    // only: the data stays on the node's disks.
    let joining: Vec<&kplan_model::NodeMove> =
        wave.nodes.iter().filter(|m| m.action == NodeAction::DrainAndJoin).collect();
    let mut restores: Vec<Step> = Vec::new();
    // Per target, the storage class changes its restores of this wave need.
    let class_changes = plan.policy.as_ref().map(|p| &p.storage_class_changes);
    let changes_of = |namespace: Option<&kplan_model::Namespace>| -> BTreeMap<String, String> {
        namespace
            .into_iter()
            .flat_map(|n| n.pod_groups.iter().flat_map(|g| g.volumes.iter()))
            .filter_map(|v| class_changes?.get(&v.storage_class).map(|to| (v.storage_class.clone(), to.clone())))
            .collect()
    };
    let mut changes_applied: BTreeSet<&str> = BTreeSet::new();
    for namespace_move in &wave.namespaces {
        let source = namespace_move.from_cluster.as_str();
        let (from, to) = (namespace_move.namespace.as_str(), namespace_move.new_name.as_str());
        let target = namespace_move.to_cluster.as_str();
        let found = namespace_of(source, from);
        // A later part of a namespace that moves in parts: its objects are in
        // the target already; replicas move by scaling (`part_scaling`).
        if let Some(part) = namespace_move.part.as_ref().filter(|p| p.index > 1) {
            let (up, down, checks) = part_scaling(block, namespace_move, part, found);
            let mut commands = up;
            commands.push("# run the checks below, then:".to_string());
            commands.extend(down);
            if part.index == part.of {
                commands.push(format!(
                    "kubectl --context {source} delete namespace {from}   # the cut-over: its last part has moved"
                ));
            }
            let mut move_step = step(
                Phase::RestoreNamespace,
                Subject::Namespace { cluster: source.to_string(), namespace: from.to_string() },
                format!("move part {} of {} of {from} from {source} to {target}", part.index, part.of),
                commands,
                vec![format!("# scale the part's workloads back up in {source} and down in {target}")],
            );
            move_step.checks = checks;
            restores.push(move_step);
            continue;
        }
        let pinned: Vec<&kplan_model::scheduling::NodeAffinity> = found
            .into_iter()
            .flat_map(|n| n.pod_groups.iter().flat_map(|g| g.volumes.iter()))
            .filter(|v| v.pins())
            .filter_map(|v| v.node_affinity.as_ref())
            .collect();
        let travelling: Vec<&str> = joining
            .iter()
            .filter(|m| m.cluster_id == source && m.to_cluster == target)
            .filter(|m| {
                let labels =
                    clusters.get(source).and_then(|c| c.nodes.iter().find(|n| n.name == m.node)).map(|n| &n.labels);
                labels.is_some_and(|l| pinned.iter().any(|a| a.matches(l)))
            })
            .map(|m| m.node.as_str())
            .collect();
        let migration = migrations.get(&(source, from)).copied();
        let data = if migration.is_some() {
            VolumeData::Copy
        } else if !travelling.is_empty() {
            VolumeData::StaysOnNode
        } else {
            VolumeData::Snapshot
        };
        let name = velero_name(&plan.id, index, source, from);
        let (backup, restore) = velero_objects(&name, from, to, data);
        let backed_up_earlier = migration.is_some_and(|p| p.before_wave < index);
        if backed_up_earlier {
            // Taken with the data migration, in an earlier wave.
        } else {
            let mut commands = backup_commands(source, &name);
            if data == VolumeData::StaysOnNode {
                commands.insert(
                    0,
                    format!(
                        "# the data of {from} stays on the disks of {}: its objects and PersistentVolumes are backed up, not the files",
                        travelling.join(", ")
                    ),
                );
            }
            let mut backup_step = step(
                Phase::BackupNamespace,
                Subject::Namespace { cluster: source.to_string(), namespace: from.to_string() },
                format!("back up {from} in {source}"),
                commands,
                vec![format!("kubectl --context {source} -n {VELERO_NAMESPACE} delete backup/{name}")],
            );
            backup_step.objects = vec![backup];
            steps.push(backup_step);
        }
        let pods = found.map(|n| n.requests.pods);
        let mut checks =
            vec![format!("kubectl --context {target} -n {to} wait --for=condition=Ready pods --all --timeout=15m")];
        if let Some(pods) = pods {
            checks.push(format!(
                "test $(kubectl --context {target} -n {to} get pods --field-selector=status.phase=Running --no-headers | wc -l) -ge {pods}   # {pods} pods ran in {source}"
            ));
        }
        let renamed = if from != to { format!(" as {to}") } else { String::new() };
        let renamed = match &namespace_move.part {
            Some(part) => format!("{renamed} (part 1 of {}: its objects, and {})", part.of, part_words(part)),
            None => renamed,
        };
        // Claims of a class the target will not have: Velero changes it on restore.
        let changes = changes_of(found);
        let mut restore_commands = Vec::new();
        let mut restore_objects = Vec::new();
        let mut restore_rollback = Vec::new();
        if !changes.is_empty() {
            let wanted: Vec<String> = changes.iter().map(|(a, b)| format!("{a} → {b}")).collect();
            if changes_applied.insert(target) {
                // Every change of the wave into this target, in one ConfigMap.
                let all: BTreeMap<String, String> = wave
                    .namespaces
                    .iter()
                    .filter(|m| m.to_cluster == target)
                    .flat_map(|m| changes_of(namespace_of(&m.from_cluster, &m.namespace)))
                    .collect();
                let config = change_storage_class_config(target, &all);
                restore_commands.push(format!(
                    "kubectl --context {target} apply -f configmap-{}.yaml   # Velero restores {} with another storage class",
                    config["metadata"]["name"].as_str().unwrap_or_default(),
                    wanted.join(", ")
                ));
                restore_rollback.push(format!(
                    "# when the wave is done: kubectl --context {target} -n {VELERO_NAMESPACE} delete configmap {}",
                    config["metadata"]["name"].as_str().unwrap_or_default()
                ));
                restore_objects.push(config);
            } else {
                restore_commands.push(format!(
                    "# the change-storage-class ConfigMap applied above restores {} with another storage class",
                    wanted.join(", ")
                ));
            }
        }
        restore_commands.extend([
            format!("kubectl --context {target} create -f restore-{name}.yaml"),
            format!(
                "kubectl --context {target} -n {VELERO_NAMESPACE} wait --for=jsonpath='{{.status.phase}}'=Completed restore/{name} --timeout=60m"
            ),
        ]);
        match &namespace_move.part {
            // The first part: the restore brings every object; only the
            // part's replicas run in the target, the rest stay in the source.
            Some(part) => {
                let (up, down, part_checks) = part_scaling(block, namespace_move, part, found);
                restore_commands.extend(up);
                restore_commands.push("# run the checks below, then:".to_string());
                restore_commands.extend(down);
                checks = part_checks;
            }
            None => restore_commands.extend([
                "# run the checks below, then cut over:".to_string(),
                format!("kubectl --context {source} delete namespace {from}"),
            ]),
        }
        restore_rollback.splice(
            0..0,
            [
                format!("# before the cut-over: kubectl --context {target} delete namespace {to}"),
                format!("# after it: a Velero restore of backup {name} into {source}"),
            ],
        );
        restore_objects.push(restore);
        let mut restore_step = step(
            Phase::RestoreNamespace,
            Subject::Namespace { cluster: source.to_string(), namespace: from.to_string() },
            format!("move {from} from {source} to {target}{renamed}"),
            restore_commands,
            restore_rollback,
        );
        restore_step.objects = restore_objects;
        restore_step.checks = checks;
        restores.push(restore_step);
    }

    // 4. Nodes leave their sources: a source's own control-plane nodes last,
    // so that its API answers while its other nodes drain.
    let target_of: BTreeMap<&str, &kplan_model::TargetCluster> =
        block.target_clusters.iter().map(|t| (t.name.as_str(), t)).collect();
    let is_control_plane = |m: &kplan_model::NodeMove| {
        m.action == NodeAction::DrainAndJoin
            && target_of
                .get(m.to_cluster.as_str())
                .is_some_and(|t| t.control_plane.iter().any(|c| c.cluster_id == m.cluster_id && c.node == m.node))
    };
    let source_control_plane = |m: &kplan_model::NodeMove| {
        clusters
            .get(m.cluster_id.as_str())
            .and_then(|c| c.nodes.iter().find(|n| n.name == m.node))
            .is_some_and(|n| n.role == kplan_model::NodeRole::ControlPlane)
    };
    let mut leaving: Vec<&kplan_model::NodeMove> = wave.nodes.iter().collect();
    leaving.sort_by_key(|m| source_control_plane(m));
    for node_move in leaving {
        let source = &node_move.cluster_id;
        let node = &node_move.node;
        // Drained through the eviction API: every PodDisruptionBudget is
        // honoured (drain waits, never forces; no --disable-eviction).
        let mut commands = vec![
            format!("kubectl --context {source} cordon {node}"),
            format!("kubectl --context {source} drain {node} --ignore-daemonsets --delete-emptydir-data --timeout=30m"),
            format!("kubectl --context {source} delete node {node}"),
        ];
        let title = if node_move.action == NodeAction::Free {
            commands.push(format!("# hand {node} back to the hardware pool (wipe it as the bank's policy says)"));
            format!("drain {node} out of {source} and hand it back")
        } else {
            format!("drain {node} out of {source} (it joins {})", node_move.to_cluster)
        };
        steps.push(step(
            Phase::DrainNode,
            Subject::Node { cluster: source.clone(), node: node.clone() },
            title,
            commands,
            vec![
                format!("# before `delete node`: kubectl --context {source} uncordon {node}"),
                format!("# after it: rejoin {node} to {source} with a token of {source}"),
            ],
        ));
    }

    // 5. Nodes join their targets: the first control-plane node of a new
    // target initialises it, the others join as control plane, then workers.
    let mut initialised: BTreeSet<&str> = block
        .waves
        .iter()
        .filter(|w| w.index < index)
        .flat_map(|w| w.nodes.iter())
        .filter(|m| is_control_plane(m))
        .map(|m| m.to_cluster.as_str())
        .collect();
    let mut joins = joining.clone();
    joins.sort_by_key(|m| !is_control_plane(m));
    // A target whose control plane does not exist yet cannot take a node: say
    // so where it happens (only in plans stored before the validator's rule
    // `control-plane-first`).
    let mut blocked: BTreeSet<&str> = BTreeSet::new();
    for node_move in &joins {
        let target = node_move.to_cluster.as_str();
        let ready = initialised.contains(target) || joins.iter().any(|m| m.to_cluster == target && is_control_plane(m));
        if !ready && blocked.insert(target) {
            let later: BTreeSet<u64> = block
                .waves
                .iter()
                .filter(|w| w.index > index && w.nodes.iter().any(|m| m.to_cluster == target && is_control_plane(m)))
                .map(|w| w.index)
                .collect();
            let when = later.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
            steps.push(step(
                Phase::JoinNode,
                Subject::Cluster { cluster: target.to_string() },
                format!("BLOCKED: {target} has no control plane yet"),
                vec![format!(
                    "# the plan joins {target}'s control-plane nodes only in wave {when}; nodes and namespaces \
                     cannot join it before. Bring its control-plane nodes forward (or build it on other \
                     hardware first) before carrying out this wave"
                )],
                Vec::new(),
            ));
        }
    }
    for node_move in joins {
        let node = &node_move.node;
        let target = node_move.to_cluster.as_str();
        let k3s = target_of.get(target).is_some_and(|t| t.small_site);
        let version = target_of.get(target).map(|t| t.kubernetes_version.clone()).unwrap_or_default();
        let endpoint = format!("<{target}-API-ENDPOINT>:6443");
        let control_plane = is_control_plane(node_move);
        let first = control_plane && initialised.insert(target);
        let (what, join) = match (control_plane, first, k3s) {
            (true, true, true) => (
                "initialise",
                format!("curl -sfL https://get.k3s.io | INSTALL_K3S_CHANNEL={version} sh -s - server --cluster-init"),
            ),
            (true, true, false) => (
                "initialise",
                format!(
                    "kubeadm init --kubernetes-version {version} --control-plane-endpoint {endpoint} --upload-certs"
                ),
            ),
            (true, false, true) => (
                "join as a server",
                format!("curl -sfL https://get.k3s.io | K3S_TOKEN=<TOKEN> sh -s - server --server https://{endpoint}"),
            ),
            (true, false, false) => (
                "join as control plane",
                format!(
                    "kubeadm join {endpoint} --token <TOKEN> --discovery-token-ca-cert-hash sha256:<CA_HASH> --control-plane --certificate-key <CERTIFICATE_KEY>"
                ),
            ),
            (false, _, true) => (
                "join as an agent",
                format!("curl -sfL https://get.k3s.io | K3S_URL=https://{endpoint} K3S_TOKEN=<TOKEN> sh -"),
            ),
            (false, _, false) => (
                "join as a worker",
                format!("kubeadm join {endpoint} --token <TOKEN> --discovery-token-ca-cert-hash sha256:<CA_HASH>"),
            ),
        };
        steps.push(step(
            Phase::JoinNode,
            Subject::Node { cluster: node_move.cluster_id.clone(), node: node.clone() },
            format!("{node} joins {target} ({what})"),
            vec![
                // The source's kubelet and CNI configuration go; disks with local volumes stay.
                format!("ssh {node} '<reset the {} node: kubeadm reset --force, or k3s-killall.sh && k3s-uninstall.sh>'", node_move.cluster_id),
                format!("ssh {node} 'rm -rf /etc/cni/net.d'"),
                format!("ssh {node} '{join}'"),
                format!("kubectl --context {target} wait --for=condition=Ready node/{node} --timeout=10m"),
            ],
            vec![format!(
                "kubectl --context {target} drain {node} --ignore-daemonsets --delete-emptydir-data && kubectl --context {target} delete node {node}; reset it and rejoin it to {}",
                node_move.cluster_id
            )],
        ));
    }

    // 6. Platform add-ons, installed once on their targets before namespaces move in.
    for target in &block.target_clusters {
        for addon in target.addons.iter().filter(|a| a.wave == index) {
            steps.push(addon_step(target, addon));
        }
    }

    // 7. The isolation objects of the namespaces arriving in this wave (and,
    // in a target's first wave with namespaces, its cluster-scoped ones).
    for target in &block.target_clusters {
        let Some(waves) = isolation.get(&target.name) else { continue };
        let first_arrival =
            block.waves.iter().find(|w| w.namespaces.iter().any(|m| m.to_cluster == target.name)).map(|w| w.index);
        let mut due = Vec::new();
        if first_arrival == Some(index) && waves.contains(&crate::isolation::manifests::CLUSTER_SCOPED_WAVE) {
            due.push(crate::isolation::manifests::CLUSTER_SCOPED_WAVE);
        }
        if waves.contains(&index) {
            due.push(index);
        }
        for wave in due {
            steps.push(isolation_step(&target.name, wave));
        }
    }

    // 8. Restores, checks and cut-over.
    steps.extend(restores);

    // 9. Sources with nothing left retire.
    for cluster in &wave.clusters_retired {
        steps.push(step(
            Phase::RetireCluster,
            Subject::Cluster { cluster: cluster.clone() },
            format!("retire {cluster}"),
            vec![
                format!("kubectl --context {cluster} get namespaces,nodes   # nothing of the workloads is left"),
                format!("# remove {cluster}'s kplan-agent, DNS, monitoring and kubeconfig entries"),
            ],
            vec![format!("# {cluster} keeps its etcd backups: restore them to bring it back")],
        ));
    }
    steps.sort_by_key(|s| s.phase);
    for (i, step) in steps.iter_mut().enumerate() {
        step.number = i + 1;
    }
    WaveRunbook { wave: index, steps }
}

/// The step that applies the isolation objects of `target` for `wave`.
fn isolation_step(target: &str, wave: u64) -> Step {
    let dir = format!("isolation/{target}/wave-{wave}");
    let (title, rollback) = if wave == crate::isolation::manifests::CLUSTER_SCOPED_WAVE {
        (
            format!("apply the cluster-scoped isolation objects to {target}: `kubectl apply -k {dir}`"),
            format!("kubectl --context {target} delete -k {dir}   # only once no later wave's objects are applied"),
        )
    } else {
        (
            format!("apply the isolation objects of wave {wave} to {target}: `kubectl apply -k {dir}`"),
            format!(
                "kubectl --context {target} delete -k {dir}   # before the restores only: it deletes the namespaces it labels"
            ),
        )
    };
    let mut commands =
        vec![format!("kubectl --context {target} apply -k {dir}   # from kplan plans export --format manifests")];
    if wave != crate::isolation::manifests::CLUSTER_SCOPED_WAVE {
        // The label patches create the arriving namespaces; a Velero restore
        // leaves a namespace that exists as it is.
        commands.push(format!(
            "# this creates the namespaces arriving in wave {wave} with kplan's labels; Velero restores into them without the source namespace's own labels: add by hand those a policy selects"
        ));
    }
    let mut apply = step(
        Phase::ApplyIsolation,
        Subject::Isolation { cluster: target.to_string(), wave },
        title,
        commands,
        vec![rollback],
    );
    apply.checks = vec![format!("kubectl --context {target} get -k {dir}")];
    apply
}

/// The step that installs `addon` on `target`.
fn addon_step(target: &kplan_model::TargetCluster, addon: &kplan_model::AddonInstall) -> Step {
    let (name, cluster) = (addon.namespace.as_str(), target.name.as_str());
    let versions = addon.versions();
    let clusters: Vec<&str> = addon.instances.iter().map(|i| i.cluster_id.as_str()).collect();
    let mut commands = vec![format!(
        "# {name} runs in {} ({}; {}): install it on {cluster} once, from the chart or manifests the sources were installed from, sized like {}'s; the sources keep theirs until they retire",
        clusters.join(", "),
        if versions.len() == 1 {
            format!("version {}", versions[0])
        } else {
            format!("versions {}", versions.join(", "))
        },
        if addon.origin == kplan_model::AddonOrigin::Detected {
            "detected: the same workloads in most source clusters"
        } else {
            "named by the policy's addon_namespaces"
        },
        addon.sized_from
    )];
    if versions.iter().filter(|v| **v != "unknown").count() > 1 {
        commands
            .push("# the sources run different versions: install the one the addon-versions precondition chose".into());
    }
    commands.push(format!("kubectl --context {cluster} get namespace {name}   # exists once installed"));
    let mut install = step(
        Phase::InstallAddon,
        Subject::Addon { cluster: cluster.to_string(), namespace: name.to_string() },
        format!("install add-on {name} on {cluster}"),
        commands,
        vec![format!(
            "# uninstall it (helm uninstall, or delete what was applied), then kubectl --context {cluster} delete namespace {name}"
        )],
    );
    install.checks =
        vec![format!("kubectl --context {cluster} -n {name} wait --for=condition=Ready pods --all --timeout=15m")];
    install
}

/// `4 × Deployment/web, 1 × StatefulSet/db`.
fn part_words(part: &kplan_model::MovePart) -> String {
    part.workloads.iter().map(|w| format!("{} × {}", w.replicas, w.workload)).collect::<Vec<_>>().join(", ")
}

/// How a part of a namespace moves: scale its workloads up in the target to
/// the replicas moved so far (wait for them), then down in the source to
/// what is left; checks on the target's running pods. Only what scales
/// (Deployments, StatefulSets, ReplicaSets) is scaled; other pods are
/// recreated by hand, as the comments say.
fn part_scaling(
    block: &BlockPlan,
    namespace_move: &kplan_model::NamespaceMove,
    part: &kplan_model::MovePart,
    found: Option<&kplan_model::Namespace>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (source, from) = (namespace_move.from_cluster.as_str(), namespace_move.namespace.as_str());
    let (target, to) = (namespace_move.to_cluster.as_str(), namespace_move.new_name.as_str());
    // Replicas per workload: in all, and moved by the end of this part.
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for g in found.iter().flat_map(|n| n.pod_groups.iter()) {
        *total.entry(g.workload()).or_default() += g.replicas;
    }
    let mut moved: BTreeMap<String, u64> = total.keys().map(|w| (w.clone(), 0)).collect();
    for m in block.waves.iter().flat_map(|w| &w.namespaces) {
        let Some(p) = &m.part else { continue };
        if m.from_cluster == source && m.namespace == from && p.index <= part.index {
            for w in &p.workloads {
                *moved.entry(w.workload.clone()).or_default() += w.replicas;
            }
        }
    }
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for (workload, &have) in &moved {
        let all = total.get(workload).copied().unwrap_or(have);
        let (kind, name) = workload.split_once('/').unwrap_or(("Pod", workload.as_str()));
        let resource = match kind {
            "Deployment" => "deployment",
            "StatefulSet" => "statefulset",
            "ReplicaSet" => "replicaset",
            _ => {
                if part.workloads.iter().any(|w| &w.workload == workload) {
                    up.push(format!("# {workload}: recreate it in {target}/{to} (it does not scale)"));
                    down.push(format!("# {workload}: delete it in {source}/{from}"));
                }
                continue;
            }
        };
        up.push(format!("kubectl --context {target} -n {to} scale {resource}/{name} --replicas={have}"));
        let left = all.saturating_sub(have);
        if resource == "statefulset" && left > 0 && part.workloads.iter().any(|w| &w.workload == workload) {
            // A StatefulSet scales by ordinal: both clusters start from 0.
            up.push(format!(
                "# {workload}: until its last part both clusters run pods of the same names ({target}: {name}-0..{name}-{}, {source}: {name}-0..{name}-{}); \
                 members that find each other by name (replication, quorum) must be handed over by hand, not by this scale",
                have.saturating_sub(1),
                left - 1
            ));
        }
        down.push(format!("kubectl --context {source} -n {from} scale {resource}/{name} --replicas={left}"));
    }
    let pods: u64 = moved.values().sum();
    let checks = vec![
        format!("kubectl --context {target} -n {to} wait --for=condition=Ready pods --all --timeout=15m"),
        format!(
            "test $(kubectl --context {target} -n {to} get pods --field-selector=status.phase=Running --no-headers | wc -l) -ge {pods}   # part {} of {}: {pods} pods moved so far",
            part.index, part.of
        ),
    ];
    (up, down, checks)
}

fn backup_commands(source: &str, name: &str) -> Vec<String> {
    vec![
        // `create`, not `apply`: a backup of the same name must not be taken for a finished one.
        format!("kubectl --context {source} create -f backup-{name}.yaml"),
        format!(
            "kubectl --context {source} -n {VELERO_NAMESPACE} wait --for=jsonpath='{{.status.phase}}'=Completed backup/{name} --timeout=60m"
        ),
    ]
}

fn step(phase: Phase, subject: Subject, title: String, commands: Vec<String>, rollback: Vec<String>) -> Step {
    Step {
        number: 0,
        phase,
        subject,
        title,
        commands,
        objects: Vec::new(),
        checks: Vec::new(),
        rollback,
        rows: Vec::new(),
    }
}

/// A Velero object name (a DNS label, at most 63 characters):
/// `kplan-<plan hash>-w<wave>-<source>-<namespace>`, so that two plans never
/// share a backup name; shortened with a hash of the whole when too long.
pub fn velero_name(plan_id: &str, wave: u64, source: &str, namespace: &str) -> String {
    let plan = crc32fast::hash(plan_id.as_bytes());
    let full = format!("kplan-{plan:08x}-w{wave}-{source}-{namespace}");
    if full.len() <= 63 {
        return full;
    }
    let hash = crc32fast::hash(full.as_bytes());
    format!("{}-{hash:08x}", full[..54].trim_end_matches(['-', '.']))
}

/// What a namespace's backup does with its volumes' data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeData {
    /// Volume snapshots through the cluster's provider (Velero's default).
    Snapshot,
    /// The data stays on the disks of nodes that join the target with the
    /// namespace (`local_volumes = "keep-node"`): objects and PersistentVolumes only.
    StaysOnNode,
    /// The files are copied (Velero's file-system backup): node-local data the
    /// plan migrates (`local_volumes = "migrate-data"`).
    Copy,
}

/// The Velero `Backup` (in the source) and `Restore` (in the target) of one
/// namespace move. Cluster-scoped objects its objects use (its
/// PersistentVolumes) are included, as Velero does when
/// `includeClusterResources` is left unset.
pub fn velero_objects(name: &str, namespace: &str, new_name: &str, data: VolumeData) -> (Value, Value) {
    let labels = json!({"app.kubernetes.io/managed-by": "kplan"});
    let backup = json!({
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": VELERO_NAMESPACE, "labels": labels},
        "spec": {
            "includedNamespaces": [namespace],
            "defaultVolumesToFsBackup": data == VolumeData::Copy,
            "snapshotVolumes": data == VolumeData::Snapshot,
            "ttl": "720h0m0s",
        }
    });
    let mut spec = json!({
        "backupName": name,
        "includedNamespaces": [namespace],
        "restorePVs": true,
        "existingResourcePolicy": "none",
    });
    if namespace != new_name {
        spec["namespaceMapping"] = json!({ namespace: new_name });
    }
    let restore = json!({
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {"name": name, "namespace": VELERO_NAMESPACE, "labels": labels},
        "spec": spec,
    });
    (backup, restore)
}

/// Velero's `change-storage-class` plugin configuration for restores into
/// `target` (`changes`: the class in the source → the class in the target).
/// Velero finds it by its labels, in its own namespace.
pub fn change_storage_class_config(target: &str, changes: &BTreeMap<String, String>) -> Value {
    let name = format!("kplan-change-storage-class-{target}");
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": VELERO_NAMESPACE,
            "labels": {
                "app.kubernetes.io/managed-by": "kplan",
                "velero.io/plugin-config": "",
                "velero.io/change-storage-class": "RestoreItemAction",
            },
        },
        "data": changes,
    })
}

/// The firewall change request of `runbook` as CSV (RFC 4180, a header row).
pub fn firewall_csv(runbook: &Runbook) -> String {
    let field = |text: &str| {
        if text.contains([',', '"', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
    };
    let mut out = FIREWALL_COLUMNS.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for step in runbook.blocks.iter().flat_map(|b| &b.waves).flat_map(|w| &w.steps) {
        for row in &step.rows {
            out.push_str(&row.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn velero_names_are_dns_labels_and_stay_apart_when_shortened() {
        let name = velero_name("p", 2, "sin-prod-core", "kyc");
        assert!(name.starts_with("kplan-") && name.ends_with("-w2-sin-prod-core-kyc"), "{name}");
        assert_ne!(name, velero_name("q", 2, "sin-prod-core", "kyc"), "two plans never share a backup name");
        let long_namespace = "a-namespace-whose-name-is-as-long-as-kubernetes-allows-it";
        let a = velero_name("p", 1, "fra-prod-payments", long_namespace);
        let b = velero_name("p", 1, "fra-prod-payments", &format!("{long_namespace}x"));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b, "two long names that share a prefix stay apart");
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn a_rename_maps_the_namespace_and_local_data_goes_through_file_system_backup() {
        let (backup, restore) = velero_objects("n", "payments", "payments-fra-prod-1", VolumeData::Copy);
        assert_eq!(backup["spec"]["defaultVolumesToFsBackup"], true);
        assert_eq!(backup["spec"]["snapshotVolumes"], false);
        assert!(backup["spec"].get("includeClusterResources").is_none(), "its PersistentVolumes come along");
        assert_eq!(restore["spec"]["namespaceMapping"]["payments"], "payments-fra-prod-1");
        let (stays, plain) = velero_objects("n", "web", "web", VolumeData::StaysOnNode);
        assert_eq!(
            (stays["spec"]["defaultVolumesToFsBackup"].as_bool(), stays["spec"]["snapshotVolumes"].as_bool()),
            (Some(false), Some(false))
        );
        assert!(plain["spec"].get("namespaceMapping").is_none());
    }

    #[test]
    fn claims_of_a_class_the_target_lacks_are_restored_with_the_change_storage_class_config() {
        use kplan_model::scheduling::PodVolume;

        use crate::class_tests::{pods, with_pods};
        use crate::tests::{cluster, control_plane, namespace, node, plan, workers};

        let db = |name: &str, class: &str| {
            let mut group = pods("db", 1, 500, 1);
            group.volumes = vec![PodVolume { claim: "data".into(), storage_class: class.into(), ..Default::default() }];
            with_pods(namespace(name, "prod", kplan_model::SlaTier::Gold, 0, 0, 0), vec![group])
        };
        let inventory: Vec<ClusterSnapshot> = (1..=2)
            .map(|i| {
                let mut nodes = workers(&format!("c{i}-w"), "fra", &["a", "b", "c"], 3, 8, 32);
                nodes.push(control_plane(node(&format!("c{i}-cp"), "fra", "a", 4, 16)));
                let namespaces = vec![db(&format!("ledger-{i}"), "vsphere-thin"), db(&format!("cache-{i}"), "fast")];
                cluster(&format!("c{i}"), "prod", "fra", nodes, namespaces)
            })
            .collect();
        let mut policy = kplan_model::Policy::default();
        policy.storage_class_changes.insert("vsphere-thin".into(), "ceph-rbd".into());
        let plan = plan(&inventory, &policy);
        let book = runbook(&plan, &inventory, None);
        let restores: Vec<&Step> =
            book.blocks[0].waves.iter().flat_map(|w| &w.steps).filter(|s| s.phase == Phase::RestoreNamespace).collect();
        let configs: Vec<&Value> =
            restores.iter().flat_map(|s| &s.objects).filter(|o| o["kind"] == "ConfigMap").collect();
        assert!(!configs.is_empty(), "a ConfigMap comes with the ledger restores");
        for config in &configs {
            assert_eq!(config["metadata"]["namespace"], VELERO_NAMESPACE);
            assert_eq!(config["metadata"]["labels"]["velero.io/plugin-config"], "");
            assert_eq!(config["metadata"]["labels"]["velero.io/change-storage-class"], "RestoreItemAction");
            assert_eq!(config["data"], json!({"vsphere-thin": "ceph-rbd"}), "only the classes the wave's claims use");
        }
        for step in &restores {
            let ledger = step.title.contains("ledger");
            let config = step.commands.iter().position(|c| c.contains("configmap-kplan-change-storage-class"));
            let restore = step.commands.iter().position(|c| c.contains("create -f restore-")).unwrap();
            if ledger {
                // the first of a wave applies it, before its restore; the others say so
                assert!(
                    config.is_some_and(|c| c < restore)
                        || step.commands.iter().any(|c| c.contains("change-storage-class ConfigMap applied above")),
                    "{:?}",
                    step.commands
                );
            } else {
                assert!(config.is_none() && step.objects.len() == 1, "cache keeps its class: {:?}", step.commands);
            }
        }
        // Without a change in the policy, no ConfigMap.
        let plain = crate::tests::plan(&inventory, &kplan_model::Policy::default());
        let book = runbook(&plain, &inventory, None);
        assert!(
            book.blocks[0]
                .waves
                .iter()
                .flat_map(|w| &w.steps)
                .flat_map(|s| &s.objects)
                .all(|o| o["kind"] != "ConfigMap")
        );
    }

    #[test]
    fn the_firewall_csv_quotes_what_needs_quoting() {
        let mut step = step(Phase::Firewall, Subject::Flows { count: 1 }, String::new(), Vec::new(), Vec::new());
        step.rows =
            vec![vec!["a".into(), "b".into(), "tcp".into(), "443".into(), "api, \"public\"".into(), "t".into()]];
        let book = Runbook {
            plan_id: "p".into(),
            blocks: vec![BlockRunbook {
                datacenter: "dc".into(),
                security_tier: "prod".into(),
                waves: vec![WaveRunbook { wave: 1, steps: vec![step] }],
            }],
        };
        let csv = firewall_csv(&book);
        assert_eq!(csv.lines().nth(1), Some("a,b,tcp,443,\"api, \"\"public\"\"\",t"));
    }
}
