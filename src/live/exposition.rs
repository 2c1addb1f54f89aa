//! The run's live state as metric families, built once per collection from what the collector
//! and the engine already keep; the `/metrics` text and the remote-write push are two encodings
//! of the same [`Exposition`].
//!
//! Naming follows Prometheus' conventions: a `chatstorm_` prefix, the unit in the name
//! (`_seconds`, `_bytes`), `_total` on every counter. Every sample carries the run's labels
//! (scenario, run_id, shard); what users did also carries `profile` (the SDK profile of the users
//! it belongs to; `none` for what no user did, such as the harness's own timers and setup).
//! Latencies are real histograms (cumulative `le` buckets, `_sum`, `_count`; see
//! [`super::buckets`]), never percentile gauges, so they add up over profiles, shards and runs.

use super::RunLabels;
use super::buckets::Buckets;
use crate::engine::watch::RunSoFar;
use crate::metrics::{CodeCounts, Collector, Counter, Gauge, Metric, RestEndpoint, SERIES_COUNT, Series, View};

/// What a family's samples are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    /// The `# TYPE` word.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One sample's own labels (the run's labels come first, from the exposition).
pub type Labels = Vec<(&'static str, String)>;

/// One metric family.
#[derive(Debug, Clone)]
pub struct Family {
    /// The metric name (a counter's ends in `_total`).
    pub name: &'static str,
    /// `# HELP` text.
    pub help: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Plain samples (counters, gauges).
    pub samples: Vec<(Labels, f64)>,
    /// Histogram samples.
    pub histograms: Vec<(Labels, Buckets)>,
}

impl Family {
    /// A gauge of one sample without labels of its own.
    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Family {
        let mut f = Family::new(name, Kind::Gauge, help);
        f.samples.push((Vec::new(), value));
        f
    }

    fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
            histograms: Vec::new(),
        }
    }
}

/// Every family of the run at one collection.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The run's labels, on every sample.
    pub run: [(&'static str, String); 3],
    /// The families, each name once.
    pub families: Vec<Family>,
    /// When it was collected, milliseconds since the Unix epoch (the remote-write timestamp).
    pub at_unix_ms: i64,
}

/// The family a histogram of `metric` belongs to, and the label telling it apart there.
fn histogram_family(metric: Metric) -> (&'static str, &'static str, Option<(&'static str, &'static str)>) {
    use Metric as M;
    match metric {
        M::ConnectWs => (
            "chatstorm_connect_duration_seconds",
            CONNECT_HELP,
            Some(("transport", "websocket")),
        ),
        M::ConnectLongpoll => (
            "chatstorm_connect_duration_seconds",
            CONNECT_HELP,
            Some(("transport", "longpoll")),
        ),
        M::TokenFetch => (
            "chatstorm_token_fetch_duration_seconds",
            "One call of the token provider.",
            None,
        ),
        M::TokenRefresh => (
            "chatstorm_token_refresh_duration_seconds",
            "Token expiry (code 40) to connected again.",
            None,
        ),
        M::Reconnect => (
            "chatstorm_reconnect_duration_seconds",
            "Drop detected to connected again.",
            None,
        ),
        M::DeliveryTyping => (
            "chatstorm_delivery_latency_seconds",
            DELIVERY_HELP,
            Some(("event", "typing")),
        ),
        M::DeliveryMessage => (
            "chatstorm_delivery_latency_seconds",
            DELIVERY_HELP,
            Some(("event", "message")),
        ),
        M::DeliveryRead => (
            "chatstorm_delivery_latency_seconds",
            DELIVERY_HELP,
            Some(("event", "read")),
        ),
        M::LongpollConnect => (
            "chatstorm_longpoll_connect_duration_seconds",
            "The /longpoll connect request.",
            None,
        ),
        M::LongpollPoll => (
            "chatstorm_longpoll_poll_duration_seconds",
            "One held /longpoll poll, request to response.",
            None,
        ),
        M::Rest(e) => (
            "chatstorm_rest_request_duration_seconds",
            "One REST call, by endpoint.",
            Some(("endpoint", endpoint(e))),
        ),
        M::Recovery => (
            "chatstorm_recovery_duration_seconds",
            "Storm drop to live again, per dropped user.",
            None,
        ),
        M::SchedulerLag => (
            "chatstorm_scheduler_lag_seconds",
            "How late the harness's own timers fired (generator health).",
            None,
        ),
        M::GeneratorQueue => (
            "chatstorm_generator_queue_wait_seconds",
            "Wait for one of the harness's own request slots (generator health).",
            None,
        ),
        M::ConnectTcp => (
            "chatstorm_connect_phase_duration_seconds",
            PHASE_HELP,
            Some(("phase", "tcp")),
        ),
        M::ConnectTls => (
            "chatstorm_connect_phase_duration_seconds",
            PHASE_HELP,
            Some(("phase", "tls")),
        ),
        M::ConnectUpgrade => (
            "chatstorm_connect_phase_duration_seconds",
            PHASE_HELP,
            Some(("phase", "upgrade")),
        ),
        M::ConnectFirstFrame => (
            "chatstorm_connect_phase_duration_seconds",
            PHASE_HELP,
            Some(("phase", "first_frame")),
        ),
        M::ConnectDns => (
            "chatstorm_dns_lookup_duration_seconds",
            "One host name looked up before the users start (once per name per run).",
            None,
        ),
    }
}

const CONNECT_HELP: &str = "Connect start to the first health.check, by transport; view=intended counts from the planned start (corrected for coordinated omission).";
const DELIVERY_HELP: &str = "An event sent by one user to received by each watcher, by event.";
const PHASE_HELP: &str = "One phase of a WebSocket connect.";

fn endpoint(e: RestEndpoint) -> &'static str {
    Metric::Rest(e).name().trim_start_matches("rest.")
}

/// The counter families: (counter, metric name, help).
const COUNTERS: [(Counter, &str, &str); 24] = [
    (
        Counter::Connects,
        "chatstorm_connects_total",
        "Connections that reached the first health.check.",
    ),
    (
        Counter::ConnectFailures,
        "chatstorm_connect_failures_total",
        "Connection attempts that failed.",
    ),
    (
        Counter::Disconnects,
        "chatstorm_disconnects_total",
        "Live connections lost.",
    ),
    (
        Counter::ReconnectAttempts,
        "chatstorm_reconnect_attempts_total",
        "Reconnect attempts started after a drop.",
    ),
    (
        Counter::Fallbacks,
        "chatstorm_fallbacks_total",
        "Users that fell back from WebSocket to long-polling.",
    ),
    (
        Counter::TokenFetches,
        "chatstorm_token_fetches_total",
        "Token provider calls.",
    ),
    (
        Counter::TokenFetchFailures,
        "chatstorm_token_fetch_failures_total",
        "Token provider calls that failed.",
    ),
    (
        Counter::TokenRefreshes,
        "chatstorm_token_refreshes_total",
        "Tokens refreshed after an expiry (code 40).",
    ),
    (
        Counter::RestRequests,
        "chatstorm_rest_requests_total",
        "REST requests sent.",
    ),
    (
        Counter::RestFailures,
        "chatstorm_rest_failures_total",
        "REST requests answered with an error or not answered.",
    ),
    (
        Counter::EventsSent,
        "chatstorm_events_sent_total",
        "Events sent by users.",
    ),
    (
        Counter::EventsReceived,
        "chatstorm_events_received_total",
        "Events received by watchers (deliveries).",
    ),
    (
        Counter::EventsLost,
        "chatstorm_events_lost_total",
        "Deliveries a watcher never received.",
    ),
    (
        Counter::EventsDuplicated,
        "chatstorm_events_duplicated_total",
        "Deliveries a watcher received more than once.",
    ),
    (
        Counter::EventsOutOfOrder,
        "chatstorm_events_out_of_order_total",
        "Deliveries received out of order.",
    ),
    (
        Counter::LateTicks,
        "chatstorm_late_ticks_total",
        "Harness timers that fired later than the documented bound.",
    ),
    (
        Counter::PrivacyLeaks,
        "chatstorm_privacy_leaks_total",
        "Typing or read events received from a sender whose privacy setting was off.",
    ),
    (
        Counter::LongpollEventsReceived,
        "chatstorm_longpoll_events_received_total",
        "Events received over long-poll.",
    ),
    (
        Counter::ResourceFailures,
        "chatstorm_resource_failures_total",
        "Connects that failed for lack of local ports or descriptors.",
    ),
    (
        Counter::EventsUndetermined,
        "chatstorm_events_undetermined_total",
        "Expected deliveries neither received nor provably lost.",
    ),
    (
        Counter::GeneratorQueueTimeouts,
        "chatstorm_generator_queue_timeouts_total",
        "REST calls that never got a harness request slot.",
    ),
    (
        Counter::LongpollConnectFailures,
        "chatstorm_longpoll_connect_failures_total",
        "Long-poll connect attempts that failed.",
    ),
    (
        Counter::TlsFullHandshakes,
        "chatstorm_tls_full_handshakes_total",
        "Users' TLS handshakes that were full (no session resumed).",
    ),
    (
        Counter::TlsResumedHandshakes,
        "chatstorm_tls_resumed_handshakes_total",
        "Users' TLS handshakes that resumed a session.",
    ),
];

impl Exposition {
    /// Reads the run's state after a collection.
    pub fn collect(c: &Collector, run: &RunSoFar, labels: &RunLabels) -> Exposition {
        let r = c.recorder();
        let sets = r.sets();
        let profile = |set: usize| r.set_profile(set).map_or("none", |p| p.name());
        let p = |set: usize| -> Labels { vec![("profile", profile(set).to_owned())] };
        let with =
            |set: usize, k: &'static str, v: String| -> Labels { vec![("profile", profile(set).to_owned()), (k, v)] };
        let mut families = Vec::with_capacity(64);

        // Users.
        let mut connected = Family::new(
            "chatstorm_users_connected",
            Kind::Gauge,
            "Users live now, by transport.",
        );
        let mut running = Family::new(
            "chatstorm_users_running",
            Kind::Gauge,
            "User tasks running (started, not stopped).",
        );
        let mut started = Family::new("chatstorm_users_started_total", Kind::Counter, "Users started.");
        for set in 0..sets {
            let (all, lp) = (r.gauge_of(set, Gauge::Connected), r.gauge_of(set, Gauge::LongPolling));
            let users = r.gauge_of(set, Gauge::Users);
            if set == 0 && all == 0 && lp == 0 && users == 0 {
                continue;
            }
            connected
                .samples
                .push((with(set, "transport", "websocket".into()), (all - lp) as f64));
            connected
                .samples
                .push((with(set, "transport", "longpoll".into()), lp as f64));
            running.samples.push((p(set), users as f64));
            started.samples.push((p(set), r.users_started(set) as f64));
        }
        let mut planned = Family::new(
            "chatstorm_users_planned",
            Kind::Gauge,
            "Users this shard's plan starts in all.",
        );
        planned.samples.push((Vec::new(), run.users_planned as f64));
        families.extend([connected, running, started, planned]);

        // Counters.
        for (counter, name, help) in COUNTERS {
            let mut f = Family::new(name, Kind::Counter, help);
            for set in 0..sets {
                let n = r.counter_of(set, counter);
                if set > 0 || n > 0 {
                    f.samples.push((p(set), n as f64));
                }
            }
            families.push(f);
        }

        // Codes.
        let mut errors = Family::new(
            "chatstorm_errors_total",
            Kind::Counter,
            "Failures carrying a Stream error code, by code.",
        );
        let mut closes = Family::new(
            "chatstorm_closes_total",
            Kind::Counter,
            "Connections closed with a WebSocket close code, by code.",
        );
        for set in 0..sets {
            push_codes(&mut errors, &with, set, &r.error_codes_of(set));
            push_codes(&mut closes, &with, set, &r.close_codes_of(set));
        }
        families.extend([errors, closes]);

        // Conformance.
        let mut checks = Family::new(
            "chatstorm_conformance_checks_total",
            Kind::Counter,
            "Observations checked against a conformance rule, by rule.",
        );
        let mut failures = Family::new(
            "chatstorm_conformance_failures_total",
            Kind::Counter,
            "Observations that violated a conformance rule, by rule.",
        );
        for rule in &run.conformance.rules {
            let (mut c_left, mut f_left) = (rule.checks, rule.failures);
            for (name, rules) in &run.conformance_by_profile {
                if let Some(t) = rules.get(rule.id) {
                    let l: Labels = vec![("profile", (*name).to_owned()), ("rule", rule.id.to_owned())];
                    checks.samples.push((l.clone(), t.checks as f64));
                    failures.samples.push((l, t.failures as f64));
                    c_left = c_left.saturating_sub(t.checks);
                    f_left = f_left.saturating_sub(t.failures);
                }
            }
            if c_left > 0 || f_left > 0 {
                let l: Labels = vec![("profile", "none".to_owned()), ("rule", rule.id.to_owned())];
                checks.samples.push((l.clone(), c_left as f64));
                failures.samples.push((l, f_left as f64));
            }
        }
        families.extend([checks, failures]);

        // Generator health (the scheduler lag is a histogram below).
        let gauge = |name, help, v: f64| {
            let mut f = Family::new(name, Kind::Gauge, help);
            f.samples.push((Vec::new(), v));
            f
        };
        let mut late = Family::new(
            "chatstorm_late_starts_total",
            Kind::Counter,
            "Users started later than the documented bound after their planned time.",
        );
        late.samples.push((Vec::new(), run.late_starts as f64));
        families.extend([
            late,
            gauge(
                "chatstorm_descriptors_peak",
                "Most file descriptors open at once so far.",
                run.fd_peak as f64,
            ),
            gauge(
                "chatstorm_descriptors_limit",
                "The process's file descriptor limit.",
                run.fd_limit as f64,
            ),
            gauge(
                "chatstorm_resident_memory_peak_bytes",
                "Peak resident memory of the harness so far.",
                run.peak_rss as f64,
            ),
            gauge(
                "chatstorm_run_elapsed_seconds",
                "Time since the run's start.",
                c.elapsed().as_secs_f64(),
            ),
            gauge(
                "chatstorm_run_planned_seconds",
                "The plan's length.",
                run.planned.as_secs_f64(),
            ),
        ]);

        // Histograms: per profile set; set 0's share is the whole minus the profiles' parts.
        let mut hist: Vec<Family> = Vec::new();
        for index in 0..SERIES_COUNT {
            let Some(series) = Series::from_index(index) else {
                continue;
            };
            let Some(whole) = c.cumulative(series) else { continue };
            // The scheduler lag comes from the probes' own tally (below), never recorded per user.
            if (series.view == View::Intended && !series.metric.scheduled()) || series.metric == Metric::SchedulerLag {
                continue;
            }
            let (name, help, own) = histogram_family(series.metric);
            let at = match hist.iter().position(|f| f.name == name) {
                Some(i) => i,
                None => {
                    hist.push(Family::new(name, Kind::Histogram, help));
                    hist.len() - 1
                }
            };
            let whole = Buckets::of(whole);
            let mut parts = Buckets::default();
            let view = match series.view {
                View::Actual => "actual",
                View::Intended => "intended",
            };
            let labels = |set: usize| {
                let mut l = p(set);
                if let Some((k, v)) = own {
                    l.push((k, v.to_owned()));
                }
                l.push(("view", view.to_owned()));
                l
            };
            for set in 1..sets {
                if let Some(h) = c.cumulative_of(set, series) {
                    let b = Buckets::of(h);
                    parts.add(&b);
                    hist[at].histograms.push((labels(set), b));
                }
            }
            let rest = whole.minus(&parts);
            if rest.count > 0 {
                hist[at].histograms.push((labels(0), rest));
            }
        }
        families.extend(hist);
        let mut lag = Family::new(
            "chatstorm_scheduler_lag_seconds",
            Kind::Histogram,
            "How late the harness's own timers (one probe per runtime, every 10 ms) woke up: the generator's health.",
        );
        if let Some(t) = &run.scheduler_lag {
            let counts = t.counts();
            let count = counts.iter().sum();
            lag.histograms.push((
                Vec::new(),
                Buckets {
                    counts,
                    sum_us: t.sum_us() as f64,
                    count,
                },
            ));
        }
        families.push(lag);

        Exposition {
            run: labels.pairs(),
            families,
            at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

fn push_codes(f: &mut Family, with: &impl Fn(usize, &'static str, String) -> Labels, set: usize, codes: &CodeCounts) {
    for (code, n) in &codes.by_code {
        f.samples.push((with(set, "code", code.to_string()), *n as f64));
    }
    if codes.other > 0 {
        f.samples
            .push((with(set, "code", "other".to_owned()), codes.other as f64));
    }
}
