//! What one change costs: `cargo bench --bench reload` (needs Envoy: `$ENVOY_BIN` or
//! `.venv/bin/envoy`, which `scripts/test` installs).
//!
//! The release `serve` holds the shared benchmark input (`gen_config.py N`) plus a file of 1,000
//! more Mappings that all originate TLS with one TLSContext; a real Envoy 1.40 (SotW ADS) is
//! connected. Then, 20 times each:
//! * one Mapping's prefix changes (its own file, replaced by rename): the reload's duration as
//!   `serve` logs it, the server's CPU time from just before the write until Envoy answers on the
//!   new prefix (the reload plus the push), Envoy's CPU time over the same span, and that wall
//!   time minus the debounce;
//! * the shared TLSContext changes (its `alpn_protocols`), which changes the 1,000 clusters that
//!   use it: the reload's duration and the server's CPU until the reload is logged.
//!
//! Sizes: `BENCH_SIZES=5000,50000` (the default).

mod common;

use common::{http_get, probe_mapping, replace_file, wait_for, Killed};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHANGES: usize = 20;
const DEBOUNCE_MS: u64 = 20;
const SHARED_TLS_MAPPINGS: usize = 1_000;

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// One TLSContext (the benchmark's first certificate) and the Mappings that use it.
fn shared_tls(alpn: &str) -> String {
    let mut out = format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {{name: shared, namespace: default}}\n\
         spec: {{secret: ctx-0-certs, alpn_protocols: {alpn}}}\n"
    );
    for i in 0..SHARED_TLS_MAPPINGS {
        out.push_str(&format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: shared-{i}, namespace: default}}\n\
             spec: {{hostname: '*', prefix: /shared-{i}/, service: 'shared-{i}:8443', tls: shared}}\n"
        ));
    }
    out
}

/// The `elapsed=` of every `publishing configuration` line in the log so far, in ms.
fn reload_times(log: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|line| line.contains("publishing configuration"))
        .filter_map(|line| {
            let value = line.split("elapsed=").nth(1)?.split_whitespace().next()?;
            let (number, unit) = value.split_at(value.find(|c: char| c.is_alphabetic())?);
            let number: f64 = number.parse().ok()?;
            Some(match unit {
                "s" => number * 1000.0,
                "ms" => number,
                "µs" | "us" => number / 1000.0,
                "ns" => number / 1e6,
                _ => return None,
            })
        })
        .collect()
}

struct Figures {
    mappings: usize,
    mapping_reload_ms: f64,
    mapping_cpu_ms: f64,
    mapping_to_envoy_ms: f64,
    mapping_envoy_cpu_ms: f64,
    tls_reload_ms: f64,
    tls_cpu_ms: f64,
    first_reload_ms: f64,
    rss_mib: f64,
    idle_rss_mib: f64,
}

fn measure(mappings: usize) -> Figures {
    let input = common::bench_input(mappings);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let (xds, admin, listener, envoy_admin) =
        (common::free_port(), common::free_port(), common::free_port(), common::free_port());
    std::fs::write(config.join("config.yaml"), common::config_on_port(&input, listener)).unwrap();
    let probe = config.join("probe.yaml");
    std::fs::write(&probe, probe_mapping(0, admin)).unwrap();
    let shared = config.join("shared-tls.yaml");
    std::fs::write(&shared, shared_tls("h2")).unwrap();
    let log = dir.path().join("serve.log");
    let server = Killed(
        Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
            .args(["serve", "--config-dir"])
            .arg(&config)
            .args(["--xds-address", &format!("127.0.0.1:{xds}"), "--admin-address", &format!("127.0.0.1:{admin}")])
            .args(["--debounce-ms", &DEBOUNCE_MS.to_string()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("ambassador-xds serve"),
    );
    let pid = server.0.id();
    wait_for(|| http_get(admin, "/readyz") == Some(200), Duration::from_secs(120));

    let envoy = common::start_envoy(&dir.path().join("bootstrap.yaml"), xds, envoy_admin);
    wait_for(|| http_get(listener, "/probe-0/") == Some(200), Duration::from_secs(120));
    let first_reload_ms = reload_times(&log)[0];

    let envoy_pid = envoy.0.id();
    let (mut reload, mut used, mut to_envoy, mut envoy_used) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // One warm-up change, then the measured ones.
    for i in 1..=CHANGES + 1 {
        let path = format!("/probe-{i}/");
        let (before, logged) = (common::ThreadCpu::of(pid), reload_times(&log).len());
        let envoy_before = common::ThreadCpu::of(envoy_pid);
        let start = Instant::now();
        replace_file(&probe, &probe_mapping(i, admin));
        wait_for(|| http_get(listener, &path) == Some(200), Duration::from_secs(60));
        let wall = start.elapsed().as_secs_f64() * 1000.0;
        wait_for(|| reload_times(&log).len() > logged, Duration::from_secs(60));
        let spent = common::ThreadCpu::of(pid).ms_since(&before);
        let envoy_spent = common::ThreadCpu::of(envoy_pid).ms_since(&envoy_before);
        if i > 1 {
            envoy_used.push(envoy_spent);
            reload.push(*reload_times(&log).last().unwrap());
            used.push(spent);
            to_envoy.push(wall - DEBOUNCE_MS as f64);
        }
    }
    let (mut tls_reload, mut tls_used) = (Vec::new(), Vec::new());
    for i in 0..CHANGES + 1 {
        let (before, logged) = (common::ThreadCpu::of(pid), reload_times(&log).len());
        replace_file(&shared, &shared_tls(if i % 2 == 0 { "http/1.1" } else { "h2" }));
        wait_for(|| reload_times(&log).len() > logged, Duration::from_secs(60));
        // The push to Envoy follows the log line; give it a moment to be counted.
        std::thread::sleep(Duration::from_millis(300));
        let spent = common::ThreadCpu::of(pid).ms_since(&before);
        if i > 0 {
            tls_reload.push(*reload_times(&log).last().unwrap());
            tls_used.push(spent);
        }
    }
    let rss_mib = common::process_usage(pid).1 as f64 / 1024.0;
    // Idle: the controller gives back what the reloads freed once it has been idle 2 s.
    std::thread::sleep(Duration::from_secs(3));
    let idle_rss_mib = common::process_usage(pid).1 as f64 / 1024.0;
    Figures {
        mappings,
        mapping_reload_ms: median(&mut reload),
        mapping_cpu_ms: median(&mut used),
        mapping_to_envoy_ms: median(&mut to_envoy),
        mapping_envoy_cpu_ms: median(&mut envoy_used),
        tls_reload_ms: median(&mut tls_reload),
        tls_cpu_ms: median(&mut tls_used),
        first_reload_ms,
        rss_mib,
        idle_rss_mib,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .map(|s| s.split(',').map(|n| n.trim().parse().expect("BENCH_SIZES: numbers")).collect())
        .unwrap_or_else(|_| vec![5_000, 50_000]);
    let mut rows = Vec::new();
    for n in sizes {
        let f = measure(n);
        println!(
            "{} mappings: one Mapping: reload {:.1} ms, CPU {:.1} ms, write to Envoy minus debounce {:.1} ms, Envoy CPU {:.1} ms | shared TLSContext: reload {:.1} ms, CPU {:.1} ms | first reload {:.0} ms, RSS {:.1} MiB ({:.1} idle)",
            f.mappings, f.mapping_reload_ms, f.mapping_cpu_ms, f.mapping_to_envoy_ms, f.mapping_envoy_cpu_ms, f.tls_reload_ms, f.tls_cpu_ms, f.first_reload_ms, f.rss_mib, f.idle_rss_mib
        );
        rows.push(format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} / {:.1} |",
            f.mappings + SHARED_TLS_MAPPINGS + 1,
            f.mapping_reload_ms,
            f.mapping_cpu_ms,
            f.mapping_to_envoy_ms,
            f.mapping_envoy_cpu_ms,
            f.tls_reload_ms,
            f.tls_cpu_ms,
            f.first_reload_ms,
            f.rss_mib,
            f.idle_rss_mib
        ));
    }
    common::write_section(
        "reload",
        &format!(
            "## reload: what one change costs\n\n`cargo bench --bench reload`. Machine: {}. The release `serve` on \
             `gen_config.py N` plus 1,000 Mappings originating TLS with one shared TLSContext and one probe Mapping \
             (the Mappings column counts them all), `--debounce-ms {DEBOUNCE_MS}`, a real Envoy 1.40 on SotW ADS; \
             medians of {CHANGES} changes after one warm-up. *Reload*: the duration `serve` logs (read every \
             source, compile, validate, encode, build the snapshot). *CPU*: the server process's CPU time (per \
             thread, to the nanosecond) from before the write until the reload is logged and Envoy answers on the new prefix (so it \
             includes the push). *To Envoy*: from the file write until Envoy answers 200 on the new prefix, minus the \
             debounce; *Envoy CPU*: Envoy's CPU time over the same span as *CPU* (every thread). TLSContext: its `alpn_protocols` flips, which changes the 1,000 clusters that use it. Targets \
             (issue 16): one-Mapping CPU at most 20 ms at 5,000 and 50 ms at 50,000; to Envoy at most 50 ms at \
             50,000. RSS: right after the last change, and 3 s later (the controller gives freed memory back once it \
             has been idle 2 s).\n\n\
             | Mappings | one Mapping: reload ms | CPU ms | to Envoy ms | Envoy CPU ms | shared TLSContext: reload ms | CPU ms | first load ms | RSS MiB: after the changes / idle |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n{}",
            common::machine(),
            rows.join("\n")
        ),
    );
}
