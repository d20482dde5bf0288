//! Policy texts as `propose` receives them: the first byte picks TOML or YAML,
//! the rest is the text given to `parse_policy`.
#![no_main]

use kplan_planner::policy::{PolicyFormat, parse_policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if selector % 2 == 0 { PolicyFormat::Toml } else { PolicyFormat::Yaml };
    let _ = parse_policy(text, format);
});
