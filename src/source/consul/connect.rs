//! The certificate Consul's Connect CA issues to Ambassador, and the CA roots, followed with
//! blocking queries on `/v1/agent/connect/ca/leaf/<service>` and `/v1/agent/connect/ca/roots`.
//! Shared by `serve --consul-address` (an in-process source) and `ambassador-xds consul-connect`
//! (which stores them as a Kubernetes Secret).
//!
//! Naming, as the connector Emissary's docs describe: the Consul service is `ambassador`, or
//! `ambassador-<AMBASSADOR_ID>` when an id is set, and the Secret is `<service>-consul-connect`.

use super::api::{CaRoots, LeafCert};
use super::blocking;
use super::client::{ConsulClient, ConsulError};
use crate::model::Sensitive;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// The Consul service whose leaf certificate Ambassador presents.
pub fn service_name(ambassador_id: &str) -> String {
    match ambassador_id.trim() {
        "" => "ambassador".to_string(),
        id => format!("ambassador-{id}"),
    }
}

/// The Secret the certificate is stored as, unless one is named.
pub fn default_secret_name(service: &str) -> String {
    format!("{service}-consul-connect")
}

/// Ambassador's Connect identity: its leaf and the roots that sign the mesh.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectCertificates {
    pub leaf: LeafCert,
    pub roots: CaRoots,
}

impl std::fmt::Debug for ConnectCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectCertificates")
            .field("leaf", &self.leaf)
            .field("active_root", &self.roots.active_root_id)
            .field("roots", &self.roots.roots.len())
            .finish()
    }
}

impl ConnectCertificates {
    /// The Secret's keys: `tls.crt` is the leaf (with any intermediates Consul sent) followed by
    /// the active root, as Emissary's connector wrote it; `tls.key` the leaf's key; `ca.crt` every
    /// current root (a rotation keeps the old one trusted until Consul drops it), by root ID.
    pub fn secret_entries(&self) -> Result<BTreeMap<String, Sensitive>, String> {
        let active = self
            .roots
            .roots
            .iter()
            .find(|root| root.id == self.roots.active_root_id)
            .ok_or_else(|| format!("the active root {} is not among the roots", self.roots.active_root_id))?;
        let mut roots: Vec<&super::api::CaRoot> = self.roots.roots.iter().collect();
        roots.sort_by(|a, b| a.id.cmp(&b.id));
        let chain = pem_blocks([self.leaf.cert_pem.as_str(), active.root_cert.as_str()]);
        let ca = pem_blocks(roots.iter().map(|root| root.root_cert.as_str()));
        let key = with_newline(&self.leaf.private_key_pem);
        Ok(BTreeMap::from([
            ("ca.crt".to_string(), Sensitive::new(ca.into_bytes())),
            ("tls.crt".to_string(), Sensitive::new(chain.into_bytes())),
            ("tls.key".to_string(), Sensitive::new(key.into_bytes())),
        ]))
    }
}

fn with_newline(pem: &str) -> String {
    let trimmed = pem.trim();
    format!("{trimmed}\n")
}

fn pem_blocks<'a>(blocks: impl IntoIterator<Item = &'a str>) -> String {
    blocks.into_iter().map(with_newline).collect()
}

/// What the watch knows now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectStatus {
    /// Once both the leaf and the roots came; afterwards always the latest good ones.
    pub certificates: Option<ConnectCertificates>,
    pub roots_error: Option<ConsulError>,
    pub leaf_error: Option<ConsulError>,
}

impl ConnectStatus {
    /// The current problem, roots first.
    pub fn error(&self) -> Option<&ConsulError> {
        self.roots_error.as_ref().or(self.leaf_error.as_ref())
    }
}

/// The two blocking queries, running until dropped.
pub struct ConnectWatch {
    status: watch::Receiver<ConnectStatus>,
    stop: watch::Sender<bool>,
}

#[derive(Default)]
struct Parts {
    leaf: Option<LeafCert>,
    roots: Option<CaRoots>,
}

impl ConnectWatch {
    /// Starts watching (on the current tokio runtime) the leaf of Consul service `service`.
    pub fn start(client: ConsulClient, service: &str, wait: Duration) -> ConnectWatch {
        let (status_tx, status) = watch::channel(ConnectStatus::default());
        let (stop, stop_rx) = watch::channel(false);
        let parts = std::sync::Arc::new(std::sync::Mutex::new(Parts::default()));
        let leaf_path = format!("/v1/agent/connect/ca/leaf/{}?", percent_encode(service));
        for (path, is_leaf) in [("/v1/agent/connect/ca/roots?".to_string(), false), (leaf_path, true)] {
            let (client, stop_rx, status_tx, parts) =
                (client.clone(), stop_rx.clone(), status_tx.clone(), parts.clone());
            let what = if is_leaf { format!("the leaf certificate of {service}") } else { "the CA roots".into() };
            tokio::spawn(async move {
                let status_on_error = status_tx.clone();
                let what_on_error = what.clone();
                let on_answer = |body: bytes::Bytes| {
                    let parsed = {
                        let mut parts = parts.lock().unwrap_or_else(|p| p.into_inner());
                        let parsed = if is_leaf {
                            serde_json::from_slice::<LeafCert>(&body).map(|leaf| parts.leaf = Some(leaf))
                        } else {
                            serde_json::from_slice::<CaRoots>(&body).map(|roots| parts.roots = Some(roots))
                        };
                        parsed.map(|()| match (&parts.leaf, &parts.roots) {
                            (Some(leaf), Some(roots)) => {
                                Some(ConnectCertificates { leaf: leaf.clone(), roots: roots.clone() })
                            }
                            _ => None,
                        })
                    };
                    match parsed {
                        Ok(certificates) => status_tx.send_if_modified(|status| {
                            let before = status.clone();
                            set_error(status, is_leaf, None, &what);
                            if certificates.is_some() {
                                status.certificates = certificates;
                            }
                            *status != before
                        }),
                        Err(err) => status_tx.send_if_modified(|status| {
                            let error = ConsulError::Invalid(err.to_string());
                            set_error(status, is_leaf, Some(error), &what)
                        }),
                    };
                };
                let on_error = |err: ConsulError| {
                    status_on_error.send_if_modified(|status| set_error(status, is_leaf, Some(err), &what_on_error));
                };
                blocking::run(&client, &path, wait, stop_rx, on_answer, on_error).await;
            });
        }
        ConnectWatch { status, stop }
    }

    pub fn status(&self) -> watch::Receiver<ConnectStatus> {
        self.status.clone()
    }
}

impl Drop for ConnectWatch {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Records the error state of one query; logs only when the state changes (a new kind of
/// error, or recovery), never for each retry. Returns whether anything changed.
fn set_error(status: &mut ConnectStatus, is_leaf: bool, error: Option<ConsulError>, what: &str) -> bool {
    let slot = if is_leaf { &mut status.leaf_error } else { &mut status.roots_error };
    let before = slot.as_ref().map(ConsulError::state);
    let after = error.as_ref().map(ConsulError::state);
    if before != after {
        match &error {
            Some(err) => tracing::warn!(
                state = err.state(),
                "fetching {what} from Consul: {err}; the last good certificate stays in use"
            ),
            None => tracing::info!("fetching {what} from Consul works again"),
        }
    }
    let changed = *slot != error;
    *slot = error;
    changed
}

/// Consul service names are DNS-ish; anything else is escaped for the path.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::api::CaRoot;
    use super::*;

    fn root(id: &str, pem: &str, active: bool) -> CaRoot {
        CaRoot { id: id.into(), name: String::new(), root_cert: pem.into(), active }
    }

    #[test]
    fn names_follow_the_ambassador_id() {
        assert_eq!(service_name(""), "ambassador");
        assert_eq!(service_name("blue"), "ambassador-blue");
        assert_eq!(default_secret_name(&service_name("")), "ambassador-consul-connect");
        assert_eq!(default_secret_name(&service_name("blue")), "ambassador-blue-consul-connect");
    }

    #[test]
    fn the_secret_holds_the_leaf_then_the_active_root_and_every_root() {
        let certificates = ConnectCertificates {
            leaf: LeafCert {
                serial_number: "1".into(),
                cert_pem: "LEAF".into(),
                private_key_pem: "KEY\n".into(),
                service: "ambassador".into(),
                service_uri: String::new(),
                valid_before: String::new(),
            },
            roots: CaRoots {
                active_root_id: "b".into(),
                trust_domain: "td.consul".into(),
                roots: vec![root("b", "NEW\n", true), root("a", "OLD", false)],
            },
        };
        let entries = certificates.secret_entries().unwrap();
        let text = |key: &str| String::from_utf8(entries[key].expose().to_vec()).unwrap();
        assert_eq!(text("tls.crt"), "LEAF\nNEW\n");
        assert_eq!(text("tls.key"), "KEY\n");
        assert_eq!(text("ca.crt"), "OLD\nNEW\n");
        let mut orphan = certificates.clone();
        orphan.roots.active_root_id = "c".into();
        assert!(orphan.secret_entries().is_err());
    }
}
