//! Results kept from one admission to the next, by name: building, validating and encoding a
//! resource is most of the work of an admission, and a change to one Mapping changes one route
//! and perhaps one cluster. A result is reused only when what it was computed from is equal to
//! what it would be computed from now; the next admission keeps only what this one used.
//!
//! What a result was computed from is kept as a [`digest`], not as a copy: a copy of every route
//! and cluster would cost several KiB per Mapping between reloads. The names results are kept by
//! are the routes and clusters of the last admission ([`NameOf`]), which the compile shares.

use foldhash::{HashMap, HashMapExt};
use sha2::{Digest as _, Sha256};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

/// The SHA-256 of a value's `Hash` encoding (every string, number, length and variant it holds,
/// in order): equal values have equal digests, and different ones colliding is out of reach.
pub fn digest<T: Hash + ?Sized>(value: &T) -> [u8; 32] {
    /// Collects the encoding, so that SHA-256 runs once over it rather than once per field.
    struct Encoding(Vec<u8>);
    impl Hasher for Encoding {
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only the digest of the encoding is used")
        }
    }
    let mut encoding = Encoding(Vec::with_capacity(1024));
    value.hash(&mut encoding);
    Sha256::digest(&encoding.0).into()
}

/// What a shared value a result was computed from was: its [`digest`], and the value itself by
/// address while it is the same one (the compile shares unchanged routes and clusters across
/// reloads, so most are recognised without hashing). The weak pointer holds no copy, and keeps
/// the address from being reused by another value.
#[derive(Debug, Clone)]
pub struct Fingerprint<T: ?Sized> {
    digest: [u8; 32],
    source: Weak<T>,
}

impl<T: Hash + ?Sized> Fingerprint<T> {
    pub fn of(value: &Arc<T>) -> Self {
        Fingerprint { digest: digest(&**value), source: Arc::downgrade(value) }
    }

    /// Whether `value` is the value fingerprinted: the same one, or an equal one.
    pub fn matches(&self, value: &Arc<T>) -> bool {
        std::ptr::eq(self.source.as_ptr(), Arc::as_ptr(value)) || self.digest == digest(&**value)
    }
}

/// What a shared value is remembered by: its name.
pub trait Named {
    fn name(&self) -> &str;
}

/// A key that is the name of a shared value, and `E` (whatever else tells results apart). It
/// holds the value rather than a copy of its name: every route and cluster is looked up on every
/// admission, and the memo holds only values the compile shares anyway.
#[derive(Debug, Clone)]
pub struct NameOf<T, E = ()>(pub Arc<T>, pub E);

impl<T: Named, E: PartialEq> PartialEq for NameOf<T, E> {
    fn eq(&self, other: &Self) -> bool {
        self.1 == other.1 && self.0.name() == other.0.name()
    }
}

impl<T: Named, E: Eq> Eq for NameOf<T, E> {}

impl<T: Named, E: Hash> Hash for NameOf<T, E> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name().hash(state);
        self.1.hash(state);
    }
}

/// What each name's result was computed from, and the result.
#[derive(Debug)]
pub struct Kept<K, I, O> {
    by_name: HashMap<K, Arc<(I, O)>>,
    /// How many of the results were computed by the admission that kept them (not reused).
    computed: usize,
}

impl<K, I, O> Default for Kept<K, I, O> {
    fn default() -> Self {
        Kept { by_name: HashMap::new(), computed: 0 }
    }
}

impl<K, I, O> Kept<K, I, O> {
    pub fn computed(&self) -> usize {
        self.computed
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }
}

impl<K, I, O> Clone for Kept<K, I, O>
where
    K: Clone,
{
    fn clone(&self) -> Self {
        Kept { by_name: self.by_name.clone(), computed: self.computed }
    }
}

/// One admission's use of what the previous one kept.
pub struct Reusing<'p, K, I, O> {
    previous: &'p Kept<K, I, O>,
    next: Kept<K, I, O>,
}

impl<'p, K: Hash + Eq, I, O> Reusing<'p, K, I, O> {
    pub fn from(previous: &'p Kept<K, I, O>) -> Self {
        Reusing { previous, next: Kept { by_name: HashMap::with_capacity(previous.by_name.len()), computed: 0 } }
    }

    /// The result `name` had last time if `same` says it was computed from what it would be
    /// computed from now, else `compute()`'s (with its input); either way the next admission can
    /// reuse it.
    pub fn get(&mut self, name: K, same: impl FnOnce(&I) -> bool, compute: impl FnOnce() -> (I, O)) -> Arc<(I, O)> {
        let kept = match self.previous.by_name.get(&name) {
            Some(kept) if same(&kept.0) => kept.clone(),
            _ => {
                self.next.computed += 1;
                Arc::new(compute())
            }
        };
        self.next.by_name.insert(name, kept.clone());
        kept
    }

    pub fn finish(self) -> Kept<K, I, O> {
        self.next
    }
}
