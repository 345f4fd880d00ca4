//! The edge: what Envoy listens on and how it terminates TLS. `Listener`s (or the default HTTP
//! listener), `Host`s (or the names of TLSContexts with `hosts`), and the routes of the Mappings
//! become listeners with filter chains, and one route table per chain.
//!
//! With no Host (and no TLSContext with `hosts`), every listener has one cleartext chain on the
//! route table `ambassador-routes`, whose one virtual host matches every host: every Mapping is
//! served everywhere, as before Hosts existed (Emissary's default Host `*`, insecure `Route`).

mod chains;
mod hostglob;
mod hosts;
mod listeners;
pub mod termination;

use super::host;
use super::ir::{
    ChainTransport, FilterChain, HostRoute, HttpListener, HttpOptions, Route, RouteTable, TlsSecret, VirtualHost,
};
use super::mapping::CompiledMapping;
use super::select::ContextLookup;
use super::tls::{self, Unusable};
use super::{Options, ROUTE_CONFIG_NAME};
use crate::diagnostic::{Diagnostic, Kind, Provenance, ResourceId};
use crate::model::{Host, Listener, Mapping, TlsContext};
use chains::Attachment;
use hosts::{EdgeHost, HostTls};
use listeners::EdgeListener;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use termination::{ResolvedTermination, Source};

/// The one virtual host of `ambassador-routes`.
pub const ALL_HOSTS_VIRTUAL_HOST: &str = "ambassador-all-hosts";

pub fn listener_name(port: u16) -> String {
    format!("ambassador-listener-0.0.0.0-{port}")
}

pub struct Inputs<'a, 'r> {
    pub listeners: &'r [&'a Listener],
    pub hosts: &'r [&'a Host],
    pub contexts: &'r [&'a TlsContext],
    /// The `host`s of TCPMappings: TLSContext `hosts` they terminate are not HTTP hosts.
    pub tcp_hosts: &'r BTreeSet<&'a str>,
    pub lookup: &'r ContextLookup<'a>,
    pub tls: &'r tls::Inputs<'r>,
    /// Terminations of the last reload, by owner (TLSContext or Host).
    pub last_terminations: &'r HashMap<ResourceId, ResolvedTermination>,
    pub options: &'r Options,
}

/// The Listeners and Hosts, read, with their TLS resolved: what is known before the routes are.
pub struct Prepared<'a> {
    listeners: Vec<EdgeListener<'a>>,
    hosts: Vec<EdgeHost<'a>>,
    resolved: HashMap<ResourceId, Result<ResolvedTermination, String>>,
}

impl Prepared<'_> {
    /// The ports HTTP listeners may hold: the Listeners', and the cleartext ports Hosts ask for.
    pub fn ports(&self) -> BTreeSet<u16> {
        let mut ports: BTreeSet<u16> = self.listeners.iter().map(|l| l.port).collect();
        if !self.hosts.is_empty() {
            ports.extend(self.hosts.iter().flat_map(|h| [h.additional_port, h.redirect_cleartext_from]).flatten());
        }
        ports
    }
}

#[derive(Debug, Default)]
pub struct Edge {
    pub listeners: Vec<HttpListener>,
    pub route_configs: Vec<RouteTable>,
    /// The SDS secrets of the terminations in use.
    pub secrets: Vec<TlsSecret>,
    /// Every termination resolved now (or its last good resolution), by owner.
    pub terminations: HashMap<ResourceId, ResolvedTermination>,
}

/// Reads the Listeners and Hosts and resolves the TLS Hosts terminate with.
pub fn prepare<'a>(
    inputs: &Inputs<'a, '_>,
    diagnostics: &mut Vec<Diagnostic>,
    rejected: &mut BTreeSet<ResourceId>,
) -> Prepared<'a> {
    let listeners = listeners::listeners(inputs.listeners, inputs.options.listener_port, diagnostics, rejected);
    let mut terminations = Terminations {
        inputs: inputs.tls,
        last: inputs.last_terminations,
        resolved: HashMap::new(),
        diagnostics: &mut *diagnostics,
    };
    let hosts =
        hosts::edge_hosts(inputs.hosts, inputs.contexts, inputs.tcp_hosts, inputs.lookup, &mut terminations, rejected);
    let resolved = terminations.resolved.into_iter().map(|(id, (_, result))| (id, result)).collect();
    Prepared { listeners, hosts, resolved }
}

/// The Mappings behind routes, by route name. Only Hosts (and refused canary groups) ask, so the
/// index is built when first asked for, not on every reload of a configuration without Hosts
/// (nor even the list it is built from: reading every Mapping's candidate for it was a
/// twenty-fifth of a one-Mapping reload at 50,000 Mappings).
pub struct Origins<'a> {
    /// Each Mapping with what it compiled to, side by side.
    mappings: &'a [&'a Mapping],
    compiled: &'a [Arc<CompiledMapping>],
    by_name: std::cell::OnceCell<foldhash::HashMap<&'a str, &'a Mapping>>,
}

impl<'a> Origins<'a> {
    pub fn new(mappings: &'a [&'a Mapping], compiled: &'a [Arc<CompiledMapping>]) -> Self {
        Origins { mappings, compiled, by_name: std::cell::OnceCell::new() }
    }

    /// The Mapping behind the route named `route` (every route has one: each candidate is named
    /// for its route when its Mapping compiles).
    pub fn of(&self, route: &str) -> &'a Mapping {
        self.by_name.get_or_init(|| {
            let named = self.mappings.iter().zip(self.compiled);
            named
                .filter_map(|(mapping, compiled)| Some((compiled.candidate.as_ref()?.name.as_str(), *mapping)))
                .collect()
        })[route]
    }
}

/// Builds the edge for `routes` (in route order), whose Mappings `mappings` holds by route name;
/// every HTTP connection manager gets the Module's settings `http`.
pub fn build(
    prepared: Prepared<'_>,
    http: &HttpOptions,
    routes: Vec<Arc<Route>>,
    mappings: &Origins<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Edge {
    let Prepared { listeners, hosts, resolved } = prepared;
    let mut edge = Edge {
        terminations: resolved.iter().filter_map(|(id, r)| Some((id.clone(), r.as_ref().ok()?.clone()))).collect(),
        ..Edge::default()
    };
    if hosts.is_empty() {
        edge.listeners = listeners.iter().map(|l| everything_listener(l, http)).collect();
        let routes = routes.into_iter().map(HostRoute::as_written).collect();
        let virtual_host = VirtualHost { name: ALL_HOSTS_VIRTUAL_HOST.into(), domains: vec!["*".into()], routes };
        edge.route_configs = vec![RouteTable { name: ROUTE_CONFIG_NAME.into(), virtual_hosts: vec![virtual_host] }];
        return edge;
    }
    let routes: Vec<(Arc<Route>, Attachment)> = routes
        .into_iter()
        .map(|route| {
            let attachment = attachment(mappings.of(&route.name));
            (route, attachment)
        })
        .collect();
    let chain_inputs = chains::Inputs { hosts: &hosts, routes: &routes, terminations: &resolved, http };
    let built = chains::build(listeners, &chain_inputs, diagnostics);
    edge.listeners = built.listeners;
    edge.route_configs = built.route_configs;
    edge.secrets = built
        .used_terminations
        .iter()
        .filter_map(|id| edge.terminations.get(id))
        .flat_map(|t| t.secrets.iter().cloned())
        .collect();
    edge
}

/// A listener without Hosts: one cleartext chain taking `ambassador-routes`.
fn everything_listener(listener: &EdgeListener<'_>, http: &HttpOptions) -> HttpListener {
    HttpListener {
        name: listener.name.clone(),
        port: listener.port,
        stat_prefix: listener.stat_prefix.clone(),
        provenance: listener.provenance.clone(),
        options: listener.http_options(http),
        proxy_protocol: listener.proxy_protocol,
        inspects_tls: listener.tls,
        chains: vec![FilterChain {
            name: String::new(),
            server_names: Vec::new(),
            transport: ChainTransport::Cleartext,
            route_config: ROUTE_CONFIG_NAME.into(),
            provenance: Vec::new(),
        }],
    }
}

/// Which hosts a Mapping's route serves: its host as written (`hostname` glob, `host`, an exact
/// `:authority`; without a port, as Hosts' names are), or every host when it names none.
fn attachment<'a>(mapping: &'a Mapping) -> Attachment<'a> {
    let written = host::host(&mapping.spec, &mut Vec::new()).ok().flatten();
    Attachment {
        regex: written.as_ref().is_some_and(|h| h.regex),
        glob: written.map(|h| if h.regex { h.written } else { host::strip_port(&h.written).to_string() }),
        labels: &mapping.meta.labels,
    }
}

/// Terminations, resolved once per owner (a TLSContext several Hosts use is one termination),
/// falling back to the owner's last good resolution while its material is unusable for now.
pub struct Terminations<'i, 'd> {
    inputs: &'i tls::Inputs<'i>,
    last: &'i HashMap<ResourceId, ResolvedTermination>,
    /// By owner: where its certificate came from, and the outcome.
    resolved: HashMap<ResourceId, (String, Result<ResolvedTermination, String>)>,
    pub diagnostics: &'d mut Vec<Diagnostic>,
}

impl Terminations<'_, '_> {
    pub fn secret_namespaces(&self) -> &crate::compile::SecretNamespaces {
        self.inputs.secret_namespaces
    }

    /// The TLS of a host that terminates with `source`; `host` is reported against when it is
    /// not the owner and the termination cannot be served.
    pub fn terminate(&mut self, source: Source<'_>, host: &Provenance) -> HostTls {
        let owner = source.owner.resource.clone();
        let certificate = format!("{:?}", source.certificate);
        if !self.resolved.contains_key(&owner) {
            let result = self.resolve(&source);
            self.resolved.insert(owner.clone(), (certificate.clone(), result));
        }
        let (seen, result) = &self.resolved[&owner];
        let problem = if *seen != certificate {
            Some(format!("{owner} already terminates TLS for another Host with another certificate"))
        } else {
            result
                .as_ref()
                .err()
                .filter(|_| host.resource != owner)
                .map(|reason| format!("{owner} is unusable: {reason}"))
        };
        match (problem, result) {
            (Some(problem), _) => {
                let message = format!("{problem}; TLS for this Host is refused");
                self.diagnostics.push(
                    Diagnostic::error(Some(&host.origin), Some(&host.resource), message).with_kind(Kind::Reference),
                );
                HostTls::Refused
            }
            (None, Ok(_)) => HostTls::Terminated(owner),
            (None, Err(_)) => HostTls::Refused,
        }
    }

    fn resolve(&mut self, source: &Source<'_>) -> Result<ResolvedTermination, String> {
        let (origin, id) = (&source.owner.origin, &source.owner.resource);
        let unusable: Unusable = match termination::resolve(source, self.inputs, self.diagnostics) {
            Ok(resolved) => return Ok(resolved),
            Err(unusable) => unusable,
        };
        let message = format!("{}; TLS connections for its hosts are refused", unusable.message);
        match self.last.get(id).filter(|_| unusable.is_transient()) {
            Some(previous) => {
                self.diagnostics
                    .push(Diagnostic::error(Some(origin), Some(id), &unusable.message).with_kind(unusable.kind));
                let message =
                    "serving this TLS termination's last good certificate and CA until its material is usable again";
                self.diagnostics.push(Diagnostic::warning(Some(origin), Some(id), message).with_kind(Kind::Stale));
                Ok(previous.clone())
            }
            None => {
                self.diagnostics.push(Diagnostic::error(Some(origin), Some(id), message).with_kind(unusable.kind));
                Err(unusable.message)
            }
        }
    }
}
