//! The HTTP side of a user, with two lanes, as a browser or mobile app has: REST calls go
//! through one shared hyper client (bounded idle pool) with a cap on calls in flight, and held
//! requests (long-poll connects and polls) through a second client with no cap, because a poll is
//! a connection a user holds, as a WebSocket is: a real client never queues one user's REST call
//! behind another user's poll. The REST cap only exists to keep the harness inside its own
//! descriptors; any wait for a slot is the generator's queue, recorded as `generator.queue` and
//! never as the server's `rest.*` latency, and a call that cannot get a slot within its timeout is
//! counted apart (`generator_queue_timeouts`) and feeds the generator-honesty verdict.
//! Also the REST request a Stream SDK sends: `api_key`, `user_id` and `connection_id` in the query,
//! the raw token in `Authorization`, `stream-auth-type` and `X-Stream-Client` headers.

use super::record::{Counter, Metric, Recorder};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The shared client: clone it freely (pools and the slot limit behind `Arc`s).
#[derive(Clone)]
pub struct HttpClient {
    rest: Client<HttpConnector, Full<Bytes>>,
    hold: Client<HttpConnector, Full<Bytes>>,
    slots: Arc<Semaphore>,
    recorder: Option<Recorder>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

/// Which of the two lanes a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A REST or token call: needs one of the harness's request slots; the wait is measured apart.
    Rest,
    /// A held request (long-poll connect and poll): the user's own connection, never queued.
    Hold,
}

/// Idle connections kept per host and lane: REST traffic reuses a few hundred sockets instead of
/// one per user.
pub const POOL_IDLE_PER_HOST: usize = 256;

/// The default REST slots when the engine gives none (tests, tools): enough that a test never
/// queues; the engine sizes the real number from the descriptors left (see [`rest_slots`]).
pub const DEFAULT_SLOTS: usize = 1024;

/// Most REST calls in flight at once, whatever the descriptor headroom: each in-flight hyper
/// connection holds about 36 KB of buffers, so 4,096 of them cost about 150 MB at worst.
pub const MAX_SLOTS: usize = 4096;

/// The fewest REST slots a run gets, even when its users take (nearly) every descriptor.
pub const MIN_SLOTS: usize = 64;

/// REST slots for a process with `fd_limit` descriptors running `users` users whose sockets (and
/// the embedded mock's, when it runs in this process) take `fds_per_user` each: what is left
/// after them and a reserve, clamped to [`MIN_SLOTS`]..=[`MAX_SLOTS`]. A call in flight to an
/// in-process mock takes two descriptors.
pub fn rest_slots(fd_limit: u64, users: u64, fds_per_user: u64) -> usize {
    let used = users.saturating_mul(fds_per_user) + crate::sys::RESERVED_FDS;
    let free = fd_limit.saturating_sub(used) / fds_per_user.max(1);
    (free as usize).clamp(MIN_SLOTS, MAX_SLOTS)
}

/// Largest response body read; larger bodies are cut off (a user never needs more).
pub const MAX_BODY: usize = 1 << 20;

fn pooled() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// A client for REST and token calls with [`DEFAULT_SLOTS`] and no recorder (tests, tools).
pub fn new_client() -> HttpClient {
    HttpClient::new(DEFAULT_SLOTS, None)
}

impl HttpClient {
    /// A client whose REST lane has `slots` calls in flight at most; slot waits and slot timeouts
    /// go to `recorder` (`generator.queue`, `generator_queue_timeouts`).
    pub fn new(slots: usize, recorder: Option<Recorder>) -> Self {
        Self {
            rest: pooled(),
            hold: pooled(),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            recorder,
        }
    }
}

/// How an HTTP call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No answer in time.
    Timeout,
    /// The harness had no free request slot within the call's timeout: the generator's failure,
    /// the request never left.
    Saturated,
    /// Connect or transfer failed.
    Io(String),
    /// The request could not be built (bad URL).
    Request(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::Saturated => f.write_str("no free request slot in the harness (generator saturated)"),
            Self::Io(e) => write!(f, "transport error: {e}"),
            Self::Request(e) => write!(f, "bad request: {e}"),
        }
    }
}

/// A response: status and body (at most [`MAX_BODY`] bytes).
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Bytes,
}

impl Response {
    /// The Stream error code of an error body, if the body is one.
    pub fn error_code(&self) -> Option<i32> {
        if self.status < 400 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("code")?.as_i64().and_then(|c| i32::try_from(c).ok())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A request that went out: the response (or why there was none) and when it left the harness,
/// so that callers measure the server's time from `sent`, not from before a slot wait.
#[derive(Debug)]
pub struct Sent {
    /// The answer.
    pub result: Result<Response, HttpError>,
    /// When the request left (after any slot wait).
    pub sent: Instant,
}

/// Sends one request on `lane` and reads the answer within `timeout` (counted from when the
/// request leaves, after any wait for a REST slot; the slot wait itself is bounded by `timeout`
/// too and then fails with [`HttpError::Saturated`]).
pub async fn send_on(
    client: &HttpClient,
    lane: Lane,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Sent {
    let queued = Instant::now();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    let req = match req.body(Full::new(Bytes::from(body.unwrap_or_default()))) {
        Ok(r) => r,
        Err(e) => {
            return Sent {
                result: Err(HttpError::Request(e.to_string())),
                sent: queued,
            };
        }
    };
    let (_slot, inner) = match lane {
        Lane::Hold => (None, &client.hold),
        Lane::Rest => {
            let slot = match client.slots.clone().try_acquire_owned() {
                Ok(s) => Some(s),
                Err(_) => match tokio::time::timeout(timeout, client.slots.clone().acquire_owned()).await {
                    Ok(Ok(s)) => Some(s),
                    _ => {
                        if let Some(r) = &client.recorder {
                            r.record(Metric::GeneratorQueue, queued.elapsed());
                            r.count(Counter::GeneratorQueueTimeouts);
                        }
                        return Sent {
                            result: Err(HttpError::Saturated),
                            sent: Instant::now(),
                        };
                    }
                },
            };
            if let Some(r) = &client.recorder {
                r.record(Metric::GeneratorQueue, queued.elapsed());
            }
            (slot, &client.rest)
        }
    };
    let sent = Instant::now();
    let call = async {
        let resp = inner.request(req).await.map_err(|e| HttpError::Io(e.to_string()))?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_BODY);
        let body = limited
            .collect()
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?
            .to_bytes();
        Ok(Response { status, body })
    };
    let result = tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(HttpError::Timeout));
    Sent { result, sent }
}

/// [`send_on`] the REST lane, returning only the result.
///
/// # Errors
/// [`HttpError`] on timeout, saturation, transport failure or a URL that cannot be a request.
pub async fn send(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    send_on(client, Lane::Rest, method, url, headers, body, timeout).await.result
}

/// A header name from a string (the protocol crate names headers as strings).
///
/// # Errors
/// When the name is not a valid header name.
pub fn header_name(name: &str) -> Result<::http::HeaderName, ::http::header::InvalidHeaderName> {
    ::http::HeaderName::from_bytes(name.as_bytes())
}

/// The Stream query and headers every REST call of a user carries.
#[derive(Debug, Clone, Copy)]
pub struct StreamAuth<'a> {
    /// The API key.
    pub api_key: &'a str,
    /// The user id.
    pub user_id: &'a str,
    /// The connection id of the live connection (needed to watch).
    pub connection_id: &'a str,
    /// The raw JWT.
    pub token: &'a str,
    /// `X-Stream-Client`.
    pub user_agent: &'a str,
}

impl StreamAuth<'_> {
    /// `base` + `path` + the Stream query (`extra` pairs appended, e.g. long-poll's `json`).
    pub fn url(&self, base: &url::Url, path: &str, extra: &[(&str, &str)]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("api_key", self.api_key);
        if !self.user_id.is_empty() {
            q.append_pair("user_id", self.user_id);
        }
        if !self.connection_id.is_empty() {
            q.append_pair("connection_id", self.connection_id);
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        format!("{}{path}?{}", base.as_str().trim_end_matches('/'), q.finish())
    }

    /// The auth headers.
    pub fn headers(&self) -> [(&str, &str); 3] {
        [
            ("Authorization", self.token),
            ("stream-auth-type", "jwt"),
            ("X-Stream-Client", self.user_agent),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_carries_the_stream_query() {
        let a = StreamAuth {
            api_key: "k",
            user_id: "u-1",
            connection_id: "c 1",
            token: "t",
            user_agent: "ua",
        };
        let base: url::Url = "http://127.0.0.1:9/api/".parse().unwrap();
        assert_eq!(
            a.url(&base, "/channels", &[("x", "y")]),
            "http://127.0.0.1:9/api/channels?api_key=k&user_id=u-1&connection_id=c+1&x=y"
        );
        assert_eq!(a.headers()[0], ("Authorization", "t"));
    }

    #[test]
    fn error_codes_come_from_error_bodies_only() {
        let r = |status, body: &'static str| Response {
            status,
            body: Bytes::from(body),
        };
        assert_eq!(r(401, r#"{"code":40}"#).error_code(), Some(40));
        assert_eq!(r(200, r#"{"code":40}"#).error_code(), None);
        assert_eq!(r(502, "<html>").error_code(), None);
    }
}
