//! Upstream endpoints: what an EDS cluster's addresses come from ([`EndpointTarget`], derived
//! from a Mapping and its resolver by `compile`) and what the endpoint sources found for it.
//!
//! Endpoints are an input of their own, apart from the [`super::Model`]: they change far more
//! often than configuration (every instance that starts, stops or fails a health check), and a
//! change must only rebuild the `ClusterLoadAssignment`s, never recompile the Mappings.

use std::collections::BTreeMap;
use std::fmt;

/// Where one EDS cluster's endpoints come from. Its [`EndpointTarget::eds_name`] is the cluster's
/// `eds_cluster_config.service_name` and the name of its `ClusterLoadAssignment`, so clusters that
/// share a target (plaintext and TLS to one service) share one assignment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointTarget {
    /// A service's instances in a Consul datacenter: the passing ones
    /// (`/v1/health/service/<service>?passing=1`), or with `connect` its passing Connect proxies
    /// (`/v1/health/connect/<service>?passing=1`).
    Consul { address: Option<String>, datacenter: String, service: String, connect: bool },
    /// The ready endpoints of a Kubernetes Service's EndpointSlices, on the endpoint port named
    /// like the Service port `port`.
    Kubernetes { namespace: String, service: String, port: u16 },
}

impl EndpointTarget {
    /// Emissary's EDS names (`consul/<dc>/<service>`, `k8s/<namespace>/<service>/<port>`); Connect
    /// proxies, which Emissary never watched, are `consul-connect/<dc>/<service>`.
    pub fn eds_name(&self) -> String {
        match self {
            EndpointTarget::Consul { datacenter, service, connect: false, .. } => {
                format!("consul/{datacenter}/{service}")
            }
            EndpointTarget::Consul { datacenter, service, connect: true, .. } => {
                format!("consul-connect/{datacenter}/{service}")
            }
            EndpointTarget::Kubernetes { namespace, service, port } => format!("k8s/{namespace}/{service}/{port}"),
        }
    }
}

impl fmt::Display for EndpointTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointTarget::Consul { address, datacenter, service, connect } => {
                let api = if *connect { "connect" } else { "service" };
                let agent = address.as_deref().unwrap_or("the default agent");
                write!(f, "Consul {api} {service} in {datacenter} (via {agent})")
            }
            EndpointTarget::Kubernetes { namespace, service, port } => {
                write!(f, "Kubernetes Service {namespace}/{service} port {port}")
            }
        }
    }
}

/// One upstream address: an IP literal (Envoy's EDS takes no names) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

/// What a source knows of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetEndpoints {
    /// Sorted, without repeats.
    pub endpoints: Vec<Endpoint>,
    /// Why the last attempt to refresh them failed (the endpoints are then the last known ones):
    /// shown as a warning, never with credentials.
    pub problem: Option<String>,
}

/// Every target's endpoints, as the endpoint sources know them now. A target missing here is
/// not known (yet): its assignment is sent empty, so its cluster does not warm forever.
pub type EndpointTable = BTreeMap<EndpointTarget, TargetEndpoints>;
