//! The `chatstorm` binary's allocator, chosen per process by its command: `chatstorm mock` runs
//! on jemalloc, as the `chatstorm-mock` binary does; every other command (a run's users above
//! all) on glibc malloc with one arena (`chatstorm::sys::tune_allocator`).
//!
//! Why two: each side was measured against both (figures beside the dependencies in Cargo.toml
//! and mock-server/Cargo.toml). The harness's idle users are smallest on glibc; the mock spends
//! far less CPU on jemalloc. A run with 19,000 users starts its embedded mock as a child
//! `chatstorm mock`, and a profile of that child through a reconnect storm showed about 30 % of
//! its samples in glibc's `_int_malloc`, `unlink_chunk`, `malloc_consolidate` and `free`.
//!
//! The choice is made once, at the process's first allocation, from `/proc/self/cmdline` read
//! into a stack buffer (no allocation while choosing), and never changes after: every block is
//! freed by the allocator that made it. Two threads racing on the first allocation would read
//! the same command line and choose the same.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

const UNDECIDED: u8 = 0;
const GLIBC: u8 = 1;
const JEMALLOC: u8 = 2;

static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The process-wide allocator: glibc, or jemalloc for `chatstorm mock`.
pub struct ByCommand;

impl ByCommand {
    #[inline]
    fn jemalloc() -> bool {
        match CHOICE.load(Ordering::Relaxed) {
            UNDECIDED => {
                let c = if is_mock_command() { JEMALLOC } else { GLIBC };
                CHOICE.store(c, Ordering::Relaxed);
                c == JEMALLOC
            }
            c => c == JEMALLOC,
        }
    }
}

/// Whether this process's first argument is `mock`, read from `/proc/self/cmdline`
/// (`argv[0]\0argv[1]\0...`) with plain system calls.
fn is_mock_command() -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: open/read/close with a NUL-terminated path and a buffer we own; no allocation.
    let n = unsafe {
        let fd = libc::open(c"/proc/self/cmdline".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let Ok(n) = usize::try_from(n) else {
        return false;
    };
    first_argument_is_mock(&buf[..n])
}

/// `argv[1] == "mock"` in a NUL-separated command line.
fn first_argument_is_mock(cmdline: &[u8]) -> bool {
    cmdline.split(|b| *b == 0).nth(1) == Some(b"mock".as_slice())
}

// SAFETY: every call goes to the one allocator chosen before the first block was handed out, so a
// block is always freed or resized by the allocator that made it; both satisfy GlobalAlloc.
unsafe impl GlobalAlloc for ByCommand {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if Self::jemalloc() {
                tikv_jemallocator::Jemalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if Self::jemalloc() {
                tikv_jemallocator::Jemalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees; the block came from the same allocator.
        unsafe {
            if Self::jemalloc() {
                tikv_jemallocator::Jemalloc.dealloc(ptr, layout);
            } else {
                System.dealloc(ptr, layout);
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees; the block came from the same allocator.
        unsafe {
            if Self::jemalloc() {
                tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::first_argument_is_mock;

    #[test]
    fn only_the_mock_command_is_the_mock() {
        assert!(first_argument_is_mock(
            b"/usr/bin/chatstorm\0mock\0--listen\0localhost:0\0"
        ));
        assert!(first_argument_is_mock(b"chatstorm\0mock\0"));
        assert!(!first_argument_is_mock(b"chatstorm\0run\0mock.yaml\0"));
        assert!(!first_argument_is_mock(b"chatstorm\0mockery\0"));
        assert!(!first_argument_is_mock(b"chatstorm\0"));
        assert!(!first_argument_is_mock(b""));
    }
}
