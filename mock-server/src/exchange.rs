//! Owns what every HTTP handler shares, below the router and the handlers alike: the parsed
//! request (`Req`, its form-decoded `Query`, the credentials it carries), reading a body bounded
//! in size, in time and by the server-wide budget of unfinished bodies, and the answers
//! (`Resp`, JSON success and error bodies, the answer to a body that could not be read).
//! Handlers import this module and never `http`, so the router is the only module that knows
//! them all.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;

use crate::app::App;
use crate::auth::{ApiError, Credentials};
use crate::fault::Violation;
use crate::wire::{self, code};

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

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
