//! A watched configuration directory as a [`Source`]: re-parses only files whose bytes changed,
//! and keeps a file's last good version while its current one does not parse.

use super::files;
use super::{Changes, Contribution, FileWatcher, Source};
use crate::diagnostic::{Diagnostic, Kind, Origin};
use crate::model::Model;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug)]
struct CachedFile {
    bytes: Vec<u8>,
    model: Model,
    diagnostics: Vec<Diagnostic>,
    /// The model of the last version without YAML syntax errors.
    last_good: Option<Model>,
}

/// The files of one directory and what they parsed to.
pub struct ConfigDirSource {
    dir: PathBuf,
    cache: BTreeMap<PathBuf, CachedFile>,
    /// Kept alive for as long as the source: dropping it stops the notifications.
    _watcher: Option<FileWatcher>,
}

impl ConfigDirSource {
    /// A source that reports changes under `dir` (recursively) to `changes`.
    pub fn watched(dir: PathBuf, changes: Changes) -> notify::Result<ConfigDirSource> {
        let mut watcher = FileWatcher::new(changes)?;
        watcher.watch(&dir, true);
        Ok(ConfigDirSource { dir, cache: BTreeMap::new(), _watcher: Some(watcher) })
    }

    /// A source that is read on demand only (tests, one-shot tools).
    pub fn unwatched(dir: PathBuf) -> ConfigDirSource {
        ConfigDirSource { dir, cache: BTreeMap::new(), _watcher: None }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the directory as it is now (the files TLSContexts name are read by the controller,
    /// for every source at once). An unreadable file is a diagnostic.
    fn load(&mut self) -> Result<Contribution, Box<Diagnostic>> {
        let paths = files::config_files(std::slice::from_ref(&self.dir)).map_err(|err| {
            let origin = Origin::file(&self.dir.display().to_string());
            Box::new(
                Diagnostic::error(Some(&origin), None, format!("cannot read directory: {err}"))
                    .with_kind(Kind::Unreadable),
            )
        })?;
        let mut contribution = Contribution::default();
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
            contribution.model.extend(cached.model.clone());
            contribution.diagnostics.extend(cached.diagnostics.iter().cloned());
        }
        Ok(contribution)
    }
}

impl Source for ConfigDirSource {
    fn name(&self) -> String {
        format!("config-dir {}", self.dir.display())
    }

    fn read(&mut self) -> Result<Contribution, Box<Diagnostic>> {
        self.load()
    }
}

fn parse_file(path: &Path, bytes: Vec<u8>, last_good: Option<Model>) -> CachedFile {
    let display = path.display().to_string();
    let (model, mut diagnostics) = files::parse_bytes(&display, &bytes);
    let broken = diagnostics.iter().any(|d| d.kind == Kind::Syntax);
    match (broken, last_good) {
        (false, _) => CachedFile { bytes, last_good: Some(model.clone()), model, diagnostics },
        (true, Some(good)) => {
            diagnostics.push(
                Diagnostic::warning(
                    Some(&Origin::file(&display)),
                    None,
                    "serving this file's last version that parsed, until the syntax error is fixed",
                )
                .with_kind(Kind::Stale),
            );
            CachedFile { bytes, model: good.clone(), diagnostics, last_good: Some(good) }
        }
        (true, None) => CachedFile { bytes, model, diagnostics, last_good: None },
    }
}
