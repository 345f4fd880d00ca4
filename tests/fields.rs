//! The field table (`model::fields`) is the one place that says what each Mapping, TCPMapping and
//! Module field does: the README's list is generated from it, and every entry agrees with what
//! the parser does with that field (implemented fields are read, the others are classified).

mod support;

use ambassador_xds::diagnostic::Kind;
use ambassador_xds::model::fields::{self, Support, Table};
use ambassador_xds::model::parse_documents;

const BEGIN: &str = "<!-- fields:begin (generated from src/model/fields.rs; tests/fields.rs checks it) -->\n";
const END: &str = "<!-- fields:end -->";

#[test]
fn the_readme_lists_the_fields_from_the_table() {
    let path = support::manifest_dir().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let expected = fields::markdown();
    let start = readme.find(BEGIN).map(|at| at + BEGIN.len());
    let end = readme.find(END);
    let (Some(start), Some(end)) = (start, end) else {
        panic!("README.md has no generated field list; put this between `{BEGIN}` and `{END}`:\n{expected}")
    };
    if std::env::var_os("UPDATE_README").is_some_and(|v| v == "1") {
        std::fs::write(&path, format!("{}{expected}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        expected,
        "README.md's field list is not the table's (UPDATE_README=1 cargo test --test fields rewrites it)"
    );
}

/// A value of the right type for every implemented field, so the test can write each one.
fn sample(field: &str) -> &'static str {
    match field {
        "prefix" | "rewrite" | "path_redirect" | "prefix_redirect" => "/x/",
        "service" => "svc",
        "host" | "hostname" | "host_rewrite" | "method" | "cluster_tag" | "stats_name" | "server_name" => "x",
        "tls" => "true",
        "priority" => "high",
        "dns_type" => "logical_dns",
        "address" => "127.0.0.1",
        "headers" | "query_parameters" | "regex_headers" | "regex_query_parameters" => "{a: b}",
        "add_request_headers" | "add_response_headers" => "{x-a: b}",
        "remove_request_headers"
        | "remove_response_headers"
        | "allow_upgrade"
        | "v2BoolHeaders"
        | "v2BoolQueryParameters" => "[a]",
        "regex_rewrite" | "regex_redirect" => "{pattern: a, substitution: b}",
        "retry_policy" => "{retry_on: 5xx}",
        "cors" => "{origins: [a]}",
        "keepalive" => "{idle_time: 1}",
        "circuit_breakers" => "[{max_connections: 1}]",
        "error_response_overrides" => "[{on_status_code: 404, body: {text_format: x}}]",
        "liveness_probe" | "readiness_probe" => "{enabled: true}",
        "defaults" => "{httpmapping: {}}",
        "set_current_client_cert_details" => "{subject: true}",
        "headers_with_underscores_action" => "ALLOW",
        "forward_client_cert_details" => "SANITIZE",
        "ambassador_id" => "[default]",
        "resolver" => "kubernetes-service",
        "load_balancer" => "{policy: round_robin}",
        _ => "1",
    }
}

/// Switches, which take `true` rather than a number.
fn is_switch(field: &str) -> bool {
    let numeric =
        field.ends_with("_ms") || field.ends_with("_kb") || field.ends_with("_bytes") || field.ends_with("_hops");
    !numeric && !["weight", "port", "precedence", "redirect_response_code", "regex_max_size"].contains(&field)
}

fn document(table: &Table, field: &str, value: &str) -> String {
    let required: &[(&str, &str)] = match table.kind {
        "Module" => return format!("kind: Module\nname: ambassador\nconfig:\n  {field}: {value}\n"),
        "TCPMapping" => &[("port", "2222"), ("service", "svc")],
        _ => &[("prefix", "/"), ("service", "svc")],
    };
    let mut text = format!("kind: {}\nname: r\n{field}: {value}\n", table.kind);
    for (name, default) in required.iter().filter(|(name, _)| *name != field) {
        text.push_str(&format!("{name}: {default}\n"));
    }
    text
}

#[test]
fn every_table_entry_is_what_the_parser_does() {
    for table in fields::TABLES {
        for field in table.fields {
            let value = match field.support {
                Support::Implemented if sample(field.name) == "1" && is_switch(field.name) => "true",
                Support::Implemented => sample(field.name),
                _ => "{a: 1}",
            };
            let text = document(table, field.name, value);
            let (model, diagnostics) = parse_documents("t.yaml", &text);
            let ignored = diagnostics.iter().filter(|d| d.kind == Kind::IgnoredField).count();
            let unimplemented: Vec<String> = match table.kind {
                "Module" => {
                    model.modules.iter().flat_map(|m| &m.spec.config.unimplemented).map(|f| f.field.clone()).collect()
                }
                "TCPMapping" => {
                    model.tcp_mappings.iter().flat_map(|m| &m.spec.unimplemented).map(|f| f.field.clone()).collect()
                }
                _ => model.mappings.iter().flat_map(|m| &m.spec.unimplemented).map(|f| f.field.clone()).collect(),
            };
            let read = model.mappings.len() + model.modules.len() + model.tcp_mappings.len();
            let context = format!("{} {}: {diagnostics:?}", table.kind, field.name);
            match field.support {
                Support::Implemented => {
                    assert_eq!(read, 1, "{context}");
                    assert_eq!((ignored, unimplemented.len()), (0, 0), "{context}");
                }
                Support::Ignored => assert_eq!((read, ignored), (1, 1), "{context}"),
                // Refused fields the typed spec reads (`resolver`) are refused by the compiler.
                Support::Refused | Support::IgnoredUnless(_) if field.name == "resolver" => {}
                Support::Refused | Support::IgnoredUnless(_) => {
                    assert_eq!(unimplemented, [field.name.to_string()], "{context}");
                    assert_eq!(ignored, 0, "{context}");
                }
            }
        }
    }
}
