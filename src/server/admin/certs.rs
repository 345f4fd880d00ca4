//! The certificates a snapshot serves, as operators need to see them: subject, SANs, issuer and
//! expiry (with a warning when it is near or past). Only certificate chains and CA bundles are
//! read here; private keys never are.

use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{secret, Secret};
use serde::Serialize;
use x509_parser::extensions::GeneralName;

/// A certificate expiring sooner than this is shown with a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateView {
    /// The SDS secret that carries it.
    pub secret: String,
    /// `certificate` (a chain's first), `chain` (the others), `ca` (a trusted CA).
    pub role: &'static str,
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    /// Unix seconds.
    pub not_after: i64,
    pub not_after_text: String,
    /// `expired`, `expires in N days`, or empty.
    pub warning: String,
}

/// Every certificate `snapshot` serves.
pub fn served(snapshot: &crate::snapshot::Snapshot, now: i64) -> Vec<CertificateView> {
    let secrets: Vec<(String, Secret)> =
        snapshot.resources.of(crate::xds::XdsType::Secret).iter().map(|r| (r.name.clone(), r.decode())).collect();
    certificates(&secrets, now)
}

/// Every certificate in the secrets (by secret name, in order).
pub fn certificates(secrets: &[(String, Secret)], now: i64) -> Vec<CertificateView> {
    let mut out = Vec::new();
    for (name, secret) in secrets {
        match &secret.r#type {
            Some(secret::Type::TlsCertificate(certificate)) => {
                // The private key is never looked at: only the chain.
                if let Some(chain) = certificate.certificate_chain.as_ref().and_then(inline) {
                    for (index, view) in parse_pem(&chain, name, now).into_iter().enumerate() {
                        out.push(CertificateView { role: if index == 0 { "certificate" } else { "chain" }, ..view });
                    }
                }
            }
            Some(secret::Type::ValidationContext(context)) => {
                if let Some(bundle) = context.trusted_ca.as_ref().and_then(inline) {
                    out.extend(
                        parse_pem(&bundle, name, now).into_iter().map(|view| CertificateView { role: "ca", ..view }),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

fn inline(source: &DataSource) -> Option<Vec<u8>> {
    match source.specifier.as_ref()? {
        Specifier::InlineString(text) => Some(text.clone().into_bytes()),
        Specifier::InlineBytes(bytes) => Some(bytes.clone()),
        _ => None,
    }
}

fn parse_pem(pem: &[u8], secret: &str, now: i64) -> Vec<CertificateView> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem).flatten() {
        if !block.label.ends_with("CERTIFICATE") {
            continue;
        }
        let Ok((_, certificate)) = x509_parser::parse_x509_certificate(&block.contents) else { continue };
        let not_after = certificate.validity().not_after.timestamp();
        let sans = certificate
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| san.value.general_names.iter().map(general_name).collect())
            .unwrap_or_default();
        let days = (not_after - now).div_euclid(86_400);
        let warning = if not_after <= now {
            "expired".to_string()
        } else if days < EXPIRY_WARNING_DAYS {
            format!("expires in {days} days")
        } else {
            String::new()
        };
        out.push(CertificateView {
            secret: secret.to_string(),
            role: "certificate",
            subject: certificate.subject().to_string(),
            issuer: certificate.issuer().to_string(),
            sans,
            not_after,
            not_after_text: super::time::rfc3339(not_after),
            warning,
        });
    }
    out
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::URI(uri) => format!("URI:{uri}"),
        GeneralName::RFC822Name(mail) => format!("email:{mail}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => format!("IP:{}", std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
            16 => {
                let octets: [u8; 16] = (*bytes).try_into().unwrap_or([0; 16]);
                format!("IP:{}", std::net::Ipv6Addr::from(octets))
            }
            _ => "IP:?".to_string(),
        },
        other => format!("{other}"),
    }
}
