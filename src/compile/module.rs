//! The `ambassador` Module: the listener settings and the defaults it gives every Mapping, the
//! probe routes Emissary adds (`/ambassador/v0/check_alive`, `check_ready`), and what it asks
//! for that is not implemented (refused: the routes it would change fail closed).

use super::balancing::{balancing, Balancing};
use super::ir::{ClientCertDetails, ErrorResponseRule, ForwardClientCert, HttpOptions, Keepalive, RetryPolicy};
use super::{error_response, policy, Options};
use crate::diagnostic::{Diagnostic, Kind, Origin, ResourceId};
use crate::model::fields::Support;
use crate::model::mapping::MappingSpec;
use crate::model::module::{MappingDefaults, Probe};
use crate::model::policy::{CircuitBreakerSpec, CorsSpec};
use crate::model::{Mapping, Meta, Module, Resource};
use std::collections::BTreeSet;

/// What every Mapping inherits when it does not say otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub timeout_ms: u64,
    pub cluster_idle_timeout_ms: Option<u64>,
    pub cluster_max_connection_lifetime_ms: Option<u64>,
    pub circuit_breakers: Option<Vec<CircuitBreakerSpec>>,
    pub retry: Option<RetryPolicy>,
    pub cors: Option<CorsSpec>,
    pub keepalive: Option<Keepalive>,
    pub add_linkerd_headers: bool,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    /// Bare service names from other namespaces get `.<namespace>` appended.
    pub qualify_services: bool,
    pub mapping: MappingDefaults,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout_ms: 3000,
            cluster_idle_timeout_ms: None,
            cluster_max_connection_lifetime_ms: None,
            circuit_breakers: None,
            retry: None,
            cors: None,
            keepalive: None,
            add_linkerd_headers: false,
            enable_ipv4: None,
            enable_ipv6: None,
            qualify_services: true,
            mapping: MappingDefaults::default(),
        }
    }
}

/// The Module, compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub http: HttpOptions,
    pub defaults: Defaults,
    /// The Module's `regex_max_size`, already capped by `--max-regex-program-size`.
    pub regex_max_size: Option<u32>,
    /// Emissary's own probe Mappings.
    pub probes: Vec<Mapping>,
    /// Why every HTTP route fails closed (the Module asks for access control or request
    /// handling that is not implemented).
    pub refuse_all: Option<String>,
    /// The Module's `resolver`, which Mappings without their own inherit.
    pub resolver: Option<String>,
    /// The Module's `load_balancer`: the default for Mappings without their own whose resolver
    /// routes to endpoints.
    pub load_balancer: Option<Balancing>,
    pub module: Option<std::sync::Arc<Meta>>,
}

const LIVENESS: (&str, &str) = ("internal_liveness_probe_mapping", "/ambassador/v0/check_alive");
const READINESS: (&str, &str) = ("internal_readiness_probe_mapping", "/ambassador/v0/check_ready");
/// What Emissary's probe Mappings are (they come from no resource).
const PROBE_KIND: &str = "InternalMapping";
/// Emissary gives its probe routes a 10 s timeout.
const PROBE_TIMEOUT_MS: u64 = 10_000;

/// Compiles the Module (the first of this instance's; others are reported). A Module whose
/// values are invalid is reported, added to `rejected`, and the defaults are used.
pub fn settings(
    modules: &[&Module],
    skipped_kinds: &BTreeSet<String>,
    options: &Options,
    diagnostics: &mut Vec<Diagnostic>,
    rejected: &mut BTreeSet<ResourceId>,
) -> Settings {
    let mut settings = Settings {
        http: HttpOptions { headers_with_underscores: options.headers_with_underscores, ..HttpOptions::default() },
        ..Settings::default()
    };
    let module = modules.first();
    for extra in modules.iter().skip(1) {
        let message = format!("only one `ambassador` Module is read; {} is used", modules[0].meta.id);
        diagnostics.push(
            Diagnostic::error(Some(&extra.meta.origin), Some(&extra.meta.id), message).with_kind(Kind::Duplicate),
        );
        rejected.insert(extra.meta.id.clone());
    }
    if let Some(module) = module {
        let (origin, id) = (&module.meta.origin, &module.meta.id);
        match configure(&mut settings, module, skipped_kinds, options, diagnostics) {
            Ok(()) => settings.module = Some(module.meta.clone()),
            Err(problem) => {
                diagnostics.push(Diagnostic::error(
                    Some(origin),
                    Some(id),
                    format!("{problem}; the Module is not used"),
                ));
                rejected.insert(id.clone());
                settings = Settings {
                    http: HttpOptions {
                        headers_with_underscores: options.headers_with_underscores,
                        ..HttpOptions::default()
                    },
                    ..Settings::default()
                };
            }
        }
    }
    let config = module.map(|m| &m.spec.config);
    let probe_origin = module.map_or_else(|| Origin::object("ambassador-xds (built in)"), |m| m.meta.origin.clone());
    for ((name, path), probe) in [
        (LIVENESS, config.and_then(|c| c.liveness_probe.as_ref())),
        (READINESS, config.and_then(|c| c.readiness_probe.as_ref())),
    ] {
        let probe = probe.cloned().unwrap_or_default();
        if probe.enabled == Some(false) {
            continue;
        }
        settings.probes.push(probe_mapping(name, path, &probe, &probe_origin, options));
    }
    settings
}

/// Whether a Mapping is one of Emissary's probe routes.
pub fn is_probe(meta: &Meta) -> bool {
    *meta.id.kind == *PROBE_KIND
}

fn probe_mapping(name: &str, path: &str, probe: &Probe, origin: &Origin, options: &Options) -> Mapping {
    let prefix = probe.prefix.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| path.to_string());
    let spec = MappingSpec {
        rewrite: Some(probe.rewrite.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| path.to_string())),
        prefix: Some(prefix),
        service: Some(
            probe.service.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| options.diagnostics_service.clone()),
        ),
        timeout_ms: Some(PROBE_TIMEOUT_MS),
        hostname: Some("*".into()),
        ..MappingSpec::default()
    };
    let id = ResourceId::new(PROBE_KIND, options.ambassador_namespace.clone(), name);
    Resource::new(Meta { id, origin: origin.clone(), ambassador_id: None, labels: Default::default() }, spec)
}

fn configure(
    settings: &mut Settings,
    module: &Module,
    skipped_kinds: &BTreeSet<String>,
    options: &Options,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<(), String> {
    let config = &module.spec.config;
    let (origin, id) = (&module.meta.origin, &module.meta.id);
    let mut warn = |message: String, kind: Kind| {
        diagnostics.push(Diagnostic::warning(Some(origin), Some(id), message).with_kind(kind));
    };

    for field in &config.unimplemented {
        let refused = match field.support {
            Support::IgnoredUnless(kind) if !skipped_kinds.contains(kind) => {
                warn(
                    format!("`config.{}` has no effect while no {kind} is configured; ignored", field.field),
                    Kind::IgnoredField,
                );
                continue;
            }
            Support::IgnoredUnless(kind) => {
                format!("`config.{}` needs the {kind}, which ambassador-xds does not translate", field.field)
            }
            _ => format!("`config.{}` is not implemented ({})", field.field, field.note),
        };
        settings.refuse_all.get_or_insert(refused);
    }
    settings.resolver = config.resolver.clone();
    settings.load_balancer = config
        .load_balancer
        .as_ref()
        .map(balancing)
        .transpose()
        .map_err(|problem| format!("`config.load_balancer`: {problem}"))?;

    let http = &mut settings.http;
    let set = |target: &mut bool, value: Option<bool>| {
        if let Some(value) = value {
            *target = value;
        }
    };
    set(&mut http.use_remote_address, config.use_remote_address);
    set(&mut http.merge_slashes, config.merge_slashes);
    set(&mut http.normalize_path, config.normalize_path);
    set(&mut http.reject_escaped_slashes, config.reject_requests_with_escaped_slashes);
    set(&mut http.accept_http_10, config.enable_http10);
    set(&mut http.allow_chunked_length, config.allow_chunked_length);
    set(&mut http.preserve_external_request_id, config.preserve_external_request_id);
    set(&mut http.suppress_envoy_headers, config.suppress_envoy_headers);
    if let Some(hops) = config.xff_num_trusted_hops {
        http.xff_num_trusted_hops = hops;
    }
    http.server_name = config.server_name.clone();
    http.max_request_headers_kb = config.max_request_headers_kb;
    http.idle_timeout_ms = config.listener_idle_timeout_ms;
    http.buffer_limit_bytes = config.buffer_limit_bytes;
    if let Some(action) = &config.headers_with_underscores_action {
        use super::ir::UnderscoreHeaders::*;
        http.headers_with_underscores = match action.as_str() {
            "ALLOW" => Allow,
            "REJECT_REQUEST" => Reject,
            "DROP_HEADER" => Drop,
            other => {
                return Err(format!(
                    "`headers_with_underscores_action: {other}` is not ALLOW, REJECT_REQUEST or DROP_HEADER"
                ))
            }
        };
    }
    if let Some(value) = &config.forward_client_cert_details {
        use ForwardClientCert::*;
        http.forward_client_cert = Some(match value.as_str() {
            "SANITIZE" => Sanitize,
            "FORWARD_ONLY" => ForwardOnly,
            "APPEND_FORWARD" => AppendForward,
            "SANITIZE_SET" => SanitizeSet,
            "ALWAYS_FORWARD_ONLY" => AlwaysForwardOnly,
            other => return Err(format!("`forward_client_cert_details: {other}` is not one of SANITIZE, FORWARD_ONLY, APPEND_FORWARD, SANITIZE_SET, ALWAYS_FORWARD_ONLY")),
        });
    }
    if let Some(details) = &config.set_current_client_cert_details {
        let mut out = ClientCertDetails::default();
        for (key, value) in details {
            let slot = match key.as_str() {
                "subject" => &mut out.subject,
                "cert" => &mut out.cert,
                "chain" => &mut out.chain,
                "dns" => &mut out.dns,
                "uri" => &mut out.uri,
                other => {
                    return Err(format!(
                        "`set_current_client_cert_details` may not contain `{other}` (subject, cert, chain, dns, uri)"
                    ))
                }
            };
            *slot = *value;
        }
        http.client_cert_details = Some(out);
    }
    if let Some(rules) = &config.error_response_overrides {
        let (rules, problems): (Vec<ErrorResponseRule>, Vec<String>) = error_response::rules(rules);
        for problem in problems {
            warn(format!("`config.error_response_overrides`: {problem}; that rule is skipped"), Kind::Invalid);
        }
        http.error_responses = Some(rules);
    }
    if let Some(size) = config.regex_max_size {
        let cap = options.max_regex_program_size;
        if size > cap {
            warn(format!("`regex_max_size: {size}` is above `--max-regex-program-size` ({cap}), Envoy's limit from its bootstrap; {cap} is used"), Kind::Invalid);
        }
        settings.regex_max_size = Some(size.min(cap));
    }

    let defaults = &mut settings.defaults;
    if let Some(timeout) = config.cluster_request_timeout_ms {
        defaults.timeout_ms = timeout;
    }
    defaults.cluster_idle_timeout_ms = config.cluster_idle_timeout_ms;
    defaults.cluster_max_connection_lifetime_ms = config.cluster_max_connection_lifetime_ms;
    if let Some(breakers) = &config.circuit_breakers {
        policy::circuit_breakers(breakers).map_err(|problem| format!("`circuit_breakers`: {problem}"))?;
        defaults.circuit_breakers = Some(breakers.clone());
    }
    if let Some(retry) = &config.retry_policy {
        defaults.retry = Some(policy::retry_policy(retry)?);
    }
    defaults.cors = config.cors.clone();
    defaults.keepalive = config.keepalive.as_ref().map(policy::keepalive);
    defaults.add_linkerd_headers = config.add_linkerd_headers.unwrap_or(false);
    defaults.enable_ipv4 = config.enable_ipv4;
    defaults.enable_ipv6 = config.enable_ipv6;
    defaults.qualify_services = !config.use_ambassador_namespace_for_service_resolution.unwrap_or(false);
    if let Some(given) = &config.defaults {
        // `defaults.httpmapping.<key>` wins over `defaults.<key>`.
        let (class, any) = (&given.httpmapping, &given.any);
        defaults.mapping = MappingDefaults {
            add_request_headers: class.add_request_headers.clone().or_else(|| any.add_request_headers.clone()),
            add_response_headers: class.add_response_headers.clone().or_else(|| any.add_response_headers.clone()),
            remove_request_headers: class.remove_request_headers.clone().or_else(|| any.remove_request_headers.clone()),
            remove_response_headers: class
                .remove_response_headers
                .clone()
                .or_else(|| any.remove_response_headers.clone()),
        };
        for headers in
            [&defaults.mapping.add_request_headers, &defaults.mapping.add_response_headers].into_iter().flatten()
        {
            policy::headers_to_add("defaults", headers)?;
        }
    }
    Ok(())
}
