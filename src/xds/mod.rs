//! IR → envoy-types messages, one module per Envoy resource type. Pure functions, no I/O.

pub mod cluster;
pub mod listener;
pub mod route;
pub mod secret;

use crate::compile::ir::Ir;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{config_source, AggregatedConfigSource, ApiVersion, ConfigSource};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::{Any, Duration};
use prost::Message;

/// Every resource of one snapshot, each list sorted by resource name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub clusters: Vec<Cluster>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub secrets: Vec<Secret>,
}

impl Resources {
    /// The same resources with every private key replaced by `[redacted]`, for default output.
    pub fn redacted(&self) -> Resources {
        Resources { secrets: self.secrets.iter().map(secret::redact).collect(), ..self.clone() }
    }
}

pub fn build(ir: &Ir) -> Resources {
    let mut resources = Resources {
        clusters: ir.clusters.iter().map(cluster::build_cluster).collect(),
        listeners: ir.listeners.iter().map(listener::build_listener).collect(),
        routes: ir.route_configs.iter().map(route::build_route_configuration).collect(),
        secrets: ir.secrets.iter().map(secret::build_secret).collect(),
    };
    resources.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    resources.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    resources.routes.sort_by(|a, b| a.name.cmp(&b.name));
    resources.secrets.sort_by(|a, b| a.name.cmp(&b.name));
    resources
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
