//! IR → envoy-types messages, one module per Envoy resource type. Pure functions, no I/O.

mod admit;
pub mod canonical;
pub mod cluster;
pub mod descriptors;
mod downstream_tls;
pub mod endpoint;
pub mod error_response;
pub mod field;
pub mod listener;
pub mod provenance;
mod resource_type;
mod reuse;
pub mod route;
mod route_verdicts;
pub mod secret;
pub mod tcp_listener;
pub mod validate;

pub use admit::{admit, AdmitMemo, Admitted};
pub use resource_type::{GrpcService, PerType, XdsType, ADS_SERVICE};

use crate::compile::ir::Ir;
use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{config_source, AggregatedConfigSource, ApiVersion, ConfigSource};
use envoy_types::pb::google::protobuf::{Any, Duration};
use prost::Message;
use std::sync::Arc;

/// One resource, encoded once: the bytes are what every xDS stream sends and what `render`
/// prints, so the two cannot disagree. `Bytes` makes sharing them free.
#[derive(Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub body: Bytes,
}

impl Resource {
    /// Map entries in key order ([`canonical`]): the same message, the same bytes.
    pub fn encode<M: Message + prost::Name>(name: &str, message: &M) -> Resource {
        Resource { name: name.to_string(), body: Bytes::from(canonical::encode(message)) }
    }

    pub fn decode<M: Message + Default>(&self) -> M {
        M::decode(self.body.clone()).expect("resources are encoded by this crate")
    }
}

impl std::fmt::Debug for Resource {
    // Bodies may hold private keys: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resource({}, {} bytes)", self.name, self.body.len())
    }
}

/// Every resource of one snapshot, by type, each list sorted by resource name. A list is shared:
/// an admission that finds a type unchanged hands over the same list, and the snapshot knows it
/// by address (50,000 clusters are not compared one by one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources(PerType<Arc<Vec<Resource>>>);

impl Resources {
    pub fn of(&self, xds_type: XdsType) -> &[Resource] {
        &self.0[xds_type]
    }

    /// The resources of one type, to change (copied first if the list is shared).
    pub fn of_mut(&mut self, xds_type: XdsType) -> &mut Vec<Resource> {
        Arc::make_mut(&mut self.0[xds_type])
    }

    /// Replaces the resources of one type (sorted by name here).
    pub fn set(&mut self, xds_type: XdsType, mut resources: Vec<Resource>) {
        resources.sort_by(|a, b| a.name.cmp(&b.name));
        self.0[xds_type] = Arc::new(resources);
    }

    /// Resources of one type (sorted by name here).
    pub fn with(mut self, xds_type: XdsType, resources: Vec<Resource>) -> Resources {
        self.set(xds_type, resources);
        self
    }

    /// Resources of one type as a list already sorted by name, shared.
    pub fn with_shared(mut self, xds_type: XdsType, resources: Arc<Vec<Resource>>) -> Resources {
        debug_assert!(resources.is_sorted_by(|a, b| a.name <= b.name));
        self.0[xds_type] = resources;
        self
    }

    /// Whether both hold the very same list of `xds_type`.
    pub fn shares(&self, other: &Resources, xds_type: XdsType) -> bool {
        Arc::ptr_eq(&self.0[xds_type], &other.0[xds_type])
    }

    /// How many resources of each type, in golden-document order.
    pub fn counts(&self) -> impl Iterator<Item = (XdsType, usize)> + '_ {
        self.0.iter().map(|(t, list)| (t, list.len()))
    }
}

/// Builds, validates and encodes every resource with Envoy's default limits, for configurations
/// known to be valid (tests, benchmarks); what fails validation is left out. The translation path
/// uses [`admit`], which also says what was left out and why.
pub fn build(ir: &Ir) -> Resources {
    admit(ir, &validate::Limits::default(), AdmitMemo::default()).0.resources
}

/// "Fetch this over the ADS stream": how listeners find routes and clusters find secrets.
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub fn to_any<M: Message + prost::Name>(message: &M) -> Any {
    Any { type_url: M::type_url(), value: message.encode_to_vec() }
}

pub fn millis(ms: u64) -> Duration {
    Duration { seconds: (ms / 1000) as i64, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

pub fn to_duration(duration: std::time::Duration) -> Duration {
    Duration { seconds: duration.as_secs() as i64, nanos: duration.subsec_nanos() as i32 }
}
