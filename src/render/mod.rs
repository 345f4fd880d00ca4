//! The one place that turns Envoy messages into text: canonical proto3 JSON (field names as in
//! the `.proto` files, `@type` on `Any`), exactly as Envoy's `/config_dump` prints them.
//!
//! The descriptor pool is compiled at build time from the protos inside `envoy-types` (see
//! `build.rs`); messages are transcoded through `prost-reflect`, so there is no second,
//! hand-written JSON model to drift from what the server sends.

use crate::xds::{descriptors::pool, Resource, Resources, XdsType};
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{secret, Secret};
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::io::Write;

mod map_order;

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

fn message_descriptor(full_name: &str) -> Result<MessageDescriptor, RenderError> {
    pool().get_message_by_name(full_name).ok_or_else(|| RenderError::UnknownMessage(full_name.to_string()))
}

/// The golden-file document: all resources grouped by type, in the order of the `Snapshot`
/// message (clusters, endpoints, listeners, routes, secrets), each list sorted by name as `Resources` keeps
/// it, empty lists omitted as proto3 JSON omits them.
///
/// It is serialized straight from the encoded resources, one resource at a time, so the whole
/// document never exists as one reflective tree (that tree costs more memory than everything
/// else in `translate` together). `parse_snapshot_json` reads it back as a `Snapshot` message.
pub struct SnapshotView<'a>(pub &'a Resources);

impl Serialize for SnapshotView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for resource_type in XdsType::ALL {
            let list = self.0.of(resource_type);
            if !list.is_empty() {
                map.serialize_entry(resource_type.golden_field(), &List(resource_type, list))?;
            }
        }
        map.end()
    }
}

struct List<'a>(XdsType, &'a [Resource]);

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.1.len()))?;
        for resource in self.1 {
            seq.serialize_element(&Reflected(&decode_resource(self.0, resource)))?;
        }
        seq.end()
    }
}

/// The same resources with every private key replaced by `[redacted]`, as Envoy's own
/// `/config_dump` shows them: what `translate` prints by default, goldens hold and `/snapshot` serves.
pub fn redacted(mut resources: Resources) -> Resources {
    for resource in resources.of_mut(XdsType::Secret) {
        let mut secret: Secret = resource.decode();
        if let Some(secret::Type::TlsCertificate(certificate)) = &mut secret.r#type {
            if certificate.private_key.is_some() {
                certificate.private_key = Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(REDACTED.to_string())),
                    ..Default::default()
                });
            }
        }
        *resource = Resource::encode(&resource.name, &secret);
    }
    resources
}

/// The reflective form of an encoded resource.
pub fn decode_resource(resource_type: XdsType, resource: &Resource) -> DynamicMessage {
    let descriptor = message_descriptor(resource_type.message_name()).expect("resource types are in the pool");
    DynamicMessage::decode(descriptor, resource.body.clone()).expect("resources are encoded by this crate")
}

fn serialize_options() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true)
}

fn write_pretty_json<W: Write, T: Serialize + ?Sized>(writer: W, value: &T) -> std::io::Result<()> {
    let mut writer = writer;
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut writer, serde_json::ser::PrettyFormatter::with_indent(b"  "));
    value.serialize(&mut serializer).map_err(std::io::Error::other)?;
    writer.write_all(b"\n")
}

/// Writes the snapshot document in the chosen format.
pub fn write_snapshot<W: Write>(resources: &Resources, format: Format, writer: W) -> std::io::Result<()> {
    match format {
        Format::Json => write_pretty_json(writer, &SnapshotView(resources)),
        Format::Yaml => serde_yaml::to_writer(writer, &SnapshotView(resources))
            .map_err(|err| std::io::Error::other(err.to_string())),
    }
}

/// The snapshot document as pretty, deterministic JSON with a trailing newline.
pub fn snapshot_json(resources: &Resources) -> String {
    let mut out = Vec::new();
    write_snapshot(resources, Format::Json, &mut out).expect("writing to memory");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// One message as pretty JSON with a trailing newline.
pub fn to_json(message: &DynamicMessage) -> String {
    let mut out = Vec::new();
    write_pretty_json(&mut out, &Reflected(message)).expect("writing to memory");
    String::from_utf8(out).expect("JSON is UTF-8")
}

struct Reflected<'a>(&'a DynamicMessage);

impl Serialize for Reflected<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if map_order::has_unordered_map(self.0) {
            let json = self
                .0
                .serialize_with_options(serde_json::value::Serializer, &serialize_options())
                .map_err(S::Error::custom)?;
            map_order::Sorted { json: &json, message: self.0.descriptor() }.serialize(serializer)
        } else {
            self.0.serialize_with_options(serializer, &serialize_options())
        }
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

/// Each resource rendered on its own, as `diff` compares them.
pub fn rendered_resources(resources: &Resources) -> Vec<RenderedResource> {
    XdsType::ALL
        .into_iter()
        .flat_map(|resource_type| {
            resources.of(resource_type).iter().map(move |resource| RenderedResource {
                kind: resource_type.golden_field().to_string(),
                name: resource.name.clone(),
                json: to_json(&decode_resource(resource_type, resource)),
            })
        })
        .collect()
}

/// Splits a parsed snapshot into its resources, each rendered on its own, in document order.
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
        let resources = Resources::default().with(XdsType::Cluster, vec![Resource::encode("c", &cluster)]);
        let json = snapshot_json(&resources);
        assert!(json.contains("\"connect_timeout\": \"3s\""), "{json}");
        let back = parse_snapshot_json(&json).unwrap();
        assert_eq!(resources_of(&back), rendered_resources(&resources));
        assert_eq!(to_json(&back), json, "streamed and reflective rendering agree");
    }

    #[test]
    fn misspelt_fields_in_goldens_are_errors() {
        let err = parse_snapshot_json(r#"{"clusters": [{"nmae": "c"}]}"#).unwrap_err();
        assert!(err.to_string().contains("nmae"), "{err}");
    }
}
