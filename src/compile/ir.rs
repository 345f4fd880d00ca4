//! The compiled configuration: everything Envoy needs, already resolved, named and ordered, but
//! free of protobuf. `xds` turns it into envoy-types messages one resource type per module.

use crate::diagnostic::Provenance;
use crate::model::endpoint::EndpointTarget;
use crate::model::Sensitive;

/// One `Ir` is one complete, consistent snapshot: every cluster a route names exists, and every
/// secret a cluster names exists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ir {
    pub listeners: Vec<HttpListener>,
    pub route_configs: Vec<RouteTable>,
    /// Sorted by name.
    pub clusters: Vec<Cluster>,
    /// Sorted by name.
    pub secrets: Vec<TlsSecret>,
    /// What the EDS clusters' endpoints come from, by EDS name (sorted): every one gets a
    /// `ClusterLoadAssignment`, empty while nothing is known, so no cluster warms forever.
    pub endpoint_services: Vec<EdsService>,
}

/// One `ClusterLoadAssignment` to keep up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdsService {
    /// The EDS service name (`EndpointTarget::eds_name`).
    pub name: String,
    pub target: EndpointTarget,
    /// The clusters' Mappings and resolvers.
    pub provenance: Vec<Provenance>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListener {
    pub name: String,
    pub port: u16,
    pub stat_prefix: String,
    pub route_config: String,
    /// The `Listener` resource, if one defined it (none for the default listener).
    pub provenance: Vec<Provenance>,
    pub headers_with_underscores: UnderscoreHeaders,
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
    /// In match order: Envoy takes the first route that matches.
    pub routes: Vec<Route>,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub cluster: String,
    pub prefix_rewrite: Option<String>,
    pub timeout_ms: u64,
    pub idle_timeout_ms: Option<u64>,
    pub host_rewrite: Option<String>,
    pub auto_host_rewrite: bool,
    /// What `ring_hash` and `maglev` clusters hash requests on.
    pub hash_policy: Option<HashPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPolicy {
    Cookie { name: String, path: Option<String>, ttl_ms: Option<u64> },
    Header(String),
    SourceIp(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// The service's host and port (a STRICT_DNS cluster resolves them; for EDS clusters, what the
    /// Mapping said, for messages).
    pub host: String,
    pub port: u16,
    /// `Some`: an EDS cluster whose endpoints come from this target (a ConsulResolver or a
    /// KubernetesEndpointResolver).
    pub eds: Option<EndpointTarget>,
    pub lb_policy: LbPolicy,
    pub connect_timeout_ms: u64,
    pub tls: Option<UpstreamTls>,
    /// The Mapping that created it, its TLSContext, then the other Mappings that use it.
    pub provenance: Vec<Provenance>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    RingHash,
    Maglev,
}

/// TLS origination settings; certificate material is referenced by SDS secret name only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    pub client_certificate_secret: Option<String>,
    pub validation_secret: Option<String>,
    /// The URI SAN the upstream's certificate must carry (`verify_spiffe_id`); only with a
    /// `validation_secret` (Envoy refuses SAN checks without a trusted CA).
    pub spiffe_id: Option<String>,
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
    Certificate { chain: Vec<u8>, private_key: Sensitive },
    ValidationContext { trusted_ca: Vec<u8> },
}

impl std::fmt::Debug for SecretContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretContent::Certificate { chain, private_key } => f
                .debug_struct("Certificate")
                .field("chain", &String::from_utf8_lossy(chain))
                .field("private_key", private_key)
                .finish(),
            SecretContent::ValidationContext { trusted_ca } => {
                f.debug_struct("ValidationContext").field("trusted_ca", &String::from_utf8_lossy(trusted_ca)).finish()
            }
        }
    }
}
