//! `deploy/` manifests agree with the code: RBAC grants exactly what `serve --kubernetes` reads,
//! the Deployment's arguments are flags `serve` accepts, and the Envoy bootstrap in the ConfigMap
//! is what `ambassador-xds bootstrap` prints for the addresses the Deployment uses. (No API server
//! can run here; this is checked statically, and the Kubernetes source itself is tested against an
//! in-process API server in tests/kubernetes.rs.)

mod support;

use ambassador_xds::cli::bootstrap::{bootstrap_yaml, BootstrapArgs};
use ambassador_xds::cli::{Cli, Command};
use clap::Parser;
use serde_yaml::Value;
use std::collections::BTreeSet;

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(support::manifest_dir().join("deploy").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value.as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn crds_define_the_kinds_the_source_watches() {
    let docs = documents("crds.yaml");
    let crds = find(&docs, "CustomResourceDefinition");
    let kinds: BTreeSet<String> =
        crds.iter().map(|c| c["spec"]["names"]["kind"].as_str().unwrap().to_string()).collect();
    let resolvers = ["ConsulResolver", "KubernetesEndpointResolver", "KubernetesServiceResolver"];
    let others =
        ["AuthService", "Host", "Listener", "Mapping", "Module", "RateLimitService", "TCPMapping", "TLSContext"];
    assert_eq!(kinds, set(&[&others[..], &resolvers].concat()));
    for crd in crds {
        assert_eq!(crd["spec"]["group"], "getambassador.io");
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap();
        assert_eq!(crd["metadata"]["name"].as_str().unwrap(), format!("{plural}.getambassador.io"));
        let versions: Vec<&str> =
            crd["spec"]["versions"].as_sequence().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert!(versions.contains(&"v3alpha1"), "{plural}: {versions:?}");
    }
}

#[test]
fn rbac_grants_exactly_read_access_to_what_is_watched() {
    let docs = documents("rbac.yaml");
    let role = find(&docs, "ClusterRole")[0];
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        assert_eq!(strings(&rule["verbs"]), set(&["get", "list", "watch"]), "read-only");
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.insert(format!("{group}/{resource}"));
            }
        }
    }
    let watched = set(&[
        "getambassador.io/mappings",
        "getambassador.io/tlscontexts",
        "getambassador.io/listeners",
        "getambassador.io/hosts",
        "getambassador.io/modules",
        "getambassador.io/tcpmappings",
        "getambassador.io/authservices",
        "getambassador.io/ratelimitservices",
        "getambassador.io/consulresolvers",
        "getambassador.io/kubernetesendpointresolvers",
        "getambassador.io/kubernetesserviceresolvers",
        "/services",
        "/secrets",
        "discovery.k8s.io/endpointslices",
    ]);
    assert_eq!(granted, watched);

    let account = find(&docs, "ServiceAccount")[0];
    let binding = find(&docs, "ClusterRoleBinding")[0];
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["namespace"], account["metadata"]["namespace"]);

    let deployment_docs = documents("deployment.yaml");
    let deployment = find(&deployment_docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(deployment["metadata"]["namespace"], account["metadata"]["namespace"]);
}

#[test]
fn deployment_runs_serve_with_flags_it_accepts_and_a_matching_envoy_bootstrap() {
    let docs = documents("deployment.yaml");
    let deployment = find(&docs, "Deployment")[0];
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_sequence().unwrap();
    let control_plane = containers.iter().find(|c| c["name"] == "control-plane").unwrap();
    let envoy = containers.iter().find(|c| c["name"] == "envoy").unwrap();

    let args: Vec<String> =
        control_plane["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let cli = Cli::try_parse_from(std::iter::once("ambassador-xds".to_string()).chain(args))
        .expect("serve accepts these flags");
    let Command::Serve(serve) = cli.command else { panic!("the control plane runs `serve`") };
    assert!(serve.kubernetes && serve.config_dir.is_none());
    assert!(serve.xds_address.ip().is_loopback(), "xDS (with private keys) stays inside the Pod");

    // Envoy's listener port is the one serve configures.
    let envoy_port = envoy["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(envoy_port, u64::from(serve.translation.listener_port));
    assert!(envoy["image"].as_str().unwrap().starts_with("envoyproxy/envoy:v1.40"));

    // The bootstrap points at serve's xDS address and is exactly what `bootstrap` prints.
    let config_map = find(&docs, "ConfigMap")[0];
    let bootstrap = config_map["data"]["bootstrap.yaml"].as_str().unwrap();
    let expected = bootstrap_yaml(&BootstrapArgs {
        xds_address: serve.xds_address.to_string(),
        node_id: "ambassador-xds-envoy".into(),
        admin_port: 9901,
        delta: false,
        max_regex_program_size: 100,
    })
    .unwrap();
    assert_eq!(bootstrap, expected);

    // The admin endpoint shows the whole configuration: loopback only, no port declared for it.
    assert!(serve.admin_address.ip().is_loopback(), "the admin endpoint stays inside the Pod");
    let ports = control_plane["ports"].as_sequence().unwrap();
    assert!(
        ports.iter().all(|p| p["containerPort"].as_u64() != Some(u64::from(serve.admin_address.port()))),
        "no container port exposes the admin endpoint"
    );
    // Probes hit the health address, which kubelet reaches on the Pod IP.
    let health = serve.health_address.expect("--health-address for the probes");
    assert!(!health.ip().is_loopback(), "kubelet probes reach the Pod IP");
    let health_port = ports.iter().find(|p| p["name"] == "health").unwrap()["containerPort"].as_u64().unwrap();
    assert_eq!(health_port, u64::from(health.port()));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(control_plane[probe]["httpGet"]["port"], "health", "{probe}");
    }
}

/// The environment variables clap reads for a subcommand's arguments.
fn env_names(subcommand: &str) -> BTreeSet<String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let sub = command.find_subcommand(subcommand).unwrap();
    sub.get_arguments().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into_owned()).collect()
}

#[test]
fn consul_connector_manifest_runs_what_the_cli_reads() {
    let docs = documents("consul-connect.yaml");
    let deployment = find(&docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<String> =
        container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let cli = Cli::try_parse_from(std::iter::once("ambassador-xds".to_string()).chain(args))
        .expect("consul-connect accepts these flags");
    let Command::ConsulConnect(connect) = cli.command else { panic!("the container runs `consul-connect`") };
    assert!(!connect.admin_address.ip().is_loopback(), "kubelet probes reach the Pod IP");
    let admin_port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(admin_port, u64::from(connect.admin_address.port()));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2, "a standby replica");

    // Every variable set is one the connector reads, the seed's names included.
    let known = env_names("consul-connect");
    let env = container["env"].as_sequence().unwrap();
    let names: BTreeSet<String> = env.iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    for name in &names {
        assert!(known.contains(name), "the connector does not read {name}");
    }
    for seed in ["_CONSUL_HOST", "_CONSUL_PORT", "_AMBASSADOR_ID", "_AMBASSADOR_TLS_SECRET_NAMESPACE"] {
        assert!(names.contains(seed), "{seed} is not set");
        assert!(known.contains(seed));
    }
    for documented in [
        "_AMBASSADOR_TLS_SECRET_NAME",
        "CONSUL_HTTP_TOKEN",
        "CONSUL_HTTP_SSL",
        "CONSUL_CACERT",
        "CONSUL_CLIENT_CERT",
        "CONSUL_CLIENT_KEY",
    ] {
        assert!(known.contains(documented), "{documented} is not read");
    }
    let field =
        |name: &str| env.iter().find(|e| e["name"] == name).unwrap()["valueFrom"]["fieldRef"]["fieldPath"].clone();
    assert_eq!(field("_CONSUL_HOST"), "status.hostIP", "the node's agent, as Emissary's manifest");
    assert_eq!(field("_AMBASSADOR_TLS_SECRET_NAMESPACE"), "metadata.namespace");
    assert_eq!(field("POD_NAME"), "metadata.name", "each replica has its own identity in the Lease");

    let account = find(&docs, "ServiceAccount")[0];
    let binding = find(&docs, "RoleBinding")[0];
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    assert_eq!(binding["roleRef"]["name"], find(&docs, "Role")[0]["metadata"]["name"]);
    assert!(find(&docs, "ClusterRole").is_empty(), "namespaced grants only");
}
