//! Results kept from one admission to the next: building, validating and encoding a resource is
//! most of the work of an admission, and a change to one Mapping changes one route and perhaps
//! one cluster. A result is reused only when what it was computed from is equal to what it would
//! be computed from now; the next admission keeps only what this one used. Clusters' results are
//! kept by name ([`Kept`]); routes', which an admission asks for in route order, in that order
//! (`route_verdicts.rs`), both with what they were computed from as a [`Fingerprint`].
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

    /// Whether `value` is the very value fingerprinted (by address; no hashing).
    pub fn is(&self, value: &Arc<T>) -> bool {
        std::ptr::eq(self.source.as_ptr(), Arc::as_ptr(value))
    }

    /// Whether `value` is the value fingerprinted: the same one ([`Reuse::Kept`]), or an equal one
    /// at another address ([`Reuse::Refreshed`] with its fingerprint: remembering the new address
    /// is what spares the next admission the digest).
    pub fn compare(&self, value: &Arc<T>) -> Reuse<Fingerprint<T>> {
        if self.is(value) {
            Reuse::Kept
        } else if self.digest == digest(&**value) {
            Reuse::Refreshed(Fingerprint { digest: self.digest, source: Arc::downgrade(value) })
        } else {
            Reuse::No
        }
    }
}

/// Whether a kept result can be reused, judged from what it was computed from (`I`).
#[derive(Debug)]
pub enum Reuse<I> {
    /// From the very same input: as it is.
    Kept,
    /// From an equal input: the result is reused, and this is remembered as its input instead.
    Refreshed(I),
    /// Computed again.
    No,
}

impl<I> Reuse<I> {
    pub fn map<J>(self, f: impl FnOnce(I) -> J) -> Reuse<J> {
        match self {
            Reuse::Kept => Reuse::Kept,
            Reuse::Refreshed(input) => Reuse::Refreshed(f(input)),
            Reuse::No => Reuse::No,
        }
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

/// What each name's result was computed from, and the result. Kept in place from one admission
/// to the next (an admission takes it over, stamps what it uses and sweeps the rest): building a
/// fresh table of tens of thousands of entries on every reload, and dropping the old one, cost
/// more than the lookups.
#[derive(Debug)]
pub struct Kept<K, I, O> {
    by_name: HashMap<K, Slot<I, O>>,
    /// How many of the results were computed by the admission that kept them (not reused).
    computed: usize,
    /// How many it reused only after finding a new value equal to the old one by content.
    refreshed: usize,
    /// Counts admissions: an entry whose stamp is the current one was used by this admission.
    generation: u64,
}

#[derive(Debug)]
struct Slot<I, O> {
    kept: Arc<(I, O)>,
    used: u64,
}

impl<I, O> Clone for Slot<I, O> {
    fn clone(&self) -> Self {
        Slot { kept: self.kept.clone(), used: self.used }
    }
}

impl<K, I, O> Default for Kept<K, I, O> {
    fn default() -> Self {
        Kept { by_name: HashMap::new(), computed: 0, refreshed: 0, generation: 0 }
    }
}

impl<K, I, O> Kept<K, I, O> {
    pub fn computed(&self) -> usize {
        self.computed
    }

    pub fn refreshed(&self) -> usize {
        self.refreshed
    }

    /// Kept as it is by an admission that reused all of it without asking for any of it: every
    /// result stays, and none was computed or refreshed.
    pub fn untouched(self) -> Self {
        Kept { computed: 0, refreshed: 0, ..self }
    }
}

impl<K, I, O> Clone for Kept<K, I, O>
where
    K: Clone,
{
    fn clone(&self) -> Self {
        Kept {
            by_name: self.by_name.clone(),
            computed: self.computed,
            refreshed: self.refreshed,
            generation: self.generation,
        }
    }
}

/// One admission's use of what the previous one kept.
pub struct Reusing<K, I, O> {
    kept: Kept<K, I, O>,
}

impl<K: Hash + Eq, I, O: Clone> Reusing<K, I, O> {
    pub fn from(previous: Kept<K, I, O>) -> Self {
        let mut kept = previous;
        kept.generation += 1;
        kept.computed = 0;
        kept.refreshed = 0;
        Reusing { kept }
    }

    /// The result `name` had last time if `reuse` says it was computed from what it would be
    /// computed from now, else `compute()`'s (with its input); either way the next admission can
    /// reuse it.
    pub fn get(
        &mut self,
        name: K,
        reuse: impl FnOnce(&I) -> Reuse<I>,
        compute: impl FnOnce() -> (I, O),
    ) -> Arc<(I, O)> {
        let generation = self.kept.generation;
        let refreshed = match self.kept.by_name.get_mut(&name) {
            Some(slot) => match reuse(&slot.kept.0) {
                Reuse::Kept => {
                    slot.used = generation;
                    return slot.kept.clone();
                }
                Reuse::Refreshed(input) => {
                    self.kept.refreshed += 1;
                    Some(Arc::new((input, slot.kept.1.clone())))
                }
                Reuse::No => None,
            },
            None => None,
        };
        let replacement = refreshed.unwrap_or_else(|| {
            self.kept.computed += 1;
            Arc::new(compute())
        });
        // The key is replaced too: it holds the value it names, and the old one is let go.
        self.kept.by_name.remove(&name);
        self.kept.by_name.insert(name, Slot { kept: replacement.clone(), used: generation });
        replacement
    }

    /// What the next admission starts from: the results this one used.
    pub fn finish(self) -> Kept<K, I, O> {
        let mut kept = self.kept;
        let generation = kept.generation;
        kept.by_name.retain(|_, slot| slot.used == generation);
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Hash)]
    struct Value(&'static str, u32);

    impl Named for Value {
        fn name(&self) -> &str {
            self.0
        }
    }

    type Memo = Kept<NameOf<Value>, Fingerprint<Value>, u32>;

    /// How a kept result was judged (`None`: there was none), and the result.
    type Seen = (Option<&'static str>, u32);

    /// One admission asking for `values`: what it saw of each.
    fn admission(memo: Memo, values: &[&Arc<Value>]) -> (Memo, Vec<Seen>) {
        let mut reusing = Reusing::from(memo);
        let mut seen = Vec::new();
        for value in values {
            let mut judged = None;
            let got = reusing.get(
                NameOf((*value).clone(), ()),
                |kept| {
                    let reuse = kept.compare(value);
                    judged = Some(match reuse {
                        Reuse::Kept => "kept",
                        Reuse::Refreshed(_) => "refreshed",
                        Reuse::No => "no",
                    });
                    reuse
                },
                || (Fingerprint::of(value), value.1 * 10),
            );
            seen.push((judged, got.1));
        }
        (reusing.finish(), seen)
    }

    #[test]
    fn an_equal_value_at_a_new_address_is_digested_once_then_known_by_address() {
        let first = Arc::new(Value("a", 1));
        let (memo, seen) = admission(Memo::default(), &[&first]);
        assert_eq!(seen, [(None, 10)]);
        let (memo, seen) = admission(memo, &[&first]);
        assert_eq!(seen, [(Some("kept"), 10)]);
        // Rebuilt equal (a Module change compiles every Mapping again): the digest says equal once,
        // and from then on the address does; before, every later admission digested it again.
        let rebuilt = Arc::new(Value("a", 1));
        let (memo, seen) = admission(memo, &[&rebuilt]);
        assert_eq!(seen, [(Some("refreshed"), 10)]);
        drop(first);
        let (memo, seen) = admission(memo, &[&rebuilt]);
        assert_eq!(seen, [(Some("kept"), 10)]);
        assert_eq!(memo.computed(), 0);
        let changed = Arc::new(Value("a", 2));
        let (memo, seen) = admission(memo, &[&changed]);
        assert_eq!((seen, memo.computed()), (vec![(Some("no"), 20)], 1));
    }

    #[test]
    fn what_an_admission_did_not_ask_for_is_forgotten() {
        let (a, b) = (Arc::new(Value("a", 1)), Arc::new(Value("b", 2)));
        let (memo, seen) = admission(Memo::default(), &[&a, &b, &a]);
        assert_eq!(seen, [(None, 10), (None, 20), (Some("kept"), 10)]);
        let (memo, _) = admission(memo, &[&b]);
        assert_eq!(memo.by_name.len(), 1);
        let (_, seen) = admission(memo, &[&a, &b]);
        assert_eq!(seen, [(None, 10), (Some("kept"), 20)]);
    }
}
