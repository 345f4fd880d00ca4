//! Consul: the agent's HTTP API with blocking queries ([`client`], [`blocking`], [`api`]), the
//! Connect certificate for Ambassador ([`connect`]; as a configuration source in
//! [`certificates`]), and ConsulResolver endpoints ([`endpoints`]).

pub mod api;
pub mod blocking;
pub mod certificates;
pub mod client;
pub mod connect;
pub mod endpoints;

pub use certificates::ConsulCertificateSource;
pub use client::{ConsulClient, ConsulConfig, ConsulError};
pub use connect::{ConnectCertificates, ConnectStatus, ConnectWatch};
pub use endpoints::ConsulEndpoints;
