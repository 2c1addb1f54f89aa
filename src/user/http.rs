//! The HTTP side of a user: one shared hyper client (bounded idle pool) for every user of the
//! process, and the REST request a Stream SDK sends: `api_key`, `user_id` and `connection_id` in
//! the query, the raw token in `Authorization`, `stream-auth-type` and `X-Stream-Client` headers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The shared client: clone it freely (one pool and one in-flight limit behind `Arc`s).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    in_flight: Arc<Semaphore>,
}

/// Idle connections kept per host: REST traffic reuses a few hundred sockets instead of one per user.
pub const POOL_IDLE_PER_HOST: usize = 256;

/// Requests in flight at once across all users: bounds the sockets REST can open (the pool alone
/// only bounds idle ones) and the memory they hold (about 36 KB each with hyper's buffers, so
/// 1,024 in flight during a connect burst cost more than 3,000 idle users). Waiting for a slot
/// counts in the request's time and timeout, so a saturated generator shows in `rest.*` rather
/// than hiding.
pub const MAX_IN_FLIGHT: usize = 256;

/// Largest response body read; larger bodies are cut off (a user never needs more).
pub const MAX_BODY: usize = 1 << 20;

/// A client for REST and token calls: HTTP/1, no TLS (the harness talks to loopback or a proxy).
pub fn new_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    HttpClient {
        inner: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
    }
}

/// How an HTTP call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No answer in time.
    Timeout,
    /// Connect or transfer failed.
    Io(String),
    /// The request could not be built (bad URL).
    Request(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
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

/// Sends one request and reads the answer within `timeout`.
///
/// # Errors
/// [`HttpError`] on timeout, transport failure or a URL that cannot be a request.
pub async fn send(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| HttpError::Request(e.to_string()))?;
    let call = async {
        let _slot = client
            .in_flight
            .acquire()
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?;
        let resp = client
            .inner
            .request(req)
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_BODY);
        let body = limited
            .collect()
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?
            .to_bytes();
        Ok(Response { status, body })
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| HttpError::Timeout)?
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
