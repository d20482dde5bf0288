//! `kplan plans approve | abandon | status`: a plan's lifecycle, its health
//! against the live inventory and its progress read from it, as text.

use kplan_model::time::utc_readable;
use kplan_model::watch::{HealthStatus, PlanLifecycle, PlanState, PlanStatus};

use crate::backend::Backend;
use crate::output::{self, Format};

/// One line about a lifecycle: "approved by planner:alice at 2026-12-04 21:00 UTC".
pub fn lifecycle_line(lifecycle: &PlanLifecycle) -> String {
    if lifecycle.changed_by.is_empty() {
        return lifecycle.state.to_string();
    }
    let mut line =
        format!("{} by {} at {}", lifecycle.state, lifecycle.changed_by, utc_readable(lifecycle.changed_at_unix));
    if !lifecycle.superseded_by.is_empty() {
        line.push_str(&format!(" (by plan {})", lifecycle.superseded_by));
    }
    line
}

pub async fn set_lifecycle(backend: &mut Backend, plan_id: &str, approve: bool) -> anyhow::Result<()> {
    let (lifecycle, superseded) = backend.set_lifecycle(plan_id, approve).await?;
    println!("plan {plan_id}: {}", lifecycle_line(&lifecycle));
    for other in superseded {
        println!("plan {other}: superseded by {plan_id}");
    }
    Ok(())
}

pub async fn status(backend: &mut Backend, plan_id: &str, output: Format) -> anyhow::Result<()> {
    let status = backend.plan_status(plan_id, crate::backend::STALE_AFTER_SECONDS).await?;
    let text = match output::structured(output, &status)? {
        Some(text) => text,
        None => status_text(&status),
    };
    print!("{text}");
    Ok(())
}

/// The table form of `kplan plans status`.
pub fn status_text(status: &PlanStatus) -> String {
    let mut out = format!("plan {}: {}\n", status.plan_id, lifecycle_line(&status.lifecycle));
    let health = &status.health;
    match health.status {
        HealthStatus::Unchecked if status.lifecycle.state != PlanState::Approved => {
            out.push_str("health: unchecked (only approved plans are watched)\n")
        }
        HealthStatus::Unchecked => out.push_str("health: unchecked (no report since the approval)\n"),
        other => out.push_str(&format!(
            "health: {other} (checked {}, {} finding(s))\n",
            utc_readable(health.checked_at_unix),
            health.findings.len()
        )),
    }
    for finding in &health.findings {
        out.push_str(&format!("  - {finding}\n"));
    }
    let progress = &status.progress;
    out.push_str(&format!("progress: {} of {} wave(s) done\n", progress.waves_done, progress.waves_total));
    if !progress.silent_clusters.is_empty() {
        out.push_str(&format!("stopped reporting: {}\n", progress.silent_clusters.join(", ")));
    }
    let rows: Vec<Vec<String>> = progress
        .waves
        .iter()
        .map(|w| {
            vec![
                w.block.clone(),
                w.wave.to_string(),
                if w.out_of_order { format!("{} (out of order)", w.progress) } else { w.progress.to_string() },
                format!("{}/{}", w.steps_done, w.steps_total),
                w.missing.join("; "),
            ]
        })
        .collect();
    out.push_str(&output::table(&["BLOCK", "WAVE", "PROGRESS", "STEPS", "STILL MISSING"], &rows));
    out
}
