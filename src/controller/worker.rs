//! The one thread every reload and endpoint refresh runs on, off the async runtime that serves
//! Envoy.
//!
//! One thread, always the same, because of how memory goes back to the system (`memory.rs`):
//! mimalloc returns a thread's freed memory only from that thread. A reload frees most of what
//! the one before it built, and the next reload builds it again; keeping those pages until the
//! controller has been idle a while spares every reload in a burst from faulting them in afresh
//! (13% of a one-Mapping reload's CPU at 5,000 Mappings, with mimalloc's own 10 ms purge delay;
//! `memory::hold_freed`). When the controller is idle, [`Worker::release_freed`] gives them back
//! from the thread that holds them.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

pub(super) struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Started from within the runtime: its jobs run inside it, as `spawn_blocking` jobs would
    /// (the endpoint sources' first fetch blocks on the runtime from a reload).
    pub fn start() -> Worker {
        let (jobs, queue) = mpsc::channel::<Job>();
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name("ambassador-xds-reload".into())
            .spawn(move || {
                let _inside = runtime.as_ref().map(tokio::runtime::Handle::enter);
                // Ends when the controller (the only sender) is dropped.
                for job in queue {
                    job();
                }
            })
            .expect("spawning the reload thread");
        Worker { jobs }
    }

    /// Runs `job` on the worker thread; `Err` with the panic if it panicked (the thread goes on).
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> std::thread::Result<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have stopped waiting (shutdown): then nobody wants the answer.
            let _ = answer.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
        });
        self.jobs.send(job).expect("the reload thread runs as long as the controller");
        answered.await.expect("every job answers")
    }

    /// Gives back to the system what the worker thread (and this one) freed.
    pub async fn release_freed(&self) {
        crate::memory::release_freed();
        // Nothing in it can panic but a bug in the allocator.
        let _ = self.run(crate::memory::release_freed).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_job_runs_on_the_one_thread_and_a_panic_does_not_end_it() {
        let worker = Worker::start();
        let first = worker.run(|| std::thread::current().id()).await.unwrap();
        assert!(worker.run(|| panic!("a bug in a reload")).await.is_err());
        let after_panic = worker.run(|| std::thread::current().id()).await.unwrap();
        assert_eq!(first, after_panic);
        assert_ne!(first, std::thread::current().id());
        let inside_the_runtime = worker.run(|| tokio::runtime::Handle::try_current().is_ok()).await.unwrap();
        assert!(inside_the_runtime, "jobs can block on the runtime, as the endpoint sources' first fetch does");
    }
}
