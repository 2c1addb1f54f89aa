//! Owns the HTTP side: the accept loop (hyper http1 with upgrades, back-off when descriptors run
//! out), each connection's idle and header timeouts, request parsing (form-decoded query, headers,
//! a body bounded in size, in time and by a server-wide budget of unfinished bodies), routing
//! (the fault API on the client listener or its own), JSON responses and error bodies, the
//! rate-limit headers and the injected request latency.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::app::App;
use crate::auth::{ApiError, Credentials};
use crate::fault::Violation;
use crate::stats::Stats;
use crate::wire::{self, code};
use crate::{control, longpoll, rest, ws};

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

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
        tasks.spawn(serve_connection(app, stream, role));
    }
    // Sockets answer the cancellation with close 1001; give them a moment to get it out.
    drop(listener);
    app.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), app.tasks.wait()).await;
    Ok(())
}

/// One HTTP connection until it ends, is upgraded, times out (idle or slow head), or the server
/// shuts down.
async fn serve_connection(app: Arc<App>, stream: TcpStream, role: Listener) {
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

/// The TCP stream of one connection, telling its `Watch` when request bytes arrive.
struct Watched {
    io: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
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

impl AsyncWrite for Watched {
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

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over `max_body_bytes` (code 22, HTTP 413).
    #[error("request body over {0} bytes")]
    TooBig(usize),
    /// Not valid HTTP framing, e.g. a malformed chunk (code 4, HTTP 400).
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// Not complete within `body_timeout` (code 23, HTTP 408).
    #[error("request body not complete within {0:?}")]
    Timeout(Duration),
    /// Every connection's unfinished bodies together would pass `max_pending_body_bytes` (HTTP 503).
    #[error("the server holds too many unfinished request bodies; retry later")]
    Busy,
}

/// Reads a request body within `body_timeout` and `max_body_bytes`, charging every byte to the
/// server-wide budget of unfinished bodies until it is complete.
pub async fn read_body(app: &App, body: Incoming) -> Result<Bytes, BodyError> {
    let limit = app.cfg.max_body_bytes;
    let read = async {
        let mut held = Held { app, bytes: 0 };
        let mut body = std::pin::pin!(body);
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Malformed(e.to_string()))?;
            let Ok(data) = frame.into_data() else { continue };
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooBig(limit));
            }
            held.grow(data.len())?;
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(app.cfg.body_timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(BodyError::Timeout(app.cfg.body_timeout)),
    }
}

/// Bytes one body holds against the server-wide budget; given back on drop (complete, refused,
/// timed out or the client gone).
struct Held<'a> {
    app: &'a App,
    bytes: u64,
}

impl Held<'_> {
    fn grow(&mut self, n: usize) -> Result<(), BodyError> {
        let n = n as u64;
        let cap = self.app.cfg.max_pending_body_bytes as u64;
        let gauge = &self.app.stats.pending_body_bytes;
        let mut cur = gauge.load(Ordering::Relaxed);
        loop {
            if cur + n > cap {
                return Err(BodyError::Busy);
            }
            match gauge.compare_exchange_weak(cur, cur + n, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.bytes += n;
        Ok(())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.app
            .stats
            .pending_body_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The answer to a body that was not read; the connection closes after it (the rest of the body
/// is not read, so the stream cannot carry another request).
pub fn body_error(app: &App, e: &BodyError) -> Resp {
    let mut r = match e {
        BodyError::TooBig(_) => error(app, "Request", &ApiError::new(code::PAYLOAD_TOO_BIG, e.to_string())),
        BodyError::Malformed(_) => error(app, "Request", &ApiError::new(code::INPUT, e.to_string())),
        BodyError::Timeout(_) => error(app, "Request", &ApiError::new(REQUEST_TIMEOUT, e.to_string())),
        BodyError::Busy => {
            let body = serde_json::json!({
                "code": code::UNAVAILABLE,
                "message": format!("Request failed with error: \"{e}\""),
                "StatusCode": 503,
                "duration": "0.00ms",
                "more_info": "https://getstream.io/chat/docs/api_errors_response",
                "details": [],
            });
            json_response(503, body.to_string())
        }
    };
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Code 23, "request timeout" (HTTP 408).
const REQUEST_TIMEOUT: i32 = chatstorm_protocol::error::ErrorCode::REQUEST_TIMEOUT.0;

/// A parsed REST request.
#[derive(Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request arrived (nanoseconds), for `duration`.
    pub start: i128,
}

impl Req {
    /// The credentials of this request: `Authorization` / `stream-auth-type` headers, else the
    /// `authorization` / `stream-auth-type` query parameters.
    pub fn credentials(&self) -> Credentials {
        credentials(&self.query, &self.headers)
    }

    /// The body as JSON; an empty body is `{}`.
    pub fn json(&self) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::new(code::INPUT, format!("invalid JSON body: {e}")))
    }
}

/// Credentials from a query and headers; headers win.
pub fn credentials(query: &Query, headers: &HeaderMap) -> Credentials {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Credentials {
        api_key: query.get("api_key").map(str::to_owned),
        token: h("authorization").or_else(|| query.get("authorization").map(str::to_owned)),
        auth_type: h("stream-auth-type").or_else(|| query.get("stream-auth-type").map(str::to_owned)),
        user_id: query.get("user_id").map(str::to_owned),
    }
}

/// A form-decoded query string (`+` is a space).
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A JSON success response; `duration` is added to objects.
pub fn ok(status: u16, mut body: Value, start: i128) -> Resp {
    if let Some(o) = body.as_object_mut() {
        o.insert("duration".into(), wire::duration_since(start).into());
    }
    json_response(status, body.to_string())
}

/// An error response with the full body and the HTTP status of its code.
pub fn error(app: &App, op: &str, e: &ApiError) -> Resp {
    let body = wire::error_body(e.code, op, &e.detail, app.violation(Violation::IncompleteErrorBody));
    json_response(code::http_status(e.code), body.to_string())
}

pub fn json_response(status: u16, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
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
