//! Generator honesty: a probe task asks the runtime to wake it every 10 ms and records how late
//! each wake-up is. When the runtime's workers are saturated (too many users for the cores),
//! wake-ups slip, and so would every timestamp the users take: such a run is reported invalid
//! (exit 4) rather than blamed on the server.
//!
//! The bound: p99 lateness of [`LAG_BOUND`]. A healthy tokio runtime on this 2-core machine
//! wakes within about 1–2 ms; 25 ms means user timestamps can no longer be trusted to the
//! resolution the reports show.

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How often the probe asks to be woken.
pub const TICK: Duration = Duration::from_millis(10);
/// The documented bound on the p99 lateness of the probe's wake-ups.
pub const LAG_BOUND: Duration = Duration::from_millis(25);
/// A user start later than this after its intended time counts as late.
pub const LATE_START: Duration = Duration::from_millis(100);

/// What the probe saw.
#[derive(Debug, Clone, Default)]
pub struct LagReport {
    /// p99 lateness, microseconds.
    pub p99_us: u64,
    /// Worst lateness, microseconds.
    pub max_us: u64,
    /// Wake-ups observed.
    pub ticks: u64,
}

impl LagReport {
    /// Whether the p99 passed the bound.
    pub fn saturated(&self) -> bool {
        self.p99_us > LAG_BOUND.as_micros() as u64
    }

    /// The report of several runtimes probed at once (the main one and each user lane): the
    /// worst lane's p99 and maximum, since a late lane makes its own users' timestamps late.
    pub fn worst(reports: impl IntoIterator<Item = LagReport>) -> LagReport {
        reports.into_iter().fold(LagReport::default(), |a, b| LagReport {
            p99_us: a.p99_us.max(b.p99_us),
            max_us: a.max_us.max(b.max_us),
            ticks: a.ticks + b.ticks,
        })
    }
}

/// The probes' wake-up lateness as it happens, for a watcher of the run
/// ([`super::watch::Watcher::lag_bounds_us`]): a count per upper bound, in microseconds, and the
/// sum; lock-free, written by every probe of the run (once per [`TICK`] each).
#[derive(Debug)]
pub struct LagTally {
    bounds_us: Vec<u64>,
    /// Per bound, then one for the samples above the last.
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl LagTally {
    /// A tally with these ascending upper bounds.
    pub fn new(bounds_us: Vec<u64>) -> LagTally {
        let counts = (0..=bounds_us.len()).map(|_| AtomicU64::new(0)).collect();
        LagTally {
            bounds_us,
            counts,
            sum_us: AtomicU64::new(0),
        }
    }

    fn record(&self, us: u64) {
        let i = self.bounds_us.partition_point(|b| *b < us);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The counts per bound (not cumulative), the last for the samples above every bound.
    pub fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
    }

    /// The sum of the samples, microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Relaxed)
    }
}

/// Runs until `stop` and reports the lateness of its wake-ups.
pub async fn probe(stop: CancellationToken) -> LagReport {
    probe_into(stop, None).await
}

/// [`probe`], also counting each wake-up's lateness into `tally` as it happens.
pub async fn probe_into(stop: CancellationToken, tally: Option<Arc<LagTally>>) -> LagReport {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid");
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut expected = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = interval.tick() => {
                let now = Instant::now();
                let late = now.saturating_duration_since(expected);
                let us = (late.as_micros() as u64).clamp(1, 60_000_000);
                let _ = hist.record(us);
                if let Some(t) = &tally {
                    t.record(us);
                }
                expected = now + TICK;
            }
        }
    }
    LagReport {
        p99_us: hist.value_at_quantile(0.99),
        max_us: hist.max(),
        ticks: hist.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_runtime_is_not_saturated() {
        let stop = CancellationToken::new();
        let task = tokio::spawn(probe(stop.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.cancel();
        let r = task.await.unwrap();
        assert!(r.ticks >= 90, "{r:?}");
        assert!(!r.saturated(), "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_runtime_is_saturated() {
        let stop = CancellationToken::new();
        let task = tokio::spawn(probe(stop.clone()));
        // Let it take its first ticks, then hog the (single, test) thread: every tick is late.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(40));
            tokio::time::advance(Duration::from_millis(40)).await;
        }
        stop.cancel();
        let r = task.await.unwrap();
        assert!(r.max_us >= 30_000, "{r:?}");
    }
}
