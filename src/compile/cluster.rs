//! Upstream clusters: one per (service, transport, namespace), named as Emissary names them, with
//! the TLS origination settings of the Mapping's transport.

use super::ir::{Cluster, UpstreamTls};
use super::names;
use super::service::Service;
use super::tls::ResolvedContext;
use crate::diagnostic::{Diagnostic, ResourceId};
use crate::model::{Mapping, TlsContext};
use std::collections::BTreeMap;

const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3000;

/// How a Mapping talks to its upstream.
pub enum Transport<'a> {
    Plaintext,
    /// `https://` or `tls: true`: TLS without a client certificate.
    Tls,
    Context(&'a TlsContext, &'a ResolvedContext),
    /// TLS was asked for but cannot be provided: the route fails closed.
    Unavailable(String),
}

/// The clusters the Mappings need, by full (unshortened) name.
#[derive(Default)]
pub struct ClusterSet {
    /// Full cluster name → (cluster, the Mapping that created it).
    clusters: BTreeMap<String, (Cluster, ResourceId)>,
}

impl ClusterSet {
    /// Returns the (full) name of the cluster for this Mapping, creating it on first use.
    pub fn cluster_for(
        &mut self,
        mapping: &Mapping,
        service: &Service,
        transport: &Transport<'_>,
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
            provenance: std::iter::once(mapping.meta.provenance())
                .chain(match transport {
                    Transport::Context(ctx, _) => Some(ctx.meta.provenance()),
                    _ => None,
                })
                .collect(),
        };
        match self.clusters.get_mut(&name) {
            None => {
                self.clusters.insert(name.clone(), (cluster, mapping.meta.id.clone()));
            }
            Some((existing, owner)) => {
                existing.provenance.push(mapping.meta.provenance());
                if existing.connect_timeout_ms == cluster.connect_timeout_ms {
                    return name;
                }
                let message = format!(
                    "shares cluster {name} with {owner}, whose connect_timeout_ms ({}) is used",
                    existing.connect_timeout_ms
                );
                diagnostics.push(Diagnostic::warning(Some(&mapping.meta.origin), Some(&mapping.meta.id), message));
            }
        }
        name
    }

    /// The clusters under their Envoy names (long names shortened as Emissary does), sorted by
    /// name, and the full name → Envoy name map the routes need.
    pub fn finish(self) -> (Vec<Cluster>, BTreeMap<String, String>) {
        let envoy_names = names::shorten_cluster_names(self.clusters.keys().map(String::as_str));
        let mut clusters: Vec<Cluster> = self
            .clusters
            .into_values()
            .map(|(cluster, _)| Cluster { name: envoy_names[&cluster.name].clone(), ..cluster })
            .collect();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        (clusters, envoy_names)
    }
}
