//! Upstream clusters as compiled: where they point, how Envoy talks to them, and their limits.

use crate::diagnostic::Provenance;
use crate::model::endpoint::EndpointTarget;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cluster {
    pub name: String,
    /// The service's host and port (a STRICT_DNS cluster resolves them; for EDS clusters, what the
    /// Mapping said, for messages).
    pub host: String,
    pub port: u16,
    /// `Some`: an EDS cluster whose endpoints come from this target (a ConsulResolver or a
    /// KubernetesEndpointResolver).
    pub eds: Option<EndpointTarget>,
    /// Part of the cluster's name (`load_balancer`), so always the same for one cluster.
    pub lb_policy: LbPolicy,
    pub tls: Option<UpstreamTls>,
    pub options: ClusterOptions,
    /// The Mapping that created it, its TLSContext, then the other Mappings that use it.
    pub provenance: Vec<Provenance>,
}

/// How Envoy talks to the upstream: what Mappings sharing a cluster must agree on (the first
/// Mapping's settings are used, with a warning for the others, as Emissary keeps the first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterOptions {
    pub connect_timeout_ms: u64,
    /// `grpc: true`: HTTP/2 (h2c, or h2 over TLS).
    pub http2: bool,
    pub dns: DnsLookup,
    pub logical_dns: bool,
    pub respect_dns_ttl: bool,
    pub idle_timeout_ms: Option<u64>,
    pub max_connection_lifetime_ms: Option<u64>,
    pub keepalive: Option<Keepalive>,
    /// Part of the cluster's name, so always the same for one cluster.
    pub circuit_breakers: Vec<CircuitBreaker>,
    /// `alt_stat_name`: what Envoy's stats call the cluster.
    pub stats_name: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            connect_timeout_ms: 3000,
            http2: false,
            dns: DnsLookup::V4Only,
            logical_dns: false,
            respect_dns_ttl: false,
            idle_timeout_ms: None,
            max_connection_lifetime_ms: None,
            keepalive: None,
            circuit_breakers: Vec::new(),
            stats_name: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    RingHash,
    Maglev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsLookup {
    V4Only,
    V6Only,
    /// Both: IPv6 preferred, as Emissary's `enable_ipv6` with `enable_ipv4`.
    Auto,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Keepalive {
    pub time: Option<u32>,
    pub interval: Option<u32>,
    pub probes: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CircuitBreaker {
    pub high_priority: bool,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

/// TLS origination settings; certificate material is referenced by SDS secret name only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}
