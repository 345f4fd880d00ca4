//! Plaintext upstreams for the end-to-end field tests, each on its own thread and runtime and
//! stopped when dropped, recording what they saw:
//! - [`HttpUpstream`]: HTTP/1.1; answers `{"upstream":NAME,"path":...,"headers":{...}}` with a
//!   `x-upstream-secret` response header, can fail the first N requests with 503 (for retries),
//!   answers a given status on one path, and switches protocols on `Upgrade: websocket`, then
//!   echoes bytes;
//! - [`H2Upstream`]: HTTP/2 without TLS (what a gRPC cluster speaks), answering with the protocol
//!   version it was reached with;
//! - [`TcpEcho`]: echoes every byte back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// One request an upstream saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: BTreeMap<String, String>,
    pub version: String,
}

#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer this many requests (from the first) with 503.
    pub fail_first: usize,
    /// Answer requests for this path with this status.
    pub status_on: Option<(String, u16)>,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Seen>>,
    served: AtomicUsize,
}

/// A running server thread and what it saw.
struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start<F, Fut>(name: &str, serve: F) -> Server
    where
        F: FnOnce(tokio::net::TcpListener, Arc<State>, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding an upstream");
        listener.set_nonblocking(true).expect("non-blocking upstream listener");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("upstream {name}"))
            .spawn({
                let state = state.clone();
                move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener).expect("upstream listener");
                        serve(listener, state, shutdown_rx).await
                    });
                }
            })
            .expect("spawning an upstream thread");
        Server { addr, state, shutdown: Some(shutdown), thread: Some(thread) }
    }

    fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub struct HttpUpstream {
    server: Server,
}

impl HttpUpstream {
    pub fn start(name: &'static str, behaviour: Behaviour) -> HttpUpstream {
        let server = Server::start(name, move |listener, state, mut shutdown| async move {
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        tokio::spawn(serve_http1(name, tcp, state.clone(), behaviour.clone()));
                    }
                }
            }
        });
        HttpUpstream { server }
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.server.requests()
    }
}

async fn serve_http1(name: &str, mut tcp: tokio::net::TcpStream, state: Arc<State>, behaviour: Behaviour) {
    // One request per connection: Envoy's pool opens another for the next.
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while super::http::find(&head, b"\r\n\r\n").is_none() {
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 && head.len() < 64 * 1024 => head.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (request_line.next().unwrap_or_default(), request_line.next().unwrap_or_default());
    let headers: BTreeMap<String, String> = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let seen = Seen { method: method.into(), path: path.into(), headers: headers.clone(), version: "HTTP/1.1".into() };
    state.requests.lock().unwrap().push(seen);
    let number = state.served.fetch_add(1, Ordering::SeqCst);

    if headers.get("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        let accept = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
        if tcp.write_all(accept.as_bytes()).await.is_err() {
            return;
        }
        // Whatever the client sends next comes back.
        loop {
            match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => {
                    if tcp.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    }
    let status = match &behaviour.status_on {
        _ if number < behaviour.fail_first => 503,
        Some((on, status)) if on == path => *status,
        _ => 200,
    };
    let body = serde_json::json!({ "upstream": name, "path": path, "headers": headers }).to_string();
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nx-upstream-secret: s3cret\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if tcp.write_all(response.as_bytes()).await.is_ok() {
        let _ = tcp.shutdown().await;
    }
}

/// HTTP/2 without TLS (prior knowledge), as Envoy speaks to a `grpc: true` cluster.
pub struct H2Upstream {
    server: Server,
}

impl H2Upstream {
    pub fn start(name: &'static str) -> H2Upstream {
        use hyper::server::conn::http2;
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let server = Server::start(name, move |listener, state, mut shutdown| async move {
            loop {
                let tcp = tokio::select! {
                    _ = &mut shutdown => return,
                    accepted = listener.accept() => match accepted { Ok((tcp, _)) => tcp, Err(_) => continue },
                };
                let state = state.clone();
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let version = format!("{:?}", request.version());
                        let headers = request
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                            .collect();
                        let path = request.uri().path().to_string();
                        let seen = Seen {
                            method: request.method().to_string(),
                            path: path.clone(),
                            headers,
                            version: version.clone(),
                        };
                        state.requests.lock().unwrap().push(seen);
                        let body =
                            serde_json::json!({ "upstream": name, "path": path, "version": version }).to_string();
                        let response = hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                            .expect("a response");
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ =
                        http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        H2Upstream { server }
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.server.requests()
    }
}

/// Echoes every byte of every connection.
pub struct TcpEcho {
    server: Server,
}

impl TcpEcho {
    pub fn start(name: &'static str) -> TcpEcho {
        let server = Server::start(name, move |listener, state, mut shutdown| async move {
            loop {
                let mut tcp = tokio::select! {
                    _ = &mut shutdown => return,
                    accepted = listener.accept() => match accepted { Ok((tcp, _)) => tcp, Err(_) => continue },
                };
                state.served.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut chunk = [0u8; 4096];
                    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk)).await {
                        if n == 0 || tcp.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TcpEcho { server }
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    pub fn connections(&self) -> usize {
        self.server.state.served.load(Ordering::SeqCst)
    }
}
