//! File-system change notifications (inotify and friends, through `notify`), turned into
//! [`Changes`] events. Access events (reads) are not changes.

use super::Changes;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct FileWatcher {
    watcher: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
}

impl FileWatcher {
    pub fn new(changes: Changes) -> notify::Result<FileWatcher> {
        FileWatcher::filtered(changes, |_| true)
    }

    /// A watcher that reports only events about `path` itself (for a directory's parent: the
    /// directory created, deleted or renamed, not every log file written beside it).
    pub fn about(changes: Changes, path: PathBuf) -> notify::Result<FileWatcher> {
        FileWatcher::filtered(changes, move |event| event.paths.contains(&path))
    }

    fn filtered(
        changes: Changes,
        wanted: impl Fn(&notify::Event) -> bool + Send + 'static,
    ) -> notify::Result<FileWatcher> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_)) && wanted(&e)) {
                changes.notify();
            }
        })?;
        Ok(FileWatcher { watcher, watched: BTreeSet::new() })
    }

    /// Watches `path` (recursively for a config directory) unless already watched.
    pub fn watch(&mut self, path: &Path, recursive: bool) {
        if self.watched.contains(path) {
            return;
        }
        self.add(path, recursive);
    }

    /// Watches whatever is at `path` now: after the directory watched there was deleted, renamed
    /// or replaced, the old watch follows the old inode or is gone.
    pub fn rewatch(&mut self, path: &Path, recursive: bool) {
        if self.watched.remove(path) {
            let _ = self.watcher.unwatch(path);
        }
        self.add(path, recursive);
    }

    fn add(&mut self, path: &Path, recursive: bool) {
        let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        match self.watcher.watch(path, mode) {
            Ok(()) => {
                self.watched.insert(path.to_path_buf());
            }
            Err(err) => tracing::warn!(path = %path.display(), %err, "cannot watch; changes there need a restart"),
        }
    }
}
