//! Upstream clusters: one per (service, transport, namespace), named as Emissary names them, with
//! the TLS origination settings of the Mapping's transport.
//!
//! Emissary's names replace every character outside `[A-Za-z0-9_]` with `_`, so different
//! targets can get the same name (`a-b` and `a.b` are both `cluster_a_b_default`), and Emissary
//! then sends the second Mapping's traffic to the first one's host. Here clusters are kept by
//! what they are (the name's parts before mangling); targets whose names collide each get the
//! first 8 hex digits of the SHA-1 of those parts appended, and a warning says so.

use super::ir::{Cluster, LbPolicy, UpstreamTls};
use super::names;
use super::service::Service;
pub use super::transport::Transport;
use super::upstream::Upstream;
use crate::diagnostic::{Diagnostic, Kind};
use crate::model::{Mapping, Meta};
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;

const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3000;

/// The clusters the Mappings need, by identity: the parts of their names, unmangled.
#[derive(Default)]
pub struct ClusterSet {
    /// Identity → (cluster under its full mangled name, the Mapping that created it).
    clusters: BTreeMap<String, (Cluster, Meta)>,
}

impl ClusterSet {
    /// Returns the identity of the cluster for this Mapping, creating it on first use.
    pub fn cluster_for(
        &mut self,
        mapping: &Mapping,
        service: &Service,
        transport: &Transport<'_>,
        upstream: &Upstream,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> String {
        let spec = &mapping.spec;
        let uses_tls = !matches!(transport, Transport::Plaintext);
        let mut fields = vec![service.normalized()];
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
        if let Some(balancing) = &upstream.balancing {
            fields.push(balancing.name_field.clone());
        }
        let name = names::cluster_name(&fields.iter().map(String::as_str).collect::<Vec<_>>());
        // Emissary leaves the endpoint source and the identity check out of the name (one name for
        // a service reached through DNS and through its EndpointSlices): they are part of what the
        // cluster is, so such clusters are told apart like any other names that collide.
        let mut identity_parts = fields.clone();
        if let Some(eds) = &upstream.eds {
            identity_parts.push(format!("eds={}", eds.eds_name()));
        }
        if let Some(id) = &upstream.spiffe_id {
            identity_parts.push(format!("spiffe={id}"));
        }
        // A separator no part contains.
        let identity = identity_parts.join("\u{0}");

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
            tls.spiffe_id = upstream.spiffe_id.clone();
        }
        let cluster = Cluster {
            name: name.clone(),
            host: service.host.clone(),
            port: service.port_or_default(uses_tls),
            eds: upstream.eds.clone(),
            lb_policy: upstream.balancing.as_ref().map_or(LbPolicy::RoundRobin, |b| b.policy),
            connect_timeout_ms: spec.connect_timeout_ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
            tls,
            provenance: std::iter::once(mapping.meta.provenance())
                .chain(match transport {
                    Transport::Context(ctx, _) => Some(ctx.meta.provenance()),
                    _ => None,
                })
                .chain(upstream.resolver.provenance.clone())
                .collect(),
        };
        match self.clusters.get_mut(&identity) {
            None => {
                self.clusters.insert(identity.clone(), (cluster, mapping.meta.clone()));
            }
            Some((existing, owner)) => {
                existing.provenance.push(mapping.meta.provenance());
                if existing.connect_timeout_ms == cluster.connect_timeout_ms {
                    return identity;
                }
                let message = format!(
                    "shares cluster {name} with {}, whose connect_timeout_ms ({}) is used",
                    owner.id, existing.connect_timeout_ms
                );
                diagnostics.push(Diagnostic::warning(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
            }
        }
        identity
    }

    /// The clusters under their Envoy names (collisions told apart, long names shortened as
    /// Emissary does), sorted by name, and the identity → Envoy name map the routes need.
    pub fn finish(self, diagnostics: &mut Vec<Diagnostic>) -> (Vec<Cluster>, BTreeMap<String, String>) {
        let mut by_name: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
        for (identity, (cluster, _)) in &self.clusters {
            by_name.entry(&cluster.name).or_default().push(identity);
        }
        let mut full_names: BTreeMap<String, String> = BTreeMap::new();
        for (name, identities) in by_name {
            let collides = identities.len() > 1;
            for identity in identities {
                let full = if collides {
                    let digest = hex::encode(Sha1::digest(identity.as_bytes()));
                    let (cluster, owner) = &self.clusters[identity];
                    let full = format!("{name}_{}", &digest[..8]);
                    let target = match &cluster.eds {
                        Some(eds) => format!("{}:{} through {}", cluster.host, cluster.port, eds.eds_name()),
                        None => format!("{}:{}", cluster.host, cluster.port),
                    };
                    let message = format!(
                        "cluster name {name} would also be another target's; this one ({target}) is named {full}"
                    );
                    diagnostics.push(
                        Diagnostic::warning(Some(&owner.origin), Some(&owner.id), message).with_kind(Kind::Duplicate),
                    );
                    full
                } else {
                    name.to_string()
                };
                full_names.insert(identity.clone(), full);
            }
        }
        let envoy_names = names::shorten_cluster_names(full_names.values().map(String::as_str));
        let mut clusters = Vec::with_capacity(self.clusters.len());
        let mut routes_to = BTreeMap::new();
        for (identity, (cluster, _)) in self.clusters {
            let name = envoy_names[&full_names[&identity]].clone();
            routes_to.insert(identity, name.clone());
            clusters.push(Cluster { name, ..cluster });
        }
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        (clusters, routes_to)
    }
}
