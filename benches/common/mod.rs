//! Shared by the benchmarks: the benchmark input and the BENCHMARKS.md table writer.
#![allow(dead_code)]

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// The CPU time each thread of a process has used so far (ns, from `/proc/PID/task/*/schedstat`,
/// which counts to the nanosecond where `/proc/PID/stat` counts 10 ms ticks).
pub struct ThreadCpu(std::collections::HashMap<u32, u64>);

impl ThreadCpu {
    pub fn of(pid: u32) -> ThreadCpu {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
        let times = tasks.filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            Some((tid, schedstat.split_whitespace().next()?.parse().ok()?))
        });
        ThreadCpu(times.collect())
    }

    /// CPU ms the process used since `earlier`: what each thread alive now used since then (a
    /// thread that ended in between is not counted; tokio's blocking threads can end when idle).
    pub fn ms_since(&self, earlier: &ThreadCpu) -> f64 {
        let ns: u64 = self.0.iter().map(|(tid, now)| now.saturating_sub(*earlier.0.get(tid).unwrap_or(&0))).sum();
        ns as f64 / 1e6
    }
}

/// A child process killed (and reaped) when dropped, so a failing benchmark leaves nothing behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `$ENVOY_BIN`, else `.venv/bin/envoy` (which `scripts/test` installs).
pub fn envoy_binary() -> PathBuf {
    std::env::var_os("ENVOY_BIN").map(PathBuf::from).unwrap_or_else(|| root().join(".venv/bin/envoy"))
}

/// GET with a fresh connection; returns the status. Reads only the status line: Envoy delays
/// closing connections it answered locally (`delayed_close_timeout`, 1 s), so reading to EOF
/// would measure that timeout instead of the route.
pub fn http_get(port: u16, path: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").ok()?;
    let mut status_line = String::new();
    std::io::BufReader::new(stream).read_line(&mut status_line).ok()?;
    status_line.split_whitespace().nth(1)?.parse().ok()
}

pub fn wait_for(mut done: impl FnMut() -> bool, limit: Duration) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Writes a file atomically (write + rename), as editors and Kubernetes volume updates do.
pub fn replace_file(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A Mapping whose prefix `/probe-<i>/` is answered by the control plane's own admin endpoint.
pub fn probe_mapping(i: usize, admin: u16) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: probe, namespace: default}}\n\
         spec: {{hostname: '*', prefix: /probe-{i}/, service: '127.0.0.1:{admin}', rewrite: /healthz}}\n"
    )
}

/// A real Envoy on the bootstrap `ambassador-xds bootstrap` writes (to `bootstrap`) for the xDS
/// server on `xds`, with its admin on `envoy_admin`.
pub fn start_envoy(bootstrap: &Path, xds: u16, envoy_admin: u16) -> Killed {
    let output = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
        .args(["bootstrap", "--xds-address", &format!("127.0.0.1:{xds}"), "--admin-port", &envoy_admin.to_string()])
        .output()
        .unwrap();
    std::fs::write(bootstrap, output.stdout).unwrap();
    Killed(
        Command::new(envoy_binary())
            .args(["--disable-hot-restart", "-l", "error", "-c"])
            .arg(bootstrap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("envoy"),
    )
}
