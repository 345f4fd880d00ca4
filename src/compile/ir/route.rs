//! Routes as compiled: what a request must look like, what is done to it on the way, and where
//! it goes (an upstream, a redirect, or a fail-closed answer).

use crate::diagnostic::Provenance;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct RouteTable {
    pub name: String,
    /// Envoy picks one by the request's host: exact names, then `*.` suffixes, then `.*`
    /// prefixes, then `*`.
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    /// In match order: Envoy takes the first route that matches.
    pub routes: Vec<HostRoute>,
}

/// A route of a virtual host: one of the Mappings' routes, shared by every virtual host that
/// serves it (a Mapping on ten Hosts is one `Route`), as the listener's security model varies it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRoute {
    pub route: Arc<Route>,
    pub variant: RouteVariant,
}

impl HostRoute {
    pub fn as_written(route: Arc<Route>) -> HostRoute {
        HostRoute { route, variant: RouteVariant::default() }
    }

    /// The route as Envoy gets it.
    pub fn resolve(&self) -> Route {
        let mut route = (*self.route).clone();
        if let Some(value) = self.variant.x_forwarded_proto {
            route.matcher.headers.retain(|h| !h.name.eq_ignore_ascii_case(X_FORWARDED_PROTO));
            if let Some(value) = value {
                let matcher = HeaderValueMatch::Exact(value.to_string());
                route.matcher.headers.push(HeaderMatch {
                    name: X_FORWARDED_PROTO.into(),
                    value: matcher,
                    ignore_case: false,
                });
            }
        }
        if self.variant.https_redirect {
            route.action = RouteAction::HttpsRedirect;
        }
        route
    }
}

pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// How a virtual host varies a route (Emissary's route variants).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RouteVariant {
    /// `Some`: the Mapping's own `x-forwarded-proto` matchers are replaced by one for this value
    /// (`Some(None)`: by none).
    pub x_forwarded_proto: Option<Option<&'static str>>,
    /// Answer 301 to `https://` instead of the route's own action.
    pub https_redirect: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// `<namespace>/<mapping name>`, so golden diffs point at the Mapping.
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// What the route does besides choosing the action (headers, CORS, error responses).
    pub policy: RoutePolicy,
    /// The Mapping (and, for a mirror, its shadow Mapping).
    pub provenance: Vec<Provenance>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathMatch {
    Prefix(String),
    Regex(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatch>,
    pub query_parameters: Vec<QueryMatch>,
    /// Set on every route of a canary group.
    pub runtime_fraction: Option<RuntimeFraction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderMatch {
    pub name: String,
    pub value: HeaderValueMatch,
    /// For host names (not regexes).
    pub ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeaderValueMatch {
    Exact(String),
    Regex(String),
    Prefix(String),
    Suffix(String),
    Present,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryMatch {
    pub name: String,
    /// `Exact`, `Regex` or `Present` only.
    pub value: HeaderValueMatch,
}

/// A share of traffic for one route of a weighted group: `percent` out of 100, overridable at
/// runtime under `runtime_key` (Emissary's `routing.traffic_shift.<cluster>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuntimeFraction {
    pub percent: u32,
    pub runtime_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteAction {
    Forward(Forward),
    Redirect(Redirect),
    /// The Mapping asked for something we cannot provide safely (TLS with a missing
    /// certificate, a field that is not implemented): answer directly instead.
    FailClosed {
        status: u32,
        body: String,
    },
    /// A cleartext request for a Host whose insecure action is `Redirect`: 301 to `https://`
    /// (made by [`RouteVariant::https_redirect`]).
    HttpsRedirect,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Forward {
    pub cluster: String,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub timeout_ms: u64,
    pub idle_timeout_ms: Option<u64>,
    pub host_rewrite: Option<String>,
    pub auto_host_rewrite: bool,
    pub retry: Option<RetryPolicy>,
    /// `allow_upgrade`: protocols the connection may switch to (`websocket`).
    pub upgrades: Vec<String>,
    pub mirror: Option<Mirror>,
    pub high_priority: bool,
    /// What `ring_hash` and `maglev` clusters hash requests on (boxed: rare, and it would make
    /// every route action larger).
    pub hash_policy: Option<Box<HashPolicy>>,
}

impl Forward {
    /// A plain forward to `cluster` with Emissary's defaults.
    pub fn to(cluster: String) -> Forward {
        Forward {
            cluster,
            prefix_rewrite: Some("/".into()),
            regex_rewrite: None,
            timeout_ms: 3000,
            idle_timeout_ms: None,
            host_rewrite: None,
            auto_host_rewrite: false,
            retry: None,
            upgrades: Vec::new(),
            mirror: None,
            high_priority: false,
            hash_policy: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashPolicy {
    Cookie { name: String, path: Option<String>, ttl_ms: Option<u64> },
    Header(String),
    SourceIp(bool),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegexRewrite {
    pub pattern: String,
    pub substitution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// Envoy's comma-separated `retry_on`.
    pub retry_on: String,
    pub num_retries: Option<u32>,
    pub per_try_timeout: Option<std::time::Duration>,
}

/// A shadow Mapping: `percent` of the requests are copied to `cluster` (answers are dropped).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mirror {
    pub cluster: String,
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Redirect {
    /// `host[:port]`.
    pub host: String,
    pub https: bool,
    pub path: RedirectPath,
    pub response_code: RedirectCode,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RedirectPath {
    /// The path stays.
    Keep,
    Path(String),
    Prefix(String),
    Regex(RegexRewrite),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RedirectCode {
    #[default]
    MovedPermanently,
    Found,
    SeeOther,
    TemporaryRedirect,
    PermanentRedirect,
}

/// Route-level settings besides the action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RoutePolicy {
    pub request_headers_to_add: Vec<HeaderToAdd>,
    pub response_headers_to_add: Vec<HeaderToAdd>,
    pub request_headers_to_remove: Vec<String>,
    pub response_headers_to_remove: Vec<String>,
    pub cors: Option<Cors>,
    pub error_responses: ErrorResponses,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderToAdd {
    pub name: String,
    /// May hold Envoy command operators (`%DOWNSTREAM_REMOTE_ADDRESS%`).
    pub value: String,
    pub append: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Cors {
    pub origins: Vec<String>,
    pub methods: Option<String>,
    pub headers: Option<String>,
    pub exposed_headers: Option<String>,
    pub max_age: Option<String>,
    pub credentials: bool,
    /// `routing.cors_enabled.<group id>`, as Emissary names it.
    pub runtime_key: String,
}

/// What the route does with error responses (`error_response_overrides`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum ErrorResponses {
    /// The listener's (the Module's) rules, if any.
    #[default]
    Inherit,
    /// `bypass_error_response_overrides`.
    Bypass,
    /// The Mapping's own rules, instead of the Module's.
    Override(Vec<ErrorResponseRule>),
}

/// Answers with status `status_code` get this body instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorResponseRule {
    pub status_code: u16,
    pub body: ErrorBody,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorBody {
    Text(String),
    /// Keys and values (command operators allowed), in the order written.
    Json(Vec<(String, String)>),
}
