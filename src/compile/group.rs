//! Canary groups, as Emissary forms them (`IRHTTPMappingGroup`): Mappings with the same group id
//! (method, prefix, headers, query parameters, precedence) are one group. The first member
//! decides what the others must agree on (`CoreMappingKeys`); a group holds routed members, or
//! one `host_redirect` Mapping, plus at most one `shadow`. Members that break those rules are
//! refused with Emissary's reasons. Group-wide settings (headers to add, CORS, retries,
//! upgrades, ...) are flattened over the members, later members winning.

use super::ir::{ErrorResponses, HeaderToAdd, RegexRewrite, RetryPolicy, RouteAction};
use super::matching::{MatchSpec, RouteWeight};
use crate::diagnostic::{Diagnostic, ResourceId};
use crate::model::policy::CorsSpec;
use crate::model::Meta;
use indexmap::IndexMap;
use smallvec::SmallVec;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What a Mapping is to its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A route of the group (one canary member).
    Route,
    /// `shadow: true`: its service gets a copy of the group's requests.
    Shadow,
    /// `host_redirect: true`: the group answers with a redirect.
    Redirect,
}

/// One Mapping, ready to be grouped and ordered.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// `<namespace>/<name>`.
    pub name: String,
    pub meta: std::sync::Arc<Meta>,
    pub matcher: MatchSpec,
    pub role: Role,
    /// A forward (its cluster by identity until names are final), a redirect, or fail-closed.
    pub action: RouteAction,
    pub weight: Option<u32>,
    /// `routing.traffic_shift.<this>`: the Envoy cluster name, as in Emissary.
    pub runtime_key: String,
    pub shared: Shared,
    pub error_responses: ErrorResponses,
    pub core: Core,
    /// Its matcher's group id and route weight, computed once with the candidate (grouping and
    /// ordering every Mapping's candidate is done on every reload).
    pub group_id: GroupId,
    pub route_weight: RouteWeight,
}

/// Emissary's group id (before hashing), and a hash of it: grouping looks every candidate's id
/// up on every reload, and hashing each long id again was a twentieth of that.
#[derive(Debug, Clone)]
pub struct GroupId {
    id: Arc<str>,
    hash: u64,
}

/// One seed for every group id of the process, chosen at random: the ids come from Mappings, and a
/// seed anyone can know would let a Mapping author craft ids that collide. (Only lookups use the
/// hash; what is served does not depend on it.)
static GROUP_ID_HASHER: std::sync::LazyLock<foldhash::fast::RandomState> =
    std::sync::LazyLock::new(foldhash::fast::RandomState::default);

impl GroupId {
    pub fn new(id: &str) -> GroupId {
        use std::hash::BuildHasher;
        GroupId { id: Arc::from(id), hash: GROUP_ID_HASHER.hash_one(id) }
    }
}

impl std::ops::Deref for GroupId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.id
    }
}

impl PartialEq for GroupId {
    fn eq(&self, other: &Self) -> bool {
        // A candidate that was not compiled again shares its id with the group the memo kept.
        self.hash == other.hash && (Arc::ptr_eq(&self.id, &other.id) || self.id == other.id)
    }
}

impl Eq for GroupId {}

/// Writes only the carried hash: for tables of group ids, never for a digest of content (two ids
/// may share it; equality compares the ids themselves).
impl std::hash::Hash for GroupId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Hashes a [`GroupId`] as the hash it carries.
#[derive(Default)]
struct CarriedHash(u64);

impl std::hash::Hasher for CarriedHash {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only group ids, which write their hash, are hashed with this")
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Settings Emissary takes from the group rather than the Mapping: each member's value in
/// order, later members winning; headers to add are merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shared {
    pub add_request_headers: Option<Vec<HeaderToAdd>>,
    pub add_response_headers: Option<Vec<HeaderToAdd>>,
    pub remove_request_headers: Option<Vec<String>>,
    pub remove_response_headers: Option<Vec<String>>,
    pub cors: Option<CorsSpec>,
    pub retry: Option<RetryPolicy>,
    pub upgrades: Option<Vec<String>>,
    pub case_sensitive: Option<bool>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub high_priority: Option<bool>,
}

impl Shared {
    /// The group's value: `later` wins where it sets something.
    fn merge(&mut self, later: &Shared) {
        fn headers(into: &mut Option<Vec<HeaderToAdd>>, later: &Option<Vec<HeaderToAdd>>) {
            let Some(later) = later else { return };
            let mut merged: IndexMap<String, HeaderToAdd> =
                into.take().unwrap_or_default().into_iter().map(|h| (h.name.clone(), h)).collect();
            for header in later {
                merged.insert(header.name.clone(), header.clone());
            }
            *into = Some(merged.into_values().collect());
        }
        fn take<T: Clone>(into: &mut Option<T>, later: &Option<T>) {
            if later.is_some() {
                into.clone_from(later);
            }
        }
        headers(&mut self.add_request_headers, &later.add_request_headers);
        headers(&mut self.add_response_headers, &later.add_response_headers);
        take(&mut self.remove_request_headers, &later.remove_request_headers);
        take(&mut self.remove_response_headers, &later.remove_response_headers);
        take(&mut self.cors, &later.cors);
        take(&mut self.retry, &later.retry);
        take(&mut self.upgrades, &later.upgrades);
        take(&mut self.case_sensitive, &later.case_sensitive);
        take(&mut self.regex_rewrite, &later.regex_rewrite);
        take(&mut self.high_priority, &later.high_priority);
    }
}

/// Emissary's `CoreMappingKeys` of one Mapping: `(key, value)` for each key it sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Core(pub Vec<(&'static str, String)>);

impl Core {
    /// The keys `member` sets that the group's first member does not, or sets otherwise.
    fn mismatches(&self, member: &Core) -> Vec<&'static str> {
        member
            .0
            .iter()
            .filter(|(key, value)| !self.0.iter().any(|(k, v)| k == key && v == value))
            .map(|(k, _)| *k)
            .collect()
    }
}

/// A canary group of candidates that stay where they are (in the Mapping memo): a candidate
/// is large, and copying each one into its group was a fifth of a reload.
#[derive(Debug)]
pub struct Group<'c> {
    /// Emissary's group id (before hashing).
    pub id: &'c GroupId,
    /// The highest of its members'.
    pub weight: &'c RouteWeight,
    pub first_core: &'c Core,
    /// The candidate that formed the group (the first of its Mappings in processing order).
    pub formed_by: &'c Arc<Candidate>,
    /// Routed members, in the order they joined (almost always one: held inline).
    pub members: SmallVec<[&'c Arc<Candidate>; 1]>,
    pub redirect: Option<&'c Arc<Candidate>>,
    pub shadow: Option<&'c Arc<Candidate>>,
}

impl Group<'_> {
    /// The group-wide settings, flattened over the routed members.
    pub fn shared(&self) -> Shared {
        let mut shared = Shared::default();
        let mut members = self.members.clone();
        members.sort_by_key(|m| &m.route_weight);
        for member in members {
            shared.merge(&member.shared);
        }
        shared
    }
}

/// Groups candidates (given in Emissary's processing order); refused members are reported and
/// added to `rejected`.
pub fn group<'c>(
    candidates: &[&'c Arc<Candidate>],
    diagnostics: &mut Vec<Diagnostic>,
    rejected: &mut BTreeSet<ResourceId>,
) -> Vec<Group<'c>> {
    let mut groups: Vec<Group> = Vec::with_capacity(candidates.len());
    let mut index: std::collections::HashMap<&GroupId, usize, std::hash::BuildHasherDefault<CarriedHash>> =
        std::collections::HashMap::with_capacity_and_hasher(candidates.len(), Default::default());
    for &candidate in candidates {
        let id = &candidate.group_id;
        let Some(&at) = index.get(id) else {
            index.insert(id, groups.len());
            let weight = &candidate.route_weight;
            let first_core = &candidate.core;
            let mut group = Group {
                id,
                weight,
                first_core,
                formed_by: candidate,
                members: SmallVec::new(),
                redirect: None,
                shadow: None,
            };
            match candidate.role {
                Role::Route => group.members.push(candidate),
                Role::Shadow => group.shadow = Some(candidate),
                Role::Redirect => group.redirect = Some(candidate),
            }
            groups.push(group);
            continue;
        };
        let group = &mut groups[at];
        let refusal = join(group, candidate);
        match refusal {
            Some(reason) => {
                let (origin, id) = (&candidate.meta.origin, &candidate.meta.id);
                diagnostics.push(Diagnostic::error(
                    Some(origin),
                    Some(id),
                    format!("{reason}; the Mapping is not served, as in Emissary"),
                ));
                rejected.insert(id.clone());
            }
            None => match candidate.role {
                Role::Route => {
                    group.weight = group.weight.max(&candidate.route_weight);
                    group.members.push(candidate);
                }
                Role::Shadow => group.shadow = Some(candidate),
                Role::Redirect => group.redirect = Some(candidate),
            },
        }
    }
    groups
}

/// Why `candidate` may not join `group` (Emissary's `add_mapping`), if it may not.
fn join(group: &Group, candidate: &Candidate) -> Option<String> {
    let first = group.members.first().or(group.redirect.as_ref()).or(group.shadow.as_ref()).map(|c| &c.meta.id);
    let first = first.map(ToString::to_string).unwrap_or_default();
    let mismatched = group.first_core.mismatches(&candidate.core);
    if !mismatched.is_empty() {
        return Some(format!(
            "shares its match with {first} (a canary group) but its {} differ from {first}'s; set them alike in every Mapping of the group",
            mismatched.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    match candidate.role {
        Role::Shadow => group.shadow.as_ref().map(|s| format!("is a second `shadow` for the match of {}", s.meta.id)),
        Role::Redirect => match (&group.redirect, group.members.first()) {
            (Some(other), _) => Some(format!("is a second `host_redirect` for the match of {}", other.meta.id)),
            (None, Some(member)) => {
                Some(format!("has `host_redirect` but {} (same match, no `host_redirect`) came first", member.meta.id))
            }
            (None, None) => None,
        },
        Role::Route => {
            group.redirect.as_ref().map(|r| format!("has no `host_redirect` but {} (same match) redirects", r.meta.id))
        }
    }
}
