//! The connected Envoys as operators see them: who (node id and cluster, Envoy version, peer),
//! how (protocol, service), since when, and per subscribed type whether the latest configuration
//! was ACKed, is still on its way, or was rejected — plus every NACK, resolved to its culprits.
//! Each stream task keeps its own entry up to date; the admin endpoint reads them all.

use super::nacks::{NackLog, NackReport};
use super::{SyncState, TypeSync};
use crate::xds::XdsType;
use envoy_types::pb::envoy::config::core::v3::{node::UserAgentVersionType, Node};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What an Envoy says about itself on its first request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub id: String,
    pub cluster: String,
    /// `envoy 1.40.0` from the build version, or whatever the client says it is.
    pub agent: String,
}

impl NodeInfo {
    pub fn from_node(node: &Node) -> NodeInfo {
        let version = match &node.user_agent_version_type {
            Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
                .version
                .as_ref()
                .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
                .unwrap_or_default(),
            Some(UserAgentVersionType::UserAgentVersion(version)) => version.clone(),
            _ => String::new(),
        };
        let agent = [node.user_agent_name.as_str(), version.as_str()].join(" ").trim().to_string();
        NodeInfo { id: node.id.clone(), cluster: node.cluster.clone(), agent }
    }
}

/// One stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: u64,
    pub peer: String,
    /// `sotw` or `delta`.
    pub protocol: &'static str,
    /// `ADS`, or the per-type service's type (`CDS`, ...).
    pub service: &'static str,
    pub node: Option<NodeInfo>,
    pub connected_since: SystemTime,
    pub types: Vec<TypeSync>,
    /// The latest NACK of each type on this stream.
    pub last_nacks: BTreeMap<XdsType, NackReport>,
}

impl StreamEntry {
    /// The worst state of its types (a stream that asked for nothing yet is synced).
    pub fn state(&self) -> SyncState {
        self.types.iter().map(TypeSync::state).max().unwrap_or(SyncState::Synced)
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    streams: Mutex<BTreeMap<u64, StreamEntry>>,
    /// Every NACK of every stream (the most recent kept), with its culprits.
    pub nacks: NackLog,
}

impl Registry {
    /// A new stream's entry, removed again when the handle is dropped.
    pub fn register(self: &Arc<Self>, peer: &str, protocol: &'static str, service: &'static str) -> StreamHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = StreamEntry {
            id,
            peer: peer.to_string(),
            protocol,
            service,
            node: None,
            connected_since: SystemTime::now(),
            types: Vec::new(),
            last_nacks: BTreeMap::new(),
        };
        self.streams.lock().expect("never poisoned").insert(id, entry);
        StreamHandle { registry: self.clone(), id }
    }

    /// Every stream, oldest first.
    pub fn streams(&self) -> Vec<StreamEntry> {
        self.streams.lock().expect("never poisoned").values().cloned().collect()
    }
}

/// A stream's hold on its entry.
#[derive(Debug)]
pub struct StreamHandle {
    registry: Arc<Registry>,
    id: u64,
}

impl StreamHandle {
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn update(&self, change: impl FnOnce(&mut StreamEntry)) {
        if let Some(entry) = self.registry.streams.lock().expect("never poisoned").get_mut(&self.id) {
            change(entry);
        }
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        self.registry.streams.lock().expect("never poisoned").remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::BuildVersion;
    use envoy_types::pb::envoy::r#type::v3::SemanticVersion;

    #[test]
    fn envoy_says_who_it_is_in_its_node() {
        let node = Node {
            id: "edge-1".into(),
            cluster: "edge".into(),
            user_agent_name: "envoy".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
                version: Some(SemanticVersion { major_number: 1, minor_number: 40, patch: 0 }),
                metadata: None,
            })),
            ..Default::default()
        };
        assert_eq!(
            NodeInfo::from_node(&node),
            NodeInfo { id: "edge-1".into(), cluster: "edge".into(), agent: "envoy 1.40.0".into() }
        );
    }

    #[test]
    fn entries_live_as_long_as_their_stream() {
        let registry = Arc::new(Registry::default());
        let handle = registry.register("1.2.3.4:5", "sotw", "ADS");
        handle.update(|e| {
            e.types = vec![TypeSync {
                xds_type: XdsType::Cluster,
                sent: Some("v".into()),
                acked: None,
                nacked: false,
                pending: false,
            }]
        });
        assert_eq!(registry.streams()[0].state(), SyncState::Stale, "sent, not yet ACKed");
        drop(handle);
        assert!(registry.streams().is_empty());
    }
}
