//! Serving benchmarks: `cargo bench --bench serve` (needs Envoy: `$ENVOY_BIN` or `.venv/bin/envoy`,
//! which `scripts/test` installs).
//!
//! * Propagation: a Mapping file is rewritten with a new prefix, 50 times; the time from the
//!   write to the first 200 on that prefix through a real Envoy, at 100 and 5,000 Mappings.
//!   Includes the 100 ms debounce.
//! * Fan-out: 1,000 concurrent ADS streams (in-process tonic clients, each on its own
//!   connection) hold the 5,000-Mapping config; one Mapping file changes; the time until every
//!   stream has the new routes, with the server's peak RSS and CPU time.

mod common;

use common::{http_get, probe_mapping, replace_file, wait_for, Killed};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

fn serve(dir: &Path, xds: u16, admin: u16) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
        .args(["serve", "--config-dir"])
        .arg(dir)
        .args(["--xds-address", &format!("127.0.0.1:{xds}"), "--admin-address", &format!("127.0.0.1:{admin}")])
        .stderr(Stdio::null())
        .spawn()
        .expect("ambassador-xds serve");
    wait_for(|| http_get(admin, "/readyz") == Some(200), Duration::from_secs(30));
    Killed(child)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn propagation(mappings: usize, changes: usize) -> (Duration, Duration) {
    let input = common::bench_input(mappings);
    let dir = tempfile::tempdir().unwrap();
    let (xds, admin, listener, envoy_admin) =
        (common::free_port(), common::free_port(), common::free_port(), common::free_port());
    std::fs::write(dir.path().join("config.yaml"), common::config_on_port(&input, listener)).unwrap();
    let probe = dir.path().join("probe.yaml");
    std::fs::write(&probe, probe_mapping(0, admin)).unwrap();
    let _server = serve(dir.path(), xds, admin);

    let _envoy = common::start_envoy(&dir.path().join("..bootstrap.yaml"), xds, envoy_admin);
    wait_for(|| http_get(listener, "/probe-0/") == Some(200), Duration::from_secs(60));

    let mut samples = Vec::new();
    for i in 1..=changes {
        let path = format!("/probe-{i}/");
        let start = Instant::now();
        replace_file(&probe, &probe_mapping(i, admin));
        wait_for(|| http_get(listener, &path) == Some(200), Duration::from_secs(30));
        samples.push(start.elapsed());
    }
    (percentile(&mut samples, 0.5), percentile(&mut samples, 0.99))
}

/// One client playing Envoy: CDS, LDS, then the route configuration; counts route updates.
async fn client(address: String, delta: bool, ready: Arc<AtomicUsize>, updated: Arc<AtomicUsize>) {
    let mut client =
        AggregatedDiscoveryServiceClient::connect(address).await.unwrap().max_decoding_message_size(64 << 20);
    // The first route configuration is the initial sync; any later one is the update.
    let mut routes_seen = 0;
    let mut count_routes = |type_url: &str| {
        if type_url == RDS {
            routes_seen += 1;
            let counter = if routes_seen == 1 { &ready } else { &updated };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    };
    if delta {
        let (tx, rx) = mpsc::channel(8);
        for (type_url, names) in [(CDS, vec![]), (LDS, vec![]), (RDS, vec!["ambassador-routes".to_string()])] {
            let request = DeltaDiscoveryRequest {
                type_url: type_url.into(),
                resource_names_subscribe: names,
                ..Default::default()
            };
            tx.send(request).await.unwrap();
        }
        let Ok(responses) = client.delta_aggregated_resources(ReceiverStream::new(rx)).await else { return };
        let mut responses = responses.into_inner();
        while let Ok(Some(response)) = responses.message().await {
            let ack = DeltaDiscoveryRequest {
                type_url: response.type_url.clone(),
                response_nonce: response.nonce,
                ..Default::default()
            };
            let _ = tx.send(ack).await;
            count_routes(&response.type_url);
        }
    } else {
        let (tx, rx) = mpsc::channel(8);
        for (type_url, names) in [(CDS, vec![]), (LDS, vec![]), (RDS, vec!["ambassador-routes".to_string()])] {
            tx.send(DiscoveryRequest { type_url: type_url.into(), resource_names: names, ..Default::default() })
                .await
                .unwrap();
        }
        let Ok(responses) = client.stream_aggregated_resources(ReceiverStream::new(rx)).await else { return };
        let mut responses = responses.into_inner();
        while let Ok(Some(response)) = responses.message().await {
            let names = if response.type_url == RDS { vec!["ambassador-routes".to_string()] } else { vec![] };
            let ack = DiscoveryRequest {
                type_url: response.type_url.clone(),
                version_info: response.version_info,
                response_nonce: response.nonce,
                resource_names: names,
                ..Default::default()
            };
            let _ = tx.send(ack).await;
            count_routes(&response.type_url);
        }
    }
}

struct FanOut {
    streams: usize,
    initial: Duration,
    update: Duration,
    peak_rss_mib: f64,
    cpu_ms: u64,
}

fn fan_out(mappings: usize, streams: usize, delta: bool) -> FanOut {
    let input = common::bench_input(mappings);
    let dir = tempfile::tempdir().unwrap();
    let (xds, admin) = (common::free_port(), common::free_port());
    let config = dir.path().join("config.yaml");
    let text = common::config_on_port(&input, common::free_port());
    std::fs::write(&config, &text).unwrap();
    let server = serve(dir.path(), xds, admin);
    let pid = server.0.id();

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let ready = Arc::new(AtomicUsize::new(0));
    let updated = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    for _ in 0..streams {
        runtime.spawn(client(format!("http://127.0.0.1:{xds}"), delta, ready.clone(), updated.clone()));
    }
    wait_for(|| ready.load(Ordering::SeqCst) == streams, Duration::from_secs(120));
    let initial = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (_, _, cpu_before) = common::process_usage(pid);

    // One change: svc-1 gets a new prefix.
    let start = Instant::now();
    replace_file(&config, &text.replace("prefix: /svc-1/,", "prefix: /svc-1-moved/,"));
    wait_for(|| updated.load(Ordering::SeqCst) == streams, Duration::from_secs(120));
    let update = start.elapsed();
    let (peak_kib, _, cpu_after) = common::process_usage(pid);
    runtime.shutdown_background();
    FanOut { streams, initial, update, peak_rss_mib: peak_kib as f64 / 1024.0, cpu_ms: cpu_after - cpu_before }
}

fn main() {
    let changes = 50;
    let mut rows = Vec::new();
    for mappings in [100, 5_000] {
        let (median, p99) = propagation(mappings, changes);
        println!("propagation {mappings:>5} mappings: median {:.1} ms, p99 {:.1} ms", ms(median), ms(p99));
        rows.push(format!("| {mappings} | {changes} | {:.1} | {:.1} |", ms(median), ms(p99)));
    }
    let mut fan_rows = Vec::new();
    for delta in [false, true] {
        let result = fan_out(5_000, 1_000, delta);
        let protocol = if delta { "delta" } else { "state of the world" };
        println!(
            "fan-out {} streams ({protocol}): initial sync {:.0} ms, update to all {:.0} ms, server peak RSS {:.1} MiB, server CPU {} ms",
            result.streams,
            ms(result.initial),
            ms(result.update),
            result.peak_rss_mib,
            result.cpu_ms
        );
        fan_rows.push(format!(
            "| {protocol} | {} | {:.0} | **{:.0}** | **{:.1}** | {} |",
            result.streams,
            ms(result.initial),
            ms(result.update),
            result.peak_rss_mib,
            result.cpu_ms
        ));
    }
    common::write_section(
        "serve",
        &format!(
            "## serve: propagation and fan-out\n\n`cargo bench --bench serve`. Machine: {}.\n\n\
             Propagation: a Mapping file is replaced (write + rename) with a new prefix; time until a real Envoy 1.40 \
             (SotW ADS) answers 200 on it. Includes the 100 ms debounce. Base config from `gen_config.py N`.\n\n\
             | Mappings | changes | median ms | p99 ms |\n|---:|---:|---:|---:|\n{}\n\n\
             Fan-out: 1,000 in-process tonic ADS clients, each on its own HTTP/2 connection, subscribed to CDS, LDS \
             and RDS of the 5,000-Mapping config; one Mapping's prefix changes in the file. \"Update to all\" runs from \
             the file write (including the 100 ms debounce) until every stream has received the new route \
             configuration (about 0.6 MB per stream). The clients share the 2 cores with the server. Target: under \
             1 s, server RSS under 200 MiB.\n\n\
             | protocol | streams | initial sync ms | update to all ms | server peak RSS MiB | server CPU for the update ms |\n\
             |---|---:|---:|---:|---:|---:|\n{}",
            common::machine(),
            rows.join("\n"),
            fan_rows.join("\n")
        ),
    );
}
