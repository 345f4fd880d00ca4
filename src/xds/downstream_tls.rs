//! TLS termination: a `DownstreamTlsContext` whose server certificate and client CA come over
//! SDS by name, so a rotated certificate changes only its Secret (no listener drain).
//!
//! `require_client_certificate` is a field of this message (Emissary writes it into the upstream
//! one too, where Envoy rejects it); it is only set with a CA (see `compile::termination`).

use super::cluster::{sds, tls_parameters};
use crate::compile::ir::DownstreamTls;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, CommonTlsContext, DownstreamTlsContext,
};
use envoy_types::pb::google::protobuf::BoolValue;

pub fn build_downstream_tls_context(tls: &DownstreamTls) -> DownstreamTlsContext {
    let common = CommonTlsContext {
        tls_params: tls_parameters(tls.min_version, tls.max_version, &tls.cipher_suites, &tls.ecdh_curves),
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
