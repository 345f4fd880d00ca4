//! Listeners: from `Listener` resources (HTTP only, one per port), or the default HTTP listener on
//! `--listener-port` when none is given, or none of those given can be served (a broken Listener
//! must not leave Envoy without any listener, and every route unreachable).

use super::ir::{HttpListener, HttpOptions};
use super::{Options, ROUTE_CONFIG_NAME};
use crate::diagnostic::{Diagnostic, Kind, Provenance, ResourceId};
use crate::model::Listener;
use std::collections::{BTreeMap, BTreeSet};

pub fn listener_name(port: u16) -> String {
    format!("ambassador-listener-0.0.0.0-{port}")
}

fn http_listener(port: u16, http: &HttpOptions, provenance: Vec<Provenance>) -> HttpListener {
    HttpListener {
        name: listener_name(port),
        port,
        stat_prefix: "ingress_http".to_string(),
        route_config: ROUTE_CONFIG_NAME.to_string(),
        provenance,
        options: http.clone(),
    }
}

/// The HTTP listeners; Listeners whose values are broken are reported and added to `rejected`.
pub fn http_listeners(
    listeners: &[&Listener],
    options: &Options,
    http: &HttpOptions,
    diagnostics: &mut Vec<Diagnostic>,
    rejected: &mut BTreeSet<ResourceId>,
) -> Vec<HttpListener> {
    if listeners.is_empty() {
        return vec![http_listener(options.listener_port, http, Vec::new())];
    }
    let mut by_port: BTreeMap<u16, (&ResourceId, Provenance)> = BTreeMap::new();
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
            diagnostics.push(
                Diagnostic::warning(
                    Some(origin),
                    Some(id),
                    format!("protocol {what} is not supported yet (only HTTP); listener skipped"),
                )
                .with_kind(Kind::IgnoredField),
            );
            continue;
        }
        let Some(port) = spec.port else {
            diagnostics.push(Diagnostic::error(Some(origin), Some(id), "missing required field `spec.port`"));
            rejected.insert(id.clone());
            continue;
        };
        if let Some((other, _)) = by_port.get(&port) {
            diagnostics.push(
                Diagnostic::error(
                    Some(origin),
                    Some(id),
                    format!("port {port} is already used by {other}; listener skipped"),
                )
                .with_kind(Kind::Duplicate),
            );
            rejected.insert(id.clone());
            continue;
        }
        by_port.insert(port, (id, listener.meta.provenance()));
    }
    if by_port.is_empty() {
        let port = options.listener_port;
        let message = format!("no Listener can be served; the default HTTP listener on port {port} is used");
        let (origin, id) = (&listeners[0].meta.origin, &listeners[0].meta.id);
        diagnostics.push(Diagnostic::warning(Some(origin), Some(id), message).with_kind(Kind::IgnoredField));
        return vec![http_listener(port, http, Vec::new())];
    }
    by_port.into_iter().map(|(port, (_, provenance))| http_listener(port, http, vec![provenance])).collect()
}
