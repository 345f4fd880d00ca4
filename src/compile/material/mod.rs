//! Checks TLS material before it is served, with Envoy's own rules: what Envoy 1.36–1.40 loads is
//! accepted, what it refuses is a one-line reason and is never sent (Envoy would reject the whole
//! SDS response, and with it every later update of the type).
//!
//! The parsing is libcrypto's (see [`libcrypto`]): the same PEM reader and X.509/key decoders
//! Envoy's BoringSSL uses. On top of it are the rules that live in libssl and in Envoy's code,
//! applied in Envoy's order (chain, then the leaf's key type, then the private key):
//! - the leaf's key is RSA of at least 2048 bits, ECDSA on P-256, P-384 or P-521, or Ed25519
//!   (libssl knows no other certificate types; Envoy refuses smaller RSA keys and other curves);
//! - an ECDSA leaf whose key usage extension is present allows `digitalSignature`;
//! - the private key loads without a password and is the leaf's key.
//!
//! Nothing else is checked: Envoy loads expired, not-yet-valid, X.509 v1 and unknown-critical-
//! extension certificates, chains in any order behind the leaf, and bundles of v1 CAs.
//! `tests/material_oracle.rs` holds these rules against real Envoys. CRLs (termination only) load
//! as Envoy loads them: any PEM that `PEM_X509_INFO_read_bio` reads, CRL blocks or not.

mod libcrypto;
mod san;

pub use san::leaf_uri_sans;

use crate::generations::{Key, Memo};
use crate::model::Sensitive;
use libcrypto::{ChainError, KeyType, NID_P256, NID_P384, NID_P521};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::LazyLock;

/// A certificate chain and its private key, known to load in Envoy.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedPem {
    pub chain: Vec<u8>,
    pub private_key: Sensitive,
}

/// Why Envoy would refuse material. Messages never quote the material itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaterialError {
    /// No PEM certificate block that parses at the start of the chain.
    NoCertificate { what: &'static str },
    /// Certificate `index` (1 = leaf) is not a certificate Envoy can read.
    CorruptCertificate { index: usize },
    /// The leaf's public key cannot be decoded (a key type libcrypto does not know, e.g. Ed448).
    UnknownKeyType,
    /// A key type or size Envoy does not serve.
    UnsupportedKey(String),
    /// An ECDSA certificate whose key usage forbids signatures.
    EcdsaNotForSigning,
    /// The private key is encrypted; Envoy is given no password.
    EncryptedKey,
    /// No private key that parses.
    NoPrivateKey,
    /// The key is not the leaf certificate's.
    KeyMismatch,
    /// A CA bundle holds no certificate.
    EmptyBundle,
    /// A CA bundle with a block that does not parse.
    CorruptBundle,
    /// A CRL file with a block that does not parse.
    CorruptCrl,
}

impl fmt::Display for MaterialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaterialError::NoCertificate { what } => {
                write!(f, "{what} does not start with a PEM certificate that parses")
            }
            MaterialError::CorruptCertificate { index } => {
                write!(f, "certificate {index} of the chain does not parse")
            }
            MaterialError::UnknownKeyType => f.write_str("the certificate's public key is of a type Envoy cannot load"),
            MaterialError::UnsupportedKey(key) => write!(
                f,
                "the certificate has {key}; Envoy loads RSA keys of 2048 bits or more, ECDSA P-256/P-384/P-521 and Ed25519"
            ),
            MaterialError::EcdsaNotForSigning => {
                f.write_str("the ECDSA certificate's key usage does not allow digitalSignature")
            }
            MaterialError::EncryptedKey => f.write_str("the private key is encrypted, and Envoy is given no password"),
            MaterialError::NoPrivateKey => f.write_str("the private key is not a PEM private key that parses"),
            MaterialError::KeyMismatch => f.write_str("the private key does not match the certificate"),
            MaterialError::EmptyBundle => f.write_str("the CA bundle holds no PEM certificate"),
            MaterialError::CorruptBundle => f.write_str("the CA bundle holds a PEM block that does not parse"),
            MaterialError::CorruptCrl => f.write_str("the CRL is not PEM that parses"),
        }
    }
}

/// Envoy's certificate types, by the leaf's public key.
fn check_key_type(key: &libcrypto::Key) -> Result<(), MaterialError> {
    match key.key_type() {
        KeyType::Rsa { bits } if bits >= 2048 => Ok(()),
        KeyType::Rsa { bits } => Err(MaterialError::UnsupportedKey(format!("a {bits}-bit RSA key"))),
        KeyType::Ec { curve: Some(NID_P256 | NID_P384 | NID_P521) } => Ok(()),
        KeyType::Ec { .. } => Err(MaterialError::UnsupportedKey("an ECDSA key on another curve".into())),
        KeyType::Ed25519 => Ok(()),
        KeyType::Other(_) => Err(MaterialError::UnsupportedKey("a key of another type (e.g. RSA-PSS)".into())),
    }
}

/// A legacy `Proc-Type: 4,ENCRYPTED` block or a PKCS#8 `ENCRYPTED PRIVATE KEY` block.
fn looks_encrypted(pem: &[u8]) -> bool {
    let contains = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    contains(b"ENCRYPTED PRIVATE KEY") || contains(b"Proc-Type: 4,ENCRYPTED")
}

/// Verdicts on material, by the digest of what was checked (see [`crate::generations`]): every
/// reload resolves every TLSContext, and parsing and matching its certificate and key was most of
/// that. A digest of a key reveals nothing of it.
static CHECKED: LazyLock<Memo<Result<(), MaterialError>>> = LazyLock::new(|| Memo::new(1 << 16));

/// What a check of `parts` (in order) is remembered by: each part length-prefixed, after the
/// check's name, so no two checks or splits of the bytes share a key.
fn checked_key(check: &str, parts: &[&[u8]]) -> Key {
    let mut hasher = Sha256::new();
    for part in std::iter::once(check.as_bytes()).chain(parts.iter().copied()) {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Checks a client certificate chain and its key the way Envoy loads them.
pub fn check_certificate(chain: &[u8], key: &[u8]) -> Result<CertifiedPem, MaterialError> {
    CHECKED.get_or_compute(checked_key("certificate", &[chain, key]), || check_certificate_afresh(chain, key))?;
    Ok(CertifiedPem { chain: chain.to_vec(), private_key: Sensitive::new(key.to_vec()) })
}

fn check_certificate_afresh(chain: &[u8], key: &[u8]) -> Result<(), MaterialError> {
    let certificates = libcrypto::read_chain(chain).map_err(|err| match err {
        ChainError::NoLeaf => MaterialError::NoCertificate { what: "the certificate chain" },
        ChainError::Corrupt { index } => MaterialError::CorruptCertificate { index },
    })?;
    let leaf = &certificates[0];
    let public_key = leaf.public_key().ok_or(MaterialError::UnknownKeyType)?;
    check_key_type(&public_key)?;
    if matches!(public_key.key_type(), KeyType::Ec { .. }) && !leaf.allows_digital_signature() {
        return Err(MaterialError::EcdsaNotForSigning);
    }
    let private_key = libcrypto::read_private_key(key).ok_or(if looks_encrypted(key) {
        MaterialError::EncryptedKey
    } else {
        MaterialError::NoPrivateKey
    })?;
    if !public_key.matches(&private_key) {
        return Err(MaterialError::KeyMismatch);
    }
    Ok(())
}

/// Checks a CA bundle the way Envoy's default certificate validator loads it.
pub fn check_ca_bundle(bundle: &[u8]) -> Result<Vec<u8>, MaterialError> {
    let check = || match libcrypto::count_bundle(bundle) {
        None => Err(MaterialError::CorruptBundle),
        Some(counts) if counts.certificates == 0 => Err(MaterialError::EmptyBundle),
        Some(_) => Ok(()),
    };
    CHECKED.get_or_compute(checked_key("CA bundle", &[bundle]), check)?;
    Ok(bundle.to_vec())
}

/// A certificate revocation list Envoy loads, and how many CRLs it holds (Envoy also loads a
/// file with none, which revokes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCrl {
    pub pem: Vec<u8>,
    pub crls: usize,
}

/// Checks a CRL file the way Envoy's default certificate validator loads it.
pub fn check_crl(pem: &[u8]) -> Result<CheckedCrl, MaterialError> {
    let counts = libcrypto::count_bundle(pem).ok_or(MaterialError::CorruptCrl)?;
    Ok(CheckedCrl { pem: pem.to_vec(), crls: counts.crls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_remembered_by_each_check_and_each_part_apart() {
        let key = |check, parts: &[&[u8]]| checked_key(check, parts);
        assert_ne!(key("certificate", &[b"ab", b"c"]), key("certificate", &[b"a", b"bc"]));
        assert_ne!(key("certificate", &[b"ab"]), key("CA bundle", &[b"ab"]));
        assert_eq!(key("CA bundle", &[b"ab"]), key("CA bundle", &[b"ab"]));
        // A remembered verdict is the one a fresh check gives.
        for (chain, key) in [(&b"not a certificate"[..], &b"nor a key"[..]), (b"", b"")] {
            assert_eq!(check_certificate(chain, key).err(), check_certificate_afresh(chain, key).err());
            assert_eq!(check_certificate(chain, key).err(), check_certificate_afresh(chain, key).err());
        }
        assert_eq!(check_ca_bundle(b"junk").err(), check_ca_bundle(b"junk").err());
    }
}
