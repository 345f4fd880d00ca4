//! Results remembered across reloads by the digest of what they were computed from: a one-Mapping
//! change leaves every other message, certificate and CA bundle byte-for-byte the same, so what
//! was decided about them is looked up instead of worked out again.
//!
//! Keys are SHA-256 digests, so no input (key material included) is held, and a collision that
//! would pass one input off as another is out of reach. Two generations bound the memory: what a
//! reload did not ask about is forgotten when the next one ends ([`end_reload`]), so a memo holds
//! at most two reloads' worth; a memo also starts a new generation early when one grows past its
//! limit (a library caller, or endpoint refreshes, end no reloads).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What a result was computed from, digested.
pub type Key = [u8; 32];

/// How many reloads have ended in this process: every memo catches up with it when next used.
static RELOADS_ENDED: AtomicU64 = AtomicU64::new(0);

/// A reload is over: in every memo, results it did not use are dropped when the next one ends.
pub fn end_reload() {
    RELOADS_ENDED.fetch_add(1, Ordering::SeqCst);
}

/// One memo, shared by every translation in the process.
pub struct Memo<V> {
    generations: Mutex<Generations<V>>,
    max_per_generation: usize,
}

struct Generations<V> {
    current: HashMap<Key, V>,
    previous: HashMap<Key, V>,
    /// [`RELOADS_ENDED`] when `current` began.
    began_at: u64,
}

impl<V> Generations<V> {
    /// Ends the generations that reloads ended since `current` began.
    fn catch_up(&mut self) {
        let now = RELOADS_ENDED.load(Ordering::SeqCst);
        match now.saturating_sub(self.began_at) {
            0 => return,
            1 => self.previous = std::mem::take(&mut self.current),
            _ => (self.current, self.previous) = (HashMap::new(), HashMap::new()),
        }
        self.began_at = now;
    }
}

impl<V: Clone> Memo<V> {
    pub fn new(max_per_generation: usize) -> Self {
        let generations = Generations { current: HashMap::new(), previous: HashMap::new(), began_at: 0 };
        Memo { generations: Mutex::new(generations), max_per_generation }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<V>> {
        let mut generations = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        generations.catch_up();
        generations
    }

    /// The result remembered for `key`, or `compute()`'s, remembered.
    pub fn get_or_compute(&self, key: Key, compute: impl FnOnce() -> V) -> V {
        {
            let mut generations = self.lock();
            let generations = &mut *generations;
            if let Some(found) = generations.current.get(&key) {
                return found.clone();
            }
            if let Some(found) = generations.previous.remove(&key) {
                generations.current.insert(key, found.clone());
                return found;
            }
        }
        // Computed outside the lock: concurrent translations (tests, `diff`) do not wait on each
        // other.
        let fresh = compute();
        let mut generations = self.lock();
        if generations.current.len() >= self.max_per_generation {
            generations.previous = std::mem::take(&mut generations.current);
        }
        generations.current.insert(key, fresh.clone());
        fresh
    }

    /// Results held now (both generations).
    pub fn len(&self) -> usize {
        let generations = self.lock();
        generations.current.len() + generations.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_result_is_computed_once_and_forgotten_two_reloads_after_its_last_use() {
        let memo: Memo<u32> = Memo::new(16);
        let calls = Cell::new(0);
        let compute = || {
            calls.set(calls.get() + 1);
            7
        };
        assert_eq!((memo.get_or_compute([1; 32], compute), memo.get_or_compute([1; 32], compute)), (7, 7));
        assert_eq!(calls.get(), 1);
        // Reloads in other tests end generations too, so only "at least" counts can be relied on:
        // after two more, it is gone.
        end_reload();
        end_reload();
        assert_eq!(memo.get_or_compute([1; 32], compute), 7);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn a_generation_that_outgrows_its_limit_ends_early() {
        let memo: Memo<u8> = Memo::new(4);
        for i in 0..20u8 {
            memo.get_or_compute([i; 32], || i);
        }
        assert!(memo.len() <= 8, "two generations of at most 4: {}", memo.len());
    }
}
