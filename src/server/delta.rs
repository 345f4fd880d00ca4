//! The incremental (delta) protocol for one stream, as a pure state machine: requests change
//! what the client wants; [`DeltaStream::next_response`] computes the next response from what
//! the client holds and the latest snapshot, only when the client can take one.
//!
//! The stream remembers what the client holds as "snapshot S, restricted to these names" rather
//! than a per-stream copy of every name and version, so a thousand streams over a large config
//! cost a thousand pointers, not a thousand maps. Rules:
//! * only resources whose version differs from what the client holds are sent; resources that
//!   left the snapshot are listed in `removed_resources`;
//! * a name the client subscribed to that does not exist is answered at once, also in
//!   `removed_resources`, so the client does not wait out its `initial_fetch_timeout` (Envoy's
//!   SDS takes this as "does not exist" and finishes warming; a `Resource` without a body, the
//!   form the xDS document describes, is NACKed by Envoy's SDS and RDS as an unnamed resource);
//! * subscriptions change with every request (stale nonce or not); ACK/NACK is matched by nonce,
//!   and a NACKed version is not sent again (unless the client asks for the name anew);
//! * on ADS, updates go out in push order (secrets, clusters, endpoints, listeners, routes), and
//!   removals after all of them, in removal order (routes, clusters, endpoints, secrets);
//!   listeners, which nothing names, change in one step.

use super::wire::{DeltaResponse, Payload};
use super::{request_type, Nack, RequestOutcome, RequestType, TypeSync};
use crate::snapshot::{Entry, Snapshot, TypeSnapshot};
use crate::xds::XdsType;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// What the client holds for one type.
#[derive(Debug, Default)]
struct Known {
    base: Option<Arc<TypeSnapshot>>,
    /// Names of `base` the client holds; `None` means all of them.
    filter: Option<BTreeSet<Arc<str>>>,
    /// Versions held outside `base`: from `initial_resource_versions` on reconnect, or resources
    /// whose removal is still deferred.
    extra: BTreeMap<Arc<str>, Arc<str>>,
}

impl Known {
    fn version(&self, name: &str) -> Option<&str> {
        if let Some(version) = self.extra.get(name) {
            return Some(version);
        }
        let base = self.base.as_ref()?;
        if self.filter.as_ref().is_some_and(|f| !f.contains(name)) {
            return None;
        }
        base.get(name).map(|e| &*e.version)
    }

    fn names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self.extra.keys().cloned().collect();
        if let Some(base) = &self.base {
            match &self.filter {
                None => names.extend(base.entries.keys().cloned()),
                Some(filter) => names.extend(filter.iter().filter(|n| base.get(n).is_some()).cloned()),
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn forget(&mut self, name: &str) {
        self.extra.remove(name);
        if let Some(filter) = &mut self.filter {
            filter.remove(name);
        }
    }
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    known: Known,
    /// Names the client was told do not exist (missing, or removed): not told again.
    told_absent: BTreeSet<Arc<str>>,
    /// Versions the client rejected (the resources of a NACKed response), never sent again
    /// unless the client asks for the name anew or another version of it was sent since.
    rejected: BTreeMap<Arc<str>, Arc<str>>,
    /// The system version of the latest response the client ACKed.
    acked: Option<String>,
    /// Recent responses by nonce (bounded), to name the resources of a NACKed one.
    /// Payloads share the snapshot's buffers, so remembering them costs pointers, not names.
    recent: VecDeque<Sent>,
}

const RECENT_RESPONSES: usize = 16;

#[derive(Debug)]
struct Sent {
    nonce: String,
    system_version: String,
    resources: Payload,
    removed: Vec<Arc<str>>,
    /// Already NACKed: a repeat of the NACK changes nothing.
    nacked: bool,
}

impl Sent {
    fn names(&self) -> Vec<String> {
        let mut names = self.resources.names();
        names.extend(self.removed.iter().map(|n| n.to_string()));
        names
    }
}

impl TypeState {
    fn in_scope(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// Which step of an update a response is (see `sotw::Step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Make,
    Break,
    Whole,
}

#[derive(Debug)]
pub struct DeltaStream {
    fixed_type: Option<XdsType>,
    types: BTreeMap<XdsType, TypeState>,
    next_nonce: u64,
}

impl DeltaStream {
    pub fn new(fixed_type: Option<XdsType>) -> DeltaStream {
        DeltaStream { fixed_type, types: BTreeMap::new(), next_nonce: 0 }
    }

    /// Takes a request: subscriptions (always), ACK or NACK (by nonce).
    pub fn on_request(&mut self, request: &DeltaDiscoveryRequest) -> RequestOutcome {
        let mut outcome = RequestOutcome::default();
        let xds_type = match request_type(&request.type_url, self.fixed_type) {
            RequestType::Served(xds_type) => xds_type,
            RequestType::Unknown => {
                outcome.ignored += 1;
                return outcome;
            }
            RequestType::WrongService(message) => {
                outcome.error = Some(message);
                return outcome;
            }
        };
        let first = !self.types.contains_key(&xds_type);
        let state = self.types.entry(xds_type).or_default();
        if first {
            state.wildcard = xds_type.is_wildcard_by_default() && request.resource_names_subscribe.is_empty();
            state.known.extra = request
                .initial_resource_versions
                .iter()
                .map(|(name, version)| (Arc::from(name.as_str()), Arc::from(version.as_str())))
                .collect();
        }
        for name in &request.resource_names_subscribe {
            match name.as_str() {
                "*" => state.wildcard = true,
                _ => {
                    state.names.insert(name.clone());
                    state.rejected.remove(name.as_str());
                }
            }
        }
        for name in &request.resource_names_unsubscribe {
            match name.as_str() {
                "*" => state.wildcard = false,
                _ => {
                    state.names.remove(name);
                    state.known.forget(name);
                    state.told_absent.remove(name.as_str());
                    state.rejected.remove(name.as_str());
                }
            }
        }
        if !request.response_nonce.is_empty() {
            match state.recent.iter().position(|sent| sent.nonce == request.response_nonce) {
                Some(at) => {
                    if request.error_detail.is_none() {
                        state.acked = Some(state.recent[at].system_version.clone());
                        outcome.acks.push((xds_type, request.response_nonce.clone()));
                    }
                    if let (Some(status), false) = (&request.error_detail, state.recent[at].nacked) {
                        state.recent[at].nacked = true;
                        let sent = &state.recent[at];
                        outcome.nacks.push(Nack {
                            xds_type,
                            version: sent.system_version.clone(),
                            resource_names: sent.names(),
                            message: status.message.clone(),
                        });
                        // A newer version (or a removal) sent since supersedes the rejection.
                        let later = state.recent.range(at + 1..);
                        let superseded: BTreeSet<&str> = later
                            .flat_map(|s| s.resources.entries().map(|e| &*e.name).chain(s.removed.iter().map(|n| &**n)))
                            .collect();
                        let rejected: Vec<(Arc<str>, Arc<str>)> = sent
                            .resources
                            .entries()
                            .filter(|e| !superseded.contains(&*e.name))
                            .map(|e| (e.name.clone(), e.version.clone()))
                            .collect();
                        state.rejected.extend(rejected);
                    }
                }
                None => outcome.ignored += 1, // stale: subscriptions above still apply
            }
        }
        outcome
    }

    /// The next response this client should get to reach `snapshot`, or `None`.
    pub fn next_response(&mut self, snapshot: &Snapshot) -> Option<DeltaResponse> {
        if let Some(fixed) = self.fixed_type {
            return self.update(fixed, snapshot, Step::Whole);
        }
        for xds_type in XdsType::PUSH_ORDER {
            if let Some(response) = self.update(xds_type, snapshot, Step::Make) {
                return Some(response);
            }
        }
        XdsType::REMOVAL_ORDER.into_iter().find_map(|xds_type| self.update(xds_type, snapshot, Step::Break))
    }

    fn update(&mut self, xds_type: XdsType, snapshot: &Snapshot, step: Step) -> Option<DeltaResponse> {
        let current = snapshot.of(xds_type);
        let state = self.types.get_mut(&xds_type)?;
        let plan = state.plan(current, step == Step::Make && xds_type.defers_removals())?;
        let Plan { changed, removed, known } = plan;
        state.known = known;
        for entry in &changed {
            state.told_absent.remove(&entry.name);
            state.rejected.remove(&entry.name);
        }
        for name in &removed {
            state.rejected.remove(name);
        }
        state.told_absent.extend(removed.iter().cloned());

        if changed.is_empty() && removed.is_empty() {
            return None;
        }
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let system_version = snapshot.serial.to_string();
        // The full set (initial sync) goes out as the snapshot's shared block.
        let resources =
            if is_full(&changed, current) { Payload::All(current.clone()) } else { Payload::Subset(changed) };
        let state = self.types.get_mut(&xds_type).expect("type state exists");
        state.recent.push_back(Sent {
            nonce: nonce.clone(),
            system_version: system_version.clone(),
            resources: resources.clone(),
            removed: removed.clone(),
            nacked: false,
        });
        if state.recent.len() > RECENT_RESPONSES {
            state.recent.pop_front();
        }
        Some(DeltaResponse { xds_type, system_version, nonce, resources, removed })
    }

    /// Where each subscribed type stands against `snapshot`, for operators.
    pub fn sync(&self, snapshot: &Snapshot) -> Vec<TypeSync> {
        self.types
            .iter()
            .map(|(&xds_type, state)| {
                let current = snapshot.of(xds_type);
                let pending =
                    state.plan(current, false).is_some_and(|p| !p.changed.is_empty() || !p.removed.is_empty());
                let last = state.recent.back();
                TypeSync {
                    xds_type,
                    sent: last.map(|s| s.system_version.clone()),
                    acked: state.acked.clone(),
                    nacked: last.is_some_and(|s| s.nacked),
                    pending,
                }
            })
            .collect()
    }
}

/// What an update of one type would send, and what the client would hold afterwards.
struct Plan {
    changed: Vec<Entry>,
    removed: Vec<Arc<str>>,
    known: Known,
}

impl TypeState {
    /// The update this type needs against `current` (pure); `None` when the client is in sync.
    fn plan(&self, current: &Arc<TypeSnapshot>, defer_removals: bool) -> Option<Plan> {
        let in_sync = self.known.extra.is_empty()
            && self.known.base.as_ref().is_some_and(|b| Arc::ptr_eq(b, current))
            && (self.wildcard && self.known.filter.is_none())
            && self.names.iter().all(|n| current.get(n).is_some() || self.told_absent.contains(n.as_str()));
        if in_sync {
            return None;
        }
        let targets: Vec<&Entry> = if self.wildcard {
            current.entries.values().collect()
        } else {
            self.names.iter().filter_map(|n| current.get(n)).collect()
        };
        let changed: Vec<Entry> = targets
            .iter()
            .filter(|e| self.known.version(&e.name) != Some(&*e.version))
            .filter(|e| self.rejected.get(&e.name).is_none_or(|rejected| *rejected != e.version))
            .map(|e| (*e).clone())
            .collect();
        let vanished: Vec<Arc<str>> =
            self.known.names().into_iter().filter(|n| self.in_scope(n) && current.get(n).is_none()).collect();
        // Removals, and subscribed names that do not exist (that the client neither holds nor was
        // told about), go out together: after everything that could still name them moved on.
        let mut removed = Vec::new();
        if !defer_removals {
            removed.extend(vanished.iter().cloned());
            removed.extend(
                self.names
                    .iter()
                    .filter(|n| current.get(n).is_none() && self.known.version(n).is_none())
                    .filter(|n| !self.told_absent.contains(n.as_str()))
                    .map(|n| Arc::from(n.as_str())),
            );
            removed.sort();
            removed.dedup();
        }
        // What the client holds afterwards: the targets, plus vanished resources not yet removed.
        let mut extra = BTreeMap::new();
        if defer_removals {
            for name in &vanished {
                if let Some(version) = self.known.version(name) {
                    extra.insert(name.clone(), Arc::from(version));
                }
            }
        }
        let filter = (!self.wildcard).then(|| targets.iter().map(|e| e.name.clone()).collect());
        Some(Plan { changed, removed, known: Known { base: Some(current.clone()), filter, extra } })
    }
}

/// Whether `changed` is every entry of `current` (both are in name order).
fn is_full(changed: &[Entry], current: &TypeSnapshot) -> bool {
    changed.len() == current.entries.len() && !changed.is_empty()
}

impl super::StreamMachine for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaResponse;
    const PROTOCOL: &'static str = "delta";

    fn on_request(&mut self, request: &DeltaDiscoveryRequest) -> RequestOutcome {
        DeltaStream::on_request(self, request)
    }

    fn next_response(&mut self, snapshot: &Snapshot) -> Option<DeltaResponse> {
        DeltaStream::next_response(self, snapshot)
    }

    fn sync(&self, snapshot: &Snapshot) -> Vec<TypeSync> {
        DeltaStream::sync(self, snapshot)
    }

    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
}

impl super::OutgoingResponse for DeltaResponse {
    fn xds_type(&self) -> XdsType {
        self.xds_type
    }

    fn nonce(&self) -> &str {
        &self.nonce
    }

    fn resource_count(&self) -> usize {
        self.resources.len() + self.removed.len()
    }

    fn chunks(&self) -> Vec<bytes::Bytes> {
        DeltaResponse::chunks(self)
    }
}

#[cfg(test)]
mod tests;
