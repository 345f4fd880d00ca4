//! The `ambassador` `Module`: only what TLS at the edge needs, the `x-forwarded-client-cert`
//! settings (`forward_client_cert_details`, `set_current_client_cert_details`), which Emissary
//! copies into every HTTP connection manager. Every other key is reported as ignored.

use super::OneOrMany;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ModuleSpec {
    pub config: ModuleConfig,
    pub ambassador_id: Option<OneOrMany>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ModuleConfig {
    /// Envoy's `forward_client_cert_details`: `SANITIZE`, `FORWARD_ONLY`, `APPEND_FORWARD`,
    /// `SANITIZE_SET` or `ALWAYS_FORWARD_ONLY`.
    pub forward_client_cert_details: Option<String>,
    pub set_current_client_cert_details: Option<ClientCertDetails>,
}

/// Which parts of the client certificate Envoy writes into `x-forwarded-client-cert`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ClientCertDetails {
    pub subject: Option<bool>,
    pub cert: Option<bool>,
    pub chain: Option<bool>,
    pub dns: Option<bool>,
    pub uri: Option<bool>,
}
