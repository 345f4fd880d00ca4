//! Which resolver a Mapping uses, and what that makes of its `service`: a DNS cluster
//! (`KubernetesServiceResolver`, the default) or an EDS cluster whose endpoints come from a
//! Kubernetes Service's EndpointSlices or a Consul datacenter.
//!
//! Emissary's rules: resolvers are found by name in any namespace; `kubernetes-service`,
//! `kubernetes-endpoint` (alias `endpoint`) and `consul-endpoint` (alias `consul`, datacenter
//! `dc1`) exist unless defined; a ConsulResolver needs a `datacenter`; a Consul service name has
//! no dots and its `:port` is ignored; `load_balancer` is refused with the Kubernetes service
//! resolver; an IP address is always a DNS cluster.

use super::ir::{Cluster, EdsService};
use super::service::Service;
use crate::diagnostic::{Diagnostic, Provenance};
use crate::model::endpoint::EndpointTarget;
use crate::model::{Resolver, ResolverKind};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// The resolver every Mapping (and TCPMapping) uses unless it, or the Module, names another.
pub const DEFAULT_RESOLVER: &str = "kubernetes-service";
/// Emissary's default datacenter for the implicit `consul` resolver.
const DEFAULT_DATACENTER: &str = "dc1";

/// A resolver a Mapping can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverRef {
    pub name: String,
    pub kind: ResolverKind,
    pub address: Option<String>,
    pub datacenter: String,
    /// The resource, unless it is one of the implicit defaults.
    pub provenance: Option<Provenance>,
}

impl ResolverRef {
    fn implicit(name: &str, kind: ResolverKind) -> ResolverRef {
        ResolverRef {
            name: name.to_string(),
            kind,
            address: None,
            datacenter: DEFAULT_DATACENTER.to_string(),
            provenance: None,
        }
    }

    /// Whether bare service names are qualified with the Mapping's namespace (Kubernetes DNS
    /// needs it; Consul service names have no namespace).
    pub fn qualifies_names(&self) -> bool {
        self.kind != ResolverKind::Consul
    }
}

/// The resolvers of this instance, by name, with Emissary's implicit ones.
pub struct Resolvers {
    by_name: HashMap<String, Vec<Result<ResolverRef, String>>>,
}

/// Pairs of names that stand for each other when only one of them is defined.
const ALIASES: [(&str, &str); 2] = [("endpoint", "kubernetes-endpoint"), ("consul", "consul-endpoint")];
const DEFAULTS: [(&str, ResolverKind); 5] = [
    ("kubernetes-service", ResolverKind::KubernetesService),
    ("kubernetes-endpoint", ResolverKind::KubernetesEndpoint),
    ("endpoint", ResolverKind::KubernetesEndpoint),
    ("consul-endpoint", ResolverKind::Consul),
    ("consul", ResolverKind::Consul),
];

impl Resolvers {
    /// Reports resolvers that cannot be used (a ConsulResolver without a datacenter); Mappings
    /// naming them fail closed.
    pub fn new(resolvers: &[&Resolver], diagnostics: &mut Vec<Diagnostic>) -> Resolvers {
        let mut by_name: HashMap<String, Vec<Result<ResolverRef, String>>> = HashMap::new();
        for resolver in resolvers {
            let (meta, spec) = (&resolver.meta, &resolver.spec);
            let entry = match (spec.kind, spec.datacenter.as_deref().filter(|dc| !dc.is_empty())) {
                (ResolverKind::Consul, None) => {
                    let message = "a ConsulResolver needs a `datacenter`; Mappings using it answer 503";
                    diagnostics.push(Diagnostic::error(Some(&meta.origin), Some(&meta.id), message));
                    Err(format!("{} has no `datacenter`", meta.id))
                }
                (kind, datacenter) => Ok(ResolverRef {
                    name: meta.name().to_string(),
                    kind,
                    address: spec.address.clone().filter(|a| !a.is_empty()),
                    datacenter: datacenter.unwrap_or(DEFAULT_DATACENTER).to_string(),
                    provenance: Some(meta.provenance()),
                }),
            };
            by_name.entry(meta.name().to_string()).or_default().push(entry);
        }
        for (a, b) in ALIASES {
            match (by_name.get(a).cloned(), by_name.get(b).cloned()) {
                (Some(defined), None) => {
                    by_name.insert(b.to_string(), defined);
                }
                (None, Some(defined)) => {
                    by_name.insert(a.to_string(), defined);
                }
                _ => {}
            }
        }
        for (name, kind) in DEFAULTS {
            by_name.entry(name.to_string()).or_insert_with(|| vec![Ok(ResolverRef::implicit(name, kind))]);
        }
        Resolvers { by_name }
    }

    /// The resolver `name` (default `kubernetes-service`), as a Mapping in `namespace` sees it:
    /// one of that name in its own namespace, else the only one of that name.
    pub fn find(&self, name: Option<&str>, namespace: &str) -> Result<ResolverRef, String> {
        let name = name.filter(|n| !n.is_empty()).unwrap_or(DEFAULT_RESOLVER);
        let candidates = self.by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        let in_namespace = |entry: &&Result<ResolverRef, String>| match entry {
            Ok(resolver) => resolver.provenance.as_ref().is_some_and(|p| *p.resource.namespace == *namespace),
            Err(_) => false,
        };
        if let Some(local) = candidates.iter().find(in_namespace) {
            return local.clone();
        }
        match candidates {
            [] => Err(format!("resolver `{name}` is not defined")),
            [only] => only.clone(),
            many => {
                let namespaces: Vec<String> = many
                    .iter()
                    .flatten()
                    .filter_map(|r| r.provenance.as_ref())
                    .map(|p| p.resource.namespace.to_string())
                    .collect();
                Err(format!("resolver `{name}` is ambiguous: it exists in namespaces {}", namespaces.join(", ")))
            }
        }
    }
}

/// Checks a Mapping's service and load balancer against its resolver (Emissary's
/// `valid_mapping`); `Err` drops the Mapping. `Ok` carries a warning to report, if any.
pub fn check_mapping(
    resolver: &ResolverRef,
    service_text: &str,
    service: &Service,
    has_load_balancer: bool,
) -> Result<Option<String>, String> {
    match resolver.kind {
        ResolverKind::KubernetesService if has_load_balancer => Err(format!(
            "`load_balancer` needs endpoint routing, which resolver `{}` (a KubernetesServiceResolver) does not do; use a KubernetesEndpointResolver or a ConsulResolver",
            resolver.name
        )),
        ResolverKind::Consul if service_text.contains('.') => {
            Err(format!("resolver `{}` is a ConsulResolver: Consul service names have no dots", resolver.name))
        }
        ResolverKind::Consul if service.port.is_some() => Ok(Some(format!(
            "resolver `{}` is a ConsulResolver: the port of `{service_text}` is ignored (Consul says where each instance listens)",
            resolver.name
        ))),
        _ => Ok(None),
    }
}

/// Where an upstream's addresses come from: `None` for a DNS cluster, else the EDS target.
/// `tls` picks the default port (443) of Kubernetes targets; `connect` the Consul Connect
/// proxies of the service instead of its instances.
pub fn endpoint_target(
    resolver: &ResolverRef,
    service: &Service,
    tls: bool,
    connect: bool,
    ambassador_namespace: &str,
) -> Option<EndpointTarget> {
    if service.host.parse::<IpAddr>().is_ok() {
        return None;
    }
    match resolver.kind {
        ResolverKind::KubernetesService => None,
        ResolverKind::KubernetesEndpoint => {
            // `svc`, `svc.ns` or `svc.ns.svc.cluster.local`: the first two labels.
            let mut labels = service.host.split('.');
            let name = labels.next().unwrap_or_default().to_string();
            let namespace = labels.next().unwrap_or(ambassador_namespace).to_string();
            Some(EndpointTarget::Kubernetes { namespace, service: name, port: service.port_or_default(tls) })
        }
        ResolverKind::Consul => Some(EndpointTarget::Consul {
            address: resolver.address.clone(),
            datacenter: resolver.datacenter.clone(),
            service: service.host.clone(),
            connect,
        }),
    }
}

/// One [`EdsService`] per EDS name the clusters use, with every cluster's provenance. Two
/// ConsulResolvers of one datacenter with different agent addresses make one EDS name: the
/// first cluster's target is watched, with a warning.
pub fn eds_services(clusters: &[std::sync::Arc<Cluster>], diagnostics: &mut Vec<Diagnostic>) -> Vec<EdsService> {
    let mut services: BTreeMap<String, EdsService> = BTreeMap::new();
    for cluster in clusters {
        let Some(target) = &cluster.eds else { continue };
        let name = target.eds_name();
        match services.get_mut(&name) {
            None => {
                let provenance = cluster.provenance.clone();
                services.insert(name.clone(), EdsService { name, target: target.clone(), provenance });
            }
            Some(service) => {
                if service.target != *target {
                    if let Some(first) = cluster.provenance.first() {
                        let message = format!(
                            "{name} is also watched as {}; this cluster ({}) gets the same endpoints",
                            service.target, cluster.name
                        );
                        diagnostics.push(Diagnostic::warning(Some(&first.origin), Some(&first.resource), message));
                    }
                }
                service.provenance.extend(cluster.provenance.iter().cloned());
            }
        }
    }
    let mut services: Vec<EdsService> = services.into_values().collect();
    for service in &mut services {
        service.provenance.sort();
        service.provenance.dedup();
    }
    services
}
