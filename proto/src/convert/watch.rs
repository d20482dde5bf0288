//! Conversions of the watch service's messages: a plan's lifecycle, health and
//! progress (part of [`super`], the one place that converts wire and domain types).

use kplan_model::watch as model;

use super::vec_into;
use crate::v1;

fn state_to_wire(s: model::PlanState) -> i32 {
    (match s {
        model::PlanState::Proposed => v1::PlanState::Proposed,
        model::PlanState::Approved => v1::PlanState::Approved,
        model::PlanState::Superseded => v1::PlanState::Superseded,
        model::PlanState::Abandoned => v1::PlanState::Abandoned,
    }) as i32
}

fn state_from_wire(s: i32) -> model::PlanState {
    match v1::PlanState::try_from(s) {
        Ok(v1::PlanState::Approved) => model::PlanState::Approved,
        Ok(v1::PlanState::Superseded) => model::PlanState::Superseded,
        Ok(v1::PlanState::Abandoned) => model::PlanState::Abandoned,
        _ => model::PlanState::Proposed,
    }
}

pub fn health_status_to_wire(s: model::HealthStatus) -> i32 {
    (match s {
        model::HealthStatus::Unchecked => v1::HealthStatus::Unspecified,
        model::HealthStatus::Ok => v1::HealthStatus::Ok,
        model::HealthStatus::Drifted => v1::HealthStatus::Drifted,
    }) as i32
}

pub fn health_status_from_wire(s: i32) -> model::HealthStatus {
    match v1::HealthStatus::try_from(s) {
        Ok(v1::HealthStatus::Ok) => model::HealthStatus::Ok,
        Ok(v1::HealthStatus::Drifted) => model::HealthStatus::Drifted,
        _ => model::HealthStatus::Unchecked,
    }
}

fn progress_to_wire(p: model::Progress) -> i32 {
    (match p {
        model::Progress::Pending => v1::WaveProgressState::Pending,
        model::Progress::InProgress => v1::WaveProgressState::InProgress,
        model::Progress::Done => v1::WaveProgressState::Done,
    }) as i32
}

fn progress_from_wire(p: i32) -> model::Progress {
    match v1::WaveProgressState::try_from(p) {
        Ok(v1::WaveProgressState::InProgress) => model::Progress::InProgress,
        Ok(v1::WaveProgressState::Done) => model::Progress::Done,
        _ => model::Progress::Pending,
    }
}

impl From<model::PlanLifecycle> for v1::PlanLifecycle {
    fn from(l: model::PlanLifecycle) -> Self {
        v1::PlanLifecycle {
            state: state_to_wire(l.state),
            changed_by: l.changed_by,
            changed_at_unix: l.changed_at_unix,
            superseded_by: l.superseded_by,
        }
    }
}

impl From<v1::PlanLifecycle> for model::PlanLifecycle {
    fn from(l: v1::PlanLifecycle) -> Self {
        model::PlanLifecycle {
            state: state_from_wire(l.state),
            changed_by: l.changed_by,
            changed_at_unix: l.changed_at_unix,
            superseded_by: l.superseded_by,
        }
    }
}

impl From<model::Finding> for v1::Finding {
    fn from(f: model::Finding) -> Self {
        v1::Finding { kind: f.kind, block: f.block, wave: f.wave, subject: f.subject, detail: f.detail }
    }
}

impl From<v1::Finding> for model::Finding {
    fn from(f: v1::Finding) -> Self {
        model::Finding { kind: f.kind, block: f.block, wave: f.wave, subject: f.subject, detail: f.detail }
    }
}

impl From<model::PlanHealth> for v1::PlanHealth {
    fn from(h: model::PlanHealth) -> Self {
        v1::PlanHealth {
            status: health_status_to_wire(h.status),
            checked_at_unix: h.checked_at_unix,
            findings: vec_into(h.findings),
            inventory: vec_into(h.inventory),
        }
    }
}

impl From<v1::PlanHealth> for model::PlanHealth {
    fn from(h: v1::PlanHealth) -> Self {
        model::PlanHealth {
            status: health_status_from_wire(h.status),
            checked_at_unix: h.checked_at_unix,
            findings: vec_into(h.findings),
            inventory: vec_into(h.inventory),
        }
    }
}

impl From<model::WaveProgress> for v1::WaveProgress {
    fn from(w: model::WaveProgress) -> Self {
        v1::WaveProgress {
            block: w.block,
            wave: w.wave,
            progress: progress_to_wire(w.progress),
            steps_done: w.steps_done,
            steps_total: w.steps_total,
            missing: w.missing,
            out_of_order: w.out_of_order,
        }
    }
}

impl From<v1::WaveProgress> for model::WaveProgress {
    fn from(w: v1::WaveProgress) -> Self {
        model::WaveProgress {
            block: w.block,
            wave: w.wave,
            progress: progress_from_wire(w.progress),
            steps_done: w.steps_done,
            steps_total: w.steps_total,
            missing: w.missing,
            out_of_order: w.out_of_order,
        }
    }
}

impl From<model::PlanProgress> for v1::PlanProgress {
    fn from(p: model::PlanProgress) -> Self {
        v1::PlanProgress {
            waves: vec_into(p.waves),
            waves_done: p.waves_done,
            waves_total: p.waves_total,
            oldest_report_unix: p.oldest_report_unix,
            silent_clusters: p.silent_clusters,
        }
    }
}

impl From<v1::PlanProgress> for model::PlanProgress {
    fn from(p: v1::PlanProgress) -> Self {
        model::PlanProgress {
            waves: vec_into(p.waves),
            waves_done: p.waves_done,
            waves_total: p.waves_total,
            oldest_report_unix: p.oldest_report_unix,
            silent_clusters: p.silent_clusters,
        }
    }
}

impl From<model::PlanStatus> for v1::PlanStatus {
    fn from(s: model::PlanStatus) -> Self {
        v1::PlanStatus {
            plan_id: s.plan_id,
            lifecycle: Some(s.lifecycle.into()),
            health: Some(s.health.into()),
            progress: Some(s.progress.into()),
        }
    }
}

impl From<v1::PlanStatus> for model::PlanStatus {
    fn from(s: v1::PlanStatus) -> Self {
        model::PlanStatus {
            plan_id: s.plan_id,
            lifecycle: s.lifecycle.map(Into::into).unwrap_or_default(),
            health: s.health.map(Into::into).unwrap_or_default(),
            progress: s.progress.map(Into::into).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_status_round_trips() {
        let status = model::PlanStatus {
            plan_id: "plan-1".into(),
            lifecycle: model::PlanLifecycle {
                state: model::PlanState::Superseded,
                changed_by: "planner:alice".into(),
                changed_at_unix: 5,
                superseded_by: "plan-2".into(),
            },
            health: model::PlanHealth {
                status: model::HealthStatus::Drifted,
                checked_at_unix: 6,
                findings: vec![model::Finding {
                    kind: "capacity".into(),
                    block: "fra/prod".into(),
                    wave: 3,
                    subject: "c/ns".into(),
                    detail: "short".into(),
                }],
                inventory: vec![kplan_model::InventoryRef {
                    cluster_id: "c".into(),
                    generation: 2,
                    content_sha256: String::new(),
                }],
            },
            progress: model::PlanProgress {
                waves: vec![model::WaveProgress {
                    block: "fra/prod".into(),
                    wave: 1,
                    progress: model::Progress::InProgress,
                    steps_done: 1,
                    steps_total: 2,
                    missing: vec!["node c/n to join fra-prod".into()],
                    out_of_order: true,
                }],
                waves_done: 0,
                waves_total: 1,
                oldest_report_unix: 7,
                silent_clusters: vec!["c".into()],
            },
        };
        let wire: v1::PlanStatus = status.clone().into();
        assert_eq!(model::PlanStatus::from(wire), status);
    }
}
