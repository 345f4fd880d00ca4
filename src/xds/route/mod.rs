//! RouteConfigurations: virtual hosts by domain (one matching every authority when no `Host`
//! is given; one per Host hostname otherwise), each holding the routes of the Mappings it serves
//! (`host`/`hostname` also become `:authority` header matches, as in Emissary). One builder per
//! part of a route: its match, its action, and its policy (headers, CORS, error responses).

mod action;
mod matcher;
pub mod policy;

use crate::compile::ir::{Route as IrRoute, RouteTable, VirtualHost as IrVirtualHost};
use crate::xds::{canonical, field};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};

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

/// The encoded RouteConfiguration, from routes already encoded (as admission checked them), for
/// each virtual host: a repeated field is its elements' encodings one after another, so the tens
/// of thousands of `Route` structs never exist at once (each is several hundred bytes as a
/// struct, a few dozen encoded). Byte-identical to
/// `canonical::encode(&build_route_configuration(table))` (tested).
pub fn encode_route_configuration_from<R: AsRef<[u8]>>(name: &str, hosts: &[(&IrVirtualHost, Vec<R>)]) -> Vec<u8> {
    let header = canonical::encode(&RouteConfiguration { name: name.to_string(), ..Default::default() });
    let virtual_hosts: Vec<(Vec<u8>, usize)> = hosts
        .iter()
        .map(|(host, routes)| {
            let header = canonical::encode(&VirtualHost {
                name: host.name.clone(),
                domains: host.domains.clone(),
                ..Default::default()
            });
            let length = header.len()
                + routes.iter().map(|route| field::len(VIRTUAL_HOST_ROUTES_FIELD, route.as_ref().len())).sum::<usize>();
            (header, length)
        })
        .collect();
    // Sized exactly: at 50,000 routes, growing the buffer by doubling was a fifth of admission.
    let total = header.len()
        + virtual_hosts
            .iter()
            .map(|(_, length)| field::len(ROUTE_CONFIGURATION_VIRTUAL_HOSTS_FIELD, *length))
            .sum::<usize>();
    let mut config = Vec::with_capacity(total);
    config.extend_from_slice(&header);
    for ((_, routes), (header, length)) in hosts.iter().zip(&virtual_hosts) {
        field::put_header(&mut config, ROUTE_CONFIGURATION_VIRTUAL_HOSTS_FIELD, *length);
        config.extend_from_slice(header);
        for route in routes {
            field::put(&mut config, VIRTUAL_HOST_ROUTES_FIELD, route.as_ref());
        }
    }
    debug_assert_eq!(config.len(), total);
    config
}

/// Field numbers in route.proto / route_components.proto.
const ROUTE_CONFIGURATION_VIRTUAL_HOSTS_FIELD: u32 = 2;
const VIRTUAL_HOST_ROUTES_FIELD: u32 = 3;

/// A route's encoding, the same every time: `typed_per_filter_config` (CORS, error responses)
/// is a map, written in key order ([`canonical`]).
pub fn encode_route(route: &Route) -> Vec<u8> {
    canonical::encode(route)
}

pub(super) fn build_route(ir: &IrRoute) -> Route {
    let mut route = Route {
        name: ir.name.clone(),
        r#match: Some(matcher::build_match(&ir.matcher)),
        action: Some(action::build_action(&ir.action)),
        ..Default::default()
    };
    policy::apply(&mut route, &ir.policy);
    route
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ir::{Forward, HostRoute, PathMatch, RouteAction, RouteMatch};
    use prost::Message;

    fn virtual_host(name: &str, routes: Vec<IrRoute>) -> IrVirtualHost {
        let routes = routes.into_iter().map(|r| HostRoute::as_written(std::sync::Arc::new(r))).collect();
        IrVirtualHost { name: name.into(), domains: vec![name.into()], routes }
    }

    #[test]
    fn a_route_with_several_filter_configs_encodes_the_same_every_time() {
        let any =
            |type_url: &str| envoy_types::pb::google::protobuf::Any { type_url: type_url.into(), value: vec![1, 2] };
        let encodings: std::collections::BTreeSet<Vec<u8>> = (0..32)
            .map(|_| {
                let mut route = Route { name: "r".into(), ..Default::default() };
                for filter in ["envoy.filters.http.cors", "envoy.filters.http.custom_response", "a", "z"] {
                    route.typed_per_filter_config.insert(filter.into(), any(filter));
                }
                encode_route(&route)
            })
            .collect();
        assert_eq!(encodings.len(), 1, "one encoding, whatever the maps' order");
        let encoded = encodings.into_iter().next().unwrap();
        let decoded = Route::decode(encoded.as_slice()).unwrap();
        assert_eq!(decoded.typed_per_filter_config.len(), 4, "every entry is there");
    }

    #[test]
    fn streamed_encoding_matches_the_struct_encoding() {
        let route = |i: usize| IrRoute {
            name: format!("default/m{i}"),
            matcher: RouteMatch {
                path: PathMatch::Prefix(format!("/m{i}/")),
                case_sensitive: true,
                headers: vec![],
                query_parameters: vec![],
                runtime_fraction: None,
            },
            action: RouteAction::Forward(Forward::to(format!("cluster_m{i}_default"))),
            policy: Default::default(),
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
        let encoded: Vec<(&IrVirtualHost, Vec<Vec<u8>>)> = table
            .virtual_hosts
            .iter()
            .map(|host| (host, host.routes.iter().map(|r| build_route(&r.resolve()).encode_to_vec()).collect()))
            .collect();
        let struct_encoding = canonical::encode(&build_route_configuration(&table));
        assert_eq!(encode_route_configuration_from(&table.name, &encoded), struct_encoding);
    }
}
