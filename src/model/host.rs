//! `getambassador.io/v2|v3alpha1` `Host`: a host name Envoy serves, the certificate it presents
//! for it, and what happens to requests for it that arrive in cleartext.

use super::{OneOrMany, TlsContextSpec};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HostSpec {
    /// A DNS name, or a glob with `*` as its first or last label; `*` (the default) is every host.
    pub hostname: Option<String>,
    /// The `kubernetes.io/tls` Secret holding the server certificate.
    pub tls_secret: Option<SecretReference>,
    /// A TLSContext holding the TLS settings (and, without `tlsSecret`, the certificate).
    pub tls_context: Option<ContextReference>,
    /// TLS settings written inline (TLSContext fields, camelCase or snake_case).
    pub tls: Option<TlsContextSpec>,
    pub request_policy: Option<RequestPolicy>,
    /// Which Mappings this Host takes, by their labels.
    pub mapping_selector: Option<LabelSelector>,
    /// The older name of `mappingSelector` (used when `mappingSelector` is not set).
    pub selector: Option<LabelSelector>,
    pub acme_provider: Option<AcmeProvider>,
    #[serde(rename = "ambassador_id")]
    pub ambassador_id: Option<OneOrMany>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SecretReference {
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContextReference {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RequestPolicy {
    pub insecure: Option<InsecurePolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InsecurePolicy {
    /// `Redirect` (the default), `Route` or `Reject`.
    pub action: Option<String>,
    /// A cleartext port (besides the Listeners) where this Host's insecure action applies;
    /// negative means none.
    pub additional_port: Option<i64>,
}

/// A Kubernetes label selector; Emissary reads `matchLabels` only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelector {
    /// Every label of the selector is on the resource (Emissary's strict matching); an empty
    /// selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(key, value)| labels.get(key) == Some(value))
    }
}

/// ACME is Edge Stack's; Emissary (and this tool) only accept it switched off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AcmeProvider {
    pub authority: Option<String>,
    pub email: Option<String>,
    pub private_key_secret: Option<SecretReference>,
    pub registration: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_need_every_label() {
        let selector: LabelSelector = serde_yaml::from_str("matchLabels: {team: a, tier: web}").unwrap();
        let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(selector.matches(&labels(&[("team", "a"), ("tier", "web"), ("x", "y")])));
        assert!(!selector.matches(&labels(&[("team", "a")])));
        assert!(LabelSelector::default().matches(&labels(&[])));
    }
}
