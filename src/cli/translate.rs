//! `ambassador-xds translate PATH...`: print the compiled resources as canonical Envoy JSON/YAML.

use super::{exit, print_diagnostics, CompileArgs};
use crate::pipeline::translate_paths;
use crate::render::{self, Format};
use clap::{Args, ValueEnum};
use std::io::Write;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct TranslateArgs {
    #[command(flatten)]
    pub compile: CompileArgs,

    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,

    /// Print private keys instead of [redacted]
    #[arg(long)]
    pub show_secrets: bool,
}

pub fn run(args: &TranslateArgs) -> i32 {
    let translation = match translate_paths(&args.compile.paths, &args.compile.load_options(), &args.compile.options())
    {
        Ok(translation) => translation,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::ERROR;
        }
    };
    print_diagnostics(&translation.diagnostics);
    let resources = if args.show_secrets { translation.resources } else { render::redacted(translation.resources) };
    let format = match args.format {
        OutputFormat::Json => Format::Json,
        OutputFormat::Yaml => Format::Yaml,
    };
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    match render::write_snapshot(&resources, format, &mut out).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(err) => {
            eprintln!("error: writing output: {err}");
            exit::ERROR
        }
    }
}
