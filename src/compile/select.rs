//! Which resources take part: those of this Ambassador instance (`ambassador_id`), one per
//! `Kind namespace/name`, in what order Mappings are processed, and how a Mapping's `tls:` finds
//! its TLSContext.

use super::Options;
use crate::diagnostic::{Diagnostic, Kind, Origin, ResourceId};
use crate::model::{Mapping, Meta, Resource, TlsContext};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Emissary's processing order: by the key `name.namespace`, compared without being built (this
/// runs over every Mapping on every reload). Only when one name is a prefix of the other does
/// the rest of the key decide.
pub fn processing_order(a: &Mapping, b: &Mapping) -> Ordering {
    meta_order(&a.meta, &b.meta)
}

/// [`processing_order`] of the resources these are the metadata of.
pub fn meta_order(a: &Meta, b: &Meta) -> Ordering {
    fn key(m: &Meta) -> impl Iterator<Item = u8> + '_ {
        let (name, namespace) = (m.name().bytes(), m.namespace().bytes());
        name.chain(std::iter::once(b'.')).chain(namespace)
    }
    let (a_name, b_name) = (a.name().as_bytes(), b.name().as_bytes());
    let common = a_name.len().min(b_name.len());
    a_name[..common].cmp(&b_name[..common]).then_with(|| key(a).cmp(key(b)))
}

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
            Some(origin) => diagnostics.push(duplicate(resource, origin)),
            None => {
                first.insert(&resource.meta.id, &resource.meta.origin);
                kept.push(resource);
            }
        }
    }
    kept
}

/// [`unique`] for Mappings already in processing order (sorted stably from source order): two
/// with the same id have the same key, so a duplicate is found among the Mappings just before it
/// with an equal key (there are more than one only when `a.b` in `c` meets `a` in `b.c`), not in a
/// table of every id (building one on every reload was a twentieth of a one-Mapping reload at
/// 50,000 Mappings).
pub fn unique_in_order<'a>(mappings: Vec<&'a Mapping>, diagnostics: &mut Vec<Diagnostic>) -> Vec<&'a Mapping> {
    let mut kept: Vec<&Mapping> = Vec::with_capacity(mappings.len());
    for mapping in mappings {
        let same_key = kept.iter().rev().take_while(|earlier| meta_order(&earlier.meta, &mapping.meta).is_eq());
        let first = same_key.copied().find(|earlier| earlier.meta.id == mapping.meta.id);
        match first {
            Some(first) => diagnostics.push(duplicate(mapping, &first.meta.origin)),
            None => kept.push(mapping),
        }
    }
    kept
}

fn duplicate<S>(resource: &Resource<S>, first: &Origin) -> Diagnostic {
    Diagnostic::error(
        Some(&resource.meta.origin),
        Some(&resource.meta.id),
        format!("duplicate name (first defined in {first}); this one is ignored"),
    )
    .with_kind(Kind::Duplicate)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Origin;
    use crate::model::{MappingSpec, Meta};

    fn mapping(name: &str, namespace: &str) -> Mapping {
        let id = ResourceId::new("Mapping", namespace, name);
        let meta = Meta { id, origin: Origin::file("m.yaml"), ambassador_id: None, labels: Default::default() };
        Resource::new(meta, MappingSpec::default())
    }

    #[test]
    fn mappings_are_processed_in_the_order_of_their_name_dot_namespace_keys() {
        let pairs =
            [("a", "z"), ("a-b", "a"), ("a.b", "c"), ("a", "b.c"), ("ab", "a"), ("a", "a"), ("b", ""), ("", "b")];
        let mappings: Vec<Mapping> = pairs.iter().map(|(name, namespace)| mapping(name, namespace)).collect();
        for a in &mappings {
            for b in &mappings {
                let key = |m: &Mapping| format!("{}.{}", m.meta.name(), m.meta.namespace());
                assert_eq!(processing_order(a, b), key(a).cmp(&key(b)), "{} vs {}", key(a), key(b));
            }
        }
    }

    /// After the stable sort, dropping duplicates among equal keys keeps what dropping them in
    /// source order keeps, with the same diagnostics, ties of different ids on one key included.
    #[test]
    fn duplicates_found_in_processing_order_are_those_found_in_source_order() {
        let pairs = [("a.b", "c"), ("a", "b.c"), ("x", "y"), ("a.b", "c"), ("a", "b.c"), ("a", "b.c"), ("x", "z")];
        let mappings: Vec<Mapping> = pairs
            .iter()
            .enumerate()
            .map(|(document, (name, namespace))| {
                let mut mapping = mapping(name, namespace);
                std::sync::Arc::make_mut(&mut mapping.meta).origin.document = document;
                mapping
            })
            .collect();
        let (mut by_table, mut in_order) = (Vec::new(), Vec::new());
        let mut expected = unique(mappings.iter().collect(), &mut by_table);
        expected.sort_by(|a, b| processing_order(a, b));
        let mut sorted: Vec<&Mapping> = mappings.iter().collect();
        sorted.sort_by(|a, b| processing_order(a, b));
        let kept = unique_in_order(sorted, &mut in_order);
        let documents = |list: &[&Mapping]| list.iter().map(|m| m.meta.origin.document).collect::<Vec<_>>();
        assert_eq!(documents(&kept), documents(&expected));
        assert_eq!(documents(&kept), [0, 1, 2, 6]);
        by_table.sort();
        in_order.sort();
        assert_eq!(in_order, by_table);
        assert_eq!(in_order.len(), 3);
    }
}
