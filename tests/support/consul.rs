//! A fake Consul agent for the tests: the real HTTP API on 127.0.0.1 (its own thread and tokio
//! runtime, stopped when dropped), in Consul's own JSON shapes:
//!
//! * `GET /v1/agent/connect/ca/roots`: `ActiveRootID`, `TrustDomain`, `Roots` (real CA
//!   certificates from a test CA, whose URI SAN is the SPIFFE trust domain);
//! * `GET /v1/agent/connect/ca/leaf/<service>`: a real leaf signed by the active root, with the
//!   URI SAN `spiffe://<trust domain>/ns/default/dc/dc1/svc/<service>` (made on first request);
//! * `GET /v1/health/service/<service>` and `/v1/health/connect/<service>` (the Connect proxies
//!   of a service), `passing=1` keeping only instances whose checks all pass, `dc` other than
//!   `dc1` answering 500 as Consul does without a path to it;
//! * blocking queries on every one of them: `index` and `wait` (`10s`, `500ms`, `1m`), the
//!   answer's `X-Consul-Index`; a request whose index is current waits for a change or the
//!   wait; one whose index is ahead (after [`FakeConsul::reset_indexes`]) answers at once with
//!   the lower index, as Consul does after a snapshot restore;
//! * ACLs ([`FakeConsul::require_token`]): `X-Consul-Token` (or `?token=`), 403 `Permission
//!   denied` without the right one;
//! * outages ([`FakeConsul::set_mode`]): 500s, or down (connections dropped, blocked queries
//!   cut).
//!
//! Every request is logged ([`FakeConsul::requests`]).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

pub const TRUST_DOMAIN: &str = "11111111-2222-3333-4444-555555555555.consul";
pub const DATACENTER: &str = "dc1";

/// How the agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Every request answers this status (500: an RPC error, no leader).
    Failing(u16),
    /// Connections are dropped as they come; open ones are cut.
    Down,
}

/// One CA root.
struct Root {
    id: String,
    name: String,
    pem: String,
    params: CertificateParams,
    key: KeyPair,
    index: u64,
}

/// A leaf as the agent serves it.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: String,
    pub index: u64,
}

#[derive(Debug, Clone)]
struct Instance {
    /// The service (for a proxy: the service it fronts).
    service: String,
    id: String,
    node: String,
    node_address: String,
    /// Empty: the node's address is the instance's.
    address: String,
    port: u16,
    passing: bool,
    /// A Connect proxy (`<service>-sidecar-proxy`), not the service itself.
    proxy: bool,
}

/// One request the agent answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub token: Option<String>,
    pub status: u16,
    /// How long it was held.
    pub held: Duration,
}

struct State_ {
    index: u64,
    roots: Vec<Root>,
    active: usize,
    roots_index: u64,
    leaves: BTreeMap<String, Leaf>,
    /// Service → index of its last health change (instances and proxies).
    health_index: BTreeMap<String, u64>,
    instances: Vec<Instance>,
    token: Option<String>,
    mode: Mode,
    requests: Vec<Request>,
    serial: u64,
    /// Leaves to serve garbage for (the leaf fails to parse).
    corrupt: bool,
}

struct Shared {
    state: Mutex<State_>,
    /// Changes that concern every query (mode, ACLs, indexes, the CA).
    changed: watch::Sender<u64>,
    /// Changes of one thing (`health/<service>`, `leaf/<service>`): only its queries wake, so
    /// thousands of blocked queries cost nothing when one service changes.
    topics: Mutex<std::collections::HashMap<String, watch::Sender<u64>>>,
    cuts: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn topic(&self, topic: &str) -> watch::Receiver<u64> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.entry(topic.to_string()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    fn bump_topic(&self, topic: &str) {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = topics.get(topic) {
            sender.send_modify(|n| *n += 1);
        }
    }
}

pub struct FakeConsul {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn new_root(number: u64, index: u64) -> Root {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, format!("Consul CA {number}"));
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{TRUST_DOMAIN}").try_into().unwrap())];
    let pem = params.self_signed(&key).expect("self-signing the CA").pem();
    let id = format!("{:02x}:{:02x}:{:02x}:{:02x}", number, number * 7 % 256, number * 13 % 256, index % 256);
    Root { id, name: format!("Consul CA Root Cert {number}"), pem, params, key, index }
}

/// A certificate for `service`'s SPIFFE ID, signed by `root` (serverAuth and clientAuth, as
/// Connect leaves are).
fn sign(root: &Root, service: &str, serial: u64) -> (String, String) {
    let key = KeyPair::generate().expect("a leaf key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, service.to_string());
    let uri = format!("spiffe://{TRUST_DOMAIN}/ns/default/dc/{DATACENTER}/svc/{service}");
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    let issuer = Issuer::from_params(&root.params, &root.key);
    let cert = params.signed_by(&key, &issuer).expect("signing a leaf");
    (cert.pem(), key.serialize_pem())
}

impl FakeConsul {
    /// An agent in datacenter `dc1` with one CA root, no ACLs, no services.
    pub fn start() -> FakeConsul {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fake Consul agent");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = State_ {
            index: 10,
            roots: vec![new_root(1, 10)],
            active: 0,
            roots_index: 10,
            leaves: BTreeMap::new(),
            health_index: BTreeMap::new(),
            instances: Vec::new(),
            token: None,
            mode: Mode::Up,
            requests: Vec::new(),
            serial: 100,
            corrupt: false,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: watch::channel(0).0,
            topics: Mutex::default(),
            cuts: AtomicU64::new(0),
        });
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-consul".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .expect("fake Consul runtime");
                    runtime.block_on(async move {
                        let listener = Listener {
                            inner: tokio::net::TcpListener::from_std(listener).unwrap(),
                            shared: shared.clone(),
                        };
                        let app = axum::Router::new().fallback(handle).with_state(shared);
                        tokio::select! {
                            _ = axum::serve(listener, app) => {}
                            _ = shutdown_rx => {}
                        }
                    });
                }
            })
            .expect("spawning the fake Consul agent");
        FakeConsul { addr, shared, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn change(&self, f: impl FnOnce(&mut State_)) {
        {
            let mut state = self.shared.lock();
            f(&mut state);
        }
        self.shared.bump();
    }

    /// A change of one topic only (see [`Shared::topics`]).
    fn change_topic(&self, topic: &str, f: impl FnOnce(&mut State_)) {
        {
            let mut state = self.shared.lock();
            f(&mut state);
        }
        self.shared.bump_topic(topic);
    }

    /// Requests without this ACL token answer 403 (`None`: ACLs off).
    pub fn require_token(&self, token: Option<&str>) {
        self.change(|s| s.token = token.map(str::to_owned));
    }

    pub fn set_mode(&self, mode: Mode) {
        self.change(|s| s.mode = mode);
        if mode == Mode::Down {
            self.shared.cuts.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A new key and certificate for `service`, from the active root.
    pub fn rotate_leaf(&self, service: &str) {
        self.change_topic(&format!("leaf/{service}"), |s| {
            s.index += 1;
            s.serial += 1;
            let (cert_pem, key_pem) = sign(&s.roots[s.active], service, s.serial);
            let leaf = Leaf { cert_pem, key_pem, serial: serial_text(s.serial), index: s.index };
            s.leaves.insert(service.to_string(), leaf);
        });
    }

    /// A new root becomes active (the old one stays among the roots); every leaf is re-signed
    /// by it, as Consul re-issues leaves after a CA rotation.
    pub fn rotate_root(&self) {
        self.change(|s| {
            s.index += 1;
            let number = s.roots.len() as u64 + 1;
            s.roots.push(new_root(number, s.index));
            s.active = s.roots.len() - 1;
            s.roots_index = s.index;
            let services: Vec<String> = s.leaves.keys().cloned().collect();
            for service in services {
                s.serial += 1;
                let (cert_pem, key_pem) = sign(&s.roots[s.active], &service, s.serial);
                let leaf = Leaf { cert_pem, key_pem, serial: serial_text(s.serial), index: s.index };
                s.leaves.insert(service, leaf);
            }
        });
    }

    /// The leaf endpoint answers a leaf whose certificate is not PEM (`false` heals it).
    pub fn corrupt_leaves(&self, corrupt: bool) {
        self.change(|s| {
            s.corrupt = corrupt;
            s.index += 1;
            for leaf in s.leaves.values_mut() {
                leaf.index = s.index;
            }
        });
    }

    /// Every index goes back (a snapshot restore): blocked clients must reset to 0.
    pub fn reset_indexes(&self) {
        self.change(|s| {
            s.index = 2;
            s.roots_index = 1;
            for leaf in s.leaves.values_mut() {
                leaf.index = 1;
            }
            for index in s.health_index.values_mut() {
                *index = 1;
            }
        });
    }

    /// Many instances at once (`(service, id, address, port)`), with one change per service.
    pub fn register_many(&self, instances: &[(String, String, String, u16)]) {
        let services: std::collections::BTreeSet<&String> = instances.iter().map(|(service, ..)| service).collect();
        {
            let mut s = self.shared.lock();
            s.index += 1;
            for (service, id, address, port) in instances {
                s.instances.push(Instance {
                    service: service.clone(),
                    id: id.clone(),
                    node: format!("node-{id}"),
                    node_address: "127.0.0.1".into(),
                    address: address.clone(),
                    port: *port,
                    passing: true,
                    proxy: false,
                });
                let index = s.index;
                s.health_index.insert(service.clone(), index);
            }
        }
        for service in services {
            self.shared.bump_topic(&format!("health/{service}"));
        }
    }

    /// Registers (or re-registers) an instance of `service` on `address:port`, passing. An empty
    /// `address` makes the node's address (127.0.0.1) the instance's.
    pub fn register(&self, service: &str, id: &str, address: &str, port: u16) {
        self.put_instance(service, id, address, port, false);
    }

    /// Registers a Connect proxy (`<service>-sidecar-proxy`) for `service`, passing.
    pub fn register_proxy(&self, service: &str, id: &str, address: &str, port: u16) {
        self.put_instance(service, id, address, port, true);
    }

    fn put_instance(&self, service: &str, id: &str, address: &str, port: u16, proxy: bool) {
        self.change_topic(&format!("health/{service}"), |s| {
            s.index += 1;
            s.instances.retain(|i| !(i.service == service && i.id == id && i.proxy == proxy));
            s.instances.push(Instance {
                service: service.to_string(),
                id: id.to_string(),
                node: format!("node-{id}"),
                node_address: "127.0.0.1".into(),
                address: address.to_string(),
                port,
                passing: true,
                proxy,
            });
            s.health_index.insert(service.to_string(), s.index);
        });
    }

    /// The checks of `service`'s instance (or proxy) `id` turn passing (`true`) or critical.
    pub fn set_passing(&self, service: &str, id: &str, passing: bool) {
        self.change_topic(&format!("health/{service}"), |s| {
            s.index += 1;
            for instance in s.instances.iter_mut().filter(|i| i.service == service && i.id == id) {
                instance.passing = passing;
            }
            s.health_index.insert(service.to_string(), s.index);
        });
    }

    pub fn deregister(&self, service: &str, id: &str) {
        self.change_topic(&format!("health/{service}"), |s| {
            s.index += 1;
            s.instances.retain(|i| !(i.service == service && i.id == id));
            s.health_index.insert(service.to_string(), s.index);
        });
    }

    /// The leaf `service` has now (made if it has none).
    pub fn leaf(&self, service: &str) -> Leaf {
        let mut s = self.shared.lock();
        ensure_leaf(&mut s, service).clone()
    }

    /// PEM of the active root.
    pub fn active_root_pem(&self) -> String {
        let s = self.shared.lock();
        s.roots[s.active].pem.clone()
    }

    /// PEM of every root.
    pub fn root_pems(&self) -> Vec<String> {
        self.shared.lock().roots.iter().map(|r| r.pem.clone()).collect()
    }

    /// A certificate and key for `service`'s identity from the active root, for a test upstream
    /// that stands in for its Connect sidecar.
    pub fn issue(&self, service: &str) -> (String, String) {
        let mut s = self.shared.lock();
        s.serial += 1;
        let serial = s.serial;
        sign(&s.roots[s.active], service, serial)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// A one-line account for failure messages.
    pub fn describe(&self) -> String {
        let s = self.shared.lock();
        let last: Vec<String> =
            s.requests.iter().rev().take(5).map(|r| format!("{} -> {}", r.path, r.status)).collect();
        format!(
            "fake Consul {}: mode {:?}, index {}, {} root(s), {} leaf(s), {} instance(s), {} request(s), last {:?}",
            self.addr,
            s.mode,
            s.index,
            s.roots.len(),
            s.leaves.len(),
            s.instances.len(),
            s.requests.len(),
            last
        )
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.shared.cuts.fetch_add(1, Ordering::SeqCst);
        self.shared.bump();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serial_text(serial: u64) -> String {
    serial.to_be_bytes().iter().skip_while(|b| **b == 0).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn ensure_leaf<'a>(s: &'a mut State_, service: &str) -> &'a Leaf {
    if !s.leaves.contains_key(service) {
        s.serial += 1;
        s.index += 1;
        let (cert_pem, key_pem) = sign(&s.roots[s.active], service, s.serial);
        let leaf = Leaf { cert_pem, key_pem, serial: serial_text(s.serial), index: s.index };
        s.leaves.insert(service.to_string(), leaf);
    }
    &s.leaves[service]
}

/// Go's duration syntax as Consul reads `wait` (`500ms`, `10s`, `1m`), capped at 10 minutes.
fn parse_wait(text: Option<&String>) -> Duration {
    let Some(text) = text else { return Duration::from_secs(300) };
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 = number.parse().unwrap_or(0);
    let wait = match unit {
        "ms" => Duration::from_millis(number),
        "s" | "" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        _ => Duration::from_secs(300),
    };
    wait.min(Duration::from_secs(600))
}

/// What one request asks for, evaluated against the state: (index, status, body).
fn answer(s: &mut State_, path: &str, query: &BTreeMap<String, String>) -> (u64, u16, Value) {
    let not_found = (s.index, 404, json!(format!("Unknown path {path}")));
    if let Some(dc) = query.get("dc") {
        if dc != DATACENTER {
            return (s.index, 500, json!(format!("No path to datacenter")));
        }
    }
    if path == "/v1/agent/connect/ca/roots" {
        let roots: Vec<Value> = s
            .roots
            .iter()
            .enumerate()
            .map(|(i, root)| {
                json!({"ID": root.id, "Name": root.name, "SerialNumber": i + 1, "SigningKeyID": root.id,
                       "ExternalTrustDomain": TRUST_DOMAIN, "NotBefore": "2025-01-01T00:00:00Z",
                       "NotAfter": "2035-01-01T00:00:00Z", "RootCert": root.pem, "IntermediateCerts": null,
                       "Active": i == s.active, "PrivateKeyType": "ec", "PrivateKeyBits": 256,
                       "CreateIndex": root.index, "ModifyIndex": root.index})
            })
            .collect();
        let body = json!({"ActiveRootID": s.roots[s.active].id, "TrustDomain": TRUST_DOMAIN, "Roots": roots});
        return (s.roots_index, 200, body);
    }
    if let Some(service) = path.strip_prefix("/v1/agent/connect/ca/leaf/") {
        let corrupt = s.corrupt;
        let leaf = ensure_leaf(s, service).clone();
        let cert = if corrupt {
            "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n".to_string()
        } else {
            leaf.cert_pem
        };
        let body = json!({"SerialNumber": leaf.serial, "CertPEM": cert, "PrivateKeyPEM": leaf.key_pem,
            "Service": service, "ServiceURI": format!("spiffe://{TRUST_DOMAIN}/ns/default/dc/{DATACENTER}/svc/{service}"),
            "ValidAfter": "2025-01-01T00:00:00Z", "ValidBefore": "2035-01-01T00:00:00Z",
            "CreateIndex": leaf.index, "ModifyIndex": leaf.index});
        return (leaf.index, 200, body);
    }
    let (connect, service) = if let Some(service) = path.strip_prefix("/v1/health/service/") {
        (false, service)
    } else if let Some(service) = path.strip_prefix("/v1/health/connect/") {
        (true, service)
    } else {
        return not_found;
    };
    let passing_only = query.get("passing").is_some_and(|v| v != "false" && v != "0");
    let index = s.health_index.get(service).copied().unwrap_or(1);
    let entries: Vec<Value> = s
        .instances
        .iter()
        .filter(|i| i.service == service && i.proxy == connect && (!passing_only || i.passing))
        .map(|i| {
            let name = if connect { format!("{service}-sidecar-proxy") } else { service.to_string() };
            let status = if i.passing { "passing" } else { "critical" };
            json!({
                "Node": {"ID": format!("{}-id", i.node), "Node": i.node, "Address": i.node_address, "Datacenter": DATACENTER},
                "Service": {"ID": i.id, "Service": name, "Tags": [], "Address": i.address, "Port": i.port,
                            "Kind": if connect { "connect-proxy" } else { "" },
                            "Proxy": if connect { json!({"DestinationServiceName": service}) } else { json!({}) },
                            "Weights": {"Passing": 1, "Warning": 1}},
                "Checks": [{"Node": i.node, "CheckID": format!("service:{}", i.id), "Name": format!("Service '{name}' check"),
                            "Status": status, "ServiceID": i.id, "ServiceName": name}]
            })
        })
        .collect();
    (index, 200, Value::Array(entries))
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let path = uri.path().to_string();
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let token = headers
        .get("X-Consul-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("token").cloned());
    let wanted: u64 = query.get("index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + parse_wait(query.get("wait"));
    let mut changes = shared.changed.subscribe();
    let topic = if let Some(service) = path.strip_prefix("/v1/agent/connect/ca/leaf/") {
        format!("leaf/{service}")
    } else if let Some(service) =
        path.strip_prefix("/v1/health/service/").or_else(|| path.strip_prefix("/v1/health/connect/"))
    {
        format!("health/{service}")
    } else {
        "roots".to_string()
    };
    let mut topic_changes = shared.topic(&topic);
    let (status, index, body) = loop {
        let (status, index, body, blocked) = {
            let mut s = shared.lock();
            match s.mode {
                // Never delivered: the connection is cut.
                Mode::Down => (0, s.index, json!("down"), false),
                Mode::Failing(code) => (code, s.index, json!("rpc error making call: No cluster leader"), false),
                _ if s.token.is_some() && token != s.token => {
                    let message = match &token {
                        None => "Permission denied: anonymous token lacks permission".to_string(),
                        Some(_) => "ACL not found".to_string(),
                    };
                    (403, s.index, json!(message), false)
                }
                _ => {
                    let (index, status, body) = answer(&mut s, &path, &query);
                    // Blocks while the client's index is the current one.
                    (status, index, body, status == 200 && wanted > 0 && wanted == index)
                }
            }
        };
        if !blocked || tokio::time::Instant::now() >= deadline {
            break (status, index, body);
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = topic_changes.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    };
    shared.lock().requests.push(Request { at: started, path, query, token, status, held: started.elapsed() });
    let text = match &body {
        Value::String(text) if status != 200 => text.clone(),
        other => other.to_string(),
    };
    Response::builder()
        .status(StatusCode::from_u16(status.max(200)).unwrap())
        .header("Content-Type", if status == 200 { "application/json" } else { "text/plain" })
        .header("X-Consul-Index", index.to_string())
        .header("X-Consul-KnownLeader", "true")
        .body(Body::from(text))
        .unwrap()
}

/// Drops connections while the agent is down.
struct Listener {
    inner: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            let Ok((stream, addr)) = self.inner.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            if self.shared.lock().mode == Mode::Down {
                continue;
            }
            let cuts = self.shared.cuts.load(Ordering::SeqCst);
            return (Connection { stream, shared: self.shared.clone(), cuts }, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that fails once the agent went down after it was accepted.
struct Connection {
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    cuts: u64,
}

impl Connection {
    fn check(&self) -> std::io::Result<()> {
        if self.shared.cuts.load(Ordering::SeqCst) == self.cuts {
            Ok(())
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the fake Consul agent went down"))
        }
    }
}

impl tokio::io::AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
