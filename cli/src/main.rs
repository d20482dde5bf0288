//! `kplan`: the command-line tool. Every command works against a server
//! (`--server URL`) or embedded on a local inventory directory (`--inventory DIR`).
//! Errors are one line on stderr and a non-zero exit code.

mod backend;
mod certs;
mod html;
mod import;
mod isolation;
mod output;
mod remote;
mod render;
mod runbook;
mod telemetry;
mod user_config;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kplan_collect::CollectOptions;

use crate::backend::Backend;
use crate::output::Format;

/// kplan plans the consolidation of many Kubernetes clusters into one per
/// datacenter and security tier.
#[derive(Debug, Parser)]
#[command(
    name = "kplan",
    version,
    propagate_version = true,
    after_help = "Examples:\n  kplan import --estate examples/bank/estate.toml\n  kplan propose --policy examples/bank/policy.toml\n  \
kplan --server https://kplan.example.com:7470 --ca ca.crt --cert reader-alice.crt --key reader-alice.key clusters list\n  \
kplan --server http://127.0.0.1:7470 --insecure-plaintext clusters list\n\n\
Defaults for --server, --inventory, --policy, --ca, --cert, --key and --token-file can live in\n\
~/.config/kplan/config.toml."
)]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

/// Where the inventory lives.
#[derive(Debug, Args)]
struct Target {
    /// kplan-server URL, e.g. https://kplan.example.com:7470 (http:// needs --insecure-plaintext;
    /// default: the local inventory).
    #[arg(long, global = true, env = "KPLAN_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Local inventory directory (the embedded mode; no server needed). Default: .kplan/inventory
    #[arg(long, global = true, env = "KPLAN_INVENTORY", value_name = "DIR", conflicts_with = "server")]
    inventory: Option<PathBuf>,
    #[command(flatten)]
    security: SecurityArgs,
}

/// How to reach a server securely (ignored in the embedded mode).
#[derive(Debug, Args)]
struct SecurityArgs {
    /// CA bundle (PEM) the server's certificate must chain to; https:// needs it.
    #[arg(long, global = true, env = "KPLAN_CA", value_name = "FILE", help_heading = "Server security")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM), e.g. from `kplan certs issue --reader NAME`.
    #[arg(long, global = true, env = "KPLAN_CERT", value_name = "FILE", help_heading = "Server security")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long, global = true, env = "KPLAN_KEY", value_name = "FILE", help_heading = "Server security")]
    key: Option<PathBuf>,
    /// File holding a bearer token (readers and planners), instead of a certificate.
    #[arg(long, global = true, env = "KPLAN_TOKEN_FILE", value_name = "FILE", help_heading = "Server security")]
    token_file: Option<PathBuf>,
    /// Name the server's certificate must carry, if not the URL's host.
    #[arg(long, global = true, env = "KPLAN_TLS_SERVER_NAME", value_name = "NAME", help_heading = "Server security")]
    tls_server_name: Option<String>,
    /// Allow http:// server URLs: no encryption, no authentication.
    #[arg(long, global = true, env = "KPLAN_INSECURE_PLAINTEXT", help_heading = "Server security")]
    insecure_plaintext: bool,
}

impl SecurityArgs {
    /// Flags and environment first, then the user config, field by field.
    fn resolve(&self, user: &user_config::UserConfig) -> kplan_proto::tls::ClientSecurity {
        kplan_proto::tls::ClientSecurity {
            ca_file: self.ca.clone().or_else(|| user.ca.clone()),
            cert_file: self.cert.clone().or_else(|| user.cert.clone()),
            key_file: self.key.clone().or_else(|| user.key.clone()),
            token_file: self.token_file.clone().or_else(|| user.token_file.clone()),
            server_name: self.tls_server_name.clone().or_else(|| user.tls_server_name.clone()),
            insecure_plaintext: self.insecure_plaintext || user.insecure_plaintext.unwrap_or(false),
        }
    }
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
    #[command(
        subcommand,
        after_help = "Examples:\n  kplan clusters list\n  kplan clusters show fra-prod-payments -o yaml"
    )]
    Clusters(ClustersCommand),
    /// Plan the consolidation of the inventory: one target cluster per datacenter and security tier.
    #[command(after_help = "Examples:\n  \
kplan propose --policy examples/bank/policy.toml\n  \
kplan propose --policy policy.toml -o markdown > plan.md\n  \
kplan propose --block fra/prod --write-model models/\n  \
kplan propose --from-plan plan-20261125t193000z-1a2b3c4d\n  \
kplan --server http://127.0.0.1:7470 propose --policy policy.yaml -o json\n\n\
Policy values can be overridden by KPLAN_POLICY__* environment variables, e.g.\n\
KPLAN_POLICY__HEADROOM__CPU=0.3; a server is sent the merged, checked policy.")]
    Propose(ProposeArgs),
    /// List, show and export stored plans.
    #[command(
        subcommand,
        after_help = "Examples:\n  kplan plans list\n  kplan plans export plan-20261125t193000z-1a2b3c4d --format html --out plan.html"
    )]
    Plans(PlansCommand),
    /// Capacity reviews per datacenter and security tier.
    #[command(subcommand, after_help = "Example:\n  kplan capacity review --quarter 2026Q4 -o markdown")]
    Capacity(CapacityCommand),
    /// Make a CA, certificates and bearer tokens for a quick start (mutual TLS).
    #[command(
        subcommand,
        after_help = "Examples:\n  \
kplan certs init --out kplan-ca --server-host kplan.example.com\n  \
kplan certs issue --ca-dir kplan-ca --cluster fra-prod-1 --out certs/\n  \
kplan certs issue --ca-dir kplan-ca --reader alice --out ~/.config/kplan/\n  \
kplan certs token --planner capacity-bot --out capacity-bot.token"
    )]
    Certs(certs::CertsCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  kplan completion bash > /etc/bash_completion.d/kplan\n  kplan completion zsh > \"${fpath[1]}/_kplan\"\n  kplan completion fish > ~/.config/fish/completions/kplan.fish"
    )]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages for kplan and every subcommand into a directory.
    #[command(after_help = "Example:\n  kplan man --out /usr/local/share/man/man1 && man kplan-propose")]
    Man {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CapacityCommand {
    /// Allocatable, requested, utilisation and headroom per block; the change since the
    /// previous quarter; the quarter headroom runs out at the current trend; stale clusters.
    #[command(
        after_help = "Examples:\n  kplan capacity review\n  kplan capacity review --quarter 2026Q4 --datacenter fra -o markdown\n  \
kplan --server http://127.0.0.1:7470 capacity review --tier prod -o json"
    )]
    Review(ReviewArgs),
}

#[derive(Debug, Args)]
struct ReviewArgs {
    /// The quarter, e.g. 2026Q4 (default: the current one).
    #[arg(long, value_name = "QUARTER")]
    quarter: Option<String>,
    #[arg(long, value_name = "DC")]
    datacenter: Option<String>,
    #[arg(long, value_name = "TIER")]
    tier: Option<String>,
    /// Headroom under which capacity has run out, as a fraction (default: the policy's headroom).
    #[arg(long, value_name = "FRACTION")]
    threshold: Option<f64>,
    /// Policy whose headroom is the threshold (embedded mode).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Flag clusters whose last report is older than this many hours.
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    stale_after_hours: i64,
    #[arg(short, long, visible_alias = "format", value_enum, default_value = "table")]
    output: ReviewFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReviewFormat {
    Table,
    Json,
    Yaml,
    Markdown,
    /// One self-contained HTML file with inline SVG trend charts.
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PlanFormat {
    Table,
    Json,
    Yaml,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Json,
    Yaml,
    Markdown,
    Dot,
    /// One self-contained HTML file with inline SVG charts.
    Html,
    /// The Velero Backup and Restore objects of every namespace move, as YAML,
    /// one directory per block and wave under `--out DIR`, and the objects that
    /// keep tenants isolated in each target under `DIR/isolation/<target>/wave-N/`.
    Manifests,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunbookFormat {
    Markdown,
    Json,
}

#[derive(Debug, Args)]
struct ProposeArgs {
    /// Policy file (TOML or YAML); default: built-in defaults (every key and its default: examples/bank/policy.toml).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value = "table")]
    output: PlanFormat,
    /// Plan only one block: `dc/tier`, `dc/` or `/tier`.
    #[arg(long, value_name = "DC/TIER")]
    block: Option<String>,
    /// Deadline per block in seconds (default: the policy's solver.time_limit_seconds).
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,
    /// Write each block's optimisation model in MPS format into DIR (embedded mode).
    #[arg(long, value_name = "DIR")]
    write_model: Option<PathBuf>,
    /// Skip the solver and return the greedy first-fit-decreasing plan (a baseline).
    #[arg(long)]
    greedy_only: bool,
    /// Re-plan a stored plan from the same stored inputs (the snapshot generations
    /// it recorded) with its own policy, limits and options, and say whether the
    /// result is identical (exit 0) or what differs (exit 2). With `--latest`, on
    /// the current inventory instead. The re-plan is not stored; with a server, its
    /// snapshots are fetched and planned in this process.
    #[arg(long, value_name = "PLAN_ID", conflicts_with_all = ["policy", "block", "time_limit", "greedy_only", "write_model"])]
    check: Option<String>,
    /// With `--check`: re-plan on the newest snapshot of every cluster, not on the
    /// plan's recorded generations (what changed in the estate since, and what it
    /// does to the plan).
    #[arg(long, requires = "check")]
    latest: bool,
    /// Exit 3 when the plan leaves a tenant isolation widening open (one the
    /// objects of `kplan plans export --format manifests` do not close; see
    /// `kplan plans isolation`). Pod-security findings (pods their namespace's
    /// level refuses) are open but not widenings: they do not count. The plan
    /// is stored and printed first.
    #[arg(long, conflicts_with = "check")]
    fail_on_widening: bool,
    /// Re-plan a stored plan's blocks on the newest snapshots of its source
    /// clusters, with its own policy unless --policy is given, store the new
    /// plan and show what differs (e.g. after `plans status` says it drifted).
    /// Refused once one of its waves has begun.
    #[arg(long, value_name = "PLAN_ID", conflicts_with_all = ["check", "block"])]
    from_plan: Option<String>,
}

#[derive(Debug, Subcommand)]
enum PlansCommand {
    /// List stored plans, oldest first.
    #[command(after_help = "Example:\n  kplan plans list -o json")]
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show one stored plan.
    #[command(after_help = "Example:\n  kplan plans show plan-20261125t193000z-1a2b3c4d -o markdown")]
    Show {
        plan_id: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: PlanFormat,
    },
    /// Where each workload's pods can run before, during and after the waves of a
    /// stored plan, on the current inventory (the local one, or the server's newest
    /// snapshots of the plan's clusters): the cluster, how many
    /// nodes pass the scheduler's filters for one pod, their shapes, and why none
    /// does.
    #[command(
        after_help = "Examples:\n  kplan plans pods plan-20261125t193000z-1a2b3c4d\n  kplan plans pods plan-20261125t193000z-1a2b3c4d --namespace ml -o json"
    )]
    Pods {
        plan_id: String,
        /// Only this namespace (its name in the source cluster).
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// What differs between two stored plans: inputs (clusters, snapshots, policy,
    /// versions, limits) and content (per block: nodes, control plane, flows,
    /// waves, renames, preconditions). Exit 0 when they say the same, 2 when not.
    #[command(
        after_help = "Example:\n  kplan plans diff plan-20261125t193000z-1a2b3c4d plan-20261202t081500z-5e6f7a8b"
    )]
    Diff { old: String, new: String },
    /// Each wave of a stored plan as steps to carry out, in order: preconditions,
    /// the firewall change request, drains, joins, freed nodes, namespace moves
    /// (Velero backup and restore, checks, cut-over), retired clusters; each step
    /// with its checks and rollback.
    #[command(
        after_help = "Examples:\n  kplan plans runbook plan-20261125t193000z-1a2b3c4d --wave 1 > wave-1.md\n  kplan plans runbook plan-20261125t193000z-1a2b3c4d --firewall-csv > firewall.csv\n  kplan plans export plan-20261125t193000z-1a2b3c4d --format manifests --out manifests/"
    )]
    Runbook {
        plan_id: String,
        /// Only this wave (of every block).
        #[arg(long, value_name = "N")]
        wave: Option<u64>,
        /// Only this block (`fra/prod`).
        #[arg(long, value_name = "DC/TIER")]
        block: Option<String>,
        #[arg(long, value_enum, default_value = "markdown")]
        format: RunbookFormat,
        /// Print only the firewall change request, as CSV.
        #[arg(long, conflicts_with = "format")]
        firewall_csv: bool,
    },
    /// What a stored plan widens for tenants once their clusters merge: cluster-wide
    /// RBAC bindings that would reach other tenants' namespaces, namespaces other
    /// sources' pods could reach, RuntimeClasses the target lacks; each with the
    /// objects that close it (written by `plans export --format manifests`).
    #[command(
        after_help = "Examples:\n  kplan plans isolation plan-20261125t193000z-1a2b3c4d\n  kplan plans isolation plan-20261125t193000z-1a2b3c4d -o json"
    )]
    Isolation {
        plan_id: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Approve a stored plan: the server keeps watch over it (re-checks it
    /// against every report of its clusters, reads its progress). Approving
    /// supersedes an earlier approved plan that covers any of the same blocks.
    #[command(after_help = "Example:\n  kplan plans approve plan-20261125t193000z-1a2b3c4d")]
    Approve { plan_id: String },
    /// Abandon a stored plan: it is no longer watched.
    #[command(after_help = "Example:\n  kplan plans abandon plan-20261125t193000z-1a2b3c4d")]
    Abandon { plan_id: String },
    /// A plan's lifecycle, its health (an approved plan re-checked by the
    /// validator against the newest snapshots: ok, or drifted with findings) and
    /// its progress per block and wave (done / in progress / pending, read from
    /// the newest snapshots, with what is still missing; a wave done out of
    /// order is flagged). Embedded, the health is checked now.
    #[command(
        after_help = "Examples:\n  kplan plans status plan-20261125t193000z-1a2b3c4d\n  kplan plans status plan-20261125t193000z-1a2b3c4d -o json"
    )]
    Status {
        plan_id: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Export one stored plan as JSON, YAML, Markdown, Graphviz, HTML, or its
    /// migration manifests (Velero objects and the isolation objects).
    #[command(
        after_help = "Examples:\n  kplan plans export plan-20261125t193000z-1a2b3c4d --format dot --out plan.dot && dot -Tsvg plan.dot > plan.svg\n  kplan plans export plan-20261125t193000z-1a2b3c4d --format markdown"
    )]
    Export {
        plan_id: String,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write to FILE instead of standard output (a directory for `manifests`).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// A row of `kplan plans list`: the plan's summary, where it stands and its last health.
#[derive(Debug, serde::Serialize)]
struct PlanRow {
    #[serde(flatten)]
    info: kplan_store::PlanInfo,
    lifecycle: kplan_model::watch::PlanLifecycle,
    health: kplan_model::watch::HealthStatus,
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
    // HiGHS reports routine solver states as warnings: only its errors are worth a user's attention.
    crate::telemetry::init("warn,highs=error");
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
            if err.downcast_ref::<Differs>().is_some() {
                ExitCode::from(2)
            } else if err.downcast_ref::<OpenWidenings>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    // Commands that need no inventory.
    match &cli.command {
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "kplan", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man { out } => return write_man_pages(out),
        Command::Certs(command) => return certs::run(command),
        _ => {}
    }
    let user = user_config::load()?;
    if cli.target.server.is_none() && cli.target.inventory.is_none() {
        cli.target.server = user.server.clone();
        cli.target.inventory = user.inventory.clone();
    }
    let security = cli.target.security.resolve(&user);
    let mut backend =
        Backend::connect(cli.target.server.as_deref(), cli.target.inventory.as_deref(), &security).await?;
    match cli.command {
        Command::Completion { .. } | Command::Man { .. } | Command::Certs(_) => Ok(()),
        Command::Import(args) => cmd_import(&mut backend, args).await,
        Command::Propose(mut args) => {
            if args.policy.is_none() {
                args.policy = user.policy.clone();
            }
            cmd_propose(&mut backend, args).await
        }
        Command::Plans(PlansCommand::Approve { plan_id }) => watch::set_lifecycle(&mut backend, &plan_id, true).await,
        Command::Plans(PlansCommand::Abandon { plan_id }) => watch::set_lifecycle(&mut backend, &plan_id, false).await,
        Command::Plans(PlansCommand::Status { plan_id, output }) => watch::status(&mut backend, &plan_id, output).await,
        Command::Plans(PlansCommand::List { output }) => {
            let infos = backend.list_plans().await?;
            let lifecycles = backend.plan_lifecycles().await?;
            let plans: Vec<PlanRow> = infos
                .into_iter()
                .map(|info| {
                    let (lifecycle, health) = lifecycles.get(&info.id).cloned().unwrap_or_default();
                    PlanRow { info, lifecycle, health }
                })
                .collect();
            let text = match output::structured(output, &plans)? {
                Some(text) => text,
                None => {
                    let rows: Vec<Vec<String>> = plans
                        .iter()
                        .map(|row| {
                            let p = &row.info;
                            vec![
                                p.id.clone(),
                                kplan_model::time::utc_readable(p.created_at_unix),
                                format!("{} ({} infeasible)", p.summary.n_blocks, p.summary.n_blocks_infeasible),
                                format!("{}→{}", p.summary.nodes_before, p.summary.nodes_after),
                                p.summary.firewall_flows.to_string(),
                                p.summary.waves.to_string(),
                                row.lifecycle.state.to_string(),
                                row.health.to_string(),
                            ]
                        })
                        .collect();
                    output::table(&["PLAN", "CREATED", "BLOCKS", "NODES", "FLOWS", "WAVES", "STATE", "HEALTH"], &rows)
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Plans(PlansCommand::Show { plan_id, output }) => {
            let plan = backend.get_plan(&plan_id).await?;
            if output == PlanFormat::Table {
                // The plan's JSON and YAML stay the plan alone (a contract); the table says where it stands.
                let (lifecycle, health) = backend.plan_lifecycles().await?.get(&plan_id).cloned().unwrap_or_default();
                println!(
                    "state: {}; health: {health} (details: kplan plans status {plan_id})",
                    watch::lifecycle_line(&lifecycle)
                );
            }
            print!("{}", render_plan(&plan, output)?);
            Ok(())
        }
        Command::Plans(PlansCommand::Pods { plan_id, namespace, output }) => {
            let plan = backend.get_plan(&plan_id).await?;
            let report = backend.pod_report(&plan, namespace.clone()).await?;
            if report.is_empty() {
                eprintln!(
                    "no pods to show: the inventory describes no pods of {} (kubectl exports with pods, or agents, report them)",
                    namespace
                        .as_deref()
                        .map_or_else(|| "the plan's namespaces".to_string(), |n| format!("namespace {n}"))
                );
            }
            let text = match output::structured(output, &report)? {
                Some(text) => text,
                None => {
                    let rows: Vec<Vec<String>> = report
                        .iter()
                        .flat_map(|w| {
                            w.moments.iter().map(move |m| {
                                vec![
                                    format!("{}/{}", w.source_cluster, w.namespace),
                                    w.workload.clone(),
                                    w.replicas.to_string(),
                                    m.when.clone(),
                                    m.cluster.clone(),
                                    m.pods.to_string(),
                                    m.nodes.to_string(),
                                    if m.problem.is_empty() {
                                        m.shapes.join(", ")
                                    } else {
                                        format!("NO NODE: {}", m.problem)
                                    },
                                ]
                            })
                        })
                        .collect();
                    output::table(
                        &[
                            "NAMESPACE",
                            "WORKLOAD",
                            "REPLICAS",
                            "WHEN",
                            "CLUSTER",
                            "PODS",
                            "NODES",
                            "NODE SHAPES / WHY NOT",
                        ],
                        &rows,
                    )
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Plans(PlansCommand::Isolation { plan_id, output }) => {
            let plan = backend.get_plan(&plan_id).await?;
            let inventory = backend.plan_inventory(&plan).await?;
            let (report, _) = isolation::verified(&plan, &inventory)?;
            let text = match output::structured(output, &report)? {
                Some(text) => text,
                None => isolation::table(&report),
            };
            print!("{text}");
            Ok(())
        }
        Command::Plans(PlansCommand::Diff { old, new }) => {
            let (a, b) = (backend.get_plan(&old).await?, backend.get_plan(&new).await?);
            report_differences(&a, &b, &format!("plans {old} and {new}"), false)
        }
        Command::Plans(PlansCommand::Runbook { plan_id, wave, block, format, firewall_csv }) => {
            let mut plan = backend.get_plan(&plan_id).await?;
            if let Some(block) = &block {
                plan.blocks.retain(|b| format!("{}/{}", b.datacenter, b.security_tier) == *block);
                if plan.blocks.is_empty() {
                    anyhow::bail!("plan {plan_id} has no block {block} (blocks are written datacenter/tier)");
                }
            }
            if let Some(n) = wave
                && !plan.blocks.iter().any(|b| b.waves.iter().any(|w| w.index == n))
            {
                anyhow::bail!("plan {plan_id} has no wave {n}");
            }
            let inventory = backend.plan_inventory(&plan).await?;
            let book = kplan_planner::runbook::runbook(&plan, &inventory, wave);
            let text = if firewall_csv {
                let text = kplan_planner::runbook::firewall_csv(&book);
                if text.lines().count() <= 1 {
                    eprintln!("note: no flows to open here: a block's change request is part of its first wave");
                }
                text
            } else {
                match format {
                    RunbookFormat::Markdown => runbook::markdown(&book),
                    RunbookFormat::Json => output::json(&book)?,
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Plans(PlansCommand::Export { plan_id, format: ExportFormat::Manifests, out }) => {
            let Some(dir) = out else {
                anyhow::bail!("--format manifests writes files: give the directory with --out DIR");
            };
            let plan = backend.get_plan(&plan_id).await?;
            let inventory = backend.plan_inventory(&plan).await?;
            let book = kplan_planner::runbook::runbook(&plan, &inventory, None);
            let mut written = runbook::write_manifests(&book, &dir)?;
            let (_, targets) = isolation::verified(&plan, &inventory)?;
            written.extend(isolation::write_manifests(&targets, &dir)?);
            eprintln!("wrote {} manifests under {}", written.len(), dir.display());
            Ok(())
        }
        Command::Plans(PlansCommand::Export { plan_id, format, out }) => {
            let plan = backend.get_plan(&plan_id).await?;
            let text = match format {
                ExportFormat::Manifests => anyhow::bail!("--format manifests is written by the arm above"),
                ExportFormat::Json => output::json(&plan)?,
                ExportFormat::Yaml => output::yaml(&plan)?,
                ExportFormat::Markdown => {
                    let mut text = render::plan_markdown(&plan);
                    // The isolation section needs the snapshots; the plan alone still exports without it.
                    match backend.plan_inventory(&plan).await {
                        Ok(inventory) => {
                            text.push_str(&isolation::markdown(&kplan_planner::isolation::analyse(&plan, &inventory)))
                        }
                        Err(error) => eprintln!("note: no tenant isolation section: {error:#}"),
                    }
                    text
                }
                ExportFormat::Dot => render::plan_dot(&plan),
                ExportFormat::Html => {
                    let inventory = backend.plan_inventory(&plan).await?;
                    let book = kplan_planner::runbook::runbook(&plan, &inventory, None);
                    let isolation = kplan_planner::isolation::analyse(&plan, &inventory);
                    html::plan_report(&plan, Some(&book), Some(&isolation))
                }
            };
            match out {
                Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Capacity(CapacityCommand::Review(mut args)) => {
            if args.policy.is_none() && matches!(backend, Backend::Local { .. }) {
                args.policy = user.policy.clone();
            }
            let review = capacity_review(&mut backend, &args).await?;
            let text = match args.output {
                ReviewFormat::Table => render::capacity::review_table(&review),
                ReviewFormat::Json => output::json(&review)?,
                ReviewFormat::Yaml => output::yaml(&review)?,
                ReviewFormat::Markdown => render::capacity::review_markdown(&review),
                ReviewFormat::Html => html::capacity_report(&review),
            };
            print!("{text}");
            Ok(())
        }
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
    let now = kplan_model::time::now_unix();
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

fn render_plan(plan: &kplan_model::Plan, format: PlanFormat) -> anyhow::Result<String> {
    Ok(match format {
        PlanFormat::Table => render::plan_table(plan, None),
        PlanFormat::Json => output::json(plan)?,
        PlanFormat::Yaml => output::yaml(plan)?,
        PlanFormat::Markdown => render::plan_markdown(plan),
    })
}

async fn cmd_propose(backend: &mut Backend, args: ProposeArgs) -> anyhow::Result<()> {
    use kplan_planner::policy::{env_overrides_present, load_policy};
    use kplan_planner::{BlockFilter, PlanOptions};

    if let Some(plan_id) = &args.check {
        return check_plan(backend, plan_id, args.latest, args.output).await;
    }
    // The policy is read, merged with KPLAN_POLICY__* and checked locally in both
    // modes, so its errors name the file; a server is sent this merged policy.
    let policy = load_policy(args.policy.as_deref())?;
    let explicit_policy = args.policy.is_some() || env_overrides_present();
    let options = PlanOptions {
        time_limit_seconds: args.time_limit,
        block_filter: args.block.as_deref().map(BlockFilter::parse),
        write_models: args.write_model.is_some(),
        greedy_only: args.greedy_only,
    };
    // A spinner on long solves, only for people: stderr is a terminal and the output is not for machines.
    let spinner = (std::io::IsTerminal::is_terminal(&std::io::stderr())
        && matches!(args.output, PlanFormat::Table | PlanFormat::Markdown))
    .then(|| {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message(format!("planning the inventory of the {}", backend.describe()));
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        spinner
    });
    let from = match &args.from_plan {
        Some(id) => Some(backend.get_plan(id).await?),
        None => None,
    };
    let result = backend
        .propose(&policy, args.policy.is_some() || (from.is_none() && explicit_policy), &options, from.as_ref())
        .await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let (plan, models) = result?;
    if let Some(from) = &from {
        // The differences go to stderr: stdout stays the plan alone.
        eprintln!("plan {} re-plans {} on the newest snapshots:", plan.id, from.id);
        match report_differences(from, &plan, &format!("plans {} and {}", from.id, plan.id), true) {
            Err(err) if err.downcast_ref::<Differs>().is_some() => {}
            other => other?,
        }
    }
    if let Some(dir) = &args.write_model {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for model in &models {
            let path = dir.join(format!("{}.mps", model.name));
            std::fs::write(&path, &model.mps).with_context(|| format!("writing {}", path.display()))?;
        }
        tracing::info!(n_models = models.len(), dir = %dir.display(), "models written");
    }
    if args.output == PlanFormat::Table {
        // The isolation report is computed beside the plan from its snapshots, not stored in it;
        // without the snapshots the table is shown without it.
        let report = match backend.plan_inventory(&plan).await {
            Ok(inventory) => Some(kplan_planner::isolation::analyse(&plan, &inventory)),
            Err(error) => {
                eprintln!("note: no tenant isolation column: {error:#}");
                None
            }
        };
        print!("{}", render::plan_table(&plan, report.as_ref()));
    } else {
        print!("{}", render_plan(&plan, args.output)?);
    }
    if args.fail_on_widening {
        let inventory = backend.plan_inventory(&plan).await?;
        let (report, _) = isolation::verified(&plan, &inventory)?;
        let n_open = report.n_open_widenings();
        eprintln!(
            "isolation: {} finding{}, {} open, {n_open} of them widenings (kplan plans isolation {})",
            report.findings().count(),
            if report.findings().count() == 1 { "" } else { "s" },
            report.n_open(),
            plan.id
        );
        if !report.clusters_without_isolation_inventory.is_empty() {
            eprintln!(
                "note: no RBAC or NetworkPolicy known for {}: their widenings cannot be checked",
                report.clusters_without_isolation_inventory.join(", ")
            );
        }
        if n_open > 0 {
            return Err(anyhow::Error::new(OpenWidenings(n_open)));
        }
    }
    Ok(())
}

/// `propose --fail-on-widening` found widenings the emitted objects do not close: exit code 3.
#[derive(Debug)]
struct OpenWidenings(usize);

impl std::fmt::Display for OpenWidenings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tenant isolation widening{} left open", self.0, if self.0 == 1 { "" } else { "s" })
    }
}

impl std::error::Error for OpenWidenings {}

/// `kplan propose --check PLAN_ID [--latest]`: the stored plan's own policy
/// (limits included) and options, on the snapshots it recorded (or the newest
/// ones), not stored.
async fn check_plan(backend: &mut Backend, plan_id: &str, latest: bool, output: PlanFormat) -> anyhow::Result<()> {
    let old = backend.get_plan(plan_id).await?;
    let Some(policy) = old.policy.clone() else {
        anyhow::bail!(
            "plan {plan_id} was made before kplan recorded a plan's policy: re-plan with `kplan propose --policy FILE` \
             and compare the two with `kplan plans diff`"
        );
    };
    let options = kplan_planner::PlanOptions {
        block_filter: old
            .fingerprint
            .options
            .split_whitespace()
            .find_map(|word| word.strip_prefix("block="))
            .map(kplan_planner::BlockFilter::parse),
        greedy_only: old.fingerprint.options.split_whitespace().any(|word| word == "greedy-only"),
        ..kplan_planner::PlanOptions::default()
    };
    let inventory = if latest { backend.latest_snapshots().await? } else { backend.recorded_snapshots(&old).await? };
    if !latest {
        // Say when the estate has moved on since, and how to plan on it.
        let recorded: std::collections::BTreeMap<&str, u64> =
            old.inventory.iter().map(|i| (i.cluster_id.as_str(), i.generation)).collect();
        // Best effort: the note only helps, the check does not depend on it.
        let changed: Vec<String> = backend
            .list_clusters()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| match recorded.get(c.cluster_id.as_str()) {
                Some(&g) if g == c.generation => None,
                Some(&g) => Some(format!("{} (generation {g} → {})", c.cluster_id, c.generation)),
                None => Some(format!("{} (new)", c.cluster_id)),
            })
            .collect();
        if !changed.is_empty() {
            eprintln!(
                "note: re-planned on the plan's recorded snapshots; the inventory has changed since for {}: \
                 `kplan propose --check {plan_id} --latest` plans on the current one",
                changed.join(", ")
            );
        }
    }
    let new = backend.replan(inventory, &policy, &options).await?;
    if !matches!(output, PlanFormat::Table) {
        print!("{}", render_plan(&new, output)?);
    }
    report_differences(&old, &new, &format!("plan {plan_id} and its re-plan"), !matches!(output, PlanFormat::Table))
}

/// Prints what differs between two plans — on standard output, or on standard
/// error when standard output carries the re-plan (`--check -o json`); an error
/// with exit code 2 when their content differs, so pipelines can gate on it. A
/// closed pipe (`| head`) ends the listing, never the process.
fn report_differences(
    old: &kplan_model::Plan,
    new: &kplan_model::Plan,
    what: &str,
    to_stderr: bool,
) -> anyhow::Result<()> {
    use kplan_planner::diff::{content_differences, input_differences};
    use std::io::Write;
    let mut text = String::new();
    let inputs = input_differences(old, new);
    let content = content_differences(old, new);
    if inputs.is_empty() {
        text.push_str(&format!("inputs: identical (sha256 {})\n", old.fingerprint.input_digest));
    } else {
        text.push_str("inputs differ:\n");
        for line in &inputs {
            text.push_str(&format!("  {line}\n"));
        }
    }
    let same_digest =
        !old.fingerprint.content_digest.is_empty() && old.fingerprint.content_digest == new.fingerprint.content_digest;
    let identical = content.is_empty() && same_digest;
    if identical {
        text.push_str(&format!("plan: identical (content sha256 {})\n", new.fingerprint.content_digest));
    } else if content.is_empty() {
        // Equal in every figure the diff lists, yet not the same digest: a
        // difference in detail (a capacity figure, an explanation's wording).
        text.push_str(&format!(
            "plan: the same nodes, flows, waves and renames, but not byte-identical (content sha256 {} → {})\n",
            or_unknown(&old.fingerprint.content_digest),
            or_unknown(&new.fingerprint.content_digest)
        ));
    } else {
        text.push_str("plan differs:\n");
        for line in &content {
            text.push_str(&format!("  {line}\n"));
        }
    }
    let _ = if to_stderr {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        std::io::stdout().write_all(text.as_bytes())
    };
    if identical { Ok(()) } else { Err(anyhow::Error::new(Differs(what.to_string()))) }
}

fn or_unknown(digest: &str) -> &str {
    if digest.is_empty() { "(not recorded)" } else { digest }
}

/// The plans compared differ: exit code 2, not 1 (an error).
#[derive(Debug)]
struct Differs(String);

impl std::fmt::Display for Differs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} differ", self.0)
    }
}

impl std::error::Error for Differs {}

async fn capacity_review(
    backend: &mut Backend,
    args: &ReviewArgs,
) -> anyhow::Result<kplan_model::capacity::CapacityReview> {
    use kplan_model::capacity::Quarter;
    use kplan_planner::capacity::ReviewRequest;

    let now = kplan_model::time::now_unix();
    let quarter = args.quarter.as_deref().map(str::parse::<Quarter>).transpose()?;
    if args.stale_after_hours <= 0 {
        anyhow::bail!("--stale-after-hours {}: must be positive", args.stale_after_hours);
    }
    let stale_after_seconds = args.stale_after_hours * 3600;
    let request = |headroom: &kplan_model::policy::Headroom| {
        ReviewRequest::new(quarter, args.threshold, Some(stale_after_seconds), headroom, now)
            .map_err(|e| anyhow::anyhow!("--{e}"))
    };
    let checked = request(&kplan_model::policy::Headroom::default())?;
    match backend {
        Backend::Local { store, .. } => {
            let policy = kplan_planner::policy::load_policy(args.policy.as_deref())?;
            let mut request = request(&policy.headroom)?;
            request.datacenter = args.datacenter.clone();
            request.security_tier = args.tier.clone();
            let history = kplan_store::load_history(store)?;
            Ok(kplan_planner::capacity::review(&history, &request))
        }
        Backend::Remote(remote) => {
            if args.policy.is_some() {
                anyhow::bail!("--policy is for the embedded mode; a server uses its own policy (or give --threshold)");
            }
            remote
                .capacity_review(
                    checked.quarter.to_string(),
                    args.datacenter.clone(),
                    args.tier.clone(),
                    args.threshold.unwrap_or(0.0),
                    stale_after_seconds,
                )
                .await
        }
    }
}

fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let command = <Cli as clap::CommandFactory>::command();
    fn write(dir: &std::path::Path, command: &clap::Command, name: &str) -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        clap_mangen::Man::new(command.clone().name(name.to_string()))
            .render(&mut file)
            .with_context(|| format!("writing {}", path.display()))?;
        for sub in command.get_subcommands() {
            write(dir, sub, &format!("{name}-{}", sub.get_name()))?;
        }
        Ok(())
    }
    write(dir, &command, "kplan")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_help_with_an_example() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let name = format!("{path} {}", command.get_name()).trim().to_string();
            if command.get_name() != "help" {
                let help = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
                if !help.contains("Example") {
                    missing.push(name.clone());
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "commands without an example in --help: {missing:?}");
    }
}
