//! Baseline comparison (`chatstorm report new.json --baseline old.json`): every figure both
//! summaries have, side by side with its change, and a regression verdict when a figure got
//! worse by more than the tolerance.

use super::summary::RunSummary;
use std::io::{self, Write};

/// Which direction is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Smaller is better (latencies, errors).
    Lower,
    /// Larger is better (throughput, recovered users).
    Higher,
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
    /// Change in percent of the baseline (`None` when the baseline is 0).
    pub change_percent: Option<f64>,
    /// Which way is better.
    pub better: Better,
    /// Worse by more than the tolerance.
    pub regression: bool,
}

/// Figures taken from a summary, with their direction. Latencies in milliseconds.
fn figures(s: &RunSummary) -> Vec<(String, f64, Better)> {
    let mut v = Vec::new();
    for (tag, l) in &s.latency {
        let p = &l.summary;
        if p.count == 0 {
            continue;
        }
        for (stat, us) in [
            ("p50", p.p50_us),
            ("p90", p.p90_us),
            ("p99", p.p99_us),
            ("max", p.max_us),
        ] {
            v.push((format!("{tag} {stat} (ms)"), us as f64 / 1000.0, Better::Lower));
        }
    }
    v.push(("errors rate (%)".to_owned(), s.errors.rate_percent, Better::Lower));
    v.push(("errors total".to_owned(), s.errors.total as f64, Better::Lower));
    for (name, better) in [
        ("connects", Better::Higher),
        ("connect_failures", Better::Lower),
        ("reconnect_attempts", Better::Lower),
        ("events_lost", Better::Lower),
        ("events_duplicated", Better::Lower),
        ("events_out_of_order", Better::Lower),
    ] {
        if let Some(c) = s.metrics.counters.get(name) {
            v.push((name.to_owned(), *c as f64, better));
        }
    }
    for (i, st) in s.storms.iter().enumerate() {
        for (stat, ms) in [
            ("p50", st.p50_ms),
            ("p90", st.p90_ms),
            ("p99", st.p99_ms),
            ("p100", st.p100_ms),
        ] {
            if let Some(ms) = ms {
                v.push((
                    format!("storm {} recovery {stat} (ms)", i + 1),
                    ms as f64,
                    Better::Lower,
                ));
            }
        }
        v.push((
            format!("storm {} attempts per user", i + 1),
            st.attempts_mean,
            Better::Lower,
        ));
    }
    v.push((
        "harness RSS per user (bytes)".to_owned(),
        s.generator.rss_per_user_bytes as f64,
        Better::Lower,
    ));
    v
}

/// Compares every figure the two summaries share. Small absolute changes never count as
/// regressions (below 1 ms or 1 unit), so noise on tiny values does not fail a pipeline.
pub fn compare(new: &RunSummary, old: &RunSummary, tolerance_percent: f64) -> Vec<Row> {
    let old_figs = figures(old);
    figures(new)
        .into_iter()
        .filter_map(|(name, n, better)| {
            let (_, o, _) = old_figs.iter().find(|(k, _, _)| *k == name)?;
            let change_percent = (*o != 0.0).then(|| (n - o) / o.abs() * 100.0);
            let worse_by = match better {
                Better::Lower => n - o,
                Better::Higher => o - n,
            };
            let regression = worse_by >= 1.0
                && change_percent.is_none_or(|c| match better {
                    Better::Lower => c > tolerance_percent,
                    Better::Higher => -c > tolerance_percent,
                });
            Some(Row {
                name,
                old: *o,
                new: n,
                change_percent,
                better,
                regression,
            })
        })
        .collect()
}

/// Writes the comparison table.
///
/// # Errors
/// When `w` fails.
pub fn write(rows: &[Row], tolerance: f64, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{:<44} {:>14} {:>14} {:>10}", "figure", "baseline", "new", "change")?;
    for r in rows {
        let change = r
            .change_percent
            .map_or_else(|| "n/a".to_owned(), |c| format!("{c:+.1}%"));
        let flag = if r.regression { "  REGRESSION" } else { "" };
        writeln!(w, "{:<44} {:>14.3} {:>14.3} {:>10}{flag}", r.name, r.old, r.new, change)?;
    }
    let n = rows.iter().filter(|r| r.regression).count();
    writeln!(w)?;
    if n == 0 {
        writeln!(w, "no regression beyond {tolerance}% ({} figures compared)", rows.len())
    } else {
        writeln!(w, "{n} figures regressed beyond {tolerance}% ({} compared)", rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsSnapshot;
    use crate::report::summary::*;

    fn summary(p99_us: u64, errors: u64) -> RunSummary {
        let mut latency = std::collections::BTreeMap::new();
        let mut l = LatencyFigures::default();
        l.summary.count = 100;
        l.summary.p50_us = p99_us / 2;
        l.summary.p90_us = p99_us / 2;
        l.summary.p99_us = p99_us;
        l.summary.max_us = p99_us;
        latency.insert("connect.ws".to_owned(), l);
        RunSummary {
            schema: SCHEMA_ID.to_owned(),
            tool: ToolInfo::default(),
            run: RunInfo::default(),
            verdict: Verdict::default(),
            latency,
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
            metrics: MetricsSnapshot::default(),
        }
    }

    #[test]
    fn a_worse_p99_beyond_the_tolerance_is_a_regression() {
        let rows = compare(&summary(130_000, 0), &summary(100_000, 0), 10.0);
        let p99 = rows.iter().find(|r| r.name == "connect.ws p99 (ms)").unwrap();
        assert!(
            p99.regression && (p99.change_percent.unwrap() - 30.0).abs() < 1e-9,
            "{p99:?}"
        );
        let mut out = Vec::new();
        write(&rows, 10.0, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("REGRESSION"));
    }

    #[test]
    fn within_tolerance_or_better_is_not() {
        assert!(
            compare(&summary(105_000, 0), &summary(100_000, 0), 10.0)
                .iter()
                .all(|r| !r.regression)
        );
        assert!(
            compare(&summary(50_000, 0), &summary(100_000, 0), 10.0)
                .iter()
                .all(|r| !r.regression)
        );
        // Tiny absolute changes never count, whatever the percentage.
        assert!(
            compare(&summary(500, 0), &summary(100, 0), 10.0)
                .iter()
                .all(|r| !r.regression)
        );
    }
}
