//! The policy values a Mapping and the Module share, checked and turned into IR: headers to
//! add and remove, CORS, retries, circuit breakers (and the name Emissary gives them), TCP
//! keepalive. Each returns an error for a value Envoy would not take or Emissary refuses.

use super::format::check_command_operators;
use super::ir::{CircuitBreaker, Cors, HeaderToAdd, Keepalive, RetryPolicy};
use crate::model::policy::{AddedHeaders, CircuitBreakerSpec, CorsSpec, KeepaliveSpec, RetryPolicySpec};
use crate::model::OneOrMany;
use std::time::Duration;

/// The `retry_on` values Emissary accepts (its CRD's enum); a comma-separated list of them is
/// taken too, as Envoy takes it.
pub const RETRY_ON: &[&str] =
    &["5xx", "gateway-error", "connect-failure", "retriable-4xx", "refused-stream", "retriable-status-codes"];

/// Envoy refuses to add or remove pseudo-headers and `host` (`host_rewrite` changes the host).
fn check_header_name(field: &str, name: &str) -> Result<(), String> {
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err(format!("`{field}`: Envoy does not let routes add or remove `{name}`"));
    }
    Ok(())
}

pub fn headers_to_add(field: &str, headers: &AddedHeaders) -> Result<Vec<HeaderToAdd>, String> {
    headers
        .iter()
        .map(|(name, header)| {
            check_header_name(field, name)?;
            check_command_operators(header.value()).map_err(|problem| format!("`{field}.{name}`: {problem}"))?;
            Ok(HeaderToAdd { name: name.clone(), value: header.value().to_string(), append: header.append() })
        })
        .collect()
}

/// `remove_*_headers`: one name or a list.
pub fn header_names(field: &str, names: &OneOrMany) -> Result<Vec<String>, String> {
    let names = names.clone().into_vec();
    for name in &names {
        check_header_name(field, name)?;
    }
    Ok(names)
}

/// Emissary joins lists with `, ` for Envoy's comma-separated CORS fields.
fn joined(value: &Option<OneOrMany>) -> Option<String> {
    match value {
        None => None,
        Some(OneOrMany::One(one)) => Some(one.clone()),
        Some(OneOrMany::Many(many)) => Some(many.join(", ")),
    }
    .filter(|joined| !joined.is_empty())
}

/// A CORS policy; `runtime_key` is `routing.cors_enabled.<group id>`, as Emissary keys it.
pub fn cors(spec: &CorsSpec, runtime_key: String) -> Cors {
    let origins = match &spec.origins {
        None => Vec::new(),
        // Ambassador 1.x: one comma-separated string.
        Some(OneOrMany::One(list)) => list.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect(),
        Some(OneOrMany::Many(list)) => list.clone(),
    };
    Cors {
        origins,
        methods: joined(&spec.methods),
        headers: joined(&spec.headers),
        exposed_headers: joined(&spec.exposed_headers),
        max_age: spec.max_age.as_ref().map(ToString::to_string).filter(|age| !age.is_empty()),
        credentials: spec.credentials.unwrap_or(false),
        runtime_key,
    }
}

pub fn retry_policy(spec: &RetryPolicySpec) -> Result<RetryPolicy, String> {
    let retry_on = spec.retry_on.as_deref().unwrap_or_default();
    let conditions: Vec<&str> = retry_on.split(',').map(str::trim).collect();
    if let Some(bad) = conditions.iter().find(|c| !RETRY_ON.contains(c)) {
        return Err(format!(
            "`retry_policy.retry_on: {retry_on}`: `{bad}` is not one of {} (Emissary refuses it)",
            RETRY_ON.join(", ")
        ));
    }
    let per_try_timeout = match &spec.per_try_timeout {
        None => None,
        Some(text) => Some(
            parse_duration(text)
                .ok_or_else(|| format!("`retry_policy.per_try_timeout: {text}` is not a duration such as `0.5s`"))?,
        ),
    };
    Ok(RetryPolicy { retry_on: conditions.join(","), num_retries: spec.num_retries, per_try_timeout })
}

/// A protobuf JSON duration, as Emissary hands `per_try_timeout` to Envoy: seconds with up to
/// nine decimals and an `s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let number = text.trim().strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.len() > 9 {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let seconds: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let nanos: u32 = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse().ok()? };
    Some(Duration::new(seconds, nanos))
}

/// The breakers, and the cluster-name field Emissary appends for each: `cb`, the priority's
/// initial (`n` when not given), then `c`/`p`/`r`/`t` and each limit given.
pub fn circuit_breakers(specs: &[CircuitBreakerSpec]) -> Result<(Vec<CircuitBreaker>, Vec<String>), String> {
    let mut breakers = Vec::new();
    let mut names = Vec::new();
    for spec in specs {
        let mut name = String::from("cb");
        let high_priority = match spec.priority.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => {
                name.push('n');
                false
            }
            Some("default") => {
                name.push('d');
                false
            }
            Some("high") => {
                name.push('h');
                true
            }
            Some(other) => return Err(format!("circuit breaker priority `{other}` is not `default` or `high`")),
        };
        for (value, letter) in [
            (spec.max_connections, 'c'),
            (spec.max_pending_requests, 'p'),
            (spec.max_requests, 'r'),
            (spec.max_retries, 't'),
        ] {
            if let Some(value) = value {
                name.push_str(&format!("{letter}{value}"));
            }
        }
        names.push(name);
        breakers.push(CircuitBreaker {
            high_priority,
            max_connections: spec.max_connections,
            max_pending_requests: spec.max_pending_requests,
            max_requests: spec.max_requests,
            max_retries: spec.max_retries,
        });
    }
    Ok((breakers, names))
}

pub fn keepalive(spec: &KeepaliveSpec) -> Keepalive {
    Keepalive { time: spec.idle_time.or(spec.time), interval: spec.interval, probes: spec.probes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_protobuf_json_writes_them() {
        assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration(".25s"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0.000000001s"), Some(Duration::from_nanos(1)));
        for bad in ["500ms", "1", "-1s", "1.2.3s", "s", "1e3s", "0.0000000001s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn circuit_breakers_are_named_as_emissary_names_them() {
        let specs: Vec<CircuitBreakerSpec> = serde_yaml::from_str(
            "[{max_connections: 1024, max_pending_requests: 2048}, {priority: HIGH, max_requests: 5, max_retries: 3}]",
        )
        .unwrap();
        let (breakers, names) = circuit_breakers(&specs).unwrap();
        assert_eq!(names, ["cbnc1024p2048", "cbhr5t3"]);
        assert!(breakers[1].high_priority);
        assert!(
            circuit_breakers(&serde_yaml::from_str::<Vec<CircuitBreakerSpec>>("[{priority: low}]").unwrap()).is_err()
        );
    }

    #[test]
    fn retry_on_takes_emissarys_values_and_lists_of_them() {
        let spec = |retry_on: &str| RetryPolicySpec { retry_on: Some(retry_on.into()), ..Default::default() };
        assert_eq!(retry_policy(&spec("5xx")).unwrap().retry_on, "5xx");
        assert_eq!(retry_policy(&spec("5xx, connect-failure")).unwrap().retry_on, "5xx,connect-failure");
        assert!(retry_policy(&spec("reset")).is_err());
        assert!(retry_policy(&RetryPolicySpec::default()).is_err(), "retry_on is required");
    }

    #[test]
    fn cors_lists_are_joined_and_origin_strings_split() {
        let spec: CorsSpec = serde_yaml::from_str(
            "{origins: 'https://a.example, https://b.example', methods: [GET, POST], max_age: 86400}",
        )
        .unwrap();
        let cors = cors(&spec, "routing.cors_enabled.x".into());
        assert_eq!(cors.origins, ["https://a.example", "https://b.example"]);
        assert_eq!(cors.methods.as_deref(), Some("GET, POST"));
        assert_eq!(cors.max_age.as_deref(), Some("86400"));
    }
}
