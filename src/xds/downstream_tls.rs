//! TLS termination: a `DownstreamTlsContext` whose server certificate and client CA come over
//! SDS by name, so a rotated certificate changes only its Secret (no listener drain).
//!
//! `require_client_certificate` is a field of this message (Emissary writes it into the upstream
//! one too, where Envoy rejects it); it is only set with a CA (see `compile::termination`).

use super::cluster::{protocol, sds};
use crate::compile::ir::DownstreamTls;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, CommonTlsContext, DownstreamTlsContext, TlsParameters,
};
use envoy_types::pb::google::protobuf::BoolValue;

pub fn build_downstream_tls_context(tls: &DownstreamTls) -> DownstreamTlsContext {
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
        tls_certificate_sds_secret_configs: vec![sds(&tls.certificate_secret)],
        validation_context_type: tls
            .validation_secret
            .as_ref()
            .map(|name| common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(sds(name))),
        alpn_protocols: tls.alpn_protocols.clone(),
        ..Default::default()
    };
    DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: tls.require_client_certificate.then_some(BoolValue { value: true }),
        ..Default::default()
    }
}
