//! Configuration from files and directories: YAML/JSON documents, plus the certificate files
//! TLSContexts name (read here, so that `compile` stays pure and Envoy never needs the paths).

use super::read::{read_regular_file, ReadError};
use super::walk::{self, ConfigFile, Unreadable};
use crate::diagnostic::{Diagnostic, Kind, Origin};
use crate::model::{parse_documents, Model, Rejected, TlsFileError, TlsFiles, MAX_STREAM_BYTES};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Largest certificate, key or CA file a TLSContext may name (Mozilla's whole root bundle is
/// about 220 KiB).
pub const MAX_TLS_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Read absolute TLSContext file paths under this directory instead of `/`: for translating a
    /// config written for a container (`/etc/istiocerts/...`) on another machine.
    pub files_root: Option<PathBuf>,
}

/// Where the files TLSContexts name may be. `..` is refused everywhere, and so are relative
/// paths (relative to what would be a guess).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFilePolicy {
    /// `None`: anywhere (a config directory is written by whoever runs the server). `Some`: only
    /// under these directories, after symlinks are resolved (Kubernetes mode, where a TLSContext
    /// is written by anyone who may write one in a watched namespace; no roots refuses every path).
    pub roots: Option<Vec<PathBuf>>,
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

/// Expands the given paths into config files: directories as [`walk::list`] lists them, in
/// sorted order, so output never depends on directory order; files as given. Entries that are
/// there but cannot be read are returned beside them.
pub fn config_files(paths: &[PathBuf]) -> Result<(Vec<ConfigFile>, Vec<Unreadable>), LoadError> {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for path in paths {
        let io = |source| LoadError::Io { path: path.clone(), source };
        if std::fs::metadata(path).map_err(io)?.is_dir() {
            let listing = walk::list(path).map_err(io)?;
            files.extend(listing.files);
            unreadable.extend(listing.unreadable);
        } else {
            files.push(ConfigFile { shown: path.clone(), real: path.clone() });
        }
    }
    Ok((files, unreadable))
}

/// Parses the bytes of one config file.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> (Model, Vec<Diagnostic>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_documents(file, text),
        Err(_) => unreadable(file, Kind::Syntax, "not UTF-8 text"),
    }
}

/// A file that is there but cannot be used: one error, and whatever it held stays broken (not gone).
pub fn unreadable(file: &str, kind: Kind, message: &str) -> (Model, Vec<Diagnostic>) {
    let origin = Origin::file(file);
    let model = Model { rejected: vec![Rejected { origin: origin.clone(), id: None }], ..Model::default() };
    (model, vec![Diagnostic::error(Some(&origin), None, message).with_kind(kind)])
}

/// Reads one config file (a regular file of at most [`MAX_STREAM_BYTES`]). `Ok(None)`: it is gone.
pub fn read_config_file(path: &Path) -> Result<Option<Vec<u8>>, (Kind, String)> {
    match read_regular_file(path, MAX_STREAM_BYTES as u64) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadError::Missing(_)) => Ok(None),
        Err(err @ ReadError::TooLarge { .. }) => Err((Kind::Limit, err.to_string())),
        Err(err) => Err((Kind::Unreadable, format!("cannot read: {err}"))),
    }
}

/// Parses one config file. A file that cannot be read is a diagnostic, not a failure.
pub fn load_file(file: &ConfigFile) -> (Model, Vec<Diagnostic>) {
    let shown = file.shown.display().to_string();
    match read_config_file(&file.real) {
        Ok(Some(bytes)) => parse_bytes(&shown, &bytes),
        Ok(None) => unreadable(&shown, Kind::Unreadable, "cannot read: no such file"),
        Err((kind, message)) => unreadable(&shown, kind, &message),
    }
}

/// Loads every config file under `paths`, then the files their TLSContexts (those of
/// `ambassador_id`) name.
pub fn load(paths: &[PathBuf], options: &LoadOptions, ambassador_id: &str) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    let (files, problems) = config_files(paths)?;
    for problem in problems {
        let (model, diagnostics) = unreadable(&problem.shown.display().to_string(), Kind::Unreadable, &problem.reason);
        loaded.model.extend(model);
        loaded.diagnostics.extend(diagnostics);
    }
    for file in files {
        let (model, diagnostics) = load_file(&file);
        loaded.model.extend(model);
        loaded.diagnostics.extend(diagnostics);
    }
    let read = |paths: &[PathBuf]| paths.iter().map(|path| read_regular_file(path, MAX_TLS_FILE_BYTES)).collect();
    loaded.tls_files = read_tls_files(&loaded.model, options, &TlsFilePolicy::default(), ambassador_id, read);
    Ok(loaded)
}

/// Where a TLSContext's file is really read from, or why it may not be.
pub fn resolve_tls_path(path: &str, options: &LoadOptions, policy: &TlsFilePolicy) -> Result<PathBuf, TlsFileError> {
    let written = Path::new(path);
    if written.components().any(|c| c == Component::ParentDir) {
        return Err(TlsFileError::Refused("`..` is not allowed in a TLSContext file path".into()));
    }
    let Ok(relative) = written.strip_prefix("/") else {
        return Err(TlsFileError::Refused("a TLSContext file path must be absolute".into()));
    };
    let real = |path: &Path| match &options.files_root {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    };
    let resolved = real(Path::new("/").join(relative).as_path());
    let Some(roots) = &policy.roots else { return Ok(resolved) };
    if roots.is_empty() {
        return Err(TlsFileError::Refused(
            "files named by TLSContexts are not read in Kubernetes mode unless --tls-files-under allows their directory"
                .into(),
        ));
    }
    // Symlinks resolved, so a link inside a root cannot lead outside it. The path as written is
    // what is read and watched (a Secret volume swaps the directory the links lead to).
    let canonical = std::fs::canonicalize(&resolved)
        .map_err(|err| TlsFileError::Unreadable(format!("{}: {err}", resolved.display())))?;
    let allowed =
        roots.iter().filter_map(|root| std::fs::canonicalize(real(root)).ok()).any(|root| canonical.starts_with(root));
    if allowed {
        Ok(resolved)
    } else {
        let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        Err(TlsFileError::Refused(format!("not under the allowed directories ({})", roots.join(", "))))
    }
}

/// Reads every file a TLSContext (or a Host's inline `tls`) of this instance (`ambassador_id`)
/// names, with `read` (which reads regular files of at most [`MAX_TLS_FILE_BYTES`] without
/// blocking, see [`read_regular_file`] and [`super::deadline`]); failures are kept for `compile`
/// to report against the context that needs the file.
pub fn read_tls_files(
    model: &Model,
    options: &LoadOptions,
    policy: &TlsFilePolicy,
    ambassador_id: &str,
    read: impl FnOnce(&[PathBuf]) -> Vec<Result<Vec<u8>, ReadError>>,
) -> TlsFiles {
    let mut files = TlsFiles::new();
    let mut to_read: Vec<(String, PathBuf)> = Vec::new();
    let contexts = model.tls_contexts.iter().filter(|ctx| ctx.meta.belongs_to(ambassador_id)).map(|ctx| &*ctx.spec);
    // A Host's inline `tls` may name CA and CRL files too.
    let inline =
        model.hosts.iter().filter(|host| host.meta.belongs_to(ambassador_id)).filter_map(|h| h.spec.tls.as_ref());
    for spec in contexts.chain(inline) {
        for path in spec.files() {
            if files.contains_key(path) || to_read.iter().any(|(written, _)| written == path) {
                continue;
            }
            match resolve_tls_path(path, options, policy) {
                Ok(real) => to_read.push((path.to_string(), real)),
                Err(refused) => {
                    files.insert(path.to_string(), Err(refused));
                }
            }
        }
    }
    let reals: Vec<PathBuf> = to_read.iter().map(|(_, real)| real.clone()).collect();
    for ((written, real), contents) in to_read.into_iter().zip(read(&reals)) {
        let contents = contents.map_err(|err| TlsFileError::Unreadable(format!("{}: {err}", real.display())));
        files.insert(written, contents);
    }
    files
}

/// Directories holding the files TLSContexts name: watched so that rotated files are re-read.
pub fn tls_file_dirs(tls_files: &TlsFiles, options: &LoadOptions, policy: &TlsFilePolicy) -> BTreeSet<PathBuf> {
    tls_files
        .keys()
        .filter_map(|path| resolve_tls_path(path, options, policy).ok())
        .filter_map(|path| path.parent().map(Path::to_path_buf))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn refused(result: Result<PathBuf, TlsFileError>) -> String {
        match result {
            Err(TlsFileError::Refused(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn tls_paths_stay_under_the_allowed_roots() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("certs"), dir.path().join("elsewhere"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("tls.crt"), "x").unwrap();
        std::fs::write(outside.join("secret.key"), "x").unwrap();
        symlink(outside.join("secret.key"), root.join("escape.key")).unwrap();
        let none = LoadOptions::default();
        let policy = TlsFilePolicy { roots: Some(vec![root.clone()]) };
        let path = |p: &Path| p.to_str().unwrap().to_string();

        assert_eq!(resolve_tls_path(&path(&root.join("tls.crt")), &none, &policy).unwrap(), root.join("tls.crt"));
        assert!(refused(resolve_tls_path(&path(&outside.join("secret.key")), &none, &policy)).contains("not under"));
        assert!(refused(resolve_tls_path(&path(&root.join("escape.key")), &none, &policy)).contains("not under"));
        let dotdot = format!("{}/../elsewhere/secret.key", root.display());
        assert!(refused(resolve_tls_path(&dotdot, &none, &TlsFilePolicy::default())).contains("`..`"));
        assert!(refused(resolve_tls_path("certs/tls.crt", &none, &TlsFilePolicy::default())).contains("absolute"));
        let kubernetes = TlsFilePolicy { roots: Some(vec![]) };
        assert!(
            refused(resolve_tls_path(&path(&root.join("tls.crt")), &none, &kubernetes)).contains("--tls-files-under")
        );
        // A missing file under a root is unreadable (maybe for a moment), not refused.
        let missing = resolve_tls_path(&path(&root.join("missing.crt")), &none, &policy);
        assert!(matches!(missing, Err(TlsFileError::Unreadable(_))), "{missing:?}");
    }

    #[test]
    fn files_root_maps_paths_and_roots_alike() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/certs")).unwrap();
        std::fs::write(dir.path().join("etc/certs/tls.crt"), "x").unwrap();
        let load = LoadOptions { files_root: Some(dir.path().to_path_buf()) };
        let policy = TlsFilePolicy { roots: Some(vec![PathBuf::from("/etc/certs")]) };
        assert_eq!(
            resolve_tls_path("/etc/certs/tls.crt", &load, &policy).unwrap(),
            dir.path().join("etc/certs/tls.crt")
        );
    }
}
