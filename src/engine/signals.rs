//! SIGINT and SIGTERM, alike: the first stops the users and lets the run write every output
//! (the verdict says it was interrupted, exit 5); the second exits at once. SIGTERM is what
//! Kubernetes and CI runners send, so it must not lose the results Ctrl-C keeps.
//!
//! The listener lives as long as its [`Interrupts`]: a run holds one and the listener ends with
//! it (no task outlives the run, and a later run starts with a fresh count). Once tokio has
//! installed its handlers they stay installed for the process, so a signal that arrives after
//! the run (while `chatstorm run` writes its outputs, a few milliseconds) is ignored rather than
//! killing the process half-way through a file.

use std::sync::{Arc, Mutex};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The signals that stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Stop {
    /// The signal's number.
    pub fn number(self) -> i32 {
        match self {
            Self::Interrupt => libc::SIGINT,
            Self::Terminate => libc::SIGTERM,
        }
    }

    /// `Ctrl-C` / `SIGTERM`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "Ctrl-C",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The conventional exit status of a process killed by it (128 + number).
    pub fn exit_status(self) -> i32 {
        128 + self.number()
    }
}

/// A listener for SIGINT and SIGTERM, ended when dropped.
pub struct Interrupts {
    token: CancellationToken,
    first: Arc<Mutex<Option<Stop>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Interrupts {
    /// Starts listening. `on_first` runs once, on the first signal (after the token is
    /// cancelled); the second signal exits the process at once with 128 + its number.
    ///
    /// # Errors
    /// When the signal handlers cannot be installed.
    pub fn listen(on_first: impl Fn(Stop) + Send + 'static) -> std::io::Result<Self> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let token = CancellationToken::new();
        let first: Arc<Mutex<Option<Stop>>> = Arc::default();
        let task = {
            let (token, first) = (token.clone(), first.clone());
            tokio::spawn(async move {
                loop {
                    let sig = tokio::select! {
                        Some(()) = int.recv() => Stop::Interrupt,
                        Some(()) = term.recv() => Stop::Terminate,
                        else => return,
                    };
                    let seen = match first.lock() {
                        Ok(mut f) => {
                            let was = f.is_some();
                            f.get_or_insert(sig);
                            was
                        }
                        Err(_) => true,
                    };
                    if seen {
                        eprintln!(
                            "\nchatstorm: second signal ({}), exiting now without writing results",
                            sig.name()
                        );
                        std::process::exit(sig.exit_status());
                    }
                    token.cancel();
                    on_first(sig);
                }
            })
        };
        Ok(Self { token, first, task })
    }

    /// Cancelled on the first signal.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The first signal, if one came.
    pub fn first(&self) -> Option<Stop> {
        self.first.lock().ok().and_then(|f| *f)
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.task.abort();
    }
}
