//! A deterministic estate generator: the same size and seed give byte-identical files.
//!
//! The output is what `kplan import --estate DIR/estate.toml` reads: one kplan snapshot
//! JSON file per cluster (`clusters/<id>.json`, the format an agent's `snapshot --out`
//! writes; `kplan import` passes it through unchanged), the manifest `estate.toml` and a
//! policy `policy.toml`. Snapshots rather than kubectl JSON: a 20,000-node estate with
//! full pod objects would be gigabytes of JSON whose parsing is the agent's benchmark,
//! not the planner's; the snapshot holds exactly what the collector would derive.
//!
//! The randomness is a SplitMix64 stream of our own, so the output does not change with
//! a `rand` release.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use kplan_model::policy::{OpenFlow, WaveBudget, ZonePolicy};
use kplan_model::scheduling::{PodGroup, Taint, Toleration};
use kplan_model::{ClusterFacts, ClusterSnapshot, Namespace, Node, NodeRole, Policy, Resources, SlaTier};

const MIB: u64 = 1 << 20;
/// Every generated snapshot claims to be collected at this instant (2025-11-24).
const COLLECTED_AT_UNIX: i64 = 1_764_000_000;

/// SplitMix64: small, fast, and stable forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x005E_ED0F_4B1A_4E5E)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Index into `weights`, chosen in proportion to them.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (idx, w) in weights.iter().enumerate() {
            if x < *w {
                return idx;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// The named sizes of the issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Size {
    S,
    M,
    L,
    Xl,
}

impl Size {
    pub const ALL: [Size; 4] = [Size::S, Size::M, Size::L, Size::Xl];

    pub fn name(self) -> &'static str {
        match self {
            Size::S => "S",
            Size::M => "M",
            Size::L => "L",
            Size::Xl => "XL",
        }
    }

    pub fn parse(text: &str) -> anyhow::Result<Size> {
        match text.trim().to_ascii_uppercase().as_str() {
            "S" => Ok(Size::S),
            "M" => Ok(Size::M),
            "L" => Ok(Size::L),
            "XL" => Ok(Size::Xl),
            other => anyhow::bail!("unknown size {other:?} (expected S, M, L or XL)"),
        }
    }

    /// (clusters, nodes, datacenters, tiers, nodes of the one large block if any)
    fn shape(self) -> (usize, u64, usize, &'static [&'static str], Option<u64>) {
        match self {
            Size::S => (20, 500, 2, &["prod", "dev"], None),
            Size::M => (100, 3_000, 4, &["prod", "test", "dev"], None),
            Size::L => (300, 10_000, 6, &["prod", "test", "dev"], None),
            Size::Xl => (900, 20_000, 8, &["prod", "test", "dev"], Some(5_000)),
        }
    }
}

const DATACENTERS: [&str; 8] = ["fra", "lon", "ams", "par", "nyc", "sin", "tok", "syd"];
const TEAMS: [&str; 16] = [
    "payments", "core", "trading", "retail", "risk", "cards", "loans", "fx", "data", "web", "mobile", "crm", "hr",
    "audit", "batch", "search",
];
/// Application namespaces; drawn per cluster, so the same names recur across a block's
/// clusters: the collisions a merge has to resolve.
const APPS: [&str; 48] = [
    "payments",
    "ledger",
    "accounts",
    "cards",
    "checkout",
    "fraud",
    "kyc",
    "onboarding",
    "statements",
    "notifications",
    "gateway",
    "auth",
    "sso",
    "search",
    "reporting",
    "analytics",
    "etl",
    "scheduler",
    "batch",
    "archive",
    "pricing",
    "quotes",
    "orders",
    "settlement",
    "clearing",
    "treasury",
    "fx",
    "loans",
    "mortgages",
    "crm",
    "web",
    "mobile-api",
    "partner-api",
    "documents",
    "ocr",
    "chat",
    "email",
    "sms",
    "audit",
    "compliance",
    "risk",
    "limits",
    "positions",
    "market-data",
    "ref-data",
    "cache",
    "queue",
    "feature-flags",
];
/// Present in (almost) every cluster: platform namespaces merge, `monitoring` and
/// `logging` are not platform namespaces in the generated policy and collide.
const COMMON: [&str; 2] = ["monitoring", "logging"];

/// A node shape: name, allocatable cpu (millis), memory (MiB), pods.
#[derive(Debug, Clone, Copy)]
struct Shape {
    name: &'static str,
    cpu_millis: u64,
    memory_mib: u64,
    pods: u64,
}

const WORKER_SHAPES: [Shape; 6] = [
    Shape { name: "m5.xlarge", cpu_millis: 3_920, memory_mib: 14_900, pods: 110 },
    Shape { name: "m5.2xlarge", cpu_millis: 7_910, memory_mib: 30_600, pods: 110 },
    Shape { name: "m5.4xlarge", cpu_millis: 15_890, memory_mib: 62_100, pods: 110 },
    Shape { name: "r5.4xlarge", cpu_millis: 15_890, memory_mib: 125_300, pods: 110 },
    Shape { name: "m5.8xlarge", cpu_millis: 31_850, memory_mib: 125_300, pods: 250 },
    Shape { name: "bm.64x256", cpu_millis: 63_770, memory_mib: 251_000, pods: 250 },
];
const WORKER_SHAPE_WEIGHTS: [f64; 6] = [0.10, 0.30, 0.30, 0.12, 0.13, 0.05];
const CONTROL_PLANE_SHAPE: Shape = Shape { name: "m5.xlarge", cpu_millis: 3_920, memory_mib: 14_900, pods: 110 };

const CNIS: [&str; 5] = ["calico", "cilium", "flannel", "kube-ovn", "contiv"];
const CNI_WEIGHTS: [f64; 5] = [0.45, 0.25, 0.15, 0.10, 0.05];

/// One (datacenter, tier) block of the estate to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSpec {
    pub datacenter: String,
    pub tier: String,
    pub n_clusters: usize,
    pub n_nodes: u64,
    pub n_zones: usize,
}

/// What to generate: the blocks, and the policy's wave budget.
#[derive(Debug, Clone, PartialEq)]
pub struct EstateSpec {
    pub blocks: Vec<BlockSpec>,
}

/// Splits `total` into parts proportional to `weights`, each at least `min_each`
/// (largest remainder; ties to the lower index).
pub fn apportion(total: u64, weights: &[f64], min_each: u64) -> Vec<u64> {
    let n = weights.len() as u64;
    let mut parts = vec![min_each; weights.len()];
    let rest = total.saturating_sub(min_each * n);
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| rest as f64 * w / sum).collect();
    let mut given = 0;
    for (part, e) in parts.iter_mut().zip(&exact) {
        *part += e.floor() as u64;
        given += e.floor() as u64;
    }
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for &idx in order.iter().cycle().take((rest - given) as usize) {
        parts[idx] += 1;
    }
    parts
}

impl EstateSpec {
    /// The estate of a named size.
    pub fn sized(size: Size, seed: u64) -> EstateSpec {
        let (n_clusters, n_nodes, n_datacenters, tiers, large_block) = size.shape();
        let mut rng = Rng::new(seed ^ 0xB10C);
        // Datacenters shrink in size; with four or more, the last is a branch site.
        let mut keys = Vec::new();
        let mut weights = Vec::new();
        for (dc_idx, dc) in DATACENTERS.iter().take(n_datacenters).enumerate() {
            let branch = n_datacenters >= 4 && dc_idx == n_datacenters - 1;
            let dc_weight = if branch { 0.05 } else { 1.0 / (1.0 + 0.35 * dc_idx as f64) };
            for tier in tiers {
                let tier_weight = match *tier {
                    "prod" => 0.5,
                    "test" => 0.2,
                    _ => 0.3,
                };
                keys.push((dc.to_string(), tier.to_string(), branch));
                weights.push(dc_weight * tier_weight * rng.range(0.8, 1.25));
            }
        }
        // The large block (the first: the main datacenter's prod) is fixed; the rest share.
        let (fixed_nodes, fixed_clusters) = match large_block {
            Some(nodes) => (nodes, (n_clusters as f64 * nodes as f64 / n_nodes as f64).round() as u64),
            None => (0, 0),
        };
        let share_from = usize::from(large_block.is_some());
        let cluster_parts = apportion(n_clusters as u64 - fixed_clusters, &weights[share_from..], 1);
        let mut clusters: Vec<u64> = Vec::new();
        if large_block.is_some() {
            clusters.push(fixed_clusters);
        }
        clusters.extend(cluster_parts);
        // Nodes: proportional to the block's weight, at least 3 per cluster (one
        // control plane and two workers); branch blocks stay small.
        let node_weights: Vec<f64> = clusters[share_from..].iter().map(|c| *c as f64).collect();
        let mins: u64 = clusters[share_from..].iter().map(|c| c * 3).sum();
        let spare = apportion(n_nodes - fixed_nodes - mins, &node_weights, 0);
        let mut nodes: Vec<u64> = Vec::new();
        if large_block.is_some() {
            nodes.push(fixed_nodes);
        }
        nodes.extend(clusters[share_from..].iter().zip(&spare).map(|(c, s)| c * 3 + s));
        let blocks = keys
            .into_iter()
            .zip(clusters.into_iter().zip(nodes))
            .map(|((datacenter, tier, branch), (n_clusters, n_nodes))| {
                // Most blocks span 3-4 firewall zones, some 2; a branch site has 2.
                let n_zones = if branch { 2 } else { [2, 3, 3, 4, 4][rng.below(5)] };
                BlockSpec { datacenter, tier, n_clusters: n_clusters as usize, n_nodes, n_zones }
            })
            .collect();
        EstateSpec { blocks }
    }

    /// One block, `n_clusters` clusters over 3 zones: the node counts scale, the pools do not.
    pub fn single_block(n_clusters: usize, n_nodes: u64) -> EstateSpec {
        EstateSpec {
            blocks: vec![BlockSpec { datacenter: "fra".into(), tier: "prod".into(), n_clusters, n_nodes, n_zones: 3 }],
        }
    }

    /// `n_blocks` blocks of equal size (datacenters × tiers prod, test, dev).
    pub fn many_blocks(n_blocks: usize, clusters_per_block: usize, nodes_per_block: u64) -> EstateSpec {
        let tiers = ["prod", "test", "dev"];
        let blocks = (0..n_blocks)
            .map(|idx| BlockSpec {
                datacenter: format!("dc{:02}", idx / 3),
                tier: tiers[idx % 3].to_string(),
                n_clusters: clusters_per_block,
                n_nodes: nodes_per_block,
                n_zones: 3,
            })
            .collect();
        EstateSpec { blocks }
    }

    pub fn n_nodes(&self) -> u64 {
        self.blocks.iter().map(|b| b.n_nodes).sum()
    }

    pub fn n_clusters(&self) -> usize {
        self.blocks.iter().map(|b| b.n_clusters).sum()
    }
}

/// A generated estate: snapshots and policy.
#[derive(Debug, Clone)]
pub struct Estate {
    pub snapshots: Vec<ClusterSnapshot>,
    pub policy: Policy,
}

fn zone_name(datacenter: &str, tier: &str, idx: usize) -> String {
    format!("{datacenter}-{tier}-{}", (b'a' + idx as u8) as char)
}

/// Generates the estate of `spec` from `seed`. Pure and deterministic.
pub fn generate(spec: &EstateSpec, seed: u64) -> Estate {
    let mut rng = Rng::new(seed);
    let mut snapshots = Vec::new();
    let mut policy = Policy {
        // Large estates move more per night than the default 50 nodes per wave.
        wave_budget: WaveBudget { nodes: 200, namespaces: 400 },
        platform_namespaces: vec!["default".into(), "kube-*".into()],
        ..Policy::default()
    };
    for block in &spec.blocks {
        let zones: Vec<String> = (0..block.n_zones).map(|z| zone_name(&block.datacenter, &block.tier, z)).collect();
        for zone in &zones {
            policy.zones.insert(zone.clone(), ZonePolicy { tiers: vec![block.tier.clone()] });
        }
        open_flows(&mut rng, block, &zones, &mut policy.open_flows);
        // Cluster sizes are skewed: a few large clusters, many small ones.
        let weights: Vec<f64> = (0..block.n_clusters).map(|_| (rng.range(0.0, 2.2)).exp()).collect();
        let sizes = apportion(block.n_nodes, &weights, 3);
        for (cluster_idx, n_nodes) in sizes.into_iter().enumerate() {
            snapshots.push(cluster(&mut rng, block, &zones, cluster_idx, n_nodes));
        }
    }
    snapshots.sort_by(|a, b| a.cluster_id.cmp(&b.cluster_id));
    Estate { snapshots, policy }
}

fn open_flows(rng: &mut Rng, block: &BlockSpec, zones: &[String], flows: &mut Vec<OpenFlow>) {
    if zones.len() < 2 {
        return;
    }
    if block.tier == "dev" && rng.unit() < 0.5 {
        // Dev zones a and b are one flat network in half of the datacenters.
        flows.push(OpenFlow {
            from_zone: zones[0].clone(),
            to_zone: zones[1].clone(),
            protocol: String::new(),
            ports: String::new(),
            bidirectional: true,
        });
    }
    if rng.unit() < 0.4 {
        // Kubelets already reach the API servers of zone a from every other zone.
        for zone in &zones[1..] {
            flows.push(OpenFlow {
                from_zone: zone.clone(),
                to_zone: zones[0].clone(),
                protocol: "tcp".into(),
                ports: "6443".into(),
                bidirectional: false,
            });
        }
    }
}

fn cluster(rng: &mut Rng, block: &BlockSpec, zones: &[String], cluster_idx: usize, n_nodes: u64) -> ClusterSnapshot {
    let team = TEAMS[rng.below(TEAMS.len())];
    let cluster_id = format!("{}-{}-{team}-{:03}", block.datacenter, block.tier, cluster_idx + 1);
    // Zones: one to three consecutive zones of the block.
    let n_cluster_zones = (1 + rng.below(3)).min(zones.len());
    let first_zone = rng.below(zones.len());
    let cluster_zones: Vec<&String> = (0..n_cluster_zones).map(|z| &zones[(first_zone + z) % zones.len()]).collect();
    // Shapes: one or two worker shapes.
    let n_shapes = 1 + rng.below(2);
    let shapes: Vec<Shape> = (0..n_shapes).map(|_| WORKER_SHAPES[rng.weighted(&WORKER_SHAPE_WEIGHTS)]).collect();
    // Versions: mostly current; some lagging; 5% old docker-shim clusters.
    let old = rng.unit() < 0.05;
    let (version, runtime) = if old {
        ("v1.23.17".to_string(), "docker://20.10.24".to_string())
    } else {
        let minor = [29, 29, 29, 29, 30, 30, 28, 27][rng.below(8)];
        (format!("v1.{minor}.{}", 2 + rng.below(8)), "containerd://1.7.22".to_string())
    };
    let cni = CNIS[rng.weighted(&CNI_WEIGHTS)];
    let n_control_plane = if n_nodes >= 10 { 3 } else { 1 };
    let mut nodes = Vec::with_capacity(n_nodes as usize);
    let node = |name: String, zone: &str, shape: Shape, role: NodeRole| {
        let mut labels = BTreeMap::new();
        labels.insert("kplan.io/datacenter".to_string(), block.datacenter.clone());
        labels.insert("kplan.io/firewall-zone".to_string(), zone.to_string());
        labels.insert("node.kubernetes.io/instance-type".to_string(), shape.name.to_string());
        if role == NodeRole::ControlPlane {
            labels.insert("node-role.kubernetes.io/control-plane".to_string(), String::new());
        }
        Node {
            name,
            labels,
            datacenter: block.datacenter.clone(),
            zone: zone.to_string(),
            role,
            allocatable: Resources::new(shape.cpu_millis, shape.memory_mib * MIB, shape.pods),
            kubelet_version: version.clone(),
            container_runtime: runtime.clone(),
            architecture: "amd64".to_string(),
            unschedulable: false,
            taints: Vec::new(),
            extended: Default::default(),
            runtime_handlers: Vec::new(),
        }
    };
    for idx in 0..n_control_plane {
        let zone = cluster_zones[idx as usize % cluster_zones.len()];
        nodes.push(node(format!("{cluster_id}-cp{}", idx + 1), zone, CONTROL_PLANE_SHAPE, NodeRole::ControlPlane));
    }
    let mut worker_allocatable = Resources::ZERO;
    // Special pools (issue 17), drawn from a stream of the cluster's own so the
    // rest of the estate does not change with them: GPU nodes, a tainted pool
    // dedicated to one team, big-memory nodes. The last workers become them.
    let n_workers = n_nodes - n_control_plane;
    let mut special = Rng::new(cluster_id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    let pools = special_pools(&mut special, n_workers, team);
    let n_special: u64 = pools.iter().map(|p| p.nodes).sum();
    let mut special_nodes = Vec::new();
    for idx in 0..n_workers {
        let zone = cluster_zones[idx as usize % cluster_zones.len()];
        let shape = shapes[(idx as usize / cluster_zones.len()) % shapes.len()];
        let worker = node(format!("{cluster_id}-w{:04}", idx + 1), zone, shape, NodeRole::Worker);
        if idx >= n_workers - n_special {
            special_nodes.push(nodes.len());
        } else {
            worker_allocatable = worker_allocatable.saturating_add(worker.allocatable);
        }
        nodes.push(worker);
    }
    let mut special_namespaces = Vec::new();
    let mut next = special_nodes.into_iter();
    for pool in &pools {
        let members: Vec<usize> = next.by_ref().take(pool.nodes as usize).collect();
        for &i in &members {
            pool.shape_node(&mut nodes[i]);
        }
        // Sized by the pool's smallest node (its shapes may differ).
        let smallest = members.iter().map(|&i| nodes[i].allocatable).min_by_key(|r| (r.cpu_millis, r.memory_bytes));
        if let Some(smallest) = smallest {
            special_namespaces.push(pool.namespace(&block.tier, members.len() as u64, smallest));
        }
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));

    // Demand: 25-60% of cpu and memory, 15-40% of pod slots of the ordinary
    // workers, over the namespaces.
    let cpu = worker_allocatable.cpu_millis as f64 * rng.range(0.25, 0.60);
    let memory = worker_allocatable.memory_bytes as f64 * rng.range(0.25, 0.60);
    let pods = worker_allocatable.pods as f64 * rng.range(0.15, 0.40);
    // One pod fits the cluster's largest ordinary worker with room to spare.
    let largest = shapes.iter().fold((0, 0), |acc, s| (acc.0.max(s.cpu_millis), acc.1.max(s.memory_mib * MIB)));
    let n_apps = (3 + n_workers as usize / 4).min(40).min(APPS.len());
    let first_app = rng.below(APPS.len());
    let mut names: Vec<(String, SlaTier)> = Vec::new();
    for k in 0..n_apps {
        let sla = [SlaTier::Bronze, SlaTier::Silver, SlaTier::Gold][rng.weighted(&[0.5, 0.3, 0.2])];
        names.push((APPS[(first_app + k * 7) % APPS.len()].to_string(), sla));
    }
    for common in COMMON {
        if rng.unit() < 0.8 {
            names.push((common.to_string(), SlaTier::Silver));
        }
    }
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    let weights: Vec<f64> = names.iter().map(|_| rng.range(0.2, 3.0)).collect();
    let total: f64 = weights.iter().sum();
    // Platform namespaces carry a little: system daemons.
    let platform = [("kube-system", 0.03), ("default", 0.002)];
    let app_share = 1.0 - platform.iter().map(|p| p.1).sum::<f64>();
    let mut namespaces = Vec::new();
    let requests = |share: f64| {
        Resources::new(
            (cpu * share).round() as u64,
            ((memory * share) / MIB as f64).round() as u64 * MIB,
            ((pods * share).round() as u64).max(1),
        )
    };
    for (name, share) in platform {
        let groups = workloads(&mut special, name, requests(share), largest);
        namespaces.push(namespace(name, &block.tier, SlaTier::Gold, groups));
    }
    for ((name, sla), weight) in names.into_iter().zip(weights) {
        let groups = workloads(&mut special, &name, requests(app_share * weight / total), largest);
        namespaces.push(namespace(&name, &block.tier, sla, groups));
    }
    namespaces.extend(special_namespaces);
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    namespaces.dedup_by(|a, b| a.name == b.name);

    let csi_drivers = match rng.below(3) {
        0 => vec!["ebs.csi.aws.com".to_string()],
        1 => vec!["csi.vsphere.vmware.com".to_string()],
        _ => Vec::new(),
    };
    ClusterSnapshot {
        cluster_id,
        generation: 1,
        collected_at_unix: COLLECTED_AT_UNIX,
        facts: ClusterFacts {
            datacenter: block.datacenter.clone(),
            zone: cluster_zones[0].clone(),
            security_tier: block.tier.clone(),
            kubernetes_version: version.clone(),
            cni: cni.to_string(),
            csi_drivers,
        },
        nodes,
        namespaces,
        isolation: Default::default(),
    }
}

fn namespace(name: &str, tier: &str, sla: SlaTier, pod_groups: Vec<PodGroup>) -> Namespace {
    let mut labels = BTreeMap::new();
    labels.insert("kplan.io/security-tier".to_string(), tier.to_string());
    labels.insert("kplan.io/sla-tier".to_string(), sla.as_str().to_string());
    let requests = pod_groups.iter().fold(Resources::ZERO, |acc, g| {
        acc.saturating_add(Resources::new(
            g.requests.cpu_millis * g.replicas,
            g.requests.memory_bytes * g.replicas,
            g.replicas,
        ))
    });
    Namespace {
        name: name.to_string(),
        labels,
        security_tier: tier.to_string(),
        sla_tier: sla,
        requests,
        pod_groups,
        applied_prerelease: Vec::new(),
        disruption_budgets: Vec::new(),
    }
}

/// A namespace's demand as one to three Deployments of identical pods, no pod
/// larger than 90% of `largest` (cpu millis, memory bytes): big demand with few
/// pods gives big pods, which only the larger shapes can run.
fn workloads(rng: &mut Rng, namespace: &str, demand: Resources, largest: (u64, u64)) -> Vec<PodGroup> {
    let n = 1 + rng.below(3);
    let weights: Vec<f64> = (0..n).map(|_| rng.range(0.5, 2.0)).collect();
    let total: f64 = weights.iter().sum();
    let pods = apportion(demand.pods.max(n as u64), &weights, 1);
    let mut groups = Vec::new();
    for (k, (weight, replicas)) in weights.iter().zip(pods).enumerate() {
        let cpu = demand.cpu_millis as f64 * weight / total;
        let memory = demand.memory_bytes as f64 * weight / total;
        let cap_cpu = largest.0 as f64 * 0.9;
        let cap_memory = largest.1 as f64 * 0.9;
        let replicas = replicas.max((cpu / cap_cpu).ceil() as u64).max((memory / cap_memory).ceil() as u64).max(1);
        groups.push(PodGroup {
            owner_kind: "Deployment".into(),
            owner_name: format!("{namespace}-{}", ["api", "worker", "web"][k % 3]),
            replicas,
            requests: Resources::new(
                (cpu / replicas as f64).round() as u64,
                ((memory / replicas as f64) / MIB as f64).round() as u64 * MIB,
                1,
            ),
            ..PodGroup::default()
        });
    }
    groups
}

/// A pool of special nodes and the workload that needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    /// 8 GPUs per node, tainted, `accelerator=nvidia`.
    Gpu,
    /// Tainted `dedicated=<team>:NoSchedule`, labelled `dedicated=<team>`.
    Dedicated,
    /// 64 cores, 512 GiB, labelled `memory=high`.
    BigMemory,
}

#[derive(Debug, Clone)]
struct SpecialPool {
    kind: PoolKind,
    nodes: u64,
    team: &'static str,
}

/// Which special pools a cluster of `n_workers` workers has: GPU nodes in 15%
/// of the clusters with at least 8 workers, a dedicated pool in 10%, big-memory
/// nodes in 10%. Each pool has at least two nodes, so its pods can be handed
/// over in stages (the source keeps one while the target gets another).
fn special_pools(rng: &mut Rng, n_workers: u64, team: &'static str) -> Vec<SpecialPool> {
    let mut pools = Vec::new();
    if n_workers < 8 {
        return pools;
    }
    let budget = n_workers / 3;
    let mut used = 0;
    for (kind, chance) in [(PoolKind::Gpu, 0.15), (PoolKind::Dedicated, 0.10), (PoolKind::BigMemory, 0.10)] {
        let draw = rng.unit();
        let nodes = [2, 2, 4][rng.below(3)];
        if draw < chance && used + nodes <= budget {
            used += nodes;
            pools.push(SpecialPool { kind, nodes, team });
        }
    }
    pools
}

impl SpecialPool {
    fn shape_node(&self, node: &mut Node) {
        match self.kind {
            PoolKind::Gpu => {
                node.allocatable = Resources::new(31_850, 250_000 * MIB, 110);
                node.labels.insert("accelerator".into(), "nvidia".into());
                node.extended.insert("nvidia.com/gpu".into(), 8);
                node.taints.push(Taint {
                    key: "nvidia.com/gpu".into(),
                    value: "present".into(),
                    effect: "NoSchedule".into(),
                });
            }
            PoolKind::Dedicated => {
                node.labels.insert("dedicated".into(), self.team.into());
                node.taints.push(Taint {
                    key: "dedicated".into(),
                    value: self.team.into(),
                    effect: "NoSchedule".into(),
                });
            }
            PoolKind::BigMemory => {
                node.allocatable = Resources::new(63_770, 512_000 * MIB, 250);
                node.labels.insert("memory".into(), "high".into());
            }
        }
    }

    /// The namespace whose pods need the pool: a quarter to 30% of it (so half
    /// the pool, with headroom, holds them while the other half hands over).
    fn namespace(&self, tier: &str, n_nodes: u64, node: Resources) -> Namespace {
        let mut group = PodGroup { owner_kind: "Deployment".into(), ..PodGroup::default() };
        let name = match self.kind {
            PoolKind::Gpu => {
                // 2 GPUs a pod, half the pool's GPUs.
                group.owner_name = "trainer".into();
                group.replicas = 2 * n_nodes;
                group.requests = Resources::new(4_000, 32 * 1024 * MIB, 1);
                group.extended.insert("nvidia.com/gpu".into(), 2);
                group.node_selector.insert("accelerator".into(), "nvidia".into());
                group.tolerations.push(Toleration {
                    key: "nvidia.com/gpu".into(),
                    operator: "Exists".into(),
                    ..Toleration::default()
                });
                "ml-training".to_string()
            }
            PoolKind::Dedicated => {
                // 30% of the pool's cpu and memory (of its smallest node's), two pods a node.
                group.owner_name = "engine".into();
                group.replicas = 2 * n_nodes;
                group.requests =
                    Resources::new(node.cpu_millis * 15 / 100, (node.memory_bytes * 15 / 100) / MIB * MIB, 1);
                group.node_selector.insert("dedicated".into(), self.team.into());
                group.tolerations.push(Toleration {
                    key: "dedicated".into(),
                    operator: "Equal".into(),
                    value: self.team.into(),
                    effect: "NoSchedule".into(),
                });
                format!("{}-dedicated", self.team)
            }
            PoolKind::BigMemory => {
                group.owner_name = "cache".into();
                group.replicas = n_nodes;
                group.requests = Resources::new(8_000, 128 * 1024 * MIB, 1);
                group.node_selector.insert("memory".into(), "high".into());
                "inmemory-cache".to_string()
            }
        };
        namespace(&name, tier, SlaTier::Silver, vec![group])
    }
}

/// Writes `estate.toml`, `policy.toml` and `clusters/<id>.json` into `dir`.
pub fn write(estate: &Estate, dir: &Path) -> anyhow::Result<()> {
    let clusters_dir = dir.join("clusters");
    std::fs::create_dir_all(&clusters_dir).with_context(|| format!("creating {}", clusters_dir.display()))?;
    let mut manifest = String::from(
        "# A generated estate (kplan-bench generate): one kplan snapshot file per cluster.\n\
         # kplan import --estate estate.toml; kplan propose --policy policy.toml\n",
    );
    for snapshot in &estate.snapshots {
        let file = format!("clusters/{}.json", snapshot.cluster_id);
        let json = serde_json::to_vec(snapshot).context("encoding a snapshot")?;
        std::fs::write(dir.join(&file), json).with_context(|| format!("writing {file}"))?;
        let _ = write!(manifest, "\n[[clusters]]\nid = \"{}\"\nfiles = [\"{file}\"]\n", snapshot.cluster_id);
    }
    std::fs::write(dir.join("estate.toml"), manifest).context("writing estate.toml")?;
    let policy = toml::to_string(&estate.policy).context("encoding the policy")?;
    std::fs::write(dir.join("policy.toml"), format!("# A generated policy (kplan-bench generate).\n{policy}"))
        .context("writing policy.toml")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_keeps_the_total_and_the_minimum() {
        let parts = apportion(100, &[1.0, 2.0, 3.0], 10);
        assert_eq!(parts.iter().sum::<u64>(), 100);
        assert!(parts.iter().all(|p| *p >= 10));
        assert_eq!(apportion(7, &[1.0, 1.0, 1.0], 0), vec![3, 2, 2]);
    }

    #[test]
    fn sizes_have_the_promised_totals() {
        for (size, clusters, nodes) in
            [(Size::S, 20, 500), (Size::M, 100, 3_000), (Size::L, 300, 10_000), (Size::Xl, 900, 20_000)]
        {
            let spec = EstateSpec::sized(size, 7);
            assert_eq!(spec.n_clusters(), clusters, "{size:?}");
            assert_eq!(spec.n_nodes(), nodes, "{size:?}");
        }
        let xl = EstateSpec::sized(Size::Xl, 7);
        assert_eq!(xl.blocks.len(), 24);
        assert_eq!(xl.blocks[0].n_nodes, 5_000);
    }
}
