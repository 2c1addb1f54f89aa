//! Reconnect storms: after a drop of many sockets at once, how fast the dropped users came back.
//!
//! A [`Storm`] is opened by the engine when it drops sockets ([`Recorder::begin_storm`]); each
//! dropped user reports once when it is live again ([`Recorder::recovered`]). Memory is one
//! histogram of recovery times and one of attempts per storm, whatever the number of users: the
//! recovery curve and the time until 50/90/99/100 % are back are read off the recovery-time
//! histogram (its CDF), exact to HdrHistogram's 3 significant digits.
//!
//! A background wave (mobile apps sent to the background at once, back after a set time) is a
//! storm with an `away` time: its users leave on purpose, and their recovery is measured from the
//! moment they come back to the foreground ([`Recorder::begin_wave`]). Each storm also keeps the
//! same figures per profile set of the recorder (see [`super::profile`]).
//!
//! The shapes: [`StormCounts`] holds the raw figures of one set of users (mergeable across
//! shards); a [`StormSnapshot`] is one storm's label and time with its counts in total and per
//! profile; [`StormFigures`] is what a report says about it, read off the snapshot by
//! [`StormSnapshot::figures`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::atomic_histogram::AtomicHistogram;
use super::profile::{PROFILE_SLOTS, current_slot};
use super::snapshot::{HistogramSnapshot, SnapshotError};
use super::{Metric, Recorder, new_histogram};

/// The figures of one storm for one set of users (the whole run, or one profile).
struct Tally {
    dropped: AtomicU64,
    recovered: AtomicU64,
    attempts_total: AtomicU64,
    attempts_max: AtomicU64,
    times: AtomicHistogram,
    attempts: AtomicHistogram,
}

impl Tally {
    fn new(dropped: u64) -> Tally {
        Tally {
            dropped: AtomicU64::new(dropped),
            recovered: AtomicU64::new(0),
            attempts_total: AtomicU64::new(0),
            attempts_max: AtomicU64::new(0),
            times: AtomicHistogram::new(),
            attempts: AtomicHistogram::new(),
        }
    }

    fn recovered(&self, took: Duration, attempts: u32) {
        self.times.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        self.attempts.record(u64::from(attempts));
        self.attempts_total.fetch_add(u64::from(attempts), Ordering::Relaxed);
        self.attempts_max.fetch_max(u64::from(attempts), Ordering::Relaxed);
        self.recovered.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far; `take` empties the histograms (once, at the end), otherwise they are
    /// only read (a live look while the storm goes on).
    fn counts(&self, take: bool) -> StormCounts {
        let drain = |a: &AtomicHistogram| {
            let mut h = new_histogram();
            if take {
                a.drain(|v, n| h.saturating_record_n(v, n));
            } else {
                a.peek(|v, n| h.saturating_record_n(v, n));
            }
            h
        };
        StormCounts {
            dropped: self.dropped.load(Ordering::Relaxed),
            recovered: self.recovered.load(Ordering::Relaxed),
            attempts_total: self.attempts_total.load(Ordering::Relaxed),
            attempts_max: self.attempts_max.load(Ordering::Relaxed),
            times: HistogramSnapshot::encode(&drain(&self.times), 0),
            attempts: HistogramSnapshot::encode(&drain(&self.attempts), 0),
        }
    }
}

/// One drop of many sockets at once (or one background wave), and the users' recovery from it.
pub struct Storm {
    label: String,
    at: Instant,
    /// For a background wave, how long its users stay away; recovery is measured from `at + away`.
    away: Duration,
    /// Drops detected up to this many microseconds after `at` belong to the storm.
    window_us: AtomicU64,
    total: Tally,
    /// The set of each profile tag slot (as the recorder's), and one tally per set.
    set_of_slot: [u8; PROFILE_SLOTS],
    sets: Box<[Tally]>,
    /// The profile name of each set (`None`: set 0, no profile).
    set_names: Box<[Option<&'static str>]>,
}

impl Storm {
    /// A storm that dropped `dropped` users at `at`. `label` names it in reports (for example
    /// `drop_sockets@2m`); storms of different shards with the same label and time are merged.
    pub fn new(label: impl Into<String>, at: Instant, dropped: u64) -> Storm {
        Storm {
            label: label.into(),
            at,
            away: Duration::ZERO,
            window_us: AtomicU64::new(STORM_WINDOW.as_micros() as u64),
            total: Tally::new(dropped),
            set_of_slot: [0; PROFILE_SLOTS],
            sets: Box::new([]),
            set_names: Box::new([]),
        }
    }

    /// The same storm filed per profile set of `recorder` too.
    fn per_set_of(mut self, recorder: &Recorder) -> Storm {
        self.set_of_slot = recorder.set_table();
        self.sets = (0..recorder.sets()).map(|_| Tally::new(0)).collect();
        self.set_names = (0..recorder.sets())
            .map(|s| recorder.set_profile(s).map(chatstorm_protocol::Profile::name))
            .collect();
        self
    }

    /// The tally of the calling thread's profile set, if the storm keeps sets.
    fn set_tally(&self) -> Option<&Tally> {
        let set = self.set_of_slot.get(current_slot()).copied().unwrap_or(0);
        self.sets.get(usize::from(set))
    }

    /// Whether this is a background wave (its users left on purpose for a set time).
    pub fn is_wave(&self) -> bool {
        !self.away.is_zero()
    }

    /// When the sockets were dropped.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Keeps the storm open for drops detected until `STORM_WINDOW` after `until` (the engine
    /// calls it when the fault it asked for has been carried out, which can take a while).
    pub fn extend_window(&self, until: Instant) {
        let us = (until.saturating_duration_since(self.at) + STORM_WINDOW).as_micros() as u64;
        self.window_us.fetch_max(us, Ordering::Relaxed);
    }

    fn covers(&self, t: Instant) -> bool {
        t + Duration::from_secs(1) >= self.at
            && t.saturating_duration_since(self.at).as_micros() as u64 <= self.window_us.load(Ordering::Relaxed)
    }

    /// Counts one more dropped user (users report their own drop when the storm's size is not
    /// known up front, e.g. for client-side or fraction-based drops); filed under the calling
    /// user's profile too.
    pub fn add_dropped(&self) {
        self.total.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = self.set_tally() {
            t.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one dropped user live again at `at` after `attempts` connect attempts. Each dropped
    /// user calls this once; returns the user's recovery time (for a wave, from the moment its
    /// users came back to the foreground).
    pub fn recovered(&self, at: Instant, attempts: u32) -> Duration {
        let took = at.saturating_duration_since(self.at + self.away);
        self.total.recovered(took, attempts);
        if let Some(t) = self.set_tally() {
            t.recovered(took, attempts);
        }
        took
    }

    /// What the storm looks like now, `offset` being the drop's time since the run's start.
    /// Takes the histograms' counts into the snapshot: call it once per storm, at the end.
    pub(crate) fn take_snapshot(&self, offset: Duration) -> StormSnapshot {
        self.snapshot(offset, true)
    }

    /// What the storm looks like now, leaving its counts for the final
    /// [`take_snapshot`](Storm::take_snapshot): the live dashboard's recovery curves.
    pub(crate) fn peek_snapshot(&self, offset: Duration) -> StormSnapshot {
        self.snapshot(offset, false)
    }

    fn snapshot(&self, offset: Duration, take: bool) -> StormSnapshot {
        let by_profile = self
            .sets
            .iter()
            .zip(self.set_names.iter())
            .filter_map(|(t, name)| Some(((*name)?.to_owned(), t.counts(take))))
            // A profile none of whose users took part (web users in a background wave) has no
            // figures for this storm.
            .filter(|(_, c)| c.dropped > 0 || c.recovered > 0)
            .collect();
        StormSnapshot {
            label: self.label.clone(),
            offset_ms: u64::try_from(offset.as_millis()).unwrap_or(u64::MAX),
            away_ms: u64::try_from(self.away.as_millis()).unwrap_or(u64::MAX),
            counts: self.total.counts(take),
            by_profile,
        }
    }
}

/// How long after a storm a detected drop is still attributed to it. Storms close sockets (with
/// a close frame, or abruptly with a FIN), which clients notice at once; 5 s leaves room for a
/// busy runtime without swallowing the next timeline action's drops.
pub const STORM_WINDOW: Duration = Duration::from_secs(5);

impl Recorder {
    /// The storm a drop detected at `at` belongs to: the latest one opened at most
    /// [`STORM_WINDOW`] before it (and at most 1 s after, for clock skew between tasks).
    pub fn storm_at(&self, at: Instant) -> Option<std::sync::Arc<Storm>> {
        if self.storms_closed() {
            return None;
        }
        self.storms().into_iter().filter(|s| s.covers(at)).max_by_key(|s| s.at)
    }

    /// Opens a storm: `dropped` users were dropped at `at`. The returned handle is cheap to clone
    /// into the dropped users' tasks; the collector includes it in the run's snapshot.
    pub fn begin_storm(&self, label: impl Into<String>, at: Instant, dropped: u64) -> std::sync::Arc<Storm> {
        let storm = std::sync::Arc::new(Storm::new(label, at, dropped).per_set_of(self));
        self.register_storm(storm.clone());
        storm
    }

    /// Whether a background wave's users are away or coming back at `at` (from the wave until
    /// [`STORM_WINDOW`] after their return), so that other pauses can keep out of its figures.
    pub fn wave_underway(&self, at: Instant) -> bool {
        self.storms()
            .iter()
            .any(|s| s.is_wave() && at + Duration::from_secs(1) >= s.at && at <= s.at + s.away + STORM_WINDOW)
    }

    /// Opens a background wave: users that leave from `at` on (each reports its own leaving, as
    /// for a storm) stay away for `away`; their recovery is measured from `at + away`.
    pub fn begin_wave(&self, label: impl Into<String>, at: Instant, away: Duration) -> std::sync::Arc<Storm> {
        let mut storm = Storm::new(label, at, 0).per_set_of(self);
        storm.away = away;
        let storm = std::sync::Arc::new(storm);
        self.register_storm(storm.clone());
        storm
    }

    /// A dropped user is live again: counts it in the storm and, for a storm (not a wave),
    /// records its recovery time in the run-wide [`Metric::Recovery`] histogram.
    pub fn recovered(&self, storm: &Storm, at: Instant, attempts: u32) {
        let took = storm.recovered(at, attempts);
        if !storm.is_wave() {
            self.record(Metric::Recovery, took);
        }
    }
}

/// A storm's raw figures for one profile, serializable and mergeable across shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StormCounts {
    /// Users dropped.
    pub dropped: u64,
    /// Users live again by the end of the run.
    pub recovered: u64,
    /// Connect attempts made by the recovered users, in total.
    pub attempts_total: u64,
    /// Most attempts one user needed.
    pub attempts_max: u64,
    /// Recovery times, microseconds.
    pub times: HistogramSnapshot,
    /// Attempts per recovered user.
    pub attempts: HistogramSnapshot,
}

impl StormCounts {
    /// Adds another shard's figures.
    ///
    /// # Errors
    /// [`SnapshotError`] when a histogram cannot be decoded.
    pub fn merge(&mut self, other: &StormCounts) -> Result<(), SnapshotError> {
        self.dropped += other.dropped;
        self.recovered += other.recovered;
        self.attempts_total += other.attempts_total;
        self.attempts_max = self.attempts_max.max(other.attempts_max);
        self.times.merge(&other.times)?;
        self.attempts.merge(&other.attempts)?;
        Ok(())
    }
}

/// A storm's raw figures, serializable and mergeable across shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StormSnapshot {
    /// Name of the storm, for example `drop_sockets@2m`.
    pub label: String,
    /// When the drop happened, milliseconds since the run's start.
    pub offset_ms: u64,
    /// For a background wave, how long its users stayed away, milliseconds (recovery times count
    /// from `offset_ms + away_ms`); 0 for a storm.
    #[serde(default)]
    pub away_ms: u64,
    /// The figures of every dropped user; flattened, so that the JSON of a snapshot (in shard
    /// files and in `summary.json`) has them beside the label as before.
    #[serde(flatten)]
    pub counts: StormCounts,
    /// The same figures per SDK profile (users of no profile are only in the totals).
    #[serde(default)]
    pub by_profile: BTreeMap<String, StormCounts>,
}

// What a report says about a storm, read off a `StormSnapshot` by `StormSnapshot::figures` (the
// field names and docs are those of `summary.json` and its schema).
/// One reconnect storm, or one background wave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StormFigures {
    /// What caused it (`drop_sockets 50% server 1011`).
    pub label: String,
    /// When, milliseconds from the start.
    pub at_ms: u64,
    /// For a background wave, how long its users stayed away, milliseconds; the times below
    /// count from `at_ms + away_ms`, when they came back to the foreground. 0 for a storm.
    #[serde(default)]
    pub away_ms: u64,
    /// Users dropped.
    pub dropped: u64,
    /// Users back live by the end.
    pub recovered: u64,
    /// Time until 50 / 90 / 99 / 100 % were back, milliseconds (`None`: never reached).
    pub p50_ms: Option<u64>,
    /// 90 %.
    pub p90_ms: Option<u64>,
    /// 99 %.
    pub p99_ms: Option<u64>,
    /// 100 %.
    pub p100_ms: Option<u64>,
    /// Mean connect attempts per recovered user (retry amplification).
    pub attempts_mean: f64,
    /// Most attempts by one user.
    pub attempts_max: u64,
    /// Accepted reconnects per second during the recovery.
    pub accepted_per_s: f64,
    /// Recovered share over time: (milliseconds after the storm, percent back).
    pub curve: Vec<(u64, f64)>,
    /// The same figures per SDK profile (only in the run-level lists).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_profile: BTreeMap<String, StormFigures>,
}

// The curve's step is 100 ms, coarser for long recoveries so that it has at most this many points.
const MAX_CURVE_POINTS: u64 = 600;

impl StormSnapshot {
    /// Adds another shard's figures for the same storm (same label and time).
    ///
    /// # Errors
    /// [`SnapshotError`] when a histogram cannot be decoded.
    pub fn merge(&mut self, other: &StormSnapshot) -> Result<(), SnapshotError> {
        self.counts.merge(&other.counts)?;
        self.away_ms = self.away_ms.max(other.away_ms);
        for (name, theirs) in &other.by_profile {
            match self.by_profile.get_mut(name) {
                Some(mine) => mine.merge(theirs)?,
                None => {
                    self.by_profile.insert(name.clone(), theirs.clone());
                }
            }
        }
        Ok(())
    }

    /// What a report says about the storm, with the same figures per profile (a profile whose
    /// histograms cannot be decoded is left out of the breakdown).
    ///
    /// # Errors
    /// [`SnapshotError`] when the storm's own histograms cannot be decoded.
    pub fn figures(&self) -> Result<StormFigures, SnapshotError> {
        let mut figures = self.counts.figures(&self.label, self.offset_ms, self.away_ms)?;
        figures.by_profile = self
            .by_profile
            .iter()
            .filter_map(|(name, c)| {
                let f = c.figures(&self.label, self.offset_ms, self.away_ms).ok()?;
                Some((name.clone(), f))
            })
            .collect();
        Ok(figures)
    }
}

impl StormCounts {
    /// The figures read off these counts, for the storm `label` at `at_ms` (`away_ms` for a
    /// wave), without a per-profile breakdown. Times are read in microseconds off the histogram
    /// and reported in whole milliseconds (rounded down).
    fn figures(&self, label: &str, at_ms: u64, away_ms: u64) -> Result<StormFigures, SnapshotError> {
        let times = self.times.decode()?;
        let attempts = self.attempts.decode()?;
        let back_ms = |fraction: f64| time_until(&times, self.dropped, fraction).map(|us| us / 1000);
        let last_us = if times.is_empty() { 0 } else { times.max() };
        let step_ms = (last_us / 1_000).div_ceil(MAX_CURVE_POINTS).max(100).div_ceil(100) * 100;
        let curve = if times.is_empty() || self.dropped == 0 {
            Vec::new()
        } else {
            (0..=(last_us / 1_000).div_ceil(step_ms))
                .map(|i| {
                    let t_ms = i * step_ms;
                    let recovered = times.count_between(0, t_ms.saturating_mul(1_000));
                    (t_ms, recovered as f64 / self.dropped as f64 * 100.0)
                })
                .collect()
        };
        Ok(StormFigures {
            label: label.to_owned(),
            at_ms,
            away_ms,
            dropped: self.dropped,
            recovered: self.recovered,
            p50_ms: back_ms(0.50),
            p90_ms: back_ms(0.90),
            p99_ms: back_ms(0.99),
            p100_ms: back_ms(1.0),
            attempts_mean: if attempts.is_empty() { 0.0 } else { attempts.mean() },
            attempts_max: self.attempts_max,
            accepted_per_s: if last_us == 0 {
                0.0
            } else {
                times.len() as f64 / (last_us as f64 / 1e6)
            },
            curve,
            by_profile: BTreeMap::new(),
        })
    }
}

/// Time by which `ceil(fraction * dropped)` users were back, or `None` if that many never were.
fn time_until(times: &Histogram<u64>, dropped: u64, fraction: f64) -> Option<u64> {
    if dropped == 0 {
        return None;
    }
    let rank = ((dropped as f64 * fraction).ceil() as u64).clamp(1, dropped);
    let mut seen = 0;
    for v in times.iter_recorded() {
        seen += v.count_at_value();
        if seen >= rank {
            return Some(times.highest_equivalent(v.value_iterated_to()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storm_of(dropped: u64, recoveries: &[(u64, u32)]) -> StormSnapshot {
        let t0 = Instant::now();
        let s = Storm::new("drop@1s", t0, dropped);
        for &(ms, attempts) in recoveries {
            s.recovered(t0 + Duration::from_millis(ms), attempts);
        }
        s.take_snapshot(Duration::from_secs(1))
    }

    #[test]
    fn times_until_fractions_back_and_attempts() {
        // 100 dropped; user i is back after (i + 1) * 100 ms with 1 + i % 3 attempts; 10 never.
        let rec: Vec<_> = (0..90u64).map(|i| ((i + 1) * 100, 1 + (i % 3) as u32)).collect();
        let r = storm_of(100, &rec).figures().expect("figures");
        // Read in microseconds (3 significant digits), reported in whole milliseconds.
        let near = |got: Option<u64>, ms: u64| got.is_some_and(|got| got.abs_diff(ms) <= ms / 1_000);
        assert!(near(r.p50_ms, 5_000), "{:?}", r.p50_ms);
        assert!(near(r.p90_ms, 9_000), "{:?}", r.p90_ms);
        assert_eq!(r.p99_ms, None, "only 90 % ever came back");
        assert_eq!(r.p100_ms, None);
        assert_eq!((r.label.as_str(), r.at_ms, r.away_ms), ("drop@1s", 1_000, 0));
        assert_eq!((r.dropped, r.recovered), (100, 90));
        assert_eq!(r.attempts_max, 3);
        assert!((r.attempts_mean - 2.0).abs() < 1e-9);
        assert!((r.accepted_per_s - 10.0).abs() < 0.05, "{}", r.accepted_per_s);
        assert_eq!(r.curve.first().map(|p| p.1), Some(0.0));
        let last = r.curve.last().expect("curve");
        assert!((last.1 - 90.0).abs() < 1e-9);
        assert!(r.curve.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(r.curve[10].0, 1_000);
        assert!((r.curve[10].1 - 10.0).abs() < 1e-9, "{:?}", r.curve[10]);
        assert!(r.by_profile.is_empty());
    }

    #[test]
    fn all_back_and_long_recoveries_keep_the_curve_bounded() {
        let r = storm_of(3, &[(10, 1), (20, 1), (3_600_000, 40)])
            .figures()
            .expect("figures");
        assert!(r.p100_ms.is_some_and(|ms| ms.abs_diff(3_600_000) < 3_600));
        assert!(r.curve.len() <= MAX_CURVE_POINTS as usize + 2, "{}", r.curve.len());
        assert_eq!(r.curve.last().map(|p| p.1), Some(100.0));
    }

    #[test]
    fn empty_storm_reports_nothing_back() {
        let r = storm_of(0, &[]).figures().expect("figures");
        assert_eq!((r.p50_ms, r.p100_ms, r.accepted_per_s), (None, None, 0.0));
        assert!(r.curve.is_empty());
    }

    #[test]
    fn merging_two_shards_equals_one_storm() {
        let a: Vec<_> = (0..50u64).map(|i| (i * 37 % 900 + 1, 1 + (i % 4) as u32)).collect();
        let b: Vec<_> = (0..30u64).map(|i| (i * 53 % 1_700 + 1, 2)).collect();
        let all: Vec<_> = a.iter().chain(&b).copied().collect();
        let mut merged = storm_of(60, &a);
        merged.merge(&storm_of(40, &b)).expect("merge");
        let one = storm_of(100, &all);
        assert_eq!(merged.figures().expect("r"), one.figures().expect("r"));
    }

    #[test]
    fn profiles_get_the_same_figures_and_merge_alike() {
        let mut a = storm_of(2, &[(100, 1), (200, 2)]);
        a.by_profile.insert("js".into(), a.counts.clone());
        let mut b = storm_of(1, &[(300, 3)]);
        b.by_profile.insert("js".into(), b.counts.clone());
        a.merge(&b).expect("merge");
        let f = a.figures().expect("figures");
        let js = &f.by_profile["js"];
        assert_eq!((js.dropped, js.recovered, js.attempts_max), (3, 3, 3));
        assert_eq!((js.label.as_str(), js.at_ms), ("drop@1s", 1_000));
        assert!(js.by_profile.is_empty());
        let mut total = f.clone();
        total.by_profile.clear();
        assert_eq!(&total, js, "the one profile's users are every user");
    }

    #[test]
    fn snapshot_json_keeps_the_counts_beside_the_label() {
        let s = storm_of(2, &[(100, 1)]);
        let v = serde_json::to_value(&s).expect("json");
        let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        let mut want = vec![
            "label",
            "offset_ms",
            "away_ms",
            "dropped",
            "recovered",
            "attempts_total",
            "attempts_max",
            "times",
            "attempts",
            "by_profile",
        ];
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        let back: StormSnapshot = serde_json::from_value(v).expect("reads back");
        assert_eq!(back, s);
    }
}
