//! Clients for TLS at the edge: `curl` and `openssl s_client` as users run them (`--resolve`,
//! SNI, client certificates from `testdata/certs/`), and a rustls request loop that records which
//! server certificate answered each request (a full handshake every time: no resumption).

use crate::support::manifest_dir;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn cert(name: &str) -> PathBuf {
    manifest_dir().join("testdata/certs").join(name)
}

/// One request through Envoy's listener on `port`, with curl.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub port: u16,
    /// The host name: the SNI and `Host` over TLS (resolved to 127.0.0.1), the `Host` in cleartext.
    pub host: &'a str,
    pub path: &'a str,
    pub tls: bool,
    /// A client certificate: `testdata/certs/<stem>.crt` and `.key`.
    pub client_certificate: Option<&'a str>,
    pub headers: &'a [&'a str],
}

impl<'a> Request<'a> {
    pub fn https(port: u16, host: &'a str, path: &'a str) -> Request<'a> {
        Request { port, host, path, tls: true, client_certificate: None, headers: &[] }
    }

    pub fn http(port: u16, host: &'a str, path: &'a str) -> Request<'a> {
        Request { tls: false, ..Request::https(port, host, path) }
    }

    pub fn with_certificate(self, stem: &'a str) -> Request<'a> {
        Request { client_certificate: Some(stem), ..self }
    }

    pub fn with_headers(self, headers: &'a [&'a str]) -> Request<'a> {
        Request { headers, ..self }
    }
}

/// What curl got back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// `Location` of a redirect.
    pub location: Option<String>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.body))
    }
}

/// Runs curl; `Err` holds curl's exit code and message (a failed handshake is one).
pub fn curl(request: &Request<'_>) -> Result<Reply, String> {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "10", "-w", "\n%{http_code} %{redirect_url}"]);
    if request.tls {
        let resolve = format!("{}:{}:127.0.0.1", request.host, request.port);
        command.args(["--resolve", &resolve]).arg("--cacert").arg(cert("ca.crt"));
        if let Some(stem) = request.client_certificate {
            command.arg("--cert").arg(cert(&format!("{stem}.crt"))).arg("--key").arg(cert(&format!("{stem}.key")));
        }
        command.arg(format!("https://{}:{}{}", request.host, request.port, request.path));
    } else {
        command.args(["-H", &format!("Host: {}", request.host)]);
        command.arg(format!("http://127.0.0.1:{}{}", request.port, request.path));
    }
    for header in request.headers {
        command.args(["-H", header]);
    }
    let output = command.output().map_err(|err| format!("running curl: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let code = output.status.code().unwrap_or(-1);
        return Err(format!("curl exit {code}: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    let (body, last) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (status, location) = last.split_once(' ').unwrap_or((last, ""));
    let status = status.parse().map_err(|_| format!("curl printed no status: {stdout:?}"))?;
    Ok(Reply { status, body: body.to_owned(), location: (!location.is_empty()).then(|| location.to_owned()) })
}

/// The common name of the certificate Envoy presents on `port` for SNI `name` (`openssl
/// s_client`, verifying it against the test CA); `Err` when none was presented. (A server that
/// then asks for a client certificate presents its own first.)
pub fn server_certificate_cn(port: u16, name: &str) -> Result<String, String> {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", name, "-verify_return_error"])
        .arg("-CAfile")
        .arg(cert("ca.crt"))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| format!("running openssl: {err}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let subject = text.lines().find_map(|line| line.strip_prefix("subject="));
    let verified = text.contains("Verify return code: 0 (ok)");
    match (subject, verified) {
        (Some(subject), true) => Ok(common_name_of(subject)),
        _ => Err(format!(
            "openssl s_client -servername {name} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default()
        )),
    }
}

/// `CN = a.example.com` or `CN=a.example.com, O=...` → `a.example.com`.
fn common_name_of(subject: &str) -> String {
    let at = subject.find("CN").map(|at| &subject[at + 2..]).unwrap_or(subject);
    let value = at.trim_start().trim_start_matches('=').trim_start();
    value.split(", ").next().unwrap_or(value).trim().to_owned()
}

/// One request of a [`TlsLoop`]: the status and the server certificate's CN, or what failed.
#[derive(Debug, Clone)]
pub struct TlsSample {
    pub at: Duration,
    pub result: Result<(u16, String), String>,
}

/// `GET path` over TLS to `addr` with SNI `name` every `interval`, each on a new connection with a
/// full handshake, until stopped.
pub struct TlsLoop {
    samples: Arc<Mutex<Vec<TlsSample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsLoop {
    pub fn start(addr: SocketAddr, name: &str, path: &str, interval: Duration) -> TlsLoop {
        let config = Arc::new(client_config());
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (name, path) = (name.to_owned(), path.to_owned());
        let thread = std::thread::spawn({
            let (samples, stop) = (samples.clone(), stop.clone());
            move || {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let next = Instant::now() + interval;
                    let result = get_over_tls(addr, &name, &path, config.clone());
                    samples.lock().unwrap().push(TlsSample { at: started.elapsed(), result });
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            }
        });
        TlsLoop { samples, stop, thread: Some(thread) }
    }

    pub fn samples(&self) -> Vec<TlsSample> {
        self.samples.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> Vec<TlsSample> {
        self.halt();
        self.samples()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TlsLoop {
    fn drop(&mut self) {
        self.halt();
    }
}

fn client_config() -> ClientConfig {
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(cert("ca.crt")).expect("reading ca.crt");
    for ca in CertificateDer::pem_slice_iter(&pem) {
        roots.add(ca.expect("parsing ca.crt")).expect("adding ca.crt");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config
}

fn get_over_tls(addr: SocketAddr, name: &str, path: &str, config: Arc<ClientConfig>) -> Result<(u16, String), String> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(|err| err.to_string())?;
    let connection = ClientConnection::new(config, server_name).map_err(|err| err.to_string())?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|err| format!("connect: {err}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).map_err(|err| err.to_string())?;
    let mut tls = StreamOwned::new(connection, tcp);
    let request = format!("GET {path} HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).map_err(|err| format!("TLS write: {err}"))?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Envoy may close without close_notify once the response is complete.
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(err) => return Err(format!("TLS read: {err}")),
    }
    let cn = tls
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
        .and_then(|(_, cert)| cert.subject().iter_common_name().next()?.as_str().ok().map(str::to_owned))
        .ok_or("no server certificate")?;
    let head = String::from_utf8_lossy(&raw);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, cn))
}
