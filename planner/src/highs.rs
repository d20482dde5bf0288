//! HiGHS through good_lp: the one place that runs a solver. A
//! [`LinearModel`](crate::model::LinearModel) goes in with its warm start and
//! [`SolverSettings`]; a [`MipResult`] comes out (status, values, objective,
//! the proved bound). What stops a solve is a deterministic work limit
//! (branch-and-bound nodes, HiGHS `mip_max_nodes`) with a fixed `random_seed`
//! and thread count, so the same model gives the same answer on any machine.
//! The time limit is only a safety net: a result it cut is marked
//! [`MipResult::stopped_by_clock`]. HiGHS runs on a worker thread under this
//! module's own deadline too, because its MIP does not always honour its time
//! limit.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use good_lp::{Expression, ProblemVariables, SolverModel, variable};
use highs::{HighsModelStatus, HighsSolutionStatus};

use super::model::LinearModel;

// HiGHS

/// How HiGHS runs one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverSettings {
    /// The wall-clock safety net (HiGHS `time_limit`).
    pub time_limit_seconds: f64,
    /// The deterministic work limit (HiGHS `mip_max_nodes`).
    pub max_nodes: u64,
    /// HiGHS `random_seed`.
    pub random_seed: u32,
    /// Relative gap (HiGHS `mip_rel_gap`).
    pub mip_rel_gap: f64,
    /// Absolute gap (HiGHS `mip_abs_gap`).
    pub mip_abs_gap: f64,
    pub threads: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MipStatus {
    Optimal,
    GapLimit,
    /// Stopped by the work limit, with a solution (deterministic).
    WorkLimit,
    /// Stopped by the wall-clock safety net, with a solution.
    TimeLimit,
    Infeasible,
    /// Stopped without a feasible solution.
    NoSolution,
    /// Our own deadline passed before HiGHS returned.
    Deadline,
    Error,
}

#[derive(Debug, Clone)]
pub struct MipResult {
    pub status: MipStatus,
    pub values: Option<Vec<f64>>,
    pub objective: f64,
    /// HiGHS's MIP dual bound (a proved lower bound), or `-inf` when unknown.
    pub dual_bound: f64,
    pub seconds: f64,
    pub message: String,
    /// The wall clock (the safety net, or this module's deadline) or the
    /// machine's memory ended the solve: the result depends on the machine.
    pub stopped_by_clock: bool,
}

/// Solves `model` with HiGHS (through good_lp) on a worker thread, giving up
/// after the time limit plus a grace period even if HiGHS does not return.
pub fn solve_mip(model: &LinearModel, warm_start: Option<Vec<f64>>, settings: SolverSettings) -> MipResult {
    let started = Instant::now();
    let (sender, receiver) = mpsc::channel();
    let owned = model.clone();
    let spawned = std::thread::Builder::new().name("kplan-highs".to_string()).spawn(move || {
        let result = run_highs(&owned, warm_start.as_deref(), settings);
        let _ = sender.send(result);
    });
    if let Err(error) = spawned {
        return MipResult {
            status: MipStatus::Error,
            values: None,
            objective: f64::INFINITY,
            dual_bound: f64::NEG_INFINITY,
            seconds: 0.0,
            message: format!("cannot start the solver thread: {error}"),
            stopped_by_clock: false,
        };
    }
    let grace = 1.0 + 0.1 * settings.time_limit_seconds;
    match receiver.recv_timeout(Duration::from_secs_f64(settings.time_limit_seconds.max(0.0) + grace)) {
        Ok(mut result) => {
            result.seconds = started.elapsed().as_secs_f64();
            result
        }
        Err(_) => {
            tracing::warn!(model = %model.name, "highs did not return by the deadline; the solve thread is left to finish on its own");
            MipResult {
                status: MipStatus::Deadline,
                values: None,
                objective: f64::INFINITY,
                dual_bound: f64::NEG_INFINITY,
                seconds: started.elapsed().as_secs_f64(),
                message: "the solver did not return by the deadline".to_string(),
                stopped_by_clock: true,
            }
        }
    }
}

pub(crate) fn run_highs(model: &LinearModel, warm_start: Option<&[f64]>, settings: SolverSettings) -> MipResult {
    let failed = |status: MipStatus, message: String| MipResult {
        status,
        values: None,
        objective: f64::INFINITY,
        dual_bound: f64::NEG_INFINITY,
        seconds: 0.0,
        message,
        stopped_by_clock: false,
    };
    let mut variables = ProblemVariables::new();
    let columns: Vec<good_lp::Variable> = model
        .variables
        .iter()
        .map(|v| {
            let mut definition = variable().min(v.lower).max(v.upper);
            if v.integer {
                definition = definition.integer();
            }
            variables.add(definition)
        })
        .collect();
    let mut objective = Expression::with_capacity(columns.len());
    for (column, v) in columns.iter().zip(&model.variables) {
        if v.objective != 0.0 {
            objective.add_mul(v.objective, *column);
        }
    }
    let mut problem = variables.minimise(objective).using(good_lp::solvers::highs::highs);
    for row in &model.constraints {
        let mut expression = Expression::with_capacity(row.terms.len());
        for &(j, a) in &row.terms {
            expression.add_mul(a, columns[j]);
        }
        if row.lower == row.upper {
            problem.add_constraint(expression.eq(row.lower));
            continue;
        }
        if row.lower.is_finite() {
            problem.add_constraint(expression.clone().geq(row.lower));
        }
        if row.upper.is_finite() {
            problem.add_constraint(expression.leq(row.upper));
        }
    }
    let mut highs_model = match problem.try_into_inner() {
        Ok(m) => m,
        Err(error) => return failed(MipStatus::Error, error.to_string()),
    };
    let options: [(&str, f64); 3] = [
        ("time_limit", settings.time_limit_seconds.max(0.01)),
        ("mip_rel_gap", settings.mip_rel_gap.max(0.0)),
        ("mip_abs_gap", settings.mip_abs_gap.max(0.0)),
    ];
    for (name, value) in options {
        if highs_model.try_set_option(name, value).is_err() {
            return failed(MipStatus::Error, format!("highs rejected option {name}"));
        }
    }
    let integer_options: [(&str, i32); 3] = [
        ("mip_max_nodes", i32::try_from(settings.max_nodes).unwrap_or(i32::MAX)),
        ("random_seed", i32::try_from(settings.random_seed).unwrap_or(i32::MAX)),
        ("threads", i32::try_from(settings.threads.max(1)).unwrap_or(i32::MAX)),
    ];
    for (name, value) in integer_options {
        if highs_model.try_set_option(name, value).is_err() {
            return failed(MipStatus::Error, format!("highs rejected option {name}"));
        }
    }
    if let Some(values) = warm_start
        && values.len() == model.variables.len()
        && highs_model.try_set_solution(Some(values), None, None, None).is_err()
    {
        tracing::debug!(model = %model.name, "highs refused the warm start");
    }
    let solved = match highs_model.try_solve() {
        Ok(s) => s,
        Err(status) => return failed(MipStatus::Error, format!("highs failed: {status:?}")),
    };
    let model_status = solved.status();
    let has_solution = solved.primal_solution_status() == HighsSolutionStatus::Feasible;
    let dual_bound = solved.double_info_value(c"mip_dual_bound").unwrap_or(f64::NEG_INFINITY);
    let status = match model_status {
        HighsModelStatus::Optimal => {
            let gap = solved.mip_gap();
            if gap.is_finite() && gap > 1e-9 { MipStatus::GapLimit } else { MipStatus::Optimal }
        }
        HighsModelStatus::ObjectiveBound | HighsModelStatus::ObjectiveTarget => MipStatus::GapLimit,
        HighsModelStatus::Infeasible | HighsModelStatus::UnboundedOrInfeasible => MipStatus::Infeasible,
        // mip_max_nodes (and iteration limits): deterministic.
        HighsModelStatus::ReachedIterationLimit | HighsModelStatus::ReachedSolutionLimit => MipStatus::WorkLimit,
        // The clock or the machine: the result depends on where it ran.
        HighsModelStatus::ReachedTimeLimit
        | HighsModelStatus::ReachedInterrupt
        | HighsModelStatus::ReachedMemoryLimit => MipStatus::TimeLimit,
        other => return failed(MipStatus::Error, format!("highs ended with {other:?}")),
    };
    let stopped_by_clock = status == MipStatus::TimeLimit;
    if !has_solution {
        let status = if status == MipStatus::Infeasible { status } else { MipStatus::NoSolution };
        return MipResult { dual_bound, stopped_by_clock, ..failed(status, format!("{model_status:?}")) };
    }
    let values = solved.get_solution().columns().to_vec();
    let objective = model.objective_value(&values);
    MipResult {
        status,
        values: Some(values),
        objective,
        dual_bound,
        seconds: 0.0,
        message: String::new(),
        stopped_by_clock,
    }
}

/// The waves model's objective counts waves: an integer. A gap below 1 proves
/// the incumbent optimal, so HiGHS stops as soon as its bound rounds up to it
/// (often at the root) instead of searching for a proof of the last fraction.
pub(crate) const WAVES_ABS_GAP: f64 = 0.999;

/// An MPS model with the solver settings kplan used for it in a comment line
/// first, so an external cross-check can solve it the same way.
pub(crate) fn with_settings(mps: String, settings: SolverSettings) -> String {
    format!(
        "* kplan solver settings: mip_rel_gap={} mip_abs_gap={} threads={} time_limit={} mip_max_nodes={} random_seed={}\n{mps}",
        settings.mip_rel_gap,
        settings.mip_abs_gap,
        settings.threads,
        settings.time_limit_seconds,
        settings.max_nodes,
        settings.random_seed
    )
}

/// The HiGHS library kplan is linked with: part of a plan's fingerprint
/// (another HiGHS may pick another optimum among equals). highs-sys versions
/// follow HiGHS's, and the workspace pins highs-sys exactly; a test checks this
/// constant against Cargo.lock (reading it from the library needs `unsafe`).
pub const HIGHS_VERSION: &str = "1.16.0";

#[cfg(test)]
mod tests {
    #[test]
    fn the_recorded_highs_version_is_the_locked_one() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"highs-sys\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .map(|v| v.trim_end_matches('"').to_string());
        assert_eq!(locked.as_deref(), Some(super::HIGHS_VERSION));
    }
}
