//! The planner's one headroom rule: a demand fits on an allocatable amount when
//! `demand <= (1 - headroom) * allocatable`, tested with one relative safety
//! margin ([`MARGIN`]) so that every part of the planner (greedy, model,
//! waves, explanations) agrees on the borderline cases, and what the planner
//! accepts also passes the validator's exact check. The validator keeps its
//! own arithmetic, on purpose (it does not trust this module).

use kplan_model::Resources;

/// Per-resource headroom as fractions, in the order cpu, memory, pods.
pub type HeadroomFractions = [f64; 3];

/// Relative safety margin of every floating-point capacity test.
pub const MARGIN: f64 = 1e-9;

/// What a workload may use of `allocatable` under `headroom`: `(1 - h) * a`.
pub fn usable(headroom: f64, allocatable: f64) -> f64 {
    (1.0 - headroom) * allocatable
}

/// [`usable`] less the safety margin: what the planner lets itself fill.
pub fn safe_usable(headroom: f64, allocatable: f64) -> f64 {
    usable(headroom, allocatable) * (1.0 - MARGIN)
}

/// One resource: a zero demand always fits, else `demand <= safe_usable`.
pub fn fits_one(demand: f64, headroom: f64, allocatable: f64) -> bool {
    demand <= 0.0 || demand <= safe_usable(headroom, allocatable)
}

/// Every resource of `demand` fits on `allocatable` under `headroom`.
pub fn fits(demand: Resources, allocatable: Resources, headroom: &HeadroomFractions) -> bool {
    let d = parts(demand);
    let a = parts(allocatable);
    (0..3).all(|r| fits_one(d[r] as f64, headroom[r], a[r] as f64))
}

/// The first resource (0 cpu, 1 memory, 2 pods) that does not fit, if any.
pub fn first_misfit(demand: Resources, allocatable: Resources, headroom: &HeadroomFractions) -> Option<usize> {
    let d = parts(demand);
    let a = parts(allocatable);
    (0..3).find(|&r| !fits_one(d[r] as f64, headroom[r], a[r] as f64))
}

fn parts(r: Resources) -> [u64; 3] {
    [r.cpu_millis, r.memory_bytes, r.pods]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_borderline_is_shared() {
        let h = [0.2, 0.2, 0.2];
        let a = Resources::new(10_000, 100, 10);
        assert!(fits(Resources::new(7_999, 79, 7), a, &h));
        // exactly at (1 - h) * a: refused by the margin, so a float rounding
        // elsewhere can never make it pass here and fail in the validator
        assert!(!fits(Resources::new(8_000, 80, 8), a, &h));
        assert_eq!(first_misfit(Resources::new(8_001, 1, 1), a, &h), Some(0));
        assert_eq!(first_misfit(Resources::new(0, 0, 9), a, &h), Some(2));
        assert!(fits(Resources::ZERO, Resources::ZERO, &h));
    }
}
