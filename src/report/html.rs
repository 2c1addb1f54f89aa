//! `report.html`: one self-contained file (inline CSS and SVG, no script, no network) with the
//! run's header and verdict, thresholds, counts, every error in one table, latency tables (count,
//! OK/KO, mean, percentiles), and charts over the run's time on one shared axis: users, operations
//! and events per second, failed operations by kind (adding up to the error total), failure rate,
//! error and close codes, latency per second; then percentile spectra, recovery curves, and the
//! conformance table with the evidence behind each failure. Charts never invent data: a line stops
//! where a second has no samples. `chatstorm conform` gets a page of its own
//! ([`render_conformance`]) with the verdict and that same table. Every string that came from the
//! scenario or the target is escaped.

use super::chart::{Chart, Marker, Series, XAxis};
use super::junit::escape;
use super::summary::{ConformanceSection, ConformanceSource, ProfileFigures, RunSummary, StormFigures};
use crate::conformance::Verdict;
use crate::exit::Outcome;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::io;
use std::path::Path;

/// The page's only style. Numeric tables keep each value on one line and let their headers wrap
/// instead; charts fill their column (two charts side by side in `.pair` and `.grid`).
const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#111827}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #f3f4f6;text-align:right}\
th{vertical-align:bottom;font-size:13px}table.num td{white-space:nowrap}table.num th{min-width:3em}\
table.codes td,.text2 td:nth-child(2),.text2 th:nth-child(2){text-align:left}table.num td,table.num th{padding:3px 7px}.v{white-space:nowrap}table.text td,table.text th{text-align:left}\
td:first-child,th:first-child{text-align:left}.pass{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:600}\
.skip{color:#6b7280}.chart{margin:12px 0;min-width:0}.chart svg{display:block;width:100%;height:auto;border:1px solid #f3f4f6}\
.pair,.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:0 24px}.note{color:#4b5563;font-size:13px;margin:4px 0}\
figcaption{font-weight:600}.legend span{margin-right:12px;font-size:12px;white-space:nowrap}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}\
pre{background:#f9fafb;padding:8px;overflow:auto;max-height:320px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}.meta td{text-align:left}";

/// Renders the whole report.
pub fn render(s: &RunSummary) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chatstorm: {}</title><style>{STYLE}</style></head><body>",
        escape(&s.run.name)
    );
    body_into(&mut h, s);
    h.push_str("</body></html>\n");
    h
}

/// The page's style sheet, for pages that wrap [`body`] in a page of their own (the live
/// dashboard, `crate::live::dashboard`).
pub const fn style() -> &'static str {
    STYLE
}

/// Everything inside the report's `<body>`: the header and verdict, tables and charts. The
/// live dashboard draws this same markup every second, so the two pages never differ.
pub fn body(s: &RunSummary) -> String {
    let mut h = String::with_capacity(64 * 1024);
    body_into(&mut h, s);
    h
}

fn body_into(h: &mut String, s: &RunSummary) {
    let r = &s.run;
    let verdict_class = if s.verdict.exit_code == 0 { "pass" } else { "fail" };
    let _ = write!(
        *h,
        "<h1>chatstorm: {}</h1><p>{}</p><table class=\"meta\"><tr><td>verdict</td><td class=\"{verdict_class}\">{} (exit {})</td></tr>\
<tr><td>target</td><td>{}</td></tr><tr><td>seed</td><td>{}</td></tr><tr><td>started</td><td>{}</td></tr>\
<tr><td>duration</td><td>{:.1} s of {:.1} s planned</td></tr><tr><td>users</td><td>{} started of {} planned{}</td></tr>\
<tr><td>scenario</td><td>{}</td></tr><tr><td>tool</td><td>{} {}</td></tr></table>",
        escape(&r.name),
        escape(r.description.as_deref().unwrap_or("")),
        escape(&s.verdict.outcome),
        s.verdict.exit_code,
        escape(&r.target),
        r.seed,
        escape(&r.started_at),
        r.duration_ms as f64 / 1000.0,
        r.planned_ms as f64 / 1000.0,
        r.users_started,
        r.users_planned,
        r.shards_note(),
        escape(r.scenario_file.as_deref().unwrap_or("-")),
        escape(&s.tool.name),
        escape(&s.tool.version)
    );
    if !s.verdict.reasons.is_empty() {
        h.push_str("<ul>");
        for reason in &s.verdict.reasons {
            let _ = write!(*h, "<li>{}</li>", escape(reason));
        }
        h.push_str("</ul>");
    }
    checks(h, s);
    thresholds(h, s);
    counters(h, s);
    latency_table(h, s);
    super::connect_phases::html(h, s);
    profiles(h, s);
    charts(h, s);
    conformance(h, s.conformance.as_ref());
    generator(h, s);
}

/// Renders the page of `chatstorm conform`: the verdict and exit code, the target and counts,
/// and the same conformance table a run's report has.
pub fn render_conformance(c: &ConformanceSection) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let outcome = if c.failing() > 0 {
        Outcome::ConformanceFailed
    } else {
        Outcome::Passed
    };
    let class = if outcome == Outcome::Passed { "pass" } else { "fail" };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chatstorm: conform</title><style>{STYLE}</style></head><body>\
<h1>chatstorm: conform</h1><table class=\"meta\"><tr><td>verdict</td><td class=\"{class}\">{} (exit {})</td></tr>\
<tr><td>target</td><td>{}</td></tr><tr><td>strict</td><td>{}</td></tr><tr><td>duration</td><td>{}</td></tr>\
<tr><td>rules</td><td>{} passed, {} failed, {} non-strict failures, {} skipped</td></tr>\
<tr><td>tool</td><td>chatstorm {}</td></tr></table>",
        outcome.verdict(),
        outcome.code(),
        escape(c.target.as_deref().unwrap_or("-")),
        if c.strict {
            "yes: non-strict failures count"
        } else {
            "no"
        },
        c.duration_ms
            .map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d as f64 / 1000.0)),
        c.passed,
        c.failed,
        c.non_strict_failures,
        c.skipped,
        env!("CARGO_PKG_VERSION")
    );
    conformance(&mut h, Some(c));
    h.push_str("</body></html>\n");
    h
}

fn thresholds(h: &mut String, s: &RunSummary) {
    if s.thresholds.is_empty() {
        return;
    }
    h.push_str("<h2>Thresholds</h2><table><tr><th>metric</th><th>condition</th><th>observed</th><th>result</th></tr>");
    for t in &s.thresholds {
        let (class, word) = if t.passed {
            ("pass", "passed")
        } else if t.no_data {
            ("fail", "no data")
        } else {
            ("fail", "breached")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{word}{}</td></tr>",
            escape(&t.metric),
            escape(&t.condition),
            escape(&t.observed_text),
            if t.aborted_run { " (stopped the run)" } else { "" }
        );
    }
    h.push_str("</table>");
}

/// The implicit checks: users connected, recovered, target reachable, state kept.
fn checks(h: &mut String, s: &RunSummary) {
    if s.checks.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Checks</h2><table class=\"text\"><tr><th>check</th><th>expected</th><th>observed</th><th>result</th></tr>",
    );
    for c in &s.checks {
        let class = match c.status {
            super::summary::CheckStatus::Passed => "pass",
            super::summary::CheckStatus::Failed => "fail",
            _ => "",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
            escape(&c.name),
            escape(&c.expected),
            escape(&c.observed),
            c.status.word()
        );
    }
    h.push_str("</table>");
}

fn counters(h: &mut String, s: &RunSummary) {
    h.push_str("<h2>Counts</h2><table class=\"num\"><tr><th>counter</th><th>value</th></tr>");
    for (k, v) in &s.metrics.counters {
        let _ = write!(h, "<tr><td>{}</td><td>{v}</td></tr>", escape(k));
    }
    let _ = write!(
        h,
        "<tr><td>error rate</td><td>{:.3}% ({} of {})</td></tr></table>",
        s.errors.rate_percent, s.errors.total, s.errors.operations
    );
    errors_table(h, s);
}

/// Every error in one table: failed operations by kind (these add up to the error total), then
/// what is known of their causes (connect failures by cause, Stream error codes) and the close
/// codes of connections the server closed.
fn errors_table(h: &mut String, s: &RunSummary) {
    let c = |n: &str| s.metrics.counters.get(n).copied().unwrap_or(0);
    let failed = "failed operations";
    let mut rows: Vec<(&str, String, u64)> = Vec::new();
    if s.metrics.counters.contains_key("longpoll_connect_failures") {
        let longpoll = c("longpoll_connect_failures").min(c("connect_failures"));
        rows.push((
            failed,
            "connect (WebSocket)".to_owned(),
            c("connect_failures") - longpoll,
        ));
        rows.push((failed, "connect (long-poll)".to_owned(), longpoll));
    } else {
        rows.push((failed, "connect".to_owned(), c("connect_failures")));
    }
    rows.push((failed, "REST".to_owned(), c("rest_failures")));
    rows.push((failed, "token".to_owned(), c("token_fetch_failures")));
    rows.extend(
        s.errors
            .by_kind
            .iter()
            .map(|(k, v)| ("connect failure by cause", k.clone(), *v)),
    );
    rows.extend(
        s.errors
            .by_code
            .iter()
            .map(|(k, v)| ("Stream error code", k.clone(), *v)),
    );
    rows.extend(
        s.errors
            .by_close_code
            .iter()
            .map(|(k, v)| ("close code", k.clone(), *v)),
    );
    h.push_str("<h2>Errors</h2><table class=\"num text2\" id=\"errors-table\"><tr><th>group</th><th>kind</th><th>count</th></tr>");
    for (group, kind, n) in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>",
            escape(group),
            escape(&kind)
        );
    }
    let _ = write!(
        h,
        "<tr><td><b>failed operations</b></td><td><b>total</b></td><td><b>{}</b></td></tr></table>\
<p class=\"note\">Failed operations add up to the error total ({} of {} operations). A connect failure without a \
Stream error code has a cause. Stream error codes are counted on every error body or <code>connection.error</code> frame the server \
sent (a failed operation's answer, a token expiry on a live connection, an answer the SDK retries), close codes on every \
close of a live connection: those rows say what the server said, they are not more failed operations.</p>",
        s.errors.total, s.errors.total, s.errors.operations
    );
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Successful and failed operations of a histogram's operation, when the harness counts its
/// failures apart: connects by transport (and both together), token fetches. A REST histogram
/// times every answered call, error answers included, and REST failures are counted for all
/// endpoints together, so its rows have none (the failures table has the REST total).
fn ok_ko(s: &RunSummary, tag: &str, count: u64) -> Option<(u64, u64)> {
    let c = |n: &str| s.metrics.counters.get(n).copied();
    // Summaries written before long-poll failures were counted apart lack the counter: no split.
    let longpoll = c("longpoll_connect_failures");
    let connect = c("connect_failures").unwrap_or(0);
    match tag {
        "connect" => Some((c("connects").unwrap_or(count), connect)),
        "connect.ws" => longpoll.map(|l| (count, connect.saturating_sub(l))),
        "connect.longpoll" => longpoll.map(|l| (count, l)),
        "token.fetch" => Some((count, c("token_fetch_failures").unwrap_or(0))),
        _ => None,
    }
}

fn latency_table(h: &mut String, s: &RunSummary) {
    h.push_str("<h2>Latency (ms)</h2><table class=\"num\"><tr><th>histogram</th><th>count</th><th>OK</th><th>KO</th><th>mean</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    for (tag, l) in &s.latency {
        let p = &l.summary;
        let (ok, ko) = ok_ko(s, tag, p.count).map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |(ok, ko)| (ok.to_string(), ko.to_string()),
        );
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{ok}</td><td>{ko}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(tag),
            p.count,
            p.mean_us / 1000.0,
            ms(p.p50_us),
            ms(p.p90_us),
            ms(p.p95_us),
            ms(p.p99_us),
            ms(p.p999_us),
            ms(p.max_us)
        );
    }
    h.push_str("</table><p class=\"note\">OK/KO where failures are counted per operation (connects, token fetches); \
REST failures are counted for all endpoints together (see Errors). A REST histogram times every answered call, error answers included.</p>");
}

/// The run's clock as the charts see it: the timeline's ticks (ends of about one-second
/// intervals), in milliseconds, with a last interval shorter than half a second (the sample
/// taken at shutdown) folded into the one before, so that a rate is never computed over a sliver.
struct Clock {
    /// End of each interval, milliseconds since the start (a folded sliver keeps the end of the
    /// interval it joined, so the shared axis is not stretched by it).
    ends: Vec<u64>,
    /// Length of each interval in seconds, a folded sliver included.
    lengths: Vec<f64>,
    /// For each interval, the timeline rows it covers.
    rows: Vec<std::ops::Range<usize>>,
    /// Every tick of the timeline, for telling adjacent samples from ones with a gap between.
    ticks: Vec<u64>,
    /// Last second with data anywhere: the shared axis reaches it.
    last_s: f64,
}

impl Clock {
    fn of(s: &RunSummary) -> Clock {
        let t = &s.metrics.timeline;
        let mut ends: Vec<u64> = Vec::new();
        let mut lengths: Vec<f64> = Vec::new();
        let mut rows: Vec<std::ops::Range<usize>> = Vec::new();
        let mut prev = 0;
        for (i, &ms) in t.t_ms.iter().enumerate() {
            let length = (ms.saturating_sub(prev) as f64 / 1000.0).max(0.001);
            prev = ms;
            match (lengths.last_mut(), rows.last_mut()) {
                (Some(l), Some(r)) if i + 1 == t.t_ms.len() && length < 0.5 => {
                    *l += length;
                    r.end = i + 1;
                }
                _ => {
                    ends.push(ms);
                    lengths.push(length);
                    rows.push(i..i + 1);
                }
            }
        }
        let series_last = s
            .metrics
            .series
            .values()
            .filter_map(|p| p.last())
            .map(|p| p.t_ms)
            .max()
            .unwrap_or(0);
        let marks_last = s.timeline.iter().map(|m| m.at_ms).max().unwrap_or(0);
        let last_ms = ends
            .last()
            .copied()
            .unwrap_or(0)
            .max(series_last)
            .max(marks_last)
            .max(s.run.duration_ms);
        Clock {
            ends,
            lengths,
            rows,
            ticks: {
                let mut ticks = t.t_ms.clone();
                ticks.sort_unstable();
                ticks
            },
            last_s: last_ms as f64 / 1000.0,
        }
    }

    /// Whether samples at `a` and `b` (ms, a < b) come from neighbouring intervals: no tick of
    /// the run lies between them (100 ms of slack for shards whose ticks do not line up).
    fn adjacent(&self, a: u64, b: u64) -> bool {
        if self.ticks.is_empty() {
            return b.saturating_sub(a) <= 1_500;
        }
        // The ticks are sorted: the first one past `a` decides (a long run has thousands).
        let next = self.ticks.partition_point(|&t| t <= a + 100);
        self.ticks.get(next).is_none_or(|&t| t + 100 >= b)
    }

    /// The last tick before `b` that is not adjacent to it (the end of the empty span).
    fn tick_before(&self, b: u64) -> Option<u64> {
        let end = self.ticks.partition_point(|&t| t + 100 < b);
        end.checked_sub(1).map(|i| self.ticks[i])
    }

    /// A counter column summed per interval.
    fn counts(&self, s: &RunSummary, name: &str) -> Vec<u64> {
        let col = s.metrics.timeline.counters.get(name);
        self.rows
            .iter()
            .map(|r| {
                r.clone()
                    .map(|i| col.and_then(|c| c.get(i)).copied().unwrap_or(0))
                    .sum()
            })
            .collect()
    }

    fn xs(&self) -> impl Iterator<Item = f64> + '_ {
        self.ends.iter().map(|ms| *ms as f64 / 1000.0)
    }
}

/// A latency series cut at the seconds without samples: the points, with a NaN y where the line
/// must stop, and the spans with no sample at all (from, to, in seconds).
fn with_gaps(
    clock: &Clock,
    points: &[crate::metrics::SeriesPoint],
    f: fn(&crate::metrics::SeriesPoint) -> u64,
) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() + 4);
    for (k, p) in points.iter().enumerate() {
        if k > 0 && !clock.adjacent(points[k - 1].t_ms, p.t_ms) {
            out.push((points[k - 1].t_ms as f64 / 1000.0, f64::NAN));
        }
        out.push((p.t_ms as f64 / 1000.0, f(p) as f64 / 1000.0));
    }
    out
}

/// The spans of the run in which a series has no sample: before its first, between two that are
/// not adjacent, after its last.
fn empty_spans(clock: &Clock, points: &[crate::metrics::SeriesPoint]) -> Vec<(f64, f64)> {
    let s = |ms: u64| ms as f64 / 1000.0;
    let mut out = Vec::new();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return out;
    };
    if let Some(t) = clock.tick_before(first.t_ms) {
        out.push((0.0, s(t)));
    }
    for w in points.windows(2) {
        if !clock.adjacent(w[0].t_ms, w[1].t_ms)
            && let Some(t) = clock.tick_before(w[1].t_ms)
        {
            out.push((s(w[0].t_ms), s(t)));
        }
    }
    if let Some(&end) = clock.ticks.last()
        && end > last.t_ms + 100
    {
        out.push((s(last.t_ms), s(end)));
    }
    out
}

/// The failed operations per interval, by kind. The kinds partition the summary's error total
/// (`connect_failures + rest_failures + token_fetch_failures`), so the chart's counts add up to it.
fn failure_kinds(clock: &Clock, s: &RunSummary) -> Vec<(&'static str, Vec<u64>)> {
    let connect = clock.counts(s, "connect_failures");
    let mut kinds = Vec::with_capacity(4);
    // A summary from before long-poll failures were counted apart has no such column: its
    // connect failures stay one kind rather than all reading as WebSocket ones.
    if s.metrics.timeline.counters.contains_key("longpoll_connect_failures") {
        let longpoll: Vec<u64> = clock
            .counts(s, "longpoll_connect_failures")
            .iter()
            .zip(&connect)
            .map(|(l, c)| *l.min(c))
            .collect();
        let ws = connect.iter().zip(&longpoll).map(|(c, l)| c - l).collect();
        kinds.push(("connect (WebSocket)", ws));
        kinds.push(("connect (long-poll)", longpoll));
    } else {
        kinds.push(("connect", connect));
    }
    kinds.push(("REST", clock.counts(s, "rest_failures")));
    kinds.push(("token", clock.counts(s, "token_fetch_failures")));
    kinds
}

fn charts(h: &mut String, s: &RunSummary) {
    let t = &s.metrics.timeline;
    let clock = Clock::of(s);
    let axis = XAxis::run(clock.last_s);
    let markers = || -> Vec<Marker> {
        s.timeline
            .iter()
            .map(|m| Marker {
                x: m.at_ms as f64 / 1000.0,
                label: format!("{} @ {} s", m.action, fmt_s(m.at_ms)),
                tip: format!("{} @ {} s: {}", m.action, fmt_s(m.at_ms), m.detail),
            })
            .collect()
    };
    let _ = write!(
        h,
        "<h2>Over time</h2><p class=\"note\">Every chart below shares one time axis (0 to {} s). Dashed amber lines: the scenario's timeline actions. \
Lines stop where a second has no samples; grey bands mark spans with none.</p>",
        fmt_num_s(match axis {
            XAxis::Run { end, .. } => end,
            _ => clock.last_s,
        })
    );

    // Users. Samples taken once the run's end has come (from the stop on, and always the last
    // one, taken after every user stopped; merged shards put it in the last whole second) show the
    // users leaving because the run ended: drawn, they would read as a collapse at the end of every
    // run, so the chart ends at the last sample of the live run.
    // The stop begins at the planned end (or earlier, when the run was cut short); `duration_ms`
    // is read a moment after it.
    let stop_ms = s.run.duration_ms.min(s.run.planned_ms.max(1));
    let live_rows = t
        .t_ms
        .iter()
        .enumerate()
        .take_while(|(i, ms)| *i == 0 || (*i + 1 < t.t_ms.len() && **ms < stop_ms))
        .count();
    let gauges: Vec<Series> = t
        .gauges
        .iter()
        .map(|(name, col)| {
            Series::new(
                name.clone(),
                t.t_ms
                    .iter()
                    .zip(col)
                    .take(live_rows)
                    .map(|(ms, v)| (*ms as f64 / 1000.0, *v as f64))
                    .collect(),
            )
        })
        .collect();
    let mut users = Chart::over_run(
        "connected",
        "Users over time (samples taken after the run's end are left out)",
        "users",
        gauges,
        axis,
    );
    users.markers = markers();
    h.push_str(&users.render());

    // Throughput and failure rate, side by side.
    let lengths = &clock.lengths;
    let rate = |name: &str| -> Vec<(f64, f64)> {
        clock
            .xs()
            .zip(clock.counts(s, name))
            .zip(lengths)
            .map(|((x, n), d)| (x, n as f64 / d))
            .collect()
    };
    let ops = vec![
        Series::new("connects/s", rate("connects")),
        Series::new("REST requests/s", rate("rest_requests")),
        Series::new("token fetches/s", rate("token_fetches")),
    ];
    let events = vec![
        Series::new("events sent/s", rate("events_sent")),
        Series::new("events received/s", rate("events_received")),
    ];
    let kinds = failure_kinds(&clock, s);
    let operations: Vec<u64> = ["connects", "connect_failures", "rest_requests", "token_fetches"]
        .iter()
        .map(|n| clock.counts(s, n))
        .fold(vec![0; clock.ends.len()], |acc, c| {
            acc.iter().zip(&c).map(|(a, b)| a + b).collect()
        });
    let failed: Vec<u64> = kinds.iter().fold(vec![0; clock.ends.len()], |acc, (_, c)| {
        acc.iter().zip(c).map(|(a, b)| a + b).collect()
    });
    // No operation in an interval: no rate, a gap (not a 0 % that nobody measured).
    let failure_rate: Vec<(f64, f64)> = clock
        .xs()
        .zip(operations.iter().zip(&failed))
        .map(|(x, (ops, f))| {
            (
                x,
                if *ops == 0 {
                    f64::NAN
                } else {
                    *f as f64 * 100.0 / *ops as f64
                },
            )
        })
        .collect();
    let half = |mut c: Chart<'_>| {
        c.width = super::chart::HALF;
        c.markers = markers();
        c.render()
    };
    h.push_str("<div class=\"pair\">");
    h.push_str(&half(Chart::over_run(
        "throughput",
        "Operations per second",
        "per second",
        ops,
        axis,
    )));
    h.push_str(&half(Chart::over_run(
        "events",
        "Events per second",
        "per second",
        events,
        axis,
    )));
    h.push_str("</div><div class=\"pair\">");
    let failures: Vec<Series> = kinds
        .iter()
        .map(|(name, counts)| Series::new(*name, clock.xs().zip(counts.iter().map(|n| *n as f64)).collect()))
        .collect();
    h.push_str(&half(Chart::over_run(
        "errors",
        &format!("Failed operations per interval, by kind ({} in all)", s.errors.total),
        "failed",
        failures,
        axis,
    )));
    h.push_str(&half(Chart::over_run(
        "failure-rate",
        "Failure rate (failed of attempted operations)",
        "%",
        vec![Series::new("failed %", failure_rate)],
        axis,
    )));
    h.push_str("</div>");

    // Codes: a failure may carry a Stream error code, and a live connection may be closed with a
    // close code; neither is a count of failed operations, so they get their own chart.
    let mut by_code: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for p in &t.error_codes {
        let code = p.code.map_or_else(|| "other".to_owned(), |c| c.to_string());
        *by_code
            .entry(format!("error code {code}"))
            .or_default()
            .entry(p.t_ms)
            .or_default() += p.count;
    }
    for p in &t.close_codes {
        let code = p.code.map_or_else(|| "other".to_owned(), |c| c.to_string());
        *by_code
            .entry(format!("close {code}"))
            .or_default()
            .entry(p.t_ms)
            .or_default() += p.count;
    }
    if !by_code.is_empty() {
        // The points are sparse (only seconds with codes): a quiet second is a real zero.
        let series = by_code
            .into_iter()
            .map(|(name, pts)| {
                let points = clock
                    .rows
                    .iter()
                    .zip(clock.xs())
                    .map(|(r, x)| {
                        let n: u64 = r
                            .clone()
                            .filter_map(|i| t.t_ms.get(i))
                            .filter_map(|ms| pts.get(ms))
                            .sum();
                        (x, n as f64)
                    })
                    .collect();
                Series::new(name, points)
            })
            .collect();
        let mut c = Chart::over_run(
            "codes",
            "Stream error codes and WebSocket close codes per interval",
            "per interval",
            series,
            axis,
        );
        c.markers = markers();
        h.push_str(&c.render());
    }

    h.push_str("<h2>Latency over time</h2><p class=\"note\">Per second: p50, p90, p99 and (dashed) max, in ms.</p><div class=\"grid\">");
    for (tag, points) in &s.metrics.series {
        if points.is_empty() {
            continue;
        }
        let faint_max = Series {
            faint: true,
            ..Series::new("max", with_gaps(&clock, points, |p| p.max_us))
        };
        let series = vec![
            Series::new("p50", with_gaps(&clock, points, |p| p.p50_us)),
            Series::new("p90", with_gaps(&clock, points, |p| p.p90_us)),
            Series::new("p99", with_gaps(&clock, points, |p| p.p99_us)),
            faint_max,
        ];
        let id = format!("series-{tag}");
        let title = format!("{tag}: percentiles per second");
        let mut c = Chart::over_run(&id, &title, "ms", series, axis);
        c.width = super::chart::HALF;
        c.markers = markers();
        c.empty = empty_spans(&clock, points);
        h.push_str(&c.render());
    }
    h.push_str("</div>");

    h.push_str("<h2>Percentile spectra</h2><div class=\"grid\">");
    for (tag, l) in &s.latency {
        if l.spectrum.is_empty() {
            continue;
        }
        let series = vec![Series::new(
            tag.clone(),
            l.spectrum
                .iter()
                .map(|p| (p.percentile, p.value_us as f64 / 1000.0))
                .collect(),
        )];
        let id = format!("spectrum-{tag}");
        let title = format!("{tag}: latency by percentile");
        h.push_str(
            &Chart {
                id: &id,
                title: &title,
                x_label: "percentile",
                y_label: "ms",
                series,
                markers: vec![],
                x_axis: XAxis::Percentile,
                empty: vec![],
                width: super::chart::HALF,
            }
            .render(),
        );
    }
    h.push_str("</div>");

    recoveries(h, "Recovery after storms", "storm", "seconds after the drop", &s.storms);
    recoveries(
        h,
        "Background waves",
        "wave",
        "seconds after the return to the foreground",
        &s.waves,
    );
}

/// Milliseconds as seconds, without a trailing `.0`.
fn fmt_s(ms: u64) -> String {
    fmt_num_s(ms as f64 / 1000.0)
}

fn fmt_num_s(s: f64) -> String {
    if s == s.trunc() {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// The table of storms (or waves) and one recovery chart each, with a curve per profile when the
/// fleet mixes profiles.
fn recoveries(h: &mut String, title: &str, kind: &str, x_label: &str, list: &[StormFigures]) {
    if list.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h2>{}</h2><table><tr><th>{kind}</th><th>at</th><th>profile</th><th>{}</th><th>back</th><th>50%</th><th>90%</th><th>99%</th><th>100%</th><th>attempts/user</th></tr>",
        escape(title),
        if kind == "wave" { "went away" } else { "dropped" }
    );
    let f = |v: Option<u64>| v.map_or_else(|| "never".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
    for st in list {
        let rows = std::iter::once(("all", st)).chain(st.by_profile.iter().map(|(n, p)| (n.as_str(), p)));
        for (profile, r) in rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.1} s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                escape(&st.label),
                st.at_ms as f64 / 1000.0,
                escape(profile),
                r.dropped,
                r.recovered,
                f(r.p50_ms),
                f(r.p90_ms),
                f(r.p99_ms),
                f(r.p100_ms),
                r.attempts_mean
            );
        }
    }
    h.push_str("</table>");
    for (i, st) in list.iter().enumerate() {
        let curve = |name: &str, r: &StormFigures| {
            Series::new(
                name,
                r.curve.iter().map(|(ms, pct)| (*ms as f64 / 1000.0, *pct)).collect(),
            )
        };
        let mut series = vec![curve(&st.label, st)];
        if st.by_profile.len() > 1 {
            series.extend(st.by_profile.iter().map(|(n, p)| curve(n, p)));
        }
        let id = format!("recovery-{kind}-{i}");
        let title = format!("Recovery: {}", st.label);
        h.push_str(
            &Chart {
                id: &id,
                title: &title,
                x_label,
                y_label: "% back",
                series,
                markers: vec![],
                x_axis: XAxis::Linear,
                empty: vec![],
                width: super::chart::WIDE,
            }
            .render(),
        );
    }
}

/// One row per profile of a mixed fleet: every figure of the run restricted to its users. Two
/// tables (figures, then codes) so that each fits the page.
fn profiles(h: &mut String, s: &RunSummary) {
    if s.by_profile.len() < 2 {
        return;
    }
    h.push_str("<h2>By profile</h2><table class=\"num\"><tr><th>profile</th><th>users</th><th>peak live</th><th>connects</th><th>attempts</th><th>errors</th><th>error rate</th><th>connect p50 (ms)</th><th>connect p99 (ms)</th><th>reconnect p99 (ms)</th><th>token refreshes</th><th>fallbacks</th><th>privacy leaks</th><th>conformance failed / checked</th></tr>");
    let lat = |p: &ProfileFigures, tag: &str, f: fn(&crate::metrics::PercentileSummary) -> u64| {
        p.latency
            .get(tag)
            .filter(|l| l.count > 0)
            .map_or_else(|| "-".to_owned(), |l| ms(f(l)))
    };
    // One code per span: a list may wrap between codes, never inside one.
    let codes = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter()
                .map(|(k, v)| format!("<span class=\"v\">{}×{v}</span>", escape(k)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for (name, p) in &s.by_profile {
        let c = |n: &str| p.counters.get(n).copied().unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
            escape(name),
            p.users,
            p.connected_peak,
            p.connects,
            p.connect_attempts,
            p.errors.total,
            p.errors.rate_percent,
            lat(p, "connect", |l| l.p50_us),
            lat(p, "connect", |l| l.p99_us),
            lat(p, "reconnect", |l| l.p99_us),
            c("token_refreshes"),
            c("fallbacks"),
            c("privacy_leaks"),
            p.conformance.failures,
            p.conformance.checks
        );
    }
    h.push_str("</table><table class=\"codes\"><tr><th>profile</th><th>errors by code</th><th>closes by code</th><th>connect failures by cause</th></tr>");
    for (name, p) in &s.by_profile {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            codes(&p.errors.by_code),
            codes(&p.errors.by_close_code),
            codes(&p.errors.by_kind)
        );
    }
    h.push_str("</table>");
}

/// The conformance table: one row per rule (its verdict coloured, the detail beside it), and
/// under each rule with evidence a folded row with the evidence text and wire log.
fn conformance(h: &mut String, c: Option<&ConformanceSection>) {
    let Some(c) = c else {
        return;
    };
    // A suite reports how long each case ran; a load run how often each rule was checked.
    let last = match c.source {
        ConformanceSource::Suite => "ms",
        ConformanceSource::Observed => "seen",
    };
    let _ = write!(
        h,
        "<h2>Conformance</h2><table class=\"text\"><tr><th>rule</th><th>section</th><th>requirement</th><th>verdict</th><th>{last}</th></tr>"
    );
    for r in &c.rules {
        let class = match r.verdict {
            Verdict::Passed => "pass",
            Verdict::Failed => "fail",
            Verdict::NonStrictFailure if c.counts(r) => "fail",
            _ => "skip",
        };
        let last = match c.source {
            ConformanceSource::Suite => r.duration_ms,
            ConformanceSource::Observed => r.observed,
        }
        .map_or_else(String::new, |n| n.to_string());
        let detail = r.detail();
        let word = r.verdict_word().to_lowercase();
        let verdict = if detail.is_empty() {
            word
        } else {
            format!("{word}: {detail}")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{last}</td></tr>",
            escape(&r.id),
            escape(&r.section),
            escape(&r.requirement),
            escape(&verdict)
        );
        if r.evidence.is_some() {
            // A failure that decides the verdict is shown unfolded: it is what the reader came for.
            let open = if c.counts(r) { " open" } else { "" };
            let _ = write!(
                h,
                "<tr><td colspan=\"5\"><details{open}><summary>evidence</summary><pre>{}</pre></details></td></tr>",
                escape(&super::conformance::evidence_text(r))
            );
        }
    }
    h.push_str("</table>");
}

fn generator(h: &mut String, s: &RunSummary) {
    let g = &s.generator;
    let _ = write!(
        h,
        "<h2>Load generator</h2><table class=\"meta\"><tr><td>kept up</td><td class=\"{}\">{}</td></tr>\
<tr><td>scheduler lag p99 / max</td><td>{} ms / {} ms (bound {} ms)</td></tr><tr><td>late starts</td><td>{}</td></tr>\
<tr><td>descriptors</td><td>peak {} of {}</td></tr><tr><td>peak RSS</td><td>{:.1} MiB ({} bytes per connected user)</td></tr>\
<tr><td>CPU</td><td>{:.1} s</td></tr><tr><td>TLS handshake CPU</td><td>{:.2} s, busiest second {:.0} % of the cores (bound {:.0} %)</td></tr></table>",
        if g.saturated { "fail" } else { "pass" },
        if g.saturated { "no: the run is invalid" } else { "yes" },
        ms(g.scheduler_lag_p99_us),
        ms(g.scheduler_lag_max_us),
        ms(g.scheduler_lag_bound_us),
        g.late_starts,
        g.fd_peak,
        g.fd_limit,
        g.peak_rss_bytes as f64 / 1_048_576.0,
        g.rss_per_user_bytes,
        g.cpu_seconds,
        g.tls_handshake_cpu_seconds,
        g.tls_handshake_cpu_peak_share * 100.0,
        crate::engine::tls_load::HANDSHAKE_SHARE_BOUND * 100.0
    );
    if !g.reasons.is_empty() {
        h.push_str("<ul>");
        for r in &g.reasons {
            let _ = write!(h, "<li>{}</li>", escape(r));
        }
        h.push_str("</ul>");
    }
}

/// Writes `report.html` into `dir`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_file(s: &RunSummary, dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join("report.html"), render(s))
}
