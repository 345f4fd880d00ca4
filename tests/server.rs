//! The xDS server under hostile timings and clients: a client that floods requests still gets
//! every change, streams end with the right gRPC status, a NACK names the Ambassador resources
//! behind it, connections are limited and idle ones closed, the accept loop backs off when the
//! process is out of file descriptors, and SIGTERM is never lost (also during a reload, and with
//! streams that do not read).

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)]
mod harness;

use ambassador_xds::compile::{self, Options};
use ambassador_xds::metrics::Metrics;
use ambassador_xds::model::parse_documents;
use ambassador_xds::server::listen::{self, HttpVersion, Limits};
use ambassador_xds::server::{self, Shared};
use ambassador_xds::snapshot::Snapshot;
use ambassador_xds::xds::{self, XdsType};
use bytes::{Buf, BufMut, Bytes};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use harness::process::{free_port, localhost, Process};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const PATIENCE: Duration = Duration::from_secs(10);

fn mapping(name: &str, timeout_ms: u32) -> String {
    format!(
        "apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {{name: {name}}}\nspec: {{prefix: /{name}/, service: {name}, connect_timeout_ms: {timeout_ms}}}\n"
    )
}

fn snapshot(docs: &[String], serial: u64, previous: Option<&Snapshot>) -> Arc<Snapshot> {
    let (model, diagnostics) = parse_documents("test.yaml", &docs.join("---\n"));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let compiled = compile::compile(&model, &Default::default(), &Options::default());
    Arc::new(Snapshot::new(xds::build(&compiled.ir), serial, previous))
}

/// The server in process, on a free port, with a publisher for snapshots.
struct Harness {
    address: String,
    publish: watch::Sender<Arc<Snapshot>>,
    shutdown: watch::Sender<bool>,
}

impl Harness {
    async fn start(initial: Arc<Snapshot>) -> Harness {
        let (publish, snapshots) = watch::channel(initial);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let shared =
            Shared { snapshots, shutdown: shutdown_rx.clone(), metrics: metrics.clone(), status: Default::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let routes = server::routes(shared);
        tokio::spawn(listen::serve(listener, routes, HttpVersion::Http2, Limits::default(), metrics, shutdown_rx));
        Harness { address, publish, shutdown }
    }
}

fn request(type_url: &str, version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_client_flooding_requests_still_gets_every_change() {
    let docs = |round: u32| vec![mapping("a", 1000 + round), mapping("b", 1000)];
    let harness = Harness::start(snapshot(&docs(0), 1, None)).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(harness.address.clone()).await.unwrap();
    let (tx, rx) = mpsc::channel(1024);
    tx.send(request(CDS, "", "")).await.unwrap();
    let mut responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();

    // The client's view: the latest CDS version it received, and its nonce.
    let (seen_tx, mut seen) = watch::channel((String::new(), String::new()));
    tokio::spawn(async move {
        while let Ok(Some(response)) = responses.message().await {
            seen_tx.send_replace((response.version_info, response.nonce));
        }
    });
    // Meanwhile it floods: ACKs of the latest response, repeats, and stale nonces, as fast as it can.
    let flood_seen = seen.clone();
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            let (version, nonce) = flood_seen.borrow().clone();
            let stale = format!("{}", sent % 7);
            for r in [request(CDS, &version, &nonce), request(CDS, &version, &stale), request(CDS, &version, &nonce)] {
                if tx.send(r).await.is_err() {
                    return sent;
                }
                sent += 1;
            }
            tokio::task::yield_now().await;
        }
    });

    let mut previous = harness.publish.borrow().clone();
    for round in 1..=25 {
        let next = snapshot(&docs(round), u64::from(round) + 1, Some(&previous));
        let expected = next.of(XdsType::Cluster).version.clone();
        harness.publish.send_replace(next.clone());
        previous = next;
        let arrived = tokio::time::timeout(PATIENCE, seen.wait_for(|(version, _)| *version == expected)).await;
        assert!(arrived.is_ok(), "change {round} never reached the flooding client");
    }
    flood.abort();
}

/// A gRPC codec that sends requests as raw bytes (to send what no client library would).
#[derive(Clone, Default)]
struct RawRequests;

struct RawEncoder;
struct ResponseDecoder;

impl Codec for RawRequests {
    type Encode = Bytes;
    type Decode = DiscoveryResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = DiscoveryResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DiscoveryResponse>, tonic::Status> {
        use prost::Message;
        DiscoveryResponse::decode(src.copy_to_bytes(src.remaining()))
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// Calls `path` with `requests` (raw protobuf bytes) and returns how the stream ended.
async fn call_raw(address: &str, path: &'static str, requests: Vec<Bytes>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(address.to_string()).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let stream = tokio_stream::iter(requests);
    let call = grpc.streaming(tonic::Request::new(stream), http::uri::PathAndQuery::from_static(path), RawRequests);
    let mut responses = match tokio::time::timeout(PATIENCE, call).await.expect("an answer in time") {
        Ok(response) => response.into_inner(),
        Err(status) => return status,
    };
    loop {
        match tokio::time::timeout(PATIENCE, responses.message()).await.expect("the stream ends in time") {
            Ok(Some(_)) => continue,
            Ok(None) => return tonic::Status::ok(""),
            Err(status) => return status,
        }
    }
}

fn encoded(request: &DiscoveryRequest) -> Bytes {
    use prost::Message;
    Bytes::from(request.encode_to_vec())
}

#[tokio::test]
async fn streams_end_with_the_grpc_status_that_says_why() {
    let harness = Harness::start(snapshot(&[mapping("a", 1000)], 1, None)).await;
    let ads = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

    // Not a DiscoveryRequest at all.
    let status = call_raw(&harness.address, ads, vec![Bytes::from_static(&[0xff, 0xff, 0xff, 0xff])]).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // LDS on the cluster service.
    let cds = "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters";
    let status = call_raw(&harness.address, cds, vec![encoded(&request(LDS, "", ""))]).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("ClusterDiscoveryService"), "{status:?}");

    // A method that does not exist.
    let nope = "/envoy.service.discovery.v3.AggregatedDiscoveryService/Nope";
    let status = call_raw(&harness.address, nope, vec![encoded(&request(CDS, "", ""))]).await;
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");

    // Shutdown: a stream in progress ends with UNAVAILABLE, so Envoy reconnects elsewhere.
    let mut client = AggregatedDiscoveryServiceClient::connect(harness.address.clone()).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(request(CDS, "", "")).await.unwrap();
    let mut responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    assert!(responses.message().await.unwrap().is_some());
    harness.shutdown.send_replace(true);
    let ended = tokio::time::timeout(PATIENCE, responses.message()).await.expect("the stream ends");
    let status = ended.expect_err("the stream ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    drop(tx);
}

/// The real `serve` on a temporary config directory, with extra flags.
struct Served {
    process: Process,
    xds: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

fn serve(files: &[(&str, String)], flags: &[&str], max_open_files: Option<u64>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    for (name, contents) in files {
        std::fs::write(config.join(name), contents).unwrap();
    }
    let (xds, admin) = (localhost(free_port()), localhost(free_port()));
    let log = dir.path().join("serve.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ambassador-xds"));
    command
        .arg("serve")
        .arg("--config-dir")
        .arg(&config)
        .args(["--xds-address", &xds.to_string(), "--admin-address", &admin.to_string()])
        .args(flags)
        .env("NO_COLOR", "1");
    if let Some(limit) = max_open_files {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let process = Process::spawn("ambassador-xds serve", command, &log).unwrap();
    let served = Served { process, xds, admin, dir, log };
    let ready = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        admin_get(served.admin, "/readyz").is_ok_and(|(status, _)| status == 200)
    });
    assert!(ready, "serve never became ready:\n{}", harness::process::log_tail(&served.log, 30));
    served
}

/// A GET on the admin port: (status, body).
fn admin_get(admin: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let response = harness::http::get(admin, path)?;
    Ok((response.status, response.text()))
}

// Blocking HTTP and socket checks run beside the tonic client: it needs a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_names_the_mapping_behind_the_rejected_resource() {
    let served = serve(&[("a.yaml", mapping("a", 1000)), ("b.yaml", mapping("b", 1000))], &[], None);
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", served.xds)).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(request(CDS, "", "")).await.unwrap();
    let mut responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let first = tokio::time::timeout(PATIENCE, responses.message()).await.unwrap().unwrap().unwrap();
    // Envoy rejects the clusters, naming one (as its messages do).
    let nack = DiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 13,
            message: "cluster_a_default: no healthy hosts?".into(),
            details: vec![],
        }),
        ..request(CDS, "", &first.nonce)
    };
    tx.send(nack).await.unwrap();

    let deadline = Instant::now() + PATIENCE;
    let snapshot = loop {
        let (_, body) = admin_get(served.admin, "/snapshot").unwrap();
        if body.contains("rejected CDS") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let json: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    let lines: Vec<&str> = json["diagnostics"].as_array().unwrap().iter().filter_map(|d| d.as_str()).collect();
    let culprits: Vec<&&str> = lines.iter().filter(|l| l.contains("rejected CDS")).collect();
    assert!(
        culprits.iter().any(|l| l.contains("a.yaml (document 0): Mapping default/a:"))
            && culprits.iter().any(|l| l.contains("b.yaml (document 0): Mapping default/b:")),
        "every Mapping behind the rejected clusters is named with its file: {lines:#?}\n{}",
        harness::process::log_tail(&served.log, 20)
    );
    let (_, metrics) = admin_get(served.admin, "/metrics").unwrap();
    assert!(
        metrics.contains("ambassador_xds_nacks_by_resource_total{type=\"CDS\",culprit=\"Mapping default/a\"} 1"),
        "{metrics}"
    );
    let log = harness::process::read_log(&served.log);
    assert!(log.contains("NACK") && log.contains("Mapping default/a"), "the log names the culprit:\n{log}");
}

/// The process's CPU time (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Whether the peer closes `stream` within `limit` (reads EOF or a reset).
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // HTTP/2 settings, GOAWAY
            Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

// Blocking HTTP and socket checks run beside the tonic client: it needs a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited_and_idle_ones_closed() {
    let flags = ["--max-connections", "3", "--idle-timeout-s", "1"];
    let served = serve(&[("a.yaml", mapping("a", 1000))], &flags, None);
    // An ADS stream in progress keeps its connection, however long it idles.
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", served.xds)).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(request(CDS, "", "")).await.unwrap();
    let mut responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    assert!(responses.message().await.unwrap().is_some());

    // Two more connections fill the limit; a fourth is closed at once.
    let mut idle = std::net::TcpStream::connect(served.xds).unwrap();
    let _second = std::net::TcpStream::connect(served.xds).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = std::net::TcpStream::connect(served.xds).unwrap();
    assert!(closed_within(&mut over, Duration::from_secs(2)), "a connection over --max-connections is closed");
    // A connection that opens no stream is closed after the idle timeout.
    assert!(closed_within(&mut idle, Duration::from_secs(5)), "an idle xDS connection is closed");
    // So is an idle admin connection.
    let mut admin = std::net::TcpStream::connect(served.admin).unwrap();
    assert!(closed_within(&mut admin, Duration::from_secs(5)), "an idle admin connection is closed");

    // The stream survived all of this: it still answers.
    tx.send(request(LDS, "", "")).await.unwrap();
    let listeners = tokio::time::timeout(PATIENCE, responses.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(listeners.type_url, LDS);
    let (_, metrics) = admin_get(served.admin, "/metrics").unwrap();
    assert!(metrics.contains("ambassador_xds_connections_refused_total 1"), "{metrics}");
    assert!(metrics.contains("ambassador_xds_connections_idle_closed_total"), "{metrics}");
}

// Blocking HTTP and socket checks run beside the tonic client: it needs a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_accept_loop_backs_off_and_streams_go_on() {
    let served = serve(&[("a.yaml", mapping("a", 1000))], &[], Some(64));
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", served.xds)).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(request(CDS, "", "")).await.unwrap();
    let mut responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    assert!(responses.message().await.unwrap().is_some());

    // Far more connections than the server has descriptors for; they wait in the backlog.
    let pid = served.process.pid().unwrap();
    let hogs: Vec<std::net::TcpStream> =
        (0..120).filter_map(|_| std::net::TcpStream::connect(served.xds).ok()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_time(pid) - before;
    // Spinning on EMFILE costs a whole core (2 s here); backing off costs next to nothing.
    assert!(spent < Duration::from_millis(600), "the accept loop spent {spent:?} of CPU in 2 s out of descriptors");

    // The connected stream is still served.
    tx.send(request(LDS, "", "")).await.unwrap();
    let listeners = tokio::time::timeout(PATIENCE, responses.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(listeners.type_url, LDS);
    drop(hogs);
    let log = harness::process::read_log(&served.log);
    assert!(
        log.contains("out of file descriptors"),
        "the back-off is logged:\n{}",
        &log[log.len().saturating_sub(2000)..]
    );
}

/// `count` Mappings in one file (big enough that a reload takes a while in a debug build).
fn many_mappings(count: usize) -> String {
    (0..count)
        .map(|i| format!("---\napiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {{name: m{i}}}\nspec: {{prefix: /m{i}/, service: s{i}, timeout_ms: {}}}\n", 1000 + i))
        .collect()
}

// Blocking HTTP and socket checks run beside the tonic client: it needs a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_never_lost_during_a_reload_or_with_clients_that_do_not_read() {
    let served = serve(&[("big.yaml", many_mappings(5000))], &["--debounce-ms", "10"], None);
    // Ten streams that ask for everything and never read what comes.
    let mut stuck = Vec::new();
    for _ in 0..10 {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", served.xds)).await.unwrap();
        let (tx, rx) = mpsc::channel(4);
        tx.send(request(CDS, "", "")).await.unwrap();
        let responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
        stuck.push((client, tx, responses));
    }
    // A change, then SIGTERM while its recompile runs (5,000 Mappings take a good second in a
    // debug build; the debounce is 10 ms).
    std::fs::write(served.dir.path().join("config/big.yaml"), many_mappings(5001)).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let mut process = served.process;
    let signalled = Instant::now();
    process.signal(libc::SIGTERM);
    let status = process.wait_timeout(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert!(status.is_some_and(|s| s.success()), "serve did not exit 0 within 5 s of SIGTERM: {status:?}");
    // The contract is 1 s; the bound here leaves room for a loaded CI machine.
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    let log = harness::process::read_log(&served.log);
    assert!(log.contains("shutting down"), "{log}");
    eprintln!("SIGTERM to exit: {took:?}\n{}", harness::process::log_tail(&served.log, 6));
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_is_told_at_once_that_a_secret_it_asks_for_does_not_exist() {
    // Delta xDS. A cluster names an SDS secret the snapshot does not hold (the compiler never
    // publishes that; a hand-made snapshot does). Told at once that the secret does not exist,
    // Envoy finishes warming the cluster instead of waiting out its 15 s initial fetch timeout,
    // and rejects nothing.
    let dir = tempfile::tempdir().unwrap();
    let certs = support::manifest_dir().join("testdata/certs");
    let read = |f: &str| std::fs::read_to_string(certs.join(f)).unwrap();
    let indent = |s: String| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let docs = vec![
        "apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: secure}\nspec: {prefix: /secure/, service: secure, tls: ctx}\n".to_string(),
        "apiVersion: getambassador.io/v2\nkind: TLSContext\nmetadata: {name: ctx}\nspec: {secret: certs}\n".to_string(),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: certs}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent(read("client.crt")),
            indent(read("client.key"))
        ),
    ];
    let full = snapshot(&docs, 1, None);
    assert_eq!(full.resources.of(XdsType::Secret).len(), 1);
    let without_secret = full.resources.clone().with(XdsType::Secret, Vec::new());
    let harness = Harness::start(Arc::new(Snapshot::new(without_secret, 1, None))).await;

    let xds: std::net::SocketAddr = harness.address.trim_start_matches("http://").parse().unwrap();
    let admin_port = free_port();
    let yaml = harness::process::bootstrap(xds, "missing-secret", admin_port, true).unwrap();
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let envoy_log = dir.path().join("envoy.log");
    let _envoy = harness::process::spawn_envoy(&path, &envoy_log).unwrap();
    let admin = localhost(admin_port);
    let live = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        admin_get(admin, "/ready").is_ok_and(|(status, body)| status == 200 && body.contains("LIVE"))
    });
    assert!(live, "Envoy did not become LIVE within 10 s:\n{}", harness::process::log_tail(&envoy_log, 30));
    let stats = harness::http::envoy_stats(admin, "").unwrap();
    let timed_out: Vec<(&String, &u64)> =
        stats.iter().filter(|(name, value)| name.ends_with("init_fetch_timeout") && **value > 0).collect();
    assert!(timed_out.is_empty(), "Envoy waited out its initial fetch timeout: {timed_out:?}");
    harness::http::check_no_rejected_updates(&harness::http::envoy_stats(admin, "update_rejected").unwrap()).unwrap();
}
