//! One scenario's world: a temporary config directory, `ambassador-xds serve` on it, and a real
//! Envoy bootstrapped (by `ambassador-xds bootstrap`) to take everything over ADS from it.
//!
//! Every wait is bounded; when one runs out, or anything else panics while a `Stack` is alive, the
//! tails of the control-plane and Envoy logs are shown and the temporary directory is kept.

use super::http::{self, envoy_stats, eventually, Response};
use super::process::{self, free_port, localhost, log_tail, read_log, Process};
use super::upstream::{Observer, Upstream};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// How long a configuration change may take to show in Envoy's behaviour.
pub const POLL: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const CONTROL_PLANE_READY: Duration = Duration::from_secs(20);
const ENVOY_LIVE: Duration = Duration::from_secs(30);

/// The ADS flavour Envoy is bootstrapped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// State of the world (`api_type: GRPC`).
    Sotw,
    /// Incremental (`api_type: DELTA_GRPC`, `bootstrap --delta`).
    Delta,
}

impl Mode {
    fn api_type(self) -> &'static str {
        match self {
            Mode::Sotw => "GRPC",
            Mode::Delta => "DELTA_GRPC",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Sotw => "sotw",
            Mode::Delta => "delta",
        })
    }
}

/// Which child a wait is for.
#[derive(Debug, Clone, Copy)]
enum Role {
    ControlPlane,
    Envoy,
}

/// Another `serve` process on the stack's configuration (see [`Stack::start_replica`]).
pub struct Replica {
    pub process: Process,
    pub xds: SocketAddr,
    pub admin: SocketAddr,
}

pub struct Stack {
    mode: Mode,
    name: String,
    dir: Option<tempfile::TempDir>,
    /// `--config-dir` of `serve`.
    config_dir: PathBuf,
    /// Where certificate files named by TLSContexts live (outside the config dir).
    files_dir: PathBuf,
    staging_dir: PathBuf,
    xds: SocketAddr,
    /// Where Envoy connects for xDS when not straight to `xds` (a proxy in front of replicas).
    envoy_xds: Option<SocketAddr>,
    admin: SocketAddr,
    envoy_admin: SocketAddr,
    listener: SocketAddr,
    control_plane: Option<Process>,
    envoy: Option<Process>,
    control_plane_log: PathBuf,
    envoy_log: PathBuf,
    upstreams: RefCell<Vec<Observer>>,
    staged: Cell<u64>,
    reported: Cell<bool>,
    /// More `serve` arguments.
    extra_args: Vec<String>,
}

impl Stack {
    /// Directories and ports, no processes yet: write the initial config, then [`Stack::start`].
    pub fn prepare(mode: Mode, name: &str) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ambassador-xds-e2e-{name}-{mode}-"))
            .tempdir()
            .expect("creating a temporary directory");
        let root = dir.path().to_owned();
        let [config_dir, files_dir, staging_dir] = ["config", "files", "staging"].map(|sub| root.join(sub));
        for sub in [&config_dir, &files_dir, &staging_dir] {
            std::fs::create_dir_all(sub).expect("creating the scenario directories");
        }
        Stack {
            mode,
            name: name.to_owned(),
            config_dir,
            files_dir,
            staging_dir,
            xds: localhost(free_port()),
            envoy_xds: None,
            admin: localhost(free_port()),
            envoy_admin: localhost(free_port()),
            listener: localhost(free_port()),
            control_plane: None,
            envoy: None,
            control_plane_log: root.join("control-plane.log"),
            envoy_log: root.join("envoy.log"),
            dir: Some(dir),
            upstreams: RefCell::new(Vec::new()),
            staged: Cell::new(0),
            reported: Cell::new(false),
            extra_args: Vec::new(),
        }
    }

    /// Another `serve` argument (before [`Stack::start`]).
    #[allow(dead_code)] // tests/consul.rs
    pub fn serve_arg(&mut self, arg: &str) {
        self.extra_args.push(arg.to_owned());
    }

    /// The Envoy admin address (`/clusters`, `/stats`).
    #[allow(dead_code)] // tests/consul.rs
    pub fn envoy_admin(&self) -> SocketAddr {
        self.envoy_admin
    }

    /// Failure messages will include what `upstream` saw.
    pub fn observe(&self, upstream: &Upstream) {
        self.upstreams.borrow_mut().push(upstream.observer());
    }

    fn root(&self) -> &Path {
        self.config_dir.parent().unwrap()
    }

    /// Starts `serve` (waits for `/readyz`), then Envoy on the generated bootstrap (waits for LIVE).
    pub fn start(&mut self) {
        self.start_control_plane();
        let node_id = format!("e2e-{}-{}", self.name, self.mode);
        let yaml = process::bootstrap(
            self.envoy_xds.unwrap_or(self.xds),
            &node_id,
            self.envoy_admin.port(),
            self.mode == Mode::Delta,
        )
        .unwrap_or_else(|err| self.fail(&format!("ambassador-xds bootstrap: {err}")));
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml)
            .unwrap_or_else(|err| self.fail(&format!("bootstrap output is not YAML ({err}):\n{yaml}")));
        let api_type = &parsed["dynamic_resources"]["ads_config"]["api_type"];
        if api_type.as_str() != Some(self.mode.api_type()) {
            self.fail(&format!(
                "bootstrap for {} mode has dynamic_resources.ads_config.api_type {api_type:?}, expected {}:\n{yaml}",
                self.mode,
                self.mode.api_type()
            ));
        }
        let bootstrap = self.root().join("bootstrap.yaml");
        std::fs::write(&bootstrap, &yaml).expect("writing the bootstrap");

        let envoy = process::spawn_envoy(&bootstrap, &self.envoy_log).unwrap_or_else(|err| self.fail(&err));
        self.envoy = Some(envoy);
        let admin = self.envoy_admin;
        self.wait_for_process(Role::Envoy, ENVOY_LIVE, || {
            let response = http::get(admin, "/ready").map_err(|err| format!("Envoy admin /ready: {err}"))?;
            match (response.status, response.text().trim()) {
                (200, "LIVE") => Ok(()),
                _ => Err(format!("Envoy admin /ready: {}", response.summary())),
            }
        });
    }

    /// Starts `serve` on this stack's ports (the same ones after a restart) and waits for `/readyz`.
    pub fn start_control_plane(&mut self) {
        assert!(self.control_plane.is_none(), "the control plane is already running");
        let process = process::spawn_control_plane(
            &self.config_dir,
            self.xds,
            self.admin,
            self.listener.port(),
            &self.extra_args,
            &self.control_plane_log,
        )
        .unwrap_or_else(|err| self.fail(&err));
        self.control_plane = Some(process);
        let admin = self.admin;
        self.wait_for_process(Role::ControlPlane, CONTROL_PLANE_READY, || {
            let response = http::get(admin, "/readyz").map_err(|err| format!("control plane /readyz: {err}"))?;
            match response.status {
                200 => Ok(()),
                _ => Err(format!("control plane /readyz: {}", response.summary())),
            }
        });
    }

    /// The control plane's xDS address.
    pub fn xds(&self) -> SocketAddr {
        self.xds
    }

    /// Envoy (once started) takes xDS from `address` instead of the control plane directly.
    pub fn connect_envoy_through(&mut self, address: SocketAddr) {
        self.envoy_xds = Some(address);
    }

    /// A second `serve` on the same directory and listener port, ready; it logs beside the first
    /// one. It has its own xDS and admin ports (one machine), and otherwise the same flags: the
    /// probe routes' `--diagnostics-service` (by default the admin address) names the first one's.
    pub fn start_replica(&mut self, name: &str) -> Replica {
        let (xds, admin) = (localhost(free_port()), localhost(free_port()));
        let log = self.root().join(format!("control-plane-{name}.log"));
        let mut same = self.extra_args.clone();
        same.extend(["--diagnostics-service".to_string(), self.admin.to_string()]);
        let process = process::spawn_control_plane(&self.config_dir, xds, admin, self.listener.port(), &same, &log)
            .unwrap_or_else(|err| self.fail(&err));
        let mut replica = Replica { process, xds, admin };
        let ready = eventually(CONTROL_PLANE_READY, POLL_INTERVAL, || {
            if let Some(status) = replica.process.exited() {
                return Ok(Err(format!("replica {name} exited with {status}")));
            }
            match http::get(admin, "/readyz") {
                Ok(response) if response.status == 200 => Ok(Ok(())),
                Ok(response) => Err(format!("replica {name} /readyz: {}", response.summary())),
                Err(err) => Err(format!("replica {name} /readyz: {err}")),
            }
        });
        match ready {
            Ok(Ok(())) => replica,
            Ok(Err(err)) | Err(err) => self.fail(&format!("{err}\n{}", process::log_tail(&log, 30))),
        }
    }

    /// Polls `ready` until it succeeds, failing at once if the process exits meanwhile.
    fn wait_for_process(&mut self, role: Role, timeout: Duration, ready: impl Fn() -> Result<(), String>) {
        let which = match role {
            Role::ControlPlane => "ambassador-xds serve",
            Role::Envoy => "envoy",
        };
        let result = eventually(timeout, POLL_INTERVAL, || {
            let process = match role {
                Role::ControlPlane => self.control_plane.as_mut(),
                Role::Envoy => self.envoy.as_mut(),
            };
            if let Some(status) = process.and_then(Process::exited) {
                return Ok(Err(format!("{which} exited with {status} before it was ready")));
            }
            ready().map(Ok)
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(exited)) => self.fail(&exited),
            Err(err) => self.fail(&format!("{which} not ready: {err}")),
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill_control_plane(&mut self) {
        let mut process = self.control_plane.take().expect("the control plane is not running");
        process.kill();
    }

    /// SIGTERM; the exit status if it exited within `timeout` (it is killed otherwise).
    pub fn terminate_control_plane(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut process = self.control_plane.take().expect("the control plane is not running");
        process.signal(libc::SIGTERM);
        let status = process.wait_timeout(timeout);
        process.kill();
        status
    }

    /// Writes a file into the config dir atomically (written beside it, then renamed in).
    pub fn write_config(&self, relative: &str, contents: &str) {
        self.install(&self.config_dir.join(relative), contents.as_bytes());
    }

    pub fn remove_config(&self, relative: &str) {
        let path = self.config_dir.join(relative);
        std::fs::remove_file(&path).unwrap_or_else(|err| self.fail(&format!("removing {}: {err}", path.display())));
    }

    /// Copies `testdata/certs/<cert>` to `<files dir>/<name>` atomically; returns the absolute path.
    pub fn install_cert(&self, cert: &str, name: &str) -> PathBuf {
        let source = crate::support::manifest_dir().join("testdata/certs").join(cert);
        let contents = std::fs::read(&source).unwrap_or_else(|err| panic!("reading {}: {err}", source.display()));
        let path = self.files_dir.join(name);
        self.install(&path, &contents);
        path
    }

    /// Write to a staging file on the same file system, then rename over `path`: watchers never
    /// see a half-written file.
    fn install(&self, path: &Path, contents: &[u8]) {
        let n = self.staged.get() + 1;
        self.staged.set(n);
        let staged = self.staging_dir.join(format!("{n}.tmp"));
        std::fs::write(&staged, contents).expect("writing a staging file");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating the target directory");
        }
        std::fs::rename(&staged, path)
            .unwrap_or_else(|err| self.fail(&format!("renaming into {}: {err}", path.display())));
    }

    /// Envoy's HTTP listener (the one `--listener-port` names).
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// `GET path` through Envoy, once.
    pub fn get(&self, path: &str) -> Response {
        http::get(self.listener, path).unwrap_or_else(|err| self.fail(&format!("GET {path} through Envoy: {err}")))
    }

    /// `GET path` through Envoy with `host: <host>`, once.
    pub fn get_from_host(&self, path: &str, host: &str) -> Response {
        http::get_from_host(self.listener, path, host)
            .unwrap_or_else(|err| self.fail(&format!("GET {path} (host {host}) through Envoy: {err}")))
    }

    /// Replaces the whole config directory the way kubelet updates a ConfigMap volume: the keys
    /// in a new `..<version>` directory, `..data` swapped to it with one rename, a symlink per
    /// new key, the links of removed keys and the old version removed.
    pub fn swap_config_map(&self, keys: &[(&str, &str)]) {
        use std::os::unix::fs::symlink;
        let n = self.staged.get() + 1;
        self.staged.set(n);
        let dir = &self.config_dir;
        let version = format!("..2026_01_01_00_00_{n:02}.{n}");
        let previous = std::fs::read_link(dir.join("..data")).ok();
        std::fs::create_dir(dir.join(&version)).expect("creating the version directory");
        for (key, contents) in keys {
            std::fs::write(dir.join(&version).join(key), contents).expect("writing a key");
        }
        symlink(&version, dir.join("..data_tmp")).expect("linking ..data_tmp");
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swapping ..data");
        let wanted: Vec<&str> = keys.iter().map(|(key, _)| *key).collect();
        for key in &wanted {
            if std::fs::symlink_metadata(dir.join(key)).is_err() {
                symlink(format!("..data/{key}"), dir.join(key)).expect("linking a key");
            }
        }
        for entry in std::fs::read_dir(dir).expect("listing the config dir") {
            let name = entry.expect("a directory entry").file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !wanted.contains(&name.as_str()) {
                std::fs::remove_file(dir.join(&name)).expect("unlinking a removed key");
            }
        }
        if let Some(previous) = previous {
            std::fs::remove_dir_all(dir.join(previous)).expect("removing the old version");
        }
    }

    /// Writes `contents` over a file in the files directory in place (not atomically), as
    /// rotation tools that write one file at a time do; returns its path.
    pub fn overwrite_file(&self, name: &str, cert: &str) -> PathBuf {
        let source = crate::support::manifest_dir().join("testdata/certs").join(cert);
        let path = self.files_dir.join(name);
        std::fs::copy(&source, &path).unwrap_or_else(|err| self.fail(&format!("writing {}: {err}", path.display())));
        path
    }

    /// How many configurations the control plane has published so far (all runs).
    pub fn publications(&self) -> usize {
        self.control_plane_log().lines().filter(|line| line.contains("publishing configuration")).count()
    }

    /// The control plane's admin address (the page, `/debug/status`, `/metrics`).
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Sends `signal` to Envoy (SIGSTOP pauses it: it neither reads nor ACKs).
    pub fn signal_envoy(&self, signal: i32) {
        match &self.envoy {
            Some(envoy) => envoy.signal(signal),
            None => self.fail("Envoy is not running"),
        }
    }

    /// `GET path` on the control plane's admin address, once.
    pub fn admin_get(&self, path: &str) -> Response {
        http::get(self.admin, path)
            .unwrap_or_else(|err| self.fail(&format!("GET {path} on the control plane admin: {err}")))
    }

    /// Polls `GET path` through Envoy until `check` accepts the response; returns what it returned.
    pub fn await_response<T>(&self, path: &str, what: &str, check: impl Fn(&Response) -> Result<T, String>) -> T {
        self.eventually(&format!("GET {path}: {what}"), || {
            let response = http::get(self.listener, path).map_err(|err| err.to_string())?;
            check(&response)
        })
    }

    pub fn await_status(&self, path: &str, status: u16) -> Response {
        self.await_response(path, &format!("expecting HTTP {status}"), |response| {
            if response.status == status {
                Ok(response.clone())
            } else {
                Err(response.summary())
            }
        })
    }

    /// Polls until `path` answers 200 from an upstream that saw client certificate CN `cn` (`None`: no certificate).
    pub fn await_client_cn(&self, path: &str, cn: Option<&str>) -> Response {
        self.await_response(path, &format!("expecting 200 with client_cn {cn:?}"), |response| {
            if response.status != 200 {
                return Err(response.summary());
            }
            match response.client_cn()? {
                seen if seen.as_deref() == cn => Ok(response.clone()),
                _ => Err(response.summary()),
            }
        })
    }

    /// [`http::eventually`] with [`POLL`]; fails the test with the logs when time runs out.
    pub fn eventually<T>(&self, what: &str, attempt: impl FnMut() -> Result<T, String>) -> T {
        eventually(POLL, POLL_INTERVAL, attempt).unwrap_or_else(|err| self.fail(&format!("{what}: {err}")))
    }

    /// `GET path` on Envoy's admin address, once.
    pub fn envoy_admin_get(&self, path: &str) -> Response {
        http::get(self.envoy_admin, path)
            .unwrap_or_else(|err| self.fail(&format!("GET {path} on Envoy's admin: {err}")))
    }

    /// The names of the clusters Envoy has (its admin `/clusters`).
    pub fn envoy_clusters(&self) -> std::collections::BTreeSet<String> {
        let text = self.envoy_admin_get("/clusters").text();
        text.lines().filter_map(|line| line.split_once("::")).map(|(name, _)| name.to_string()).collect()
    }

    /// Envoy's numeric stats matching the regex `filter`.
    pub fn envoy_stats(&self, filter: &str) -> BTreeMap<String, u64> {
        envoy_stats(self.envoy_admin, filter).unwrap_or_else(|err| self.fail(&err))
    }

    /// One stat by exact name; fails when Envoy has no such stat.
    pub fn envoy_stat(&self, name: &str) -> u64 {
        let filter = format!("^{}$", name.replace('.', "\\."));
        let stats = self.envoy_stats(&filter);
        *stats.get(name).unwrap_or_else(|| self.fail(&format!("Envoy has no stat {name}")))
    }

    /// Sum of every `*.update_rejected` counter (CDS, LDS, RDS, SDS, ...) must be 0: Envoy never
    /// NACKed anything the control plane sent.
    pub fn assert_no_rejected_updates(&self) {
        let stats = self.envoy_stats("update_rejected");
        if let Err(err) = http::check_no_rejected_updates(&stats) {
            self.fail(&err);
        }
    }

    pub fn envoy_pid(&self) -> Option<u32> {
        self.envoy.as_ref().and_then(Process::pid)
    }

    pub fn envoy_running(&mut self) -> bool {
        self.envoy.as_mut().is_some_and(|envoy| envoy.exited().is_none())
    }

    /// The control plane's stderr so far (all runs, restarts included), without colour codes.
    pub fn control_plane_log(&self) -> String {
        read_log(&self.control_plane_log)
    }

    /// Adds a line to the control-plane log, to mark where a step began.
    pub fn mark_control_plane_log(&self, note: &str) {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&self.control_plane_log) {
            let _ = writeln!(file, "===== e2e: {note} =====");
        }
    }

    /// Every scenario's last check: Envoy rejected nothing it was sent.
    pub fn finish(self) {
        self.assert_no_rejected_updates();
    }

    fn logs(&self) -> String {
        let upstreams: String =
            self.upstreams.borrow().iter().map(|upstream| format!("\n{}", upstream.describe())).collect();
        format!(
            "{upstreams}\n----- control plane log ({}), last lines -----\n{}\n----- envoy log ({}), last lines -----\n{}\n-----",
            self.control_plane_log.display(),
            log_tail(&self.control_plane_log, 60),
            self.envoy_log.display(),
            log_tail(&self.envoy_log, 40),
        )
    }

    /// Panics with `message` and the log tails.
    pub fn fail(&self, message: &str) -> ! {
        self.reported.set(true);
        panic!("[{} {}] {message}{}", self.name, self.mode, self.logs());
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking && !self.reported.get() {
            eprintln!("[{} {}] test failed; logs:{}", self.name, self.mode, self.logs());
        }
        // Processes first, so nothing is still watching or writing the directory when it goes.
        self.envoy.take();
        self.control_plane.take();
        if let Some(dir) = self.dir.take() {
            if panicking {
                eprintln!("[{} {}] kept {}", self.name, self.mode, dir.keep().display());
            }
        }
    }
}
