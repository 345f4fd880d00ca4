//! Between the sources and the server: waits for change events, debounces them, reads every
//! source and compiles on a thread of its own (never on the async runtime that serves Envoy),
//! keeps each source's last good contribution and every resource's last good version, and
//! publishes a snapshot when anything changed.

mod debounce;
mod endpoints;
mod reload;
mod worker;

pub use debounce::Debounce;
pub use endpoints::FIRST_FETCH;

use crate::compile::Options;
use crate::diagnostic::{Diagnostic, Provenance};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::source::endpoints::EndpointSource;
use crate::source::files::{LoadOptions, TlsFilePolicy};
use crate::source::{Changes, FileWatcher, Source};
use reload::{Compiler, Outcome};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use worker::Worker;

#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub compile: Options,
    pub load: LoadOptions,
    pub tls_files: TlsFilePolicy,
    /// Quiet time after the last change before a reload.
    pub debounce: Duration,
    /// Longest a change waits for its reload, however steady the churn.
    pub debounce_max: Duration,
}

/// Where the controller publishes: snapshots, readiness, what the last reload found, and the
/// reload counters.
pub struct Outputs {
    pub snapshots: watch::Sender<Arc<Snapshot>>,
    pub ready: watch::Sender<bool>,
    pub report: watch::Sender<Arc<ReloadReport>>,
    pub metrics: Arc<Metrics>,
}

/// What the last reload found, for operators.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadReport {
    /// Reading and compiling problems, as logged.
    pub diagnostics: Vec<Diagnostic>,
    /// Every resource read from the sources, and where from.
    pub inventory: Inventory,
}

/// Every resource a reload read, and where from: the model it read, listed when asked for (the
/// admin page), not on every reload (listing, copying and dropping 50,000 entries was a
/// fifteenth of a one-Mapping reload at 50,000 Mappings). The model is shared with the last good
/// versions, so holding it costs nothing more.
#[derive(Clone, Default)]
pub struct Inventory(Arc<crate::model::Model>);

impl Inventory {
    pub fn of(model: Arc<crate::model::Model>) -> Inventory {
        Inventory(model)
    }

    /// In source order by kind (see [`crate::model::Model::inventory`]).
    pub fn list(&self) -> Vec<Provenance> {
        self.0.inventory()
    }
}

impl PartialEq for Inventory {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.list() == other.list()
    }
}

impl std::fmt::Debug for Inventory {
    // The model holds Secrets: only how many resources there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inventory({} resources)", self.list().len())
    }
}

/// Endpoint changes wait less than configuration changes (they are cheap to apply: nothing is
/// compiled), but bursts of them (a rollout) are still one update.
pub const ENDPOINT_QUIET: Duration = Duration::from_millis(10);
pub const ENDPOINT_MAX_DELAY: Duration = Duration::from_millis(100);

/// How long the controller is idle (no reload, no endpoint refresh) before what the jobs freed
/// goes back to the system (see `worker.rs`). Over a burst of changes the memory is reused.
pub const RELEASE_WHEN_IDLE: Duration = Duration::from_secs(2);

pub struct Controller {
    /// `None` only while a reload runs on the worker thread.
    compiler: Option<Compiler>,
    worker: Worker,
    /// Watches the directories of the files TLSContexts name (any source's).
    tls_watcher: FileWatcher,
    debounce: Debounce,
    endpoint_debounce: Debounce,
    outputs: Outputs,
}

/// What a worker-thread job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// Read every source, compile, build everything.
    Reload,
    /// Rebuild only the endpoint assignments.
    Endpoints,
}

impl Controller {
    /// `changes` is the handle the sources notify; the controller adds its own watches (the
    /// files TLSContexts name) to it. Endpoint sources notify a channel of their own (see
    /// [`Controller::run`]).
    pub fn new(
        sources: Vec<Box<dyn Source>>,
        endpoint_sources: Vec<Arc<dyn EndpointSource>>,
        options: ControllerOptions,
        changes: Changes,
        outputs: Outputs,
    ) -> notify::Result<Controller> {
        Ok(Controller {
            debounce: Debounce::new(options.debounce, options.debounce_max),
            endpoint_debounce: Debounce::new(ENDPOINT_QUIET, ENDPOINT_MAX_DELAY),
            compiler: Some(Compiler::new(sources, endpoint_sources, options)),
            worker: Worker::start(),
            tls_watcher: FileWatcher::new(changes)?,
            outputs,
        })
    }

    /// Waits for every source to be ready, publishes the first snapshot, then reloads after each
    /// burst of `changes` (see [`Debounce`]) and rebuilds the endpoint assignments after each
    /// burst of `endpoint_changes`, until `shutdown` turns true (or every change handle is gone).
    pub async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<()>,
        mut endpoint_changes: mpsc::UnboundedReceiver<()>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let compiler = self.compiler.as_ref().expect("no reload is running");
        tokio::select! {
            _ = compiler.all_ready() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if self.run_job(Job::Reload, &mut shutdown).await.is_err() {
            return;
        }
        self.outputs.ready.send_replace(true);
        let mut endpoint_changes_open = true;
        let mut release_at = Some(std::time::Instant::now() + RELEASE_WHEN_IDLE);
        loop {
            let (deadline, endpoint_deadline) = (self.debounce.deadline(), self.endpoint_debounce.deadline());
            let due = tokio::select! {
                change = changes.recv() => match change {
                    Some(()) => {
                        self.debounce.change(std::time::Instant::now());
                        None
                    }
                    None => return,
                },
                change = endpoint_changes.recv(), if endpoint_changes_open => {
                    match change {
                        Some(()) => self.endpoint_debounce.change(std::time::Instant::now()),
                        None => endpoint_changes_open = false,
                    }
                    None
                }
                _ = sleep_until(deadline), if deadline.is_some() => Some(Job::Reload),
                _ = sleep_until(endpoint_deadline), if endpoint_deadline.is_some() => Some(Job::Endpoints),
                _ = sleep_until(release_at), if release_at.is_some() => {
                    release_at = None;
                    self.worker.release_freed().await;
                    None
                }
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            if let Some(job) = due {
                if job == Job::Reload {
                    self.debounce.start_reload();
                }
                // A reload builds the endpoints too.
                self.endpoint_debounce.start_reload();
                if self.run_job(job, &mut shutdown).await.is_err() {
                    return;
                }
                release_at = Some(std::time::Instant::now() + RELEASE_WHEN_IDLE);
            }
        }
    }

    /// One job on the worker thread; `Err` if shutdown came first (the job is abandoned).
    async fn run_job(&mut self, job: Job, shutdown: &mut watch::Receiver<bool>) -> Result<(), ShuttingDown> {
        // What the sources freed on this thread while decoding the changes (memory.rs), without
        // handing back what the worker freed and is about to build again: that waits until the
        // controller is idle.
        crate::memory::release_expired();
        let mut compiler = self.compiler.take().expect("one job at a time");
        let previous = self.outputs.snapshots.borrow().clone();
        let started = std::time::Instant::now();
        let task = self.worker.run(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match job {
                Job::Reload => compiler.reload(&previous),
                Job::Endpoints => compiler.refresh_endpoints(&previous),
            }));
            (compiler, outcome)
        });
        let (compiler, outcome) = tokio::select! {
            joined = task => joined.expect("the job catches its own panics"),
            _ = shutdown.wait_for(|stop| *stop) => return Err(ShuttingDown),
        };
        self.compiler = Some(compiler);
        // Endpoint refreshes are not reloads: the reload metrics count compiles only.
        let metrics = self.outputs.metrics.clone();
        match outcome {
            Ok(outcome) => {
                if let Job::Reload = job {
                    metrics.reload_duration.observe(started.elapsed());
                    metrics.reloads.inc(if outcome.snapshot.is_some() { "published" } else { "unchanged" });
                }
                self.publish(outcome);
                // What the previous snapshot held, dropped here as the new one replaced it.
                crate::memory::release_freed();
            }
            // A bug, not bad input: keep serving the last snapshot and say so.
            Err(_) => {
                metrics.reloads.inc("failed");
                tracing::error!("the reload panicked; the previous configuration stays in service");
            }
        }
        Ok(())
    }

    fn publish(&mut self, outcome: Outcome) {
        for dir in &outcome.tls_dirs {
            self.tls_watcher.watch(dir, false);
        }
        if let Some(snapshot) = outcome.snapshot {
            self.outputs.snapshots.send_replace(Arc::new(snapshot));
        }
        // Replaced as it is: no one waits for a change, and comparing it with the last one would
        // list both inventories.
        self.outputs.report.send_replace(Arc::new(outcome.report));
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

struct ShuttingDown;

#[cfg(test)]
mod tests;
