//! What Envoy rejected, and whom to blame: each NACK is resolved through the snapshot's
//! provenance to the Ambassador resources (file, document, `kind namespace/name`) behind the
//! rejected xDS resources, logged once, counted per type and culprit for `/metrics`, and kept
//! (the most recent ones) as diagnostics for `/snapshot` and the diagnostics page.

use super::Nack;
use crate::diagnostic::{Diagnostic, Kind, Provenance};
use crate::snapshot::Snapshot;
use crate::xds::XdsType;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// How many NACKs are kept as diagnostics (the counters cover all of them).
const KEPT: usize = 64;

/// One rejection, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackReport {
    pub peer: String,
    pub nack: Nack,
    pub culprits: Vec<Provenance>,
}

impl NackReport {
    /// One diagnostic per culprit (or one without a resource when nothing is known behind the
    /// rejected resources).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let message = format!(
            "Envoy ({}) rejected {} version {} ({}): {}",
            self.peer,
            self.nack.xds_type.short_name(),
            self.nack.version,
            self.nack.resource_names.join(", "),
            self.nack.message.lines().next().unwrap_or_default()
        );
        if self.culprits.is_empty() {
            return vec![Diagnostic::error(None, None, message).with_kind(Kind::Rejected)];
        }
        self.culprits
            .iter()
            .map(|c| Diagnostic::error(Some(&c.origin), Some(&c.resource), message.clone()).with_kind(Kind::Rejected))
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct NackLog {
    recent: Mutex<VecDeque<NackReport>>,
    /// (type, culprit as `Kind namespace/name`, or empty) → NACKs.
    counts: Mutex<BTreeMap<(XdsType, String), u64>>,
}

impl NackLog {
    /// Resolves `nack` against `snapshot` and records it; returns the report (for the log line).
    pub fn record(&self, peer: &str, nack: Nack, snapshot: &Snapshot) -> NackReport {
        let culprits = snapshot.provenance().culprits(nack.xds_type, &nack.resource_names, &nack.message);
        let report = NackReport { peer: peer.to_string(), nack, culprits };
        {
            let mut counts = self.counts.lock().expect("never poisoned");
            if report.culprits.is_empty() {
                *counts.entry((report.nack.xds_type, String::new())).or_default() += 1;
            }
            for culprit in &report.culprits {
                *counts.entry((report.nack.xds_type, culprit.resource.to_string())).or_default() += 1;
            }
        }
        let mut recent = self.recent.lock().expect("never poisoned");
        recent.push_back(report.clone());
        if recent.len() > KEPT {
            recent.pop_front();
        }
        report
    }

    /// The kept NACKs as diagnostics, oldest first.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.recent.lock().expect("never poisoned").iter().flat_map(NackReport::diagnostics).collect()
    }

    pub fn recent(&self) -> Vec<NackReport> {
        self.recent.lock().expect("never poisoned").iter().cloned().collect()
    }

    /// NACKs per (type, culprit).
    pub fn counts(&self) -> BTreeMap<(XdsType, String), u64> {
        self.counts.lock().expect("never poisoned").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::{Origin, ResourceId};
    use crate::xds::provenance::ProvenanceIndex;

    #[test]
    fn a_nack_is_blamed_on_the_resources_behind_it() {
        let mut index = ProvenanceIndex::default();
        let mapping =
            Provenance { origin: Origin::file("m.yaml"), resource: ResourceId::new("Mapping", "shop", "cart") };
        index.insert(XdsType::Cluster, "cluster_cart_shop", vec![mapping.clone()]);
        let snapshot = Snapshot::empty().with_provenance(index);
        let log = NackLog::default();
        let nack = Nack {
            xds_type: XdsType::Cluster,
            version: "v7".into(),
            resource_names: vec!["cluster_cart_shop".into()],
            message: "cluster: bad".into(),
        };
        let report = log.record("10.0.0.1:5000", nack, &snapshot);
        assert_eq!(report.culprits, [mapping]);
        let diagnostics = log.diagnostics();
        assert_eq!(diagnostics.len(), 1);
        let line = diagnostics[0].to_string();
        assert!(
            line.starts_with("error: m.yaml (document 0): Mapping shop/cart: Envoy (10.0.0.1:5000) rejected CDS"),
            "{line}"
        );
        assert_eq!(log.counts()[&(XdsType::Cluster, "Mapping shop/cart".to_string())], 1);
    }
}
