//! Child processes that die with the test: `ambassador-xds serve`, Envoy, and the ports they use.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A port that was free on 127.0.0.1 a moment ago, never handed out twice by this test process
/// (tests run in parallel, and a port is only bound after the child process starts).
///
/// It is taken from below the kernel's ephemeral range: an upstream that binds port 0, or any
/// outgoing connection, gets its port from that range and so can never take one handed out here
/// before its child binds it (a CI run lost two e2e tests to exactly that: an upstream's port 0
/// was the port an Envoy was about to bind for its admin).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let (below, _) = ephemeral_range();
    // Each test process starts at its own place in the range, so that two suites at once rarely
    // try the same ports (a port is also checked free by binding it).
    let span = u32::from(below.saturating_sub(PORTS_FROM));
    let mut handed_out = HANDED_OUT.lock().unwrap();
    if span < 1_000 {
        // A kernel whose ephemeral range starts low: take ephemeral ports, as before.
        loop {
            let port =
                TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port").local_addr().unwrap().port();
            if handed_out.insert(port) {
                return port;
            }
        }
    }
    let start = std::process::id() % span;
    for step in 0..span {
        let port = PORTS_FROM + ((start + step) % span) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {PORTS_FROM} and {below}");
}

/// Where `free_port` starts: above the well-known and registered ports most services use.
const PORTS_FROM: u16 = 20_000;

/// The kernel's ephemeral port range (Linux's default when it cannot be read).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A running child whose stdout and stderr are appended to `log`; killed (SIGKILL) and reaped on
/// drop, also when the test panics.
pub struct Process {
    child: Option<Child>,
}

impl Process {
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Process, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|err| format!("opening {}: {err}", log.display()))?;
        let stderr = file.try_clone().map_err(|err| err.to_string())?;
        command.stdin(Stdio::null()).stdout(file).stderr(stderr);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|err| format!("starting {name} ({command:?}): {err}"))?;
        Ok(Process { child: Some(child) })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            if self.child.is_some() {
                // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
                unsafe {
                    libc::kill(pid as libc::pid_t, signal);
                }
            }
        }
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

/// Backstop for when the test process itself is killed (Ctrl-C, a harness timeout) and no `Drop`
/// runs: the child gets SIGKILL when the thread that spawned it ends. That is always the test's own
/// thread, which outlives its `Process`es.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only prctl(2), which is async-signal-safe, runs between fork and exec.
    unsafe {
        command.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `ambassador-xds serve` with the contract's flags; logs through tracing to stderr (no colours).
pub fn spawn_control_plane(
    config_dir: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    listener_port: u16,
    extra_args: &[String],
    log: &Path,
) -> Result<Process, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"));
    command
        .arg("serve")
        .arg("--config-dir")
        .arg(config_dir)
        .args(["--xds-address", &xds.to_string()])
        .args(["--admin-address", &admin.to_string()])
        .args(["--listener-port", &listener_port.to_string()])
        .args(extra_args)
        .env("NO_COLOR", "1")
        .env_remove("CONSUL_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_ADDR");
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    Process::spawn("ambassador-xds serve", command, log)
}

/// Runs `ambassador-xds bootstrap` and returns the YAML it printed.
pub fn bootstrap(xds: SocketAddr, node_id: &str, admin_port: u16, delta: bool) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"));
    command
        .arg("bootstrap")
        .args(["--xds-address", &xds.to_string()])
        .args(["--node-id", node_id])
        .args(["--admin-port", &admin_port.to_string()]);
    if delta {
        command.arg("--delta");
    }
    let output = command.output().map_err(|err| format!("running {command:?}: {err}"))?;
    if !output.status.success() {
        return Err(format!("{command:?} failed with {}: {}", output.status, String::from_utf8_lossy(&output.stderr)));
    }
    String::from_utf8(output.stdout).map_err(|err| format!("bootstrap output is not UTF-8: {err}"))
}

/// A real Envoy on `bootstrap`: one worker thread, no hot restart (so no shared memory between
/// the tests' Envoys), config and upstream events logged at info.
pub fn spawn_envoy(bootstrap: &Path, log: &Path) -> Result<Process, String> {
    let mut command = Command::new(crate::support::envoy_binary());
    command
        .arg("-c")
        .arg(bootstrap)
        .args(["--disable-hot-restart", "--concurrency", "1", "--log-level", "info"])
        // The start-up inventory of extensions and header maps would bury what matters in the log tail.
        .args(["--component-log-level", "main:warning"]);
    Process::spawn("envoy", command, log)
}

/// The last `lines` lines of a log file, without ANSI colour codes.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = read_log(path);
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    tail.iter()
        .map(|line| {
            if line.chars().count() > 600 {
                format!("{}…", line.chars().take(600).collect::<String>())
            } else {
                (*line).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A log file's text, without ANSI colour codes (empty when it does not exist yet).
pub fn read_log(path: &Path) -> String {
    let raw = std::fs::read(path).unwrap_or_default();
    strip_ansi(&String::from_utf8_lossy(&raw))
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
