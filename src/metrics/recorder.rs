//! The hot path: [`Recorder`], the handle every user task holds to count and time what it does.
//!
//! One registry per run holds every histogram, counter and gauge, split into shards; each thread
//! records into the shard picked by a per-thread slot number, with relaxed atomic increments only
//! (no lock, no allocation after a histogram chunk's first use, no channel that could fill up and
//! drop a sample). Shards exist so that two worker threads timing the same metric do not bounce one
//! cache line between cores; the [`Collector`](super::Collector) sums them.
//!
//! Per profile: a recorder built [`for_profiles`](Recorder::for_profiles) keeps one set of shards
//! (and code tables) per SDK profile of the run's mix, plus set 0 for what belongs to no profile;
//! each sample goes into exactly one set, picked by the thread's profile tag
//! ([`super::profile`]), so recording costs the same one increment and the run's totals are the
//! sums over the sets.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::MAX_US;
use super::Storm;
use super::atomic_histogram::AtomicHistogram;
use super::code_table::{CodeCounts, CodeTable};
use super::metric::{COUNTER_COUNT, Counter, Metric, SERIES_COUNT, Series, View};
use super::profile::{PROFILE_SLOTS, current_slot, slot_of};
use chatstorm_protocol::Profile;

/// A level that goes up and down, sampled once per second into a curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gauge {
    /// Users live on any transport (first `health.check` received, not yet dropped).
    Connected,
    /// Of those, users live over long-poll.
    LongPolling,
    /// User tasks running (started and not yet stopped), whatever their state.
    Users,
}

/// Number of [`Gauge`]s.
pub const GAUGE_COUNT: usize = 3;

impl Gauge {
    /// Every gauge, in index order.
    pub const ALL: [Gauge; GAUGE_COUNT] = [Gauge::Connected, Gauge::LongPolling, Gauge::Users];

    /// The stable name used in `summary.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Gauge::Connected => "connected",
            Gauge::LongPolling => "longpolling",
            Gauge::Users => "users",
        }
    }
}

/// Cheap-to-clone handle to the run's measurements (one `Arc`; no per-user allocation).
///
/// Every method is lock-free and never blocks, so it is safe to call from any task or thread.
#[derive(Clone)]
pub struct Recorder {
    registry: Arc<Registry>,
}

struct Registry {
    /// `sets × per_set` shards: set `s` is `shards[s << shift ..][..per_set]`.
    shards: Box<[Shard]>,
    /// `per_set - 1`; the per-set shard count is a power of two.
    mask: usize,
    /// `log2(per_set)`.
    shift: u32,
    /// The set of each profile tag slot (0 for slot 0 and for profiles not in the mix).
    set_of_slot: [u8; PROFILE_SLOTS],
    /// The profile of each set; `None` for set 0.
    set_profiles: Box<[Option<Profile>]>,
    /// Users started, per set.
    started: Box<[AtomicU64]>,
    error_codes: Box<[CodeTable]>,
    close_codes: Box<[CodeTable]>,
    failure_kinds: Box<[CodeTable]>,
    /// Storms opened so far; a handful per run, so a plain lock off the hot path.
    storms: Mutex<Vec<Arc<Storm>>>,
    /// Set when the run stops: the users' own closes are not storm drops.
    storms_closed: std::sync::atomic::AtomicBool,
}

/// One thread's share. Aligned so that two shards' counters never share a cache line.
#[repr(align(128))]
struct Shard {
    histograms: [AtomicHistogram; SERIES_COUNT],
    clamped: [AtomicU64; SERIES_COUNT],
    counters: [AtomicU64; COUNTER_COUNT],
    gauges: [AtomicI64; GAUGE_COUNT],
}

impl Shard {
    fn new() -> Shard {
        Shard {
            histograms: std::array::from_fn(|_| AtomicHistogram::new()),
            clamped: std::array::from_fn(|_| AtomicU64::new(0)),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            gauges: std::array::from_fn(|_| AtomicI64::new(0)),
        }
    }
}

static NEXT_THREAD_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A small number unique to the calling thread, assigned on first use.
#[inline]
fn thread_slot() -> usize {
    THREAD_SLOT.with(|slot| {
        let s = slot.get();
        if s != usize::MAX {
            return s;
        }
        let s = NEXT_THREAD_SLOT.fetch_add(1, Ordering::Relaxed);
        slot.set(s);
        s
    })
}

/// Microseconds in a duration, saturating.
#[inline]
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder with two shards per available core (so that a runtime's worker threads rarely
    /// share one), at most 32.
    pub fn new() -> Recorder {
        Recorder::with_shards(crate::sys::cores() * 2)
    }

    /// A recorder with `shards` shards, rounded up to a power of two (at least 1, at most 64).
    /// Memory is lazy: an unused shard costs about 20 KiB of pointers and zeroed counters.
    pub fn with_shards(shards: usize) -> Recorder {
        Recorder::build(shards, &[])
    }

    /// A recorder that also keeps every figure per profile of `profiles` (the run's mix, each
    /// once), as the module header says; two shards per core, like [`Recorder::new`].
    pub fn for_profiles(profiles: &[Profile]) -> Recorder {
        Recorder::build(crate::sys::cores() * 2, profiles)
    }

    fn build(shards: usize, profiles: &[Profile]) -> Recorder {
        let n = shards.clamp(1, 64).next_power_of_two();
        let mut set_profiles = vec![None];
        let mut set_of_slot = [0u8; PROFILE_SLOTS];
        for &p in profiles {
            if set_of_slot[slot_of(p)] == 0 {
                set_profiles.push(Some(p));
                set_of_slot[slot_of(p)] = (set_profiles.len() - 1) as u8;
            }
        }
        let sets = set_profiles.len();
        Recorder {
            registry: Arc::new(Registry {
                shards: (0..n * sets).map(|_| Shard::new()).collect(),
                mask: n - 1,
                shift: n.trailing_zeros(),
                set_of_slot,
                set_profiles: set_profiles.into_boxed_slice(),
                started: (0..sets).map(|_| AtomicU64::new(0)).collect(),
                error_codes: (0..sets).map(|_| CodeTable::new()).collect(),
                close_codes: (0..sets).map(|_| CodeTable::new()).collect(),
                failure_kinds: (0..sets).map(|_| CodeTable::new()).collect(),
                storms: Mutex::new(Vec::new()),
                storms_closed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The set the calling thread records into (its profile tag's set).
    #[inline]
    fn set(&self) -> usize {
        usize::from(self.registry.set_of_slot.get(current_slot()).copied().unwrap_or(0))
    }

    #[inline]
    fn shard(&self) -> &Shard {
        let r = &*self.registry;
        &r.shards[(self.set() << r.shift) | (thread_slot() & r.mask)]
    }

    fn set_shards(&self, set: usize) -> &[Shard] {
        let r = &*self.registry;
        let per_set = r.mask + 1;
        r.shards.get(set * per_set..(set + 1) * per_set).unwrap_or(&[])
    }

    /// Number of sets: 1 (no profile) plus one per profile of the mix.
    pub fn sets(&self) -> usize {
        self.registry.set_profiles.len()
    }

    /// The profile of set `set` (`None` for set 0, the figures of no profile).
    pub fn set_profile(&self, set: usize) -> Option<Profile> {
        self.registry.set_profiles.get(set).copied().flatten()
    }

    /// The set a profile's figures go to (0 when the profile is not in the mix).
    pub fn set_of(&self, profile: Profile) -> usize {
        usize::from(self.registry.set_of_slot[slot_of(profile)])
    }

    /// The set of each profile tag slot, for storms (which file their users per set too).
    pub(crate) fn set_table(&self) -> [u8; PROFILE_SLOTS] {
        self.registry.set_of_slot
    }

    /// Counts one user of `profile` started (the per-profile user count of the summary).
    pub fn user_started(&self, profile: Profile) {
        if let Some(n) = self.registry.started.get(self.set_of(profile)) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Users started in set `set`.
    pub fn users_started(&self, set: usize) -> u64 {
        self.registry.started.get(set).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    #[inline]
    fn record_series(&self, shard: &Shard, series: Series, latency: Duration) {
        let us = micros(latency);
        let index = series.index();
        if us > MAX_US {
            shard.clamped[index].fetch_add(1, Ordering::Relaxed);
        }
        shard.histograms[index].record(us);
    }

    /// Records one latency measured from the actual start ([`View::Actual`]).
    ///
    /// Values over [`MAX_US`] are recorded as [`MAX_US`] and counted as clamped; nothing is
    /// dropped.
    #[inline]
    pub fn record(&self, metric: Metric, latency: Duration) {
        self.record_series(
            self.shard(),
            Series {
                metric,
                view: View::Actual,
            },
            latency,
        );
    }

    /// Records one scheduled operation in both views: `end - actual_start` as [`View::Actual`]
    /// and `end - intended` as [`View::Intended`] (corrected for coordinated omission: a late
    /// start counts against the latency). Times out of order count as zero.
    #[inline]
    pub fn record_corrected(&self, metric: Metric, intended: Instant, actual_start: Instant, end: Instant) {
        let shard = self.shard();
        let actual = end.saturating_duration_since(actual_start);
        let corrected = end.saturating_duration_since(intended);
        self.record_series(
            shard,
            Series {
                metric,
                view: View::Actual,
            },
            actual,
        );
        self.record_series(
            shard,
            Series {
                metric,
                view: View::Intended,
            },
            corrected,
        );
    }

    /// Adds one to a counter.
    #[inline]
    pub fn count(&self, counter: Counter) {
        self.count_n(counter, 1);
    }

    /// Adds `n` to a counter.
    #[inline]
    pub fn count_n(&self, counter: Counter, n: u64) {
        self.shard().counters[counter.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Moves a gauge by `delta` (+1 when a user becomes live, -1 when it drops).
    #[inline]
    pub fn gauge_add(&self, gauge: Gauge, delta: i64) {
        self.shard().gauges[gauge as usize].fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts one failure carrying an API error code (the `code` of an error body or frame).
    pub fn error_code(&self, code: u32) {
        if let Some(t) = self.registry.error_codes.get(self.set()) {
            t.add(code);
        }
    }

    /// Counts one connect failure without an API error, by its cause.
    pub fn failure_kind(&self, kind: super::FailureKind) {
        if let Some(t) = self.registry.failure_kinds.get(self.set()) {
            t.add(kind.key());
        }
    }

    /// Counts one WebSocket close carrying `code`.
    pub fn close_code(&self, code: u16) {
        if let Some(t) = self.registry.close_codes.get(self.set()) {
            t.add(u32::from(code));
        }
    }

    // ----- reading; used by the collector, cheap enough to call once per second -----

    /// Takes every sample recorded into `series` since the last drain, across all shards.
    #[cfg(test)]
    pub(crate) fn drain(&self, series: Series, mut sink: impl FnMut(u64, u64)) {
        for shard in &self.registry.shards {
            shard.histograms[series.index()].drain(&mut sink);
        }
    }

    /// Takes every sample recorded into `series` by set `set` since the last drain.
    pub(crate) fn drain_set(&self, set: usize, series: Series, mut sink: impl FnMut(u64, u64)) {
        for shard in self.set_shards(set) {
            shard.histograms[series.index()].drain(&mut sink);
        }
    }

    /// Samples of `series` clamped to [`MAX_US`] so far.
    pub(crate) fn clamped(&self, series: Series) -> u64 {
        self.registry
            .shards
            .iter()
            .map(|s| s.clamped[series.index()].load(Ordering::Relaxed))
            .sum()
    }

    /// Samples of `series` clamped to [`MAX_US`] so far in set `set`.
    pub(crate) fn clamped_of(&self, set: usize, series: Series) -> u64 {
        self.set_shards(set)
            .iter()
            .map(|s| s.clamped[series.index()].load(Ordering::Relaxed))
            .sum()
    }

    /// A counter's value in set `set`.
    pub fn counter_of(&self, set: usize, counter: Counter) -> u64 {
        self.set_shards(set)
            .iter()
            .map(|s| s.counters[counter.index()].load(Ordering::Relaxed))
            .sum()
    }

    /// A gauge's level in set `set`.
    pub fn gauge_of(&self, set: usize, gauge: Gauge) -> i64 {
        self.set_shards(set)
            .iter()
            .map(|s| s.gauges[gauge as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Failures by API error code in set `set`.
    pub fn error_codes_of(&self, set: usize) -> CodeCounts {
        self.registry
            .error_codes
            .get(set)
            .map(CodeTable::read)
            .unwrap_or_default()
    }

    /// Connect failures by [`FailureKind`](super::FailureKind) key in set `set`.
    pub fn failure_kinds_of(&self, set: usize) -> CodeCounts {
        self.registry
            .failure_kinds
            .get(set)
            .map(CodeTable::read)
            .unwrap_or_default()
    }

    /// Connect failures by [`FailureKind`](super::FailureKind) key so far (every set).
    pub fn failure_kinds(&self) -> CodeCounts {
        let mut all = CodeCounts::default();
        for t in &self.registry.failure_kinds {
            all.merge(&t.read());
        }
        all
    }

    /// Closes by close code in set `set`.
    pub fn close_codes_of(&self, set: usize) -> CodeCounts {
        self.registry
            .close_codes
            .get(set)
            .map(CodeTable::read)
            .unwrap_or_default()
    }

    /// Current value of a counter (sum over shards).
    pub fn counter(&self, counter: Counter) -> u64 {
        self.registry
            .shards
            .iter()
            .map(|s| s.counters[counter.index()].load(Ordering::Relaxed))
            .sum()
    }

    /// Current level of a gauge (sum over shards).
    pub fn gauge(&self, gauge: Gauge) -> i64 {
        self.registry
            .shards
            .iter()
            .map(|s| s.gauges[gauge as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Failures by API error code so far (every set).
    pub fn error_codes(&self) -> CodeCounts {
        let mut all = CodeCounts::default();
        for t in &self.registry.error_codes {
            all.merge(&t.read());
        }
        all
    }

    /// Closes by WebSocket close code so far (every set).
    pub fn close_codes(&self) -> CodeCounts {
        let mut all = CodeCounts::default();
        for t in &self.registry.close_codes {
            all.merge(&t.read());
        }
        all
    }

    pub(crate) fn register_storm(&self, storm: Arc<Storm>) {
        // A panic elsewhere while holding this lock cannot leave the list half-updated.
        self.registry
            .storms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(storm);
    }

    /// Stops attributing drops to storms (called when the run stops, before users close).
    pub fn close_storms(&self) {
        self.registry
            .storms_closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn storms_closed(&self) -> bool {
        self.registry.storms_closed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every storm opened so far.
    pub(crate) fn storms(&self) -> Vec<Arc<Storm>> {
        self.registry.storms.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::profile::with_profile;

    #[test]
    fn profiled_records_go_to_their_profile_and_sum_to_the_totals() {
        let r = Recorder::build(2, &[Profile::Js, Profile::Unity]);
        assert_eq!(r.sets(), 3);
        assert_eq!(
            (
                r.set_of(Profile::Js),
                r.set_of(Profile::Unity),
                r.set_of(Profile::Swift)
            ),
            (1, 2, 0)
        );
        with_profile(Profile::Js, || {
            r.count(Counter::Connects);
            r.record(Metric::ConnectWs, Duration::from_micros(100));
            r.error_code(40);
            r.gauge_add(Gauge::Connected, 1);
        });
        with_profile(Profile::Unity, || {
            r.count_n(Counter::Connects, 2);
            r.record(Metric::ConnectWs, Duration::from_micros(300));
            r.close_code(1011);
        });
        // Not in the mix: filed under no profile, still in the totals.
        with_profile(Profile::Swift, || r.count(Counter::Connects));
        r.count(Counter::LateTicks);
        r.user_started(Profile::Unity);
        assert_eq!(r.counter(Counter::Connects), 4);
        assert_eq!(
            (0..3).map(|s| r.counter_of(s, Counter::Connects)).collect::<Vec<_>>(),
            vec![1, 1, 2]
        );
        assert_eq!(r.counter_of(0, Counter::LateTicks), 1);
        assert_eq!(r.gauge_of(1, Gauge::Connected), 1);
        assert_eq!(r.gauge_of(2, Gauge::Connected), 0);
        assert_eq!(r.error_codes_of(1).by_code.get(&40), Some(&1));
        assert_eq!(r.error_codes().total(), 1);
        assert_eq!(r.close_codes_of(2).by_code.get(&1011), Some(&1));
        assert_eq!((r.users_started(2), r.users_started(1)), (1, 0));
        let ws = Series {
            metric: Metric::ConnectWs,
            view: View::Actual,
        };
        let mut unity = Vec::new();
        r.drain_set(2, ws, |v, n| unity.push((v, n)));
        assert_eq!(unity, vec![(300, 1)]);
        assert_eq!(drained(&r, ws), vec![(100, 1)], "the rest is still in set 1");
    }

    fn drained(r: &Recorder, s: Series) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        r.drain(s, |value, n| v.push((value, n)));
        v
    }

    #[test]
    fn record_goes_to_the_actual_view_and_clamps_over_max() {
        let r = Recorder::with_shards(2);
        r.record(Metric::ConnectWs, Duration::from_micros(250));
        r.record(Metric::ConnectWs, Duration::from_secs(10_000));
        let actual = Series {
            metric: Metric::ConnectWs,
            view: View::Actual,
        };
        let got = drained(&r, actual);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (250, 1));
        assert!(got[1].0 <= MAX_US && got[1].0 > MAX_US - MAX_US / 1000);
        assert_eq!(r.clamped(actual), 1);
        assert!(
            drained(
                &r,
                Series {
                    metric: Metric::ConnectWs,
                    view: View::Intended
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn record_corrected_fills_both_views() {
        let r = Recorder::with_shards(1);
        let intended = Instant::now();
        let start = intended + Duration::from_millis(30);
        let end = start + Duration::from_millis(2);
        r.record_corrected(Metric::Rest(super::super::RestEndpoint::Read), intended, start, end);
        let m = Metric::Rest(super::super::RestEndpoint::Read);
        let a = drained(
            &r,
            Series {
                metric: m,
                view: View::Actual,
            },
        );
        let i = drained(
            &r,
            Series {
                metric: m,
                view: View::Intended,
            },
        );
        assert_eq!(a, vec![(2_000, 1)]);
        assert_eq!(i.len(), 1);
        assert!((31_968..=32_000).contains(&i[0].0), "{i:?}");
    }

    #[test]
    fn counters_gauges_and_codes_sum_over_threads() {
        let r = Recorder::with_shards(4);
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        r.count(Counter::Connects);
                        r.gauge_add(Gauge::Connected, 1);
                        r.record(Metric::TokenFetch, Duration::from_micros(7));
                    }
                    r.gauge_add(Gauge::Connected, -500);
                    r.error_code(40);
                    r.close_code(1011);
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
        r.count_n(Counter::EventsSent, 5);
        assert_eq!(r.counter(Counter::Connects), 3_000);
        assert_eq!(r.counter(Counter::EventsSent), 5);
        assert_eq!(r.gauge(Gauge::Connected), 1_500);
        assert_eq!(r.error_codes().by_code.get(&40), Some(&3));
        assert_eq!(r.close_codes().by_code.get(&1011), Some(&3));
        let total: u64 = drained(
            &r,
            Series {
                metric: Metric::TokenFetch,
                view: View::Actual,
            },
        )
        .iter()
        .map(|(_, n)| n)
        .sum();
        assert_eq!(total, 3_000);
    }
}
