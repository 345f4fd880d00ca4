//! Listeners as compiled: HTTP listeners (filter chains by TLS and SNI, routes over RDS) with the
//! connection-manager settings of the `ambassador` Module, and the TCP listeners of `TCPMapping`s.

use super::cluster::TlsVersion;
use super::route::ErrorResponseRule;
use crate::diagnostic::Provenance;

/// An HTTP listener: one port, its connection settings, and filter chains that pick TLS (by SNI)
/// or cleartext, each with its own routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListener {
    pub name: String,
    pub port: u16,
    pub stat_prefix: String,
    /// The `Listener` resource, if one defined it (none for listeners made by default).
    pub provenance: Vec<Provenance>,
    /// The Module's settings; `xff_num_trusted_hops` is the Listener's `l7Depth` when it has one.
    pub options: HttpOptions,
    /// `PROXY` in the protocol stack: connections start with a HAProxy PROXY protocol header.
    pub proxy_protocol: bool,
    /// `TLS` in the protocol stack: connections are inspected for TLS and SNI.
    pub inspects_tls: bool,
    /// Envoy takes the most specific match (SNI, then TLS or not); kept sorted by name.
    pub chains: Vec<FilterChain>,
}

/// One filter chain: which connections it takes, how they are secured, and their routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterChain {
    /// Empty for the only chain of a listener that serves no Host.
    pub name: String,
    /// SNI names taken (`*.example.com` included); empty: any (or no) name.
    pub server_names: Vec<String>,
    pub transport: ChainTransport,
    /// The RouteConfiguration the chain's connection manager takes over RDS.
    pub route_config: String,
    /// The Host and TLSContext (and Secrets) behind a TLS chain.
    pub provenance: Vec<Provenance>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainTransport {
    /// Cleartext: whatever no TLS chain takes.
    Cleartext,
    /// TLS terminated with these settings.
    Tls(DownstreamTls),
    /// TLS for these names cannot be served (a Host whose certificate is missing or unusable):
    /// the connection is closed unanswered, instead of being handed another Host's certificate.
    Refused,
}

/// TLS termination settings; the certificate and client CA come over SDS by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DownstreamTls {
    pub certificate_secret: String,
    /// The CA (and CRL) client certificates are verified against.
    pub validation_secret: Option<String>,
    pub require_client_certificate: bool,
    pub alpn_protocols: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub ecdh_curves: Vec<String>,
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
    /// What Envoy tells upstreams about client certificates (`x-forwarded-client-cert`); the
    /// default strips any a client sends.
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
