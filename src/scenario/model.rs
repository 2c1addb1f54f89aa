//! The validated scenario: the one model the engine sees. No YAML type reaches it; every
//! duration is a [`Duration`], every choice an enum, every default filled in.

use super::threshold::Threshold;
use std::time::Duration;

/// A validated scenario, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name, used in report folders and headers.
    pub name: String,
    /// Free text shown in reports.
    pub description: Option<String>,
    /// Decides every random choice of the run (default 1).
    pub seed: u64,
    /// Where the users connect.
    pub target: TargetSpec,
    /// The simulated population.
    pub users: Users,
    /// The channels users watch and write to.
    pub channels: Channels,
    /// How many users are live when.
    pub load: LoadPlan,
    /// What a live user does.
    pub behaviour: Behaviour,
    /// Faults and actions at fixed offsets from the start, sorted by `at`.
    pub timeline: Vec<TimelineEvent>,
    /// Pass/fail conditions, in the order written.
    pub thresholds: Vec<Threshold>,
    /// Which conformance rules are watched during the run.
    pub conformance: Conformance,
    /// A cap on the run's length; the run stops at `min(load.total(), duration)`.
    pub duration: Option<Duration>,
    /// The implicit checks (`checks:`), each on unless the scenario turns it off.
    pub checks: Checks,
}

/// The implicit checks every run makes so that it cannot pass by accident (scenarios/README.md
/// "checks"): each on unless turned off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checks {
    /// Share of the users due to connect that must have connected at least once, in `(0, 1]`;
    /// `None` when turned off.
    pub users_connected: Option<f64>,
    /// Users dropped by a fault came back within their SDK's back-off bounds.
    pub recovered: bool,
    /// The target answered the in-run probe throughout.
    pub target_reachable: bool,
    /// The channels and memberships created at setup were still there at the end.
    pub state_kept: bool,
    /// Shards of a fleet (`fleet coordinate`) that may be lost or never start before the run is
    /// invalid (default 0).
    pub shards_lost: u32,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            users_connected: Some(1.0),
            recovered: true,
            target_reachable: true,
            state_kept: true,
            shards_lost: 0,
        }
    }
}

impl Scenario {
    /// How long the run lasts: the load plan, cut by the `duration` cap if any.
    pub fn run_length(&self) -> Duration {
        match self.duration {
            Some(cap) => cap.min(self.load.total()),
            None => self.load.total(),
        }
    }
}

/// The server under test as the scenario describes it (the runner turns it into a
/// `crate::target::Target` once the embedded mock, if any, is listening).
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    /// The mock server started in-process on a free loopback port (`target: {}`).
    Embedded(MockOptions),
    /// A running server reached at `url`.
    Remote(RemoteTarget),
}

impl TargetSpec {
    /// True when the mock's fault-control API is available (server-side faults allowed).
    pub fn is_embedded(&self) -> bool {
        matches!(self, TargetSpec::Embedded(_))
    }
}

/// Settings of the embedded mock server.
#[derive(Debug, Clone, PartialEq)]
pub struct MockOptions {
    /// App key; `None` lets the runner pick one.
    pub api_key: Option<String>,
    /// App secret; `None` lets the runner generate one.
    pub secret: Option<String>,
    /// How often the mock pushes `health.check` (default 25 s: under Unity's 30 s dead rule).
    pub health_interval: Duration,
    /// How long the mock holds an idle long-poll (default 20 s).
    pub longpoll_hold: Duration,
    /// What the mock does when a token expires under an open socket (default keep).
    pub token_expiry: TokenExpiry,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            api_key: None,
            secret: None,
            health_interval: Duration::from_secs(25),
            longpoll_hold: Duration::from_secs(20),
            token_expiry: TokenExpiry::Keep,
        }
    }
}

/// The mock's reaction to a token reaching `exp` while its socket is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenExpiry {
    /// Keep the socket (what the real service appears to do).
    Keep,
    /// Send a code 40 `connection.error` and close with 1000.
    Kick,
}

/// A real server.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteTarget {
    /// Base URL (`http(s)://` or `ws(s)://`), without a trailing slash.
    pub url: String,
    /// The app's API key.
    pub api_key: String,
}

/// The simulated population.
#[derive(Debug, Clone, PartialEq)]
pub struct Users {
    /// How many distinct users exist (the ceiling for every stage).
    pub count: u64,
    /// How user ids are made from an index.
    pub id: IdPattern,
    /// Which SDK each user behaves like.
    pub profile: ProfileMix,
    /// How users get their tokens.
    pub token: TokenSpec,
    /// Privacy settings sent in `user_details` at connect.
    pub privacy: Privacy,
    /// `enableWSFallback`: long-poll when the WebSocket cannot be had (JS profile only).
    pub fallback: bool,
    /// Bytes of custom data in each user object (exercises the 5 KB limit).
    pub custom_bytes: u64,
    /// Unity users' reconnect strategy (`users.unity`); the SDK default when absent.
    pub unity: UnityReconnect,
    /// `users.backoff`: a fixed wait between reconnect attempts instead of each SDK's formula
    /// (`None`, the default `sdk`). For comparing a storm's recovery against the real formula.
    pub backoff: Option<Duration>,
    /// What kind of client each user is (`users.kind`, default [`UserKind::Stream`]).
    pub kind: UserKind,
    /// `users.tls.resumption`: the share of users (0 to 1) that resume their TLS sessions over
    /// `wss://` (0, the default: every handshake is full).
    pub tls_resumption: f64,
}

/// What kind of client the users are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserKind {
    /// Users that live the Stream connection lifecycle of their SDK profile (tokens, health
    /// checks, reconnects, channels).
    #[default]
    Stream,
    /// Bare WebSocket clients (`users.kind: plain-websocket`): open the target URL as given, wait
    /// for the server's first frame, answer pings, hold until the run ends, close with 1000. No
    /// Stream protocol, no tokens, no channels: the peers' standard workload.
    PlainWebsocket,
}

/// Unity's reconnect strategy and constant interval (PROTOCOL.md U.4).
pub use chatstorm_protocol::backoff::{UnityReconnect, UnityStrategy};

/// A user id with `{index}` in it, e.g. `user-{index}`; indexes run from 0 to `count - 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern {
    /// Text before `{index}`.
    pub prefix: String,
    /// Text after `{index}`.
    pub suffix: String,
}

impl IdPattern {
    /// The id of user number `index`.
    pub fn id(&self, index: u64) -> String {
        format!("{}{index}{}", self.prefix, self.suffix)
    }
}

/// Which SDK a user behaves like: the protocol crate's profile, so there is one list of SDKs.
pub use chatstorm_protocol::Profile;

/// Profiles with positive integer weights; a single profile is a mix of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileMix {
    /// `(profile, weight)`, each profile at most once, weights > 0, in the order written.
    pub weights: Vec<(Profile, u32)>,
}

impl ProfileMix {
    /// A mix of one profile.
    pub fn single(profile: Profile) -> Self {
        ProfileMix {
            weights: vec![(profile, 1)],
        }
    }

    /// The profile of the user whose draw in `[0, total_weight)` is `ticket`: a deterministic
    /// map from a seeded number to a profile, so the mix is exact in proportion.
    pub fn pick(&self, ticket: u64) -> Profile {
        let total = self.total_weight();
        let mut ticket = if total == 0 { 0 } else { ticket % total };
        for (profile, weight) in &self.weights {
            let weight = u64::from(*weight);
            if ticket < weight {
                return *profile;
            }
            ticket -= weight;
        }
        self.weights.first().map(|(p, _)| *p).unwrap_or(Profile::Js)
    }

    /// The sum of the weights.
    pub fn total_weight(&self) -> u64 {
        self.weights.iter().map(|(_, w)| u64::from(*w)).sum()
    }
}

/// How users get tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    /// Token lifetime (`exp - now`); `None` mints tokens without `exp`.
    pub ttl: Option<Duration>,
    /// Whether a user can get a new token when one expires.
    pub mode: TokenMode,
    /// Where tokens come from.
    pub source: TokenSource,
}

/// Token provider behaviour, as the SDKs have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// A token provider: refreshed on code 40 (and on the profile's other refresh codes).
    Provider,
    /// One static token: a code 40 is fatal for that user.
    Static,
}

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// Minted locally with the app secret (the embedded mock's, or `target.secret`).
    Secret(String),
    /// Minted locally with the secret the embedded mock will be started with.
    EmbeddedSecret,
    /// Fetched from an HTTP endpoint with the user id.
    Endpoint(String),
}

/// Privacy settings of a user (PROTOCOL.md §6.3); absent keys default to enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privacy {
    /// `typing_indicators.enabled`.
    pub typing_indicators: bool,
    /// `read_receipts.enabled`.
    pub read_receipts: bool,
    /// `delivery_receipts.enabled`.
    pub delivery_receipts: bool,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            typing_indicators: true,
            read_receipts: true,
            delivery_receipts: true,
        }
    }
}

/// The channels of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    /// How many channels.
    pub count: u64,
    /// Members per channel (at most `users.count`).
    pub members: u64,
    /// Channel type, e.g. `messaging`.
    pub kind: String,
}

/// The load plan: stages back to back, each with its start offset (goose's `TestPlan`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    /// In order; `stages[i].start` is the sum of the earlier stages' lengths.
    pub stages: Vec<Stage>,
}

impl LoadPlan {
    /// The plan's length.
    pub fn total(&self) -> Duration {
        self.stages.last().map(|s| s.start + s.length).unwrap_or_default()
    }

    /// The most users the plan ever asks to be live at once.
    pub fn peak_users(&self) -> u64 {
        self.stages
            .iter()
            .map(|s| s.users_before.max(s.users_after))
            .max()
            .unwrap_or(0)
    }
}

/// One stage of the load plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Offset from the start of the run.
    pub start: Duration,
    /// How long the stage lasts.
    pub length: Duration,
    /// Users meant to be live when the stage starts.
    pub users_before: u64,
    /// Users meant to be live when it ends (for an arrival stage with a `session`: users
    /// started, some of whom have left).
    pub users_after: u64,
    /// What the stage does.
    pub kind: StageKind,
}

/// The load stage kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum StageKind {
    /// Closed model: move linearly from `users_before` to `users_after` over `length`.
    Ramp,
    /// Keep the current users for `length`.
    Hold,
    /// Open model: start new users at `per_second`, at their scheduled times whether or not
    /// earlier ones are done, for `length`; `users_after - users_before` of them in all (with
    /// a `session`, some have left again by the end: the difference counts users started).
    Arrival {
        /// New users per second.
        per_second: f64,
        /// Each arrival leaves after this long; `None`: it stays to the end of the run.
        session: Option<Duration>,
    },
}

/// What a live user does, each on average every `every`, at seeded random times.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Behaviour {
    /// Send typing start/stop.
    pub typing: Option<Every>,
    /// Mark a channel read.
    pub read: Option<Every>,
    /// Send a message.
    pub message: Option<MessageBehaviour>,
    /// Go to the background (mobile app pause: close the socket) and come back.
    pub background: Option<Background>,
}

/// A periodic behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    /// Mean interval.
    pub every: Duration,
}

/// Messages sent while live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageBehaviour {
    /// Mean interval.
    pub every: Duration,
    /// Message text size in bytes (default 64).
    pub bytes: u64,
}

/// Mobile users that go to the background and come back, each at its own seeded times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Background {
    /// Share of the mobile users (every profile but `js`) that do it, in [0, 1]; which ones is
    /// seeded.
    pub fraction: f64,
    /// Mean interval between pauses.
    pub every: Duration,
    /// How long each pause lasts.
    pub length: Duration,
}

/// A fault or action at a fixed offset.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    /// Offset from the start of the run.
    pub at: Duration,
    /// What happens.
    pub action: Action,
}

/// Who carries out a fault: the user itself, or the embedded mock through fault control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The simulated user does it to itself (works against any target).
    Client,
    /// The embedded mock does it (needs its fault-control API).
    Server,
}

/// How a socket is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// A close frame with this code.
    Code(u16),
    /// The TCP connection is cut without a close frame.
    Abrupt,
}

/// The timeline actions. Adding one: a field in `raw::RawEvent`, a variant here, its check in
/// `validate_timeline.rs` (including whether a real target can have it), a line in
/// `scenarios/README.md`, and the engine's handler.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Drop the sockets of a fraction of the live users.
    DropSockets {
        /// Share of live users, in [0, 1].
        fraction: f64,
        /// Who drops.
        side: Side,
        /// With a close code, or abruptly.
        close: Close,
    },
    /// Make a fraction of users' tokens expired.
    ExpireTokens {
        /// Share of users, in [0, 1].
        fraction: f64,
        /// `Client`: users switch to already-expired tokens; `Server`: the mock treats their
        /// tokens as expired.
        side: Side,
    },
    /// The mock refuses every WebSocket upgrade (forces the long-poll fallback).
    BlockWebsocket {
        /// How long; `None` until the end of the run.
        length: Option<Duration>,
    },
    /// A fraction of users refuse their own WebSocket (the client-side form of the above).
    RefuseWebsocket {
        /// Share of users, in [0, 1].
        fraction: f64,
        /// How long; `None` until the end of the run.
        length: Option<Duration>,
    },
    /// The mock stops reading and writing a fraction of sockets without closing them.
    HalfOpen {
        /// Share of live sockets, in [0, 1].
        fraction: f64,
        /// How long; `None` until the end of the run.
        length: Option<Duration>,
    },
    /// The mock delays everything it sends to a fraction of connections.
    AddLatency {
        /// Added delay.
        delay: Duration,
        /// Share of connections, in [0, 1].
        fraction: f64,
        /// How long; `None` until the end of the run.
        length: Option<Duration>,
    },
    /// A fraction of users change their privacy settings (through `PATCH /users`).
    SetPrivacy {
        /// Share of users, in [0, 1].
        fraction: f64,
        /// New `typing_indicators`, if changed.
        typing_indicators: Option<bool>,
        /// New `read_receipts`, if changed.
        read_receipts: Option<bool>,
        /// New `delivery_receipts`, if changed.
        delivery_receipts: Option<bool>,
    },
    /// A background/foreground wave (the morning commute): a share of the mobile users (every
    /// profile but `js`) send their app to the background at once, closing the socket with 1000
    /// and keeping the user, and bring it back after `length`, reconnecting by their profile's
    /// rules. Measured as a wave with its own recovery curve.
    Background {
        /// Share of the mobile users, in [0, 1].
        fraction: f64,
        /// How long the apps stay in the background.
        length: Duration,
    },
}

impl Action {
    /// The key that names the action in a scenario.
    pub fn name(&self) -> &'static str {
        match self {
            Action::DropSockets { .. } => "drop_sockets",
            Action::ExpireTokens { .. } => "expire_tokens",
            Action::BlockWebsocket { .. } => "block_websocket",
            Action::RefuseWebsocket { .. } => "refuse_websocket",
            Action::HalfOpen { .. } => "half_open",
            Action::AddLatency { .. } => "add_latency",
            Action::SetPrivacy { .. } => "set_privacy",
            Action::Background { .. } => "background",
        }
    }

    /// True when the action needs the embedded mock's fault control.
    pub fn needs_mock(&self) -> bool {
        match self {
            Action::DropSockets { side, .. } | Action::ExpireTokens { side, .. } => *side == Side::Server,
            Action::BlockWebsocket { .. } | Action::HalfOpen { .. } | Action::AddLatency { .. } => true,
            Action::RefuseWebsocket { .. } | Action::SetPrivacy { .. } | Action::Background { .. } => false,
        }
    }
}

/// Conformance rules watched during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conformance {
    /// Rule-id globs (`*`, `?`), e.g. `CONN-*`; default `["*"]`.
    pub watch: Vec<String>,
    /// Grade UNCONFIRMED rules as failures too.
    pub strict: bool,
}

impl Default for Conformance {
    fn default() -> Self {
        Conformance {
            watch: vec!["*".to_owned()],
            strict: false,
        }
    }
}
