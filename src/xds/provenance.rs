//! Which Ambassador resources are behind each served xDS resource, so that a NACK from Envoy (or
//! a resource that fails validation) is reported against the file, document and `kind
//! namespace/name` a user can fix.

use super::{PerType, XdsType};
use crate::diagnostic::{Diagnostic, Kind, Provenance};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvenanceIndex {
    by_name: PerType<BTreeMap<String, Vec<Provenance>>>,
    /// Per route configuration and virtual host, the provenance of each route in order: Envoy's
    /// messages name a failing route by its indexes (`VirtualHosts[1]...Routes[3]`).
    routes: BTreeMap<String, Vec<Vec<Vec<Provenance>>>>,
}

impl ProvenanceIndex {
    pub fn insert(&mut self, xds_type: XdsType, name: &str, provenance: Vec<Provenance>) {
        self.by_name[xds_type].entry(name.to_string()).or_default().extend(provenance);
    }

    /// Takes over everything `other` knows.
    pub fn merge(&mut self, other: ProvenanceIndex) {
        for (xds_type, names) in other.by_name.iter() {
            for (name, provenance) in names {
                self.insert(xds_type, name, provenance.clone());
            }
        }
        self.routes.extend(other.routes);
    }

    /// `routes[v][r]`: the resources behind route `r` of virtual host `v`.
    pub fn insert_routes(&mut self, config: &str, routes: Vec<Vec<Vec<Provenance>>>) {
        let mut all: Vec<Provenance> = routes.iter().flatten().flatten().cloned().collect();
        all.sort();
        all.dedup();
        self.insert(XdsType::Route, config, all);
        self.routes.insert(config.to_string(), routes);
    }

    /// The resources behind each route of a route configuration: `[v][r]` for route `r` of
    /// virtual host `v`.
    pub fn routes(&self, config: &str) -> &[Vec<Vec<Provenance>>] {
        self.routes.get(config).map(Vec::as_slice).unwrap_or_default()
    }

    /// The resources behind one xDS resource.
    pub fn of(&self, xds_type: XdsType, name: &str) -> &[Provenance] {
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
                .and_then(|(host, index)| self.routes.get(name)?.get(host)?.get(index));
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

    #[test]
    fn a_nack_naming_a_route_blames_its_mapping_only() {
        let mut index = ProvenanceIndex::default();
        index.insert_routes(
            "ambassador-routes",
            vec![vec![vec![mapping("a")], vec![mapping("b")]], vec![vec![mapping("c")], vec![mapping("a")]]],
        );
        let names = ["ambassador-routes".to_string()];
        let detail = "Proto constraint validation failed (RouteConfigurationValidationError.VirtualHosts[0]: embedded message failed validation | caused by VirtualHostValidationError.Routes[1]: ...)";
        assert_eq!(index.culprits(XdsType::Route, &names, detail), [mapping("b")]);
        let second_host = detail.replace("VirtualHosts[0]", "VirtualHosts[1]").replace("Routes[1]", "Routes[0]");
        assert_eq!(index.culprits(XdsType::Route, &names, &second_host), [mapping("c")]);
        assert_eq!(index.culprits(XdsType::Route, &names, "something else").len(), 3);
        assert!(index.culprits(XdsType::Cluster, &["nope".into()], "").is_empty());
    }
}
