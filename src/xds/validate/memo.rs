//! Verdicts remembered across reloads. Whether Envoy takes a message depends only on its type,
//! its bytes and the [`Limits`]; a one-Mapping change leaves every other route, cluster and
//! secret byte-for-byte the same, so their verdicts are looked up instead of recomputed (checking
//! a message walks it reflectively, which is most of what a reload costs).
//!
//! Keys are SHA-256 digests of (type, limits, bytes), kept in generations
//! ([`crate::generations`]): no key material is held here, and a collision that would pass off a
//! rejected message as an accepted one is out of reach.

use super::Limits;
use crate::generations::{Key, Memo};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

type Verdict = Result<(), String>;

/// More verdicts than this in one generation start a new one early, so memory stays bounded
/// (two generations of about 70 bytes per verdict: under 40 MiB) even where nothing ends reloads:
/// a library caller, or endpoint refreshes (each new assignment is a new verdict) between config
/// reloads. A 50,000-Mapping reload asks about fewer than half as many.
const MAX_PER_GENERATION: usize = 1 << 18;

static MEMO: LazyLock<Memo<Verdict>> = LazyLock::new(|| Memo::new(MAX_PER_GENERATION));

fn key(type_name: &str, limits: &Limits, bytes: &[u8]) -> Key {
    let mut hasher = Sha256::new();
    // Length-prefixed, so (type, bytes) pairs cannot run into one another.
    hasher.update((type_name.len() as u64).to_le_bytes());
    hasher.update(type_name.as_bytes());
    // Every field of the limits, whatever fields they gain later.
    let limits = format!("{limits:?}");
    hasher.update((limits.len() as u64).to_le_bytes());
    hasher.update(limits.as_bytes());
    hasher.update(bytes);
    hasher.finalize().into()
}

/// The verdict on `bytes` (an encoded `type_name`), computed by `check` only when it is not
/// remembered.
pub(super) fn verdict(type_name: &str, limits: &Limits, bytes: &[u8], check: impl FnOnce() -> Verdict) -> Verdict {
    #[cfg(test)]
    if BYPASSED.get() {
        return check();
    }
    MEMO.get_or_compute(key(type_name, limits, bytes), check)
}

#[cfg(test)]
thread_local! {
    static BYPASSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every verdict on this thread computed afresh and not remembered: what tests
/// compare the remembered verdicts against.
#[cfg(test)]
pub fn bypassed<T>(f: impl FnOnce() -> T) -> T {
    BYPASSED.set(true);
    let out = f();
    BYPASSED.set(false);
    out
}

/// Verdicts held now (both generations), for tests and metrics.
pub fn remembered() -> usize {
    MEMO.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_verdict_is_computed_once_per_bytes_type_and_limits() {
        let limits = Limits::default();
        // Reloads in other tests end generations at any time; two of them between two calls a
        // moment apart would forget the verdict, so the check is given a few tries.
        let computed_once = (0..5).any(|attempt| {
            let calls = Cell::new(0);
            let check = || {
                calls.set(calls.get() + 1);
                Err("name: too short".to_string())
            };
            let bytes = format!("memo test: a verdict is computed once ({attempt})");
            let first = verdict("test.Memo", &limits, bytes.as_bytes(), check);
            let second = verdict("test.Memo", &limits, bytes.as_bytes(), check);
            assert_eq!((first, second), (Err("name: too short".into()), Err("name: too short".into())));
            calls.get() == 1
        });
        assert!(computed_once, "the second call recomputed the verdict");
        // Another type, other limits, other bytes: each its own verdict.
        let bytes = b"memo test: a verdict is computed once (0)";
        assert_eq!(verdict("test.Other", &limits, bytes, || Ok(())), Ok(()));
        assert_eq!(verdict("test.Memo", &Limits { regex_program_size: 7 }, bytes, || Ok(())), Ok(()));
        assert_eq!(verdict("test.Memo", &limits, b"memo test: other bytes", || Ok(())), Ok(()));
    }

    #[test]
    fn what_two_reloads_did_not_use_is_forgotten() {
        let limits = Limits::default();
        let bytes = b"memo test: forgotten after two reloads";
        assert_eq!(verdict("test.Forgotten", &limits, bytes, || Ok(())), Ok(()));
        crate::generations::end_reload();
        crate::generations::end_reload();
        let recomputed = Cell::new(false);
        let again = verdict("test.Forgotten", &limits, bytes, || {
            recomputed.set(true);
            Ok(())
        });
        assert_eq!(again, Ok(()));
        assert!(recomputed.get());
    }
}
