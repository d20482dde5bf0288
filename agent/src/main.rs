//! `kplan-agent`: a thin main. The configuration is parsed and reported whole
//! (exit 64) before the agent connects anywhere or binds a port.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kplan_agent::config::{AgentConfig, AgentOverrides};
use kplan_agent::{run, telemetry};
use tracing::error;

/// kplan's cluster agent: watches nodes, namespaces, pods and DaemonSets
/// through the Kubernetes API (read-only) and reports snapshots of the
/// cluster to kplan-server over gRPC.
#[derive(Debug, Parser)]
#[command(
    name = "kplan-agent",
    version,
    after_help = "Examples:\n  \
kplan-agent --cluster-id fra-prod-1 --server http://kplan.example:7470 --security-tier prod\n  \
kplan-agent --kubeconfig ~/.kube/config --context fra-prod-1 --cluster-id fra-prod-1 snapshot --out fra-prod-1.json\n\n\
Configuration layers: defaults < --config FILE < KPLAN_AGENT_* environment < flags.\n\
Without --kubeconfig: the in-cluster service account, else $KUBECONFIG or ~/.kube/config.\n\
Health: GET /healthz and /readyz on health_listen (default 0.0.0.0:7471); metrics: GET /metrics on metrics_listen (default 0.0.0.0:9471).\n\
Logging: KPLAN_LOG (e.g. debug), KPLAN_LOG_FORMAT=json."
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct Flags {
    /// Configuration file (TOML or YAML).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Kubeconfig file (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE", global = true)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME", global = true)]
    context: Option<String>,
    /// The cluster's id (lowercase letters, digits, '-' and '.').
    #[arg(long, value_name = "ID", global = true)]
    cluster_id: Option<String>,
    /// kplan-server's gRPC URL (default http://127.0.0.1:7470).
    #[arg(long, value_name = "URL", global = true)]
    server: Option<String>,
    /// Datacenter for nodes without a datacenter label.
    #[arg(long, value_name = "DC", global = true)]
    datacenter: Option<String>,
    /// Firewall zone for nodes without a zone label.
    #[arg(long, value_name = "ZONE", global = true)]
    zone: Option<String>,
    /// Security tier for namespaces without a tier label (and the cluster's own tier).
    #[arg(long, value_name = "TIER", global = true)]
    security_tier: Option<String>,
    /// Report over plaintext http:// without TLS (trusted test networks only).
    #[arg(long, global = true)]
    insecure_plaintext: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists the cluster once, writes one snapshot as kplan snapshot JSON, and
    /// exits: for clusters behind a jump host. `kplan import FILE` reads it.
    Snapshot {
        /// Where to write the snapshot (`-` for standard output).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Give up when the Kubernetes API has not answered every list by then.
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        timeout: u64,
    },
}

/// Exit code of a bad configuration (sysexits' EX_CONFIG).
const EX_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init("info");
    let flags = cli.flags;
    let overrides = AgentOverrides {
        kubeconfig: flags.kubeconfig,
        context: flags.context,
        cluster_id: flags.cluster_id,
        server: flags.server,
        datacenter: flags.datacenter,
        zone: flags.zone,
        security_tier: flags.security_tier,
        insecure_plaintext: flags.insecure_plaintext,
    };
    let config = match AgentConfig::load(flags.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("kplan-agent: {err}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kplan-agent: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Reporting needs a transport the operator chose (TLS, or plaintext asked for).
    if cli.command.is_none()
        && let Err(err) = config.check_transport()
    {
        eprintln!("kplan-agent: {err}");
        return ExitCode::from(EX_CONFIG);
    }
    runtime.block_on(async {
        // A kubeconfig that cannot be used is configuration too.
        let client = match run::kube_client(&config).await {
            Ok(client) => client,
            Err(err) => {
                eprintln!("kplan-agent: invalid configuration: {err:#}");
                return ExitCode::from(EX_CONFIG);
            }
        };
        let result = match cli.command {
            None => agent(config, client).await,
            Some(Command::Snapshot { out, timeout }) => {
                run::take_snapshot(&config, client, &out, Duration::from_secs(timeout)).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                error!(error = format!("{err:#}"), "agent stopped");
                eprintln!("kplan-agent: {err:#}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn agent(config: AgentConfig, client: kube::Client) -> anyhow::Result<()> {
    let addr = config.health_addr();
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let metrics = match config.metrics_addr() {
        Some(addr) => {
            Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding metrics on {addr}"))?)
        }
        None => None,
    };
    run::run_agent(config, client, listener, metrics).await
}
