//! Golden tests: every `testdata/<case>/` compiles to exactly its `expected.json` (and
//! `diagnostics.txt`), and every case's resources are loaded by a real Envoy 1.40 in
//! `--mode validate`. `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expected files and
//! deletes orphans.
//!
//! Case layout: `input/` (YAML/JSON, as `translate` reads it), optional `files/` (the root for
//! absolute TLSContext file paths, like `translate --files-root`), `expected.json`, and
//! `diagnostics.txt` when the case reports problems.

mod support;

use ambassador_xds::compile::Options;
use ambassador_xds::pipeline::{translate_paths, Translation};
use ambassador_xds::render;
use ambassador_xds::source::files::LoadOptions;
use ambassador_xds::xds::XdsType;
use std::path::{Path, PathBuf};

fn update_mode() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

fn testdata() -> PathBuf {
    PathBuf::from("testdata")
}

/// Every directory under `testdata/` with an `input/` folder is a case.
fn cases() -> Vec<PathBuf> {
    std::env::set_current_dir(support::manifest_dir()).unwrap();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("input").is_dir())
        .collect();
    cases.sort();
    cases
}

fn translate_case(case: &Path) -> Translation {
    let files = case.join("files");
    let load = LoadOptions { files_root: files.is_dir().then_some(files) };
    translate_paths(&[case.join("input")], &load, &Options::default())
        .unwrap_or_else(|err| panic!("{}: {err}", case.display()))
}

fn diagnostics_text(translation: &Translation) -> String {
    translation.diagnostics.iter().map(|d| format!("{d}\n")).collect()
}

/// Compares (or in update mode, writes) one expected file. `None` means the file must not exist.
fn check_file(path: &Path, actual: Option<&str>, failures: &mut Vec<String>) {
    let existing = std::fs::read_to_string(path).ok();
    if update_mode() {
        match actual {
            Some(text) if existing.as_deref() != Some(text) => std::fs::write(path, text).unwrap(),
            None if existing.is_some() => std::fs::remove_file(path).unwrap(),
            _ => {}
        }
        return;
    }
    if existing.as_deref() != actual {
        failures.push(format!(
            "{}: differs from the current output\n--- expected\n{}\n--- actual\n{}\n(run UPDATE_GOLDEN=1 cargo test --test golden if the change is intended)",
            path.display(),
            existing.as_deref().unwrap_or("<missing>"),
            actual.unwrap_or("<none>")
        ));
    }
}

#[test]
fn golden_outputs_match() {
    let cases = cases();
    assert!(cases.len() >= 25, "expected at least 25 golden cases, found {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let translation = translate_case(case);
        let json = render::snapshot_json(&render::redacted(translation.resources.clone()));
        check_file(&case.join("expected.json"), Some(&json), &mut failures);
        let diagnostics = diagnostics_text(&translation);
        check_file(
            &case.join("diagnostics.txt"),
            (!diagnostics.is_empty()).then_some(diagnostics.as_str()),
            &mut failures,
        );
    }
    // Orphans: expected files whose case lost its input.
    for entry in std::fs::read_dir(testdata()).unwrap() {
        let dir = entry.unwrap().path();
        let orphaned = dir.join("expected.json").exists() && !dir.join("input").is_dir();
        if orphaned && update_mode() {
            std::fs::remove_dir_all(&dir).unwrap();
        } else if orphaned {
            failures.push(format!("{}: expected.json without input/ (UPDATE_GOLDEN=1 deletes it)", dir.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Replicas agree, and a reload that changed nothing pushes nothing, only if the same input gives
/// the same bytes every time. Each translation builds its messages afresh, and every `HashMap` in
/// them iterates in its own random order: a map field encoded in that order would show here.
#[test]
fn every_case_encodes_to_the_same_bytes_every_time() {
    for case in cases() {
        let first = translate_case(&case).resources;
        for _ in 0..3 {
            let again = translate_case(&case).resources;
            let differ: Vec<String> = render::rendered_resources(&first)
                .into_iter()
                .zip(render::rendered_resources(&again))
                .zip(XdsType::ALL.into_iter().flat_map(|t| first.of(t).iter().zip(again.of(t))))
                .filter(|(_, (a, b))| a.body != b.body)
                .map(|((rendered, _), _)| format!("{}/{}", rendered.kind, rendered.name))
                .collect();
            assert!(differ.is_empty(), "{}: the bytes of {} differ between runs", case.display(), differ.join(", "));
        }
    }
}

#[test]
fn private_keys_never_reach_goldens() {
    for case in cases() {
        let golden = std::fs::read_to_string(case.join("expected.json")).unwrap_or_default();
        assert!(!golden.contains("PRIVATE KEY"), "{}: expected.json holds a private key", case.display());
        // Diagnostics are what `serve` logs: no key bytes there either (diag-secret-string-data).
        let diagnostics = diagnostics_text(&translate_case(&case));
        for key_bytes in ["PRIVATE KEY", "MIGHAgEAMBMG", "MIIE"] {
            assert!(!diagnostics.contains(key_bytes), "{}: a diagnostic quotes key material", case.display());
        }
    }
}

/// Every golden, as served and as a static copy, is loaded by every supported Envoy (1.36-1.40
/// when `scripts/test` set `ENVOY_BINS`).
#[test]
fn goldens_load_in_every_supported_envoy() {
    let cases = cases();
    let envoys = support::envoy_binaries();
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<(&PathBuf, &(String, PathBuf))> =
        cases.iter().flat_map(|c| envoys.iter().map(move |e| (c, e))).collect();
    let results = support::in_parallel(&jobs, |(case, (version, envoy))| {
        let bootstrap = support::validation_bootstrap(&translate_case(case).resources);
        let name = format!("{}-{version}.json", case.file_name().unwrap().to_string_lossy());
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&bootstrap).unwrap()).unwrap();
        support::envoy_validate_with(envoy, &path)
            .err()
            .map(|err| format!("{}: Envoy {version} rejected it:\n{err}", case.display()))
    });
    let failures: Vec<String> = results.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
