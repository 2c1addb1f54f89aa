//! chatstorm-mock: a Stream-Chat-compatible chat server with a fault-control API, for chatstorm's
//! load and conformance runs and for SDK tests. It follows PROTOCOL.md and its "Decisions for the
//! mock server" table.
//!
//! # Layout
//! - `config`: [`MockConfig`], every knob with its production default. `cli`: the command line,
//!   shared by the `chatstorm-mock` binary and `chatstorm mock`.
//! - `http`: accept loop, connection timeouts, routing, rate-limit headers; the only module that
//!   imports the handlers. `exchange`: what the handlers share (the parsed request, bounded body
//!   reads, JSON and error answers).
//! - `ws`: `/connect`, one task per socket. `longpoll`: `/longpoll`.
//! - `rest/`: users, channels, events (typing, read, message), sync; for a chat backend's server
//!   SDK also `channel_admin` (update, members, delete, get message), `user_admin` (query users,
//!   deactivate, reactivate, delete, tasks) and `app_info` (app settings, rate limits).
//! - `app`: shared state and the connection lifecycle (register, watch, deliver, unregister).
//! - `world`: users, channels, the connection registry. `conn`: one connection and its outbox.
//! - `auth`: api key, tokens, connect checks. `proto`: the seam to `chatstorm-protocol`.
//! - `fault`: fault state and named violations. `control`: the Rust and HTTP fault-control API.
//! - `ratelimit`, `stats`, `wire` (JSON shapes and timestamps), `journal` (opt-in record of what
//!   clients sent, for timing and ordering tests).
//!
//! # Use
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let handle = chatstorm_mock::start(chatstorm_mock::MockConfig::default()).await?;
//! println!("listening on {}", handle.addr);
//! handle.control.set_violation(chatstorm_mock::Violation::OmitMe, true);
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

mod app;
mod auth;
mod config;
mod conn;
mod control;
mod exchange;
mod fault;
mod http;
mod journal;
pub mod listen;
mod longpoll;
mod proto;
mod ratelimit;
mod rest;
mod stats;
pub mod tls;
mod wire;
mod world;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod cli;
pub use config::{ExpiryPolicy, MockConfig, random_secret};
pub use control::{
    Control, DropMode, DropRequest, ExpireRequest, FaultState, SECRET_HEADER, TransportFilter, secret_matches,
};
pub use fault::{HalfOpen, RefuseMode, Violation};
pub use journal::{ClientAct, JournalEntry};
pub use stats::StatsSnapshot;
pub use tls::{MockTls, SelfSigned};

/// Serves on `listener` until `shutdown` is cancelled; open sockets then get close 1001.
pub async fn serve(listener: TcpListener, config: MockConfig, shutdown: CancellationToken) -> std::io::Result<()> {
    serve_split(listener, None, config, shutdown).await
}

/// As [`serve`], with the fault-control API on its own listener when `fault` is given (the
/// client listener then answers `/_fault` with 404).
pub async fn serve_split(
    listener: TcpListener,
    fault: Option<TcpListener>,
    mut config: MockConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if fault.is_some() {
        config.fault_on_client_listener = false;
    }
    let app = Arc::new(app::App::new(config, shutdown));
    let fault_loop = fault.map(|f| tokio::spawn(http::accept_loop(f, app.clone(), http::Listener::Fault)));
    let r = http::accept_loop(listener, app, http::Listener::Client).await;
    if let Some(f) = fault_loop {
        let _ = f.await;
    }
    r
}

/// A server running in this process, started by [`start`] or [`start_on`].
#[derive(Debug)]
pub struct MockHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancel to stop it (or call [`MockHandle::shutdown`]).
    pub cancel: CancellationToken,
    /// Fault control and stats, in process.
    pub control: Control,
    task: JoinHandle<std::io::Result<()>>,
    tls: bool,
}

impl MockHandle {
    /// `http://<addr>` (`https://` when it serves TLS), the REST base URL.
    pub fn base_url(&self) -> String {
        let s = if self.tls { "https" } else { "http" };
        format!("{s}://{}", self.addr)
    }

    /// `ws://<addr>` (`wss://` when it serves TLS), the WebSocket base URL.
    pub fn ws_url(&self) -> String {
        let s = if self.tls { "wss" } else { "ws" };
        format!("{s}://{}", self.addr)
    }

    /// Stops the server and waits for its accept loop to end.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Binds 127.0.0.1:0 and serves in a spawned task.
pub async fn start(config: MockConfig) -> std::io::Result<MockHandle> {
    start_on(listen::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?, config)
}

/// Serves an already bound listener in a spawned task.
pub fn start_on(listener: TcpListener, config: MockConfig) -> std::io::Result<MockHandle> {
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let tls = config.tls.is_some();
    let app = Arc::new(app::App::new(config, cancel.clone()));
    let control = Control::new(app.clone());
    let task = tokio::spawn(http::accept_loop(listener, app, http::Listener::Client));
    Ok(MockHandle {
        addr,
        cancel,
        control,
        task,
        tls,
    })
}
