//! Once per second: drain the recorder's shards into the run's histograms, and feed the live view,
//! the per-second series and curves, and the `.hlog` file.
//!
//! The collector is owned by one task ([`run_collector`]) and never shared, so nothing here needs a
//! lock; recording threads are never waited for (draining is an atomic swap per counter).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::hlog::{HlogError, HlogWriter};
use super::metric::{CONNECT_TAG, COUNTER_COUNT, Counter, Metric, SERIES_COUNT, Series, View};
use super::profile::{CONNECTED_COLUMN, slot_of};
use super::recorder::Gauge;
use super::snapshot::{ProfileSnapshot, SeriesPoint};
use super::timeline::Timeline;
use super::{CodeCounts, HistogramSnapshot, MetricsSnapshot, Recorder, Storm, StormSnapshot, new_histogram};

/// What the progress line shows after each collection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveView {
    /// Time since the run's start.
    pub elapsed: Duration,
    /// Users live now.
    pub connected: i64,
    /// Of those, on long-poll.
    pub longpolling: i64,
    /// User tasks running.
    pub users: i64,
    /// Connects since the start.
    pub connects: u64,
    /// Connects per second during the last interval.
    pub connects_per_s: f64,
    /// p99 of the connects that completed in the last interval (both transports, from the actual
    /// start), microseconds; `None` if none completed.
    pub connect_p99_us: Option<u64>,
    /// Failures (connect, REST, token) during the last interval.
    pub errors: u64,
    /// Failures since the start.
    pub errors_total: u64,
}

const ERROR_COUNTERS: [Counter; 3] = [
    Counter::ConnectFailures,
    Counter::RestFailures,
    Counter::TokenFetchFailures,
];

/// Turns the recorder's shards into per-second figures and, at the end, a [`MetricsSnapshot`].
pub struct Collector {
    recorder: Recorder,
    started: Instant,
    start_wall: SystemTime,
    last: Instant,
    /// Whole-run histograms, created on a series' first sample.
    cumulative: Vec<Option<Histogram<u64>>>,
    /// The same per profile set of the recorder (index 0, no profile, stays empty).
    by_set: Vec<Vec<Option<Histogram<u64>>>>,
    /// Most users live at once, per set.
    connected_peaks: Vec<i64>,
    /// One interval of one series at a time; reused to keep resident memory flat.
    scratch: Histogram<u64>,
    /// The interval's `connect` histogram per view (both transports; index: `View as usize`);
    /// the actual one is also the live view's connect figure.
    connect_interval: [Histogram<u64>; 2],
    /// Whole-run `connect` histograms per view, created on the first sample.
    connect_cumulative: [Option<Histogram<u64>>; 2],
    /// Per-second figures of the `connect` histograms per view.
    connect_series: [Vec<SeriesPoint>; 2],
    series: Vec<Vec<SeriesPoint>>,
    timeline: Timeline,
    prev_counters: [u64; COUNTER_COUNT],
    prev_errors: CodeCounts,
    prev_closes: CodeCounts,
    hlog: Option<HlogWriter<Box<dyn Write + Send>>>,
    hlog_error: Option<HlogError>,
    /// The last interval's non-empty histograms (actual view), V2 deflate base64, when asked
    /// for ([`Collector::keep_intervals`]): a fleet shard publishes them. Taken from the `.hlog`
    /// line just written, so the shard neither encodes them again nor keeps a copy of the
    /// whole-run histograms to subtract (which cost it 1 to 2 % of its CPU at 19,000 users).
    kept: Option<Vec<(Metric, String)>>,
    /// Called at the end of every collection, the last one in [`Collector::finish`] included:
    /// the live endpoints (`crate::live`) read the run's state here, once per second, instead
    /// of touching the recording path.
    on_tick: Option<TickHook>,
}

/// What [`Collector::set_on_tick`] takes.
pub type TickHook = Box<dyn FnMut(&Collector) + Send>;

impl Collector {
    /// A collector for a run that started at `started` (monotonic) / `start_wall` (wall clock,
    /// for the `.hlog` header and for aligning shards when merging).
    pub fn new(recorder: Recorder, started: Instant, start_wall: SystemTime) -> Collector {
        let sets = recorder.sets();
        Collector {
            recorder,
            started,
            start_wall,
            last: started,
            cumulative: (0..SERIES_COUNT).map(|_| None).collect(),
            by_set: (0..sets).map(|_| (0..SERIES_COUNT).map(|_| None).collect()).collect(),
            connected_peaks: vec![0; sets],
            scratch: new_histogram(),
            connect_interval: [new_histogram(), new_histogram()],
            connect_cumulative: [None, None],
            connect_series: [Vec::new(), Vec::new()],
            series: vec![Vec::new(); SERIES_COUNT],
            timeline: Timeline::default(),
            prev_counters: [0; COUNTER_COUNT],
            prev_errors: CodeCounts::default(),
            prev_closes: CodeCounts::default(),
            hlog: None,
            hlog_error: None,
            kept: None,
            on_tick: None,
        }
    }

    /// Calls `hook` with the collector at the end of every collection (after the interval's
    /// samples are in the cumulative histograms), the final one included.
    pub fn set_on_tick(&mut self, hook: TickHook) {
        self.on_tick = Some(hook);
    }

    /// The recorder this collector drains (for live readers of its counters and gauges).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Time from the run's start to the last collection.
    pub fn elapsed(&self) -> Duration {
        self.last.saturating_duration_since(self.started)
    }

    /// The whole-run histogram of a series so far, of one profile set of the recorder (`None`
    /// for set 0, whose samples are only in [`Collector::cumulative`]).
    pub fn cumulative_of(&self, set: usize, series: Series) -> Option<&Histogram<u64>> {
        self.by_set.get(set)?.get(series.index())?.as_ref()
    }

    /// Also writes every interval to an `.hlog` file at `path` (created, header written now).
    ///
    /// # Errors
    /// [`HlogError::Io`] when the file cannot be created; check paths before the run.
    pub fn with_hlog_file(self, path: &Path, comment: &str) -> Result<Collector, HlogError> {
        let file = std::fs::File::create(path)?;
        self.with_hlog(Box::new(std::io::BufWriter::new(file)), comment)
    }

    /// Also writes every interval as an interval log to `out`.
    ///
    /// # Errors
    /// [`HlogError::Io`] when the header cannot be written.
    pub fn with_hlog(mut self, out: Box<dyn Write + Send>, comment: &str) -> Result<Collector, HlogError> {
        self.hlog = Some(HlogWriter::new(out, self.start_wall, comment)?);
        Ok(self)
    }

    /// Keeps each interval's histograms, encoded, for [`Collector::last_interval`].
    pub fn keep_intervals(&mut self) {
        self.kept.get_or_insert_with(Vec::new);
    }

    /// The last interval's histograms (actual view) that had samples, V2 deflate base64 (what
    /// [`HistogramSnapshot::decode`] reads); empty unless [`Collector::keep_intervals`] was
    /// called.
    pub fn last_interval(&self) -> &[(Metric, String)] {
        self.kept.as_deref().unwrap_or_default()
    }

    /// The first error writing the `.hlog`, after which the log was abandoned and the run went
    /// on (a full disk must not stop the measurement).
    pub fn hlog_error(&self) -> Option<&HlogError> {
        self.hlog_error.as_ref()
    }

    /// The whole-run histogram of a series so far (for thresholds evaluated during the run).
    pub fn cumulative(&self, series: Series) -> Option<&Histogram<u64>> {
        self.cumulative[series.index()].as_ref()
    }

    /// Collects the interval ending at `now`: call about once per second.
    pub fn tick(&mut self, now: Instant) -> LiveView {
        let start = self.last;
        let now = now.max(start);
        self.last = now;
        let length = now - start;
        let t_start = start.saturating_duration_since(self.started);
        let t_end = now.saturating_duration_since(self.started);
        let t_ms = millis(t_end);

        for h in &mut self.connect_interval {
            if !h.is_empty() {
                h.reset();
            }
        }
        if let Some(k) = &mut self.kept {
            k.clear();
        }
        for (index, points) in self.series.iter_mut().enumerate() {
            let Some(series) = Series::from_index(index) else {
                continue;
            };
            if !self.scratch.is_empty() {
                self.scratch.reset();
            }
            let scratch = &mut self.scratch;
            let cumulative = &mut self.cumulative[index];
            for (set, per_set) in self.by_set.iter_mut().enumerate() {
                let mut mine = (set > 0).then(|| &mut per_set[index]);
                self.recorder.drain_set(set, series, |value, n| {
                    scratch.saturating_record_n(value, n);
                    cumulative
                        .get_or_insert_with(new_histogram)
                        .saturating_record_n(value, n);
                    if let Some(h) = &mut mine {
                        h.get_or_insert_with(new_histogram).saturating_record_n(value, n);
                    }
                });
            }
            // Every histogram the run can record gets its `.hlog` line every interval, empty or
            // not (see `hlog`); the per-second series keeps only intervals with samples.
            if logged(series)
                && let Some(w) = &mut self.hlog
                && let Err(e) = w.write(&series.tag(), t_start, length, scratch)
            {
                self.hlog = None;
                self.hlog_error.get_or_insert(e);
            }
            if scratch.is_empty() {
                continue;
            }
            if series.view == View::Actual
                && let Some(kept) = &mut self.kept
            {
                let encoded = match &self.hlog {
                    Some(w) => w.last_encoded().to_owned(),
                    // The log was abandoned (a full disk): encode it here.
                    None => HistogramSnapshot::encode(scratch, 0).encoded,
                };
                kept.push((series.metric, encoded));
            }
            if is_connect(series.metric) {
                // Same bounds on both sides, so adding cannot fail.
                let _ = self.connect_interval[series.view as usize].add(&*scratch);
            }
            points.push(point(t_ms, scratch));
        }
        // `connect`: both transports merged, a histogram of its own (a threshold can name it).
        for view in View::ALL {
            let h = &self.connect_interval[view as usize];
            let tag = connect_tag(view);
            if let Some(w) = &mut self.hlog
                && let Err(e) = w.write(&tag, t_start, length, h)
            {
                self.hlog = None;
                self.hlog_error.get_or_insert(e);
            }
            if !h.is_empty() {
                let _ = self.connect_cumulative[view as usize]
                    .get_or_insert_with(new_histogram)
                    .add(h);
                self.connect_series[view as usize].push(point(t_ms, h));
            }
        }
        if let Some(w) = &mut self.hlog
            && let Err(e) = w.flush()
        {
            self.hlog = None;
            self.hlog_error.get_or_insert(e);
        }

        let mut counters = [0u64; COUNTER_COUNT];
        for c in Counter::ALL {
            counters[c.index()] = self.recorder.counter(c);
        }
        let delta = |c: Counter| counters[c.index()].saturating_sub(self.prev_counters[c.index()]);
        let errors = self.recorder.error_codes();
        let closes = self.recorder.close_codes();
        let gauges = Gauge::ALL.map(|g| (g.name(), self.recorder.gauge(g)));
        let mut columns = Vec::new();
        for (set, peak) in self.connected_peaks.iter_mut().enumerate() {
            let level = self.recorder.gauge_of(set, Gauge::Connected);
            *peak = (*peak).max(level);
            // A run of one profile needs no column of its own: it is the `connected` column.
            if self.by_set.len() > 2
                && let Some(p) = self.recorder.set_profile(set)
            {
                columns.push((CONNECTED_COLUMN[slot_of(p)], level));
            }
        }
        self.timeline.push(
            t_ms,
            gauges.into_iter().chain(columns),
            Counter::ALL
                .into_iter()
                .filter(|c| !c.sparse())
                .map(|c| (c.name(), delta(c))),
            &errors.since(&self.prev_errors),
            &closes.since(&self.prev_closes),
        );
        let live = LiveView {
            elapsed: t_end,
            connected: gauges[Gauge::Connected as usize].1,
            longpolling: gauges[Gauge::LongPolling as usize].1,
            users: gauges[Gauge::Users as usize].1,
            connects: counters[Counter::Connects.index()],
            connects_per_s: if length.is_zero() {
                0.0
            } else {
                delta(Counter::Connects) as f64 / length.as_secs_f64()
            },
            connect_p99_us: {
                let live = &self.connect_interval[View::Actual as usize];
                (!live.is_empty()).then(|| live.value_at_quantile(0.99))
            },
            errors: ERROR_COUNTERS.iter().map(|&c| delta(c)).sum(),
            errors_total: ERROR_COUNTERS.iter().map(|&c| counters[c.index()]).sum(),
        };
        self.prev_counters = counters;
        self.prev_errors = errors;
        self.prev_closes = closes;
        if let Some(mut hook) = self.on_tick.take() {
            hook(self);
            self.on_tick = Some(hook);
        }
        live
    }

    /// Collects the last interval (everything recorded up to now) and returns the run's
    /// measurements. Call it after every user task has stopped, so that no sample is left behind.
    pub fn finish(mut self, now: Instant) -> MetricsSnapshot {
        self.tick(now);
        if let Some(mut w) = self.hlog.take()
            && let Err(e) = w.flush()
        {
            self.hlog_error.get_or_insert(e);
        }
        let mut snapshot = self.measurements();
        snapshot.storms = self.storms(Storm::take_snapshot);
        snapshot
    }

    /// The run's measurements as of the last collection, with the storms' recovery so far (read
    /// without taking their counts, which [`Collector::finish`] takes once, at the end): what the
    /// live dashboard draws.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut snapshot = self.measurements();
        snapshot.storms = self.storms(Storm::peek_snapshot);
        snapshot
    }

    /// Every storm of the run so far, in the order they happened, each read by `read`.
    fn storms(&self, read: fn(&Storm, Duration) -> StormSnapshot) -> Vec<StormSnapshot> {
        let mut storms: Vec<StormSnapshot> = self
            .recorder
            .storms()
            .iter()
            .map(|s| read(s, s.at().saturating_duration_since(self.started)))
            .collect();
        storms.sort_by_key(|s| s.offset_ms);
        storms
    }

    /// The run's measurements as of the last collection, storms aside.
    fn measurements(&self) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot {
            start_unix_ms: self.start_wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, millis),
            duration_ms: millis(self.last.saturating_duration_since(self.started)),
            shards: 1,
            ..MetricsSnapshot::default()
        };
        for (index, (h, points)) in self.cumulative.iter().zip(&self.series).enumerate() {
            let (Some(series), Some(h)) = (Series::from_index(index), h) else {
                continue;
            };
            let tag = series.tag();
            snapshot
                .histograms
                .insert(tag.clone(), HistogramSnapshot::encode(h, self.recorder.clamped(series)));
            snapshot.series.insert(tag, points.clone());
        }
        for view in View::ALL {
            if let Some(h) = &self.connect_cumulative[view as usize] {
                let clamped = connect_clamped(view, |s| self.recorder.clamped(s));
                snapshot
                    .histograms
                    .insert(connect_tag(view), HistogramSnapshot::encode(h, clamped));
                snapshot
                    .series
                    .insert(connect_tag(view), self.connect_series[view as usize].clone());
            }
        }
        for c in Counter::ALL {
            if c.sparse() && self.prev_counters[c.index()] == 0 {
                continue;
            }
            snapshot
                .counters
                .insert(c.name().to_owned(), self.prev_counters[c.index()]);
        }
        snapshot.error_codes = self.prev_errors.clone();
        snapshot.close_codes = self.prev_closes.clone();
        snapshot.failure_kinds = self.recorder.failure_kinds();
        for (set, per_set) in self.by_set.iter().enumerate() {
            let Some(profile) = self.recorder.set_profile(set) else {
                continue;
            };
            let mut p = ProfileSnapshot {
                users: self.recorder.users_started(set),
                connected_peak: u64::try_from(self.connected_peaks[set]).unwrap_or(0),
                error_codes: self.recorder.error_codes_of(set),
                close_codes: self.recorder.close_codes_of(set),
                failure_kinds: self.recorder.failure_kinds_of(set),
                ..ProfileSnapshot::default()
            };
            let mut connect = [None, None];
            for (index, h) in per_set.iter().enumerate() {
                if let (Some(series), Some(h)) = (Series::from_index(index), h) {
                    let clamped = self.recorder.clamped_of(set, series);
                    p.histograms.insert(series.tag(), HistogramSnapshot::encode(h, clamped));
                    if is_connect(series.metric) {
                        let _ = connect[series.view as usize].get_or_insert_with(new_histogram).add(h);
                    }
                }
            }
            for view in View::ALL {
                if let Some(h) = &connect[view as usize] {
                    let clamped = connect_clamped(view, |s| self.recorder.clamped_of(set, s));
                    p.histograms
                        .insert(connect_tag(view), HistogramSnapshot::encode(h, clamped));
                }
            }
            for c in Counter::ALL {
                let n = self.recorder.counter_of(set, c);
                if !(c.sparse() && n == 0) {
                    p.counters.insert(c.name().to_owned(), n);
                }
            }
            snapshot.profiles.insert(profile.name().to_owned(), p);
        }
        snapshot.timeline = self.timeline.clone();
        snapshot
    }
}

/// A transport's connect histogram, part of the merged `connect`.
fn is_connect(metric: Metric) -> bool {
    matches!(metric, Metric::ConnectWs | Metric::ConnectLongpoll)
}

/// `connect` or `connect.intended`.
fn connect_tag(view: View) -> String {
    format!("{CONNECT_TAG}{}", view.suffix())
}

fn point(t_ms: u64, h: &Histogram<u64>) -> SeriesPoint {
    SeriesPoint {
        t_ms,
        count: h.len(),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    }
}

/// Whether a series gets `.hlog` lines: every metric's actual view, and the intended view of the
/// metrics that have a schedule (the others never record one).
fn logged(series: Series) -> bool {
    series.view == View::Actual || series.metric.scheduled()
}

/// The clamped samples of both transports' connect histograms in `view`.
fn connect_clamped(view: View, clamped: impl Fn(Series) -> u64) -> u64 {
    [Metric::ConnectWs, Metric::ConnectLongpoll]
        .into_iter()
        .map(|metric| clamped(Series { metric, view }))
        .sum()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs a collector every `period` until `cancel` fires, handing each [`LiveView`] to `on_tick`,
/// then collects the last interval and returns the run's snapshot.
///
/// Cancel it only after the user tasks have stopped (or accept that samples recorded after the
/// final collection are not in the snapshot). A late tick is not made up for: the next interval
/// is simply longer, and its length is what the `.hlog` line says.
pub async fn run_collector(
    mut collector: Collector,
    period: Duration,
    cancel: CancellationToken,
    mut on_tick: impl FnMut(&LiveView),
) -> MetricsSnapshot {
    let first = tokio::time::Instant::now() + period;
    let mut ticker = tokio::time::interval_at(first, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            at = ticker.tick() => {
                let live = collector.tick(at.into_std());
                on_tick(&live);
            }
        }
    }
    collector.finish(tokio::time::Instant::now().into_std())
}

#[cfg(test)]
#[path = "collector_tests.rs"]
mod tests;
