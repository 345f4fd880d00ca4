//! Accepting connections on the xDS (HTTP/2) and admin (HTTP/1) ports, with limits: at most
//! `max_connections` at once, a bounded number of HTTP/2 streams per connection, connections that
//! carry no stream (or request) for the idle timeout closed, HTTP/2 keepalive pings so a dead
//! Envoy is noticed, and an accept loop that backs off instead of spinning when the process runs
//! out of file descriptors (connected streams keep being served meanwhile).

use crate::metrics::Metrics;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// gRPC (xDS).
    Http2,
    /// The admin endpoint.
    Http1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_streams_per_connection: u32,
    /// A connection with no stream (HTTP/2) or request (HTTP/1) in progress for this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 PING interval, and how long to wait for the answer before closing the connection.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_streams_per_connection: 32,
            idle_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// Longest pause of the accept loop after the process ran out of file descriptors.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` turns true, then closes every connection
/// gracefully (HTTP/2 GOAWAY) and returns once they are gone.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    version: HttpVersion,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let active = Arc::new(AtomicUsize::new(0));
    let mut backoff = Duration::from_millis(5);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(5);
                accepted
            }
            Err(err) if is_out_of_resources(&err) => {
                metrics.accept_backoffs.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%err, pause = ?backoff, "cannot accept connections (out of file descriptors?); pausing");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
            Err(err) => {
                tracing::debug!(%err, "accept failed");
                continue;
            }
        };
        if active.load(Ordering::Relaxed) >= limits.max_connections {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, limit = limits.max_connections, "too many connections; closing the new one");
            drop(tcp);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
        metrics.connections_active.fetch_add(1, Ordering::Relaxed);
        active.fetch_add(1, Ordering::Relaxed);
        let (router, metrics, shutdown, active) = (router.clone(), metrics.clone(), shutdown.clone(), active.clone());
        connections.spawn(async move {
            serve_connection(tcp, peer, router, version, limits, &metrics, shutdown).await;
            active.fetch_sub(1, Ordering::Relaxed);
            metrics.connections_active.fetch_sub(1, Ordering::Relaxed);
        });
    }
    while connections.join_next().await.is_some() {}
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting again at once would fail again.
fn is_out_of_resources(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    version: HttpVersion,
    limits: Limits,
    metrics: &Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let service = Tracked { router, peer, activity: activity.clone() };
    let service = hyper_util::service::TowerToHyperService::new(service);
    let io = TokioIo::new(tcp);
    match version {
        HttpVersion::Http2 => {
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.max_streams_per_connection)
                .keep_alive_interval(Some(limits.keepalive_interval))
                .keep_alive_timeout(limits.keepalive_timeout)
                .serve_connection(io, service);
            drive(connection, &activity, limits.idle_timeout, metrics, &mut shutdown).await;
        }
        HttpVersion::Http1 => {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Some(limits.idle_timeout))
                .serve_connection(io, service);
            drive(connection, &activity, limits.idle_timeout, metrics, &mut shutdown).await;
        }
    }
}

/// How long a connection gets to close after it was asked to (GOAWAY sent), before it is cut: a
/// client that never finished its handshake, or does not read, does not hold it open.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs a connection to its end, closing it gracefully when idle or at shutdown.
async fn drive<C: GracefulConnection>(
    connection: C,
    activity: &Activity,
    idle_timeout: Duration,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut connection = pin!(connection);
    let mut ticker = tokio::time::interval((idle_timeout / 4).max(Duration::from_millis(50)));
    let mut cut_at: Option<tokio::time::Instant> = None;
    loop {
        let cut = async {
            match cut_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            () = cut => return, // dropping the connection closes the socket
            _ = shutdown.wait_for(|stop| *stop), if cut_at.is_none() => {
                connection.as_mut().graceful_shutdown();
                cut_at = Some(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            _ = ticker.tick(), if cut_at.is_none() => {
                if activity.idle_for() >= idle_timeout {
                    metrics.connections_idle_closed.fetch_add(1, Ordering::Relaxed);
                    connection.as_mut().graceful_shutdown();
                    cut_at = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
            }
        }
    }
}

/// Streams (or requests) in progress on one connection, and since when there have been none.
struct Activity {
    in_progress: AtomicUsize,
    idle_since: Mutex<Option<Instant>>,
}

impl Activity {
    fn new() -> Activity {
        Activity { in_progress: AtomicUsize::new(0), idle_since: Mutex::new(Some(Instant::now())) }
    }

    fn started(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        *self.idle_since.lock().expect("never poisoned") = None;
        InProgress(self.clone())
    }

    fn idle_for(&self) -> Duration {
        self.idle_since.lock().expect("never poisoned").map_or(Duration::ZERO, |since| since.elapsed())
    }
}

/// Held by a response body: the stream is in progress until the body is dropped.
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        if self.0.in_progress.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.idle_since.lock().expect("never poisoned") = Some(Instant::now());
        }
    }
}

/// The router, with the peer address in each request's extensions and each response body
/// counted as a stream in progress.
#[derive(Clone)]
struct Tracked {
    router: axum::Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl Service<http::Request<Incoming>> for Tracked {
    type Response = http::Response<axum::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        let in_progress = self.activity.started();
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(self.peer);
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = router.call(request).await?;
            Ok(response.map(|body| axum::body::Body::new(CountedBody { body, _in_progress: in_progress })))
        })
    }
}

struct CountedBody {
    body: axum::body::Body,
    _in_progress: InProgress,
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
