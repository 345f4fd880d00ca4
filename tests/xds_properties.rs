//! Model-based property tests of the xDS state machines (SotW and delta, over ADS).
//!
//! A model Envoy talks to the real state machine through random interleavings of: snapshots
//! published (resources added, changed, removed; clusters naming secrets and endpoints, routes
//! naming clusters, listeners naming routes — every snapshot self-consistent, as the compiler
//! guarantees), responses delivered a few at a time, requests sent late (stale nonces), repeated
//! ACKs, NACKs of poisoned resources, and reconnects. Like Envoy, the client subscribes to the
//! secrets, endpoints and routes that what it holds names, and applies the valid resources of a
//! response it NACKs.
//!
//! Checked after every response the client applies:
//! * no held route names a cluster the client does not hold, and nothing is removed while a held
//!   resource names it (make before break, first responses included);
//! * a SotW response for a named type leaves out nothing the client holds and still asks for
//!   (Envoy NACKs that as a missing resource);
//! * a NACKed version is never sent again on that stream unless the client asks for the resource
//!   anew (a new subscription, or a new stream, which knows nothing of the old one's NACKs): the
//!   server never loops on a rejection.
//!
//! And at quiescence (the last snapshot published, everything delivered and ACKed): the client
//! holds exactly what it subscribed to of the latest snapshot, and publishing the same content
//! again sends nothing.
//!
//! `XDS_PROPERTY_CASES` (default 2000 per protocol) and `XDS_PROPERTY_SEED` (default fixed) pick
//! the run; a failure prints the seed and the shrunk sequence of steps.

use ambassador_xds::server::delta::DeltaStream;
use ambassador_xds::server::sotw::SotwStream;
use ambassador_xds::server::{OutgoingResponse, StreamMachine};
use ambassador_xds::snapshot::Snapshot;
use ambassador_xds::xds::{Resource, Resources, XdsType};
use bytes::Bytes;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use XdsType::{Cluster, Endpoint, Listener, Route, Secret};

const DEFAULT_SEED: u64 = 0x00a5_5ad0_2026;

thread_local! {
    /// Set while the shrunk failing case is re-run, to print what happened.
    static TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if TRACE.with(|t| t.get()) {
            eprintln!($($arg)*);
        }
    };
}
const DEFAULT_CASES: u32 = 2000;

// ---------------------------------------------------------------------------------------------
// The world: snapshots of small, self-consistent configurations.

const CLUSTERS: usize = 4;
const SECRETS: usize = 3;
const ROUTES: usize = 2;
const LISTENERS: usize = 2;

/// One snapshot as generated: versions, references (bit masks) and poison (a resource Envoy
/// would reject), before the consistency fix-up.
#[derive(Debug, Clone)]
struct Spec {
    secrets: Vec<Option<(u8, bool)>>,
    clusters: Vec<Option<(u8, u8, bool)>>,
    routes: Vec<Option<(u8, u8, bool)>>,
    listeners: Vec<Option<(u8, usize)>>,
    endpoint_salt: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    let poison = prop::bool::weighted(0.1);
    (
        prop::collection::vec(prop::option::weighted(0.8, (0u8..3, poison)), SECRETS),
        prop::collection::vec(prop::option::weighted(0.75, (0u8..3, any::<u8>(), poison)), CLUSTERS),
        prop::collection::vec(prop::option::weighted(0.8, (0u8..3, any::<u8>(), poison)), ROUTES),
        prop::collection::vec(prop::option::weighted(0.8, (0u8..2, 0..ROUTES)), LISTENERS),
        0u8..2,
    )
        .prop_map(|(secrets, clusters, routes, listeners, endpoint_salt)| Spec {
            secrets,
            clusters,
            routes,
            listeners,
            endpoint_salt,
        })
}

/// A resource body the model can read back: `version|refs|poison`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    text: String,
    refs: Vec<(XdsType, String)>,
    poison: bool,
}

fn parse_body(xds_type: XdsType, name: &str, bytes: &[u8]) -> Body {
    let text = String::from_utf8(bytes.to_vec()).expect("model bodies are text");
    let mut parts = text.split('|');
    let _version = parts.next();
    let refs = parts.next().unwrap_or_default();
    let poison = parts.next() == Some("poison");
    let referenced = match xds_type {
        Cluster => Secret,
        Route => Cluster,
        Listener => Route,
        _ => Secret,
    };
    let mut refs: Vec<(XdsType, String)> =
        refs.split(',').filter(|r| !r.is_empty()).map(|r| (referenced, r.to_string())).collect();
    if xds_type == Cluster {
        refs.push((Endpoint, name.to_string()));
    }
    Body { text, refs, poison }
}

type World = BTreeMap<XdsType, BTreeMap<String, String>>;

/// The consistent configuration a spec stands for: references only to what exists.
fn world(spec: &Spec, clean: bool) -> World {
    let mut world: World = XdsType::ALL.iter().map(|t| (*t, BTreeMap::new())).collect();
    let body = |version: u8, refs: Vec<String>, poison: bool| {
        format!("v{version}|{}|{}", refs.join(","), if poison && !clean { "poison" } else { "ok" })
    };
    let secrets: Vec<String> = (0..SECRETS).filter(|&i| spec.secrets[i].is_some()).map(|i| format!("s{i}")).collect();
    for (i, secret) in spec.secrets.iter().enumerate() {
        if let Some((version, poison)) = secret {
            world.get_mut(&Secret).unwrap().insert(format!("s{i}"), body(*version, vec![], *poison));
        }
    }
    let mut clusters = Vec::new();
    for (i, cluster) in spec.clusters.iter().enumerate() {
        if let Some((version, mask, poison)) = cluster {
            let refs = secrets.iter().filter(|s| mask & (1 << s[1..].parse::<u8>().unwrap()) != 0).cloned().collect();
            let name = format!("c{i}");
            world.get_mut(&Cluster).unwrap().insert(name.clone(), body(*version, refs, *poison));
            let endpoint_version = spec.endpoint_salt.wrapping_add(i as u8) % 2;
            world.get_mut(&Endpoint).unwrap().insert(name.clone(), body(endpoint_version, vec![], false));
            clusters.push((i, name));
        }
    }
    let mut routes = BTreeSet::new();
    for (i, route) in spec.routes.iter().enumerate() {
        if let Some((version, mask, poison)) = route {
            let refs = clusters.iter().filter(|(c, _)| mask & (1 << c) != 0).map(|(_, n)| n.clone()).collect();
            world.get_mut(&Route).unwrap().insert(format!("r{i}"), body(*version, refs, *poison));
            routes.insert(i);
        }
    }
    for (i, listener) in spec.listeners.iter().enumerate() {
        if let Some((version, route)) = listener {
            if routes.contains(route) {
                world
                    .get_mut(&Listener)
                    .unwrap()
                    .insert(format!("l{i}"), body(*version, vec![format!("r{route}")], false));
            }
        }
    }
    world
}

fn publish(world: &World, serial: u64, previous: Option<&Snapshot>) -> Arc<Snapshot> {
    let mut resources = Resources::default();
    for (xds_type, items) in world {
        let list = items
            .iter()
            .map(|(name, body)| Resource { name: name.clone(), body: Bytes::copy_from_slice(body.as_bytes()) })
            .collect();
        resources = resources.with(*xds_type, list);
    }
    Arc::new(Snapshot::new(resources, serial, previous))
}

#[derive(Debug, Clone)]
enum Step {
    Publish(Spec),
    /// The server sends up to this many responses; they are in flight until received.
    Send(u8),
    /// The client receives up to this many responses, applies them, and queues its requests.
    Receive(u8),
    /// The client's queued requests reach the server.
    Flush,
    /// The client answers an older response of a type again (a stale nonce).
    Stale(usize),
    /// The client repeats its latest request of a type.
    Repeat(usize),
    /// The stream breaks (what is in flight is lost); the client reconnects, CDS or LDS first.
    Reconnect(bool),
    /// The same content is published again.
    Republish,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => spec().prop_map(Step::Publish),
        4 => (1u8..4).prop_map(Step::Send),
        4 => (1u8..4).prop_map(Step::Receive),
        4 => Just(Step::Flush),
        1 => (0usize..5).prop_map(Step::Stale),
        1 => (0usize..5).prop_map(Step::Repeat),
        1 => any::<bool>().prop_map(Step::Reconnect),
        1 => Just(Step::Republish),
    ]
}

fn steps() -> impl Strategy<Value = (Spec, Vec<Step>)> {
    (spec(), prop::collection::vec(step(), 1..48))
}

// ---------------------------------------------------------------------------------------------
// The model Envoy: what it holds, what it asks for.

/// What the client holds, per type: name → (version as sent, body).
#[derive(Debug, Default, Clone)]
struct Held(BTreeMap<XdsType, BTreeMap<String, (String, Body)>>);

impl Held {
    fn of(&self, xds_type: XdsType) -> Option<&BTreeMap<String, (String, Body)>> {
        self.0.get(&xds_type)
    }

    fn holds(&self, xds_type: XdsType, name: &str) -> bool {
        self.of(xds_type).is_some_and(|m| m.contains_key(name))
    }

    /// The names of a named type the held resources ask for (wildcard types: `None`).
    fn subscription(&self, xds_type: XdsType) -> Option<BTreeSet<String>> {
        let referrer = match xds_type {
            Secret | Endpoint => Cluster,
            Route => Listener,
            Cluster | Listener => return None,
        };
        Some(
            self.of(referrer)
                .into_iter()
                .flatten()
                .flat_map(|(_, (_, body))| body.refs.iter())
                .filter(|(t, _)| *t == xds_type)
                .map(|(_, n)| n.clone())
                .collect(),
        )
    }

    /// Envoy drops a named resource once nothing it holds names it.
    fn drop_unsubscribed(&mut self) {
        for xds_type in [Route, Secret, Endpoint] {
            let wanted = self.subscription(xds_type).unwrap_or_default();
            if let Some(map) = self.0.get_mut(&xds_type) {
                map.retain(|name, _| wanted.contains(name));
            }
        }
    }

    fn subscriptions(&self) -> BTreeMap<XdsType, Option<BTreeSet<String>>> {
        [Secret, Endpoint, Route].into_iter().map(|t| (t, self.subscription(t))).collect()
    }
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// Resources whose latest version the client rejected: it holds an older one (or none), so the
/// reference checks skip them (that gap is what a NACK means).
type Stale = BTreeSet<(XdsType, String)>;

/// The client's view, shared by both protocols, and the checks made on it.
#[derive(Debug, Default)]
struct View {
    held: Held,
    stale: Stale,
    /// Route → cluster references are not checked until quiescence: set when a SotW client came
    /// back holding a version the server could not know (nothing can keep what it cannot name).
    lenient_routes: bool,
    /// Delta resources the server was told the client let go of while a response carrying them
    /// was in flight (the client may then take that response after asking for the name again):
    /// the server rightly no longer counts them as held, so what they name is not checked, until
    /// a response produced after the unsubscription (the sequence number) brings them anew.
    doubt: BTreeMap<(XdsType, String), u64>,
    /// SotW clusters taken from the valid part of a NACKed response, held under no accepted
    /// version, when the client reconnected: a server that recognises the accepted version
    /// rightly sends nothing, and Envoy keeps them until CDS next changes (known, harmless: no
    /// route names them).
    lingering: BTreeSet<String>,
}

impl View {
    /// No held resource names `(xds_type, name)` (skipping stale referrers).
    fn check_not_named(&self, xds_type: XdsType, name: &str) -> Result<(), TestCaseError> {
        for (referrer_type, map) in &self.held.0 {
            for (referrer, (_, body)) in map {
                let key = (*referrer_type, referrer.clone());
                if self.stale.contains(&key) || self.doubt.contains_key(&key) {
                    continue;
                }
                if body.refs.iter().any(|(t, n)| *t == xds_type && n == name) {
                    return Err(fail(format!(
                        "removed {xds_type:?} {name} while {referrer_type:?} {referrer} names it"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every cluster a held route names is held.
    fn check_routes(&self) -> Result<(), TestCaseError> {
        if self.lenient_routes {
            return Ok(());
        }
        for (route, (_, body)) in self.held.of(Route).into_iter().flatten() {
            if self.stale.contains(&(Route, route.clone())) || self.doubt.contains_key(&(Route, route.clone())) {
                continue;
            }
            for (_, cluster) in body.refs.iter().filter(|(t, _)| *t == Cluster) {
                if !self.held.holds(Cluster, cluster) && !self.stale.contains(&(Cluster, cluster.clone())) {
                    return Err(fail(format!("route {route} names cluster {cluster}, which the client does not hold")));
                }
            }
        }
        Ok(())
    }

    /// Takes one resource of a response (poisoned ones are rejected, the rest applied).
    fn take(&mut self, xds_type: XdsType, name: String, version: String, body: Body) -> bool {
        if body.poison {
            self.stale.insert((xds_type, name));
            return false;
        }
        self.stale.remove(&(xds_type, name.clone()));
        self.held.0.entry(xds_type).or_default().insert(name, (version, body));
        true
    }

    fn remove(&mut self, xds_type: XdsType, name: &str) {
        if let Some(map) = self.held.0.get_mut(&xds_type) {
            map.remove(name);
        }
        self.stale.remove(&(xds_type, name.to_string()));
    }

    /// A lingering cluster, or what only lingering clusters name.
    fn lingers(&self, xds_type: XdsType, name: &str) -> bool {
        match xds_type {
            Cluster => self.lingering.contains(name),
            Secret | Endpoint => self.held.of(Cluster).into_iter().flatten().any(|(cluster, (_, body))| {
                self.lingering.contains(cluster) && body.refs.iter().any(|(t, n)| *t == xds_type && n == name)
            }),
            _ => false,
        }
    }

    /// What a converged client holds: the latest snapshot, restricted to what it subscribes to.
    fn check_converged(&self, latest: &World) -> Result<(), TestCaseError> {
        for xds_type in XdsType::ALL {
            let wanted = self.held.subscription(xds_type);
            let expected: BTreeMap<&String, &str> = latest[&xds_type]
                .iter()
                .filter(|(name, _)| wanted.as_ref().is_none_or(|w| w.contains(*name)))
                .map(|(name, body)| (name, body.split_once('#').unwrap().1))
                .collect();
            let actual: BTreeMap<&String, &str> = self
                .held
                .of(xds_type)
                .into_iter()
                .flatten()
                .filter(|(name, _)| !self.lingers(xds_type, name) || expected.contains_key(name))
                .map(|(name, (_, body))| (name, body.text.as_str()))
                .collect();
            if expected != actual {
                return Err(fail(format!("{xds_type:?}: the client holds {actual:?}, the snapshot has {expected:?}")));
            }
        }
        Ok(())
    }
}

fn rejection() -> Status {
    Status { code: 3, message: "poisoned".into(), details: vec![] }
}

/// A resource as the model reads it from the wire: `name#body`.
fn read(xds_type: XdsType, bytes: &[u8]) -> (String, Body) {
    let text = std::str::from_utf8(bytes).expect("model bodies are text");
    let (name, body) = text.split_once('#').expect("bodies are `name#body`");
    (name.to_string(), parse_body(xds_type, name, body.as_bytes()))
}

/// A model Envoy for one protocol.
trait ModelClient: Default {
    type Machine: StreamMachine;
    fn machine() -> Self::Machine;
    fn view(&self) -> &View;
    fn view_mut(&mut self) -> &mut View;
    /// Requests of a new stream (what the client holds stays).
    fn connect(&mut self, lds_first: bool);
    /// Applies one response (wire bytes), checking it; queues the requests it causes.
    fn apply(&mut self, bytes: &[u8]) -> Result<(), TestCaseError>;
    fn stale(&mut self, xds_type: XdsType);
    fn repeat(&mut self, xds_type: XdsType);
    fn take_requests(&mut self) -> Vec<<Self::Machine as StreamMachine>::Request>;
    /// The version a reconnecting SotW client claims for CDS (delta: `None`).
    fn claimed_clusters(&self) -> Option<String>;
    /// Whether the protocol says what a reconnecting client holds only by a version (SotW).
    fn machine_is_sotw() -> bool;
    fn request_type_url(request: &<Self::Machine as StreamMachine>::Request) -> &str;
    /// The stream is gone: what was NACKed on it is forgotten by the server.
    fn lose_stream(&mut self);
    /// A request reaches the server, while `in_flight` responses are on their way to the client.
    fn delivered(&mut self, request: &<Self::Machine as StreamMachine>::Request, in_flight: &VecDeque<Vec<u8>>);
    /// A response the server just produced: it must not carry what the server knows was rejected.
    fn check_generated(&mut self, bytes: &[u8]) -> Result<(), TestCaseError>;
}

/// What was rejected: type, resource name (empty for a whole SotW response) and version.
type Rejection = (XdsType, String, String);

/// The server may not send a rejected version again once it knows of the rejection, unless it
/// has sent another version of that resource since (the configuration went bad, good, and bad
/// again: a new change, which the client judges anew). Rejections wait by nonce until the NACK
/// reaches the server.
#[derive(Debug, Default)]
struct Rejections {
    /// Responses produced so far; the nonce of each, for the NACKs that answer them.
    produced: u64,
    nonce_produced: BTreeMap<String, u64>,
    /// The latest version produced of each resource, and when.
    latest: BTreeMap<(XdsType, String), (u64, String)>,
    pending: BTreeMap<String, Vec<Rejection>>,
    known: BTreeSet<Rejection>,
}

impl Rejections {
    /// The server produced `versions` (resource name → version) in the response with `nonce`.
    fn produced(
        &mut self,
        xds_type: XdsType,
        nonce: &str,
        versions: Vec<(String, String)>,
    ) -> Result<(), TestCaseError> {
        self.produced += 1;
        self.nonce_produced.insert(nonce.to_string(), self.produced);
        for (name, version) in versions {
            let rejection = (xds_type, name.clone(), version.clone());
            if self.known.contains(&rejection) {
                return Err(fail(format!("{rejection:?} was NACKed (the server knows) and is sent again")));
            }
            self.known.retain(|(t, n, v)| !(*t == xds_type && *n == name && *v != version));
            self.latest.insert((xds_type, name), (self.produced, version));
        }
        Ok(())
    }

    fn delivered(&mut self, nonce: &str, is_nack: bool) {
        let Some(rejected) = self.pending.remove(nonce) else { return };
        let when = self.nonce_produced.get(nonce).copied().unwrap_or_default();
        if is_nack {
            for rejection in rejected {
                let superseded = self
                    .latest
                    .get(&(rejection.0, rejection.1.clone()))
                    .is_some_and(|(at, version)| *at > when && *version != rejection.2);
                if !superseded {
                    self.known.insert(rejection);
                }
            }
        }
    }
}

// --- state of the world

#[derive(Default)]
struct SotwClient {
    view: View,
    accepted: BTreeMap<XdsType, String>,
    /// Nonces received per type, oldest first.
    nonces: BTreeMap<XdsType, Vec<String>>,
    /// The names last asked for, per named type.
    asked: BTreeMap<XdsType, BTreeSet<String>>,
    rejections: Rejections,
    last: BTreeMap<XdsType, DiscoveryRequest>,
    queue: Vec<DiscoveryRequest>,
    /// Clusters applied from a NACKed response, not covered by the accepted version.
    unaccepted: BTreeSet<String>,
}

impl SotwClient {
    fn request(&mut self, xds_type: XdsType, error: bool) {
        let names: Vec<String> = self.view.held.subscription(xds_type).unwrap_or_default().into_iter().collect();
        if !xds_type.is_wildcard_by_default() {
            self.asked.insert(xds_type, names.iter().cloned().collect());
        }
        let request = DiscoveryRequest {
            type_url: xds_type.type_url().to_string(),
            resource_names: names,
            version_info: self.accepted.get(&xds_type).cloned().unwrap_or_default(),
            response_nonce: self.nonces.get(&xds_type).and_then(|n| n.last()).cloned().unwrap_or_default(),
            error_detail: error.then(rejection),
            ..Default::default()
        };
        self.last.insert(xds_type, request.clone());
        self.queue.push(request);
    }
}

impl ModelClient for SotwClient {
    type Machine = SotwStream;

    fn machine() -> SotwStream {
        SotwStream::new(None)
    }

    fn view(&self) -> &View {
        &self.view
    }

    fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }

    fn connect(&mut self, lds_first: bool) {
        self.nonces.clear();
        self.asked.clear();
        let order = if lds_first { [Listener, Cluster] } else { [Cluster, Listener] };
        for xds_type in order {
            self.request(xds_type, false);
        }
        for xds_type in [Secret, Endpoint, Route] {
            if !self.view.held.subscription(xds_type).unwrap_or_default().is_empty() {
                self.request(xds_type, false);
            }
        }
    }

    fn apply(&mut self, bytes: &[u8]) -> Result<(), TestCaseError> {
        let message = DiscoveryResponse::decode(bytes).expect("a valid response");
        let xds_type = XdsType::from_type_url(&message.type_url).expect("a served type");
        trace!(
            "   client gets {xds_type:?} v{} nonce {}: {:?}",
            message.version_info,
            message.nonce,
            message.resources.iter().map(|a| String::from_utf8_lossy(&a.value).into_owned()).collect::<Vec<_>>()
        );
        let entries: BTreeMap<String, Body> = message.resources.iter().map(|any| read(xds_type, &any.value)).collect();
        if entries.len() != message.resources.len() {
            return Err(fail(format!("{xds_type:?} response names a resource twice")));
        }
        if !xds_type.is_full_state_in_sotw() {
            for name in self.asked.get(&xds_type).cloned().unwrap_or_default() {
                if self.view.held.holds(xds_type, &name) && !entries.contains_key(&name) {
                    return Err(fail(format!("{xds_type:?} response leaves out {name}, held and asked for")));
                }
            }
        }
        let before = self.view.held.subscriptions();
        if xds_type.is_full_state_in_sotw() {
            let gone: Vec<String> = self
                .view
                .held
                .of(xds_type)
                .into_iter()
                .flatten()
                .map(|(n, _)| n.clone())
                .filter(|n| !entries.contains_key(n))
                .collect();
            for name in gone {
                self.view.remove(xds_type, &name);
            }
        }
        let mut poisoned = false;
        let mut applied = Vec::new();
        for (name, body) in entries {
            if self.view.take(xds_type, name.clone(), message.version_info.clone(), body) {
                applied.push(name);
            } else {
                poisoned = true;
            }
        }
        if xds_type == Cluster {
            if poisoned {
                self.unaccepted.extend(applied);
            } else {
                self.unaccepted.clear();
            }
        }
        self.view.held.drop_unsubscribed();
        self.view.check_routes()?;
        self.nonces.entry(xds_type).or_default().push(message.nonce.clone());
        if poisoned {
            let rejection = (xds_type, String::new(), message.version_info.clone());
            self.rejections.pending.insert(message.nonce.clone(), vec![rejection]);
        } else {
            self.accepted.insert(xds_type, message.version_info.clone());
        }
        self.request(xds_type, poisoned);
        for (other, before) in before {
            if other != xds_type && self.view.held.subscription(other) != before {
                self.request(other, false);
            }
        }
        Ok(())
    }

    fn stale(&mut self, xds_type: XdsType) {
        let older = self.nonces.get(&xds_type).and_then(|n| n.iter().rev().nth(1)).cloned();
        if let (Some(nonce), Some(last)) = (older, self.last.get(&xds_type)) {
            self.queue.push(DiscoveryRequest { response_nonce: nonce, error_detail: None, ..last.clone() });
        }
    }

    fn repeat(&mut self, xds_type: XdsType) {
        if let Some(last) = self.last.get(&xds_type) {
            self.queue.push(last.clone());
        }
    }

    fn take_requests(&mut self) -> Vec<DiscoveryRequest> {
        std::mem::take(&mut self.queue)
    }

    fn claimed_clusters(&self) -> Option<String> {
        self.accepted.get(&Cluster).cloned()
    }

    fn machine_is_sotw() -> bool {
        true
    }

    fn request_type_url(request: &DiscoveryRequest) -> &str {
        &request.type_url
    }

    fn lose_stream(&mut self) {
        self.queue.clear();
        self.rejections = Rejections::default();
        let held: BTreeSet<String> = self.view.held.of(Cluster).into_iter().flatten().map(|(n, _)| n.clone()).collect();
        let unknown: Vec<String> = self.unaccepted.intersection(&held).cloned().collect();
        // What no accepted version covers, no server can know: it may be removed while routes
        // still name it (one round trip), or linger.
        self.view.lenient_routes |= !unknown.is_empty();
        self.view.lingering.extend(unknown);
    }

    fn delivered(&mut self, request: &DiscoveryRequest, _in_flight: &VecDeque<Vec<u8>>) {
        self.rejections.delivered(&request.response_nonce, request.error_detail.is_some());
    }

    fn check_generated(&mut self, bytes: &[u8]) -> Result<(), TestCaseError> {
        let message = DiscoveryResponse::decode(bytes).expect("a valid response");
        let xds_type = XdsType::from_type_url(&message.type_url).expect("a served type");
        self.rejections.produced(xds_type, &message.nonce, vec![(String::new(), message.version_info)])
    }
}

// --- delta

#[derive(Default)]
struct DeltaClient {
    view: View,
    /// What the client asked for, per named type (Envoy sends only changes).
    asked: BTreeMap<XdsType, BTreeSet<String>>,
    /// Nonces received per type, oldest first.
    nonces: BTreeMap<XdsType, Vec<String>>,
    rejections: Rejections,
    last_ack: BTreeMap<XdsType, DeltaDiscoveryRequest>,
    queue: Vec<DeltaDiscoveryRequest>,
}

impl DeltaClient {
    /// Subscription changes of a named type since it was last asked.
    fn resubscribe(&mut self, xds_type: XdsType) {
        let wanted = self.view.held.subscription(xds_type).unwrap_or_default();
        let asked = self.asked.entry(xds_type).or_default().clone();
        let subscribe: Vec<String> = wanted.difference(&asked).cloned().collect();
        let unsubscribe: Vec<String> = asked.difference(&wanted).cloned().collect();
        if subscribe.is_empty() && unsubscribe.is_empty() {
            return;
        }
        self.asked.insert(xds_type, wanted);
        self.queue.push(DeltaDiscoveryRequest {
            type_url: xds_type.type_url().to_string(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            ..Default::default()
        });
    }
}

impl ModelClient for DeltaClient {
    type Machine = DeltaStream;

    fn machine() -> DeltaStream {
        DeltaStream::new(None)
    }

    fn view(&self) -> &View {
        &self.view
    }

    fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }

    fn connect(&mut self, lds_first: bool) {
        self.asked.clear();
        self.nonces.clear();
        let order = if lds_first { [Listener, Cluster] } else { [Cluster, Listener] };
        for xds_type in order.into_iter().chain([Secret, Endpoint, Route]) {
            let initial_resource_versions = self
                .view
                .held
                .of(xds_type)
                .into_iter()
                .flatten()
                .map(|(name, (version, _))| (name.clone(), version.clone()))
                .collect();
            let subscribe: Vec<String> =
                self.view.held.subscription(xds_type).unwrap_or_default().into_iter().collect();
            if !xds_type.is_wildcard_by_default() && subscribe.is_empty() {
                continue;
            }
            self.asked.insert(xds_type, subscribe.iter().cloned().collect());
            self.queue.push(DeltaDiscoveryRequest {
                type_url: xds_type.type_url().to_string(),
                resource_names_subscribe: subscribe,
                initial_resource_versions,
                ..Default::default()
            });
        }
    }

    fn apply(&mut self, bytes: &[u8]) -> Result<(), TestCaseError> {
        let message = DeltaDiscoveryResponse::decode(bytes).expect("a valid response");
        let xds_type = XdsType::from_type_url(&message.type_url).expect("a served type");
        trace!(
            "   client gets {xds_type:?} nonce {}: {:?} removed {:?}",
            message.nonce,
            message.resources.iter().map(|r| format!("{}@{}", r.name, r.version)).collect::<Vec<_>>(),
            message.removed_resources
        );
        let mut names = BTreeSet::new();
        for resource in &message.resources {
            if !names.insert(resource.name.clone()) {
                return Err(fail(format!("{xds_type:?} {} is sent twice in one response", resource.name)));
            }
        }
        for name in &message.removed_resources {
            if !names.insert(name.clone()) {
                return Err(fail(format!("{xds_type:?} {name} is both sent and removed")));
            }
        }
        let before = self.view.held.subscriptions();
        let produced = self.rejections.nonce_produced.get(&message.nonce).copied().unwrap_or_default();
        for name in &message.removed_resources {
            self.view.check_not_named(xds_type, name)?;
            self.view.remove(xds_type, name);
            let key = (xds_type, name.clone());
            if self.view.doubt.get(&key).is_some_and(|&since| produced > since) {
                self.view.doubt.remove(&key);
            }
        }
        let mut rejected = Vec::new();
        for resource in &message.resources {
            let any = resource.resource.as_ref().expect("resources carry a body");
            let (name, body) = read(xds_type, &any.value);
            assert_eq!(name, resource.name, "the wrapper names its resource");
            let key = (xds_type, name.clone());
            if self.view.doubt.get(&key).is_some_and(|&since| produced > since) {
                self.view.doubt.remove(&key);
            }
            if !self.view.take(xds_type, name, resource.version.clone(), body) {
                rejected.push((xds_type, resource.name.clone(), resource.version.clone()));
            }
        }
        let poisoned = !rejected.is_empty();
        if poisoned {
            self.rejections.pending.insert(message.nonce.clone(), rejected);
        }
        self.view.held.drop_unsubscribed();
        self.view.check_routes()?;
        self.nonces.entry(xds_type).or_default().push(message.nonce.clone());
        let ack = DeltaDiscoveryRequest {
            type_url: message.type_url.clone(),
            response_nonce: message.nonce.clone(),
            error_detail: poisoned.then(rejection),
            ..Default::default()
        };
        self.last_ack.insert(xds_type, ack.clone());
        self.queue.push(ack);
        for (other, before) in before {
            if self.view.held.subscription(other) != before {
                self.resubscribe(other);
            }
        }
        Ok(())
    }

    fn stale(&mut self, xds_type: XdsType) {
        let older = self.nonces.get(&xds_type).and_then(|n| n.iter().rev().nth(1)).cloned();
        if let Some(nonce) = older {
            self.queue.push(DeltaDiscoveryRequest {
                type_url: xds_type.type_url().to_string(),
                response_nonce: nonce,
                ..Default::default()
            });
        }
    }

    fn repeat(&mut self, xds_type: XdsType) {
        if let Some(ack) = self.last_ack.get(&xds_type) {
            self.queue.push(ack.clone());
        }
    }

    fn take_requests(&mut self) -> Vec<DeltaDiscoveryRequest> {
        std::mem::take(&mut self.queue)
    }

    fn claimed_clusters(&self) -> Option<String> {
        None
    }

    fn machine_is_sotw() -> bool {
        false
    }

    fn request_type_url(request: &DeltaDiscoveryRequest) -> &str {
        &request.type_url
    }

    fn lose_stream(&mut self) {
        self.queue.clear();
        self.rejections = Rejections::default();
    }

    fn delivered(&mut self, request: &DeltaDiscoveryRequest, in_flight: &VecDeque<Vec<u8>>) {
        self.rejections.delivered(&request.response_nonce, request.error_detail.is_some());
        let Some(xds_type) = XdsType::from_type_url(&request.type_url) else { return };
        // Asking anew for a name may get its NACKed version once more: the client asked.
        let asked_anew: BTreeSet<&String> =
            request.resource_names_subscribe.iter().chain(&request.resource_names_unsubscribe).collect();
        self.rejections.known.retain(|(t, name, _)| *t != xds_type || !asked_anew.contains(name));
        for name in &request.resource_names_unsubscribe {
            let carried = in_flight.iter().any(|bytes| {
                let message = DeltaDiscoveryResponse::decode(bytes.as_slice()).expect("a valid response");
                message.type_url == request.type_url && message.resources.iter().any(|r| r.name == *name)
            });
            if carried {
                self.view.doubt.insert((xds_type, name.clone()), self.rejections.produced);
            }
        }
    }

    fn check_generated(&mut self, bytes: &[u8]) -> Result<(), TestCaseError> {
        let message = DeltaDiscoveryResponse::decode(bytes).expect("a valid response");
        let xds_type = XdsType::from_type_url(&message.type_url).expect("a served type");
        // A removal is a version too (none): the rejected one coming back later is a new change.
        let versions = message
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .chain(message.removed_resources.iter().map(|name| (name.clone(), String::new())))
            .collect();
        self.rejections.produced(xds_type, &message.nonce, versions)
    }
}

// --- the run

fn index_type(i: usize) -> XdsType {
    XdsType::PUSH_ORDER[i % XdsType::PUSH_ORDER.len()]
}

fn encode(response: &impl OutgoingResponse) -> Vec<u8> {
    response.chunks().concat()
}

fn run<C: ModelClient>(initial: &Spec, steps: &[Step]) -> Result<(), TestCaseError>
where
    <C::Machine as StreamMachine>::Request: std::fmt::Debug,
{
    let mut serial = 1;
    let mut latest = named(world(initial, false));
    let mut snapshot = publish(&latest, serial, None);
    let mut machine = C::machine();
    let mut client = C::default();
    let mut in_flight: VecDeque<Vec<u8>> = VecDeque::new();
    // A SotW client's CDS claim after a reconnect, until the server first answers CDS: if no
    // content the server knows has that version, route checks relax (see `View::lenient_routes`).
    let mut claim: Option<(String, bool)> = None;
    client.connect(false);
    trace!("initial world: {:?}", latest);
    for step in steps {
        trace!("-- {step:?}");
        match step {
            Step::Publish(spec) => {
                serial += 1;
                latest = named(world(spec, false));
                snapshot = publish(&latest, serial, Some(&snapshot));
                trace!("   world {serial}: {:?}", latest);
            }
            Step::Republish => {
                serial += 1;
                snapshot = publish(&latest, serial, Some(&snapshot));
            }
            Step::Send(n) => {
                for _ in 0..*n {
                    settle_claim(&mut claim, &snapshot, &mut client);
                    let Some(response) = machine.next_response(&snapshot) else { break };
                    trace!("   server sends {:?} ({} resources)", response.xds_type(), response.resource_count());
                    let bytes = encode(&response);
                    client.check_generated(&bytes)?;
                    in_flight.push_back(bytes);
                }
            }
            Step::Receive(n) => {
                for _ in 0..*n {
                    let Some(bytes) = in_flight.pop_front() else { break };
                    client.apply(&bytes)?;
                }
            }
            Step::Flush => {
                for request in client.take_requests() {
                    trace!("   request {request:?}");
                    mark_claim_delivered(&mut claim, C::request_type_url(&request));
                    client.delivered(&request, &in_flight);
                    let outcome = machine.on_request(&request);
                    trace!("   -> {outcome:?}");
                }
            }
            Step::Stale(i) => client.stale(index_type(*i)),
            Step::Repeat(i) => client.repeat(index_type(*i)),
            Step::Reconnect(lds_first) => {
                machine = C::machine();
                in_flight.clear();
                client.lose_stream();
                client.connect(*lds_first);
                claim = client.claimed_clusters().map(|version| (version, false));
                // Clusters held under no accepted version (the valid part of a NACKed response):
                // no server can know them.
                let holds_clusters = client.view().held.of(Cluster).is_some_and(|m| !m.is_empty());
                if claim.is_none() && holds_clusters && C::machine_is_sotw() {
                    client.view_mut().lenient_routes = true;
                }
            }
        }
    }
    // Quiescence: a clean last snapshot; everything sent, received and answered.
    trace!("-- quiescence");
    serial += 1;
    let last_spec = steps.iter().rev().find_map(|s| if let Step::Publish(spec) = s { Some(spec) } else { None });
    latest = named(world(last_spec.unwrap_or(initial), true));
    snapshot = publish(&latest, serial, Some(&snapshot));
    for _ in 0..200 {
        let requests = client.take_requests();
        let mut quiet = requests.is_empty() && in_flight.is_empty();
        for request in requests {
            trace!("   request {request:?}");
            mark_claim_delivered(&mut claim, C::request_type_url(&request));
            client.delivered(&request, &in_flight);
            machine.on_request(&request);
        }
        settle_claim(&mut claim, &snapshot, &mut client);
        while let Some(response) = machine.next_response(&snapshot) {
            trace!("   server sends {:?} ({} resources)", response.xds_type(), response.resource_count());
            let bytes = encode(&response);
            client.check_generated(&bytes)?;
            in_flight.push_back(bytes);
        }
        while let Some(bytes) = in_flight.pop_front() {
            quiet = false;
            client.apply(&bytes)?;
        }
        if quiet {
            break;
        }
    }
    client.view_mut().lenient_routes = false;
    client.view().check_routes()?;
    client.view().check_converged(&latest)?;
    let again = publish(&latest, serial + 1, Some(&snapshot));
    if let Some(response) = machine.next_response(&again) {
        return Err(fail(format!("the same content again sent {:?}", response.xds_type())));
    }
    Ok(())
}

fn mark_claim_delivered(claim: &mut Option<(String, bool)>, type_url: &str) {
    if let Some((_, delivered)) = claim {
        *delivered |= type_url == Cluster.type_url();
    }
}

/// The first answer after a SotW reconnect: the server knows what the client holds only if the
/// claimed CDS version is one of its recent contents, or the union of two (a make step).
fn settle_claim<C: ModelClient>(claim: &mut Option<(String, bool)>, snapshot: &Snapshot, client: &mut C) {
    // The server looks the version up when it first answers after it got the request.
    if !claim.as_ref().is_some_and(|(_, delivered)| *delivered) {
        return;
    }
    let Some((claimed, _)) = claim.take() else { return };
    let contents: Vec<&Arc<ambassador_xds::snapshot::TypeSnapshot>> = snapshot.contents(Cluster).collect();
    let union_version = |newer: &ambassador_xds::snapshot::TypeSnapshot,
                         older: &ambassador_xds::snapshot::TypeSnapshot| {
        let mut entries: BTreeMap<&str, &str> = older.entries.values().map(|e| (&*e.name, &*e.version)).collect();
        entries.extend(newer.entries.values().map(|e| (&*e.name, &*e.version)));
        // The server's own version hash (what a type's version is made of is the point here).
        let mut hasher = ambassador_xds::snapshot::VersionHasher::default();
        for (name, version) in entries {
            hasher.entry(name, version);
        }
        hasher.finish()
    };
    let known = contents.iter().any(|c| c.version == claimed)
        || contents
            .iter()
            .enumerate()
            .any(|(i, newer)| contents[i + 1..].iter().any(|older| union_version(newer, older) == claimed));
    if !known {
        trace!("   the claimed CDS version {claimed} is unknown to the server: route checks relax");
        client.view_mut().lenient_routes = true;
    }
}

/// Bodies prefixed with their names, so the model client can read SotW responses (a SotW `Any`
/// carries no name of its own; Envoy reads it from the resource).
fn named(world: World) -> World {
    world
        .into_iter()
        .map(|(t, items)| (t, items.into_iter().map(|(name, body)| (name.clone(), format!("{name}#{body}"))).collect()))
        .collect()
}

// ---------------------------------------------------------------------------------------------

fn runner() -> (TestRunner, u64, u32) {
    let seed = std::env::var("XDS_PROPERTY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    let cases = std::env::var("XDS_PROPERTY_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_CASES);
    let config = Config { cases, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() };
    (TestRunner::new(config), seed, cases)
}

fn check<C: ModelClient>(protocol: &str)
where
    <C::Machine as StreamMachine>::Request: std::fmt::Debug,
{
    let (mut runner, seed, cases) = runner();
    let result = runner.run(&steps(), |(initial, steps)| run::<C>(&initial, &steps));
    if let Err(err) = result {
        if let proptest::test_runner::TestError::Fail(_, (initial, steps)) = &err {
            TRACE.with(|t| t.set(true));
            let _ = run::<C>(initial, steps);
            TRACE.with(|t| t.set(false));
        }
        panic!("{protocol}: property failed with XDS_PROPERTY_SEED={seed} ({cases} cases): {err}");
    }
    eprintln!("{protocol}: {cases} random interleavings hold (seed {seed})");
}

#[test]
fn sotw_machine_keeps_its_promises_under_random_interleavings() {
    check::<SotwClient>("sotw");
}

#[test]
fn delta_machine_keeps_its_promises_under_random_interleavings() {
    check::<DeltaClient>("delta");
}
