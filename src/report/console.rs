//! The console summary: what a person reads at the end of a run. Plain text, no colour codes,
//! so it reads the same in a terminal, a CI log and a golden file.

use super::summary::RunSummary;
use std::io::{self, Write};

/// Histogram tags shown first, in this order; others follow alphabetically.
const FIRST: [&str; 8] = [
    "connect.ws",
    "connect.ws.intended",
    "connect.longpoll",
    "token.fetch",
    "token.refresh",
    "reconnect",
    "delivery.typing",
    "delivery.message",
];

fn ms(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else {
        format!("{:.2}ms", us as f64 / 1000.0)
    }
}

/// Writes the console summary.
///
/// # Errors
/// When `w` fails.
pub fn write(s: &RunSummary, w: &mut dyn Write) -> io::Result<()> {
    let r = &s.run;
    writeln!(w, "chatstorm {} — {}", s.tool.version, r.name)?;
    writeln!(w, "  target   {}", r.target)?;
    writeln!(
        w,
        "  run      seed {}, {:.1}s of {:.1}s planned, {} of {} users started{}",
        r.seed,
        r.duration_ms as f64 / 1000.0,
        r.planned_ms as f64 / 1000.0,
        r.users_started,
        r.users_planned,
        r.shards_note()
    )?;
    let c = |n: &str| s.metrics.counters.get(n).copied().unwrap_or(0);
    writeln!(
        w,
        "  connects {} ok, {} failed; reconnect attempts {}; long-poll fallbacks {}; token refreshes {}",
        c("connects"),
        c("connect_failures"),
        c("reconnect_attempts"),
        c("fallbacks"),
        c("token_refreshes")
    )?;
    writeln!(
        w,
        "  events   {} sent, {} received, {} lost, {} duplicated, {} out of order",
        c("events_sent"),
        c("events_received"),
        c("events_lost"),
        c("events_duplicated"),
        c("events_out_of_order")
    )?;
    let codes = |m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(" ")
        }
    };
    writeln!(
        w,
        "  errors   {} of {} operations ({:.3}%); failures by code: {}; closes by code: {}",
        s.errors.total,
        s.errors.operations,
        s.errors.rate_percent,
        codes(&s.errors.by_code),
        codes(&s.errors.by_close_code)
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "  {:<26} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency", "count", "p50", "p90", "p99", "p99.9", "max"
    )?;
    let mut tags: Vec<&String> = s.latency.keys().collect();
    tags.sort_by_key(|t| (FIRST.iter().position(|f| f == t).unwrap_or(FIRST.len()), t.to_string()));
    for tag in tags {
        let l = &s.latency[tag].summary;
        writeln!(
            w,
            "  {:<26} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            tag,
            l.count,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us)
        )?;
    }
    for st in &s.storms {
        let f = |v: Option<u64>| v.map_or_else(|| "never".to_owned(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        writeln!(w)?;
        writeln!(
            w,
            "  storm    {} at {:.1}s: {} dropped, {} back",
            st.label,
            st.at_ms as f64 / 1000.0,
            st.dropped,
            st.recovered
        )?;
        writeln!(
            w,
            "           50% back {}, 90% {}, 99% {}, 100% {}; attempts/user {:.2} (max {}); {:.0} reconnects/s",
            f(st.p50_ms),
            f(st.p90_ms),
            f(st.p99_ms),
            f(st.p100_ms),
            st.attempts_mean,
            st.attempts_max,
            st.accepted_per_s
        )?;
    }
    if !s.timeline.is_empty() {
        writeln!(w)?;
        for m in &s.timeline {
            writeln!(w, "  at {:>6.1}s {} — {}", m.at_ms as f64 / 1000.0, m.action, m.detail)?;
        }
    }
    if !s.thresholds.is_empty() {
        writeln!(w)?;
        for t in &s.thresholds {
            let mark = if t.passed { "ok  " } else { "FAIL" };
            writeln!(
                w,
                "  {mark} {} {} (observed {})",
                t.metric, t.condition, t.observed_text
            )?;
        }
    }
    let g = &s.generator;
    writeln!(w)?;
    writeln!(
        w,
        "  harness  scheduler lag p99 {} (bound {}), late starts {}, peak fds {} of {}, peak RSS {:.1} MiB ({} B/user), CPU {:.1}s",
        ms(g.scheduler_lag_p99_us),
        ms(g.scheduler_lag_bound_us),
        g.late_starts,
        g.fd_peak,
        g.fd_limit,
        g.peak_rss_bytes as f64 / 1_048_576.0,
        g.rss_per_user_bytes,
        g.cpu_seconds
    )?;
    writeln!(w)?;
    writeln!(w, "verdict: {} (exit {})", s.verdict.outcome, s.verdict.exit_code)?;
    for reason in &s.verdict.reasons {
        writeln!(w, "  - {reason}")?;
    }
    Ok(())
}
