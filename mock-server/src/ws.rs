//! Owns `/connect`: the WebSocket upgrade (or its refusal under fault injection), the connect checks,
//! the first `health.check` with `me`, and one task per socket that writes queued events, answers
//! health checks and pings, sends the periodic `health.check`, and closes with the right code.
//!
//! Garbage from a client (not JSON, not an object or array, binary frames) gets one code-4
//! `connection.error` frame and the socket stays open: SDKs never send such frames, and a close 1000
//! would stop a JS client for good. Broken WebSocket framing gets the close code RFC 6455 asks for
//! (not a dropped TCP connection): 1002 for an unmasked frame, reserved bits, an unknown opcode or
//! an oversized or fragmented control frame; 1007 for invalid UTF-8 in a text message; 1009 for a
//! message over 64 KiB.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::app::App;
use crate::auth::{self, ApiError, Credentials};
use crate::config::ExpiryPolicy;
use crate::conn::{Conn, Kill, Transport};
use crate::exchange::{Query, Resp, credentials, error, json_response};
use crate::fault::{RefuseMode, Violation};
use crate::journal::{self, ClientAct};
use crate::proto::{self, ClientFrame};
use crate::stats::Stats;
use crate::wire::{self, code};

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Initial read buffer of a socket. Clients send only health checks (about 100 bytes) and
/// close frames; a larger frame grows the buffer for as long as it is read. Every connection
/// holds this buffer for its whole life, and tungstenite zero-fills its free part before each
/// read, so it is kept small (the protocol crate's 4 KiB cost 3.5 KiB and a 4 KiB memset per read
/// on every socket).
const READ_BUFFER: usize = 512;

/// Frames fed in one batch (the outbox drained at once) are written together up to this size,
/// then the flush writes the rest: one `send` for a batch instead of one per frame. A single
/// `send()` (feed and flush) writes at once, as before.
const WRITE_BATCH: usize = 8 * 1024;
const _: () = assert!(proto::MAX_WRITE_BUFFER > WRITE_BATCH);

/// The socket configuration: a small read buffer, batched writes for drained outboxes, a finite
/// write backlog, and 64 KiB messages at most (beyond: close 1009).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BATCH)
        .max_write_buffer_size(proto::MAX_WRITE_BUFFER)
        .max_message_size(Some(proto::SERVER_MAX_MESSAGE))
        .max_frame_size(Some(proto::SERVER_MAX_MESSAGE))
}

/// Error returned to hyper to drop a connection without any response (refused upgrades, `close` mode).
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// Answers an upgrade request; the socket itself runs in a spawned task.
pub fn upgrade(app: Arc<App>, mut req: Request<Incoming>) -> Result<Resp, DropConnection> {
    let refusing = app.faults.refusing();
    if refusing.is_some() {
        app.journal.record("", || ClientAct::UpgradeRefused);
    }
    match refusing {
        Some(RefuseMode::Close) => return Err(DropConnection),
        Some(RefuseMode::Http503) => {
            let body = serde_json::json!({
                "code": code::UNAVAILABLE,
                "message": "Connect failed with error: \"WebSocket upgrades are refused for now (fault injection)\"",
                "StatusCode": 503,
                "duration": "0.00ms",
                "more_info": "https://getstream.io/chat/docs/api_errors_response",
                "details": [],
            });
            return Ok(json_response(503, body.to_string()));
        }
        None => {}
    }
    let h = req.headers();
    let is_upgrade = req.method() == Method::GET
        && h.get("upgrade")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && h.get("sec-websocket-version").is_some_and(|v| v.as_bytes() == b"13");
    let key = h.get("sec-websocket-key").map(|k| k.as_bytes().to_vec());
    let (true, Some(key)) = (is_upgrade, key) else {
        let e = ApiError::new(
            code::INPUT,
            "/connect requires a WebSocket upgrade (GET, Upgrade: websocket, version 13)",
        );
        return Ok(error(&app, "Connect", &e));
    };
    let query = Query::parse(req.uri().query());
    let creds = credentials(&query, req.headers());
    let json = query.get("json").map(str::to_owned);
    let on_upgrade = hyper::upgrade::on(&mut req);
    drop(req);
    let app_tasks = app.tasks.clone();
    let socket = async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config())).await;
        run(app, ws, creds, json).await;
    };
    app_tasks.spawn(socket);
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let mut r = Response::new(Full::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = r.headers_mut();
    hs.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    hs.insert(http::header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        hs.insert("sec-websocket-accept", v);
    }
    Ok(r)
}

async fn run(app: Arc<App>, mut ws: Ws, creds: Credentials, json: Option<String>) {
    let connecting = match auth::connect(&app, &creds, json.as_deref()) {
        Ok(c) => c,
        Err(e) => return reject(&app, ws, &e).await,
    };
    drop((creds, json));
    if let Some(v) = app.rate.check(&connecting.user_id, "connect", wire::now_unix())
        && !v.allowed
    {
        Stats::bump(&app.stats.rate_limited);
        let e = ApiError::new(
            code::RATE_LIMIT,
            "Too many requests, check response headers for more information.",
        );
        return reject(&app, ws, &e).await;
    }
    let deactivated = {
        let mut w = app.world();
        let user = w.user_mut(&connecting.user_id);
        let deactivated = user.deactivated_at().is_some();
        if !deactivated && !app.violation(Violation::ConnectNoUpsert) {
            user.apply_upsert(&connecting.details);
        }
        deactivated
    };
    if deactivated {
        return reject(&app, ws, &auth::deactivated(&connecting.user_id)).await;
    }
    let conn = app.register(&connecting.user_id, Transport::WebSocket);
    let me = app.first_me(&conn.user);
    if let Some(d) = app.faults.first_frame_delay() {
        tokio::time::sleep(d).await;
    }
    let first = wire::health_check(&conn.id.to_string(), me.as_deref());
    if timed(app.cfg.write_timeout, ws.send(Message::Text(first.into())))
        .await
        .is_ok()
    {
        app.journal.record(&conn.user, || ClientAct::Connected {
            connection_id: conn.id.to_string(),
        });
        let kick_at = match app.cfg.expiry {
            ExpiryPolicy::Kick => connecting.exp.map(|exp| {
                wire::deadline(Duration::from_secs(
                    u64::try_from(exp.saturating_sub(wire::now_unix())).unwrap_or(0),
                ))
            }),
            ExpiryPolicy::Keep => None,
        };
        drop(connecting);
        let end = live(&app, &mut ws, &conn, kick_at).await;
        finish(&app, ws, end).await;
    }
    app.unregister(conn.id);
}

/// How a live socket ended.
enum End {
    /// The client closed, or the socket failed: nothing more to send.
    Gone,
    Kill(Kill),
    /// The client broke the protocol: close with this RFC 6455 code (1002 protocol error, 1007
    /// invalid UTF-8, 1009 too big), then drain what it still sends so the close frame is read.
    Broken(CloseCode, &'static str),
}

async fn live(app: &App, ws: &mut Ws, conn: &Arc<Conn>, kick_at: Option<Instant>) -> End {
    let cid = conn.id.to_string();
    let health = tokio::time::sleep_until(wire::deadline(health_interval(app)));
    tokio::pin!(health);
    let kick = tokio::time::sleep_until(kick_at.unwrap_or_else(Instant::now));
    tokio::pin!(kick);
    // Made once, not per turn of the loop: every socket's waiter sits in the one server-wide
    // token, and re-registering it on each frame took that shared lock twice per frame.
    let shutdown = app.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => return End::Kill(Kill::Shutdown),
            _ = conn.wait() => {
                if let Some(k) = conn.killed() {
                    return End::Kill(k);
                }
                // What the client sent first is read first: when many users leave at once, most
                // receivers of a `user.watching.stop` have already closed, and writing to them was
                // a send (a whole loopback delivery) each, to a socket nobody reads. Reading here
                // costs no system call when nothing has arrived.
                if let Some(msg) = ws.next().now_or_never()
                    && let Some(end) = on_read(app, ws, conn, &cid, msg).await
                {
                    return end;
                }
                let frames = conn.drain();
                if frames.is_empty() || app.faults.is_half_open(&conn.user) {
                    continue;
                }
                if let Some(d) = app.faults.frame_latency() {
                    tokio::time::sleep(d).await;
                }
                let batch = async {
                    for f in frames {
                        ws.feed(Message::Text(f)).await?;
                    }
                    ws.flush().await
                };
                if let Err(e) = timed(app.cfg.write_timeout, batch).await {
                    return write_failed(app, conn, &e);
                }
            }
            msg = ws.next() => {
                if let Some(end) = on_read(app, ws, conn, &cid, msg).await {
                    return end;
                }
            }
            _ = &mut health => {
                health.as_mut().reset(wire::deadline(health_interval(app)));
                if !app.faults.is_half_open(&conn.user) {
                    let tick = ws.send(Message::Text(wire::health_check(&cid, None).into()));
                    if let Err(e) = timed(app.cfg.write_timeout, tick).await {
                        return write_failed(app, conn, &e);
                    }
                }
            }
            _ = &mut kick, if kick_at.is_some() => return End::Kill(Kill::TokenExpired { revoked: false }),
        }
    }
}

/// One message (or the end) read from the client; `Some` when the socket's life is over.
async fn on_read(app: &App, ws: &mut Ws, conn: &Conn, cid: &str, msg: Option<Result<Message, WsError>>) -> Option<End> {
    let reply = match msg {
        None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
            app.journal.record(&conn.user, || ClientAct::Dropped);
            return Some(End::Gone);
        }
        Some(Err(WsError::Capacity(_))) => return Some(End::Broken(CloseCode::Size, "message too big")),
        Some(Err(WsError::Utf8(_))) => return Some(End::Broken(CloseCode::Invalid, "invalid UTF-8 in a text message")),
        Some(Err(WsError::Protocol(p))) if !matches!(p, ProtocolError::ResetWithoutClosingHandshake) => {
            app.journal.record(&conn.user, || ClientAct::Dropped);
            return Some(End::Broken(CloseCode::Protocol, protocol_reason(&p)));
        }
        Some(Err(_)) => {
            app.journal.record(&conn.user, || ClientAct::Dropped);
            return Some(End::Gone);
        }
        Some(Ok(Message::Text(t))) => match proto::parse_client_frame(&t) {
            ClientFrame::HealthCheck { .. } => {
                app.journal.record(&conn.user, || {
                    let (pascal_case, array) = journal::health_spelling(&t);
                    ClientAct::HealthCheck { pascal_case, array }
                });
                !app.violation(Violation::NoHealthReply)
            }
            ClientFrame::Other(_) => false,
            ClientFrame::Malformed(_) => {
                if let Err(e) = send_error_frame(ws, app, code::INPUT, "invalid json data").await {
                    return Some(write_failed(app, conn, &e));
                }
                false
            }
        },
        Some(Ok(Message::Binary(_))) => {
            if let Err(e) = send_error_frame(ws, app, code::INPUT, "binary frames are not supported").await {
                return Some(write_failed(app, conn, &e));
            }
            false
        }
        Some(Ok(Message::Ping(_))) => {
            app.journal.record(&conn.user, || ClientAct::Ping);
            !app.violation(Violation::NoPingReply)
        }
        Some(Ok(Message::Close(f))) => {
            app.journal
                .record(&conn.user, || ClientAct::Close(f.map(|f| u16::from(f.code))));
            // tungstenite queued the close reply; flushing sends it.
            let _ = timed(CLOSE_TIMEOUT, ws.flush()).await;
            return Some(End::Gone);
        }
        Some(Ok(_)) => false,
    };
    let reply = reply && !app.faults.is_half_open(&conn.user);
    let sent = if reply {
        timed(
            app.cfg.write_timeout,
            ws.send(Message::Text(wire::health_check(cid, None).into())),
        )
        .await
    } else {
        // Pushes out the automatic pong, if any.
        timed(app.cfg.write_timeout, ws.flush()).await
    };
    if let Err(e) = sent {
        return Some(write_failed(app, conn, &e));
    }
    None
}

/// How long a close frame may take to go out before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bounds a write: a client that stopped reading must not pin its task.
async fn timed(limit: Duration, write: impl Future<Output = Result<(), WsError>>) -> Result<(), WsError> {
    match tokio::time::timeout(limit, write).await {
        Ok(r) => r,
        Err(_) => Err(WsError::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// A failed write: a timeout makes the connection a (counted) slow consumer, anything else means
/// the client is gone.
fn write_failed(app: &App, conn: &Conn, e: &WsError) -> End {
    match e {
        WsError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            if conn.kill(Kill::SlowConsumer) {
                Stats::bump(&app.stats.slow_consumers_dropped);
            }
            End::Kill(Kill::SlowConsumer)
        }
        _ => End::Gone,
    }
}

fn health_interval(app: &App) -> Duration {
    if app.violation(Violation::HealthIntervalX2) {
        app.cfg.health_interval.saturating_mul(2)
    } else {
        app.cfg.health_interval
    }
}

async fn send_error_frame(ws: &mut Ws, app: &App, code: i32, detail: &str) -> Result<(), WsError> {
    let frame = wire::connection_error(code, detail, app.violation(Violation::IncompleteErrorBody));
    timed(app.cfg.write_timeout, ws.send(Message::Text(frame.into()))).await
}

async fn finish(app: &App, mut ws: Ws, end: End) {
    match end {
        End::Gone => {}
        End::Broken(code, reason) => {
            let _ = close(&mut ws, code, reason).await;
            // Read what the client is still sending, so our close frame is not lost to a reset.
            let drain = async {
                // On the heap: an array here would sit in every socket task's future.
                let mut buf = vec![0u8; 4096];
                let mut left: usize = 32 << 20;
                while let Ok(n @ 1..) = ws.get_mut().read(&mut buf).await {
                    left = left.saturating_sub(n);
                    if left == 0 {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(2), drain) => {}
                _ = app.shutdown.cancelled() => {}
            }
        }
        End::Kill(Kill::Close(code)) => {
            let _ = close(&mut ws, CloseCode::from(code), "closed by fault injection").await;
        }
        End::Kill(Kill::Abrupt) => {}
        End::Kill(Kill::SlowConsumer) => {
            let _ = close(&mut ws, CloseCode::Error, "slow consumer").await;
        }
        End::Kill(Kill::Shutdown) => {
            let _ = close(&mut ws, CloseCode::Away, "server shutting down").await;
        }
        End::Kill(Kill::TokenExpired { revoked }) => {
            let e = auth::expired_error(app, revoked);
            let _ = send_error_frame(&mut ws, app, e.code, &e.detail).await;
            close_after_error(app, ws).await;
        }
    }
}

/// The close reason of a protocol error (a static text: a close frame's reason is at most 123 bytes).
fn protocol_reason(p: &ProtocolError) -> &'static str {
    match p {
        ProtocolError::UnmaskedFrameFromClient => "unmasked frame from a client",
        ProtocolError::NonZeroReservedBits => "reserved bits set",
        ProtocolError::InvalidOpcode(_)
        | ProtocolError::UnknownControlFrameType(_)
        | ProtocolError::UnknownDataFrameType(_) => "unknown opcode",
        ProtocolError::ControlFrameTooBig => "control frame over 125 bytes",
        ProtocolError::FragmentedControlFrame => "fragmented control frame",
        _ => "protocol error",
    }
}

/// Sends a close frame, giving up after `CLOSE_TIMEOUT`.
async fn close(ws: &mut Ws, code: CloseCode, reason: &'static str) -> Result<(), WsError> {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    timed(CLOSE_TIMEOUT, ws.send(Message::Close(Some(frame)))).await
}

/// One error frame, then close 1000 (or a TCP drop under `error_close_1006`).
async fn reject(app: &App, mut ws: Ws, e: &ApiError) {
    Stats::bump(&app.stats.connect_rejected);
    if send_error_frame(&mut ws, app, e.code, &e.detail).await.is_err() {
        return;
    }
    close_after_error(app, ws).await;
}

async fn close_after_error(app: &App, mut ws: Ws) {
    if app.violation(Violation::ErrorClose1006) {
        return;
    }
    if close(&mut ws, CloseCode::Normal, "").await.is_err() {
        return;
    }
    // Wait briefly for the client's close reply so the handshake completes cleanly.
    let reply = async { while let Some(Ok(_)) = ws.next().await {} };
    tokio::select! {
        _ = tokio::time::timeout(Duration::from_secs(2), reply) => {}
        _ = app.shutdown.cancelled() => {}
    }
}
