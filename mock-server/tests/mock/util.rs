//! Test helpers: start a mock on 127.0.0.1:0, mint tokens, open sockets the way the SDKs do, read
//! frames with deadlines, and call REST and fault-control endpoints with a plain hyper client.

#![allow(dead_code)]

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use chatstorm_mock::{MockConfig, MockHandle};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "test_key";
pub const SECRET: &str = "test_secret";
/// The fault-control secret: its own, not the app secret.
pub const FAULT_SECRET: &str = "test_fault_secret";
/// Generous: the tests run on two loaded cores.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn config() -> MockConfig {
    MockConfig {
        api_key: KEY.into(),
        secret: SECRET.into(),
        fault_secret: FAULT_SECRET.into(),
        health_interval: Duration::from_secs(600),
        longpoll_hold: Duration::from_secs(5),
        ..MockConfig::default()
    }
}

pub async fn start() -> MockHandle {
    start_with(config()).await
}

pub async fn start_with(cfg: MockConfig) -> MockHandle {
    chatstorm_mock::start(cfg).await.expect("bind 127.0.0.1:0")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// An HS256 token with arbitrary (even ill-typed) claims, signed with the test secret.
pub fn token(claims: Value) -> String {
    sign_with(&claims, SECRET)
}

/// An HS256 token signed with `secret`, built by hand so tests can forge any claims.
pub fn sign_with(claims: &Value, secret: &str) -> String {
    use hmac::Mac;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!(
        "{}.{}",
        e.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        e.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", e.encode(mac.finalize().into_bytes()))
}

pub fn user_token(user: &str) -> String {
    token(json!({ "user_id": user }))
}

pub fn server_token() -> String {
    token(json!({ "server": true }))
}

/// A token with `alg: none` and no signature.
pub fn alg_none_token(user: &str) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        e.encode(br#"{"alg":"none","typ":"JWT"}"#),
        e.encode(json!({"user_id": user}).to_string())
    )
}

/// The JS SDK's `/connect` query.
pub fn connect_query(user: &str, token: &str, details: Value) -> String {
    let payload =
        json!({"user_id": user, "user_details": details, "client_request_id": "7f0c1a2e-0000-4000-8000-000000000001"});
    form_urlencoded::Serializer::new(String::new())
        .append_pair("json", &payload.to_string())
        .append_pair("api_key", KEY)
        .append_pair("authorization", token)
        .append_pair("stream-auth-type", "jwt")
        .append_pair("X-Stream-Client", "stream-chat-js-v9.53.0-node")
        .finish()
}

/// Opens a socket with a raw query and optional extra headers.
pub async fn open(h: &MockHandle, query: &str, headers: &[(&str, &str)]) -> Ws {
    let mut req = format!("{}/connect?{query}", h.ws_url())
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).expect("header name");
        req.headers_mut()
            .insert(name, HeaderValue::from_str(v).expect("header"));
    }
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("in time")
        .expect("upgrade");
    ws
}

/// Connects `user` like the JS SDK and returns the socket and its first frame.
pub async fn connect(h: &MockHandle, user: &str) -> (Ws, Value) {
    connect_details(h, user, json!({ "id": user, "name": user })).await
}

pub async fn connect_details(h: &MockHandle, user: &str, details: Value) -> (Ws, Value) {
    let mut ws = open(h, &connect_query(user, &user_token(user), details), &[]).await;
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "health.check", "first frame: {first}");
    (ws, first)
}

/// The next text frame as JSON (fails on close or after `WAIT`).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("JSON frame"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next frame that is not a `health.check`.
pub async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] != "health.check" {
            return v;
        }
    }
}

/// Reads until the server closes: `Some(frame)` for a close frame, `None` when the TCP
/// connection ended without one (what a client reports as 1006).
pub async fn closed(ws: &mut Ws) -> Option<CloseFrame> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("close in time") {
            Some(Ok(Message::Close(f))) => return f,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Expects one `connection.error` frame with `code`, then close 1000. Returns the error object.
pub async fn expect_rejected(ws: &mut Ws, code: i64) -> Value {
    let f = next_json(ws).await;
    assert_eq!(f["type"], "connection.error", "frame: {f}");
    let e = f["error"].clone();
    assert_eq!(e["code"], code, "error: {e}");
    for k in ["message", "StatusCode", "duration", "more_info", "details"] {
        assert!(e.get(k).is_some(), "error body lacks {k}: {e}");
    }
    let close = closed(ws).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1000);
    e
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

/// A plain HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
}

pub async fn http(
    h: &MockHandle,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> Resp {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", h.base_url()));
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    let req = b
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
        .expect("request");
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("in time")
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Resp { status, headers, body }
}

/// A REST call as the JS SDK makes it (api_key/user_id/connection_id query, raw JWT header).
pub async fn rest(h: &MockHandle, method: &str, path: &str, user: &str, conn: Option<&str>, body: Value) -> Resp {
    rest_token(h, method, path, user, &user_token(user), conn, body).await
}

pub async fn rest_token(
    h: &MockHandle,
    method: &str,
    path: &str,
    user: &str,
    token: &str,
    conn: Option<&str>,
    body: Value,
) -> Resp {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("api_key", KEY).append_pair("user_id", user);
    if let Some(c) = conn {
        q.append_pair("connection_id", c);
    }
    let headers = [
        ("authorization", token.to_owned()),
        ("stream-auth-type", "jwt".to_owned()),
    ];
    http(h, method, &format!("{path}?{}", q.finish()), &headers, Some(body)).await
}

/// A fault-control call with the secret.
pub async fn fault(h: &MockHandle, method: &str, path: &str, body: Value) -> Resp {
    http(
        h,
        method,
        path,
        &[("x-chatstorm-secret", FAULT_SECRET.to_owned())],
        Some(body),
    )
    .await
}

/// Error body completeness and the HTTP status/code match.
pub fn assert_error(r: &Resp, status: u16, code: i64) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert_eq!(r.body["code"], code, "body: {}", r.body);
    assert_eq!(r.body["StatusCode"], status, "body: {}", r.body);
    for k in ["message", "duration", "more_info", "details"] {
        assert!(r.body.get(k).is_some(), "error body lacks {k}: {}", r.body);
    }
}

/// Connects `user` and makes it watch `messaging:<channel>` (created with `members`).
pub async fn watcher(h: &MockHandle, user: &str, channel: &str, members: &[&str]) -> (Ws, String) {
    let (mut ws, first) = connect(h, user).await;
    let cid = first["connection_id"].as_str().expect("connection_id").to_owned();
    let body = json!({"data": {"members": members}, "state": true, "watch": true, "presence": true});
    let r = rest(
        h,
        "POST",
        &format!("/channels/messaging/{channel}/query"),
        user,
        Some(&cid),
        body,
    )
    .await;
    assert_eq!(r.status, 201, "watch: {}", r.body);
    let _ = &mut ws;
    (ws, cid)
}

/// Reads events until one of `kind` arrives, failing on any other non-health, non-watching event.
pub async fn expect_event(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next_event(ws).await;
        let t = v["type"].as_str().unwrap_or("");
        if t == kind {
            return v;
        }
        assert!(
            t.starts_with("user.watching") || t == "user.presence.changed",
            "expected {kind}, got {v}"
        );
    }
}
