//! A resource's two wire forms, written once per content: the `Any` a state-of-the-world
//! response holds and the delta `Resource`, each already framed as field 2 (`resources`) of its
//! response. Byte-identical to prost's encoding of those messages (tested).

use super::{Entry, Framed};
use crate::xds::{field, Resource, XdsType};
use bytes::Bytes;
use std::sync::Arc;

pub(super) fn encode_entry(xds_type: XdsType, resource: &Resource, version: Arc<str>) -> Entry {
    let type_url = xds_type.type_url();
    Entry(Arc::new(Framed {
        name: Arc::from(resource.name.as_str()),
        sotw_field: sotw_field(type_url, &resource.body),
        delta_field: delta_field(&resource.name, &version, type_url, &resource.body),
        version,
        body: resource.body.clone(),
    }))
}

/// One resource framed as field 2 (`resources`) of a response, in three parts: the framing
/// before the encoded resource, the encoded resource itself, and the framing after it. The
/// middle part is the very buffer admission encoded, shared rather than copied: a
/// RouteConfiguration of 50,000 routes is megabytes, and copying it into both framings (into
/// fresh pages each time) was a tenth of a one-Mapping reload at 50,000 Mappings. Responses hand
/// the parts to HTTP/2 as they are.
#[derive(Clone, PartialEq, Eq)]
pub struct Field {
    head: Bytes,
    body: Bytes,
    tail: Bytes,
}

impl Field {
    /// The parts in order, without the empty ones.
    pub fn parts(&self) -> impl Iterator<Item = &Bytes> + Clone {
        [&self.head, &self.body, &self.tail].into_iter().filter(|part| !part.is_empty())
    }

    /// The parts in one buffer (a copy).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.head.len() + self.body.len() + self.tail.len());
        for part in self.parts() {
            out.extend_from_slice(part);
        }
        Bytes::from(out)
    }
}

/// `Any { type_url, value: body }` as field 2 of a `DiscoveryResponse`.
fn sotw_field(type_url: &str, body: &Bytes) -> Field {
    let mut head = Vec::new();
    field::put_header(&mut head, 2, any_len(type_url, body));
    put_any_head(&mut head, type_url, body);
    Field { head: Bytes::from(head), body: body.clone(), tail: Bytes::new() }
}

/// The delta `Resource { name, version, resource: Any }` as field 2 of a
/// `DeltaDiscoveryResponse`: prost writes fields in tag order, `version` (1), `resource` (2),
/// `name` (3), and leaves out empty strings.
fn delta_field(name: &str, version: &str, type_url: &str, body: &Bytes) -> Field {
    let string_len = |number: u32, value: &str| if value.is_empty() { 0 } else { field::len(number, value.len()) };
    let any = any_len(type_url, body);
    let resource = string_len(1, version) + field::len(2, any) + string_len(3, name);
    let mut head = Vec::new();
    field::put_header(&mut head, 2, resource);
    put_string(&mut head, 1, version);
    field::put_header(&mut head, 2, any);
    put_any_head(&mut head, type_url, body);
    let mut tail = Vec::new();
    put_string(&mut tail, 3, name);
    Field { head: Bytes::from(head), body: body.clone(), tail: Bytes::from(tail) }
}

fn put_string(out: &mut Vec<u8>, number: u32, value: &str) {
    if !value.is_empty() {
        field::put(out, number, value.as_bytes());
    }
}

/// `Any`: `type_url` (field 1), then `value` (field 2), which proto3 leaves out when empty.
fn any_len(type_url: &str, body: &[u8]) -> usize {
    field::len(1, type_url.len()) + if body.is_empty() { 0 } else { field::len(2, body.len()) }
}

/// The `Any` up to its value's bytes.
fn put_any_head(out: &mut Vec<u8>, type_url: &str, body: &[u8]) {
    field::put(out, 1, type_url.as_bytes());
    if !body.is_empty() {
        field::put_header(out, 2, body.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn framing_is_byte_identical_to_prosts() {
        use envoy_types::pb::envoy::service::discovery::v3::{
            DeltaDiscoveryResponse, DiscoveryResponse, Resource as DeltaResource,
        };
        use envoy_types::pb::google::protobuf::Any;
        // Empty, short, and long enough for two- and three-byte lengths.
        for size in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for xds_type in XdsType::ALL {
                let resource = Resource { name: format!("r{size}"), body: Bytes::from(body.clone()) };
                let entry = encode_entry(xds_type, &resource, Arc::from("v1"));
                let any = Any { type_url: xds_type.type_url().to_string(), value: body.clone() };
                let sotw = DiscoveryResponse { resources: vec![any.clone()], ..Default::default() };
                let delta = DeltaResource {
                    name: resource.name.clone(),
                    version: "v1".into(),
                    resource: Some(any),
                    ..Default::default()
                };
                let delta = DeltaDiscoveryResponse { resources: vec![delta], ..Default::default() };
                assert_eq!(entry.sotw_field.to_bytes(), sotw.encode_to_vec(), "{xds_type:?} {size}");
                assert_eq!(entry.delta_field.to_bytes(), delta.encode_to_vec(), "{xds_type:?} {size}");
                // The resource is not copied into its framings.
                for framed in [&entry.sotw_field, &entry.delta_field] {
                    assert!(size == 0 || framed.parts().any(|part| part.as_ptr() == resource.body.as_ptr()));
                }
            }
        }
    }
}
