//! `kplan-bench run`: every measurement of issue 5, side by side in one run, into BENCHMARKS.md.
//!
//! The planner is measured through the release `kplan` binary in embedded mode (import once,
//! then `propose` several times), the baseline with `--greedy-only`, the solver overhead by
//! solving `--write-model` exports with Python `highspy`, ingest against a real `kplan-server`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use kplan_model::{BlockPlan, BlockStatus, Plan};

use crate::external::*;
use crate::generate::{EstateSpec, Size, generate, write};
use crate::machine::*;
use crate::server::*;
use crate::stats::{median, spread};

/// What `run` measures.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub sizes: Vec<Size>,
    pub repeats: usize,
    pub out: PathBuf,
    pub seed: u64,
    /// Solve exported models with highspy for sizes up to this one.
    pub external: bool,
    pub scaling: bool,
    /// Concurrent clients per ingest level and the snapshots each level sends in all.
    pub ingest_levels: Vec<(usize, usize)>,
    pub command_line: String,
    /// An older `kplan` binary to time once per size in `baseline_sizes`, beside this one.
    pub baseline: Option<PathBuf>,
    pub baseline_sizes: Vec<Size>,
    /// The shipped example estate (a directory with `estate.toml` and `policy.toml`), planned
    /// `repeats` times beside the generated sizes (issue 4's figure).
    pub example: Option<PathBuf>,
    /// Hand-written profile notes included verbatim (`bench/PROFILE.md`).
    pub profile_notes: Option<PathBuf>,
}

pub(crate) struct Tools {
    pub(crate) kplan: PathBuf,
    pub(crate) server: PathBuf,
    pub(crate) work: tempfile::TempDir,
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating kplan-bench")?;
    let path = exe.parent().map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name));
    if !path.exists() {
        bail!("{} not found: build it first (cargo build --release -p kplan-cli -p kplan-server)", path.display());
    }
    Ok(path)
}

impl Tools {
    pub(crate) fn new() -> anyhow::Result<Tools> {
        Ok(Tools {
            kplan: std::env::var_os("KPLAN_BIN").map(PathBuf::from).map_or_else(|| sibling("kplan"), Ok)?,
            server: std::env::var_os("KPLAN_SERVER_BIN")
                .map(PathBuf::from)
                .map_or_else(|| sibling("kplan-server"), Ok)?,
            work: tempfile::Builder::new().prefix("kplan-bench-").tempdir().context("creating a work directory")?,
        })
    }

    pub(crate) fn kplan(&self, inventory: &Path, args: &[&str]) -> anyhow::Result<(String, f64)> {
        let started = Instant::now();
        let output = Command::new(&self.kplan)
            .arg("--inventory")
            .arg(inventory)
            .args(args)
            .env("KPLAN_LOG", "warn")
            .env_remove("KPLAN_SERVER")
            .output()
            .with_context(|| format!("running {}", self.kplan.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        if !output.status.success() {
            bail!("kplan {args:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok((String::from_utf8_lossy(&output.stdout).into_owned(), seconds))
    }
}

/// A generated estate imported into its own inventory.
pub(crate) struct Prepared {
    pub(crate) dir: PathBuf,
    pub(crate) inventory: PathBuf,
    pub(crate) n_clusters: usize,
    pub(crate) n_nodes: u64,
    pub(crate) import_seconds: f64,
    /// Per block (`dc/tier`): its placement classes and composition model size.
    pub(crate) shapes: BTreeMap<String, BlockShape>,
}

/// What the planner sees of one block before solving (issue 17): placement
/// classes and the size of the composition model as first built (before
/// the solve's own reductions, e.g. to a single target).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BlockShape {
    pub(crate) node_classes: usize,
    pub(crate) pod_classes: usize,
    pub(crate) class_rows: usize,
    pub(crate) variables: usize,
    pub(crate) constraints: usize,
}

/// [`BlockShape`] of every block of `estate`, computed with the planner's own code.
fn block_shapes(estate: &crate::generate::Estate) -> BTreeMap<String, BlockShape> {
    use kplan_planner::blocks::{ZoneTiers, partition};
    use kplan_planner::context::BlockContext;
    use kplan_planner::model::CompositionModel;
    let zone_tiers = ZoneTiers::from_inventory(&estate.snapshots);
    partition(&estate.snapshots, &estate.policy)
        .iter()
        .map(|block| {
            let ctx = BlockContext::new(&estate.snapshots, &estate.policy, block, &zone_tiers);
            let model = CompositionModel::build(&ctx.input).model;
            let placement = &ctx.data.placement;
            let shape = BlockShape {
                node_classes: placement.n_node_classes,
                pod_classes: placement.n_pod_classes,
                class_rows: placement.rows.len(),
                variables: model.variables.len(),
                constraints: model.constraints.len(),
            };
            (block.key.to_string(), shape)
        })
        .collect()
}

fn prepare(tools: &Tools, name: &str, spec: &EstateSpec, seed: u64) -> anyhow::Result<Prepared> {
    let dir = tools.work.path().join(name);
    let estate = generate(spec, seed);
    write(&estate, &dir)?;
    let shapes = block_shapes(&estate);
    let inventory = dir.join("inventory");
    let estate_path = dir.join("estate.toml");
    let (_, import_seconds) =
        tools.kplan(&inventory, &["import", "--estate", &estate_path.display().to_string(), "-o", "json"])?;
    Ok(Prepared { dir, inventory, n_clusters: spec.n_clusters(), n_nodes: spec.n_nodes(), import_seconds, shapes })
}

pub(crate) fn propose(tools: &Tools, prepared: &Prepared, extra: &[&str]) -> anyhow::Result<(Plan, f64)> {
    let policy = prepared.dir.join("policy.toml").display().to_string();
    let mut args = vec!["propose", "--policy", policy.as_str(), "-o", "json"];
    args.extend_from_slice(extra);
    let (stdout, seconds) = tools.kplan(&prepared.inventory, &args)?;
    let plan: Plan = serde_json::from_str(&stdout).context("reading the plan kplan printed")?;
    Ok((plan, seconds))
}

/// `propose` with an older binary: policy keys it does not know yet (it names them,
/// `unknown field `KEY``) are left out of a copy of the policy, so it plans with its own defaults.
fn propose_older(tools: &Tools, prepared: &Prepared) -> anyhow::Result<(Plan, f64)> {
    let dir = tools.work.path().join("older");
    std::fs::create_dir_all(&dir).context("creating a directory for the older policy")?;
    let mut policy = std::fs::read_to_string(prepared.dir.join("policy.toml")).context("reading policy.toml")?;
    let older =
        Prepared { dir: dir.clone(), inventory: prepared.inventory.clone(), shapes: BTreeMap::new(), ..*prepared };
    for _ in 0..8 {
        std::fs::write(dir.join("policy.toml"), &policy).context("writing the older policy")?;
        match propose(tools, &older, &[]) {
            Ok(result) => return Ok(result),
            Err(err) => {
                let message = format!("{err:#}");
                let Some(key) = message.split("unknown field `").nth(1).and_then(|rest| rest.split('`').next()) else {
                    return Err(err);
                };
                eprintln!("kplan-bench: the older binary does not know policy key {key}: left out");
                let before = policy.len();
                policy = policy
                    .lines()
                    .filter(|line| line.split('=').next().map(str::trim) != Some(key))
                    .map(|line| format!("{line}\n"))
                    .collect();
                if policy.len() == before {
                    return Err(err);
                }
            }
        }
    }
    bail!("the older binary kept refusing the policy")
}

pub(crate) fn block_name(block: &BlockPlan) -> String {
    format!("{}/{}", block.datacenter, block.security_tier)
}

/// The greedy plan's objective for the block: the `--greedy-only` plan's (greedy waves,
/// with the planner's staging repair), else what the block reports; none when neither planned.
pub(crate) fn greedy_objective(block: &BlockPlan, greedy: &BTreeMap<String, &BlockPlan>) -> Option<f64> {
    match greedy.get(&block_name(block)) {
        Some(g) if g.status == BlockStatus::Planned => Some(g.objective),
        _ if block.greedy_objective > 0.0 => Some(block.greedy_objective),
        _ => None,
    }
}

pub(crate) fn kept(block: &BlockPlan) -> u64 {
    if block.status == BlockStatus::Planned { block.nodes_after } else { block.nodes_before }
}

struct SizeResult {
    size: Size,
    prepared: Prepared,
    e2e: Vec<f64>,
    plans: Vec<Plan>,
    greedy: Plan,
    greedy_seconds: f64,
    external: Vec<External>,
    external_error: Option<String>,
    baseline: Option<(Plan, f64)>,
}

fn bench_size(tools: &Tools, options: &RunOptions, size: Size) -> anyhow::Result<SizeResult> {
    eprintln!("kplan-bench: {} ...", size.name());
    let spec = EstateSpec::sized(size, options.seed);
    let prepared = prepare(tools, size.name(), &spec, options.seed)?;
    let mut e2e = Vec::new();
    let mut plans = Vec::new();
    for repeat in 0..options.repeats {
        let (plan, seconds) = propose(tools, &prepared, &[])?;
        eprintln!("kplan-bench: {} propose #{}: {seconds:.2} s", size.name(), repeat + 1);
        e2e.push(seconds);
        plans.push(plan);
    }
    let (greedy, greedy_seconds) = propose(tools, &prepared, &["--greedy-only"])?;
    let (external, external_error) = if options.external {
        match external_highs(tools, &prepared, 60.0) {
            Ok(external) => (external, None),
            Err(error) => (Vec::new(), Some(format!("{error:#}"))),
        }
    } else {
        (Vec::new(), None)
    };
    let baseline = match &options.baseline {
        Some(binary) if options.baseline_sizes.contains(&size) => {
            let tools = Tools { kplan: binary.clone(), server: tools.server.clone(), work: tempfile::tempdir()? };
            eprintln!("kplan-bench: {} baseline {} ...", size.name(), binary.display());
            Some(propose_older(&tools, &prepared)?)
        }
        _ => None,
    };
    Ok(SizeResult { size, prepared, e2e, plans, greedy, greedy_seconds, external, external_error, baseline })
}

/// The example estate's plans: its `policy.toml`, imported from its `estate.toml`.
struct ExampleResult {
    dir: PathBuf,
    prepared: Prepared,
    e2e: Vec<f64>,
    plans: Vec<Plan>,
    greedy: Plan,
}

fn bench_example(tools: &Tools, options: &RunOptions, dir: &Path) -> anyhow::Result<ExampleResult> {
    eprintln!("kplan-bench: example estate {} ...", dir.display());
    let estate_path = dir.join("estate.toml");
    let estate = std::fs::read_to_string(&estate_path).with_context(|| format!("reading {}", estate_path.display()))?;
    let inventory = tools.work.path().join("example-inventory");
    let (_, import_seconds) =
        tools.kplan(&inventory, &["import", "--estate", &estate_path.display().to_string(), "-o", "json"])?;
    let mut prepared = Prepared {
        dir: dir.to_path_buf(),
        inventory,
        n_clusters: estate.lines().filter(|l| l.trim() == "[[clusters]]").count(),
        n_nodes: 0,
        import_seconds,
        shapes: BTreeMap::new(),
    };
    let mut e2e = Vec::new();
    let mut plans = Vec::new();
    for repeat in 0..options.repeats {
        let (plan, seconds) = propose(tools, &prepared, &[])?;
        eprintln!("kplan-bench: example propose #{}: {seconds:.2} s", repeat + 1);
        e2e.push(seconds);
        plans.push(plan);
    }
    prepared.n_nodes = plans[0].summary.nodes_before;
    let (greedy, _) = propose(tools, &prepared, &["--greedy-only"])?;
    Ok(ExampleResult { dir: dir.to_path_buf(), prepared, e2e, plans, greedy })
}

// ---------------------------------------------------------------------------
// Scaling

struct ScalePoint {
    label: String,
    n_nodes: u64,
    n_blocks: usize,
    e2e: Vec<f64>,
    block_seconds_max: f64,
    block_seconds_sum: f64,
}

fn scale_point(tools: &Tools, name: &str, spec: &EstateSpec, options: &RunOptions) -> anyhow::Result<ScalePoint> {
    let prepared = prepare(tools, name, spec, options.seed)?;
    let mut e2e = Vec::new();
    let mut block_max = Vec::new();
    let mut block_sum = Vec::new();
    for _ in 0..options.repeats {
        let (plan, seconds) = propose(tools, &prepared, &[])?;
        e2e.push(seconds);
        block_max.push(plan.blocks.iter().map(|b| b.solve_seconds).fold(0.0, f64::max));
        block_sum.push(plan.blocks.iter().map(|b| b.solve_seconds).sum());
    }
    Ok(ScalePoint {
        label: name.to_string(),
        n_nodes: spec.n_nodes(),
        n_blocks: spec.blocks.len(),
        e2e,
        block_seconds_max: median(&block_max),
        block_seconds_sum: median(&block_sum),
    })
}

// ---------------------------------------------------------------------------
// Machine
// ---------------------------------------------------------------------------
// The report

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 1.0 }
}

pub fn run(options: &RunOptions) -> anyhow::Result<()> {
    let tools = Tools::new()?;
    let load_start = load_average();
    let started = Instant::now();
    let example = match &options.example {
        Some(dir) => Some(bench_example(&tools, options, dir)?),
        None => None,
    };
    let mut sizes = Vec::new();
    for &size in &options.sizes {
        sizes.push(bench_size(&tools, options, size)?);
    }
    let mut scaling_nodes = Vec::new();
    let mut scaling_blocks = Vec::new();
    if options.scaling {
        for n_nodes in [625u64, 1_250, 2_500, 5_000] {
            eprintln!("kplan-bench: scaling, one block of {n_nodes} nodes ...");
            let spec = EstateSpec::single_block(8, n_nodes);
            scaling_nodes.push(scale_point(&tools, &format!("nodes-{n_nodes}"), &spec, options)?);
        }
        for n_blocks in [1usize, 2, 4, 8, 16, 32] {
            eprintln!("kplan-bench: scaling, {n_blocks} blocks ...");
            let spec = EstateSpec::many_blocks(n_blocks, 6, 300);
            scaling_blocks.push(scale_point(&tools, &format!("blocks-{n_blocks}"), &spec, options)?);
        }
    }
    let ingest_result = if options.ingest_levels.is_empty() {
        None
    } else {
        Some(ingest(&tools, options).map_err(|e| format!("{e:#}")))
    };
    let load_end = load_average();
    let total = started.elapsed().as_secs_f64();

    let mut md = String::new();
    let _ = writeln!(md, "# kplan benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `kplan-bench run` (bench/); the command is `scripts/bench.sh`. Every figure below comes from \
         one run of it; nothing is edited by hand.\n"
    );
    let _ = writeln!(md, "- machine: {}", machine());
    let _ = writeln!(md, "- commit: {}", commit());
    let _ = writeln!(md, "- command: `{}`", options.command_line);
    let _ = writeln!(
        md,
        "- load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end; the machine is shared \
         (other builds run beside), so figures are medians over {} repeats with [min-max]",
        options.repeats
    );
    let _ = writeln!(md, "- the whole run took {total:.0} s\n");
    let defaults = kplan_model::policy::SolverPolicy::default();
    // 5000 → "5,000", as the text around it writes numbers.
    let grouped = |n: u64| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let _ = writeln!(
        md,
        "Estates come from `kplan-bench generate --size SIZE --seed {}` (kplan snapshot files, imported with \
         `kplan import --estate`); the policy is the generated `policy.toml` (solver defaults: deterministic work \
         limits of {} branch-and-bound nodes for the composition, {} per staging rescue and {} for the waves \
         model, with wall-clock safety nets of {}, {} and {} s; mip_gap {}, random seed {}, {} HiGHS thread per \
         block, blocks in parallel on all cores; wave budget 200 nodes and 400 namespaces). \
         \"Identical across repeats\" compares the plans' content digests; \"wall-clock stops\" counts the blocks \
         a safety net stopped (their plans depend on the machine's load). End-to-end time is the wall time of the release `kplan --inventory DIR propose -o json` process \
         (store open, planning, validation, storing the plan, printing).\n",
        options.seed,
        grouped(defaults.composition_max_nodes),
        grouped(defaults.staging_max_nodes),
        grouped(defaults.waves_max_nodes),
        defaults.time_limit_seconds,
        defaults.staging_seconds,
        defaults.waves_seconds,
        defaults.mip_gap,
        defaults.random_seed,
        defaults.threads,
    );

    // Summary.
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(
        md,
        "| size | clusters | nodes | blocks | import s | propose s (e2e) | greedy-only s | slowest block s | max gap | \
         plan ÷ greedy (median / max) | bound ÷ greedy (median) | nodes kept plan / greedy | flows plan / greedy | \
         waves plan / greedy | infeasible | identical across repeats | wall-clock stops |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &sizes {
        let plan = &r.plans[0];
        let slowest: Vec<f64> =
            r.plans.iter().map(|p| p.blocks.iter().map(|b| b.solve_seconds).fold(0.0, f64::max)).collect();
        let planned: Vec<&BlockPlan> = plan.blocks.iter().filter(|b| b.status == BlockStatus::Planned).collect();
        let max_gap = planned.iter().map(|b| b.gap).fold(0.0, f64::max);
        let greedy_by_name: BTreeMap<String, &BlockPlan> = r.greedy.blocks.iter().map(|b| (block_name(b), b)).collect();
        let ratios: Vec<f64> = planned
            .iter()
            .filter_map(|b| greedy_objective(b, &greedy_by_name).map(|g| ratio(b.objective, g)))
            .collect();
        // No plan can go below the lower bound: bound ÷ greedy is the best plan ÷ greedy possible.
        let bound_ratios: Vec<f64> = planned
            .iter()
            .filter_map(|b| greedy_objective(b, &greedy_by_name).map(|g| ratio(b.lower_bound, g)))
            .collect();
        let kept_plan: u64 = plan.blocks.iter().map(kept).sum();
        let kept_greedy: u64 = r.greedy.blocks.iter().map(kept).sum();
        let flows = |p: &Plan| p.blocks.iter().map(|b| b.firewall_flows.len()).sum::<usize>();
        let waves = |p: &Plan| p.blocks.iter().map(|b| b.waves.len()).sum::<usize>();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {} | {:.2} | {} | {:.3}% | {:.3} / {:.3} | {:.3} | {} / {} | {} / {} | {} / {} | {} | {} | {} |",
            r.size.name(),
            r.prepared.n_clusters,
            r.prepared.n_nodes,
            plan.blocks.len(),
            r.prepared.import_seconds,
            spread(&r.e2e),
            r.greedy_seconds,
            spread(&slowest),
            max_gap * 100.0,
            median(&ratios),
            ratios.iter().copied().fold(0.0, f64::max),
            median(&bound_ratios),
            kept_plan,
            kept_greedy,
            flows(plan),
            flows(&r.greedy),
            waves(plan),
            waves(&r.greedy),
            plan.summary.n_blocks_infeasible,
            identical_across(&r.plans),
            r.plans.iter().map(|p| p.blocks.iter().filter(|b| !b.wall_clock_stops.is_empty()).count()).sum::<usize>(),
        );
    }
    let _ = writeln!(md);

    // Per block.
    for r in &sizes {
        let _ = writeln!(md, "## {}: per block\n", r.size.name());
        let _ = writeln!(
            md,
            "Solve time is the block's `solve_seconds` (greedy, model build, HiGHS, waves, replay, validation), \
             median [min-max] over the repeats. Gap = (objective - lower bound) ÷ objective. Objective weights: \
             flows ≫ nodes kept ≫ waves (planner/src/model.rs). The greedy objective is the `--greedy-only` plan's \
             (first-fit decreasing, greedy waves).\n"
        );
        per_block_table(&mut md, &r.plans, &r.greedy, &r.prepared.shapes);
        let _ = writeln!(md);
    }

    // The shipped example estate (issue 4).
    if let Some(example) = &example {
        let plan = &example.plans[0];
        let _ = writeln!(md, "## Example estate ({})\n", example.dir.display());
        let _ = writeln!(
            md,
            "The estate `kplan propose` plans in the README ({} clusters, {} nodes, its own `policy.toml`), \
             imported once ({:.1} s), proposed {} times: end to end {} s; {} blocks, {} infeasible (each with its \
             explanation in the plan); nodes {} → {}. Cost ÷ bound is the plan's objective ÷ the LP/MIP lower \
             bound (1 is proven optimal); plan ÷ greedy is its objective ÷ the first-fit-decreasing plan's. \
             Identical across repeats: {}.\n",
            example.prepared.n_clusters,
            example.prepared.n_nodes,
            example.prepared.import_seconds,
            example.e2e.len(),
            spread(&example.e2e),
            plan.summary.n_blocks,
            plan.summary.n_blocks_infeasible,
            plan.summary.nodes_before,
            plan.summary.nodes_after,
            identical_across(&example.plans),
        );
        per_block_table(&mut md, &example.plans, &example.greedy, &example.prepared.shapes);
        let _ = writeln!(md);
    }

    // External HiGHS.
    if options.external {
        let _ = writeln!(md, "## Solver overhead: kplan ÷ external HiGHS\n");
        let _ = writeln!(
            md,
            "`kplan propose --write-model DIR` writes each block's composition, staging rescue (when the greedy staging stalled) and waves models \
             in MPS; Python \
             `highspy` solves the same files with the same threads (1), time limit and gaps (written into the MPS \
             header by kplan). kplan's time is the block's whole `solve_seconds` in that run (greedy, model builds, \
             every solve, replay, validation, plan); HiGHS's is `run()` only (file reading excluded). kplan \
             warm-starts from the greedy plan; the MPS file carries no start.\n"
        );
        let _ = writeln!(
            md,
            "| size | blocks | kplan s (sum) | HiGHS s (sum) | kplan ÷ HiGHS (sum) | median per block | worst block | objectives agree |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &sizes {
            if let Some(error) = &r.external_error {
                let _ = writeln!(md, "| {} | failed: {} | | | | | | |", r.size.name(), error.replace('|', "/"));
                continue;
            }
            let k: f64 = r.external.iter().map(|e| e.kplan_seconds).sum();
            let h: f64 = r.external.iter().map(|e| e.highs_seconds).sum();
            let ratios: Vec<f64> = r.external.iter().map(|e| ratio(e.kplan_seconds, e.highs_seconds)).collect();
            let worst = r.external.iter().max_by(|a, b| {
                ratio(a.kplan_seconds, a.highs_seconds).total_cmp(&ratio(b.kplan_seconds, b.highs_seconds))
            });
            let agree = r
                .external
                .iter()
                .filter(|e| {
                    e.models
                        .iter()
                        .find(|m| m.file.ends_with(".composition.mps"))
                        .and_then(|m| m.objective)
                        .is_some_and(|o| {
                            (o - e.kplan_objective).abs() <= 0.005 * e.kplan_objective.abs().max(1.0) + 1.0
                        })
                })
                .count();
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} / {} |",
                r.size.name(),
                r.external.len(),
                k,
                h,
                ratio(k, h),
                median(&ratios),
                worst.map_or("-".to_string(), |w| format!(
                    "{} {:.2} s ÷ {:.2} s",
                    w.block, w.kplan_seconds, w.highs_seconds
                )),
                agree,
                r.external.len()
            );
        }
        let _ = writeln!(md);
        if let Some(r) = sizes.iter().rev().find(|r| !r.external.is_empty()) {
            let _ = writeln!(md, "Per model, size {}:\n", r.size.name());
            let _ = writeln!(md, "| model | HiGHS status | HiGHS s | read s | HiGHS objective | kplan objective |");
            let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
            for e in &r.external {
                for m in &e.models {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {:.3} | {:.3} | {} | {:.0} |",
                        m.file,
                        m.status,
                        m.seconds,
                        m.read_seconds,
                        m.objective.map_or("-".to_string(), |o| format!("{o:.0}")),
                        e.kplan_objective
                    );
                }
            }
            let _ = writeln!(md);
        }
    }

    if sizes.iter().any(|r| r.baseline.is_some()) {
        let _ = writeln!(md, "## Before and after the optimisation\n");
        let _ = writeln!(
            md,
            "The same inventory planned in this run by the binary built before the optimisation (`before`) and by \
             this build (`after`, the median above); one run of `before` per size. Policy keys `before` does \
             not know yet are left out of its copy of the policy (it plans with its own defaults).\n"
        );
        let _ = writeln!(
            md,
            "| size | before e2e s | after e2e s | speed-up | slowest block before / after s | nodes kept before / after | \
             flows before / after | waves before / after | max gap before / after | infeasible before / after |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &sizes {
            let Some((before, before_seconds)) = &r.baseline else { continue };
            let after = &r.plans[0];
            let slowest = |p: &Plan| p.blocks.iter().map(|b| b.solve_seconds).fold(0.0, f64::max);
            let kept_sum = |p: &Plan| p.blocks.iter().map(kept).sum::<u64>();
            let flows = |p: &Plan| p.blocks.iter().map(|b| b.firewall_flows.len()).sum::<usize>();
            let waves = |p: &Plan| p.blocks.iter().map(|b| b.waves.len()).sum::<usize>();
            let gap = |p: &Plan| {
                p.blocks.iter().filter(|b| b.status == BlockStatus::Planned).map(|b| b.gap).fold(0.0, f64::max)
            };
            let after_seconds = median(&r.e2e);
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.1}× | {:.2} / {:.2} | {} / {} | {} / {} | {} / {} | {:.3}% / {:.3}% | {} / {} |",
                r.size.name(),
                before_seconds,
                after_seconds,
                ratio(*before_seconds, after_seconds),
                slowest(before),
                slowest(after),
                kept_sum(before),
                kept_sum(after),
                flows(before),
                flows(after),
                waves(before),
                waves(after),
                gap(before) * 100.0,
                gap(after) * 100.0,
                before.summary.n_blocks_infeasible,
                after.summary.n_blocks_infeasible,
            );
        }
        let _ = writeln!(md);
    }
    if let Some(notes) = &options.profile_notes {
        match std::fs::read_to_string(notes) {
            Ok(text) => {
                let _ = writeln!(md, "## Profile\n\n{}", text.trim_end());
                let _ = writeln!(md);
            }
            Err(err) => eprintln!("kplan-bench: no profile notes ({}): {err}", notes.display()),
        }
    }

    if options.scaling {
        let _ = writeln!(md, "## Scaling\n");
        let _ = writeln!(
            md,
            "Nodes double at a fixed number of pools: one block (fra/prod), 8 clusters over 3 zones, the same \
             shapes and namespaces; only the node counts grow.\n"
        );
        scale_table(&mut md, &scaling_nodes);
        let _ = writeln!(
            md,
            "Blocks grow: 300-node blocks of 6 clusters each (datacenters × prod/test/dev), all planned in \
             parallel on the machine's cores.\n"
        );
        scale_table(&mut md, &scaling_blocks);
    }

    if let Some(result) = &ingest_result {
        let _ = writeln!(md, "## Ingest\n");
        match result {
            Err(error) => {
                let _ = writeln!(md, "Failed: {error}\n");
            }
            Ok(result) => {
                let _ = writeln!(
                    md,
                    "A real release `kplan-server` (plaintext on 127.0.0.1, data on the local disk) receives \
                     `kplan.v1.InventoryService/ReportSnapshot` calls: each client has its own connection and sends \
                     200-node snapshots (a new generation each time) one after another. Latency is the client's \
                     wall time per call: the server acknowledges only after the store flushed. Peak RSS is the \
                     server's VmHWM at the end.\n"
                );
                let _ =
                    writeln!(md, "| clients | snapshots | seconds | snapshots/s | p50 ms | p99 ms | max ms | errors |");
                let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|");
                for level in &result.levels {
                    let mut sorted = level.latencies_ms.clone();
                    sorted.sort_by(f64::total_cmp);
                    let pct = |p: f64| crate::stats::percentile(&sorted, p);
                    let _ = writeln!(
                        md,
                        "| {} | {} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {}{} |",
                        level.n_clients,
                        level.n_snapshots,
                        level.seconds,
                        level.n_snapshots as f64 / level.seconds.max(1e-9),
                        pct(0.5),
                        pct(0.99),
                        sorted.last().copied().unwrap_or(0.0),
                        level.errors,
                        level.first_error.as_ref().map_or(String::new(), |e| format!(" ({})", e.replace('|', "/")))
                    );
                }
                let _ = writeln!(
                    md,
                    "\nServer peak RSS (VmHWM): {}\n",
                    result.peak_rss_kib.map_or("unknown".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
                );
                let _ = writeln!(md, "## Store\n");
                if let Some(store) = &result.store {
                    let _ = writeln!(
                        md,
                        "After the ingest above, the server stopped, the store was opened again and every snapshot \
                         it keeps was read back. *Kept* is the sum of those snapshots as compact JSON (the data, \
                         not the encoding); *on disk* is the data directory's size (apparent, and allocated \
                         blocks).\n"
                    );
                    let _ = writeln!(
                        md,
                        "| snapshots kept | kept MiB | on disk MiB (apparent) | on disk MiB (allocated) | on disk ÷ kept |"
                    );
                    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
                    let mib = |b: u64| b as f64 / 1048576.0;
                    let _ = writeln!(
                        md,
                        "| {} | {:.1} | {:.1} | {:.1} | {:.2} |\n",
                        store.n_snapshots,
                        mib(store.bytes_kept),
                        mib(store.bytes_apparent),
                        mib(store.bytes_allocated),
                        ratio(store.bytes_allocated as f64, store.bytes_kept as f64)
                    );
                } else {
                    let _ = writeln!(md, "The store could not be read back (see the run's log).\n");
                }
            }
        }
    }

    std::fs::write(&options.out, md).with_context(|| format!("writing {}", options.out.display()))?;
    eprintln!("kplan-bench: wrote {}", options.out.display());
    Ok(())
}

/// `yes` when every repeat gave the same content digest, else how many differ.
fn identical_across(plans: &[Plan]) -> String {
    let digests: BTreeSet<&str> = plans.iter().map(|p| p.fingerprint.content_digest.as_str()).collect();
    match digests.len() {
        0 | 1 if plans.iter().all(|p| !p.fingerprint.content_digest.is_empty()) => "yes".to_string(),
        0 | 1 => "unknown (no digest)".to_string(),
        n => format!("no ({n} distinct in {})", plans.len()),
    }
}

/// One row per block of `plans[0]`: solve time over the repeats, gap, cost ÷ bound, cost ÷ greedy,
/// and the block's placement classes and composition model size when known.
fn per_block_table(md: &mut String, plans: &[Plan], greedy: &Plan, shapes: &BTreeMap<String, BlockShape>) {
    let _ = writeln!(
        md,
        "| block | nodes | status | solver | solve s | gap | objective | lower bound | cost ÷ bound | greedy objective | \
         plan ÷ greedy | kept plan / greedy | flows plan / greedy | waves plan / greedy | \
         node / pod classes, rows | model columns × rows |"
    );
    let _ = writeln!(md, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let greedy_by_name: BTreeMap<String, &BlockPlan> = greedy.blocks.iter().map(|b| (block_name(b), b)).collect();
    for (idx, block) in plans[0].blocks.iter().enumerate() {
        let times: Vec<f64> = plans.iter().filter_map(|p| p.blocks.get(idx)).map(|b| b.solve_seconds).collect();
        let greedy = greedy_by_name.get(&block_name(block));
        let g = |f: &dyn Fn(&BlockPlan) -> String| greedy.map_or("-".to_string(), |b| f(b));
        let _ = writeln!(
            md,
            "| {} | {} | {:?} | {} | {} | {:.3}% | {:.0} | {:.0} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} | {} |",
            block_name(block),
            block.nodes_before,
            block.status,
            block.solver_status,
            spread(&times),
            block.gap * 100.0,
            block.objective,
            block.lower_bound,
            if block.status == BlockStatus::Planned && block.lower_bound > 0.0 {
                format!("{:.4}", block.objective / block.lower_bound)
            } else {
                "-".to_string()
            },
            greedy_objective(block, &greedy_by_name).map_or("-".to_string(), |g| format!("{g:.0}")),
            match greedy_objective(block, &greedy_by_name) {
                Some(g) if block.status == BlockStatus::Planned => format!("{:.3}", ratio(block.objective, g)),
                _ => "-".to_string(),
            },
            kept(block),
            g(&|b| kept(b).to_string()),
            block.firewall_flows.len(),
            g(&|b| b.firewall_flows.len().to_string()),
            block.waves.len(),
            g(&|b| b.waves.len().to_string()),
            shapes
                .get(&block_name(block))
                .map_or("-".to_string(), |s| format!("{} / {}, {}", s.node_classes, s.pod_classes, s.class_rows)),
            shapes.get(&block_name(block)).map_or("-".to_string(), |s| format!("{} × {}", s.variables, s.constraints)),
        );
    }
}

fn scale_table(md: &mut String, points: &[ScalePoint]) {
    let _ = writeln!(md, "| estate | nodes | blocks | propose s (e2e) | slowest block s | sum of block s |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            p.label,
            p.n_nodes,
            p.n_blocks,
            spread(&p.e2e),
            f2(p.block_seconds_max),
            f2(p.block_seconds_sum)
        );
    }
    let _ = writeln!(md);
}
