//! Results kept from one admission to the next, by name: building, validating and encoding a
//! resource is most of the work of an admission, and a change to one Mapping changes one route
//! and perhaps one cluster. A result is reused only when what it was computed from is equal to
//! what it would be computed from now; the next admission keeps only what this one used.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// What each name's result was computed from, and the result.
#[derive(Debug)]
pub struct Kept<K, I, O> {
    by_name: HashMap<K, Arc<(I, O)>>,
}

impl<K, I, O> Default for Kept<K, I, O> {
    fn default() -> Self {
        Kept { by_name: HashMap::new() }
    }
}

impl<K, I, O> Clone for Kept<K, I, O>
where
    K: Clone,
{
    fn clone(&self) -> Self {
        Kept { by_name: self.by_name.clone() }
    }
}

/// One admission's use of what the previous one kept.
pub struct Reusing<'p, K, I, O> {
    previous: &'p Kept<K, I, O>,
    next: Kept<K, I, O>,
}

impl<'p, K: Hash + Eq, I, O> Reusing<'p, K, I, O> {
    pub fn from(previous: &'p Kept<K, I, O>) -> Self {
        Reusing { previous, next: Kept { by_name: HashMap::with_capacity(previous.by_name.len()) } }
    }

    /// The result `name` had last time if `same` says it was computed from what it would be
    /// computed from now, else `compute()`'s (with its input); either way the next admission can
    /// reuse it.
    pub fn get(&mut self, name: K, same: impl FnOnce(&I) -> bool, compute: impl FnOnce() -> (I, O)) -> Arc<(I, O)> {
        let kept = match self.previous.by_name.get(&name) {
            Some(kept) if same(&kept.0) => kept.clone(),
            _ => Arc::new(compute()),
        };
        self.next.by_name.insert(name, kept.clone());
        kept
    }

    pub fn finish(self) -> Kept<K, I, O> {
        self.next
    }
}
