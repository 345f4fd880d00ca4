use super::*;
use crate::compile::group::{group, Core, GroupId, Role};
use crate::compile::group_memo::GroupMemo;
use crate::compile::matching::match_spec;
use crate::diagnostic::{Origin, ResourceId};
use crate::model::{MappingSpec, Meta};

fn candidate(name: &str, yaml: &str) -> Candidate {
    let spec: MappingSpec = serde_yaml::from_str(yaml).unwrap();
    let (matcher, _) = match_spec(&spec, spec.prefix.as_deref().unwrap()).unwrap();
    let (group_id, route_weight) = (GroupId::new(&matcher.group_id()), matcher.weight());
    let role = if spec.shadow == Some(true) {
        Role::Shadow
    } else if spec.host_redirect == Some(true) {
        Role::Redirect
    } else {
        Role::Route
    };
    let id = ResourceId::new("Mapping", "default", name);
    Candidate {
        name: name.into(),
        meta: Meta { id, origin: Origin::file("t.yaml"), ambassador_id: None, labels: Default::default() }.into(),
        matcher,
        role,
        action: RouteAction::Forward(Forward::to(format!("cluster_{name}"))),
        weight: spec.weight,
        runtime_key: format!("cluster_{name}"),
        shared: Shared { case_sensitive: spec.case_sensitive, ..Shared::default() },
        error_responses: Default::default(),
        core: Core::default(),
        group_id,
        route_weight,
    }
}

fn order(candidates: Vec<Candidate>) -> (Vec<Arc<Route>>, Vec<RejectedGroup>) {
    let mut diagnostics = Vec::new();
    let candidates: Vec<Arc<Candidate>> = candidates.into_iter().map(Arc::new).collect();
    let members: Vec<&Arc<Candidate>> = candidates.iter().collect();
    let groups = group(&members, &mut diagnostics, &mut Default::default());
    // Each test cluster's Envoy name is its identity.
    let names = Arc::new(candidates.iter().map(|c| (c.runtime_key.clone(), c.runtime_key.clone())).collect());
    order_routes(
        groups,
        0,
        &Defaults::default(),
        &names,
        &mut GroupPass::continuing(GroupMemo::default(), &names),
        &mut diagnostics,
    )
}

/// `candidates` ordered with what `memo` remembers; the names of the routes, and the memo the
/// next order starts from.
fn order_with(candidates: &[Arc<Candidate>], memo: &GroupMemo) -> (Vec<String>, GroupMemo) {
    let mut diagnostics = Vec::new();
    let members: Vec<&Arc<Candidate>> = candidates.iter().collect();
    let groups = group(&members, &mut diagnostics, &mut Default::default());
    let names = Arc::new(candidates.iter().map(|c| (c.runtime_key.clone(), c.runtime_key.clone())).collect());
    let mut pass = GroupPass::continuing(memo.clone(), &names);
    let (routes, _) = order_routes(groups, 0, &Defaults::default(), &names, &mut pass, &mut diagnostics);
    (routes.iter().map(|r| r.name.clone()).collect(), pass.finish())
}

/// Remembered groups keep their order and new ones are put into place among them: after any
/// sequence of Mappings coming and going, that is the order a full sort gives, equal weights
/// of different groups included. Seeded, so a failure reproduces.
#[test]
fn placing_new_groups_among_remembered_ones_is_the_full_sort() {
    let specs = [
        "prefix: /a/",
        "prefix: /b/",
        "prefix: /a/b/",
        "{prefix: /a/, headers: {x: '0'}}",
        "{prefix: /a/, headers: {x: '1'}}",
        "{prefix: /a/, headers: {x: '2'}}",
        "{prefix: /b/, headers: {y: '1'}}",
        "{prefix: /a/, precedence: 1}",
        "{prefix: /a/, weight: 30}",
        // Equal weights, two groups: `x` present and `x` equal to `*` (one key, `x-*`).
        "{prefix: /c/, headers: {x: true}}",
        "{prefix: /c/, headers: {x: '*'}}",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    // Named in processing order, so any subset is in the order a compile forms groups in.
    let pool: Vec<Arc<Candidate>> =
        (0..30).map(|i| Arc::new(candidate(&format!("m{i:02}"), specs[next(specs.len())]))).collect();
    let mut present = vec![false; pool.len()];
    let mut memo = GroupMemo::default();
    for step in 0..300 {
        for _ in 0..1 + next(3) {
            let at = next(pool.len());
            present[at] = !present[at];
        }
        let now: Vec<Arc<Candidate>> =
            pool.iter().zip(&present).filter(|(_, here)| **here).map(|(c, _)| c.clone()).collect();
        let (incremental, kept) = order_with(&now, &memo);
        let (full, _) = order_with(&now, &GroupMemo::default());
        assert_eq!(incremental, full, "step {step}");
        memo = kept;
    }
}

fn names(routes: &[Arc<Route>]) -> Vec<&str> {
    routes.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn longer_prefixes_first_then_headers_then_precedence_wins() {
    let (routes, _) = order(vec![
        candidate("a", "prefix: /"),
        candidate("b", "prefix: /api/"),
        candidate("c", "{prefix: /api/, headers: {x-canary: 'yes'}}"),
        candidate("d", "{prefix: /, precedence: 10}"),
    ]);
    assert_eq!(names(&routes), ["d", "c", "b", "a"]);
}

#[test]
fn query_parameters_weigh_after_headers_and_split_groups() {
    let (routes, _) = order(vec![
        candidate("plain", "prefix: /api/"),
        candidate("query", "{prefix: /api/, query_parameters: {debug: 'yes'}}"),
        candidate("header", "{prefix: /api/, headers: {x: 'y'}}"),
    ]);
    assert_eq!(names(&routes), ["header", "query", "plain"], "three groups, not one canary");
    assert!(routes.iter().all(|r| r.matcher.runtime_fraction.is_none()));
}

#[test]
fn equal_weights_come_out_in_reverse_order() {
    let (routes, _) = order(vec![candidate("a", "prefix: /x/"), candidate("b", "prefix: /y/")]);
    assert_eq!(names(&routes), ["b", "a"]);
    // Truly equal weights (one key, `x-*`), two groups: the later one first, either way round.
    let (present, star) = ("{prefix: /c/, headers: {x: true}}", "{prefix: /c/, headers: {x: '*'}}");
    let (routes, _) = order(vec![candidate("a", present), candidate("b", star)]);
    assert_eq!(names(&routes), ["b", "a"]);
    let (routes, _) = order(vec![candidate("a", star), candidate("b", present)]);
    assert_eq!(names(&routes), ["b", "a"]);
}

#[test]
fn canary_weights_are_cumulative_with_unweighted_last() {
    let (routes, rejected) =
        order(vec![candidate("main", "prefix: /svc/"), candidate("canary", "{prefix: /svc/, weight: 10}")]);
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
fn shadows_mirror_the_group_and_take_no_share() {
    let (routes, _) = order(vec![
        candidate("main", "prefix: /svc/"),
        candidate("mirror", "{prefix: /svc/, shadow: true, weight: 10}"),
    ]);
    assert_eq!(names(&routes), ["main"]);
    assert!(routes[0].matcher.runtime_fraction.is_none());
    let RouteAction::Forward(forward) = &routes[0].action else { panic!() };
    assert_eq!(forward.mirror, Some(Mirror { cluster: "cluster_mirror".into(), percent: 10 }));
}

#[test]
fn a_redirecting_group_is_one_redirect_route() {
    let (routes, _) = order(vec![candidate("r", "{prefix: /old/, host_redirect: true}")]);
    assert_eq!(names(&routes), ["r"]);
    let mut diagnostics = Vec::new();
    let mut rejected = Default::default();
    let candidates =
        [candidate("a", "{prefix: /x/, host_redirect: true}"), candidate("b", "prefix: /x/")].map(Arc::new);
    let groups = group(&candidates.iter().collect::<Vec<_>>(), &mut diagnostics, &mut rejected);
    assert_eq!(groups.len(), 1);
    assert!(rejected.contains(&ResourceId::new("Mapping", "default", "b")), "{diagnostics:?}");
}

#[test]
fn case_insensitive_regexes_say_so_themselves() {
    let (routes, _) = order(vec![candidate("r", "{prefix: '/api/.*', prefix_regex: true, case_sensitive: false}")]);
    assert_eq!(routes[0].matcher.path, PathMatch::Regex("(?i)/api/.*".into()));
}

#[test]
fn unweighted_members_split_the_rest_rounding_half_to_even() {
    let named = |weights: &[Option<u32>]| -> Vec<(String, Option<u32>)> {
        weights.iter().enumerate().map(|(i, w)| (i.to_string(), *w)).collect()
    };
    assert_eq!(cumulative_weights(&named(&[None, None, None])).unwrap(), [33, 66, 100]);
    // (100 - 50) / 2 = 25 each; the last takes the remainder.
    assert_eq!(cumulative_weights(&named(&[Some(50), None, None])).unwrap(), [50, 75, 100]);
}

#[test]
fn single_mapping_takes_all_traffic_without_runtime_fraction() {
    let (routes, _) = order(vec![candidate("a", "{prefix: /a/, weight: 5}")]);
    assert!(routes[0].matcher.runtime_fraction.is_none());
}

#[test]
fn overweight_groups_are_rejected() {
    let (routes, rejected) =
        order(vec![candidate("a", "{prefix: /s/, weight: 70}"), candidate("b", "{prefix: /s/, weight: 40}")]);
    assert!(routes.is_empty());
    assert_eq!(rejected[0].members, ["a", "b"]);
    assert!(rejected[0].reason.contains("110"));
    assert_eq!(
        cumulative_weights(&[("a".into(), Some(101)), ("b".into(), None)]).unwrap_err(),
        "a has weight 101 (more than 100)"
    );
}
