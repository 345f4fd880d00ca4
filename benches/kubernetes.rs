//! Kubernetes source at scale: `cargo bench --bench kubernetes`.
//!
//! The in-process fake API server (`tests/support/kubernetes/api.rs`) holds 5,000 Mappings, 100
//! TLSContexts and 100 `kubernetes.io/tls` Secrets (`shared/bench/gen_config.py 5000`, real EC
//! certificates; every 10th Mapping with `tls:`), one Listener, and small `Opaque` Secrets that
//! no one names, with and without 1,000 Helm release Secrets of ~200 KiB; 10,000 Secrets in all
//! with them. Against each population the release `ambassador-xds serve --kubernetes` runs
//! `BENCH_RUNS` times (3), measuring
//! * initial sync: spawn until `/readyz` answers 200;
//! * RSS once synced (VmRSS, 3 s after ready: the controller gives back what the first reload
//!   freed once it has been idle 2 s) and its peak (VmHWM), from /proc;
//! * 20 times, one Mapping's prefix changed through the fake: the process's CPU time
//!   (utime+stime) from the write until 300 ms after the reload's `publishing configuration` log
//!   line, and that line's `elapsed=`;
//!
//! and writes the table (medians) into BENCHMARKS.md between the `kubernetes` markers. A last
//! population has the fake ignore `fieldSelector` (as it did before it had selectors), so Helm
//! Secrets reach serve and only its trimming keeps them small.
//!
//! For finding where memory goes, `BENCH_MAPPINGS`, `BENCH_OPAQUE` (8,900), `BENCH_CHANGES` (20)
//! and `BENCH_ONLY=0,2` (populations by index) change the input; BENCHMARKS.md is then left alone.

mod common;

#[path = "../tests/support/kubernetes/api.rs"]
#[allow(dead_code)]
mod api;

use api::FakeKube;
use base64::Engine as _;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRETS: usize = 10_000;
const HELM: usize = 1_000;
const TLS: usize = 100;
const NAMESPACES: [&str; 4] = ["team-a", "team-b", "team-c", "team-d"];
const CHANGES: usize = 20;
const OPAQUE: usize = SECRETS - HELM - TLS;
/// Base64 characters of each Helm release's `release` field.
const RELEASE_CHARS: usize = 200 * 1024;

struct Population {
    name: &'static str,
    helm: bool,
    selectors: bool,
}

const POPULATIONS: [Population; 3] = [
    Population { name: "without Helm Secrets (9,000 Secrets)", helm: false, selectors: true },
    Population { name: "with 1,000 Helm Secrets (10,000 Secrets)", helm: true, selectors: true },
    Population { name: "with Helm Secrets, fake ignores `fieldSelector`", helm: true, selectors: false },
];

#[derive(Default)]
struct Samples {
    sync: Vec<Duration>,
    rss_kib: Vec<u64>,
    peak_kib: Vec<u64>,
    cpu_ms: Vec<f64>,
    elapsed_ms: Vec<f64>,
    publish_ms: Vec<f64>,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok().map(|n| n.parse().unwrap_or_else(|_| panic!("{name}: a number")))
}

fn main() {
    let runs = env("BENCH_RUNS").unwrap_or(3);
    let input = common::bench_input(env("BENCH_MAPPINGS").unwrap_or(5_000));
    let opaque = env("BENCH_OPAQUE").unwrap_or(OPAQUE);
    let changes = env("BENCH_CHANGES").unwrap_or(CHANGES);
    let only: Option<Vec<usize>> =
        std::env::var("BENCH_ONLY").ok().map(|list| list.split(',').map(|i| i.trim().parse().unwrap()).collect());
    let standard = ["BENCH_MAPPINGS", "BENCH_OPAQUE", "BENCH_CHANGES", "BENCH_ONLY"]
        .iter()
        .all(|name| std::env::var_os(name).is_none());
    let mut rows = Vec::new();
    for (index, population) in POPULATIONS.iter().enumerate() {
        if only.as_ref().is_some_and(|only| !only.contains(&index)) {
            continue;
        }
        let api = populate(&input, opaque, population.helm);
        api.honour_field_selectors(population.selectors);
        let mut samples = Samples::default();
        let work = tempfile::tempdir().unwrap();
        for run in 0..runs {
            measure(&api, work.path(), run, changes, &mut samples);
        }
        let helm_sent: usize = (0..HELM).map(|i| api.times_sent("Secret", helm_namespace(i), &helm_name(i))).sum();
        let row = row(population, &samples, helm_sent);
        println!("{row}");
        rows.push(row);
    }
    if standard {
        write_table(&rows, runs);
    }
}

fn helm_namespace(i: usize) -> &'static str {
    NAMESPACES[i % NAMESPACES.len()]
}

fn helm_name(i: usize) -> String {
    format!("sh.helm.release.v1.app-{i}.v1")
}

/// The gen_config population (kubectl-applied) plus Opaque Secrets (and Helm ones) up to 10,000.
fn populate(input: &Path, opaque: usize, helm: bool) -> FakeKube {
    let started = Instant::now();
    let api = FakeKube::start();
    api.apply(&std::fs::read_to_string(input.join("config.yaml")).unwrap());
    for i in 0..opaque {
        let namespace = if i % 5 == 4 { "default" } else { NAMESPACES[i % 5] };
        api.apply_value(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": format!("app-{i}-credentials"), "namespace": namespace},
            "data": {"username": b64(format!("user-{i}").as_bytes()), "password": b64(&noise(i as u64, 24))},
        }));
    }
    if helm {
        for i in 0..HELM {
            // Helm stores its release gzipped and base64-encoded (as incompressible as noise);
            // the API's `data` encodes that once more: RELEASE_CHARS in all.
            let release = b64(&noise(1_000_000 + i as u64, RELEASE_CHARS * 9 / 16));
            api.create_value(json!({
                "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": helm_name(i), "namespace": helm_namespace(i),
                             "labels": {"owner": "helm", "name": format!("app-{i}"), "status": "deployed", "version": "1"}},
                "data": {"release": b64(release.as_bytes())},
            }));
        }
    }
    // Nothing watches yet: the history (a second copy of every object) can go.
    api.expire_history();
    eprintln!("populated the fake API server (helm: {helm}) in {:.1} s", started.elapsed().as_secs_f64());
    api
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `len` pseudo-random bytes (xorshift), the same for the same seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn measure(api: &FakeKube, work: &Path, run: usize, changes: usize, samples: &mut Samples) {
    let kubeconfig = work.join("kubeconfig.yaml");
    api.write_kubeconfig(&kubeconfig);
    let log_path = work.join(format!("serve-{run}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let admin = common::free_port();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
        .args(["serve", "--kubernetes"])
        .args(["--xds-address", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--admin-address", &format!("127.0.0.1:{admin}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", work)
        .env("RUST_LOG", "info")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("ambassador-xds serve --kubernetes");
    let serve = Killed(child);
    let pid = serve.0.id();
    wait_for("/readyz 200", Duration::from_secs(120), || common::http_get(admin, "/readyz") == Some(200));
    samples.sync.push(started.elapsed());
    std::thread::sleep(Duration::from_secs(3));
    let (peak, rss, _) = common::process_usage(pid);
    samples.rss_kib.push(rss);
    samples.peak_kib.push(peak);

    for change in 0..changes {
        let published = publish_lines(&log_path).len();
        let cpu_before = common::ThreadCpu::of(pid);
        let written = Instant::now();
        let prefix = format!("/changed-{run}-{change}/");
        api.apply_value(json!({
            "apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
            "metadata": {"name": "svc-1", "namespace": "default"},
            "spec": {"hostname": "*", "prefix": prefix, "service": "svc-1:8080"},
        }));
        wait_for("the reload's log line", Duration::from_secs(30), || publish_lines(&log_path).len() > published);
        samples.publish_ms.push(written.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(300));
        samples.cpu_ms.push(common::ThreadCpu::of(pid).ms_since(&cpu_before));
        let line = publish_lines(&log_path).swap_remove(published);
        samples.elapsed_ms.push(elapsed_ms(&line).unwrap_or_else(|| panic!("no elapsed= in {line:?}")));
    }
    drop(serve);
}

fn publish_lines(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|line| line.contains("publishing configuration")).map(str::to_owned).collect()
}

/// `elapsed=12.3ms` (a `Duration`'s Debug form: s, ms, µs or ns) in milliseconds.
fn elapsed_ms(line: &str) -> Option<f64> {
    let value = line.split_whitespace().find_map(|field| field.strip_prefix("elapsed="))?;
    let digits = value.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = value.split_at(digits);
    let scale = match unit {
        "s" => 1000.0,
        "ms" => 1.0,
        "µs" | "us" => 0.001,
        "ns" => 0.000_001,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn median<T: PartialOrd + Copy>(samples: &[T]) -> T {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sorted[sorted.len() / 2]
}

fn row(population: &Population, samples: &Samples, helm_sent: usize) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    format!(
        "| {} | {} | {:.2} | **{:.1}** | **{:.1}** | {:.1} | {:.1} | {:.1} |",
        population.name,
        helm_sent,
        median(&samples.sync).as_secs_f64(),
        mib(median(&samples.rss_kib)),
        mib(median(&samples.peak_kib)),
        median(&samples.cpu_ms),
        median(&samples.elapsed_ms),
        median(&samples.publish_ms),
    )
}

fn write_table(rows: &[String], runs: usize) {
    let table = format!(
        "## kubernetes: `serve --kubernetes` at 10,000 Secrets and 5,000 Mappings\n\n\
         `cargo bench --bench kubernetes`: the release binary against the in-process fake API server \
         (`tests/support/kubernetes/api.rs`, plain HTTP on localhost, `fieldSelector` applied as a real API \
         server does) holding 5,000 Mappings (every 10th with `tls:`), 100 TLSContexts, 100 `kubernetes.io/tls` \
         Secrets with real EC certificates (`gen_config.py 5000`) and 8,900 small `Opaque` Secrets no one names, \
         in 5 namespaces, plus 1,000 Helm release Secrets (`helm.sh/release.v1`, 200 KiB of base64 each) where \
         stated. Initial sync: spawn until `/readyz` is 200. RSS: VmRSS 3 s after ready (the controller gives memory back after 2 s idle), and VmHWM. Then one \
         Mapping's prefix changes {CHANGES} times through the fake: reload CPU is the process's CPU time (per \
         thread, to the nanosecond) from the write until 300 ms after the reload's `publishing configuration` line, elapsed \
         is that line's `elapsed=`, and write to log line includes the 100 ms debounce. Medians of {runs} runs \
         (sync, RSS) and of {} changes. Machine: {}, shared with other builds.\n\n\
         | population | Helm Secrets sent to serve | initial sync s | RSS MiB | peak RSS MiB | reload CPU ms | reload elapsed ms | write to log line ms |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n{}\n\n\
         Target (issue 16): under 150 MiB RSS with the Helm Secrets.",
        runs * CHANGES,
        common::machine(),
        rows.join("\n")
    );
    common::write_section("kubernetes", &table);
}
