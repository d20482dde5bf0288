//! Where the CLI's inventory lives: a server (`--server URL`) or a local store
//! directory (`--inventory DIR`, the embedded mode). Both behave the same: the
//! local mode opens the server's own sled store in-process. A server is reached
//! over TLS (`https://`) or, when allowed, plaintext (`kplan_proto::tls`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kplan_model::watch::{HealthStatus, PlanLifecycle, PlanState, PlanStatus};
use kplan_model::{ClusterSnapshot, ClusterSummary, Plan, Policy};
use kplan_planner::{BlockModel, PlanOptions};
use kplan_proto::tls::ClientSecurity;
use kplan_store::{PlanInfo, PutOutcome, SledStore, Store};

use crate::remote::Remote;

#[derive(Debug)]
pub enum Backend {
    Local { store: SledStore, dir: PathBuf },
    Remote(Remote),
}

/// Embedded (no server config): a cluster whose newest report is older has
/// stopped reporting (the server's `watch_stale_after_seconds` default).
pub const STALE_AFTER_SECONDS: i64 = 3600;

/// The default local inventory when neither `--server` nor `--inventory` is given.
pub const DEFAULT_INVENTORY: &str = ".kplan/inventory";

impl Backend {
    /// `security` is for a server only: the embedded mode needs no certificates.
    pub async fn connect(
        server: Option<&str>,
        inventory: Option<&Path>,
        security: &ClientSecurity,
    ) -> anyhow::Result<Backend> {
        match (server, inventory) {
            (Some(_), Some(_)) => bail!("give either --server or --inventory, not both"),
            (Some(url), None) => Ok(Backend::Remote(Remote::connect(url, security).await?)),
            (None, inventory) => {
                let dir = inventory.map_or_else(|| PathBuf::from(DEFAULT_INVENTORY), Path::to_path_buf);
                let open_dir = dir.clone();
                let store = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&open_dir)
                        .with_context(|| format!("creating inventory directory {}", open_dir.display()))?;
                    SledStore::open(&open_dir).with_context(|| format!("opening inventory {}", open_dir.display()))
                })
                .await??;
                Ok(Backend::Local { store, dir })
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Backend::Local { dir, .. } => format!("inventory {}", dir.display()),
            Backend::Remote(remote) => format!("server {}", remote.url()),
        }
    }

    /// Stores a snapshot; returns whether a new generation was created.
    pub async fn report(&mut self, snapshot: ClusterSnapshot) -> anyhow::Result<bool> {
        match self {
            Backend::Local { store, .. } => {
                let now = kplan_model::time::now_unix();
                let problems = kplan_store::validation::check_snapshot(&snapshot);
                if !problems.is_empty() {
                    bail!("snapshot refused: {}", problems.join("; "));
                }
                let outcome = store.put_snapshot(&snapshot, now)?;
                Ok(outcome == PutOutcome::Created)
            }
            Backend::Remote(remote) => remote.report(snapshot).await,
        }
    }

    pub async fn list_clusters(&mut self) -> anyhow::Result<Vec<ClusterSummary>> {
        match self {
            Backend::Local { store, .. } => Ok(store.list_clusters()?),
            Backend::Remote(remote) => remote.list_clusters().await,
        }
    }

    pub async fn get_cluster(
        &mut self,
        cluster_id: &str,
        generation: Option<u64>,
    ) -> anyhow::Result<(ClusterSummary, ClusterSnapshot)> {
        let found = match self {
            Backend::Local { store, .. } => store.get_cluster(cluster_id, generation)?,
            Backend::Remote(remote) => remote.get_cluster(cluster_id, generation).await?,
        };
        found.with_context(|| match generation {
            Some(g) => format!("cluster {cluster_id:?} has no stored generation {g}"),
            None => format!("cluster {cluster_id:?} is not in the {}", self.describe()),
        })
    }

    /// Plans the newest inventory and stores the plan. A server is sent
    /// `policy` (merged from the file and `KPLAN_POLICY__*`, and checked) when
    /// `explicit`; otherwise it plans with its own policy. `from`: re-plan that
    /// stored plan's blocks on the newest snapshots of its sources, with its
    /// own policy unless `explicit` (refused once one of its waves has begun).
    pub async fn propose(
        &mut self,
        policy: &Policy,
        explicit: bool,
        options: &PlanOptions,
        from: Option<&Plan>,
    ) -> anyhow::Result<(Plan, Vec<BlockModel>)> {
        match self {
            Backend::Local { store, .. } => {
                let store = store.clone();
                let mut policy = policy.clone();
                let options = options.clone();
                let from = from.cloned();
                let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let mut inventory = store.latest_snapshots()?;
                    if let Some(from) = &from {
                        if !explicit {
                            policy = from.policy.clone().unwrap_or_default();
                        }
                        let summaries = store.list_clusters()?;
                        let options = kplan_planner::watch::ProgressOptions {
                            now_unix: kplan_model::time::now_unix(),
                            stale_after_seconds: STALE_AFTER_SECONDS,
                        };
                        let progress = kplan_planner::watch::progress(from, &inventory, &summaries, &policy, options);
                        inventory = kplan_planner::watch::replan_inputs(from, &inventory, &progress)?;
                    }
                    let mut outcome = kplan_planner::propose(&inventory, &policy, &options)?;
                    kplan_planner::stamp(&mut outcome.plan, kplan_model::time::now_unix());
                    store.put_plan(&outcome.plan)?;
                    Ok(outcome)
                })
                .await??;
                Ok((outcome.plan, outcome.models))
            }
            Backend::Remote(remote) => {
                if options.write_models || options.greedy_only || options.time_limit_seconds.is_some() {
                    bail!("--write-model, --greedy-only and --time-limit need the embedded mode (--inventory DIR)");
                }
                let policy_text = explicit
                    .then(|| toml::to_string(policy).context("writing the policy as TOML for the server"))
                    .transpose()?;
                Ok((remote.propose(policy_text, options, from.map(|p| p.id.as_str())).await?, Vec::new()))
            }
        }
    }

    /// `kplan plans pods`: where each workload of `plan` can run, on the
    /// newest inventory: the local store's, or the server's snapshots of the
    /// plan's source clusters (a reader's query); replayed off the async runtime.
    pub async fn pod_report(
        &self,
        plan: &Plan,
        namespace: Option<String>,
    ) -> anyhow::Result<Vec<kplan_planner::pod_report::WorkloadPlacement>> {
        match self {
            Backend::Local { store, .. } => {
                let store = store.clone();
                let plan = plan.clone();
                tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let inventory = store.latest_snapshots()?;
                    let policy = plan.policy.clone().unwrap_or_default();
                    Ok(kplan_planner::pod_report::pod_report(&inventory, &policy, &plan, namespace.as_deref()))
                })
                .await?
            }
            Backend::Remote(remote) => {
                let sources: BTreeSet<&str> =
                    plan.blocks.iter().flat_map(|b| b.source_clusters.iter().map(String::as_str)).collect();
                let mut inventory = Vec::with_capacity(sources.len());
                for cluster_id in sources {
                    // A cluster the server no longer has is shown without nodes.
                    if let Some((_, snapshot)) = remote.get_cluster(cluster_id, None).await? {
                        inventory.push(snapshot);
                    }
                }
                let plan = plan.clone();
                tokio::task::spawn_blocking(move || {
                    let policy = plan.policy.clone().unwrap_or_default();
                    kplan_planner::pod_report::pod_report(&inventory, &policy, &plan, namespace.as_deref())
                })
                .await
                .context("replaying the plan for the pod report")
            }
        }
    }

    /// The snapshots a plan was made from, by the generations it recorded
    /// (`kplan propose --check`), from the local store or the server. A
    /// generation that is no longer stored (compacted away) is an error that
    /// names it.
    pub async fn recorded_snapshots(&mut self, plan: &Plan) -> anyhow::Result<Vec<ClusterSnapshot>> {
        let mut inventory = Vec::with_capacity(plan.inventory.len());
        for input in &plan.inventory {
            let (_, snapshot) =
                self.get_cluster(&input.cluster_id, Some(input.generation)).await.with_context(|| {
                    format!(
                        "reading generation {} of cluster {:?}, which plan {} was made from (if it is no longer \
                         stored, re-plan on the current inventory with `--latest`)",
                        input.generation, input.cluster_id, plan.id
                    )
                })?;
            inventory.push(snapshot);
        }
        Ok(inventory)
    }

    /// The snapshots a stored plan was made from, for its runbook: the
    /// recorded generations, or (when one was compacted away) the newest ones,
    /// with a note.
    pub async fn plan_inventory(&mut self, plan: &Plan) -> anyhow::Result<Vec<ClusterSnapshot>> {
        match self.recorded_snapshots(plan).await {
            Ok(inventory) => Ok(inventory),
            Err(error) => {
                eprintln!("note: {error:#}; using the newest snapshots instead");
                self.latest_snapshots().await
            }
        }
    }

    /// Every cluster's newest snapshot, from the local store or the server.
    pub async fn latest_snapshots(&mut self) -> anyhow::Result<Vec<ClusterSnapshot>> {
        let mut inventory = Vec::new();
        match self {
            Backend::Local { store, .. } => {
                // The whole inventory: read off the async runtime.
                let store = store.clone();
                inventory = tokio::task::spawn_blocking(move || store.latest_snapshots()).await??;
            }
            Backend::Remote(_) => {
                for summary in self.list_clusters().await? {
                    inventory.push(self.get_cluster(&summary.cluster_id, None).await?.1);
                }
            }
        }
        Ok(inventory)
    }

    /// Plans `inventory` with `policy` exactly as given (no file, no
    /// environment), in this process, and does not store the result:
    /// `kplan propose --check`.
    pub async fn replan(
        &mut self,
        inventory: Vec<ClusterSnapshot>,
        policy: &Policy,
        options: &PlanOptions,
    ) -> anyhow::Result<Plan> {
        let policy = policy.clone();
        let options = options.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Plan> {
            Ok(kplan_planner::propose(&inventory, &policy, &options)?.plan)
        })
        .await?
    }

    pub async fn get_plan(&mut self, plan_id: &str) -> anyhow::Result<Plan> {
        let found = match self {
            Backend::Local { store, .. } => store.get_plan(plan_id)?,
            Backend::Remote(remote) => remote.get_plan(plan_id).await?,
        };
        found.with_context(|| format!("plan {plan_id:?} is not stored in the {}", self.describe()))
    }

    pub async fn list_plans(&mut self) -> anyhow::Result<Vec<PlanInfo>> {
        match self {
            Backend::Local { store, .. } => Ok(store.list_plans()?),
            Backend::Remote(remote) => remote.list_plans().await,
        }
    }

    /// Approves (`approve`) or abandons a stored plan; returns its lifecycle and
    /// the plans an approval superseded. Embedded, the change is made and
    /// flushed in the local store by the local user.
    pub async fn set_lifecycle(
        &mut self,
        plan_id: &str,
        approve: bool,
    ) -> anyhow::Result<(PlanLifecycle, Vec<String>)> {
        match self {
            Backend::Local { store, .. } => {
                let store = store.clone();
                let plan_id = plan_id.to_string();
                tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let plan = store.get_plan(&plan_id)?.with_context(|| format!("plan {plan_id:?} is not stored"))?;
                    let current = store.get_plan_watch(&plan_id)?;
                    let who = local_user();
                    let now = kplan_model::time::now_unix();
                    let records = if approve {
                        let approved: Vec<_> = store
                            .approved_plans()?
                            .into_iter()
                            .map(|(other, record)| {
                                (other.id.clone(), kplan_planner::watch::lifecycle::blocks_of(&other), record)
                            })
                            .collect();
                        kplan_planner::watch::approve(&plan, current.as_ref(), &approved, &who, now)?
                    } else {
                        kplan_planner::watch::abandon(current.as_ref(), &who, now)
                            .map(|record| vec![(plan_id.clone(), record)])
                            .unwrap_or_default()
                    };
                    store.put_plan_watches(&records)?;
                    let lifecycle = match records.first() {
                        Some((_, record)) => record.lifecycle.clone(),
                        None => current.unwrap_or_default().lifecycle,
                    };
                    Ok((lifecycle, records.iter().skip(1).map(|(id, _)| id.clone()).collect()))
                })
                .await?
            }
            Backend::Remote(remote) => remote.set_lifecycle(plan_id, approve).await,
        }
    }

    /// A plan's lifecycle, health and progress. A server answers with the
    /// health its watch last stored; embedded (no daemon), the health is
    /// checked now against the local inventory.
    pub async fn plan_status(&mut self, plan_id: &str, stale_after_seconds: i64) -> anyhow::Result<PlanStatus> {
        match self {
            Backend::Local { store, .. } => {
                let store = store.clone();
                let plan_id = plan_id.to_string();
                tokio::task::spawn_blocking(move || -> anyhow::Result<PlanStatus> {
                    let plan = store.get_plan(&plan_id)?.with_context(|| format!("plan {plan_id:?} is not stored"))?;
                    let record = store.get_plan_watch(&plan_id)?.unwrap_or_default();
                    let fresh = store.latest_snapshots()?;
                    let summaries = store.list_clusters()?;
                    let planned = store.snapshots_at(&plan.inventory)?;
                    let policy = plan.policy.clone().unwrap_or_default();
                    let now = kplan_model::time::now_unix();
                    let options = kplan_planner::watch::ProgressOptions { now_unix: now, stale_after_seconds };
                    let progress = kplan_planner::watch::progress(&plan, &fresh, &summaries, &policy, options);
                    let health = kplan_planner::watch::plan_health(&plan, &policy, &planned, &fresh, &progress, now);
                    let mut record = record;
                    // Stored as the daemon stores it (an approved plan's health
                    // and waves in progress), so `plans list` shows what this
                    // check found and a wave's stall is timed from its first sighting.
                    if record.lifecycle.state == PlanState::Approved && record.observe(health.clone(), &progress, now) {
                        store.put_plan_watches(&[(plan_id.clone(), record.clone())])?;
                    }
                    Ok(PlanStatus { plan_id, lifecycle: record.lifecycle, health, progress })
                })
                .await?
            }
            Backend::Remote(remote) => remote.plan_status(plan_id).await,
        }
    }

    /// Every plan ever acted on: id → (lifecycle, stored health).
    pub async fn plan_lifecycles(&mut self) -> anyhow::Result<BTreeMap<String, (PlanLifecycle, HealthStatus)>> {
        match self {
            Backend::Local { store, .. } => Ok(store
                .list_plan_watches()?
                .into_iter()
                .map(|(id, record)| (id, (record.lifecycle, record.health.status)))
                .collect()),
            Backend::Remote(remote) => {
                Ok(remote.plan_lifecycles().await?.into_iter().map(|(id, l, h)| (id, (l, h))).collect())
            }
        }
    }
}

/// Who changes a plan's lifecycle in the embedded mode: `local:$USER`.
fn local_user() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_default();
    if user.trim().is_empty() { "local".to_string() } else { format!("local:{}", user.trim()) }
}
