//! Which hosts a Mapping serves: `hostname` (a glob), else `host` (exact, or a regex with
//! `host_regex`), else an exact `:authority` in `headers` (Emissary treats it as `host`).
//!
//! Hosts match as Emissary users expect rather than as a raw `:authority` comparison: whatever
//! the case (`ignore_case` on the matcher) and whatever the port (the listener strips the port
//! before routing, `strip_any_host_port`, so `Host: example.com:8080` on the default listener
//! matches `example.com`). A port written in the Mapping would then never match, so it is
//! dropped with a warning. A `host_regex` sees the host without its port, as written otherwise.

use super::ir::HeaderValueMatch;
use crate::model::mapping::HeaderValue;
use crate::model::MappingSpec;

pub const AUTHORITY: &str = ":authority";

/// A Mapping's host, as written (it counts in Emissary's route weight) and as matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub written: String,
    pub regex: bool,
    /// `None` for `hostname: "*"`, which matches every host.
    pub matcher: Option<HeaderValueMatch>,
}

/// Whether `name` is the `:authority` header (header names are case-insensitive).
pub fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(AUTHORITY)
}

pub fn host(spec: &MappingSpec, warnings: &mut Vec<String>) -> Result<Option<Host>, String> {
    // Only an exact value is a host; `":authority": true` is a presence match like any header's.
    let authority = spec.headers.iter().find_map(|(name, value)| match value {
        HeaderValue::Exact(value) if is_authority(name) => Some(value),
        _ => None,
    });
    if let Some(glob) = authority.filter(|value| value.contains('*')) {
        // Refused even next to `host`/`hostname`, as Emissary refuses it.
        return Err(format!("`headers.:authority: {glob}` is an exact match and contains `*`, which cannot match anything; use `hostname` for globs"));
    }
    if spec.host.is_some() && spec.hostname.is_some() {
        warnings.push("both `host` and `hostname` are set; `hostname` wins".into());
    }
    if let Some(hostname) = &spec.hostname {
        // A glob: `*` alone matches every host, `*.x` a suffix, `x.*` a prefix.
        let matcher = if hostname == "*" {
            None
        } else if let Some(suffix) = hostname.strip_prefix('*') {
            Some(HeaderValueMatch::Suffix(without_port("hostname", suffix, warnings)))
        } else if let Some(prefix) = hostname.strip_suffix('*') {
            Some(HeaderValueMatch::Prefix(prefix.to_string()))
        } else {
            Some(HeaderValueMatch::Exact(without_port("hostname", hostname, warnings)))
        };
        return Ok(Some(Host { written: hostname.clone(), regex: false, matcher }));
    }
    let (field, host) = match (&spec.host, authority) {
        (Some(host), _) => ("host", host.clone()),
        (None, Some(value)) => ("headers.:authority", value.clone()),
        (None, None) => return Ok(None),
    };
    if spec.host_regex && field == "host" {
        // The caller checks the regex, as it checks every regex a Mapping matches with.
        return Ok(Some(Host { matcher: Some(HeaderValueMatch::Regex(host.clone())), written: host, regex: true }));
    }
    if host.contains('*') {
        return Err(format!(
            "`{field}: {host}` contains `*`, which matches nothing literally; use `hostname` for globs"
        ));
    }
    let matcher = Some(HeaderValueMatch::Exact(without_port(field, &host, warnings)));
    Ok(Some(Host { written: host, regex: false, matcher }))
}

/// `example.com:8080` → `example.com` (with a warning): the listener strips request ports.
fn without_port(field: &str, host: &str, warnings: &mut Vec<String>) -> String {
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty()
                && !name.ends_with(']')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            warnings.push(format!("`{field}: {host}`: hosts match without their port; matching `{name}`"));
            name.to_string()
        }
        _ => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(yaml: &str) -> MappingSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn matcher(yaml: &str) -> (Option<HeaderValueMatch>, Vec<String>) {
        let mut warnings = Vec::new();
        (host(&mapping(yaml), &mut warnings).unwrap().unwrap().matcher, warnings)
    }

    #[test]
    fn hostname_globs_and_host_literals() {
        assert_eq!(matcher("{hostname: '*.example.com'}").0, Some(HeaderValueMatch::Suffix(".example.com".into())));
        assert_eq!(matcher("{hostname: 'api.*'}").0, Some(HeaderValueMatch::Prefix("api.".into())));
        assert_eq!(matcher("{hostname: '*'}").0, None);
        assert_eq!(matcher("{host: API.example.com}").0, Some(HeaderValueMatch::Exact("API.example.com".into())));
        assert!(host(&mapping("{host: '*.x'}"), &mut Vec::new()).is_err());
    }

    #[test]
    fn an_exact_authority_header_is_a_host_and_host_wins_over_it() {
        assert_eq!(
            matcher("{headers: {':authority': a.example}}").0,
            Some(HeaderValueMatch::Exact("a.example".into()))
        );
        assert_eq!(
            matcher("{host: b.example, headers: {':Authority': a.example}}").0,
            Some(HeaderValueMatch::Exact("b.example".into()))
        );
        assert!(host(&mapping("{headers: {':authority': '*'}}"), &mut Vec::new()).is_err());
    }

    #[test]
    fn written_ports_are_dropped_with_a_warning() {
        let (matched, warnings) = matcher("{host: 'example.com:8080'}");
        assert_eq!(matched, Some(HeaderValueMatch::Exact("example.com".into())));
        assert!(warnings[0].contains("without their port"), "{warnings:?}");
        assert_eq!(matcher("{hostname: '*.example.com:443'}").0, Some(HeaderValueMatch::Suffix(".example.com".into())));
        assert!(matcher("{host: '[::1]'}").1.is_empty());
    }
}
