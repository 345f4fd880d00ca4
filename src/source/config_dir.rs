//! A watched configuration directory: reloads on change, re-parsing only files whose bytes
//! changed, and keeping a file's last good version while its current one does not parse.

use super::files::{self, LoadOptions, Loaded};
use crate::diagnostic::{Diagnostic, Origin};
use crate::model::{Model, SYNTAX_ERROR};
use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug)]
struct CachedFile {
    bytes: Vec<u8>,
    model: Model,
    diagnostics: Vec<Diagnostic>,
    /// The model of the last version without YAML syntax errors.
    last_good: Option<Model>,
}

/// The files of one directory and what they parsed to.
#[derive(Debug)]
pub struct ConfigDir {
    dir: PathBuf,
    cache: BTreeMap<PathBuf, CachedFile>,
}

impl ConfigDir {
    pub fn new(dir: PathBuf) -> ConfigDir {
        ConfigDir { dir, cache: BTreeMap::new() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the directory as it is now (the files TLSContexts name are read by the caller, for
    /// every source at once). Never fails: an unreadable directory or file is a diagnostic.
    pub fn load(&mut self) -> Loaded {
        let mut loaded = Loaded::default();
        let paths = match files::config_files(std::slice::from_ref(&self.dir)) {
            Ok(paths) => paths,
            Err(err) => {
                let origin = Origin { file: Arc::from(self.dir.display().to_string()), document: 0 };
                loaded.diagnostics.push(Diagnostic::error(
                    Some(&origin),
                    None,
                    format!("cannot read directory: {err}"),
                ));
                return loaded;
            }
        };
        let present: BTreeSet<&PathBuf> = paths.iter().collect();
        self.cache.retain(|path, _| present.contains(path));
        for path in &paths {
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(err) => {
                    // Vanished between listing and reading (an editor's rename): the next event reloads.
                    tracing::debug!(path = %path.display(), %err, "config file not readable");
                    continue;
                }
            };
            let cached = match self.cache.get(path) {
                Some(cached) if cached.bytes == bytes => cached,
                previous => {
                    let last_good = previous.and_then(|p| p.last_good.clone());
                    let fresh = parse_file(path, bytes, last_good);
                    self.cache.insert(path.clone(), fresh);
                    &self.cache[path]
                }
            };
            loaded.model.extend(cached.model.clone());
            loaded.diagnostics.extend(cached.diagnostics.iter().cloned());
        }
        loaded
    }
}

/// Directories to watch for the files TLSContexts name.
pub fn tls_file_dirs(loaded: &Loaded, options: &LoadOptions) -> BTreeSet<PathBuf> {
    loaded
        .tls_files
        .keys()
        .filter_map(|path| files::resolve_tls_path(path, options).parent().map(Path::to_path_buf))
        .collect()
}

fn parse_file(path: &Path, bytes: Vec<u8>, last_good: Option<Model>) -> CachedFile {
    let display = path.display().to_string();
    let (model, mut diagnostics) = match std::str::from_utf8(&bytes) {
        Ok(text) => crate::model::parse_documents(&display, text),
        Err(_) => {
            let origin = Origin { file: Arc::from(display.as_str()), document: 0 };
            (Model::default(), vec![Diagnostic::error(Some(&origin), None, "not UTF-8 text")])
        }
    };
    let broken = diagnostics.iter().any(|d| d.message.starts_with(SYNTAX_ERROR) || d.message == "not UTF-8 text");
    match (broken, last_good) {
        (false, _) => CachedFile { bytes, last_good: Some(model.clone()), model, diagnostics },
        (true, Some(good)) => {
            let origin = Origin { file: Arc::from(display.as_str()), document: 0 };
            diagnostics.push(Diagnostic::warning(
                Some(&origin),
                None,
                "serving this file's last version that parsed, until the syntax error is fixed",
            ));
            CachedFile { bytes, model: good.clone(), diagnostics, last_good: Some(good) }
        }
        (true, None) => CachedFile { bytes, model, diagnostics, last_good: None },
    }
}

/// Watches paths and sends one notification per burst of changes, `debounce` after the last one.
/// Other sources (the Kubernetes watchers) feed the same debounce through [`Self::notifier`].
pub struct ChangeWatcher {
    watcher: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
    raw: mpsc::UnboundedSender<()>,
    pub changes: mpsc::Receiver<()>,
}

impl ChangeWatcher {
    pub fn new(debounce: Duration) -> notify::Result<ChangeWatcher> {
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
        let raw = raw_tx.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                let _ = raw_tx.send(());
            }
        })?;
        let (tx, changes) = mpsc::channel(1);
        tokio::spawn(async move {
            while raw_rx.recv().await.is_some() {
                // Debounce: wait until the burst (editor saves, atomic renames) is over.
                while let Ok(Some(())) = tokio::time::timeout(debounce, raw_rx.recv()).await {}
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        Ok(ChangeWatcher { watcher, watched: BTreeSet::new(), raw, changes })
    }

    /// A handle that triggers a (debounced) reload.
    pub fn notifier(&self) -> mpsc::UnboundedSender<()> {
        self.raw.clone()
    }

    /// Watches `path` (recursively for the config directory) unless already watched.
    pub fn watch(&mut self, path: &Path, recursive: bool) {
        if self.watched.contains(path) {
            return;
        }
        let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        match self.watcher.watch(path, mode) {
            Ok(()) => {
                self.watched.insert(path.to_path_buf());
            }
            Err(err) => tracing::warn!(path = %path.display(), %err, "cannot watch; changes there need a restart"),
        }
    }
}
