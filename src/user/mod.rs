//! The simulated user: one small async task per user that lives the connection lifecycle an
//! official SDK lives (connect, health checks, token refresh, drops, back-off, long-poll fallback,
//! privacy toggles, typing, read, messages) and measures every step.
//!
//! Layout: [`machine`] is the sans-IO state machine (all decisions) and [`signal`] its inputs and
//! outputs, [`profile`] the per-SDK
//! parameter table, [`driver`] the task that carries out the machine's commands, [`transport`]
//! the WebSocket and long-poll steps, [`plain`] the plain WebSocket user (no Stream protocol), [`rest`] the REST calls, [`auth`] the token modes,
//! [`delivery`] the shared delivery accounting, [`http`] the two HTTP lanes over
//! [`crate::net::Client`], and [`record`]
//! the single seam to `crate::metrics`.

pub mod auth;
pub mod delivery;
pub mod driver;
pub mod http;
pub mod machine;
pub mod metered;
pub mod plain;
pub mod profile;
pub mod record;
pub mod rest;
pub mod signal;
pub mod transport;
pub mod upgrade;

pub use crate::net::SourceAddrs;
pub use auth::{TokenMode, TokenSpec};
pub use delivery::{Delivered, DeliveryTracker, Leak};
pub use http::HttpClient;
pub use machine::{State, StopReason, Transport};

use crate::target::Target;
pub use chatstorm_protocol::backoff::{UnityReconnect, UnityStrategy};
use chatstorm_protocol::event::ServerEvent;
use chatstorm_protocol::{PrivacySettings, Profile};
use record::{Recorder, RestEndpoint};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Mean periods of what a live user does (`None`: never). Times are drawn from the user's seed
/// (exponential inter-arrival times around the mean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// `typing.start` on a watched channel.
    pub typing: Option<Duration>,
    /// Mark a watched channel read.
    pub read: Option<Duration>,
    /// Send a message to a watched channel.
    pub message: Option<Duration>,
}

/// Everything fixed about one simulated user, derived by the engine from the scenario and seed.
#[derive(Debug, Clone)]
pub struct UserSpec {
    /// Position of the user in the run (indexes the shared tables).
    pub index: u32,
    /// User id (`a-z 0-9 @ _ -`, checked by the engine).
    pub id: String,
    /// SDK profile.
    pub profile: Profile,
    /// Token mode and lifetime.
    pub token: TokenSpec,
    /// Privacy settings sent in `user_details` at connect.
    pub privacy: PrivacySettings,
    /// Long-poll fallback enabled (used by the JS profile only).
    pub fallback: bool,
    /// Size of a custom string field in the user object (exercises the 5 KB rule).
    pub custom_bytes: usize,
    /// Channel cids to watch (`"messaging:ch-3"`); the first 30 are recovered by JS.
    pub channels: Vec<String>,
    /// What the user does while live.
    pub behaviour: Behaviour,
    /// Per-user seed (a function of the run seed and the index).
    pub seed: u64,
    /// When the engine scheduled the user's start (open model); the first connect is then also
    /// measured from this time (coordinated-omission corrected view).
    pub intended_start: Option<Instant>,
    /// Unity's reconnect strategy (`users.unity` in the scenario; Unity users only).
    pub unity: UnityReconnect,
    /// A fixed wait between reconnect attempts instead of the profile's formula (`users.backoff`).
    pub fixed_backoff: Option<std::time::Duration>,
}

/// Hooks for whoever watches users (the conformance checker); every method defaults to nothing.
pub trait UserObserver: Send + Sync {
    /// A connection became live with this connection id.
    fn on_connected(&self, _user: u32, _transport: Transport, _connection_id: &str) {}
    /// An event arrived (WebSocket frame or long-poll batch entry).
    fn on_event(&self, _user: u32, _event: &ServerEvent) {}
    /// A typing or read event arrived from a sender whose privacy switch was off.
    fn on_leak(&self, _leak: Leak) {}
    /// A stamped typing, read or message event reached a watching receiver (first time or again).
    fn on_receipt(&self, _delivered: Delivered) {}
    /// A REST call ended: the HTTP status and error code (`None` status: no answer).
    fn on_rest(&self, _user: u32, _endpoint: RestEndpoint, _status: Option<u16>, _code: Option<i32>) {}
    /// A WebSocket connect failed with this API error code and close code.
    fn on_connect_error(&self, _user: u32, _code: i32, _close: Option<u16>) {}
}

/// Shared by all users of one process (one `Arc`).
pub struct UserCtx {
    /// The server.
    pub target: Target,
    /// Measurements.
    pub recorder: Recorder,
    /// Shared HTTP client (bounded pool).
    pub http: HttpClient,
    /// Source addresses for WebSocket sockets.
    pub source_addrs: SourceAddrs,
    /// Delivery accounting.
    pub deliveries: DeliveryTracker,
    /// Conformance hook.
    pub observer: Option<Arc<dyn UserObserver>>,
    /// Run start: stamps carry µs since this instant.
    pub run_start: Instant,
    /// Cancelled when the run as a whole is over (its time is up, an abort, a signal). A user
    /// whose own token fires while this one has not is leaving by the scenario's plan (a ramp
    /// down, a session's end) and closes as its SDK does; at the run's end it only lets go of
    /// its socket (`transport::abandon_ws`).
    pub run_over: tokio_util::sync::CancellationToken,
}

/// A timeline action for a fraction of the users (broadcast to all; each user decides with
/// [`selected`] whether it is in the fraction, so no per-user channel exists).
#[derive(Debug, Clone, PartialEq)]
pub enum UserAction {
    /// Drop the own socket, abruptly or with a close `code`; the user then reconnects.
    DropSocket {
        /// Share of users.
        fraction: f64,
        /// No close frame.
        abrupt: bool,
        /// Close code when not abrupt.
        code: u16,
    },
    /// Refuse the own WebSocket for a while (JS users connecting then fall back if enabled).
    RefuseWebsocket {
        /// Share of users.
        fraction: f64,
        /// How long.
        for_: Duration,
    },
    /// Replace the own token by an expired one and reconnect with it (needs the app secret).
    ExpireToken {
        /// Share of users.
        fraction: f64,
    },
    /// Toggle privacy switches through `PATCH /users`.
    SetPrivacy {
        /// Share of users.
        fraction: f64,
        /// Typing indicators.
        typing: Option<bool>,
        /// Read receipts.
        read: Option<bool>,
    },
    /// Close the connection and reconnect after a while (app backgrounding).
    Background {
        /// Share of users.
        fraction: f64,
        /// How long.
        for_: Duration,
    },
    /// Every user stops.
    Stop,
}

/// Whether the user with `user_seed` is in the `fraction` selected by action number `seq`: a
/// seeded hash, so the engine can compute the same selection (e.g. to size a storm).
pub fn selected(user_seed: u64, seq: u64, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    if fraction.is_nan() || fraction <= 0.0 {
        return false;
    }
    selected_unit(user_seed, seq) < fraction
}

/// A seeded number in `[0, 1)` for the user with `user_seed` and a sequence number `seq`
/// (timeline selections, back-off draws outside the state machine).
pub fn selected_unit(user_seed: u64, seq: u64) -> f64 {
    let mut z = user_seed ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// What one user did, returned when its task ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReport {
    /// The user reached live at least once.
    pub connected_ever: bool,
    /// Its state at the end.
    pub final_state: State,
    /// Why it stopped, if it stopped on its own or was told to.
    pub stop_reason: Option<StopReason>,
    /// Connect attempts.
    pub attempts: u32,
    /// Live connections reached (first connect included).
    pub connects: u32,
    /// Reconnects completed after a drop, and the last one's duration.
    pub reconnects: u32,
    /// Drop detected to live again, for the last reconnect.
    pub last_reconnect: Option<Duration>,
    /// Tokens refreshed after a refresh code, and the last refresh's duration.
    pub token_refreshes: u32,
    /// Refresh code to live again, for the last refresh.
    pub last_token_refresh: Option<Duration>,
    /// The user fell back to long-poll.
    pub fell_back: bool,
    /// Channel watches that succeeded (first watch and recoveries).
    pub watches: u32,
    /// Events received on either transport.
    pub events_received: u64,
    /// Stamped typing, read and message sends.
    pub events_sent: u64,
    /// REST calls that failed.
    pub rest_failures: u32,
    /// Privacy toggles applied by `PATCH /users`.
    pub privacy_updates: u32,
}

/// Runs one simulated user until it stops, the action channel says [`UserAction::Stop`], or
/// `cancel` fires; then closes its connection (1000) and returns its report.
///
/// Contract for the engine:
/// - Spawn one task per user (`tokio::spawn(run_user(...))`); the future is small (see the size
///   test) and holds no per-user heap beyond its state, its socket and its in-flight call.
/// - `spec.index` must be below the user count given to `ctx.deliveries`, and `spec.channels`
///   should be cids registered there (unregistered ones are watched but not tracked).
/// - Start times: call it at the user's start; set `spec.intended_start` when a schedule exists.
/// - Actions: one `broadcast` channel for all users, messages `(seq, action)` with a unique `seq`
///   per action; fractions are resolved by [`selected`]`(spec.seed, seq, fraction)`. A lagging
///   receiver skips what it missed.
/// - Everything is measured into `ctx.recorder`; the connected-users gauge moves with each user.
///   At the end of the run call `ctx.deliveries.finish_into(&ctx.recorder)` once, after every
///   user ended, to book lost and duplicated deliveries.
/// - Channels: create them server-side with their members before the run (the mock refuses
///   `POST .../read` from non-members with code 17); users only watch them (get-or-create).
/// - Token modes: `provider` mints with `TargetAuth::Secret` or fetches from the endpoint;
///   `ExpireToken` needs the secret (`TargetAuth::Secret` or `Target::secret`), else it is ignored.
/// - Uses `tokio::time` only, so it runs under paused time (but real sockets need real time).
///
/// Not an `async fn` on purpose: the spec is moved into the user's state at once instead of
/// being kept beside it in the future for the whole run, and the driver is used in place by the
/// block below (an `async` body that rebinds a captured value keeps room for it twice).
pub fn run_user(
    spec: UserSpec,
    ctx: Arc<UserCtx>,
    mut actions: broadcast::Receiver<(u64, UserAction)>,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = UserReport> + Send {
    let mut driver = driver::Driver::new(spec, ctx);
    async move { driver.run(&mut actions, &cancel).await }
}
