//! Decides, resource by resource, what Envoy is sent: every built resource is validated as Envoy
//! will validate it, and one that would be rejected never goes out, because Envoy rejects the
//! whole response it is in (and the server never re-sends a rejected version, so one bad Mapping
//! would freeze every later change of its type). In dependency order:
//! - a Secret that fails is dropped, and so is every cluster that names it;
//! - a cluster that fails (or lost its Secret) is dropped, and routes to it fail closed;
//! - a route that fails becomes a direct 503 under its own name and match; if its match is what
//!   fails (a regex over the program-size limit, an empty header name), it is dropped;
//! - a listener that fails is dropped.
//!
//! Each of these is a diagnostic on the Ambassador resource behind it.

use super::provenance::ProvenanceIndex;
use super::validate::{self, Limits};
use super::{cluster, listener, route, secret, tcp_listener, Resource, Resources, XdsType};
use crate::compile::ir::{Ir, Route, RouteAction, RouteTable};
use crate::diagnostic::{Diagnostic, Kind, Provenance};
use bytes::Bytes;
use std::collections::BTreeMap;

const REJECTED_STATUS: u32 = 503;
const REJECTED_BODY: &str = "this route's configuration would be rejected by Envoy\n";

/// Everything that is served, what was held back and why, and who is behind each resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admitted {
    pub resources: Resources,
    pub diagnostics: Vec<Diagnostic>,
    pub provenance: ProvenanceIndex,
}

fn report(diagnostics: &mut Vec<Diagnostic>, provenance: &[Provenance], message: String) {
    let first = provenance.first();
    diagnostics.push(
        Diagnostic::error(first.map(|p| &p.origin), first.map(|p| &p.resource), message).with_kind(Kind::Rejected),
    );
}

/// Builds, validates and encodes every resource of `ir`.
pub fn admit(ir: &Ir, limits: &Limits) -> Admitted {
    let mut out = Admitted::default();
    let mut dropped_secrets: BTreeMap<&str, String> = BTreeMap::new();
    let mut secrets = Vec::new();
    for tls_secret in &ir.secrets {
        let message = secret::build_secret(tls_secret);
        match validate::check(&message, limits) {
            Ok(()) => {
                out.provenance.insert(XdsType::Secret, &tls_secret.name, tls_secret.provenance.clone());
                secrets.push(Resource::encode(&tls_secret.name, &message));
            }
            Err(problem) => {
                report(
                    &mut out.diagnostics,
                    &tls_secret.provenance,
                    format!("SDS secret {} is not served: {problem}", tls_secret.name),
                );
                dropped_secrets.insert(&tls_secret.name, problem);
            }
        }
    }

    let mut dropped_clusters: BTreeMap<&str, String> = BTreeMap::new();
    let mut clusters = Vec::new();
    for ir_cluster in &ir.clusters {
        let missing = ir_cluster.tls.iter().flat_map(|tls| [&tls.client_certificate_secret, &tls.validation_secret]);
        let lost = missing.flatten().find(|name| dropped_secrets.contains_key(name.as_str()));
        let message = cluster::build_cluster(ir_cluster);
        let verdict = match lost {
            Some(name) => Err(format!("its SDS secret {name} is not served")),
            None => validate::check(&message, limits),
        };
        match verdict {
            Ok(()) => {
                out.provenance.insert(XdsType::Cluster, &ir_cluster.name, ir_cluster.provenance.clone());
                clusters.push(Resource::encode(&ir_cluster.name, &message));
            }
            Err(problem) => {
                report(
                    &mut out.diagnostics,
                    &ir_cluster.provenance,
                    format!("cluster {} is not served: {problem}", ir_cluster.name),
                );
                dropped_clusters.insert(&ir_cluster.name, problem);
            }
        }
    }

    let mut listeners = Vec::new();
    for ir_listener in &ir.listeners {
        let message = listener::build_listener(ir_listener);
        match validate::check(&message, limits) {
            Ok(()) => {
                out.provenance.insert(XdsType::Listener, &ir_listener.name, ir_listener.provenance.clone());
                listeners.push(Resource::encode(&ir_listener.name, &message));
            }
            Err(problem) => report(
                &mut out.diagnostics,
                &ir_listener.provenance,
                format!("listener {} is not served: {problem}", ir_listener.name),
            ),
        }
    }

    for tcp in &ir.tcp_listeners {
        let clusters = tcp.chains.iter().flat_map(|chain| chain.clusters.iter().map(|(name, _)| name));
        let secrets = tcp.chains.iter().flat_map(|chain| [&chain.certificate_secret, &chain.validation_secret]);
        let lost = clusters
            .filter_map(|name| {
                dropped_clusters.get(name.as_str()).map(|why| format!("its cluster {name} is not served ({why})"))
            })
            .chain(
                secrets
                    .flatten()
                    .filter(|name| dropped_secrets.contains_key(name.as_str()))
                    .map(|name| format!("its SDS secret {name} is not served")),
            )
            .next();
        let message = tcp_listener::build_tcp_listener(tcp);
        match lost.map_or_else(|| validate::check(&message, limits), Err) {
            Ok(()) => {
                out.provenance.insert(XdsType::Listener, &tcp.name, tcp.provenance.clone());
                listeners.push(Resource::encode(&tcp.name, &message));
            }
            Err(problem) => {
                report(&mut out.diagnostics, &tcp.provenance, format!("listener {} is not served: {problem}", tcp.name))
            }
        }
    }

    let mut routes = Vec::new();
    for table in &ir.route_configs {
        let admitted: Vec<Route> = table
            .routes
            .iter()
            .filter_map(|r| admit_route(r, &dropped_clusters, limits, &mut out.diagnostics))
            .collect();
        let table = RouteTable { name: table.name.clone(), routes: admitted };
        out.provenance.insert_routes(&table.name, table.routes.iter().map(|r| r.provenance.clone()).collect());
        routes
            .push(Resource { name: table.name.clone(), body: Bytes::from(route::encode_route_configuration(&table)) });
    }

    out.resources = Resources::default()
        .with(XdsType::Cluster, clusters)
        .with(XdsType::Listener, listeners)
        .with(XdsType::Route, routes)
        .with(XdsType::Secret, secrets);
    out
}

fn fail_closed(route: &Route) -> Route {
    Route {
        action: RouteAction::FailClosed { status: REJECTED_STATUS, body: REJECTED_BODY.to_string() },
        ..route.clone()
    }
}

/// The route as admitted: itself, a fail-closed copy, or nothing.
fn admit_route(
    route: &Route,
    dropped_clusters: &BTreeMap<&str, String>,
    limits: &Limits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Route> {
    if let RouteAction::Forward(forward) = &route.action {
        if let Some(problem) = dropped_clusters.get(forward.cluster.as_str()) {
            let message =
                format!("cluster {} is not served ({problem}); the route answers {REJECTED_STATUS}", forward.cluster);
            report(diagnostics, &route.provenance, message);
            return Some(fail_closed(route));
        }
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
