//! `ambassador-xds serve --kubernetes` against an in-process fake Kubernetes API server that speaks
//! the real discovery/list/watch protocol (`support/kubernetes/api.rs`): the real binary, its
//! kube-rs watchers and its admin endpoint (`/readyz`, `/snapshot`), and once with a real Envoy
//! and an mTLS upstream.
//!
//! What the fake does to serve: pages lists, cuts watches mid-line, ends them cleanly, stalls them,
//! expires resourceVersions (410 Gone as a watch `ERROR` event), answers 503 to everything or to
//! one collection, drops connections (server down), serves getambassador.io in v2, v3alpha1, both,
//! or not at all.
//!
//! The Envoy test needs Envoy: `$ENVOY_BIN`, the project's `.venv` (`scripts/test`), or `envoy` on `PATH`.

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)]
mod harness;

#[path = "support/kubernetes/mod.rs"]
#[allow(dead_code)]
mod k8s;

use base64::Engine as _;
use harness::http::{failures, RequestLoop};
use harness::upstream::{ClientAuth, ServerCert, Upstream};
use k8s::api::{FakeKube, Logged, TOKEN};
use k8s::serve::{read_cert, Serve, Snapshot, CHANGE, READY, RECOVERY};
use std::time::{Duration, Instant};

const V2: &str = "getambassador.io/v2";
const V3: &str = "getambassador.io/v3alpha1";

const MAPPINGS: &str = "/apis/getambassador.io/v3alpha1/mappings";
const TLSCONTEXTS: &str = "/apis/getambassador.io/v3alpha1/tlscontexts";
const LISTENERS: &str = "/apis/getambassador.io/v3alpha1/listeners";
const SECRETS: &str = "/api/v1/secrets";
const SERVICES: &str = "/api/v1/services";

const CLIENT_CN: &str = "envoy-client";
const ROTATED_CN: &str = "envoy-client-rotated";
/// The SDS secret of TLSContext default/upstream-context.
const SEED_SECRET: &str = "tlscontext/default/upstream-context/client-cert";
const SEED_CLUSTER: &str = "cluster_upstream_service_otls_upstream_context_default";
/// In an Opaque Secret nobody references: must never show in serve's log.
const CANARY: &str = "canary-7f3a9-do-not-log";

// ---- the objects users apply ----

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A `kubernetes.io/tls` Secret holding `testdata/certs/<cert>.crt` and `.key`.
fn tls_secret(namespace: &str, name: &str, cert: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&read_cert(&format!("{cert}.crt"))),
        b64(&read_cert(&format!("{cert}.key"))),
    )
}

/// An Opaque Secret written with `stringData` (the server stores it base64 under `data`).
fn opaque_secret(namespace: &str, name: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: Opaque\nstringData:\n  token: {token}\n"
    )
}

/// An origination context: no hosts, the client certificate from `secret`. `extra`: more spec lines.
fn tls_context(api_version: &str, namespace: &str, name: &str, secret: &str, extra: &str) -> String {
    format!(
        "apiVersion: {api_version}\nkind: TLSContext\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  hosts: []\n  secret: {secret}\n{extra}"
    )
}

/// A Mapping; `extra`: more spec lines (`  tls: ctx\n`, `  ambassador_id: [x]\n`).
fn mapping(api_version: &str, namespace: &str, name: &str, prefix: &str, service: &str, extra: &str) -> String {
    format!(
        "apiVersion: {api_version}\nkind: Mapping\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  prefix: {prefix}\n  service: {service}\n{extra}"
    )
}

/// A Service whose `getambassador.io/config` annotation holds one flat-form Mapping `<name>_mapping`.
fn annotated_service(namespace: &str, name: &str, prefix: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  annotations:\n    getambassador.io/config: |\n      ---\n      apiVersion: getambassador.io/v2\n      kind: Mapping\n      name: {name}_mapping\n      prefix: {prefix}\n      service: {name}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80, targetPort: 5000}}]\n"
    )
}

fn listener(name: &str, port: u16) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata:\n  name: {name}\n  namespace: default\nspec: {{port: {port}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n"
    )
}

/// Secret, TLSContext and a Mapping using them (the seed example), all in `default`.
fn apply_seed(api: &FakeKube, api_version: &str, service: &str) {
    api.apply(&tls_secret("default", "upstream-certs", "client"));
    api.apply(&tls_context(api_version, "default", "upstream-context", "upstream-certs", ""));
    api.apply(&mapping(api_version, "default", "upstream-mapping", "/upstream/", service, "  tls: upstream-context\n"));
}

// ---- checks ----

/// Every route that routes to a cluster names one the snapshot has.
fn assert_routes_have_clusters(serve: &Serve, snapshot: &Snapshot) {
    let clusters = snapshot.names("clusters");
    for route in snapshot.routes() {
        if let Some(cluster) = route["route"]["cluster"].as_str() {
            if !clusters.iter().any(|name| name == cluster) {
                serve.fail(&format!("route {} names cluster {cluster}, not in {clusters:?}", route["name"]));
            }
        }
    }
}

fn has_route(snapshot: &Snapshot, name: &str) -> bool {
    snapshot.route(name).is_some()
}

/// Requests of `path` (a collection) that listed it (not watches).
fn lists_of<'a>(requests: &'a [Logged], path: &str) -> Vec<&'a Logged> {
    requests.iter().filter(|request| request.is_list_of(path)).collect()
}

fn watches_of<'a>(requests: &'a [Logged], path: &str) -> Vec<&'a Logged> {
    requests.iter().filter(|request| request.is_watch_of(path)).collect()
}

fn describe(requests: &[&Logged]) -> String {
    requests.iter().map(|request| format!("\n  {request}")).collect()
}

/// Neither private keys, nor Secret data, nor the canary appear in serve's log.
fn assert_no_secret_data_logged(serve: &Serve) {
    let log = serve.log();
    let mut needles: Vec<(String, String)> = vec![
        ("PRIVATE KEY".into(), "a PEM private key marker".into()),
        (CANARY.into(), "the Opaque Secret's value".into()),
        (b64(CANARY.as_bytes()), "the Opaque Secret's value, base64".into()),
    ];
    for key in ["client.key", "client2.key"] {
        let pem = read_cert(key);
        needles.push((b64(&pem), format!("{key} as Secret data")));
        for line in String::from_utf8_lossy(&pem).lines().filter(|line| !line.starts_with("-----") && line.len() > 20) {
            needles.push((line.to_owned(), format!("a line of {key}")));
        }
    }
    for (needle, what) in needles {
        if log.contains(&needle) {
            serve.fail(&format!("serve logged {what}"));
        }
    }
}

// ---- 1. list, then follow ----

/// The first list (paged through `continue` tokens) is complete when `/readyz` turns 200: Mappings,
/// TLSContexts (stored as v2, served as v3alpha1), Secrets and Service annotations from every
/// namespace. Then each kind of change arrives: a Mapping modified, added, deleted; the Secret
/// rotated (only the SDS secret changes, clusters stay byte-identical); a Service annotation
/// changed and the Service deleted; a Listener added; the TLSContext deleted (the route fails
/// closed). Requests: v3alpha1 (both versions are served), kubeconfig's token, list with
/// `limit=500`, watch from the list's resourceVersion with bookmarks.
#[test]
fn lists_then_follows_additions_modifications_and_deletions() {
    let api = FakeKube::start();
    api.set_max_page(Some(2));
    apply_seed(&api, V3, "upstream-service");
    // Stored as v2: the cluster serves it as v3alpha1 too.
    api.apply(&tls_context(V2, "default", "upstream-context", "upstream-certs", ""));
    api.apply(&opaque_secret("default", "unrelated", CANARY));
    api.apply(&mapping(V3, "default", "plain", "/plain/", "plain", ""));
    api.apply(&mapping(V2, "other", "elsewhere", "/elsewhere/", "elsewhere", ""));
    api.apply(&annotated_service("quotes", "qotm", "/qotm/"));
    let listed_at = api.resource_version();

    let mut serve = Serve::new("follow", &api);
    serve.start();

    // Ready means the first sync is in the snapshot: no polling here.
    let snapshot = serve.snapshot();
    for route in ["default/upstream-mapping", "default/plain", "other/elsewhere", "quotes/qotm_mapping"] {
        if !has_route(&snapshot, route) {
            serve.fail(&format!("/readyz is 200 but route {route} is not in /snapshot: {}", snapshot.summary()));
        }
    }
    if snapshot.cluster(SEED_CLUSTER).is_none() {
        serve.fail(&format!("no cluster {SEED_CLUSTER}: {}", snapshot.summary()));
    }
    assert_eq!(snapshot.secret_cn(SEED_SECRET), Ok(CLIENT_CN.to_owned()), "{}", snapshot.summary());
    assert_routes_have_clusters(&serve, &snapshot);
    let text = serve.snapshot_text();
    assert!(!text.contains("PRIVATE KEY"), "/snapshot shows a private key");
    assert!(!text.contains(CANARY), "/snapshot shows the data of an unreferenced Secret");

    // How serve talked to the API.
    let requests = api.requests();
    for path in [MAPPINGS, TLSCONTEXTS, LISTENERS, SECRETS, SERVICES] {
        let lists = lists_of(&requests, path);
        let watches = watches_of(&requests, path);
        if lists.is_empty() || watches.is_empty() {
            serve.fail(&format!("{path} was not listed and watched:{}", describe(&lists)));
        }
        if lists[0].param("limit") != Some("500") {
            serve.fail(&format!("the first list of {path} has no limit=500: {}", lists[0]));
        }
        if watches[0].param("allowWatchBookmarks") != Some("true") {
            serve.fail(&format!("the watch of {path} does not ask for bookmarks: {}", watches[0]));
        }
    }
    let mapping_watches = watches_of(&requests, MAPPINGS);
    assert_eq!(
        mapping_watches[0].param("resourceVersion"),
        Some(listed_at.to_string().as_str()),
        "the first watch must start at the list's resourceVersion: {}",
        mapping_watches[0]
    );
    let pages: Vec<&Logged> =
        lists_of(&requests, MAPPINGS).into_iter().filter(|r| r.param("continue").is_some()).collect();
    assert!(!pages.is_empty(), "3 Mappings at 2 per page: a continue page was never asked for");
    let v2_collections: Vec<&Logged> = requests
        .iter()
        .filter(|r| r.collection().is_some() && r.path.starts_with("/apis/getambassador.io/v2/"))
        .collect();
    assert!(v2_collections.is_empty(), "both versions are served, v3alpha1 must be used:{}", describe(&v2_collections));
    let unauthenticated: Vec<&Logged> =
        requests.iter().filter(|r| r.authorization.as_deref() != Some(&format!("Bearer {TOKEN}"))).collect();
    assert!(unauthenticated.is_empty(), "requests without the kubeconfig's token:{}", describe(&unauthenticated));

    // A Mapping modified, one added, one deleted.
    serve.mark("modify, add, delete Mappings");
    api.apply(&mapping(V3, "default", "upstream-mapping", "/moved/", "upstream-service", "  tls: upstream-context\n"));
    serve.await_route_prefix("default/upstream-mapping", "/moved/");
    api.apply(&mapping(V3, "default", "added", "/added/", "added", ""));
    serve.await_route("default/added");
    api.delete("Mapping", "default", "plain");
    serve.await_no_route("default/plain");
    let snapshot = serve.snapshot();
    assert!(
        snapshot.cluster("cluster_plain_default").is_none(),
        "the deleted Mapping's cluster stayed: {}",
        snapshot.summary()
    );
    assert_routes_have_clusters(&serve, &snapshot);

    // The Secret rotated: the SDS secret changes, the clusters do not.
    serve.mark("rotate the Secret");
    let before = serve.snapshot();
    api.apply(&tls_secret("default", "upstream-certs", "client2"));
    serve.await_secret_cn(SEED_SECRET, ROTATED_CN);
    let after = serve.snapshot();
    assert_eq!(after.resources("clusters"), before.resources("clusters"), "rotating a Secret changed clusters");

    // A Service annotation changed, then the Service deleted.
    serve.mark("Service annotation");
    api.apply(&annotated_service("quotes", "qotm", "/quotes/"));
    serve.await_route_prefix("quotes/qotm_mapping", "/quotes/");
    api.delete("Service", "quotes", "qotm");
    serve.await_no_route("quotes/qotm_mapping");

    // A Listener.
    serve.mark("Listener");
    api.apply(&listener("http-9000", 9000));
    serve.await_snapshot("the Listener's port is served", CHANGE, |snapshot| {
        let names = snapshot.names("listeners");
        if names.iter().any(|name| name.ends_with("-9000")) {
            Ok(())
        } else {
            Err(format!("listeners {names:?}"))
        }
    });

    // The Secret deleted: the route fails closed (never plaintext) and the log says why; created
    // again: the route is back on its cluster.
    serve.mark("delete the Secret");
    api.delete("Secret", "default", "upstream-certs");
    serve.await_snapshot("the Mapping without its Secret answers 503", CHANGE, |snapshot| {
        let route = snapshot.route("default/upstream-mapping").ok_or("no route default/upstream-mapping")?;
        match route["direct_response"]["status"].as_u64() {
            Some(503) if snapshot.secret(SEED_SECRET).is_none() => Ok(()),
            _ => Err(format!("route {route}")),
        }
    });
    serve.eventually("the log names the missing Secret", CHANGE, || {
        if serve.log().contains("Secret default/upstream-certs not found") {
            Ok(())
        } else {
            Err("not logged".into())
        }
    });
    api.apply(&tls_secret("default", "upstream-certs", "client"));
    serve.await_snapshot("the re-created Secret restores the route", CHANGE, |snapshot| {
        let route = snapshot.route("default/upstream-mapping").ok_or("no route default/upstream-mapping")?;
        match (route["route"]["cluster"].as_str(), snapshot.secret_cn(SEED_SECRET)) {
            (Some(SEED_CLUSTER), Ok(cn)) if cn == CLIENT_CN => Ok(()),
            (_, cn) => Err(format!("route {route}, secret {cn:?}")),
        }
    });

    // The TLSContext deleted: the route fails closed, the SDS secret goes, and the log says why.
    serve.mark("delete the TLSContext");
    api.delete("TLSContext", "default", "upstream-context");
    serve.await_snapshot("the Mapping without its TLSContext answers 503", CHANGE, |snapshot| {
        let route = snapshot.route("default/upstream-mapping").ok_or("no route default/upstream-mapping")?;
        match route["direct_response"]["status"].as_u64() {
            Some(503) if snapshot.secret(SEED_SECRET).is_none() => Ok(()),
            _ => Err(format!("route {route}")),
        }
    });
    serve.eventually("the log names the missing TLSContext", CHANGE, || {
        if serve.log().contains("TLSContext `upstream-context` is not defined") {
            Ok(())
        } else {
            Err("not logged".into())
        }
    });
    serve.assert_running();
    assert_no_secret_data_logged(&serve);
}

// ---- 2. readiness ----

/// `/readyz` answers 503 while the API server is down (serve is alive: `/healthz` 200, and it
/// keeps trying), still 503 when everything but the Secrets collection works (every watcher must
/// have listed), and 200 once all have, with the listed objects in the snapshot.
#[test]
fn readyz_waits_for_every_watchers_first_list() {
    let api = FakeKube::start();
    apply_seed(&api, V3, "upstream-service");
    api.set_reachable(false);

    let mut serve = Serve::new("readyz", &api);
    serve.spawn();
    serve.eventually("serve tries the unreachable API", READY, || {
        if api.refused_connections().is_empty() {
            Err("no connection attempt yet".into())
        } else {
            Ok(())
        }
    });
    for _ in 0..5 {
        let status = serve.readyz();
        if status != 503 {
            serve.fail(&format!("/readyz answered {status} while the API is down"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    serve.mark("API up, except Secrets");
    api.fail_paths(&[SECRETS]);
    api.set_reachable(true);
    serve.eventually("the Mappings are listed", READY, || {
        if api.requests().iter().any(|request| request.is_list_of(MAPPINGS) && request.status == 200) {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let status = serve.readyz();
    if status != 503 {
        serve.fail(&format!("/readyz answered {status} although Secrets were never listed"));
    }

    serve.mark("Secrets up");
    api.fail_paths(&[]);
    serve.await_ready(RECOVERY);
    let snapshot = serve.snapshot();
    assert!(has_route(&snapshot, "default/upstream-mapping"), "{}", snapshot.summary());
    assert_eq!(snapshot.secret_cn(SEED_SECRET), Ok(CLIENT_CN.to_owned()), "{}", snapshot.summary());
}

// ---- 3. watch restarts ----

/// A watch cut mid-event (half a line, then the connection drops), then one ended cleanly: serve
/// watches again from where it was, and changes written while no watch was open arrive.
#[test]
fn watches_cut_or_closed_resume_without_losing_changes() {
    let api = FakeKube::start();
    api.set_bookmark_interval(Some(Duration::from_millis(300)));
    api.apply(&mapping(V3, "default", "first", "/first/", "first", ""));
    let mut serve = Serve::new("watch-restart", &api);
    serve.start();
    serve.eventually("every watch is open", CHANGE, || match api.open_watches() {
        n if n >= 5 => Ok(()),
        n => Err(format!("{n} open")),
    });

    serve.mark("kill watches");
    let mark = api.request_count();
    api.kill_watches();
    api.apply(&mapping(V3, "default", "after-kill", "/after-kill/", "after-kill", ""));
    serve.await_route("default/after-kill");
    let requests = api.requests_since(mark);
    let rewatches = watches_of(&requests, MAPPINGS);
    if rewatches.is_empty() {
        serve.fail("the Mapping watch was not opened again after it was cut");
    }
    for watch in &rewatches {
        if matches!(watch.param("resourceVersion"), None | Some("" | "0")) {
            serve.fail(&format!("a watch resumed without a resourceVersion: {watch}"));
        }
    }

    serve.mark("close watches");
    api.close_watches();
    api.apply(&mapping(V3, "default", "after-close", "/after-close/", "after-close", ""));
    api.delete("Mapping", "default", "first");
    serve.await_route("default/after-close");
    serve.await_no_route("default/first");
    let snapshot = serve.snapshot();
    assert!(has_route(&snapshot, "default/after-kill"), "{}", snapshot.summary());
    serve.assert_running();
}

// ---- 4. 410 Gone ----

/// While the watches stall, a Mapping is modified, one deleted, one added and the Secret rotated;
/// then the history is compacted: the watches get `ERROR` 410 Expired, serve relists, and the
/// snapshot has all four changes (the deletion too, which no event ever reported). A change after
/// the relist still arrives.
#[test]
fn expired_resource_version_relists_and_loses_nothing() {
    let api = FakeKube::start();
    apply_seed(&api, V3, "upstream-service");
    api.apply(&mapping(V3, "default", "changed", "/changed-v1/", "changed", ""));
    api.apply(&mapping(V3, "default", "gone", "/gone/", "gone", ""));
    let mut serve = Serve::new("expired", &api);
    serve.start();

    serve.mark("stall watches, change things");
    api.pause_watches();
    api.apply(&mapping(V3, "default", "changed", "/changed-v2/", "changed", ""));
    api.delete("Mapping", "default", "gone");
    api.apply(&mapping(V3, "default", "fresh", "/fresh/", "fresh", ""));
    api.apply(&tls_secret("default", "upstream-certs", "client2"));
    std::thread::sleep(Duration::from_millis(300));
    let stalled = serve.snapshot();
    assert!(has_route(&stalled, "default/gone"), "a change arrived through a stalled watch: {}", stalled.summary());

    serve.mark("expire history");
    let mark = api.request_count();
    api.expire_history();
    api.resume_watches();
    serve.await_snapshot("the relist brings every change", CHANGE, |snapshot| {
        let changed = snapshot.route("default/changed").map(|route| route["match"]["prefix"].clone());
        let mut missing = Vec::new();
        if changed != Some("/changed-v2/".into()) {
            missing.push(format!("default/changed prefix {changed:?}"));
        }
        if has_route(snapshot, "default/gone") {
            missing.push("default/gone still routed".into());
        }
        if !has_route(snapshot, "default/fresh") {
            missing.push("no default/fresh".into());
        }
        if snapshot.secret_cn(SEED_SECRET).as_deref() != Ok(ROTATED_CN) {
            missing.push(format!("secret {:?}", snapshot.secret_cn(SEED_SECRET)));
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    });

    let errors = api.errors_sent();
    let expired = errors
        .iter()
        .find(|error| error.path == MAPPINGS && error.code == 410 && error.message.contains("too old resource version"))
        .unwrap_or_else(|| serve.fail(&format!("no 410 was sent on the Mapping watch: {errors:?}")));
    let requests = api.requests_since(mark);
    let relists: Vec<&Logged> =
        lists_of(&requests, MAPPINGS).into_iter().filter(|r| r.status == 200 && r.at >= expired.at).collect();
    if relists.is_empty() {
        serve
            .fail(&format!("no relist of {MAPPINGS} after the 410:{}", describe(&requests.iter().collect::<Vec<_>>())));
    }

    api.apply(&mapping(V3, "default", "after-relist", "/after-relist/", "after-relist", ""));
    serve.await_route("default/after-relist");
    serve.assert_running();
}

// ---- 5. outage ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outage {
    /// Every request answered 503 (a load balancer without backends, an API server shutting down).
    Unavailable,
    /// Connections dropped (the API server process is gone).
    Unreachable,
}

/// The API answers 503 to everything for a few seconds (kube-rs retries those in its client,
/// from 5 ms, doubling).
#[test]
fn api_answering_503_keeps_the_last_snapshot_and_recovers() {
    outage_scenario(Outage::Unavailable);
}

/// The API server is unreachable for a few seconds (the watchers back off from 0.8 s, doubling).
#[test]
fn api_unreachable_keeps_the_last_snapshot_and_recovers() {
    outage_scenario(Outage::Unreachable);
}

/// During the outage the snapshot stays exactly as it was and serve stays ready; retries are spaced
/// out (backoff, not a hot loop); a change written during the outage and one after it arrive once
/// the API is back.
fn outage_scenario(outage: Outage) {
    let api = FakeKube::start();
    apply_seed(&api, V3, "upstream-service");
    let mut serve = Serve::new(&format!("outage-{outage:?}").to_lowercase(), &api);
    serve.start();
    let before = serve.snapshot();

    serve.mark(&format!("API down: {outage:?}"));
    let mark = api.request_count();
    let down_at = Instant::now();
    match outage {
        Outage::Unavailable => api.set_available(false),
        Outage::Unreachable => api.set_reachable(false),
    }
    api.apply(&mapping(V3, "default", "during-outage", "/during/", "during", ""));
    let attempts = || match outage {
        Outage::Unavailable => {
            api.requests_since(mark).iter().filter(|r| r.path == MAPPINGS && r.status == 503).count()
        }
        Outage::Unreachable => api.refused_connections().len(),
    };
    serve.eventually("serve keeps trying the API for 3 s", RECOVERY, || match attempts() {
        n if n >= 3 && down_at.elapsed() >= Duration::from_secs(3) => Ok(()),
        n => Err(format!("{n} attempt(s) after {:?}", down_at.elapsed())),
    });
    let during = serve.snapshot();
    if during != before {
        serve.fail(&format!("the snapshot changed during the outage: {} -> {}", before.summary(), during.summary()));
    }
    assert_eq!(serve.readyz(), 200, "/readyz after the first sync, during an outage");
    assert_eq!(serve.admin_get("/healthz").status, 200);

    // Backoff, not a hot loop.
    let window = down_at.elapsed();
    match outage {
        Outage::Unavailable => {
            let refused: Vec<Logged> = api.requests_since(mark).into_iter().filter(|r| r.status == 503).collect();
            for path in [MAPPINGS, TLSCONTEXTS, LISTENERS, SECRETS, SERVICES] {
                let tries: Vec<&Logged> = refused.iter().filter(|r| r.path == path).collect();
                let longest = tries.windows(2).map(|pair| pair[1].at.duration_since(pair[0].at)).max();
                if tries.len() > 25 || longest < Some(Duration::from_millis(300)) {
                    serve.fail(&format!(
                        "{} tries of {path} in {window:?}, longest pause {longest:?}: no backoff{}",
                        tries.len(),
                        describe(&tries)
                    ));
                }
            }
        }
        Outage::Unreachable => {
            let refused = api.refused_connections().len();
            if refused > 60 {
                serve.fail(&format!("{refused} connection attempts in {window:?} by 5 watchers: no backoff"));
            }
        }
    }

    serve.mark("API back");
    match outage {
        Outage::Unavailable => api.set_available(true),
        Outage::Unreachable => api.set_reachable(true),
    }
    serve.await_snapshot("the change written during the outage arrives", RECOVERY, |snapshot| {
        snapshot.route("default/during-outage").map(|_| ()).ok_or_else(|| "no default/during-outage".into())
    });
    api.apply(&mapping(V3, "default", "after-outage", "/after/", "after", ""));
    serve.await_route("default/after-outage");
    let snapshot = serve.snapshot();
    assert!(has_route(&snapshot, "default/upstream-mapping"), "{}", snapshot.summary());
    assert_eq!(snapshot.secret_cn(SEED_SECRET), Ok(CLIENT_CN.to_owned()));
    serve.assert_running();
}

// ---- 6. namespaces ----

/// `--namespace a --namespace c`: objects in `b` are ignored (also when they change), every
/// collection is read through its per-namespace path in both namespaces, never cluster-wide.
#[test]
fn namespace_flags_restrict_what_is_read() {
    let api = FakeKube::start();
    api.apply(&tls_secret("a", "upstream-certs", "client"));
    api.apply(&tls_context(V3, "a", "upstream-context", "upstream-certs", ""));
    api.apply(&mapping(V3, "a", "in-a", "/a/", "upstream-service", "  tls: upstream-context\n"));
    api.apply(&mapping(V3, "b", "in-b", "/b/", "svc-b", ""));
    api.apply(&annotated_service("b", "svcb", "/b-annotated/"));
    api.apply(&mapping(V3, "c", "in-c", "/c/", "svc-c", ""));
    let mut serve = Serve::new("namespaces", &api).namespace("a").namespace("c");
    serve.start();

    let snapshot = serve.snapshot();
    let routes = snapshot.route_names();
    for expected in ["a/in-a", "c/in-c"] {
        assert!(routes.iter().any(|route| route == expected), "no {expected} in {routes:?}");
    }
    assert!(!routes.iter().any(|route| route.starts_with("b/")), "namespace b is not watched: {routes:?}");
    assert_eq!(snapshot.secret_cn("tlscontext/a/upstream-context/client-cert"), Ok(CLIENT_CN.to_owned()));

    api.apply(&mapping(V3, "b", "later-in-b", "/later-b/", "svc-b", ""));
    api.apply(&mapping(V3, "a", "later-in-a", "/later-a/", "svc-a", ""));
    serve.await_route("a/later-in-a");
    let routes = serve.snapshot().route_names();
    assert!(!routes.iter().any(|route| route.starts_with("b/")), "namespace b is not watched: {routes:?}");

    let requests = api.requests();
    let collections: Vec<&Logged> = requests.iter().filter(|r| r.collection().is_some()).collect();
    let cluster_wide: Vec<&&Logged> =
        collections.iter().filter(|r| !matches!(r.namespace(), Some("a" | "c"))).collect();
    if !cluster_wide.is_empty() {
        serve.fail(&format!(
            "requests outside namespaces a and c:{}",
            cluster_wide.iter().map(|r| format!("\n  {r}")).collect::<String>()
        ));
    }
    for namespace in ["a", "c"] {
        for path in [MAPPINGS, TLSCONTEXTS, LISTENERS, SECRETS, SERVICES] {
            let namespaced =
                path.rsplit_once('/').map(|(base, plural)| format!("{base}/namespaces/{namespace}/{plural}")).unwrap();
            if lists_of(&requests, &namespaced).is_empty() || watches_of(&requests, &namespaced).is_empty() {
                serve.fail(&format!("{namespaced} was not listed and watched"));
            }
        }
    }
}

// ---- 7. no CRDs ----

/// getambassador.io is not served (CRDs not installed): serve warns and runs; Secrets are still
/// watched, so a TLSContext and Mapping from `--config-dir` get their certificate from the API,
/// and its rotation arrives. Both sources feed one snapshot.
#[test]
fn missing_crds_are_a_warning_and_secrets_still_flow() {
    let api = FakeKube::start();
    api.serve_ambassador_versions(&[]);
    api.apply(&tls_secret("default", "upstream-certs", "client"));
    let mut serve = Serve::new("no-crds", &api).with_config_dir();
    serve.write_config(
        "mtls.yaml",
        &format!(
            "{}---\n{}",
            tls_context(V2, "default", "upstream-context", "upstream-certs", ""),
            mapping(V2, "default", "upstream-mapping", "/upstream/", "upstream-service", "  tls: upstream-context\n")
        ),
    );
    serve.start();

    let snapshot = serve.snapshot();
    assert!(has_route(&snapshot, "default/upstream-mapping"), "{}", snapshot.summary());
    assert_eq!(snapshot.secret_cn(SEED_SECRET), Ok(CLIENT_CN.to_owned()), "{}", snapshot.summary());
    let log = serve.log();
    if !log.lines().any(|line| line.contains("WARN") && line.contains("getambassador.io")) {
        serve.fail("no warning naming getambassador.io in serve's log");
    }
    let requests = api.requests();
    let ambassador: Vec<&Logged> =
        requests.iter().filter(|r| r.collection().is_some() && r.path.starts_with("/apis/getambassador.io/")).collect();
    assert!(
        ambassador.is_empty(),
        "getambassador.io collections requested although not served:{}",
        describe(&ambassador)
    );
    assert!(!watches_of(&requests, SECRETS).is_empty(), "Secrets are not watched");

    api.apply(&tls_secret("default", "upstream-certs", "client2"));
    serve.await_secret_cn(SEED_SECRET, ROTATED_CN);
    serve.assert_running();
}

// ---- 8. ambassador_id ----

/// Two instances on one cluster: the default one takes resources without `ambassador_id` or
/// naming `default`; `AMBASSADOR_ID=staging` takes only those naming `staging`. A change of
/// `ambassador_id` moves a Mapping in.
#[test]
fn ambassador_id_selects_resources() {
    let api = FakeKube::start();
    api.apply(&mapping(V3, "default", "mine", "/mine/", "mine", ""));
    api.apply(&mapping(V3, "default", "shared", "/shared/", "shared", "  ambassador_id: [default, staging]\n"));
    api.apply(&mapping(V3, "default", "theirs", "/theirs/", "theirs", "  ambassador_id: [staging]\n"));
    let mut default = Serve::new("id-default", &api);
    let mut staging = Serve::new("id-staging", &api).env("AMBASSADOR_ID", "staging");
    default.start();
    staging.start();

    let routes = default.snapshot().route_names();
    assert_eq!(sorted(&routes), ["default/mine", "default/shared"], "the default instance");
    let routes = staging.snapshot().route_names();
    assert_eq!(sorted(&routes), ["default/shared", "default/theirs"], "AMBASSADOR_ID=staging");

    api.apply(&mapping(V3, "default", "theirs", "/theirs/", "theirs", "  ambassador_id: [staging, default]\n"));
    default.await_route("default/theirs");
    api.apply(&mapping(V3, "default", "shared", "/shared/", "shared", "  ambassador_id: [staging]\n"));
    default.await_no_route("default/shared");
    let routes = staging.snapshot().route_names();
    assert_eq!(sorted(&routes), ["default/shared", "default/theirs"], "AMBASSADOR_ID=staging after the changes");
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names
}

// ---- 9. v2 only ----

/// A cluster that serves getambassador.io only in v2 (no Listener there): Mappings and TLSContexts
/// are read through v2, nothing through v3alpha1, and changes arrive.
#[test]
fn v2_only_cluster_is_read_through_v2() {
    let api = FakeKube::start();
    api.serve_ambassador_versions(&["v2"]);
    apply_seed(&api, V2, "upstream-service");
    let mut serve = Serve::new("v2-only", &api);
    serve.start();

    let snapshot = serve.snapshot();
    assert!(has_route(&snapshot, "default/upstream-mapping"), "{}", snapshot.summary());
    assert_eq!(snapshot.secret_cn(SEED_SECRET), Ok(CLIENT_CN.to_owned()), "{}", snapshot.summary());
    let requests = api.requests();
    for path in ["/apis/getambassador.io/v2/mappings", "/apis/getambassador.io/v2/tlscontexts"] {
        assert!(!lists_of(&requests, path).is_empty(), "{path} not listed");
        assert!(!watches_of(&requests, path).is_empty(), "{path} not watched");
    }
    let v3: Vec<&Logged> = requests.iter().filter(|r| r.path.starts_with("/apis/getambassador.io/v3alpha1")).collect();
    assert!(v3.is_empty(), "v3alpha1 is not served:{}", describe(&v3));

    api.apply(&mapping(
        V2,
        "default",
        "upstream-mapping",
        "/v2-moved/",
        "upstream-service",
        "  tls: upstream-context\n",
    ));
    serve.await_route_prefix("default/upstream-mapping", "/v2-moved/");
    serve.assert_running();
}

// ---- 10. end to end ----

/// A real Envoy taking everything from `serve --kubernetes`, an upstream that requires a client
/// certificate: the `kubernetes.io/tls` Secret rotated through the API reaches the upstream as the
/// new certificate (CN envoy-client -> envoy-client-rotated) while requests flow, none fails,
/// only SDS changes (Envoy's cluster and listener add/modify/remove counters stay put), and
/// Envoy rejected nothing.
#[test]
fn secret_rotated_in_the_api_reaches_the_upstream() {
    let upstream = Upstream::start("upstream", ServerCert::Upstream, ClientAuth::Required);
    let api = FakeKube::start();
    apply_seed(&api, V3, &format!("localhost:{}", upstream.port()));
    let mut serve = Serve::new("envoy-rotation", &api);
    serve.observe(&upstream);
    serve.start();
    serve.start_envoy();
    let response = serve.await_client_cn("/upstream/", CLIENT_CN);
    assert_eq!(response.json().unwrap()["path"], "/", "{}", response.summary());

    let envoy_pid = serve.envoy_pid();
    let churn =
        "^(cluster_manager\\.cluster_(added|modified|removed)|listener_manager\\.listener_(added|modified|removed))$";
    let churn_before = serve.envoy_stats(churn);
    assert_eq!(churn_before.len(), 6, "cluster/listener manager stats: {churn_before:?}");
    let sds_updates = |serve: &Serve| -> u64 { serve.envoy_stats("^sds\\..*\\.update_success$").values().sum() };
    let sds_before = sds_updates(&serve);

    let requests = RequestLoop::start(serve.listener(), "/upstream/", Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(500));
    serve.mark("rotating Secret upstream-certs to client2 through the API");
    api.apply(&tls_secret("default", "upstream-certs", "client2"));
    serve.eventually("the request loop sees the rotated certificate", CHANGE, || match requests.samples().last() {
        Some(last) if last.client_cn.as_deref() == Some(ROTATED_CN) => Ok(()),
        last => Err(format!("last sample {last:?}")),
    });
    std::thread::sleep(Duration::from_millis(300));
    let samples = requests.stop();

    if samples.is_empty() {
        serve.fail("the request loop sent nothing");
    }
    if let Some(failed) = failures(&samples, 10) {
        serve.fail(&format!("during the rotation: {failed}"));
    }
    let cns: Vec<Option<&str>> = samples.iter().map(|sample| sample.client_cn.as_deref()).collect();
    let first_rotated = cns.iter().position(|cn| *cn == Some(ROTATED_CN)).unwrap();
    assert!(first_rotated > 0, "no request before the rotation: {cns:?}");
    assert!(cns[..first_rotated].iter().all(|cn| *cn == Some(CLIENT_CN)), "{cns:?}");
    assert!(cns[first_rotated..].iter().all(|cn| *cn == Some(ROTATED_CN)), "the old certificate came back: {cns:?}");

    assert_eq!(serve.envoy_pid(), envoy_pid, "Envoy was restarted");
    let churn_after = serve.envoy_stats(churn);
    if churn_after != churn_before {
        serve.fail(&format!("the rotation changed clusters or listeners: {churn_before:?} -> {churn_after:?}"));
    }
    let sds_after = sds_updates(&serve);
    assert!(sds_after > sds_before, "no SDS update counted ({sds_before} -> {sds_after})");
    serve.assert_no_rejected_updates();
    serve.assert_running();
    assert_no_secret_data_logged(&serve);
}

// ---- 11. untrusted objects ----

fn diagnostics(snapshot: &Snapshot) -> Vec<String> {
    snapshot.0["diagnostics"].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(str::to_owned)).collect()
}

fn fails_closed(snapshot: &Snapshot, route: &str) -> bool {
    snapshot.route(route).is_some_and(|route| route["direct_response"]["status"] == 503)
}

/// Whoever may write a Mapping, TLSContext or Secret in a watched namespace is held to the
/// policy: `--secret-namespaces own` keeps a TLSContext in `tenant` from presenting `default`'s
/// client certificate, and certificate files are not read at all in Kubernetes mode without
/// `--tls-files-under`. Broken objects do not take working routes down: a Mapping whose prefix
/// becomes a number keeps its route, a Secret rewritten with a key that does not match keeps its
/// last good certificate (the new one is served once the key follows); only a deleted Secret is
/// gone, and its route fails closed. Secrets are listed with a type field selector.
#[test]
fn untrusted_objects_are_held_to_policy_and_keep_their_last_good_version() {
    let api = FakeKube::start();
    apply_seed(&api, V3, "upstream-service");
    api.apply(&tls_context(V3, "tenant", "borrowed", "upstream-certs.default", ""));
    api.apply(&mapping(V3, "tenant", "borrower", "/borrower/", "svc", "  tls: borrowed\n"));
    api.apply(&format!(
        "apiVersion: {V3}\nkind: TLSContext\nmetadata: {{name: from-files, namespace: tenant}}\nspec: {{cert_chain_file: /etc/ssl/private/x.crt, private_key_file: /etc/ssl/private/x.key}}\n"
    ));
    api.apply(&mapping(V3, "tenant", "file-user", "/files/", "svc", "  tls: from-files\n"));
    let mut serve = Serve::new("untrusted", &api).arg("--secret-namespaces").arg("own");
    serve.start();

    let snapshot = serve.snapshot();
    assert_eq!(snapshot.secret_cn(SEED_SECRET), Ok(CLIENT_CN.to_owned()), "{}", snapshot.summary());
    assert!(fails_closed(&snapshot, "tenant/borrower"), "{}", snapshot.summary());
    assert!(fails_closed(&snapshot, "tenant/file-user"), "{}", snapshot.summary());
    let found = diagnostics(&snapshot);
    for expected in ["--secret-namespaces own does not allow", "not read in Kubernetes mode"] {
        assert!(found.iter().any(|d| d.contains(expected)), "no diagnostic saying {expected:?}: {found:#?}");
    }

    serve.mark("the Mapping's prefix becomes a number");
    api.apply(&mapping(V3, "default", "upstream-mapping", "5", "upstream-service", "  tls: upstream-context\n"));
    let snapshot = serve.await_snapshot("a stale warning for the Mapping", CHANGE, |snapshot| {
        let found = diagnostics(snapshot);
        match found.iter().any(|d| d.contains("Mapping default/upstream-mapping") && d.contains("last good version")) {
            true => Ok(snapshot.clone()),
            false => Err(format!("{found:#?}")),
        }
    });
    let route = snapshot.route("default/upstream-mapping").unwrap_or_else(|| serve.fail("the route went away"));
    assert_eq!(route["match"]["prefix"], "/upstream/", "{route}");

    serve.mark("certificate rewritten before its key");
    let half = tls_secret("default", "upstream-certs", "client2")
        .replace(&b64(&read_cert("client2.key")), &b64(&read_cert("client.key")));
    api.apply(&half);
    serve.await_snapshot("a stale warning for the context", CHANGE, |snapshot| {
        let found = diagnostics(snapshot);
        match found.iter().any(|d| d.contains("TLSContext default/upstream-context") && d.contains("last good")) {
            true => Ok(()),
            false => Err(format!("{found:#?}")),
        }
    });
    assert_eq!(serve.snapshot().secret_cn(SEED_SECRET), Ok(CLIENT_CN.to_owned()), "the last good certificate stays");
    let metrics = serve.admin_get("/metrics").text();
    assert!(metrics.contains("ambassador_xds_diagnostics{severity=\"warning\",kind=\"stale\"}"), "{metrics}");
    api.apply(&tls_secret("default", "upstream-certs", "client2"));
    serve.await_secret_cn(SEED_SECRET, ROTATED_CN);

    serve.mark("the Secret is deleted");
    api.delete("Secret", "default", "upstream-certs");
    let snapshot = serve.await_snapshot("the route fails closed", CHANGE, |snapshot| {
        match fails_closed(snapshot, "default/upstream-mapping") {
            true => Ok(snapshot.clone()),
            false => Err(snapshot.summary()),
        }
    });
    assert!(snapshot.secret(SEED_SECRET).is_none(), "{}", snapshot.summary());

    let requests = api.requests();
    for request in lists_of(&requests, SECRETS).into_iter().chain(watches_of(&requests, SECRETS)) {
        let selector = request.param("fieldSelector").unwrap_or_default();
        assert!(selector.contains("type!=helm.sh/release.v1"), "{request}");
    }
    assert_no_secret_data_logged(&serve);
    serve.assert_running();
}

// ---- 12. Secrets no TLSContext can read ----

/// In a Helm release Secret's data: must never reach serve.
const HELM_CANARY: &str = "helm-release-canary-4b1d";

/// A Secret as Helm stores a release (created by a controller: no `last-applied-configuration`).
fn helm_release_secret(namespace: &str, release: &str, revision: u32) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": format!("sh.helm.release.v1.{release}.v{revision}"), "namespace": namespace,
                     "labels": {"owner": "helm", "name": release, "version": revision.to_string()}},
        "data": {"release": b64(format!("{HELM_CANARY}-{revision}").as_bytes())},
    })
}

/// Secrets are listed and watched with the type field selector, which the API server applies:
/// Helm release and service-account-token Secrets are never sent to serve, neither in the first
/// list nor when a new release revision is written while it watches, and their data never shows
/// in its log or `/snapshot`; the `kubernetes.io/tls` Secret is sent and rotates as usual.
#[test]
fn helm_release_secrets_are_never_sent_to_serve() {
    let api = FakeKube::start();
    api.set_max_page(Some(2));
    apply_seed(&api, V3, "upstream-service");
    api.create_value(helm_release_secret("default", "web", 1));
    api.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: builder-token\n  namespace: default\ntype: kubernetes.io/service-account-token\ndata:\n  token: {}\n",
        b64(HELM_CANARY.as_bytes())
    ));
    let mut serve = Serve::new("helm-secrets", &api);
    serve.start();
    assert_eq!(serve.snapshot().secret_cn(SEED_SECRET), Ok(CLIENT_CN.to_owned()));

    serve.mark("Helm writes revision 2; then the TLS Secret rotates");
    api.create_value(helm_release_secret("default", "web", 2));
    api.apply(&tls_secret("default", "upstream-certs", "client2"));
    serve.await_secret_cn(SEED_SECRET, ROTATED_CN);

    let requests = api.requests();
    let secret_requests: Vec<&Logged> =
        lists_of(&requests, SECRETS).into_iter().chain(watches_of(&requests, SECRETS)).collect();
    assert!(secret_requests.len() >= 2, "Secrets not listed and watched:{}", describe(&secret_requests));
    for request in &secret_requests {
        assert_eq!(
            request.param("fieldSelector"),
            Some("type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token,type!=kubernetes.io/dockerconfigjson"),
            "{request}"
        );
        assert_eq!(request.status, 200, "{request}");
    }
    for name in ["sh.helm.release.v1.web.v1", "sh.helm.release.v1.web.v2", "builder-token"] {
        assert_eq!(api.times_sent("Secret", "default", name), 0, "Secret {name} was sent to serve");
    }
    assert!(api.times_sent("Secret", "default", "upstream-certs") >= 2, "the TLS Secret was not listed and rotated");
    let canary = b64(HELM_CANARY.as_bytes());
    assert!(!serve.log().contains(HELM_CANARY) && !serve.snapshot_text().contains(&canary[..16]));
    assert_no_secret_data_logged(&serve);
}

// ---- 13. KubernetesEndpointResolver: EndpointSlices ----

fn endpoint_slice(name: &str, port: u16, ready: bool) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: shop\n  labels:\n    kubernetes.io/service-name: web\naddressType: IPv4\nports:\n- name: https\n  port: {port}\n  protocol: TCP\nendpoints:\n- addresses: [127.0.0.1]\n  conditions: {{ready: {ready}}}\n"
    )
}

/// A Mapping with the `endpoint` resolver gets an EDS cluster whose assignment is the ready
/// endpoints of the Service's EndpointSlices, on the slice port named like the Service port
/// (443 `https` here, a different target port in each slice); an endpoint that stops being
/// ready stops getting traffic, and such changes never recompile the configuration.
#[test]
fn endpoint_slices_feed_eds_clusters_without_recompiling() {
    let one = Upstream::start("web-1", ServerCert::Upstream, ClientAuth::Optional);
    let two = Upstream::start("web-2", ServerCert::Upstream, ClientAuth::Optional);
    let api = FakeKube::start();
    api.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports:\n  - name: https\n    port: 443\n    targetPort: https\n  - name: metrics\n    port: 9090\n",
    );
    api.apply(&endpoint_slice("web-a", one.port(), true));
    api.apply(&endpoint_slice("web-b", two.port(), true));
    api.apply(&format!(
        "apiVersion: {V3}\nkind: Mapping\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  prefix: /web/\n  service: https://web\n  resolver: endpoint\n  load_balancer:\n    policy: round_robin\n"
    ));
    let mut serve = Serve::new("endpointslices", &api);
    serve.observe(&one);
    serve.observe(&two);
    serve.start();
    let assignment = serve.await_snapshot("k8s/shop/web/443 has both endpoints", CHANGE, |snapshot| {
        let all = snapshot.resources("endpoints");
        let found = all.iter().find(|a| a["cluster_name"] == "k8s/shop/web/443").ok_or("no assignment")?;
        match found["endpoints"][0]["lb_endpoints"].as_array().map(Vec::len) {
            Some(2) => Ok(found.clone()),
            other => Err(format!("{other:?} endpoints: {found}")),
        }
    });
    let ports: Vec<u64> = assignment["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["endpoint"]["address"]["socket_address"]["port_value"].as_u64().unwrap())
        .collect();
    let mut expected = vec![u64::from(one.port()), u64::from(two.port())];
    expected.sort();
    assert_eq!(ports, expected);

    serve.start_envoy();
    let upstream = |serve: &Serve| -> String {
        let response = harness::http::get(serve.listener(), "/web/").unwrap();
        response
            .json()
            .map(|j| j["upstream"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|_| response.summary())
    };
    serve.eventually("both endpoints get requests", CHANGE, || {
        let seen: std::collections::BTreeSet<String> = (0..10).map(|_| upstream(&serve)).collect();
        if seen.len() == 2 && seen.contains("web-1") {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    let compiles = |serve: &Serve| serve.log().matches("publishing configuration").count();
    let before = compiles(&serve);
    serve.mark("web-b's endpoint stops being ready");
    api.apply(&endpoint_slice("web-b", two.port(), false));
    serve.eventually("only web-1 gets requests", CHANGE, || {
        let seen: Vec<String> = (0..10).map(|_| upstream(&serve)).collect();
        if seen.iter().all(|u| u == "web-1") {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    assert_eq!(compiles(&serve), before, "an endpoint change recompiled the configuration");
    serve.assert_no_rejected_updates();
    serve.assert_running();
}
