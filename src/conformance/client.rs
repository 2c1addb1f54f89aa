//! The scripted client the conformance cases drive: a WebSocket to `/connect` built with
//! `chatstorm_protocol::connect` (its socket, and for `wss://` its TLS handshake with the run's
//! configuration, from [`crate::net::connect`]), and the harness's
//! [`crate::net::Client`] for REST and `/longpoll`. Every frame,
//! request and response goes to the case's [`WireLog`]. Deliberately small and explicit: a case
//! says exactly what goes on the wire, unlike the simulated user, which models an SDK.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use super::wire::WireLog;
use crate::net::{self, ClientOptions, ErrorKind};

/// A shared HTTP/1.1 client; `https` URLs go over the run's TLS configuration (without one they
/// fail with a clear error).
#[derive(Clone)]
pub struct Http {
    client: net::Client,
    tls: Option<net::Tls>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

/// One HTTP answer, kept whole for evidence.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub text: String,
    /// The body parsed as JSON, when it is.
    pub json: Option<Value>,
}

impl HttpReply {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body's `code`, when it is a JSON error body.
    pub fn code(&self) -> Option<i64> {
        self.json.as_ref()?.get("code")?.as_i64()
    }

    /// Status and body in one line for evidence.
    pub fn summary(&self) -> String {
        format!("HTTP {} {}", self.status, one_line(&self.text, 600))
    }
}

impl Http {
    /// A client whose idle connections live 10 s (a case's calls reuse them, the next case's
    /// users do not), bodies up to [`net::MAX_BODY`].
    pub fn new() -> Self {
        Self::with_tls(None)
    }

    /// [`Http::new`] speaking TLS to `https` URLs with the run's `tls`.
    pub fn with_tls(tls: Option<net::Tls>) -> Self {
        let client = net::Client::new(&ClientOptions {
            pool_idle_per_host: usize::MAX,
            pool_idle_timeout: Some(Duration::from_secs(10)),
            tls: tls.clone(),
            ..ClientOptions::default()
        });
        Self { client, tls }
    }

    /// Sends one request and logs it and its answer under `user`.
    ///
    /// # Errors
    /// A one-line description when the request cannot be sent or times out.
    pub async fn send(
        &self,
        log: &WireLog,
        user: &str,
        call: Call<'_>,
        timeout: Duration,
    ) -> Result<HttpReply, ClientError> {
        let Call {
            method,
            url,
            headers,
            body,
        } = call;
        if url.starts_with("https:") && self.tls.is_none() {
            return Err(ClientError::NoTls);
        }
        let body_text = body.map(Value::to_string).unwrap_or_default();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let method_ = http::Method::from_bytes(method.as_bytes()).map_err(|e| ClientError::BadRequest {
            call: format!("{method} {url}"),
            reason: e.to_string(),
        })?;
        log.push(user, '>', "http-req", &format!("{method} {} {body_text}", path_of(url)));
        let payload = body.map(|_| Bytes::from(body_text));
        match self.client.send(method_, url, &headers, payload, timeout).await {
            Ok(resp) => {
                let r = HttpReply::from(resp);
                let rl: Vec<String> = r
                    .headers
                    .iter()
                    .filter(|(k, _)| k.starts_with("x-ratelimit"))
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                let extra = if rl.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", rl.join(", "))
                };
                log.push(user, '<', "http-resp", &format!("{}{extra} {}", r.status, r.text));
                Ok(r)
            }
            Err(e) => {
                let call = format!("{method} {url}");
                let (tag, e) = match e.kind() {
                    ErrorKind::Timeout => (
                        "timeout",
                        ClientError::Timeout {
                            call: format!("{method} {}", path_of(url)),
                            timeout,
                        },
                    ),
                    ErrorKind::Request => (
                        "http-error",
                        ClientError::BadRequest {
                            call,
                            reason: e.detail().to_owned(),
                        },
                    ),
                    ErrorKind::Body | ErrorKind::BodyTooLong => (
                        "http-error",
                        ClientError::Body {
                            call,
                            reason: e.detail().to_owned(),
                        },
                    ),
                    _ => (
                        "http-error",
                        ClientError::Transport {
                            call,
                            reason: e.detail().to_owned(),
                        },
                    ),
                };
                log.push(user, '!', tag, &e.to_string());
                Err(e)
            }
        }
    }
}

impl From<net::Response> for HttpReply {
    fn from(resp: net::Response) -> Self {
        let headers = resp
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        let json = serde_json::from_str(&text).ok();
        Self {
            status: resp.status,
            headers,
            text,
            json,
        }
    }
}

/// Why a scripted request or frame could not be sent (one line, logged in the wire log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// An `https://` URL on a client without the run's TLS configuration.
    #[error("https targets need the run's TLS configuration, and this client has none")]
    NoTls,
    /// The request could not be built.
    #[error("bad request {call}: {reason}")]
    BadRequest {
        /// `METHOD url`.
        call: String,
        /// Why.
        reason: String,
    },
    /// No connection, or no response head.
    #[error("{call}: {reason}")]
    Transport {
        /// `METHOD url`.
        call: String,
        /// Why.
        reason: String,
    },
    /// The body could not be read, or was longer than [`net::MAX_BODY`].
    #[error("{call}: reading body: {reason}")]
    Body {
        /// `METHOD url`.
        call: String,
        /// Why.
        reason: String,
    },
    /// Nothing within the timeout.
    #[error("{call} got no answer within {timeout:?}")]
    Timeout {
        /// `METHOD path`.
        call: String,
        /// The timeout.
        timeout: Duration,
    },
    /// A WebSocket frame could not be sent (`what`: "a ping", ...).
    #[error("sending {0}: {1}")]
    WsSend(&'static str, String),
}

/// One HTTP request to send.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `GET`, `POST`, `PATCH`…
    pub method: &'a str,
    /// The full URL.
    pub url: &'a str,
    /// Extra headers.
    pub headers: &'a [(String, String)],
    /// A JSON body.
    pub body: Option<&'a Value>,
}

/// What the socket produced next.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    /// A text frame that parsed as JSON.
    Json(Value),
    /// A text frame that is not JSON.
    NonJson(String),
    /// A binary frame (servers must send text).
    Binary(usize),
    /// A close frame with its code (`None` when the frame had no code).
    Close(Option<u16>),
    /// The TCP stream ended or failed without a close frame (a client sees 1006).
    Ended(String),
    /// Nothing arrived in time.
    Timeout,
}

impl WsEvent {
    /// A short description for evidence.
    pub fn describe(&self) -> String {
        match self {
            WsEvent::Json(v) => one_line(&v.to_string(), 600),
            WsEvent::NonJson(t) => format!("non-JSON text frame {:?}", one_line(t, 200)),
            WsEvent::Binary(n) => format!("binary frame of {n} bytes"),
            WsEvent::Close(Some(c)) => format!("close frame with code {c}"),
            WsEvent::Close(None) => "close frame without a code".to_owned(),
            WsEvent::Ended(why) => format!("connection dropped without a close frame (1006): {why}"),
            WsEvent::Timeout => "nothing (timed out)".to_owned(),
        }
    }

    /// The JSON value, for text frames.
    pub fn json(&self) -> Option<&Value> {
        match self {
            WsEvent::Json(v) => Some(v),
            _ => None,
        }
    }
}

/// An open (or closed) WebSocket of one scripted user.
pub struct Ws {
    user: String,
    log: WireLog,
    stream: WebSocketStream<net::Stream>,
    done: bool,
}

/// Why an upgrade did not complete.
#[derive(Debug, Clone)]
pub struct UpgradeRefused {
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// A one-line description.
    pub detail: String,
}

impl Ws {
    /// Opens `url` (a full `ws://…/connect?…` URL, or `wss://` with the run's `tls`) with
    /// extra upgrade headers.
    ///
    /// # Errors
    /// [`UpgradeRefused`] when the upgrade does not complete within `timeout`.
    pub async fn open(
        log: &WireLog,
        user: &str,
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
        tls: Option<&net::Tls>,
    ) -> Result<Self, UpgradeRefused> {
        let refuse = |status, detail: String| {
            log.push(user, '!', "ws-upgrade-failed", &detail);
            UpgradeRefused { status, detail }
        };
        let tls = match (url.starts_with("wss:"), tls) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => {
                return Err(refuse(
                    None,
                    "wss targets need the run's TLS configuration, and this client has none".to_owned(),
                ));
            }
        };
        let mut req = url
            .into_client_request()
            .map_err(|e| refuse(None, format!("bad websocket url: {e}")))?;
        for (k, v) in headers {
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) else {
                return Err(refuse(None, format!("bad header {k}")));
            };
            req.headers_mut().insert(name, value);
        }
        let hdr_names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        log.push(
            user,
            '>',
            "ws-upgrade",
            &format!("GET {} headers={hdr_names:?}", readable(path_of(url))),
        );
        let connect = async {
            let uri = req.uri();
            let host = uri.host().unwrap_or_default();
            let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
            let io = |e: std::io::Error| tungstenite::Error::Io(e);
            let addrs = net::connect::addresses(host, port)
                .await
                .map_err(|e| io(std::io::Error::other(e)))?;
            let mut last = None;
            for addr in addrs {
                match net::connect::open(addr, None).await {
                    Ok(stream) => {
                        let stream =
                            match tls {
                                Some(tls) => net::connect::secure(stream, tls, host).await.map_err(|e| {
                                    match net::tls::rustls_error(&e) {
                                        Some(r) => io(std::io::Error::other(net::tls::reason(r))),
                                        None => io(e),
                                    }
                                })?,
                                None => stream,
                            };
                        return tokio_tungstenite::client_async(req, stream).await;
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(io(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into())))
        };
        match tokio::time::timeout(timeout, connect).await {
            Err(_) => Err(refuse(None, format!("upgrade not answered within {timeout:?}"))),
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err(refuse(
                    Some(status),
                    format!("upgrade answered HTTP {status} {}", one_line(&body, 300)),
                ))
            }
            Ok(Err(e)) => Err(refuse(None, format!("upgrade failed: {e}"))),
            Ok(Ok((stream, resp))) => {
                log.push(user, '<', "ws-upgraded", &format!("HTTP {}", resp.status().as_u16()));
                Ok(Self {
                    user: user.to_owned(),
                    log: log.clone(),
                    stream,
                    done: false,
                })
            }
        }
    }

    /// The next frame, answering nothing automatically except the library's pong.
    pub async fn next(&mut self, timeout: Duration) -> WsEvent {
        if self.done {
            return WsEvent::Ended("socket already closed".to_owned());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(m) => m,
            };
            let ev = match msg {
                None => WsEvent::Ended("stream ended".to_owned()),
                Some(Err(e)) => WsEvent::Ended(e.to_string()),
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Value>(t.as_str()) {
                    Ok(v) => {
                        self.log.push(&self.user, '<', "ws-text", t.as_str());
                        return WsEvent::Json(v);
                    }
                    Err(_) => {
                        self.log.push(&self.user, '<', "ws-text", t.as_str());
                        return WsEvent::NonJson(t.as_str().to_owned());
                    }
                },
                Some(Ok(Message::Binary(b))) => {
                    self.log
                        .push(&self.user, '<', "ws-binary", &format!("{} bytes", b.len()));
                    return WsEvent::Binary(b.len());
                }
                Some(Ok(Message::Ping(_))) => {
                    self.log.push(&self.user, '<', "ws-ping", "");
                    continue;
                }
                Some(Ok(Message::Pong(_))) => {
                    self.log.push(&self.user, '<', "ws-pong", "");
                    continue;
                }
                Some(Ok(Message::Frame(_))) => continue,
                Some(Ok(Message::Close(cf))) => WsEvent::Close(cf.map(|c| u16::from(c.code))),
            };
            self.done = true;
            self.log.push(&self.user, '<', "ws-end", &ev.describe());
            return ev;
        }
    }

    /// Reads frames until one satisfies `pred`; returns it, or the event that ended the wait.
    ///
    /// # Errors
    /// The close, drop or timeout that came first, described.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value, WsEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                WsEvent::Json(v) if pred(&v) => return Ok(v),
                WsEvent::Json(_) | WsEvent::NonJson(_) | WsEvent::Binary(_) => {}
                other => return Err(other),
            }
        }
    }

    /// Reads frames until the first of `type` `kind`.
    ///
    /// # Errors
    /// As [`Ws::wait_for`].
    pub async fn wait_type(&mut self, timeout: Duration, kind: &str) -> Result<Value, WsEvent> {
        self.wait_for(timeout, |v| event_type(v) == Some(kind)).await
    }

    /// Sends a text frame.
    ///
    /// # Errors
    /// When the socket is gone.
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.log.push(&self.user, '>', "ws-text", text);
        self.stream
            .send(Message::text(text))
            .await
            .map_err(|e| ClientError::WsSend("a text frame", e.to_string()))
    }

    /// Sends a ping control frame.
    ///
    /// # Errors
    /// When the socket is gone.
    pub async fn send_ping(&mut self) -> Result<(), ClientError> {
        self.log.push(&self.user, '>', "ws-ping", "");
        self.stream
            .send(Message::Ping(Bytes::from_static(b"chatstorm")))
            .await
            .map_err(|e| ClientError::WsSend("a ping", e.to_string()))
    }

    /// Starts a close handshake with `code` (the caller reads the echo with [`Ws::next`]).
    ///
    /// # Errors
    /// When the socket is gone.
    pub async fn send_close(&mut self, code: u16, reason: &str) -> Result<(), ClientError> {
        self.log.push(&self.user, '>', "ws-close", &format!("{code} {reason}"));
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        self.stream
            .send(Message::Close(Some(frame)))
            .await
            .map_err(|e| ClientError::WsSend("a close frame", e.to_string()))
    }

    /// Drops the TCP connection without a close frame (what a lost network looks like).
    pub fn drop_abruptly(self) {
        self.log.push(
            &self.user,
            '>',
            "ws-drop",
            "TCP connection dropped without a close frame",
        );
        drop(self.stream);
    }
}

/// The `type` of an event object.
pub fn event_type(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

/// The path and query of a URL (the log does not need the host).
pub fn path_of(url: &str) -> &str {
    url.find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..]))
        .unwrap_or(url)
}

/// A path with its query form-decoded (`json=%7B…` shown as `json={…}`), for the log only.
fn readable(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    let pairs: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{path}?{}", pairs.join(" "))
}

/// `text` on one line, cut at `max` bytes.
pub fn one_line(text: &str, max: usize) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_one_line() {
        assert_eq!(path_of("ws://127.0.0.1:9/connect?x=1"), "/connect?x=1");
        assert_eq!(path_of("nourl"), "nourl");
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("ééé", 3), "é…");
    }
}
