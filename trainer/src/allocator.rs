//! glibc's allocator, set for training: the trainer's only `unsafe`, in one place.
//!
//! A training step allocates and frees the same large tensors over and over (attention scores
//! of `[B, heads, N, N]` are 67 MB at 1024 tokens). By default glibc serves such blocks with a
//! fresh `mmap` and unmaps them on free, and trims the heap top back to the kernel: every
//! step then pays page faults and zeroing for memory it just gave back. Kept instead, the
//! `tiny` step at 256², batch 4 went from 7.4 to 4.6 s with the same peak RSS (1.98 GB),
//! because the peak is the same set of blocks either way (`bench/README.md`, trainer profile).
//! The runtime's allocator policy is the opposite one (bound the resident set of a
//! long-running device), so the two are set apart.

/// Serves large blocks from the heap and never trims it. Call once, first thing in `main`.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists, and glibc documents it as safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}
