//! Child processes (`--workers` shards, the embedded mock run as a child) must not outlive the
//! harness, even when it is killed with SIGKILL and has no chance to clean up: each child asks
//! the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`, set between fork and exec).
//!
//! The kernel sends it when the *thread* that forked the child exits. Children are spawned from
//! tokio worker threads (or the main thread), which live until the runtime shuts down, i.e.
//! until the harness exits; never spawn one from a blocking-pool thread, which may retire early.

/// Makes `cmd`'s child get SIGKILL when this process dies. If this process is already gone by
/// the time the child runs (the race between fork and prctl), the child exits at once.
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid, _exit), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Sends `sig` to a child by its id (no-op when it has already been reaped).
pub fn signal(child: &tokio::process::Child, sig: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill with a pid we spawned and still hold (not yet reaped, so not reused).
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// [`die_with_parent`] and a process group of its own (a terminal's Ctrl-C then reaches only the
/// harness, which stops its children itself, in order), in a `Command` chain.
pub trait TiedToParent {
    /// Applies both to the command; returns it for chaining.
    fn tied_to_parent(&mut self) -> &mut Self;
}

impl TiedToParent for tokio::process::Command {
    fn tied_to_parent(&mut self) -> &mut Self {
        self.process_group(0);
        die_with_parent(self);
        self
    }
}
