//! HTTP listeners: filter chains chosen by TLS and SNI, each an HTTP connection manager that
//! takes its routes over RDS (on the ADS stream), so route changes never drain the listener, with
//! the edge settings Emissary applies:
//!
//! * `normalize_path` (Emissary's default): `/api/../admin` is routed as `/admin`, not by the
//!   `/api/` prefix to an upstream that would resolve it to its own `/admin`;
//! * `merge_slashes` (in Emissary a Module option, off by default; on here): `//admin` is `/admin`;
//! * `use_remote_address` with `xff_num_trusted_hops` from `l7Depth` (0 by default, Emissary's
//!   default): the client address, and whether the request came over TLS (`x-forwarded-proto`,
//!   which routes match on per `securityModel`), are the connection's, not whatever a client sends;
//! * the port and a trailing dot are stripped from the host before routing, so hosts match
//!   without them (see `compile::host`);
//! * headers with `_` in their names: `--headers-with-underscores` (Emissary's default: allowed).
//!
//! Listener filters: the PROXY protocol reader first (its header precedes everything, the TLS
//! ClientHello included; Emissary puts it after the TLS inspector for `HTTPSPROXY`), then the
//! TLS inspector that lets chains match on TLS and SNI.

use super::downstream_tls::build_downstream_tls_context;
use super::{ads_config_source, to_any};
use crate::compile::ir::{
    ChainTransport, ClientCertForwarding, FilterChain as IrChain, ForwardClientCert, HttpListener, UnderscoreHeaders,
};
use envoy_types::pb::envoy::config::core::v3::{
    address, http_protocol_options::HeadersWithUnderscoresAction, socket_address, transport_socket, Address,
    HttpProtocolOptions, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::direct_response::v3::Config as DirectResponse;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{ForwardClientCertDetails, RouteSpecifier, SetCurrentClientCertDetails, StripPortMode},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::BoolValue;

pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
const ROUTER_FILTER: &str = "envoy.filters.http.router";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
const PROXY_PROTOCOL: &str = "envoy.filters.listener.proxy_protocol";
const DIRECT_RESPONSE: &str = "envoy.filters.network.direct_response";
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

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
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "0.0.0.0".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(listener.port.into())),
                ..Default::default()
            })),
        }),
        listener_filters,
        filter_chains: listener.chains.iter().map(|chain| build_filter_chain(listener, chain)).collect(),
        ..Default::default()
    }
}

fn listener_filter_of(name: &str, config: envoy_types::pb::google::protobuf::Any) -> ListenerFilter {
    ListenerFilter {
        name: name.into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

fn network_filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> Filter {
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
    let forwarding = &listener.client_certificates;
    HttpConnectionManager {
        stat_prefix: listener.stat_prefix.clone(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: ROUTER_FILTER.into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(to_any(&Router::default()))),
            ..Default::default()
        }],
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        use_remote_address: Some(BoolValue { value: true }),
        xff_num_trusted_hops: listener.trusted_hops,
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        strip_trailing_host_dot: true,
        common_http_protocol_options: match listener.headers_with_underscores {
            UnderscoreHeaders::Allow => None,
            UnderscoreHeaders::Drop => Some(underscores(HeadersWithUnderscoresAction::DropHeader)),
            UnderscoreHeaders::Reject => Some(underscores(HeadersWithUnderscoresAction::RejectRequest)),
        },
        forward_client_cert_details: forward_mode(forwarding.mode) as i32,
        set_current_client_cert_details: current_details(forwarding),
        ..Default::default()
    }
}

fn forward_mode(mode: ForwardClientCert) -> ForwardClientCertDetails {
    match mode {
        ForwardClientCert::Sanitize => ForwardClientCertDetails::Sanitize,
        ForwardClientCert::ForwardOnly => ForwardClientCertDetails::ForwardOnly,
        ForwardClientCert::AppendForward => ForwardClientCertDetails::AppendForward,
        ForwardClientCert::SanitizeSet => ForwardClientCertDetails::SanitizeSet,
        ForwardClientCert::AlwaysForwardOnly => ForwardClientCertDetails::AlwaysForwardOnly,
    }
}

fn current_details(forwarding: &ClientCertForwarding) -> Option<SetCurrentClientCertDetails> {
    let ClientCertForwarding { mode: _, subject, cert, chain, dns, uri } = *forwarding;
    (subject || cert || chain || dns || uri).then(|| SetCurrentClientCertDetails {
        subject: subject.then_some(BoolValue { value: true }),
        cert,
        chain,
        dns,
        uri,
        ..Default::default()
    })
}

fn underscores(action: HeadersWithUnderscoresAction) -> HttpProtocolOptions {
    HttpProtocolOptions { headers_with_underscores_action: action as i32, ..Default::default() }
}
