//! Between the sources and the server: waits for change events, debounces them, reads every
//! source and compiles on a blocking thread (never on the async runtime that serves Envoy),
//! keeps each source's last good contribution, and publishes a snapshot when anything changed.

use crate::compile::Options;
use crate::diagnostic::{Diagnostic, Severity};
use crate::pipeline;
use crate::snapshot::Snapshot;
use crate::source::files::{self, LoadOptions, Loaded};
use crate::source::{Changes, Contribution, FileWatcher, Source};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub compile: Options,
    pub load: LoadOptions,
    /// Quiet time after the last change before a reload.
    pub debounce: Duration,
}

pub struct Controller {
    /// `None` only while a reload runs on its blocking thread.
    compiler: Option<Compiler>,
    /// Watches the directories of the files TLSContexts name (any source's).
    tls_watcher: FileWatcher,
    debounce: Duration,
    publish: watch::Sender<Arc<Snapshot>>,
    ready: watch::Sender<bool>,
}

/// A source and what it last contributed successfully.
struct SourceSlot {
    source: Box<dyn Source>,
    last_good: Option<Contribution>,
}

/// Everything a reload needs, moved to the blocking thread and back.
struct Compiler {
    sources: Vec<SourceSlot>,
    options: ControllerOptions,
    /// What the previous reload reported, so a watch loop does not repeat itself in the log.
    last_diagnostics: BTreeSet<Diagnostic>,
}

struct Outcome {
    /// `None` when the configuration did not change.
    snapshot: Option<Snapshot>,
    tls_dirs: BTreeSet<PathBuf>,
}

impl Controller {
    /// `changes` is the handle the sources notify; the controller adds its own watches (the
    /// files TLSContexts name) to it.
    pub fn new(
        sources: Vec<Box<dyn Source>>,
        options: ControllerOptions,
        changes: Changes,
        publish: watch::Sender<Arc<Snapshot>>,
        ready: watch::Sender<bool>,
    ) -> notify::Result<Controller> {
        let sources = sources.into_iter().map(|source| SourceSlot { source, last_good: None }).collect();
        Ok(Controller {
            debounce: options.debounce,
            compiler: Some(Compiler { sources, options, last_diagnostics: BTreeSet::new() }),
            tls_watcher: FileWatcher::new(changes)?,
            publish,
            ready,
        })
    }

    /// Waits for every source to be ready, publishes the first snapshot, then reloads after each
    /// burst of changes until `shutdown` turns true (or every change handle is gone).
    pub async fn run(mut self, mut changes: mpsc::UnboundedReceiver<()>, mut shutdown: watch::Receiver<bool>) {
        let compiler = self.compiler.as_ref().expect("no reload is running");
        let all_ready = futures::future::join_all(compiler.sources.iter().map(|slot| slot.source.ready()));
        tokio::select! {
            _ = all_ready => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if self.reload(&mut shutdown).await.is_err() {
            return;
        }
        self.ready.send_replace(true);
        loop {
            tokio::select! {
                change = changes.recv() => if change.is_none() { return },
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            // Trailing-edge debounce: wait until the burst (editor saves, atomic renames) is over.
            loop {
                tokio::select! {
                    more = tokio::time::timeout(self.debounce, changes.recv()) => match more {
                        Ok(Some(())) => continue,
                        Ok(None) | Err(_) => break,
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
            if self.reload(&mut shutdown).await.is_err() {
                return;
            }
        }
    }

    /// One reload on a blocking thread; `Err` if shutdown came first (the reload is abandoned).
    async fn reload(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ShuttingDown> {
        let mut compiler = self.compiler.take().expect("one reload at a time");
        let previous = self.publish.borrow().clone();
        let task = tokio::task::spawn_blocking(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compiler.reload(&previous)));
            (compiler, outcome)
        });
        let (compiler, outcome) = tokio::select! {
            joined = task => joined.expect("the reload task is never cancelled"),
            _ = shutdown.wait_for(|stop| *stop) => return Err(ShuttingDown),
        };
        self.compiler = Some(compiler);
        match outcome {
            Ok(outcome) => {
                for dir in &outcome.tls_dirs {
                    self.tls_watcher.watch(dir, false);
                }
                if let Some(snapshot) = outcome.snapshot {
                    self.publish.send_replace(Arc::new(snapshot));
                }
            }
            // A bug, not bad input: keep serving the last snapshot and say so.
            Err(_) => tracing::error!("the reload panicked; the previous configuration stays in service"),
        }
        Ok(())
    }
}

struct ShuttingDown;

impl Compiler {
    fn reload(&mut self, previous: &Snapshot) -> Outcome {
        let started = Instant::now();
        let mut loaded = Loaded::default();
        for slot in &mut self.sources {
            match slot.source.read() {
                Ok(contribution) => slot.last_good = Some(contribution),
                Err(problem) => {
                    // The source as a whole is unreadable: what it held before stays in service.
                    loaded.diagnostics.push(*problem);
                }
            }
            if let Some(contribution) = &slot.last_good {
                loaded.model.extend(contribution.model.clone());
                loaded.diagnostics.extend(contribution.diagnostics.iter().cloned());
            }
        }
        loaded.tls_files = files::read_tls_files(&loaded.model, &self.options.load);
        let tls_dirs = files::tls_file_dirs(&loaded.tls_files, &self.options.load);
        let translation = pipeline::translate(loaded, &self.options.compile);
        self.log_new_diagnostics(&translation.diagnostics);

        let snapshot = Snapshot::new(translation.resources, previous.serial + 1, Some(previous));
        if snapshot.same_content(previous) && previous.serial > 0 {
            tracing::debug!(elapsed = ?started.elapsed(), "configuration unchanged");
            return Outcome { snapshot: None, tls_dirs };
        }
        let counts: Vec<String> =
            snapshot.resources.counts().map(|(t, n)| format!("{}={n}", t.golden_field())).collect();
        tracing::info!(
            serial = snapshot.serial,
            resources = %counts.join(" "),
            elapsed = ?started.elapsed(),
            "publishing configuration"
        );
        Outcome { snapshot: Some(snapshot), tls_dirs }
    }

    /// Logs diagnostics not seen in the previous reload.
    fn log_new_diagnostics(&mut self, diagnostics: &[Diagnostic]) {
        let current: BTreeSet<Diagnostic> = diagnostics.iter().cloned().collect();
        for diagnostic in current.difference(&self.last_diagnostics) {
            match diagnostic.severity {
                Severity::Error => tracing::error!("{diagnostic}"),
                Severity::Warning => tracing::warn!("{diagnostic}"),
            }
        }
        let fixed = self.last_diagnostics.difference(&current).count();
        if fixed > 0 {
            tracing::info!(fixed, "problems reported earlier are gone");
        }
        self.last_diagnostics = current;
    }
}
