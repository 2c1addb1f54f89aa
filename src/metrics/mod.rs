//! Measurement: every latency histogram, counter, gauge and recovery curve of a run, recorded on
//! the hot path without locks and without dropping a sample, collected once per second.
//!
//! Owns: what is measured ([`Metric`], [`Counter`], [`Gauge`]), recording ([`Recorder`]), the
//! per-second collection ([`Collector`]: live view, time series, curves, `.hlog` lines), the
//! mergeable end-of-run [`MetricsSnapshot`], percentile figures, and reconnect-storm recovery
//! ([`Storm`]), and the breakdown of all of it by SDK profile ([`profile`]). Does not own: when things are timed (the user state machine and the engine do
//! that), thresholds, or rendering (the report).
//!
//! How the pieces fit:
//!
//! ```text
//! user tasks ──record/count──▶ Recorder (Arc; per-thread shards of atomic histograms)
//!                                   │ drained every second
//!                                   ▼
//!                              Collector ──▶ LiveView (progress line)
//!                                   │   ├──▶ metrics.hlog (one line per second per histogram)
//!                                   │   └──▶ time series + curves (1 s resolution, bounded)
//!                                   ▼ finish()
//!                              MetricsSnapshot ──merge──▶ one snapshot for N shards ──▶ summary.json
//! ```
//!
//! Histograms are HdrHistograms in microseconds, 3 significant digits, fixed bounds 1 us ..=
//! [`MAX_US`] (one hour); never resized; larger values are recorded as [`MAX_US`] and counted as
//! clamped. There are no per-user histograms: one table per run, shared by every user.

mod atomic_histogram;
mod code_table;
mod collector;
mod failure_kind;
pub mod hlog;
pub mod hlog_merge;
mod metric;
pub mod profile;
mod recorder;
mod recovery;
mod snapshot;
mod summary;
mod timeline;

pub use code_table::CodeCounts;
pub use collector::{Collector, LiveView, TickHook, run_collector};
pub use failure_kind::FailureKind;
pub use metric::{CONNECT_TAG, COUNTER_COUNT, Counter, METRIC_COUNT, Metric, RestEndpoint, SERIES_COUNT, Series, View};
pub use profile::profiled;
pub use recorder::{GAUGE_COUNT, Gauge, Recorder};
pub use recovery::{STORM_WINDOW, Storm, StormCounts, StormFigures, StormSnapshot};
pub use snapshot::{HistogramSnapshot, MetricsSnapshot, ProfileSnapshot, RuleTally, SeriesPoint, SnapshotError};
pub use summary::{PercentileSummary, SpectrumPoint, spectrum};
pub use timeline::{CodePoint, Timeline};

use hdrhistogram::Histogram;

/// Largest latency a histogram holds, in microseconds: one hour. Larger samples are clamped.
pub const MAX_US: u64 = 3_600_000_000;

/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// An empty histogram with the bounds every chatstorm histogram uses (1 us ..= [`MAX_US`],
/// [`SIGFIG`] digits, no auto-resize), so that any two can be added exactly.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the constructor's rules (low >= 1, high >= 2 * low,
    // sigfig <= 5); the test `new_histogram_has_fixed_bounds` guards that.
    Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("constant histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_histogram_has_fixed_bounds() {
        let mut h = new_histogram();
        assert_eq!(h.low(), 1);
        assert_eq!(h.high(), MAX_US);
        assert_eq!(h.sigfig(), SIGFIG);
        assert!(!h.is_auto_resize());
        assert!(h.record(MAX_US).is_ok());
        assert!(h.record(MAX_US * 2).is_err(), "a fixed-bounds histogram never grows");
    }
}
