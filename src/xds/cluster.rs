//! Upstream clusters: STRICT_DNS (or LOGICAL_DNS) with an inline load assignment, or EDS
//! (endpoints from a resolver, over ADS); for TLS an `UpstreamTlsContext` whose certificate and
//! CA come over SDS by name, with the upstream's SPIFFE ID checked when a Mapping asks; and the
//! Mapping's connection settings: the load balancing policy, HTTP/2 for gRPC and idle timeouts
//! (Envoy's upstream HTTP protocol options), circuit breakers, TCP keepalive, the stats name.

use super::{ads_config_source, millis, to_any};
use crate::compile::ir::{Cluster as IrCluster, ClusterOptions, DnsLookup, LbPolicy, TlsVersion, UpstreamTls};
use envoy_types::pb::envoy::config::cluster::v3::{
    circuit_breakers, cluster, CircuitBreakers, Cluster, UpstreamConnectionOptions,
};
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address, transport_socket, Address, Http1ProtocolOptions, Http2ProtocolOptions,
    HttpProtocolOptions as CommonHttpProtocolOptions, RoutingPriority, SocketAddress, TcpKeepalive, TransportSocket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, subject_alt_name_matcher::SanType, tls_parameters::TlsProtocol, CertificateValidationContext,
    CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher, TlsParameters, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::google::protobuf::UInt32Value;

const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

// `respect_dns_ttl` is deprecated in the newest protos but read by every supported Envoy, as
// Emissary sends it.
#[allow(deprecated)]
pub fn build_cluster(ir: &IrCluster) -> Cluster {
    let options = &ir.options;
    let common = Cluster {
        name: ir.name.clone(),
        alt_stat_name: options.stats_name.clone(),
        connect_timeout: Some(millis(options.connect_timeout_ms)),
        lb_policy: match ir.lb_policy {
            LbPolicy::RoundRobin => cluster::LbPolicy::RoundRobin,
            LbPolicy::LeastRequest => cluster::LbPolicy::LeastRequest,
            LbPolicy::RingHash => cluster::LbPolicy::RingHash,
            LbPolicy::Maglev => cluster::LbPolicy::Maglev,
        } as i32,
        circuit_breakers: (!options.circuit_breakers.is_empty()).then(|| build_circuit_breakers(options)),
        upstream_connection_options: options.keepalive.as_ref().map(|keepalive| UpstreamConnectionOptions {
            tcp_keepalive: Some(TcpKeepalive {
                keepalive_probes: keepalive.probes.map(|value| UInt32Value { value }),
                keepalive_time: keepalive.time.map(|value| UInt32Value { value }),
                keepalive_interval: keepalive.interval.map(|value| UInt32Value { value }),
            }),
            ..Default::default()
        }),
        typed_extension_protocol_options: protocol_options(options)
            .map(|options| (HTTP_PROTOCOL_OPTIONS.to_string(), to_any(&options)))
            .into_iter()
            .collect(),
        transport_socket: ir.tls.as_ref().map(|tls| TransportSocket {
            name: TLS_TRANSPORT_SOCKET.into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(to_any(&build_upstream_tls_context(tls)))),
        }),
        ..Default::default()
    };
    if let Some(target) = &ir.eds {
        // Endpoints come over EDS: the DNS settings do not apply.
        return Cluster {
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(cluster::EdsClusterConfig {
                eds_config: Some(ads_config_source()),
                service_name: target.eds_name(),
            }),
            ..common
        };
    }
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: ir.host.clone(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(ir.port.into())),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let discovery =
        if options.logical_dns { cluster::DiscoveryType::LogicalDns } else { cluster::DiscoveryType::StrictDns };
    Cluster {
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery as i32)),
        dns_lookup_family: match options.dns {
            DnsLookup::V4Only => cluster::DnsLookupFamily::V4Only,
            DnsLookup::V6Only => cluster::DnsLookupFamily::V6Only,
            DnsLookup::Auto => cluster::DnsLookupFamily::Auto,
        } as i32,
        respect_dns_ttl: options.respect_dns_ttl,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: ir.name.clone(),
            endpoints: vec![LocalityLbEndpoints { lb_endpoints: vec![endpoint], ..Default::default() }],
            ..Default::default()
        }),
        ..common
    }
}

fn build_circuit_breakers(options: &ClusterOptions) -> CircuitBreakers {
    let limit = |value: Option<u32>| value.map(|value| UInt32Value { value });
    CircuitBreakers {
        thresholds: options
            .circuit_breakers
            .iter()
            .map(|breaker| circuit_breakers::Thresholds {
                priority: if breaker.high_priority { RoutingPriority::High } else { RoutingPriority::Default } as i32,
                max_connections: limit(breaker.max_connections),
                max_pending_requests: limit(breaker.max_pending_requests),
                max_requests: limit(breaker.max_requests),
                max_retries: limit(breaker.max_retries),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// HTTP/2 for gRPC, and the connection timeouts; `None` when all are Envoy's defaults.
fn protocol_options(options: &ClusterOptions) -> Option<HttpProtocolOptions> {
    let timeouts = options.idle_timeout_ms.is_some() || options.max_connection_lifetime_ms.is_some();
    if !options.http2 && !timeouts {
        return None;
    }
    let protocol = if options.http2 {
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
    };
    Some(HttpProtocolOptions {
        common_http_protocol_options: timeouts.then(|| CommonHttpProtocolOptions {
            idle_timeout: options.idle_timeout_ms.map(millis),
            max_connection_duration: options.max_connection_lifetime_ms.map(millis),
            ..Default::default()
        }),
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(protocol),
        })),
        ..Default::default()
    })
}

pub(super) fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig { name: name.to_string(), sds_config: Some(ads_config_source()) }
}

pub(super) fn protocol(version: Option<TlsVersion>) -> i32 {
    (match version {
        None => TlsProtocol::TlsAuto,
        Some(TlsVersion::V1_0) => TlsProtocol::TlSv10,
        Some(TlsVersion::V1_1) => TlsProtocol::TlSv11,
        Some(TlsVersion::V1_2) => TlsProtocol::TlSv12,
        Some(TlsVersion::V1_3) => TlsProtocol::TlSv13,
    }) as i32
}

/// TLS versions, cipher suites and curves, when any is set (the same for both directions).
pub(super) fn tls_parameters(
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    cipher_suites: &[String],
    ecdh_curves: &[String],
) -> Option<TlsParameters> {
    let any = min_version.is_some() || max_version.is_some() || !cipher_suites.is_empty() || !ecdh_curves.is_empty();
    any.then(|| TlsParameters {
        tls_minimum_protocol_version: protocol(min_version),
        tls_maximum_protocol_version: protocol(max_version),
        cipher_suites: cipher_suites.to_vec(),
        ecdh_curves: ecdh_curves.to_vec(),
        ..Default::default()
    })
}

pub fn build_upstream_tls_context(tls: &UpstreamTls) -> UpstreamTlsContext {
    let common = CommonTlsContext {
        tls_params: tls_parameters(tls.min_version, tls.max_version, &tls.cipher_suites, &tls.ecdh_curves),
        tls_certificate_sds_secret_configs: tls.client_certificate_secret.iter().map(|name| sds(name)).collect(),
        validation_context_type: tls.validation_secret.as_ref().map(|name| match &tls.spiffe_id {
            None => common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(sds(name)),
            // The CA comes over SDS; the SAN to match is the cluster's own.
            Some(id) => common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                            san_type: SanType::Uri as i32,
                            matcher: Some(StringMatcher {
                                match_pattern: Some(MatchPattern::Exact(id.clone())),
                                ignore_case: false,
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(sds(name)),
                    ..Default::default()
                },
            ),
        }),
        alpn_protocols: tls.alpn_protocols.clone(),
        ..Default::default()
    };
    UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: tls.sni.clone().unwrap_or_default(),
        ..Default::default()
    }
}
