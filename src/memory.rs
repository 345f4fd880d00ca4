//! The process's allocator, and giving freed memory back to the system.
//!
//! mimalloc handles the translator's many small allocations (YAML values, protobuf messages)
//! markedly faster than glibc malloc (BENCHMARKS.md). It returns freed memory to the system
//! shortly after a free, but only from the thread that owns it, when that thread next allocates:
//! what a reload freed on a thread that then sleeps stays resident. In the Kubernetes benchmark
//! that was about 30 MiB of the 153 MiB resident after sync. So the controller collects what its
//! own thread freed before each job (decoding the changes), calls [`release_freed`] there after
//! publishing (the replaced snapshot is dropped there) and on its worker thread once it has been
//! idle a while (`controller::RELEASE_WHEN_IDLE`), and the Kubernetes source calls it after each
//! complete list.
//!
//! Between those, `serve` lets freed memory stay committed for [`HOLD_FREED`] instead of
//! mimalloc's 10 ms ([`hold_freed`]), and before each job the controller collects only what has
//! been held that long ([`release_expired`]): the next reload builds again most of what the last
//! one freed, and handing those pages back and faulting (and zeroing) them in again was 13% of a
//! one-Mapping reload's CPU at 5,000 Mappings, and, with everything handed back before each job,
//! about 15% at 50,000. What a burst of reloads holds this way is given back once the controller
//! is idle.

/// Set in the lib so that the binary, the tests and the benchmarks all run the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives what the calling thread freed (and every arena's freed memory) back to the system now.
pub fn release_freed() {
    // SAFETY: `mi_collect` only walks mimalloc's own heaps; it may be called at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Collects what the calling thread freed, and gives back only what has been held longer than
/// [`HOLD_FREED`]; the rest stays committed for the next reload, which builds it again.
pub fn release_expired() {
    // SAFETY: as for `release_freed`.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

/// How long `serve` keeps freed memory committed before mimalloc hands it back on its own.
pub const HOLD_FREED: std::time::Duration = std::time::Duration::from_secs(10);

/// mimalloc's `mi_option_purge_delay` (milliseconds; `libmimalloc-sys` leaves the newer options
/// unnamed "for stability"): its place in `mi_option_t` in mimalloc v2's `mimalloc.h`.
/// `tests/memory.rs` checks it against the documented defaults around it.
pub const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory committed for [`HOLD_FREED`] (process-wide; `serve` calls it once at start).
pub fn hold_freed() {
    // SAFETY: setting an option is allowed at any time; mimalloc reads it on each purge decision.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, HOLD_FREED.as_millis() as _) };
}
