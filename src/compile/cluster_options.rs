//! How Envoy talks to a Mapping's upstream: the cluster settings a Mapping or TCPMapping (or the
//! Module, by default) asks for, checked, and the circuit-breaker names that go into the
//! cluster's name. (Where the upstream's addresses come from, how they are balanced and what
//! identity they must prove is `upstream`.)

use super::ir::{ClusterOptions, DnsLookup};
use super::module::Defaults;
use super::policy;
use crate::model::policy::{CircuitBreakerSpec, KeepaliveSpec};

/// The cluster fields of a Mapping or TCPMapping (what each leaves unset is `None`).
#[derive(Default)]
pub struct ClusterFields<'a> {
    pub grpc: Option<bool>,
    pub connect_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connection_lifetime_ms: Option<u64>,
    pub keepalive: Option<&'a KeepaliveSpec>,
    pub circuit_breakers: Option<&'a [CircuitBreakerSpec]>,
    pub stats_name: Option<&'a str>,
    pub dns_type: Option<&'a str>,
    pub respect_dns_ttl: Option<bool>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
}

/// The options, the breaker names, and warnings; an error for values Emissary refuses.
pub fn options(
    spec: &ClusterFields<'_>,
    defaults: &Defaults,
) -> Result<(ClusterOptions, Vec<String>, Vec<String>), String> {
    let mut warnings = Vec::new();
    let breakers = spec.circuit_breakers.or(defaults.circuit_breakers.as_deref()).unwrap_or_default();
    let (circuit_breakers, breaker_names) =
        policy::circuit_breakers(breakers).map_err(|problem| format!("`circuit_breakers`: {problem}"))?;
    let ipv4 = spec.enable_ipv4.or(defaults.enable_ipv4).unwrap_or(true);
    let ipv6 = spec.enable_ipv6.or(defaults.enable_ipv6).unwrap_or(false);
    let dns = match (ipv6, ipv4) {
        (false, _) => DnsLookup::V4Only,
        (true, true) => DnsLookup::Auto,
        (true, false) => DnsLookup::V6Only,
    };
    let logical_dns = match spec.dns_type.map(str::to_ascii_lowercase).as_deref() {
        None | Some("strict_dns") => false,
        Some("logical_dns") => true,
        Some(other) => {
            warnings.push(format!(
                "`dns_type: {other}` is not strict_dns or logical_dns; strict_dns is used, as Emissary does"
            ));
            false
        }
    };
    let options = ClusterOptions {
        connect_timeout_ms: spec.connect_timeout_ms.unwrap_or(3000),
        http2: spec.grpc.unwrap_or(false),
        dns,
        logical_dns,
        respect_dns_ttl: spec.respect_dns_ttl.unwrap_or(false),
        idle_timeout_ms: spec.idle_timeout_ms.or(defaults.cluster_idle_timeout_ms),
        max_connection_lifetime_ms: spec.max_connection_lifetime_ms.or(defaults.cluster_max_connection_lifetime_ms),
        keepalive: spec.keepalive.map(policy::keepalive).or_else(|| defaults.keepalive.clone()),
        circuit_breakers,
        stats_name: spec.stats_name.map(str::to_string).unwrap_or_default(),
    };
    Ok((options, breaker_names, warnings))
}
