//! `kplan plans isolation` and the isolation part of `kplan plans export
//! --format manifests`: the planner's [`IsolationReport`] as a table, and the
//! objects that close its findings as YAML, one file per kind and a
//! kustomization.yaml per target cluster.

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
         `kplan plans export {} --format manifests --out DIR` (`DIR/isolation/<target>/`).\n",
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
struct Kustomization<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    resources: Vec<&'a str>,
}

/// Writes every target's objects under `dir/isolation/<target>/` (`namespaces.yaml`,
/// `clusterroles.yaml`, `rolebindings.yaml`, `networkpolicies.yaml`,
/// `runtimeclasses.yaml`, Gatekeeper's `constrainttemplates.yaml` and
/// `constraints.yaml`, `kustomization.yaml`), and returns the files written.
pub fn write_manifests(targets: &[TargetManifests], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for target in targets {
        let target_dir = dir.join("isolation").join(&target.target_cluster);
        std::fs::create_dir_all(&target_dir).with_context(|| format!("creating {}", target_dir.display()))?;
        let files = [
            ("namespaces.yaml", yaml_stream(&target.namespaces)?, target.namespaces.len()),
            ("clusterroles.yaml", yaml_stream(&target.cluster_roles)?, target.cluster_roles.len()),
            ("rolebindings.yaml", yaml_stream(&target.role_bindings)?, target.role_bindings.len()),
            ("networkpolicies.yaml", yaml_stream(&target.network_policies)?, target.network_policies.len()),
            ("runtimeclasses.yaml", yaml_stream(&target.runtime_classes)?, target.runtime_classes.len()),
            ("constrainttemplates.yaml", yaml_stream(&target.constraint_templates)?, target.constraint_templates.len()),
            ("constraints.yaml", yaml_stream(&target.constraints)?, target.constraints.len()),
        ];
        let mut resources = Vec::new();
        for (name, text, n_objects) in &files {
            if *n_objects == 0 {
                continue;
            }
            let path = target_dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            resources.push(*name);
            written.push(path);
        }
        let kustomization =
            Kustomization { api_version: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization", resources };
        let path = target_dir.join("kustomization.yaml");
        std::fs::write(&path, output::yaml(&kustomization)?).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
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
