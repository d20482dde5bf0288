//! The user's defaults: `$XDG_CONFIG_HOME/kplan/config.toml` (else
//! `~/.config/kplan/config.toml`). Layers: this file < `KPLAN_SERVER` /
//! `KPLAN_INVENTORY` < flags.
//!
//! ```toml
//! server = "https://kplan.example.internal:7470"  # or: inventory = "/home/me/kplan-inventory"
//! policy = "/home/me/policies/bank.toml"           # default --policy of propose and capacity review
//! ca = "/home/me/.config/kplan/ca.crt"             # the CA bundle of the server's certificate
//! cert = "/home/me/.config/kplan/reader-me.crt"    # a client certificate and its key ...
//! key = "/home/me/.config/kplan/reader-me.key"
//! # token_file = "/home/me/.config/kplan/token"   # ... or a bearer token (readers, planners)
//! # tls_server_name = "kplan.example.internal"    # when the URL's host is not in the certificate
//! # insecure_plaintext = true                     # allow http:// (no encryption, no authentication)
//! ```
//!
//! Each of `ca`, `cert`, `key`, `token_file`, `tls_server_name` and
//! `insecure_plaintext` is used when neither its flag nor its environment
//! variable (`KPLAN_CA`, `KPLAN_CERT`, ...) is given.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub server: Option<String>,
    pub inventory: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub insecure_plaintext: Option<bool>,
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
        let config = parse("ca = \"/ca.crt\"\ntoken_file = \"/t\"\ninsecure_plaintext = false\n").expect("parses");
        assert_eq!(config.ca.as_deref(), Some(Path::new("/ca.crt")));
        assert_eq!(config.insecure_plaintext, Some(false));
    }
}
