//! Protocol tests: the xDS server in process, a tonic client playing Envoy. Snapshots are
//! compiled from YAML and published by the test, so every step is deterministic.

/// The cluster of Emissary's probe routes (`/ambassador/v0/check_alive`), in every configuration.
const PROBE_CLUSTER: &str = "cluster_127_0_0_1_8877_default";

use ambassador_xds::compile::{self, Options};
use ambassador_xds::metrics::Metrics;
use ambassador_xds::model::parse_documents;
use ambassador_xds::server::listen::{self, HttpVersion, Limits};
use ambassador_xds::server::{self, Shared};
use ambassador_xds::snapshot::Snapshot;
use ambassador_xds::xds;
use ambassador_xds::xds::XdsType;
use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const SDS: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

fn secret_yaml(name: &str, cert: &str, key: &str) -> String {
    let read = |f: &str| std::fs::read_to_string(format!("{}/testdata/certs/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let indent = |s: String| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(read(cert)),
        indent(read(key))
    )
}

fn mapping(name: &str, service: &str, tls: Option<&str>) -> String {
    let tls = tls.map(|t| format!(", tls: {t}")).unwrap_or_default();
    format!("apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {{name: {name}}}\nspec: {{prefix: /{name}/, service: {service}{tls}}}\n")
}

/// Same cluster, new content (so no cluster disappears).
fn mapping_with_timeout(name: &str, service: &str, connect_timeout_ms: u32) -> String {
    format!("apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {{name: {name}}}\nspec: {{prefix: /{name}/, service: {service}, connect_timeout_ms: {connect_timeout_ms}}}\n")
}

const CONTEXT: &str =
    "apiVersion: getambassador.io/v2\nkind: TLSContext\nmetadata: {name: ctx}\nspec: {secret: certs}\n";

fn snapshot(docs: &[String], serial: u64, previous: Option<&Snapshot>) -> Arc<Snapshot> {
    let (model, diagnostics) = parse_documents("test.yaml", &docs.join("---\n"));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let compiled = compile::compile(&model, &Default::default(), &Options::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    Arc::new(Snapshot::new(xds::build(&compiled.ir), serial, previous))
}

/// The base config: two plain clusters and one TLS cluster with a client certificate.
fn base_docs() -> Vec<String> {
    vec![
        mapping("a", "a", None),
        mapping("b", "b", None),
        mapping("secure", "secure", Some("ctx")),
        CONTEXT.to_string(),
        secret_yaml("certs", "client.crt", "client.key"),
    ]
}

struct Harness {
    address: String,
    publish: watch::Sender<Arc<Snapshot>>,
    metrics: Arc<Metrics>,
    _shutdown: watch::Sender<bool>,
}

impl Harness {
    async fn start(initial: Arc<Snapshot>) -> Harness {
        let (publish, snapshots) = watch::channel(initial);
        let (shutdown_tx, shutdown) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let shared = Shared { snapshots, shutdown, metrics: metrics.clone(), status: Default::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(listen::serve(
            listener,
            server::routes(shared.clone()),
            HttpVersion::Http2,
            Limits::default(),
            metrics.clone(),
            shared.shutdown.clone(),
        ));
        Harness { address, publish, metrics, _shutdown: shutdown_tx }
    }

    fn publish(&self, snapshot: Arc<Snapshot>) {
        self.publish.send_replace(snapshot);
    }

    fn current(&self) -> Arc<Snapshot> {
        self.publish.borrow().clone()
    }

    async fn sotw(&self) -> SotwClient {
        let mut client = AggregatedDiscoveryServiceClient::connect(self.address.clone()).await.unwrap();
        let (tx, rx) = mpsc::channel(16);
        let responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
        SotwClient { tx, responses }
    }

    async fn delta(&self) -> DeltaClient {
        let mut client = AggregatedDiscoveryServiceClient::connect(self.address.clone()).await.unwrap();
        let (tx, rx) = mpsc::channel(16);
        let responses = client.delta_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
        DeltaClient { tx, responses }
    }
}

const QUIET: Duration = Duration::from_millis(300);
const PATIENCE: Duration = Duration::from_secs(5);

struct SotwClient {
    tx: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
}

impl SotwClient {
    async fn request(&self, type_url: &str, names: &[&str], version: &str, nonce: &str) {
        let request = DiscoveryRequest {
            type_url: type_url.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            ..Default::default()
        };
        self.tx.send(request).await.unwrap();
    }

    async fn nack(&self, type_url: &str, version: &str, nonce: &str) {
        let request = DiscoveryRequest {
            type_url: type_url.into(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            error_detail: Some(RpcStatus { code: 3, message: "bad config".into(), details: vec![] }),
            ..Default::default()
        };
        self.tx.send(request).await.unwrap();
    }

    async fn ack(&self, response: &DiscoveryResponse, names: &[&str]) {
        self.request(&response.type_url, names, &response.version_info, &response.nonce).await;
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(PATIENCE, self.responses.message()).await.expect("a response in time").unwrap().unwrap()
    }

    async fn expect_quiet(&mut self) {
        if let Ok(message) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected no response, got {:?}", message.map(|m| m.map(|r| (r.type_url, r.version_info))));
        }
    }
}

fn names(response: &DiscoveryResponse) -> Vec<String> {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use prost::Message;
    response
        .resources
        .iter()
        .map(|any| match any.type_url.as_str() {
            CDS => Cluster::decode(any.value.as_slice()).unwrap().name,
            _ => format!("<{}>", any.type_url),
        })
        .collect()
}

#[tokio::test]
async fn sotw_initial_fetch_ack_and_no_push_when_nothing_changed() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = harness.sotw().await;
    client.request(CDS, &[], "", "").await;
    let response = client.next().await;
    assert_eq!(response.type_url, CDS);
    assert_eq!(
        names(&response),
        [PROBE_CLUSTER, "cluster_a_default", "cluster_b_default", "cluster_secure_otls_ctx_default"]
    );
    assert!(!response.version_info.is_empty() && !response.nonce.is_empty());
    client.ack(&response, &[]).await;
    client.expect_quiet().await;

    // The same content published again (as after a touch of an unchanged file): nothing is sent.
    let same = snapshot(&base_docs(), 2, Some(&harness.current()));
    harness.publish(same);
    client.expect_quiet().await;
}

#[tokio::test]
async fn sotw_nack_is_counted_and_the_rejected_version_is_not_resent() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = harness.sotw().await;
    client.request(CDS, &[], "", "").await;
    let first = client.next().await;
    client.ack(&first, &[]).await;

    let mut docs = base_docs();
    docs[0] = mapping_with_timeout("a", "a", 1000);
    harness.publish(snapshot(&docs, 2, Some(&harness.current())));
    let second = client.next().await;
    assert_ne!(second.version_info, first.version_info);
    client.nack(CDS, &first.version_info, &second.nonce).await;
    client.expect_quiet().await;
    assert_eq!(harness.metrics.nacks.values(), [("CDS".to_string(), 1)].into());

    // Envoy keeps asking with its last good version; still no resend of the rejected one.
    client.request(CDS, &[], &first.version_info, &second.nonce).await;
    client.expect_quiet().await;

    // A fixed config is a new version: it is sent.
    docs[0] = mapping_with_timeout("a", "a", 2000);
    harness.publish(snapshot(&docs, 3, Some(&harness.current())));
    let third = client.next().await;
    assert_ne!(third.version_info, second.version_info);
}

#[tokio::test]
async fn sotw_stale_nonces_are_ignored() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = harness.sotw().await;
    client.request(CDS, &[], "", "").await;
    let first = client.next().await;
    let mut docs = base_docs();
    docs[1] = mapping_with_timeout("b", "b", 1000);
    harness.publish(snapshot(&docs, 2, Some(&harness.current())));
    let second = client.next().await;
    // A late ACK of the first response carries a stale nonce: ignored, no response.
    client.ack(&first, &[]).await;
    client.expect_quiet().await;
    assert!(harness.metrics.ignored_requests.load(Ordering::Relaxed) >= 1);
    client.ack(&second, &[]).await;
    client.expect_quiet().await;
}

#[tokio::test]
async fn sotw_named_subscriptions_wait_for_names_that_appear_later() {
    let harness = Harness::start(snapshot(&[mapping("a", "a", None)], 1, None)).await;
    let mut client = harness.sotw().await;
    let secret = "tlscontext/default/ctx/client-cert";
    client.request(SDS, &[secret], "", "").await;
    client.expect_quiet().await; // the secret does not exist yet

    harness.publish(snapshot(&base_docs(), 2, Some(&harness.current())));
    let response = client.next().await;
    assert_eq!(response.type_url, SDS);
    assert_eq!(response.resources.len(), 1);

    // Subscribing to the route configuration too: answered on the ACK that changes names.
    client.ack(&response, &[secret]).await;
    client.expect_quiet().await;
    client.request(RDS, &["ambassador-routes"], "", "").await;
    let routes = client.next().await;
    assert_eq!(routes.type_url, RDS);
    assert_eq!(routes.resources.len(), 1);
}

#[tokio::test]
async fn sotw_ads_orders_types_make_before_break() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = harness.sotw().await;
    for (type_url, names) in [
        (CDS, vec![]),
        (LDS, vec![]),
        (RDS, vec!["ambassador-routes"]),
        (SDS, vec!["tlscontext/default/ctx/client-cert"]),
    ] {
        client.request(type_url, &names, "", "").await;
        let response = client.next().await;
        client.ack(&response, &names).await;
    }
    client.expect_quiet().await;

    // Rotate the certificate, rename a cluster (b -> c), change the listener port: one update.
    let mut docs = base_docs();
    docs[1] = mapping("c", "c", None);
    docs[4] = secret_yaml("certs", "client2.crt", "client2.key");
    let compiled_with_port = |docs: &[String]| {
        let (model, _) = parse_documents("test.yaml", &docs.join("---\n"));
        let options = Options { listener_port: 9090, ..Options::default() };
        xds::build(&compile::compile(&model, &Default::default(), &options).ir)
    };
    harness.publish(Arc::new(Snapshot::new(compiled_with_port(&docs), 2, Some(&harness.current()))));

    let mut order = Vec::new();
    let mut cds = Vec::new();
    for _ in 0..5 {
        let response = client.next().await;
        if response.type_url == CDS {
            cds.push(names(&response));
        }
        order.push(response.type_url.clone());
    }
    client.expect_quiet().await;
    assert_eq!(order, [SDS, CDS, LDS, RDS, CDS], "secrets, clusters (kept), listeners, routes, clusters (removed)");
    assert!(cds[0].contains(&"cluster_b_default".to_string()) && cds[0].contains(&"cluster_c_default".to_string()));
    assert!(!cds[1].contains(&"cluster_b_default".to_string()) && cds[1].contains(&"cluster_c_default".to_string()));
}

#[tokio::test]
async fn per_type_cds_service_answers_without_type_url() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = ClusterDiscoveryServiceClient::connect(harness.address.clone()).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest::default()).await.unwrap();
    let mut responses = client.stream_clusters(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let response = tokio::time::timeout(PATIENCE, responses.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(response.type_url, CDS);
    assert_eq!(response.resources.len(), 4, "three Mappings' clusters and the probe routes' one");
}

struct DeltaClient {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

impl DeltaClient {
    async fn send(&self, request: DeltaDiscoveryRequest) {
        self.tx.send(request).await.unwrap();
    }

    async fn subscribe(&self, type_url: &str, names: &[&str]) {
        let request = DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        };
        self.send(request).await;
    }

    async fn ack(&self, response: &DeltaDiscoveryResponse) {
        let request = DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        };
        self.send(request).await;
    }

    async fn next(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(PATIENCE, self.responses.message()).await.expect("a response in time").unwrap().unwrap()
    }

    async fn expect_quiet(&mut self) {
        if let Ok(message) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected no response, got {:?}", message.map(|m| m.map(|r| (r.type_url, r.nonce))));
        }
    }
}

fn delta_names(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn delta_sends_only_changes_and_removals() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = harness.delta().await;
    client.subscribe(CDS, &[]).await;
    let initial = client.next().await;
    assert_eq!(
        delta_names(&initial),
        [PROBE_CLUSTER, "cluster_a_default", "cluster_b_default", "cluster_secure_otls_ctx_default"]
    );
    assert!(initial.resources.iter().all(|r| !r.version.is_empty()));
    client.ack(&initial).await;
    client.expect_quiet().await;

    // a changes service (new cluster name), b unchanged: the new cluster, then the old one removed.
    let mut docs = base_docs();
    docs[0] = mapping("a", "a2", None);
    harness.publish(snapshot(&docs, 2, Some(&harness.current())));
    let added = client.next().await;
    assert_eq!(delta_names(&added), ["cluster_a2_default"]);
    assert!(added.removed_resources.is_empty(), "removals come after the routes moved on");
    client.ack(&added).await;
    let removed = client.next().await;
    assert!(removed.resources.is_empty());
    assert_eq!(removed.removed_resources, ["cluster_a_default"]);
    client.ack(&removed).await;
    client.expect_quiet().await;
    assert_eq!(harness.current().serial.to_string(), removed.system_version_info);
}

#[tokio::test]
async fn delta_nack_is_not_resent_and_stale_nonces_still_change_subscriptions() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = harness.delta().await;
    client.subscribe(CDS, &[]).await;
    let initial = client.next().await;
    client
        .send(DeltaDiscoveryRequest {
            type_url: CDS.into(),
            response_nonce: initial.nonce.clone(),
            error_detail: Some(RpcStatus { code: 3, message: "rejected".into(), details: vec![] }),
            ..Default::default()
        })
        .await;
    client.expect_quiet().await;
    assert_eq!(harness.metrics.nacks.values(), [("CDS".to_string(), 1)].into());

    // Subscribe to a secret with a stale nonce: the subscription applies anyway.
    client
        .send(DeltaDiscoveryRequest {
            type_url: SDS.into(),
            resource_names_subscribe: vec!["tlscontext/default/ctx/client-cert".into()],
            response_nonce: "stale".into(),
            ..Default::default()
        })
        .await;
    let secret = client.next().await;
    assert_eq!(delta_names(&secret), ["tlscontext/default/ctx/client-cert"]);

    // Unsubscribe, then rotate: nothing comes.
    client
        .send(DeltaDiscoveryRequest {
            type_url: SDS.into(),
            resource_names_unsubscribe: vec!["tlscontext/default/ctx/client-cert".into()],
            ..Default::default()
        })
        .await;
    // An unsubscription has no response to wait for; give the server time to take it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut docs = base_docs();
    docs[4] = secret_yaml("certs", "client2.crt", "client2.key");
    harness.publish(snapshot(&docs, 2, Some(&harness.current())));
    client.expect_quiet().await;
}

#[tokio::test]
async fn delta_reconnect_with_initial_versions_gets_only_what_changed() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut first = harness.delta().await;
    first.subscribe(CDS, &[]).await;
    let initial = first.next().await;
    let held: std::collections::HashMap<String, String> =
        initial.resources.iter().map(|r| (r.name.clone(), r.version.clone())).collect();
    drop(first);

    let mut docs = base_docs();
    docs[1] = mapping("b", "b", Some("ctx"));
    harness.publish(snapshot(&docs, 2, Some(&harness.current())));

    let mut again = harness.delta().await;
    again
        .send(DeltaDiscoveryRequest { type_url: CDS.into(), initial_resource_versions: held, ..Default::default() })
        .await;
    // Only the changed cluster, then (make before break, as for every push) the removal of the
    // one that is gone; nothing it already holds.
    let update = again.next().await;
    assert_eq!(delta_names(&update), ["cluster_b_otls_ctx_default"]);
    assert!(update.removed_resources.is_empty());
    let removal = again.next().await;
    assert!(removal.resources.is_empty());
    assert_eq!(removal.removed_resources, ["cluster_b_default"]);
    again.ack(&update).await;
    again.ack(&removal).await;
    again.expect_quiet().await;
}

#[tokio::test]
async fn delta_certificate_rotation_touches_only_the_secret() {
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = harness.delta().await;
    client.subscribe(CDS, &[]).await;
    let clusters = client.next().await;
    client.ack(&clusters).await;
    client.subscribe(SDS, &["tlscontext/default/ctx/client-cert"]).await;
    let secret = client.next().await;
    client.ack(&secret).await;
    let mut docs = base_docs();
    docs[4] = secret_yaml("certs", "client2.crt", "client2.key");
    harness.publish(snapshot(&docs, 2, Some(&harness.current())));
    let update = client.next().await;
    assert_eq!(update.type_url, SDS);
    client.ack(&update).await;
    client.expect_quiet().await;
    let before = snapshot(&base_docs(), 1, None);
    assert_eq!(before.of(XdsType::Cluster).version, harness.current().of(XdsType::Cluster).version);
}

/// The real `serve` binary on a temporary config directory, a delta client on its ADS port.
struct ServeProcess {
    child: std::process::Child,
    address: String,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn serve(dir: &std::path::Path) -> ServeProcess {
    let (xds, admin) = (free_port(), free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
        .args(["serve", "--config-dir"])
        .arg(dir)
        .args(["--xds-address", &format!("127.0.0.1:{xds}"), "--admin-address", &format!("127.0.0.1:{admin}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{xds}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", xds)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ServeProcess { child, address }
}

#[tokio::test]
async fn file_changes_are_pushed_and_broken_files_keep_their_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), mapping("a", "a", None)).unwrap();
    std::fs::write(dir.path().join("b.yaml"), mapping("b", "b", None)).unwrap();
    let server = serve(dir.path()).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(server.address.clone()).await.unwrap();
    let (tx, rx) = mpsc::channel(16);
    let responses = client.delta_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut client = DeltaClient { tx, responses };
    client.subscribe(CDS, &[]).await;
    let initial = client.next().await;
    // `serve` points the probe routes' cluster at its own admin address (a free port here).
    let names: Vec<&str> = delta_names(&initial).into_iter().filter(|n| !n.starts_with("cluster_127_0_0_1_")).collect();
    assert_eq!(names, ["cluster_a_default", "cluster_b_default"]);
    assert_eq!(initial.resources.len(), 3, "and the probe routes' cluster");
    client.ack(&initial).await;

    // A new file: its cluster arrives.
    std::fs::write(dir.path().join("c.yaml"), mapping("c", "c", None)).unwrap();
    let added = client.next().await;
    assert_eq!(delta_names(&added), ["cluster_c_default"]);
    client.ack(&added).await;

    // Rewriting a file with the same bytes: nothing is pushed.
    std::fs::write(dir.path().join("a.yaml"), mapping("a", "a", None)).unwrap();
    client.expect_quiet().await;

    // A syntax error in b.yaml: b's last good version keeps being served.
    std::fs::write(dir.path().join("b.yaml"), "kind: [broken\n").unwrap();
    client.expect_quiet().await;

    // Removing a file removes its cluster.
    std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
    let removed = client.next().await;
    assert_eq!(removed.removed_resources, ["cluster_c_default"]);
}

#[tokio::test]
async fn per_type_delta_sds_service_answers_named_secrets() {
    use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
    let harness = Harness::start(snapshot(&base_docs(), 1, None)).await;
    let mut client = SecretDiscoveryServiceClient::connect(harness.address.clone()).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    let subscribe = DeltaDiscoveryRequest {
        resource_names_subscribe: vec!["tlscontext/default/ctx/client-cert".into()],
        ..Default::default()
    };
    tx.send(subscribe).await.unwrap();
    let mut responses = client.delta_secrets(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let response = tokio::time::timeout(PATIENCE, responses.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(response.type_url, SDS);
    assert_eq!(delta_names(&response), ["tlscontext/default/ctx/client-cert"]);
}
