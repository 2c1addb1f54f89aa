//! Prometheus histogram buckets from an HdrHistogram: fixed, log-spaced upper bounds (eight per
//! decade, 10 us to 100 s, rounded to whole microseconds), the same for every histogram and
//! every run, so that series of different runs, shards and profiles add up bucket by bucket.
//!
//! Resolution: two neighbouring bounds are at most a factor 10^(1/8) = 1.334 apart, so a
//! quantile that PromQL's `histogram_quantile` interpolates inside a bucket lies within that
//! bucket's bounds; the HdrHistogram's own error (3 significant digits, 0.1 %) adds to it when a
//! recorded value lies on a bound. Samples above 100 s land in `+Inf` only.

use hdrhistogram::Histogram;
use std::sync::LazyLock;

/// Bounds per decade.
pub const PER_DECADE: u32 = 8;

/// The upper bounds, in microseconds, ascending (`+Inf` is implied after the last).
pub static BOUNDS_US: LazyLock<Vec<u64>> = LazyLock::new(|| {
    // 10^1 .. 10^8 us; each rounded to 3 significant digits (whole microseconds from 100 us up).
    (0..=7 * PER_DECADE)
        .map(|k| {
            let v = 10f64.powf(1.0 + f64::from(k) / f64::from(PER_DECADE));
            let digits = v.log10().floor() as i32 - 2;
            let unit = 10f64.powi(digits.max(0));
            ((v / unit).round() * unit) as u64
        })
        .collect()
});

/// The `le` label of each bound: seconds, as Prometheus prints floats.
pub static LE_LABELS: LazyLock<Vec<String>> =
    LazyLock::new(|| BOUNDS_US.iter().map(|us| format_seconds(*us as f64 / 1e6)).collect());

/// Seconds in the shortest form that reads back to the same float.
pub fn format_seconds(s: f64) -> String {
    format!("{s}")
}

/// One histogram in Prometheus' terms: per bound the samples at or below it and above the bound
/// before (not cumulative), the samples above the last bound, the sum and the count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Samples per bound of [`BOUNDS_US`], then one more for those above the last bound.
    pub counts: Vec<u64>,
    /// Sum of the samples, microseconds (each at its HdrHistogram bucket's middle).
    pub sum_us: f64,
    /// Number of samples.
    pub count: u64,
}

impl Buckets {
    /// The buckets of `h`. Each recorded value counts at the highest value its HdrHistogram
    /// bucket stands for, as `value_at_quantile` (and so `summary.json`) reports it.
    pub fn of(h: &Histogram<u64>) -> Buckets {
        let bounds = &*BOUNDS_US;
        let mut counts = vec![0u64; bounds.len() + 1];
        let mut sum_us = 0.0;
        let mut i = 0;
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            let n = v.count_at_value();
            while i < bounds.len() && value > bounds[i] {
                i += 1;
            }
            counts[i] += n;
            sum_us += h.median_equivalent(value) as f64 * n as f64;
        }
        Buckets {
            counts,
            sum_us,
            count: h.len(),
        }
    }

    /// `self - other`, bucket by bucket (for the samples of a whole that belong to no part).
    pub fn minus(&self, other: &Buckets) -> Buckets {
        Buckets {
            counts: self
                .counts
                .iter()
                .zip(other.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum_us: (self.sum_us - other.sum_us).max(0.0),
            count: self.count.saturating_sub(other.count),
        }
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Buckets) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
        self.count += other.count;
    }

    /// The cumulative counts per bound (`le`), the last one being `+Inf` (= `count`).
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0u64, |acc, n| {
            *acc += n;
            Some(*acc)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    #[test]
    fn bounds_are_log_spaced_and_readable() {
        let b = &*BOUNDS_US;
        assert_eq!(b.len(), 57);
        assert_eq!((b[0], b[1], b[8], b[56]), (10, 13, 100, 100_000_000));
        assert!(b.windows(2).all(|w| w[1] > w[0] && (w[1] as f64) / (w[0] as f64) < 1.4));
        assert_eq!(LE_LABELS[8], "0.0001");
        assert_eq!(LE_LABELS[56], "100");
    }

    #[test]
    fn buckets_count_every_sample_once() {
        let mut h = new_histogram();
        for v in [1, 10, 11, 99, 100, 101, 5_000, 200_000_000] {
            h.record(v).unwrap();
        }
        let b = Buckets::of(&h);
        assert_eq!(b.count, 8);
        assert_eq!(b.counts.iter().sum::<u64>(), 8);
        let cum: Vec<u64> = b.cumulative().collect();
        assert_eq!(cum[0], 2, "1 and 10 are <= 10 us");
        assert_eq!(cum[8], 5, "<= 100 us");
        assert_eq!(*cum.last().unwrap(), 8);
        assert_eq!(cum[56], 7, "200 s is above the last bound");
        let half = b.minus(&b);
        assert_eq!((half.count, half.counts.iter().sum::<u64>()), (0, 0));
    }
}
