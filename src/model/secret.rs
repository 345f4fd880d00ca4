//! Kubernetes `v1` `Secret`s, decoded into the TLS material ambassador-xds uses.

use super::parse::take_string;
use base64::Engine as _;
use serde_yaml::{Mapping as YamlMap, Value};
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

/// Decodes a Secret's `type`, `data` (base64) and `stringData` (text); `stringData` wins for a key
/// in both, as in Kubernetes.
pub(super) fn decode(mut doc: YamlMap) -> Result<SecretData, String> {
    let secret_type = take_string(&mut doc, "type")?.unwrap_or_else(|| "Opaque".to_string());
    let mut entries = BTreeMap::new();
    for (field, base64_encoded) in [("data", true), ("stringData", false)] {
        let values: BTreeMap<String, String> = match doc.remove(field) {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(value) => {
                serde_yaml::from_value(value).map_err(|err| format!("`{field}` must map keys to strings: {err}"))?
            }
        };
        for (key, value) in values {
            let bytes = if base64_encoded {
                // Kubernetes accepts line-wrapped base64 in YAML written by hand.
                let compact: String = value.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|err| format!("`data.{key}` is not valid base64: {err}"))?
            } else {
                value.into_bytes()
            };
            entries.insert(key, bytes);
        }
    }
    Ok(SecretData { secret_type, entries })
}
