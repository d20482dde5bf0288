//! `kplan`: the command-line tool. Every command works against a server
//! (`--server URL`) or embedded on a local inventory directory (`--inventory DIR`).
//! Errors are one line on stderr and a non-zero exit code.

mod backend;
mod import;
mod output;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kplan_agent::collect::CollectOptions;

use crate::backend::Backend;
use crate::output::Format;

/// kplan plans the consolidation of many Kubernetes clusters into one per
/// datacenter and security tier.
#[derive(Debug, Parser)]
#[command(name = "kplan", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

/// Where the inventory lives.
#[derive(Debug, Args)]
struct Target {
    /// kplan-server URL, e.g. http://127.0.0.1:7470 (default: the local inventory).
    #[arg(long, global = true, env = "KPLAN_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Local inventory directory (the embedded mode; no server needed). Default: .kplan/inventory
    #[arg(long, global = true, env = "KPLAN_INVENTORY", value_name = "DIR", conflicts_with = "server")]
    inventory: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import `kubectl get nodes,namespaces,pods,daemonsets -A -o json` output (or an agent snapshot file).
    #[command(after_help = "Examples:\n  \
kubectl get nodes,namespaces,pods,daemonsets -A -o json > fra-prod-1.json\n  \
kplan import --cluster fra-prod-1 --datacenter fra --security-tier prod --zone fra-prod-a fra-prod-1.json\n  \
kplan import --estate examples/bank/estate.toml\n  \
kplan --server http://127.0.0.1:7470 import --cluster lon-dev-1 nodes.yaml namespaces.yaml pods.json")]
    Import(ImportArgs),
    /// List and show the clusters in the inventory.
    #[command(subcommand)]
    Clusters(ClustersCommand),
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The cluster's id (lowercase letters, digits, '-' and '.').
    #[arg(long, value_name = "ID", required_unless_present = "estate", conflicts_with = "estate")]
    cluster: Option<String>,
    /// Datacenter for nodes without a datacenter label.
    #[arg(long, value_name = "DC")]
    datacenter: Option<String>,
    /// Security tier for namespaces without a tier label (and the cluster's own tier).
    #[arg(long, value_name = "TIER")]
    security_tier: Option<String>,
    /// Firewall zone for nodes without a zone label.
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// Generation to store (default: the highest resourceVersion in the files).
    #[arg(long, value_name = "N")]
    generation: Option<u64>,
    /// An estate manifest (TOML) listing many clusters and their files.
    #[arg(long, value_name = "FILE")]
    estate: Option<PathBuf>,
    /// Output format of the import report.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Files to read (JSON or YAML; `-` for standard input).
    #[arg(value_name = "FILE", required_unless_present = "estate")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ClustersCommand {
    /// List every cluster with its newest generation.
    #[command(
        after_help = "Examples:\n  kplan clusters list\n  kplan --server http://127.0.0.1:7470 clusters list -o json"
    )]
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show one cluster with its nodes and namespaces.
    #[command(
        after_help = "Examples:\n  kplan clusters show fra-prod-payments\n  kplan clusters show fra-prod-payments -o yaml --generation 1234"
    )]
    Show {
        /// The cluster id.
        cluster_id: String,
        /// A stored generation (default: the newest).
        #[arg(long, value_name = "N")]
        generation: Option<u64>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    kplan_server::telemetry::init("warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kplan: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the chain of contexts joined by ": ".
            let line = format!("{err:#}").replace('\n', " ");
            eprintln!("kplan: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut backend = Backend::connect(cli.target.server.as_deref(), cli.target.inventory.as_deref()).await?;
    match cli.command {
        Command::Import(args) => cmd_import(&mut backend, args).await,
        Command::Clusters(ClustersCommand::List { output }) => {
            let clusters = backend.list_clusters().await?;
            print!("{}", output::structured(output, &clusters)?.unwrap_or_else(|| output::clusters_table(&clusters)));
            Ok(())
        }
        Command::Clusters(ClustersCommand::Show { cluster_id, generation, output }) => {
            let (summary, snapshot) = backend.get_cluster(&cluster_id, generation).await?;
            let text = match output::structured(output, &snapshot)? {
                Some(text) => text,
                None => show_cluster_table(&summary, &snapshot),
            };
            print!("{text}");
            Ok(())
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct ImportReport {
    cluster_id: String,
    generation: u64,
    created: bool,
    n_nodes: usize,
    n_namespaces: usize,
}

async fn cmd_import(backend: &mut Backend, args: ImportArgs) -> anyhow::Result<()> {
    let now = import::now_unix();
    let mut jobs: Vec<(CollectOptions, Vec<PathBuf>)> = Vec::new();
    if let Some(estate_path) = &args.estate {
        let (estate, base) = import::read_estate(estate_path)?;
        for cluster in estate.clusters {
            let options = CollectOptions {
                cluster_id: cluster.id,
                generation: cluster.generation,
                datacenter: cluster.datacenter,
                zone: cluster.zone,
                security_tier: cluster.security_tier,
                label_keys: estate.labels.clone().unwrap_or_default(),
                collected_at_unix: now,
            };
            jobs.push((options, cluster.files.iter().map(|f| base.join(f)).collect()));
        }
    } else {
        let options = CollectOptions {
            cluster_id: args.cluster.clone().unwrap_or_default(),
            generation: args.generation,
            datacenter: args.datacenter.clone(),
            zone: args.zone.clone(),
            security_tier: args.security_tier.clone(),
            label_keys: Default::default(),
            collected_at_unix: now,
        };
        jobs.push((options, args.files.clone()));
    }
    let mut reports = Vec::new();
    for (options, files) in jobs {
        let cluster_id = options.cluster_id.clone();
        let snapshot = import::snapshot_from_files(&files, &options)
            .with_context(|| format!("importing cluster {cluster_id:?}"))?;
        let (generation, n_nodes, n_namespaces) =
            (snapshot.generation, snapshot.nodes.len(), snapshot.namespaces.len());
        let cluster_id = snapshot.cluster_id.clone();
        let created = backend
            .report(snapshot)
            .await
            .with_context(|| format!("storing cluster {cluster_id:?} generation {generation}"))?;
        reports.push(ImportReport { cluster_id, generation, created, n_nodes, n_namespaces });
    }
    let text = match output::structured(args.output, &reports)? {
        Some(text) => text,
        None => {
            let rows: Vec<Vec<String>> = reports
                .iter()
                .map(|r| {
                    vec![
                        r.cluster_id.clone(),
                        r.generation.to_string(),
                        if r.created { "stored".into() } else { "unchanged (already stored)".into() },
                        r.n_nodes.to_string(),
                        r.n_namespaces.to_string(),
                    ]
                })
                .collect();
            output::table(&["CLUSTER", "GENERATION", "RESULT", "NODES", "NAMESPACES"], &rows)
        }
    };
    print!("{text}");
    Ok(())
}

fn show_cluster_table(summary: &kplan_model::ClusterSummary, snapshot: &kplan_model::ClusterSnapshot) -> String {
    use kplan_model::quantity::{format_bytes, format_cpu};
    let mut out = String::new();
    out.push_str(&output::clusters_table(std::slice::from_ref(summary)));
    out.push('\n');
    let nodes: Vec<Vec<String>> = snapshot
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.role.to_string(),
                n.datacenter.clone(),
                n.zone.clone(),
                format_cpu(n.allocatable.cpu_millis),
                format_bytes(n.allocatable.memory_bytes),
                n.allocatable.pods.to_string(),
                n.kubelet_version.clone(),
                n.container_runtime.clone(),
            ]
        })
        .collect();
    out.push_str(&output::table(
        &["NODE", "ROLE", "DATACENTER", "ZONE", "CPU", "MEMORY", "PODS", "KUBELET", "RUNTIME"],
        &nodes,
    ));
    out.push('\n');
    let namespaces: Vec<Vec<String>> = snapshot
        .namespaces
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.security_tier.clone(),
                n.sla_tier.to_string(),
                format_cpu(n.requests.cpu_millis),
                format_bytes(n.requests.memory_bytes),
                n.requests.pods.to_string(),
            ]
        })
        .collect();
    out.push_str(&output::table(&["NAMESPACE", "TIER", "SLA", "CPU REQ", "MEM REQ", "PODS"], &namespaces));
    out
}
