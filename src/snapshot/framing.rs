//! A resource's two wire forms, written once per content: the `Any` a state-of-the-world
//! response holds and the delta `Resource`, each already framed as field 2 (`resources`) of its
//! response.

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

// The two framings are written straight into buffers of their exact size: a RouteConfiguration
// of 50,000 routes is megabytes, and building them through prost's `Any` and `Resource` copied it
// five times into buffers that grew as they went. Byte-identical to prost's encoding (tested).

/// `Any { type_url, value: body }` as field 2 of a `DiscoveryResponse`.
fn sotw_field(type_url: &str, body: &[u8]) -> Bytes {
    let any = any_len(type_url, body);
    let mut out = Vec::with_capacity(field::len(2, any));
    field::put_header(&mut out, 2, any);
    put_any(&mut out, type_url, body);
    Bytes::from(out)
}

/// The delta `Resource { name, version, resource: Any }` as field 2 of a
/// `DeltaDiscoveryResponse`: prost writes fields in tag order, `version` (1), `resource` (2),
/// `name` (3), and leaves out empty strings.
fn delta_field(name: &str, version: &str, type_url: &str, body: &[u8]) -> Bytes {
    let string_len = |number: u32, value: &str| if value.is_empty() { 0 } else { field::len(number, value.len()) };
    let any = any_len(type_url, body);
    let resource = string_len(1, version) + field::len(2, any) + string_len(3, name);
    let mut out = Vec::with_capacity(field::len(2, resource));
    field::put_header(&mut out, 2, resource);
    put_string(&mut out, 1, version);
    field::put_header(&mut out, 2, any);
    put_any(&mut out, type_url, body);
    put_string(&mut out, 3, name);
    Bytes::from(out)
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

fn put_any(out: &mut Vec<u8>, type_url: &str, body: &[u8]) {
    field::put(out, 1, type_url.as_bytes());
    if !body.is_empty() {
        field::put(out, 2, body);
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
                assert_eq!(entry.sotw_field, sotw.encode_to_vec(), "{xds_type:?} {size}");
                assert_eq!(entry.delta_field, delta.encode_to_vec(), "{xds_type:?} {size}");
            }
        }
    }
}
