//! `memory::release_freed` gives freed memory back to the system (a process of its own: the
//! resident size is the whole process's).

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn what_a_thread_freed_leaves_the_process_when_released() {
    const CHUNKS: usize = 4096;
    const CHUNK: usize = 64 * 1024; // 256 MiB in all
    let before = resident_kib();
    // Many small blocks, as a reload's are, touched so that they are resident.
    let mut chunks: Vec<Vec<u8>> = (0..CHUNKS).map(|i| vec![i as u8; CHUNK]).collect();
    let full = resident_kib();
    assert!(full >= before + 200 * 1024, "the blocks are resident: {before} -> {full} KiB");
    chunks.clear();
    chunks.shrink_to_fit();
    let freed = resident_kib();
    ambassador_xds::memory::release_freed();
    let released = resident_kib();
    assert!(
        released + 200 * 1024 <= full,
        "resident {before} KiB before, {full} with the blocks, {freed} once they were freed, {released} once released"
    );
}

/// `MI_OPTION_PURGE_DELAY` is mimalloc's purge delay: it reads mimalloc's documented default
/// (10 ms) before it is set, its neighbours in `mi_option_t` read theirs, and setting it sticks.
#[test]
fn the_purge_delay_option_is_the_one_mimalloc_documents() {
    use ambassador_xds::memory::{hold_freed, HOLD_FREED, MI_OPTION_PURGE_DELAY};
    // SAFETY: reading options is allowed at any time.
    let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 10, "mimalloc's default purge delay");
    }
    // eager_commit_delay (=1) just before it, use_numa_nodes (=0) just after.
    assert_eq!(get(MI_OPTION_PURGE_DELAY - 1), 1);
    assert_eq!(get(MI_OPTION_PURGE_DELAY + 1), 0);
    hold_freed();
    assert_eq!(get(MI_OPTION_PURGE_DELAY) as u128, HOLD_FREED.as_millis());
}
