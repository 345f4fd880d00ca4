//! RouteConfigurations: one virtual host matching every authority (Mappings without a host match
//! every host; `host`/`hostname` become `:authority` header matches, as in Emissary). One builder
//! per part of a route: its match, its action, and its policy (headers, CORS, error responses).

mod action;
mod matcher;
pub mod policy;

use crate::compile::ir::{Route as IrRoute, RouteTable};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
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
    use crate::compile::ir::{Forward, PathMatch, RouteAction, RouteMatch};

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
        let table = RouteTable { name: "ambassador-routes".into(), routes: (0..50).map(route).collect() };
        assert_eq!(encode_route_configuration(&table), build_route_configuration(&table).encode_to_vec());
    }
}
