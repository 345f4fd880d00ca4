//! Listeners × Hosts → filter chains and their route tables, as Emissary's `V3Listener` builds
//! them:
//! - a listener takes the Hosts its `hostBinding` selects (one per host name: a second Host with
//!   the same name is an error);
//! - on a listener with TLS, each Host with TLS gets a chain matching its SNI, with one virtual
//!   host; every Host also gets a virtual host on the listener's one cleartext chain (unless the
//!   listener is `INSECURE` and the Host rejects insecure requests);
//! - a virtual host holds the routes of the Mappings the Host takes (by host glob and
//!   `mappingSelector`), in route order, each as the listener's security model says: `XFP`
//!   routes `x-forwarded-proto: https` and applies the insecure action to the rest, `SECURE`
//!   routes everything, `INSECURE` applies the insecure action to everything. The insecure
//!   action `Redirect` answers 301 to `https://`, `Reject` leaves the request unrouted (404).

use super::hostglob;
use super::hosts::{EdgeHost, HostTls, InsecureAction};
use super::listeners::{Binding, EdgeListener, SecurityModel};
use super::termination::ResolvedTermination;
use crate::compile::ir::{
    ChainTransport, FilterChain, HostRoute, HttpListener, HttpOptions, Route, RouteTable, RouteVariant, VirtualHost,
};
use crate::diagnostic::{Diagnostic, Kind, ResourceId};
use crate::model::Labels;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Which hosts a route serves: its Mapping's host glob (`None`: every host), whether that host is
/// a regex (then every Host takes it, as in Emissary), and its labels.
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    pub glob: Option<String>,
    pub regex: bool,
    pub labels: &'a Labels,
}

pub struct Inputs<'a, 'r> {
    pub hosts: &'r [EdgeHost<'a>],
    /// In route order, each with its attachment.
    pub routes: &'r [(Arc<Route>, Attachment<'a>)],
    pub terminations: &'r HashMap<ResourceId, Result<ResolvedTermination, String>>,
    /// The Module's connection-manager settings.
    pub http: &'r HttpOptions,
}

#[derive(Debug, Default)]
pub struct Built {
    pub listeners: Vec<HttpListener>,
    pub route_configs: Vec<RouteTable>,
    /// The terminations some served chain uses (their secrets are served).
    pub used_terminations: BTreeSet<ResourceId>,
}

/// Builds every listener. `listeners` are the configured ones; cleartext listeners are added for
/// ports Hosts ask for that none of them binds.
pub fn build(
    mut listeners: Vec<EdgeListener<'_>>,
    inputs: &Inputs<'_, '_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Built {
    let bound: BTreeSet<u16> = listeners.iter().map(|l| l.port).collect();
    let asked: BTreeSet<u16> =
        inputs.hosts.iter().flat_map(|h| [h.additional_port, h.redirect_cleartext_from]).flatten().collect();
    listeners.extend(asked.difference(&bound).map(|&port| EdgeListener::insecure_port(port)));
    listeners.sort_by_key(|l| l.port);

    let mut built = Built::default();
    let mut duplicates = BTreeSet::new();
    let mut bound_hosts = BTreeSet::new();
    // Hosts whose TLS some listener served or reported it could not.
    let mut tls_handled = BTreeSet::new();
    for listener in &listeners {
        let taken = bind(listener, inputs.hosts, &mut duplicates, diagnostics);
        if taken.is_empty() {
            let first = listener.provenance.first();
            let message =
                format!("no Host is bound to this Listener (see `hostBinding`); port {} is not served", listener.port);
            diagnostics.push(Diagnostic::warning(first.map(|p| &p.origin), first.map(|p| &p.resource), message));
            continue;
        }
        bound_hosts.extend(taken.iter().map(|h| h.id().clone()));
        let mut chains = Vec::new();
        if listener.tls {
            for host in taken.iter().filter(|h| h.tls != HostTls::None) {
                tls_handled.insert(host.id().clone());
                chains.extend(tls_chain(listener, host, inputs, &mut built, diagnostics));
            }
        }
        let cleartext: Vec<&EdgeHost> = taken
            .iter()
            .copied()
            .filter(|h| {
                !(listener.security == SecurityModel::Insecure
                    && h.insecure_action(listener.port) == InsecureAction::Reject)
            })
            .collect();
        if !cleartext.is_empty() {
            let route_config = format!("ambassador-routes/{}/http", listener.port);
            let virtual_hosts = cleartext.iter().map(|h| virtual_host(listener, h, inputs.routes)).collect();
            built.route_configs.push(RouteTable { name: route_config.clone(), virtual_hosts });
            chains.push(FilterChain {
                name: "http".into(),
                server_names: Vec::new(),
                transport: ChainTransport::Cleartext,
                route_config,
                provenance: listener.provenance.clone(),
            });
        }
        built.listeners.push(HttpListener {
            name: listener.name.clone(),
            port: listener.port,
            stat_prefix: listener.stat_prefix.clone(),
            provenance: listener.provenance.clone(),
            options: listener.http_options(inputs.http),
            proxy_protocol: listener.proxy_protocol,
            inspects_tls: listener.tls,
            chains,
        });
    }
    for host in inputs.hosts {
        let (origin, id) = (&host.provenance.origin, host.id());
        if duplicates.contains(id) {
            continue;
        }
        if !bound_hosts.contains(id) {
            let message =
                format!("no Listener binds this Host (see their `hostBinding`); {} is not served", host.hostname);
            diagnostics.push(Diagnostic::warning(Some(origin), Some(id), message));
        } else if host.tls != HostTls::None && !tls_handled.contains(id) {
            let message = format!("no Listener with TLS binds this Host; TLS is not served for {}", host.hostname);
            diagnostics.push(Diagnostic::warning(Some(origin), Some(id), message));
        }
    }
    built
}

/// The Hosts `listener` takes, one per host name (the first in host order wins; the others are
/// reported once).
fn bind<'h, 'a>(
    listener: &EdgeListener<'_>,
    hosts: &'h [EdgeHost<'a>],
    duplicates: &mut BTreeSet<ResourceId>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<&'h EdgeHost<'a>> {
    let mut taken: Vec<&EdgeHost> = Vec::new();
    for host in hosts {
        let binds = match &listener.binding {
            Binding::Hosts { namespace, selector } => {
                namespace.is_none_or(|ns| ns == host.namespace) && selector.is_none_or(|s| s.matches(host.labels))
            }
            Binding::InsecurePort => {
                host.additional_port == Some(listener.port) || host.redirect_cleartext_from == Some(listener.port)
            }
        };
        if !binds {
            continue;
        }
        match taken.iter().find(|t| t.hostname.eq_ignore_ascii_case(&host.hostname)) {
            Some(first) => {
                if duplicates.insert(host.id().clone()) {
                    let message = format!(
                        "hostname {} is already served by {}; this one is not served",
                        host.hostname,
                        first.id()
                    );
                    let (origin, id) = (&host.provenance.origin, host.id());
                    diagnostics.push(Diagnostic::error(Some(origin), Some(id), message).with_kind(Kind::Duplicate));
                }
            }
            None => taken.push(host),
        }
    }
    taken
}

fn tls_chain(
    listener: &EdgeListener<'_>,
    host: &EdgeHost<'_>,
    inputs: &Inputs<'_, '_>,
    built: &mut Built,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<FilterChain> {
    let key = match &host.tls {
        HostTls::None => return None,
        HostTls::Terminated(key) => Some(key),
        HostTls::Refused => None,
    };
    let Some(server_names) = hostglob::server_names(&host.hostname) else {
        let message = format!(
            "TLS cannot be served for hostname {}: SNI matches exact names and `*.` wildcards only",
            host.hostname
        );
        diagnostics.push(Diagnostic::error(Some(&host.provenance.origin), Some(host.id()), message));
        return None;
    };
    let name = format!("https/{}", host.hostname.to_ascii_lowercase());
    let mut provenance = vec![host.provenance.clone()];
    let transport = match key.map(|key| (key, &inputs.terminations[key])) {
        Some((key, Ok(termination))) => {
            built.used_terminations.insert(key.clone());
            provenance.extend(termination.secrets.iter().flat_map(|s| s.provenance.iter().cloned()));
            ChainTransport::Tls(termination.tls.clone())
        }
        // Reported where the termination failed.
        Some((_, Err(_))) | None => ChainTransport::Refused,
    };
    provenance.sort();
    provenance.dedup();
    let route_config = format!("ambassador-routes/{}/{name}", listener.port);
    if transport != ChainTransport::Refused {
        let virtual_hosts = vec![virtual_host(listener, host, inputs.routes)];
        built.route_configs.push(RouteTable { name: route_config.clone(), virtual_hosts });
    }
    Some(FilterChain { name, server_names, transport, route_config, provenance })
}

/// Whether `host` takes the route (Emissary's `IRHost.matches_httpgroup`).
fn takes(host: &EdgeHost<'_>, attachment: &Attachment<'_>) -> bool {
    let host_match =
        attachment.regex || hostglob::compatible(&host.hostname, attachment.glob.as_deref().unwrap_or("*"));
    host_match && host.mapping_selector.is_none_or(|selector| selector.matches(attachment.labels))
}

/// The virtual host of `host` on `listener`: its routes as the security model says.
fn virtual_host(
    listener: &EdgeListener<'_>,
    host: &EdgeHost<'_>,
    routes: &[(Arc<Route>, Attachment<'_>)],
) -> VirtualHost {
    let insecure = host.insecure_action(listener.port);
    let https = RouteVariant { x_forwarded_proto: Some(Some("https")), https_redirect: false };
    let any = RouteVariant { x_forwarded_proto: Some(None), https_redirect: false };
    let redirect = RouteVariant { https_redirect: true, ..any };
    let variants: &[RouteVariant] = match (listener.security, insecure) {
        // Both halves would route alike: one route, whatever x-forwarded-proto says.
        (SecurityModel::Xfp, InsecureAction::Route) => &[any],
        (SecurityModel::Xfp, InsecureAction::Redirect) => &[https, redirect],
        (SecurityModel::Xfp, InsecureAction::Reject) => &[https],
        (SecurityModel::Secure, _) | (SecurityModel::Insecure, InsecureAction::Route) => &[RouteVariant::default()],
        (SecurityModel::Insecure, InsecureAction::Redirect) => {
            &[RouteVariant { x_forwarded_proto: None, https_redirect: true }]
        }
        (SecurityModel::Insecure, InsecureAction::Reject) => &[],
    };
    let mut out = Vec::new();
    for (route, _) in routes.iter().filter(|(_, attachment)| takes(host, attachment)) {
        out.extend(variants.iter().map(|&variant| HostRoute { route: route.clone(), variant }));
    }
    let hostname = host.hostname.to_ascii_lowercase();
    VirtualHost { name: hostname.clone(), domains: vec![hostname], routes: out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ir::{
        HeaderMatch, HeaderValueMatch, PathMatch, RouteAction, RouteMatch, X_FORWARDED_PROTO as XFP,
    };
    use crate::diagnostic::{Origin, Provenance};

    fn route(name: &str, xfp_header: bool) -> Arc<Route> {
        let headers = if xfp_header {
            vec![HeaderMatch { name: XFP.into(), value: HeaderValueMatch::Exact("http".into()), ignore_case: false }]
        } else {
            Vec::new()
        };
        Arc::new(Route {
            name: name.into(),
            matcher: RouteMatch {
                path: PathMatch::Prefix("/".into()),
                case_sensitive: true,
                headers,
                query_parameters: Vec::new(),
                runtime_fraction: None,
            },
            action: RouteAction::FailClosed { status: 503, body: String::new() },
            policy: Default::default(),
            provenance: Vec::new(),
        })
    }

    fn host<'a>(labels: &'a Labels, insecure: InsecureAction) -> EdgeHost<'a> {
        EdgeHost {
            provenance: Provenance {
                origin: Origin::file("h.yaml"),
                resource: ResourceId::new("Host", "default", "h"),
            },
            hostname: "A.example.com".into(),
            namespace: "default",
            labels,
            insecure,
            additional_port: None,
            redirect_cleartext_from: Some(8081),
            mapping_selector: None,
            tls: HostTls::None,
        }
    }

    /// Each route of the virtual host as (x-forwarded-proto it needs, redirects?).
    fn shape(security: SecurityModel, insecure: InsecureAction, port: u16) -> Vec<(Option<String>, bool)> {
        let labels = Labels::new();
        let listener = EdgeListener { security, ..EdgeListener::default_http(port) };
        let attachment = Attachment { glob: None, regex: false, labels: &labels };
        let routes = vec![(route("r", true), attachment)];
        let host = host(&labels, insecure);
        let virtual_host = virtual_host(&listener, &host, &routes);
        assert_eq!(virtual_host.domains, ["a.example.com"]);
        virtual_host
            .routes
            .iter()
            .map(HostRoute::resolve)
            .map(|r| {
                let xfp = r.matcher.headers.iter().find(|h| h.name == XFP).map(|h| match &h.value {
                    HeaderValueMatch::Exact(value) => value.clone(),
                    other => format!("{other:?}"),
                });
                (xfp, r.action == RouteAction::HttpsRedirect)
            })
            .collect()
    }

    #[test]
    fn routes_vary_by_security_model_and_insecure_action_as_in_emissary() {
        use InsecureAction::*;
        use SecurityModel::*;
        let https = || Some("https".to_string());
        // XFP: secure requests route; the rest get the insecure action (the Mapping's own
        // x-forwarded-proto matcher is replaced).
        assert_eq!(shape(Xfp, Redirect, 8080), [(https(), false), (None, true)]);
        assert_eq!(shape(Xfp, Route, 8080), [(None, false)]);
        assert_eq!(shape(Xfp, Reject, 8080), [(https(), false)]);
        // SECURE and INSECURE keep the Mapping's matchers and apply one action to everything.
        assert_eq!(shape(Secure, Reject, 8080), [(Some("http".into()), false)]);
        assert_eq!(shape(Insecure, Route, 8080), [(Some("http".into()), false)]);
        assert_eq!(shape(Insecure, Redirect, 8080), [(Some("http".into()), true)]);
        assert!(shape(Insecure, Reject, 8080).is_empty());
        // redirect_cleartext_from: that port redirects whatever the Host says.
        assert_eq!(shape(Xfp, Route, 8081), [(https(), false), (None, true)]);
    }

    #[test]
    fn hosts_take_mappings_by_glob_and_selector() {
        let labels: Labels = [("team".to_string(), "a".to_string())].into();
        let none = Labels::new();
        let selector: crate::model::host::LabelSelector = serde_yaml::from_str("matchLabels: {team: a}").unwrap();
        let mut host = host(&none, InsecureAction::Route);
        let by = |glob: Option<&str>, regex: bool, labels| Attachment { glob: glob.map(str::to_string), regex, labels };
        assert!(takes(&host, &by(None, false, &none)), "a Mapping without a host goes to every Host");
        assert!(takes(&host, &by(Some("*.example.com"), false, &none)));
        assert!(!takes(&host, &by(Some("b.example.com"), false, &none)));
        assert!(takes(&host, &by(Some("^b"), true, &none)), "host_regex: every Host");
        host.mapping_selector = Some(&selector);
        assert!(!takes(&host, &by(None, false, &none)));
        assert!(takes(&host, &by(None, false, &labels)));
        assert!(!takes(&host, &by(Some("b.example.com"), false, &labels)), "both must match");
    }
}
