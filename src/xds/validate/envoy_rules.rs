//! The checks Envoy makes in its C++ code rather than in its protos' annotations: every
//! `Duration` in range, every RE2 regex valid and small enough, cipher and curve names that every
//! supported Envoy's BoringSSL knows.

use super::re2;
use prost_reflect::{DynamicMessage, ReflectMessage};

/// The longest duration every supported Envoy takes: it converts durations to nanoseconds in a
/// 64-bit integer, and refuses 9,223,372,036 s or more (found by the route/cluster oracle; the
/// protobuf JSON limit of 315,576,000,000 s is far above it).
const MAX_DURATION_SECONDS: i64 = 9_223_372_035;

/// Cipher names every Envoy from 1.36 to 1.40 accepts in `cipher_suites` (OpenSSL-style and RFC
/// names of BoringSSL's TLS 1.2 suites). TLS 1.3 suites are not configurable in BoringSSL;
/// `ECDHE-ECDSA-AES128-SHA256` arrived in 1.38. `tests/route_cluster_oracle.rs` asks each Envoy.
pub const CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-PSK-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-PSK-AES128-CBC-SHA",
    "ECDHE-PSK-AES256-CBC-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
    "PSK-AES128-CBC-SHA",
    "PSK-AES256-CBC-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_PSK_WITH_AES_128_CBC_SHA",
    "TLS_PSK_WITH_AES_256_CBC_SHA",
];

/// Curve names every Envoy from 1.36 to 1.40 accepts in `ecdh_curves` (`P-224` left BoringSSL in
/// 1.38, `X25519Kyber768Draft00` in 1.39, `MLKEM1024` arrived in 1.38).
pub const ECDH_CURVES: &[&str] =
    &["X25519", "x25519", "P-256", "prime256v1", "P-384", "secp384r1", "P-521", "secp521r1", "X25519MLKEM768"];

/// The Envoy-code checks for one message (its fields, not below it); `path` names it.
pub fn check(message: &DynamicMessage, path: &str, regex_program_size_limit: u32, out: &mut Vec<String>) {
    match message.descriptor().full_name() {
        "google.protobuf.Duration" => {
            let seconds = message.get_field_by_name("seconds").and_then(|v| v.as_i64()).unwrap_or_default();
            let nanos = message.get_field_by_name("nanos").and_then(|v| v.as_i32()).unwrap_or_default();
            if seconds < 0 || nanos < 0 {
                out.push(format!("{path}: a duration must not be negative"));
            } else if seconds > MAX_DURATION_SECONDS || nanos > 999_999_999 {
                out.push(format!("{path}: duration out of range (at most {MAX_DURATION_SECONDS} s)"));
            }
        }
        "envoy.type.matcher.v3.RegexMatcher" => {
            let regex = message.get_field_by_name("regex").and_then(|v| v.as_str().map(str::to_string));
            match re2::program_size(&regex.unwrap_or_default()) {
                Err(err) => out.push(format!("{path}: not a valid RE2 regex: {err}")),
                Ok(size) if size > u64::from(regex_program_size_limit) => out.push(format!(
                    "{path}: the regex's RE2 program size ({size}) is over Envoy's limit of {regex_program_size_limit} (re2.max_program_size.error_level)"
                )),
                Ok(_) => {}
            }
        }
        // Envoy's route-level header manipulation: no pseudo-headers or `host`, and values that
        // are valid format strings.
        "envoy.config.route.v3.Route" => route_headers(message, path, out),
        // Envoy builds the ALPN wire list itself: each protocol is one length byte and its name.
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext" => {
            let protocols = message.get_field_by_name("alpn_protocols");
            let protocols = protocols.as_ref().and_then(|v| v.as_list()).unwrap_or_default();
            if let Some(bad) = protocols.iter().filter_map(|p| p.as_str()).find(|p| p.is_empty() || p.len() > 255) {
                out.push(format!(
                    "{path}.alpn_protocols: a protocol name must be 1 to 255 bytes, `{}...` is {}",
                    bad.chars().take(16).collect::<String>(),
                    bad.len()
                ));
            }
        }
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters" => {
            let names = |field: &str| -> Vec<String> {
                message
                    .get_field_by_name(field)
                    .and_then(|v| {
                        v.as_list().map(|l| l.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
                    })
                    .unwrap_or_default()
            };
            if let Some(problem) = cipher_problem(&names("cipher_suites")) {
                out.push(format!("{path}.cipher_suites: {problem}"));
            }
            if let Some(problem) = curve_problem(&names("ecdh_curves")) {
                out.push(format!("{path}.ecdh_curves: {problem}"));
            }
        }
        _ => {}
    }
}

/// Envoy joins the list with `:` for BoringSSL's strict parser: each element must be a cipher
/// name, or `[a|b]` (equally preferred names). Aliases and operators (`ALL`, `!aNULL`) are refused
/// here even where BoringSSL takes some: a list of names is what a TLSContext means.
fn cipher_problem(ciphers: &[String]) -> Option<String> {
    for element in ciphers.iter().flat_map(|c| c.split(':')) {
        let names: Vec<&str> = match element.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
            Some(group) => group.split('|').collect(),
            None => vec![element],
        };
        if let Some(bad) = names.iter().find(|name| !CIPHER_SUITES.contains(name)) {
            return Some(format!(
                "`{bad}` is not a TLS 1.2 cipher name every supported Envoy knows (e.g. ECDHE-RSA-AES128-GCM-SHA256)"
            ));
        }
    }
    None
}

fn curve_problem(curves: &[String]) -> Option<String> {
    let mut seen = Vec::new();
    for curve in curves.iter().flat_map(|c| c.split(':')) {
        if !ECDH_CURVES.contains(&curve) {
            return Some(format!(
                "`{curve}` is not a curve every supported Envoy knows (one of {})",
                ECDH_CURVES.join(", ")
            ));
        }
        if seen.contains(&curve) {
            return Some(format!("`{curve}` is listed twice"));
        }
        seen.push(curve);
    }
    None
}

fn route_headers(route: &DynamicMessage, path: &str, out: &mut Vec<String>) {
    let list =
        |field: &str| route.get_field_by_name(field).and_then(|v| v.as_list().map(<[_]>::to_vec)).unwrap_or_default();
    let forbidden = |name: &str| name.starts_with(':') || name.eq_ignore_ascii_case("host");
    for field in ["request_headers_to_remove", "response_headers_to_remove"] {
        for name in list(field).iter().filter_map(|v| v.as_str().map(str::to_string)) {
            if forbidden(&name) {
                out.push(format!("{path}.{field}: `{name}` (pseudo-headers and host) may not be removed"));
            }
        }
    }
    for field in ["request_headers_to_add", "response_headers_to_add"] {
        for option in list(field).iter().filter_map(|v| v.as_message().cloned()) {
            let Some(header) = option.get_field_by_name("header").and_then(|v| v.as_message().cloned()) else {
                continue;
            };
            let text = |name: &str| {
                header.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            };
            let (key, value) = (text("key"), text("value"));
            if forbidden(&key) {
                out.push(format!("{path}.{field}: `{key}` (pseudo-headers and host) may not be modified"));
            }
            if let Err(problem) = crate::compile::format::check_command_operators(&value) {
                out.push(format!("{path}.{field}: {problem}"));
            }
        }
    }
}
