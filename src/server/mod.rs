//! The xDS server: ADS (state of the world and delta) plus the per-type CDS, LDS, RDS, EDS and
//! SDS services, all on one gRPC port. The protocol lives in the pure state machines of
//! [`sotw`] and [`delta`]; [`stream`] pumps requests and snapshots through them; [`listen`]
//! accepts connections with limits; [`admin`] is the operators' HTTP endpoint.

pub mod admin;
pub mod delta;
#[cfg(test)]
mod fixture;
pub mod listen;
pub mod nacks;
pub mod sotw;
pub mod status;
mod stream;
pub mod wire;

use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::xds::{XdsType, ADS_SERVICE};
use envoy_types::pb::envoy::config::core::v3::Node;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::watch;
use tonic::Status;

/// A client rejected a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    pub xds_type: XdsType,
    pub version: String,
    pub resource_names: Vec<String>,
    pub message: String,
}

/// What a request did besides changing the stream's state.
#[derive(Debug, Default, PartialEq)]
pub struct RequestOutcome {
    pub nacks: Vec<Nack>,
    /// Requests ignored because their nonce was stale, or (on ADS) their type unknown.
    pub ignored: usize,
    /// The request is not one this stream can serve (another type on a per-type service): the
    /// stream ends with `INVALID_ARGUMENT` and this message.
    pub error: Option<String>,
    /// Responses the request ACKed: (type, nonce).
    pub acks: Vec<(XdsType, String)>,
}

/// Where one subscribed type of a stream stands, for operators (`/debug/status`, `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSync {
    pub xds_type: XdsType,
    /// The version of the latest response sent (delta: the snapshot serial it came from).
    pub sent: Option<String>,
    /// The version the client last ACKed.
    pub acked: Option<String>,
    /// The latest response was rejected.
    pub nacked: bool,
    /// A newer configuration is waiting to be sent.
    pub pending: bool,
}

/// SYNCED, STALE or NACKED, as `status` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncState {
    Synced,
    Stale,
    Nacked,
}

impl TypeSync {
    pub fn state(&self) -> SyncState {
        if self.nacked {
            SyncState::Nacked
        } else if self.pending || self.acked != self.sent {
            SyncState::Stale
        } else {
            SyncState::Synced
        }
    }
}

impl SyncState {
    pub fn name(self) -> &'static str {
        match self {
            SyncState::Synced => "SYNCED",
            SyncState::Stale => "STALE",
            SyncState::Nacked => "NACKED",
        }
    }
}

/// What a request's `type_url` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestType {
    Served(XdsType),
    /// On ADS, a type this server does not serve (Envoy may ask for runtime or VHDS): ignored.
    Unknown,
    /// On a per-type service, any other type: a client error.
    WrongService(String),
}

/// The type a request is about: its `type_url`, which a per-type service may leave empty.
pub fn request_type(type_url: &str, fixed_type: Option<XdsType>) -> RequestType {
    match (type_url, fixed_type) {
        ("", Some(fixed)) => RequestType::Served(fixed),
        (url, None) => XdsType::from_type_url(url).map_or(RequestType::Unknown, RequestType::Served),
        (url, Some(fixed)) => match XdsType::from_type_url(url) {
            Some(asked) if asked == fixed => RequestType::Served(fixed),
            _ => RequestType::WrongService(format!(
                "{} serves only {}, not `{url}`",
                fixed.service().name,
                fixed.type_url()
            )),
        },
    }
}

/// What every stream shares: the current snapshot, the shutdown signal, the counters, and the
/// registry of connected Envoys.
#[derive(Debug, Clone)]
pub struct Shared {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<status::Registry>,
}

/// Every xDS method, routed to the state machines: ADS serves every type, the per-type services
/// their own. Any other path answers gRPC `UNIMPLEMENTED`.
pub fn routes(shared: Shared) -> axum::Router {
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
    router.fallback(|request: http::Request<axum::body::Body>| async move {
        Status::unimplemented(format!("no such method: {}", request.uri().path())).into_http::<axum::body::Body>()
    })
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

impl GrpcMethod {
    fn open_stream(self, request: http::Request<axum::body::Body>) -> http::Response<tonic::body::Body> {
        let compressed =
            request.headers().get("grpc-encoding").is_some_and(|encoding| encoding.as_bytes() != b"identity");
        if compressed {
            return Status::unimplemented("compressed xDS requests are not supported").into_http();
        }
        let service = self.fixed_type.map_or("ADS", XdsType::short_name);
        match self.protocol {
            Protocol::Sotw => stream::open(self.shared, sotw::SotwStream::new(self.fixed_type), service, request),
            Protocol::Delta => stream::open(self.shared, delta::DeltaStream::new(self.fixed_type), service, request),
        }
    }
}

/// A protocol's per-stream state machine, as the stream task drives it.
pub trait StreamMachine: Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: OutgoingResponse;
    /// For logs.
    const PROTOCOL: &'static str;
    /// Takes a request; never answers it directly (see [`Self::next_response`]).
    fn on_request(&mut self, request: &Self::Request) -> RequestOutcome;
    /// The next response the client should get to reach `snapshot`, or `None` when it is there.
    fn next_response(&mut self, snapshot: &Snapshot) -> Option<Self::Response>;
    /// Where each subscribed type stands against `snapshot` (pure).
    fn sync(&self, snapshot: &Snapshot) -> Vec<TypeSync>;
    /// The Envoy behind a request (Envoy sends it on a stream's first request).
    fn node(request: &Self::Request) -> Option<&Node>;
}

/// A response ready for the wire, and what logs say about it.
pub trait OutgoingResponse: Send {
    fn xds_type(&self) -> XdsType;
    fn nonce(&self) -> &str;
    /// Resources sent plus resources removed.
    fn resource_count(&self) -> usize;
    fn chunks(&self) -> Vec<bytes::Bytes>;
}
