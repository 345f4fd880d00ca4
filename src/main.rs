use ambassador_xds::cli::{self, Cli};
use clap::Parser;
use std::io::IsTerminal;

fn main() {
    let cli = Cli::parse();
    // kube_client warns about every routine watch reconnect; its errors (an API server answering
    // 503, retried inside the client) stay visible, and our watchers report what finally fails.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    std::process::exit(cli::run(cli));
}
