//! Clients that stop reading cost bounded memory and delay nobody: 100 ADS streams that never read
//! a response sit through 100 changes of the 5,000-Mapping configuration while one reading client
//! gets every change. The server's memory (this process's RSS: the server runs in process) may
//! grow by at most one configuration per stuck stream — a stream holds at most its one pending
//! response, never a queue of superseded ones.
//!
//! Its own test binary, with one test, so that nothing else moves the RSS it measures.

use ambassador_xds::compile::{self, Options};
use ambassador_xds::metrics::Metrics;
use ambassador_xds::model::parse_documents;
use ambassador_xds::server::listen::{self, HttpVersion, Limits};
use ambassador_xds::server::{self, Shared};
use ambassador_xds::snapshot::Snapshot;
use ambassador_xds::xds::{self, Resource, Resources, XdsType};
use envoy_types::pb::envoy::config::route::v3::{route, RouteConfiguration};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

const MAPPINGS: usize = 5000;
const STUCK: usize = 100;
const CHANGES: u32 = 100;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn request(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// The benchmark's shape: 5,000 Mappings to as many services.
fn base_resources() -> Resources {
    let text: String = (0..MAPPINGS)
        .map(|i| format!("---\napiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {{name: m{i}}}\nspec: {{prefix: /m{i}/, service: s{i}}}\n"))
        .collect();
    let (model, diagnostics) = parse_documents("big.yaml", &text);
    assert!(diagnostics.is_empty());
    xds::build(&compile::compile(&model, &Default::default(), &Options::default()).ir)
}

/// The base resources with the route table changed (its first route's timeout), as a one-Mapping
/// edit changes it: a new 5,000-route configuration every time.
fn changed(base: &Resources, routes: &RouteConfiguration, round: u32) -> Resources {
    let mut routes = routes.clone();
    if let Some(route::Action::Route(action)) = &mut routes.virtual_hosts[0].routes[0].action {
        action.timeout = Some(ProtoDuration { seconds: 1, nanos: round as i32 * 1000 });
    }
    base.clone().with(XdsType::Route, vec![Resource::encode(&routes.name, &routes)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_clients_cost_bounded_memory_and_delay_nobody() {
    let base = base_resources();
    let config_bytes: u64 = XdsType::ALL.iter().flat_map(|t| base.of(*t)).map(|r| r.body.len() as u64).sum();
    let routes: RouteConfiguration = base.of(XdsType::Route)[0].decode();
    let route_name = routes.name.clone();

    let first = Arc::new(Snapshot::new(base.clone(), 1, None));
    let (publish, snapshots) = watch::channel(first);
    let (_shutdown, shutdown) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let shared = Shared { snapshots, shutdown: shutdown.clone(), metrics: metrics.clone(), status: Default::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(listen::serve(
        listener,
        server::routes(shared),
        HttpVersion::Http2,
        Limits::default(),
        metrics,
        shutdown,
    ));

    // The stuck ones: they ask for everything and never read. Their HTTP/2 windows are the
    // protocol's minimum, so what they buffer themselves (in this process too) stays small and
    // the measurement is the server's.
    let mut stuck = Vec::new();
    for _ in 0..STUCK {
        let channel = tonic::transport::Endpoint::from_shared(address.clone())
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let (tx, rx) = mpsc::channel(8);
        for r in [request(CDS, &[], "", ""), request(LDS, &[], "", ""), request(RDS, &[&route_name], "", "")] {
            tx.send(r).await.unwrap();
        }
        let responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
        stuck.push((client, tx, responses));
    }

    // The reader: ACKs everything, and reports the route versions it holds.
    let mut reader =
        AggregatedDiscoveryServiceClient::connect(address.clone()).await.unwrap().max_decoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel(64);
    tx.send(request(RDS, &[&route_name], "", "")).await.unwrap();
    let mut responses = reader.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let (seen_tx, mut seen) = watch::channel(String::new());
    let route_for_acks = route_name.clone();
    tokio::spawn(async move {
        while let Ok(Some(response)) = responses.message().await {
            let _ =
                tx.send(request(&response.type_url, &[&route_for_acks], &response.version_info, &response.nonce)).await;
            seen_tx.send_replace(response.version_info);
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_bytes();

    let mut previous = publish.borrow().clone();
    for round in 1..=CHANGES {
        let next = Arc::new(Snapshot::new(changed(&base, &routes, round), u64::from(round) + 1, Some(&previous)));
        let expected = next.of(XdsType::Route).version.clone();
        publish.send_replace(next.clone());
        previous = next;
        let arrived = tokio::time::timeout(Duration::from_secs(30), seen.wait_for(|v| *v == expected)).await;
        assert!(arrived.is_ok(), "change {round} never reached the reading client (stuck streams delayed it)");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    let bound = STUCK as u64 * config_bytes;
    eprintln!(
        "config {:.1} MiB; RSS {:.1} MiB -> {:.1} MiB after {CHANGES} changes with {STUCK} stuck streams: +{:.1} MiB (bound {:.1} MiB)",
        mib(config_bytes),
        mib(before),
        mib(after),
        mib(growth),
        mib(bound)
    );
    assert!(growth <= bound, "RSS grew by {:.1} MiB, more than one config per stuck stream", mib(growth));
    drop(stuck);
}
