//! End to end, the Mapping, Module and TCPMapping fields through a real Envoy: redirects, headers
//! added and removed, retries (an upstream that fails once), CORS preflight, shadowing (the mirror
//! receives the request), websockets, gRPC's HTTP/2 upstream, error-response overrides, a refused
//! field failing closed, Emissary's probe routes answered by the admin endpoint, and a TCPMapping
//! on a port of its own. One stack (control plane, Envoy, upstreams) for all of them.
//!
//! Needs Envoy: `$ENVOY_BIN`, the project's `.venv` (`scripts/test`), or `envoy` on `PATH`.

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)] // each test binary uses part of the harness
mod harness;

use harness::http::{self, Response};
use harness::plain::{Behaviour, H2Upstream, HttpUpstream, TcpEcho};
use harness::process::{free_port, localhost};
use harness::stack::{Mode, Stack};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn mapping(name: &str, prefix: &str, port: u16, extra: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}}}\nspec:\n  prefix: {prefix}\n  service: localhost:{port}\n{extra}"
    )
}

struct World {
    main: HttpUpstream,
    fails_once: HttpUpstream,
    fails_once_too: HttpUpstream,
    mirror: HttpUpstream,
    h2: H2Upstream,
    echo: TcpEcho,
    tcp_port: u16,
}

fn config(world: &World) -> String {
    let main = world.main.port();
    [
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {name: ambassador}\nspec:\n  config:\n    error_response_overrides:\n    - {on_status_code: 404, body: {text_format: \"File not found\", content_type: text/plain}}\n".to_string(),
        mapping("redirect", "/redirect/", main, "  host_redirect: true\n").replace(&format!("localhost:{main}"), "example.com"),
        mapping("moved", "/moved/", main, "  host_redirect: true\n  path_redirect: /new-home\n  redirect_response_code: 302\n")
            .replace(&format!("localhost:{main}"), "example.com"),
        mapping(
            "headers",
            "/headers/",
            main,
            "  add_request_headers: {x-added: \"%PROTOCOL%\", x-static: {value: fixed, append: false}}\n  remove_request_headers: [x-remove-me]\n  add_response_headers: {x-resp-added: hello}\n  remove_response_headers: x-upstream-secret\n",
        ),
        mapping("retry", "/retry/", world.fails_once.port(), "  retry_policy: {retry_on: 5xx, num_retries: 2}\n"),
        mapping("no-retry", "/no-retry/", world.fails_once_too.port(), ""),
        mapping(
            "cors",
            "/cors/",
            main,
            "  cors: {origins: [http://allowed.example], methods: [GET, POST], headers: [x-custom], max_age: \"600\"}\n",
        ),
        mapping("shadowed", "/shadowed/", main, ""),
        mapping("shadow", "/shadowed/", world.mirror.port(), "  shadow: true\n"),
        mapping("websocket", "/ws/", main, "  allow_upgrade: [websocket]\n"),
        mapping("grpc", "/helloworld.Greeter/", world.h2.port(), "  grpc: true\n  rewrite: /helloworld.Greeter/\n"),
        mapping("refused", "/refused/", main, "  resolver: consul-dc1\n"),
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: TCPMapping\nmetadata: {{name: echo}}\nspec: {{port: {}, service: \"localhost:{}\"}}\n",
            world.tcp_port,
            world.echo.port()
        ),
    ]
    .concat()
}

fn request(stack: &Stack, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    http::request_with_headers(stack.listener(), method, path, headers)
        .unwrap_or_else(|err| stack.fail(&format!("{method} {path} through Envoy: {err}")))
}

fn check(stack: &Stack, ok: bool, what: &str, response: &Response) {
    if !ok {
        stack.fail(&format!("{what}: {} {:?}", response.summary(), response.headers));
    }
}

#[test]
fn fields_do_what_emissary_says_through_envoy() {
    let world = World {
        main: HttpUpstream::start(
            "main",
            Behaviour { status_on: Some(("/missing".into(), 404)), ..Default::default() },
        ),
        fails_once: HttpUpstream::start("fails-once", Behaviour { fail_first: 1, ..Default::default() }),
        fails_once_too: HttpUpstream::start("fails-once-too", Behaviour { fail_first: 1, ..Default::default() }),
        mirror: HttpUpstream::start("mirror", Behaviour::default()),
        h2: H2Upstream::start("h2"),
        echo: TcpEcho::start("echo"),
        tcp_port: free_port(),
    };
    let mut stack = Stack::prepare(Mode::Sotw, "fields");
    stack.write_config("fields.yaml", &config(&world));
    stack.start();
    // The last Mapping in the file serving means the whole configuration is in.
    stack.await_status("/helloworld.Greeter/SayHello", 200);

    // Redirects: to `service`, keeping the path, or to `path_redirect` with the code asked for.
    let response = request(&stack, "GET", "/redirect/x?y=1", &[]);
    let location = response.header("location").unwrap_or_default();
    check(
        &stack,
        response.status == 301 && location == "http://example.com/redirect/x?y=1",
        "host_redirect",
        &response,
    );
    let response = request(&stack, "GET", "/moved/old", &[]);
    let location = response.header("location").unwrap_or_default();
    check(&stack, response.status == 302 && location == "http://example.com/new-home", "path_redirect", &response);

    // Headers added and removed on the way in and out.
    let response = request(&stack, "GET", "/headers/", &[("x-remove-me", "1"), ("x-static", "client")]);
    let seen = world.main.requests().into_iter().rev().find(|s| s.path == "/").expect("the upstream saw /headers/");
    check(&stack, response.status == 200, "headers", &response);
    assert_eq!(seen.headers.get("x-added").map(String::as_str), Some("HTTP/1.1"), "{seen:?}");
    assert_eq!(seen.headers.get("x-static").map(String::as_str), Some("fixed"), "append: false overwrites: {seen:?}");
    assert!(!seen.headers.contains_key("x-remove-me"), "{seen:?}");
    check(&stack, response.header("x-resp-added") == Some("hello"), "add_response_headers", &response);
    check(&stack, response.header("x-upstream-secret").is_none(), "remove_response_headers", &response);

    // Retries: the first answer is a 503; with retry_on 5xx the client never sees it.
    let response = request(&stack, "GET", "/retry/", &[]);
    check(&stack, response.status == 200, "retry_policy", &response);
    assert_eq!(world.fails_once.requests().len(), 2, "one failure, one retry");
    let response = request(&stack, "GET", "/no-retry/", &[]);
    check(&stack, response.status == 503, "no retry_policy: the upstream's 503 reaches the client", &response);

    // CORS preflight, answered by Envoy for an allowed origin only.
    let preflight = |origin: &str| {
        let headers = [("origin", origin), ("access-control-request-method", "POST")];
        request(&stack, "OPTIONS", "/cors/", &headers)
    };
    let response = preflight("http://allowed.example");
    let allowed = response.header("access-control-allow-origin") == Some("http://allowed.example")
        && response.header("access-control-allow-methods") == Some("GET, POST")
        && response.header("access-control-max-age") == Some("600");
    check(&stack, response.status == 200 && allowed, "CORS preflight", &response);
    let response = preflight("http://evil.example");
    check(&stack, response.header("access-control-allow-origin").is_none(), "CORS: other origins", &response);

    // Shadowing: the mirror gets a copy of the request, the client the main upstream's answer.
    let response = request(&stack, "GET", "/shadowed/copy-me", &[]);
    check(&stack, response.status == 200 && response.text().contains("\"main\""), "shadowed route", &response);
    stack.eventually("the shadow receives the mirrored request", || {
        let seen = world.mirror.requests();
        seen.iter().any(|s| s.path == "/copy-me").then_some(()).ok_or_else(|| format!("mirror saw {seen:?}"))
    });

    // Websockets: the upgrade goes through, then bytes flow both ways.
    websocket_echo(&stack);

    // gRPC: the upstream is spoken to in HTTP/2.
    let response = request(&stack, "POST", "/helloworld.Greeter/SayHello", &[("content-type", "application/grpc")]);
    check(&stack, response.status == 200 && response.text().contains("HTTP/2.0"), "grpc: true", &response);
    assert_eq!(world.h2.requests().last().map(|s| s.version.as_str()), Some("HTTP/2.0"));

    // The Module's error response override replaces the upstream's 404 body.
    let response = request(&stack, "GET", "/headers/missing", &[]);
    check(&stack, response.status == 404 && response.text() == "File not found", "error_response_overrides", &response);

    // A refused field fails closed.
    let response = request(&stack, "GET", "/refused/", &[]);
    check(&stack, response.status == 503, "resolver (refused) fails closed", &response);

    // Emissary's probe routes reach the control plane's admin endpoint.
    let response = request(&stack, "GET", "/ambassador/v0/check_ready", &[]);
    check(&stack, response.status == 200 && response.text().contains("readiness check OK"), "check_ready", &response);
    let response = request(&stack, "GET", "/ambassador/v0/check_alive", &[]);
    check(&stack, response.status == 200, "check_alive", &response);

    // The TCPMapping relays bytes on its own port.
    let echoed = stack.eventually("the TCPMapping's listener relays bytes", || tcp_round_trip(world.tcp_port));
    assert_eq!(echoed, "ping\n");
    assert!(world.echo.connections() >= 1);
    stack.finish();
}

fn websocket_echo(stack: &Stack) {
    let mut tcp = TcpStream::connect_timeout(&stack.listener(), Duration::from_secs(2)).expect("connecting to Envoy");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let upgrade = "GET /ws/ HTTP/1.1\r\nhost: e2e.test\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n";
    tcp.write_all(upgrade.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        stack.fail(&format!("websocket upgrade: {head:?}"));
    }
    tcp.write_all(b"frames pass through").unwrap();
    let mut echoed = [0u8; 19];
    tcp.read_exact(&mut echoed).unwrap_or_else(|err| stack.fail(&format!("websocket echo: {err}")));
    assert_eq!(&echoed, b"frames pass through");
}

fn tcp_round_trip(port: u16) -> Result<String, String> {
    let mut tcp = TcpStream::connect_timeout(&localhost(port), Duration::from_secs(2)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    tcp.write_all(b"ping\n").map_err(|e| e.to_string())?;
    let mut echoed = [0u8; 5];
    tcp.read_exact(&mut echoed).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&echoed).into_owned())
}
