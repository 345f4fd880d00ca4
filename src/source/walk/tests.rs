//! Directory layouts as Kubernetes, editors and mistakes make them.

use super::*;
use std::os::unix::fs::symlink;

fn shown(listing: &Listing, root: &Path) -> Vec<String> {
    listing.files.iter().map(|f| f.shown.strip_prefix(root).unwrap().display().to_string()).collect()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// What kubelet's atomic writer makes of a ConfigMap with `keys`.
pub(crate) fn config_map(root: &Path, version: &str, keys: &[(&str, &str)]) {
    let data = root.join(format!("..{version}"));
    for (key, text) in keys {
        write(&data.join(key), text);
    }
    symlink(format!("..{version}"), root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    for (key, _) in keys {
        let _ = symlink(format!("..data/{key}"), root.join(key));
    }
}

#[test]
fn config_map_volumes_list_each_key_once_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    config_map(dir.path(), "2024_01_01_00_00_00.1", &[("a.yaml", "a"), ("b.json", "b"), ("notes.txt", "")]);
    let listing = list(dir.path()).unwrap();
    assert_eq!(shown(&listing, dir.path()), ["a.yaml", "b.json"]);
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    // Read through the resolved `..data`: one version for every key.
    assert!(listing.files[0].real.starts_with(std::fs::canonicalize(dir.path().join("..data")).unwrap()));
}

#[test]
fn hidden_entries_and_editor_droppings_are_not_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for name in ["m.yaml", "m.yaml~", ".m.yaml.swp", ".#m.yaml", "#m.yaml#", "4913", "m.yaml.tmp", ".hidden/x.yaml"] {
        write(&root.join(name), "x");
    }
    write(&root.join("sub/n.yml"), "x");
    assert_eq!(shown(&list(root).unwrap(), root), ["m.yaml", "sub/n.yml"]);
}

#[test]
fn directory_symlinks_are_not_followed_and_files_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("real/m.yaml"), "x");
    symlink(root.join("real"), root.join("alias")).unwrap();
    symlink("/", root.join("everything")).unwrap();
    symlink(".", root.join("loop")).unwrap();
    symlink("real/m.yaml", root.join("same.yaml")).unwrap();
    symlink("missing.yaml", root.join("dangling.yaml")).unwrap();
    let listing = list(root).unwrap();
    assert_eq!(shown(&listing, root), ["real/m.yaml"]);
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
}

#[test]
fn symlink_loops_and_special_files_are_reported_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    symlink("loop-b.yaml", root.join("loop-a.yaml")).unwrap();
    symlink("loop-a.yaml", root.join("loop-b.yaml")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo.yaml").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    symlink("/dev/zero", root.join("zero.yaml")).unwrap();
    let listing = list(root).unwrap();
    assert!(listing.files.is_empty(), "{:?}", listing.files);
    let reasons: Vec<(String, &str)> = listing
        .unreadable
        .iter()
        .map(|u| (u.shown.file_name().unwrap().to_string_lossy().into_owned(), u.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].0 == "fifo.yaml" && reasons[0].1.contains("a FIFO"), "{reasons:?}");
    assert!(reasons[1].1.contains("cannot follow symlink"), "{reasons:?}");
    assert!(reasons[3].0 == "zero.yaml" && reasons[3].1.contains("a device"), "{reasons:?}");
}

#[test]
fn a_missing_root_is_an_error_not_an_empty_listing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(list(&dir.path().join("gone")).is_err());
}
