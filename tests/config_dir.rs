//! `serve --config-dir` when the directory itself misbehaves: deleted, replaced, out of file
//! descriptors, under steady churn. The real binary and its file watcher; what it would send
//! Envoy is read from `/snapshot` (no Envoy needed).

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)]
mod harness;

use harness::http;
use harness::process::{free_port, localhost, log_tail, Process};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

struct Serve {
    _dir: tempfile::TempDir,
    config: PathBuf,
    admin: SocketAddr,
    log: PathBuf,
    process: Process,
}

fn mapping(name: &str) -> String {
    format!("---\nkind: Mapping\nname: {name}\nprefix: /{name}/\nservice: {name}\n")
}

impl Serve {
    fn start(files: &[(&str, &str)], args: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        for (name, text) in files {
            std::fs::write(config.join(name), text).unwrap();
        }
        Serve::spawn(dir, config, args, |_| {})
    }

    /// `serve --config-dir config` (with `args`, and whatever `adjust` does to the command),
    /// once `/snapshot` answers.
    fn spawn(dir: tempfile::TempDir, config: PathBuf, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Serve {
        let (admin, log) = (localhost(free_port()), dir.path().join("serve.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"));
        command
            .arg("serve")
            .arg("--config-dir")
            .arg(&config)
            .args(["--xds-address", &localhost(free_port()).to_string()])
            .args(["--admin-address", &admin.to_string()])
            .args(args)
            .env("NO_COLOR", "1");
        adjust(&mut command);
        let process = Process::spawn("ambassador-xds serve", command, &log).unwrap();
        let serve = Serve { _dir: dir, config, admin, log, process };
        serve.await_snapshot("ready", |_| true);
        serve
    }

    fn write(&self, name: &str, text: &str) {
        let staged = self.config.with_extension("staged");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, self.config.join(name)).unwrap();
    }

    fn snapshot(&self) -> Result<Value, String> {
        let response = http::get(self.admin, "/snapshot").map_err(|err| err.to_string())?;
        match response.status {
            200 => response.json(),
            _ => Err(response.summary()),
        }
    }

    fn await_snapshot(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        http::eventually(WAIT, Duration::from_millis(50), || match self.snapshot() {
            Ok(snapshot) if check(&snapshot) => Ok(snapshot),
            Ok(snapshot) => Err(format!("routes {:?}, diagnostics {}", routes(&snapshot), snapshot["diagnostics"])),
            Err(err) => Err(err),
        })
        .unwrap_or_else(|err| panic!("{what}: {err}\n{}", log_tail(&self.log, 30)))
    }

    fn publications(&self) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().matches("publishing configuration").count()
    }
}

fn routes(snapshot: &Value) -> Vec<String> {
    let routes = snapshot["routes"][0]["virtual_hosts"][0]["routes"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = routes
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        // Emissary's probe routes are in every configuration.
        .filter(|name| !name.contains("/internal_"))
        .collect();
    names.sort();
    names
}

fn says(snapshot: &Value, text: &str) -> bool {
    snapshot["diagnostics"].as_array().into_iter().flatten().any(|d| d.as_str().is_some_and(|d| d.contains(text)))
}

/// Deleting the directory keeps everything in service (a diagnostic says why); a new directory
/// at the same path is watched as soon as it appears, so a file written into it later is read
/// without any other event. A directory renamed away and replaced at once: the same.
#[test]
fn a_deleted_or_replaced_directory_keeps_serving_and_is_watched_again() {
    let serve = Serve::start(&[("a.yaml", &mapping("a"))], &[]);
    serve.await_snapshot("a", |s| routes(s) == ["default/a"]);

    std::fs::remove_dir_all(&serve.config).unwrap();
    let snapshot = serve.await_snapshot("the deletion is reported", |s| says(s, "cannot read directory"));
    assert_eq!(routes(&snapshot), ["default/a"], "the deleted directory's routes stay");

    std::fs::create_dir(&serve.config).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // the new directory is seen, and watched
    serve.write("b.yaml", &mapping("b"));
    serve.await_snapshot("b, from the new directory", |s| routes(s) == ["default/b"]);

    let replacement = serve.config.with_extension("new");
    std::fs::create_dir(&replacement).unwrap();
    std::fs::write(replacement.join("c.yaml"), mapping("c")).unwrap();
    let old = serve.config.with_extension("old");
    std::fs::rename(&serve.config, &old).unwrap();
    std::fs::rename(&replacement, &serve.config).unwrap();
    serve.await_snapshot("c, from the replacement", |s| routes(s) == ["default/c"]);
    std::fs::write(old.join("stale.yaml"), mapping("stale")).unwrap();
    serve.write("d.yaml", &mapping("d"));
    serve.await_snapshot("d, and nothing from the old directory", |s| routes(s) == ["default/c", "default/d"]);
}

/// Out of file descriptors (the limit lowered under serve's feet): the reload cannot even list
/// the directory, and nothing is dropped; once descriptors are back, the next change is read.
#[test]
fn running_out_of_file_descriptors_drops_nothing() {
    let serve = Serve::start(&[("a.yaml", &mapping("a")), ("b.yaml", &mapping("b"))], &[]);
    serve.await_snapshot("a and b", |s| routes(s) == ["default/a", "default/b"]);
    let pid = serve.process.pid().unwrap() as libc::pid_t;
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as libc::rlim_t;
    let mut original = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    let starved = libc::rlimit { rlim_cur: open.saturating_sub(2), rlim_max: libc::RLIM_INFINITY };
    assert_eq!(unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut original) }, 0);
    let starved = libc::rlimit { rlim_max: original.rlim_max, ..starved };
    assert_eq!(unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &starved, std::ptr::null_mut()) }, 0);
    let before = serve.publications();
    std::fs::remove_file(serve.config.join("b.yaml")).unwrap(); // an event, so a reload runs
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &original, std::ptr::null_mut()) }, 0);
    let log = std::fs::read_to_string(&serve.log).unwrap();
    assert!(log.contains("Too many open files"), "the starved reload was not reported:\n{}", log_tail(&serve.log, 20));
    assert_eq!(serve.publications(), before, "a reload that could not read the directory published");

    serve.write("c.yaml", &mapping("c"));
    serve.await_snapshot("c, and b gone", |s| routes(s) == ["default/a", "default/c"]);
}

/// A change every 50 ms, for longer than the maximum delay, with a 100 ms quiet time: reloads
/// still happen during the churn (a trailing-only debounce would wait for the churn to end).
#[test]
fn steady_churn_cannot_postpone_reloads() {
    let serve = Serve::start(&[("a.yaml", &mapping("a"))], &["--debounce-ms", "100", "--debounce-max-ms", "500"]);
    serve.await_snapshot("a", |s| routes(s) == ["default/a"]);
    let before = serve.publications();
    for i in 0..60 {
        serve.write("churn.yaml", &mapping(&format!("churn{i}")));
        std::thread::sleep(Duration::from_millis(50));
    }
    let during = serve.publications() - before;
    assert!(during >= 2, "{during} publications in 3 s of churn:\n{}", log_tail(&serve.log, 20));
    serve.await_snapshot("the last change", |s| routes(s) == ["default/a", "default/churn59"]);
}

/// Every file under the directory that cannot be read (here: a subdirectory made unreadable,
/// with `serve` running as `nobody` when the tests run as root) keeps the routes it held.
#[test]
fn an_unreadable_subdirectory_keeps_its_files() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("team")).unwrap();
    std::fs::write(config.join("a.yaml"), mapping("a")).unwrap();
    std::fs::write(config.join("team/t.yaml"), mapping("t")).unwrap();
    for path in [dir.path(), &config, &config.join("team")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let serve = Serve::spawn(dir, config.clone(), &[], |command| {
        if unsafe { libc::geteuid() } == 0 {
            command.uid(65534).gid(65534);
        }
    });
    serve.await_snapshot("a and t", |s| routes(s) == ["default/a", "default/t"]);
    std::fs::set_permissions(config.join("team"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::write(config.join("b.yaml"), mapping("b")).unwrap();
    let snapshot = serve.await_snapshot("b", |s| routes(s).contains(&"default/b".to_owned()));
    assert_eq!(routes(&snapshot), ["default/a", "default/b", "default/t"]);
    assert!(says(&snapshot, "Permission denied"), "{}", snapshot["diagnostics"]);
    assert!(says(&snapshot, "last good version"), "{}", snapshot["diagnostics"]);
    std::fs::set_permissions(config.join("team"), std::fs::Permissions::from_mode(0o777)).unwrap();
}
