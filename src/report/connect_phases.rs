//! The report's "Connection setup" section: where a connect's time went, phase by phase
//! (`connect.dns`, `connect.tcp`, `connect.tls`, `connect.upgrade`, `connect.first_frame`), the
//! host names looked up once for the run and the addresses used, and the TLS handshakes (full
//! and resumed, and what they cost the harness). The console's `dns` and `TLS handshakes`
//! lines say the same; here they sit beside the phases they explain.

use super::summary::RunSummary;
use crate::report::junit::escape;
use std::fmt::Write;

/// The connect phases in the order a connect goes through them.
pub const PHASES: [&str; 5] = [
    "connect.dns",
    "connect.tcp",
    "connect.tls",
    "connect.upgrade",
    "connect.first_frame",
];

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Appends the section to `h`; nothing when the run measured no phase (a summary written before
/// the phases were measured).
pub fn html(h: &mut String, s: &RunSummary) {
    let phases: Vec<_> = PHASES
        .iter()
        .filter_map(|p| s.latency.get(*p).map(|l| (*p, &l.summary)))
        .collect();
    if phases.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"connect-setup\">Connection setup</h2><table class=\"num\" id=\"connect-phases\"><tr><th>phase</th>\
<th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>",
    );
    for (name, p) in phases {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.count,
            ms(p.p50_us),
            ms(p.p90_us),
            ms(p.p99_us),
            ms(p.max_us)
        );
    }
    h.push_str("</table><ul class=\"note\" id=\"connect-notes\">");
    for d in &s.run.dns {
        let _ = write!(
            h,
            "<li>DNS: {}:{} resolved once for the run to {} in {:.1} ms (<code>connect.dns</code>; every connection used these addresses)</li>",
            escape(&d.host),
            d.port,
            escape(&d.addresses.join(", ")),
            d.lookup_ms
        );
    }
    let c = |n: &str| s.metrics.counters.get(n).copied().unwrap_or(0);
    let (full, resumed) = (c("tls_full_handshakes"), c("tls_resumed_handshakes"));
    if full + resumed > 0 {
        let g = &s.generator;
        let _ = write!(
            h,
            "<li id=\"tls-handshakes\">TLS handshakes: {full} full, {resumed} resumed; the harness's own handshake CPU \
{:.2} s, busiest second {:.0} % of its cores (bound {:.0} %)</li>",
            g.tls_handshake_cpu_seconds,
            g.tls_handshake_cpu_peak_share * 100.0,
            crate::engine::tls_load::HANDSHAKE_SHARE_BOUND * 100.0
        );
    }
    h.push_str(
        "<li>Each phase is timed from the end of the one before: <code>connect.tls</code> only over TLS, \
<code>connect.dns</code> once per host name of the run, not per connect.</li></ul>",
    );
}
