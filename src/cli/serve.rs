//! `ambassador-xds serve --config-dir DIR`: compile, serve over ADS/SDS, watch, recompile, push
//! what changed. Never exits on bad input: diagnostics are logged and the last good
//! configuration of every file keeps being served.

use super::TranslationArgs;
use crate::compile::{self, Options};
use crate::diagnostic::{self, Diagnostic, Severity};
use crate::server::admin::{self, AdminState};
use crate::server::{self, Metrics, Shared};
use crate::snapshot::Snapshot;
use crate::source::config_dir::{tls_file_dirs, ChangeWatcher, ConfigDir};
use crate::source::files::{self, LoadOptions, Loaded};
use crate::source::kubernetes::{KubernetesOptions, KubernetesSource};
use crate::xds;
use anyhow::Context as _;
use clap::Args;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of Ambassador YAML (and Secrets), watched for changes
    #[arg(long, value_name = "DIR", required_unless_present = "kubernetes")]
    pub config_dir: Option<PathBuf>,

    /// Also (or instead) watch Mappings, TLSContexts, Listeners, Services and Secrets in the
    /// Kubernetes API (configuration from KUBECONFIG, or in-cluster)
    #[arg(long)]
    pub kubernetes: bool,

    /// With --kubernetes: watch only this namespace (repeatable; default: all namespaces)
    #[arg(long = "namespace", value_name = "NS", requires = "kubernetes")]
    pub namespaces: Vec<String>,

    /// Address of the gRPC xDS server (ADS and per-type services). Keep it on loopback or a
    /// private network: SDS carries private keys.
    #[arg(long, default_value = "127.0.0.1:18000", value_name = "HOST:PORT")]
    pub xds_address: SocketAddr,

    /// Address of the admin endpoint (/healthz, /readyz, /snapshot, /metrics)
    #[arg(long, default_value = "127.0.0.1:8877", value_name = "HOST:PORT")]
    pub admin_address: SocketAddr,

    #[command(flatten)]
    pub translation: TranslationArgs,

    /// Quiet time after the last file change before recompiling
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub debounce_ms: u64,
}

pub fn run(args: &ServeArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return super::exit::ERROR;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => super::exit::OK,
        Err(err) => {
            eprintln!("error: {err:#}");
            super::exit::ERROR
        }
    }
}

/// Compiles one snapshot from the sources and publishes it if anything changed.
struct Publisher {
    files: Option<ConfigDir>,
    kubernetes: Option<KubernetesSource>,
    load_options: LoadOptions,
    options: Options,
    snapshots: watch::Sender<Arc<Snapshot>>,
    last_diagnostics: BTreeSet<Diagnostic>,
}

impl Publisher {
    fn reload(&mut self) -> Loaded {
        let started = Instant::now();
        let mut loaded = self.files.as_mut().map(ConfigDir::load).unwrap_or_default();
        if let Some(kubernetes) = &self.kubernetes {
            let (model, diagnostics) = kubernetes.model();
            loaded.model.extend(model);
            loaded.diagnostics.extend(diagnostics);
        }
        loaded.tls_files = files::read_tls_files(&loaded.model, &self.load_options);
        let compiled = compile::compile(&loaded.model, &loaded.tls_files, &self.options);
        loaded.diagnostics.extend(compiled.diagnostics);
        diagnostic::normalize(&mut loaded.diagnostics);
        self.log_new_diagnostics(&loaded.diagnostics);

        let resources = xds::build(&compiled.ir);
        let previous = self.snapshots.borrow().clone();
        let snapshot = Snapshot::new(resources, previous.serial + 1, Some(&previous));
        if snapshot.same_content(&previous) && previous.serial > 0 {
            tracing::debug!(elapsed = ?started.elapsed(), "configuration unchanged");
        } else {
            tracing::info!(
                serial = snapshot.serial,
                clusters = snapshot.resources.clusters.len(),
                listeners = snapshot.resources.listeners.len(),
                secrets = snapshot.resources.secrets.len(),
                elapsed = ?started.elapsed(),
                "publishing configuration"
            );
            self.snapshots.send_replace(Arc::new(snapshot));
        }
        loaded
    }

    /// Logs diagnostics not seen in the previous load, so a watch loop does not repeat itself.
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

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.config_dir {
        anyhow::ensure!(dir.is_dir(), "--config-dir {}: not a directory", dir.display());
    }
    let options = args.translation.options();
    let load_options = args.translation.load_options();

    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::empty()));
    let (ready_tx, ready_rx) = watch::channel(false);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());

    let xds_listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("binding the xDS address {}", args.xds_address))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("binding the admin address {}", args.admin_address))?;

    // Servers first, so /healthz answers and Envoy can connect; streams wait for the first
    // snapshot (serial 1) before answering, and /readyz says so until then.
    let shared = Shared { snapshots: snapshot_rx.clone(), shutdown: shutdown_rx.clone(), metrics: metrics.clone() };
    let xds_server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_routes(server::routes(shared))
        .serve_with_incoming_shutdown(TcpListenerStream::new(xds_listener), wait_for(shutdown_rx.clone()));
    let admin_app = admin::router(AdminState { snapshots: snapshot_rx, ready: ready_rx, metrics });
    let admin_server = axum::serve(admin_listener, admin_app).with_graceful_shutdown(wait_for(shutdown_rx.clone()));
    let xds_task = tokio::spawn(xds_server);
    let admin_task = tokio::spawn(async move { admin_server.await });
    tracing::info!(xds = %args.xds_address, admin = %args.admin_address, "listening");

    let mut watcher =
        ChangeWatcher::new(Duration::from_millis(args.debounce_ms)).context("starting the file watcher")?;
    if let Some(dir) = &args.config_dir {
        watcher.watch(dir, true);
    }
    let kubernetes = if args.kubernetes {
        let client = kube::Client::try_default()
            .await
            .context("configuring the Kubernetes client (KUBECONFIG or in-cluster)")?;
        let source = KubernetesSource::start(
            client,
            &KubernetesOptions { namespaces: args.namespaces.clone() },
            watcher.notifier(),
        )
        .await;
        tokio::select! {
            () = source.synced() => tracing::info!("Kubernetes resources listed"),
            () = termination() => return Ok(()),
        }
        Some(source)
    } else {
        None
    };
    let mut publisher = Publisher {
        files: args.config_dir.clone().map(ConfigDir::new),
        kubernetes,
        load_options: load_options.clone(),
        options,
        snapshots: snapshot_tx,
        last_diagnostics: BTreeSet::new(),
    };
    let loaded = publisher.reload();
    for tls_dir in tls_file_dirs(&loaded, &load_options) {
        watcher.watch(&tls_dir, false);
    }
    ready_tx.send_replace(true);

    let mut shutdown = shutdown_rx.clone();
    loop {
        tokio::select! {
            change = watcher.changes.recv() => {
                if change.is_none() {
                    break;
                }
                let loaded = publisher.reload();
                for tls_dir in tls_file_dirs(&loaded, &load_options) {
                    watcher.watch(&tls_dir, false);
                }
            }
            () = termination() => {
                tracing::info!("shutting down: closing xDS streams");
                shutdown_tx.send_replace(true);
            }
            _ = shutdown.changed() => break,
        }
    }
    // Streams end on the shutdown signal; give the servers a moment to flush, then go.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = xds_task.await;
        let _ = admin_task.await;
    })
    .await;
    Ok(())
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// SIGTERM or SIGINT.
async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
