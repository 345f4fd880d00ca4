//! The state-of-the-world protocol for one stream, as a pure state machine: a request or a new
//! snapshot in, responses and NACK reports out. The tonic code only pumps messages through it.
//!
//! Rules (xDS protocol, and go-control-plane's known bugs avoided):
//! * every response carries a fresh nonce; a request whose nonce is not the last one sent for
//!   its type is stale and ignored;
//! * a request with `error_detail` is a NACK: it is reported, and the rejected version is not
//!   sent again (only a different version is);
//! * LDS/CDS are wildcard unless names are given; RDS/EDS/SDS answer the names asked for, and
//!   answer again when a name that was missing appears;
//! * nothing is sent when what the stream would receive did not change;
//! * on ADS, types go out secrets → clusters → endpoints → listeners → routes; clusters and
//!   secrets that disappear are first kept (make) and only removed after the listeners and
//!   routes that stop using them (break).

use super::wire::{Payload, SotwResponse};
use super::{request_type, Nack};

/// What the stream must do after an event.
pub type Output = super::Output<SotwResponse>;
use crate::snapshot::{Entry, Snapshot, TypeSnapshot};
use crate::xds::XdsType;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Subscription {
    Wildcard,
    Names(BTreeSet<String>),
}

#[derive(Debug)]
struct TypeState {
    subscription: Subscription,
    last_nonce: Option<String>,
    /// Version of the last response: what the client has, or has rejected.
    sent_version: Option<String>,
    /// What the last response held, for NACK reports and make-before-break.
    sent: Payload,
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

    fn nonce(&mut self) -> String {
        self.next_nonce += 1;
        self.next_nonce.to_string()
    }

    pub fn on_request(&mut self, request: &DiscoveryRequest, snapshot: &Snapshot) -> Output {
        let mut output = Output::default();
        let Some(xds_type) = request_type(&request.type_url, self.fixed_type) else {
            output.ignored += 1;
            return output;
        };
        let subscription = if request.resource_names.is_empty() && xds_type.is_wildcard_by_default()
            || request.resource_names.iter().any(|n| n == "*")
        {
            Subscription::Wildcard
        } else {
            Subscription::Names(request.resource_names.iter().cloned().collect())
        };

        match self.types.get_mut(&xds_type) {
            None => {
                let state =
                    TypeState { subscription, last_nonce: None, sent_version: None, sent: Payload::Subset(Vec::new()) };
                self.types.insert(xds_type, state);
            }
            Some(state) => {
                if state.last_nonce.as_deref() != Some(request.response_nonce.as_str()) {
                    // Stale (answers an older response) or a client that lost our nonce: the
                    // protocol says to ignore it; the client re-sends for the latest nonce.
                    output.ignored += 1;
                    return output;
                }
                if let Some(status) = &request.error_detail {
                    output.nacks.push(Nack {
                        xds_type,
                        version: state.sent_version.clone().unwrap_or_default(),
                        resource_names: state.sent.names(),
                        message: status.message.clone(),
                    });
                }
                state.subscription = subscription;
            }
        }
        if let Some(response) = self.respond(xds_type, snapshot.of(xds_type)) {
            output.responses.push(response);
        }
        output
    }

    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Output {
        let mut output = Output::default();
        let ordered = self.fixed_type.is_none();
        let mut contract = Vec::new();
        for xds_type in XdsType::PUSH_ORDER {
            if !self.types.contains_key(&xds_type) {
                continue;
            }
            let current = snapshot.of(xds_type);
            if ordered && matches!(xds_type, XdsType::Secret | XdsType::Cluster) {
                // Make before break: keep what disappears until listeners and routes moved on.
                match self.expanded(xds_type, current) {
                    Expansion::NothingVanishes => {}
                    Expansion::AlreadyHeld => {
                        contract.push(xds_type);
                        continue;
                    }
                    Expansion::Send(response) => {
                        output.responses.push(response);
                        contract.push(xds_type);
                        continue;
                    }
                }
            }
            output.responses.extend(self.respond(xds_type, current));
        }
        for xds_type in contract {
            output.responses.extend(self.respond(xds_type, snapshot.of(xds_type)));
        }
        output
    }

    /// The resources this stream should hold for a type, and their version.
    fn target(&self, xds_type: XdsType, current: &Arc<TypeSnapshot>) -> (Payload, String) {
        match &self.types[&xds_type].subscription {
            Subscription::Wildcard => (Payload::All(current.clone()), current.version.clone()),
            Subscription::Names(names) => {
                let entries: Vec<Entry> = names.iter().filter_map(|n| current.get(n).cloned()).collect();
                let version = version_of(&entries);
                (Payload::Subset(entries), version)
            }
        }
    }

    fn respond(&mut self, xds_type: XdsType, current: &Arc<TypeSnapshot>) -> Option<SotwResponse> {
        let (entries, version) = self.target(xds_type, current);
        let state = &self.types[&xds_type];
        if state.sent_version.as_deref() == Some(version.as_str()) {
            return None; // the client has it, or rejected it: never re-send the same version
        }
        // Named resources that do not exist (yet): wait for them rather than answer "nothing".
        let waiting =
            matches!(state.subscription, Subscription::Names(_)) && entries.is_empty() && state.sent.is_empty();
        if waiting {
            return None;
        }
        Some(self.send(xds_type, entries, version))
    }

    fn send(&mut self, xds_type: XdsType, entries: Payload, version: String) -> SotwResponse {
        let nonce = self.nonce();
        let state = self.types.get_mut(&xds_type).expect("type state exists");
        state.last_nonce = Some(nonce.clone());
        state.sent_version = Some(version.clone());
        state.sent = entries.clone();
        SotwResponse { xds_type, version, nonce, resources: entries }
    }

    /// Whether the update of a type removes resources the client holds, and if so what to send
    /// before the removal: the new set plus the disappearing resources.
    fn expanded(&mut self, xds_type: XdsType, current: &Arc<TypeSnapshot>) -> Expansion {
        let state = &self.types[&xds_type];
        if state.sent_version.is_none() {
            return Expansion::NothingVanishes;
        }
        let (entries, _) = self.target(xds_type, current);
        let kept: BTreeSet<&str> = entries.entries().map(|e| &*e.name).collect();
        let vanishing: Vec<Entry> = state.sent.entries().filter(|e| !kept.contains(&*e.name)).cloned().collect();
        if vanishing.is_empty() {
            return Expansion::NothingVanishes;
        }
        let mut union: Vec<Entry> = entries.entries().cloned().collect();
        union.extend(vanishing);
        union.sort_by(|a, b| a.name.cmp(&b.name));
        let version = version_of(&union);
        if state.sent_version.as_deref() == Some(version.as_str()) {
            return Expansion::AlreadyHeld; // only removals: nothing to make first
        }
        Expansion::Send(self.send(xds_type, Payload::Subset(union), version))
    }
}

/// What a type's update means for make-before-break.
enum Expansion {
    /// Nothing the client holds disappears: send the update as it is.
    NothingVanishes,
    /// Something disappears, but the client already holds the new set plus what disappears: the
    /// removal alone remains, after the listeners and routes.
    AlreadyHeld,
    /// Send the new set plus what disappears now; the removal follows the listeners and routes.
    Send(SotwResponse),
}

/// Version of a named subset: a hash over its names and versions.
fn version_of(entries: &[Entry]) -> String {
    let mut hasher = Sha1::new();
    for entry in entries {
        hasher.update(entry.name.as_bytes());
        hasher.update([0]);
        hasher.update(entry.version.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
}

impl super::StreamMachine for SotwStream {
    type Request = DiscoveryRequest;
    type Response = SotwResponse;
    const PROTOCOL: &'static str = "sotw";

    fn on_request(&mut self, request: &DiscoveryRequest, snapshot: &Snapshot) -> Output {
        SotwStream::on_request(self, request, snapshot)
    }

    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Output {
        SotwStream::on_snapshot(self, snapshot)
    }
}

impl super::OutgoingResponse for SotwResponse {
    fn xds_type(&self) -> XdsType {
        self.xds_type
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
