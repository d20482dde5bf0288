//! Output formats: kubectl-style tables for people, JSON and YAML for machines.

use std::fmt::Write as _;

use anyhow::Context;
use clap::ValueEnum;
use kplan_model::ClusterSummary;
use kplan_model::quantity::{format_bytes, format_cpu};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Renders rows as left-aligned columns separated by three spaces, like kubectl.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (idx, cell) in row.iter().enumerate() {
            if idx < widths.len() {
                widths[idx] = widths[idx].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (idx, cell) in cells.iter().enumerate() {
            if idx + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}   ", width = widths[idx]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value).context("encoding json")?;
    text.push('\n');
    Ok(text)
}

pub fn yaml<T: Serialize>(value: &T) -> anyhow::Result<String> {
    serde_saphyr::to_string(value).map_err(|e| anyhow::anyhow!("encoding yaml: {e}"))
}

/// JSON or YAML of `value`; `None` for the table format (the caller renders it).
pub fn structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<Option<String>> {
    match format {
        Format::Table => Ok(None),
        Format::Json => json(value).map(Some),
        Format::Yaml => yaml(value).map(Some),
    }
}

pub fn clusters_table(clusters: &[ClusterSummary]) -> String {
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            vec![
                c.cluster_id.clone(),
                c.datacenters.join(","),
                c.security_tier.clone(),
                c.n_nodes.to_string(),
                c.n_namespaces.to_string(),
                format!("{}/{}", format_cpu(c.requested.cpu_millis), format_cpu(c.allocatable.cpu_millis)),
                format!("{}/{}", format_bytes(c.requested.memory_bytes), format_bytes(c.allocatable.memory_bytes)),
                if c.kubernetes_version.is_empty() { "-".into() } else { c.kubernetes_version.clone() },
                if c.cni.is_empty() { "-".into() } else { c.cni.clone() },
                c.generation.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "CLUSTER",
            "DATACENTER",
            "TIER",
            "NODES",
            "NAMESPACES",
            "CPU REQ/ALLOC",
            "MEM REQ/ALLOC",
            "VERSION",
            "CNI",
            "GENERATION",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let out = table(&["A", "LONGER"], &[vec!["wide-cell".into(), "x".into()], vec!["b".into(), "y".into()]]);
        assert_eq!(out, "A           LONGER\nwide-cell   x\nb           y\n");
    }
}
