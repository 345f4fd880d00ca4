//! `ambassador-xds serve --kubernetes` against a [`FakeKube`], and optionally a real Envoy
//! bootstrapped to it: a temporary directory (kubeconfig, optional `--config-dir`, logs), free
//! ports, the admin endpoint and its `/snapshot` parsed.
//!
//! Every wait is bounded; when one runs out, or anything else panics while a `Serve` is alive,
//! the failure shows the tails of serve's log (and Envoy's), the fake API server's last requests,
//! and keeps the temporary directory.

use super::api::{ApiObserver, FakeKube};
use crate::harness::http::{self, eventually, Response};
use crate::harness::process::{self, free_port, localhost, log_tail, read_log, Process};
use crate::harness::upstream::{Observer, Upstream};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// How long serve may take to become ready once the API answers.
pub const READY: Duration = Duration::from_secs(20);
/// How long a change in the API may take to show in `/snapshot` (a watch restart costs kube-rs'
/// backoff: 0.8 s doubling, with jitter).
pub const CHANGE: Duration = Duration::from_secs(15);
/// After an API outage, the backoff may have grown to several seconds.
pub const RECOVERY: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const ENVOY_LIVE: Duration = Duration::from_secs(30);

pub struct Serve {
    name: String,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    kubeconfig: PathBuf,
    config_dir: Option<PathBuf>,
    namespaces: Vec<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    xds: SocketAddr,
    admin: SocketAddr,
    listener: SocketAddr,
    envoy_admin: SocketAddr,
    process: Option<Process>,
    envoy: Option<Process>,
    log: PathBuf,
    envoy_log: PathBuf,
    api: ApiObserver,
    upstreams: RefCell<Vec<Observer>>,
    reported: Cell<bool>,
}

impl Serve {
    /// A scenario against `api`: its kubeconfig written, nothing started.
    pub fn new(name: &str, api: &FakeKube) -> Serve {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ambassador-xds-kube-{name}-"))
            .tempdir()
            .expect("creating a temporary directory");
        let root = dir.path().to_owned();
        let kubeconfig = root.join("kubeconfig.yaml");
        api.write_kubeconfig(&kubeconfig);
        Serve {
            name: name.to_owned(),
            kubeconfig,
            config_dir: None,
            namespaces: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
            xds: localhost(free_port()),
            admin: localhost(free_port()),
            listener: localhost(free_port()),
            envoy_admin: localhost(free_port()),
            process: None,
            envoy: None,
            log: root.join("serve.log"),
            envoy_log: root.join("envoy.log"),
            root,
            dir: Some(dir),
            api: api.observer(),
            upstreams: RefCell::new(Vec::new()),
            reported: Cell::new(false),
        }
    }

    /// `--namespace NS` (repeatable).
    pub fn namespace(mut self, namespace: &str) -> Serve {
        self.namespaces.push(namespace.to_owned());
        self
    }

    /// Also `--config-dir` (an empty directory, see [`Serve::write_config`]).
    pub fn with_config_dir(mut self) -> Serve {
        let config_dir = self.root.join("config");
        std::fs::create_dir_all(&config_dir).expect("creating the config dir");
        self.config_dir = Some(config_dir);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Serve {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Serve {
        self.args.push(arg.to_owned());
        self
    }

    pub fn write_config(&self, relative: &str, contents: &str) {
        let dir = self.config_dir.as_ref().unwrap_or_else(|| self.fail("no --config-dir (use with_config_dir)"));
        std::fs::write(dir.join(relative), contents).expect("writing config");
    }

    /// Failure messages will include what `upstream` saw.
    pub fn observe(&self, upstream: &Upstream) {
        self.upstreams.borrow_mut().push(upstream.observer());
    }

    /// Starts serve and waits for `/readyz` 200.
    pub fn start(&mut self) {
        self.spawn();
        self.await_ready(READY);
    }

    /// Starts serve and waits until its admin endpoint answers `/healthz` (not for readiness).
    pub fn spawn(&mut self) {
        assert!(self.process.is_none(), "serve is already running");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"));
        command
            .args(["serve", "--kubernetes"])
            .args(["--xds-address", &self.xds.to_string()])
            .args(["--admin-address", &self.admin.to_string()])
            .args(["--listener-port", &self.listener.port().to_string()]);
        for namespace in &self.namespaces {
            command.args(["--namespace", namespace]);
        }
        if let Some(config_dir) = &self.config_dir {
            command.arg("--config-dir").arg(config_dir);
        }
        command.args(&self.args);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.root)
            .env("NO_COLOR", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("AMBASSADOR_ID");
        // Neither in-cluster configuration nor a proxy may get in the way of the kubeconfig.
        for key in ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            command.env_remove(key).env_remove(key.to_ascii_lowercase());
        }
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let process = Process::spawn("ambassador-xds serve --kubernetes", command, &self.log)
            .unwrap_or_else(|err| self.fail(&err));
        self.process = Some(process);
        let admin = self.admin;
        self.wait_alive("serve's /healthz answers 200", READY, || {
            let response = http::get(admin, "/healthz").map_err(|err| format!("/healthz: {err}"))?;
            match response.status {
                200 => Ok(()),
                _ => Err(format!("/healthz: {}", response.summary())),
            }
        });
    }

    pub fn await_ready(&mut self, timeout: Duration) {
        let admin = self.admin;
        self.wait_alive("serve's /readyz answers 200", timeout, || {
            let response = http::get(admin, "/readyz").map_err(|err| format!("/readyz: {err}"))?;
            match response.status {
                200 => Ok(()),
                _ => Err(format!("/readyz: {}", response.summary())),
            }
        });
    }

    /// Polls `ready` until it succeeds; fails at once if serve exits meanwhile.
    fn wait_alive(&mut self, what: &str, timeout: Duration, ready: impl Fn() -> Result<(), String>) {
        let result = eventually(timeout, POLL_INTERVAL, || {
            if let Some(status) = self.process.as_mut().and_then(Process::exited) {
                return Ok(Err(format!("serve exited with {status}")));
            }
            ready().map(Ok)
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(exited)) => self.fail(&format!("{what}: {exited}")),
            Err(err) => self.fail(&format!("{what}: {err}")),
        }
    }

    /// Fails unless serve is still running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.process.as_mut().and_then(Process::exited) {
            self.fail(&format!("serve exited with {status}"));
        }
    }

    pub fn admin_get(&self, path: &str) -> Response {
        http::get(self.admin, path).unwrap_or_else(|err| self.fail(&format!("GET {path} on serve's admin: {err}")))
    }

    pub fn readyz(&self) -> u16 {
        self.admin_get("/readyz").status
    }

    /// `/snapshot`, parsed.
    pub fn snapshot(&self) -> Snapshot {
        let response = self.admin_get("/snapshot");
        if response.status != 200 {
            self.fail(&format!("/snapshot: {}", response.summary()));
        }
        Snapshot(response.json().unwrap_or_else(|err| self.fail(&format!("/snapshot: {err}"))))
    }

    /// `/snapshot` as text (for checks on what it must not contain).
    pub fn snapshot_text(&self) -> String {
        self.admin_get("/snapshot").text()
    }

    /// Polls `/snapshot` until `check` accepts it; returns what `check` returned.
    pub fn await_snapshot<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Snapshot) -> Result<T, String>,
    ) -> T {
        let result = eventually(timeout, POLL_INTERVAL, || {
            let response = http::get(self.admin, "/snapshot").map_err(|err| format!("/snapshot: {err}"))?;
            if response.status != 200 {
                return Err(format!("/snapshot: {}", response.summary()));
            }
            let snapshot = Snapshot(response.json()?);
            check(&snapshot).map_err(|err| format!("{err}\n  snapshot: {}", snapshot.summary()))
        });
        result.unwrap_or_else(|err| self.fail(&format!("{what}: {err}")))
    }

    /// Polls `attempt` until it succeeds; fails the test with the logs when `timeout` runs out.
    pub fn eventually<T>(&self, what: &str, timeout: Duration, attempt: impl FnMut() -> Result<T, String>) -> T {
        eventually(timeout, POLL_INTERVAL, attempt).unwrap_or_else(|err| self.fail(&format!("{what}: {err}")))
    }

    /// Waits for `/snapshot` to have route `name` (in `ambassador-routes`) and returns it.
    pub fn await_route(&self, name: &str) -> Value {
        self.await_snapshot(&format!("route {name} appears"), CHANGE, |snapshot| {
            snapshot.route(name).ok_or_else(|| format!("no route {name}"))
        })
    }

    pub fn await_no_route(&self, name: &str) {
        self.await_snapshot(&format!("route {name} goes away"), CHANGE, |snapshot| match snapshot.route(name) {
            Some(_) => Err(format!("route {name} is still there")),
            None => Ok(()),
        });
    }

    /// Waits for route `name` to match `prefix`.
    pub fn await_route_prefix(&self, name: &str, prefix: &str) -> Value {
        self.await_snapshot(&format!("route {name} has prefix {prefix}"), CHANGE, |snapshot| {
            let route = snapshot.route(name).ok_or_else(|| format!("no route {name}"))?;
            match route["match"]["prefix"].as_str() {
                Some(found) if found == prefix => Ok(route),
                found => Err(format!("route {name} has prefix {found:?}")),
            }
        })
    }

    /// Waits for SDS secret `name` to hold a certificate with CN `cn`.
    pub fn await_secret_cn(&self, name: &str, cn: &str) {
        self.await_snapshot(&format!("secret {name} holds CN {cn}"), CHANGE, |snapshot| {
            match snapshot.secret_cn(name)? {
                found if found == cn => Ok(()),
                found => Err(format!("secret {name} holds CN {found}")),
            }
        });
    }

    /// serve's output so far, without colour codes.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Adds a line to serve's log, to mark where a step began.
    pub fn mark(&self, note: &str) {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = writeln!(file, "===== test: {note} =====");
        }
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    // ---- Envoy ----

    /// A real Envoy (SotW ADS) bootstrapped by `ambassador-xds bootstrap` to this serve; waits for LIVE.
    pub fn start_envoy(&mut self) {
        let yaml = process::bootstrap(self.xds, &format!("kube-{}", self.name), self.envoy_admin.port(), false)
            .unwrap_or_else(|err| self.fail(&format!("ambassador-xds bootstrap: {err}")));
        let bootstrap = self.root.join("bootstrap.yaml");
        std::fs::write(&bootstrap, &yaml).expect("writing the bootstrap");
        let envoy = process::spawn_envoy(&bootstrap, &self.envoy_log).unwrap_or_else(|err| self.fail(&err));
        self.envoy = Some(envoy);
        let admin = self.envoy_admin;
        let result = eventually(ENVOY_LIVE, POLL_INTERVAL, || {
            if let Some(status) = self.envoy.as_mut().and_then(Process::exited) {
                return Ok(Err(format!("envoy exited with {status}")));
            }
            let response = http::get(admin, "/ready").map_err(|err| format!("Envoy admin /ready: {err}"))?;
            match (response.status, response.text().trim()) {
                (200, "LIVE") => Ok(Ok(())),
                _ => Err(format!("Envoy admin /ready: {}", response.summary())),
            }
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(exited)) => self.fail(&exited),
            Err(err) => self.fail(&format!("Envoy not LIVE: {err}")),
        }
    }

    /// Envoy's HTTP listener (`--listener-port`).
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    pub fn envoy_pid(&self) -> Option<u32> {
        self.envoy.as_ref().and_then(Process::pid)
    }

    /// Polls `GET path` through Envoy until it answers 200 from an upstream that saw client CN `cn`.
    pub fn await_client_cn(&self, path: &str, cn: &str) -> Response {
        let result = eventually(CHANGE, POLL_INTERVAL, || {
            let response = http::get(self.listener, path).map_err(|err| err.to_string())?;
            match response.client_cn() {
                Ok(Some(seen)) if response.status == 200 && seen == cn => Ok(response),
                _ => Err(response.summary()),
            }
        });
        result.unwrap_or_else(|err| self.fail(&format!("GET {path} through Envoy, expecting client CN {cn}: {err}")))
    }

    /// Envoy's numeric stats matching the regex `filter`.
    pub fn envoy_stats(&self, filter: &str) -> BTreeMap<String, u64> {
        http::envoy_stats(self.envoy_admin, filter).unwrap_or_else(|err| self.fail(&err))
    }

    /// Every `*.update_rejected` counter is 0 (and the CDS and LDS ones exist).
    pub fn assert_no_rejected_updates(&self) {
        let stats = self.envoy_stats("update_rejected");
        if let Err(err) = http::check_no_rejected_updates(&stats) {
            self.fail(&err);
        }
    }

    // ---- failure reporting ----

    fn logs(&self) -> String {
        let upstreams: String =
            self.upstreams.borrow().iter().map(|upstream| format!("\n{}", upstream.describe())).collect();
        let mut text = format!(
            "{upstreams}\n----- {} -----\n----- serve log ({}), last lines -----\n{}",
            self.api.describe(30),
            self.log.display(),
            log_tail(&self.log, 60),
        );
        if self.envoy.is_some() {
            text.push_str(&format!(
                "\n----- envoy log ({}), last lines -----\n{}",
                self.envoy_log.display(),
                log_tail(&self.envoy_log, 40)
            ));
        }
        text.push_str("\n-----");
        text
    }

    /// Panics with `message`, the log tails and the fake API server's last requests.
    pub fn fail(&self, message: &str) -> ! {
        self.reported.set(true);
        panic!("[{}] {message}{}", self.name, self.logs());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking && !self.reported.get() {
            eprintln!("[{}] test failed; logs:{}", self.name, self.logs());
        }
        self.envoy.take();
        self.process.take();
        if let Some(dir) = self.dir.take() {
            if panicking {
                eprintln!("[{}] kept {}", self.name, dir.keep().display());
            }
        }
    }
}

/// `/snapshot`: `{"clusters":[...],"listeners":[...],"routes":[...],"secrets":[...]}` (a type
/// with nothing in it may be absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot(pub Value);

impl Snapshot {
    pub fn resources(&self, kind: &str) -> Vec<Value> {
        self.0.get(kind).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    pub fn names(&self, kind: &str) -> Vec<String> {
        self.resources(kind).iter().filter_map(|resource| resource["name"].as_str().map(str::to_owned)).collect()
    }

    pub fn named(&self, kind: &str, name: &str) -> Option<Value> {
        self.resources(kind).into_iter().find(|resource| resource["name"] == name)
    }

    pub fn cluster(&self, name: &str) -> Option<Value> {
        self.named("clusters", name)
    }

    pub fn secret(&self, name: &str) -> Option<Value> {
        self.named("secrets", name)
    }

    /// Every route of every route configuration and virtual host, in order.
    pub fn routes(&self) -> Vec<Value> {
        self.resources("routes")
            .iter()
            .flat_map(|config| config["virtual_hosts"].as_array().cloned().unwrap_or_default())
            .flat_map(|host| host["routes"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The routes' names, without Emissary's probe routes (which every configuration has).
    pub fn route_names(&self) -> Vec<String> {
        self.routes()
            .iter()
            .filter_map(|route| route["name"].as_str().map(str::to_owned))
            .filter(|name| !name.contains("/internal_"))
            .collect()
    }

    pub fn route(&self, name: &str) -> Option<Value> {
        self.routes().into_iter().find(|route| route["name"] == name)
    }

    /// The CN of the certificate in SDS secret `name`.
    pub fn secret_cn(&self, name: &str) -> Result<String, String> {
        let secret = self.secret(name).ok_or_else(|| format!("no secret {name}"))?;
        let pem = secret["tls_certificate"]["certificate_chain"]["inline_string"]
            .as_str()
            .ok_or_else(|| format!("secret {name} has no inline certificate chain: {secret}"))?;
        certificate_cn(pem.as_bytes())
    }

    /// Resource names by type and route names, for failure messages.
    pub fn summary(&self) -> String {
        let types: Vec<String> =
            ["clusters", "listeners", "secrets"].iter().map(|kind| format!("{kind} {:?}", self.names(kind))).collect();
        format!("{}, routes {:?}", types.join(", "), self.route_names())
    }
}

/// The CN of the first certificate in a PEM text.
pub fn certificate_cn(pem: &[u8]) -> Result<String, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|err| format!("not a PEM certificate: {err}"))?;
    let cert = pem.parse_x509().map_err(|err| format!("not an X.509 certificate: {err}"))?;
    let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
    cn.ok_or_else(|| "certificate without CN".to_owned())
}

/// A path inside the crate, for reading test certificates.
pub fn cert_path(file: &str) -> PathBuf {
    crate::support::manifest_dir().join("testdata/certs").join(file)
}

pub fn read_cert(file: &str) -> Vec<u8> {
    let path = cert_path(file);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}
