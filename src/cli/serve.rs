//! `ambassador-xds serve --config-dir DIR`: wires the sources, the controller, the xDS server
//! and the admin endpoint together. Never exits on bad input: diagnostics are logged and the
//! last good configuration keeps being served.

use super::consul::ConsulArgs;
use super::TranslationArgs;
use crate::controller::{Controller, ControllerOptions, Outputs, ReloadReport};
use crate::metrics::Metrics;
use crate::server::admin::{self, AdminState};
use crate::server::listen::{self, HttpVersion, Limits};
use crate::server::status::Registry;
use crate::server::{self, Shared};
use crate::snapshot::Snapshot;
use crate::source::config_dir::ConfigDirSource;
use crate::source::consul::{blocking, ConnectWatch, ConsulCertificateSource, ConsulClient, ConsulEndpoints};
use crate::source::endpoints::EndpointSource;
use crate::source::files::TlsFilePolicy;
use crate::source::kubernetes::{KubernetesEndpoints, KubernetesOptions, KubernetesSource};
use crate::source::{Changes, Source};
use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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

    /// Address of the admin endpoint (the diagnostics page /, /debug/status, /healthz, /readyz,
    /// /snapshot, /metrics). Keep it on loopback: it shows the whole configuration
    #[arg(long, default_value = "127.0.0.1:8877", value_name = "HOST:PORT")]
    pub admin_address: SocketAddr,

    /// Also serve /healthz and /readyz (nothing else) here: for kubelet probes on the Pod IP
    /// while --admin-address stays on loopback
    #[arg(long, value_name = "HOST:PORT")]
    pub health_address: Option<SocketAddr>,

    #[command(flatten)]
    pub translation: TranslationArgs,

    /// Quiet time after the last change before recompiling
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub debounce_ms: u64,

    /// Most connections open at once on each of the xDS and admin ports; more are closed at once
    #[arg(long, default_value_t = Limits::default().max_connections, value_name = "N")]
    pub max_connections: usize,

    /// Most concurrent HTTP/2 streams on one xDS connection (Envoy uses one for ADS)
    #[arg(long, default_value_t = Limits::default().max_streams_per_connection, value_name = "N")]
    pub max_streams_per_connection: u32,

    /// Close connections that carry no xDS stream (or admin request) for this long
    #[arg(long, default_value_t = Limits::default().idle_timeout.as_secs(), value_name = "SECONDS")]
    pub idle_timeout_s: u64,

    /// Longest a change waits for its recompile while changes keep coming (at least
    /// --debounce-ms)
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub debounce_max_ms: u64,

    /// Directory whose files TLSContexts may name in cert_chain_file, private_key_file and
    /// cacert_chain_file (repeatable). With --kubernetes, no other file is read (without this
    /// flag, none); otherwise, without it, any absolute path without `..` is
    #[arg(long = "tls-files-under", value_name = "DIR")]
    pub tls_file_roots: Vec<PathBuf>,

    /// Fetch Ambassador's Consul Connect certificate from the agent at HOST:PORT and serve it
    /// as the Secret ambassador-consul-connect (see the README's Consul section). Also the agent
    /// ConsulResolvers without an `address` use (default: CONSUL_HTTP_ADDR, else 127.0.0.1:8500)
    #[arg(long, value_name = "HOST:PORT")]
    pub consul_address: Option<String>,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

impl ServeArgs {
    /// The translation options; the probe routes go to this process's admin endpoint.
    fn compile_options(&self) -> crate::compile::Options {
        let mut options = self.translation.options();
        if self.translation.diagnostics_service.is_none() {
            let mut admin = self.admin_address;
            if admin.ip().is_unspecified() {
                admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            options.diagnostics_service = admin.to_string();
        }
        options
    }

    fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            max_streams_per_connection: self.max_streams_per_connection,
            idle_timeout: Duration::from_secs(self.idle_timeout_s.max(1)),
            ..Limits::default()
        }
    }
}

/// How long streams and connections get to close after SIGTERM before the process exits anyway
/// (a client that does not read never takes its last frames).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

pub fn run(args: &ServeArgs) -> i32 {
    // Reloads in a burst reuse what the one before freed (memory.rs).
    crate::memory::hold_freed();
    super::run_on_runtime(serve(args))
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.config_dir {
        anyhow::ensure!(dir.is_dir(), "--config-dir {}: not a directory", dir.display());
    }
    let shutdown = on_termination_signal()?;
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::empty()));
    let (ready_tx, ready_rx) = watch::channel(false);
    let (report_tx, report_rx) = watch::channel(Arc::new(ReloadReport::default()));
    let registry = Arc::new(Registry::default());
    let metrics = Arc::new(Metrics::default());

    let xds_listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("binding the xDS address {}", args.xds_address))?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("binding the admin address {}", args.admin_address))?;
    let health_listener = match args.health_address {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the health address {address}"))?,
        ),
        None => None,
    };

    // Servers first, so /healthz answers and Envoy can connect; streams wait for the first
    // snapshot (serial 1) before answering, and /readyz says so until then.
    let shared = Shared {
        snapshots: snapshot_rx.clone(),
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
        status: registry.clone(),
    };
    let limits = args.limits();
    let xds_task = tokio::spawn(listen::serve(
        xds_listener,
        server::routes(shared),
        HttpVersion::Http2,
        limits,
        metrics.clone(),
        shutdown.clone(),
    ));
    let admin_app = admin::router(AdminState {
        snapshots: snapshot_rx,
        ready: ready_rx.clone(),
        metrics: metrics.clone(),
        report: report_rx,
        status: registry,
    });
    let admin_task = tokio::spawn(listen::serve(
        admin_listener,
        admin_app,
        HttpVersion::Http1,
        limits,
        metrics.clone(),
        shutdown.clone(),
    ));
    let health_task = health_listener.map(|listener| {
        let router = admin::health_router(ready_rx.clone());
        tokio::spawn(listen::serve(listener, router, HttpVersion::Http1, limits, metrics.clone(), shutdown.clone()))
    });
    tracing::info!(xds = %args.xds_address, admin = %args.admin_address, "listening");

    let (changes, change_events) = Changes::channel();
    let (endpoint_changes, endpoint_events) = Changes::channel();
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut endpoint_sources: Vec<Arc<dyn EndpointSource>> = Vec::new();
    let default_agent = args
        .consul_address
        .clone()
        .or_else(|| std::env::var("CONSUL_HTTP_ADDR").ok().filter(|a| !a.is_empty()))
        .unwrap_or_else(|| "127.0.0.1:8500".to_string());
    let consul = args.consul.config(&default_agent).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Handle::current();
    endpoint_sources.push(Arc::new(ConsulEndpoints::new(
        consul.clone(),
        blocking::DEFAULT_WAIT,
        endpoint_changes.clone(),
        runtime,
    )));
    if let Some(address) = &args.consul_address {
        let client = ConsulClient::new(address, &consul).map_err(anyhow::Error::msg)?;
        let watch = ConnectWatch::start(client, &args.consul.service(), blocking::DEFAULT_WAIT);
        let namespace = args
            .consul
            .consul_secret_namespace
            .clone()
            .unwrap_or_else(|| args.translation.ambassador_namespace.clone());
        let name = args.consul.secret_name();
        tracing::info!(agent = %address, service = %args.consul.service(), secret = %format!("{namespace}/{name}"), "serving Consul's Connect certificate");
        sources.push(Box::new(ConsulCertificateSource::new(address, watch, &namespace, &name, changes.clone())));
    }
    if let Some(dir) = &args.config_dir {
        let source = ConfigDirSource::watched(dir.clone(), changes.clone()).context("starting the file watcher")?;
        sources.push(Box::new(source));
    }
    if args.kubernetes {
        let client = kube::Client::try_default()
            .await
            .context("configuring the Kubernetes client (KUBECONFIG or in-cluster)")?;
        let options = KubernetesOptions { namespaces: args.namespaces.clone() };
        tokio::select! {
            source = KubernetesSource::start(client.clone(), &options, changes.clone()) => {
                let endpoints = KubernetesEndpoints::new(client, &options, source.services(), endpoint_changes.clone());
                endpoint_sources.push(Arc::new(endpoints));
                sources.push(Box::new(source));
            }
            () = stopped(shutdown.clone()) => return Ok(()),
        }
    }
    let tls_file_roots = (args.kubernetes || !args.tls_file_roots.is_empty()).then(|| args.tls_file_roots.clone());
    let options = ControllerOptions {
        compile: args.compile_options(),
        load: args.translation.load_options(),
        tls_files: TlsFilePolicy { roots: tls_file_roots },
        debounce: Duration::from_millis(args.debounce_ms),
        debounce_max: Duration::from_millis(args.debounce_max_ms),
    };
    let outputs = Outputs { snapshots: snapshot_tx, ready: ready_tx, report: report_tx, metrics };
    let controller =
        Controller::new(sources, endpoint_sources, options, changes, outputs).context("starting the file watcher")?;
    controller.run(change_events, endpoint_events, shutdown.clone()).await;

    // Streams end with UNAVAILABLE on the shutdown signal; give them a moment to flush, then go.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = xds_task.await;
        let _ = admin_task.await;
        if let Some(task) = health_task {
            let _ = task.await;
        }
    })
    .await;
    Ok(())
}

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Registers SIGTERM and SIGINT once, for the whole process; the returned flag turns true on the
/// first of them, whatever the rest of the process is doing at the time.
pub(super) fn on_termination_signal() -> anyhow::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("registering the SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("registering the SIGINT handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::info!("shutting down: closing xDS streams");
            tx.send_replace(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: closing xDS streams");
        tx.send_replace(true);
    });
    Ok(rx)
}
