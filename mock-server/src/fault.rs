//! Owns the fault state: which protocol violations are on, injected latency, refused upgrades,
//! half-open users and token revocations. Read on the hot paths with atomics; changed through
//! `control.rs` (the Rust API and the `/_fault` HTTP API).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A named, deliberate protocol violation. Each is off by default; they exist so that the harness's
/// conformance checks can be shown to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// Fan out typing events even when the sender turned typing indicators off.
    TypingIgnoresPrivacy,
    /// Fan out `message.read` and show read state even when the reader turned read receipts off.
    ReadIgnoresPrivacy,
    /// After an error frame, drop the TCP connection (client sees 1006) instead of closing with 1000.
    ErrorClose1006,
    /// Send the first `health.check` without `me`.
    OmitMe,
    /// Report an expired token with code 43 instead of 40.
    WrongExpiredCode,
    /// Do not answer inbound health checks.
    NoHealthReply,
    /// Do not send a `health.check` after a ping frame (the library's pong still goes out).
    NoPingReply,
    /// Send periodic `health.check`s at twice the configured interval.
    HealthIntervalX2,
    /// Give a reconnecting user the connection id of its previous (closed) connection.
    SameConnectionId,
    /// Do not deliver typing and read events to the sender's own connections.
    NoSenderFanout,
    /// Return long-poll batches in reverse order.
    LongpollUnordered,
    /// Answer a poll for an unknown connection id with HTTP 200 and no events instead of code 46.
    LongpollUnknownIdOk,
    /// Error bodies carry only `code` and `message`.
    IncompleteErrorBody,
    /// Never send `user.presence.changed`.
    NoPresenceEvent,
    /// Leave the `X-RateLimit-*` headers out even when rate limits are on.
    NoRateLimitHeaders,
    /// Accept tokens whose header says `alg: none`, unverified.
    AcceptAlgNone,
    /// Do not send `notification.mark_read` to the reader's own connections.
    NoMarkReadToSelf,
    /// Query channels (`POST /channels`, `GET /channels`) ignores `watch: true`, so channels
    /// recovered after a reconnect (JS `recoverState`) stay unbound from the new connection.
    RecoverWatchIgnored,
    /// Rate-limited requests get HTTP 429 with an input-error body (code 4) instead of code 9.
    RateLimitWrongCode,
    /// A WebSocket connect does not upsert the user from `user_details` (the user is created bare).
    ConnectNoUpsert,
    /// Every event fan-out pushes each event twice to each receiving connection.
    DeliverTwice,
    /// Every second event push (counted over the whole server) is silently dropped.
    DropDeliveries,
    /// Each connection's events are swapped in pairs: a push is held back until the next one to
    /// the same connection, which then goes first.
    ReorderDeliveries,
    /// A new connection watches every channel its user is a member of without asking, so channel
    /// events reach connections that never watched.
    DeliverToUnwatched,
    /// `stop-watching` answers as usual but the connection keeps watching.
    StopWatchingIgnored,
    /// Any `api_key` (or none) is accepted.
    SkipApiKeyCheck,
    /// Permission checks are skipped: a user token may update other users and use another user's
    /// `connection_id`.
    SkipPermissionChecks,
    /// A user token may act as the user named in the body (`user_id`, `user.id`), as a server-side
    /// call does.
    TrustBodyUserId,
}

impl Violation {
    /// Every violation, in declaration order.
    pub const ALL: [Violation; 28] = [
        Violation::TypingIgnoresPrivacy,
        Violation::ReadIgnoresPrivacy,
        Violation::ErrorClose1006,
        Violation::OmitMe,
        Violation::WrongExpiredCode,
        Violation::NoHealthReply,
        Violation::NoPingReply,
        Violation::HealthIntervalX2,
        Violation::SameConnectionId,
        Violation::NoSenderFanout,
        Violation::LongpollUnordered,
        Violation::LongpollUnknownIdOk,
        Violation::IncompleteErrorBody,
        Violation::NoPresenceEvent,
        Violation::NoRateLimitHeaders,
        Violation::AcceptAlgNone,
        Violation::NoMarkReadToSelf,
        Violation::RecoverWatchIgnored,
        Violation::RateLimitWrongCode,
        Violation::ConnectNoUpsert,
        Violation::DeliverTwice,
        Violation::DropDeliveries,
        Violation::ReorderDeliveries,
        Violation::DeliverToUnwatched,
        Violation::StopWatchingIgnored,
        Violation::SkipApiKeyCheck,
        Violation::SkipPermissionChecks,
        Violation::TrustBodyUserId,
    ];

    /// The wire name (`snake_case`), as used by the fault-control API.
    pub fn name(self) -> &'static str {
        match self {
            Violation::TypingIgnoresPrivacy => "typing_ignores_privacy",
            Violation::ReadIgnoresPrivacy => "read_ignores_privacy",
            Violation::ErrorClose1006 => "error_close_1006",
            Violation::OmitMe => "omit_me",
            Violation::WrongExpiredCode => "wrong_expired_code",
            Violation::NoHealthReply => "no_health_reply",
            Violation::NoPingReply => "no_ping_reply",
            Violation::HealthIntervalX2 => "health_interval_x2",
            Violation::SameConnectionId => "same_connection_id",
            Violation::NoSenderFanout => "no_sender_fanout",
            Violation::LongpollUnordered => "longpoll_unordered",
            Violation::LongpollUnknownIdOk => "longpoll_unknown_id_ok",
            Violation::IncompleteErrorBody => "incomplete_error_body",
            Violation::NoPresenceEvent => "no_presence_event",
            Violation::NoRateLimitHeaders => "no_rate_limit_headers",
            Violation::AcceptAlgNone => "accept_alg_none",
            Violation::NoMarkReadToSelf => "no_mark_read_to_self",
            Violation::RecoverWatchIgnored => "recover_watch_ignored",
            Violation::RateLimitWrongCode => "rate_limit_wrong_code",
            Violation::ConnectNoUpsert => "connect_no_upsert",
            Violation::DeliverTwice => "deliver_twice",
            Violation::DropDeliveries => "drop_deliveries",
            Violation::ReorderDeliveries => "reorder_deliveries",
            Violation::DeliverToUnwatched => "deliver_to_unwatched",
            Violation::StopWatchingIgnored => "stop_watching_ignored",
            Violation::SkipApiKeyCheck => "skip_api_key_check",
            Violation::SkipPermissionChecks => "skip_permission_checks",
            Violation::TrustBodyUserId => "trust_body_user_id",
        }
    }

    /// Looks a violation up by its wire name.
    pub fn from_name(name: &str) -> Option<Violation> {
        Violation::ALL.into_iter().find(|v| v.name() == name)
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

/// How refused WebSocket upgrades are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RefuseMode {
    /// Answer the upgrade request with HTTP 503 and an error body.
    #[default]
    #[serde(rename = "503")]
    Http503,
    /// Drop the TCP connection without any response.
    Close,
}

/// Token cut-offs: a token issued at or before its cut-off (Unix seconds) counts as revoked; a
/// token without `iat` counts as issued before any cut-off.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    pub all_before: Option<i64>,
    pub users: HashMap<String, i64>,
    /// `true` when the cut-off came from an "expire" request (message says expired, not revoked).
    pub as_expiry: bool,
}

impl Revocations {
    /// `Some(revoked?)` when the token of `user` issued at `iat` is cut off.
    pub fn check(&self, user: &str, iat: Option<i64>) -> bool {
        let cut = match (self.all_before, self.users.get(user)) {
            (Some(a), Some(&u)) => a.max(u),
            (Some(a), None) => a,
            (None, Some(&u)) => u,
            (None, None) => return false,
        };
        iat.is_none_or(|iat| iat <= cut)
    }
}

/// The whole fault state of one server.
#[derive(Debug, Default)]
pub struct Faults {
    violations: AtomicU64,
    pub(crate) frame_latency_ms: AtomicU64,
    pub(crate) request_latency_ms: AtomicU64,
    pub(crate) first_frame_delay_ms: AtomicU64,
    pub(crate) refuse: Mutex<Option<(Instant, RefuseMode)>>,
    half_open_any: AtomicBool,
    pub(crate) half_open: Mutex<HalfOpen>,
    pub(crate) revocations: Mutex<Revocations>,
    /// Pushes counted by the `drop_deliveries` violation.
    pub(crate) delivery_count: AtomicU64,
    /// Per connection (by id), the event the `reorder_deliveries` violation holds back.
    pub(crate) held: Mutex<HashMap<u128, tokio_tungstenite::tungstenite::Utf8Bytes>>,
}

/// Users whose sockets go silent (no health replies, no periodic health checks, no events).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct HalfOpen {
    /// Every user.
    #[serde(default)]
    pub all: bool,
    /// These users.
    #[serde(default)]
    pub users: HashSet<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faults {
    pub fn is_on(&self, v: Violation) -> bool {
        self.violations.load(Relaxed) & v.bit() != 0
    }

    pub fn set(&self, v: Violation, on: bool) {
        if on {
            self.violations.fetch_or(v.bit(), Relaxed);
        } else {
            self.violations.fetch_and(!v.bit(), Relaxed);
        }
    }

    /// Whether any violation that changes event delivery is on (one relaxed load).
    pub fn mangles_delivery(&self) -> bool {
        let bits = Violation::DeliverTwice.bit() | Violation::DropDeliveries.bit() | Violation::ReorderDeliveries.bit();
        self.violations.load(Relaxed) & bits != 0
    }

    pub fn enabled(&self) -> Vec<Violation> {
        Violation::ALL.into_iter().filter(|v| self.is_on(*v)).collect()
    }

    pub fn frame_latency(&self) -> Option<Duration> {
        ms(self.frame_latency_ms.load(Relaxed))
    }

    pub fn request_latency(&self) -> Option<Duration> {
        ms(self.request_latency_ms.load(Relaxed))
    }

    pub fn first_frame_delay(&self) -> Option<Duration> {
        ms(self.first_frame_delay_ms.load(Relaxed))
    }

    /// The refusal mode while upgrades are being refused.
    pub fn refusing(&self) -> Option<RefuseMode> {
        let mut g = lock(&self.refuse);
        match *g {
            Some((until, mode)) if Instant::now() < until => Some(mode),
            Some(_) => {
                *g = None;
                None
            }
            None => None,
        }
    }

    pub fn set_half_open(&self, h: HalfOpen) {
        self.half_open_any.store(h.all || !h.users.is_empty(), Relaxed);
        *lock(&self.half_open) = h;
    }

    /// Whether `user`'s sockets are half-open. One relaxed load when nobody is.
    pub fn is_half_open(&self, user: &str) -> bool {
        if !self.half_open_any.load(Relaxed) {
            return false;
        }
        let h = lock(&self.half_open);
        h.all || h.users.contains(user)
    }

    /// Whether a token of `user` issued at `iat` was revoked; `Some(true)` means "revoked",
    /// `Some(false)` "expired by the fault API".
    pub fn revoked(&self, user: &str, iat: Option<i64>) -> Option<bool> {
        let r = lock(&self.revocations);
        r.check(user, iat).then_some(!r.as_expiry)
    }

    /// Clears every fault.
    pub fn reset(&self) {
        self.violations.store(0, Relaxed);
        self.frame_latency_ms.store(0, Relaxed);
        self.request_latency_ms.store(0, Relaxed);
        self.first_frame_delay_ms.store(0, Relaxed);
        *lock(&self.refuse) = None;
        self.set_half_open(HalfOpen::default());
        *lock(&self.revocations) = Revocations::default();
        lock(&self.held).clear();
    }
}

fn ms(v: u64) -> Option<Duration> {
    (v > 0).then(|| Duration::from_millis(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_names_round_trip_and_bits_are_distinct() {
        let f = Faults::default();
        for v in Violation::ALL {
            assert_eq!(Violation::from_name(v.name()), Some(v));
            assert!(!f.is_on(v));
        }
        f.set(Violation::OmitMe, true);
        assert_eq!(f.enabled(), vec![Violation::OmitMe]);
        f.set(Violation::OmitMe, false);
        assert!(f.enabled().is_empty());
    }

    #[test]
    fn revocation_cuts_tokens_issued_at_or_before_and_tokens_without_iat() {
        let r = Revocations {
            all_before: None,
            users: [("a".to_owned(), 100)].into(),
            as_expiry: false,
        };
        assert!(r.check("a", Some(100)));
        assert!(r.check("a", None));
        assert!(!r.check("a", Some(101)));
        assert!(!r.check("b", Some(1)));
    }
}
