//! Configuration from files and directories: YAML/JSON documents, plus the certificate files
//! TLSContexts name (read here, so that `compile` stays pure and Envoy never needs the paths).

use crate::diagnostic::{Diagnostic, Kind, Origin};
use crate::model::{parse_documents, Model, TlsFiles};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CONFIG_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Read absolute TLSContext file paths under this directory instead of `/`: for translating a
    /// config written for a container (`/etc/istiocerts/...`) on another machine.
    pub files_root: Option<PathBuf>,
}

/// Everything the translation reads: the resources of every source, the files their TLSContexts
/// name, and the problems found while reading them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub model: Model,
    pub tls_files: TlsFiles,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Expands the given paths into config files: directories recursively (only `.yaml`, `.yml` and
/// `.json`, in sorted order, so output never depends on directory order); files as given.
pub fn config_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
        if metadata.is_dir() {
            walk(path, &mut out)?;
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io { path: dir.to_path_buf(), source };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(io)?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            walk(&entry, out)?;
        } else if is_config_file(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

pub fn is_config_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    !hidden && path.extension().and_then(|e| e.to_str()).is_some_and(|e| CONFIG_EXTENSIONS.contains(&e))
}

/// Parses the bytes of one config file.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> (Model, Vec<Diagnostic>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_documents(file, text),
        Err(_) => (Model::default(), vec![file_error(file, "not UTF-8 text").with_kind(Kind::Syntax)]),
    }
}

/// Parses one config file. A file that cannot be read is a diagnostic, not a failure.
pub fn load_file(path: &Path) -> (Model, Vec<Diagnostic>) {
    let display = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => parse_bytes(&display, &bytes),
        Err(err) => {
            (Model::default(), vec![file_error(&display, &format!("cannot read: {err}")).with_kind(Kind::Unreadable)])
        }
    }
}

fn file_error(file: &str, message: &str) -> Diagnostic {
    Diagnostic::error(Some(&Origin::file(file)), None, message)
}

/// Loads every config file under `paths`, then the files their TLSContexts name.
pub fn load(paths: &[PathBuf], options: &LoadOptions) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for file in config_files(paths)? {
        let (model, diagnostics) = load_file(&file);
        loaded.model.extend(model);
        loaded.diagnostics.extend(diagnostics);
    }
    loaded.tls_files = read_tls_files(&loaded.model, options);
    Ok(loaded)
}

/// Where a TLSContext's file is really read from.
pub fn resolve_tls_path(path: &str, options: &LoadOptions) -> PathBuf {
    match (&options.files_root, Path::new(path).strip_prefix("/")) {
        (Some(root), Ok(relative)) => root.join(relative),
        _ => PathBuf::from(path),
    }
}

/// Reads every file any TLSContext names; failures are kept as messages for `compile` to report
/// against the context that needs the file.
pub fn read_tls_files(model: &Model, options: &LoadOptions) -> TlsFiles {
    let mut files = TlsFiles::new();
    for ctx in &model.tls_contexts {
        for path in ctx.spec.files() {
            if !files.contains_key(path) {
                let real = resolve_tls_path(path, options);
                files
                    .insert(path.to_string(), std::fs::read(&real).map_err(|err| format!("{}: {err}", real.display())));
            }
        }
    }
    files
}

/// Directories holding the files TLSContexts name: watched so that rotated files are re-read.
pub fn tls_file_dirs(tls_files: &TlsFiles, options: &LoadOptions) -> BTreeSet<PathBuf> {
    tls_files.keys().filter_map(|path| resolve_tls_path(path, options).parent().map(Path::to_path_buf)).collect()
}
