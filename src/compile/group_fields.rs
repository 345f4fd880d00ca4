//! What a Mapping brings to its canary group: the settings Emissary takes from the group
//! (flattened over the members, see [`super::group`]) and the values every member must agree on.

use super::group::{Core, Shared};
use super::ir::{HeaderToAdd, RegexRewrite};
use super::matching;
use super::module::Settings;
use super::policy;
use super::service::Service;
use crate::model::Mapping;

/// What the Mapping contributes to its group's settings.
pub fn shared(mapping: &Mapping, service: &Service, settings: &Settings) -> Result<Shared, String> {
    let spec = &mapping.spec;
    let defaults = &settings.defaults.mapping;
    let mut add_request = match spec.add_request_headers.as_ref().or(defaults.add_request_headers.as_ref()) {
        Some(headers) => Some(policy::headers_to_add("add_request_headers", headers)?),
        None => None,
    };
    if spec.add_linkerd_headers.unwrap_or(settings.defaults.add_linkerd_headers) {
        let header = HeaderToAdd { name: "l5d-dst-override".into(), value: service.host_port(), append: true };
        let headers = add_request.get_or_insert_with(Vec::new);
        headers.retain(|h| h.name != header.name);
        headers.push(header);
    }
    let add_response = match spec.add_response_headers.as_ref().or(defaults.add_response_headers.as_ref()) {
        Some(headers) => Some(policy::headers_to_add("add_response_headers", headers)?),
        None => None,
    };
    let remove = |field: &str, own: &Option<crate::model::OneOrMany>, default: &Option<crate::model::OneOrMany>| {
        own.as_ref().or(default.as_ref()).map(|names| policy::header_names(field, names)).transpose()
    };
    let mut upgrades = spec.allow_upgrade.clone();
    if spec.use_websocket == Some(true) {
        let list = upgrades.get_or_insert_with(Vec::new);
        if !list.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
            list.push("websocket".into());
        }
    }
    let high_priority = match spec.priority.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("default") => Some(false),
        Some("high") => Some(true),
        Some(other) => return Err(format!("`priority: {other}` is not `default` or `high`")),
    };
    Ok(Shared {
        add_request_headers: add_request,
        add_response_headers: add_response,
        remove_request_headers: remove(
            "remove_request_headers",
            &spec.remove_request_headers,
            &defaults.remove_request_headers,
        )?,
        remove_response_headers: remove(
            "remove_response_headers",
            &spec.remove_response_headers,
            &defaults.remove_response_headers,
        )?,
        cors: spec.cors.clone(),
        retry: spec.retry_policy.as_ref().map(policy::retry_policy).transpose()?,
        upgrades,
        case_sensitive: spec.case_sensitive,
        regex_rewrite: spec
            .regex_rewrite
            .as_ref()
            .map(|r| RegexRewrite { pattern: r.pattern.clone(), substitution: r.substitution.clone() }),
        high_priority,
    })
}

/// The values Emissary makes every member of a canary group agree on.
pub fn core(mapping: &Mapping, matcher: &matching::MatchSpec, settings: &Settings) -> Core {
    let spec = &mapping.spec;
    let mut core = Vec::new();
    let mut set = |key: &'static str, value: Option<String>| {
        if let Some(value) = value {
            core.push((key, value));
        }
    };
    let debug = |value: &dyn std::fmt::Debug| format!("{value:?}");
    set("bypass_auth", spec.bypass_auth.map(|v| v.to_string()));
    set("bypass_error_response_overrides", spec.bypass_error_response_overrides.map(|v| v.to_string()));
    let breakers = spec.circuit_breakers.as_ref().or(settings.defaults.circuit_breakers.as_ref());
    set("circuit_breakers", breakers.map(|b| debug(b)));
    set("connect_timeout_ms", spec.connect_timeout_ms.map(|v| v.to_string()));
    set("cluster_idle_timeout_ms", spec.cluster_idle_timeout_ms.map(|v| v.to_string()));
    set("cluster_max_connection_lifetime_ms", spec.cluster_max_connection_lifetime_ms.map(|v| v.to_string()));
    set("headers", Some(debug(&matcher.weighed_headers())));
    set("keepalive", spec.keepalive.as_ref().map(|k| debug(k)));
    set("method", spec.method.clone());
    set("prefix_regex", spec.prefix_regex.then(|| "true".into()));
    set("prefix_exact", spec.prefix_exact.then(|| "true".into()));
    Core(core)
}
