//! Owns `App`, the state every handler shares (config, world, faults, stats), and the operations
//! that change who is connected and watching: registering and removing connections, watching and
//! unwatching channels, and delivering serialized events to connections without ever blocking.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::MockConfig;
use crate::conn::{Conn, ConnId, ConnIdGen, Pushed, Transport};
use crate::fault::{Faults, Violation};
use crate::journal::Journal;
use crate::ratelimit::RateLimiter;
use crate::stats::Stats;
use crate::wire;
use crate::world::{Channel, UserRec, World};

/// The shared state of one server.
#[derive(Debug)]
pub struct App {
    pub cfg: MockConfig,
    pub world: Mutex<World>,
    pub faults: Faults,
    pub stats: Stats,
    pub ids: ConnIdGen,
    pub started: Instant,
    pub shutdown: CancellationToken,
    pub rate: RateLimiter,
    /// Every connection task, so shutdown can wait for their close frames.
    pub tasks: TaskTracker,
    /// Opt-in record of what clients sent (tests).
    pub journal: Journal,
}

impl App {
    pub fn new(cfg: MockConfig, shutdown: CancellationToken) -> Self {
        App {
            rate: RateLimiter::new(cfg.rate_limit),
            cfg,
            world: Mutex::new(World::default()),
            faults: Faults::default(),
            stats: Stats::default(),
            ids: ConnIdGen::new(),
            started: Instant::now(),
            shutdown,
            tasks: TaskTracker::new(),
            journal: Journal::default(),
        }
    }

    /// The world lock. A poisoned lock is taken over: handlers never leave the world half-changed
    /// across a panic point, and one bad request must not stop the server.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ms_since_start(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn violation(&self, v: Violation) -> bool {
        self.faults.is_on(v)
    }

    /// The `me` of a new connection's first `health.check` (WebSocket and long-poll alike): the
    /// stored own user, or none when the `omit_me` violation is on.
    pub fn first_me(&self, user: &str) -> Option<Box<RawValue>> {
        (!self.violation(Violation::OmitMe)).then(|| {
            self.world()
                .users
                .get(user)
                .map_or_else(|| RawValue::NULL.to_owned(), UserRec::me_raw)
        })
    }

    /// Queues one serialized event on each connection. Never blocks: a full WebSocket outbox marks
    /// that connection as a slow consumer, a full long-poll buffer drops its oldest event.
    pub fn deliver(&self, conns: &[Arc<Conn>], frame: &Utf8Bytes) {
        self.deliver_each(conns.iter(), frame);
    }

    /// [`App::deliver`] over any walk of the receivers, so a fan-out under the world lock pushes
    /// straight from the channel's watcher map without collecting it first. Cost: one queue push
    /// per receiver, and the frame's bytes are shared, not copied.
    pub fn deliver_each<'a>(&self, conns: impl Iterator<Item = &'a Arc<Conn>>, frame: &Utf8Bytes) {
        let mangle = self.faults.mangles_delivery();
        for c in conns {
            if mangle {
                self.deliver_mangled(c, frame);
            } else {
                self.push_one(c, frame.clone());
            }
        }
    }

    fn push_one(&self, c: &Conn, frame: Utf8Bytes) {
        let limit = match c.transport {
            Transport::WebSocket => self.cfg.outbox_limit,
            Transport::LongPoll => self.cfg.longpoll_buffer,
        };
        match c.push(frame, limit) {
            Pushed::Queued => Stats::bump(&self.stats.events_queued),
            Pushed::DroppedOldest => {
                Stats::bump(&self.stats.events_queued);
                Stats::bump(&self.stats.longpoll_events_dropped);
            }
            Pushed::Overflow => Stats::bump(&self.stats.slow_consumers_dropped),
            Pushed::Closed => {}
        }
    }

    /// One push under the `drop_deliveries`, `reorder_deliveries` or `deliver_twice` violation.
    fn deliver_mangled(&self, c: &Conn, frame: &Utf8Bytes) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.violation(Violation::DropDeliveries) && self.faults.delivery_count.fetch_add(1, Relaxed) % 2 == 1 {
            return;
        }
        let times = if self.violation(Violation::DeliverTwice) { 2 } else { 1 };
        if self.violation(Violation::ReorderDeliveries) {
            let mut held = self.faults.held.lock().unwrap_or_else(|e| e.into_inner());
            match held.remove(&c.id.0) {
                None => {
                    held.insert(c.id.0, frame.clone());
                }
                Some(earlier) => {
                    drop(held);
                    for _ in 0..times {
                        self.push_one(c, frame.clone());
                    }
                    for _ in 0..times {
                        self.push_one(c, earlier.clone());
                    }
                }
            }
            return;
        }
        for _ in 0..times {
            self.push_one(c, frame.clone());
        }
    }

    /// Registers a new connection of `user` (already upserted) and returns it.
    pub fn register(&self, user: &str, transport: Transport) -> Arc<Conn> {
        let reuse = self.violation(Violation::SameConnectionId);
        let mut w = self.world();
        let prev = w.users.get(user).and_then(|u| u.last_conn);
        let id = match prev {
            Some(p) if reuse && !w.conns.contains_key(&p) => p,
            _ => self.ids.next(),
        };
        let rec = w.user_mut(user);
        rec.connected(id);
        let conn = Arc::new(Conn::new(id, rec.id.clone(), transport));
        w.conns.insert(id, conn.clone());
        if self.violation(Violation::DeliverToUnwatched) {
            let cids = w.users.get(user).map(|u| u.member_of.clone()).unwrap_or_default();
            for cid in cids {
                if let Some(ch) = w.channels.get_mut(&cid) {
                    ch.add_watcher(&conn);
                    conn.watching.lock().unwrap_or_else(|e| e.into_inner()).push(cid);
                }
            }
        }
        drop(w);
        match transport {
            Transport::WebSocket => {
                Stats::bump(&self.stats.ws_accepted);
                Stats::bump(&self.stats.ws_live);
            }
            Transport::LongPoll => {
                Stats::bump(&self.stats.longpoll_accepted);
                Stats::bump(&self.stats.longpoll_live);
            }
        }
        conn.last_poll_ms
            .store(self.ms_since_start(), std::sync::atomic::Ordering::Relaxed);
        conn
    }

    /// Removes a connection: unwatches its channels (`user.watching.stop` to the remaining
    /// watchers) and, when it was the user's last one, sends `user.presence.changed` (offline) to
    /// presence subscribers. Idempotent.
    pub fn unregister(&self, id: ConnId) {
        let mut guard = self.world();
        let w = &mut *guard;
        let Some(conn) = w.conns.remove(&id) else { return };
        let cids: Vec<Arc<str>> = std::mem::take(&mut *conn.watching.lock().unwrap_or_else(|e| e.into_inner()));
        let now = wire::now();
        // Announced with the user as it was while connected, as before the change below.
        for cid in &cids {
            let Some(ch) = w.channels.get_mut(cid) else { continue };
            let (_, last_of_user) = ch.remove_watcher(id, &conn.user);
            if !last_of_user {
                continue;
            }
            let ch = &w.channels[cid];
            let frame = watching_event(w, ch, "user.watching.stop", &conn.user, &now);
            self.deliver_each(ch.watchers.values(), &frame);
        }
        let last = w.user_mut(&conn.user).disconnected(id);
        if last && !self.violation(Violation::NoPresenceEvent) {
            let to = presence_subscribers(w, &conn.user);
            if !to.is_empty() {
                let ev = wire::PresenceChanged {
                    kind: "user.presence.changed",
                    user: w.user_ref(&conn.user),
                    created_at: &now,
                };
                self.deliver(&to, &wire::to_string(&ev).into());
            }
        }
        drop(guard);
        match conn.transport {
            Transport::WebSocket => Stats::dec(&self.stats.ws_live),
            Transport::LongPoll => Stats::dec(&self.stats.longpoll_live),
        }
    }

    /// Makes `conn` a watcher of `cid`; the first connection of a user to watch it announces
    /// `user.watching.start` to the other watchers. The world lock must not be held.
    pub fn watch(&self, conn: &Arc<Conn>, cid: &Arc<str>) {
        let mut guard = self.world();
        let w = &mut *guard;
        if !w.conns.contains_key(&conn.id) {
            return;
        }
        let Some(ch) = w.channels.get_mut(cid) else { return };
        let (added, first) = ch.add_watcher(conn);
        if !added {
            return;
        }
        {
            let mut list = conn.watching.lock().unwrap_or_else(|e| e.into_inner());
            if !list.contains(cid) {
                list.push(cid.clone());
            }
        }
        if !first {
            return;
        }
        let ch = &w.channels[cid];
        let frame = watching_event(w, ch, "user.watching.start", &conn.user, &wire::now());
        self.deliver_each(ch.watchers.values().filter(|c| c.id != conn.id), &frame);
    }

    /// Stops `conn` watching `cid`; announces `user.watching.stop` when the user has no other
    /// connection watching it.
    pub fn unwatch(&self, conn: &Arc<Conn>, cid: &Arc<str>) {
        if self.violation(Violation::StopWatchingIgnored) {
            return;
        }
        let mut guard = self.world();
        let w = &mut *guard;
        let Some(ch) = w.channels.get_mut(cid) else { return };
        let (removed, last) = ch.remove_watcher(conn.id, &conn.user);
        if !removed {
            return;
        }
        conn.watching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| c != cid);
        if !last {
            return;
        }
        let ch = &w.channels[cid];
        let frame = watching_event(w, ch, "user.watching.stop", &conn.user, &wire::now());
        self.deliver_each(ch.watchers.values(), &frame);
    }
}

/// `user.watching.start` or `.stop` of `user` in `ch`, serialized once for every receiver.
fn watching_event(w: &World, ch: &Channel, kind: &str, user: &str, now: &str) -> Utf8Bytes {
    let ev = wire::ChannelEvent {
        kind,
        cid: &ch.cid,
        channel_id: &ch.id,
        channel_type: &ch.kind,
        user: w.user_ref(user),
        created_at: now,
        extra: wire::WatcherCount {
            watcher_count: ch.watchers.len(),
        },
    };
    wire::to_string(&ev).into()
}

/// Connections subscribed to presence that watch a channel `user` is a member of.
pub fn presence_subscribers(w: &World, user: &str) -> Vec<Arc<Conn>> {
    let Some(rec) = w.users.get(user) else {
        return Vec::new();
    };
    let mut to: Vec<&Arc<Conn>> = Vec::new();
    for cid in &rec.member_of {
        if let Some(ch) = w.channels.get(cid) {
            to.extend(
                ch.watchers
                    .values()
                    .filter(|c| c.presence.load(std::sync::atomic::Ordering::Relaxed) && &*c.user != user),
            );
        }
    }
    // A subscriber watching several of the user's channels gets the event once.
    to.sort_unstable_by_key(|c| c.id);
    to.dedup_by_key(|c| c.id);
    to.into_iter().cloned().collect()
}
