//! `getambassador.io/v3alpha1` `Listener`: a port Envoy listens on, the protocols spoken on it,
//! how it decides whether a request is secure, and which Hosts it serves.

use super::host::LabelSelector;
use super::OneOrMany;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerSpec {
    pub port: Option<u16>,
    /// `HTTP`, `HTTPS`, `HTTPPROXY`, `HTTPSPROXY`, `TCP`, `TLS`: shorthand for a protocol stack.
    pub protocol: Option<String>,
    pub protocol_stack: Option<Vec<String>>,
    /// `XFP`, `SECURE` or `INSECURE`.
    pub security_model: Option<String>,
    pub host_binding: Option<HostBinding>,
    pub stats_prefix: Option<String>,
    /// How many L7 proxies are in front of Envoy: their `X-Forwarded-For`/`-Proto` are trusted.
    pub l7_depth: Option<u32>,
    #[serde(rename = "ambassador_id")]
    pub ambassador_id: Option<OneOrMany>,
}

/// Which Hosts a Listener takes: by namespace (`from: ALL` or `SELF`) and by labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HostBinding {
    pub namespace: Option<NamespaceBinding>,
    pub selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NamespaceBinding {
    pub from: Option<String>,
}
