//! What a Mapping matches, following Emissary's `IRHTTPMapping`: its path (`prefix`,
//! `prefix_regex`, `prefix_exact`), its headers (`headers`, `regex_headers`, then `:authority`
//! from `host`/`hostname`, see [`super::host`], then `:method`), its query parameters, the
//! group id that makes Mappings one canary group, and the route weight Emissary orders by.

use super::host::{self, AUTHORITY};
use super::ir::{HeaderMatch, HeaderValueMatch, PathMatch, QueryMatch};
use crate::model::mapping::HeaderValue;
use crate::model::MappingSpec;
use indexmap::IndexMap;

/// A header or query parameter the route requires, and whether its value is a regex (both
/// count in the weight; Emissary's `KeyValueDecorator`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Weighed {
    pub name: String,
    /// `None` for "present".
    pub value: Option<String>,
    pub regex: bool,
}

impl Weighed {
    fn length(&self) -> usize {
        self.name.len() + self.value.as_deref().unwrap_or("*").len() + usize::from(self.regex)
    }

    fn key(&self) -> String {
        format!("{}-{}", self.name, self.value.as_deref().unwrap_or("*"))
    }

    /// What Emissary's group id takes from it: the name, then the value if any.
    fn group_bytes(&self, out: &mut String) {
        out.push_str(&self.name);
        out.push_str(self.value.as_deref().unwrap_or_default());
    }
}

/// What a Mapping matches, before grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSpec {
    pub path: PathMatch,
    /// As written; `None` takes the canary group's value (default true).
    pub case_sensitive: Option<bool>,
    pub precedence: i32,
    pub method: Option<String>,
    pub(super) headers: Vec<Weighed>,
    pub(super) query: Vec<Weighed>,
    /// Emitted header matchers (the no-op `hostname: "*"` is weighed but not emitted).
    pub header_matches: Vec<HeaderMatch>,
    pub query_matches: Vec<QueryMatch>,
}

/// Emissary's `route_weight`, compared lexicographically (Python list order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteWeight {
    precedence: i32,
    prefix_len: usize,
    header_bytes: usize,
    query_bytes: usize,
    prefix: String,
    method: String,
    /// Header keys, then query parameter keys, as one list.
    keys: Vec<String>,
}

impl MatchSpec {
    pub fn prefix(&self) -> &str {
        match &self.path {
            PathMatch::Prefix(p) | PathMatch::Regex(p) | PathMatch::Exact(p) => p,
        }
    }

    pub fn weight(&self) -> RouteWeight {
        let prefix = self.prefix().to_string();
        RouteWeight {
            precedence: self.precedence,
            prefix_len: prefix.len(),
            header_bytes: self.headers.iter().map(Weighed::length).sum(),
            query_bytes: self.query.iter().map(Weighed::length).sum(),
            prefix,
            method: self.method.clone().unwrap_or_else(|| "GET".into()),
            keys: self.headers.iter().chain(&self.query).map(Weighed::key).collect(),
        }
    }

    /// Emissary's group id (before hashing): Mappings with equal ids are one canary group. The
    /// kind of path match and of header match are not part of it (Emissary then refuses a
    /// member whose `prefix_regex`, `prefix_exact` or `headers` differ from the first one's).
    pub fn group_id(&self) -> String {
        let mut id = format!("HTTP-{}{}", self.method.as_deref().unwrap_or("GET"), self.prefix());
        for weighed in self.headers.iter().chain(&self.query) {
            weighed.group_bytes(&mut id);
        }
        if self.precedence != 0 {
            id.push_str(&self.precedence.to_string());
        }
        id
    }

    /// The headers as Emissary compares them between members of a group.
    pub(super) fn weighed_headers(&self) -> &[Weighed] {
        &self.headers
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
        headers.push(Weighed { name: name.to_string(), value: value.map(str::to_string), regex });
        if let Some(matcher) = matcher {
            // Host names are case-insensitive; nothing else is matched ignoring case.
            let ignore_case = name == AUTHORITY && !regex;
            header_matches.push(HeaderMatch { name: name.to_string(), value: matcher, ignore_case });
        }
    };
    for (name, value) in &spec.headers {
        match value {
            // An exact `:authority` is the Mapping's host (below); `true` is a presence match.
            HeaderValue::Exact(_) if host::is_authority(name) => {}
            HeaderValue::Exact(value) => push(name, Some(value), false, Some(HeaderValueMatch::Exact(value.clone()))),
            HeaderValue::Present(true) => push(name, None, false, Some(HeaderValueMatch::Present)),
            HeaderValue::Present(false) => return Err(not_matchable("headers", name)),
        }
    }
    for name in &spec.v2_bool_headers {
        push(name, None, false, Some(HeaderValueMatch::Present));
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
    let (query, query_matches) = query_parameters(spec)?;

    let spec = MatchSpec {
        path,
        case_sensitive: spec.case_sensitive,
        precedence: spec.precedence.unwrap_or(0),
        method: spec.method.clone(),
        headers,
        query,
        header_matches,
        query_matches,
    };
    Ok((spec, warnings))
}

fn not_matchable(field: &str, name: &str) -> String {
    format!("`{field}.{name}: false` is not a value Emissary can match (use a string, or `true` for presence)")
}

/// `query_parameters` (exact, or `true` for presence), `v2BoolQueryParameters`, then
/// `regex_query_parameters`, in that order as Emissary weighs them.
fn query_parameters(spec: &MappingSpec) -> Result<(Vec<Weighed>, Vec<QueryMatch>), String> {
    let mut weighed = Vec::new();
    let mut matches = Vec::new();
    let exact: &IndexMap<String, HeaderValue> = &spec.query_parameters;
    for (name, value) in exact {
        let (value, matcher) = match value {
            HeaderValue::Exact(value) => (Some(value.clone()), HeaderValueMatch::Exact(value.clone())),
            HeaderValue::Present(true) => (None, HeaderValueMatch::Present),
            HeaderValue::Present(false) => return Err(not_matchable("query_parameters", name)),
        };
        weighed.push(Weighed { name: name.clone(), value, regex: false });
        matches.push(QueryMatch { name: name.clone(), value: matcher });
    }
    for name in &spec.v2_bool_query_parameters {
        weighed.push(Weighed { name: name.clone(), value: None, regex: false });
        matches.push(QueryMatch { name: name.clone(), value: HeaderValueMatch::Present });
    }
    for (name, regex) in &spec.regex_query_parameters {
        check_regex(&format!("regex_query_parameters.{name}"), regex)?;
        weighed.push(Weighed { name: name.clone(), value: Some(regex.clone()), regex: true });
        matches.push(QueryMatch { name: name.clone(), value: HeaderValueMatch::Regex(regex.clone()) });
    }
    Ok((weighed, matches))
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
