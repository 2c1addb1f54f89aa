//! Owns `MockConfig`: every knob of the mock server, with the defaults PROTOCOL.md's decisions table fixes.

use std::time::Duration;

/// What happens to an open WebSocket when its token reaches `exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpiryPolicy {
    /// Keep the socket open (the default; the real backend's behaviour is unconfirmed).
    #[default]
    Keep,
    /// Send a `connection.error` frame with code 40, then close with 1000.
    Kick,
}

/// Configuration of one mock server instance.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The only API key accepted (anything else gets code 2).
    pub api_key: String,
    /// The app secret: signs and verifies HS256 tokens, and guards the fault-control API.
    pub secret: String,
    /// Interval of the server's own `health.check` frames. Default 25 s: the production backend's
    /// 30 s sits exactly on Unity's 30 s dead rule (PROTOCOL.md U.3, U.7 item 2), so the mock
    /// stays under it on its own, without counting on the client's 29 s check being answered.
    pub health_interval: Duration,
    /// How long an idle long-poll request is held before it returns `{"events":[]}`.
    pub longpoll_hold: Duration,
    /// Events buffered per long-poll connection between polls; beyond it the oldest are dropped.
    pub longpoll_buffer: usize,
    /// A long-poll connection with no poll for this long is closed (its id then gets code 46).
    pub longpoll_idle_timeout: Duration,
    /// What to do with a socket whose token expires while it is open.
    pub expiry: ExpiryPolicy,
    /// Accept developer tokens (`.devtoken` signature), as an app with auth checks disabled does.
    pub allow_dev_tokens: bool,
    /// Largest serialized user object accepted, in bytes (5 KB in production).
    pub user_size_limit: usize,
    /// Per-user, per-endpoint requests allowed per minute; `None` turns rate limiting off.
    pub rate_limit: Option<u32>,
    /// Frames queued for one WebSocket before it counts as a slow consumer and is disconnected.
    pub outbox_limit: usize,
    /// Largest request body accepted on REST endpoints, in bytes (beyond: code 22, HTTP 413).
    pub max_body_bytes: usize,
    /// A socket whose writes stall this long (the client stopped reading) is dropped as a slow
    /// consumer, so a stuck client never pins its task.
    pub write_timeout: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            api_key: "mock_api_key".to_owned(),
            secret: "mock_api_secret".to_owned(),
            health_interval: Duration::from_secs(25),
            longpoll_hold: Duration::from_secs(20),
            longpoll_buffer: 1000,
            longpoll_idle_timeout: Duration::from_secs(60),
            expiry: ExpiryPolicy::Keep,
            allow_dev_tokens: false,
            user_size_limit: 5 * 1024,
            rate_limit: None,
            outbox_limit: 256,
            max_body_bytes: 1024 * 1024,
            write_timeout: Duration::from_secs(10),
        }
    }
}
