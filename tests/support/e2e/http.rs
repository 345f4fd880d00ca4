//! A minimal HTTP/1.1 client over `std::net::TcpStream` (one request per connection), polling, a
//! background request loop, and Envoy's admin stats.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|err| format!("body is not JSON ({err}): {}", self.summary()))
    }

    /// `client_cn` from an upstream's JSON body: `Some(None)` when the upstream saw no client certificate.
    pub fn client_cn(&self) -> Result<Option<String>, String> {
        let json = self.json()?;
        match &json["client_cn"] {
            serde_json::Value::String(cn) => Ok(Some(cn.clone())),
            serde_json::Value::Null => Ok(None),
            other => Err(format!("unexpected client_cn {other} in {json}")),
        }
    }

    /// Status line and the start of the body, for failure messages.
    pub fn summary(&self) -> String {
        let text = self.text();
        let body: String = text.chars().take(300).collect();
        format!("HTTP {} {:?}", self.status, body)
    }
}

/// `GET path` on a fresh connection with `connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    get_from_host(addr, path, "e2e.test")
}

/// `GET path` with `host: <host>`; the path is sent exactly as given (`/a/../b` included).
pub fn get_from_host(addr: SocketAddr, path: &str, host: &str) -> io::Result<Response> {
    request(addr, "GET", path, host, None)
}

/// `method path`, with a JSON body when there is one.
pub fn request(addr: SocketAddr, method: &str, path: &str, host: &str, json: Option<&str>) -> io::Result<Response> {
    request_within(addr, method, path, &[("host", host)], json, IO_TIMEOUT)
}

/// `method path` with `headers` (a `host` among them replaces `e2e.test`) and `connection: close`.
pub fn request_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Response> {
    request_within(addr, method, path, headers, None, IO_TIMEOUT)
}

/// `method path` with `headers` and a JSON body when there is one, waiting up to `timeout` for
/// each read and write (a browser starting up under load takes longer than any server here).
pub fn request_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json: Option<&str>,
    timeout: Duration,
) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request.push_str("host: e2e.test\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("user-agent: ambassador-xds-e2e\r\nconnection: close\r\n");
    match json {
        Some(json) => {
            request.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n\r\n{json}", json.len()))
        }
        None => request.push_str("\r\n"),
    }
    stream.write_all(request.as_bytes())?;
    let raw = read_response(&mut stream)?;
    parse_response(&raw).map_err(|msg| io::Error::new(io::ErrorKind::InvalidData, msg))
}

/// Reads until the response is complete: its `content-length`, the last chunk, or the end of
/// the connection (some servers, chromedriver among them, keep it open despite `close`).
fn read_response(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buffer[..n]);
        let Some(head_end) = find(&raw, b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        let length = head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim() == "content-length")
            .and_then(|(_, value)| value.trim().parse::<usize>().ok());
        let body = &raw[head_end + 4..];
        match length {
            Some(length) if body.len() >= length => return Ok(raw),
            None if head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n") => return Ok(raw),
            _ => {}
        }
    }
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let head_end =
        find(raw, b"\r\n\r\n").ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[head_end + 4..].to_vec();
    let chunked =
        headers.iter().any(|(key, value)| key == "transfer-encoding" && value.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(length) = headers.iter().find(|(key, _)| key == "content-length") {
        let length: usize = length.1.parse().map_err(|_| format!("bad content-length {:?}", length.1))?;
        body.truncate(length);
    }
    Ok(Response { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Calls `attempt` every `interval` until it returns `Ok` or `timeout` passes; the error then
/// carries the last attempt's message.
pub fn eventually<T>(
    timeout: Duration,
    interval: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(err) if Instant::now() >= deadline => {
                return Err(format!("still failing after {timeout:?}: {err}"));
            }
            Err(_) => std::thread::sleep(interval),
        }
    }
}

/// One request of a [`RequestLoop`].
#[derive(Debug, Clone)]
pub struct Sample {
    /// Since the loop started.
    pub at: Duration,
    /// The status, or the I/O error.
    pub status: Result<u16, String>,
    /// The client certificate CN the upstream reported (200s only).
    pub client_cn: Option<String>,
    /// Set when the request did not answer 200: what came back instead.
    pub detail: Option<String>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        self.status == Ok(200)
    }
}

/// Sends `GET path` every `interval` on a background thread until stopped (or dropped).
pub struct RequestLoop {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RequestLoop {
    pub fn start(addr: SocketAddr, path: &str, interval: Duration) -> RequestLoop {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("request-loop {path}"))
            .spawn({
                let samples = samples.clone();
                let stop = stop.clone();
                let path = path.to_owned();
                move || {
                    let started = Instant::now();
                    while !stop.load(Ordering::SeqCst) {
                        let next = Instant::now() + interval;
                        let sample = match get(addr, &path) {
                            Ok(response) if response.status == 200 => Sample {
                                at: started.elapsed(),
                                status: Ok(200),
                                client_cn: response.client_cn().ok().flatten(),
                                detail: None,
                            },
                            Ok(response) => Sample {
                                at: started.elapsed(),
                                status: Ok(response.status),
                                client_cn: None,
                                detail: Some(response.summary()),
                            },
                            Err(err) => Sample {
                                at: started.elapsed(),
                                status: Err(err.to_string()),
                                client_cn: None,
                                detail: Some(err.to_string()),
                            },
                        };
                        samples.lock().unwrap().push(sample);
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                }
            })
            .expect("spawning the request loop");
        RequestLoop { samples, stop, thread: Some(thread) }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> Vec<Sample> {
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

impl Drop for RequestLoop {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Describes the samples that did not answer 200 (at most `limit` of them), or `None` when all did.
pub fn failures(samples: &[Sample], limit: usize) -> Option<String> {
    let failed: Vec<&Sample> = samples.iter().filter(|sample| !sample.ok()).collect();
    if failed.is_empty() {
        return None;
    }
    let mut text = format!("{} of {} requests did not answer 200:", failed.len(), samples.len());
    for sample in failed.iter().take(limit) {
        text.push_str(&format!(
            "\n  at {:?}: {:?} {}",
            sample.at,
            sample.status,
            sample.detail.as_deref().unwrap_or_default()
        ));
    }
    Some(text)
}

/// Envoy's counters and gauges whose names match the regex `filter` (`/stats?filter=`), by name.
pub fn envoy_stats(admin: SocketAddr, filter: &str) -> Result<BTreeMap<String, u64>, String> {
    let path = format!("/stats?filter={}", percent_encode(filter));
    let response = get(admin, &path).map_err(|err| format!("Envoy admin {path}: {err}"))?;
    if response.status != 200 {
        return Err(format!("Envoy admin {path}: {}", response.summary()));
    }
    Ok(response
        .text()
        .lines()
        .filter_map(|line| line.rsplit_once(": "))
        .filter_map(|(name, value)| Some((name.to_owned(), value.trim().parse().ok()?)))
        .collect())
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Every `*.update_rejected` counter is 0 — Envoy NACKed nothing — and the CDS and LDS ones exist
/// (so the check is not vacuous).
pub fn check_no_rejected_updates(stats: &BTreeMap<String, u64>) -> Result<(), String> {
    for expected in ["cluster_manager.cds.update_rejected", "listener_manager.lds.update_rejected"] {
        if !stats.contains_key(expected) {
            return Err(format!("Envoy has no {expected} stat; update_rejected stats: {stats:?}"));
        }
    }
    let rejected: Vec<(&String, &u64)> = stats.iter().filter(|(_, value)| **value > 0).collect();
    if rejected.is_empty() {
        Ok(())
    } else {
        Err(format!("Envoy rejected xDS updates: {rejected:?}"))
    }
}
