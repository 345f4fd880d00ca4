//! IR → envoy-types messages, one module per Envoy resource type. Pure functions, no I/O.

pub mod cluster;
pub mod listener;
pub mod route;
pub mod secret;

use crate::compile::ir::Ir;
use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{config_source, AggregatedConfigSource, ApiVersion, ConfigSource};
use envoy_types::pb::google::protobuf::{Any, Duration};
use prost::Message;

/// The xDS resource types ambassador-xds serves, in golden-document order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Cluster,
    Listener,
    Route,
    Secret,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] =
        [ResourceType::Cluster, ResourceType::Listener, ResourceType::Route, ResourceType::Secret];

    /// Fully qualified protobuf message name.
    pub fn message_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "envoy.config.cluster.v3.Cluster",
            ResourceType::Listener => "envoy.config.listener.v3.Listener",
            ResourceType::Route => "envoy.config.route.v3.RouteConfiguration",
            ResourceType::Secret => "envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    pub fn type_url(self) -> String {
        format!("type.googleapis.com/{}", self.message_name())
    }

    /// The field of the golden `Snapshot` message holding this type.
    pub fn golden_field(self) -> &'static str {
        match self {
            ResourceType::Cluster => "clusters",
            ResourceType::Listener => "listeners",
            ResourceType::Route => "routes",
            ResourceType::Secret => "secrets",
        }
    }
}

/// One resource, encoded once: the bytes are what every xDS stream sends and what `render`
/// prints, so the two cannot disagree. `Bytes` makes sharing them free.
#[derive(Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub body: Bytes,
}

impl Resource {
    pub fn encode<M: Message>(name: &str, message: &M) -> Resource {
        Resource { name: name.to_string(), body: Bytes::from(message.encode_to_vec()) }
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

/// Every resource of one snapshot, each list sorted by resource name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub clusters: Vec<Resource>,
    pub listeners: Vec<Resource>,
    pub routes: Vec<Resource>,
    pub secrets: Vec<Resource>,
}

impl Resources {
    pub fn of(&self, resource_type: ResourceType) -> &[Resource] {
        match resource_type {
            ResourceType::Cluster => &self.clusters,
            ResourceType::Listener => &self.listeners,
            ResourceType::Route => &self.routes,
            ResourceType::Secret => &self.secrets,
        }
    }

    /// The same resources with every private key replaced by `[redacted]`, for default output.
    pub fn redacted(mut self) -> Resources {
        for resource in &mut self.secrets {
            *resource = Resource::encode(&resource.name, &secret::redact(resource.decode()));
        }
        self
    }
}

/// Builds and encodes every resource; each typed message lives only until it is encoded.
pub fn build(ir: &Ir) -> Resources {
    fn encode_all<T, M: Message>(items: &[T], name: impl Fn(&T) -> &str, build: impl Fn(&T) -> M) -> Vec<Resource> {
        let mut out: Vec<Resource> = items.iter().map(|item| Resource::encode(name(item), &build(item))).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
    Resources {
        clusters: encode_all(&ir.clusters, |c| &c.name, cluster::build_cluster),
        listeners: encode_all(&ir.listeners, |l| &l.name, listener::build_listener),
        routes: {
            let mut routes: Vec<Resource> = ir
                .route_configs
                .iter()
                .map(|table| Resource {
                    name: table.name.clone(),
                    body: Bytes::from(route::encode_route_configuration(table)),
                })
                .collect();
            routes.sort_by(|a, b| a.name.cmp(&b.name));
            routes
        },
        secrets: encode_all(&ir.secrets, |s| &s.name, secret::build_secret),
    }
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
