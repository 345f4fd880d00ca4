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

use super::cluster_set::EnvoyNames;
use super::group::{Candidate, Group, GroupId};
use super::ir::{Route, RouteAction};
use super::select::meta_order;
use crate::model::Meta;
use std::cmp::Ordering;
use std::sync::Arc;

/// Every remembered group in the order the compile that kept them formed them, and in route order.
#[derive(Debug, Clone, Default)]
pub struct GroupMemo {
    /// Formed by Emissary's probe Mappings (formed first), then the others in the order they
    /// were formed: by their first Mapping's processing order, which the next compile forms them
    /// in too, so each is found by walking the two lists side by side (a table of every group,
    /// built again each time, was a tenth of a one-Mapping reload at 50,000 Mappings).
    formed: Vec<Formed>,
    /// How many of `formed` the probe Mappings formed.
    probe_groups: usize,
    /// How many groups are in route order (each `Formed` knows its place). The groups are held
    /// once, in `formed`, and moved from one compile's memo to the next: a second list of them
    /// in route order, cloned and dropped every compile, touched every group twice more.
    placed: usize,
    /// The cluster names the routes were checked against.
    names: Option<Arc<EnvoyNames>>,
    /// How many groups the compile that kept them built (rather than reused).
    built: usize,
}

#[derive(Debug, Clone)]
struct Formed {
    kept: Arc<KeptGroup>,
    /// Its place in route order.
    place: usize,
}

#[derive(Debug)]
pub struct KeptGroup {
    id: GroupId,
    /// The Mapping whose candidate formed the group.
    formed_by: Arc<Meta>,
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
/// the same order), if anything: moved out of the previous compile's memo.
pub struct Placed {
    /// Its index among the groups as formed.
    pub index: usize,
    kept: Option<Arc<KeptGroup>>,
}

/// One compile's use of the memo: it takes the previous compile's apart and writes its own.
pub struct GroupPass {
    /// The previous compile's memo, until [`GroupPass::order`] moves its groups out.
    previous: GroupMemo,
    /// Whether every cluster renamed now was renamed, to the same name, last time (and no other
    /// one was): then a group with the same candidates forwards to clusters of the same names.
    same_names: bool,
    /// This compile's groups by formation index, as they are remembered.
    formed: Vec<Option<Formed>>,
    probe_groups: usize,
    next: GroupMemo,
}

impl GroupPass {
    pub fn continuing(previous: GroupMemo, names: &Arc<EnvoyNames>) -> Self {
        let same_names =
            previous.names.as_ref().is_some_and(|kept| Arc::ptr_eq(kept, names) || kept.same_renames(names));
        let next = GroupMemo { names: Some(names.clone()), ..GroupMemo::default() };
        GroupPass { previous, same_names, formed: Vec::new(), probe_groups: 0, next }
    }

    /// `groups` (as formed: the first `probe_groups` by the probe Mappings, the others in
    /// `name.namespace` order) in route order: by weight, highest first, equal weights in reverse
    /// order of forming (Emissary's reversed stable sort). A group with the same candidates as a
    /// remembered one has the same weight, and its order relative to the other such groups is as
    /// it was, so only the groups that are new (or changed) are sorted, and each is put into
    /// place by a binary search: sorting every group again was a twentieth of a one-Mapping
    /// reload at 50,000 Mappings.
    pub fn order(&mut self, groups: &[Group<'_>], probe_groups: usize) -> Vec<Placed> {
        let previous = std::mem::take(&mut self.previous);
        self.formed = Vec::with_capacity(groups.len());
        self.formed.resize_with(groups.len(), || None);
        self.probe_groups = probe_groups;
        let mut at_place: Vec<Option<(usize, Arc<KeptGroup>)>> = Vec::with_capacity(previous.placed);
        at_place.resize_with(previous.placed, || None);
        let mut fresh = Vec::new();
        let mut formed = previous.formed.into_iter();
        let earlier_probes: Vec<Formed> = formed.by_ref().take(previous.probe_groups).collect();
        let mut earlier = formed.peekable();
        for (index, group) in groups.iter().enumerate() {
            let remembered = if index < probe_groups {
                earlier_probes.iter().find(|formed| formed.kept.id == *group.id).cloned()
            } else {
                remembered(&mut earlier, group)
            };
            match remembered {
                Some(formed) if same_candidates(&formed.kept, group) => {
                    at_place[formed.place] = Some((index, formed.kept));
                }
                _ => fresh.push(index),
            }
        }
        let before = |a: usize, b: usize| (groups[a].weight, a) > (groups[b].weight, b);
        fresh.sort_unstable_by(|&a, &b| (groups[b].weight, b).cmp(&(groups[a].weight, a)));
        let kept: Vec<(usize, Arc<KeptGroup>)> = at_place.into_iter().flatten().collect();
        let mut placed = Vec::with_capacity(groups.len());
        let mut kept = kept.into_iter().peekable();
        for index in fresh {
            while let Some((index, kept)) = kept.next_if(|&(other, _)| before(other, index)) {
                placed.push(Placed { index, kept: Some(kept) });
            }
            placed.push(Placed { index, kept: None });
        }
        placed.extend(kept.map(|(index, kept)| Placed { index, kept: Some(kept) }));
        placed
    }

    /// `group`'s routes (`place` is from [`GroupPass::order`]; groups are asked for in that
    /// order) as last time if it is the same group with the same cluster names, else
    /// `build()`'s; `None` (not remembered) when `build` makes none.
    pub fn routes(
        &mut self,
        group: &Group<'_>,
        place: Placed,
        cluster_names: &EnvoyNames,
        build: impl FnOnce() -> Option<Vec<Route>>,
    ) -> Option<&[Arc<Route>]> {
        let index = place.index;
        let kept = match place.kept {
            Some(kept) if self.same_names => kept,
            kept => self.check_or_build(group, kept, cluster_names, build)?,
        };
        let formed = self.formed[index].insert(Formed { kept, place: self.next.placed });
        self.next.placed += 1;
        Some(&formed.kept.routes)
    }

    /// The kept group if the clusters its routes forward to have the names they had, else a
    /// group built anew.
    fn check_or_build(
        &mut self,
        group: &Group<'_>,
        kept: Option<Arc<KeptGroup>>,
        cluster_names: &EnvoyNames,
        build: impl FnOnce() -> Option<Vec<Route>>,
    ) -> Option<Arc<KeptGroup>> {
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
        if let Some(kept) = kept.filter(|kept| same_clusters(kept)) {
            return Some(kept);
        }
        let routes = build()?.into_iter().map(Arc::new).collect();
        self.next.built += 1;
        Some(Arc::new(KeptGroup {
            id: group.id.clone(),
            formed_by: group.formed_by.meta.clone(),
            candidates: candidates(group).cloned().collect(),
            renamed_clusters: clusters.map(|names| names.iter().map(|name| name.to_string()).collect()),
            routes,
        }))
    }

    pub fn finish(self) -> GroupMemo {
        let probe_groups = self.formed[..self.probe_groups].iter().flatten().count();
        let formed = self.formed.into_iter().flatten().collect();
        GroupMemo { formed, probe_groups, ..self.next }
    }
}

/// The remembered group `group` may be (same id), walking past the ones formed before it that
/// are gone. A group formed by another Mapping than last time, or by one whose place ties with
/// another's, may be missed and is built again: reuse never depends on the walk, only on the
/// group having the same candidates.
fn remembered(earlier: &mut std::iter::Peekable<impl Iterator<Item = Formed>>, group: &Group<'_>) -> Option<Formed> {
    loop {
        let formed = earlier.peek()?;
        if formed.kept.id == *group.id {
            return earlier.next();
        }
        match meta_order(&formed.kept.formed_by, &group.formed_by.meta) {
            // Gone, or now formed by a later Mapping.
            Ordering::Less | Ordering::Equal => {
                earlier.next();
            }
            // `group` is new, or formed by an earlier Mapping than before.
            Ordering::Greater => return None,
        }
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
