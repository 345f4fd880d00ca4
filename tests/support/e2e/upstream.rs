//! A TLS upstream for the end-to-end tests: it answers every HTTP/1.1 request with 200 and a JSON
//! body saying what it saw — `{"upstream":NAME,"path":"/","client_cn":"envoy-client","sni":"localhost",
//! "xfp":"https","xfcc":null}` (the last two: the `x-forwarded-proto` and
//! `x-forwarded-client-cert` request headers) — and closes the connection, so every request through Envoy is a fresh TLS handshake (which is
//! what makes certificate rotation observable request by request). TLS session resumption is off
//! for the same reason. It runs on its own thread and tokio runtime and stops when dropped.

use crate::support::manifest_dir;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// The certificate the upstream presents (from `testdata/certs/`).
#[derive(Debug, Clone, Copy)]
pub enum ServerCert {
    /// `upstream.crt`: CN=upstream-service, SANs upstream-service/localhost/127.0.0.1, signed by `ca`.
    Upstream,
    /// `rogue-upstream.crt`: the same names, signed by `other-ca`.
    Rogue,
}

/// Whether the upstream insists on a client certificate signed by `testdata/certs/ca.crt`.
#[derive(Debug, Clone, Copy)]
pub enum ClientAuth {
    /// Handshakes without a valid client certificate fail.
    Required,
    /// A certificate is asked for (and verified if sent) but not required.
    Optional,
}

/// What the upstream saw on one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub client_cn: Option<String>,
    pub sni: Option<String>,
    /// The client certificate's URI SAN (a SPIFFE ID) and serial number (hex).
    #[allow(dead_code)] // in the response body; tests/consul.rs reads that
    pub client_uri: Option<String>,
    #[allow(dead_code)]
    pub client_serial: Option<String>,
}

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
    handshake_errors: Mutex<Vec<String>>,
}

pub struct Upstream {
    name: &'static str,
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start(name: &'static str, cert: ServerCert, client_auth: ClientAuth) -> Upstream {
        Upstream::start_with(name, server_config(cert, client_auth))
    }

    #[allow(dead_code)] // tests/consul.rs
    /// An upstream presenting `chain_pem`/`key_pem` that requires a client certificate signed by
    /// one of `client_roots` (PEM): a stand-in for a mesh sidecar.
    pub fn start_pem(name: &'static str, chain_pem: &str, key_pem: &str, client_roots: &[String]) -> Upstream {
        Upstream::start_with(name, pem_server_config(chain_pem, key_pem, client_roots))
    }

    fn start_with(name: &'static str, config: ServerConfig) -> Upstream {
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the upstream");
        listener.set_nonblocking(true).expect("non-blocking upstream listener");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("upstream {name}"))
            .spawn({
                let state = state.clone();
                move || {
                    let runtime =
                        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("upstream runtime");
                    // Dropping the runtime at the end of this closure cancels any connection still open.
                    runtime.block_on(accept_loop(name, listener, acceptor, state, shutdown_rx));
                }
            })
            .expect("spawning the upstream thread");
        Upstream { name, addr, state, shutdown: Some(shutdown), thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TCP connections accepted, whether or not the TLS handshake then succeeded.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn handshake_errors(&self) -> Vec<String> {
        self.state.handshake_errors.lock().unwrap().clone()
    }

    /// A one-line account for failure messages.
    pub fn describe(&self) -> String {
        self.observer().describe()
    }

    /// A handle that can describe this upstream in failure messages (see `Stack::observe`).
    pub fn observer(&self) -> Observer {
        Observer { name: self.name, addr: self.addr, state: self.state.clone() }
    }
}

/// Reads an [`Upstream`]'s record without owning it.
pub struct Observer {
    name: &'static str,
    addr: SocketAddr,
    state: Arc<State>,
}

impl Observer {
    /// Counts, and the last few requests and handshake errors.
    pub fn describe(&self) -> String {
        let requests = self.state.requests.lock().unwrap();
        let errors = self.state.handshake_errors.lock().unwrap();
        format!(
            "upstream {} on {}: {} connection(s); {} request(s), last {:?}; {} failed handshake(s), last {:?}",
            self.name,
            self.addr,
            self.state.connections.load(Ordering::SeqCst),
            requests.len(),
            &requests[requests.len().saturating_sub(3)..],
            errors.len(),
            &errors[errors.len().saturating_sub(3)..],
        )
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn cert_path(file: &str) -> std::path::PathBuf {
    manifest_dir().join("testdata/certs").join(file)
}

fn server_config(cert: ServerCert, client_auth: ClientAuth) -> ServerConfig {
    // Envoy originates TLS 1.2 at most unless a context raises `tls_maximum_protocol_version`, and
    // rustls speaks 1.2 only with its `tls12` feature (off in this crate's normal dependency).
    let tls12 = rustls::DEFAULT_VERSIONS.iter().any(|v| v.version == rustls::ProtocolVersion::TLSv1_2);
    assert!(
        tls12,
        "the e2e upstream needs TLS 1.2, which Envoy uses by default upstream: add \
         `rustls = {{ version = \"0.23\", default-features = false, features = [\"ring\", \"std\", \"tls12\"] }}` \
         to [dev-dependencies]"
    );
    let stem = match cert {
        ServerCert::Upstream => "upstream",
        ServerCert::Rogue => "rogue-upstream",
    };
    let read = |file: String| std::fs::read(cert_path(&file)).unwrap_or_else(|err| panic!("reading {file}: {err}"));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(format!("{stem}.crt")))
        .collect::<Result<_, _>>()
        .expect("parsing the upstream certificate");
    let key = PrivateKeyDer::from_pem_slice(&read(format!("{stem}.key"))).expect("parsing the upstream key");

    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read("ca.crt".into())) {
        roots.add(ca.expect("parsing ca.crt")).expect("adding ca.crt");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = match client_auth {
        ClientAuth::Required => verifier,
        ClientAuth::Optional => verifier.allow_unauthenticated(),
    }
    .build()
    .expect("client certificate verifier");

    finish_config(provider, verifier, chain, key)
}

fn finish_config(
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> ServerConfig {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("upstream certificate and key");
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config
}

fn pem_server_config(chain_pem: &str, key_pem: &str, client_roots: &[String]) -> ServerConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("parsing the upstream certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("parsing the upstream key");
    let mut roots = RootCertStore::empty();
    for pem in client_roots {
        for ca in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(ca.expect("parsing a client root")).expect("adding a client root");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("client certificate verifier");
    finish_config(provider, verifier, chain, key)
}

async fn accept_loop(
    name: &'static str,
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("upstream listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                state.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(name, tcp, acceptor.clone(), state.clone()));
            }
        }
    }
}

async fn serve_connection(name: &'static str, tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, state: Arc<State>) {
    let record_error = |err: String| state.handshake_errors.lock().unwrap().push(err);
    let mut tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => return record_error(err.to_string()),
        Err(_) => return record_error("TLS handshake timed out".into()),
    };
    let (_, connection) = tls.get_ref();
    let peer = connection.peer_certificates().and_then(|chain| chain.first());
    let client_cn = peer.and_then(|der| common_name(der));
    let (client_uri, client_serial) = peer.map(|der| uri_and_serial(der)).unwrap_or_default();
    let sni = connection.server_name().map(str::to_owned);

    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    while super::http::find(&request, b"\r\n\r\n").is_none() {
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 && request.len() < 64 * 1024 => request.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&request);
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let header = |wanted: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(wanted).then(|| value.trim().to_owned())
        })
    };
    let (xfp, xfcc) = (header("x-forwarded-proto"), header("x-forwarded-client-cert"));
    state.requests.lock().unwrap().push(Seen {
        path: path.clone(),
        client_cn: client_cn.clone(),
        sni: sni.clone(),
        client_uri: client_uri.clone(),
        client_serial: client_serial.clone(),
    });

    let body = serde_json::json!({
        "upstream": name, "path": path, "client_cn": client_cn, "sni": sni, "xfp": xfp, "xfcc": xfcc,
        "client_uri": client_uri, "client_serial": client_serial,
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if tls.write_all(response.as_bytes()).await.is_ok() {
        let _ = tls.shutdown().await;
    }
}

/// The URI SAN and the serial number (hex) of a certificate.
fn uri_and_serial(der: &[u8]) -> (Option<String>, Option<String>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return (None, None) };
    let uri = cert.subject_alternative_name().ok().flatten().and_then(|names| {
        names.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
            _ => None,
        })
    });
    (uri, Some(cert.raw_serial_as_string()))
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(cn)
}
