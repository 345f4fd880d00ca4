//! The `TLSContext` fields ambassador-xds understands.

use super::OneOrMany;
use serde::Deserialize;

///
/// The camelCase aliases are the spelling of a `Host`'s inline `tls` (Emissary maps them to
/// these names before building the Host's implicit TLSContext).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TlsContextSpec {
    /// Non-empty `hosts` marks a termination context: Envoy presents its certificate to clients
    /// asking (SNI) for these names.
    pub hosts: Option<Vec<String>>,
    pub secret: Option<String>,
    pub secret_namespacing: Option<bool>,
    #[serde(alias = "certChainFile")]
    pub cert_chain_file: Option<String>,
    #[serde(alias = "privateKeyFile")]
    pub private_key_file: Option<String>,
    #[serde(alias = "cacertChainFile")]
    pub cacert_chain_file: Option<String>,
    #[serde(alias = "caSecret")]
    pub ca_secret: Option<String>,
    /// A Secret whose `crl.pem` revokes client certificates (termination only).
    #[serde(alias = "crlSecret")]
    pub crl_secret: Option<String>,
    #[serde(alias = "crlFile")]
    pub crl_file: Option<String>,
    /// Emissary takes one comma-separated string; a YAML list is accepted too.
    #[serde(alias = "alpnProtocols")]
    pub alpn_protocols: Option<OneOrMany>,
    #[serde(alias = "minTlsVersion")]
    pub min_tls_version: Option<String>,
    #[serde(alias = "maxTlsVersion")]
    pub max_tls_version: Option<String>,
    #[serde(alias = "cipherSuites")]
    pub cipher_suites: Vec<String>,
    #[serde(alias = "ecdhCurves")]
    pub ecdh_curves: Vec<String>,
    pub sni: Option<String>,
    #[serde(alias = "certRequired")]
    pub cert_required: Option<bool>,
    #[serde(alias = "redirectCleartextFrom")]
    pub redirect_cleartext_from: Option<u16>,
    pub ambassador_id: Option<OneOrMany>,
}

impl TlsContextSpec {
    /// Whether this context terminates TLS (non-empty `hosts`).
    pub fn terminates(&self) -> bool {
        self.hosts.as_ref().is_some_and(|hosts| !hosts.is_empty())
    }

    /// Every file this context asks the control plane to read.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        [&self.cert_chain_file, &self.private_key_file, &self.cacert_chain_file, &self.crl_file]
            .into_iter()
            .filter_map(|file| file.as_deref())
    }
}
