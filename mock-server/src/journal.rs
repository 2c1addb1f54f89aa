//! Owns the client journal: an opt-in, bounded record of what clients did, in the order the server
//! saw it (socket opened with its first frame, health checks and pings received, close frames and
//! their codes, REST calls with the `connection_id` they carried). Tests read it to check an SDK
//! profile's timing and ordering from the server's side (health cadence, the Unity close 1011,
//! "no watch before the connect resolved").
//!
//! Off by default: a load run pays one relaxed atomic load per recorded point and nothing else.
//! Times are `tokio::time::Instant`s, so they follow paused time in tests.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use tokio::time::Instant;

/// Entries kept at most; the oldest go first.
pub const JOURNAL_CAP: usize = 16_384;

/// What a client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAct {
    /// The server sent the first `health.check` of this connection (the connect resolved).
    Connected {
        /// The new connection id.
        connection_id: String,
    },
    /// A text-frame health check arrived; `pascal_case` when its type key was not `type`
    /// (Unity's `{"Type":"health.check"}`), `array` when it came as a JSON array (JS).
    HealthCheck {
        /// The key was spelled in another case than `type`.
        pascal_case: bool,
        /// The frame was an array of objects.
        array: bool,
    },
    /// A WebSocket ping control frame arrived (Swift).
    Ping,
    /// The client sent a close frame with this code (`None`: a close frame without a code).
    Close(Option<u16>),
    /// The client's socket ended without a close frame (TCP closed or reset: a client "abort").
    Dropped,
    /// A WebSocket upgrade was refused by fault injection (the user is unknown there: empty).
    UpgradeRefused,
    /// A REST call arrived.
    Rest {
        /// HTTP method.
        method: String,
        /// Path without the query.
        path: String,
        /// The `connection_id` query parameter, empty when absent.
        connection_id: String,
    },
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// When the server saw it.
    pub at: Instant,
    /// The user (from the token or the connection); empty when unknown.
    pub user: String,
    /// What happened.
    pub act: ClientAct,
}

/// The journal itself (inside `App`).
#[derive(Debug, Default)]
pub struct Journal {
    on: AtomicBool,
    entries: Mutex<VecDeque<JournalEntry>>,
}

impl Journal {
    /// Starts or stops recording (stopping keeps what was recorded).
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Relaxed);
    }

    /// Whether recording is on.
    pub fn is_on(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Records `act` of `user` now, when recording is on.
    pub fn record(&self, user: &str, act: impl FnOnce() -> ClientAct) {
        if !self.is_on() {
            return;
        }
        let entry = JournalEntry {
            at: Instant::now(),
            user: user.to_owned(),
            act: act(),
        };
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() >= JOURNAL_CAP {
            g.pop_front();
        }
        g.push_back(entry);
    }

    /// A copy of every entry, oldest first.
    pub fn entries(&self) -> Vec<JournalEntry> {
        let g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        g.iter().cloned().collect()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// How a client's health-check text frame is spelled (for [`ClientAct::HealthCheck`]).
pub fn health_spelling(text: &str) -> (bool, bool) {
    let trimmed = text.trim_start();
    let array = trimmed.starts_with('[');
    let pascal = !text.contains("\"type\"");
    (pascal, array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_when_on_and_stays_bounded() {
        let j = Journal::default();
        j.record("u", || ClientAct::Ping);
        assert!(j.entries().is_empty());
        j.set_on(true);
        for _ in 0..JOURNAL_CAP + 5 {
            j.record("u", || ClientAct::Close(Some(1011)));
        }
        assert_eq!(j.entries().len(), JOURNAL_CAP);
        j.clear();
        assert!(j.entries().is_empty());
    }

    #[test]
    fn spelling() {
        assert_eq!(health_spelling(r#"{"Type":"health.check"}"#), (true, false));
        assert_eq!(health_spelling(r#"[{"type":"health.check"}]"#), (false, true));
    }
}
