//! HTTP listeners: an HTTP connection manager that takes its routes over RDS (on the ADS stream),
//! so route changes never drain the listener, with the edge settings Emissary applies:
//!
//! * `normalize_path` (Emissary's default): `/api/../admin` is routed as `/admin`, not by the
//!   `/api/` prefix to an upstream that would resolve it to its own `/admin`;
//! * `merge_slashes` (in Emissary a Module option, off by default; on here): `//admin` is `/admin`;
//! * `use_remote_address` with `xff_num_trusted_hops: 0` (Emissary's default): the client address
//!   is the peer's, not whatever `X-Forwarded-For` a client sends;
//! * the port and a trailing dot are stripped from the host before routing, so hosts match
//!   without them (see `compile::host`);
//! * headers with `_` in their names: `--headers-with-underscores` (Emissary's default: allowed).

use super::{ads_config_source, to_any};
use crate::compile::ir::{HttpListener, UnderscoreHeaders};
use envoy_types::pb::envoy::config::core::v3::{
    address, http_protocol_options::HeadersWithUnderscoresAction, socket_address, Address, HttpProtocolOptions,
    SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{RouteSpecifier, StripPortMode},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::BoolValue;

pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
const ROUTER_FILTER: &str = "envoy.filters.http.router";

pub fn build_listener(listener: &HttpListener) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: listener.stat_prefix.clone(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: listener.route_config.clone(),
        })),
        http_filters: vec![HttpFilter {
            name: ROUTER_FILTER.into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(to_any(&Router::default()))),
            ..Default::default()
        }],
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        use_remote_address: Some(BoolValue { value: true }),
        xff_num_trusted_hops: 0,
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        strip_trailing_host_dot: true,
        common_http_protocol_options: match listener.headers_with_underscores {
            UnderscoreHeaders::Allow => None,
            UnderscoreHeaders::Drop => Some(underscores(HeadersWithUnderscoresAction::DropHeader)),
            UnderscoreHeaders::Reject => Some(underscores(HeadersWithUnderscoresAction::RejectRequest)),
        },
        ..Default::default()
    };
    Listener {
        name: listener.name.clone(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "0.0.0.0".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(listener.port.into())),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM_FILTER.into(),
                config_type: Some(filter::ConfigType::TypedConfig(to_any(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn underscores(action: HeadersWithUnderscoresAction) -> HttpProtocolOptions {
    HttpProtocolOptions { headers_with_underscores_action: action as i32, ..Default::default() }
}
