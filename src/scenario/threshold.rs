//! The threshold grammar: `metric.stat: "<op> value"`, e.g. `connect.p99: "< 500ms"`,
//! `errors.rate: "< 0.1%"`, `conformance.failed: "== 0"`. Parsed and checked before the run
//! (an unknown metric is an error, never a silent pass); evaluated by the report side with
//! [`Threshold::passes`]. Histogram and counter names are those of `crate::metrics` (the
//! `summary.json` keys), so a threshold can name anything the run records. A latency threshold
//! is meant on the corrected view (measured from the intended time) where the metric has a
//! schedule (`metrics::Metric::scheduled`), and on the actual view otherwise.

use super::suggest;
use crate::metrics;
use std::fmt;
use std::time::Duration;

/// One pass/fail condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The key as written, e.g. `connect.p99`.
    pub key: String,
    /// What is measured.
    pub metric: Metric,
    /// How the measured value is compared with `bound`.
    pub op: Op,
    /// The bound in the metric's canonical unit ([`Metric::unit`]).
    pub bound: f64,
    /// The condition as written, trimmed, e.g. `< 500ms`.
    pub text: String,
    /// Stop the run as soon as the condition is breached (checked during the run).
    pub abort: bool,
    /// Do not evaluate during the run before this offset (warm-up); `None` = from the start.
    pub abort_after: Option<Duration>,
}

impl Threshold {
    /// True when `observed` (in the metric's canonical unit) satisfies the condition.
    pub fn passes(&self, observed: f64) -> bool {
        self.op.holds(observed, self.bound)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.text)
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl Op {
    /// True when `observed <op> bound`.
    pub fn holds(self, observed: f64, bound: f64) -> bool {
        match self {
            Op::Lt => observed < bound,
            Op::Le => observed <= bound,
            Op::Gt => observed > bound,
            Op::Ge => observed >= bound,
            Op::Eq => observed == bound,
        }
    }
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A statistic of a latency histogram.
    Latency(Histogram, Stat),
    /// A figure the report derives from several counters.
    Derived(Derived),
    /// One counter of `crate::metrics`, by its `summary.json` name (e.g. `events_lost`).
    Counter(metrics::Counter),
}

impl Metric {
    /// The unit `Threshold::bound` is in.
    pub fn unit(self) -> Unit {
        match self {
            Metric::Latency(..) => Unit::Micros,
            Metric::Derived(Derived::ErrorsRate) => Unit::Fraction,
            Metric::Derived(Derived::ConnectsRate) => Unit::PerSecond,
            Metric::Derived(_) | Metric::Counter(_) => Unit::Count,
        }
    }

    /// What the figure is read from, for people (a threshold's failure message says it): `p99 of
    /// histogram connect, which merges connect.ws and connect.longpoll`, `counter events_lost`.
    pub fn source(self) -> String {
        match self {
            Metric::Latency(h, stat) => {
                let parts = h.parts();
                let merged = if parts.len() > 1 {
                    format!(", which merges {}", parts.join(" and "))
                } else {
                    String::new()
                };
                format!("{} of histogram {}{merged}", stat.name(), h.name())
            }
            Metric::Derived(Derived::ErrorsRate) => {
                "failed operations / operations (connects, REST calls, token fetches)".to_owned()
            }
            Metric::Derived(Derived::ErrorsCount) => "failed connects, REST calls and token fetches".to_owned(),
            Metric::Derived(Derived::ConnectsRate) => "the most WebSocket connects in one second".to_owned(),
            Metric::Derived(Derived::ConformanceFailed) => "conformance rules whose failure counts".to_owned(),
            Metric::Counter(c) => format!("counter {}", c.name()),
        }
    }
}

/// Canonical units of threshold bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds (latencies).
    Micros,
    /// A share in [0, 1] (written as a percentage).
    Fraction,
    /// A plain count.
    Count,
    /// Events per second.
    PerSecond,
}

/// A latency histogram a threshold can name: any of `crate::metrics::Metric` by its stable
/// name (`connect.ws`, `token.refresh`, `rest.read`, `recovery`, ...), or `connect`, which is
/// both connect transports (`connect.ws` and `connect.longpoll`) merged, and which the run
/// publishes as a histogram of its own (`metrics::CONNECT_TAG`) so that the figure a threshold
/// judged appears under its name in `summary.json`, the latency tables and the `.hlog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Histogram {
    /// `connect.ws` and `connect.longpoll` together.
    Connect,
    /// One histogram of the metrics module.
    One(metrics::Metric),
}

impl Histogram {
    /// The name used in thresholds.
    pub fn name(self) -> &'static str {
        match self {
            Histogram::Connect => metrics::CONNECT_TAG,
            Histogram::One(m) => m.name(),
        }
    }

    /// The histogram written as `name`.
    pub fn from_name(name: &str) -> Option<Histogram> {
        if name == "connect" {
            return Some(Histogram::Connect);
        }
        metrics::Metric::from_name(name).map(Histogram::One)
    }

    /// The recorded histograms (actual view) the figure adds up: both transports for `connect`.
    pub fn parts(self) -> Vec<&'static str> {
        match self {
            Histogram::Connect => vec![
                metrics::Metric::ConnectWs.name(),
                metrics::Metric::ConnectLongpoll.name(),
            ],
            Histogram::One(m) => vec![m.name()],
        }
    }

    /// Every histogram name, `connect` first.
    pub fn names() -> Vec<&'static str> {
        std::iter::once("connect")
            .chain(metrics::Metric::ALL.iter().map(|m| m.name()))
            .collect()
    }
}

/// Histogram statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    /// 50th percentile.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Largest sample.
    Max,
    /// Mean.
    Mean,
}

impl Stat {
    /// Every statistic with its name.
    pub const ALL: [(Stat, &'static str); 7] = [
        (Stat::P50, "p50"),
        (Stat::P90, "p90"),
        (Stat::P95, "p95"),
        (Stat::P99, "p99"),
        (Stat::P999, "p999"),
        (Stat::Max, "max"),
        (Stat::Mean, "mean"),
    ];

    /// The name used in thresholds (`p99`).
    pub fn name(self) -> &'static str {
        Stat::ALL.iter().find(|(s, _)| *s == self).map_or("?", |(_, n)| n)
    }

    /// The percentile (0–100) for percentile stats, `None` for max and mean.
    pub fn percentile(self) -> Option<f64> {
        match self {
            Stat::P50 => Some(50.0),
            Stat::P90 => Some(90.0),
            Stat::P95 => Some(95.0),
            Stat::P99 => Some(99.0),
            Stat::P999 => Some(99.9),
            Stat::Max | Stat::Mean => None,
        }
    }
}

/// Run-wide figures the report computes from counters and verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Derived {
    /// Failed operations / all operations (connects, token fetches, REST calls), as a share.
    ErrorsRate,
    /// Failed operations (connect failures, token fetch failures, REST failures).
    ErrorsCount,
    /// Successful connects per second over the run.
    ConnectsRate,
    /// Conformance rules with a failed verdict.
    ConformanceFailed,
}

impl Derived {
    /// Every derived figure with its name.
    pub const ALL: [(Derived, &'static str); 4] = [
        (Derived::ErrorsRate, "errors.rate"),
        (Derived::ErrorsCount, "errors.count"),
        (Derived::ConnectsRate, "connects.rate"),
        (Derived::ConformanceFailed, "conformance.failed"),
    ];
}

/// What is wrong with a threshold's key or condition (one lowercase line each).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// A histogram named without a statistic.
    #[error("`{key}` needs a statistic, e.g. `{key}.p99` (one of: {stats})")]
    NeedsStatistic {
        /// The key as written.
        key: String,
        /// The statistics there are.
        stats: String,
    },
    /// A histogram with an unknown statistic.
    #[error("unknown statistic `{stat}`; {hint}")]
    UnknownStatistic {
        /// The statistic as written.
        stat: String,
        /// A suggestion.
        hint: String,
    },
    /// An unknown key close to a known one.
    #[error("unknown metric `{key}`; did you mean `{closest}`?")]
    UnknownMetricNear {
        /// The key as written.
        key: String,
        /// The closest known key.
        closest: String,
    },
    /// An unknown key.
    #[error(
        "unknown metric `{0}`; expected `<histogram>.<stat>` such as `connect.p99` or a figure such as `errors.rate` (all are listed in scenarios/README.md)"
    )]
    UnknownMetric(String),
    /// A condition without a comparison.
    #[error("condition \"{0}\" must start with one of <, <=, >, >=, ==, e.g. \"< {0}\"")]
    NoOperator(String),
    /// A bound that is not a number.
    #[error("\"{0}\" is not a number followed by an optional unit")]
    NotANumber(String),
    /// A latency bound without a unit.
    #[error("a latency needs a unit (us, ms, s, m), e.g. \"{op} {number}ms\"")]
    LatencyNeedsUnit {
        /// The comparison.
        op: &'static str,
        /// The number as written.
        number: String,
    },
    /// A latency bound with an unknown unit.
    #[error("unknown unit `{0}` for a latency; use us, ms, s or m")]
    LatencyUnit(String),
    /// A percentage above 100.
    #[error("a percentage cannot exceed 100%")]
    Over100,
    /// A rate bound without `%`.
    #[error("a rate is written as a percentage, e.g. \"{op} {number}%\"")]
    RateNeedsPercent {
        /// The comparison.
        op: &'static str,
        /// The number as written.
        number: String,
    },
    /// A rate bound with another unit.
    #[error("unknown unit `{0}` for a rate; use %")]
    RateUnit(String),
    /// A per-second bound with another unit.
    #[error("unknown unit `{0}`; use a plain number or /s")]
    PerSecondUnit(String),
    /// A count bound with a fraction.
    #[error("a count is a whole number")]
    NotWhole,
    /// A count bound with a unit.
    #[error("a count takes no unit (found `{0}`); write a plain number")]
    CountUnit(String),
}

/// Parses a threshold key such as `connect.p99`, `errors.rate` or `events_lost`.
///
/// # Errors
/// A one-line reason, with a suggestion when the key is close to a known one.
pub fn parse_metric(key: &str) -> Result<Metric, ThresholdError> {
    if let Some((d, _)) = Derived::ALL.iter().find(|(_, n)| *n == key) {
        return Ok(Metric::Derived(*d));
    }
    if let Some(c) = metrics::Counter::from_name(key) {
        return Ok(Metric::Counter(c));
    }
    let stat_names: Vec<&str> = Stat::ALL.iter().map(|(_, n)| *n).collect();
    if Histogram::from_name(key).is_some() {
        return Err(ThresholdError::NeedsStatistic {
            key: key.to_owned(),
            stats: stat_names.join(", "),
        });
    }
    if let Some((name, stat)) = key.rsplit_once('.')
        && let Some(histogram) = Histogram::from_name(name)
    {
        return match Stat::ALL.iter().find(|(_, n)| *n == stat) {
            Some((stat, _)) => Ok(Metric::Latency(histogram, *stat)),
            None => Err(ThresholdError::UnknownStatistic {
                stat: stat.to_owned(),
                hint: suggest::hint(stat, &stat_names),
            }),
        };
    }
    let figures: Vec<&str> = Derived::ALL
        .iter()
        .map(|(_, n)| *n)
        .chain(metrics::Counter::ALL.iter().map(|c| c.name()))
        .collect();
    let mut known: Vec<String> = figures.iter().map(|f| (*f).to_owned()).collect();
    for h in Histogram::names() {
        for (_, s) in Stat::ALL {
            known.push(format!("{h}.{s}"));
        }
    }
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    match suggest::closest(key, &known_refs) {
        Some(k) => Err(ThresholdError::UnknownMetricNear {
            key: key.to_owned(),
            closest: k.to_owned(),
        }),
        None => Err(ThresholdError::UnknownMetric(key.to_owned())),
    }
}

/// Parses a condition such as `< 500ms` for `metric`, giving `(op, bound in canonical unit)`.
///
/// # Errors
/// A one-line reason, saying which units the metric takes.
pub fn parse_condition(metric: Metric, text: &str) -> Result<(Op, f64), ThresholdError> {
    let text = text.trim();
    let (op, rest) = if let Some(r) = text.strip_prefix("<=") {
        (Op::Le, r)
    } else if let Some(r) = text.strip_prefix(">=") {
        (Op::Ge, r)
    } else if let Some(r) = text.strip_prefix("==") {
        (Op::Eq, r)
    } else if let Some(r) = text.strip_prefix('<') {
        (Op::Lt, r)
    } else if let Some(r) = text.strip_prefix('>') {
        (Op::Gt, r)
    } else {
        return Err(ThresholdError::NoOperator(super::tree::shorten(text)));
    };
    let rest = rest.trim();
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, unit) = rest.split_at(split);
    let unit = unit.trim();
    let value: f64 = match number.parse() {
        Ok(v) if number.chars().next().is_some_and(|c| c.is_ascii_digit()) => v,
        _ => {
            return Err(ThresholdError::NotANumber(super::tree::shorten(rest)));
        }
    };
    let bound = match metric.unit() {
        Unit::Micros => {
            let per_unit = match unit {
                "us" | "µs" => 1.0,
                "ms" => 1_000.0,
                "s" => 1_000_000.0,
                "m" | "min" => 60_000_000.0,
                "" => {
                    return Err(ThresholdError::LatencyNeedsUnit {
                        op: op_text(op),
                        number: number.to_owned(),
                    });
                }
                other => {
                    return Err(ThresholdError::LatencyUnit(other.to_owned()));
                }
            };
            value * per_unit
        }
        Unit::Fraction => match unit {
            "%" if value <= 100.0 => value / 100.0,
            "%" => return Err(ThresholdError::Over100),
            "" => {
                return Err(ThresholdError::RateNeedsPercent {
                    op: op_text(op),
                    number: number.to_owned(),
                });
            }
            other => return Err(ThresholdError::RateUnit(other.to_owned())),
        },
        Unit::PerSecond => match unit {
            "" | "/s" => value,
            other => return Err(ThresholdError::PerSecondUnit(other.to_owned())),
        },
        Unit::Count => match unit {
            "" if value.fract() == 0.0 => value,
            "" => return Err(ThresholdError::NotWhole),
            other => {
                return Err(ThresholdError::CountUnit(other.to_owned()));
            }
        },
    };
    Ok((op, bound))
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Eq => "==",
    }
}

/// Formats a value in a threshold's unit for people.
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Micros if v >= 1_000_000.0 => format!("{:.2}s", v / 1_000_000.0),
        Unit::Micros => format!("{:.1}ms", v / 1000.0),
        Unit::Fraction => format!("{:.3}%", v * 100.0),
        Unit::Count => format!("{v:.0}"),
        Unit::PerSecond => format!("{v:.1}/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metrics() {
        assert_eq!(
            parse_metric("connect.p99"),
            Ok(Metric::Latency(Histogram::Connect, Stat::P99))
        );
        assert_eq!(
            parse_metric("connect.ws.p50"),
            Ok(Metric::Latency(Histogram::One(metrics::Metric::ConnectWs), Stat::P50))
        );
        assert_eq!(
            parse_metric("delivery.typing.p999"),
            Ok(Metric::Latency(
                Histogram::One(metrics::Metric::DeliveryTyping),
                Stat::P999
            ))
        );
        assert_eq!(parse_metric("errors.rate"), Ok(Metric::Derived(Derived::ErrorsRate)));
        assert_eq!(
            parse_metric("events_lost"),
            Ok(Metric::Counter(metrics::Counter::EventsLost))
        );
        assert_eq!(
            parse_metric("conect.p99").unwrap_err().to_string(),
            "unknown metric `conect.p99`; did you mean `connect.p99`?"
        );
        assert_eq!(
            parse_metric("connect.p98").unwrap_err().to_string(),
            "unknown statistic `p98`; did you mean `p90`, `p95` or `p99`?"
        );
        assert!(
            parse_metric("connect")
                .unwrap_err()
                .to_string()
                .contains("needs a statistic")
        );
        assert!(
            parse_metric("bogus")
                .unwrap_err()
                .to_string()
                .starts_with("unknown metric `bogus`")
        );
    }

    #[test]
    fn every_recorded_histogram_and_counter_can_be_named() {
        for m in metrics::Metric::ALL {
            let key = format!("{}.p99", m.name());
            assert_eq!(
                parse_metric(&key),
                Ok(Metric::Latency(Histogram::One(m), Stat::P99)),
                "{key}"
            );
        }
        for c in metrics::Counter::ALL {
            assert_eq!(parse_metric(c.name()), Ok(Metric::Counter(c)));
        }
    }

    #[test]
    fn parses_conditions_into_canonical_units() {
        let lat = Metric::Latency(Histogram::Connect, Stat::P99);
        assert_eq!(parse_condition(lat, "< 500ms"), Ok((Op::Lt, 500_000.0)));
        assert_eq!(parse_condition(lat, "<=1.5s"), Ok((Op::Le, 1_500_000.0)));
        assert_eq!(parse_condition(lat, ">= 250us"), Ok((Op::Ge, 250.0)));
        assert!(
            parse_condition(lat, "< 500")
                .unwrap_err()
                .to_string()
                .contains("needs a unit")
        );
        assert!(
            parse_condition(lat, "500ms")
                .unwrap_err()
                .to_string()
                .contains("must start with")
        );
        assert!(
            parse_condition(lat, "< fast")
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
        let rate = Metric::Derived(Derived::ErrorsRate);
        assert_eq!(parse_condition(rate, "< 0.1%"), Ok((Op::Lt, 0.001)));
        assert!(
            parse_condition(rate, "< 0.1")
                .unwrap_err()
                .to_string()
                .contains("percentage")
        );
        let failed = Metric::Derived(Derived::ConformanceFailed);
        assert_eq!(parse_condition(failed, "== 0"), Ok((Op::Eq, 0.0)));
        assert!(parse_condition(failed, "== 0ms").is_err());
        let connects = Metric::Derived(Derived::ConnectsRate);
        assert_eq!(parse_condition(connects, "> 500/s"), Ok((Op::Gt, 500.0)));
    }

    #[test]
    fn evaluates() {
        let lat = Metric::Latency(Histogram::Connect, Stat::P99);
        let (op, bound) = parse_condition(lat, "< 500ms").expect("valid");
        let t = Threshold {
            key: "connect.p99".into(),
            metric: lat,
            op,
            bound,
            text: "< 500ms".into(),
            abort: false,
            abort_after: None,
        };
        assert!(t.passes(499_999.0));
        assert!(!t.passes(500_000.0));
        assert_eq!(t.to_string(), "connect.p99 < 500ms");
    }
}
