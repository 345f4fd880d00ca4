//! Shared by the benchmarks: the benchmark input and the BENCHMARKS.md table writer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/bench-input/N/config.yaml` made by `shared/bench/gen_config.py` (cached).
pub fn bench_input(n: usize) -> PathBuf {
    let generator = std::env::var_os("GEN_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/bench/gen_config.py"));
    let dir = root().join("target/bench-input").join(n.to_string());
    if !dir.join("config.yaml").exists() {
        let status = Command::new("python3").arg(&generator).arg(n.to_string()).arg(&dir).status().expect("python3");
        assert!(status.success(), "{} failed", generator.display());
    }
    dir
}

/// Replaces the section between `<!-- NAME:begin -->` and `<!-- NAME:end -->` (or appends it).
pub fn write_section(name: &str, body: &str) {
    let path = root().join("BENCHMARKS.md");
    let (begin, end) = (format!("<!-- {name}:begin -->"), format!("<!-- {name}:end -->"));
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    let updated = match (existing.find(&begin), existing.find(&end)) {
        (Some(b), Some(e)) => format!("{}{section}{}", &existing[..b], &existing[e + end.len()..]),
        _ => format!("{}\n\n{section}\n", existing.trim_end()),
    };
    std::fs::write(path, updated).unwrap();
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap().trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cores} cores, {cpu}")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The benchmark config with its Listener moved to `port` (gen_config pins 8080).
pub fn config_on_port(input: &Path, port: u16) -> String {
    std::fs::read_to_string(input.join("config.yaml"))
        .unwrap()
        .replace("spec: {port: 8080,", &format!("spec: {{port: {port},"))
}

/// Peak and current RSS (KiB) and CPU time (ms) of a process, from /proc.
pub fn process_usage(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = 100; // USER_HZ on Linux
    (field("VmHWM:"), field("VmRSS:"), ticks * 1000 / hz)
}
