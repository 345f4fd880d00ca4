//! The compiled configuration: everything Envoy needs, already resolved, named and ordered, but
//! free of protobuf. `xds` turns it into envoy-types messages one resource type per module.

use crate::diagnostic::Provenance;
use crate::model::Sensitive;
use std::sync::Arc;

/// One `Ir` is one complete, consistent snapshot: every cluster a route names exists, every
/// route configuration a listener names exists, and every secret a cluster or listener names exists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ir {
    pub listeners: Vec<HttpListener>,
    pub route_configs: Vec<RouteTable>,
    /// Sorted by name.
    pub clusters: Vec<Cluster>,
    /// Sorted by name.
    pub secrets: Vec<TlsSecret>,
}

/// An HTTP listener: one port, its connection settings, and filter chains that pick TLS (by SNI)
/// or cleartext, each with its own routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListener {
    pub name: String,
    pub port: u16,
    pub stat_prefix: String,
    /// The `Listener` resource, if one defined it (none for listeners made by default).
    pub provenance: Vec<Provenance>,
    pub headers_with_underscores: UnderscoreHeaders,
    /// `l7Depth`: the proxies in front of Envoy whose `X-Forwarded-For` and `X-Forwarded-Proto`
    /// are believed (0: the connection itself says who the client is and whether it is TLS).
    pub trusted_hops: u32,
    /// `PROXY` in the protocol stack: connections start with a HAProxy PROXY protocol header.
    pub proxy_protocol: bool,
    /// `TLS` in the protocol stack: connections are inspected for TLS and SNI.
    pub inspects_tls: bool,
    /// What Envoy tells upstreams about client certificates (`x-forwarded-client-cert`).
    pub client_certificates: ClientCertForwarding,
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

/// Envoy's `forward_client_cert_details` and `set_current_client_cert_details` (the `ambassador`
/// Module's keys of the same names); the default strips any `x-forwarded-client-cert` a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientCertForwarding {
    pub mode: ForwardClientCert,
    pub subject: bool,
    pub cert: bool,
    pub chain: bool,
    pub dns: bool,
    pub uri: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardClientCert {
    #[default]
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
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

#[derive(Debug, Clone, PartialEq)]
pub struct RouteTable {
    pub name: String,
    /// Envoy picks one by the request's host: exact names, then `*.` suffixes, then `.*`
    /// prefixes, then `*`.
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    /// In match order: Envoy takes the first route that matches.
    pub routes: Vec<HostRoute>,
}

/// A route of a virtual host: one of the Mappings' routes, shared by every virtual host that
/// serves it (a Mapping on ten Hosts is one `Route`), as the listener's security model varies it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRoute {
    pub route: Arc<Route>,
    pub variant: RouteVariant,
}

impl HostRoute {
    pub fn as_written(route: Arc<Route>) -> HostRoute {
        HostRoute { route, variant: RouteVariant::default() }
    }

    /// The route as Envoy gets it.
    pub fn resolve(&self) -> Route {
        let mut route = (*self.route).clone();
        if let Some(value) = self.variant.x_forwarded_proto {
            route.matcher.headers.retain(|h| !h.name.eq_ignore_ascii_case(X_FORWARDED_PROTO));
            if let Some(value) = value {
                let matcher = HeaderValueMatch::Exact(value.to_string());
                route.matcher.headers.push(HeaderMatch {
                    name: X_FORWARDED_PROTO.into(),
                    value: matcher,
                    ignore_case: false,
                });
            }
        }
        if self.variant.https_redirect {
            route.action = RouteAction::HttpsRedirect;
        }
        route
    }
}

pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// How a virtual host varies a route (Emissary's route variants).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RouteVariant {
    /// `Some`: the Mapping's own `x-forwarded-proto` matchers are replaced by one for this value
    /// (`Some(None)`: by none).
    pub x_forwarded_proto: Option<Option<&'static str>>,
    /// Answer 301 to `https://` instead of the route's own action.
    pub https_redirect: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `<namespace>/<mapping name>`, so golden diffs point at the Mapping.
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// The Mapping.
    pub provenance: Vec<Provenance>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathMatch {
    Prefix(String),
    Regex(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatch>,
    /// Set on all but the last route of a canary group.
    pub runtime_fraction: Option<RuntimeFraction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderMatch {
    pub name: String,
    pub value: HeaderValueMatch,
    /// For host names (not regexes).
    pub ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeaderValueMatch {
    Exact(String),
    Regex(String),
    Prefix(String),
    Suffix(String),
    Present,
}

/// A share of traffic for one route of a weighted group: `percent` out of 100, overridable at
/// runtime under `runtime_key` (Emissary's `routing.traffic_shift.<cluster>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFraction {
    pub percent: u32,
    pub runtime_key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    Forward(Forward),
    /// The Mapping asked for something we cannot provide safely (e.g. TLS with a missing
    /// certificate): answer directly instead of forwarding in plaintext.
    FailClosed {
        status: u32,
        body: String,
    },
    /// A cleartext request for a Host whose insecure action is `Redirect`: 301 to `https://`
    /// (made by [`RouteVariant::https_redirect`]).
    HttpsRedirect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub cluster: String,
    pub prefix_rewrite: Option<String>,
    pub timeout_ms: u64,
    pub idle_timeout_ms: Option<u64>,
    pub host_rewrite: Option<String>,
    pub auto_host_rewrite: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub connect_timeout_ms: u64,
    pub tls: Option<UpstreamTls>,
    /// The Mapping that created it, its TLSContext, then the other Mappings that use it.
    pub provenance: Vec<Provenance>,
}

/// TLS origination settings; certificate material is referenced by SDS secret name only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    pub client_certificate_secret: Option<String>,
    pub validation_secret: Option<String>,
    pub sni: Option<String>,
    pub alpn_protocols: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub ecdh_curves: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSecret {
    pub name: String,
    pub content: SecretContent,
    /// The TLSContext, then the Secret it reads (if any).
    pub provenance: Vec<Provenance>,
}

/// PEM material, already checked to load in Envoy (and, for certificates, to match its key).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretContent {
    Certificate {
        chain: Vec<u8>,
        private_key: Sensitive,
    },
    /// A CA bundle, and for client certificates optionally a revocation list.
    ValidationContext {
        trusted_ca: Vec<u8>,
        crl: Option<Vec<u8>>,
    },
}

impl std::fmt::Debug for SecretContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretContent::Certificate { chain, private_key } => f
                .debug_struct("Certificate")
                .field("chain", &String::from_utf8_lossy(chain))
                .field("private_key", private_key)
                .finish(),
            SecretContent::ValidationContext { trusted_ca, crl } => f
                .debug_struct("ValidationContext")
                .field("trusted_ca", &String::from_utf8_lossy(trusted_ca))
                .field("crl", &crl.as_deref().map(String::from_utf8_lossy))
                .finish(),
        }
    }
}
