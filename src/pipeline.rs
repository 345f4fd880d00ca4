//! The whole translation, from paths on disk to Envoy resources: what `translate`, `diff` and the
//! golden tests run.

use crate::compile::{self, Options};
use crate::diagnostic::{self, Diagnostic};
use crate::source::files::{self, LoadError, LoadOptions};
use crate::xds::{self, Resources};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub resources: Resources,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn translate_paths(paths: &[PathBuf], load: &LoadOptions, options: &Options) -> Result<Translation, LoadError> {
    let loaded = files::load(paths, load)?;
    let compiled = compile::compile(&loaded.model, &loaded.tls_files, options);
    // The model is no longer needed; freeing it before building keeps peak memory down.
    drop(loaded.model);
    let mut diagnostics = loaded.diagnostics;
    diagnostics.extend(compiled.diagnostics);
    diagnostic::normalize(&mut diagnostics);
    Ok(Translation { resources: xds::build(&compiled.ir), diagnostics })
}
