//! Thresholds with `abort: true`, checked once per second while the run goes: the first one
//! breached (after its warm-up) stops the run, which then reports where it stopped. Only the
//! figures known during a run are checked live (latency percentiles so far, error rate and
//! counts, reconnect attempts); the rest are evaluated at the end as usual.

use crate::metrics::{Collector, Counter, Metric, Recorder, Series, View};
use crate::scenario::threshold::{Derived, Histogram, Stat, Threshold};
use std::time::Duration;

/// The figures an aborting threshold is judged on: one process's collector and recorder, or a
/// fleet's merged intervals (`crate::fleet::coordinator`).
pub trait Figures {
    /// The whole-run histogram of a metric so far, from the actual start.
    fn cumulative(&self, metric: Metric) -> Option<&hdrhistogram::Histogram<u64>>;
    /// A counter's total so far.
    fn counter(&self, counter: Counter) -> u64;
}

/// One process's figures.
struct Local<'a> {
    collector: &'a Collector,
    recorder: &'a Recorder,
}

impl Figures for Local<'_> {
    fn cumulative(&self, metric: Metric) -> Option<&hdrhistogram::Histogram<u64>> {
        self.collector.cumulative(Series {
            metric,
            view: View::Actual,
        })
    }

    fn counter(&self, counter: Counter) -> u64 {
        self.recorder.counter(counter)
    }
}

fn latency_us(collector: &dyn Figures, h: Histogram, stat: Stat) -> Option<f64> {
    let metrics: &[Metric] = match &h {
        Histogram::Connect => &[Metric::ConnectWs, Metric::ConnectLongpoll],
        Histogram::One(m) => std::slice::from_ref(m),
    };
    let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
    for m in metrics {
        if let Some(h) = collector.cumulative(*m) {
            match &mut merged {
                Some(acc) => {
                    let _ = acc.add(h);
                }
                None => merged = Some(h.clone()),
            }
        }
    }
    let h = merged.filter(|h| !h.is_empty())?;
    Some(match stat {
        Stat::Mean => h.mean(),
        Stat::Max => h.max() as f64,
        s => h.value_at_percentile(s.percentile().unwrap_or(100.0)) as f64,
    })
}

fn derived(recorder: &dyn Figures, f: Derived) -> Option<f64> {
    let c = |k: Counter| recorder.counter(k) as f64;
    let failures = c(Counter::ConnectFailures) + c(Counter::RestFailures) + c(Counter::TokenFetchFailures);
    let operations =
        c(Counter::Connects) + c(Counter::ConnectFailures) + c(Counter::RestRequests) + c(Counter::TokenFetches);
    match f {
        Derived::ErrorsRate => (operations > 0.0).then(|| failures / operations),
        Derived::ErrorsCount => Some(failures),
        _ => None,
    }
}

/// The first aborting threshold breached at `elapsed`, with a one-line reason.
pub fn check(
    thresholds: &[Threshold],
    collector: &Collector,
    recorder: &Recorder,
    elapsed: Duration,
) -> Option<(String, String)> {
    check_figures(thresholds, &Local { collector, recorder }, elapsed)
}

/// The first aborting threshold breached at `elapsed` on any [`Figures`], with a one-line reason.
pub fn check_figures(thresholds: &[Threshold], figures: &dyn Figures, elapsed: Duration) -> Option<(String, String)> {
    let (collector, recorder) = (figures, figures);
    thresholds
        .iter()
        .filter(|t| t.abort && t.abort_after.is_none_or(|a| elapsed >= a))
        .find_map(|t| {
            use crate::scenario::threshold::Metric as M;
            let observed = match t.metric {
                M::Latency(h, stat) => latency_us(collector, h, stat),
                M::Derived(f) => derived(recorder, f),
                M::Counter(c) => Some(recorder.counter(c) as f64),
            }?;
            (!t.passes(observed)).then(|| {
                (
                    t.key.clone(),
                    format!(
                        "threshold {} {} breached at {:.0}s (observed {}), run stopped",
                        t.key,
                        t.text,
                        elapsed.as_secs_f64(),
                        crate::scenario::threshold::format_value(t.metric.unit(), observed)
                    ),
                )
            })
        })
}
