//! Tests of the collector: per-interval figures, the `.hlog` written as the run goes, the final
//! snapshot, the async driver under paused time, and the exact merge of shard snapshots.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::metrics::{RestEndpoint, hlog};

const WS: Series = Series {
    metric: Metric::ConnectWs,
    view: View::Actual,
};
const WS_INTENDED: Series = Series {
    metric: Metric::ConnectWs,
    view: View::Intended,
};

fn wall(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A `Write` whose bytes stay readable while the collector owns the writer.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

#[test]
fn tick_reports_the_interval_and_keeps_the_run() {
    let r = Recorder::with_shards(2);
    let t0 = Instant::now();
    let mut c = Collector::new(r.clone(), t0, wall(1_000));
    for ms in 1..=100u64 {
        r.record(Metric::ConnectWs, Duration::from_millis(ms));
        r.count(Counter::Connects);
    }
    r.count_n(Counter::ConnectFailures, 2);
    r.count(Counter::RestFailures);
    r.gauge_add(Gauge::Connected, 100);
    r.error_code(40);
    let live = c.tick(t0 + Duration::from_secs(1));
    assert_eq!(live.elapsed, Duration::from_secs(1));
    assert_eq!(live.connected, 100);
    assert_eq!(live.connects, 100);
    assert!((live.connects_per_s - 100.0).abs() < 1e-9);
    assert!(
        live.connect_p99_us.is_some_and(|us| us.abs_diff(99_000) < 100),
        "{live:?}"
    );
    assert_eq!((live.errors, live.errors_total), (3, 3));

    // Second interval: 2 s long, fewer connects; the run-wide histogram keeps both.
    r.record(Metric::ConnectWs, Duration::from_millis(500));
    r.count_n(Counter::Connects, 10);
    r.gauge_add(Gauge::Connected, -40);
    let live = c.tick(t0 + Duration::from_secs(3));
    assert!((live.connects_per_s - 5.0).abs() < 1e-9);
    assert_eq!(live.connects, 110);
    assert_eq!((live.errors, live.errors_total), (0, 3));
    assert!(live.connect_p99_us.is_some_and(|us| us.abs_diff(500_000) < 500));
    assert_eq!(c.cumulative(WS).map(|h| h.len()), Some(101));
    assert!(c.cumulative(WS_INTENDED).is_none());

    // An interval with no connects shows none.
    let live = c.tick(t0 + Duration::from_secs(4));
    assert_eq!(live.connect_p99_us, None);
    assert_eq!(live.connected, 60);

    let s = c.finish(t0 + Duration::from_secs(5));
    assert_eq!(s.start_unix_ms, 1_000_000);
    assert_eq!(s.duration_ms, 5_000);
    let points = &s.series["connect.ws"];
    assert_eq!(
        points.iter().map(|p| (p.t_ms, p.count)).collect::<Vec<_>>(),
        [(1_000, 100), (3_000, 1)]
    );
    assert!(points[0].p50_us.abs_diff(50_000) < 50);
    assert_eq!(s.histograms["connect.ws"].count, 101);
    // `connect` (both transports) is published beside its one non-empty part, with the same
    // samples; only non-empty histograms are kept.
    assert_eq!(s.histograms["connect"], s.histograms["connect.ws"]);
    assert_eq!(s.series["connect"], s.series["connect.ws"]);
    assert_eq!(s.histograms.len(), 2, "only non-empty histograms are kept");
    assert_eq!(s.counters["connects"], 110);
    assert_eq!(s.counters["connect_failures"], 2);
    assert_eq!(s.error_codes.by_code, BTreeMap::from([(40, 1)]));
    assert_eq!(s.timeline.t_ms, [1_000, 3_000, 4_000, 5_000]);
    assert_eq!(s.timeline.gauges["connected"], [100, 60, 60, 60]);
    assert_eq!(s.timeline.counters["connects"], [100, 10, 0, 0]);
    assert_eq!(s.timeline.error_codes.len(), 1);
}

#[test]
fn hlog_is_written_as_the_run_goes_and_reads_back_exactly() {
    let r = Recorder::with_shards(4);
    let t0 = Instant::now();
    let buf = SharedBuf::default();
    let mut c = Collector::new(r.clone(), t0, wall(1_764_471_600))
        .with_hlog(Box::new(buf.clone()), "chatstorm test")
        .expect("header");
    let read = Metric::Rest(RestEndpoint::Read);
    let mut recorded: BTreeMap<String, u64> = BTreeMap::new();
    for second in 1..=3u64 {
        for i in 0..(50 * second) {
            r.record(Metric::ConnectWs, Duration::from_micros(300 + i * 17));
            let start = t0 + Duration::from_millis(i);
            r.record_corrected(read, t0, start, start + Duration::from_micros(i * 5));
        }
        *recorded.entry("connect.ws".into()).or_default() += 50 * second;
        *recorded.entry("connect".into()).or_default() += 50 * second;
        *recorded.entry("rest.read".into()).or_default() += 50 * second;
        *recorded.entry("rest.read.intended".into()).or_default() += 50 * second;
        c.tick(t0 + Duration::from_secs(second));
        // Flushed each interval: what is on "disk" already parses, with this interval in it.
        // Every histogram the run can record has its line every interval, empty or not.
        let log = hlog::read(&buf.bytes()).expect("parse mid-run");
        assert_eq!(log.intervals.len() as u64, LOGGED * second);
    }
    r.record(Metric::SchedulerLag, Duration::from_millis(3));
    *recorded.entry("scheduler.lag".into()).or_default() += 1;
    let snapshot = c.finish(t0 + Duration::from_millis(3_500));

    let log = hlog::read(&buf.bytes()).expect("parse");
    assert_eq!(log.base_time, Some(Duration::from_secs(1_764_471_600)));
    let mut from_log: BTreeMap<String, u64> = BTreeMap::new();
    for interval in &log.intervals {
        let tag = interval.tag.clone().expect("every line is tagged");
        *from_log.entry(tag).or_default() += interval.histogram.len();
    }
    from_log.retain(|_, n| *n > 0);
    assert_eq!(from_log, recorded);
    assert_eq!(log.intervals.len() as u64, LOGGED * 4);
    let last = log
        .intervals
        .iter()
        .rfind(|i| i.tag.as_deref() == Some("scheduler.lag"))
        .expect("a scheduler.lag line");
    assert_eq!(last.start, Duration::from_secs(3));
    assert_eq!(last.length, Duration::from_millis(500));
    assert_eq!(last.histogram.len(), 1);
    let empty = log
        .intervals
        .iter()
        .find(|i| i.tag.as_deref() == Some("delivery.typing.intended"))
        .expect("an empty histogram still has its line");
    assert!(empty.histogram.is_empty());
    assert!(
        !log.intervals
            .iter()
            .any(|i| i.tag.as_deref() == Some("scheduler.lag.intended")),
        "a metric without a schedule has no intended view to log"
    );
    // The sum of a tag's intervals is the run's histogram for that tag.
    let mut sum = new_histogram();
    for i in log
        .intervals
        .iter()
        .filter(|i| i.tag.as_deref() == Some("rest.read.intended"))
    {
        sum.add(&i.histogram).expect("same bounds");
    }
    assert_eq!(sum, snapshot.histogram("rest.read.intended").expect("decode"));
    assert!(c_has_no_error(&snapshot));
}

/// Lines per interval: every metric's actual view, the intended view of the scheduled ones, and
/// `connect` in both views.
const LOGGED: u64 = {
    let mut n = 2;
    let mut i = 0;
    while i < Metric::ALL.len() {
        n += if Metric::ALL[i].scheduled() { 2 } else { 1 };
        i += 1;
    }
    n
};

fn c_has_no_error(s: &MetricsSnapshot) -> bool {
    s.histograms.values().all(|h| h.decode().is_ok())
}

#[test]
fn a_failing_hlog_is_abandoned_without_stopping_the_collection() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.starts_with(b"Tag=") {
                Err(std::io::Error::other("disk full"))
            } else {
                Ok(buf.len())
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let r = Recorder::with_shards(1);
    let t0 = Instant::now();
    let mut c = Collector::new(r.clone(), t0, wall(0))
        .with_hlog(Box::new(Broken), "x")
        .expect("header");
    r.record(Metric::TokenFetch, Duration::from_millis(1));
    c.tick(t0 + Duration::from_secs(1));
    assert!(matches!(c.hlog_error(), Some(HlogError::Io(_))));
    r.record(Metric::TokenFetch, Duration::from_millis(1));
    let s = c.finish(t0 + Duration::from_secs(2));
    assert_eq!(s.histograms["token.fetch"].count, 2);
}

#[test]
fn storms_are_in_the_snapshot_and_in_the_recovery_histogram() {
    let r = Recorder::with_shards(2);
    let t0 = Instant::now();
    let c = Collector::new(r.clone(), t0, wall(0));
    let at = t0 + Duration::from_secs(10);
    let storm = r.begin_storm("drop_sockets@10s", at, 4);
    for (i, ms) in [100u64, 200, 300].into_iter().enumerate() {
        r.recovered(&storm, at + Duration::from_millis(ms), i as u32 + 1);
    }
    let s = c.finish(t0 + Duration::from_secs(12));
    assert_eq!(s.storms.len(), 1);
    let figures = s.storms[0].figures().expect("figures");
    assert_eq!(figures.at_ms, 10_000);
    assert_eq!((figures.dropped, figures.recovered, figures.attempts_max), (4, 3, 3));
    assert_eq!(figures.p100_ms, None);
    assert_eq!(s.histograms["recovery"].count, 3);
}

#[test]
fn a_live_snapshot_shows_a_storm_so_far_and_leaves_its_counts_for_the_end() {
    let r = Recorder::with_shards(2);
    let t0 = Instant::now();
    let c = Collector::new(r.clone(), t0, wall(0));
    let at = t0 + Duration::from_secs(5);
    let storm = r.begin_storm("drop_sockets@5s", at, 3);
    r.recovered(&storm, at + Duration::from_millis(150), 1);
    let live = c.snapshot();
    assert_eq!(live.storms.len(), 1);
    let so_far = live.storms[0].figures().expect("figures");
    assert_eq!((so_far.dropped, so_far.recovered), (3, 1));
    // Read twice: a look takes nothing.
    assert_eq!(c.snapshot().storms[0].figures().expect("figures").recovered, 1);
    r.recovered(&storm, at + Duration::from_millis(250), 2);
    r.recovered(&storm, at + Duration::from_millis(350), 1);
    let end = c.finish(t0 + Duration::from_secs(7));
    let figures = end.storms[0].figures().expect("figures");
    assert_eq!((figures.dropped, figures.recovered, figures.attempts_max), (3, 3, 2));
    assert_eq!(figures.p100_ms, Some(350));
}

#[tokio::test(start_paused = true)]
async fn run_collector_ticks_each_second_until_cancelled() {
    let r = Recorder::with_shards(2);
    let t0 = tokio::time::Instant::now().into_std();
    let c = Collector::new(r.clone(), t0, wall(0));
    let cancel = CancellationToken::new();
    let views = Arc::new(Mutex::new(Vec::new()));
    let seen = views.clone();
    let task = tokio::spawn(run_collector(c, Duration::from_secs(1), cancel.clone(), move |v| {
        if let Ok(mut s) = seen.lock() {
            s.push(v.clone());
        }
    }));
    // Record at 0.5 s, 1.5 s, 2.5 s: half-way between ticks, so the order of wake-ups at one
    // instant cannot matter.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        r.count(Counter::Connects);
        r.record(Metric::ConnectWs, Duration::from_millis(2));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    r.record(Metric::ConnectWs, Duration::from_millis(2));
    cancel.cancel();
    let s = task.await.expect("collector task");
    let views = views.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(views.len(), 3);
    assert_eq!(
        views.iter().map(|v| v.elapsed.as_millis()).collect::<Vec<_>>(),
        [1_000, 2_000, 3_000]
    );
    assert!(
        views
            .iter()
            .all(|v| v.connects_per_s == 1.0 && v.connect_p99_us.is_some())
    );
    assert_eq!(s.timeline.t_ms, [1_000, 2_000, 3_000, 3_500]);
    assert_eq!(
        s.histograms["connect.ws"].count, 4,
        "the sample after the last tick is kept"
    );
}

/// Records a deterministic workload slice into a recorder, as one shard of a run would.
fn workload(r: &Recorder, t0: Instant, users: std::ops::Range<u64>) {
    for u in users {
        let lat = Duration::from_micros(200 + u * u % 90_000);
        let intended = t0 + Duration::from_millis(u);
        r.record_corrected(
            Metric::ConnectWs,
            intended,
            intended + Duration::from_micros(u % 700),
            intended + lat,
        );
        r.record(Metric::TokenFetch, Duration::from_micros(50 + u % 300));
        if u % 7 == 0 {
            r.record(Metric::DeliveryTyping, Duration::from_secs(4_000)); // clamped
        }
        r.count(Counter::Connects);
        if u % 5 == 0 {
            r.error_code(40);
            r.close_code(1011);
        }
    }
}

#[test]
fn merging_shard_snapshots_equals_recording_everything_in_one() {
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(2);
    let one = Recorder::with_shards(2);
    workload(&one, t0, 0..3_000);
    let one = Collector::new(one, t0, wall(5_000)).finish(end);

    let (a, b) = (Recorder::with_shards(2), Recorder::with_shards(4));
    workload(&a, t0, 0..1_234);
    workload(&b, t0, 1_234..3_000);
    let mut merged = Collector::new(a, t0, wall(5_000)).finish(end);
    merged
        .merge(&Collector::new(b, t0, wall(5_000)).finish(end))
        .expect("merge");

    assert_eq!(merged.shards, 2);
    assert_eq!(
        merged.histograms.keys().collect::<Vec<_>>(),
        one.histograms.keys().collect::<Vec<_>>()
    );
    for (tag, h) in &one.histograms {
        assert_eq!(
            merged.histogram(tag).expect("decode"),
            h.decode().expect("decode"),
            "{tag}"
        );
        assert_eq!(merged.histograms[tag].count, h.count);
        assert_eq!(merged.histograms[tag].clamped, h.clamped, "{tag}");
    }
    assert_eq!(one.histograms["delivery.typing"].clamped, 429);
    assert_eq!(merged.counters, one.counters);
    assert_eq!(merged.error_codes, one.error_codes);
    assert_eq!(merged.close_codes, one.close_codes);
    assert_eq!(merged.timeline.counters, one.timeline.counters);
    assert_eq!(
        merged.histograms["connect.ws"].summary().expect("summary"),
        one.histograms["connect.ws"].summary().expect("summary")
    );
    // Survives JSON, as summary.json and `report merge` need.
    let json = serde_json::to_string(&merged).expect("serialize");
    let back: MetricsSnapshot = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, merged);
    // Merging into an empty snapshot is the identity.
    let mut empty = MetricsSnapshot::default();
    empty.merge(&one).expect("merge");
    assert_eq!(empty, one);
}

#[test]
fn merge_aligns_shards_that_started_at_different_times() {
    let t0 = Instant::now();
    let (a, b) = (Recorder::with_shards(1), Recorder::with_shards(1));
    a.gauge_add(Gauge::Connected, 10);
    b.gauge_add(Gauge::Connected, 5);
    let mut ca = Collector::new(a.clone(), t0, wall(100));
    let mut cb = Collector::new(b.clone(), t0, wall(102));
    for s in 1..=3 {
        ca.tick(t0 + Duration::from_secs(s));
        cb.tick(t0 + Duration::from_secs(s));
    }
    let sb = b.begin_storm("drop@1s", t0 + Duration::from_secs(1), 5);
    b.recovered(&sb, t0 + Duration::from_secs(2), 1);
    let mut merged = ca.finish(t0 + Duration::from_secs(3));
    let other = cb.finish(t0 + Duration::from_secs(3));
    merged.merge(&other).expect("merge");
    assert_eq!(merged.start_unix_ms, 100_000);
    assert_eq!(merged.duration_ms, 5_000);
    assert_eq!(merged.timeline.t_ms, [1_000, 2_000, 3_000, 4_000, 5_000]);
    assert_eq!(merged.timeline.gauges["connected"], [10, 10, 15, 5, 5]);
    assert_eq!(merged.storms.len(), 1);
    assert_eq!(merged.storms[0].offset_ms, 3_000);
    assert!(
        MetricsSnapshot::default()
            .histogram("connect.ws")
            .is_ok_and(|h| h.is_empty())
    );
}

#[test]
fn corrupt_snapshots_are_errors() {
    let bad = HistogramSnapshot {
        count: 1,
        clamped: 0,
        encoded: "not base64!".into(),
    };
    assert!(matches!(bad.decode(), Err(crate::metrics::SnapshotError::Decode(..))));
    let mut a = MetricsSnapshot {
        shards: 1,
        ..MetricsSnapshot::default()
    };
    let mut b = a.clone();
    b.histograms.insert("connect.ws".into(), bad);
    assert!(a.merge(&b).is_err());
}

/// One process's run of a two-profile fleet: `js_users` JS users and `unity_users` Unity users,
/// each connecting once, with a storm that drops one user of each, and a wave of Unity users.
fn fleet(js_users: u64, unity_users: u64, wall_s: u64) -> MetricsSnapshot {
    use crate::metrics::profile::with_profile;
    use chatstorm_protocol::Profile;
    let r = Recorder::for_profiles(&[Profile::Js, Profile::Unity]);
    let t0 = Instant::now();
    let mut c = Collector::new(r.clone(), t0, wall(wall_s));
    let storm = r.begin_storm("drop@1s", t0 + Duration::from_secs(1), 0);
    let wave = r.begin_wave("background@1s", t0 + Duration::from_secs(1), Duration::from_secs(10));
    for (profile, users, ms) in [(Profile::Js, js_users, 20), (Profile::Unity, unity_users, 300)] {
        for _ in 0..users {
            r.user_started(profile);
        }
        with_profile(profile, || {
            for _ in 0..users {
                r.count(Counter::Connects);
                r.record(Metric::ConnectWs, Duration::from_millis(ms));
                r.gauge_add(Gauge::Connected, 1);
            }
            r.close_code(1011);
            storm.add_dropped();
            r.recovered(&storm, t0 + Duration::from_millis(1_000 + ms), 2);
        });
    }
    c.tick(t0 + Duration::from_secs(1));
    with_profile(Profile::Unity, || {
        wave.add_dropped();
        // Came back 1.5 s after the foreground (t0 + 1 s + 10 s).
        r.recovered(&wave, t0 + Duration::from_millis(12_500), 1);
        r.gauge_add(Gauge::Connected, -1);
    });
    r.count(Counter::LateTicks);
    c.finish(t0 + Duration::from_secs(2))
}

#[test]
fn a_fleet_is_measured_per_profile_and_the_profiles_add_up() {
    let m = fleet(30, 10, 1_000);
    assert_eq!(m.profiles.keys().collect::<Vec<_>>(), ["js", "unity"]);
    let (js, unity) = (&m.profiles["js"], &m.profiles["unity"]);
    assert_eq!((js.users, unity.users), (30, 10));
    assert_eq!((js.counters["connects"], unity.counters["connects"]), (30, 10));
    assert_eq!(m.counters["connects"], 40);
    assert_eq!(m.counters["late_ticks"], 1, "in the totals, in no profile");
    assert_eq!(js.counters["late_ticks"] + unity.counters["late_ticks"], 0);
    assert_eq!((js.connected_peak, unity.connected_peak), (30, 10));
    let p50 = |p: &crate::metrics::ProfileSnapshot| p.histograms["connect.ws"].summary().expect("s").p50_us;
    assert!(p50(js).abs_diff(20_000) < 50 && p50(unity).abs_diff(300_000) < 500);
    assert_eq!(m.histograms["connect.ws"].count, 40);
    assert_eq!(unity.close_codes.by_code.get(&1011), Some(&1));
    assert_eq!(m.close_codes.by_code.get(&1011), Some(&2));
    // Mixed profiles: each has its own connected column in the timeline.
    assert_eq!(m.timeline.gauges["connected.js"], [30, 30]);
    assert_eq!(m.timeline.gauges["connected.unity"], [10, 9]);
    // The storm per profile; the wave measured from the return to the foreground.
    let (storm, wave) = (&m.storms[0], &m.storms[1]);
    assert_eq!(
        (
            storm.counts.dropped,
            storm.by_profile["js"].dropped,
            storm.by_profile["unity"].dropped
        ),
        (2, 1, 1)
    );
    assert_eq!(wave.away_ms, 10_000);
    assert_eq!(
        wave.by_profile.keys().collect::<Vec<_>>(),
        ["unity"],
        "no JS user took part"
    );
    let back = wave.figures().expect("figures").p100_ms.expect("all back");
    assert!(back.abs_diff(1_500) <= 2, "{back}");
    let recovery = m.histograms["recovery"].count;
    assert_eq!(
        recovery, 2,
        "only the storm's recoveries are reconnect-storm recoveries"
    );
}

#[test]
fn merging_fleets_merges_every_profile_exactly() {
    let (a, b) = (fleet(30, 10, 1_000), fleet(5, 7, 1_000));
    let mut merged = a.clone();
    merged.merge(&b).expect("merge");
    for name in ["js", "unity"] {
        let (m, x, y) = (&merged.profiles[name], &a.profiles[name], &b.profiles[name]);
        assert_eq!(m.users, x.users + y.users, "{name}");
        assert_eq!(m.counters["connects"], x.counters["connects"] + y.counters["connects"]);
        let mut h = x.histograms["connect.ws"].decode().expect("decode");
        h.add(y.histograms["connect.ws"].decode().expect("decode"))
            .expect("add");
        assert_eq!(m.histograms["connect.ws"].decode().expect("decode"), h, "{name}");
        assert_eq!(
            merged.timeline.gauges[&format!("connected.{name}")][0],
            (x.connected_peak + y.connected_peak) as i64
        );
    }
    assert_eq!(merged.storms.len(), 2);
    assert_eq!(merged.storms[1].by_profile["unity"].dropped, 2);
    assert_eq!(merged.storms[1].by_profile["unity"].recovered, 2);
    let json = serde_json::to_string(&merged).expect("serialize");
    let back: MetricsSnapshot = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, merged);
}
