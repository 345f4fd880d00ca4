//! Reading one untrusted file: only a regular file, never more than a limit, never blocking.
//!
//! A path in a config directory or a TLSContext may name a FIFO (opening it for reading blocks
//! until a writer comes), a device (`/dev/zero` never ends, opening a tape rewinds it) or a huge
//! file. So the path is `stat`ed first and only a regular file is opened, with `O_NONBLOCK` (a
//! FIFO swapped in after the `stat` cannot block the open) and `O_NOCTTY`; the open file is
//! checked again (`fstat`), and at most `max + 1` bytes are read.

use std::fmt;
use std::fs::{File, FileType};
use std::io::Read;
use std::path::Path;

#[derive(Debug)]
pub enum ReadError {
    /// The path does not exist (or is a dangling symlink).
    Missing(std::io::Error),
    /// A directory, FIFO, socket or device.
    NotRegular(&'static str),
    TooLarge {
        max: u64,
    },
    Io(std::io::Error),
    /// The read did not finish within the reload's deadline (see `source::deadline`).
    TimedOut(std::time::Duration),
    /// An earlier read of the same path is still running.
    Stuck,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing(err) => write!(f, "{err}"),
            ReadError::NotRegular(what) => write!(f, "{what}, not a regular file; not read"),
            ReadError::TooLarge { max } => write!(f, "larger than the limit of {max} bytes; not read"),
            ReadError::Io(err) => write!(f, "{err}"),
            ReadError::TimedOut(deadline) => write!(f, "the read did not finish within {deadline:?}"),
            ReadError::Stuck => f.write_str("an earlier read of this file has not finished"),
        }
    }
}

/// What a file type is, for messages.
pub fn describe(file_type: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn open_no_block(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    options.open(path)
}

/// The contents of the regular file at `path` (symlinks followed), at most `max` bytes.
pub fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let io = |err: std::io::Error| match err.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing(err),
        _ => ReadError::Io(err),
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegular(describe(&metadata.file_type())));
    }
    let file = open_no_block(path).map_err(io)?;
    let metadata = file.metadata().map_err(ReadError::Io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegular(describe(&metadata.file_type())));
    }
    if metadata.len() > max {
        return Err(ReadError::TooLarge { max });
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { max }); // it grew while being read
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_regular_file(&path, 10).unwrap(), b"0123456789");
        assert!(matches!(read_regular_file(&path, 9), Err(ReadError::TooLarge { max: 9 })));
        assert!(matches!(read_regular_file(&dir.path().join("none"), 10), Err(ReadError::Missing(_))));
        assert!(matches!(read_regular_file(dir.path(), 10), Err(ReadError::NotRegular("a directory"))));
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yaml");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_regular_file(&fifo, 10), Err(ReadError::NotRegular("a FIFO"))));
        assert!(matches!(read_regular_file(Path::new("/dev/zero"), 10), Err(ReadError::NotRegular("a device"))));
    }
}
