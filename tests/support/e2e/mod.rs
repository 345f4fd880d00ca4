//! The end-to-end harness: the real `ambassador-xds serve`, a real Envoy, and TLS upstreams that
//! report what they saw. Used only by `tests/e2e.rs` (the golden and CLI suites do not compile it).

pub mod browser;
pub mod http;
pub mod process;
pub mod stack;
pub mod upstream;
