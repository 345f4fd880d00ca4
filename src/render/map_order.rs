//! Proto map fields printed in sorted key order.
//!
//! `prost-reflect` keeps a map field in a `HashMap` and prints it in that map's iteration order,
//! which is random per map: a route with two per-filter configs (CORS and error responses) would
//! print its `typed_per_filter_config` in a different order from one `translate` to the next, and
//! a golden file or a `diff` would change with nothing changed. The bytes are already canonical
//! (`xds::route::encode_route`); this is the same rule for the text.
//!
//! A message with no map of two or more entries (almost every resource) is printed exactly as
//! `prost-reflect` prints it. One with such a map is printed to a JSON tree first, then written
//! again in the order `prost-reflect` would have used (message fields in descriptor order,
//! `@type` first in an `Any`), with map keys sorted. A test renders every golden input through
//! both ways and asserts they agree.

use crate::xds::descriptors::message_of_type_url;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

const ANY: &str = "google.protobuf.Any";

/// Whether `message`, or any message inside it (including those packed in an `Any`), has a map
/// field of two or more entries: only then can its printed order differ.
pub(super) fn has_unordered_map(message: &DynamicMessage) -> bool {
    message.fields().any(|(_, value)| value_has_unordered_map(value))
}

fn value_has_unordered_map(value: &Value) -> bool {
    match value {
        Value::Map(entries) => entries.len() >= 2 || entries.values().any(value_has_unordered_map),
        Value::List(items) => items.iter().any(value_has_unordered_map),
        Value::Message(message) if message.descriptor().full_name() == ANY => {
            unpack_any(message).is_some_and(|inner| has_unordered_map(&inner))
        }
        Value::Message(message) => has_unordered_map(message),
        _ => false,
    }
}

/// The message an `Any` holds, when its type is in the descriptor pool (as `prost-reflect` needs
/// to print it at all).
fn unpack_any(any: &DynamicMessage) -> Option<DynamicMessage> {
    let type_url = any.get_field_by_name("type_url")?;
    let descriptor = message_of_type_url(type_url.as_str()?)?;
    let value = any.get_field_by_name("value")?;
    DynamicMessage::decode(descriptor, value.as_bytes()?.clone()).ok()
}

/// A message's JSON tree (as `prost-reflect` printed it) written again with map keys sorted.
pub(super) struct Sorted<'a> {
    pub json: &'a serde_json::Value,
    pub message: MessageDescriptor,
}

enum Shape {
    Message(MessageDescriptor),
    Map(Kind),
    List(Kind),
    /// Scalars, enums and the well-known types other than `Any`, whose JSON holds no proto map
    /// (a `Struct` prints from a `BTreeMap`, already sorted): written as they are.
    Leaf,
}

fn shape_of(kind: Kind) -> Shape {
    match kind {
        Kind::Message(message) if message.full_name() == ANY || !is_well_known(&message) => Shape::Message(message),
        _ => Shape::Leaf,
    }
}

fn is_well_known(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

struct Node<'a> {
    json: &'a serde_json::Value,
    shape: Shape,
}

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Node { json: self.json, shape: shape_of(Kind::Message(self.message.clone())) }.serialize(serializer)
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (&self.shape, self.json) {
            (Shape::Leaf, json) => json.serialize(serializer),
            (Shape::List(kind), serde_json::Value::Array(items)) => {
                let mut list = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    list.serialize_element(&Node { json: item, shape: shape_of(kind.clone()) })?;
                }
                list.end()
            }
            // serde_json's map is a `BTreeMap`: its keys come out sorted.
            (Shape::Map(kind), serde_json::Value::Object(entries)) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, &Node { json: value, shape: shape_of(kind.clone()) })?;
                }
                map.end()
            }
            (Shape::Message(message), serde_json::Value::Object(fields)) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                let mut written = 0;
                let mut message = message.clone();
                if message.full_name() == ANY {
                    let type_url = fields
                        .get("@type")
                        .and_then(|url| url.as_str())
                        .ok_or_else(|| S::Error::custom("an Any printed without @type"))?;
                    map.serialize_entry("@type", type_url)?;
                    written += 1;
                    message = message_of_type_url(type_url)
                        .ok_or_else(|| S::Error::custom(format!("{type_url} is not in the descriptor pool")))?;
                }
                // A well-known type in an Any prints as {"@type", "value"}, the value as it is.
                let fields_of = if is_well_known(&message) { None } else { Some(message.fields()) };
                if let (None, Some(value)) = (&fields_of, fields.get("value")) {
                    map.serialize_entry("value", value)?;
                    written += 1;
                }
                for field in fields_of.into_iter().flatten() {
                    let Some(value) = fields.get(field.name()) else { continue };
                    let shape = if field.is_map() {
                        Shape::Map(field.kind().as_message().expect("a map entry").map_entry_value_field().kind())
                    } else if field.is_list() {
                        Shape::List(field.kind())
                    } else {
                        shape_of(field.kind())
                    };
                    map.serialize_entry(field.name(), &Node { json: value, shape })?;
                    written += 1;
                }
                // Never silently drop what prost-reflect printed.
                if written != fields.len() {
                    return Err(S::Error::custom(format!(
                        "{}: printed {} fields, but the descriptor names only {written} of them",
                        message.full_name(),
                        fields.len()
                    )));
                }
                map.end()
            }
            (_, json) => Err(S::Error::custom(format!("unexpected JSON for its field: {json}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::Options;
    use crate::pipeline::translate_paths;
    use crate::render::{decode_resource, serialize_options, to_json};
    use crate::source::files::LoadOptions;
    use crate::xds::descriptors::pool;
    use crate::xds::route::encode_route;
    use crate::xds::{to_any, XdsType};
    use envoy_types::pb::envoy::config::route::v3::{FilterConfig, Route};
    use std::collections::BTreeSet;

    fn printed_directly(message: &DynamicMessage) -> String {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::new(&mut out);
        message.serialize_with_options(&mut serializer, &serialize_options()).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn printed_sorted(message: &DynamicMessage) -> String {
        let json = message.serialize_with_options(serde_json::value::Serializer, &serialize_options()).unwrap();
        serde_json::to_string(&Sorted { json: &json, message: message.descriptor() }).unwrap()
    }

    #[test]
    fn a_map_prints_in_the_same_order_every_time() {
        let mut route = Route { name: "r".into(), ..Default::default() };
        for filter in ["envoy.filters.http.d", "envoy.filters.http.b", "envoy.filters.http.c", "envoy.filters.http.a"] {
            route
                .typed_per_filter_config
                .insert(filter.into(), to_any(&FilterConfig { disabled: true, ..Default::default() }));
        }
        let bytes = encode_route(&route);
        let descriptor = pool().get_message_by_name("envoy.config.route.v3.Route").unwrap();
        // Every decode builds a new HashMap with its own random order.
        let printed: BTreeSet<String> =
            (0..32).map(|_| to_json(&DynamicMessage::decode(descriptor.clone(), bytes.as_slice()).unwrap())).collect();
        assert_eq!(printed.len(), 1, "{printed:#?}");
        let text = printed.into_iter().next().unwrap();
        let at = |filter: &str| text.find(filter).unwrap();
        assert!(at("http.a") < at("http.b") && at("http.b") < at("http.c") && at("http.c") < at("http.d"), "{text}");
        // What prost-reflect printed is all there, in its order but for the map.
        let direct: serde_json::Value = serde_json::from_str(&printed_directly(
            &DynamicMessage::decode(descriptor.clone(), bytes.as_slice()).unwrap(),
        ))
        .unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), direct);
    }

    /// Every resource the golden inputs and examples compile to, printed both ways: the same
    /// content always, and the very same text where no map needs sorting. So the second way
    /// keeps prost-reflect's field order, `@type` placement and well-known types exactly.
    #[test]
    fn sorting_changes_nothing_but_the_order_of_map_entries() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut inputs: Vec<_> = std::fs::read_dir(root.join("testdata"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|case| case.join("input").is_dir())
            .collect();
        inputs.sort();
        inputs.extend(["examples/quickstart", "examples/edge"].map(|example| root.join(example)));
        let (mut resources, mut sorted_maps) = (0, 0);
        for case in inputs {
            let files = case.join("files");
            let input = if case.join("input").is_dir() { case.join("input") } else { case.clone() };
            let load = LoadOptions { files_root: files.is_dir().then_some(files) };
            let Ok(translation) = translate_paths(&[input], &load, &Options::default()) else { continue };
            for resource_type in XdsType::ALL {
                for resource in translation.resources.of(resource_type) {
                    let message = decode_resource(resource_type, resource);
                    let (direct, sorted) = (printed_directly(&message), printed_sorted(&message));
                    let context = format!("{}: {} {}", case.display(), resource_type.golden_field(), resource.name);
                    if has_unordered_map(&message) {
                        sorted_maps += 1;
                        let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
                        assert_eq!(parse(&sorted), parse(&direct), "{context}");
                    } else {
                        assert_eq!(sorted, direct, "{context}");
                    }
                    resources += 1;
                }
            }
        }
        assert!(resources > 400, "only {resources} resources compared");
        assert!(sorted_maps >= 1, "no golden input has a map that needs sorting");
    }
}
