//! `Listener` resources as Emissary reads them: the protocol stack (`protocol` is shorthand for
//! one), the security model, which Hosts it binds, `l7Depth` and `statsPrefix`. Listeners Envoy
//! can serve here speak HTTP over TCP, optionally with TLS and/or the PROXY protocol; raw TCP
//! and TLS Listeners are skipped (each TCPMapping gets a listener of its own on its `port`) and
//! UDP (HTTP/3) is reported as not supported.

use crate::compile::ir::HttpOptions;
use crate::compile::listener_name;
use crate::diagnostic::{Diagnostic, Kind, Provenance, ResourceId};
use crate::model::host::LabelSelector;
use crate::model::Listener;
use std::collections::{BTreeMap, BTreeSet};

/// How a listener decides whether a request is secure (which of a Host's actions applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityModel {
    /// By `x-forwarded-proto`: `https` is secure. Envoy sets it from the connection unless
    /// `l7Depth` trusts the proxies in front.
    Xfp,
    /// Every request is secure.
    Secure,
    /// Every request is insecure.
    Insecure,
}

/// Which Hosts a listener takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding<'a> {
    /// `hostBinding`: Hosts in any namespace (`from: ALL`) or its own, with these labels.
    Hosts { namespace: Option<&'a str>, selector: Option<&'a LabelSelector> },
    /// A cleartext port only some Hosts ask for (`additionalPort`, `redirect_cleartext_from`).
    InsecurePort,
}

/// A listener to build, before Hosts are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeListener<'a> {
    pub name: String,
    pub port: u16,
    pub tls: bool,
    pub proxy_protocol: bool,
    pub security: SecurityModel,
    pub binding: Binding<'a>,
    pub stat_prefix: String,
    /// `l7Depth`: the proxies in front of Envoy whose `X-Forwarded-For` and `X-Forwarded-Proto`
    /// are believed; without it, the Module's `xff_num_trusted_hops` (default 0: the connection
    /// itself says who the client is and whether it is TLS).
    pub trusted_hops: Option<u32>,
    pub provenance: Vec<Provenance>,
}

impl EdgeListener<'_> {
    /// The Module's connection-manager settings as this listener applies them.
    pub fn http_options(&self, http: &HttpOptions) -> HttpOptions {
        HttpOptions { xff_num_trusted_hops: self.trusted_hops.unwrap_or(http.xff_num_trusted_hops), ..http.clone() }
    }

    /// The listener used when no `Listener` is given (and when none given can be served):
    /// cleartext HTTP, `XFP`, every Host.
    pub fn default_http(port: u16) -> EdgeListener<'static> {
        EdgeListener {
            name: listener_name(port),
            port,
            tls: false,
            proxy_protocol: false,
            security: SecurityModel::Xfp,
            binding: Binding::Hosts { namespace: None, selector: None },
            stat_prefix: "ingress_http".into(),
            trusted_hops: None,
            provenance: Vec::new(),
        }
    }

    /// A cleartext listener for ports Hosts name but no Listener binds.
    pub fn insecure_port(port: u16) -> EdgeListener<'static> {
        EdgeListener {
            security: SecurityModel::Insecure,
            binding: Binding::InsecurePort,
            ..EdgeListener::default_http(port)
        }
    }
}

/// Emissary's protocol shorthands.
fn stack_of(protocol: &str) -> Option<&'static [&'static str]> {
    Some(match protocol {
        "HTTP" => &["HTTP", "TCP"],
        "HTTPS" => &["TLS", "HTTP", "TCP"],
        "HTTPPROXY" => &["PROXY", "HTTP", "TCP"],
        "HTTPSPROXY" => &["TLS", "PROXY", "HTTP", "TCP"],
        "TCP" => &["TCP"],
        "TLS" => &["TLS", "TCP"],
        _ => return None,
    })
}

/// Outcome of reading one Listener.
enum Read<'a> {
    Serve(EdgeListener<'a>),
    /// Valid, but not something this tool serves (a warning was reported).
    Unsupported,
    /// Broken (an error was reported): its last good version may stand in.
    Rejected,
}

/// The listeners of the `Listener` resources, one per port, in port order. Broken ones are
/// reported and added to `rejected`; with none usable, the default HTTP listener is returned.
pub fn listeners<'a>(
    resources: &[&'a Listener],
    default_port: u16,
    diagnostics: &mut Vec<Diagnostic>,
    rejected: &mut BTreeSet<ResourceId>,
) -> Vec<EdgeListener<'a>> {
    if resources.is_empty() {
        return vec![EdgeListener::default_http(default_port)];
    }
    let mut by_port: BTreeMap<u16, (&ResourceId, EdgeListener<'a>)> = BTreeMap::new();
    for listener in resources {
        let id = &listener.meta.id;
        let edge = match read(listener, diagnostics) {
            Read::Serve(edge) => edge,
            Read::Unsupported => continue,
            Read::Rejected => {
                rejected.insert(id.clone());
                continue;
            }
        };
        if let Some((other, _)) = by_port.get(&edge.port) {
            let message = format!("port {} is already used by {other}; listener skipped", edge.port);
            let origin = &listener.meta.origin;
            diagnostics.push(Diagnostic::error(Some(origin), Some(id), message).with_kind(Kind::Duplicate));
            rejected.insert(id.clone());
            continue;
        }
        by_port.insert(edge.port, (id, edge));
    }
    if by_port.is_empty() {
        let message = format!("no Listener can be served; the default HTTP listener on port {default_port} is used");
        let (origin, id) = (&resources[0].meta.origin, &resources[0].meta.id);
        diagnostics.push(Diagnostic::warning(Some(origin), Some(id), message).with_kind(Kind::IgnoredField));
        return vec![EdgeListener::default_http(default_port)];
    }
    by_port.into_values().map(|(_, edge)| edge).collect()
}

fn read<'a>(listener: &'a Listener, diagnostics: &mut Vec<Diagnostic>) -> Read<'a> {
    let (spec, meta) = (&listener.spec, &listener.meta);
    let error = |diagnostics: &mut Vec<Diagnostic>, message: String| {
        diagnostics.push(Diagnostic::error(Some(&meta.origin), Some(&meta.id), message));
        Read::Rejected
    };
    let stack: Vec<&str> = match (&spec.protocol, &spec.protocol_stack) {
        (protocol, Some(stack)) => {
            if protocol.is_some() {
                let message = "`protocol` and `protocolStack` are both set; `protocolStack` is used";
                diagnostics.push(Diagnostic::warning(Some(&meta.origin), Some(&meta.id), message));
            }
            stack.iter().map(String::as_str).collect()
        }
        (Some(protocol), None) => match stack_of(protocol) {
            Some(stack) => stack.to_vec(),
            None => {
                let message =
                    format!("`protocol: {protocol}` is not one of HTTP, HTTPS, HTTPPROXY, HTTPSPROXY, TCP, TLS");
                return error(diagnostics, message);
            }
        },
        (None, None) => return error(diagnostics, "one of `protocol` and `protocolStack` must be set".into()),
    };
    if let Some(unknown) = stack.iter().find(|p| !["TLS", "PROXY", "HTTP", "TCP", "UDP"].contains(p)) {
        return error(diagnostics, format!("`protocolStack` has `{unknown}`, not one of TLS, PROXY, HTTP, TCP, UDP"));
    }
    let last = stack.last().copied();
    if !matches!(last, Some("TCP" | "UDP")) || stack[..stack.len() - 1].iter().any(|p| matches!(*p, "TCP" | "UDP")) {
        return error(
            diagnostics,
            format!("protocol stack {} must end with TCP or UDP (and name it once)", stack.join(";")),
        );
    }
    if last == Some("UDP") || !stack.contains(&"HTTP") {
        let message = if last == Some("UDP") {
            format!(
                "protocol stack {}: HTTP/3 (UDP) is not supported (only HTTP over TCP, with TLS and/or PROXY); listener skipped",
                stack.join(";")
            )
        } else {
            format!(
                "protocol stack {}: not HTTP; TCPMappings get a listener of their own on their `port`; listener skipped",
                stack.join(";")
            )
        };
        diagnostics
            .push(Diagnostic::warning(Some(&meta.origin), Some(&meta.id), message).with_kind(Kind::IgnoredField));
        return Read::Unsupported;
    }
    let Some(port) = spec.port else {
        return error(diagnostics, "missing required field `spec.port`".into());
    };
    let security = match spec.security_model.as_deref() {
        Some("XFP") => SecurityModel::Xfp,
        Some("SECURE") => SecurityModel::Secure,
        Some("INSECURE") => SecurityModel::Insecure,
        Some(other) => {
            return error(diagnostics, format!("`securityModel: {other}` is not one of XFP, SECURE, INSECURE"))
        }
        None => return error(diagnostics, "missing required field `spec.securityModel`".into()),
    };
    let Some(binding) = &spec.host_binding else {
        return error(diagnostics, "missing required field `spec.hostBinding`".into());
    };
    if binding.namespace.is_none() && binding.selector.is_none() {
        return error(diagnostics, "`hostBinding` needs `namespace` or `selector`".into());
    }
    let namespace = match binding.namespace.as_ref().map(|n| n.from.as_deref()) {
        None => Some(meta.namespace()),
        Some(None) => return error(diagnostics, "missing required field `hostBinding.namespace.from`".into()),
        Some(Some(from)) if from.eq_ignore_ascii_case("ALL") => None,
        Some(Some(from)) if from.eq_ignore_ascii_case("SELF") => Some(meta.namespace()),
        Some(Some(other)) => {
            // Emissary cannot read Namespace labels either; it keeps the listener to its own namespace.
            let message = format!(
                "`hostBinding.namespace.from: {other}` is not supported (only ALL and SELF); only Hosts in this Listener's namespace are bound"
            );
            diagnostics.push(Diagnostic::error(Some(&meta.origin), Some(&meta.id), message));
            Some(meta.namespace())
        }
    };
    let tls = stack.contains(&"TLS");
    let stat_prefix = spec
        .stats_prefix
        .clone()
        .filter(|prefix| !prefix.is_empty())
        .unwrap_or_else(|| if tls { "ingress_https" } else { "ingress_http" }.to_string());
    Read::Serve(EdgeListener {
        name: listener_name(port),
        port,
        tls,
        proxy_protocol: stack.contains(&"PROXY"),
        security,
        binding: Binding::Hosts { namespace, selector: binding.selector.as_ref() },
        stat_prefix,
        trusted_hops: spec.l7_depth,
        provenance: vec![meta.provenance()],
    })
}
