//! The xDS server: ADS (state of the world and delta) plus the per-type CDS, LDS, RDS, EDS and
//! SDS services, all on one gRPC port. The protocol lives in the pure state machines of
//! [`sotw`] and [`delta`]; this module only pumps requests and snapshots through them.

pub mod admin;
pub mod delta;
#[cfg(test)]
mod fixture;
pub mod sotw;
pub mod wire;

use crate::snapshot::Snapshot;
use crate::xds::{XdsType, ADS_SERVICE};
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

/// Every xDS method, routed to the state machines: ADS serves every type, the per-type services
/// their own.
pub fn routes(shared: Shared) -> tonic::service::Routes {
    let services = std::iter::once((ADS_SERVICE, None))
        .chain(XdsType::ALL.into_iter().map(|xds_type| (xds_type.service(), Some(xds_type))));
    let mut router = axum::Router::new();
    for (service, fixed_type) in services {
        for (method, protocol) in [(service.sotw_method, Protocol::Sotw), (service.delta_method, Protocol::Delta)] {
            router = router.route_service(
                &format!("/{}/{method}", service.name),
                GrpcMethod { shared: shared.clone(), fixed_type, protocol },
            );
        }
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
            Protocol::Sotw => spawn_stream(self.shared, sotw::SotwStream::new(self.fixed_type), body, tx, peer),
            Protocol::Delta => spawn_stream(self.shared, delta::DeltaStream::new(self.fixed_type), body, tx, peer),
        }
        let mut response = http::Response::new(tonic::body::Body::new(GrpcResponseBody::new(rx)));
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
        response
    }
}

/// Responses buffered per stream before the stream task waits for the client to read.
const STREAM_BUFFER: usize = 16;

/// A protocol's per-stream state machine, as the stream task drives it.
pub trait StreamMachine: Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: OutgoingResponse;
    /// For logs.
    const PROTOCOL: &'static str;
    fn on_request(&mut self, request: &Self::Request, snapshot: &Snapshot) -> Output<Self::Response>;
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Output<Self::Response>;
}

/// A response ready for the wire, and what logs say about it.
pub trait OutgoingResponse: Send {
    fn xds_type(&self) -> XdsType;
    /// Resources sent plus resources removed.
    fn resource_count(&self) -> usize;
    fn chunks(&self) -> Vec<bytes::Bytes>;
}

fn spawn_stream<M: StreamMachine>(
    shared: Shared,
    machine: M,
    body: axum::body::Body,
    tx: mpsc::Sender<Vec<bytes::Bytes>>,
    peer: Option<std::net::SocketAddr>,
) {
    let requests = Streaming::new_request(ProstDecoder::<M::Request>::default(), body, None, Some(MAX_REQUEST_BYTES));
    tokio::spawn(pump(shared, requests, tx, peer, machine));
}

/// One stream's task: requests and snapshot changes in, responses out, until either side ends
/// or the server shuts down.
async fn pump<M: StreamMachine>(
    shared: Shared,
    mut requests: Streaming<M::Request>,
    tx: mpsc::Sender<Vec<bytes::Bytes>>,
    peer: Option<std::net::SocketAddr>,
    mut machine: M,
) {
    let protocol = M::PROTOCOL;
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
        let Output { responses, nacks, ignored } = tokio::select! {
            request = requests.message() => match request {
                Ok(Some(request)) => {
                    let snapshot = snapshots.borrow_and_update().clone();
                    machine.on_request(&request, &snapshot)
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
                machine.on_snapshot(&snapshot)
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
        for response in responses {
            let (xds_type, count) = (response.xds_type(), response.resource_count());
            tracing::debug!(%peer, protocol, type_ = xds_type.short_name(), resources = count, "sending");
            metrics.responses_sent.fetch_add(1, Ordering::Relaxed);
            if tx.send(response.chunks()).await.is_err() {
                break;
            }
        }
    }
    metrics.streams_active.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(%peer, protocol, "xDS stream closed");
}
