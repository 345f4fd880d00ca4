//! Checks TLS material before it is served: Envoy would NACK a secret whose PEM does not parse or
//! whose key does not match its certificate, and that would stall every later update of the type.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Cursor;

/// A certificate chain and private key, as PEM text, known to parse and to belong together.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedPem {
    pub chain: String,
    pub private_key: String,
}

fn pem_text(what: &str, bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not PEM text (not UTF-8)"))
}

fn certificates(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut Cursor::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{what} does not parse as PEM: {err}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no PEM CERTIFICATE block"));
    }
    Ok(certs)
}

/// Checks a client certificate chain and its key: both parse, and the key is the chain's leaf key.
pub fn check_certificate(chain: &[u8], key: &[u8]) -> Result<CertifiedPem, String> {
    let chain_pem = pem_text("certificate chain", chain)?;
    let key_pem = pem_text("private key", key)?;
    let certs = certificates("certificate chain", &chain_pem)?;
    let private_key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut Cursor::new(&key_pem))
        .map_err(|err| format!("private key does not parse as PEM: {err}"))?
        .ok_or("private key holds no PEM PRIVATE KEY block")?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(certs, private_key, &provider).map_err(|err| match err {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            "private key does not match the certificate".to_string()
        }
        other => format!("certificate or key is not usable: {other}"),
    })?;
    Ok(CertifiedPem { chain: chain_pem, private_key: key_pem })
}

/// Checks a CA bundle: at least one certificate, each usable as a trust anchor.
pub fn check_ca_bundle(bundle: &[u8]) -> Result<String, String> {
    let pem = pem_text("CA bundle", bundle)?;
    let mut store = rustls::RootCertStore::empty();
    for cert in certificates("CA bundle", &pem)? {
        store.add(cert).map_err(|err| format!("CA bundle holds a certificate that does not parse: {err}"))?;
    }
    Ok(pem)
}
