//! SDS `Secret`s: client certificates and CA bundles, delivered by name, never as file paths.

use crate::compile::ir::{SecretContent, TlsSecret};
use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, CertificateValidationContext, Secret, TlsCertificate,
};

fn inline(text: &str) -> Option<DataSource> {
    Some(DataSource { specifier: Some(Specifier::InlineString(text.to_string())), ..Default::default() })
}

pub fn build_secret(tls_secret: &TlsSecret) -> Secret {
    let kind = match &tls_secret.content {
        SecretContent::Certificate { chain, private_key } => secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(chain),
            private_key: inline(private_key),
            ..Default::default()
        }),
        SecretContent::ValidationContext { trusted_ca } => {
            secret::Type::ValidationContext(CertificateValidationContext {
                trusted_ca: inline(trusted_ca),
                ..Default::default()
            })
        }
    };
    Secret { name: tls_secret.name.clone(), r#type: Some(kind) }
}
