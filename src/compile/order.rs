//! Route order, as Emissary's: Mappings with the same match form a group (a canary); groups are
//! ordered by their route weight `[precedence, len(prefix), header bytes, prefix, header keys]`,
//! highest first, and equal weights come out in reverse order of the Mappings' `name.namespace`
//! (as Emissary's reversed stable sort does). Inside a group, weighted Mappings (in order) then
//! unweighted ones share 100% of the traffic by cumulative `runtime_fraction`s.

use super::ir::{Route, RouteAction, RouteMatch, RuntimeFraction};
use super::matching::{GroupKey, MatchSpec, RouteWeight};
use std::collections::hash_map::{Entry, HashMap};

/// One Mapping, ready to be ordered.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// `<namespace>/<name>`.
    pub name: String,
    pub matcher: MatchSpec,
    pub action: RouteAction,
    pub weight: Option<u32>,
    /// `routing.traffic_shift.<this>`: the Envoy cluster name, as in Emissary.
    pub runtime_key: String,
    pub provenance: Vec<crate::diagnostic::Provenance>,
}

/// A group whose weights cannot be normalized: every member is dropped and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedGroup {
    pub members: Vec<String>,
    pub reason: String,
}

/// Orders candidates (given in `name.namespace` order) into Envoy's route list.
pub fn order_routes(candidates: Vec<Candidate>) -> (Vec<Route>, Vec<RejectedGroup>) {
    // Groups in insertion order, then a stable ascending sort reversed: Emissary's order.
    let mut groups: Vec<Vec<Candidate>> = Vec::new();
    let mut group_of: HashMap<GroupKey, usize> = HashMap::with_capacity(candidates.len());
    for candidate in candidates {
        match group_of.entry(candidate.matcher.group_key()) {
            Entry::Occupied(index) => groups[*index.get()].push(candidate),
            Entry::Vacant(slot) => {
                slot.insert(groups.len());
                groups.push(vec![candidate]);
            }
        }
    }
    let mut weighed: Vec<(RouteWeight, Vec<Candidate>)> = groups
        .into_iter()
        .map(|group| (group.iter().map(|c| c.matcher.weight()).max().expect("groups are non-empty"), group))
        .collect();
    weighed.sort_by(|a, b| a.0.cmp(&b.0));
    weighed.reverse();

    let mut routes = Vec::new();
    let mut rejected = Vec::new();
    for (_, group) in weighed {
        match normalize_weights(&group) {
            Ok(shares) => {
                let single = group.len() == 1;
                let mut ordered: Vec<(Candidate, u32)> = Vec::new();
                let (weighted, unweighted): (Vec<_>, Vec<_>) =
                    group.into_iter().zip(shares).partition(|(c, _)| c.weight.is_some());
                ordered.extend(weighted);
                ordered.extend(unweighted);
                for (candidate, cumulative) in ordered {
                    routes.push(Route {
                        name: candidate.name,
                        matcher: RouteMatch {
                            path: candidate.matcher.path,
                            case_sensitive: candidate.matcher.case_sensitive,
                            headers: candidate.matcher.header_matches,
                            runtime_fraction: (!single).then(|| RuntimeFraction {
                                percent: cumulative,
                                runtime_key: format!("routing.traffic_shift.{}", candidate.runtime_key),
                            }),
                        },
                        action: candidate.action,
                        provenance: candidate.provenance,
                    });
                }
            }
            Err(reason) => {
                rejected.push(RejectedGroup { members: group.into_iter().map(|c| c.name).collect(), reason })
            }
        }
    }
    (routes, rejected)
}

/// Cumulative percentages, one per member in the group's order: weighted members add their
/// weight; unweighted members split what is left (rounded half to even, as Python's `round`),
/// and the last unweighted member takes the rest up to 100.
fn normalize_weights(group: &[Candidate]) -> Result<Vec<u32>, String> {
    if group.len() == 1 {
        return Ok(vec![100]);
    }
    if let Some(over) = group.iter().find(|c| c.weight.is_some_and(|w| w > 100)) {
        return Err(format!("Mapping {} has weight {} (more than 100)", over.name, over.weight.unwrap_or_default()));
    }
    let mut shares = vec![0; group.len()];
    let mut current = 0u32;
    for (index, candidate) in group.iter().enumerate() {
        if let Some(weight) = candidate.weight {
            current += weight;
            shares[index] = current;
        }
    }
    if current > 100 {
        return Err(format!("the weights of the Mappings sharing this match add up to {current}, more than 100"));
    }
    let unweighted: Vec<usize> = (0..group.len()).filter(|&i| group[i].weight.is_none()).collect();
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
mod tests {
    use super::*;
    use crate::compile::ir::Forward;
    use crate::compile::matching::match_spec;
    use crate::model::MappingSpec;

    fn mapping(yaml: &str) -> MappingSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn candidate(name: &str, yaml: &str) -> Candidate {
        let spec = mapping(yaml);
        let (matcher, _) = match_spec(&spec, spec.prefix.as_deref().unwrap()).unwrap();
        Candidate {
            name: name.into(),
            matcher,
            action: RouteAction::Forward(Forward {
                cluster: format!("cluster_{name}"),
                prefix_rewrite: None,
                timeout_ms: 3000,
                idle_timeout_ms: None,
                host_rewrite: None,
                auto_host_rewrite: false,
                hash_policy: None,
            }),
            weight: spec.weight,
            runtime_key: format!("cluster_{name}"),
            provenance: Vec::new(),
        }
    }

    fn names(routes: &[Route]) -> Vec<&str> {
        routes.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn longer_prefixes_first_then_headers_then_precedence_wins() {
        let (routes, _) = order_routes(vec![
            candidate("a", "prefix: /"),
            candidate("b", "prefix: /api/"),
            candidate("c", "{prefix: /api/, headers: {x-canary: 'yes'}}"),
            candidate("d", "{prefix: /, precedence: 10}"),
        ]);
        assert_eq!(names(&routes), ["d", "c", "b", "a"]);
    }

    #[test]
    fn equal_weights_come_out_in_reverse_order() {
        let (routes, _) = order_routes(vec![candidate("a", "prefix: /x/"), candidate("b", "prefix: /y/")]);
        assert_eq!(names(&routes), ["b", "a"]);
    }

    #[test]
    fn canary_weights_are_cumulative_with_unweighted_last() {
        let (routes, rejected) =
            order_routes(vec![candidate("main", "prefix: /svc/"), candidate("canary", "{prefix: /svc/, weight: 10}")]);
        assert!(rejected.is_empty());
        assert_eq!(names(&routes), ["canary", "main"]);
        let percents: Vec<u32> = routes.iter().map(|r| r.matcher.runtime_fraction.as_ref().unwrap().percent).collect();
        assert_eq!(percents, [10, 100]);
        assert_eq!(
            routes[0].matcher.runtime_fraction.as_ref().unwrap().runtime_key,
            "routing.traffic_shift.cluster_canary"
        );
    }

    #[test]
    fn unweighted_members_split_the_rest_rounding_half_to_even() {
        let group: Vec<Candidate> = ["a", "b", "c"].iter().map(|n| candidate(n, "prefix: /s/")).collect();
        assert_eq!(normalize_weights(&group).unwrap(), [33, 66, 100]);
        let group = vec![
            candidate("w", "{prefix: /s/, weight: 50}"),
            candidate("a", "prefix: /s/"),
            candidate("b", "prefix: /s/"),
        ];
        // (100 - 50) / 2 = 25 each; the last takes the remainder.
        assert_eq!(normalize_weights(&group).unwrap(), [50, 75, 100]);
    }

    #[test]
    fn single_mapping_takes_all_traffic_without_runtime_fraction() {
        let (routes, _) = order_routes(vec![candidate("a", "{prefix: /a/, weight: 5}")]);
        assert!(routes[0].matcher.runtime_fraction.is_none());
    }

    #[test]
    fn overweight_groups_are_rejected() {
        let (routes, rejected) = order_routes(vec![
            candidate("a", "{prefix: /s/, weight: 70}"),
            candidate("b", "{prefix: /s/, weight: 40}"),
        ]);
        assert!(routes.is_empty());
        assert_eq!(rejected[0].members, ["a", "b"]);
        assert!(rejected[0].reason.contains("110"));
    }
}
