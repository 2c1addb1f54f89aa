//! The two transports of a user, as single async steps the driver runs one at a time: the
//! WebSocket connect (a [`crate::net::connect::open`] socket from a round-robin loopback source
//! address, the TLS handshake for a `wss://` target, small-buffer
//! `WebSocketConfig`, upgrade as the profile builds it, then the first frame read: `health.check`
//! or an error frame and the close that follows), and the JS long-poll connect, poll and close.

use super::http::{self, ErrorKind, HttpClient, Lane, StreamAuth};
use super::machine::{Failure, FailureKind};
use super::profile::{LONGPOLL_CONNECT_TIMEOUT, LONGPOLL_POLL_TIMEOUT};
use super::upgrade;
use crate::net;
use chatstorm_protocol::connect::{AuthType, ConnectPayload, build_connect_request};
use chatstorm_protocol::event::ServerEvent;
use chatstorm_protocol::limits;
use futures_util::StreamExt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// A live WebSocket.
pub type Ws = WebSocketStream<super::metered::Metered<net::Stream>>;

/// How long to wait for the close that follows an error frame.
const CLOSE_AFTER_ERROR: Duration = Duration::from_secs(2);

/// The client `WebSocketConfig` of PROTOCOL limits: 512-byte read buffer, no write buffering,
/// bounded queue and message size.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits::CLIENT_READ_BUFFER)
        .write_buffer_size(limits::WRITE_BUFFER)
        .max_write_buffer_size(limits::MAX_WRITE_BUFFER)
        .max_message_size(Some(limits::CLIENT_MAX_MESSAGE))
        .max_frame_size(Some(limits::CLIENT_MAX_MESSAGE))
}

/// The first frame's verdict.
pub struct Opened {
    /// The socket.
    pub ws: Box<Ws>,
    /// The server's connection id.
    pub connection_id: String,
}

/// A WebSocket connect for `payload` as `profile` sends it: TCP (bound to `source`), the TLS
/// handshake with `tls` for a `wss://` base, upgrade, then the first frame. Failures without an API error are [`Failure::Network`] with their
/// [`FailureKind`] (refused, reset, upgrade answered with another status, a first frame that is
/// not JSON or not a protocol event, a timeout and its phase); an error frame is
/// [`Failure::Api`] with the close code that followed it; a refused handshake is
/// [`FailureKind::Tls`]. `upgrade_timeout` bounds the TCP connect, the handshake and the upgrade; `deadline` is the whole attempt's (the machine's own timer
/// is the backstop, this one names the phase).
#[allow(clippy::too_many_arguments)]
pub async fn connect_ws(
    ws_base: &url::Url,
    server: SocketAddr,
    source: Option<IpAddr>,
    tls: Option<&net::Tls>,
    api_key: &str,
    token: &str,
    payload: &ConnectPayload,
    profile: chatstorm_protocol::Profile,
    rec: &crate::metrics::Recorder,
    upgrade_timeout: Option<Duration>,
    deadline: Option<Instant>,
) -> Result<Opened, Failure> {
    // Running out of descriptors or local ports is the generator's failure, not the server's:
    // counted apart so the run can be declared invalid (exit 4).
    let local = |e: std::io::Error| {
        let kind = FailureKind::of_io(&e);
        if kind == FailureKind::Resource {
            rec.count(crate::metrics::Counter::ResourceFailures);
        }
        Failure::Network(kind)
    };
    let req = build_connect_request(profile, api_key, token, AuthType::Jwt, payload);
    // Host and target straight from the base: the request is built per attempt (JS's URL carries
    // a new client_request_id each time), so no URL is joined and parsed again for it.
    let host = upgrade::host_header(ws_base).map_err(|_| Failure::Network(FailureKind::Local))?;
    let target = upgrade::target_under(ws_base, &req.path_and_query);
    // The phase a timeout hit is told apart: TCP connect, upgrade, then the first frame (bounded
    // by the caller's deadline for the whole attempt).
    let upgrade_deadline = upgrade_timeout.map(|d| Instant::now() + d);
    let bounded = |until: Option<Instant>| match (until, deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // Each phase that completes is recorded as its own histogram (connect.tcp, connect.tls,
    // connect.upgrade, connect.first_frame), so a slow connect says where its time went.
    let mut phase = Instant::now();
    let mut phase_done = |metric: crate::metrics::Metric| {
        let now = Instant::now();
        rec.record(metric, now - phase);
        phase = now;
    };
    let stream = within(
        bounded(upgrade_deadline),
        FailureKind::TimeoutTcp,
        net::connect::open(server, source),
    )
    .await?
    .map_err(local)?;
    phase_done(crate::metrics::Metric::ConnectTcp);
    let stream = if ws_base.scheme() == "wss" {
        let tls = tls.ok_or(Failure::Network(FailureKind::Local))?;
        let name = ws_base.host_str().unwrap_or_default();
        let secured = within(
            bounded(upgrade_deadline),
            FailureKind::TimeoutTls,
            net::connect::secure(stream, tls, name),
        )
        .await?
        .map_err(|e| {
            if net::tls::rustls_error(&e).is_some() {
                Failure::Network(FailureKind::Tls)
            } else {
                local(e)
            }
        })?;
        phase_done(crate::metrics::Metric::ConnectTls);
        count_handshake(rec, &secured);
        secured
    } else {
        stream
    };
    let mut ws = within(
        bounded(upgrade_deadline),
        FailureKind::TimeoutUpgrade,
        upgrade::upgrade(stream, &host, &target, &req.headers, ws_config()),
    )
    .await?
    .map_err(|e| Failure::Network(upgrade_kind(&e)))?;
    phase_done(crate::metrics::Metric::ConnectUpgrade);
    let first = async {
        loop {
            match super::metered::next_message(&mut ws).await {
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                // Binary, or bytes tungstenite cannot parse as frames (random bytes): not the
                // protocol's first frame.
                Some(Ok(Message::Binary(_)))
                | Some(Err(
                    tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) | tungstenite::Error::Capacity(_),
                )) => return Err(Failure::Network(FailureKind::NotJson)),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Err(Failure::Network(FailureKind::Reset)),
            }
        }
    };
    let text = within(deadline, FailureKind::TimeoutFirstFrame, first).await??;
    match ServerEvent::parse(text.as_str()) {
        Ok(ServerEvent::HealthCheck(h)) if !h.connection_id.is_empty() => {
            phase_done(crate::metrics::Metric::ConnectFirstFrame);
            Ok(Opened {
                ws: Box::new(ws),
                connection_id: h.connection_id,
            })
        }
        Ok(ServerEvent::ConnectionError(e)) => {
            let close = close_code_after_error(&mut ws).await;
            Err(Failure::Api {
                code: e.error.code,
                close,
            })
        }
        // Anything else first is a broken server, not an API error: JSON of another shape, or no
        // JSON at all.
        _ if serde_json::from_str::<serde::de::IgnoredAny>(text.as_str()).is_ok() => {
            Err(Failure::Network(FailureKind::NotProtocol))
        }
        _ => Err(Failure::Network(FailureKind::NotJson)),
    }
}

/// Counts a finished TLS handshake as resumed or full (`users.tls.resumption`).
pub fn count_handshake(rec: &crate::metrics::Recorder, stream: &net::Stream) {
    match stream.resumed() {
        Some(true) => rec.count(crate::metrics::Counter::TlsResumedHandshakes),
        Some(false) => rec.count(crate::metrics::Counter::TlsFullHandshakes),
        None => {}
    }
}

/// `fut` bounded by `until` (none: unbounded); a timeout is `Failure::Network(kind)`.
async fn within<T>(until: Option<Instant>, kind: FailureKind, fut: impl Future<Output = T>) -> Result<T, Failure> {
    match until {
        Some(t) => tokio::time::timeout_at(t, fut)
            .await
            .map_err(|_| Failure::Network(kind)),
        None => Ok(fut.await),
    }
}

/// The cause of a failed upgrade.
fn upgrade_kind(e: &upgrade::UpgradeError) -> FailureKind {
    match e {
        upgrade::UpgradeError::Io(io) => FailureKind::of_io(io),
        upgrade::UpgradeError::Rejected(status) => FailureKind::Status(*status),
        upgrade::UpgradeError::Malformed(_) => FailureKind::BadUpgrade,
    }
}

async fn close_code_after_error(ws: &mut Ws) -> Option<u16> {
    let wait = async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(CLOSE_AFTER_ERROR, wait).await.ok().flatten()
}

/// Closes a socket with a close frame, waiting at most a second for the handshake.
pub async fn close_ws(mut ws: Box<Ws>, code: u16) {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let frame = CloseFrame {
        code: code.into(),
        reason: "".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
}

/// Lets go of a socket at the end of the run, without a close frame: nobody measures that close,
/// and at 10,000 users the handshake was a send for each user, a read and a reply for each in the
/// server, and a FIN exchange on top. A zero linger makes the drop a reset, so the server's
/// last writes to this user (the `user.watching.stop` of the other members leaving at the same
/// moment) fail at once instead of each crossing to a socket nobody reads. A user told to leave
/// by the scenario still closes with [`close_ws`], as its SDK does.
pub fn abandon_ws(ws: Box<Ws>) {
    if let net::Stream::Plain(tcp) = ws.get_ref().get_ref() {
        let _ = tcp.set_zero_linger();
    }
    drop(ws);
}

/// The long-poll connect: `GET /longpoll?json=...` answered by `{"event": <health.check>}`.
/// Returns the connection id; an error body is [`Failure::Api`], the rest [`Failure::Network`]
/// with its kind (a status, a body that is not JSON or has no connection id, a transport error).
pub async fn longpoll_connect(
    client: &HttpClient,
    base: &url::Url,
    auth: StreamAuth<'_>,
    payload: &ConnectPayload,
) -> Result<String, Failure> {
    let json = serde_json::to_string(payload).map_err(|_| Failure::Network(FailureKind::Local))?;
    let url = auth.url(base, "/longpoll", &[("json", &json)]);
    let resp = http::send_on(
        client,
        Lane::Hold,
        ::http::Method::GET,
        &url,
        &auth.headers(),
        None,
        LONGPOLL_CONNECT_TIMEOUT,
    )
    .await
    .result
    .map_err(|e| Failure::Network(http_kind(&e)))?;
    if let Some(code) = resp.error_code() {
        return Err(Failure::Api { code, close: None });
    }
    if !(200..300).contains(&resp.status) {
        return Err(Failure::Network(FailureKind::Status(resp.status)));
    }
    let Some(body) = resp.json() else {
        return Err(Failure::Network(FailureKind::NotJson));
    };
    body.get("event")
        .and_then(|e| e.get("connection_id")?.as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or(Failure::Network(FailureKind::NotProtocol))
}

/// The cause of a failed HTTP exchange, from the client's classification.
fn http_kind(e: &http::HttpError) -> FailureKind {
    match e.kind() {
        ErrorKind::Timeout => FailureKind::TimeoutUpgrade,
        ErrorKind::ConnectTimeout => FailureKind::TimeoutTcp,
        ErrorKind::Saturated | ErrorKind::Local => FailureKind::Resource,
        ErrorKind::Refused => FailureKind::Refused,
        ErrorKind::Dns => FailureKind::Dns,
        ErrorKind::Tls => FailureKind::Tls,
        ErrorKind::Request => FailureKind::Local,
        ErrorKind::Reset | ErrorKind::Body | ErrorKind::BodyTooLong => FailureKind::Reset,
    }
}

/// How a poll ended.
#[derive(Debug)]
pub enum PollResult {
    /// The events of the batch, in order.
    Events(Vec<serde_json::Value>),
    /// An API error body.
    Api(i32),
    /// Timeout or transport failure.
    Network,
}

/// One poll: `GET /longpoll?connection_id=...`, 30 s client timeout.
pub async fn longpoll_poll(client: &HttpClient, base: &url::Url, auth: StreamAuth<'_>) -> PollResult {
    let url = auth.url(base, "/longpoll", &[]);
    match http::send_on(
        client,
        Lane::Hold,
        ::http::Method::GET,
        &url,
        &auth.headers(),
        None,
        LONGPOLL_POLL_TIMEOUT,
    )
    .await
    .result
    {
        Err(_) => PollResult::Network,
        Ok(r) => match r.error_code() {
            Some(code) => PollResult::Api(code),
            None if r.status >= 400 => PollResult::Network,
            None => match r.json() {
                Some(serde_json::Value::Object(mut o)) => match o.remove("events") {
                    Some(serde_json::Value::Array(events)) => PollResult::Events(events),
                    _ => PollResult::Events(Vec::new()),
                },
                _ => PollResult::Network,
            },
        },
    }
}

/// Ends a long-poll connection: `GET /longpoll?close=true&connection_id=...` (no `user_id`, as JS).
pub async fn longpoll_close(client: &HttpClient, base: &url::Url, auth: StreamAuth<'_>) {
    let auth = StreamAuth { user_id: "", ..auth };
    let url = auth.url(base, "/longpoll", &[("close", "true")]);
    let _ = http::send_on(
        client,
        Lane::Hold,
        ::http::Method::GET,
        &url,
        &auth.headers(),
        None,
        Duration::from_secs(2),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_uses_the_protocol_limits() {
        let c = ws_config();
        assert_eq!(c.read_buffer_size, limits::CLIENT_READ_BUFFER);
        assert_eq!(c.write_buffer_size, 0);
        assert_eq!(c.max_message_size, Some(limits::CLIENT_MAX_MESSAGE));
    }
}
