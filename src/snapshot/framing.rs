//! A resource's two wire forms, written once per content: the `Any` a state-of-the-world
//! response holds and the delta `Resource`, each already framed as field 2 (`resources`) of its
//! response.

use super::{Entry, Framed};
use crate::xds::{Resource, XdsType};
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

// The two framings are written straight into buffers of their exact size: a RouteConfiguration
// of 50,000 routes is megabytes, and building them through prost's `Any` and `Resource` copied it
// five times into buffers that grew as they went. Byte-identical to prost's encoding (tested).

/// `Any { type_url, value: body }` as field 2 of a `DiscoveryResponse`.
fn sotw_field(type_url: &str, body: &[u8]) -> Bytes {
    let any = any_len(type_url, body);
    let mut out = Vec::with_capacity(field_len(any));
    put_field_header(&mut out, 2, any);
    put_any(&mut out, type_url, body);
    Bytes::from(out)
}

/// The delta `Resource { name, version, resource: Any }` as field 2 of a
/// `DeltaDiscoveryResponse`: prost writes fields in tag order, `version` (1), `resource` (2),
/// `name` (3), and leaves out empty strings.
fn delta_field(name: &str, version: &str, type_url: &str, body: &[u8]) -> Bytes {
    let string_len = |value: &str| if value.is_empty() { 0 } else { field_len(value.len()) };
    let any = any_len(type_url, body);
    let resource = string_len(version) + field_len(any) + string_len(name);
    let mut out = Vec::with_capacity(field_len(resource));
    put_field_header(&mut out, 2, resource);
    put_string(&mut out, 1, version);
    put_field_header(&mut out, 2, any);
    put_any(&mut out, type_url, body);
    put_string(&mut out, 3, name);
    Bytes::from(out)
}

fn put_string(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        put_field_header(out, field, value.len());
        out.extend_from_slice(value.as_bytes());
    }
}

/// `Any`: `type_url` (field 1), then `value` (field 2), which proto3 leaves out when empty.
fn any_len(type_url: &str, body: &[u8]) -> usize {
    field_len(type_url.len()) + if body.is_empty() { 0 } else { field_len(body.len()) }
}

fn put_any(out: &mut Vec<u8>, type_url: &str, body: &[u8]) {
    put_field_header(out, 1, type_url.len());
    out.extend_from_slice(type_url.as_bytes());
    if !body.is_empty() {
        put_field_header(out, 2, body.len());
        out.extend_from_slice(body);
    }
}

/// Bytes a length-delimited field of `length` takes, for fields 1 to 3 (one-byte keys).
fn field_len(length: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(length as u64) + length
}

fn put_field_header(out: &mut Vec<u8>, field: u32, length: usize) {
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(length as u64, out);
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
                assert_eq!(entry.sotw_field, sotw.encode_to_vec(), "{xds_type:?} {size}");
                assert_eq!(entry.delta_field, delta.encode_to_vec(), "{xds_type:?} {size}");
            }
        }
    }
}
