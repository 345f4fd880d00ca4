//! One Mapping → one route candidate: its match, and either a forward to its cluster or, when the
//! TLS it asks for cannot be provided, a fail-closed direct response.

use super::cluster::{ClusterSet, Transport};
use super::ir::{Forward, RouteAction};
use super::order::Candidate;
use super::resolver::Resolvers;
use super::select::ContextLookup;
use super::service::{self, Scheme};
use super::tls::ResolvedContext;
use super::upstream::{upstream, UpstreamError};
use super::{matching, names, Options};
use crate::diagnostic::{Diagnostic, Kind, ResourceId};
use crate::model::mapping::TlsSetting;
use crate::model::Mapping;
use std::collections::{BTreeSet, HashMap};

const DEFAULT_TIMEOUT_MS: u64 = 3000;
const FAIL_CLOSED_STATUS: u32 = 503;
const FAIL_CLOSED_BODY: &str = "upstream TLS is not available for this route\n";
const UNRESOLVED_BODY: &str = "the upstream of this route cannot be resolved or verified\n";

/// `<namespace>/<name>`: the route's name, so golden diffs point at the Mapping.
pub fn route_name(mapping: &Mapping) -> String {
    format!("{}/{}", mapping.meta.namespace(), mapping.meta.name())
}

/// Builds route candidates Mapping by Mapping, collecting the clusters and contexts they use.
pub struct MappingCompiler<'a, 'd> {
    pub options: &'a Options,
    pub contexts: ContextLookup<'a>,
    pub resolvers: &'a Resolvers,
    pub resolved: &'a HashMap<&'a ResourceId, Result<ResolvedContext, String>>,
    pub clusters: ClusterSet,
    pub used_contexts: BTreeSet<&'a ResourceId>,
    pub diagnostics: &'d mut Vec<Diagnostic>,
}

impl<'a> MappingCompiler<'a, '_> {
    fn error(&mut self, mapping: &Mapping, message: String) {
        self.diagnostics.push(Diagnostic::error(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
    }

    fn warning(&mut self, mapping: &Mapping, message: String) {
        self.diagnostics.push(Diagnostic::warning(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
    }

    /// The Mapping's route, or `None` (with a diagnostic) when it cannot be routed at all.
    pub fn candidate(&mut self, mapping: &Mapping) -> Option<Candidate> {
        let spec = &mapping.spec;
        let Some(prefix) = spec.prefix.as_deref() else {
            self.error(mapping, "missing required field `prefix`".into());
            return None;
        };
        let Some(service_text) = spec.service.as_deref() else {
            self.error(mapping, "missing required field `service`".into());
            return None;
        };
        let resolver = self.resolvers.find(spec.resolver.as_deref(), mapping.meta.namespace());
        // Emissary qualifies bare names with the Mapping's namespace only for the Kubernetes
        // resolvers: a Consul service name has no namespace.
        let qualify_in = match &resolver {
            Ok(resolver) if !resolver.qualifies_names() => &self.options.ambassador_namespace,
            _ => mapping.meta.namespace(),
        };
        let service = match service::parse_service(service_text, qualify_in, &self.options.ambassador_namespace) {
            Ok(service) => service,
            Err(err) => {
                self.error(mapping, format!("bad `service: {service_text}`: {err}"));
                return None;
            }
        };
        let (matcher, warnings) = match matching::match_spec(spec, prefix) {
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
        let amb_ns = &self.options.ambassador_namespace;
        let upstream = match upstream(spec, service_text, &service, resolver, &transport, amb_ns) {
            Err(UpstreamError::Invalid(reason)) => {
                self.error(mapping, reason);
                return None;
            }
            Ok((upstream, warning)) => {
                if let Some(warning) = warning {
                    self.warning(mapping, warning);
                }
                Ok(upstream)
            }
            Err(UpstreamError::Unavailable(reason)) => {
                Err((format!("{reason}; the route answers {FAIL_CLOSED_STATUS}"), UNRESOLVED_BODY))
            }
        };
        let upstream = match &transport {
            Transport::Unavailable(reason) => Err((
                format!("{reason}; the route answers {FAIL_CLOSED_STATUS} instead of sending plaintext"),
                FAIL_CLOSED_BODY,
            )),
            _ => upstream,
        };
        let action = match upstream {
            Err((reason, body)) => {
                self.diagnostics.push(
                    Diagnostic::error(Some(&mapping.meta.origin), Some(&mapping.meta.id), reason)
                        .with_kind(Kind::Reference),
                );
                RouteAction::FailClosed { status: FAIL_CLOSED_STATUS, body: body.to_string() }
            }
            Ok(upstream) => RouteAction::Forward(Forward {
                cluster: self.clusters.cluster_for(mapping, &service, &transport, &upstream, self.diagnostics),
                prefix_rewrite: match spec.rewrite.as_deref() {
                    None => Some("/".to_string()),
                    Some("") => None,
                    Some(rewrite) => Some(rewrite.to_string()),
                },
                timeout_ms: spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
                idle_timeout_ms: spec.idle_timeout_ms,
                host_rewrite: spec.host_rewrite.clone(),
                auto_host_rewrite: spec.auto_host_rewrite.unwrap_or(false),
                hash_policy: upstream.balancing.and_then(|b| b.hash),
            }),
        };
        let runtime_key = names::mangle(&format!("fail_closed_{}_{}", mapping.meta.namespace(), mapping.meta.name()));
        let provenance = vec![mapping.meta.provenance()];
        Some(Candidate { name: route_name(mapping), matcher, action, weight: spec.weight, runtime_key, provenance })
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
}
