//! Between the sources and the server: waits for change events, debounces them, reads every
//! source and compiles on a blocking thread (never on the async runtime that serves Envoy),
//! keeps each source's last good contribution and every resource's last good version, and
//! publishes a snapshot when anything changed.

mod debounce;
mod reload;

pub use debounce::Debounce;

use crate::compile::Options;
use crate::diagnostic::{Diagnostic, Provenance};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::source::files::{LoadOptions, TlsFilePolicy};
use crate::source::{Changes, FileWatcher, Source};
use reload::Compiler;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

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
    pub inventory: Vec<Provenance>,
}

pub struct Controller {
    /// `None` only while a reload runs on its blocking thread.
    compiler: Option<Compiler>,
    /// Watches the directories of the files TLSContexts name (any source's).
    tls_watcher: FileWatcher,
    debounce: Debounce,
    outputs: Outputs,
}

impl Controller {
    /// `changes` is the handle the sources notify; the controller adds its own watches (the
    /// files TLSContexts name) to it.
    pub fn new(
        sources: Vec<Box<dyn Source>>,
        options: ControllerOptions,
        changes: Changes,
        outputs: Outputs,
    ) -> notify::Result<Controller> {
        Ok(Controller {
            debounce: Debounce::new(options.debounce, options.debounce_max),
            compiler: Some(Compiler::new(sources, options)),
            tls_watcher: FileWatcher::new(changes)?,
            outputs,
        })
    }

    /// Waits for every source to be ready, publishes the first snapshot, then reloads after each
    /// burst of changes (see [`Debounce`]) until `shutdown` turns true (or every change handle is
    /// gone).
    pub async fn run(mut self, mut changes: mpsc::UnboundedReceiver<()>, mut shutdown: watch::Receiver<bool>) {
        let compiler = self.compiler.as_ref().expect("no reload is running");
        tokio::select! {
            _ = compiler.all_ready() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if self.reload(&mut shutdown).await.is_err() {
            return;
        }
        self.outputs.ready.send_replace(true);
        loop {
            let deadline = self.debounce.deadline();
            let due = tokio::select! {
                change = changes.recv() => match change {
                    Some(()) => {
                        self.debounce.change(std::time::Instant::now());
                        false
                    }
                    None => return,
                },
                _ = sleep_until(deadline), if deadline.is_some() => true,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            if due {
                self.debounce.start_reload();
                if self.reload(&mut shutdown).await.is_err() {
                    return;
                }
            }
        }
    }

    /// One reload on a blocking thread; `Err` if shutdown came first (the reload is abandoned).
    async fn reload(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ShuttingDown> {
        let mut compiler = self.compiler.take().expect("one reload at a time");
        let previous = self.outputs.snapshots.borrow().clone();
        let started = std::time::Instant::now();
        let task = tokio::task::spawn_blocking(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compiler.reload(&previous)));
            (compiler, outcome)
        });
        let (compiler, outcome) = tokio::select! {
            joined = task => joined.expect("the reload task is never cancelled"),
            _ = shutdown.wait_for(|stop| *stop) => return Err(ShuttingDown),
        };
        self.compiler = Some(compiler);
        let metrics = &self.outputs.metrics;
        metrics.reload_duration.observe(started.elapsed());
        match outcome {
            Ok(outcome) => {
                for dir in &outcome.tls_dirs {
                    self.tls_watcher.watch(dir, false);
                }
                metrics.reloads.inc(if outcome.snapshot.is_some() { "published" } else { "unchanged" });
                if let Some(snapshot) = outcome.snapshot {
                    self.outputs.snapshots.send_replace(Arc::new(snapshot));
                }
                self.outputs.report.send_if_modified(|current| {
                    let changed = **current != outcome.report;
                    if changed {
                        *current = Arc::new(outcome.report);
                    }
                    changed
                });
            }
            // A bug, not bad input: keep serving the last snapshot and say so.
            Err(_) => {
                metrics.reloads.inc("failed");
                tracing::error!("the reload panicked; the previous configuration stays in service");
            }
        }
        Ok(())
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
