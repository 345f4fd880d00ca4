//! The `TLSContext` fields ambassador-xds understands.

use super::OneOrMany;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TlsContextSpec {
    /// Non-empty `hosts` marks a termination context (downstream TLS), which is not served yet.
    pub hosts: Option<Vec<String>>,
    pub secret: Option<String>,
    pub secret_namespacing: Option<bool>,
    pub cert_chain_file: Option<String>,
    pub private_key_file: Option<String>,
    pub cacert_chain_file: Option<String>,
    pub ca_secret: Option<String>,
    /// Emissary takes one comma-separated string; a YAML list is accepted too.
    pub alpn_protocols: Option<OneOrMany>,
    pub min_tls_version: Option<String>,
    pub max_tls_version: Option<String>,
    pub cipher_suites: Vec<String>,
    pub ecdh_curves: Vec<String>,
    pub sni: Option<String>,
    pub cert_required: Option<bool>,
    pub redirect_cleartext_from: Option<u16>,
    pub ambassador_id: Option<OneOrMany>,
}

impl TlsContextSpec {
    /// Every file this context asks the control plane to read.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        [&self.cert_chain_file, &self.private_key_file, &self.cacert_chain_file]
            .into_iter()
            .filter_map(|file| file.as_deref())
    }
}
