//! The config directory as a source: what it reads, what it reports as rejected, what it drops.

use super::*;
use std::os::unix::fs::symlink;

const MAPPING_A: &str = "kind: Mapping\nname: a\nprefix: /a/\nservice: a\n";
const MAPPING_B: &str = "kind: Mapping\nname: b\nprefix: /b/\nservice: b\n";

fn names(contribution: &Contribution) -> Vec<String> {
    contribution.model.mappings.iter().map(|m| m.meta.name().to_string()).collect()
}

fn rejected_files(contribution: &Contribution) -> Vec<String> {
    contribution
        .model
        .rejected
        .iter()
        .map(|r| Path::new(&*r.origin.file).file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_config_map_volume_is_read_once_per_key_across_swaps() {
    let dir = tempfile::tempdir().unwrap();
    crate::source::walk::tests::config_map(dir.path(), "v1", &[("a.yaml", MAPPING_A), ("b.yaml", MAPPING_B)]);
    let mut source = ConfigDirSource::unwatched(dir.path().to_path_buf());
    let read = source.read().unwrap();
    assert_eq!(names(&read), ["a", "b"]);
    assert!(read.diagnostics.is_empty(), "{:?}", read.diagnostics);
    assert_eq!(&*read.model.mappings[0].meta.origin.file, dir.path().join("a.yaml").to_str().unwrap());

    // kubelet's update: a new version directory, `..data` swapped, the old version removed.
    crate::source::walk::tests::config_map(
        dir.path(),
        "v2",
        &[("a.yaml", MAPPING_B.replace("name: b", "name: a2").as_str()), ("b.yaml", MAPPING_B)],
    );
    std::fs::remove_dir_all(dir.path().join("..v1")).unwrap();
    let read = source.read().unwrap();
    assert_eq!(names(&read), ["a2", "b"]);
    assert!(read.diagnostics.is_empty(), "{:?}", read.diagnostics);
}

#[test]
fn unreadable_files_are_rejected_and_removed_files_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("a.yaml"), MAPPING_A).unwrap();
    std::fs::write(root.join("b.yaml"), MAPPING_B).unwrap();
    let mut source = ConfigDirSource::unwatched(root.to_path_buf());
    assert_eq!(names(&source.read().unwrap()), ["a", "b"]);

    // a.yaml now reads as an I/O error (even for root); b.yaml is deleted.
    std::fs::remove_file(root.join("a.yaml")).unwrap();
    symlink("/proc/self/mem", root.join("a.yaml")).unwrap();
    std::fs::remove_file(root.join("b.yaml")).unwrap();
    let read = source.read().unwrap();
    assert!(names(&read).is_empty());
    assert_eq!(rejected_files(&read), ["a.yaml"], "only the unreadable file is rejected; b.yaml is gone");
    assert_eq!(read.diagnostics.len(), 1, "{:?}", read.diagnostics);
    assert_eq!(read.diagnostics[0].kind, Kind::Unreadable);
}

#[test]
fn special_files_and_oversized_files_are_reported_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fifo = std::ffi::CString::new(root.join("fifo.yaml").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let big = std::fs::File::create(root.join("big.yaml")).unwrap();
    big.set_len(crate::model::MAX_STREAM_BYTES as u64 + 1).unwrap();
    std::fs::write(root.join("good.yaml"), MAPPING_A).unwrap();
    let mut source = ConfigDirSource::unwatched(root.to_path_buf());
    let read = source.read().unwrap();
    assert_eq!(names(&read), ["a"]);
    let kinds: Vec<Kind> = read.diagnostics.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [Kind::Unreadable, Kind::Limit], "{:?}", read.diagnostics);
    assert_eq!(rejected_files(&read), ["fifo.yaml", "big.yaml"]);
}

#[test]
fn a_missing_directory_is_an_error_and_its_return_is_read() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("config");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), MAPPING_A).unwrap();
    let mut source = ConfigDirSource::unwatched(dir.clone());
    assert_eq!(names(&source.read().unwrap()), ["a"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let err = source.read().unwrap_err();
    assert_eq!(err.kind, Kind::Unreadable);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("b.yaml"), MAPPING_B).unwrap();
    assert_eq!(names(&source.read().unwrap()), ["b"]);
}

#[test]
fn a_file_whose_stamp_settled_is_not_read_again_until_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, MAPPING_A).unwrap();
    let mut source = ConfigDirSource::unwatched(dir.path().to_path_buf());
    source.settle_after = Duration::ZERO;
    // Read, then read again to see the stamp settled; from then on it is not read.
    for expected_reads in [1, 2, 2, 2] {
        assert_eq!(names(&source.read().unwrap()), ["a"]);
        assert_eq!(source.files_read, expected_reads);
    }
    // The same size, so only the change times tell: read again, and what it holds now is served.
    // (The real wait for a settled stamp is 3 s; this one only makes sure the write falls in a
    // later tick of the file system's clock, which the 3 s guarantee.)
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&path, MAPPING_A.replace("name: a", "name: z")).unwrap();
    assert_eq!(names(&source.read().unwrap()), ["z"]);
    assert_eq!(source.files_read, 3);
}

#[test]
fn a_file_is_read_on_every_reload_while_its_stamp_has_not_settled() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), MAPPING_A).unwrap();
    let mut source = ConfigDirSource::unwatched(dir.path().to_path_buf());
    source.settle_after = Duration::from_secs(3600);
    for expected_reads in 1..=4 {
        assert_eq!(names(&source.read().unwrap()), ["a"]);
        assert_eq!(source.files_read, expected_reads, "a write within the stamp's tick could follow");
    }
}
