//! `kplan import`: kubectl output (or an agent's snapshot file) → a stored snapshot.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kplan_collect::{CollectOptions, KubeObject, LabelKeys, collect, parse_documents};
use kplan_model::ClusterSnapshot;
use serde::Deserialize;

/// One source cluster of an estate manifest (`kplan import --estate FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstateCluster {
    pub id: String,
    #[serde(default)]
    pub datacenter: Option<String>,
    #[serde(default)]
    pub security_tier: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub generation: Option<u64>,
    /// Relative to the manifest.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estate {
    #[serde(default)]
    pub labels: Option<LabelKeys>,
    pub clusters: Vec<EstateCluster>,
}

pub fn read_estate(path: &Path) -> anyhow::Result<(Estate, PathBuf)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading estate manifest {}", path.display()))?;
    let estate: Estate = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().lines().collect::<Vec<_>>().join(" ")))?;
    if estate.clusters.is_empty() {
        bail!("{}: lists no clusters", path.display());
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((estate, base))
}

/// Reads and parses the files, then applies the label contract.
pub fn snapshot_from_files(files: &[PathBuf], options: &CollectOptions) -> anyhow::Result<ClusterSnapshot> {
    if files.is_empty() {
        bail!("no input files given");
    }
    let mut objects: Vec<KubeObject> = Vec::new();
    for file in files {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading standard input")?
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        };
        objects.extend(parse_documents(&text, &file.display().to_string())?);
    }
    Ok(collect(objects, options)?)
}
