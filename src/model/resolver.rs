//! The three resolvers Emissary has: how a Mapping's `service` becomes upstream addresses.
//!
//! * `KubernetesServiceResolver`: the service's DNS name (a STRICT_DNS cluster): the default.
//! * `KubernetesEndpointResolver`: the Service's EndpointSlices (an EDS cluster).
//! * `ConsulResolver`: the service's healthy instances in a Consul datacenter (an EDS cluster).

use super::OneOrMany;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResolverKind {
    KubernetesService,
    KubernetesEndpoint,
    Consul,
}

impl ResolverKind {
    pub const ALL: [ResolverKind; 3] =
        [ResolverKind::KubernetesService, ResolverKind::KubernetesEndpoint, ResolverKind::Consul];

    /// The resource kind users write.
    pub const fn kind_name(self) -> &'static str {
        match self {
            ResolverKind::KubernetesService => "KubernetesServiceResolver",
            ResolverKind::KubernetesEndpoint => "KubernetesEndpointResolver",
            ResolverKind::Consul => "ConsulResolver",
        }
    }

    pub fn from_kind_name(kind: &str) -> Option<ResolverKind> {
        ResolverKind::ALL.into_iter().find(|k| k.kind_name() == kind)
    }
}

/// A resolver's settings: `address` and `datacenter` are ConsulResolver fields (the Kubernetes
/// resolvers have none but `ambassador_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSpec {
    pub kind: ResolverKind,
    /// The Consul agent's HTTP address (`host:port`, optionally `http://` or `https://`);
    /// `$VAR` and `${VAR}` are replaced from the environment where the watch runs.
    pub address: Option<String>,
    pub datacenter: Option<String>,
    pub ambassador_id: Option<OneOrMany>,
}

/// What a `ConsulResolver` document may hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(super) struct ConsulResolverFields {
    pub address: Option<String>,
    pub datacenter: Option<String>,
    pub ambassador_id: Option<OneOrMany>,
}

/// What a Kubernetes resolver document may hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(super) struct KubernetesResolverFields {
    pub ambassador_id: Option<OneOrMany>,
}
