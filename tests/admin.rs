//! What operators see, against a running `serve` with a real Envoy connected:
//! - the diagnostics page in a real browser (headless Chromium through chromedriver): the Envoy
//!   shows as synced, a broken file's diagnostic is listed with its file name (and the filter
//!   finds it), a NACK (a Listener on a port that is taken) shows the resource behind it, and no
//!   key material is anywhere in the DOM; screenshots are saved as test artifacts;
//! - `ambassador-xds status`: synced, then stale while Envoy is paused (SIGSTOP) and the
//!   configuration changes, then synced again (SIGCONT);
//! - `/metrics`, parsed by a Prometheus text-format parser: names, types, labels and units.

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)]
mod harness;

use harness::browser::Browser;
use harness::stack::{Mode, Stack};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn input(name: &str) -> String {
    std::fs::read_to_string(support::manifest_dir().join("testdata/admin/input").join(name)).unwrap()
}

/// Where screenshots go: `target/tmp/artifacts/` (CI keeps the target directory's tmp).
fn artifact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A stack serving `testdata/admin/input` (upstream mTLS with a real key, a route that fails
/// closed, a file that is not YAML), Envoy connected.
fn started(mode: Mode, name: &str) -> Stack {
    let mut stack = Stack::prepare(mode, name);
    for file in ["config.yaml", "secret.yaml", "broken.yaml"] {
        stack.write_config(file, &input(file));
    }
    stack.start();
    stack
}

fn debug_status(stack: &Stack) -> Value {
    stack.admin_get("/debug/status").json().unwrap_or_else(|err| stack.fail(&err))
}

/// Waits until `/debug/status` shows one Envoy in `state`; returns that Envoy's entry.
fn await_envoy_state(stack: &Stack, state: &str) -> Value {
    stack.eventually(&format!("/debug/status shows the Envoy {state}"), || {
        let status = debug_status(stack);
        match status["envoys"].as_array().map(Vec::as_slice) {
            Some([envoy]) if envoy["state"] == state => Ok(envoy.clone()),
            _ => Err(format!("envoys: {}", status["envoys"])),
        }
    })
}

/// Every line of the private key's PEM (and its base64 as the Secret holds it).
fn key_material() -> Vec<String> {
    let secret = input("secret.yaml");
    let encoded = secret.lines().find_map(|l| l.trim().strip_prefix("tls.key: ")).unwrap().trim().to_string();
    let pem = String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &encoded).unwrap())
        .unwrap();
    let mut material: Vec<String> = pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_string).collect();
    material.push(encoded[..48].to_string());
    material.push("PRIVATE KEY".to_string());
    material
}

#[test]
fn the_diagnostics_page_in_a_real_browser() {
    let stack = started(Mode::Sotw, "admin-page");
    let envoy = await_envoy_state(&stack, "SYNCED");
    let node = envoy["node"].as_str().unwrap().to_string();
    let browser = Browser::start(&artifact("chromedriver.log")).unwrap_or_else(|err| stack.fail(&err));
    let page = format!("http://{}/", stack.admin());
    browser.goto(&page).unwrap_or_else(|err| stack.fail(&err));

    // The connected Envoy, synced, with its version from the node's build info.
    let envoy_rows = browser
        .execute(
            "return Array.from(document.querySelectorAll('tr.envoy')).map(r => [r.dataset.state, r.innerText]);",
            json!([]),
        )
        .unwrap();
    let rows = envoy_rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "one Envoy row: {envoy_rows}");
    assert_eq!(rows[0][0], "SYNCED", "{envoy_rows}");
    let row_text = rows[0][1].as_str().unwrap();
    assert!(row_text.contains(&node) && row_text.contains("envoy 1."), "{row_text}");

    // The broken file's diagnostic, with its file name; the filter narrows the table to it.
    let text = browser.visible_text().unwrap();
    assert!(text.contains("broken.yaml") && text.contains("unparseable YAML"), "{text}");
    let visible = browser
        .execute(
            "const box = document.querySelector('[data-filter=diagnostics]'); box.value = 'broken.yaml';\
             box.dispatchEvent(new Event('input'));\
             return Array.from(document.querySelectorAll('#diagnostics-table tbody tr'))\
               .filter(r => r.style.display !== 'none').map(r => r.innerText);",
            json!([]),
        )
        .unwrap();
    let visible = visible.as_array().unwrap();
    assert_eq!(visible.len(), 1, "only the broken file's row stays visible: {visible:?}");
    assert!(visible[0].as_str().unwrap().contains("broken.yaml"));
    // The route that fails closed, and why.
    assert!(text.contains("default/lost-mapping") && text.contains("no-such-context"), "{text}");
    std::fs::write(artifact("admin-page-synced.png"), browser.screenshot().unwrap()).unwrap();

    // A Listener on a port something else holds: Envoy cannot bind it and rejects the update.
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    stack.write_config(
        "taken-port.yaml",
        &format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: taken-port}}\n\
             spec: {{port: {port}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n"
        ),
    );
    let envoy = await_envoy_state(&stack, "NACKED");
    assert!(envoy["nacks"].to_string().contains("Listener default/taken-port"), "{envoy}");
    browser.goto(&page).unwrap();
    let nack_text = browser
        .execute(
            "return Array.from(document.querySelectorAll('tr.envoy .nack')).map(n => n.innerText).join('\\n');",
            json!([]),
        )
        .unwrap();
    let nack_text = nack_text.as_str().unwrap();
    assert!(
        nack_text.contains("LDS")
            && nack_text.contains("Listener default/taken-port")
            && nack_text.contains("taken-port.yaml"),
        "the NACK names the Listener and its file: {nack_text}"
    );
    let text = browser.visible_text().unwrap();
    assert!(text.contains("rejected LDS"), "the NACK is also a diagnostic: {text}");

    // No key material anywhere in the DOM (attributes and scripts included).
    let dom = browser.dom().unwrap();
    for secret in key_material() {
        assert!(!dom.contains(&secret), "key material in the DOM: {secret}");
    }
    // The served certificate is there: subject, SAN, issuer.
    assert!(dom.contains("envoy-client") && dom.contains("ambassador-xds test CA"), "the certificate is listed");

    let screenshot = artifact("admin-page.png");
    std::fs::write(&screenshot, browser.screenshot().unwrap()).unwrap();
    eprintln!("screenshots: {} (and admin-page-synced.png)", screenshot.display());
    drop(taken);
}

/// `ambassador-xds status --admin-address A`: (exit code, output).
fn status_command(stack: &Stack) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
        .args(["status", "--admin-address", &stack.admin().to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// The `status` row of the one Envoy, cell by cell (columns are two or more spaces apart).
fn type_states(output: &str) -> BTreeMap<String, String> {
    let mut lines = output.lines();
    let cells = |line: &str| -> Vec<String> {
        line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
    };
    let header = cells(lines.next().unwrap_or_default());
    let row = cells(lines.next().unwrap_or_default());
    header.into_iter().zip(row).filter(|(h, _)| h.len() == 3 && h.ends_with("DS")).collect()
}

#[test]
fn status_follows_an_envoy_paused_while_the_configuration_changes() {
    let mut stack = started(Mode::Delta, "admin-status");
    let synced = stack.eventually("`status` says every type is synced", || match status_command(&stack) {
        (0, out) if out.contains("all synced") => Ok(out),
        (code, out) => Err(format!("exit {code}:\n{out}")),
    });
    eprintln!("status, synced:\n{synced}");
    let states = type_states(&synced);
    // Every type Envoy subscribes to (no EDS: these clusters resolve DNS).
    assert_eq!(states.get("EDS").map(String::as_str), Some("-"), "{synced}");
    for xds_type in ["CDS", "LDS", "RDS", "SDS"] {
        assert_eq!(states.get(xds_type).map(String::as_str), Some("SYNCED"), "{xds_type}:\n{synced}");
    }
    assert!(synced.contains("ADS delta") && synced.contains("envoy 1."), "{synced}");

    // Paused, Envoy reads nothing and ACKs nothing; a new route and cluster are sent all the same.
    stack.signal_envoy(libc::SIGSTOP);
    stack.write_config(
        "more.yaml",
        "apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: more}\nspec: {prefix: /more/, service: more}\n",
    );
    let stale = stack.eventually("`status` says the paused Envoy is stale", || match status_command(&stack) {
        (1, out) if out.contains("STALE") => Ok(out),
        (code, out) => Err(format!("exit {code}:\n{out}")),
    });
    eprintln!("status, Envoy paused:\n{stale}");
    let states = type_states(&stale);
    assert_eq!(states.get("CDS").map(String::as_str), Some("STALE"), "the new cluster is not ACKed:\n{stale}");
    assert!(stale.contains("1 not synced"), "{stale}");

    stack.signal_envoy(libc::SIGCONT);
    let again = stack.eventually("`status` says synced again", || match status_command(&stack) {
        (0, out) => Ok(out),
        (code, out) => Err(format!("exit {code}:\n{out}")),
    });
    assert!(!again.contains("STALE"), "{again}");

    check_metrics(&stack);
    assert!(stack.envoy_running());
    stack.finish();
}

/// Families `/metrics` must have, with their types.
const FAMILIES: &[(&str, &str)] = &[
    ("ambassador_xds_reloads_total", "counter"),
    ("ambassador_xds_reload_duration_seconds", "histogram"),
    ("ambassador_xds_diagnostics", "gauge"),
    ("ambassador_xds_resources", "gauge"),
    ("ambassador_xds_snapshot_serial", "gauge"),
    ("ambassador_xds_streams", "gauge"),
    ("ambassador_xds_streams_opened_total", "counter"),
    ("ambassador_xds_pushes_total", "counter"),
    ("ambassador_xds_responses_sent_total", "counter"),
    ("ambassador_xds_nacks_total", "counter"),
    ("ambassador_xds_nacks_by_resource_total", "counter"),
    ("ambassador_xds_ignored_requests_total", "counter"),
    ("ambassador_xds_push_ack_latency_seconds", "histogram"),
    ("ambassador_xds_certificate_expiry_timestamp_seconds", "gauge"),
    ("ambassador_xds_connections_accepted_total", "counter"),
    ("ambassador_xds_connections", "gauge"),
    ("ambassador_xds_connections_refused_total", "counter"),
    ("ambassador_xds_connections_idle_closed_total", "counter"),
    ("ambassador_xds_accept_backoffs_total", "counter"),
];

fn check_metrics(stack: &Stack) {
    let text = stack.admin_get("/metrics").text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|err| stack.fail(&format!("/metrics is not Prometheus text: {err}\n{text}")));
    // Every family is declared with HELP and TYPE, and typed as the README says.
    let types: BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split_once(' ')).collect();
    for (name, kind) in FAMILIES {
        assert_eq!(types.get(name), Some(kind), "{name} is a {kind}:\n{text}");
        assert!(scrape.docs.contains_key(*name), "{name} has HELP");
    }
    assert_eq!(types.len(), FAMILIES.len(), "no family beyond the README's list: {types:?}");
    // Conventions: the prefix; counters end in _total; histograms are durations in seconds.
    for (name, kind) in &types {
        assert!(name.starts_with("ambassador_xds_"), "{name}");
        assert_eq!(*kind == "counter", name.ends_with("_total"), "{name} ({kind})");
        if *kind == "histogram" {
            assert!(name.ends_with("_seconds"), "{name}");
        }
    }
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(
            |s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
                prometheus_parse::Value::Summary(_) => f64::NAN,
            },
        )
    };
    let histogram_count = |name: &str| -> f64 {
        match scrape.samples.iter().find(|s| s.metric == name).map(|s| &s.value) {
            Some(prometheus_parse::Value::Histogram(buckets)) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            other => stack.fail(&format!("{name} is not a histogram: {other:?}")),
        }
    };
    assert!(value("ambassador_xds_reloads_total", &[("result", "published")]).unwrap_or(0.0) >= 2.0, "{text}");
    assert!(histogram_count("ambassador_xds_reload_duration_seconds") >= 2.0, "{text}");
    assert_eq!(value("ambassador_xds_diagnostics", &[("severity", "error"), ("kind", "syntax")]), Some(1.0), "{text}");
    assert_eq!(value("ambassador_xds_resources", &[("type", "SDS")]), Some(1.0), "{text}");
    assert_eq!(value("ambassador_xds_streams", &[("protocol", "delta")]), Some(1.0), "{text}");
    assert_eq!(value("ambassador_xds_streams", &[("protocol", "sotw")]), Some(0.0), "{text}");
    assert!(value("ambassador_xds_pushes_total", &[("type", "CDS")]).unwrap_or(0.0) >= 2.0, "{text}");
    assert!(histogram_count("ambassador_xds_push_ack_latency_seconds") >= 5.0, "every type was ACKed: {text}");
    // The served client certificate expires 2126-10-29T23:09:36Z.
    let expiry = scrape
        .samples
        .iter()
        .find(|s| s.metric == "ambassador_xds_certificate_expiry_timestamp_seconds")
        .unwrap_or_else(|| stack.fail(&format!("no certificate expiry sample:\n{text}")));
    assert_eq!(
        expiry.labels.get("secret"),
        Some("tlscontext/default/upstream-context/client-cert"),
        "{:?}",
        expiry.labels
    );
    assert_eq!(value("ambassador_xds_certificate_expiry_timestamp_seconds", &[]), Some(4_948_988_976.0), "{text}");
    for secret in key_material() {
        assert!(!text.contains(&secret), "key material in /metrics");
    }
}
