//! Loading a policy (feature `files`): defaults < a file < the environment.
//!
use std::collections::BTreeMap;
use std::path::Path;

use kplan_model::Policy;

use super::{PolicyError, PolicyFormat, check_with_origin};

/// The environment variable prefix of policy overrides (then `__` between levels).
pub const ENV_PREFIX: &str = "KPLAN_POLICY";

fn file_format(format: PolicyFormat) -> config::FileFormat {
    match format {
        PolicyFormat::Toml => config::FileFormat::Toml,
        PolicyFormat::Yaml => config::FileFormat::Yaml,
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

/// Whether any `KPLAN_POLICY__*` variable is set in this process's environment.
pub fn env_overrides_present() -> bool {
    std::env::vars_os().any(|(key, _)| key.to_str().is_some_and(is_policy_variable))
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
        builder = builder.add_source(config::File::from_str(text, file_format(format)));
    }
    if let Some(env) = env {
        builder = builder.add_source(environment(env));
    }
    builder
        .build()
        .and_then(|config| config.try_deserialize::<Policy>())
        .map_err(|source| PolicyError::Parse { origin: origin.to_string(), message: source.to_string() })
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use kplan_model::policy::ZonePolicy;

    use std::path::PathBuf;

    use kplan_model::SlaTier;

    use super::*;
    use crate::policy::check_policy;

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
        assert_eq!(policy.addon_namespaces, Policy::default().addon_namespaces, "the example spells out the default");
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
