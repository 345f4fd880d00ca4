//! `ambassador-xds diff PATH... --golden FILE [--update]`: compare compiled resources with a
//! golden file, resource by resource. Exit 0 when equal, 1 when different, 2 on errors.

use super::{exit, print_diagnostics, CompileArgs};
use crate::pipeline::translate_paths;
use crate::render::{self, RenderedResource};
use clap::Args;
use similar::TextDiff;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub compile: CompileArgs,

    /// The golden file (the JSON `translate` prints)
    #[arg(long, value_name = "FILE")]
    pub golden: PathBuf,

    /// Rewrite the golden file with the current output instead of comparing
    #[arg(long)]
    pub update: bool,
}

pub fn run(args: &DiffArgs) -> i32 {
    let translation = match translate_paths(&args.compile.paths, &args.compile.load_options(), &args.compile.options())
    {
        Ok(translation) => translation,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::ERROR;
        }
    };
    print_diagnostics(&translation.diagnostics);
    // Goldens never hold private keys.
    let current = render::redacted(translation.resources);

    if args.update {
        return match std::fs::write(&args.golden, render::snapshot_json(&current)) {
            Ok(()) => {
                eprintln!("updated {}", args.golden.display());
                exit::OK
            }
            Err(err) => {
                eprintln!("error: writing {}: {err}", args.golden.display());
                exit::ERROR
            }
        };
    }

    let golden_text = match std::fs::read_to_string(&args.golden) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: {}: {err} (use --update to create it)", args.golden.display());
            return exit::ERROR;
        }
    };
    let golden = match render::parse_snapshot_json(&golden_text) {
        Ok(golden) => golden,
        Err(err) => {
            eprintln!("error: {}: {err}", args.golden.display());
            return exit::ERROR;
        }
    };
    let report = diff_resources(&render::resources_of(&golden), &render::rendered_resources(&current));
    if report.is_empty() {
        return exit::OK;
    }
    print!("{}", report.text);
    eprintln!(
        "{} differs: {} changed, {} added, {} removed",
        args.golden.display(),
        report.changed,
        report.added,
        report.removed
    );
    exit::DIFFERENT
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct DiffReport {
    pub text: String,
    pub changed: usize,
    pub added: usize,
    pub removed: usize,
}

impl DiffReport {
    pub fn is_empty(&self) -> bool {
        self.changed + self.added + self.removed == 0
    }
}

/// A unified diff per resource (`clusters/<name>`), in type then name order.
pub fn diff_resources(golden: &[RenderedResource], current: &[RenderedResource]) -> DiffReport {
    let key = |r: &RenderedResource| (r.kind.clone(), r.name.clone());
    let golden: BTreeMap<_, _> = golden.iter().map(|r| (key(r), r.json.as_str())).collect();
    let current: BTreeMap<_, _> = current.iter().map(|r| (key(r), r.json.as_str())).collect();
    let mut keys: Vec<_> = golden.keys().chain(current.keys()).cloned().collect();
    keys.sort();
    keys.dedup();

    let mut report = DiffReport::default();
    for key in keys {
        let label = format!("{}/{}", key.0, key.1);
        let (old, new) = (golden.get(&key).copied(), current.get(&key).copied());
        match (old, new) {
            (Some(old), Some(new)) if old == new => continue,
            (Some(_), Some(_)) => report.changed += 1,
            (None, Some(_)) => report.added += 1,
            (Some(_), None) => report.removed += 1,
            (None, None) => unreachable!(),
        }
        let old_label = if old.is_some() { format!("golden {label}") } else { "/dev/null".into() };
        let new_label = if new.is_some() { format!("current {label}") } else { "/dev/null".into() };
        let diff = TextDiff::from_lines(old.unwrap_or(""), new.unwrap_or(""));
        report.text.push_str(&diff.unified_diff().context_radius(3).header(&old_label, &new_label).to_string());
    }
    report
}
