//! Translation benchmark: `cargo bench --bench translate`.
//!
//! Generates the shared benchmark input (`../shared/bench/gen_config.py N DIR`: N Mappings, 100
//! TLSContexts, 100 Secrets) at 1,000, 5,000 and 50,000 Mappings, then measures
//! * the compile step in process, stage by stage (parse, compile, xds, render), and
//! * the full `ambassador-xds translate DIR > out.json` as a process: wall time from spawn to exit
//!   and peak RSS (from `wait4`),
//!
//! and writes the table into BENCHMARKS.md between the `translate` markers. Sizes can be
//! narrowed with `BENCH_SIZES=1000,5000`; the generator found with `GEN_CONFIG=path`.

mod common;

use ambassador_xds::compile::{self, Options};
use ambassador_xds::render;
use ambassador_xds::source::files::{self, LoadOptions};
use ambassador_xds::xds;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// Same allocator as the binary, so in-process stage times match what `translate` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .map(|s| s.split(',').map(|n| n.trim().parse().expect("BENCH_SIZES: numbers")).collect())
        .unwrap_or_else(|_| vec![1_000, 5_000, 50_000]);
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
    write_table(&rows);
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
         over 15 runs (5 at 50,000), the process from spawn to exit with JSON written to a file. Machine: {}.\n\n\
         | Mappings | parse ms | compile ms | xds ms | render ms | `translate` process ms | peak RSS MiB | JSON MiB |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n{}\n\n\
         Targets: 5,000 Mappings end to end under 150 ms and 60 MiB; 50,000 under 1.5 s. Emissary 3.10 takes about \
         4.3 s and 190 MiB for 5,000 on these machines.",
        common::machine(),
        rows.join("\n")
    );
    common::write_section("translate", &table);
}
