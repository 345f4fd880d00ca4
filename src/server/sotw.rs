//! The state-of-the-world protocol for one stream, as a pure state machine. Requests change what
//! the client wants; [`SotwStream::next_response`] says what to send next, given the latest
//! snapshot. The stream task asks for the next response only when the client can take one, so
//! a slow client gets the latest state, never a queue of superseded ones.
//!
//! Rules (xDS protocol, and go-control-plane's known bugs avoided):
//! * every response carries a fresh nonce; a request is stale (ignored) only if it answers a nonce
//!   other than the latest one sent for its type — while nothing was sent, every request counts;
//! * a request with `error_detail` is a NACK: it is reported, and the rejected version is not
//!   sent again (only a different version is);
//! * LDS/CDS are wildcard unless names are given, and a response holds their whole set; RDS, EDS
//!   and SDS answer the names asked for, answer again when a missing name appears, and keep a
//!   vanished resource in their responses while the client still asks for it (a response that
//!   leaves out a name Envoy watches is a NACK: "Missing SDS resources");
//! * nothing is sent when what the stream would receive did not change, unless the client adds
//!   names to its subscription (it may have dropped what it was sent: Envoy drops a secret or
//!   route configuration nothing names, and asks for it again later with the same version);
//! * on ADS, types go out in push order (secrets, clusters, endpoints, listeners, routes), and a
//!   cluster that disappears is first kept (make) and removed only once everything that could
//!   name it has been updated (break) — also for the first responses of a stream;
//! * a client that comes back (reconnect, restart, failover to a replica) saying it holds a
//!   version the snapshot knows (current or recent) is treated as holding it: nothing is re-sent
//!   if nothing changed, and make-before-break keeps what it holds.

use super::wire::{Payload, SotwResponse};
use super::{request_type, Nack, RequestOutcome, RequestType, TypeSync};
use crate::snapshot::{Entry, Snapshot, TypeSnapshot};
use crate::xds::XdsType;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use vanishing::with_vanishing;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Subscription {
    Wildcard,
    Names(BTreeSet<String>),
}

/// The latest response of a type: what the client holds, or has rejected.
#[derive(Debug)]
struct Sent {
    version: String,
    resources: Payload,
}

#[derive(Debug)]
struct TypeState {
    subscription: Subscription,
    /// `None` until the first response of this type.
    last_nonce: Option<String>,
    sent: Option<Sent>,
    /// The version of a full-state type (LDS, CDS) the client said it holds in its first request
    /// (it comes back from another stream), until it is found among the snapshot's contents or a
    /// response replaces it.
    claimed: Option<String>,
    /// The client added names to its subscription: answer even if the version did not change
    /// (it may have dropped a resource it held, which Envoy does when nothing names it).
    asked_anew: bool,
    /// The latest version the client rejected: never sent again, even when asked anew.
    rejected: Option<String>,
    /// The version the client last said it accepted (an ACK, or a recognised claim).
    acked: Option<String>,
}

/// Which step of an update a response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Make: new and changed resources, keeping those that disappear.
    Make,
    /// Break: the final set, once everything that could name the vanished resources moved on.
    Break,
    /// One step (per-type services: nothing to order against).
    Whole,
}

#[derive(Debug)]
pub struct SotwStream {
    /// Per-type services serve one type; ADS (None) serves all.
    fixed_type: Option<XdsType>,
    types: BTreeMap<XdsType, TypeState>,
    next_nonce: u64,
}

impl SotwStream {
    pub fn new(fixed_type: Option<XdsType>) -> SotwStream {
        SotwStream { fixed_type, types: BTreeMap::new(), next_nonce: 0 }
    }

    /// Takes a request: subscriptions, ACK or NACK. Responses come from [`Self::next_response`].
    pub fn on_request(&mut self, request: &DiscoveryRequest) -> RequestOutcome {
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
        let wildcard = request.resource_names.iter().any(|n| n == "*")
            || request.resource_names.is_empty() && xds_type.is_wildcard_by_default();
        let subscription = if wildcard {
            Subscription::Wildcard
        } else {
            Subscription::Names(request.resource_names.iter().cloned().collect())
        };
        match self.types.get_mut(&xds_type) {
            None => {
                // Only a full-state type's version says what the client holds: for the named
                // types Envoy keeps the type's last version even after it dropped every resource
                // (it drops what nothing names), so such a claim is no promise.
                let claimed = (xds_type.is_full_state_in_sotw() && !request.version_info.is_empty())
                    .then(|| request.version_info.clone());
                self.types.insert(
                    xds_type,
                    TypeState {
                        subscription,
                        last_nonce: None,
                        sent: None,
                        claimed,
                        asked_anew: false,
                        rejected: None,
                        acked: None,
                    },
                );
            }
            Some(state) => {
                if state.last_nonce.as_ref().is_some_and(|last| *last != request.response_nonce) {
                    // Answers an older response: the client re-sends for the latest nonce.
                    outcome.ignored += 1;
                    return outcome;
                }
                if let (None, Some(_)) = (&request.error_detail, &state.sent) {
                    state.acked = Some(request.version_info.clone());
                    outcome.acks.push((xds_type, request.response_nonce.clone()));
                }
                if let (Some(status), Some(sent)) = (&request.error_detail, &state.sent) {
                    outcome.nacks.push(Nack {
                        xds_type,
                        version: sent.version.clone(),
                        resource_names: sent.resources.names(),
                        message: status.message.clone(),
                    });
                    state.rejected = Some(sent.version.clone());
                }
                if let (Subscription::Names(old), Subscription::Names(new)) = (&state.subscription, &subscription) {
                    state.asked_anew |= !new.is_subset(old);
                }
                state.subscription = subscription;
            }
        }
        outcome
    }

    /// The next response this client should get to reach `snapshot`, or `None` when it holds
    /// everything it asked for (or rejected it).
    pub fn next_response(&mut self, snapshot: &Snapshot) -> Option<SotwResponse> {
        let steps: Vec<(XdsType, Step)> = match self.fixed_type {
            Some(fixed) => vec![(fixed, Step::Whole)],
            None => XdsType::PUSH_ORDER
                .into_iter()
                .map(|t| (t, Step::Make))
                .chain(XdsType::REMOVAL_ORDER.into_iter().map(|t| (t, Step::Break)))
                .collect(),
        };
        for xds_type in XdsType::ALL {
            self.recognise_claim(xds_type, snapshot);
        }
        for (xds_type, step) in steps {
            if step == Step::Break && !self.settled_referrers(xds_type, snapshot) {
                // Something that may name what would be removed is not up to date yet.
                continue;
            }
            if let Plan::Send(resources, version) = self.plan(xds_type, snapshot, step) {
                return Some(self.send(xds_type, resources, version));
            }
        }
        None
    }

    /// A client back from another stream (of this server, or of a replica: versions are content
    /// hashes) that holds a version we know: as if this stream had sent it.
    fn recognise_claim(&mut self, xds_type: XdsType, snapshot: &Snapshot) {
        let Some(state) = self.types.get_mut(&xds_type) else { return };
        if state.sent.is_some() {
            return;
        }
        if let Some(claimed) = state.claimed.take() {
            match recognise(state, xds_type, snapshot, &claimed) {
                Some(resources) => {
                    state.acked = Some(claimed.clone());
                    state.sent = Some(Sent { version: claimed, resources });
                }
                None => state.claimed = Some(claimed),
            }
        }
    }

    /// Whether every type that can name resources of `xds_type` is up to date on this stream.
    fn settled_referrers(&self, xds_type: XdsType, snapshot: &Snapshot) -> bool {
        xds_type
            .referenced_by()
            .iter()
            .all(|&referrer| matches!(self.plan(referrer, snapshot, Step::Make), Plan::UpToDate))
    }

    /// What a type's update would send now.
    fn plan(&self, xds_type: XdsType, snapshot: &Snapshot, step: Step) -> Plan {
        let Some(state) = self.types.get(&xds_type) else { return Plan::UpToDate };
        let Some(mut resources) = target(state, xds_type, snapshot.of(xds_type)) else { return Plan::Waiting };
        let keeps_vanishing = step == Step::Make && xds_type.is_full_state_in_sotw() && xds_type.defers_removals();
        if keeps_vanishing {
            resources = with_vanishing(resources, state.sent.as_ref());
        }
        if !xds_type.is_full_state_in_sotw() && resources.is_empty() {
            // Named types: nothing to say (an empty answer would be a NACK); while the client asks
            // for names it may hold from elsewhere, it is not up to date either.
            let asks = matches!(&state.subscription, Subscription::Names(names) if !names.is_empty());
            return if asks && state.sent.is_none() { Plan::Waiting } else { Plan::UpToDate };
        }
        let version = match &resources {
            Payload::All(all) => all.version.clone(),
            Payload::Subset(entries) => version_of(entries),
        };
        let held = state.sent.as_ref().is_some_and(|sent| sent.version == version);
        if held && !state.asked_anew || state.rejected.as_deref() == Some(version.as_str()) {
            return Plan::UpToDate; // the client has it, or rejected it: never re-send the same version
        }
        Plan::Send(resources, version)
    }

    fn send(&mut self, xds_type: XdsType, resources: Payload, version: String) -> SotwResponse {
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let state = self.types.get_mut(&xds_type).expect("planned types exist");
        state.last_nonce = Some(nonce.clone());
        state.sent = Some(Sent { version: version.clone(), resources: resources.clone() });
        state.claimed = None;
        state.asked_anew = false;
        SotwResponse { xds_type, version, nonce, resources }
    }
}

/// What a type's update would do.
enum Plan {
    /// The client holds what it should (or rejected it).
    UpToDate,
    /// Not answerable yet: a name the client may hold is missing.
    Waiting,
    Send(Payload, String),
}

/// The resources a type's subscription selects from the current snapshot; `None` while a
/// response would leave out a name the client may hold.
fn target(state: &TypeState, xds_type: XdsType, current: &Arc<TypeSnapshot>) -> Option<Payload> {
    let sent = |name: &str| state.sent.as_ref().and_then(|s| s.resources.entries().find(|e| &*e.name == name).cloned());
    Some(match (&state.subscription, xds_type.is_full_state_in_sotw()) {
        (Subscription::Wildcard, true) => Payload::All(current.clone()),
        (Subscription::Names(names), true) => {
            Payload::Subset(names.iter().filter_map(|n| current.get(n).cloned()).collect())
        }
        // Named types keep what the client was sent while it still asks for it. Before this
        // stream's first answer the client may hold names it got elsewhere (another stream, or
        // the valid part of a response it NACKed): until it lets go of a missing one, answering
        // would leave that name out, which Envoy NACKs.
        (Subscription::Names(names), false) => {
            let entries: Vec<Option<Entry>> =
                names.iter().map(|n| current.get(n).cloned().or_else(|| sent(n))).collect();
            if state.sent.is_none() && entries.iter().any(Option::is_none) {
                return None;
            }
            Payload::Subset(entries.into_iter().flatten().collect())
        }
        (Subscription::Wildcard, false) => {
            let kept = state.sent.iter().flat_map(|s| s.resources.entries()).filter(|e| current.get(&e.name).is_none());
            let mut entries: Vec<Entry> = current.entries.values().cloned().chain(kept.cloned()).collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Payload::Subset(entries)
        }
    })
}

/// What a client that says it holds `claimed` of a full-state type holds, if that version is one
/// of the snapshot's contents (current or recent) as this stream's subscription selects it, or
/// the make-before-break union of a newer and an older one (a client that left between the make
/// and the break of an update).
fn recognise(state: &TypeState, xds_type: XdsType, snapshot: &Snapshot, claimed: &str) -> Option<Payload> {
    let select = |content: &Arc<TypeSnapshot>| match &state.subscription {
        Subscription::Wildcard => Payload::All(content.clone()),
        Subscription::Names(names) => Payload::Subset(names.iter().filter_map(|n| content.get(n).cloned()).collect()),
    };
    let contents: Vec<Payload> = snapshot.contents(xds_type).map(select).collect();
    let version = |payload: &Payload| match payload {
        Payload::All(all) => all.version.clone(),
        Payload::Subset(entries) => version_of(entries),
    };
    if let Some(found) = contents.iter().find(|payload| version(payload) == claimed) {
        return Some(found.clone());
    }
    for (newer_index, newer) in contents.iter().enumerate() {
        for older in &contents[newer_index + 1..] {
            let union = with_vanishing(newer.clone(), Some(&Sent { version: String::new(), resources: older.clone() }));
            if version(&union) == claimed {
                return Some(union);
            }
        }
    }
    None
}

/// Version of a set of resources: a hash over its names and versions (the same hash a type
/// snapshot's version is, so the whole set has the same version either way).
fn version_of(entries: &[Entry]) -> String {
    let mut hasher = crate::snapshot::VersionHasher::default();
    for entry in entries {
        hasher.entry(&entry.name, &entry.version);
    }
    hasher.finish()
}

impl super::StreamMachine for SotwStream {
    type Request = DiscoveryRequest;
    type Response = SotwResponse;
    const PROTOCOL: &'static str = "sotw";

    fn on_request(&mut self, request: &DiscoveryRequest) -> RequestOutcome {
        SotwStream::on_request(self, request)
    }

    fn next_response(&mut self, snapshot: &Snapshot) -> Option<SotwResponse> {
        SotwStream::next_response(self, snapshot)
    }

    fn sync(&self, snapshot: &Snapshot) -> Vec<TypeSync> {
        self.types
            .iter()
            .map(|(&xds_type, state)| {
                let sends = |step| matches!(self.plan(xds_type, snapshot, step), Plan::Send(..));
                let pending = match self.fixed_type {
                    Some(_) => sends(Step::Whole),
                    None => sends(Step::Make) || self.settled_referrers(xds_type, snapshot) && sends(Step::Break),
                };
                let sent = state.sent.as_ref().map(|s| s.version.clone());
                TypeSync {
                    xds_type,
                    nacked: sent.is_some() && state.rejected == sent,
                    sent,
                    acked: state.acked.clone(),
                    pending,
                }
            })
            .collect()
    }

    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
}

impl super::OutgoingResponse for SotwResponse {
    fn xds_type(&self) -> XdsType {
        self.xds_type
    }

    fn nonce(&self) -> &str {
        &self.nonce
    }

    fn resource_count(&self) -> usize {
        self.resources.len()
    }

    fn chunks(&self) -> Vec<bytes::Bytes> {
        SotwResponse::chunks(self)
    }
}

#[cfg(test)]
mod tests;
mod vanishing;
