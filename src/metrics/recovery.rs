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

    fn take(&self) -> StormCounts {
        let drain = |a: &AtomicHistogram| {
            let mut h = new_histogram();
            a.drain(|v, n| h.saturating_record_n(v, n));
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
        let total = self.total.take();
        let by_profile = self
            .sets
            .iter()
            .zip(self.set_names.iter())
            .filter_map(|(t, name)| Some(((*name)?.to_owned(), t.take())))
            // A profile none of whose users took part (web users in a background wave) has no
            // figures for this storm.
            .filter(|(_, c)| c.dropped > 0 || c.recovered > 0)
            .collect();
        StormSnapshot {
            label: self.label.clone(),
            offset_ms: u64::try_from(offset.as_millis()).unwrap_or(u64::MAX),
            away_ms: u64::try_from(self.away.as_millis()).unwrap_or(u64::MAX),
            dropped: total.dropped,
            recovered: total.recovered,
            attempts_total: total.attempts_total,
            attempts_max: total.attempts_max,
            times: total.times,
            attempts: total.attempts,
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
    /// The same figures per SDK profile (users of no profile are only in the totals).
    #[serde(default)]
    pub by_profile: BTreeMap<String, StormCounts>,
}

/// One point of a recovery curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecoveryPoint {
    /// Time since the drop, milliseconds.
    pub t_ms: u64,
    /// Dropped users live again by then.
    pub recovered: u64,
    /// `recovered / dropped`.
    pub fraction: f64,
}

/// Everything a report says about one storm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecoveryReport {
    /// Name of the storm.
    pub label: String,
    /// When the drop happened, milliseconds since the run's start.
    pub offset_ms: u64,
    /// Users dropped.
    pub dropped: u64,
    /// Users live again by the end of the run.
    pub recovered: u64,
    /// Time until 50 % of the dropped users were live again, microseconds; `None`: never.
    pub p50_back_us: Option<u64>,
    /// Time until 90 % were back.
    pub p90_back_us: Option<u64>,
    /// Time until 99 % were back.
    pub p99_back_us: Option<u64>,
    /// Time until all were back.
    pub all_back_us: Option<u64>,
    /// Connect attempts per recovered user, mean.
    pub attempts_mean: f64,
    /// Connect attempts per recovered user, 99th percentile.
    pub attempts_p99: u64,
    /// Most attempts one user needed.
    pub attempts_max: u64,
    /// Retry amplification: attempts made per dropped user.
    pub amplification: f64,
    /// Most recoveries (accepted reconnects) within one second.
    pub peak_rate_per_s: u64,
    /// Recoveries per second from the drop until the last recovery.
    pub mean_rate_per_s: f64,
    /// The recovery curve: users back by each step (100 ms, coarser for long recoveries so that
    /// there are at most 600 points).
    pub curve: Vec<RecoveryPoint>,
}

const MAX_CURVE_POINTS: u64 = 600;

impl StormSnapshot {
    /// Adds another shard's figures for the same storm (same label and time).
    ///
    /// # Errors
    /// [`SnapshotError`] when a histogram cannot be decoded.
    pub fn merge(&mut self, other: &StormSnapshot) -> Result<(), SnapshotError> {
        self.dropped += other.dropped;
        self.recovered += other.recovered;
        self.attempts_total += other.attempts_total;
        self.attempts_max = self.attempts_max.max(other.attempts_max);
        self.times.merge(&other.times)?;
        self.attempts.merge(&other.attempts)?;
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

    /// The figures of one profile's users, as a storm snapshot of their own (same label and
    /// time, no further breakdown); `None` when the storm has no such profile.
    pub fn of_profile(&self, name: &str) -> Option<StormSnapshot> {
        let c = self.by_profile.get(name)?.clone();
        Some(StormSnapshot {
            label: self.label.clone(),
            offset_ms: self.offset_ms,
            away_ms: self.away_ms,
            dropped: c.dropped,
            recovered: c.recovered,
            attempts_total: c.attempts_total,
            attempts_max: c.attempts_max,
            times: c.times,
            attempts: c.attempts,
            by_profile: BTreeMap::new(),
        })
    }

    /// The storm's figures.
    ///
    /// # Errors
    /// [`SnapshotError`] when a histogram cannot be decoded.
    pub fn report(&self) -> Result<RecoveryReport, SnapshotError> {
        let times = self.times.decode()?;
        let attempts = self.attempts.decode()?;
        let back = |fraction: f64| time_until(&times, self.dropped, fraction);
        let last_us = if times.is_empty() { 0 } else { times.max() };
        // Each recorded value falls in exactly one second (count_between would count a bucket
        // that straddles a second boundary in both).
        let mut per_second = vec![0u64; usize::try_from(last_us / 1_000_000).unwrap_or(0) + 1];
        for v in times.iter_recorded() {
            let s = usize::try_from(v.value_iterated_to() / 1_000_000).unwrap_or(usize::MAX);
            if let Some(n) = per_second.get_mut(s) {
                *n += v.count_at_value();
            }
        }
        let peak_rate_per_s = per_second.iter().copied().max().unwrap_or(0);
        let step_ms = (last_us / 1_000).div_ceil(MAX_CURVE_POINTS).max(100).div_ceil(100) * 100;
        let curve = if times.is_empty() || self.dropped == 0 {
            Vec::new()
        } else {
            (0..=(last_us / 1_000).div_ceil(step_ms))
                .map(|i| {
                    let t_ms = i * step_ms;
                    let recovered = times.count_between(0, t_ms.saturating_mul(1_000));
                    RecoveryPoint {
                        t_ms,
                        recovered,
                        fraction: recovered as f64 / self.dropped as f64,
                    }
                })
                .collect()
        };
        Ok(RecoveryReport {
            label: self.label.clone(),
            offset_ms: self.offset_ms,
            dropped: self.dropped,
            recovered: self.recovered,
            p50_back_us: back(0.50),
            p90_back_us: back(0.90),
            p99_back_us: back(0.99),
            all_back_us: back(1.0),
            attempts_mean: if attempts.is_empty() { 0.0 } else { attempts.mean() },
            attempts_p99: if attempts.is_empty() {
                0
            } else {
                attempts.value_at_quantile(0.99)
            },
            attempts_max: self.attempts_max,
            amplification: if self.dropped == 0 {
                0.0
            } else {
                self.attempts_total as f64 / self.dropped as f64
            },
            peak_rate_per_s,
            mean_rate_per_s: if last_us == 0 {
                0.0
            } else {
                times.len() as f64 / (last_us as f64 / 1e6)
            },
            curve,
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
        let r = storm_of(100, &rec).report().expect("report");
        let near = |got: Option<u64>, ms: u64| got.is_some_and(|us| us.abs_diff(ms * 1_000) <= ms);
        assert!(near(r.p50_back_us, 5_000), "{:?}", r.p50_back_us);
        assert!(near(r.p90_back_us, 9_000), "{:?}", r.p90_back_us);
        assert_eq!(r.p99_back_us, None, "only 90 % ever came back");
        assert_eq!(r.all_back_us, None);
        assert_eq!(r.recovered, 90);
        assert_eq!(r.attempts_max, 3);
        assert!((r.attempts_mean - 2.0).abs() < 1e-9);
        assert!((r.amplification - 1.8).abs() < 1e-9);
        assert_eq!(r.peak_rate_per_s, 10);
        assert!((r.mean_rate_per_s - 10.0).abs() < 0.05, "{}", r.mean_rate_per_s);
        assert_eq!(r.curve.first().map(|p| p.recovered), Some(0));
        let last = r.curve.last().expect("curve");
        assert_eq!(last.recovered, 90);
        assert!((last.fraction - 0.9).abs() < 1e-9);
        assert!(r.curve.windows(2).all(|w| w[0].recovered <= w[1].recovered));
        assert_eq!(
            r.curve[10],
            RecoveryPoint {
                t_ms: 1_000,
                recovered: 10,
                fraction: 0.1
            }
        );
    }

    #[test]
    fn all_back_and_long_recoveries_keep_the_curve_bounded() {
        let r = storm_of(3, &[(10, 1), (20, 1), (3_600_000, 40)])
            .report()
            .expect("report");
        assert!(r.all_back_us.is_some_and(|us| us.abs_diff(3_600_000_000) < 3_600_000));
        assert!(r.curve.len() <= MAX_CURVE_POINTS as usize + 2, "{}", r.curve.len());
        assert_eq!(r.curve.last().map(|p| p.recovered), Some(3));
    }

    #[test]
    fn empty_storm_reports_nothing_back() {
        let r = storm_of(0, &[]).report().expect("report");
        assert_eq!((r.p50_back_us, r.all_back_us, r.peak_rate_per_s), (None, None, 0));
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
        assert_eq!(merged.report().expect("r"), one.report().expect("r"));
    }
}
