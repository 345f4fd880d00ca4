//! Where configuration comes from. Everything here does I/O; everything it produces is handed to
//! the pure pipeline (`model` → `compile` → `xds`).
//!
//! A [`Source`] holds part of the configuration (a directory, the Kubernetes API, ...) and tells
//! the controller through [`Changes`] when it may have changed; the controller then reads every
//! source, compiles, and publishes. Sources never see xDS.

pub mod config_dir;
pub mod consul;
pub mod deadline;
pub mod endpoints;
pub mod files;
pub mod kubernetes;
pub mod read;
pub mod walk;
mod watch;

pub use watch::FileWatcher;

use crate::diagnostic::Diagnostic;
use crate::model::Model;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;

/// What one source holds now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contribution {
    pub model: Model,
    pub diagnostics: Vec<Diagnostic>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Part of the configuration, read whenever [`Changes`] says it may have changed.
pub trait Source: Send + 'static {
    /// For logs: `config-dir /etc/ambassador`, `kubernetes`.
    fn name(&self) -> String;

    /// Resolves once the source has a complete first view (Kubernetes: every kind listed once).
    /// Nothing is published before every source is ready: a partial first snapshot would make a
    /// reconnecting Envoy drop the rest of its configuration.
    fn ready(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// The source's current resources. Called on a blocking thread (it may read files).
    /// `Err` means the source could not be read as a whole; the controller then keeps what the
    /// source contributed last and reports the diagnostic.
    fn read(&mut self) -> Result<Contribution, Box<Diagnostic>>;
}

/// Change notifications from the sources to the controller. Cheap to clone and to call from any
/// thread (file watcher callbacks, watch tasks); the controller debounces bursts.
#[derive(Debug, Clone)]
pub struct Changes(mpsc::UnboundedSender<()>);

impl Changes {
    pub fn channel() -> (Changes, mpsc::UnboundedReceiver<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Changes(tx), rx)
    }

    /// Something may have changed.
    pub fn notify(&self) {
        // The controller is gone only when the process is shutting down.
        let _ = self.0.send(());
    }
}
