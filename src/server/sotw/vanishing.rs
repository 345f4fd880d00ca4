//! Make before break in the state-of-the-world protocol: what a full-state type's response keeps
//! of what the client was sent.

use super::Sent;
use crate::server::wire::Payload;
use crate::snapshot::Entry;
use std::sync::Arc;

/// `resources` plus what the client was sent that `resources` no longer holds.
///
/// Every plan of a full-state type asks this, several times per response and per ACK (the
/// break step asks whether the types that name it are settled), so it must not cost a pass
/// over tens of thousands of names when nothing vanished: the same content as was sent is
/// recognised by its version, and otherwise the two lists, both in name order, are walked side
/// by side (a set of every name, built on each ask, was half of the server's CPU for a one-Mapping
/// change at 50,000 clusters).
pub(super) fn with_vanishing(resources: Payload, sent: Option<&Sent>) -> Payload {
    let Some(sent) = sent else { return resources };
    if let (Payload::All(now), Payload::All(then)) = (&resources, &sent.resources) {
        // The version hashes every (name, version): the same version holds the same names.
        if Arc::ptr_eq(now, then) || now.version == then.version {
            return resources;
        }
    }
    let vanishing = vanished(resources.entries(), sent.resources.entries());
    if vanishing.is_empty() {
        return resources;
    }
    let mut union: Vec<Entry> = resources.entries().cloned().chain(vanishing).collect();
    union.sort_by(|a, b| a.name.cmp(&b.name));
    Payload::Subset(union)
}

/// The entries of `then` whose names `now` does not hold; both in name order, as every
/// [`Payload`] is.
pub(super) fn vanished<'a>(now: impl Iterator<Item = &'a Entry>, then: impl Iterator<Item = &'a Entry>) -> Vec<Entry> {
    let mut now = now.peekable();
    let mut vanished = Vec::new();
    for entry in then {
        while now.next_if(|held| held.name < entry.name).is_some() {}
        if now.next_if(|held| held.name == entry.name).is_none() {
            vanished.push(entry.clone());
        }
    }
    vanished
}
