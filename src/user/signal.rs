//! The vocabulary between the user's state machine and its driver: states, transports, stop
//! reasons, the inputs the driver feeds, the commands and measurements the machine emits, and the
//! machine's fixed configuration.

use super::profile::ProfileParams;
pub use crate::metrics::FailureKind;
use std::time::Duration;
use tokio::time::Instant;

/// Where a user is in its connection lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not connected and not trying (before the start, or backgrounded).
    Disconnected,
    /// One connect attempt in flight.
    Connecting,
    /// Connected over WebSocket: the first `health.check` arrived.
    Live,
    /// Waiting out the back-off before the next attempt.
    Backoff,
    /// Connected over long-poll.
    LongPoll,
    /// Done for good.
    Stopped,
}

/// The transport of a connect attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `/connect` WebSocket.
    Ws,
    /// `/longpoll`.
    LongPoll,
}

/// Why a user stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The engine or the timeline asked it to stop.
    Requested,
    /// A refresh code arrived while the user holds a static token.
    StaticTokenExpired,
    /// An API error the SDK does not retry (the code).
    ApiError(i32),
    /// The server closed with 1000 (after an error frame or not), final for JS and Swift.
    ServerClosedNormally,
    /// The SDK's reconnect limit was reached (Flutter: 6).
    GaveUp,
}

/// A failed connect attempt, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No API error: refused, reset, a timeout, an upgrade answered with another status, a first
    /// frame that is not the protocol's, ... (the cause, counted by kind in every output).
    Network(FailureKind),
    /// An error frame (WebSocket, with the close code that followed, if any) or an HTTP error body
    /// (long-poll connect).
    Api {
        /// The error code.
        code: i32,
        /// The WebSocket close code after the error frame.
        close: Option<u16>,
    },
    /// The token provider failed (endpoint down or too slow).
    Token,
}

/// A timeline action addressed to this user (already selected by its fraction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Drop the own socket: abruptly (no close frame) or with a close `code`.
    DropSocket {
        /// No close frame.
        abrupt: bool,
        /// The close code when not abrupt.
        code: u16,
    },
    /// Refuse the own WebSocket upgrades for a while (drops a live socket too).
    RefuseWebsocket(Duration),
    /// The token just became expired: reconnect with it so the server answers code 40.
    ExpireToken,
    /// Close the connection (1000) and come back after the duration, as app backgrounding does.
    Background(Duration),
    /// Close (1000) and stop.
    Stop,
}

/// Something the user does while connected, at seeded random times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// `typing.start` on a watched channel.
    Typing,
    /// Mark a watched channel read.
    Read,
    /// Send a message to a watched channel.
    Message,
}

/// Inputs to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Start connecting (the SDK's `connect()`).
    Start,
    /// The attempt reached its first `health.check` (WebSocket or long-poll connect).
    Connected,
    /// The attempt failed.
    ConnectFailed(Failure),
    /// A frame arrived on the live WebSocket; `health` when it was a `health.check`.
    Frame {
        /// It was a `health.check`.
        health: bool,
    },
    /// An error frame arrived on the live WebSocket (the close usually follows as [`Input::Closed`]).
    ErrorFrame(i32),
    /// The live WebSocket closed: the server's close code, or `None` for a reset or read error.
    Closed(Option<u16>),
    /// A long-poll poll returned.
    PollOk,
    /// A long-poll poll failed: the API error code, or `None` for network errors and timeouts.
    PollFailed(Option<i32>),
    /// A poll was answered with code 40 at this time and the token provider gave a new token
    /// (JS's HTTP client then polls again with it); the poll's own outcome follows.
    PollTokenRefreshed(Instant),
    /// The user's own typing-indicator setting changed (JS checks it before sending typing).
    OwnTypingEnabled(bool),
    /// A REST call was answered with code 40 and the profile reconnects for it (Unity).
    RestTokenExpired,
    /// A timeline action.
    Action(Act),
}

/// What the machine measured; the driver records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Attempt start to the first `health.check`, per transport.
    Connect(Transport, Duration),
    /// Drop detected to live again.
    Reconnect(Duration),
    /// Refresh code received to live again with a new token.
    TokenRefresh(Duration),
    /// A connect attempt failed (the cause when it was not an API error or the token provider).
    ConnectFailure(Option<FailureKind>),
    /// A live connection was lost.
    Disconnect,
    /// A reconnect attempt started.
    ReconnectAttempt,
    /// The user switched to long-poll for good.
    Fallback,
}

/// Commands for the driver, in the order they must be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start a connect attempt; `fetch_token` asks for a fresh token first; `reconnect` selects
    /// the SDK's reconnect payload.
    Connect {
        /// The transport.
        transport: Transport,
        /// Get a new token from the provider before connecting.
        fetch_token: bool,
        /// A reconnect (reduced `user_details` for Android and Flutter).
        reconnect: bool,
    },
    /// Drop the in-flight attempt or the live socket without a close frame.
    Abort,
    /// Close the live transport: a close frame with this code (WebSocket), `close=true` (long-poll).
    Close(u16),
    /// Send the profile's client health check (a ping frame for Swift).
    SendHealth,
    /// Issue one long-poll poll.
    Poll,
    /// Watch the user's channels (first connect).
    Watch,
    /// Recover state after a reconnect, per the profile.
    Recover,
    /// Do a behaviour now.
    Behave(Behaviour),
    /// Record a measurement.
    Measure(Measure),
    /// The machine stopped; the driver ends the task.
    Stopped(StopReason),
}

/// What is fixed about one user's machine.
#[derive(Debug, Clone, Copy)]
pub struct MachineConfig {
    /// The SDK parameter row.
    pub params: &'static ProfileParams,
    /// Token mode: `true` when a provider can mint or fetch new tokens.
    pub provider: bool,
    /// Long-poll fallback enabled (JS `enableWSFallback`).
    pub fallback: bool,
    /// Mean periods of the behaviours (`None`: never).
    pub typing_every: Option<Duration>,
    /// Mean period of marking read.
    pub read_every: Option<Duration>,
    /// Mean period of sending a message.
    pub message_every: Option<Duration>,
    /// Seed of the user's generator.
    pub seed: u64,
    /// The Unity reconnect strategy (used by the Unity profile only).
    pub unity: chatstorm_protocol::backoff::UnityReconnect,
    /// A fixed wait before every reconnect attempt instead of the profile's formula.
    pub fixed_backoff: Option<std::time::Duration>,
}

impl MachineConfig {
    /// A quiet user of `profile` (no behaviours, SDK defaults) with the given token mode,
    /// fallback and seed: the starting point of tests and benchmarks.
    pub fn quiet(profile: chatstorm_protocol::Profile, provider: bool, fallback: bool, seed: u64) -> Self {
        Self {
            params: super::profile::params(profile),
            provider,
            fallback,
            typing_every: None,
            read_every: None,
            message_every: None,
            seed,
            unity: Default::default(),
            fixed_backoff: None,
        }
    }
}
