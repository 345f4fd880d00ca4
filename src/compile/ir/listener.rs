//! Listeners as compiled: HTTP listeners (routes over RDS) with the connection-manager settings
//! of the `ambassador` Module, and the TCP listeners of `TCPMapping`s.

use super::route::ErrorResponseRule;
use crate::diagnostic::Provenance;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListener {
    pub name: String,
    pub port: u16,
    pub stat_prefix: String,
    pub route_config: String,
    /// The `Listener` resource, if one defined it (none for the default listener).
    pub provenance: Vec<Provenance>,
    pub options: HttpOptions,
}

/// The HTTP connection manager's settings: Emissary's edge defaults, changed by the Module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    pub server_name: Option<String>,
    pub merge_slashes: bool,
    pub normalize_path: bool,
    pub reject_escaped_slashes: bool,
    pub headers_with_underscores: UnderscoreHeaders,
    pub max_request_headers_kb: Option<u32>,
    pub idle_timeout_ms: Option<u64>,
    pub accept_http_10: bool,
    pub allow_chunked_length: bool,
    pub preserve_external_request_id: bool,
    pub suppress_envoy_headers: bool,
    pub buffer_limit_bytes: Option<u32>,
    pub forward_client_cert: Option<ForwardClientCert>,
    pub client_cert_details: Option<ClientCertDetails>,
    /// Whether the custom-response filter is in the chain (some route or the Module overrides
    /// error responses), and the Module's rules, which apply where a route does not say else.
    pub error_responses: Option<Vec<ErrorResponseRule>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            use_remote_address: true,
            xff_num_trusted_hops: 0,
            server_name: None,
            merge_slashes: true,
            normalize_path: true,
            reject_escaped_slashes: false,
            headers_with_underscores: UnderscoreHeaders::Allow,
            max_request_headers_kb: None,
            idle_timeout_ms: None,
            accept_http_10: false,
            allow_chunked_length: false,
            preserve_external_request_id: false,
            suppress_envoy_headers: false,
            buffer_limit_bytes: None,
            forward_client_cert: None,
            client_cert_details: None,
            error_responses: None,
        }
    }
}

/// What the listener does with request headers whose names contain `_` (some upstreams read
/// `x_forwarded_for` as `x-forwarded-for`, so such headers can smuggle what Envoy sets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnderscoreHeaders {
    /// Pass them on (Envoy's and Emissary's default).
    #[default]
    Allow,
    /// Drop the header.
    Drop,
    /// Answer 400.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardClientCert {
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCertDetails {
    pub subject: bool,
    pub cert: bool,
    pub chain: bool,
    pub dns: bool,
    pub uri: bool,
}

/// The listener of one `TCPMapping` port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpListener {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub stat_prefix: String,
    /// At most one without a server name; the others match by SNI.
    pub chains: Vec<TcpChain>,
    pub provenance: Vec<Provenance>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpChain {
    pub name: String,
    /// The SNI this chain takes (`host`), which makes it terminate TLS.
    pub server_name: Option<String>,
    /// The SDS secret of the certificate it terminates TLS with.
    pub certificate_secret: Option<String>,
    /// The SDS secret of the CA client certificates are verified with.
    pub validation_secret: Option<String>,
    pub require_client_certificate: bool,
    /// Clusters and their weights (a canary group of TCPMappings).
    pub clusters: Vec<(String, u32)>,
    pub idle_timeout_ms: Option<u64>,
    pub provenance: Vec<Provenance>,
}
