//! Loading and checking the planning policy. The IO lives here; `planner/` only
//! ever sees a checked [`Policy`].
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

use crate::planner::flows::{KNOWN_CNIS, is_known_cni, parse_port_range};

/// The environment variable prefix of policy overrides (then `__` between levels).
pub const ENV_PREFIX: &str = "KPLAN_POLICY";

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

    fn file_format(self) -> config::FileFormat {
        match self {
            PolicyFormat::Toml => config::FileFormat::Toml,
            PolicyFormat::Yaml => config::FileFormat::Yaml,
        }
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
    #[error("{origin}: {source}")]
    Parse {
        origin: String,
        #[source]
        source: config::ConfigError,
    },
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

/// Loads the policy: defaults < `path` (TOML or YAML by extension) <
/// `KPLAN_POLICY__*` environment variables, then checks it (see the module
/// documentation for the layers).
pub fn load_policy(path: Option<&Path>) -> Result<Policy, PolicyError> {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(key, _)| is_policy_variable(key))
        .collect();
    load_policy_with_env(path, &env)
}

fn is_policy_variable(key: &str) -> bool {
    let prefix = format!("{ENV_PREFIX}__");
    key.len() > prefix.len() && key[..prefix.len()].eq_ignore_ascii_case(&prefix)
}

/// [`load_policy`] with the environment given (variables not starting with
/// `KPLAN_POLICY__` are ignored): for tests and for callers that hold their own
/// environment.
pub fn load_policy_with_env(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Policy, PolicyError> {
    let file = match path {
        Some(path) => {
            let format = PolicyFormat::from_path(path)
                .ok_or_else(|| PolicyError::UnknownFormat { what: format!("policy file {}", path.display()) })?;
            let text = std::fs::read_to_string(path)
                .map_err(|source| PolicyError::Read { path: path.to_path_buf(), source })?;
            Some((text, format))
        }
        None => None,
    };
    let overridden = env.keys().any(|key| is_policy_variable(key));
    let origin = match (path, overridden) {
        (Some(path), false) => format!("policy file {}", path.display()),
        (Some(path), true) => format!("policy file {} with {ENV_PREFIX}__* overrides", path.display()),
        (None, true) => format!("policy from {ENV_PREFIX}__* environment variables"),
        (None, false) => "default policy".to_string(),
    };
    let policy = build(file.as_ref().map(|(text, format)| (text.as_str(), *format)), Some(env), &origin)?;
    check_with_origin(&policy, origin)?;
    Ok(policy)
}

/// Parses a policy sent as text (over gRPC): defaults < `text`, no environment;
/// then checks it.
pub fn parse_policy(text: &str, format: PolicyFormat) -> Result<Policy, PolicyError> {
    let origin = format!("policy ({format})");
    let policy = build(Some((text, format)), None, &origin)?;
    check_with_origin(&policy, origin)?;
    Ok(policy)
}

fn build(
    file: Option<(&str, PolicyFormat)>,
    env: Option<&BTreeMap<String, String>>,
    origin: &str,
) -> Result<Policy, PolicyError> {
    let mut builder = config::Config::builder();
    if let Some((text, format)) = file {
        builder = builder.add_source(config::File::from_str(text, format.file_format()));
    }
    if let Some(env) = env {
        builder = builder.add_source(environment(env));
    }
    builder
        .build()
        .and_then(|config| config.try_deserialize::<Policy>())
        .map_err(|source| PolicyError::Parse { origin: origin.to_string(), source })
}

/// The environment layer: `KPLAN_POLICY__A__B=v` sets `a.b`; numbers and
/// booleans are parsed; list fields are split on commas.
fn environment(env: &BTreeMap<String, String>) -> config::Environment {
    let variables: config::Map<String, String> =
        env.iter().filter(|(key, _)| is_policy_variable(key)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let prefix_len = ENV_PREFIX.len() + 2;
    let mut source = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",");
    // Only these keys are lists; everything else stays a string.
    let mut list_keys = vec!["sla_order".to_string(), "platform_namespaces".to_string()];
    for key in variables.keys() {
        let path = key[prefix_len..].to_lowercase().replace("__", ".");
        if path.starts_with("zones.") && path.ends_with(".tiers") {
            list_keys.push(path);
        }
    }
    for key in &list_keys {
        source = source.with_list_parse_key(key);
    }
    source.source(Some(variables))
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

    // platform namespaces
    for (i, pattern) in policy.platform_namespaces.iter().enumerate() {
        let pattern = pattern.trim();
        let field = format!("platform_namespaces[{i}]");
        if pattern.is_empty() {
            problem(field, "empty pattern".into());
        } else if pattern == "*" {
            problem(field, "a lone * makes every namespace a platform namespace: nothing would move".into());
        } else if pattern.trim_end_matches('*').contains('*') {
            problem(field, format!("* may only end a pattern (kube-*), got {pattern:?}"));
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
    problems
}

/// `vX.Y` or `vX.Y.Z`.
fn is_version(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else { return false };
    let parts: Vec<&str> = rest.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use kplan_model::policy::ZonePolicy;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
        (dir, path)
    }

    #[test]
    fn no_file_no_environment_gives_the_defaults() {
        let policy = load_policy_with_env(None, &env(&[("PATH", "/bin"), ("KPLAN_LOG", "debug")])).unwrap();
        assert_eq!(policy, Policy::default());
        assert!(check_policy(&Policy::default()).is_ok());
    }

    const TOML: &str = r#"
survive_zone_loss = true
sla_order = ["bronze", "silver", "gold"]

[headroom]
cpu = 0.25

[wave_budget]
nodes = 40

[zones.FRA-Prod-A]
tiers = ["prod"]

[zones.fra-dmz]
tiers = []

[[open_flows]]
from_zone = "FRA-Prod-A"
to_zone = "fra-prod-b"
protocol = "tcp"
ports = "6443"
bidirectional = true
"#;

    const YAML: &str = r#"
survive_zone_loss: true
sla_order: [bronze, silver, gold]
headroom:
  cpu: 0.25
wave_budget:
  nodes: 40
zones:
  FRA-Prod-A:
    tiers: [prod]
  fra-dmz:
    tiers: []
open_flows:
  - from_zone: FRA-Prod-A
    to_zone: fra-prod-b
    protocol: tcp
    ports: "6443"
    bidirectional: true
"#;

    #[test]
    fn a_file_overrides_only_what_it_sets_and_keeps_zone_case() {
        let (_dir, path) = file("policy.toml", TOML);
        let policy = load_policy_with_env(Some(&path), &env(&[])).unwrap();
        assert!(policy.survive_zone_loss);
        assert_eq!(policy.headroom.cpu, 0.25);
        assert_eq!(policy.headroom.memory, 0.2, "unset fields of a table keep their default");
        assert_eq!(policy.wave_budget.nodes, 40);
        assert_eq!(policy.wave_budget.namespaces, 100);
        assert_eq!(policy.zones["FRA-Prod-A"].tiers, vec!["prod".to_string()]);
        assert!(policy.zones["fra-dmz"].tiers.is_empty());
        assert_eq!(policy.open_flows[0].from_zone, "FRA-Prod-A");
        assert_eq!(policy.small_site_max_nodes, 6);
    }

    #[test]
    fn yaml_and_toml_say_the_same() {
        let (_dir, toml_path) = file("policy.toml", TOML);
        let (_dir2, yaml_path) = file("policy.YML", YAML);
        let from_toml = load_policy_with_env(Some(&toml_path), &env(&[])).unwrap();
        let from_yaml = load_policy_with_env(Some(&yaml_path), &env(&[])).unwrap();
        assert_eq!(from_toml, from_yaml);
        assert_eq!(parse_policy(YAML, PolicyFormat::Yaml).unwrap(), from_toml);
        assert_eq!(parse_policy(TOML, "toml".parse().unwrap()).unwrap(), from_toml);
    }

    #[test]
    fn environment_overrides_the_file() {
        let (_dir, path) = file("policy.toml", TOML);
        let policy = load_policy_with_env(
            Some(&path),
            &env(&[
                ("KPLAN_POLICY__HEADROOM__CPU", "0.3"),
                ("KPLAN_POLICY__WAVE_BUDGET__NAMESPACES", "60"),
                ("KPLAN_POLICY__SURVIVE_ZONE_LOSS", "false"),
                ("KPLAN_POLICY__SLA_ORDER", "bronze,gold,silver"),
                ("KPLAN_POLICY__PLATFORM_NAMESPACES", "default,kube-*,istio-system"),
                ("KPLAN_POLICY__TARGET_CNI", "cilium"),
                ("KPLAN_POLICY__TARGET_KUBERNETES_VERSION", "v1.30"),
                ("KPLAN_POLICY__SOLVER__TIME_LIMIT_SECONDS", "30"),
                ("KPLAN_POLICY__ZONES__FRA-PROD-B__TIERS", "prod,dev"),
                ("kplan_policy__small_site_max_nodes", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(policy.headroom.cpu, 0.3);
        assert_eq!(policy.headroom.memory, 0.2);
        assert_eq!(policy.wave_budget.nodes, 40, "from the file");
        assert_eq!(policy.wave_budget.namespaces, 60);
        assert!(!policy.survive_zone_loss);
        assert_eq!(policy.sla_order, vec![SlaTier::Bronze, SlaTier::Gold, SlaTier::Silver]);
        assert_eq!(policy.platform_namespaces, vec!["default", "kube-*", "istio-system"]);
        assert_eq!(policy.target_cni, "cilium");
        assert_eq!(policy.target_kubernetes_version, "v1.30");
        assert_eq!(policy.solver.time_limit_seconds, 30.0);
        assert_eq!(policy.small_site_max_nodes, 5);
        // zone names from the environment are lowercased; the file's keep their case
        assert_eq!(policy.zones["fra-prod-b"].tiers, vec!["prod".to_string(), "dev".to_string()]);
        assert_eq!(policy.zones["FRA-Prod-A"].tiers, vec!["prod".to_string()]);
    }

    #[test]
    fn a_zone_set_in_both_cases_is_reported() {
        let (_dir, path) = file("policy.toml", TOML);
        let err =
            load_policy_with_env(Some(&path), &env(&[("KPLAN_POLICY__ZONES__FRA-PROD-A__TIERS", "dev")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("zones: zones FRA-Prod-A and fra-prod-a differ only in case"), "{text}");
        assert!(text.contains("with KPLAN_POLICY__* overrides"), "{text}");
    }

    #[test]
    fn a_bad_file_reports_every_problem_at_once() {
        let (_dir, path) = file(
            "bad.toml",
            r#"
sla_order = ["gold", "gold", "bronze"]
small_site_max_nodes = 500
max_nodes_per_cluster = 0
target_kubernetes_version = "1.30"
target_cni = "weave"
nodeport_range = "32767-30000"
calico_encapsulation = "gre"
platform_namespaces = ["*"]

[headroom]
cpu = 1.5
pods = -0.1

[wave_budget]
nodes = 0

[solver]
time_limit_seconds = 0
mip_gap = 1.0

[zones.fra-prod-a]
tiers = [""]

[[open_flows]]
from_zone = "fra-prod-a"
to_zone = ""
protocol = "icmp"
ports = "http"
"#,
        );
        let err = load_policy_with_env(Some(&path), &env(&[])).unwrap_err();
        let fields: Vec<&str> = err.problems().iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "zones.fra-prod-a.tiers[0]",
                "open_flows[0].to_zone",
                "open_flows[0].protocol",
                "open_flows[0].ports",
                "headroom.cpu",
                "headroom.pods",
                "wave_budget.nodes",
                "sla_order",
                "small_site_max_nodes",
                "max_nodes_per_cluster",
                "target_kubernetes_version",
                "target_cni",
                "nodeport_range",
                "calico_encapsulation",
                "platform_namespaces[0]",
                "solver.time_limit_seconds",
                "solver.mip_gap",
            ]
        );
        let text = err.to_string();
        assert!(text.starts_with(&format!("policy file {} is invalid (17 problems):", path.display())), "{text}");
        assert!(text.contains("  - headroom.cpu: must be at least 0 and less than 1, got 1.5"), "{text}");
        assert!(text.contains("target_cni: unknown cni \"weave\""), "{text}");
    }

    #[test]
    fn unknown_fields_and_wrong_types_name_the_field() {
        let err = parse_policy("headroom = { cpu = 0.1, disk = 0.2 }", PolicyFormat::Toml).unwrap_err();
        assert!(matches!(err, PolicyError::Parse { .. }));
        assert!(err.to_string().contains("disk"), "{err}");
        let err = parse_policy("survive_zone_los = true", PolicyFormat::Toml).unwrap_err();
        assert!(err.to_string().contains("survive_zone_los"), "{err}");
        let err = parse_policy("headroom:\n  cpu: lots\n", PolicyFormat::Yaml).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("policy (yaml): "), "{text}");
        assert!(text.contains("headroom.cpu"), "{text}");
        let err = parse_policy("sla_order = [\"platinum\"]", PolicyFormat::Toml).unwrap_err();
        assert!(err.to_string().contains("platinum"), "{err}");
        let err = load_policy_with_env(None, &env(&[("KPLAN_POLICY__HEADROM__CPU", "0.3")])).unwrap_err();
        assert!(err.to_string().contains("headrom"), "{err}");
    }

    #[test]
    fn missing_files_and_unknown_formats() {
        let err = load_policy_with_env(Some(Path::new("/nonexistent/policy.toml")), &env(&[])).unwrap_err();
        assert!(matches!(err, PolicyError::Read { .. }));
        assert!(err.to_string().starts_with("cannot read policy file /nonexistent/policy.toml: "), "{err}");
        let (_dir, path) = file("policy.json", "{}");
        let err = load_policy_with_env(Some(&path), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("unknown format"), "{err}");
        assert!("json".parse::<PolicyFormat>().is_err());
    }

    #[test]
    fn check_policy_accepts_sensible_values() {
        let mut policy = Policy {
            target_kubernetes_version: "v1.30.2".into(),
            target_cni: "Kube-OVN".into(),
            calico_encapsulation: "VXLAN".into(),
            ..Policy::default()
        };
        policy.zones.insert("fra-dmz".into(), ZonePolicy { tiers: vec![] });
        assert!(check_policy(&policy).is_ok(), "{:?}", check_policy(&policy));
        policy.target_kubernetes_version = "v1".into();
        assert_eq!(check_policy(&policy).unwrap_err().problems()[0].field, "target_kubernetes_version");
    }

    #[test]
    fn the_bank_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bank/policy.toml");
        let policy = load_policy_with_env(Some(&path), &env(&[])).unwrap();
        assert_eq!(policy.headroom.cpu, 0.2);
        assert_eq!(policy.wave_budget.nodes, 40);
        assert_eq!(policy.wave_budget.namespaces, 60);
        assert_eq!(policy.small_site_max_nodes, 6);
        assert_eq!(policy.zones["fra-prod-a"].tiers, vec!["prod".to_string()]);
        assert!(policy.zones["fra-dmz"].tiers.is_empty());
        assert!(!policy.open_flows.is_empty());
        // every field of the example is spelled out
        let text = std::fs::read_to_string(&path).unwrap();
        let defaults = toml::to_string(&Policy::default()).unwrap();
        for line in defaults.lines() {
            if let Some((key, _)) = line.split_once(" = ") {
                assert!(
                    text.contains(&format!("{key} =")) || text.contains(&format!("[[{key}]]")),
                    "the example does not mention {key}"
                );
            }
        }
    }
}
