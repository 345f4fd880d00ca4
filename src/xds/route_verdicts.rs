//! What each route becomes when it is admitted (`admit.rs`): itself, encoded; a
//! fail-closed copy when Envoy would reject it or its cluster is not served; or nothing when even
//! its match would be rejected.
//!
//! Building, validating and encoding routes is most of the work of an admission, and a change to
//! one Mapping changes one route. So the verdicts are remembered from one admission to the next:
//! a route that is the one remembered (see [`super::reuse::Fingerprint`]), under the same limits
//! and with its cluster served (or not) as it was, gets the remembered bytes and diagnostics.
//!
//! An admission asks for the routes in route order, virtual host by virtual host, and so did the
//! last one: so the remembered verdicts are kept in the order they were asked for and walked
//! beside this admission's routes, and each is found where the walk stands, or a few places on
//! (the walk goes past routes that are gone or moved), or among those it went past. Looking each
//! route up by name in a table of every route, and sweeping the table afterwards, was a tenth of
//! a one-Mapping reload at 50,000 Mappings. A route the walk does not find is decided again:
//! reuse never depends on the walk, only on the route being the one the verdict was decided for.
//! Within one admission, a route shared by many virtual hosts is decided once per variant.

use super::provenance::report;
use super::reuse::{Fingerprint, Reuse};
use super::route;
use super::validate::{self, Limits};
use crate::compile::ir::{HostRoute, Route, RouteAction, RouteVariant};
use crate::diagnostic::Diagnostic;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::BTreeMap;
use std::sync::Arc;

const REJECTED_STATUS: u32 = 503;
const REJECTED_BODY: &str = "this route's configuration would be rejected by Envoy\n";

/// How far past where it stands the walk looks for a route before it searches what it went past.
const LOOK_AHEAD: usize = 8;

/// How many routes the walk may not find before every remembered verdict is indexed by name:
/// a few are new routes, which no index would find, but many are routes asked for in more
/// places than last time (a new virtual host), which it does.
const MISSES_BEFORE_INDEX: usize = 64;

/// What a route's verdict is decided from.
#[derive(Debug, Clone)]
pub struct Decided {
    route: Fingerprint<Route>,
    limits: Limits,
    /// Why its cluster is not served, if it is not.
    cluster_problem: Option<String>,
}

/// A verdict: the encoded route as admitted (or `None` when it is dropped), and what it reports.
pub type Verdict = (Option<Arc<[u8]>>, Vec<Diagnostic>);

type Decision = Arc<(Decided, Verdict)>;

/// Which route a verdict is for: its name and variant.
type Key = (Arc<str>, RouteVariant);

/// One route as an admission asked for it, and its verdict; with the verdict's bytes beside
/// it, for the route table to be written from without going through the verdict again.
#[derive(Debug, Clone)]
struct Asked {
    key: Key,
    decision: Decision,
    admitted: Option<Arc<[u8]>>,
}

impl Asked {
    fn new(key: Key, decision: Decision) -> Asked {
        let admitted = decision.1 .0.clone();
        Asked { key, decision, admitted }
    }

    fn is_for(&self, route: &HostRoute) -> bool {
        self.key.1 == route.variant && (self.decision.0.route.is(&route.route) || *self.key.0 == *route.route.name)
    }
}

/// The verdicts of one admission, for the next: every route in the order it was asked for.
#[derive(Debug, Clone, Default)]
pub struct RouteMemo {
    asked: Vec<Asked>,
    /// How many verdicts the admission that kept them decided (rather than reused).
    computed: usize,
    /// How many it reused only after finding a new route equal to the old one by content.
    refreshed: usize,
}

impl RouteMemo {
    pub fn computed(&self) -> usize {
        self.computed
    }

    pub fn refreshed(&self) -> usize {
        self.refreshed
    }
}

/// One admission's verdicts.
pub struct RouteVerdicts {
    /// The last admission's, in the order it asked; taken as the walk finds them.
    previous: Vec<Option<Asked>>,
    /// Where the walk stands in `previous`.
    at: usize,
    /// What the walk went past without finding it.
    passed: HashMap<Key, Decision>,
    /// How many routes the walk did not find.
    misses: usize,
    /// Every verdict of the last admission and this one so far, once the walk missed
    /// [`MISSES_BEFORE_INDEX`] routes.
    index: Option<HashMap<Key, Decision>>,
    /// Decided (or refreshed) by this admission: a route many virtual hosts share is decided once.
    decided: HashMap<Key, Decision>,
    /// The routes (and variants) whose diagnostics this admission reported.
    reported: HashSet<Key>,
    next: RouteMemo,
}

impl RouteVerdicts {
    pub fn continuing(previous: RouteMemo) -> Self {
        let next = RouteMemo { asked: Vec::with_capacity(previous.asked.len()), ..RouteMemo::default() };
        RouteVerdicts {
            previous: previous.asked.into_iter().map(Some).collect(),
            at: 0,
            passed: HashMap::new(),
            misses: 0,
            index: None,
            decided: HashMap::new(),
            reported: HashSet::new(),
            next,
        }
    }

    /// How many routes this admission asked for so far.
    pub fn asked(&self) -> usize {
        self.next.asked.len()
    }

    /// The encoded routes, as admitted, of the routes asked for in `span` (of [`Self::asked`]),
    /// leaving out the dropped ones.
    pub fn admitted(&self, span: std::ops::Range<usize>) -> impl Iterator<Item = &[u8]> {
        self.next.asked[span].iter().filter_map(|asked| asked.admitted.as_deref())
    }

    /// Decides `route` (itself, encoded; a fail-closed copy; or dropped: `false`); its
    /// diagnostics go to `diagnostics` once per admission (a route many virtual hosts share is
    /// asked for once per host).
    pub fn admit(
        &mut self,
        route: &HostRoute,
        dropped_clusters: &BTreeMap<&str, String>,
        limits: &Limits,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> bool {
        let cluster_problem = match &route.route.action {
            RouteAction::Forward(forward) => dropped_clusters.get(forward.cluster.as_str()),
            _ => None,
        };
        let reuse = |kept: &Decided| {
            if kept.limits != *limits || kept.cluster_problem.as_ref() != cluster_problem {
                return Reuse::No;
            }
            kept.route.compare(&route.route).map(|route| Decided { route, ..kept.clone() })
        };
        let remembered = self.remembered(route).map(|asked| {
            let reuse = reuse(&asked.decision.0);
            (asked, reuse)
        });
        let asked = match remembered {
            // Moved on as it is (no reference count touched: at 50,000 routes that is a cache
            // miss saved per route).
            Some((asked, Reuse::Kept)) => asked,
            remembered => {
                let key: Key = match &remembered {
                    Some((asked, _)) if *asked.key.0 == *route.route.name => asked.key.clone(),
                    _ => (Arc::from(route.route.name.as_str()), route.variant),
                };
                let decision = match (self.decided.get(&key), remembered) {
                    (Some(decision), _) if decision.0.route.is(&route.route) => decision.clone(),
                    (_, Some((asked, Reuse::Refreshed(input)))) => {
                        self.next.refreshed += 1;
                        let decision = Arc::new((input, asked.decision.1.clone()));
                        self.decided.insert(key.clone(), decision.clone());
                        decision
                    }
                    _ => {
                        self.next.computed += 1;
                        let decision = Arc::new(decide(route, cluster_problem, limits));
                        self.decided.insert(key.clone(), decision.clone());
                        decision
                    }
                };
                Asked::new(key, decision)
            }
        };
        let reported = &asked.decision.1 .1;
        if !reported.is_empty() && self.reported.insert(asked.key.clone()) {
            diagnostics.extend(reported.iter().cloned());
        }
        let served = asked.admitted.is_some();
        self.next.asked.push(asked);
        served
    }

    /// The last admission's verdict for `route`'s name and variant, if the walk finds it.
    fn remembered(&mut self, route: &HostRoute) -> Option<Asked> {
        let ahead = self.previous.get(self.at..).unwrap_or_default();
        let found = ahead.iter().take(LOOK_AHEAD + 1).position(|asked| asked.as_ref().is_some_and(|a| a.is_for(route)));
        match found {
            Some(offset) => {
                for skipped in self.previous[self.at..self.at + offset].iter_mut().filter_map(Option::take) {
                    self.passed.insert(skipped.key, skipped.decision);
                }
                self.at += offset + 1;
                self.previous[self.at - 1].take()
            }
            None => {
                let key = (Arc::from(route.route.name.as_str()), route.variant);
                if let Some((key, decision)) = self.passed.remove_entry(&key) {
                    return Some(Asked::new(key, decision));
                }
                self.misses += 1;
                if self.index.is_none() && self.misses > MISSES_BEFORE_INDEX {
                    let remembered = self.previous.iter().flatten().chain(&self.next.asked);
                    self.index = Some(remembered.map(|asked| (asked.key.clone(), asked.decision.clone())).collect());
                }
                let decision = self.index.as_ref()?.get(&key)?.clone();
                Some(Asked::new(key, decision))
            }
        }
    }

    pub fn finish(self) -> RouteMemo {
        self.next
    }
}

/// Decides `route`'s verdict.
fn decide(route: &HostRoute, cluster_problem: Option<&String>, limits: &Limits) -> (Decided, Verdict) {
    let mut own = Vec::new();
    let admitted = admit_route(&route.resolve(), cluster_problem.map(String::as_str), limits, &mut own)
        .map(|admitted| Arc::from(route::encode_route(&route::build_route(&admitted))));
    let cluster_problem = cluster_problem.cloned();
    (Decided { route: Fingerprint::of(&route.route), limits: *limits, cluster_problem }, (admitted, own))
}

/// The route as admitted: itself, a fail-closed copy, or nothing.
fn admit_route(
    route: &Route,
    cluster_problem: Option<&str>,
    limits: &Limits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Route> {
    if let (RouteAction::Forward(forward), Some(problem)) = (&route.action, cluster_problem) {
        let message =
            format!("cluster {} is not served ({problem}); the route answers {REJECTED_STATUS}", forward.cluster);
        report(diagnostics, &route.provenance, message);
        return Some(fail_closed(route));
    }
    let Err(problem) = validate::check(&route::build_route(route), limits) else {
        return Some(route.clone());
    };
    let replacement = fail_closed(route);
    if validate::check(&route::build_route(&replacement), limits).is_ok() {
        report(
            diagnostics,
            &route.provenance,
            format!("route {}: {problem}; the route answers {REJECTED_STATUS}", route.name),
        );
        Some(replacement)
    } else {
        report(diagnostics, &route.provenance, format!("route {}: {problem}; the route is not served", route.name));
        None
    }
}

fn fail_closed(route: &Route) -> Route {
    Route {
        action: RouteAction::FailClosed { status: REJECTED_STATUS, body: REJECTED_BODY.to_string() },
        ..route.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile, Options};
    use crate::model::{parse_documents, TlsFiles};

    /// The routes of Mappings `m0..m{n}` (`/p{i}/`), the one at `changed` with another prefix.
    fn routes(n: usize, changed: Option<usize>) -> Vec<HostRoute> {
        let yaml: String = (0..n)
            .map(|i| {
                let prefix = if Some(i) == changed { format!("/changed{i}/") } else { format!("/p{i}/") };
                format!("---\nkind: Mapping\nname: m{i:03}\nprefix: {prefix}\nservice: s{i}\n")
            })
            .collect();
        let ir = compile(&parse_documents("t.yaml", &yaml).0, &TlsFiles::default(), &Options::default()).ir;
        let host = &ir.route_configs[0].virtual_hosts[0];
        host.routes.iter().filter(|r| r.route.name.starts_with("default/m")).cloned().collect()
    }

    fn admission(memo: RouteMemo, asked: &[&HostRoute]) -> (Vec<Vec<u8>>, RouteMemo) {
        let mut verdicts = RouteVerdicts::continuing(memo);
        let limits = Limits::default();
        for route in asked {
            assert!(verdicts.admit(route, &BTreeMap::new(), &limits, &mut Vec::new()), "served");
        }
        let admitted = verdicts.admitted(0..asked.len()).map(<[u8]>::to_vec).collect();
        (admitted, verdicts.finish())
    }

    fn fresh(asked: &[&HostRoute]) -> Vec<Vec<u8>> {
        admission(RouteMemo::default(), asked).0
    }

    /// A route that is not served (its cluster is not) reports once per admission, however many
    /// virtual hosts ask for it, and again in the next admission, which reuses its verdict.
    #[test]
    fn a_route_in_many_virtual_hosts_reports_once_per_admission() {
        let routes = routes(3, None);
        let RouteAction::Forward(forward) = &routes[0].route.action else { panic!("a forwarding route") };
        let dropped = BTreeMap::from([(forward.cluster.as_str(), "its Secret is not served".to_string())]);
        let limits = Limits::default();
        let mut memo = RouteMemo::default();
        for admission in 0..2 {
            let mut verdicts = RouteVerdicts::continuing(memo);
            let mut diagnostics = Vec::new();
            for _host in 0..3 {
                for route in &routes {
                    assert!(verdicts.admit(route, &dropped, &limits, &mut diagnostics), "served (fail-closed or not)");
                }
            }
            assert_eq!(diagnostics.len(), 1, "admission {admission}: {diagnostics:?}");
            assert!(diagnostics[0].message.contains("is not served"), "{:?}", diagnostics[0]);
            memo = verdicts.finish();
            assert_eq!(memo.computed(), if admission == 0 { 3 } else { 0 });
        }
    }

    /// Routes that moved (near or far) or changed are found or decided, and get the verdicts a
    /// fresh admission gives; only what changed is decided. Routes asked for in more places
    /// than last time (another virtual host) are found once the walk has missed enough of them.
    #[test]
    fn the_walk_finds_moved_and_repeated_routes_and_decides_only_changed_ones() {
        const N: usize = 100;
        let first = routes(N, None);
        let all: Vec<&HostRoute> = first.iter().collect();
        let (admitted, memo) = admission(RouteMemo::default(), &all);
        assert_eq!((memo.computed(), admitted.len()), (N, N));

        let (again, memo) = admission(memo, &all);
        assert!(again == admitted);
        assert_eq!((memo.computed(), memo.refreshed()), (0, 0));

        // The first route moves to the end (far past the look-ahead), the sixth two places on,
        // and m12 changes.
        let changed = routes(N, Some(12));
        let m12 = |routes: &[HostRoute]| routes.iter().position(|r| r.route.name == "default/m012").unwrap();
        let mut order: Vec<&HostRoute> = all[1..].to_vec();
        order.push(all[0]);
        let moved = order.remove(5);
        order.insert(7, moved);
        let twelve = order.iter().position(|r| Arc::ptr_eq(&r.route, &first[m12(&first)].route)).unwrap();
        order[twelve] = &changed[m12(&changed)];
        let (walked, memo) = admission(memo, &order);
        assert!(walked == fresh(&order), "the verdicts a fresh admission gives");
        assert_eq!((memo.computed(), memo.refreshed()), (1, 0), "only the changed route is decided");

        // Every route asked for a second time.
        let twice: Vec<&HostRoute> = order.iter().chain(order.iter()).copied().collect();
        let (walked, memo) = admission(memo, &twice);
        assert!(walked == fresh(&twice), "the verdicts a fresh admission gives");
        assert!(memo.computed() <= MISSES_BEFORE_INDEX, "{} of {N} repeated routes decided again", memo.computed());
        let (_, memo) = admission(memo, &twice);
        assert_eq!((memo.computed(), memo.refreshed()), (0, 0), "the walk finds both places");

        // Rebuilt equal at new addresses: each is compared once, then known by address.
        let rebuilt = routes(N, Some(12));
        let equal: Vec<&HostRoute> =
            order.iter().map(|r| rebuilt.iter().find(|n| n.route.name == r.route.name).unwrap()).collect();
        let (compared, memo) = admission(memo, &equal);
        assert!(compared == fresh(&equal), "the verdicts a fresh admission gives");
        assert_eq!((memo.computed(), memo.refreshed()), (0, N));
        let (_, memo) = admission(memo, &equal);
        assert_eq!((memo.computed(), memo.refreshed()), (0, 0));
    }
}
