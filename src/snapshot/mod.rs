//! Versioned, encoded-once resource sets: what the server hands to every stream.
//!
//! Each resource is encoded into its `Any` (for state-of-the-world responses) and its delta
//! `Resource` wrapper exactly once per content, with a version derived from its bytes; streams
//! only copy these bytes into their gRPC frames. A type whose content did not change keeps the
//! very same `Arc<TypeSnapshot>` as the previous snapshot, so streams can skip it by pointer.

mod framing;
mod version;

pub use framing::Field;
pub use version::VersionHasher;

use crate::xds::provenance::ProvenanceIndex;
use crate::xds::{PerType, Resource, Resources, XdsType};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// One resource, ready to send (see [`Framed`]), shared by every stream and every snapshot it is
/// unchanged in: one reference count to take, not five.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry(Arc<Framed>);

impl std::ops::Deref for Entry {
    type Target = Framed;

    fn deref(&self) -> &Framed {
        &self.0
    }
}

/// One resource's both wire forms, already framed as field 2 (`resources`) of a
/// `DiscoveryResponse` and of a `DeltaDiscoveryResponse`, so a response is its header fields
/// followed by these bytes.
#[derive(PartialEq, Eq)]
pub struct Framed {
    pub name: Arc<str>,
    /// Hash of the encoded resource: equal bytes, equal version.
    pub version: Arc<str>,
    /// `resources` field holding the `google.protobuf.Any`.
    pub sotw_field: Field,
    /// `resources` field holding the delta `Resource` (name, version, resource).
    pub delta_field: Field,
    /// The encoded resource these were framed from. Admission hands an unchanged resource over
    /// in the very same buffer, and a buffer this holds cannot be reused for other bytes, so the
    /// next snapshot recognises it by address without hashing it again.
    body: Bytes,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry({}@{})", self.name, self.version)
    }
}

/// All resources of one type.
#[derive(Debug)]
pub struct TypeSnapshot {
    pub xds_type: XdsType,
    /// Hash over every (name, version): changes iff any resource of the type changed.
    pub version: String,
    pub entries: BTreeMap<Arc<str>, Entry>,
    /// Every entry's field bytes back to back, built on first use: the body of a full-set
    /// response, one buffer for all streams (one resource: its field's parts).
    sotw_block: OnceLock<Vec<Bytes>>,
    delta_block: OnceLock<Vec<Bytes>>,
}

impl PartialEq for TypeSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.xds_type == other.xds_type && self.version == other.version
    }
}

impl TypeSnapshot {
    /// Entries whose bytes did not change since `previous` are taken over as they are (same
    /// buffers), so a reload only frames the resources that changed.
    fn new(xds_type: XdsType, resources: &[Resource], previous: Option<&TypeSnapshot>) -> TypeSnapshot {
        let mut earlier = Earlier::new(previous);
        let entries: BTreeMap<Arc<str>, Entry> = resources
            .iter()
            .map(|resource| {
                let old = earlier.get(&resource.name);
                let entry = match old {
                    Some(old) if same_buffer(&old.body, &resource.body) => old.clone(),
                    _ => {
                        let version = body_version(&resource.body);
                        match old {
                            Some(old) if *old.version == *version => old.clone(),
                            _ => framing::encode_entry(xds_type, resource, version),
                        }
                    }
                };
                (entry.name.clone(), entry)
            })
            .collect();
        let mut hasher = VersionHasher::default();
        for entry in entries.values() {
            hasher.entry(&entry.name, &entry.version);
        }
        TypeSnapshot {
            xds_type,
            version: hasher.finish(),
            entries,
            sotw_block: OnceLock::new(),
            delta_block: OnceLock::new(),
        }
    }

    /// Whether `resources` are this type's entries, in order, each in the very buffer its entry
    /// was framed from: then nothing needs building, hashing or comparing by content (at 50,000
    /// clusters, building the tree alone was a twentieth of a one-Mapping reload).
    fn holds_exactly(&self, resources: &[Resource]) -> bool {
        resources.len() == self.entries.len()
            && resources.iter().zip(self.entries.values()).all(|(resource, entry)| {
                same_buffer(&resource.body, &entry.body) && resource.name.as_str() == &*entry.name
            })
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// All entries as `DiscoveryResponse.resources` bytes, in parts.
    pub fn sotw_block(&self) -> &[Bytes] {
        self.sotw_block.get_or_init(|| concat(self.entries.values().map(|e| &e.sotw_field)))
    }

    /// All entries as `DeltaDiscoveryResponse.resources` bytes, in parts.
    pub fn delta_block(&self) -> &[Bytes] {
        self.delta_block.get_or_init(|| concat(self.entries.values().map(|e| &e.delta_field)))
    }
}

/// The previous snapshot's entries, looked up by name. Resources come sorted by name
/// ([`Resources::with`]), so this walks the previous entries alongside instead of searching the
/// tree for each of tens of thousands of names; a name out of order is searched for.
struct Earlier<'p> {
    previous: Option<&'p TypeSnapshot>,
    walk: std::iter::Peekable<std::collections::btree_map::Values<'p, Arc<str>, Entry>>,
    /// The name of the last entry the walk went past: a name up to it is searched for.
    passed: Option<&'p str>,
}

impl<'p> Earlier<'p> {
    fn new(previous: Option<&'p TypeSnapshot>) -> Self {
        let walk = previous.map_or_else(Default::default, |p| p.entries.values()).peekable();
        Earlier { previous, walk, passed: None }
    }

    fn get(&mut self, name: &str) -> Option<&'p Entry> {
        if self.passed.is_some_and(|passed| name <= passed) {
            return self.previous?.get(name);
        }
        while let Some(entry) = self.walk.next_if(|entry| &*entry.name < name) {
            self.passed = Some(&entry.name);
        }
        self.walk.peek().filter(|entry| &*entry.name == name).copied()
    }
}

fn concat<'a>(fields: impl Iterator<Item = &'a Field> + Clone) -> Vec<Bytes> {
    let mut each = fields.clone();
    if let (Some(only), None) = (each.next(), each.next()) {
        // One resource (the RouteConfiguration of a listener, megabytes): its own buffers.
        return only.parts().cloned().collect();
    }
    let parts = fields.flat_map(Field::parts);
    let mut out = Vec::with_capacity(parts.clone().map(Bytes::len).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
    vec![Bytes::from(out)]
}

fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

fn body_version(body: &[u8]) -> Arc<str> {
    Arc::from(version::of_body(body))
}

/// One complete configuration as served. Immutable; replaced as a whole.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every published snapshot; Envoy sees it as `system_version_info`.
    pub serial: u64,
    types: PerType<Arc<TypeSnapshot>>,
    /// Earlier contents of each type, newest first (at most [`Snapshot::HISTORY`]), so a client
    /// that comes back from another stream naming a version can be told apart from one that
    /// holds nothing. Unchanged resources share their buffers, so this costs little.
    history: PerType<Vec<Arc<TypeSnapshot>>>,
    /// The resources as compiled, for `/snapshot`.
    pub resources: Resources,
    /// The Ambassador resources behind each served resource: whom a NACK blames.
    provenance: Arc<ProvenanceIndex>,
}

impl Snapshot {
    /// How many earlier contents per type are remembered.
    pub const HISTORY: usize = 4;

    /// Builds a snapshot, reusing `previous`'s type snapshots whose content is unchanged.
    pub fn new(resources: Resources, serial: u64, previous: Option<&Snapshot>) -> Snapshot {
        let mut history =
            PerType::from_fn(|xds_type| previous.map(|p| p.history[xds_type].clone()).unwrap_or_default());
        let types = PerType::from_fn(|xds_type| {
            let old = previous.map(|p| p.of(xds_type));
            // The very list the previous snapshot was built from, or its very buffers.
            let same_list = previous.is_some_and(|p| p.resources.shares(&resources, xds_type));
            if let Some(old) = old.filter(|old| same_list || old.holds_exactly(resources.of(xds_type))) {
                return old.clone();
            }
            let fresh = TypeSnapshot::new(xds_type, resources.of(xds_type), old.map(|o| &**o));
            match old {
                Some(old) if old.version == fresh.version => old.clone(),
                Some(old) => {
                    let earlier = &mut history[xds_type];
                    earlier.insert(0, old.clone());
                    earlier.truncate(Snapshot::HISTORY);
                    Arc::new(fresh)
                }
                None => Arc::new(fresh),
            }
        });
        Snapshot { serial, types, history, resources, provenance: Arc::default() }
    }

    /// The same snapshot, with the Ambassador resources behind its resources.
    pub fn with_provenance(self, provenance: ProvenanceIndex) -> Snapshot {
        Snapshot { provenance: Arc::new(provenance), ..self }
    }

    pub fn provenance(&self) -> &ProvenanceIndex {
        &self.provenance
    }

    /// The current content of a type, then its earlier contents, newest first.
    pub fn contents(&self, xds_type: XdsType) -> impl Iterator<Item = &Arc<TypeSnapshot>> {
        std::iter::once(self.of(xds_type)).chain(self.history[xds_type].iter())
    }

    pub fn empty() -> Snapshot {
        Snapshot::new(Resources::default(), 0, None)
    }

    pub fn of(&self, xds_type: XdsType) -> &Arc<TypeSnapshot> {
        &self.types[xds_type]
    }

    /// Whether any type differs from `other` (pointer comparison suffices: unchanged types are shared).
    pub fn same_content(&self, other: &Snapshot) -> bool {
        XdsType::ALL.iter().all(|&t| Arc::ptr_eq(self.of(t), other.of(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn resources(names: &[(&str, &[u8])]) -> Resources {
        let clusters =
            names.iter().map(|(n, b)| Resource { name: n.to_string(), body: Bytes::copy_from_slice(b) }).collect();
        Resources::default().with(XdsType::Cluster, clusters)
    }

    #[test]
    fn unchanged_types_are_shared_and_versions_follow_content() {
        let first = Snapshot::new(resources(&[("a", b"1"), ("b", b"2")]), 1, None);
        let same = Snapshot::new(resources(&[("a", b"1"), ("b", b"2")]), 2, Some(&first));
        assert!(Arc::ptr_eq(first.of(XdsType::Cluster), same.of(XdsType::Cluster)));
        assert!(same.same_content(&first));

        let changed = Snapshot::new(resources(&[("a", b"1"), ("b", b"3")]), 3, Some(&same));
        // The unchanged resource keeps its very buffers.
        let (old_a, new_a) =
            (first.of(XdsType::Cluster).get("a").unwrap(), changed.of(XdsType::Cluster).get("a").unwrap());
        assert!(old_a.sotw_field.parts().zip(new_a.sotw_field.parts()).all(|(a, b)| a.as_ptr() == b.as_ptr()));
        assert_ne!(changed.of(XdsType::Cluster).version, first.of(XdsType::Cluster).version);
        assert_eq!(
            changed.of(XdsType::Cluster).get("a").unwrap().version,
            first.of(XdsType::Cluster).get("a").unwrap().version
        );
        assert_ne!(
            changed.of(XdsType::Cluster).get("b").unwrap().version,
            first.of(XdsType::Cluster).get("b").unwrap().version
        );
        assert!(Arc::ptr_eq(first.of(XdsType::Secret), changed.of(XdsType::Secret)));
    }

    #[test]
    fn unchanged_entries_are_found_in_any_order_of_resources() {
        let names: Vec<String> = (0..20).map(|i| format!("c{i:02}")).collect();
        let all: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), n.as_bytes())).collect();
        let list = |names: &[(&str, &[u8])]| -> Vec<Resource> {
            names.iter().map(|(n, b)| Resource { name: n.to_string(), body: Bytes::copy_from_slice(b) }).collect()
        };
        let first = TypeSnapshot::new(XdsType::Cluster, &list(&all), None);
        let mut orders: Vec<Vec<(&str, &[u8])>> = vec![all.clone(), all.iter().rev().copied().collect()];
        // Interleaved: new names between old ones, out-of-order runs, a changed one.
        let mut mixed: Vec<(&str, &[u8])> = all.iter().step_by(2).copied().collect();
        mixed.extend([("c05a", &b"new"[..]), ("c03", &b"changed"[..]), ("zz", &b"new"[..])]);
        mixed.extend(all.iter().skip(1).step_by(2).filter(|(n, _)| *n != "c03").copied());
        orders.push(mixed);
        for order in orders {
            // Not sorted first, as `Resources` would be: the walk must cope with any order.
            let next = TypeSnapshot::new(XdsType::Cluster, &list(&order), Some(&first));
            for (name, body) in &order {
                let (entry, old) = (next.get(name).unwrap(), first.get(name));
                match old.filter(|old| old.body == *body) {
                    Some(old) => assert!(Arc::ptr_eq(&entry.0, &old.0), "{name} is kept"),
                    None => assert_ne!(Some(&entry.version), old.map(|o| &o.version), "{name} is new"),
                }
            }
        }
    }

    #[test]
    fn earlier_contents_are_remembered_newest_first_and_bounded() {
        let mut snapshot = Snapshot::new(resources(&[("a", b"0")]), 1, None);
        let mut versions = vec![snapshot.of(XdsType::Cluster).version.clone()];
        for i in 1..10u8 {
            let same = Snapshot::new(resources(&[("a", &[b'0' + i])]), 2 * i as u64, Some(&snapshot));
            // Publishing the same content again does not push history.
            snapshot = Snapshot::new(resources(&[("a", &[b'0' + i])]), 2 * i as u64 + 1, Some(&same));
            versions.insert(0, snapshot.of(XdsType::Cluster).version.clone());
        }
        let remembered: Vec<String> = snapshot.contents(XdsType::Cluster).map(|t| t.version.clone()).collect();
        assert_eq!(remembered, versions[..=Snapshot::HISTORY]);
    }

    #[test]
    fn entries_are_framed_resources_fields() {
        use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
        let snapshot = Snapshot::new(resources(&[("a", b"xyz"), ("b", b"uvw")]), 1, None);
        let types = snapshot.of(XdsType::Cluster);
        let entry = types.get("a").unwrap();
        let any = &DiscoveryResponse::decode(entry.sotw_field.to_bytes()).unwrap().resources[0];
        assert_eq!((any.type_url.as_str(), any.value.as_slice()), (XdsType::Cluster.type_url(), &b"xyz"[..]));
        let delta = &DeltaDiscoveryResponse::decode(entry.delta_field.to_bytes()).unwrap().resources[0];
        assert_eq!((delta.name.as_str(), delta.version.as_str()), ("a", &*entry.version));
        let block = |parts: &[Bytes]| Bytes::from(parts.concat());
        assert_eq!(DiscoveryResponse::decode(block(types.sotw_block())).unwrap().resources.len(), 2);
        assert_eq!(DeltaDiscoveryResponse::decode(block(types.delta_block())).unwrap().resources.len(), 2);
        // One resource: its framings' parts, the resource not copied.
        let one = Snapshot::new(resources(&[("a", b"xyz")]), 1, None);
        let (types, entry) = (one.of(XdsType::Cluster), one.of(XdsType::Cluster).get("a").unwrap());
        assert!(types.sotw_block().iter().any(|part| part.as_ptr() == entry.body.as_ptr()));
        assert_eq!(block(types.delta_block()), entry.delta_field.to_bytes());
    }
}
