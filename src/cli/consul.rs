//! The Consul settings `serve` and `consul-connect` share, under the names Consul's own tools and
//! Emissary's connector read from the environment.

use crate::model::Sensitive;
use crate::source::consul::connect::{default_secret_name, service_name};
use crate::source::consul::ConsulConfig;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct ConsulArgs {
    /// The AMBASSADOR_ID part of the Consul service whose certificate is fetched: `ambassador`,
    /// or `ambassador-<ID>` when set
    #[arg(long = "consul-ambassador-id", env = "_AMBASSADOR_ID", default_value = "", value_name = "ID")]
    pub consul_ambassador_id: String,

    /// Name of the Secret the Connect certificate is stored as (default `<service>-consul-connect`,
    /// so `ambassador-consul-connect`)
    #[arg(long = "consul-secret-name", env = "_AMBASSADOR_TLS_SECRET_NAME", value_name = "NAME")]
    pub consul_secret_name: Option<String>,

    /// Namespace of that Secret (default: the Pod's namespace for `consul-connect`, the
    /// --ambassador-namespace for `serve`)
    #[arg(long = "consul-secret-namespace", env = "_AMBASSADOR_TLS_SECRET_NAMESPACE", value_name = "NS")]
    pub consul_secret_namespace: Option<String>,

    /// ACL token, sent as `X-Consul-Token`
    #[arg(long = "consul-token", env = "CONSUL_HTTP_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub consul_token: Option<String>,

    /// File holding the ACL token (read once, at start)
    #[arg(long = "consul-token-file", env = "CONSUL_HTTP_TOKEN_FILE", value_name = "FILE")]
    pub consul_token_file: Option<PathBuf>,

    /// HTTPS to Consul agents whose address has no scheme
    #[arg(long = "consul-https", env = "CONSUL_HTTP_SSL")]
    pub consul_https: bool,

    /// CA certificate(s) that sign the agent's certificate (default: the system's roots)
    #[arg(long = "consul-cacert", env = "CONSUL_CACERT", value_name = "FILE")]
    pub consul_cacert: Option<PathBuf>,

    /// Client certificate for agents that verify clients (`verify_incoming`)
    #[arg(
        long = "consul-client-cert",
        env = "CONSUL_CLIENT_CERT",
        value_name = "FILE",
        requires = "consul_client_key"
    )]
    pub consul_client_cert: Option<PathBuf>,

    /// Key of --consul-client-cert
    #[arg(long = "consul-client-key", env = "CONSUL_CLIENT_KEY", value_name = "FILE", requires = "consul_client_cert")]
    pub consul_client_key: Option<PathBuf>,

    /// Name the agent's certificate is checked against (default: the host of its address)
    #[arg(long = "consul-tls-server-name", env = "CONSUL_TLS_SERVER_NAME", value_name = "NAME")]
    pub consul_tls_server_name: Option<String>,
}

impl ConsulArgs {
    /// The Consul service Ambassador's certificate is issued to.
    pub fn service(&self) -> String {
        service_name(&self.consul_ambassador_id)
    }

    pub fn secret_name(&self) -> String {
        self.consul_secret_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_secret_name(&self.service()))
    }

    /// How to reach agents, with `address` as the default agent. Reads the token file.
    pub fn config(&self, address: &str) -> Result<ConsulConfig, String> {
        let token = match (&self.consul_token, &self.consul_token_file) {
            (Some(token), _) if !token.is_empty() => Some(token.trim().as_bytes().to_vec()),
            (_, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|err| format!("CONSUL_HTTP_TOKEN_FILE {}: {err}", file.display()))?
                    .trim()
                    .as_bytes()
                    .to_vec(),
            ),
            _ => None,
        };
        Ok(ConsulConfig {
            address: address.to_string(),
            https: self.consul_https,
            ca_file: self.consul_cacert.clone(),
            client_cert: self.consul_client_cert.clone().zip(self.consul_client_key.clone()),
            server_name: self.consul_tls_server_name.clone(),
            token: token.map(Sensitive::new),
        })
    }
}
