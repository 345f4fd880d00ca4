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

/// Every remembered group, by group id, and the order the compile that kept them put them in.
#[derive(Debug, Clone, Default)]
pub struct GroupMemo {
    /// Each with its place in `order`.
    by_id: HashMap<Arc<str>, (Arc<KeptGroup>, usize)>,
    /// The remembered groups in route order.
    order: Vec<Arc<KeptGroup>>,
    /// How many groups the compile that kept them built (rather than reused).
    built: usize,
}

#[derive(Debug)]
pub struct KeptGroup {
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

/// A group of this compile, in route order, and what the memo kept of it (the same candidates in
/// the same order), if anything.
pub struct Placed<'p> {
    /// Its index among the groups as formed.
    pub index: usize,
    kept: Option<&'p Arc<KeptGroup>>,
}

/// One compile's use of the memo: it reads the previous compile's and writes its own.
pub struct GroupPass<'p> {
    previous: &'p GroupMemo,
    next: GroupMemo,
}

impl<'p> GroupPass<'p> {
    pub fn continuing(previous: &'p GroupMemo) -> Self {
        let next = GroupMemo {
            by_id: HashMap::with_capacity(previous.by_id.len()),
            order: Vec::with_capacity(previous.order.len()),
            built: 0,
        };
        GroupPass { previous, next }
    }

    /// `groups` (as formed, in `name.namespace` order) in route order: by weight, highest first,
    /// equal weights in reverse order of forming (Emissary's reversed stable sort). A group with
    /// the same candidates as a remembered one has the same weight, and its order relative to the
    /// other such groups is as it was, so only the groups that are new (or changed) are sorted,
    /// and each is put into place by a binary search: sorting every group again was a twentieth of a
    /// one-Mapping reload at 50,000 Mappings.
    pub fn order(&self, groups: &[Group<'_>]) -> Vec<Placed<'p>> {
        let previous = self.previous;
        let mut at_place: Vec<Option<(usize, &'p Arc<KeptGroup>)>> = vec![None; previous.order.len()];
        let mut fresh = Vec::new();
        for (index, group) in groups.iter().enumerate() {
            match previous.by_id.get(&**group.id) {
                Some((kept, place)) if same_candidates(kept, group) => at_place[*place] = Some((index, kept)),
                _ => fresh.push(index),
            }
        }
        let before = |a: usize, b: usize| (groups[a].weight, a) > (groups[b].weight, b);
        fresh.sort_unstable_by(|&a, &b| (groups[b].weight, b).cmp(&(groups[a].weight, a)));
        let kept: Vec<(usize, &'p Arc<KeptGroup>)> = at_place.into_iter().flatten().collect();
        let mut placed = Vec::with_capacity(groups.len());
        let mut from = 0;
        for index in fresh {
            let until = from + kept[from..].partition_point(|&(other, _)| before(other, index));
            placed.extend(kept[from..until].iter().map(|&(index, kept)| Placed { index, kept: Some(kept) }));
            placed.push(Placed { index, kept: None });
            from = until;
        }
        placed.extend(kept[from..].iter().map(|&(index, kept)| Placed { index, kept: Some(kept) }));
        placed
    }

    /// `group`'s routes (`place` is from [`GroupPass::order`]; groups are asked for in that
    /// order) as last time if it is the same group with the same cluster names, else
    /// `build()`'s; `None` (not remembered) when `build` makes none.
    pub fn routes(
        &mut self,
        group: &Group<'_>,
        place: &Placed<'p>,
        cluster_names: &EnvoyNames,
        build: impl FnOnce() -> Option<Vec<Route>>,
    ) -> Option<Vec<Arc<Route>>> {
        let identities = || {
            candidates(group).filter_map(|candidate| match &candidate.action {
                RouteAction::Forward(forward) => Some(forward.cluster.as_str()),
                _ => None,
            })
        };
        // Names that follow from the identities (the same candidates have the same ones) need
        // not be looked up; only renamed ones can differ from last time.
        let renamed = identities().any(|identity| cluster_names.renamed(identity));
        let clusters: Option<Vec<&str>> =
            renamed.then(|| identities().map(|identity| cluster_names[identity].as_str()).collect());
        let same_clusters = |kept: &KeptGroup| match (&kept.renamed_clusters, &clusters) {
            (None, None) => true,
            (Some(kept), Some(now)) => kept.len() == now.len() && kept.iter().zip(now).all(|(a, b)| a == b),
            _ => false,
        };
        let kept = match place.kept {
            Some(kept) if same_clusters(kept) => kept.clone(),
            _ => {
                let routes = build()?.into_iter().map(Arc::new).collect();
                self.next.built += 1;
                Arc::new(KeptGroup {
                    candidates: candidates(group).cloned().collect(),
                    renamed_clusters: clusters.map(|names| names.iter().map(|name| name.to_string()).collect()),
                    routes,
                })
            }
        };
        let routes = kept.routes.clone();
        self.next.by_id.insert(group.id.clone(), (kept.clone(), self.next.order.len()));
        self.next.order.push(kept);
        Some(routes)
    }

    pub fn finish(self) -> GroupMemo {
        self.next
    }
}

/// The routed members in the order they joined, then the redirect, then the shadow.
fn candidates<'g, 'c>(group: &'g Group<'c>) -> impl Iterator<Item = &'c Arc<Candidate>> + 'g {
    group.members.iter().copied().chain(group.redirect).chain(group.shadow)
}

fn same_candidates(kept: &KeptGroup, group: &Group<'_>) -> bool {
    kept.candidates.len() == candidates(group).count()
        && kept.candidates.iter().zip(candidates(group)).all(|(a, b)| Arc::ptr_eq(a, b))
}
