//! `kplan-agent-bench`: the agent's snapshot time and peak memory on a large
//! cluster (default 5,000 nodes, 2,000 namespaces, 150,000 pods) served by the
//! fake API over HTTP, written to `benchmarks/agent.md`.
//!
//! The objects are the bank example's real kubectl objects
//! (`examples/bank/clusters/*.json`), renamed and spread over the nodes and
//! namespaces. This process serves them (generated page by page, never all in
//! memory); each run is a separate `kplan-agent snapshot --out FILE` process,
//! so its peak RSS (`VmHWM`, which the agent logs when it writes the snapshot)
//! is the agent's alone. Reported: the time from start to the snapshot
//! written (initial list of everything, aggregation, build, write), the time
//! to build the snapshot from the synced view alone, and the peak RSS;
//! medians over the runs.
//!
//!   cargo run --release -p kplan-agent --bin kplan-agent-bench [-- --runs 5 --out benchmarks/agent.md]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use kplan_agent::collect::{KubeObject, is_terminated, parse_documents};
use kplan_agent::fake_api::{ApiResource, FakeApi};
use kplan_model::ClusterSnapshot;
use serde_json::Value;

/// Measures kplan-agent's snapshot time and peak RSS on a large fake cluster.
#[derive(Debug, Parser)]
#[command(name = "kplan-agent-bench")]
struct Args {
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    #[arg(long, default_value_t = 2000)]
    namespaces: usize,
    #[arg(long, default_value_t = 150_000)]
    pods: usize,
    /// Identical pods per workload: a namespace's pods are its workloads'
    /// replicas (the same template, so one pod group each). 1 makes every
    /// pod a workload of its own: the agent's worst case.
    #[arg(long, default_value_t = 5)]
    replicas: usize,
    /// Snapshot runs (separate processes); medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The kplan-agent binary (default: next to this one).
    #[arg(long, value_name = "FILE")]
    agent: Option<PathBuf>,
    /// Where to write the results (Markdown).
    #[arg(long, value_name = "FILE", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../benchmarks/agent.md"))]
    out: PathBuf,
}

const TARGET_RSS_MIB: f64 = 150.0;
const TARGET_SECONDS: f64 = 2.0;

/// A JSON object as text with `@@NAME@@`-style placeholders.
struct Template(String);

impl Template {
    fn fill(&self, values: &[(&str, &str)]) -> Bytes {
        let mut text = self.0.clone();
        for (placeholder, value) in values {
            text = text.replace(placeholder, value);
        }
        Bytes::from(text)
    }
}

/// Object templates taken from the bank example.
struct Templates {
    nodes: Vec<Template>,
    namespaces: Vec<Template>,
    pods: Vec<Template>,
    daemon_sets: Vec<Value>,
}

fn templates(dir: &Path) -> anyhow::Result<Templates> {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    let mut namespaces = Vec::new();
    let mut daemon_sets = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for object in parse_documents(&text, &file.display().to_string())? {
            match object {
                KubeObject::Node { node, .. } => {
                    let mut value = serde_json::to_value(&node)?;
                    value["metadata"]["name"] = "@@NAME@@".into();
                    let labels = value["metadata"]["labels"].as_object_mut().context("node labels")?;
                    labels.retain(|key, _| {
                        !key.contains("region") && !key.contains("zone") && !key.contains("datacenter")
                    });
                    labels.insert("kubernetes.io/hostname".into(), "@@NAME@@".into());
                    labels.insert("topology.kubernetes.io/region".into(), "dc-1".into());
                    labels.insert("topology.kubernetes.io/zone".into(), "@@ZONE@@".into());
                    value["metadata"]["resourceVersion"] = "1".into();
                    nodes.push(Template(value.to_string()));
                }
                // Every generated pod is a running one (the benchmark's pod count).
                KubeObject::Pod { pod, .. } if !is_terminated(&pod) => {
                    let mut value = serde_json::to_value(&pod)?;
                    value["metadata"]["name"] = "@@NAME@@".into();
                    value["metadata"]["namespace"] = "@@NS@@".into();
                    value["metadata"]["resourceVersion"] = "1".into();
                    value["spec"]["nodeName"] = "@@NODE@@".into();
                    pods.push(Template(value.to_string()));
                }
                KubeObject::Namespace { namespace, .. } => {
                    let mut value = serde_json::to_value(&namespace)?;
                    value["metadata"]["name"] = "@@NAME@@".into();
                    value["metadata"]["resourceVersion"] = "1".into();
                    value["metadata"]["labels"]["kubernetes.io/metadata.name"] = "@@NAME@@".into();
                    namespaces.push(Template(value.to_string()));
                }
                KubeObject::DaemonSet { daemon_set, .. } if daemon_sets.len() < 3 => {
                    daemon_sets.push(serde_json::to_value(&daemon_set)?);
                }
                _ => {}
            }
        }
    }
    if nodes.is_empty() || pods.is_empty() || namespaces.is_empty() {
        bail!("{} holds no nodes, pods or namespaces to use as templates", dir.display());
    }
    Ok(Templates { nodes, namespaces, pods, daemon_sets })
}

/// A directory removed when dropped (also when a run fails).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Clone, Copy)]
struct Run {
    total_ms: f64,
    listed_ms: f64,
    build_ms: f64,
    wall_ms: f64,
    peak_rss_mib: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or("unknown cpu".to_string(), |(_, model)| model.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}; load average {load} when the benchmark \
         started (the machine is shared: other builds may run)",
        kernel.trim()
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let machine = machine();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let agent = match &args.agent {
        Some(agent) => agent.clone(),
        None => std::env::current_exe()?.with_file_name("kplan-agent"),
    };
    if !agent.is_file() {
        bail!("{} is missing: build it first (cargo build --release -p kplan-agent)", agent.display());
    }
    let Templates { nodes: node_templates, namespaces: namespace_templates, pods: pod_templates, daemon_sets } =
        templates(&repo.join("examples/bank/clusters"))?;

    let fake = FakeApi::new();
    let (n_nodes, n_namespaces) = (args.nodes, args.namespaces);
    fake.generate(ApiResource::Nodes, n_nodes, move |idx| {
        let name = format!("node-{idx:05}");
        let zone = format!("zone-{}", idx % 6);
        node_templates[idx % node_templates.len()].fill(&[("@@NAME@@", &name), ("@@ZONE@@", &zone)])
    });
    fake.generate(ApiResource::Namespaces, n_namespaces, move |idx| {
        namespace_templates[idx % namespace_templates.len()].fill(&[("@@NAME@@", &format!("ns-{idx:04}"))])
    });
    // Pods are rendered once, before any run: the fake then only copies bytes,
    // so the runs measure the agent, not the fake's templating.
    // Consecutive pods share a namespace; within it, `replicas` consecutive
    // pods share a template (a workload's identical replicas).
    let per_namespace = args.pods.div_ceil(n_namespaces.max(1)).max(1);
    let replicas = args.replicas.max(1);
    let pods: Vec<Bytes> = (0..args.pods)
        .map(|idx| {
            let name = format!("pod-{idx:06}");
            let (ns_idx, position) = (idx / per_namespace, idx % per_namespace);
            let namespace = format!("ns-{ns_idx:04}");
            let node = format!("node-{:05}", idx % n_nodes);
            let template = (ns_idx * 7919 + position / replicas) % pod_templates.len();
            pod_templates[template].fill(&[("@@NAME@@", &name), ("@@NS@@", &namespace), ("@@NODE@@", &node)])
        })
        .collect();
    let pod_bytes: usize = pods.iter().map(Bytes::len).sum();
    fake.generate(ApiResource::Pods, args.pods, move |idx| pods[idx].clone());
    for daemon_set in daemon_sets {
        fake.apply(daemon_set);
    }

    // The fake gets one worker thread; the agent has the rest of the machine.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    runtime.spawn(fake.serve(listener));

    let dir = TempDir(std::env::temp_dir().join(format!("kplan-agent-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let kubeconfig = dir.0.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{addr}\"}}\n\
             users:\n- name: bench\n  user: {{token: bench}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: bench}}\n\
             current-context: fake\n"
        ),
    )?;
    let out = dir.0.join("snapshot.json");
    let command_line = format!(
        "kplan-agent --kubeconfig KUBECONFIG --cluster-id bench --security-tier prod snapshot --out {}",
        out.display()
    );
    eprintln!(
        "kplan-agent-bench: {} nodes, {} namespaces, {} pods ({} MiB of JSON) from http://{addr}; {} runs of: {command_line}",
        args.nodes,
        args.namespaces,
        args.pods,
        pod_bytes >> 20,
        args.runs
    );

    let mut runs = Vec::new();
    let mut n_groups = 0usize;
    for run_idx in 0..args.runs {
        let started = Instant::now();
        let output = Command::new(&agent)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--cluster-id", "bench", "--security-tier", "prod", "snapshot", "--out"])
            .arg(&out)
            .env("KPLAN_LOG_FORMAT", "json")
            .env("KPLAN_LOG", "info")
            .output()
            .context("running kplan-agent")?;
        let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("kplan-agent failed ({}):\n{stderr}", output.status);
        }
        let written = stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["message"] == "snapshot written")
            .context("no \"snapshot written\" log line")?;
        let number = |field: &str| written[field].as_f64().with_context(|| format!("log field {field}"));
        let run = Run {
            total_ms: number("total_ms")?,
            listed_ms: number("listed_ms")?,
            build_ms: number("build_ms")?,
            wall_ms,
            peak_rss_mib: number("peak_rss_bytes")? / (1024.0 * 1024.0),
        };
        let snapshot: ClusterSnapshot = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
        let n_pods: u64 = snapshot.namespaces.iter().map(|ns| ns.requests.pods).sum();
        n_groups = snapshot.namespaces.iter().map(|ns| ns.pod_groups.len()).sum();
        if snapshot.nodes.len() != args.nodes
            || snapshot.namespaces.len() != args.namespaces
            || n_pods != args.pods as u64
        {
            bail!(
                "wrong snapshot: {} nodes, {} namespaces, {n_pods} pods",
                snapshot.nodes.len(),
                snapshot.namespaces.len()
            );
        }
        eprintln!("run {}: {run:?}", run_idx + 1);
        runs.push(run);
    }

    let medians = Run {
        total_ms: median(runs.iter().map(|r| r.total_ms).collect()),
        listed_ms: median(runs.iter().map(|r| r.listed_ms).collect()),
        build_ms: median(runs.iter().map(|r| r.build_ms).collect()),
        wall_ms: median(runs.iter().map(|r| r.wall_ms).collect()),
        peak_rss_mib: median(runs.iter().map(|r| r.peak_rss_mib).collect()),
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut report = String::new();
    report.push_str("# kplan-agent benchmark\n\n");
    report.push_str(
        "Written by `kplan-agent-bench` (agent/src/bin/bench.rs). Not a timed test: a measurement.\n\n\
         What it measures: one `kplan-agent snapshot --out FILE` process against the fake Kubernetes API\n\
         (agent/src/fake_api.rs) served over loopback HTTP by the benchmark process. The cluster is the bank\n\
         example's real kubectl objects, renamed and spread: every pod is a full object (~3 KB of JSON).\n\
         The agent lists nodes, namespaces (metadata only), pods and DaemonSets (metadata only) in pages of 500,\n\
         reduces every pod to its contribution on arrival, builds the snapshot and writes it.\n\n\
         - *snapshot time*: agent start to snapshot written (initial list of everything, aggregation, build, write);\n\
         - *list time*: start until every watcher completed its initial list;\n\
         - *build time*: the snapshot built from the synced view (what every later report costs);\n\
         - *wall*: the process, including start-up and exit, measured by the benchmark;\n\
         - *peak RSS*: the agent's `VmHWM` (/proc/self/status) when the snapshot is written.\n\n",
    );
    report.push_str(&format!(
        "Command: `cargo run --release -p kplan-agent --bin kplan-agent-bench -- --runs {} --replicas {}`\n\n\
         Machine: {}. The fake API runs in the benchmark process on the same machine (one worker thread).\n\n\
         Cluster: {} nodes, {} namespaces, {} pods ({} MiB of pod JSON), 3 DaemonSets. A namespace's pods are \
         its workloads' replicas, {} identical pods per workload (`--replicas`; 1 makes every pod a workload of \
         its own, the worst case): the snapshot holds {n_groups} pod groups.\n\n",
        args.runs,
        args.replicas,
        machine,
        args.nodes,
        args.namespaces,
        args.pods,
        pod_bytes >> 20,
        args.replicas,
    ));
    report.push_str("## Medians\n\n| measure | median | target |\n| --- | --- | --- |\n");
    report.push_str(&format!(
        "| snapshot time | {:.2} s | < {TARGET_SECONDS} s: {} |\n",
        medians.total_ms / 1000.0,
        verdict(medians.total_ms / 1000.0 < TARGET_SECONDS)
    ));
    report.push_str(&format!("| list time | {:.2} s | |\n", medians.listed_ms / 1000.0));
    report.push_str(&format!("| build time | {:.1} ms | |\n", medians.build_ms));
    report.push_str(&format!("| wall (process) | {:.2} s | |\n", medians.wall_ms / 1000.0));
    report.push_str(&format!(
        "| peak RSS | {:.1} MiB | < {TARGET_RSS_MIB} MiB: {} |\n\n",
        medians.peak_rss_mib,
        verdict(medians.peak_rss_mib < TARGET_RSS_MIB)
    ));
    report.push_str("## Runs\n\n| run | snapshot time (s) | list (s) | build (ms) | wall (s) | peak RSS (MiB) |\n");
    report.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for (idx, run) in runs.iter().enumerate() {
        report.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.1} | {:.2} | {:.1} |\n",
            idx + 1,
            run.total_ms / 1000.0,
            run.listed_ms / 1000.0,
            run.build_ms,
            run.wall_ms / 1000.0,
            run.peak_rss_mib
        ));
    }
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, &report).with_context(|| format!("writing {}", args.out.display()))?;
    print!("{report}");
    Ok(())
}
