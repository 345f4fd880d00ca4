//! The xDS server: ADS (state of the world and delta) plus the per-type CDS, LDS, RDS, EDS and
//! SDS services, all on one gRPC port. The protocol lives in the pure state machines of
//! [`sotw`] and [`delta`]; this module only pumps requests and snapshots through them.

pub mod admin;
pub mod delta;
pub mod sotw;
pub mod wire;

use crate::snapshot::{Snapshot, XdsType};
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};
use wire::{GrpcResponseBody, ProstDecoder};

/// A client rejected a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    pub xds_type: XdsType,
    pub version: String,
    pub resource_names: Vec<String>,
    pub message: String,
}

/// What a stream must do after an event: responses to send, NACKs to report.
#[derive(Debug, PartialEq)]
pub struct Output<R> {
    pub responses: Vec<R>,
    pub nacks: Vec<Nack>,
    /// Requests ignored because their nonce was stale, or their type unknown.
    pub ignored: usize,
}

impl<R> Default for Output<R> {
    fn default() -> Self {
        Output { responses: Vec::new(), nacks: Vec::new(), ignored: 0 }
    }
}

/// The type a request is about: its `type_url`, which a per-type service may leave empty; `None`
/// for types this server does not serve (or that the service is not for).
pub fn request_type(type_url: &str, fixed_type: Option<XdsType>) -> Option<XdsType> {
    match (type_url, fixed_type) {
        ("", Some(fixed)) => Some(fixed),
        (url, fixed) => XdsType::from_type_url(url).filter(|t| fixed.is_none_or(|f| f == *t)),
    }
}

/// Counters exposed on the admin port.
#[derive(Debug, Default)]
pub struct Metrics {
    pub streams_opened: AtomicU64,
    pub streams_active: AtomicU64,
    pub responses_sent: AtomicU64,
    pub nacks: AtomicU64,
    pub ignored_requests: AtomicU64,
}

/// What every stream shares: the current snapshot, the shutdown signal, the counters.
#[derive(Debug, Clone)]
pub struct Shared {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
}

const SERVICES: [(&str, Option<XdsType>); 6] = [
    ("envoy.service.discovery.v3.AggregatedDiscoveryService", None),
    ("envoy.service.cluster.v3.ClusterDiscoveryService", Some(XdsType::Cluster)),
    ("envoy.service.listener.v3.ListenerDiscoveryService", Some(XdsType::Listener)),
    ("envoy.service.route.v3.RouteDiscoveryService", Some(XdsType::Route)),
    ("envoy.service.endpoint.v3.EndpointDiscoveryService", Some(XdsType::Endpoint)),
    ("envoy.service.secret.v3.SecretDiscoveryService", Some(XdsType::Secret)),
];

fn method_names(service: &str) -> (&'static str, &'static str) {
    match service {
        "envoy.service.discovery.v3.AggregatedDiscoveryService" => {
            ("StreamAggregatedResources", "DeltaAggregatedResources")
        }
        "envoy.service.cluster.v3.ClusterDiscoveryService" => ("StreamClusters", "DeltaClusters"),
        "envoy.service.listener.v3.ListenerDiscoveryService" => ("StreamListeners", "DeltaListeners"),
        "envoy.service.route.v3.RouteDiscoveryService" => ("StreamRoutes", "DeltaRoutes"),
        "envoy.service.endpoint.v3.EndpointDiscoveryService" => ("StreamEndpoints", "DeltaEndpoints"),
        _ => ("StreamSecrets", "DeltaSecrets"),
    }
}

/// Every xDS method, routed to the state machines.
pub fn routes(shared: Shared) -> tonic::service::Routes {
    let mut router = axum::Router::new();
    for (service, fixed_type) in SERVICES {
        let (stream, delta) = method_names(service);
        router = router
            .route_service(
                &format!("/{service}/{stream}"),
                GrpcMethod { shared: shared.clone(), fixed_type, protocol: Protocol::Sotw },
            )
            .route_service(
                &format!("/{service}/{delta}"),
                GrpcMethod { shared: shared.clone(), fixed_type, protocol: Protocol::Delta },
            );
    }
    tonic::service::Routes::from(router)
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Sotw,
    Delta,
}

#[derive(Debug, Clone)]
struct GrpcMethod {
    shared: Shared,
    fixed_type: Option<XdsType>,
    protocol: Protocol,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower_service::Service<http::Request<axum::body::Body>> for GrpcMethod {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let method = self.clone();
        Box::pin(async move { Ok(method.open_stream(request)) })
    }
}

/// Largest request accepted: DiscoveryRequests are small; this only bounds a broken client.
const MAX_REQUEST_BYTES: usize = 4 << 20;

impl GrpcMethod {
    /// Answers one xDS call: decodes the request stream with tonic, and streams responses back
    /// through [`GrpcResponseBody`] so their resource bytes are never copied per stream.
    fn open_stream(self, request: http::Request<axum::body::Body>) -> http::Response<tonic::body::Body> {
        let compressed =
            request.headers().get("grpc-encoding").is_some_and(|encoding| encoding.as_bytes() != b"identity");
        if compressed {
            return Status::unimplemented("compressed xDS requests are not supported").into_http();
        }
        let peer =
            request.extensions().get::<tonic::transport::server::TcpConnectInfo>().and_then(|info| info.remote_addr());
        let body = request.into_body();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        match self.protocol {
            Protocol::Sotw => {
                let requests = Streaming::new_request(
                    ProstDecoder::<DiscoveryRequest>::default(),
                    body,
                    None,
                    Some(MAX_REQUEST_BYTES),
                );
                let mut machine = sotw::SotwStream::new(self.fixed_type);
                tokio::spawn(pump(self.shared, requests, tx, peer, "sotw", move |event, snapshot| {
                    let out = match event {
                        Event::Request(request) => machine.on_request(&request, snapshot),
                        Event::Snapshot => machine.on_snapshot(snapshot),
                    };
                    let responses = out.responses.iter().map(|r| (r.xds_type, r.resources.len(), r.chunks())).collect();
                    (responses, out.nacks, out.ignored)
                }));
            }
            Protocol::Delta => {
                let requests = Streaming::new_request(
                    ProstDecoder::<DeltaDiscoveryRequest>::default(),
                    body,
                    None,
                    Some(MAX_REQUEST_BYTES),
                );
                let mut machine = delta::DeltaStream::new(self.fixed_type);
                tokio::spawn(pump(self.shared, requests, tx, peer, "delta", move |event, snapshot| {
                    let out = match event {
                        Event::Request(request) => machine.on_request(&request, snapshot),
                        Event::Snapshot => machine.on_snapshot(snapshot),
                    };
                    let responses = out
                        .responses
                        .iter()
                        .map(|r| (r.xds_type, r.resources.len() + r.removed.len(), r.chunks()))
                        .collect();
                    (responses, out.nacks, out.ignored)
                }));
            }
        }
        let mut response = http::Response::new(tonic::body::Body::new(GrpcResponseBody::new(rx)));
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
        response
    }
}

/// Responses buffered per stream before the stream task waits for the client to read.
const STREAM_BUFFER: usize = 16;

enum Event<R> {
    Request(R),
    Snapshot,
}

/// An encoded response, with what logs say about it.
type Encoded = (XdsType, usize, Vec<bytes::Bytes>);

/// One stream's task: requests and snapshot changes in, responses out, until either side ends
/// or the server shuts down.
async fn pump<Req, F>(
    shared: Shared,
    mut requests: Streaming<Req>,
    tx: mpsc::Sender<Vec<bytes::Bytes>>,
    peer: Option<std::net::SocketAddr>,
    protocol: &'static str,
    mut machine: F,
) where
    Req: Send + 'static,
    F: FnMut(Event<Req>, &Snapshot) -> (Vec<Encoded>, Vec<Nack>, usize) + Send + 'static,
{
    let Shared { mut snapshots, mut shutdown, metrics } = shared;
    // Before the first snapshot (serial 0) there is nothing true to say: an empty answer would make
    // a reconnecting Envoy drop its listeners and clusters. Requests wait until then.
    tokio::select! {
        ready = snapshots.wait_for(|s| s.serial > 0) => if ready.is_err() { return },
        _ = shutdown.changed() => return,
    }
    metrics.streams_opened.fetch_add(1, Ordering::Relaxed);
    metrics.streams_active.fetch_add(1, Ordering::Relaxed);
    let peer = peer.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into());
    tracing::debug!(%peer, protocol, "xDS stream opened");
    loop {
        let (responses, nacks, ignored) = tokio::select! {
            request = requests.message() => match request {
                Ok(Some(request)) => {
                    let snapshot = snapshots.borrow_and_update().clone();
                    machine(Event::Request(request), &snapshot)
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%peer, %status, "xDS stream ended by the client");
                    break;
                }
            },
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break;
                }
                let snapshot = snapshots.borrow_and_update().clone();
                machine(Event::Snapshot, &snapshot)
            }
            _ = shutdown.changed() => break,
        };
        metrics.ignored_requests.fetch_add(ignored as u64, Ordering::Relaxed);
        for nack in nacks {
            metrics.nacks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                %peer,
                type_ = nack.xds_type.short_name(),
                version = %nack.version,
                resources = ?nack.resource_names,
                error = %nack.message,
                "Envoy rejected a response (NACK); it will not be sent again"
            );
        }
        for (xds_type, count, chunks) in responses {
            tracing::debug!(%peer, protocol, type_ = xds_type.short_name(), resources = count, "sending");
            metrics.responses_sent.fetch_add(1, Ordering::Relaxed);
            if tx.send(chunks).await.is_err() {
                break;
            }
        }
    }
    metrics.streams_active.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(%peer, protocol, "xDS stream closed");
}
