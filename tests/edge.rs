//! End to end at the edge: `ambassador-xds serve`, a real Envoy, and curl/openssl clients (`--resolve`,
//! SNI, client certificates) against the HTTPS front door the Listener, Host and TLSContext
//! resources describe, in front of a TLS upstream that reports what it saw. Every scenario runs
//! once per ADS flavour and ends by checking that Envoy rejected no update.
//!
//! Needs Envoy (`$ENVOY_BIN`, the project's `.venv`, or `envoy` on `PATH`), curl and openssl.

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)]
mod harness;
#[path = "support/e2e/https.rs"]
mod https;

use base64::Engine as _;
use harness::process::{free_port, localhost};
use harness::stack::{Mode, Stack};
use harness::upstream::{ClientAuth, ServerCert, Upstream};
use https::{curl, server_certificate_cn, Request, TlsLoop};
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
    the_edge_example_serves_https_by_sni_with_client_certificates,
    tls_that_cannot_be_served_fails_closed_for_its_name_only,
    server_certificate_rotation_fails_no_request_and_drains_no_listener,
);

/// The ports of one scenario's Listeners.
struct Ports {
    http: u16,
    https: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports { http: free_port(), https: free_port() }
    }
}

fn b64(file: &str) -> String {
    let path = support::manifest_dir().join("testdata/certs").join(file);
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(&path).unwrap())
}

fn tls_secret(name: &str, cert: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&format!("{cert}.crt")),
        b64(&format!("{cert}.key"))
    )
}

fn listeners(ports: &Ports) -> String {
    let listener = |name: &str, port: u16, protocol: &str| {
        format!("---\napiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: {name}}}\nspec: {{port: {port}, protocol: {protocol}, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n")
    };
    listener("http", ports.http, "HTTP") + &listener("https", ports.https, "HTTPS")
}

fn host(name: &str, hostname: &str, secret: &str, insecure: &str) -> String {
    format!("---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: {name}}}\nspec: {{hostname: {hostname}, tlsSecret: {{name: {secret}}}, requestPolicy: {{insecure: {{action: {insecure}}}}}}}\n")
}

fn backend_mapping(upstream: &Upstream) -> String {
    format!("---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: backend}}\nspec: {{hostname: \"*\", prefix: /backend/, service: \"https://localhost:{}\"}}\n", upstream.port())
}

/// `examples/edge/` as a user would deploy it, on this scenario's ports and upstream.
fn write_edge_example(stack: &Stack, ports: &Ports, upstream: &Upstream) {
    let dir = support::manifest_dir().join("examples/edge");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("port: 8080", &format!("port: {}", ports.http))
            .replace("port: 8443", &format!("port: {}", ports.https))
            .replace("service: quote", &format!("service: https://localhost:{}", upstream.port()));
        stack.write_config(path.file_name().unwrap().to_str().unwrap(), &text);
    }
}

fn started(mut stack: Stack) -> Stack {
    stack.start();
    stack
}

/// Polls until `request` gets `status`.
fn await_status(stack: &Stack, request: &Request<'_>, status: u16) -> https::Reply {
    stack.eventually(&format!("{request:?} answers {status}"), || match curl(request) {
        Ok(reply) if reply.status == status => Ok(reply),
        Ok(reply) => Err(format!("HTTP {}: {}", reply.status, reply.body)),
        Err(err) => Err(err),
    })
}

fn refused(stack: &Stack, request: &Request<'_>) -> String {
    match curl(request) {
        Err(err) => err,
        Ok(reply) => stack.fail(&format!("{request:?} was answered: HTTP {} {}", reply.status, reply.body)),
    }
}

// ---- 1. the edge example: Hosts by SNI, cleartext policies, client certificates ----

/// `examples/edge` (Emissary's quick-start Listeners, two Hosts, a TLSContext requiring client
/// certificates, the Module forwarding the client's identity): each SNI gets its own
/// certificate; a.example.com over HTTPS is routed and over cleartext redirected (301);
/// b.example.com refuses clients without a certificate, with one another CA signed, or with a
/// revoked one, and forwards the verified subject (not a client-sent header) upstream; its
/// cleartext requests are rejected (404).
fn the_edge_example_serves_https_by_sni_with_client_certificates(mode: Mode) {
    let upstream = Upstream::start("backend", ServerCert::Upstream, ClientAuth::Optional);
    let ports = Ports::new();
    let stack = Stack::prepare(mode, "edge-example");
    stack.observe(&upstream);
    write_edge_example(&stack, &ports, &upstream);
    let stack = started(stack);

    let a = Request::https(ports.https, "a.example.com", "/backend/hello");
    let reply = await_status(&stack, &a, 200);
    assert_eq!(reply.json()["path"], "/hello", "{}", reply.body);
    assert_eq!(reply.json()["xfp"], "https", "{}", reply.body);
    assert_eq!(server_certificate_cn(ports.https, "a.example.com").as_deref(), Ok("a.example.com"));
    assert_eq!(server_certificate_cn(ports.https, "b.example.com").as_deref(), Ok("b.example.com"));

    for port in [ports.http, ports.https] {
        let reply = curl(&Request::http(port, "a.example.com", "/backend/hello?x=1")).unwrap();
        assert_eq!(reply.status, 301, "cleartext on {port}: {}", reply.body);
        assert_eq!(reply.location.as_deref(), Some("https://a.example.com/backend/hello?x=1"));
        let reply = curl(&Request::http(port, "b.example.com", "/backend/hello")).unwrap();
        assert_eq!(reply.status, 404, "b.example.com rejects cleartext on {port}: {}", reply.body);
    }

    let b = Request::https(ports.https, "b.example.com", "/backend/who");
    let before = upstream.requests().len();
    let without = refused(&stack, &b);
    for stem in ["rogue-client", "revoked-client"] {
        let err = refused(&stack, &b.clone().with_certificate(stem));
        assert!(err.contains("curl exit"), "{stem}: {err}");
    }
    assert_eq!(upstream.requests().len(), before, "a refused client reached the upstream: {without}");

    let spoofed: &[&str] = &["x-forwarded-client-cert: By=spiffe://evil;Subject=\"CN=admin\""];
    let reply = await_status(&stack, &b.clone().with_certificate("client").with_headers(spoofed), 200);
    let xfcc = reply.json()["xfcc"].as_str().unwrap_or_default().to_owned();
    assert!(xfcc.contains("Subject=\"CN=envoy-client,O=ambassador-xds tests\""), "x-forwarded-client-cert: {xfcc}");
    assert!(!xfcc.contains("evil") && !xfcc.contains("CN=admin"), "the client's own header was forwarded: {xfcc}");
    // a.example.com asks for no certificate, and forwards none.
    assert_eq!(curl(&a).unwrap().json()["xfcc"], serde_json::Value::Null);
    stack.finish();
}

// ---- 2. fail closed for one name ----

/// A Host whose Secret does not exist: TLS handshakes for its name fail (rather than being
/// answered with another Host's certificate), its cleartext policy (Route) still applies, and the
/// other Host is served throughout. Creating the Secret brings its TLS up.
fn tls_that_cannot_be_served_fails_closed_for_its_name_only(mode: Mode) {
    let upstream = Upstream::start("backend", ServerCert::Upstream, ClientAuth::Optional);
    let ports = Ports::new();
    let stack = Stack::prepare(mode, "edge-fail-closed");
    stack.observe(&upstream);
    stack.write_config("listeners.yaml", &listeners(&ports));
    stack.write_config(
        "hosts.yaml",
        &(host("a", "a.example.com", "a-cert", "Redirect")
            + &host("b", "b.example.com", "b-cert", "Route")
            + &host("wildcard", "\"*.example.com\"", "wildcard-cert", "Route")),
    );
    stack.write_config(
        "secrets.yaml",
        &(tls_secret("a-cert", "a-example") + &tls_secret("wildcard-cert", "wildcard-example")),
    );
    stack.write_config("mapping.yaml", &backend_mapping(&upstream));
    let stack = started(stack);

    await_status(&stack, &Request::https(ports.https, "a.example.com", "/backend/"), 200);
    let b = Request::https(ports.https, "b.example.com", "/backend/");
    let err = refused(&stack, &b);
    assert!(server_certificate_cn(ports.https, "b.example.com").is_err(), "b.example.com got a certificate: {err}");
    // Another name under the wildcard is served with the wildcard's certificate; b.example.com is not.
    assert_eq!(server_certificate_cn(ports.https, "c.example.com").as_deref(), Ok("wildcard.example.com"));
    let reply = curl(&Request::http(ports.http, "b.example.com", "/backend/")).unwrap();
    assert_eq!((reply.status, reply.json()["xfp"].as_str()), (200, Some("http")), "{}", reply.body);
    stack.eventually("the missing Secret is reported", || {
        let log = stack.control_plane_log();
        match log.contains("Host default/b: Secret default/b-cert not found") {
            true => Ok(()),
            false => Err("not logged".into()),
        }
    });

    stack.write_config("b-secret.yaml", &tls_secret("b-cert", "b-example"));
    await_status(&stack, &b, 200);
    assert_eq!(server_certificate_cn(ports.https, "b.example.com").as_deref(), Ok("b.example.com"));
    await_status(&stack, &Request::https(ports.https, "a.example.com", "/backend/"), 200);
    stack.finish();
}

// ---- 3. rotation ----

/// The server certificate rotated while an HTTPS request loop runs (a full handshake per
/// request): not one request fails, the new certificate is served from the first request after
/// it and the old one never again, and Envoy's listener manager counts nothing: only the SDS
/// Secret changed, no listener was modified or drained.
fn server_certificate_rotation_fails_no_request_and_drains_no_listener(mode: Mode) {
    let upstream = Upstream::start("backend", ServerCert::Upstream, ClientAuth::Optional);
    let ports = Ports::new();
    let stack = Stack::prepare(mode, "edge-rotation");
    stack.observe(&upstream);
    stack.write_config("listeners.yaml", &listeners(&ports));
    stack.write_config("host.yaml", &host("a", "a.example.com", "a-cert", "Redirect"));
    stack.write_config("secret.yaml", &tls_secret("a-cert", "a-example"));
    stack.write_config("mapping.yaml", &backend_mapping(&upstream));
    let stack = started(stack);
    await_status(&stack, &Request::https(ports.https, "a.example.com", "/backend/"), 200);

    let listener_manager = |stack: &Stack| stack.envoy_stats("^listener_manager\\.");
    let before = listener_manager(&stack);
    assert!(before.contains_key("listener_manager.listener_modified"), "{before:?}");
    let sds = |stack: &Stack| -> u64 { stack.envoy_stats("^sds\\..*\\.update_success$").values().sum() };
    let sds_before = sds(&stack);

    let requests = TlsLoop::start(localhost(ports.https), "a.example.com", "/backend/", Duration::from_millis(40));
    std::thread::sleep(Duration::from_millis(500));
    stack.mark_control_plane_log("rotating Secret a-cert");
    stack.write_config("secret.yaml", &tls_secret("a-cert", "a-example-rotated"));
    stack.eventually("the request loop sees the rotated certificate", || match requests.samples().last() {
        Some(sample) if matches!(&sample.result, Ok((_, cn)) if cn == "a.example.com rotated") => Ok(()),
        last => Err(format!("last sample {last:?}")),
    });
    std::thread::sleep(Duration::from_millis(500));
    let samples = requests.stop();

    let failed: Vec<String> = samples
        .iter()
        .filter(|s| !matches!(s.result, Ok((200, _))))
        .map(|s| format!("at {:?}: {:?}", s.at, s.result))
        .collect();
    if !failed.is_empty() || samples.is_empty() {
        let (count, total) = (failed.len(), samples.len());
        stack.fail(&format!("{count} of {total} requests failed during the rotation: {:?}", &failed[..count.min(5)]));
    }
    let cns: Vec<&str> = samples.iter().map(|s| s.result.as_ref().map(|(_, cn)| cn.as_str()).unwrap()).collect();
    let first_rotated = cns.iter().position(|cn| *cn == "a.example.com rotated").unwrap();
    assert!(first_rotated > 0, "no request before the rotation: {cns:?}");
    assert!(cns[..first_rotated].iter().all(|cn| *cn == "a.example.com"), "{cns:?}");
    assert!(
        cns[first_rotated..].iter().all(|cn| *cn == "a.example.com rotated"),
        "the old certificate came back: {cns:?}"
    );

    let after = listener_manager(&stack);
    if after != before {
        stack.fail(&format!("the rotation touched the listeners: before {before:?}, after {after:?}"));
    }
    assert!(sds(&stack) > sds_before, "no SDS update was counted");
    stack.finish();
}
