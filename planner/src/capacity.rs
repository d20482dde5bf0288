//! Quarterly capacity reviews: pure arithmetic over the stored snapshot history.
//!
//! For each (datacenter, security tier) the review takes every cluster's newest
//! snapshot at the end of a quarter (or now, for the current quarter), sums
//! allocatable (nodes of the tier's clusters in the datacenter) and requested
//! (namespaces of the tier in the datacenter's clusters), and compares with the
//! previous quarter. The trend is a least-squares line through the quarterly
//! points (at most the last four quarters plus the current one); the run-out
//! quarter is the first in which the projected headroom falls under the
//! threshold, looking at most eight quarters (two years) ahead.

use std::collections::BTreeMap;

pub use kplan_model::capacity::{
    BadQuarter, BlockCapacity, CapacityReview, HistoryPoint, Quarter, QuarterPoint, Resource, ResourceUsage,
    StaleCluster,
};
use kplan_model::{ClusterSnapshot, Resources};
use serde::{Deserialize, Serialize};

use crate::blocks::cluster_datacenter;

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRequest {
    pub quarter: Quarter,
    pub datacenter: Option<String>,
    pub security_tier: Option<String>,
    /// Headroom fraction per resource under which capacity has "run out".
    pub threshold: Resources3,
    pub stale_after_seconds: i64,
    pub now_unix: i64,
}

/// A cluster whose last report is older than this is flagged stale (one day).
pub const DEFAULT_STALE_AFTER_SECONDS: i64 = 86_400;

impl ReviewRequest {
    /// A review request with the defaults every caller shares: the quarter that
    /// contains `now_unix`, the policy's headroom as the run-out threshold, and
    /// [`DEFAULT_STALE_AFTER_SECONDS`]. An error names the bad argument.
    pub fn new(
        quarter: Option<Quarter>,
        threshold: Option<f64>,
        stale_after_seconds: Option<i64>,
        headroom: &kplan_model::policy::Headroom,
        now_unix: i64,
    ) -> Result<ReviewRequest, String> {
        let threshold = match threshold {
            Some(t) if !(t.is_finite() && (0.0..1.0).contains(&t)) => {
                return Err(format!("threshold {t}: must be at least 0 and below 1 (a fraction, 0.2 = 20%)"));
            }
            Some(t) => Resources3 { cpu: t, memory: t, pods: t },
            None => Resources3 { cpu: headroom.cpu, memory: headroom.memory, pods: headroom.pods },
        };
        let stale_after_seconds = match stale_after_seconds {
            Some(s) if s <= 0 => return Err(format!("stale after {s} s: must be positive")),
            Some(s) => s,
            None => DEFAULT_STALE_AFTER_SECONDS,
        };
        Ok(ReviewRequest {
            quarter: quarter.unwrap_or_else(|| Quarter::containing(now_unix)),
            datacenter: None,
            security_tier: None,
            threshold,
            stale_after_seconds,
            now_unix,
        })
    }
}

/// Three fractions, one per resource (cpu, memory, pods).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resources3 {
    pub cpu: f64,
    pub memory: f64,
    pub pods: f64,
}

impl Resources3 {
    fn get(self, resource: Resource) -> f64 {
        match resource {
            Resource::Cpu => self.cpu,
            Resource::Memory => self.memory,
            Resource::Pods => self.pods,
        }
    }
}

/// Quarters of history the trend looks back over (plus the reviewed one).
const TREND_QUARTERS: i64 = 4;
/// Headroom exactly at the threshold has not run out (float noise aside).
const EPSILON: f64 = 1e-9;
/// How far ahead the run-out projection looks.
const HORIZON_QUARTERS: i64 = 8;

#[derive(Debug, Clone, Default)]
struct Totals {
    allocatable: Resources,
    requested: Resources,
    clusters: Vec<String>,
    n_nodes: u64,
    n_namespaces: u64,
}

/// Each cluster's newest snapshot stored before `cutoff` (exclusive).
fn state_at(history: &BTreeMap<String, Vec<HistoryPoint>>, cutoff: i64) -> Vec<&ClusterSnapshot> {
    history
        .values()
        .filter_map(|points| points.iter().filter(|p| p.stored_at_unix < cutoff).max_by_key(|p| p.stored_at_unix))
        .map(|p| &p.snapshot)
        .collect()
}

fn totals(clusters: &[&ClusterSnapshot]) -> BTreeMap<(String, String), Totals> {
    let mut out: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for cluster in clusters {
        let tier = cluster.facts.security_tier.clone();
        for node in &cluster.nodes {
            let t = out.entry((node.datacenter.clone(), tier.clone())).or_default();
            t.allocatable = t.allocatable.saturating_add(node.allocatable);
            t.n_nodes += 1;
            if t.clusters.last() != Some(&cluster.cluster_id) {
                t.clusters.push(cluster.cluster_id.clone());
            }
        }
        let datacenter = cluster_datacenter(cluster);
        for namespace in &cluster.namespaces {
            let t = out.entry((datacenter.clone(), namespace.security_tier.clone())).or_default();
            t.requested = t.requested.saturating_add(namespace.requests);
            t.n_namespaces += 1;
            if !t.clusters.contains(&cluster.cluster_id) {
                t.clusters.push(cluster.cluster_id.clone());
            }
        }
    }
    for t in out.values_mut() {
        t.clusters.sort();
        t.clusters.dedup();
    }
    out
}

/// Least-squares slope and intercept of `y` over `x`; `None` with fewer than two points.
fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    Some((slope, mean_y - slope * mean_x))
}

fn change(now: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| (now - before) / before)
}

/// The review over `history` (every stored snapshot of every cluster).
pub fn review(history: &BTreeMap<String, Vec<HistoryPoint>>, request: &ReviewRequest) -> CapacityReview {
    let quarter = request.quarter;
    let current = Quarter::containing(request.now_unix);
    // The reviewed quarter's state: its end, or now if it is not over yet.
    let cutoff_of = |q: Quarter| if q >= current { request.now_unix + 1 } else { q.end_unix() };
    let keep = |key: &(String, String)| {
        request.datacenter.as_ref().is_none_or(|d| *d == key.0)
            && request.security_tier.as_ref().is_none_or(|t| *t == key.1)
    };

    // Quarterly points, oldest first: quarter - TREND_QUARTERS ..= quarter.
    let mut series: BTreeMap<(String, String), Vec<(Quarter, Totals)>> = BTreeMap::new();
    for back in (0..=TREND_QUARTERS).rev() {
        let mut q = quarter;
        for _ in 0..back {
            q = q.previous();
        }
        for (key, t) in totals(&state_at(history, cutoff_of(q))) {
            if keep(&key) {
                series.entry(key).or_default().push((q, t));
            }
        }
    }

    let mut blocks = Vec::new();
    for ((datacenter, security_tier), points) in series {
        let Some((last_quarter, now)) = points.last().cloned() else { continue };
        if last_quarter != quarter {
            continue; // the block no longer exists in the reviewed quarter
        }
        let previous = points.iter().rev().nth(1).filter(|(q, _)| *q == quarter.previous()).map(|(_, t)| t.clone());
        let mut resources = Vec::new();
        for resource in Resource::ALL {
            let allocatable = resource.of(now.allocatable);
            let requested = resource.of(now.requested);
            let utilisation = if allocatable > 0.0 {
                requested / allocatable
            } else if requested > 0.0 {
                f64::INFINITY
            } else {
                0.0
            };
            let headroom = 1.0 - utilisation;
            let xy_alloc: Vec<(f64, f64)> =
                points.iter().map(|(q, t)| (quarter.distance_to(*q) as f64, resource.of(t.allocatable))).collect();
            let xy_req: Vec<(f64, f64)> =
                points.iter().map(|(q, t)| (quarter.distance_to(*q) as f64, resource.of(t.requested))).collect();
            let threshold = request.threshold.get(resource);
            let runs_out_in = if headroom < threshold - EPSILON {
                Some(quarter)
            } else {
                match (linear_fit(&xy_alloc), linear_fit(&xy_req)) {
                    (Some((a_slope, a_icept)), Some((r_slope, r_icept))) => (1..=HORIZON_QUARTERS)
                        .find(|&ahead| {
                            let x = ahead as f64;
                            let alloc = a_slope * x + a_icept;
                            let req = r_slope * x + r_icept;
                            alloc <= 0.0 || 1.0 - req / alloc < threshold - EPSILON
                        })
                        .map(|ahead| (0..ahead).fold(quarter, |q, _| q.next())),
                    _ => None,
                }
            };
            resources.push(ResourceUsage {
                resource,
                allocatable,
                requested,
                utilisation,
                headroom,
                requested_change: previous.as_ref().and_then(|p| change(requested, resource.of(p.requested))),
                allocatable_change: previous.as_ref().and_then(|p| change(allocatable, resource.of(p.allocatable))),
                runs_out_in,
            });
        }
        blocks.push(BlockCapacity {
            datacenter,
            security_tier,
            clusters: now.clusters.clone(),
            n_nodes: now.n_nodes,
            n_namespaces: now.n_namespaces,
            resources,
            trend: points
                .iter()
                .map(|(q, t)| QuarterPoint { quarter: *q, allocatable: t.allocatable, requested: t.requested })
                .collect(),
        });
    }

    let mut stale_clusters: Vec<StaleCluster> = history
        .iter()
        .filter_map(|(cluster_id, points)| {
            let last = points.iter().map(|p| p.stored_at_unix).max()?;
            let age = request.now_unix - last;
            (age > request.stale_after_seconds).then(|| StaleCluster {
                cluster_id: cluster_id.clone(),
                last_report_unix: last,
                age_seconds: age,
            })
        })
        .collect();
    stale_clusters.sort_by(|a, b| b.age_seconds.cmp(&a.age_seconds).then(a.cluster_id.cmp(&b.cluster_id)));

    CapacityReview { quarter, previous_quarter: quarter.previous(), blocks, stale_clusters }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplan_model::{ClusterFacts, Namespace, Node};

    const DAY: i64 = 86_400;

    fn snapshot(id: &str, generation: u64, n_nodes: usize, requested_cores: u64) -> ClusterSnapshot {
        ClusterSnapshot {
            cluster_id: id.into(),
            generation,
            collected_at_unix: 0,
            facts: ClusterFacts { datacenter: "fra".into(), security_tier: "prod".into(), ..Default::default() },
            nodes: (0..n_nodes)
                .map(|i| Node {
                    name: format!("n{i}"),
                    labels: Default::default(),
                    datacenter: "fra".into(),
                    zone: "a".into(),
                    role: Default::default(),
                    allocatable: Resources::new(10_000, 40 << 30, 100),
                    kubelet_version: String::new(),
                    container_runtime: String::new(),
                    architecture: String::new(),
                    unschedulable: false,
                    taints: Vec::new(),
                    extended: Default::default(),
                    runtime_handlers: Vec::new(),
                })
                .collect(),
            namespaces: vec![Namespace {
                name: "app".into(),
                labels: Default::default(),
                security_tier: "prod".into(),
                sla_tier: Default::default(),
                requests: Resources::new(requested_cores * 1000, (requested_cores * 2) << 30, requested_cores),
                pod_groups: Vec::new(),
                applied_prerelease: Vec::new(),
                disruption_budgets: Vec::new(),
            }],
            isolation: Default::default(),
        }
    }

    fn q(s: &str) -> Quarter {
        s.parse().expect("quarter")
    }

    #[test]
    fn quarters() {
        assert_eq!(q("2026q4").to_string(), "2026Q4");
        assert_eq!(q("2026Q1").previous(), q("2025Q4"));
        assert_eq!(q("2026Q4").next(), q("2027Q1"));
        assert_eq!(q("2026Q1").start_unix(), 1_767_225_600); // 2026-01-01
        assert_eq!(Quarter::containing(1_767_225_600 - 1), q("2025Q4"));
        assert_eq!(q("2025Q3").distance_to(q("2026Q1")), 2);
        assert!("2026Q5".parse::<Quarter>().is_err());
        assert!("Q4".parse::<Quarter>().is_err());
    }

    /// One cluster of 10 nodes (100 cores) whose requests grow by 10 cores every
    /// quarter: 40, 50, 60 cores at the ends of 2026Q1..Q3 and 70 now in Q4.
    /// With a 20% threshold, headroom falls under it when requests pass 80 cores:
    /// at 90 cores, two quarters after Q4, in 2027Q2.
    #[test]
    fn quarter_over_quarter_change_and_run_out() {
        let mut points = Vec::new();
        for (idx, quarter) in ["2026Q1", "2026Q2", "2026Q3"].into_iter().enumerate() {
            let stored = q(quarter).end_unix() - DAY;
            points.push(HistoryPoint {
                stored_at_unix: stored,
                snapshot: snapshot("c1", idx as u64 + 1, 10, 40 + 10 * idx as u64),
            });
        }
        let now = q("2026Q4").start_unix() + 30 * DAY;
        points.push(HistoryPoint { stored_at_unix: now - DAY, snapshot: snapshot("c1", 9, 10, 70) });
        let history = BTreeMap::from([("c1".to_string(), points)]);
        let request = ReviewRequest {
            quarter: q("2026Q4"),
            datacenter: None,
            security_tier: None,
            threshold: Resources3 { cpu: 0.2, memory: 0.2, pods: 0.2 },
            stale_after_seconds: 7 * DAY,
            now_unix: now,
        };
        let review = review(&history, &request);
        assert_eq!(review.previous_quarter, q("2026Q3"));
        assert_eq!(review.blocks.len(), 1);
        let block = &review.blocks[0];
        assert_eq!((block.datacenter.as_str(), block.security_tier.as_str(), block.n_nodes), ("fra", "prod", 10));
        let cpu = &block.resources[0];
        assert_eq!(cpu.resource, Resource::Cpu);
        assert_eq!(cpu.allocatable, 100_000.0);
        assert_eq!(cpu.requested, 70_000.0);
        assert!((cpu.utilisation - 0.7).abs() < 1e-9);
        assert!((cpu.requested_change.expect("previous quarter exists") - (70.0 - 60.0) / 60.0).abs() < 1e-9);
        assert_eq!(cpu.allocatable_change, Some(0.0));
        assert_eq!(cpu.runs_out_in, Some(q("2027Q2")));
        assert_eq!(block.trend.len(), 4, "no data before 2026Q1: {:?}", block.trend);
        assert!(review.stale_clusters.is_empty());
    }

    #[test]
    fn flat_demand_does_not_run_out_and_stale_clusters_are_flagged() {
        let now = q("2026Q4").start_unix() + 40 * DAY;
        let history = BTreeMap::from([
            (
                "flat".to_string(),
                vec![
                    HistoryPoint {
                        stored_at_unix: q("2026Q3").start_unix() + DAY,
                        snapshot: snapshot("flat", 1, 10, 30),
                    },
                    HistoryPoint { stored_at_unix: now - 100, snapshot: snapshot("flat", 2, 10, 30) },
                ],
            ),
            (
                "old".to_string(),
                vec![HistoryPoint { stored_at_unix: now - 20 * DAY, snapshot: snapshot("old", 1, 2, 1) }],
            ),
        ]);
        let request = ReviewRequest {
            quarter: q("2026Q4"),
            datacenter: Some("fra".into()),
            security_tier: None,
            threshold: Resources3 { cpu: 0.2, memory: 0.2, pods: 0.2 },
            stale_after_seconds: 7 * DAY,
            now_unix: now,
        };
        let review = review(&history, &request);
        let cpu = &review.blocks[0].resources[0];
        assert_eq!(cpu.runs_out_in, None, "flat demand at 31% never runs out");
        assert_eq!(review.stale_clusters.len(), 1);
        assert_eq!(review.stale_clusters[0].cluster_id, "old");
        assert_eq!(review.stale_clusters[0].age_seconds, 20 * DAY);
        let none = super::review(&history, &ReviewRequest { datacenter: Some("lon".into()), ..request });
        assert!(none.blocks.is_empty());
    }

    #[test]
    fn already_under_the_threshold_runs_out_now() {
        let now = q("2026Q4").start_unix() + DAY;
        let history = BTreeMap::from([(
            "c".to_string(),
            vec![HistoryPoint { stored_at_unix: now - 10, snapshot: snapshot("c", 1, 1, 9) }],
        )]);
        let request = ReviewRequest {
            quarter: q("2026Q4"),
            datacenter: None,
            security_tier: None,
            threshold: Resources3 { cpu: 0.2, memory: 0.2, pods: 0.2 },
            stale_after_seconds: DAY,
            now_unix: now,
        };
        let review = review(&history, &request);
        assert_eq!(review.blocks[0].resources[0].runs_out_in, Some(q("2026Q4")));
    }
}
