//! `getambassador.io/v3alpha1` `Listener`: the ports Envoy listens on.

use super::OneOrMany;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerSpec {
    pub port: Option<u16>,
    pub protocol: Option<String>,
    pub protocol_stack: Option<Vec<String>>,
    /// Accepted for compatibility; every HTTP listener serves every Mapping.
    pub security_model: Option<String>,
    pub host_binding: Option<serde_yaml::Value>,
    pub stats_prefix: Option<String>,
    pub l7_depth: Option<u32>,
    #[serde(rename = "ambassador_id")]
    pub ambassador_id: Option<OneOrMany>,
}
