//! `--metrics-listen`: `/metrics` in the Prometheus text exposition format (0.0.4, which
//! OpenMetrics-aware scrapers read too), rendered from the latest [`Exposition`] the collector's
//! tick left; a scrape never waits for or locks anything the users record into.

use super::buckets::LE_LABELS;
use super::exposition::{Exposition, Kind};
use super::http;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` on `addr` from `latest`; gives the bound address.
///
/// # Errors
/// The bind's error.
pub async fn serve(
    addr: SocketAddr,
    latest: watch::Receiver<Option<Arc<Exposition>>>,
    costs: Arc<super::Costs>,
) -> std::io::Result<SocketAddr> {
    http::serve(addr, move |req| match req.uri().path() {
        "/metrics" => {
            let t = std::time::Instant::now();
            // Cloning the Arc under the channel's lock, rendering outside it.
            let e = latest.borrow().clone();
            let text = e.map_or_else(String::new, |e| render(&e));
            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            costs.scrape_ns.store(ns, std::sync::atomic::Ordering::Relaxed);
            costs
                .scrape_bytes
                .store(text.len() as u64, std::sync::atomic::Ordering::Relaxed);
            http::answer(200, CONTENT_TYPE, text)
        }
        "/" => http::answer(
            200,
            "text/html; charset=utf-8",
            "<!DOCTYPE html><title>chatstorm metrics</title><a href=\"/metrics\">/metrics</a>",
        ),
        _ => http::answer(404, "text/plain", "not found\n"),
    })
    .await
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
pub fn escape_label(v: &str, out: &mut String) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn labels(out: &mut String, run: &[(&'static str, String)], own: &[(&'static str, String)], le: Option<&str>) {
    out.push('{');
    let mut first = true;
    for (k, v) in run.iter().chain(own) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label(v, out);
        out.push('"');
    }
    if let Some(le) = le {
        let _ = write!(out, ",le=\"{le}\"");
    }
    out.push('}');
}

fn number(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else if v.is_nan() {
        out.push_str("NaN");
    } else if v > 0.0 {
        out.push_str("+Inf");
    } else {
        out.push_str("-Inf");
    }
}

/// The text exposition of `e`.
pub fn render(e: &Exposition) -> String {
    let mut out = String::with_capacity(64 * 1024);
    // A family without samples yet still says it exists (its metadata), so that dashboards and
    // alerts find every name from the first scrape on.
    for f in &e.families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.name());
        match f.kind {
            Kind::Counter | Kind::Gauge => {
                for (l, v) in &f.samples {
                    out.push_str(f.name);
                    labels(&mut out, &e.run, l, None);
                    out.push(' ');
                    number(&mut out, *v);
                    out.push('\n');
                }
            }
            Kind::Histogram => {
                for (l, b) in &f.histograms {
                    for (i, n) in b.cumulative().enumerate() {
                        out.push_str(f.name);
                        out.push_str("_bucket");
                        labels(
                            &mut out,
                            &e.run,
                            l,
                            Some(LE_LABELS.get(i).map_or("+Inf", String::as_str)),
                        );
                        let _ = writeln!(out, " {n}");
                    }
                    out.push_str(f.name);
                    out.push_str("_sum");
                    labels(&mut out, &e.run, l, None);
                    out.push(' ');
                    number(&mut out, b.sum_us / 1e6);
                    out.push('\n');
                    out.push_str(f.name);
                    out.push_str("_count");
                    labels(&mut out, &e.run, l, None);
                    let _ = writeln!(out, " {}", b.count);
                }
            }
        }
    }
    out
}
