//! `kplan plans runbook` and `kplan plans export --format manifests`: the
//! planner's [`Runbook`] as the Markdown a change-advisory board reads, and
//! its Velero objects as YAML files, one directory per wave.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use kplan_planner::runbook::{FIREWALL_COLUMNS, Phase, Runbook, Step};

use crate::output;

/// The runbook in Markdown: per block and wave, the steps in order, each with
/// its commands, objects (as the file names the commands apply), checks and
/// rollback.
pub fn markdown(runbook: &Runbook) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Runbook of plan {}\n", runbook.plan_id);
    let _ = writeln!(
        md,
        "Contexts are named after clusters (`kubectl --context <cluster>`). Placeholders in `<ANGLE_BRACKETS>` \
         are filled in by the operator (tokens and keys are never written here). Velero runs in every source and \
         target cluster, sharing one backup storage location; its objects are written by \
         `kplan plans export {} --format manifests --out DIR`.\n",
        runbook.plan_id
    );
    for block in &runbook.blocks {
        let _ = writeln!(md, "## {}/{}\n", block.datacenter, block.security_tier);
        for wave in &block.waves {
            let _ = writeln!(md, "### Wave {}\n", wave.wave);
            let mut phase: Option<Phase> = None;
            for step in &wave.steps {
                if phase != Some(step.phase) {
                    let _ = writeln!(md, "#### {}\n", step.phase.title());
                    phase = Some(step.phase);
                }
                step_markdown(&mut md, step);
            }
        }
    }
    md
}

fn step_markdown(md: &mut String, step: &Step) {
    let _ = writeln!(md, "**{}. {}**\n", step.number, step.title);
    if !step.rows.is_empty() {
        let _ = writeln!(md, "| {} |", FIREWALL_COLUMNS.join(" | "));
        let _ = writeln!(md, "|{}", "---|".repeat(FIREWALL_COLUMNS.len()));
        for row in &step.rows {
            let _ = writeln!(md, "| {} |", row.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
        }
        md.push('\n');
    }
    if !step.commands.is_empty() {
        let _ = writeln!(md, "```sh\n{}\n```\n", step.commands.join("\n"));
    }
    if !step.objects.is_empty() {
        let names: Vec<String> = step.objects.iter().map(object_file_name).collect();
        let _ = writeln!(md, "Objects: {}\n", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "));
    }
    if !step.checks.is_empty() {
        let _ = writeln!(md, "Check:\n\n```sh\n{}\n```\n", step.checks.join("\n"));
    }
    if !step.rollback.is_empty() {
        let _ = writeln!(md, "Rollback:\n\n```sh\n{}\n```\n", step.rollback.join("\n"));
    }
}

/// `backup-<name>.yaml`, `restore-<name>.yaml`: what the step's commands apply.
pub fn object_file_name(object: &serde_json::Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("object").to_lowercase();
    let name = object["metadata"]["name"].as_str().unwrap_or("unnamed");
    format!("{kind}-{name}.yaml")
}

/// Writes every step's objects under `dir/<datacenter>-<tier>/wave-<N>/`, and
/// returns the files written.
pub fn write_manifests(runbook: &Runbook, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for block in &runbook.blocks {
        for wave in &block.waves {
            let wave_dir =
                dir.join(format!("{}-{}", block.datacenter, block.security_tier)).join(format!("wave-{}", wave.wave));
            for object in wave.steps.iter().flat_map(|s| &s.objects) {
                std::fs::create_dir_all(&wave_dir).with_context(|| format!("creating {}", wave_dir.display()))?;
                let path = wave_dir.join(object_file_name(object));
                std::fs::write(&path, output::yaml(object)?).with_context(|| format!("writing {}", path.display()))?;
                written.push(path);
            }
        }
    }
    Ok(written)
}
