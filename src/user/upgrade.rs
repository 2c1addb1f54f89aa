//! The WebSocket opening handshake of a simulated user (RFC 6455 §4.1), done over the TCP stream
//! by hand so that nothing of it outlives the upgrade.
//!
//! Why not tungstenite's client handshake: it reads the response into a 4 KiB buffer and then
//! hands that very allocation to the connection as its read buffer, for the connection's whole
//! life: 4 KiB per user, half of the harness's memory budget. Here the response head is read into
//! a small buffer that is dropped once parsed; only the bytes that followed the head (the server's
//! first frame, when it came in the same segment) go on to the connection, whose read buffer is
//! then the small one the config asks for.

use super::metered::Metered;
use crate::net::Stream;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The largest response head accepted; a server sending more is broken (or hostile).
const MAX_HEAD: usize = 16 * 1024;
/// The first read's buffer: a mock or Stream response head is about 200 bytes.
const FIRST_READ: usize = 512;
/// Headers parsed at most in a response head.
const MAX_HEADERS: usize = 32;

/// Why an upgrade did not happen.
#[derive(Debug)]
pub enum UpgradeError {
    /// The socket failed or closed during the handshake.
    Io(io::Error),
    /// The server answered with a status other than 101 (for instance 401 or 429).
    Rejected(u16),
    /// The response was not a valid WebSocket upgrade (bad head, missing or wrong accept key).
    Malformed(&'static str),
}

impl std::fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "socket error during the upgrade: {e}"),
            Self::Rejected(s) => write!(f, "upgrade refused with HTTP {s}"),
            Self::Malformed(what) => write!(f, "not a WebSocket upgrade response: {what}"),
        }
    }
}

/// Upgrades `stream` to a WebSocket: `GET path_and_query` with `host` and the extra `headers`,
/// then the 101 response checked (status, `Upgrade`, `Connection`, `Sec-WebSocket-Accept`).
///
/// # Errors
/// [`UpgradeError`] when the socket fails, the server refuses, or the answer is not an upgrade.
pub async fn upgrade(
    mut stream: Stream,
    host: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    config: WebSocketConfig,
) -> Result<WebSocketStream<Metered<Stream>>, UpgradeError> {
    let key = generate_key();
    let request = request_head(host, path_and_query, &key, headers)?;
    stream.write_all(request.as_bytes()).await.map_err(UpgradeError::Io)?;
    drop(request);
    let tail = read_response(&mut stream, &key).await?;
    let stream = Metered::new(stream, tail.len());
    Ok(WebSocketStream::from_partially_read(stream, tail, Role::Client, Some(config)).await)
}

/// The request head; header names and values are checked for line breaks (no injection).
fn request_head(
    host: &str,
    path_and_query: &str,
    key: &str,
    headers: &[(String, String)],
) -> Result<String, UpgradeError> {
    let clean = |s: &str| !s.bytes().any(|b| b == b'\r' || b == b'\n');
    if !clean(host) || !clean(path_and_query) || !headers.iter().all(|(k, v)| clean(k) && clean(v)) {
        return Err(UpgradeError::Malformed("a line break in the request"));
    }
    let extra: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut head = String::with_capacity(160 + host.len() + path_and_query.len() + extra);
    for part in [
        "GET ",
        path_and_query,
        " HTTP/1.1\r\nHost: ",
        host,
        "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
        key,
        "\r\n",
    ] {
        head.push_str(part);
    }
    for (k, v) in headers {
        for part in [k.as_str(), ": ", v.as_str(), "\r\n"] {
            head.push_str(part);
        }
    }
    head.push_str("\r\n");
    Ok(head)
}

/// Reads and checks the response head; returns the bytes read past it.
async fn read_response(stream: &mut Stream, key: &str) -> Result<Vec<u8>, UpgradeError> {
    let mut buf = Vec::with_capacity(FIRST_READ);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= MAX_HEAD {
                return Err(UpgradeError::Malformed("response head larger than 16 KiB"));
            }
            buf.reserve(buf.len());
        }
        let n = stream.read_buf(&mut buf).await.map_err(UpgradeError::Io)?;
        if n == 0 {
            return Err(UpgradeError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if let Some(head_len) = check_head(&buf, key)? {
            return Ok(buf[head_len..].to_vec());
        }
    }
}

/// `Some(head length)` once a complete, valid 101 head is in `buf`; `None` while incomplete.
fn check_head(buf: &[u8], key: &str) -> Result<Option<usize>, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(UpgradeError::Malformed("unparsable response head")),
    };
    let status = resp.code.unwrap_or(0);
    if status != 101 {
        return Err(UpgradeError::Rejected(status));
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(b"websocket")) {
        return Err(UpgradeError::Malformed("no `Upgrade: websocket`"));
    }
    let connection_upgrade = header("connection").is_some_and(|v| {
        v.split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    if !connection_upgrade {
        return Err(UpgradeError::Malformed("no `Connection: upgrade`"));
    }
    if header("sec-websocket-accept") != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Err(UpgradeError::Malformed("wrong or missing Sec-WebSocket-Accept"));
    }
    Ok(Some(len))
}

/// The `Host` header value of a `ws://` URL (the port only when it is not the scheme's default).
///
/// # Errors
/// When the URL has no host.
pub fn host_header(url: &url::Url) -> Result<String, UpgradeError> {
    let host = url.host_str().ok_or(UpgradeError::Malformed("URL without a host"))?;
    Ok(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// The request target of `path_and_query` (already percent-encoded, as
/// `build_connect_request` makes it) under the path of `base`: what joining the two into one URL
/// and reading its path and query back gives, without building and parsing that URL on every
/// connect attempt (it was about 3 % of the harness's CPU in a reconnect storm). Borrowed when
/// the base has no path of its own.
pub fn target_under<'a>(base: &url::Url, path_and_query: &'a str) -> std::borrow::Cow<'a, str> {
    match base.path().trim_end_matches('/') {
        "" => std::borrow::Cow::Borrowed(path_and_query),
        prefix => std::borrow::Cow::Owned(format!("{prefix}{path_and_query}")),
    }
}

/// The `Host` header value and the request target of a `ws://` URL.
///
/// # Errors
/// When the URL has no host.
pub fn host_and_target(url: &url::Url) -> Result<(String, String), UpgradeError> {
    let host = host_header(url)?;
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    Ok((host, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: &str, accept: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
    }

    #[test]
    fn a_valid_head_is_accepted_and_its_tail_kept_apart() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let accept = derive_accept_key(key.as_bytes());
        let mut bytes = head("101 Switching Protocols", &accept).into_bytes();
        let len = bytes.len();
        assert_eq!(check_head(&bytes[..len - 3], key).unwrap(), None, "incomplete");
        bytes.extend_from_slice(b"\x81\x02hi");
        assert_eq!(check_head(&bytes, key).unwrap(), Some(len));
    }

    #[test]
    fn refusals_and_forgeries_are_told_apart() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let bad = check_head(head("401 Unauthorized", "x").as_bytes(), key);
        assert!(matches!(bad, Err(UpgradeError::Rejected(401))));
        let wrong = check_head(head("101 Switching Protocols", "bm90IGl0").as_bytes(), key);
        assert!(matches!(wrong, Err(UpgradeError::Malformed(_))));
        assert!(matches!(
            check_head(b"garbage\r\n\r\n", key),
            Err(UpgradeError::Malformed(_))
        ));
    }

    #[test]
    fn the_request_refuses_line_breaks_and_carries_the_headers() {
        let h = vec![("X-Stream-Client".to_owned(), "stream-chat-js".to_owned())];
        let r = request_head("127.0.0.1:9", "/connect?json=%7B%7D", "k==", &h).unwrap();
        assert!(r.starts_with("GET /connect?json=%7B%7D HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        assert!(r.contains("\r\nX-Stream-Client: stream-chat-js\r\n") && r.ends_with("\r\n\r\n"));
        let evil = vec![("X".to_owned(), "a\r\nInjected: 1".to_owned())];
        assert!(request_head("h", "/", "k", &evil).is_err());
    }

    #[test]
    fn host_and_target_of_a_url() {
        let u: url::Url = "ws://127.0.0.1:8080/connect?json=%7B%7D&api_key=k".parse().unwrap();
        let (h, t) = host_and_target(&u).unwrap();
        assert_eq!(h, "127.0.0.1:8080");
        assert_eq!(t, "/connect?json=%7B%7D&api_key=k");
    }

    #[test]
    fn target_under_a_base_is_what_the_joined_url_says() {
        let pq = "/connect?json=%7B%22user_id%22%3A%22u+1%22%7D&api_key=k&authorization=a.b.c";
        for base in [
            "ws://127.0.0.1:8080/",
            "ws://127.0.0.1:8080",
            "wss://chat.example/api/",
            "ws://h:80/a/b",
        ] {
            let base: url::Url = base.parse().unwrap();
            let joined: url::Url = crate::target::Target::join(&base, pq).parse().unwrap();
            let (host, target) = host_and_target(&joined).unwrap();
            assert_eq!(host_header(&base).unwrap(), host, "{base}");
            assert_eq!(target_under(&base, pq), target, "{base}");
        }
    }
}
