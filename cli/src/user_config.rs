//! The user's defaults: `$XDG_CONFIG_HOME/kplan/config.toml` (else
//! `~/.config/kplan/config.toml`). Layers: this file < `KPLAN_SERVER` /
//! `KPLAN_INVENTORY` < flags.
//!
//! ```toml
//! server = "http://kplan.example.internal:7470"   # or: inventory = "/home/me/kplan-inventory"
//! policy = "/home/me/policies/bank.toml"           # default --policy of propose and capacity review
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub server: Option<String>,
    pub inventory: Option<PathBuf>,
    pub policy: Option<PathBuf>,
}

pub fn path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(Path::new(&dir).join("kplan/config.toml"));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".config/kplan/config.toml"))
}

/// Reads the file if it exists; a file that exists but does not parse is an error.
pub fn load() -> anyhow::Result<UserConfig> {
    let Some(path) = path() else { return Ok(UserConfig::default()) };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).with_context(|| format!("user config {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UserConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading user config {}", path.display())),
    }
}

pub fn parse(text: &str) -> anyhow::Result<UserConfig> {
    let config: UserConfig =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().lines().collect::<Vec<_>>().join(" ")))?;
    if config.server.is_some() && config.inventory.is_some() {
        anyhow::bail!("give either server or inventory, not both");
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_keys() {
        let config = parse("server = \"http://127.0.0.1:7470\"\npolicy = \"/p.toml\"\n").expect("parses");
        assert_eq!(config.server.as_deref(), Some("http://127.0.0.1:7470"));
        assert!(parse("sever = \"x\"").expect_err("unknown key").to_string().contains("sever"));
        assert!(parse("server = \"x\"\ninventory = \"y\"").is_err());
    }
}
