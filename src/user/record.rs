//! The one place the user module touches measurement. Until `crate::metrics` lands on main this
//! file carries a minimal stand-in with the same names and signatures as the metrics branch's
//! `Recorder` (`record`, `record_corrected`, `count`, `gauge_add`, `error_code`, `close_code`,
//! `counter`, `gauge`), so the rewire is: delete `mod local`, `pub use crate::metrics::{...}`.

pub use local::{Counter, Gauge, Metric, Recorder, RestEndpoint};

mod local {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// The REST endpoints a user calls (`rest.<endpoint>`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum RestEndpoint {
        /// `POST /users`.
        Users,
        /// `PATCH /users`.
        UsersPatch,
        /// `POST /channels`.
        Channels,
        /// `POST /channels/{type}/{id}/query`.
        ChannelQuery,
        /// `POST /channels/{type}/{id}/stop-watching`.
        StopWatching,
        /// `POST /channels/{type}/{id}/event`.
        Event,
        /// `POST /channels/{type}/{id}/read`.
        Read,
        /// `POST /channels/{type}/{id}/message`.
        Message,
        /// `POST /sync`.
        Sync,
        /// `POST /hi`.
        Hi,
    }

    /// One latency histogram.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Metric {
        /// Upgrade start to the first `health.check`.
        ConnectWs,
        /// Long-poll connect start to its `health.check`.
        ConnectLongpoll,
        /// One token provider call.
        TokenFetch,
        /// Code 40 to connected again.
        TokenRefresh,
        /// Drop detected to connected again.
        Reconnect,
        /// Typing delivery.
        DeliveryTyping,
        /// Message delivery.
        DeliveryMessage,
        /// Read delivery.
        DeliveryRead,
        /// The long-poll connect request.
        LongpollConnect,
        /// One poll.
        LongpollPoll,
        /// One REST call.
        Rest(RestEndpoint),
    }

    /// An event counter.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Counter {
        /// Live connections reached.
        Connects,
        /// Failed attempts.
        ConnectFailures,
        /// Live connections lost.
        Disconnects,
        /// Reconnect attempts.
        ReconnectAttempts,
        /// Fallbacks to long-poll.
        Fallbacks,
        /// Token provider calls.
        TokenFetches,
        /// Failed token provider calls.
        TokenFetchFailures,
        /// Tokens refreshed after code 40.
        TokenRefreshes,
        /// REST requests.
        RestRequests,
        /// Failed REST requests.
        RestFailures,
        /// Events sent.
        EventsSent,
        /// Events received.
        EventsReceived,
        /// Events lost.
        EventsLost,
        /// Events duplicated.
        EventsDuplicated,
        /// Events out of order.
        EventsOutOfOrder,
        /// Late timers.
        LateTicks,
    }

    /// A gauge.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Gauge {
        /// Users live (either transport).
        Connected,
        /// Users live over long-poll.
        LongPolling,
        /// Users started and not stopped.
        Users,
    }

    #[derive(Default)]
    struct Inner {
        samples: Mutex<HashMap<(Metric, bool), Vec<Duration>>>,
        counters: Mutex<HashMap<Counter, u64>>,
        gauges: [AtomicI64; 3],
        codes: Mutex<HashMap<(bool, u32), u64>>,
        total: AtomicU64,
    }

    /// Stand-in recorder: same API as the metrics branch's, kept simple (tests only read it).
    #[derive(Clone, Default)]
    pub struct Recorder(Arc<Inner>);

    impl Recorder {
        /// A new recorder.
        pub fn new() -> Self {
            Self::default()
        }
        /// Records one latency.
        pub fn record(&self, metric: Metric, latency: Duration) {
            self.push(metric, false, latency);
        }
        /// Records one latency in both views.
        pub fn record_corrected(&self, metric: Metric, intended: Instant, actual_start: Instant, end: Instant) {
            self.push(metric, false, end.saturating_duration_since(actual_start));
            self.push(metric, true, end.saturating_duration_since(intended));
        }
        fn push(&self, metric: Metric, intended: bool, d: Duration) {
            self.0.total.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut m) = self.0.samples.lock() {
                m.entry((metric, intended)).or_default().push(d);
            }
        }
        /// Adds one to a counter.
        pub fn count(&self, counter: Counter) {
            self.count_n(counter, 1);
        }
        /// Adds `n` to a counter.
        pub fn count_n(&self, counter: Counter, n: u64) {
            if let Ok(mut m) = self.0.counters.lock() {
                *m.entry(counter).or_default() += n;
            }
        }
        /// Moves a gauge.
        pub fn gauge_add(&self, gauge: Gauge, delta: i64) {
            self.0.gauges[gauge as usize].fetch_add(delta, Ordering::Relaxed);
        }
        /// Counts an API error code.
        pub fn error_code(&self, code: u32) {
            if let Ok(mut m) = self.0.codes.lock() {
                *m.entry((false, code)).or_default() += 1;
            }
        }
        /// Counts a close code.
        pub fn close_code(&self, code: u16) {
            if let Ok(mut m) = self.0.codes.lock() {
                *m.entry((true, u32::from(code))).or_default() += 1;
            }
        }
        /// A counter's value.
        pub fn counter(&self, counter: Counter) -> u64 {
            self.0
                .counters
                .lock()
                .map_or(0, |m| m.get(&counter).copied().unwrap_or(0))
        }
        /// A gauge's value.
        pub fn gauge(&self, gauge: Gauge) -> i64 {
            self.0.gauges[gauge as usize].load(Ordering::Relaxed)
        }
        /// The samples recorded for a metric (stand-in only; the real recorder has histograms).
        pub fn samples(&self, metric: Metric) -> Vec<Duration> {
            self.0
                .samples
                .lock()
                .map_or_else(|_| Vec::new(), |m| m.get(&(metric, false)).cloned().unwrap_or_default())
        }
    }
}
