//! What operators see, as data: the page renders it, `/debug/status` serves it as JSON, and
//! `ambassador-xds status` prints part of it. Built from the served snapshot (decoded: the route
//! table as Envoy will see it), the last reload's report, and the registry of connected Envoys.

use super::certs::{self, CertificateView};
use super::time;
use crate::controller::ReloadReport;
use crate::diagnostic::{Diagnostic, Origin, Severity};
use crate::server::status::{Registry, StreamEntry};
use crate::snapshot::Snapshot;
use crate::xds::XdsType;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{data_source, transport_socket};
use envoy_types::pb::envoy::config::route::v3::{header_matcher, route, route_action, route_match, RouteConfiguration};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub generated_at: String,
    pub serial: u64,
    pub ready: bool,
    pub resources: BTreeMap<&'static str, usize>,
    pub inventory: Vec<InventoryRow>,
    pub diagnostics: Vec<DiagnosticRow>,
    pub routes: Vec<RouteRow>,
    pub certificates: Vec<CertificateView>,
    pub envoys: Vec<EnvoyRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InventoryRow {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub file: String,
    pub document: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticRow {
    pub severity: &'static str,
    pub kind: &'static str,
    pub file: String,
    pub document: Option<usize>,
    pub resource: String,
    pub message: String,
    /// The whole line, as logged.
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteRow {
    pub order: usize,
    pub name: String,
    pub matches: String,
    pub host: String,
    /// The target cluster, or what the route answers itself.
    pub target: String,
    pub tls_context: String,
    /// Why the route answers itself (fail closed), from its Mapping's diagnostics.
    pub fail_closed: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvoyRow {
    pub node: String,
    pub cluster: String,
    pub agent: String,
    pub peer: String,
    pub protocol: &'static str,
    pub service: &'static str,
    pub connected_since: String,
    /// SYNCED, STALE or NACKED: the worst of its types.
    pub state: &'static str,
    pub types: Vec<TypeRow>,
    pub nacks: Vec<NackRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TypeRow {
    #[serde(rename = "type")]
    pub xds_type: &'static str,
    pub state: &'static str,
    pub acked: String,
    pub sent: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NackRow {
    #[serde(rename = "type")]
    pub xds_type: &'static str,
    pub version: String,
    pub message: String,
    pub culprits: Vec<String>,
}

pub fn overview(snapshot: &Snapshot, ready: bool, report: &ReloadReport, registry: &Registry) -> Overview {
    overview_at(snapshot, ready, report, registry, time::now())
}

/// [`overview`] as of `now` (Unix seconds): expiry warnings and the page's timestamp.
pub fn overview_at(snapshot: &Snapshot, ready: bool, report: &ReloadReport, registry: &Registry, now: i64) -> Overview {
    let mut diagnostics: Vec<Diagnostic> = report.diagnostics.clone();
    diagnostics.extend(registry.nacks.diagnostics());
    Overview {
        generated_at: time::rfc3339(now),
        serial: snapshot.serial,
        ready,
        resources: XdsType::ALL.iter().map(|t| (t.golden_field(), snapshot.of(*t).entries.len())).collect(),
        inventory: report
            .inventory
            .list()
            .iter()
            .map(|p| InventoryRow {
                kind: p.resource.kind.to_string(),
                namespace: p.resource.namespace.to_string(),
                name: p.resource.name.to_string(),
                file: p.origin.file.to_string(),
                document: document(&p.origin),
            })
            .collect(),
        routes: route_rows(snapshot, &report.diagnostics),
        certificates: certs::served(snapshot, now),
        envoys: registry.streams().iter().map(envoy_row).collect(),
        diagnostics: diagnostics.iter().map(diagnostic_row).collect(),
    }
}

fn document(origin: &Origin) -> Option<usize> {
    (origin.document != Origin::SINGLE_OBJECT).then_some(origin.document)
}

fn diagnostic_row(diagnostic: &Diagnostic) -> DiagnosticRow {
    DiagnosticRow {
        severity: match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        kind: diagnostic.kind.name(),
        file: diagnostic.origin.as_ref().map(|o| o.file.to_string()).unwrap_or_default(),
        document: diagnostic.origin.as_ref().and_then(document),
        resource: diagnostic.resource.as_ref().map(ToString::to_string).unwrap_or_default(),
        message: diagnostic.message.clone(),
        text: diagnostic.to_string(),
    }
}

fn envoy_row(stream: &StreamEntry) -> EnvoyRow {
    let node = stream.node.clone().unwrap_or_default();
    EnvoyRow {
        node: node.id,
        cluster: node.cluster,
        agent: node.agent,
        peer: stream.peer.clone(),
        protocol: stream.protocol,
        service: stream.service,
        connected_since: time::rfc3339(time::unix(stream.connected_since)),
        state: stream.state().name(),
        types: stream
            .types
            .iter()
            .map(|t| TypeRow {
                xds_type: t.xds_type.short_name(),
                state: t.state().name(),
                acked: t.acked.clone().unwrap_or_default(),
                sent: t.sent.clone().unwrap_or_default(),
            })
            .collect(),
        nacks: stream
            .last_nacks
            .values()
            .map(|report| NackRow {
                xds_type: report.nack.xds_type.short_name(),
                version: report.nack.version.clone(),
                message: report.nack.message.clone(),
                culprits: report.culprits.iter().map(|c| format!("{} ({})", c.resource, c.origin)).collect(),
            })
            .collect(),
    }
}

/// The route table in Envoy's order, each route with what it matches and where it goes.
fn route_rows(snapshot: &Snapshot, diagnostics: &[Diagnostic]) -> Vec<RouteRow> {
    let tls_by_cluster: BTreeMap<String, String> = snapshot
        .resources
        .of(XdsType::Cluster)
        .iter()
        .filter_map(|r| {
            let cluster: Cluster = r.decode();
            let context = tls_context_of(&cluster)?;
            Some((cluster.name, context))
        })
        .collect();
    // A route is named `<namespace>/<Mapping>`; its Mapping's errors say why it fails closed.
    let mut errors: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for diagnostic in diagnostics.iter().filter(|d| d.is_error()) {
        if let Some(resource) = diagnostic.resource.as_ref().filter(|r| &*r.kind == "Mapping") {
            errors.entry(format!("{}/{}", resource.namespace, resource.name)).or_default().push(&diagnostic.message);
        }
    }
    let mut rows = Vec::new();
    for resource in snapshot.resources.of(XdsType::Route) {
        let config: RouteConfiguration = resource.decode();
        for host in &config.virtual_hosts {
            for route in &host.routes {
                let (target, answers_itself) = target(route, &tls_by_cluster);
                let cluster_tls = match &route.action {
                    Some(route::Action::Route(action)) => match &action.cluster_specifier {
                        Some(route_action::ClusterSpecifier::Cluster(cluster)) => tls_by_cluster.get(cluster).cloned(),
                        _ => None,
                    },
                    _ => None,
                };
                rows.push(RouteRow {
                    order: rows.len() + 1,
                    name: route.name.clone(),
                    matches: matches(route),
                    host: host_of(host, route),
                    target,
                    tls_context: cluster_tls.unwrap_or_default(),
                    fail_closed: if answers_itself {
                        errors.get(&route.name).map(|m| m.join("; ")).unwrap_or_default()
                    } else {
                        String::new()
                    },
                });
            }
        }
    }
    rows
}

/// `tlscontext/<ns>/<name>/...` SDS names say which TLSContext a cluster originates TLS with.
fn tls_context_of(cluster: &Cluster) -> Option<String> {
    let socket = cluster.transport_socket.as_ref()?;
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else { return None };
    let context = <UpstreamTlsContext as prost::Message>::decode(any.value.as_slice()).ok()?;
    let common = context.common_tls_context?;
    let names = common.tls_certificate_sds_secret_configs.iter().map(|c| c.name.as_str());
    let context_name =
        names.filter_map(|n| n.strip_prefix("tlscontext/")).find_map(|n| n.rsplit_once('/').map(|(c, _)| c));
    Some(context_name.map_or_else(|| "TLS (no client certificate)".to_string(), |c| format!("TLSContext {c}")))
}

fn matches(route: &envoy_types::pb::envoy::config::route::v3::Route) -> String {
    let Some(m) = &route.r#match else { return String::new() };
    let mut parts = vec![match &m.path_specifier {
        Some(route_match::PathSpecifier::Prefix(prefix)) => format!("prefix {prefix}"),
        Some(route_match::PathSpecifier::Path(path)) => format!("path {path}"),
        Some(route_match::PathSpecifier::SafeRegex(regex)) => format!("regex {}", regex.regex),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }];
    for header in m.headers.iter().filter(|h| h.name != ":authority") {
        parts.push(format!("{} {}", header.name, header_value(&header.header_match_specifier)));
    }
    if let Some(fraction) = m.runtime_fraction.as_ref().and_then(|f| f.default_value.as_ref()) {
        parts.push(format!("{}%", fraction.numerator));
    }
    parts.join(", ")
}

fn header_value(specifier: &Option<header_matcher::HeaderMatchSpecifier>) -> String {
    match specifier {
        Some(header_matcher::HeaderMatchSpecifier::StringMatch(matcher)) => match &matcher.match_pattern {
            Some(MatchPattern::Exact(v)) => format!("= {v}"),
            Some(MatchPattern::Prefix(v)) => format!("= {v}*"),
            Some(MatchPattern::Suffix(v)) => format!("= *{v}"),
            Some(MatchPattern::SafeRegex(r)) => format!("~ {}", r.regex),
            Some(MatchPattern::Contains(v)) => format!("contains {v}"),
            _ => "?".to_string(),
        },
        Some(header_matcher::HeaderMatchSpecifier::PresentMatch(true)) => "present".to_string(),
        _ => "?".to_string(),
    }
}

fn host_of(
    host: &envoy_types::pb::envoy::config::route::v3::VirtualHost,
    route: &envoy_types::pb::envoy::config::route::v3::Route,
) -> String {
    let authority = route.r#match.as_ref().and_then(|m| m.headers.iter().find(|h| h.name == ":authority"));
    match authority {
        Some(header) => header_value(&header.header_match_specifier).trim_start_matches("= ").to_string(),
        None => host.domains.join(" "),
    }
}

/// `cluster X`, `answers 503: body`, `redirects to ...`; and whether the route answers itself.
fn target(route: &envoy_types::pb::envoy::config::route::v3::Route, _tls: &BTreeMap<String, String>) -> (String, bool) {
    match &route.action {
        Some(route::Action::Route(action)) => match &action.cluster_specifier {
            Some(route_action::ClusterSpecifier::Cluster(cluster)) => (cluster.clone(), false),
            Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
                let parts: Vec<String> = weighted
                    .clusters
                    .iter()
                    .map(|c| format!("{} ({})", c.name, c.weight.as_ref().map_or(0, |w| w.value)))
                    .collect();
                (parts.join(", "), false)
            }
            other => (format!("{other:?}"), false),
        },
        Some(route::Action::DirectResponse(direct)) => {
            let body = match direct.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                Some(data_source::Specifier::InlineString(text)) => text.trim().to_string(),
                _ => String::new(),
            };
            (format!("answers {}: {body}", direct.status), true)
        }
        Some(route::Action::Redirect(redirect)) => (format!("redirects ({:?})", redirect.response_code), true),
        Some(other) => (format!("{other:?}"), true),
        None => (String::new(), true),
    }
}
