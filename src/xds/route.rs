//! RouteConfigurations: virtual hosts by domain (one matching every authority when no `Host`
//! is given; one per Host hostname otherwise), each holding the routes of the Mappings it serves
//! (`host`/`hostname` also become `:authority` header matches, as in Emissary).

use super::millis;
use crate::compile::ir::{
    HeaderValueMatch, PathMatch, Route as IrRoute, RouteAction as IrAction, RouteTable, VirtualHost as IrVirtualHost,
};
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource, RuntimeFractionalPercent};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, redirect_action, route, route_action, route_match, DirectResponseAction,
    HeaderMatcher, RedirectAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::BoolValue;
use prost::Message;

pub fn build_route_configuration(table: &RouteTable) -> RouteConfiguration {
    RouteConfiguration {
        name: table.name.clone(),
        virtual_hosts: table.virtual_hosts.iter().map(build_virtual_host).collect(),
        ..Default::default()
    }
}

fn build_virtual_host(host: &IrVirtualHost) -> VirtualHost {
    VirtualHost {
        name: host.name.clone(),
        domains: host.domains.clone(),
        routes: host.routes.iter().map(|route| build_route(&route.resolve())).collect(),
        ..Default::default()
    }
}

/// The encoded RouteConfiguration, built route by route: a repeated field is its elements'
/// encodings one after another, so the tens of thousands of `Route` structs never exist at once
/// (each is several hundred bytes as a struct, a few dozen encoded). Byte-identical to
/// `build_route_configuration(table).encode_to_vec()`.
pub fn encode_route_configuration(table: &RouteTable) -> Vec<u8> {
    let mut config = RouteConfiguration { name: table.name.clone(), ..Default::default() }.encode_to_vec();
    for host in &table.virtual_hosts {
        let mut virtual_host =
            VirtualHost { name: host.name.clone(), domains: host.domains.clone(), ..Default::default() }
                .encode_to_vec();
        for route in &host.routes {
            let encoded = build_route(&route.resolve()).encode_to_vec();
            append_message_field(&mut virtual_host, VIRTUAL_HOST_ROUTES_FIELD, &encoded);
        }
        append_message_field(&mut config, ROUTE_CONFIGURATION_VIRTUAL_HOSTS_FIELD, &virtual_host);
    }
    config
}

/// The same, from routes already encoded (as admission checked them), for each virtual host.
pub fn encode_route_configuration_from<R: AsRef<[u8]>>(name: &str, hosts: &[(&IrVirtualHost, Vec<R>)]) -> Vec<u8> {
    let mut config = RouteConfiguration { name: name.to_string(), ..Default::default() }.encode_to_vec();
    for (host, routes) in hosts {
        let mut virtual_host =
            VirtualHost { name: host.name.clone(), domains: host.domains.clone(), ..Default::default() }
                .encode_to_vec();
        for route in routes {
            append_message_field(&mut virtual_host, VIRTUAL_HOST_ROUTES_FIELD, route.as_ref());
        }
        append_message_field(&mut config, ROUTE_CONFIGURATION_VIRTUAL_HOSTS_FIELD, &virtual_host);
    }
    config
}

/// Field numbers in route.proto / route_components.proto.
const ROUTE_CONFIGURATION_VIRTUAL_HOSTS_FIELD: u32 = 2;
const VIRTUAL_HOST_ROUTES_FIELD: u32 = 3;

fn append_message_field(buffer: &mut Vec<u8>, field: u32, message: &[u8]) {
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, buffer);
    prost::encoding::encode_varint(message.len() as u64, buffer);
    buffer.extend_from_slice(message);
}

fn regex(regex: &str) -> RegexMatcher {
    RegexMatcher { regex: regex.to_string(), ..Default::default() }
}

fn string_match(pattern: MatchPattern, ignore_case: bool) -> HeaderMatchSpecifier {
    HeaderMatchSpecifier::StringMatch(StringMatcher { match_pattern: Some(pattern), ignore_case })
}

pub(super) fn build_route(ir: &IrRoute) -> Route {
    let path_specifier = match &ir.matcher.path {
        PathMatch::Prefix(prefix) => route_match::PathSpecifier::Prefix(prefix.clone()),
        PathMatch::Exact(path) => route_match::PathSpecifier::Path(path.clone()),
        PathMatch::Regex(pattern) => route_match::PathSpecifier::SafeRegex(regex(pattern)),
    };
    let headers = ir
        .matcher
        .headers
        .iter()
        .map(|header| HeaderMatcher {
            name: header.name.clone(),
            header_match_specifier: Some(match &header.value {
                HeaderValueMatch::Exact(value) => string_match(MatchPattern::Exact(value.clone()), header.ignore_case),
                HeaderValueMatch::Prefix(value) => {
                    string_match(MatchPattern::Prefix(value.clone()), header.ignore_case)
                }
                HeaderValueMatch::Suffix(value) => {
                    string_match(MatchPattern::Suffix(value.clone()), header.ignore_case)
                }
                HeaderValueMatch::Regex(pattern) => string_match(MatchPattern::SafeRegex(regex(pattern)), false),
                HeaderValueMatch::Present => HeaderMatchSpecifier::PresentMatch(true),
            }),
            ..Default::default()
        })
        .collect();
    let route_match = RouteMatch {
        path_specifier: Some(path_specifier),
        // Envoy's default is case sensitive; only say so when it is not.
        case_sensitive: (!ir.matcher.case_sensitive).then_some(BoolValue { value: false }),
        headers,
        runtime_fraction: ir.matcher.runtime_fraction.as_ref().map(|fraction| RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: fraction.percent,
                denominator: DenominatorType::Hundred as i32,
            }),
            runtime_key: fraction.runtime_key.clone(),
        }),
        ..Default::default()
    };
    let action = match &ir.action {
        IrAction::Forward(forward) => route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(forward.cluster.clone())),
            prefix_rewrite: forward.prefix_rewrite.clone().unwrap_or_default(),
            timeout: Some(millis(forward.timeout_ms)),
            idle_timeout: forward.idle_timeout_ms.map(millis),
            host_rewrite_specifier: match (&forward.host_rewrite, forward.auto_host_rewrite) {
                (Some(host), _) => Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone())),
                (None, true) => Some(route_action::HostRewriteSpecifier::AutoHostRewrite(BoolValue { value: true })),
                (None, false) => None,
            },
            ..Default::default()
        }),
        IrAction::HttpsRedirect => route::Action::Redirect(RedirectAction {
            scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)),
            ..Default::default()
        }),
        IrAction::FailClosed { status, body } => route::Action::DirectResponse(DirectResponseAction {
            status: *status,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(body.clone())),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    Route { name: ir.name.clone(), r#match: Some(route_match), action: Some(action), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ir::{Forward, HostRoute, RouteMatch};

    fn virtual_host(name: &str, routes: Vec<IrRoute>) -> IrVirtualHost {
        let routes = routes.into_iter().map(|r| HostRoute::as_written(std::sync::Arc::new(r))).collect();
        IrVirtualHost { name: name.into(), domains: vec![name.into()], routes }
    }

    #[test]
    fn streamed_encoding_matches_the_struct_encoding() {
        let route = |i: usize| IrRoute {
            name: format!("default/m{i}"),
            matcher: RouteMatch {
                path: PathMatch::Prefix(format!("/m{i}/")),
                case_sensitive: true,
                headers: vec![],
                runtime_fraction: None,
            },
            action: IrAction::Forward(Forward {
                cluster: format!("cluster_m{i}_default"),
                prefix_rewrite: Some("/".into()),
                timeout_ms: 3000,
                idle_timeout_ms: None,
                host_rewrite: None,
                auto_host_rewrite: false,
            }),
            provenance: Vec::new(),
        };
        let table = RouteTable {
            name: "ambassador-routes".into(),
            virtual_hosts: vec![
                virtual_host("a.example.com", (0..50).map(route).collect()),
                virtual_host("*", Vec::new()),
                virtual_host("b.example.com", (50..60).map(route).collect()),
            ],
        };
        assert_eq!(encode_route_configuration(&table), build_route_configuration(&table).encode_to_vec());
        let encoded: Vec<(&IrVirtualHost, Vec<Vec<u8>>)> = table
            .virtual_hosts
            .iter()
            .map(|host| (host, host.routes.iter().map(|r| build_route(&r.resolve()).encode_to_vec()).collect()))
            .collect();
        assert_eq!(encode_route_configuration_from(&table.name, &encoded), encode_route_configuration(&table));
    }
}
