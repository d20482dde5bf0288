//! Issue 8: the HTML reports open in headless Chromium with no console errors,
//! their charts are present, and a screenshot of each is kept as a build artifact
//! (`<target dir>/artifacts/*.png`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|name| Path::new("/usr/bin").join(name))
        .find(|path| path.is_file())
}

fn artifacts_dir() -> PathBuf {
    let dir = bin_dir().parent().expect("target dir").join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Loads `html` in headless Chromium: returns (the rendered DOM, Chromium's log).
fn load(browser: &Path, html: &Path, screenshot: &Path) -> (String, String) {
    let profile = tempfile::tempdir().expect("profile dir");
    let common_flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let url = format!("file://{}", html.display());
    let dom = Command::new(browser)
        .args(common_flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("runs chromium");
    assert!(dom.status.success(), "chromium --dump-dom failed: {}", String::from_utf8_lossy(&dom.stderr));
    let shot = Command::new(browser)
        .args(common_flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--window-size=1280,2400")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("runs chromium");
    assert!(shot.status.success(), "chromium --screenshot failed: {}", String::from_utf8_lossy(&shot.stderr));
    let log = format!("{}{}", String::from_utf8_lossy(&dom.stderr), String::from_utf8_lossy(&shot.stderr));
    (String::from_utf8_lossy(&dom.stdout).into_owned(), log)
}

fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            (l.contains("CONSOLE") && (l.contains("ERROR") || l.contains("\"error\"")))
                || l.contains("Uncaught")
                || l.contains("Failed to load resource")
                || l.contains("net::ERR_")
        })
        .collect()
}

fn check_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert!(bytes.len() > 10_000, "screenshot {} is suspiciously small", path.display());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn html_reports_render_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium (scripts/setup.sh)");
        eprintln!("skipping: chromium is not installed (scripts/setup.sh installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inv");
    let inventory = inventory.to_str().expect("utf-8 path");
    let estate = repo_root().join("examples/bank/estate.toml");
    let policy = repo_root().join("examples/bank/policy.toml");
    kplan_ok(&["--inventory", inventory, "import", "--estate", estate.to_str().expect("utf-8 path")]);
    let plan: Value = serde_json::from_str(&kplan_ok(&[
        "--inventory",
        inventory,
        "propose",
        "--policy",
        policy.to_str().expect("utf-8 path"),
        "-o",
        "json",
    ]))
    .expect("json");
    let id = plan["id"].as_str().expect("plan id");
    let n_planned = plan["blocks"].as_array().expect("blocks").iter().filter(|b| b["status"] == "planned").count();

    let plan_html = dir.path().join("plan.html");
    kplan_ok(&[
        "--inventory",
        inventory,
        "plans",
        "export",
        id,
        "--format",
        "html",
        "--out",
        plan_html.to_str().expect("utf-8 path"),
    ]);
    let capacity_html = dir.path().join("capacity.html");
    let review = kplan_ok(&["--inventory", inventory, "capacity", "review", "--format", "html"]);
    std::fs::write(&capacity_html, review).expect("writes");

    let artifacts = artifacts_dir();
    let (dom, log) = load(&browser, &plan_html, &artifacts.join("plan-report.png"));
    assert!(console_errors(&log).is_empty(), "console errors: {:#?}", console_errors(&log));
    assert!(dom.contains(&format!("Consolidation plan {id}")), "the plan page did not render");
    // The nodes-per-block chart, then per planned block: capacity at every wave and the timeline.
    let n_charts = dom.matches("class=\"chart\"").count();
    assert_eq!(n_charts, 1 + 2 * n_planned, "charts in the plan report");
    assert_eq!(
        dom.matches("class=\"flow-matrix\"").count() + dom.matches("No firewall flows to open").count(),
        n_planned
    );
    check_png(&artifacts.join("plan-report.png"));

    let (dom, log) = load(&browser, &capacity_html, &artifacts.join("capacity-report.png"));
    assert!(console_errors(&log).is_empty(), "console errors: {:#?}", console_errors(&log));
    assert!(dom.contains("Capacity review"), "the capacity page did not render");
    assert_eq!(dom.matches("class=\"chart\"").count(), 2 * 5, "cpu and memory trend for each of the 5 blocks");
    check_png(&artifacts.join("capacity-report.png"));
}
