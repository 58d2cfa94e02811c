//! Process-wide allocator settings, applied by the binaries first thing,
//! before a runtime starts threads.
//!
//! glibc gives each thread that allocates an arena of its own, up to eight
//! per core. An ingest run allocates message-sized buffers on the runtime's
//! workers, on each SQLite connection's thread and on the blocking pool;
//! memory freed in one arena is not reused by another, so a run's peak RSS
//! grew with the number of threads that ever touched a batch (about 13 MiB
//! more on the 10k-message benchmark) rather than with what was live.

/// Caps glibc's malloc arenas at one per core, unless `MALLOC_ARENA_MAX`
/// (glibc's own setting, which it reads itself) says otherwise. Does
/// nothing with another C library.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let arenas = std::os::raw::c_int::try_from(cores).unwrap_or(8);
        // SAFETY: `mallopt` only changes a malloc tunable; it is called
        // before other threads exist, as glibc recommends.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
