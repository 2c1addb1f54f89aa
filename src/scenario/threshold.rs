//! The threshold grammar: `metric.stat: "<op> value"`, e.g. `connect.p99: "< 500ms"`,
//! `errors.rate: "< 0.1%"`, `conformance.failed: "== 0"`. Parsed and checked before the run
//! (an unknown metric is an error, never a silent pass); evaluated by the report side with
//! [`Threshold::passes`].

use super::suggest;
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
    /// A run-wide figure.
    Figure(Figure),
}

impl Metric {
    /// The unit `Threshold::bound` is in.
    pub fn unit(self) -> Unit {
        match self {
            Metric::Latency(..) => Unit::Micros,
            Metric::Figure(Figure::ErrorsRate) => Unit::Fraction,
            Metric::Figure(Figure::ConnectsRate) => Unit::PerSecond,
            Metric::Figure(_) => Unit::Count,
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

/// The latency histograms of PRODUCT.md that thresholds can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Histogram {
    /// Upgrade start to the first `health.check`.
    Connect,
    /// Token fetched from the provider.
    TokenFetch,
    /// Code 40 to connected again.
    TokenRefresh,
    /// Drop detected to connected again.
    Reconnect,
    /// Typing event, sender to each watcher.
    DeliveryTyping,
    /// Message, sender to each watcher.
    DeliveryMessage,
    /// Read event, sender to each watcher.
    DeliveryRead,
    /// Long-poll connect.
    LongpollConnect,
    /// One long-poll request.
    LongpollPoll,
    /// Per storm, drop to live again for each dropped user.
    Recovery,
}

impl Histogram {
    /// Every histogram with its name.
    pub const ALL: [(Histogram, &'static str); 10] = [
        (Histogram::Connect, "connect"),
        (Histogram::TokenFetch, "token.fetch"),
        (Histogram::TokenRefresh, "token.refresh"),
        (Histogram::Reconnect, "reconnect"),
        (Histogram::DeliveryTyping, "delivery.typing"),
        (Histogram::DeliveryMessage, "delivery.message"),
        (Histogram::DeliveryRead, "delivery.read"),
        (Histogram::LongpollConnect, "longpoll.connect"),
        (Histogram::LongpollPoll, "longpoll.poll"),
        (Histogram::Recovery, "recovery"),
    ];
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

/// Run-wide figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Figure {
    /// Failed operations / all operations (written as a percentage).
    ErrorsRate,
    /// Failed operations.
    ErrorsCount,
    /// Conformance rules with a failed verdict.
    ConformanceFailed,
    /// Successful connects per second, peak one-second window.
    ConnectsRate,
    /// Events sent but never received by a watcher.
    EventsLost,
    /// Events received twice.
    EventsDuplicated,
    /// Events received out of order.
    EventsReordered,
    /// Reconnect attempts in all.
    ReconnectAttempts,
}

impl Figure {
    /// Every figure with its name.
    pub const ALL: [(Figure, &'static str); 8] = [
        (Figure::ErrorsRate, "errors.rate"),
        (Figure::ErrorsCount, "errors.count"),
        (Figure::ConformanceFailed, "conformance.failed"),
        (Figure::ConnectsRate, "connects.rate"),
        (Figure::EventsLost, "events.lost"),
        (Figure::EventsDuplicated, "events.duplicated"),
        (Figure::EventsReordered, "events.reordered"),
        (Figure::ReconnectAttempts, "reconnect.attempts"),
    ];
}

/// Parses a threshold key such as `connect.p99` or `errors.rate`.
///
/// # Errors
/// A one-line reason, with a suggestion when the key is close to a known one.
pub fn parse_metric(key: &str) -> Result<Metric, String> {
    if let Some((figure, _)) = Figure::ALL.iter().find(|(_, n)| *n == key) {
        return Ok(Metric::Figure(*figure));
    }
    let histogram_names: Vec<&str> = Histogram::ALL.iter().map(|(_, n)| *n).collect();
    let stat_names: Vec<&str> = Stat::ALL.iter().map(|(_, n)| *n).collect();
    if histogram_names.contains(&key) {
        return Err(format!(
            "`{key}` needs a statistic, e.g. `{key}.p99` (one of: {})",
            stat_names.join(", ")
        ));
    }
    if let Some((name, stat)) = key.rsplit_once('.') {
        if let Some((histogram, _)) = Histogram::ALL.iter().find(|(_, n)| *n == name) {
            return match Stat::ALL.iter().find(|(_, n)| *n == stat) {
                Some((stat, _)) => Ok(Metric::Latency(*histogram, *stat)),
                None => Err(format!(
                    "unknown statistic `{stat}`; {}",
                    suggest::hint(stat, &stat_names)
                )),
            };
        }
    }
    let mut known: Vec<String> = Figure::ALL.iter().map(|(_, n)| (*n).to_owned()).collect();
    for (_, h) in Histogram::ALL {
        for (_, s) in Stat::ALL {
            known.push(format!("{h}.{s}"));
        }
    }
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    match suggest::closest(key, &known_refs) {
        Some(k) => Err(format!("unknown metric `{key}`; did you mean `{k}`?")),
        None => Err(format!(
            "unknown metric `{key}`; expected `<histogram>.<stat>` with a histogram among {} and a stat among {}, or one of {}",
            histogram_names.join(", "),
            stat_names.join(", "),
            Figure::ALL.map(|(_, n)| n).join(", ")
        )),
    }
}

/// Parses a condition such as `< 500ms` for `metric`, giving `(op, bound in canonical unit)`.
///
/// # Errors
/// A one-line reason, saying which units the metric takes.
pub fn parse_condition(metric: Metric, text: &str) -> Result<(Op, f64), String> {
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
        return Err(format!(
            "condition \"{}\" must start with one of <, <=, >, >=, ==, e.g. \"< 500ms\"",
            super::tree::shorten(text)
        ));
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
            return Err(format!(
                "\"{}\" is not a number followed by an optional unit",
                super::tree::shorten(rest)
            ));
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
                    return Err(format!(
                        "a latency needs a unit (us, ms, s, m), e.g. \"{} {number}ms\"",
                        op_text(op)
                    ));
                }
                other => {
                    return Err(format!("unknown unit `{other}` for a latency; use us, ms, s or m"));
                }
            };
            value * per_unit
        }
        Unit::Fraction => match unit {
            "%" if value <= 100.0 => value / 100.0,
            "%" => return Err("a percentage cannot exceed 100%".to_owned()),
            "" => {
                return Err(format!(
                    "a rate is written as a percentage, e.g. \"{} {number}%\"",
                    op_text(op)
                ));
            }
            other => return Err(format!("unknown unit `{other}` for a rate; use %")),
        },
        Unit::PerSecond => match unit {
            "" | "/s" => value,
            other => return Err(format!("unknown unit `{other}`; use a plain number or /s")),
        },
        Unit::Count => match unit {
            "" if value.fract() == 0.0 => value,
            "" => return Err("a count is a whole number".to_owned()),
            other => {
                return Err(format!("a count takes no unit (found `{other}`); write a plain number"));
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
            parse_metric("delivery.typing.p999"),
            Ok(Metric::Latency(Histogram::DeliveryTyping, Stat::P999))
        );
        assert_eq!(parse_metric("errors.rate"), Ok(Metric::Figure(Figure::ErrorsRate)));
        assert_eq!(
            parse_metric("conect.p99").unwrap_err(),
            "unknown metric `conect.p99`; did you mean `connect.p99`?"
        );
        assert_eq!(
            parse_metric("connect.p98").unwrap_err(),
            "unknown statistic `p98`; did you mean `p99`?"
        );
        assert!(parse_metric("connect").unwrap_err().contains("needs a statistic"));
        assert!(parse_metric("bogus").unwrap_err().starts_with("unknown metric `bogus`"));
    }

    #[test]
    fn parses_conditions_into_canonical_units() {
        let lat = Metric::Latency(Histogram::Connect, Stat::P99);
        assert_eq!(parse_condition(lat, "< 500ms"), Ok((Op::Lt, 500_000.0)));
        assert_eq!(parse_condition(lat, "<=1.5s"), Ok((Op::Le, 1_500_000.0)));
        assert_eq!(parse_condition(lat, ">= 250us"), Ok((Op::Ge, 250.0)));
        assert!(parse_condition(lat, "< 500").unwrap_err().contains("needs a unit"));
        assert!(parse_condition(lat, "500ms").unwrap_err().contains("must start with"));
        assert!(parse_condition(lat, "< fast").unwrap_err().contains("not a number"));
        let rate = Metric::Figure(Figure::ErrorsRate);
        assert_eq!(parse_condition(rate, "< 0.1%"), Ok((Op::Lt, 0.001)));
        assert!(parse_condition(rate, "< 0.1").unwrap_err().contains("percentage"));
        let failed = Metric::Figure(Figure::ConformanceFailed);
        assert_eq!(parse_condition(failed, "== 0"), Ok((Op::Eq, 0.0)));
        assert!(parse_condition(failed, "== 0ms").is_err());
        let connects = Metric::Figure(Figure::ConnectsRate);
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
