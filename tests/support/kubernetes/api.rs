//! A fake Kubernetes API server for the tests: plain HTTP/1.1 on 127.0.0.1, its own thread and
//! tokio runtime, stopped when dropped. It speaks the protocol kube-rs (and client-go) use:
//!
//! * discovery: `/version`, `/api` (APIVersions), `/api/v1` (APIResourceList), `/apis`
//!   (APIGroupList), `/apis/<group>` (APIGroup, `preferredVersion` by Kubernetes' version
//!   priority: GA > beta > alpha, so `v2` before `v3alpha1` as in a real Emissary cluster) and
//!   `/apis/<group>/<version>` (APIResourceList);
//! * collections, cluster-wide (`/apis/g/v/mappings`, `/api/v1/secrets`) and per namespace
//!   (`.../namespaces/<ns>/mappings`); single objects (`.../namespaces/<ns>/<plural>/<name>`);
//! * LIST: `{"kind":"MappingList","metadata":{"resourceVersion":"N"},"items":[...]}`, `limit` and
//!   `continue` honoured (see [`FakeKube::set_max_page`]); items of custom resources carry
//!   `apiVersion`/`kind`, items of core kinds do not (as a real API server encodes them);
//! * WATCH (`?watch=true&resourceVersion=N`): a chunked stream of newline-delimited
//!   `{"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}`; every change
//!   after `N` is replayed from the history, then new ones follow; `resourceVersion` `0` or absent
//!   starts with synthetic ADDED events for what exists; BOOKMARKs (when
//!   `allowWatchBookmarks=true`) every [`FakeKube::set_bookmark_interval`]; `timeoutSeconds`
//!   ends the stream cleanly; a resourceVersion older than the history answers HTTP 200 with one
//!   `ERROR` event (`410`, `Expired`, "too old resource version: N (M)") and ends, exactly as
//!   the API server's watch cache does;
//! * `fieldSelector` on LIST and WATCH ([`selector`]: `metadata.name`, `metadata.namespace`, and
//!   a Secret's `type`; `=`, `==`, `!=`, comma = AND; another field label is a 400): a watched
//!   object that stops matching on update arrives as DELETED, one that starts matching as
//!   ADDED, as from the API server's watch cache. (A real API server refuses to change a
//!   Secret's `type`; the fake does not, so that transition can be tested at all.)
//!
//! Every object lives once, under (group, plural, namespace, name), and is served in whichever
//! version a request names (`apiVersion` rewritten: the Ambassador kinds used by the tests have
//! the same fields in v2 and v3alpha1, so this stands in for the CRD conversion of a real cluster).
//! There is one resourceVersion counter for all kinds, as in etcd.
//!
//! Failure controls: [`FakeKube::kill_watches`] (abrupt, mid-line), [`FakeKube::close_watches`]
//! (clean end of stream), [`FakeKube::pause_watches`] (open watches stall),
//! [`FakeKube::expire_history`] (410 Gone for every older resourceVersion),
//! [`FakeKube::set_available`] (503 for everything, open watches cut), [`FakeKube::fail_paths`]
//! (503 for one collection), [`FakeKube::set_reachable`] (server down: connections dropped),
//! [`FakeKube::serve_ambassador_versions`] (which `getambassador.io` versions exist; none = CRDs
//! not installed). Every request is logged ([`FakeKube::requests`]).
//!
//! Why a 410 is an `ERROR` event and not an HTTP 410: kube-rs 5 relists only on the event; an
//! HTTP error on the watch request leaves it retrying the same resourceVersion (after backoff)
//! forever. And a 503 is retried inside kube-rs' client (from 5 ms, doubling, 15 times) before
//! its watcher sees an error, while dropped connections reach the watcher (0.8 s backoff) at once.

#[path = "selector.rs"]
mod selector;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use selector::FieldSelector;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

pub const AMBASSADOR_GROUP: &str = "getambassador.io";
/// The bearer token of the kubeconfig [`FakeKube::write_kubeconfig`] writes.
pub const TOKEN: &str = "fake-kube-token";
const CREATED: &str = "2025-01-01T00:00:00Z";

/// A kind the server knows. `version: None`: every served version of the group has it.
#[derive(Debug)]
struct KindInfo {
    group: &'static str,
    version: Option<&'static str>,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
}

const KINDS: &[KindInfo] = &[
    KindInfo {
        group: "",
        version: Some("v1"),
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
    },
    KindInfo {
        group: "",
        version: Some("v1"),
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
    },
    KindInfo {
        group: "",
        version: Some("v1"),
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
    },
    KindInfo {
        group: "apps",
        version: Some("v1"),
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "Mapping",
        plural: "mappings",
        singular: "mapping",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "TLSContext",
        plural: "tlscontexts",
        singular: "tlscontext",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "Host",
        plural: "hosts",
        singular: "host",
        short_names: &[],
    },
    KindInfo {
        group: "discovery.k8s.io",
        version: Some("v1"),
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        short_names: &[],
    },
    KindInfo {
        group: "coordination.k8s.io",
        version: Some("v1"),
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "Module",
        plural: "modules",
        singular: "module",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "TCPMapping",
        plural: "tcpmappings",
        singular: "tcpmapping",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "AuthService",
        plural: "authservices",
        singular: "authservice",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "RateLimitService",
        plural: "ratelimitservices",
        singular: "ratelimitservice",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "ConsulResolver",
        plural: "consulresolvers",
        singular: "consulresolver",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "KubernetesEndpointResolver",
        plural: "kubernetesendpointresolvers",
        singular: "kubernetesendpointresolver",
        short_names: &[],
    },
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: None,
        kind: "KubernetesServiceResolver",
        plural: "kubernetesserviceresolvers",
        singular: "kubernetesserviceresolver",
        short_names: &[],
    },
    // Emissary's Listener CRD exists only in v3alpha1.
    KindInfo {
        group: AMBASSADOR_GROUP,
        version: Some("v3alpha1"),
        kind: "Listener",
        plural: "listeners",
        singular: "listener",
        short_names: &[],
    },
];

fn kind_by_name(group: &str, kind: &str) -> &'static KindInfo {
    KINDS
        .iter()
        .find(|info| info.group == group && info.kind == kind)
        .unwrap_or_else(|| panic!("the fake API server knows no kind {kind} in group {group:?}"))
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

fn join_api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: &'static str,
    plural: &'static str,
    namespace: String,
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One write, kept for watches that resume from an earlier resourceVersion.
struct Change {
    rv: u64,
    key: Key,
    event: EventType,
    object: Value,
    /// The object before this write (for selectors: whether a watch saw it before).
    previous: Option<Value>,
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Position in the log, from 0.
    pub seq: usize,
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The HTTP status (200 for watches, whatever their stream then carried).
    pub status: u16,
    pub authorization: Option<String>,
}

impl Logged {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch"), Some("true" | "1"))
    }

    /// A GET of `path` that is not a watch.
    pub fn is_list_of(&self, path: &str) -> bool {
        self.method == "GET" && self.path == path && !self.is_watch()
    }

    pub fn is_watch_of(&self, path: &str) -> bool {
        self.method == "GET" && self.path == path && self.is_watch()
    }

    /// The plural name of the collection this request is about (`mappings`, `secrets`), if any.
    pub fn collection(&self) -> Option<&str> {
        match parse_path(&self.path) {
            Route::Collection { plural, .. } | Route::Object { plural, .. } => Some(plural),
            _ => None,
        }
    }

    /// The namespace of a namespaced collection request.
    pub fn namespace(&self) -> Option<&str> {
        match parse_path(&self.path) {
            Route::Collection { namespace, .. } => namespace,
            Route::Object { namespace, .. } => Some(namespace),
            _ => None,
        }
    }
}

impl fmt::Display for Logged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query: Vec<String> = self.query.iter().map(|(key, value)| format!("{key}={value}")).collect();
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        write!(f, "#{} {} {}{} -> {}", self.seq, self.method, self.path, query, self.status)
    }
}

/// An `ERROR` event the server put on a watch stream.
#[derive(Debug, Clone)]
pub struct SentError {
    pub at: Instant,
    pub path: String,
    pub code: u16,
    pub message: String,
}

struct Inner {
    addr: SocketAddr,
    rv: u64,
    /// Watches (and continue tokens) from a resourceVersion below this get 410 Gone.
    oldest_valid: u64,
    next_uid: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    available: bool,
    ambassador_versions: Vec<String>,
    /// Bumped by `kill_watches` / `set_available(false)`: open watches abort.
    kills: u64,
    /// Bumped by `close_watches`: open watches end cleanly.
    closes: u64,
    paused: bool,
    bookmark_interval: Option<Duration>,
    max_page: Option<usize>,
    /// Requests whose path starts with one of these are answered 503.
    failing: Vec<String>,
    requests: Vec<Logged>,
    errors_sent: Vec<SentError>,
    open_watches: usize,
    /// `false`: connections are accepted and dropped at once (the API server is down).
    reachable: bool,
    /// When connections were dropped for that.
    refused: Vec<Instant>,
    /// `false`: `fieldSelector` is ignored (every object is sent), as by this fake before it had one.
    field_selectors: bool,
    /// How many times each object was sent, in a LIST page or a watch event.
    sent: BTreeMap<Key, usize>,
    /// Which leaf fields of each object each field manager last applied (server-side apply).
    owners: BTreeMap<Key, BTreeMap<String, std::collections::BTreeSet<Vec<String>>>>,
    /// Every write answered 2xx.
    writes: Vec<Written>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Bumped after every change of `inner` that open watches must look at.
    wake: watch::Sender<u64>,
    /// Bumped by `set_reachable(false)`: every open connection fails on its next read or write.
    cuts: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake_watches(&self) {
        self.wake.send_modify(|n| *n += 1);
    }
}

pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeKube {
    /// A server on a free port serving `getambassador.io` v2 and v3alpha1, with bookmarks every
    /// second, no objects, resourceVersion 1.
    pub fn start() -> FakeKube {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fake API server");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                addr,
                rv: 1,
                oldest_valid: 1,
                next_uid: 1,
                objects: BTreeMap::new(),
                history: Vec::new(),
                available: true,
                ambassador_versions: vec!["v2".into(), "v3alpha1".into()],
                kills: 0,
                closes: 0,
                paused: false,
                bookmark_interval: Some(Duration::from_secs(1)),
                max_page: None,
                failing: Vec::new(),
                requests: Vec::new(),
                errors_sent: Vec::new(),
                open_watches: 0,
                reachable: true,
                refused: Vec::new(),
                field_selectors: true,
                sent: BTreeMap::new(),
                owners: BTreeMap::new(),
                writes: Vec::new(),
            }),
            wake: watch::channel(0).0,
            cuts: AtomicU64::new(0),
        });
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-kube-apiserver".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("fake API server runtime");
                    // Dropping the runtime at the end cancels every connection and watch still open.
                    runtime.block_on(async move {
                        let listener = FakeListener {
                            inner: tokio::net::TcpListener::from_std(listener).expect("fake API listener"),
                            shared: shared.clone(),
                        };
                        let app = axum::Router::new().fallback(handle).with_state(shared);
                        tokio::select! {
                            result = axum::serve(listener, app) => {
                                if let Err(err) = result {
                                    eprintln!("fake API server stopped: {err}");
                                }
                            }
                            _ = shutdown_rx => {}
                        }
                    });
                }
            })
            .expect("spawning the fake API server");
        FakeKube { addr, shared, shutdown: Some(shutdown), thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context points at this server (plain HTTP, a bearer token).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: tester\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: default\ncurrent-context: fake\npreferences: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) {
        std::fs::write(path, self.kubeconfig()).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
    }

    /// Creates or replaces every object in a YAML (or JSON) stream, like `kubectl apply`; returns
    /// the resourceVersion of the last write. Namespace `default` when the object names none.
    pub fn apply(&self, manifest: &str) -> u64 {
        let mut rv = 0;
        for document in serde_yaml::Deserializer::from_str(manifest) {
            let value: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|err| panic!("fake API apply: not YAML ({err}):\n{manifest}"));
            if value.is_null() {
                continue;
            }
            rv = self.apply_value(value);
        }
        assert!(rv > 0, "fake API apply: no object in\n{manifest}");
        rv
    }

    /// Creates or replaces `object` as `kubectl apply` does (see [`Self::apply`]).
    pub fn apply_value(&self, object: Value) -> u64 {
        self.write(object, true)
    }

    /// Creates or replaces `object` as a controller does (Helm storing a release, say): without
    /// the `last-applied-configuration` annotation `kubectl apply` leaves.
    pub fn create_value(&self, object: Value) -> u64 {
        self.write(object, false)
    }

    fn write(&self, mut object: Value, last_applied: bool) -> u64 {
        let applied = last_applied.then(|| object.clone());
        let api_version = object["apiVersion"].as_str().expect("apply: apiVersion").to_owned();
        let kind = object["kind"].as_str().expect("apply: kind").to_owned();
        let (group, _) = split_api_version(&api_version);
        let info = kind_by_name(group, &kind);
        let metadata = object
            .as_object_mut()
            .expect("apply: an object")
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("apply: metadata is an object");
        let name = metadata.get("name").and_then(Value::as_str).expect("apply: metadata.name").to_owned();
        let namespace = metadata.get("namespace").and_then(Value::as_str).unwrap_or("default").to_owned();
        if info.kind == "Secret" {
            secret_string_data_to_data(&mut object);
        }
        let key = Key { group: info.group, plural: info.plural, namespace: namespace.clone(), name };

        let mut inner = self.shared.lock();
        inner.rv += 1;
        let rv = inner.rv;
        let existing = inner.objects.get(&key).cloned();
        let uid = match existing.as_ref().and_then(|old| old["metadata"]["uid"].as_str()) {
            Some(uid) => uid.to_owned(),
            None => {
                inner.next_uid += 1;
                format!("6f1c0de0-0000-4000-8000-{:012x}", inner.next_uid)
            }
        };
        let metadata = object["metadata"].as_object_mut().unwrap();
        metadata.insert("namespace".into(), json!(namespace));
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("resourceVersion".into(), json!(rv.to_string()));
        metadata.insert(
            "creationTimestamp".into(),
            existing.as_ref().map_or(json!(CREATED), |old| old["metadata"]["creationTimestamp"].clone()),
        );
        if !info.group.is_empty() {
            let generation = existing.as_ref().and_then(|old| old["metadata"]["generation"].as_u64()).unwrap_or(0);
            metadata.insert("generation".into(), json!(generation + 1));
        }
        // What `kubectl apply` leaves on every object (for a Secret, that includes its data).
        if let Some(applied) = applied {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    "kubectl.kubernetes.io/last-applied-configuration".into(),
                    json!(format!("{}\n", serde_json::to_string(&applied).unwrap())),
                );
            }
        }
        let manager = if last_applied { "kubectl-client-side-apply" } else { "controller" };
        metadata.insert(
            "managedFields".into(),
            json!([{
                "manager": manager,
                "operation": "Update",
                "apiVersion": api_version,
                "time": CREATED,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {".": {}}}}
            }]),
        );
        let event = if existing.is_some() { EventType::Modified } else { EventType::Added };
        inner.objects.insert(key.clone(), object.clone());
        inner.history.push(Change { rv, key, event, object, previous: existing });
        drop(inner);
        self.shared.wake_watches();
        rv
    }

    /// Deletes `kind` `namespace/name` (the kind's name alone: `Mapping`, `Secret`); returns the
    /// resourceVersion of the deletion. Panics when there is no such object.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> u64 {
        let info = KINDS
            .iter()
            .find(|info| info.kind == kind)
            .unwrap_or_else(|| panic!("the fake API server knows no kind {kind}"));
        let key = Key { group: info.group, plural: info.plural, namespace: namespace.into(), name: name.into() };
        let mut inner = self.shared.lock();
        let mut object =
            inner.objects.remove(&key).unwrap_or_else(|| panic!("fake API delete: no {kind} {namespace}/{name}"));
        let previous = Some(object.clone());
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        inner.history.push(Change { rv, key, event: EventType::Deleted, object, previous });
        drop(inner);
        self.shared.wake_watches();
        rv
    }

    /// The stored object, as the server holds it.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let info = KINDS.iter().find(|info| info.kind == kind)?;
        let key = Key { group: info.group, plural: info.plural, namespace: namespace.into(), name: name.into() };
        self.shared.lock().objects.get(&key).cloned()
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Cuts every open watch abruptly: half an event line, then the connection drops (no final chunk).
    pub fn kill_watches(&self) {
        self.shared.lock().kills += 1;
        self.shared.wake_watches();
    }

    /// Ends every open watch cleanly (final chunk), as an API server does at `timeoutSeconds`.
    pub fn close_watches(&self) {
        self.shared.lock().closes += 1;
        self.shared.wake_watches();
    }

    /// Open watches (and new ones) stop delivering events and bookmarks until [`Self::resume_watches`];
    /// an expiry ([`Self::expire_history`]) still reaches them.
    pub fn pause_watches(&self) {
        self.shared.lock().paused = true;
        self.shared.wake_watches();
    }

    pub fn resume_watches(&self) {
        self.shared.lock().paused = false;
        self.shared.wake_watches();
    }

    /// Compaction: the resourceVersion moves on (as another write would) and every earlier one is
    /// too old. Open watches get an `ERROR` event with 410 `Expired` and end; so does every watch
    /// that resumes from an earlier resourceVersion. A relist gets the new one.
    pub fn expire_history(&self) {
        let mut inner = self.shared.lock();
        inner.rv += 1;
        inner.oldest_valid = inner.rv;
        let oldest = inner.oldest_valid;
        inner.history.retain(|change| change.rv >= oldest);
        drop(inner);
        self.shared.wake_watches();
    }

    /// `false`: every request is answered 503 (a `Status`), and open watches are cut. Writes through
    /// [`Self::apply`] still land (another API server took them) and are seen after recovery.
    pub fn set_available(&self, available: bool) {
        let mut inner = self.shared.lock();
        inner.available = available;
        if !available {
            inner.kills += 1;
        }
        drop(inner);
        self.shared.wake_watches();
    }

    /// `false`: the API server is down: new connections are dropped as soon as they are accepted,
    /// open ones (kept alive by the client, watches) fail on their next read or write. Writes
    /// through [`Self::apply`] still land and are seen after recovery.
    pub fn set_reachable(&self, reachable: bool) {
        let mut inner = self.shared.lock();
        inner.reachable = reachable;
        if !reachable {
            inner.kills += 1;
            self.shared.cuts.fetch_add(1, Ordering::SeqCst);
        }
        drop(inner);
        self.shared.wake_watches();
    }

    /// When connections were dropped because the server was unreachable.
    pub fn refused_connections(&self) -> Vec<Instant> {
        self.shared.lock().refused.clone()
    }

    /// Which `getambassador.io` versions discovery shows and collections answer; none: the group
    /// (the CRDs) does not exist. Objects stay stored either way.
    pub fn serve_ambassador_versions(&self, versions: &[&str]) {
        self.shared.lock().ambassador_versions = versions.iter().map(|v| (*v).to_owned()).collect();
    }

    /// BOOKMARK events on watches that ask for them, this often (`None`: never).
    pub fn set_bookmark_interval(&self, interval: Option<Duration>) {
        self.shared.lock().bookmark_interval = interval;
        self.shared.wake_watches();
    }

    /// At most this many items per LIST page, whatever `limit` asks (the API allows fewer): more
    /// objects than that are listed through `continue` tokens.
    pub fn set_max_page(&self, max: Option<usize>) {
        self.shared.lock().max_page = max;
    }

    /// Requests whose path starts with one of `prefixes` are answered 503 (one collection down,
    /// the rest working); an empty list heals them.
    pub fn fail_paths(&self, prefixes: &[&str]) {
        self.shared.lock().failing = prefixes.iter().map(|prefix| (*prefix).to_owned()).collect();
    }

    /// `false`: `fieldSelector` is ignored and every object of a collection is sent (what this
    /// fake did before it had selectors; for measuring what a selector saves).
    pub fn honour_field_selectors(&self, honour: bool) {
        self.shared.lock().field_selectors = honour;
    }

    /// How many times `kind` `namespace/name` was sent to a client, in a LIST page or a watch event.
    pub fn times_sent(&self, kind: &str, namespace: &str, name: &str) -> usize {
        let Some(info) = KINDS.iter().find(|info| info.kind == kind) else { return 0 };
        let key = Key { group: info.group, plural: info.plural, namespace: namespace.into(), name: name.into() };
        self.shared.lock().sent.get(&key).copied().unwrap_or(0)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.lock().requests.clone()
    }

    /// The requests after the first `since` (see [`Self::request_count`]).
    pub fn requests_since(&self, since: usize) -> Vec<Logged> {
        self.shared.lock().requests.get(since..).map(<[Logged]>::to_vec).unwrap_or_default()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// `ERROR` events put on watch streams so far.
    pub fn errors_sent(&self) -> Vec<SentError> {
        self.shared.lock().errors_sent.clone()
    }

    pub fn open_watches(&self) -> usize {
        self.shared.lock().open_watches
    }

    /// A handle for failure messages.
    pub fn observer(&self) -> ApiObserver {
        ApiObserver { shared: self.shared.clone() }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads the fake API server's record without owning it.
#[derive(Clone)]
pub struct ApiObserver {
    shared: Arc<Shared>,
}

impl ApiObserver {
    /// The state and the last `lines` requests.
    pub fn describe(&self, lines: usize) -> String {
        let inner = self.shared.lock();
        let mut text = format!(
            "fake API server {}: resourceVersion {}, oldest valid {}, reachable {} ({} connection(s) dropped), available {}, paused {}, getambassador.io versions {:?}, {} open watch(es), {} request(s), {} watch error(s) sent",
            inner.addr,
            inner.rv,
            inner.oldest_valid,
            inner.reachable,
            inner.refused.len(),
            inner.available,
            inner.paused,
            inner.ambassador_versions,
            inner.open_watches,
            inner.requests.len(),
            inner.errors_sent.len(),
        );
        for logged in &inner.requests[inner.requests.len().saturating_sub(lines)..] {
            text.push_str(&format!("\n  {logged}"));
        }
        text
    }
}

/// Accepts connections for axum; drops them while the server is unreachable.
struct FakeListener {
    inner: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for FakeListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let mut inner = self.shared.lock();
            if !inner.reachable {
                inner.refused.push(Instant::now());
                continue; // dropped: the client sees the connection close before any response
            }
            let cuts = self.shared.cuts.load(Ordering::SeqCst);
            return (Connection { stream, shared: self.shared.clone(), cuts }, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that fails once the server has been made unreachable after it was accepted.
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
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the fake API server went down"))
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

/// What `kubectl apply` of a Secret with `stringData` stores: the strings, base64, under `data`.
fn secret_string_data_to_data(object: &mut Value) {
    let Some(map) = object.as_object_mut() else { return };
    let Some(Value::Object(strings)) = map.remove("stringData") else { return };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default();
            data.insert(key, json!(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
    map.entry("type").or_insert_with(|| json!("Opaque"));
}

#[path = "writes.rs"]
mod writes;
use writes::WriteRequest;
pub use writes::Written;

// ---- HTTP ----

#[derive(Debug)]
enum Route<'a> {
    Version,
    CoreVersions,
    CoreResources,
    Groups,
    Group { group: &'a str },
    GroupResources { group: &'a str, version: &'a str },
    Collection { group: &'a str, version: &'a str, plural: &'a str, namespace: Option<&'a str> },
    Object { group: &'a str, version: &'a str, plural: &'a str, namespace: &'a str, name: &'a str },
    Unknown,
}

fn parse_path(path: &str) -> Route<'_> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["api", "v1"] => Route::CoreResources,
        ["api", version, plural] => Route::Collection { group: "", version, plural, namespace: None },
        ["api", version, "namespaces", namespace, plural] => {
            Route::Collection { group: "", version, plural, namespace: Some(namespace) }
        }
        ["api", version, "namespaces", namespace, plural, name] => {
            Route::Object { group: "", version, plural, namespace, name }
        }
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group { group },
        ["apis", group, version] => Route::GroupResources { group, version },
        ["apis", group, version, plural] => Route::Collection { group, version, plural, namespace: None },
        ["apis", group, version, "namespaces", namespace, plural] => {
            Route::Collection { group, version, plural, namespace: Some(namespace) }
        }
        ["apis", group, version, "namespaces", namespace, plural, name] => {
            Route::Object { group, version, plural, namespace, name }
        }
        _ => Route::Unknown,
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|byte| (*byte as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn json_response(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn not_found(what: &str) -> (u16, Value) {
    (404, status_object(404, "NotFound", &format!("the server could not find the requested resource ({what})")))
}

/// A collection the server serves at a given version.
#[derive(Debug, Clone)]
struct Scope {
    info: &'static KindInfo,
    version: String,
    namespace: Option<String>,
    selector: FieldSelector,
}

impl Scope {
    fn api_version(&self) -> String {
        join_api_version(self.info.group, &self.version)
    }

    fn matches(&self, key: &Key) -> bool {
        key.group == self.info.group
            && key.plural == self.info.plural
            && self.namespace.as_ref().is_none_or(|namespace| *namespace == key.namespace)
    }

    /// In this collection and selected by its field selector.
    fn selects(&self, key: &Key, object: &Value) -> bool {
        self.matches(key) && self.selector.matches(object)
    }

    /// The object as this version presents it.
    fn present(&self, object: &Value) -> Value {
        let mut object = object.clone();
        object["apiVersion"] = json!(self.api_version());
        object["kind"] = json!(self.info.kind);
        object
    }
}

/// What a watch request starts with.
struct WatchStart {
    scope: Scope,
    path: String,
    from: u64,
    initial: Vec<String>,
    bookmarks: bool,
    timeout: Duration,
    kills: u64,
    closes: u64,
}

enum Reply {
    Json(u16, Value),
    Watch(WatchStart),
}

impl Inner {
    fn served_versions(&self, group: &str) -> Vec<String> {
        match group {
            "" | "apps" | "discovery.k8s.io" | "coordination.k8s.io" => vec!["v1".into()],
            AMBASSADOR_GROUP => sort_by_priority(self.ambassador_versions.clone()),
            _ => Vec::new(),
        }
    }

    fn kinds_at(&self, group: &str, version: &str) -> Vec<&'static KindInfo> {
        if !self.served_versions(group).iter().any(|served| served == version) {
            return Vec::new();
        }
        KINDS.iter().filter(|info| info.group == group && info.version.is_none_or(|only| only == version)).collect()
    }

    fn scope(&self, group: &str, version: &str, plural: &str, namespace: Option<&str>) -> Option<Scope> {
        let info = self.kinds_at(group, version).into_iter().find(|info| info.plural == plural)?;
        Some(Scope {
            info,
            version: version.to_owned(),
            namespace: namespace.map(str::to_owned),
            selector: Default::default(),
        })
    }

    fn group_document(&self, group: &str) -> Option<Value> {
        let versions = self.served_versions(group);
        let first = versions.first()?;
        let entry = |version: &String| json!({"groupVersion": join_api_version(group, version), "version": version});
        Some(json!({
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": versions.iter().map(entry).collect::<Vec<_>>(),
            "preferredVersion": entry(first),
        }))
    }

    fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let kinds = self.kinds_at(group, version);
        if kinds.is_empty() {
            return None;
        }
        let resources: Vec<Value> = kinds
            .iter()
            .map(|info| {
                let mut resource = json!({
                    "name": info.plural,
                    "singularName": info.singular,
                    "namespaced": true,
                    "kind": info.kind,
                    "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
                    "storageVersionHash": format!("fake{}", info.plural.len()),
                });
                if !info.short_names.is_empty() {
                    resource["shortNames"] = json!(info.short_names);
                }
                if info.group == AMBASSADOR_GROUP {
                    resource["categories"] = json!(["ambassador-crds"]);
                }
                resource
            })
            .collect();
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": join_api_version(group, version),
            "resources": resources,
        }))
    }

    fn route(
        &mut self,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        write: Option<&WriteRequest>,
    ) -> Reply {
        let param = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        if !self.available || self.failing.iter().any(|prefix| path.starts_with(prefix.as_str())) {
            return Reply::Json(
                503,
                status_object(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
            );
        }
        if method != Method::GET {
            let (status, body) = self.write(method, path, query, write);
            return Reply::Json(status, body);
        }
        let (status, body) = match parse_path(path) {
            Route::Version => (
                200,
                json!({
                    "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "0000000",
                    "gitTreeState": "clean", "buildDate": CREATED, "goVersion": "go1.24.0",
                    "compiler": "gc", "platform": "linux/amd64"
                }),
            ),
            Route::CoreVersions => (
                200,
                json!({
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.addr.to_string()}],
                }),
            ),
            Route::CoreResources => (200, self.resource_list("", "v1").unwrap()),
            Route::Groups => {
                let groups: Vec<Value> = ["apps", "coordination.k8s.io", "discovery.k8s.io", AMBASSADOR_GROUP]
                    .iter()
                    .filter_map(|group| self.group_document(group))
                    .collect();
                (200, json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
            }
            Route::Group { group } => match self.group_document(group) {
                Some(document) => (200, document),
                None => not_found(path),
            },
            Route::GroupResources { group, version } => match self.resource_list(group, version) {
                Some(list) => (200, list),
                None => not_found(path),
            },
            Route::Collection { group, version, plural, namespace } => {
                let Some(mut scope) = self.scope(group, version, plural, namespace) else {
                    let (status, body) = not_found(path);
                    return Reply::Json(status, body);
                };
                match FieldSelector::parse(scope.info.kind, param("fieldSelector").unwrap_or_default()) {
                    Ok(selector) if self.field_selectors => scope.selector = selector,
                    Ok(_) => {}
                    Err(message) => return Reply::Json(400, status_object(400, "BadRequest", &message)),
                }
                if matches!(param("watch"), Some("true" | "1")) {
                    return self.start_watch(
                        scope,
                        path,
                        param("resourceVersion"),
                        param("allowWatchBookmarks"),
                        param("timeoutSeconds"),
                    );
                }
                self.list(
                    &scope,
                    param("limit"),
                    param("continue"),
                    param("resourceVersion"),
                    param("resourceVersionMatch"),
                )
            }
            Route::Object { group, version, plural, namespace, name } => {
                match self.scope(group, version, plural, Some(namespace)) {
                    Some(scope) => {
                        let key = Key {
                            group: scope.info.group,
                            plural: scope.info.plural,
                            namespace: namespace.to_owned(),
                            name: name.to_owned(),
                        };
                        match self.objects.get(&key) {
                            Some(object) => (200, scope.present(object)),
                            None => (
                                404,
                                status_object(
                                    404,
                                    "NotFound",
                                    &format!("{}.{} \"{name}\" not found", scope.info.plural, scope.info.group),
                                ),
                            ),
                        }
                    }
                    None => not_found(path),
                }
            }
            Route::Unknown => not_found(path),
        };
        Reply::Json(status, body)
    }

    fn list(
        &mut self,
        scope: &Scope,
        limit: Option<&str>,
        continue_token: Option<&str>,
        resource_version: Option<&str>,
        version_match: Option<&str>,
    ) -> (u16, Value) {
        let expired = |rv: u64| {
            (
                410,
                status_object(
                    410,
                    "Expired",
                    &format!("The provided continue parameter is too old to display a consistent list result. (resourceVersion {rv})"),
                ),
            )
        };
        let (list_rv, offset) = match continue_token {
            Some(token) => {
                let Some((rv, offset)) = token
                    .split_once(':')
                    .and_then(|(rv, offset)| Some((rv.parse::<u64>().ok()?, offset.parse::<usize>().ok()?)))
                else {
                    return (400, status_object(400, "BadRequest", &format!("invalid continue token {token:?}")));
                };
                if rv < self.oldest_valid {
                    return expired(rv);
                }
                (rv, offset)
            }
            None => {
                if let (Some(rv), Some("Exact")) =
                    (resource_version.and_then(|rv| rv.parse::<u64>().ok()), version_match)
                {
                    if rv < self.oldest_valid {
                        return expired(rv);
                    }
                }
                (self.rv, 0)
            }
        };
        let items: Vec<(&Key, &Value)> =
            self.objects.iter().filter(|(key, object)| scope.selects(key, object)).collect();
        let page = [limit.and_then(|limit| limit.parse::<usize>().ok()).filter(|limit| *limit > 0), self.max_page]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(usize::MAX);
        let end = offset.saturating_add(page).min(items.len());
        let custom = !scope.info.group.is_empty();
        let sent = items.get(offset..end).unwrap_or_default();
        for (key, _) in sent {
            *self.sent.entry((*key).clone()).or_default() += 1;
        }
        let page_items: Vec<Value> = sent
            .iter()
            .map(|(_, object)| {
                let mut item = scope.present(object);
                if !custom {
                    // Built-in kinds are encoded without TypeMeta inside a list.
                    let item_map = item.as_object_mut().unwrap();
                    item_map.remove("apiVersion");
                    item_map.remove("kind");
                }
                item
            })
            .collect();
        let mut metadata = Map::new();
        metadata.insert("resourceVersion".into(), json!(list_rv.to_string()));
        if end < items.len() {
            metadata.insert("continue".into(), json!(format!("{list_rv}:{end}")));
            metadata.insert("remainingItemCount".into(), json!(items.len() - end));
        }
        (
            200,
            json!({
                "kind": format!("{}List", scope.info.kind),
                "apiVersion": scope.api_version(),
                "metadata": metadata,
                "items": page_items,
            }),
        )
    }

    fn start_watch(
        &mut self,
        scope: Scope,
        path: &str,
        resource_version: Option<&str>,
        bookmarks: Option<&str>,
        timeout: Option<&str>,
    ) -> Reply {
        let timeout =
            Duration::from_secs(timeout.and_then(|seconds| seconds.parse().ok()).filter(|s| *s > 0).unwrap_or(1800));
        let (from, initial) = match resource_version.filter(|rv| !rv.is_empty() && *rv != "0") {
            Some(rv) => match rv.parse::<u64>() {
                Ok(rv) => (rv, Vec::new()),
                Err(_) => {
                    return Reply::Json(
                        400,
                        status_object(400, "BadRequest", &format!("invalid resourceVersion {rv:?}")),
                    )
                }
            },
            // "Start at any": what exists, as ADDED events, then changes.
            None => {
                let mut lines = Vec::new();
                for (key, object) in self.objects.iter().filter(|(key, object)| scope.selects(key, object)) {
                    *self.sent.entry(key.clone()).or_default() += 1;
                    lines.push(event_line("ADDED", &scope.present(object)));
                }
                (self.rv, lines)
            }
        };
        Reply::Watch(WatchStart {
            scope,
            path: path.to_owned(),
            from,
            initial,
            bookmarks: bookmarks == Some("true"),
            timeout,
            kills: self.kills,
            closes: self.closes,
        })
    }

    /// What an open watch at `pos` does next.
    fn watch_step(&mut self, start: &WatchStart, pos: &mut u64, bookmark_due: bool) -> Step {
        if self.kills != start.kills || !self.available {
            return Step::Abort;
        }
        if self.closes != start.closes {
            return Step::Close;
        }
        if *pos < self.oldest_valid {
            let message = format!("too old resource version: {} ({})", pos, self.oldest_valid);
            self.errors_sent.push(SentError {
                at: Instant::now(),
                path: start.path.clone(),
                code: 410,
                message: message.clone(),
            });
            return Step::Expired(event_line("ERROR", &status_object(410, "Expired", &message)));
        }
        if self.paused {
            return Step::Lines(Vec::new());
        }
        let mut lines = Vec::new();
        let from = *pos;
        for change in self.history.iter().filter(|change| change.rv > from && start.scope.matches(&change.key)) {
            *pos = change.rv;
            let selected = |object: &Value| start.scope.selector.matches(object);
            let was = change.previous.as_ref().is_some_and(selected);
            // The watch cache's view through a selector: an object entering it is ADDED, one
            // leaving it DELETED (its last selected state, at the new resourceVersion).
            let (event, object) = match change.event {
                EventType::Deleted if was => (EventType::Deleted, change.object.clone()),
                EventType::Deleted => continue,
                _ => match (was, selected(&change.object)) {
                    (true, true) => (EventType::Modified, change.object.clone()),
                    (false, true) => (EventType::Added, change.object.clone()),
                    (true, false) => {
                        let mut last = change.previous.clone().unwrap();
                        last["metadata"]["resourceVersion"] = change.object["metadata"]["resourceVersion"].clone();
                        (EventType::Deleted, last)
                    }
                    (false, false) => continue,
                },
            };
            *self.sent.entry(change.key.clone()).or_default() += 1;
            lines.push(event_line(event.as_str(), &start.scope.present(&object)));
        }
        if bookmark_due && start.bookmarks && self.bookmark_interval.is_some() {
            // Everything up to the newest resourceVersion has been sent for this collection.
            *pos = self.rv;
            lines.push(event_line(
                "BOOKMARK",
                &json!({
                    "kind": start.scope.info.kind,
                    "apiVersion": start.scope.api_version(),
                    "metadata": {"resourceVersion": self.rv.to_string(), "creationTimestamp": null},
                }),
            ));
        }
        Step::Lines(lines)
    }
}

enum Step {
    Lines(Vec<String>),
    Expired(String),
    Abort,
    Close,
}

fn event_line(event: &str, object: &Value) -> String {
    let mut line = serde_json::to_string(&json!({"type": event, "object": object})).unwrap();
    line.push('\n');
    line
}

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first; others last,
/// alphabetically.
fn sort_by_priority(mut versions: Vec<String>) -> Vec<String> {
    fn rank(version: &str) -> (u8, u64, u64, String) {
        let parsed = version.strip_prefix('v').and_then(|rest| {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let major: u64 = rest[..digits].parse().ok()?;
            match &rest[digits..] {
                "" => Some((0, major, 0)),
                tail => {
                    let (level, minor) = if let Some(minor) = tail.strip_prefix("beta") {
                        (1, minor)
                    } else {
                        (2, tail.strip_prefix("alpha")?)
                    };
                    Some((level, major, minor.parse().ok()?))
                }
            }
        });
        match parsed {
            Some((level, major, minor)) => (level, u64::MAX - major, u64::MAX - minor, String::new()),
            None => (3, 0, 0, version.to_owned()),
        }
    }
    versions.sort_by_key(|version| rank(version));
    versions
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = parse_query(uri.query().unwrap_or_default());
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let write = WriteRequest { content_type: content_type.to_owned(), body: body.to_vec() };
    let mut inner = shared.lock();
    let reply = inner.route(&method, &path, &query, Some(&write));
    let status = match &reply {
        Reply::Json(status, _) => *status,
        Reply::Watch(_) => 200,
    };
    let seq = inner.requests.len();
    inner.requests.push(Logged {
        seq,
        at: Instant::now(),
        method: method.to_string(),
        path,
        query,
        status,
        authorization,
    });
    if matches!(&reply, Reply::Json(200 | 201, _)) && method != Method::GET {
        drop(inner);
        shared.wake_watches();
        inner = shared.lock();
    }
    match reply {
        Reply::Json(status, body) => json_response(status, &body),
        Reply::Watch(start) => {
            inner.open_watches += 1;
            drop(inner);
            let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
            tokio::spawn(run_watch(shared.clone(), start, tx));
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)))
                .unwrap()
        }
    }
}

/// Counts an open watch until dropped.
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.open_watches = inner.open_watches.saturating_sub(1);
    }
}

async fn run_watch(shared: Arc<Shared>, start: WatchStart, tx: mpsc::Sender<Result<Bytes, std::io::Error>>) {
    let _open = OpenWatch(shared.clone());
    let mut wake = shared.wake.subscribe();
    let deadline = tokio::time::Instant::now() + start.timeout;
    let mut pos = start.from;
    for line in &start.initial {
        if tx.send(Ok(Bytes::from(line.clone()))).await.is_err() {
            return;
        }
    }
    let mut last_bookmark = tokio::time::Instant::now();
    loop {
        let interval = shared.lock().bookmark_interval;
        let now = tokio::time::Instant::now();
        let bookmark_due = interval.is_some_and(|interval| now >= last_bookmark + interval);
        let step = shared.lock().watch_step(&start, &mut pos, bookmark_due);
        if bookmark_due {
            last_bookmark = now;
        }
        match step {
            Step::Lines(lines) => {
                for line in lines {
                    if tx.send(Ok(Bytes::from(line))).await.is_err() {
                        return;
                    }
                }
            }
            Step::Expired(line) => {
                let _ = tx.send(Ok(Bytes::from(line))).await;
                return;
            }
            Step::Close => return,
            Step::Abort => {
                // Half an event, then the connection drops without the final chunk.
                let _ = tx.send(Ok(Bytes::from_static(b"{\"type\":\"MODIFIED\",\"object\":{\"apiVers"))).await;
                let _ = tx.send(Err(std::io::Error::other("watch killed by the test"))).await;
                return;
            }
        }
        let next_bookmark = interval.map_or(deadline, |interval| (last_bookmark + interval).min(deadline));
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(next_bookmark) => {}
            () = tx.closed() => return,
        }
        if tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELM: &str = "helm.sh/release.v1";

    fn secret(name: &str, kind: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "ns"}, "type": kind, "data": {"x": "eA=="}})
    }

    fn get(api: &FakeKube, path: &str, query: &[(&str, &str)]) -> Reply {
        let query: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        api.shared.lock().route(&Method::GET, path, &query, None)
    }

    /// `(type, name)` of each watch event line.
    fn events(lines: &[String]) -> Vec<(String, String)> {
        lines
            .iter()
            .map(|line| {
                let event: Value = serde_json::from_str(line).unwrap();
                (
                    event["type"].as_str().unwrap().to_owned(),
                    event["object"]["metadata"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn lists_and_watches_send_only_what_the_field_selector_selects() {
        let api = FakeKube::start();
        api.create_value(secret("release", HELM));
        api.apply_value(secret("tls", "kubernetes.io/tls"));
        api.apply_value(secret("opaque", "Opaque"));
        let selector = [("fieldSelector", "type!=helm.sh/release.v1,metadata.namespace=ns")];

        let Reply::Json(200, list) = get(&api, "/api/v1/secrets", &selector) else { panic!("list failed") };
        let names: Vec<&str> =
            list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["opaque", "tls"]);
        let Reply::Json(200, list) = get(&api, "/api/v1/namespaces/other/secrets", &selector) else { panic!() };
        assert_eq!(list["items"], json!([]));

        let Reply::Watch(start) = get(&api, "/api/v1/secrets", &[("watch", "true"), selector[0]]) else { panic!() };
        assert_eq!(events(&start.initial), pairs(&[("ADDED", "opaque"), ("ADDED", "tls")]));
        let mut pos = start.from;
        api.apply_value(secret("opaque", HELM)); // leaves the selection
        api.create_value(secret("release", "Opaque")); // enters it
        api.apply_value(secret("tls", "kubernetes.io/tls"));
        api.create_value(secret("release-2", HELM)); // never selected
        api.delete("Secret", "ns", "release-2");
        api.delete("Secret", "ns", "release");
        let Step::Lines(lines) = api.shared.lock().watch_step(&start, &mut pos, false) else { panic!() };
        let expected = [("DELETED", "opaque"), ("ADDED", "release"), ("MODIFIED", "tls"), ("DELETED", "release")];
        assert_eq!(events(&lines), pairs(&expected));
        assert_eq!(pos, api.resource_version());
        let deleted: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(deleted["object"]["type"], "Opaque", "DELETED carries the last selected state");
        assert_eq!(api.times_sent("Secret", "ns", "release-2"), 0);
        assert_eq!(api.times_sent("Secret", "ns", "tls"), 3);

        api.honour_field_selectors(false);
        let Reply::Json(200, list) = get(&api, "/api/v1/secrets", &selector) else { panic!() };
        assert_eq!(list["items"].as_array().unwrap().len(), 2, "opaque (now Helm) and tls");
    }

    #[test]
    fn unsupported_field_labels_are_bad_requests() {
        let api = FakeKube::start();
        for (path, selector, message) in [
            ("/api/v1/secrets", "spec.type=x", "field label not supported: spec.type"),
            ("/apis/getambassador.io/v3alpha1/mappings", "type!=x", "field label not supported: type"),
        ] {
            let Reply::Json(status, body) = get(&api, path, &[("fieldSelector", selector)]) else { panic!() };
            assert_eq!(
                (status, body["reason"].as_str(), body["message"].as_str()),
                (400, Some("BadRequest"), Some(message))
            );
            let Reply::Json(status, _) = get(&api, path, &[("watch", "true"), ("fieldSelector", selector)]) else {
                panic!()
            };
            assert_eq!(status, 400);
        }
        let Reply::Json(200, _) =
            get(&api, "/apis/getambassador.io/v3alpha1/mappings", &[("fieldSelector", "metadata.name!=x")])
        else {
            panic!()
        };
    }

    #[test]
    fn version_priority() {
        let sorted = sort_by_priority(vec!["v3alpha1".into(), "v1".into(), "v2".into(), "v2beta1".into()]);
        assert_eq!(sorted, ["v2", "v1", "v2beta1", "v3alpha1"]);
    }
}
