//! Test fixtures for the state machines: snapshots of opaque resources (the machines never look
//! inside a resource) and requests as Envoy sends them.

use crate::snapshot::Snapshot;
use crate::xds::{Resource, Resources, XdsType};
use bytes::Bytes;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::rpc::Status;

/// `(type, name, content)`: equal content, equal version.
pub type Item<'a> = (XdsType, &'a str, &'a str);

pub fn snapshot(serial: u64, previous: Option<&Snapshot>, items: &[Item<'_>]) -> Snapshot {
    let mut resources = Resources::default();
    for xds_type in XdsType::ALL {
        let list = items
            .iter()
            .filter(|(t, _, _)| *t == xds_type)
            .map(|(_, name, body)| Resource { name: name.to_string(), body: Bytes::copy_from_slice(body.as_bytes()) })
            .collect();
        resources = resources.with(xds_type, list);
    }
    Snapshot::new(resources, serial, previous)
}

pub fn request(xds_type: XdsType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: xds_type.type_url().to_string(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: version.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

pub fn nack(xds_type: XdsType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest { error_detail: Some(rejection()), ..request(xds_type, names, version, nonce) }
}

pub fn delta_request(
    xds_type: XdsType,
    subscribe: &[&str],
    unsubscribe: &[&str],
    nonce: &str,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: xds_type.type_url().to_string(),
        resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|n| n.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

pub fn delta_nack(xds_type: XdsType, nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest { error_detail: Some(rejection()), ..delta_request(xds_type, &[], &[], nonce) }
}

fn rejection() -> Status {
    Status { code: 3, message: "rejected by the test".into(), details: vec![] }
}
