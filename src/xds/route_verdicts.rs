//! What each route becomes when it is admitted (`admit.rs`): itself, encoded; a
//! fail-closed copy when Envoy would reject it or its cluster is not served; or nothing when even
//! its match would be rejected.
//!
//! Building, validating and encoding routes is most of the work of an admission, and a change to
//! one Mapping changes one route. So the verdicts are remembered from one admission to the next,
//! by route name and variant: a route that is the one remembered (see [`super::reuse::Fingerprint`]), under the same limits
//! and with its cluster served (or not) as it was, gets the remembered bytes and diagnostics
//! (see [`super::reuse`]).
//! Within one admission, a route shared by many virtual hosts is decided once per variant.

use super::provenance::report;
use super::reuse::{Fingerprint, Kept, NameOf, Named, Reuse, Reusing};
use super::route;
use super::validate::{self, Limits};
use crate::compile::ir::{HostRoute, Route, RouteAction, RouteVariant};
use crate::diagnostic::Diagnostic;
use std::collections::BTreeMap;
use std::sync::Arc;

const REJECTED_STATUS: u32 = 503;
const REJECTED_BODY: &str = "this route's configuration would be rejected by Envoy\n";

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

/// The verdicts of one admission, for the next.
pub type RouteMemo = Kept<NameOf<Route, RouteVariant>, Decided, Verdict>;

impl Named for Route {
    fn name(&self) -> &str {
        &self.name
    }
}

/// One admission's verdicts.
pub struct RouteVerdicts {
    reusing: Reusing<NameOf<Route, RouteVariant>, Decided, Verdict>,
}

impl RouteVerdicts {
    pub fn continuing(previous: RouteMemo) -> Self {
        RouteVerdicts { reusing: Reusing::from(previous) }
    }

    /// The encoded route as admitted (itself or a fail-closed copy), or `None` when it is dropped;
    /// its diagnostics go to `diagnostics` once per admission (a route many virtual hosts share
    /// is asked for once per host).
    pub fn admit(
        &mut self,
        route: &HostRoute,
        dropped_clusters: &BTreeMap<&str, String>,
        limits: &Limits,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Arc<[u8]>> {
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
        let got = self.reusing.get(NameOf(route.route.clone(), route.variant), reuse, || {
            let mut own = Vec::new();
            let admitted = admit_route(&route.resolve(), cluster_problem.map(String::as_str), limits, &mut own)
                .map(|admitted| Arc::from(route::encode_route(&route::build_route(&admitted))));
            let cluster_problem = cluster_problem.cloned();
            (Decided { route: Fingerprint::of(&route.route), limits: *limits, cluster_problem }, (admitted, own))
        });
        let (admitted, reported) = &got.kept.1;
        if !got.again {
            diagnostics.extend(reported.iter().cloned());
        }
        admitted.clone()
    }

    pub fn finish(self) -> RouteMemo {
        self.reusing.finish()
    }
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
