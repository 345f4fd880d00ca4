//! Endpoint churn: `cargo bench --bench endpoints` (needs Envoy: `$ENVOY_BIN` or
//! `.venv/bin/envoy`).
//!
//! The 5,000-Mapping benchmark config plus 1,000 Mappings to Consul services (a ConsulResolver,
//! `load_balancer: round_robin`), each with 3 instances in an in-process fake Consul agent
//! (`tests/support/consul.rs`, the one the tests use); `serve` (release) watches the 1,000 with
//! blocking queries and a real Envoy 1.40 takes everything over ADS. Then 100 endpoint changes
//! per second for 30 s (an instance's checks turning critical or passing again). Every tenth
//! change is a probe: one of 10 services whose only passing instance is a local HTTP server
//! loses it (Envoy must answer 503) or gets it back (200); the time from the change in Consul
//! to Envoy routing accordingly is the propagation time (Envoy's `/clusters` shows the host set
//! it routes with, but printing it for 6,000 clusters takes longer than the changes it would
//! time). Also: the control plane's CPU over the 30 s, and what Envoy updated meanwhile.

mod common;

use common::{envoy_binary, Killed};

#[path = "../tests/support/consul.rs"]
#[allow(dead_code)]
mod consul;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const SERVICES: usize = 1000;
const INSTANCES: usize = 3;
const PROBES: usize = 10;
const RATE: u64 = 100;
const SECONDS: u64 = 30;
const CDS: &str = "^cluster_manager\\.cds\\.update_success$";
const LDS: &str = "^listener_manager\\.lds\\.update_success$";
const RDS: &str = "^http\\..*\\.rds\\..*\\.update_success$";

/// The whole body of `GET path` (Envoy's admin).
fn body(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// The sum of the stats whose names match `regex` (percent-encoded for the query).
fn stat(admin: u16, regex: &str) -> u64 {
    let encoded: String = regex
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let text = body(admin, &format!("/stats?filter={encoded}"));
    text.lines().filter_map(|l| l.rsplit_once(": ")?.1.trim().parse::<u64>().ok()).sum()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A local HTTP server answering 200 to everything: the probe services' instance.
fn http_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            });
        }
    });
    port
}

fn consul_config(agent: &str) -> String {
    let mut text = format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: ConsulResolver\nmetadata: {{name: consul-bench, namespace: default}}\nspec: {{address: '{agent}', datacenter: dc1}}\n"
    );
    for i in 0..SERVICES {
        text.push_str(&format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: edge-{i}, namespace: default}}\n\
             spec: {{hostname: '*', prefix: /edge-{i}/, service: edge-{i}, resolver: consul-bench, load_balancer: {{policy: round_robin}}}}\n"
        ));
    }
    text
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Churn {
    latencies: Vec<Duration>,
    changes: u64,
    cpu_ms: u64,
    peak_rss_mib: f64,
    cds: u64,
    lds: u64,
    rds: u64,
    clusters_ms: f64,
    hosts_match: bool,
}

fn run() -> Churn {
    let input = common::bench_input(5000);
    let dir = tempfile::tempdir().unwrap();
    let (xds, admin, listener, envoy_admin) =
        (common::free_port(), common::free_port(), common::free_port(), common::free_port());
    let fake = consul::FakeConsul::start();
    let probe_port = http_upstream();
    let probe_services: Vec<usize> = (0..PROBES).map(|p| p * (SERVICES / PROBES)).collect();
    let mut instances = Vec::new();
    for i in 0..SERVICES {
        for k in 0..INSTANCES {
            let address = if probe_services.contains(&i) && k == 0 {
                "127.0.0.1".to_string()
            } else {
                format!("10.{}.{}.{}", i / 250, i % 250, k + 1)
            };
            let port = if address == "127.0.0.1" { probe_port } else { 8080 };
            instances.push((format!("edge-{i}"), format!("edge-{i}-{k}"), address, port));
        }
    }
    fake.register_many(&instances);
    for &i in &probe_services {
        // Only the local instance passes: the probe toggles it.
        for k in 1..INSTANCES {
            fake.set_passing(&format!("edge-{i}"), &format!("edge-{i}-{k}"), false);
        }
    }
    std::fs::write(dir.path().join("config.yaml"), common::config_on_port(&input, listener)).unwrap();
    std::fs::write(dir.path().join("consul.yaml"), consul_config(&fake.address())).unwrap();

    let serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
            .args(["serve", "--config-dir"])
            .arg(dir.path())
            .args(["--xds-address", &format!("127.0.0.1:{xds}"), "--admin-address", &format!("127.0.0.1:{admin}")])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("ambassador-xds serve"),
    );
    wait_for("serve ready", Duration::from_secs(60), || common::http_get(admin, "/readyz") == Some(200));
    let bootstrap = dir.path().join("..bootstrap.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
        .args(["bootstrap", "--xds-address", &format!("127.0.0.1:{xds}"), "--admin-port", &envoy_admin.to_string()])
        .output()
        .unwrap();
    std::fs::write(&bootstrap, output.stdout).unwrap();
    let _envoy = Killed(
        Command::new(envoy_binary())
            .args(["--disable-hot-restart", "--concurrency", "1", "-l", "error", "-c"])
            .arg(&bootstrap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("envoy"),
    );
    wait_for("every probe answers through Envoy", Duration::from_secs(120), || {
        probe_services.iter().all(|i| common::http_get(listener, &format!("/edge-{i}/")) == Some(200))
    });
    wait_for("no cluster warming", Duration::from_secs(60), || {
        stat(envoy_admin, "^cluster_manager\\.warming_clusters$") == 0
    });
    let updates = |name: &str| stat(envoy_admin, name);
    let (cds0, lds0, rds0) = (updates(CDS), updates(LDS), updates(RDS));

    // One measuring thread per probe service.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut probes = Vec::new();
    let mut senders = Vec::new();
    for &service in &probe_services {
        let (tx, rx) = mpsc::channel::<(Instant, u16)>();
        senders.push(tx);
        let latencies = latencies.clone();
        probes.push(std::thread::spawn(move || {
            for (changed, expected) in rx {
                loop {
                    if common::http_get(listener, &format!("/edge-{service}/")) == Some(expected) {
                        latencies.lock().unwrap().push(changed.elapsed());
                        break;
                    }
                    if changed.elapsed() > Duration::from_secs(10) {
                        panic!("edge-{service} never answered {expected}");
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }));
    }

    let pid = serve.0.id();
    let (_, _, cpu_before) = common::process_usage(pid);
    let started = Instant::now();
    let mut probe_up = [true; PROBES];
    let mut down: Vec<bool> = vec![false; SERVICES];
    let total = RATE * SECONDS;
    for change in 0..total {
        let due = started + Duration::from_micros(change * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let n = change as usize;
        if n % 10 == 0 {
            let p = (n / 10) % PROBES;
            let service = probe_services[p];
            probe_up[p] = !probe_up[p];
            let at = Instant::now();
            fake.set_passing(&format!("edge-{service}"), &format!("edge-{service}-0"), probe_up[p]);
            senders[p].send((at, if probe_up[p] { 200 } else { 503 })).unwrap();
        } else {
            // Background: the next service that is not a probe, instance 1 turning critical or back.
            let mut service = (n * 7) % SERVICES;
            while probe_services.contains(&service) {
                service = (service + 1) % SERVICES;
            }
            down[service] = !down[service];
            fake.set_passing(&format!("edge-{service}"), &format!("edge-{service}-1"), !down[service]);
        }
    }
    let elapsed = started.elapsed();
    drop(senders);
    for probe in probes {
        probe.join().unwrap();
    }
    let (peak_kib, _, cpu_after) = common::process_usage(pid);
    let cpu_ms = (cpu_after - cpu_before) * SECONDS * 1000 / elapsed.as_millis().max(1) as u64;

    // The end state, once, from /clusters.
    std::thread::sleep(Duration::from_millis(500));
    let clusters_started = Instant::now();
    let clusters = body(envoy_admin, "/clusters");
    let clusters_ms = ms(clusters_started.elapsed());
    let hosts = |service: usize| -> usize {
        let prefix = format!("cluster_edge_{service}_default_er_round_robin::");
        clusters.lines().filter(|l| l.starts_with(&prefix) && l.ends_with("::health_flags::healthy")).count()
    };
    let hosts_match = (0..SERVICES).filter(|i| !probe_services.contains(i)).all(|i| {
        let expected = INSTANCES - usize::from(down[i]);
        hosts(i) == expected
    });
    let latencies = latencies.lock().unwrap().clone();
    Churn {
        changes: total,
        cpu_ms,
        peak_rss_mib: peak_kib as f64 / 1024.0,
        cds: updates(CDS) - cds0,
        lds: updates(LDS) - lds0,
        rds: updates(RDS) - rds0,
        clusters_ms,
        hosts_match,
        latencies,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let result = run();
    let mut latencies = result.latencies.clone();
    let (median, p99) = (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99));
    let cpu_percent = result.cpu_ms as f64 / (SECONDS as f64 * 10.0);
    println!(
        "{} changes, {} probes: median {:.1} ms, p99 {:.1} ms; control plane CPU {} ms over {SECONDS} s ({cpu_percent:.1}% of a core), peak RSS {:.1} MiB; Envoy CDS/LDS/RDS updates {}/{}/{}; /clusters {:.0} ms; hosts match Consul: {}",
        result.changes, latencies.len(), ms(median), ms(p99), result.cpu_ms, result.peak_rss_mib, result.cds, result.lds, result.rds, result.clusters_ms, result.hosts_match
    );
    assert!(result.hosts_match, "Envoy's /clusters does not match Consul's passing instances");
    let body = format!(
        "## endpoints: churn from Consul\n\n\
         `cargo bench --bench endpoints`. Machine: {}.\n\n\
         The 5,000-Mapping benchmark config plus {SERVICES} Mappings to Consul services (ConsulResolver, \
         `load_balancer: round_robin`, {INSTANCES} instances each, one blocking query per service against an in-process \
         fake Consul agent), served to a real Envoy 1.40. Then {RATE} endpoint changes per second for {SECONDS} s (an \
         instance's checks turning critical or passing). Every tenth change is a probe: one of {PROBES} services loses or \
         regains its only passing instance, and the time from the change in Consul until Envoy routes accordingly (503 or \
         200) is measured. Afterwards every service's healthy hosts in Envoy's `/clusters` match Consul's passing \
         instances ({}); printing `/clusters` for these 6,000 clusters takes {:.0} ms, so polling it from ten probe \
         threads would load Envoy more than the churn does: the probes watch the routing instead.\n\n\
         | changes | probes | median ms | p99 ms | control plane CPU | peak RSS MiB | Envoy CDS / LDS / RDS updates during the churn |\n\
         |---:|---:|---:|---:|---:|---:|---|\n\
         | {} | {} | **{:.1}** | **{:.1}** | {} ms in {SECONDS} s (**{cpu_percent:.1}%** of a core) | {:.1} | {} / {} / {} |\n\n\
         Endpoint changes never recompile: the controller rebuilds only the ClusterLoadAssignments (10 ms of quiet, \
         at most 100 ms after the first change), so Envoy gets EDS updates and nothing else.",
        common::machine(),
        if result.hosts_match { "checked" } else { "MISMATCH" },
        result.clusters_ms,
        result.changes,
        latencies.len(),
        ms(median),
        ms(p99),
        result.cpu_ms,
        result.peak_rss_mib,
        result.cds,
        result.lds,
        result.rds,
    );
    common::write_section("endpoints", &body);
}
