//! Delivery accounting shared by every user of one process: the stamp embedded in sent typing
//! events and messages, the table of read sends, the privacy flags receivers check for leaks, and
//! the [`DeliveryTracker`] that turns receipts into exact counts of lost, duplicated and
//! undetermined deliveries in bounded memory.
//!
//! The rule (exact against a correct server, never a false loss under faults):
//! - A send is expected at a member of its channel only when that member was *certainly*
//!   watching when the send left: its watch call had been answered (so the server had registered
//!   it before it saw the send) on the connection it still holds. Typing and read events are not
//!   expected back at their own sender (servers differ); messages are. A typing or read send
//!   that the sender's privacy suppresses is expected nowhere.
//! - An expected delivery that never arrived is **lost** only when the receiver was connected and
//!   watching for the whole window in which the server should have delivered it: it heard from the
//!   server on that same connection at least [`GRACE`] after the send was answered (frames on one
//!   connection arrive in order, so a later frame proves the event was not just slow). Otherwise
//!   (the connection ended or went silent inside the window, or the send itself failed) it is
//!   **undetermined**, counted apart.
//! - A receiver that gets the same send twice is a **duplicate**, whoever it is.
//!
//! Every send takes a global sequence number and a slot in a ring of recent sends holding one bit
//! per member of its channel for "expected" and one for "received"; a slot is settled when the
//! ring wraps onto it or at [`DeliveryTracker::finish`]. Receipts of sends already settled are
//! counted as late (neither lost nor duplicated).
//!
//! Each receipt says what it was ([`Receipt`]), per-receiver totals are kept, and the first proven
//! loss is remembered ([`LostDelivery`]), so a load run reports duplicates, losses and reorders as
//! conformance failures with evidence (DELIVERY-ONCE, DELIVERY-EVERY-WATCHER, DELIVERY-ORDER).

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The key carrying a stamp inside typing events and message custom fields.
pub const STAMP_KEY: &str = "chatstorm";

/// How long after a send was answered a correct server has to deliver it: a receiver heard from
/// later than this on the same connection, without the event, counts it as lost. Generous on
/// purpose (a server that fans out asynchronously may lag its REST answers by seconds); the
/// measured `delivery.*` latencies show how fast it really was.
pub const GRACE_US: u64 = 5_000_000;
/// [`GRACE_US`] as a duration, for docs and reports.
pub const GRACE: std::time::Duration = std::time::Duration::from_micros(GRACE_US);

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

/// One receipt as judged by the tracker, for the conformance hooks (`UserObserver::on_receipt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Typing, read or message.
    pub kind: Kind,
    /// The send's global sequence.
    pub seq: u64,
    /// Sender index.
    pub sender: u32,
    /// Receiver index.
    pub receiver: u32,
    /// Channel index.
    pub channel: u32,
    /// The receiver had already received this send.
    pub duplicate: bool,
    /// It arrived after a later send of the same sender and kind (never judged for reads).
    pub out_of_order: bool,
}

/// What [`DeliveryTracker::receipt`] made of one receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The first receipt of the send at this receiver.
    Fresh,
    /// A repeat of a receipt this receiver already had.
    Duplicate,
    /// Expected nowhere (the sender's privacy was off).
    Leak(Leak),
    /// Not judged: the sender's own typing or read, or a send already settled.
    Ignored,
}

/// The first delivery the tracker proved lost, for evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostDelivery {
    /// Typing, read or message.
    pub kind: Kind,
    /// The send's global sequence.
    pub seq: u64,
    /// Sender index.
    pub sender: u32,
    /// Receiver index.
    pub receiver: u32,
    /// Channel index.
    pub channel: u32,
    /// When it was sent and answered, and when the receiver last heard from the server on the
    /// connection that should have had it (µs since the run start).
    pub sent_us: u64,
    /// See `sent_us`.
    pub answered_us: u64,
    /// See `sent_us`.
    pub heard_us: u64,
}

const RING: usize = 1 << 15;
/// Read sends remembered per (channel, reader), to match `message.read` receipts (which carry no
/// stamp) to the right send.
const READS_KEPT: usize = 4;
/// `t_done` of a send that failed or was abandoned: its misses are undetermined.
const FAILED: u64 = u64::MAX;

/// Totals of a tracker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryTotals {
    /// Stamped sends.
    pub sent: u64,
    /// Receipts matched to a send (each receiver counted once per send).
    pub received: u64,
    /// Expected receipts that provably never came.
    pub lost: u64,
    /// Receipts of a send a receiver had already received.
    pub duplicated: u64,
    /// Expected receipts that did not come and cannot be called lost (see the module docs).
    pub undetermined: u64,
    /// Receipts of sends already settled (no longer matched).
    pub late: u64,
    /// Privacy leaks.
    pub leaks: u64,
}

/// A `Box<[AtomicU64]>` of zeros, allocated zeroed so that untouched pages cost no memory.
fn zeroed(n: usize) -> Box<[AtomicU64]> {
    let v: Box<[u64]> = vec![0u64; n].into_boxed_slice();
    // SAFETY: AtomicU64 has the same size, alignment and bit validity as u64.
    unsafe { Box::from_raw(Box::into_raw(v) as *mut [AtomicU64]) }
}

/// One send's slot: who sent what where and when, then one expected and one received bit per
/// member of the channel (in `DeliveryTracker::bits`).
struct Slot {
    /// `seq + 1` of the send occupying the slot (0 = empty).
    id: AtomicU64,
    /// `kind | channel << 8`.
    what: AtomicU64,
    /// Sender index.
    sender: AtomicU64,
    /// Send time, µs since the run start.
    t_issue: AtomicU64,
    /// When the server answered the send, µs + 1 (0: not yet; [`FAILED`]: failed).
    t_done: AtomicU64,
}

/// The read sends last remembered for one (channel, reader): (sent at in µs, stamp), newest first.
type RecentReads = [(u64, u64); READS_KEPT];

/// Shared by all users of a process (one per `UserCtx`).
pub struct DeliveryTracker {
    next_seq: AtomicU64,
    ring: Box<[Slot]>,
    /// `RING × words × 2` bits: expected then received, per slot.
    bits: Box<[AtomicU64]>,
    words: usize,
    channels: HashMap<Box<str>, u32>,
    users: HashMap<Box<str>, u32>,
    /// Member positions of channel `c` are `member_base[c]..member_base[c + 1]`.
    member_base: Box<[u32]>,
    /// The user at each member position.
    member_user: Box<[u32]>,
    /// The channels of user `u` are `user_member[user_base[u]..user_base[u + 1]]`, each the flat
    /// member position (channel found through `member_channel`).
    user_base: Box<[u32]>,
    user_member: Box<[u32]>,
    member_channel: Box<[u32]>,
    /// Per member position: certainly watching since µs + 1 (0: not watching).
    since: Box<[AtomicU64]>,
    /// Per member position: the last ended watch: its `since`, its end, and when its connection
    /// last heard from the server (all µs + 1).
    ended_since: Box<[AtomicU64]>,
    ended_at: Box<[AtomicU64]>,
    ended_heard: Box<[AtomicU64]>,
    /// Per user: when its current connection last heard from the server, µs + 1.
    heard: Box<[AtomicU64]>,
    typing_off_since: Box<[AtomicU64]>,
    read_off_since: Box<[AtomicU64]>,
    reads: Mutex<HashMap<(u32, u32), RecentReads>>,
    lost: AtomicU64,
    duplicated: AtomicU64,
    undetermined: AtomicU64,
    received: AtomicU64,
    late: AtomicU64,
    leaks: AtomicU64,
    /// The first proven loss (taken once, when `lost` leaves zero).
    first_lost: Mutex<Option<LostDelivery>>,
    /// Per receiver: first receipts and proven losses, so the conformance totals can be filed
    /// under each receiver's profile.
    received_by: Box<[AtomicU64]>,
    lost_by: Box<[AtomicU64]>,
}

impl DeliveryTracker {
    /// A tracker for the given user ids and channel cids (their positions are the indices) where
    /// every user is a member of every channel (tests and small rigs).
    pub fn new(user_ids: &[String], cids: &[String]) -> Self {
        let all: Vec<u32> = (0..cids.len() as u32).collect();
        let memberships: Vec<Vec<u32>> = user_ids.iter().map(|_| all.clone()).collect();
        Self::with_members(user_ids, cids, &memberships)
    }

    /// A tracker where user `u` is a member of the channels `memberships[u]` (indices into `cids`).
    pub fn with_members(user_ids: &[String], cids: &[String], memberships: &[Vec<u32>]) -> Self {
        let users = user_ids.len();
        let mut per_channel: Vec<Vec<u32>> = vec![Vec::new(); cids.len()];
        for (u, chans) in memberships.iter().enumerate().take(users) {
            for &c in chans {
                if let Some(list) = per_channel.get_mut(c as usize)
                    && !list.contains(&(u as u32))
                {
                    list.push(u as u32);
                }
            }
        }
        let mut member_base = Vec::with_capacity(cids.len() + 1);
        let mut member_user = Vec::new();
        let mut member_channel = Vec::new();
        for (c, list) in per_channel.iter().enumerate() {
            member_base.push(member_user.len() as u32);
            member_user.extend_from_slice(list);
            member_channel.extend(std::iter::repeat_n(c as u32, list.len()));
        }
        member_base.push(member_user.len() as u32);
        let mut of_user: Vec<Vec<u32>> = vec![Vec::new(); users];
        for (pos, &u) in member_user.iter().enumerate() {
            of_user[u as usize].push(pos as u32);
        }
        let mut user_base = Vec::with_capacity(users + 1);
        let mut user_member = Vec::new();
        for list in &of_user {
            user_base.push(user_member.len() as u32);
            user_member.extend_from_slice(list);
        }
        user_base.push(user_member.len() as u32);
        let widest = per_channel.iter().map(Vec::len).max().unwrap_or(0);
        let words = widest.div_ceil(64).max(1);
        let members = member_user.len();
        Self {
            next_seq: AtomicU64::new(0),
            ring: (0..RING)
                .map(|_| Slot {
                    id: AtomicU64::new(0),
                    what: AtomicU64::new(0),
                    sender: AtomicU64::new(0),
                    t_issue: AtomicU64::new(0),
                    t_done: AtomicU64::new(0),
                })
                .collect(),
            bits: zeroed(RING * words * 2),
            words,
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
            member_base: member_base.into(),
            member_user: member_user.into(),
            user_base: user_base.into(),
            user_member: user_member.into(),
            member_channel: member_channel.into(),
            since: zeroed(members),
            ended_since: zeroed(members),
            ended_at: zeroed(members),
            ended_heard: zeroed(members),
            heard: zeroed(users),
            typing_off_since: zeroed(users),
            read_off_since: zeroed(users),
            reads: Mutex::new(HashMap::new()),
            lost: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            undetermined: AtomicU64::new(0),
            received: AtomicU64::new(0),
            late: AtomicU64::new(0),
            leaks: AtomicU64::new(0),
            first_lost: Mutex::new(None),
            received_by: zeroed(users),
            lost_by: zeroed(users),
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

    /// The flat member position of `user` in `channel`.
    fn member(&self, user: u32, channel: u32) -> Option<usize> {
        let u = user as usize;
        let (a, b) = (*self.user_base.get(u)?, *self.user_base.get(u + 1)?);
        self.user_member[a as usize..b as usize]
            .iter()
            .map(|&p| p as usize)
            .find(|&p| self.member_channel[p] == channel)
    }

    /// The member positions of `channel`.
    fn members(&self, channel: u32) -> std::ops::Range<usize> {
        let c = channel as usize;
        match (self.member_base.get(c), self.member_base.get(c + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        }
    }

    /// `user`'s watch of `channel` was answered at `now_us` on its live connection: from now on
    /// sends on the channel are expected at it.
    pub fn watch_started(&self, user: u32, channel: u32, now_us: u64) {
        if let Some(p) = self.member(user, channel) {
            let _ = self.since[p].compare_exchange(0, now_us + 1, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// `user`'s connection ended at `now_us` (dropped, closed, stopped): its watches end, with
    /// when it last heard from the server on that connection.
    pub fn connection_ended(&self, user: u32, now_us: u64) {
        let u = user as usize;
        let (Some(&a), Some(&b)) = (self.user_base.get(u), self.user_base.get(u + 1)) else {
            return;
        };
        let heard = self.heard[u].swap(0, Ordering::AcqRel);
        for &p in &self.user_member[a as usize..b as usize] {
            let p = p as usize;
            let since = self.since[p].load(Ordering::Acquire);
            if since == 0 {
                continue;
            }
            self.ended_since[p].store(since, Ordering::Release);
            self.ended_at[p].store(now_us + 1, Ordering::Release);
            self.ended_heard[p].store(heard, Ordering::Release);
            self.since[p].store(0, Ordering::Release);
        }
    }

    /// `user` heard from the server at `now_us` on its live connection (any frame or poll answer).
    pub fn heard(&self, user: u32, now_us: u64) {
        if let Some(h) = self.heard.get(user as usize) {
            h.store(now_us + 1, Ordering::Relaxed);
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

    fn slot_bits(&self, slot: usize) -> (&[AtomicU64], &[AtomicU64]) {
        let base = slot * self.words * 2;
        let all = &self.bits[base..base + self.words * 2];
        all.split_at(self.words)
    }

    /// Starts a stamped send by `user` on `channel` at `now_us` (before the request leaves); for
    /// reads, also remembers the send in the read table.
    pub fn send(&self, kind: Kind, user: u32, channel: u32, now_us: u64) -> Stamp {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let i = (seq as usize) % RING;
        let slot = &self.ring[i];
        let old = slot.id.swap(0, Ordering::AcqRel);
        if old != 0 {
            self.settle(i);
        }
        let (expected, received) = self.slot_bits(i);
        for w in received {
            w.store(0, Ordering::Relaxed);
        }
        let suppressed = self.off_since(kind, user).is_some();
        let members = self.members(channel);
        let first = members.start;
        let mut bits = vec![0u64; self.words];
        if !suppressed {
            for p in members {
                let since = self.since[p].load(Ordering::Acquire);
                let own = self.member_user[p] == user;
                if since == 0 || since > now_us + 1 || (own && kind != Kind::Message) {
                    continue;
                }
                let k = p - first;
                bits[k / 64] |= 1 << (k % 64);
            }
        }
        for (word, v) in expected.iter().zip(bits) {
            word.store(v, Ordering::Relaxed);
        }
        slot.what
            .store(kind as u64 | (u64::from(channel) << 8), Ordering::Relaxed);
        slot.sender.store(u64::from(user), Ordering::Relaxed);
        slot.t_issue.store(now_us, Ordering::Relaxed);
        slot.t_done.store(0, Ordering::Relaxed);
        slot.id.store(seq + 1, Ordering::Release);
        if kind == Kind::Read
            && let Ok(mut r) = self.reads.lock()
        {
            let h = r.entry((channel, user)).or_insert([(0, u64::MAX); READS_KEPT]);
            h.rotate_right(1);
            h[0] = (now_us, seq);
        }
        Stamp {
            t_us: now_us,
            seq,
            user,
        }
    }

    /// The server answered send `seq` at `now_us` (`ok`: with success). A failed or unanswered send
    /// may or may not have been delivered: its misses are undetermined.
    pub fn answered(&self, seq: u64, ok: bool, now_us: u64) {
        let slot = &self.ring[(seq as usize) % RING];
        if slot.id.load(Ordering::Acquire) == seq + 1 {
            slot.t_done
                .store(if ok { now_us + 1 } else { FAILED }, Ordering::Release);
        }
    }

    /// Books the misses of slot `i` as lost or undetermined (see the module docs).
    fn settle(&self, i: usize) {
        let slot = &self.ring[i];
        let channel = (slot.what.load(Ordering::Acquire) >> 8) as u32;
        let t_issue = slot.t_issue.load(Ordering::Acquire);
        let t_done = slot.t_done.load(Ordering::Acquire);
        let first = self.members(channel).start;
        let (expected, received) = self.slot_bits(i);
        let (mut lost, mut undetermined) = (0u64, 0u64);
        let mut first_loss: Option<LostDelivery> = None;
        for w in 0..self.words {
            let mut missing = expected[w].load(Ordering::Acquire) & !received[w].load(Ordering::Acquire);
            while missing != 0 {
                let k = w * 64 + missing.trailing_zeros() as usize;
                missing &= missing - 1;
                let p = first + k;
                if t_done == 0 || t_done == FAILED || p >= self.member_user.len() {
                    undetermined += 1;
                    continue;
                }
                // Heard from on the connection that held the watch at the send, after the window?
                let deadline = t_done + GRACE_US;
                let since = self.since[p].load(Ordering::Acquire);
                let heard = if since != 0 && since <= t_issue + 1 {
                    self.heard[self.member_user[p] as usize].load(Ordering::Acquire)
                } else {
                    let ended_since = self.ended_since[p].load(Ordering::Acquire);
                    let ended_at = self.ended_at[p].load(Ordering::Acquire);
                    if ended_since != 0 && ended_since <= t_issue + 1 && ended_at > t_issue + 1 {
                        self.ended_heard[p].load(Ordering::Acquire)
                    } else {
                        0
                    }
                };
                if heard >= deadline {
                    lost += 1;
                    if let Some(n) = self.lost_by.get(self.member_user[p] as usize) {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    if first_loss.is_none() {
                        let what = slot.what.load(Ordering::Acquire);
                        first_loss = Some(LostDelivery {
                            kind: match what & 0xFF {
                                0 => Kind::Typing,
                                1 => Kind::Read,
                                _ => Kind::Message,
                            },
                            seq: slot.id.load(Ordering::Acquire).saturating_sub(1),
                            sender: slot.sender.load(Ordering::Acquire) as u32,
                            receiver: self.member_user[p],
                            channel,
                            sent_us: t_issue,
                            answered_us: t_done - 1,
                            heard_us: heard - 1,
                        });
                    }
                } else {
                    undetermined += 1;
                }
            }
        }
        if self.lost.fetch_add(lost, Ordering::Relaxed) == 0
            && let Some(f) = first_loss
            && let Ok(mut g) = self.first_lost.lock()
            && g.is_none()
        {
            *g = Some(f);
        }
        self.undetermined.fetch_add(undetermined, Ordering::Relaxed);
    }

    /// One line of evidence for a lost delivery.
    pub fn describe_lost(&self, l: &LostDelivery) -> String {
        let what = match l.kind {
            Kind::Typing => "typing.start",
            Kind::Read => "message.read",
            Kind::Message => "message.new",
        };
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "{what} #{} from {} on {} never reached {}: sent at {:.0} ms, answered at {:.0} ms, the receiver heard from the server on the same connection at {:.0} ms (over {} s later) without it",
            l.seq,
            self.user_name(l.sender).unwrap_or("?"),
            self.channel_name(l.channel).unwrap_or("?"),
            self.user_name(l.receiver).unwrap_or("?"),
            ms(l.sent_us),
            ms(l.answered_us),
            ms(l.heard_us),
            GRACE.as_secs(),
        )
    }

    /// How many users the tracker knows (indices `0..n`).
    pub fn user_count(&self) -> u32 {
        self.received_by.len() as u32
    }

    /// `(received, lost)` of receiver `user`: first receipts and proven losses.
    pub fn by_receiver(&self, user: u32) -> (u64, u64) {
        let get = |t: &[AtomicU64]| t.get(user as usize).map_or(0, |n| n.load(Ordering::Relaxed));
        (get(&self.received_by), get(&self.lost_by))
    }

    /// The first delivery proven lost, if any.
    pub fn first_lost(&self) -> Option<LostDelivery> {
        self.first_lost.lock().ok().and_then(|g| *g)
    }

    /// The id of user `index` (a linear search: for evidence only).
    pub fn user_name(&self, index: u32) -> Option<&str> {
        self.users.iter().find(|(_, i)| **i == index).map(|(k, _)| &**k)
    }

    /// The cid of channel `index` (a linear search: for evidence only).
    pub fn channel_name(&self, index: u32) -> Option<&str> {
        self.channels.iter().find(|(_, i)| **i == index).map(|(k, _)| &**k)
    }

    /// The stamp a `message.read` from `reader` on `channel` received by `receiver` answers (the
    /// event carries no stamp). Among the reader's remembered reads there, on the receiver's
    /// current connection (issued after its watch was answered): the oldest one expected at the
    /// receiver and not yet received (a server delivers one channel's events in order); else the
    /// oldest not yet received; else the newest (then a duplicate: the receiver got more reads
    /// than were sent). A read expected on an earlier connection of the receiver is never taken:
    /// it went to, or was lost with, that connection. The reader's own copy (a server may echo a
    /// read to its sender) answers the reader's newest read: its reads are never expected at
    /// itself, so "oldest not yet received" would pick a read long past and time the echo from it.
    pub fn read_stamp(&self, channel: u32, reader: u32, receiver: u32) -> Option<Stamp> {
        let hist = *self.reads.lock().ok()?.get(&(channel, reader))?;
        if receiver == reader {
            let (t_us, seq) = hist[0];
            return (seq != u64::MAX).then_some(Stamp {
                t_us,
                seq,
                user: reader,
            });
        }
        let member = self.member(receiver, channel);
        let since = member.map_or(0, |p| self.since[p].load(Ordering::Acquire));
        let k = member.map(|p| p - self.members(channel).start);
        // Oldest first; each with (expected, received) at the receiver when its slot is live.
        let state = |seq: u64| -> Option<(bool, bool)> {
            let i = (seq as usize) % RING;
            let k = k?;
            if self.ring[i].id.load(Ordering::Acquire) != seq + 1 || k / 64 >= self.words {
                return None;
            }
            let (expected, received) = self.slot_bits(i);
            let bit = 1u64 << (k % 64);
            Some((
                expected[k / 64].load(Ordering::Acquire) & bit != 0,
                received[k / 64].load(Ordering::Acquire) & bit != 0,
            ))
        };
        let current = hist
            .iter()
            .rev()
            .copied()
            .filter(|&(t, seq)| seq != u64::MAX && (since == 0 || t + 1 >= since))
            .filter_map(|(t, seq)| state(seq).map(|st| ((t, seq), st)));
        let mut first_unreceived = None;
        for (read, (expected, received)) in current {
            if expected && !received {
                return Some(Stamp {
                    t_us: read.0,
                    seq: read.1,
                    user: reader,
                });
            }
            if !received && first_unreceived.is_none() {
                first_unreceived = Some(read);
            }
        }
        let (t_us, seq) = first_unreceived.unwrap_or(hist[0]);
        (seq != u64::MAX).then_some(Stamp {
            t_us,
            seq,
            user: reader,
        })
    }

    /// Books one receipt; returns a leak when the sender's privacy was off at send time.
    ///
    /// Only typing is judged for leaks here: a typing event carries its own stamp, so its send time
    /// is exact. A `message.read` carries none, so a late receipt of a read sent while receipts
    /// were on cannot be told from a leak; read privacy is proven by the conformance rules
    /// PRIVACY-READ-OFF and PRIVACY-TOGGLE instead.
    pub fn receive(&self, kind: Kind, stamp: Stamp, receiver: u32, channel: u32) -> Option<Leak> {
        match self.receipt(kind, stamp, receiver, channel) {
            Receipt::Leak(l) => Some(l),
            _ => None,
        }
    }

    /// [`DeliveryTracker::receive`], saying what the receipt was.
    pub fn receipt(&self, kind: Kind, stamp: Stamp, receiver: u32, channel: u32) -> Receipt {
        if kind == Kind::Typing && self.off_since(kind, stamp.user).is_some_and(|off| stamp.t_us >= off) {
            // Expected nowhere: a leak, not a duplicate.
            self.leaks.fetch_add(1, Ordering::Relaxed);
            return Receipt::Leak(Leak {
                kind,
                sender: stamp.user,
                receiver,
                channel,
            });
        }
        if kind != Kind::Message && receiver == stamp.user {
            // A sender's own typing or read: servers differ on echoing them; neither expected nor
            // counted.
            return Receipt::Ignored;
        }
        let i = (stamp.seq as usize) % RING;
        let slot = &self.ring[i];
        let Some(k) = self.member(receiver, channel).map(|p| p - self.members(channel).start) else {
            self.late.fetch_add(1, Ordering::Relaxed);
            return Receipt::Ignored;
        };
        if slot.id.load(Ordering::Acquire) != stamp.seq + 1 || k / 64 >= self.words {
            self.late.fetch_add(1, Ordering::Relaxed);
            return Receipt::Ignored;
        }
        let (_, received) = self.slot_bits(i);
        let bit = 1u64 << (k % 64);
        if received[k / 64].fetch_or(bit, Ordering::AcqRel) & bit != 0 {
            self.duplicated.fetch_add(1, Ordering::Relaxed);
            Receipt::Duplicate
        } else {
            self.received.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = self.received_by.get(receiver as usize) {
                n.fetch_add(1, Ordering::Relaxed);
            }
            Receipt::Fresh
        }
    }

    /// Settles every send still in the ring (end of run, after every user ended) and returns the
    /// totals.
    pub fn finish(&self) -> DeliveryTotals {
        for i in 0..RING {
            if self.ring[i].id.swap(0, Ordering::AcqRel) != 0 {
                self.settle(i);
            }
        }
        self.totals()
    }

    /// [`DeliveryTracker::finish`], adding lost, duplicated and undetermined deliveries to the
    /// recorder.
    pub fn finish_into(&self, rec: &super::record::Recorder) -> DeliveryTotals {
        use super::record::Counter;
        let t = self.finish();
        rec.count_n(Counter::EventsLost, t.lost);
        rec.count_n(Counter::EventsDuplicated, t.duplicated);
        rec.count_n(Counter::EventsUndetermined, t.undetermined);
        t
    }

    /// The totals so far (sends still in the ring are not yet settled).
    pub fn totals(&self) -> DeliveryTotals {
        DeliveryTotals {
            sent: self.next_seq.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            undetermined: self.undetermined.load(Ordering::Relaxed),
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

    /// Users 0..n watch channel `ch` from `at` and are heard from at `heard`.
    fn watch(t: &DeliveryTracker, users: std::ops::Range<u32>, ch: u32, at: u64, heard: u64) {
        for u in users {
            t.watch_started(u, ch, at);
            t.heard(u, heard);
        }
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
    fn a_correct_server_gives_exactly_zero_lost_and_duplicated() {
        let t = tracker();
        watch(&t, 0..4, 0, 10, 20_000_000);
        let m = t.send(Kind::Message, 1, 0, 100);
        t.answered(m.seq, true, 200);
        let y = t.send(Kind::Typing, 2, 0, 300);
        t.answered(y.seq, true, 400);
        for r in 0..4 {
            t.receive(Kind::Message, m, r, 0);
            if r != 2 {
                t.receive(Kind::Typing, y, r, 0);
            }
        }
        let tot = t.finish();
        assert_eq!(
            (tot.sent, tot.received, tot.lost, tot.duplicated, tot.undetermined),
            (2, 7, 0, 0, 0)
        );
    }

    #[test]
    fn a_miss_is_lost_only_when_the_receiver_was_heard_from_after_the_window() {
        let t = tracker();
        watch(&t, 0..4, 0, 10, 0);
        t.heard(1, 100 + GRACE_US + 50); // heard after the window: provably lost
        t.heard(2, 150); // silent since: undetermined
        let m = t.send(Kind::Message, 0, 0, 100);
        t.answered(m.seq, true, 100);
        t.connection_ended(3, 120); // dropped inside the window: undetermined
        t.receive(Kind::Message, m, 0, 0);
        let tot = t.finish();
        assert_eq!(
            (tot.received, tot.lost, tot.undetermined, tot.duplicated),
            (1, 1, 2, 0),
            "{tot:?}"
        );
    }

    #[test]
    fn a_clean_end_after_the_window_still_proves_a_loss() {
        let t = tracker();
        watch(&t, 0..2, 0, 10, 0);
        let m = t.send(Kind::Message, 0, 0, 100);
        t.answered(m.seq, true, 100);
        t.receive(Kind::Message, m, 0, 0);
        t.heard(1, 100 + GRACE_US + 1);
        t.connection_ended(1, 100 + GRACE_US + 10);
        // Watching again later does not hide the earlier connection's loss.
        t.watch_started(1, 0, 100 + GRACE_US + 20);
        let tot = t.finish();
        assert_eq!((tot.lost, tot.undetermined), (1, 0), "{tot:?}");
    }

    #[test]
    fn same_receipt_twice_is_a_duplicate_and_unwatched_receivers_expect_nothing() {
        let t = tracker();
        watch(&t, 0..1, 0, 10, 0);
        let m = t.send(Kind::Message, 0, 0, 100);
        t.answered(m.seq, true, 100);
        t.receive(Kind::Message, m, 0, 0);
        t.receive(Kind::Message, m, 0, 0);
        // User 3 never watched: its receipt is neither expected nor a duplicate the first time.
        t.receive(Kind::Message, m, 3, 0);
        let tot = t.finish();
        assert_eq!(
            (tot.received, tot.duplicated, tot.lost, tot.undetermined),
            (2, 1, 0, 0),
            "{tot:?}"
        );
    }

    #[test]
    fn failed_sends_and_watches_started_after_the_send_are_never_lost() {
        let t = tracker();
        watch(&t, 0..2, 0, 10, u64::MAX / 2);
        let a = t.send(Kind::Message, 0, 0, 100);
        t.answered(a.seq, false, 200);
        t.watch_started(2, 0, 150);
        let b = t.send(Kind::Message, 0, 0, 120);
        t.answered(b.seq, true, 130);
        t.receive(Kind::Message, b, 0, 0);
        t.receive(Kind::Message, b, 1, 0);
        let tot = t.finish();
        assert_eq!((tot.lost, tot.undetermined), (0, 2), "{tot:?}");
    }

    #[test]
    fn privacy_off_receipts_are_leaks_and_expect_nothing() {
        let t = tracker();
        watch(&t, 0..4, 1, 10, u64::MAX / 2);
        t.set_privacy(2, Some(false), None, 100);
        let before = Stamp {
            t_us: 50,
            seq: 0,
            user: 2,
        };
        assert_eq!(t.receive(Kind::Typing, before, 0, 1), None, "sent before the switch");
        let s = t.send(Kind::Typing, 2, 1, 200);
        t.answered(s.seq, true, 210);
        let leak = t.receive(Kind::Typing, s, 0, 1).unwrap();
        assert_eq!((leak.sender, leak.receiver, leak.kind), (2, 0, Kind::Typing));
        let r = t.send(Kind::Read, 3, 1, 300);
        t.answered(r.seq, true, 310);
        let tot = t.finish();
        assert_eq!(
            (tot.leaks, tot.lost, tot.duplicated),
            (1, 3, 0),
            "the read expected 3 (not its own reader), got 0"
        );
    }

    #[test]
    fn reads_match_the_oldest_pending_read_of_the_reader() {
        let t = tracker();
        watch(&t, 0..2, 0, 10, u64::MAX / 2);
        let r1 = t.send(Kind::Read, 0, 0, 100);
        let r2 = t.send(Kind::Read, 0, 0, 101);
        t.answered(r1.seq, true, 102);
        t.answered(r2.seq, true, 103);
        let first = t.read_stamp(0, 0, 1).unwrap();
        assert_eq!(first, r1);
        t.receive(Kind::Read, first, 1, 0);
        let second = t.read_stamp(0, 0, 1).unwrap();
        assert_eq!(second, r2);
        t.receive(Kind::Read, second, 1, 0);
        let tot = t.finish();
        assert_eq!((tot.lost, tot.duplicated, tot.received), (0, 0, 2), "{tot:?}");
    }

    #[test]
    fn the_readers_own_copy_answers_its_newest_read() {
        let t = tracker();
        watch(&t, 0..2, 0, 10, u64::MAX / 2);
        let r1 = t.send(Kind::Read, 0, 0, 100);
        t.answered(r1.seq, true, 101);
        let r2 = t.send(Kind::Read, 0, 0, 40_000_000);
        // Before the fix the echo was matched to r1 (never expected at the reader, so never
        // received) and timed as 40 s late.
        assert_eq!(t.read_stamp(0, 0, 0), Some(r2));
        assert_eq!(t.receive(Kind::Read, r2, 0, 0), None);
        assert_eq!(t.read_stamp(0, 0, 0), Some(r2), "every echo answers the newest read");
    }

    #[test]
    fn a_read_lost_with_an_old_connection_does_not_shift_the_later_ones() {
        let t = tracker();
        watch(&t, 0..2, 0, 10, 0);
        let r1 = t.send(Kind::Read, 0, 0, 100); // receiver 1's connection is already gone server-side
        t.answered(r1.seq, true, 101);
        t.connection_ended(1, 150);
        t.watch_started(1, 0, 200);
        let r2 = t.send(Kind::Read, 0, 0, 300);
        t.answered(r2.seq, true, 301);
        assert_eq!(t.read_stamp(0, 0, 1), Some(r2), "r1 belongs to the old connection");
        t.receive(Kind::Read, r2, 1, 0);
        // The reader's own read receipt is not counted either way.
        t.receive(Kind::Read, r2, 0, 0);
        let tot = t.finish();
        assert_eq!(
            (tot.lost, tot.duplicated, tot.undetermined, tot.received),
            (0, 0, 1, 1),
            "{tot:?}"
        );
    }

    #[test]
    fn membership_limits_the_expected_receivers() {
        let users: Vec<String> = (0..3).map(|i| format!("u{i}")).collect();
        let cids = vec!["messaging:a".to_owned(), "messaging:b".to_owned()];
        let t = DeliveryTracker::with_members(&users, &cids, &[vec![0], vec![0, 1], vec![1]]);
        for u in 0..3 {
            for c in 0..2 {
                t.watch_started(u, c, 1);
            }
            t.heard(u, u64::MAX / 2);
        }
        let m = t.send(Kind::Message, 1, 1, 10);
        t.answered(m.seq, true, 11);
        let tot = t.finish();
        assert_eq!(tot.lost, 2, "users 1 and 2 are the members of b: {tot:?}");
    }

    #[test]
    fn receipts_say_what_they_were_and_the_first_loss_is_kept_as_evidence() {
        let t = tracker();
        watch(&t, 0..3, 0, 10, 0);
        let m = t.send(Kind::Message, 0, 0, 100);
        t.answered(m.seq, true, 200);
        assert_eq!(t.receipt(Kind::Message, m, 1, 0), Receipt::Fresh);
        assert_eq!(t.receipt(Kind::Message, m, 1, 0), Receipt::Duplicate);
        let y = t.send(Kind::Typing, 0, 0, 300);
        assert_eq!(t.receipt(Kind::Typing, y, 0, 0), Receipt::Ignored, "own typing");
        t.receive(Kind::Message, m, 0, 0);
        t.heard(2, 200 + GRACE_US + 1);
        assert_eq!(t.first_lost(), None);
        t.finish();
        let l = t.first_lost().expect("user 2 never got the message");
        assert_eq!((t.by_receiver(1), t.by_receiver(2)), ((1, 0), (0, 1)));
        assert_eq!(
            (l.kind, l.seq, l.sender, l.receiver, l.channel),
            (Kind::Message, m.seq, 0, 2, 0)
        );
        let text = t.describe_lost(&l);
        assert!(
            text.contains("message.new #0 from u0 on messaging:a never reached u2"),
            "{text}"
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
