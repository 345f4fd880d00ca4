//! The structured values a `Mapping` and the `ambassador` `Module` share: headers to add, CORS,
//! retries, circuit breakers, TCP keepalive, regex rewrites, error response overrides. Typed as
//! Emissary's CRDs type them, with the looser forms its older versions and docs accept.

use super::OneOrMany;
use indexmap::IndexMap;
use serde::Deserialize;

/// An `add_request_headers`/`add_response_headers` value: a string (appended, as Emissary's
/// default), or `{value, append}`; `null` (what a v2 Mapping converted to v3alpha1 may hold) is an
/// empty value, which Envoy does not add.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AddedHeader {
    Value(String),
    Null(()),
    Detailed {
        value: String,
        #[serde(default)]
        append: Option<bool>,
    },
}

impl AddedHeader {
    pub fn value(&self) -> &str {
        match self {
            AddedHeader::Value(value) | AddedHeader::Detailed { value, .. } => value,
            AddedHeader::Null(()) => "",
        }
    }

    /// Emissary appends unless told not to.
    pub fn append(&self) -> bool {
        match self {
            AddedHeader::Value(_) | AddedHeader::Null(()) => true,
            AddedHeader::Detailed { append, .. } => append.unwrap_or(true),
        }
    }
}

pub type AddedHeaders = IndexMap<String, AddedHeader>;

/// `regex_rewrite` and `regex_redirect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RegexMap {
    pub pattern: String,
    pub substitution: String,
}

/// A value Emissary accepts as a string or a number (`cors.max_age`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StringOrNumber {
    String(String),
    Number(u64),
}

impl std::fmt::Display for StringOrNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StringOrNumber::String(s) => f.write_str(s),
            StringOrNumber::Number(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CorsSpec {
    /// A list, or (Ambassador 1.x) one comma-separated string.
    pub origins: Option<OneOrMany>,
    pub methods: Option<OneOrMany>,
    pub headers: Option<OneOrMany>,
    pub credentials: Option<bool>,
    pub exposed_headers: Option<OneOrMany>,
    pub max_age: Option<StringOrNumber>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RetryPolicySpec {
    pub retry_on: Option<String>,
    pub num_retries: Option<u32>,
    /// A protobuf JSON duration (`"0.5s"`), as Emissary passes it to Envoy.
    pub per_try_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CircuitBreakerSpec {
    /// `default` or `high`.
    pub priority: Option<String>,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

/// TCP keepalive towards the upstream. Emissary's documented `idle_time` and the `time` its
/// translator reads are both accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct KeepaliveSpec {
    pub idle_time: Option<u32>,
    pub time: Option<u32>,
    pub interval: Option<u32>,
    pub probes: Option<u32>,
}

/// One `error_response_overrides` rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ErrorResponseOverride {
    pub on_status_code: Option<serde_yaml::Value>,
    pub body: Option<ErrorResponseBody>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ErrorResponseBody {
    pub text_format: Option<serde_yaml::Value>,
    pub json_format: Option<serde_yaml::Value>,
    pub text_format_source: Option<serde_yaml::Value>,
    pub content_type: Option<String>,
}
