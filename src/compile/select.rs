//! Which resources take part: those of this Ambassador instance (`ambassador_id`), one per
//! `Kind namespace/name`, and how a Mapping's `tls:` finds its TLSContext.

use super::Options;
use crate::diagnostic::{Diagnostic, Kind, Origin, ResourceId};
use crate::model::{Resource, TlsContext};
use std::collections::HashMap;

/// The resources whose `ambassador_id` names this instance.
pub fn select<'a, S>(resources: &'a [Resource<S>], options: &Options) -> Vec<&'a Resource<S>> {
    resources.iter().filter(|r| r.meta.belongs_to(&options.ambassador_id)).collect()
}

/// Keeps the first resource of each `Kind namespace/name` (in source order) and reports the rest.
pub fn unique<'a, S>(resources: Vec<&'a Resource<S>>, diagnostics: &mut Vec<Diagnostic>) -> Vec<&'a Resource<S>> {
    let mut first: foldhash::HashMap<&ResourceId, &Origin> = foldhash::HashMapExt::with_capacity(resources.len());
    let mut kept = Vec::with_capacity(resources.len());
    for resource in resources {
        match first.get(&resource.meta.id) {
            Some(origin) => diagnostics.push(
                Diagnostic::error(
                    Some(&resource.meta.origin),
                    Some(&resource.meta.id),
                    format!("duplicate name (first defined in {origin}); this one is ignored"),
                )
                .with_kind(Kind::Duplicate),
            ),
            None => {
                first.insert(&resource.meta.id, &resource.meta.origin);
                kept.push(resource);
            }
        }
    }
    kept
}

/// `tls: name` finds a TLSContext in the Mapping's namespace, else the only one of that name in
/// any namespace (Emissary treats context names as global).
#[derive(Clone)]
pub struct ContextLookup<'a> {
    by_name: HashMap<&'a str, Vec<&'a TlsContext>>,
}

impl<'a> ContextLookup<'a> {
    pub fn new(contexts: &[&'a TlsContext]) -> Self {
        let mut by_name: HashMap<&str, Vec<&TlsContext>> = HashMap::new();
        for ctx in contexts {
            by_name.entry(ctx.meta.name()).or_default().push(ctx);
        }
        ContextLookup { by_name }
    }

    pub fn find(&self, name: &str, namespace: &str) -> Result<&'a TlsContext, String> {
        let candidates = self.by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        if let Some(local) = candidates.iter().find(|ctx| ctx.meta.namespace() == namespace) {
            return Ok(local);
        }
        match candidates {
            [] => Err(format!("TLSContext `{name}` is not defined")),
            [only] => Ok(only),
            many => {
                let namespaces: Vec<&str> = many.iter().map(|ctx| ctx.meta.namespace()).collect();
                Err(format!("TLSContext `{name}` is ambiguous: it exists in namespaces {}", namespaces.join(", ")))
            }
        }
    }
}
