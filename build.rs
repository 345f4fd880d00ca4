//! Compiles the Envoy `.proto` files that ship inside the `envoy-types` crate (plus this project's
//! own `proto/`) into one file-descriptor set. The render module loads it into a `prost-reflect`
//! pool to print canonical proto3 JSON without protoc and without copying third-party protos here.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files whose messages we render or parse; their imports come along transitively. Kept to the
/// served resource types: every extra file costs memory and start-up time in every process.
const ENVOY_FILES: &[&str] = &[
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/http/custom_response/v3/custom_response.proto",
    "envoy/extensions/http/custom_response/local_response_policy/v3/local_response_policy.proto",
    "envoy/type/matcher/v3/status_code_input.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/transport_sockets/tls/v3/secret.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
];
const OWN_FILES: &[&str] = &["ambassador_xds/v1/snapshot.proto"];
/// Include roots inside envoy-types' `proto/` folder.
const INCLUDE_ROOTS: &[&str] = &[
    "data-plane-api",
    "xds",
    "googleapis",
    "protoc-gen-validate",
    "cel-spec/proto",
    "opentelemetry-proto",
    "client_model",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");

    let envoy_proto = envoy_types_proto_dir();
    let mut includes: Vec<PathBuf> = vec![PathBuf::from("proto")];
    includes.extend(INCLUDE_ROOTS.iter().map(|root| envoy_proto.join(root)));

    let files: Vec<&str> = ENVOY_FILES.iter().chain(OWN_FILES).copied().collect();
    let mut compiler = protox::Compiler::new(&includes)
        .unwrap_or_else(|err| panic!("Envoy protos under {}: {err:?}", envoy_proto.display()));
    // Comments and spans are most of the set's size and nothing at run time reads them; leaving
    // them out makes the pool several times faster to load at process start.
    compiler.include_imports(true).include_source_info(false);
    compiler
        .open_files(&files)
        .unwrap_or_else(|err| panic!("compiling Envoy protos from {}: {err:?}", envoy_proto.display()));
    // Encoded by protox itself: going through `prost_types` would drop the custom options
    // (`validate.rules`) that the validation reads.
    let descriptors = compiler.encode_file_descriptor_set();

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("envoy_descriptors.bin");
    std::fs::write(&out, descriptors).expect("writing descriptor set");
}

/// Finds `<envoy-types package>/proto` through `cargo metadata`, so it works with any registry
/// location and with vendored sources.
fn envoy_types_proto_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(&manifest_dir)
        .output()
        .expect("running cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let package = metadata["packages"]
        .as_array()
        .and_then(|packages| packages.iter().find(|p| p["name"] == "envoy-types"))
        .expect("envoy-types in cargo metadata");
    let manifest = Path::new(package["manifest_path"].as_str().expect("manifest_path"));
    let dir = manifest.parent().unwrap().join("proto");
    assert!(dir.is_dir(), "envoy-types ships no proto/ at {}", dir.display());
    dir
}
