//! Capacity review results: what `kplan capacity review` prints and the
//! capacity service returns. Computed by `kplan_planner::capacity`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::inventory::{ClusterSnapshot, Resources};
use crate::time::{civil_from_unix, days_from_civil};

/// One stored snapshot with the time it was stored: what a review reads.
#[derive(Debug, Clone)]
pub struct HistoryPoint {
    pub stored_at_unix: i64,
    pub snapshot: ClusterSnapshot,
}

/// A calendar quarter, e.g. `2026Q4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Quarter {
    pub year: i32,
    /// 1..=4
    pub quarter: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quarter {0:?} is not like 2026Q4")]
pub struct BadQuarter(pub String);

impl FromStr for Quarter {
    type Err = BadQuarter;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let (year, quarter) = upper.split_once('Q').ok_or_else(|| BadQuarter(s.to_string()))?;
        let year: i32 = year.parse().map_err(|_| BadQuarter(s.to_string()))?;
        let quarter: u8 = quarter.parse().map_err(|_| BadQuarter(s.to_string()))?;
        if !(1..=4).contains(&quarter) || !(1970..=9999).contains(&year) {
            return Err(BadQuarter(s.to_string()));
        }
        Ok(Quarter { year, quarter })
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}Q{}", self.year, self.quarter)
    }
}

impl Quarter {
    pub fn containing(unix: i64) -> Quarter {
        let (year, month, ..) = civil_from_unix(unix);
        Quarter { year: year as i32, quarter: ((month - 1) / 3 + 1) as u8 }
    }

    /// First second of the quarter.
    pub fn start_unix(self) -> i64 {
        days_from_civil(i64::from(self.year), u32::from(self.quarter - 1) * 3 + 1, 1) * 86_400
    }

    /// First second after the quarter.
    pub fn end_unix(self) -> i64 {
        self.next().start_unix()
    }

    pub fn next(self) -> Quarter {
        if self.quarter == 4 {
            Quarter { year: self.year + 1, quarter: 1 }
        } else {
            Quarter { quarter: self.quarter + 1, ..self }
        }
    }

    pub fn previous(self) -> Quarter {
        if self.quarter == 1 {
            Quarter { year: self.year - 1, quarter: 4 }
        } else {
            Quarter { quarter: self.quarter - 1, ..self }
        }
    }

    /// Quarters from `self` to `later` (negative when `later` is earlier).
    pub fn distance_to(self, later: Quarter) -> i64 {
        (i64::from(later.year) - i64::from(self.year)) * 4 + i64::from(later.quarter) - i64::from(self.quarter)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Cpu,
    Memory,
    Pods,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Pods];

    /// The wire name (`cpu_millis`, `memory_bytes`, `pods`).
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu_millis",
            Resource::Memory => "memory_bytes",
            Resource::Pods => "pods",
        }
    }

    pub fn of(self, r: Resources) -> f64 {
        match self {
            Resource::Cpu => r.cpu_millis as f64,
            Resource::Memory => r.memory_bytes as f64,
            Resource::Pods => r.pods as f64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceUsage {
    pub resource: Resource,
    pub allocatable: f64,
    pub requested: f64,
    pub utilisation: f64,
    pub headroom: f64,
    /// Fraction; `None` when the previous quarter had none.
    pub requested_change: Option<f64>,
    pub allocatable_change: Option<f64>,
    /// The quarter headroom falls under the threshold at the current trend;
    /// `None`: not within two years.
    pub runs_out_in: Option<Quarter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarterPoint {
    pub quarter: Quarter,
    pub allocatable: Resources,
    pub requested: Resources,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockCapacity {
    pub datacenter: String,
    pub security_tier: String,
    pub clusters: Vec<String>,
    pub n_nodes: u64,
    pub n_namespaces: u64,
    pub resources: Vec<ResourceUsage>,
    pub trend: Vec<QuarterPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleCluster {
    pub cluster_id: String,
    pub last_report_unix: i64,
    pub age_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReview {
    pub quarter: Quarter,
    pub previous_quarter: Quarter,
    pub blocks: Vec<BlockCapacity>,
    pub stale_clusters: Vec<StaleCluster>,
}
