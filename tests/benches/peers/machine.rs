//! What the benchmarks ran on: cores, memory, kernel, CPU model and peer versions.

use serde_json::{json, Value};
use std::process::Command;

fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = yilian_tests::imaging_client::output_text(&out);
    text.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned)
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
}

fn mem_total_kib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// A JSON description of this machine and the peers' versions.
pub fn describe() -> Value {
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu_model(),
        "mem_total_kib": mem_total_kib(),
        "kernel": first_line("uname", &["-r"]),
        "etcd": first_line("etcd", &["--version"]),
        "orthanc": first_line("Orthanc", &["--version"]),
        "dcmtk": first_line("storescu", &["--version"]),
    })
}
