//! Consul: `ambassador-xds consul-connect` against a fake Consul agent (`support/consul.rs`:
//! blocking queries, real certificates with SPIFFE IDs, ACLs, outages) and the in-process
//! Kubernetes API server, which it writes through (server-side apply, a Lease); and
//! `serve --consul-address` with a ConsulResolver and a real Envoy, whose upstreams stand in for
//! Connect sidecars.
//!
//! The Envoy tests need Envoy: `$ENVOY_BIN`, the project's `.venv` (`scripts/test`), or `envoy` on `PATH`.

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)]
mod harness;

#[path = "support/kubernetes/mod.rs"]
#[allow(dead_code)]
mod k8s;

#[path = "support/consul.rs"]
#[allow(dead_code)]
mod consul;

#[path = "support/connector.rs"]
#[allow(dead_code)]
mod connector;

use base64::Engine as _;
use connector::{Connector, NAMESPACE, SECRET};
use consul::{FakeConsul, Mode, TRUST_DOMAIN};
use k8s::api::FakeKube;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CONSUL_TOKEN: &str = "b1gs3cr3t-acl-token";
const FIELD_MANAGER: &str = "ambassador-xds-consul-connect";
const WAIT: Duration = Duration::from_secs(20);

/// The Secret's keys, decoded; `None` while it does not exist.
fn secret_data(api: &FakeKube) -> Option<BTreeMap<String, String>> {
    let secret = api.get("Secret", NAMESPACE, SECRET)?;
    let data = secret["data"].as_object()?;
    Some(
        data.iter()
            .map(|(key, value)| {
                let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap()).unwrap();
                (key.clone(), String::from_utf8(bytes).unwrap())
            })
            .collect(),
    )
}

/// What the Secret must hold for Consul's current leaf and roots.
fn expected(consul: &FakeConsul) -> BTreeMap<String, String> {
    let leaf = consul.leaf("ambassador");
    let line = |pem: &str| format!("{}\n", pem.trim());
    let mut roots = consul.root_pems();
    // By root ID: the fake's IDs sort in creation order.
    roots.sort_by_key(|_| 0);
    BTreeMap::from([
        ("tls.crt".to_string(), line(&leaf.cert_pem) + &line(&consul.active_root_pem())),
        ("tls.key".to_string(), line(&leaf.key_pem)),
        ("ca.crt".to_string(), roots.iter().map(|r| line(r)).collect()),
    ])
}

fn await_secret(connector: &Connector, api: &FakeKube, consul: &FakeConsul, what: &str) {
    connector.eventually(what, WAIT, || match secret_data(api) {
        Some(data) if data == expected(consul) => Ok(()),
        Some(data) => Err(format!("the Secret holds other certificates ({} keys)", data.len())),
        None => Err("no Secret yet".into()),
    });
}

fn await_ready(connector: &Connector, status: u16, contains: &str) -> String {
    connector.eventually(&format!("/readyz {status} with {contains:?}"), WAIT, || match connector.readyz() {
        (seen, body) if seen == status && body.contains(contains) => Ok(body),
        (seen, body) => Err(format!("{seen} {body}")),
    })
}

fn lease_holder(api: &FakeKube) -> Option<String> {
    api.get("Lease", NAMESPACE, SECRET)?["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

fn secret_writes(api: &FakeKube) -> usize {
    api.writes().iter().filter(|w| w.kind == "Secret" && w.name == SECRET).count()
}

#[test]
fn the_connector_stores_the_certificate_and_keeps_it_through_consul_failures() {
    let api = FakeKube::start();
    let consul = FakeConsul::start();
    consul.require_token(Some(CONSUL_TOKEN));
    let connector = Connector::start("replica-a", &api, consul.port(), 15, &[("CONSUL_HTTP_TOKEN", CONSUL_TOKEN)]);

    await_secret(
        &connector,
        &api,
        &consul,
        "the Secret holds Consul's leaf, then the active root, its key and the roots",
    );
    let stored = api.get("Secret", NAMESPACE, SECRET).unwrap();
    assert_eq!(stored["type"], "kubernetes.io/tls");
    let managers: Vec<(&str, &str)> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["manager"].as_str().unwrap(), m["operation"].as_str().unwrap()))
        .collect();
    assert_eq!(managers, [(FIELD_MANAGER, "Apply")], "written by server-side apply with its own field manager");
    assert!(api
        .writes()
        .iter()
        .any(|w| w.method == "PATCH" && w.kind == "Secret" && w.manager.as_deref() == Some(FIELD_MANAGER)));

    let context = connector.eventually("the TLSContext is created", WAIT, || {
        api.get("TLSContext", NAMESPACE, "ambassador-consul").ok_or_else(|| "not yet".to_string())
    });
    assert_eq!(context["spec"], serde_json::json!({"hosts": [], "secret": SECRET}));
    assert_eq!(lease_holder(&api).as_deref(), Some("replica-a"));
    await_ready(&connector, 200, "leader");
    assert_eq!(connector.metric("ambassador_xds_consul_connect_leader"), Some(1.0));

    // Rotation of the leaf, then of the CA.
    std::thread::sleep(Duration::from_millis(300)); // the queries are blocked meanwhile
    consul.rotate_leaf("ambassador");
    await_secret(&connector, &api, &consul, "the rotated leaf is written");

    // The ACL token is sent; the leaf is Ambassador's; the queries block (a request logged
    // once answered: the one the rotation released waited for it with the previous index).
    let requests = consul.requests();
    assert!(requests.iter().all(|r| r.token.as_deref() == Some(CONSUL_TOKEN)), "every request carries the token");
    let leaf_queries: Vec<&consul::Request> =
        requests.iter().filter(|r| r.path == "/v1/agent/connect/ca/leaf/ambassador").collect();
    assert!(!leaf_queries[0].query.contains_key("index"), "the first query does not block");
    assert!(
        leaf_queries.iter().any(|r| r.query.contains_key("index")
            && r.query["wait"] == "5000ms"
            && r.held >= Duration::from_millis(250)),
        "later ones block: {leaf_queries:?}"
    );
    consul.rotate_root();
    await_secret(&connector, &api, &consul, "after a CA rotation: the new leaf and root, both roots trusted");
    assert_eq!(secret_data(&api).unwrap()["ca.crt"].matches("BEGIN CERTIFICATE").count(), 2);

    // Consul failing in every way: the Secret stays, the state shows.
    for (mode, state) in [(Mode::Down, "unreachable"), (Mode::Failing(500), "server_error")] {
        let before = secret_data(&api);
        let writes = secret_writes(&api);
        consul.set_mode(mode);
        await_ready(&connector, 503, state);
        assert_eq!(connector.metric(&format!("ambassador_xds_consul_connect_problem{{state=\"{state}\"}}")), Some(1.0));
        std::thread::sleep(Duration::from_millis(1500)); // several retries
        assert_eq!(secret_data(&api), before, "{state}: the last written Secret stays");
        assert_eq!(secret_writes(&api), writes, "{state}: nothing is written");
        consul.set_mode(Mode::Up);
        connector.eventually("ready again", WAIT, || match connector.readyz() {
            (200, _) => Ok(()),
            (seen, body) => Err(format!("{seen} {body}; {}", consul.describe())),
        });
        let started = connector.metric(&format!("ambassador_xds_consul_connect_problems_total{{state=\"{state}\"}}"));
        assert_eq!(started, Some(1.0), "{state} started once, however many retries failed");
    }
    consul.require_token(Some("another-token"));
    await_ready(&connector, 503, "acl_denied");
    consul.require_token(Some(CONSUL_TOKEN));
    await_ready(&connector, 200, "leader");
    consul.corrupt_leaves(true);
    await_ready(&connector, 503, "invalid_certificate");
    assert_eq!(secret_data(&api).unwrap(), expected(&consul), "a leaf that does not parse is not written");
    consul.corrupt_leaves(false);
    await_ready(&connector, 200, "leader");

    // The index going backwards (a snapshot restore) resets the queries.
    consul.reset_indexes();
    consul.rotate_leaf("ambassador");
    await_secret(&connector, &api, &consul, "a leaf rotated after an index reset");

    assert_rbac_allows_every_request(&api);
    let log = connector.log();
    let unreachable = log.lines().filter(|l| l.contains("WARN") && l.contains("unreachable")).count();
    assert!((1..=3).contains(&unreachable), "the outage is logged once per query state change: {unreachable} lines");
    for secret in ["PRIVATE KEY", CONSUL_TOKEN, &consul.leaf("ambassador").key_pem[40..80]] {
        assert!(!log.contains(secret), "the log holds key material or the token");
    }
}

/// Every request the connector made to the API is allowed by the Role of
/// `deploy/consul-connect.yaml` (discovery, which every authenticated client may read, aside).
fn assert_rbac_allows_every_request(api: &FakeKube) {
    let manifest = std::fs::read_to_string(support::manifest_dir().join("deploy/consul-connect.yaml")).unwrap();
    let role = serde_yaml::Deserializer::from_str(&manifest)
        .map(|d| <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["kind"] == "Role")
        .expect("a Role");
    let strings = |v: &serde_yaml::Value| -> Vec<String> {
        v.as_sequence().into_iter().flatten().map(|s| s.as_str().unwrap().to_string()).collect()
    };
    for request in api.requests() {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        let (group, rest) = match segments.as_slice() {
            ["api", "v1", rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => continue, // discovery
        };
        let (resource, name) = match rest {
            ["namespaces", namespace, resource, name] => {
                assert_eq!(*namespace, NAMESPACE, "{request}");
                (*resource, Some(*name))
            }
            ["namespaces", namespace, resource] => {
                assert_eq!(*namespace, NAMESPACE, "{request}");
                (*resource, None)
            }
            [] => continue, // discovery of a group version
            other => panic!("the connector reached outside its namespace: {request} ({other:?})"),
        };
        let verb = match request.method.as_str() {
            "GET" if name.is_some() => "get",
            "GET" => "list",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            other => panic!("unexpected {other}: {request}"),
        };
        let allowed = role["rules"].as_sequence().unwrap().iter().any(|rule| {
            let names = strings(&rule["resourceNames"]);
            strings(&rule["apiGroups"]).iter().any(|g| g == group)
                && strings(&rule["resources"]).iter().any(|r| r == resource)
                && strings(&rule["verbs"]).iter().any(|v| v == verb)
                && (names.is_empty() || name.is_some_and(|n| names.iter().any(|allowed| allowed == n)))
        });
        assert!(allowed, "deploy/consul-connect.yaml does not allow {verb} on {group}/{resource} {name:?} ({request})");
    }
}

#[test]
fn one_replica_writes_and_another_takes_over_within_the_lease_time() {
    let api = FakeKube::start();
    let consul = FakeConsul::start();
    let lease = Duration::from_secs(2);
    let mut a = Connector::start("replica-a", &api, consul.port(), lease.as_secs(), &[]);
    await_secret(&a, &api, &consul, "the first replica writes");
    assert_eq!(lease_holder(&api).as_deref(), Some("replica-a"));
    let mut b = Connector::start("replica-b", &api, consul.port(), lease.as_secs(), &[]);
    await_ready(&b, 200, "standby");

    let writes = secret_writes(&api);
    consul.rotate_leaf("ambassador");
    await_secret(&a, &api, &consul, "the leader writes the rotated leaf");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(secret_writes(&api), writes + 1, "one write per change: the standby writes nothing");

    // The leader dies without a word: the standby takes over once the lease runs out.
    a.kill();
    let died = Instant::now();
    b.eventually("replica-b holds the lease", lease * 3, || match lease_holder(&api) {
        Some(holder) if holder == "replica-b" => Ok(()),
        other => Err(format!("held by {other:?}")),
    });
    let takeover = died.elapsed();
    assert!(takeover <= lease + Duration::from_millis(1500), "took over after {takeover:?} (lease {lease:?})");
    consul.rotate_leaf("ambassador");
    await_secret(&b, &api, &consul, "the new leader writes");
    await_ready(&b, 200, "leader");
    eprintln!("takeover after a crash: {takeover:?} (lease {lease:?})");

    // A replica that stops cleanly releases the lease: the other takes over at once.
    let a2 = Connector::start("replica-a", &api, consul.port(), lease.as_secs(), &[]);
    await_ready(&a2, 200, "standby");
    let stopped = Instant::now();
    assert!(b.terminate(Duration::from_secs(5)), "SIGTERM stops the connector");
    a2.eventually("replica-a takes the released lease", lease * 3, || match lease_holder(&api) {
        Some(holder) if holder == "replica-a" => Ok(()),
        other => Err(format!("held by {other:?}")),
    });
    let handover = stopped.elapsed();
    assert!(handover < lease, "a released lease is taken within one renewal ({handover:?})");
    eprintln!("handover after SIGTERM: {handover:?}");
    let _ = TRUST_DOMAIN;
}

// ---- serve --consul-address, a ConsulResolver and a real Envoy ----

use harness::http::{failures, RequestLoop};
use harness::stack::{Mode as AdsMode, Stack};
use harness::upstream::Upstream;

macro_rules! in_both_modes {
    ($($scenario:ident),* $(,)?) => {
        mod sotw {
            $( #[test] fn $scenario() { super::$scenario(super::AdsMode::Sotw) } )*
        }
        mod delta {
            $( #[test] fn $scenario() { super::$scenario(super::AdsMode::Delta) } )*
        }
    };
}

in_both_modes!(mesh_traffic_follows_consul_certificates_health_and_identities);

/// The seed's Consul context, one that also trusts the Consul roots, a ConsulResolver for the
/// fake agent, and a Mapping to the Connect service `qotm` whose identity is verified.
fn mesh_config(consul: &FakeConsul) -> String {
    format!(
        r#"---
apiVersion: getambassador.io/v2
kind: TLSContext
metadata:
  name: ambassador-consul-verified
spec:
  hosts: []
  secret: ambassador-consul-connect
  ca_secret: ambassador-consul-connect
---
apiVersion: getambassador.io/v3alpha1
kind: ConsulResolver
metadata:
  name: consul-dc1
spec:
  address: {}
  datacenter: dc1
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: qotm
spec:
  prefix: /qotm/
  service: qotm
  resolver: consul-dc1
  tls: ambassador-consul-verified
  verify_spiffe_id: true
  load_balancer:
    policy: round_robin
"#,
        consul.address()
    )
}

/// A stand-in for a Connect sidecar of `service`: it presents `service`'s SPIFFE identity (or
/// `identity`'s) and accepts only clients with a certificate from the Consul CA.
fn sidecar(consul: &FakeConsul, name: &'static str, identity: &str) -> Upstream {
    let (cert, key) = consul.issue(identity);
    Upstream::start_pem(name, &cert, &key, &consul.root_pems())
}

fn upstream_of(response: &harness::http::Response) -> Result<String, String> {
    let json = response.json()?;
    json["upstream"].as_str().map(str::to_owned).ok_or_else(|| response.summary())
}

fn mesh_traffic_follows_consul_certificates_health_and_identities(mode: AdsMode) {
    let consul = FakeConsul::start();
    let (one, two) = (sidecar(&consul, "qotm-1", "qotm"), sidecar(&consul, "qotm-2", "qotm"));
    consul.register_proxy("qotm", "qotm-1", "127.0.0.1", one.port());
    consul.register_proxy("qotm", "qotm-2", "", two.port()); // no address: the node's
    let mut stack = Stack::prepare(mode, "consul-mesh");
    stack.observe(&one);
    stack.observe(&two);
    stack.write_config("mesh.yaml", &mesh_config(&consul));
    stack.serve_arg("--consul-address");
    stack.serve_arg(&consul.address());
    stack.start();

    // Envoy presents the leaf Consul issued to `ambassador` and reaches both instances.
    let own_id = format!("spiffe://{TRUST_DOMAIN}/ns/default/dc/dc1/svc/ambassador");
    let response = stack.await_status("/qotm/", 200);
    assert_eq!(response.json().unwrap()["client_uri"], own_id.as_str(), "{}", response.summary());
    let reached: std::collections::BTreeSet<String> =
        (0..20).map(|_| upstream_of(&stack.get("/qotm/")).unwrap()).collect();
    assert_eq!(reached.into_iter().collect::<Vec<_>>(), ["qotm-1", "qotm-2"], "round robin over both");

    // A rotated leaf is used by the next requests, and no request fails meanwhile.
    let cds_updates = stack.envoy_stat("cluster_manager.cds.update_success");
    let requests = RequestLoop::start(stack.listener(), "/qotm/", Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(300));
    consul.rotate_leaf("ambassador");
    let serial = consul.leaf("ambassador").serial;
    stack.eventually("Envoy presents the rotated leaf", || {
        let seen = stack.get("/qotm/").json()?["client_serial"].as_str().unwrap_or_default().to_owned();
        if seen == serial {
            Ok(())
        } else {
            Err(format!("serial {seen}, want {serial}"))
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let samples = requests.stop();
    if let Some(failed) = failures(&samples, 5) {
        stack.fail(&format!("during the leaf rotation: {failed}"));
    }
    assert!(samples.len() > 20, "{} requests", samples.len());
    assert_eq!(stack.envoy_stat("cluster_manager.cds.update_success"), cds_updates, "a rotation changes no cluster");

    // An instance whose checks turn critical stops getting traffic.
    consul.set_passing("qotm", "qotm-2", false);
    stack.eventually("only qotm-1 is used", || {
        let seen: Vec<String> = (0..10).map(|_| upstream_of(&stack.get("/qotm/"))).collect::<Result<_, _>>()?;
        if seen.iter().all(|u| u == "qotm-1") {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    // An upstream presenting another service's identity is refused: the route answers 503.
    let impostor = sidecar(&consul, "impostor", "web");
    stack.observe(&impostor);
    consul.register_proxy("qotm", "impostor", "127.0.0.1", impostor.port());
    consul.set_passing("qotm", "qotm-1", false);
    let refused = stack.await_status("/qotm/", 503);
    assert!(impostor.requests().is_empty(), "no request reached the impostor: {}", refused.summary());
    // Envoy's stats name the cluster by its `alt_stat_name`: the service, as in Emissary.
    let san = stack.envoy_stats("ssl\\.fail_verify_san$");
    let qotm: u64 = san.iter().filter(|(name, _)| name.starts_with("cluster.qotm.")).map(|(_, n)| n).sum();
    assert!(qotm > 0, "Envoy counted the SAN mismatch: {san:?}");
    consul.set_passing("qotm", "qotm-1", true);
    consul.deregister("qotm", "impostor");
    stack.await_status("/qotm/", 200);
    stack.finish();
}
