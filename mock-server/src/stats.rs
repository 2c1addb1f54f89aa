//! Owns the server's counters: lock-free atomics bumped on the hot paths, read as a `StatsSnapshot`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Live counters of one server instance.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) ws_live: AtomicU64,
    pub(crate) longpoll_live: AtomicU64,
    pub(crate) ws_accepted: AtomicU64,
    pub(crate) longpoll_accepted: AtomicU64,
    pub(crate) connect_rejected: AtomicU64,
    pub(crate) slow_consumers_dropped: AtomicU64,
    pub(crate) longpoll_events_dropped: AtomicU64,
    pub(crate) fault_dropped: AtomicU64,
    pub(crate) events_queued: AtomicU64,
    pub(crate) http_requests: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    /// A gauge, not a counter: bytes of request bodies being read right now.
    pub(crate) pending_body_bytes: AtomicU64,
}

/// A copy of the counters at one instant; the body of `GET /_fault/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Open WebSocket connections that passed authentication.
    pub live_connections: u64,
    /// Open long-poll connections.
    pub longpoll_connections: u64,
    /// Connections ever accepted (WebSocket + long-poll).
    pub accepted_total: u64,
    /// WebSocket connections ever accepted.
    pub ws_accepted_total: u64,
    /// Long-poll connections ever accepted.
    pub longpoll_accepted_total: u64,
    /// Connect attempts answered with an error (frame or HTTP).
    pub connect_rejected_total: u64,
    /// WebSockets disconnected because their outbox was full.
    pub dropped_slow_consumers: u64,
    /// Events dropped from full long-poll buffers.
    pub longpoll_events_dropped: u64,
    /// Connections dropped through the fault-control API.
    pub fault_dropped_total: u64,
    /// Events queued for delivery to any connection.
    pub events_queued_total: u64,
    /// HTTP requests received (upgrades and fault control included).
    pub http_requests_total: u64,
    /// Requests refused with code 9.
    pub rate_limited_total: u64,
    /// Bytes of request bodies being read right now, over every connection (bounded by
    /// `max_pending_body_bytes`).
    #[serde(default)]
    pub pending_body_bytes: u64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }

    /// Reads every counter once.
    pub fn snapshot(&self) -> StatsSnapshot {
        let ws = self.ws_accepted.load(Relaxed);
        let lp = self.longpoll_accepted.load(Relaxed);
        StatsSnapshot {
            live_connections: self.ws_live.load(Relaxed),
            longpoll_connections: self.longpoll_live.load(Relaxed),
            accepted_total: ws + lp,
            ws_accepted_total: ws,
            longpoll_accepted_total: lp,
            connect_rejected_total: self.connect_rejected.load(Relaxed),
            dropped_slow_consumers: self.slow_consumers_dropped.load(Relaxed),
            longpoll_events_dropped: self.longpoll_events_dropped.load(Relaxed),
            fault_dropped_total: self.fault_dropped.load(Relaxed),
            events_queued_total: self.events_queued.load(Relaxed),
            http_requests_total: self.http_requests.load(Relaxed),
            rate_limited_total: self.rate_limited.load(Relaxed),
            pending_body_bytes: self.pending_body_bytes.load(Relaxed),
        }
    }
}
