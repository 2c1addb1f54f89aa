//! Owns the HTTP side above the handlers: the accept loop (hyper http1 with upgrades, back-off
//! when descriptors run out, the TLS handshake first when the config asks for TLS), each
//! connection's idle and header timeouts, and the router: which
//! listener serves what (the fault API on the client listener or its own), the injected request
//! latency, turning a request into an `exchange::Req`, dispatching it to its handler and adding the
//! rate-limit headers. It is the only module that imports the handlers (`control`, `ws`,
//! `longpoll`, `rest`); what they share lives below them in `exchange`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::app::App;
use crate::exchange::{Query, Req, Resp, body_error, json_response, read_body};
use crate::fault::Violation;
use crate::stats::Stats;
use crate::wire;
use crate::{control, longpoll, rest, ws};

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The client listener: REST, `/connect`, `/longpoll` (and `/_fault` unless it has its own).
    Client,
    /// The fault-control listener of `--fault-listen`: `/_fault` only.
    Fault,
}

/// First pause after a failed accept; it doubles up to `MAX_ACCEPT_PAUSE` while accepts keep
/// failing (descriptors exhausted) and drops back on the first success.
const MIN_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Accepts connections until `app.shutdown` fires. Accept errors (e.g. out of descriptors) pause
/// accepting with a doubling back-off instead of ending the server; connections already open
/// are served all along (each runs in its own task), and idle ones are closed by their idle
/// timeout, which is what frees descriptors for new ones.
pub async fn accept_loop(listener: TcpListener, app: Arc<App>, role: Listener) -> std::io::Result<()> {
    let tls = app.cfg.tls.as_ref().map(crate::tls::MockTls::config);
    let mut pause = MIN_ACCEPT_PAUSE;
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                if failing {
                    eprintln!("chatstorm-mock: accepting connections again");
                    failing = false;
                }
                pause = MIN_ACCEPT_PAUSE;
                s
            }
            Err(e) => {
                if !failing {
                    // Once per episode: a descriptor shortage must be visible, not a silent stall.
                    eprintln!(
                        "chatstorm-mock: accept failed ({e}); retrying with back-off, open connections are still served"
                    );
                    failing = true;
                }
                tokio::select! {
                    _ = app.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_ACCEPT_PAUSE);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tasks = app.tasks.clone();
        match &tls {
            None => tasks.spawn(serve_connection(app, stream, role)),
            Some(config) => tasks.spawn(serve_tls(app, stream, role, config.clone())),
        };
    }
    // Sockets answer the cancellation with close 1001; give them a moment to get it out.
    drop(listener);
    app.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), app.tasks.wait()).await;
    Ok(())
}

/// The TLS handshake, bounded by the header timeout (a client that never finishes it is a
/// slowloris too), then the connection as [`serve_connection`] serves a plain one. A failed
/// handshake just closes the socket: the client has its alert.
async fn serve_tls(app: Arc<App>, stream: TcpStream, role: Listener, config: Arc<rustls::ServerConfig>) {
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let handshake = tokio::select! {
        _ = app.shutdown.cancelled() => return,
        r = tokio::time::timeout(app.cfg.header_timeout, accept) => r,
    };
    if let Ok(Ok(tls)) = handshake {
        serve_connection(app, tls, role).await;
    }
}

/// One HTTP connection until it ends, is upgraded, times out (idle or slow head), or the server
/// shuts down. Generic over the byte stream so that a plain connection is served exactly as
/// before TLS existed (no enum, no box).
async fn serve_connection<I>(app: Arc<App>, stream: I, role: Listener)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watch = Arc::new(Watch::new());
    let svc_app = app.clone();
    let svc_watch = watch.clone();
    let svc = service_fn(move |req| {
        let app = svc_app.clone();
        let watch = svc_watch.clone();
        async move {
            watch.set(SERVING);
            let r = route(app, req, role).await;
            watch.set(IDLE);
            r
        }
    });
    let conn = http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(
            TokioIo::new(Watched {
                io: stream,
                watch: watch.clone(),
            }),
            svc,
        )
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    // Once, not per phase change: the waiter lives in the one server-wide token's list.
    let mut shutdown = std::pin::pin!(app.shutdown.cancelled());
    loop {
        let (phase, since) = watch.get();
        let limit = match phase {
            IDLE => Some(app.cfg.idle_timeout),
            HEAD => Some(app.cfg.header_timeout),
            _ => None,
        };
        let deadline = limit.map(|l| wire::deadline(since.saturating_add(l).saturating_sub(watch.base.elapsed())));
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = shutdown.as_mut() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                return;
            }
            _ = watch.changed.notified() => {}
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                if watch.get() == (phase, since) {
                    // Idle past its keep-alive, or a head that never ends: dropping the
                    // connection closes the socket and frees its descriptor and buffers.
                    return;
                }
            }
        }
    }
}

/// The connection waits for a request (idle timeout runs).
const IDLE: u8 = 0;
/// The first bytes of a request head arrived (header timeout runs).
const HEAD: u8 = 1;
/// A request is being answered (no timer: long-polls are held on purpose).
const SERVING: u8 = 2;

/// Where one connection stands, shared by its reader, its service and its watchdog.
#[derive(Debug)]
struct Watch {
    phase: AtomicU8,
    /// When the phase began, in milliseconds since `base`.
    since_ms: AtomicU64,
    base: tokio::time::Instant,
    /// Wakes the watchdog on every phase change, so it re-arms the right timer.
    changed: Notify,
}

impl Watch {
    fn new() -> Self {
        Watch {
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(0),
            base: tokio::time::Instant::now(),
            changed: Notify::new(),
        }
    }

    fn get(&self) -> (u8, Duration) {
        (
            self.phase.load(Ordering::Acquire),
            Duration::from_millis(self.since_ms.load(Ordering::Acquire)),
        )
    }

    fn set(&self, phase: u8) {
        self.since_ms
            .store(self.base.elapsed().as_millis() as u64, Ordering::Release);
        self.phase.store(phase, Ordering::Release);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn on_read(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.since_ms
                .store(self.base.elapsed().as_millis() as u64, Ordering::Release);
            if self
                .phase
                .compare_exchange(IDLE, HEAD, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.changed.notify_one();
            }
        }
    }
}

/// The byte stream of one connection (TCP, or TLS over it), telling its `Watch` when request
/// bytes arrive.
struct Watched<I> {
    io: I,
    watch: Arc<Watch>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.on_read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

async fn route(app: Arc<App>, req: Request<Incoming>, role: Listener) -> Result<Resp, ws::DropConnection> {
    Stats::bump(&app.stats.http_requests);
    let path = req.uri().path().to_owned();
    let fault_here = role == Listener::Fault || app.cfg.fault_on_client_listener;
    if path.starts_with("/_fault") && fault_here {
        return Ok(control::http(&app, req).await);
    }
    if role == Listener::Fault {
        return Ok(json_response(
            404,
            serde_json::json!({"error": "this listener serves /_fault only"}).to_string(),
        ));
    }
    if let Some(d) = app.faults.request_latency() {
        tokio::time::sleep(d).await;
    }
    if path == "/connect" {
        return ws::upgrade(app, req);
    }
    let start = wire::now_nanos();
    let (parts, body) = req.into_parts();
    let body = match read_body(&app, body).await {
        Ok(b) => b,
        Err(e) => return Ok(body_error(&app, &e)),
    };
    let req = Req {
        method: parts.method,
        query: Query::parse(parts.uri.query()),
        path,
        headers: parts.headers,
        body,
        start,
    };
    let (mut resp, verdict) = if req.path == "/longpoll" {
        (longpoll::handle(&app, &req).await, None)
    } else {
        rest::handle(&app, &req).await
    };
    if app.rate.enabled()
        && !app.violation(Violation::NoRateLimitHeaders)
        && let Some(v) = verdict.or_else(|| app.rate.peek(wire::now_unix()))
    {
        let h = resp.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from(v.limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(v.remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(v.reset));
    }
    Ok(resp)
}
