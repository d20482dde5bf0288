//! Solving one block: greedy, the composition model, the waves, the plan.
//!
//! 1. Pre-checks (`explain.rs`): a block that cannot be planned says why, before
//!    any solve.
//! 2. The greedy composition and its waves: the warm start, the fallback and the
//!    `greedy_objective`.
//! 3. The composition model (`model.rs`) in HiGHS through good_lp, warm-started
//!    with the greedy composition, stopped by a deterministic work limit
//!    (`solver.composition_max_nodes`), with `solver.time_limit_seconds` only as
//!    a wall-clock safety net. No decision here reads the clock: a stage that a
//!    safety net stopped is listed in `BlockPlan::wall_clock_stops` and the block's
//!    status is `wall-clock-limit`, never a normal one.
//! 4. Waves for the better composition (greedy list scheduling; when that is
//!    longer than the wave lower bound and the model is small enough, the
//!    time-indexed waves model with the greedy schedule as warm start).
//! 5. The plan, checked by the planner's exact replay and then by the validator;
//!    a rejected candidate falls back to the next (model, then greedy), and a
//!    block with no acceptable candidate is infeasible with the reasons.

use std::collections::BTreeSet;
use std::time::Instant;

use kplan_model::policy::SolverPolicy;
use kplan_model::{BlockPlan, BlockStatus, ClusterSnapshot, Policy};

use super::blocks::{Block, ZoneTiers};
use super::explain;
use super::greedy::{greedy_composition, greedy_in_zones};
use super::model::{Composition, CompositionModel, ZoneAnalysis, composition_flows, model_units, zone_choices};
use super::mps::write_mps;
use super::waves::{Assignment, Schedule, Side, Stall, StallKind, WavesModel, replay, wave_lower_bound};
use crate::context::{BlockContext, BlockOutcome, BlockSettings};
use crate::headroom::usable;
use crate::highs::{MipStatus, SolverSettings, WAVES_ABS_GAP, solve_mip, with_settings};
use crate::materialise::{empty_plan, materialise};
use crate::realize::{RealizeFailure, Realized, finish, pool_size, realize};

/// Which candidate a plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Model,
    Greedy,
}

/// Plans one block; `validate` returns the validator's objections to a block plan.
pub fn plan_block(
    inventory: &[ClusterSnapshot],
    policy: &Policy,
    block: &Block,
    zone_tiers: &ZoneTiers,
    settings: BlockSettings,
    validate: &(dyn Fn(&BlockPlan) -> Vec<String> + Sync),
) -> BlockOutcome {
    let started = Instant::now();
    let ctx = BlockContext::new(inventory, policy, block, zone_tiers);
    let solver = &settings.solver;
    let mut models = Vec::new();
    // The stages a wall-clock safety net stopped (the plan then depends on the machine).
    let mut clock_stops: Vec<&'static str> = Vec::new();
    let infeasible = |explanation: String, started: Instant| {
        let mut plan = empty_plan(&ctx);
        plan.status = BlockStatus::Infeasible;
        plan.explanation = explanation;
        plan.solver_status = "infeasible".to_string();
        plan.nodes_after = plan.nodes_before;
        plan.solve_seconds = started.elapsed().as_secs_f64();
        plan
    };
    if let Some(found) = explain::precheck(&ctx) {
        return BlockOutcome { plan: infeasible(found.explanation, started), models, stalled: found.staging };
    }

    let wave_bound = wave_lower_bound(&ctx.data, ctx.budget);
    let greedy = greedy_composition(&ctx.input);
    let greedy_realized = greedy.clone().map(|c| realize(&ctx, c));

    // The composition model.
    let analysis = zone_choices(&ctx.input);
    let composition = if settings.use_solver {
        solve_composition(&ctx, solver, greedy.as_ref(), analysis.as_ref(), &mut clock_stops)
    } else {
        CompositionSolve::default()
    };
    let CompositionSolve {
        status: mip_status,
        dual_bound,
        model: mut composition_model,
        settings: composition_settings,
        realized: model_realized,
    } = composition;

    // Candidates, best objective first (the model's first on a tie).
    let mut staging_models = Vec::new();
    let mut candidates: Vec<(Origin, Realized)> = Vec::new();
    let mut failures: Vec<RealizeFailure> = Vec::new();
    for (origin, realized) in [(Origin::Model, model_realized), (Origin::Greedy, greedy_realized.clone())] {
        match realized {
            Some(Ok(r)) => candidates.push((origin, r)),
            Some(Err(failure)) => {
                // The greedy waves got stuck. First (cheap): keep more nodes until the
                // staging goes through. Then, with time left, the waves model may find a
                // schedule for the original composition (fewer nodes: the better plan).
                if candidates.is_empty()
                    && let RealizeFailure::Stall { stall, composition, assignment } = &failure
                {
                    let repaired = repair_staging(&ctx, (**composition).clone(), (**stall).clone());
                    // A repair within the composition solve's own tolerance (mip_gap of the
                    // nodes kept, at least half a node; no new flow) is as good as its answer:
                    // the rescue could not do better by more than the solve already accepts.
                    let close_enough = repaired.as_ref().is_some_and(|r| {
                        let extra = r.composition.nodes_kept().saturating_sub(composition.nodes_kept()) as f64;
                        r.composition.keep.len() == composition.keep.len()
                            && composition_flows(&ctx.input, &r.composition)
                                == composition_flows(&ctx.input, composition)
                            && extra <= (solver.mip_gap * composition.nodes_kept() as f64).max(0.5)
                    });
                    if let Some(repaired) = repaired {
                        tracing::debug!(
                            block = %block.key,
                            ?origin,
                            stall_wave = stall.wave,
                            nodes_kept = composition.nodes_kept(),
                            repaired_nodes_kept = repaired.composition.nodes_kept(),
                            close_enough,
                            "staging repaired"
                        );
                        candidates.push((origin, repaired));
                    }
                    if settings.use_solver
                        && !close_enough
                        && let Some(schedule) =
                            rescue_waves(&ctx, assignment, stall.wave, settings, &mut staging_models, &mut clock_stops)
                    {
                        candidates
                            .push((origin, finish(&ctx, (**composition).clone(), (**assignment).clone(), schedule)));
                    }
                }
                failures.push(failure);
            }
            None => {}
        }
    }
    candidates.sort_by(|a, b| a.1.objective.total_cmp(&b.1.objective));
    let greedy_objective = match &greedy_realized {
        Some(Ok(r)) => r.objective,
        _ => 0.0,
    };

    // Shorten the waves of the best candidate with the waves model.
    let waves_model_text = match candidates.first_mut() {
        Some((_, best)) if settings.use_solver => shorten_waves(&ctx, settings, best, wave_bound, &mut clock_stops),
        _ => None,
    };

    // The plan: the first candidate the replay and the validator accept.
    let mut rejections: Vec<String> = Vec::new();
    let mut chosen: Option<(Origin, BlockPlan, f64)> = None;
    for (origin, realized) in &candidates {
        if let Err(error) =
            replay(&ctx.data, &realized.assignment, &realized.schedule, ctx.n_sources(), &ctx.headroom, ctx.budget)
        {
            tracing::warn!(block = %block.key, ?origin, error, "a candidate plan fails the planner's own replay");
            rejections.push(error);
            continue;
        }
        let plan = materialise(&ctx, realized);
        let validating = Instant::now();
        let violations = validate(&plan);
        tracing::debug!(block = %block.key, seconds = validating.elapsed().as_secs_f64(), "validated");
        if violations.is_empty() {
            chosen = Some((*origin, plan, realized.objective));
            break;
        }
        tracing::warn!(block = %block.key, ?origin, n_violations = violations.len(), "the validator rejected a candidate plan");
        rejections.extend(violations);
    }

    let Some((origin, mut plan, objective)) = chosen else {
        let explanation = if !rejections.is_empty() {
            explain::rejected(&ctx, &rejections)
        } else {
            explain::no_plan(&ctx, &failures, mip_status == Some(MipStatus::Infeasible))
        };
        let stalled = failures.iter().any(|f| matches!(f, RealizeFailure::Stall { .. }));
        return BlockOutcome { plan: infeasible(explanation, started), models, stalled };
    };

    // Figures, status and notes.
    let composition_bound = analytic_bound(&ctx, analysis.as_ref().map(|a| a.flows_lower_bound))
        .max(if dual_bound.is_finite() { dual_bound } else { 0.0 });
    let figures = Figures { objective, composition_bound, wave_bound, greedy_objective };
    state_figures(&ctx, settings, &mut plan, figures, origin, mip_status, &clock_stops);
    if settings.write_models
        && let Some(built) = &mut composition_model
    {
        built.model.objective_offset = ctx.weights.waves * plan.waves.len() as f64;
        let text = match composition_settings {
            Some(solver_settings) => with_settings(write_mps(&built.model), solver_settings),
            None => write_mps(&built.model),
        };
        models.push((format!("{}.composition", block.key.file_name()), text));
        models.append(&mut staging_models);
        if let Some(text) = waves_model_text {
            models.push((format!("{}.waves", block.key.file_name()), text));
        }
    }
    plan.solve_seconds = started.elapsed().as_secs_f64();
    BlockOutcome { plan, models, stalled: false }
}

/// The figures a plan states about itself.
#[derive(Debug, Clone, Copy)]
struct Figures {
    objective: f64,
    composition_bound: f64,
    wave_bound: u64,
    greedy_objective: f64,
}

/// Sets the plan's objective, bound, gap, solver status and the notes that
/// say how the plan was found (a work limit, a wall-clock stop, a fallback).
fn state_figures(
    ctx: &BlockContext,
    settings: BlockSettings,
    plan: &mut BlockPlan,
    figures: Figures,
    origin: Origin,
    mip_status: Option<MipStatus>,
    clock_stops: &[&'static str],
) {
    let Figures { objective, composition_bound, wave_bound, greedy_objective } = figures;
    let solver = &settings.solver;
    let waves_bound = ctx.weights.waves * wave_bound as f64;
    let lower_bound = (composition_bound + waves_bound).min(objective);
    plan.objective = objective;
    plan.lower_bound = lower_bound;
    plan.gap = if objective > 0.0 { ((objective - lower_bound) / objective.max(1e-9)).max(0.0) } else { 0.0 };
    plan.greedy_objective = greedy_objective;
    let proved = objective - lower_bound < 0.5 * ctx.weights.waves;
    plan.solver_status = match (origin, mip_status) {
        // Not a normal status: another run, on a quieter machine, may give another plan.
        _ if !clock_stops.is_empty() => SOLVER_STATUS_WALL_CLOCK,
        (Origin::Model, Some(MipStatus::Optimal)) if proved => "optimal",
        (Origin::Model, Some(MipStatus::Optimal | MipStatus::GapLimit)) => "gap-limit",
        (Origin::Model, _) => "work-limit",
        // No model plan, a worse one, or one the validator rejected.
        (Origin::Greedy, _) => "greedy-fallback",
    }
    .to_string();
    plan.wall_clock_stops = clock_stops.iter().map(ToString::to_string).collect();
    let mut notes = Vec::new();
    if !clock_stops.is_empty() {
        notes.push(format!(
            "stopped by the wall-clock safety limit ({}): the machine was too busy or the limits too high; \
             another run may give another plan (raise solver.time_limit_seconds, staging_seconds or \
             waves_seconds, or lower the node limits)",
            clock_stops.join(", ")
        ));
    }
    match (origin, mip_status) {
        (Origin::Model, Some(MipStatus::WorkLimit)) => notes.push(format!(
            "the solver stopped at its work limit ({} branch-and-bound nodes, solver.composition_max_nodes): \
             this is the best plan it found, within {:.2e} of the proved bound",
            solver.composition_max_nodes, plan.gap
        )),
        (Origin::Greedy, status) if settings.use_solver => notes.push(match status {
            Some(MipStatus::Deadline | MipStatus::NoSolution) => {
                "the solver found no plan within its limits: this is the greedy plan".to_string()
            }
            Some(MipStatus::Error) => "the solver failed: this is the greedy plan".to_string(),
            _ => "the solver's plan was not usable: this is the greedy plan".to_string(),
        }),
        _ => {}
    }
    for note in notes {
        plan.explanation = if plan.explanation.is_empty() { note } else { format!("{}\n{note}", plan.explanation) };
    }
}

/// Shortens `best`'s waves with the time-indexed waves model when they are
/// longer than the lower bound (and the model is small enough), keeping a
/// shorter schedule only when the replay accepts it; the model's MPS text when
/// models are written.
fn shorten_waves(
    ctx: &BlockContext,
    settings: BlockSettings,
    best: &mut Realized,
    wave_bound: u64,
    clock_stops: &mut Vec<&'static str>,
) -> Option<String> {
    if u64::from(best.schedule.n_waves) <= wave_bound && !settings.write_models {
        return None;
    }
    let solver = &settings.solver;
    let block = ctx.block;
    let mut waves_model_text = None;
    {
        let horizon = best.schedule.n_waves;
        let fits_size =
            WavesModel::size_estimate(&ctx.data, &best.assignment, horizon) as u64 <= solver.waves_max_variables;
        let run = solver.waves_max_nodes > 0 && solver.waves_seconds > 0.0;
        if fits_size && (run || settings.write_models) {
            let waves_model = WavesModel::build(
                &block.key.file_name(),
                &ctx.data,
                &best.assignment,
                ctx.n_sources(),
                &ctx.headroom,
                ctx.budget,
                horizon,
            );
            let warm = waves_model.encode(&ctx.data, &best.schedule);
            let waves_settings =
                highs_settings(solver, solver.waves_max_nodes, solver.waves_seconds.max(0.05), 0.0, WAVES_ABS_GAP);
            if run {
                let result = solve_mip(&waves_model.model, warm, waves_settings);
                if result.stopped_by_clock {
                    clock_stops.push("waves");
                }
                tracing::debug!(
                    block = %block.key,
                    status = ?result.status,
                    seconds = result.seconds,
                    horizon,
                    wave_bound,
                    n_variables = waves_model.model.variables.len(),
                    n_constraints = waves_model.model.constraints.len(),
                    "waves model solved"
                );
                if let Some(values) = &result.values {
                    let schedule = waves_model.decode(&ctx.data, values);
                    if schedule.n_waves < best.schedule.n_waves
                        && replay(&ctx.data, &best.assignment, &schedule, ctx.n_sources(), &ctx.headroom, ctx.budget)
                            .is_ok()
                    {
                        let realized = finish(ctx, best.composition.clone(), best.assignment.clone(), schedule);
                        *best = realized;
                    }
                }
            }
            if settings.write_models {
                waves_model_text = Some(with_settings(write_mps(&waves_model.model), waves_settings));
            }
        }
    }
    waves_model_text
}

/// What the composition model gave: its status and dual bound, the model
/// (for `--write-model`), its settings, and its plan made concrete.
#[derive(Default)]
struct CompositionSolve {
    status: Option<MipStatus>,
    dual_bound: f64,
    model: Option<CompositionModel>,
    settings: Option<SolverSettings>,
    realized: Option<Result<Realized, RealizeFailure>>,
}

/// The composition model in HiGHS, warm-started with the greedy composition
/// and the greedy within the zone choices that need the fewest flows.
fn solve_composition(
    ctx: &BlockContext,
    solver: &SolverPolicy,
    greedy: Option<&Composition>,
    analysis: Option<&ZoneAnalysis>,
    clock_stops: &mut Vec<&'static str>,
) -> CompositionSolve {
    let mut input = ctx.input.clone();
    // Starts: the greedy, and the greedy within the zone choices that need the fewest flows.
    let mut starts: Vec<Composition> = greedy.into_iter().cloned().collect();
    if let Some(analysis) = analysis {
        input.flows_lower_bound = Some(analysis.flows_lower_bound);
        let fewest = analysis.choices.first().map_or(0, |c| c.flows);
        starts.extend(
            analysis
                .choices
                .iter()
                .take_while(|c| c.flows == fewest)
                .take(8)
                .filter_map(|c| greedy_in_zones(&input, c)),
        );
        // A single target with fewer flows than any two targets could need:
        // more targets cannot be better, so the model needs only one.
        let single_target_flows =
            starts.iter().filter(|c| c.n_targets() == 1).map(|c| composition_flows(&input, c)).min();
        if input.max_targets > 1 && single_target_flows.is_some_and(|f| f < analysis.spread_minimum.saturating_mul(2)) {
            input.max_targets = 1;
            input.flows_lower_bound = analysis.choices.first().map(|c| c.flows);
        }
    }
    let built = CompositionModel::build(&input);
    let warm = starts
        .iter()
        .filter_map(|c| built.encode(&input, c))
        .filter(|values| built.model.first_violation(values, 1e-7).is_none())
        .min_by(|a, b| built.model.objective_value(a).total_cmp(&built.model.objective_value(b)));
    let greedy_kept = greedy.as_ref().map_or(ctx.data.n_nodes() as u64, |c| c.nodes_kept());
    let solver_settings = highs_settings(
        solver,
        solver.composition_max_nodes,
        solver.time_limit_seconds,
        0.0,
        // Flows exact; nodes kept within mip_gap (at least half a node).
        ctx.weights.nodes * (solver.mip_gap * greedy_kept as f64).max(0.5),
    );
    let result = solve_mip(&built.model, warm, solver_settings);
    if result.stopped_by_clock {
        clock_stops.push("composition");
    }
    tracing::debug!(
        block = %ctx.block.key,
        status = ?result.status,
        seconds = result.seconds,
        n_variables = built.model.variables.len(),
        n_constraints = built.model.constraints.len(),
        "composition solved"
    );
    let realized = result.values.as_ref().map(|values| {
        let composition = built.decode(&input, values);
        let realized = realize(ctx, composition);
        if let Err(failure) = &realized {
            tracing::debug!(block = %ctx.block.key, ?failure, "the composition model's plan could not be realized");
        }
        realized
    });
    CompositionSolve {
        status: Some(result.status),
        dual_bound: result.dual_bound,
        model: Some(built),
        settings: Some(solver_settings),
        realized,
    }
}

/// A bound on the composition part of the objective without a solve: the
/// fewest flows any zone choice needs, and the fewest nodes that could hold the
/// demand (largest nodes only) plus the control plane.
fn analytic_bound(ctx: &BlockContext, flows_lower_bound: Option<u64>) -> f64 {
    let data = &ctx.data;
    let largest = (0..data.n_nodes()).filter(|&i| data.node_allowed[i]).fold([0.0f64; 3], |acc, i| {
        let u = model_units(data.node_allocatable[i]);
        [acc[0].max(u[0]), acc[1].max(u[1]), acc[2].max(u[2])]
    });
    let demand = model_units(data.demand);
    let workers = (0..3)
        .filter(|&r| demand[r] > 0.0 && largest[r] > 0.0)
        .map(|r| (demand[r] / usable(ctx.headroom[r], largest[r]) - 1e-9).ceil().max(0.0))
        .fold(0.0, f64::max);
    let nodes = if ctx.dedicated_control_plane {
        workers + ctx.n_control_plane as f64
    } else {
        workers.max(ctx.n_control_plane as f64)
    };
    ctx.weights.flows * flows_lower_bound.unwrap_or(0) as f64 + ctx.weights.nodes * nodes
}

/// Keeps more nodes until the greedy staging goes through: while the schedule
/// stalls because the next namespace does not fit its target, the target keeps
/// one more worker that would otherwise be freed, taken from a source that can
/// release it now (not one of the sources without slack), in a zone the target
/// already spans when possible (no new flows). Feasibility comes first in the
/// objective, so a plan with more nodes beats no plan; the lower bound is
/// untouched, so the gap shows the price honestly.
fn repair_staging(ctx: &BlockContext, mut composition: Composition, mut stall: Stall) -> Option<Realized> {
    let data = &ctx.data;
    let max = ctx.policy.max_nodes_per_cluster.max(1);
    for _ in 0..data.n_nodes() {
        let StallKind::Stuck { next_namespace: Some(next), sources_without_slack, class_short } = &stall.kind else {
            return None;
        };
        // When a placement class is what the target lacks, only its nodes help.
        let class_row = class_short.as_ref().filter(|short| short.side == Side::Target(next.target)).map(|s| s.row);
        let offers = |p: usize| {
            class_row.is_none_or(|k| {
                data.pools[p].members.first().is_some_and(|&i| data.placement.rows[k].node_supply[i] > 0)
            })
        };
        let target = next.target;
        if composition.keep[target].iter().sum::<u64>() >= max {
            return None;
        }
        let stuck: BTreeSet<usize> = sources_without_slack.iter().map(|s| s.source).collect();
        let spanned: BTreeSet<&str> = (0..data.pools.len())
            .filter(|&p| composition.keep[target][p] > 0)
            .map(|p| data.pools[p].zone.as_str())
            .collect();
        let has_free =
            |p: usize| (data.pools[p].members.len() as u64) > composition.keep.iter().map(|k| k[p]).sum::<u64>();
        let demand = model_units(data.namespace_demand[next.namespace]);
        let size = |p: usize| pool_size(data.pools[p].allocatable, &demand);
        let best = (0..data.pools.len())
            .filter(|&p| {
                let pool = &data.pools[p];
                pool.allowed
                    && pool.role == kplan_model::NodeRole::Worker
                    && has_free(p)
                    && offers(p)
                    // Without slack for the namespace sums, a source may still
                    // spare a node of a class (the next realize checks it).
                    && (class_row.is_some() || !stuck.contains(&pool.source))
            })
            .max_by(|&a, &b| {
                let in_zone = |p: usize| spanned.contains(data.pools[p].zone.as_str());
                in_zone(a).cmp(&in_zone(b)).then(size(a).total_cmp(&size(b))).then(b.cmp(&a))
            })?;
        composition.keep[target][best] += 1;
        match realize(ctx, composition.clone()) {
            Ok(realized) => return Some(realized),
            Err(RealizeFailure::Stall { stall: next_stall, composition: next_composition, .. }) => {
                stall = *next_stall;
                composition = *next_composition;
            }
            Err(_) => return None,
        }
    }
    None
}

/// A schedule from the waves model alone, for an assignment the greedy waves
/// could not stage. The horizon allows one unit per wave (every schedule fits).
fn rescue_waves(
    ctx: &BlockContext,
    assignment: &Assignment,
    stall_wave: u32,
    settings: BlockSettings,
    models: &mut Vec<(String, String)>,
    clock_stops: &mut Vec<&'static str>,
) -> Option<Schedule> {
    let solver = &settings.solver;
    if solver.staging_max_nodes == 0 || solver.staging_seconds <= 0.0 {
        return None;
    }
    let full_horizon = (ctx.data.n_nodes() + ctx.data.n_namespaces()).min(400) as u32;
    // First a short horizon (twice the waves the greedy managed): a much smaller model
    // that usually holds a schedule; then the full horizon with the time left.
    let short_horizon = (2 * stall_wave).max(wave_lower_bound(&ctx.data, ctx.budget) as u32 + 2).min(full_horizon);
    let mut horizons = vec![short_horizon, full_horizon];
    horizons.dedup();
    for (attempt, horizon) in horizons.into_iter().enumerate() {
        // Each attempt has its own work limit (`solver.staging_max_nodes`); HiGHS
        // usually proves a too-short horizon infeasible in a few nodes.
        if horizon == 0
            || WavesModel::size_estimate(&ctx.data, assignment, horizon) as u64 > solver.staging_max_variables
        {
            continue;
        }
        let waves_model = WavesModel::build(
            &ctx.block.key.file_name(),
            &ctx.data,
            assignment,
            ctx.n_sources(),
            &ctx.headroom,
            ctx.budget,
            horizon,
        );
        // Any schedule will do (a gap of 100% stops at the first one): the waves
        // model shortens the best candidate afterwards, warm-started from it.
        let solver_settings =
            highs_settings(solver, solver.staging_max_nodes, solver.staging_seconds, 1.0, WAVES_ABS_GAP);
        let result = solve_mip(&waves_model.model, None, solver_settings);
        if result.stopped_by_clock && !clock_stops.contains(&"staging rescue") {
            clock_stops.push("staging rescue");
        }
        if settings.write_models {
            models.push((
                format!("{}.staging-{}", ctx.block.key.file_name(), attempt + 1),
                with_settings(write_mps(&waves_model.model), solver_settings),
            ));
        }
        tracing::debug!(
            block = %ctx.block.key,
            status = ?result.status,
            seconds = result.seconds,
            horizon,
            stall_wave,
            n_variables = waves_model.model.variables.len(),
            "staging rescue solved"
        );
        let Some(values) = result.values.as_ref() else { continue };
        let schedule = waves_model.decode(&ctx.data, values);
        if replay(&ctx.data, assignment, &schedule, ctx.n_sources(), &ctx.headroom, ctx.budget).is_ok() {
            return Some(schedule);
        }
    }
    None
}

/// `BlockPlan::solver_status` of a block that a wall-clock safety net stopped.
pub const SOLVER_STATUS_WALL_CLOCK: &str = "wall-clock-limit";

/// HiGHS settings of one solve: the policy's seed and threads, a deterministic
/// work limit and a wall-clock safety net.
fn highs_settings(
    solver: &SolverPolicy,
    max_nodes: u64,
    safety_seconds: f64,
    mip_rel_gap: f64,
    mip_abs_gap: f64,
) -> SolverSettings {
    SolverSettings {
        time_limit_seconds: safety_seconds,
        max_nodes,
        random_seed: solver.random_seed,
        mip_rel_gap,
        mip_abs_gap,
        threads: solver.threads.max(1),
    }
}
