//! What the machine was and how busy, for the report's header (figures are only
//! comparable within one run on one machine).

use std::process::Command;

pub(crate) fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub(crate) fn load_average() -> String {
    read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

pub(crate) fn machine() -> String {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_string(), |(_, v)| v.trim().to_string());
    let n_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    format!("{model}, {n_cpus} cores (nproc), {:.1} GiB RAM, Linux {kernel}", memory_kib as f64 / 1048576.0)
}

pub(crate) fn commit() -> String {
    let run = |args: &[&str]| {
        Command::new("git").args(args).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let hash = run(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = run(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    if hash.is_empty() {
        "unknown".to_string()
    } else if dirty {
        format!("{hash} + uncommitted changes")
    } else {
        hash
    }
}

pub(crate) fn vm_hwm_kib(pid: u32) -> Option<u64> {
    read(&format!("/proc/{pid}/status"))
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
