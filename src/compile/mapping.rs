//! One Mapping → one candidate for its canary group: its match; its role (a route, a shadow, a
//! redirect); its action (a forward to its cluster, a redirect, or — when the TLS it asks for
//! cannot be provided, or it uses a field that is not implemented — a fail-closed answer); and
//! the settings its group shares.

use super::cluster::{ClusterClaim, ClusterRequest, Transport};
use super::cluster_options::{self, ClusterFields};
use super::group::{Candidate, GroupId, Role};
use super::ir::{ErrorResponses, Forward, RouteAction};
use super::module::{self, Settings};
use super::resolver::{ResolverRef, Resolvers};
use super::select::ContextLookup;
use super::service::{self, Scheme, Service};
use super::tls::ResolvedContext;
use super::upstream::{upstream, UpstreamError};
use super::{error_response, group_fields, matching, names, redirect, Options};
use crate::diagnostic::{Diagnostic, Kind, ResourceId};
use crate::model::fields::Support;
use crate::model::mapping::TlsSetting;
use crate::model::Mapping;
use std::collections::{BTreeSet, HashMap};

const FAIL_CLOSED_STATUS: u32 = 503;
const TLS_UNAVAILABLE_BODY: &str = "upstream TLS is not available for this route\n";
const UNRESOLVED_BODY: &str = "the upstream of this route cannot be resolved or verified\n";
const REFUSED_BODY: &str = "this route uses configuration ambassador-xds does not implement\n";

/// `<namespace>/<name>`: the route's name, so golden diffs point at the Mapping.
pub fn route_name(mapping: &Mapping) -> String {
    format!("{}/{}", mapping.meta.namespace(), mapping.meta.name())
}

/// What one Mapping compiled to.
#[derive(Debug, Clone, Default)]
pub struct CompiledMapping {
    /// `None` when the Mapping cannot be routed at all (a diagnostic says why).
    /// Shared, so that its canary group's memo (`group_memo.rs`) can tell it by address.
    pub candidate: Option<std::sync::Arc<Candidate>>,
    /// The cluster its candidate forwards to.
    pub cluster: Option<std::sync::Arc<ClusterClaim>>,
    /// The TLSContext whose secrets its cluster uses.
    pub used_context: Option<ResourceId>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Compiles Mappings one by one; what each one compiles to depends only on the Mapping and on
/// these inputs (which is what lets the Mapping memo, `mapping_memo.rs`, remember it).
pub struct MappingCompiler<'a> {
    pub options: &'a Options,
    pub settings: &'a Settings,
    /// Kinds present in the input that are not translated (`AuthService`, ...).
    pub skipped_kinds: &'a BTreeSet<String>,
    pub contexts: ContextLookup<'a>,
    pub resolvers: &'a Resolvers,
    pub resolved: &'a HashMap<&'a ResourceId, Result<ResolvedContext, String>>,
    /// What the Mapping being compiled has produced so far.
    out: CompiledMapping,
}

impl<'a> MappingCompiler<'a> {
    pub fn new(
        options: &'a Options,
        settings: &'a Settings,
        skipped_kinds: &'a BTreeSet<String>,
        contexts: ContextLookup<'a>,
        resolvers: &'a Resolvers,
        resolved: &'a HashMap<&'a ResourceId, Result<ResolvedContext, String>>,
    ) -> Self {
        MappingCompiler { options, settings, skipped_kinds, contexts, resolvers, resolved, out: Default::default() }
    }

    fn error(&mut self, mapping: &Mapping, message: String) {
        self.out.diagnostics.push(Diagnostic::error(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
    }

    fn warning(&mut self, mapping: &Mapping, message: String) {
        self.out.diagnostics.push(Diagnostic::warning(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
    }

    /// The Mapping's candidate (`None`, with a diagnostic, when it cannot be routed at all), the
    /// cluster and context it uses, and what it reports.
    pub fn compile(&mut self, mapping: &Mapping) -> CompiledMapping {
        self.out = CompiledMapping::default();
        match self.try_candidate(mapping) {
            Ok(candidate) => self.out.candidate = Some(std::sync::Arc::new(candidate)),
            Err(message) => self.error(mapping, message),
        }
        std::mem::take(&mut self.out)
    }

    fn try_candidate(&mut self, mapping: &Mapping) -> Result<Candidate, String> {
        let spec = &mapping.spec;
        let prefix = spec.prefix.as_deref().ok_or("missing required field `prefix`")?;
        let service_text = spec.service.as_deref().ok_or("missing required field `service`")?;
        // A Mapping inherits the Module's resolver unless it names its own; Emissary's probe
        // routes go to the admin endpoint, whatever the Module says.
        let module_resolver = self.settings.resolver.as_deref().filter(|_| !module::is_probe(&mapping.meta));
        let resolver_name = spec.resolver.as_deref().or(module_resolver);
        let resolver = self.resolvers.find(resolver_name, mapping.meta.namespace());
        // Emissary qualifies bare names with the Mapping's namespace only for the Kubernetes
        // resolvers: a Consul service name has no namespace.
        let qualify =
            self.settings.defaults.qualify_services && resolver.as_ref().map_or(true, |r| r.qualifies_names());
        let (service, warning) =
            service::parse_service(service_text, mapping.meta.namespace(), &self.options.ambassador_namespace, qualify)
                .map_err(|err| format!("bad `service: {service_text}`: {err}"))?;
        let (matcher, warnings) = matching::match_spec(spec, prefix)?;
        for warning in warning.into_iter().chain(warnings) {
            self.warning(mapping, warning);
        }
        let role = match (spec.shadow == Some(true), spec.host_redirect == Some(true)) {
            (true, redirect) => {
                if redirect {
                    self.warning(
                        mapping,
                        "both `shadow` and `host_redirect` are set; `shadow` wins, as in Emissary".into(),
                    );
                }
                Role::Shadow
            }
            (false, true) => Role::Redirect,
            (false, false) => Role::Route,
        };
        if role != Role::Redirect {
            for field in redirect::stray_fields(spec) {
                self.warning(
                    mapping,
                    format!("`{field}` has no effect without `host_redirect: true`; ignored, as in Emissary"),
                );
            }
        }
        let shared = group_fields::shared(mapping, &service, self.settings)?;
        let error_responses = match (spec.bypass_error_response_overrides, &spec.error_response_overrides) {
            (Some(true), _) => ErrorResponses::Bypass,
            (_, Some(rules)) => {
                let (rules, problems) = error_response::rules(rules);
                for problem in problems {
                    self.warning(mapping, format!("`error_response_overrides`: {problem}; that rule is skipped"));
                }
                ErrorResponses::Override(rules)
            }
            _ => ErrorResponses::Inherit,
        };
        let core = group_fields::core(mapping, &matcher, self.settings);
        let (matcher_group_id, route_weight) = (GroupId::new(&matcher.group_id()), matcher.weight());

        let mut runtime_key =
            names::mangle(&format!("fail_closed_{}_{}", mapping.meta.namespace(), mapping.meta.name()));
        let action = match self.refusals(mapping) {
            Some(reasons) => {
                let message = format!("{reasons}; the route answers {FAIL_CLOSED_STATUS} until it is implemented");
                self.out.diagnostics.push(
                    Diagnostic::error(Some(&mapping.meta.origin), Some(&mapping.meta.id), message)
                        .with_kind(Kind::Refused),
                );
                fail_closed(REFUSED_BODY)
            }
            None if role == Role::Redirect => {
                let (redirect, warnings) = redirect::redirect(spec, &service);
                for warning in warnings {
                    self.warning(mapping, warning);
                }
                RouteAction::Redirect(redirect)
            }
            None => {
                let action = self.forward(mapping, service_text, &service, resolver, role)?;
                if let RouteAction::Forward(forward) = &action {
                    runtime_key = forward.cluster.clone();
                }
                action
            }
        };
        Ok(Candidate {
            name: route_name(mapping),
            meta: mapping.meta.clone(),
            matcher,
            role,
            action,
            weight: spec.weight,
            runtime_key,
            shared,
            error_responses,
            core,
            group_id: matcher_group_id,
            route_weight,
        })
    }

    /// Why the Mapping may not be served as written, if it may not.
    fn refusals(&mut self, mapping: &Mapping) -> Option<String> {
        let spec = &mapping.spec;
        let mut reasons = Vec::new();
        for field in &spec.unimplemented {
            match field.support {
                Support::IgnoredUnless(kind) if !self.skipped_kinds.contains(kind) => {
                    self.out.diagnostics.push(
                        Diagnostic::warning(
                            Some(&mapping.meta.origin),
                            Some(&mapping.meta.id),
                            format!("field `{}` has no effect while no {kind} is configured; ignored", field.field),
                        )
                        .with_kind(Kind::IgnoredField),
                    );
                }
                Support::IgnoredUnless(kind) => {
                    reasons.push(format!("`{}` needs the {kind}, which ambassador-xds does not translate", field.field))
                }
                _ => reasons.push(format!("`{}` is not implemented", field.field)),
            }
        }
        if let Some(all) = &self.settings.refuse_all {
            reasons.push(format!("the Module's {all}"));
        }
        if self.skipped_kinds.contains("AuthService") && spec.bypass_auth != Some(true) {
            reasons.push("an AuthService is configured, which ambassador-xds does not translate (`bypass_auth: true` serves a Mapping without it)".into());
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// The forward (or fail-closed answer, when TLS or the upstream cannot be provided) to the
    /// Mapping's cluster; `Err` drops the Mapping.
    fn forward(
        &mut self,
        mapping: &Mapping,
        service_text: &str,
        service: &Service,
        resolver: Result<ResolverRef, String>,
        role: Role,
    ) -> Result<RouteAction, String> {
        let spec = &mapping.spec;
        let defaults = &self.settings.defaults;
        let fields = ClusterFields {
            grpc: spec.grpc,
            connect_timeout_ms: spec.connect_timeout_ms,
            idle_timeout_ms: spec.cluster_idle_timeout_ms,
            max_connection_lifetime_ms: spec.cluster_max_connection_lifetime_ms,
            keepalive: spec.keepalive.as_ref(),
            circuit_breakers: spec.circuit_breakers.as_deref(),
            stats_name: spec.stats_name.as_deref(),
            dns_type: spec.dns_type.as_deref(),
            respect_dns_ttl: spec.respect_dns_ttl,
            enable_ipv4: spec.enable_ipv4,
            enable_ipv6: spec.enable_ipv6,
        };
        let (options, breaker_names, warnings) = cluster_options::options(&fields, defaults)?;
        for warning in warnings {
            self.warning(mapping, warning);
        }
        let transport = self.transport(mapping, service.scheme);
        let amb_ns = &self.options.ambassador_namespace;
        let default_balancing = self.settings.load_balancer.as_ref();
        let upstream = match upstream(spec, default_balancing, service_text, service, resolver, &transport, amb_ns) {
            Err(UpstreamError::Invalid(reason)) => return Err(reason),
            Err(UpstreamError::Unavailable(reason)) => Err(reason),
            Ok((upstream, warning)) => {
                if let Some(warning) = warning {
                    self.warning(mapping, warning);
                }
                Ok(upstream)
            }
        };
        let failure = match (&transport, upstream) {
            (Transport::Unavailable(reason), _) => Err((
                format!("{reason}; the route answers {FAIL_CLOSED_STATUS} instead of sending plaintext"),
                TLS_UNAVAILABLE_BODY,
            )),
            (_, Err(reason)) => Err((format!("{reason}; the route answers {FAIL_CLOSED_STATUS}"), UNRESOLVED_BODY)),
            (_, Ok(upstream)) => Ok(upstream),
        };
        let upstream = match failure {
            Ok(upstream) => upstream,
            Err((message, body)) => {
                self.out.diagnostics.push(
                    Diagnostic::error(Some(&mapping.meta.origin), Some(&mapping.meta.id), message)
                        .with_kind(Kind::Reference),
                );
                return Ok(fail_closed(body));
            }
        };
        let marker = match role {
            Role::Shadow => Some("shadow"),
            _ => spec.cluster_tag.as_deref(),
        };
        let request = ClusterRequest {
            owner: &mapping.meta,
            service,
            transport: &transport,
            upstream: Some(&upstream),
            marker,
            host_rewrite: spec.host_rewrite.as_deref(),
            options,
            breaker_names,
        };
        let claim = ClusterClaim::new(request);
        let cluster = claim.identity.clone();
        self.out.cluster = Some(std::sync::Arc::new(claim));
        Ok(RouteAction::Forward(Forward {
            prefix_rewrite: match spec.rewrite.as_deref() {
                None => Some("/".to_string()),
                Some("") => None,
                Some(rewrite) => Some(rewrite.to_string()),
            },
            timeout_ms: spec.timeout_ms.unwrap_or(defaults.timeout_ms),
            idle_timeout_ms: spec.idle_timeout_ms,
            host_rewrite: spec.host_rewrite.clone(),
            auto_host_rewrite: spec.auto_host_rewrite.unwrap_or(false),
            hash_policy: upstream.balancing.and_then(|b| b.hash).map(Box::new),
            ..Forward::to(cluster.to_string())
        }))
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
                        self.out.used_context = Some(ctx.meta.id.clone());
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

fn fail_closed(body: &str) -> RouteAction {
    RouteAction::FailClosed { status: FAIL_CLOSED_STATUS, body: body.to_string() }
}
