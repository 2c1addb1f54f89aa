//! Hostile clients cannot hold the mock hostage (issue 18): slow heads, idle keep-alive
//! connections and slow bodies are timed out, unfinished bodies share a bounded budget that is
//! given back, malformed bodies get 400 (code 4), WebSocket protocol errors get their RFC 6455
//! close code, and tokens with unknown `crit` entries or over the size limit are refused. Timer
//! tests run on paused tokio time (the mock's timers are tokio's), so they take no wall time.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

/// Reads until the server closes the connection (EOF or reset), or `limit` passes.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {limit:?}; read so far: {:?}",
                String::from_utf8_lossy(&all)
            ),
        }
    }
}

/// Reads one whole response (head and `content-length` body) off a kept-alive connection.
async fn read_response(s: &mut TcpStream) -> (u16, Value) {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&all)
        );
        all.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&all).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().expect("content-length"));
            if all.len() >= end + 4 + len {
                let status = text[9..12].parse().expect("status");
                let body = serde_json::from_slice(&all[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                return (status, body);
            }
        }
    }
}

/// Status and JSON body of a response the server sent before closing.
fn parse_closed_response(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .find("\r\n\r\n")
        .and_then(|i| serde_json::from_str(&text[i + 4..]).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(start_paused = true)]
async fn a_slowloris_head_is_closed_after_the_header_timeout() {
    let h = start().await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let t0 = Instant::now();
    // Drip-fed: a byte every 3 s never finishes the head; the clock runs from its first byte.
    for b in b"GET /hi HTTP/1.1\r\nHost: x\r\nX-A: " {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        if t0.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    let rest = read_until_closed(&mut s, Duration::from_secs(120)).await;
    let took = t0.elapsed();
    assert!(rest.is_empty(), "no response to half a head: {rest:?}");
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(16),
        "closed after {took:?}; the header timeout is 10 s"
    );
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let h = start().await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    // A silent connection that never sends a byte.
    let mut silent = TcpStream::connect(h.addr).await.unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (status, _) = read_response(&mut s).await;
    assert!(status < 500, "{status}");
    // Still usable within the idle timeout (keep-alive works)...
    tokio::time::sleep(Duration::from_secs(50)).await;
    s.write_all(b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    read_response(&mut s).await;
    let t1 = Instant::now();
    // ...and closed once idle for 60 s.
    assert!(read_until_closed(&mut s, Duration::from_secs(300)).await.is_empty());
    let idle = t1.elapsed();
    assert!(
        idle >= Duration::from_secs(60) && idle < Duration::from_secs(62),
        "closed after {idle:?} idle; the idle timeout is 60 s"
    );
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(300))
            .await
            .is_empty()
    );
    assert!(t0.elapsed() >= Duration::from_secs(60));
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_ends_gets_408_after_the_body_timeout() {
    let h = start().await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let t0 = Instant::now();
    s.write_all(b"POST /channels/messaging/x/query HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\":")
        .await
        .unwrap();
    let raw = read_until_closed(&mut s, Duration::from_secs(300)).await;
    let (status, body) = parse_closed_response(&raw);
    assert_eq!((status, body["code"].as_i64()), (408, Some(23)), "{body}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(32),
        "{took:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn unfinished_bodies_share_a_bounded_budget_that_is_given_back() {
    let h = start_with(chatstorm_mock::MockConfig {
        max_pending_body_bytes: 64 * 1024,
        ..config()
    })
    .await;
    let head = |len: usize| format!("POST /users HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
    // One client holds 60 KiB of a 200 KB body.
    let mut a = TcpStream::connect(h.addr).await.unwrap();
    a.write_all(head(200_000).as_bytes()).await.unwrap();
    a.write_all(&vec![b' '; 60 * 1024]).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while h.control.stats().pending_body_bytes < 60 * 1024 {
        assert!(Instant::now() < deadline, "the server never read the 60 KiB");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A second one that would take the total past 64 KiB is refused, and its connection closed.
    let mut b = TcpStream::connect(h.addr).await.unwrap();
    b.write_all(head(100_000).as_bytes()).await.unwrap();
    b.write_all(&vec![b' '; 10 * 1024]).await.unwrap();
    let (status, body) = parse_closed_response(&read_until_closed(&mut b, WAIT).await);
    assert_eq!(status, 503, "{body}");
    assert!(h.control.stats().pending_body_bytes <= 64 * 1024);
    // The first client goes away: its bytes are given back.
    drop(a);
    let deadline = Instant::now() + WAIT;
    while h.control.stats().pending_body_bytes != 0 {
        assert!(Instant::now() < deadline, "the budget was not given back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // And complete bodies go through again.
    let r = rest(&h, "POST", "/users", "budget_u", None, json!({"users": {}})).await;
    assert_ne!(r.status, 503, "{:?}", r.body);
    h.shutdown().await;
}

#[tokio::test]
async fn a_malformed_chunk_gets_400_with_code_4() {
    let h = start().await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(b"POST /users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (status, body) = parse_closed_response(&read_until_closed(&mut s, WAIT).await);
    assert_eq!((status, body["code"].as_i64()), (400, Some(4)), "{body}");
    assert_eq!(body["StatusCode"], 400, "{body}");
    // Too big is still 413 / 22, told apart from malformed.
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        .await
        .unwrap();
    let _ = s.write_all(&vec![b' '; 1024 * 1024 + 10]).await;
    let (status, body) = parse_closed_response(&read_until_closed(&mut s, WAIT).await);
    assert_eq!((status, body["code"].as_i64()), (413, Some(22)), "{body}");
    h.shutdown().await;
}

/// Connects a user, writes `raw` bytes on the socket after the handshake and returns the close
/// code the server answered with.
async fn close_code_after(raw: &[u8]) -> Option<u16> {
    let h = start().await;
    let (mut ws, _) = connect(&h, "raw_u").await;
    match ws.get_mut() {
        MaybeTlsStream::Plain(s) => s.write_all(raw).await.expect("write raw frame"),
        _ => unreachable!("plain ws"),
    }
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("an answer in time") {
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break None,
        }
    };
    h.shutdown().await;
    code
}

#[tokio::test]
async fn websocket_protocol_errors_get_their_close_codes() {
    let mask = [0u8; 4];
    let masked = |first: u8, payload: &[u8]| -> Vec<u8> {
        let mut f = vec![first];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend_from_slice(payload);
        f
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked text frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("RSV1 set without an extension", masked(0xC1, b"hi"), 1002),
        ("unknown data opcode 0x3", masked(0x83, b""), 1002),
        ("unknown control opcode 0xB", masked(0x8B, b""), 1002),
        ("ping of 200 bytes", masked(0x89, &[b'p'; 200]), 1002),
        ("invalid UTF-8 in text", masked(0x81, &[0xC3, 0x28]), 1007),
        (
            "text message over 64 KiB",
            {
                let mut f = vec![0x81, 0x80 | 127];
                f.extend_from_slice(&(70_000u64).to_be_bytes());
                f.extend_from_slice(&mask);
                f
            },
            1009,
        ),
    ];
    for (what, raw, want) in cases {
        assert_eq!(close_code_after(&raw).await, Some(want), "{what}");
    }
}

#[tokio::test]
async fn tokens_with_unknown_crit_entries_or_over_8_kib_are_refused() {
    use base64::Engine;
    use hmac::Mac;
    let h = start().await;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!(
        "{}.{}",
        e.encode(br#"{"alg":"HS256","typ":"JWT","crit":["b64"],"b64":false}"#),
        e.encode(json!({"user_id": "crit_u"}).to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let crit = format!("{input}.{}", e.encode(mac.finalize().into_bytes()));
    let mut ws = open(&h, &connect_query("crit_u", &crit, json!({"id": "crit_u"})), &[]).await;
    expect_rejected(&mut ws, 43).await;
    let r = rest_token(&h, "POST", "/users", "crit_u", &crit, None, json!({"users": {}})).await;
    assert_error(&r, 401, 43);

    let big = token(json!({"user_id": "big_u", "pad": "x".repeat(9000)}));
    let r = rest_token(&h, "POST", "/users", "big_u", &big, None, json!({"users": {}})).await;
    assert_error(&r, 431, 24);
    let mut ws = open(&h, &connect_query("big_u", &big, json!({"id": "big_u"})), &[]).await;
    expect_rejected(&mut ws, 24).await;
    // Just under the limit is fine.
    let ok = token(json!({"user_id": "ok_u", "pad": "x".repeat(4000)}));
    let r = rest_token(&h, "POST", "/users", "ok_u", &ok, None, json!({"users": {}})).await;
    assert_ne!(r.status, 431, "{:?}", r.body);
    h.shutdown().await;
}

#[test]
fn the_fault_secret_compare_is_exact() {
    use chatstorm_mock::secret_matches;
    assert!(secret_matches("abc", Some(b"abc")));
    for wrong in [&b"abd"[..], b"ab", b"abcd", b""] {
        assert!(!secret_matches("abc", Some(wrong)), "{wrong:?}");
    }
    assert!(!secret_matches("abc", None));
    assert!(!secret_matches("", Some(b"")), "an empty secret closes the API");
    let a = chatstorm_mock::random_secret();
    assert_eq!(a.len(), 32);
    assert_ne!(a, chatstorm_mock::random_secret());
}

#[tokio::test(start_paused = true)]
async fn upgraded_sockets_are_not_subject_to_the_http_idle_timeout() {
    let h = start().await;
    let (mut ws, first) = connect(&h, "quiet_u").await;
    let cid = first["connection_id"].as_str().unwrap().to_owned();
    // Far past the 60 s HTTP idle timeout (and the 10 s header timeout), with no traffic at all.
    tokio::time::sleep(Duration::from_secs(300)).await;
    send_text(&mut ws, &json!({"type": "health.check", "client_id": "c"}).to_string()).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["type"], "health.check", "{reply}");
    assert_eq!(reply["connection_id"], cid.as_str());
    h.shutdown().await;
}
