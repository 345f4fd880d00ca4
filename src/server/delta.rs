//! The incremental (delta) protocol for one stream, as a pure state machine.
//!
//! The stream remembers what the client holds as "snapshot S, restricted to these names" rather
//! than a per-stream copy of every name and version, so a thousand streams over a large config
//! cost a thousand pointers, not a thousand maps. Rules:
//! * only resources whose version differs from what the client holds are sent; resources that
//!   left the snapshot are listed in `removed_resources`;
//! * subscriptions change with every request (stale nonce or not); ACK/NACK is matched by nonce,
//!   and a NACKed version is not sent again;
//! * on ADS, updates go out secrets → clusters → endpoints → listeners → routes, and removals of
//!   secrets and clusters go out last.

use super::wire::{DeltaResponse, Payload};
use super::{request_type, Nack};

/// What the stream must do after an event.
pub type Output = super::Output<DeltaResponse>;
use crate::snapshot::{Entry, Snapshot, TypeSnapshot};
use crate::xds::XdsType;
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

    pub fn on_request(&mut self, request: &DeltaDiscoveryRequest, snapshot: &Snapshot) -> Output {
        let mut output = Output::default();
        let Some(xds_type) = request_type(&request.type_url, self.fixed_type) else {
            output.ignored += 1;
            return output;
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
                }
            }
        }
        for name in &request.resource_names_unsubscribe {
            match name.as_str() {
                "*" => state.wildcard = false,
                _ => {
                    state.names.remove(name);
                    state.known.forget(name);
                }
            }
        }
        if !request.response_nonce.is_empty() {
            let answered = state.recent.iter().find(|sent| sent.nonce == request.response_nonce);
            match (answered, &request.error_detail) {
                (Some(sent), Some(status)) => output.nacks.push(Nack {
                    xds_type,
                    version: sent.system_version.clone(),
                    resource_names: sent.names(),
                    message: status.message.clone(),
                }),
                (None, _) => output.ignored += 1, // stale: subscriptions above still apply
                _ => {}
            }
        }
        output.responses.extend(self.respond(xds_type, snapshot, true));
        output
    }

    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Output {
        let mut output = Output::default();
        let ordered = self.fixed_type.is_none();
        let mut deferred = Vec::new();
        for xds_type in XdsType::PUSH_ORDER {
            if !self.types.contains_key(&xds_type) {
                continue;
            }
            let defer_removals = ordered && matches!(xds_type, XdsType::Secret | XdsType::Cluster);
            output.responses.extend(self.respond(xds_type, snapshot, !defer_removals));
            if defer_removals {
                deferred.push(xds_type);
            }
        }
        for xds_type in deferred {
            output.responses.extend(self.respond(xds_type, snapshot, true));
        }
        output
    }

    fn respond(&mut self, xds_type: XdsType, snapshot: &Snapshot, with_removals: bool) -> Option<DeltaResponse> {
        let current = snapshot.of(xds_type);
        let state = self.types.get_mut(&xds_type).expect("type state exists");
        let in_sync = state.known.extra.is_empty()
            && state.known.base.as_ref().is_some_and(|b| Arc::ptr_eq(b, current))
            && (state.wildcard && state.known.filter.is_none());
        if in_sync {
            return None;
        }

        let targets: Vec<&Entry> = if state.wildcard {
            current.entries.values().collect()
        } else {
            state.names.iter().filter_map(|n| current.get(n)).collect()
        };
        let changed: Vec<Entry> = targets
            .iter()
            .filter(|e| state.known.version(&e.name) != Some(&*e.version))
            .map(|e| (*e).clone())
            .collect();
        let vanished: Vec<Arc<str>> =
            state.known.names().into_iter().filter(|n| state.in_scope(n) && current.get(n).is_none()).collect();
        let removed = if with_removals { vanished.clone() } else { Vec::new() };

        // What the client holds afterwards: the targets, plus vanished resources not yet removed.
        let mut extra = BTreeMap::new();
        if !with_removals {
            for name in &vanished {
                if let Some(version) = state.known.version(name) {
                    extra.insert(name.clone(), Arc::from(version));
                }
            }
        }
        let filter = (!state.wildcard).then(|| targets.iter().map(|e| e.name.clone()).collect());
        state.known = Known { base: Some(current.clone()), filter, extra };

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
        });
        if state.recent.len() > RECENT_RESPONSES {
            state.recent.pop_front();
        }
        Some(DeltaResponse { xds_type, system_version, nonce, resources, removed })
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

    fn on_request(&mut self, request: &DeltaDiscoveryRequest, snapshot: &Snapshot) -> Output {
        DeltaStream::on_request(self, request, snapshot)
    }

    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Output {
        DeltaStream::on_snapshot(self, snapshot)
    }
}

impl super::OutgoingResponse for DeltaResponse {
    fn xds_type(&self) -> XdsType {
        self.xds_type
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
