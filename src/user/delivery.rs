//! Delivery accounting shared by every user of one process: the stamp embedded in sent typing
//! events and messages, the table of read send times, the privacy flags receivers check for
//! leaks, and the [`DeliveryTracker`] that turns receipts into latency samples and counts of lost,
//! duplicated and out-of-order deliveries in bounded memory.
//!
//! How lost and duplicated are counted: every stamped send takes a global sequence number `g` and
//! a slot in a ring of recent sends holding how many receipts are expected (the channel's live
//! watchers at send time, zero when the sender's privacy suppresses it) and how many arrived.
//! When the ring wraps onto a slot, or at [`DeliveryTracker::finish`], the difference is booked as
//! lost (fewer) or duplicated (more). Expected counts are read from watcher gauges, so churn at the
//! moment of a send blurs them slightly: treat small counts under reconnect storms as noise.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The key carrying a stamp inside typing events and message custom fields.
pub const STAMP_KEY: &str = "chatstorm";

/// What the sender embeds: `{"t": µs since run start, "s": global sequence, "u": sender index}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Send time, µs since the run started.
    pub t_us: u64,
    /// Global send sequence.
    pub seq: u64,
    /// Sender's user index.
    pub user: u32,
}

impl Stamp {
    /// The stamp as JSON.
    pub fn to_value(self) -> Value {
        json!({"t": self.t_us, "s": self.seq, "u": self.user})
    }

    /// Reads a stamp from an object that carries one under [`STAMP_KEY`].
    pub fn from_object(obj: &serde_json::Map<String, Value>) -> Option<Self> {
        let s = obj.get(STAMP_KEY)?.as_object()?;
        Some(Self {
            t_us: s.get("t")?.as_u64()?,
            seq: s.get("s")?.as_u64()?,
            user: u32::try_from(s.get("u")?.as_u64()?).ok()?,
        })
    }
}

/// The kind of a stamped delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `typing.start`.
    Typing = 0,
    /// `message.read`.
    Read = 1,
    /// `message.new`.
    Message = 2,
}

/// A receipt that should not have happened: a typing or read event from a user whose privacy
/// setting was off when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leak {
    /// Typing or read.
    pub kind: Kind,
    /// Sender index.
    pub sender: u32,
    /// Receiver index.
    pub receiver: u32,
    /// Channel index.
    pub channel: u32,
}

const RING: usize = 1 << 15;

struct Slot {
    /// `seq + 1` of the send occupying the slot (0 = empty).
    id: AtomicU64,
    expected: AtomicU32,
    received: AtomicU32,
}

/// Totals of a tracker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryTotals {
    /// Stamped sends.
    pub sent: u64,
    /// Receipts matched to a send.
    pub received: u64,
    /// Expected receipts that never came.
    pub lost: u64,
    /// Receipts beyond those expected.
    pub duplicated: u64,
    /// Receipts older than the ring (no longer matched).
    pub late: u64,
    /// Privacy leaks.
    pub leaks: u64,
}

/// Shared by all users of a process (one per `UserCtx`).
pub struct DeliveryTracker {
    next_seq: AtomicU64,
    ring: Box<[Slot]>,
    channels: HashMap<Box<str>, u32>,
    users: HashMap<Box<str>, u32>,
    watchers: Box<[AtomicU32]>,
    typing_off_since: Box<[AtomicU64]>,
    read_off_since: Box<[AtomicU64]>,
    reads: Mutex<HashMap<(u32, u32), (u64, u64)>>,
    lost: AtomicU64,
    duplicated: AtomicU64,
    received: AtomicU64,
    late: AtomicU64,
    leaks: AtomicU64,
}

impl DeliveryTracker {
    /// A tracker for the given user ids and channel cids (their positions are the indices).
    pub fn new(user_ids: &[String], cids: &[String]) -> Self {
        let users = user_ids.len();
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>();
        Self {
            next_seq: AtomicU64::new(0),
            ring: (0..RING)
                .map(|_| Slot {
                    id: AtomicU64::new(0),
                    expected: AtomicU32::new(0),
                    received: AtomicU32::new(0),
                })
                .collect(),
            users: user_ids
                .iter()
                .enumerate()
                .map(|(i, u)| (u.as_str().into(), i as u32))
                .collect(),
            channels: cids
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str().into(), i as u32))
                .collect(),
            watchers: (0..cids.len()).map(|_| AtomicU32::new(0)).collect(),
            typing_off_since: zeros(users),
            read_off_since: zeros(users),
            reads: Mutex::new(HashMap::new()),
            lost: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            received: AtomicU64::new(0),
            late: AtomicU64::new(0),
            leaks: AtomicU64::new(0),
        }
    }

    /// The index of a channel cid, if the engine registered it.
    pub fn channel(&self, cid: &str) -> Option<u32> {
        self.channels.get(cid).copied()
    }

    /// The index of a user id.
    pub fn user(&self, id: &str) -> Option<u32> {
        self.users.get(id).copied()
    }

    /// A user started (`+1`) or stopped (`-1`) watching a channel on a live connection.
    pub fn watching(&self, channel: u32, delta: i32) {
        if let Some(w) = self.watchers.get(channel as usize) {
            if delta >= 0 {
                w.fetch_add(delta as u32, Ordering::Relaxed);
            } else {
                // Never below zero, whatever the order of updates.
                let _ = w.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(delta.unsigned_abs()))
                });
            }
        }
    }

    /// Records a user's privacy switches as the server now knows them, from `now_us`.
    pub fn set_privacy(&self, user: u32, typing: Option<bool>, read: Option<bool>, now_us: u64) {
        let set = |table: &[AtomicU64], on: Option<bool>| {
            if let (Some(on), Some(slot)) = (on, table.get(user as usize)) {
                // 0 = on; otherwise off since (µs + 1).
                slot.store(if on { 0 } else { now_us + 1 }, Ordering::Relaxed);
            }
        };
        set(&self.typing_off_since, typing);
        set(&self.read_off_since, read);
    }

    fn off_since(&self, kind: Kind, user: u32) -> Option<u64> {
        let table = match kind {
            Kind::Typing => &self.typing_off_since,
            Kind::Read => &self.read_off_since,
            Kind::Message => return None,
        };
        let v = table.get(user as usize)?.load(Ordering::Relaxed);
        (v != 0).then(|| v - 1)
    }

    /// Starts a stamped send by `user` on `channel` at `now_us`; for reads, remembers the send in
    /// the read table instead of a payload.
    pub fn send(&self, kind: Kind, user: u32, channel: u32, now_us: u64) -> Stamp {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let suppressed = self.off_since(kind, user).is_some();
        let expected = if suppressed {
            0
        } else {
            self.watchers
                .get(channel as usize)
                .map_or(0, |w| w.load(Ordering::Relaxed))
        };
        let slot = &self.ring[(seq as usize) % RING];
        let old = slot.id.swap(seq + 1, Ordering::AcqRel);
        let old_expected = slot.expected.swap(expected, Ordering::AcqRel);
        let old_received = slot.received.swap(0, Ordering::AcqRel);
        if old != 0 {
            self.settle(old_expected, old_received);
        }
        if kind == Kind::Read
            && let Ok(mut r) = self.reads.lock()
        {
            r.insert((channel, user), (now_us, seq));
        }
        Stamp {
            t_us: now_us,
            seq,
            user,
        }
    }

    fn settle(&self, expected: u32, received: u32) {
        if expected > received {
            self.lost.fetch_add(u64::from(expected - received), Ordering::Relaxed);
        } else if received > expected {
            self.duplicated
                .fetch_add(u64::from(received - expected), Ordering::Relaxed);
        }
    }

    /// The stamp of the last read `reader` sent on `channel`.
    pub fn last_read(&self, channel: u32, reader: u32) -> Option<Stamp> {
        let r = self.reads.lock().ok()?;
        r.get(&(channel, reader)).map(|&(t_us, seq)| Stamp {
            t_us,
            seq,
            user: reader,
        })
    }

    /// Books one receipt; returns a leak when the sender's privacy was off at send time.
    ///
    /// Only typing is judged here: a typing event carries its own stamp, so its send time is
    /// exact. A `message.read` carries none (its stamp is the reader's latest read), so a late
    /// receipt of a read sent while receipts were on cannot be told from a leak; read privacy is
    /// proven by the conformance rules PRIVACY-READ-OFF and PRIVACY-TOGGLE instead.
    pub fn receive(&self, kind: Kind, stamp: Stamp, receiver: u32, channel: u32) -> Option<Leak> {
        if kind == Kind::Typing && self.off_since(kind, stamp.user).is_some_and(|off| stamp.t_us >= off) {
            // Expected nowhere: a leak, not a duplicate.
            self.leaks.fetch_add(1, Ordering::Relaxed);
            return Some(Leak {
                kind,
                sender: stamp.user,
                receiver,
                channel,
            });
        }
        let slot = &self.ring[(stamp.seq as usize) % RING];
        if slot.id.load(Ordering::Acquire) == stamp.seq + 1 {
            slot.received.fetch_add(1, Ordering::AcqRel);
            self.received.fetch_add(1, Ordering::Relaxed);
        } else {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        None
    }

    /// Settles every send still in the ring (end of run) and returns the totals.
    pub fn finish(&self) -> DeliveryTotals {
        for slot in self.ring.iter() {
            if slot.id.swap(0, Ordering::AcqRel) != 0 {
                self.settle(
                    slot.expected.load(Ordering::Acquire),
                    slot.received.load(Ordering::Acquire),
                );
            }
        }
        self.totals()
    }

    /// [`DeliveryTracker::finish`], adding lost, duplicated and out-of-ring receipts to the recorder.
    pub fn finish_into(&self, rec: &super::record::Recorder) -> DeliveryTotals {
        use super::record::Counter;
        let t = self.finish();
        rec.count_n(Counter::EventsLost, t.lost);
        rec.count_n(Counter::EventsDuplicated, t.duplicated);
        t
    }

    /// The totals so far (sends still in the ring are not yet settled).
    pub fn totals(&self) -> DeliveryTotals {
        DeliveryTotals {
            sent: self.next_seq.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            leaks: self.leaks.load(Ordering::Relaxed),
        }
    }
}

/// A receiver's memory of the last sequence seen per (sender, kind), to count out-of-order
/// receipts: eight direct-mapped slots inline in the user (64 bytes), so a receiver with many
/// senders forgets some and undercounts rather than growing.
#[derive(Debug, Default, Clone, Copy)]
pub struct OrderTable([(u32, u32); 8]);

impl OrderTable {
    /// Notes a receipt; `true` when it arrived after a later one from the same sender and kind.
    pub fn out_of_order(&mut self, kind: Kind, sender: u32, seq: u64) -> bool {
        let key = sender.wrapping_mul(3).wrapping_add(kind as u32).wrapping_add(1);
        let slot = &mut self.0[(key as usize) % 8];
        // Stored sequences are truncated to 32 bits: wrap-around after 4 billion sends is ignored.
        let s = seq as u32;
        if slot.0 == key {
            if s < slot.1 {
                return true;
            }
            slot.1 = s;
        } else {
            *slot = (key, s);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> DeliveryTracker {
        let users: Vec<String> = (0..4).map(|i| format!("u{i}")).collect();
        let t = DeliveryTracker::new(&users, &["messaging:a".into(), "messaging:b".into()]);
        assert_eq!(
            (t.user("u3"), t.user("x"), t.channel("messaging:b")),
            (Some(3), None, Some(1))
        );
        t
    }

    #[test]
    fn stamps_round_trip() {
        let s = Stamp {
            t_us: 5,
            seq: 9,
            user: 3,
        };
        let v = json!({ STAMP_KEY: s.to_value(), "type": "typing.start" });
        assert_eq!(Stamp::from_object(v.as_object().unwrap()), Some(s));
        assert_eq!(
            Stamp::from_object(json!({"chatstorm": {"t": "x"}}).as_object().unwrap()),
            None
        );
    }

    #[test]
    fn lost_and_duplicated_are_settled() {
        let t = tracker();
        t.watching(0, 2);
        let a = t.send(Kind::Typing, 0, 0, 10);
        let b = t.send(Kind::Message, 1, 0, 20);
        assert_eq!(t.receive(Kind::Typing, a, 2, 0), None);
        for _ in 0..3 {
            t.receive(Kind::Message, b, 3, 0);
        }
        let tot = t.finish();
        assert_eq!((tot.sent, tot.received, tot.lost, tot.duplicated), (2, 4, 1, 1));
        t.watching(0, -5);
        assert_eq!(t.watchers[0].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn privacy_off_receipts_are_leaks_and_expect_nothing() {
        let t = tracker();
        t.watching(1, 3);
        t.set_privacy(2, Some(false), None, 100);
        let before = Stamp {
            t_us: 50,
            seq: 0,
            user: 2,
        };
        assert_eq!(t.receive(Kind::Typing, before, 0, 1), None, "sent before the switch");
        let s = t.send(Kind::Typing, 2, 1, 200);
        let leak = t.receive(Kind::Typing, s, 0, 1).unwrap();
        assert_eq!((leak.sender, leak.receiver, leak.kind), (2, 0, Kind::Typing));
        let r = t.send(Kind::Read, 3, 1, 300);
        assert_eq!(t.last_read(1, 3), Some(r));
        let tot = t.finish();
        assert_eq!(
            (tot.leaks, tot.lost, tot.duplicated),
            (1, 3, 0),
            "the read expected 3, got 0"
        );
    }

    #[test]
    fn order_table_flags_regressions() {
        let mut o = OrderTable::default();
        assert!(!o.out_of_order(Kind::Message, 1, 5));
        assert!(!o.out_of_order(Kind::Message, 1, 7));
        assert!(o.out_of_order(Kind::Message, 1, 6));
        assert!(!o.out_of_order(Kind::Typing, 1, 6), "kinds are separate");
        assert_eq!(std::mem::size_of::<OrderTable>(), 64);
    }
}
