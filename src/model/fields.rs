//! The one table of what ambassador-xds does with each field people write in a `Mapping`, a
//! `TCPMapping` and the `ambassador` `Module`'s `config`: implemented (with Emissary's meaning),
//! safe to ignore (it changes nothing about where or how a request is routed), or refused (it
//! would, and it is not implemented: the resource is an error and its route fails closed, never
//! a warning-and-serve). The parser consults it for every field the typed specs do not hold, and
//! the README's list is generated from it (`tests/fields.rs` keeps the two equal).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Translated with Emissary's semantics.
    Implemented,
    /// Accepted with a warning: it has no effect on routing here.
    Ignored,
    /// Ignored while no resource of this kind (which ambassador-xds does not translate) is in
    /// the configuration; refused when one is, because then it would change what is served.
    IgnoredUnless(&'static str),
    /// Changes routing and is not implemented: an error, and the route fails closed.
    Refused,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub support: Support,
    /// What it does here, or why it is ignored or refused.
    pub note: &'static str,
}

#[derive(Debug)]
pub struct Table {
    pub kind: &'static str,
    /// Where the fields live, for messages and the README (`spec`, `spec.config`).
    pub place: &'static str,
    pub fields: &'static [Field],
}

impl Table {
    pub fn get(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// A field the typed spec does not hold, as the parser found it: what the compiler decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unimplemented {
    pub field: String,
    pub support: Support,
    pub note: &'static str,
}

const fn field(name: &'static str, support: Support, note: &'static str) -> Field {
    Field { name, support, note }
}

use Support::{Ignored, IgnoredUnless, Implemented, Refused};

pub const MAPPING: Table = Table {
    kind: "Mapping",
    place: "spec",
    fields: &[
        field("prefix", Implemented, "path prefix; with `prefix_regex` an RE2 regex, with `prefix_exact` the exact path"),
        field("prefix_regex", Implemented, ""),
        field("prefix_exact", Implemented, ""),
        field("case_sensitive", Implemented, "for prefixes and regexes alike"),
        field("headers", Implemented, "exact values, or `true` for presence; an exact `:authority` is the host"),
        field("regex_headers", Implemented, ""),
        field("v2BoolHeaders", Implemented, "presence matches, as a v2 Mapping converted to v3alpha1 carries them"),
        field("query_parameters", Implemented, "exact values or `true`; part of the canary group and the route weight, as in Emissary"),
        field("regex_query_parameters", Implemented, ""),
        field("v2BoolQueryParameters", Implemented, "presence matches"),
        field("host", Implemented, "exact (or a regex with `host_regex`), ignoring case and port; with Hosts, also which Hosts serve the route"),
        field("host_regex", Implemented, "every Host serves the route, as in Emissary"),
        field("hostname", Implemented, "a DNS glob; wins over `host`; with Hosts, the Hosts whose glob it overlaps serve the route"),
        field("method", Implemented, ""),
        field("method_regex", Implemented, ""),
        field("precedence", Implemented, ""),
        field("service", Implemented, "`[scheme://]host[:port][/...]`; a path is ignored with a warning, as Emissary does"),
        field("tls", Implemented, "a TLSContext name, or `true`"),
        field("weight", Implemented, "canary share; for a `shadow`, the mirrored share"),
        field("rewrite", Implemented, "default `/`; `\"\"` turns it off"),
        field("regex_rewrite", Implemented, "`{pattern, substitution}`; replaces `rewrite`"),
        field("host_rewrite", Implemented, ""),
        field("auto_host_rewrite", Implemented, ""),
        field("host_redirect", Implemented, "redirect to `service` instead of proxying (the canary group's first Mapping)"),
        field("path_redirect", Implemented, "with `host_redirect`"),
        field("prefix_redirect", Implemented, "with `host_redirect`"),
        field("regex_redirect", Implemented, "with `host_redirect`"),
        field("redirect_response_code", Implemented, "301, 302, 303, 307 or 308 (anything else: 301 with a warning, as Emissary)"),
        field("shadow", Implemented, "mirror the canary group's requests to `service` (`weight`: the share mirrored)"),
        field("add_request_headers", Implemented, "a string (appended) or `{value, append}`; merged across the canary group"),
        field("add_response_headers", Implemented, ""),
        field("remove_request_headers", Implemented, ""),
        field("remove_response_headers", Implemented, ""),
        field("add_linkerd_headers", Implemented, "`l5d-dst-override: <host>:<port>`"),
        field("timeout_ms", Implemented, "default 3000, or the Module's `cluster_request_timeout_ms`"),
        field("idle_timeout_ms", Implemented, ""),
        field("retry_policy", Implemented, "`retry_on` (one of Emissary's values, or a comma-separated list of them), `num_retries`, `per_try_timeout`"),
        field("cors", Implemented, "per route, through Envoy's CORS filter"),
        field("allow_upgrade", Implemented, ""),
        field("use_websocket", Implemented, "as `allow_upgrade: [websocket]`"),
        field("error_response_overrides", Implemented, "through Envoy's custom_response filter; replaces the Module's"),
        field("bypass_error_response_overrides", Implemented, ""),
        field("priority", Implemented, "`default` or `high` (the upstream connection pool)"),
        field("grpc", Implemented, "HTTP/2 to the upstream"),
        field("connect_timeout_ms", Implemented, ""),
        field("cluster_idle_timeout_ms", Implemented, ""),
        field("cluster_max_connection_lifetime_ms", Implemented, ""),
        field("keepalive", Implemented, "`idle_time` (Emissary's documented name; its translator reads `time`, also accepted), `interval`, `probes`"),
        field("circuit_breakers", Implemented, "part of the cluster name, exactly as Emissary names it"),
        field("cluster_tag", Implemented, "part of the cluster name"),
        field("stats_name", Implemented, "the cluster's `alt_stat_name` (default: the service, as in Emissary)"),
        field("dns_type", Implemented, "`strict_dns` or `logical_dns`"),
        field("respect_dns_ttl", Implemented, ""),
        field("enable_ipv4", Implemented, ""),
        field("enable_ipv6", Implemented, ""),
        field("bypass_auth", Implemented, "keeps the Mapping served when an AuthService (not translated) is configured"),
        field("ambassador_id", Implemented, ""),
        field("resolver", Implemented, "a ConsulResolver, KubernetesEndpointResolver or KubernetesServiceResolver by name (default: the Module's, else `kubernetes-service`); the endpoint resolvers make an EDS cluster"),
        field("load_balancer", Implemented, "`round_robin`, `least_request`, `ring_hash` or `maglev` (hashing on one `cookie`, `header` or `source_ip`), with an endpoint resolver only; part of the cluster name"),
        field("verify_spiffe_id", Implemented, "`true` (the Consul Connect identity) or a `spiffe://` URI the upstream's certificate must carry; needs a TLSContext that trusts its CA"),
        field("labels", IgnoredUnless("RateLimitService"), "rate-limit labels"),
        field("rate_limits", IgnoredUnless("RateLimitService"), "Ambassador 0.x rate-limit labels"),
        field("auth_context_extensions", Ignored, "only sent to an AuthService"),
        field("docs", Ignored, "developer-portal metadata"),
        field("outlier_detection", Ignored, "Emissary does not implement it either (it logs an error and serves the Mapping)"),
        field("health_checks", Ignored, "Emissary applies them only to endpoint-resolver clusters"),
        field("envoy_override", Ignored, "Emissary 3.x ignores it too"),
        field("v2ExplicitTLS", Ignored, "v2 conversion bookkeeping; the v3alpha1 `service` and `tls` already say it"),
        field("modules", Ignored, ""),
    ],
};

pub const TCP_MAPPING: Table = Table {
    kind: "TCPMapping",
    place: "spec",
    fields: &[
        field("port", Implemented, "a listener of its own on this port"),
        field("address", Implemented, "the listener's bind address (default 0.0.0.0)"),
        field("service", Implemented, "`[https://]host[:port]`"),
        field("host", Implemented, "terminates TLS with the TLSContext whose `hosts` names it and routes by SNI"),
        field("tls", Implemented, "originates TLS to the upstream (a TLSContext name or `true`)"),
        field("weight", Implemented, ""),
        field("idle_timeout_ms", Implemented, ""),
        field("circuit_breakers", Implemented, ""),
        field("cluster_tag", Implemented, ""),
        field("enable_ipv4", Implemented, ""),
        field("enable_ipv6", Implemented, ""),
        field("ambassador_id", Implemented, ""),
        field(
            "resolver",
            Refused,
            "resolvers are implemented for Mappings only; `kubernetes-service` (the default) is accepted",
        ),
    ],
};

pub const MODULE: Table = Table {
    kind: "Module",
    place: "spec.config",
    fields: &[
        field("use_remote_address", Implemented, "default true"),
        field("xff_num_trusted_hops", Implemented, "for listeners without `l7Depth` (Emissary 3.x reads only `l7Depth`)"),
        field("server_name", Implemented, ""),
        field("strip_matching_host_port", Implemented, "listeners strip any port already"),
        field("merge_slashes", Implemented, "default on here (off in Emissary)"),
        field("normalize_path", Implemented, "default on, as in Emissary"),
        field("reject_requests_with_escaped_slashes", Implemented, ""),
        field("regex_max_size", Implemented, "regexes are checked against it, capped by `--max-regex-program-size`"),
        field("regex_type", Ignored, "every regex is RE2, as in Emissary 3.x"),
        field("cluster_request_timeout_ms", Implemented, "the default `timeout_ms`"),
        field("cluster_idle_timeout_ms", Implemented, ""),
        field("cluster_max_connection_lifetime_ms", Implemented, ""),
        field("circuit_breakers", Implemented, "the default for every Mapping (and its cluster name)"),
        field("retry_policy", Implemented, "the default for every route"),
        field("cors", Implemented, "the default for every route"),
        field("keepalive", Implemented, ""),
        field("add_linkerd_headers", Implemented, ""),
        field("headers_with_underscores_action", Implemented, "`ALLOW`, `REJECT_REQUEST` or `DROP_HEADER`; overrides `--headers-with-underscores`"),
        field("max_request_headers_kb", Implemented, ""),
        field("listener_idle_timeout_ms", Implemented, ""),
        field("enable_http10", Implemented, ""),
        field("allow_chunked_length", Implemented, ""),
        field("preserve_external_request_id", Implemented, ""),
        field("suppress_envoy_headers", Implemented, ""),
        field("buffer_limit_bytes", Implemented, ""),
        field("forward_client_cert_details", Implemented, "`x-forwarded-client-cert`, on every connection manager (TLS chains included)"),
        field("set_current_client_cert_details", Implemented, "`subject`, `cert`, `chain`, `dns`, `uri` of the verified client certificate"),
        field("enable_ipv4", Implemented, ""),
        field("enable_ipv6", Implemented, ""),
        field("use_ambassador_namespace_for_service_resolution", Implemented, ""),
        field("liveness_probe", Implemented, "`/ambassador/v0/check_alive`, answered by the admin endpoint"),
        field("readiness_probe", Implemented, "`/ambassador/v0/check_ready`, answered by the admin endpoint"),
        field("error_response_overrides", Implemented, "through Envoy's custom_response filter"),
        field("defaults", Implemented, "`add_request_headers`, `add_response_headers`, `remove_request_headers`, `remove_response_headers` (also under `httpmapping`)"),
        field("resolver", Implemented, "the default for every Mapping (TCPMappings: only `kubernetes-service`)"),
        field("load_balancer", Implemented, "the default for every Mapping whose resolver routes to endpoints"),
        field("ip_allow", Refused, "access control: every route fails closed"),
        field("ip_deny", Refused, "access control: every route fails closed"),
        field("lua_scripts", Refused, "arbitrary request handling: every route fails closed"),
        field("default_labels", IgnoredUnless("RateLimitService"), "rate-limit labels for every Mapping"),
        field("default_label_domain", IgnoredUnless("RateLimitService"), ""),
        field("diagnostics", Ignored, "ambassador-xds serves no diagnostics UI; `/snapshot` is on its admin endpoint"),
        field("use_proxy_proto", Ignored, "Emissary 3.x ignores it too (a Listener's `protocolStack` says PROXY)"),
        field("x_forwarded_proto_redirect", Ignored, "Emissary 3.x ignores it too (a Host's `requestPolicy` says it)"),
        field("gzip", Ignored, "response compression"),
        field("buffer", Ignored, "request buffering"),
        field("grpc_stats", Ignored, "statistics"),
        field("enable_grpc_http11_bridge", Ignored, "gRPC-HTTP/1.1 clients get errors, not another upstream"),
        field("enable_grpc_web", Ignored, "gRPC-Web clients get errors, not another upstream"),
        field("envoy_log_type", Ignored, "access logs are Envoy's bootstrap's business"),
        field("envoy_log_format", Ignored, ""),
        field("envoy_log_path", Ignored, ""),
        field("proper_case", Ignored, "header case"),
        field("header_case_overrides", Ignored, "header case"),
        field("statsd", Ignored, ""),
        field("admin_port", Ignored, ""),
        field("service_port", Ignored, "listeners come from `Listener`s or `--listener-port`"),
        field("diag_port", Ignored, ""),
        field("debug_mode", Ignored, ""),
        field("envoy_validation_timeout", Ignored, ""),
        field("runtime_flags", Ignored, "Envoy runtime comes from its bootstrap"),
        field("auth_enabled", Ignored, ""),
        field("prune_unreachable_routes", Ignored, ""),
    ],
};

pub const TABLES: [&Table; 3] = [&MAPPING, &TCP_MAPPING, &MODULE];

fn category(support: Support) -> usize {
    match support {
        Implemented => 0,
        Ignored | IgnoredUnless(_) => 1,
        Refused => 2,
    }
}

/// The README's list of fields, generated from the tables.
pub fn markdown() -> String {
    let mut out = String::new();
    for table in TABLES {
        for (index, title) in
            ["implemented", "ignored (with a warning)", "refused (the resource is an error and its route fails closed)"]
                .into_iter()
                .enumerate()
        {
            let fields: Vec<String> = table
                .fields
                .iter()
                .filter(|f| category(f.support) == index)
                .map(|f| {
                    let condition = match f.support {
                        IgnoredUnless(kind) => format!("while no {kind} is configured; refused when one is"),
                        _ => String::new(),
                    };
                    let note =
                        [f.note, condition.as_str()].iter().filter(|n| !n.is_empty()).copied().collect::<Vec<_>>();
                    if note.is_empty() {
                        format!("`{}`", f.name)
                    } else {
                        format!("`{}` ({})", f.name, note.join("; "))
                    }
                })
                .collect();
            if !fields.is_empty() {
                out.push_str(&format!("- **{}** `{}`, {title}: {}.\n", table.kind, table.place, fields.join(", ")));
            }
        }
    }
    out
}
