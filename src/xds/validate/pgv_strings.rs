//! protoc-gen-validate's string rules, including the well-known formats Envoy's protos use
//! (HTTP header names and values, host names, addresses).

use prost_reflect::{DynamicMessage, ReflectMessage, Value};

fn get(rules: &DynamicMessage, name: &str) -> Option<Value> {
    let field = rules.descriptor().get_field_by_name(name)?;
    let set = rules.has_field(&field) && !matches!(&*rules.get_field(&field), Value::List(l) if l.is_empty());
    set.then(|| rules.get_field(&field).into_owned())
}

fn text(rules: &DynamicMessage, name: &str) -> Option<String> {
    get(rules, name).and_then(|v| v.as_str().map(str::to_string))
}

fn count(rules: &DynamicMessage, name: &str) -> Option<u64> {
    get(rules, name).and_then(|v| v.as_u64())
}

fn texts(rules: &DynamicMessage, name: &str) -> Vec<String> {
    match get(rules, name) {
        Some(Value::List(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Minimum, maximum and exact length rules (`names` = the rule names for this unit).
pub fn lengths(rules: &DynamicMessage, length: usize, unit: &str, names: (&str, &str, &str)) -> Option<String> {
    let length = length as u64;
    if let Some(min) = count(rules, names.0).filter(|min| length < *min) {
        return Some(format!("must be at least {min} {unit} long, is {length}"));
    }
    if let Some(max) = count(rules, names.1).filter(|max| length > *max) {
        return Some(format!("must be at most {max} {unit} long, is {length}"));
    }
    if let Some(exact) = count(rules, names.2).filter(|exact| length != *exact) {
        return Some(format!("must be exactly {exact} {unit} long, is {length}"));
    }
    None
}

/// `validate.KnownRegex` numbers.
const HTTP_HEADER_NAME: i32 = 1;
const HTTP_HEADER_VALUE: i32 = 2;

/// The well-known header regexes, strict (RFC 7230 tokens) or not (no NUL, CR or LF).
fn header_ok(kind: i32, strict: bool, value: &str) -> bool {
    let lax = || !value.chars().any(|c| matches!(c, '\0' | '\n' | '\r'));
    match (kind, strict) {
        (HTTP_HEADER_NAME, true) => {
            let token = value.strip_prefix(':').unwrap_or(value);
            !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_|~`".contains(c))
        }
        (HTTP_HEADER_VALUE, true) => !value.chars().any(|c| matches!(c, '\0'..='\x08' | '\n'..='\x1f' | '\x7f')),
        _ => lax(),
    }
}

fn hostname_ok(value: &str) -> bool {
    let value = value.strip_suffix('.').unwrap_or(value);
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The string rules of one value.
pub fn string(rules: &DynamicMessage, value: &str) -> Option<String> {
    if value.is_empty() && get(rules, "ignore_empty").and_then(|v| v.as_bool()) == Some(true) {
        return None;
    }
    if let Some(c) = text(rules, "const").filter(|c| c != value) {
        return Some(format!("must be {c:?}"));
    }
    lengths(rules, value.chars().count(), "characters", ("min_len", "max_len", "len"))
        .or_else(|| lengths(rules, value.len(), "bytes", ("min_bytes", "max_bytes", "len_bytes")))
        .or_else(|| {
            text(rules, "prefix").filter(|p| !value.starts_with(p.as_str())).map(|p| format!("must start with {p:?}"))
        })
        .or_else(|| {
            text(rules, "suffix").filter(|s| !value.ends_with(s.as_str())).map(|s| format!("must end with {s:?}"))
        })
        .or_else(|| {
            text(rules, "contains").filter(|s| !value.contains(s.as_str())).map(|s| format!("must contain {s:?}"))
        })
        .or_else(|| {
            text(rules, "not_contains")
                .filter(|s| value.contains(s.as_str()))
                .map(|s| format!("must not contain {s:?}"))
        })
        .or_else(|| {
            let allowed = texts(rules, "in");
            (!allowed.is_empty() && !allowed.iter().any(|a| a == value)).then(|| format!("must be one of {allowed:?}"))
        })
        .or_else(|| texts(rules, "not_in").iter().any(|a| a == value).then(|| format!("{value:?} is not allowed")))
        .or_else(|| {
            let pattern = text(rules, "pattern")?;
            // PGV patterns are RE2; the ones in Envoy's protos are within the `regex` crate's syntax.
            let compiled = regex::Regex::new(&pattern).ok()?;
            (!compiled.is_match(value)).then(|| format!("must match {pattern:?}"))
        })
        .or_else(|| well_known(rules, value))
}

fn well_known(rules: &DynamicMessage, value: &str) -> Option<String> {
    let strict = get(rules, "strict").and_then(|v| v.as_bool()).unwrap_or(true);
    if let Some(Value::EnumNumber(kind)) = get(rules, "well_known_regex") {
        let what = if kind == HTTP_HEADER_NAME { "an HTTP header name" } else { "an HTTP header value" };
        return (!header_ok(kind, strict, value)).then(|| format!("must be {what} (no NUL, CR or LF)"));
    }
    let is = |name: &str| get(rules, name).and_then(|v| v.as_bool()) == Some(true);
    let ip = || value.parse::<std::net::IpAddr>().is_ok();
    if is("hostname") && !hostname_ok(value) {
        return Some("must be a valid host name".into());
    }
    if is("ip") && !ip() {
        return Some("must be an IP address".into());
    }
    if is("ipv4") && value.parse::<std::net::Ipv4Addr>().is_err() {
        return Some("must be an IPv4 address".into());
    }
    if is("ipv6") && value.parse::<std::net::Ipv6Addr>().is_err() {
        return Some("must be an IPv6 address".into());
    }
    if is("address") && !ip() && !hostname_ok(value) {
        return Some("must be an IP address or a host name".into());
    }
    None
}
