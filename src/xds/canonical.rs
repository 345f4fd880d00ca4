//! Encodings that are the same every time: every map field's entries in key order.
//!
//! prost writes a map field (`typed_per_filter_config`, a `Struct`'s `fields`, ...) in its
//! `HashMap`'s iteration order, which is random per map. A route with CORS and error responses,
//! or an error response body of two JSON keys, would then change bytes, version and push from one
//! reload, or one replica, to the next with nothing changed. Every resource is encoded through
//! [`encode`], which rewrites the entries of each map in order of their encoded key.
//!
//! It works on the wire format, guided by the descriptor pool: a map is a repeated field of
//! entry messages, and the order of a repeated field's elements is the only thing rewritten. A
//! message type that cannot hold a map (directly, inside another message, or packed in an `Any`)
//! is copied without being looked at, and a message already in order is not copied at all.

use crate::xds::descriptors::{message_of_type_url, pool};
use crate::xds::field;
use prost::encoding::{decode_key, decode_varint, WireType};
use prost::Message;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use std::collections::HashSet;
use std::sync::LazyLock;

const ANY: &str = "google.protobuf.Any";

/// `message` encoded, with every map's entries in key order.
pub fn encode<M: Message + prost::Name>(message: &M) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let descriptor = pool().get_message_by_name(&M::full_name()).expect("every encoded message is in the pool");
    sorted(&descriptor, &bytes).unwrap_or(bytes)
}

/// Message types that can hold a map field somewhere inside (an `Any` may hold anything).
static MAY_HOLD_MAP: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let messages: Vec<MessageDescriptor> = pool().all_messages().collect();
    let mut holding: HashSet<String> = messages
        .iter()
        .filter(|m| m.full_name() == ANY || m.fields().any(|f| f.is_map()))
        .map(|m| m.full_name().to_string())
        .collect();
    // A fixed point over message fields: the protos nest (and recurse) in every direction.
    loop {
        let before = holding.len();
        for message in &messages {
            let holds = message.fields().any(|field| match field.kind() {
                Kind::Message(inner) => holding.contains(inner.full_name()),
                _ => false,
            });
            if holds {
                holding.insert(message.full_name().to_string());
            }
        }
        if holding.len() == before {
            return holding;
        }
    }
});

fn may_hold_map(message: &MessageDescriptor) -> bool {
    MAY_HOLD_MAP.contains(message.full_name())
}

/// One field as it is on the wire.
struct WireField<'a> {
    number: u32,
    /// The whole field: key, length and payload.
    raw: &'a [u8],
    /// The payload of a length-delimited field.
    payload: Option<&'a [u8]>,
}

/// The fields of an encoded message, or `None` if it is not well formed (never, for what prost
/// wrote; the bytes are then left as they are).
fn wire_fields(mut bytes: &[u8]) -> Option<Vec<WireField<'_>>> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let start = bytes;
        let (number, wire_type) = decode_key(&mut bytes).ok()?;
        let payload = match wire_type {
            WireType::Varint => {
                decode_varint(&mut bytes).ok()?;
                None
            }
            WireType::SixtyFourBit => {
                bytes = bytes.get(8..)?;
                None
            }
            WireType::ThirtyTwoBit => {
                bytes = bytes.get(4..)?;
                None
            }
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut bytes).ok()?).ok()?;
                let payload = bytes.get(..len)?;
                bytes = &bytes[len..];
                Some(payload)
            }
            WireType::StartGroup | WireType::EndGroup => return None,
        };
        let raw = &start[..start.len() - bytes.len()];
        fields.push(WireField { number, raw, payload });
    }
    Some(fields)
}

/// What one field becomes in the sorted message.
enum Part<'a> {
    Same(&'a [u8]),
    Rewritten(Vec<u8>),
    /// Where a map's entries go: where its first entry was.
    Map(u32),
}

/// One map field's entries, as (encoded key, entry).
type Entries<'a> = Vec<(&'a [u8], Part<'a>)>;

/// `bytes` (a `message`) with every map in key order, or `None` if it already is.
fn sorted(message: &MessageDescriptor, bytes: &[u8]) -> Option<Vec<u8>> {
    if !may_hold_map(message) {
        return None;
    }
    if message.full_name() == ANY {
        return sorted_any(bytes);
    }
    let fields = wire_fields(bytes)?;
    let mut parts = Vec::with_capacity(fields.len());
    let mut maps: Vec<(u32, Entries)> = Vec::new();
    let mut changed = false;
    for field in &fields {
        let descriptor = message.get_field(field.number);
        let inner = descriptor.as_ref().and_then(message_kind);
        let (Some(descriptor), Some(inner), Some(payload)) = (descriptor, inner, field.payload) else {
            parts.push(Part::Same(field.raw));
            continue;
        };
        let rewritten = sorted(&inner, payload).map(|payload| length_delimited(field.number, &payload));
        changed |= rewritten.is_some();
        let part = rewritten.map_or(Part::Same(field.raw), Part::Rewritten);
        if descriptor.is_map() {
            let key = entry_key(payload);
            match maps.iter_mut().find(|(number, _)| *number == field.number) {
                Some((_, entries)) => entries.push((key, part)),
                None => {
                    maps.push((field.number, vec![(key, part)]));
                    parts.push(Part::Map(field.number));
                }
            }
        } else {
            parts.push(part);
        }
    }
    for (_, entries) in &mut maps {
        if entries.windows(2).any(|pair| pair[0].0 > pair[1].0) {
            // Stable: entries with the same key (a map decodes to the last) keep their order.
            entries.sort_by(|a, b| a.0.cmp(b.0));
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    for part in parts {
        match part {
            Part::Same(raw) => out.extend_from_slice(raw),
            Part::Rewritten(raw) => out.extend_from_slice(&raw),
            Part::Map(number) => {
                let (_, entries) = maps.iter().find(|(n, _)| *n == number).expect("every map has a place");
                for (_, entry) in entries {
                    match entry {
                        Part::Same(raw) => out.extend_from_slice(raw),
                        Part::Rewritten(raw) => out.extend_from_slice(raw),
                        Part::Map(_) => unreachable!("an entry is never a map"),
                    }
                }
            }
        }
    }
    Some(out)
}

/// The message type of a field whose values are messages (a map field's are its entries).
fn message_kind(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        Kind::Message(inner) => Some(inner),
        _ => None,
    }
}

/// A map entry's key as encoded (its field 1): what entries are ordered by. Any fixed order
/// serves; for string keys this one is the keys' byte order.
fn entry_key(entry: &[u8]) -> &[u8] {
    let Some(fields) = wire_fields(entry) else { return entry };
    match fields.iter().find(|field| field.number == 1) {
        Some(key) => key.payload.unwrap_or(key.raw),
        // A key equal to its default may be left out.
        None => &[],
    }
}

/// An `Any` whose packed message is sorted, its type found in the pool by its URL.
fn sorted_any(bytes: &[u8]) -> Option<Vec<u8>> {
    let fields = wire_fields(bytes)?;
    let type_url = fields.iter().find(|field| field.number == 1)?.payload?;
    let packed = message_of_type_url(std::str::from_utf8(type_url).ok()?)?;
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    for field in &fields {
        // Field 2 is the packed message (field 1, its type URL, is left as it is).
        let value = (field.number == 2).then_some(field.payload).flatten();
        match value.and_then(|value| sorted(&packed, value)) {
            Some(value) => {
                out.extend(length_delimited(2, &value));
                changed = true;
            }
            None => out.extend_from_slice(field.raw),
        }
    }
    changed.then_some(out)
}

fn length_delimited(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field::len(number, payload.len()));
    field::put(&mut out, number, payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::to_any;
    use envoy_types::pb::envoy::config::route::v3::{Route, VirtualHost};
    use envoy_types::pb::google::protobuf::{value::Kind as ValueKind, Any, ListValue, Struct, Value};

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// What a message is made of, so that it can be built twice, each time with new maps.
    #[derive(Clone)]
    enum Shape {
        Text(String),
        Fields(Vec<(String, Shape)>),
        List(Vec<Shape>),
    }

    fn random_shape(rng: &mut Rng, depth: u32) -> Shape {
        match if depth == 0 { 0 } else { rng.below(3) } {
            0 => Shape::Text(format!("t{}", rng.below(100))),
            1 => Shape::Fields(
                (0..rng.below(5)).map(|i| (format!("k{}{i}", rng.below(30)), random_shape(rng, depth - 1))).collect(),
            ),
            _ => Shape::List((0..rng.below(3)).map(|_| random_shape(rng, depth - 1)).collect()),
        }
    }

    fn value(shape: &Shape) -> Value {
        let kind = match shape {
            Shape::Text(text) => ValueKind::StringValue(text.clone()),
            Shape::Fields(_) => ValueKind::StructValue(structure(shape)),
            Shape::List(items) => ValueKind::ListValue(ListValue { values: items.iter().map(value).collect() }),
        };
        Value { kind: Some(kind) }
    }

    fn structure(shape: &Shape) -> Struct {
        match shape {
            Shape::Fields(fields) => Struct { fields: fields.iter().map(|(k, v)| (k.clone(), value(v))).collect() },
            _ => Struct::default(),
        }
    }

    /// A route whose per-filter configs are `Struct`s packed in `Any`s: maps in maps, through
    /// `Any`. `pack` packs them, as prost encodes them or already sorted.
    fn route(filters: &[(String, Shape)], pack: fn(&Struct) -> Any) -> Route {
        let mut route = Route { name: "r".into(), ..Default::default() };
        for (filter, shape) in filters {
            route.typed_per_filter_config.insert(filter.clone(), pack(&structure(shape)));
        }
        route
    }

    fn sorted_any(message: &Struct) -> Any {
        Any { type_url: to_any(message).type_url, value: encode(message) }
    }

    /// Random nestings of maps, `Struct`s and `Any`s, each built twice with maps of their own
    /// iteration order: one encoding, and it decodes to the very message.
    #[test]
    fn the_same_message_has_the_same_encoding_whatever_its_maps_order() {
        let mut rng = Rng(0x2026_1202);
        let mut raw_encodings_differed = 0;
        for case in 0..400 {
            let filters: Vec<(String, Shape)> = (0..rng.below(5))
                .map(|i| {
                    (
                        format!("envoy.filters.http.f{}{i}", rng.below(10)),
                        Shape::Fields(
                            (0..rng.below(4)).map(|j| (format!("k{j}"), random_shape(&mut rng, 3))).collect(),
                        ),
                    )
                })
                .collect();
            let (first, second) = (route(&filters, sorted_any), route(&filters, sorted_any));
            assert_eq!(first, second);
            raw_encodings_differed += usize::from(first.encode_to_vec() != second.encode_to_vec());
            let encoded = encode(&first);
            assert_eq!(encode(&second), encoded, "case {case}");
            assert_eq!(Route::decode(encoded.as_slice()).unwrap(), first, "case {case}: the same message");
            // The maps inside each Any are sorted too.
            assert_eq!(encode(&route(&filters, to_any)), encoded, "case {case}: packed as prost encodes");
            // Sorting what is sorted changes nothing.
            let descriptor = pool().get_message_by_name("envoy.config.route.v3.Route").unwrap();
            assert_eq!(sorted(&descriptor, &encoded), None, "case {case}");
        }
        assert!(raw_encodings_differed > 50, "prost's own encodings differed in only {raw_encodings_differed} cases");
    }

    #[test]
    fn a_message_without_maps_is_left_as_it_is() {
        let host = VirtualHost { name: "h".into(), domains: vec!["a".into(), "b".into()], ..Default::default() };
        let descriptor = pool().get_message_by_name("envoy.config.route.v3.VirtualHost").unwrap();
        assert_eq!(sorted(&descriptor, &host.encode_to_vec()), None);
        assert!(!may_hold_map(&pool().get_message_by_name("envoy.type.v3.FractionalPercent").unwrap()));
        assert!(may_hold_map(&pool().get_message_by_name("envoy.config.listener.v3.Listener").unwrap()));
    }

    #[test]
    fn bytes_that_are_not_a_message_are_left_as_they_are() {
        let descriptor = pool().get_message_by_name("envoy.config.route.v3.Route").unwrap();
        // Field 9 (typed_per_filter_config), length 50, but only two bytes follow.
        assert_eq!(sorted(&descriptor, &[0x4a, 50, 1, 2]), None);
    }
}
