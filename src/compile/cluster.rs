//! Upstream clusters: one per (service, transport, namespace), named as Emissary names them, with
//! the TLS origination settings of the Mapping's transport.
//!
//! Emissary's names replace every character outside `[A-Za-z0-9_]` with `_`, so different
//! targets can get the same name (`a-b` and `a.b` are both `cluster_a_b_default`), and Emissary
//! then sends the second Mapping's traffic to the first one's host. Here clusters are kept by
//! what they are (the name's parts before mangling); targets whose names collide each get the
//! first 8 hex digits of the SHA-1 of those parts appended, and a warning says so.

use super::ir::{Cluster, ClusterOptions, LbPolicy, UpstreamTls};
use super::names;
use super::service::Service;
pub use super::transport::Transport;
use super::upstream::Upstream;
use crate::diagnostic::Provenance;
use crate::model::Meta;
use std::sync::Arc;

/// What one Mapping (or TCPMapping) needs from its cluster.
pub struct ClusterRequest<'r, 'a> {
    pub owner: &'r Meta,
    pub service: &'r Service,
    pub transport: &'r Transport<'a>,
    /// Where the addresses come from, the load balancing and the identity to check; `None`:
    /// DNS, round robin, no identity (TCPMappings).
    pub upstream: Option<&'r Upstream>,
    /// Emissary's marker before the service in the name: `shadow`, or the `cluster_tag`.
    pub marker: Option<&'r str>,
    pub host_rewrite: Option<&'r str>,
    pub options: ClusterOptions,
    /// Emissary's circuit-breaker names (`cbnc1024`), appended to the cluster name.
    pub breaker_names: Vec<String>,
}

/// The cluster one Mapping asks for, by identity: what it contributes to the [`ClusterSet`],
/// computed from the Mapping alone (so it is remembered with the Mapping's candidate).
#[derive(Debug, Clone)]
pub struct ClusterClaim {
    /// The parts of the cluster's name, unmangled, and what else tells clusters apart (shared:
    /// every reload keys the cluster set by it).
    pub identity: Arc<str>,
    /// Its provenance starts with the claiming Mapping's.
    pub(super) cluster: Arc<Cluster>,
}

impl ClusterClaim {
    pub fn new(request: ClusterRequest<'_, '_>) -> ClusterClaim {
        let ClusterRequest { owner, service, transport, upstream, marker, host_rewrite, mut options, breaker_names } =
            request;
        let uses_tls = !matches!(transport, Transport::Plaintext);
        let mut fields: Vec<String> = marker.into_iter().map(str::to_string).collect();
        fields.push(service.normalized());
        if uses_tls {
            fields.push("otls".into());
            if let Transport::Context(ctx, _) = transport {
                // Unlike Emissary, the context is part of the name even with `https://`, so
                // `https://x` with and without a client certificate are different clusters.
                fields.push(ctx.meta.name().to_string());
            }
            if let Some(host_rewrite) = host_rewrite {
                fields.push(format!("hr-{host_rewrite}"));
            }
        }
        fields.push(owner.namespace().to_string());
        let balancing = upstream.and_then(|u| u.balancing.as_ref());
        if let Some(balancing) = balancing {
            fields.push(balancing.name_field.clone());
        }
        fields.extend(breaker_names);
        let name = names::cluster_name(&fields.iter().map(String::as_str).collect::<Vec<_>>());
        // A separator no part contains. HTTP/2 or not is part of what a cluster is (Emissary
        // would send one Mapping's HTTP/1.1 to another's gRPC upstream under one name). Emissary
        // also leaves the endpoint source and the identity check out of the name (one name for a
        // service reached through DNS and through its EndpointSlices): they are part of what the
        // cluster is, so such clusters are told apart like any other names that collide.
        let mut identity_parts = fields.clone();
        if options.http2 {
            identity_parts.push("h2".into());
        }
        let eds = upstream.and_then(|u| u.eds.clone());
        if let Some(eds) = &eds {
            identity_parts.push(format!("eds={}", eds.eds_name()));
        }
        let spiffe_id = upstream.and_then(|u| u.spiffe_id.clone());
        if let Some(id) = &spiffe_id {
            identity_parts.push(format!("spiffe={id}"));
        }
        let identity: Arc<str> = identity_parts.join("\u{0}").into();
        if options.stats_name.is_empty() {
            options.stats_name = names::mangle(&service.without_scheme());
        }

        let default_sni = service.is_dns_name().then(|| service.host.clone());
        let mut tls = match transport {
            Transport::Plaintext | Transport::Unavailable(_) => None,
            Transport::Tls => Some(UpstreamTls { sni: default_sni, ..Default::default() }),
            Transport::Context(_, resolved) => {
                let mut tls = resolved.tls.clone();
                tls.sni = tls.sni.or(default_sni);
                Some(tls)
            }
        };
        if let Some(tls) = &mut tls {
            tls.spiffe_id = spiffe_id;
        }
        let cluster = Cluster {
            name: name.clone(),
            host: service.host.clone(),
            port: service.port_or_default(uses_tls),
            eds,
            lb_policy: balancing.map_or(LbPolicy::RoundRobin, |b| b.policy),
            tls,
            options,
            provenance: std::iter::once(owner.provenance())
                .chain(match transport {
                    Transport::Context(ctx, _) => Some(ctx.meta.provenance()),
                    _ => None,
                })
                .chain(upstream.and_then(|u| u.resolver.provenance.clone()))
                .collect(),
        };
        ClusterClaim { identity, cluster: Arc::new(cluster) }
    }

    /// The Mapping (or TCPMapping) that claims the cluster.
    pub(super) fn owner(&self) -> &Provenance {
        &self.cluster.provenance[0]
    }
}
