//! SDS `Secret`s: client and server certificates, CA bundles and CRLs, delivered by name, never
//! as file paths.

use crate::compile::ir::{SecretContent, TlsSecret};
use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, CertificateValidationContext, Secret, TlsCertificate,
};

/// PEM as text when it is UTF-8 (as users write it, and readable in goldens), else as bytes: Envoy
/// reads both, and a stray Latin-1 comment must not change what is accepted.
fn inline(bytes: &[u8]) -> Option<DataSource> {
    let specifier = match std::str::from_utf8(bytes) {
        Ok(text) => Specifier::InlineString(text.to_string()),
        Err(_) => Specifier::InlineBytes(bytes.to_vec()),
    };
    Some(DataSource { specifier: Some(specifier), ..Default::default() })
}

pub fn build_secret(tls_secret: &TlsSecret) -> Secret {
    let kind = match &tls_secret.content {
        SecretContent::Certificate { chain, private_key } => secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(chain),
            private_key: inline(private_key.expose()),
            ..Default::default()
        }),
        SecretContent::ValidationContext { trusted_ca, crl } => {
            secret::Type::ValidationContext(CertificateValidationContext {
                trusted_ca: inline(trusted_ca),
                crl: crl.as_deref().and_then(inline),
                ..Default::default()
            })
        }
    };
    Secret { name: tls_secret.name.clone(), r#type: Some(kind) }
}
