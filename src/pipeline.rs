//! The one translation path, from what the sources read to encoded Envoy resources: what
//! `translate`, `diff`, the golden tests and the serving controller all run.

use crate::compile::{self, LastGood, Options};
use crate::diagnostic::{self, Diagnostic};
use crate::source::files::{self, LoadError, LoadOptions, Loaded};
use crate::xds::provenance::ProvenanceIndex;
use crate::xds::validate::Limits;
use crate::xds::{self, Resources};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub resources: Resources,
    /// Reading and compiling problems together, in [`diagnostic::normalize`] order.
    pub diagnostics: Vec<Diagnostic>,
    /// The Ambassador resources behind each served resource, for NACK reports.
    pub provenance: ProvenanceIndex,
}

/// Compiles, validates (as Envoy will) and encodes everything that was read.
pub fn translate(loaded: Loaded, options: &Options) -> Translation {
    let compiled = compile::compile(&loaded.model, &loaded.tls_files, options);
    // The model is no longer needed; freeing it before building keeps peak memory down.
    drop(loaded.model);
    finish(loaded.diagnostics, compiled, options)
}

/// [`translate`], falling back to `last` for whatever does not compile now (the serving
/// controller); returns what the next reload falls back to.
pub fn translate_with(loaded: Loaded, options: &Options, last: &LastGood) -> (Translation, LastGood) {
    let (compiled, next) = compile::compile_with(&loaded.model, &loaded.tls_files, options, last);
    drop(loaded.model);
    (finish(loaded.diagnostics, compiled, options), next)
}

/// Validates and encodes a compiled configuration: what Envoy would refuse fails closed or is
/// dropped, resource by resource.
fn finish(mut diagnostics: Vec<Diagnostic>, compiled: compile::Compiled, options: &Options) -> Translation {
    // The Module's `regex_max_size` may lower the limit (never raise it above Envoy's own).
    let regex_program_size = compiled
        .ir
        .regex_max_size
        .map_or(options.max_regex_program_size, |size| size.min(options.max_regex_program_size));
    let admitted = xds::admit(&compiled.ir, &Limits { regex_program_size });
    diagnostics.extend(compiled.diagnostics);
    diagnostics.extend(admitted.diagnostics);
    diagnostic::normalize(&mut diagnostics);
    Translation { resources: admitted.resources, diagnostics, provenance: admitted.provenance }
}

/// Reads files and directories, then [`translate`]s them.
pub fn translate_paths(paths: &[PathBuf], load: &LoadOptions, options: &Options) -> Result<Translation, LoadError> {
    Ok(translate(files::load(paths, load, &options.ambassador_id)?, options))
}
