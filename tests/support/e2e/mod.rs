//! The end-to-end harness: the real `ambassador-xds serve`, a real Envoy, TLS upstreams and plain
//! (HTTP/1.1, HTTP/2, TCP) upstreams that report what they saw. Used by `tests/e2e.rs` and
//! `tests/e2e_fields.rs` (the golden and CLI suites do not compile it); each uses part of it.

pub mod browser;
pub mod http;
pub mod plain;
pub mod process;
pub mod stack;
pub mod upstream;
