//! What each Mapping compiled to, remembered from one compile to the next, so that a change to
//! one Mapping recompiles one Mapping.
//!
//! A Mapping's compile ([`super::mapping::MappingCompiler`]) reads the Mapping and a handful of
//! inputs besides it: the options, the Module's settings, the kinds that are not translated, the
//! TLSContexts, the resolvers and the contexts' resolved TLS. Those inputs are kept with the memo.
//! When one that every Mapping reads differs from last time (the options, the Module, the
//! resolvers, the untranslated kinds), nothing is reused. A TLSContext is read only by the
//! Mappings that name it (`tls: <name>`, looked up among the contexts of that name), so a change
//! to the contexts of one name (or to their resolved TLS) compiles those Mappings again and no
//! others. Otherwise a Mapping whose metadata and spec are the same as last time gets last time's
//! result: its candidate, the cluster it claims, the context it uses and the diagnostics it
//! produced. Everything that depends on several Mappings (canary groups, order, cluster sharing
//! and names) is assembled from those results on every compile (`group_memo.rs` reuses each
//! group's routes).
//!
//! There is no second compile mode: a one-shot `translate` starts from an empty memo.

use super::cluster_set::ClusterMemo;
use super::group_memo::GroupMemo;
use super::mapping::CompiledMapping;
use super::module::Settings;
use super::processing_order::ProcessingOrder;
use super::select::processing_order;
use super::tls::ResolvedContext;
use super::Options;
use crate::diagnostic::ResourceId;
use crate::model::mapping::TlsSetting;
use crate::model::{Mapping, Resolver, Resource, TlsContext};
use std::cmp::Ordering;
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
    resolvers: Vec<Resolver>,
    /// The TLSContexts by name, each with its resolution.
    contexts: BTreeMap<String, Vec<(TlsContext, Resolution)>>,
}

type Resolution = Option<Result<ResolvedContext, String>>;

/// A context of some name now, with its resolution.
type NamedNow<'a> = (&'a TlsContext, Option<&'a Result<ResolvedContext, String>>);

/// The TLSContexts of each name, in order, with their resolutions: all that the compile of a
/// Mapping with `tls: <name>` reads of them (`ContextLookup::find` looks among the contexts of
/// that name), and all that a Mapping without it reads (nothing).
fn contexts_by_name<'a>(inputs: &Inputs<'a>) -> BTreeMap<&'a str, Vec<NamedNow<'a>>> {
    let mut by_name: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for ctx in inputs.contexts {
        by_name.entry(ctx.meta.name()).or_default().push((*ctx, inputs.resolved.get(&ctx.meta.id)));
    }
    by_name
}

impl KeptInputs {
    fn new(inputs: &Inputs<'_>) -> KeptInputs {
        let contexts = contexts_by_name(inputs)
            .into_iter()
            .map(|(name, named)| {
                let named = named.into_iter().map(|(ctx, resolved)| (ctx.clone(), resolved.cloned())).collect();
                (name.to_string(), named)
            })
            .collect();
        KeptInputs {
            options: inputs.options.clone(),
            settings: inputs.settings.clone(),
            skipped_kinds: inputs.skipped_kinds.clone(),
            resolvers: inputs.resolvers.iter().map(|r| (*r).clone()).collect(),
            contexts,
        }
    }

    /// `None` when an input every Mapping reads changed; else the names of the TLSContexts that
    /// changed (resources or resolutions), which only the Mappings naming them read.
    fn changed_contexts(&self, inputs: &Inputs<'_>) -> Option<BTreeSet<String>> {
        let same = self.options == *inputs.options
            && self.settings == *inputs.settings
            && self.skipped_kinds == *inputs.skipped_kinds
            && same_resources(&self.resolvers, inputs.resolvers);
        if !same {
            return None;
        }
        let now = contexts_by_name(inputs);
        let same_named = |kept: &[(TlsContext, Resolution)], now: &[NamedNow<'_>]| {
            kept.len() == now.len()
                && kept
                    .iter()
                    .zip(now)
                    .all(|((a, a_resolved), (b, b_resolved))| same_resource(a, b) && a_resolved.as_ref() == *b_resolved)
        };
        let names: BTreeSet<&str> = self.contexts.keys().map(String::as_str).chain(now.keys().copied()).collect();
        let changed = names
            .into_iter()
            .filter(|name| match (self.contexts.get(*name), now.get(name)) {
                (Some(kept), Some(now)) => !same_named(kept, now),
                _ => true,
            })
            .map(str::to_string)
            .collect();
        Some(changed)
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
    /// Emissary's probe Mappings, in the order they were compiled.
    probes: Vec<Kept>,
    /// The other Mappings, in processing order ([`processing_order`]): the next compile asks for
    /// them in that order too, so each is found by walking the two lists side by side, not by a
    /// lookup (a lookup into a table of every Mapping, and building that table again, were a
    /// tenth of a one-Mapping reload at 50,000 Mappings).
    ordered: Vec<Kept>,
    /// How many of them the compile that kept them compiled (rather than reused).
    recompiled: usize,
    groups: GroupMemo,
    clusters: ClusterMemo,
    processing_order: ProcessingOrder,
}

/// A Mapping as it was compiled, and what it compiled to.
#[derive(Debug, Clone)]
struct Kept {
    mapping: Mapping,
    compiled: Arc<CompiledMapping>,
}

impl MappingMemo {
    pub fn recompiled(&self) -> usize {
        self.recompiled
    }

    pub fn groups(&self) -> &GroupMemo {
        &self.groups
    }

    /// Takes the groups' and clusters' memos and the processing order out (what a compile reads
    /// besides each Mapping's result), leaving what the Mappings compiled to.
    pub fn split(&mut self) -> (GroupMemo, ClusterMemo, ProcessingOrder) {
        let order = std::mem::take(&mut self.processing_order);
        (std::mem::take(&mut self.groups), std::mem::take(&mut self.clusters), order)
    }
}

impl MappingMemo {
    /// Starts the memo of a compile with `inputs`; what `previous` remembers is used only if it
    /// was compiled with the same inputs (for a Mapping that names a TLSContext: with the same
    /// contexts of that name).
    pub fn continuing(previous: MappingMemo, inputs: &Inputs<'_>) -> MemoPass {
        let changes = previous.inputs.as_ref().and_then(|kept| Some((kept, kept.changed_contexts(inputs)?)));
        let (reusable, kept, changed_contexts) = match changes {
            Some((kept, changed)) if changed.is_empty() => (true, kept.clone(), changed),
            Some((_, changed)) => (true, KeptInputs::new(inputs), changed),
            None => (false, KeptInputs::new(inputs), BTreeSet::new()),
        };
        let next = MappingMemo {
            inputs: Some(kept),
            probes: Vec::new(),
            ordered: Vec::with_capacity(previous.ordered.len()),
            ..MappingMemo::default()
        };
        let (probes, ordered) = if reusable { (previous.probes, previous.ordered) } else { Default::default() };
        MemoPass { inputs_changed: !reusable, probes, ordered: ordered.into_iter().peekable(), changed_contexts, next }
    }
}

/// One compile's use of the memo: it takes the previous compile's over and writes its own.
pub struct MemoPass {
    /// Whether an input every Mapping reads changed (nothing is reused).
    inputs_changed: bool,
    /// The previous compile's, when it had the inputs every Mapping reads that this one has.
    probes: Vec<Kept>,
    /// The previous compile's other Mappings not yet walked past.
    ordered: std::iter::Peekable<std::vec::IntoIter<Kept>>,
    /// The names of the TLSContexts that changed: the Mappings that name them are compiled again.
    changed_contexts: BTreeSet<String>,
    next: MappingMemo,
}

impl MemoPass {
    /// What `mapping` compiled to last time if it is the same Mapping now and read nothing that
    /// changed, else `compile()`. Probe Mappings first, then the others in processing order.
    pub fn compiled(
        &mut self,
        mapping: &Mapping,
        probe: bool,
        compile: impl FnOnce() -> CompiledMapping,
    ) -> Arc<CompiledMapping> {
        let remembered = if probe { self.remembered_probe(mapping) } else { self.remembered(mapping) };
        // Only asked when a context changed: reading the spec is a cache miss per Mapping.
        let reads_changed_context = !self.changed_contexts.is_empty()
            && match &mapping.spec.tls {
                Some(TlsSetting::Context(name)) => self.changed_contexts.contains(name),
                _ => false,
            };
        let kept = match remembered {
            Some(kept) if same_resource(&kept.mapping, mapping) && !reads_changed_context => {
                if Arc::ptr_eq(&kept.mapping.meta, &mapping.meta) && Arc::ptr_eq(&kept.mapping.spec, &mapping.spec) {
                    // Moved on as it is: no reference count touched.
                    kept
                } else {
                    Kept { mapping: mapping.clone(), compiled: kept.compiled }
                }
            }
            _ => {
                self.next.recompiled += 1;
                Kept { mapping: mapping.clone(), compiled: Arc::new(compile()) }
            }
        };
        let compiled = kept.compiled.clone();
        if probe {
            self.next.probes.push(kept)
        } else {
            self.next.ordered.push(kept)
        }
        compiled
    }

    fn remembered_probe(&mut self, mapping: &Mapping) -> Option<Kept> {
        let at = self.probes.iter().position(|kept| kept.mapping.meta.id == mapping.meta.id)?;
        Some(self.probes.swap_remove(at))
    }

    /// The previous compile's entry for `mapping`, walking past the Mappings that are gone (they
    /// come before it in processing order). A Mapping whose place ties with another's (the same
    /// `name.namespace` key, different ids) may be missed and is compiled again: reuse never
    /// depends on the walk, only on the id and the resource being the same.
    fn remembered(&mut self, mapping: &Mapping) -> Option<Kept> {
        loop {
            let kept = self.ordered.peek()?;
            if Arc::ptr_eq(&kept.mapping.meta, &mapping.meta) || kept.mapping.meta.id == mapping.meta.id {
                return self.ordered.next();
            }
            match processing_order(&kept.mapping, mapping) {
                // Gone (or moved later): dropped here.
                Ordering::Less => drop(self.ordered.next()),
                // New (or moved earlier), or a tie.
                Ordering::Greater | Ordering::Equal => return None,
            }
        }
    }

    /// This compile's memo, with the routes of the groups it formed, the clusters it made and
    /// the order it processed the Mappings in.
    pub fn finish(self, groups: GroupMemo, clusters: ClusterMemo, processing_order: ProcessingOrder) -> MappingMemo {
        let (compiled, inputs_changed) = (self.next.recompiled, self.inputs_changed);
        let remembered = self.next.probes.len() + self.next.ordered.len() - compiled;
        let (contexts_changed, groups_built) = (self.changed_contexts.len(), groups.built());
        tracing::debug!(compiled, remembered, inputs_changed, contexts_changed, groups_built, "Mappings");
        MappingMemo { groups, clusters, processing_order, ..self.next }
    }
}
