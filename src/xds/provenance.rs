//! Which Ambassador resources are behind each served xDS resource, so that a NACK from Envoy (or
//! a resource that fails validation) is reported against the file, document and `kind
//! namespace/name` a user can fix.

use super::{PerType, XdsType};
use crate::compile::ir::{self, Cluster, Route};
use crate::diagnostic::{Diagnostic, Kind, Provenance};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProvenanceIndex {
    by_name: PerType<BTreeMap<String, Vec<Provenance>>>,
    /// Served clusters, shared with the compile: there is one per Mapping or so, and a reload
    /// copies none of their provenance.
    clusters: Clusters,
    /// Per route configuration and virtual host, each route in order: Envoy's messages name a
    /// failing route by its indexes (`VirtualHosts[1]...Routes[3]`).
    routes: BTreeMap<String, RouteTable>,
}

/// Worked out from the rest of its struct when first asked for: it follows from that, so it takes
/// no part in comparisons (whether it was asked for yet or not).
#[derive(Debug, Clone, Default)]
struct Derived<T>(OnceLock<T>);

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Derived<T> {}

/// Clusters, and where each is by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Clusters {
    served: Arc<Vec<Arc<Cluster>>>,
    by_name: Derived<foldhash::HashMap<String, usize>>,
}

impl Clusters {
    fn get(&self, name: &str) -> Option<&Cluster> {
        let by_name = self.by_name.0.get_or_init(|| {
            self.served.iter().enumerate().map(|(index, cluster)| (cluster.name.clone(), index)).collect()
        });
        by_name.get(name).map(|index| &*self.served[*index])
    }
}

/// One route configuration as the compile built it, shared (a reload copies no provenance and
/// touches none of its routes), with the routes admission dropped; and everything behind it.
#[derive(Debug, Clone, PartialEq)]
struct RouteTable {
    table: Arc<ir::RouteTable>,
    /// Per virtual host, the places (in `table`) of the routes that are not served (their match
    /// would be rejected): almost always none.
    dropped: Vec<Vec<usize>>,
    all: Derived<Vec<Provenance>>,
}

impl RouteTable {
    /// The routes of virtual host `host` as served.
    fn served(&self, host: usize) -> impl Iterator<Item = &Route> {
        let routes = self.table.virtual_hosts.get(host).map_or(&[][..], |host| &host.routes[..]);
        let dropped = self.dropped.get(host).map_or(&[][..], Vec::as_slice);
        routes.iter().enumerate().filter(move |(at, _)| !dropped.contains(at)).map(|(_, route)| &*route.route)
    }
}

impl ProvenanceIndex {
    pub fn insert(&mut self, xds_type: XdsType, name: &str, provenance: Vec<Provenance>) {
        self.by_name[xds_type].entry(name.to_string()).or_default().extend(provenance);
    }

    /// A served cluster: what is behind it is its provenance.
    pub fn insert_cluster(&mut self, cluster: &Arc<Cluster>) {
        Arc::make_mut(&mut self.clusters.served).push(cluster.clone());
        self.clusters.by_name = Derived::default();
    }

    /// The served clusters, all at once (an index that knows none yet).
    pub fn set_clusters(&mut self, served: Arc<Vec<Arc<Cluster>>>) {
        debug_assert!(self.clusters.served.is_empty());
        self.clusters = Clusters { served, by_name: Derived::default() };
    }

    /// Takes over everything `other` knows.
    pub fn merge(&mut self, other: ProvenanceIndex) {
        for (xds_type, names) in other.by_name.iter() {
            for (name, provenance) in names {
                self.insert(xds_type, name, provenance.clone());
            }
        }
        for cluster in other.clusters.served.iter() {
            self.insert_cluster(cluster);
        }
        self.routes.extend(other.routes);
    }

    /// A route configuration as compiled; `dropped[v]` are the places of the routes of virtual
    /// host `v` that are not served.
    pub fn insert_routes(&mut self, table: &Arc<ir::RouteTable>, dropped: Vec<Vec<usize>>) {
        let served = RouteTable { table: table.clone(), dropped, all: Derived::default() };
        self.routes.insert(table.name.clone(), served);
    }

    /// The resources behind route `route` of virtual host `host` of a route configuration, as
    /// served.
    pub fn route(&self, config: &str, host: usize, route: usize) -> Option<&[Provenance]> {
        Some(&self.routes.get(config)?.served(host).nth(route)?.provenance)
    }

    /// The resources behind one xDS resource.
    pub fn of(&self, xds_type: XdsType, name: &str) -> &[Provenance] {
        if let Some(table) = self.routes.get(name).filter(|_| xds_type == XdsType::Route) {
            return table.all.0.get_or_init(|| {
                let hosts = 0..table.table.virtual_hosts.len();
                let mut all: Vec<Provenance> = hosts
                    .flat_map(|host| table.served(host))
                    .flat_map(|route| route.provenance.iter().cloned())
                    .collect();
                all.sort();
                all.dedup();
                all
            });
        }
        if let Some(cluster) = self.clusters.get(name).filter(|_| xds_type == XdsType::Cluster) {
            return &cluster.provenance;
        }
        self.by_name[xds_type].get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// The resources to blame for a rejection of `names` (of `xds_type`) with Envoy's
    /// `error_detail`: for a route configuration, only the route the message points at when it
    /// names one (`...VirtualHosts[0]...Routes[3]...`), else everything behind those names.
    pub fn culprits(&self, xds_type: XdsType, names: &[String], error_detail: &str) -> Vec<Provenance> {
        let mut out: Vec<Provenance> = Vec::new();
        for name in names {
            let pointed = (xds_type == XdsType::Route)
                .then(|| route_index(error_detail))
                .flatten()
                .and_then(|(host, index)| self.route(name, host, index));
            match pointed {
                Some(route) => out.extend(route.iter().cloned()),
                None => out.extend(self.of(xds_type, name).iter().cloned()),
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// `(virtual host, route)` from `VirtualHosts[V]...Routes[R]` (Envoy's PGV messages; the
/// lowercase spellings too) in an error detail; a detail without the host index names host 0.
fn route_index(detail: &str) -> Option<(usize, usize)> {
    let index_after = |text: &str, upper: &str, lower: &str| -> Option<(usize, usize)> {
        let at = text.find(upper).or_else(|| text.find(lower))?;
        let rest = &text[at + upper.len()..];
        Some((rest[..rest.find(']')?].parse().ok()?, at + upper.len()))
    };
    let (host, after) = index_after(detail, "VirtualHosts[", "virtual_hosts[").unwrap_or((0, 0));
    let (route, _) = index_after(&detail[after..], "Routes[", "routes[")?;
    Some((host, route))
}

/// A [`Kind::Rejected`] error on the Ambassador resource first behind a resource that is not
/// served as built.
pub(super) fn report(diagnostics: &mut Vec<Diagnostic>, provenance: &[Provenance], message: String) {
    let first = provenance.first();
    diagnostics.push(
        Diagnostic::error(first.map(|p| &p.origin), first.map(|p| &p.resource), message).with_kind(Kind::Rejected),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::{Origin, ResourceId};

    fn mapping(name: &str) -> Provenance {
        Provenance { origin: Origin::file("m.yaml"), resource: ResourceId::new("Mapping", "default", name) }
    }

    /// A route that only carries what is behind it.
    fn behind(mapping: Provenance) -> ir::HostRoute {
        use crate::compile::ir::{PathMatch, RouteAction, RouteMatch};
        ir::HostRoute::as_written(Arc::new(Route {
            name: mapping.resource.name.to_string(),
            matcher: RouteMatch {
                path: PathMatch::Prefix("/".into()),
                case_sensitive: true,
                headers: Vec::new(),
                query_parameters: Vec::new(),
                runtime_fraction: None,
            },
            action: RouteAction::HttpsRedirect,
            policy: Default::default(),
            provenance: vec![mapping],
        }))
    }

    fn table(hosts: Vec<Vec<ir::HostRoute>>) -> Arc<ir::RouteTable> {
        let virtual_hosts = hosts
            .into_iter()
            .enumerate()
            .map(|(at, routes)| ir::VirtualHost { name: format!("host-{at}"), domains: vec!["*".into()], routes })
            .collect();
        Arc::new(ir::RouteTable { name: "ambassador-routes".into(), virtual_hosts })
    }

    #[test]
    fn a_nack_naming_a_route_blames_its_mapping_only() {
        let mut index = ProvenanceIndex::default();
        // The second host's first route (d) is not served: Envoy's indexes skip it.
        let routes = table(vec![
            vec![behind(mapping("a")), behind(mapping("b"))],
            vec![behind(mapping("d")), behind(mapping("c")), behind(mapping("a"))],
        ]);
        index.insert_routes(&routes, vec![vec![], vec![0]]);
        // What is worked out when asked for takes no part in equality: a reload compares indexes
        // to know whether the same resources come from other files now.
        let untouched = index.clone();
        let names = ["ambassador-routes".to_string()];
        let detail = "Proto constraint validation failed (RouteConfigurationValidationError.VirtualHosts[0]: embedded message failed validation | caused by VirtualHostValidationError.Routes[1]: ...)";
        assert_eq!(index.culprits(XdsType::Route, &names, detail), [mapping("b")]);
        let second_host = detail.replace("VirtualHosts[0]", "VirtualHosts[1]").replace("Routes[1]", "Routes[0]");
        assert_eq!(index.culprits(XdsType::Route, &names, &second_host), [mapping("c")]);
        assert_eq!(index.culprits(XdsType::Route, &names, "something else").len(), 3);
        assert_eq!(index.of(XdsType::Route, "ambassador-routes"), [mapping("a"), mapping("b"), mapping("c")]);
        assert_eq!(index.route("ambassador-routes", 1, 1), Some(&[mapping("a")][..]));
        assert_eq!(index, untouched);
        assert!(index.culprits(XdsType::Cluster, &["nope".into()], "").is_empty());
    }
}
