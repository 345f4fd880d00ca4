//! End to end: the real `ambassador-xds serve`, a real Envoy 1.40 bootstrapped by
//! `ambassador-xds bootstrap`, and TLS upstreams that demand client certificates and report what
//! they saw. Every scenario runs twice, once per ADS flavour (`sotw::…` and `delta::…`), each on its
//! own control plane, Envoy and temporary config dir, and ends by checking that Envoy rejected no
//! update (`update_rejected` stats all 0).
//!
//! Needs Envoy: `$ENVOY_BIN`, the project's `.venv` (`scripts/test`), or `envoy` on `PATH`.

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)] // each test binary uses part of the harness
mod harness;

use base64::Engine as _;
use harness::http::{failures, RequestLoop};
use harness::stack::{Mode, Stack};
use harness::upstream::{ClientAuth, ServerCert, Upstream};
use std::time::Duration;

macro_rules! in_both_modes {
    ($($scenario:ident),* $(,)?) => {
        mod sotw {
            $( #[test] fn $scenario() { super::$scenario(super::Mode::Sotw) } )*
        }
        mod delta {
            $( #[test] fn $scenario() { super::$scenario(super::Mode::Delta) } )*
        }
    };
}

in_both_modes!(
    seed_example_presents_the_client_certificate,
    istio_cert_files_verify_the_upstream,
    https_service_without_context_originates_plain_tls,
    secret_rotation_changes_only_the_secret,
    mapping_file_added_then_removed,
    broken_config_fails_closed_and_is_reported,
    control_plane_restart_keeps_envoy_serving,
    sigterm_stops_serve_cleanly_while_envoy_is_connected,
    config_churn_is_never_rejected,
    hosts_and_paths_route_as_users_expect,
    colliding_cluster_names_keep_their_targets,
    config_map_swaps_reload_once_with_each_resource_once,
    certificates_rotated_one_file_at_a_time_never_fail_a_request,
);

const CLIENT_CN: &str = "envoy-client";
const ROTATED_CN: &str = "envoy-client-rotated";
/// The name `translate` gives the SDS Secret of the seed's TLSContext.
const SEED_SECRET: &str = "tlscontext/default/upstream-context/client-cert";

// ---- the YAML users write ----

fn cert_file(name: &str) -> Vec<u8> {
    let path = support::manifest_dir().join("testdata/certs").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// A `kubernetes.io/tls` Secret holding `testdata/certs/<cert>.crt` and `.key`.
fn tls_secret(name: &str, cert: &str) -> String {
    let b64 = |file: String| base64::engine::general_purpose::STANDARD.encode(cert_file(&file));
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(format!("{cert}.crt")),
        b64(format!("{cert}.key")),
    )
}

/// The seed's origination context: no hosts, a client certificate from a Secret.
fn tls_context_from_secret(name: &str, secret: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v2\nkind: TLSContext\nmetadata:\n  name: {name}\nspec:\n  hosts: []\n  secret: {secret}\n"
    )
}

/// The Istio example's context: certificate, key and CA from files.
fn tls_context_from_files(
    name: &str,
    cert_chain: &std::path::Path,
    key: &std::path::Path,
    ca: &std::path::Path,
) -> String {
    format!(
        "---\napiVersion: getambassador.io/v2\nkind: TLSContext\nmetadata:\n  name: {name}\nspec:\n  cert_chain_file: {}\n  private_key_file: {}\n  cacert_chain_file: {}\n",
        cert_chain.display(),
        key.display(),
        ca.display()
    )
}

fn mapping(name: &str, prefix: &str, service: &str, tls: Option<&str>) -> String {
    let tls = tls.map(|context| format!("  tls: {context}\n")).unwrap_or_default();
    format!(
        "---\napiVersion: getambassador.io/v2\nkind: Mapping\nmetadata:\n  name: {name}\nspec:\n  prefix: {prefix}\n  service: {service}\n{tls}"
    )
}

/// The seed example (`examples/quickstart/mtls.yaml`) pointed at `upstream`: the TLSContext and
/// Mapping in `mtls.yaml`, the Secret (holding `cert`) in `secret.yaml`.
fn write_seed_config(stack: &Stack, upstream: &Upstream, cert: &str) {
    stack.write_config(
        "mtls.yaml",
        &(tls_context_from_secret("upstream-context", "upstream-certs")
            + &mapping(
                "upstream-mapping",
                "/upstream/",
                &format!("localhost:{}", upstream.port()),
                Some("upstream-context"),
            )),
    );
    stack.write_config("secret.yaml", &tls_secret("upstream-certs", cert));
}

fn mtls_upstream(name: &'static str) -> Upstream {
    Upstream::start(name, ServerCert::Upstream, ClientAuth::Required)
}

/// The seed config on a fresh stack, started, with /upstream/ answering.
fn seed_stack(mode: Mode, name: &str, upstream: &Upstream) -> Stack {
    let mut stack = Stack::prepare(mode, name);
    stack.observe(upstream);
    write_seed_config(&stack, upstream, "client");
    stack.start();
    stack.await_client_cn("/upstream/", Some(CLIENT_CN));
    stack
}

fn json_field(response: &harness::http::Response, field: &str) -> serde_json::Value {
    response.json().unwrap_or_else(|err| panic!("{err}"))[field].clone()
}

/// Fails unless the request loop sent something and every request answered 200.
fn assert_all_ok(stack: &Stack, samples: &[harness::http::Sample], during: &str) {
    if samples.is_empty() {
        stack.fail(&format!("the request loop sent nothing {during}"));
    }
    if let Some(failed) = failures(samples, 10) {
        stack.fail(&format!("{during}: {failed}"));
    }
}

// ---- 1. the seed example ----

/// `hosts: []` + `secret: upstream-certs` + `tls: upstream-context`: Envoy presents the client
/// certificate from the Secret to an upstream that requires one, with the default rewrite to `/`
/// and SNI defaulting to the service host.
fn seed_example_presents_the_client_certificate(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let stack = seed_stack(mode, "seed-example", &upstream);

    let response = stack.get("/upstream/");
    assert_eq!(response.status, 200, "{}", response.summary());
    assert_eq!(json_field(&response, "client_cn"), CLIENT_CN);
    assert_eq!(json_field(&response, "path"), "/", "default prefix_rewrite is /");
    assert_eq!(json_field(&response, "sni"), "localhost", "SNI defaults to the service host");

    let response = stack.get("/upstream/deeper/path?q=1");
    assert_eq!(json_field(&response, "path"), "/deeper/path?q=1", "{}", response.summary());
    let seen = upstream.requests();
    assert_eq!(seen.last().map(|seen| seen.path.as_str()), Some("/deeper/path?q=1"), "{}", upstream.describe());
    for seen in &seen {
        assert_eq!(seen.client_cn.as_deref(), Some(CLIENT_CN), "{}", upstream.describe());
        assert_eq!(seen.sni.as_deref(), Some("localhost"), "{}", upstream.describe());
    }

    // The control plane's admin endpoints.
    assert_eq!(stack.admin_get("/healthz").status, 200);
    assert_eq!(stack.admin_get("/readyz").status, 200);
    let snapshot = stack.admin_get("/snapshot");
    assert_eq!(snapshot.status, 200, "{}", snapshot.summary());
    assert!(
        !snapshot.text().contains("PRIVATE KEY"),
        "/snapshot shows a private key: keys are [redacted] as in translate"
    );
    let snapshot = snapshot.json().unwrap_or_else(|err| panic!("/snapshot: {err}"));
    let names = |kind: &str| -> Vec<String> {
        snapshot[kind].as_array().into_iter().flatten().filter_map(|r| r["name"].as_str().map(str::to_owned)).collect()
    };
    assert!(names("secrets").contains(&SEED_SECRET.to_owned()), "/snapshot secrets: {:?}", names("secrets"));
    assert!(
        names("clusters").iter().any(|name| name.contains("upstream_context")),
        "/snapshot clusters: {:?}",
        names("clusters")
    );
    stack.finish();
}

// ---- 2. the Istio example: certificate files, CA verification ----

/// `cert_chain_file`/`private_key_file`/`cacert_chain_file`: the client certificate comes from the
/// files, and the CA file makes Envoy verify the upstream: an upstream whose certificate another CA
/// signed gets no request (503).
fn istio_cert_files_verify_the_upstream(mode: Mode) {
    let good = mtls_upstream("good");
    let rogue = Upstream::start("rogue", ServerCert::Rogue, ClientAuth::Optional);
    let mut stack = Stack::prepare(mode, "istio-files");
    stack.observe(&good);
    stack.observe(&rogue);
    let cert = stack.install_cert("client.crt", "cert-chain.pem");
    let key = stack.install_cert("client.key", "key.pem");
    let ca = stack.install_cert("ca.crt", "root-cert.pem");
    stack.write_config(
        "istio.yaml",
        &(tls_context_from_files("istio-upstream", &cert, &key, &ca)
            + &mapping("good", "/good/", &format!("https://localhost:{}", good.port()), Some("istio-upstream"))
            + &mapping("rogue", "/rogue/", &format!("localhost:{}", rogue.port()), Some("istio-upstream"))),
    );
    stack.start();

    let response = stack.await_client_cn("/good/", Some(CLIENT_CN));
    assert_eq!(json_field(&response, "path"), "/");

    let response = stack.await_status("/rogue/", 503);
    assert!(rogue.requests().is_empty(), "the rogue upstream got a request: {}", rogue.describe());
    assert!(rogue.connections() > 0, "Envoy never tried the rogue upstream: {}", rogue.describe());
    let verify_errors: u64 = stack.envoy_stats("ssl\\.fail_verify_error$").values().sum();
    assert!(verify_errors > 0, "Envoy answered {} but counted no ssl.fail_verify_error", response.summary());
    stack.finish();
}

// ---- 3. https:// without a context ----

/// `service: https://…` and no context: TLS without a client certificate. An upstream that only
/// asks for one answers (client_cn null); one that requires one refuses the handshake (503).
fn https_service_without_context_originates_plain_tls(mode: Mode) {
    let open = Upstream::start("open", ServerCert::Upstream, ClientAuth::Optional);
    let closed = mtls_upstream("closed");
    let mut stack = Stack::prepare(mode, "https-no-context");
    stack.observe(&open);
    stack.observe(&closed);
    stack.write_config(
        "https.yaml",
        &(mapping("open", "/open/", &format!("https://localhost:{}", open.port()), None)
            + &mapping("closed", "/closed/", &format!("https://localhost:{}", closed.port()), None)),
    );
    stack.start();

    let response = stack.await_client_cn("/open/", None);
    assert_eq!(json_field(&response, "sni"), "localhost", "SNI defaults to the service host");

    stack.await_status("/closed/", 503);
    assert!(closed.requests().is_empty(), "{}", closed.describe());
    // The upstream records its side of the failed handshake just after Envoy has seen it.
    stack.eventually("the upstream refuses the handshake for want of a client certificate", || {
        if closed.handshake_errors().iter().any(|err| err.contains("no certificates")) {
            Ok(())
        } else {
            Err(closed.describe())
        }
    });
    stack.finish();
}

// ---- 4. rotation ----

/// Replacing the Secret while requests flow: later requests carry the new certificate, not one
/// request fails, Envoy is not restarted, and no cluster or listener is added, modified or
/// removed: only the SDS Secret changes.
fn secret_rotation_changes_only_the_secret(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let mut stack = seed_stack(mode, "rotation", &upstream);
    let envoy_pid = stack.envoy_pid();
    let churn =
        "^(cluster_manager\\.cluster_(added|modified|removed)|listener_manager\\.listener_(added|modified|removed))$";
    let churn_before = stack.envoy_stats(churn);
    assert_eq!(churn_before.len(), 6, "cluster/listener manager stats: {churn_before:?}");
    let sds_updates = |stack: &Stack| -> u64 { stack.envoy_stats("^sds\\..*\\.update_success$").values().sum() };
    let sds_before = sds_updates(&stack);

    let requests = RequestLoop::start(stack.listener(), "/upstream/", Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(500));
    stack.mark_control_plane_log("rotating Secret upstream-certs to client2");
    stack.write_config("secret.yaml", &tls_secret("upstream-certs", "client2"));
    stack.eventually("the request loop sees the rotated certificate", || {
        let samples = requests.samples();
        match samples.last() {
            Some(last) if last.client_cn.as_deref() == Some(ROTATED_CN) => Ok(()),
            last => Err(format!("last sample {last:?}")),
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let samples = requests.stop();

    assert_all_ok(&stack, &samples, "during the rotation");
    let cns: Vec<Option<&str>> = samples.iter().map(|sample| sample.client_cn.as_deref()).collect();
    let first_rotated = cns.iter().position(|cn| *cn == Some(ROTATED_CN)).unwrap();
    assert!(first_rotated > 0, "no request before the rotation: {cns:?}");
    assert!(
        cns[first_rotated..].iter().all(|cn| *cn == Some(ROTATED_CN)),
        "the old certificate came back after the new one: {cns:?}"
    );
    assert!(cns[..first_rotated].iter().all(|cn| *cn == Some(CLIENT_CN)), "{cns:?}");

    assert!(stack.envoy_running(), "Envoy exited");
    assert_eq!(stack.envoy_pid(), envoy_pid, "Envoy was restarted");
    let churn_after = stack.envoy_stats(churn);
    if churn_after != churn_before {
        stack.fail(&format!(
            "the rotation changed clusters or listeners: before {churn_before:?}, after {churn_after:?}"
        ));
    }
    let sds_after = sds_updates(&stack);
    assert!(sds_after > sds_before, "no SDS update counted (sds.*.update_success {sds_before} -> {sds_after})");
    stack.await_client_cn("/upstream/", Some(ROTATED_CN));
    stack.finish();
}

// ---- 5. adding and removing a Mapping file ----

/// A Mapping file dropped into the config dir is routed without restarting anything; deleting it
/// stops the route (404).
fn mapping_file_added_then_removed(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let stack = seed_stack(mode, "add-remove", &upstream);
    assert_eq!(stack.get("/added/").status, 404);

    let service = format!("localhost:{}", upstream.port());
    stack.write_config("added.yaml", &mapping("added-mapping", "/added/", &service, Some("upstream-context")));
    let response = stack.await_client_cn("/added/hello", Some(CLIENT_CN));
    assert_eq!(json_field(&response, "path"), "/hello");

    stack.remove_config("added.yaml");
    stack.await_status("/added/hello", 404);
    let response = stack.get("/upstream/");
    assert_eq!(response.status, 200, "the seed route went away with the removed file: {}", response.summary());
    stack.finish();
}

// ---- 6. broken input ----

/// An unparseable file and a Mapping naming a TLSContext that does not exist: the good route keeps
/// answering throughout, the broken Mapping answers 503 without Envoy ever connecting to its
/// upstream (no plaintext fallback), and the control-plane log names both problems the way
/// `translate` prints them.
fn broken_config_fails_closed_and_is_reported(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let sentinel = Upstream::start("orphan-target", ServerCert::Upstream, ClientAuth::Optional);
    let stack = seed_stack(mode, "broken-config", &upstream);
    stack.observe(&sentinel);
    let requests = RequestLoop::start(stack.listener(), "/upstream/", Duration::from_millis(50));

    stack.write_config(
        "broken.yaml",
        "apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: broken\nspec: {prefix: /broken/, service: broken}\n",
    );
    stack.write_config(
        "orphan.yaml",
        &mapping("orphan", "/orphan/", &format!("localhost:{}", sentinel.port()), Some("no-such-context")),
    );
    stack.await_status("/orphan/", 503);
    std::thread::sleep(Duration::from_millis(300));
    let samples = requests.stop();
    assert_all_ok(&stack, &samples, "while the broken files were added");
    assert_eq!(sentinel.connections(), 0, "Envoy connected to the orphan's upstream: {}", sentinel.describe());
    let response = stack.get("/upstream/");
    assert_eq!(response.client_cn(), Ok(Some(CLIENT_CN.to_owned())), "{}", response.summary());

    for expected in [
        "broken.yaml (document 0): unparseable YAML",
        "orphan.yaml (document 0): Mapping default/orphan: TLSContext `no-such-context` is not defined",
    ] {
        stack.eventually(&format!("the control-plane log says {expected:?}"), || {
            if stack.control_plane_log().contains(expected) {
                Ok(())
            } else {
                Err("not logged".to_owned())
            }
        });
    }
    stack.finish();
}

// ---- 7. control-plane restart ----

/// Kill `serve` (SIGKILL, as a crash): Envoy keeps serving, including new TLS handshakes with the
/// certificate it already has. Start `serve` again on the same xDS port: Envoy reconnects, and a
/// later config change reaches it.
fn control_plane_restart_keeps_envoy_serving(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let mut stack = seed_stack(mode, "restart", &upstream);
    assert_eq!(stack.envoy_stat("control_plane.connected_state"), 1);
    let requests = RequestLoop::start(stack.listener(), "/upstream/", Duration::from_millis(50));

    stack.mark_control_plane_log("SIGKILL");
    stack.kill_control_plane();
    stack.eventually("Envoy notices the control plane is gone", || {
        match stack.envoy_stat("control_plane.connected_state") {
            0 => Ok(()),
            state => Err(format!("control_plane.connected_state {state}")),
        }
    });
    for _ in 0..3 {
        let response = stack.get("/upstream/");
        assert_eq!(response.client_cn(), Ok(Some(CLIENT_CN.to_owned())), "with serve down: {}", response.summary());
    }

    stack.mark_control_plane_log("restart");
    stack.start_control_plane();
    stack.eventually("Envoy reconnects", || match stack.envoy_stat("control_plane.connected_state") {
        1 => Ok(()),
        state => Err(format!("control_plane.connected_state {state}")),
    });
    let service = format!("localhost:{}", upstream.port());
    stack.write_config(
        "after-restart.yaml",
        &mapping("after-restart", "/after-restart/", &service, Some("upstream-context")),
    );
    let response = stack.await_client_cn("/after-restart/", Some(CLIENT_CN));
    assert_eq!(json_field(&response, "path"), "/");

    let samples = requests.stop();
    assert_all_ok(&stack, &samples, "across the control-plane restart");
    stack.finish();
}

/// SIGTERM while Envoy holds an ADS stream open: `serve` exits, with status 0, promptly (a
/// graceful shutdown that waits for streams to end would hang here); Envoy keeps serving.
fn sigterm_stops_serve_cleanly_while_envoy_is_connected(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let mut stack = seed_stack(mode, "sigterm", &upstream);
    assert_eq!(stack.envoy_stat("control_plane.connected_state"), 1);
    match stack.terminate_control_plane(Duration::from_secs(10)) {
        Some(status) if status.success() => {}
        Some(status) => stack.fail(&format!("serve exited with {status} on SIGTERM")),
        None => stack.fail("serve was still running 10 s after SIGTERM (killed)"),
    }
    let response = stack.get("/upstream/");
    assert_eq!(response.status, 200, "{}", response.summary());
    stack.finish();
}

// ---- 8. everything at once: nothing rejected ----

/// One Envoy through every kind of change — a Mapping added, the Secret rotated, the certificate
/// files of a file-based TLSContext replaced, broken files added, files removed — and Envoy
/// accepted every update (update_rejected 0, with the CDS, LDS and SDS updates counted).
fn config_churn_is_never_rejected(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let mut stack = Stack::prepare(mode, "churn");
    stack.observe(&upstream);
    write_seed_config(&stack, &upstream, "client");
    let cert = stack.install_cert("client.crt", "cert-chain.pem");
    let key = stack.install_cert("client.key", "key.pem");
    let ca = stack.install_cert("ca.crt", "root-cert.pem");
    let service = format!("localhost:{}", upstream.port());
    stack.write_config(
        "istio.yaml",
        &(tls_context_from_files("istio-upstream", &cert, &key, &ca)
            + &mapping("istio", "/istio/", &service, Some("istio-upstream"))),
    );
    stack.start();
    stack.await_client_cn("/upstream/", Some(CLIENT_CN));
    stack.await_client_cn("/istio/", Some(CLIENT_CN));
    let updates = |stack: &Stack| {
        [
            stack.envoy_stat("cluster_manager.cds.update_success"),
            stack.envoy_stat("listener_manager.lds.update_success"),
            stack.envoy_stats("^sds\\..*\\.update_success$").values().sum(),
        ]
    };
    let updates_at_start = updates(&stack);

    // 127.0.0.1 rather than localhost: a cluster of its own, so adding and removing it are CDS updates.
    let extra_service = format!("127.0.0.1:{}", upstream.port());
    stack.write_config("extra.yaml", &mapping("extra", "/extra/", &extra_service, Some("upstream-context")));
    stack.await_client_cn("/extra/", Some(CLIENT_CN));

    stack.write_config("secret.yaml", &tls_secret("upstream-certs", "client2"));
    stack.await_client_cn("/upstream/", Some(ROTATED_CN));

    stack.install_cert("client2.crt", "cert-chain.pem");
    stack.install_cert("client2.key", "key.pem");
    stack.await_client_cn("/istio/", Some(ROTATED_CN));

    stack.write_config("broken.yaml", "kind: Mapping\nmetadata: [unclosed\n");
    stack.write_config("orphan.yaml", &mapping("orphan", "/orphan/", &service, Some("no-such-context")));
    stack.await_status("/orphan/", 503);

    for file in ["extra.yaml", "orphan.yaml", "broken.yaml"] {
        stack.remove_config(file);
    }
    stack.await_status("/extra/", 404);
    stack.await_status("/orphan/", 404);
    stack.await_client_cn("/upstream/", Some(ROTATED_CN));

    let [cds, lds, sds] = updates(&stack);
    let [cds_0, _, sds_0] = updates_at_start;
    assert!(cds > cds_0, "no CDS update counted after adding and removing clusters ({cds_0} -> {cds})");
    assert!(lds >= 1, "no LDS update counted");
    assert!(sds >= sds_0 + 2, "expected two SDS updates (secret, then files): {sds_0} -> {sds}");
    stack.finish(); // update_rejected: all 0
}

// ---- 9. routing surprises ----

/// A Mapping with its own `rewrite`, so the path the upstream saw tells which route matched.
fn mapping_rewriting(name: &str, prefix: &str, service: &str, rewrite: &str, extra: &str) -> String {
    mapping(name, prefix, service, Some("upstream-context")) + &format!("  rewrite: {rewrite}\n{extra}")
}

/// Hosts match whatever the case and the port clients send (`Host: API.Example.COM:8080`), and
/// `*.example.com` matches subdomains; paths are normalized before routing, so `/api/../admin/`
/// and `//admin/` are routed by the `/admin/` Mapping, never by `/api/`.
fn hosts_and_paths_route_as_users_expect(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let mut stack = Stack::prepare(mode, "hosts-paths");
    stack.observe(&upstream);
    write_seed_config(&stack, &upstream, "client");
    let service = format!("localhost:{}", upstream.port());
    stack.write_config(
        "routes.yaml",
        &(mapping_rewriting("exact-host", "/host/", &service, "/exact/", "  host: api.example.com\n")
            + &mapping_rewriting("wildcard-host", "/host/", &service, "/wildcard/", "  hostname: \"*.example.com\"\n")
            + &mapping_rewriting("api", "/api/", &service, "/api-upstream/", "")
            + &mapping_rewriting("admin", "/admin/", &service, "/admin-upstream/", "")),
    );
    stack.start();
    stack.await_client_cn("/admin/", Some(CLIENT_CN));

    let seen = |path: &str, host: &str| {
        let response = stack.get_from_host(path, host);
        match response.status {
            200 => json_field(&response, "path").as_str().unwrap_or_default().to_owned(),
            status => format!("HTTP {status}"),
        }
    };
    assert_eq!(seen("/host/", &format!("API.Example.COM:{}", stack.listener().port())), "/exact/");
    assert_eq!(seen("/host/", "api.example.com:80"), "/exact/");
    assert_eq!(seen("/host/", "www.EXAMPLE.com"), "/wildcard/");
    assert_eq!(seen("/host/", "example.org"), "HTTP 404");
    assert_eq!(seen("/api/../admin/x", "e2e.test"), "/admin-upstream/x");
    assert_eq!(seen("/api/%2e%2e/admin/x", "e2e.test"), "/admin-upstream/x");
    assert_eq!(seen("//admin/x", "e2e.test"), "/admin-upstream/x");
    assert_eq!(seen("/api/x", "e2e.test"), "/api-upstream/x");
    stack.finish();
}

/// Two TLSContexts whose names differ only in `-` and `.` (`up-a`, `up.a`) and the same service:
/// Emissary names both clusters `cluster_localhost_<port>_otls_up_a_default` and presents the
/// first context's certificate for both. Here each Mapping's upstream sees its own certificate.
fn colliding_cluster_names_keep_their_targets(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let mut stack = Stack::prepare(mode, "collision");
    stack.observe(&upstream);
    let service = format!("localhost:{}", upstream.port());
    stack.write_config(
        "collision.yaml",
        &(tls_context_from_secret("up-a", "certs-a")
            + &tls_context_from_secret("up.a", "certs-b")
            + &mapping("with-dash", "/dash/", &service, Some("up-a"))
            + &mapping("with-dot", "/dot/", &service, Some("up.a"))),
    );
    stack.write_config("certs-a.yaml", &tls_secret("certs-a", "client"));
    stack.write_config("certs-b.yaml", &tls_secret("certs-b", "client2"));
    stack.start();
    stack.await_client_cn("/dash/", Some(CLIENT_CN));
    stack.await_client_cn("/dot/", Some(ROTATED_CN));
    // Stats are kept under the service's name (`alt_stat_name`, as Emissary names them); the
    // clusters themselves are two.
    let clusters: Vec<String> =
        stack.envoy_clusters().into_iter().filter(|name| name.starts_with("cluster_localhost")).collect();
    assert_eq!(clusters.len(), 2, "one cluster per target: {clusters:?}");
    stack.finish();
}

// ---- 10. inputs as Kubernetes lays them out ----

/// The config directory is a ConfigMap volume (keys as symlinks into `..data`, swapped by one
/// rename as kubelet does): every resource is loaded once (no duplicate-name diagnostics), and
/// each swap, however many files it touches, is one reload with the new content.
fn config_map_swaps_reload_once_with_each_resource_once(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let mut stack = Stack::prepare(mode, "config-map");
    stack.observe(&upstream);
    let service = format!("localhost:{}", upstream.port());
    let seed = tls_context_from_secret("upstream-context", "upstream-certs")
        + &mapping("upstream-mapping", "/upstream/", &service, Some("upstream-context"));
    let secret = tls_secret("upstream-certs", "client");
    stack.swap_config_map(&[("mtls.yaml", &seed), ("secret.yaml", &secret)]);
    stack.start();
    stack.await_client_cn("/upstream/", Some(CLIENT_CN));

    for (round, prefix) in ["/first/", "/second/", "/third/"].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(300)); // any reload still due has happened
        let before = stack.publications();
        stack.mark_control_plane_log(&format!("ConfigMap swap {round}"));
        let moved = mapping(&format!("moved-{round}"), prefix, &service, Some("upstream-context"));
        // The Mapping moves to a new key; the old key disappears in the same swap.
        stack.swap_config_map(&[
            ("mtls.yaml", &seed),
            (&format!("key-{round}.yaml"), &moved),
            ("secret.yaml", &secret),
        ]);
        stack.await_client_cn(prefix, Some(CLIENT_CN));
        std::thread::sleep(Duration::from_millis(800)); // past the debounce's maximum delay
        let after = stack.publications();
        if after != before + 1 {
            stack.fail(&format!("swap {round}: {} publications, expected exactly one", after - before));
        }
        if round > 0 {
            stack.await_status(["/first/", "/second/"][round - 1], 404);
        }
    }
    let log = stack.control_plane_log();
    for unexpected in ["duplicate name", "..data", "..2026"] {
        if log.contains(unexpected) {
            stack.fail(&format!("the control-plane log mentions {unexpected:?}"));
        }
    }
    stack.finish();
}

/// Rotation tools that write the certificate and the key one after the other (with a reload in
/// between, since they are slower than the debounce), for cert files and for a Secret: not one
/// request fails, the old certificate stays in use while the halves do not match, and the new one
/// is used once both are written.
fn certificates_rotated_one_file_at_a_time_never_fail_a_request(mode: Mode) {
    let upstream = mtls_upstream("upstream");
    let mut stack = Stack::prepare(mode, "non-atomic-rotation");
    stack.observe(&upstream);
    write_seed_config(&stack, &upstream, "client");
    let cert = stack.install_cert("client.crt", "tls.crt");
    let key = stack.install_cert("client.key", "tls.key");
    let ca = stack.install_cert("ca.crt", "ca.crt");
    let service = format!("localhost:{}", upstream.port());
    stack.write_config(
        "files.yaml",
        &(tls_context_from_files("from-files", &cert, &key, &ca)
            + &mapping("files", "/files/", &service, Some("from-files"))),
    );
    stack.start();
    stack.await_client_cn("/upstream/", Some(CLIENT_CN));
    stack.await_client_cn("/files/", Some(CLIENT_CN));
    let secret_loop = RequestLoop::start(stack.listener(), "/upstream/", Duration::from_millis(20));
    let files_loop = RequestLoop::start(stack.listener(), "/files/", Duration::from_millis(20));

    stack.mark_control_plane_log("certificate file first");
    stack.overwrite_file("tls.crt", "client2.crt");
    let half = tls_secret("upstream-certs", "client2").replace(
        &base64::engine::general_purpose::STANDARD.encode(cert_file("client2.key")),
        &base64::engine::general_purpose::STANDARD.encode(cert_file("client.key")),
    );
    stack.write_config("secret.yaml", &half);
    stack.eventually("the mismatch is reported and the last good material kept", || {
        let log = stack.control_plane_log();
        match log.matches("serving this context's last good certificate").count() {
            2.. => Ok(()),
            n => Err(format!("{n} stale-material warnings so far")),
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    stack.mark_control_plane_log("then the key");
    stack.overwrite_file("tls.key", "client2.key");
    stack.write_config("secret.yaml", &tls_secret("upstream-certs", "client2"));
    stack.await_client_cn("/files/", Some(ROTATED_CN));
    stack.await_client_cn("/upstream/", Some(ROTATED_CN));
    std::thread::sleep(Duration::from_millis(300));

    for (what, samples) in [("/upstream/ (Secret)", secret_loop.stop()), ("/files/ (files)", files_loop.stop())] {
        assert_all_ok(&stack, &samples, &format!("{what} during a rotation one half at a time"));
        let cns: Vec<Option<&str>> = samples.iter().map(|sample| sample.client_cn.as_deref()).collect();
        let first_rotated = cns.iter().position(|cn| *cn == Some(ROTATED_CN)).unwrap_or(cns.len());
        assert!(cns[..first_rotated].iter().all(|cn| *cn == Some(CLIENT_CN)), "{what}: {cns:?}");
        assert!(cns[first_rotated..].iter().all(|cn| *cn == Some(ROTATED_CN)), "{what}: {cns:?}");
    }
    stack.finish();
}
