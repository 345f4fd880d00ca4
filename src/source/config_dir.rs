//! A watched configuration directory as a [`Source`]: lists it as Kubernetes volumes and editors
//! lay it out ([`walk`]), re-parses only files whose bytes changed, and never mistakes what it
//! cannot read for what is gone: a file or subdirectory that cannot be read is reported as
//! [`Rejected`](crate::model::Rejected), so its resources keep their last good version; a
//! directory that cannot be read at all is an error, so the whole contribution is kept. Only a
//! file that is no longer listed is removed.
//!
//! The watch follows the directory: when it is deleted, renamed or replaced, the parent's watch
//! reports it, and the next reload watches whatever directory is at the path then.

use super::files::{self, parse_bytes, read_config_file};
use super::walk;
use super::{Changes, Contribution, FileWatcher, Source};
use crate::diagnostic::{Diagnostic, Kind, Origin};
use crate::model::{Model, Rejected};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct CachedFile {
    bytes: Vec<u8>,
    model: Model,
    diagnostics: Vec<Diagnostic>,
    /// What the file's metadata said when these bytes were read, and since when it said so.
    stamp: Option<(Stamp, Instant)>,
    /// The stamp was seen twice, [`STAMP_SETTLED`] apart, with these same bytes: until it
    /// changes, the file need not be read to know it holds them.
    settled: bool,
}

/// A file's identity and change times, to the nanosecond. A write changes `ctime` (which no
/// program can set back) unless it falls within the same tick of the file system's clock as the
/// previous write; a rename or kubelet's symlink swap changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok().filter(std::fs::Metadata::is_file)?;
        let (mtime, ctime) = ((m.mtime(), m.mtime_nsec()), (m.ctime(), m.ctime_nsec()));
        Some(Stamp { dev: m.dev(), ino: m.ino(), len: m.len(), mtime, ctime })
    }
}

/// Longer than the coarsest tick of a file system's clock (FAT's 2 s). A write within the tick
/// of an earlier one leaves the stamp as it was; once a stamp has been seen this long apart with
/// the same bytes, its tick is over, so any later write changes it. Only local elapsed time is
/// compared, never the file system's clock with ours (a network file server's may be off).
const STAMP_SETTLED: Duration = Duration::from_secs(3);

/// The watch on the directory, and which directory (device, inode) it is on; and the watch on
/// its parent, for the directory itself coming and going.
struct DirWatch {
    watcher: FileWatcher,
    watching: Option<(u64, u64)>,
    _parent: Option<FileWatcher>,
}

/// The files of one directory and what they parsed to.
pub struct ConfigDirSource {
    dir: PathBuf,
    /// By the path files are shown with.
    cache: BTreeMap<PathBuf, CachedFile>,
    watch: Option<DirWatch>,
    /// How many files were read (rather than known unchanged by their stamps).
    files_read: usize,
    /// [`STAMP_SETTLED`], but in tests.
    settle_after: Duration,
}

fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

impl ConfigDirSource {
    /// A source that reports changes under `dir` (recursively), and to `dir` itself, to `changes`.
    pub fn watched(dir: PathBuf, changes: Changes) -> notify::Result<ConfigDirSource> {
        let absolute = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
        let parent = match absolute.parent() {
            Some(parent) => {
                let mut watcher = FileWatcher::about(changes.clone(), absolute.clone())?;
                watcher.watch(parent, false);
                Some(watcher)
            }
            None => None,
        };
        let watch = DirWatch { watcher: FileWatcher::new(changes)?, watching: None, _parent: parent };
        let mut source = ConfigDirSource {
            dir,
            cache: BTreeMap::new(),
            watch: Some(watch),
            files_read: 0,
            settle_after: STAMP_SETTLED,
        };
        source.follow_directory();
        Ok(source)
    }

    /// A source that is read on demand only (tests, one-shot tools).
    pub fn unwatched(dir: PathBuf) -> ConfigDirSource {
        ConfigDirSource { dir, cache: BTreeMap::new(), watch: None, files_read: 0, settle_after: STAMP_SETTLED }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Watches the directory now at the path, if it is not the one watched already.
    fn follow_directory(&mut self) {
        let Some(watch) = &mut self.watch else { return };
        let now = identity(&self.dir);
        if now != watch.watching {
            if now.is_some() {
                watch.watcher.rewatch(&self.dir, true);
                if watch.watching.is_some() {
                    tracing::info!(dir = %self.dir.display(), "the config directory was replaced; watching the new one");
                }
            }
            watch.watching = now;
        }
    }

    /// Reads the directory as it is now (the files TLSContexts name are read by the controller,
    /// for every source at once).
    fn load(&mut self) -> Result<Contribution, Box<Diagnostic>> {
        self.follow_directory();
        let listing = walk::list(&self.dir).map_err(|err| {
            let origin = Origin::file(&self.dir.display().to_string());
            let message = format!("cannot read directory: {err}; what it held stays in service");
            Box::new(Diagnostic::error(Some(&origin), None, message).with_kind(Kind::Unreadable))
        })?;
        let mut contribution = Contribution::default();
        let mut add = |(model, diagnostics): (Model, Vec<Diagnostic>)| {
            contribution.model.extend(model);
            contribution.diagnostics.extend(diagnostics);
        };
        let mut present: BTreeSet<PathBuf> = BTreeSet::new();
        for problem in &listing.unreadable {
            let shown = problem.shown.display().to_string();
            if !problem.is_dir {
                present.insert(problem.shown.clone());
                add(files::unreadable(&shown, Kind::Unreadable, &problem.reason));
                continue;
            }
            let origin = Origin::file(&shown);
            let message = format!("{}; the files last read there stay in service", problem.reason);
            let mut model = Model::default();
            for path in self.cache.keys().filter(|path| path.starts_with(&problem.shown)) {
                present.insert(path.clone());
                model.rejected.push(Rejected { origin: Origin::file(&path.display().to_string()), id: None });
            }
            add((model, vec![Diagnostic::error(Some(&origin), None, message).with_kind(Kind::Unreadable)]));
        }
        for file in &listing.files {
            let shown = file.shown.display().to_string();
            // Taken before reading: a write during the read changes it, so what was read is
            // never taken for what is there after the write.
            let stamp = Stamp::of(&file.real);
            if let Some(cached) = self.cache.get(&file.shown).filter(|c| c.settled && c.stamp.map(|s| s.0) == stamp) {
                present.insert(file.shown.clone());
                add((cached.model.clone(), cached.diagnostics.clone()));
                continue;
            }
            self.files_read += 1;
            let bytes = match read_config_file(&file.real) {
                Ok(Some(bytes)) => bytes,
                // Vanished between listing and reading: deleted (an editor's rename brings it back).
                Ok(None) => continue,
                Err((kind, message)) => {
                    // Unreadable for now (permissions, out of file descriptors, too large): its
                    // cached parse is kept for when it is readable again.
                    present.insert(file.shown.clone());
                    add(files::unreadable(&shown, kind, &message));
                    continue;
                }
            };
            present.insert(file.shown.clone());
            let cached = match self.cache.get_mut(&file.shown) {
                Some(cached) if cached.bytes == bytes => {
                    match (cached.stamp, stamp) {
                        (Some((seen, since)), Some(now)) if seen == now => {
                            cached.settled = since.elapsed() >= self.settle_after;
                        }
                        _ => {
                            cached.stamp = stamp.map(|now| (now, Instant::now()));
                            cached.settled = false;
                        }
                    }
                    &*cached
                }
                _ => {
                    let (model, diagnostics) = parse_bytes(&shown, &bytes);
                    let stamp = stamp.map(|now| (now, Instant::now()));
                    let cached = CachedFile { bytes, model, diagnostics, stamp, settled: false };
                    self.cache.insert(file.shown.clone(), cached);
                    &self.cache[&file.shown]
                }
            };
            add((cached.model.clone(), cached.diagnostics.clone()));
        }
        self.cache.retain(|path, _| present.contains(path));
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

#[cfg(test)]
mod tests;
