//! What a Mapping matches, following Emissary's `IRHTTPMapping`: its path (`prefix`,
//! `prefix_regex`, `prefix_exact`), its headers (`headers`, `regex_headers`, then `:authority`
//! from `host`/`hostname`, see [`super::host`], then `:method`), and the route weight Emissary
//! orders routes by.

use super::host::{self, AUTHORITY};
use super::ir::{HeaderMatch, HeaderValueMatch, PathMatch};
use crate::model::mapping::HeaderValue;
use crate::model::MappingSpec;

pub(super) type GroupKey = (PathMatch, i32, Vec<WeightedHeader>);

/// A header the route requires, and whether its value is a regex (both count in the weight).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct WeightedHeader {
    name: String,
    /// `None` for "present" and for the no-op `hostname: "*"`.
    value: Option<String>,
    regex: bool,
}

impl WeightedHeader {
    fn length(&self) -> usize {
        self.name.len() + self.value.as_deref().unwrap_or("*").len() + usize::from(self.regex)
    }

    fn key(&self) -> String {
        format!("{}-{}", self.name, self.value.as_deref().unwrap_or("*"))
    }
}

/// What a Mapping matches, before grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSpec {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub precedence: i32,
    headers: Vec<WeightedHeader>,
    /// Emitted header matchers (the no-op `hostname: "*"` is weighed but not emitted).
    pub header_matches: Vec<HeaderMatch>,
}

/// Emissary's `route_weight`, compared lexicographically (Python list order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteWeight {
    precedence: i32,
    prefix_len: usize,
    header_bytes: usize,
    prefix: String,
    header_keys: Vec<String>,
}

impl MatchSpec {
    pub fn weight(&self) -> RouteWeight {
        let prefix = match &self.path {
            PathMatch::Prefix(p) | PathMatch::Regex(p) | PathMatch::Exact(p) => p.clone(),
        };
        RouteWeight {
            precedence: self.precedence,
            prefix_len: prefix.len(),
            header_bytes: self.headers.iter().map(WeightedHeader::length).sum(),
            prefix,
            header_keys: self.headers.iter().map(WeightedHeader::key).collect(),
        }
    }

    /// Mappings with equal group keys are one canary group.
    pub(super) fn group_key(&self) -> GroupKey {
        (self.path.clone(), self.precedence, self.headers.clone())
    }
}

/// Builds a Mapping's match. Errors drop the Mapping; warnings are returned alongside.
pub fn match_spec(spec: &MappingSpec, prefix: &str) -> Result<(MatchSpec, Vec<String>), String> {
    let mut warnings = Vec::new();
    let path = if spec.prefix_regex {
        check_regex("prefix", prefix)?;
        PathMatch::Regex(prefix.to_string())
    } else if spec.prefix_exact {
        PathMatch::Exact(prefix.to_string())
    } else {
        PathMatch::Prefix(prefix.to_string())
    };

    let mut headers = Vec::new();
    let mut header_matches = Vec::new();
    let mut push = |name: &str, value: Option<&str>, regex: bool, matcher: Option<HeaderValueMatch>| {
        headers.push(WeightedHeader { name: name.to_string(), value: value.map(str::to_string), regex });
        if let Some(matcher) = matcher {
            // Host names are case-insensitive; nothing else is matched ignoring case.
            let ignore_case = name == AUTHORITY && !regex;
            header_matches.push(HeaderMatch { name: name.to_string(), value: matcher, ignore_case });
        }
    };
    for (name, value) in spec.headers.iter().filter(|(name, _)| !host::is_authority(name)) {
        match value {
            HeaderValue::Exact(value) => push(name, Some(value), false, Some(HeaderValueMatch::Exact(value.clone()))),
            HeaderValue::Present(true) => push(name, None, false, Some(HeaderValueMatch::Present)),
            HeaderValue::Present(false) => warnings
                .push(format!("`headers.{name}: false` matches nothing useful; use a string value or `true`; ignored")),
        }
    }
    for (name, regex) in &spec.regex_headers {
        check_regex(&format!("regex_headers.{name}"), regex)?;
        push(name, Some(regex), true, Some(HeaderValueMatch::Regex(regex.clone())));
    }

    if let Some(host) = host::host(spec, &mut warnings)? {
        if host.regex {
            check_regex("host", &host.written)?;
        }
        push(AUTHORITY, Some(&host.written), host.regex, host.matcher);
    }
    if let Some(method) = &spec.method {
        if spec.method_regex {
            check_regex("method", method)?;
            push(":method", Some(method), true, Some(HeaderValueMatch::Regex(method.clone())));
        } else {
            push(":method", Some(method), false, Some(HeaderValueMatch::Exact(method.clone())));
        }
    }

    let spec = MatchSpec {
        path,
        case_sensitive: spec.case_sensitive.unwrap_or(true),
        precedence: spec.precedence.unwrap_or(0),
        headers,
        header_matches,
    };
    Ok((spec, warnings))
}

/// Envoy uses RE2; the `regex` crate's syntax is close enough to catch what Envoy would NACK.
fn check_regex(field: &str, regex: &str) -> Result<(), String> {
    regex_syntax::Parser::new().parse(regex).map(|_| ()).map_err(|err| {
        let first_line = err.to_string().lines().last().unwrap_or_default().to_string();
        format!("`{field}` is not a valid regular expression: {first_line}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(yaml: &str) -> MappingSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn hosts_match_ignoring_case_and_weigh_as_written() {
        let (spec, _) = match_spec(&mapping("{prefix: /, hostname: '*.example.com'}"), "/").unwrap();
        assert_eq!(
            spec.header_matches,
            [HeaderMatch {
                name: ":authority".into(),
                value: HeaderValueMatch::Suffix(".example.com".into()),
                ignore_case: true
            }]
        );
        let (spec, _) = match_spec(&mapping("{prefix: /, hostname: '*'}"), "/").unwrap();
        assert!(spec.header_matches.is_empty());
        assert_eq!(spec.weight().header_bytes, ":authority".len() + 1);
        let (spec, _) = match_spec(&mapping("{prefix: /, headers: {x-a: b, ':authority': h.example}}"), "/").unwrap();
        let names: Vec<&str> = spec.header_matches.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["x-a", ":authority"], "the authority header moves to the host's place");
    }

    #[test]
    fn invalid_regexes_are_rejected() {
        let err = match_spec(&mapping("{prefix: '/(unclosed', prefix_regex: true}"), "/(unclosed").unwrap_err();
        assert!(err.contains("not a valid regular expression"), "{err}");
    }
}
