//! The process's allocator, and giving freed memory back to the system.
//!
//! mimalloc handles the translator's many small allocations (YAML values, protobuf messages)
//! markedly faster than glibc malloc (BENCHMARKS.md). It returns freed memory to the system
//! shortly after a free, but only from the thread that owns it, when that thread next allocates:
//! what a reload freed on a thread that then sleeps stays resident. In the Kubernetes benchmark
//! that was about 30 MiB of the 153 MiB resident after sync. So the controller calls
//! [`release_freed`] on the threads that did a job's work when the job is done, and the
//! Kubernetes source after each complete list.

/// Set in the lib so that the binary, the tests and the benchmarks all run the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives what the calling thread freed (and every arena's freed memory) back to the system now.
pub fn release_freed() {
    // SAFETY: `mi_collect` only walks mimalloc's own heaps; it may be called at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
