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
