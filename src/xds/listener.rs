//! HTTP listeners: an HTTP connection manager that takes its routes over RDS (on the ADS stream),
//! so route changes never drain the listener, with the edge settings Emissary applies, changed
//! by the `ambassador` Module where it says so:
//!
//! * `normalize_path` (Emissary's default): `/api/../admin` is routed as `/admin`, not by the
//!   `/api/` prefix to an upstream that would resolve it to its own `/admin`;
//! * `merge_slashes` (in Emissary a Module option, off by default; on here): `//admin` is `/admin`;
//! * `use_remote_address` with `xff_num_trusted_hops: 0` (Emissary's default): the client address
//!   is the peer's, not whatever `X-Forwarded-For` a client sends;
//! * the port and a trailing dot are stripped from the host before routing, so hosts match
//!   without them (see `compile::host`);
//! * headers with `_` in their names: `--headers-with-underscores` (Emissary's default: allowed).
//!
//! The filters: CORS (always, as in Emissary, so routes may carry a policy), custom responses
//! (when error responses are overridden anywhere), the router.

use super::error_response::custom_response;
use super::{ads_config_source, millis, to_any};
use crate::compile::ir::{ClientCertDetails, ForwardClientCert, HttpListener, HttpOptions, UnderscoreHeaders};
use envoy_types::pb::envoy::config::core::v3::{
    address, http_protocol_options::HeadersWithUnderscoresAction, socket_address, Address, Http1ProtocolOptions,
    HttpProtocolOptions, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{
        ForwardClientCertDetails, PathWithEscapedSlashesAction, RouteSpecifier, SetCurrentClientCertDetails,
        StripPortMode,
    },
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
pub const CUSTOM_RESPONSE_FILTER: &str = "envoy.filters.http.custom_response";
const ROUTER_FILTER: &str = "envoy.filters.http.router";

fn http_filter<M: prost::Message + prost::Name>(name: &str, config: &M) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(to_any(config))),
        ..Default::default()
    }
}

pub fn socket_address(address: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

pub fn build_listener(listener: &HttpListener) -> Listener {
    let hcm = build_connection_manager(listener);
    Listener {
        name: listener.name.clone(),
        address: Some(socket_address("0.0.0.0", listener.port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM_FILTER.into(),
                config_type: Some(filter::ConfigType::TypedConfig(to_any(&hcm))),
            }],
            ..Default::default()
        }],
        per_connection_buffer_limit_bytes: listener.options.buffer_limit_bytes.map(|value| UInt32Value { value }),
        ..Default::default()
    }
}

fn build_connection_manager(listener: &HttpListener) -> HttpConnectionManager {
    let options = &listener.options;
    let mut http_filters = vec![http_filter(CORS_FILTER, &Cors::default())];
    if let Some(rules) = &options.error_responses {
        http_filters.push(http_filter(CUSTOM_RESPONSE_FILTER, &custom_response(rules)));
    }
    http_filters.push(http_filter(
        ROUTER_FILTER,
        &Router { suppress_envoy_headers: options.suppress_envoy_headers, ..Default::default() },
    ));
    HttpConnectionManager {
        stat_prefix: listener.stat_prefix.clone(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: listener.route_config.clone(),
        })),
        http_filters,
        normalize_path: Some(BoolValue { value: options.normalize_path }),
        merge_slashes: options.merge_slashes,
        use_remote_address: Some(BoolValue { value: options.use_remote_address }),
        xff_num_trusted_hops: options.xff_num_trusted_hops,
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        strip_trailing_host_dot: true,
        server_name: options.server_name.clone().unwrap_or_default(),
        max_request_headers_kb: options.max_request_headers_kb.map(|value| UInt32Value { value }),
        path_with_escaped_slashes_action: if options.reject_escaped_slashes {
            PathWithEscapedSlashesAction::RejectRequest as i32
        } else {
            PathWithEscapedSlashesAction::ImplementationSpecificDefault as i32
        },
        common_http_protocol_options: common_options(options),
        http_protocol_options: (options.accept_http_10 || options.allow_chunked_length).then(|| Http1ProtocolOptions {
            accept_http_10: options.accept_http_10,
            allow_chunked_length: options.allow_chunked_length,
            ..Default::default()
        }),
        preserve_external_request_id: options.preserve_external_request_id,
        forward_client_cert_details: match options.forward_client_cert {
            None | Some(ForwardClientCert::Sanitize) => ForwardClientCertDetails::Sanitize,
            Some(ForwardClientCert::ForwardOnly) => ForwardClientCertDetails::ForwardOnly,
            Some(ForwardClientCert::AppendForward) => ForwardClientCertDetails::AppendForward,
            Some(ForwardClientCert::SanitizeSet) => ForwardClientCertDetails::SanitizeSet,
            Some(ForwardClientCert::AlwaysForwardOnly) => ForwardClientCertDetails::AlwaysForwardOnly,
        } as i32,
        set_current_client_cert_details: options.client_cert_details.map(cert_details),
        ..Default::default()
    }
}

fn common_options(options: &HttpOptions) -> Option<HttpProtocolOptions> {
    let underscores = match options.headers_with_underscores {
        UnderscoreHeaders::Allow => HeadersWithUnderscoresAction::Allow,
        UnderscoreHeaders::Drop => HeadersWithUnderscoresAction::DropHeader,
        UnderscoreHeaders::Reject => HeadersWithUnderscoresAction::RejectRequest,
    };
    let set = underscores != HeadersWithUnderscoresAction::Allow || options.idle_timeout_ms.is_some();
    set.then(|| HttpProtocolOptions {
        headers_with_underscores_action: underscores as i32,
        idle_timeout: options.idle_timeout_ms.map(millis),
        ..Default::default()
    })
}

fn cert_details(details: ClientCertDetails) -> SetCurrentClientCertDetails {
    SetCurrentClientCertDetails {
        subject: details.subject.then_some(BoolValue { value: true }),
        cert: details.cert,
        chain: details.chain,
        dns: details.dns,
        uri: details.uri,
        ..Default::default()
    }
}
