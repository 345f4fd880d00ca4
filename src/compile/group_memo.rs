//! Each canary group's routes, remembered from one compile to the next, so that a change to one
//! Mapping builds its group's routes and no others.
//!
//! A group's routes are made from its candidates (in the order they joined), the Module's
//! defaults and the Envoy names of the clusters they forward to. The candidates are shared
//! (`Arc`) from the Mapping memo (`mapping_memo.rs`): a Mapping that was not compiled again is
//! the same candidate, at the same address, and a Module change compiles every Mapping again, so
//! every candidate is new. A group is the same as last time when its candidates are the same ones
//! in the same order and its clusters have the same names (a collision elsewhere can rename one;
//! a name not renamed follows from the cluster's identity, so only renamed ones are compared);
//! its routes are then last time's, shared, and admission knows them by address. Groups whose
//! weights are refused, and groups with nothing to route, are not remembered: they are built
//! (and report) every time.

use super::cluster::EnvoyNames;
use super::group::{Candidate, Group};
use super::ir::{Route, RouteAction};
use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

/// Every remembered group, by group id.
#[derive(Debug, Clone, Default)]
pub struct GroupMemo {
    by_id: HashMap<Arc<str>, Arc<KeptGroup>>,
    /// How many groups the compile that kept them built (rather than reused).
    built: usize,
}

#[derive(Debug)]
struct KeptGroup {
    /// The routed members in the order they joined, then the redirect, then the shadow. Held,
    /// not only compared by address, so that no other candidate can take an address over.
    candidates: Vec<Arc<Candidate>>,
    /// When any of the clusters they forward to was renamed (see [`EnvoyNames::renamed`]):
    /// the Envoy names of them all, in that order.
    renamed_clusters: Option<Vec<String>>,
    routes: Vec<Arc<Route>>,
}

impl GroupMemo {
    pub fn built(&self) -> usize {
        self.built
    }
}

/// One compile's use of the memo: it reads the previous compile's and writes its own.
pub struct GroupPass<'p> {
    previous: &'p GroupMemo,
    next: GroupMemo,
}

impl<'p> GroupPass<'p> {
    pub fn continuing(previous: &'p GroupMemo) -> Self {
        GroupPass { previous, next: GroupMemo { by_id: HashMap::with_capacity(previous.by_id.len()), built: 0 } }
    }

    /// `group`'s routes as last time if it is the same group with the same cluster names, else
    /// `build()`'s; `None` (not remembered) when `build` makes none.
    pub fn routes(
        &mut self,
        group: &Group<'_>,
        cluster_names: &EnvoyNames,
        build: impl FnOnce() -> Option<Vec<Route>>,
    ) -> Option<Vec<Arc<Route>>> {
        let candidates = || group.members.iter().copied().chain(group.redirect).chain(group.shadow);
        let identities = || {
            candidates().filter_map(|candidate| match &candidate.action {
                RouteAction::Forward(forward) => Some(forward.cluster.as_str()),
                _ => None,
            })
        };
        // Names that follow from the identities (the same candidates have the same ones) need
        // not be looked up; only renamed ones can differ from last time.
        let renamed = identities().any(|identity| cluster_names.renamed(identity));
        let clusters: Option<Vec<&str>> =
            renamed.then(|| identities().map(|identity| cluster_names[identity].as_str()).collect());
        let same = |kept: &KeptGroup| {
            kept.candidates.len() == candidates().count()
                && kept.candidates.iter().zip(candidates()).all(|(a, b)| Arc::ptr_eq(a, b))
                && match (&kept.renamed_clusters, &clusters) {
                    (None, None) => true,
                    (Some(kept), Some(now)) => kept.len() == now.len() && kept.iter().zip(now).all(|(a, b)| a == b),
                    _ => false,
                }
        };
        let kept = match self.previous.by_id.get(&**group.id) {
            Some(kept) if same(kept) => kept.clone(),
            _ => {
                let routes = build()?.into_iter().map(Arc::new).collect();
                self.next.built += 1;
                Arc::new(KeptGroup {
                    candidates: candidates().cloned().collect(),
                    renamed_clusters: clusters.map(|names| names.iter().map(|name| name.to_string()).collect()),
                    routes,
                })
            }
        };
        let routes = kept.routes.clone();
        self.next.by_id.insert(group.id.clone(), kept);
        Some(routes)
    }

    pub fn finish(self) -> GroupMemo {
        self.next
    }
}
