//! Golden tests: every `testdata/<case>/` compiles to exactly its `expected.json` (and
//! `diagnostics.txt`), and every case's resources are loaded by a real Envoy 1.40 in
//! `--mode validate`. `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expected files and
//! deletes orphans.
//!
//! Case layout: `input/` (YAML/JSON, as `translate` reads it), optional `files/` (the root for
//! absolute TLSContext file paths, like `translate --files-root`), `expected.json`, and
//! `diagnostics.txt` when the case reports problems.

mod support;

use ambassador_xds::compile::Options;
use ambassador_xds::pipeline::{translate_paths, Translation};
use ambassador_xds::render;
use ambassador_xds::source::files::LoadOptions;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

fn update_mode() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

fn testdata() -> PathBuf {
    PathBuf::from("testdata")
}

/// Every directory under `testdata/` with an `input/` folder is a case.
fn cases() -> Vec<PathBuf> {
    std::env::set_current_dir(support::manifest_dir()).unwrap();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("input").is_dir())
        .collect();
    cases.sort();
    cases
}

fn translate_case(case: &Path) -> Translation {
    let files = case.join("files");
    let load = LoadOptions { files_root: files.is_dir().then_some(files) };
    translate_paths(&[case.join("input")], &load, &Options::default())
        .unwrap_or_else(|err| panic!("{}: {err}", case.display()))
}

fn diagnostics_text(translation: &Translation) -> String {
    translation.diagnostics.iter().map(|d| format!("{d}\n")).collect()
}

/// Compares (or in update mode, writes) one expected file. `None` means the file must not exist.
fn check_file(path: &Path, actual: Option<&str>, failures: &mut Vec<String>) {
    let existing = std::fs::read_to_string(path).ok();
    if update_mode() {
        match actual {
            Some(text) if existing.as_deref() != Some(text) => std::fs::write(path, text).unwrap(),
            None if existing.is_some() => std::fs::remove_file(path).unwrap(),
            _ => {}
        }
        return;
    }
    if existing.as_deref() != actual {
        failures.push(format!(
            "{}: differs from the current output\n--- expected\n{}\n--- actual\n{}\n(run UPDATE_GOLDEN=1 cargo test --test golden if the change is intended)",
            path.display(),
            existing.as_deref().unwrap_or("<missing>"),
            actual.unwrap_or("<none>")
        ));
    }
}

#[test]
fn golden_outputs_match() {
    let cases = cases();
    assert!(cases.len() >= 25, "expected at least 25 golden cases, found {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let translation = translate_case(case);
        let json = render::snapshot_json(&render::redacted(translation.resources.clone()));
        check_file(&case.join("expected.json"), Some(&json), &mut failures);
        let diagnostics = diagnostics_text(&translation);
        check_file(
            &case.join("diagnostics.txt"),
            (!diagnostics.is_empty()).then_some(diagnostics.as_str()),
            &mut failures,
        );
    }
    // Orphans: expected files whose case lost its input.
    for entry in std::fs::read_dir(testdata()).unwrap() {
        let dir = entry.unwrap().path();
        let orphaned = dir.join("expected.json").exists() && !dir.join("input").is_dir();
        if orphaned && update_mode() {
            std::fs::remove_dir_all(&dir).unwrap();
        } else if orphaned {
            failures.push(format!("{}: expected.json without input/ (UPDATE_GOLDEN=1 deletes it)", dir.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn private_keys_never_reach_goldens() {
    for case in cases() {
        let golden = std::fs::read_to_string(case.join("expected.json")).unwrap_or_default();
        assert!(!golden.contains("PRIVATE KEY"), "{}: expected.json holds a private key", case.display());
    }
}

/// Builds a bootstrap that loads the case's resources twice: as served (routes over RDS and
/// secrets over SDS, both on ADS), and as a static copy whose listeners carry their routes inline
/// and whose clusters take their secrets from `static_resources.secrets` — so Envoy parses every
/// route, certificate and key it would receive.
fn validation_bootstrap(translation: &Translation) -> Value {
    let snapshot: Value = serde_json::from_str(&render::snapshot_json(&translation.resources)).unwrap();
    let list = |field: &str| snapshot.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
    let routes = list("routes");
    let mut listeners = list("listeners");
    let mut clusters = list("clusters");
    for listener in list("listeners") {
        let mut copy = listener.clone();
        copy["name"] = json!(format!("{}-inline-routes", listener["name"].as_str().unwrap()));
        copy["bind_to_port"] = json!(false);
        // A distinct address: Envoy refuses two listeners on one address even when unbound.
        copy["address"]["socket_address"]["address"] = json!("127.0.0.2");
        inline_routes(&mut copy, &routes);
        listeners.push(copy);
    }
    for cluster in list("clusters") {
        let mut copy = cluster.clone();
        let name = format!("{}-static-secrets", cluster["name"].as_str().unwrap());
        copy["name"] = json!(name);
        copy["load_assignment"]["cluster_name"] = json!(name);
        remove_key(&mut copy, "sds_config");
        clusters.push(copy);
    }
    clusters.push(json!({
        "name": "xds_cluster",
        "type": "STATIC",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}
            }
        },
        "load_assignment": {"cluster_name": "xds_cluster", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 18000}}}}]}]}
    }));
    json!({
        "node": {"id": "golden-validation", "cluster": "golden-validation"},
        "dynamic_resources": {
            "ads_config": {"api_type": "GRPC", "transport_api_version": "V3", "grpc_services": [{"envoy_grpc": {"cluster_name": "xds_cluster"}}]}
        },
        "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": list("secrets")}
    })
}

/// Replaces every `rds` block with the route configuration it names.
fn inline_routes(value: &mut Value, routes: &[Value]) {
    match value {
        Value::Object(map) => {
            if let Some(rds) = map.remove("rds") {
                let name = rds["route_config_name"].as_str().unwrap();
                let route = routes
                    .iter()
                    .find(|r| r["name"] == name)
                    .unwrap_or_else(|| panic!("route config {name} is not served"));
                map.insert("route_config".into(), route.clone());
            }
            map.values_mut().for_each(|v| inline_routes(v, routes));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| inline_routes(v, routes)),
        _ => {}
    }
}

fn remove_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| remove_key(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove_key(v, key)),
        _ => {}
    }
}

#[test]
fn goldens_load_in_real_envoy() {
    let cases = cases();
    let dir = tempfile::tempdir().unwrap();
    let queue = Mutex::new(cases.iter());
    let failures = Mutex::new(Vec::new());
    // Two workers: one Envoy per core.
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some(case) = queue.lock().unwrap().next() else { break };
                let bootstrap = validation_bootstrap(&translate_case(case));
                let path = dir.path().join(format!("{}.json", case.file_name().unwrap().to_string_lossy()));
                std::fs::write(&path, serde_json::to_string_pretty(&bootstrap).unwrap()).unwrap();
                if let Err(err) = support::envoy_validate(&path) {
                    failures.lock().unwrap().push(format!("{}: Envoy rejected it:\n{err}", case.display()));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
