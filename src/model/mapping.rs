//! The `Mapping` fields ambassador-xds understands. Anything else is reported as an ignored field.

use super::OneOrMany;
use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MappingSpec {
    pub prefix: Option<String>,
    pub prefix_regex: bool,
    pub prefix_exact: bool,
    pub case_sensitive: Option<bool>,
    /// `None` means Emissary's default rewrite `/`; `Some("")` turns rewriting off.
    pub rewrite: Option<String>,
    pub service: Option<String>,
    pub tls: Option<TlsSetting>,
    pub host: Option<String>,
    pub host_regex: bool,
    pub hostname: Option<String>,
    /// In the order written: Emissary's route order compares header keys in that order.
    pub headers: IndexMap<String, HeaderValue>,
    pub regex_headers: IndexMap<String, String>,
    pub method: Option<String>,
    pub method_regex: bool,
    pub precedence: Option<i32>,
    pub weight: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub host_rewrite: Option<String>,
    pub auto_host_rewrite: Option<bool>,
    pub ambassador_id: Option<OneOrMany>,
    /// The resolver (a ConsulResolver, KubernetesEndpointResolver or KubernetesServiceResolver, by
    /// name) that turns `service` into addresses; the default is `kubernetes-service` (DNS).
    pub resolver: Option<String>,
    pub load_balancer: Option<LoadBalancer>,
    /// Verify the upstream's mesh identity: `true` derives its SPIFFE ID the way Consul Connect
    /// names services, or a `spiffe://` URI is matched exactly (see `compile::identity`).
    pub verify_spiffe_id: Option<SpiffeIdSetting>,
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

/// A `headers:` value: a string to match exactly, or `true` to require the header's presence.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Present(bool),
    Exact(String),
}
