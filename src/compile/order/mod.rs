//! Route order, as Emissary's: canary groups (see [`super::group`]) are ordered by their route
//! weight `[precedence, len(prefix), header bytes, query bytes, prefix, method, keys]`, highest
//! first, and equal weights come out in reverse order of the Mappings' `name.namespace` (as
//! Emissary's reversed stable sort does). Inside a group, weighted Mappings (in order) then
//! unweighted ones share 100% of the traffic by cumulative `runtime_fraction`s; a redirecting
//! group is one redirect route. Every route of a group gets the group's flattened settings, the
//! Module's CORS and retry policy where the group has none, and the group's mirror.

use super::cluster_set::EnvoyNames;
use super::group::{Candidate, Group, Shared};
use super::group_memo::GroupPass;
use super::ir::{Cors, Forward, Mirror, PathMatch, Route, RouteAction, RouteMatch, RoutePolicy, RuntimeFraction};
use super::module::Defaults;
use super::policy;
use crate::diagnostic::Diagnostic;
use sha1::{Digest, Sha1};
use std::sync::Arc;

/// A group whose weights cannot be normalized: every member is dropped and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedGroup {
    pub members: Vec<String>,
    pub reason: String,
}

/// Orders groups (formed in `name.namespace` order) into Envoy's route list; `cluster_names`
/// maps the clusters' identities, which candidates forward to, to their Envoy names. A group
/// that is the same as in the compile `memo` continues gets the routes it had then.
pub fn order_routes(
    groups: Vec<Group<'_>>,
    probe_groups: usize,
    defaults: &Defaults,
    cluster_names: &EnvoyNames,
    memo: &mut GroupPass,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<Arc<Route>>, Vec<RejectedGroup>) {
    let mut routes = Vec::with_capacity(groups.len());
    let mut rejected = Vec::new();
    for place in memo.order(&groups, probe_groups) {
        let group = &groups[place.index];
        let mut refused = None;
        let built = memo.routes(group, place, cluster_names, || match group_routes(group, defaults, cluster_names) {
            Ok(routes) => routes,
            Err(problem) => {
                refused = Some(problem);
                None
            }
        });
        match (built, refused) {
            (Some(built), _) => routes.extend_from_slice(built),
            (None, Some(Refused::Weights(group))) => rejected.push(group),
            (None, Some(Refused::Mirrors(shadow))) => {
                let message = "`shadow`: no Mapping shares its match (prefix, headers, query parameters, method, precedence), so nothing is mirrored";
                diagnostics.push(Diagnostic::warning(Some(&shadow.meta.origin), Some(&shadow.meta.id), message));
            }
            (None, None) => {}
        }
    }
    (routes, rejected)
}

/// Why a group has no routes.
enum Refused<'c> {
    Weights(RejectedGroup),
    /// A shadow alone: nothing to mirror.
    Mirrors(&'c Candidate),
}

/// The routes of one group, in order; `Ok(None)` when it has none and nothing to say.
fn group_routes<'c>(
    group: &Group<'c>,
    defaults: &Defaults,
    cluster_names: &EnvoyNames,
) -> Result<Option<Vec<Route>>, Refused<'c>> {
    if group.members.is_empty() {
        return match (group.redirect, group.shadow) {
            (Some(redirect), _) => Ok(Some(vec![redirect_route(redirect, cluster_names)])),
            (None, Some(shadow)) => Err(Refused::Mirrors(shadow)),
            (None, None) => Ok(None),
        };
    }
    let single = group.members.len() == 1;
    let shares = if single {
        // Most groups: no names to format for messages, nothing to split.
        vec![100]
    } else {
        let named: Vec<(String, Option<u32>)> =
            group.members.iter().map(|c| (format!("Mapping {}", c.name), c.weight)).collect();
        cumulative_weights(&named).map_err(|reason| {
            let members = group.members.iter().map(|c| c.name.clone()).collect();
            Refused::Weights(RejectedGroup { members, reason })
        })?
    };
    let shared = group.shared();
    let policy = group_policy(&shared, group.id, defaults);
    let retry = shared.retry.clone().or_else(|| defaults.retry.clone());
    let mirror = group.shadow.as_ref().and_then(|shadow| match &shadow.action {
        RouteAction::Forward(forward) => Some(Mirror {
            cluster: cluster_names[forward.cluster.as_str()].clone(),
            percent: shadow.weight.unwrap_or(100).min(100),
        }),
        _ => None,
    });
    // Weighted members first, then unweighted ones, each in the order they joined.
    let mut members: Vec<(&Candidate, u32)> = group.members.iter().map(|c| &***c).zip(shares).collect();
    members.sort_by_key(|(c, _)| c.weight.is_none());
    let mut routes = Vec::with_capacity(members.len());
    for (candidate, cumulative) in members {
        let case_sensitive = candidate.matcher.case_sensitive.or(shared.case_sensitive).unwrap_or(true);
        let mut route = route(candidate, case_sensitive, cluster_names);
        route.matcher.runtime_fraction = (!single).then(|| {
            let runtime_key = match &route.action {
                RouteAction::Forward(forward) => &forward.cluster,
                _ => &candidate.runtime_key,
            };
            RuntimeFraction { percent: cumulative, runtime_key: format!("routing.traffic_shift.{runtime_key}") }
        });
        if let RouteAction::Forward(forward) = &mut route.action {
            apply(forward, &shared, retry.clone(), mirror.clone());
            if let Some(shadow) = &group.shadow {
                route.provenance.push(shadow.meta.provenance());
            }
        }
        if !matches!(route.action, RouteAction::FailClosed { .. }) {
            route.policy = RoutePolicy { error_responses: route.policy.error_responses, ..policy.clone() };
        }
        routes.push(route);
    }
    Ok(Some(routes))
}

/// What every route of the group does besides its own action: headers, CORS.
fn group_policy(shared: &Shared, group_id: &str, defaults: &Defaults) -> RoutePolicy {
    let cors = shared.cors.as_ref().or(defaults.cors.as_ref()).map(|spec| {
        let digest = hex::encode(Sha1::digest(group_id.as_bytes()));
        policy::cors(spec, format!("routing.cors_enabled.{digest}"))
    });
    RoutePolicy {
        request_headers_to_add: shared.add_request_headers.clone().unwrap_or_default(),
        response_headers_to_add: shared.add_response_headers.clone().unwrap_or_default(),
        request_headers_to_remove: shared.remove_request_headers.clone().unwrap_or_default(),
        response_headers_to_remove: shared.remove_response_headers.clone().unwrap_or_default(),
        cors: cors.filter(|cors: &Cors| !cors.origins.is_empty() || cors.methods.is_some() || cors.headers.is_some()),
        error_responses: Default::default(),
    }
}

fn apply(forward: &mut Forward, shared: &Shared, retry: Option<super::ir::RetryPolicy>, mirror: Option<Mirror>) {
    forward.retry = retry;
    forward.mirror = mirror;
    forward.upgrades = shared.upgrades.clone().unwrap_or_default();
    forward.high_priority = shared.high_priority.unwrap_or(false);
    if let Some(regex) = &shared.regex_rewrite {
        // Emissary: `regex_rewrite` replaces `rewrite`.
        forward.regex_rewrite = Some(regex.clone());
        forward.prefix_rewrite = None;
    }
}

/// The route of one member: its own match and action, forwarding to its cluster's Envoy name.
fn route(candidate: &Candidate, case_sensitive: bool, cluster_names: &EnvoyNames) -> Route {
    let path = match &candidate.matcher.path {
        // Envoy's `case_sensitive` does not apply to regexes: the regex itself must say it.
        PathMatch::Regex(regex) if !case_sensitive => PathMatch::Regex(format!("(?i){regex}")),
        path => path.clone(),
    };
    let mut action = candidate.action.clone();
    if let RouteAction::Forward(forward) = &mut action {
        forward.cluster.clone_from(&cluster_names[forward.cluster.as_str()]);
    }
    Route {
        name: candidate.name.clone(),
        matcher: RouteMatch {
            path,
            case_sensitive,
            headers: candidate.matcher.header_matches.clone(),
            query_parameters: candidate.matcher.query_matches.clone(),
            runtime_fraction: None,
        },
        action,
        policy: RoutePolicy { error_responses: candidate.error_responses.clone(), ..RoutePolicy::default() },
        provenance: vec![candidate.meta.provenance()],
    }
}

/// A redirecting group's one route: the redirecting Mapping's match, case sensitivity as it
/// says (Emissary flattens only that into such a group).
fn redirect_route(candidate: &Candidate, cluster_names: &EnvoyNames) -> Route {
    let case_sensitive = candidate.matcher.case_sensitive.unwrap_or(true);
    let mut route = route(candidate, case_sensitive, cluster_names);
    route.policy = RoutePolicy::default();
    route
}

/// Cumulative percentages, one per member in the group's order: weighted members add their
/// weight; unweighted members split what is left (rounded half to even, as Python's `round`),
/// and the last unweighted member takes the rest up to 100.
pub fn cumulative_weights(group: &[(String, Option<u32>)]) -> Result<Vec<u32>, String> {
    if group.len() == 1 {
        return Ok(vec![100]);
    }
    if let Some((name, Some(weight))) = group.iter().find(|(_, w)| w.is_some_and(|w| w > 100)) {
        return Err(format!("{name} has weight {weight} (more than 100)"));
    }
    let mut shares = vec![0; group.len()];
    let mut current = 0u32;
    for (index, (_, weight)) in group.iter().enumerate() {
        if let Some(weight) = *weight {
            current += weight;
            shares[index] = current;
        }
    }
    if current > 100 {
        return Err(format!("the weights of the Mappings sharing this match add up to {current}, more than 100"));
    }
    let unweighted: Vec<usize> = (0..group.len()).filter(|&i| group[i].1.is_none()).collect();
    if let Some((&last, rest)) = unweighted.split_last() {
        let per = ((100 - current) as f64 / unweighted.len() as f64).round_ties_even() as u32;
        for &index in rest {
            current += per;
            shares[index] = current;
        }
        shares[last] = 100;
    }
    Ok(shares)
}

#[cfg(test)]
mod tests;
