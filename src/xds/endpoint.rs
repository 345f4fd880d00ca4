//! `ClusterLoadAssignment`s: the endpoints of every EDS cluster, one assignment per EDS name,
//! always sent (empty while nothing is known), so that no cluster waits for its endpoints until
//! Envoy's `initial_fetch_timeout` and no delta client is told its assignment does not exist.
//!
//! Built from the compiled [`EdsService`]s and the endpoint sources' [`EndpointTable`] alone:
//! when only endpoints change, this is all that is rebuilt.

use super::provenance::ProvenanceIndex;
use super::validate::{self, Limits};
use super::{Resource, XdsType};
use crate::compile::ir::EdsService;
use crate::diagnostic::Provenance;
use crate::diagnostic::{Diagnostic, Kind};
use crate::model::endpoint::{Endpoint, EndpointTable, TargetEndpoints};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use std::collections::HashMap;

/// The assignments, what was wrong with them, and who asked for each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdmittedEndpoints {
    /// Sorted by name.
    pub resources: Vec<Resource>,
    pub diagnostics: Vec<Diagnostic>,
    pub provenance: ProvenanceIndex,
}

pub fn build_assignment(name: &str, endpoints: &[Endpoint]) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = endpoints
        .iter()
        .map(|endpoint| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: endpoint.address.clone(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(endpoint.port.into())),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints { lb_endpoints, ..Default::default() }]
        },
        ..Default::default()
    }
}

/// The assignments built last time, by EDS name, with what they were built from: when a few
/// of a thousand services change, only those are built and validated again.
#[derive(Debug, Default)]
pub struct AssignmentCache {
    built: HashMap<String, Built>,
}

#[derive(Debug)]
struct Built {
    from: (Option<TargetEndpoints>, Vec<Provenance>),
    resource: Resource,
    diagnostics: Vec<Diagnostic>,
}

/// Every service's assignment from what `table` knows. An endpoint Envoy would refuse is left
/// out (with a diagnostic), never the whole assignment.
pub fn admit_endpoints(services: &[EdsService], table: &EndpointTable, limits: &Limits) -> AdmittedEndpoints {
    admit_endpoints_cached(services, table, limits, &mut AssignmentCache::default())
}

/// [`admit_endpoints`], reusing what `cache` built from the same inputs (and keeping there what
/// it builds now).
pub fn admit_endpoints_cached(
    services: &[EdsService],
    table: &EndpointTable,
    limits: &Limits,
    cache: &mut AssignmentCache,
) -> AdmittedEndpoints {
    let mut out = AdmittedEndpoints::default();
    let mut built = HashMap::with_capacity(services.len());
    for service in services {
        let from = (table.get(&service.target).cloned(), service.provenance.clone());
        let entry = match cache.built.remove(&service.name) {
            Some(entry) if entry.from == from => entry,
            _ => {
                let (resource, diagnostics) = build_one(service, from.0.as_ref(), limits);
                Built { from, resource, diagnostics }
            }
        };
        out.provenance.insert(XdsType::Endpoint, &service.name, service.provenance.clone());
        out.resources.push(entry.resource.clone());
        out.diagnostics.extend(entry.diagnostics.iter().cloned());
        built.insert(service.name.clone(), entry);
    }
    cache.built = built;
    out.resources.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// One service's assignment and its problems. The whole assignment is validated at once (the
/// common case costs one validation, not one per endpoint).
fn build_one(service: &EdsService, known: Option<&TargetEndpoints>, limits: &Limits) -> (Resource, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let endpoints = known.map(|k| k.endpoints.as_slice()).unwrap_or_default();
    let all_ips = endpoints.iter().all(|e| e.address.parse::<std::net::IpAddr>().is_ok());
    let whole = build_assignment(&service.name, endpoints);
    if let Some(problem) = known.and_then(|k| k.problem.as_ref()) {
        let blame = service.provenance.first();
        let (origin, resource) = (blame.map(|p| &p.origin), blame.map(|p| &p.resource));
        let message = format!(
            "endpoints of {} ({}): {problem}; the last {} known endpoint(s) stay in service",
            service.target,
            service.name,
            endpoints.len()
        );
        diagnostics.push(Diagnostic::warning(origin, resource, message).with_kind(Kind::Endpoints));
    }
    if all_ips && validate::check(&whole, limits).is_ok() {
        return (Resource::encode(&service.name, &whole), diagnostics);
    }
    // Only now is each endpoint checked on its own, to leave out just the bad ones.
    let blame = service.provenance.first();
    let (origin, resource) = (blame.map(|p| &p.origin), blame.map(|p| &p.resource));
    let mut kept: Vec<Endpoint> = Vec::new();
    for endpoint in endpoints {
        // Envoy resolves no names in EDS: an address that is not an IP fails the whole update.
        let verdict = match endpoint.address.parse::<std::net::IpAddr>() {
            Err(_) => Err("not an IP address (EDS endpoints must be)".to_string()),
            Ok(_) => validate::check(&build_assignment(&service.name, std::slice::from_ref(endpoint)), limits),
        };
        match verdict {
            Ok(()) => kept.push(endpoint.clone()),
            Err(problem) => {
                let message = format!(
                    "endpoint {}:{} of {} is not served: {problem}",
                    endpoint.address, endpoint.port, service.name
                );
                diagnostics.push(Diagnostic::error(origin, resource, message).with_kind(Kind::Rejected));
            }
        }
    }
    (Resource::encode(&service.name, &build_assignment(&service.name, &kept)), diagnostics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::endpoint::{EndpointTarget, TargetEndpoints};

    fn service(name: &str) -> EdsService {
        let target =
            EndpointTarget::Consul { address: None, datacenter: "dc1".into(), service: name.into(), connect: false };
        EdsService { name: target.eds_name(), target, provenance: Vec::new() }
    }

    #[test]
    fn every_service_gets_an_assignment_even_when_nothing_is_known() {
        let (web, api) = (service("web"), service("api"));
        let mut table = EndpointTable::new();
        let endpoints = vec![
            Endpoint { address: "10.0.0.1".into(), port: 8080 },
            Endpoint { address: "not an address".into(), port: 8080 },
        ];
        table.insert(web.target.clone(), TargetEndpoints { endpoints, problem: Some("503 from the agent".into()) });
        let admitted = admit_endpoints(&[web, api], &table, &Limits::default());
        let names: Vec<&str> = admitted.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["consul/dc1/api", "consul/dc1/web"]);
        let web: ClusterLoadAssignment = admitted.resources[1].decode();
        assert_eq!(web.endpoints[0].lb_endpoints.len(), 1, "the bad address is left out");
        let api: ClusterLoadAssignment = admitted.resources[0].decode();
        assert!(api.endpoints.is_empty());
        let kinds: Vec<Kind> = admitted.diagnostics.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, [Kind::Endpoints, Kind::Rejected]);
    }

    #[test]
    fn the_cache_rebuilds_only_what_changed_and_forgets_what_is_gone() {
        let (web, api) = (service("web"), service("api"));
        let one = |address: &str| TargetEndpoints {
            endpoints: vec![Endpoint { address: address.into(), port: 80 }],
            problem: None,
        };
        let mut table = EndpointTable::new();
        table.insert(web.target.clone(), one("10.0.0.1"));
        table.insert(api.target.clone(), one("10.0.0.2"));
        let mut cache = AssignmentCache::default();
        let services = [web.clone(), api.clone()];
        let first = admit_endpoints_cached(&services, &table, &Limits::default(), &mut cache);
        table.insert(web.target.clone(), one("10.0.0.3"));
        let second = admit_endpoints_cached(&services, &table, &Limits::default(), &mut cache);
        assert_eq!(first.resources[0], second.resources[0], "api is unchanged");
        assert_ne!(first.resources[1], second.resources[1], "web is rebuilt");
        assert_eq!(
            second.resources[1],
            Resource::encode(&web.name, &build_assignment(&web.name, &table[&web.target].endpoints))
        );
        admit_endpoints_cached(&services[..1], &table, &Limits::default(), &mut cache);
        assert_eq!(cache.built.keys().collect::<Vec<_>>(), [&web.name], "api's entry is dropped with api");
    }
}
