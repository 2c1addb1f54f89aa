//! `report.html`: one self-contained file (inline CSS and SVG, no script, no network) with the
//! run's header and verdict, thresholds, latency tables, latency over time, percentile spectra,
//! connected users with the timeline's faults marked, recovery curves, errors by code over time,
//! and the conformance table with the evidence behind each failure. `chatstorm conform` gets a
//! page of its own ([`render_conformance`]) with the verdict and that same table. Every string
//! that came from the scenario or the target is escaped.

use super::chart::{Chart, Marker, Series, XAxis};
use super::junit::escape;
use super::summary::{ConformanceSection, ConformanceSource, ProfileFigures, RunSummary, StormFigures};
use crate::conformance::Verdict;
use crate::exit::Outcome;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::io;
use std::path::Path;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#111827}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #f3f4f6;text-align:right}\
td:first-child,th:first-child{text-align:left}.pass{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:600}\
.skip{color:#6b7280}.chart{margin:12px 0}.chart svg{width:100%;max-width:720px;height:auto;border:1px solid #f3f4f6}\
figcaption{font-weight:600}.legend span{margin-right:12px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}\
pre{background:#f9fafb;padding:8px;overflow:auto;max-height:320px;font-size:12px}.meta td{text-align:left}";

/// Renders the whole report.
pub fn render(s: &RunSummary) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let r = &s.run;
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chatstorm: {}</title><style>{STYLE}</style></head><body>",
        escape(&r.name)
    );
    let verdict_class = if s.verdict.exit_code == 0 { "pass" } else { "fail" };
    let _ = write!(
        h,
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
            let _ = write!(h, "<li>{}</li>", escape(reason));
        }
        h.push_str("</ul>");
    }
    checks(&mut h, s);
    thresholds(&mut h, s);
    counters(&mut h, s);
    latency_table(&mut h, s);
    profiles(&mut h, s);
    charts(&mut h, s);
    conformance(&mut h, s.conformance.as_ref());
    generator(&mut h, s);
    h.push_str("</body></html>\n");
    h
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
    h.push_str("<h2>Checks</h2><table><tr><th>check</th><th>expected</th><th>observed</th><th>result</th></tr>");
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
    h.push_str("<h2>Counts</h2><table><tr><th>counter</th><th>value</th></tr>");
    for (k, v) in &s.metrics.counters {
        let _ = write!(h, "<tr><td>{}</td><td>{v}</td></tr>", escape(k));
    }
    let _ = write!(
        h,
        "<tr><td>error rate</td><td>{:.3}% ({} of {})</td></tr></table>",
        s.errors.rate_percent, s.errors.total, s.errors.operations
    );
    let codes = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{}×{v}", escape(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        h,
        "<p>failures by error code: {}<br>closes by close code: {}<br>connect failures by kind: {}</p>",
        if s.errors.by_code.is_empty() {
            "none".to_owned()
        } else {
            codes(&s.errors.by_code)
        },
        if s.errors.by_close_code.is_empty() {
            "none".to_owned()
        } else {
            codes(&s.errors.by_close_code)
        },
        if s.errors.by_kind.is_empty() {
            "none".to_owned()
        } else {
            codes(&s.errors.by_kind)
        }
    );
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn latency_table(h: &mut String, s: &RunSummary) {
    h.push_str("<h2>Latency (ms)</h2><table><tr><th>histogram</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    for (tag, l) in &s.latency {
        let p = &l.summary;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(tag),
            p.count,
            ms(p.p50_us),
            ms(p.p90_us),
            ms(p.p99_us),
            ms(p.p999_us),
            ms(p.max_us)
        );
    }
    h.push_str("</table>");
}

fn charts(h: &mut String, s: &RunSummary) {
    let t = &s.metrics.timeline;
    let secs: Vec<f64> = t.t_ms.iter().map(|ms| *ms as f64 / 1000.0).collect();
    let markers: Vec<Marker> = s
        .timeline
        .iter()
        .map(|m| Marker {
            x: m.at_ms as f64 / 1000.0,
            label: format!("{} {}", m.action, m.detail),
        })
        .collect();
    h.push_str("<h2>Connected users</h2>");
    let gauges: Vec<Series> = t
        .gauges
        .iter()
        .map(|(name, col)| Series {
            name: name.clone(),
            points: secs.iter().copied().zip(col.iter().map(|v| *v as f64)).collect(),
        })
        .collect();
    h.push_str(
        &Chart {
            id: "connected",
            title: "Users over time (dashed: timeline faults)",
            x_label: "seconds",
            y_label: "users",
            series: gauges,
            markers,
            x_axis: XAxis::Linear,
        }
        .render(),
    );

    h.push_str("<h2>Latency over time</h2>");
    for (tag, points) in &s.metrics.series {
        if points.is_empty() {
            continue;
        }
        let line = |name: &str, f: fn(&crate::metrics::SeriesPoint) -> u64| Series {
            name: name.to_owned(),
            points: points
                .iter()
                .map(|p| (p.t_ms as f64 / 1000.0, f(p) as f64 / 1000.0))
                .collect(),
        };
        let series = vec![
            line("p50", |p| p.p50_us),
            line("p90", |p| p.p90_us),
            line("p99", |p| p.p99_us),
            line("max", |p| p.max_us),
        ];
        let id = format!("series-{tag}");
        let title = format!("{tag}: percentiles per second");
        h.push_str(
            &Chart {
                id: &id,
                title: &title,
                x_label: "seconds",
                y_label: "ms",
                series,
                markers: vec![],
                x_axis: XAxis::Linear,
            }
            .render(),
        );
    }

    h.push_str("<h2>Percentile spectra</h2>");
    for (tag, l) in &s.latency {
        if l.spectrum.is_empty() {
            continue;
        }
        let series = vec![Series {
            name: tag.clone(),
            points: l
                .spectrum
                .iter()
                .map(|p| (p.percentile, p.value_us as f64 / 1000.0))
                .collect(),
        }];
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
            }
            .render(),
        );
    }

    recoveries(h, "Recovery after storms", "storm", "seconds after the drop", &s.storms);
    recoveries(
        h,
        "Background waves",
        "wave",
        "seconds after the return to the foreground",
        &s.waves,
    );

    let mut by_code: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for p in &t.error_codes {
        let code = p.code.map_or_else(|| "other".to_owned(), |c| c.to_string());
        *by_code
            .entry(format!("code {code}"))
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
    // The points are sparse (only seconds with errors): without the zero seconds between them
    // the line would join two bursts as if errors went on throughout.
    for pts in by_code.values_mut() {
        for ms in &t.t_ms {
            pts.entry(*ms).or_insert(0);
        }
    }
    if !by_code.is_empty() {
        h.push_str("<h2>Errors over time</h2>");
        let series = by_code
            .into_iter()
            .map(|(name, pts)| Series {
                name,
                points: pts.into_iter().map(|(ms, n)| (ms as f64 / 1000.0, n as f64)).collect(),
            })
            .collect();
        h.push_str(
            &Chart {
                id: "errors",
                title: "Errors and closes per second, by code",
                x_label: "seconds",
                y_label: "per second",
                series,
                markers: vec![],
                x_axis: XAxis::Linear,
            }
            .render(),
        );
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
        let curve = |name: &str, r: &StormFigures| Series {
            name: name.to_owned(),
            points: r.curve.iter().map(|(ms, pct)| (*ms as f64 / 1000.0, *pct)).collect(),
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
            }
            .render(),
        );
    }
}

/// One row per profile of a mixed fleet: every figure of the run restricted to its users.
fn profiles(h: &mut String, s: &RunSummary) {
    if s.by_profile.len() < 2 {
        return;
    }
    h.push_str("<h2>By profile</h2><table><tr><th>profile</th><th>users</th><th>peak live</th><th>connects</th><th>attempts</th><th>errors</th><th>error rate</th><th>errors by code</th><th>closes by code</th><th>connect p50</th><th>connect p99</th><th>reconnect p99</th><th>token refreshes</th><th>fallbacks</th><th>privacy leaks</th><th>conformance failed/checked</th></tr>");
    let lat = |p: &ProfileFigures, tag: &str, f: fn(&crate::metrics::PercentileSummary) -> u64| {
        p.latency
            .get(tag)
            .filter(|l| l.count > 0)
            .map_or_else(|| "-".to_owned(), |l| format!("{} ms", ms(f(l))))
    };
    let codes = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter()
                .map(|(k, v)| format!("{}×{v}", escape(k)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for (name, p) in &s.by_profile {
        let c = |n: &str| p.counters.get(n).copied().unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
            escape(name),
            p.users,
            p.connected_peak,
            p.connects,
            p.connect_attempts,
            p.errors.total,
            p.errors.rate_percent,
            codes(&p.errors.by_code),
            codes(&p.errors.by_close_code),
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
        "<h2>Conformance</h2><table><tr><th>rule</th><th>section</th><th>requirement</th><th>verdict</th><th>{last}</th></tr>"
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
<tr><td>CPU</td><td>{:.1} s</td></tr></table>",
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
        g.cpu_seconds
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
