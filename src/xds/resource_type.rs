//! The one table of xDS resource types: what each is called on the wire, in logs and in goldens,
//! how clients subscribe to it, the order it is pushed and removed in, and its gRPC service.
//!
//! Everything that is per type — the snapshot's slots, the server's routes, the golden document —
//! is built from this table, so adding a type (or reordering pushes) cannot misfile resources.

use std::ops::{Index, IndexMut};

/// An xDS resource type ambassador-xds serves. Declared in golden-document order (the field order
/// of `ambassador_xds.v1.Snapshot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XdsType {
    Cluster,
    Endpoint,
    Listener,
    Route,
    Secret,
}

/// A gRPC service that serves one type (or, for ADS, every type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcService {
    pub name: &'static str,
    /// The state-of-the-world method.
    pub sotw_method: &'static str,
    /// The incremental (delta) method.
    pub delta_method: &'static str,
}

/// The aggregated service: every type on one stream.
pub const ADS_SERVICE: GrpcService = GrpcService {
    name: "envoy.service.discovery.v3.AggregatedDiscoveryService",
    sotw_method: "StreamAggregatedResources",
    delta_method: "DeltaAggregatedResources",
};

struct TypeInfo {
    message: &'static str,
    short_name: &'static str,
    golden_field: &'static str,
    wildcard_by_default: bool,
    /// The types whose resources name resources of this type.
    referenced_by: &'static [XdsType],
    service: GrpcService,
}

const fn info(xds_type: XdsType) -> TypeInfo {
    match xds_type {
        XdsType::Cluster => TypeInfo {
            message: "envoy.config.cluster.v3.Cluster",
            short_name: "CDS",
            golden_field: "clusters",
            wildcard_by_default: true,
            referenced_by: &[XdsType::Route],
            service: GrpcService {
                name: "envoy.service.cluster.v3.ClusterDiscoveryService",
                sotw_method: "StreamClusters",
                delta_method: "DeltaClusters",
            },
        },
        XdsType::Endpoint => TypeInfo {
            message: "envoy.config.endpoint.v3.ClusterLoadAssignment",
            short_name: "EDS",
            golden_field: "endpoints",
            wildcard_by_default: false,
            referenced_by: &[XdsType::Cluster],
            service: GrpcService {
                name: "envoy.service.endpoint.v3.EndpointDiscoveryService",
                sotw_method: "StreamEndpoints",
                delta_method: "DeltaEndpoints",
            },
        },
        XdsType::Listener => TypeInfo {
            message: "envoy.config.listener.v3.Listener",
            short_name: "LDS",
            golden_field: "listeners",
            wildcard_by_default: true,
            referenced_by: &[],
            service: GrpcService {
                name: "envoy.service.listener.v3.ListenerDiscoveryService",
                sotw_method: "StreamListeners",
                delta_method: "DeltaListeners",
            },
        },
        XdsType::Route => TypeInfo {
            message: "envoy.config.route.v3.RouteConfiguration",
            short_name: "RDS",
            golden_field: "routes",
            wildcard_by_default: false,
            referenced_by: &[XdsType::Listener],
            service: GrpcService {
                name: "envoy.service.route.v3.RouteDiscoveryService",
                sotw_method: "StreamRoutes",
                delta_method: "DeltaRoutes",
            },
        },
        XdsType::Secret => TypeInfo {
            message: "envoy.extensions.transport_sockets.tls.v3.Secret",
            short_name: "SDS",
            golden_field: "secrets",
            wildcard_by_default: false,
            referenced_by: &[XdsType::Cluster, XdsType::Listener],
            service: GrpcService {
                name: "envoy.service.secret.v3.SecretDiscoveryService",
                sotw_method: "StreamSecrets",
                delta_method: "DeltaSecrets",
            },
        },
    }
}

impl XdsType {
    /// Every type, in golden-document order.
    pub const ALL: [XdsType; 5] =
        [XdsType::Cluster, XdsType::Endpoint, XdsType::Listener, XdsType::Route, XdsType::Secret];

    /// Make before break: what a resource refers to goes out before it. Secrets before the
    /// clusters that use them, clusters before their endpoints (Envoy asks for a cluster's
    /// endpoints once it knows the cluster) and before the listeners whose routes name them,
    /// listeners before their route configurations.
    pub const PUSH_ORDER: [XdsType; 5] =
        [XdsType::Secret, XdsType::Cluster, XdsType::Endpoint, XdsType::Listener, XdsType::Route];

    /// Break after make: nothing is removed while something still refers to it. Routes stop
    /// naming clusters first, then listeners go, then clusters, then the endpoints and secrets
    /// those clusters used.
    pub const REMOVAL_ORDER: [XdsType; 5] =
        [XdsType::Route, XdsType::Listener, XdsType::Cluster, XdsType::Endpoint, XdsType::Secret];

    /// Fully qualified protobuf message name.
    pub const fn message_name(self) -> &'static str {
        info(self).message
    }

    pub fn type_url(self) -> &'static str {
        match self {
            XdsType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            XdsType::Endpoint => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            XdsType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            XdsType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            XdsType::Secret => "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    pub fn from_type_url(type_url: &str) -> Option<XdsType> {
        XdsType::ALL.into_iter().find(|t| t.type_url() == type_url)
    }

    /// Short name for logs and metrics (`CDS`, `EDS`, `LDS`, `RDS`, `SDS`).
    pub const fn short_name(self) -> &'static str {
        info(self).short_name
    }

    /// The field of the golden `Snapshot` message holding this type.
    pub const fn golden_field(self) -> &'static str {
        info(self).golden_field
    }

    /// LDS and CDS are wildcard when a client names nothing; the others are asked for by name.
    pub const fn is_wildcard_by_default(self) -> bool {
        info(self).wildcard_by_default
    }

    /// Whether a state-of-the-world response holds the whole set, so that a resource missing from
    /// it is removed (LDS and CDS). For the other types a response names only what it carries, and
    /// only the client's unsubscribing removes a resource.
    pub const fn is_full_state_in_sotw(self) -> bool {
        self.is_wildcard_by_default()
    }

    /// The types whose resources name resources of this type (a cluster's secrets, a route's
    /// clusters...): while one of them may still name a resource, it must not be removed.
    pub const fn referenced_by(self) -> &'static [XdsType] {
        info(self).referenced_by
    }

    /// Whether removals of this type wait for the updates that stop using them (make before
    /// break). Listeners are named by nothing and change in one step.
    pub const fn defers_removals(self) -> bool {
        !self.referenced_by().is_empty()
    }

    /// The per-type gRPC service (ADS serves every type: [`ADS_SERVICE`]).
    pub const fn service(self) -> GrpcService {
        info(self).service
    }

    /// Position in [`Self::PUSH_ORDER`].
    pub fn push_rank(self) -> usize {
        XdsType::PUSH_ORDER.iter().position(|&t| t == self).expect("every type is in PUSH_ORDER")
    }

    /// Position in [`Self::REMOVAL_ORDER`].
    pub fn removal_rank(self) -> usize {
        XdsType::REMOVAL_ORDER.iter().position(|&t| t == self).expect("every type is in REMOVAL_ORDER")
    }

    const fn slot(self) -> usize {
        self as usize
    }
}

/// One value per xDS type, indexed by the type itself (never by a position in some order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerType<T>([T; 5]);

impl<T> PerType<T> {
    pub fn from_fn(mut f: impl FnMut(XdsType) -> T) -> PerType<T> {
        PerType(XdsType::ALL.map(&mut f))
    }

    /// `(type, value)` in golden-document order.
    pub fn iter(&self) -> impl Iterator<Item = (XdsType, &T)> {
        XdsType::ALL.into_iter().map(move |t| (t, &self[t]))
    }
}

impl<T> Index<XdsType> for PerType<T> {
    type Output = T;
    fn index(&self, xds_type: XdsType) -> &T {
        &self.0[xds_type.slot()]
    }
}

impl<T> IndexMut<XdsType> for PerType<T> {
    fn index_mut(&mut self, xds_type: XdsType) -> &mut T {
        &mut self.0[xds_type.slot()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(user, used)` for every reference the table declares.
    fn uses() -> Vec<(XdsType, XdsType)> {
        XdsType::ALL.into_iter().flat_map(|used| used.referenced_by().iter().map(move |&user| (user, used))).collect()
    }

    #[test]
    fn slots_follow_declaration_order() {
        for (slot, xds_type) in XdsType::ALL.into_iter().enumerate() {
            assert_eq!(xds_type.slot(), slot);
        }
        let per_type = PerType::from_fn(XdsType::short_name);
        assert_eq!(per_type.iter().map(|(t, name)| (t.short_name(), *name)).filter(|(a, b)| a != b).count(), 0);
    }

    #[test]
    fn orders_hold_every_type_once() {
        for order in [XdsType::PUSH_ORDER, XdsType::REMOVAL_ORDER] {
            let mut sorted = order.to_vec();
            sorted.sort();
            assert_eq!(sorted, XdsType::ALL);
        }
    }

    #[test]
    fn nothing_is_removed_while_something_refers_to_it() {
        // Listeners name route configurations, but are removed after them: a listener and its
        // routes go together, and the routes stop using clusters first.
        for (user, used) in uses().into_iter().filter(|&(user, _)| user != XdsType::Listener) {
            assert!(user.removal_rank() < used.removal_rank(), "{used:?} is removed before {user:?}");
        }
        assert!(XdsType::Listener.removal_rank() < XdsType::Secret.removal_rank());
        assert!(XdsType::Route.removal_rank() < XdsType::Listener.removal_rank());
        assert!(!XdsType::Listener.defers_removals());
        assert!(XdsType::ALL.iter().filter(|t| **t != XdsType::Listener).all(|t| t.defers_removals()));
    }

    #[test]
    fn used_types_are_pushed_first_except_those_fetched_on_demand() {
        // Envoy asks for a cluster's endpoints (EDS) and a listener's routes (RDS) once it has the
        // cluster or listener: those go after it (Envoy's own CDS, EDS, LDS, RDS order).
        let on_demand = [(XdsType::Cluster, XdsType::Endpoint), (XdsType::Listener, XdsType::Route)];
        for (user, used) in uses().into_iter().filter(|pair| !on_demand.contains(pair)) {
            assert!(used.push_rank() < user.push_rank(), "{used:?} is pushed after {user:?}");
        }
        for (referrer, fetched) in on_demand {
            assert!(referrer.push_rank() < fetched.push_rank(), "{fetched:?} is pushed before {referrer:?}");
        }
        assert!(XdsType::Endpoint.push_rank() < XdsType::Listener.push_rank());
    }

    #[test]
    fn type_urls_round_trip_and_name_the_message() {
        for xds_type in XdsType::ALL {
            assert_eq!(XdsType::from_type_url(xds_type.type_url()), Some(xds_type));
            assert_eq!(xds_type.type_url(), format!("type.googleapis.com/{}", xds_type.message_name()));
        }
        assert_eq!(XdsType::from_type_url("type.googleapis.com/envoy.config.cluster.v3.Nope"), None);
        assert_eq!(XdsType::from_type_url(""), None);
    }

    #[test]
    fn only_listeners_and_clusters_are_wildcard_by_default() {
        let wildcard: Vec<XdsType> = XdsType::ALL.into_iter().filter(|t| t.is_wildcard_by_default()).collect();
        assert_eq!(wildcard, [XdsType::Cluster, XdsType::Listener]);
    }

    #[test]
    fn services_are_distinct_and_named_after_their_type() {
        let mut names: Vec<&str> = XdsType::ALL.iter().map(|t| t.service().name).collect();
        names.push(ADS_SERVICE.name);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 6);
        assert!(XdsType::Secret.service().name.contains(".secret."));
        assert_eq!(XdsType::Endpoint.service().delta_method, "DeltaEndpoints");
    }
}
