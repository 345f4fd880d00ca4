//! Reads that cannot hold up a reload: each file is read on a helper thread, and the reload waits
//! for all of them together at most a deadline. A read still running then (a dead network file
//! system, a FUSE server that does not answer) is reported as unreadable, so the last good
//! material stays in service, and its path gets no second thread until the first returns.

use super::read::{read_regular_file, ReadError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Read = fn(&Path, u64) -> Result<Vec<u8>, ReadError>;
/// Where a helper thread sends what it read.
type Reply = mpsc::Receiver<Result<Vec<u8>, ReadError>>;

pub struct DeadlineReader {
    deadline: Duration,
    /// Paths whose read has not returned yet.
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
    read: Read,
}

impl DeadlineReader {
    pub fn new(deadline: Duration) -> DeadlineReader {
        DeadlineReader { deadline, in_flight: Arc::default(), read: read_regular_file }
    }

    /// Reads every path (each a regular file of at most `max` bytes), in order, within the deadline.
    pub fn read_all(&self, paths: &[PathBuf], max: u64) -> Vec<Result<Vec<u8>, ReadError>> {
        let started = Instant::now();
        let pending: Vec<Option<Reply>> = paths.iter().map(|path| self.start(path, max)).collect();
        pending
            .into_iter()
            .map(|receiver| {
                let Some(receiver) = receiver else { return Err(ReadError::Stuck) };
                let left = self.deadline.saturating_sub(started.elapsed());
                receiver.recv_timeout(left).unwrap_or(Err(ReadError::TimedOut(self.deadline)))
            })
            .collect()
    }

    fn start(&self, path: &Path, max: u64) -> Option<Reply> {
        if !self.in_flight.lock().expect("not poisoned").insert(path.to_path_buf()) {
            return None;
        }
        let (sender, receiver) = mpsc::channel();
        let (in_flight, path, read) = (self.in_flight.clone(), path.to_path_buf(), self.read);
        let spawned = std::thread::Builder::new().name("file-read".into()).spawn(move || {
            let result = read(&path, max);
            in_flight.lock().expect("not poisoned").remove(&path);
            let _ = sender.send(result);
        });
        match spawned {
            Ok(_) => Some(receiver),
            Err(err) => {
                let (sender, receiver) = mpsc::channel();
                let _ = sender.send(Err(ReadError::Io(err)));
                Some(receiver)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file system that hangs on one path, as a dead NFS server does.
    fn hanging(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
        if path.ends_with("hangs.pem") {
            std::thread::sleep(Duration::from_secs(3600));
        }
        read_regular_file(path, max)
    }

    #[test]
    fn a_read_that_hangs_costs_one_deadline_and_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (good, hangs) = (dir.path().join("good.pem"), dir.path().join("hangs.pem"));
        std::fs::write(&good, "pem").unwrap();
        let reader = DeadlineReader { read: hanging, ..DeadlineReader::new(Duration::from_millis(200)) };
        let results = reader.read_all(&[hangs.clone(), good.clone()], 1024);
        assert!(matches!(results[0], Err(ReadError::TimedOut(_))), "{:?}", results[0]);
        assert_eq!(results[1].as_ref().unwrap(), b"pem");
        // The next reload does not wait again, nor start a second thread for it.
        let results = reader.read_all(&[hangs, good], 1024);
        assert!(matches!(results[0], Err(ReadError::Stuck)), "{:?}", results[0]);
        assert_eq!(results[1].as_ref().unwrap(), b"pem");
        assert_eq!(reader.in_flight.lock().unwrap().len(), 1, "only the hung read is in flight");
    }
}
