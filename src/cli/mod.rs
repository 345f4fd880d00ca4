//! Command-line interface: one module per subcommand. `main.rs` only parses and dispatches.

pub mod bootstrap;
pub mod consul;
pub mod consul_connect;
pub mod diff;
pub mod serve;
pub mod status;
pub mod translate;

use crate::compile::ir::UnderscoreHeaders;
use crate::compile::{Options, SecretNamespaces};
use crate::diagnostic::Diagnostic;
use crate::source::files::LoadOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ambassador-xds",
    version,
    about = "Compile Ambassador Mappings, TLSContexts and Secrets into Envoy xDS resources",
    long_about = "ambassador-xds reads Ambassador (Emissary-ingress) resources and produces the Envoy \
                  Listeners, Routes, Clusters (with UpstreamTlsContext) and SDS Secrets that make a \
                  stock Envoy originate mutual TLS to upstream services."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the Envoy resources compiled from PATHs (the golden-file format)
    Translate(translate::TranslateArgs),
    /// Compare the Envoy resources compiled from PATHs with a golden file
    Diff(diff::DiffArgs),
    /// Serve a watched config directory to Envoy over ADS/SDS (gRPC)
    Serve(Box<serve::ServeArgs>),
    /// Print an Envoy bootstrap that points ADS at ambassador-xds
    Bootstrap(bootstrap::BootstrapArgs),
    /// Store Consul Connect's certificate for Ambassador as the Kubernetes Secret
    /// ambassador-consul-connect (the Consul connector of the mTLS docs)
    ConsulConnect(Box<consul_connect::ConsulConnectArgs>),
    /// Show the Envoys connected to a running `serve` and whether each took the latest
    /// configuration (exit 1 when any did not)
    Status(status::StatusArgs),
}

/// Inputs of the commands that compile from paths.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Files or directories (searched recursively for .yaml, .yml and .json) holding Ambassador
    /// resources and Kubernetes Secrets
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub translation: TranslationArgs,
}

impl CompileArgs {
    pub fn options(&self) -> Options {
        self.translation.options()
    }

    pub fn load_options(&self) -> LoadOptions {
        self.translation.load_options()
    }
}

/// How resources are translated: shared by `translate`, `diff` and `serve`.
#[derive(Debug, Args)]
pub struct TranslationArgs {
    /// Port of the HTTP listener created when no Listener resource is given
    #[arg(long, default_value_t = 8080, value_name = "N")]
    pub listener_port: u16,

    /// Namespace Ambassador runs in: bare service names from Mappings in other namespaces get
    /// `.<namespace>` appended
    #[arg(long, default_value = "default", value_name = "NS")]
    pub ambassador_namespace: String,

    /// Use only resources whose ambassador_id names this instance
    #[arg(long, env = "AMBASSADOR_ID", default_value = "default", value_name = "ID")]
    pub ambassador_id: String,

    /// Read absolute cert_chain_file/private_key_file/cacert_chain_file paths under DIR (to
    /// translate a config written for a container on another machine)
    #[arg(long, value_name = "DIR")]
    pub files_root: Option<PathBuf>,

    /// Largest RE2 program a regex may compile to: Envoy's `re2.max_program_size.error_level`,
    /// which `bootstrap` sets to the same value (give both the same number)
    #[arg(long, default_value_t = crate::xds::validate::DEFAULT_REGEX_PROGRAM_SIZE_LIMIT, value_name = "N")]
    pub max_regex_program_size: u32,

    /// Which namespaces' Secrets a TLSContext may name: `any` (as Emissary: `secret: name.ns`
    /// reaches any namespace) or `own` (its own, plus --allow-secret-namespace; for multi-tenant
    /// clusters)
    #[arg(long, value_enum, default_value_t = SecretNamespacePolicy::Any, value_name = "POLICY")]
    pub secret_namespaces: SecretNamespacePolicy,

    /// With --secret-namespaces own: a namespace whose Secrets every TLSContext may name (repeatable)
    #[arg(long = "allow-secret-namespace", value_name = "NS")]
    pub allowed_secret_namespaces: Vec<String>,

    /// What listeners do with request headers whose names contain `_`: allow (Emissary's
    /// default), drop, or reject (answer 400; what Envoy recommends at the edge, since some
    /// upstreams read `x_forwarded_for` as `x-forwarded-for`)
    #[arg(long, value_enum, default_value_t = UnderscorePolicy::Allow, value_name = "ACTION")]
    pub headers_with_underscores: UnderscorePolicy,

    /// Where Envoy reaches the admin endpoint, which answers Emissary's probe routes
    /// (/ambassador/v0/check_alive, check_ready); default: `serve`'s --admin-address (loopback
    /// when it binds every address), else 127.0.0.1:8877
    #[arg(long, value_name = "HOST:PORT")]
    pub diagnostics_service: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnderscorePolicy {
    Allow,
    Drop,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretNamespacePolicy {
    Any,
    Own,
}

impl TranslationArgs {
    pub fn options(&self) -> Options {
        Options {
            listener_port: self.listener_port,
            ambassador_namespace: self.ambassador_namespace.clone(),
            ambassador_id: self.ambassador_id.clone(),
            max_regex_program_size: self.max_regex_program_size,
            secret_namespaces: match self.secret_namespaces {
                SecretNamespacePolicy::Any => SecretNamespaces::Any,
                SecretNamespacePolicy::Own => {
                    SecretNamespaces::Own { also: self.allowed_secret_namespaces.iter().cloned().collect() }
                }
            },
            headers_with_underscores: match self.headers_with_underscores {
                UnderscorePolicy::Allow => UnderscoreHeaders::Allow,
                UnderscorePolicy::Drop => UnderscoreHeaders::Drop,
                UnderscorePolicy::Reject => UnderscoreHeaders::Reject,
            },
            diagnostics_service: self
                .diagnostics_service
                .clone()
                .unwrap_or_else(|| Options::default().diagnostics_service),
        }
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions { files_root: self.files_root.clone() }
    }
}

/// Process exit codes shared by the subcommands.
pub mod exit {
    pub const OK: i32 = 0;
    pub const DIFFERENT: i32 = 1;
    pub const ERROR: i32 = 2;
}

/// Diagnostics go to stderr, one per line, with a count at the end.
/// Runs a long-running command on a multi-threaded runtime; its exit code. A task still running
/// on a blocking thread (a reload, a file read that hangs) does not hold the exit.
pub fn run_on_runtime<F: std::future::Future<Output = anyhow::Result<()>>>(command: F) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return exit::ERROR;
        }
    };
    let result = runtime.block_on(command);
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => exit::OK,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::ERROR
        }
    }
}

pub fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if !diagnostics.is_empty() {
        eprintln!("{errors} error(s), {warnings} warning(s)");
    }
}

pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Translate(args) => translate::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Bootstrap(args) => bootstrap::run(&args),
        Command::ConsulConnect(args) => consul_connect::run(&args),
        Command::Status(args) => status::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_parses_its_own_arguments() {
        Cli::command().debug_assert();
    }
}
