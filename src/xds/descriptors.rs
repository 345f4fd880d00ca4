//! Envoy's message descriptors, compiled at build time from the protos inside `envoy-types` (see
//! `build.rs`): what `render` prints JSON with and what `validate` reads Envoy's rules from.

use prost_reflect::DescriptorPool;
use std::sync::LazyLock;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

static POOL: LazyLock<DescriptorPool> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).expect("descriptor set compiled by build.rs"));

pub fn pool() -> &'static DescriptorPool {
    &POOL
}

/// The message type an `Any`'s `type_url` names (`type.googleapis.com/<full name>`), if the pool
/// has it.
pub fn message_of_type_url(type_url: &str) -> Option<prost_reflect::MessageDescriptor> {
    pool().get_message_by_name(type_url.rsplit('/').next().unwrap_or_default())
}
