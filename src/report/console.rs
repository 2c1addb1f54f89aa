//! The console summary: what a person reads at the end of a run, and the conformance table
//! `chatstorm conform` prints. Plain text, no colour codes, so it reads the same in a terminal,
//! a CI log and a golden file.

use super::summary::{CheckStatus, ConformanceSection, RunSummary, StormFigures};
use crate::conformance::{Strictness, Verdict};
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
    for d in &r.dns {
        writeln!(
            w,
            "  dns      {}:{} -> {} ({:.1}ms, once for the run)",
            d.host,
            d.port,
            d.addresses.join(" "),
            d.lookup_ms
        )?;
    }
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
    if c("tls_full_handshakes") + c("tls_resumed_handshakes") > 0 {
        writeln!(
            w,
            "           TLS handshakes {} full, {} resumed",
            c("tls_full_handshakes"),
            c("tls_resumed_handshakes")
        )?;
    }
    writeln!(
        w,
        "  events   {} sent, {} received, {} lost, {} duplicated, {} out of order",
        c("events_sent"),
        c("events_received"),
        c("events_lost"),
        c("events_duplicated"),
        c("events_out_of_order")
    )?;
    if c("events_undetermined") > 0 {
        writeln!(
            w,
            "           {} expected deliveries undetermined (the receiver's connection ended or went silent before the server had to deliver them)",
            c("events_undetermined")
        )?;
    }
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
    writeln!(w, "  connect failures by kind: {}", codes(&s.errors.by_kind))?;
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
    for (kind, list) in [("storm", &s.storms), ("wave", &s.waves)] {
        for st in list {
            recovery(w, kind, st)?;
        }
    }
    if s.by_profile.len() > 1 {
        profiles(w, s)?;
    }
    if !s.timeline.is_empty() {
        writeln!(w)?;
        for m in &s.timeline {
            writeln!(w, "  at {:>6.1}s {} — {}", m.at_ms as f64 / 1000.0, m.action, m.detail)?;
        }
    }
    if !s.checks.is_empty() {
        writeln!(w)?;
        for c in &s.checks {
            let mark = match c.status {
                CheckStatus::Passed => "ok  ",
                CheckStatus::Failed => "FAIL",
                CheckStatus::NoData => "n/a ",
                CheckStatus::Off => "off ",
            };
            if c.status == CheckStatus::Off {
                writeln!(w, "  {mark} check {}", c.name)?;
            } else {
                writeln!(w, "  {mark} check {}: {}", c.name, c.observed)?;
            }
        }
    }
    if !s.thresholds.is_empty() {
        writeln!(w)?;
        for t in &s.thresholds {
            let mark = if t.passed {
                "ok  "
            } else if t.no_data {
                "NODATA"
            } else {
                "FAIL"
            };
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
    if g.tls_handshake_cpu_seconds > 0.0 {
        writeln!(
            w,
            "           TLS handshakes: {:.2} CPU s, busiest second {:.0} % of the cores (bound {:.0} %)",
            g.tls_handshake_cpu_seconds,
            g.tls_handshake_cpu_peak_share * 100.0,
            crate::engine::tls_load::HANDSHAKE_SHARE_BOUND * 100.0
        )?;
    }
    if g.generator_queue_p99_us >= 1_000 || g.generator_queue_timeouts > 0 {
        writeln!(
            w,
            "           REST request slots: wait p99 {} (generator.queue), {} calls never got one",
            ms(g.generator_queue_p99_us),
            g.generator_queue_timeouts
        )?;
    }
    writeln!(w)?;
    writeln!(w, "verdict: {} (exit {})", s.verdict.outcome, s.verdict.exit_code)?;
    for reason in &s.verdict.reasons {
        writeln!(w, "  - {reason}")?;
    }
    Ok(())
}

/// Writes a conformance section as a table: one line per rule, then the evidence of each
/// failure, then the counts (`-> FAILED` when a rule's failure counts).
///
/// # Errors
/// When `w` fails.
pub fn write_conformance(c: &ConformanceSection, w: &mut dyn Write) -> io::Result<()> {
    let mut head = format!("conformance ({} rules", c.rules.len());
    if let Some(t) = &c.target {
        head = format!("conformance against {t} ({} rules", c.rules.len());
    }
    if let Some(d) = c.duration_ms {
        head.push_str(&format!(", {d} ms"));
    }
    writeln!(w, "{head})")?;
    writeln!(
        w,
        "{:<30} {:<10} {:<20} {:>7}  requirement",
        "rule",
        "grade",
        "verdict",
        if c.duration_ms.is_some() { "ms" } else { "seen" }
    )?;
    for r in &c.rules {
        let grade = match r.strictness {
            Strictness::Strict => "strict",
            Strictness::NonStrict => "non-strict",
        };
        let figure = r.duration_ms.or(r.observed).map_or_else(String::new, |n| n.to_string());
        writeln!(
            w,
            "{:<30} {:<10} {:<20} {figure:>7}  {} [{}]",
            r.id,
            grade,
            r.verdict_word(),
            r.requirement,
            r.section
        )?;
        if let Verdict::Skipped { reason } = &r.verdict {
            writeln!(w, "{:<30} skipped: {reason}", "")?;
        }
    }
    for r in c.rules.iter().filter(|r| r.evidence.is_some()) {
        writeln!(w)?;
        writeln!(w, "--- {} ({}) {}", r.id, r.verdict_word(), r.section)?;
        write!(w, "{}", super::conformance::evidence_text(r))?;
    }
    writeln!(
        w,
        "\n{} passed, {} failed, {} non-strict failures, {} skipped{}",
        c.passed,
        c.failed,
        c.non_strict_failures,
        c.skipped,
        if c.failing() > 0 { " -> FAILED" } else { "" }
    )
}

fn back(v: Option<u64>) -> String {
    v.map_or_else(|| "never".to_owned(), |ms| format!("{:.1}s", ms as f64 / 1000.0))
}

/// A storm's or a wave's recovery, with one line per profile when there are several.
fn recovery(w: &mut dyn Write, kind: &str, st: &StormFigures) -> io::Result<()> {
    writeln!(w)?;
    let (went, from) = if st.away_ms > 0 {
        (
            "went away",
            format!(", back to the foreground after {:.1}s", st.away_ms as f64 / 1000.0),
        )
    } else {
        ("dropped", String::new())
    };
    writeln!(
        w,
        "  {kind:<8} {} at {:.1}s: {} {went}, {} back{from}",
        st.label,
        st.at_ms as f64 / 1000.0,
        st.dropped,
        st.recovered
    )?;
    writeln!(
        w,
        "           50% back {}, 90% {}, 99% {}, 100% {}; attempts/user {:.2} (max {}); {:.0} reconnects/s",
        back(st.p50_ms),
        back(st.p90_ms),
        back(st.p99_ms),
        back(st.p100_ms),
        st.attempts_mean,
        st.attempts_max,
        st.accepted_per_s
    )?;
    if st.by_profile.len() > 1 {
        for (name, p) in &st.by_profile {
            writeln!(
                w,
                "           {name:<8} {} {went}, {} back; 50% {}, 90% {}, 99% {}, 100% {}; attempts/user {:.2}",
                p.dropped,
                p.recovered,
                back(p.p50_ms),
                back(p.p90_ms),
                back(p.p99_ms),
                back(p.p100_ms),
                p.attempts_mean
            )?;
        }
    }
    Ok(())
}

/// The per-profile table of a mixed fleet.
fn profiles(w: &mut dyn Write, s: &RunSummary) -> io::Result<()> {
    writeln!(w)?;
    writeln!(
        w,
        "  {:<8} {:>6} {:>6} {:>8} {:>8} {:>7} {:>8} {:>10} {:>10} {:>10} {:>6} {:>6} {:>6} {:>11}",
        "profile",
        "users",
        "peak",
        "connects",
        "attempts",
        "errors",
        "closes",
        "connect50",
        "connect99",
        "reconn99",
        "refr",
        "fallbk",
        "leaks",
        "conformance"
    )?;
    for (name, p) in &s.by_profile {
        let c = |n: &str| p.counters.get(n).copied().unwrap_or(0);
        let l = |tag: &str, f: fn(&crate::metrics::PercentileSummary) -> u64| {
            p.latency
                .get(tag)
                .filter(|l| l.count > 0)
                .map_or_else(|| "-".to_owned(), |l| ms(f(l)))
        };
        writeln!(
            w,
            "  {:<8} {:>6} {:>6} {:>8} {:>8} {:>7} {:>8} {:>10} {:>10} {:>10} {:>6} {:>6} {:>6} {:>11}",
            name,
            p.users,
            p.connected_peak,
            p.connects,
            p.connect_attempts,
            p.errors.total,
            p.errors.by_close_code.values().sum::<u64>(),
            l("connect", |l| l.p50_us),
            l("connect", |l| l.p99_us),
            l("reconnect", |l| l.p99_us),
            c("token_refreshes"),
            c("fallbacks"),
            c("privacy_leaks"),
            format!("{}/{}", p.conformance.failures, p.conformance.checks)
        )?;
    }
    writeln!(
        w,
        "           (peak: most live at once; closes: by any close code; conformance: failed/checked)"
    )?;
    Ok(())
}
