//! The embedded target: the bundled mock server, started for a run that names no target. It
//! runs in-process when the descriptor limit allows two descriptors per user (the client's
//! socket and the server's), otherwise as a child process (`chatstorm mock`) so each side gets
//! the whole limit.

use super::children::TiedToParent;
use crate::scenario::MockOptions;
use crate::target::Target;
use chatstorm_mock::MockConfig;
use std::process::Stdio;
use std::str::FromStr;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

/// API key of the embedded mock when the scenario sets none.
pub const DEFAULT_API_KEY: &str = "chatstorm_key";

/// A running embedded mock; dropping it stops it.
pub struct EmbeddedMock {
    /// How to reach it.
    pub target: Target,
    /// Where it runs, for the report header.
    pub description: String,
    shutdown: CancellationToken,
    child: Option<tokio::process::Child>,
}

/// Why the embedded mock could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MockStartError {
    /// Binding, spawning or reading the child failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The mock's address made no usable target (never expected: it is `http://127.0.0.1:P`).
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    /// The child process's stdout was not piped.
    #[error("mock child has no stdout")]
    NoStdout,
    /// The child process did not print its address in time.
    #[error("the mock child process did not report its address within 10 s")]
    NoAddress,
}

impl EmbeddedMock {
    /// Starts the mock for `users` simulated users (`fd_limit`: this process's descriptor limit).
    ///
    /// # Errors
    /// When the listener cannot be bound or the child process does not start.
    pub async fn start(opts: &MockOptions, seed: u64, users: u64, fd_limit: u64) -> Result<Self, MockStartError> {
        let api_key = opts.api_key.clone().unwrap_or_else(|| DEFAULT_API_KEY.to_owned());
        // A per-run secret derived from the seed: reproducible, and never a well-known constant.
        let secret = opts
            .secret
            .clone()
            .unwrap_or_else(|| format!("chatstorm-{:016x}", crate::seed::mix(seed)));
        // The fault API's own secret: random for every run (a seed is often 42 and public), and
        // never the token-signing key above.
        let fault_secret = chatstorm_mock::random_secret();
        let config = MockConfig {
            api_key: api_key.clone(),
            secret: secret.clone(),
            fault_secret: fault_secret.clone(),
            health_interval: opts.health_interval,
            longpoll_hold: opts.longpoll_hold,
            expiry: match opts.token_expiry {
                crate::scenario::TokenExpiry::Keep => chatstorm_mock::ExpiryPolicy::Keep,
                crate::scenario::TokenExpiry::Kick => chatstorm_mock::ExpiryPolicy::Kick,
            },
            ..MockConfig::default()
        };
        let shutdown = CancellationToken::new();
        let in_process = users * 2 + crate::sys::RESERVED_FDS <= fd_limit;
        let (addr, child) = if in_process {
            let listener = chatstorm_mock::listen::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
            let addr = listener.local_addr()?;
            let token = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = chatstorm_mock::serve(listener, config, token).await {
                    eprintln!("chatstorm: embedded mock stopped: {e}");
                }
            });
            (addr, None)
        } else {
            spawn_child(&config).await?
        };
        let http_base =
            url::Url::from_str(&format!("http://{addr}")).map_err(|reason| crate::target::TargetError::BadUrl {
                what: "mock url",
                value: addr.to_string(),
                reason,
            })?;
        let target = Target::mock(http_base, api_key, &secret, fault_secret)?;
        let description = format!(
            "embedded mock ({}, http://{addr})",
            if in_process { "in-process" } else { "child process" }
        );
        Ok(Self {
            target,
            description,
            shutdown,
            child,
        })
    }
}

impl Drop for EmbeddedMock {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// Starts `chatstorm mock` as a child on a free port and reads its address from its first line.
/// Both secrets go through the child's environment, never its command line (which any local
/// user can read in `ps`).
async fn spawn_child(
    config: &MockConfig,
) -> Result<(std::net::SocketAddr, Option<tokio::process::Child>), MockStartError> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .arg("mock")
        .args(["--listen", "127.0.0.1:0", "--api-key", &config.api_key])
        .env("CHATSTORM_SECRET", &config.secret)
        .env("CHATSTORM_FAULT_SECRET", &config.fault_secret)
        .arg("--health-interval")
        .arg(humantime::format_duration(config.health_interval).to_string())
        .arg("--longpoll-hold")
        .arg(humantime::format_duration(config.longpoll_hold).to_string())
        // The users take the other half of the cores (`super::lanes::LanePlan::Auto`).
        .arg("--threads")
        .arg(super::lanes::half_the_cores().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .tied_to_parent()
        .spawn()?;
    let stdout = child.stdout.take().ok_or(MockStartError::NoStdout)?;
    let mut lines = BufReader::new(stdout).lines();
    let deadline = tokio::time::Duration::from_secs(10);
    while let Ok(Ok(Some(line))) = tokio::time::timeout(deadline, lines.next_line()).await {
        if let Some(addr) = line
            .split_whitespace()
            .find_map(|w| w.trim_start_matches("http://").parse().ok())
        {
            // Keep draining its stdout so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((addr, Some(child)));
        }
    }
    Err(MockStartError::NoAddress)
}
