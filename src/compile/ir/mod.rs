//! The compiled configuration: everything Envoy needs, already resolved, named and ordered, but
//! free of protobuf. `xds` turns it into envoy-types messages one resource type per module.

mod cluster;
mod listener;
mod route;

pub use cluster::*;
pub use listener::*;
pub use route::*;

/// Every cluster, sorted by name; shared with the compile's memo, so that an unchanged set is the
/// same list from one compile to the next, known by address.
pub type ClusterList = std::sync::Arc<[std::sync::Arc<Cluster>]>;

use crate::diagnostic::Provenance;
use crate::model::endpoint::EndpointTarget;
use crate::model::Sensitive;
use std::sync::Arc;

/// One `Ir` is one complete, consistent snapshot: every cluster a route names exists, every
/// route configuration a listener names exists, and every secret a cluster or listener names exists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ir {
    pub listeners: Vec<HttpListener>,
    /// `TCPMapping`s, each port on a listener of its own.
    pub tcp_listeners: Vec<TcpListener>,
    /// Shared with the provenance of what is served (which follows a route by its place).
    pub route_configs: Vec<Arc<RouteTable>>,
    /// Sorted by name. Shared with the cluster claims they come from where they are the same
    /// (most of them), so that admission can tell an unchanged cluster by its address.
    pub clusters: ClusterList,
    /// Sorted by name.
    pub secrets: Vec<TlsSecret>,
    /// The Module's `regex_max_size` (at most the configured limit): regexes are checked
    /// against it.
    pub regex_max_size: Option<u32>,
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
