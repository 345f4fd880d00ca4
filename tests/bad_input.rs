//! The bad-input corpus (`testdata/bad-input/`, plus what cannot be committed: FIFOs, device
//! links, symlink loops, unreadable files and directories, an I/O error, files of many
//! megabytes) beside a good configuration, through `translate` and through `serve`: nothing
//! panics or hangs, memory stays under [`PEAK_RSS_BOUND`], every bad file gets a one-line
//! diagnostic naming it, and the good resources are served.
//!
//! When the tests run as root, both commands run as `nobody`, so that file modes mean something.

mod support;

#[path = "support/e2e/mod.rs"]
#[allow(dead_code)]
mod harness;

use harness::http;
use harness::process::{free_port, localhost, Process};
use serde_json::Value;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Peak resident memory allowed for `translate` or `serve` on the whole corpus (README, "Limits").
const PEAK_RSS_BOUND_MIB: u64 = 96;
const PEAK_RSS_BOUND: u64 = PEAK_RSS_BOUND_MIB << 20;

/// Entries that are deliberately not configuration and so get no diagnostic: a dangling link
/// (how kubelet removes a key) and a link to a directory (not followed).
const SILENT: &[&str] = &["dangling.yaml", "everything"];

struct Corpus {
    _dir: tempfile::TempDir,
    config: PathBuf,
    /// Every entry of the config dir that must be named by a diagnostic.
    bad: Vec<String>,
}

fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

fn running_as_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn corpus() -> Corpus {
    let dir = tempfile::Builder::new().prefix("ambassador-xds-bad-input-").tempdir().unwrap();
    let (config, files) = (dir.path().join("config"), dir.path().join("files"));
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&files).unwrap();
    let source = support::manifest_dir().join("testdata/bad-input");
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let bytes = match String::from_utf8(bytes) {
            Ok(text) => text.replace("@FILES@", files.to_str().unwrap()).into_bytes(),
            Err(err) => err.into_bytes(),
        };
        write(&config.join(&name), bytes);
        if name.ends_with(".yaml") && name != "00-good.yaml" {
            bad.push(name);
        }
    }
    // What a TLSContext must not read.
    mkfifo(&files.join("fifo.pem"));
    write(&files.join("big.pem"), vec![b'A'; 2 << 20]);
    symlink("loop.pem", files.join("loop.pem")).unwrap();
    symlink("/proc/self/mem", files.join("io-error.pem")).unwrap();

    // What cannot be committed.
    let mut generated = |name: &str, contents: Option<Vec<u8>>| {
        if let Some(contents) = contents {
            write(&config.join(name), contents);
        }
        if !SILENT.contains(&name) {
            bad.push(name.to_string());
        }
    };
    let nested = |open: &str, close: &str, depth: usize| format!("{}x{}\n", open.repeat(depth), close.repeat(depth));
    generated("deep-flow-mappings.yaml", Some(nested("{a: ", "}", 100_000).into_bytes()));
    generated("deep-flow-sequences.yaml", Some(nested("[", "]", 200_000).into_bytes()));
    generated(
        "huge-scalar.yaml",
        Some(format!("kind: Mapping\nname: huge\nprefix: /{}\n", "x".repeat(5 << 20)).into_bytes()),
    );
    generated("many-documents.yaml", Some("---\n".repeat(110_000).into_bytes()));
    generated("many-broken-documents.yaml", Some("---\nkind: Mapping\n".repeat(50_000).into_bytes()));
    generated("many-nodes.yaml", Some(format!("[{}]\n", vec!["a"; 300_000].join(",")).into_bytes()));
    let big = "y".repeat(100_000);
    generated("alias-scalar.yaml", Some(format!("a: &a {big}\nb: [{}]\n", vec!["*a"; 100].join(", ")).into_bytes()));
    let huge = config.join("huge-file.yaml");
    std::fs::File::create(&huge).unwrap().set_len(17 << 20).unwrap();
    generated("huge-file.yaml", None);
    mkfifo(&config.join("fifo.yaml"));
    generated("fifo.yaml", None);
    for (name, target) in [
        ("dev-zero.yaml", "/dev/zero"),
        ("dev-urandom.yaml", "/dev/urandom"),
        ("loop-a.yaml", "loop-b.yaml"),
        ("loop-b.yaml", "loop-a.yaml"),
        ("io-error.yaml", "/proc/self/mem"),
        ("dangling.yaml", "gone.yaml"),
        ("everything", "/"),
    ] {
        symlink(target, config.join(name)).unwrap();
        generated(name, None);
    }
    let unreadable = config.join("unreadable.yaml");
    write(&unreadable, "kind: Mapping\nname: secretive\nprefix: /s/\nservice: s\n");
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    generated("unreadable.yaml", None);
    let closed = config.join("unreadable-dir");
    std::fs::create_dir(&closed).unwrap();
    write(&closed.join("inside.yaml"), "kind: Mapping\nname: inside\nprefix: /i/\nservice: i\n");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
    generated("unreadable-dir", None);

    // `nobody` must reach everything that is not meant to be unreadable.
    for path in [dir.path(), &config, &files] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bad.sort();
    assert!(bad.len() >= 50, "the corpus has {} bad inputs", bad.len());
    Corpus { _dir: dir, config, bad }
}

/// The command as `nobody` when the tests run as root.
fn unprivileged(mut command: Command) -> Command {
    if running_as_root() {
        command.uid(65534).gid(65534);
    }
    command
}

/// Peak RSS of a finished child, from `wait4`.
fn wait_with_peak_rss(child: std::process::Child) -> (std::process::ExitStatus, u64) {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    std::mem::forget(child); // reaped above
    (std::process::ExitStatus::from_raw(status), usage.ru_maxrss as u64 * 1024)
}

fn assert_each_named(bad: &[String], diagnostics: &[String], what: &str) {
    let unnamed: Vec<&String> =
        bad.iter().filter(|name| !diagnostics.iter().any(|d| d.contains(&format!("/{name}")))).collect();
    assert!(unnamed.is_empty(), "{what}: no diagnostic names {unnamed:?}; diagnostics:\n{}", diagnostics.join("\n"));
    for line in diagnostics {
        assert!(line.starts_with("error: ") || line.starts_with("warning: "), "{what}: not a diagnostic: {line}");
    }
}

/// Route name → forwarded cluster, or the direct-response status.
fn route_action(snapshot: &Value, name: &str) -> Option<String> {
    let routes = snapshot["routes"][0]["virtual_hosts"][0]["routes"].as_array()?;
    let route = routes.iter().find(|route| route["name"] == name)?;
    match (&route["route"]["cluster"], &route["direct_response"]["status"]) {
        (Value::String(cluster), _) => Some(cluster.clone()),
        (_, status) => Some(status.to_string()),
    }
}

fn assert_good_served(snapshot: &Value, what: &str) {
    assert_eq!(
        route_action(snapshot, "default/good-mtls").as_deref(),
        Some("cluster_good_upstream_otls_good_context_default"),
        "{what}"
    );
    assert_eq!(route_action(snapshot, "default/good-plain").as_deref(), Some("cluster_good_plain_default"), "{what}");
    let secrets: Vec<&str> =
        snapshot["secrets"].as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(secrets, ["tlscontext/default/good-context/client-cert"], "{what}");
    assert_eq!(snapshot["listeners"].as_array().map(Vec::len), Some(1), "{what}: the default listener");
    // Routes whose TLS material could not be read fail closed.
    assert_eq!(route_action(snapshot, "default/uses-file-dev-zero").as_deref(), Some("503"), "{what}");
}

#[test]
fn translate_reports_each_bad_input_and_compiles_the_good_ones() {
    let corpus = corpus();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"));
    command.arg("translate").arg(&corpus.config).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = unprivileged(command).spawn().expect("running translate");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    let (status, peak) = wait_with_peak_rss(child);
    let out = out.join().unwrap().unwrap();

    assert!(status.success(), "translate exited with {status}:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let diagnostics: Vec<String> = err.lines().filter(|l| !l.ends_with("warning(s)")).map(str::to_owned).collect();
    assert_each_named(&corpus.bad, &diagnostics, "translate");
    let snapshot: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("translate's output: {e}\n{err}"));
    assert_good_served(&snapshot, "translate");
    if std::env::var_os("SHOW_DIAGNOSTICS").is_some() {
        eprintln!("{err}");
    }
    assert!(peak < PEAK_RSS_BOUND, "translate peaked at {} MiB (bound {PEAK_RSS_BOUND_MIB} MiB)", peak >> 20);
    eprintln!("translate on the bad-input corpus: peak RSS {:.1} MiB", peak as f64 / (1 << 20) as f64);
}

#[test]
fn serve_reports_each_bad_input_and_serves_the_good_ones() {
    let corpus = corpus();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("serve.log");
    let admin = localhost(free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_ambassador-xds"));
    command
        .arg("serve")
        .arg("--config-dir")
        .arg(&corpus.config)
        .args(["--xds-address", &localhost(free_port()).to_string()])
        .args(["--admin-address", &admin.to_string()])
        .env("NO_COLOR", "1");
    let mut serve = Process::spawn("ambassador-xds serve", unprivileged(command), &log).unwrap();
    let logs = || harness::process::log_tail(&log, 40);
    let snapshot = http::eventually(Duration::from_secs(30), Duration::from_millis(100), || {
        if let Some(status) = serve.exited() {
            return Ok(Err(format!("serve exited with {status}")));
        }
        let response = http::get(admin, "/snapshot").map_err(|err| err.to_string())?;
        match response.json()? {
            snapshot if snapshot["listeners"].as_array().is_some_and(|l| !l.is_empty()) => Ok(Ok(snapshot)),
            _ => Err("no snapshot yet".to_owned()),
        }
    })
    .unwrap_or_else(|err| panic!("serve never served: {err}\n{}", logs()))
    .unwrap_or_else(|err| panic!("{err}\n{}", logs()));

    let diagnostics: Vec<String> =
        snapshot["diagnostics"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
    assert_each_named(&corpus.bad, &diagnostics, "serve");
    assert_good_served(&snapshot, "serve");
    let metrics = http::get(admin, "/metrics").unwrap().text();
    assert!(metrics.contains("ambassador_xds_diagnostics{severity=\"error\",kind=\"limit\"}"), "{metrics}");

    let peak = peak_rss_of(serve.pid().unwrap());
    assert!(serve.exited().is_none(), "serve exited:\n{}", logs());
    assert!(!std::fs::read_to_string(&log).unwrap_or_default().contains("panicked"), "{}", logs());
    assert!(peak < PEAK_RSS_BOUND, "serve peaked at {} MiB (bound {PEAK_RSS_BOUND_MIB} MiB)", peak >> 20);
    eprintln!("serve on the bad-input corpus: peak RSS {:.1} MiB", peak as f64 / (1 << 20) as f64);
}

/// `VmHWM` of a running process.
fn peak_rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}
