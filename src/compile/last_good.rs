//! The last good version of every resource, so that a resource that breaks keeps serving what it
//! served before, until a valid version replaces it or it is removed.
//!
//! Compiling stays pure: the previous [`LastGood`] is an input of [`compile_with`], the next one
//! its output, and the controller carries it from one reload to the next. Three layers:
//!
//! 1. [`LastGood::restore`], before anything is compiled: an input that could not be read
//!    ([`Rejected`]: a syntax error, a value of the wrong type, an unreadable file) gets the last
//!    good version of the resource it held put back, or of every resource its file held when the
//!    document does not even say which resource it is.
//! 2. [`compile_with`]: a Mapping, TCPMapping, Module, Listener or Host that reads fine but does
//!    not compile (a bad `service`, a regex Envoy would refuse, a canary group pushed over 100%)
//!    is compiled again from its last good version; one that never compiled is dropped, so it
//!    cannot take a group down.
//! 3. TLS material (in `compile_pass` and `edge`): a context or termination whose certificate,
//!    key, CA or CRL is unusable for now keeps its last good resolution; one whose material is
//!    gone ([`Kind::Reference`]) fails closed.
//!
//! Everything is keyed by resource id, so a later incremental compile can reuse it as is.

use super::{compile_pass, Compiled, MappingMemo, Options, Pass, Resolutions};
use crate::diagnostic::{self, Diagnostic, Kind, ResourceId};
use crate::model::{Model, Rejected, Resource, TlsFiles};
use foldhash::{HashMap, HashMapExt};
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, OnceLock};

/// What the last reload accepted, per resource: the model it compiled (after putting back last
/// good versions) without what it rejected. The model is kept as it was compiled and looked up
/// by id only when something is broken ([`LastGood::restore`], [`compile_with`]'s retry):
/// building a table of every resource on every reload was a tenth of a one-Mapping reload at
/// 50,000 Mappings, and a reload with nothing broken needs none.
#[derive(Debug, Clone, Default)]
pub struct LastGood {
    recorded: Arc<Model>,
    /// What that reload rejected (Mappings, TCPMappings, Modules, Listeners, Hosts): not good,
    /// though in `recorded`.
    rejected: BTreeSet<ResourceId>,
    /// `recorded` by id, built the first time a broken input needs it.
    index: OnceLock<Index>,
    /// Resolved TLS (settings, certificate, CA, CRL): origination by context id, termination by
    /// owner id.
    resolutions: Resolutions,
    /// What each Mapping compiled to, so that unchanged Mappings are not compiled again.
    compiled_mappings: MappingMemo,
}

/// The last good version of each resource, by id.
#[derive(Debug, Clone, Default)]
struct Index {
    mappings: HashMap<ResourceId, Resource<crate::model::MappingSpec>>,
    tls_contexts: HashMap<ResourceId, Resource<crate::model::TlsContextSpec>>,
    listeners: HashMap<ResourceId, Resource<crate::model::ListenerSpec>>,
    hosts: HashMap<ResourceId, Resource<crate::model::HostSpec>>,
    modules: HashMap<ResourceId, Resource<crate::model::ModuleSpec>>,
    secrets: HashMap<ResourceId, Resource<crate::model::SecretData>>,
    tcp_mappings: HashMap<ResourceId, Resource<crate::model::TcpMappingSpec>>,
    resolvers: HashMap<ResourceId, Resource<crate::model::ResolverSpec>>,
}

impl Index {
    fn new(model: &Model, rejected: &BTreeSet<ResourceId>) -> Index {
        fn by_id<S: Clone>(
            resources: &[Resource<S>],
            rejected: &BTreeSet<ResourceId>,
        ) -> HashMap<ResourceId, Resource<S>> {
            let mut map = HashMap::with_capacity(resources.len());
            for resource in resources.iter().filter(|r| !rejected.contains(&r.meta.id)) {
                // The first of duplicates is the one compiled.
                map.entry(resource.meta.id.clone()).or_insert_with(|| resource.clone());
            }
            map
        }
        // TLSContexts, Secrets and resolvers are never rejected as a whole: their problems are
        // their users' (see the module comment's third layer).
        let none = BTreeSet::new();
        Index {
            mappings: by_id(&model.mappings, rejected),
            tls_contexts: by_id(&model.tls_contexts, &none),
            listeners: by_id(&model.listeners, rejected),
            hosts: by_id(&model.hosts, rejected),
            modules: by_id(&model.modules, rejected),
            secrets: by_id(&model.secrets, &none),
            tcp_mappings: by_id(&model.tcp_mappings, rejected),
            resolvers: by_id(&model.resolvers, &none),
        }
    }

    fn has(&self, id: &ResourceId) -> bool {
        self.mappings.contains_key(id)
            || self.listeners.contains_key(id)
            || self.hosts.contains_key(id)
            || self.modules.contains_key(id)
            || self.tcp_mappings.contains_key(id)
    }
}

const STALE: &str =
    "cannot be read as it is now (see the error); its last good version stays in service until it is fixed or removed";
const STALE_COMPILE: &str = "does not compile as it is now (see the error); its last good version stays in service until it is fixed or removed";

impl LastGood {
    /// Puts back the last good version of what every [`Rejected`] input held (unless the model
    /// has that resource from elsewhere); returns a [`Kind::Stale`] warning per restored resource.
    /// The model is copied only when there is something to put back (it is shared with the
    /// source that read it).
    pub fn restore(&self, model: &mut Arc<Model>) -> Vec<Diagnostic> {
        let mut diagnostics = Vec::new();
        if model.rejected.is_empty() {
            return diagnostics;
        }
        let model = Arc::make_mut(model);
        let last = self.index();
        let rejected = std::mem::take(&mut model.rejected);
        restore_kind(&mut model.mappings, &last.mappings, &rejected, &mut diagnostics);
        restore_kind(&mut model.tls_contexts, &last.tls_contexts, &rejected, &mut diagnostics);
        restore_kind(&mut model.listeners, &last.listeners, &rejected, &mut diagnostics);
        restore_kind(&mut model.hosts, &last.hosts, &rejected, &mut diagnostics);
        restore_kind(&mut model.modules, &last.modules, &rejected, &mut diagnostics);
        restore_kind(&mut model.secrets, &last.secrets, &rejected, &mut diagnostics);
        restore_kind(&mut model.tcp_mappings, &last.tcp_mappings, &rejected, &mut diagnostics);
        restore_kind(&mut model.resolvers, &last.resolvers, &rejected, &mut diagnostics);
        model.rejected = rejected;
        diagnostics
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::new(&self.recorded, &self.rejected))
    }

    /// What `pass` compiled, and what `model` (as compiled by it) leaves for the next reload.
    fn record(model: Arc<Model>, pass: Pass) -> (Compiled, LastGood) {
        let last_good = LastGood {
            recorded: model,
            rejected: pass.rejected,
            index: OnceLock::new(),
            resolutions: pass.resolved,
            compiled_mappings: pass.memo,
        };
        (pass.compiled, last_good)
    }

    /// Takes what the Mappings compiled to out, for the next compile to reuse and replace (a
    /// compile that panics loses only that).
    pub fn take_compiled(&mut self) -> MappingMemo {
        std::mem::take(&mut self.compiled_mappings)
    }

    /// How many Mappings the compile that left this compiled, and for how many canary groups
    /// it built routes (the others were reused).
    pub fn compiled(&self) -> (usize, usize) {
        (self.compiled_mappings.recompiled(), self.compiled_mappings.groups().built())
    }

    /// Forgets what the Mappings compiled to (they are all compiled again next time).
    #[cfg(test)]
    pub fn forget_compiled(&mut self) {
        self.compiled_mappings = MappingMemo::default();
    }
}

fn restore_kind<S: Clone>(
    current: &mut Vec<Resource<S>>,
    last: &HashMap<ResourceId, Resource<S>>,
    rejected: &[Rejected],
    diagnostics: &mut Vec<Diagnostic>,
) {
    if last.is_empty() {
        return;
    }
    let mut present: HashSet<ResourceId> = current.iter().map(|r| r.meta.id.clone()).collect();
    // Files whose broken documents do not say which resource they are: each is looked up once.
    let mut whole_files: Vec<&str> = rejected.iter().filter(|r| r.id.is_none()).map(|r| &*r.origin.file).collect();
    whole_files.sort_unstable();
    whole_files.dedup();
    let mut restore = |resource: &Resource<S>, current: &mut Vec<Resource<S>>| {
        if present.insert(resource.meta.id.clone()) {
            diagnostics.push(
                Diagnostic::warning(Some(&resource.meta.origin), Some(&resource.meta.id), STALE).with_kind(Kind::Stale),
            );
            current.push(resource.clone());
        }
    };
    for id in rejected.iter().filter_map(|r| r.id.as_ref()) {
        if let Some(resource) = last.get(id) {
            restore(resource, current);
        }
    }
    if !whole_files.is_empty() {
        // Which resource such a document held is unknown: keep everything its file held.
        let mut held: Vec<&Resource<S>> =
            last.values().filter(|r| whole_files.binary_search(&&*r.meta.origin.file).is_ok()).collect();
        held.sort_by(|a, b| (&a.meta.origin, &a.meta.id).cmp(&(&b.meta.origin, &b.meta.id)));
        for resource in held {
            restore(resource, current);
        }
    }
}

/// [`super::compile`], falling back to `last` for whatever does not compile now and reusing what
/// `memo` remembers the Mappings compiled to; returns what the next reload falls back to.
pub fn compile_with(
    model: Arc<Model>,
    files: &TlsFiles,
    options: &Options,
    last: &LastGood,
    memo: MappingMemo,
) -> (Compiled, LastGood) {
    let first = compile_pass(&model, files, options, &last.resolutions, memo);
    // What that reload rejected is not among its good versions, so a resource broken then and
    // now needs no lookup (a Mapping that stays broken does not index every resource each time).
    let replaced = first.rejected.iter().filter(|id| !last.rejected.contains(*id)).any(|id| last.index().has(id));
    if !replaced {
        return LastGood::record(model, first);
    }
    // Again, with the last good version of what was rejected, and without what was rejected
    // and never was good (so a new Mapping cannot take a canary group down with it).
    let good = last.index();
    let mut retry = Arc::unwrap_or_clone(model);
    let mut notes = Vec::new();
    substitute(&mut retry.mappings, &good.mappings, &first.rejected, &mut notes);
    substitute(&mut retry.listeners, &good.listeners, &first.rejected, &mut notes);
    substitute(&mut retry.hosts, &good.hosts, &first.rejected, &mut notes);
    substitute(&mut retry.modules, &good.modules, &first.rejected, &mut notes);
    substitute(&mut retry.tcp_mappings, &good.tcp_mappings, &first.rejected, &mut notes);
    let Pass { compiled: first_compiled, rejected: first_rejected, memo: first_memo, .. } = first;
    let retry = Arc::new(retry);
    let mut second = compile_pass(&retry, files, options, &last.resolutions, first_memo);
    // The errors that explain the fallback stay visible.
    let explained = first_compiled
        .diagnostics
        .into_iter()
        .filter(|d| d.resource.as_ref().is_some_and(|id| first_rejected.contains(id)));
    second.compiled.diagnostics.extend(explained.chain(notes));
    diagnostic::normalize(&mut second.compiled.diagnostics);
    LastGood::record(retry, second)
}

fn substitute<S: Clone + PartialEq>(
    resources: &mut Vec<Resource<S>>,
    last: &HashMap<ResourceId, Resource<S>>,
    rejected: &BTreeSet<ResourceId>,
    notes: &mut Vec<Diagnostic>,
) {
    resources.retain_mut(|resource| {
        if !rejected.contains(&resource.meta.id) {
            return true;
        }
        match last.get(&resource.meta.id) {
            Some(good) => {
                // An unchanged member of a group that a new member broke needs no note.
                if good.spec != resource.spec {
                    let (origin, id) = (&resource.meta.origin, &resource.meta.id);
                    notes.push(Diagnostic::warning(Some(origin), Some(id), STALE_COMPILE).with_kind(Kind::Stale));
                }
                *resource = good.clone();
                true
            }
            None => false,
        }
    });
}
