//! `hearth`: parse the command line and hand over to `hearth::cli`.

fn main() {
    tune_malloc();
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(hearth::cli::main(args));
}

/// glibc's malloc raises its mmap threshold after large blocks are freed, so
/// later argon2 buffers (19 MiB each) land in per-thread arenas that are
/// never returned: measured at 650 MiB RSS after a few hundred
/// registrations. A fixed threshold keeps big blocks mmapped (returned on
/// free) and two arenas bound fragmentation: idle RSS stays at a few MiB,
/// which is what a 512 MB board needs. musl's allocator needs neither.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters and is
    // called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
