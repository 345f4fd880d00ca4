//! Decides, resource by resource, what Envoy is sent: every built resource is validated as Envoy
//! will validate it, and one that would be rejected never goes out, because Envoy rejects the
//! whole response it is in (and the server never re-sends a rejected version, so one bad Mapping
//! would freeze every later change of its type). In dependency order:
//! - a Secret that fails is dropped, and so is every cluster that names it;
//! - a cluster that fails (or lost its Secret) is dropped, and routes to it fail closed;
//! - a route that fails becomes a direct 503 under its own name and match; if its match is what
//!   fails (a regex over the program-size limit, an empty header name), it is dropped;
//! - a TLS filter chain whose SDS secret is dropped, or whose TLS settings fail, refuses its
//!   connections (its names' handshakes fail; the listener's other chains keep serving);
//! - a listener that fails is dropped.
//!
//! Each of these is a diagnostic on the Ambassador resource behind it.

use super::downstream_tls::build_downstream_tls_context;
use super::provenance::{report, ProvenanceIndex};
use super::reuse::{Fingerprint, Kept, NameOf, Named, Reuse, Reusing};
use super::route_verdicts::{RouteMemo, RouteVerdicts};
use super::validate::{self, Limits};
use super::{canonical, cluster, listener, route, secret, tcp_listener, Resource, Resources, XdsType};
use crate::compile::ir::{ChainTransport, Cluster, ClusterList, HttpListener, Ir};
use crate::diagnostic::Diagnostic;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything that is served, what was held back and why, and who is behind each resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admitted {
    pub resources: Resources,
    pub diagnostics: Vec<Diagnostic>,
    pub provenance: ProvenanceIndex,
}

/// What one admission leaves for the next: its route and cluster verdicts.
#[derive(Debug, Clone, Default)]
pub struct AdmitMemo {
    routes: RouteMemo,
    clusters: ClusterMemo,
    /// The last admission's clusters as a whole.
    cluster_pass: Option<Arc<ClusterPass>>,
}

/// An admission's clusters as a whole: when the compile hands over the very same list (no claim
/// changed), with the same limits and the same Secrets dropped, the outcome is this one, and no
/// cluster is looked at (looking up 50,000 verdicts one by one was a tenth of a one-Mapping
/// reload at 50,000 Mappings).
#[derive(Debug)]
struct ClusterPass {
    /// Held, so that no other list can take its address.
    list: ClusterList,
    limits: Limits,
    dropped_secrets: Vec<(String, String)>,
    served: Arc<Vec<Resource>>,
    served_clusters: Arc<Vec<Arc<Cluster>>>,
    dropped: Vec<(String, String)>,
    diagnostics: Vec<Diagnostic>,
}

impl ClusterPass {
    fn holds(&self, list: &ClusterList, limits: &Limits, dropped_secrets: &BTreeMap<&str, String>) -> bool {
        Arc::ptr_eq(&self.list, list)
            && self.limits == *limits
            && self.dropped_secrets.len() == dropped_secrets.len()
            && self.dropped_secrets.iter().zip(dropped_secrets).all(|((a, why), (b, because))| a == b && why == because)
    }
}

impl Named for Cluster {
    fn name(&self) -> &str {
        &self.name
    }
}

impl AdmitMemo {
    /// How many routes (per variant) and clusters this admission built rather than reused.
    pub fn built(&self) -> (usize, usize) {
        (self.routes.computed(), self.clusters.computed())
    }

    /// How many routes and clusters it reused only after comparing their content (new values,
    /// equal to the old ones).
    pub fn compared(&self) -> usize {
        self.routes.refreshed() + self.clusters.refreshed()
    }
}

/// What a cluster's verdict is decided from.
#[derive(Debug, Clone)]
struct ClusterDecided {
    cluster: Fingerprint<Cluster>,
    limits: Limits,
    /// A Secret it names that is not served.
    lost_secret: Option<String>,
}

/// Builds, validates and encodes every resource of `ir`; routes and clusters that are the same as
/// in the `previous` admission (and whose clusters or secrets are served, or not, as they were) are
/// not built again. Returns what the next admission starts from.
pub fn admit(ir: &Ir, limits: &Limits, previous: AdmitMemo) -> (Admitted, AdmitMemo) {
    let mut out = Admitted::default();
    let mut dropped_secrets: BTreeMap<&str, String> = BTreeMap::new();
    let mut secrets = Vec::with_capacity(ir.secrets.len());
    for tls_secret in &ir.secrets {
        let message = secret::build_secret(tls_secret);
        match validate::check(&message, limits) {
            Ok(()) => {
                out.provenance.insert(XdsType::Secret, &tls_secret.name, tls_secret.provenance.clone());
                secrets.push(Resource::encode(&tls_secret.name, &message));
            }
            Err(problem) => {
                report(
                    &mut out.diagnostics,
                    &tls_secret.provenance,
                    format!("SDS secret {} is not served: {problem}", tls_secret.name),
                );
                dropped_secrets.insert(&tls_secret.name, problem);
            }
        }
    }

    let (cluster_pass, kept_clusters) = match previous.cluster_pass {
        Some(pass) if pass.holds(&ir.clusters, limits, &dropped_secrets) => (pass, previous.clusters.untouched()),
        _ => admit_clusters(&ir.clusters, limits, &dropped_secrets, previous.clusters),
    };
    out.diagnostics.extend(cluster_pass.diagnostics.iter().cloned());
    out.provenance.set_clusters(cluster_pass.served_clusters.clone());
    let dropped_clusters: BTreeMap<&str, String> =
        cluster_pass.dropped.iter().map(|(name, why)| (name.as_str(), why.clone())).collect();

    let mut listeners = Vec::new();
    for ir_listener in &ir.listeners {
        let ir_listener = refuse_unservable_chains(ir_listener, &dropped_secrets, limits, &mut out.diagnostics);
        let message = listener::build_listener(&ir_listener);
        match validate::check(&message, limits) {
            Ok(()) => {
                out.provenance.insert(XdsType::Listener, &ir_listener.name, ir_listener.provenance.clone());
                listeners.push(Resource::encode(&ir_listener.name, &message));
            }
            Err(problem) => report(
                &mut out.diagnostics,
                &ir_listener.provenance,
                format!("listener {} is not served: {problem}", ir_listener.name),
            ),
        }
    }

    for tcp in &ir.tcp_listeners {
        let clusters = tcp.chains.iter().flat_map(|chain| chain.clusters.iter().map(|(name, _)| name));
        let secrets = tcp.chains.iter().flat_map(|chain| [&chain.certificate_secret, &chain.validation_secret]);
        let lost = clusters
            .filter_map(|name| {
                dropped_clusters.get(name.as_str()).map(|why| format!("its cluster {name} is not served ({why})"))
            })
            .chain(
                secrets
                    .flatten()
                    .filter(|name| dropped_secrets.contains_key(name.as_str()))
                    .map(|name| format!("its SDS secret {name} is not served")),
            )
            .next();
        let message = tcp_listener::build_tcp_listener(tcp);
        match lost.map_or_else(|| validate::check(&message, limits), Err) {
            Ok(()) => {
                out.provenance.insert(XdsType::Listener, &tcp.name, tcp.provenance.clone());
                listeners.push(Resource::encode(&tcp.name, &message));
            }
            Err(problem) => {
                report(&mut out.diagnostics, &tcp.provenance, format!("listener {} is not served: {problem}", tcp.name))
            }
        }
    }

    let mut routes = Vec::new();
    let mut verdicts = RouteVerdicts::continuing(previous.routes);
    for table in &ir.route_configs {
        let mut dropped = Vec::with_capacity(table.virtual_hosts.len());
        let mut spans = Vec::with_capacity(table.virtual_hosts.len());
        for host in &table.virtual_hosts {
            let start = verdicts.asked();
            let mut not_served = Vec::new();
            for (at, route) in host.routes.iter().enumerate() {
                if !verdicts.admit(route, &dropped_clusters, limits, &mut out.diagnostics) {
                    not_served.push(at);
                }
            }
            spans.push((host, start..verdicts.asked()));
            dropped.push(not_served);
        }
        out.provenance.insert_routes(table, dropped);
        let hosts: Vec<_> = spans.into_iter().map(|(host, span)| (host, verdicts.admitted(span).collect())).collect();
        let body = route::encode_route_configuration_from::<&[u8]>(&table.name, &hosts);
        routes.push(Resource { name: table.name.clone(), body: Bytes::from(body) });
    }

    out.resources = Resources::default()
        .with_shared(XdsType::Cluster, cluster_pass.served.clone())
        .with(XdsType::Listener, listeners)
        .with(XdsType::Route, routes)
        .with(XdsType::Secret, secrets);
    let remembered = AdmitMemo { routes: verdicts.finish(), clusters: kept_clusters, cluster_pass: Some(cluster_pass) };
    (out, remembered)
}

type ClusterMemo = Kept<NameOf<Cluster>, ClusterDecided, Result<Bytes, String>>;

/// Validates and encodes every cluster (reusing `previous`'s verdicts where what they were
/// decided from is the same); a cluster that fails, or names a Secret that is not served, is not
/// served.
fn admit_clusters(
    list: &ClusterList,
    limits: &Limits,
    dropped_secrets: &BTreeMap<&str, String>,
    previous: ClusterMemo,
) -> (Arc<ClusterPass>, ClusterMemo) {
    let mut diagnostics = Vec::new();
    let mut dropped = Vec::new();
    let mut served = Vec::with_capacity(list.len());
    let mut served_clusters = Vec::with_capacity(list.len());
    let mut kept_clusters = Reusing::from(previous);
    for ir_cluster in list.iter() {
        let missing = ir_cluster.tls.iter().flat_map(|tls| [&tls.client_certificate_secret, &tls.validation_secret]);
        let lost = missing.flatten().find(|name| dropped_secrets.contains_key(name.as_str()));
        let reuse = |kept: &ClusterDecided| {
            if kept.limits != *limits || kept.lost_secret.as_ref() != lost {
                return Reuse::No;
            }
            kept.cluster.compare(ir_cluster).map(|cluster| ClusterDecided { cluster, ..kept.clone() })
        };
        let kept = kept_clusters.get(NameOf(ir_cluster.clone(), ()), reuse, || {
            let message = cluster::build_cluster(ir_cluster);
            let verdict = match lost {
                Some(name) => Err(format!("its SDS secret {name} is not served")),
                None => validate::check(&message, limits).map(|()| Bytes::from(canonical::encode(&message))),
            };
            let cluster = Fingerprint::of(ir_cluster);
            (ClusterDecided { cluster, limits: *limits, lost_secret: lost.cloned() }, verdict)
        });
        match &kept.1 {
            Ok(body) => {
                served_clusters.push(ir_cluster.clone());
                served.push(Resource { name: ir_cluster.name.clone(), body: body.clone() });
            }
            Err(problem) => {
                report(
                    &mut diagnostics,
                    &ir_cluster.provenance,
                    format!("cluster {} is not served: {problem}", ir_cluster.name),
                );
                dropped.push((ir_cluster.name.clone(), problem.clone()));
            }
        }
    }
    // The compile sorts its clusters by name; served as they come.
    served.sort_by(|a, b| a.name.cmp(&b.name));
    let pass = ClusterPass {
        list: list.clone(),
        limits: *limits,
        dropped_secrets: dropped_secrets.iter().map(|(name, why)| (name.to_string(), why.clone())).collect(),
        served: Arc::new(served),
        served_clusters: Arc::new(served_clusters),
        dropped,
        diagnostics,
    };
    (Arc::new(pass), kept_clusters.finish())
}

/// The listener with every TLS chain that cannot be served turned into a refusing chain: one
/// whose certificate or CA secret was dropped (an SDS name that is not served must never be
/// referenced: Envoy would wait for it), or whose TLS settings Envoy would reject (a cipher name it
/// does not know would take the whole listener, every other Host's chain included, with it).
/// Another chain's certificate must not answer for these names either.
fn refuse_unservable_chains(
    listener: &HttpListener,
    dropped_secrets: &BTreeMap<&str, String>,
    limits: &Limits,
    diagnostics: &mut Vec<Diagnostic>,
) -> HttpListener {
    let mut listener = listener.clone();
    for chain in &mut listener.chains {
        let ChainTransport::Tls(tls) = &chain.transport else { continue };
        let names = std::iter::once(&tls.certificate_secret).chain(&tls.validation_secret);
        let problem = match names.filter_map(|n| Some((n, dropped_secrets.get(n.as_str())?))).next() {
            Some((name, problem)) => format!("SDS secret {name} is not served ({problem})"),
            None => match validate::check(&build_downstream_tls_context(tls), limits) {
                Ok(()) => continue,
                Err(problem) => format!("its TLS settings would be rejected: {problem}"),
            },
        };
        let names = chain.server_names.first().map_or("any name", String::as_str);
        let message = format!("{problem}; TLS connections for {names} on listener {} are refused", listener.name);
        report(diagnostics, &chain.provenance, message);
        chain.transport = ChainTransport::Refused;
    }
    listener
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile, Options};
    use crate::model::{parse_documents, TlsFiles};

    fn ir() -> Ir {
        let yaml = "---\nkind: Mapping\nname: a\nprefix: /a/\nservice: svc-a\n---\nkind: Mapping\nname: b\nprefix: /b/\nservice: svc-b\n";
        compile(&parse_documents("t.yaml", yaml).0, &TlsFiles::default(), &Options::default()).ir
    }

    /// The same list of clusters with the same limits is admitted as a whole: the same served
    /// list, no cluster looked at. A new list (even an equal one) or other limits are admitted
    /// cluster by cluster, and only the changed ones are built.
    #[test]
    fn an_unchanged_cluster_list_is_reused_whole() {
        let (first, limits) = (ir(), Limits::default());
        // Two services, and the probe Mappings' cluster.
        let clusters = first.clusters.len();
        assert_eq!(clusters, 3);
        let (admitted, memo) = admit(&first, &limits, AdmitMemo::default());
        assert_eq!((memo.built().1, admitted.resources.of(XdsType::Cluster).len()), (clusters, clusters));

        let (again, memo) = admit(&first, &limits, memo);
        assert!(again.resources.shares(&admitted.resources, XdsType::Cluster));
        assert_eq!((memo.built().1, memo.clusters.refreshed()), (0, 0));
        assert_eq!(again.provenance, admitted.provenance);

        // An equal list compiled afresh: each cluster is compared, none built.
        let (equal, memo) = admit(&ir(), &limits, memo);
        assert!(!equal.resources.shares(&admitted.resources, XdsType::Cluster));
        assert_eq!(equal.resources, admitted.resources);
        assert_eq!((memo.built().1, memo.clusters.refreshed()), (0, clusters));

        // Other limits: every cluster is decided again.
        let lower = Limits { regex_program_size: limits.regex_program_size - 1 };
        let (lowered, memo) = admit(&first, &lower, memo);
        assert_eq!((memo.built().1, lowered.resources), (clusters, admitted.resources.clone()));
        let (_, memo) = admit(&first, &lower, memo);
        assert_eq!(memo.built().1, 0);
    }
}
