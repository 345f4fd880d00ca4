//! The one translation path, from what the sources read to encoded Envoy resources: what
//! `translate`, `diff`, the golden tests and the serving controller all run.

use crate::compile::ir::EdsService;
use crate::compile::{self, LastGood, Options};
use crate::diagnostic::{self, Diagnostic};
use crate::model::endpoint::EndpointTable;
use crate::model::{Model, TlsFiles};
use crate::source::files::{self, LoadError, LoadOptions, Loaded};
use crate::xds::endpoint::{admit_endpoints, AdmittedEndpoints};
use crate::xds::provenance::ProvenanceIndex;
use crate::xds::validate::Limits;
use crate::xds::{self, AdmitMemo, Resources, XdsType};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub resources: Resources,
    /// Reading and compiling problems together, in [`diagnostic::normalize`] order.
    pub diagnostics: Vec<Diagnostic>,
    /// The Ambassador resources behind each served resource, for NACK reports.
    pub provenance: ProvenanceIndex,
    /// What the EDS clusters' endpoints come from: the endpoint sources watch these, and
    /// [`endpoints`] builds their assignments.
    pub endpoint_services: Vec<EdsService>,
}

impl Translation {
    /// Takes `endpoints` as the served `ClusterLoadAssignment`s.
    pub fn set_endpoints(&mut self, endpoints: AdmittedEndpoints) {
        self.resources.set(XdsType::Endpoint, endpoints.resources);
        self.diagnostics.extend(endpoints.diagnostics);
        diagnostic::normalize(&mut self.diagnostics);
        self.provenance.merge(endpoints.provenance);
    }
}

/// What one translation leaves for the next: every resource's last good version, and what each
/// Mapping compiled to and each route was admitted as (so that what did not change is not built
/// again). A one-shot translation starts from nothing.
#[derive(Debug, Clone, Default)]
pub struct Remembered {
    pub last_good: LastGood,
    admitted: AdmitMemo,
}

/// What one translation built rather than reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    pub mappings: usize,
    /// Canary groups whose routes were built.
    pub groups: usize,
    /// Routes (per variant) validated and encoded.
    pub routes: usize,
    /// Clusters validated and encoded.
    pub clusters: usize,
    /// Routes and clusters that were new values equal to the ones admitted before: reused, but
    /// only after hashing their content.
    pub compared: usize,
}

impl Remembered {
    /// What the translation that left this built rather than reused.
    pub fn rebuilt(&self) -> Rebuilt {
        let (routes, clusters) = self.admitted.built();
        let (mappings, groups) = self.last_good.compiled();
        Rebuilt { mappings, groups, routes, clusters, compared: self.admitted.compared() }
    }

    /// Keeps only the last good versions.
    #[cfg(test)]
    pub fn forget_reuse(&mut self) {
        self.admitted = AdmitMemo::default();
        self.last_good.forget_compiled();
    }
}

/// Compiles, validates (as Envoy will) and encodes everything that was read. With no endpoint
/// source to ask, every EDS cluster's assignment is empty.
pub fn translate(loaded: Loaded, options: &Options) -> Translation {
    let compiled = compile::compile(&loaded.model, &loaded.tls_files, options);
    // The model is no longer needed; freeing it before building keeps peak memory down.
    drop(loaded.model);
    let (mut translation, _) = finish(loaded.diagnostics, compiled, options, AdmitMemo::default());
    translation.set_endpoints(endpoints(&translation.endpoint_services, &EndpointTable::new(), options));
    translation
}

/// The `ClusterLoadAssignment`s of `services` as `table` knows them: all that is rebuilt when
/// only endpoints change.
pub fn endpoints(services: &[EdsService], table: &EndpointTable, options: &Options) -> AdmittedEndpoints {
    admit_endpoints(services, table, &Limits { regex_program_size: options.max_regex_program_size })
}

/// [`translate`] (of what was read: the model, the files its TLSContexts name, the problems found
/// reading them) without endpoints (the caller sets them, see [`Translation::set_endpoints`]),
/// falling back to the last good version of whatever does not compile now, and reusing what did
/// not change (the serving controller); `last` becomes what the next reload starts from. What
/// admission kept is taken over and updated in place; the last good versions are replaced only
/// once the translation is done, so a translation that panics (a bug) leaves them as they were
/// and loses only what would have been reused.
pub fn translate_with(
    model: Arc<Model>,
    tls_files: &TlsFiles,
    diagnostics: Vec<Diagnostic>,
    options: &Options,
    last: &mut Remembered,
) -> Translation {
    let started = std::time::Instant::now();
    let admitted = std::mem::take(&mut last.admitted);
    let memo = last.last_good.take_compiled();
    let (compiled, last_good) = compile::compile_with(model, tls_files, options, &last.last_good, memo);
    let compiled_at = started.elapsed();
    let (translation, admitted) = finish(diagnostics, compiled, options, admitted);
    tracing::debug!(compile = ?compiled_at, admit = ?(started.elapsed() - compiled_at), "translated");
    *last = Remembered { last_good, admitted };
    translation
}

/// Validates and encodes a compiled configuration: what Envoy would refuse fails closed or is
/// dropped, resource by resource.
fn finish(
    mut diagnostics: Vec<Diagnostic>,
    compiled: compile::Compiled,
    options: &Options,
    previous: AdmitMemo,
) -> (Translation, AdmitMemo) {
    // The Module's `regex_max_size` may lower the limit (never raise it above Envoy's own).
    let regex_program_size = compiled
        .ir
        .regex_max_size
        .map_or(options.max_regex_program_size, |size| size.min(options.max_regex_program_size));
    let (admitted, memo) = xds::admit(&compiled.ir, &Limits { regex_program_size }, previous);
    diagnostics.extend(compiled.diagnostics);
    diagnostics.extend(admitted.diagnostics);
    diagnostic::normalize(&mut diagnostics);
    let endpoint_services = compiled.ir.endpoint_services;
    let translation =
        Translation { resources: admitted.resources, diagnostics, provenance: admitted.provenance, endpoint_services };
    (translation, memo)
}

/// Reads files and directories, then [`translate`]s them.
pub fn translate_paths(paths: &[PathBuf], load: &LoadOptions, options: &Options) -> Result<Translation, LoadError> {
    Ok(translate(files::load(paths, load, &options.ambassador_id)?, options))
}
