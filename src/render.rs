//! The one place that turns Envoy messages into text: canonical proto3 JSON (field names as in
//! the `.proto` files, `@type` on `Any`), exactly as Envoy's `/config_dump` prints them.
//!
//! The descriptor pool is compiled at build time from the protos inside `envoy-types` (see
//! `build.rs`); messages are transcoded through `prost-reflect`, so there is no second,
//! hand-written JSON model to drift from what the server sends.

use crate::xds::Resources;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions, Value};
use std::sync::LazyLock;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

static POOL: LazyLock<DescriptorPool> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).expect("descriptor set compiled by build.rs"));

const SNAPSHOT_MESSAGE: &str = "ambassador_xds.v1.Snapshot";
/// What replaces private keys unless the user asks to see them; the same marker Envoy's admin uses.
pub const REDACTED: &str = "[redacted]";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("not valid snapshot JSON: {0}")]
    Parse(String),
    #[error("message {0} is not in the descriptor pool")]
    UnknownMessage(String),
}

/// The descriptor pool holding every Envoy message ambassador-xds renders or parses.
pub fn pool() -> &'static DescriptorPool {
    &POOL
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Yaml,
}

/// One resource as rendered for diffs: its xDS type (`clusters`, `listeners`, ...), name and JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedResource {
    pub kind: String,
    pub name: String,
    pub json: String,
}

/// Converts any envoy-types message into its reflective twin by full name.
pub fn to_dynamic<M: Message + prost::Name>(message: &M) -> DynamicMessage {
    let descriptor = message_descriptor(&M::full_name()).expect("envoy message in descriptor pool");
    DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).expect("re-decoding our own encoding")
}

fn message_descriptor(full_name: &str) -> Result<MessageDescriptor, RenderError> {
    POOL.get_message_by_name(full_name).ok_or_else(|| RenderError::UnknownMessage(full_name.to_string()))
}

/// The golden-file document: all resources, grouped by type (in the order of the `Snapshot`
/// message: clusters, listeners, routes, secrets). `Resources` keeps each list sorted by name.
pub fn snapshot_message(resources: &Resources) -> DynamicMessage {
    let descriptor = message_descriptor(SNAPSHOT_MESSAGE).expect("snapshot message");
    let mut snapshot = DynamicMessage::new(descriptor);
    let lists = [
        ("clusters", resources.clusters.iter().map(to_dynamic).collect::<Vec<_>>()),
        ("listeners", resources.listeners.iter().map(to_dynamic).collect()),
        ("routes", resources.routes.iter().map(to_dynamic).collect()),
        ("secrets", resources.secrets.iter().map(to_dynamic).collect()),
    ];
    for (field, messages) in lists {
        snapshot.set_field_by_name(field, Value::List(messages.into_iter().map(Value::Message).collect()));
    }
    snapshot
}

fn serialize_options() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true)
}

/// Pretty, deterministic JSON with a trailing newline.
pub fn to_json(message: &DynamicMessage) -> String {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"  "));
    message.serialize_with_options(&mut serializer, &serialize_options()).expect("serializing to memory");
    out.push(b'\n');
    String::from_utf8(out).expect("JSON is UTF-8")
}

pub fn to_yaml(message: &DynamicMessage) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_yaml::Serializer::new(&mut out);
    message.serialize_with_options(&mut serializer, &serialize_options()).expect("serializing to memory");
    String::from_utf8(out).expect("YAML is UTF-8")
}

pub fn render(message: &DynamicMessage, format: Format) -> String {
    match format {
        Format::Json => to_json(message),
        Format::Yaml => to_yaml(message),
    }
}

/// Parses a golden file back into the snapshot message. Field names are checked against Envoy's
/// protos, so a misspelt field in a hand-edited golden is an error, not a silent difference.
pub fn parse_snapshot_json(text: &str) -> Result<DynamicMessage, RenderError> {
    let descriptor = message_descriptor(SNAPSHOT_MESSAGE)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let message = DynamicMessage::deserialize(descriptor, &mut deserializer)
        .map_err(|err| RenderError::Parse(err.to_string()))?;
    deserializer.end().map_err(|err| RenderError::Parse(err.to_string()))?;
    Ok(message)
}

/// Splits a snapshot into its resources, each rendered on its own, in document order.
pub fn resources_of(snapshot: &DynamicMessage) -> Vec<RenderedResource> {
    let mut out = Vec::new();
    for field in snapshot.descriptor().fields() {
        let value = snapshot.get_field(&field);
        for item in value.as_list().unwrap_or_default() {
            let Some(message) = item.as_message() else { continue };
            let name = message
                .get_field_by_name("name")
                .and_then(|name| name.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push(RenderedResource { kind: field.name().to_string(), name, json: to_json(message) });
        }
    }
    out
}

/// Converts a reflective message back into the envoy-types message of the same name.
pub fn from_dynamic<M: Message + Default>(message: &DynamicMessage) -> M {
    M::decode(message.encode_to_vec().as_slice()).expect("same schema on both sides")
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::google::protobuf::Duration;

    #[test]
    fn cluster_renders_with_proto_field_names_and_durations() {
        let cluster = Cluster {
            name: "c".into(),
            connect_timeout: Some(Duration { seconds: 3, nanos: 0 }),
            ..Default::default()
        };
        let resources = Resources { clusters: vec![cluster], ..Default::default() };
        let json = to_json(&snapshot_message(&resources));
        assert!(json.contains("\"connect_timeout\": \"3s\""), "{json}");
        let back = parse_snapshot_json(&json).unwrap();
        assert_eq!(resources_of(&back)[0].name, "c");
    }

    #[test]
    fn misspelt_fields_in_goldens_are_errors() {
        let err = parse_snapshot_json(r#"{"clusters": [{"nmae": "c"}]}"#).unwrap_err();
        assert!(err.to_string().contains("nmae"), "{err}");
    }
}
