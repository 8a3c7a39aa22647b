//! Settings of glibc's allocator that bound floodrt's memory: the codebase's only `unsafe`,
//! in one place. On musl (the static board builds) both are no-ops: musl has no per-thread
//! arenas, and it unmaps large freed blocks itself.

/// Limits glibc to two malloc arenas. Called once, before a server starts its threads.
///
/// glibc gives each thread that allocates its own malloc arena, and memory freed in one is
/// not reused by another: a device that loads its model on one thread and runs jobs, requests
/// and tract's workers on others peaked at 298 MiB where one arena needs 168 MiB (2048²
/// scene, 16 page clients; `bench/page_load.py`). Two arenas keep most of that saving
/// without making every thread queue on one lock.
pub fn few_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before the server
    // starts its threads, and glibc documents it as safe to call at any time.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

/// Returns the allocator's free pages to the system (glibc's `malloc_trim`).
///
/// Why: an engine call allocates and frees tens of MiB of intermediate tensors among the
/// long-lived scene blocks and row buffers; glibc keeps the freed pages resident, and over a
/// scene the holes drifted the UNet's peak 39–63 MiB above the plan built from one measured
/// call (6144²: planned 229, peak 292 MiB). Trimming after each call costs page faults on
/// the next one (6–16 % of a run) and kept the peak under the plan (182.6 of 199 MiB).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; glibc documents it as
    // thread-safe (it takes each arena's lock).
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
