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
    /// The app secret: signs and verifies HS256 tokens. It does not open the fault-control API.
    pub secret: String,
    /// The fault-control secret, its own and never the signing key: every `/_fault` request must
    /// carry it in `X-Chatstorm-Secret` (compared in constant time). The default is 32 random hex
    /// digits from the OS, different for every config; empty closes the API (every call gets 401).
    pub fault_secret: String,
    /// Serve `/_fault` on the client listener. Off when the fault API has its own listener
    /// (`--fault-listen`), so a client-facing port never answers it.
    pub fault_on_client_listener: bool,
    /// A client that opened a connection (or finished its previous response) and has not sent
    /// any byte of a request within this time is disconnected (keep-alive idle timeout).
    pub idle_timeout: Duration,
    /// A request whose head (request line and headers) is not complete this long after its first
    /// byte is disconnected (slowloris).
    pub header_timeout: Duration,
    /// A request body not complete within this time gets 408 (code 23) and the connection closes.
    pub body_timeout: Duration,
    /// Bytes of request bodies being read, summed over every connection; a body that would take
    /// the sum beyond it gets 503 and the connection closes, so slow uploads cannot pin memory.
    pub max_pending_body_bytes: usize,
    /// Longest token accepted, in bytes; a longer one gets code 24 (HTTP 431, "max header size
    /// exceeded"). 8 KiB: the usual request-header line limit of HTTP front ends.
    pub max_token_bytes: usize,
    /// Interval of the server's own `health.check` frames. Default 25 s: the production backend's
    /// 30 s sits exactly on Unity's 30 s dead rule (PROTOCOL.md U.3, U.7 item 2), so the mock
    /// stays under it on its own, without counting on the client's 29 s check being answered.
    pub health_interval: Duration,
    /// How long an idle long-poll request is held before it returns `{"events":[]}`.
    pub longpoll_hold: Duration,
    /// Events buffered per long-poll connection between polls; beyond it the oldest are dropped.
    pub longpoll_buffer: usize,
    /// Messages kept per channel for channel state and `/sync` (the oldest are forgotten beyond).
    /// The real service keeps every message; the mock bounds its memory. Each kept message costs
    /// its serialized size (about 1.2 KB with its user), so 1,000 channels at 100 hold ~120 MB.
    pub messages_kept: usize,
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
    /// Serve TLS (`https://`, `wss://`) on every listener with this configuration; `None`: plain.
    /// The handshake is bounded by `header_timeout`.
    pub tls: Option<crate::tls::MockTls>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            api_key: "mock_api_key".to_owned(),
            secret: "mock_api_secret".to_owned(),
            fault_secret: random_secret(),
            fault_on_client_listener: true,
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_pending_body_bytes: 32 * 1024 * 1024,
            max_token_bytes: 8 * 1024,
            health_interval: Duration::from_secs(25),
            longpoll_hold: Duration::from_secs(20),
            longpoll_buffer: 1000,
            messages_kept: crate::world::MESSAGES_KEPT,
            longpoll_idle_timeout: Duration::from_secs(60),
            expiry: ExpiryPolicy::Keep,
            allow_dev_tokens: false,
            user_size_limit: 5 * 1024,
            rate_limit: None,
            outbox_limit: 256,
            max_body_bytes: 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// 128 bits from the OS as 32 hex digits: a fault-control secret nobody can guess. Falls back to
/// the process's randomly keyed hasher if the OS source fails (it does not on Linux).
pub fn random_secret() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in b.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
