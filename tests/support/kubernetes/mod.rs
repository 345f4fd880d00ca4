//! The Kubernetes side of `tests/kubernetes.rs`: an in-process API server that speaks the real
//! discovery/list/watch HTTP protocol ([`api`]), and a harness that runs `ambassador-xds serve
//! --kubernetes` against it, optionally with a real Envoy ([`serve`]).
//!
//! `serve` uses the end-to-end helpers (`support/e2e/`), which the test file mounts as `harness`.

pub mod api;
pub mod serve;
