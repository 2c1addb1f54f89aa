//! The same rules watched during load runs. Simulated users report what they observe to a shared
//! [`Observer`]; each observation is one relaxed atomic increment (two on failure), and only the
//! first failure of each rule takes a mutex, to keep its evidence. `summary.json` gets per-rule
//! counts: "under 20,000 users, PRIVACY-TYPING-OFF failed 3 times".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatstorm_protocol::ErrorBody;
use serde::Serialize;
use serde_json::Value;

use super::client::{event_type, one_line};
use super::suite::glob_match;
use super::{Strictness, rules};
use crate::metrics::RuleTally;
use crate::metrics::profile::{PROFILE_SLOTS, current_slot, profile_of_slot};

/// What the observer remembers about one simulated user.
#[derive(Debug, Default)]
pub struct UserState {
    /// Milliseconds (observer clock) of the last `health.check`, 0 = none on this connection.
    pub(super) last_health_ms: std::sync::atomic::AtomicU64,
    /// The previous connection id (taken only on connect, so the mutex is cold).
    pub(super) last_connection: std::sync::Mutex<Option<Box<str>>>,
}

/// The first failure of a rule seen during a load run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedFailure {
    /// Milliseconds since the observer was created (≈ run start).
    pub at_ms: u64,
    /// The simulated user that saw it.
    pub user: String,
    /// What the rule required.
    pub expected: String,
    /// What the user saw.
    pub received: String,
}

/// Per-rule counts for `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleCount {
    /// Rule id.
    pub id: &'static str,
    /// Strict or non-strict.
    pub strictness: Strictness,
    /// Observations checked against the rule.
    pub checks: u64,
    /// Observations that violated it.
    pub failures: u64,
    /// Evidence of the first violation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<ObservedFailure>,
}

/// Everything the observer saw, rules with no observation left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObserverSummary {
    /// Rules with at least one observation, in table order.
    pub rules: Vec<RuleCount>,
}

impl ObserverSummary {
    /// One line per violated rule, e.g. `PRIVACY-TYPING-OFF failed 3 of 1200 checks`.
    pub fn lines(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.failures > 0)
            .map(|r| format!("{} failed {} of {} checks", r.id, r.failures, r.checks))
            .collect()
    }

    /// Whether a strict rule (or with `strict` any rule) was violated.
    pub fn failed(&self, strict: bool) -> bool {
        self.rules
            .iter()
            .any(|r| r.failures > 0 && (strict || r.strictness == Strictness::Strict))
    }
}

struct Slot {
    checks: AtomicU64,
    failures: AtomicU64,
    first: Mutex<Option<ObservedFailure>>,
    /// Checks and failures by the observing user's profile tag (`crate::metrics::profile`).
    by_profile: [[AtomicU64; 2]; PROFILE_SLOTS],
}

struct Inner {
    start: Instant,
    index: HashMap<&'static str, usize>,
    slots: Vec<Slot>,
    watched: Vec<bool>,
    /// Per simulated user (by index), for checks that compare with the user's past.
    pub(super) users: Vec<UserState>,
    /// The server health interval the run expects.
    pub(super) health_interval: Duration,
    /// Windows (ms from the observer's start) in which the scenario itself silences or delays the
    /// server's frames (`half_open`, `add_latency`): a health-check gap that overlaps one is the
    /// fault's doing, not the server's, and is not judged.
    silences: Vec<(u64, u64)>,
}

/// Shared rule counters for a load run (clone freely: one `Arc`).
#[derive(Clone)]
pub struct Observer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

/// Which client health check an answer was awaited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthForm {
    /// A JSON object (Android, Flutter, Unity).
    Object,
    /// A JSON array (JS).
    Array,
    /// A ping control frame (Swift).
    Ping,
}

impl Observer {
    /// An observer watching the rules matching `watch` (globs; empty = every rule).
    pub fn new(watch: &[String]) -> Self {
        Self::for_run(watch, 0, Duration::from_secs(30))
    }

    /// An observer that also keeps per-user state for `users` simulated users (indices
    /// `0..users`), enabling the index-based hooks in `observer_hooks.rs`.
    pub fn for_run(watch: &[String], users: usize, health_interval: Duration) -> Self {
        let all = rules();
        let index = all.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let slots = all
            .iter()
            .map(|_| Slot {
                checks: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                first: Mutex::new(None),
                by_profile: std::array::from_fn(|_| [AtomicU64::new(0), AtomicU64::new(0)]),
            })
            .collect();
        let watched = all
            .iter()
            .map(|r| watch.is_empty() || watch.iter().any(|g| glob_match(g, r.id)))
            .collect();
        let users = (0..users).map(|_| UserState::default()).collect();
        Self {
            inner: Arc::new(Inner {
                start: Instant::now(),
                index,
                slots,
                watched,
                users,
                health_interval,
                silences: Vec::new(),
            }),
        }
    }

    /// The scenario's own silencing faults, as `(from, to)` offsets from the run's start (the
    /// observer is made as the run starts). Call before cloning the observer.
    #[must_use]
    pub fn with_silences(mut self, windows: impl IntoIterator<Item = (Duration, Duration)>) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.silences = windows.into_iter().map(|(a, b)| (ms(a), ms(b))).collect();
        }
        self
    }

    /// Whether the span `[from, to]` (observer ms) overlaps a silencing fault of the scenario.
    pub(super) fn silenced(&self, from: u64, to: u64) -> bool {
        self.inner.silences.iter().any(|&(a, b)| a <= to && from <= b)
    }

    /// Records one check of rule `id`; `received` is built only on failure.
    pub fn check(&self, id: &str, ok: bool, user: &str, expected: &str, received: impl FnOnce() -> String) {
        let Some(&i) = self.inner.index.get(id) else { return };
        if !self.inner.watched[i] {
            return;
        }
        let slot = &self.inner.slots[i];
        slot.checks.fetch_add(1, Relaxed);
        let by_profile = slot.by_profile.get(current_slot());
        if let Some([checks, _]) = by_profile {
            checks.fetch_add(1, Relaxed);
        }
        if ok {
            return;
        }
        if let Some([_, failures]) = by_profile {
            failures.fetch_add(1, Relaxed);
        }
        if slot.failures.fetch_add(1, Relaxed) == 0 {
            let f = ObservedFailure {
                at_ms: u64::try_from(self.inner.start.elapsed().as_millis()).unwrap_or(u64::MAX),
                user: user.to_owned(),
                expected: expected.to_owned(),
                received: received(),
            };
            let mut first = slot.first.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() {
                *first = Some(f);
            }
        }
    }

    /// Records `checks` checks of rule `id` at once, `failures` of them failed (end-of-run totals);
    /// `first` gives the first failure's user and what it saw.
    pub fn tally(
        &self,
        id: &str,
        checks: u64,
        failures: u64,
        expected: &str,
        first: impl FnOnce() -> (String, String),
    ) {
        let Some(&i) = self.inner.index.get(id) else { return };
        if !self.inner.watched[i] || checks == 0 {
            return;
        }
        let slot = &self.inner.slots[i];
        slot.checks.fetch_add(checks, Relaxed);
        if let Some([c, f]) = slot.by_profile.get(current_slot()) {
            c.fetch_add(checks, Relaxed);
            f.fetch_add(failures, Relaxed);
        }
        if failures == 0 {
            return;
        }
        if slot.failures.fetch_add(failures, Relaxed) == 0 {
            let (user, received) = first();
            let f = ObservedFailure {
                at_ms: u64::try_from(self.inner.start.elapsed().as_millis()).unwrap_or(u64::MAX),
                user,
                expected: expected.to_owned(),
                received,
            };
            let mut g = slot.first.lock().unwrap_or_else(|e| e.into_inner());
            if g.is_none() {
                *g = Some(f);
            }
        }
    }

    /// The first frame of a WebSocket connect (or the long-poll connect's `event`): a
    /// `health.check` with `connection_id` and `me` (CONN-FIRST-FRAME, CONN-ME,
    /// CONN-ME-PRIVACY when `sent_privacy` gives the `(typing, read)` the user connected with);
    /// an error frame is checked for a full body (ERROR-FRAME-BODY).
    pub fn first_frame(&self, user: &str, frame: &Value, sent_privacy: Option<(bool, bool)>) {
        if let Some(err) = frame.get("error").filter(|e| e.is_object()) {
            self.error_body(user, err, None);
            return;
        }
        let is_hc = event_type(frame) == Some("health.check")
            && frame
                .get("connection_id")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
        let show = || one_line(&frame.to_string(), 400);
        self.check(
            "CONN-FIRST-FRAME",
            is_hc,
            user,
            "a health.check with a connection_id",
            show,
        );
        let me = frame.get("me");
        self.check(
            "CONN-ME",
            me.is_some_and(|m| m.get("id").and_then(Value::as_str) == Some(user)),
            user,
            "me with the user's id",
            show,
        );
        if let (Some((typing, read)), Some(m)) = (sent_privacy, me) {
            let got = |p: &str| m.pointer(p).and_then(Value::as_bool).unwrap_or(true);
            let ok = got("/privacy_settings/typing_indicators/enabled") == typing
                && got("/privacy_settings/read_receipts/enabled") == read;
            self.check(
                "CONN-ME-PRIVACY",
                ok,
                user,
                "me.privacy_settings as sent in user_details",
                show,
            );
        }
    }

    /// A typing event from `sender` reached `receiver`; `sender_typing_enabled` is the sender's
    /// setting at the time (PRIVACY-TYPING-OFF).
    pub fn typing_received(&self, receiver: &str, sender: &str, sender_typing_enabled: bool) {
        let ok = sender_typing_enabled || receiver == sender;
        self.check(
            "PRIVACY-TYPING-OFF",
            ok,
            receiver,
            "no typing events from users with typing indicators off",
            || format!("typing event from {sender}, whose typing indicators are off"),
        );
    }

    /// A `message.read` from `reader` reached `receiver` (PRIVACY-READ-OFF).
    pub fn read_received(&self, receiver: &str, reader: &str, reader_read_enabled: bool) {
        let ok = reader_read_enabled || receiver == reader;
        self.check(
            "PRIVACY-READ-OFF",
            ok,
            receiver,
            "no message.read from users with read receipts off",
            || format!("message.read from {reader}, whose read receipts are off"),
        );
    }

    /// An error body, from HTTP (`http_status` given) or an error frame (ERROR-HTTP-BODY,
    /// ERROR-FRAME-BODY; RATE-429-CODE-9 for a 429).
    pub fn error_body(&self, user: &str, raw: &Value, http_status: Option<u16>) {
        let missing = ErrorBody::missing_fields(raw);
        let show = || format!("{} (missing {missing:?})", one_line(&raw.to_string(), 400));
        match http_status {
            None => self.check(
                "ERROR-FRAME-BODY",
                missing.is_empty(),
                user,
                "a full error object",
                show,
            ),
            Some(s) => {
                let ok = missing.is_empty() && raw.get("StatusCode").and_then(Value::as_u64) == Some(u64::from(s));
                self.check(
                    "ERROR-HTTP-BODY",
                    ok,
                    user,
                    "a full error body, StatusCode = HTTP status",
                    show,
                );
                if s == 429 {
                    let ok = raw.get("code").and_then(Value::as_i64) == Some(9);
                    self.check("RATE-429-CODE-9", ok, user, "code 9 on HTTP 429", show);
                }
            }
        }
    }

    /// The time between two server `health.check`s on one socket (HEALTH-INTERVAL).
    pub fn health_gap(&self, user: &str, gap: Duration, interval: Duration) {
        let limit = interval.mul_f64(1.5);
        self.check(
            "HEALTH-INTERVAL",
            gap <= limit,
            user,
            "health.check at most 1.5 × the interval apart",
            || format!("{gap:?} between health checks (interval {interval:?})"),
        );
    }

    /// Whether a client health check (or ping) was answered within the client's window.
    pub fn health_reply(&self, user: &str, form: HealthForm, answered: bool) {
        let id = match form {
            HealthForm::Object => "HEALTH-REPLY-OBJECT",
            HealthForm::Array => "HEALTH-REPLY-ARRAY",
            HealthForm::Ping => "HEALTH-PING-REPLY",
        };
        self.check(
            id,
            answered,
            user,
            "a health.check answering the client's health check",
            || "no answer".to_owned(),
        );
    }

    /// A reconnect completed (RECONNECT-NEW-CONNECTION-ID).
    pub fn reconnected(&self, user: &str, old_connection_id: &str, new_connection_id: &str) {
        self.check(
            "RECONNECT-NEW-CONNECTION-ID",
            old_connection_id != new_connection_id,
            user,
            "a new connection_id",
            || format!("connection_id {new_connection_id} reused"),
        );
    }

    /// The close that followed an error frame (RECONNECT-ERROR-CLOSE-1000); `None` = TCP drop.
    pub fn close_after_error(&self, user: &str, close_code: Option<u16>) {
        self.check(
            "RECONNECT-ERROR-CLOSE-1000",
            close_code == Some(1000),
            user,
            "close 1000 after an error frame",
            || close_code.map_or("a drop without close frame (1006)".to_owned(), |c| format!("close {c}")),
        );
    }

    /// An auth error for a token the user knows is expired (AUTH-EXPIRED-40).
    pub fn expired_token_code(&self, user: &str, code: i64) {
        self.check(
            "AUTH-EXPIRED-40",
            code == 40,
            user,
            "code 40 for an expired token",
            || format!("code {code}"),
        );
    }

    /// One long-poll batch: `created_at` must not go backwards (LONGPOLL-ORDER).
    pub fn longpoll_batch(&self, user: &str, events: &[Value]) {
        let times: Vec<&str> = events
            .iter()
            .filter_map(|e| e.get("created_at").and_then(Value::as_str))
            .collect();
        // RFC 3339 with a fixed-width UTC format sorts as text.
        let ok = times.windows(2).all(|w| w[0] <= w[1]);
        self.check("LONGPOLL-ORDER", ok, user, "events in order of created_at", || {
            format!("created_at sequence {times:?}")
        });
    }

    /// The per-user state of `user`, when the observer was built with it.
    pub(super) fn user_state(&self, user: u32) -> Option<&UserState> {
        self.inner.users.get(usize::try_from(user).ok()?)
    }

    /// The health interval the run expects.
    pub(super) fn health_interval(&self) -> Duration {
        self.inner.health_interval
    }

    /// Milliseconds since the observer was created.
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts so far per SDK profile of the observing users (checks made outside a user's
    /// task belong to no profile and are left out), by profile name, then rule id.
    pub fn by_profile(
        &self,
    ) -> std::collections::BTreeMap<&'static str, std::collections::BTreeMap<String, RuleTally>> {
        let mut out: std::collections::BTreeMap<&'static str, std::collections::BTreeMap<String, RuleTally>> =
            std::collections::BTreeMap::new();
        for (rule, slot) in rules().iter().zip(&self.inner.slots) {
            for (tag, [checks, failures]) in slot.by_profile.iter().enumerate() {
                let (Some(profile), checks) = (profile_of_slot(tag), checks.load(Relaxed)) else {
                    continue;
                };
                if checks > 0 {
                    out.entry(profile.name()).or_default().insert(
                        rule.id.to_owned(),
                        RuleTally {
                            checks,
                            failures: failures.load(Relaxed),
                        },
                    );
                }
            }
        }
        out
    }

    /// Counts so far.
    pub fn summary(&self) -> ObserverSummary {
        let rules = rules()
            .iter()
            .zip(&self.inner.slots)
            .filter(|(_, s)| s.checks.load(Relaxed) > 0)
            .map(|(r, s)| RuleCount {
                id: r.id,
                strictness: r.strictness,
                checks: s.checks.load(Relaxed),
                failures: s.failures.load(Relaxed),
                first_failure: s.first.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            })
            .collect();
        ObserverSummary { rules }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_gaps_across_a_silencing_fault_are_not_judged() {
        use chatstorm_protocol::event::{HealthCheck, ServerEvent};
        let hc = || {
            ServerEvent::HealthCheck(HealthCheck {
                connection_id: "c".into(),
                cid: "*".into(),
                created_at: String::new(),
                me: None,
            })
        };
        let judged = |o: &Observer| {
            o.user_event(0, &hc());
            o.user_event(0, &hc());
            o.summary()
                .rules
                .iter()
                .find(|r| r.id == "HEALTH-INTERVAL")
                .map_or(0, |r| r.checks)
        };
        let plain = Observer::for_run(&[], 1, Duration::from_secs(30));
        assert_eq!(judged(&plain), 1, "a gap outside every fault window is judged");
        let silenced = Observer::for_run(&[], 1, Duration::from_secs(30))
            .with_silences([(Duration::ZERO, Duration::from_secs(600))]);
        assert_eq!(judged(&silenced), 0, "a gap across a half_open window is the fault's");
        let later = Observer::for_run(&[], 1, Duration::from_secs(30))
            .with_silences([(Duration::from_secs(500), Duration::from_secs(600))]);
        assert_eq!(judged(&later), 1, "a window later in the run excuses nothing now");
        assert!(later.silenced(499_000, 500_000) && later.silenced(600_000, 700_000));
        assert!(!later.silenced(0, 499_999) && !later.silenced(600_001, 700_000));
    }

    #[test]
    fn checks_are_also_counted_by_the_observing_users_profile() {
        use crate::metrics::profile::with_profile;
        use chatstorm_protocol::Profile;
        let o = Observer::new(&[]);
        with_profile(Profile::Unity, || o.typing_received("b", "a", false));
        with_profile(Profile::Js, || o.typing_received("c", "a", true));
        o.typing_received("d", "a", true);
        let p = o.by_profile();
        let unity = p["unity"]["PRIVACY-TYPING-OFF"];
        assert_eq!((unity.checks, unity.failures), (1, 1));
        let js = p["js"]["PRIVACY-TYPING-OFF"];
        assert_eq!((js.checks, js.failures), (1, 0));
        assert_eq!(p.len(), 2, "the untagged check belongs to no profile");
    }

    #[test]
    fn counts_checks_and_keeps_first_failure() {
        let o = Observer::new(&[]);
        o.typing_received("b", "a", true);
        o.typing_received("b", "a", false);
        o.typing_received("c", "a", false);
        o.typing_received("a", "a", false);
        let s = o.summary();
        let r = s.rules.iter().find(|r| r.id == "PRIVACY-TYPING-OFF").unwrap();
        assert_eq!((r.checks, r.failures), (4, 2));
        assert_eq!(r.first_failure.as_ref().unwrap().user, "b");
        assert_eq!(s.lines(), vec!["PRIVACY-TYPING-OFF failed 2 of 4 checks"]);
        assert!(s.failed(false));
    }

    #[test]
    fn watch_globs_limit_rules_and_error_bodies_are_checked() {
        let o = Observer::new(&["ERROR-*".to_owned()]);
        o.typing_received("b", "a", false);
        o.error_body("u", &json!({"code": 4, "message": "m"}), Some(400));
        o.first_frame("u", &json!({"error": {"code": 5}}), None);
        let s = o.summary();
        assert!(s.rules.iter().all(|r| r.id.starts_with("ERROR-")));
        assert_eq!(s.rules.len(), 2);
    }

    #[test]
    fn first_frame_and_longpoll_order() {
        let o = Observer::new(&[]);
        let hc = json!({"type":"health.check","connection_id":"c1","me":{"id":"u","privacy_settings":{"typing_indicators":{"enabled":false}}}});
        o.first_frame("u", &hc, Some((false, true)));
        o.longpoll_batch(
            "u",
            &[
                json!({"created_at":"2026-01-01T00:00:02Z"}),
                json!({"created_at":"2026-01-01T00:00:01Z"}),
            ],
        );
        let s = o.summary();
        assert!(
            !s.failed(true) || s.lines() == vec!["LONGPOLL-ORDER failed 1 of 1 checks"],
            "{:?}",
            s.lines()
        );
        assert_eq!(s.lines(), vec!["LONGPOLL-ORDER failed 1 of 1 checks"]);
    }
}
