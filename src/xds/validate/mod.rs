//! Validates every resource before it is published, as Envoy will when it receives it: the
//! protoc-gen-validate rules in Envoy's protos ([`pgv`]) on the message and on everything packed
//! in its `Any`s, and the rules that live in Envoy's code ([`envoy_rules`]: durations, RE2 regexes
//! and their program size, cipher and curve names). A resource that fails never reaches Envoy:
//! Envoy would reject the whole response it came in, and every later one of its type.

mod envoy_rules;
pub mod memo;
mod pgv;
mod pgv_rules;
mod pgv_strings;
pub mod re2;

pub use envoy_rules::{CIPHER_SUITES, ECDH_CURVES};

use super::descriptors::{message_of_type_url, pool};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// Envoy's default `re2.max_program_size.error_level`, which the `bootstrap` command also sets
/// explicitly: a larger limit must be configured in both places.
pub const DEFAULT_REGEX_PROGRAM_SIZE_LIMIT: u32 = 100;

/// The message types the translator serves or packs into `Any` (the roots of [`pgv`]'s test).
pub const SERVED_MESSAGES: &[&str] = &[
    "envoy.config.cluster.v3.Cluster",
    "envoy.config.endpoint.v3.ClusterLoadAssignment",
    "envoy.config.listener.v3.Listener",
    "envoy.config.route.v3.RouteConfiguration",
    "envoy.extensions.transport_sockets.tls.v3.Secret",
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.filters.network.direct_response.v3.Config",
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
    "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
    "envoy.extensions.filters.http.router.v3.Router",
    "envoy.extensions.filters.http.cors.v3.Cors",
    "envoy.extensions.filters.http.cors.v3.CorsPolicy",
    "envoy.extensions.filters.http.custom_response.v3.CustomResponse",
    "envoy.extensions.http.custom_response.local_response_policy.v3.LocalResponsePolicy",
    "envoy.type.matcher.v3.HttpResponseStatusCodeMatchInput",
    "envoy.config.route.v3.FilterConfig",
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
];

/// What the validation is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub regex_program_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { regex_program_size: DEFAULT_REGEX_PROGRAM_SIZE_LIMIT }
    }
}

/// Every rule `message` breaks, as `field.path: what is wrong` (empty when Envoy will take it).
pub fn violations<M: prost::Message + prost::Name>(message: &M, limits: &Limits) -> Vec<String> {
    encoded_violations(&M::full_name(), &message.encode_to_vec(), limits)
}

fn encoded_violations(type_name: &str, bytes: &[u8], limits: &Limits) -> Vec<String> {
    let descriptor = pool().get_message_by_name(type_name).expect("served messages are in the pool");
    let dynamic = DynamicMessage::decode(descriptor, bytes).expect("encoded by prost");
    let mut out = Vec::new();
    walk(&dynamic, "", limits, &mut out);
    out
}

/// The first violation, if any: what a diagnostic reports. Remembered across reloads by the
/// message's bytes ([`memo`]).
pub fn check<M: prost::Message + prost::Name>(message: &M, limits: &Limits) -> Result<(), String> {
    let (type_name, bytes) = (M::full_name(), message.encode_to_vec());
    memo::verdict(&type_name, limits, &bytes, || {
        encoded_violations(&type_name, &bytes, limits).into_iter().next().map_or(Ok(()), Err)
    })
}

fn walk(message: &DynamicMessage, path: &str, limits: &Limits, out: &mut Vec<String>) {
    pgv::check(message, path, out);
    visit(message, path, &mut |message, path| {
        envoy_rules::check(message, path, limits.regex_program_size, out);
        if message.descriptor().full_name() == "google.protobuf.Any" {
            unpack(message, path, limits, out);
        }
    });
}

/// Envoy unpacks `typed_config` and validates what is inside with that type's rules.
fn unpack(any: &DynamicMessage, path: &str, limits: &Limits, out: &mut Vec<String>) {
    let type_url = any.get_field_by_name("type_url").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let Some(descriptor) = message_of_type_url(&type_url) else {
        out.push(format!("{path}: type {type_url} is not one ambassador-xds can check"));
        return;
    };
    let name = descriptor.full_name().to_string();
    let bytes = any.get_field_by_name("value").and_then(|v| v.as_bytes().cloned()).unwrap_or_default();
    match DynamicMessage::decode(descriptor, bytes) {
        Ok(inner) => walk(&inner, &format!("{path}<{name}>"), limits, out),
        Err(err) => out.push(format!("{path}: does not decode as {name}: {err}")),
    }
}

/// Calls `f` on `message` and on every message below it (not inside `Any` bodies).
fn visit(message: &DynamicMessage, path: &str, f: &mut dyn FnMut(&DynamicMessage, &str)) {
    f(message, path);
    for (field, value) in message.fields() {
        let path = if path.is_empty() { field.name().to_string() } else { format!("{path}.{}", field.name()) };
        match value {
            Value::Message(inner) => visit(inner, &path, f),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(inner) = item {
                        visit(inner, &format!("{path}[{i}]"), f);
                    }
                }
            }
            Value::Map(entries) => {
                for item in entries.values() {
                    if let Value::Message(inner) = item {
                        visit(inner, &path, f);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, Route};
    use envoy_types::pb::google::protobuf::Duration;

    #[test]
    fn the_compile_default_is_envoys_default() {
        assert_eq!(crate::compile::Options::default().max_regex_program_size, DEFAULT_REGEX_PROGRAM_SIZE_LIMIT);
    }

    #[test]
    fn proto_rules_and_envoy_rules_are_enforced() {
        let limits = Limits::default();
        let cluster = |seconds, nanos| Cluster {
            name: "c".into(),
            connect_timeout: Some(Duration { seconds, nanos }),
            ..Default::default()
        };
        assert_eq!(check(&cluster(3, 0), &limits), Ok(()));
        assert!(check(&cluster(0, 0), &limits).unwrap_err().starts_with("connect_timeout: "));
        assert!(violations(&cluster(-1, 0), &limits).iter().any(|v| v.contains("negative")));
        assert!(check(&cluster(1_000_000_000_000, 0), &limits).unwrap_err().contains("out of range"));
        let route = Route { r#match: Some(Default::default()), ..Default::default() };
        assert!(!violations(&route, &limits).is_empty(), "a route needs a path specifier and an action");
        let header = HeaderMatcher { name: String::new(), ..Default::default() };
        assert!(check(&header, &limits).unwrap_err().starts_with("name: "));
    }
}
