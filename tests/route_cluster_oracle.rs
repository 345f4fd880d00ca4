//! Differential test, Envoy as the oracle, for route and cluster fields: every field the
//! translator emits, pushed to its limits (regex size and syntax, durations 0/negative/huge,
//! name, host and SNI lengths, header names and values, rewrites, cipher and curve names, ...),
//! is translated, and whatever the translator then serves is loaded by every supported Envoy
//! (`--mode validate`, as served and as a static copy). Any served output an Envoy rejects is a
//! failure. A good Mapping beside each case must always be served (one bad input never removes
//! good configuration).
//!
//! A second test holds the RE2 program-size bound against the sizes real Envoys report.

mod support;

use ambassador_xds::compile::format::{PARAMETER_OPERATORS, PLAIN_OPERATORS};
use ambassador_xds::compile::Options;
use ambassador_xds::pipeline::translate_paths;
use ambassador_xds::source::files::LoadOptions;
use ambassador_xds::xds::validate::{re2, CIPHER_SUITES, ECDH_CURVES};
use ambassador_xds::xds::XdsType;
use serde_json::json;
use std::path::Path;

const BIG_REGEX: &str = "^/api/v[0-9]+/(users|orders|products|invoices)/[a-f0-9-]{36}/(details|history)$";

/// Regexes from tiny to over the limit, valid and not (RE2 syntax differs from Perl's).
fn regexes() -> Vec<String> {
    let mut out: Vec<String> = [
        "^/api/v[0-9]+/",
        BIG_REGEX,
        "/(unclosed",
        "a{1001}",
        "(?i)/kelvin/",
        r"^/users/\w+/\d+$",
        ".*",
        "[^/]+",
        r"^/\p{L}+$",
        r"(?P<name>x)",
        r"(?<name>x)",
        r"\Q.*\E",
        "a(?=b)",
        r"^/x\b",
        "[[:alpha:]]+",
        "",
        "^$",
        "(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p)+",
        "x{50}",
        "x{95}",
        "x{96}",
        "x{97}",
        "x{98}",
        "(ab){40}",
        "[a-z]{30}",
        "[a-f0-9-]{20}",
        "(?s).",
        "\u{e9}+",
        "[\u{100}-\u{10ffff}]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    out.push(format!("^/({})$", (0..30).map(|i| format!("segment{i}")).collect::<Vec<_>>().join("|")));
    out
}

fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

/// `(case name, extra Mapping spec lines, extra TLSContext spec lines or None)`; a case whose
/// TLSContext lines start with `config:` is an `ambassador` Module instead.
fn cases() -> Vec<(String, String, Option<String>)> {
    let cases = std::cell::RefCell::new(Vec::<(String, String, Option<String>)>::new());
    let mapping = |name: &str, spec: String| cases.borrow_mut().push((name.to_string(), spec, None));
    let tls = |name: &str, ctx: String| cases.borrow_mut().push((name.to_string(), "tls: ctx".into(), Some(ctx)));
    let module = |name: &str, config: String| {
        cases.borrow_mut().push((name.to_string(), "precedence: 0".into(), Some(format!("config: {config}"))))
    };
    for (i, regex) in regexes().iter().enumerate() {
        mapping(&format!("prefix-regex-{i}"), format!("prefix: {}\n  prefix_regex: true", quoted(regex)));
        mapping(&format!("regex-header-{i}"), format!("regex_headers: {{x-test: {}}}", quoted(regex)));
        mapping(&format!("host-regex-{i}"), format!("host: {}\n  host_regex: true", quoted(regex)));
    }
    for (name, value) in [("empty", ""), ("newline", "a\nb"), ("nul", "a\u{0}b"), ("space", "a b"), ("colon", ":path")]
    {
        mapping(&format!("header-name-{name}"), format!("headers: {{{}: v}}", quoted(value)));
        mapping(&format!("header-value-{name}"), format!("headers: {{x-test: {}}}", quoted(value)));
        mapping(&format!("rewrite-{name}"), format!("rewrite: {}", quoted(value)));
        mapping(&format!("host-rewrite-{name}"), format!("host_rewrite: {}", quoted(value)));
        mapping(&format!("prefix-{name}"), format!("prefix: {}", quoted(value)));
        mapping(&format!("hostname-{name}"), format!("hostname: {}", quoted(value)));
        mapping(&format!("method-{name}"), format!("method: {}", quoted(value)));
    }
    for ms in
        ["0", "1", "999", "1000", "315576000000999", "315576000001000", "1000000000000000", "18446744073709551615"]
    {
        mapping(&format!("timeout-{ms}"), format!("timeout_ms: {ms}"));
        mapping(&format!("idle-timeout-{ms}"), format!("idle_timeout_ms: {ms}"));
        mapping(&format!("connect-timeout-{ms}"), format!("connect_timeout_ms: {ms}"));
    }
    for weight in ["0", "1", "100", "101"] {
        mapping(&format!("weight-{weight}"), format!("weight: {weight}"));
    }
    for len in [63, 64, 253, 254, 255, 256, 300, 70000] {
        let label = "a".repeat(len);
        mapping(&format!("service-host-{len}"), format!("service: {}", quoted(&format!("{label}.example"))));
        mapping(&format!("prefix-len-{len}"), format!("prefix: {}", quoted(&format!("/{label}"))));
        mapping(&format!("host-len-{len}"), format!("host: {}", quoted(&label)));
        tls(&format!("sni-{len}"), format!("sni: {}", quoted(&label)));
    }
    mapping("service-port-0", "service: upstream:0".into());
    mapping("service-port-65535", "service: upstream:65535".into());
    for cipher in CIPHER_SUITES.iter().copied().chain([
        "TLS_AES_128_GCM_SHA256",
        "NOT-A-CIPHER",
        "ALL",
        "!aNULL",
        "ECDHE-ECDSA-AES128-SHA256",
        "",
        "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
        "[ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-SHA256",
    ]) {
        tls(&format!("cipher-{cipher}"), format!("cipher_suites: [{}]", quoted(cipher)));
    }
    tls("cipher-duplicate", "cipher_suites: [AES128-SHA, AES128-SHA]".into());
    for curve in ECDH_CURVES.iter().copied().chain(["P-224", "X25519Kyber768Draft00", "MLKEM1024", "NOT-A-CURVE", ""]) {
        tls(&format!("curve-{curve}"), format!("ecdh_curves: [{}]", quoted(curve)));
    }
    tls("curve-duplicate", "ecdh_curves: [P-256, P-256]".into());
    for (name, alpn) in [("empty", "''"), ("commas", "',,h2,'"), ("long", &quoted(&"h".repeat(300)))] {
        tls(&format!("alpn-{name}"), format!("alpn_protocols: {alpn}"));
    }
    for (min, max) in [("v1.0", "v1.3"), ("v1.3", "v1.3"), ("v1.2", "v1.1")] {
        tls(&format!("versions-{min}-{max}"), format!("min_tls_version: {min}\n  max_tls_version: {max}"));
    }
    // Envoy's command operators in header values: every one the translator takes, in one route.
    let operators: Vec<String> = PLAIN_OPERATORS
        .iter()
        .map(|op| format!("%{op}%"))
        .chain(PARAMETER_OPERATORS.iter().map(|op| format!("%{op}(x-a:b)%")))
        .chain(["%REQ(x-a):10%", "%RESP(x-a?x-b):3%", "%START_TIME(%s.%3f)%", "a %% b"].map(String::from))
        .collect();
    let headers: Vec<String> = operators.iter().enumerate().map(|(i, v)| format!("x-op-{i}: {}", quoted(v))).collect();
    mapping("header-operators", format!("add_request_headers: {{{}}}", headers.join(", ")));
    for (name, value) in [("percent", "50%"), ("unknown", "%NOT_AN_OPERATOR%"), ("open", "%REQ(x"), ("empty", "")] {
        mapping(&format!("added-header-{name}"), format!("add_response_headers: {{x-v: {}}}", quoted(value)));
    }
    for (name, header) in [("pseudo", ":path"), ("host", "host"), ("empty", ""), ("space", "a b"), ("upper", "X-Up")] {
        mapping(&format!("add-header-name-{name}"), format!("add_request_headers: {{{}: v}}", quoted(header)));
        mapping(&format!("remove-header-{name}"), format!("remove_request_headers: [{}]", quoted(header)));
        mapping(&format!("remove-response-header-{name}"), format!("remove_response_headers: [{}]", quoted(header)));
    }
    for timeout in ["0s", "0.000000001s", "315576000000s", "315576000001s"] {
        mapping(&format!("per-try-{timeout}"), format!("retry_policy: {{retry_on: 5xx, per_try_timeout: {timeout}}}"));
    }
    mapping("num-retries-huge", "retry_policy: {retry_on: 5xx, num_retries: 4294967295}".into());
    for (name, host) in [("empty", ""), ("space", "a b"), ("port", "example.com:8443"), ("ipv6", "[::1]:8443")] {
        mapping(&format!("redirect-host-{name}"), format!("host_redirect: true\n  service: {}", quoted(host)));
    }
    for (name, path) in [("empty", ""), ("newline", "/a\nb"), ("relative", "a")] {
        mapping(&format!("path-redirect-{name}"), format!("host_redirect: true\n  path_redirect: {}", quoted(path)));
        mapping(
            &format!("prefix-redirect-{name}"),
            format!("host_redirect: true\n  prefix_redirect: {}", quoted(path)),
        );
    }
    mapping("regex-redirect-bad", "host_redirect: true\n  regex_redirect: {pattern: '(', substitution: x}".into());
    mapping("regex-rewrite-empty", "regex_rewrite: {pattern: '', substitution: x}".into());
    for (name, upgrade) in [("empty", ""), ("websocket", "websocket"), ("space", "a b")] {
        mapping(&format!("upgrade-{name}"), format!("allow_upgrade: [{}]", quoted(upgrade)));
    }
    for (name, cors) in [
        ("empty-origin", "{origins: ['']}"),
        ("max-age-text", "{origins: [a], max_age: forever}"),
        ("all", "{origins: '*', methods: [GET], headers: [x], exposed_headers: [y], credentials: true, max_age: 10}"),
    ] {
        mapping(&format!("cors-{name}"), format!("cors: {cors}"));
    }
    for limit in ["0", "4294967295"] {
        mapping(
            &format!("breaker-{limit}"),
            format!("circuit_breakers: [{{max_connections: {limit}, max_retries: {limit}}}]"),
        );
        mapping(
            &format!("keepalive-{limit}"),
            format!("keepalive: {{idle_time: {limit}, interval: {limit}, probes: {limit}}}"),
        );
    }
    for ms in ["0", "1", "315576000001000"] {
        mapping(&format!("cluster-idle-{ms}"), format!("cluster_idle_timeout_ms: {ms}\n  grpc: true"));
    }
    mapping("error-overrides", "error_response_overrides: [{on_status_code: 404, body: {json_format: {a: '%RESPONSE_CODE%', b: true, c: 1}}}, {on_status_code: 599, body: {text_format: '', content_type: ''}}]".into());
    for kb in ["0", "1", "8192", "8193"] {
        module(&format!("module-max-request-headers-kb-{kb}"), format!("{{max_request_headers_kb: {kb}}}"));
    }
    module("module-server-name-newline", "{server_name: \"a\\nb\"}".into());
    module("module-buffer-limit-0", "{buffer_limit_bytes: 0}".into());
    module("module-listener-idle-huge", "{listener_idle_timeout_ms: 315576000001000}".into());
    module(
        "module-error-overrides",
        "{error_response_overrides: [{on_status_code: 500, body: {text_format: 'x %RESPONSE_CODE%'}}]}".into(),
    );
    cases.into_inner()
}

fn translate_case(
    dir: &Path,
    name: &str,
    mapping_spec: &str,
    context: Option<&str>,
) -> ambassador_xds::pipeline::Translation {
    let input = dir.join(name);
    std::fs::create_dir_all(&input).unwrap();
    // A case may give the probe's service itself (a redirect's host).
    let service = if mapping_spec.contains("service:") { "" } else { "  service: upstream.example\n" };
    let mut yaml = format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: good, namespace: default}}\nspec:\n  prefix: /good/\n  service: good.example\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: probe, namespace: default}}\nspec:\n  prefix: /probe/\n{service}  {mapping_spec}\n"
    );
    match context {
        Some(config) if config.starts_with("config:") => yaml.push_str(&format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {{name: ambassador, namespace: default}}\nspec:\n  {config}\n"
        )),
        Some(context) => yaml.push_str(&format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {{name: ctx, namespace: default}}\nspec:\n  hosts: []\n  {context}\n"
        )),
        None => {}
    }
    std::fs::write(input.join("config.yaml"), yaml).unwrap();
    translate_paths(&[input], &LoadOptions::default(), &Options::default()).unwrap()
}

#[test]
fn every_served_output_loads_in_every_supported_envoy() {
    let envoys = support::envoy_binaries();
    let scratch = tempfile::tempdir().unwrap();
    let cases = cases();
    assert!(cases.len() >= 200, "{} cases", cases.len());
    let jobs: Vec<_> = cases.iter().flat_map(|case| envoys.iter().map(move |envoy| (case, envoy))).collect();
    let results = support::in_parallel(&jobs, |((name, spec, context), (version, envoy))| {
        let translation = translate_case(scratch.path(), &format!("{name}-{version}"), spec, context.as_deref());
        let good_served =
            translation.provenance.of(XdsType::Route, "ambassador-routes").iter().any(|p| &*p.resource.name == "good");
        let bootstrap = support::validation_bootstrap(&translation.resources);
        let path = scratch.path().join(format!("{}-{version}.json", name.replace('/', "_")));
        std::fs::write(&path, bootstrap.to_string()).unwrap();
        let verdict = support::envoy_validate_with(envoy, &path);
        let refused = translation.diagnostics.iter().any(|d| d.is_error());
        (
            verdict.map_err(|e| {
                format!("{name}: Envoy {version} rejects the translator's output: {}", e.lines().last().unwrap_or(""))
            }),
            good_served,
            refused,
        )
    });
    let failures: Vec<String> = results.iter().filter_map(|(verdict, _, _)| verdict.clone().err()).collect();
    let lost_good: Vec<&String> =
        cases.iter().zip(results.chunks(envoys.len())).filter(|(_, r)| !r[0].1).map(|(c, _)| &c.0).collect();
    let refused = results.chunks(envoys.len()).filter(|r| r[0].2).count();
    println!(
        "{} cases x {} Envoy versions; the translator refused or fail-closed {refused} cases",
        cases.len(),
        envoys.len()
    );
    assert!(lost_good.is_empty(), "a bad Mapping removed the good one in: {lost_good:?}");
    assert!(failures.is_empty(), "{} outputs rejected by Envoy:\n{}", failures.len(), failures.join("\n"));
}

/// One route per regex, every Envoy told to warn about any program (`warn_level: 0`) and to
/// reject none: the warnings carry each regex's real RE2 program size.
fn envoy_program_sizes(envoy: &Path, regexes: &[String], scratch: &Path) -> Vec<Option<u64>> {
    let routes: Vec<_> = regexes
        .iter()
        .enumerate()
        .map(|(i, regex)| json!({"name": format!("r{i}"), "match": {"safe_regex": {"regex": regex}}, "direct_response": {"status": 200}}))
        .collect();
    let bootstrap = json!({
        "layered_runtime": {"layers": [{"name": "sizes", "static_layer": {"re2.max_program_size.error_level": 1000000, "re2.max_program_size.warn_level": 0}}]},
        "static_resources": {"listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "s", "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": routes}]}}}]}]}]}
    });
    let path = scratch.join(format!("sizes-{}.json", envoy.to_string_lossy().replace('/', "_")));
    std::fs::write(&path, bootstrap.to_string()).unwrap();
    let output = std::process::Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "warn", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    regexes
        .iter()
        .map(|regex| {
            let needle = format!("regex '{regex}' RE2 program size of ");
            let at = log.find(&needle)? + needle.len();
            log[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect()
}

#[test]
fn regex_program_size_bound_is_never_below_envoys_count() {
    let envoys = support::envoy_binaries();
    let scratch = tempfile::tempdir().unwrap();
    let regexes: Vec<String> =
        regexes().into_iter().filter(|r| !r.is_empty() && re2::program_size(r).is_ok()).collect();
    let mut report = String::new();
    let mut below = Vec::new();
    for (version, envoy) in &envoys {
        for (regex, actual) in regexes.iter().zip(envoy_program_sizes(envoy, &regexes, scratch.path())) {
            let bound = re2::program_size(regex).unwrap();
            let Some(actual) = actual else { continue };
            report.push_str(&format!("{version} {actual:>5} <= {bound:>5}  {regex}\n"));
            if bound < actual {
                below.push(format!("{version}: {regex:?}: bound {bound} < RE2's {actual}"));
            }
        }
    }
    println!("Envoy's RE2 program size vs. the translator's bound:\n{report}");
    assert!(report.lines().count() >= regexes.len(), "Envoy reported too few sizes:\n{report}");
    assert!(below.is_empty(), "the bound is below RE2's count:\n{}", below.join("\n"));
}
