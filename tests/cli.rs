//! The command-line contract: output, exit codes and error messages of `translate` and `diff`.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
        .args(args)
        .current_dir(support::manifest_dir())
        .output()
        .expect("running ambassador-xds")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

const SEED: &str = "testdata/seed-002-upstream-mtls/input";
/// The cluster of Emissary's probe routes, which every configuration has.
const PROBE_CLUSTER: &str = "cluster_127_0_0_1_8877_default";

#[test]
fn translate_prints_cluster_with_sds_client_certificate() {
    let output = run(&["translate", SEED]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    // The seed's cluster, beside the one of Emissary's probe routes (cluster_127_0_0_1_8877_default).
    let cluster = json["clusters"].as_array().unwrap().iter().find(|c| c["name"] != PROBE_CLUSTER).unwrap();
    let tls = &cluster["transport_socket"]["typed_config"];
    assert_eq!(tls["@type"], "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    let secret_name = &tls["common_tls_context"]["tls_certificate_sds_secret_configs"][0]["name"];
    assert_eq!(secret_name, "tlscontext/default/upstream-context/client-cert");
    assert_eq!(json["secrets"][0]["name"], *secret_name);
    assert_eq!(json["secrets"][0]["tls_certificate"]["private_key"]["inline_string"], "[redacted]");
}

#[test]
fn private_keys_only_with_show_secrets() {
    let hidden = stdout(&run(&["translate", SEED]));
    assert!(!hidden.contains("PRIVATE KEY"));
    let shown = stdout(&run(&["translate", SEED, "--show-secrets"]));
    assert!(shown.contains("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn output_is_deterministic_and_independent_of_argument_order() {
    let a = "testdata/route-order/input/mappings.yaml";
    let b = "testdata/canary-weights/input/mappings.yaml";
    let first = stdout(&run(&["translate", a, b]));
    assert_eq!(first, stdout(&run(&["translate", a, b])));
    assert_eq!(first, stdout(&run(&["translate", b, a])));
}

#[test]
fn yaml_format_carries_the_same_resources() {
    let output = run(&["translate", SEED, "--format", "yaml"]);
    let yaml: serde_yaml::Value = serde_yaml::from_str(&stdout(&output)).unwrap();
    assert_eq!(yaml["clusters"][0]["name"], PROBE_CLUSTER);
    assert_eq!(yaml["clusters"][1]["name"], "cluster_upstream_service_otls_upstream_context_default");
}

#[test]
fn listener_port_flag_moves_the_default_listener() {
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["translate", SEED, "--listener-port", "9090"]))).unwrap();
    assert_eq!(json["listeners"][0]["address"]["socket_address"]["port_value"], 9090);
    assert_eq!(json["listeners"][0]["name"], "ambassador-listener-0.0.0.0-9090");
}

#[test]
fn diagnostics_go_to_stderr_and_output_still_compiles() {
    let output = run(&["translate", "testdata/diag-missing-context/input"]);
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("Mapping default/orphan: TLSContext `no-such-context` is not defined"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).contains("cluster_healthy_default"));
}

#[test]
fn missing_path_is_a_one_line_error() {
    let output = run(&["translate", "does/not/exist"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: does/not/exist: "), "{err}");
}

#[test]
fn diff_exit_codes() {
    let golden = "testdata/seed-002-upstream-mtls/expected.json";
    assert_eq!(run(&["diff", SEED, "--golden", golden]).status.code(), Some(0));
    let missing = run(&["diff", SEED, "--golden", "no-such-golden.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("--update"));
}

#[test]
fn diff_reports_each_changed_resource_and_update_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let golden = dir.path().join("golden.json");
    let original =
        std::fs::read_to_string(support::manifest_dir().join("testdata/seed-002-upstream-mtls/expected.json")).unwrap();
    std::fs::write(&golden, original.replace("\"/upstream/\"", "\"/old-prefix/\"")).unwrap();
    let golden_arg = golden.to_str().unwrap();

    let output = run(&["diff", SEED, "--golden", golden_arg]);
    assert_eq!(output.status.code(), Some(1));
    let diff = stdout(&output);
    assert!(diff.contains("--- golden routes/ambassador-routes"), "{diff}");
    let changed =
        |sign: char, text: &str| diff.lines().any(|l| l.starts_with(sign) && l.trim_start_matches(sign).trim() == text);
    assert!(changed('-', "\"prefix\": \"/old-prefix/\""), "{diff}");
    assert!(changed('+', "\"prefix\": \"/upstream/\""), "{diff}");
    assert!(!diff.contains("clusters/"), "unchanged resources are not shown: {diff}");
    assert!(stderr(&output).contains("1 changed, 0 added, 0 removed"));

    assert_eq!(run(&["diff", SEED, "--golden", golden_arg, "--update"]).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&golden).unwrap(), original);
    assert_eq!(run(&["diff", SEED, "--golden", golden_arg]).status.code(), Some(0));
}

#[test]
fn diff_rejects_goldens_with_unknown_envoy_fields() {
    let dir = tempfile::tempdir().unwrap();
    let golden = dir.path().join("golden.json");
    std::fs::write(&golden, r#"{"clusters": [{"name": "x", "conect_timeout": "1s"}]}"#).unwrap();
    let output = run(&["diff", SEED, "--golden", golden.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("conect_timeout"), "{}", stderr(&output));
}

#[test]
fn files_root_maps_absolute_certificate_paths() {
    let case = Path::new("testdata/seed-004-istio");
    let without = run(&["translate", case.join("input").to_str().unwrap()]);
    assert!(
        stderr(&without).contains("cannot read cert_chain_file `/etc/istiocerts/cert-chain.pem`"),
        "{}",
        stderr(&without)
    );
    let with =
        run(&["translate", case.join("input").to_str().unwrap(), "--files-root", case.join("files").to_str().unwrap()]);
    assert!(stderr(&with).is_empty(), "{}", stderr(&with));
    assert!(stdout(&with).contains("tlscontext/default/istio-upstream/ca"));
}

#[test]
fn help_names_every_command() {
    let help = stdout(&run(&["--help"]));
    for command in ["translate", "diff"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn headers_with_underscores_policy_reaches_the_listener() {
    let hcm = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["translate", SEED];
        all.extend_from_slice(args);
        let json: serde_json::Value = serde_json::from_str(&stdout(&run(&all))).unwrap();
        json["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"].clone()
    };
    assert_eq!(hcm(&[])["common_http_protocol_options"], serde_json::Value::Null, "Emissary's default: allowed");
    for (flag, action) in [("reject", "REJECT_REQUEST"), ("drop", "DROP_HEADER")] {
        let config = hcm(&["--headers-with-underscores", flag]);
        assert_eq!(config["common_http_protocol_options"]["headers_with_underscores_action"], action, "{config}");
    }
    let config = hcm(&[]);
    for field in ["normalize_path", "merge_slashes", "use_remote_address", "strip_any_host_port"] {
        assert_eq!(config[field], true, "{field}: {config}");
    }
}
