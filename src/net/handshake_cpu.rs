//! The harness's own CPU time in TLS handshakes: [`HandshakeCpu`], one per run's [`super::Tls`]
//! (shared by every user, lane and HTTP client of the run), added to by every handshake
//! `super::lean_tls` makes, and read by the run's sampler (`engine::tls_load`) for the
//! generator-honesty verdict.
//!
//! Why measured apart: a storm of full handshakes can fill the harness's cores with its own key
//! agreements and certificate checks while its scheduler still wakes on time (each handshake
//! step is a few hundred microseconds), so the lag probe stays quiet while connects queue
//! inside the harness and `connect.tls` measures the harness rather than the server.
//!
//! What is counted: the calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) across rustls's
//! synchronous work (making the ClientHello and its key share, processing the server's flight:
//! key agreement, certificate and signature checks, key schedule), not the time spent waiting
//! on the network. Thread CPU rather than wall time, so that a shared machine preempting the
//! harness does not count as handshake work. It costs two `clock_gettime` calls per step, a
//! few microseconds per handshake against the ~300 µs a full one takes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Nanoseconds of CPU spent in TLS handshakes, summed over every thread.
#[derive(Debug, Default)]
pub struct HandshakeCpu {
    ns: AtomicU64,
}

impl HandshakeCpu {
    /// Runs `work` (synchronous handshake work) and adds the CPU time it took this thread.
    pub fn measure<T>(&self, work: impl FnOnce() -> T) -> T {
        let before = thread_cpu_ns();
        let r = work();
        self.ns.fetch_add(thread_cpu_ns().saturating_sub(before), Relaxed);
        r
    }

    /// Counts `ns` as if measured (tests of what reads the meter).
    #[cfg(test)]
    pub(crate) fn add(&self, ns: u64) {
        self.ns.fetch_add(ns, Relaxed);
    }

    /// The CPU time counted so far, nanoseconds.
    pub fn total_ns(&self) -> u64 {
        self.ns.load(Relaxed)
    }
}

/// This thread's CPU time (user + system), nanoseconds; 0 where it cannot be read.
pub fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0;
    }
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_work_s_cpu_not_its_sleep() {
        let m = HandshakeCpu::default();
        m.measure(|| std::thread::sleep(std::time::Duration::from_millis(30)));
        assert!(m.total_ns() < 10_000_000, "a sleep is no CPU: {} ns", m.total_ns());
        // Spins until this thread has had 30 ms of CPU (the machine may be shared: wall time
        // says nothing of how much CPU the spin got).
        let start = thread_cpu_ns();
        m.measure(|| while thread_cpu_ns() < start + 30_000_000 {});
        assert!(m.total_ns() >= 30_000_000, "30 ms of spinning: {} ns", m.total_ns());
    }
}
