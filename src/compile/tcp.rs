//! `TCPMapping`s: each port gets a TCP listener of its own (`listener-<address>-<port>`, as
//! Emissary synthesizes it). TCPMappings with the same address, port and `host` are one canary
//! group; a `host` makes its chain terminate TLS with the TLSContext whose `hosts` names it and
//! match that SNI (Emissary's rule); `tls` or `https://` originates TLS to the upstream.

use super::cluster::{ClusterRequest, Transport};
use super::cluster_options::{self, ClusterFields};
use super::cluster_set::ClusterSet;
use super::ir::{TcpChain, TcpListener};
use super::module::Settings;
use super::resolver::DEFAULT_RESOLVER;
use super::select::ContextLookup;
use super::service::{self, Scheme};
use super::tls::ResolvedContext;
use super::Options;
use crate::diagnostic::{Diagnostic, Kind, ResourceId};
use crate::model::mapping::TlsSetting;
use crate::model::{TcpMapping, TlsContext};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub struct TcpInputs<'a, 'r> {
    pub options: &'a Options,
    pub settings: &'a Settings,
    pub contexts: &'r ContextLookup<'a>,
    pub all_contexts: &'r [&'a TlsContext],
    pub resolved: &'a HashMap<&'a ResourceId, Result<ResolvedContext, String>>,
    /// Ports the HTTP listeners hold.
    pub http_ports: &'r BTreeSet<u16>,
}

/// One TCPMapping's contribution to its group.
struct Member {
    id: ResourceId,
    weight: Option<u32>,
    cluster: String,
    agree: String,
}

/// A listener's filter chains: SNI host (empty for none) → the TCPMappings that share it.
type Chains<'a> = BTreeMap<String, Vec<(Member, &'a TcpMapping)>>;

/// The TCP listeners (clusters by identity until names are final); refused TCPMappings are
/// reported and added to `rejected`.
pub fn tcp_listeners<'a>(
    mappings: &[&'a TcpMapping],
    inputs: &TcpInputs<'a, '_>,
    clusters: &mut ClusterSet,
    used_contexts: &mut BTreeSet<&'a ResourceId>,
    diagnostics: &mut Vec<Diagnostic>,
    rejected: &mut BTreeSet<ResourceId>,
) -> Vec<TcpListener> {
    // (address, port) → host → members; BTreeMaps keep listeners and chains in a stable order.
    let mut listeners: BTreeMap<(String, u16), Chains> = BTreeMap::new();
    let mut ordered = mappings.to_vec();
    ordered.sort_by_cached_key(|m| format!("{}.{}", m.meta.name(), m.meta.namespace()));
    for mapping in ordered {
        let (origin, id) = (&mapping.meta.origin, &mapping.meta.id);
        match member(mapping, inputs, clusters, used_contexts, diagnostics) {
            Ok((address, port, member)) => {
                let chain = listeners
                    .entry((address, port))
                    .or_default()
                    .entry(mapping.spec.host.clone().unwrap_or_default())
                    .or_default();
                if let Some((first, _)) = chain.first().filter(|(first, _)| first.agree != member.agree) {
                    let message = format!("shares its address, port and host with {} but not its `tls`, `idle_timeout_ms`, `circuit_breakers`, `enable_ipv4` or `enable_ipv6`; not served, as in Emissary", first.id);
                    diagnostics.push(Diagnostic::error(Some(origin), Some(id), message));
                    rejected.insert(id.clone());
                    continue;
                }
                chain.push((member, mapping));
            }
            Err((kind, message)) => {
                diagnostics.push(
                    Diagnostic::error(Some(origin), Some(id), format!("{message}; the TCPMapping is not served"))
                        .with_kind(kind),
                );
                rejected.insert(id.clone());
            }
        }
    }

    let mut out = Vec::new();
    for ((address, port), chains) in listeners {
        let mut listener = TcpListener {
            name: format!("listener-{address}-{port}"),
            stat_prefix: String::new(),
            address: address.clone(),
            port,
            chains: Vec::new(),
            provenance: Vec::new(),
        };
        for (host, members) in chains {
            match chain(&host, &members, inputs, used_contexts) {
                Ok(chain) => {
                    listener.provenance.extend(chain.provenance.iter().cloned());
                    listener.chains.push(chain);
                }
                Err(problem) => {
                    for (member, mapping) in &members {
                        let message = format!("{problem}; the TCPMapping is not served");
                        diagnostics.push(
                            Diagnostic::error(Some(&mapping.meta.origin), Some(&member.id), message)
                                .with_kind(Kind::Reference),
                        );
                        rejected.insert(member.id.clone());
                    }
                }
            }
        }
        if listener.chains.is_empty() {
            continue;
        }
        let tls = listener.chains.iter().any(|c| c.server_name.is_some());
        listener.stat_prefix = format!("ingress_{}_{port}", if tls { "tls" } else { "tcp" });
        out.push(listener);
    }
    out
}

fn member<'a>(
    mapping: &'a TcpMapping,
    inputs: &TcpInputs<'a, '_>,
    clusters: &mut ClusterSet,
    used_contexts: &mut BTreeSet<&'a ResourceId>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<(String, u16, Member), (Kind, String)> {
    let spec = &mapping.spec;
    let invalid = |message: String| (Kind::Invalid, message);
    let port = spec.port.ok_or_else(|| invalid("missing required field `port`".into()))?;
    if inputs.http_ports.contains(&port) {
        return Err(invalid(format!("port {port} is an HTTP listener's; a TCPMapping needs a port of its own")));
    }
    if let Some(field) = spec.unimplemented.first() {
        return Err((Kind::Refused, format!("`{}` is not implemented", field.field)));
    }
    match spec.resolver.as_deref().or(inputs.settings.resolver.as_deref()) {
        None | Some(DEFAULT_RESOLVER) => {}
        Some(resolver) => {
            return Err((Kind::Refused, format!("`resolver: {resolver}` is not implemented for TCPMappings")))
        }
    }
    let text = spec.service.as_deref().ok_or_else(|| invalid("missing required field `service`".into()))?;
    let qualify = inputs.settings.defaults.qualify_services;
    let (service, warning) =
        service::parse_service(text, mapping.meta.namespace(), &inputs.options.ambassador_namespace, qualify)
            .map_err(|err| invalid(format!("bad `service: {text}`: {err}")))?;
    let warn = |diagnostics: &mut Vec<Diagnostic>, message: String| {
        diagnostics.push(Diagnostic::warning(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
    };
    if let Some(warning) = warning {
        warn(diagnostics, warning);
    }
    let transport = match &spec.tls {
        Some(TlsSetting::Context(name)) => {
            let ctx = inputs.contexts.find(name, mapping.meta.namespace()).map_err(|r| (Kind::Reference, r))?;
            match &inputs.resolved[&ctx.meta.id] {
                Ok(resolved) => {
                    used_contexts.insert(&ctx.meta.id);
                    Transport::Context(ctx, resolved)
                }
                Err(reason) => return Err((Kind::Reference, format!("{} is unusable: {reason}", ctx.meta.id))),
            }
        }
        Some(TlsSetting::Enabled(true)) => Transport::Tls,
        _ if service.scheme == Some(Scheme::Https) => Transport::Tls,
        _ => Transport::Plaintext,
    };
    let upstream = ClusterFields {
        circuit_breakers: spec.circuit_breakers.as_deref(),
        enable_ipv4: spec.enable_ipv4,
        enable_ipv6: spec.enable_ipv6,
        ..ClusterFields::default()
    };
    let (options, breaker_names, warnings) =
        cluster_options::options(&upstream, &inputs.settings.defaults).map_err(invalid)?;
    for warning in warnings {
        warn(diagnostics, warning);
    }
    let agree = format!("{:?}/{:?}/{:?}", spec.tls, spec.idle_timeout_ms, options);
    let request = ClusterRequest {
        owner: &mapping.meta,
        service: &service,
        transport: &transport,
        marker: spec.cluster_tag.as_deref(),
        upstream: None,
        host_rewrite: None,
        options,
        breaker_names,
    };
    let cluster = clusters.cluster_for(request);
    let address = spec.address.clone().unwrap_or_else(|| "0.0.0.0".into());
    Ok((address, port, Member { id: mapping.meta.id.clone(), weight: spec.weight, cluster, agree }))
}

/// One filter chain: a canary group of TCPMappings, terminating TLS when they name a host.
fn chain<'a>(
    host: &str,
    members: &[(Member, &TcpMapping)],
    inputs: &TcpInputs<'a, '_>,
    used_contexts: &mut BTreeSet<&'a ResourceId>,
) -> Result<TcpChain, String> {
    let named: Vec<(String, Option<u32>)> = members.iter().map(|(m, _)| (m.id.to_string(), m.weight)).collect();
    let weights = super::order::cumulative_weights(&named)?;
    // Envoy's weights are relative; Emissary hands it the cumulative ones (10 and 100 for a 10%
    // canary, which is 9%). Each member's own share is what was asked for.
    let mut previous = 0;
    let mut clusters = Vec::new();
    for ((member, _), cumulative) in members.iter().zip(weights) {
        let share = cumulative - previous;
        previous = cumulative;
        if share > 0 {
            clusters.push((member.cluster.clone(), share));
        }
    }
    let (first, first_mapping) = &members[0];
    let mut chain = TcpChain {
        name: format!("tcphost-{}/{}", first.id.namespace, first.id.name),
        server_name: None,
        certificate_secret: None,
        validation_secret: None,
        require_client_certificate: false,
        clusters,
        idle_timeout_ms: first_mapping.spec.idle_timeout_ms,
        provenance: members.iter().map(|(_, m)| m.meta.provenance()).collect(),
    };
    if host.is_empty() {
        return Ok(chain);
    }
    // Emissary's rule: a TLSContext whose `hosts` names this host exactly.
    let context =
        inputs.all_contexts.iter().find(|ctx| ctx.spec.hosts.iter().flatten().any(|h| h == host)).ok_or_else(|| {
            format!("`host: {host}` needs a TLSContext whose `hosts` names it, to terminate TLS with")
        })?;
    let resolved = match &inputs.resolved[&context.meta.id] {
        Ok(resolved) => resolved,
        Err(reason) => return Err(format!("{} is unusable: {reason}", context.meta.id)),
    };
    let certificate = resolved
        .tls
        .client_certificate_secret
        .clone()
        .ok_or_else(|| format!("{} has no certificate to terminate TLS with", context.meta.id))?;
    used_contexts.insert(&context.meta.id);
    chain.server_name = Some(host.to_string());
    chain.certificate_secret = Some(certificate);
    chain.validation_secret = resolved.tls.validation_secret.clone();
    chain.require_client_certificate = context.spec.cert_required.unwrap_or(false);
    if chain.require_client_certificate && chain.validation_secret.is_none() {
        return Err(format!("{} has `cert_required` but no CA to verify client certificates with", context.meta.id));
    }
    chain.provenance.push(context.meta.provenance());
    Ok(chain)
}
