//! Figures read off a histogram for people: the percentile summary of `summary.json` and the
//! percentile spectrum (p50 to p99.99 on a log scale) the HTML report draws.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The percentiles every latency is reported with, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PercentileSummary {
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample.
    pub min_us: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample (at most [`MAX_US`](super::MAX_US); see `clamped`).
    pub max_us: u64,
    /// Samples above [`MAX_US`](super::MAX_US), recorded as [`MAX_US`](super::MAX_US).
    pub clamped: u64,
}

impl PercentileSummary {
    /// The summary of a histogram; all zero when it is empty. Percentiles are the highest value
    /// equivalent to the sample at the nearest rank, `ceil(q * count)` (HdrHistogram's convention),
    /// so within 0.1 %. (HdrHistogram_py rounds the rank instead, so at small counts its
    /// percentiles can be one sample apart from these.)
    pub fn of(h: &Histogram<u64>, clamped: u64) -> PercentileSummary {
        if h.is_empty() {
            return PercentileSummary {
                clamped,
                ..PercentileSummary::default()
            };
        }
        PercentileSummary {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            clamped,
        }
    }
}

/// One point of a percentile spectrum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpectrumPoint {
    /// Percentile, 50 ..= 99.99.
    pub percentile: f64,
    /// Latency at that percentile, microseconds.
    pub value_us: u64,
}

/// The percentile spectrum from p50 to p99.99, evenly spaced on the usual log axis: p50, then
/// `-log10(1 - p)` from 0.4 to 4 in steps of 0.1 (38 points); empty for an empty histogram.
pub fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    std::iter::once(50.0)
        .chain((4..=40).map(|tenth| {
            let nines = f64::from(tenth) / 10.0;
            // round to 4 decimals so that the axis labels read 99.9, not 99.90000000000001
            ((1.0 - 10f64.powf(-nines)) * 1e6).round() / 1e4
        }))
        .map(|percentile| SpectrumPoint {
            percentile,
            value_us: h.value_at_percentile(percentile),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    #[test]
    fn summary_of_one_to_ten_thousand() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).expect("in range");
        }
        let s = PercentileSummary::of(&h, 3);
        assert_eq!(s.count, 10_000);
        assert_eq!(s.min_us, 1);
        assert!((s.mean_us - 5_000.5).abs() < 5.0, "{}", s.mean_us);
        let near = |got: u64, want: u64| got.abs_diff(want) <= want / 500 + 1;
        assert!(near(s.p50_us, 5_000), "{}", s.p50_us);
        assert!(near(s.p90_us, 9_000), "{}", s.p90_us);
        assert!(near(s.p95_us, 9_500), "{}", s.p95_us);
        assert!(near(s.p99_us, 9_900), "{}", s.p99_us);
        assert!(near(s.p999_us, 9_990), "{}", s.p999_us);
        assert!(near(s.max_us, 10_000), "{}", s.max_us);
        assert_eq!(s.clamped, 3);
        assert_eq!(PercentileSummary::of(&new_histogram(), 0), PercentileSummary::default());
    }

    #[test]
    fn spectrum_spans_p50_to_p9999_and_is_monotonic() {
        let mut h = new_histogram();
        for v in 1..=100_000u64 {
            h.record(v).expect("in range");
        }
        let s = spectrum(&h);
        assert_eq!(s.len(), 38);
        assert_eq!(s[0].percentile, 50.0);
        assert!(s[0].value_us.abs_diff(50_000) <= 50, "{}", s[0].value_us);
        assert!(s[37].value_us.abs_diff(99_990) <= 100, "{}", s[37].value_us);
        assert_eq!(s[7].percentile, 90.0);
        assert_eq!(s[27].percentile, 99.9);
        assert_eq!(s[37].percentile, 99.99);
        assert!(
            s.windows(2)
                .all(|w| w[0].value_us <= w[1].value_us && w[0].percentile < w[1].percentile)
        );
        assert!(spectrum(&new_histogram()).is_empty());
    }
}
