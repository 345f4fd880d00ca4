//! Envoy's substitution format strings, as header values and error-response bodies are read:
//! `%%` is a literal `%`, and every other `%` starts a command operator (`%PROTOCOL%`,
//! `%REQ(x-user)%`, `%REQ(x-user):10%`, `%START_TIME(%s)%`). Envoy rejects the whole route table
//! for one it does not know (even a bare `50%`), so each is checked against the operators every
//! supported Envoy takes (`tests/route_cluster_oracle.rs` asks each of them).

/// Operators taken without parameters (`START_TIME` also takes an optional format).
pub const PLAIN_OPERATORS: &[&str] = &[
    "START_TIME",
    "REQUEST_HEADERS_BYTES",
    "BYTES_RECEIVED",
    "PROTOCOL",
    "UPSTREAM_PROTOCOL",
    "RESPONSE_CODE",
    "RESPONSE_CODE_DETAILS",
    "CONNECTION_TERMINATION_DETAILS",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "BYTES_SENT",
    "UPSTREAM_WIRE_BYTES_SENT",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "UPSTREAM_HEADER_BYTES_SENT",
    "UPSTREAM_HEADER_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_HEADER_BYTES_SENT",
    "DOWNSTREAM_HEADER_BYTES_RECEIVED",
    "DURATION",
    "REQUEST_DURATION",
    "REQUEST_TX_DURATION",
    "RESPONSE_DURATION",
    "RESPONSE_TX_DURATION",
    "RESPONSE_FLAGS",
    "ROUTE_NAME",
    "VIRTUAL_CLUSTER_NAME",
    "UPSTREAM_HOST",
    "UPSTREAM_CLUSTER",
    "UPSTREAM_LOCAL_ADDRESS",
    "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_REMOTE_ADDRESS",
    "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT",
    "UPSTREAM_TRANSPORT_FAILURE_REASON",
    "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
    "DOWNSTREAM_REMOTE_ADDRESS",
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_ADDRESS",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_PORT",
    "CONNECTION_ID",
    "STREAM_ID",
    "UNIQUE_ID",
    "GRPC_STATUS",
    "REQUESTED_SERVER_NAME",
    "DOWNSTREAM_LOCAL_URI_SAN",
    "DOWNSTREAM_PEER_URI_SAN",
    "DOWNSTREAM_LOCAL_SUBJECT",
    "DOWNSTREAM_PEER_SUBJECT",
    "DOWNSTREAM_PEER_ISSUER",
    "DOWNSTREAM_TLS_SESSION_ID",
    "DOWNSTREAM_TLS_CIPHER",
    "DOWNSTREAM_TLS_VERSION",
    "DOWNSTREAM_PEER_FINGERPRINT_256",
    "DOWNSTREAM_PEER_FINGERPRINT_1",
    "DOWNSTREAM_PEER_SERIAL",
    "DOWNSTREAM_PEER_CERT",
    "DOWNSTREAM_PEER_CERT_V_START",
    "DOWNSTREAM_PEER_CERT_V_END",
    "HOSTNAME",
    "LOCAL_REPLY_BODY",
    "FILTER_CHAIN_NAME",
];

/// Operators that need a parameter (`%REQ(x-user)%`); the first three also take `:<length>`.
pub const PARAMETER_OPERATORS: &[&str] =
    &["REQ", "RESP", "TRAILER", "DYNAMIC_METADATA", "CLUSTER_METADATA", "UPSTREAM_METADATA", "FILTER_STATE"];

/// Checks every `%` of `text`; the error says which one Envoy would refuse.
pub fn check_command_operators(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(offset) = text[at..].find('%') {
        let start = at + offset;
        if bytes.get(start + 1) == Some(&b'%') {
            at = start + 2;
            continue;
        }
        let end = operator_end(text, start).ok_or_else(|| {
            let shown: String = text[start..].chars().take(24).collect();
            format!(
                "`{shown}` (at byte {start}) is not an Envoy command operator every supported Envoy knows; write `%%` for a literal `%`"
            )
        })?;
        at = end;
    }
    Ok(())
}

/// The end (after the closing `%`) of a valid operator starting at `start`.
fn operator_end(text: &str, start: usize) -> Option<usize> {
    let rest = &text[start + 1..];
    let name_len = rest.bytes().take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_').count();
    let name = &rest[..name_len];
    let mut tail = &rest[name_len..];
    let parameter = match tail.strip_prefix('(') {
        Some(inside) => {
            let close = inside.find(')')?;
            tail = &inside[close + 1..];
            Some(&inside[..close])
        }
        None => None,
    };
    let mut length = false;
    if let Some(after) = tail.strip_prefix(':') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        tail = &after[digits..];
        length = true;
    }
    let tail = tail.strip_prefix('%')?;
    let valid = match parameter {
        None => !length && PLAIN_OPERATORS.contains(&name),
        Some("") => false,
        Some(_) if name == "START_TIME" => !length,
        Some(parameter) if ["REQ", "RESP", "TRAILER"].contains(&name) => header_names(parameter),
        Some(parameter) if name == "FILTER_STATE" => !length && filter_state(parameter),
        Some(_) => !length && PARAMETER_OPERATORS.contains(&name),
    };
    valid.then(|| text.len() - tail.len())
}

/// `%REQ(x-user)%`, `%REQ(x-user?x-alt)%`, `%REQ(:authority)%`: one or two header names.
fn header_names(parameter: &str) -> bool {
    let name = |n: &str| {
        let bare = n.strip_prefix(':').unwrap_or(n);
        !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    let parts: Vec<&str> = parameter.split('?').collect();
    parts.len() <= 2 && parts.iter().all(|part| name(part))
}

/// `%FILTER_STATE(key)%` or `%FILTER_STATE(key:PLAIN)%` / `:TYPED` (Envoy refuses other types).
fn filter_state(parameter: &str) -> bool {
    match parameter.split_once(':') {
        None => true,
        Some((key, kind)) => !key.is_empty() && ["PLAIN", "TYPED"].contains(&kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_envoy_takes_and_refuses() {
        for good in [
            "plain",
            "a %% b",
            "%PROTOCOL%",
            "x%DURATION%y%PROTOCOL%",
            "%REQ(x-a)%",
            "%REQ(x-a):10%",
            "%REQ(x-a?x-b)%",
            "%START_TIME(%s)%",
            "%REQ(:authority)%",
            "%FILTER_STATE(a:PLAIN)%",
            "%DYNAMIC_METADATA(envoy.lb:canary)%",
            "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        ] {
            assert_eq!(check_command_operators(good), Ok(()), "{good}");
        }
        for bad in [
            "50%",
            "%",
            "%FOO%",
            "%REQ%",
            "%REQ(x-a)",
            "%REQ(x-a)x%",
            "%PROTOCOL(x)%",
            "%DURATION:5%",
            "%RESP()%",
            "%%%",
        ] {
            assert!(check_command_operators(bad).is_err(), "{bad}");
        }
    }
}
