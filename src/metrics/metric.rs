//! The names of everything measured: the histogram [`Metric`]s of PRODUCT.md "What is measured",
//! their two latency [`View`]s, and the event [`Counter`]s.
//!
//! Adding a metric: a variant here, its name in [`Metric::name`], its place in [`Metric::ALL`] (the
//! order is the dense index the recorder uses, so append), and whether a schedule exists for it in
//! [`Metric::scheduled`]. Names are stable: they are `.hlog` tags, `summary.json` keys and
//! threshold names.

/// The REST endpoints a simulated user calls, one latency histogram each (`rest.<endpoint>`).
///
/// A small closed set so that the histogram table stays fixed-size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RestEndpoint {
    /// `POST /users` (upsert).
    Users,
    /// `PATCH /users` (privacy toggles).
    UsersPatch,
    /// `POST /channels` (query channels, with watch).
    Channels,
    /// `POST /channels/{type}/{id}/query`.
    ChannelQuery,
    /// `POST /channels/{type}/{id}/stop-watching`.
    StopWatching,
    /// `POST /channels/{type}/{id}/event` (typing).
    Event,
    /// `POST /channels/{type}/{id}/read`.
    Read,
    /// `POST /channels/{type}/{id}/message`.
    Message,
    /// `POST /sync`.
    Sync,
    /// `POST /hi` (client insights).
    Hi,
}

impl RestEndpoint {
    /// Every endpoint, in index order.
    pub const ALL: [RestEndpoint; 10] = [
        RestEndpoint::Users,
        RestEndpoint::UsersPatch,
        RestEndpoint::Channels,
        RestEndpoint::ChannelQuery,
        RestEndpoint::StopWatching,
        RestEndpoint::Event,
        RestEndpoint::Read,
        RestEndpoint::Message,
        RestEndpoint::Sync,
        RestEndpoint::Hi,
    ];

    const fn index(self) -> usize {
        self as usize
    }
}

/// One latency histogram, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// WebSocket upgrade start to the first `health.check`.
    ConnectWs,
    /// Long-poll connect start to the first `health.check` received over long-poll.
    ConnectLongpoll,
    /// One call of the token provider (local mint or HTTP token endpoint).
    TokenFetch,
    /// Code 40 received to connected again with a fresh token.
    TokenRefresh,
    /// Drop detected to connected again.
    Reconnect,
    /// `typing.start`/`typing.stop` sent by one user to received by each watcher.
    DeliveryTyping,
    /// `message.new` sent by one user to received by each watcher.
    DeliveryMessage,
    /// `message.read` sent by one user to received by each watcher.
    DeliveryRead,
    /// The `/longpoll` connect request.
    LongpollConnect,
    /// One held `/longpoll` poll, request to response.
    LongpollPoll,
    /// One REST call.
    Rest(RestEndpoint),
    /// Storm drop to live again, per dropped user (every storm of the run together).
    Recovery,
    /// How late the harness's own timers fired (generator honesty: a saturated generator shows here).
    SchedulerLag,
    /// How long a REST call waited for one of the harness's own request slots before it went out
    /// (generator honesty: this wait is the harness's queue, never the server's latency).
    GeneratorQueue,
    /// A WebSocket connect's phase: the TCP connect (socket to established).
    ConnectTcp,
    /// A WebSocket connect's phase: the TLS handshake (`wss://` only).
    ConnectTls,
    /// A WebSocket connect's phase: the upgrade request to its 101 answer.
    ConnectUpgrade,
    /// A WebSocket connect's phase: the 101 answer to the first frame (`health.check`).
    ConnectFirstFrame,
    /// The run's one lookup of each host name it connects to (`net::dns`), before any user
    /// starts: every connection then uses the pinned addresses.
    ConnectDns,
}

/// Number of [`Metric`]s: the size of every per-metric table.
pub const METRIC_COUNT: usize = 28;

/// The index of the first metric after the REST endpoints.
const AFTER_REST: usize = 10 + RestEndpoint::ALL.len();

impl Metric {
    /// Every metric, in index order.
    pub const ALL: [Metric; METRIC_COUNT] = {
        let mut all = [Metric::ConnectWs; METRIC_COUNT];
        let fixed = [
            Metric::ConnectWs,
            Metric::ConnectLongpoll,
            Metric::TokenFetch,
            Metric::TokenRefresh,
            Metric::Reconnect,
            Metric::DeliveryTyping,
            Metric::DeliveryMessage,
            Metric::DeliveryRead,
            Metric::LongpollConnect,
            Metric::LongpollPoll,
        ];
        let mut i = 0;
        while i < fixed.len() {
            all[i] = fixed[i];
            i += 1;
        }
        let mut e = 0;
        while e < RestEndpoint::ALL.len() {
            all[fixed.len() + e] = Metric::Rest(RestEndpoint::ALL[e]);
            e += 1;
        }
        let tail = [
            Metric::Recovery,
            Metric::SchedulerLag,
            Metric::GeneratorQueue,
            Metric::ConnectTcp,
            Metric::ConnectTls,
            Metric::ConnectUpgrade,
            Metric::ConnectFirstFrame,
            Metric::ConnectDns,
        ];
        let mut t = 0;
        while t < tail.len() {
            all[AFTER_REST + t] = tail[t];
            t += 1;
        }
        all
    };

    /// Dense index in `0..METRIC_COUNT`, the position in [`Metric::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Metric::ConnectWs => 0,
            Metric::ConnectLongpoll => 1,
            Metric::TokenFetch => 2,
            Metric::TokenRefresh => 3,
            Metric::Reconnect => 4,
            Metric::DeliveryTyping => 5,
            Metric::DeliveryMessage => 6,
            Metric::DeliveryRead => 7,
            Metric::LongpollConnect => 8,
            Metric::LongpollPoll => 9,
            Metric::Rest(e) => 10 + e.index(),
            Metric::Recovery => AFTER_REST,
            Metric::SchedulerLag => AFTER_REST + 1,
            Metric::GeneratorQueue => AFTER_REST + 2,
            Metric::ConnectTcp => AFTER_REST + 3,
            Metric::ConnectTls => AFTER_REST + 4,
            Metric::ConnectUpgrade => AFTER_REST + 5,
            Metric::ConnectFirstFrame => AFTER_REST + 6,
            Metric::ConnectDns => AFTER_REST + 7,
        }
    }

    /// The stable name: `.hlog` tag, `summary.json` key, threshold name.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::ConnectWs => "connect.ws",
            Metric::ConnectLongpoll => "connect.longpoll",
            Metric::TokenFetch => "token.fetch",
            Metric::TokenRefresh => "token.refresh",
            Metric::Reconnect => "reconnect",
            Metric::DeliveryTyping => "delivery.typing",
            Metric::DeliveryMessage => "delivery.message",
            Metric::DeliveryRead => "delivery.read",
            Metric::LongpollConnect => "longpoll.connect",
            Metric::LongpollPoll => "longpoll.poll",
            Metric::Rest(RestEndpoint::Users) => "rest.users",
            Metric::Rest(RestEndpoint::UsersPatch) => "rest.users_patch",
            Metric::Rest(RestEndpoint::Channels) => "rest.channels",
            Metric::Rest(RestEndpoint::ChannelQuery) => "rest.channel_query",
            Metric::Rest(RestEndpoint::StopWatching) => "rest.stop_watching",
            Metric::Rest(RestEndpoint::Event) => "rest.event",
            Metric::Rest(RestEndpoint::Read) => "rest.read",
            Metric::Rest(RestEndpoint::Message) => "rest.message",
            Metric::Rest(RestEndpoint::Sync) => "rest.sync",
            Metric::Rest(RestEndpoint::Hi) => "rest.hi",
            Metric::Recovery => "recovery",
            Metric::SchedulerLag => "scheduler.lag",
            Metric::GeneratorQueue => "generator.queue",
            Metric::ConnectTcp => "connect.tcp",
            Metric::ConnectTls => "connect.tls",
            Metric::ConnectUpgrade => "connect.upgrade",
            Metric::ConnectFirstFrame => "connect.first_frame",
            Metric::ConnectDns => "connect.dns",
        }
    }

    /// The metric with this [`name`](Metric::name), for validating threshold names up front.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the operation has an intended start time (a schedule), so that the
    /// [`View::Intended`] histogram is meaningful for it. Connects follow the load plan, REST calls
    /// and deliveries follow the seeded behaviour schedule; the rest are reactions to events.
    pub const fn scheduled(self) -> bool {
        matches!(
            self,
            Metric::ConnectWs
                | Metric::ConnectLongpoll
                | Metric::DeliveryTyping
                | Metric::DeliveryMessage
                | Metric::DeliveryRead
                | Metric::Rest(_)
        )
    }
}

/// The tag of the histogram that merges both connect transports (`connect.ws` and
/// `connect.longpoll`), in each view (`connect`, `connect.intended`). It is not a [`Metric`] (the
/// users record per transport): the collector adds the two up each interval and publishes the
/// sum under this name in the `.hlog`, the snapshot and so `summary.json`, because a threshold can
/// name it (`connect.p99`).
pub const CONNECT_TAG: &str = "connect";

/// Which start a latency is measured from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    /// From the moment the operation actually started (uncorrected; what the server saw).
    Actual,
    /// From the moment the schedule intended it to start: corrected for coordinated omission, so a
    /// late generator or a stalled server shows up instead of hiding (wrk2, oha).
    Intended,
}

impl View {
    /// Both views, in index order.
    pub const ALL: [View; 2] = [View::Actual, View::Intended];

    /// The suffix added to the metric name to form the histogram's tag.
    pub const fn suffix(self) -> &'static str {
        match self {
            View::Actual => "",
            View::Intended => ".intended",
        }
    }
}

/// One histogram: a metric seen from one view. Its tag is `<metric>` for [`View::Actual`] and
/// `<metric>.intended` for [`View::Intended`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Series {
    /// What is measured.
    pub metric: Metric,
    /// From which start.
    pub view: View,
}

/// Number of histograms in a table: every metric in both views.
pub const SERIES_COUNT: usize = METRIC_COUNT * 2;

impl Series {
    /// Dense index in `0..SERIES_COUNT`.
    pub const fn index(self) -> usize {
        self.metric.index() * 2 + self.view as usize
    }

    /// The series at a dense index; `None` past the end.
    pub fn from_index(index: usize) -> Option<Series> {
        let metric = *Metric::ALL.get(index / 2)?;
        Some(Series {
            metric,
            view: View::ALL[index % 2],
        })
    }

    /// The histogram's tag: `connect.ws`, `connect.ws.intended`, ...
    pub fn tag(self) -> String {
        format!("{}{}", self.metric.name(), self.view.suffix())
    }

    /// The series with this [`tag`](Series::tag).
    pub fn from_tag(tag: &str) -> Option<Series> {
        match tag.strip_suffix(View::Intended.suffix()) {
            Some(name) => Metric::from_name(name).map(|metric| Series {
                metric,
                view: View::Intended,
            }),
            None => Metric::from_name(tag).map(|metric| Series {
                metric,
                view: View::Actual,
            }),
        }
    }
}

/// An event counter. Counted per shard with relaxed atomics and summed on read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Connections that reached the first `health.check` (WebSocket or long-poll).
    Connects,
    /// Connection attempts that failed (by any cause; see the code tables for which).
    ConnectFailures,
    /// Live connections lost (closed by the server, dropped, or found dead).
    Disconnects,
    /// Reconnect attempts started after a drop.
    ReconnectAttempts,
    /// Users that gave up on WebSocket and fell back to long-polling.
    Fallbacks,
    /// Token provider calls.
    TokenFetches,
    /// Token provider calls that failed.
    TokenFetchFailures,
    /// Tokens refreshed after an expiry (code 40).
    TokenRefreshes,
    /// REST requests sent.
    RestRequests,
    /// REST requests answered with an error or not answered.
    RestFailures,
    /// Events sent by users (typing, read, message).
    EventsSent,
    /// Events received by watchers.
    EventsReceived,
    /// Events a watcher should have received and never did.
    EventsLost,
    /// Events a watcher received more than once.
    EventsDuplicated,
    /// Events a watcher received out of order.
    EventsOutOfOrder,
    /// Harness timers that fired later than the documented bound.
    LateTicks,
    /// Typing or read events received from a sender whose privacy setting was off.
    PrivacyLeaks,
    /// Events received over long-poll (a subset of `EventsReceived`).
    LongpollEventsReceived,
    /// Connects that failed for lack of local ports or descriptors (the generator's fault).
    ResourceFailures,
    /// Expected deliveries that did not arrive but cannot be called lost: the receiver's
    /// connection ended, or was not heard from again, inside the window in which the server
    /// should have delivered them (see `user::delivery`).
    EventsUndetermined,
    /// REST calls that never got one of the harness's request slots within their timeout (the
    /// generator's fault, never counted as a server error).
    GeneratorQueueTimeouts,
    /// Long-poll connect attempts that failed (a subset of `ConnectFailures`; the rest were
    /// WebSocket attempts), so that failures can be told apart by transport.
    LongpollConnectFailures,
    /// Users' TLS handshakes that were full (no session resumed). Sparse.
    TlsFullHandshakes,
    /// Users' TLS handshakes that resumed a session (`users.tls.resumption`). Sparse.
    TlsResumedHandshakes,
}

/// Number of [`Counter`]s.
pub const COUNTER_COUNT: usize = 24;

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTER_COUNT] = [
        Counter::Connects,
        Counter::ConnectFailures,
        Counter::Disconnects,
        Counter::ReconnectAttempts,
        Counter::Fallbacks,
        Counter::TokenFetches,
        Counter::TokenFetchFailures,
        Counter::TokenRefreshes,
        Counter::RestRequests,
        Counter::RestFailures,
        Counter::EventsSent,
        Counter::EventsReceived,
        Counter::EventsLost,
        Counter::EventsDuplicated,
        Counter::EventsOutOfOrder,
        Counter::LateTicks,
        Counter::PrivacyLeaks,
        Counter::LongpollEventsReceived,
        Counter::ResourceFailures,
        Counter::EventsUndetermined,
        Counter::GeneratorQueueTimeouts,
        Counter::LongpollConnectFailures,
        Counter::TlsFullHandshakes,
        Counter::TlsResumedHandshakes,
    ];

    /// Dense index in `0..COUNTER_COUNT`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The stable name used in `summary.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Connects => "connects",
            Counter::ConnectFailures => "connect_failures",
            Counter::Disconnects => "disconnects",
            Counter::ReconnectAttempts => "reconnect_attempts",
            Counter::Fallbacks => "fallbacks",
            Counter::TokenFetches => "token_fetches",
            Counter::TokenFetchFailures => "token_fetch_failures",
            Counter::TokenRefreshes => "token_refreshes",
            Counter::RestRequests => "rest_requests",
            Counter::RestFailures => "rest_failures",
            Counter::EventsSent => "events_sent",
            Counter::EventsReceived => "events_received",
            Counter::EventsLost => "events_lost",
            Counter::EventsDuplicated => "events_duplicated",
            Counter::EventsOutOfOrder => "events_out_of_order",
            Counter::LateTicks => "late_ticks",
            Counter::PrivacyLeaks => "privacy_leaks",
            Counter::LongpollEventsReceived => "longpoll_events_received",
            Counter::ResourceFailures => "resource_failures",
            Counter::EventsUndetermined => "events_undetermined",
            Counter::GeneratorQueueTimeouts => "generator_queue_timeouts",
            Counter::LongpollConnectFailures => "longpoll_connect_failures",
            Counter::TlsFullHandshakes => "tls_full_handshakes",
            Counter::TlsResumedHandshakes => "tls_resumed_handshakes",
        }
    }

    /// Whether the counter is left out of `summary.json` while it is zero, and out of the
    /// per-second timeline: counters of what only some runs do (TLS handshakes), so that a run
    /// without it reads as before.
    pub const fn sparse(self) -> bool {
        matches!(self, Counter::TlsFullHandshakes | Counter::TlsResumedHandshakes)
    }

    /// The counter with this [`name`](Counter::name).
    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_indexes_are_dense_and_match_all() {
        for (i, m) in Metric::ALL.into_iter().enumerate() {
            assert_eq!(m.index(), i, "{m:?}");
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        let mut names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRIC_COUNT);
    }

    #[test]
    fn series_tags_round_trip() {
        for i in 0..SERIES_COUNT {
            let s = Series::from_index(i).expect("in range");
            assert_eq!(s.index(), i);
            assert_eq!(Series::from_tag(&s.tag()), Some(s));
        }
        assert_eq!(Series::from_index(SERIES_COUNT), None);
        assert_eq!(Series::from_tag("nope"), None);
        assert_eq!(Series::from_tag("nope.intended"), None);
    }

    #[test]
    fn counter_indexes_are_dense() {
        for (i, c) in Counter::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Counter::from_name(c.name()), Some(c));
        }
    }
}
