//! What each Mapping compiled to, remembered from one compile to the next, so that a change to
//! one Mapping recompiles one Mapping.
//!
//! A Mapping's compile ([`super::mapping::MappingCompiler`]) reads the Mapping and a handful of
//! inputs besides it: the options, the Module's settings, the kinds that are not translated, the
//! TLSContexts, the resolvers and the contexts' resolved TLS. Those inputs are kept with the memo;
//! when any of them differs from last time, nothing is reused (a TLSContext or Module change
//! recompiles every Mapping). Otherwise a Mapping whose metadata and spec are the same as last
//! time gets last time's result: its candidate, the cluster it claims, the context it uses and
//! the diagnostics it produced. Everything that depends on several Mappings (canary groups,
//! order, cluster sharing and names) is computed afresh from those results on every compile.
//!
//! There is no second compile mode: a one-shot `translate` starts from an empty memo.

use super::group_memo::GroupMemo;
use super::mapping::CompiledMapping;
use super::module::Settings;
use super::tls::ResolvedContext;
use super::Options;
use crate::diagnostic::ResourceId;
use crate::model::{Mapping, Resolver, Resource, TlsContext};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The inputs of a Mapping's compile besides the Mapping, as this compile has them.
pub struct Inputs<'a> {
    pub options: &'a Options,
    pub settings: &'a Settings,
    pub skipped_kinds: &'a BTreeSet<String>,
    pub contexts: &'a [&'a TlsContext],
    pub resolvers: &'a [&'a Resolver],
    pub resolved: &'a HashMap<&'a ResourceId, Result<ResolvedContext, String>>,
}

/// The same inputs, kept for the next compile to compare with.
#[derive(Debug, Clone)]
struct KeptInputs {
    options: Options,
    settings: Settings,
    skipped_kinds: BTreeSet<String>,
    contexts: Vec<TlsContext>,
    resolvers: Vec<Resolver>,
    resolved: BTreeMap<ResourceId, Result<ResolvedContext, String>>,
}

impl KeptInputs {
    fn new(inputs: &Inputs<'_>) -> KeptInputs {
        KeptInputs {
            options: inputs.options.clone(),
            settings: inputs.settings.clone(),
            skipped_kinds: inputs.skipped_kinds.clone(),
            contexts: inputs.contexts.iter().map(|c| (*c).clone()).collect(),
            resolvers: inputs.resolvers.iter().map(|r| (*r).clone()).collect(),
            resolved: inputs.resolved.iter().map(|(id, r)| ((*id).clone(), r.clone())).collect(),
        }
    }

    fn same_as(&self, inputs: &Inputs<'_>) -> bool {
        self.options == *inputs.options
            && self.settings == *inputs.settings
            && self.skipped_kinds == *inputs.skipped_kinds
            && same_resources(&self.contexts, inputs.contexts)
            && same_resources(&self.resolvers, inputs.resolvers)
            && self.resolved.len() == inputs.resolved.len()
            && inputs.resolved.iter().all(|(id, r)| self.resolved.get(*id) == Some(r))
    }
}

/// The same resources in the same order: same metadata, and the same spec (the same shared value,
/// or an equal one).
fn same_resources<S: PartialEq>(kept: &[Resource<S>], now: &[&Resource<S>]) -> bool {
    kept.len() == now.len() && kept.iter().zip(now).all(|(a, b)| same_resource(a, b))
}

fn same_resource<S: PartialEq>(a: &Resource<S>, b: &Resource<S>) -> bool {
    a.meta == b.meta && (Arc::ptr_eq(&a.spec, &b.spec) || a.spec == b.spec)
}

/// Every Mapping's last compile result, and the inputs they were compiled with; and their
/// canary groups' routes.
#[derive(Debug, Clone, Default)]
pub struct MappingMemo {
    inputs: Option<KeptInputs>,
    compiled: foldhash::HashMap<ResourceId, (Mapping, Arc<CompiledMapping>)>,
    /// How many of them the compile that kept them compiled (rather than reused).
    recompiled: usize,
    groups: GroupMemo,
}

impl MappingMemo {
    pub fn recompiled(&self) -> usize {
        self.recompiled
    }

    pub fn groups(&self) -> &GroupMemo {
        &self.groups
    }
}

impl MappingMemo {
    /// Starts the memo of a compile with `inputs`; what `previous` remembers is used only if it
    /// was compiled with the same inputs.
    pub fn continuing<'p>(previous: &'p MappingMemo, inputs: &Inputs<'_>) -> MemoPass<'p> {
        let (reusable, kept) = match &previous.inputs {
            Some(kept) if kept.same_as(inputs) => (Some(previous), kept.clone()),
            _ => (None, KeptInputs::new(inputs)),
        };
        let compiled = foldhash::HashMapExt::with_capacity(previous.compiled.len());
        let next = MappingMemo { inputs: Some(kept), compiled, recompiled: 0, groups: GroupMemo::default() };
        MemoPass { previous: reusable, next }
    }
}

/// One compile's use of the memo: it reads the previous compile's and writes its own.
pub struct MemoPass<'p> {
    /// `None` when an input changed.
    previous: Option<&'p MappingMemo>,
    next: MappingMemo,
}

impl MemoPass<'_> {
    /// What `mapping` compiled to last time if it is the same Mapping now, else `compile()`.
    pub fn compiled(&mut self, mapping: &Mapping, compile: impl FnOnce() -> CompiledMapping) -> Arc<CompiledMapping> {
        let remembered = self.previous.and_then(|memo| memo.compiled.get(&mapping.meta.id));
        let compiled = match remembered {
            Some((kept, compiled)) if same_resource(kept, mapping) => compiled.clone(),
            _ => {
                self.next.recompiled += 1;
                Arc::new(compile())
            }
        };
        self.next.compiled.insert(mapping.meta.id.clone(), (mapping.clone(), compiled.clone()));
        compiled
    }

    /// This compile's memo, with the routes of the groups it formed.
    pub fn finish(self, groups: GroupMemo) -> MappingMemo {
        let (compiled, inputs_changed) = (self.next.recompiled, self.previous.is_none());
        let remembered = self.next.compiled.len() - compiled;
        let groups_built = groups.built();
        tracing::debug!(compiled, remembered, inputs_changed, groups_built, "Mappings");
        MappingMemo { groups, ..self.next }
    }
}
