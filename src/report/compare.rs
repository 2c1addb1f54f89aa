//! Baseline comparison (`chatstorm report new.json --baseline old.json`): a verdict per figure
//! that a CI gate can trust, decided from the two runs' recorded histograms and counts rather
//! than from two numbers side by side.
//!
//! Each figure is one of:
//! - **changed** (worse or better): a statistical test gives evidence of a difference, *and* the
//!   difference is at least the minimum absolute change and the relative tolerance, so that a
//!   real but negligible shift is not a regression;
//! - **no evidence of change**: both runs have enough samples, and the test does not show a
//!   difference that large (whatever the two point values say);
//! - **too few samples**: one of the runs has too few samples to judge the figure at all.
//!
//! Only "changed" for the worse is a regression (exit 1). A comparison with a run whose load
//! generator was saturated is not trusted at all ([`invalid_runs`], exit 4). The tests:
//! - a latency percentile (p50, p90, p99 of every histogram both runs recorded): a distribution-
//!   free confidence interval of the percentile from each run's histogram (the order statistics
//!   whose ranks bound the percentile's rank with [`CONFIDENCE`], binomial, normal approximation);
//!   "changed" needs the two intervals to be disjoint. It needs [`MIN_TAIL`] samples on each side
//!   of the percentile's rank in both runs (p99 needs 500 samples), and `min_samples` in all.
//! - a whole latency distribution: the Mann-Whitney U test computed from the two histograms'
//!   buckets (mid-ranks for the samples that share a bucket, tie-corrected variance), two-sided,
//!   "changed" below [`ALPHA`] and with the medians apart by the minimum change.
//! - a failure share (errors / operations, connect failures / attempts, events lost / expected
//!   deliveries): the two-proportion z-test, "changed" below [`ALPHA`] with the shares apart by
//!   [`MIN_SHARE_CHANGE`].
//!
//! About 150 figures are judged at once, so each test is strict ([`ALPHA`] = 0.001, intervals at
//! 99.9 %): a gate that flags one figure in twenty by chance would fail most pipelines.

use super::summary::RunSummary;
use hdrhistogram::Histogram;
use std::io::{self, Write};

/// Two-sided significance level of the Mann-Whitney and proportion tests.
pub const ALPHA: f64 = 0.001;
/// Confidence of each run's percentile interval (two-sided).
pub const CONFIDENCE: f64 = 0.999;
/// Samples needed on each side of a percentile's rank (`n * q` and `n * (1 - q)`).
pub const MIN_TAIL: f64 = 5.0;
/// Smallest change of a failure share that counts, in percentage points.
pub const MIN_SHARE_CHANGE: f64 = 1.0;
/// The normal quantile of [`CONFIDENCE`] (two-sided): 3.29.
const Z_CONFIDENCE: f64 = 3.290_526_731;

/// What a comparison needs besides the two summaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// How much worse, in percent of the baseline, a figure must get to count.
    pub tolerance_percent: f64,
    /// The smallest latency change that counts, milliseconds.
    pub min_change_ms: f64,
    /// Samples (or operations) each run needs for a figure to be judged.
    pub min_samples: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tolerance_percent: 10.0,
            min_change_ms: 5.0,
            min_samples: 20,
        }
    }
}

/// Which direction is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Smaller is better (latencies, errors).
    Lower,
    /// Larger is better.
    Higher,
}

/// What the test says about a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Evidence of a difference at least as large as the minimum change.
    Changed {
        /// True when the new run is worse: a regression.
        worse: bool,
    },
    /// Enough samples, no such evidence.
    NoEvidence,
    /// Not enough samples in one of the runs to judge.
    TooFewSamples,
}

impl Finding {
    /// The words the table shows.
    pub fn words(self) -> &'static str {
        match self {
            Finding::Changed { worse: true } => "changed: worse",
            Finding::Changed { worse: false } => "changed: better",
            Finding::NoEvidence => "no evidence of change",
            Finding::TooFewSamples => "too few samples",
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The figure's name (`connect.ws p99 (ms)`).
    pub name: String,
    /// Baseline value.
    pub old: f64,
    /// New value.
    pub new: f64,
    /// Samples (or operations) behind the baseline value.
    pub old_samples: u64,
    /// Samples behind the new value.
    pub new_samples: u64,
    /// Change in percent of the baseline (`None` when the baseline is 0).
    pub change_percent: Option<f64>,
    /// Which way is better.
    pub better: Better,
    /// What the test found.
    pub finding: Finding,
    /// The test's figures for people (`p = 3e-7`, `99.9 % intervals [1.2, 1.4] / [2.0, 2.3] ms`).
    pub evidence: String,
    /// Changed for the worse: the comparison fails.
    pub regression: bool,
}

/// Why the comparison cannot be trusted at all, one line per run that is invalid: a run whose
/// load generator was saturated measured its own delays along with the target's, so a change
/// between it and the other run says nothing about the target (`report --baseline` then exits
/// 4, as the invalid run itself did).
pub fn invalid_runs(new: &RunSummary, old: &RunSummary) -> Vec<String> {
    [("baseline", old), ("new", new)]
        .into_iter()
        .filter(|(_, s)| s.generator.saturated)
        .map(|(which, s)| {
            format!(
                "the {which} run is invalid: its load generator was saturated ({})",
                s.generator.reasons.join("; ")
            )
        })
        .collect()
}

/// Compares the two summaries figure by figure (see the module header).
pub fn compare(new: &RunSummary, old: &RunSummary, settings: &Settings) -> Vec<Row> {
    let mut rows = Vec::new();
    let tags: std::collections::BTreeSet<&String> = new
        .metrics
        .histograms
        .keys()
        .chain(old.metrics.histograms.keys())
        .collect();
    for tag in tags {
        let (Ok(n), Ok(o)) = (new.metrics.histogram(tag), old.metrics.histogram(tag)) else {
            continue;
        };
        rows.push(distribution_row(tag, &n, &o, settings));
        for (stat, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
            rows.push(percentile_row(tag, stat, q, &n, &o, settings));
        }
    }
    let shares: [(&str, Share); 3] = [
        ("errors rate", |s| (s.errors.total, s.errors.operations)),
        ("connect failure rate", |s| {
            let failures = s.metrics.counters.get("connect_failures").copied().unwrap_or(0);
            (
                failures,
                failures + s.metrics.counters.get("connects").copied().unwrap_or(0),
            )
        }),
        ("events lost rate", |s| {
            let lost = s.metrics.counters.get("events_lost").copied().unwrap_or(0);
            (
                lost,
                lost + s.metrics.counters.get("events_received").copied().unwrap_or(0),
            )
        }),
    ];
    for (name, of) in shares {
        rows.push(share_row(name, of(new), of(old), settings));
    }
    rows
}

/// Failures and operations of a failure share, read off a summary.
type Share = fn(&RunSummary) -> (u64, u64);

fn change_percent(new: f64, old: f64) -> Option<f64> {
    (old != 0.0).then(|| (new - old) / old.abs() * 100.0)
}

/// Whether a difference is large enough to count: at least the minimum absolute change and the
/// relative tolerance of the baseline.
fn large_enough(new: f64, old: f64, min_abs: f64, tolerance_percent: f64) -> bool {
    let d = (new - old).abs();
    d >= min_abs && d >= old.abs() * tolerance_percent / 100.0
}

/// The value of the sample at 1-based `rank` (clamped into the histogram), as the lowest or
/// highest value of its bucket.
fn value_at_rank(h: &Histogram<u64>, rank: u64, highest: bool) -> u64 {
    let rank = rank.clamp(1, h.len().max(1));
    let mut seen = 0;
    for v in h.iter_recorded() {
        seen += v.count_since_last_iteration();
        if seen >= rank {
            let x = v.value_iterated_to();
            return if highest {
                h.highest_equivalent(x)
            } else {
                h.lowest_equivalent(x)
            };
        }
    }
    h.max()
}

/// A distribution-free interval for the `q` quantile from `h`'s samples: the order statistics
/// whose ranks are `n q ∓ z sqrt(n q (1 - q))`, microseconds.
fn percentile_interval(h: &Histogram<u64>, q: f64) -> (u64, u64) {
    let n = h.len() as f64;
    let half = Z_CONFIDENCE * (n * q * (1.0 - q)).sqrt();
    let lo = (n * q - half).floor().max(1.0) as u64;
    let hi = (n * q + half).ceil() as u64 + 1;
    (value_at_rank(h, lo, false), value_at_rank(h, hi, true))
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn percentile_row(
    tag: &str,
    stat: &str,
    q: f64,
    new: &Histogram<u64>,
    old: &Histogram<u64>,
    settings: &Settings,
) -> Row {
    let value = |h: &Histogram<u64>| if h.is_empty() { 0.0 } else { ms(h.value_at_quantile(q)) };
    let (n_new, n_old) = (new.len(), old.len());
    let enough = |n: u64| {
        let n_f = n as f64;
        n >= settings.min_samples && n_f * q >= MIN_TAIL && n_f * (1.0 - q) >= MIN_TAIL
    };
    let (v_new, v_old) = (value(new), value(old));
    let (finding, evidence) = if !enough(n_new) || !enough(n_old) {
        // (less a hair: 5 / 0.1 is 50.000000000000004 in floating point)
        let need = (MIN_TAIL / (1.0 - q).min(q) - 1e-9)
            .ceil()
            .max(settings.min_samples as f64);
        (Finding::TooFewSamples, format!("needs {need} samples in each run"))
    } else {
        let (new_lo, new_hi) = percentile_interval(new, q);
        let (old_lo, old_hi) = percentile_interval(old, q);
        let evidence = format!(
            "99.9 % intervals: baseline [{:.3}, {:.3}] ms, new [{:.3}, {:.3}] ms",
            ms(old_lo),
            ms(old_hi),
            ms(new_lo),
            ms(new_hi)
        );
        let size = large_enough(v_new, v_old, settings.min_change_ms, settings.tolerance_percent);
        let finding = if new_lo > old_hi && size {
            Finding::Changed { worse: true }
        } else if new_hi < old_lo && size {
            Finding::Changed { worse: false }
        } else {
            Finding::NoEvidence
        };
        (finding, evidence)
    };
    row(
        format!("{tag} {stat} (ms)"),
        v_new,
        v_old,
        (n_new, n_old),
        Better::Lower,
        finding,
        evidence,
    )
}

fn row(
    name: String,
    new: f64,
    old: f64,
    (new_samples, old_samples): (u64, u64),
    better: Better,
    finding: Finding,
    evidence: String,
) -> Row {
    Row {
        name,
        old,
        new,
        old_samples,
        new_samples,
        change_percent: change_percent(new, old),
        better,
        regression: finding == Finding::Changed { worse: true },
        finding,
        evidence,
    }
}

/// The Mann-Whitney U test of `new` against `old` from their buckets: the two-sided p-value and
/// the probability that a new sample exceeds a baseline one (ties count half).
pub fn mann_whitney(new: &Histogram<u64>, old: &Histogram<u64>) -> (f64, f64) {
    let mut buckets: std::collections::BTreeMap<u64, (u64, u64)> = std::collections::BTreeMap::new();
    for v in new.iter_recorded() {
        buckets
            .entry(new.highest_equivalent(v.value_iterated_to()))
            .or_default()
            .0 += v.count_at_value();
    }
    for v in old.iter_recorded() {
        buckets
            .entry(old.highest_equivalent(v.value_iterated_to()))
            .or_default()
            .1 += v.count_at_value();
    }
    let (n1, n2) = (new.len() as f64, old.len() as f64);
    let total = n1 + n2;
    let mut below = 0.0;
    let mut rank_sum_new = 0.0;
    let mut ties = 0.0;
    for (c_new, c_old) in buckets.values() {
        let t = (*c_new + *c_old) as f64;
        // The samples of one bucket share the mid-rank of the ranks they span.
        let mid_rank = below + (t + 1.0) / 2.0;
        rank_sum_new += *c_new as f64 * mid_rank;
        ties += t * t * t - t;
        below += t;
    }
    let u = rank_sum_new - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
    let superiority = u / (n1 * n2);
    if var <= 0.0 {
        return (1.0, superiority);
    }
    // Continuity correction towards the mean.
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    (erfc(z / std::f64::consts::SQRT_2).min(1.0), superiority)
}

/// The complementary error function (Chebyshev fit, fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

fn distribution_row(tag: &str, new: &Histogram<u64>, old: &Histogram<u64>, settings: &Settings) -> Row {
    let median = |h: &Histogram<u64>| {
        if h.is_empty() {
            0.0
        } else {
            ms(h.value_at_quantile(0.5))
        }
    };
    let (n_new, n_old) = (new.len(), old.len());
    let (m_new, m_old) = (median(new), median(old));
    let (finding, evidence) = if n_new < settings.min_samples || n_old < settings.min_samples {
        (
            Finding::TooFewSamples,
            format!("needs {} samples in each run", settings.min_samples),
        )
    } else {
        let (p, superiority) = mann_whitney(new, old);
        let size = large_enough(m_new, m_old, settings.min_change_ms, settings.tolerance_percent);
        let finding = if p < ALPHA && size {
            Finding::Changed {
                worse: superiority > 0.5,
            }
        } else {
            Finding::NoEvidence
        };
        (
            finding,
            format!("Mann-Whitney p = {p:.2e}, P(new > baseline) = {superiority:.3}"),
        )
    };
    row(
        format!("{tag} distribution (median, ms)"),
        m_new,
        m_old,
        (n_new, n_old),
        Better::Lower,
        finding,
        evidence,
    )
}

/// The two-proportion z-test of `failures / total` in both runs, in percent.
fn share_row(name: &str, (f_new, t_new): (u64, u64), (f_old, t_old): (u64, u64), settings: &Settings) -> Row {
    let share = |f: u64, t: u64| if t == 0 { 0.0 } else { f as f64 * 100.0 / t as f64 };
    let (s_new, s_old) = (share(f_new, t_new), share(f_old, t_old));
    let (finding, evidence) = if t_new < settings.min_samples || t_old < settings.min_samples {
        (
            Finding::TooFewSamples,
            format!("needs {} operations in each run", settings.min_samples),
        )
    } else {
        let pooled = (f_new + f_old) as f64 / (t_new + t_old) as f64;
        let se = (pooled * (1.0 - pooled) * (1.0 / t_new as f64 + 1.0 / t_old as f64)).sqrt();
        let p = if se > 0.0 {
            erfc(((s_new - s_old) / 100.0).abs() / se / std::f64::consts::SQRT_2).min(1.0)
        } else {
            1.0
        };
        let size = large_enough(s_new, s_old, MIN_SHARE_CHANGE, settings.tolerance_percent);
        let finding = if p < ALPHA && size {
            Finding::Changed { worse: s_new > s_old }
        } else {
            Finding::NoEvidence
        };
        (finding, format!("two-proportion test p = {p:.2e}"))
    };
    row(
        format!("{name} (%)"),
        s_new,
        s_old,
        (t_new, t_old),
        Better::Lower,
        finding,
        evidence,
    )
}

/// Writes the comparison table and the verdict.
///
/// # Errors
/// When `w` fails.
pub fn write(rows: &[Row], settings: &Settings, w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "{:<48} {:>12} {:>12} {:>9} {:>17}  finding",
        "figure", "baseline", "new", "change", "samples old/new"
    )?;
    for r in rows {
        let change = r
            .change_percent
            .map_or_else(|| "n/a".to_owned(), |c| format!("{c:+.1}%"));
        let flag = if r.regression { "  REGRESSION" } else { "" };
        writeln!(
            w,
            "{:<48} {:>12.3} {:>12.3} {:>9} {:>17}  {}{flag} ({})",
            r.name,
            r.old,
            r.new,
            change,
            format!("{}/{}", r.old_samples, r.new_samples),
            r.finding.words(),
            r.evidence
        )?;
    }
    let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count();
    let worse = count(&|r| r.regression);
    let better = count(&|r| r.finding == Finding::Changed { worse: false });
    let none = count(&|r| r.finding == Finding::NoEvidence);
    let few = count(&|r| r.finding == Finding::TooFewSamples);
    writeln!(w)?;
    writeln!(
        w,
        "{} figures: {worse} changed for the worse, {better} changed for the better, {none} no evidence of change, {few} too few samples",
        rows.len()
    )?;
    writeln!(
        w,
        "(changed: a test gives evidence (Mann-Whitney or two-proportion p < {ALPHA}, or disjoint 99.9 % percentile intervals) of a change of at least {} ms (latencies) or {MIN_SHARE_CHANGE} percentage point (shares), and {}% of the baseline)",
        settings.min_change_ms, settings.tolerance_percent
    )?;
    if worse == 0 {
        writeln!(w, "no regression")
    } else {
        writeln!(w, "REGRESSION: {worse} figures changed for the worse")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{HistogramSnapshot, MetricsSnapshot, new_histogram};
    use crate::report::summary::*;
    use rand::{Rng, SeedableRng};

    /// A summary whose `connect.ws` holds `n` samples around `median_us` (uniform ±50 %), and
    /// `errors` failures of 1,000 operations.
    fn summary(n: u64, median_us: u64, errors: u64, seed: u64) -> RunSummary {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut h = new_histogram();
        for _ in 0..n {
            let v = rng.random_range(median_us / 2..=median_us * 3 / 2);
            h.record(v.max(1)).expect("in range");
        }
        let mut metrics = MetricsSnapshot {
            shards: 1,
            ..MetricsSnapshot::default()
        };
        metrics
            .histograms
            .insert("connect.ws".to_owned(), HistogramSnapshot::encode(&h, 0));
        RunSummary {
            schema: SCHEMA_ID.to_owned(),
            tool: ToolInfo::default(),
            run: RunInfo::default(),
            verdict: Verdict::default(),
            latency: Default::default(),
            errors: ErrorFigures {
                total: errors,
                operations: 1000,
                rate_percent: errors as f64 / 10.0,
                ..Default::default()
            },
            figures: Default::default(),
            storms: vec![],
            waves: vec![],
            timeline: vec![],
            thresholds: vec![],
            checks: vec![],
            check_settings: Default::default(),
            target_health: Default::default(),
            state: None,
            conformance: None,
            generator: GeneratorHealth::default(),
            by_profile: Default::default(),
            metrics,
        }
    }

    fn finding(rows: &[Row], name: &str) -> Finding {
        rows.iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no row {name}: {rows:#?}"))
            .finding
    }

    #[test]
    fn a_real_shift_is_changed_and_a_regression() {
        let rows = compare(
            &summary(2_000, 130_000, 0, 1),
            &summary(2_000, 100_000, 0, 2),
            &Settings::default(),
        );
        for name in [
            "connect.ws distribution (median, ms)",
            "connect.ws p50 (ms)",
            "connect.ws p90 (ms)",
            "connect.ws p99 (ms)",
        ] {
            assert_eq!(finding(&rows, name), Finding::Changed { worse: true }, "{name}");
        }
        let mut out = Vec::new();
        write(&rows, &Settings::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("REGRESSION: 4 figures changed for the worse"), "{text}");
        // And the other way round it is an improvement, not a regression.
        let rows = compare(
            &summary(2_000, 100_000, 0, 2),
            &summary(2_000, 130_000, 0, 1),
            &Settings::default(),
        );
        assert_eq!(finding(&rows, "connect.ws p50 (ms)"), Finding::Changed { worse: false });
        assert!(rows.iter().all(|r| !r.regression));
    }

    #[test]
    fn samples_of_the_same_distribution_show_no_evidence() {
        for seed in 0..20 {
            let rows = compare(
                &summary(2_000, 100_000, 30, seed),
                &summary(2_000, 100_000, 30, seed + 100),
                &Settings::default(),
            );
            // (The connect and event shares have no operations here: too few samples.)
            assert!(
                rows.iter()
                    .filter(|r| r.name.starts_with("connect.ws") || r.name.starts_with("errors"))
                    .all(|r| r.finding == Finding::NoEvidence),
                "seed {seed}: {rows:#?}"
            );
        }
    }

    #[test]
    fn few_samples_are_too_few_to_judge_even_when_the_values_differ_a_lot() {
        // 35 samples with the median 20 times higher: the p50 could be judged, the p99 cannot.
        let rows = compare(
            &summary(35, 2_000_000, 0, 1),
            &summary(35, 100_000, 0, 2),
            &Settings::default(),
        );
        assert_eq!(finding(&rows, "connect.ws p99 (ms)"), Finding::TooFewSamples);
        assert_eq!(finding(&rows, "connect.ws p90 (ms)"), Finding::TooFewSamples);
        assert_eq!(finding(&rows, "connect.ws p50 (ms)"), Finding::Changed { worse: true });
        let rows = compare(
            &summary(10, 2_000_000, 0, 1),
            &summary(10, 100_000, 0, 2),
            &Settings::default(),
        );
        assert!(
            rows.iter()
                .filter(|r| r.name.starts_with("connect.ws"))
                .all(|r| r.finding == Finding::TooFewSamples)
        );
    }

    #[test]
    fn a_small_but_certain_change_is_below_the_minimum_change() {
        // 100 us to 130 us with 2,000 samples each: certain, but 0.03 ms is below 5 ms.
        let rows = compare(
            &summary(2_000, 130, 0, 1),
            &summary(2_000, 100, 0, 2),
            &Settings::default(),
        );
        assert!(rows.iter().all(|r| !r.regression), "{rows:#?}");
        assert_eq!(finding(&rows, "connect.ws p50 (ms)"), Finding::NoEvidence);
    }

    #[test]
    fn error_rates_are_compared_as_proportions() {
        let s = Settings::default();
        // 3 % -> 8 % of 1,000 operations: evidence; 3 % -> 3.5 %: none.
        let rows = compare(&summary(0, 1, 80, 1), &summary(0, 1, 30, 1), &s);
        assert_eq!(finding(&rows, "errors rate (%)"), Finding::Changed { worse: true });
        let rows = compare(&summary(0, 1, 35, 1), &summary(0, 1, 30, 1), &s);
        assert_eq!(finding(&rows, "errors rate (%)"), Finding::NoEvidence);
    }

    #[test]
    fn mann_whitney_matches_a_hand_computed_case() {
        // new = {1, 2, 3}, old = {4, 5, 6}: U = 0, the smallest possible; P(new > old) = 0.
        let (mut a, mut b) = (new_histogram(), new_histogram());
        for v in [1, 2, 3] {
            a.record(v).unwrap();
        }
        for v in [4, 5, 6] {
            b.record(v).unwrap();
        }
        let (p, sup) = mann_whitney(&a, &b);
        assert_eq!(sup, 0.0);
        // z = (4.5 - 0.5) / sqrt(5.25) = 1.746; p = 0.0809.
        assert!((p - 0.0809).abs() < 0.001, "{p}");
        // Identical samples: no difference at all.
        let (p, sup) = mann_whitney(&a, &a);
        assert!((p - 1.0).abs() < 1e-6 && (sup - 0.5).abs() < 1e-12, "{p} {sup}");
        assert!((erfc(0.0) - 1.0).abs() < 1e-7 && (erfc(1.0) - 0.157_299_2).abs() < 1e-6);
    }
}
