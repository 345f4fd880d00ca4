//! Upstream clusters: STRICT_DNS with an inline load assignment, or EDS (endpoints from a
//! resolver, over ADS), and for TLS an `UpstreamTlsContext` whose certificate and CA come over
//! SDS by name, with the upstream's SPIFFE ID checked when a Mapping asks.

use super::{ads_config_source, millis, to_any};
use crate::compile::ir::{Cluster as IrCluster, LbPolicy, TlsVersion, UpstreamTls};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    address, socket_address, transport_socket, Address, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, subject_alt_name_matcher::SanType, tls_parameters::TlsProtocol, CertificateValidationContext,
    CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher, TlsParameters, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};

const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

pub fn build_cluster(ir: &IrCluster) -> Cluster {
    let transport_socket = ir.tls.as_ref().map(|tls| TransportSocket {
        name: TLS_TRANSPORT_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(to_any(&build_upstream_tls_context(tls)))),
    });
    let lb_policy = match ir.lb_policy {
        LbPolicy::RoundRobin => cluster::LbPolicy::RoundRobin,
        LbPolicy::LeastRequest => cluster::LbPolicy::LeastRequest,
        LbPolicy::RingHash => cluster::LbPolicy::RingHash,
        LbPolicy::Maglev => cluster::LbPolicy::Maglev,
    } as i32;
    if let Some(target) = &ir.eds {
        return Cluster {
            name: ir.name.clone(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(cluster::EdsClusterConfig {
                eds_config: Some(ads_config_source()),
                service_name: target.eds_name(),
            }),
            connect_timeout: Some(millis(ir.connect_timeout_ms)),
            lb_policy,
            transport_socket,
            ..Default::default()
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
    Cluster {
        name: ir.name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::StrictDns as i32)),
        connect_timeout: Some(millis(ir.connect_timeout_ms)),
        lb_policy,
        dns_lookup_family: cluster::DnsLookupFamily::V4Only as i32,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: ir.name.clone(),
            endpoints: vec![LocalityLbEndpoints { lb_endpoints: vec![endpoint], ..Default::default() }],
            ..Default::default()
        }),
        transport_socket,
        ..Default::default()
    }
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig { name: name.to_string(), sds_config: Some(ads_config_source()) }
}

fn protocol(version: Option<TlsVersion>) -> i32 {
    (match version {
        None => TlsProtocol::TlsAuto,
        Some(TlsVersion::V1_0) => TlsProtocol::TlSv10,
        Some(TlsVersion::V1_1) => TlsProtocol::TlSv11,
        Some(TlsVersion::V1_2) => TlsProtocol::TlSv12,
        Some(TlsVersion::V1_3) => TlsProtocol::TlSv13,
    }) as i32
}

pub fn build_upstream_tls_context(tls: &UpstreamTls) -> UpstreamTlsContext {
    let has_params = tls.min_version.is_some()
        || tls.max_version.is_some()
        || !tls.cipher_suites.is_empty()
        || !tls.ecdh_curves.is_empty();
    let common = CommonTlsContext {
        tls_params: has_params.then(|| TlsParameters {
            tls_minimum_protocol_version: protocol(tls.min_version),
            tls_maximum_protocol_version: protocol(tls.max_version),
            cipher_suites: tls.cipher_suites.clone(),
            ecdh_curves: tls.ecdh_curves.clone(),
            ..Default::default()
        }),
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
