//! RouteConfigurations: one virtual host matching every authority (Mappings without a host match
//! every host; `host`/`hostname` become `:authority` header matches, as in Emissary).

use super::millis;
use crate::compile::ir::{
    HashPolicy as IrHashPolicy, HeaderValueMatch, PathMatch, Route as IrRoute, RouteAction as IrAction, RouteTable,
};
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource, RuntimeFractionalPercent};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, route, route_action, route_match, DirectResponseAction, HeaderMatcher, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::BoolValue;
use prost::Message;

const VIRTUAL_HOST: &str = "ambassador-all-hosts";

pub fn build_route_configuration(table: &RouteTable) -> RouteConfiguration {
    RouteConfiguration {
        name: table.name.clone(),
        virtual_hosts: vec![build_virtual_host(table)],
        ..Default::default()
    }
}

fn build_virtual_host(table: &RouteTable) -> VirtualHost {
    VirtualHost {
        name: VIRTUAL_HOST.into(),
        domains: vec!["*".into()],
        routes: table.routes.iter().map(build_route).collect(),
        ..Default::default()
    }
}

/// The encoded RouteConfiguration, built route by route: a repeated field is its elements'
/// encodings one after another, so the tens of thousands of `Route` structs never exist at once
/// (each is several hundred bytes as a struct, a few dozen encoded). Byte-identical to
/// `build_route_configuration(table).encode_to_vec()`.
pub fn encode_route_configuration(table: &RouteTable) -> Vec<u8> {
    let mut virtual_host = VirtualHost {
        routes: Vec::new(),
        ..build_virtual_host(&RouteTable { name: String::new(), routes: Vec::new() })
    }
    .encode_to_vec();
    for route in &table.routes {
        append_message_field(&mut virtual_host, VIRTUAL_HOST_ROUTES_FIELD, &build_route(route).encode_to_vec());
    }
    let mut config = RouteConfiguration { name: table.name.clone(), ..Default::default() }.encode_to_vec();
    append_message_field(&mut config, ROUTE_CONFIGURATION_VIRTUAL_HOSTS_FIELD, &virtual_host);
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
            hash_policy: forward.hash_policy.iter().map(build_hash_policy).collect(),
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

fn build_hash_policy(policy: &IrHashPolicy) -> route_action::HashPolicy {
    use route_action::hash_policy::{ConnectionProperties, Cookie, Header, PolicySpecifier};
    let specifier = match policy {
        IrHashPolicy::Cookie { name, path, ttl_ms } => PolicySpecifier::Cookie(Cookie {
            name: name.clone(),
            ttl: ttl_ms.map(millis),
            path: path.clone().unwrap_or_default(),
            ..Default::default()
        }),
        IrHashPolicy::Header(name) => {
            PolicySpecifier::Header(Header { header_name: name.clone(), ..Default::default() })
        }
        IrHashPolicy::SourceIp(source_ip) => {
            PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: *source_ip })
        }
    };
    route_action::HashPolicy { policy_specifier: Some(specifier), terminal: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ir::{Forward, RouteMatch};

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
                hash_policy: None,
            }),
            provenance: Vec::new(),
        };
        let table = RouteTable { name: "ambassador-routes".into(), routes: (0..50).map(route).collect() };
        assert_eq!(encode_route_configuration(&table), build_route_configuration(&table).encode_to_vec());
    }
}
