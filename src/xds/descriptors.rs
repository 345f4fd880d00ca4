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
