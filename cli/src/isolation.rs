//! `kplan plans isolation` and the isolation part of `kplan plans export
//! --format manifests`: the planner's [`IsolationReport`] as a table, and the
//! objects that close its findings as YAML, one file per kind and wave, a
//! kustomization.yaml per wave and one per target cluster.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kplan_model::{ClusterSnapshot, Plan};
use kplan_planner::isolation::IsolationReport;
use kplan_planner::isolation::manifests::TargetManifests;
use serde::Serialize;

use crate::output;

/// The isolation report of `plan` and the objects that close its findings,
/// refused when the validator's independent check
/// (`kplan_planner::validate::isolation`) finds a claim untrue.
pub fn verified(plan: &Plan, inventory: &[ClusterSnapshot]) -> anyhow::Result<(IsolationReport, Vec<TargetManifests>)> {
    let report = kplan_planner::isolation::analyse(plan, inventory);
    let targets = kplan_planner::isolation::manifests::manifests(plan, inventory);
    let violations = kplan_planner::isolation::verify(plan, inventory, &report, &targets);
    if !violations.is_empty() {
        let lines: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        anyhow::bail!(
            "the tenant isolation of plan {} fails the validator's check ({} problem{}): {}",
            plan.id,
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("; ")
        );
    }
    Ok((report, targets))
}

/// One row per finding, then a line per target without findings.
pub fn table(report: &IsolationReport) -> String {
    let rows: Vec<Vec<String>> = report
        .findings()
        .map(|f| {
            let who = if f.subject.is_empty() { f.object.clone() } else { format!("{} ({})", f.subject, f.object) };
            vec![
                f.target_cluster.clone(),
                f.kind.as_str().to_string(),
                f.severity.as_str().to_string(),
                f.source_cluster.clone(),
                who,
                if f.role.is_empty() { "-".to_string() } else { f.role.clone() },
                f.namespaces.len().to_string(),
                if f.open { "OPEN".to_string() } else { format!("{} objects", f.closed_by.len()) },
            ]
        })
        .collect();
    let mut text =
        output::table(&["TARGET", "FINDING", "SEVERITY", "SOURCE", "WHO", "ROLE", "NAMESPACES", "CLOSED BY"], &rows);
    let n_findings = report.findings().count();
    text.push_str(&format!(
        "\n{n_findings} finding{} in {} target cluster{}, {} open\n",
        if n_findings == 1 { "" } else { "s" },
        report.targets.len(),
        if report.targets.len() == 1 { "" } else { "s" },
        report.n_open()
    ));
    for target in report.targets.iter().filter(|t| t.needs_network_policy_cni()) {
        text.push_str(&format!(
            "{}: runs {}, which does not enforce NetworkPolicy (see its cni-migration precondition)\n",
            target.target_cluster, target.cni
        ));
    }
    if !report.clusters_without_isolation_inventory.is_empty() {
        text.push_str(&format!(
            "no RBAC or NetworkPolicy known for {}: export them (README, kubectl export) or update the agent\n",
            report.clusters_without_isolation_inventory.join(", ")
        ));
    }
    text
}

/// The `## Tenant isolation` section of the Markdown export: per target, its
/// findings; empty when there are none.
pub fn markdown(report: &IsolationReport) -> String {
    let mut md = String::new();
    let n_findings = report.findings().count();
    if n_findings == 0 {
        return md;
    }
    md.push_str(&format!(
        "\n## Tenant isolation\n\n{n_findings} finding{}, {} open; the objects that close them: \
         `kplan plans export {} --format manifests --out DIR` (`DIR/isolation/<target>/wave-N/`).\n",
        if n_findings == 1 { "" } else { "s" },
        report.n_open(),
        report.plan_id
    ));
    for target in report.targets.iter().filter(|t| !t.findings.is_empty()) {
        md.push_str(&format!("\n### {}\n\n", target.target_cluster));
        if target.needs_network_policy_cni() {
            md.push_str(&format!(
                "{} runs {}, which does not enforce NetworkPolicy: see its cni-migration precondition.\n\n",
                target.target_cluster, target.cni
            ));
        }
        md.push_str("| finding | severity | source | who | role | namespaces reached | closed by |\n|---|---|---|---|---|---|---|\n");
        for f in &target.findings {
            let who = if f.subject.is_empty() { f.object.clone() } else { format!("{} ({})", f.subject, f.object) };
            let cells = [
                f.kind.as_str().to_string(),
                f.severity.as_str().to_string(),
                f.source_cluster.clone(),
                who,
                f.role.clone(),
                f.namespaces.join(", "),
                if f.open { "**open**".to_string() } else { format!("{} objects", f.closed_by.len()) },
            ];
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            md.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    md
}

/// Objects as one YAML stream (`---` between documents).
fn yaml_stream<T: Serialize>(objects: &[T]) -> anyhow::Result<String> {
    let mut text = String::new();
    for object in objects {
        text.push_str("---\n");
        text.push_str(&output::yaml(object)?);
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(text)
}

#[derive(Serialize)]
struct Kustomization {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    resources: Vec<String>,
}

/// Writes every target's objects under `dir/isolation/<target>/wave-<N>/`
/// (`namespaces.yaml`, `clusterroles.yaml`, `rolebindings.yaml`,
/// `networkpolicies.yaml`, `runtimeclasses.yaml`, Gatekeeper's
/// `constrainttemplates.yaml` and `constraints.yaml`, those with objects, and
/// a `kustomization.yaml`); `wave-0` holds the cluster-scoped prerequisites,
/// `wave-N` what must exist from the plan's wave N on. The target's own
/// `kustomization.yaml` lists its wave directories: the whole final state.
/// Returns the files written.
pub fn write_manifests(targets: &[TargetManifests], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for target in targets {
        let target_dir = dir.join("isolation").join(&target.target_cluster);
        let mut wave_dirs = Vec::new();
        for wave in &target.waves {
            let name = format!("wave-{}", wave.wave);
            let wave_dir = target_dir.join(&name);
            std::fs::create_dir_all(&wave_dir).with_context(|| format!("creating {}", wave_dir.display()))?;
            let files = [
                ("namespaces.yaml", yaml_stream(&wave.namespaces)?, wave.namespaces.len()),
                ("clusterroles.yaml", yaml_stream(&wave.cluster_roles)?, wave.cluster_roles.len()),
                ("rolebindings.yaml", yaml_stream(&wave.role_bindings)?, wave.role_bindings.len()),
                ("networkpolicies.yaml", yaml_stream(&wave.network_policies)?, wave.network_policies.len()),
                ("runtimeclasses.yaml", yaml_stream(&wave.runtime_classes)?, wave.runtime_classes.len()),
                ("constrainttemplates.yaml", yaml_stream(&wave.constraint_templates)?, wave.constraint_templates.len()),
                ("constraints.yaml", yaml_stream(&wave.constraints)?, wave.constraints.len()),
            ];
            let mut resources = Vec::new();
            for (name, text, n_objects) in files {
                if n_objects == 0 {
                    continue;
                }
                let path = wave_dir.join(name);
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                resources.push(name.to_string());
                written.push(path);
            }
            written.push(write_kustomization(&wave_dir, resources)?);
            wave_dirs.push(name);
        }
        written.push(write_kustomization(&target_dir, wave_dirs)?);
    }
    Ok(written)
}

fn write_kustomization(dir: &Path, resources: Vec<String>) -> anyhow::Result<PathBuf> {
    let kustomization =
        Kustomization { api_version: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization", resources };
    let path = dir.join("kustomization.yaml");
    std::fs::write(&path, output::yaml(&kustomization)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use kplan_planner::isolation::{Finding, FindingKind, IsolationReport, Severity, TargetIsolation};

    fn report() -> IsolationReport {
        IsolationReport {
            plan_id: "plan-1".into(),
            targets: vec![TargetIsolation {
                datacenter: "fra".into(),
                security_tier: "dev".into(),
                target_cluster: "fra-dev".into(),
                cni: "calico".into(),
                source_clusters: vec!["apps".into(), "ci".into()],
                network_policy_enforced: true,
                namespaces: Vec::new(),
                findings: vec![Finding {
                    kind: FindingKind::RbacWidening,
                    severity: Severity::High,
                    target_cluster: "fra-dev".into(),
                    source_cluster: "apps".into(),
                    object: "ClusterRoleBinding a|b".into(),
                    subject: "Group team".into(),
                    role: "ClusterRole edit".into(),
                    rules: Vec::new(),
                    namespaces: vec!["ci".into()],
                    detail: String::new(),
                    closed_by: vec!["RoleBinding web/kplan-a|b".into()],
                    open: false,
                }],
            }],
            clusters_without_isolation_inventory: vec!["old".into()],
        }
    }

    #[test]
    fn the_objects_are_written_one_directory_per_wave_with_a_kustomization_each_and_one_listing_the_waves() {
        use kplan_planner::isolation::manifests::{TargetManifests, WaveManifests};
        // The k8s-openapi objects, read from their JSON (the CLI does not name their types).
        fn object<T: serde::de::DeserializeOwned>(name: &str) -> T {
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
        }
        let target = TargetManifests {
            target_cluster: "fra-dev".into(),
            waves: vec![
                WaveManifests { wave: 0, cluster_roles: vec![object("deployer")], ..Default::default() },
                WaveManifests { wave: 2, namespaces: vec![object("web")], ..Default::default() },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let written = super::write_manifests(&[target], dir.path()).unwrap();
        let relative: Vec<String> =
            written.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_string_lossy().replace('\\', "/")).collect();
        assert_eq!(
            relative,
            [
                "isolation/fra-dev/wave-0/clusterroles.yaml",
                "isolation/fra-dev/wave-0/kustomization.yaml",
                "isolation/fra-dev/wave-2/namespaces.yaml",
                "isolation/fra-dev/wave-2/kustomization.yaml",
                "isolation/fra-dev/kustomization.yaml",
            ]
        );
        let read = |path: &str| std::fs::read_to_string(dir.path().join(path)).unwrap();
        assert!(read("isolation/fra-dev/kustomization.yaml").contains("resources:\n- wave-0\n- wave-2\n"));
        assert!(read("isolation/fra-dev/wave-2/kustomization.yaml").contains("resources:\n- namespaces.yaml\n"));
    }

    #[test]
    fn the_table_and_the_markdown_count_findings_and_name_what_is_unknown() {
        let table = super::table(&report());
        assert!(table.contains("1 finding in 1 target cluster, 0 open"), "{table}");
        assert!(table.contains("no RBAC or NetworkPolicy known for old"), "{table}");
        let md = super::markdown(&report());
        assert!(md.contains("## Tenant isolation"), "{md}");
        assert!(md.contains("| rbac-widening | high | apps | Group team (ClusterRoleBinding a\\|b) |"), "{md}");
        assert_eq!(super::markdown(&IsolationReport::default()), "");
    }
}
