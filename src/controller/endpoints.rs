//! The endpoint half of a reload: tell the endpoint sources which targets the compiled EDS
//! clusters name, and build their `ClusterLoadAssignment`s from what the sources know. When
//! only endpoints change, this alone runs: nothing is read or compiled again.

use crate::compile::ir::EdsService;
use crate::compile::Options;
use crate::diagnostic::{Diagnostic, Kind};
use crate::model::endpoint::{EndpointTable, EndpointTarget};
use crate::source::endpoints::EndpointSource;
use crate::xds::endpoint::{admit_endpoints_cached, AdmittedEndpoints, AssignmentCache};
use crate::xds::validate::Limits;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a reload that names new EDS targets waits for their first endpoints: a new cluster
/// (or every cluster, after a restart) starts with its endpoints rather than empty, unless the
/// source is slower than this.
pub const FIRST_FETCH: Duration = Duration::from_secs(3);

pub(super) struct Endpoints {
    sources: Vec<Arc<dyn EndpointSource>>,
    /// What the last compile's EDS clusters want.
    services: Vec<EdsService>,
    /// The assignments built last time: a refresh builds only those whose endpoints changed.
    cache: std::sync::Mutex<AssignmentCache>,
}

impl Endpoints {
    pub fn new(sources: Vec<Arc<dyn EndpointSource>>) -> Endpoints {
        Endpoints { sources, services: Vec::new(), cache: Default::default() }
    }

    /// After a compile: the sources watch what `services` name (waiting up to [`FIRST_FETCH`]
    /// for targets they had not fetched), and the assignments are built.
    pub fn after_compile(&mut self, services: Vec<EdsService>, options: &Options) -> AdmittedEndpoints {
        let wanted: BTreeSet<EndpointTarget> = services.iter().map(|s| s.target.clone()).collect();
        let new_targets = {
            let before: BTreeSet<&EndpointTarget> = self.services.iter().map(|s| &s.target).collect();
            wanted.iter().any(|target| !before.contains(target))
        };
        self.services = services;
        for source in &self.sources {
            let theirs: BTreeSet<EndpointTarget> = wanted.iter().filter(|t| source.serves(t)).cloned().collect();
            source.want(&theirs);
        }
        if new_targets && !self.sources.is_empty() {
            // On the worker thread, inside the runtime (worker.rs).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let deadline = Instant::now() + FIRST_FETCH;
                runtime.block_on(futures::future::join_all(self.sources.iter().map(|s| s.first_fetch(deadline))));
            }
        }
        self.current(options)
    }

    /// The assignments from what the sources know now.
    pub fn current(&self, options: &Options) -> AdmittedEndpoints {
        let mut table = EndpointTable::new();
        for source in &self.sources {
            table.extend(source.endpoints());
        }
        let limits = Limits { regex_program_size: options.max_regex_program_size };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut admitted = admit_endpoints_cached(&self.services, &table, &limits, &mut cache);
        drop(cache);
        for service in self.services.iter().filter(|s| !table.contains_key(&s.target)) {
            let blame = service.provenance.first();
            let served = self.sources.iter().find(|source| source.serves(&service.target));
            let message = match served {
                Some(source) => format!(
                    "the endpoints of {} ({}) are not known yet ({} has not answered); its assignment is empty until they are",
                    service.target,
                    service.name,
                    source.name()
                ),
                None => format!(
                    "nothing reads the endpoints of {} ({}): EndpointSlices are read with --kubernetes; its assignment stays empty",
                    service.target, service.name
                ),
            };
            let diagnostic = Diagnostic::warning(blame.map(|p| &p.origin), blame.map(|p| &p.resource), message);
            admitted.diagnostics.push(diagnostic.with_kind(Kind::Endpoints));
        }
        admitted
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}
