//! The `TCPMapping` fields ambassador-xds understands (see [`super::fields::TCP_MAPPING`]).

use super::fields::Unimplemented;
use super::mapping::TlsSetting;
use super::policy::CircuitBreakerSpec;
use super::OneOrMany;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TcpMappingSpec {
    pub port: Option<u16>,
    pub address: Option<String>,
    pub service: Option<String>,
    /// SNI to match; makes the listener terminate TLS with the TLSContext whose `hosts` name it.
    pub host: Option<String>,
    pub tls: Option<TlsSetting>,
    pub weight: Option<u32>,
    pub idle_timeout_ms: Option<u64>,
    pub circuit_breakers: Option<Vec<CircuitBreakerSpec>>,
    pub cluster_tag: Option<String>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub resolver: Option<String>,
    pub ambassador_id: Option<OneOrMany>,
    #[serde(skip)]
    pub unimplemented: Vec<Unimplemented>,
}
