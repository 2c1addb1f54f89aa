//! The [`Observer`]'s index-based hooks, shaped like the simulated user's observer callbacks
//! (`on_connected`, `on_event`, `on_leak`, `on_receipt`, `on_rest`, `on_connect_error`, and the
//! end-of-run delivery totals), so the bridge between
//! `crate::user` and the conformance rules is one forwarding line per callback. Per-user state
//! (last connection id, last health check) exists only for observers built with
//! [`Observer::for_run`]; users outside that range are not checked by the stateful rules.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use chatstorm_protocol::ServerEvent;

use super::observer::Observer;

fn name(user: u32) -> String {
    format!("user #{user}")
}

impl Observer {
    /// The first frame of a user's connect was a `health.check`; `has_me` says whether it carried
    /// `me` (CONN-ME). For whoever reads the first frame.
    pub fn user_first_frame(&self, user: u32, has_me: bool) {
        self.check(
            "CONN-ME",
            has_me,
            &name(user),
            "the first health.check carries me",
            || "a first health.check without me".to_owned(),
        );
    }

    /// A user's connection became live (after its first frame, which counts as its first
    /// `health.check`): RECONNECT-NEW-CONNECTION-ID, and the start of HEALTH-INTERVAL's clock.
    pub fn user_connected(&self, user: u32, connection_id: &str) {
        let Some(st) = self.user_state(user) else { return };
        st.last_health_ms.store(self.now_ms().max(1), Relaxed);
        let mut last = st.last_connection.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prev) = last.as_deref() {
            self.reconnected(&name(user), prev, connection_id);
        }
        *last = Some(connection_id.into());
    }

    /// An event reached a user: HEALTH-INTERVAL from the gaps between `health.check`s on one
    /// connection (a `health.check` with `me` starts a new connection).
    pub fn user_event(&self, user: u32, ev: &ServerEvent) {
        let ServerEvent::HealthCheck(hc) = ev else { return };
        let Some(st) = self.user_state(user) else { return };
        let now = self.now_ms().max(1);
        if hc.me.is_some() {
            // A first frame: a new connection's clock starts here.
            st.last_health_ms.store(now, Relaxed);
            return;
        }
        let prev = st.last_health_ms.swap(now, Relaxed);
        // A gap across a half_open or add_latency window of the scenario is the fault's.
        if prev != 0 && !self.silenced(prev, now) {
            // Replies to the user's own health checks make gaps shorter, never longer, so only
            // the upper bound is checked.
            self.health_gap(
                &name(user),
                Duration::from_millis(now.saturating_sub(prev)),
                self.health_interval(),
            );
        }
    }

    /// A user's connection ended (drop, close, fallback): the next `health.check` gap belongs to
    /// a new connection.
    pub fn user_disconnected(&self, user: u32) {
        if let Some(st) = self.user_state(user) {
            st.last_health_ms.store(0, Relaxed);
        }
    }

    /// A typing (`typing = true`) or read receipt reached `receiver` from `sender`, and the
    /// delivery tracker decided whether the sender's privacy allowed it (`leaked`).
    pub fn receipt(&self, typing: bool, sender: u32, receiver: u32, leaked: bool) {
        let (s, r) = (name(sender), name(receiver));
        if typing {
            self.typing_received(&r, &s, !leaked);
        } else {
            self.read_received(&r, &s, !leaked);
        }
    }

    /// A stamped event (`what`: `typing.start`, `message.read`, `message.new`) of send `seq` from
    /// `sender` on channel index `channel` reached `receiver`: DELIVERY-ONCE (`duplicate`: it had
    /// already), and DELIVERY-ORDER (`out_of_order`: after a later send of the same sender and
    /// kind; `None` when the kind cannot be judged).
    #[allow(clippy::too_many_arguments)] // one flat forwarding call from the user bridge
    pub fn receipt_delivered(
        &self,
        what: &str,
        seq: u64,
        sender: u32,
        receiver: u32,
        channel: u32,
        duplicate: bool,
        out_of_order: Option<bool>,
    ) {
        let r = name(receiver);
        self.check(
            "DELIVERY-ONCE",
            !duplicate,
            &r,
            "each event once per connection",
            || {
                format!(
                    "{what} #{seq} from {} on channel #{channel} received a second time",
                    name(sender)
                )
            },
        );
        if let Some(ooo) = out_of_order {
            self.check(
                "DELIVERY-ORDER",
                !ooo,
                &r,
                "a sender's events in the order they were sent",
                || {
                    format!(
                        "{what} #{seq} from {} on channel #{channel} arrived after a later one of the same sender",
                        name(sender)
                    )
                },
            );
        }
    }

    /// End-of-run delivery totals (DELIVERY-EVERY-WATCHER): `received` receipts and `lost`
    /// deliveries proven lost; `first` is the first loss as (receiver, description).
    pub fn deliveries_settled(&self, received: u64, lost: u64, first: impl FnOnce() -> Option<(u32, String)>) {
        self.tally(
            "DELIVERY-EVERY-WATCHER",
            received + lost,
            lost,
            "every event at every connection certainly watching its channel",
            || {
                first().map_or_else(
                    || (String::new(), format!("{lost} deliveries lost")),
                    |(u, d)| (name(u), d),
                )
            },
        );
    }

    /// A REST call ended: a 429 must carry code 9 (RATE-429-CODE-9); `code` is the body's code.
    pub fn user_rest(&self, user: u32, status: Option<u16>, code: Option<i32>) {
        if status == Some(429) {
            self.check(
                "RATE-429-CODE-9",
                code == Some(9),
                &name(user),
                "code 9 on HTTP 429",
                || format!("HTTP 429 with code {code:?}"),
            );
        }
    }

    /// A connect failed with an error frame (`code`) followed by `close` (`None` = TCP drop):
    /// RECONNECT-ERROR-CLOSE-1000.
    pub fn user_connect_error(&self, user: u32, code: i32, close: Option<u16>) {
        let _ = code;
        self.close_after_error(&name(user), close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstorm_protocol::event::HealthCheck;

    fn hc(me: bool) -> ServerEvent {
        let mut h = HealthCheck {
            connection_id: "c".into(),
            cid: "*".into(),
            created_at: String::new(),
            me: None,
        };
        if me {
            h.me = Some(chatstorm_protocol::OwnUser::new(
                chatstorm_protocol::User::new("u"),
                true,
            ));
        }
        ServerEvent::HealthCheck(h)
    }

    #[test]
    fn reused_connection_id_and_missing_me_are_counted() {
        let o = Observer::for_run(&[], 2, Duration::from_secs(30));
        o.user_first_frame(0, true);
        o.user_first_frame(0, false);
        o.user_event(0, &hc(true));
        o.user_connected(0, "c1");
        o.user_connected(0, "c1");
        o.user_connected(5, "x"); // out of range: ignored
        o.receipt(true, 1, 0, true);
        o.user_rest(0, Some(429), Some(4));
        o.user_connect_error(0, 5, None);
        o.user_event(0, &hc(false));
        o.user_event(0, &hc(false));
        let s = o.summary();
        let get = |id: &str| s.rules.iter().find(|r| r.id == id).map(|r| (r.checks, r.failures));
        assert_eq!(get("CONN-ME"), Some((2, 1)));
        assert_eq!(get("RECONNECT-NEW-CONNECTION-ID"), Some((1, 1)));
        assert_eq!(get("PRIVACY-TYPING-OFF"), Some((1, 1)));
        assert_eq!(get("RATE-429-CODE-9"), Some((1, 1)));
        assert_eq!(get("RECONNECT-ERROR-CLOSE-1000"), Some((1, 1)));
        assert_eq!(get("HEALTH-INTERVAL"), Some((2, 0)));
    }

    #[test]
    fn deliveries_count_duplicates_reorders_and_losses() {
        let o = Observer::for_run(&[], 3, Duration::from_secs(30));
        o.receipt_delivered("message.new", 7, 0, 1, 2, false, Some(false));
        o.receipt_delivered("message.new", 7, 0, 1, 2, true, Some(false));
        o.receipt_delivered("message.read", 8, 0, 2, 2, false, None);
        o.receipt_delivered("typing.start", 9, 0, 2, 2, false, Some(true));
        o.deliveries_settled(40, 0, || None);
        o.deliveries_settled(0, 2, || Some((1, "message.new #3 never reached u1".to_owned())));
        let s = o.summary();
        let get = |id: &str| s.rules.iter().find(|r| r.id == id).unwrap();
        let once = get("DELIVERY-ONCE");
        assert_eq!((once.checks, once.failures), (4, 1));
        assert!(
            once.first_failure
                .as_ref()
                .unwrap()
                .received
                .contains("#7 from user #0 on channel #2")
        );
        let order = get("DELIVERY-ORDER");
        assert_eq!((order.checks, order.failures), (3, 1), "reads are not judged for order");
        let every = get("DELIVERY-EVERY-WATCHER");
        assert_eq!((every.checks, every.failures), (42, 2));
        let f = every.first_failure.as_ref().unwrap();
        assert_eq!(
            (f.user.as_str(), f.received.as_str()),
            ("user #1", "message.new #3 never reached u1")
        );
        assert!(s.failed(false));
    }
}
