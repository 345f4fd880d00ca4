//! HTTP listeners: filter chains chosen by TLS and SNI, each an HTTP connection manager that
//! takes its routes over RDS (on the ADS stream), so route changes never drain the listener, with
//! the edge settings Emissary applies, changed by the `ambassador` Module where it says so:
//!
//! * `normalize_path` (Emissary's default): `/api/../admin` is routed as `/admin`, not by the
//!   `/api/` prefix to an upstream that would resolve it to its own `/admin`;
//! * `merge_slashes` (in Emissary a Module option, off by default; on here): `//admin` is `/admin`;
//! * `use_remote_address` with `xff_num_trusted_hops` from `l7Depth` (else the Module's; 0 by
//!   default, Emissary's default): the client address, and whether the request came over TLS
//!   (`x-forwarded-proto`, which routes match on per `securityModel`), are the connection's, not
//!   whatever a client sends;
//! * the port and a trailing dot are stripped from the host before routing, so hosts match
//!   without them (see `compile::host`);
//! * headers with `_` in their names: `--headers-with-underscores` (Emissary's default: allowed).
//!
//! Listener filters: the PROXY protocol reader first (its header precedes everything, the TLS
//! ClientHello included; Emissary puts it after the TLS inspector for `HTTPSPROXY`), then the
//! TLS inspector that lets chains match on TLS and SNI. HTTP filters: CORS (always, as in
//! Emissary, so routes may carry a policy), custom responses (when error responses are
//! overridden anywhere), the router.

use super::downstream_tls::build_downstream_tls_context;
use super::error_response::custom_response;
use super::{ads_config_source, millis, to_any};
use crate::compile::ir::{
    ChainTransport, ClientCertDetails, FilterChain as IrChain, ForwardClientCert, HttpListener, HttpOptions,
    UnderscoreHeaders,
};
use envoy_types::pb::envoy::config::core::v3::{
    address, http_protocol_options::HeadersWithUnderscoresAction, socket_address, transport_socket, Address,
    Http1ProtocolOptions, HttpProtocolOptions, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::direct_response::v3::Config as DirectResponse;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{
        ForwardClientCertDetails, PathWithEscapedSlashesAction, RouteSpecifier, SetCurrentClientCertDetails,
        StripPortMode,
    },
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};

pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
pub const CUSTOM_RESPONSE_FILTER: &str = "envoy.filters.http.custom_response";
const ROUTER_FILTER: &str = "envoy.filters.http.router";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
const PROXY_PROTOCOL: &str = "envoy.filters.listener.proxy_protocol";
const DIRECT_RESPONSE: &str = "envoy.filters.network.direct_response";
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

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
    let mut listener_filters = Vec::new();
    if listener.proxy_protocol {
        listener_filters.push(listener_filter_of(PROXY_PROTOCOL, to_any(&ProxyProtocol::default())));
    }
    if listener.inspects_tls {
        listener_filters.push(listener_filter_of(TLS_INSPECTOR, to_any(&TlsInspector::default())));
    }
    Listener {
        name: listener.name.clone(),
        address: Some(socket_address("0.0.0.0", listener.port)),
        listener_filters,
        filter_chains: listener.chains.iter().map(|chain| build_filter_chain(listener, chain)).collect(),
        per_connection_buffer_limit_bytes: listener.options.buffer_limit_bytes.map(|value| UInt32Value { value }),
        ..Default::default()
    }
}

fn listener_filter_of(name: &str, config: Any) -> ListenerFilter {
    ListenerFilter {
        name: name.into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

fn network_filter(name: &str, config: Any) -> Filter {
    Filter { name: name.into(), config_type: Some(filter::ConfigType::TypedConfig(config)) }
}

fn build_filter_chain(listener: &HttpListener, chain: &IrChain) -> FilterChain {
    let tls_match = || FilterChainMatch {
        server_names: chain.server_names.clone(),
        transport_protocol: "tls".into(),
        ..Default::default()
    };
    let hcm = || network_filter(HCM_FILTER, to_any(&build_connection_manager(listener, &chain.route_config)));
    let (filter_chain_match, transport_socket, filters) = match &chain.transport {
        // The fallback: no match at all, so it takes what no TLS chain does.
        ChainTransport::Cleartext => (None, None, vec![hcm()]),
        ChainTransport::Tls(tls) => {
            let socket = TransportSocket {
                name: TLS_TRANSPORT_SOCKET.into(),
                config_type: Some(transport_socket::ConfigType::TypedConfig(to_any(&build_downstream_tls_context(
                    tls,
                )))),
            };
            (Some(tls_match()), Some(socket), vec![hcm()])
        }
        // No transport socket and an empty direct response: the ClientHello is read as bytes and
        // the connection closed, so the handshake fails for these names and only these.
        ChainTransport::Refused => {
            (Some(tls_match()), None, vec![network_filter(DIRECT_RESPONSE, to_any(&DirectResponse::default()))])
        }
    };
    FilterChain { name: chain.name.clone(), filter_chain_match, transport_socket, filters, ..Default::default() }
}

fn build_connection_manager(listener: &HttpListener, route_config: &str) -> HttpConnectionManager {
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
            route_config_name: route_config.to_string(),
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
