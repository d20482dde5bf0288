//! `kplan plans isolation` and the isolation part of `kplan plans export
//! --format manifests`: the planner's [`IsolationReport`] as a table, and the
//! objects that close its findings as YAML, one file per kind and a
//! kustomization.yaml per target cluster.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kplan_planner::isolation::IsolationReport;
use kplan_planner::isolation::manifests::TargetManifests;
use serde::Serialize;

use crate::output;

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
    for target in report.targets.iter().filter(|t| !t.network_policy_enforced) {
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
/// `runtimeclasses.yaml`, `kustomization.yaml`), and returns the files written.
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
