//! Where a Mapping's requests go besides its service and transport: its resolver (DNS or EDS),
//! its load balancing, and the identity its upstream must prove (`verify_spiffe_id`).

use super::balancing::{balancing, Balancing};
use super::identity::upstream_spiffe_id;
use super::resolver::{check_mapping, endpoint_target, ResolverRef};
use super::service::Service;
use super::transport::Transport;
use crate::model::endpoint::EndpointTarget;
use crate::model::{MappingSpec, ResolverKind};

/// What besides the service and transport makes a Mapping's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub resolver: ResolverRef,
    pub eds: Option<EndpointTarget>,
    pub balancing: Option<Balancing>,
    pub spiffe_id: Option<String>,
}

/// Why a Mapping gets no forwarding route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The Mapping is invalid and dropped, as Emissary drops it.
    Invalid(String),
    /// What it asks for cannot be provided (an unknown resolver, an identity that cannot be
    /// checked): the route fails closed.
    Unavailable(String),
}

/// The Mapping's upstream, and a warning to report with it. `default_balancing` is the Module's
/// `load_balancer`, for Mappings without their own whose resolver routes to endpoints (a
/// Kubernetes DNS name has none to balance, and naming a load balancer with it is an error).
pub fn upstream(
    spec: &MappingSpec,
    default_balancing: Option<&Balancing>,
    service_text: &str,
    service: &Service,
    resolver: Result<ResolverRef, String>,
    transport: &Transport<'_>,
    ambassador_namespace: &str,
) -> Result<(Upstream, Option<String>), UpstreamError> {
    let balancing = spec.load_balancer.as_ref().map(balancing).transpose().map_err(UpstreamError::Invalid)?;
    let resolver = resolver.map_err(UpstreamError::Unavailable)?;
    let warning =
        check_mapping(&resolver, service_text, service, balancing.is_some()).map_err(UpstreamError::Invalid)?;
    let balancing = match balancing {
        None if resolver.kind != ResolverKind::KubernetesService => default_balancing.cloned(),
        own => own,
    };

    let spiffe_id = match &spec.verify_spiffe_id {
        None => None,
        Some(setting) => {
            let Transport::Context(_, context) = transport else {
                return Err(UpstreamError::Unavailable(
                    "`verify_spiffe_id` needs `tls:` naming a TLSContext that trusts the upstream's CA".into(),
                ));
            };
            if context.tls.validation_secret.is_none() {
                return Err(UpstreamError::Unavailable(
                    "`verify_spiffe_id` needs the TLSContext to trust the upstream's CA (`ca_secret` or `cacert_chain_file`): Envoy checks no SAN of a certificate it does not verify".into(),
                ));
            }
            let datacenter = (resolver.kind == ResolverKind::Consul).then_some(resolver.datacenter.as_str());
            upstream_spiffe_id(setting, &context.client_uri_sans, &service.host, datacenter)
                .map_err(UpstreamError::Unavailable)?
        }
    };
    // A Consul service whose identity is checked is a Connect service: its proxies are the
    // endpoints that present that identity.
    let connect = spiffe_id.is_some();
    let tls = !matches!(transport, Transport::Plaintext);
    let eds = endpoint_target(&resolver, service, tls, connect, ambassador_namespace);
    Ok((Upstream { resolver, eds, balancing, spiffe_id }, warning))
}
