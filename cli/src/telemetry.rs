//! Logging, as the server and the agent do it: `KPLAN_LOG` sets the filter,
//! `KPLAN_LOG_FORMAT=json` switches to one JSON object per line; logs go to
//! stderr. (Twelve lines kept in each binary rather than a crate of their own:
//! the CLI links neither the server nor the agent.)

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_env("KPLAN_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("KPLAN_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
