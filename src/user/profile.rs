//! The per-SDK parameter table a simulated user lives by (PROTOCOL.md §11.2, §3.2, §2.7, §3.4,
//! U.8): client health-check form and cadence, the dead-connection rule, which error codes make
//! the user fetch a new token, the back-off and its retry limit, what ends reconnecting, how state
//! is recovered after a reconnect, and the client-side rules for typing.
//!
//! What the connect request carries and where the auth goes is not repeated here: it lives in
//! `chatstorm_protocol::connect` and is used as is.

use chatstorm_protocol::Profile;
use chatstorm_protocol::backoff;
use std::time::Duration;

/// The form of the health check a client sends on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHealth {
    /// JS: `[{"type":"health.check","client_id":"<user>--<uuid>"}]`.
    JsArray,
    /// Android and Flutter: `{"type":"health.check","connection_id":...}`.
    Object,
    /// Swift: a WebSocket ping control frame, answered by a `health.check` frame.
    Ping,
    /// Unity: `{"Type":"health.check"}`.
    Unity,
}

/// When the next client health check goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCadence {
    /// `every` after the last `health.check` received (JS: re-armed on each).
    AfterServerHealth,
    /// Every `every` while connected, from the connect (Android, Swift, Unity).
    Fixed,
    /// Immediately on connect, then every `every` (Flutter).
    FixedImmediate,
}

/// What counts as a dead connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadRule {
    /// No frame of any kind for `dead_after` (JS 35 s, Flutter 40 s).
    Silence,
    /// No `health.check` frame for `dead_after` (Android 30 s, Unity 30 s).
    NoHealth,
    /// No `health.check` within `dead_after` of a ping (Swift 3 s).
    PongDeadline,
}

/// Which back-off schedule the SDK uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// `retryInterval(n)` of §3.4 (JS, Android, Flutter).
    Standard,
    /// §3.4 with 0 s before the first retry (Swift's `DefaultRetryStrategy`).
    SwiftZeroFirst,
    /// Six immediate attempts, then the user's Unity strategy (exponential: 64 s; constant; never).
    Unity,
}

/// What a REST call answered with code 40 makes the SDK do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestExpired {
    /// Fetch a new token (provider mode) and send the request again once (JS and the others).
    RefreshAndResend,
    /// Close the WebSocket (1000), let the scheduler reconnect (provider called), then send the
    /// request once more on the new connection if it is back within [`UNITY_RESEND_WAIT`] (Unity).
    ReconnectAndResend,
}

/// How long a Unity request answered with code 40 waits for the reconnect before giving up
/// (`500 × Task.Delay(1)`, U.4).
pub const UNITY_RESEND_WAIT: Duration = Duration::from_millis(500);

/// How a user brings its channels back after a reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// JS: `POST /channels` with `cid $in` the watched channels, `watch:true`, limit 30.
    QueryChannels,
    /// Swift: `POST /sync` with `watch:true`, then re-watch each channel.
    SyncAndRewatch,
    /// Unity 5.x: `POST /sync` with `watch:true` only; that call re-binds the watches (U.6).
    Sync,
    /// Android/Flutter without an offline plugin (UNCONFIRMED in §11.2): watch each channel again.
    Rewatch,
}

/// Everything that differs between SDK profiles, as one static row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileParams {
    /// The profile.
    pub profile: Profile,
    /// Health-check form.
    pub health: ClientHealth,
    /// Health-check period.
    pub health_every: Duration,
    /// Health-check schedule.
    pub cadence: HealthCadence,
    /// Dead-connection rule.
    pub dead_rule: DeadRule,
    /// Dead-connection threshold (silence, missing health, or pong deadline).
    pub dead_after: Duration,
    /// The close code sent on a dead connection (Unity: 1011); `None` drops the socket.
    pub dead_close: Option<u16>,
    /// What a REST call answered with code 40 leads to.
    pub rest_expired: RestExpired,
    /// Back-off schedule.
    pub backoff: Backoff,
    /// Reconnect attempts after which the user gives up (Flutter: 6); `None` is unlimited.
    pub max_reconnects: Option<u32>,
    /// Error codes that make a provider-mode user fetch a new token.
    pub refresh_codes: &'static [i32],
    /// The provider is called before every automatic reconnect, whatever the cause (Android, Unity).
    pub refresh_every_reconnect: bool,
    /// A server close with 1000 ends reconnecting (JS, Swift).
    pub final_on_server_1000: bool,
    /// Any API error on the very first connect is fatal (JS, Flutter, Swift for 4xx).
    pub first_connect_error_fatal: bool,
    /// Error codes after which the SDK never reconnects (Android: 2, 4; Swift: 2, 41–43).
    pub unrecoverable_codes: &'static [i32],
    /// State recovery after a reconnect.
    pub recovery: Recovery,
    /// The SDK can fall back to long-polling (JS, opt-in).
    pub can_fallback: bool,
    /// The user does not send typing when its own typing indicators are off (JS).
    pub typing_respects_own_privacy: bool,
    /// Time allowed for one connect attempt (upgrade and first frame).
    pub connect_timeout: Duration,
    /// Time allowed for the TCP connect and the upgrade alone (Unity 5.x: 3 s), when the SDK
    /// bounds it apart from the first frame.
    pub upgrade_timeout: Option<Duration>,
    /// Time allowed for a REST call.
    pub http_timeout: Duration,
}

const JS_REFRESH: &[i32] = &[40];
const ANDROID_REFRESH: &[i32] = &[5, 40, 41, 42, 43];
const NONE: &[i32] = &[];

const JS: ProfileParams = ProfileParams {
    profile: Profile::Js,
    health: ClientHealth::JsArray,
    health_every: Duration::from_secs(25),
    cadence: HealthCadence::AfterServerHealth,
    dead_rule: DeadRule::Silence,
    dead_after: Duration::from_secs(35),
    dead_close: None,
    rest_expired: RestExpired::RefreshAndResend,
    backoff: Backoff::Standard,
    max_reconnects: None,
    refresh_codes: JS_REFRESH,
    refresh_every_reconnect: false,
    final_on_server_1000: true,
    first_connect_error_fatal: true,
    unrecoverable_codes: NONE,
    recovery: Recovery::QueryChannels,
    can_fallback: true,
    typing_respects_own_privacy: true,
    connect_timeout: Duration::from_secs(15),
    upgrade_timeout: None,
    http_timeout: Duration::from_secs(3),
};

const ANDROID: ProfileParams = ProfileParams {
    profile: Profile::Android,
    health: ClientHealth::Object,
    health_every: Duration::from_secs(11),
    cadence: HealthCadence::Fixed,
    dead_rule: DeadRule::NoHealth,
    dead_after: Duration::from_secs(30),
    dead_close: None,
    rest_expired: RestExpired::RefreshAndResend,
    backoff: Backoff::Standard,
    max_reconnects: None,
    refresh_codes: ANDROID_REFRESH,
    refresh_every_reconnect: true,
    final_on_server_1000: false,
    first_connect_error_fatal: false,
    unrecoverable_codes: &[2, 4],
    recovery: Recovery::Rewatch,
    can_fallback: false,
    typing_respects_own_privacy: false,
    connect_timeout: Duration::from_secs(15),
    upgrade_timeout: None,
    http_timeout: Duration::from_secs(10),
};

const SWIFT: ProfileParams = ProfileParams {
    profile: Profile::Swift,
    health: ClientHealth::Ping,
    health_every: Duration::from_secs(25),
    cadence: HealthCadence::Fixed,
    dead_rule: DeadRule::PongDeadline,
    dead_after: Duration::from_secs(3),
    dead_close: None,
    rest_expired: RestExpired::RefreshAndResend,
    backoff: Backoff::SwiftZeroFirst,
    max_reconnects: None,
    refresh_codes: JS_REFRESH,
    refresh_every_reconnect: false,
    final_on_server_1000: true,
    first_connect_error_fatal: true,
    unrecoverable_codes: &[2, 41, 42, 43],
    recovery: Recovery::SyncAndRewatch,
    can_fallback: false,
    typing_respects_own_privacy: false,
    connect_timeout: Duration::from_secs(15),
    upgrade_timeout: None,
    http_timeout: Duration::from_secs(10),
};

const FLUTTER: ProfileParams = ProfileParams {
    profile: Profile::Flutter,
    health: ClientHealth::Object,
    health_every: Duration::from_secs(20),
    cadence: HealthCadence::FixedImmediate,
    dead_rule: DeadRule::Silence,
    dead_after: Duration::from_secs(40),
    dead_close: None,
    rest_expired: RestExpired::RefreshAndResend,
    backoff: Backoff::Standard,
    max_reconnects: Some(6),
    refresh_codes: JS_REFRESH,
    refresh_every_reconnect: false,
    final_on_server_1000: false,
    first_connect_error_fatal: true,
    unrecoverable_codes: NONE,
    recovery: Recovery::Rewatch,
    can_fallback: false,
    typing_respects_own_privacy: false,
    connect_timeout: Duration::from_secs(15),
    upgrade_timeout: None,
    http_timeout: Duration::from_secs(10),
};

const UNITY: ProfileParams = ProfileParams {
    profile: Profile::Unity,
    health: ClientHealth::Unity,
    health_every: Duration::from_secs(29),
    cadence: HealthCadence::Fixed,
    dead_rule: DeadRule::NoHealth,
    dead_after: Duration::from_secs(30),
    dead_close: Some(1011),
    rest_expired: RestExpired::ReconnectAndResend,
    backoff: Backoff::Unity,
    max_reconnects: None,
    // WS codes 40–43 are only logged; the provider is called on every reconnect instead.
    refresh_codes: NONE,
    refresh_every_reconnect: true,
    final_on_server_1000: false,
    first_connect_error_fatal: false,
    unrecoverable_codes: NONE,
    recovery: Recovery::Sync,
    can_fallback: false,
    typing_respects_own_privacy: false,
    // The upgrade must finish within 3 s; the first `health.check` has no deadline at all (U.2),
    // so the attempt as a whole gets a bound only a stuck server reaches.
    connect_timeout: Duration::from_secs(3600),
    upgrade_timeout: Some(Duration::from_secs(3)),
    http_timeout: Duration::from_secs(100),
};

/// The parameter row of `profile`.
pub fn params(profile: Profile) -> &'static ProfileParams {
    match profile {
        Profile::Js => &JS,
        Profile::Android => &ANDROID,
        Profile::Swift => &SWIFT,
        Profile::Flutter => &FLUTTER,
        Profile::Unity => &UNITY,
    }
}

/// How long the JS SDK gives the first WebSocket connect before falling back (§4.1).
pub const FALLBACK_WINDOW: Duration = Duration::from_secs(6);
/// The long-poll connect's client timeout (§4.2).
pub const LONGPOLL_CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// The long-poll poll's client timeout (§4.2).
pub const LONGPOLL_POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// Channels recovered at most by the JS `POST /channels` after a reconnect (§3.5).
pub const RECOVER_LIMIT: usize = 30;

impl ProfileParams {
    /// The wait before the next attempt after `failures` consecutive failures; `unit` is a uniform
    /// number in `[0, 1)` from the user's seeded generator.
    pub fn retry_delay(&self, failures: u32, unit: f64) -> Duration {
        let ms = match self.backoff {
            Backoff::Standard => backoff::retry_interval_ms(failures, unit),
            Backoff::SwiftZeroFirst => backoff::swift_retry_interval_ms(failures, unit),
            Backoff::Unity => {
                // The SDK default (exponential); a user's own setting is applied by the machine.
                let d = backoff::UnityReconnect::default().delay_after(failures);
                return d.unwrap_or(Duration::from_secs(64));
            }
        };
        Duration::from_millis(ms)
    }

    /// The `[min, max]` bounds in milliseconds of [`ProfileParams::retry_delay`] (tests and reports).
    pub fn retry_bounds_ms(&self, failures: u32) -> (u64, u64) {
        match self.backoff {
            Backoff::Standard => backoff::retry_interval_bounds(failures),
            Backoff::SwiftZeroFirst if failures == 0 => (0, 0),
            Backoff::SwiftZeroFirst => backoff::retry_interval_bounds(failures),
            Backoff::Unity => {
                let d = self.retry_delay(failures, 0.0).as_millis() as u64;
                (d, d)
            }
        }
    }

    /// Whether `code` makes this SDK fetch a new token (provider mode only).
    pub fn refreshes_on(&self, code: i32) -> bool {
        self.refresh_codes.contains(&code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_protocol_11_2() {
        assert_eq!(params(Profile::Js).refresh_codes, &[40]);
        assert_eq!(params(Profile::Android).refresh_codes, &[5, 40, 41, 42, 43]);
        assert_eq!(params(Profile::Flutter).max_reconnects, Some(6));
        assert!(params(Profile::Js).final_on_server_1000 && params(Profile::Swift).final_on_server_1000);
        assert!(!params(Profile::Android).final_on_server_1000);
        assert_eq!(params(Profile::Swift).health, ClientHealth::Ping);
        for p in Profile::ALL {
            assert_eq!(params(p).profile, p);
            assert_eq!(params(p).can_fallback, p == Profile::Js);
        }
    }

    #[test]
    fn delays_follow_the_sdk_formulas() {
        let js = params(Profile::Js);
        assert_eq!(js.retry_delay(2, 0.5), Duration::from_millis(3250));
        assert_eq!(params(Profile::Swift).retry_delay(0, 0.9), Duration::ZERO);
        let unity = params(Profile::Unity);
        assert_eq!(unity.retry_delay(5, 0.5), Duration::ZERO);
        assert_eq!(unity.retry_delay(6, 0.5), Duration::from_secs(64));
        assert_eq!(js.retry_bounds_ms(1), (250, 2500));
    }
}
