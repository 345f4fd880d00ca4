//! `ambassador-xds consul-connect`: stores Consul Connect's certificate for Ambassador as the
//! Kubernetes Secret `ambassador-consul-connect` (see `connector`), configured as the seed
//! documents (`_CONSUL_HOST`, `_CONSUL_PORT`, `_AMBASSADOR_ID`, `_AMBASSADOR_TLS_SECRET_NAME`,
//! `_AMBASSADOR_TLS_SECRET_NAMESPACE`) plus the ACL token and TLS settings Consul's tools read.

use super::consul::ConsulArgs;
use crate::connector::lease::LeaseConfig;
use crate::connector::status::{self, Shared};
use crate::connector::store::Target;
use crate::connector::{self, Connector};
use crate::metrics::Metrics;
use crate::server::listen::{self, HttpVersion, Limits};
use crate::source::consul::{blocking, ConsulClient};
use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ConsulConnectArgs {
    /// IP or DNS name of the Consul agent's HTTP API (Emissary's manifest gives the node's IP)
    #[arg(long, env = "_CONSUL_HOST", default_value = "127.0.0.1", value_name = "HOST")]
    pub consul_host: String,

    /// Port of the Consul agent's HTTP API
    #[arg(long, env = "_CONSUL_PORT", default_value_t = 8500, value_name = "PORT")]
    pub consul_port: u16,

    #[command(flatten)]
    pub consul: ConsulArgs,

    /// Create this TLSContext (`hosts: []`, `secret:` the Secret) when it is missing (default:
    /// `<service>-consul`, so `ambassador-consul`)
    #[arg(long, value_name = "NAME")]
    pub tls_context: Option<String>,

    /// Never create a TLSContext
    #[arg(long, conflicts_with = "tls_context")]
    pub no_tls_context: bool,

    /// The Lease that elects the one replica that writes (default: the Secret's name)
    #[arg(long, value_name = "NAME")]
    pub lease_name: Option<String>,

    /// How long a lease lasts without renewal: a dead writer is replaced within this time
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub lease_duration_s: u64,

    /// This replica's name in the Lease (default: the Pod's name)
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,

    /// Address of /healthz, /readyz and /metrics
    #[arg(long, default_value = "127.0.0.1:8878", value_name = "HOST:PORT")]
    pub admin_address: SocketAddr,

    /// How long Consul may hold a blocking query
    #[arg(long, default_value_t = blocking::DEFAULT_WAIT.as_secs(), value_name = "SECONDS")]
    pub consul_wait_s: u64,
}

pub fn run(args: &ConsulConnectArgs) -> i32 {
    super::run_on_runtime(connect(args))
}

async fn connect(args: &ConsulConnectArgs) -> anyhow::Result<()> {
    let shutdown = super::serve::on_termination_signal()?;
    let address = format!("{}:{}", bracketed(&args.consul_host), args.consul_port);
    let config = args.consul.config(&address).map_err(anyhow::Error::msg)?;
    let consul = ConsulClient::new(&address, &config).map_err(anyhow::Error::msg)?;
    let kube_config =
        kube::Config::infer().await.context("configuring the Kubernetes client (KUBECONFIG or in-cluster)")?;
    let namespace =
        args.consul.consul_secret_namespace.clone().unwrap_or_else(|| kube_config.default_namespace.clone());
    let client = kube::Client::try_from(kube_config).context("building the Kubernetes client")?;

    let service = args.consul.service();
    let secret = args.consul.secret_name();
    let ambassador_id = Some(args.consul.consul_ambassador_id.trim().to_string()).filter(|id| !id.is_empty());
    let tls_context =
        (!args.no_tls_context).then(|| args.tls_context.clone().unwrap_or_else(|| format!("{service}-consul")));
    let identity = args.identity.clone().filter(|i| !i.is_empty()).unwrap_or_else(default_identity);
    let duration = Duration::from_secs(args.lease_duration_s.max(1));
    let lease = LeaseConfig {
        name: args.lease_name.clone().unwrap_or_else(|| secret.clone()),
        namespace: namespace.clone(),
        identity: identity.clone(),
        duration,
        renew_every: (duration / 5).max(Duration::from_millis(200)),
    };
    let target = Target { namespace: namespace.clone(), secret: secret.clone(), tls_context, ambassador_id };

    let shared = Shared::default();
    let admin = tokio::net::TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("binding the admin address {}", args.admin_address))?;
    let metrics = Arc::new(Metrics::default());
    let admin_task = tokio::spawn(listen::serve(
        admin,
        status::router(shared.clone()),
        HttpVersion::Http1,
        Limits::default(),
        metrics,
        shutdown.clone(),
    ));
    tracing::info!(
        consul = %consul.base(),
        %service,
        secret = %format!("{namespace}/{secret}"),
        %identity,
        admin = %args.admin_address,
        "consul-connect starting"
    );
    let connector = Connector { consul, service, target, lease, wait: Duration::from_secs(args.consul_wait_s.max(1)) };
    connector::run(connector, client, shared, shutdown).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), admin_task).await;
    Ok(())
}

/// An IPv6 literal in a `host:port`.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The host name and process id, when no Pod name is given.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{}-{}", if host.is_empty() { "consul-connect" } else { &host }, std::process::id())
}
