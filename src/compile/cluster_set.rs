//! The cluster set: every Mapping's (and TCPMapping's) claim merged by identity, named as
//! Emissary names clusters (colliding names told apart, long names shortened), and what a compile
//! leaves for the next one so that an unchanged set is not named again.

use super::cluster::{ClusterClaim, ClusterRequest};
use super::ir::{Cluster, ClusterList, ClusterOptions};
use super::names;
use crate::diagnostic::Provenance;
use crate::diagnostic::{Diagnostic, Kind};
use foldhash::{HashMap, HashMapExt};
use sha1::{Digest, Sha1};
use std::sync::Arc;

/// Cluster identity → Envoy name. Maps in the per-reload path hash with foldhash: SipHash over
/// every cluster identity and group id was a tenth of a reload, and these keys are not secret.
#[derive(Debug, Default)]
pub struct EnvoyNames {
    by_identity: HashMap<Arc<str>, String>,
    /// The identities whose Envoy name is not the name their claims give them (told apart from
    /// a colliding one, or shortened). Every other Envoy name follows from the identity alone.
    renamed: foldhash::HashSet<Arc<str>>,
}

impl EnvoyNames {
    /// Whether the cluster `identity` is not under the name its claims give it.
    pub fn renamed(&self, identity: &str) -> bool {
        !self.renamed.is_empty() && self.renamed.contains(identity)
    }

    /// Whether the same clusters are renamed, to the same names: then every cluster that both
    /// name has the same Envoy name in each.
    pub fn same_renames(&self, other: &EnvoyNames) -> bool {
        self.renamed.len() == other.renamed.len()
            && self.renamed.iter().all(|identity| {
                other.renamed.contains(identity) && other.by_identity.get(identity) == self.by_identity.get(identity)
            })
    }
}

/// Names as given, none renamed (tests).
#[cfg(test)]
impl FromIterator<(String, String)> for EnvoyNames {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(names: I) -> Self {
        EnvoyNames {
            by_identity: names.into_iter().map(|(id, name)| (id.into(), name)).collect(),
            renamed: Default::default(),
        }
    }
}

impl std::ops::Index<&str> for EnvoyNames {
    type Output = String;

    fn index(&self, identity: &str) -> &String {
        &self.by_identity[identity]
    }
}

/// The clusters a compile made anew rather than taking from a claim as it is: those several
/// Mappings share (their provenance names every owner) and renamed ones. Kept for the next
/// compile, which hands admission the very same value when the claim, the name and the owners are
/// the same, so that admission knows it by address (a shared cluster was otherwise a new value,
/// digested again, on every reload).
///
/// It also keeps the whole set the compile finished with: when the next compile's claims are the
/// same (the same claims, or equal ones, in the same order), the set, its names and its
/// diagnostics are that compile's, and nothing is keyed, sorted or named again (at 50,000
/// Mappings that was a fifth of a one-Mapping reload).
#[derive(Debug, Clone, Default)]
pub struct ClusterMemo {
    by_identity: Arc<HashMap<Arc<str>, Merged>>,
    finished: Option<Arc<Finished>>,
}

/// The clusters by name, the Envoy name of each identity, and the clusters made anew.
type NamedSet = (Vec<Arc<Cluster>>, EnvoyNames, HashMap<Arc<str>, Merged>);

/// A finished cluster set, and the claims it was made from.
#[derive(Debug)]
struct Finished {
    claims: Vec<Arc<ClusterClaim>>,
    clusters: ClusterList,
    names: Arc<EnvoyNames>,
    diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone)]
struct Merged {
    /// The first claim's cluster (held: no other value can take its address).
    first: Arc<Cluster>,
    later_owners: Vec<Provenance>,
    cluster: Arc<Cluster>,
}

/// The clusters the Mappings need, by identity: the parts of their names, unmangled.
#[derive(Default)]
pub struct ClusterSet {
    /// In the order they were made (Mappings in processing order, then TCPMappings).
    claims: Vec<Arc<ClusterClaim>>,
}

/// A cluster as its first claim made it, and who else uses it.
struct Claimed {
    first: Arc<ClusterClaim>,
    later_owners: Vec<Provenance>,
}

impl ClusterSet {
    /// Returns the identity of the cluster for this request, creating it on first use.
    pub fn cluster_for(&mut self, request: ClusterRequest<'_, '_>) -> String {
        let claim = Arc::new(ClusterClaim::new(request));
        self.claim(&claim);
        claim.identity.to_string()
    }

    /// Adds a claim; claims of one cluster (the same identity) are merged when the set is
    /// finished, the first one's settings used.
    pub fn claim(&mut self, claim: &Arc<ClusterClaim>) {
        self.claims.push(claim.clone());
    }

    /// The claims by identity: each cluster as its first claim made it, and who else uses it
    /// (with a warning for each later claim whose settings differ).
    fn by_identity(claims: &[Arc<ClusterClaim>], diagnostics: &mut Vec<Diagnostic>) -> HashMap<Arc<str>, Claimed> {
        let mut clusters: HashMap<Arc<str>, Claimed> = HashMap::with_capacity(claims.len());
        for claim in claims {
            let Some(claimed) = clusters.get_mut(&*claim.identity) else {
                let claimed = Claimed { first: claim.clone(), later_owners: Vec::new() };
                clusters.insert(claim.identity.clone(), claimed);
                continue;
            };
            let (owner, existing) = (claim.owner(), &claimed.first.cluster);
            claimed.later_owners.push(owner.clone());
            if existing.options != claim.cluster.options {
                let message = format!(
                    "shares cluster {} with {}, whose settings are used: {}",
                    existing.name,
                    claimed.first.owner().resource,
                    differences(&existing.options, &claim.cluster.options)
                );
                diagnostics.push(Diagnostic::warning(Some(&owner.origin), Some(&owner.resource), message));
            }
        }
        clusters
    }
}

/// The same claims in the same order: the same values, or (a Mapping compiled again) equal ones.
fn same_claims(kept: &[Arc<ClusterClaim>], now: &[Arc<ClusterClaim>]) -> bool {
    kept.len() == now.len()
        && kept.iter().zip(now).all(|(a, b)| Arc::ptr_eq(a, b) || (a.identity == b.identity && a.cluster == b.cluster))
}

impl ClusterSet {
    /// The clusters under their Envoy names (collisions told apart, long names shortened as
    /// Emissary does), sorted by name, and the identity → Envoy name map the routes need;
    /// `previous` is what the last compile left (see [`ClusterMemo`]), and what this one leaves
    /// is returned.
    pub fn finish(
        self,
        previous: &ClusterMemo,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> (ClusterList, Arc<EnvoyNames>, ClusterMemo) {
        if let Some(kept) = previous.finished.as_ref().filter(|kept| same_claims(&kept.claims, &self.claims)) {
            diagnostics.extend(kept.diagnostics.iter().cloned());
            // Remembered with these claims, so that the next compile knows them by address.
            let (clusters, names, own) = (kept.clusters.clone(), kept.names.clone(), kept.diagnostics.clone());
            let finished = Finished { claims: self.claims, clusters: clusters.clone(), names, diagnostics: own };
            let memo = ClusterMemo { by_identity: previous.by_identity.clone(), finished: Some(Arc::new(finished)) };
            return (clusters, kept.names.clone(), memo);
        }
        let mut own = Vec::new();
        let (clusters, names, by_identity) = Self::name(Self::by_identity(&self.claims, &mut own), previous, &mut own);
        let clusters: ClusterList = clusters.into();
        diagnostics.extend(own.iter().cloned());
        let names = Arc::new(names);
        let finished =
            Finished { claims: self.claims, clusters: clusters.clone(), names: names.clone(), diagnostics: own };
        let memo = ClusterMemo { by_identity: Arc::new(by_identity), finished: Some(Arc::new(finished)) };
        (clusters, names, memo)
    }

    /// Names every claimed cluster (as Emissary does, telling colliding names apart) and makes
    /// the clusters several Mappings share or that are renamed (reusing `previous`'s).
    fn name(claims: HashMap<Arc<str>, Claimed>, previous: &ClusterMemo, diagnostics: &mut Vec<Diagnostic>) -> NamedSet {
        // By name, then identity: clusters whose names collide are neighbours, and the clusters
        // come out nearly in the order they are served in. The keys are taken out first, so
        // that sorting compares strings rather than chasing pointers to them.
        let claimed: Vec<(Arc<str>, Claimed)> = claims.into_iter().collect();
        let mut order: Vec<(&str, &str, usize)> = claimed
            .iter()
            .enumerate()
            .map(|(at, (identity, entry))| (entry.first.cluster.name.as_str(), &**identity, at))
            .collect();
        order.sort_unstable();
        let name_at = |i: usize| order.get(i).map(|(name, _, _)| *name);
        let full_names: Vec<(usize, String)> = (0..order.len())
            .map(|i| {
                let (name, identity, at) = order[i];
                let collides = (i > 0 && name_at(i - 1) == Some(name)) || name_at(i + 1) == Some(name);
                if !collides {
                    return (at, name.to_string());
                }
                let entry = &claimed[at].1;
                let (cluster, owner) = (&entry.first.cluster, entry.first.owner());
                let digest = hex::encode(Sha1::digest(identity.as_bytes()));
                let full = format!("{name}_{}", &digest[..8]);
                let target = match &cluster.eds {
                    Some(eds) => format!("{}:{} through {}", cluster.host, cluster.port, eds.eds_name()),
                    None => format!("{}:{}", cluster.host, cluster.port),
                };
                let message =
                    format!("cluster name {name} would also be another target's; this one ({target}) is named {full}");
                diagnostics.push(
                    Diagnostic::warning(Some(&owner.origin), Some(&owner.resource), message).with_kind(Kind::Duplicate),
                );
                (at, full)
            })
            .collect();
        let shortened = names::shorten_long_cluster_names(full_names.iter().map(|(_, full)| full.as_str()));
        let mut claimed: Vec<Option<(Arc<str>, Claimed)>> = claimed.into_iter().map(Some).collect();
        let mut clusters = Vec::with_capacity(claimed.len());
        let mut names = EnvoyNames { by_identity: HashMap::with_capacity(claimed.len()), ..EnvoyNames::default() };
        let mut made = HashMap::new();
        for (at, full) in full_names {
            let (identity, entry) = claimed[at].take().expect("each cluster is named once");
            let name = shortened.get(&full).cloned().unwrap_or(full);
            let claimed = &entry.first.cluster;
            if claimed.name == name && entry.later_owners.is_empty() {
                clusters.push(claimed.clone());
            } else {
                if claimed.name != name {
                    names.renamed.insert(identity.clone());
                }
                let same = |kept: &&Merged| {
                    Arc::ptr_eq(&kept.first, claimed)
                        && kept.cluster.name == name
                        && kept.later_owners == entry.later_owners
                };
                let cluster = match previous.by_identity.get(&identity).filter(same) {
                    Some(kept) => kept.cluster.clone(),
                    None => {
                        let mut cluster = Cluster::clone(claimed);
                        cluster.name = name.clone();
                        cluster.provenance.extend(entry.later_owners.iter().cloned());
                        Arc::new(cluster)
                    }
                };
                let merged =
                    Merged { first: claimed.clone(), later_owners: entry.later_owners, cluster: cluster.clone() };
                made.insert(identity.clone(), merged);
                clusters.push(cluster);
            }
            names.by_identity.insert(identity, name);
        }
        // Only renamed clusters can be out of place.
        clusters.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        (clusters, names, made)
    }
}

/// Which settings differ, for the warning (Emissary keeps the first Mapping's silently).
fn differences(used: &ClusterOptions, ignored: &ClusterOptions) -> String {
    let mut out = Vec::new();
    let mut compare = |name: &str, differs: bool| {
        if differs {
            out.push(name.to_string());
        }
    };
    compare("connect_timeout_ms", used.connect_timeout_ms != ignored.connect_timeout_ms);
    compare("enable_ipv4/enable_ipv6", used.dns != ignored.dns);
    compare("dns_type", used.logical_dns != ignored.logical_dns);
    compare("respect_dns_ttl", used.respect_dns_ttl != ignored.respect_dns_ttl);
    compare("cluster_idle_timeout_ms", used.idle_timeout_ms != ignored.idle_timeout_ms);
    compare(
        "cluster_max_connection_lifetime_ms",
        used.max_connection_lifetime_ms != ignored.max_connection_lifetime_ms,
    );
    compare("keepalive", used.keepalive != ignored.keepalive);
    compare("stats_name", used.stats_name != ignored.stats_name);
    format!("this one's {} ignored", out.join(", "))
}
