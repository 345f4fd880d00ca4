//! The `Mapping` fields ambassador-xds understands (see [`super::fields::MAPPING`] for what it
//! does with every other one).

use super::fields::Unimplemented;
use super::policy::RetryPolicySpec;
use super::policy::{AddedHeaders, CircuitBreakerSpec, CorsSpec, ErrorResponseOverride, KeepaliveSpec, RegexMap};
use super::OneOrMany;
use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MappingSpec {
    // ---- what it matches ----
    pub prefix: Option<String>,
    pub prefix_regex: bool,
    pub prefix_exact: bool,
    pub case_sensitive: Option<bool>,
    pub host: Option<String>,
    pub host_regex: bool,
    pub hostname: Option<String>,
    /// In the order written: Emissary's route order compares header keys in that order.
    pub headers: IndexMap<String, HeaderValue>,
    pub regex_headers: IndexMap<String, String>,
    /// Presence matches a v2 Mapping converted to v3alpha1 carries apart from `headers`.
    #[serde(rename = "v2BoolHeaders")]
    pub v2_bool_headers: Vec<String>,
    pub query_parameters: IndexMap<String, HeaderValue>,
    pub regex_query_parameters: IndexMap<String, String>,
    #[serde(rename = "v2BoolQueryParameters")]
    pub v2_bool_query_parameters: Vec<String>,
    pub method: Option<String>,
    pub method_regex: bool,
    pub precedence: Option<i32>,

    // ---- where it goes ----
    pub service: Option<String>,
    pub tls: Option<TlsSetting>,
    pub weight: Option<u32>,
    pub shadow: Option<bool>,
    pub host_redirect: Option<bool>,
    pub path_redirect: Option<String>,
    pub prefix_redirect: Option<String>,
    pub regex_redirect: Option<RegexMap>,
    pub redirect_response_code: Option<u32>,
    /// The resolver (a ConsulResolver, KubernetesEndpointResolver or KubernetesServiceResolver, by
    /// name) that turns `service` into addresses; the default is the Module's, else
    /// `kubernetes-service` (DNS).
    pub resolver: Option<String>,
    pub load_balancer: Option<LoadBalancer>,
    /// Verify the upstream's mesh identity: `true` derives its SPIFFE ID the way Consul Connect
    /// names services, or a `spiffe://` URI is matched exactly (see `compile::identity`).
    pub verify_spiffe_id: Option<SpiffeIdSetting>,

    // ---- what the route does on the way ----
    /// `None` means Emissary's default rewrite `/`; `Some("")` turns rewriting off.
    pub rewrite: Option<String>,
    pub regex_rewrite: Option<RegexMap>,
    pub host_rewrite: Option<String>,
    pub auto_host_rewrite: Option<bool>,
    pub timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub retry_policy: Option<RetryPolicySpec>,
    pub cors: Option<CorsSpec>,
    pub allow_upgrade: Option<Vec<String>>,
    pub use_websocket: Option<bool>,
    pub add_request_headers: Option<AddedHeaders>,
    pub add_response_headers: Option<AddedHeaders>,
    pub remove_request_headers: Option<OneOrMany>,
    pub remove_response_headers: Option<OneOrMany>,
    pub add_linkerd_headers: Option<bool>,
    pub error_response_overrides: Option<Vec<ErrorResponseOverride>>,
    pub bypass_error_response_overrides: Option<bool>,
    pub bypass_auth: Option<bool>,
    pub priority: Option<String>,

    // ---- the upstream cluster ----
    pub grpc: Option<bool>,
    pub connect_timeout_ms: Option<u64>,
    pub cluster_idle_timeout_ms: Option<u64>,
    pub cluster_max_connection_lifetime_ms: Option<u64>,
    pub keepalive: Option<KeepaliveSpec>,
    pub circuit_breakers: Option<Vec<CircuitBreakerSpec>>,
    pub cluster_tag: Option<String>,
    pub stats_name: Option<String>,
    pub dns_type: Option<String>,
    pub respect_dns_ttl: Option<bool>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,

    pub ambassador_id: Option<OneOrMany>,

    /// Fields this struct does not hold, as the field table classifies them.
    #[serde(skip)]
    pub unimplemented: Vec<Unimplemented>,
}

/// `load_balancer:` as Emissary reads it: `policy` and, for the hashing policies, exactly one of
/// `cookie`, `header` or `source_ip`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LoadBalancer {
    pub policy: Option<String>,
    pub cookie: Option<LoadBalancerCookie>,
    pub header: Option<String>,
    pub source_ip: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LoadBalancerCookie {
    pub name: Option<String>,
    pub path: Option<String>,
    /// A protobuf duration (`10s`, `1.5s`), as Envoy reads it.
    pub ttl: Option<String>,
}

/// `verify_spiffe_id: true` or `verify_spiffe_id: spiffe://trust.domain/path`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SpiffeIdSetting {
    Derived(bool),
    Exact(String),
}

/// `tls:` names a TLSContext, or (older Ambassador) is `true` for TLS without a client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TlsSetting {
    Enabled(bool),
    Context(String),
}

/// A `headers:` or `query_parameters:` value: a string to match exactly, or `true` to require
/// presence.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Present(bool),
    Exact(String),
}
