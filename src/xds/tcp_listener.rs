//! TCP listeners of `TCPMapping`s: a `tcp_proxy` per filter chain to the group's clusters (by
//! weight), a chain per `host` that terminates TLS with its TLSContext's certificate and matches
//! that SNI (with the TLS inspector to read it), and at most one chain for everything else.

use super::listener::socket_address;
use super::{ads_config_source, millis, to_any};
use crate::compile::ir::{TcpChain, TcpListener};
use envoy_types::pb::envoy::config::core::v3::{transport_socket, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
};
use envoy_types::pb::google::protobuf::BoolValue;

const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

pub fn build_tcp_listener(listener: &TcpListener) -> Listener {
    let sni = listener.chains.iter().any(|chain| chain.server_name.is_some());
    Listener {
        name: listener.name.clone(),
        address: Some(socket_address(&listener.address, listener.port)),
        listener_filters: sni
            .then(|| ListenerFilter {
                name: TLS_INSPECTOR.into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(to_any(&TlsInspector::default()))),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        filter_chains: listener.chains.iter().map(|chain| build_chain(chain, &listener.stat_prefix)).collect(),
        ..Default::default()
    }
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig { name: name.to_string(), sds_config: Some(ads_config_source()) }
}

fn build_chain(chain: &TcpChain, stat_prefix: &str) -> FilterChain {
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: chain
                .clusters
                .iter()
                .map(|(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: name.clone(),
                    weight: *weight,
                    ..Default::default()
                })
                .collect(),
        })),
        idle_timeout: chain.idle_timeout_ms.map(millis),
        ..Default::default()
    };
    let termination = chain.certificate_secret.as_ref().map(|certificate| DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds(certificate)],
            validation_context_type: chain
                .validation_secret
                .as_ref()
                .map(|ca| common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(sds(ca))),
            ..Default::default()
        }),
        require_client_certificate: chain.require_client_certificate.then_some(BoolValue { value: true }),
        ..Default::default()
    });
    FilterChain {
        name: chain.name.clone(),
        filter_chain_match: chain.server_name.as_ref().map(|host| FilterChainMatch {
            server_names: vec![host.clone()],
            transport_protocol: "tls".into(),
            ..Default::default()
        }),
        filters: vec![Filter {
            name: TCP_PROXY_FILTER.into(),
            config_type: Some(filter::ConfigType::TypedConfig(to_any(&proxy))),
        }],
        transport_socket: termination.map(|context| TransportSocket {
            name: TLS_TRANSPORT_SOCKET.into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(to_any(&context))),
        }),
        ..Default::default()
    }
}
