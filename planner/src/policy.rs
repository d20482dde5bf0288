//! The planning policy's one rule set ([`policy_problems`]) and, with the
//! `files` feature, its loading from files and the environment ([`files`]). The
//! planner itself only ever plans with a policy that passed [`policy_problems`].
//!
//! # Layers
//!
//! defaults < file < environment, merged with the `config` crate:
//!
//! 1. **defaults**: [`Policy::default`] (every field has one; see
//!    `examples/bank/policy.toml`);
//! 2. **file**: TOML (`.toml`) or YAML (`.yaml`, `.yml`), chosen by extension;
//!    only the fields it sets change, nested tables merge field by field;
//! 3. **environment**: `KPLAN_POLICY__<FIELD>[__<FIELD>...]`, `__` between levels:
//!    - `KPLAN_POLICY__HEADROOM__CPU=0.3`, `KPLAN_POLICY__WAVE_BUDGET__NODES=40`,
//!      `KPLAN_POLICY__SURVIVE_ZONE_LOSS=true`, `KPLAN_POLICY__TARGET_CNI=cilium`,
//!      `KPLAN_POLICY__SOLVER__TIME_LIMIT_SECONDS=30`;
//!    - lists are comma-separated: `KPLAN_POLICY__SLA_ORDER=bronze,silver,gold`,
//!      `KPLAN_POLICY__PLATFORM_NAMESPACES=default,kube-*,istio-system`,
//!      `KPLAN_POLICY__ZONES__FRA-PROD-A__TIERS=prod` (a variable name with `-`
//!      must be set with `env`, most shells refuse it in `export`);
//!    - the variable name is lowercased, so a zone set through the environment
//!      is always lowercase (`fra-prod-a`): a zone named with capitals can only
//!      be set in the file, and [`check_policy`] reports two zones whose names
//!      differ only in case;
//!    - `open_flows` (a list of tables) cannot be set through the environment;
//!    - values that look like numbers are numbers: write versions with their
//!      `v` (`KPLAN_POLICY__TARGET_KUBERNETES_VERSION=v1.30`).
//!
//! Then [`check_policy`] reports every problem at once; a policy that fails it
//! is never used.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use kplan_model::{Policy, SlaTier};

use crate::flows::{KNOWN_CNIS, is_known_cni, parse_port_range};

#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "files")]
pub use files::{ENV_PREFIX, env_overrides_present, load_policy, load_policy_with_env, parse_policy};

/// The syntax of a policy text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFormat {
    Toml,
    Yaml,
}

impl PolicyFormat {
    /// From a file name's extension: `.toml`, `.yaml` or `.yml` (any case).
    pub fn from_path(path: &Path) -> Option<PolicyFormat> {
        path.extension().and_then(|ext| ext.to_str()).and_then(|ext| ext.parse().ok())
    }
}

impl FromStr for PolicyFormat {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "toml" => Ok(PolicyFormat::Toml),
            "yaml" | "yml" => Ok(PolicyFormat::Yaml),
            other => Err(PolicyError::UnknownFormat { what: format!("policy format {other:?}") }),
        }
    }
}

impl fmt::Display for PolicyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyFormat::Toml => "toml",
            PolicyFormat::Yaml => "yaml",
        })
    }
}

/// One thing wrong with a policy: the field (`headroom.cpu`,
/// `open_flows[2].ports`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: unknown format (expected toml or yaml: a .toml, .yaml or .yml file)")]
    UnknownFormat { what: String },
    /// The text does not parse, or a field has the wrong type or is unknown;
    /// the message names the field.
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// Every problem [`check_policy`] found.
    #[error(
        "{origin} is invalid ({} problem{}):\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
    )]
    Invalid { origin: String, problems: Vec<PolicyProblem> },
}

impl PolicyError {
    /// The problems of an invalid policy (empty for other errors).
    pub fn problems(&self) -> &[PolicyProblem] {
        match self {
            PolicyError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Checks a policy and reports every problem at once.
pub fn check_policy(policy: &Policy) -> Result<(), PolicyError> {
    check_with_origin(policy, "policy".to_string())
}

fn check_with_origin(policy: &Policy, origin: String) -> Result<(), PolicyError> {
    let problems = policy_problems(policy);
    if problems.is_empty() { Ok(()) } else { Err(PolicyError::Invalid { origin, problems }) }
}

/// Every problem of a policy, in field order.
pub fn policy_problems(policy: &Policy) -> Vec<PolicyProblem> {
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String| problems.push(PolicyProblem { field, message });

    // zones
    let mut lowercase: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (zone, zone_policy) in &policy.zones {
        if zone.trim().is_empty() {
            problem("zones".into(), "a zone has an empty name".into());
        }
        lowercase.entry(zone.to_lowercase()).or_default().push(zone);
        for (i, tier) in zone_policy.tiers.iter().enumerate() {
            if tier.trim().is_empty() {
                problem(format!("zones.{zone}.tiers[{i}]"), "empty tier name".into());
            }
        }
    }
    for names in lowercase.values().filter(|names| names.len() > 1) {
        problem(
            "zones".into(),
            format!(
                "zones {} differ only in case (environment variables are lowercased: set the zone in the file instead)",
                names.join(" and ")
            ),
        );
    }

    // open flows
    for (i, flow) in policy.open_flows.iter().enumerate() {
        if flow.from_zone.trim().is_empty() {
            problem(format!("open_flows[{i}].from_zone"), "must name a zone".into());
        }
        if flow.to_zone.trim().is_empty() {
            problem(format!("open_flows[{i}].to_zone"), "must name a zone".into());
        }
        let protocol = flow.protocol.trim().to_ascii_lowercase();
        if !matches!(protocol.as_str(), "" | "tcp" | "udp" | "ipip") {
            problem(
                format!("open_flows[{i}].protocol"),
                format!("must be tcp, udp, ipip or empty (any), got {:?}", flow.protocol),
            );
        }
        let ports = flow.ports.trim();
        if !ports.is_empty() {
            if parse_port_range(ports).is_none() {
                problem(
                    format!("open_flows[{i}].ports"),
                    format!("must be a port (6443), a range (2379-2380) or empty (any), got {:?}", flow.ports),
                );
            } else if protocol == "ipip" {
                problem(format!("open_flows[{i}].ports"), "ipip has no ports: leave ports empty".into());
            }
        }
    }

    // headroom
    for (name, value) in
        [("cpu", policy.headroom.cpu), ("memory", policy.headroom.memory), ("pods", policy.headroom.pods)]
    {
        if !(value.is_finite() && (0.0..1.0).contains(&value)) {
            problem(format!("headroom.{name}"), format!("must be at least 0 and less than 1, got {value}"));
        }
    }

    // wave budget
    if policy.wave_budget.nodes < 1 {
        problem("wave_budget.nodes".into(), "must be at least 1, got 0".into());
    }
    if policy.wave_budget.namespaces < 1 {
        problem("wave_budget.namespaces".into(), "must be at least 1, got 0".into());
    }

    // sla order
    let mut sorted = policy.sla_order.clone();
    sorted.sort();
    if sorted != SlaTier::ALL {
        let given: Vec<&str> = policy.sla_order.iter().map(|tier| tier.as_str()).collect();
        problem("sla_order".into(), format!("must list bronze, silver and gold once each, got [{}]", given.join(", ")));
    }

    // small sites and target sizes
    const SMALL_SITE_LIMIT: u64 = 100;
    if policy.small_site_max_nodes > SMALL_SITE_LIMIT {
        problem(
            "small_site_max_nodes".into(),
            format!(
                "must be at most {SMALL_SITE_LIMIT} (a single k3s server is for a handful of servers), got {}",
                policy.small_site_max_nodes
            ),
        );
    } else if policy.max_nodes_per_cluster >= 1 && policy.small_site_max_nodes >= policy.max_nodes_per_cluster {
        problem(
            "small_site_max_nodes".into(),
            format!(
                "must be less than max_nodes_per_cluster ({}), got {}",
                policy.max_nodes_per_cluster, policy.small_site_max_nodes
            ),
        );
    }
    if policy.max_nodes_per_cluster < 1 {
        problem("max_nodes_per_cluster".into(), "must be at least 1, got 0".into());
    }

    // target version and cni
    let version = policy.target_kubernetes_version.trim();
    if !version.is_empty() && !is_version(version) {
        problem(
            "target_kubernetes_version".into(),
            format!("must look like v1.30 or v1.30.2 (or be empty for the block's majority), got {version:?}"),
        );
    }
    let cni = policy.target_cni.trim();
    if !cni.is_empty() && !is_known_cni(cni) {
        problem(
            "target_cni".into(),
            format!(
                "unknown cni {cni:?} (expected one of {}, or empty for the block's majority)",
                KNOWN_CNIS.join(", ")
            ),
        );
    }

    // nodeports and calico
    if parse_port_range(&policy.nodeport_range).is_none() {
        problem(
            "nodeport_range".into(),
            format!("must be a port range like 30000-32767, got {:?}", policy.nodeport_range),
        );
    }
    let encapsulation = policy.calico_encapsulation.trim().to_ascii_lowercase();
    if encapsulation != "ipip" && encapsulation != "vxlan" {
        problem("calico_encapsulation".into(), format!("must be ipip or vxlan, got {:?}", policy.calico_encapsulation));
    }

    // platform namespaces and add-ons
    for (list, patterns, kind) in [
        ("platform_namespaces", &policy.platform_namespaces, "a platform namespace"),
        ("addon_namespaces", &policy.addon_namespaces, "an add-on"),
    ] {
        for (i, pattern) in patterns.iter().enumerate() {
            let pattern = pattern.trim();
            let field = format!("{list}[{i}]");
            if pattern.is_empty() {
                problem(field, "empty pattern".into());
            } else if pattern == "*" {
                problem(field, format!("a lone * makes every namespace {kind}: nothing would move"));
            } else if pattern.trim_end_matches('*').contains('*') {
                problem(field, format!("* may only end a pattern (kube-*), got {pattern:?}"));
            }
        }
    }

    // storage class changes
    for (from, to) in &policy.storage_class_changes {
        let field = format!("storage_class_changes.{from}");
        if from.trim().is_empty() || to.trim().is_empty() {
            problem(field, format!("a storage class and its replacement must both be named, got {from:?} = {to:?}"));
        } else if from == to {
            problem(field, format!("{from} is changed to itself"));
        }
    }

    // solver
    let solver = policy.solver;
    if !(solver.time_limit_seconds.is_finite() && solver.time_limit_seconds > 0.0) {
        problem("solver.time_limit_seconds".into(), format!("must be more than 0, got {}", solver.time_limit_seconds));
    }
    if !(solver.mip_gap.is_finite() && (0.0..1.0).contains(&solver.mip_gap)) {
        problem("solver.mip_gap".into(), format!("must be at least 0 and less than 1, got {}", solver.mip_gap));
    }
    if solver.threads < 1 {
        problem("solver.threads".into(), "must be at least 1, got 0".into());
    }
    for (field, value) in
        [("solver.staging_seconds", solver.staging_seconds), ("solver.waves_seconds", solver.waves_seconds)]
    {
        if !(value.is_finite() && value >= 0.0) {
            problem(field.into(), format!("must be 0 (skip) or more, got {value}"));
        }
    }
    // HiGHS keeps its integer options in 32 bits.
    let highs_max = i32::MAX as u64;
    for (field, value) in [
        ("solver.composition_max_nodes", solver.composition_max_nodes),
        ("solver.staging_max_nodes", solver.staging_max_nodes),
        ("solver.waves_max_nodes", solver.waves_max_nodes),
        ("solver.staging_max_variables", solver.staging_max_variables),
        ("solver.waves_max_variables", solver.waves_max_variables),
        ("solver.random_seed", u64::from(solver.random_seed)),
    ] {
        if value > highs_max {
            problem(field.into(), format!("must be at most {highs_max}, got {value}"));
        }
    }
    if solver.composition_max_nodes == 0 {
        problem("solver.composition_max_nodes".into(), "must be at least 1, got 0".into());
    }
    problems
}

/// `vX.Y` or `vX.Y.Z`.
fn is_version(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else { return false };
    let parts: Vec<&str> = rest.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}
