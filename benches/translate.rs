//! Translation benchmark: `cargo bench --bench translate`.
//!
//! Generates the shared benchmark input (`../shared/bench/gen_config.py N DIR`: N Mappings, 100
//! TLSContexts, 100 Secrets) at 1,000, 5,000 and 50,000 Mappings, then measures
//! * the compile step in process, stage by stage (parse, compile, xds, render), and
//! * the full `ambassador-xds translate DIR > out.json` as a process: wall time from spawn to exit
//!   and peak RSS (from `wait4`),
//!
//! and writes the table into BENCHMARKS.md between the `translate` markers. Sizes can be
//! narrowed with `BENCH_SIZES=1000,5000` (`BENCH_SIZES=` for none); the generator found with
//! `GEN_CONFIG=path`.
//!
//! The same for TLS at the edge (`translate-edge` markers): the 5,000-Mapping input plus an
//! HTTPS Listener and `BENCH_HOSTS` (default 1,10) Hosts with certificates, every Mapping on every
//! Host (Emissary's route variants included): how translation grows with Hosts.

mod common;

use ambassador_xds::compile::{self, Options};
use ambassador_xds::render;
use ambassador_xds::source::files::{self, LoadOptions};
use ambassador_xds::xds;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The allocator is the binary's: the lib sets it (memory.rs).

fn main() {
    let list = |name: &str, default: Vec<usize>| -> Vec<usize> {
        std::env::var(name)
            .map(|s| {
                s.split(',').filter(|n| !n.trim().is_empty()).map(|n| n.trim().parse().expect("numbers")).collect()
            })
            .unwrap_or(default)
    };
    let sizes = list("BENCH_SIZES", vec![1_000, 5_000, 50_000]);
    let hosts = list("BENCH_HOSTS", vec![1, 10]);
    let edge_inputs: Vec<PathBuf> = hosts.iter().map(|&h| edge_input(5_000, h)).collect();
    let edge_processes: Vec<_> = edge_inputs.iter().map(|input| end_to_end(input, 5)).collect();
    let inputs: Vec<PathBuf> = sizes.iter().map(|&n| common::bench_input(n)).collect();
    let runs = |n: usize| if n >= 50_000 { 5 } else { 15 };
    // Processes first: a child's peak RSS includes what its parent had mapped when it was spawned,
    // so the measurements must run while this process is still small.
    let processes: Vec<_> = sizes.iter().zip(&inputs).map(|(&n, input)| end_to_end(input, runs(n))).collect();

    let mut rows = Vec::new();
    for ((&n, input), (wall, rss_kib, bytes)) in sizes.iter().zip(&inputs).zip(processes) {
        let stages = in_process(input, runs(n));
        let values = [
            ms(stages[0]),
            ms(stages[1]),
            ms(stages[2]),
            ms(stages[3]),
            ms(wall),
            rss_kib as f64 / 1024.0,
            bytes as f64 / 1048576.0,
        ];
        let [parse, compile, xds, render, process, rss, json] = values;
        println!(
            "{n:>6} mappings: parse {parse:.1} ms, compile {compile:.1} ms, xds {xds:.1} ms, render {render:.1} ms | translate process {process:.1} ms, peak RSS {rss:.1} MiB, {json:.1} MiB JSON"
        );
        rows.push(format!(
            "| {n} | {parse:.1} | {compile:.1} | {xds:.1} | {render:.1} | **{process:.1}** | **{rss:.1}** | {json:.1} |"
        ));
    }
    if !rows.is_empty() {
        write_table(&rows);
    }

    let mut edge_rows = Vec::new();
    for ((&h, input), (wall, rss_kib, bytes)) in hosts.iter().zip(&edge_inputs).zip(edge_processes) {
        let stages = in_process(input, 5);
        let [parse, compile, xds, render] = stages.map(ms);
        let (process, rss, json) = (ms(wall), rss_kib as f64 / 1024.0, bytes as f64 / 1048576.0);
        println!(
            "5000 mappings, {h} hosts: parse {parse:.1} ms, compile {compile:.1} ms, xds {xds:.1} ms, render {render:.1} ms | translate process {process:.1} ms, peak RSS {rss:.1} MiB, {json:.1} MiB JSON"
        );
        edge_rows.push(format!(
            "| {h} | {parse:.1} | {compile:.1} | {xds:.1} | {render:.1} | **{process:.1}** | **{rss:.1}** | {json:.1} |"
        ));
    }
    if !edge_rows.is_empty() {
        write_edge_table(&edge_rows);
    }
}

/// The 5,000-Mapping input with an HTTPS Listener and `hosts` Hosts, each with one of the
/// input's certificates (`target/bench-input/edge-N-H/`).
fn edge_input(n: usize, hosts: usize) -> PathBuf {
    let base = common::bench_input(n);
    let dir = common::root().join("target/bench-input").join(format!("edge-{n}-{hosts}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(base.join("config.yaml"), dir.join("config.yaml")).unwrap();
    let mut edge = String::from(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: listener-8443}\n\
         spec: {port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n",
    );
    for h in 0..hosts {
        edge.push_str(&format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: host-{h}}}\n\
             spec: {{hostname: host-{h}.example.com, tlsSecret: {{name: ctx-{h}-certs}}}}\n"
        ));
    }
    std::fs::write(dir.join("edge.yaml"), edge).unwrap();
    dir
}

fn write_edge_table(rows: &[String]) {
    let table = format!(
        "## translate with Hosts (TLS at the edge)\n\n\
         `cargo bench --bench translate` (`BENCH_HOSTS`, default 1,10): the 5,000-Mapping input above plus an HTTPS \
         Listener on 8443 and H Hosts with certificates (insecure action `Redirect`). Every Mapping (`hostname: \"*\"`) \
         is routed on every Host, twice (x-forwarded-proto `https` routes, the rest redirects), on three chains \
         (8080 cleartext, 8443 cleartext, 8443 TLS by SNI): 30,000 routes per Host, as Emissary builds them. Medians \
         of 5 runs. Machine: {}.\n\n\
         | Hosts | parse ms | compile ms | xds ms | render ms | `translate` process ms | peak RSS MiB | JSON MiB |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n{}",
        common::machine(),
        rows.join("\n")
    );
    common::write_section("translate-edge", &table);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median time of each stage of the pipeline, run in this process.
fn in_process(input: &Path, runs: usize) -> [Duration; 4] {
    let mut samples: [Vec<Duration>; 4] = Default::default();
    for _ in 0..runs {
        // Cold, as a `translate` process is: two ended generations make every process-wide memo
        // (validation verdicts, certificate checks) forget what the previous run decided.
        ambassador_xds::generations::end_reload();
        ambassador_xds::generations::end_reload();
        let t0 = Instant::now();
        let loaded = files::load(&[input.to_path_buf()], &LoadOptions::default(), "default").unwrap();
        let t1 = Instant::now();
        let compiled = compile::compile(&loaded.model, &loaded.tls_files, &Options::default());
        let t2 = Instant::now();
        let resources = xds::build(&compiled.ir);
        let t3 = Instant::now();
        let json = render::snapshot_json(&render::redacted(resources));
        let t4 = Instant::now();
        assert!(compiled.diagnostics.iter().all(|d| !d.is_error()), "{:?}", compiled.diagnostics);
        std::hint::black_box(json);
        for (i, d) in [t1 - t0, t2 - t1, t3 - t2, t4 - t3].into_iter().enumerate() {
            samples[i].push(d);
        }
    }
    samples.map(median)
}

/// Median wall time and peak RSS of `ambassador-xds translate DIR` writing its JSON to a file.
fn end_to_end(input: &Path, runs: usize) -> (Duration, i64, u64) {
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("out.json");
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let out = std::fs::File::create(&out_path).unwrap();
        let start = Instant::now();
        #[allow(clippy::zombie_processes, reason = "reaped by wait4 below, which also yields its rusage")]
        let child = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
            .arg("translate")
            .arg(input)
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (status, usage) = wait4(child.id() as libc::pid_t);
        walls.push(start.elapsed());
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "translate failed");
        rss.push(usage.ru_maxrss);
    }
    rss.sort();
    let bytes = std::fs::metadata(&out_path).unwrap().len();
    (median(walls), rss[rss.len() / 2], bytes)
}

/// `wait4` reports the child's own peak RSS, which `std::process` does not expose.
fn wait4(pid: libc::pid_t) -> (i32, libc::rusage) {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet reaped; both pointers are valid for writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    (status, usage)
}

fn write_table(rows: &[String]) {
    let table = format!(
        "## translate (compile step and full process)\n\n\
         `cargo bench --bench translate`; input from `shared/bench/gen_config.py N` (N Mappings, every 10th with \
         `tls:`, 100 TLSContexts, 100 Secrets with real EC certificates, one Listener). Medians; in-process stages \
         over 15 runs (5 at 50,000), each cold (the process-wide memos forget between runs), the process from spawn \
         to exit with JSON written to a file. Machine: {}.\n\n\
         | Mappings | parse ms | compile ms | xds ms | render ms | `translate` process ms | peak RSS MiB | JSON MiB |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n{}\n\n\
         Targets: 5,000 Mappings end to end under 150 ms and 60 MiB; 50,000 under 1.5 s. Emissary 3.10 takes about \
         4.3 s and 190 MiB for 5,000 on these machines.",
        common::machine(),
        rows.join("\n")
    );
    common::write_section("translate", &table);
}
