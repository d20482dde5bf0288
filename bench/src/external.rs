//! The solver-overhead measurement: the models `kplan propose --write-model` exported,
//! solved again by Python `highspy` with the same settings (threads, time limit, gaps).

use std::process::Command;

use anyhow::{Context, bail};
use kplan_model::BlockStatus;

use crate::run::{Prepared, Tools, block_name, propose};

#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct ExternalModel {
    pub(crate) file: String,
    pub(crate) seconds: f64,
    pub(crate) read_seconds: f64,
    pub(crate) objective: Option<f64>,
    pub(crate) status: String,
}

pub(crate) struct External {
    pub(crate) block: String,
    pub(crate) kplan_seconds: f64,
    pub(crate) highs_seconds: f64,
    pub(crate) models: Vec<ExternalModel>,
    pub(crate) kplan_objective: f64,
}

pub(crate) const HIGHSPY: &str = r#"
import json, sys, time
import highspy
threads = int(sys.argv[1]); time_limit = float(sys.argv[2])
out = []
for path in sys.argv[3:]:
    rel_gap, abs_gap, limit, max_nodes, seed = 0.0, 0.0, time_limit, None, 0
    with open(path) as f:
        for line in f:
            if not line.startswith('*'):
                break
            for word in line.split():
                if word.startswith('mip_rel_gap='): rel_gap = float(word.split('=')[1])
                if word.startswith('mip_abs_gap='): abs_gap = float(word.split('=')[1])
                if word.startswith('time_limit='): limit = float(word.split('=')[1])
                if word.startswith('mip_max_nodes='): max_nodes = min(int(word.split('=')[1]), 2**31 - 1)
                if word.startswith('random_seed='): seed = int(word.split('=')[1])
    h = highspy.Highs()
    h.setOptionValue('output_flag', False)
    h.setOptionValue('threads', threads)
    h.setOptionValue('time_limit', limit)
    h.setOptionValue('mip_rel_gap', rel_gap)
    h.setOptionValue('mip_abs_gap', abs_gap)
    h.setOptionValue('random_seed', seed)
    if max_nodes is not None: h.setOptionValue('mip_max_nodes', max_nodes)
    t0 = time.perf_counter(); h.readModel(path); t1 = time.perf_counter()
    h.run(); t2 = time.perf_counter()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    objective = info.objective_function_value if info.primal_solution_status == 2 else None
    out.append({'file': path.split('/')[-1], 'seconds': t2 - t1, 'read_seconds': t1 - t0,
                'objective': objective, 'status': status})
print('KPLAN-BENCH-RESULT ' + json.dumps(out))
"#;

pub(crate) fn external_highs(tools: &Tools, prepared: &Prepared, time_limit: f64) -> anyhow::Result<Vec<External>> {
    let models_dir = prepared.dir.join("models");
    let models_arg = models_dir.display().to_string();
    let (plan, _) = propose(tools, prepared, &["--write-model", &models_arg])?;
    let script = tools.work.path().join("highs.py");
    std::fs::write(&script, HIGHSPY).context("writing the highspy script")?;
    let mut result = Vec::new();
    for block in &plan.blocks {
        if block.status != BlockStatus::Planned {
            continue;
        }
        let stem = format!("{}-{}", block.datacenter, block.security_tier);
        let mut files: Vec<String> = Vec::new();
        for kind in ["composition", "staging-1", "staging-2", "waves"] {
            let path = models_dir.join(format!("{stem}.{kind}.mps"));
            if path.exists() {
                files.push(path.display().to_string());
            }
        }
        if files.is_empty() {
            continue;
        }
        let output = Command::new("python3")
            .arg(&script)
            .arg("1")
            .arg(time_limit.to_string())
            .args(&files)
            .output()
            .context("running python3 with highspy")?;
        if !output.status.success() {
            bail!("highspy failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        // highspy prints its banner on stdout: the result is the marked line.
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line =
            stdout.lines().find_map(|l| l.strip_prefix("KPLAN-BENCH-RESULT ")).context("highspy printed no result")?;
        let models: Vec<ExternalModel> = serde_json::from_str(line).context("reading highspy's output")?;
        result.push(External {
            block: block_name(block),
            kplan_seconds: block.solve_seconds,
            highs_seconds: models.iter().map(|m| m.seconds).sum(),
            models,
            kplan_objective: block.objective,
        });
    }
    Ok(result)
}
