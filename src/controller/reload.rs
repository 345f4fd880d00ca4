//! One reload: read every source (keeping a source's last good contribution when it cannot be
//! read at all), put back the last good version of whatever is broken, read the files
//! TLSContexts name, compile (falling back to last good versions), and build the snapshot.

use super::endpoints::Endpoints;
use super::{ControllerOptions, Inventory, ReloadReport};
use crate::diagnostic::{Diagnostic, Severity};
use crate::model::Model;
use crate::pipeline;
use crate::snapshot::Snapshot;
use crate::source::deadline::DeadlineReader;
use crate::source::endpoints::EndpointSource;
use crate::source::files::{self, Loaded, MAX_TLS_FILE_BYTES};
use crate::source::{Contribution, Source};
use crate::xds::XdsType;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// A source and what it last contributed successfully.
struct SourceSlot {
    source: Box<dyn Source>,
    last_good: Option<Contributed>,
}

/// A source's contribution, its model shared: a reload with one source compiles that model as it
/// is (copying 50,000 Mappings into a model of their own, and dropping the copy the reload after,
/// was a twentieth of a one-Mapping reload).
struct Contributed {
    model: Arc<Model>,
    diagnostics: Vec<Diagnostic>,
}

impl From<Contribution> for Contributed {
    fn from(contribution: Contribution) -> Contributed {
        Contributed { model: Arc::new(contribution.model), diagnostics: contribution.diagnostics }
    }
}

/// Everything a reload needs, moved to the blocking thread and back.
pub(super) struct Compiler {
    sources: Vec<SourceSlot>,
    options: ControllerOptions,
    /// Every resource's last good version, and what was compiled and admitted, from the previous
    /// reload.
    remembered: pipeline::Remembered,
    /// What the previous reload reported, so a watch loop does not repeat itself in the log.
    last_diagnostics: BTreeSet<Diagnostic>,
    /// Reads the files TLSContexts name without letting a hung file system hold the reload.
    tls_reader: DeadlineReader,
    /// The EDS clusters' endpoints.
    endpoints: Endpoints,
    /// The last reload's diagnostics without the endpoints' (what an endpoint refresh reports
    /// beside its own).
    config_diagnostics: Vec<Diagnostic>,
    /// The last reload's inventory (an endpoint refresh reads no resources).
    inventory: Inventory,
    /// The one before: by the next reload its report has been replaced, so it is dropped here,
    /// on this thread, which can then reuse its memory (freed on the thread serving the admin
    /// page, the model's lists were memory this thread faulted in afresh on every reload).
    retired: Inventory,
}

/// Longest a reload waits for the files TLSContexts name.
const TLS_READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) struct Outcome {
    /// `None` when the configuration did not change.
    pub snapshot: Option<Snapshot>,
    pub tls_dirs: BTreeSet<PathBuf>,
    pub report: ReloadReport,
}

impl Compiler {
    pub fn new(
        sources: Vec<Box<dyn Source>>,
        endpoint_sources: Vec<Arc<dyn EndpointSource>>,
        options: ControllerOptions,
    ) -> Compiler {
        let sources = sources.into_iter().map(|source| SourceSlot { source, last_good: None }).collect();
        Compiler {
            sources,
            options,
            remembered: Default::default(),
            last_diagnostics: BTreeSet::new(),
            tls_reader: DeadlineReader::new(TLS_READ_DEADLINE),
            endpoints: Endpoints::new(endpoint_sources),
            config_diagnostics: Vec::new(),
            inventory: Inventory::default(),
            retired: Inventory::default(),
        }
    }

    /// Resolves once every source is ready.
    pub async fn all_ready(&self) {
        futures::future::join_all(self.sources.iter().map(|slot| slot.source.ready())).await;
    }

    /// What every source contributed last, in source order: one source's model as it is.
    fn joined_model(&self) -> Arc<Model> {
        let mut models = self.sources.iter().filter_map(|slot| slot.last_good.as_ref()).map(|c| &c.model);
        let (first, second) = (models.next(), models.next());
        let (first, second) = match (first, second) {
            (None, _) => return Arc::default(),
            (Some(only), None) => return only.clone(),
            (Some(first), Some(second)) => (first, second),
        };
        let mut joined = Model::clone(first);
        for model in std::iter::once(second).chain(models) {
            joined.extend(Model::clone(model));
        }
        Arc::new(joined)
    }

    pub fn reload(&mut self, previous: &Snapshot) -> Outcome {
        let started = Instant::now();
        let mut loaded = Loaded::default();
        for slot in &mut self.sources {
            match slot.source.read() {
                Ok(contribution) => slot.last_good = Some(contribution.into()),
                Err(problem) => {
                    // The source as a whole is unreadable: what it held before stays in service.
                    loaded.diagnostics.push(*problem);
                }
            }
            if let Some(contributed) = &slot.last_good {
                loaded.diagnostics.extend(contributed.diagnostics.iter().cloned());
            }
        }
        let mut model = self.joined_model();
        let read_at = started.elapsed();
        loaded.diagnostics.extend(self.remembered.last_good.restore(&mut model));
        let (load, policy, compile) = (&self.options.load, &self.options.tls_files, &self.options.compile);
        let read = |paths: &[PathBuf]| self.tls_reader.read_all(paths, MAX_TLS_FILE_BYTES);
        loaded.tls_files = files::read_tls_files(&model, load, policy, &compile.ambassador_id, read);
        let tls_dirs = files::tls_file_dirs(&loaded.tls_files, load, policy);
        let inventory = Inventory::of(model.clone());
        let prepared_at = started.elapsed();
        let mut translation =
            pipeline::translate_with(model, &loaded.tls_files, loaded.diagnostics, compile, &mut self.remembered);
        let translated_at = started.elapsed();
        crate::generations::end_reload();
        self.config_diagnostics = translation.diagnostics.clone();
        self.retired = std::mem::replace(&mut self.inventory, inventory.clone());
        let services = std::mem::take(&mut translation.endpoint_services);
        translation.set_endpoints(self.endpoints.after_compile(services, compile));
        self.log_new_diagnostics(&translation.diagnostics);

        let report = ReloadReport { diagnostics: translation.diagnostics, inventory };
        let snapshot = Snapshot::new(translation.resources, previous.serial + 1, Some(previous))
            .with_provenance(translation.provenance);
        tracing::debug!(
            read = ?read_at,
            prepare = ?(prepared_at - read_at),
            translate = ?(translated_at - prepared_at),
            snapshot = ?(started.elapsed() - translated_at),
            "reload phases"
        );
        // Same resources from other files still publish: a NACK must name where they are now.
        // Compared only when the content is the same (comparing the route tables behind the
        // provenance walks every route up to the first that differs).
        if previous.serial > 0 && snapshot.same_content(previous) && snapshot.provenance() == previous.provenance() {
            tracing::debug!(elapsed = ?started.elapsed(), "configuration unchanged");
            return Outcome { snapshot: None, tls_dirs, report };
        }
        let counts: Vec<String> =
            snapshot.resources.counts().map(|(t, n)| format!("{}={n}", t.golden_field())).collect();
        tracing::info!(
            serial = snapshot.serial,
            resources = %counts.join(" "),
            elapsed = ?started.elapsed(),
            "publishing configuration"
        );
        Outcome { snapshot: Some(snapshot), tls_dirs, report }
    }

    /// Rebuilds only the endpoint assignments from what the endpoint sources know now; `None`
    /// snapshot when they did not change. Nothing is read or compiled.
    pub fn refresh_endpoints(&mut self, previous: &Snapshot) -> Outcome {
        let started = Instant::now();
        let endpoints = self.endpoints.current(&self.options.compile);
        let mut diagnostics = self.config_diagnostics.clone();
        diagnostics.extend(endpoints.diagnostics);
        crate::diagnostic::normalize(&mut diagnostics);
        self.log_new_diagnostics(&diagnostics);
        let report = ReloadReport { diagnostics, inventory: self.inventory.clone() };
        if self.endpoints.is_empty() || endpoints.resources == previous.resources.of(XdsType::Endpoint) {
            return Outcome { snapshot: None, tls_dirs: BTreeSet::new(), report };
        }
        let mut resources = previous.resources.clone();
        resources.set(XdsType::Endpoint, endpoints.resources);
        // The EDS names and what is behind them change only with a compile: the provenance stays.
        let snapshot = Snapshot::new(resources, previous.serial + 1, Some(previous))
            .with_provenance(previous.provenance().clone());
        tracing::debug!(serial = snapshot.serial, elapsed = ?started.elapsed(), "publishing endpoints");
        Outcome { snapshot: Some(snapshot), tls_dirs: BTreeSet::new(), report }
    }

    /// What the last reload built rather than reused (see [`pipeline::Remembered::rebuilt`]).
    #[cfg(test)]
    pub fn rebuilt(&self) -> pipeline::Rebuilt {
        self.remembered.rebuilt()
    }

    /// Forgets what the next reload would reuse, but the last good versions (the tests' reference
    /// for what reusing must not change).
    #[cfg(test)]
    pub fn forget_reuse(&mut self) {
        self.remembered.forget_reuse();
    }

    /// Logs diagnostics not seen in the previous reload.
    fn log_new_diagnostics(&mut self, diagnostics: &[Diagnostic]) {
        let current: BTreeSet<Diagnostic> = diagnostics.iter().cloned().collect();
        for diagnostic in current.difference(&self.last_diagnostics) {
            match diagnostic.severity {
                Severity::Error => tracing::error!("{diagnostic}"),
                Severity::Warning => tracing::warn!("{diagnostic}"),
            }
        }
        let fixed = self.last_diagnostics.difference(&current).count();
        if fixed > 0 {
            tracing::info!(fixed, "problems reported earlier are gone");
        }
        self.last_diagnostics = current;
    }
}
