//! Ambassador resources → [`ir::Ir`] plus diagnostics. Pure: cert files named by TLSContexts are
//! read by the source layer and handed in as [`TlsFiles`].
//!
//! Rules (DESIGN.md §2): Emissary's semantics for services, cluster names, matching, order and
//! weights; our fixes for TLS: certificates over SDS, default SNI, cert-less origination contexts,
//! one cluster per (service, context), and fail-closed routes when TLS cannot be provided.

pub mod ir;
mod material;
pub mod names;
pub mod routes;
pub mod service;
pub mod tls;

use crate::diagnostic::{self, Diagnostic, Origin, ResourceId};
use crate::model::mapping::TlsSetting;
use crate::model::{Mapping, Meta, Model, Resource, TlsContext};
use ir::{Cluster, Forward, HttpListener, Ir, RouteAction, RouteTable, UpstreamTls};
use routes::Candidate;
use service::Scheme;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tls::{ResolvedContext, SecretIndex};

/// Contents of the files TLSContexts name, keyed by the path as written; `Err` holds why the
/// file could not be read.
pub type TlsFiles = BTreeMap<String, Result<Vec<u8>, String>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Port of the HTTP listener used when no `Listener` resource is given.
    pub listener_port: u16,
    /// Bare service hosts from Mappings in other namespaces get `.<namespace>` appended.
    pub ambassador_namespace: String,
    /// Only resources whose `ambassador_id` names this instance are used.
    pub ambassador_id: String,
}

impl Default for Options {
    fn default() -> Self {
        Options { listener_port: 8080, ambassador_namespace: "default".into(), ambassador_id: "default".into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub ir: Ir,
    /// Sorted by file, document and resource.
    pub diagnostics: Vec<Diagnostic>,
}

/// Name of the one RouteConfiguration every HTTP listener takes over RDS.
pub const ROUTE_CONFIG_NAME: &str = "ambassador-routes";
const DEFAULT_TIMEOUT_MS: u64 = 3000;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3000;
const FAIL_CLOSED_STATUS: u32 = 503;
const FAIL_CLOSED_BODY: &str = "upstream TLS is not available for this route\n";

pub fn listener_name(port: u16) -> String {
    format!("ambassador-listener-0.0.0.0-{port}")
}

pub fn compile(model: &Model, files: &TlsFiles, options: &Options) -> Compiled {
    let mut diagnostics = Vec::new();
    let mappings = unique(select(&model.mappings, options), &mut diagnostics);
    let contexts = unique(select(&model.tls_contexts, options), &mut diagnostics);
    let listeners = unique(select(&model.listeners, options), &mut diagnostics);
    let secrets = unique(model.secrets.iter().collect(), &mut diagnostics);

    let secret_index: SecretIndex<'_> = secrets.iter().map(|s| ((s.meta.namespace(), s.meta.name()), *s)).collect();
    let mut resolved: HashMap<&ResourceId, Result<ResolvedContext, String>> = HashMap::new();
    for ctx in &contexts {
        let result = tls::resolve_context(ctx, &secret_index, files, &mut diagnostics);
        if let Err(reason) = &result {
            diagnostics.push(Diagnostic::error(Some(&ctx.meta.origin), Some(&ctx.meta.id), reason.clone()));
        }
        resolved.insert(&ctx.meta.id, result);
    }

    let mut builder = RouteBuilder {
        options,
        contexts: ContextLookup::new(&contexts),
        resolved: &resolved,
        clusters: BTreeMap::new(),
        used_contexts: BTreeSet::new(),
        diagnostics: &mut diagnostics,
    };
    // Emissary processes Mappings in the order of their `name.namespace` keys; route order ties
    // depend on it, so we do the same.
    let mut ordered = mappings;
    ordered.sort_by_cached_key(|m| format!("{}.{}", m.meta.name(), m.meta.namespace()));
    let mut candidates: Vec<Candidate> = ordered.iter().filter_map(|m| builder.candidate(m)).collect();
    let RouteBuilder { clusters, used_contexts, .. } = builder;

    let envoy_names = names::shorten_cluster_names(clusters.keys().map(String::as_str));
    for candidate in &mut candidates {
        if let RouteAction::Forward(forward) = &mut candidate.action {
            forward.cluster = envoy_names[&forward.cluster].clone();
            candidate.runtime_key = forward.cluster.clone();
        }
    }
    let mut clusters: Vec<Cluster> = clusters
        .into_values()
        .map(|(cluster, _)| Cluster { name: envoy_names[&cluster.name].clone(), ..cluster })
        .collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));

    let origins: HashMap<String, &Meta> = ordered.iter().map(|m| (route_name(m), &m.meta)).collect();
    let (routes, rejected) = routes::order_routes(candidates);
    for group in rejected {
        for member in &group.members {
            let meta = origins[member];
            diagnostics.push(Diagnostic::error(
                Some(&meta.origin),
                Some(&meta.id),
                format!("{}; every Mapping of this canary group is dropped", group.reason),
            ));
        }
    }

    let mut secrets_out: Vec<_> = used_contexts
        .iter()
        .filter_map(|id| resolved.get(id).and_then(|r| r.as_ref().ok()))
        .flat_map(|ctx| ctx.secrets.iter().cloned())
        .collect();
    secrets_out.sort_by(|a, b| a.name.cmp(&b.name));

    let ir = Ir {
        listeners: http_listeners(&listeners, options, &mut diagnostics),
        route_configs: vec![RouteTable { name: ROUTE_CONFIG_NAME.to_string(), routes }],
        clusters,
        secrets: secrets_out,
    };
    diagnostic::normalize(&mut diagnostics);
    Compiled { ir, diagnostics }
}

fn route_name(mapping: &Mapping) -> String {
    format!("{}/{}", mapping.meta.namespace(), mapping.meta.name())
}

fn select<'a, S>(resources: &'a [Resource<S>], options: &Options) -> Vec<&'a Resource<S>> {
    resources.iter().filter(|r| r.meta.belongs_to(&options.ambassador_id)).collect()
}

/// Keeps the first resource of each `Kind namespace/name` (in source order) and reports the rest.
fn unique<'a, S>(resources: Vec<&'a Resource<S>>, diagnostics: &mut Vec<Diagnostic>) -> Vec<&'a Resource<S>> {
    let mut first: HashMap<&ResourceId, &Origin> = HashMap::new();
    let mut kept = Vec::with_capacity(resources.len());
    for resource in resources {
        match first.get(&resource.meta.id) {
            Some(origin) => diagnostics.push(Diagnostic::error(
                Some(&resource.meta.origin),
                Some(&resource.meta.id),
                format!("duplicate name (first defined in {origin}); this one is ignored"),
            )),
            None => {
                first.insert(&resource.meta.id, &resource.meta.origin);
                kept.push(resource);
            }
        }
    }
    kept
}

/// `tls: name` finds a TLSContext in the Mapping's namespace, else the only one of that name in
/// any namespace (Emissary treats context names as global).
struct ContextLookup<'a> {
    by_name: HashMap<&'a str, Vec<&'a TlsContext>>,
}

impl<'a> ContextLookup<'a> {
    fn new(contexts: &[&'a TlsContext]) -> Self {
        let mut by_name: HashMap<&str, Vec<&TlsContext>> = HashMap::new();
        for ctx in contexts {
            by_name.entry(ctx.meta.name()).or_default().push(ctx);
        }
        ContextLookup { by_name }
    }

    fn find(&self, name: &str, namespace: &str) -> Result<&'a TlsContext, String> {
        let candidates = self.by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        if let Some(local) = candidates.iter().find(|ctx| ctx.meta.namespace() == namespace) {
            return Ok(local);
        }
        match candidates {
            [] => Err(format!("TLSContext `{name}` is not defined")),
            [only] => Ok(only),
            many => {
                let namespaces: Vec<&str> = many.iter().map(|ctx| ctx.meta.namespace()).collect();
                Err(format!("TLSContext `{name}` is ambiguous: it exists in namespaces {}", namespaces.join(", ")))
            }
        }
    }
}

/// How a Mapping talks to its upstream.
enum Transport<'a> {
    Plaintext,
    /// `https://` or `tls: true`: TLS without a client certificate.
    Tls,
    Context(&'a TlsContext, &'a ResolvedContext),
    /// TLS was asked for but cannot be provided: the route fails closed.
    Unavailable(String),
}

struct RouteBuilder<'a, 'd> {
    options: &'a Options,
    contexts: ContextLookup<'a>,
    resolved: &'a HashMap<&'a ResourceId, Result<ResolvedContext, String>>,
    /// Full cluster name → (cluster, the Mapping that created it).
    clusters: BTreeMap<String, (Cluster, ResourceId)>,
    used_contexts: BTreeSet<&'a ResourceId>,
    diagnostics: &'d mut Vec<Diagnostic>,
}

impl<'a> RouteBuilder<'a, '_> {
    fn error(&mut self, mapping: &Mapping, message: String) {
        self.diagnostics.push(Diagnostic::error(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
    }

    fn warning(&mut self, mapping: &Mapping, message: String) {
        self.diagnostics.push(Diagnostic::warning(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
    }

    fn candidate(&mut self, mapping: &Mapping) -> Option<Candidate> {
        let spec = &mapping.spec;
        let Some(prefix) = spec.prefix.as_deref() else {
            self.error(mapping, "missing required field `prefix`".into());
            return None;
        };
        let Some(service_text) = spec.service.as_deref() else {
            self.error(mapping, "missing required field `service`".into());
            return None;
        };
        let service =
            match service::parse_service(service_text, mapping.meta.namespace(), &self.options.ambassador_namespace) {
                Ok(service) => service,
                Err(err) => {
                    self.error(mapping, format!("bad `service: {service_text}`: {err}"));
                    return None;
                }
            };
        let (matcher, warnings) = match routes::match_spec(spec, prefix) {
            Ok(matched) => matched,
            Err(err) => {
                self.error(mapping, err);
                return None;
            }
        };
        for warning in warnings {
            self.warning(mapping, warning);
        }

        let transport = self.transport(mapping, service.scheme);
        let action = match &transport {
            Transport::Unavailable(reason) => {
                self.error(
                    mapping,
                    format!("{reason}; the route answers {FAIL_CLOSED_STATUS} instead of sending plaintext"),
                );
                RouteAction::FailClosed { status: FAIL_CLOSED_STATUS, body: FAIL_CLOSED_BODY.to_string() }
            }
            _ => RouteAction::Forward(Forward {
                cluster: self.cluster_for(mapping, &service, &transport),
                prefix_rewrite: match spec.rewrite.as_deref() {
                    None => Some("/".to_string()),
                    Some("") => None,
                    Some(rewrite) => Some(rewrite.to_string()),
                },
                timeout_ms: spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
                idle_timeout_ms: spec.idle_timeout_ms,
                host_rewrite: spec.host_rewrite.clone(),
                auto_host_rewrite: spec.auto_host_rewrite.unwrap_or(false),
            }),
        };
        let runtime_key = names::mangle(&format!("fail_closed_{}_{}", mapping.meta.namespace(), mapping.meta.name()));
        Some(Candidate { name: route_name(mapping), matcher, action, weight: spec.weight, runtime_key })
    }

    fn transport(&mut self, mapping: &Mapping, scheme: Option<Scheme>) -> Transport<'a> {
        match &mapping.spec.tls {
            Some(TlsSetting::Context(name)) => {
                let ctx = match self.contexts.find(name, mapping.meta.namespace()) {
                    Ok(ctx) => ctx,
                    Err(reason) => return Transport::Unavailable(reason),
                };
                if scheme == Some(Scheme::Http) {
                    self.warning(
                        mapping,
                        format!("`service` says http:// but `tls: {name}` asks for TLS; originating TLS"),
                    );
                }
                match &self.resolved[&ctx.meta.id] {
                    Ok(resolved) => {
                        self.used_contexts.insert(&ctx.meta.id);
                        Transport::Context(ctx, resolved)
                    }
                    Err(reason) => Transport::Unavailable(format!("{} is unusable: {reason}", ctx.meta.id)),
                }
            }
            Some(TlsSetting::Enabled(true)) => Transport::Tls,
            _ if scheme == Some(Scheme::Https) => Transport::Tls,
            _ => Transport::Plaintext,
        }
    }

    /// Returns the (full) name of the cluster for this Mapping, creating it on first use.
    fn cluster_for(&mut self, mapping: &Mapping, service: &service::Service, transport: &Transport<'_>) -> String {
        let spec = &mapping.spec;
        let uses_tls = !matches!(transport, Transport::Plaintext);
        let normalized = service.normalized();
        let mut fields = vec![normalized];
        if uses_tls {
            fields.push("otls".into());
            if let Transport::Context(ctx, _) = transport {
                // Unlike Emissary, the context is part of the name even with `https://`, so
                // `https://x` with and without a client certificate are different clusters.
                fields.push(ctx.meta.name().to_string());
            }
            if let Some(host_rewrite) = &spec.host_rewrite {
                fields.push(format!("hr-{host_rewrite}"));
            }
        }
        fields.push(mapping.meta.namespace().to_string());
        let name = names::cluster_name(&fields.iter().map(String::as_str).collect::<Vec<_>>());

        let default_sni = service.is_dns_name().then(|| service.host.clone());
        let tls = match transport {
            Transport::Plaintext | Transport::Unavailable(_) => None,
            Transport::Tls => Some(UpstreamTls { sni: default_sni, ..Default::default() }),
            Transport::Context(_, resolved) => {
                let mut tls = resolved.tls.clone();
                tls.sni = tls.sni.or(default_sni);
                Some(tls)
            }
        };
        let cluster = Cluster {
            name: name.clone(),
            host: service.host.clone(),
            port: service.port_or_default(uses_tls),
            connect_timeout_ms: spec.connect_timeout_ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
            tls,
        };
        match self.clusters.get(&name) {
            None => {
                self.clusters.insert(name.clone(), (cluster, mapping.meta.id.clone()));
            }
            Some((existing, owner)) if existing.connect_timeout_ms != cluster.connect_timeout_ms => {
                let message = format!(
                    "shares cluster {name} with {owner}, whose connect_timeout_ms ({}) is used",
                    existing.connect_timeout_ms
                );
                self.warning(mapping, message);
            }
            Some(_) => {}
        }
        name
    }
}

/// HTTP listeners from `Listener` resources, or the default one on `--listener-port`.
fn http_listeners(
    listeners: &[&crate::model::Listener],
    options: &Options,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<HttpListener> {
    let http = |port: u16| HttpListener {
        name: listener_name(port),
        port,
        stat_prefix: "ingress_http".to_string(),
        route_config: ROUTE_CONFIG_NAME.to_string(),
    };
    if listeners.is_empty() {
        return vec![http(options.listener_port)];
    }
    let mut by_port: BTreeMap<u16, &ResourceId> = BTreeMap::new();
    for listener in listeners {
        let spec = &listener.spec;
        let (origin, id) = (&listener.meta.origin, &listener.meta.id);
        let is_http = match (&spec.protocol, &spec.protocol_stack) {
            (Some(protocol), _) => protocol == "HTTP",
            (None, Some(stack)) => stack.iter().map(String::as_str).eq(["HTTP", "TCP"]),
            (None, None) => false,
        };
        if !is_http {
            let what = spec
                .protocol
                .clone()
                .or_else(|| spec.protocol_stack.as_ref().map(|s| s.join("+")))
                .unwrap_or_else(|| "none".into());
            diagnostics.push(Diagnostic::warning(
                Some(origin),
                Some(id),
                format!("protocol {what} is not supported yet (only HTTP); listener skipped"),
            ));
            continue;
        }
        let Some(port) = spec.port else {
            diagnostics.push(Diagnostic::error(Some(origin), Some(id), "missing required field `spec.port`"));
            continue;
        };
        if let Some(other) = by_port.get(&port) {
            diagnostics.push(Diagnostic::error(
                Some(origin),
                Some(id),
                format!("port {port} is already used by {other}; listener skipped"),
            ));
            continue;
        }
        by_port.insert(port, id);
    }
    by_port.into_keys().map(http).collect()
}
