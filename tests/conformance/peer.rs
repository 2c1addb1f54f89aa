//! A tiny scripted misbehaving peer, for rules whose violation the mock cannot express: it
//! accepts WebSocket upgrades (or, for the `Rest*` behaviours, plain HTTP requests) on
//! 127.0.0.1:0 and then behaves one fixed, wrong way.

use std::net::SocketAddr;

use chatstorm::target::{Target, TargetAuth};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_util::sync::CancellationToken;

/// How the peer misbehaves after the upgrade.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Sends an error frame with this code to every connect (then close 1000).
    AlwaysError(i64),
    /// Accepts every connect (whatever the token or user) with a proper first `health.check`.
    AcceptAll,
    /// Sends a non-JSON text frame first.
    NonJsonFirst,
    /// Refuses auth given in headers: without an `authorization` query parameter, code 5.
    QueryAuthOnly,
    /// Accepts, then never reads again, so a client's close frame is never answered.
    NoCloseEcho,
    /// A REST server that serves every request, whatever its credentials: HTTP 201 `{}`.
    RestAcceptAll,
    /// A REST server that answers every request with HTTP 401 and this error code.
    RestError(i64),
}

/// A running peer; dropped = stopped.
pub struct Peer {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Peer {
    /// A target pointing at the peer (tokens minted with the mock's secret, which the peer
    /// never checks).
    pub fn target(&self) -> Target {
        let secret = b"peer-secret".to_vec();
        Target::new(
            format!("http://{}", self.addr).parse().expect("peer url"),
            "peer_key".into(),
            TargetAuth::Secret(secret.clone()),
            Some(secret),
        )
        .expect("http target")
    }
}

/// Starts a peer behaving as `b`.
pub async fn start(b: Behaviour) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        loop {
            let sock = tokio::select! {
                _ = s.cancelled() => return,
                r = listener.accept() => match r { Ok((sock, _)) => sock, Err(_) => continue },
            };
            let s2 = s.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = s2.cancelled() => {}
                    _ = serve_any(sock, b) => {}
                }
            });
        }
    });
    Peer { addr, stop }
}

async fn serve_any(sock: tokio::net::TcpStream, b: Behaviour) {
    match b {
        Behaviour::RestAcceptAll | Behaviour::RestError(_) => serve_http(sock, b).await,
        _ => serve(sock, b).await,
    }
}

/// Answers HTTP/1.1 requests on one connection, one fixed way, until the client closes it.
async fn serve_http(mut sock: tokio::net::TcpStream, b: Behaviour) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The head, then as many body bytes as Content-Length says.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + len);
        let (status, body) = match b {
            Behaviour::RestError(code) => (
                "401 Unauthorized",
                json!({"code": code, "message": "scripted peer", "StatusCode": 401, "duration": "0ms",
                       "more_info": "", "details": []}),
            ),
            _ => ("201 Created", json!({"duration": "0ms"})),
        };
        let body = body.to_string();
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if sock.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn serve(sock: tokio::net::TcpStream, b: Behaviour) {
    let mut query = String::new();
    #[allow(clippy::result_large_err)] // the callback's signature is tungstenite's
    let cb = |req: &Request, resp: Response| {
        query = req.uri().query().unwrap_or_default().to_owned();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(sock, cb).await else {
        return;
    };
    let q = chatstorm_protocol::connect::parse_query(&query);
    let user_id = q
        .json
        .as_deref()
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .and_then(|v| v.get("user_id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let health = json!({
        "type": "health.check", "connection_id": format!("peer-{}", uuid::Uuid::new_v4()), "cid": "*",
        "created_at": chatstorm_protocol::time::now_rfc3339(),
        "me": {"id": user_id, "online": true, "total_unread_count": 0, "unread_count": 0, "unread_channels": 0,
               "mutes": [], "channel_mutes": [], "devices": []},
    })
    .to_string();
    let error = |code: i64| {
        json!({"type": "connection.error", "connection_id": "", "created_at": chatstorm_protocol::time::now_rfc3339(),
               "error": {"code": code, "message": "scripted peer", "StatusCode": 401, "duration": "0ms",
                         "more_info": "", "details": []}})
        .to_string()
    };
    let first = match b {
        Behaviour::AlwaysError(c) => error(c),
        Behaviour::QueryAuthOnly if q.authorization.is_none() => error(5),
        Behaviour::NonJsonFirst => "hello, not json".to_owned(),
        _ => health,
    };
    let is_error = first.contains("connection.error");
    if ws.send(Message::text(first)).await.is_err() {
        return;
    }
    if is_error {
        let _ = ws
            .send(Message::Close(Some(CloseFrame {
                code: 1000.into(),
                reason: "".into(),
            })))
            .await;
        return;
    }
    if matches!(b, Behaviour::NoCloseEcho) {
        // Hold the socket without reading: the client's close frame is never answered.
        std::future::pending::<()>().await;
    }
    while let Some(Ok(_)) = ws.next().await {}
}
