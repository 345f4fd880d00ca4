//! Kubernetes `v1` `Secret`s, decoded into the TLS material ambassador-xds uses.

use std::collections::BTreeMap;
use std::fmt;

/// The keys of a Secret, decoded from `data` (base64) and `stringData`.
///
/// `Debug` prints key names only: secret material never reaches logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData {
    pub secret_type: String,
    pub entries: BTreeMap<String, Vec<u8>>,
}

/// Which keys hold what, per Secret layout.
const CERT_KEYS: &[&str] = &["tls.crt", "cert-chain.pem"];
const KEY_KEYS: &[&str] = &["tls.key", "key.pem"];
const CA_KEYS: &[&str] = &["ca.crt", "root-cert.pem"];

impl SecretData {
    fn first(&self, keys: &[&'static str]) -> Option<(&'static str, &[u8])> {
        keys.iter().find_map(|key| self.entries.get(*key).map(|value| (*key, value.as_slice())))
    }

    /// The certificate chain: `tls.crt` (`kubernetes.io/tls`, `Opaque`) or `cert-chain.pem` (Istio).
    pub fn cert_chain(&self) -> Option<(&'static str, &[u8])> {
        self.first(CERT_KEYS)
    }

    /// The private key: `tls.key` or `key.pem` (Istio).
    pub fn private_key(&self) -> Option<(&'static str, &[u8])> {
        self.first(KEY_KEYS)
    }

    /// A CA bundle: `ca.crt` (cert-manager and most TLS secrets) or `root-cert.pem` (Istio).
    pub fn ca_bundle(&self) -> Option<(&'static str, &[u8])> {
        self.first(CA_KEYS)
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("secret_type", &self.secret_type)
            .field("keys", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}
