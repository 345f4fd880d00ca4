//! Which files of a config directory are configuration, as Kubernetes and editors lay them out.
//!
//! * A ConfigMap or Secret volume is a directory of symlinks (`key -> ..data/key`), `..data`
//!   itself a symlink to the current `..<timestamp>/` directory, which kubelet swaps atomically on
//!   every update. Such a directory is listed through `..data`, resolved once, so one listing
//!   sees one version of every key, never a mix.
//! * Entries whose names start with `.` (`..data`, `..<timestamp>`, hidden directories, `.#x`
//!   locks, `.x.swp`) and editor droppings (`x~`, `#x#`, vim's `4913`) are not configuration.
//! * Directory symlinks are not followed (a link to `/` would walk the whole file system, a loop
//!   would load the same files forty times); file symlinks are, and each file is read once
//!   however many names lead to it (by canonical path).
//! * Only regular files are configuration: a FIFO or a device named `*.yaml` is reported, never
//!   opened.
//!
//! A directory that cannot be read is reported (with the files last seen in it kept by the
//! caller), never taken for an empty one.

use super::read::describe;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

const CONFIG_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];
/// The symlink kubelet's atomic writer points at the current version of a volume.
const ATOMIC_DATA_DIR: &str = "..data";

/// One configuration file: the path users know (a ConfigMap key's name, not
/// `..2024_01_01.../key`), used in diagnostics, and the path it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub shown: PathBuf,
    pub real: PathBuf,
}

/// A file or directory under the root that is there but cannot be read as configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub shown: PathBuf,
    pub reason: String,
    /// A directory: whatever was below it is unknown now.
    pub is_dir: bool,
}

#[derive(Debug, Default)]
pub struct Listing {
    /// In sorted order of their shown paths.
    pub files: Vec<ConfigFile>,
    pub unreadable: Vec<Unreadable>,
}

/// Whether `name` could be a configuration file (by extension, and not hidden or a dropping).
pub fn is_config_name(name: &str) -> bool {
    let dropping = name.ends_with('~')
        || name.starts_with('#')
        || name == "4913"
        || [".swp", ".swo", ".swx", ".tmp"].iter().any(|ext| name.ends_with(ext));
    let extension = Path::new(name).extension().and_then(|e| e.to_str());
    !name.starts_with('.') && !dropping && extension.is_some_and(|e| CONFIG_EXTENSIONS.contains(&e))
}

/// Lists the configuration files under `root`. `Err` only when `root` itself cannot be read.
pub fn list(root: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    let mut seen = HashSet::new();
    let real = atomic_data_dir(root).unwrap_or_else(|| root.to_path_buf());
    let entries = sorted_entries(&real)?;
    walk_entries(root, &real, entries, &mut listing, &mut seen);
    Ok(listing)
}

/// The resolved `..data` of an atomic-writer directory.
fn atomic_data_dir(dir: &Path) -> Option<PathBuf> {
    let data = dir.join(ATOMIC_DATA_DIR);
    let is_link = std::fs::symlink_metadata(&data).ok()?.file_type().is_symlink();
    let target = std::fs::canonicalize(&data).ok()?;
    (is_link && target.is_dir()).then_some(target)
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        // A name that is not UTF-8 cannot be a `.yaml` file name we would show; skip it.
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn walk(shown: &Path, listing: &mut Listing, seen: &mut HashSet<PathBuf>) {
    let real = atomic_data_dir(shown).unwrap_or_else(|| shown.to_path_buf());
    match sorted_entries(&real) {
        Ok(entries) => walk_entries(shown, &real, entries, listing, seen),
        Err(err) => listing.unreadable.push(Unreadable {
            shown: shown.to_path_buf(),
            reason: format!("cannot read directory: {err}"),
            is_dir: true,
        }),
    }
}

fn walk_entries(
    shown_dir: &Path,
    real_dir: &Path,
    entries: Vec<String>,
    listing: &mut Listing,
    seen: &mut HashSet<PathBuf>,
) {
    for name in entries {
        if name.starts_with('.') {
            continue;
        }
        let (shown, real) = (shown_dir.join(&name), real_dir.join(&name));
        let Ok(link) = std::fs::symlink_metadata(&real) else { continue }; // vanished meanwhile
        let config_name = is_config_name(&name);
        let unreadable = |reason: String| Unreadable { shown: shown.clone(), reason, is_dir: false };
        let target = if link.file_type().is_symlink() {
            match std::fs::metadata(&real) {
                Ok(target) => target,
                // A dangling link is a key kubelet is removing, or a file deleted: not there.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) if config_name => {
                    listing.unreadable.push(unreadable(format!("cannot follow symlink: {err}")));
                    continue;
                }
                Err(_) => continue,
            }
        } else {
            link.clone()
        };
        if target.is_dir() {
            if !link.file_type().is_symlink() {
                walk(&shown, listing, seen);
            } else {
                tracing::debug!(path = %shown.display(), "not following a directory symlink");
            }
        } else if !config_name {
            continue;
        } else if !target.is_file() {
            listing
                .unreadable
                .push(unreadable(format!("{}, not a regular file; not read", describe(&target.file_type()))));
        } else {
            match std::fs::canonicalize(&real) {
                Ok(canonical) if seen.contains(&canonical) => {
                    tracing::debug!(path = %shown.display(), "same file as one already listed");
                }
                canonical => {
                    seen.extend(canonical.ok());
                    listing.files.push(ConfigFile { shown, real });
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
