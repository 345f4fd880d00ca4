//! Kubernetes `v1` `Secret`s, decoded into the TLS material ambassador-xds uses.

use super::parse::take_string;
use super::yaml::type_name;
use super::Sensitive;
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
    pub entries: BTreeMap<String, Sensitive>,
}

/// Which keys hold what, per Secret layout.
const CERT_KEYS: &[&str] = &["tls.crt", "cert-chain.pem"];
const KEY_KEYS: &[&str] = &["tls.key", "key.pem"];
const CA_KEYS: &[&str] = &["ca.crt", "root-cert.pem"];
/// Emissary's key for a certificate revocation list (`crl_secret`).
const CRL_KEYS: &[&str] = &["crl.pem"];

impl SecretData {
    fn first(&self, keys: &[&'static str]) -> Option<(&'static str, &[u8])> {
        keys.iter().find_map(|key| self.entries.get(*key).map(|value| (*key, value.expose())))
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

    /// A certificate revocation list: `crl.pem`.
    pub fn crl(&self) -> Option<(&'static str, &[u8])> {
        self.first(CRL_KEYS)
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

/// Why a Secret's data cannot be read. It holds field names, key names and YAML type names only,
/// never a value: a Secret's values are private keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    NotAString { field: &'static str },
    NotAMap { field: &'static str, found: &'static str },
    ValueNotAString { field: &'static str, key: String, found: &'static str },
    KeyNotAString { field: &'static str, found: &'static str },
    NotBase64 { key: String },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::NotAString { field } => write!(f, "`{field}` must be a string"),
            SecretError::NotAMap { field, found } => {
                write!(f, "`{field}` must map keys to strings, found {found} (its value is not shown: it may be a key)")
            }
            SecretError::ValueNotAString { field, key, found } => {
                write!(f, "`{field}.{key}` must be a string, found {found}")
            }
            SecretError::KeyNotAString { field, found } => {
                write!(f, "`{field}` has a key that is {found}, not a string")
            }
            SecretError::NotBase64 { key } => write!(f, "`data.{key}` is not valid base64"),
        }
    }
}

/// Decodes a Secret's `type`, `data` (base64) and `stringData` (text); `stringData` wins for a key
/// in both, as in Kubernetes.
pub(super) fn decode(mut doc: YamlMap) -> Result<SecretData, SecretError> {
    let secret_type = take_string(&mut doc, "type")
        .map_err(|_| SecretError::NotAString { field: "type" })?
        .unwrap_or_else(|| "Opaque".to_string());
    let mut entries = BTreeMap::new();
    for (field, base64_encoded) in [("data", true), ("stringData", false)] {
        let values = match doc.remove(field) {
            None | Some(Value::Null) => YamlMap::new(),
            Some(Value::Mapping(values)) => values,
            Some(other) => return Err(SecretError::NotAMap { field, found: type_name(&other) }),
        };
        for (key, value) in values {
            let Value::String(key) = key else {
                return Err(SecretError::KeyNotAString { field, found: type_name(&key) });
            };
            let Value::String(value) = value else {
                return Err(SecretError::ValueNotAString { field, found: type_name(&value), key });
            };
            let bytes = if base64_encoded {
                // Kubernetes accepts line-wrapped base64 in YAML written by hand.
                let compact: String = value.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|_| SecretError::NotBase64 { key: key.clone() })?
            } else {
                value.into_bytes()
            };
            entries.insert(key, Sensitive::new(bytes));
        }
    }
    Ok(SecretData { secret_type, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_yaml(yaml: &str) -> Result<SecretData, SecretError> {
        decode(serde_yaml::from_str(yaml).unwrap())
    }

    const KEY: &str = "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC";

    #[test]
    fn a_string_where_a_map_belongs_is_not_quoted() {
        for field in ["stringData", "data"] {
            let err = decode_yaml(&format!("{field}: '{KEY}'")).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("MIIE") && !shown.contains("PRIVATE"), "{shown}");
            assert!(shown.contains(field) && shown.contains("a string"), "{shown}");
        }
        let err = decode_yaml(&format!("data: {{tls.key: ['{KEY}']}}")).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("MIIE"));
        let err = decode_yaml(&format!("data: {{tls.key: '{KEY}!'}}")).unwrap_err();
        assert_eq!(err.to_string(), "`data.tls.key` is not valid base64");
    }

    #[test]
    fn data_is_base64_and_string_data_wins() {
        let data = decode_yaml("data: {a: aGVsbG8=, b: aGVs\n bG8=}\nstringData: {b: plain}").unwrap();
        assert_eq!(data.entries["a"].expose(), b"hello");
        assert_eq!(data.entries["b"].expose(), b"plain");
        assert!(!format!("{data:?}").contains("hello"));
    }
}
