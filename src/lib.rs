//! ambassador-xds: compiles Ambassador (Emissary-ingress) `Mapping`, `TLSContext` and Kubernetes
//! `Secret` resources into Envoy v3 resources, so that a stock Envoy originates mutual TLS to
//! upstream services.
//!
//! The pipeline (see DESIGN.md): [`source`]s read files and the Kubernetes API, [`model`] parses
//! documents into typed resources, [`compile`] resolves them into an [`compile::ir`] plus
//! [`diagnostic`]s, [`xds`] turns the IR into encoded envoy-types messages, and [`render`] prints
//! those as canonical Envoy JSON. [`pipeline`] is that path for `translate`; the [`controller`]
//! runs it for `serve` and publishes [`snapshot`]s, which the [`server`] streams to Envoy.
//! `model`, `compile`, `xds` and `render` do no I/O.

pub mod cli;
pub mod compile;
pub mod connector;
pub mod controller;
pub mod diagnostic;
pub mod generations;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod render;
pub mod server;
pub mod snapshot;
pub mod source;
pub mod xds;
