//! What the operating system allows a run: open descriptors (raised to the hard limit at start)
//! and loopback source addresses (one source address reaches one server port through about
//! 28,000 ephemeral ports, so sockets are spread over 127.0.0.1, 127.0.0.2, ...).

use std::net::{IpAddr, Ipv4Addr};

/// Descriptors kept back for everything that is not a user's socket (HTTP pool, files, the
/// embedded mock's listener, stdio).
pub const RESERVED_FDS: u64 = 200;
/// Sockets per loopback source address before the next address is used. Far below the ~28,000
/// ephemeral ports of the default range on purpose: the kernel finds a free port for a connect
/// by scanning the range, and past about half of it in use that scan dominated the harness's CPU
/// (82 % in `__inet_hash_connect` at 14,000 sockets on one address) and connects stalled.
pub const SOCKETS_PER_SOURCE: u32 = 4_000;
/// Source addresses set aside per shard: shard `i` uses 127.0.0.(1 + 16 i) and up, so local
/// shards never share a port space (16 addresses hold 64,000 sockets, more than a process can).
pub const SOURCES_PER_SHARD: u8 = 16;

/// The cores this process may use (2 when the system cannot say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// Raises the soft limit on open descriptors to the hard limit and returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        r.rlim_cur
    }
}

/// The loopback source addresses for `sockets` client sockets: 127.0.0.1 and up, one per
/// [`SOCKETS_PER_SOURCE`] sockets, offset by `first` so shards use disjoint addresses.
pub fn source_addresses(sockets: u32, first: u8) -> Vec<IpAddr> {
    let n = sockets.div_ceil(SOCKETS_PER_SOURCE).max(1);
    (0..n)
        .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, first.saturating_add(k as u8).max(1))))
        .collect()
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`), when readable.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// One malloc arena for the whole process (glibc's default is eight per core): with a pool of
/// worker threads, each arena keeps its own free holes, and an allocation made on one worker and
/// freed on another strands memory in the wrong arena. Measured at 10,000 users: about 7 % less
/// resident memory, no measurable CPU cost at these allocation rates.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes plain integers; called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the allocator's free pages back to the system (glibc's `malloc_trim`). Connect bursts
/// leave freed request and response buffers scattered between long-lived user state; without
/// this the resident set keeps every such hole for the rest of the run.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and may be called at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// CPU seconds (user + system) this process has used.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return 0.0;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(u.ru_utime) + secs(u.ru_stime)
    }
}

/// Open descriptors of this process right now.
pub fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_addresses() {
        assert!(raise_fd_limit() >= 256);
        assert_eq!(source_addresses(10, 1), vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))]);
        assert_eq!(source_addresses(50_000, 4).len(), 13);
        assert_eq!(
            source_addresses(19_000, 17)[4],
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 21))
        );
        assert!(resident_bytes().unwrap() > 0);
        assert!(open_fds().unwrap() >= 3);
    }
}
