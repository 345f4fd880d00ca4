//! `ambassador-xds consul-connect` as a child process against a fake Consul agent and a fake
//! Kubernetes API server: its kubeconfig, environment (as the seed documents it), free admin
//! port, log, and bounded waits that show the log when they run out.

use crate::harness::http::{self, eventually, Response};
use crate::harness::process::{free_port, localhost, log_tail, read_log, Process};
use crate::k8s::api::FakeKube;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub const NAMESPACE: &str = "ambassador";
pub const SECRET: &str = "ambassador-consul-connect";

pub struct Connector {
    pub identity: String,
    admin: SocketAddr,
    log: PathBuf,
    process: Option<Process>,
    _dir: tempfile::TempDir,
}

impl Connector {
    /// Starts a replica named `identity`, with a lease of `lease_s` seconds and `env` on top of
    /// `_CONSUL_HOST`, `_CONSUL_PORT` and `_AMBASSADOR_TLS_SECRET_NAMESPACE`.
    pub fn start(identity: &str, api: &FakeKube, consul_port: u16, lease_s: u64, env: &[(&str, &str)]) -> Connector {
        let dir = tempfile::Builder::new().prefix(&format!("ambassador-xds-connector-{identity}-")).tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        api.write_kubeconfig(&kubeconfig);
        let admin = localhost(free_port());
        let log = dir.path().join("connector.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"));
        command
            .arg("consul-connect")
            .args(["--admin-address", &admin.to_string()])
            .args(["--lease-duration-s", &lease_s.to_string()])
            // Short blocking queries, so a test sees every answer promptly after an outage.
            .args(["--consul-wait-s", "5"])
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .env("NO_COLOR", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("RUST_LOG", "info")
            .env("POD_NAME", identity)
            .env("_CONSUL_HOST", "127.0.0.1")
            .env("_CONSUL_PORT", consul_port.to_string())
            .env("_AMBASSADOR_TLS_SECRET_NAMESPACE", NAMESPACE);
        for key in [
            "KUBERNETES_SERVICE_HOST",
            "KUBERNETES_SERVICE_PORT",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "CONSUL_HTTP_TOKEN",
            "_AMBASSADOR_ID",
        ] {
            command.env_remove(key);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let process = Process::spawn("ambassador-xds consul-connect", command, &log).unwrap();
        let connector = Connector { identity: identity.to_owned(), admin, log, process: Some(process), _dir: dir };
        connector.eventually("its /healthz answers", Duration::from_secs(20), || {
            http::get(admin, "/healthz").map(|_| ()).map_err(|e| e.to_string())
        });
        connector
    }

    pub fn get(&self, path: &str) -> Result<Response, String> {
        http::get(self.admin, path).map_err(|err| format!("{path}: {err}"))
    }

    /// `/readyz`: status and body.
    pub fn readyz(&self) -> (u16, String) {
        match self.get("/readyz") {
            Ok(response) => (response.status, response.text()),
            Err(err) => (0, err),
        }
    }

    /// One metric's value (`name{labels}` as printed).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").ok()?.text();
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM; whether it exited within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut process) = self.process.take() else { return true };
        process.signal(libc::SIGTERM);
        let exited = process.wait_timeout(timeout).is_some();
        process.kill();
        exited
    }

    /// Polls `attempt` until it succeeds; panics with the log tail when `timeout` runs out.
    pub fn eventually<T>(&self, what: &str, timeout: Duration, attempt: impl FnMut() -> Result<T, String>) -> T {
        eventually(timeout, Duration::from_millis(50), attempt).unwrap_or_else(|err| {
            panic!("[{}] {what}: {err}\n----- log -----\n{}", self.identity, log_tail(&self.log, 40))
        })
    }
}
