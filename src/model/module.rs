//! The `ambassador` `Module`: its `config` shapes the listeners and sets defaults for every
//! Mapping (see [`super::fields::MODULE`] for every key).

use super::fields::Unimplemented;
use super::mapping::LoadBalancer;
use super::policy::RetryPolicySpec;
use super::policy::{AddedHeaders, CircuitBreakerSpec, CorsSpec, ErrorResponseOverride, KeepaliveSpec};
use super::OneOrMany;
use indexmap::IndexMap;
use serde::Deserialize;

/// The only Module name Emissary reads listener and default settings from.
pub const AMBASSADOR_MODULE: &str = "ambassador";

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ModuleSpec {
    pub config: ModuleConfig,
    pub ambassador_id: Option<OneOrMany>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ModuleConfig {
    // ---- the HTTP connection manager ----
    pub use_remote_address: Option<bool>,
    pub xff_num_trusted_hops: Option<u32>,
    pub server_name: Option<String>,
    pub strip_matching_host_port: Option<bool>,
    pub merge_slashes: Option<bool>,
    pub normalize_path: Option<bool>,
    pub reject_requests_with_escaped_slashes: Option<bool>,
    pub headers_with_underscores_action: Option<String>,
    pub max_request_headers_kb: Option<u32>,
    pub listener_idle_timeout_ms: Option<u64>,
    pub enable_http10: Option<bool>,
    pub allow_chunked_length: Option<bool>,
    pub preserve_external_request_id: Option<bool>,
    pub suppress_envoy_headers: Option<bool>,
    pub buffer_limit_bytes: Option<u32>,
    pub forward_client_cert_details: Option<String>,
    pub set_current_client_cert_details: Option<IndexMap<String, bool>>,
    pub regex_max_size: Option<u32>,
    pub error_response_overrides: Option<Vec<ErrorResponseOverride>>,

    // ---- defaults for every Mapping ----
    pub cluster_request_timeout_ms: Option<u64>,
    pub cluster_idle_timeout_ms: Option<u64>,
    pub cluster_max_connection_lifetime_ms: Option<u64>,
    pub circuit_breakers: Option<Vec<CircuitBreakerSpec>>,
    pub retry_policy: Option<RetryPolicySpec>,
    pub cors: Option<CorsSpec>,
    pub keepalive: Option<KeepaliveSpec>,
    pub add_linkerd_headers: Option<bool>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub use_ambassador_namespace_for_service_resolution: Option<bool>,
    pub defaults: Option<Defaults>,
    /// The resolver of every Mapping that names none (default `kubernetes-service`).
    pub resolver: Option<String>,
    /// The load balancer of every Mapping that sets none and uses an endpoint resolver.
    pub load_balancer: Option<LoadBalancer>,

    // ---- the routes Emissary adds ----
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,

    #[serde(skip)]
    pub unimplemented: Vec<Unimplemented>,
}

/// `liveness_probe` / `readiness_probe`: Emissary's own routes to its diagnostics service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Probe {
    pub enabled: Option<bool>,
    pub prefix: Option<String>,
    pub rewrite: Option<String>,
    pub service: Option<String>,
}

/// `defaults:` — values for Mappings that do not set them, at the top level or for the
/// `httpmapping` class (which wins).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Defaults {
    pub httpmapping: MappingDefaults,
    #[serde(flatten)]
    pub any: MappingDefaults,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MappingDefaults {
    pub add_request_headers: Option<AddedHeaders>,
    pub add_response_headers: Option<AddedHeaders>,
    pub remove_request_headers: Option<OneOrMany>,
    pub remove_response_headers: Option<OneOrMany>,
}
