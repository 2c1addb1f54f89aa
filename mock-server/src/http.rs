//! Owns the HTTP side: the accept loop (hyper http1 with upgrades), request parsing (form-decoded
//! query, headers, a size-limited body), routing, JSON responses and error bodies, the rate-limit
//! headers and the injected request latency.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::app::App;
use crate::auth::{ApiError, Credentials};
use crate::fault::Violation;
use crate::stats::Stats;
use crate::wire::{self, code};
use crate::{control, longpoll, rest, ws};

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

/// Accepts connections until `app.shutdown` fires. Accept errors (e.g. out of descriptors) are
/// retried after a short pause instead of ending the server.
pub async fn accept_loop(listener: TcpListener, app: Arc<App>) -> std::io::Result<()> {
    loop {
        let accepted = tokio::select! {
            _ = app.shutdown.cancelled() => return Ok(()),
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                tokio::select! {
                    _ = app.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc_app = app.clone();
            let svc = service_fn(move |req| {
                let app = svc_app.clone();
                async move { route(app, req).await }
            });
            let conn = http1::Builder::new()
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = app.shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
}

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

async fn route(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, ws::DropConnection> {
    Stats::bump(&app.stats.http_requests);
    let path = req.uri().path().to_owned();
    if path.starts_with("/_fault") {
        return Ok(control::http(&app, req).await);
    }
    if let Some(d) = app.faults.request_latency() {
        tokio::time::sleep(d).await;
    }
    if path == "/connect" {
        return ws::upgrade(app, req);
    }
    let start = wire::now_nanos();
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, app.cfg.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = ApiError::new(
                code::PAYLOAD_TOO_BIG,
                format!("request body over {} bytes", app.cfg.max_body_bytes),
            );
            return Ok(error(&app, "Request", &e));
        }
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
    if app.rate.enabled() && !app.violation(Violation::NoRateLimitHeaders) {
        if let Some(v) = verdict.or_else(|| app.rate.peek(wire::now_unix())) {
            let h = resp.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from(v.limit));
            h.insert("x-ratelimit-remaining", HeaderValue::from(v.remaining));
            h.insert("x-ratelimit-reset", HeaderValue::from(v.reset));
        }
    }
    Ok(resp)
}
