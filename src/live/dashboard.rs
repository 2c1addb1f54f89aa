//! `--dashboard ADDR`: one self-contained page (inline style and one inline script; nothing
//! loaded from anywhere but its own origin, which its Content-Security-Policy enforces) that
//! shows the run's report as it stands and redraws it every second from server-sent events
//! (`/events`). At the end of the run it receives the final report and stops listening.
//!
//! The page's content IS the report: each second the run's state so far goes through the same
//! summary builder (`report::build`) and the same renderer (`report::html::body`) as
//! `report.html`, so the live page and the file never draw a chart differently. That work is
//! only done while at least one page is connected, on a blocking thread, never on the users'.

use super::http::{self, Response};
use crate::engine::figures::TargetHealth;
use crate::engine::lag::LagReport;
use crate::engine::run::RunOutput;
use crate::engine::watch::RunSoFar;
use crate::metrics::{Collector, MetricsSnapshot};
use crate::report::summary::RunSummary;
use crate::scenario::Scenario;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How long the end of the run waits for connected pages to receive the final report.
pub const DRAIN: Duration = Duration::from_secs(3);

/// The page's security policy: nothing from elsewhere, no plugin, no frame; the inline style
/// and script only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One rendering of the report's body.
#[derive(Debug, Default)]
pub struct Update {
    /// Counts renderings (0: nothing rendered yet).
    pub seq: u64,
    /// The report's `<body>` markup.
    pub html: String,
    /// The final report: the run has ended.
    pub last: bool,
}

/// The dashboard of one run.
pub struct Dashboard {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Pages connected to `/events`.
    clients: Arc<AtomicUsize>,
    /// Signalled when a page disconnects.
    gone: Arc<Notify>,
    /// The run's state to render next (the render task takes it).
    input: watch::Sender<Option<Arc<RunOutput>>>,
    /// The latest rendering.
    page: watch::Sender<Arc<Update>>,
}

impl Dashboard {
    /// Binds `addr`, starts the render task, serves the page.
    ///
    /// # Errors
    /// The bind's error.
    pub async fn start(
        addr: SocketAddr,
        scenario: Arc<Scenario>,
        scenario_file: Option<String>,
    ) -> std::io::Result<Dashboard> {
        let (input, mut input_rx) = watch::channel::<Option<Arc<RunOutput>>>(None);
        let (page, _) = watch::channel(Arc::new(Update::default()));
        let clients = Arc::new(AtomicUsize::new(0));
        let gone = Arc::new(Notify::new());
        let title = scenario.name.clone();
        {
            let page = page.clone();
            tokio::spawn(async move {
                while input_rx.changed().await.is_ok() {
                    let Some(out) = input_rx.borrow_and_update().clone() else {
                        continue;
                    };
                    let (scenario, file) = (scenario.clone(), scenario_file.clone());
                    let Ok(html) = tokio::task::spawn_blocking(move || {
                        let summary = crate::report::build::build(&scenario, file, &out);
                        crate::report::html::body(&summary)
                    })
                    .await
                    else {
                        continue;
                    };
                    page.send_if_modified(|u| {
                        if u.last {
                            return false;
                        }
                        *u = Arc::new(Update {
                            seq: u.seq + 1,
                            html,
                            last: false,
                        });
                        true
                    });
                }
            });
        }
        let (serve_page, serve_clients, serve_gone) = (page.clone(), clients.clone(), gone.clone());
        let addr = http::serve(addr, move |req| match req.uri().path() {
            "/" | "/index.html" => page_response(&title, &serve_page.borrow()),
            "/events" => events(serve_page.subscribe(), serve_clients.clone(), serve_gone.clone()),
            _ => http::answer(404, "text/plain", "not found\n"),
        })
        .await?;
        Ok(Dashboard {
            addr,
            clients,
            gone,
            input,
            page,
        })
    }

    /// One collection: hands the run's state to the render task, if a page is watching;
    /// whether it did.
    pub fn tick(&self, collector: &Collector, run: &RunSoFar) -> bool {
        if self.clients.load(Relaxed) == 0 && self.page.borrow().seq > 0 {
            return false;
        }
        let out = output(run, collector.snapshot(), collector.elapsed());
        self.input.send_replace(Some(Arc::new(out)));
        true
    }

    /// The run has ended: every page shows `summary`'s report from now on.
    pub fn finish(&self, summary: &RunSummary) {
        let html = crate::report::html::body(summary);
        self.page.send_modify(|u| {
            *u = Arc::new(Update {
                seq: u.seq + 1,
                html,
                last: true,
            });
        });
    }

    /// Waits (at most [`DRAIN`]) until every connected page has received the final report.
    pub async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + DRAIN;
        while self.clients.load(Relaxed) > 0 {
            let notified = self.gone.notified();
            if self.clients.load(Relaxed) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
    }
}

/// The run so far as the report builder takes it: `metrics` from [`Collector::snapshot`].
/// Figures only known at the end (the target's health, the state check, the lag report) are
/// empty until the final report.
pub fn output(run: &RunSoFar, metrics: MetricsSnapshot, elapsed: Duration) -> RunOutput {
    let mut metrics = metrics;
    for (name, rules) in &run.conformance_by_profile {
        if let Some(p) = metrics.profiles.get_mut(*name) {
            p.conformance = rules.clone();
        }
    }
    RunOutput {
        metrics,
        target_description: run.target_description.clone(),
        target_is_mock: run.target_is_mock,
        users_planned: run.users_planned,
        users_started: run.users_started,
        users_due: run.users_started,
        target_health: TargetHealth::default(),
        state: None,
        planned: run.planned,
        elapsed,
        started_at: run.started_at,
        stop_reason: None,
        marks: run.marks.clone(),
        lag: LagReport::default(),
        tls_load: None,
        late_starts: run.late_starts,
        fd_limit: run.fd_limit,
        fd_peak: run.fd_peak,
        peak_rss: run.peak_rss,
        peak_connected: run.peak_connected,
        cpu_seconds: crate::sys::cpu_seconds(),
        aborted_by: None,
        conformance: Some(run.conformance.clone()),
        tls: None,
        dns: run.dns.clone(),
    }
}

/// The page: the report's style, a status line, the latest body, the script that replaces it.
pub fn page(title: &str, u: &Update) -> String {
    let mut h = String::with_capacity(u.html.len() + 4096);
    h.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chatstorm live: ");
    h.push_str(&crate::report::junit::escape(title));
    h.push_str("</title><style>");
    h.push_str(crate::report::html::style());
    h.push_str(
        "#live-status{position:sticky;top:0;background:#eff6ff;border:1px solid #bfdbfe;padding:4px 10px;margin:0 0 12px;font-size:13px;z-index:1}</style></head><body>",
    );
    h.push_str("<p id=\"live-status\">");
    h.push_str(if u.last {
        "The run has ended: this is its final report."
    } else if u.seq == 0 {
        "Live: waiting for the first second of the run…"
    } else {
        "Live: updated every second."
    });
    h.push_str("</p><div id=\"report\">");
    h.push_str(&u.html);
    h.push_str("</div><script>");
    h.push_str(SCRIPT);
    h.push_str("</script></body></html>\n");
    h
}

/// Replaces the report on each `update` event, and for good on `final`; stops listening on the
/// final report or when the harness has gone (so a finished run leaves no retrying page).
const SCRIPT: &str = "(function(){var s=document.getElementById('live-status'),r=document.getElementById('report');\
if(!window.EventSource){s.textContent='This browser cannot follow the run live; reload to update.';return;}\
var es=new EventSource('/events'),n=0;\
es.addEventListener('update',function(e){r.innerHTML=e.data;n++;s.textContent='Live: updated every second ('+n+' updates, last at '+new Date().toLocaleTimeString()+').';});\
es.addEventListener('final',function(e){es.close();r.innerHTML=e.data;s.textContent='The run has ended: this is its final report.';});\
es.onerror=function(){es.close();if(s.textContent.indexOf('ended')<0){s.textContent='The harness is gone: this is the last state received.';}};})();";

fn page_response(title: &str, u: &Update) -> Response {
    let mut r = http::answer(200, "text/html; charset=utf-8", page(title, u));
    let h = r.headers_mut();
    h.insert(
        ::http::header::HeaderName::from_static("content-security-policy"),
        ::http::HeaderValue::from_static(CSP),
    );
    h.insert(
        ::http::header::CACHE_CONTROL,
        ::http::HeaderValue::from_static("no-store"),
    );
    r
}

/// One server-sent event: `event: NAME`, the data one `data:` line per line, a blank line.
pub fn event(name: &str, data: &str) -> Bytes {
    let mut e = String::with_capacity(data.len() + data.len() / 64 + 32);
    e.push_str("event: ");
    e.push_str(name);
    e.push('\n');
    for line in data.replace("\r\n", "\n").replace('\r', "\n").split('\n') {
        e.push_str("data: ");
        e.push_str(line);
        e.push('\n');
    }
    e.push('\n');
    Bytes::from(e)
}

/// Decrements the count of connected pages when an event stream ends.
struct Connected {
    clients: Arc<AtomicUsize>,
    gone: Arc<Notify>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.clients.fetch_sub(1, Relaxed);
        self.gone.notify_waiters();
    }
}

/// `/events`: the latest rendering at once, then each new one; ends after the final report.
fn events(rx: watch::Receiver<Arc<Update>>, clients: Arc<AtomicUsize>, gone: Arc<Notify>) -> Response {
    clients.fetch_add(1, Relaxed);
    let guard = Connected { clients, gone };
    // (receiver, guard, first event still to send, final sent)
    let stream = futures_util::stream::unfold((rx, guard, true, false), |(mut rx, guard, first, done)| async move {
        if done {
            return None;
        }
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let u = rx.borrow_and_update().clone();
        let frame = if u.seq == 0 {
            // Nothing rendered yet: a comment keeps the stream open without drawing anything.
            Bytes::from_static(b": waiting for the first second\n\n")
        } else {
            event(if u.last { "final" } else { "update" }, &u.html)
        };
        Some((
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(frame)),
            (rx, guard, false, u.last),
        ))
    });
    let mut r = ::http::Response::new(StreamBody::new(stream).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        ::http::header::CACHE_CONTROL,
        ::http::HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_multiline_data_whole() {
        let e = event("update", "<p>a</p>\n<pre>b\r\nc</pre>");
        assert_eq!(
            std::str::from_utf8(&e).unwrap(),
            "event: update\ndata: <p>a</p>\ndata: <pre>b\ndata: c</pre>\n\n"
        );
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let p = page(
            "x</title><script>",
            &Update {
                seq: 1,
                html: "<h1>r</h1>".into(),
                last: false,
            },
        );
        assert!(!p.contains("x</title><script>"));
        assert!(!p.contains("src=") && !p.contains("href=") && !p.contains("@import") && !p.contains("url("));
        assert!(p.contains("new EventSource('/events')"));
    }
}
