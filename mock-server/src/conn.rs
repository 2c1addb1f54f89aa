//! Owns one client connection as the rest of the server sees it: its id, user, transport, and a bounded
//! outbox shared by the fan-out (producer) and the socket or poll (consumer).
//!
//! The outbox is a `VecDeque` that allocates nothing until the first event, so an idle connection costs
//! a few dozen bytes here. A WebSocket outbox that fills up marks its connection as a slow consumer (the
//! socket task then drops it); a long-poll buffer drops its oldest event instead. Fan-out never blocks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A connection id: 128 bits, written on the wire as a UUID-shaped string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u128);

impl ConnId {
    /// Parses the UUID-shaped wire form (`8-4-4-4-12` hex digits); anything else is `None`.
    pub fn parse(s: &str) -> Option<ConnId> {
        if s.len() != 36 {
            return None;
        }
        let mut v: u128 = 0;
        for (i, b) in s.bytes().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b != b'-' {
                    return None;
                }
                continue;
            }
            let d = (b as char).to_digit(16)?;
            v = (v << 4) | u128::from(d);
        }
        Some(ConnId(v))
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Hands out fresh, never-repeating connection ids that look random.
#[derive(Debug)]
pub struct ConnIdGen {
    seed: u64,
    counter: AtomicU64,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ConnIdGen {
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        ConnIdGen {
            seed: splitmix(nanos),
            counter: AtomicU64::new(1),
        }
    }

    /// The low half is a bijection of the counter, so two ids never collide.
    pub fn next(&self) -> ConnId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let lo = splitmix(n ^ self.seed);
        let hi = splitmix(n.wrapping_add(self.seed.rotate_left(17)));
        ConnId((u128::from(hi) << 64) | u128::from(lo))
    }
}

impl Default for ConnIdGen {
    fn default() -> Self {
        Self::new()
    }
}

/// How a connection reaches its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    LongPoll,
}

/// Why a connection is being ended by the server; set once, read by the connection's consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Clean close frame with this code.
    Close(u16),
    /// TCP shutdown without a close frame (the client sees 1006).
    Abrupt,
    /// The outbox overflowed.
    SlowConsumer,
    /// Token expired or revoked: a code-40 `connection.error` frame, then close 1000.
    TokenExpired { revoked: bool },
    /// The server is shutting down (close 1001).
    Shutdown,
}

impl Kill {
    fn encode(self) -> u32 {
        match self {
            Kill::Close(code) => (1 << 16) | u32::from(code),
            Kill::Abrupt => 2 << 16,
            Kill::SlowConsumer => 3 << 16,
            Kill::TokenExpired { revoked: false } => 4 << 16,
            Kill::TokenExpired { revoked: true } => 5 << 16,
            Kill::Shutdown => 6 << 16,
        }
    }

    fn decode(v: u32) -> Option<Kill> {
        Some(match v >> 16 {
            1 => Kill::Close((v & 0xFFFF) as u16),
            2 => Kill::Abrupt,
            3 => Kill::SlowConsumer,
            4 => Kill::TokenExpired { revoked: false },
            5 => Kill::TokenExpired { revoked: true },
            6 => Kill::Shutdown,
            _ => return None,
        })
    }
}

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Long-poll only: the buffer was full and its oldest event was dropped.
    DroppedOldest,
    /// WebSocket only: the outbox was full; the connection is now killed as a slow consumer.
    Overflow,
    /// The connection was already being closed; the frame was discarded.
    Closed,
}

/// One connection as registered in the world.
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub user: Arc<str>,
    pub transport: Transport,
    /// Subscribed to presence (a query with `presence: true`).
    pub presence: AtomicBool,
    /// Channels this connection watches (cids), so closing it can unwatch them.
    pub watching: Mutex<Vec<Arc<str>>>,
    queue: Mutex<VecDeque<Utf8Bytes>>,
    notify: Notify,
    kill: AtomicU32,
    /// Milliseconds since the server started at the last long-poll activity (long-poll only).
    pub last_poll_ms: AtomicU64,
    /// A long-poll request is currently held for this connection.
    pub poll_active: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take every connection down with a poisoned lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Conn {
    pub fn new(id: ConnId, user: Arc<str>, transport: Transport) -> Self {
        Conn {
            id,
            user,
            transport,
            presence: AtomicBool::new(false),
            watching: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            kill: AtomicU32::new(0),
            last_poll_ms: AtomicU64::new(0),
            poll_active: AtomicBool::new(false),
        }
    }

    /// Queues a frame; never blocks. `limit` is the outbox bound (WebSocket) or buffer size (long-poll).
    pub fn push(&self, frame: Utf8Bytes, limit: usize) -> Pushed {
        if self.killed().is_some() {
            return Pushed::Closed;
        }
        let mut q = lock(&self.queue);
        let res = if q.len() >= limit.max(1) {
            match self.transport {
                Transport::WebSocket => {
                    drop(q);
                    self.kill(Kill::SlowConsumer);
                    return Pushed::Overflow;
                }
                Transport::LongPoll => {
                    q.pop_front();
                    q.push_back(frame);
                    Pushed::DroppedOldest
                }
            }
        } else {
            q.push_back(frame);
            Pushed::Queued
        };
        drop(q);
        self.notify.notify_one();
        res
    }

    /// Takes every queued frame, oldest first. The queue's buffer goes with them: an idle
    /// connection holds no allocation here, and a drain allocates nothing (`Vec::from` of a
    /// `VecDeque` reuses its buffer).
    pub fn drain(&self) -> Vec<Utf8Bytes> {
        Vec::from(std::mem::take(&mut *lock(&self.queue)))
    }

    /// Marks the connection for closing; the first reason wins. Returns whether this call set it.
    pub fn kill(&self, why: Kill) -> bool {
        let set = self
            .kill
            .compare_exchange(0, why.encode(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.notify.notify_one();
        set
    }

    pub fn killed(&self) -> Option<Kill> {
        Kill::decode(self.kill.load(Ordering::Acquire))
    }

    /// Resolves when a frame was pushed or the connection was killed (a stored permit counts).
    pub async fn wait(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_id_round_trips_through_its_wire_form() {
        let g = ConnIdGen::new();
        let id = g.next();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(ConnId::parse(&s), Some(id));
        assert_ne!(g.next(), id);
        assert_eq!(ConnId::parse("not-a-uuid"), None);
        assert_eq!(ConnId::parse("zzzzzzzz-0a15-3891-0000-000000000009"), None);
    }

    #[test]
    fn websocket_outbox_overflow_kills_and_longpoll_drops_oldest() {
        let ws = Conn::new(ConnId(1), Arc::from("u"), Transport::WebSocket);
        assert_eq!(ws.push("a".into(), 1), Pushed::Queued);
        assert_eq!(ws.push("b".into(), 1), Pushed::Overflow);
        assert_eq!(ws.killed(), Some(Kill::SlowConsumer));
        let lp = Conn::new(ConnId(2), Arc::from("u"), Transport::LongPoll);
        lp.push("a".into(), 2);
        lp.push("b".into(), 2);
        assert_eq!(lp.push("c".into(), 2), Pushed::DroppedOldest);
        let got: Vec<String> = lp.drain().iter().map(|f| f.as_str().to_owned()).collect();
        assert_eq!(got, ["b", "c"]);
    }
}
